//go:build !linux

package remote

import (
	"fmt"

	"github.com/fntable/fntable/functable"
)

// Find returns the published lists of process pid. Lists are published on
// Linux only: elsewhere it fails with functable.ErrUnsupported.
func Find(pid int) ([]Mapping, error) {
	return nil, fmt.Errorf("find function table lists of process %d: %w", pid, functable.ErrUnsupported)
}
