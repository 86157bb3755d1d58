package stackwalk_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fntable/fntable/cfi"
	"github.com/fntable/fntable/internal/testproc"
	"github.com/fntable/fntable/stackwalk"
	"github.com/fntable/fntable/target"
	"github.com/fntable/fntable/target/live"
	"github.com/fntable/fntable/unwind"
)

// stack is one thread's walk.
type stack struct {
	frames []stackwalk.Frame
	err    error
}

// walkLive stops process pid, walks every thread and resumes it; then it
// checks that the process is no longer traced.
func walkLive(t *testing.T, pid int, cache *cfi.Cache) (map[int]stack, []target.Thread) {
	t.Helper()
	st, err := live.Stop(pid, live.StopOptions{Logf: t.Logf})
	if err != nil {
		t.Fatalf("stop %d: %v", pid, err)
	}
	defer st.Close()
	src, err := stackwalk.NewSources(st, stackwalk.Options{CFI: cache, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	threads, err := st.Threads()
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]stack{}
	for _, th := range threads {
		if th.Err != nil {
			out[th.ID] = stack{err: th.Err}
			continue
		}
		w := src.WalkThread(th.ID)
		var s stack
		for w.Next() {
			s.frames = append(s.frames, w.Frame())
		}
		s.err = w.Err()
		out[th.ID] = s
	}
	if err := st.Close(); err != nil {
		t.Fatalf("resume %d: %v", pid, err)
	}
	checkRunsOn(t, pid)
	return out, threads
}

// checkRunsOn checks that process pid is not traced and not stopped.
func checkRunsOn(t *testing.T, pid int) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && f[0] == "TracerPid:" && f[1] != "0":
			t.Errorf("process %d is still traced after the walk: %s", pid, line)
		case len(f) >= 2 && f[0] == "State:" && (f[1] == "t" || f[1] == "T"):
			t.Errorf("process %d is still stopped after the walk: %s", pid, line)
		}
	}
}

func formatFrames(fs []stackwalk.Frame) string {
	var b strings.Builder
	for i, f := range fs {
		fmt.Fprintf(&b, "\n  #%-2d pc %#x sp %#x cfa %#x %s", i, f.PC, f.SP, f.CFA, f.How)
	}
	return b.String()
}

// compareGDB compares one thread's walk with gdb's physical frames:
// every frame gdb unwound must be ours, in the same place, with the same
// PC and SP. It returns how many frames were compared.
func compareGDB(t *testing.T, tid int, ours stack, gdb []testproc.OracleFrame) int {
	t.Helper()
	phys := testproc.Physical(gdb)
	n := 0
	for i, g := range phys {
		if g.PC == 0 {
			break // gdb's end of a Go stack, or the end of what it could read
		}
		if i >= len(ours.frames) {
			t.Errorf("thread %d: gdb has frame #%d %s at pc %#x, our walk ended after %d frames (%v):%s\ngdb:\n%s",
				tid, i, g.Func, g.PC, len(ours.frames), ours.err, formatFrames(ours.frames), testproc.Format(phys))
			return n
		}
		f := ours.frames[i]
		if f.PC != g.PC || (g.SP != 0 && f.SP != g.SP) {
			t.Errorf("thread %d frame #%d (%s): ours pc %#x sp %#x, gdb pc %#x sp %#x:%s\ngdb:\n%s",
				tid, i, g.Func, f.PC, f.SP, g.PC, g.SP, formatFrames(ours.frames), testproc.Format(phys))
			return n
		}
		n++
	}
	return n
}

func TestLiveC(t *testing.T) {
	for _, v := range testproc.CVariants() {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			bin := testproc.BuildC(t, v)
			p := testproc.Start(t, bin, "-n", "3", "-d", "7", "-s")
			ours, threads := walkLive(t, p.Pid, nil)
			if len(threads) != len(p.Threads) {
				t.Errorf("stopped %d threads, the process announced %d", len(threads), len(p.Threads))
			}
			gdb, err := testproc.GDBStacks(t, p.Pid)
			if err != nil {
				t.Fatal(err)
			}
			compared := 0
			for tid, role := range p.Threads {
				s := ours[tid]
				if s.err != nil {
					t.Errorf("thread %d (%s): walk ended with %v after %d frames:%s", tid, role, s.err, len(s.frames), formatFrames(s.frames))
				}
				g := testproc.Physical(gdb[tid])
				if len(g) == 0 || g[len(g)-1].Stop != "outermost" {
					t.Errorf("thread %d (%s): gdb's stack is incomplete:\n%s", tid, role, testproc.Format(g))
					continue
				}
				compared += compareGDB(t, tid, s, gdb[tid])
				// gdb's stack is complete: ours has exactly its frames.
				if len(s.frames) != len(g) {
					t.Errorf("thread %d (%s): %d frames, gdb %d:%s\ngdb:\n%s", tid, role, len(s.frames), len(g), formatFrames(s.frames), testproc.Format(g))
				}
				for i, f := range s.frames {
					want := stackwalk.HowCFI
					if i == 0 {
						want = stackwalk.HowContext
					}
					if f.How != want {
						t.Errorf("thread %d frame %d found by %s, want %s", tid, i, f.How, want)
					}
				}
			}
			t.Logf("%s: %d threads, %d frames equal to gdb's (pc and sp)", v, len(p.Threads), compared)
		})
	}
}

