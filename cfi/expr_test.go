package cfi

import (
	"errors"
	"testing"

	"github.com/fntable/fntable/unwind"
)

func TestEval(t *testing.T) {
	ctx := testContext()
	ctx.Rsp, ctx.Rip = 0x7000, 0x40100b
	var mem unwind.SplicedMemory
	data := make([]byte, 0x20)
	putU64(data, 0, 0x1122334455667788)
	mem.Add(0x8000, data)
	env := evalEnv{ctx: &ctx, mem: &mem, cfa: 0x9000, haveCFA: true}
	neg := func(v int64) uint64 { return uint64(v) }
	for _, tc := range []struct {
		name string
		expr []byte
		push []uint64
		want uint64
	}{
		{"lit", []byte{DW_OP_lit0 + 31}, nil, 31},
		{"const1u/1s", []byte{DW_OP_const1u, 0xff, DW_OP_const1s, 0xff, DW_OP_plus}, nil, 0xfe},
		{"const2u/2s", []byte{DW_OP_const2u, 0xff, 0xff, DW_OP_const2s, 0xff, 0xff, DW_OP_minus}, nil, 0x10000},
		{"const4u/4s", cat([]byte{DW_OP_const4u}, u32(7), []byte{DW_OP_const4s}, u32(0xfffffffe), []byte{DW_OP_plus}), nil, 5},
		{"const8u/8s", cat([]byte{DW_OP_const8u}, u64(3), []byte{DW_OP_const8s}, u64(4), []byte{DW_OP_mul}), nil, 12},
		{"constu/consts", cat([]byte{DW_OP_constu}, uleb128(300), []byte{DW_OP_consts}, sleb128(-100), []byte{DW_OP_plus}), nil, 200},
		{"addr", cat([]byte{DW_OP_addr}, u64(0xdead)), nil, 0xdead},
		{"breg rsp (DWARF 7)", cat([]byte{DW_OP_breg0 + 7}, sleb128(-8)), nil, 0x6ff8},
		{"breg rdx (DWARF 1)", []byte{DW_OP_breg0 + 1, 0}, nil, ctx.Rdx},
		{"bregx rip", cat([]byte{DW_OP_bregx, 16}, sleb128(5)), nil, 0x401010},
		{"reg (value)", []byte{DW_OP_reg0 + 3}, nil, ctx.Rbx},
		{"regx", []byte{DW_OP_regx, 2}, nil, ctx.Rcx},
		{"pushed CFA", []byte{DW_OP_plus_uconst, 8}, []uint64{0x100}, 0x108},
		{"call_frame_cfa", []byte{DW_OP_call_frame_cfa}, nil, 0x9000},
		{"dup/drop", []byte{DW_OP_lit1, DW_OP_lit2, DW_OP_dup, DW_OP_drop, DW_OP_drop}, nil, 1},
		{"over", []byte{DW_OP_lit1, DW_OP_lit2, DW_OP_over}, nil, 1},
		{"pick", []byte{DW_OP_lit1, DW_OP_lit2, DW_OP_lit3, DW_OP_pick, 2}, nil, 1},
		{"swap", []byte{DW_OP_lit1, DW_OP_lit2, DW_OP_swap, DW_OP_minus}, nil, 1},
		{"rot", []byte{DW_OP_lit1, DW_OP_lit2, DW_OP_lit3, DW_OP_rot, DW_OP_drop, DW_OP_drop}, nil, 3},
		{"deref", cat([]byte{DW_OP_const2u}, []byte{0x00, 0x80}, []byte{DW_OP_deref}), nil, 0x1122334455667788},
		{"deref_size", []byte{DW_OP_const2u, 0x01, 0x80, DW_OP_deref_size, 2}, nil, 0x6677},
		{"and/or/xor", []byte{DW_OP_lit12, DW_OP_lit10, DW_OP_and, DW_OP_lit1, DW_OP_or, DW_OP_lit3, DW_OP_xor}, nil, 10},
		{"shl/shr", []byte{DW_OP_lit1, DW_OP_lit4, DW_OP_shl, DW_OP_lit2, DW_OP_shr}, nil, 4},
		{"shra", cat([]byte{DW_OP_consts}, sleb128(-16), []byte{DW_OP_lit2, DW_OP_shra}), nil, neg(-4)},
		{"not/neg/abs", []byte{DW_OP_lit5, DW_OP_neg, DW_OP_abs, DW_OP_not}, nil, ^uint64(5)},
		{"div signed", cat([]byte{DW_OP_consts}, sleb128(-9), []byte{DW_OP_lit2, DW_OP_div}), nil, neg(-4)},
		{"mod unsigned", []byte{DW_OP_lit9, DW_OP_lit4, DW_OP_mod}, nil, 1},
		{"comparisons", []byte{DW_OP_lit1, DW_OP_lit2, DW_OP_lt, DW_OP_lit2, DW_OP_lit2, DW_OP_le, DW_OP_plus, DW_OP_lit3, DW_OP_lit2, DW_OP_gt, DW_OP_plus,
			DW_OP_lit2, DW_OP_lit2, DW_OP_ge, DW_OP_plus, DW_OP_lit2, DW_OP_lit2, DW_OP_eq, DW_OP_plus, DW_OP_lit1, DW_OP_lit2, DW_OP_ne, DW_OP_plus}, nil, 6},
		{"signed lt", cat([]byte{DW_OP_consts}, sleb128(-1), []byte{DW_OP_lit0, DW_OP_lt}), nil, 1},
		{"skip", []byte{DW_OP_lit1, DW_OP_skip, 1, 0, DW_OP_lit2, DW_OP_lit3}, nil, 3},
		{"bra taken", []byte{DW_OP_lit7, DW_OP_lit1, DW_OP_bra, 1, 0, DW_OP_lit2}, nil, 7},
		{"bra not taken", []byte{DW_OP_lit7, DW_OP_lit0, DW_OP_bra, 1, 0, DW_OP_lit2}, nil, 2},
		{"nop", []byte{DW_OP_nop, DW_OP_lit4}, nil, 4},
		// glibc's PLT entries: CFA = rsp + 8 + ((rip & 15) >= 11 ? 8 : 0).
		{"plt", []byte{DW_OP_breg0 + 7, 8, DW_OP_breg0 + 16, 0, DW_OP_lit15, DW_OP_and, DW_OP_lit11, DW_OP_ge, DW_OP_lit3, DW_OP_shl, DW_OP_plus}, nil, 0x7010},
	} {
		got, err := eval(tc.expr, &env, tc.push...)
		if err != nil || got != tc.want {
			t.Errorf("%s: %#x, %v; want %#x", tc.name, got, err, tc.want)
		}
	}
}

