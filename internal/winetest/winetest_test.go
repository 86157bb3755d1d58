package winetest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSharedDir(t *testing.T) {
	dir := SharedDir(t)
	if !filepath.IsAbs(dir) || filepath.Base(dir) != "shared" {
		t.Errorf("SharedDir = %q, want an absolute path ending in shared", dir)
	}
	manifest := Testdata(t, "MANIFEST.md")
	if manifest != filepath.Join(dir, "testdata", "MANIFEST.md") {
		t.Errorf("Testdata(MANIFEST.md) = %q, not under %q", manifest, dir)
	}
	data, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte("# Test data manifest")) {
		t.Errorf("%s does not look like the test data manifest", manifest)
	}
}

func TestModuleRoot(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := moduleRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Dir(filepath.Dir(wd)); root != want {
		t.Errorf("moduleRoot(%s) = %s, want %s", wd, root, want)
	}
	if root, err := moduleRoot(filepath.Join(string(filepath.Separator), "no", "such", "dir")); err == nil {
		t.Errorf("moduleRoot of a directory without go.mod = %s, want an error", root)
	}
}

func TestParseDeps(t *testing.T) {
	rule := "x: /usr/include/a.h \\\n /usr/include/with\\ space.h src/../rel.h \\\r\n  dollar$$.h /usr/include/a.h\nx: /usr/include/b.h\n"
	got := parseDeps([]byte(rule))
	want := []string{"/usr/include/a.h", "/usr/include/with space.h", "src/../rel.h", "dollar$.h", "/usr/include/b.h"}
	if !slices.Equal(got, want) {
		t.Errorf("parseDeps =\n%q\nwant\n%q", got, want)
	}
}

func TestQuote(t *testing.T) {
	if got := quote([]byte(" \n")); got != "" {
		t.Errorf("quote(blank) = %q, want empty", got)
	}
	if got := quote([]byte("boom\n")); got != "; stderr:\nboom" {
		t.Errorf("quote(boom) = %q", got)
	}
	long := bytes.Repeat([]byte("e"), maxStderr+100)
	if got := quote(long); len(got) > maxStderr+100 || !strings.Contains(got, "first 4096 of 4196 bytes") {
		t.Errorf("quote(%d bytes) is %d bytes and starts %q", len(long), len(got), got[:60])
	}
}

func TestLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prefix.lock")
	var (
		wg          sync.WaitGroup
		mu          sync.Mutex
		held, worst int
	)
	for range 4 {
		wg.Go(func() {
			unlock, err := lock(path)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			held++
			worst = max(worst, held)
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
			mu.Lock()
			held--
			mu.Unlock()
			unlock()
		})
	}
	wg.Wait()
	if worst != 1 {
		t.Errorf("%d holders at once, want 1", worst)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file left behind: %v", err)
	}

	// A lock abandoned by a dead process is taken over.
	if err := os.WriteFile(path, []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * lockStale)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	unlock, err := lock(path)
	if err != nil {
		t.Fatal(err)
	}
	unlock()
}

// probeC registers a function table for a small hand-written function, looks
// PCs up in it, and echoes its arguments and standard input. "fail" as the
// first argument makes it exit with status 3, "sleep" makes it hang.
const probeC = `#include <windows.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    /* push rbp; sub rsp,0x20; add rsp,0x20; pop rbp; ret */
    static const BYTE fn[] = {0x55, 0x48, 0x83, 0xec, 0x20, 0x48, 0x83, 0xc4, 0x20, 0x5d, 0xc3};
    BYTE *code = VirtualAlloc(NULL, 0x1000, MEM_RESERVE | MEM_COMMIT, PAGE_EXECUTE_READWRITE);
    RUNTIME_FUNCTION *rf = (RUNTIME_FUNCTION *)(code + 0x200);
    BYTE *ui = code + 0x100;
    DWORD64 base = 0;
    PRUNTIME_FUNCTION got;
    char line[256];

    if (argc > 1 && !strcmp(argv[1], "fail")) {
        fputs("boom\n", stderr);
        return 3;
    }
    if (argc > 1 && !strcmp(argv[1], "sleep")) {
        Sleep(INFINITE);
    }
    memcpy(code, fn, sizeof fn);
    /* UNWIND_INFO v1: prolog 5 bytes, 2 codes, no frame register */
    ui[0] = 1; ui[1] = 5; ui[2] = 2; ui[3] = 0;
    ui[4] = 5; ui[5] = 0x32; /* at 5: UWOP_ALLOC_SMALL 0x20 */
    ui[6] = 1; ui[7] = 0x50; /* at 1: UWOP_PUSH_NONVOL rbp */
    rf->BeginAddress = 0;
    rf->EndAddress = sizeof fn;
    rf->UnwindData = 0x100;
    if (!RtlAddFunctionTable(rf, 1, (DWORD64)code)) {
        puts("RtlAddFunctionTable failed");
        return 1;
    }
    got = RtlLookupFunctionEntry((DWORD64)code + 6, &base, NULL);
    printf("inside: %s, base %s\n", got == rf ? "entry" : "wrong", base == (DWORD64)code ? "ok" : "wrong");
    got = RtlLookupFunctionEntry((DWORD64)code + sizeof fn, &base, NULL);
    printf("end: %s\n", got ? "entry" : "none");
    RtlDeleteFunctionTable(rf);
    got = RtlLookupFunctionEntry((DWORD64)code + 6, &base, NULL);
    printf("deleted: %s\n", got ? "entry" : "none");
    for (int i = 1; i < argc; i++)
        printf("arg: %s\n", argv[i]);
    while (fgets(line, sizeof line, stdin))
        printf("stdin: %s", line);
    return 0;
}
`

