package elfsym

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/fntable/fntable/internal/symtest"
	"github.com/fntable/fntable/internal/testenv"
	"github.com/fntable/fntable/symfile"
)

// unavailable skips the test, or fails it under CI (see internal/testenv).
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	testenv.Unavailable(t, format, args...)
}

func TestIdentifySplit(t *testing.T) {
	stripped, debug := symtest.SplitDebug(t)
	debugData, err := os.ReadFile(debug)
	if err != nil {
		t.Fatal(err)
	}
	r, err := os.Open(stripped)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	id, err := Identify(r)
	if err != nil {
		t.Fatal(err)
	}
	if id.Format != "elf" {
		t.Errorf("Format = %q", id.Format)
	}
	if id.DebugLink != filepath.Base(debug) {
		t.Errorf("DebugLink = %q, want %q", id.DebugLink, filepath.Base(debug))
	}
	if want := crc32.ChecksumIEEE(debugData); id.DebugLinkCRC != want {
		t.Errorf("DebugLinkCRC = %#x, want %#x", id.DebugLinkCRC, want)
	}
	if len(id.BuildID) != 20 {
		t.Errorf("BuildID = %x, want 20 bytes (sha1)", id.BuildID)
	}
	if id.HasDebugInfo {
		t.Error("stripped file: HasDebugInfo")
	}
	if !id.HasSymbols {
		t.Error("stripped file keeps .dynsym: HasSymbols is false")
	}

	f, err := Open(debug, symfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	did := f.Ident()
	if !bytes.Equal(did.BuildID, id.BuildID) {
		t.Errorf("debug file BuildID %x, stripped file %x", did.BuildID, id.BuildID)
	}
	if !did.HasDebugInfo || !did.HasSymbols {
		t.Errorf("debug file: HasDebugInfo %v HasSymbols %v", did.HasDebugInfo, did.HasSymbols)
	}
	if did.LinkBase != id.LinkBase || did.ImageSize != id.ImageSize {
		t.Errorf("debug file layout %#x+%#x, stripped %#x+%#x", did.LinkBase, did.ImageSize, id.LinkBase, id.ImageSize)
	}
	// The build-ID directory holds the debug file under its ID.
	p := filepath.Join(symtest.BuildIDDir(t), ".build-id", hexs(id.BuildID[:1]), hexs(id.BuildID[1:])+".debug")
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, debugData) {
		t.Errorf("%s: %v", p, err)
	}
}

func hexs(b []byte) string {
	const digits = "0123456789abcdef"
	var s strings.Builder
	for _, c := range b {
		s.WriteByte(digits[c>>4])
		s.WriteByte(digits[c&15])
	}
	return s.String()
}

// readelfLayout computes LinkBase and ImageSize from readelf -lW's program
// headers, an implementation independent of debug/elf.
func readelfLayout(t *testing.T, path string) (base, size uint64) {
	out, err := exec.Command("readelf", "-lW", path).Output()
	if err != nil {
		unavailable(t, "needs readelf: %v", err)
	}
	lo, hi := ^uint64(0), uint64(0)
	var loOff uint64
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || f[0] != "LOAD" {
			continue
		}
		off, _ := strconv.ParseUint(f[1], 0, 64)
		va, _ := strconv.ParseUint(f[2], 0, 64)
		memsz, _ := strconv.ParseUint(f[5], 0, 64)
		if va < lo {
			lo, loOff = va, off
		}
		hi = max(hi, va+memsz)
	}
	base = (lo - loOff) &^ 0xfff
	return base, hi - base
}

