package pesym

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/fntable/fntable/internal/winetest"
	"github.com/fntable/fntable/symfile"
)

// dllSource and dllDef make a DLL with every kind of export: functions by
// name, data, an alias whose name has a space, an export by ordinal only,
// and a forwarder.
const (
	dllSource = `__declspec(dllexport) int add(int a, int b) { return a + b; }
__declspec(dllexport) int counter = 5;
__attribute__((noinline)) int hidden(int *p) { int v = *p; for (int i = 0; i < v; i++) p[i] += i; return v; }
int viaord(int x) { int a[4] = {x, x, x, x}; return hidden(a) + 1; }
`
	dllDef = `EXPORTS
  add
  counter DATA
  viaord @7 NONAME
  fwd = kernel32.Sleep
  "name with space" = add
`
)

// buildDLL compiles the DLL with MinGW-w64 into dir and returns its path.
func buildDLL(t *testing.T, dir, name string, extra ...string) string {
	t.Helper()
	cc, err := exec.LookPath("x86_64-w64-mingw32-gcc")
	if err != nil {
		unavailable(t, "needs x86_64-w64-mingw32-gcc to build a DLL with exports: apt-get install gcc-mingw-w64-x86-64-win32")
	}
	for file, text := range map[string]string{"dll.c": dllSource, "dll.def": dllDef} {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := append([]string{"-O1", "-shared", "-o", name, "dll.c", "dll.def"}, extra...)
	cmd := exec.Command(cc, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", cc, args, err, out)
	}
	return filepath.Join(dir, name)
}

// TestDLL builds DLLs with exports and a CodeView record (GNU ld's --pdb)
// and compares them with LLVM's tools like the shared files, then checks
// what the exports become.
func TestDLL(t *testing.T) {
	dir := t.TempDir()
	full := buildDLL(t, dir, "full.dll", "-Wl,--pdb=full.pdb")
	stripped := buildDLL(t, dir, "stripped.dll", "-s", "-Wl,--build-id")
	var c oracleCounts
	for _, path := range []string{full, stripped} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			checkAgainstLLVM(t, path, &c)
			f, err := Open(path, symfile.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			base := f.Ident().LinkBase
			byName := map[string]symfile.Symbol{}
			for _, s := range f.Symbols() {
				byName[s.Name] = s
			}
			exp := map[string]Export{}
			for _, e := range f.Exports() {
				exp[e.Name] = e
			}
			if e := exp["fwd"]; e.Forwarder != "kernel32.Sleep" {
				t.Errorf("fwd: %+v, want a forwarder to kernel32.Sleep", e)
			}
			if _, ok := byName["fwd"]; ok {
				t.Errorf("the forwarder fwd is among the symbols")
			}
			for name, kind := range map[string]symfile.Kind{"add": symfile.KindFunction, "name with space": symfile.KindFunction,
				"counter": symfile.KindData, "#7": symfile.KindFunction} {
				s, ok := byName[name]
				if !ok || s.Kind != kind {
					t.Errorf("%q: %+v, want a %v", name, s, kind)
				}
			}
			if e := exp[""]; e.Ordinal != 7 || byName["#7"].Addr != base+uint64(e.RVA) {
				t.Errorf("export by ordinal: %+v, symbol %+v", e, byName["#7"])
			}
			if byName["#7"].Size == 0 || byName["add"].Size == 0 {
				t.Errorf("exported functions have no size from the exception directory: %+v %+v", byName["#7"], byName["add"])
			}
			pdb := f.Ident().PDB
			if pdb == nil {
				t.Fatalf("no CodeView record")
			}
			if path == full && pdb.Path != "full.pdb" {
				t.Errorf("PDB path %q, want full.pdb", pdb.Path)
			}
			if path == stripped {
				// Stripped: hidden is known only from the exception directory.
				if _, ok := byName["hidden"]; ok {
					t.Errorf("hidden has a name in a stripped image")
				}
				subs := 0
				for _, s := range f.Symbols() {
					if s.Kind == symfile.KindFunction && s.Name == fmt.Sprintf("sub_%x", s.Addr-base) {
						subs++
					}
				}
				if subs == 0 {
					t.Errorf("no sub_ function in a stripped image")
				}
			}
		})
	}
	t.Logf("DLLs: %d COFF symbols, %d exports (%d forwarders), %d sizes, %d unnamed functions, %d CodeView records match LLVM",
		c.coff, c.exports, c.forwarders, c.sized, c.unnamed, c.cv)
}

