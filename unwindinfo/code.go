package unwindinfo

// Code is one unwind code: an UNWIND_CODE slot and, for multi-slot
// operations, the operand held in the following slots. The fields are the
// raw encoded values; the methods interpret them.
type Code struct {
	// Offset is CodeOffset: the prolog offset of the end of the described
	// instruction. For UWOP_EPILOG it is the epilog length (first epilog
	// code) or the low 8 bits of an epilog offset.
	Offset uint8
	Op     Op
	// OpInfo is the 4-bit operation information: a register number, a
	// size, or a flag, depending on Op.
	OpInfo uint8
	// Operand holds the extra slots: slot 1 in the low 16 bits and, for
	// three-slot codes, slot 2 in the high 16 bits. It is 0 for one-slot
	// codes.
	Operand uint32
}

// slotsOf returns the number of 16-bit slots of the code with the given op
// and info, or 0 if op is not a valid operation in that version.
func slotsOf(version uint8, op Op, info uint8) int {
	switch op {
	case UWOP_PUSH_NONVOL, UWOP_ALLOC_SMALL, UWOP_SET_FPREG, UWOP_PUSH_MACHFRAME:
		return 1
	case UWOP_ALLOC_LARGE:
		// Any nonzero OpInfo selects the 32-bit form, as in the Windows
		// unwinder's UnwindOpSlots.
		if info == 0 {
			return 2
		}
		return 3
	case UWOP_SAVE_NONVOL, UWOP_SAVE_XMM128:
		return 2
	case UWOP_SAVE_NONVOL_FAR, UWOP_SAVE_XMM128_FAR:
		return 3
	case UWOP_EPILOG:
		if version >= 2 {
			return 1
		}
	}
	return 0
}

// SlotCount returns the number of 16-bit slots of the unwind code whose
// first slot is s, in UNWIND_INFO of the given version, or 0 if its
// operation is invalid there. UWOP_EPILOG counts one slot.
func SlotCount(version uint8, s uint16) int {
	return slotsOf(version, Op(s>>8)&0xf, uint8(s>>12))
}

// Slots returns the number of 16-bit slots the code occupies (1 to 3), or 0
// for an invalid operation. It counts UWOP_EPILOG as one slot, as version 2
// data is laid out (epilog codes come in pairs, which the Windows unwinder
// steps over two at a time); in version 1 data UWOP_EPILOG is invalid.
func (c Code) Slots() int { return slotsOf(2, c.Op, c.OpInfo) }

// Register returns the register of PUSH_NONVOL, SAVE_NONVOL and
// SAVE_NONVOL_FAR codes.
func (c Code) Register() Register { return Register(c.OpInfo) }

// XMM returns the XMM register number of SAVE_XMM128 and SAVE_XMM128_FAR.
func (c Code) XMM() int { return int(c.OpInfo) }

// AllocSize returns the number of bytes an ALLOC_SMALL or ALLOC_LARGE code
// allocates, and 0 for other codes.
func (c Code) AllocSize() uint32 {
	switch c.Op {
	case UWOP_ALLOC_SMALL:
		return uint32(c.OpInfo)*8 + 8
	case UWOP_ALLOC_LARGE:
		if c.OpInfo == 0 {
			return (c.Operand & 0xffff) * 8
		}
		return c.Operand
	}
	return 0
}

// StackOffset returns, in bytes, the offset from the frame base at which a
// SAVE_NONVOL(_FAR) or SAVE_XMM128(_FAR) code saved its register, and 0 for
// other codes.
func (c Code) StackOffset() uint32 {
	switch c.Op {
	case UWOP_SAVE_NONVOL:
		return (c.Operand & 0xffff) * 8
	case UWOP_SAVE_XMM128:
		return (c.Operand & 0xffff) * 16
	case UWOP_SAVE_NONVOL_FAR, UWOP_SAVE_XMM128_FAR:
		return c.Operand
	}
	return 0
}

// EpilogOffset returns the offset, back from the function's end, of the
// epilog described by a version 2 UWOP_EPILOG code that is not the first
// one; 0 marks padding.
func (c Code) EpilogOffset() uint32 { return uint32(c.Offset) | uint32(c.OpInfo)<<8 }

// MachineFrameErrorCode reports whether a PUSH_MACHFRAME code describes a
// frame with an error code (OpInfo != 0, as the Windows unwinder tests it).
func (c Code) MachineFrameErrorCode() bool { return c.OpInfo != 0 }

// appendSlots appends the encoded slots of c.
func (c Code) appendSlots(b []byte) []byte {
	b = append(b, c.Offset, byte(c.Op)&0xf|c.OpInfo<<4)
	switch c.Slots() {
	case 2:
		b = append(b, byte(c.Operand), byte(c.Operand>>8))
	case 3:
		b = append(b, byte(c.Operand), byte(c.Operand>>8), byte(c.Operand>>16), byte(c.Operand>>24))
	}
	return b
}
