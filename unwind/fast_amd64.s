// fastStep: see fast_amd64.go. It follows fastUnwind, fastCodes and
// fastEpilog in fast.go (and scanEpilog and returnsFrom in epilog.go)
// step for step, for the cases it takes. It declines, besides what
// fastUnwind declines, steps from a prolog, steps through a SplicedMemory
// of more than asmSegments runs, and steps that restore RSP from memory.
// It declines a step by returning false without changing the context or
// the pointers.

#include "go_asm.h"
#include "textflag.h"

// func fastStep(sm *SplicedMemory, fn *unwindinfo.RuntimeFunction, ctx *Context, ptrs *ContextPointers, imageBase, pc uint64, ht HandlerType) (handler, handlerData, frame uint64, flags StepFlags, ok bool)
//
// Locals: 0(SP) to 120(SP), where each register is restored from, as an
// offset in the stack's run, valid where its bit is set in R9; 128(SP),
// the unwind header; 136(SP) to 160(SP), the body's registers while an
// epilog is matched.
TEXT ·fastStep(SB), NOSPLIT, $168-82
	MOVQ	fn+8(FP), SI
	MOVQ	imageBase+32(FP), R8
	MOVL	const_rfUnwindData(SI), R9
	TESTL	$1, R9
	JNZ	fail                    // indirect entry
	ADDQ	R8, R9                  // R9 = address of the unwind information
	MOVQ	ctx+16(FP), DI
	MOVQ	Context_Rsp(DI), R10    // R10 = RSP

	// The runs that hold the unwind information (R11) and RSP (R12).
	MOVQ	sm+0(FP), SI
	MOVQ	SplicedMemory_flat+8(SI), CX
	MOVQ	SplicedMemory_flat(SI), SI
	XORL	R11, R11
	XORL	R12, R12
	TESTQ	CX, CX
	JZ	fail
	CMPQ	CX, $const_asmSegments
	JA	fail
scan:	// a run holds x if x - its start < its length, end - start
	MOVQ	R9, DX
	SUBQ	segment_start(SI), DX
	CMPQ	DX, segment_data+8(SI)
	CMOVQCS	SI, R11
	MOVQ	R10, DX
	SUBQ	segment_start(SI), DX
	CMPQ	DX, segment_data+8(SI)
	CMOVQCS	SI, R12
	ADDQ	$segment__size, SI
	DECQ	CX
	JNZ	scan
	TESTQ	R11, R11
	JZ	fail
	TESTQ	R12, R12
	JZ	fail

	// The header: version 1, not chained, and the whole of the unwind
	// information in the run.
	MOVQ	segment_data(R11), SI   // SI = the run's bytes
	MOVQ	segment_data+8(R11), BX // BX = its length
	MOVQ	R9, DX
	SUBQ	segment_start(R11), DX  // DX = offset of the unwind information,
	MOVQ	BX, CX                  // less than BX as the run holds it
	SUBQ	DX, CX
	CMPQ	CX, $4
	JB	fail
	MOVL	(SI)(DX*1), AX          // AX = header
	MOVL	AX, R13
	ANDL	$0x27, R13
	CMPL	R13, $1
	JNE	fail
	MOVBLZX	2(SI)(DX*1), R13        // R13 = count of code slots
	LEAQ	4(R13)(R13*1), R14      // R14 = size of the unwind information
	TESTL	$0x18, AX
	JZ	sized
	LEAQ	1(R13), R14
	ANDQ	$-2, R14
	LEAQ	8(R14)(R14*1), R14      // with the handler's RVA
sized:
	CMPQ	R14, CX
	JA	fail
	CMPQ	segment_data+8(R12), $8
	JB	fail

	// Past the prolog (else the Go path), less than 4 GiB into the function.
	MOVQ	fn+8(FP), R15
	MOVL	const_rfBeginAddress(R15), R15
	ADDQ	R8, R15
	MOVQ	pc+40(FP), CX
	SUBQ	R15, CX                 // CX = prolog offset
	MOVQ	CX, R15
	SHRQ	$32, R15
	JNZ	fail
	MOVBLZX	1(SI)(DX*1), R15        // prolog size
	CMPQ	CX, R15
	JB	fail
	MOVL	$255, R15               // from here only compared with code
	CMPQ	CX, R15                 // offsets, as a byte
	CMOVQHI	R15, CX

	// Establisher frame (R15): the frame register less its offset, or RSP.
	MOVQ	R10, R15
	MOVBLZX	3(SI)(DX*1), R8
	ANDL	$15, R8
	JZ	frame
	MOVQ	Context_Rax(DI)(R8*8), R15
	MOVL	AX, R8
	SHRL	$28, R8
	SHLL	$4, R8
	SUBQ	R8, R15
