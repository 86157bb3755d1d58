package peimage

import (
	"bytes"
	"debug/pe"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/fntable/fntable/internal/testenv"
	"github.com/fntable/fntable/internal/winetest"
	"github.com/fntable/fntable/unwindinfo"
)

// goMingwExec returns the path of Go's own mingw test executable.
func goMingwExec(t testing.TB) string {
	t.Helper()
	path := filepath.Join(runtime.GOROOT(), "src", "debug", "pe", "testdata", "gcc-amd64-mingw-exec")
	if _, err := os.Stat(path); err != nil {
		testenv.Unavailable(t, "needs Go's debug/pe testdata: %v", err)
	}
	return path
}

// sharedPE returns the paths of the PE files in ../shared/testdata/pe.
func sharedPE(t testing.TB) []string {
	t.Helper()
	dir := winetest.Testdata(t, "pe")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range ents {
		paths = append(paths, filepath.Join(dir, e.Name()))
	}
	return paths
}

// sharedImages returns the shared PE files that are images, not objects.
func sharedImages(t testing.TB) []string {
	var paths []string
	for _, p := range sharedPE(t) {
		if !strings.HasSuffix(p, ".obj") && !strings.HasSuffix(p, "-obj") {
			paths = append(paths, p)
		}
	}
	return paths
}

