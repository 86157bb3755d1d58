package stackwalk_test

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/fntable/fntable/stackwalk"
	"github.com/fntable/fntable/unwind"
	"github.com/fntable/fntable/unwindinfo"
)

// scanTarget lays out JIT code at codeBase whose one function (described
// by a dynamic table) calls at callAt with a 5-byte call rel32, and a
// stack at stackLo holding junk, then words given by slots.
func scanTarget(t *testing.T, slots []uint64) (*unwind.SplicedMemory, unwind.FunctionTable) {
	t.Helper()
	const codeBase = 0x10000
	code := make([]byte, 0x300)
	for i := range 0x100 {
		code[i] = 0x90 // nop
	}
	code[0x10] = 0xe8 // call rel32 at 0x10010; returns to 0x10015
	// A second call, "call rax" (FF D0), at 0x10040; returns to 0x10042.
	code[0x40], code[0x41] = 0xff, 0xd0
	// UNWIND_INFO at RVA 0x200: v1, no codes (RSP points at the return
	// address).
	code[0x200] = 1
	stack := make([]byte, 0x1000)
	for i, v := range slots {
		binary.LittleEndian.PutUint64(stack[8*i:], v)
	}
	mem := &unwind.SplicedMemory{}
	mem.Add(codeBase, code)
	mem.Add(stackLo, stack)
	table := unwind.NewSortedTable(codeBase, []unwindinfo.RuntimeFunction{{BeginAddress: 0, EndAddress: 0x100, UnwindData: 0x200}})
	return mem, table
}

// TestScan walks from a PC no unwinder knows: without Options.Scan the
// walk ends there; with it the first word that follows a call in the
// table's code is the caller, past junk and past words that point into
// code but not after a call.
func TestScan(t *testing.T) {
	slots := []uint64{
		0x1234,     // junk
		0x10016,    // in the table's code, not after a call
		0x7fff0000, // unmapped
		0x10015,    // after call rel32: the caller
		0x10042,    // after call rax: its caller
		0,          // the end of the stack
	}
	mem, table := scanTarget(t, slots)
	start := unwind.Context{Rip: 0x50000, Rsp: stackLo}

	s, err := stackwalk.NewSources(nil, stackwalk.Options{Memory: mem, FunctionTableAccess: table})
	if err != nil {
		t.Fatal(err)
	}
	frames, err := walkAll(t, s, start)
	if len(frames) != 1 || !errors.Is(err, stackwalk.ErrNoUnwinder) {
		t.Fatalf("without Scan: %d frames, err %v; want 1 frame and ErrNoUnwinder", len(frames), err)
	}

	s, err = stackwalk.NewSources(nil, stackwalk.Options{Memory: mem, FunctionTableAccess: table, Scan: true})
	if err != nil {
		t.Fatal(err)
	}
	frames, err = walkAll(t, s, start)
	if err != nil {
		t.Fatalf("with Scan: %v", err)
	}
	want := []struct {
		pc, sp uint64
		how    stackwalk.How
	}{
		{0x50000, stackLo, stackwalk.HowContext},
		{0x10015, stackLo + 4*8, stackwalk.HowScan},
		{0x10042, stackLo + 5*8, stackwalk.HowTable},
	}
	if len(frames) != len(want) {
		t.Fatalf("got %d frames %+v, want %d", len(frames), frames, len(want))
	}
	for i, w := range want {
		if f := frames[i]; f.PC != w.pc || f.SP != w.sp || f.How != w.how {
			t.Errorf("frame %d: pc %#x sp %#x %v, want pc %#x sp %#x %v", i, f.PC, f.SP, f.How, w.pc, w.sp, w.how)
		}
	}
	if got := stackwalk.HowScan.String(); got != "scan" {
		t.Errorf("HowScan.String() = %q", got)
	}
}

// TestScanNothing: a scan that finds no return address within its bound
// ends the walk with ErrNoUnwinder, saying so.
func TestScanNothing(t *testing.T) {
	mem, table := scanTarget(t, []uint64{0x1234, 0x10016})
	s, err := stackwalk.NewSources(nil, stackwalk.Options{Memory: mem, FunctionTableAccess: table, Scan: true})
	if err != nil {
		t.Fatal(err)
	}
	frames, err := walkAll(t, s, unwind.Context{Rip: 0x50000, Rsp: stackLo})
	if len(frames) != 1 || !errors.Is(err, stackwalk.ErrNoUnwinder) {
		t.Fatalf("%d frames, err %v; want 1 frame and ErrNoUnwinder", len(frames), err)
	}
}
