package elfsym

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/fntable/fntable/internal/filemap"
	"github.com/fntable/fntable/internal/symtest"
	"github.com/fntable/fntable/internal/testenv"
	"github.com/fntable/fntable/symfile"
)

// compressedVariants builds the C++ test program once without compressed
// debug sections and then copies it with objcopy in each compressed form:
// SHF_COMPRESSED with zlib and with zstd, and GNU's .zdebug_ sections.
func compressedVariants(t *testing.T) (plain string, variants map[string]string) {
	t.Helper()
	for _, tool := range []string{"objcopy"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Unavailable(t, "needs %s (binutils)", tool)
		}
	}
	plain = symtest.CPP(t)
	dir := t.TempDir()
	variants = map[string]string{}
	for _, form := range []string{"zlib", "zstd", "zlib-gnu"} {
		out := filepath.Join(dir, "cpp-"+form)
		cmd := exec.Command("objcopy", "--compress-debug-sections="+form, plain, out)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("objcopy %s: %v\n%s", form, err, b)
		}
		variants[form] = out
	}
	return plain, variants
}

func framesAt(t *testing.T, f *File, addrs []uint64) [][]symfile.Frame {
	t.Helper()
	out := make([][]symfile.Frame, len(addrs))
	for i, a := range addrs {
		fr, err := f.Frames(nil, a)
		if err != nil {
			t.Fatalf("%#x: %v", a, err)
		}
		out[i] = fr
	}
	return out
}

