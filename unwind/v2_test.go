package unwind

import (
	"testing"

	"github.com/fntable/fntable/unwindinfo"
)

// v2Frame builds a version 2 function:
//
//	0  55          push rbp
//	1  41 54       push r12
//	3  48 83 ec 28 sub rsp, 0x28
//	7  90 ...      body
//	   48 83 c4 28 add rsp, 0x28   (before the epilog in version 2)
//	   41 5c       pop r12          <- epilog (length 4)
//	   5d          pop rbp
//	   c3          ret
//
// with a second identical epilog in the middle of the body when twoEpilogs.
func v2Frame(t *testing.T, twoEpilogs bool) (*SplicedMemory, unwindinfo.RuntimeFunction, []uint32) {
	t.Helper()
	epi := []byte{0x48, 0x83, 0xc4, 0x28, 0x41, 0x5c, 0x5d, 0xc3}
	code := []byte{0x55, 0x41, 0x54, 0x48, 0x83, 0xec, 0x28, 0x90, 0x90}
	var starts []uint32 // epilog starts (after the add)
	if twoEpilogs {
		code = append(code, epi...)
		starts = append(starts, uint32(len(code)-4))
		code = append(code, 0x90, 0x90)
	}
	code = append(code, epi...)
	starts = append(starts, uint32(len(code)-4))
	info := &unwindinfo.Info{Version: 2, SizeOfProlog: 7, Codes: []unwindinfo.Code{
		{Offset: 4, Op: unwindinfo.UWOP_EPILOG, OpInfo: 1}, // at end, length 4
	}}
	if twoEpilogs {
		off := uint32(len(code)) - starts[0]
		info.Codes = append(info.Codes, unwindinfo.Code{Offset: uint8(off), Op: unwindinfo.UWOP_EPILOG, OpInfo: uint8(off >> 8)})
	} else {
		info.Codes = append(info.Codes, unwindinfo.Code{Op: unwindinfo.UWOP_EPILOG}) // padding
	}
	info.Codes = append(info.Codes,
		unwindinfo.Code{Offset: 7, Op: unwindinfo.UWOP_ALLOC_SMALL, OpInfo: 4},
		unwindinfo.Code{Offset: 3, Op: unwindinfo.UWOP_PUSH_NONVOL, OpInfo: uint8(unwindinfo.R12)},
		unwindinfo.Code{Offset: 1, Op: unwindinfo.UWOP_PUSH_NONVOL, OpInfo: uint8(unwindinfo.RBP)},
	)
	if err := info.Validate(); err != nil {
		t.Fatal(err)
	}
	ib, err := info.Encode()
	if err != nil {
		t.Fatal(err)
	}
	mem := &SplicedMemory{}
	mem.Add(0x10001000, code)
	mem.Add(0x10002000, ib)
	stack := make([]byte, 0x200)
	for i := 0; i < len(stack); i += 8 {
		putU64(stack[i:], 0x7000+uint64(i))
	}
	mem.Add(0x7000, stack)
	return mem, unwindinfo.RuntimeFunction{BeginAddress: 0x1000, EndAddress: 0x1000 + uint32(len(code)), UnwindData: 0x2000}, starts
}

func TestV2Epilogs(t *testing.T) {
	for _, two := range []bool{false, true} {
		mem, fn, starts := v2Frame(t, two)
		for _, start := range starts {
			cases := []struct {
				k             uint32 // offset into the epilog
				r12, rbp      bool   // restored
				rsp, rip      uint64
				bodyUnwinding bool
			}{
				{k: 0, r12: true, rbp: true, rsp: 0x7018, rip: 0x7010},
				{k: 2, rbp: true, rsp: 0x7010, rip: 0x7008},
				{k: 3, rsp: 0x7008, rip: 0x7000},
			}
			for _, c := range cases {
				pc := 0x10001000 + uint64(start+c.k)
				ctx := Context{Rsp: 0x7000, Rbp: 1, R12: 2}
				res, err := VirtualUnwind(HandlerException, 0x10000000, pc, &fn, &ctx, nil, mem)
				if err != nil {
					t.Fatal(err)
				}
				if !res.InEpilog() || ctx.Rsp != c.rsp || ctx.Rip != c.rip {
					t.Errorf("two=%v start %#x k=%d: in=%v rsp %#x rip %#x, want %#x %#x", two, start, c.k, res.InEpilog(), ctx.Rsp, ctx.Rip, c.rsp, c.rip)
				}
				if (ctx.R12 != 2) != c.r12 || (ctx.Rbp != 1) != c.rbp {
					t.Errorf("two=%v k=%d: r12 %#x rbp %#x", two, c.k, ctx.R12, ctx.Rbp)
				}
			}
			// At the add (before the epilog proper) the body rules apply:
			// rsp += 0x28, pop r12, pop rbp, ret.
			pc := 0x10001000 + uint64(start-4)
			ctx := Context{Rsp: 0x7000}
			res, err := VirtualUnwind(HandlerException, 0x10000000, pc, &fn, &ctx, nil, mem)
			if err != nil || res.InEpilog() || ctx.Rsp != 0x7040 || ctx.Rip != 0x7038 || ctx.R12 != 0x7028 || ctx.Rbp != 0x7030 {
				t.Errorf("two=%v at add: err %v in=%v %+v", two, err, res.InEpilog(), ctx)
			}
		}
	}
}
