package cfi

import (
	"fmt"
	"math"
	"slices"
)

// Call frame instructions. Reference: DWARF 5 §6.4.2 and Figure 7.29;
// DW_CFA_GNU_* from GCC's dwarf2.def.
const (
	DW_CFA_advance_loc = 0x40 // high two bits; delta in the low six
	DW_CFA_offset      = 0x80 // high two bits; register in the low six
	DW_CFA_restore     = 0xc0 // high two bits; register in the low six

	DW_CFA_nop                          = 0x00
	DW_CFA_set_loc                      = 0x01
	DW_CFA_advance_loc1                 = 0x02
	DW_CFA_advance_loc2                 = 0x03
	DW_CFA_advance_loc4                 = 0x04
	DW_CFA_offset_extended              = 0x05
	DW_CFA_restore_extended             = 0x06
	DW_CFA_undefined                    = 0x07
	DW_CFA_same_value                   = 0x08
	DW_CFA_register                     = 0x09
	DW_CFA_remember_state               = 0x0a
	DW_CFA_restore_state                = 0x0b
	DW_CFA_def_cfa                      = 0x0c
	DW_CFA_def_cfa_register             = 0x0d
	DW_CFA_def_cfa_offset               = 0x0e
	DW_CFA_def_cfa_expression           = 0x0f
	DW_CFA_expression                   = 0x10
	DW_CFA_offset_extended_sf           = 0x11
	DW_CFA_def_cfa_sf                   = 0x12
	DW_CFA_def_cfa_offset_sf            = 0x13
	DW_CFA_val_offset                   = 0x14
	DW_CFA_val_offset_sf                = 0x15
	DW_CFA_val_expression               = 0x16
	DW_CFA_MIPS_advance_loc8            = 0x1d
	DW_CFA_GNU_args_size                = 0x2e
	DW_CFA_GNU_negative_offset_extended = 0x2f
)

// machine runs CFA programs (DWARF 5 §6.4.2) over a regState.
type machine struct {
	sec   *section
	cie   *cie
	init  *regState // the CIE's initial rules, for DW_CFA_restore; nil in the CIE itself
	st    regState
	loc   uint64
	saved []regState // the DW_CFA_remember_state stack
}

