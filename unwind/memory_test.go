package unwind

import (
	"bytes"
	"errors"
	"testing"

	"github.com/fntable/fntable/unwindinfo"
)

func TestSplicedMemory(t *testing.T) {
	var m SplicedMemory
	m.Add(0x1000, bytes.Repeat([]byte{1}, 0x100))
	m.Add(0x1080, bytes.Repeat([]byte{2}, 0x10))   // on top
	m.Add(0xffffffffffffff00, make([]byte, 0x200)) // wraps: ignored
	p := make([]byte, 0x100)
	n, err := m.ReadMemory(p, 0x1000)
	if err != nil || n != 0x100 || p[0x7f] != 1 || p[0x80] != 2 || p[0x8f] != 2 || p[0x90] != 1 {
		t.Fatalf("read: n=%d err=%v", n, err)
	}
	if _, ok := m.Bytes(0x1070, 0x20); ok {
		t.Error("Bytes across a later region must fail")
	}
	if b, ok := m.Bytes(0x1082, 4); !ok || !bytes.Equal(b, []byte{2, 2, 2, 2}) {
		t.Error("Bytes in the top region")
	}
	n, err = m.ReadMemory(p[:0x20], 0x10f0)
	var ue *UnmappedError
	if n != 0x10 || !errors.As(err, &ue) || ue.Addr != 0x1100 || !errors.Is(err, ErrShortRead) {
		t.Errorf("short read: n=%#x err=%v", n, err)
	}
}

// foreignMemory fails with an error of its own.
type foreignMemory struct{}

var errForeign = errors.New("target went away")

func (foreignMemory) ReadMemory(p []byte, addr uint64) (int, error) { return 0, errForeign }

func TestReadErrorsWrapShortRead(t *testing.T) {
	ctx := Context{Rsp: 0x1000}
	_, err := VirtualUnwind(HandlerNone, 0, 0x2000, nil, &ctx, foreignMemory{})
	if !errors.Is(err, ErrShortRead) || !errors.Is(err, errForeign) {
		t.Fatalf("err = %v", err)
	}
	fn := unwindinfo.RuntimeFunction{BeginAddress: 0x1000, EndAddress: 0x2000, UnwindData: 0x3000}
	_, err = VirtualUnwind(HandlerNone, 0x10000, 0x11000, &fn, &ctx, foreignMemory{})
	if !errors.Is(err, ErrShortRead) || !errors.Is(err, errForeign) {
		t.Fatalf("err = %v", err)
	}
}
