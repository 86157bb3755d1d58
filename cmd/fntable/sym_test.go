package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fntable/fntable/internal/golden"
	"github.com/fntable/fntable/internal/symtest"
	"github.com/fntable/fntable/internal/testenv"
	"github.com/fntable/fntable/symhandler"
)

// TestSymJSON runs "fntable sym --json --module FILE" over random
// addresses of the C++ test program and compares each line with
// llvm-symbolizer's answer for the same address (the full comparison,
// with the explained differences, is symhandler's TestAccuracy).
func TestSymJSON(t *testing.T) {
	exe := symtest.SQLite(t)
	addrs := symtest.RandomAddrs(t, exe, 300, 7)
	want := symtest.Symbolize(t, exe, addrs)
	var args []string
	for _, a := range addrs {
		args = append(args, fmt.Sprintf("%#x", a))
	}
	status, stdout, stderr := fntable(append([]string{"sym", "--json", "--symbol-path", t.TempDir(), "--module", exe}, args...)...)
	if status != 0 {
		t.Fatalf("status %d: %s", status, stderr)
	}
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sc.Buffer(nil, 1<<20)
	i, agree := 0, 0
	for ; sc.Scan(); i++ {
		var v struct {
			Address      string  `json:"address"`
			Module       *string `json:"module"`
			Symbol       *string `json:"symbol"`
			Displacement uint64  `json:"displacement"`
			Frames       []struct {
				Function string  `json:"function"`
				File     *string `json:"file"`
				Line     int     `json:"line"`
				Column   int     `json:"column"`
			} `json:"frames"`
		}
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("line %d: %v: %s", i+1, err, sc.Bytes())
		}
		if v.Address != args[i] {
			t.Fatalf("line %d is for %s, want %s (input order)", i+1, v.Address, args[i])
		}
		if v.Module == nil || *v.Module != filepath.Base(exe) {
			t.Errorf("%s: module %v", v.Address, v.Module)
		}
		w := want[i].Frames
		same := len(v.Frames) == len(w)
		for j := 0; same && j < len(w); j++ {
			f := v.Frames[j]
			file := ""
			if f.File != nil {
				file = *f.File
			}
			same = f.Function == w[j].Function && file == w[j].File && f.Line == w[j].Line && f.Column == w[j].Column
		}
		if same {
			agree++
		}
		if v.Symbol != nil && len(v.Frames) > 0 && *v.Symbol != v.Frames[len(v.Frames)-1].Function {
			t.Errorf("%s: symbol %q is not the outermost frame %q", v.Address, *v.Symbol, v.Frames[len(v.Frames)-1].Function)
		}
	}
	if i != len(addrs) {
		t.Fatalf("%d lines for %d addresses", i, len(addrs))
	}
	// SQLite is C: names need no demangling, so all but the addresses
	// without line information agree exactly.
	if agree < len(addrs)*95/100 {
		t.Errorf("%d of %d lines agree with llvm-symbolizer", agree, len(addrs))
	}
	t.Logf("%d of %d lines agree with llvm-symbolizer", agree, len(addrs))
}

func TestSymText(t *testing.T) {
	exe := symtest.CPP(t)
	out, err := exec.Command(testenv.Tool(t, "nm"), exe).Output()
	if err != nil {
		t.Fatal(err)
	}
	var mainAddr string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[2] == "main" {
			mainAddr = "0x" + strings.TrimLeft(f[0], "0")
		}
	}
	status, stdout, stderr := fntable("sym", "--symbol-path", t.TempDir(), "--module", exe, mainAddr, "0x1", "nonsense")
	if status != 1 || !strings.Contains(stderr, `"nonsense" is not an address`) {
		t.Errorf("status %d, stderr %q; want 1 and a complaint about nonsense", status, stderr)
	}
	lines := strings.Split(stdout, "\n")
	if !strings.HasPrefix(lines[0], mainAddr+" "+filepath.Base(exe)+"!main+0x0") {
		t.Errorf("first line %q", lines[0])
	}
	if !strings.Contains(stdout, "    main at ") || !strings.Contains(stdout, "main.cpp:") {
		t.Errorf("no source line for main:\n%s", stdout)
	}
	for _, bad := range [][]string{
		{"sym"},
		{"sym", "--pid", "1", "--module", "x"},
		{"sym", "--module", "@12"},
		{"sym", "--module", "x@zz"},
		{"sym", "--options", "NOT_AN_OPTION", "--module", "x"},
	} {
		if status, _, _ := fntable(bad...); status != 2 {
			t.Errorf("fntable %q: status %d, want 2", bad, status)
		}
	}
}

