package main

import (
	"strings"
	"testing"

	"github.com/fntable/fntable/verify"
)

// push rbx; sub rsp, 0x20; add rsp, 0x20; pop rbx; ret
const verifyCode = "534883ec204883c4205bc3"

func verifyLine(info string) string {
	return `{"base":"0x10000","code_address":"0x11000","code":"` + verifyCode + `",` +
		`"functions":[{"begin":"0x1000","end":"0x100b","unwind_data":"0x2000"}],` +
		`"unwind_info":[{"rva":"0x2000","bytes":"` + info + `"}]}`
}

func TestVerifyLines(t *testing.T) {
	rep, err := verifyLines(strings.NewReader(verifyLine("0105020005320130")), 0)
	if err != nil || rep.Functions != 1 || rep.Instructions != 5 || len(rep.Problems) != 0 {
		t.Fatalf("right unwind info: %+v, %v", rep, err)
	}
	// ALLOC_SMALL 0x28 for sub rsp, 0x20.
	rep, err = verifyLines(strings.NewReader(verifyLine("0105020005420130")), 0)
	if err != nil || len(rep.Problems) == 0 || rep.Problems[0].Kind != verify.KindCodeMismatch {
		t.Fatalf("wrong size: %+v, %v", rep, err)
	}
	want := "0x11000 fn+0x1: ALLOC_SMALL 0x28 at 0x5, but the instruction is sub rsp, 0x20"
	if got := rep.Problems[0].String(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if _, err := verifyLines(strings.NewReader(`{"base":"12"}`), 0); err == nil {
		t.Error("a base without 0x: no error")
	}
}
