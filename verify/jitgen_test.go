package verify

import (
	"math/rand/v2"
	"testing"

	"github.com/fntable/fntable/internal/jitgen"
	"github.com/fntable/fntable/unwind"
)

func buildImage(seed uint64, n int) *jitgen.Image {
	return jitgen.Build(jitgen.Config{Functions: n}, rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)))
}

func imageMemory(img *jitgen.Image) *unwind.SplicedMemory {
	m := new(unwind.SplicedMemory)
	m.Add(img.Base, img.Bytes)
	return m
}

// boundaryKind reports whether problems of kind k are found by comparing
// the unwinder with the code at a boundary.
func boundaryKind(k Kind) bool {
	switch k {
	case KindEpilog, KindUnwindMismatch, KindFragmentEpilog, KindPrologEpilog, KindTailJump, KindSplitJump:
		return true
	}
	return false
}

// expectedProblem returns, for entry e, whether a problem is one the
// generator expects: of a boundary kind, at a boundary where jitgen says
// the Windows rules cannot unwind.
func expectedProblem(e *jitgen.Entry) func(Problem) bool {
	bad := map[uint32]bool{}
	for _, in := range e.Insts {
		if !in.State.Unwindable {
			bad[in.RVA-e.Begin] = true
		}
	}
	return func(p Problem) bool { return bad[p.Offset] && boundaryKind(p.Kind) }
}

// TestJitgenClean checks that generated functions, whose unwind
// information is right by construction, give no problem except where the
// generator says Windows cannot unwind them.
func TestJitgenClean(t *testing.T) {
	n := 3000
	if testing.Short() {
		n = 300
	}
	img := buildImage(1, n)
	mem := imageMemory(img)
	c := &Checker{Memory: mem, Functions: img}
	var rep Report
	expected := 0
	for _, f := range img.Functions {
		for _, e := range f.Entries() {
			r, err := c.Function(e.Code, img.Base, e.RuntimeFunction())
			if err != nil {
				t.Fatal(err)
			}
			rep.Add(Report{Functions: r.Functions, Instructions: r.Instructions})
			excused := expectedProblem(e)
			for _, p := range r.Problems {
				if excused(p) {
					expected++
					continue
				}
				t.Errorf("f%d (%v) %s [%s]", f.ID, f.Features, p, p.Kind)
			}
		}
	}
	t.Logf("%d entries, %d instructions, %d expected problems where Windows cannot unwind", rep.Functions, rep.Instructions, expected)
}
