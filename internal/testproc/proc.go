package testproc

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// readyTimeout bounds the wait for a subject's ready line.
const readyTimeout = 60 * time.Second

// Proc is a running subject, as [Start] and [StartWine] return it.
type Proc struct {
	// Pid is the Linux process ID of the subject. For a Wine subject it
	// is the process that runs the Windows program (see [StartWine]).
	Pid int
	// Cmd is the command that started the subject.
	Cmd *exec.Cmd
	// Lines holds what the subject wrote to standard output up to and
	// including its ready line, without line ends.
	Lines []string
	// Threads maps the Linux thread ID of each announced thread to its
	// role ("main", "worker-3", "sigalt", "jit-pause"...).
	Threads map[int]string
	// Attrs maps the thread ID of each announced thread to the key-value
	// pairs that follow the role on its line ("depth" → "8",
	// "wait" → "read"); empty when there are none.
	Attrs map[int]map[string]string
	// JIT lists the generated functions the subject announced, in the
	// order of its lines.
	JIT []JITFunc
	// Funcs maps function names to the addresses announced by fn lines.
	Funcs map[string]uint64
}

// JITFunc is a function generated at run time by the JIT subject.
type JITFunc struct {
	Name  string // "jit_a1"
	Begin uint64 // address of its first byte
	End   uint64 // address one past its last byte
}

// Contains reports whether pc lies in [f.Begin, f.End).
func (f JITFunc) Contains(pc uint64) bool { return f.Begin <= pc && pc < f.End }

// Start runs bin with args, waits for it to write its ready line (for at
// most a minute), parses the lines before it into a [Proc], and kills the
// process when the test ends. The subject's standard error is quoted when
// it fails to get ready.
func Start(t testing.TB, bin string, args ...string) *Proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("testproc: %v", err)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("testproc: start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		// A new handle: a test that waited for the process may have made
		// cmd.Process take a ptrace stop for its end, and then Kill
		// would send nothing.
		if proc, err := os.FindProcess(cmd.Process.Pid); err == nil {
			proc.Kill()
		}
		cmd.Wait()
	})

	lines := make(chan []string, 1)
	go func() {
		var got []string
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			got = append(got, sc.Text())
			if strings.HasPrefix(sc.Text(), "ready") {
				lines <- got
				io.Copy(io.Discard, stdout)
				return
			}
		}
		lines <- got
	}()
	var got []string
	select {
	case got = <-lines:
	case <-time.After(readyTimeout):
		t.Fatalf("testproc: %s did not get ready within %v; stderr:\n%s", bin, readyTimeout, stderr.String())
	}
	if len(got) == 0 || !strings.HasPrefix(got[len(got)-1], "ready") {
		cmd.Process.Kill()
		err := cmd.Wait()
		t.Fatalf("testproc: %s exited (%v) before its ready line; stdout:\n%s\nstderr:\n%s", bin, err, strings.Join(got, "\n"), stderr.String())
	}
	p, err := parse(got)
	if err != nil {
		t.Fatalf("testproc: %s: %v", bin, err)
	}
	p.Cmd = cmd
	if p.Pid != cmd.Process.Pid {
		t.Fatalf("testproc: %s announced pid %d, but its pid is %d", bin, p.Pid, cmd.Process.Pid)
	}
	// The thread that wrote the ready line goes on to park after it: wait
	// until every announced thread sleeps in a system call.
	if err := p.waitParked(readyTimeout); err != nil {
		t.Fatalf("testproc: %s: %v", bin, err)
	}
	return p
}

// waitParked waits until every announced thread is asleep in a system
// call (state S, and /proc/PID/task/TID/syscall gives a number), twice in
// a row 5 ms apart.
func (p *Proc) waitParked(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for stable := 0; stable < 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("its threads did not all park within %v", timeout)
		}
		stable++
		for tid := range p.Threads {
			if !parked(p.Pid, tid) {
				stable = 0
				break
			}
		}
	}
	return nil
}

func parked(pid, tid int) bool {
	dir := fmt.Sprintf("/proc/%d/task/%d/", pid, tid)
	stat, err := os.ReadFile(dir + "stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) || stat[i+2] != 'S' {
		return false
	}
	sc, err := os.ReadFile(dir + "syscall")
	if err != nil || len(sc) == 0 {
		return false
	}
	return sc[0] >= '0' && sc[0] <= '9'
}

// parse parses a subject's announcement lines, the last of which is the
// ready line.
func parse(lines []string) (*Proc, error) {
	p := &Proc{Lines: lines, Threads: map[int]string{}, Attrs: map[int]map[string]string{}, Funcs: map[string]uint64{}}
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		bad := fmt.Errorf("bad announcement %q", line)
		switch f[0] {
		case "ready":
			if len(f) > 1 {
				pid, err := strconv.Atoi(f[1])
				if err != nil {
					return nil, bad
				}
				p.Pid = pid
			}
		case "thread":
			if len(f) < 3 || len(f)%2 == 0 {
				return nil, bad
			}
			tid, err := strconv.Atoi(f[1])
			if err != nil {
				return nil, bad
			}
			p.Threads[tid] = f[2]
			attrs := map[string]string{}
			for i := 3; i+1 < len(f); i += 2 {
				attrs[f[i]] = f[i+1]
			}
			p.Attrs[tid] = attrs
		case "jit":
			if len(f) != 4 {
				return nil, bad
			}
			begin, err1 := strconv.ParseUint(f[2], 0, 64)
			end, err2 := strconv.ParseUint(f[3], 0, 64)
			if err1 != nil || err2 != nil || end <= begin {
				return nil, bad
			}
			p.JIT = append(p.JIT, JITFunc{f[1], begin, end})
		case "fn":
			if len(f) != 3 {
				return nil, bad
			}
			addr, err := strconv.ParseUint(f[2], 0, 64)
			if err != nil {
				return nil, bad
			}
			p.Funcs[f[1]] = addr
		}
	}
	return p, nil
}

// lockedBuffer is a bytes.Buffer safe for one writer and concurrent
// readers, for a child's standard error.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 64<<10 {
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// tracerPid returns the TracerPid of process pid, from /proc/PID/status.
func tracerPid(pid int) (int, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "TracerPid:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("no TracerPid in /proc/%d/status", pid)
}

// waitUntraced waits up to timeout for process pid to have no tracer.
func waitUntraced(pid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		tp, err := tracerPid(pid)
		if err != nil {
			return err
		}
		if tp == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d is still traced by %d after %v", pid, tp, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
