package functable

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fntable/fntable/unwindinfo"
)

// The benchmarks use the layout of ../bench/wine/functable_bench.c (and of
// the reference benchmark wine/bench.c in the shared directory): table i
// has 8 entries, function k at [k*0x100, k*0x100+0x80) with UNWIND_INFO at
// 0xF00, and covers its own 4 KiB page at benchBase + i*0x1000. "first" and "last" are
// the first and last table registered. A callback table with a trivial
// callback covers page N+1 (registered after the N static tables); page N
// is empty (the miss PC). Nothing is mapped at these addresses: lookups
// only compare them. The names are fixed so that figures can be compared
// across versions; bench/functable.sh compares them with Wine's ntdll.

const (
	benchBase    = 0x7ff6_0000_0000
	benchPer     = 8
	benchPage    = 0x1000
	benchFnPC    = 5*0x100 + 0x10 // PC offset in a page: inside function 5
	benchBatch   = 16             // tables added, then deleted, per AddDelete iteration
	benchPCs     = 4096           // random PCs of the throughput benchmarks (a power of 2)
	benchReaders = 10000          // tables of the throughput benchmarks
)

var benchTableCounts = []int{1, 100, 10000, 100000}

// benchEntries are the 8 entries every table has.
var benchEntries = func() []unwindinfo.RuntimeFunction {
	es := make([]unwindinfo.RuntimeFunction, benchPer)
	for k := range es {
		es[k] = unwindinfo.RuntimeFunction{BeginAddress: uint32(k) * 0x100, EndAddress: uint32(k)*0x100 + 0x80, UnwindData: 0xF00}
	}
	return es
}()

// benchRegistry returns a registry with n static tables in pages 0..n-1,
// and, if callback, a callback table in page n+1.
func benchRegistry(tb testing.TB, n int, callback bool) *Registry {
	return benchRegistryOpts(tb, n, callback, Options{})
}

func benchRegistryOpts(tb testing.TB, n int, callback bool, opts Options) *Registry {
	tb.Helper()
	r, err := New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	for i := range n {
		if _, err := r.AddFunctionTable(benchEntries, benchBase+uint64(i)*benchPage); err != nil {
			tb.Fatal(err)
		}
	}
	if callback {
		base := benchBase + uint64(n+1)*benchPage
		fn := &unwindinfo.RuntimeFunction{BeginAddress: 0, EndAddress: 0x80, UnwindData: 0xF00}
		cb := func(uint64, any) *unwindinfo.RuntimeFunction { return fn }
		if _, err := r.InstallFunctionTableCallback(base|3, base, benchPage, cb, nil, ""); err != nil {
			tb.Fatal(err)
		}
	}
	return r
}

// benchSink keeps lookup results alive.
var benchSink atomic.Uint64

func BenchmarkLookup(b *testing.B) {
	for _, n := range benchTableCounts {
		b.Run(fmt.Sprintf("tables=%d", n), func(b *testing.B) {
			r := benchRegistry(b, n, true)
			defer r.Close()
			cases := []struct {
				name string
				pc   uint64
				hit  bool
			}{
				{"hit-first", benchBase + benchFnPC, true},
				{"hit-last", benchBase + uint64(n-1)*benchPage + benchFnPC, true},
				{"miss", benchBase + uint64(n)*benchPage + 0x10, false},
				{"callback", benchBase + uint64(n+1)*benchPage + 0x10, true},
			}
			for _, c := range cases {
				b.Run(c.name, func(b *testing.B) {
					if _, _, ok := r.LookupFunctionEntry(c.pc); ok != c.hit {
						b.Fatalf("lookup %#x: found %v, want %v", c.pc, ok, c.hit)
					}
					b.ReportAllocs()
					var sum uint64
					for b.Loop() {
						fn, base, _ := r.LookupFunctionEntry(c.pc)
						if fn != nil {
							sum += base
						}
					}
					benchSink.Add(sum)
				})
			}
		})
	}
}

// BenchmarkAddDelete: with N tables registered, add one table and
// delete it. Each iteration adds benchBatch tables (pages N+2 on) and then
// deletes them, newest first, as the Wine side does, timing the two
// halves: ns/op, B/op and allocs/op are per add plus delete, add-ns/op and
// delete-ns/op per add and per delete. The garbage collection the updates
// cause is included.
func BenchmarkAddDelete(b *testing.B) { benchAddDelete(b, Options{}) }

// BenchmarkAddDeletePublished is BenchmarkAddDelete with the table list
// published (Options.Publish): the difference is what keeping the shared
// copy costs.
func BenchmarkAddDeletePublished(b *testing.B) {
	r, err := New(Options{Publish: true})
	if err != nil {
		b.Skip(err)
	}
	r.Close()
	benchAddDelete(b, Options{Publish: true})
}

func benchAddDelete(b *testing.B, opts Options) {
	for _, n := range benchTableCounts {
		b.Run(fmt.Sprintf("tables=%d", n), func(b *testing.B) {
			r := benchRegistryOpts(b, n, false, opts)
			defer r.Close()
			next := benchBase + uint64(n+2)*benchPage
			tables := make([]*Table, benchBatch)
			var adds, dels time.Duration
			var before, after runtime.MemStats
			b.ReportAllocs() // per iteration; replaced below by the figures per add and delete
			runtime.ReadMemStats(&before)
			iters := 0
			for b.Loop() {
				start := time.Now()
				for i := range tables {
					t, err := r.AddFunctionTable(benchEntries, next+uint64(i)*benchPage)
					if err != nil {
						b.Fatal(err)
					}
					tables[i] = t
				}
				mid := time.Now()
				for i := len(tables) - 1; i >= 0; i-- {
					if err := r.DeleteFunctionTable(tables[i]); err != nil {
						b.Fatal(err)
					}
				}
				adds += mid.Sub(start)
				dels += time.Since(mid)
				iters++
			}
			runtime.ReadMemStats(&after)
			ops := float64(iters * benchBatch)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/ops, "ns/op")
			b.ReportMetric(float64(adds.Nanoseconds())/ops, "add-ns/op")
			b.ReportMetric(float64(dels.Nanoseconds())/ops, "delete-ns/op")
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/ops, "B/op")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/ops, "allocs/op")
		})
	}
}

