package dwarfidx

// sparseStep is how many keys one entry of a sparseIndex summarises: the
// sparse level of a large table fits in the cache, and the final search
// touches a few cache lines of one block.
const sparseStep = 64

// sparseIndex finds, in a sorted run of keys, the last key at or below a
// value with two short binary searches: one over every sparseStep-th key,
// then one within a block. Searching a large table directly misses the
// cache at almost every step.
type sparseIndex struct {
	keys   []uint64 // the keys; sorted within each run searched
	sparse []uint64 // keys[0], keys[sparseStep], keys[2*sparseStep], ...
}

func newSparseIndex(keys []uint64) sparseIndex {
	s := sparseIndex{keys: keys}
	if len(keys) > sparseStep {
		s.sparse = make([]uint64, 0, len(keys)/sparseStep+1)
		for i := 0; i < len(keys); i += sparseStep {
			s.sparse = append(s.sparse, keys[i])
		}
	}
	return s
}

// last returns the largest i in [first, end) with keys[i] <= v, or -1.
// keys[first:end] must be sorted.
func (s *sparseIndex) last(first, end int, v uint64) int {
	lo, hi := first, end
	if s.sparse != nil && end-first > sparseStep {
		// Blocks that start inside [first, end): k in [kl, kh].
		kl, kh := (first+sparseStep-1)/sparseStep, (end-1)/sparseStep
		// The largest k in [kl, kh] with sparse[k] <= v.
		a, b := kl, kh+1
		for a < b {
			m := int(uint(a+b) >> 1)
			if s.sparse[m] <= v {
				a = m + 1
			} else {
				b = m
			}
		}
		if k := a - 1; k >= kl {
			lo = k * sparseStep
		}
		if a <= kh {
			hi = min(a*sparseStep, end)
		}
	}
	// The first i in [lo, hi) with keys[i] > v, minus one.
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s.keys[m] <= v {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo-1 < first {
		return -1
	}
	return lo - 1
}