frame:
	MOVQ	R15, frame+72(FP)
	MOVQ	$0, handler+56(FP)
	MOVQ	$0, handlerData+64(FP)
	MOVB	$0, flags+80(FP)

	// The handler, if its type is asked for: (flags & ht) != 0, in the
	// header as (header & ht<<3) & 0xf8. BX (the run's length) is still
	// needed.
	MOVL	ht+48(FP), R8
	SHLL	$3, R8
	ANDL	AX, R8
	ANDL	$0xf8, R8
	JZ	nohandler
	TESTL	$0x18, AX
	JZ	nohandler
	ADDQ	R14, R9                 // the handler's data
	ADDQ	DX, R14
	MOVL	-4(SI)(R14*1), R14
	ADDQ	imageBase+32(FP), R14 // the handler
	MOVQ	R14, handler+56(FP)
	MOVQ	R9, handlerData+64(FP)
nohandler:

	// The codes are at [DX, R14) of the run at SI.
	MOVL	AX, 128(SP)
	LEAQ	4(DX)(R13*2), R14
	ADDQ	$4, DX

	// An epilog is looked for at the PC (R8, 0 if not) if there are
	// codes, with the maxEpilogBytes bytes that the Go path would look at
	// in the run.
	XORL	R8, R8
	TESTL	R13, R13
	JZ	stack
	MOVQ	pc+40(FP), R8
	SUBQ	segment_start(R11), R8  // offset of the PC in the run
	CMPQ	R8, BX
	JAE	fail
	SUBQ	R8, BX
	CMPQ	BX, $const_maxEpilogBytes
	JB	fail
	ADDQ	SI, R8

	// The stack: R12 = its bytes, R13 = their address, R11 = the largest
	// offset of an 8-byte read in them. From here RSP (R10), the
	// establisher frame (R15) and the addresses in the locals are offsets
	// from R13: a read at offset o is in the run if o <= R11, unsigned.
stack:
	MOVQ	segment_start(R12), R13
	MOVQ	segment_data+8(R12), R11
	SUBQ	$8, R11
	MOVQ	segment_data(R12), R12
	SUBQ	R13, R10
	SUBQ	R13, R15
	TESTQ	R8, R8
	JZ	body
	LEAQ	·epilogStart(SB), BX
	MOVBLZX	(R8), R9
	MOVBLZX	(BX)(R9*1), R9
	TESTL	$(const_epilogAny|const_epilogREX), R9
	JZ	body
	TESTL	$const_epilogAny, R9
	JNZ	epilog
	MOVBLZX	1(R8), R9
	MOVBLZX	(BX)(R9*1), R9
	TESTL	$const_epilogAfterREX, R9
	JNZ	epilog

	// The body: reverse the codes at [DX, R14). CL = prolog offset (at
	// most 255), R9 = mask of the registers restored.
body:
	XORL	R9, R9
	CMPQ	DX, R14
	JAE	codesdone
codes:
	MOVWLZX	(SI)(DX*1), AX
	CMPB	CX, AX
	JB	fail                    // a code the PC has not reached
	TESTL	$0x0f00, AX
	JEQ	push
	MOVL	AX, R8
	SHRL	$8, R8
	ANDL	$15, R8                 // R8 = operation
	SHRL	$12, AX                 // AX = register
	CMPL	R8, $2
	JEQ	small
	CMPL	R8, $1
	JEQ	large
	CMPL	R8, $4
	JEQ	save
	CMPL	R8, $3
	JEQ	setfp
	CMPL	R8, $5
	JEQ	savefar
	JMP	fail                    // XMM saves, machine frames, invalid codes

push:	// UWOP_PUSH_NONVOL
	SHRL	$12, AX
	CMPQ	R10, R11
	JA	fail
	MOVQ	R10, 0(SP)(AX*8)
	BTSL	AX, R9                  // RSP among them: the Go path
	ADDQ	$8, R10
	ADDQ	$2, DX
	CMPQ	DX, R14
	JB	codes
	JMP	codesdone

small:	// UWOP_ALLOC_SMALL
	LEAQ	8(R10)(AX*8), R10
	ADDQ	$2, DX
	CMPQ	DX, R14
	JB	codes
	JMP	codesdone

