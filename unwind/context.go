package unwind

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"github.com/fntable/fntable/unwindinfo"
)

// Context holds the registers of the x64 CONTEXT record that unwinding
// reads and writes. [Context.MarshalWindows] and [Context.UnmarshalWindows]
// convert it to and from the 1232-byte Windows layout.
type Context struct {
	ContextFlags uint32 // CONTEXT_* flags (CONTEXT_AMD64 | CONTEXT_CONTROL ...)
	MxCsr        uint32

	SegCs, SegDs, SegEs, SegFs, SegGs, SegSs uint16

	EFlags uint32

	// General-purpose registers in CONTEXT order; unwind codes and
	// [Context.Reg] index them by register number (0 = Rax ... 15 = R15).
	Rax, Rcx, Rdx, Rbx, Rsp, Rbp, Rsi, Rdi, R8, R9, R10, R11, R12, R13, R14, R15 uint64

	Rip uint64

	Xmm [16][16]byte // XMM0–XMM15, little-endian 128-bit values

	// FsBase and GsBase are the FS and GS segment bases of a Linux thread
	// (its thread pointer is FsBase). The Windows CONTEXT has no room for
	// them: MarshalWindows drops them and UnmarshalWindows leaves them 0.
	FsBase, GsBase uint64
}

// The general-purpose registers must be 16 consecutive uint64 fields.
const _ = uint(unsafe.Offsetof(Context{}.R15)-unsafe.Offsetof(Context{}.Rax)) - 15*8

// gpr returns the general-purpose registers as an array indexed by
// register number.
func (c *Context) gpr() *[16]uint64 { return (*[16]uint64)(unsafe.Pointer(&c.Rax)) }

// Reg returns general-purpose register r (0 = RAX ... 15 = R15).
func (c *Context) Reg(r unwindinfo.Register) uint64 { return c.gpr()[r&15] }

// SetReg sets general-purpose register r (0 = RAX ... 15 = R15).
func (c *Context) SetReg(r unwindinfo.Register, v uint64) { c.gpr()[r&15] = v }

// CONTEXT flags (winnt.h, AMD64).
const (
	CONTEXT_AMD64           = 0x100000
	CONTEXT_CONTROL         = CONTEXT_AMD64 | 0x1
	CONTEXT_INTEGER         = CONTEXT_AMD64 | 0x2
	CONTEXT_SEGMENTS        = CONTEXT_AMD64 | 0x4
	CONTEXT_FLOATING_POINT  = CONTEXT_AMD64 | 0x8
	CONTEXT_DEBUG_REGISTERS = CONTEXT_AMD64 | 0x10
	CONTEXT_FULL            = CONTEXT_CONTROL | CONTEXT_INTEGER | CONTEXT_FLOATING_POINT
)

// WindowsContextSize is the size of the x64 CONTEXT structure.
const WindowsContextSize = 0x4d0

// Offsets in the Windows CONTEXT (formats.md §6, winnt.h).
const (
	ctxOffContextFlags = 0x30
	ctxOffMxCsr        = 0x34
	ctxOffSegCs        = 0x38
	ctxOffEFlags       = 0x44
	ctxOffRax          = 0x78
	ctxOffRip          = 0xf8
	ctxOffFltSave      = 0x100
	ctxOffXmm          = 0x1a0
)

// UnmarshalWindows decodes the registers of a Windows x64 CONTEXT from b,
// which must hold at least WindowsContextSize bytes (a longer record, such
// as one with an XSTATE tail, is accepted). Fields Context does not keep
// (home registers, debug registers, the legacy FP area) are ignored.
func (c *Context) UnmarshalWindows(b []byte) error {
	if len(b) < WindowsContextSize {
		return fmt.Errorf("decode context: %d bytes, want at least %d", len(b), WindowsContextSize)
	}
	le := binary.LittleEndian
	c.ContextFlags = le.Uint32(b[ctxOffContextFlags:])
	c.MxCsr = le.Uint32(b[ctxOffMxCsr:])
	segs := [...]*uint16{&c.SegCs, &c.SegDs, &c.SegEs, &c.SegFs, &c.SegGs, &c.SegSs}
	for i, p := range segs {
		*p = le.Uint16(b[ctxOffSegCs+2*i:])
	}
	c.EFlags = le.Uint32(b[ctxOffEFlags:])
	g := c.gpr()
	for i := range g {
		g[i] = le.Uint64(b[ctxOffRax+8*i:])
	}
	c.Rip = le.Uint64(b[ctxOffRip:])
	for i := range c.Xmm {
		copy(c.Xmm[i][:], b[ctxOffXmm+16*i:])
	}
	return nil
}

// PutWindows writes the fields Context keeps into b, a Windows x64 CONTEXT
// of at least WindowsContextSize bytes, leaving the other bytes of b as
// they are. It does not allocate.
func (c *Context) PutWindows(b []byte) error {
	if len(b) < WindowsContextSize {
		return fmt.Errorf("encode context: %d bytes, want at least %d", len(b), WindowsContextSize)
	}
	le := binary.LittleEndian
	le.PutUint32(b[ctxOffContextFlags:], c.ContextFlags)
	le.PutUint32(b[ctxOffMxCsr:], c.MxCsr)
	segs := [...]uint16{c.SegCs, c.SegDs, c.SegEs, c.SegFs, c.SegGs, c.SegSs}
	for i, v := range segs {
		le.PutUint16(b[ctxOffSegCs+2*i:], v)
	}
	le.PutUint32(b[ctxOffEFlags:], c.EFlags)
	for i, v := range c.gpr() {
		le.PutUint64(b[ctxOffRax+8*i:], v)
	}
	le.PutUint64(b[ctxOffRip:], c.Rip)
	for i := range c.Xmm {
		copy(b[ctxOffXmm+16*i:], c.Xmm[i][:])
	}
	return nil
}

// MarshalWindows returns c as a 1232-byte Windows x64 CONTEXT. Fields that
// Context does not keep are zero, except FltSave.MxCsr, which mirrors
// MxCsr as Windows does.
func (c *Context) MarshalWindows() []byte {
	b := make([]byte, WindowsContextSize)
	c.PutWindows(b)
	binary.LittleEndian.PutUint32(b[ctxOffFltSave+0x18:], c.MxCsr) // XMM_SAVE_AREA32.MxCsr
	return b
}

// ContextPointers is KNONVOLATILE_CONTEXT_POINTERS: for each register, the
// address an unwind step restored it from. A step writes the entries of
// the registers it restores from memory and leaves the others as they are
// (see [Unwinder.VirtualUnwind]); an entry that is 0 was not written.
type ContextPointers struct {
	Floating [16]uint64 // XMM0–XMM15
	Integer  [16]uint64 // RAX–R15, by register number
}