func TestLayout(t *testing.T) {
	for _, c := range []struct {
		name string
		path string
		pie  bool
	}{
		{"pie", symtest.CPP(t), true},
		{"non-pie", symtest.Go(t), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, err := Open(c.path, symfile.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			id := f.Ident()
			base, size := readelfLayout(t, c.path)
			if id.LinkBase != base || id.ImageSize != size {
				t.Errorf("layout %#x+%#x, readelf %#x+%#x", id.LinkBase, id.ImageSize, base, size)
			}
			if c.pie != (f.f.Type == elf.ET_DYN) {
				t.Errorf("type %v", f.f.Type)
			}
			if c.pie && id.LinkBase != 0 {
				t.Errorf("PIE LinkBase = %#x, want 0", id.LinkBase)
			}
			if !c.pie && id.LinkBase == 0 {
				t.Error("non-PIE LinkBase = 0")
			}
			if c.name == "non-pie" && id.GoBuildID == "" {
				t.Error("Go binary without GoBuildID")
			}
		})
	}
}

// checkSymbols checks the Symbols contract.
func checkSymbols(t *testing.T, syms []symfile.Symbol) {
	t.Helper()
	sorted := slices.Clone(syms)
	slices.SortFunc(sorted, symfile.Compare)
	if !slices.Equal(sorted, syms) {
		t.Error("symbols are not sorted")
	}
	for i, s := range syms {
		if s.Name == "" {
			t.Errorf("symbol %d at %#x has no name", i, s.Addr)
		}
		if i > 0 && syms[i-1] == s {
			t.Errorf("duplicate symbol %+v", s)
		}
	}
}

