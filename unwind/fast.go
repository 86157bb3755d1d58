package unwind

import (
	"encoding/binary"
	"math/bits"
	"unsafe"

	"github.com/fntable/fntable/unwindinfo"
)

// fastUnwind performs the common unwind step in Go — version 1 unwind
// information without chaining, integer register saves only, an epilog
// (if any) that ends in a return, code, unwind information and stack each
// in one run of a SplicedMemory — with no error paths and no indirection.
// On amd64 fastStep (fast_amd64.s) takes most of these steps first, and
// leaves this function those in a prolog, those with more runs than it
// scans, and those that restore RSP from memory; elsewhere this function
// takes them all. It changes ctx, and ptrs if it is not nil, only when it
// succeeds; res, which must be zero on entry, may be changed when it
// fails. When the step is anything else it returns false, and the general
// path performs it from the start. The differential tests cover it, and
// fast_test.go compares it, called directly, with the general path.
//
// It runs for every frame of every stack walk, so it is written for the
// compiler. It calls nothing on its common path, so that its values can
// stay in registers. It reads the header as one word, and the unwind
// information and the stack through ld16, ld32 and ld64 once it has
// checked their bounds itself. It changes no register until the step has
// succeeded: the loop over the codes records where each register is
// restored from (in an array on its stack, and in a mask of the
// registers) and checks that the address is readable, and the values are
// loaded, and the addresses copied to ptrs, at the end.
func fastUnwind(sm *SplicedMemory, ht HandlerType, imageBase, pc uint64, fn *unwindinfo.RuntimeFunction, ctx *Context, res *Result, ptrs *ContextPointers) bool {
	data := fn.UnwindData
	infoAddr := imageBase + uint64(data)
	g := ctx.gpr()
	rsp := g[unwindinfo.RSP]

	// The runs of the unwind information and of the stack: a scan when
	// there are a few, as for a JIT region and a stack.
	var iseg, sseg *segment
	if f := sm.flat; len(f) <= 4 {
		// Unrolled: a loop here would need more registers than there are.
		if len(f) > 0 {
			iseg, sseg = scanSegment(&f[0], infoAddr, rsp, iseg, sseg)
		}
		if len(f) > 1 {
			iseg, sseg = scanSegment(&f[1], infoAddr, rsp, iseg, sseg)
		}
		if len(f) > 2 {
			iseg, sseg = scanSegment(&f[2], infoAddr, rsp, iseg, sseg)
		}
		if len(f) > 3 {
			iseg, sseg = scanSegment(&f[3], infoAddr, rsp, iseg, sseg)
		}
	} else {
		iseg, sseg = searchSegment(f, infoAddr), searchSegment(f, rsp)
	}
	if iseg == nil || sseg == nil {
		return false
	}

	// The header, and the size of the unwind information.
	ilen := uint64(len(iseg.data))
	ioff := infoAddr - iseg.start
	if data&unwindinfo.RUNTIME_FUNCTION_INDIRECT != 0 || ioff >= ilen || ilen-ioff < unwindinfo.HeaderSize {
		return false
	}
	ip := unsafe.Pointer(unsafe.SliceData(iseg.data))
	hdr := ld32(ip, ioff)
	// Version 1, not chained.
	if hdr&(7|uint32(unwindinfo.UNW_FLAG_CHAININFO)<<3) != 1 {
		return false
	}
	count := uint64(hdr >> 16 & 0xff)
	size := unwindinfo.HeaderSize + 2*count
	if hdr&(uint32(unwindinfo.UNW_FLAG_EHANDLER|unwindinfo.UNW_FLAG_UHANDLER)<<3) != 0 {
		size = unwindinfo.HeaderSize + 2*((count+1)&^1) + 4
	}
	slen := uint64(len(sseg.data))
	if size > ilen-ioff || slen < 8 {
		return false
	}
	// The codes are at [ioff+4, end) of the run.
	end := ioff + unwindinfo.HeaderSize + 2*count
	prologSize := hdr >> 8 & 0xff
	frameReg := hdr >> 24 & 15
	begin := imageBase + uint64(fn.BeginAddress)
	prologOffset := uint32(pc - begin)
	inProlog := pc-begin < uint64(prologSize)

	// Establisher frame.
	frame := rsp
	if frameReg != 0 {
		framed := true
		if inProlog {
			// In the prolog: framed only once SET_FPREG has executed.
			framed = false
			for i := ioff + unwindinfo.HeaderSize; i < end; {
				s := uint16(ld16(ip, i))
				if unwindinfo.Op(s>>8)&0xf == unwindinfo.UWOP_SET_FPREG {
					framed = prologOffset >= uint32(uint8(s))
					break
				}
				k := codeSlots(1, s)
				if k == 0 {
					return false
				}
				i += 2 * uint64(k)
			}
		}
		if framed {
			frame = g[frameReg] - uint64(hdr>>28)*16
		}
	}

	// The handler, if one is to be reported (res is reset if the step
	// fails after all, and fastEpilog clears it for an epilog).
	if ht != HandlerNone && prologOffset >= prologSize && hdr>>3&0x1f&uint32(ht) != 0 && hdr&(uint32(unwindinfo.UNW_FLAG_EHANDLER|unwindinfo.UNW_FLAG_UHANDLER)<<3) != 0 {
		t := ioff + size - 4
		res.HandlerRoutine = imageBase + uint64(ld32(ip, t))
		res.HandlerData = infoAddr + size
	}
	res.EstablisherFrame = frame
	po := uint64(prologOffset) | uint64(hdr>>24)<<32

	// Epilog: only those that end in a return, emulated by fastEpilog.
	if count != 0 && !inProlog {
		pcoff := pc - iseg.start
		if pcoff >= ilen || ilen-pcoff < maxEpilogBytes {
			return false // code elsewhere, or near the end of the run
		}
		if c := epilogStart[*(*byte)(unsafe.Add(ip, pcoff))]; c&epilogAny != 0 || c&epilogREX != 0 && epilogStart[*(*byte)(unsafe.Add(ip, pcoff+1))]&epilogAfterREX != 0 {
			return fastEpilog(ip, ioff+unwindinfo.HeaderSize, end, po, rsp, sseg, ctx, res, ptrs, pcoff)
		}
	}
	return fastCodes(ip, ioff+unwindinfo.HeaderSize, end, po, rsp, sseg, ctx, res, ptrs)
}

