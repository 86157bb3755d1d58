package unwindinfo

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fntable/fntable/internal/golden"
)

var update = flag.Bool("update", false, "rewrite golden files and decode.txt with the current output")

// mustDecode decodes hex-free test bytes and fails the test on error.
func mustDecode(t *testing.T, b []byte) *Info {
	t.Helper()
	info, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode(% x): %v", b, err)
	}
	return info
}

// renderFunctions is the input of the render golden files: one function
// of each shape the renderers handle.
func renderFunctions(t *testing.T) []*Function {
	full := mustDecode(t, []byte{0x19, 0x40, 0x0e, 0x35,
		0x2f, 0x74, 0x67, 0x00, 0x28, 0x64, 0x66, 0x00, 0x21, 0x34, 0x65, 0x00, 0x1a, 0x03,
		0x15, 0x01, 0x5e, 0x00, 0x0e, 0xf0, 0x0c, 0xe0, 0x0a, 0xd0, 0x08, 0xc0, 0x06, 0x50,
		0x44, 0x00, 0x00, 0x00})
	parent := mustDecode(t, []byte{0x01, 0x04, 0x01, 0x00, 0x04, 0x52})
	chained := mustDecode(t, []byte{0x21, 0x05, 0x02, 0x00, 0x05, 0x54, 0x0d, 0x00,
		0x00, 0x10, 0x00, 0x00, 0x1a, 0x10, 0x00, 0x00, 0x40, 0x20, 0x00, 0x00})
	v2 := mustDecode(t, []byte{0x02, 0x04, 0x05, 0x00, 0x01, 0x16, 0x20, 0x06, 0x0b, 0x16, 0x00, 0x06, 0x04, 0x82})
	far := mustDecode(t, []byte{0x01, 0x20, 0x0d, 0x00,
		0x20, 0x1a, 0x1c, 0x0a, 0x18, 0xf9, 0x00, 0x00, 0x02, 0x00, 0x14, 0x35, 0x08, 0x00, 0x01, 0x00,
		0x10, 0x11, 0xf8, 0xff, 0xff, 0xff, 0x0c, 0x68, 0x04, 0x00})
	loop := mustDecode(t, []byte{0x21, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00})
	partial, perr := Decode([]byte{0x01, 0x08, 0x03, 0x00, 0x08, 0x62, 0x04, 0x07, 0x00, 0x00})
	if perr == nil {
		t.Fatal("Decode of SPARE_CODE succeeded")
	}
	_, herr := Decode([]byte{0x03, 0x00, 0x00, 0x00})
	invalid := mustDecode(t, []byte{0x01, 0x02, 0x01, 0x00, 0x04, 0x62})
	return []*Function{
		{Entry: RuntimeFunction{0x1000, 0x1001, 0x2000}, Info: mustDecode(t, []byte{1, 0, 0, 0})},
		{Entry: RuntimeFunction{0x1200, 0x1300, 0x2024}, Info: full},
		{Entry: RuntimeFunction{0x1100, 0x1200, 0x2010}, Info: chained,
			Chained: &Function{Entry: chained.Chained, Info: parent}},
		{Entry: RuntimeFunction{0x1010, 0x1017, 0x2080}, Info: v2},
		{Entry: RuntimeFunction{0x1400, 0x1500, 0x20a0}, Info: far},
		{Entry: RuntimeFunction{0x1000, 0x2000, 0x300}, Info: loop,
			Err: fmt.Errorf("unwind chain of 0x1000: entry 0x1000 repeats: %w", ErrChainTooDeep)},
		{Entry: RuntimeFunction{0x1600, 0x1700, 0x20c0}, Info: partial, Err: perr},
		{Entry: RuntimeFunction{0x1700, 0x1800, 0x20d0}, Err: herr},
		{Entry: RuntimeFunction{0x1800, 0x1810, 0x20e0}, Info: invalid, Invalid: invalid.Validate()},
		{Entry: RuntimeFunction{0x1900, 0x1910, 0x3001},
			Indirect: &Function{Entry: RuntimeFunction{0x1900, 0x1910, 0x2000}, Info: mustDecode(t, []byte{1, 0, 0, 0})}},
	}
}

func TestRenderGolden(t *testing.T) {
	fns := renderFunctions(t)
	var text bytes.Buffer
	var js []*FunctionJSON
	for _, f := range fns {
		if err := f.WriteText(&text); err != nil {
			t.Fatal(err)
		}
		if s := f.String(); !strings.HasSuffix(text.String(), s) {
			t.Errorf("String() differs from WriteText:\n%s", s)
		}
		js = append(js, f.JSON())
	}
	jb, err := json.MarshalIndent(js, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "render.txt.golden", text.Bytes())
	checkGolden(t, "render.json.golden", append(jb, '\n'))

	// The JSON decodes back into the same value.
	var back []*FunctionJSON
	if err := json.Unmarshal(jb, &back); err != nil {
		t.Fatal(err)
	}
	jb2, _ := json.MarshalIndent(back, "", "  ")
	if !bytes.Equal(jb, jb2) {
		t.Errorf("JSON does not survive a round trip through FunctionJSON")
	}
}

