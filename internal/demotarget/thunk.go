package demotarget

import (
	"fmt"

	"github.com/fntable/fntable/unwindinfo"
)

// The entry thunk: called with the System V convention as
// thunk(arg, fn) (arg in rdi, fn in rsi), it calls fn(arg) with the
// Microsoft x64 convention (arg in rcx), reserving the callee's 32-byte
// home area and keeping RSP 16-byte aligned at the call: on entry RSP is
// 8 mod 16 (the return address), and 0x28 = 32 + 8.
//
// Reference: Intel SDM vol. 2 (83 /5 ib SUB r/m64, imm8; 89 /r MOV r/m64,
// r64; FF /2 CALL r/m64; 83 /0 ib ADD r/m64, imm8; C3 RET); Microsoft,
// "x64 calling convention" (home area, stack alignment).
var thunkCode = []byte{
	0x48, 0x83, 0xec, 0x28, // sub rsp, 0x28
	0x48, 0x89, 0xf9, // mov rcx, rdi
	0xff, 0xd6, // call rsi
	0x48, 0x83, 0xc4, 0x28, // add rsp, 0x28
	0xc3, // ret
}

const (
	thunkPrologSize = 4    // the sub
	thunkAlloc      = 0x28 // bytes the sub allocates
	thunkInfoOffset = 16   // the UNWIND_INFO follows the code, 4-byte aligned
)

// thunkImage returns the thunk's code followed by its UNWIND_INFO at
// thunkInfoOffset, and its RUNTIME_FUNCTION (RVAs from the thunk).
//
// Reference: Microsoft, "x64 exception handling", struct UNWIND_INFO and
// UWOP_ALLOC_SMALL (OpInfo*8+8 bytes).
func thunkImage() ([]byte, unwindinfo.RuntimeFunction) {
	info := &unwindinfo.Info{
		Version:      1,
		SizeOfProlog: thunkPrologSize,
		Codes:        []unwindinfo.Code{{Offset: thunkPrologSize, Op: unwindinfo.UWOP_ALLOC_SMALL, OpInfo: (thunkAlloc - 8) / 8}},
	}
	b := make([]byte, thunkInfoOffset, thunkInfoOffset+16)
	for i := range b {
		b[i] = 0xcc // int3
	}
	copy(b, thunkCode)
	b, err := info.Append(b)
	if err != nil {
		panic(fmt.Sprintf("demotarget: encode the thunk's unwind info: %v", err))
	}
	return b, unwindinfo.RuntimeFunction{BeginAddress: 0, EndAddress: uint32(len(thunkCode)), UnwindData: thunkInfoOffset}
}
