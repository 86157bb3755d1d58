package binread

import (
	"errors"
	"testing"
)

func TestReader(t *testing.T) {
	r := New("test", []byte{1, 2, 0, 3, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 9}, 0x100)
	if r.U8() != 1 || r.U16() != 2 || r.U32() != 3 || r.U64() != 4 || r.Len() != 1 {
		t.Fatal("values")
	}
	if r.U16() != 0 || r.Err() == nil {
		t.Fatal("read past the end succeeded")
	}
	var e *Error
	if !errors.As(r.Err(), &e) || e.Off != 0x10f || !errors.Is(r.Err(), ErrTruncated) || e.Name != "test" {
		t.Fatalf("error %v", r.Err())
	}
	if r.U8() != 0 || r.Bytes(1) != nil || r.Len() != 0 {
		t.Fatal("reads after an error must return zero")
	}
	r = New("x", []byte{1, 2, 3}, 0)
	if b := r.Bytes(2); len(b) != 2 || cap(b) != 2 {
		t.Fatal("Bytes")
	}
	r.Skip(-1)
	if r.Err() == nil {
		t.Fatal("negative skip accepted")
	}
	r = New("x", nil, 0)
	r.Fail(errors.New("first"))
	r.Fail(errors.New("second"))
	if r.Err().Error() != "x at offset 0x0: first" {
		t.Fatal(r.Err())
	}
}
