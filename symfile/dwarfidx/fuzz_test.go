package dwarfidx

import (
	"bytes"
	"debug/elf"
	"testing"

	"github.com/fntable/fntable/internal/symtest"
	"github.com/fntable/fntable/symfile"
)

// FuzzSections gives NewSections raw sections, each its own input, and
// asks for the frames at the start, middle and end of every unit's
// ranges and for every function: none of it may panic, hang or allocate
// without bound. Seeds: the C++ test program's sections (not in -short
// mode, since it is built with g++) and a DWARF 5 unit whose DIE repeats
// an attribute resolved after its bases.
func FuzzSections(f *testing.F) {
	if !testing.Short() {
		if ef, err := elf.Open(symtest.CPP(f)); err == nil {
			s := sectionsOf(f, ef)
			f.Add(s.Info, s.Abbrev, s.Str, s.StrOffsets, s.Line, s.LineStr, s.RngLists, s.Ranges, s.Addr, s.Aranges)
			ef.Close()
		}
	}
	// A unit DIE with DW_AT_comp_dir as strx1, and DW_AT_low_pc and
	// DW_AT_high_pc as addrx1, before its bases.
	f.Add([]byte{0x14, 0, 0, 0, 5, 0, 1, 8, 0, 0, 0, 0, 1, 0, 0, 1, 8, 0, 0, 0, 8, 0, 0, 0},
		[]byte{1, 0x11, 0, 0x1b, 0x25, 0x11, 0x29, 0x12, 0x29, 0x72, 0x17, 0x73, 0x17, 0, 0, 0},
		[]byte("dir\x00"), []byte{8, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0}, []byte(nil), []byte(nil),
		[]byte(nil), []byte(nil), []byte{0x14, 0, 0, 0, 5, 0, 8, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0}, []byte(nil))
	f.Fuzz(func(t *testing.T, info, abbrev, str, strOffsets, line, lineStr, rngLists, ranges, addr, aranges []byte) {
		s := &Sections{Info: info, Abbrev: abbrev, Str: str, StrOffsets: strOffsets, Line: line,
			LineStr: lineStr, RngLists: rngLists, Ranges: ranges, Addr: addr, Aranges: aranges}
		query(NewSections(s, symfile.Options{Lines: true}))
	})
}

// FuzzUnitTable gives NewSections a unit table (Sections.Units) with the
// sections it may or may not describe: a table read from a cache can be
// damaged or stale. Nothing may panic or hang, whatever the table says.
// Seeds: the C++ test program's sections with their own table (not in
// -short mode), and a made-up table over a small .debug_info.
func FuzzUnitTable(f *testing.F) {
	if !testing.Short() {
		if ef, err := elf.Open(symtest.CPP(f)); err == nil {
			s := sectionsOf(f, ef)
			if x, err := NewSections(s, symfile.Options{}); err == nil {
				f.Add(s.Info, s.Abbrev, s.Aranges, x.UnitTable())
			}
			ef.Close()
		}
	}
	info := []byte{0x14, 0, 0, 0, 5, 0, 1, 8, 0, 0, 0, 0, 1, 0, 0, 1, 8, 0, 0, 0, 8, 0, 0, 0}
	f.Add(info, []byte{1, 0x11, 0, 0x11, 0x01, 0x12, 0x06, 0, 0, 0}, []byte(nil),
		appendUnitTable(nil, len(info), []*unitHdr{{start: 0, end: 24, first: 12, version: 5, addrSize: 8, offSize: 4, cu: true}},
			[]dieRange{{0, 0x1000, 0x1010}}))
	f.Fuzz(func(t *testing.T, info, abbrev, aranges, units []byte) {
		// The table's parser alone first: NewSections recovers panics
		// into errors, which would hide one here.
		if us, rs, ok := parseUnitTable(units, len(info), len(abbrev)); ok {
			var flat []dieRange
			for i, u := range us {
				if u.start < 0 || u.first <= u.start || u.end <= u.first || u.end > len(info) ||
					(i > 0 && u.start < us[i-1].end) || u.abbrevOff >= uint64(len(abbrev)) {
					t.Fatalf("unit %d accepted out of bounds or order: %d %d %d", i, u.start, u.first, u.end)
				}
				for _, r := range rs[i] {
					flat = append(flat, dieRange{int32(i), r[0], r[1]})
				}
			}
			if len(rs) > len(us) {
				t.Fatalf("ranges of %d units for %d units", len(rs), len(us))
			}
			if again := appendUnitTable(nil, len(info), us, flat); !bytes.Equal(again, units) {
				t.Fatal("an accepted table does not write back as read")
			}
		}
		s := &Sections{Info: info, Abbrev: abbrev, Aranges: aranges, Units: units}
		query(NewSections(s, symfile.Options{Lines: true}))
	})
}

// query asks an index the fuzzers made (nil: none) about the start, the
// middle and the end of each of its first 64 units' ranges, and for its
// functions: whatever the input, nothing may panic or hang.
func query(x *Index, _ error) {
	if x == nil {
		return
	}
	var frames []symfile.Frame
	for i, sp := range x.cus {
		if i == 64 {
			break
		}
		for _, pc := range []uint64{sp.lo, sp.lo + (sp.hi-sp.lo)/2, sp.hi - 1} {
			frames, _ = x.Frames(frames[:0], pc)
		}
	}
	x.Functions()
}
