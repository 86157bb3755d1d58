//go:build !unix

package filemap

import "os"

// Map fails with ErrUnsupported: this system has no mmap.
func Map(f *os.File, off, size uint64) ([]byte, func(), error) {
	return nil, nil, ErrUnsupported
}
