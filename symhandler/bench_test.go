package symhandler_test

import (
	"context"
	"testing"

	"github.com/fntable/fntable/internal/symtest"
	"github.com/fntable/fntable/symhandler"
)

// benchBinaries are the programs the benchmarks symbolize.
var benchBinaries = []struct {
	name  string
	build func(testing.TB) string
}{
	{"sqlite", symtest.SQLite},
	{"cpp", symtest.CPP},
	{"go", symtest.Go},
}

// BenchmarkSymbolize measures Symbolize after the module's symbols and
// every compilation unit the addresses touch are loaded: 4096 random
// addresses of the binary's code, cycled. addrs/s is the throughput.
func BenchmarkSymbolize(b *testing.B) {
	for _, bin := range benchBinaries {
		b.Run(bin.name, func(b *testing.B) {
			exe := bin.build(b)
			addrs := symtest.RandomAddrs(b, exe, 4096, 1)
			h, err := symhandler.New(symhandler.Config{SearchPath: b.TempDir(), DebugDirs: []string{}})
			if err != nil {
				b.Fatal(err)
			}
			defer h.Close()
			if _, err := h.LoadModule(context.Background(), symhandler.LoadRequest{ImageName: exe}); err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			for _, a := range addrs {
				h.Symbolize(ctx, a)
			}
			i := 0
			for b.Loop() {
				h.Symbolize(ctx, addrs[i&4095])
				i++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "addrs/s")
		})
	}
}

// BenchmarkLoad measures a new handler, loading the module and
// symbolizing one address (what "load time" means for llvm-symbolizer
// answering its first address).
func BenchmarkLoad(b *testing.B) {
	for _, bin := range benchBinaries {
		b.Run(bin.name, func(b *testing.B) {
			exe := bin.build(b)
			addr := symtest.RandomAddrs(b, exe, 1, 1)[0]
			ctx := context.Background()
			for b.Loop() {
				h, err := symhandler.New(symhandler.Config{SearchPath: b.TempDir(), DebugDirs: []string{}})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := h.LoadModule(ctx, symhandler.LoadRequest{ImageName: exe}); err != nil {
					b.Fatal(err)
				}
				if _, err := h.Symbolize(ctx, addr); err != nil {
					b.Fatal(err)
				}
				h.Close()
			}
		})
	}
}

// BenchmarkSymbolizeParallel is BenchmarkSymbolize from GOMAXPROCS
// goroutines sharing one handler.
func BenchmarkSymbolizeParallel(b *testing.B) {
	exe := symtest.SQLite(b)
	addrs := symtest.RandomAddrs(b, exe, 4096, 1)
	h, err := symhandler.New(symhandler.Config{SearchPath: b.TempDir(), DebugDirs: []string{}})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	h.LoadModule(context.Background(), symhandler.LoadRequest{ImageName: exe})
	ctx := context.Background()
	for _, a := range addrs {
		h.Symbolize(ctx, a)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			h.Symbolize(ctx, addrs[i&4095])
			i++
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "addrs/s")
}

// BenchmarkCallback measures the cost of one callback delivery: two
// option changes per iteration, each sending CBA_SET_OPTIONS to a
// callback that does nothing. ns/callback is the figure.
func BenchmarkCallback(b *testing.B) {
	h, err := symhandler.New(symhandler.Config{SearchPath: b.TempDir(), DebugDirs: []string{}})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	h.RegisterCallback(func(*symhandler.Handler, symhandler.Action, any, any) bool { return false }, nil)
	a, c := symhandler.DefaultOptions, symhandler.DefaultOptions|symhandler.SYMOPT_DEBUG
	n := 0
	for b.Loop() {
		h.SetOptions(c)
		h.SetOptions(a)
		n += 2
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/callback")
}
