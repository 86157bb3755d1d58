//go:build amd64

package functable

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/fntable/fntable/unwindinfo"
)

// These tests check that tables registered with a Registry reach ntdll:
// ntdll's own RtlLookupFunctionEntry, called on the test process, must
// find what Registry.LookupFunctionEntry finds. On Linux,
// TestNtdllUnderWine (wine_windows_exec_test.go) cross-compiles them and
// runs them under Wine. They use no t.TempDir: Wine 8 cannot remove
// directories the way Go 1.26 does (os.RemoveAll fails).

// ntLookup calls ntdll's RtlLookupFunctionEntry.
func ntLookup(pc uint64) (*unwindinfo.RuntimeFunction, uint64) {
	var base uint64
	p := rtlLookupFunctionEntry(pc, &base, 0)
	// ntdll returns the address of an entry in memory the test keeps
	// alive (Go's or a registry's); the conversion goes through memory
	// because vet cannot know that.
	return *(**unwindinfo.RuntimeFunction)(unsafe.Pointer(&p)), base
}

// ntReserve reserves size bytes of address space that no module occupies:
// ntdll looks in loaded modules' .pdata before dynamic tables.
func ntReserve(t *testing.T, size uintptr) uint64 {
	t.Helper()
	a, err := windows.VirtualAlloc(0, size, windows.MEM_RESERVE, windows.PAGE_NOACCESS)
	if err != nil {
		t.Fatalf("VirtualAlloc: %v", err)
	}
	t.Cleanup(func() { windows.VirtualFree(a, 0, windows.MEM_RELEASE) })
	return uint64(a)
}