// fastCodes is the rest of fastUnwind: it reverses the codes at [i, end)
// of the run at ip that have executed, then pops the return address. po
// holds the prolog offset (low 32 bits) and the last header byte (frame
// register and offset, bits 32 to 39); res.EstablisherFrame is set.
// Registers change only once all the codes have been reversed: a read at
// addr is in the stack's run if addr-sstart <= slast, and restored has a
// bit for each register restored from memory, whose address is in at.
func fastCodes(ip unsafe.Pointer, i, end, po, rsp uint64, sseg *segment, ctx *Context, res *Result, ptrs *ContextPointers) bool {
	prologOffset := uint32(po)
	var at [16]uint64
	restored := uint32(0)
	sstart, slast := sseg.start, uint64(len(sseg.data))-8
	sp := unsafe.Pointer(unsafe.SliceData(sseg.data))
	for i < end {
		s := ld16(ip, i)
		done := prologOffset >= s&0xff
		reg := s >> 12
		switch s >> 8 & 0xf {
		case uint32(unwindinfo.UWOP_PUSH_NONVOL):
			if done {
				off := rsp - sstart
				if off > slast {
					return false
				}
				at[reg] = rsp
				restored |= 1 << reg
				rsp += 8
				if reg == uint32(unwindinfo.RSP) {
					rsp = ld64(sp, off) + 8
				}
			}
			i += 2
		case uint32(unwindinfo.UWOP_ALLOC_SMALL):
			if done {
				rsp += uint64(reg)*8 + 8
			}
			i += 2
		case uint32(unwindinfo.UWOP_ALLOC_LARGE):
			if reg == 0 {
				if end-i < 4 {
					return false
				}
				if done {
					rsp += uint64(ld16(ip, i+2)) * 8
				}
				i += 4
			} else {
				if end-i < 6 {
					return false
				}
				if done {
					rsp += uint64(ld32(ip, i+2))
				}
				i += 6
			}
		case uint32(unwindinfo.UWOP_SET_FPREG):
			if done {
				// RSP = the frame register's current value − offset.
				fr := uint32(po >> 32 & 15)
				v := ctx.gpr()[fr]
				switch {
				case fr == uint32(unwindinfo.RSP):
					v = rsp
				case restored&(1<<fr) != 0:
					v = ld64(sp, at[fr]-sstart)
				}
				rsp = v - (po>>36&15)*16
			}
			i += 2
		case uint32(unwindinfo.UWOP_SAVE_NONVOL), uint32(unwindinfo.UWOP_SAVE_NONVOL_FAR):
			var addr uint64
			if s>>8&0xf == uint32(unwindinfo.UWOP_SAVE_NONVOL) {
				if end-i < 4 {
					return false
				}
				addr = res.EstablisherFrame + uint64(ld16(ip, i+2))*8
				i += 4
			} else {
				if end-i < 6 {
					return false
				}
				addr = res.EstablisherFrame + uint64(ld32(ip, i+2))
				i += 6
			}
			if done {
				off := addr - sstart
				if off > slast {
					return false
				}
				at[reg] = addr
				restored |= 1 << reg
				if reg == uint32(unwindinfo.RSP) {
					rsp = ld64(sp, off)
				}
			}
		case uint32(unwindinfo.UWOP_SAVE_XMM128):
			if done || end-i < 4 {
				return false // XMM saves: the general path
			}
			i += 4
		case uint32(unwindinfo.UWOP_SAVE_XMM128_FAR):
			if done || end-i < 6 {
				return false
			}
			i += 6
		case uint32(unwindinfo.UWOP_PUSH_MACHFRAME):
			if done {
				return false // machine frames: the general path
			}
			i += 2
		default:
			return false // invalid in version 1
		}
	}
	off := rsp - sstart
	if off > slast {
		return false
	}

	// Success: the registers and the return address.
	commit(ctx, ptrs, &at, restored, sp, sstart, off, rsp)
	return true
}

