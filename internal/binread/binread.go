// Package binread is a bounds-checked little-endian cursor with a sticky
// error, for decoding untrusted binary data.
//
// A [Reader] checks every access against the remaining input before it
// slices. After the first failure every read returns zero and the error,
// with the name of the data and the offset where decoding failed, stays in
// [Reader.Err]. Decoders read a whole structure and check the error once.
package binread

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrTruncated is wrapped by the error a [Reader] records when the input
// ends before a read.
var ErrTruncated = errors.New("truncated")

// Error is the error a [Reader] records: what was being read, where, and why.
type Error struct {
	Name string // name of the data being decoded, e.g. "unwind info"
	Off  int64  // offset of the failed read, from the start of the data
	Err  error  // cause: ErrTruncated or a caller-supplied error
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s at offset %#x: %v", e.Name, e.Off, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Reader decodes little-endian values from a byte slice.
// The zero value reads nothing; use [New].
type Reader struct {
	name string
	data []byte
	off  int
	base int64 // offset of data[0] in the caller's numbering
	err  error
}

// New returns a Reader over data. name labels errors; base is the offset
// that data[0] has in the caller's numbering (used in error messages only).
func New(name string, data []byte, base int64) Reader {
	return Reader{name: name, data: data, base: base}
}

// Err returns the first error encountered, or nil.
func (r *Reader) Err() error { return r.err }

// Off returns the current offset, relative to the start of the data.
func (r *Reader) Off() int { return r.off }

// Len returns the number of unread bytes (0 after an error).
func (r *Reader) Len() int {
	if r.err != nil {
		return 0
	}
	return len(r.data) - r.off
}

// Fail records err at the current offset unless an error is already set.
func (r *Reader) Fail(err error) {
	if r.err == nil {
		r.err = &Error{Name: r.name, Off: r.base + int64(r.off), Err: err}
	}
}

func (r *Reader) need(n int) bool {
	if r.err != nil {
		return false
	}
	if n < 0 || n > len(r.data)-r.off {
		r.Fail(ErrTruncated)
		return false
	}
	return true
}

// Skip advances n bytes.
func (r *Reader) Skip(n int) {
	if r.need(n) {
		r.off += n
	}
}

// Bytes returns the next n bytes, aliasing the input.
func (r *Reader) Bytes(n int) []byte {
	if !r.need(n) {
		return nil
	}
	b := r.data[r.off : r.off+n : r.off+n]
	r.off += n
	return b
}

// U8 reads one byte.
func (r *Reader) U8() uint8 {
	if !r.need(1) {
		return 0
	}
	v := r.data[r.off]
	r.off++
	return v
}

// U16 reads a little-endian uint16.
func (r *Reader) U16() uint16 {
	if !r.need(2) {
		return 0
	}
	v := binary.LittleEndian.Uint16(r.data[r.off:])
	r.off += 2
	return v
}

// U32 reads a little-endian uint32.
func (r *Reader) U32() uint32 {
	if !r.need(4) {
		return 0
	}
	v := binary.LittleEndian.Uint32(r.data[r.off:])
	r.off += 4
	return v
}

// U64 reads a little-endian uint64.
func (r *Reader) U64() uint64 {
	if !r.need(8) {
		return 0
	}
	v := binary.LittleEndian.Uint64(r.data[r.off:])
	r.off += 8
	return v
}

// ULEB128 reads an unsigned LEB128 value (DWARF 5 §7.6). Bits beyond 64
// are dropped; a value that runs past the end is an error.
func (r *Reader) ULEB128() uint64 {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		b := r.U8()
		if r.err != nil {
			return 0
		}
		if shift < 64 {
			v |= uint64(b&0x7f) << shift
		}
		if b&0x80 == 0 {
			return v
		}
	}
}

// SLEB128 reads a signed LEB128 value (DWARF 5 §7.6). Bits beyond 64 are
// dropped; a value that runs past the end is an error.
func (r *Reader) SLEB128() int64 {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		b := r.U8()
		if r.err != nil {
			return 0
		}
		if shift < 64 {
			v |= uint64(b&0x7f) << shift
		}
		if b&0x80 == 0 {
			if shift+7 < 64 && b&0x40 != 0 {
				v |= ^uint64(0) << (shift + 7)
			}
			return int64(v)
		}
	}
}
