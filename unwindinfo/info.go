package unwindinfo

import (
	"encoding/binary"
	"fmt"
)

// Info is a decoded UNWIND_INFO. Encoding a decoded Info with [Info.Append]
// reproduces the bytes it was decoded from.
type Info struct {
	Version       uint8    // 1 or 2
	Flags         Flags    // UNW_FLAG_*
	SizeOfProlog  uint8    // prolog length in bytes
	FrameRegister Register // frame register; 0 means none
	FrameOffset   uint8    // scaled offset: the frame register is RSP + 16*FrameOffset
	Codes         []Code   // unwind codes in array order (descending CodeOffset)
	Pad           uint16   // value of the padding slot, if the trailer needs one (normally 0)
	Handler       uint32   // RVA of the language-specific handler, if Flags.HasHandler()
	Chained       RuntimeFunction
	// Chained is the parent entry, if Flags has UNW_FLAG_CHAININFO.
}

// Decode decodes the UNWIND_INFO at the start of b. b may extend past it.
// On error it returns what it decoded so far with a *FormatError.
func Decode(b []byte) (*Info, error) {
	v, err := NewView(b)
	if err != nil {
		if h, herr := DecodeHeader(b); herr == nil {
			return infoFromHeader(h), err
		}
		return nil, err
	}
	return FromView(v)
}

func infoFromHeader(h Header) *Info {
	return &Info{Version: h.Version, Flags: h.Flags, SizeOfProlog: h.SizeOfProlog,
		FrameRegister: h.FrameRegister, FrameOffset: h.FrameOffset}
}

// FromView decodes every code of v into an Info.
func FromView(v View) (*Info, error) {
	h := v.Header()
	info := infoFromHeader(h)
	// The trailer is known to be present: fill it in first, so that a bad
	// code still leaves the handler or the chained parent readable.
	info.Pad, _ = v.Padding()
	info.Handler, _ = v.HandlerRVA()
	info.Chained, _ = v.Chained()
	n := int(h.CountOfCodes)
	info.Codes = make([]Code, 0, n)
	for i := 0; i < n; {
		c, k, err := v.Code(i)
		if err != nil {
			return info, err
		}
		info.Codes = append(info.Codes, c)
		i += k
	}
	return info, nil
}

// CountOfCodes returns the number of 16-bit slots the codes occupy.
func (info *Info) CountOfCodes() int {
	n := 0
	for _, c := range info.Codes {
		n += slotsOf(info.Version, c.Op, c.OpInfo)
	}
	return n
}

// Header returns the header that encodes info.
func (info *Info) Header() Header {
	return Header{Version: info.Version, Flags: info.Flags, SizeOfProlog: info.SizeOfProlog,
		CountOfCodes: uint8(info.CountOfCodes()), FrameRegister: info.FrameRegister, FrameOffset: info.FrameOffset}
}

// Size returns the encoded size of info in bytes (see Header.Size).
func (info *Info) Size() int { return info.Header().Size() }

// Append appends the encoding of info to b. It fails if a field is out of
// range or a code is invalid for the version; it does not apply the rules
// of [Info.Validate].
func (info *Info) Append(b []byte) ([]byte, error) {
	if info.Version != 1 && info.Version != 2 {
		return b, &FormatError{Msg: "encode unwind info", Val: info.Version, Err: ErrUnsupportedVersion}
	}
	if info.Flags > 0x1f || info.FrameRegister > 15 || info.FrameOffset > 15 {
		return b, &FormatError{Msg: "encode unwind info: flags, frame register or frame offset out of range", Err: ErrInvalid}
	}
	n := 0
	for i, c := range info.Codes {
		k := slotsOf(info.Version, c.Op, c.OpInfo)
		if k == 0 || c.Op > 15 || c.OpInfo > 15 {
			return b, &FormatError{Msg: fmt.Sprintf("encode unwind code %d", i), Val: uint8(c.Op), Err: ErrBadOp}
		}
		if k == 2 && c.Operand > 0xffff {
			return b, &FormatError{Msg: fmt.Sprintf("encode unwind code %d: operand does not fit in one slot", i), Val: c.Operand, Err: ErrInvalid}
		}
		n += k
	}
	if n > 255 {
		return b, &FormatError{Msg: "encode unwind info: more than 255 code slots", Val: n, Err: ErrInvalid}
	}
	h := info.Header()
	b = append(b, info.Version|byte(info.Flags)<<3, info.SizeOfProlog, byte(n), byte(info.FrameRegister)|info.FrameOffset<<4)
	for _, c := range info.Codes {
		b = c.appendSlots(b)
	}
	trailer := h.Flags&UNW_FLAG_CHAININFO != 0 || h.Flags.HasHandler()
	if trailer && n&1 != 0 {
		b = binary.LittleEndian.AppendUint16(b, info.Pad)
	}
	switch {
	case h.Flags&UNW_FLAG_CHAININFO != 0:
		b = info.Chained.Append(b)
	case h.Flags.HasHandler():
		b = binary.LittleEndian.AppendUint32(b, info.Handler)
	}
	return b, nil
}

// Encode returns the encoding of info (see [Info.Append]).
func (info *Info) Encode() ([]byte, error) { return info.Append(make([]byte, 0, info.Size())) }

// Epilogs describes the epilogs of a version 2 UNWIND_INFO, from its
// leading UWOP_EPILOG codes.
type Epilogs struct {
	Length uint8 // length in bytes of every epilog (pops and the return or jump)
	AtEnd  bool  // one epilog ends exactly at the function's EndAddress
	// Offsets are the starts of the other epilogs, each as a distance back
	// from EndAddress; padding entries (offset 0) are left out.
	Offsets []uint32
}

