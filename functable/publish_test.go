//go:build linux

package functable

import (
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf16"
	"unsafe"

	"github.com/fntable/fntable/functable/record"
	"github.com/fntable/fntable/unwindinfo"
)

// These tests check the writer from inside, reading the mapping directly;
// functable/remote's tests read it through another process's eyes.

func newPublishing(t *testing.T) (*Registry, *mapPublisher) {
	t.Helper()
	r, err := New(Options{Publish: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, r.pub.(*mapPublisher)
}

func (p *mapPublisher) get32(off uintptr) uint32 { return atomic.LoadUint32((*uint32)(p.ptr(off))) }

// rawRecord is a record read straight from the mapping.
type rawRecord struct {
	off                          uintptr
	flink, blink, ft, ts         uint64
	min, max, base, cb, ctx, dll uint64
	typ, count, maxCount, flags  uint32
	entries                      []unwindinfo.RuntimeFunction
	dllPath                      string
}

// records walks the list, checking its links and count.
func records(t *testing.T, p *mapPublisher) []rawRecord {
	t.Helper()
	base := uint64(uintptr(p.base))
	if g := p.get64(HdrGeneration); g&1 != 0 {
		t.Fatalf("generation %d is odd outside a change", g)
	}
	var out []rawRecord
	prev := base + HdrListHead
	for a := p.get64(HdrListHead); a != base+HdrListHead; {
		off := uintptr(a - base)
		if a < base+HeaderSize || off+RecordSize > uintptr(p.get64(HdrUsedSize)) || len(out) > MaxTables {
			t.Fatalf("record at %#x outside the used part", a)
		}
		r := rawRecord{off: off, flink: p.get64(off), blink: p.get64(off + 8), ft: p.get64(off + RecFunctionTable),
			ts: p.get64(off + RecTimeStamp), min: p.get64(off + RecMinimumAddress), max: p.get64(off + RecMaximumAddress),
			base: p.get64(off + RecBaseAddress), cb: p.get64(off + RecCallback), ctx: p.get64(off + RecContext),
			dll: p.get64(off + RecOutOfProcessCallbackDll), typ: p.get32(off + RecType), count: p.get32(off + RecEntryCount),
			maxCount: p.get32(off + RecMaximumEntryCount), flags: p.get32(off + RecFlags)}
		if r.blink != prev {
			t.Fatalf("record %#x: Blink %#x, want %#x", a, r.blink, prev)
		}
		if r.typ != uint32(RF_CALLBACK) {
			for i := uint32(0); i < r.count; i++ {
				o := uintptr(r.ft-base) + uintptr(i)*RuntimeFunctionSize
				r.entries = append(r.entries, unwindinfo.RuntimeFunction{BeginAddress: p.get32(o), EndAddress: p.get32(o + 4), UnwindData: p.get32(o + 8)})
			}
		}
		if r.dll != 0 {
			var u []uint16
			for o := uintptr(r.dll - base); ; o += 2 {
				c := *(*uint16)(p.ptr(o))
				if c == 0 {
					break
				}
				u = append(u, c)
			}
			r.dllPath = string(utf16.Decode(u))
		}
		out = append(out, r)
		prev, a = a, r.flink
	}
	if p.get64(HdrListHead+8) != prev {
		t.Fatalf("head Blink %#x, want %#x", p.get64(HdrListHead+8), prev)
	}
	if n := p.get32(HdrTableCount); n != uint32(len(out)) {
		t.Fatalf("count %d, list of %d", n, len(out))
	}
	return out
}

// mapsLines returns the lines of /proc/self/maps of published lists.
func mapsLines(t *testing.T) []string {
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasSuffix(l, "/memfd:"+MemfdName+" (deleted)") {
			out = append(out, l)
		}
	}
	return out
}

func TestPublishHeader(t *testing.T) {
	before := len(mapsLines(t))
	_, p := newPublishing(t)
	base := uint64(uintptr(p.base))
	if got := string(unsafe.Slice((*byte)(p.base), 8)); got != LayoutMagic {
		t.Errorf("magic %q", got)
	}
	for _, c := range []struct {
		name string
		got  uint64
		want uint64
	}{
		{"version", uint64(p.get32(HdrVersion)), LayoutVersion},
		{"header size", uint64(p.get32(HdrHeaderSize)), HeaderSize},
		{"record size", uint64(p.get32(HdrRecordSize)), RecordSize},
		{"pid", uint64(p.get32(HdrPid)), uint64(os.Getpid())},
		{"generation", p.get64(HdrGeneration), 0},
		{"flink", p.get64(HdrListHead), base + HdrListHead},
		{"blink", p.get64(HdrListHead + 8), base + HdrListHead},
		{"mapping address", p.get64(HdrMappingAddress), base},
		{"mapping size", p.get64(HdrMappingSize), pubInitialSize},
		{"used size", p.get64(HdrUsedSize), HeaderSize},
		{"count", uint64(p.get32(HdrTableCount)), 0},
		{"flags", uint64(p.get32(HdrFlags)), 0},
	} {
		if c.got != c.want {
			t.Errorf("%s: %#x, want %#x", c.name, c.got, c.want)
		}
	}
	lines := mapsLines(t)
	if len(lines) != before+1 {
		t.Fatalf("maps lines of published lists: %q", lines)
	}
}

func TestPublishRecords(t *testing.T) {
	r, p := newPublishing(t)
	base := uint64(uintptr(p.base))
	t0 := time.Now()
	sorted, err := r.AddFunctionTable([]unwindinfo.RuntimeFunction{rf(0x10, 0x20, 0x100), rf(0x20, 0x30, 0x104)}, 0x10000)
	if err != nil {
		t.Fatal(err)
	}
	unsorted, err := r.AddFunctionTable([]unwindinfo.RuntimeFunction{rf(0x40, 0x50, 8), rf(0, 0x10, 4), rf(0, 0, 0)}, 0x20000)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]unwindinfo.RuntimeFunction, 8)
	buf[0] = rf(0, 0x10, 0x1000)
	grow, err := r.AddGrowableFunctionTable(buf, 1, 8, 0x70000, 0x80000)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := r.InstallFunctionTableCallback(0x40003, 0x40000, 0x1000, func(uint64, any) *unwindinfo.RuntimeFunction { return nil }, nil, "/opt/jit/libprovider-é𝄞.so")
	if err != nil {
		t.Fatal(err)
	}
	empty, err := r.AddFunctionTable(nil, 0x90000)
	if err != nil {
		t.Fatal(err)
	}
	if err := cb.PublishNativeCallback(0x5555aaaa0000, 0x1234); err != nil {
		t.Fatal(err)
	}
	if err := sorted.PublishNativeCallback(1, 2); !errors.Is(err, ErrBadTable) {
		t.Errorf("native callback on a sorted table: %v", err)
	}
	recs := records(t, p)
	if len(recs) != 5 {
		t.Fatalf("%d records", len(recs))
	}
	check := func(r rawRecord, tb *Table) {
		t.Helper()
		wantFT := r.ft
		if tb.typ == RF_CALLBACK {
			wantFT = tb.id
		} else if !tb.growable && r.ft != base+uint64(r.off)+RecordSize {
			t.Errorf("array at %#x, record at %#x", r.ft, r.off)
		}
		want := tb.Entries()
		if r.ft != wantFT || r.min != tb.min || r.max != tb.max || r.base != tb.base || r.typ != uint32(tb.typ) ||
			r.count != uint32(len(want)) || r.dllPath != tb.dll || (r.flags == RecFlagGrowable) != tb.growable {
			t.Errorf("record %+v for table %+v", r, tb)
		}
		if len(r.entries) != len(want) {
			t.Fatalf("%d entries, want %d", len(r.entries), len(want))
		}
		for i := range want {
			if r.entries[i] != want[i] {
				t.Errorf("entry %d: %+v, want %+v", i, r.entries[i], want[i])
			}
		}
		reg := time.Unix(0, (int64(r.ts)-record.FiletimeEpochDelta)*100)
		if d := reg.Sub(t0); d < -time.Millisecond || d > time.Minute {
			t.Errorf("timestamp %v, test started %v", reg, t0)
		}
	}
	for i, tb := range []*Table{sorted, unsorted, grow, cb, empty} {
		check(recs[i], tb)
	}
	if recs[2].maxCount != 8 || recs[0].maxCount != 2 || recs[1].maxCount != 2 || recs[3].maxCount != 0 {
		t.Errorf("maximum counts %d %d %d %d", recs[0].maxCount, recs[1].maxCount, recs[2].maxCount, recs[3].maxCount)
	}
	if recs[3].cb != 0x5555aaaa0000 || recs[3].ctx != 0x1234 || recs[0].cb != 0 {
		t.Errorf("callback fields %#x %#x", recs[3].cb, recs[3].ctx)
	}
	if recs[1].entries[0] != rf(0, 0x10, 4) {
		t.Errorf("unsorted table's entries are published sorted: %+v", recs[1].entries)
	}
	gen := p.get64(HdrGeneration)

	// Grow: the new entries, then the count.
	buf[1], buf[2] = rf(0x20, 0x30, 0x1004), rf(0x30, 0x40, 0x1008)
	if err := r.GrowFunctionTable(grow, 3); err != nil {
		t.Fatal(err)
	}
	if g := p.get64(HdrGeneration); g != gen+2 {
		t.Errorf("generation %d after a grow from %d", g, gen)
	}
	recs = records(t, p)
	check(recs[2], grow)

	// Delete; the block is reused by the next table of its size.
	freed := recs[0].off
	if err := r.DeleteFunctionTable(sorted); err != nil {
		t.Fatal(err)
	}
	recs = records(t, p)
	if len(recs) != 4 {
		t.Fatalf("%d records after delete", len(recs))
	}
	for _, rc := range recs {
		if rc.off == freed {
			t.Fatal("deleted record still listed")
		}
	}
	again, err := r.AddFunctionTable([]unwindinfo.RuntimeFunction{rf(0x10, 0x20, 0x200)}, 0x10000)
	if err != nil {
		t.Fatal(err)
	}
	recs = records(t, p)
	if last := recs[len(recs)-1]; last.off != freed {
		t.Errorf("new table at %#x, freed block at %#x", last.off, freed)
	} else {
		check(last, again)
	}
	for _, tb := range []*Table{unsorted, cb, empty, again} {
		if err := r.DeleteFunctionTable(tb); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.DeleteGrowableFunctionTable(grow); err != nil {
		t.Fatal(err)
	}
	if recs := records(t, p); len(recs) != 0 || p.get64(HdrListHead) != base+HdrListHead {
		t.Fatalf("%d records after deleting all", len(recs))
	}
}

