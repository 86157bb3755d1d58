package provider

import (
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/fntable/fntable/functable/remote"
	"github.com/fntable/fntable/internal/procmaps"
	"github.com/fntable/fntable/unwindinfo"
)

// MaxEntries bounds the number of entries a provider may return for one
// table: a larger count is refused without reading the array. It is far
// above what one JIT code range holds (a million functions).
const MaxEntries = 1 << 20

// statusFailure is the lowest failure NTSTATUS: values from it up have
// the severity bits of STATUS_SEVERITY_WARNING or STATUS_SEVERITY_ERROR,
// which the ABI counts as failures (winnt.h, "NTSTATUS values").
const statusFailure = 0x80000000

// unwindInfoMin is the number of bytes of an UNWIND_INFO that must be in
// readable target memory: its fixed header (version and flags, prolog
// size, code count, frame register).
const unwindInfoMin = 4

// answer is what one call of a provider gave, before any check.
type answer struct {
	status  uint32                       // the NTSTATUS returned
	count   uint32                       // *Entries
	null    bool                         // *Functions was NULL
	entries []unwindinfo.RuntimeFunction // the array, copied when the status succeeded, it was not NULL and count ≤ MaxEntries
}

// check checks what does not need the target: the status, the count and
// the array pointer.
func (a *answer) check() error {
	switch {
	case a.status >= statusFailure:
		return &StatusError{Status: a.status}
	case a.count > MaxEntries:
		return errorf(ErrBadResult, "bad provider result: %d entries, more than the %d allowed", a.count, MaxEntries)
	case a.null && a.count > 0:
		return errorf(ErrBadResult, "bad provider result: a NULL array of %d entries", a.count)
	case !a.null && uint32(len(a.entries)) != a.count:
		return errorf(ErrBadResult, "bad provider result: %d entries claimed, %d received", a.count, len(a.entries))
	}
	return nil
}

// region is a range of readable target memory: [start, end).
type region struct{ start, end uint64 }

// readableRegions returns the readable mappings of a /proc/PID/maps
// listing, sorted, with adjacent ones merged.
func readableRegions(r io.Reader) ([]region, error) {
	var rs []region
	err := procmaps.Scan(r, func(_ int, l procmaps.Line, err error) error {
		if err != nil {
			return err
		}
		if len(l.Perms) > 0 && l.Perms[0] == 'r' {
			rs = append(rs, region{l.Start, l.End})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].start < rs[j].start })
	out := rs[:0]
	for _, g := range rs {
		if n := len(out); n > 0 && g.start <= out[n-1].end {
			out[n-1].end = max(out[n-1].end, g.end)
			continue
		}
		out = append(out, g)
	}
	return out, nil
}

// readable reports whether [addr, addr+n) is inside one region of rs.
func readable(rs []region, addr, n uint64) bool {
	if addr > math.MaxUint64-n {
		return false
	}
	i := sort.Search(len(rs), func(i int) bool { return rs[i].end > addr })
	return i < len(rs) && rs[i].start <= addr && addr+n <= rs[i].end
}

// addRVA returns base+rva, and false when it overflows.
func addRVA(base uint64, rva uint32) (uint64, bool) {
	a := base + uint64(rva)
	return a, a >= base
}

// checkEntries checks the entries a provider returned for table t: each
// non-empty, sorted without overlap, inside [t.MinimumAddress,
// t.MaximumAddress), its unwind data (RVA from t.BaseAddress, bit 0
// masked: the indirect flag) starting in readable memory of the target,
// whose readable regions are rs.
func checkEntries(t *remote.Table, entries []unwindinfo.RuntimeFunction, rs []region) error {
	var prevEnd uint32
	for i, e := range entries {
		begin, ok1 := addRVA(t.BaseAddress, e.BeginAddress)
		end, ok2 := addRVA(t.BaseAddress, e.EndAddress)
		unwind, ok3 := addRVA(t.BaseAddress, e.UnwindData&^1)
		switch {
		case e.EndAddress <= e.BeginAddress:
			return errorf(ErrBadResult, "bad provider result: entry %d [%#x, %#x) is empty or reversed", i, e.BeginAddress, e.EndAddress)
		case i > 0 && e.BeginAddress < prevEnd:
			return errorf(ErrBadResult, "bad provider result: entries %d and %d are unsorted or overlap (rva %#x < %#x)", i-1, i, e.BeginAddress, prevEnd)
		case !ok1 || !ok2 || begin < t.MinimumAddress || end > t.MaximumAddress:
			return errorf(ErrBadResult, "bad provider result: entry %d [%#x, %#x) is outside the table's range [%#x, %#x)", i, begin, end, t.MinimumAddress, t.MaximumAddress)
		case !ok3 || !readable(rs, unwind, unwindInfoMin):
			return errorf(ErrBadResult, "bad provider result: entry %d: unwind data at %#x (rva %#x) is not in readable memory of the target", i, unwind, e.UnwindData)
		}
		prevEnd = e.EndAddress
	}
	return nil
}

// decodeEntries decodes n RUNTIME_FUNCTIONs from b.
func decodeEntries(b []byte) ([]unwindinfo.RuntimeFunction, error) {
	if len(b)%unwindinfo.RuntimeFunctionSize != 0 {
		return nil, fmt.Errorf("%d bytes is not a whole number of entries", len(b))
	}
	out := make([]unwindinfo.RuntimeFunction, 0, len(b)/unwindinfo.RuntimeFunctionSize)
	for len(b) > 0 {
		e, err := unwindinfo.DecodeRuntimeFunction(b)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
		b = b[unwindinfo.RuntimeFunctionSize:]
	}
	return out, nil
}
