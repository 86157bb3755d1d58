package unwindinfo

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// FuzzDecodeInfo decodes arbitrary bytes. Decoding must not panic; on
// success the encoding must reproduce the decoded prefix, decoding it
// again must give the same value, the View must agree with the Info, and
// Validate and the renderers must not panic.
func FuzzDecodeInfo(f *testing.F) {
	vs, _ := readVectors(f)
	for _, v := range vs {
		f.Add(v.data)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := Decode(b)
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode error %v is not a *FormatError wrapping ErrMalformed", err)
			}
		}
		if info != nil {
			_ = info.String()
			_ = info.Validate()
			_, _ = info.Epilogs()
			_ = info.PrologCodes()
			f := &Function{Entry: RuntimeFunction{0x1000, 0x1100, 0x2000}, Info: info, Err: err}
			_ = f.String()
			if _, jerr := json.Marshal(f.JSON()); jerr != nil {
				t.Fatalf("json.Marshal: %v", jerr)
			}
		}
		if err != nil {
			if _, verr := NewView(b); verr == nil && info == nil {
				t.Fatalf("NewView succeeded where Decode returned no info")
			}
			return
		}
		enc, err := info.Encode()
		if err != nil {
			t.Fatalf("Encode of decoded % x: %v", b, err)
		}
		if n := info.Size(); n > len(b) || !bytes.Equal(enc, b[:n]) {
			t.Fatalf("Encode(Decode(b)) = % x, want % x", enc, b[:min(n, len(b))])
		}
		again, err := Decode(enc)
		if err != nil || !reflect.DeepEqual(again, info) {
			t.Fatalf("Decode(Encode(info)) = %+v, %v; want %+v", again, err, info)
		}

		v, err := NewView(b)
		if err != nil {
			t.Fatalf("NewView: %v", err)
		}
		if !bytes.Equal(v.Bytes(), enc) {
			t.Fatalf("View.Bytes = % x, want % x", v.Bytes(), enc)
		}
		h := v.Header()
		if h != info.Header() {
			t.Fatalf("View.Header = %+v, Info.Header = %+v", h, info.Header())
		}
		k := 0
		for i := 0; i < int(h.CountOfCodes); {
			c, n, err := v.Code(i)
			if err != nil {
				t.Fatalf("View.Code(%d): %v", i, err)
			}
			if c != info.Codes[k] || n != c.Slots() {
				t.Fatalf("View.Code(%d) = %+v, %d; Info.Codes[%d] = %+v", i, c, n, k, info.Codes[k])
			}
			_ = v.Slot(i)
			_, _ = c.AllocSize(), c.StackOffset()
			i += n
			k++
		}
		if _, _, err := v.Code(int(h.CountOfCodes)); err == nil {
			t.Fatal("View.Code past CountOfCodes succeeded")
		}
		if rva, ok := v.HandlerRVA(); ok != info.Flags.HasHandler() || rva != info.Handler {
			t.Fatalf("View.HandlerRVA = %#x, %v", rva, ok)
		}
		_ = v.HandlerDataOffset()
		if rf, ok := v.Chained(); ok != (info.Flags&UNW_FLAG_CHAININFO != 0) || rf != info.Chained {
			t.Fatalf("View.Chained = %+v, %v", rf, ok)
		}
		if pad, _ := v.Padding(); pad != info.Pad {
			t.Fatalf("View.Padding = %#x, Info.Pad = %#x", pad, info.Pad)
		}
	})
}

// TestDecodeDoesNotCrash decodes known-bad inputs: every prefix of every
// vector, and a few hand-made ones.
func TestDecodeDoesNotCrash(t *testing.T) {
	vs, _ := readVectors(t)
	inputs := [][]byte{nil, {}, {0xff}, {0xff, 0xff, 0xff, 0xff}, bytes.Repeat([]byte{0xff}, MaxSize),
		append([]byte{0x01, 0x00, 0xff, 0x00}, make([]byte, 510)...)}
	for _, v := range vs {
		for n := 0; n <= len(v.data); n++ {
			inputs = append(inputs, v.data[:n])
		}
	}
	for _, b := range inputs {
		info, err := Decode(b)
		if info != nil {
			_ = info.String()
			_ = info.Validate()
		}
		if err == nil && info == nil {
			t.Errorf("Decode(% x) = nil, nil", b)
		}
	}
}
