package memory

import (
	"errors"
	"fmt"
)

// Reader reads an address space.
//
// ReadMemory reads len(p) bytes at addr into p and returns the number of
// bytes read. When that is less than len(p) it returns a non-nil error
// that matches [ErrShortRead] (an *[UnmappedError], a *[ReadError], or an
// error wrapping [ErrTargetGone]); it never succeeds silently. It must not
// retain p. This is delve's MemoryReader.
type Reader interface {
	ReadMemory(p []byte, addr uint64) (n int, err error)
}

// These are the errors of memory reads. Every error a [Reader] returns for
// a short read matches ErrShortRead; the others say why.
var (
	// ErrShortRead: fewer bytes could be read than asked.
	ErrShortRead = errors.New("short read")
	// ErrTargetGone: the target process has exited (ESRCH), so neither
	// this read nor any later one can succeed. Errors that wrap it also
	// match ErrShortRead when they come from a read.
	ErrTargetGone = errors.New("target gone")
)

// UnmappedError reports a read of an address that the target does not map
// (or maps without read access, or that a dump holds no bytes for). It
// matches [ErrShortRead] with errors.Is.
type UnmappedError struct {
	Addr uint64 // first address that could not be read
}

func (e *UnmappedError) Error() string { return fmt.Sprintf("address %#x is not mapped", e.Addr) }

// Is makes errors.Is(err, ErrShortRead) true for an UnmappedError.
func (e *UnmappedError) Is(target error) bool { return target == ErrShortRead }

// ReadError reports a read that failed for a reason other than the
// address being unmapped: the kernel refused it (EPERM), an I/O error, a
// provider's failure. Err is the cause; when the target has exited it
// wraps [ErrTargetGone]. A ReadError matches [ErrShortRead] and its Err
// with errors.Is.
type ReadError struct {
	Addr uint64 // first address that could not be read
	Err  error  // the cause
}

func (e *ReadError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("could not read memory at %#x", e.Addr)
	}
	return fmt.Sprintf("could not read memory at %#x: %v", e.Addr, e.Err)
}

// Unwrap returns ErrShortRead and the cause.
func (e *ReadError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrShortRead}
	}
	return []error{ErrShortRead, e.Err}
}

// Gone returns the error of a read at addr of a target that has exited: a
// *[ReadError] wrapping [ErrTargetGone] and cause (which may be nil), so
// that it matches ErrShortRead, ErrTargetGone and cause.
func Gone(addr uint64, cause error) error {
	if cause == nil {
		return &ReadError{Addr: addr, Err: ErrTargetGone}
	}
	return &ReadError{Addr: addr, Err: fmt.Errorf("%w: %w", ErrTargetGone, cause)}
}

// ReadFull reads len(p) bytes at addr from m, or fails: with m's error, or
// ErrShortRead when m returned fewer bytes without one. A count m returns
// outside [0, len(p)] is taken as no bytes.
func ReadFull(m Reader, p []byte, addr uint64) error {
	n, err := m.ReadMemory(p, addr)
	if n > len(p) || n < 0 {
		n = 0 // a Reader that lies about its count
	}
	if n < len(p) {
		if err == nil {
			err = ErrShortRead
		}
		return fmt.Errorf("read %d bytes at %#x: %w", len(p), addr, err)
	}
	return nil
}
