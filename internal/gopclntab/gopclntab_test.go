package gopclntab

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/fntable/fntable/cfi"
	"github.com/fntable/fntable/internal/testenv"
)

// build builds a test program of this module with ldflags and env.
func build(t *testing.T, pkg, ldflags string, env ...string) string {
	t.Helper()
	goCmd := testenv.Tool(t, "go")
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command(goCmd, "build", "-ldflags="+ldflags, "-o", out, "github.com/fntable/fntable/"+pkg)
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

func openELF(t *testing.T, path string) *elf.File {
	t.Helper()
	ef, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ef.Close() })
	return ef
}

// TestTextStart finds runtime.text without a symbol table (go build
// -ldflags=-s -w, as go run builds) where it is with one, for an
// internally linked program and an externally linked (cgo) one, whose
// .text starts with C code.
func TestTextStart(t *testing.T) {
	for _, c := range []struct{ pkg, cgo string }{
		{"internal/testproc/testdata/goprog", "CGO_ENABLED=0"},
		{"internal/testproc/testdata/jitprog", "CGO_ENABLED=1"},
	} {
		t.Run(filepath.Base(c.pkg), func(t *testing.T) {
			if c.cgo == "CGO_ENABLED=1" {
				testenv.Tool(t, "gcc")
			}
			full := openELF(t, build(t, c.pkg, "", c.cgo))
			stripped := openELF(t, build(t, c.pkg, "-s -w", c.cgo))
			want := TextStart(full)
			if want == 0 {
				t.Fatal("no runtime.text in the program with a symbol table")
			}
			if _, err := stripped.Symbols(); err == nil {
				t.Fatal("the stripped program has a symbol table")
			}
			if got := TextStart(stripped); got != want {
				t.Errorf("TextStart of the stripped program %#x, want %#x (.text at %#x)", got, want, stripped.Section(".text").Addr)
			}
		})
	}
}

// TestFuncsAndSPDelta checks the functions against the symbol table, and
// SPDelta against the CFA rules of the .debug_frame the Go linker writes
// from the same pcsp tables, at every row of every Go function.
func TestFuncsAndSPDelta(t *testing.T) {
	path := build(t, "internal/testproc/testdata/goprog", "", "CGO_ENABLED=0")
	ef := openELF(t, path)
	tab, err := Open(ef)
	if err != nil {
		t.Fatal(err)
	}
	// The mapped table is the same as the copied one.
	mapped, err := OpenFile(path, ef)
	if err != nil {
		t.Fatal(err)
	}
	if mapped.Len() != tab.Len() || mapped.text != tab.text || string(mapped.ftab) != string(tab.ftab) || string(mapped.pctab) != string(tab.pctab) {
		t.Fatalf("OpenFile's table differs from Open's")
	}
	syms, err := ef.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	addrs := map[uint64]bool{}
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC {
			addrs[s.Value] = true
		}
	}
	for i := range tab.Len() {
		f, ok := tab.Func(i)
		if !ok || !addrs[f.Entry] || f.End <= f.Entry {
			t.Fatalf("function %d: %+v (ok %v): no function symbol at its entry", i, f, ok)
		}
		if g, ok := tab.FuncAt(f.Entry); !ok || g != f {
			t.Fatalf("FuncAt(%#x) = %+v, %v, want %+v", f.Entry, g, ok, f)
		}
		if g, ok := tab.FuncAt(f.End - 1); !ok || g != f {
			t.Fatalf("FuncAt(%#x) = %+v, %v, want %+v", f.End-1, g, ok, f)
		}
	}

	cf, err := cfi.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer cf.Close()
	rows, checked := 0, 0
	err = cf.FDEs(func(fde cfi.FDE) bool {
		f, ok := tab.FuncAt(fde.Begin)
		if !ok || f.Entry != fde.Begin {
			return true // not a Go function
		}
		rs, err := cf.RowsOf(fde)
		if err != nil {
			t.Fatal(err)
		}
		for k, r := range rs {
			if r.CFA.Kind != cfi.RuleCFA || r.CFA.Reg != 7 { // rsp
				continue
			}
			end := fde.End
			if k+1 < len(rs) {
				end = rs[k+1].Loc
			}
			if end <= r.Loc {
				continue // an empty row
			}
			rows++
			for _, pc := range []uint64{r.Loc, end - 1} {
				d, ok := tab.SPDelta(f, pc)
				if !ok || d+8 != r.CFA.Offset {
					t.Errorf("%#x (function at %#x): SPDelta %d, %v; .debug_frame says CFA = rsp+%d", pc, f.Entry, d, ok, r.CFA.Offset)
					return false
				}
				checked++
			}
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if rows < 1000 {
		t.Errorf("only %d CFA rows compared", rows)
	}
	t.Logf("%d functions, %d CFA rows, %d addresses agree with .debug_frame", tab.Len(), rows, checked)
}

// FuzzParse reads arbitrary bytes as a pclntab: no panic, no endless loop.
func FuzzParse(f *testing.F) {
	if exe, err := os.Executable(); err == nil {
		if ef, err := elf.Open(exe); err == nil {
			if s := ef.Section(".gopclntab"); s != nil {
				if b, err := s.Data(); err == nil && len(b) > 8192 {
					f.Add(b[:8192])
				}
			}
			ef.Close()
		}
	}
	f.Add([]byte{0xf1, 0xff, 0xff, 0xff, 0, 0, 1, 8})
	f.Fuzz(func(t *testing.T, b []byte) {
		tab, err := Parse(b, 0x400000)
		if err != nil {
			return
		}
		for i := range min(tab.Len(), 64) {
			fn, ok := tab.Func(i)
			if !ok {
				continue
			}
			tab.FuncAt(fn.Entry)
			for pc := fn.Entry; pc < fn.End && pc < fn.Entry+64; pc++ {
				tab.SPDelta(fn, pc)
			}
		}
	})
}
