package live_test

import (
	"os"
	"runtime"
	"testing"
	"unsafe"

	"github.com/fntable/fntable/target"
	"github.com/fntable/fntable/target/live"
)

var marker = [8]byte{'f', 'n', 't', 'a', 'b', 'l', 'e', '!'}

func TestSelf(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs linux: reads /proc")
	}
	p, err := live.Open(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var got [8]byte
	if _, err := p.ReadMemory(got[:], uint64(uintptr(unsafe.Pointer(&marker)))); err != nil || got != marker {
		t.Fatalf("ReadMemory = %q, %v; want %q", got, err, marker)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var self, vdso *target.Module
	var prev uint64
	err = p.Modules(func(m target.Module) bool {
		if m.Base < prev {
			t.Errorf("modules out of order at %+v", m)
		}
		prev = m.Base
		switch {
		case m.Path == exe:
			self = &m
		case m.Name == "[vdso]":
			vdso = &m
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if self == nil {
		t.Fatalf("the test binary %s is not among the modules", exe)
	}
	if pc := uint64(funcPC()); pc < self.Base || pc >= self.End() {
		t.Errorf("a function of the test binary at %#x is outside its module [%#x, %#x)", pc, self.Base, self.End())
	}
	// The image starts at Base: its ELF magic is there.
	var magic [4]byte
	if _, err := p.ReadMemory(magic[:], self.Base); err != nil || string(magic[:]) != "\x7fELF" {
		t.Errorf("bytes at the module's base = %q, %v; want the ELF magic", magic, err)
	}
	if vdso == nil || !vdso.InMemory {
		t.Errorf("no in-memory [vdso] module: %+v", vdso)
	} else if _, err := p.ReadMemory(magic[:], vdso.Base); err != nil || string(magic[:]) != "\x7fELF" {
		t.Errorf("bytes at the vDSO's base = %q, %v; want the ELF magic", magic, err)
	}
	r, c, err := p.OpenModule(*self)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := r.ReadAt(magic[:], 0); err != nil || string(magic[:]) != "\x7fELF" {
		t.Errorf("OpenModule's file starts with %q, %v", magic, err)
	}
	if n := 0; p.Modules(func(target.Module) bool { n++; return false }) != target.ErrStopped {
		t.Error("a stopped enumeration does not return ErrStopped")
	}
}

//go:noinline
func funcPC() uintptr {
	pc, _, _, _ := runtime.Caller(0)
	return pc
}

func TestOpenBadPid(t *testing.T) {
	for _, pid := range []int{0, -1, 1 << 30} {
		if p, err := live.Open(pid); err == nil {
			p.Close()
			t.Errorf("Open(%d) succeeded", pid)
		}
	}
}