func mustOpen(t testing.TB, path string) *File {
	t.Helper()
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestGoMingwExec(t *testing.T) {
	path := goMingwExec(t)
	f := mustOpen(t, path)
	if rva, size := f.ExceptionDirectory(); rva != 0xa000 || size != 0x498 {
		t.Errorf("ExceptionDirectory = %#x, %#x; want 0xa000, 0x498", rva, size)
	}
	if n := len(f.Functions()); n != 98 {
		t.Errorf("len(Functions) = %d, want 98", n)
	}
	if f.ImageBase() != 0x400000 || f.SizeOfImage() != 0x45000 {
		t.Errorf("ImageBase, SizeOfImage = %#x, %#x", f.ImageBase(), f.SizeOfImage())
	}
	if w := f.Warnings(); len(w) != 0 {
		t.Errorf("Warnings = %v", w)
	}
	if fn := f.Functions()[3]; fn != (unwindinfo.RuntimeFunction{BeginAddress: 0x1180, EndAddress: 0x14b6, UnwindData: 0xb014}) {
		t.Errorf("Functions()[3] = %+v", fn)
	}
	crossCheckDebugPE(t, f, path)
}

// crossCheckDebugPE compares the headers and the bytes of every section,
// read by RVA, with debug/pe.
func crossCheckDebugPE(t *testing.T, f *File, path string) {
	t.Helper()
	pf, err := pe.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	oh := pf.OptionalHeader.(*pe.OptionalHeader64)
	if oh.ImageBase != f.ImageBase() || oh.SizeOfImage != f.SizeOfImage() {
		t.Errorf("debug/pe ImageBase, SizeOfImage = %#x, %#x; peimage %#x, %#x", oh.ImageBase, oh.SizeOfImage, f.ImageBase(), f.SizeOfImage())
	}
	if d := oh.DataDirectory[pe.IMAGE_DIRECTORY_ENTRY_EXCEPTION]; true {
		if rva, size := f.ExceptionDirectory(); rva != d.VirtualAddress || size != d.Size {
			t.Errorf("exception directory %#x+%#x, debug/pe %#x+%#x", rva, size, d.VirtualAddress, d.Size)
		}
	}
	for _, s := range pf.Sections {
		data, err := s.Data()
		if err != nil {
			t.Fatal(err)
		}
		n := min(len(data), int(s.VirtualSize))
		if s.VirtualSize == 0 {
			n = len(data)
		}
		got := make([]byte, s.VirtualSize)
		if _, err := f.ReadRVA(got, s.VirtualAddress); err != nil {
			t.Errorf("ReadRVA(section %s at %#x, %#x bytes): %v", s.Name, s.VirtualAddress, len(got), err)
			continue
		}
		if !bytes.Equal(got[:n], data[:n]) {
			t.Errorf("section %s: ReadRVA differs from debug/pe", s.Name)
		}
		if slices.ContainsFunc(got[n:], func(b byte) bool { return b != 0 }) {
			t.Errorf("section %s: virtual tail beyond raw data is not zero", s.Name)
		}
	}
}

// wantImages lists what the shared images hold.
var wantImages = map[string]struct {
	functions int
	warnings  []WarningKind
}{
	"go-gcc-amd64-mingw-exec":         {98, nil},
	"lldb-pecallframeinfo.exe":        {5, nil},
	"llvm-win64-unwindv2.exe":         {2, nil},
	"symbolic-CrashWithException.exe": {41, nil},
	// Its only entry covers 0x1000-0x2000 in an image of 0x400 bytes.
	"symbolic-cfi_chained_loop.exe": {1, []WarningKind{WarnOutsideImage}},
	"symbolic-hello-dwarf.exe":      {95, nil},
}

func TestSharedFiles(t *testing.T) {
	for _, path := range sharedPE(t) {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			f, err := Open(path)
			want, isImage := wantImages[name]
			if !isImage {
				// COFF objects.
				if !errors.Is(err, ErrNotImage) || errors.Is(err, ErrMalformed) {
					t.Fatalf("Open(%s) = %v; want an error wrapping ErrNotImage only", name, err)
				}
				if !strings.Contains(err.Error(), "COFF object") {
					t.Errorf("error %q does not say it is a COFF object", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if n := len(f.Functions()); n != want.functions {
				t.Errorf("len(Functions) = %d, want %d", n, want.functions)
			}
			var kinds []WarningKind
			for _, w := range f.Warnings() {
				kinds = append(kinds, w.Kind)
				t.Logf("warning: %v", w)
			}
			if !slices.Equal(kinds, want.warnings) {
				t.Errorf("warning kinds = %v, want %v", kinds, want.warnings)
			}
			crossCheckDebugPE(t, f, path)
		})
	}
}

// TestInvariants checks every shared image and Go's: the lookup index is
// sorted and non-overlapping, entries lie inside the image, every entry is
// found by a lookup at its first and last byte, and every chain ends or
// fails with ErrChainTooDeep.
func TestInvariants(t *testing.T) {
	paths := append(sharedImages(t), goMingwExec(t))
	for _, path := range paths {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			f := mustOpen(t, path)
			keys := f.idx.keys
			if !slices.IsSortedFunc(keys, func(a, b unwindinfo.RuntimeFunction) int {
				return int(int64(a.BeginAddress) - int64(b.BeginAddress))
			}) {
				t.Error("index not sorted")
			}
			for i := 1; i < len(keys); i++ {
				if keys[i].BeginAddress < keys[i-1].EndAddress {
					t.Errorf("entries %+v and %+v overlap", keys[i-1], keys[i])
				}
			}
			outside := 0
			for _, rf := range f.Functions() {
				if rf == (unwindinfo.RuntimeFunction{}) {
					if _, err := f.Chain(rf); err == nil {
						// RVA 0 is the MZ header: not a valid UNWIND_INFO version.
						t.Errorf("Chain of a zero entry succeeded")
					}
					continue
				}
				if rf.EndAddress > f.SizeOfImage() || rf.UnwindData >= f.SizeOfImage() {
					outside++
				}
				for _, rva := range []uint32{rf.BeginAddress, rf.EndAddress - 1} {
					if got, ok := f.LookupFunctionEntry(rva); !ok || got != rf {
						t.Errorf("LookupFunctionEntry(%#x) = %+v, %v; want %+v", rva, got, ok, rf)
					}
				}
				chain, err := f.Chain(rf)
				switch {
				case err == nil:
					if len(chain) == 0 || chain[0] != rf {
						t.Errorf("Chain(%+v) = %+v", rf, chain)
					}
					last, err := f.UnwindInfo(chain[len(chain)-1])
					if err != nil || last.Flags&unwindinfo.UNW_FLAG_CHAININFO != 0 {
						t.Errorf("chain of %+v does not end in a primary entry: %v", rf, err)
					}
				case errors.Is(err, unwindinfo.ErrChainTooDeep):
					if name != "symbolic-cfi_chained_loop.exe" {
						t.Errorf("Chain(%+v): %v", rf, err)
					}
				default:
					t.Errorf("Chain(%+v): %v", rf, err)
				}
			}
			if wantOutside := name == "symbolic-cfi_chained_loop.exe"; (outside > 0) != wantOutside {
				t.Errorf("%d entries outside the image", outside)
			}
		})
	}
}

