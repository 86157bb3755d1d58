package functable_test

import (
	"encoding/binary"
	"fmt"
	"log"

	"github.com/fntable/fntable/functable"
	"github.com/fntable/fntable/unwind"
	"github.com/fntable/fntable/unwindinfo"
)

// A JIT describes a function it generated, registers it, and unwinds a
// frame of it: the way a debugger, a profiler or the JIT's own exception
// handling finds the caller. Here the "JIT page" is a byte slice standing
// for the memory at jitBase; a real JIT registers the address of the code
// it made executable, and unwinds through the process's memory
// (target/live.Open(os.Getpid()), say).
func Example() {
	const jitBase = 0x7f0000000000

	// The function at RVA 0x100:
	//   0x00 push rbx
	//   0x01 sub rsp, 0x20
	//   0x05 ... body ...
	// Its unwind information, codes in descending offset order: the
	// allocation ends at 5 (ALLOC_SMALL holds size/8-1), the push at 1.
	info := unwindinfo.Info{Version: 1, SizeOfProlog: 5, Codes: []unwindinfo.Code{
		{Offset: 5, Op: unwindinfo.UWOP_ALLOC_SMALL, OpInfo: 0x20/8 - 1},
		{Offset: 1, Op: unwindinfo.UWOP_PUSH_NONVOL, OpInfo: uint8(unwindinfo.RBX)},
	}}
	ui, err := info.Encode()
	if err != nil {
		log.Fatal(err)
	}
	page := make([]byte, 0x1000)
	copy(page[0x100:], []byte{0x53, 0x48, 0x83, 0xec, 0x20, 0x90, 0x90, 0xc3})
	copy(page[0x800:], ui)

	// Register it, as RtlAddFunctionTable: RVAs from jitBase.
	reg, err := functable.New(functable.Options{})
	if err != nil {
		log.Fatal(err)
	}
	entries := []unwindinfo.RuntimeFunction{{BeginAddress: 0x100, EndAddress: 0x108, UnwindData: 0x800}}
	table, err := reg.AddFunctionTable(entries, jitBase)
	if err != nil {
		log.Fatal(err)
	}
	defer reg.DeleteFunctionTable(table)

	// A thread stopped in the body: below its stack pointer's 0x20 bytes
	// of locals, the saved rbx, then the return address.
	const rsp = 0x7ffd00001000
	stack := make([]byte, 0x40)
	binary.LittleEndian.PutUint64(stack[0x20:], 0x1111)   // the caller's rbx
	binary.LittleEndian.PutUint64(stack[0x28:], 0x401234) // return address
	ctx := unwind.Context{Rip: jitBase + 0x105, Rsp: rsp, Rbx: 0x9999}

	// RtlLookupFunctionEntry, then RtlVirtualUnwind.
	fn, base, ok := reg.LookupFunctionEntry(ctx.Rip)
	if !ok {
		log.Fatal("no entry")
	}
	var mem unwind.SplicedMemory
	mem.Add(jitBase, page)
	mem.Add(rsp, stack)
	if _, err := unwind.VirtualUnwind(unwind.HandlerNone, base, ctx.Rip, fn, &ctx, nil, &mem); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("caller: rip %#x rsp %#x rbx %#x\n", ctx.Rip, ctx.Rsp, ctx.Rbx)
	// Output: caller: rip 0x401234 rsp 0x7ffd00001030 rbx 0x1111
}
