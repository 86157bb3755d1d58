package symfile

import (
	"cmp"
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

// TestSortByAddr checks that SortByAddr is a stable sort by address, then
// size either way.
func TestSortByAddr(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, largeFirst := range []bool{false, true} {
		for n := range 200 {
			syms := make([]Symbol, n)
			for i := range syms {
				syms[i] = Symbol{Name: strconv.Itoa(i), Addr: rng.Uint64N(20), Size: rng.Uint64N(3)}
			}
			want := slices.Clone(syms)
			slices.SortStableFunc(want, func(a, b Symbol) int {
				if c := cmp.Compare(a.Addr, b.Addr); c != 0 {
					return c
				}
				if largeFirst {
					return cmp.Compare(b.Size, a.Size)
				}
				return cmp.Compare(a.Size, b.Size)
			})
			SortByAddr(syms, largeFirst)
			if !slices.Equal(syms, want) {
				t.Fatalf("largeFirst=%v n=%d: %v, want %v", largeFirst, n, syms, want)
			}
		}
	}
}

// BenchmarkSortByAddr sorts a table shaped like libc's debug symbol
// table: 10,000 symbols in file order (by source file, so mostly but not
// wholly by address), a tenth of them aliases of another's address.
func BenchmarkSortByAddr(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	src := make([]Symbol, 10000)
	for i := range src {
		src[i] = Symbol{Name: "f" + strconv.Itoa(i), Addr: uint64(i) * 64, Size: 48, Kind: KindFunction}
		if rng.IntN(10) == 0 && i > 0 {
			src[i].Addr = src[rng.IntN(i)].Addr
		}
	}
	// Source files in a shuffled order, 20 symbols each.
	for i := 0; i+40 <= len(src); i += 40 {
		if rng.IntN(2) == 0 {
			for k := range 20 {
				src[i+k], src[i+20+k] = src[i+20+k], src[i+k]
			}
		}
	}
	syms := make([]Symbol, len(src))
	b.ReportAllocs()
	for b.Loop() {
		copy(syms, src)
		SortByAddr(syms, true)
	}
}

// TestSortByAddrWide checks SortByAddr on keys that differ in every byte
// (the radix sort's passes) and in a few only (its skipped bytes), with
// sizes at the ends of their range.
func TestSortByAddrWide(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	gens := map[string]func() (uint64, uint64){
		"full":   func() (uint64, uint64) { return rng.Uint64(), rng.Uint64() },
		"high":   func() (uint64, uint64) { return rng.Uint64N(4) << 56, ^uint64(0) - rng.Uint64N(3) },
		"middle": func() (uint64, uint64) { return 0x7f0000000000 | rng.Uint64N(8)<<20, rng.Uint64N(2) << 33 },
		"ties":   func() (uint64, uint64) { return 0x1000 + rng.Uint64N(3)*0x100, rng.Uint64N(2) * 0x10000 },
	}
	for name, gen := range gens {
		for _, largeFirst := range []bool{false, true} {
			for _, n := range []int{0, 1, 2, 3, 17, 256, 1000} {
				syms := make([]Symbol, n)
				for i := range syms {
					a, s := gen()
					syms[i] = Symbol{Name: strconv.Itoa(i), Addr: a, Size: s}
				}
				want := slices.Clone(syms)
				slices.SortStableFunc(want, func(a, b Symbol) int { return compareAddr(&a, &b, largeFirst) })
				SortByAddr(syms, largeFirst)
				if !slices.Equal(syms, want) {
					t.Fatalf("%s largeFirst=%v n=%d: not sorted as a stable sort sorts", name, largeFirst, n)
				}
			}
		}
	}
}
