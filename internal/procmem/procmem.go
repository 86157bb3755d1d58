package procmem

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/fntable/fntable/memory"
)

// These are the errors returned by this package, besides those of package
// memory (reads).
var (
	// ErrUnsupported: this OS has no way to read another process here.
	ErrUnsupported = errors.New("reading process memory is not supported on this OS")
)

// Process is the memory of a process. It implements memory.Reader.
// ReadMemory is safe for concurrent use; Close must not run concurrently
// with it.
type Process struct {
	pid     int
	useFile atomic.Bool // process_vm_readv was denied: read /proc/PID/mem
	mu      sync.Mutex  // guards mem
	mem     fileReaderAt
}

// fileReaderAt is the part of *os.File the fallback uses.
type fileReaderAt interface {
	ReadAt(p []byte, off int64) (int, error)
	Close() error
}

// Pid returns the process's id.
func (p *Process) Pid() int { return p.pid }

// Close releases the files the Process opened. It does not affect the
// process.
func (p *Process) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mem == nil {
		return nil
	}
	err := p.mem.Close()
	p.mem = nil
	return err
}

var _ memory.Reader = (*Process)(nil)
