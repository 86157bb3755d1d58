package verify

import (
	"strings"

	"golang.org/x/arch/x86/x86asm"

	"github.com/fntable/fntable/unwindinfo"
)

// The synthetic stack: E is the stack pointer at the function's entry.
// Every 8-byte word of the stack holds marker(its address).
const (
	stackE     uint64 = 0x7ffd_0000_0000
	stackBelow uint64 = 1 << 34 // the stack reaches this far below E
	stackAbove uint64 = 1 << 12 // and this far above
)

func marker(a uint64) uint64 { return 0x5ead_0000_0000_0000 ^ a }

// callerVal is the caller's value of a register the function has not
// touched; junkVal the value of a register the function saved and may
// have changed since.
func callerVal(r int) uint64 { return 0xca11_e400_0000_0000 | uint64(r)<<4 }
func junkVal(r int) uint64   { return 0xdead_0000_0000_0000 | uint64(r)<<4 }

// where a nonvolatile register's caller value is.
type where uint8

const (
	inReg    where = iota // in the register (not saved, or popped)
	saved                 // in its stack slot only
	reloaded              // in the slot and in the register (reloaded with mov)
)

type save struct {
	w    where
	slot int64 // E − address of the slot
}

// rel records that a register holds E − off.
type rel struct {
	ok  bool
	off int64
}

// state is the symbolic machine state at an instruction boundary.
type state struct {
	spOK  bool
	sp    int64 // E − RSP
	rel   [16]rel
	raxOK bool // rax holds the constant rax (for sub rsp, rax after __chkstk)
	rax   uint64
	gpr   [16]save
	xmm   [16]save
}

// Windows x64 nonvolatile registers ("x64 calling convention",
// "Caller/callee saved registers"): rbx, rbp, rdi, rsi, rsp, r12–r15 and
// xmm6–xmm15.
func nonvolatile(r int) bool {
	switch unwindinfo.Register(r) {
	case unwindinfo.RBX, unwindinfo.RBP, unwindinfo.RSI, unwindinfo.RDI,
		unwindinfo.R12, unwindinfo.R13, unwindinfo.R14, unwindinfo.R15:
		return true
	}
	return false
}

// gpr returns the number (0 = rax … 15 = r15) of a general-purpose
// register of any width, and its width in bytes.
func gpr(r x86asm.Reg) (int, int, bool) {
	switch {
	case r >= x86asm.RAX && r <= x86asm.R15:
		return int(r - x86asm.RAX), 8, true
	case r >= x86asm.EAX && r <= x86asm.R15L:
		return int(r - x86asm.EAX), 4, true
	case r >= x86asm.AX && r <= x86asm.R15W:
		return int(r - x86asm.AX), 2, true
	case r >= x86asm.AL && r <= x86asm.BL:
		return int(r - x86asm.AL), 1, true
	case r >= x86asm.AH && r <= x86asm.BH:
		return int(r - x86asm.AH), 1, true
	case r >= x86asm.SPB && r <= x86asm.R15B:
		return 4 + int(r-x86asm.SPB), 1, true
	}
	return 0, 0, false
}

func xmmReg(r x86asm.Reg) (int, bool) {
	if r >= x86asm.X0 && r <= x86asm.X15 {
		return int(r - x86asm.X0), true
	}
	return 0, false
}

// effKind is the unwind effect of a prolog instruction.
type effKind uint8

const (
	effNone    effKind = iota
	effPush            // push reg
	effAlloc           // sub rsp, n
	effSetFP           // lea fp, [rsp+disp] / mov fp, rsp
	effSave            // mov [stack], nonvolatile
	effSaveXMM         // movaps [stack], xmm6..15
	effRSP             // another change of rsp no code can describe
)

type effect struct {
	kind effKind
	reg  int   // register (XMM number for effSaveXMM)
	size int64 // effAlloc
	slot int64 // effSave(XMM): E − address
	disp int64 // effSetFP
}

// addr returns E − (address of m) if the state knows it.
func (st *state) addr(m x86asm.Mem) (int64, bool) {
	if m.Index != 0 || m.Segment != 0 {
		return 0, false
	}
	b, w, ok := gpr(m.Base)
	if !ok || w != 8 {
		return 0, false
	}
	d := disp(m)
	if b == 4 {
		if !st.spOK {
			return 0, false
		}
		return st.sp - d, true
	}
	if st.rel[b].ok {
		return st.rel[b].off - d, true
	}
	return 0, false
}

// disp returns the displacement of m, sign-extended from 32 bits as the
// processor does in 64-bit addressing (x86asm leaves a disp32 unextended).
func disp(m x86asm.Mem) int64 { return int64(int32(m.Disp)) }

