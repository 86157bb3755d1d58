package testproc

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func needLinux(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("needs linux/amd64: the subjects are x86-64 Linux processes")
	}
}

func TestParse(t *testing.T) {
	p, err := parse([]string{
		"thread 12 main depth 8 wait poll",
		"thread 13 sigalt depth 8 wait read altstack 0x1000-0x2000",
		"jit jit_a1 0x7f0000000000 0x7f0000000040",
		"fn f1 0x140001500",
		"ready 12",
	})
	if err != nil {
		t.Fatal(err)
	}
	if p.Pid != 12 || p.Threads[12] != "main" || p.Threads[13] != "sigalt" ||
		p.Attrs[13]["altstack"] != "0x1000-0x2000" || p.Attrs[12]["depth"] != "8" ||
		len(p.JIT) != 1 || p.JIT[0] != (JITFunc{"jit_a1", 0x7f0000000000, 0x7f0000000040}) ||
		p.Funcs["f1"] != 0x140001500 {
		t.Errorf("parse = %+v", p)
	}
	for _, bad := range []string{"thread x main", "thread 1 main depth", "jit a 0x10 0x10", "fn f1", "ready x"} {
		if _, err := parse([]string{bad, "ready 1"}); err == nil {
			t.Errorf("parse(%q) succeeded", bad)
		}
	}
}

// recursion returns the names of the frames of a D-deep recursion of
// threads.c, innermost first.
func recursion(depth int) []string {
	names := make([]string, depth)
	for i := range depth {
		// Level i from the outside is f(i%3+1).
		names[depth-1-i] = fmt.Sprintf("f%d", i%3+1)
	}
	return names
}

// checkThreads checks gdb's stack of every announced thread of threads.c.
func checkThreads(t *testing.T, p *Proc, stacks map[int][]OracleFrame) {
	t.Helper()
	for tid, role := range p.Threads {
		frames := stacks[tid]
		if frames == nil {
			t.Errorf("gdb has no thread %d (%s)", tid, role)
			continue
		}
		phys := Physical(frames)
		if err := checkThread(p, tid, phys); err != nil {
			t.Errorf("thread %d (%s): %v\n%s", tid, role, err, Format(frames))
		}
	}
}

func checkThread(p *Proc, tid int, frames []OracleFrame) error {
	role := p.Threads[tid]
	depth, err := strconv.Atoi(p.Attrs[tid]["depth"])
	if err != nil {
		return fmt.Errorf("no depth announced")
	}
	names := Funcs(frames)
	if last := frames[len(frames)-1]; last.Stop != "outermost" {
		return fmt.Errorf("gdb stopped early: %s", last.Stop)
	}
	i := slices.Index(names, "park")
	if i < 0 {
		return fmt.Errorf("no park frame")
	}
	if i == 0 || frames[0].Lib == "" {
		return fmt.Errorf("frame 0 is not in a shared library (libc)")
	}
	i++
	if role == "sigalt" {
		want := []string{"sig_f2", "sig_f1", "on_signal"}
		if !slices.Equal(names[i:min(i+3, len(names))], want) {
			return fmt.Errorf("handler frames %v, want %v", names[i:], want)
		}
		i += 3
		if i >= len(frames) || frames[i].Type != "sigtramp" {
			return fmt.Errorf("no signal trampoline after the handler")
		}
		lo, hi, ok := parseRange(p.Attrs[tid]["altstack"])
		if !ok {
			return fmt.Errorf("bad altstack %q", p.Attrs[tid]["altstack"])
		}
		for _, f := range frames[:i] {
			if f.SP < lo || f.SP > hi {
				return fmt.Errorf("handler frame %s has sp %#x outside the sigaltstack [%#x, %#x)", f.Func, f.SP, lo, hi)
			}
		}
		j := slices.Index(names[i:], "sigalt_park")
		if j < 0 {
			return fmt.Errorf("no sigalt_park after the trampoline")
		}
		if sp := frames[i+j].SP; sp >= lo && sp <= hi {
			return fmt.Errorf("sigalt_park's sp %#x is on the sigaltstack", sp)
		}
		i += j + 1
	}
	want := recursion(depth)
	if got := names[i:min(i+depth, len(names))]; !slices.Equal(got, want) {
		return fmt.Errorf("recursion %v, want %v", got, want)
	}
	i += depth
	outer := "thread_main"
	if role == "main" {
		outer = "main"
	}
	if i >= len(names) || names[i] != outer {
		return fmt.Errorf("no %s after the recursion", outer)
	}
	for k := 1; k < len(frames); k++ {
		if frames[k].SP < frames[k-1].SP && frames[k-1].Type != "sigtramp" {
			return fmt.Errorf("frame %d's sp %#x is below frame %d's %#x", k, frames[k].SP, k-1, frames[k-1].SP)
		}
	}
	return nil
}

func parseRange(s string) (lo, hi uint64, ok bool) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, false
	}
	lo, err1 := strconv.ParseUint(a, 0, 64)
	hi, err2 := strconv.ParseUint(b, 0, 64)
	return lo, hi, err1 == nil && err2 == nil && lo < hi
}

