package unwindinfo

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// vector is one line of testdata/decode.txt.
type vector struct {
	line     int
	raw      string // the hex column as written
	data     []byte
	render   string // Info.String() and the decoding error
	validate string // "ok", "invalid@off: rule" or "-"
}

// readVectors parses testdata/decode.txt. Comment and blank lines are
// returned as vectors with nil data so that -update can write them back.
func readVectors(t testing.TB) (vs []vector, lines []string) {
	t.Helper()
	b, err := os.ReadFile("testdata/decode.txt")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		lines = append(lines, line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		// The rendering may contain "|" (flags); the other columns do not.
		i, j := strings.Index(line, "|"), strings.LastIndex(line, "|")
		if i < 0 || i == j {
			t.Fatalf("decode.txt:%d: want 3 columns separated by |", n)
		}
		cols := []string{line[:i], line[i+1 : j], line[j+1:]}
		raw := strings.TrimSpace(cols[0])
		data, err := hex.DecodeString(strings.ReplaceAll(raw, " ", ""))
		if err != nil {
			t.Fatalf("decode.txt:%d: %v", n, err)
		}
		vs = append(vs, vector{line: n, raw: raw, data: data,
			render: strings.TrimSpace(cols[1]), validate: strings.TrimSpace(cols[2])})
	}
	return vs, lines
}

// sentinelName names the sentinel err wraps.
func sentinelName(err error) string {
	for _, s := range []struct {
		err  error
		name string
	}{{ErrTruncated, "ErrTruncated"}, {ErrUnsupportedVersion, "ErrUnsupportedVersion"},
		{ErrBadOp, "ErrBadOp"}, {ErrInvalid, "ErrInvalid"}, {ErrMalformed, "ErrMalformed"}} {
		if errors.Is(err, s.err) {
			return s.name
		}
	}
	return "unknown error " + err.Error()
}

// renderVector returns the two expected columns for data.
func renderVector(data []byte) (render, validate string) {
	info, err := Decode(data)
	render = "-"
	if info != nil {
		render = info.String()
	}
	if err != nil {
		var fe *FormatError
		off := int64(-1)
		if errors.As(err, &fe) {
			off = fe.Off
		}
		render += fmt.Sprintf(" !%s@%#x", sentinelName(err), off)
		return render, "-"
	}
	if verr := info.Validate(); verr != nil {
		var fe *FormatError
		if !errors.As(verr, &fe) || !errors.Is(verr, ErrInvalid) {
			return render, "unexpected validate error " + verr.Error()
		}
		return render, fmt.Sprintf("invalid@%#x: %s", fe.Off, fe.Msg)
	}
	return render, "ok"
}

func TestDecodeVectors(t *testing.T) {
	vs, lines := readVectors(t)
	if *update {
		for _, v := range vs {
			r, val := renderVector(v.data)
			lines[v.line-1] = v.raw + " | " + r + " | " + val
		}
		if err := os.WriteFile("testdata/decode.txt", []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	for _, v := range vs {
		r, val := renderVector(v.data)
		if r != v.render {
			t.Errorf("decode.txt:%d: %s\nhave %s\nwant %s", v.line, v.raw, r, v.render)
		}
		if val != v.validate {
			t.Errorf("decode.txt:%d: %s: Validate\nhave %s\nwant %s", v.line, v.raw, val, v.validate)
		}
		info, err := Decode(v.data)
		if err != nil {
			continue
		}
		enc, err := info.Encode()
		if err != nil {
			t.Errorf("decode.txt:%d: Encode: %v", v.line, err)
			continue
		}
		if want := v.data[:info.Size()]; !bytes.Equal(enc, want) {
			t.Errorf("decode.txt:%d: Encode\nhave % x\nwant % x", v.line, enc, want)
		}
	}
}

// TestDecodeVectorsCoverage checks that decode.txt keeps covering every
// operation, both ALLOC_LARGE forms, both PUSH_MACHFRAME forms, version 2
// epilogs, handlers, chains and each error sentinel.
func TestDecodeVectorsCoverage(t *testing.T) {
	vs, _ := readVectors(t)
	seen := map[string]bool{}
	for _, v := range vs {
		info, err := Decode(v.data)
		if err != nil {
			seen[sentinelName(err)] = true
			if errors.Is(err, ErrBadOp) && len(v.data) >= 6 {
				seen[fmt.Sprintf("bad op %d", v.data[5]&0xf)] = true
			}
			continue
		}
		if info.Validate() != nil {
			seen["ErrInvalid"] = true
		}
		for _, c := range info.Codes {
			seen[c.Op.Name()] = true
			switch c.Op {
			case UWOP_ALLOC_LARGE:
				seen[fmt.Sprintf("ALLOC_LARGE/%d", c.Slots())] = true
			case UWOP_PUSH_MACHFRAME:
				seen[fmt.Sprintf("PUSH_MACHFRAME/%v", c.MachineFrameErrorCode())] = true
			}
		}
		if e, ok := info.Epilogs(); ok && e.AtEnd && len(e.Offsets) > 0 {
			seen["epilogs"] = true
		}
		if info.Flags.HasHandler() {
			seen["handler"] = true
		}
		if info.Flags&UNW_FLAG_CHAININFO != 0 {
			seen["chained"] = true
		}
	}
	for _, want := range []string{"PUSH_NONVOL", "ALLOC_LARGE", "ALLOC_SMALL", "SET_FPREG", "SAVE_NONVOL",
		"SAVE_NONVOL_FAR", "EPILOG", "SAVE_XMM128", "SAVE_XMM128_FAR", "PUSH_MACHFRAME",
		"ALLOC_LARGE/2", "ALLOC_LARGE/3", "PUSH_MACHFRAME/false", "PUSH_MACHFRAME/true",
		"epilogs", "handler", "chained", "bad op 7", "bad op 11", "bad op 6",
		"ErrTruncated", "ErrUnsupportedVersion", "ErrBadOp", "ErrInvalid"} {
		if !seen[want] {
			t.Errorf("decode.txt has no vector for %s", want)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	vs, _ := readVectors(b)
	var data [][]byte
	for _, v := range vs {
		data = append(data, v.data)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		Decode(data[i%len(data)])
		i++
	}
}

func BenchmarkString(b *testing.B) {
	info, err := Decode([]byte{0x19, 0x40, 0x0e, 0x35, 0x2f, 0x74, 0x67, 0x00, 0x28, 0x64, 0x66, 0x00,
		0x21, 0x34, 0x65, 0x00, 0x1a, 0x03, 0x15, 0x01, 0x5e, 0x00, 0x0e, 0xf0, 0x0c, 0xe0, 0x0a, 0xd0,
		0x08, 0xc0, 0x06, 0x50, 0x44, 0x00, 0x00, 0x00})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = info.String()
	}
}
