package stackwalk

import (
	"debug/elf"
	"testing"

	"github.com/fntable/fntable/internal/gopclntab"
	"github.com/fntable/fntable/internal/testproc"
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
