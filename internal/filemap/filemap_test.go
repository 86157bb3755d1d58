package filemap

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestMap maps parts of a file at offsets that are and are not page
// aligned, and compares them with the file's bytes.
func TestMap(t *testing.T) {
	data := make([]byte, 3*os.Getpagesize()+123)
	for i := range data {
		data[i] = byte(i * 7)
	}
	name := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, r := range [][2]uint64{{0, uint64(len(data))}, {1, 100}, {uint64(os.Getpagesize()) + 5, 2000}, {7, 0}} {
		b, unmap, err := Map(f, r[0], r[1])
		if errors.Is(err, ErrUnsupported) {
			t.Skip(err)
		}
		if err != nil {
			t.Fatalf("Map(%d, %d): %v", r[0], r[1], err)
		}
		if !bytes.Equal(b, data[r[0]:r[0]+r[1]]) {
			t.Errorf("Map(%d, %d) differs from the file", r[0], r[1])
		}
		unmap()
	}
}

// TestMapPastEnd: a range the file does not hold whole is an error, not
// a mapping whose reads would fault (a section header can lie).
func TestMapPastEnd(t *testing.T) {
	name := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(name, make([]byte, 100), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, r := range [][2]uint64{{0, 101}, {100, 1}, {1 << 20, 10}, {^uint64(0) - 4, 10}} {
		b, unmap, err := Map(f, r[0], r[1])
		if errors.Is(err, ErrUnsupported) {
			t.Skip(err)
		}
		if err == nil {
			unmap()
			t.Errorf("Map(%#x, %d) of a 100-byte file gave %d bytes and no error", r[0], r[1], len(b))
		}
	}
}

// TestCatch: a fault in a recorded mapping (its file shrank) becomes an
// error wrapping ErrChanged; a panic of another kind goes on.
func TestCatch(t *testing.T) {
	name := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(name, make([]byte, 3*os.Getpagesize()), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, unmap, err := Map(f, 0, uint64(3*os.Getpagesize()))
	if errors.Is(err, ErrUnsupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer unmap()
	var r Ranges
	if r.Any() {
		t.Fatal("empty Ranges says it holds a mapping")
	}
	r.Add(b, name)
	if err := os.Truncate(name, 0); err != nil {
		t.Fatal(err)
	}
	read := func(i int) (v byte, err error) {
		defer r.Catch(&err, r.Guard())
		return b[i], nil
	}
	if _, err := read(2 * os.Getpagesize()); !errors.Is(err, ErrChanged) {
		t.Fatalf("read past the new end: %v, want ErrChanged", err)
	}
	func() {
		defer func() {
			if p := recover(); p != "other" {
				t.Errorf("recovered %v, want the other panic to go on", p)
			}
		}()
		var err error
		defer r.Catch(&err, r.Guard())
		panic("other")
	}()
}
