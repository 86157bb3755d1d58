package unwind

import (
	"fmt"
	"slices"

	"github.com/fntable/fntable/unwindinfo"
)

// SortedTable is a static function table: RUNTIME_FUNCTION entries whose
// RVAs are relative to one base, such as a PE image's exception directory
// or a table given to RtlAddFunctionTable. Lookups are binary searches and
// do not allocate. A SortedTable is immutable and safe for concurrent use.
type SortedTable struct {
	base     uint64
	fns      []unwindinfo.RuntimeFunction // sorted by BeginAddress, empty entries removed
	min, max uint64                       // covered address range [min, max)
	unsorted bool
	overlaps int
}

// NewSortedTable returns a table of fns relative to base. The entries are
// copied and sorted by BeginAddress (the input order is recorded: see
// [SortedTable.Unsorted]); entries with EndAddress <= BeginAddress, such as
// the all-zero entries some images have, never match and are dropped.
// Overlapping entries are kept and counted; a lookup in an overlap finds
// one of them.
func NewSortedTable(base uint64, fns []unwindinfo.RuntimeFunction) *SortedTable {
	t := &SortedTable{base: base}
	t.fns = make([]unwindinfo.RuntimeFunction, 0, len(fns))
	for i, f := range fns {
		if i > 0 && f.BeginAddress < fns[i-1].BeginAddress {
			t.unsorted = true
		}
		if f.EndAddress > f.BeginAddress {
			t.fns = append(t.fns, f)
		}
	}
	if t.unsorted {
		slices.SortStableFunc(t.fns, func(a, b unwindinfo.RuntimeFunction) int {
			return int64cmp(int64(a.BeginAddress), int64(b.BeginAddress))
		})
	}
	for i := 1; i < len(t.fns); i++ {
		if t.fns[i].BeginAddress < t.fns[i-1].EndAddress {
			t.overlaps++
		}
	}
	if len(t.fns) > 0 {
		t.min = base + uint64(t.fns[0].BeginAddress)
		for _, f := range t.fns {
			t.max = max(t.max, base+uint64(f.EndAddress))
		}
	}
	return t
}

func int64cmp(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Base returns the address the entries' RVAs are relative to.
func (t *SortedTable) Base() uint64 { return t.base }

// Len returns the number of entries that can match.
func (t *SortedTable) Len() int { return len(t.fns) }

// Entries returns the entries in address order. The caller must not modify
// them.
func (t *SortedTable) Entries() []unwindinfo.RuntimeFunction { return t.fns }

// Range returns the address range [min, max) the entries cover.
func (t *SortedTable) Range() (min, max uint64) { return t.min, t.max }

// Unsorted reports whether the entries were given out of order (Windows
// would search such a table linearly; RF_UNSORTED).
func (t *SortedTable) Unsorted() bool { return t.unsorted }

// Overlaps returns the number of entries that overlap their predecessor.
func (t *SortedTable) Overlaps() int { return t.overlaps }

// LookupFunctionEntry implements [FunctionTable]: it returns the entry
// whose [BeginAddress, EndAddress) contains pc−base. The entry is not
// resolved if it is indirect; [Unwinder.VirtualUnwind] resolves indirect
// entries, and [Lookup] does too.
func (t *SortedTable) LookupFunctionEntry(pc uint64) (*unwindinfo.RuntimeFunction, uint64, bool) {
	if pc < t.min || pc >= t.max {
		return nil, 0, false
	}
	rva := pc - t.base
	if rva > 0xffffffff {
		return nil, 0, false
	}
	r := uint32(rva)
	lo := unwindinfo.Search(t.fns, r)
	if lo == 0 {
		return nil, 0, false
	}
	f := &t.fns[lo-1]
	if r >= f.EndAddress {
		// With overlaps, an earlier entry may still contain r.
		if t.overlaps == 0 {
			return nil, 0, false
		}
		for i := lo - 2; i >= 0; i-- {
			if t.fns[i].Contains(r) {
				return &t.fns[i], t.base, true
			}
		}
		return nil, 0, false
	}
	return f, t.base, true
}

// Tables is an ordered list of function tables, searched in order: the
// first table with an entry for a PC answers, as RtlLookupFunctionEntry
// searches loaded images before dynamic tables.
type Tables []FunctionTable

// LookupFunctionEntry implements [FunctionTable].
func (ts Tables) LookupFunctionEntry(pc uint64) (*unwindinfo.RuntimeFunction, uint64, bool) {
	for _, t := range ts {
		if fn, base, ok := t.LookupFunctionEntry(pc); ok {
			return fn, base, true
		}
	}
	return nil, 0, false
}

// Lookup finds the function table entry for pc in ft, as
// RtlLookupFunctionEntry does, and resolves indirect entries
// (RUNTIME_FUNCTION_INDIRECT) through mem. It returns ok=false when no
// table has an entry for pc, and an error only when an indirect entry
// cannot be resolved.
func Lookup(ft FunctionTable, mem Memory, pc uint64) (fn unwindinfo.RuntimeFunction, imageBase uint64, ok bool, err error) {
	p, base, ok := ft.LookupFunctionEntry(pc)
	if !ok || p == nil {
		return fn, 0, false, nil
	}
	if !p.Indirect() {
		return *p, base, true, nil
	}
	r := newReader(mem)
	defer r.release()
	fn, err = resolveIndirect(&r, base, *p)
	if err != nil {
		return fn, base, false, fmt.Errorf("lookup function entry for %#x: %w", pc, err)
	}
	return fn, base, true, nil
}

var (
	_ FunctionTable = (*SortedTable)(nil)
	_ FunctionTable = Tables(nil)
)
