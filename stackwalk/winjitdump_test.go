package stackwalk_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fntable/fntable/internal/winetest"
	"github.com/fntable/fntable/peimage"
	"github.com/fntable/fntable/stackwalk"
	"github.com/fntable/fntable/target"
	"github.com/fntable/fntable/target/dump"
	"github.com/fntable/fntable/unwind"
	"github.com/fntable/fntable/unwindinfo"
)

// winJIT is what testdata/winjitdump.c reported.
type winJIT struct {
	base, size uint64
	fns        map[string]uint64
	tid        int
	frames     [][2]uint64 // its own RtlVirtualUnwind walk: RIP, RSP
	dumped     string      // the dump line: "1 0" when MiniDumpWriteDump succeeded
}

func parseWinJIT(out []byte) (*winJIT, error) {
	p := &winJIT{fns: map[string]uint64{}}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		num := func(i int) uint64 {
			if i >= len(f) {
				return 0
			}
			v, _ := strconv.ParseUint(f[i], 0, 64)
			return v
		}
		switch {
		case len(f) == 3 && f[0] == "jit":
			p.base, p.size = num(1), num(2)
		case len(f) == 3 && f[0] == "fn":
			p.fns[f[1]] = num(2)
		case len(f) == 2 && f[0] == "tid":
			p.tid = int(num(1))
		case len(f) == 4 && f[0] == "frame":
			p.frames = append(p.frames, [2]uint64{num(2), num(3)})
		case len(f) == 3 && f[0] == "dump":
			p.dumped = f[1] + " " + f[2]
		}
	}
	if p.base == 0 || p.tid == 0 || len(p.frames) < 4 || len(p.fns) != 4 || p.dumped == "" {
		return nil, fmt.Errorf("incomplete output:\n%s", out)
	}
	return p, nil
}