// commit ends a successful fast step: it loads each register whose bit is
// set in restored from the address at[r] of the stack's run (which starts
// at sstart, at sp) and records the address in ptrs if it is not nil, then
// pops the return address at offset off, rsp being the stack pointer
// before the pop. RSP is loaded too if it is in restored, and then set.
func commit(ctx *Context, ptrs *ContextPointers, at *[16]uint64, restored uint32, sp unsafe.Pointer, sstart, off, rsp uint64) {
	g := ctx.gpr()
	for m := restored; m != 0; m &= m - 1 {
		r := bits.TrailingZeros32(m) & 15
		g[r] = ld64(sp, at[r]-sstart)
	}
	if ptrs != nil {
		for m := restored; m != 0; m &= m - 1 {
			r := bits.TrailingZeros32(m) & 15
			ptrs.Integer[r] = at[r]
		}
	}
	ctx.Rip = ld64(sp, off)
	g[unwindinfo.RSP] = rsp + 8
}

// scanSegment returns s in place of iseg if it holds a, and in place of
// sseg if it holds b.
func scanSegment(s *segment, a, b uint64, iseg, sseg *segment) (*segment, *segment) {
	if a-s.start < s.end-s.start {
		iseg = s
	}
	if b-s.start < s.end-s.start {
		sseg = s
	}
	return iseg, sseg
}

// ld16, ld32 and ld64 read little-endian values at offset off of the run
// of bytes at p, whose bounds the caller has checked.
func ld16(p unsafe.Pointer, off uint64) uint32 {
	return uint32(binary.LittleEndian.Uint16((*[2]byte)(unsafe.Add(p, off))[:]))
}

func ld32(p unsafe.Pointer, off uint64) uint32 {
	return binary.LittleEndian.Uint32((*[4]byte)(unsafe.Add(p, off))[:])
}

