package jitgen

import (
	"encoding/binary"
	"fmt"

	"github.com/fntable/fntable/unwindinfo"
)

// The encodings below follow the Intel SDM, volume 2 (REX prefixes, ModRM
// and SIB bytes). Each emitter returns the bytes and the Intel-syntax text
// golang.org/x/arch/x86/x86asm prints for them.

type reg = unwindinfo.Register

const (
	rax = unwindinfo.RAX
	rcx = unwindinfo.RCX
	rdx = unwindinfo.RDX
	rbx = unwindinfo.RBX
	rsp = unwindinfo.RSP
	rbp = unwindinfo.RBP
	rsi = unwindinfo.RSI
	rdi = unwindinfo.RDI
	r8  = unwindinfo.R8
	r9  = unwindinfo.R9
	r10 = unwindinfo.R10
	r11 = unwindinfo.R11
	r12 = unwindinfo.R12
	r13 = unwindinfo.R13
	r14 = unwindinfo.R14
	r15 = unwindinfo.R15
)

// nonvolatile are the general-purpose registers a Windows x64 function must
// preserve (besides rsp).
var nonvolatile = [...]reg{rbx, rbp, rsi, rdi, r12, r13, r14, r15}

// hi returns the REX extension bit of r.
func hi(r reg) byte { return byte(r>>3) & 1 }

// rexByte returns a REX prefix with the given W, R, X and B bits.
func rexByte(w bool, r, x, b byte) byte {
	v := byte(0x40) | r<<2 | x<<1 | b
	if w {
		v |= 8
	}
	return v
}

func le32(v int32) []byte { return binary.LittleEndian.AppendUint32(nil, uint32(v)) }

// hexs formats a signed displacement or immediate as x86asm does.
func hexs(v int64) string {
	if v < 0 {
		return fmt.Sprintf("-%#x", -v)
	}
	return fmt.Sprintf("%#x", v)
}

// memOperand returns the ModRM byte, the SIB byte if needed, and the
// displacement of [base+disp] with the given ModRM reg field, and the
// operand's text as x86asm prints it. It uses no displacement for 0 when
// the base allows (rbp and r13 do not: mod 00 means RIP-relative for them)
// and disp8 is false, a disp8 when disp fits and wide is false, and a
// disp32 otherwise. Base rsp and r12 need a SIB byte (0x24: no index).
func memOperand(regField byte, base reg, disp int32, wide, disp8 bool) ([]byte, string) {
	rm := byte(base) & 7
	var mod byte
	switch {
	case wide || disp < -128 || disp > 127:
		mod = 2
	case disp == 0 && rm != 5 && !disp8:
		mod = 0
	default:
		mod = 1
	}
	b := []byte{mod<<6 | (regField&7)<<3 | rm}
	if rm == 4 {
		b = append(b, 0x24)
	}
	text := "[" + base.String()
	switch mod {
	case 1:
		b = append(b, byte(int8(disp)))
		if disp < 0 {
			text += fmt.Sprintf("-%#x", -int64(disp))
		} else if disp > 0 {
			text += fmt.Sprintf("+%#x", disp)
		}
	case 2:
		// x86asm prints a 32-bit displacement unsigned.
		b = append(b, le32(disp)...)
		if disp != 0 {
			text += fmt.Sprintf("+%#x", uint32(disp))
		}
	}
	return b, text + "]"
}

func xmmName(n int) string { return fmt.Sprintf("xmm%d", n) }

// encPush encodes push r.
func encPush(r reg) ([]byte, string) {
	if r >= 8 {
		return []byte{0x41, 0x50 + byte(r&7)}, "push " + r.String()
	}
	return []byte{0x50 + byte(r)}, "push " + r.String()
}

// popREX selects a REX prefix a pop does not need.
type popREX uint8

const (
	popPlain popREX = iota // no prefix, or 41 for r8–r15
	popBare                // 40 before rax..rdi
	popW                   // 48 before rax..rdi, 49 before r8–r15
)

// encPop encodes pop r with the given prefix.
func encPop(r reg, p popREX) ([]byte, string) {
	op := 0x58 + byte(r&7)
	switch {
	case p == popW:
		return []byte{rexByte(true, 0, 0, hi(r)), op}, "rex.w pop " + r.String()
	case p == popBare && r < 8:
		return []byte{0x40, op}, "rex pop " + r.String()
	case r >= 8:
		return []byte{0x41, op}, "pop " + r.String()
	}
	return []byte{op}, "pop " + r.String()
}

// encRSPImm encodes sub rsp, n (sub) or add rsp, n: the imm8 form
// (48 83 /5 or /0) when n < 128 and wide is false, else imm32 (48 81).
func encRSPImm(sub bool, n uint32, wide bool) ([]byte, string) {
	ext, name := byte(0), "add"
	if sub {
		ext, name = 5, "sub"
	}
	modrm := 0xc0 | ext<<3 | 4
	text := fmt.Sprintf("%s rsp, %#x", name, n)
	if n < 128 && !wide {
		return []byte{0x48, 0x83, modrm, byte(n)}, text
	}
	return append([]byte{0x48, 0x81, modrm}, le32(int32(n))...), text
}

// encLeaFromRSP encodes lea fr, [rsp+disp].
func encLeaFromRSP(fr reg, disp int32) ([]byte, string) {
	m, text := memOperand(byte(fr), rsp, disp, false, false)
	return append([]byte{rexByte(true, hi(fr), 0, 0), 0x8d}, m...), fmt.Sprintf("lea %s, ptr %s", fr, text)
}

