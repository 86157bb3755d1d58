package functable

import (
	"math/rand/v2"
	"testing"

	"github.com/fntable/fntable/unwindinfo"
)

// TestDirectoryRandom checks lookups, overlap checks and enumeration
// against a brute-force model, with tables of random sizes from a few
// bytes to several pages of the directory, so that chunks hold many
// tables, tables cover many chunks, and pages come and go.
func TestDirectoryRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	r := newRegistry(t)
	type model struct {
		min, max uint64
		t        *Table
	}
	var live []model
	sizes := []uint64{0x10, 0x100, 0x1000, chunkSize - 0x10, chunkSize, 3*chunkSize + 0x30, 1 << pageShift, 2<<pageShift + chunkSize/2}
	const space = 16 << pageShift
	overlaps := func(min, max uint64) bool {
		for _, m := range live {
			if min < m.max && m.min < max {
				return true
			}
		}
		return false
	}
	for step := range 4000 {
		if len(live) > 0 && rng.IntN(5) < 2 {
			i := rng.IntN(len(live))
			if err := r.DeleteFunctionTable(live[i].t); err != nil {
				t.Fatal(err)
			}
			live = append(live[:i], live[i+1:]...)
		} else {
			size := sizes[rng.IntN(len(sizes))]
			if rng.IntN(4) == 0 {
				size = 1 + uint64(rng.IntN(chunkSize*2))
			}
			min := uint64(rng.Int64N(space)) &^ 0xf
			var tb *Table
			var err error
			if rng.IntN(3) == 0 {
				tb, err = r.AddGrowableFunctionTable(make([]unwindinfo.RuntimeFunction, 4), 0, 4, min, min+size)
			} else {
				tb, err = r.AddFunctionTable([]unwindinfo.RuntimeFunction{rf(0, uint32(size), uint32(step))}, min)
			}
			if want := overlaps(min, min+size); want != (err != nil) {
				t.Fatalf("step %d: add [%#x, %#x): error %v, overlap %v", step, min, min+size, err, want)
			}
			if err == nil {
				live = append(live, model{min, min + size, tb})
			}
		}
		if r.Len() != len(live) {
			t.Fatalf("step %d: Len %d, want %d", step, r.Len(), len(live))
		}
		for range 20 {
			pc := uint64(rng.Int64N(space + chunkSize))
			if len(live) > 0 && rng.IntN(2) == 0 {
				m := live[rng.IntN(len(live))]
				pc = []uint64{m.min, m.max - 1, m.max, m.min - 1, m.min + (m.max-m.min)/2}[rng.IntN(5)]
			}
			var want *Table
			for _, m := range live {
				if m.min <= pc && pc < m.max {
					want = m.t
				}
			}
			if got := r.Table(pc); got != want {
				t.Fatalf("step %d: Table(%#x) = %v, want %v", step, pc, got, want)
			}
		}
		if step%13 == 0 || step%199 == 0 {
			var got []*Table
			r.Tables(func(tb *Table) bool { got = append(got, tb); return true })
			if len(got) != len(live) {
				t.Fatalf("step %d: %d tables enumerated, want %d", step, len(got), len(live))
			}
			for i := 1; i < len(got); i++ {
				if a, _ := got[i-1].Range(); func() bool { b, _ := got[i].Range(); return a >= b }() {
					t.Fatalf("step %d: tables out of order", step)
				}
			}
		}
	}
	for _, m := range live {
		if err := r.DeleteFunctionTable(m.t); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(pages(r.dir.top.Load())); n != 0 {
		t.Fatalf("%d pages left in an empty registry", n)
	}
}

// TestBuildIndex: the index built at once answers as the one built by
// inserts.
func TestBuildIndex(t *testing.T) {
	for _, n := range []int{0, 1, nodeMax, nodeMax + 1, nodeMax * nodeMax, nodeMax*nodeMax + 5, 40000} {
		spans := make([]span, n)
		for i := range spans {
			spans[i] = span{uint64(i) * 0x100, uint64(i)*0x100 + 0x80, &Table{}}
		}
		ix := buildIndex(spans)
		if ix.tables != n {
			t.Fatalf("%d spans: %d tables", n, ix.tables)
		}
		for i := range spans {
			if s, ok := ix.find(uint64(i)*0x100 + 0x7f); !ok || s.t != spans[i].t {
				t.Fatalf("%d spans: span %d not found", n, i)
			}
			if _, ok := ix.find(uint64(i)*0x100 + 0x80); ok {
				t.Fatalf("%d spans: found a gap", n)
			}
		}
		k := 0
		ix.each(func(s *span) bool {
			if s.t != spans[k].t {
				t.Fatalf("%d spans: span %d out of order", n, k)
			}
			k++
			return true
		})
		if k != n {
			t.Fatalf("%d spans: enumerated %d", n, k)
		}
		// Still a valid tree for updates.
		for i := 0; i < n; i += 3 {
			ix = ix.remove(spans[i].min, spans[i].t)
		}
		if want := n - (n+2)/3; ix.tables != want {
			t.Fatalf("%d spans: %d left, want %d", n, ix.tables, want)
		}
	}
}