func TestDynsymOnly(t *testing.T) {
	path := "/bin/true"
	ef, err := elf.Open(path)
	if err != nil {
		unavailable(t, "needs an ELF %s: %v", path, err)
	}
	hasSymtab := ef.Section(".symtab") != nil
	dyn, _ := ef.DynamicSymbols()
	ef.Close()
	if hasSymtab {
		t.Skipf("%s has a .symtab", path)
	}
	f, err := Open(path, symfile.Options{Lines: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms := f.Symbols()
	checkSymbols(t, syms)
	if !f.Ident().HasSymbols {
		t.Error("HasSymbols is false")
	}
	defined := 0
	for _, s := range dyn {
		if s.Section != elf.SHN_UNDEF && s.Name != "" && elf.ST_TYPE(s.Info) != elf.STT_SECTION {
			defined++
			if !slices.ContainsFunc(syms, func(x symfile.Symbol) bool { return x.Name == s.Name && x.Addr == s.Value }) {
				t.Errorf("missing %s at %#x", s.Name, s.Value)
			}
		}
	}
	if defined == 0 || len(syms) != defined {
		t.Errorf("%d symbols, %d defined in .dynsym", len(syms), defined)
	}
}

func TestSymbols(t *testing.T) {
	for _, c := range []struct {
		name, path, want string
	}{
		{"cpp", symtest.CPP(t), "main"},
		{"go", symtest.Go(t), "main.main"},
		{"gostripped", symtest.GoStripped(t), "main.main"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, err := Open(c.path, symfile.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			syms := f.Symbols()
			checkSymbols(t, syms)
			i := slices.IndexFunc(syms, func(s symfile.Symbol) bool { return s.Name == c.want })
			if i < 0 {
				t.Fatalf("no %s among %d symbols", c.want, len(syms))
			}
			s := syms[i]
			if s.Kind != symfile.KindFunction || s.Size == 0 {
				t.Errorf("%+v", s)
			}
			// Without Lines, Frames gives the containing function only.
			fr, err := f.Frames(nil, s.Addr)
			if err != nil || len(fr) != 1 || fr[0].Function != c.want || fr[0].Line != 0 {
				t.Errorf("Frames(%#x) = %v, %v", s.Addr, fr, err)
			}
		})
	}
}

func TestFunctions(t *testing.T) {
	// The debug file's DWARF functions match its symbol table.
	_, debug := symtest.SplitDebug(t)
	f, err := Open(debug, symfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fns := f.dw.Functions()
	checkSymbols(t, fns)
	syms := f.Symbols()
	// main has a cold part, count is inlined: a symbol-table function
	// starts one of the DWARF ranges of the same name.
	for _, name := range []string{"main", "checksum"} {
		j := slices.IndexFunc(syms, func(s symfile.Symbol) bool { return s.Name == name })
		if j < 0 {
			t.Fatalf("no %s in the symbol table", name)
		}
		if !slices.ContainsFunc(fns, func(s symfile.Symbol) bool { return s.Name == name && s.Addr == syms[j].Addr }) {
			t.Errorf("%s at %#x is not among the DWARF functions", name, syms[j].Addr)
		}
	}
}

func TestUnrecognized(t *testing.T) {
	for _, data := range [][]byte{nil, []byte("MZ\x90\x00"), []byte("#!/bin/sh\n")} {
		_, err := NewFile(bytes.NewReader(data), symfile.Options{})
		if !errors.Is(err, symfile.ErrUnrecognized) {
			t.Errorf("NewFile(%q) = %v, want ErrUnrecognized", data, err)
		}
		_, err = Identify(bytes.NewReader(data))
		if !errors.Is(err, symfile.ErrUnrecognized) {
			t.Errorf("Identify(%q) = %v, want ErrUnrecognized", data, err)
		}
	}
	// ELF magic followed by garbage is malformed, not unrecognized.
	_, err := NewFile(bytes.NewReader([]byte("\x7fELF\x09\x09\x09")), symfile.Options{})
	if !errors.Is(err, ErrMalformed) {
		t.Errorf("bad ELF header: %v, want ErrMalformed", err)
	}
}

// vdso returns this process's vDSO mapping from /proc/self/maps.
func vdso(t *testing.T) (start, end uint64) {
	m, err := os.Open("/proc/self/maps")
	if err != nil {
		unavailable(t, "needs /proc/self/maps: %v", err)
	}
	defer m.Close()
	sc := bufio.NewScanner(m)
	for sc.Scan() {
		if !strings.HasSuffix(sc.Text(), "[vdso]") {
			continue
		}
		lo, hi, _ := strings.Cut(strings.Fields(sc.Text())[0], "-")
		s, _ := strconv.ParseUint(lo, 16, 64)
		e, _ := strconv.ParseUint(hi, 16, 64)
		return s, e
	}
	unavailable(t, "no [vdso] in /proc/self/maps")
	return 0, 0
}

func TestVDSO(t *testing.T) {
	start, end := vdso(t)
	mem, err := os.Open("/proc/self/mem")
	if err != nil {
		unavailable(t, "needs /proc/self/mem: %v", err)
	}
	defer mem.Close()
	r := io.NewSectionReader(mem, int64(start), int64(end-start))
	f, err := NewFile(r, symfile.Options{Lines: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	id := f.Ident()
	if id.ImageSize == 0 || id.ImageSize > end-start {
		t.Errorf("ImageSize %#x, mapping %#x", id.ImageSize, end-start)
	}
	syms := f.Symbols()
	checkSymbols(t, syms)
	// The version names (LINUX_2.6) are absolute symbols of value 0: no
	// address is in them.
	for _, s := range syms {
		if strings.HasPrefix(s.Name, "LINUX_") {
			t.Errorf("absolute symbol %+v among the symbols", s)
		}
	}
	i := slices.IndexFunc(syms, func(s symfile.Symbol) bool {
		return s.Name == "__vdso_clock_gettime" || s.Name == "clock_gettime"
	})
	if i < 0 {
		t.Fatalf("no clock_gettime among %v", syms)
	}
	s := syms[i]
	if s.Kind != symfile.KindFunction {
		t.Errorf("%+v", s)
	}
	// Loaded at start, the function lies inside the mapping.
	if a := s.Addr - id.LinkBase + start; a < start || a >= end {
		t.Errorf("%s at %#x, outside [%#x, %#x)", s.Name, a, start, end)
	}
	if fr, err := f.Frames(nil, s.Addr); err != nil || len(fr) != 0 {
		t.Errorf("Frames in the vDSO (no DWARF) = %v, %v", fr, err)
	}
}
