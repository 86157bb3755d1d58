package cfi

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/fntable/fntable/unwind"
)

// Limits on DWARF expressions.
const (
	// MaxExpressionSteps caps the operations one expression evaluation
	// executes; DW_OP_bra and DW_OP_skip can loop. glibc's longest CFI
	// expressions (signal frames) take under ten.
	MaxExpressionSteps = 1000

	// MaxExpressionStack caps the depth of the expression stack. The DWARF
	// expressions in CFI need two or three entries.
	MaxExpressionStack = 64
)

// DWARF expression operations that may appear in call-frame information.
// Reference: DWARF 5 §2.5 and Figure 7.9.
const (
	DW_OP_addr           = 0x03
	DW_OP_deref          = 0x06
	DW_OP_const1u        = 0x08
	DW_OP_const1s        = 0x09
	DW_OP_const2u        = 0x0a
	DW_OP_const2s        = 0x0b
	DW_OP_const4u        = 0x0c
	DW_OP_const4s        = 0x0d
	DW_OP_const8u        = 0x0e
	DW_OP_const8s        = 0x0f
	DW_OP_constu         = 0x10
	DW_OP_consts         = 0x11
	DW_OP_dup            = 0x12
	DW_OP_drop           = 0x13
	DW_OP_over           = 0x14
	DW_OP_pick           = 0x15
	DW_OP_swap           = 0x16
	DW_OP_rot            = 0x17
	DW_OP_abs            = 0x19
	DW_OP_and            = 0x1a
	DW_OP_div            = 0x1b
	DW_OP_minus          = 0x1c
	DW_OP_mod            = 0x1d
	DW_OP_mul            = 0x1e
	DW_OP_neg            = 0x1f
	DW_OP_not            = 0x20
	DW_OP_or             = 0x21
	DW_OP_plus           = 0x22
	DW_OP_plus_uconst    = 0x23
	DW_OP_shl            = 0x24
	DW_OP_shr            = 0x25
	DW_OP_shra           = 0x26
	DW_OP_xor            = 0x27
	DW_OP_bra            = 0x28
	DW_OP_eq             = 0x29
	DW_OP_ge             = 0x2a
	DW_OP_gt             = 0x2b
	DW_OP_le             = 0x2c
	DW_OP_lt             = 0x2d
	DW_OP_ne             = 0x2e
	DW_OP_skip           = 0x2f
	DW_OP_lit0           = 0x30 // ... DW_OP_lit31 = 0x4f
	DW_OP_reg0           = 0x50 // ... DW_OP_reg31 = 0x6f
	DW_OP_breg0          = 0x70 // ... DW_OP_breg31 = 0x8f
	DW_OP_regx           = 0x90
	DW_OP_bregx          = 0x92
	DW_OP_deref_size     = 0x94
	DW_OP_nop            = 0x96
	DW_OP_call_frame_cfa = 0x9c
)

// evalEnv is what an expression reads: the registers of the frame being
// unwound, its memory, and the CFA once known.
type evalEnv struct {
	ctx     *unwind.Context
	mem     unwind.Memory
	cfa     uint64
	haveCFA bool
}

// regValue returns the value of DWARF register r in ctx.
func regValue(ctx *unwind.Context, r int) (uint64, bool) {
	switch {
	case r >= 0 && r < 16:
		return ctx.Reg(dwarfToContext[r]), true
	case r == RegRA:
		return ctx.Rip, true
	}
	return 0, false
}

