package unwind

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestContextJSON(t *testing.T) {
	c := Context{Rax: 1, Rsp: 0x7fff0000, R15: 0xffffffffffffffff, Rip: 0x140001000, EFlags: 0x246, SegCs: 0x33}
	c.Xmm[6][0] = 0x01
	c.Xmm[6][15] = 0xf0
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{`"rax":"0x1"`, `"rsp":"0x7fff0000"`, `"r15":"0xffffffffffffffff"`, `"rip":"0x140001000"`,
		`"xmm6":"f0000000000000000000000000000001"`, `"eflags":"0x246"`, `"cs":"0x33"`} {
		if !strings.Contains(strings.ReplaceAll(s, " ", ""), want) {
			t.Errorf("%s lacks %s", s, want)
		}
	}
	var back Context
	if err := json.Unmarshal(b, &back); err != nil || back != c {
		t.Fatalf("round trip: %v\n%+v\n%+v", err, back, c)
	}
	for _, bad := range []string{`{"rzx":"0x1"}`, `{"rax":"zz"}`, `{"xmm16":"0"}`, `{"xmm1":"` + strings.Repeat("1", 33) + `"}`, `{"cs":"0x10000"}`, `[1]`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if err := json.Unmarshal([]byte(`{"rax": 17, "xmm0": "0x1"}`), &back); err != nil || back.Rax != 17 || back.Xmm[0][0] != 1 {
		t.Errorf("numbers: %v %+v", err, back)
	}
	p := ContextPointers{}
	p.Integer[3] = 0x1000
	p.Floating[6] = 0x2000
	b, _ = json.Marshal(p)
	if string(b) != `{"rbx":"0x1000","xmm6":"0x2000"}` {
		t.Errorf("pointers: %s", b)
	}
}