// sharedFile reads a file of ../shared/testdata.
func sharedFile(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(winetest.Testdata(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestErrors checks what malformed and foreign input gives: the right
// error, never a panic.
func TestErrors(t *testing.T) {
	img := sharedFile(t, "pe/symbolic-CrashWithException.exe")
	obj := sharedFile(t, "pe/go-gcc-amd64-mingw-obj")
	le := binary.LittleEndian
	lfanew := le.Uint32(img[0x3c:])
	opt := lfanew + 24
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(img)) }
	tests := []struct {
		name string
		in   []byte
		want error // symfile.ErrUnrecognized or ErrMalformed; nil: opens
	}{
		{"empty", nil, symfile.ErrUnrecognized},
		{"one byte", []byte("M"), symfile.ErrUnrecognized},
		{"MZ only", []byte("MZ"), symfile.ErrUnrecognized},
		{"ELF", []byte("\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00"), symfile.ErrUnrecognized},
		{"COFF object", obj, symfile.ErrUnrecognized},
		{"e_lfanew beyond the file", mutate(func(b []byte) []byte { le.PutUint32(b[0x3c:], 0x10000); return b }), symfile.ErrUnrecognized},
		{"e_lfanew huge", mutate(func(b []byte) []byte { le.PutUint32(b[0x3c:], 0xfffffff0); return b }), ErrMalformed},
		{"no PE signature", mutate(func(b []byte) []byte { b[lfanew] = 'X'; return b }), symfile.ErrUnrecognized},
		{"truncated in the optional header", img[:opt+40], ErrMalformed},
		{"optional header size 0", mutate(func(b []byte) []byte { le.PutUint16(b[lfanew+20:], 0); return b }), ErrMalformed},
		{"optional header too small", mutate(func(b []byte) []byte { le.PutUint16(b[lfanew+20:], 60); return b }), ErrMalformed},
		{"bad magic", mutate(func(b []byte) []byte { le.PutUint16(b[opt:], 0x107); return b }), ErrMalformed},
		{"SizeOfImage 0", mutate(func(b []byte) []byte { le.PutUint32(b[opt+56:], 0); return b }), ErrMalformed},
		{"section table beyond the file", mutate(func(b []byte) []byte { le.PutUint16(b[lfanew+6:], 0xffff); return b }), ErrMalformed},
		{"truncated after the headers", img[:0x400], nil},
		{"debug directory beyond SizeOfImage", mutate(func(b []byte) []byte { le.PutUint32(b[opt+112+8*6:], 0xfffffff0); return b }), nil},
		{"exception directory beyond SizeOfImage", mutate(func(b []byte) []byte { le.PutUint32(b[opt+112+8*3:], 0xfffffff0); return b }), nil},
		{"export directory huge", mutate(func(b []byte) []byte {
			le.PutUint32(b[opt+112:], 0x1000)
			le.PutUint32(b[opt+116:], 0xffffffff)
			return b
		}), nil},
		{"symbol table huge", mutate(func(b []byte) []byte {
			le.PutUint32(b[lfanew+12:], 0x200)
			le.PutUint32(b[lfanew+16:], 0xffffffff)
			return b
		}), nil},
		{"no data directories", mutate(func(b []byte) []byte { le.PutUint32(b[opt+108:], 0); return b }), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := NewFile(bytes.NewReader(tt.in), symfile.Options{})
			_, ierr := Identify(bytes.NewReader(tt.in))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("NewFile: %v", err)
				}
				checkSorted(t, f)
				for _, w := range f.Warnings() {
					t.Logf("warning: %v", w)
				}
				return
			}
			if !errors.Is(err, tt.want) || !errors.Is(ierr, tt.want) {
				t.Fatalf("NewFile: %v; Identify: %v; want %v", err, ierr, tt.want)
			}
			if errors.Is(err, symfile.ErrUnrecognized) == errors.Is(err, ErrMalformed) {
				t.Fatalf("%v: not exactly one of unrecognized or malformed", err)
			}
		})
	}
}

func TestCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := NewFile(bytes.NewReader(sharedFile(t, "pe/symbolic-CrashWithException.exe")), symfile.Options{Context: ctx})
	if !errors.Is(err, symfile.ErrCanceled) || !errors.Is(err, context.Canceled) {
		t.Fatalf("NewFile with a canceled context: %v", err)
	}
}

