package unwindinfo

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// jsonLayouts are the prefixes and indents AppendJSON is checked with:
// fntable's listing writes each function with a prefix of four spaces.
var jsonLayouts = []struct{ prefix, indent string }{{"", "  "}, {"    ", "  "}, {"\t", "\t"}, {"", ""}}

// checkAppendJSON checks that AppendJSON writes what json.MarshalIndent
// writes for f.JSON(), after existing bytes.
func checkAppendJSON(t *testing.T, f *Function) {
	t.Helper()
	for _, l := range jsonLayouts {
		want, err := json.MarshalIndent(f.JSON(), l.prefix, l.indent)
		if err != nil {
			t.Fatal(err)
		}
		got := f.AppendJSON([]byte("x"), l.prefix, l.indent)
		if !bytes.Equal(got[1:], want) || got[0] != 'x' {
			t.Fatalf("prefix %q indent %q: AppendJSON of %v:\n%s\njson.MarshalIndent:\n%s", l.prefix, l.indent, f, got, want)
		}
	}
}

// TestAppendJSON compares AppendJSON with json.MarshalIndent of JSON for
// functions of every shape, every test vector and strings that need
// escaping.
func TestAppendJSON(t *testing.T) {
	fns := renderFunctions(t)
	vs, _ := readVectors(t)
	for _, v := range vs {
		info, err := Decode(v.data)
		fns = append(fns, &Function{Entry: RuntimeFunction{0x1000, 0x1100, 0x2000}, Info: info, Err: err})
		if info != nil {
			fns = append(fns, &Function{Entry: RuntimeFunction{0x1000, 0x1100, 0x2001}, Invalid: info.Validate(),
				Indirect: &Function{Entry: RuntimeFunction{0x1000, 0x1100, 0x2000}, Info: info}})
		}
	}
	chained := mustDecode(t, []byte{0x21, 0x05, 0x02, 0x00, 0x05, 0x54, 0x0d, 0x00,
		0x00, 0x10, 0x00, 0x00, 0x1a, 0x10, 0x00, 0x00, 0x40, 0x20, 0x00, 0x00})
	fns = append(fns,
		// Chained information whose parent was not followed.
		&Function{Entry: RuntimeFunction{0x1100, 0x1200, 0x2010}, Info: chained},
		// A chain of three, the last with an error.
		&Function{Entry: RuntimeFunction{0x1100, 0x1200, 0x2010}, Info: chained,
			Chained: &Function{Entry: chained.Chained, Info: chained,
				Chained: &Function{Entry: chained.Chained, Err: errors.New("read unwind info at rva 0x2040: the image ends")}}},
		// A Chained node without UNW_FLAG_CHAININFO is not rendered.
		&Function{Entry: RuntimeFunction{0x1000, 0x1001, 0x2000}, Info: mustDecode(t, []byte{1, 0, 0, 0}),
			Chained: &Function{Entry: RuntimeFunction{1, 2, 3}}},
		// Strings that need escaping.
		&Function{Entry: RuntimeFunction{}, Err: errors.New("a <b> & \"c\" \\ \n\t\x01 \x7f \u2028 é \xff"),
			Invalid: errors.New("")},
	)
	for _, f := range fns {
		checkAppendJSON(t, f)
	}
}

// FuzzAppendJSON checks AppendJSON against json.MarshalIndent on
// arbitrary unwind information, seeded from testdata/decode.txt.
func FuzzAppendJSON(f *testing.F) {
	vs, _ := readVectors(f)
	for _, v := range vs {
		f.Add(v.data, "")
	}
	f.Add([]byte{1, 0, 0, 0}, "<\xff>")
	f.Fuzz(func(t *testing.T, b []byte, msg string) {
		info, err := Decode(b)
		fn := &Function{Entry: RuntimeFunction{0x1000, 0x1100, 0x2000}, Info: info, Err: err}
		if msg != "" {
			fn.Invalid = errors.New(msg)
		}
		if info != nil && info.Flags&UNW_FLAG_CHAININFO != 0 {
			fn.Chained = &Function{Entry: info.Chained, Info: info}
		}
		checkAppendJSON(t, fn)
	})
}

// BenchmarkAppendJSON renders the unwind information of the test vectors.
func BenchmarkAppendJSON(b *testing.B) {
	vs, _ := readVectors(b)
	var fns []*Function
	for _, v := range vs {
		info, err := Decode(v.data)
		fns = append(fns, &Function{Entry: RuntimeFunction{0x1000, 0x1100, 0x2000}, Info: info, Err: err})
	}
	var buf []byte
	for b.Loop() {
		for _, f := range fns {
			buf = f.AppendJSON(buf[:0], "    ", "  ")
		}
	}
}
