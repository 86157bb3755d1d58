package capture

import (
	"cmp"
	"slices"
)

// spanSet is a set of address ranges [lo, hi). It is not safe for
// concurrent use.
type spanSet struct {
	s [][2]uint64 // as added
}

// add adds [lo, hi); empty ranges are ignored.
func (s *spanSet) add(lo, hi uint64) {
	if lo < hi {
		s.s = append(s.s, [2]uint64{lo, hi})
	}
}

// list returns the ranges merged: sorted, disjoint and not adjacent.
func (s *spanSet) list() [][2]uint64 {
	r := slices.Clone(s.s)
	slices.SortFunc(r, func(a, b [2]uint64) int { return cmp.Compare(a[0], b[0]) })
	out := r[:0]
	for _, x := range r {
		if n := len(out); n > 0 && x[0] <= out[n-1][1] {
			out[n-1][1] = max(out[n-1][1], x[1])
			continue
		}
		out = append(out, x)
	}
	return out
}