// run executes insns, whose first byte is at section offset off.
//
// With rows nil it stops before the first row that starts after pc, so
// that m.st holds the rules at pc. With rows non-nil it appends a row at
// every DW_CFA_advance_loc* and DW_CFA_set_loc and one at the end, as
// readelf --debug-dump=frames-interp prints them, and pc is ignored.
func (m *machine) run(insns []byte, off int, pc uint64, rows *[]Row) error {
	s := m.sec
	c := newCursor(s.name, s.data, off, off+len(insns), s.addr)
	ci := m.cie
	b := s.bases
	b.addrSize = ci.addrSize
	// advance moves to newLoc; it reports false when run must stop.
	advance := func(newLoc uint64) (bool, error) {
		if rows == nil {
			if newLoc > pc {
				return false, nil
			}
		} else {
			if len(*rows) >= MaxRows {
				return false, fmt.Errorf("cfi: %s: FDE at %#x has more than %d rows: %w", s.name, off, MaxRows, ErrLimit)
			}
			*rows = append(*rows, Row{Loc: m.loc, CFA: m.st.cfa, Regs: m.st.regs})
		}
		m.loc = newLoc
		return true, nil
	}
	set := func(reg uint64, r Rule) {
		if reg < NumRegs {
			m.st.regs[reg] = r
		}
	}
	block := func() []byte {
		n := c.ULEB128()
		if n > uint64(c.Len()) {
			c.Fail(&FormatError{Msg: "expression longer than its entry", Val: n})
			return nil
		}
		// A copy: a Rule may outlive the section's mapping (see
		// readSection). Expressions are rare and a few bytes long.
		return slices.Clone(c.Bytes(int(n)))
	}
	for c.Len() > 0 {
		opOff := c.pos()
		op := c.U8()
		var newLoc uint64
		isAdvance := false
		switch op & 0xc0 {
		case DW_CFA_advance_loc:
			newLoc, isAdvance = m.loc+uint64(op&0x3f)*ci.codeAlign, true
		case DW_CFA_offset:
			set(uint64(op&0x3f), Rule{Kind: RuleOffset, Offset: int64(c.ULEB128()) * ci.dataAlign})
		case DW_CFA_restore:
			m.restore(uint64(op & 0x3f))
		default:
			switch op {
			case DW_CFA_nop:
			case DW_CFA_set_loc:
				var ind bool
				if s.kind == ehFrame {
					newLoc, ind = c.readEncoded(ci.fdeEnc, &b)
				} else {
					newLoc = c.readRaw(DW_EH_PE_absptr, ci.addrSize)
				}
				if ind {
					c.Fail(&FormatError{Msg: "indirect DW_CFA_set_loc"})
				}
				isAdvance = true
			case DW_CFA_advance_loc1:
				newLoc, isAdvance = m.loc+uint64(c.U8())*ci.codeAlign, true
			case DW_CFA_advance_loc2:
				newLoc, isAdvance = m.loc+uint64(c.U16())*ci.codeAlign, true
			case DW_CFA_advance_loc4:
				newLoc, isAdvance = m.loc+uint64(c.U32())*ci.codeAlign, true
			case DW_CFA_MIPS_advance_loc8:
				newLoc, isAdvance = m.loc+c.U64()*ci.codeAlign, true
			case DW_CFA_offset_extended:
				reg := c.ULEB128()
				set(reg, Rule{Kind: RuleOffset, Offset: int64(c.ULEB128()) * ci.dataAlign})
			case DW_CFA_offset_extended_sf:
				reg := c.ULEB128()
				set(reg, Rule{Kind: RuleOffset, Offset: c.SLEB128() * ci.dataAlign})
			case DW_CFA_GNU_negative_offset_extended:
				reg := c.ULEB128()
				set(reg, Rule{Kind: RuleOffset, Offset: -int64(c.ULEB128()) * ci.dataAlign})
			case DW_CFA_val_offset:
				reg := c.ULEB128()
				set(reg, Rule{Kind: RuleValOffset, Offset: int64(c.ULEB128()) * ci.dataAlign})
			case DW_CFA_val_offset_sf:
				reg := c.ULEB128()
				set(reg, Rule{Kind: RuleValOffset, Offset: c.SLEB128() * ci.dataAlign})
			case DW_CFA_restore_extended:
				m.restore(c.ULEB128())
			case DW_CFA_undefined:
				set(c.ULEB128(), Rule{Kind: RuleUndefined})
			case DW_CFA_same_value:
				set(c.ULEB128(), Rule{Kind: RuleSameValue})
			case DW_CFA_register:
				reg := c.ULEB128()
				set(reg, Rule{Kind: RuleRegister, Reg: regNum(c.ULEB128())})
			case DW_CFA_remember_state:
				if len(m.saved) >= MaxStateDepth {
					return fmt.Errorf("cfi: %s: DW_CFA_remember_state at offset %#x nests deeper than %d: %w", s.name, opOff, MaxStateDepth, ErrLimit)
				}
				m.saved = append(m.saved, m.st)
			case DW_CFA_restore_state:
				if len(m.saved) == 0 {
					return &FormatError{Off: int64(opOff), Msg: s.name + ": DW_CFA_restore_state without DW_CFA_remember_state"}
				}
				m.st = m.saved[len(m.saved)-1]
				m.saved = m.saved[:len(m.saved)-1]
			case DW_CFA_def_cfa:
				reg := c.ULEB128()
				m.st.cfa = Rule{Kind: RuleCFA, Reg: regNum(reg), Offset: int64(c.ULEB128())}
			case DW_CFA_def_cfa_sf:
				reg := c.ULEB128()
				m.st.cfa = Rule{Kind: RuleCFA, Reg: regNum(reg), Offset: c.SLEB128() * ci.dataAlign}
			case DW_CFA_def_cfa_register:
				// Valid only after a register-based rule; a CFA
				// expression is replaced, keeping the last offset.
				m.st.cfa = Rule{Kind: RuleCFA, Reg: regNum(c.ULEB128()), Offset: m.st.cfa.Offset}
			case DW_CFA_def_cfa_offset:
				m.st.cfa.Offset = int64(c.ULEB128())
			case DW_CFA_def_cfa_offset_sf:
				m.st.cfa.Offset = c.SLEB128() * ci.dataAlign
			case DW_CFA_def_cfa_expression:
				m.st.cfa = Rule{Kind: RuleCFAExpression, Expr: block()}
			case DW_CFA_expression:
				reg := c.ULEB128()
				set(reg, Rule{Kind: RuleExpression, Expr: block()})
			case DW_CFA_val_expression:
				reg := c.ULEB128()
				set(reg, Rule{Kind: RuleValExpression, Expr: block()})
			case DW_CFA_GNU_args_size:
				c.ULEB128() // the size of outgoing arguments: no effect on the rules
			default:
				return &FormatError{Off: int64(opOff), Msg: s.name + ": unknown call frame instruction", Val: fmt.Sprintf("%#x", op)}
			}
		}
		if c.Err() != nil {
			return readerErr(&c.Reader)
		}
		if isAdvance {
			if ok, err := advance(newLoc); !ok {
				return err
			}
		}
	}
	if rows != nil {
		if len(*rows) >= MaxRows {
			return fmt.Errorf("cfi: %s: FDE at %#x has more than %d rows: %w", s.name, off, MaxRows, ErrLimit)
		}
		*rows = append(*rows, Row{Loc: m.loc, CFA: m.st.cfa, Regs: m.st.regs})
	}
	return nil
}

// restore sets reg's rule back to the one the CIE's initial instructions
// gave it (DW_CFA_restore).
func (m *machine) restore(reg uint64) {
	if reg >= NumRegs {
		return
	}
	if m.init != nil {
		m.st.regs[reg] = m.init.regs[reg]
	} else {
		m.st.regs[reg] = Rule{}
	}
}

// regNum converts a register number from the input to a Rule's Reg; a
// number too big for any register becomes math.MaxInt32.
func regNum(r uint64) int {
	if r > math.MaxInt32 {
		return math.MaxInt32
	}
	return int(r)
}

// rulesAt runs fd's program up to pc (a link-time address in [fd.begin,
// fd.end)) and returns the rules there.
func (s *section) rulesAt(fd *fde, pc uint64, st *regState) error {
	m := machine{sec: s, cie: fd.cie, init: &fd.cie.init, st: fd.cie.init, loc: fd.begin}
	if err := m.run(fd.insns, fd.insnsOff, pc, nil); err != nil {
		return err
	}
	*st = m.st
	return nil
}

// rows returns every row of fd.
func (s *section) rows(fd *fde) ([]Row, error) {
	m := machine{sec: s, cie: fd.cie, init: &fd.cie.init, st: fd.cie.init, loc: fd.begin}
	var rows []Row
	err := m.run(fd.insns, fd.insnsOff, 0, &rows)
	return rows, err
}