func TestEvalErrors(t *testing.T) {
	ctx := testContext()
	var mem unwind.SplicedMemory
	env := evalEnv{ctx: &ctx, mem: &mem}
	long := make([]byte, MaxExpressionStack+1)
	for i := range long {
		long[i] = DW_OP_lit1
	}
	for _, tc := range []struct {
		name string
		expr []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"underflow", []byte{DW_OP_plus}, ErrMalformed},
		{"div by zero", []byte{DW_OP_lit1, DW_OP_lit0, DW_OP_div}, ErrMalformed},
		{"mod by zero", []byte{DW_OP_lit1, DW_OP_lit0, DW_OP_mod}, ErrMalformed},
		{"unknown op", []byte{0xe0}, ErrMalformed},
		{"xderef", []byte{DW_OP_lit0, 0x18}, ErrMalformed},
		{"truncated", []byte{DW_OP_const4u, 1}, ErrMalformed},
		{"branch out", []byte{DW_OP_skip, 0x10, 0}, ErrMalformed},
		{"pick too far", []byte{DW_OP_lit0, DW_OP_pick, 1}, ErrMalformed},
		{"deref_size 9", []byte{DW_OP_lit0, DW_OP_deref_size, 9}, ErrMalformed},
		{"register without value", []byte{DW_OP_breg0 + 20, 0}, ErrMalformed},
		{"call_frame_cfa unknown", []byte{DW_OP_call_frame_cfa}, ErrMalformed},
		{"loop", []byte{DW_OP_skip, 0xfd, 0xff}, ErrExpressionTooComplex},
		{"deep", long, ErrExpressionTooComplex},
		{"unmapped", []byte{DW_OP_lit8, DW_OP_deref}, unwind.ErrShortRead},
	} {
		_, err := eval(tc.expr, &env)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	var ue *unwind.UnmappedError
	if _, err := eval([]byte{DW_OP_lit8, DW_OP_deref}, &env); !errors.As(err, &ue) || ue.Addr != 8 {
		t.Errorf("unmapped read: %v", err)
	}
}

