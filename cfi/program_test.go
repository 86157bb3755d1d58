package cfi

import (
	"errors"
	"strings"
	"testing"
)

// The CIE of the op tests: CFA rsp+8, return address at CFA-8.
var stdCIE = []byte{DW_CFA_def_cfa, 7, 8, DW_CFA_offset | 16, 1}

func TestCFAOps(t *testing.T) {
	const begin = 0x1000
	for _, tc := range []struct {
		name string
		prog []byte
		want string // the rows, "; "-separated
	}{
		{"empty", nil, "0x1000 rsp+8 rip=c-8"},
		{"nop", []byte{DW_CFA_nop, DW_CFA_nop}, "0x1000 rsp+8 rip=c-8"},
		{"advance_loc+offset", []byte{DW_CFA_advance_loc | 1, DW_CFA_def_cfa_offset, 16, DW_CFA_offset | 6, 2},
			"0x1000 rsp+8 rip=c-8; 0x1001 rsp+16 rbp=c-16 rip=c-8"},
		{"advance_loc1/2/4/8", cat([]byte{DW_CFA_advance_loc1, 2, DW_CFA_advance_loc2}, []byte{3, 0}, []byte{DW_CFA_advance_loc4}, u32(4), []byte{DW_CFA_MIPS_advance_loc8}, u64(5)),
			"0x1000 rsp+8 rip=c-8; 0x1002 rsp+8 rip=c-8; 0x1005 rsp+8 rip=c-8; 0x1009 rsp+8 rip=c-8; 0x100e rsp+8 rip=c-8"},
		{"set_loc", cat([]byte{DW_CFA_set_loc}, u64(0x1040)), "0x1000 rsp+8 rip=c-8; 0x1040 rsp+8 rip=c-8"},
		{"offset_extended", []byte{DW_CFA_offset_extended, 3, 3}, "0x1000 rsp+8 rbx=c-24 rip=c-8"},
		{"offset_extended_sf", cat([]byte{DW_CFA_offset_extended_sf, 3}, sleb128(-4)), "0x1000 rsp+8 rbx=c+32 rip=c-8"},
		{"GNU_negative_offset_extended", []byte{DW_CFA_GNU_negative_offset_extended, 3, 2}, "0x1000 rsp+8 rbx=c+16 rip=c-8"},
		{"val_offset", []byte{DW_CFA_val_offset, 7, 1}, "0x1000 rsp+8 rsp=v-8 rip=c-8"},
		{"val_offset_sf", cat([]byte{DW_CFA_val_offset_sf, 7}, sleb128(1)), "0x1000 rsp+8 rsp=v-8 rip=c-8"},
		{"restore", []byte{DW_CFA_offset | 16, 3, DW_CFA_offset | 3, 2, DW_CFA_restore | 16, DW_CFA_restore | 3}, "0x1000 rsp+8 rip=c-8"},
		{"restore_extended", []byte{DW_CFA_offset | 16, 3, DW_CFA_restore_extended, 16}, "0x1000 rsp+8 rip=c-8"},
		{"undefined", []byte{DW_CFA_undefined, 16}, "0x1000 rsp+8 rip=u"},
		{"same_value", []byte{DW_CFA_same_value, 12}, "0x1000 rsp+8 r12=s rip=c-8"},
		{"register", []byte{DW_CFA_register, 3, 12}, "0x1000 rsp+8 rbx=r12 rip=c-8"},
		{"remember/restore_state", []byte{DW_CFA_def_cfa_offset, 16, DW_CFA_offset | 3, 2, DW_CFA_remember_state, DW_CFA_def_cfa_offset, 8, DW_CFA_restore | 3, DW_CFA_advance_loc | 1, DW_CFA_restore_state},
			"0x1000 rsp+8 rip=c-8; 0x1001 rsp+16 rbx=c-16 rip=c-8"},
		{"def_cfa", []byte{DW_CFA_def_cfa, 6, 16}, "0x1000 rbp+16 rip=c-8"},
		{"def_cfa_sf", cat([]byte{DW_CFA_def_cfa_sf, 6}, sleb128(-2)), "0x1000 rbp+16 rip=c-8"},
		{"def_cfa_register", []byte{DW_CFA_def_cfa_register, 6}, "0x1000 rbp+8 rip=c-8"},
		{"def_cfa_offset_sf", cat([]byte{DW_CFA_def_cfa_offset_sf}, sleb128(-4)), "0x1000 rsp+32 rip=c-8"},
		{"def_cfa_expression", []byte{DW_CFA_def_cfa_expression, 2, DW_OP_breg0 + 7, 8}, "0x1000 exp rip=c-8"},
		{"expression", []byte{DW_CFA_expression, 3, 2, DW_OP_breg0 + 7, 8}, "0x1000 rsp+8 rbx=exp rip=c-8"},
		{"val_expression", []byte{DW_CFA_val_expression, 3, 1, DW_OP_lit0}, "0x1000 rsp+8 rbx=vexp rip=c-8"},
		{"GNU_args_size", []byte{DW_CFA_GNU_args_size, 0x80, 1}, "0x1000 rsp+8 rip=c-8"},
		{"xmm ignored", []byte{DW_CFA_offset | 17, 2}, "0x1000 rsp+8 rip=c-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range []struct {
				is64    bool
				version byte
			}{{false, 1}, {false, 3}, {true, 4}} {
				s := newTestSection(debugFrame, buildDebugFrame(v.is64, v.version, stdCIE, begin, 0x100, tc.prog), 0)
				var got []string
				err := s.forEachFDE(func(fd *fde, err error) bool {
					if err != nil {
						t.Fatal(err)
					}
					rows, err := s.rows(fd)
					if err != nil {
						t.Fatal(err)
					}
					for _, r := range rows {
						got = append(got, rowString(r))
					}
					return true
				})
				if err != nil {
					t.Fatal(err)
				}
				if g := strings.Join(got, "; "); g != tc.want {
					t.Errorf("64-bit %v version %d:\ngot  %s\nwant %s", v.is64, v.version, g, tc.want)
				}
			}
		})
	}
}

