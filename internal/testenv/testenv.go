// Package testenv tells tests what the machine has: a test that needs a
// program or file the machine lacks is skipped with the reason, except
// under CI (the environment variable CI is set), where it fails, because
// CI must prove that every test ran.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// Unavailable reports that the machine lacks something the test needs:
// the test is skipped, or fails when CI is set.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf(format+" (CI is set, so this fails instead of skipping)", args...)
	}
	t.Skipf(format, args...)
}

// Tool returns the path of the program name, looked up in PATH, or calls
// Unavailable.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, "needs %s: %v", name, err)
	}
	return p
}
