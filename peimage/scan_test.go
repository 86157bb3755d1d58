package peimage

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/fntable/fntable/unwindinfo"
)

// scanAll scans f's table and returns the entries, the count and the
// error of the scanner.
func scanAll(f *File) (fns []unwindinfo.RuntimeFunction, sc *TableScanner) {
	sc = f.ScanTable()
	for sc.Next() {
		fns = append(fns, sc.Function())
	}
	return fns, sc
}

// checkScan checks that scanning f yields what f's table holds: the same
// entries, the same warnings, and an error exactly when the table is
// shorter than its directory announces.
func checkScan(t *testing.T, f *File) {
	t.Helper()
	fns, sc := scanAll(f)
	if !slices.Equal(fns, f.Functions()) {
		t.Errorf("scanned %d entries, Functions has %d: %v, %v", len(fns), len(f.Functions()), fns, f.Functions())
	}
	if sc.Count() != len(fns) {
		t.Errorf("Count = %d after %d entries", sc.Count(), len(fns))
	}
	if got, want := sc.Warnings(), f.Warnings(); !slices.Equal(got, want) {
		t.Errorf("scanner warnings:\n%v\nFile.Warnings:\n%v", got, want)
	}
	_, size := f.ExceptionDirectory()
	short := uint32(len(fns)) < size/unwindinfo.RuntimeFunctionSize
	if (sc.Err() != nil) != short {
		t.Errorf("%d entries of %d, Err = %v", len(fns), size/unwindinfo.RuntimeFunctionSize, sc.Err())
	}
	if sc.Next() || sc.Count() != len(fns) {
		t.Errorf("Next after the end returned true, or Count changed to %d", sc.Count())
	}
}

// TestScanTable checks TableScanner against File.Functions and
// File.Warnings on tables of every unusual kind, as files and mapped.
func TestScanTable(t *testing.T) {
	many := func(n int, fn func(i uint32) unwindinfo.RuntimeFunction) []unwindinfo.RuntimeFunction {
		var fns []unwindinfo.RuntimeFunction
		for i := range uint32(n) {
			fns = append(fns, fn(i))
		}
		return fns
	}
	big := many(3*scanChunk+7, func(i uint32) unwindinfo.RuntimeFunction { return rf(0x1000+i, 0x1001+i, 0x3000) })
	bigImage := tableSynth(big...)
	bigImage.sections[0].vsize = 0x8000
	bigImage.sections[1].va = 0x9000
	bigImage.sections[2].va = 0xa000
	bigImage.excRVA = 0xa000
	for i := range big { // keep the unwind data in .xdata
		big[i].UnwindData = 0x9000
	}
	bigImage.sections[2].data = rfBytes(big...)
	odd := tableSynth(rf(0x1000, 0x1010, 0x3000), rf(0x1010, 0x1020, 0x3000))
	odd.excSize = 30
	tail := tableSynth(rf(0x1000, 0x1010, 0x3000))
	tail.sections[2].vsize = 0x1000
	tail.excSize = 0xff0
	unsortedMany := many(300, func(i uint32) unwindinfo.RuntimeFunction {
		if i%2 == 0 {
			return rf(0x1800-i, 0x1900, 0x3000) // unsorted and overlapping
		}
		return rf(0x1000+i, 0x1000+i, 0x4001) // empty ranges
	})
	for _, c := range []struct {
		name string
		s    *synth
	}{
		{"basic", basicSynth()},
		{"zero entries", tableSynth(rf(0, 0, 0), rf(0, 0, 0), rf(0x1000, 0x1010, 0x3000))},
		{"unsorted", tableSynth(rf(0x1020, 0x1030, 0x3000), rf(0x1000, 0x1010, 0x3000), rf(0x1010, 0x1020, 0x3000))},
		{"unsorted overlapping", tableSynth(rf(0x1020, 0x1030, 0x3000), rf(0x1000, 0x1010, 0x4001), rf(0x1000, 0x1100, 0x3000), rf(0x1010, 0x1011, 0x3000))},
		{"unsorted empty range", tableSynth(rf(0x1000, 0x1010, 0x3000), rf(0x0900, 0x0900, 0x3000), rf(0x1010, 0x1020, 0x3000))},
		{"overlapping", tableSynth(rf(0x1000, 0x1100, 0x3000), rf(0x1010, 0x1020, 0x3000), rf(0x1200, 0x1210, 0x3000))},
		{"outside", tableSynth(rf(0x1000, 0x1010, 0x3000), rf(0x1010, 0x1020, 0x8000), rf(0x1020, 0x9000, 0x3000), rf(0x9000, 0x9010, 0x3000))},
		{"empty range", tableSynth(rf(0x1000, 0x1000, 0x3000), rf(0x1010, 0x1008, 0x3000))},
		{"indirect loop", tableSynth(rf(0x1000, 0x1010, 0x4001), rf(0x1010, 0x1020, 0x3000))},
		{"indirect outside", tableSynth(rf(0x1000, 0x1010, 0x7ffffff1))},
		{"many warnings", tableSynth(many(300, func(i uint32) unwindinfo.RuntimeFunction { return rf(0x1000+i, 0x1100, 0x3000) })...)},
		{"many warnings, unsorted", tableSynth(unsortedMany...)},
		{"size not a multiple of 12", odd},
		{"zero-filled tail", tail},
		{"several chunks", bigImage},
		{"no table", &synth{base: 0x140000000, sections: []synthSection{{name: ".text", va: 0x1000, data: []byte{0xc3}}}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			file, mapped := openSynth(t, c.s)
			t.Run("file", func(t *testing.T) { checkScan(t, file) })
			t.Run("mapped", func(t *testing.T) { checkScan(t, mapped) })
		})
	}
}