// TestJSONContract pins the field names and shapes the command line
// promises, independently of the golden files.
func TestJSONContract(t *testing.T) {
	fns := renderFunctions(t)
	get := func(f *Function) map[string]any {
		b, err := json.Marshal(f.JSON())
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := get(fns[1])
	if m["begin"] != "0x1200" || m["end"] != "0x1300" || m["unwind_data"] != "0x2024" {
		t.Errorf("entry fields: %v", m)
	}
	ui := m["unwind_info"].(map[string]any)
	for k, want := range map[string]any{"version": 1.0, "flags": 3.0, "prolog_size": 64.0,
		"frame_register": "rbp", "frame_offset": 48.0, "code_slots": 14.0,
		"handler": "0x44", "handler_data": "0x2048"} {
		if ui[k] != want {
			t.Errorf("unwind_info[%q] = %v, want %v", k, ui[k], want)
		}
	}
	if _, ok := ui["chained"]; ok {
		t.Error("chained present without CHAININFO")
	}
	codes := ui["codes"].([]any)
	first := codes[0].(map[string]any)
	if first["offset"] != 47.0 || first["op"] != "SAVE_NONVOL" || first["register"] != "rdi" || first["stack_offset"] != 824.0 {
		t.Errorf("codes[0] = %v", first)
	}

	m = get(fns[0])
	ui = m["unwind_info"].(map[string]any)
	if v, ok := ui["frame_register"]; !ok || v != nil {
		t.Errorf("frame_register = %v, %v; want null", v, ok)
	}
	if _, ok := ui["handler"]; ok {
		t.Error("handler present without a handler flag")
	}
	if c, ok := ui["codes"].([]any); !ok || len(c) != 0 {
		t.Errorf("codes = %v, want []", ui["codes"])
	}

	m = get(fns[3])
	ui = m["unwind_info"].(map[string]any)
	codes = ui["codes"].([]any)
	if c := codes[0].(map[string]any); c["op"] != "EPILOG" || c["offset"] != 1.0 || c["length"] != 1.0 || c["at_end"] != true {
		t.Errorf("epilog header = %v", c)
	}
	if c := codes[2].(map[string]any); c["epilog_offset"] != "0x10b" || c["offset"] != nil {
		t.Errorf("epilog code = %v", c)
	}
	if c := codes[3].(map[string]any); c["epilog_offset"] != "0x0" || c["padding"] != true {
		t.Errorf("epilog padding = %v", c)
	}
	ep := ui["epilogs"].(map[string]any)
	if ep["length"] != 1.0 || ep["at_end"] != true || fmt.Sprint(ep["offsets"]) != "[0x20 0x10b]" {
		t.Errorf("epilogs = %v", ep)
	}

	m = get(fns[2])
	ch := m["unwind_info"].(map[string]any)["chained"].(map[string]any)
	if ch["begin"] != "0x1000" || ch["unwind_info"] == nil {
		t.Errorf("chained = %v", ch)
	}
	m = get(fns[5])
	if !strings.Contains(m["error"].(string), "unwind chain too long") {
		t.Errorf("error = %v", m["error"])
	}
	if ch := m["unwind_info"].(map[string]any)["chained"].(map[string]any); ch["unwind_info"] != nil {
		t.Errorf("chain not followed, yet chained has unwind_info: %v", ch)
	}
	m = get(fns[4])
	codes = m["unwind_info"].(map[string]any)["codes"].([]any)
	if c := codes[0].(map[string]any); c["op"] != "PUSH_MACHFRAME" || c["error_code"] != true {
		t.Errorf("machframe = %v", c)
	}
	if c := codes[1].(map[string]any); c["op"] != "PUSH_MACHFRAME" || c["error_code"] != false {
		t.Errorf("machframe = %v", c)
	}
	if c := codes[2].(map[string]any); c["op"] != "SAVE_XMM128_FAR" || c["xmm"] != 15.0 || c["stack_offset"] != float64(0x20000) {
		t.Errorf("save_xmm128_far = %v", c)
	}
	if c := codes[4].(map[string]any); c["op"] != "ALLOC_LARGE" || c["size"] != float64(0xfffffff8) {
		t.Errorf("alloc_large = %v", c)
	}
	if c := codes[5].(map[string]any); c["xmm"] != 6.0 {
		t.Errorf("save_xmm128 = %v", c)
	}
	m = get(fns[7])
	if _, ok := m["unwind_info"]; ok || !strings.Contains(m["error"].(string), "unsupported") {
		t.Errorf("undecodable header = %v", m)
	}
	if !errors.Is(fns[7].Err, ErrUnsupportedVersion) {
		t.Errorf("Err = %v", fns[7].Err)
	}
}

// checkGolden compares got with testdata/name, or rewrites the file with
// -update. On a mismatch it prints a line diff.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden.Check(t, filepath.Join("testdata", name), got, *update)
}