func TestPointerEncodings(t *testing.T) {
	const addr = 0x10000 // of the section; values start at offset 4
	b := bases{data: 0x50000, hasData: true, text: 0x1000, hasText: true, fn: 0x2000, hasFn: true, addrSize: 8}
	for _, tc := range []struct {
		name     string
		enc      uint8
		data     []byte
		want     uint64
		indirect bool
		bad      bool
	}{
		{"absptr", DW_EH_PE_absptr, u64(0x1234), 0x1234, false, false},
		{"uleb128", DW_EH_PE_uleb128, uleb128(300), 300, false, false},
		{"udata2", DW_EH_PE_udata2, []byte{0xff, 0xff}, 0xffff, false, false},
		{"udata4", DW_EH_PE_udata4, u32(0xffffffff), 0xffffffff, false, false},
		{"udata8", DW_EH_PE_udata8, u64(1 << 40), 1 << 40, false, false},
		{"sleb128", DW_EH_PE_sleb128, sleb128(-2), ^uint64(1), false, false},
		{"sdata2", DW_EH_PE_sdata2, []byte{0xfe, 0xff}, ^uint64(1), false, false},
		{"sdata4", DW_EH_PE_sdata4, u32(0xfffffffe), ^uint64(1), false, false},
		{"sdata8", DW_EH_PE_sdata8, u64(^uint64(1)), ^uint64(1), false, false},
		{"signed absptr", DW_EH_PE_signed, u64(5), 5, false, false},
		{"pcrel sdata4", DW_EH_PE_pcrel | DW_EH_PE_sdata4, u32(0xfffffff0), addr + 4 - 16, false, false},
		{"datarel", DW_EH_PE_datarel | DW_EH_PE_sdata4, u32(8), 0x50008, false, false},
		{"textrel", DW_EH_PE_textrel | DW_EH_PE_udata2, []byte{2, 0}, 0x1002, false, false},
		{"funcrel", DW_EH_PE_funcrel | DW_EH_PE_udata2, []byte{2, 0}, 0x2002, false, false},
		{"aligned", DW_EH_PE_aligned, cat(u32(0), u64(0x77)), 0x77, false, false},
		{"indirect pcrel", DW_EH_PE_indirect | DW_EH_PE_pcrel | DW_EH_PE_sdata4, u32(4), addr + 8, true, false},
		{"unknown format", 0x05, u64(0), 0, false, true},
		{"unknown application", 0x60, u64(0), 0, false, true},
		{"truncated", DW_EH_PE_udata4, []byte{1}, 0, false, true},
	} {
		data := cat([]byte{0, 0, 0, 0}, tc.data)
		c := newCursor("test", data, 0, len(data), addr)
		c.Skip(4)
		v, ind := c.readEncoded(tc.enc, &b)
		if tc.bad {
			if c.Err() == nil || !errors.Is(readerErr(&c.Reader), ErrMalformed) {
				t.Errorf("%s: no error (%#x)", tc.name, v)
			}
			continue
		}
		if c.Err() != nil || v != tc.want || ind != tc.indirect {
			t.Errorf("%s: %#x indirect=%v err=%v; want %#x indirect=%v", tc.name, v, ind, c.Err(), tc.want, tc.indirect)
		}
	}
	// Without a base, relative encodings fail.
	for _, enc := range []uint8{DW_EH_PE_datarel, DW_EH_PE_textrel, DW_EH_PE_funcrel} {
		c := newCursor("test", u64(0), 0, 8, 0)
		if c.readEncoded(enc|DW_EH_PE_udata4, &bases{addrSize: 8}); c.Err() == nil {
			t.Errorf("encoding %#x without a base: no error", enc)
		}
	}
	c := newCursor("test", nil, 0, 0, 0)
	if v, _ := c.readEncoded(DW_EH_PE_omit, &b); v != 0 || c.Err() != nil {
		t.Error("omit")
	}
}

const (
	DW_OP_lit1 = DW_OP_lit0 + iota + 1
	DW_OP_lit2
	DW_OP_lit3
	DW_OP_lit4
	DW_OP_lit5
	_
	DW_OP_lit7
	DW_OP_lit8
	DW_OP_lit9
	DW_OP_lit10
	DW_OP_lit11
	DW_OP_lit12
	_
	_
	DW_OP_lit15
)
