package functable

import (
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fntable/fntable/unwind"
	"github.com/fntable/fntable/unwindinfo"
)

func rf(b, e, u uint32) unwindinfo.RuntimeFunction {
	return unwindinfo.RuntimeFunction{BeginAddress: b, EndAddress: e, UnwindData: u}
}

func newRegistry(t testing.TB) *Registry {
	r, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestStaticTables(t *testing.T) {
	r := newRegistry(t)
	sorted, err := r.AddFunctionTable([]unwindinfo.RuntimeFunction{rf(0x10, 0x20, 0x100), rf(0x20, 0x30, 0x104), rf(0x40, 0x50, 0x108)}, 0x10000)
	if err != nil {
		t.Fatal(err)
	}
	unsorted, err := r.AddFunctionTable([]unwindinfo.RuntimeFunction{rf(0x40, 0x50, 0x8), rf(0x0, 0x10, 0x4), rf(0, 0, 0)}, 0x20000)
	if err != nil {
		t.Fatal(err)
	}
	if sorted.Type() != RF_SORTED || unsorted.Type() != RF_UNSORTED {
		t.Errorf("types %v %v", sorted.Type(), unsorted.Type())
	}
	if min, max := sorted.Range(); min != 0x10010 || max != 0x10050 {
		t.Errorf("range %#x-%#x", min, max)
	}
	cases := []struct {
		pc         uint64
		ok         bool
		base       uint64
		begin, fnu uint32
	}{
		{0x10010, true, 0x10000, 0x10, 0x100}, // first byte
		{0x1001f, true, 0x10000, 0x10, 0x100}, // last byte
		{0x10020, true, 0x10000, 0x20, 0x104}, // next entry
		{0x10035, false, 0, 0, 0},             // gap inside the table's range
		{0x1004f, true, 0x10000, 0x40, 0x108},
		{0x10050, false, 0, 0, 0}, // end
		{0x1000f, false, 0, 0, 0}, // before
		{0x20000, true, 0x20000, 0, 4},
		{0x20045, true, 0x20000, 0x40, 8},
		{0x20050, false, 0, 0, 0},
	}
	for _, c := range cases {
		fn, base, ok := r.LookupFunctionEntry(c.pc)
		if ok != c.ok || ok && (base != c.base || fn.BeginAddress != c.begin || fn.UnwindData != c.fnu) {
			t.Errorf("lookup %#x: %+v %#x %v", c.pc, fn, base, ok)
		}
	}
	// Overlap is rejected, adjacency is not.
	if _, err := r.AddFunctionTable([]unwindinfo.RuntimeFunction{rf(0x4f, 0x60, 0)}, 0x10000); !errors.Is(err, ErrOverlap) {
		t.Errorf("overlap: %v", err)
	}
	if _, err := r.AddFunctionTable([]unwindinfo.RuntimeFunction{rf(0x50, 0x60, 0)}, 0x10000); err != nil {
		t.Errorf("adjacent: %v", err)
	}
	if err := r.DeleteFunctionTable(sorted); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := r.LookupFunctionEntry(0x10010); ok {
		t.Error("deleted table still found")
	}
	if err := r.DeleteFunctionTable(sorted); !errors.Is(err, ErrNotRegistered) {
		t.Errorf("second delete: %v", err)
	}
	if err := newRegistry(t).DeleteFunctionTable(unsorted); !errors.Is(err, ErrNotRegistered) {
		t.Errorf("delete in another registry: %v", err)
	}
	// An empty table registers but covers nothing.
	if _, err := r.AddFunctionTable(nil, 0x90000); err != nil || r.Len() != 2 {
		t.Errorf("empty table: %v, %d tables", err, r.Len())
	}
}

func TestCallbackTables(t *testing.T) {
	r := newRegistry(t)
	if _, err := r.InstallFunctionTableCallback(0x40000|1, 0x40000, 0x1000, func(uint64, any) *unwindinfo.RuntimeFunction { return nil }, nil, ""); !errors.Is(err, ErrBadIdentifier) {
		t.Errorf("identifier with one low bit: %v", err)
	}
	entry := rf(0x100, 0x200, 0x800)
	type call struct {
		pc  uint64
		ctx any
	}
	var calls []call
	ctxVal := &struct{ name string }{"jit"}
	tbl, err := r.InstallFunctionTableCallback(0x40000|3, 0x40000, 0x1000, func(pc uint64, c any) *unwindinfo.RuntimeFunction {
		calls = append(calls, call{pc, c})
		if pc-0x40000 >= 0x100 && pc-0x40000 < 0x200 {
			return &entry
		}
		return nil
	}, ctxVal, "/opt/jit/libprovider.so")
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 0 {
		t.Fatal("callback called at registration")
	}
	if _, _, ok := r.LookupFunctionEntry(0x41000); ok || len(calls) != 0 {
		t.Fatal("callback called outside its range")
	}
	fn, base, ok := r.LookupFunctionEntry(0x40123)
	if !ok || fn != &entry || base != 0x40000 || len(calls) != 1 || calls[0].pc != 0x40123 || calls[0].ctx != ctxVal {
		t.Fatalf("lookup: %v %#x %v, calls %+v", fn, base, ok, calls)
	}
	if _, _, ok := r.LookupFunctionEntry(0x40fff); ok || len(calls) != 2 || calls[1].pc != 0x40fff {
		t.Fatalf("miss in range: calls %+v", calls)
	}
	if tbl.Identifier() != 0x40003 || tbl.OutOfProcessCallbackDll() != "/opt/jit/libprovider.so" || tbl.Type() != RF_CALLBACK {
		t.Errorf("table fields")
	}
}

// TestCallbackReentry: a callback may add, look up and delete tables,
// including its own, because it runs with no lock held.
func TestCallbackReentry(t *testing.T) {
	r := newRegistry(t)
	entry := rf(0, 0x10, 0)
	var self *Table
	var err error
	self, err = r.InstallFunctionTableCallback(0x50003, 0x50000, 0x100, func(pc uint64, _ any) *unwindinfo.RuntimeFunction {
		other, err := r.AddFunctionTable([]unwindinfo.RuntimeFunction{rf(0, 0x10, 0)}, 0x60000)
		if err != nil {
			t.Error(err)
			return nil
		}
		if _, _, ok := r.LookupFunctionEntry(0x60005); !ok {
			t.Error("nested lookup failed")
		}
		if err := r.DeleteFunctionTable(other); err != nil {
			t.Error(err)
		}
		if err := r.DeleteFunctionTable(self); err != nil {
			t.Error(err)
		}
		return &entry
	}, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if fn, _, ok := r.LookupFunctionEntry(0x50001); !ok || fn != &entry {
		t.Fatal("lookup through a re-entering callback")
	}
	if _, _, ok := r.LookupFunctionEntry(0x50001); ok {
		t.Fatal("the callback deleted its own table")
	}
}

func TestGrowableTables(t *testing.T) {
	r := newRegistry(t)
	buf := make([]unwindinfo.RuntimeFunction, 4)
	buf[0] = rf(0x0, 0x10, 0x1000)
	g, err := r.AddGrowableFunctionTable(buf, 1, 4, 0x70000, 0x80000)
	if err != nil {
		t.Fatal(err)
	}
	if min, max := g.Range(); min != 0x70000 || max != 0x80000 || g.EntryCount() != 1 {
		t.Fatalf("range %#x-%#x count %d", min, max, g.EntryCount())
	}
	if _, _, ok := r.LookupFunctionEntry(0x70020); ok {
		t.Fatal("entry beyond the count found")
	}
	buf[1] = rf(0x20, 0x30, 0x1004)
	buf[2] = rf(0x30, 0x40, 0x1008)
	if _, _, ok := r.LookupFunctionEntry(0x70020); ok {
		t.Fatal("entry found before Grow")
	}
	if err := r.GrowFunctionTable(g, 3); err != nil {
		t.Fatal(err)
	}
	if fn, base, ok := r.LookupFunctionEntry(0x70035); !ok || base != 0x70000 || fn.UnwindData != 0x1008 {
		t.Fatal("grown entry not found")
	}
	for _, bad := range []struct {
		name  string
		n     uint32
		entry unwindinfo.RuntimeFunction
	}{
		{"shrink", 2, buf[3]},
		{"past maximum", 5, buf[3]},
		{"unsorted", 4, rf(0x10, 0x18, 0)},
		{"outside range", 4, rf(0x40, 0x10001, 0)},
	} {
		buf[3] = bad.entry
		if err := r.GrowFunctionTable(g, bad.n); !errors.Is(err, ErrBadGrow) {
			t.Errorf("%s: %v", bad.name, err)
		}
	}
	if g.EntryCount() != 3 {
		t.Fatalf("failed grows changed the count to %d", g.EntryCount())
	}
	buf[3] = rf(0x40, 0x10000, 0)
	if err := r.GrowFunctionTable(g, 4); err != nil {
		t.Fatal(err)
	}
	if _, err := r.AddGrowableFunctionTable(buf, 5, 4, 0x90000, 0xa0000); !errors.Is(err, ErrBadTable) {
		t.Errorf("count > maximum: %v", err)
	}
	if _, err := r.AddGrowableFunctionTable(buf, 1, 4, 0x7ff00, 0x70001); !errors.Is(err, ErrOverlap) && !errors.Is(err, ErrBadTable) {
		t.Errorf("overlapping growable: %v", err)
	}
	if err := r.DeleteGrowableFunctionTable(g); err != nil {
		t.Fatal(err)
	}
	if err := r.GrowFunctionTable(g, 4); !errors.Is(err, ErrNotRegistered) {
		t.Errorf("grow after delete: %v", err)
	}
}

// TestUnwindThroughRegistry: the registry serves unwind.Lookup and
// VirtualUnwind end to end.
func TestUnwindThroughRegistry(t *testing.T) {
	r := newRegistry(t)
	const base = 0x7f0000000000
	code := []byte{0x55, 0x48, 0x83, 0xec, 0x20, 0x90, 0x48, 0x83, 0xc4, 0x20, 0x5d, 0xc3}
	info := []byte{1, 5, 2, 0, 5, 0x32, 1, 0x50}
	var mem unwind.SplicedMemory
	mem.Add(base, code)
	mem.Add(base+0x100, info)
	stack := make([]byte, 0x40)
	stack[0x28] = 0x42 // return address at rsp+0x28
	stack[0x20] = 0x77 // saved rbp
	mem.Add(0x1000, stack)
	if _, err := r.AddFunctionTable([]unwindinfo.RuntimeFunction{rf(0, uint32(len(code)), 0x100)}, base); err != nil {
		t.Fatal(err)
	}
	fn, ib, ok, err := unwind.Lookup(r, &mem, base+5)
	if err != nil || !ok || ib != base {
		t.Fatal("lookup", err, ok)
	}
	ctx := unwind.Context{Rsp: 0x1000, Rip: base + 5}
	if _, err := unwind.VirtualUnwind(unwind.HandlerNone, ib, ctx.Rip, &fn, &ctx, nil, &mem); err != nil {
		t.Fatal(err)
	}
	if ctx.Rip != 0x42 || ctx.Rbp != 0x77 || ctx.Rsp != 0x1030 {
		t.Fatalf("%+v", ctx)
	}
}

// TestIndexRandom checks the persistent index against a plain map under
// random inserts and removes.
func TestIndexRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	r := newRegistry(t)
	live := map[uint64]*Table{} // slot -> table
	for step := 0; step < 20000; step++ {
		slot := uint64(rng.IntN(3000))
		if tb, ok := live[slot]; ok {
			if err := r.DeleteFunctionTable(tb); err != nil {
				t.Fatal(err)
			}
			delete(live, slot)
		} else {
			tb, err := r.AddFunctionTable([]unwindinfo.RuntimeFunction{rf(0, 0x100, uint32(slot))}, slot*0x1000)
			if err != nil {
				t.Fatal(err)
			}
			live[slot] = tb
		}
		if step%97 == 0 {
			if r.Len() != len(live) {
				t.Fatalf("step %d: %d tables, want %d", step, r.Len(), len(live))
			}
			for probe := 0; probe < 50; probe++ {
				s := uint64(rng.IntN(3000))
				fn, _, ok := r.LookupFunctionEntry(s*0x1000 + 0x80)
				_, want := live[s]
				if ok != want || ok && fn.UnwindData != uint32(s) {
					t.Fatalf("step %d slot %d: found %v want %v", step, s, ok, want)
				}
				if _, _, ok := r.LookupFunctionEntry(s*0x1000 + 0x180); ok {
					t.Fatal("found past a table's end")
				}
			}
			prev := uint64(0)
			n := 0
			r.Tables(func(tb *Table) bool {
				if min, _ := tb.Range(); min < prev {
					t.Fatal("tables out of order")
				}
				prev, _ = tb.Range()
				n++
				return true
			})
			if n != len(live) {
				t.Fatalf("enumerated %d", n)
			}
		}
	}
}

// TestConcurrentChurn: lookups from several goroutines while others add,
// grow and delete; run with -race.
func TestConcurrentChurn(t *testing.T) {
	r := newRegistry(t)
	// Stable tables every lookup must always find.
	for i := uint64(0); i < 64; i++ {
		if _, err := r.AddFunctionTable([]unwindinfo.RuntimeFunction{rf(0, 0x100, uint32(i))}, 0x1000000+i*0x1000); err != nil {
			t.Fatal(err)
		}
	}
	var stop atomic.Bool
	var wg, writers sync.WaitGroup
	var lookups atomic.Int64
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			for !stop.Load() {
				i := uint64(rng.IntN(64))
				fn, base, ok := r.LookupFunctionEntry(0x1000000 + i*0x1000 + 0x10)
				if !ok || fn.UnwindData != uint32(i) || base != 0x1000000+i*0x1000 {
					t.Errorf("stable table %d lost", i)
					return
				}
				r.LookupFunctionEntry(0x2000000 + uint64(rng.IntN(1<<20)))
				lookups.Add(1)
			}
		}(g)
	}
	for w := 0; w < 2; w++ {
		writers.Add(1)
		go func(w int) {
			defer writers.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			buf := make([]unwindinfo.RuntimeFunction, 16)
			for k := range buf {
				buf[k] = rf(uint32(k*0x10), uint32(k*0x10+0x10), uint32(k))
			}
			for n := 0; n < 3000; n++ {
				b := 0x2000000 + uint64(w)<<19 + uint64(rng.IntN(100))*0x1000
				if rng.IntN(2) == 0 {
					tb, err := r.AddFunctionTable(buf[:4], b)
					if err == nil {
						r.DeleteFunctionTable(tb)
					}
				} else {
					g, err := r.AddGrowableFunctionTable(buf, 1, 16, b, b+0x1000)
					if err == nil {
						r.GrowFunctionTable(g, uint32(1+rng.IntN(15)))
						r.DeleteGrowableFunctionTable(g)
					}
				}
			}
		}(w)
	}
	writers.Wait()
	stop.Store(true)
	wg.Wait()
	if lookups.Load() == 0 {
		t.Error("no lookups ran")
	}
}

