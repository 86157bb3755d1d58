package unwind

import (
	"fmt"

	"github.com/fntable/fntable/unwindinfo"
)

// maxEpilogBytes bounds the instruction bytes examined for a version 1
// epilog: an add or lea (7 bytes), up to 16 two-byte pops, a REPNE prefix
// and a 5-byte jump fit in 45; the rest is slack. Longer runs of pops are
// not epilogs any compiler emits, and are treated as none.
const maxEpilogBytes = 64

// x86 bytes of the epilog forms ([clr] VirtualUnwind, [msx64] "Epilog
// code").
const (
	rexW      = 0x48
	opAddImm8 = 0x83
	opAddImm  = 0x81
	opLea     = 0x8d
	opPop     = 0x58
	opRet     = 0xc3
	opRetImm  = 0xc2
	opJmp8    = 0xeb
	opJmp32   = 0xe9
	opJmpInd  = 0xff
	prefixRep = 0xf3
	prefixBnd = 0xf2 // REPNE/BND
)

func isREX(b byte) bool { return b&0xf0 == 0x40 }

// epilogCode is the instruction bytes at the control PC. Bytes past the
// end (unreadable memory) read as 0, which matches no epilog form, as in
// the Windows debugger's copy of the unwinder.
type epilogCode []byte

func (e epilogCode) at(i int) byte {
	if uint(i) < uint(len(e)) {
		return e[i]
	}
	return 0
}

func (e epilogCode) i32(i int) int32 {
	return int32(uint32(e.at(i)) | uint32(e.at(i+1))<<8 | uint32(e.at(i+2))<<16 | uint32(e.at(i+3))<<24)
}

// MayStartEpilog reports whether an epilog RtlVirtualUnwind recognizes can
// start with the bytes b0 b1.
func MayStartEpilog(b0, b1 byte) bool { return mayStartEpilog(b0, b1) }

// mayStartEpilog reports whether an epilog can start with the bytes b0 b1:
// a REX prefix before add, lea, pop or jmp; a pop; ret; rep ret; the F2
// prefix; a jump. It is a quick test that rejects most body instructions.
func mayStartEpilog(b0, b1 byte) bool {
	switch {
	case b0&0xf0 == 0x40:
		return b1 == opAddImm8 || b1 == opAddImm || b1 == opLea || b1 == opJmpInd || b1&0xf8 == opPop
	case b0&0xf8 == opPop:
		return true
	}
	return b0 == opRet || b0 == opRetImm || b0 == prefixRep || b0 == prefixBnd || b0 == opJmp8 || b0 == opJmp32 || b0 == opJmpInd
}

// scanEpilog matches the part of a version 1 epilog before its control
// transfer ([clr] VirtualUnwind): an optional add rsp / lea rsp from the
// frame register, any number of pops, an optional F2 prefix. It returns the
// index of the control transfer instruction, and the register of a
// matched lea rsp (-1 if none).
func scanEpilog(code epilogCode, frameReg int) (i, leaReg int) {
	leaReg = -1
	switch {
	case code.at(0) == rexW && code.at(1) == opAddImm8 && code.at(2) == 0xc4:
		i = 4
	case code.at(0) == rexW && code.at(1) == opAddImm && code.at(2) == 0xc4:
		i = 7
	case code.at(0)&0xfe == rexW && code.at(1) == opLea:
		reg := int(code.at(0)&1)<<3 | int(code.at(2)&7)
		if reg != 0 && reg == frameReg {
			switch code.at(2) & 0xf8 {
			case 0x60: // mod 01, reg rsp: disp8
				i, leaReg = 4, reg
			case 0xa0: // mod 10, reg rsp: disp32
				i, leaReg = 7, reg
			}
		}
	}
	for {
		if code.at(i)&0xf8 == opPop {
			i++
		} else if isREX(code.at(i)) && code.at(i+1)&0xf8 == opPop {
			i += 2
		} else {
			break
		}
	}
	if code.at(i) == prefixBnd {
		i++
	}
	return i, leaReg
}

// returnsFrom reports whether the control transfer at code[i] ends an
// epilog whatever its target: ret, ret imm16, rep ret, jmp [rip+disp32],
// or a REX.W jmp r/m64.
func returnsFrom(code epilogCode, i int) bool {
	op := code.at(i)
	return op == opRet || op == opRetImm || op == prefixRep && code.at(i+1) == opRet ||
		op == opJmpInd && code.at(i+1) == 0x25 ||
		op&0xf8 == rexW && code.at(i+1) == opJmpInd && code.at(i+2)&0x38 == 0x20
}

