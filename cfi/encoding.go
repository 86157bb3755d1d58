package cfi

// Pointer encodings (DW_EH_PE_*) of .eh_frame and .eh_frame_hdr: the low
// four bits give the format of the value, the next three how it is
// applied, and the top bit an indirection. Reference: LSB Core, "Exception
// Frames", "DWARF Exception Header Encoding".
const (
	DW_EH_PE_absptr  = 0x00
	DW_EH_PE_uleb128 = 0x01
	DW_EH_PE_udata2  = 0x02
	DW_EH_PE_udata4  = 0x03
	DW_EH_PE_udata8  = 0x04
	DW_EH_PE_signed  = 0x08
	DW_EH_PE_sleb128 = 0x09
	DW_EH_PE_sdata2  = 0x0a
	DW_EH_PE_sdata4  = 0x0b
	DW_EH_PE_sdata8  = 0x0c

	DW_EH_PE_pcrel   = 0x10
	DW_EH_PE_textrel = 0x20
	DW_EH_PE_datarel = 0x30
	DW_EH_PE_funcrel = 0x40
	DW_EH_PE_aligned = 0x50

	DW_EH_PE_indirect = 0x80
	DW_EH_PE_omit     = 0xff
)

// bases are the addresses that pointer encodings are relative to; a zero
// has* field means the base is not known here, and an encoding that needs
// it is an error.
type bases struct {
	data, text, fn          uint64
	hasData, hasText, hasFn bool
	addrSize                int // size of an absptr: 8, or 4 in a 32-bit .debug_frame
}

// encodedSize returns the size of a fixed-size encoded value, or 0 for a
// LEB128 or unknown format.
func encodedSize(enc uint8, addrSize int) int {
	switch enc & 0x0f {
	case DW_EH_PE_absptr, DW_EH_PE_signed:
		return addrSize
	case DW_EH_PE_udata2, DW_EH_PE_sdata2:
		return 2
	case DW_EH_PE_udata4, DW_EH_PE_sdata4:
		return 4
	case DW_EH_PE_udata8, DW_EH_PE_sdata8:
		return 8
	}
	return 0
}

// readRaw reads a value in the format of enc (its low four bits) without
// applying it.
func (c *cursor) readRaw(enc uint8, addrSize int) uint64 {
	switch enc & 0x0f {
	case DW_EH_PE_absptr:
		if addrSize == 4 {
			return uint64(c.U32())
		}
		return c.U64()
	case DW_EH_PE_signed:
		if addrSize == 4 {
			return uint64(int64(int32(c.U32())))
		}
		return c.U64()
	case DW_EH_PE_uleb128:
		return c.ULEB128()
	case DW_EH_PE_udata2:
		return uint64(c.U16())
	case DW_EH_PE_udata4:
		return uint64(c.U32())
	case DW_EH_PE_udata8, DW_EH_PE_sdata8:
		return c.U64()
	case DW_EH_PE_sleb128:
		return uint64(c.SLEB128())
	case DW_EH_PE_sdata2:
		return uint64(int64(int16(c.U16())))
	case DW_EH_PE_sdata4:
		return uint64(int64(int32(c.U32())))
	}
	c.Fail(&FormatError{Msg: "unknown pointer encoding", Val: enc})
	return 0
}

// readEncoded reads a pointer encoded as enc and applies it. An indirect
// pointer is returned as the address where the pointer is stored, and
// indirect is true: the caller decides whether to read it.
func (c *cursor) readEncoded(enc uint8, b *bases) (v uint64, indirect bool) {
	if enc == DW_EH_PE_omit {
		return 0, false
	}
	if enc&0x70 == DW_EH_PE_aligned {
		// Reference: GCC unwind-pe.h read_encoded_value_with_base.
		a := uint64(b.addrSize)
		if a == 0 {
			a = 8
		}
		here := c.addr + uint64(c.pos())
		c.Skip(int((here+a-1)&^(a-1) - here))
		return c.readRaw(DW_EH_PE_absptr, b.addrSize), enc&DW_EH_PE_indirect != 0
	}
	here := c.addr + uint64(c.pos())
	v = c.readRaw(enc, b.addrSize)
	switch enc & 0x70 {
	case DW_EH_PE_absptr:
	case DW_EH_PE_pcrel:
		v += here
	case DW_EH_PE_datarel:
		if !b.hasData {
			c.Fail(&FormatError{Msg: "datarel pointer without a data base", Val: enc})
		}
		v += b.data
	case DW_EH_PE_textrel:
		if !b.hasText {
			c.Fail(&FormatError{Msg: "textrel pointer without a text base", Val: enc})
		}
		v += b.text
	case DW_EH_PE_funcrel:
		if !b.hasFn {
			c.Fail(&FormatError{Msg: "funcrel pointer outside a function", Val: enc})
		}
		v += b.fn
	default:
		c.Fail(&FormatError{Msg: "unknown pointer application", Val: enc})
	}
	if c.Err() != nil {
		return 0, false
	}
	return v, enc&DW_EH_PE_indirect != 0
}