// TestWineJITDump runs testdata/winjitdump.c under Wine: JIT code
// registered with RtlAddFunctionTable calls back into C, which walks its
// own stack with RtlVirtualUnwind and has a second thread write a
// full-memory minidump with the function table as a user stream of type
// 13. The walk of the JIT thread in that dump must find every frame of
// the program's own walk, the native frames through the .pdata of the PE
// images in the dump's memory and the JIT frames through stream 13.
//
// What Wine 8 does: MiniDumpWriteDump keeps the user stream (the dump's
// FunctionTableStream is the one the program built; Wine writes none of
// its own), dumps every committed region, the PE images included, and
// writes the dumping thread without a context (a ThreadContext of size
// 0; dbghelp on Windows writes the context the thread has inside
// MiniDumpWriteDump). The JIT thread's context
// is where it blocks: ntdll's NtWaitForSingleObject system-call stub,
// called by kernelbase's WaitForSingleObjectEx, so the dump's walk has
// three frames below the callback that the program's walk, which starts
// at RtlCaptureContext, does not; the callback's frame has the same RSP
// in both and a different PC (the return address of
// WaitForSingleObject, not of RtlCaptureContext). From the JIT code's
// caller outward every frame is the same, and both walks end at the
// same frame (ntdll's RtlUserThreadStart, which returns to 0).
func TestWineJITDump(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 100 MB full-memory dump under Wine, which takes about 20 s")
	}
	env := winetest.Require(t)
	dir := t.TempDir()
	exe := env.BuildC(t, filepath.Join(dir, "winjitdump.exe"), "-O2", "-g", "testdata/winjitdump.c", "-ldbghelp")
	dmp := filepath.Join(dir, "winjitdump.dmp")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	// Wine's prefixes map drive Z: to the root of the Unix file system.
	out, err := env.Run(ctx, exe, nil, "Z:"+strings.ReplaceAll(dmp, "/", `\`))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	p, err := parseWinJIT(out)
	if err != nil {
		t.Fatal(err)
	}
	if p.dumped != "1 0" {
		t.Fatalf("MiniDumpWriteDump: ok, GetLastError = %s", p.dumped)
	}
	t.Logf("program's walk: %x", p.frames)

	d, err := dump.Open(dmp)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	// Stream 13 as the program built it: one table, the JIT region's
	// two functions.
	ft, err := d.File().FunctionTables()
	if err != nil || ft == nil || len(ft.Tables) != 1 {
		t.Fatalf("function table stream: %+v, %v (Wine dropped the user stream?)", ft, err)
	}
	tab := ft.Tables[0]
	outer, inner := uint32(p.fns["jit_outer"]-p.base), uint32(p.fns["jit_inner"]-p.base)
	if tab.Descriptor.BaseAddress != p.base || len(tab.Entries) != 2 || tab.Entries[0].BeginAddress != outer || tab.Entries[1].BeginAddress != inner ||
		tab.Descriptor.MinimumAddress != p.fns["jit_outer"] || tab.Descriptor.MaximumAddress != p.base+uint64(tab.Entries[1].EndAddress) {
		t.Errorf("function table: %+v", tab.Descriptor)
	}
	if fn, base, ok := ft.LookupFunctionEntry(p.fns["jit_inner"] + 10); !ok || base != p.base || fn.BeginAddress != inner {
		t.Errorf("LookupFunctionEntry(jit_inner+10) = %+v, %#x, %v", fn, base, ok)
	}

	// The PE images are in the dump's memory.
	var exeBase uint64
	d.Modules(func(m target.Module) bool {
		var mz [2]byte
		if _, err := d.ReadMemory(mz[:], m.Base); err != nil || mz != [2]byte{'M', 'Z'} {
			t.Errorf("module %s: no image at %#x in the dump (%v)", m.Name, m.Base, err)
		}
		if strings.EqualFold(m.Name, "winjitdump.exe") {
			exeBase = m.Base
		}
		return true
	})
	img, err := peimage.NewMapped(d, exeBase)
	if err != nil {
		t.Fatalf("winjitdump.exe from the dump: %v", err)
	}

	// The threads: the JIT thread, and the dumping one, which Wine
	// writes without a context.
	threads, err := d.Threads()
	if err != nil {
		t.Fatal(err)
	}
	if len(threads) != 2 {
		t.Errorf("%d threads in the dump, want the JIT thread and the dumping one", len(threads))
	}
	for _, th := range threads {
		if (th.ID == p.tid) != (th.Err == nil) {
			t.Errorf("thread %d: context error %v (the JIT thread is %d)", th.ID, th.Err, p.tid)
		}
	}

	s, err := stackwalk.NewSources(d, stackwalk.Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	frames, err := walkAll(t, s, threadContext(t, d, p.tid))
	if err != nil {
		t.Errorf("walk of thread %d: %v", p.tid, err)
	}
	for i, f := range frames {
		m, _ := s.Module(f.PC)
		t.Logf("frame %d: pc %#x sp %#x %v %s+%#x", i, f.PC, f.SP, f.How, m.Name, f.PC-m.Base)
	}

	// The callback's frame: the same RSP, and a PC in the same function.
	k := -1
	for i, f := range frames {
		if f.SP == p.frames[0][1] {
			k = i
			break
		}
	}
	if k < 0 {
		t.Fatalf("no frame of the dump's walk has the callback's rsp %#x", p.frames[0][1])
	}
	fnOf := func(pc uint64) (unwindinfo.RuntimeFunction, bool) {
		if pc < exeBase {
			return unwindinfo.RuntimeFunction{}, false
		}
		return img.LookupFunctionEntry(uint32(pc - exeBase))
	}
	if a, ok := fnOf(frames[k].PC); !ok || a.BeginAddress != uint32(p.fns["callback"]-exeBase) {
		t.Errorf("frame %d (pc %#x, rsp of the callback) is not in callback: %+v %v", k, frames[k].PC, a, ok)
	}
	if b, ok := fnOf(p.frames[0][0]); !ok || b.BeginAddress != uint32(p.fns["callback"]-exeBase) {
		t.Errorf("the program's first frame (pc %#x) is not in callback: %+v %v", p.frames[0][0], b, ok)
	}
	// Below it: Wine's wait, in ntdll and kernelbase.
	for i, f := range frames[:k] {
		m, _ := s.Module(f.PC)
		if name := strings.ToLower(m.Name); name != "ntdll.dll" && name != "kernelbase.dll" {
			t.Errorf("frame %d below the callback is in %q", i, m.Name)
		}
	}

	// Above it: every frame of the program's walk, and no more.
	rest := frames[k+1:]
	if len(rest) != len(p.frames)-1 {
		t.Errorf("%d frames above the callback, the program's walk has %d", len(rest), len(p.frames)-1)
	}
	for i := 1; i < len(p.frames) && i-1 < len(rest); i++ {
		f, want := rest[i-1], p.frames[i]
		if f.PC != want[0] || f.SP != want[1] {
			t.Errorf("frame %d: pc %#x sp %#x, the program's frame %d: pc %#x sp %#x", k+i, f.PC, f.SP, i, want[0], want[1])
		}
	}
	// How each was found: the JIT frames' callers through stream 13.
	wantHow := []stackwalk.How{stackwalk.HowPE, stackwalk.HowTable, stackwalk.HowTable}
	for i, h := range wantHow {
		if i < len(rest) && rest[i].How != h {
			t.Errorf("frame %d (pc %#x) found by %v, want %v", k+1+i, rest[i].PC, rest[i].How, h)
		}
	}
	if len(rest) >= 2 && (rest[0].PC != p.fns["jit_inner"]+10 || rest[1].PC != p.fns["jit_outer"]+10) {
		t.Errorf("JIT frames at %#x, %#x; want jit_inner+10, jit_outer+10", rest[0].PC, rest[1].PC)
	}
	for i, f := range rest[min(3, len(rest)):] {
		if f.How != stackwalk.HowPE {
			t.Errorf("frame %d (pc %#x) found by %v, want pe", k+4+i, f.PC, f.How)
		}
	}

	// Without stream 13 the walk ends in the JIT code: jit_inner's
	// frame pointer leads to jit_outer's return address, which is in no
	// module, and no unwind data describes it.
	bare, err := stackwalk.NewSources(d, stackwalk.Options{DynamicTables: unwind.Tables{}})
	if err != nil {
		t.Fatal(err)
	}
	frames, err = walkAll(t, bare, threadContext(t, d, p.tid))
	var fe *stackwalk.FrameError
	if !errors.As(err, &fe) || !errors.Is(err, stackwalk.ErrNotCode) || fe.PC != p.fns["jit_inner"]+10 || len(frames) != k+2 {
		t.Errorf("walk without the function table stream: %d frames, %v; want %d ending at jit_inner with ErrNotCode", len(frames), err, k+2)
	}
}

// threadContext returns the registers of thread tid of the dump.
func threadContext(t *testing.T, d *dump.Dump, tid int) unwind.Context {
	t.Helper()
	ctx := unwind.Context{ContextFlags: unwind.CONTEXT_FULL}
	if err := d.ThreadContext(tid, &ctx); err != nil {
		t.Fatal(err)
	}
	return ctx
}
