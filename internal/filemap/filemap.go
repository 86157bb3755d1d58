// Package filemap maps part of a file into memory, read-only, where the
// system has mmap(2), so that a large section is paged in as it is read
// instead of copied whole.
package filemap

import "errors"

// ErrUnsupported: this system has no mmap that package syscall offers;
// read the file instead.
var ErrUnsupported = errors.New("filemap: no mmap on this system")
