package unwindinfo

import "encoding/binary"

// HeaderSize is the size of the fixed UNWIND_INFO header.
const HeaderSize = 4

// MaxSize is the largest possible UNWIND_INFO without handler data: the
// header, 255 code slots plus padding, and a chained RuntimeFunction.
const MaxSize = HeaderSize + 256*2 + RuntimeFunctionSize

// Header is the fixed 4-byte start of an UNWIND_INFO.
type Header struct {
	Version       uint8    // 1 or 2
	Flags         Flags    // UNW_FLAG_*
	SizeOfProlog  uint8    // prolog length in bytes
	CountOfCodes  uint8    // number of 16-bit code slots
	FrameRegister Register // frame register; 0 (RAX) means none
	FrameOffset   uint8    // scaled frame register offset: bytes = 16*FrameOffset
}

// DecodeHeader decodes the 4-byte UNWIND_INFO header at the start of b. It
// checks only the length and the version.
func DecodeHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, &FormatError{Msg: "unwind info header", Val: len(b), Err: ErrTruncated}
	}
	h := Header{
		Version:       b[0] & 7,
		Flags:         Flags(b[0] >> 3),
		SizeOfProlog:  b[1],
		CountOfCodes:  b[2],
		FrameRegister: Register(b[3] & 0xf),
		FrameOffset:   b[3] >> 4,
	}
	if h.Version != 1 && h.Version != 2 {
		return h, &FormatError{Msg: "unwind info header", Val: h.Version, Err: ErrUnsupportedVersion}
	}
	return h, nil
}

// HasFrameRegister reports whether the function establishes a frame register.
func (h Header) HasFrameRegister() bool { return h.FrameRegister != 0 }

// FrameOffsetBytes returns the frame register offset in bytes (16*FrameOffset).
func (h Header) FrameOffsetBytes() uint64 { return uint64(h.FrameOffset) * 16 }

// TrailerOffset returns the offset, from the start of the UNWIND_INFO, of
// what follows the code array: the handler RVA or the chained
// RuntimeFunction.
func (h Header) TrailerOffset() int { return HeaderSize + 2*((int(h.CountOfCodes)+1)&^1) }

// Size returns the size in bytes of the UNWIND_INFO described by h: the
// header, the codes and, when a trailer follows, the padding slot and the
// handler RVA or chained RuntimeFunction. Handler data, whose length only
// the handler knows, is not included. Without a trailer the padding slot is
// not counted: Windows never reads it.
func (h Header) Size() int {
	switch {
	case h.Flags&UNW_FLAG_CHAININFO != 0:
		return h.TrailerOffset() + RuntimeFunctionSize
	case h.Flags.HasHandler():
		return h.TrailerOffset() + 4
	}
	return HeaderSize + 2*int(h.CountOfCodes)
}

// View reads an encoded UNWIND_INFO in place. It never allocates; a View
// is a small value, cheap to copy. Use [NewView] to make one.
type View struct {
	h Header
	b []byte // exactly h.Size() bytes
}

// NewView checks that b starts with a complete UNWIND_INFO of a supported
// version and returns a View of it. b may extend past the UNWIND_INFO
// (handler data follows it); the View covers Header.Size() bytes. Codes
// are checked one at a time by [View.Code].
func NewView(b []byte) (View, error) {
	h, err := DecodeHeader(b)
	if err != nil {
		return View{}, err
	}
	n := h.Size()
	if len(b) < n {
		return View{}, &FormatError{Off: int64(len(b)), Msg: "unwind info", Val: n, Err: ErrTruncated}
	}
	return View{h: h, b: b[:n:n]}, nil
}

// Header returns the decoded header.
func (v View) Header() Header { return v.h }

// Bytes returns the encoded UNWIND_INFO the View covers.
func (v View) Bytes() []byte { return v.b }

// Slot returns the raw 16-bit code slot i; i must be < CountOfCodes.
func (v View) Slot(i int) uint16 { return binary.LittleEndian.Uint16(v.b[HeaderSize+2*i:]) }

// Code decodes the unwind code that starts at slot i and returns it with
// the number of slots it occupies. It fails with ErrBadOp for an invalid
// operation and with ErrTruncated when the code's operand slots lie past
// CountOfCodes.
func (v View) Code(i int) (Code, int, error) {
	n := int(v.h.CountOfCodes)
	if i < 0 || i >= n {
		return Code{}, 0, &FormatError{Off: int64(HeaderSize + 2*i), Msg: "unwind code", Val: i, Err: ErrTruncated}
	}
	s := v.Slot(i)
	c := Code{Offset: uint8(s), Op: Op(s>>8) & 0xf, OpInfo: uint8(s >> 12)}
	k := slotsOf(v.h.Version, c.Op, c.OpInfo)
	if k == 0 {
		return c, 0, &FormatError{Off: int64(HeaderSize + 2*i), Msg: "unwind code " + c.Op.Name(), Val: uint8(c.Op), Err: ErrBadOp}
	}
	if i+k > n {
		return c, 0, &FormatError{Off: int64(HeaderSize + 2*i), Msg: "operand of unwind code " + c.Op.Name(), Val: k, Err: ErrTruncated}
	}
	switch k {
	case 2:
		c.Operand = uint32(v.Slot(i + 1))
	case 3:
		c.Operand = uint32(v.Slot(i+1)) | uint32(v.Slot(i+2))<<16
	}
	return c, k, nil
}

// HandlerRVA returns the exception handler RVA; ok is false when the
// flags name no handler.
func (v View) HandlerRVA() (rva uint32, ok bool) {
	if !v.h.Flags.HasHandler() {
		return 0, false
	}
	return binary.LittleEndian.Uint32(v.b[v.h.TrailerOffset():]), true
}

// HandlerDataOffset returns the offset, from the start of the UNWIND_INFO,
// of the language-specific handler data (the HandlerData pointer of
// RtlVirtualUnwind). It is meaningful only when HandlerRVA reports ok.
func (v View) HandlerDataOffset() int { return v.h.TrailerOffset() + 4 }

// Chained returns the parent RuntimeFunction of chained unwind
// information; ok is false when UNW_FLAG_CHAININFO is clear.
func (v View) Chained() (f RuntimeFunction, ok bool) {
	if v.h.Flags&UNW_FLAG_CHAININFO == 0 {
		return RuntimeFunction{}, false
	}
	f, _ = DecodeRuntimeFunction(v.b[v.h.TrailerOffset():])
	return f, true
}

// Padding returns the value of the unused slot that pads an odd code count
// to an even one (normally 0), and false if there is none.
func (v View) Padding() (uint16, bool) {
	n := int(v.h.CountOfCodes)
	if n&1 == 0 || !v.h.Flags.HasHandler() && v.h.Flags&UNW_FLAG_CHAININFO == 0 {
		return 0, false
	}
	return v.Slot(n), true
}