// unwindV1Epilog checks whether controlPC is in a version 1 epilog by
// matching the instructions there and, if so, emulates the rest of the
// epilog. It reports whether it did.
func (u *Unwinder) unwindV1Epilog(r *reader, imageBase, controlPC uint64, entry unwindinfo.RuntimeFunction, in info, ctx *Context, res *Result, ptrs *ContextPointers) (bool, error) {
	code := epilogCode(r.prefix(areaCode, controlPC, maxEpilogBytes))
	if !mayStartEpilog(code.at(0), code.at(1)) {
		return false, nil
	}
	frameReg := int(in.frameReg())
	i, leaReg := scanEpilog(code, frameReg)
	// The control transfer decides.
	inEpilog := returnsFrom(code, i)
	if op := code.at(i); op == opJmp8 || op == opJmp32 {
		next := controlPC + uint64(i)
		var target uint64
		if op == opJmp8 {
			target = next + 2 + uint64(int64(int8(code.at(i+1))))
		} else {
			target = next + 5 + uint64(int64(code.i32(i+1)))
		}
		rva := target - imageBase
		if rva < uint64(entry.BeginAddress) || rva >= uint64(entry.EndAddress) {
			// Outside this entry: a tail call, unless it jumps into
			// another part of the same function (not to its start).
			inEpilog = true
			if u.Functions != nil {
				if begin, ok := u.samePrimary(r, imageBase, entry, target); ok && rva != begin {
					inEpilog = false
				}
			}
		} else if rva == uint64(entry.BeginAddress) && in.flags()&unwindinfo.UNW_FLAG_CHAININFO == 0 {
			inEpilog = true // recursive tail call
		}
	}
	if !inEpilog {
		return false, nil
	}

	// Emulate the epilog from controlPC.
	res.Flags |= StepInEpilog
	i = 0
	if code.at(0)&0xf8 == rexW {
		switch code.at(1) {
		case opAddImm8:
			ctx.Rsp += uint64(int64(int8(code.at(3))))
			i = 4
		case opAddImm:
			ctx.Rsp += uint64(int64(code.i32(3)))
			i = 7
		case opLea:
			if leaReg >= 0 {
				if code.at(2)&0xf8 == 0x60 {
					ctx.Rsp = ctx.Reg(unwindinfo.Register(leaReg)) + uint64(int64(int8(code.at(3))))
					i = 4
				} else {
					ctx.Rsp = ctx.Reg(unwindinfo.Register(leaReg)) + uint64(int64(code.i32(3)))
					i = 7
				}
			}
		}
	}
	for {
		var reg unwindinfo.Register
		if code.at(i)&0xf8 == opPop {
			reg = unwindinfo.Register(code.at(i) & 7)
			i++
		} else if isREX(code.at(i)) && code.at(i+1)&0xf8 == opPop {
			reg = unwindinfo.Register((code.at(i)&1)<<3 | code.at(i+1)&7)
			i += 2
		} else {
			break
		}
		if err := popReg(r, reg, ctx, ptrs); err != nil {
			return true, fmt.Errorf("unwind epilog at %#x: %w", controlPC, err)
		}
	}
	// Return (a jump is emulated as a return too).
	rip, err := r.u64(ctx.Rsp)
	if err != nil {
		return true, fmt.Errorf("unwind epilog at %#x: read return address: %w", controlPC, err)
	}
	ctx.Rip = rip
	ctx.Rsp += 8
	// Windows 11 reports the frame as RSP−8 after an epilog of a function
	// with a frame register (Wine's tests, checked on Windows).
	if frameReg != 0 {
		res.EstablisherFrame = ctx.Rsp - 8
	}
	return true, nil
}

// samePrimary reports whether target lies in a function whose primary
// entry is also entry's primary entry, and returns that entry's begin RVA
// ([clr] SameFunction).
func (u *Unwinder) samePrimary(r *reader, imageBase uint64, entry unwindinfo.RuntimeFunction, target uint64) (uint64, bool) {
	tfn, tbase, ok := u.Functions.LookupFunctionEntry(target)
	if !ok || tfn == nil || tbase != imageBase {
		return 0, false
	}
	tp, err := primaryEntry(r, imageBase, *tfn)
	if err != nil {
		return 0, false
	}
	p, err := primaryEntry(r, imageBase, entry)
	if err != nil || p.BeginAddress != tp.BeginAddress {
		return 0, false
	}
	return uint64(p.BeginAddress), true
}

// PrimaryEntry follows indirect entries and chained unwind information
// from fn, read from mem, to the primary entry, as the unwinder does.
func PrimaryEntry(mem Memory, imageBase uint64, fn unwindinfo.RuntimeFunction) (unwindinfo.RuntimeFunction, error) {
	r := newReader(mem)
	defer r.release()
	return primaryEntry(&r, imageBase, fn)
}

// primaryEntry follows chained unwind information to the primary entry.
// Like the Windows unwinder's LookupPrimaryFunctionEntry it looks only at
// the CHAININFO flag and the chained entry, not at the rest of the header.
func primaryEntry(r *reader, imageBase uint64, fn unwindinfo.RuntimeFunction) (unwindinfo.RuntimeFunction, error) {
	fn, err := resolveIndirect(r, imageBase, fn)
	if err != nil {
		return fn, err
	}
	for chain := 0; ; chain++ {
		if chain > unwindinfo.ChainLimit {
			return fn, chainErr(imageBase + uint64(fn.UnwindData))
		}
		addr := imageBase + uint64(fn.UnwindData)
		b, err := r.bytes(areaOther, addr, unwindinfo.HeaderSize)
		if err != nil {
			return fn, err
		}
		if unwindinfo.Flags(b[0]>>3)&unwindinfo.UNW_FLAG_CHAININFO == 0 {
			return fn, nil
		}
		trailer := unwindinfo.Header{CountOfCodes: b[2]}.TrailerOffset()
		b, err = r.bytes(areaOther, addr+uint64(trailer), unwindinfo.RuntimeFunctionSize)
		if err != nil {
			return fn, err
		}
		fn, _ = unwindinfo.DecodeRuntimeFunction(b)
	}
}