large:	// UWOP_ALLOC_LARGE
	TESTL	AX, AX
	JNZ	large32
	LEAQ	4(DX), BX
	CMPQ	BX, R14
	JA	fail                    // the array ends in the code
	MOVWLZX	2(SI)(DX*1), BX
	LEAQ	(R10)(BX*8), R10
	ADDQ	$4, DX
	CMPQ	DX, R14
	JB	codes
	JMP	codesdone
large32:
	LEAQ	6(DX), BX
	CMPQ	BX, R14
	JA	fail
	MOVL	2(SI)(DX*1), BX
	ADDQ	BX, R10
	ADDQ	$6, DX
	CMPQ	DX, R14
	JB	codes
	JMP	codesdone

setfp:	// UWOP_SET_FPREG: RSP = the frame register's value less the offset
	MOVBLZX	131(SP), BX
	MOVL	BX, R8
	ANDL	$15, R8
	SHRL	$4, BX
	SHLL	$4, BX
	CMPL	R8, $4
	JEQ	setfprsp
	BTL	R8, R9
	JCS	setfpsaved
	MOVQ	Context_Rax(DI)(R8*8), R8
	SUBQ	R13, R8
	JMP	setfpdone
setfpsaved:
	MOVQ	0(SP)(R8*8), R8
	MOVQ	(R12)(R8*1), R8
	SUBQ	R13, R8
	JMP	setfpdone
setfprsp:
	MOVQ	R10, R8
setfpdone:
	SUBQ	BX, R8
	MOVQ	R8, R10
	ADDQ	$2, DX
	CMPQ	DX, R14
	JB	codes
	JMP	codesdone

savefar:	// UWOP_SAVE_NONVOL_FAR
	LEAQ	6(DX), BX
	CMPQ	BX, R14
	JA	fail
	MOVL	2(SI)(DX*1), BX
	ADDQ	R15, BX
	ADDQ	$6, DX
	JMP	saved
save:	// UWOP_SAVE_NONVOL
	LEAQ	4(DX), BX
	CMPQ	BX, R14
	JA	fail
	MOVWLZX	2(SI)(DX*1), BX
	LEAQ	(R15)(BX*8), BX
	ADDQ	$4, DX
saved:
	CMPQ	BX, R11
	JA	fail
	MOVQ	BX, 0(SP)(AX*8)
	BTSL	AX, R9
	CMPQ	DX, R14
	JB	codes

codesdone:
	BTL	$4, R9                  // RSP restored from memory: the Go path
	JCS	fail
	CMPQ	R10, R11
	JA	fail

	// Success, with R10 the offset of the return address in the stack's
	// run: load the registers, record where they came from, pop the
	// return address.
commit:
	MOVQ	ptrs+24(FP), SI
	TESTL	R9, R9
	JZ	popped
	TESTQ	SI, SI
	JNZ	record
load:
	BSFL	R9, AX
	MOVQ	0(SP)(AX*8), CX
	MOVQ	(R12)(CX*1), CX
	MOVQ	CX, Context_Rax(DI)(AX*8)
	LEAL	-1(R9), CX
	ANDL	CX, R9
	JNZ	load
	JMP	popped
record:	// load, and record the address in ptrs
	BSFL	R9, AX
	MOVQ	0(SP)(AX*8), CX
	MOVQ	(R12)(CX*1), R8
	MOVQ	R8, Context_Rax(DI)(AX*8)
	ADDQ	R13, CX
	MOVQ	CX, ContextPointers_Integer(SI)(AX*8)
	LEAL	-1(R9), CX
	ANDL	CX, R9
	JNZ	record
popped:
	MOVQ	(R12)(R10*1), CX
	MOVQ	CX, Context_Rip(DI)
	LEAQ	8(R10)(R13*1), R10
	MOVQ	R10, Context_Rsp(DI)
	MOVB	$1, ok+81(FP)
	RET

	// The bytes at R8 may start an epilog. Match them as scanEpilog and
	// returnsFrom do, and emulate them as fastEpilog does while matching
	// them: CX = the index of the next byte, R10 = RSP as the epilog
	// leaves it so far, R9 = the registers it pops. If they turn out not
	// to be an epilog, the body is unwound from the state saved here.
