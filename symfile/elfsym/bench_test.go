package elfsym

import (
	"encoding/hex"
	"os"
	"path/filepath"
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

// BenchmarkSymbols measures the decoding of a large symbol table into the
// sorted []symfile.Symbol (the file is opened once, outside the loop):
// libc's separate debug file (libc6-dbg), about 10,000 symbols of which
// some 860 carry a version in their name, as "fntable stack" decodes it
// for every process that maps libc.
func BenchmarkSymbols(b *testing.B) {
	f, err := Open(libcDebugFile(b), symfile.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		syms, _ := f.tableSymbols()
		n = len(syms)
	}
	b.ReportMetric(float64(n), "symbols")
}

// libcDebugFile returns the path of the separate debug file of this
// system's libc (libc6-dbg puts it under /usr/lib/debug/.build-id), or
// skips the benchmark.
func libcDebugFile(b *testing.B) string {
	const libc = "/lib/x86_64-linux-gnu/libc.so.6"
	r, err := os.Open(libc)
	if err != nil {
		b.Skipf("no libc at %s: %v", libc, err)
	}
	defer r.Close()
	id, err := Identify(r)
	if err != nil || len(id.BuildID) < 2 {
		b.Skipf("%s: no build ID (%v)", libc, err)
	}
	p := filepath.Join("/usr/lib/debug/.build-id", hex.EncodeToString(id.BuildID[:1]), hex.EncodeToString(id.BuildID[1:])+".debug")
	if _, err := os.Stat(p); err != nil {
		b.Skipf("no debug file of %s (Debian: apt-get install libc6-dbg): %v", libc, err)
	}
	return p
}