// unwindV2Epilog finds an epilog of version 2 unwind information from its
// UWOP_EPILOG codes and, if controlPC is in one, emulates its rest ([clr]
// VirtualUnwind and UnwindEpilogue). It reports whether it did.
func unwindV2Epilog(r *reader, imageBase, controlPC uint64, entry unwindinfo.RuntimeFunction, in info, ctx *Context, res *Result, ptrs *ContextPointers) (bool, error) {
	first := in.slot(0)
	if unwindinfo.Op(first>>8)&0xf != unwindinfo.UWOP_EPILOG {
		return false, nil
	}
	size := uint32(uint8(first))
	relPC := uint32(controlPC - imageBase)
	var start uint32
	found := false
	if first>>12&1 != 0 {
		start = entry.EndAddress - size
		found = relPC-start < size
	}
	if !found {
		for i := 1; i < in.count(); i++ {
			s := in.slot(i)
			if unwindinfo.Op(s>>8)&0xf != unwindinfo.UWOP_EPILOG {
				break
			}
			off := uint32(s&0xff) | uint32(s>>12)<<8
			if off == 0 {
				break // padding
			}
			start = entry.EndAddress - off
			if relPC-start < size {
				found = true
				break
			}
		}
	}
	if !found {
		return false, nil
	}
	res.Flags |= StepInEpilog
	return true, unwindEpilogue(r, imageBase, controlPC, relPC-start, entry, in, ctx, res, ptrs)
}

// unwindEpilogue emulates the rest of a version 2 epilog, offset bytes into
// it, from the push codes of the entry (whose unwind information is in) or
// its nearest chained parent that has them ([clr] UnwindEpilogue).
func unwindEpilogue(r *reader, imageBase, controlPC uint64, offset uint32, entry unwindinfo.RuntimeFunction, in info, ctx *Context, res *Result, ptrs *ContextPointers) error {
	first := 0
	for chain := 0; ; chain++ {
		infoAddr := imageBase + uint64(entry.UnwindData)
		if chain > 0 {
			var err error
			if in, err = readInfo(r, areaInfo, infoAddr); err != nil {
				return err
			}
		}
		n := in.count()
		first = 0
		for first < n {
			s := in.slot(first)
			op := unwindinfo.Op(s>>8) & 0xf
			if op == unwindinfo.UWOP_PUSH_NONVOL || op == unwindinfo.UWOP_PUSH_MACHFRAME {
				break
			}
			k := codeSlots(in.version(), s)
			if k == 0 {
				return badCode(infoAddr, first, s, false)
			}
			first += k
		}
		if first < n {
			break
		}
		parent, ok := in.chained()
		if !ok {
			break
		}
		if chain+1 > unwindinfo.ChainLimit {
			return chainErr(infoAddr)
		}
		entry = parent
	}

	n := in.count()
	cur := uint32(0)
	i := first
	var last uint16
	for ; i < n; i++ {
		last = in.slot(i)
		if unwindinfo.Op(last>>8)&0xf != unwindinfo.UWOP_PUSH_NONVOL {
			break
		}
		reg := unwindinfo.Register(last >> 12)
		if cur >= offset {
			if err := popReg(r, reg, ctx, ptrs); err != nil {
				return fmt.Errorf("unwind epilog at %#x: %w", controlPC, err)
			}
		}
		cur++
		if reg >= 8 {
			cur++ // REX prefix
		}
	}
	// An ALLOC_SMALL of 8 stands for a pushfq popped into a volatile register.
	if i < n && unwindinfo.Op(last>>8)&0xf == unwindinfo.UWOP_ALLOC_SMALL && last>>12 == 0 {
		if cur >= offset {
			ctx.Rsp += 8
		}
		i++
	}
	if i < n && unwindinfo.Op(in.slot(i)>>8)&0xf == unwindinfo.UWOP_PUSH_MACHFRAME {
		rip, err := r.u64(ctx.Rsp)
		if err != nil {
			return err
		}
		rsp, err := r.u64(ctx.Rsp + 24)
		if err != nil {
			return err
		}
		ctx.Rip, ctx.Rsp = rip, rsp
		res.Flags |= StepMachineFrame
		return nil
	}
	// Any other code here breaks the epilog rules; the Windows unwinder
	// asserts in debug builds and emulates a return.
	rip, err := r.u64(ctx.Rsp)
	if err != nil {
		return fmt.Errorf("unwind epilog at %#x: read return address: %w", controlPC, err)
	}
	ctx.Rip = rip
	ctx.Rsp += 8
	return nil
}