// plainFrames returns the files of compressedVariants, n random
// addresses of the uncompressed one (from seed) and its frames at them,
// which every variant must give.
func plainFrames(t *testing.T, n int, seed int64) (plain string, variants map[string]string, addrs []uint64, want [][]symfile.Frame) {
	t.Helper()
	plain, variants = compressedVariants(t)
	addrs = symtest.RandomAddrs(t, plain, n, seed)
	pf, err := Open(plain, symfile.Options{Lines: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	want = framesAt(t, pf, addrs)
	if err := pf.DWARFError(); err != nil {
		t.Fatal(err)
	}
	return plain, variants, addrs, want
}

// TestCompressedSections checks that each form of compressed debug
// sections gives the frames of the uncompressed file, decompressed on the
// first open and mapped from the cache on the next.
func TestCompressedSections(t *testing.T) {
	_, variants, addrs, want := plainFrames(t, 500, 3)
	for form, file := range variants {
		t.Run(form, func(t *testing.T) {
			cache := t.TempDir()
			for _, pass := range []string{"decompressed", "cached"} {
				f, err := Open(file, symfile.Options{Lines: true, CacheDir: cache})
				if err != nil {
					t.Fatal(err)
				}
				if err := f.DWARFError(); err != nil {
					t.Fatalf("%s: %v", pass, err)
				}
				if got := framesAt(t, f, addrs); !slices.EqualFunc(got, want, slices.Equal) {
					t.Errorf("%s: frames differ from the uncompressed file's", pass)
				}
				f.Close()
				copies, _ := filepath.Glob(filepath.Join(cache, "*", "*", ".debug_*"))
				if len(copies) < 3 { // info, abbrev, line at least
					t.Fatalf("%s: cached copies %v", pass, copies)
				}
			}
		})
	}
}

// TestCacheMismatch checks that a cached copy of the wrong size is not
// used but replaced, and that no cache is written without a build ID or a
// directory.
func TestCacheMismatch(t *testing.T) {
	plain, variants, addrs, want := plainFrames(t, 200, 4)

	cache := t.TempDir()
	f, err := Open(variants["zlib"], symfile.Options{Lines: true, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	copies, _ := filepath.Glob(filepath.Join(cache, "*", "*", ".debug_info-*[0-9a-f]"))
	if len(copies) != 1 {
		t.Fatalf("cached .debug_info copies: %v", copies)
	}
	// A truncated copy (written by something else) must not be mapped.
	if err := os.WriteFile(copies[0], []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err = Open(variants["zlib"], symfile.Options{Lines: true, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.DWARFError() != nil {
		t.Fatal(f.DWARFError())
	}
	if got := framesAt(t, f, addrs); !slices.EqualFunc(got, want, slices.Equal) {
		t.Error("frames differ after a bad cached copy")
	}
	if fi, err := os.Stat(copies[0]); err != nil || fi.Size() <= 5 {
		t.Errorf("the bad copy was not replaced: %v %v", fi, err)
	}
	// An uncompressed file leaves nothing in the cache.
	empty := t.TempDir()
	g, err := Open(plain, symfile.Options{Lines: true, CacheDir: empty})
	if err != nil {
		t.Fatal(err)
	}
	g.Close()
	if ents, _ := os.ReadDir(empty); len(ents) != 0 {
		t.Errorf("cache written for an uncompressed file: %v", ents)
	}
}

// TestCacheUpkeep checks that a sweep deletes copies unused for longer
// than cacheMaxUnused and the directories they leave, keeps the others
// and files that are not the cache's, runs at most once per
// cacheSweepEvery, and that mapping an old copy refreshes it.
func TestCacheUpkeep(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	old := now.Add(-cacheMaxUnused - time.Hour)
	write := func(rel string, mtime time.Time) string {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("0123456789"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return p
	}
	stale := write("ab/cdef/.debug_info-10-a", old)
	fresh := write("12/3456/.debug_info-10-a", now)
	mixedOld := write("12/7777/.debug_line-10-a", old)
	mixedNew := write("12/7777/.debug_info-10-a", now)
	other := write("notes.txt", old)

	pruneCache(dir, now)
	for _, p := range []string{stale, mixedOld} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s not deleted: %v", p, err)
		}
	}
	for _, p := range []string{fresh, mixedNew, other} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s deleted: %v", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "ab")); !os.IsNotExist(err) {
		t.Errorf("empty directories left: %v", err)
	}

	// Within cacheSweepEvery of the last sweep nothing is deleted.
	again := write("cd/efef/.debug_info-10-a", old)
	pruneCache(dir, now.Add(time.Hour))
	if _, err := os.Stat(again); err != nil {
		t.Errorf("swept twice within %v: %v", cacheSweepEvery, err)
	}
	pruneCache(dir, now.Add(cacheSweepEvery+time.Hour))
	if _, err := os.Stat(again); !os.IsNotExist(err) {
		t.Errorf("not swept after %v: %v", cacheSweepEvery, err)
	}

	// Mapping a copy last used long ago marks it used.
	used := write("ef/0101/.debug_info-10-a", old)
	if _, err := mapCached(used, 10); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(used); err != nil || now.Sub(fi.ModTime()) > time.Minute {
		t.Errorf("mapped copy not refreshed: %v %v", fi.ModTime(), err)
	}
}

// TestMappedSymbolTable: a file opened by name has its symbol table's
// entries mapped while they are decoded, and unmapped after; one read
// through another io.ReaderAt has them read. Both give the same symbols
// and frames, and the names stay valid after the mapping is gone and the
// file is rewritten in place (they point into a copy of the string
// table, not into the file).
func TestMappedSymbolTable(t *testing.T) {
	built := symtest.CPP(t)
	data, err := os.ReadFile(built)
	if err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(t.TempDir(), "cpp")
	if err := os.WriteFile(plain, data, 0o755); err != nil {
		t.Fatal(err)
	}
	addrs := symtest.RandomAddrs(t, plain, 200, 7)
	mf, err := Open(plain, symfile.Options{Lines: true})
	if err != nil {
		t.Fatal(err)
	}
	defer mf.Close()
	if mf.file == nil {
		t.Fatal("a File opened by name has no file to map its symbol table from")
	}
	s := mf.f.Section(".symtab")
	if s == nil {
		t.Fatal("the test program has no .symtab")
	}
	if b, unmap, err := filemap.Section(mf.file, s); err != nil || len(b) != int(s.Size) {
		t.Fatalf("filemap.Section(.symtab) gave %d bytes, %v; want %d", len(b), err, s.Size)
	} else {
		unmap()
	}
	rf, err := NewFile(bytesReaderAt(data), symfile.Options{Lines: true})
	if err != nil {
		t.Fatal(err)
	}
	mapped := mf.Symbols()
	if !slices.Equal(mapped, rf.Symbols()) || len(mapped) == 0 {
		t.Fatalf("mapped: %d symbols, read: %d, or they differ", len(mapped), len(rf.Symbols()))
	}
	m, r := framesAt(t, mf, addrs), framesAt(t, rf, addrs)
	for i := range addrs {
		if !slices.Equal(m[i], r[i]) {
			t.Fatalf("%#x: mapped %v, read %v", addrs[i], m[i], r[i])
		}
	}
	// Rewritten in place, as cp does: truncated, then other bytes.
	if err := os.WriteFile(plain, make([]byte, 100), 0o755); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(mapped, rf.Symbols()) {
		t.Fatal("the names changed when the file was rewritten")
	}
}

// bytesReaderAt is an io.ReaderAt over b that is not an *os.File.
type bytesReaderAt []byte

func (b bytesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// TestCachedUnitTable: the first open of a file with compressed DWARF
// keeps the table of its unit headers beside the inflated .debug_info;
// the next takes the units from it instead of walking them, and gives
// the same frames; a damaged table is ignored and written again.
func TestCachedUnitTable(t *testing.T) {
	_, variants, addrs, want := plainFrames(t, 200, 8)
	cache := t.TempDir()
	open := func() *File {
		t.Helper()
		f, err := Open(variants["zlib"], symfile.Options{Lines: true, CacheDir: cache})
		if err != nil {
			t.Fatal(err)
		}
		if f.DWARFError() != nil {
			t.Fatal(f.DWARFError())
		}
		if got := framesAt(t, f, addrs); !slices.EqualFunc(got, want, slices.Equal) {
			t.Fatal("frames differ from the uncompressed file's")
		}
		return f
	}
	f := open()
	walked := f.dw.UnitTable()
	f.Close()
	tables, _ := filepath.Glob(filepath.Join(cache, "*", "*", ".debug_info-*.units"))
	if len(tables) != 1 || walked == nil {
		t.Fatalf("unit tables in the cache: %v (the index walked its units: %v)", tables, walked != nil)
	}
	if b, err := os.ReadFile(tables[0]); err != nil || !slices.Equal(b, walked) {
		t.Fatalf("the cached table differs from the index's: %v", err)
	}
	f = open()
	if f.dw.UnitTable() != nil {
		t.Error("the second open walked the unit headers instead of taking the cached table")
	}
	f.Close()
	if err := os.WriteFile(tables[0], []byte("FNTUNIT1 damaged"), 0o600); err != nil {
		t.Fatal(err)
	}
	f = open()
	f.Close()
	if b, err := os.ReadFile(tables[0]); err != nil || !slices.Equal(b, walked) {
		t.Errorf("the damaged table was not written again: %v", err)
	}
}

// openTruncatedWhileMapped opens a copy of the C++ test program whose
// file is truncated when symTable.each is about to decode its mapped
// symbol table; *mapped says whether that happened.
func openTruncatedWhileMapped(t *testing.T) (f *File, mapped *bool) {
	t.Helper()
	data, err := os.ReadFile(symtest.CPP(t))
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(t.TempDir(), "cpp")
	if err := os.WriteFile(name, data, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err = Open(name, symfile.Options{PublicsOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	mapped = new(bool)
	testHookSymbolsMapped = func() {
		*mapped = true
		if err := os.Truncate(name, 0); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(func() { testHookSymbolsMapped = nil })
	return f, mapped
}

// TestSymbolTableTruncated truncates the file between the mapping of its
// symbol table's entries and their decoding: Symbols gives none (the
// faults in the mapping are caught), and the process goes on.
func TestSymbolTableTruncated(t *testing.T) {
	f, _ := openTruncatedWhileMapped(t)
	if syms := f.Symbols(); len(syms) != 0 {
		t.Errorf("%d symbols decoded from a truncated file", len(syms))
	}
}

// TestFunctionMapTruncated truncates the file while FunctionMap decodes
// its mapped symbol table: the map is empty, as for an unreadable table,
// and the process goes on. The same file read whole gives a map.
func TestFunctionMapTruncated(t *testing.T) {
	whole, err := Open(symtest.CPP(t), symfile.Options{PublicsOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer whole.Close()
	if whole.FunctionMap().Len() == 0 {
		t.Fatal("no functions in the map of the whole file")
	}

	f, mapped := openTruncatedWhileMapped(t)
	if n := f.FunctionMap().Len(); n != 0 {
		t.Errorf("%d functions decoded from a truncated file", n)
	}
	if !*mapped {
		t.Error("FunctionMap did not map the symbol table")
	}
}
