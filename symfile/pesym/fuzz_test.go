package pesym

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/fntable/fntable/symfile"
)

// FuzzPESym opens arbitrary bytes as a PE image and exercises every
// accessor: no input may panic, errors must be typed, symbols must be
// sorted and inside the image, and Identify must agree with NewFile.
func FuzzPESym(f *testing.F) {
	// Seed from the PE files of the shared test data and of debug/pe,
	// read in place. Without the shared directory the debug/pe files
	// still seed the target.
	var paths []string
	for _, pattern := range []string{
		filepath.Join("..", "..", "..", "shared", "testdata", "pe", "*"),
		filepath.Join(runtime.GOROOT(), "src", "debug", "pe", "testdata", "*"),
	} {
		m, _ := filepath.Glob(pattern)
		paths = append(paths, m...)
	}
	if len(paths) == 0 && os.Getenv("CI") != "" {
		f.Fatal("no PE files to seed FuzzPESym (CI is set, so this fails instead of running unseeded)")
	}
	for _, p := range paths {
		if filepath.Ext(p) == ".c" {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		id, ierr := Identify(bytes.NewReader(b))
		file, err := NewFile(bytes.NewReader(b), symfile.Options{})
		if err != nil {
			if errors.Is(err, symfile.ErrUnrecognized) == errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v: not exactly one of unrecognized or malformed", err)
			}
			if ierr == nil {
				t.Fatalf("NewFile failed (%v) where Identify did not", err)
			}
			_ = err.Error()
			return
		}
		if ierr == nil && !identEqual(id, file.Ident()) {
			t.Fatalf("Identify %+v, NewFile %+v", id, file.Ident())
		}
		checkSorted(t, file)
		for _, s := range file.Symbols() {
			if s.Name == "" {
				t.Fatalf("symbol without a name at %#x", s.Addr)
			}
		}
		for _, e := range file.Exports() {
			_ = e.Name
		}
		for _, w := range file.Warnings() {
			_ = w.Error()
		}
		if len(file.Warnings()) > MaxWarnings {
			t.Fatalf("%d warnings", len(file.Warnings()))
		}
		for _, s := range file.Symbols()[:min(len(file.Symbols()), 16)] {
			fr, err := file.Frames(nil, s.Addr)
			if file.dw == nil && (fr != nil || err != nil) {
				t.Fatalf("no DWARF, but Frames = %v, %v", fr, err)
			}
		}
		if err := file.Close(); err != nil {
			t.Fatal(err)
		}
	})
}
