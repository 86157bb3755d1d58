//go:build !linux

package procmem

import (
	"fmt"

	"github.com/fntable/fntable/memory"
)

// Open returns the memory of process pid. On this OS it fails with
// [ErrUnsupported].
func Open(pid int) (*Process, error) {
	return nil, fmt.Errorf("open process %d: %w", pid, ErrUnsupported)
}

// ReadMemory implements memory.Reader. On this OS it always fails.
func (p *Process) ReadMemory(b []byte, addr uint64) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	return 0, &memory.ReadError{Addr: addr, Err: ErrUnsupported}
}
