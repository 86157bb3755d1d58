//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package elfsym

import (
	"io"
	"os"
)

// mapFile reads the first size bytes of f: this system has no mmap that
// package syscall offers.
func mapFile(f *os.File, size int) ([]byte, error) {
	b := make([]byte, size)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, err
	}
	return b, nil
}

// fileKey reports that files are not identified here: each open reads its
// copy.
func fileKey(os.FileInfo) ([2]uint64, bool) { return [2]uint64{}, false }
