package peimage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"github.com/fntable/fntable/internal/winetest"
)

// FuzzPEImage opens arbitrary bytes as an image file and as a mapped
// image, and exercises every accessor: no input may panic, errors must be
// typed, and lookups must agree with the table.
func FuzzPEImage(f *testing.F) {
	f.Add(basicSynth().file())
	f.Add(tableSynth(rf(0x1020, 0x1030, 0x3000), rf(0x1000, 0x1010, 0x4001), rf(0x1000, 0x1100, 0x3000)).file())
	if !testing.Short() {
		// The shared files when they are there; without them the
		// synthetic seeds still run. The big images add nothing the
		// small ones lack.
		winetest.AddSeeds(f, "pe/*", 64<<10)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		file, ferr := NewFile(bytes.NewReader(b))
		checkOpenError(t, ferr)
		const base = 0x7ff700000000
		mapped, merr := NewMapped(flatMemory{addr: base, data: b}, base)
		checkOpenError(t, merr)
		for _, img := range []*File{file, mapped} {
			if img != nil {
				exercise(t, img, b)
			}
		}
	})
}

func checkOpenError(t *testing.T, err error) {
	if err == nil {
		return
	}
	notFormat := errors.Is(err, ErrNotImage) || errors.Is(err, ErrUnsupportedMachine) || errors.Is(err, ErrNotPE32Plus)
	if notFormat == errors.Is(err, ErrMalformed) {
		t.Fatalf("error %v: not exactly one of malformed or not-this-format", err)
	}
}

func exercise(t *testing.T, f *File, b []byte) {
	_ = f.ImageBase()
	size := f.SizeOfImage()
	rva, dirSize := f.ExceptionDirectory()
	if uint64(rva)+uint64(dirSize) > uint64(size) {
		t.Fatalf("exception directory %#x+%#x beyond SizeOfImage %#x", rva, dirSize, size)
	}
	fns := f.Functions()
	if uint32(len(fns)) > dirSize/12 {
		t.Fatalf("%d functions from a directory of %#x bytes", len(fns), dirSize)
	}
	for _, w := range f.Warnings() {
		_ = w.String()
	}
	// Scanning reads the same entries and finds the same warnings.
	sc := f.ScanTable()
	for k := 0; sc.Next(); k++ {
		if k >= len(fns) || sc.Function() != fns[k] {
			t.Fatalf("scanned entry %d %+v; Functions has %d entries", k, sc.Function(), len(fns))
		}
	}
	if sc.Count() != len(fns) || (sc.Err() != nil) != (uint32(len(fns)) < dirSize/12) {
		t.Fatalf("scanned %d entries of %d, Err %v; Functions has %d", sc.Count(), dirSize/12, sc.Err(), len(fns))
	}
	if !slices.Equal(sc.Warnings(), f.Warnings()) {
		t.Fatalf("scanner warnings %v; File.Warnings %v", sc.Warnings(), f.Warnings())
	}
	p := make([]byte, 64)
	for i, fn := range fns {
		if i >= 64 {
			break
		}
		info, err := f.UnwindInfo(fn)
		if info != nil {
			_ = info.String()
			_ = info.Validate()
		}
		if err == nil {
			if _, err := info.Encode(); err != nil {
				t.Fatalf("Encode of decoded info: %v", err)
			}
		}
		_, _ = f.Chain(fn)
		_, _ = f.Resolve(fn)
		for _, r := range []uint32{fn.BeginAddress, fn.EndAddress - 1, fn.EndAddress, fn.UnwindData} {
			got, ok := f.LookupFunctionEntry(r)
			found := false
			for k, key := range f.idx.keys {
				if key.Contains(r) && f.idx.targets[k] == got {
					found = true
				}
			}
			if ok != found {
				t.Fatalf("LookupFunctionEntry(%#x) = %+v, %v; the index disagrees", r, got, ok)
			}
		}
		n, err := f.ReadRVA(p, fn.BeginAddress)
		if n < 0 || n > len(p) || (n < len(p)) != (err != nil) {
			t.Fatalf("ReadRVA = %d, %v", n, err)
		}
	}
	// Lookups at RVAs derived from the input.
	for i := 0; i+4 <= len(b) && i < 256; i += 4 {
		r := binary.LittleEndian.Uint32(b[i:])
		if fn, ok := f.LookupFunctionEntry(r); ok && !fn.Indirect() {
			_, _ = f.UnwindInfo(fn)
		}
		f.LookupFunctionEntry(uint32(i))
	}
	// Reads at the edges of the image, by RVA and through a Memory.
	m := f.Memory(0x10000)
	for _, r := range []uint32{0, size - 1, size, size + 1, ^uint32(0), rva} {
		n, err := f.ReadRVA(p, r)
		if n < 0 || n > len(p) || (n < len(p)) != (err != nil) {
			t.Fatalf("ReadRVA(%#x) = %d, %v", r, n, err)
		}
		n, err = m.ReadMemory(p, 0x10000+uint64(r))
		if n < 0 || n > len(p) || (n < len(p)) != (err != nil) {
			t.Fatalf("ReadMemory(%#x) = %d, %v", 0x10000+uint64(r), n, err)
		}
		if n < len(p) {
			var ue *UnmappedError
			if !errors.As(err, &ue) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("ReadMemory short read error %v is neither unmapped nor malformed", err)
			}
		}
	}
}
