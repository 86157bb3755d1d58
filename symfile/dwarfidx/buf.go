package dwarfidx

import (
	"encoding/binary"
	"fmt"
)

// buf is a bounds-checked cursor over one section with a sticky error, in
// the manner of debug/dwarf's buf: every read checks the remaining input
// first, and after the first error every read returns zero.
type buf struct {
	name  string // section name, for errors
	order binary.ByteOrder
	data  []byte
	off   int // offset of data[0] in the section
	pos   int // read position in data
	err   error
}

func newBuf(name string, order binary.ByteOrder, section []byte, off int) buf {
	b := buf{name: name, order: order}
	if off < 0 || off > len(section) {
		b.err = &FormatError{Section: name, Off: int64(off), Msg: "offset outside section", Val: off}
		return b
	}
	b.data = section
	b.pos = off
	return b
}

func (b *buf) fail(msg string, val any) {
	if b.err == nil {
		b.err = &FormatError{Section: b.name, Off: int64(b.pos), Msg: msg, Val: val}
	}
	b.pos = len(b.data)
}

func (b *buf) left() int {
	if b.err != nil {
		return 0
	}
	return len(b.data) - b.pos
}

func (b *buf) skip(n uint64) {
	if b.err != nil {
		return
	}
	if n > uint64(len(b.data)-b.pos) {
		b.fail("truncated data", nil)
		return
	}
	b.pos += int(n)
}

func (b *buf) u8() uint8 {
	if b.err != nil || b.pos >= len(b.data) {
		b.fail("truncated data", nil)
		return 0
	}
	v := b.data[b.pos]
	b.pos++
	return v
}

func (b *buf) bytes(n int) []byte {
	if b.err != nil || n < 0 || n > len(b.data)-b.pos {
		b.fail("truncated data", nil)
		return nil
	}
	v := b.data[b.pos : b.pos+n]
	b.pos += n
	return v
}

func (b *buf) u16() uint16 {
	p := b.bytes(2)
	if p == nil {
		return 0
	}
	return b.order.Uint16(p)
}

func (b *buf) u32() uint32 {
	p := b.bytes(4)
	if p == nil {
		return 0
	}
	return b.order.Uint32(p)
}

func (b *buf) u64() uint64 {
	p := b.bytes(8)
	if p == nil {
		return 0
	}
	return b.order.Uint64(p)
}

// uint reads an unsigned value of size bytes (1, 2, 4 or 8).
func (b *buf) uint(size int) uint64 {
	switch size {
	case 1:
		return uint64(b.u8())
	case 2:
		return uint64(b.u16())
	case 4:
		return uint64(b.u32())
	case 8:
		return b.u64()
	}
	b.fail("unsupported size", size)
	return 0
}

func (b *buf) uleb() uint64 {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		if b.err != nil || b.pos >= len(b.data) {
			b.fail("truncated leb128", nil)
			return 0
		}
		c := b.data[b.pos]
		b.pos++
		if shift < 64 {
			v |= uint64(c&0x7f) << shift
		}
		if c&0x80 == 0 {
			return v
		}
	}
}

func (b *buf) sleb() int64 {
	var v int64
	var shift uint
	var c byte
	for {
		if b.err != nil || b.pos >= len(b.data) {
			b.fail("truncated leb128", nil)
			return 0
		}
		c = b.data[b.pos]
		b.pos++
		if shift < 64 {
			v |= int64(c&0x7f) << shift
		}
		shift += 7
		if c&0x80 == 0 {
			break
		}
	}
	if shift < 64 && c&0x40 != 0 {
		v |= -1 << shift
	}
	return v
}

// cstr reads a NUL-terminated string.
func (b *buf) cstr() string {
	if b.err != nil {
		return ""
	}
	for i := b.pos; i < len(b.data); i++ {
		if b.data[i] == 0 {
			s := string(b.data[b.pos:i])
			b.pos = i + 1
			return s
		}
	}
	b.fail("unterminated string", nil)
	return ""
}

// cstrAt returns the NUL-terminated string at off in section s.
func cstrAt(name string, s []byte, off uint64) (string, error) {
	if off >= uint64(len(s)) {
		return "", &FormatError{Section: name, Off: int64(off), Msg: "string offset outside section", Val: off}
	}
	for i := off; i < uint64(len(s)); i++ {
		if s[i] == 0 {
			return string(s[off:i]), nil
		}
	}
	return "", &FormatError{Section: name, Off: int64(off), Msg: "unterminated string"}
}

// unitLength reads an initial length field and reports whether the unit
// uses the 64-bit DWARF format (DWARF5.pdf §7.4).
func (b *buf) unitLength() (length uint64, dwarf64 bool) {
	l := b.u32()
	switch {
	case l == 0xffffffff:
		return b.u64(), true
	case l >= 0xfffffff0:
		b.fail("reserved unit length", l)
		return 0, false
	}
	return uint64(l), false
}

// unitEnd reads an initial length field and returns the offset at which
// the unit it starts ends, and whether it uses the 64-bit DWARF format; a
// length beyond the section is an error that names what the unit is.
func (b *buf) unitEnd(what string) (end int, dwarf64 bool, err error) {
	start := b.pos
	length, dwarf64 := b.unitLength()
	if b.err != nil {
		return 0, false, b.err
	}
	if length > uint64(b.left()) {
		return 0, false, &FormatError{Section: b.name, Off: int64(start), Msg: what + " length exceeds section", Val: length}
	}
	return b.pos + int(length), dwarf64, nil
}

// u24 reads a 3-byte unsigned value (DW_FORM_strx3, DW_FORM_addrx3).
func (b *buf) u24() uint64 {
	p := b.bytes(3)
	if p == nil {
		return 0
	}
	if b.order == binary.BigEndian {
		return uint64(p[0])<<16 | uint64(p[1])<<8 | uint64(p[2])
	}
	return uint64(p[0]) | uint64(p[1])<<8 | uint64(p[2])<<16
}

func (b *buf) String() string { return fmt.Sprintf("%s+%#x", b.name, b.pos) }