// encMovFromRSP encodes mov fr, rsp (89 /r).
func encMovFromRSP(fr reg) ([]byte, string) {
	return []byte{rexByte(true, 0, 0, hi(fr)), 0x89, 0xc0 | 4<<3 | byte(fr&7)}, fmt.Sprintf("mov %s, rsp", fr)
}

// encLeaRSP encodes lea rsp, [fr+disp], with disp32 if wide and disp8
// otherwise, even for 0: the epilog scan accepts only these two forms.
func encLeaRSP(fr reg, disp int32, wide bool) ([]byte, string) {
	m, text := memOperand(4, fr, disp, wide, true)
	return append([]byte{rexByte(true, 0, 0, hi(fr)), 0x8d}, m...), "lea rsp, ptr " + text
}

// encMovStore encodes mov qword ptr [base+disp], r (89 /r).
func encMovStore(base reg, disp int32, r reg, wide bool) ([]byte, string) {
	m, text := memOperand(byte(r), base, disp, wide, false)
	return append([]byte{rexByte(true, hi(r), 0, hi(base)), 0x89}, m...), fmt.Sprintf("mov qword ptr %s, %s", text, r)
}

// encMovLoad encodes mov r, qword ptr [base+disp] (8b /r).
func encMovLoad(r, base reg, disp int32) ([]byte, string) {
	m, text := memOperand(byte(r), base, disp, false, false)
	return append([]byte{rexByte(true, hi(r), 0, hi(base)), 0x8b}, m...), fmt.Sprintf("mov %s, qword ptr %s", r, text)
}

// encMovaps encodes movaps xmmword ptr [base+disp], xmmN (0f 29 /r, store)
// or movaps xmmN, xmmword ptr [base+disp] (0f 28 /r, load).
func encMovaps(store bool, base reg, disp int32, x int, wide bool) ([]byte, string) {
	var b []byte
	if x >= 8 || base >= 8 {
		b = append(b, rexByte(false, byte(x>>3)&1, 0, hi(base)))
	}
	op := byte(0x28)
	if store {
		op = 0x29
	}
	b = append(b, 0x0f, op)
	m, text := memOperand(byte(x), base, disp, wide, false)
	b = append(b, m...)
	if store {
		return b, fmt.Sprintf("movaps xmmword ptr %s, %s", text, xmmName(x))
	}
	return b, fmt.Sprintf("movaps %s, xmmword ptr %s", xmmName(x), text)
}

// encJmpReg encodes jmp r with REX.W (48/49 ff /4).
func encJmpReg(r reg) ([]byte, string) {
	return []byte{rexByte(true, 0, 0, hi(r)), 0xff, 0xc0 | 4<<3 | byte(r&7)}, "jmp " + r.String()
}

// encJmpMem encodes jmp qword ptr [r+disp8] with REX.W (48/49 ff /4).
func encJmpMem(r reg, disp int32) ([]byte, string) {
	m, text := memOperand(4, r, disp, false, false)
	return append([]byte{rexByte(true, 0, 0, hi(r)), 0xff}, m...), "jmp qword ptr " + text
}

// bodyOp is a body instruction with fixed bytes.
type bodyOp struct {
	b   []byte
	asm string
}

// bodyOps are the harmless body instructions: nops and ALU operations on
// volatile registers. None starts like an epilog instruction.
var bodyOps = []bodyOp{
	{[]byte{0x90}, "nop"},
	{[]byte{0x66, 0x90}, "data16 nop"},
	{[]byte{0x0f, 0x1f, 0x00}, "nop dword ptr [rax], eax"},
	{[]byte{0x0f, 0x1f, 0x40, 0x00}, "nop dword ptr [rax], eax"},
	{[]byte{0x0f, 0x1f, 0x44, 0x00, 0x00}, "nop dword ptr [rax+rax], eax"},
	{[]byte{0x48, 0x89, 0xc8}, "mov rax, rcx"},
	{[]byte{0x48, 0x01, 0xc8}, "add rax, rcx"},
	{[]byte{0x31, 0xc9}, "xor ecx, ecx"},
	{[]byte{0x48, 0x8d, 0x51, 0x08}, "lea rdx, ptr [rcx+0x8]"},
	{[]byte{0x49, 0xff, 0xc0}, "inc r8"},
	{[]byte{0x4d, 0x31, 0xd2}, "xor r10, r10"},
	{[]byte{0x85, 0xc0}, "test eax, eax"},
	{[]byte{0x4c, 0x89, 0xc9}, "mov rcx, r9"},
}

// encMovImm encodes mov r32, imm32 for a volatile register below r8.
func encMovImm(r reg, v uint32) ([]byte, string) {
	return append([]byte{0xb8 + byte(r)}, le32(int32(v))...), fmt.Sprintf("mov %s, %s", [...]string{"eax", "ecx", "edx"}[r], hexs(int64(int32(v))))
}

// encCmpImm encodes cmp rcx, imm8.
func encCmpImm(v int8) ([]byte, string) {
	return []byte{0x48, 0x83, 0xf9, byte(v)}, "cmp rcx, " + hexs(int64(v))
}

// jccNames are the conditions used for conditional branches, by the low
// nibble of the opcode.
var jccNames = map[byte]string{0x2: "jb", 0x3: "jnb", 0x4: "jz", 0x5: "jnz"}
