package unwindinfo

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// RuntimeFunctionSize is the size in bytes of an encoded [RuntimeFunction].
const RuntimeFunctionSize = 12

// RUNTIME_FUNCTION_INDIRECT is the bit of RuntimeFunction.UnwindData that
// marks an indirect entry: UnwindData&^1 is then the RVA of another
// RUNTIME_FUNCTION, not of an UNWIND_INFO (winnt.h).
const RUNTIME_FUNCTION_INDIRECT = 0x1

// RuntimeFunction is IMAGE_RUNTIME_FUNCTION_ENTRY (RUNTIME_FUNCTION), one
// entry of a function table (.pdata). Addresses are RVAs relative to the
// image base, or to the BaseAddress of a dynamic function table.
type RuntimeFunction struct {
	BeginAddress uint32 // RVA of the first byte of the function or fragment
	EndAddress   uint32 // RVA one past its last byte
	UnwindData   uint32 // RVA of its UNWIND_INFO; bit 0 set: indirect entry
}

// DecodeRuntimeFunction decodes the first 12 bytes of b.
func DecodeRuntimeFunction(b []byte) (RuntimeFunction, error) {
	if len(b) < RuntimeFunctionSize {
		return RuntimeFunction{}, &FormatError{Msg: "runtime function", Val: len(b), Err: ErrTruncated}
	}
	return RuntimeFunction{
		BeginAddress: binary.LittleEndian.Uint32(b),
		EndAddress:   binary.LittleEndian.Uint32(b[4:]),
		UnwindData:   binary.LittleEndian.Uint32(b[8:]),
	}, nil
}

// Append appends the 12-byte encoding of f to b.
func (f RuntimeFunction) Append(b []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, f.BeginAddress)
	b = binary.LittleEndian.AppendUint32(b, f.EndAddress)
	return binary.LittleEndian.AppendUint32(b, f.UnwindData)
}

// Indirect reports whether f is an indirect entry (RUNTIME_FUNCTION_INDIRECT).
func (f RuntimeFunction) Indirect() bool { return f.UnwindData&RUNTIME_FUNCTION_INDIRECT != 0 }

// Contains reports whether rva lies in [BeginAddress, EndAddress).
func (f RuntimeFunction) Contains(rva uint32) bool {
	return f.BeginAddress <= rva && rva < f.EndAddress
}

