//go:build !linux

package provider

import (
	"fmt"
	"os"
)

// HelperMain is the main function of the helper process of an isolated
// call. Providers are loaded on Linux only: here it reports that and
// returns 2.
func HelperMain() int {
	fmt.Fprintf(os.Stderr, "provider helper: %v\n", ErrUnsupportedOS)
	return 2
}

// callIsolated fails: providers are loaded on Linux only.
func (r *Resolver) callIsolated(trust *Trust, d Decision, pid int, table uint64) (answer, bool, error) {
	return answer{}, false, ErrUnsupportedOS
}
