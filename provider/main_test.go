package provider

import (
	"os"
	"testing"
)

// TestMain runs the helper of isolated calls when the tests re-execute
// their own binary as one (Resolver.Executable defaults to it).
func TestMain(m *testing.M) {
	if IsHelper() {
		os.Exit(HelperMain())
	}
	os.Exit(m.Run())
}
