//go:build unix

package filemap

import (
	"os"
	"syscall"
)

// Map maps size bytes of f from offset off, read-only and shared, and
// returns them with the function that unmaps them. The bytes must not be
// used after it is called. A file truncated while mapped makes reads past
// its new end fault.
func Map(f *os.File, off, size uint64) ([]byte, func(), error) {
	page := uint64(os.Getpagesize())
	start := off &^ (page - 1)
	b, err := syscall.Mmap(int(f.Fd()), int64(start), int(off-start+size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	return b[off-start:], func() { syscall.Munmap(b) }, nil
}
