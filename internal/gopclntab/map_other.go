//go:build !unix

package gopclntab

import (
	"errors"
	"os"
)

// mapSection is not available here: the section is read instead.
func mapSection(f *os.File, off, size uint64) ([]byte, func(), error) {
	return nil, nil, errors.New("no mmap")
}
