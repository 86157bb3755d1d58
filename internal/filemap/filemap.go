// Package filemap maps part of a file into memory, read-only, where the
// system has mmap(2), so that a large section is paged in as it is read
// instead of copied whole.
package filemap

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
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

// Ranges records the address ranges of mappings, with what each maps,
// so that a fault in one of them can be told from any other fault
// (Catch). Its zero value holds none. It is safe for concurrent use.
type Ranges struct {
	any atomic.Bool
	mu  sync.Mutex
	rs  []mapping
}

// mapping is a recorded mapping: [start, end), of what.
type mapping struct {
	start, end uintptr
	what       string
}

// Add records the mapping b of what (a file and section, for errors).
func (r *Ranges) Add(b []byte, what string) {
	if len(b) == 0 {
		return
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	r.mu.Lock()
	r.rs = append(r.rs, mapping{start, start + uintptr(len(b)), what})
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
//	defer r.Catch(&err, r.Guard())
func (r *Ranges) Guard() (old bool) { return debug.SetPanicOnFault(true) }

// Catch, deferred, restores the goroutine's setting old (from Guard) and
// turns a panic caused by a fault in one of r's mappings into *err
// wrapping ErrChanged, naming what the mapping maps; any other panic
// goes on.
func (r *Ranges) Catch(err *error, old bool) {
	debug.SetPanicOnFault(old)
	p := recover()
	if p == nil {
		return
	}
	if f, ok := p.(interface{ Addr() uintptr }); ok {
		if what, ok := r.holding(f.Addr()); ok {
			*err = fmt.Errorf("%s: read at %#x: %w", what, f.Addr(), ErrChanged)
			return
		}
	}
	panic(p)
}

// holding returns what the recorded mapping that holds addr maps.
func (r *Ranges) holding(addr uintptr) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.rs {
		if addr >= m.start && addr < m.end {
			return m.what, true
		}
	}
	return "", false
}

// Section maps section s of the ELF file f, when s is stored as it is
// used: not compressed (SHF_COMPRESSED, or GNU's .zdebug_ form) and with
// bytes in the file. Otherwise, or when f is nil, it returns an error and
// the caller reads the section instead.
func Section(f *os.File, s *elf.Section) ([]byte, func(), error) {
	switch {
	case f == nil:
		return nil, nil, errors.New("filemap: no file to map from")
	case s.Type == elf.SHT_NOBITS || s.Flags&elf.SHF_COMPRESSED != 0 || strings.HasPrefix(s.Name, ".zdebug_"):
		return nil, nil, fmt.Errorf("filemap: section %s is not stored as it is used", s.Name)
	}
	return Map(f, s.Offset, s.Size)
}