// TestGrowableRoomFollowsCount: a growable table's copy grows with its
// count, not with its maximum.
func TestGrowableRoomFollowsCount(t *testing.T) {
	r := newRegistry(t)
	buf := make([]unwindinfo.RuntimeFunction, 1<<20)
	for i := range 100 {
		buf[i] = rf(uint32(i)*0x10, uint32(i)*0x10+0x10, uint32(i))
	}
	g, err := r.AddGrowableFunctionTable(buf, 1, 1<<20, 0x1000000, 0x2000000)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(*g.garray.Load()); n > 16 {
		t.Fatalf("room for %d entries after adding 1", n)
	}
	for n := uint32(2); n <= 100; n++ {
		if err := r.GrowFunctionTable(g, n); err != nil {
			t.Fatal(err)
		}
		if fn, _, ok := r.LookupFunctionEntry(0x1000000 + uint64(n-1)*0x10 + 5); !ok || fn.UnwindData != n-1 {
			t.Fatalf("entry %d not found after growing", n-1)
		}
	}
	if n := len(*g.garray.Load()); n > 256 {
		t.Fatalf("room for %d entries after 100", n)
	}
}

// TestIndexDeep grows the index past three levels and empties it again in
// random order, checking every lookup on the way.
func TestIndexDeep(t *testing.T) {
	const n = 40000
	ix := emptyIndex
	tables := make([]*Table, n)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, i := range rng.Perm(n) {
		tables[i] = &Table{min: uint64(i) * 0x100, max: uint64(i)*0x100 + 0x80}
		ix = ix.insert(span{tables[i].min, tables[i].max, tables[i]})
	}
	if ix.height < 3 || ix.tables != n {
		t.Fatalf("height %d, %d tables", ix.height, ix.tables)
	}
	check := func(live map[int]bool) {
		for probe := 0; probe < 2000; probe++ {
			i := rng.IntN(n)
			s, ok := ix.find(uint64(i)*0x100 + 0x40)
			if ok != live[i] || ok && s.t != tables[i] {
				t.Fatalf("table %d: found %v, live %v", i, ok, live[i])
			}
			if _, ok := ix.find(uint64(i)*0x100 + 0x90); ok {
				t.Fatal("found a gap")
			}
		}
	}
	live := map[int]bool{}
	for i := range n {
		live[i] = true
	}
	check(live)
	for k, i := range rng.Perm(n) {
		ix = ix.remove(tables[i].min, tables[i])
		delete(live, i)
		if k%5000 == 0 {
			check(live)
			if ix.tables != len(live) {
				t.Fatalf("%d tables, want %d", ix.tables, len(live))
			}
		}
	}
	if ix.tables != 0 {
		t.Fatalf("%d tables left", ix.tables)
	}
	if _, ok := ix.find(0x40); ok {
		t.Fatal("empty index finds a table")
	}
}

