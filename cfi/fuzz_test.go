package cfi

import (
	"debug/elf"
	"testing"

	"github.com/fntable/fntable/unwind"
)

// libcSeeds returns slices of libc's .eh_frame: the first CIE with a few
// FDEs, and the signal frame's CIE and FDE. Slices start at a CIE, so the
// relative CIE pointers of the FDEs after it stay valid.
func libcSeeds() (seeds [][]byte, addr uint64) {
	ef, err := elf.Open(libcPath)
	if err != nil {
		return nil, 0
	}
	defer ef.Close()
	s := ef.Section(".eh_frame")
	if s == nil {
		return nil, 0
	}
	data, err := s.Data()
	if err != nil {
		return nil, 0
	}
	sec := newTestSection(ehFrame, data, s.Addr)
	seeds = append(seeds, data[:min(len(data), 1024)])
	for off := 0; off < len(data); {
		e, err := sec.entryAt(off)
		if err != nil || e.zero {
			break
		}
		if e.isCIE && off > 0 {
			seeds = append(seeds, data[off:min(len(data), off+512)])
		}
		off = e.end
	}
	return seeds, s.Addr
}

// FuzzParse parses arbitrary .eh_frame and .debug_frame bytes: every FDE,
// all its rows, a lookup of pc and a Step there.
func FuzzParse(f *testing.F) {
	seeds, addr := libcSeeds()
	for _, s := range seeds {
		f.Add(s, addr, uint64(0x26010), false)
	}
	f.Add(buildEhFrame(0x2000, stdCIE, 0x1000, 0x10, []byte{DW_CFA_advance_loc | 1, DW_CFA_def_cfa_offset, 16}), uint64(0x2000), uint64(0x1001), false)
	f.Add(buildDebugFrame(true, 4, stdCIE, 0x1000, 0x10, []byte{DW_CFA_advance_loc | 1, DW_CFA_def_cfa_expression, 2, DW_OP_breg0 + 7, 8}), uint64(0), uint64(0x1001), true)
	f.Add(buildDebugFrame(false, 3, stdCIE, 0x1000, 0x10, []byte{DW_CFA_remember_state, DW_CFA_restore_state}), uint64(0), uint64(0x1000), true)
	f.Fuzz(func(t *testing.T, data []byte, addr, pc uint64, debug bool) {
		kind := ehFrame
		if debug {
			kind = debugFrame
		}
		s := newTestSection(kind, data, addr)
		s.bases = bases{data: addr, hasData: true, addrSize: 8}
		n := 0
		s.forEachFDE(func(fd *fde, err error) bool {
			if err != nil {
				return true
			}
			if fd.begin > fd.end || fd.cie == nil {
				t.Fatalf("bad FDE %+v", fd)
			}
			rows, _ := s.rows(fd)
			if len(rows) > MaxRows {
				t.Fatalf("%d rows", len(rows))
			}
			n++
			return n < 64
		})
		if h, _ := parseHdr(data, addr, s); h != nil {
			if off, ok := h.lookup(pc); ok {
				s.mu.Lock()
				s.fdeAt(off)
				s.mu.Unlock()
			}
		}
		fd, _ := s.search(pc)
		if fd == nil {
			return
		}
		if pc < fd.begin || pc >= fd.end {
			t.Fatalf("search(%#x) found [%#x, %#x)", pc, fd.begin, fd.end)
		}
		var st regState
		if s.rulesAt(fd, pc, &st) != nil {
			return
		}
		ctx := testContext()
		ctx.Rsp = 0x8000
		var mem unwind.SplicedMemory
		mem.Add(0x7000, make([]byte, 0x2000))
		apply(&st, fd.cie, &ctx, &mem, StepResult{})
	})
}

// FuzzEvaluate evaluates an arbitrary DWARF expression, and runs an
// arbitrary CFA program and Step's register recovery, over synthetic
// memory.
func FuzzEvaluate(f *testing.F) {
	f.Add([]byte{DW_OP_breg0 + 7, 8, DW_OP_breg0 + 16, 0, DW_OP_lit0 + 15, DW_OP_and, DW_OP_lit0 + 11, DW_OP_ge, DW_OP_lit0 + 3, DW_OP_shl, DW_OP_plus}, []byte{DW_CFA_def_cfa_offset, 16})
	f.Add([]byte{DW_OP_breg0 + 7, 160, 1, DW_OP_deref}, []byte{DW_CFA_def_cfa_expression, 4, DW_OP_breg0 + 7, 160, 1, DW_OP_deref, DW_CFA_expression, 16, 3, DW_OP_breg0 + 7, 168, 1})
	f.Add([]byte{DW_OP_lit0 + 1, DW_OP_bra, 0xfc, 0xff}, []byte{DW_CFA_remember_state, DW_CFA_offset | 3, 2, DW_CFA_restore_state, DW_CFA_val_expression, 6, 1, DW_OP_call_frame_cfa})
	f.Add([]byte{DW_OP_lit0 + 9, DW_OP_lit0 + 3, DW_OP_div, DW_OP_dup, DW_OP_rot, DW_OP_pick, 1}, []byte{DW_CFA_register, 16, 3})
	f.Fuzz(func(t *testing.T, expr, prog []byte) {
		ctx := testContext()
		ctx.Rsp = 0x8000
		var mem unwind.SplicedMemory
		stack := make([]byte, 0x2000)
		for i := range stack {
			stack[i] = byte(i * 7)
		}
		mem.Add(0x7000, stack)
		env := evalEnv{ctx: &ctx, mem: &mem, cfa: 0x8010, haveCFA: true}
		eval(expr, &env, 0x8010)

		s := newTestSection(debugFrame, buildDebugFrame(false, 3, stdCIE, 0x1000, 0x100, prog), 0)
		s.forEachFDE(func(fd *fde, err error) bool {
			if err != nil {
				return false
			}
			s.rows(fd)
			var st regState
			for _, pc := range []uint64{0x1000, 0x1001, 0x1040, 0x10ff} {
				if s.rulesAt(fd, pc, &st) == nil {
					c := ctx
					apply(&st, fd.cie, &c, &mem, StepResult{})
				}
			}
			return true
		})
	})
}