// TestRoundTrip re-encodes every UNWIND_INFO of every image.
func TestRoundTrip(t *testing.T) {
	paths := append(sharedImages(t), goMingwExec(t))
	total := 0
	for _, path := range paths {
		f := mustOpen(t, path)
		for _, rf := range f.Functions() {
			if rf == (unwindinfo.RuntimeFunction{}) {
				continue
			}
			var b [unwindinfo.MaxSize]byte
			n, _ := f.ReadRVA(b[:], rf.UnwindData)
			info, err := unwindinfo.Decode(b[:n])
			if err != nil {
				t.Errorf("%s: %+v: %v", filepath.Base(path), rf, err)
				continue
			}
			enc, err := info.Encode()
			if err != nil {
				t.Errorf("%s: %+v: Encode: %v", filepath.Base(path), rf, err)
				continue
			}
			if !bytes.Equal(enc, b[:info.Size()]) {
				t.Errorf("%s: %+v: Encode = % x, want % x", filepath.Base(path), rf, enc, b[:info.Size()])
			}
			total++
		}
	}
	t.Logf("%d UNWIND_INFO blocks re-encoded to their bytes", total)
}

func TestChainedLoop(t *testing.T) {
	f := mustOpen(t, winetest.Testdata(t, "pe/symbolic-cfi_chained_loop.exe"))
	fns := f.Functions()
	want := unwindinfo.RuntimeFunction{BeginAddress: 0x1000, EndAddress: 0x2000, UnwindData: 0x300}
	if len(fns) != 1 || fns[0] != want {
		t.Fatalf("Functions = %+v, want [%+v]", fns, want)
	}
	info, err := f.UnwindInfo(fns[0])
	if err != nil || info.Chained != want {
		t.Fatalf("UnwindInfo = %+v, %v", info, err)
	}
	chain, err := f.Chain(fns[0])
	if !errors.Is(err, unwindinfo.ErrChainTooDeep) {
		t.Fatalf("Chain error = %v, want ErrChainTooDeep", err)
	}
	if len(chain) != 1 || chain[0] != want {
		t.Errorf("Chain = %+v", chain)
	}
	t.Log(err)
}

// TestLLDBChain follows the chained fragment of the LLDB test image.
func TestLLDBChain(t *testing.T) {
	f := mustOpen(t, winetest.Testdata(t, "pe/lldb-pecallframeinfo.exe"))
	frag, ok := f.LookupFunctionEntry(0x1180)
	if !ok || frag.BeginAddress != 0x1100 {
		t.Fatalf("LookupFunctionEntry(0x1180) = %+v, %v", frag, ok)
	}
	chain, err := f.Chain(frag)
	want := []unwindinfo.RuntimeFunction{rf(0x1100, 0x1200, 0x2010), rf(0x1000, 0x1100, 0x2000)}
	if err != nil || !slices.Equal(chain, want) {
		t.Errorf("Chain = %+v, %v; want %+v", chain, err, want)
	}
	// The two all-zero entries never match.
	if fn, ok := f.LookupFunctionEntry(0); ok {
		t.Errorf("LookupFunctionEntry(0) = %+v", fn)
	}
}

