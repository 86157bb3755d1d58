package elfsym

import (
	"bytes"
	"os"
	"testing"

	"github.com/fntable/fntable/internal/symtest"
	"github.com/fntable/fntable/symfile"
)

// maxFuzzSeed bounds the seed files added from the test binaries, so
// that the fuzzer mutates small real ELF files.
const maxFuzzSeed = 64 << 10

// FuzzElfsym opens the input, reads its identity and symbols, and asks for
// frames at a few addresses; none of it may panic. Seeds: the split pair
// (a small C program with DWARF, stripped and its debug file; not in
// -short mode, since it is built with gcc), /bin/true, and the files in
// testdata/fuzz/FuzzElfsym: the stripped split program cut after its ELF
// header and inside its program headers, and its debug file with bytes of
// .debug_info after the first unit header inverted and the start of
// .debug_line set to 0xff (made from symtest.SplitDebug's build).
func FuzzElfsym(f *testing.F) {
	seeds := []string{"/bin/true"}
	if !testing.Short() {
		stripped, debug := symtest.SplitDebug(f)
		seeds = append(seeds, stripped, debug)
	}
	for _, p := range seeds {
		data, err := os.ReadFile(p)
		if err == nil && len(data) <= maxFuzzSeed {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := Identify(bytes.NewReader(data)); err != nil {
			return
		}
		file, err := NewFile(bytes.NewReader(data), symfile.Options{Lines: true})
		if err != nil {
			return
		}
		defer file.Close()
		id := file.Ident()
		syms := file.Symbols()
		addrs := []uint64{0, id.LinkBase, id.LinkBase + id.ImageSize/2, id.LinkBase + id.ImageSize - 1}
		for i, s := range syms {
			if i >= 64 {
				break
			}
			addrs = append(addrs, s.Addr, s.Addr+s.Size/2)
		}
		var frames []symfile.Frame
		for _, a := range addrs {
			frames, _ = file.Frames(frames[:0], a)
		}
	})
}