// Epilogs returns the epilog descriptors of a version 2 UNWIND_INFO. ok is
// false for version 1, or when the first code is not UWOP_EPILOG (a
// fragment or a function with no epilog).
func (info *Info) Epilogs() (e Epilogs, ok bool) {
	if info.Version < 2 || len(info.Codes) == 0 || info.Codes[0].Op != UWOP_EPILOG {
		return Epilogs{}, false
	}
	e.Length = info.Codes[0].Offset
	e.AtEnd = info.Codes[0].OpInfo&1 != 0
	for _, c := range info.Codes[1:] {
		if c.Op != UWOP_EPILOG || c.EpilogOffset() == 0 {
			break
		}
		e.Offsets = append(e.Offsets, c.EpilogOffset())
	}
	return e, true
}

// PrologCodes returns the codes that describe the prolog: Codes without
// the leading UWOP_EPILOG codes of version 2.
func (info *Info) PrologCodes() []Code {
	i := 0
	if info.Version >= 2 {
		for i < len(info.Codes) && info.Codes[i].Op == UWOP_EPILOG {
			i++
		}
	}
	return info.Codes[i:]
}

// Validate checks the rules of the format that decoding does not enforce,
// because Windows itself tolerates their violation when unwinding. It
// returns the first violation as a *FormatError wrapping ErrInvalid.
func (info *Info) Validate() error {
	bad := func(i int, msg string, val any) error {
		off := int64(HeaderSize)
		if i >= 0 {
			for _, c := range info.Codes[:i] {
				off += 2 * int64(slotsOf(info.Version, c.Op, c.OpInfo))
			}
		} else {
			off = 0
		}
		return &FormatError{Off: off, Msg: msg, Val: val, Err: ErrInvalid}
	}
	if info.Flags > UNW_FLAG_EHANDLER|UNW_FLAG_UHANDLER|UNW_FLAG_CHAININFO {
		return bad(-1, "unknown flags", uint8(info.Flags))
	}
	if info.Flags&UNW_FLAG_CHAININFO != 0 && info.Flags&(UNW_FLAG_EHANDLER|UNW_FLAG_UHANDLER) != 0 {
		return bad(-1, "chained unwind info has handler flags", uint8(info.Flags))
	}
	if info.FrameRegister == RSP {
		return bad(-1, "frame register is rsp", nil)
	}
	if info.FrameRegister == 0 && info.FrameOffset != 0 {
		return bad(-1, "frame offset without a frame register", info.FrameOffset)
	}
	if info.Version >= 2 {
		k := 0
		for k < len(info.Codes) && info.Codes[k].Op == UWOP_EPILOG {
			k++
		}
		if k > 0 {
			if info.Codes[0].Offset == 0 {
				return bad(0, "epilog length is 0", nil)
			}
			if info.Codes[0].OpInfo > 1 {
				return bad(0, "epilog header flags", info.Codes[0].OpInfo)
			}
			if k%2 != 0 {
				return bad(k-1, "odd number of epilog codes (they come in pairs)", k)
			}
			padding := false
			for i := 1; i < k; i++ {
				off := info.Codes[i].EpilogOffset()
				if off == 0 {
					padding = true
					continue
				}
				if padding {
					return bad(i, "epilog code after padding", off)
				}
				if off < uint32(info.Codes[0].Offset) {
					return bad(i, "epilog offset shorter than the epilog", off)
				}
			}
		}
		for i := k; i < len(info.Codes); i++ {
			if info.Codes[i].Op == UWOP_EPILOG {
				return bad(i, "UWOP_EPILOG after prolog codes", nil)
			}
		}
	}
	prolog := info.PrologCodes()
	first := len(info.Codes) - len(prolog)
	fpregs := 0
	for j, c := range prolog {
		i := first + j
		if c.Offset > info.SizeOfProlog {
			return bad(i, fmt.Sprintf("code offset beyond the prolog size %#x", info.SizeOfProlog), c.Offset)
		}
		if j > 0 && c.Offset > prolog[j-1].Offset {
			return bad(i, "codes not in descending offset order", c.Offset)
		}
		switch c.Op {
		case UWOP_ALLOC_LARGE:
			if c.OpInfo > 1 {
				return bad(i, "ALLOC_LARGE operation info", c.OpInfo)
			}
			if c.OpInfo == 1 && c.Operand%8 != 0 {
				return bad(i, "ALLOC_LARGE size not a multiple of 8", c.Operand)
			}
		case UWOP_SET_FPREG:
			fpregs++
			if info.FrameRegister == 0 {
				return bad(i, "SET_FPREG without a frame register", nil)
			}
			if fpregs > 1 {
				return bad(i, "more than one SET_FPREG", nil)
			}
			if c.OpInfo != 0 {
				// Reserved: the frame register and its offset are in
				// the header.
				return bad(i, "SET_FPREG operation info", c.OpInfo)
			}
		case UWOP_SAVE_NONVOL_FAR:
			if c.Operand%8 != 0 {
				return bad(i, "SAVE_NONVOL_FAR offset not a multiple of 8", c.Operand)
			}
		case UWOP_SAVE_XMM128_FAR:
			if c.Operand%16 != 0 {
				return bad(i, "SAVE_XMM128_FAR offset not a multiple of 16", c.Operand)
			}
		case UWOP_PUSH_MACHFRAME:
			if c.OpInfo > 1 {
				return bad(i, "PUSH_MACHFRAME operation info", c.OpInfo)
			}
		case UWOP_PUSH_NONVOL, UWOP_SAVE_NONVOL:
			if c.Register() == RSP {
				return bad(i, c.Op.Name()+" of rsp", nil)
			}
		}
	}
	return nil
}