// benchRandomPCs returns benchPCs PCs that hit random tables of n, from
// SplitMix64 with seed 1.
func benchRandomPCs(n int) []uint64 {
	pcs := make([]uint64, benchPCs)
	x := uint64(1)
	for i := range pcs {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		z ^= z >> 31
		pcs[i] = benchBase + (z%uint64(n))*benchPage + (z>>32)%benchPer*0x100 + 0x10
	}
	return pcs
}

// benchReadersRun runs lookups of random hits on r from the benchmark's
// goroutine (b.Loop: ns/op is its time per lookup) and from extra
// goroutines that look up until it is done, and reports the lookups of
// all of them per second (lookups/s). writer, if not nil, runs on its own
// goroutine meanwhile, until stop is closed, and returns its operations.
func benchReadersRun(b *testing.B, r *Registry, extra int, writer func(stop <-chan struct{}) int) {
	pcs := benchRandomPCs(benchReaders)
	stop := make(chan struct{})
	var done atomic.Bool
	var wg sync.WaitGroup
	counts := make([]struct {
		n atomic.Uint64
		_ [56]byte // own cache line
	}, extra)
	for g := range extra {
		wg.Go(func() {
			var sum uint64
			for i := g * 977; !done.Load(); {
				for range 256 {
					fn, base, _ := r.LookupFunctionEntry(pcs[i&(benchPCs-1)])
					if fn != nil {
						sum += base
					}
					i++
				}
				counts[g].n.Add(256)
			}
			benchSink.Add(sum)
		})
	}
	writes := 0
	if writer != nil {
		wg.Go(func() { writes = writer(stop) })
	}
	extraLookups := func() (n uint64) {
		for g := range counts {
			n += counts[g].n.Load()
		}
		return n
	}
	var sum uint64
	i, mine := 0, 0
	var start time.Time
	var before uint64
	for b.Loop() {
		if mine == 0 {
			start, before = time.Now(), extraLookups()
		}
		fn, base, _ := r.LookupFunctionEntry(pcs[i&(benchPCs-1)])
		if fn != nil {
			sum += base
		}
		i++
		mine++
	}
	elapsed := time.Since(start)
	others := extraLookups() - before
	done.Store(true)
	close(stop)
	wg.Wait()
	benchSink.Add(sum)
	b.ReportMetric(float64(uint64(mine)+others)/elapsed.Seconds(), "lookups/s")
	if writer != nil {
		b.ReportMetric(float64(writes)/elapsed.Seconds(), "writes/s")
	}
}

// BenchmarkLookupReaders: lookup throughput (lookups/s, all readers
// together) of R goroutines looking up random hits among benchReaders
// tables. Lookups scale with readers when lookups/s grows with R up to
// GOMAXPROCS.
func BenchmarkLookupReaders(b *testing.B) {
	r := benchRegistry(b, benchReaders, false)
	defer r.Close()
	for _, readers := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("readers=%d", readers), func(b *testing.B) {
			b.ReportAllocs()
			benchReadersRun(b, r, readers-1, nil)
		})
	}
}

// BenchmarkLookupWhileWriting: two goroutines look up random hits among
// benchReaders tables while a third adds and deletes a table continuously
// (writes/s counts adds and deletes). It does not report allocations: the
// writer allocates.
func BenchmarkLookupWhileWriting(b *testing.B) {
	r := benchRegistry(b, benchReaders, false)
	defer r.Close()
	writer := func(stop <-chan struct{}) int {
		ops := 0
		for k := 0; ; k++ {
			select {
			case <-stop:
				return ops
			default:
			}
			// Half the tables go after the last one, half between two
			// (a table covers [0, 0x780) of its page, so one at
			// 0x800 fits in the rest).
			at := benchBase + uint64(benchReaders+2+k%64)*benchPage
			if k%2 == 1 {
				at = benchBase + uint64(k*7919%benchReaders)*benchPage + 0x800
			}
			t, err := r.AddFunctionTable(benchEntries, at)
			if err != nil {
				panic(err)
			}
			if err := r.DeleteFunctionTable(t); err != nil {
				panic(err)
			}
			ops += 2
		}
	}
	benchReadersRun(b, r, 1, writer)
}

// TestLookupAllocs: lookups allocate nothing.
func TestLookupAllocs(t *testing.T) {
	r := benchRegistry(t, 1000, true)
	defer r.Close()
	for _, pc := range []uint64{benchBase + benchFnPC, benchBase + 999*benchPage + benchFnPC, benchBase + 1000*benchPage, benchBase + 1001*benchPage + 0x10, benchBase + 0x90} {
		if n := testing.AllocsPerRun(1000, func() { r.LookupFunctionEntry(pc) }); n != 0 {
			t.Errorf("lookup of %#x: %v allocations", pc, n)
		}
	}
}
