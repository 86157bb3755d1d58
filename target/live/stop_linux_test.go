//go:build linux

package live

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fntable/fntable/memory"
	"github.com/fntable/fntable/unwind"
)

// helperEnv switches the test binary into a helper process (see
// TestMain): "stop" stops the process named by helperPidEnv, prints
// "stopped" or "error: ...", waits for the end of its input and closes;
// "stop-bare" does the same with StopOptions.NoSignalHandler, and
// "stop-lazy" with StopOptions.LazySignalHandler, printing on a second line
// whether the handler is installed ("handler true"); "stop-lazy-held" also
// sends the process's main thread SIGTERM between its seize and its
// interrupt, so that the stop holds that signal.
const (
	helperEnv    = "FNTABLE_LIVE_HELPER"
	helperPidEnv = "FNTABLE_LIVE_HELPER_PID"
)

func TestMain(m *testing.M) {
	switch mode := os.Getenv(helperEnv); mode {
	case "stop", "stop-bare", "stop-lazy", "stop-lazy-held":
		os.Exit(stopHelper(mode))
	}
	code := m.Run()
	if childDir != "" {
		os.RemoveAll(childDir)
	}
	os.Exit(code)
}

// stopHelper is the helper process: it stops a process for another test.
func stopHelper(mode string) int {
	pid, _ := strconv.Atoi(os.Getenv(helperPidEnv))
	if mode == "stop-lazy-held" {
		testHookSeized = termBeforeInterrupt(pid)
	}
	lazy := strings.HasPrefix(mode, "stop-lazy")
	s, err := Stop(pid, StopOptions{NoSignalHandler: mode == "stop-bare", LazySignalHandler: lazy, Logf: func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
	}})
	if err != nil {
		var pe *PermissionError
		var te *TracedError
		kind := "other"
		switch {
		case errors.As(err, &pe):
			kind = "permission"
		case errors.As(err, &te):
			kind = "traced"
		}
		fmt.Printf("error %s: %v\n", kind, err)
		return 3
	}
	fmt.Println("stopped")
	if lazy {
		handles.mu.Lock()
		fmt.Println("handler", handles.ch != nil)
		handles.mu.Unlock()
	}
	io.Copy(io.Discard, os.Stdin)
	if err := s.Close(); err != nil {
		fmt.Println("close:", err)
		return 1
	}
	return 0
}

var (
	childOnce sync.Once
	childDir  string // holds the built child; removed by TestMain
	childExe  string
	childErr  error
)

// buildChild builds testdata/threads.c once per test binary.
func buildChild(t testing.TB) string {
	t.Helper()
	childOnce.Do(func() {
		gcc, err := exec.LookPath("gcc")
		if err != nil {
			childErr = err
			return
		}
		if childDir, childErr = os.MkdirTemp("", "fntable-live-"); childErr != nil {
			return
		}
		childExe = filepath.Join(childDir, "threads")
		out, err := exec.Command(gcc, "-O1", "-g", "-fno-omit-frame-pointer", "-pthread", "-o", childExe, "testdata/threads.c").CombinedOutput()
		if err != nil {
			childErr = fmt.Errorf("build child: %v\n%s", err, out)
		}
	})
	if errors.Is(childErr, exec.ErrNotFound) {
		t.Skip("needs gcc to build the child process")
	}
	if childErr != nil {
		t.Fatal(childErr)
	}
	return childExe
}

// child is a running testdata/threads.c.
type child struct {
	cmd    *exec.Cmd
	pid    int
	in     io.WriteCloser
	out    *bufio.Scanner
	stacks map[int][2]uint64 // by TID: [lo, hi) of the thread's stack
	names  map[int]string    // by TID: the name the child gave it ("main" for the main thread)
}

// startChild starts the child with workers worker threads and waits until
// it is ready. Cleanup kills it.
func startChild(t testing.TB, workers int, args ...string) *child {
	t.Helper()
	exe := buildChild(t)
	cmd := exec.Command(exe, append([]string{strconv.Itoa(workers)}, args...)...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, pid: cmd.Process.Pid, in: in, out: bufio.NewScanner(out), stacks: map[int][2]uint64{}, names: map[int]string{}}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for c.out.Scan() {
		f := strings.Fields(c.out.Text())
		if len(f) == 1 && f[0] == "ready" {
			return c
		}
		if len(f) == 5 && f[0] == "thread" {
			tid, _ := strconv.Atoi(f[1])
			lo, _ := strconv.ParseUint(f[2], 0, 64)
			hi, _ := strconv.ParseUint(f[3], 0, 64)
			c.stacks[tid] = [2]uint64{lo, hi}
			c.names[tid] = f[4]
		}
	}
	t.Fatalf("child exited before it was ready: %v", c.out.Err())
	return nil
}

// say sends a line to the child and returns its answer.
func (c *child) say(t testing.TB, line string) string {
	t.Helper()
	done := make(chan string, 1)
	go func() {
		fmt.Fprintln(c.in, line)
		if c.out.Scan() {
			done <- c.out.Text()
		}
		close(done)
	}()
	select {
	case s := <-done:
		return s
	case <-time.After(10 * time.Second):
		t.Fatalf("the child does not answer %q (state %s)", line, procState(c.pid))
		return ""
	}
}

// checkRunning checks that the child is not traced and runs.
func (c *child) checkRunning(t testing.TB) {
	t.Helper()
	if tp := tracerPid(c.pid); tp != 0 {
		t.Errorf("the child is traced by %d after Close", tp)
	}
	if got := c.say(t, "ping"); got != "pong" {
		t.Errorf("the child answers ping with %q", got)
	}
}

