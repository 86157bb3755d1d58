package memory

import "io"

// ReaderAt returns an io.ReaderAt over the size bytes of m that start at
// base: offset 0 reads address base. It is for readers of formats that
// take an io.ReaderAt, such as debug/elf on an image that lies complete in
// a target's memory (the vDSO). A read that reaches past size returns the
// bytes before it and io.EOF; one that cannot read the memory returns the
// bytes before the failure and m's error.
func ReaderAt(m Reader, base, size uint64) io.ReaderAt {
	return &readerAt{m: m, base: base, size: size}
}

type readerAt struct {
	m          Reader
	base, size uint64
}

func (r *readerAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || uint64(off) >= r.size {
		return 0, io.EOF
	}
	want := len(p)
	if rest := r.size - uint64(off); uint64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := r.m.ReadMemory(p, r.base+uint64(off))
	if n < 0 || n > len(p) {
		n = 0 // a Reader that lies about its count
	}
	switch {
	case n == len(p) && n < want:
		return n, io.EOF
	case n < len(p) && err == nil:
		err = io.ErrUnexpectedEOF
	}
	return n, err
}
