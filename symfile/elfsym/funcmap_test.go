package elfsym

import (
	"debug/elf"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/fntable/fntable/internal/symtest"
	"github.com/fntable/fntable/symfile"
)

func TestFunctionMapLookup(t *testing.T) {
	m := &FunctionMap{syms: []symfile.Symbol{
		{Name: "a", Addr: 0x100, Size: 0x10},
		{Name: "nosize", Addr: 0x200},
		{Name: "b", Addr: 0x300, Size: 0x20},
		{Name: "last", Addr: 0x400},
	}}
	for _, c := range []struct {
		name string
		addr uint64
		want string // "" for none
	}{
		{"before the first", 0xff, ""},
		{"at begin", 0x100, "a"},
		{"at end-1", 0x10f, "a"},
		{"at end", 0x110, ""},
		{"size 0 covers up to the next", 0x2ff, "nosize"},
		{"past a sized symbol", 0x320, ""},
		{"the last without a size covers the rest", 1 << 60, "last"},
	} {
		s, ok := m.Lookup(c.addr)
		if got := s.Name; !ok && got != "" || ok && got == "" || got != c.want {
			t.Errorf("%s: Lookup(%#x) = %q, %v; want %q", c.name, c.addr, got, ok, c.want)
		}
	}
	var nilMap *FunctionMap
	if _, ok := nilMap.Lookup(0x100); ok || nilMap.Len() != 0 {
		t.Error("a nil map names an address")
	}
}

// TestFunctionMapLLVM checks the map against llvm-symbolizer where the
// choice is hard: at every address where the symbol table has several
// functions (aliases, versions), and at the first byte of every other
// function, the outermost frame must be named as llvm-symbolizer names it.
func TestFunctionMapLLVM(t *testing.T) {
	for _, c := range []struct{ name, path string }{
		{"libc", "/lib/x86_64-linux-gnu/libc.so.6"},
		{"libstdc++", libstdcxxDebug()},
		{"go", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := c.path
			if path == "" {
				path = symtest.Go(t)
			} else if _, err := os.Stat(path); err != nil || path == "none" {
				unavailable(t, "needs %s", path)
			}
			f, err := Open(path, symfile.Options{PublicsOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			m := f.FunctionMap()
			if m.Len() == 0 {
				t.Fatal("empty map")
			}
			starts := map[uint64]int{}
			tab, _ := symbolTable(f.f, f.file)
			defer tab.release()
			tab.each(func(s rawSym) {
				if s.Section != elf.SHN_UNDEF && s.Section < elf.SHN_LORESERVE && elf.ST_TYPE(s.Info) == elf.STT_FUNC {
					starts[s.Value]++
				}
			})
			var addrs []uint64
			ties := 0
			for a, n := range starts {
				if n > 1 {
					ties++
					addrs = append(addrs, a)
				} else if len(addrs) < 4000 {
					addrs = append(addrs, a)
				}
			}
			slices.Sort(addrs)
			want := symtest.Symbolize(t, path, addrs, "--no-demangle")
			bad := 0
			for i, a := range addrs {
				w := want[i].Frames
				s, ok := m.Lookup(a)
				if len(w) == 0 || !ok {
					t.Errorf("%#x: llvm %v, map %v", a, w, ok)
					continue
				}
				if got := s.Name; got != w[len(w)-1].Function {
					if bad++; bad <= 10 {
						t.Errorf("%#x: map names %s, llvm-symbolizer %s", a, got, w[len(w)-1].Function)
					}
				}
			}
			t.Logf("%d addresses (%d with several functions), %d named otherwise", len(addrs), ties, bad)
		})
	}
}

// libstdcxxDebug returns Debian's libstdc++ debug build
// (libstdc++6-*-dbg), whose .symtab has many aliases; "none" when it is
// not installed.
func libstdcxxDebug() string {
	m, _ := filepath.Glob("/usr/lib/x86_64-linux-gnu/debug/libstdc++.so.6.*")
	if len(m) == 0 {
		return "none"
	}
	return m[0]
}
