//go:build linux

package provider

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// HelperMain is the main function of the helper process of an isolated
// call; call it, and exit with its result, when [IsHelper] is true,
// before anything else in main:
//
//	if provider.IsHelper() {
//		os.Exit(provider.HelperMain())
//	}
//
// It reads the request from [HelperEnv], loads the trust list the parent
// used and checks the library again, loads it, calls its export once,
// and writes the answer to its standard output; fd 1 is pointed at
// stderr first, so what the library prints cannot mix with the answer.
// It returns 0 once it has answered, 2 when the request is unreadable.
func HelperMain() int {
	req, err := parseHelperRequest()
	os.Unsetenv(HelperEnv) // not inherited by what the library starts
	if err != nil {
		fmt.Fprintf(os.Stderr, "provider helper: %v\n", err)
		return 2
	}
	afd, err := unix.Dup(1)
	if err == nil {
		err = unix.Dup3(2, 1, 0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "provider helper: redirect stdout: %v\n", err)
		return 2
	}
	unix.CloseOnExec(afd)
	out := os.NewFile(uintptr(afd), "answer")
	b := []byte(helperMagic)
	answerOrError := func() []byte {
		trust, err := LoadTrust(TrustOptions{File: req.TrustFile, Extra: req.TrustExtra})
		if err != nil {
			return appendError(b, err)
		}
		d := trust.Check(req.Library)
		if !d.Trusted {
			return appendError(b, errorf(ErrUntrusted, "not trusted: %s", d.Reason))
		}
		if err := defaultCrashSignals(); err != nil {
			return appendError(b, fmt.Errorf("provider helper: %w", err))
		}
		lib, err := loadLibrary(d, trust.uid, false)
		if err != nil {
			return appendError(b, err)
		}
		// Say the library is loaded before the call that may not return.
		if _, err := out.Write(append(b, tagLoaded)); err != nil {
			return nil
		}
		b = nil
		a, err := lib.call(req.Pid, req.Table)
		if err != nil {
			return appendError(b, err)
		}
		return appendAnswer(b, a)
	}
	if msg := answerOrError(); msg != nil {
		if _, err := out.Write(msg); err != nil {
			return 2
		}
	}
	return 0
}

// crashSignals are the signals of a crash.
var crashSignals = []syscall.Signal{syscall.SIGSEGV, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGILL, syscall.SIGABRT, syscall.SIGTRAP, syscall.SIGSYS}

// defaultCrashSignals gives the signals of a crash their default action,
// so that a provider that crashes ends the helper by that signal, which
// the parent reports, rather than through the Go runtime's report of a
// signal in external code and exit status 2. The runtime handles these
// signals only to turn a fault of Go code into a panic; after this the
// helper runs little Go code, and a fault there ends it the same way.
func defaultCrashSignals() error {
	// A zeroed kernel struct sigaction is SIG_DFL, no flags and an empty
	// mask on every architecture (with or without sa_restorer).
	var act [4]uint64
	const sigsetSize = 8
	for _, sig := range crashSignals {
		_, _, errno := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&act)), 0, sigsetSize, 0, 0)
		if errno != 0 {
			return fmt.Errorf("reset the action of %v: %w", sig, errno)
		}
	}
	return nil
}

// limitedBuffer keeps the first max bytes written to it and counts the
// rest.
type limitedBuffer struct {
	buf     bytes.Buffer
	max     int
	dropped int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	n := min(len(p), l.max-l.buf.Len())
	l.buf.Write(p[:n])
	l.dropped += len(p) - n
	return len(p), nil
}

// maxHelperOutput bounds what is kept of a helper's stderr, in bytes.
const maxHelperOutput = 4096

// callIsolated runs the call of library d in a helper process.
func (r *Resolver) callIsolated(trust *Trust, d Decision, pid int, table uint64) (a answer, loaded bool, err error) {
	exe := r.Executable
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return answer{}, false, errorf(ErrCrashed, "start provider helper: %v", err)
		}
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	opts := trust.Options()
	req, err := json.Marshal(helperRequest{Library: d.RealPath, Pid: pid, Table: table, TrustFile: opts.File, TrustExtra: opts.Extra})
	if err != nil {
		return answer{}, false, fmt.Errorf("provider helper request: %w", err)
	}
	cmd := exec.Command(exe)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, HelperEnv+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, HelperEnv+"="+string(req))
	stdout := &limitedBuffer{max: maxHelperAnswer + 1}
	stderr := &limitedBuffer{max: maxHelperOutput}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// The helper leads a process group, so that a timeout kills what it
	// started as well.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A descendant that left the group may hold the pipes open: stop
	// waiting for them after this.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return answer{}, false, errorf(ErrCrashed, "start provider helper: %v", err)
	}
	hpid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- waitExited(hpid) }()
	timer := time.NewTimer(timeout)
	timedOut := false
	select {
	case <-exited:
	case <-timer.C:
		timedOut = true
		syscall.Kill(-hpid, syscall.SIGKILL)
		<-exited
	}
	timer.Stop()
	// The helper has exited but is not reaped yet, so its process group
	// still exists and is its own: end whatever else is in it.
	syscall.Kill(-hpid, syscall.SIGKILL)
	werr := cmd.Wait()
	if stderr.buf.Len() > 0 {
		r.logf("provider %s (helper process %d) wrote: %s", d.RealPath, hpid, strings.TrimSpace(sanitizeText(stderr.buf.String())))
	}
	h, derr := decodeHelperAnswer(stdout.buf.Bytes())
	ps := cmd.ProcessState
	switch {
	case timedOut:
		return answer{}, h.loaded, errorf(ErrTimeout, "provider did not return within %v", timeout)
	case ps == nil:
		return answer{}, h.loaded, errorf(ErrCrashed, "provider helper: %v", werr)
	case !ps.Exited():
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return answer{}, h.loaded, errorf(ErrCrashed, "provider crashed: signal %s", unix.SignalName(ws.Signal()))
		}
		return answer{}, h.loaded, errorf(ErrCrashed, "provider helper ended: %v", ps)
	case ps.ExitCode() != 0 && h.done:
		return answer{}, h.loaded, errorf(ErrCrashed, "provider helper exited with status %d after answering", ps.ExitCode())
	case ps.ExitCode() != 0:
		return answer{}, h.loaded, errorf(ErrCrashed, "provider exited with status %d before answering", ps.ExitCode())
	case derr != nil:
		return answer{}, h.loaded, errorf(ErrCrashed, "provider helper: malformed answer: %v", derr)
	case stdout.dropped > 0:
		return answer{}, h.loaded, errorf(ErrCrashed, "provider helper: answer longer than %d bytes", maxHelperAnswer)
	case !h.done:
		return answer{}, h.loaded, errorf(ErrCrashed, "provider exited with status 0 before answering")
	case h.err != nil:
		return answer{}, h.loaded, h.err
	}
	return h.answer, h.loaded, nil
}

// waitExited waits until process pid has exited, without reaping it.
func waitExited(pid int) error {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// sanitizeText escapes what is not printable in s, keeping newlines and
// tabs.
func sanitizeText(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || (r >= 0x20 && r != 0x7f && r != 0xfffd) {
			return r
		}
		return '?'
	}, s)
}
