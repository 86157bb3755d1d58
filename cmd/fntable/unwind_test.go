package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/fntable/fntable/internal/winetest"
)

// wineFunction0 is function_0 of Wine's unwind tests: frame register rbp
// with offset 0x30, SAVE_NONVOL, ALLOC_LARGE and an exception handler.
const (
	wineFunction0 = "57fff54881ec10010000488d6c243048899df00000004889b5f800000090488b9df0000000488bb5f8000000488da5e00000005d5fc3"
	wineInfo0     = "091d09351d642500163424000f530a0122000350017000000002000005060708"
)

func stackHex(base uint64, slots int) string {
	b := make([]byte, 8*slots)
	for j := 0; j < slots; j++ {
		binary.LittleEndian.PutUint64(b[8*j:], uint64(8*j))
	}
	return fmt.Sprintf("%x", b)
}

func TestUnwindCommandWithoutImage(t *testing.T) {
	const base, stack = 0x10000000, 0x20000000
	line := func(ripOffset int, fn string) string {
		return fmt.Sprintf(`{"context": {"rsp": "%#x", "rbp": "%#x", "rip": "%#x", "rbx": "0x5555"}, "image_base": "%#x", "function": %s,
			"memory": [{"address": "%#x", "bytes": "%s"}, {"address": "%#x", "bytes": "%s"}, {"address": "%#x", "bytes": "%s"}]}`,
			stack, stack+64, base+0x400+ripOffset, base, fn,
			base+0x400, wineFunction0, base+0x800, wineInfo0, stack, stackHex(stack, 256))
	}
	fn := `{"begin": "0x400", "end": "0x436", "unwind_data": "0x800"}`
	in := strings.Join([]string{
		strings.ReplaceAll(line(29, fn), "\n", " "),
		strings.ReplaceAll(line(51, fn), "\n", " "),
		strings.ReplaceAll(line(0, "null"), "\n", " "),
		`{"context": {"rzz": "0x1"}}`,
		`not json`,
	}, "\n")
	var out bytes.Buffer
	err := unwindMain(strings.NewReader(in), &out, nil, 1)
	if err == nil || !strings.Contains(err.Error(), "2 of 5 lines failed") {
		t.Errorf("err = %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d output lines:\n%s", len(lines), out.String())
	}
	type resp struct {
		OK               bool              `json:"ok"`
		Error            string            `json:"error"`
		Function         map[string]string `json:"function"`
		Context          map[string]string `json:"context"`
		EstablisherFrame string            `json:"establisher_frame"`
		Handler          *string           `json:"handler"`
		HandlerData      *string           `json:"handler_data"`
		InEpilog         bool              `json:"in_epilog"`
		ContextPointers  map[string]string `json:"context_pointers"`
	}
	var r [5]resp
	for i := range lines {
		if err := json.Unmarshal([]byte(lines[i]), &r[i]); err != nil {
			t.Fatalf("line %d: %v: %s", i, err, lines[i])
		}
	}
	// Wine's expectations for rip_offset 29: rip 304, frame 16, rsp 312,
	// rdi 296, rbp 288, rbx 304, rsi 312 (offsets into the stack), handler.
	want := map[string]string{"rip": "0x130", "rsp": fmt.Sprintf("%#x", stack+312), "rdi": "0x128", "rbp": "0x120", "rbx": "0x130", "rsi": "0x138"}
	for k, v := range want {
		if r[0].Context[k] != v {
			t.Errorf("rip_offset 29: %s = %s, want %s", k, r[0].Context[k], v)
		}
	}
	if !r[0].OK || r[0].EstablisherFrame != fmt.Sprintf("%#x", stack+16) || r[0].Handler == nil || *r[0].Handler != "0x10000200" ||
		r[0].ContextPointers["rbx"] != fmt.Sprintf("%#x", stack+304) || r[0].Function["unwind_data"] != "0x800" || r[0].InEpilog {
		t.Errorf("rip_offset 29: %s", lines[0])
	}
	if !r[1].OK || !r[1].InEpilog || r[1].Handler != nil || r[1].Context["rip"] != "0x10" || r[1].EstablisherFrame != fmt.Sprintf("%#x", stack+16) {
		t.Errorf("rip_offset 51 (epilog): %s", lines[1])
	}
	if !r[2].OK || r[2].Function != nil || r[2].Context["rip"] != "0x0" || r[2].Context["rsp"] != fmt.Sprintf("%#x", stack+8) {
		t.Errorf("leaf: %s", lines[2])
	}
	if r[3].OK || !strings.Contains(r[3].Error, "rzz") || r[4].OK || r[4].Error == "" {
		t.Errorf("bad lines: %s | %s", lines[3], lines[4])
	}
}