func ld64(p unsafe.Pointer, off uint64) uint64 {
	return binary.LittleEndian.Uint64((*[8]byte)(unsafe.Add(p, off))[:])
}

// epilogStart classifies the first two bytes of an epilog for the fast
// path, as mayStartEpilog does: whether a byte may start one whatever
// follows (epilogAny), is a REX prefix (epilogREX), or may follow a REX
// prefix at the start (epilogAfterREX).
var epilogStart = func() (t [256]uint8) {
	for b := range 256 {
		switch {
		case byte(b)&0xf0 == 0x40:
			t[b] |= epilogREX
		case mayStartEpilog(byte(b), 0):
			t[b] |= epilogAny
		}
		if mayStartEpilog(0x40, byte(b)) {
			t[b] |= epilogAfterREX
		}
	}
	return t
}()

const (
	epilogAny = 1 << iota
	epilogREX
	epilogAfterREX
)

// fastEpilog is fastCodes (with the same arguments) when the code at
// offset pcoff of the run at ip, of which fastUnwind has checked that
// maxEpilogBytes are there, may start an epilog. It emulates an epilog
// that ends in a return, leaves tail calls to the general path, and
// otherwise passes the step on to fastCodes.
func fastEpilog(ip unsafe.Pointer, codes, end, po, rsp uint64, sseg *segment, ctx *Context, res *Result, ptrs *ContextPointers, pcoff uint64) bool {
	frameReg := int(po >> 32 & 15)
	code := epilogCode(unsafe.Slice((*byte)(unsafe.Add(ip, pcoff)), maxEpilogBytes))
	term, leaReg := scanEpilog(code, frameReg)
	if !returnsFrom(code, term) {
		if op := code.at(term); op == opJmp8 || op == opJmp32 {
			return false // tail calls need the target rules
		}
		return fastCodes(ip, codes, end, po, rsp, sseg, ctx, res, ptrs)
	}

	// Emulate the epilog from pc. As in fastCodes, registers change only
	// once every read has been checked: a read at addr is in the stack's
	// run if addr-sstart <= slast, and restored has a bit for each
	// register popped, whose address is in at.
	res.HandlerRoutine, res.HandlerData = 0, 0
	var at [16]uint64
	restored := uint32(0)
	sstart, slast := sseg.start, uint64(len(sseg.data))-8
	sp := unsafe.Pointer(unsafe.SliceData(sseg.data))
	g := ctx.gpr()
	i := 0
	if code[0]&0xf8 == rexW {
		switch code[1] {
		case opAddImm8:
			rsp += uint64(int64(int8(code[3])))
			i = 4
		case opAddImm:
			rsp += uint64(int64(code.i32(3)))
			i = 7
		case opLea:
			if leaReg >= 0 {
				base := g[leaReg&15]
				if leaReg == int(unwindinfo.RSP) {
					base = rsp
				}
				if code[2]&0xf8 == 0x60 {
					rsp = base + uint64(int64(int8(code[3])))
					i = 4
				} else {
					rsp = base + uint64(int64(code.i32(3)))
					i = 7
				}
			}
		}
	}
	for i < term {
		var reg uint32
		if code.at(i)&0xf8 == opPop {
			reg = uint32(code.at(i) & 7)
			i++
		} else if isREX(code.at(i)) && code.at(i+1)&0xf8 == opPop {
			reg = uint32(code.at(i)&1)<<3 | uint32(code.at(i+1)&7)
			i += 2
		} else {
			break // the F2 prefix
		}
		off := rsp - sstart
		if off > slast {
			return false
		}
		at[reg] = rsp
		restored |= 1 << reg
		rsp += 8
		if reg == uint32(unwindinfo.RSP) {
			rsp = ld64(sp, off) + 8
		}
	}
	off := rsp - sstart
	if off > slast {
		return false
	}
	commit(ctx, ptrs, &at, restored, sp, sstart, off, rsp)
	if frameReg != 0 {
		res.EstablisherFrame = rsp
	}
	res.Flags |= StepInEpilog
	return true
}
