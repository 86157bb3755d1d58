//go:build !(linux && amd64)

package demotarget

import (
	"fmt"
	"os"
	"runtime"
)

// Main runs the target; it exists on linux/amd64 only, and elsewhere
// reports so and returns 1.
func Main(args []string) int {
	fmt.Fprintf(os.Stderr, "demotarget: the demo target runs on linux/amd64 only, not %s/%s\n", runtime.GOOS, runtime.GOARCH)
	return 1
}
