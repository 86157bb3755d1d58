package cfi

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"

	"github.com/fntable/fntable/unwind"
)

// TestMappedSections: a File opened from a path maps its sections, one
// made from bytes reads them; both give the same FDEs and rows, and what
// they hand out stays valid after the File that mapped it is gone and
// its mappings are unmapped (a read of unmapped memory would crash the
// test).
func TestMappedSections(t *testing.T) {
	data, err := os.ReadFile(libcPath)
	if err != nil {
		t.Skipf("no libc to read: %v", err)
	}
	// What is kept of an FDE: not the FDE, which holds its section.
	type fdeData struct {
		Begin, End   uint64
		Off          int64
		Instructions []byte
	}
	collect := func(f *File) ([]fdeData, [][]Row) {
		t.Helper()
		var fdes []fdeData
		var rows [][]Row
		err := f.FDEs(func(fd FDE) bool {
			fdes = append(fdes, fdeData{fd.Begin, fd.End, fd.Off, fd.Instructions})
			{
				rs, err := f.RowsOf(fd)
				if err != nil {
					t.Errorf("rows of the FDE at %#x: %v", fd.Begin, err)
				}
				rows = append(rows, rs)
			}
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		return fdes, rows
	}
	mf, err := Open(libcPath)
	if err != nil {
		t.Fatal(err)
	}
	if mf.file == nil {
		t.Fatal("a File opened from a path has no file to map its sections from")
	}
	mapped, mappedRows := collect(mf)
	mf.Close()
	mf = nil
	for range 3 {
		runtime.GC() // runs the cleanups that unmap
	}

	rf, err := NewFile(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	read, readRows := collect(rf)
	if len(mapped) == 0 || len(mapped) != len(read) {
		t.Fatalf("%d FDEs mapped, %d read", len(mapped), len(read))
	}
	for i := range read {
		a, b := mapped[i], read[i]
		if a.Begin != b.Begin || a.End != b.End || a.Off != b.Off || !bytes.Equal(a.Instructions, b.Instructions) {
			t.Fatalf("FDE %d: mapped %#x-%#x at %#x, read %#x-%#x at %#x", i, a.Begin, a.End, a.Off, b.Begin, b.End, b.Off)
		}
	}
	exprs := 0
	for i := range readRows {
		for j := range readRows[i] {
			for _, r := range readRows[i][j].Regs {
				exprs += len(r.Expr)
			}
			exprs += len(readRows[i][j].CFA.Expr)
		}
	}
	if !reflect.DeepEqual(mappedRows, readRows) {
		t.Fatal("the rows of the mapped file differ from those read")
	}
	t.Logf("%d FDEs, %d row sets, %d bytes of expressions compared", len(read), len(readRows), exprs)
}

// TestFileShrank: a file truncated after it was opened makes reads of
// its mapped sections errors wrapping ErrFileChanged, not the end of the
// process; a copy read through another io.ReaderAt is not affected.
func TestFileShrank(t *testing.T) {
	data, err := os.ReadFile(libcPath)
	if err != nil {
		t.Skipf("no libc to read: %v", err)
	}
	name := filepath.Join(t.TempDir(), "libc.so.6")
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var pcs []uint64
	f.FDEs(func(fd FDE) bool {
		pcs = append(pcs, fd.Begin)
		return true
	})
	if len(pcs) < 100 {
		t.Fatalf("%d FDEs", len(pcs))
	}
	if _, ok, err := f.Lookup(pcs[0]); !ok || err != nil {
		t.Fatalf("before: %v %v", ok, err)
	}
	if err := os.Truncate(name, 0); err != nil {
		t.Fatal(err)
	}
	_, _, err = f.Lookup(pcs[len(pcs)/2])
	if !errors.Is(err, ErrFileChanged) {
		t.Fatalf("Lookup after the file shrank: %v, want ErrFileChanged", err)
	}
	if _, err := f.Rows(pcs[len(pcs)-1]); !errors.Is(err, ErrFileChanged) {
		t.Errorf("Rows after the file shrank: %v", err)
	}
	ctx := unwind.Context{Rip: pcs[len(pcs)/3] + 1, Rsp: 0x1000}
	if _, _, err := f.Step(&ctx, 0, ctx.Rip, nil); !errors.Is(err, ErrFileChanged) {
		t.Errorf("Step after the file shrank: %v", err)
	}
	if err := f.FDEs(func(FDE) bool { return true }); !errors.Is(err, ErrFileChanged) {
		t.Errorf("FDEs after the file shrank: %v", err)
	}
	t.Log(err)
}
