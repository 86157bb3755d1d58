package demotarget

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// DefaultTimeout is how long [Start] waits for the report when
// Options.Timeout is 0.
const DefaultTimeout = 30 * time.Second

// closeGrace is how long Close lets the target end by itself before it
// kills it.
const closeGrace = 5 * time.Second

// stderrKeep is how many bytes of the target's standard error a Process
// keeps for error messages.
const stderrKeep = 16 << 10

// Options configure [Start]. The zero value starts the current executable
// without a provider library, churn or a lifetime of its own.
type Options struct {
	// Executable is the program to run as the target; it must call [Main]
	// when [IsTarget]. "" means os.Executable().
	Executable string
	// Provider is the path of the provider library the callback table
	// names (see [BuildProvider]); "" means no callback table.
	Provider string
	// Churn makes the target keep adding, growing and deleting other
	// tables while it runs.
	Churn bool
	// Seed is the jitgen seed: the same seed gives the same code.
	Seed uint64
	// Lifetime ends the target after this long; 0 means its default (10
	// minutes). It runs until Close otherwise.
	Lifetime time.Duration
	// Timeout bounds the wait for the report; 0 means DefaultTimeout.
	Timeout time.Duration
	// Stderr receives the target's standard error as it comes, if not nil.
	Stderr io.Writer
}

// Process is a running target. Its methods are safe for concurrent use.
type Process struct {
	Pid    int    // the target's process ID
	Report Report // what it reported once its threads were parked

	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan []byte   // lines of its standard output after the report
	done   chan struct{} // closed by Close: nobody reads lines any more
	stderr *tail

	mu     sync.Mutex // serialises Status
	closed sync.Once
	err    error
}

// Start starts the target and waits for its report. The target ends when
// ctx is done, or at Close. On failure, the error quotes the end of the
// target's standard error.
func Start(ctx context.Context, opts Options) (*Process, error) {
	exe := opts.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("start demo target: %w", err)
		}
	}
	args := []string{"-seed=" + strconv.FormatUint(opts.Seed, 10), "-provider=" + opts.Provider}
	if opts.Churn {
		args = append(args, "-churn")
	}
	if opts.Lifetime > 0 {
		args = append(args, "-lifetime="+opts.Lifetime.String())
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), EnvVar+"=1")
	setParentDeathSignal(cmd)
	p := &Process{cmd: cmd, stderr: &tail{}, lines: make(chan []byte, 16), done: make(chan struct{})}
	if opts.Stderr != nil {
		cmd.Stderr = io.MultiWriter(p.stderr, opts.Stderr)
	} else {
		cmd.Stderr = p.stderr
	}
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, fmt.Errorf("start demo target: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start demo target: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start demo target %s: %w", exe, err)
	}
	p.Pid = cmd.Process.Pid
	go func() {
		r := bufio.NewReaderSize(stdout, 1<<16)
		defer close(p.lines)
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return
			}
			select {
			case p.lines <- line:
			case <-p.done:
				return
			}
		}
	}()

	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	fail := func(format string, args ...any) (*Process, error) {
		cmd.Process.Kill()
		p.Close()
		msg := fmt.Sprintf(format, args...)
		if s := p.stderr.String(); s != "" {
			msg += "; its standard error:\n" + s
		}
		return nil, fmt.Errorf("start demo target %s: %s", exe, msg)
	}
	select {
	case line, ok := <-p.lines:
		if !ok {
			return fail("it ended without a report")
		}
		if err := json.Unmarshal(line, &p.Report); err != nil {
			return fail("read its report: %v", err)
		}
		if p.Report.Pid != p.Pid {
			return fail("its report names pid %d", p.Report.Pid)
		}
		return p, nil
	case <-timer.C:
		return fail("no report after %v", timeout)
	case <-ctx.Done():
		return fail("%v", ctx.Err())
	}
}

// Status asks the target for its [Status].
func (p *Process) Status() (Status, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var st Status
	if _, err := io.WriteString(p.stdin, "status\n"); err != nil {
		return st, fmt.Errorf("demo target status: %w", err)
	}
	select {
	case line, ok := <-p.lines:
		if !ok {
			return st, errors.New("demo target status: the target ended")
		}
		if err := json.Unmarshal(line, &st); err != nil {
			return st, fmt.Errorf("demo target status: %w", err)
		}
		return st, nil
	case <-time.After(DefaultTimeout):
		return st, errors.New("demo target status: no answer")
	}
}

// Close ends the target: it closes its standard input, which makes it
// exit, kills it if it has not after a few seconds, waits for it, and
// removes its perf map if it is left. It returns nil if the target ended
// as asked or was killed.
func (p *Process) Close() error {
	p.closed.Do(func() {
		p.stdin.Close()
		close(p.done)
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		var err error
		select {
		case err = <-done:
		case <-time.After(closeGrace):
			p.cmd.Process.Kill()
			err = <-done
		}
		os.Remove(fmt.Sprintf("/tmp/perf-%d.map", p.Pid))
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				err = nil
			}
		}
		if err != nil {
			p.err = fmt.Errorf("demo target %d: %w; its standard error:\n%s", p.Pid, err, p.stderr.String())
		}
	})
	return p.err
}

// Stderr returns the end of what the target wrote to its standard error.
func (p *Process) Stderr() string { return p.stderr.String() }

// tail keeps the last stderrKeep bytes written to it.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if len(t.buf) > stderrKeep {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-stderrKeep:]...)
	}
	return len(b), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