// tracerPid returns the process that traces pid, or 0.
func tracerPid(pid int) int { return tracerOf(pid, pid) }

// waitBlocked waits until thread tid of the child is blocked in read(2).
func (c *child) waitBlocked(t testing.TB, tid int) {
	t.Helper()
	for i := 0; ; i++ {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/syscall", c.pid, tid))
		if strings.HasPrefix(string(b), "0 ") {
			return
		}
		if i == 5000 {
			t.Fatalf("thread %d is not blocked in read: %q", tid, b)
		}
		time.Sleep(time.Millisecond)
	}
}

func procState(pid int) string { return readStatus(pid, pid)["State"] }

// mapping is a line of /proc/PID/maps.
type mapping struct {
	start, end uint64
	perms      string
	path       string
}

func readMaps(t testing.TB, pid int) []mapping {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	var ms []mapping
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		lo, hi, _ := strings.Cut(f[0], "-")
		var m mapping
		m.start, _ = strconv.ParseUint(lo, 16, 64)
		m.end, _ = strconv.ParseUint(hi, 16, 64)
		m.perms = f[1]
		if len(f) > 5 {
			m.path = f[5]
		}
		ms = append(ms, m)
	}
	return ms
}

func find(ms []mapping, addr uint64) *mapping {
	for i := range ms {
		if addr >= ms[i].start && addr < ms[i].end {
			return &ms[i]
		}
	}
	return nil
}