func TestLiveGo(t *testing.T) {
	p := testproc.Start(t, testproc.BuildGo(t))
	ours, _ := walkLive(t, p.Pid, nil)
	gdb, err := testproc.GDBStacks(t, p.Pid)
	if err != nil {
		t.Fatal(err)
	}
	for tid := range p.Threads {
		n := compareGDB(t, tid, ours[tid], gdb[tid])
		frames := ours[tid].frames
		if n < 10 || len(frames) < n {
			t.Fatalf("thread %d: only %d frames compared", tid, n)
		}
		t.Logf("thread %d: %d frames equal to gdb's", tid, n)
	}
	// Every thread of the Go runtime ends where Go's own traceback does
	// (runtime.goexit, runtime.mstart), without an error.
	for tid, s := range ours {
		if s.err != nil {
			t.Errorf("thread %d: walk ended with %v:%s", tid, s.err, formatFrames(s.frames))
		}
	}
}

// TestLiveJIT walks through generated code that only the published
// function table describes: gdb stops there, the walk goes on to the
// thread's start.
func TestLiveJIT(t *testing.T) {
	p := testproc.Start(t, testproc.BuildJIT(t))
	ours, _ := walkLive(t, p.Pid, nil)
	gdb, err := testproc.GDBStacks(t, p.Pid)
	if err != nil {
		t.Fatal(err)
	}
	jitName := func(pc uint64) string {
		for _, f := range p.JIT {
			if f.Contains(pc) {
				return f.Name
			}
		}
		return ""
	}
	want := map[string][]string{
		"jit-pause":    {"jit_a3", "jit_a2", "jit_a1", "", "", ""},
		"jit-callback": {"", "", "jit_b3", "jit_b2", "jit_b1", "", "", ""},
	}
	for tid, role := range p.Threads {
		s := ours[tid]
		w, ok := want[role]
		if !ok {
			continue
		}
		if s.err != nil {
			t.Errorf("thread %d (%s): walk ended with %v:%s", tid, role, s.err, formatFrames(s.frames))
		}
		if len(s.frames) != len(w) {
			t.Errorf("thread %d (%s): %d frames, want %d:%s", tid, role, len(s.frames), len(w), formatFrames(s.frames))
			continue
		}
		for i, f := range s.frames {
			if got := jitName(f.SymbolPC); got != w[i] {
				t.Errorf("thread %d (%s) frame %d at %#x is in JIT function %q, want %q", tid, role, i, f.PC, got, w[i])
			}
			// The frame after a JIT frame was found through the table.
			if i > 0 && jitName(s.frames[i-1].SymbolPC) != "" && f.How != stackwalk.HowTable {
				t.Errorf("thread %d (%s) frame %d found by %s, want table", tid, role, i, f.How)
			}
		}
		// Where gdb unwinds, it agrees; it cannot go past the JIT code.
		g := testproc.Physical(gdb[tid])
		n := 0
		for i := 0; i < len(g) && i < len(s.frames) && g[i].PC != 0; i++ {
			if g[i].PC != s.frames[i].PC || g[i].SP != s.frames[i].SP {
				break
			}
			n++
		}
		if n == 0 {
			t.Errorf("thread %d (%s): gdb agrees with no frame:%s\ngdb:\n%s", tid, role, formatFrames(s.frames), testproc.Format(g))
		}
		t.Logf("thread %d (%s): %d frames; gdb agrees on the first %d and then %s", tid, role, len(s.frames), n, gdbEnd(g, n))
	}
}

func gdbEnd(g []testproc.OracleFrame, n int) string {
	if n < len(g) {
		return fmt.Sprintf("goes wrong at frame %d (pc %#x)", n, g[n].PC)
	}
	if len(g) > 0 {
		return "stops (" + g[len(g)-1].Stop + ")"
	}
	return "has nothing"
}

