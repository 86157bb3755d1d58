package unwind

import (
	"encoding/binary"
	"fmt"

	"github.com/fntable/fntable/unwindinfo"
)

// info is an UNWIND_INFO as read from memory: its header, code slots and
// trailer. The unwinder interprets the raw bytes directly: it runs for
// every frame of every stack walk, and decoding into structures first
// would cost more than the unwind itself.
type info []byte

func (b info) version() uint8                { return b[0] & 7 }
func (b info) flags() unwindinfo.Flags       { return unwindinfo.Flags(b[0] >> 3) }
func (b info) prolog() uint32                { return uint32(b[1]) }
func (b info) count() int                    { return int(b[2]) }
func (b info) frameReg() unwindinfo.Register { return unwindinfo.Register(b[3] & 15) }
func (b info) frameOff() uint64              { return uint64(b[3]>>4) * 16 }
func (b info) slot(i int) uint16             { return binary.LittleEndian.Uint16(b[unwindinfo.HeaderSize+2*i:]) }
func (b info) trailer() int                  { return unwindinfo.HeaderSize + 2*((int(b[2])+1)&^1) }

// chained returns the parent entry of chained unwind information.
func (b info) chained() (unwindinfo.RuntimeFunction, bool) {
	if b.flags()&unwindinfo.UNW_FLAG_CHAININFO == 0 {
		return unwindinfo.RuntimeFunction{}, false
	}
	t := b.trailer()
	le := binary.LittleEndian
	return unwindinfo.RuntimeFunction{BeginAddress: le.Uint32(b[t:]), EndAddress: le.Uint32(b[t+4:]), UnwindData: le.Uint32(b[t+8:])}, true
}

// infoSize returns the size of the part of the UNWIND_INFO whose header
// is h that unwinding needs: the header, the codes and a chained entry.
// The handler RVA and its data are read only when a handler is asked for:
// dbghelp saves in a minidump only the bytes unwinding needs (the Electron
// dump holds 4 bytes of V8's UNWIND_INFO, whose flags name a handler).
func infoSize(h []byte) int {
	count := int(h[2])
	flags := unwindinfo.Flags(h[0] >> 3)
	if flags&unwindinfo.UNW_FLAG_CHAININFO != 0 {
		return unwindinfo.HeaderSize + 2*((count+1)&^1) + unwindinfo.RuntimeFunctionSize
	}
	return unwindinfo.HeaderSize + 2*count
}

// readInfo reads the UNWIND_INFO at addr and checks its version.
func readInfo(r *reader, area int, addr uint64) (info, error) {
	h, err := r.bytes(area, addr, unwindinfo.HeaderSize)
	if err != nil {
		return nil, fmt.Errorf("read unwind info at %#x: %w", addr, err)
	}
	if v := h[0] & 7; v != 1 && v != 2 {
		return nil, &unwindinfo.FormatError{Off: int64(addr), Msg: fmt.Sprintf("unwind info at %#x", addr), Val: v, Err: unwindinfo.ErrUnsupportedVersion}
	}
	size := infoSize(h)
	if cap(h) >= size {
		return info(h[:size]), nil // the run that holds the header holds it all
	}
	b, err := r.bytes(area, addr, size)
	if err != nil {
		return nil, fmt.Errorf("read unwind info at %#x: %w", addr, err)
	}
	return info(b), nil
}

// codeSlots returns the number of slots of the code in slot s, or 0 for an
// invalid operation. UWOP_EPILOG codes count 2, as the Windows unwinder
// steps over them in pairs when it walks the prolog codes.
func codeSlots(version uint8, s uint16) int {
	k := unwindinfo.SlotCount(version, s)
	if unwindinfo.Op(s>>8)&0xf == unwindinfo.UWOP_EPILOG && k != 0 {
		k = 2
	}
	return k
}

// badCode is the error for an invalid code at slot i.
func badCode(addr uint64, i int, s uint16, truncated bool) error {
	op := unwindinfo.Op(s>>8) & 0xf
	if truncated {
		return &unwindinfo.FormatError{Off: int64(unwindinfo.HeaderSize + 2*i),
			Msg: fmt.Sprintf("unwind info at %#x: operand of unwind code %s", addr, op.Name()), Err: unwindinfo.ErrTruncated}
	}
	return &unwindinfo.FormatError{Off: int64(unwindinfo.HeaderSize + 2*i),
		Msg: fmt.Sprintf("unwind info at %#x: unwind code %s", addr, op.Name()), Val: uint8(op), Err: unwindinfo.ErrBadOp}
}
