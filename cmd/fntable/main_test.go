package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/fntable/fntable/internal/golden"
	"github.com/fntable/fntable/internal/testenv"
	"github.com/fntable/fntable/internal/winetest"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// goMingwExec returns the directory and name of Go's own mingw test
// executable.
func goMingwExec(t *testing.T) (dir, name string) {
	t.Helper()
	dir = filepath.Join(runtime.GOROOT(), "src", "debug", "pe", "testdata")
	name = "gcc-amd64-mingw-exec"
	if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
		testenv.Unavailable(t, "needs Go's debug/pe testdata: %v", err)
	}
	return dir, name
}

// fntable runs the command line and returns its exit status and output.
// TestMain lets the test binary be the processes fntable starts itself
// (the demo's target, isolated provider calls), as fntable is.
func TestMain(m *testing.M) {
	if status, ok := runAsChild(); ok {
		os.Exit(status)
	}
	if os.Getenv(readmeCLIEnv) != "" { // TestREADME's fntable
		log.SetFlags(0)
		log.SetPrefix("fntable: ")
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	// Decompressed debug sections go to a directory of the test run's,
	// which the fntable processes the tests start inherit.
	dir, err := os.MkdirTemp("", "fntable-cache-")
	if err == nil && os.Getenv("FNTABLE_CACHE_DIR") == "" {
		os.Setenv("FNTABLE_CACHE_DIR", dir)
	}
	status := m.Run()
	if err == nil {
		os.RemoveAll(dir)
	}
	os.Exit(status)
}

func fntable(args ...string) (status int, stdout, stderr string) {
	var o, e bytes.Buffer
	status = run(args, &o, &e)
	return status, o.String(), e.String()
}

// TestUnwindinfoGolden checks the text and JSON listings of Go's mingw
// executable against testdata/*.golden (go test -update rewrites them).
func TestUnwindinfoGolden(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	dir, name := goMingwExec(t)
	t.Chdir(dir) // the text listing starts with the file name as given
	for _, c := range []struct {
		golden string
		args   []string
	}{
		{"gcc-amd64-mingw-exec.txt.golden", []string{"unwindinfo", name}},
		{"gcc-amd64-mingw-exec.json.golden", []string{"unwindinfo", "--json", "--validate", name}},
	} {
		status, stdout, stderr := fntable(c.args...)
		if status != 0 || stderr != "" {
			t.Fatalf("fntable %s: status %d, stderr %q", strings.Join(c.args, " "), status, stderr)
		}
		checkGolden(t, filepath.Join(wd, "testdata", c.golden), []byte(stdout))
	}
}

// TestUnwindinfoJSON checks the JSON contract on Go's mingw executable.
func TestUnwindinfoJSON(t *testing.T) {
	dir, name := goMingwExec(t)
	status, stdout, stderr := fntable("unwindinfo", "-json", filepath.Join(dir, name))
	if status != 0 {
		t.Fatalf("status %d: %s", status, stderr)
	}
	var doc struct {
		ImageBase string `json:"image_base"`
		Functions []struct {
			Begin      string `json:"begin"`
			End        string `json:"end"`
			UnwindData string `json:"unwind_data"`
			UnwindInfo *struct {
				Version       int              `json:"version"`
				Flags         int              `json:"flags"`
				PrologSize    int              `json:"prolog_size"`
				FrameRegister *string          `json:"frame_register"`
				FrameOffset   int              `json:"frame_offset"`
				CodeSlots     int              `json:"code_slots"`
				Codes         []map[string]any `json:"codes"`
				Handler       string           `json:"handler"`
				HandlerData   string           `json:"handler_data"`
			} `json:"unwind_info"`
			Error string `json:"error"`
		} `json:"functions"`
	}
	dec := json.NewDecoder(strings.NewReader(stdout))
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if dec.More() {
		t.Error("more than one JSON document")
	}
	if doc.ImageBase != "0x400000" || len(doc.Functions) != 98 {
		t.Fatalf("image_base %s, %d functions", doc.ImageBase, len(doc.Functions))
	}
	fn := doc.Functions[3]
	if fn.Begin != "0x1180" || fn.End != "0x14b6" || fn.UnwindData != "0xb014" || fn.UnwindInfo == nil {
		t.Fatalf("functions[3] = %+v", fn)
	}
	ui := fn.UnwindInfo
	if ui.Version != 1 || ui.PrologSize != 13 || ui.FrameRegister != nil || ui.CodeSlots != 7 || len(ui.Codes) != 6 {
		t.Errorf("functions[3].unwind_info = %+v", ui)
	}
	if c := ui.Codes[0]; c["op"] != "ALLOC_LARGE" || c["size"] != 144.0 || c["offset"] != 13.0 {
		t.Errorf("codes[0] = %v", c)
	}
	if c := ui.Codes[1]; c["op"] != "PUSH_NONVOL" || c["register"] != "rbx" {
		t.Errorf("codes[1] = %v", c)
	}
	handlers, frames := 0, 0
	for _, fn := range doc.Functions {
		if fn.Error != "" || fn.UnwindInfo == nil {
			t.Errorf("function %s: %q", fn.Begin, fn.Error)
			continue
		}
		if fn.UnwindInfo.Handler != "" {
			handlers++
			if fn.UnwindInfo.HandlerData == "" {
				t.Errorf("function %s: handler without handler_data", fn.Begin)
			}
		}
		if fn.UnwindInfo.FrameRegister != nil {
			frames++
			if *fn.UnwindInfo.FrameRegister != "rbp" {
				t.Errorf("function %s: frame register %s", fn.Begin, *fn.UnwindInfo.FrameRegister)
			}
		}
	}
	// MANIFEST.md: EHANDLER(2), SET_FPREG(5).
	if handlers != 2 || frames != 5 {
		t.Errorf("%d functions with handlers, %d with frame registers; want 2, 5", handlers, frames)
	}
}

// TestCommandLine runs the command line as a user would: statuses,
// messages and where they go.
func TestCommandLine(t *testing.T) {
	dir, name := goMingwExec(t)
	exe := filepath.Join(dir, name)
	notPE := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(notPE, []byte("not an image\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args      []string
		status    int
		stdout    string // substring; "" means empty
		stderr    string // substring; "" means empty
		anyStdout bool
	}{
		{args: nil, status: 2, stderr: "fntable: no command\nusage: fntable <command>"},
		{args: []string{"help"}, status: 0, stdout: "unwindinfo   list the function table"},
		{args: []string{"-h"}, status: 0, stdout: "Commands:"},
		{args: []string{"help", "unwindinfo"}, status: 0, stdout: "usage: fntable unwindinfo [--json] [--validate] FILE"},
		{args: []string{"help", "nosuch"}, status: 2, stderr: `help: unknown command "nosuch"`},
		{args: []string{"help", "help"}, status: 0, stdout: "Commands:"},
		{args: []string{"help", "-h"}, status: 0, stdout: "Commands:"},
		// A directory is no image, and the error says why.
		{args: []string{"unwindinfo", t.TempDir()}, status: 1, stderr: "is a directory"},
		{args: []string{"nosuch"}, status: 2, stderr: `fntable: unknown command "nosuch"`},
		{args: []string{"unwindinfo", "-h"}, status: 0, stdout: "  -validate\n"},
		{args: []string{"unwindinfo", "--help"}, status: 0, stdout: "Unwindinfo lists every RUNTIME_FUNCTION"},
		{args: []string{"unwindinfo"}, status: 2, stderr: "fntable unwindinfo: want one FILE, have 0 arguments\nusage: fntable unwindinfo [--json] [--validate] FILE\n"},
		{args: []string{"unwindinfo", exe, exe}, status: 2, stderr: "want one FILE, have 2 arguments"},
		{args: []string{"unwindinfo", "--bogus", exe}, status: 2, stderr: "fntable unwindinfo: flag provided but not defined: -bogus"},
		{args: []string{"unwindinfo", filepath.Join(t.TempDir(), "missing.exe")}, status: 1, stderr: "no such file or directory"},
		{args: []string{"unwindinfo", exe}, status: 0, stdout: "0x1180-0x14b6 unwind 0xb014: v1 flags=0 prolog=0xd frame=none codes=7\n  0x0d ALLOC_LARGE 0x90\n  0x06 PUSH_NONVOL rbx\n"},
		// Flags and arguments in any order; after "--" all are arguments.
		{args: []string{"unwindinfo", exe, "--json"}, status: 0, stdout: `"image_base": "0x400000"`},
		{args: []string{"unwindinfo", exe, "--validate", "--json"}, status: 0, stdout: `"image_base": "0x400000"`},
		{args: []string{"unwindinfo", "--json", exe, "--bogus"}, status: 2, stderr: "flag provided but not defined: -bogus"},
		{args: []string{"unwindinfo", "--", "--json"}, status: 1, stderr: "open --json: no such file or directory"},
		{args: []string{"unwindinfo", exe, "-h"}, status: 0, stdout: "usage: fntable unwindinfo"},
		// An error names the file it concerns.
		{args: []string{"unwindinfo", notPE}, status: 1, stderr: "fntable: " + notPE + ": read pe headers: not a pe image"},
		{args: []string{"unwind", "--image", notPE}, status: 1, stderr: "fntable: " + notPE + ": read pe headers: not a pe image"},
		{args: []string{"tables", notPE}, status: 1, stderr: "fntable: " + notPE + ": read minidump header"},
		{args: []string{"stack", notPE}, status: 1, stderr: "fntable: " + notPE + ": read minidump header"},
		{args: []string{"sym", "--dump", notPE, "0x1"}, status: 1, stderr: "fntable: " + notPE + ": read minidump header"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			status, stdout, stderr := fntable(c.args...)
			if status != c.status {
				t.Errorf("status %d, want %d\nstdout:\n%s\nstderr:\n%s", status, c.status, stdout, stderr)
			}
			for _, o := range []struct{ name, have, want string }{{"stdout", stdout, c.stdout}, {"stderr", stderr, c.stderr}} {
				if o.want == "" && o.have != "" || !strings.Contains(o.have, o.want) {
					t.Errorf("%s = %q, want it to contain %q", o.name, o.have, o.want)
				}
			}
		})
	}
}

// TestUnwindinfoSharedFiles lists every shared PE file: images succeed
// (or fail with status 1 for the adversarial chain loop), objects fail
// with a clear message.
func TestUnwindinfoSharedFiles(t *testing.T) {
	dir := winetest.Testdata(t, "pe")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		path := filepath.Join(dir, e.Name())
		t.Run(e.Name(), func(t *testing.T) {
			status, stdout, stderr := fntable("unwindinfo", "--json", "--validate", path)
			switch {
			case strings.HasSuffix(e.Name(), "obj"):
				if status != 1 || !strings.Contains(stderr, "not a pe image: COFF object file") || stdout != "" {
					t.Errorf("status %d, stdout %q, stderr %q", status, stdout, stderr)
				}
				return
			case e.Name() == "symbolic-cfi_chained_loop.exe":
				if status != 1 || !strings.Contains(stderr, "warning: entry 0 (0x1000-0x2000) lies outside the image") ||
					!strings.Contains(stderr, "1 of 1 functions have errors") ||
					!strings.Contains(stdout, `"error": "unwind chain of 0x1000-0x2000: entry 0x1000-0x2000 unwind 0x300 comes back: unwind chain too long"`) {
					t.Errorf("status %d, stdout %q, stderr %q", status, stdout, stderr)
				}
			case e.Name() == "lldb-pecallframeinfo.exe":
				// Written by hand for LLDB's tests, its frame-pointer
				// function's SET_FPREG has operation info 3, which the
				// format reserves (Windows and LLDB ignore it).
				if status != 1 || !strings.Contains(stderr, "1 of 5 functions have errors") || !strings.Contains(stdout, "SET_FPREG operation info") {
					t.Errorf("status %d, stdout %q, stderr %q", status, stdout, stderr)
				}
			default:
				if status != 0 || stderr != "" {
					t.Errorf("status %d, stderr %q", status, stderr)
				}
			}
			if !json.Valid([]byte(stdout)) {
				t.Errorf("output is not valid JSON")
			}
		})
	}
}

// checkGolden compares got with the file at path, or rewrites it with
// -update, printing a line diff on a mismatch.
func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	golden.Check(t, path, got, *update)
}