// Search returns how many entries of fns, which are sorted by
// BeginAddress, begin at or below rva: the last of them, fns[i-1], is the
// only one that can contain rva when entries do not overlap.
func Search(fns []RuntimeFunction, rva uint32) int {
	lo, hi := 0, len(fns)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if fns[m].BeginAddress <= rva {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// Find returns the index of the entry of fns, sorted by BeginAddress and
// not overlapping, whose range contains rva.
func Find(fns []RuntimeFunction, rva uint32) (int, bool) {
	i := Search(fns, rva)
	if i == 0 || rva >= fns[i-1].EndAddress {
		return 0, false
	}
	return i - 1, true
}

// Flags are the UNW_FLAG_* bits of UNWIND_INFO.
type Flags uint8

// UNWIND_INFO flags (winnt.h).
const (
	UNW_FLAG_NHANDLER  Flags = 0x0
	UNW_FLAG_EHANDLER  Flags = 0x1 // has an exception handler
	UNW_FLAG_UHANDLER  Flags = 0x2 // has a termination (unwind) handler
	UNW_FLAG_CHAININFO Flags = 0x4 // chained to a parent RuntimeFunction
)

// HasHandler reports whether f has UNW_FLAG_EHANDLER or UNW_FLAG_UHANDLER
// and is not chained, i.e. whether a handler RVA follows the codes.
func (f Flags) HasHandler() bool {
	return f&UNW_FLAG_CHAININFO == 0 && f&(UNW_FLAG_EHANDLER|UNW_FLAG_UHANDLER) != 0
}

func (f Flags) String() string {
	if f == 0 {
		return "UNW_FLAG_NHANDLER"
	}
	s := ""
	add := func(bit Flags, name string) {
		if f&bit != 0 {
			if s != "" {
				s += "|"
			}
			s += name
			f &^= bit
		}
	}
	add(UNW_FLAG_EHANDLER, "UNW_FLAG_EHANDLER")
	add(UNW_FLAG_UHANDLER, "UNW_FLAG_UHANDLER")
	add(UNW_FLAG_CHAININFO, "UNW_FLAG_CHAININFO")
	if f != 0 {
		if s != "" {
			s += "|"
		}
		s += fmt.Sprintf("%#x", uint8(f))
	}
	return s
}

// Register is an x64 general-purpose register number as used by unwind
// codes and CONTEXT: 0 RAX, 1 RCX, 2 RDX, 3 RBX, 4 RSP, 5 RBP, 6 RSI,
// 7 RDI, 8–15 R8–R15.
type Register uint8

// Register numbers.
const (
	RAX Register = iota
	RCX
	RDX
	RBX
	RSP
	RBP
	RSI
	RDI
	R8
	R9
	R10
	R11
	R12
	R13
	R14
	R15
)

var registerNames = [16]string{"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
	"r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"}

// String returns the lowercase register name ("rbx", "r12").
func (r Register) String() string {
	if r < 16 {
		return registerNames[r]
	}
	return fmt.Sprintf("reg%d", uint8(r))
}

// ParseRegister returns the register with the given lowercase name.
func ParseRegister(name string) (Register, bool) {
	for i, n := range registerNames {
		if n == name {
			return Register(i), true
		}
	}
	return 0, false
}

// Op is an unwind operation code (UNWIND_CODE.UnwindOp).
type Op uint8

// Unwind operation codes ("x64 exception handling", struct UNWIND_CODE).
const (
	UWOP_PUSH_NONVOL     Op = 0  // push of a nonvolatile register; OpInfo = register
	UWOP_ALLOC_LARGE     Op = 1  // large stack allocation, 2 or 3 slots
	UWOP_ALLOC_SMALL     Op = 2  // stack allocation of OpInfo*8+8 bytes
	UWOP_SET_FPREG       Op = 3  // frame register = RSP + 16*FrameOffset
	UWOP_SAVE_NONVOL     Op = 4  // mov of a nonvolatile register to the stack, offset/8 in slot 1
	UWOP_SAVE_NONVOL_FAR Op = 5  // same, unscaled 32-bit offset in slots 1–2
	UWOP_EPILOG          Op = 6  // version 2 epilog descriptor
	UWOP_SPARE_CODE      Op = 7  // reserved (formerly SAVE_XMM_FAR); invalid
	UWOP_SAVE_XMM128     Op = 8  // movaps of an XMM register to the stack, offset/16 in slot 1
	UWOP_SAVE_XMM128_FAR Op = 9  // same, unscaled 32-bit offset in slots 1–2
	UWOP_PUSH_MACHFRAME  Op = 10 // hardware interrupt/exception frame; OpInfo 1: with error code

	// UWOP_SET_FPREG_LARGE is a CoreCLR extension used on Unix only, never
	// by Windows. Decoding rejects it with ErrBadOp.
	UWOP_SET_FPREG_LARGE Op = 11
)

var opNames = [...]string{"PUSH_NONVOL", "ALLOC_LARGE", "ALLOC_SMALL", "SET_FPREG", "SAVE_NONVOL",
	"SAVE_NONVOL_FAR", "EPILOG", "SPARE_CODE", "SAVE_XMM128", "SAVE_XMM128_FAR", "PUSH_MACHFRAME",
	"SET_FPREG_LARGE"}

// Name returns the operation name without the UWOP_ prefix ("PUSH_NONVOL").
func (op Op) Name() string {
	if int(op) < len(opNames) {
		return opNames[op]
	}
	return fmt.Sprintf("OP_%d", uint8(op))
}

// String returns the spec name ("UWOP_PUSH_NONVOL").
func (op Op) String() string {
	if int(op) < len(opNames) {
		return "UWOP_" + opNames[op]
	}
	return fmt.Sprintf("Op(%d)", uint8(op))
}

// ParseOp returns the Op named name, with or without the UWOP_ prefix.
func ParseOp(name string) (Op, bool) {
	if len(name) > 5 && name[:5] == "UWOP_" {
		name = name[5:]
	}
	for i, n := range opNames {
		if n == name {
			return Op(i), true
		}
	}
	return 0, false
}

// These are the errors returned by the decoders of this package. Each is
// wrapped by a *FormatError, which also wraps ErrMalformed.
var (
	// ErrMalformed matches every decoding error of this package.
	ErrMalformed = errors.New("malformed unwind data")
	// ErrTruncated: the data ends before the structure it describes.
	ErrTruncated = errors.New("truncated")
	// ErrUnsupportedVersion: UNWIND_INFO version other than 1 or 2
	// (version 3 is the Intel APX preview format).
	ErrUnsupportedVersion = errors.New("unsupported unwind info version")
	// ErrBadOp: an invalid or unsupported unwind operation
	// (UWOP_SPARE_CODE, UWOP_SET_FPREG_LARGE, 12–15, UWOP_EPILOG in v1).
	ErrBadOp = errors.New("invalid unwind operation")
	// ErrChainTooDeep: chained unwind information longer than ChainLimit
	// links, which includes chains that loop.
	ErrChainTooDeep = errors.New("unwind chain too long")
	// ErrInvalid: the data decodes but breaks a rule of the format
	// (returned by Validate).
	ErrInvalid = errors.New("invalid unwind info")
)

// ChainLimit is the maximum number of chained UNWIND_INFO links followed
// (UNWIND_CHAIN_LIMIT in the Windows unwinder).
const ChainLimit = 32

// FormatError describes malformed unwind data: what was wrong, where, and
// the offending value. It wraps ErrMalformed and the sentinel in Err.
type FormatError struct {
	Off int64  // byte offset of the problem within the decoded data
	Msg string // what was being decoded or which rule failed
	Val any    // the offending value, or nil
	Err error  // the specific sentinel: ErrTruncated, ErrBadOp, ...
}

func (e *FormatError) Error() string {
	s := e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	if e.Val != nil {
		switch v := e.Val.(type) {
		case string:
			s += " " + v
		default:
			s += fmt.Sprintf(" '%#x'", v)
		}
	}
	return fmt.Sprintf("%s (at offset %#x)", s, e.Off)
}

// Unwrap returns ErrMalformed and the specific sentinel.
func (e *FormatError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrMalformed}
	}
	return []error{ErrMalformed, e.Err}
}
