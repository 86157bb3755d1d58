//go:build unix

package filemap

import (
	"fmt"
	"math"
	"os"
	"syscall"
)

// Map maps size bytes of f from offset off, read-only and shared, and
// returns them with the function that unmaps them. The bytes must not be
// used after it is called. A range that the file does not hold whole is
// an error (a mapping past the end of a file faults when read); a file
// truncated after it is mapped still makes reads past its new end fault.
// A size of 0 gives an empty slice and nothing to unmap.
func Map(f *os.File, off, size uint64) ([]byte, func(), error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if end := off + size; end < off || fi.Size() < 0 || end > uint64(fi.Size()) {
		return nil, nil, fmt.Errorf("filemap: %s: bytes %#x to %#x past the end of the file (%d bytes)", f.Name(), off, off+size, fi.Size())
	}
	if size == 0 {
		return []byte{}, func() {}, nil
	}
	page := uint64(os.Getpagesize())
	start := off &^ (page - 1)
	if off-start+size > math.MaxInt {
		return nil, nil, fmt.Errorf("filemap: %s: %d bytes do not fit this system's address space", f.Name(), size)
	}
	b, err := syscall.Mmap(int(f.Fd()), int64(start), int(off-start+size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	return b[off-start:], func() { syscall.Munmap(b) }, nil
}
