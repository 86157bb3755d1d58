package unwind

import (
	"encoding/binary"

	"github.com/fntable/fntable/unwindinfo"
)

// fastUnwind performs the common unwind step — version 1 unwind
// information without chaining, integer register saves only, an epilog
// (if any) that ends in a return, code, unwind information and stack each
// in one run of a SplicedMemory — with no error paths and no indirection.
// It works on a copy of the registers and changes ctx only when it
// succeeds; res, which must be zero on entry, may hold context pointers
// when it fails. When the step is anything else it returns false, and the
// general path performs it from the start. The differential tests cover
// both paths, since they unwind through SplicedMemory.
func fastUnwind(sm *SplicedMemory, ht HandlerType, imageBase, pc uint64, entry unwindinfo.RuntimeFunction, ctx *Context, res *Result) bool {
	infoAddr := imageBase + uint64(entry.UnwindData)
	istart, img := sm.Bytes(infoAddr)
	ioff := infoAddr - istart
	if entry.Indirect() || ioff+unwindinfo.HeaderSize > uint64(len(img)) {
		return false
	}
	h := img[ioff : ioff+unwindinfo.HeaderSize]
	flags := unwindinfo.Flags(h[0] >> 3)
	if h[0]&7 != 1 || flags&unwindinfo.UNW_FLAG_CHAININFO != 0 {
		return false
	}
	count := int(h[2])
	size := uint64(infoSize(h))
	if size > uint64(len(img))-ioff {
		return false
	}
	in := img[ioff : ioff+size]
	prologSize := uint32(h[1])
	frameReg := int(h[3] & 15)
	frameOff := uint64(h[3]>>4) * 16
	begin := imageBase + uint64(entry.BeginAddress)
	prologOffset := uint32(pc - begin)
	inProlog := pc-begin < uint64(prologSize)

	g := *ctx.gpr()
	sstart, stk := sm.Bytes(g[unwindinfo.RSP])
	read := func(addr uint64) (uint64, bool) {
		off := addr - sstart
		if off >= uint64(len(stk)) || uint64(len(stk))-off < 8 {
			return 0, false
		}
		return binary.LittleEndian.Uint64(stk[off:]), true
	}
	ptrs := &res.ContextPointers.Integer

	// Establisher frame.
	frame := g[unwindinfo.RSP]
	if frameReg != 0 {
		framed := true
		if inProlog {
			framed = false
			for i := 0; i < count; {
				s := binary.LittleEndian.Uint16(in[4+2*i:])
				if unwindinfo.Op(s>>8)&0xf == unwindinfo.UWOP_SET_FPREG {
					framed = prologOffset >= uint32(uint8(s))
					break
				}
				k := codeSlots(1, s)
				if k == 0 {
					return false
				}
				i += k
			}
		}
		if framed {
			frame = g[frameReg] - frameOff
		}
	}

	// Epilog: only those that end in a return, emulated here.
	if count != 0 && !inProlog {
		if pc-istart >= uint64(len(img)) || uint64(len(img))-(pc-istart) < maxEpilogBytes {
			return false // code elsewhere, or near the end of the run
		}
		code := epilogCode(img[pc-istart:])
		if mayStartEpilog(code.at(0), code.at(1)) {
			term, leaReg := scanEpilog(code, frameReg)
			if !returnsFrom(code, term) {
				if op := code.at(term); op == opJmp8 || op == opJmp32 {
					return false // tail calls need the target rules
				}
			} else {
				i := 0
				if code.at(0)&0xf8 == rexW {
					switch code.at(1) {
					case opAddImm8:
						g[unwindinfo.RSP] += uint64(int64(int8(code.at(3))))
						i = 4
					case opAddImm:
						g[unwindinfo.RSP] += uint64(int64(code.i32(3)))
						i = 7
					case opLea:
						if leaReg >= 0 {
							if code.at(2)&0xf8 == 0x60 {
								g[unwindinfo.RSP] = g[leaReg] + uint64(int64(int8(code.at(3))))
								i = 4
							} else {
								g[unwindinfo.RSP] = g[leaReg] + uint64(int64(code.i32(3)))
								i = 7
							}
						}
					}
				}
				for i < term {
					var reg int
					if code.at(i)&0xf8 == opPop {
						reg = int(code.at(i) & 7)
						i++
					} else if isREX(code.at(i)) && code.at(i+1)&0xf8 == opPop {
						reg = int(code.at(i)&1)<<3 | int(code.at(i+1)&7)
						i += 2
					} else {
						break // the F2 prefix
					}
					addr := g[unwindinfo.RSP]
					v, ok := read(addr)
					if !ok {
						return false
					}
					g[reg] = v
					ptrs[reg] = addr
					g[unwindinfo.RSP] += 8
				}
				rip, ok := read(g[unwindinfo.RSP])
				if !ok {
					return false
				}
				g[unwindinfo.RSP] += 8
				if frameReg != 0 {
					frame = g[unwindinfo.RSP] - 8
				}
				*ctx.gpr() = g
				ctx.Rip = rip
				res.EstablisherFrame, res.InEpilog = frame, true
				return true
			}
		}
	}

	// Body or prolog.
	codes := in[unwindinfo.HeaderSize : unwindinfo.HeaderSize+2*count]
	for i := 0; i < count; {
		s := uint16(codes[2*i]) | uint16(codes[2*i+1])<<8
		k := codeSlots(1, s)
		if k == 0 || i+k > count {
			return false
		}
		if prologOffset >= uint32(uint8(s)) {
			reg := int(s >> 12)
			switch unwindinfo.Op(s>>8) & 0xf {
			case unwindinfo.UWOP_PUSH_NONVOL:
				addr := g[unwindinfo.RSP]
				v, ok := read(addr)
				if !ok {
					return false
				}
				g[reg] = v
				ptrs[reg] = addr
				g[unwindinfo.RSP] += 8
			case unwindinfo.UWOP_ALLOC_SMALL:
				g[unwindinfo.RSP] += uint64(reg)*8 + 8
			case unwindinfo.UWOP_ALLOC_LARGE:
				if reg == 0 {
					g[unwindinfo.RSP] += uint64(binary.LittleEndian.Uint16(codes[2*i+2:])) * 8
				} else {
					g[unwindinfo.RSP] += uint64(binary.LittleEndian.Uint32(codes[2*i+2:]))
				}
			case unwindinfo.UWOP_SET_FPREG:
				g[unwindinfo.RSP] = g[frameReg] - frameOff
			case unwindinfo.UWOP_SAVE_NONVOL, unwindinfo.UWOP_SAVE_NONVOL_FAR:
				addr := frame + uint64(binary.LittleEndian.Uint16(codes[2*i+2:]))*8
				if k == 3 {
					addr = frame + uint64(binary.LittleEndian.Uint32(codes[2*i+2:]))
				}
				v, ok := read(addr)
				if !ok {
					return false
				}
				g[reg] = v
				ptrs[reg] = addr
			default:
				return false // XMM saves and machine frames: the general path
			}
		}
		i += k
	}
	rip, ok := read(g[unwindinfo.RSP])
	if !ok {
		return false
	}
	g[unwindinfo.RSP] += 8

	*ctx.gpr() = g
	ctx.Rip = rip
	res.EstablisherFrame = frame
	if ht != HandlerNone && prologOffset >= prologSize && uint32(flags)&uint32(ht) != 0 && flags.HasHandler() {
		t := 4 + 2*((count+1)&^1)
		res.HandlerRoutine = imageBase + uint64(binary.LittleEndian.Uint32(in[t:]))
		res.HandlerData = infoAddr + uint64(t) + 4
	}
	return true
}
