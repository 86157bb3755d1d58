package pesym

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fntable/fntable/internal/testenv"
	"github.com/fntable/fntable/internal/winetest"
	"github.com/fntable/fntable/symfile"
)

// unavailable skips the test, or fails it under CI (see internal/testenv).
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	testenv.Unavailable(t, format, args...)
}

// tool returns the path of an LLVM 14 tool, trying the versioned name
// first.
func tool(t testing.TB, name string) string {
	t.Helper()
	for _, n := range []string{name + "-14", name} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	unavailable(t, "needs %s (LLVM 14) as the oracle: apt-get install llvm-14", name)
	return ""
}

// run runs a program and returns its standard output.
func run(t testing.TB, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	out, err := runErr(stdin, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func runErr(stdin []byte, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := stderr.String()
		if i := strings.Index(msg, "\n"); i >= 0 {
			msg = msg[:i] // the first line; a crash's stack dump follows
		}
		return out, fmt.Errorf("%s %s: %v: %s", filepath.Base(name), strings.Join(args, " "), err, msg)
	}
	return out, nil
}

// peFiles returns the PE files of ../shared/testdata/pe and of debug/pe's
// testdata in GOROOT, read in place.
func peFiles(t testing.TB) []string {
	t.Helper()
	dir := winetest.Testdata(t, "pe")
	var paths []string
	for _, d := range []string{dir, filepath.Join(runtime.GOROOT(), "src", "debug", "pe", "testdata")} {
		ents, err := os.ReadDir(d)
		if err != nil {
			unavailable(t, "needs %s: %v", d, err)
		}
		for _, e := range ents {
			if !e.IsDir() && !strings.HasSuffix(e.Name(), ".c") {
				paths = append(paths, filepath.Join(d, e.Name()))
			}
		}
	}
	return paths
}

// llvmHeaders is what llvm-readobj --file-headers --sections says.
type llvmHeaders struct {
	image         bool // has an optional header
	timeDateStamp uint32
	imageBase     uint64
	sizeOfImage   uint32
	excSize       uint32
	sections      map[int]llvmSection
}

type llvmSection struct {
	name      string
	va, vsize uint32
	rawSize   uint32
}

var (
	hexInParens = regexp.MustCompile(`\((0x[0-9A-Fa-f]+)\)\s*$`)
	numInParens = regexp.MustCompile(`\((-?\d+)\)\s*$`)
)

func parseUint(t testing.TB, s string) uint64 {
	t.Helper()
	if m := hexInParens.FindStringSubmatch(s); m != nil {
		s = m[1]
	}
	v, err := strconv.ParseUint(strings.TrimSpace(s), 0, 64)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return v
}

func readHeaders(t testing.TB, path string) llvmHeaders {
	out := run(t, nil, tool(t, "llvm-readobj"), "--file-headers", "--sections", path)
	h := llvmHeaders{sections: map[int]llvmSection{}}
	var cur *llvmSection
	num := 0
	for line := range strings.Lines(string(out)) {
		key, val, _ := strings.Cut(strings.TrimSpace(line), ": ")
		switch key {
		case "TimeDateStamp":
			if cur == nil {
				h.timeDateStamp = uint32(parseUint(t, val))
			}
		case "ImageBase":
			h.image = true
			h.imageBase = parseUint(t, val)
		case "SizeOfImage":
			h.sizeOfImage = uint32(parseUint(t, val))
		case "ExceptionTableSize":
			h.excSize = uint32(parseUint(t, val))
		case "Number":
			num = int(parseUint(t, val))
			h.sections[num] = llvmSection{}
			s := h.sections[num]
			cur = &s
		case "Name":
			if cur != nil {
				cur.name, _, _ = strings.Cut(val, " (")
			}
		case "VirtualSize":
			cur.vsize = uint32(parseUint(t, val))
		case "VirtualAddress":
			cur.va = uint32(parseUint(t, val))
		case "RawDataSize":
			cur.rawSize = uint32(parseUint(t, val))
			h.sections[num] = *cur
		}
	}
	return h
}

// llvmSymbol is one record of llvm-readobj --symbols.
type llvmSymbol struct {
	name        string
	value       uint32
	section     int
	complexType int
	class       int
	aux         int
}

func readSymbols(t testing.TB, path string) []llvmSymbol {
	out := run(t, nil, tool(t, "llvm-readobj"), "--symbols", path)
	var syms []llvmSymbol
	var cur *llvmSymbol
	for line := range strings.Lines(string(out)) {
		trimmed := strings.TrimSpace(line)
		if trimmed == "Symbol {" {
			syms = append(syms, llvmSymbol{})
			cur = &syms[len(syms)-1]
			continue
		}
		// The symbol's own fields are indented four spaces; auxiliary
		// records' fields deeper.
		if cur == nil || !strings.HasPrefix(line, "    ") || strings.HasPrefix(line, "     ") {
			continue
		}
		key, val, _ := strings.Cut(trimmed, ": ")
		switch key {
		case "Name":
			cur.name = val
			if trimmed == "Name:" {
				cur.name = ""
			}
		case "Value":
			cur.value = uint32(parseUint(t, val))
		case "Section":
			m := numInParens.FindStringSubmatch(val)
			n, _ := strconv.Atoi(m[1])
			cur.section = n
		case "ComplexType":
			cur.complexType = int(parseUint(t, val))
		case "StorageClass":
			cur.class = int(parseUint(t, val))
		case "AuxSymbolCount":
			cur.aux = int(parseUint(t, val))
		}
	}
	return syms
}

// nmSymbol is a line of llvm-nm: its address and type letter.
type nmKey struct {
	addr uint64
	name string
}

func readNM(t testing.TB, path string) map[nmKey]string {
	out := run(t, nil, tool(t, "llvm-nm"), "-p", path)
	m := map[nmKey]string{}
	for line := range strings.Lines(string(out)) {
		f := strings.SplitN(strings.TrimRight(line, "\n"), " ", 3)
		if len(f) != 3 || f[0] == "" {
			continue // undefined symbols have no address
		}
		addr, err := strconv.ParseUint(f[0], 16, 64)
		if err != nil {
			t.Fatalf("llvm-nm line %q: %v", line, err)
		}
		m[nmKey{addr, f[2]}] += f[1]
	}
	return m
}

// llvmExport is an entry of llvm-readobj --coff-exports.
type llvmExport struct {
	ordinal uint32
	name    string
	rva     uint32
}

func readExports(t testing.TB, path string) []llvmExport {
	out := run(t, nil, tool(t, "llvm-readobj"), "--coff-exports", path)
	var exps []llvmExport
	for line := range strings.Lines(string(out)) {
		key, val, _ := strings.Cut(strings.TrimSpace(line), ": ")
		switch key {
		case "Ordinal":
			exps = append(exps, llvmExport{ordinal: uint32(parseUint(t, val))})
		case "Name", "Name:":
			if key == "Name" {
				exps[len(exps)-1].name = val
			}
		case "RVA":
			exps[len(exps)-1].rva = uint32(parseUint(t, val))
		}
	}
	return exps
}

var forwardedRE = regexp.MustCompile(`^\s+(\d+)\s+(.*) \(forwarded to (.*)\)$`)

// readForwarders returns the forwarders llvm-objdump -p lists, by ordinal.
func readForwarders(t testing.TB, path string) map[uint32]string {
	out := run(t, nil, tool(t, "llvm-objdump"), "-p", path)
	m := map[uint32]string{}
	for line := range strings.Lines(string(out)) {
		if f := forwardedRE.FindStringSubmatch(strings.TrimRight(line, "\n")); f != nil {
			m[uint32(parseUint(t, f[1]))] = f[3]
		}
	}
	return m
}

// readCodeView returns the first CodeView record of llvm-readobj
// --coff-debug-directory.
func readCodeView(t testing.TB, path string) *symfile.CodeView {
	out := run(t, nil, tool(t, "llvm-readobj"), "--coff-debug-directory", path)
	var cv *symfile.CodeView
	for line := range strings.Lines(string(out)) {
		trimmed := strings.TrimSpace(line)
		key, val, _ := strings.Cut(trimmed, ": ")
		switch {
		case trimmed == "PDBInfo {":
			if cv != nil {
				return cv
			}
			cv = &symfile.CodeView{}
		case cv == nil:
		case key == "PDBGUID":
			b, err := hex.DecodeString(strings.NewReplacer("(", "", ")", "", " ", "").Replace(val))
			if err != nil || len(b) != 16 {
				t.Fatalf("PDBGUID %q: %v", val, err)
			}
			copy(cv.GUID[:], b)
		case key == "PDBAge":
			cv.Age = uint32(parseUint(t, val))
		case key == "PDBFileName":
			cv.Path = val
		case trimmed == "PDBFileName:":
			cv.Path = ""
		}
	}
	return cv
}

// llvmFunction is a RuntimeFunction of llvm-readobj --unwind.
type llvmFunction struct {
	start, end uint64
	parent     uint64 // the chained entry's StartAddress, or 0
}

// readUnwind returns the exception directory's entries as llvm-readobj
// --unwind lists them, or, where llvm-readobj 14 crashes on the file, as
// the shared expected/<name>.expected.txt transcribes LLVM's own test
// expectations ("RuntimeFunction[i]: Start RVA End RVA ...").
func readUnwind(t testing.TB, path string, h llvmHeaders) []llvmFunction {
	out, err := runErr(nil, tool(t, "llvm-readobj"), "--unwind", path)
	if err != nil {
		rel := "expected/" + filepath.Base(path) + ".expected.txt"
		b, rerr := os.ReadFile(filepath.Join(winetest.SharedDir(t), "testdata", filepath.FromSlash(rel)))
		if rerr != nil {
			t.Fatalf("%v; and no transcription: %v", err, rerr)
		}
		t.Logf("%v; using ../shared/testdata/%s", err, rel)
		var fns []llvmFunction
		for line := range strings.Lines(string(b)) {
			var i int
			var start, end uint64
			if n, _ := fmt.Sscanf(line, "RuntimeFunction[%d]: Start %v End %v", &i, &start, &end); n == 3 {
				fns = append(fns, llvmFunction{start: h.imageBase + start, end: h.imageBase + end})
			}
		}
		return fns
	}
	count := int(h.excSize / 12)
	var fns []llvmFunction
	inChained := false
	for line := range strings.Lines(string(out)) {
		trimmed := strings.TrimSpace(line)
		key, val, _ := strings.Cut(trimmed, ": ")
		switch {
		case trimmed == "RuntimeFunction {":
			fns = append(fns, llvmFunction{})
			inChained = false
		case trimmed == "Chained {":
			inChained = true
		case key == "StartAddress" && inChained:
			fns[len(fns)-1].parent = parseUint(t, val)
		case key == "StartAddress":
			fns[len(fns)-1].start = parseUint(t, val)
		case key == "EndAddress" && !inChained:
			fns[len(fns)-1].end = parseUint(t, val)
		}
	}
	// llvm-readobj lists the whole .pdata section; the directory's Size
	// says how many entries are real. It prints a zero RVA as the offset
	// of the field, below ImageBase: such entries are empty.
	fns = fns[:min(len(fns), count)]
	return slices.DeleteFunc(fns, func(fn llvmFunction) bool {
		return fn.start < h.imageBase || fn.end <= fn.start || fn.end > h.imageBase+uint64(h.sizeOfImage)
	})
}

// expectedCOFF applies the package's documented filter to llvm-readobj's
// records and returns the symbols it should keep, at the address llvm
// computes from the section table.
func expectedCOFF(h llvmHeaders, syms []llvmSymbol) map[nmKey]llvmSymbol {
	want := map[nmKey]llvmSymbol{}
	for _, s := range syms {
		fn := s.complexType == IMAGE_SYM_DTYPE_FUNCTION
		switch s.class {
		case IMAGE_SYM_CLASS_EXTERNAL, IMAGE_SYM_CLASS_WEAK_EXTERNAL:
		case IMAGE_SYM_CLASS_STATIC:
			if s.aux > 0 && !fn {
				continue
			}
		default:
			continue
		}
		sec, ok := h.sections[s.section]
		if s.section <= 0 || !ok || s.name == "" {
			continue
		}
		size := sec.vsize
		if size == 0 {
			size = sec.rawSize
		}
		size = min(size, h.sizeOfImage-min(sec.va, h.sizeOfImage))
		if s.value > size || uint64(sec.va)+uint64(s.value) >= uint64(h.sizeOfImage) {
			continue
		}
		want[nmKey{h.imageBase + uint64(sec.va) + uint64(s.value), s.name}] = s
	}
	return want
}

// oracleCounts are the totals of TestLLVMOracle.
type oracleCounts struct {
	files, images, rejected                           int
	coff, nm, exports, forwarders, sized, unnamed, cv int
}

// TestLLVMOracle compares, for every PE file of the shared test data and
// of debug/pe's testdata, the symbols, exports, CodeView record and
// header fields with what LLVM 14's tools print.
func TestLLVMOracle(t *testing.T) {
	var c oracleCounts
	for _, path := range peFiles(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			c.files++
			checkAgainstLLVM(t, path, &c)
		})
	}
	t.Logf("llvm oracle: %d files (%d images, %d rejected as not images); %d COFF symbols (%d also placed by llvm-nm), %d exports (%d forwarders), "+
		"%d sizes from the exception directory, %d unnamed exception-directory functions, %d CodeView records match",
		c.files, c.images, c.rejected, c.coff, c.nm, c.exports, c.forwarders, c.sized, c.unnamed, c.cv)
}