// clobber records that register r was written with an unknown value.
func (st *state) clobber(r int) {
	if r == 4 {
		st.spOK = false
		return
	}
	st.rel[r] = rel{}
	if r == 0 {
		st.raxOK = false
	}
}

// readOnlyFirst are operations whose first operand is not written.
func readOnlyFirst(op x86asm.Op) bool {
	switch op {
	case x86asm.CMP, x86asm.TEST, x86asm.PUSH, x86asm.BT, x86asm.JMP, x86asm.CALL,
		x86asm.NOP, x86asm.UCOMISS, x86asm.UCOMISD, x86asm.COMISS, x86asm.COMISD,
		x86asm.PTEST, x86asm.PREFETCHT0, x86asm.PREFETCHT1, x86asm.PREFETCHT2, x86asm.PREFETCHNTA:
		return true
	}
	return false
}

func isJcc(op x86asm.Op) bool {
	switch op {
	case x86asm.JA, x86asm.JAE, x86asm.JB, x86asm.JBE, x86asm.JE, x86asm.JG, x86asm.JGE, x86asm.JL,
		x86asm.JLE, x86asm.JNE, x86asm.JNO, x86asm.JNP, x86asm.JNS, x86asm.JO, x86asm.JP, x86asm.JS,
		x86asm.JCXZ, x86asm.JECXZ, x86asm.JRCXZ, x86asm.LOOP, x86asm.LOOPE, x86asm.LOOPNE:
		return true
	}
	return false
}

