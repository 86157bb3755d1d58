package memory_test

import (
	"errors"
	"io"
	"testing"

	"github.com/fntable/fntable/memory"
)

// bytesAt is a Reader of data at base; reads past it are unmapped.
type bytesAt struct {
	base uint64
	data []byte
}

func (b bytesAt) ReadMemory(p []byte, addr uint64) (int, error) {
	if addr < b.base || addr-b.base >= uint64(len(b.data)) {
		return 0, &memory.UnmappedError{Addr: addr}
	}
	n := copy(p, b.data[addr-b.base:])
	if n < len(p) {
		return n, &memory.UnmappedError{Addr: addr + uint64(n)}
	}
	return n, nil
}

func TestReaderAt(t *testing.T) {
	m := bytesAt{base: 0x1000, data: []byte("0123456789")}
	r := memory.ReaderAt(m, 0x1000, 8) // the last two bytes are past size
	p := make([]byte, 4)
	if n, err := r.ReadAt(p, 2); n != 4 || err != nil || string(p) != "2345" {
		t.Errorf("ReadAt(2) = %d, %v, %q", n, err, p)
	}
	if n, err := r.ReadAt(p, 6); n != 2 || err != io.EOF || string(p[:2]) != "67" {
		t.Errorf("ReadAt(6) = %d, %v: want the 2 bytes before size and io.EOF", n, err)
	}
	if n, err := r.ReadAt(p, 8); n != 0 || err != io.EOF {
		t.Errorf("ReadAt(8) = %d, %v: want io.EOF", n, err)
	}
	if n, err := r.ReadAt(p, -1); n != 0 || err != io.EOF {
		t.Errorf("ReadAt(-1) = %d, %v: want io.EOF", n, err)
	}
	big := memory.ReaderAt(m, 0x1000, 100)
	var ue *memory.UnmappedError
	if n, err := big.ReadAt(p, 8); n != 2 || !errors.As(err, &ue) || ue.Addr != 0x100a {
		t.Errorf("ReadAt past the memory = %d, %v: want 2 bytes and the Reader's UnmappedError", n, err)
	}
}