func TestStopThreads(t *testing.T) {
	c := startChild(t, 4)
	s, err := Stop(c.pid, StopOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if st := procState(c.pid); !strings.HasPrefix(st, "t") {
		t.Errorf("stopped child's state is %q, want tracing stop", st)
	}
	if tp := tracerPid(c.pid); tp != os.Getpid() {
		t.Errorf("TracerPid = %d, want %d", tp, os.Getpid())
	}
	threads, err := s.Threads()
	if err != nil {
		t.Fatal(err)
	}
	if len(threads) != len(c.stacks) {
		t.Fatalf("%d threads %+v, want %d", len(threads), threads, len(c.stacks))
	}
	if threads[0].ID != c.pid {
		t.Errorf("first thread is %d, want the main thread %d", threads[0].ID, c.pid)
	}
	maps := readMaps(t, c.pid)
	for i, th := range threads {
		if i > 1 && th.ID < threads[i-1].ID {
			t.Errorf("threads out of order: %d after %d", th.ID, threads[i-1].ID)
		}
		want := c.names[th.ID]
		if want == "main" {
			want = "threads"
		}
		if th.Name != want || th.Err != nil || th.State == "" {
			t.Errorf("thread %d = %+v, want name %q, a state and no error", th.ID, th, want)
		}
		ctx := unwind.Context{ContextFlags: unwind.CONTEXT_FULL}
		if err := s.ThreadContext(th.ID, &ctx); err != nil {
			t.Errorf("thread %d: %v", th.ID, err)
			continue
		}
		if ctx.ContextFlags != unwind.CONTEXT_FULL|unwind.CONTEXT_SEGMENTS {
			t.Errorf("thread %d: ContextFlags = %#x", th.ID, ctx.ContextFlags)
		}
		if m := find(maps, ctx.Rip); m == nil || !strings.Contains(m.perms, "x") {
			t.Errorf("thread %d: rip %#x is not in an executable mapping (%+v)", th.ID, ctx.Rip, m)
		}
		if st := c.stacks[th.ID]; ctx.Rsp < st[0] || ctx.Rsp >= st[1] {
			t.Errorf("thread %d: rsp %#x is outside its stack [%#x, %#x)", th.ID, ctx.Rsp, st[0], st[1])
		}
		if ctx.FsBase == 0 || ctx.SegCs == 0 || ctx.SegSs == 0 || ctx.MxCsr == 0 {
			t.Errorf("thread %d: FsBase %#x cs %#x ss %#x mxcsr %#x", th.ID, ctx.FsBase, ctx.SegCs, ctx.SegSs, ctx.MxCsr)
		}
		// Without CONTEXT_FLOATING_POINT the XMM registers are left alone.
		ctx2 := unwind.Context{ContextFlags: unwind.CONTEXT_CONTROL, MxCsr: 7}
		if err := s.ThreadContext(th.ID, &ctx2); err != nil || ctx2.MxCsr != 7 || ctx2.Rip != ctx.Rip {
			t.Errorf("thread %d: control only: %v mxcsr %#x", th.ID, err, ctx2.MxCsr)
		}
	}
	// The memory under a thread's stack pointer reads as uncached reads do.
	p, err := Open(c.pid)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var ctx unwind.Context
	s.ThreadContext(c.pid, &ctx)
	got, want := make([]byte, 8192), make([]byte, 8192)
	n1, err1 := s.ReadMemory(got, ctx.Rsp)
	n2, err2 := p.ReadMemory(want, ctx.Rsp)
	if n1 != n2 || (err1 == nil) != (err2 == nil) || !bytes.Equal(got[:n1], want[:n2]) {
		t.Errorf("cached read: %d %v; uncached: %d %v", n1, err1, n2, err2)
	}
	if err := s.ThreadContext(1<<30, &ctx); err == nil {
		t.Error("ThreadContext of a thread that does not exist succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.Threads(); !errors.Is(err, ErrClosed) {
		t.Errorf("Threads after Close: %v", err)
	}
	if _, err := s.ReadMemory(got, ctx.Rsp); !errors.Is(err, ErrClosed) || !errors.Is(err, memory.ErrShortRead) {
		t.Errorf("ReadMemory after Close: %v", err)
	}
	c.checkRunning(t)
}

func TestStopRepeated(t *testing.T) {
	c := startChild(t, 2)
	n := 100
	if testing.Short() {
		n = 10
	}
	for i := range n {
		s, err := Stop(c.pid, StopOptions{})
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		var ctx unwind.Context
		if err := s.ThreadContext(c.pid, &ctx); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
	c.checkRunning(t)
}

// TestStopReady stops a process again while StopOptions.Ready says no,
// up to MaxRestops times, and lets it run in between.
func TestStopReady(t *testing.T) {
	c := startChild(t, 2)
	for _, tc := range []struct{ refuse, max, want int }{{0, 0, 0}, {3, 0, 3}, {10, 4, 4}} {
		asked := 0
		s, err := Stop(c.pid, StopOptions{MaxRestops: tc.max, Ready: func(s *Stopped) bool {
			// Each time, the process is stopped: its registers can be read.
			var ctx unwind.Context
			if err := s.ThreadContext(c.pid, &ctx); err != nil {
				t.Errorf("ready %d: %v", asked, err)
			}
			asked++
			return asked > tc.refuse
		}})
		if err != nil {
			t.Fatal(err)
		}
		if s.Restops() != tc.want {
			t.Errorf("refusing %d times with MaxRestops %d: %d restops, want %d", tc.refuse, tc.max, s.Restops(), tc.want)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	c.checkRunning(t)
}

// TestStackWalk follows the frame-pointer chain of the child's "deep"
// thread through 64 frames and counts the system calls it costs.
func TestStackWalk(t *testing.T) {
	c := startChild(t, 1)
	tid := 0
	for id, name := range c.names {
		if name == "deep" {
			tid = id
		}
	}
	c.waitBlocked(t, tid)
	s, err := Stop(c.pid, StopOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var ctx unwind.Context
	if err := s.ThreadContext(tid, &ctx); err != nil {
		t.Fatal(err)
	}
	maps := readMaps(t, c.pid)
	exe := find(maps, ctx.Rip)
	if exe == nil || !strings.HasSuffix(exe.path, "/threads") {
		t.Fatalf("deep thread's rip %#x is not in the child's code (%+v)", ctx.Rip, exe)
	}
	before := s.Stats()
	fp := ctx.Rbp
	var b [16]byte
	for i := range 64 {
		if _, err := s.ReadMemory(b[:], fp); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		next, ret := binary.LittleEndian.Uint64(b[:]), binary.LittleEndian.Uint64(b[8:])
		if m := find(maps, ret); m == nil || !strings.Contains(m.perms, "x") {
			t.Fatalf("frame %d: return address %#x is not in code", i, ret)
		}
		// Read the call instruction's bytes too, as an unwinder would.
		if _, err := s.ReadMemory(b[:5], ret-5); err != nil {
			t.Fatalf("frame %d: code at %#x: %v", i, ret-5, err)
		}
		if next <= fp {
			t.Fatalf("frame %d: frame pointer %#x does not grow (%#x)", i, next, fp)
		}
		fp = next
	}
	st := s.Stats()
	calls := st.Syscalls - before.Syscalls
	t.Logf("64 frames: %d reads, %d process_vm_readv calls, %d pages, %d hits", st.Reads-before.Reads, calls, st.Pages-before.Pages, st.Hits-before.Hits)
	if calls > 3 {
		t.Errorf("a 64-frame walk cost %d process_vm_readv calls, want ≤ 3", calls)
	}
}

func TestReadMemory(t *testing.T) {
	c := startChild(t, 1)
	for _, ra := range []int{0, 1, 4} {
		t.Run(fmt.Sprintf("readahead=%d", ra), func(t *testing.T) {
			s, err := Stop(c.pid, StopOptions{ReadAhead: ra})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var ctx unwind.Context
			s.ThreadContext(c.pid, &ctx)
			st := c.stacks[c.pid]
			if m := find(readMaps(t, c.pid), ctx.Rsp); m != nil {
				st[1] = m.end // pthread_getattr_np's main stack ends below the mapping's end
			}
			// Words from rsp to the top of the main stack, one at a time.
			top := min(st[1], ctx.Rsp+40*1024)
			var w [8]byte
			for a := ctx.Rsp; a+8 <= top; a += 8 {
				if _, err := s.ReadMemory(w[:], a); err != nil {
					t.Fatalf("read at %#x: %v", a, err)
				}
			}
			pages := (top-1)/cachePage - ctx.Rsp/cachePage + 1
			window := uint64(ra)
			if ra == 0 {
				window = DefaultReadAhead
			}
			stats := s.Stats()
			if want := (pages + window - 1) / window; stats.Syscalls != want {
				t.Errorf("%d pages read in %d calls, want %d (%+v)", pages, stats.Syscalls, want, stats)
			}
			// Unmapped memory, from the start and part way.
			var ue *memory.UnmappedError
			for _, a := range []uint64{0, 0x1000, 0xffff800000000000, 0xfffffffffffffff8} {
				if n, err := s.ReadMemory(w[:], a); n != 0 || !errors.As(err, &ue) || ue.Addr != a || !errors.Is(err, memory.ErrShortRead) {
					t.Errorf("read at %#x: %d, %v", a, n, err)
				}
			}
			if st[1] == 0 {
				return
			}
			// The main stack's top is followed by an unmapped page on x86-64 Linux.
			if m := find(readMaps(t, c.pid), st[1]); m != nil {
				t.Skipf("the page after the stack is mapped: %+v", m)
			}
			big := make([]byte, 64)
			n, err := s.ReadMemory(big, st[1]-16)
			if n != 16 || !errors.As(err, &ue) || ue.Addr != st[1] {
				t.Errorf("read across the stack's top: %d, %v", n, err)
			}
		})
	}
}

// TestPrefetchResume prefetches the main thread's stack, resumes the
// process and reads the stack back as it was when stopped.
func TestPrefetchResume(t *testing.T) {
	c := startChild(t, 1)
	s, err := Stop(c.pid, StopOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var ctx unwind.Context
	if err := s.ThreadContext(c.pid, &ctx); err != nil {
		t.Fatal(err)
	}
	maps := readMaps(t, c.pid)
	m := find(maps, ctx.Rsp)
	if m == nil {
		t.Fatalf("no mapping holds rsp %#x", ctx.Rsp)
	}
	lo, hi := ctx.Rsp, m.end
	pages := (hi-1)/cachePage - lo/cachePage + 1

	// A word read first: its pages are not fetched again.
	var w [8]byte
	if _, err := s.ReadMemory(w[:], lo); err != nil {
		t.Fatal(err)
	}
	before := s.Stats()
	n, err := s.Prefetch([][2]uint64{{lo, hi}})
	if err != nil || len(n) != 1 || n[0] != hi-lo {
		t.Fatalf("Prefetch(%#x, %#x) = %#x, %v; want %#x", lo, hi, n, err, hi-lo)
	}
	after := s.Stats()
	if calls, most := after.Syscalls-before.Syscalls, (pages+maxReadAhead-1)/maxReadAhead; calls > most {
		t.Errorf("Prefetch of %d pages made %d calls, want at most %d", pages, calls, most)
	}
	if after.Pages < pages {
		t.Errorf("%d pages fetched in all, want at least the %d of the range", after.Pages, pages)
	}
	again := s.Stats()
	if n, err := s.Prefetch([][2]uint64{{lo, hi}}); err != nil || n[0] != hi-lo || s.Stats().Syscalls != again.Syscalls {
		t.Errorf("second Prefetch: %#x, %v, %d calls", n, err, s.Stats().Syscalls-again.Syscalls)
	}
	// Pages of mappings apart from each other, and one unmapped in the
	// middle, in one call: what follows the unmapped page is read too.
	var text *mapping
	for i := range maps {
		if maps[i].perms[0] == 'r' && maps[i].end-maps[i].start >= 2*cachePage && find(maps, maps[i].start-cachePage) == nil {
			text = &maps[i]
			break
		}
	}
	if text == nil {
		t.Log("no mapping after an unmapped page: the scattered prefetch is not tried")
	} else {
		rs := [][2]uint64{{text.start - cachePage, text.start + cachePage}, {text.start + cachePage + 8, text.start + cachePage + 24}, {0x1000, 0x1010}}
		b := s.Stats()
		n, err := s.Prefetch(rs)
		if err != nil || n[0] != 0 || n[1] != 16 || n[2] != 0 {
			t.Errorf("Prefetch(%#x) = %#x, %v; want [0 16 0]", rs, n, err)
		}
		// The unmapped pages end their calls: at most one call each, and
		// one for the rest.
		if calls := s.Stats().Syscalls - b.Syscalls; calls > 3 {
			t.Errorf("Prefetch of scattered pages made %d calls, want at most 3", calls)
		}
		var w0 [8]byte
		if _, err := s.ReadMemory(w0[:], text.start+cachePage+8); err != nil {
			t.Errorf("read of a prefetched page: %v", err)
		}
	}
	if find(maps, hi) == nil {
		// The stack's top is followed by an unmapped page: a range across
		// it is readable up to the top.
		if n, err := s.Prefetch([][2]uint64{{hi - 16, hi + 2*cachePage}}); err != nil || n[0] != 16 {
			t.Errorf("Prefetch across the stack's top: %d, %v; want 16", n, err)
		}
	}
	want := make([]byte, hi-lo)
	if _, err := s.ReadMemory(want, lo); err != nil {
		t.Fatal(err)
	}

	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	c.checkRunning(t)
	got := make([]byte, hi-lo)
	if _, err := s.ReadMemory(got, lo); err != nil || !bytes.Equal(got, want) {
		t.Errorf("the stack read after Resume differs from the one read before (err %v)", err)
	}
	// Memory not read while stopped is not read now.
	var other uint64
	for _, mm := range maps {
		if mm.perms[0] == 'r' && (mm.end <= lo&^(cachePage-1) || mm.start >= hi+maxReadAhead*cachePage) {
			other = mm.start
			break
		}
	}
	if _, err := s.ReadMemory(w[:], other); !errors.Is(err, ErrResumed) || !errors.Is(err, memory.ErrShortRead) {
		t.Errorf("read at %#x after Resume: %v, want ErrResumed", other, err)
	}
	if _, err := s.Prefetch([][2]uint64{{other, other + cachePage}}); !errors.Is(err, ErrResumed) {
		t.Errorf("Prefetch after Resume: %v, want ErrResumed", err)
	}
	if err := s.Resume(); err != nil {
		t.Errorf("second Resume: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close after Resume: %v", err)
	}
	if _, err := s.ReadMemory(w[:], lo); !errors.Is(err, ErrClosed) {
		t.Errorf("read after Close: %v, want ErrClosed", err)
	}
}

// TestReadGone reads a process killed while stopped.
func TestReadGone(t *testing.T) {
	c := startChild(t, 1)
	s, err := Stop(c.pid, StopOptions{ReadAhead: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var ctx unwind.Context
	if err := s.ThreadContext(c.pid, &ctx); err != nil {
		t.Fatal(err)
	}
	var w [8]byte
	if _, err := s.ReadMemory(w[:], ctx.Rsp); err != nil {
		t.Fatal(err)
	}
	killAndWaitZombie(t, c)
	// Cached pages still read; others say the target is gone.
	if _, err := s.ReadMemory(w[:], ctx.Rsp); err != nil {
		t.Errorf("cached read after the kill: %v", err)
	}
	_, err = s.ReadMemory(w[:], ctx.Rip)
	if !errors.Is(err, memory.ErrTargetGone) || !errors.Is(err, memory.ErrShortRead) {
		t.Errorf("read of a killed process: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close of a killed process: %v", err)
	}
	// Close reaped the traced threads, so the parent can reap the child.
	if err := c.cmd.Wait(); err == nil {
		t.Error("the killed child exited with status 0")
	}
}

// killAndWaitZombie kills the child and waits until it is a zombie.
func killAndWaitZombie(t *testing.T, c *child) {
	t.Helper()
	c.cmd.Process.Kill()
	for i := 0; !strings.HasPrefix(procState(c.pid), "Z"); i++ {
		if i == 5000 {
			t.Fatalf("the killed child did not die: %q", procState(c.pid))
		}
		time.Sleep(time.Millisecond)
	}
}

func TestStopErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		pid  int
		want error
	}{
		{"zero", 0, nil},
		{"negative", -1, nil},
		{"self", os.Getpid(), nil},
		{"no such process", 1 << 30, ErrNoProcess},
	} {
		s, err := Stop(c.pid, StopOptions{})
		if err == nil {
			s.Close()
			t.Errorf("%s: Stop(%d) succeeded", c.name, c.pid)
			continue
		}
		if c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		t.Logf("%s: %v", c.name, err)
	}
}

func TestStopKernelThread(t *testing.T) {
	st, err := readStat(2, 2)
	if err != nil || st.flags&pfKthread == 0 {
		t.Skipf("pid 2 is not a kernel thread here (kthreadd is not in this pid namespace): %+v %v", st, err)
	}
	_, err = Stop(2, StopOptions{})
	if !errors.Is(err, ErrKernelThread) {
		t.Fatalf("Stop(2) = %v, want ErrKernelThread", err)
	}
	t.Log(err)
}

func TestStopZombie(t *testing.T) {
	cmd := exec.Command("/bin/true")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	defer cmd.Wait()
	pid := cmd.Process.Pid
	for i := 0; ; i++ {
		if strings.HasPrefix(procState(pid), "Z") {
			break
		}
		if i == 1000 {
			t.Fatalf("the child did not become a zombie: %q", procState(pid))
		}
		time.Sleep(time.Millisecond)
	}
	_, err := Stop(pid, StopOptions{})
	if !errors.Is(err, ErrZombie) {
		t.Fatalf("Stop of a zombie = %v, want ErrZombie", err)
	}
	t.Log(err)
	if err := cmd.Wait(); err != nil {
		t.Errorf("the zombie's exit status was lost: %v", err)
	}
}

// startHelper starts the test binary as a helper that stops pid.
func startHelper(t *testing.T, exe string, pid int, cred *syscall.Credential) (*exec.Cmd, io.WriteCloser, *bufio.Scanner, *bytes.Buffer) {
	t.Helper()
	return startHelperMode(t, "stop", exe, pid, cred)
}

// startHelperMode is startHelper with the helper's mode (see helperEnv).
func startHelperMode(t *testing.T, mode, exe string, pid int, cred *syscall.Credential) (*exec.Cmd, io.WriteCloser, *bufio.Scanner, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperPidEnv+"="+strconv.Itoa(pid))
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		cmd.Wait()
		t.Fatalf("the helper printed nothing: %s", stderr.String())
	}
	return cmd, in, sc, &stderr
}

func TestStopTraced(t *testing.T) {
	c := startChild(t, 1)
	helper, in, out, _ := startHelper(t, os.Args[0], c.pid, nil)
	if out.Text() != "stopped" {
		t.Fatalf("helper: %s", out.Text())
	}
	_, err := Stop(c.pid, StopOptions{})
	var te *TracedError
	if !errors.As(err, &te) || te.TracerPid != helper.Process.Pid || te.Pid != c.pid {
		t.Fatalf("Stop of a traced process = %v, want a TracedError naming %d", err, helper.Process.Pid)
	}
	t.Log(err)
	in.Close()
	if err := helper.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	c.checkRunning(t)

	// Traced by this process.
	s, err := Stop(c.pid, StopOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err = Stop(c.pid, StopOptions{}); !errors.As(err, &te) || te.TracerPid != os.Getpid() || !strings.Contains(err.Error(), "this process") {
		t.Errorf("second Stop = %v", err)
	}
}

func TestStopPermission(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: drops privileges in a helper")
	}
	u := 65534 // nobody
	c := startChild(t, 1)
	// The helper runs as nobody: copy the test binary where it can run it.
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/" && d != "."; d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	exe := filepath.Join(dir, "live.test")
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	_, _, out, stderr := startHelper(t, exe, c.pid, &syscall.Credential{Uid: uint32(u), Gid: uint32(u)})
	line := out.Text()
	if !strings.HasPrefix(line, "error permission: ") {
		t.Fatalf("helper as uid %d: %q (stderr %s)", u, line, stderr)
	}
	t.Log(line)
	scope := ptraceScope()
	if scope < 0 && !strings.Contains(line, "no Yama") || scope >= 0 && !strings.Contains(line, "ptrace_scope is "+strconv.Itoa(scope)) {
		t.Errorf("the error does not explain ptrace_scope (%d): %s", scope, line)
	}
	if !strings.Contains(line, "CAP_SYS_PTRACE") {
		t.Errorf("the error does not name CAP_SYS_PTRACE: %s", line)
	}
	if !errors.Is(&PermissionError{Err: unix.EPERM}, fs.ErrPermission) {
		t.Error("a PermissionError does not match fs.ErrPermission")
	}
	c.checkRunning(t)
}

// TestThreadExitsDuringStop makes a thread exit just before it is seized:
// it is listed with ErrThreadGone, the others are stopped.
func TestThreadExitsDuringStop(t *testing.T) {
	c := startChild(t, 3)
	var victim int
	for tid, name := range c.names {
		if name == "worker-1" {
			victim = tid
		}
	}
	// /proc/PID/task has been listed; before the first thread (the main
	// one, which serves the child's input) is seized, the victim exits.
	testHookSeize = func(tid int) {
		if tid != c.pid {
			return
		}
		if got := c.say(t, "exit 1"); got != "exited 1" {
			t.Errorf("child: %q", got)
		}
	}
	defer func() { testHookSeize = nil }()
	s, err := Stop(c.pid, StopOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	threads, _ := s.Threads()
	gone := 0
	for _, th := range threads {
		var ctx unwind.Context
		err := s.ThreadContext(th.ID, &ctx)
		switch {
		case th.ID == victim:
			gone++
			if !errors.Is(th.Err, ErrThreadGone) || !errors.Is(th.Err, memory.ErrTargetGone) || !errors.Is(err, ErrThreadGone) {
				t.Errorf("the exited thread: Err %v, ThreadContext %v", th.Err, err)
			}
		case th.Err != nil || err != nil:
			t.Errorf("thread %d: Err %v, ThreadContext %v", th.ID, th.Err, err)
		}
	}
	if gone != 1 {
		t.Errorf("the exited thread is not listed: %+v", threads)
	}
	s.Close()
	c.checkRunning(t)
}

// TestThreadChurn stops a process that creates and ends threads all the
// time: every thread is either stopped or listed as gone.
func TestThreadChurn(t *testing.T) {
	c := startChild(t, 1, "churn")
	for i := range 50 {
		s, err := Stop(c.pid, StopOptions{})
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		threads, _ := s.Threads()
		for _, th := range threads {
			var ctx unwind.Context
			err := s.ThreadContext(th.ID, &ctx)
			if th.Err != nil && (!errors.Is(th.Err, ErrThreadGone) || !errors.Is(err, memory.ErrTargetGone)) {
				t.Errorf("round %d: thread %d: %v / %v", i, th.ID, th.Err, err)
			}
			if th.Err == nil && (err != nil || ctx.Rip == 0) {
				t.Errorf("round %d: thread %d: %v", i, th.ID, err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
	c.checkRunning(t)
}

// TestProcessExitsDuringStop stops processes as they exit: Stop either
// succeeds or says the process is gone, and the exit status stays for
// the parent.
func TestProcessExitsDuringStop(t *testing.T) {
	for i := range 20 {
		c := startChild(t, 2)
		c.in.Close() // the child exits now
		time.Sleep(time.Duration(i*20) * time.Microsecond)
		s, err := Stop(c.pid, StopOptions{})
		if err == nil {
			s.Close()
		} else if !errors.Is(err, ErrNoProcess) && !errors.Is(err, ErrZombie) {
			t.Errorf("round %d: %v", i, err)
		}
		if err := c.cmd.Wait(); err != nil {
			t.Errorf("round %d: the child's exit status: %v", i, err)
		}
	}
}

// TestSignal stops the child from a helper and sends the helper SIGTERM:
// the helper resumes the child, then dies of the signal.
func TestSignal(t *testing.T) {
	c := startChild(t, 2)
	helper, _, out, stderr := startHelper(t, os.Args[0], c.pid, nil)
	if out.Text() != "stopped" {
		t.Fatalf("helper: %s", out.Text())
	}
	if tp := tracerPid(c.pid); tp != helper.Process.Pid {
		t.Fatalf("TracerPid %d, want the helper %d", tp, helper.Process.Pid)
	}
	helper.Process.Signal(syscall.SIGTERM)
	err := helper.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Errorf("the helper ended with %v, want death by SIGTERM", err)
	}
	if !strings.Contains(stderr.String(), "resuming process "+strconv.Itoa(c.pid)) {
		t.Errorf("the helper's handler did not run: %q", stderr.String())
	}
	c.checkRunning(t)
}

// TestTracerDies stops the child from a helper that installs no signal
// handler (StopOptions.LazySignalHandler, as the fntable command stops
// processes, on a stop that holds no signal) and kills the helper with each
// signal a tool dies of: the kernel detaches every stopped thread, and the
// child runs on untraced.
func TestTracerDies(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			c := startChild(t, 3)
			helper, _, out, stderr := startHelperMode(t, "stop-lazy", os.Args[0], c.pid, nil)
			if out.Text() != "stopped" || !out.Scan() || out.Text() != "handler false" {
				t.Fatalf("helper: %s", out.Text())
			}
			if tp := tracerPid(c.pid); tp != helper.Process.Pid {
				t.Fatalf("TracerPid %d, want the helper %d", tp, helper.Process.Pid)
			}
			tids := taskStates(t, c.pid)
			for tid, st := range tids {
				if st != "t" {
					t.Fatalf("thread %d is in state %q while stopped, want t", tid, st)
				}
			}
			helper.Process.Signal(sig)
			err := helper.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != sig {
				t.Errorf("the helper ended with %v, want death by %v", err, sig)
			}
			if strings.Contains(stderr.String(), "resuming") {
				t.Errorf("a handler ran: %q", stderr.String())
			}
			for tid, st := range taskStates(t, c.pid) {
				if st == "t" {
					t.Errorf("thread %d is still in a tracing stop", tid)
				}
			}
			c.checkRunning(t)
		})
	}
}

// TestLazyHandlerHeldSignal sends the child's main thread SIGTERM between
// its seize and its interrupt, from a helper that stops it with
// StopOptions.LazySignalHandler: the stop holds the signal, so the handler
// is installed, and when the helper gets SIGTERM its handler detaches the
// thread with the signal, which then ends the child as it would have
// without the stop. (Without a handler, the kernel's detach at the
// helper's death would drop it.)
func TestLazyHandlerHeldSignal(t *testing.T) {
	c := startChild(t, 2)
	helper, _, out, stderr := startHelperMode(t, "stop-lazy-held", os.Args[0], c.pid, nil)
	if out.Text() != "stopped" || !out.Scan() || out.Text() != "handler true" {
		t.Fatalf("helper: %s (%s)", out.Text(), stderr.String())
	}
	helper.Process.Signal(syscall.SIGTERM)
	helper.Wait()
	c.waitTerminated(t, "the SIGTERM it was sent while being stopped was lost ("+stderr.String()+")")
}

// TestSignalBetweenSeizeAndInterrupt sends the child's main thread
// SIGTERM after its seize and lets it take the signal before the
// interrupt: the thread stops to report the signal (a
// signal-delivery-stop), and Close delivers it on detaching, so the child
// ends of it as it would have without the stop.
func TestSignalBetweenSeizeAndInterrupt(t *testing.T) {
	c := startChild(t, 2)
	testHookSeized = termBeforeInterrupt(c.pid)
	defer func() { testHookSeized = nil }()
	s, err := Stop(c.pid, StopOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !s.holdsSignal() {
		t.Error("the stop does not hold the signal")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	c.waitTerminated(t, "Close dropped the SIGTERM it was sent while being stopped")
}

// termBeforeInterrupt is a testHookSeized that sends thread pid (the main
// thread of process pid) SIGTERM and lets it take the signal, and stop to
// report it, before the interrupt: else the interrupt's stop comes first
// and the signal stays queued.
func termBeforeInterrupt(pid int) func(tid int) {
	return func(tid int) {
		if tid != pid {
			return
		}
		unix.Tgkill(pid, tid, unix.SIGTERM)
		for range 1000 {
			if st, err := readStat(pid, tid); err == nil && st.state == 't' {
				return
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
}

// waitTerminated waits for the child to die of the SIGTERM it was sent;
// lost says what went wrong if it still runs after 10 s.
func (c *child) waitTerminated(t *testing.T, lost string) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
			t.Errorf("the child ended with %v, want death by the SIGTERM it was sent", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the child still runs: " + lost)
	}
}

// taskStates returns the state letter of every thread of pid.
func taskStates(t *testing.T, pid int) map[int]string {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	states := map[int]string{}
	for _, e := range ents {
		tid, _ := strconv.Atoi(e.Name())
		if st := readStatus(pid, tid)["State"]; st != "" {
			states[tid] = st[:1]
		}
	}
	return states
}

func TestStopRace(t *testing.T) {
	c := startChild(t, 4)
	s, err := Stop(c.pid, StopOptions{})
	if err != nil {
		t.Fatal(err)
	}
	threads, _ := s.Threads()
	var wg sync.WaitGroup
	for _, th := range threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				ctx := unwind.Context{ContextFlags: unwind.CONTEXT_FULL}
				if err := s.ThreadContext(th.ID, &ctx); err != nil {
					if !errors.Is(err, ErrClosed) {
						t.Error(err)
					}
					return
				}
				b := make([]byte, 8192)
				if _, err := s.ReadMemory(b, ctx.Rsp&^7); err != nil && !errors.Is(err, memory.ErrShortRead) {
					t.Error(err)
				}
				runtime.Gosched()
			}
		}()
	}
	go s.Close()
	wg.Wait()
	s.Close()
	c.checkRunning(t)
}

// TestStopPanic panics on the tracer thread in the middle of a stop: Stop
// fails, and the threads seized before the panic are detached.
func TestStopPanic(t *testing.T) {
	c := startChild(t, 3)
	n := 0
	testHookSeize = func(tid int) {
		if n++; n == 3 {
			panic("injected")
		}
	}
	defer func() { testHookSeize = nil }()
	s, err := Stop(c.pid, StopOptions{})
	if err == nil || !strings.Contains(err.Error(), "injected") {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Stop with a panic on the tracer thread = %v", err)
	}
	t.Log(err)
	c.checkRunning(t)
}

// TestTracerOffMainThread checks that a tracer whose goroutine starts on
// the main thread (made so by the test hook) moves to another thread
// before it serves: the runtime never ends the main thread, so a tracer
// there would keep the threads it could not detach (a killed process's)
// as zombies, and their process's parent would wait for them forever.
// Then a killed target is reaped by its parent after Close.
func TestTracerOffMainThread(t *testing.T) {
	var first int
	testHookMainThread = func() bool { first = unix.Gettid(); return true }
	defer func() { testHookMainThread = nil }()
	tr := newTracer()
	var served int
	if err := tr.do(func() error { served = unix.Gettid(); return nil }); err != nil {
		t.Fatal(err)
	}
	tr.stop()
	if served == 0 || served == first {
		t.Errorf("tracer started on thread %d serves on %d", first, served)
	}

	// The same through Stop, with the idle tracer set aside.
	setIdleTracerAside(t)
	c := startChild(t, 2)
	s, err := Stop(c.pid, StopOptions{})
	if err != nil {
		t.Fatal(err)
	}
	killAndWaitZombie(t, c)
	s.Close()
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the killed child's parent still cannot reap it 10 s after Close")
	}
}

// TestPrepare checks that Prepare starts a tracer that the next Stop
// takes, that its thread is already running before that Stop (so that
// the Stop does not wait for it), and that the Stop works through it.
func TestPrepare(t *testing.T) {
	setIdleTracerAside(t)
	Prepare()
	prepared := idleTracerNow()
	if prepared == nil {
		t.Fatal("Prepare left no idle tracer")
	}
	Prepare() // again: keeps the one there
	if idleTracerNow() != prepared {
		t.Fatal("a second Prepare replaced the idle tracer")
	}
	// Its thread serves requests, and is not the main thread.
	var served int
	if err := prepared.do(func() error { served = unix.Gettid(); return nil }); err != nil {
		t.Fatal(err)
	}
	if served == 0 || served == unix.Getpid() {
		t.Fatalf("the prepared tracer serves on thread %d", served)
	}

	c := startChild(t, 2)
	s, err := Stop(c.pid, StopOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s.tr != prepared {
		t.Error("Stop started a tracer of its own instead of the prepared one")
	}
	var tracer int
	if err := s.tr.do(func() error { tracer = unix.Gettid(); return nil }); err != nil {
		t.Fatal(err)
	}
	// TracerPid names the tracing thread itself.
	if tp, _ := strconv.Atoi(readStatus(c.pid, c.pid)["TracerPid"]); tp != tracer {
		t.Errorf("the child's tracer is %d, want the prepared thread %d", tp, tracer)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	c.checkRunning(t)
}

// setIdleTracerAside empties the idle tracer's place for the test and puts
// the tracer that was there back when it ends.
func setIdleTracerAside(t *testing.T) {
	idleTracer.mu.Lock()
	idle := idleTracer.tr
	idleTracer.tr = nil
	idleTracer.mu.Unlock()
	t.Cleanup(func() { putTracer(idle) })
}

// idleTracerNow returns the idle tracer, or nil.
func idleTracerNow() *tracer {
	idleTracer.mu.Lock()
	defer idleTracer.mu.Unlock()
	return idleTracer.tr
}

// TestStopJobStopped: a process stopped by SIGSTOP shows as stopped, not
// as sleeping in its system call, and is still stopped, and untraced,
// after the stop ends.
func TestStopJobStopped(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	pid := cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	for i := 0; !strings.HasPrefix(procState(pid), "T"); i++ {
		if i == 1000 {
			t.Fatalf("the child did not stop: %q", procState(pid))
		}
		time.Sleep(time.Millisecond)
	}
	s, err := Stop(pid, StopOptions{})
	if err != nil {
		t.Fatal(err)
	}
	threads, err := s.Threads()
	if err != nil {
		t.Fatal(err)
	}
	if len(threads) != 1 || threads[0].State != "T (stopped)" {
		t.Errorf("threads %+v, want one in state T (stopped)", threads)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Detached, it runs for an instant to enter its group-stop again.
	for i := 0; !strings.HasPrefix(procState(pid), "T"); i++ {
		if i == 2000 {
			t.Fatalf("after the stop the process is %q, want it stopped still", procState(pid))
		}
		time.Sleep(time.Millisecond)
	}
	if tp := tracerPid(pid); tp != 0 {
		t.Errorf("TracerPid %d after the stop", tp)
	}
}

func TestCheck(t *testing.T) {
	if err := Check(os.Getpid()); err != nil {
		t.Errorf("Check(self) = %v", err)
	}
	if err := Check(1 << 30); !errors.Is(err, ErrNoProcess) || strings.Contains(err.Error(), "/proc") {
		t.Errorf("Check(no such pid) = %v, want ErrNoProcess and no /proc path", err)
	}
	if err := Check(0); err == nil {
		t.Error("Check(0) succeeded")
	}
	if st, err := readStat(2, 2); err == nil && st.flags&pfKthread != 0 {
		if err := Check(2); !errors.Is(err, ErrKernelThread) {
			t.Errorf("Check(2) = %v, want ErrKernelThread", err)
		}
	}
}
