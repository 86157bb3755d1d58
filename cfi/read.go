package cfi

import (
	"github.com/fntable/fntable/internal/binread"
)

// cursor is a binread.Reader that knows the section offset and address of
// the first byte it reads.
type cursor struct {
	binread.Reader
	data []byte // what Reader reads, for looking ahead
	base int    // section offset of data[0]
	addr uint64 // link-time address of the section's first byte
}

func newCursor(name string, data []byte, off, end int, addr uint64) cursor {
	return cursor{Reader: binread.New(name, data[off:end], int64(off)), data: data[off:end], base: off, addr: addr}
}

// pos returns the section offset of the next byte.
func (c *cursor) pos() int { return c.base + c.Off() }

// cstring reads a NUL-terminated string of at most max bytes.
func (c *cursor) cstring(max int) string {
	rest := c.data[min(c.Off(), len(c.data)):]
	for i := 0; i <= max && i < len(rest) && c.Err() == nil; i++ {
		if rest[i] == 0 {
			s := string(c.Bytes(i))
			c.U8()
			return s
		}
	}
	c.Fail(&FormatError{Msg: "unterminated or overlong string"})
	return ""
}