// TestIdentify checks that Identify agrees with NewFile on every file.
func TestIdentify(t *testing.T) {
	for _, path := range peFiles(t) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		id, ierr := Identify(bytes.NewReader(b))
		f, ferr := NewFile(bytes.NewReader(b), symfile.Options{})
		if (ierr != nil) != (ferr != nil) {
			t.Errorf("%s: Identify: %v; NewFile: %v", filepath.Base(path), ierr, ferr)
			continue
		}
		if ferr == nil && !identEqual(id, f.Ident()) {
			t.Errorf("%s: Identify %+v, NewFile %+v", filepath.Base(path), id, f.Ident())
		}
		if ferr == nil && !id.HasDebugInfo {
			if fr, err := f.Frames(nil, id.LinkBase+0x1000); fr != nil || err != nil {
				t.Errorf("%s: no DWARF, but Frames = %v, %v", filepath.Base(path), fr, err)
			}
		}
	}
}

// TestChainedFragment checks that an exception-directory entry chained to
// another (UNW_FLAG_CHAININFO) takes the name of the function it belongs
// to. lldb-pecallframeinfo.exe has one: its .text is zero-filled and it
// has no symbols, so the primary function is a sub_.
func TestChainedFragment(t *testing.T) {
	f, err := Open(winetest.Testdata(t, "pe/lldb-pecallframeinfo.exe"), symfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	base := f.Ident().LinkBase
	names := map[string][]uint64{}
	for _, s := range f.Symbols() {
		names[s.Name] = append(names[s.Name], s.Addr-base)
	}
	shared := 0
	for name, rvas := range names {
		if len(rvas) > 1 && name == fmt.Sprintf("sub_%x", slices.Min(rvas)) {
			shared++
		}
	}
	if shared == 0 {
		t.Errorf("no chained fragment named after its function: %v", names)
	}
}

// BenchmarkOpenSymbols opens the biggest PE files of the test data and
// reads their symbols.
func BenchmarkOpenSymbols(b *testing.B) {
	for _, rel := range []string{"pe/go-gcc-amd64-mingw-exec", "pe/symbolic-hello-dwarf.exe", "pe/symbolic-CrashWithException.exe"} {
		path := winetest.Testdata(b, rel)
		b.Run(filepath.Base(rel), func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				f, err := Open(path, symfile.Options{})
				if err != nil {
					b.Fatal(err)
				}
				n = len(f.Symbols())
				f.Close()
			}
			b.ReportMetric(float64(n), "symbols")
		})
	}
}

// TestConcurrent queries one File from several goroutines, as the handler
// does; go test -race checks it.
func TestConcurrent(t *testing.T) {
	f, err := Open(winetest.Testdata(t, "pe/symbolic-hello-dwarf.exe"), symfile.Options{Lines: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms := f.Symbols()
	done := make(chan []string)
	for g := range 4 {
		go func() {
			var names []string
			for i := g; i < len(syms); i += 2 {
				fr, err := f.Frames(nil, syms[i].Addr)
				if err != nil {
					t.Error(err)
				}
				if len(fr) > 0 {
					names = append(names, fr[len(fr)-1].Function)
				}
			}
			done <- names
		}()
	}
	var got [4][]string
	for g := range 4 {
		got[g] = <-done
	}
	if len(got[0])+len(got[1]) == 0 {
		t.Fatal("no frames")
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r     *bytes.Reader
	bytes int
	reads int
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.bytes += n
	c.reads++
	return n, err
}

// TestIdentifyCheap checks that Identify reads the headers and the debug
// directory, not the symbols or the DWARF.
func TestIdentifyCheap(t *testing.T) {
	for _, rel := range []string{"pe/go-gcc-amd64-mingw-exec", "pe/symbolic-CrashWithException.exe"} {
		b := sharedFile(t, rel)
		c := &countingReader{r: bytes.NewReader(b)}
		if _, err := Identify(c); err != nil {
			t.Fatal(err)
		}
		if c.bytes > 8<<10 {
			t.Errorf("%s: Identify read %d bytes in %d reads of a %d-byte file", rel, c.bytes, c.reads, len(b))
		}
		t.Logf("%s: Identify read %d bytes in %d reads of %d", filepath.Base(rel), c.bytes, c.reads, len(b))
	}
}
