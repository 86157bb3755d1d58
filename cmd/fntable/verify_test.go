package main

import (
	"strings"
	"testing"

	"github.com/fntable/fntable/internal/winetest"
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

// TestVerifyImage checks PE images of ../shared/testdata/pe: MSVC's
// CrashWithException.exe verifies clean, and a file that is not an image
// is an error that names it.
func TestVerifyImage(t *testing.T) {
	exe := winetest.Testdata(t, "pe/symbolic-CrashWithException.exe")
	rep, err := verifyImage(exe, 0)
	if err != nil || rep.Functions != 41 || len(rep.Problems) != 0 {
		t.Errorf("%s: %d functions, problems %v, error %v; want 41 functions and no problem", exe, rep.Functions, rep.Problems, err)
	}
	obj := winetest.Testdata(t, "pe/go-gcc-amd64-mingw-obj")
	if _, err := verifyImage(obj, 0); err == nil || !strings.Contains(err.Error(), obj) {
		t.Errorf("%s: error %v, want one that names the file", obj, err)
	}
	// The zero-filled .text of the LLDB fixture contradicts its unwind
	// codes; --max-problems keeps the first ones.
	lldb := winetest.Testdata(t, "pe/lldb-pecallframeinfo.exe")
	rep, err = verifyImage(lldb, 2)
	if err != nil || len(rep.Problems) != 2 || !rep.Truncated {
		t.Errorf("%s with --max-problems 2: %d problems, truncated %v, error %v", lldb, len(rep.Problems), rep.Truncated, err)
	}
}
