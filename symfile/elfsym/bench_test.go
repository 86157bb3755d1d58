package elfsym

import (
	"testing"

	"github.com/fntable/fntable/internal/symtest"
	"github.com/fntable/fntable/symfile"
)

// benchBinaries are the binaries of the benchmarks, by sub-benchmark name;
// for the split pair the debug file is read.
var benchBinaries = []struct {
	name string
	path func(testing.TB) string
}{
	{"sqlite", symtest.SQLite},
	{"cpp", symtest.CPP},
	{"go", symtest.Go},
	{"gostripped", symtest.GoStripped},
	{"split", func(t testing.TB) string { _, d := symtest.SplitDebug(t); return d }},
}

// BenchmarkLoad measures what a symbolizer pays before its first answer:
// opening the file and symbolizing one address (the first of the
// benchmark addresses, which bench/symbolize.sh uses too).
func BenchmarkLoad(b *testing.B) {
	for _, bb := range benchBinaries {
		b.Run(bb.name, func(b *testing.B) {
			path := bb.path(b)
			addr := symtest.RandomAddrs(b, path, 1, 1)[0]
			var frames []symfile.Frame
			for b.Loop() {
				f, err := Open(path, symfile.Options{Lines: true})
				if err != nil {
					b.Fatal(err)
				}
				frames, err = f.Frames(frames[:0], addr)
				if err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
		})
	}
}

// BenchmarkFrames measures symbolization after load: every unit the
// addresses touch is parsed before the timer starts, and each operation
// symbolizes one address, cycling through 10,000 random ones.
func BenchmarkFrames(b *testing.B) {
	for _, bb := range benchBinaries {
		b.Run(bb.name, func(b *testing.B) {
			path := bb.path(b)
			addrs := symtest.RandomAddrs(b, path, 10000, 1)
			f, err := Open(path, symfile.Options{Lines: true})
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			var frames []symfile.Frame
			for _, a := range addrs {
				frames, _ = f.Frames(frames[:0], a)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				frames, _ = f.Frames(frames[:0], addrs[i])
				if i++; i == len(addrs) {
					i = 0
				}
			}
		})
	}
}