func TestThreadsGDB(t *testing.T) {
	needLinux(t)
	for _, v := range CVariants() {
		t.Run(v.String(), func(t *testing.T) {
			t.Parallel()
			bin := BuildC(t, v)
			p := Start(t, bin, "-n", "5", "-d", "7", "-s", "-T", "120")
			if len(p.Threads) != 7 {
				t.Fatalf("announced %d threads, want 7:\n%s", len(p.Threads), strings.Join(p.Lines, "\n"))
			}
			stacks, err := GDBStacks(t, p.Pid)
			if err != nil {
				t.Fatal(err)
			}
			checkThreads(t, p, stacks)
		})
	}
}

func TestWine(t *testing.T) {
	needLinux(t)
	p := StartWine(t)
	for _, name := range []string{"f1", "f2", "f3", "main"} {
		if p.Funcs[name] == 0 {
			t.Errorf("no address announced for %s: %q", name, p.Lines)
		}
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", p.Pid)); err != nil {
		t.Fatal(err)
	}
	if len(p.Threads) != 1 {
		t.Errorf("found no spinning thread in process %d", p.Pid)
	}
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", p.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(maps), "winspin.exe") {
		t.Errorf("process %d does not map winspin.exe", p.Pid)
	}
	t.Logf("winspin.exe runs as process %d; functions %#x; threads %v", p.Pid, p.Funcs, p.Threads)

	// gdb knows no PE unwind information, but f3 is a leaf, so its first
	// two frames are right: the spin in f3 and the return into f2.
	stacks, err := GDBStacks(t, p.Pid)
	if err != nil {
		t.Fatal(err)
	}
	for tid := range p.Threads {
		frames := stacks[tid]
		in := func(pc uint64, fn string) bool { return p.Funcs[fn] <= pc && pc < p.Funcs[fn]+0x40 }
		if len(frames) < 2 || !in(frames[0].PC, "f3") || !in(frames[1].PC, "f2") {
			t.Errorf("thread %d is not spinning in f3 called from f2:\n%s", tid, Format(frames))
		}
	}
}

func TestParseEuStack(t *testing.T) {
	stdout := `PID 10 - process
TID 10:
#0  0x00007fc38615026f __poll
#1  0x0000557f8b3c7896 park
TID 11:
#0  0x00007ff362883095
#1  0x0000000000000000
`
	stderr := "eu-stack: dwfl_thread_getframes tid 11 at 0xffffffffffffffff in /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2: no matching address range\n"
	got, err := parseEuStack(stdout, stderr)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int][]OracleFrame{
		10: {{PC: 0x7fc38615026f, Func: "__poll"}, {PC: 0x557f8b3c7896, Func: "park", Stop: "outermost"}},
		11: {{PC: 0x7ff362883095}, {PC: 0, Stop: "no matching address range"}},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("parseEuStack = %v, want %v", got, want)
	}
}

// TestEuStack checks that eu-stack and gdb agree on the PCs of every
// thread of threads.c.
func TestEuStack(t *testing.T) {
	needLinux(t)
	p := Start(t, BuildC(t, CVariant{"-O2", false}), "-n", "5", "-d", "7", "-s", "-T", "120")
	eu, err := EuStack(t, p.Pid)
	if err != nil {
		t.Fatal(err)
	}
	gdb, err := GDBStacks(t, p.Pid)
	if err != nil {
		t.Fatal(err)
	}
	for tid, role := range p.Threads {
		g, e := Physical(gdb[tid]), eu[tid]
		if len(e) == 0 || e[len(e)-1].Stop != "outermost" {
			t.Errorf("thread %d (%s): eu-stack stopped early:\n%s", tid, role, Format(e))
			continue
		}
		gpc, epc := make([]uint64, len(g)), make([]uint64, len(e))
		for i := range g {
			gpc[i] = g[i].PC
		}
		for i := range e {
			epc[i] = e[i].PC
		}
		if !slices.Equal(gpc, epc) {
			t.Errorf("thread %d (%s): gdb and eu-stack disagree\ngdb:\n%s\neu-stack:\n%s", tid, role, Format(g), Format(e))
		}
	}
}

func TestGo(t *testing.T) {
	needLinux(t)
	p := Start(t, BuildGo(t), "-d", "7", "-T", "120")
	if len(p.Threads) != 1 {
		t.Fatalf("announced %d threads, want 1: %q", len(p.Threads), p.Lines)
	}
	stacks, err := GDBStacks(t, p.Pid)
	if err != nil {
		t.Fatal(err)
	}
	for tid := range p.Threads {
		frames := Physical(stacks[tid])
		names := Funcs(frames)
		i := slices.Index(names, "main.park")
		if i < 0 || !slices.Contains(names[:i], "syscall.read") {
			t.Fatalf("thread %d: no syscall.read under main.park:\n%s", tid, Format(frames))
		}
		var want []string
		for _, n := range recursion(7) {
			want = append(want, "main.rec"+map[string]string{"f1": "A", "f2": "B", "f3": "C"}[n])
		}
		if got := names[i+1 : min(i+8, len(names))]; !slices.Equal(got, want) {
			t.Errorf("thread %d: recursion %v, want %v\n%s", tid, got, want, Format(frames))
		}
		if i+8 >= len(names) || !strings.HasPrefix(names[i+8], "main.main.func") {
			t.Errorf("thread %d: no goroutine function after the recursion\n%s", tid, Format(frames))
		}
	}
}