func checkAgainstLLVM(t *testing.T, path string, c *oracleCounts) {
	h := readHeaders(t, path)
	f, err := Open(path, symfile.Options{})
	if !h.image {
		if !errors.Is(err, symfile.ErrUnrecognized) {
			t.Fatalf("llvm-readobj finds no optional header (a COFF object); Open = %v, want ErrUnrecognized", err)
		}
		c.rejected++
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c.images++
	for _, w := range f.Warnings() {
		t.Logf("warning: %v", w)
	}
	checkSorted(t, f)

	// Identity.
	id := f.Ident()
	if id.Format != "pe" || id.LinkBase != h.imageBase || id.ImageSize != uint64(h.sizeOfImage) ||
		id.SizeOfImage != h.sizeOfImage || id.TimeDateStamp != h.timeDateStamp {
		t.Errorf("Ident = %+v; llvm: ImageBase %#x SizeOfImage %#x TimeDateStamp %#x", id, h.imageBase, h.sizeOfImage, h.timeDateStamp)
	}
	wantCV := readCodeView(t, path)
	switch {
	case wantCV == nil && id.PDB != nil:
		t.Errorf("PDB = %+v, llvm finds none", *id.PDB)
	case wantCV != nil && (id.PDB == nil || *id.PDB != *wantCV):
		t.Errorf("PDB = %+v, llvm: %+v", id.PDB, *wantCV)
	case wantCV != nil:
		c.cv++
	}
	if idt, err := Identify(mustOpenFile(t, path)); err != nil || !identEqual(idt, id) {
		t.Errorf("Identify = %+v, %v; NewFile's Ident = %+v", idt, err, id)
	}

	// COFF symbols: every one llvm lists that the filter keeps is there,
	// at the address llvm-nm prints, with the kind its type letter says.
	llvmSyms := readSymbols(t, path)
	nm := readNM(t, path)
	wantCOFF := expectedCOFF(h, llvmSyms)
	if id.HasSymbols != (len(llvmSyms) > 0 || len(f.Exports()) > 0) {
		t.Errorf("HasSymbols = %v with %d COFF records and %d exports", id.HasSymbols, len(llvmSyms), len(f.Exports()))
	}
	have := map[nmKey]symfile.Symbol{}
	for _, s := range f.Symbols() {
		have[nmKey{s.Addr, s.Name}] = s
	}
	for k, ls := range wantCOFF {
		s, ok := have[k]
		if !ok {
			t.Errorf("COFF symbol %q at %#x missing", k.name, k.addr)
			continue
		}
		c.coff++
		if letters, ok := nm[k]; ok {
			if want := kindOfLetter(letters[0]); s.Kind != want {
				t.Errorf("COFF symbol %q at %#x: kind %v, llvm-nm type %q", k.name, k.addr, s.Kind, letters)
			}
			c.nm++
			continue
		}
		// llvm-nm leaves out STATIC functions with an auxiliary record
		// (it takes them for section definitions): the address is
		// llvm-readobj's, the kind its type.
		if ls.complexType != IMAGE_SYM_DTYPE_FUNCTION || s.Kind != symfile.KindFunction {
			t.Errorf("COFF symbol %q at %#x not listed by llvm-nm, and not a function (kind %v)", k.name, k.addr, s.Kind)
		}
	}

	// Exports, forwarders included.
	wantExp := readExports(t, path)
	fwd := readForwarders(t, path)
	gotExp := f.Exports()
	if len(gotExp) != len(wantExp) {
		t.Errorf("%d exports, llvm-readobj lists %d", len(gotExp), len(wantExp))
	}
	exportAt := map[nmKey]bool{}
	for _, w := range wantExp {
		i := slices.IndexFunc(gotExp, func(e Export) bool { return e.Ordinal == w.ordinal && e.Name == w.name })
		if i < 0 {
			t.Errorf("export %d %q missing", w.ordinal, w.name)
			continue
		}
		e := gotExp[i]
		if e.RVA != w.rva || e.Forwarder != fwd[w.ordinal] {
			t.Errorf("export %d %q: rva %#x forwarder %q; llvm: rva %#x forwarder %q", w.ordinal, w.name, e.RVA, e.Forwarder, w.rva, fwd[w.ordinal])
			continue
		}
		c.exports++
		if e.Forwarder != "" {
			c.forwarders++
			continue
		}
		name := w.name
		if name == "" {
			name = fmt.Sprintf("#%d", w.ordinal)
		}
		k := nmKey{h.imageBase + uint64(w.rva), name}
		exportAt[k] = true
		if _, ok := have[k]; !ok {
			t.Errorf("export %q at %#x not among the symbols", name, k.addr)
		}
	}

	// The exception directory: sizes, and names for unnamed entries.
	sizeAt := map[uint64]uint64{}
	var unnamed []nmKey
	if h.excSize > 0 {
		fns := readUnwind(t, path, h)
		parent := map[uint64]uint64{}
		for _, fn := range fns {
			if fn.end > fn.start {
				sizeAt[fn.start] = max(sizeAt[fn.start], fn.end-fn.start)
				if fn.parent != 0 {
					parent[fn.start] = fn.parent
				}
			}
		}
		funcName := map[uint64]string{}
		for _, s := range f.Symbols() {
			if _, ok := funcName[s.Addr]; !ok && s.Kind == symfile.KindFunction && (inCOFF(wantCOFF, s) || exportAt[nmKey{s.Addr, s.Name}]) {
				funcName[s.Addr] = s.Name
			}
		}
		for _, fn := range fns {
			if fn.end <= fn.start {
				continue
			}
			if _, ok := funcName[fn.start]; ok {
				continue
			}
			root := fn.start
			for range 32 {
				p, ok := parent[root]
				if !ok || p == root {
					break
				}
				root = p
			}
			name, ok := funcName[root]
			if !ok {
				name = fmt.Sprintf("sub_%x", root-h.imageBase)
			}
			unnamed = append(unnamed, nmKey{fn.start, name})
		}
	}
	for _, k := range unnamed {
		s, ok := have[k]
		if !ok {
			t.Errorf("unnamed exception-directory function at %#x: no symbol %q", k.addr, k.name)
			continue
		}
		if s.Size != sizeAt[k.addr] || s.Kind != symfile.KindFunction {
			t.Errorf("%q at %#x: size %#x kind %v, llvm's entry is %#x long", k.name, k.addr, s.Size, s.Kind, sizeAt[k.addr])
		}
		c.unnamed++
	}

	// Nothing else: every symbol comes from one of the three sources,
	// and function sizes are the exception directory's.
	for _, s := range f.Symbols() {
		k := nmKey{s.Addr, s.Name}
		_, coff := wantCOFF[k]
		if !coff && !exportAt[k] && !slices.Contains(unnamed, k) {
			t.Errorf("symbol %q at %#x comes from no source llvm knows", s.Name, s.Addr)
		}
		want := uint64(0)
		if s.Kind == symfile.KindFunction {
			want = sizeAt[s.Addr]
		}
		if s.Size != want {
			t.Errorf("symbol %q at %#x: size %#x, want %#x", s.Name, s.Addr, s.Size, want)
		} else if want != 0 && (coff || exportAt[k]) {
			c.sized++
		}
	}
}

func inCOFF(want map[nmKey]llvmSymbol, s symfile.Symbol) bool {
	_, ok := want[nmKey{s.Addr, s.Name}]
	return ok
}

// kindOfLetter maps llvm-nm's COFF type letters to kinds: code sections
// give t, data sections d (writable), r (read-only), b (uninitialized)
// and i (.idata).
func kindOfLetter(c byte) symfile.Kind {
	switch c {
	case 't', 'T':
		return symfile.KindFunction
	case 'd', 'D', 'r', 'R', 'b', 'B', 'i', 'I':
		return symfile.KindData
	}
	return symfile.KindOther
}

func identEqual(a, b symfile.Ident) bool {
	pa, pb := a.PDB, b.PDB
	a.PDB, b.PDB = nil, nil
	if fmt.Sprint(a) != fmt.Sprint(b) {
		return false
	}
	return (pa == nil) == (pb == nil) && (pa == nil || *pa == *pb)
}

func mustOpenFile(t testing.TB, path string) *os.File {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fh.Close() })
	return fh
}

