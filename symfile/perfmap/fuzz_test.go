package perfmap

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/fntable/fntable/symfile"
)

// FuzzPerfMap parses arbitrary bytes: no input may panic, a failure must
// be the documented error, the symbols must keep their invariants, and
// writing them must read back the same.
func FuzzPerfMap(f *testing.F) {
	for _, s := range []string{
		"1000 20 foo\n",
		"0x7f0000001000 0x40 Interpreter\r\n\n2fea29e8e33e 2c JS:~fib [eval]:1:20\n",
		"1000 100 outer\n1040 20 inner\n1000 100 again\n",
		"ffffffffffffff00 ff top\nffffffffffffff00 100 wrap\n",
		"xyz 10 bad\n2000\n2000 10\n3000 0 zero\n0x 1 e\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		pm, err := Parse(bytes.NewReader(b))
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) || !errors.Is(err, ErrMalformed) || !errors.Is(err, symfile.ErrUnrecognized) {
				t.Fatalf("error %v is not the documented *FormatError", err)
			}
			_ = err.Error()
			return
		}
		checkInvariants(t, pm)
		n, first := pm.Skipped()
		if n < len(first) || len(first) > MaxSkippedReported || n > pm.Lines() {
			t.Fatalf("Skipped() = %d, %d listed, of %d lines", n, len(first), pm.Lines())
		}
		for _, s := range first {
			_ = s.String()
		}
		id := pm.Ident()
		if syms := pm.Symbols(); len(syms) > 0 && (id.LinkBase != syms[0].Addr || id.LinkBase+id.ImageSize != syms[len(syms)-1].End()) {
			t.Fatalf("Ident %+v does not span the symbols", id)
		}
		var buf bytes.Buffer
		if Write(&buf, pm.Symbols()) != nil {
			return // a name holding a CR, which Write refuses
		}
		again, err := Parse(&buf)
		if err != nil {
			t.Fatalf("reparse: %v", err)
		}
		if !reflect.DeepEqual(again.Symbols(), pm.Symbols()) {
			t.Fatalf("write and parse changed the symbols:\n%v\n%v", pm.Symbols(), again.Symbols())
		}
	})
}