epilog:
	MOVQ	CX, 136(SP)
	MOVQ	DX, 144(SP)
	MOVQ	R14, 152(SP)
	MOVQ	R10, 160(SP)
	XORL	R9, R9
	XORL	CX, CX
	MOVWLZX	(R8), AX
	CMPL	AX, $0x8348             // add rsp, imm8
	JEQ	add8
	CMPL	AX, $0x8148             // add rsp, imm32
	JEQ	add32
	MOVL	AX, BX
	ANDL	$0xfffe, BX
	CMPL	BX, $0x8d48             // lea rsp, [reg+disp]
	JNE	pops
	MOVBLZX	2(R8), BX
	MOVL	AX, R14
	ANDL	$1, R14
	SHLL	$3, R14
	MOVL	BX, AX
	ANDL	$7, AX
	ORL	AX, R14                 // the base register, which must be the
	JZ	pops                    // frame register
	MOVBLZX	131(SP), DX
	ANDL	$15, DX
	CMPL	R14, DX
	JNE	pops
	MOVQ	R10, DX                 // the base's value, as an offset
	CMPL	R14, $4
	JEQ	leabase
	MOVQ	Context_Rax(DI)(R14*8), DX
	SUBQ	R13, DX
leabase:
	ANDL	$0xf8, BX
	CMPL	BX, $0x60
	JEQ	lea8
	CMPL	BX, $0xa0
	JNE	pops
	MOVLQSX	3(R8), R10
	ADDQ	DX, R10
	MOVL	$7, CX
	JMP	pops
lea8:
	MOVBQSX	3(R8), R10
	ADDQ	DX, R10
	MOVL	$4, CX
	JMP	pops
add8:
	CMPB	2(R8), $0xc4
	JNE	pops
	MOVBQSX	3(R8), DX
	ADDQ	DX, R10
	MOVL	$4, CX
	JMP	pops
add32:
	CMPB	2(R8), $0xc4
	JNE	pops
	MOVLQSX	3(R8), DX
	ADDQ	DX, R10
	MOVL	$7, CX
pops:
	CMPL	CX, $60
	JA	fail                    // bytes the Go path reads as 0
	MOVBLZX	(R8)(CX*1), AX
	LEAL	-0x58(AX), BX           // pop r64: 0x58 + register
	CMPL	BX, $7
	JA	poprex
	INCL	CX
pop:	// pop BX
	CMPQ	R10, R11
	JA	fail
	MOVQ	R10, 0(SP)(BX*8)
	BTSL	BX, R9
	ADDQ	$8, R10
	JMP	pops
poprex:	// REX (0x40 to 0x4f), then pop r64: REX.B selects r8 to r15
	LEAL	-0x40(AX), BX
	CMPL	BX, $15
	JA	term
	MOVBLZX	1(R8)(CX*1), BX
	SUBL	$0x58, BX
	CMPL	BX, $7
	JA	term
	ANDL	$1, AX
	SHLL	$3, AX
	ORL	AX, BX
	ADDL	$2, CX
	JMP	pop
term:	// AX = the byte at CX
	CMPL	AX, $0xf2               // BND prefix
	JNE	ret
	INCL	CX
	MOVBLZX	(R8)(CX*1), AX
ret:
	CMPL	AX, $0xc3               // ret
	JEQ	epilogdone
	CMPL	AX, $0xc2               // ret imm16
	JEQ	epilogdone
	MOVBLZX	1(R8)(CX*1), BX
	CMPL	AX, $0xf3               // rep ret
	JNE	jmpmem
	CMPL	BX, $0xc3
	JEQ	epilogdone
jmpmem:
	CMPL	AX, $0xff               // jmp [rip+disp32]
	JNE	jmprm
	CMPL	BX, $0x25
	JEQ	epilogdone
jmprm:
	MOVL	AX, DX                  // REX.W jmp r/m64
	ANDL	$0xf8, DX
	CMPL	DX, $0x48
	JNE	jmprel
	CMPL	BX, $0xff
	JNE	jmprel
	MOVBLZX	2(R8)(CX*1), DX
	ANDL	$0x38, DX
	CMPL	DX, $0x20
	JEQ	epilogdone
jmprel:
	CMPL	AX, $0xeb
	JEQ	fail                    // tail calls: the Go path
	CMPL	AX, $0xe9
	JEQ	fail
	MOVQ	136(SP), CX             // not an epilog: the body
	MOVQ	144(SP), DX
	MOVQ	152(SP), R14
	MOVQ	160(SP), R10
	JMP	body

epilogdone:
	BTL	$4, R9                  // pop rsp: the Go path
	JCS	fail
	CMPQ	R10, R11
	JA	fail
	MOVQ	$0, handler+56(FP)
	MOVQ	$0, handlerData+64(FP)
	MOVB	$const_StepInEpilog, flags+80(FP)
	TESTB	$15, 131(SP)
	JZ	commit
	LEAQ	(R10)(R13*1), DX
	MOVQ	DX, frame+72(FP)
	JMP	commit

fail:
	MOVB	$0, ok+81(FP)
	RET
