package functable

import "sort"

// The index maps addresses to tables. It is persistent: an update copies
// the leaf it changes and the top-level arrays, never modifying a
// published snapshot, so lookups read a snapshot with no lock and no
// atomic writes (read-copy-update; the garbage collector reclaims old
// snapshots once no lookup uses them). Ranges never overlap.

// span is the address range [min, max) of one table.
type span struct {
	min, max uint64
	t        *Table
}

// leafMax is the largest leaf; a full leaf splits in two.
const leafMax = 64

// index is one immutable snapshot.
type index struct {
	keys   []uint64 // keys[i] = leaves[i][0].min
	leaves [][]span // sorted by min, each non-empty and at most leafMax long
	tables int      // number of spans
}

var emptyIndex = &index{}

// find returns the span containing pc.
func (ix *index) find(pc uint64) (*span, bool) {
	keys := ix.keys
	// Last leaf whose first span starts at or below pc.
	lo, hi := 0, len(keys)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if keys[m] <= pc {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return nil, false
	}
	leaf := ix.leaves[lo-1]
	lo, hi = 0, len(leaf)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if leaf[m].min <= pc {
			lo = m + 1
		} else {
			hi = m
		}
	}
	s := &leaf[lo-1] // lo ≥ 1: leaf[0].min <= pc
	if pc >= s.max {
		return nil, false
	}
	return s, true
}

// overlapping returns a table whose range overlaps [min, max), or nil.
func (ix *index) overlapping(min, max uint64) *Table {
	// The candidate is the last span starting below max.
	i := sort.Search(len(ix.keys), func(i int) bool { return ix.keys[i] >= max })
	if i == 0 {
		return nil
	}
	leaf := ix.leaves[i-1]
	j := sort.Search(len(leaf), func(j int) bool { return leaf[j].min >= max })
	if j == 0 {
		return nil
	}
	if s := leaf[j-1]; s.max > min {
		return s.t
	}
	return nil
}

// insert returns a new snapshot with s added. s must not overlap.
func (ix *index) insert(s span) *index {
	if len(ix.leaves) == 0 {
		return &index{keys: []uint64{s.min}, leaves: [][]span{{s}}, tables: 1}
	}
	i := sort.Search(len(ix.keys), func(i int) bool { return ix.keys[i] > s.min }) - 1
	if i < 0 {
		i = 0
	}
	old := ix.leaves[i]
	j := sort.Search(len(old), func(j int) bool { return old[j].min > s.min })
	leaf := make([]span, 0, len(old)+1)
	leaf = append(leaf, old[:j]...)
	leaf = append(leaf, s)
	leaf = append(leaf, old[j:]...)
	if len(leaf) <= leafMax {
		return ix.replace(i, 1, leaf)
	}
	h := len(leaf) / 2
	return ix.replace(i, 1, leaf[:h:h], leaf[h:])
}

// remove returns a new snapshot without the span of t starting at min.
func (ix *index) remove(min uint64, t *Table) *index {
	i := sort.Search(len(ix.keys), func(i int) bool { return ix.keys[i] > min }) - 1
	if i < 0 {
		return ix
	}
	old := ix.leaves[i]
	j := sort.Search(len(old), func(j int) bool { return old[j].min >= min })
	if j == len(old) || old[j].t != t {
		return ix
	}
	if len(old) == 1 {
		return ix.replace(i, 1)
	}
	leaf := make([]span, 0, len(old)-1)
	leaf = append(leaf, old[:j]...)
	leaf = append(leaf, old[j+1:]...)
	// Merge a small leaf into its right neighbour to keep leaves full.
	if len(leaf) < leafMax/4 && i+1 < len(ix.leaves) && len(leaf)+len(ix.leaves[i+1]) <= leafMax {
		merged := make([]span, 0, len(leaf)+len(ix.leaves[i+1]))
		merged = append(merged, leaf...)
		merged = append(merged, ix.leaves[i+1]...)
		return ix.replace(i, 2, merged)
	}
	return ix.replace(i, 1, leaf)
}

// replace returns a new snapshot with leaves [i, i+n) replaced by repl.
func (ix *index) replace(i, n int, repl ...[]span) *index {
	nl := len(ix.leaves) - n + len(repl)
	out := &index{keys: make([]uint64, 0, nl), leaves: make([][]span, 0, nl)}
	out.leaves = append(out.leaves, ix.leaves[:i]...)
	out.leaves = append(out.leaves, repl...)
	out.leaves = append(out.leaves, ix.leaves[i+n:]...)
	for _, l := range out.leaves {
		out.keys = append(out.keys, l[0].min)
		out.tables += len(l)
	}
	return out
}