// TestPublishGrowMapping: a table larger than the mapping grows it in
// place; the header stays where it was.
func TestPublishGrowMapping(t *testing.T) {
	r, p := newPublishing(t)
	base := p.base
	const n = 100000 // 1.2 MB of entries
	entries := make([]unwindinfo.RuntimeFunction, n)
	for i := range entries {
		entries[i] = rf(uint32(i*16), uint32(i*16+16), uint32(i))
	}
	small, err := r.AddFunctionTable(entries[:1], 0x100000000)
	if err != nil {
		t.Fatal(err)
	}
	big, err := r.AddGrowableFunctionTable(entries, 10, n, 0x200000000, 0x200000000+n*16)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.GrowFunctionTable(big, n); err != nil {
		t.Fatal(err)
	}
	if p.base != base || p.get64(HdrMappingAddress) != uint64(uintptr(base)) {
		t.Fatal("the mapping moved")
	}
	if size := p.get64(HdrMappingSize); size < n*RuntimeFunctionSize || size&(size-1) != 0 || uintptr(size) != p.size {
		t.Errorf("mapping size %#x", size)
	}
	recs := records(t, p)
	if len(recs) != 2 || len(recs[1].entries) != n || recs[1].entries[n-1] != entries[n-1] || recs[0].entries[0] != entries[0] {
		t.Fatal("records after growth")
	}
	// The whole mapping is one run of the memfd in /proc/self/maps.
	lines := mapsLines(t)
	found := false
	for _, l := range lines {
		var lo, hi uint64
		if f := strings.Fields(l); len(f) > 2 && f[2] == "00000000" {
			rng := strings.SplitN(f[0], "-", 2)
			lo, hi = parseHex(rng[0]), parseHex(rng[1])
		}
		if lo == uint64(uintptr(base)) {
			found = true
			if hi-lo != uint64(p.size) {
				t.Errorf("maps line %q: %#x bytes, mapping has %#x", l, hi-lo, p.size)
			}
		}
	}
	if !found {
		t.Errorf("no maps line at %p in %q", base, lines)
	}
	if err := r.DeleteFunctionTable(small); err != nil {
		t.Fatal(err)
	}
}