// exec applies in to st. prolog tells whether in lies in the prolog of the
// entry (or a fragment's own prolog): only there do pushes and stores of
// nonvolatile registers save the caller's values. It returns the unwind
// effect of the instruction.
func (st *state) exec(in *x86asm.Inst, prolog bool) effect {
	a0, a1 := in.Args[0], in.Args[1]
	r0, w0, isR0 := regArg(a0)
	switch in.Op {
	case x86asm.PUSH:
		if st.spOK {
			if in.DataSize == 16 {
				st.sp += 2
			} else {
				st.sp += 8
			}
		}
		if isR0 && w0 == 8 {
			if prolog && nonvolatile(r0) && st.gpr[r0].w == inReg && st.spOK {
				st.gpr[r0] = save{saved, st.sp}
			}
			return effect{kind: effPush, reg: r0}
		}
		return effect{kind: effRSP}
	case x86asm.POP:
		if isR0 && w0 == 8 {
			if st.spOK && st.gpr[r0].w != inReg && st.gpr[r0].slot == st.sp {
				st.gpr[r0] = save{}
			}
			if st.spOK {
				st.sp -= 8
			}
			st.clobber(r0)
			return effect{}
		}
		if st.spOK {
			st.sp -= 8
		}
		return effect{kind: effRSP}
	case x86asm.PUSHF, x86asm.PUSHFQ:
		if st.spOK {
			st.sp += 8
		}
		return effect{kind: effRSP}
	case x86asm.POPF, x86asm.POPFQ:
		if st.spOK {
			st.sp -= 8
		}
		return effect{kind: effRSP}
	case x86asm.LEAVE:
		if st.rel[5].ok {
			st.sp, st.spOK = st.rel[5].off, true
		} else {
			st.spOK = false
		}
		if st.spOK && st.gpr[5].w != inReg && st.gpr[5].slot == st.sp {
			st.gpr[5] = save{}
		}
		st.sp -= 8
		st.clobber(5)
		return effect{kind: effRSP}
	case x86asm.CALL:
		if !prolog {
			for _, r := range []int{0, 1, 2, 8, 9, 10, 11} {
				st.clobber(r)
			}
		}
		return effect{}
	case x86asm.SUB, x86asm.ADD:
		if isR0 && w0 == 8 && r0 == 4 {
			var n int64
			switch a := a1.(type) {
			case x86asm.Imm:
				n = int64(a)
			case x86asm.Reg:
				r, w, _ := gpr(a)
				if r == 0 && w == 8 && st.raxOK {
					n = int64(st.rax)
				} else {
					st.spOK = false
					return effect{kind: effRSP}
				}
			default:
				st.spOK = false
				return effect{kind: effRSP}
			}
			if in.Op == x86asm.ADD {
				n = -n
			}
			if st.spOK {
				st.sp += n
			}
			if n > 0 {
				return effect{kind: effAlloc, size: n}
			}
			return effect{kind: effRSP}
		}
		if isR0 && w0 == 8 && st.rel[r0].ok {
			if imm, ok := a1.(x86asm.Imm); ok {
				if in.Op == x86asm.ADD {
					st.rel[r0].off -= int64(imm)
				} else {
					st.rel[r0].off += int64(imm)
				}
				if r0 == 0 {
					st.raxOK = false
				}
				return effect{}
			}
		}
	case x86asm.LEA:
		if isR0 && w0 == 8 {
			if m, ok := a1.(x86asm.Mem); ok {
				if off, ok := st.addr(m); ok {
					b, _, _ := gpr(m.Base)
					if r0 == 4 {
						same := st.spOK && st.sp == off
						st.sp, st.spOK = off, true
						if same {
							return effect{} // lea rsp, [rsp+0]: a nop
						}
						return effect{kind: effRSP}
					}
					st.clobber(r0)
					st.rel[r0] = rel{true, off}
					if b == 4 {
						return effect{kind: effSetFP, reg: r0, disp: disp(m)}
					}
					return effect{}
				}
				if m.Base == 0 && m.Index == 0 && r0 == 0 {
					st.clobber(0)
					st.rax, st.raxOK = uint64(m.Disp), true
					return effect{}
				}
			}
		}
	case x86asm.MOV:
		switch a := a0.(type) {
		case x86asm.Reg:
			if !isR0 {
				break
			}
			switch b := a1.(type) {
			case x86asm.Reg:
				r1, w1, ok := gpr(b)
				if ok && w0 == 8 && w1 == 8 {
					if r1 == 4 && st.spOK {
						st.clobber(r0)
						st.rel[r0] = rel{true, st.sp}
						return effect{kind: effSetFP, reg: r0}
					}
					if r0 == 4 {
						if st.rel[r1].ok {
							st.sp, st.spOK = st.rel[r1].off, true
						} else {
							st.spOK = false
						}
						return effect{kind: effRSP}
					}
					v := st.rel[r1]
					st.clobber(r0)
					st.rel[r0] = v
					return effect{}
				}
			case x86asm.Imm:
				st.clobber(r0)
				if r0 == 0 {
					if w0 == 4 {
						st.rax, st.raxOK = uint64(uint32(b)), true
					} else if w0 == 8 {
						st.rax, st.raxOK = uint64(b), true
					}
				}
				return effect{}
			case x86asm.Mem:
				if w0 == 8 {
					if off, ok := st.addr(b); ok && st.gpr[r0].w != inReg && st.gpr[r0].slot == off {
						st.gpr[r0].w = reloaded
					}
				}
				st.clobber(r0)
				return effect{}
			}
		case x86asm.Mem:
			r1, w1, ok := regArg(a1)
			if ok && w1 == 8 {
				if off, ok := st.addr(a); ok && nonvolatile(r1) {
					if prolog && st.gpr[r1].w == inReg {
						st.gpr[r1] = save{saved, off}
					}
					if prolog {
						return effect{kind: effSave, reg: r1, slot: off}
					}
				}
			}
			return effect{}
		}
	case x86asm.MOVAPS, x86asm.MOVAPD, x86asm.MOVDQA, x86asm.MOVUPS, x86asm.MOVUPD, x86asm.MOVDQU:
		switch a := a0.(type) {
		case x86asm.Mem:
			if b, ok := a1.(x86asm.Reg); ok {
				if x, ok := xmmReg(b); ok && x >= 6 {
					if off, ok := st.addr(a); ok && prolog {
						if st.xmm[x].w == inReg {
							st.xmm[x] = save{saved, off}
						}
						return effect{kind: effSaveXMM, reg: x, slot: off}
					}
				}
			}
			return effect{}
		case x86asm.Reg:
			if x, ok := xmmReg(a); ok {
				if m, ok := a1.(x86asm.Mem); ok {
					if off, ok := st.addr(m); ok && st.xmm[x].w != inReg && st.xmm[x].slot == off {
						st.xmm[x].w = reloaded
					}
				}
			}
			return effect{}
		}
	case x86asm.XCHG:
		if r1, _, ok := regArg(a1); ok {
			st.clobber(r1)
		}
	case x86asm.MUL, x86asm.IMUL, x86asm.DIV, x86asm.IDIV, x86asm.CPUID, x86asm.RDTSC, x86asm.RDTSCP,
		x86asm.CQO, x86asm.CDQ, x86asm.CWD:
		st.clobber(0)
		st.clobber(2)
	}
	if isR0 && !readOnlyFirst(in.Op) {
		st.clobber(r0)
		if r0 == 4 {
			return effect{kind: effRSP}
		}
	}
	return effect{}
}

func regArg(a x86asm.Arg) (int, int, bool) {
	r, ok := a.(x86asm.Reg)
	if !ok {
		return 0, 0, false
	}
	return gpr(r)
}

// asm returns the Intel syntax of in at pc without operand size
// qualifiers: "mov [rsp+0x38], rbx".
func asm(in *x86asm.Inst, pc uint64) string {
	s := x86asm.IntelSyntax(*in, pc, nil)
	for _, q := range []string{"xmmword ptr ", "qword ptr ", "dword ptr ", "word ptr ", "byte ptr ", "ptr "} {
		s = strings.ReplaceAll(s, q, "")
	}
	return s
}
