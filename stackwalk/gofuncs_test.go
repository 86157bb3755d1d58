package stackwalk

import (
	"debug/elf"
	"os"
	"testing"

	"github.com/fntable/fntable/internal/testproc"
)

// TestGoFuncs reads the special functions of a Go program: runtime.goexit
// and runtime.mstart are top frames, runtime.mcall and runtime.morestack
// write SP, and runtime.asmcgocall is the way into C.
func TestGoFuncs(t *testing.T) {
	ef, err := elf.Open(testproc.BuildGo(t))
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	fs := goFuncs(ef)
	syms, err := ef.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]goKind{}
	for _, s := range syms {
		for _, f := range fs {
			if s.Value == f.lo {
				found[s.Name] = f.kind
			}
		}
	}
	want := map[string]goKind{
		"runtime.goexit.abi0":     goTop,
		"runtime.mstart.abi0":     goTop,
		"runtime.mcall":           goSPWrite,
		"runtime.morestack.abi0":  goSPWrite,
		"runtime.asmcgocall.abi0": goCgoCall,
	}
	for name, k := range want {
		if found[name] != k {
			t.Errorf("%s: kind %d, want %d (%d special functions found: %v)", name, found[name], k, len(fs), found)
		}
	}
}

// FuzzGoFuncs reads arbitrary bytes as a pclntab: no panic.
func FuzzGoFuncs(f *testing.F) {
	if exe, err := os.Executable(); err == nil {
		if ef, err := elf.Open(exe); err == nil {
			if s := ef.Section(".gopclntab"); s != nil {
				if b, err := s.Data(); err == nil && len(b) > 4096 {
					f.Add(b[:4096])
				}
			}
			ef.Close()
		}
	}
	f.Add([]byte{0xf1, 0xff, 0xff, 0xff, 0, 0, 1, 8})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, f := range parseGoFuncs(b, 0x400000) {
			if f.hi <= f.lo || f.kind == goNormal {
				t.Fatalf("bad special function %+v", f)
			}
		}
	})
}
