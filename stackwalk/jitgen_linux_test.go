package stackwalk_test

import (
	"bufio"
	"debug/elf"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/fntable/fntable/internal/jitgen"
	"github.com/fntable/fntable/internal/testproc"
	"github.com/fntable/fntable/stackwalk"
)

// TestLiveJITGen walks a thread stopped inside a call chain of functions
// that package jitgen generated and that really ran: every prolog form
// jitgen varies (pushes, frame registers with offsets, small and large
// allocations, near and far saves of general-purpose and XMM registers,
// version 2 unwind information, handlers) is unwound from the published
// function table. The walk must give the last function, then every other
// one in reverse order with the frame size the generator planned, then
// the C frames to the thread's start, without error; gdb, which stops in
// the generated code, must agree as far as it goes.
func TestLiveJITGen(t *testing.T) {
	bin := testproc.BuildJITGen(t)
	thread := elfFunc(t, bin, "jitgen_thread_main")
	type run struct {
		seed uint64
		n    int
	}
	var runs []run
	for seed := range uint64(24) {
		runs = append(runs, run{seed + 1, 12})
	}
	runs = append(runs, run{101, 1}, run{102, 2}, run{103, 40}, run{104, 40})
	for _, r := range runs {
		t.Run(fmt.Sprintf("seed%d-n%d", r.seed, r.n), func(t *testing.T) {
			t.Parallel()
			p := testproc.Start(t, bin, "-seed", fmt.Sprint(r.seed), "-n", fmt.Sprint(r.n))
			checkJITGen(t, p, r.seed, r.n, thread)
		})
	}
}

// checkJITGen checks the walk of jitgenprog's chain of n functions built
// from seed; thread is the range of jitgen_thread_main.
func checkJITGen(t *testing.T, p *testproc.Proc, seed uint64, n int, thread [2]uint64) {
	// The image the subject built: the same Config and source.
	img := jitgen.Build(jitgen.Config{Functions: n, Executable: true}, rand.New(rand.NewPCG(seed, seed)))
	if len(p.JIT) != n {
		t.Fatalf("the subject announced %d functions, want %d", len(p.JIT), n)
	}
	fn := map[string]testproc.JITFunc{}
	for _, f := range p.JIT {
		fn[f.Name] = f
	}
	base := fn["f0"].Begin - uint64(img.Functions[0].Begin)
	for _, f := range img.Functions {
		a := fn[fmt.Sprintf("f%d", f.ID)]
		if a.Begin != base+uint64(f.Begin) || a.End != base+uint64(f.End) {
			t.Fatalf("f%d announced at [%#x, %#x), the image puts it at [%#x, %#x)", f.ID, a.Begin, a.End, base+uint64(f.Begin), base+uint64(f.End))
		}
	}
	var tid int
	for id, role := range p.Threads {
		if role == "jitgen" {
			tid = id
		}
	}
	if tid == 0 {
		t.Fatal("no jitgen thread announced")
	}

	ours, _ := walkLive(t, p.Pid, nil)
	gdb, err := testproc.GDBStacks(t, p.Pid)
	if err != nil {
		t.Fatal(err)
	}
	s := ours[tid]
	if s.err != nil {
		t.Errorf("walk ended with %v:%s", s.err, formatFrames(s.frames))
	}
	// n generated frames, jitgen_thread_main, start_thread, clone3.
	if len(s.frames) != n+3 {
		t.Fatalf("%d frames, want %d:%s\n%s", len(s.frames), n+3, formatFrames(s.frames), features(img))
	}
	libc := libcRanges(t, p.Pid)
	for i, f := range s.frames {
		want := stackwalk.HowTable
		switch {
		case i == 0:
			want = stackwalk.HowContext
		case i > n:
			want = stackwalk.HowCFI
		}
		if f.How != want {
			t.Errorf("frame %d found by %s, want %s:%s", i, f.How, want, formatFrames(s.frames))
		}
		if i > 0 && f.SP != s.frames[i-1].CFA {
			t.Errorf("frame %d: sp %#x, the CFA of frame %d is %#x", i, f.SP, i-1, s.frames[i-1].CFA)
		}
		switch {
		case i < n:
			g := img.Functions[n-1-i]
			jf := fn[fmt.Sprintf("f%d", g.ID)]
			if !jf.Contains(f.SymbolPC) {
				t.Errorf("frame %d at pc %#x, want in f%d [%#x, %#x):%s\n%s", i, f.PC, g.ID, jf.Begin, jf.End, formatFrames(s.frames), features(img))
				continue
			}
			// The frame's size is what the generator planned at the
			// instruction it stands at (the loop's jmp, or the call
			// before the return address): SP = E − State.SP and
			// CFA = E + 8.
			in, ok := stateAt(g, uint32(f.SymbolPC-base))
			if !ok {
				t.Errorf("frame %d: no instruction of f%d at %#x", i, g.ID, f.SymbolPC-base)
				continue
			}
			if f.CFA-8-f.SP != uint64(in.State.SP) {
				t.Errorf("frame %d in f%d (%q): sp %#x cfa %#x, a frame of %#x bytes, want %#x:%s", i, g.ID, in.Asm, f.SP, f.CFA, f.CFA-8-f.SP, in.State.SP, formatFrames(s.frames))
			}
		case i == n:
			if f.SymbolPC < thread[0] || f.SymbolPC >= thread[1] {
				t.Errorf("frame %d at pc %#x, want in jitgen_thread_main [%#x, %#x):%s", i, f.PC, thread[0], thread[1], formatFrames(s.frames))
			}
		default:
			if !inRanges(libc, f.PC) {
				t.Errorf("frame %d at pc %#x, want in libc (start_thread, clone3):%s", i, f.PC, formatFrames(s.frames))
			}
		}
	}

	// Where gdb unwinds, it agrees; it cannot go past the generated code.
	g := testproc.Physical(gdb[tid])
	agree := 0
	for i := 0; i < len(g) && i < len(s.frames) && g[i].PC != 0; i++ {
		if g[i].PC != s.frames[i].PC || g[i].SP != s.frames[i].SP {
			break
		}
		agree++
	}
	if agree == 0 {
		t.Errorf("gdb agrees with no frame:%s\ngdb:\n%s", formatFrames(s.frames), testproc.Format(g))
	}
	t.Logf("%d frames; gdb agrees on the first %d and then %s; %s", len(s.frames), agree, gdbEnd(g, agree), features(img))
}