// newForwarding returns a registry that forwards to ntdll.
func newForwarding(t *testing.T) *Registry {
	t.Helper()
	if err := procRtlLookupFunctionEntry.Find(); err != nil {
		t.Fatalf("ntdll lacks RtlLookupFunctionEntry: %v", err)
	}
	r, err := New(Options{Publish: true})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if _, ok := r.pub.(*ntForwarder); !ok {
		t.Fatalf("registry publisher is %T, want *ntForwarder", r.pub)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// ntSame checks that ntdll and the registry agree on each PC: both find
// nothing, or both find an equal entry with the same base.
func ntSame(t *testing.T, r *Registry, what string, pcs ...uint64) {
	t.Helper()
	for _, pc := range pcs {
		nf, nb := ntLookup(pc)
		gf, gb, ok := r.LookupFunctionEntry(pc)
		switch {
		case !ok && nf == nil:
		case !ok || nf == nil:
			t.Errorf("%s: pc %#x: ntdll %s, registry %s", what, pc, ntFormat(nf, nb), ntFormat(gf, gb))
		case *nf != *gf || nb != gb:
			t.Errorf("%s: pc %#x: ntdll %s, registry %s", what, pc, ntFormat(nf, nb), ntFormat(gf, gb))
		}
	}
}

// ntMissing checks that ntdll finds no entry for each PC.
func ntMissing(t *testing.T, what string, pcs ...uint64) {
	t.Helper()
	for _, pc := range pcs {
		if f, b := ntLookup(pc); f != nil {
			t.Errorf("%s: ntdll still finds %s for pc %#x", what, ntFormat(f, b), pc)
		}
	}
}

func ntFormat(f *unwindinfo.RuntimeFunction, base uint64) string {
	if f == nil {
		return "no entry"
	}
	return fmt.Sprintf("[%#x, %#x) unwind %#x base %#x", f.BeginAddress, f.EndAddress, f.UnwindData, base)
}

// ntPCs returns the first and last byte of each entry, the byte after it,
// and the byte before it.
func ntPCs(base uint64, entries []unwindinfo.RuntimeFunction) []uint64 {
	var pcs []uint64
	for _, e := range entries {
		b, end := base+uint64(e.BeginAddress), base+uint64(e.EndAddress)
		pcs = append(pcs, b-1, b, (b+end)/2, end-1, end)
	}
	return pcs
}

func TestNtdllStatic(t *testing.T) {
	r := newForwarding(t)
	region := ntReserve(t, 1<<20)
	sorted := []unwindinfo.RuntimeFunction{rf(0x100, 0x180, 0x1000), rf(0x180, 0x200, 0x1004), rf(0x300, 0x340, 0x1008)}
	unsorted := []unwindinfo.RuntimeFunction{rf(0x40, 0x60, 0x2008), rf(0x0, 0x10, 0x2000), rf(0x10, 0x30, 0x2004)}
	t1, err := r.AddFunctionTable(sorted, region)
	if err != nil {
		t.Fatal(err)
	}
	t2, err := r.AddFunctionTable(unsorted, region+0x10000)
	if err != nil {
		t.Fatal(err)
	}
	pcs1, pcs2 := ntPCs(region, sorted), ntPCs(region+0x10000, unsorted)
	ntSame(t, r, "sorted", pcs1...)
	ntSame(t, r, "unsorted", pcs2...)
	if f, _ := ntLookup(region + 0x100); f == nil || f.UnwindData != 0x1000 {
		t.Fatalf("ntdll does not find the first entry: %s", ntFormat(f, 0))
	}
	if err := r.DeleteFunctionTable(t1); err != nil {
		t.Fatal(err)
	}
	ntMissing(t, "deleted", pcs1...)
	ntSame(t, r, "unsorted after deleting the sorted table", pcs2...)
	if err := r.DeleteFunctionTable(t2); err != nil {
		t.Fatal(err)
	}
	ntMissing(t, "deleted", pcs2...)

	// A table with no entries covers nothing.
	empty, err := r.AddFunctionTable(nil, region)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteFunctionTable(empty); err != nil {
		t.Fatal(err)
	}
}

func TestNtdllGrowable(t *testing.T) {
	r := newForwarding(t)
	region := ntReserve(t, 1<<20)
	entries := make([]unwindinfo.RuntimeFunction, 8)
	for i := range entries {
		entries[i] = rf(uint32(i)*0x100, uint32(i)*0x100+0x80, 0x3000+4*uint32(i))
	}
	g, err := r.AddGrowableFunctionTable(entries, 2, 8, region, region+0x1000)
	if err != nil {
		t.Fatal(err)
	}
	pcs := ntPCs(region, entries)
	ntSame(t, r, "growable, 2 entries", pcs...)
	ntMissing(t, "growable, past the valid entries", ntPCs(region, entries[2:])...)
	// ntdll reads the forwarder's array for the table.
	arr := g.pub.(*ntRecord).static
	if f, _ := ntLookup(region + 0x110); unsafe.Pointer(f) != unsafe.Pointer(&arr[1]) {
		t.Errorf("ntdll returns %p, want the forwarded entry %p", f, &arr[1])
	}
	if err := r.GrowFunctionTable(g, 5); err != nil {
		t.Fatal(err)
	}
	ntSame(t, r, "growable, 5 entries", pcs...)
	if f, _ := ntLookup(region + 0x410); f == nil || f.UnwindData != 0x3010 {
		t.Errorf("after growing, ntdll finds %s for entry 4", ntFormat(f, 0))
	}
	ntMissing(t, "growable, past the valid entries", ntPCs(region, entries[5:])...)
	if err := r.GrowFunctionTable(g, 8); err != nil {
		t.Fatal(err)
	}
	ntSame(t, r, "growable, full", pcs...)
	if err := r.DeleteGrowableFunctionTable(g); err != nil {
		t.Fatal(err)
	}
	ntMissing(t, "deleted growable", pcs...)

	// No entries at all, then some.
	g, err = r.AddGrowableFunctionTable(entries, 0, 8, region, region+0x1000)
	if err != nil {
		t.Fatal(err)
	}
	ntMissing(t, "growable, 0 entries", pcs...)
	if err := r.GrowFunctionTable(g, 1); err != nil {
		t.Fatal(err)
	}
	ntSame(t, r, "growable, 1 entry", pcs...)
	if err := r.DeleteFunctionTable(g); err != nil { // as on Windows
		t.Fatal(err)
	}
	ntMissing(t, "growable deleted with DeleteFunctionTable", pcs...)
}

// cbRecorder is a callback table's Go callback that records its calls.
type cbRecorder struct {
	mu      sync.Mutex
	pcs     []uint64
	ctxs    []any
	entries []unwindinfo.RuntimeFunction // RVAs relative to base
	base    uint64
	fresh   bool // return a new copy of the entry each time
}

func (c *cbRecorder) callback(pc uint64, ctx any) *unwindinfo.RuntimeFunction {
	c.mu.Lock()
	c.pcs = append(c.pcs, pc)
	c.ctxs = append(c.ctxs, ctx)
	c.mu.Unlock()
	for i := range c.entries {
		if c.entries[i].Contains(uint32(pc - c.base)) {
			if c.fresh {
				e := c.entries[i]
				return &e
			}
			return &c.entries[i]
		}
	}
	return nil
}

func (c *cbRecorder) calls() ([]uint64, []any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pcs, ctxs := c.pcs, c.ctxs
	c.pcs, c.ctxs = nil, nil
	return pcs, ctxs
}

func TestNtdllCallback(t *testing.T) {
	r := newForwarding(t)
	region := ntReserve(t, 1<<20)
	base := region + 0x20000
	rec := &cbRecorder{base: base, entries: []unwindinfo.RuntimeFunction{rf(0x10, 0x90, 0x4000), rf(0x100, 0x180, 0x4004)}}
	ctx := &struct{ name string }{"context"}
	cb, err := r.InstallFunctionTableCallback(base|3, base, 0x1000, rec.callback, ctx, `C:\provider\jitprovider.dll`)
	if err != nil {
		t.Fatal(err)
	}
	for _, pc := range []uint64{base + 0x10, base + 0x8f, base + 0x123, base + 0x95, base + 0xfff} {
		f, b := ntLookup(pc)
		pcs, ctxs := rec.calls()
		if len(pcs) != 1 || pcs[0] != pc || ctxs[0] != any(ctx) {
			t.Errorf("ntdll lookup of %#x: callback called with pcs %#x, contexts %v; want once with the PC and the context", pc, pcs, ctxs)
		}
		want := rec.callback(pc, ctx)
		rec.calls()
		switch {
		case want == nil && f != nil:
			t.Errorf("pc %#x: ntdll finds %s, the callback has no entry", pc, ntFormat(f, b))
		case want != nil && (f != want || b != base):
			t.Errorf("pc %#x: ntdll finds %p %s, want the callback's %p with base %#x", pc, f, ntFormat(f, b), want, base)
		}
	}
	// Outside the range the callback is not called.
	ntMissing(t, "outside the callback table", base-1, base+0x1000)
	if pcs, _ := rec.calls(); len(pcs) != 0 {
		t.Errorf("callback called for PCs outside its range: %#x", pcs)
	}
	ntSame(t, r, "callback table", base+0x10, base+0x100, base+0x200)
	rec.calls()

	// A second table with the same identifier could not be deleted
	// reliably from ntdll: the forwarder refuses it.
	if _, err := r.InstallFunctionTableCallback(base|3, region, 0x1000, rec.callback, nil, ""); !errors.Is(err, ErrBadTable) {
		t.Errorf("duplicate identifier: %v, want ErrBadTable", err)
	}
	// A DLL path with a NUL cannot be given to ntdll.
	if _, err := r.InstallFunctionTableCallback(region|3, region, 0x1000, rec.callback, nil, "a\x00b"); err == nil {
		t.Errorf("DLL path with a NUL accepted")
	}

	if err := r.DeleteFunctionTable(cb); err != nil {
		t.Fatal(err)
	}
	ntMissing(t, "deleted callback table", base+0x10, base+0x123)
	if pcs, _ := rec.calls(); len(pcs) != 0 {
		t.Errorf("callback of a deleted table called for %#x", pcs)
	}
}

// TestNtdllCallbackFresh: a callback that returns a new copy of an entry
// each time gets the first copy back, which stays reachable.
func TestNtdllCallbackFresh(t *testing.T) {
	r := newForwarding(t)
	base := ntReserve(t, 1<<16)
	rec := &cbRecorder{base: base, entries: []unwindinfo.RuntimeFunction{rf(0x10, 0x90, 0x5000)}, fresh: true}
	if _, err := r.InstallFunctionTableCallback(base|3, base, 0x1000, rec.callback, nil, ""); err != nil {
		t.Fatal(err)
	}
	first, _ := ntLookup(base + 0x20)
	for range 100 {
		_ = make([]byte, 1<<16) // give the collector work
	}
	second, _ := ntLookup(base + 0x30)
	if first == nil || first != second || *first != rec.entries[0] {
		t.Errorf("lookups return %p and %p (%s), want the same kept copy of %s", first, second, ntFormat(first, 0), ntFormat(&rec.entries[0], 0))
	}
}

// TestNtdllCallbackPanic: a callback that panics while ntdll calls it
// reports no entry, and ntdll still works afterwards.
func TestNtdllCallbackPanic(t *testing.T) {
	r := newForwarding(t)
	base := ntReserve(t, 1<<16)
	panicking := func(pc uint64, ctx any) *unwindinfo.RuntimeFunction { panic("callback bug") }
	if _, err := r.InstallFunctionTableCallback(base|3, base, 0x1000, panicking, nil, ""); err != nil {
		t.Fatal(err)
	}
	ntMissing(t, "panicking callback", base+0x10, base+0x20)
	other := base + 0x8000
	if _, err := r.AddFunctionTable([]unwindinfo.RuntimeFunction{rf(0, 0x10, 0x6000)}, other); err != nil {
		t.Fatal(err)
	}
	ntSame(t, r, "after a panicking callback", other, other+0xf)
}

// TestNtdllClose: closing the registry removes its tables from ntdll.
func TestNtdllClose(t *testing.T) {
	r := newForwarding(t)
	region := ntReserve(t, 1<<20)
	entries := []unwindinfo.RuntimeFunction{rf(0, 0x40, 0x7000)}
	if _, err := r.AddFunctionTable(entries, region); err != nil {
		t.Fatal(err)
	}
	if _, err := r.AddGrowableFunctionTable(entries, 1, 1, region+0x1000, region+0x2000); err != nil {
		t.Fatal(err)
	}
	rec := &cbRecorder{base: region + 0x2000, entries: entries}
	if _, err := r.InstallFunctionTableCallback(region+0x2000|3, region+0x2000, 0x1000, rec.callback, nil, ""); err != nil {
		t.Fatal(err)
	}
	pcs := []uint64{region + 0x10, region + 0x1010, region + 0x2010}
	ntSame(t, r, "before Close", pcs...)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	ntMissing(t, "after Close", pcs...)
}

// TestNtdllForwardAlways: a registry forwards to ntdll without
// Options.Publish.
func TestNtdllForwardAlways(t *testing.T) {
	r, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.pub == nil {
		t.Fatal("New(Options{}) does not forward to ntdll")
	}
	base := ntReserve(t, 1<<16)
	entries := []unwindinfo.RuntimeFunction{rf(0x20, 0x40, 0x8000)}
	if _, err := r.AddFunctionTable(entries, base); err != nil {
		t.Fatal(err)
	}
	ntSame(t, r, "Options{}", ntPCs(base, entries)...)
	if f, _ := ntLookup(base + 0x20); f == nil {
		t.Error("ntdll does not find the table")
	}
}