// TestLiveWarm walks a process twice with one CFI cache: the second walk
// parses nothing again.
func TestLiveWarm(t *testing.T) {
	bin := testproc.BuildC(t, testproc.CVariant{Opt: "-O1"})
	p := testproc.Start(t, bin, "-n", "2", "-d", "5")
	cache := new(cfi.Cache)
	t0 := time.Now()
	first, _ := walkLive(t, p.Pid, cache)
	cold := time.Since(t0)
	n := cache.Len()
	t0 = time.Now()
	second, _ := walkLive(t, p.Pid, cache)
	warm := time.Since(t0)
	if cache.Len() != n || n == 0 {
		t.Errorf("the cache held %d files after the first walk and %d after the second", n, cache.Len())
	}
	for tid, s := range first {
		if len(second[tid].frames) != len(s.frames) {
			t.Errorf("thread %d: %d frames, then %d", tid, len(s.frames), len(second[tid].frames))
		}
	}
	t.Logf("cold walk %v, warm walk %v, %d files cached", cold, warm, n)
}

// TestLiveWine walks a Windows program under Wine from outside: its frames
// are found through the .pdata of the PE images Wine maps.
func TestLiveWine(t *testing.T) {
	p := testproc.StartWine(t)
	ours, _ := walkLive(t, p.Pid, nil)
	fn := func(pc uint64) string { return announcedFunc(p.Funcs, pc) }
	for tid := range p.Threads {
		s := ours[tid]
		var names []string
		for _, f := range s.frames {
			if n := fn(f.SymbolPC); n != "" {
				names = append(names, n)
				if f.How != stackwalk.HowContext && f.How != stackwalk.HowPE {
					t.Errorf("frame in %s found by %s, want pe", n, f.How)
				}
			}
		}
		if got := strings.Join(names, " "); got != "f3 f2 f1 main" {
			t.Errorf("thread %d: the walk goes through %q, want \"f3 f2 f1 main\" (walk ended with %v):%s", tid, got, s.err, formatFrames(s.frames))
		}
		t.Logf("thread %d: %d frames, ended with %v", tid, len(s.frames), s.err)
	}
}