// buildProbe compiles probeC.
func buildProbe(t *testing.T, e *Env) string {
	dir := t.TempDir()
	src := filepath.Join(dir, "probe.c")
	if err := os.WriteFile(src, []byte(probeC), 0o644); err != nil {
		t.Fatal(err)
	}
	return e.BuildC(t, filepath.Join(dir, "probe.exe"), "-O2", "-Wall", src)
}

func TestRunFunctionTable(t *testing.T) {
	e := Require(t)
	t.Logf("%s, prefix %s", e.Version(), e.Prefix)
	if !strings.HasPrefix(e.Version(), "wine-") {
		t.Errorf("Version() = %q, want wine-...", e.Version())
	}
	exe := buildProbe(t, e)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	start := time.Now()
	out, err := e.Run(ctx, exe, strings.NewReader("one\ntwo\n"), "a b", "c")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ran %s in %v", filepath.Base(exe), time.Since(start))
	want := "inside: entry, base ok\nend: none\ndeleted: none\narg: a b\narg: c\nstdin: one\nstdin: two\n"
	if got := strings.ReplaceAll(string(out), "\r\n", "\n"); got != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}

	out, err = e.Run(ctx, exe, nil, "fail")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 || !strings.Contains(err.Error(), "boom") {
		t.Errorf(`Run(fail) = %q, %v; want exit status 3 quoting "boom"`, out, err)
	}

	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	start = time.Now()
	_, err = e.Run(short, exe, nil, "sleep")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run(sleep) with a deadline = %v, want %v", err, context.DeadlineExceeded)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Run(sleep) returned %v after its deadline", d)
	}
}

func TestBuildCCache(t *testing.T) {
	e := Require(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	const source = "#include <stdio.h>\n#include \"v.h\"\nint main(void) { printf(\"%d\\n\", V); return 0; }\n"
	// build writes the program and a v.h defining V in a new directory
	// and builds it there.
	build := func(dir, v string) string {
		t.Helper()
		if dir == "" {
			dir = t.TempDir()
		}
		src := filepath.Join(dir, "v.c")
		if err := os.WriteFile(src, []byte(source), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "v.h"), []byte("#define V "+v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return e.BuildC(t, filepath.Join(dir, "v.exe"), "-O2", src)
	}
	run := func(exe string) string {
		t.Helper()
		out, err := e.Run(t.Context(), exe, nil)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}

	dirA := t.TempDir()
	build(dirA, "1")
	entries, err := filepath.Glob(filepath.Join(os.Getenv("XDG_CACHE_HOME"), "fntable", "winebuild", "*", "out"))
	if err != nil || len(entries) != 1 {
		t.Fatalf("cache entries after one build: %q, %v", entries, err)
	}
	deps, err := os.ReadFile(filepath.Join(filepath.Dir(entries[0]), "deps"))
	if err != nil || !bytes.Contains(deps, []byte(" @1/v.h\n")) || !bytes.Contains(deps, []byte("/stdio.h\n")) {
		t.Errorf("cached deps do not list @1/v.h and stdio.h:\n%s", deps)
	}

	// Mark the cached program: a build of the same source and header in
	// another directory must return it as is.
	marker := []byte("cached")
	if err := os.WriteFile(entries[0], marker, 0o755); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(build("", "1")); !bytes.Equal(got, marker) {
		t.Errorf("the same program in another directory did not come from the cache")
	}
	// A different header beside the same source makes a real build.
	if got := run(build("", "2")); got != "2" {
		t.Errorf("with V 2 in another directory the program prints %q", got)
	}
	// So does a changed header in place.
	if got := run(build(dirA, "3")); got != "3" {
		t.Errorf("after changing v.h the program prints %q, want 3", got)
	}
}

func TestBuildCError(t *testing.T) {
	e := Require(t)
	src := filepath.Join(t.TempDir(), "bad.c")
	if err := os.WriteFile(src, []byte("int main(void) { return undeclared_thing; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := e.buildC(t.Context(), filepath.Join(t.TempDir(), "bad.exe"), []string{src})
	if err == nil || !strings.Contains(err.Error(), "undeclared_thing") {
		t.Errorf("building a broken program: %v; want the compiler's message", err)
	}
}