// checkSorted checks the order Symbols promises and that every symbol
// lies in the image.
func checkSorted(t testing.TB, f *File) {
	t.Helper()
	syms := f.Symbols()
	id := f.Ident()
	for i, s := range syms {
		if s.Addr < id.LinkBase || s.End() > id.LinkBase+id.ImageSize || s.End() < s.Addr {
			t.Fatalf("symbol %d %+v outside the image %#x+%#x", i, s, id.LinkBase, id.ImageSize)
		}
		if i > 0 && symfile.Compare(syms[i-1], s) >= 0 {
			t.Fatalf("symbols %d %+v and %d %+v out of order or duplicated", i-1, syms[i-1], i, s)
		}
	}
}

// llvmSymbolized is one answer of llvm-symbolizer --output-style=JSON.
type llvmSymbolized struct {
	Address string
	Symbol  []struct {
		FunctionName string
		StartLine    int
	}
}

// TestSymbolizer compares the function that the symbols put at every
// function start and at random .text addresses with llvm-symbolizer's
// answer from the DWARF of the MinGW executables.
func TestSymbolizer(t *testing.T) {
	sym := tool(t, "llvm-symbolizer")
	for _, rel := range []string{"pe/symbolic-hello-dwarf.exe", "pe/go-gcc-amd64-mingw-exec"} {
		t.Run(filepath.Base(rel), func(t *testing.T) {
			path := winetest.Testdata(t, rel)
			f, err := Open(path, symfile.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if !f.Ident().HasDebugInfo {
				t.Errorf("HasDebugInfo is false for a MinGW image with DWARF")
			}
			var text llvmSection
			for _, s := range readHeaders(t, path).sections {
				if s.name == ".text" {
					text = s
				}
			}
			base := f.Ident().LinkBase
			var addrs []uint64
			starts := 0
			for _, s := range f.Symbols() {
				if s.Kind == symfile.KindFunction {
					addrs = append(addrs, s.Addr)
					starts++
				}
			}
			rng := rand.New(rand.NewPCG(1, 2))
			for range 500 {
				addrs = append(addrs, base+uint64(text.va)+rng.Uint64N(uint64(text.vsize)))
			}
			var in bytes.Buffer
			for _, a := range addrs {
				fmt.Fprintf(&in, "%#x\n", a)
			}
			out := run(t, in.Bytes(), sym, "--obj="+path, "--output-style=JSON", "--functions=short")
			sc := bufio.NewScanner(bytes.NewReader(out))
			sc.Buffer(nil, 1<<20)
			var agree, clones, noDWARF int
			i := 0
			for ; sc.Scan(); i++ {
				var r llvmSymbolized
				if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
					t.Fatalf("llvm-symbolizer output %q: %v", sc.Text(), err)
				}
				a := addrs[i]
				// The outermost frame names the function. Where no DWARF
				// subprogram covers the address, llvm-symbolizer falls
				// back to its symbol table, sizing symbols by the distance
				// to the next: it then names padding after the function
				// before it. Such answers have no StartLine (the
				// subprogram's DW_AT_decl_line) and are not compared.
				want := ""
				if n := len(r.Symbol); n > 0 && r.Symbol[n-1].StartLine != 0 {
					want = r.Symbol[n-1].FunctionName
				}
				names, inside := containing(f.Symbols(), a)
				switch {
				case want == "" || want == "??":
					// No DWARF function here: padding between functions
					// or code from objects built without -g. The symbols
					// may still name it.
					noDWARF++
				case slices.Contains(names, want):
					agree++
				case slices.ContainsFunc(names, func(n string) bool { return cloneOf(n, want) }):
					// GCC names a clone "f.isra.0", "f.part.0", ... in the
					// symbol table; DWARF names the function it came from.
					agree++
					clones++
				case !inside && len(names) == 0:
					t.Errorf("%#x: no symbol contains it; llvm-symbolizer says %q", a, want)
				default:
					t.Errorf("%#x: symbols say %q, llvm-symbolizer %q", a, names, want)
				}
			}
			if i != len(addrs) {
				t.Fatalf("llvm-symbolizer answered %d of %d addresses", i, len(addrs))
			}
			t.Logf("%s: %d addresses (%d function starts, %d random .text): %d agree with llvm-symbolizer (%d of them GCC clones), %d have no DWARF function, %d mismatches",
				filepath.Base(rel), len(addrs), starts, len(addrs)-starts, agree, clones, noDWARF, len(addrs)-agree-noDWARF)
			if agree == 0 {
				t.Errorf("no address agrees")
			}
			checkFrames(t, sym, path, addrs)
		})
	}
}

