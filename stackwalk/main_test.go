package stackwalk_test

import (
	"os"
	"testing"

	"github.com/fntable/fntable/internal/demotarget"
)

// TestMain lets the test binary be the demo target that tests start
// (demotarget.Start re-executes it).
func TestMain(m *testing.M) {
	if demotarget.IsTarget() {
		os.Exit(demotarget.Main(os.Args[1:]))
	}
	os.Exit(m.Run())
}