// TestPublishGrowableRoom: a growable table's array has room for what it
// holds, not for its maximum, and moves to a larger block as it grows, so
// that tables with large maximums neither fill the list nor make readers
// copy their room.
func TestPublishGrowableRoom(t *testing.T) {
	r, p := newPublishing(t)
	const max = 1 << 20                            // 12 MiB of room each, in the old layout
	buf := make([]unwindinfo.RuntimeFunction, max) // the caller's array has room for the maximum
	for i := range 1000 {
		buf[i] = rf(uint32(i*16), uint32(i*16+16), uint32(i))
	}
	var tables []*Table
	for i := range 5 {
		lo := uint64(0x100000000000) + uint64(i)<<32
		tb, err := r.AddGrowableFunctionTable(buf, 1, max, lo, lo+0x100000)
		if err != nil {
			t.Fatalf("growable table %d with a maximum of %d: %v", i, max, err)
		}
		tables = append(tables, tb)
	}
	if used := p.get64(HdrUsedSize); used > 64<<10 {
		t.Errorf("5 growable tables of 1 entry use %d bytes of the list", used)
	}
	recs := records(t, p)
	first := recs[0].ft
	// Grown past the first room: the array moves and holds every entry.
	for _, n := range []uint32{2, 85, 86, 500, 1000} {
		if err := r.GrowFunctionTable(tables[0], n); err != nil {
			t.Fatal(err)
		}
		recs = records(t, p)
		if len(recs[0].entries) != int(n) || recs[0].entries[n-1] != buf[n-1] || recs[0].maxCount != max {
			t.Fatalf("after a grow to %d: %d entries, maximum %d", n, len(recs[0].entries), recs[0].maxCount)
		}
	}
	if recs[0].ft == first {
		t.Error("the array did not move to a larger block")
	}
	if used := p.get64(HdrUsedSize); used > 64<<10 {
		t.Errorf("after growing to 1000 entries the list uses %d bytes", used)
	}
	for _, tb := range tables {
		if err := r.DeleteGrowableFunctionTable(tb); err != nil {
			t.Fatal(err)
		}
	}
}

