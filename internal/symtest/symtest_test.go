package symtest

import (
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestRandomAddrs(t *testing.T) {
	exe := CPP(t)
	a := RandomAddrs(t, exe, 1000, 7)
	b := RandomAddrs(t, exe, 1000, 7)
	c := RandomAddrs(t, exe, 1000, 8)
	if !slices.Equal(a, b) {
		t.Error("same seed, different addresses")
	}
	if slices.Equal(a, c) {
		t.Error("different seeds, same addresses")
	}
	f, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, x := range a {
		ok := false
		for _, s := range f.Sections {
			if s.Flags&elf.SHF_EXECINSTR != 0 && s.Addr <= x && x < s.Addr+s.Size {
				ok = true
			}
		}
		if !ok {
			t.Fatalf("%#x is in no executable section", x)
		}
	}
}

func TestSymbolize(t *testing.T) {
	exe := CPP(t)
	f, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	syms, err := f.Symbols()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	var main uint64
	for _, s := range syms {
		if s.Name == "main" {
			main = s.Value
		}
	}
	res := Symbolize(t, exe, []uint64{main, 1}, "--no-demangle")
	if len(res) != 2 || len(res[0].Frames) == 0 || res[0].Frames[len(res[0].Frames)-1].Function != "main" {
		t.Fatalf("main: %+v", res)
	}
	if !res[1].Empty() {
		t.Errorf("address 1: %+v, want nothing", res[1])
	}
}

func TestSplitDebug(t *testing.T) {
	stripped, debug := SplitDebug(t)
	for _, p := range []string{stripped, debug} {
		f, err := elf.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		id, err := buildID(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if p == debug {
			h := fmt.Sprintf("%x", id)
			if _, err := os.Stat(filepath.Join(BuildIDDir(t), ".build-id", h[:2], h[2:]+".debug")); err != nil {
				t.Error(err)
			}
		}
	}
}

// TestWriteBench builds every binary and, when SYMTEST_BENCH_DIR is set,
// links them there with 10,000 random addresses each (seed 1), for
// bench/symbolize.sh.
func TestWriteBench(t *testing.T) {
	dir := os.Getenv("SYMTEST_BENCH_DIR")
	if dir == "" {
		t.Skip("SYMTEST_BENCH_DIR is not set")
	}
	_, debug := SplitDebug(t)
	for _, b := range []struct{ name, path string }{
		{"sqlite", SQLite(t)}, {"cpp", CPP(t)}, {"go", Go(t)}, {"split", debug},
	} {
		src := b.path
		if b.name == "split" {
			src, _ = SplitDebug(t)
		}
		var buf []byte
		for _, a := range RandomAddrs(t, src, 10000, 1) {
			buf = fmt.Appendf(buf, "%#x\n", a)
		}
		if err := os.WriteFile(filepath.Join(dir, b.name+".addrs"), buf, 0o644); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(dir, b.name)
		os.Remove(link)
		if err := os.Symlink(b.path, link); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPrograms runs the test programs: they are real programs, and the
// SQLite one queries an in-memory database.
func TestPrograms(t *testing.T) {
	if testing.Short() {
		t.Skip("builds SQLite")
	}
	stripped, _ := SplitDebug(t)
	for _, c := range []struct {
		name, path, want string
	}{
		{"sqlite", SQLite(t), "6 one,two,three\n"},
		{"cpp", CPP(t), "circle=7\nrect=13\n"},
		{"go", Go(t), "5,6 6,5 "},
		{"gostripped", GoStripped(t), "5,6 6,5 "},
		{"split", stripped, ""},
	} {
		out, err := exec.Command(c.path).Output()
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !strings.Contains(string(out), c.want) {
			t.Errorf("%s printed %q, want it to contain %q", c.name, out, c.want)
		}
	}
}