// TestAppendJSONString checks the hand-written JSON against encoding/json.
func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uote\back`, "tab\tnl\ncr\r", "\x00\x01\x1f", "ü€😀", "bad\xffutf8\xc3", "operator<<"} {
		var got string
		if err := json.Unmarshal(appendJSONString(nil, s), &got); err != nil {
			t.Errorf("%q: %v", s, err)
			continue
		}
		want := strings.ToValidUTF8(s, "\uFFFD")
		if got != want {
			t.Errorf("%q round-trips to %q, want %q", s, got, want)
		}
	}
}

// TestSymStdin reads the addresses from standard input, separated by
// blanks and new lines, and answers as for the same arguments.
func TestSymStdin(t *testing.T) {
	exe := symtest.CPP(t)
	addrs := symtest.RandomAddrs(t, exe, 600, 3) // more than one batch
	var args []string
	var in strings.Builder
	for i, a := range addrs {
		args = append(args, fmt.Sprintf("%#x", a))
		sep := "\n"
		if i%3 == 0 {
			sep = " \t"
		}
		fmt.Fprintf(&in, "%d%s", a, sep) // decimal this time
	}
	f, err := os.CreateTemp(t.TempDir(), "addrs")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(in.String())
	f.Seek(0, 0)
	stdin := os.Stdin
	os.Stdin = f
	defer func() { os.Stdin = stdin }()
	status, fromStdin, errOut := fntable("sym", "--json", "--symbol-path", t.TempDir(), "--module", exe)
	os.Stdin = stdin
	if status != 0 {
		t.Fatalf("status %d: %s", status, errOut)
	}
	status, fromArgs, errOut := fntable(append([]string{"sym", "--json", "--symbol-path", t.TempDir(), "--module", exe}, args...)...)
	if status != 0 {
		t.Fatalf("status %d: %s", status, errOut)
	}
	if fromStdin != fromArgs {
		t.Errorf("standard input and arguments give different answers:\n%s", golden.Diff(fromArgs, fromStdin))
	}
	if n := strings.Count(fromStdin, "\n"); n != len(addrs) {
		t.Errorf("%d lines for %d addresses", n, len(addrs))
	}
}

// TestSymProgressBar feeds the reporter the download events a handler
// sends, as when standard error is a terminal: the bar shows the module
// and the percentage, and is cleared when the download ends; with
// SYMOPT_NO_PROMPTS nothing is drawn.
func TestSymProgressBar(t *testing.T) {
	var buf bytes.Buffer
	r := newReporter(&buf)
	r.tty = true
	const total = 3 << 20
	for done := int64(0); done <= total; done += 1 << 20 {
		r.event(symhandler.Progress{Stage: "download", Module: "libbig.so", File: "abcd", Done: done, Total: total})
	}
	out := buf.String()
	if !strings.Contains(out, "downloading libbig.so") || !strings.Contains(out, "% |") {
		t.Errorf("no progress bar with the module and the percentage:\n%q", out)
	}
	if len(r.bars) != 0 {
		t.Errorf("%d bars left after the download ended", len(r.bars))
	}
	// Indexing progress draws nothing; neither does a non-terminal.
	buf.Reset()
	r.event(symhandler.Progress{Stage: "index", Module: "libbig.so", Done: 1, Total: 2})
	r.tty = false
	r.event(symhandler.Progress{Stage: "download", Module: "x", File: "y", Done: 1, Total: 2})
	if buf.Len() != 0 {
		t.Errorf("drew %q", buf.String())
	}
	// SYMOPT_NO_PROMPTS turns the bar off.
	h, err := symhandler.New(symhandler.Config{SearchPath: t.TempDir(), Options: symhandler.DefaultOptions | symhandler.SYMOPT_NO_PROMPTS})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	r.h, r.tty = h, true
	r.event(symhandler.Progress{Stage: "download", Module: "x", File: "z", Done: 1, Total: 2})
	if buf.Len() != 0 {
		t.Errorf("drew %q with SYMOPT_NO_PROMPTS", buf.String())
	}
}

// TestSymAlignment: every input gives one output line, in order; one that
// is not an address gives an error line, and the status is 1.
func TestSymAlignment(t *testing.T) {
	exe := symtest.CPP(t)
	inputs := []string{"0x1140", "zzz", "0x1143", "0x", "18446744073709551616", ""}
	for _, asJSON := range []bool{false, true} {
		args := []string{"sym", "--symbol-path", t.TempDir(), "--module", exe}
		if asJSON {
			args = append(args, "--json")
		}
		status, stdout, stderr := fntable(append(args, inputs...)...)
		if status != 1 {
			t.Errorf("json=%v: status %d, want 1 (some inputs failed); stderr %q", asJSON, status, stderr)
		}
		var lines []string
		for l := range strings.Lines(stdout) {
			if !strings.HasPrefix(l, " ") { // frames of the text form are indented
				lines = append(lines, strings.TrimSuffix(l, "\n"))
			}
		}
		if len(lines) != len(inputs) {
			t.Fatalf("json=%v: %d result lines for %d inputs:\n%s", asJSON, len(lines), len(inputs), stdout)
		}
		for i, in := range inputs {
			l := lines[i]
			bad := i != 0 && i != 2
			if !asJSON {
				if in == "" {
					in = `""`
				}
				if !strings.HasPrefix(l, in+" ") || strings.Contains(l, "error:") != bad {
					t.Errorf("text line %d for %q: %q", i+1, in, l)
				}
				continue
			}
			var v struct {
				Input   *string `json:"input"`
				Address *string `json:"address"`
				Error   string  `json:"error"`
			}
			if err := json.Unmarshal([]byte(l), &v); err != nil {
				t.Fatalf("line %d: %v: %s", i+1, err, l)
			}
			switch {
			case bad && (v.Input == nil || *v.Input != in || v.Error == "" || strings.Contains(v.Error, "strconv")):
				t.Errorf("json line %d for %q: %s; want an error line", i+1, in, l)
			case !bad && (v.Address == nil || *v.Address != in || v.Error != ""):
				t.Errorf("json line %d for %q: %s", i+1, in, l)
			}
		}
	}
}

// TestSymLongInput: a word far longer than any address, read from
// standard input, gets its error line like any other bad input, and the
// inputs after it are still answered.
func TestSymLongInput(t *testing.T) {
	exe := symtest.CPP(t)
	f, err := os.CreateTemp(t.TempDir(), "addrs")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("0x1140 " + strings.Repeat("7", 2<<20) + "\n0x1143\n")
	f.Seek(0, 0)
	stdin := os.Stdin
	os.Stdin = f
	defer func() { os.Stdin = stdin }()
	status, stdout, stderr := fntable("sym", "--json", "--symbol-path", t.TempDir(), "--module", exe)
	os.Stdin = stdin
	if status != 1 {
		t.Errorf("status %d, want 1; stderr %.200q", status, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], `"address":"0x1140"`) ||
		!strings.Contains(lines[1], `"error"`) || !strings.Contains(lines[2], `"address":"0x1143"`) {
		t.Errorf("results:\n%.600s", stdout)
	}
	if len(stdout) > 4<<10 {
		t.Errorf("%d bytes of output: the long input is echoed whole", len(stdout))
	}
}