// llvmFrames is one answer of llvm-symbolizer --inlines --output-style=JSON.
type llvmFrames struct {
	Symbol []struct {
		FunctionName string
		FileName     string
		Line, Column int
	}
}

// checkFrames compares Frames (from the image's DWARF, through package
// dwarfidx) with llvm-symbolizer --inlines at addrs: function, file, line
// and column of every frame.
func checkFrames(t *testing.T, sym, path string, addrs []uint64) {
	f, err := Open(path, symfile.Options{Lines: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var in bytes.Buffer
	for _, a := range addrs {
		fmt.Fprintf(&in, "%#x\n", a)
	}
	out := run(t, in.Bytes(), sym, "--obj="+path, "--output-style=JSON", "--functions=short", "--inlines")
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	var same, frames, none, bad int
	for i := 0; sc.Scan(); i++ {
		var r llvmFrames
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("llvm-symbolizer output %q: %v", sc.Text(), err)
		}
		var want []symfile.Frame
		for _, s := range r.Symbol {
			if s.FunctionName == "??" {
				s.FunctionName = ""
			}
			if s.FileName == "??" {
				s.FileName = ""
			}
			want = append(want, symfile.Frame{Function: s.FunctionName, File: s.FileName, Line: s.Line, Column: s.Column})
		}
		if len(want) == 1 && want[0] == (symfile.Frame{}) {
			want = nil
		}
		got, err := f.Frames(nil, addrs[i])
		if err != nil {
			t.Errorf("Frames(%#x): %v", addrs[i], err)
		}
		if slices.Equal(got, want) {
			same++
			frames += len(got)
			if len(got) == 0 {
				none++
			}
			continue
		}
		if bad++; bad <= 10 {
			t.Errorf("Frames(%#x):\n got %+v\nwant %+v", addrs[i], got, want)
		}
	}
	t.Logf("%s: Frames agree with llvm-symbolizer --inlines at %d of %d addresses (%d frames; %d with no DWARF), %d differ",
		filepath.Base(path), same, len(addrs), frames, none, bad)
}

// gccClone matches the suffixes GCC gives the clones of a function.
var gccClone = regexp.MustCompile(`^(\.(isra|part|constprop|cold|lto_priv|localalias)(\.\d+)?)+$`)

// cloneOf reports whether sym names a GCC clone of the function named fn.
func cloneOf(sym, fn string) bool {
	rest, ok := strings.CutPrefix(sym, fn)
	return ok && gccClone.MatchString(rest)
}

// containing returns the names of the function symbols that contain addr:
// those at the greatest start <= addr, if their size says they reach it
// (or they have none).
func containing(syms []symfile.Symbol, addr uint64) (names []string, inside bool) {
	var at uint64
	found := false
	for i := len(syms) - 1; i >= 0; i-- {
		s := syms[i]
		if s.Addr > addr || s.Kind != symfile.KindFunction {
			continue
		}
		if found && s.Addr != at {
			break
		}
		found, at = true, s.Addr
		if s.Size == 0 || addr < s.End() {
			names = append(names, s.Name)
			inside = true
		}
	}
	return names, inside
}