func TestCFAOpErrors(t *testing.T) {
	deep := make([]byte, MaxStateDepth+1)
	for i := range deep {
		deep[i] = DW_CFA_remember_state
	}
	for _, tc := range []struct {
		name string
		prog []byte
		want error
	}{
		{"restore_state without remember", []byte{DW_CFA_restore_state}, ErrMalformed},
		{"unknown op", []byte{0x3f}, ErrMalformed},
		{"truncated operand", []byte{DW_CFA_def_cfa, 7}, ErrMalformed},
		{"truncated uleb", []byte{DW_CFA_def_cfa_offset, 0x80}, ErrMalformed},
		{"expression past the end", []byte{DW_CFA_expression, 3, 9, 0}, ErrMalformed},
		{"remember_state too deep", deep, ErrLimit},
	} {
		s := newTestSection(debugFrame, buildDebugFrame(false, 1, stdCIE, 0x1000, 0x100, tc.prog), 0)
		s.forEachFDE(func(fd *fde, err error) bool {
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			_, err = s.rows(fd)
			if !errors.Is(err, tc.want) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			}
			return true
		})
	}
}

// TestEhFrame checks .eh_frame's differences from .debug_frame: CIE id 0,
// CIE pointers relative to their field, pcrel addresses, the terminator.
func TestEhFrame(t *testing.T) {
	const addr, begin = 0x2000, 0x1000
	data := buildEhFrame(addr, stdCIE, begin, 0x10, []byte{DW_CFA_advance_loc | 1, DW_CFA_def_cfa_offset, 16}, []byte{DW_CFA_undefined, 16})
	data = append(data, 0xde, 0xad) // after the terminator: not read
	s := newTestSection(ehFrame, data, addr)
	var got []string
	if err := s.forEachFDE(func(fd *fde, err error) bool {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, rowString(Row{Loc: fd.begin}))
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("FDEs %q", got)
	}
	fd, err := s.search(begin + 0xf)
	if err != nil || fd == nil || fd.begin != begin || fd.end != begin+0x10 {
		t.Fatalf("search = %+v, %v", fd, err)
	}
	if fd, err := s.search(begin + 0x10); fd == nil || err != nil || fd.begin != begin+0x10 {
		t.Errorf("search of the second FDE = %+v, %v", fd, err)
	}
	if fd, err := s.search(begin + 0x20); fd != nil || err != nil {
		t.Errorf("search past the end = %+v, %v", fd, err)
	}
	var st regState
	if err := s.rulesAt(fd, begin+1, &st); err != nil || st.cfa.Offset != 16 {
		t.Errorf("rulesAt = %v, %v", st.cfa, err)
	}
	if err := s.rulesAt(fd, begin, &st); err != nil || st.cfa.Offset != 8 {
		t.Errorf("rulesAt(begin) = %v, %v", st.cfa, err)
	}
}

func TestCIEErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"version 2", buildDebugFrame(false, 2, nil, 0, 1, nil)},
		{"unknown augmentation", cat(entryBytes(false, 0xffffffff, []byte{1, 'x', 0, 1, 0x78, 16}), entryBytes(false, 0, cat(u64(0), u64(1))))},
		{"return address register 99", cat(entryBytes(false, 0xffffffff, []byte{3, 0, 1, 0x78, 99}), entryBytes(false, 0, cat(u64(0), u64(1))))},
		{"CIE pointer past the section", entryBytes(false, 0x1000, cat(u64(0), u64(1)))},
		{"CIE pointer to an FDE", cat(entryBytes(false, 0x10, cat(u64(0), u64(1))), entryBytes(false, 0, cat(u64(0), u64(1))))},
		{"range wraps", buildDebugFrame(false, 1, nil, ^uint64(0), 2, nil)},
		{"reserved length", cat(u32(0xfffffff0), u32(0))},
		{"length past the end", cat(u32(100), u32(0))},
	} {
		s := newTestSection(debugFrame, tc.data, 0)
		var errs []error
		err := s.forEachFDE(func(fd *fde, err error) bool {
			errs = append(errs, err)
			return true
		})
		if err == nil && (len(errs) == 0 || errs[0] == nil) {
			t.Errorf("%s: no error", tc.name)
		}
		for _, e := range append(errs, err) {
			if e != nil && !errors.Is(e, ErrMalformed) {
				t.Errorf("%s: %v does not wrap ErrMalformed", tc.name, e)
			}
		}
	}
}
