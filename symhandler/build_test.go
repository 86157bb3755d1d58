package symhandler_test

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fntable/fntable/internal/testenv"
	"github.com/fntable/fntable/symfile"
)

// run runs a command and fails the test with its output on error.
func run(t testing.TB, dir string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// buildC compiles the C sources (name → text) into dir/out with gcc and
// the given flags, and returns the executable's path.
func buildC(t testing.TB, dir, out string, sources map[string]string, flags ...string) string {
	t.Helper()
	gcc := testenv.Tool(t, "gcc")
	args := append([]string{}, flags...)
	for name, text := range sources {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	exe := filepath.Join(dir, out)
	run(t, dir, gcc, append(args, "-o", exe)...)
	return exe
}

// The test program: two files, each with a static function called
// helper (a duplicate name), an inlined function and an exported one.
var progSources = map[string]string{
	"main.c": `#include <stdio.h>
static int helper(int x) { return x * 3 + 1; }
static inline __attribute__((always_inline)) int twice(int x) { return helper(x) * 2; }
int other(int);
int compute(int x) {
	int r = twice(x);
	return r + other(x);
}
int main(int argc, char **argv) {
	printf("%d\n", compute(argc));
	return 0;
}
`,
	"other.c": `static int helper(int x) { return x - 7; }
int other(int x) { return helper(x) ^ 5; }
`,
}

// splitDebug builds the test program with a build ID, moves its debug
// information to prog.debug (linked by .gnu_debuglink) and strips the
// executable completely: no .symtab and no DWARF. It returns both paths.
func splitDebug(t testing.TB, dir string) (exe, debug string) {
	t.Helper()
	objcopy := testenv.Tool(t, "objcopy")
	exe = buildC(t, dir, "prog", progSources, "-g", "-O2", "-Wl,--build-id", "-no-pie", "-static-libgcc")
	debug = exe + ".debug"
	run(t, dir, objcopy, "--only-keep-debug", exe, debug)
	run(t, dir, objcopy, "--strip-all", "--add-gnu-debuglink="+debug, exe)
	return exe, debug
}

// symbolAddr returns the value of the ELF symbol name in file, read with
// debug/elf (an oracle independent of the readers).
func symbolAddr(t testing.TB, file, name string) uint64 {
	t.Helper()
	f, err := elf.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syms {
		if s.Name == name && s.Value != 0 {
			return s.Value
		}
	}
	t.Fatalf("%s has no symbol %s", file, name)
	return 0
}

// identBuildID returns file's NT_GNU_BUILD_ID, read with debug/elf.
func identBuildID(t testing.TB, file string) []byte {
	t.Helper()
	f, err := elf.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := f.Section(".note.gnu.build-id")
	if s == nil {
		t.Fatalf("%s has no build ID", file)
	}
	b, err := s.Data()
	if err != nil || len(b) < 16 {
		t.Fatalf("%s: build ID note: %v", file, err)
	}
	return b[16:]
}

func symfileOptions() symfile.Options { return symfile.Options{Lines: true} }
