package dwarfidx

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"github.com/fntable/fntable/internal/symtest"
	"github.com/fntable/fntable/symfile"
)

// TestUnitTable: an index given the unit table of an earlier index of the
// same sections answers as that one does, without walking the unit
// headers; a table that does not fit the sections is ignored.
func TestUnitTable(t *testing.T) {
	for _, c := range []struct {
		name string
		path func(t *testing.T) string
	}{
		{"c++", func(t *testing.T) string { return symtest.CPP(t) }},
		{"go", func(t *testing.T) string { return symtest.Go(t) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := c.path(t)
			f, err := elf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			s := sectionsOf(t, f)
			walked, err := NewSections(s, symfile.Options{Lines: true})
			if err != nil {
				t.Fatal(err)
			}
			table := walked.UnitTable()
			if len(table) != unitTableHeader+unitRecord*len(walked.dec.units)+4+rangeRecord*len(walked.dieRanges) || len(walked.dec.units) == 0 {
				t.Fatalf("table of %d bytes for %d units and %d DIE ranges", len(table), len(walked.dec.units), len(walked.dieRanges))
			}
			t.Logf("%d units, %d ranges read from DIEs", len(walked.dec.units), len(walked.dieRanges))
			s2 := *s
			s2.Units = table
			fromTable, err := NewSections(&s2, symfile.Options{Lines: true})
			if err != nil {
				t.Fatal(err)
			}
			if fromTable.dec.walked || fromTable.UnitTable() != nil {
				t.Fatal("the index walked the unit headers although it was given their table")
			}
			for i, u := range fromTable.dec.units {
				w := walked.dec.units[i]
				if u.start != w.start || u.end != w.end || u.first != w.first || u.abbrevOff != w.abbrevOff ||
					u.version != w.version || u.addrSize != w.addrSize || u.offSize != w.offSize || u.cu != w.cu {
					t.Fatalf("unit %d: from the table at %#x-%#x, walked at %#x-%#x, or another field differs", i, u.start, u.end, w.start, w.end)
				}
			}
			compareIndexes(t, walked, fromTable, symtest.RandomAddrs(t, path, 1000, 11))

			// Tables that do not fit are ignored: the headers are walked.
			bad := map[string][]byte{
				"magic":     append([]byte("FNTUNIT0"), table[8:]...),
				"length":    binary.LittleEndian.AppendUint64(append([]byte(nil), table[:8]...), uint64(len(s.Info)+1)),
				"truncated": table[:len(table)-1],
				"empty":     {},
			}
			if len(walked.dec.units) > 1 {
				swapped := slices.Clone(table)
				a, b := swapped[unitTableHeader:unitTableHeader+unitRecord], swapped[unitTableHeader+unitRecord:unitTableHeader+2*unitRecord]
				tmp := slices.Clone(a)
				copy(a, b)
				copy(b, tmp)
				bad["out of order"] = swapped
			}
			lastUnit := unitTableHeader + unitRecord*(len(walked.dec.units)-1)
			past := slices.Clone(table)
			binary.LittleEndian.PutUint64(past[lastUnit+8:], uint64(len(s.Info)+1))
			bad["past the end"] = past
			bad["ranges cut"] = table[:len(table)-1]
			padded := slices.Clone(table)
			padded[unitTableHeader+unitRecord-1] = 1 // the first unit's padding
			bad["padding"] = padded
			if len(walked.dieRanges) > 0 {
				empty := slices.Clone(table)
				binary.LittleEndian.PutUint64(empty[len(empty)-8:], binary.LittleEndian.Uint64(empty[len(empty)-16:]))
				bad["empty range"] = empty
			}
			for name, b := range bad {
				s3 := *s
				s3.Units = b
				x, err := NewSections(&s3, symfile.Options{Lines: true})
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if !x.dec.walked || !bytes.Equal(x.UnitTable(), table) {
					t.Errorf("%s: the bad table was used", name)
				}
			}
		})
	}
}

// TestMalformedUnitEndsIndex corrupts the abbreviation offset of a unit in
// the middle of the SQLite program's DWARF, with .debug_aranges left out so
// that indexing reads every unit's DIE: the index ends before that unit,
// and Functions lists only functions that Frames can name, as it did when
// the units were made up front.
func TestMalformedUnitEndsIndex(t *testing.T) {
	f, err := elf.Open(symtest.SQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := sectionsOf(t, f)
	s.Aranges = nil
	whole, err := NewSections(s, symfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var cus []*unitHdr
	for _, u := range whole.dec.units {
		if u.cu {
			cus = append(cus, u)
		}
	}
	if len(cus) < 3 {
		t.Skipf("the program has %d compile units", len(cus))
	}
	bad := cus[len(cus)/2]
	at := bad.start + 6 // DWARF 2-4: length, version, abbreviation offset
	if bad.version >= 5 {
		at = bad.start + 8 // DWARF 5: length, version, unit type, address size, offset
	}
	s2 := *s
	s2.Info = slices.Clone(s.Info)
	binary.LittleEndian.PutUint32(s2.Info[at:], 0xfffffff0)
	x, err := NewSections(&s2, symfile.Options{})
	if err == nil || !errors.Is(err, ErrMalformed) {
		t.Fatalf("NewSections with a bad abbreviation offset: %v", err)
	}
	all, part := whole.Functions(), x.Functions()
	if len(part) == 0 || len(part) >= len(all) {
		t.Fatalf("%d functions before the malformed unit, %d in all", len(part), len(all))
	}
	for _, fn := range part {
		frames, err := x.Frames(nil, fn.Addr)
		if err != nil || len(frames) == 0 {
			t.Fatalf("Functions lists %s at %#x, which Frames does not name (%v)", fn.Name, fn.Addr, err)
		}
	}
}
