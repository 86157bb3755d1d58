package stackwalk

import (
	"debug/elf"
	"os"
	"testing"

	"github.com/fntable/fntable/internal/testproc"
)

// TestGoTopFrames reads the top-frame functions of a Go program:
// runtime.goexit and runtime.mstart are among them.
func TestGoTopFrames(t *testing.T) {
	ef, err := elf.Open(testproc.BuildGo(t))
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	top := goTopFrames(ef)
	syms, err := ef.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, s := range syms {
		for _, r := range top {
			if s.Value >= r[0] && s.Value < r[1] && s.Value == r[0] {
				found[s.Name] = true
			}
		}
	}
	for _, name := range []string{"runtime.goexit.abi0", "runtime.mstart.abi0"} {
		if !found[name] {
			t.Errorf("%s is not among the %d top-frame functions found (%v)", name, len(top), found)
		}
	}
}

// FuzzGoTopFrames reads arbitrary bytes as a pclntab: no panic.
func FuzzGoTopFrames(f *testing.F) {
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
		for _, r := range parseGoTopFrames(b, 0x400000) {
			if r[1] <= r[0] {
				t.Fatalf("empty range %#x", r)
			}
		}
	})
}
