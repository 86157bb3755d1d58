package cfi

import (
	"testing"

	"github.com/fntable/fntable/unwind"
)

// benchFrame returns libc, a pc in the body of a function whose rules are
// register-based, and a context and stack to unwind it.
func benchFrame(b *testing.B) (*File, uint64, unwind.Context, *unwind.SplicedMemory) {
	f := openSystem(b, libcPath)
	var pc uint64
	var row Row
	f.FDEs(func(fd FDE) bool {
		rows, _ := f.RowsOf(fd)
		if len(rows) >= 6 && rows[5].CFA.Kind == RuleCFA && rows[5].CFA.Reg == RegRSP && rows[5].Loc < fd.End {
			pc, row = rows[5].Loc, rows[5]
			return false
		}
		return true
	})
	if pc == 0 {
		b.Fatal("no suitable FDE")
	}
	const cfa = 0x7ffd_0000_8000
	ctx := testContext()
	ctx.Rsp, ctx.Rip = cfa-uint64(row.CFA.Offset), pc+testBias
	mem := new(unwind.SplicedMemory)
	mem.Add(cfa-0x1000, make([]byte, 0x2000))
	return f, pc, ctx, mem
}

// BenchmarkStepWarm unwinds one libc frame whose FDE was parsed before.
func BenchmarkStepWarm(b *testing.B) {
	f, _, ctx, mem := benchFrame(b)
	for b.Loop() {
		c := ctx
		if _, ok, err := f.Step(&c, testBias, ctx.Rip, mem); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkStepCold opens libc and unwinds one frame: reading the
// sections, parsing the CIE and FDE.
func BenchmarkStepCold(b *testing.B) {
	_, _, ctx, mem := benchFrame(b)
	for b.Loop() {
		f, err := Open(libcPath)
		if err != nil {
			b.Fatal(err)
		}
		c := ctx
		if _, ok, err := f.Step(&c, testBias, ctx.Rip, mem); !ok || err != nil {
			b.Fatal(ok, err)
		}
		f.Close()
	}
}

// BenchmarkLookupHdr finds FDEs through .eh_frame_hdr's table.
func BenchmarkLookupHdr(b *testing.B) {
	f, pc, _, _ := benchFrame(b)
	for b.Loop() {
		if _, _, err := f.lookup(pc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLookupIndex finds FDEs through the index built when there is
// no .eh_frame_hdr.
func BenchmarkLookupIndex(b *testing.B) {
	f, pc, _, _ := benchFrame(b)
	f.load()
	s := f.eh
	for b.Loop() {
		if fd, err := s.search(pc); fd == nil || err != nil {
			b.Fatal(err)
		}
	}
}