func TestUnwindCommandWithImage(t *testing.T) {
	exe := winetest.Testdata(t, "pe/lldb-pecallframeinfo.exe")
	img, err := loadImage(exe)
	if err != nil {
		t.Fatal(err)
	}
	// Frame_reg_eh in its body (after the 0x40-byte prolog): cfa = rbp+752,
	// rbx/rsi/rdi at cfa+8/16/24, and its handler (RVA 0) is reported.
	const stack, cfa = 0x7f000000, 0x7f001000
	b := make([]byte, 0x2000)
	for a := 0; a < len(b); a += 8 {
		binary.LittleEndian.PutUint64(b[a:], stack+uint64(a))
	}
	in := fmt.Sprintf(`{"context": {"rsp": "%#x", "rbp": "%#x", "rip": "0x1001280"}, "memory": [{"address": "%#x", "bytes": "%x"}]}`,
		uint64(cfa-0x400), uint64(cfa-752), uint64(stack), b)
	var out bytes.Buffer
	if err := unwindMain(strings.NewReader(in), &out, img, 2); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	var r struct {
		Function        map[string]string `json:"function"`
		Context         map[string]string `json:"context"`
		ContextPointers map[string]string `json:"context_pointers"`
		Handler         *string           `json:"handler"`
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r.Function["begin"] != "0x1200" || r.Context["rsp"] != fmt.Sprintf("%#x", cfa) || r.Context["rip"] != fmt.Sprintf("%#x", cfa-8) ||
		r.ContextPointers["rbx"] != fmt.Sprintf("%#x", cfa+8) || r.ContextPointers["rdi"] != fmt.Sprintf("%#x", cfa+24) || r.Handler == nil || *r.Handler != "0x1000000" {
		t.Errorf("%s", out.String())
	}
	if status, _, stderr := fntable("unwind", "--handler-type", "bogus"); status != 2 || !strings.Contains(stderr, "handler-type") {
		t.Errorf("bad flag: status %d, %s", status, stderr)
	}
}

// TestUnwindRequestErrors checks that a malformed request line gets an
// error in the request's terms: no Go type or package names.
func TestUnwindRequestErrors(t *testing.T) {
	for _, c := range []struct{ line, want string }{
		{`[1]`, "decode request: want an object, have an array"},
		{`{"context": [1]}`, "decode request: decode context: want an object of registers"},
		{`{"context": {"rsp": "xyz"}}`, `decode request: decode context: rsp: bad value "xyz"`},
		{`{"context": {"xmm0": "0xzz"}}`, `decode request: decode context: xmm0: "zz" is not hex digits`},
		{`{"context": {}, "memory": {}}`, "decode request: memory: want an array, have an object"},
		{`{"context": {}, "memory": [{"address": "0x1", "bytes": 7}]}`, "decode request: memory.bytes: want a string, have a number"},
		{`{"context": {}, "memory": [{"address": "0x1", "bytes": "zz"}]}`, "decode request: memory[0]: bytes: want hex digits, two per byte"},
		{`{"context": {}, "function": 3}`, "decode request: function: want an object, have a number"},
		{`{"context": {}, "bogus": 1}`, `decode request: unknown field "bogus"`},
		{`{"context": {"rip": "0x401190"},`, "decode request: the line ends inside its JSON object (each request is one line)"},
		{`nonsense`, "decode request: invalid JSON at byte 2: invalid character 'o' in literal null (expecting 'u')"},
	} {
		_, err := unwindLine(c.line, nil, 1)
		if err == nil || err.Error() != c.want {
			t.Errorf("%s: error %v\nwant %s", c.line, err, c.want)
		}
		if err != nil {
			for _, bad := range []string{"Go value", "Go struct", "main.", "json:", "encoding/", "strconv."} {
				if strings.Contains(err.Error(), bad) {
					t.Errorf("%s: error %q names Go's %q", c.line, err, bad)
				}
			}
		}
	}
}