// stateAt returns the instruction of f at rva or, for a return address,
// the call before it.
func stateAt(f *jitgen.Function, rva uint32) (*jitgen.Inst, bool) {
	for k := range f.Insts {
		in := &f.Insts[k]
		if in.RVA <= rva && rva < in.RVA+uint32(in.Len) {
			return in, true
		}
	}
	return nil, false
}

// features summarizes what the chain's prologs contain, for logs.
func features(img *jitgen.Image) string {
	var all jitgen.Feature
	maxFrame := int32(0)
	for _, f := range img.Functions {
		all |= f.Features
		for _, in := range f.Insts {
			maxFrame = max(maxFrame, in.State.SP)
		}
	}
	names := "none"
	if all != 0 {
		names = all.String()
	}
	return fmt.Sprintf("features %s, largest frame %#x", names, maxFrame)
}

// elfFunc returns the range [start, end) of the function symbol name in
// the executable bin, which is not position-independent.
func elfFunc(t *testing.T, bin, name string) [2]uint64 {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC {
		t.Fatalf("%s is %v, want a fixed-address executable", bin, f.Type)
	}
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syms {
		if s.Name == name && elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Size > 0 {
			return [2]uint64{s.Value, s.Value + s.Size}
		}
	}
	t.Fatalf("no function %s in %s", name, bin)
	return [2]uint64{}
}

// libcRanges returns the executable mappings of libc in process pid.
func libcRanges(t *testing.T, pid int) [][2]uint64 {
	t.Helper()
	file, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	var out [][2]uint64
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || !strings.Contains(f[1], "x") || !strings.Contains(f[5], "/libc.so") && !strings.Contains(f[5], "/libc-") {
			continue
		}
		lo, hi, _ := strings.Cut(f[0], "-")
		a, err1 := strconv.ParseUint(lo, 16, 64)
		b, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 == nil && err2 == nil {
			out = append(out, [2]uint64{a, b})
		}
	}
	if len(out) == 0 {
		t.Fatalf("no libc mapping in process %d", pid)
	}
	return out
}

func inRanges(rs [][2]uint64, pc uint64) bool {
	for _, r := range rs {
		if r[0] <= pc && pc < r[1] {
			return true
		}
	}
	return false
}
