//go:build linux

package remote_test

import (
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/fntable/fntable/functable"
	"github.com/fntable/fntable/functable/remote"
	"github.com/fntable/fntable/internal/procmem"
	"github.com/fntable/fntable/unwind"
	"github.com/fntable/fntable/unwindinfo"
)

func rf(b, e, u uint32) unwindinfo.RuntimeFunction {
	return unwindinfo.RuntimeFunction{BeginAddress: b, EndAddress: e, UnwindData: u}
}

// newList creates a publishing registry and returns it with its mapping,
// found through /proc/self/maps as another process would.
func newList(t *testing.T) (*functable.Registry, remote.Mapping) {
	t.Helper()
	before, err := remote.Find(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	r, err := functable.New(functable.Options{Publish: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	after, err := remote.Find(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range after {
		if !slices.ContainsFunc(before, func(b remote.Mapping) bool { return b.Addr == m.Addr }) {
			return r, m
		}
	}
	t.Fatalf("no new mapping: before %+v, after %+v", before, after)
	return nil, remote.Mapping{}
}

func selfMemory(t *testing.T) *procmem.Process {
	t.Helper()
	p, err := procmem.Open(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// compare checks a snapshot table against the registry's table in every
// field.
func compare(t *testing.T, m remote.Mapping, got *remote.Table, want *functable.Table, maxCount uint32, registered time.Time) {
	t.Helper()
	min, max := want.Range()
	wantEntries := want.Entries()
	if len(wantEntries) == 0 {
		wantEntries = nil
	}
	gotEntries := got.Entries
	if len(gotEntries) == 0 {
		gotEntries = nil
	}
	ft := got.FunctionTable
	if want.Type() == functable.RF_CALLBACK {
		ft = want.Identifier()
	} else if ft < m.Addr || ft >= m.Addr+m.Size+1<<30 {
		t.Errorf("entry array at %#x outside the mapping at %#x", ft, m.Addr)
	}
	if got.Type != want.Type() || got.FunctionTable != ft || got.Identifier() != want.Identifier() ||
		got.MinimumAddress != min || got.MaximumAddress != max || got.BaseAddress != want.BaseAddress() ||
		got.EntryCount != want.EntryCount() || got.MaximumEntryCount != maxCount || got.Growable != want.Growable() ||
		got.OutOfProcessCallbackDll != want.OutOfProcessCallbackDll() || got.Callback != 0 || got.Context != 0 ||
		!slices.Equal(gotEntries, wantEntries) {
		t.Errorf("table at %#x:\n got %+v\nwant %s %#x [%#x, %#x) base %#x count %d max %d dll %q entries %v",
			got.Record, got, want.Type(), want.Identifier(), min, max, want.BaseAddress(), want.EntryCount(), maxCount, want.OutOfProcessCallbackDll(), wantEntries)
	}
	if got.Record < m.Addr+functable.HeaderSize || got.Record >= m.Addr+1<<30 {
		t.Errorf("record at %#x outside the mapping at %#x", got.Record, m.Addr)
	}
	if d := got.Registered().Sub(registered); d < -time.Millisecond || d > time.Minute {
		t.Errorf("registered %v, expected after %v", got.Registered(), registered)
	}
}

// TestSelf publishes tables of every kind in this process and reads them
// back as another process would: through /proc/self/maps, process_vm_readv
// and Read.
func TestSelf(t *testing.T) {
	r, m := newList(t)
	mem := selfMemory(t)
	t0 := time.Now()
	sorted, err := r.AddFunctionTable([]unwindinfo.RuntimeFunction{rf(0x10, 0x20, 0x100), rf(0x20, 0x30, 0x104), rf(0x40, 0x50, 0x108)}, 0x7f0000010000)
	if err != nil {
		t.Fatal(err)
	}
	unsorted, err := r.AddFunctionTable([]unwindinfo.RuntimeFunction{rf(0x40, 0x50, 8), rf(0, 0x10, 4), rf(0x20, 0x28, 6)}, 0x7f0000020000)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]unwindinfo.RuntimeFunction, 16)
	for i := range buf {
		buf[i] = rf(uint32(i)*0x100, uint32(i)*0x100+0x80, 0x8000+uint32(i)*4)
	}
	grow, err := r.AddGrowableFunctionTable(buf, 2, 16, 0x7f0000100000, 0x7f0000110000)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := r.InstallFunctionTableCallback(0x7f0000200003, 0x7f0000200000, 0x10000,
		func(uint64, any) *unwindinfo.RuntimeFunction { return nil }, nil, "/opt/jit/libprovider-é𝄞.so")
	if err != nil {
		t.Fatal(err)
	}
	tables := []*functable.Table{sorted, unsorted, grow, cb}
	maxCounts := []uint32{3, 3, 16, 0}
	check := func(step string) *remote.Snapshot {
		t.Helper()
		s, err := remote.Read(mem, m)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if len(s.Tables) != len(tables) || s.Pid != uint32(os.Getpid()) || s.MappingAddress != m.Addr || s.Generation&1 != 0 {
			t.Fatalf("%s: snapshot %+v", step, s)
		}
		for i := range tables {
			compare(t, m, &s.Tables[i], tables[i], maxCounts[i], t0)
		}
		// Lookups agree with the registry's, except in callback ranges,
		// which a snapshot leaves to providers.
		for _, tb := range tables {
			min, max := tb.Range()
			for pc := min - 1; pc <= max; pc += 4 {
				fn, base, ok := s.LookupFunctionEntry(pc)
				wfn, wbase, wok := r.LookupFunctionEntry(pc)
				if tb.Type() == functable.RF_CALLBACK && pc >= min && pc < max {
					if ok {
						t.Fatalf("%s: snapshot answered %#x in a callback range", step, pc)
					}
					continue
				}
				if ok != wok || ok && (*fn != *wfn || base != wbase) {
					t.Fatalf("%s: lookup %#x: %+v %#x %v, registry %+v %#x %v", step, pc, fn, base, ok, wfn, wbase, wok)
				}
			}
		}
		return s
	}
	s := check("registered")
	// The snapshot serves the unwinder.
	if fn, base, ok, err := unwind.Lookup(s, nil, 0x7f0000010015); err != nil || !ok || base != 0x7f0000010000 || fn.UnwindData != 0x100 {
		t.Errorf("unwind.Lookup: %+v %#x %v %v", fn, base, ok, err)
	}
	if err := r.GrowFunctionTable(grow, 9); err != nil {
		t.Fatal(err)
	}
	check("grown")
	if err := r.DeleteFunctionTable(unsorted); err != nil {
		t.Fatal(err)
	}
	tables = slices.Delete(tables, 1, 2)
	maxCounts = slices.Delete(maxCounts, 1, 2)
	check("deleted")
	if err := r.GrowFunctionTable(grow, 16); err != nil {
		t.Fatal(err)
	}
	again, err := r.AddFunctionTable([]unwindinfo.RuntimeFunction{rf(0, 0x10, 0x40)}, 0x7f0000020000)
	if err != nil {
		t.Fatal(err)
	}
	tables = append(tables, again)
	maxCounts = append(maxCounts, 1)
	check("re-added")

	// Closed: the mapping is gone.
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	ms, err := remote.Find(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for _, m2 := range ms {
		if m2.Addr == m.Addr {
			t.Error("mapping listed after Close")
		}
	}
	if _, err := remote.Read(mem, m); !errors.Is(err, unwind.ErrShortRead) {
		t.Errorf("read after Close: %v", err)
	}
}

// TestSeveralLists: each registry has its own list.
func TestSeveralLists(t *testing.T) {
	r1, m1 := newList(t)
	r2, m2 := newList(t)
	if m1.Addr == m2.Addr || m1.Inode == m2.Inode {
		t.Fatalf("mappings %+v %+v", m1, m2)
	}
	if _, err := r1.AddFunctionTable([]unwindinfo.RuntimeFunction{rf(0, 0x10, 1)}, 0x10000); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.AddFunctionTable([]unwindinfo.RuntimeFunction{rf(0, 0x10, 2)}, 0x10000); err != nil {
		t.Fatal(err)
	}
	mem := selfMemory(t)
	for i, m := range []remote.Mapping{m1, m2} {
		s, err := remote.Read(mem, m)
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Tables) != 1 || s.Tables[0].Entries[0].UnwindData != uint32(i+1) {
			t.Errorf("list %d: %+v", i, s.Tables)
		}
	}
}

// TestFindOther: a process without lists has none; a missing one fails.
func TestFindOther(t *testing.T) {
	if ms, err := remote.Find(1 << 30); err == nil {
		t.Errorf("Find of a missing process: %+v", ms)
	}
}
