// Package filemap maps part of a file into memory, read-only, where the
// system has mmap(2), so that a large section is paged in as it is read
// instead of copied whole.
package filemap

import (
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"unsafe"
)

// ErrUnsupported: this system has no mmap that package syscall offers;
// read the file instead.
var ErrUnsupported = errors.New("filemap: no mmap on this system")

// ErrChanged: a mapped file shrank while it was mapped (it was truncated
// or rewritten in place), and a read of the mapping past its new end
// faulted. See [Ranges.Catch].
var ErrChanged = errors.New("the file changed while it was mapped (truncated or rewritten in place)")

// Ranges records the address ranges of mappings, so that a fault in one
// of them can be told from any other fault (Catch). Its zero value holds
// none. It is safe for concurrent use.
type Ranges struct {
	any atomic.Bool
	mu  sync.Mutex
	rs  [][2]uintptr // [start, end)
}

// Add records the mapping b.
func (r *Ranges) Add(b []byte) {
	if len(b) == 0 {
		return
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	r.mu.Lock()
	r.rs = append(r.rs, [2]uintptr{start, start + uintptr(len(b))})
	r.mu.Unlock()
	r.any.Store(true)
}

// Any reports whether a mapping was recorded: with none, a caller need
// not Guard.
func (r *Ranges) Any() bool { return r.any.Load() }

// Guard makes a fault on this goroutine a panic instead of the end of
// the process (debug.SetPanicOnFault) and returns the setting to restore.
// Use it with Catch, deferred at once:
//
//	defer r.Catch(&err, r.Guard(), name)
func (r *Ranges) Guard() (old bool) { return debug.SetPanicOnFault(true) }

// Catch, deferred, restores the goroutine's setting old (from Guard) and
// turns a panic caused by a fault in one of r's mappings into *err
// wrapping ErrChanged, naming the file name; any other panic goes on.
func (r *Ranges) Catch(err *error, old bool, name string) {
	debug.SetPanicOnFault(old)
	p := recover()
	if p == nil {
		return
	}
	if f, ok := p.(interface{ Addr() uintptr }); ok && r.holds(f.Addr()) {
		*err = fmt.Errorf("%s: read at %#x: %w", name, f.Addr(), ErrChanged)
		return
	}
	panic(p)
}

// holds reports whether addr is in a recorded mapping.
func (r *Ranges) holds(addr uintptr) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.rs {
		if addr >= m[0] && addr < m[1] {
			return true
		}
	}
	return false
}
