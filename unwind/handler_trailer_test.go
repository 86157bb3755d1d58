package unwind_test

import (
	"encoding/binary"
	"testing"

	"github.com/fntable/fntable/unwind"
	"github.com/fntable/fntable/unwindinfo"
)

// TestHandlerTrailerMissing unwinds through an UNWIND_INFO whose flags
// name a handler but whose handler RVA is not in memory, as in a
// minidump: dbghelp saves only the header and codes (the Electron dump
// holds the 4 bytes 09 00 00 00 of V8's entry). Unwinding needs no more;
// only a request for the handler reads the trailer.
func TestHandlerTrailerMissing(t *testing.T) {
	const (
		base  = 0x10000000
		stack = 0x7fff0000
		ret   = 0x401234
	)
	var mem unwind.SplicedMemory
	mem.Add(base+0xC, []byte{0x09, 0, 0, 0}) // version 1, UNW_FLAG_EHANDLER, no codes
	st := make([]byte, 64)
	binary.LittleEndian.PutUint64(st, ret)
	mem.Add(stack, st)
	fn := unwindinfo.RuntimeFunction{BeginAddress: 0, EndAddress: 0x1000, UnwindData: 0xC}

	for _, tc := range []struct {
		name string
		ht   unwind.HandlerType
		ok   bool
	}{
		{"no handler asked", unwind.HandlerNone, true},
		{"exception handler asked", unwind.HandlerException, false},
	} {
		ctx := unwind.Context{Rip: base + 0x100, Rsp: stack}
		_, err := unwind.VirtualUnwind(tc.ht, base, ctx.Rip, &fn, &ctx, nil, &mem)
		if tc.ok != (err == nil) {
			t.Errorf("%s: err = %v", tc.name, err)
			continue
		}
		if tc.ok && (ctx.Rip != ret || ctx.Rsp != stack+8) {
			t.Errorf("%s: rip %#x rsp %#x, want %#x %#x", tc.name, ctx.Rip, ctx.Rsp, ret, stack+8)
		}
	}

	// With the trailer in memory the handler is reported.
	mem.Add(base+0x10, []byte{0x00, 0x20, 0, 0})
	ctx := unwind.Context{Rip: base + 0x100, Rsp: stack}
	res, err := unwind.VirtualUnwind(unwind.HandlerException, base, ctx.Rip, &fn, &ctx, nil, &mem)
	if err != nil || res.HandlerRoutine != base+0x2000 || res.HandlerData != base+0x14 {
		t.Errorf("handler: %+v, %v", res, err)
	}
}
