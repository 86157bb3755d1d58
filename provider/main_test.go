package provider

import (
	"os"
	"strings"
	"testing"
)

// TestMain runs the helper of isolated calls when the tests re-execute
// their own binary as one (Resolver.Executable defaults to it).
func TestMain(m *testing.M) {
	if IsHelper() {
		os.Exit(HelperMain())
	}
	// A helper built with -race would sleep a second at exit (the race
	// runtime's atexit_sleep_ms, 1000 by default).
	if g := os.Getenv("GORACE"); !strings.Contains(g, "atexit_sleep_ms") {
		os.Setenv("GORACE", strings.TrimSpace(g+" atexit_sleep_ms=0"))
	}
	os.Exit(m.Run())
}