func parseHex(s string) uint64 {
	var v uint64
	for _, c := range s {
		v <<= 4
		switch {
		case c >= '0' && c <= '9':
			v |= uint64(c - '0')
		case c >= 'a' && c <= 'f':
			v |= uint64(c - 'a' + 10)
		}
	}
	return v
}

func TestPublishLimits(t *testing.T) {
	r, p := newPublishing(t)
	noop := func(uint64, any) *unwindinfo.RuntimeFunction { return nil }
	long := strings.Repeat("x", MaxDllLength+1)
	if _, err := r.InstallFunctionTableCallback(0x40003, 0x40000, 0x100, noop, nil, long); !errors.Is(err, ErrBadTable) {
		t.Errorf("path too long: %v", err)
	}
	if _, err := r.InstallFunctionTableCallback(0x40003, 0x40000, 0x100, noop, nil, long[1:]); err != nil {
		t.Errorf("longest path: %v", err)
	}
	if _, err := r.InstallFunctionTableCallback(0x50003, 0x50000, 0x100, noop, nil, "a\x00b"); !errors.Is(err, ErrBadTable) {
		t.Errorf("path with NUL: %v", err)
	}
	if _, err := p.alloc(numClasses); !errors.Is(err, ErrListFull) {
		t.Errorf("alloc past the largest class: %v", err)
	}
	if _, err := p.alloc(30); !errors.Is(err, ErrListFull) {
		t.Errorf("alloc of the whole reservation: %v", err)
	}
	p.count = MaxTables
	if _, err := r.AddFunctionTable([]unwindinfo.RuntimeFunction{rf(0, 0x10, 0)}, 0x60000); !errors.Is(err, ErrListFull) {
		t.Errorf("too many tables: %v", err)
	}
	p.count = 1
	if g := p.get64(HdrGeneration); g&1 != 0 {
		t.Errorf("generation %d odd after failed adds", g)
	}
	if r.Len() != 1 {
		t.Errorf("%d tables registered", r.Len())
	}
}

func TestPublishClose(t *testing.T) {
	before := len(mapsLines(t))
	r, err := New(Options{Publish: true})
	if err != nil {
		t.Fatal(err)
	}
	tb, err := r.AddFunctionTable([]unwindinfo.RuntimeFunction{rf(0, 0x10, 0)}, 0x60000)
	if err != nil {
		t.Fatal(err)
	}
	if len(mapsLines(t)) != before+1 {
		t.Fatal("no mapping")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if len(mapsLines(t)) != before {
		t.Error("mapping left after Close")
	}
	// Lookups keep working, deleting still works, nothing touches the
	// unmapped list.
	if _, _, ok := r.LookupFunctionEntry(0x60005); !ok {
		t.Error("lookup after Close")
	}
	if err := r.DeleteFunctionTable(tb); err != nil {
		t.Error(err)
	}
	if err := r.Close(); err != nil {
		t.Error(err)
	}
	// Without Publish, no mapping.
	r2, err := New(Options{})
	if err != nil || r2.pub != nil || len(mapsLines(t)) != before {
		t.Error("a registry without Publish published")
	}
}
