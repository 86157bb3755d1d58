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
	saved                 // in its stack slot only: the register has changed since
	reloaded              // in the slot and in the register (saved and not changed since, or reloaded)
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
	// dirty has bit r set for a general-purpose register r, and bit 16+x
	// for xmm x, that was written while it held the caller's value and no
	// save: its caller value is lost, so a later store of it saves
	// nothing.
	dirty uint32
}

// frameDown reports whether the stack pointer is back at the return
// address and no register is saved but changed: the frame is taken down.
func (st *state) frameDown() bool {
	if !st.spOK || st.sp != 0 {
		return false
	}
	for r := range st.gpr {
		if st.gpr[r].w == saved || st.xmm[r].w == saved {
			return false
		}
	}
	return true
}

// probeKey is what the unwinder's result and the comparison with it depend
// on in a state: the stack pointer, the frame register, and the values
// and slots of the nonvolatile registers, packed into words (an array of
// words hashes fast).
type probeKey [2 + 2 + 8*3 + 10*2]uint64

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

func (st *state) probeKey(fr int) probeKey {
	var k probeKey
	k[0], k[1] = b2u(st.spOK), uint64(st.sp)
	k[2], k[3] = b2u(st.rel[fr].ok), uint64(st.rel[fr].off)
	i := 4
	for _, r := range nonvolatileRegs {
		k[i] = uint64(st.gpr[r].w) | b2u(st.rel[r].ok)<<8
		k[i+1], k[i+2] = uint64(st.gpr[r].slot), uint64(st.rel[r].off)
		i += 3
	}
	for x := 6; x < 16; x++ {
		k[i], k[i+1] = uint64(st.xmm[x].w), uint64(st.xmm[x].slot)
		i += 2
	}
	return k
}

// nonvolatileRegs are the numbers of the nonvolatile general-purpose
// registers.
var nonvolatileRegs = [8]int{3, 5, 6, 7, 12, 13, 14, 15}

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

