package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fntable/fntable/provider"
)

// The C API is tested from C: the library is built in both modes with the
// go command, example/jit.c is compiled and linked against each, and its
// checks run in a process of their own (a crash there fails the test
// without taking the test binary down).

// requireTools skips the test unless it runs on linux/amd64 and finds the
// tools. With CI set, a missing tool fails it instead if ciRequired (CI
// installs gcc, not g++).
func requireTools(t *testing.T, ciRequired bool, tools ...string) map[string]string {
	t.Helper()
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skipf("needs linux/amd64: libfntable is built there only (this is %s/%s)", runtime.GOOS, runtime.GOARCH)
	}
	paths := map[string]string{}
	for _, tool := range tools {
		p, err := exec.LookPath(tool)
		if err != nil {
			if ciRequired && os.Getenv("CI") != "" {
				t.Fatalf("%s is required with CI set: %v", tool, err)
			}
			t.Skipf("needs %s to build the C library and example: %v", tool, err)
		}
		paths[tool] = p
	}
	return paths
}

// libs holds the libraries, built once per test binary.
var libs struct {
	once sync.Once
	dir  string // holds libfntable.so and libfntable.a
	err  error
}

// libraryModes are the build modes tested, with the file each produces.
var libraryModes = []struct{ mode, file string }{
	{"c-shared", "libfntable.so"},
	{"c-archive", "libfntable.a"},
}

// buildLibraries builds libfntable in every mode into a directory that
// lives as long as the test binary, and returns the directory. The builds
// run one after the other: they compile the same position-independent
// standard library, which the second then finds in the build cache.
func buildLibraries(t *testing.T, goCmd string) string {
	t.Helper()
	libs.once.Do(func() {
		libs.dir, libs.err = os.MkdirTemp("", "libfntable-test-")
		if libs.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		for _, m := range libraryModes {
			cmd := exec.CommandContext(ctx, goCmd, "build", "-buildmode="+m.mode, "-o", filepath.Join(libs.dir, m.file), ".")
			cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
			if out, err := cmd.CombinedOutput(); err != nil {
				libs.err = fmt.Errorf("go build -buildmode=%s: %v\n%s", m.mode, err, out)
				return
			}
		}
	})
	if libs.err != nil {
		t.Fatal(libs.err)
	}
	return libs.dir
}

func TestMain(m *testing.M) {
	// The isolated provider calls of TestExampleWalkedFromOutside run
	// this binary as their helper.
	if provider.IsHelper() {
		os.Exit(provider.HelperMain())
	}
	code := m.Run()
	if libs.dir != "" {
		os.RemoveAll(libs.dir)
	}
	os.Exit(code)
}

// exampleChecks are lines the example prints when a part of it passed.
var exampleChecks = []string{
	"ok   RtlAddFunctionTable: 2 entries (unsorted)",
	"ok   RtlLookupFunctionEntry: finds both functions in the library's copy",
	"ok   overlapping RtlAddFunctionTable: FALSE, STATUS_CONFLICTING_ADDRESSES",
	"ok   static table: unwound the JIT frame",
	"ok   epilog:",
	"ok   prolog:",
	"ok   unreadable stack and entry:",
	"ok   malformed UNWIND_INFO:",
	"ok   leaf:",
	"ok   RtlDeleteFunctionTable: gone",
	"ok   RtlInstallFunctionTableCallback:",
	"ok   lookup: the callback ran once with the exact PC and Context",
	"ok   callback table: unwound the JIT frame",
	"ok   RtlDeleteFunctionTable(TableIdentifier): gone",
	"ok   RtlAddGrowableFunctionTable: 0 of 4 entries",
	"ok   RtlGrowFunctionTable(1):",
	"ok   growable table: unwound the JIT frame",
	"ok   RtlGrowFunctionTable misuse",
	"ok   RtlDeleteGrowableFunctionTable: gone",
	"ok   RtlDeleteFunctionTable(growable handle): gone",
	"ok   indirect entry:",
	"threads x 20000 lookups while another table was added and deleted 500 times",
}

