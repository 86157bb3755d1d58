package stackwalk

import (
	"debug/elf"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/fntable/fntable/internal/filemap"
	"github.com/fntable/fntable/internal/gopclntab"
	"github.com/fntable/fntable/internal/testproc"
	"github.com/fntable/fntable/unwind"
)

// TestGoFuncs classifies the special functions of a Go program:
// runtime.goexit and runtime.mstart are top frames, runtime.mcall and
// runtime.morestack write SP, and runtime.asmcgocall is the way into C.
func TestGoFuncs(t *testing.T) {
	ef, err := elf.Open(testproc.BuildGo(t))
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	tab, err := gopclntab.Open(ef)
	if err != nil {
		t.Fatal(err)
	}
	syms, err := ef.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]goKind{
		"runtime.goexit.abi0":     goTop,
		"runtime.mstart.abi0":     goTop,
		"runtime.mcall":           goSPWrite,
		"runtime.morestack.abi0":  goSPWrite,
		"runtime.asmcgocall.abi0": goCgoCall,
		"runtime.main":            goNormal,
	}
	found := 0
	for _, s := range syms {
		k, ok := want[s.Name]
		if !ok {
			continue
		}
		f, ok := tab.FuncAt(s.Value)
		if !ok || f.Entry != s.Value {
			t.Errorf("%s at %#x: not a function of the pclntab (%+v)", s.Name, s.Value, f)
			continue
		}
		if got := goFuncKind(f); got != k {
			t.Errorf("%s: kind %d, want %d", s.Name, got, k)
		}
		found++
	}
	if found != len(want) {
		t.Errorf("found %d of the %d functions", found, len(want))
	}
}

// TestGoTableShrank: a Go binary truncated after its pclntab was mapped
// makes goStep fail with filemap.ErrChanged and goFuncAt find nothing,
// instead of ending the process.
func TestGoTableShrank(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(t.TempDir(), "prog")
	if err := os.WriteFile(name, data, 0o755); err != nil {
		t.Fatal(err)
	}
	ef, err := elf.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	tab, err := gopclntab.OpenFile(name, ef)
	if err != nil {
		t.Fatal(err)
	}
	if !tab.Mapping().Any() {
		t.Skip("the pclntab was read, not mapped, on this system")
	}
	fn, ok := tab.Func(tab.Len() / 2)
	if !ok {
		t.Fatal("no function in the middle of the table")
	}
	if _, ok := goFuncAt(tab, fn.Entry); !ok {
		t.Fatal("goFuncAt before the file shrank found nothing")
	}
	last, _ := tab.Func(tab.Len() - 1)
	if err := os.Truncate(name, 0); err != nil {
		t.Fatal(err)
	}
	if _, ok := goFuncAt(tab, last.Entry); ok {
		t.Error("goFuncAt after the file shrank found a function")
	}
	ctx := unwind.Context{Rsp: 0x1000}
	if _, _, err := goStep(tab, nil, &ctx, last.Entry); !errors.Is(err, filemap.ErrChanged) {
		t.Errorf("goStep after the file shrank: %v, want filemap.ErrChanged", err)
	}
}
