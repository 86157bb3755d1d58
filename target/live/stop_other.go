//go:build !linux

package live

import (
	"fmt"
)

// Stop stops every thread of process pid and returns the process as a
// [Stopped]. On this OS it fails with [ErrUnsupported].
func Stop(pid int, opts StopOptions) (*Stopped, error) {
	return nil, fmt.Errorf("stop process %d: %w", pid, ErrUnsupported)
}

// Check fails with [ErrUnsupported] on this OS.
func Check(pid int) error { return fmt.Errorf("process %d: %w", pid, ErrUnsupported) }

// Prepare does nothing on this OS.
func Prepare() {}

// tracer makes a Stopped's ptrace requests; there is none on this OS.
type tracer struct{}

func (t *tracer) do(f func() error) error { return fmt.Errorf("trace: %w", ErrUnsupported) }

func fpRegs(t *thread) error { return ErrUnsupported }

func (s *Stopped) resume() error { return nil }

// describe does nothing: there are no stopped threads here.
func (s *Stopped) describe(t *thread) { t.described = true }