// cflags are the flags the example is compiled with: strict, so that the
// header stays clean C11.
var cflags = []string{"-std=c11", "-O2", "-fno-omit-frame-pointer", "-Wall", "-Wextra", "-pedantic", "-Werror"}

func TestExample(t *testing.T) {
	tools := requireTools(t, true, "go", "gcc")
	src, err := filepath.Abs("example/jit.c")
	if err != nil {
		t.Fatal(err)
	}
	inc, err := filepath.Abs("include")
	if err != nil {
		t.Fatal(err)
	}
	lib := buildLibraries(t, tools["go"])
	for _, m := range libraryModes {
		t.Run(m.mode, func(t *testing.T) {
			t.Parallel()
			exe := filepath.Join(t.TempDir(), "jit")
			args := append(append([]string{}, cflags...), "-I", inc, src)
			if m.mode == "c-shared" {
				args = append(args, "-L", lib, "-lfntable", "-Wl,-rpath,"+lib)
			} else {
				args = append(args, filepath.Join(lib, m.file))
			}
			args = append(args, "-lpthread", "-o", exe)
			if out, err := exec.Command(tools["gcc"], args...).CombinedOutput(); err != nil {
				t.Fatalf("gcc %s: %v\n%s", strings.Join(args, " "), err, out)
			}

			for _, env := range exampleEnvs {
				runExample(t, exe, env)
			}
		})
	}
}

// exampleEnvs are the environments the example runs in: by default (the
// library publishes its tables where it can), without publishing, and
// with failures described on stderr.
var exampleEnvs = []string{"", "FNTABLE_PUBLISH=0", "FNTABLE_DEBUG=1"}

// runExample runs the example with env added to the environment and
// checks its output.
func runExample(t *testing.T, exe, env string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = os.Environ()
	if env != "" {
		cmd.Env = append(cmd.Env, env)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	t.Logf("example output with %q:\n%s", env, out)
	if err != nil {
		t.Fatalf("example with %q failed: %v\nstderr:\n%s", env, err, stderr.Bytes())
	}
	switch {
	case env == "FNTABLE_DEBUG=1":
		// The example misuses RtlGrowFunctionTable on purpose.
		if !strings.Contains(stderr.String(), "libfntable: RtlGrowFunctionTable: grow function table") {
			t.Errorf("with %s, stderr does not describe the failed RtlGrowFunctionTable:\n%s", env, stderr.Bytes())
		}
	case stderr.Len() > 0:
		t.Errorf("example with %q wrote to stderr (the library must be silent without FNTABLE_DEBUG):\n%s", env, stderr.Bytes())
	}
	text := string(out)
	for _, want := range exampleChecks {
		if !strings.Contains(text, want) {
			t.Errorf("output with %q lacks %q", env, want)
		}
	}
	if strings.Contains(text, "FAIL") || !strings.HasSuffix(text, "\nPASS\n") {
		t.Errorf("output with %q does not end in PASS, or reports a failure", env)
	}
}

// TestHeaderCxx checks that fntable.h compiles as strict C++ as well,
// since JITs are often written in it. It needs g++, which CI need not have.
func TestHeaderCxx(t *testing.T) {
	tools := requireTools(t, false, "g++")
	dir := t.TempDir()
	src := filepath.Join(dir, "header.cc")
	const prog = `#include "fntable.h"
int main() {
    CONTEXT ctx;
    KNONVOLATILE_CONTEXT_POINTERS ptrs = {};
    UNWIND_HISTORY_TABLE history = {};
    DWORD64 base = 0;
    FNTABLE_CALLER_CONTEXT(&ctx);
    PRUNTIME_FUNCTION fn = RtlLookupFunctionEntry(ctx.Rip, &base, &history);
    return fn != nullptr && ptrs.Rbx == nullptr && ctx.Xmm0.Low == 0;
}
`
	if err := os.WriteFile(src, []byte(prog), 0o666); err != nil {
		t.Fatal(err)
	}
	inc, err := filepath.Abs("include")
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-std=c++11", "-Wall", "-Wextra", "-pedantic", "-Werror", "-fsyntax-only", "-I", inc, src}
	if out, err := exec.Command(tools["g++"], args...).CombinedOutput(); err != nil {
		t.Fatalf("g++ %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
