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
	if start, b := m.Bytes(0x1070); start != 0x1000 || len(b) != 0x80 || b[0x70] != 1 {
		t.Errorf("Bytes must stop at a later region: %#x, %d bytes", start, len(b))
	}
	if start, b := m.Bytes(0x1082); start != 0x1080 || !bytes.Equal(b, bytes.Repeat([]byte{2}, 0x10)) {
		t.Errorf("Bytes in the top region: %#x %x", start, b)
	}
	if start, b := m.Bytes(0x1090); start != 0x1090 || len(b) != 0x70 || b[0] != 1 {
		t.Errorf("Bytes after the top region: %#x, %d bytes", start, len(b))
	}
	if _, b := m.Bytes(0x1100); b != nil {
		t.Error("Bytes past the end")
	}
	// A region added over several others replaces them where it lies.
	var m2 SplicedMemory
	for i := range 8 {
		m2.Add(uint64(0x100*i), bytes.Repeat([]byte{byte(i)}, 0x100))
	}
	m2.Add(0x180, bytes.Repeat([]byte{9}, 0x400))
	m2.Add(0x50, []byte{7})
	got := make([]byte, 0x800)
	if n, err := m2.ReadMemory(got, 0); err != nil || n != 0x800 {
		t.Fatal(n, err)
	}
	for a, v := range got {
		want := byte(a / 0x100)
		if a >= 0x180 && a < 0x580 {
			want = 9
		}
		if a == 0x50 {
			want = 7
		}
		if v != want {
			t.Fatalf("byte %#x = %d, want %d", a, v, want)
		}
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
	_, err := VirtualUnwind(HandlerNone, 0, 0x2000, nil, &ctx, nil, foreignMemory{})
	if !errors.Is(err, ErrShortRead) || !errors.Is(err, errForeign) {
		t.Fatalf("err = %v", err)
	}
	fn := unwindinfo.RuntimeFunction{BeginAddress: 0x1000, EndAddress: 0x2000, UnwindData: 0x3000}
	_, err = VirtualUnwind(HandlerNone, 0x10000, 0x11000, &fn, &ctx, nil, foreignMemory{})
	if !errors.Is(err, ErrShortRead) || !errors.Is(err, errForeign) {
		t.Fatalf("err = %v", err)
	}
}
