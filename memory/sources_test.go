package memory_test

import (
	"errors"
	"os"
	"testing"

	"github.com/fntable/fntable/internal/procmem"
	"github.com/fntable/fntable/memory"
	"github.com/fntable/fntable/minidump"
	"github.com/fntable/fntable/peimage"
	"github.com/fntable/fntable/target"
	"github.com/fntable/fntable/unwind"
)

// The names other packages had for the memory errors are this package's.
var (
	_ *memory.UnmappedError = (*unwind.UnmappedError)(nil)
	_ *memory.UnmappedError = (*minidump.UnmappedError)(nil)
	_ *memory.UnmappedError = (*peimage.UnmappedError)(nil)
	_ memory.Reader         = unwind.Memory(nil)
	_ memory.Reader         = target.Memory(nil)
	_ memory.Reader         = peimage.Memory(nil)
)

func TestOneSetOfErrors(t *testing.T) {
	for name, err := range map[string]error{
		"unwind":   unwind.ErrShortRead,
		"minidump": minidump.ErrShortRead,
	} {
		if err != memory.ErrShortRead {
			t.Errorf("%s.ErrShortRead is not memory.ErrShortRead", name)
		}
	}
}

// TestSources reads unmapped memory from several sources: each error
// matches the same sentinel and type.
func TestSources(t *testing.T) {
	var sm unwind.SplicedMemory
	sm.Add(0x1000, make([]byte, 16))
	sources := map[string]memory.Reader{"spliced": &sm}
	if p, err := procmem.Open(os.Getpid()); err == nil {
		defer p.Close()
		sources["procmem"] = p
	}
	for name, r := range sources {
		var b [32]byte
		n, err := r.ReadMemory(b[:], 0x1000)
		var ue *memory.UnmappedError
		if !errors.Is(err, memory.ErrShortRead) || !errors.As(err, &ue) {
			t.Errorf("%s: read %d bytes, %v; want an UnmappedError", name, n, err)
		}
	}
}