// xmmReg returns the number of an XMM register, or of the XMM register
// that is the low part of a YMM or ZMM register (writing those writes it).
func xmmReg(r x86asm.Reg) (int, bool) {
	switch {
	case r >= x86asm.X0 && r <= x86asm.X15:
		return int(r - x86asm.X0), true
	case r >= x86asm.Y0 && r <= x86asm.Y15:
		return int(r - x86asm.Y0), true
	case r >= x86asm.Z0 && r <= x86asm.Z15:
		return int(r - x86asm.Z0), true
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

// clobber records that general-purpose register r was written with a
// value the state does not know: a register that still held its saved
// caller value no longer does.
func (st *state) clobber(r int) {
	if r == 4 {
		st.spOK = false
		return
	}
	st.rel[r] = rel{}
	if r == 0 {
		st.raxOK = false
	}
	switch st.gpr[r].w {
	case reloaded:
		st.gpr[r].w = saved
	case inReg:
		st.dirty |= 1 << r
	}
}

// clobberXMM is clobber for xmm x.
func (st *state) clobberXMM(x int) {
	switch st.xmm[x].w {
	case reloaded:
		st.xmm[x].w = saved
	case inReg:
		st.dirty |= 1 << (16 + x)
	}
}

// store records that nonvolatile register r (xmm r if xmm) was stored
// at the slot E − off, and reports whether that saved the caller's value:
// only a register that still holds it saves it; the store of a register
// already saved or changed is a spill of the function's own value. A save
// outside the prolog is one no unwind code can describe.
func (st *state) store(r int, xmm bool, off int64) bool {
	s, bit := &st.gpr[r], uint32(1)<<r
	if xmm {
		s, bit = &st.xmm[r], 1<<(16+r)
	}
	if s.w != inReg || st.dirty&bit != 0 {
		return false
	}
	*s = save{reloaded, off}
	return true
}

// load records that r (xmm r if xmm) was loaded from the slot E − off,
// if ok, or from elsewhere: a load from the slot that holds the caller's
// value reloads it, which the register then holds until written again.
func (st *state) load(r int, xmm bool, off int64, ok bool) {
	s := &st.gpr[r]
	if xmm {
		s = &st.xmm[r]
	}
	reload := ok && s.w != inReg && s.slot == off
	if xmm {
		st.clobberXMM(r)
	} else {
		st.clobber(r)
	}
	if reload {
		s.w = reloaded
	}
}

// pop records that r was popped from the slot E − st.sp: if the
// caller's value was saved there, r holds it again, as if never saved.
func (st *state) pop(r int) {
	restore := st.spOK && st.gpr[r].w != inReg && st.gpr[r].slot == st.sp
	st.clobber(r)
	if restore {
		st.gpr[r] = save{}
		st.dirty &^= 1 << r
	}
}

// readOnlyFirst are operations whose first operand is not written.
func readOnlyFirst(op x86asm.Op) bool {
	switch op {
	case x86asm.CMP, x86asm.TEST, x86asm.PUSH, x86asm.BT, x86asm.JMP, x86asm.CALL,
		x86asm.NOP, x86asm.UCOMISS, x86asm.UCOMISD, x86asm.COMISS, x86asm.COMISD,
		x86asm.PTEST, x86asm.PREFETCHT0, x86asm.PREFETCHT1, x86asm.PREFETCHT2, x86asm.PREFETCHNTA,
		x86asm.VUCOMISS, x86asm.VUCOMISD, x86asm.VCOMISS, x86asm.VCOMISD, x86asm.VPTEST, x86asm.VTESTPS, x86asm.VTESTPD:
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
// entry (or a fragment's own prolog): there, pushes and stores of
// nonvolatile registers save the caller's values, as the unwind codes
// describe; in the body they do so only while the register still holds
// the caller's value. It returns the unwind effect of the instruction.
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
			if nonvolatile(r0) && st.spOK {
				st.store(r0, false, st.sp)
			}
			return effect{kind: effPush, reg: r0}
		}
		return effect{kind: effRSP}
	case x86asm.POP:
		if isR0 && w0 == 8 {
			st.pop(r0)
			if st.spOK {
				st.sp -= 8
			}
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
		st.pop(5)
		st.sp -= 8
		return effect{kind: effRSP}
	case x86asm.ENTER:
		st.spOK = false
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
				v := st.rel[r0]
				if in.Op == x86asm.ADD {
					v.off -= int64(imm)
				} else {
					v.off += int64(imm)
				}
				st.clobber(r0)
				st.rel[r0] = v
				return effect{}
			}
		}
	case x86asm.LEA:
		if isR0 && w0 == 8 {
			if m, ok := a1.(x86asm.Mem); ok {
				if off, ok := st.addr(m); ok {
					b, _, _ := gpr(m.Base)
					if r0 == 4 {
						old, known := st.sp, st.spOK
						st.sp, st.spOK = off, true
						switch {
						case known && off == old:
							return effect{} // lea rsp, [rsp+0]: a nop
						case known && off > old:
							// An allocation (perlasm's lea rax, [rsp-x];
							// lea rsp, [rax-y]).
							return effect{kind: effAlloc, size: off - old}
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
				off, ok := st.addr(b)
				st.load(r0, false, off, ok && w0 == 8)
				return effect{}
			}
		case x86asm.Mem:
			r1, w1, ok := regArg(a1)
			if ok && w1 == 8 {
				if off, ok := st.addr(a); ok && nonvolatile(r1) && st.store(r1, false, off) && prolog {
					return effect{kind: effSave, reg: r1, slot: off}
				}
			}
			return effect{}
		}
	case x86asm.MOVAPS, x86asm.MOVAPD, x86asm.MOVDQA, x86asm.MOVUPS, x86asm.MOVUPD, x86asm.MOVDQU,
		x86asm.VMOVAPS, x86asm.VMOVAPD, x86asm.VMOVDQA, x86asm.VMOVUPS, x86asm.VMOVUPD, x86asm.VMOVDQU,
		x86asm.VMOVDQA32, x86asm.VMOVDQA64, x86asm.VMOVDQU8, x86asm.VMOVDQU16, x86asm.VMOVDQU32, x86asm.VMOVDQU64:
		switch a := a0.(type) {
		case x86asm.Mem:
			if b, ok := a1.(x86asm.Reg); ok {
				if x, ok := xmmReg(b); ok && x >= 6 {
					if off, ok := st.addr(a); ok && st.store(x, true, off) && prolog {
						return effect{kind: effSaveXMM, reg: x, slot: off}
					}
				}
			}
			return effect{}
		case x86asm.Reg:
			if x, ok := xmmReg(a); ok {
				m, ok := a1.(x86asm.Mem)
				off, ok2 := st.addr(m)
				st.load(x, true, off, ok && ok2)
				return effect{}
			}
		}
	case x86asm.XCHG, x86asm.XADD:
		if r1, _, ok := regArg(a1); ok {
			st.clobber(r1)
		}
	case x86asm.CMPXCHG:
		st.clobber(0)
	case x86asm.VZEROALL:
		for x := range st.xmm {
			st.clobberXMM(x)
		}
	}
	for _, r := range implicitWrites(in) {
		st.clobber(r)
	}
	if isR0 && !readOnlyFirst(in.Op) {
		st.clobber(r0)
		if r0 == 4 {
			return effect{kind: effRSP}
		}
	}
	if r, ok := a0.(x86asm.Reg); ok && !readOnlyFirst(in.Op) {
		if x, ok := xmmReg(r); ok {
			st.clobberXMM(x)
		}
	}
	return effect{}
}

// Registers that instructions write without naming them (Intel SDM
// Vol. 2): string instructions (rsi, rdi; rcx with a REP prefix), CPUID,
// the widening multiplications and divisions, sign extensions of rax,
// RDTSC(P), XGETBV, CMPXCHG8B/16B, SYSCALL, LOOP and LAHF.
var (
	regsRSIRDI  = []int{6, 7}
	regsRSI     = []int{6}
	regsRDI     = []int{7}
	regsRAXRDX  = []int{0, 2}
	regsRAX     = []int{0}
	regsRDX     = []int{2}
	regsCPUID   = []int{0, 1, 2, 3}
	regsRDTSCP  = []int{0, 1, 2}
	regsSyscall = []int{1, 11}
	regsRCX     = []int{1}
)

// implicitWrites returns the general-purpose registers in writes besides
// its first operand (string instructions: besides the count register of a
// REP prefix, which is returned too).
func implicitWrites(in *x86asm.Inst) []int {
	rep := func(regs []int) []int {
		for _, p := range in.Prefix {
			if p == 0 {
				break
			}
			if p&0xff == x86asm.PrefixREP || p&0xff == x86asm.PrefixREPN {
				return append(regs[:len(regs):len(regs)], 1)
			}
		}
		return regs
	}
	switch in.Op {
	case x86asm.MOVSB, x86asm.MOVSW, x86asm.MOVSQ, x86asm.CMPSB, x86asm.CMPSW, x86asm.CMPSD, x86asm.CMPSQ:
		return rep(regsRSIRDI)
	case x86asm.MOVSD:
		if _, ok := in.Args[0].(x86asm.Mem); ok { // the string form; SSE's has an xmm register
			return rep(regsRSIRDI)
		}
	case x86asm.STOSB, x86asm.STOSW, x86asm.STOSD, x86asm.STOSQ, x86asm.SCASB, x86asm.SCASW, x86asm.SCASD, x86asm.SCASQ,
		x86asm.INSB, x86asm.INSW, x86asm.INSD:
		return rep(regsRDI)
	case x86asm.LODSB, x86asm.LODSW, x86asm.LODSD, x86asm.LODSQ, x86asm.OUTSB, x86asm.OUTSW, x86asm.OUTSD:
		return rep(regsRSI)
	case x86asm.MUL, x86asm.IMUL, x86asm.DIV, x86asm.IDIV, x86asm.RDTSC, x86asm.XGETBV, x86asm.CMPXCHG8B, x86asm.CMPXCHG16B:
		return regsRAXRDX
	case x86asm.CQO, x86asm.CDQ, x86asm.CWD:
		return regsRDX
	case x86asm.CDQE, x86asm.CWDE, x86asm.CBW, x86asm.LAHF:
		return regsRAX
	case x86asm.CPUID:
		return regsCPUID
	case x86asm.RDTSCP:
		return regsRDTSCP
	case x86asm.SYSCALL:
		return regsSyscall
	case x86asm.LOOP, x86asm.LOOPE, x86asm.LOOPNE:
		return regsRCX
	}
	return nil
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

// flows carries, through the check of a table, the states in which
// control leaves an entry for the start of a chained entry. The code of
// such a fragment may use registers its parent set and its unwind codes
// say nothing of: MSVC sets rax or r11 to rsp in a prolog and saves
// registers through it in the fragments that follow.
type flows struct {
	at map[uint64]flow
}

// flow is what all the ways into one address agree on: the whole state
// if they all arrive with the same one, else the stack pointer and the
// registers that hold E plus a constant.
type flow struct {
	st    state
	agree bool
}

func (fl *flows) add(addr uint64, st *state) {
	if fl.at == nil {
		fl.at = map[uint64]flow{}
	}
	old, seen := fl.at[addr]
	if !seen {
		fl.at[addr] = flow{*st, true}
		return
	}
	// Agreement is on the stack pointer and where the caller's registers
	// are: a register in its slot and in the register on one way and in
	// the register only on the other is in the register. Of the rest the
	// flow keeps what all ways agree on.
	if old.st.spOK != st.spOK || old.st.sp != st.sp || !meet(&old.st.gpr, &st.gpr) || !meet(&old.st.xmm, &st.xmm) {
		old.agree = false
	}
	if !st.spOK || old.st.sp != st.sp {
		old.st.spOK = false
	}
	for r := range old.st.rel {
		if old.st.rel[r] != st.rel[r] {
			old.st.rel[r] = rel{}
		}
	}
	if old.st.raxOK != st.raxOK || old.st.rax != st.rax {
		old.st.raxOK = false
	}
	old.st.dirty |= st.dirty
	fl.at[addr] = old
}

// meet sets a to what a and b agree on, and reports whether they agree
// (up to a register reloaded on one way only).
func meet(a, b *[16]save) bool {
	for r := range a {
		if a[r] == b[r] {
			continue
		}
		x, y := a[r], b[r]
		switch {
		case x.w == reloaded && y.w == inReg || x.w == inReg && y.w == reloaded:
			a[r] = save{}
		default:
			return false
		}
	}
	return true
}

// take returns and forgets the flow into addr.
func (fl *flows) take(addr uint64) (flow, bool) {
	f, ok := fl.at[addr]
	delete(fl.at, addr)
	return f, ok
}

// merge updates st, the state at a fragment's start that its parents'
// codes give, with the flow into it. If the code reaches the fragment
// with the stack pointer elsewhere than the codes say (an epilog that
// continues in the fragment: MSVC splits a ret off into a fragment of its
// own), the flow's state is the fragment's; otherwise the flow adds the
// registers it knows to hold E plus a constant.
func (f flow) merge(st *state) {
	if !f.st.spOK || !st.spOK {
		return
	}
	if f.st.sp != st.sp {
		if f.agree {
			*st = f.st
		}
		return
	}
	for r := range st.rel {
		if r != 4 && !st.rel[r].ok && f.st.rel[r].ok {
			st.rel[r] = f.st.rel[r]
		}
	}
}