// TestScanTruncated checks a table cut short by the end of the file, in
// the first chunk and in a later one: the scanner returns the entries the
// file holds and an error that wraps ErrTruncated and says where.
func TestScanTruncated(t *testing.T) {
	var fns []unwindinfo.RuntimeFunction
	for i := range uint32(scanChunk + 100) {
		fns = append(fns, rf(0x1000+i, 0x1001+i, 0x3000))
	}
	s := tableSynth(fns...)
	s.sections[0].vsize = 0x2000
	s.sections[2].va = 0x4000 // .pdata last in the file: cutting the file cuts the table
	whole := s.file()
	pdataOff := len(whole) - int(alignUp(uint32(len(fns)*12), synthFileAlign))
	for _, keep := range []int{0, 1, 10, scanChunk + 50} {
		cut := whole[:pdataOff+keep*12+5] // and 5 bytes of the next entry
		f, err := NewFileLazy(bytes.NewReader(cut))
		if err != nil {
			t.Fatal(err)
		}
		got, sc := scanAll(f)
		if !slices.Equal(got, fns[:keep]) {
			t.Errorf("cut after %d entries: scanned %d", keep, len(got))
		}
		err = sc.Err()
		if !errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), "read function table: entry ") {
			t.Errorf("cut after %d entries: Err = %v", keep, err)
		}
		t.Log(err)
		checkScan(t, f)
	}
}

// TestScanKeepsNoTable checks that scanning a File made by NewFileLazy
// leaves its table unread.
func TestScanKeepsNoTable(t *testing.T) {
	f, err := NewFileLazy(bytes.NewReader(basicSynth().file()))
	if err != nil {
		t.Fatal(err)
	}
	fns, sc := scanAll(f)
	_ = sc.Warnings()
	if len(fns) == 0 || f.funcs != nil || f.idx.keys != nil {
		t.Fatalf("scanned %d entries; the File holds %d entries and %d keys", len(fns), len(f.funcs), len(f.idx.keys))
	}
	// The first method that needs the table reads it.
	if _, ok := f.LookupFunctionEntry(0x1000); !ok || len(f.funcs) != len(fns) {
		t.Errorf("LookupFunctionEntry after the scan: ok %v, %d entries", ok, len(f.funcs))
	}
}

// TestScanSharedFiles checks the scanner on the shared images and Go's.
func TestScanSharedFiles(t *testing.T) {
	paths := sharedImages(t)
	if p := filepath.Join(runtime.GOROOT(), "src", "debug", "pe", "testdata", "gcc-amd64-mingw-exec"); fileExists(p) {
		paths = append(paths, p)
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			checkScan(t, mustOpen(t, path))
		})
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// BenchmarkScanTable scans a table of 100,000 entries.
func BenchmarkScanTable(b *testing.B) {
	var fns []unwindinfo.RuntimeFunction
	for i := range uint32(100000) {
		fns = append(fns, rf(0x1000+i, 0x1001+i, 0x3000))
	}
	s := tableSynth(fns...)
	s.sections[0].vsize = 0x20000
	s.sections[1].va = 0x21000
	s.sections[2].va = 0x22000
	s.excRVA = 0x22000
	f, err := NewFileLazy(bytes.NewReader(s.file()))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		sc := f.ScanTable()
		for sc.Next() {
		}
	}
}
