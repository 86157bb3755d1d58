package symfile

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// TestSort checks Sort against slices.SortFunc with Compare on tables
// with many ties of address and size.
func TestSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 300 {
		syms := make([]Symbol, n)
		for i := range syms {
			syms[i] = Symbol{Name: strconv.Itoa(rng.IntN(5)), Addr: rng.Uint64N(40), Size: rng.Uint64N(3), Kind: Kind(rng.IntN(3))}
		}
		want := slices.Clone(syms)
		slices.SortFunc(want, Compare)
		Sort(syms)
		if !slices.Equal(syms, want) {
			t.Fatalf("n=%d: %v, want %v", n, syms, want)
		}
	}
}
