package testproc

import (
	"debug/elf"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/fntable/fntable/functable/remote"
	"github.com/fntable/fntable/unwind"
)

// procMem reads another process's memory through /proc/PID/mem.
type procMem struct{ f *os.File }

func openMem(t *testing.T, pid int) procMem {
	t.Helper()
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/mem")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return procMem{f}
}

func (m procMem) ReadMemory(p []byte, addr uint64) (int, error) {
	n, _ := m.f.ReadAt(p, int64(addr))
	if n < len(p) {
		return n, &unwind.UnmappedError{Addr: addr + uint64(n)}
	}
	return n, nil
}

// jitFunc returns the generated function holding pc.
func jitFunc(p *Proc, pc uint64) (JITFunc, bool) {
	for _, f := range p.JIT {
		if f.Contains(pc) {
			return f, true
		}
	}
	return JITFunc{}, false
}

// symbolAt returns the name of the function symbol of the ELF executable
// exe (not position-independent) that contains addr.
func symbolAt(t *testing.T, exe string, addr uint64) string {
	t.Helper()
	f, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC {
		t.Fatalf("%s is %v, not a fixed-address executable", exe, f.Type)
	}
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Value <= addr && addr < s.Value+s.Size {
			return s.Name
		}
	}
	return ""
}

// TestJIT starts the JIT subject and checks what gdb makes of its threads
// (it stops at, or misreads, the first generated frame) and that the
// published function table and unwind information lead from that frame
// through the generated frames back to the C thread function.
func TestJIT(t *testing.T) {
	needLinux(t)
	bin := BuildJIT(t)
	p := Start(t, bin, "-T", "120")
	if len(p.JIT) != 6 {
		t.Fatalf("announced %d generated functions, want 6: %q", len(p.JIT), p.Lines)
	}
	stacks, err := GDBStacks(t, p.Pid)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := remote.Find(p.Pid)
	if err != nil || len(ms) != 1 {
		t.Fatalf("published lists: %v, %v; want one", ms, err)
	}
	mem := openMem(t, p.Pid)
	snap, err := remote.Read(mem, ms[0])
	if err != nil {
		t.Fatal(err)
	}

	roles := map[string]struct {
		before []string // gdb's physical frames before the first generated one
		chain  []string // the generated functions, innermost first
	}{
		"jit-pause":    {nil, []string{"jit_a3", "jit_a2", "jit_a1"}},
		"jit-callback": {[]string{"__GI___libc_read", "c_block"}, []string{"jit_b3", "jit_b2", "jit_b1"}},
	}
	seen := 0
	for tid, role := range p.Threads {
		want, ok := roles[role]
		if !ok {
			t.Errorf("unexpected thread %d %s", tid, role)
			continue
		}
		seen++
		frames := Physical(stacks[tid])
		t.Logf("gdb's stack of thread %d (%s):\n%s", tid, role, Format(frames))
		k := slices.IndexFunc(frames, func(f OracleFrame) bool { _, ok := jitFunc(p, f.PC); return ok })
		if k < 0 {
			t.Errorf("thread %d (%s): gdb shows no generated frame", tid, role)
			continue
		}
		if got := Funcs(frames[:k]); !slices.Equal(got, want.before) {
			t.Errorf("thread %d (%s): gdb's frames before the generated code are %v, want %v", tid, role, got, want.before)
		}
		for _, f := range frames[k+1:] {
			if f.Func == "jit_thread_main" || f.Func == "start_thread" {
				t.Errorf("thread %d (%s): gdb unwound through the generated code to %s; update the package documentation", tid, role, f.Func)
			}
		}

		// The Windows model: look each PC up in the published list and
		// unwind with package unwind, from the registers gdb gives for
		// the first generated frame.
		ctx := unwind.Context{Rip: frames[k].PC, Rsp: frames[k].SP, Rbp: frames[k].BP}
		for _, name := range want.chain {
			f, ok := jitFunc(p, ctx.Rip)
			if !ok || f.Name != name {
				t.Fatalf("thread %d (%s): pc %#x is in %v, want %s", tid, role, ctx.Rip, f, name)
			}
			rf, base, ok := snap.LookupFunctionEntry(ctx.Rip)
			if !ok {
				t.Fatalf("thread %d (%s): the published list has no entry for %#x (%s)", tid, role, ctx.Rip, name)
			}
			sp := ctx.Rsp
			if _, err := unwind.VirtualUnwind(0, base, ctx.Rip, rf, &ctx, nil, mem); err != nil {
				t.Fatalf("thread %d (%s): unwind %s: %v", tid, role, name, err)
			}
			if ctx.Rsp <= sp {
				t.Fatalf("thread %d (%s): unwinding %s moved rsp from %#x to %#x", tid, role, name, sp, ctx.Rsp)
			}
		}
		if got := symbolAt(t, bin, ctx.Rip); got != "jit_thread_main" {
			t.Errorf("thread %d (%s): unwinding the generated frames led to %#x (%q), want jit_thread_main", tid, role, ctx.Rip, got)
		}
	}
	if seen != 2 {
		t.Errorf("announced %d JIT threads, want 2: %v", seen, p.Threads)
	}
}

// TestJITNoRegistry checks that -noregistry publishes nothing.
func TestJITNoRegistry(t *testing.T) {
	needLinux(t)
	p := Start(t, BuildJIT(t), "-noregistry", "-T", "120")
	ms, err := remote.Find(p.Pid)
	if err != nil || len(ms) != 0 {
		t.Errorf("published lists: %v, %v; want none", ms, err)
	}
	if len(p.JIT) != 6 || len(p.Threads) != 2 {
		t.Errorf("announcement: %s", fmt.Sprint(p.Lines))
	}
}
