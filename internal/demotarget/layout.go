package demotarget

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/fntable/fntable/internal/jitgen"
	"github.com/fntable/fntable/unwindinfo"
)

// The address layout (see "Address layout" in the package documentation),
// as offsets from the start R of the reservation.
const (
	pageSize    = 0x1000
	reserveSize = 64 << 20 // the whole reservation
	staticOff   = pageSize // the static part; the metadata page is below
	growEnd     = 40 << 20 // end of the growable table's range
	churnOff    = 48 << 20 // the churn part, up to reserveSize
)

// Chain lengths (functions that run; "mixed" runs mixedA+mixedB).
const (
	staticFns   = 8
	mixedAFns   = 6 // mixed-a: 3 static, then 3 callback (plus its spare last function)
	mixedAStat  = 3
	mixedBFns   = 6 // mixed-b: 2 callback, then 4 growable
	mixedBCall  = 2
	callbackFns = 5
	grownFns    = 3
	maxGrowable = 256 // the growable table's MaximumEntryCount
)

// chainStackBudget bounds the stack one image's chain may use (every
// function's deepest frame, return address and home area). The chains run
// on the stack of the thread that calls them (a pthread's, 2 or 8 MiB by
// default), which must hold the mixed chain's two images and the Go
// runtime's frames below them.
const chainStackBudget = 640 << 10

// maxAttempts bounds the images generated for one chain before giving up
// on the stack budget; each attempt fits with a probability well above
// one half.
const maxAttempts = 1000

// genOmit are the features the target's images leave out: handlers, whose
// RVAs in the UNWIND_INFO would be wrong once an image's entries are
// rebased to a table base inside it, and allocations beyond 512 KiB,
// which rarely fit the stack budget.
const genOmit = jitgen.FeatHandler | jitgen.FeatLargeFrame

// errStackBudget: no image fitted the stack budget.
var errStackBudget = errors.New("no generated chain fits the stack budget")

// genChain generates an executable image of n functions for chain key,
// deterministically from seed: the first image, over attempts 0, 1, ...,
// whose chain needs at most chainStackBudget bytes of stack.
func genChain(seed, key uint64, n int) (*jitgen.Image, error) {
	for attempt := range uint64(maxAttempts) {
		rng := rand.New(rand.NewPCG(seed, key<<32|attempt))
		img := jitgen.Build(jitgen.Config{Functions: n, Executable: true, Omit: genOmit}, rng)
		if stackNeed(img) <= chainStackBudget {
			return img, nil
		}
	}
	return nil, fmt.Errorf("generate chain %d of %d functions with seed %d: %w", key, n, seed, errStackBudget)
}

// stackNeed returns the stack img's chain uses: each function's deepest
// stack pointer below its entry, its return address and its callee's home
// area.
func stackNeed(img *jitgen.Image) uint64 {
	var need uint64
	for _, f := range img.Functions {
		var deepest int32
		for _, in := range f.Insts {
			deepest = max(deepest, in.State.SP)
		}
		need += uint64(deepest) + 8 + jitgen.HomeArea
	}
	return need
}

// rebase returns the entries of img (placed at imgBase) that begin in
// [lo, hi) (RVAs of img), with RVAs from tableBase. It fails if one of
// them ends past hi, or if an RVA does not fit.
func rebase(img *jitgen.Image, imgBase, tableBase uint64, lo, hi uint32) ([]unwindinfo.RuntimeFunction, error) {
	var out []unwindinfo.RuntimeFunction
	conv := func(rva uint32) (uint32, error) {
		a := imgBase + uint64(rva)
		if a < tableBase || a-tableBase > 0xffffffff {
			return 0, fmt.Errorf("rebase rva %#x of the image at %#x to %#x: out of range", rva, imgBase, tableBase)
		}
		return uint32(a - tableBase), nil
	}
	for _, rf := range img.Table {
		if rf.BeginAddress < lo || rf.BeginAddress >= hi {
			continue
		}
		if rf.EndAddress > hi {
			return nil, fmt.Errorf("rebase entry [%#x, %#x): crosses the split at %#x", rf.BeginAddress, rf.EndAddress, hi)
		}
		b, err := conv(rf.BeginAddress)
		if err != nil {
			return nil, err
		}
		e, err := conv(rf.EndAddress)
		if err != nil {
			return nil, err
		}
		u, err := conv(rf.UnwindData &^ 1)
		if err != nil {
			return nil, err
		}
		out = append(out, unwindinfo.RuntimeFunction{BeginAddress: b, EndAddress: e, UnwindData: u | rf.UnwindData&1})
	}
	return out, nil
}

// relink rewrites the call rel32 of function caller of img (placed at
// imgBase, held in code, a copy of img.Bytes) so that it calls target
// instead of function caller+1.
func relink(img *jitgen.Image, code []byte, imgBase uint64, caller int, target uint64) error {
	f, next := img.Functions[caller], img.Functions[caller+1]
	for _, in := range f.Insts {
		if !in.HasTarget || in.Target != next.Begin || in.Len != 5 || code[in.RVA] != 0xe8 {
			continue
		}
		disp := int64(target) - int64(imgBase+uint64(in.RVA)+5)
		if disp != int64(int32(disp)) {
			return fmt.Errorf("relink call at %#x to %#x: out of rel32 range", imgBase+uint64(in.RVA), target)
		}
		binary.LittleEndian.PutUint32(code[in.RVA+1:], uint32(int32(disp)))
		return nil
	}
	return fmt.Errorf("relink function %d: no call rel32 of function %d", caller, caller+1)
}

// metadataBlock encodes the JIT metadata block for entries with RVAs from
// base.
func metadataBlock(base uint64, entries []unwindinfo.RuntimeFunction) []byte {
	b := make([]byte, 0, MetadataHeaderSize+12*len(entries))
	b = append(b, MetadataMagic...)
	b = binary.LittleEndian.AppendUint32(b, MetadataVersion)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(entries)))
	b = binary.LittleEndian.AppendUint64(b, base)
	for _, e := range entries {
		b = e.Append(b)
	}
	return b
}

// pages rounds n up to whole pages.
func pages(n int) int { return (n + pageSize - 1) &^ (pageSize - 1) }

// reportEntries converts entries for the report.
func reportEntries(es []unwindinfo.RuntimeFunction) []Entry {
	out := make([]Entry, len(es))
	for i, e := range es {
		out[i] = Entry{RVA(e.BeginAddress), RVA(e.EndAddress), RVA(e.UnwindData)}
	}
	return out
}

// sortedEntries reports whether es is sorted by BeginAddress, each
// entry ending before the next begins.
func sortedEntries(es []unwindinfo.RuntimeFunction) bool {
	for i := 1; i < len(es); i++ {
		if es[i].BeginAddress < es[i-1].EndAddress {
			return false
		}
	}
	return true
}