// TestDuplicateCallbackIdentifier: an identifier names one installed table
// at a time, as RtlDeleteFunctionTable finds callback tables by it.
func TestDuplicateCallbackIdentifier(t *testing.T) {
	r := newRegistry(t)
	cb := func(uint64, any) *unwindinfo.RuntimeFunction { return nil }
	a, err := r.InstallFunctionTableCallback(0xa0003, 0xa0000, 0x100, cb, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.InstallFunctionTableCallback(0xa0003, 0xb0000, 0x100, cb, nil, ""); !errors.Is(err, ErrBadTable) {
		t.Fatalf("second install with the same identifier: %v", err)
	}
	if err := r.DeleteFunctionTable(a); err != nil {
		t.Fatal(err)
	}
	if _, err := r.InstallFunctionTableCallback(0xa0003, 0xb0000, 0x100, cb, nil, ""); err != nil {
		t.Fatalf("install after delete: %v", err)
	}
}

// TestAddFunctionTableWraps: a table whose range wraps the address space,
// partly or wholly, is refused; one that ends at the top is not.
func TestAddFunctionTableWraps(t *testing.T) {
	r := newRegistry(t)
	const base = 0xfffffffffffff000
	for _, c := range []struct {
		name string
		e    unwindinfo.RuntimeFunction
		ok   bool
	}{
		{"partly", rf(0x0, 0x2000, 0x10), false},
		{"wholly", rf(0x2000, 0x3000, 0x10), false},
		{"to 2^64", rf(0x800, 0x1000, 0x10), false},
		{"below the top", rf(0x800, 0xfff, 0x10), true},
	} {
		tb, err := r.AddFunctionTable([]unwindinfo.RuntimeFunction{c.e}, base)
		if c.ok != (err == nil) || !c.ok && !errors.Is(err, ErrBadTable) {
			t.Errorf("%s: %v", c.name, err)
		}
		if tb != nil {
			r.DeleteFunctionTable(tb)
		}
	}
}

// TestArgumentErrors: bad arguments are ErrBadTable whether or not the
// registry publishes its tables (ErrBadGrow is for GrowFunctionTable).
func TestArgumentErrors(t *testing.T) {
	r := newRegistry(t)
	noop := func(uint64, any) *unwindinfo.RuntimeFunction { return nil }
	if _, err := r.InstallFunctionTableCallback(0x40003, 0x40000, 0x100, noop, nil, "a\x00b"); !errors.Is(err, ErrBadTable) {
		t.Errorf("provider path with NUL: %v", err)
	}
	if _, err := r.InstallFunctionTableCallback(0x40003, 0x40000, 0x100, noop, nil, strings.Repeat("x", MaxDllLength+1)); !errors.Is(err, ErrBadTable) {
		t.Errorf("provider path too long: %v", err)
	}
	unsorted := []unwindinfo.RuntimeFunction{rf(0x20, 0x30, 0), rf(0x10, 0x20, 0)}
	if _, err := r.AddGrowableFunctionTable(unsorted, 2, 2, 0x50000, 0x60000); !errors.Is(err, ErrBadTable) || errors.Is(err, ErrBadGrow) {
		t.Errorf("growable table with unsorted entries: %v, want ErrBadTable", err)
	}
	if r.Len() != 0 {
		t.Errorf("%d tables registered", r.Len())
	}
}