// TestLiveKilled kills the target while it is stopped: every later read
// fails, and each walk ends with an error that says the target is gone,
// without a panic or a hang.
func TestLiveKilled(t *testing.T) {
	bin := testproc.BuildC(t, testproc.CVariant{Opt: "-O2"})
	p := testproc.Start(t, bin, "-n", "4", "-d", "20")
	st, err := live.Stop(p.Pid, live.StopOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	src, err := stackwalk.NewSources(st, stackwalk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	threads, err := st.Threads()
	if err != nil {
		t.Fatal(err)
	}
	// Walk the first thread, then kill the process and walk the others.
	walk := func(tid int) ([]stackwalk.Frame, error) {
		var fs []stackwalk.Frame
		w := src.WalkThread(tid)
		for w.Next() {
			fs = append(fs, w.Frame())
		}
		return fs, w.Err()
	}
	fs, err := walk(threads[0].ID)
	if err != nil || len(fs) < 20 {
		t.Fatalf("walk before the kill: %d frames, %v", len(fs), err)
	}
	if err := p.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Not Wait: the threads are ours to reap while we trace them, which
	// Close does. Wait until the kernel has torn the process down.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid))
		if i := strings.LastIndexByte(string(stat), ')'); err != nil || i > 0 && i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X') {
			break
		}
	}
	t0 := time.Now()
	for _, th := range threads[1:] {
		fs, err := walk(th.ID)
		if err == nil {
			t.Errorf("thread %d of the killed process: %d frames and no error", th.ID, len(fs))
			continue
		}
		t.Logf("thread %d: %d frames, %v", th.ID, len(fs), err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("walking the dead process's threads took %v", d)
	}
	if err := st.Close(); err != nil {
		t.Logf("close after the kill: %v", err)
	}
}

// TestLiveCorruptStack writes random bytes over a thread's stack while
// the process is stopped: the walk ends, with or without an error, within
// the frame limit and in bounded time, and the process resumes (and
// crashes on its own).
func TestLiveCorruptStack(t *testing.T) {
	bin := testproc.BuildC(t, testproc.CVariant{Opt: "-O1"})
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		p := testproc.Start(t, bin, "-n", "1", "-d", "30")
		st, err := live.Stop(p.Pid, live.StopOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var worker int
		for tid, role := range p.Threads {
			if role != "main" {
				worker = tid
			}
		}
		var ctx unwind.Context
		if err := st.ThreadContext(worker, &ctx); err != nil {
			t.Fatal(err)
		}
		// Overwrite 512 bytes to 8 KiB just above the stack pointer.
		junk := make([]byte, 512+rng.IntN(8<<10-512))
		for i := range junk {
			junk[i] = byte(rng.Uint32())
		}
		mem, err := os.OpenFile(fmt.Sprintf("/proc/%d/mem", p.Pid), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		off := int64(ctx.Rsp) + int64(rng.IntN(256))
		if _, err := mem.WriteAt(junk, off); err != nil {
			t.Logf("round %d: wrote %d bytes at %#x: %v", round, len(junk), off, err)
		}
		mem.Close()
		src, err := stackwalk.NewSources(st, stackwalk.Options{MaxFrames: 256})
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		w := src.WalkThread(worker)
		n := 0
		for w.Next() {
			n++
		}
		if d := time.Since(t0); d > 2*time.Second || n > 256 {
			t.Errorf("round %d: %d frames in %v", round, n, d)
		}
		if err := st.Close(); err != nil {
			t.Errorf("round %d: resume: %v", round, err)
		}
		checkRunsOn(t, p.Pid)
		p.Cmd.Process.Kill()
		if round < 3 {
			t.Logf("round %d: %d frames, %v", round, n, w.Err())
		}
	}
}

// TestStopWithWaiter stops a child that a goroutine of this process waits
// for: the kernel reports the main thread's ptrace stop to that waiter,
// and Stop must still find the thread stopped and walk it.
func TestStopWithWaiter(t *testing.T) {
	bin := testproc.BuildC(t, testproc.CVariant{Opt: "-O2"})
	p := testproc.Start(t, bin, "-n", "2", "-d", "6")
	waited := make(chan struct{})
	go func() {
		p.Cmd.Process.Wait()
		close(waited)
	}()
	time.Sleep(50 * time.Millisecond) // let the waiter block
	ours, _ := walkLive(t, p.Pid, nil)
	main := ours[p.Pid]
	if main.err != nil || len(main.frames) < 6 {
		t.Errorf("main thread: %d frames, %v", len(main.frames), main.err)
	}
	select {
	case <-waited:
		t.Log("the waiter took the main thread's stop, as expected of the kernel")
	case <-time.After(100 * time.Millisecond):
		t.Log("the waiter did not take a stop this time")
	}
}

// TestOptionsMaps gives NewSources the maps listing of the stopped
// process, less the lines of the executable: the modules are those of the
// listing given, not of a listing it reads again.
func TestOptionsMaps(t *testing.T) {
	bin := testproc.BuildC(t, testproc.CVariant{Opt: "-O1"})
	p := testproc.Start(t, bin, "-n", "1", "-d", "3")
	st, err := live.Stop(p.Pid, live.StopOptions{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", p.Pid))
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.Pid))
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, l := range strings.SplitAfter(string(maps), "\n") {
		if !strings.HasSuffix(strings.TrimSuffix(l, "\n"), " "+exe) {
			kept = append(kept, l)
		}
	}
	if len(kept) == len(strings.SplitAfter(string(maps), "\n")) {
		t.Fatalf("no line of %s in the maps:\n%s", exe, maps)
	}
	whole, err := stackwalk.NewSources(st, stackwalk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	given, err := stackwalk.NewSources(st, stackwalk.Options{Maps: []byte(strings.Join(kept, ""))})
	if err != nil {
		t.Fatal(err)
	}
	// The main thread's walk has frames in the executable.
	var mainPC uint64
	w := whole.WalkThread(p.Pid)
	for w.Next() {
		if m, ok := whole.Module(w.Frame().PC); ok && m.Path == exe {
			mainPC = w.Frame().PC
		}
	}
	if mainPC == 0 {
		t.Fatalf("no frame in %s", exe)
	}
	if m, ok := given.Module(mainPC); ok {
		t.Errorf("with the listing given, %#x is in %s, which it leaves out", mainPC, m.Path)
	}
}

// announcedFunc returns the function of funcs (name: address, as a test
// program announces them) that contains pc: the one with the greatest
// address at or below it, if close enough; "" if none.
func announcedFunc(funcs map[string]uint64, pc uint64) string {
	best, at := "", uint64(0)
	for name, a := range funcs {
		if a <= pc && a >= at && pc-a < 0x200 {
			best, at = name, a
		}
	}
	return best
}