// TestUnwindV2 checks the version 2 epilog decode of the LLVM image
// against expected/llvm-win64-unwindv2.exe.expected.txt.
func TestUnwindV2(t *testing.T) {
	f := mustOpen(t, winetest.Testdata(t, "pe/llvm-win64-unwindv2.exe"))
	if f.ImageBase() != 0x140000000 {
		t.Errorf("ImageBase = %#x", f.ImageBase())
	}
	fns := f.Functions()
	want := []unwindinfo.RuntimeFunction{rf(0x1010, 0x1017, 0x2000), rf(0x1020, 0x105c, 0x200c)}
	if !slices.Equal(fns, want) {
		t.Fatalf("Functions = %+v, want %+v", fns, want)
	}
	info, err := f.UnwindInfo(fns[0])
	if err != nil {
		t.Fatal(err)
	}
	if info.Version != 2 || info.Flags != 0 || info.SizeOfProlog != 4 || info.FrameRegister != 0 || info.CountOfCodes() != 3 {
		t.Errorf("header = %+v", info)
	}
	wantCodes := []unwindinfo.Code{
		{Offset: 1, Op: unwindinfo.UWOP_EPILOG, OpInfo: 1},
		{Offset: 0x0b, Op: unwindinfo.UWOP_EPILOG},
		{Offset: 4, Op: unwindinfo.UWOP_ALLOC_SMALL, OpInfo: 8},
	}
	if !slices.Equal(info.Codes, wantCodes) {
		t.Errorf("codes = %+v, want %+v", info.Codes, wantCodes)
	}
	if s := info.Codes[2].AllocSize(); s != 72 {
		t.Errorf("ALLOC_SMALL size = %d, want 72", s)
	}
	e, ok := info.Epilogs()
	if !ok || e.Length != 1 || !e.AtEnd || !slices.Equal(e.Offsets, []uint32{0xb}) {
		t.Fatalf("Epilogs = %+v, %v", e, ok)
	}
	if start := fns[0].EndAddress - e.Offsets[0]; start != 0x100c {
		t.Errorf("epilog start = %#x, want 0x100c", start)
	}
	if atEnd := fns[0].EndAddress - uint32(e.Length); atEnd != 0x1016 {
		t.Errorf("at-end epilog start = %#x, want 0x1016", atEnd)
	}
	if info.Validate() != nil {
		t.Errorf("Validate: %v", info.Validate())
	}

	info, err = f.UnwindInfo(fns[1])
	if err != nil {
		t.Fatal(err)
	}
	if info.Version != 1 || info.Flags != 3 || info.SizeOfProlog != 4 || len(info.Codes) != 1 ||
		info.Codes[0].AllocSize() != 56 || info.Handler != 0x1070 {
		t.Errorf("function 1 = %+v", info)
	}
	// The LSDA follows the handler RVA.
	lsda := make([]byte, 8)
	hd := fns[1].UnwindData + uint32(info.Header().TrailerOffset()) + 4
	if _, err := f.ReadRVA(lsda, hd); err != nil || !bytes.Equal(lsda, []byte{0xff, 0xff, 0x01, 0x08, 0x04, 0x05, 0x1e, 0x00}) {
		t.Errorf("handler data at %#x = % x, %v", hd, lsda, err)
	}
}

func TestDescribe(t *testing.T) {
	f := mustOpen(t, winetest.Testdata(t, "pe/lldb-pecallframeinfo.exe"))
	fns := f.Functions()
	if d := f.Describe(fns[0]); d.Info != nil || d.Err != nil {
		t.Errorf("Describe(zero entry) = %+v", d)
	}
	d := f.Describe(fns[3])
	if d.Err != nil || d.Info == nil || d.Chained == nil || d.Chained.Entry != fns[2] || d.Chained.Info == nil || d.Chained.Chained != nil {
		t.Errorf("Describe(chained fragment) = %+v", d)
	}

	f = mustOpen(t, winetest.Testdata(t, "pe/symbolic-cfi_chained_loop.exe"))
	d = f.Describe(f.Functions()[0])
	if !errors.Is(d.Err, unwindinfo.ErrChainTooDeep) || d.Info == nil || d.Chained != nil {
		t.Errorf("Describe(loop) = %+v", d)
	}

	file, _ := openSynth(t, basicSynth())
	d = file.Describe(file.Functions()[3])
	if d.Err != nil || d.Info != nil || d.Indirect == nil || d.Indirect.Entry != rf(0x10c0, 0x10d0, 0x3000) || d.Indirect.Info == nil {
		t.Errorf("Describe(indirect) = %+v", d)
	}
	// A chain whose parent cannot be decoded: the error is on the parent.
	s := tableSynth(rf(0x1000, 0x1010, 0x3000))
	s.sections[1].data = []byte{0x21, 0, 0, 0, 0x00, 0x10, 0, 0, 0x10, 0x10, 0, 0, 0x10, 0x30, 0, 0, 0x03, 0, 0, 0}
	file, _ = openSynth(t, s)
	d = file.Describe(file.Functions()[0])
	if d.Err != nil || d.Chained == nil || !errors.Is(d.Chained.Err, unwindinfo.ErrUnsupportedVersion) {
		t.Errorf("Describe(bad parent) = %+v, chained %+v", d, d.Chained)
	}
}