// eval evaluates the DWARF expression expr with push (if any) on the
// stack first, and returns the value on top of the stack at the end.
//
// DW_OP_regN and DW_OP_regx, register location descriptions that CFI
// should not use, push the register's value, as GDB does for them.
func eval(expr []byte, env *evalEnv, push ...uint64) (uint64, error) {
	var stack [MaxExpressionStack]uint64
	sp := 0
	for _, v := range push {
		stack[sp] = v
		sp++
	}
	c := newCursor("expression", expr, 0, len(expr), 0)
	bad := func(msg string, val any) error {
		return &FormatError{Off: int64(c.Off()), Msg: msg, Val: val}
	}
	for steps := 0; c.Len() > 0; steps++ {
		if steps >= MaxExpressionSteps {
			return 0, fmt.Errorf("cfi: expression runs more than %d steps: %w", MaxExpressionSteps, ErrExpressionTooComplex)
		}
		opOff := c.Off()
		op := c.U8()
		// Operand counts: pop checks the stack, then the operation runs.
		need, pushes := 0, 0
		switch {
		case op >= DW_OP_lit0 && op <= DW_OP_lit0+31,
			op >= DW_OP_reg0 && op <= DW_OP_reg0+31,
			op >= DW_OP_breg0 && op <= DW_OP_breg0+31:
			pushes = 1
		default:
			switch op {
			case DW_OP_addr, DW_OP_const1u, DW_OP_const1s, DW_OP_const2u, DW_OP_const2s,
				DW_OP_const4u, DW_OP_const4s, DW_OP_const8u, DW_OP_const8s,
				DW_OP_constu, DW_OP_consts, DW_OP_regx, DW_OP_bregx, DW_OP_call_frame_cfa:
				pushes = 1
			case DW_OP_dup, DW_OP_deref, DW_OP_deref_size, DW_OP_abs, DW_OP_neg, DW_OP_not,
				DW_OP_plus_uconst, DW_OP_drop, DW_OP_bra:
				need = 1
				if op == DW_OP_dup {
					pushes = 1
				}
			case DW_OP_over:
				need, pushes = 2, 1
			case DW_OP_pick:
				pushes = 1
			case DW_OP_swap, DW_OP_and, DW_OP_div, DW_OP_minus, DW_OP_mod, DW_OP_mul,
				DW_OP_or, DW_OP_plus, DW_OP_shl, DW_OP_shr, DW_OP_shra, DW_OP_xor,
				DW_OP_eq, DW_OP_ge, DW_OP_gt, DW_OP_le, DW_OP_lt, DW_OP_ne:
				need = 2
			case DW_OP_rot:
				need = 3
			case DW_OP_skip, DW_OP_nop:
			default:
				return 0, &FormatError{Off: int64(opOff), Msg: "unsupported expression operation", Val: fmt.Sprintf("%#x", op)}
			}
		}
		if sp < need {
			return 0, &FormatError{Off: int64(opOff), Msg: "expression stack underflow", Val: fmt.Sprintf("%#x", op)}
		}
		if sp+pushes > MaxExpressionStack {
			return 0, fmt.Errorf("cfi: expression stack deeper than %d: %w", MaxExpressionStack, ErrExpressionTooComplex)
		}
		top := &stack[max(sp-1, 0)]
		switch {
		case op >= DW_OP_lit0 && op <= DW_OP_lit0+31:
			stack[sp] = uint64(op - DW_OP_lit0)
			sp++
			continue
		case op >= DW_OP_reg0 && op <= DW_OP_reg0+31, op == DW_OP_regx:
			r := int(op - DW_OP_reg0)
			if op == DW_OP_regx {
				r = regNum(c.ULEB128())
			}
			v, ok := regValue(env.ctx, r)
			if !ok && c.Err() == nil {
				return 0, bad("expression reads register without a value", r)
			}
			stack[sp] = v
			sp++
			continue
		case op >= DW_OP_breg0 && op <= DW_OP_breg0+31, op == DW_OP_bregx:
			r := int(op - DW_OP_breg0)
			if op == DW_OP_bregx {
				r = regNum(c.ULEB128())
			}
			off := c.SLEB128()
			v, ok := regValue(env.ctx, r)
			if !ok && c.Err() == nil {
				return 0, bad("expression reads register without a value", r)
			}
			stack[sp] = v + uint64(off)
			sp++
			continue
		}
		var a, b uint64 // a is below b, b on top
		if need >= 2 {
			a, b = stack[sp-2], stack[sp-1]
		}
		switch op {
		case DW_OP_addr:
			stack[sp] = c.U64()
		case DW_OP_const1u:
			stack[sp] = uint64(c.U8())
		case DW_OP_const1s:
			stack[sp] = uint64(int64(int8(c.U8())))
		case DW_OP_const2u:
			stack[sp] = uint64(c.U16())
		case DW_OP_const2s:
			stack[sp] = uint64(int64(int16(c.U16())))
		case DW_OP_const4u:
			stack[sp] = uint64(c.U32())
		case DW_OP_const4s:
			stack[sp] = uint64(int64(int32(c.U32())))
		case DW_OP_const8u, DW_OP_const8s:
			stack[sp] = c.U64()
		case DW_OP_constu:
			stack[sp] = c.ULEB128()
		case DW_OP_consts:
			stack[sp] = uint64(c.SLEB128())
		case DW_OP_call_frame_cfa:
			if !env.haveCFA {
				return 0, bad("DW_OP_call_frame_cfa where the CFA is not known", nil)
			}
			stack[sp] = env.cfa
		case DW_OP_dup:
			stack[sp] = *top
		case DW_OP_drop:
			sp--
		case DW_OP_over:
			stack[sp] = stack[sp-2]
		case DW_OP_pick:
			i := int(c.U8())
			if i >= sp && c.Err() == nil {
				return 0, bad("DW_OP_pick past the stack", i)
			}
			stack[sp] = stack[max(sp-1-i, 0)]
		case DW_OP_swap:
			stack[sp-2], stack[sp-1] = b, a
		case DW_OP_rot:
			stack[sp-3], stack[sp-2], stack[sp-1] = stack[sp-1], stack[sp-3], stack[sp-2]
		case DW_OP_deref:
			v, err := readU64(env.mem, *top, 8)
			if err != nil {
				return 0, err
			}
			*top = v
		case DW_OP_deref_size:
			n := int(c.U8())
			if (n < 1 || n > 8) && c.Err() == nil {
				return 0, bad("DW_OP_deref_size of an unsupported size", n)
			}
			if c.Err() == nil {
				v, err := readU64(env.mem, *top, n)
				if err != nil {
					return 0, err
				}
				*top = v
			}
		case DW_OP_abs:
			if int64(*top) < 0 {
				*top = -*top
			}
		case DW_OP_neg:
			*top = -*top
		case DW_OP_not:
			*top = ^*top
		case DW_OP_plus_uconst:
			*top += c.ULEB128()
		case DW_OP_and:
			a &= b
		case DW_OP_or:
			a |= b
		case DW_OP_xor:
			a ^= b
		case DW_OP_plus:
			a += b
		case DW_OP_minus:
			a -= b
		case DW_OP_mul:
			a *= b
		case DW_OP_div:
			// Signed, as in GCC's unwinder (unwind-dw2.c).
			if b == 0 {
				return 0, bad("expression divides by zero", nil)
			}
			a = uint64(int64(a) / int64(b))
		case DW_OP_mod:
			// Unsigned, as in GCC's unwinder.
			if b == 0 {
				return 0, bad("expression divides by zero", nil)
			}
			a %= b
		case DW_OP_shl:
			a <<= b
		case DW_OP_shr:
			a >>= b
		case DW_OP_shra:
			a = uint64(int64(a) >> min(b, 63))
		case DW_OP_eq:
			a = b2u(a == b)
		case DW_OP_ne:
			a = b2u(a != b)
		case DW_OP_lt:
			a = b2u(int64(a) < int64(b))
		case DW_OP_le:
			a = b2u(int64(a) <= int64(b))
		case DW_OP_gt:
			a = b2u(int64(a) > int64(b))
		case DW_OP_ge:
			a = b2u(int64(a) >= int64(b))
		case DW_OP_skip, DW_OP_bra:
			d := int(int16(c.U16()))
			taken := true
			if op == DW_OP_bra {
				taken = *top != 0
				sp--
			}
			if c.Err() == nil && taken {
				to := c.Off() + d
				if to < 0 || to > len(expr) {
					return 0, bad("branch out of the expression", d)
				}
				c = newCursor("expression", expr, to, len(expr), 0)
			}
		case DW_OP_nop:
		}
		if c.Err() != nil {
			return 0, readerErr(&c.Reader)
		}
		switch {
		case need >= 2 && op != DW_OP_swap && op != DW_OP_rot && op != DW_OP_over:
			stack[sp-2] = a
			sp--
		case pushes == 1:
			sp++
		}
	}
	if c.Err() != nil {
		return 0, readerErr(&c.Reader)
	}
	if sp == 0 {
		return 0, &FormatError{Off: int64(len(expr)), Msg: "expression leaves an empty stack"}
	}
	return stack[sp-1], nil
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// readU64 reads an n-byte (1–8) little-endian value at addr. A failed
// read returns an error that wraps the Memory's, and always
// unwind.ErrShortRead.
func readU64(mem unwind.Memory, addr uint64, n int) (uint64, error) {
	if bs, ok := mem.(unwind.ByteSource); ok {
		// Memory kept in Go: read in place, without a buffer that
		// would escape through the interface call.
		if start, run := bs.Bytes(addr); addr >= start && addr-start < uint64(len(run)) && uint64(len(run))-(addr-start) >= uint64(n) {
			var v uint64
			for i, c := range run[addr-start : addr-start+uint64(n)] {
				v |= uint64(c) << (8 * i)
			}
			return v, nil
		}
	}
	var b [8]byte
	if mem == nil {
		return 0, fmt.Errorf("cfi: read %d bytes at %#x: %w", n, addr, &unwind.UnmappedError{Addr: addr})
	}
	got, err := mem.ReadMemory(b[:n], addr)
	if got != n {
		switch {
		case err == nil:
			err = unwind.ErrShortRead
		case !errors.Is(err, unwind.ErrShortRead):
			err = fmt.Errorf("%w: %w", unwind.ErrShortRead, err)
		}
		return 0, fmt.Errorf("cfi: read %d bytes at %#x: %w", n, addr, err)
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}
