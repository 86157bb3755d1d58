package stackwalk_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/fntable/fntable/internal/winetest"
	"github.com/fntable/fntable/stackwalk"
	"github.com/fntable/fntable/target"
	"github.com/fntable/fntable/target/dump"
	"github.com/fntable/fntable/unwind"
	"github.com/fntable/fntable/unwindinfo"
)

// openDump opens a minidump of the shared test data with its walk sources.
func openDump(t *testing.T, name string) (*dump.Dump, *stackwalk.Sources) {
	t.Helper()
	d, err := dump.Open(winetest.Testdata(t, "minidumps/"+name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	s, err := stackwalk.NewSources(d, stackwalk.Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	return d, s
}

// dumpWalk is what a walk of a dump gave: each frame as "module+offset
// how", and how the walk ended.
type dumpWalk struct {
	tid    int // the thread; -1 for the exception stream's context
	frames []string
	err    string // the error that ended the walk, "" for none
}

// walkDump walks one stack and describes it as a dumpWalk.
func walkDump(s *stackwalk.Sources, tid int, w *stackwalk.Walker) dumpWalk {
	got := dumpWalk{tid: tid}
	for w.Next() {
		f := w.Frame()
		m, _ := s.Module(f.PC)
		got.frames = append(got.frames, fmt.Sprintf("%s+%#x %v", m.Name, f.PC-m.Base, f.How))
	}
	if err := w.Err(); err != nil {
		got.err = err.Error()
	}
	return got
}

// exceptionContext returns the registers of the dump's exception stream:
// the faulting thread at the fault, where the thread list has it inside
// the crash handler's wait.
func exceptionContext(t *testing.T, d *dump.Dump) (tid int, ctx unwind.Context) {
	t.Helper()
	e, err := d.File().Exception()
	if err != nil || e == nil {
		t.Fatalf("exception stream: %v, %v", e, err)
	}
	if err := ctx.UnmarshalWindows(e.Context); err != nil {
		t.Fatalf("exception context: %v", err)
	}
	return int(e.ThreadId), ctx
}

// checkWalks walks every thread of the dump and, when it has one, the
// exception context, and compares each walk with want (in thread order,
// the exception context last). No walk may run away: the frame limit is
// set far below the default so that a loop would show.
func checkWalks(t *testing.T, name string, want []dumpWalk) {
	d, s := openDump(t, name)
	threads, err := d.Threads()
	if err != nil {
		t.Fatal(err)
	}
	var got []dumpWalk
	for _, th := range threads {
		got = append(got, walkDump(s, th.ID, s.WalkThread(th.ID)))
	}
	if e, _ := d.File().Exception(); e != nil {
		_, ctx := exceptionContext(t, d)
		got = append(got, walkDump(s, -1, s.Walk(ctx)))
	}
	if len(got) != len(want) {
		t.Fatalf("%d walks, want %d: %v", len(got), len(want), got)
	}
	for i, g := range got {
		w := want[i]
		if g.tid != w.tid || strings.Join(g.frames, "; ") != strings.Join(w.frames, "; ") || g.err != w.err {
			t.Errorf("thread %d:\n got %q, %q\nwant thread %d: %q, %q", g.tid, g.frames, g.err, w.tid, w.frames, w.err)
		}
	}
}

// noImage is how a walk ends at a frame whose module's image the dump did
// not capture, and whose rbp is no frame pointer either.
func noImage(frame int, pc uint64, where string, rbp uint64) string {
	return fmt.Sprintf("unwind frame %d at %#x: no unwind information for the frame (%s, whose image is not in the target's memory, and rbp %#x is no frame pointer)", frame, pc, where, rbp)
}

// staleRBP is how a walk ends when the frame-pointer guess reads a return
// address that is in no module and no function table of the dump.
func staleRBP(frame int, pc, ret uint64) string {
	return fmt.Sprintf("unwind frame %d at %#x: return address is not in executable memory: %#x, read through rbp, is in no module or function table of the target", frame, pc, ret)
}

// The V8 code range of the Electron dump, registered with
// RtlAddFunctionTable as one entry covering all of it.
const (
	v8Base = 0x1FCAA00000
	v8Size = 0x20000000
)

// TestElectronV8Table looks PCs up in the dynamic function table that the
// Electron dump's FunctionTableStream holds (V8's code range, one entry
// {0, 0x20000000, 0xC}) and unwinds a frame through it over the dump's
// memory.
func TestElectronV8Table(t *testing.T) {
	d, s := openDump(t, "electron-node-minidump-windows-x64.dmp")
	ft, err := d.FunctionTables()
	if err != nil || ft == nil {
		t.Fatalf("FunctionTables = %v, %v", ft, err)
	}
	for _, tc := range []struct {
		name string
		pc   uint64
		ok   bool
	}{
		{"below", v8Base - 1, false},
		{"begin", v8Base, true},
		{"inside", v8Base + 0x1234567, true},
		{"end-1", v8Base + v8Size - 1, true},
		{"end", v8Base + v8Size, false},
	} {
		fn, base, ok, err := unwind.Lookup(ft, d, tc.pc)
		if err != nil || ok != tc.ok {
			t.Errorf("%s: Lookup(%#x) ok=%v err=%v, want ok=%v", tc.name, tc.pc, ok, err, tc.ok)
			continue
		}
		if ok && (base != v8Base || fn != (unwindinfo.RuntimeFunction{BeginAddress: 0, EndAddress: v8Size, UnwindData: 0xC})) {
			t.Errorf("%s: Lookup(%#x) = %+v base %#x", tc.name, tc.pc, fn, base)
		}
	}

	// The UNWIND_INFO, from the dump's memory: the 4 bytes dbghelp saved.
	var b [4]byte
	if n, err := d.ReadMemory(b[:], v8Base+0xC); n != 4 || err != nil || b != [4]byte{9, 0, 0, 0} {
		t.Fatalf("UNWIND_INFO at %#x = % x (%d bytes, %v), want 09 00 00 00", v8Base+0xC, b, n, err)
	}
	h, err := unwindinfo.DecodeHeader(b[:])
	if err != nil {
		t.Fatal(err)
	}
	// Version 1, UNW_FLAG_EHANDLER, no prolog, no codes, no frame
	// register: V8 unwinds its frames through its handler, and for
	// RtlVirtualUnwind each is a leaf whose return address is at RSP.
	if h.Version != 1 || h.Flags != unwindinfo.UNW_FLAG_EHANDLER || h.SizeOfProlog != 0 || h.CountOfCodes != 0 || h.FrameRegister != 0 {
		t.Errorf("UNWIND_INFO header %+v", h)
	}
	// The handler RVA that follows was not saved.
	if _, err := d.ReadMemory(b[:], v8Base+0x10); err == nil {
		t.Errorf("the dump holds the handler RVA at %#x", v8Base+0x10)
	}

	// A frame in the code range unwinds through the dump's table: the
	// stack is the faulting thread's at the fault, which the dump
	// captured.
	_, exc := exceptionContext(t, d)
	var ret [8]byte
	if _, err := d.ReadMemory(ret[:], exc.Rsp); err != nil {
		t.Fatal(err)
	}
	ctx := exc
	ctx.Rip = v8Base + 0x1234567
	w := s.Walk(ctx)
	var frames []stackwalk.Frame
	for w.Next() && len(frames) < 2 {
		frames = append(frames, w.Frame())
	}
	if len(frames) != 2 {
		t.Fatalf("walk from the V8 code range: %d frames, %v", len(frames), w.Err())
	}
	if f := frames[1]; f.How != stackwalk.HowTable || f.PC != binary.LittleEndian.Uint64(ret[:]) || f.SP != exc.Rsp+8 {
		t.Errorf("caller of the V8 frame: pc %#x sp %#x %v; want pc %#x sp %#x table", f.PC, f.SP, f.How, binary.LittleEndian.Uint64(ret[:]), exc.Rsp+8)
	}
}

// TestElectronWalks walks every thread of the Electron dump, the faulting
// thread (6068) from the exception's context as the dump target gives it,
// and that context again as the exception stream holds it. The dump holds no
// module image: its memory is the threads' stacks, a few heap blocks,
// 256 to 416 bytes of code around some PCs, and the 4 bytes of V8's
// UNWIND_INFO. No frame can therefore be unwound by .pdata: each walk
// ends at its first frame that the frame-pointer guess cannot leave.
// Every other thread's context is in ntdll's system-call stubs (the
// process waits while Breakpad writes the dump), whose rbp is 0 or a stale
// value.
// From the exception context, electron.exe's faulting function keeps a
// frame pointer; through it the walk finds node.dll+0x95b441 (V8 is
// linked into node.dll, and atom::Crash is a V8 function callback), whose
// rbp then yields a heap address, where the walk stops.
func TestElectronWalks(t *testing.T) {
	const name = "electron-node-minidump-windows-x64.dmp"
	d, _ := openDump(t, name)
	// No module's headers are in the dump.
	d.Modules(func(m target.Module) bool {
		var b [1]byte
		if _, err := d.ReadMemory(b[:], m.Base); err == nil {
			t.Errorf("the dump holds the image of %s", m.Name)
		}
		return true
	})
	if tid, _ := exceptionContext(t, d); tid != 6068 {
		t.Errorf("exception thread %d, want 6068", tid)
	}
	ntdll := func(tid int, off uint64, rbp uint64) dumpWalk {
		where := fmt.Sprintf("ntdll.dll+%#x", off)
		return dumpWalk{tid, []string{where + " context"}, noImage(0, 0x7fff67200000+off, where, rbp)}
	}
	stale := func(tid int, off uint64, ret uint64) dumpWalk {
		return dumpWalk{tid, []string{fmt.Sprintf("ntdll.dll+%#x context", off)}, staleRBP(0, 0x7fff67200000+off, ret)}
	}
	checkWalks(t, name, []dumpWalk{
		ntdll(964, 0xa4f74, 0),
		ntdll(2180, 0xa4ed4, 0),
		stale(2280, 0xa4f74, 0), // rbp points at zeros
		ntdll(2396, 0xa8624, 0),
		stale(3056, 0xa4f74, 0x1a8dc1b0cc0),
		ntdll(3232, 0xa4ed4, 0),
		ntdll(3324, 0xa8624, 0),
		stale(5332, 0xa85c4, 0x1a8dc452148),
		ntdll(5680, 0xa4ed4, 0),
		// The faulting thread: the dump target gives the exception's
		// registers as its context.
		{6068, []string{"electron.exe+0xe8da4 context", "node.dll+0x95b441 fp"}, staleRBP(1, 0x7fff3f04b441, 0x1a8dc3f3610)},
		stale(7840, 0xa85c4, 0x1a8dc4521e8),
		ntdll(8220, 0xa8624, 0),
		ntdll(9276, 0xa8624, 0),
		ntdll(9660, 0xa8624, 0),
		{-1, []string{"electron.exe+0xe8da4 context", "node.dll+0x95b441 fp"}, staleRBP(1, 0x7fff3f04b441, 0x1a8dc3f3610)},
	})
}

// TestBreakpadWalks walks every thread of Breakpad's x64 test dumps, and
// the exception context of those that have one. Like the Electron dump,
// they hold no module image, so each walk ends at its first frame: in
// ntdll's system-call stubs for the waiting threads, and at the faulting
// instruction (tiny.exe+0x1af42, crash.exe+0x1331) for the exception
// contexts. None may panic or run on.
func TestBreakpadWalks(t *testing.T) {
	t.Run("fastfail", func(t *testing.T) {
		stub := func(tid int) dumpWalk {
			return dumpWalk{tid, []string{"ntdll.dll+0xa0994 context"}, noImage(0, 0x7ffb0b1d0994, "ntdll.dll+0xa0994", 0)}
		}
		tiny := func(tid int) dumpWalk {
			return dumpWalk{tid, []string{"tiny.exe+0x1af42 context"}, noImage(0, 0x7ff75355af42, "tiny.exe+0x1af42", 1)}
		}
		// The faulting thread's context in the thread list is the
		// exception's: __fastfail does not return to a handler.
		checkWalks(t, "breakpad-tiny-exe-fastfail.dmp", []dumpWalk{tiny(24440), stub(26620), stub(34828), stub(36104), tiny(-1)})
	})
	t.Run("write_av_non_canonical", func(t *testing.T) {
		checkWalks(t, "breakpad-write_av_non_canonical.dmp", []dumpWalk{
			// The faulting thread, from the exception's registers (its
			// thread-list context, in ntdll, is where the dump was
			// written).
			{4488, []string{"crash.exe+0x1331 context"}, noImage(0, 0x7ff738721331, "crash.exe+0x1331", 0)},
			{12152, []string{"ntdll.dll+0x9ee34 context"}, noImage(0, 0x7ffa036aee34, "ntdll.dll+0x9ee34", 0xffffffffffffffff)},
			{-1, []string{"crash.exe+0x1331 context"}, noImage(0, 0x7ff738721331, "crash.exe+0x1331", 0)},
		})
	})
	t.Run("cet-xsave", func(t *testing.T) {
		// A 1407-byte context (CONTEXT with XSTATE and CET): the
		// registers decode; no exception stream.
		checkWalks(t, "breakpad-tiny-exe-with-cet-xsave.dmp", []dumpWalk{
			{1468, []string{"ntdll.dll+0xa39e4 context"}, noImage(0, 0x7ff9111e39e4, "ntdll.dll+0xa39e4", 1)},
		})
	})
}

// TestX86DumpRejected: the stack walk refuses the x86 Windows XP dump
// with an error that says so; the dump itself still opens, for its
// modules and memory.
func TestX86DumpRejected(t *testing.T) {
	d, err := dump.Open(winetest.Testdata(t, "minidumps/breakpad-minidump2.dmp"))
	if err != nil {
		t.Fatalf("open the x86 dump: %v", err)
	}
	defer d.Close()
	s, err := stackwalk.NewSources(d, stackwalk.Options{})
	if s != nil || !errors.Is(err, stackwalk.ErrUnsupportedArch) {
		t.Fatalf("NewSources(x86 dump) = %v, %v; want ErrUnsupportedArch", s, err)
	}
	if msg := err.Error(); !strings.Contains(msg, "x86 (32-bit)") || !strings.Contains(msg, "x64") {
		t.Errorf("error %q does not say the dump is x86 (32-bit) and that only x64 is unwound", msg)
	}
	// Its threads' contexts are refused as well, naming the
	// architecture.
	threads, _ := d.Threads()
	if len(threads) == 0 {
		t.Fatal("no threads")
	}
	err = d.ThreadContext(threads[0].ID, &unwind.Context{})
	if err == nil || !strings.Contains(err.Error(), "PROCESSOR_ARCHITECTURE_INTEL") {
		t.Errorf("ThreadContext of an x86 thread: %v", err)
	}
}

// BenchmarkDumpOpenWalk opens each x64 test dump and walks every thread
// of it, as "fntable stack FILE.dmp --no-symbols" does.
func BenchmarkDumpOpenWalk(b *testing.B) {
	for _, name := range []string{
		"electron-node-minidump-windows-x64.dmp",
		"breakpad-tiny-exe-fastfail.dmp",
		"breakpad-write_av_non_canonical.dmp",
		"breakpad-tiny-exe-with-cet-xsave.dmp",
	} {
		path := winetest.Testdata(b, "minidumps/"+name)
		b.Run(name, func(b *testing.B) {
			frames := 0
			for b.Loop() {
				d, err := dump.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				s, err := stackwalk.NewSources(d, stackwalk.Options{})
				if err != nil {
					b.Fatal(err)
				}
				threads, err := d.Threads()
				if err != nil {
					b.Fatal(err)
				}
				frames = 0
				for _, th := range threads {
					w := s.WalkThread(th.ID)
					for w.Next() {
						frames++
					}
				}
				d.Close()
			}
			b.ReportMetric(float64(frames), "frames")
		})
	}
}
