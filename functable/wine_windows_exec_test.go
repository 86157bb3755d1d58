//go:build linux

package functable

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fntable/fntable/internal/winetest"
)

// TestNtdllUnderWine runs the windows/amd64 tests of this package
// (ntdll_windows_test.go: the registry forwards its tables to ntdll) under
// Wine: it cross-compiles the package's test binary and runs its TestNtdll
// tests. It is skipped without Wine, or fails when CI is set.
func TestNtdllUnderWine(t *testing.T) {
	env := winetest.Require(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()

	gocmd, err := exec.LookPath("go")
	if err != nil {
		gocmd = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	exe := filepath.Join(t.TempDir(), "functable.test.exe")
	build := exec.CommandContext(ctx, gocmd, "test", "-c", "-o", exe, ".")
	build.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0")
	start := time.Now()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("GOOS=windows GOARCH=amd64 go test -c: %v\n%s", err, out)
	}
	built := time.Since(start)

	start = time.Now()
	out, err := env.Run(ctx, exe, nil, "-test.run", "^TestNtdll", "-test.v", "-test.count", "1")
	t.Logf("%s: built in %v, ran in %v", env.Version(), built.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	text := strings.ReplaceAll(string(out), "\r\n", "\n")
	if err != nil {
		t.Fatalf("windows test binary under Wine: %v\n%s", err, text)
	}
	results := regexp.MustCompile(`(?m)^\s*--- (PASS|FAIL|SKIP): (\S+)`).FindAllStringSubmatch(text, -1)
	counts := map[string]int{}
	for _, m := range results {
		counts[m[1]]++
		if m[1] == "SKIP" {
			t.Logf("skipped under Wine: %s", m[2])
		}
	}
	if counts["FAIL"] > 0 || counts["PASS"] < 6 || !strings.HasSuffix(strings.TrimSpace(text), "PASS") {
		t.Fatalf("windows tests under Wine: %d passed, %d failed, %d skipped; output:\n%s", counts["PASS"], counts["FAIL"], counts["SKIP"], text)
	}
	t.Logf("windows tests under Wine: %d passed, %d skipped", counts["PASS"], counts["SKIP"])
	if testing.Verbose() {
		t.Logf("output:\n%s", text)
	}
}
