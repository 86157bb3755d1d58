package unwind

import (
	"encoding/hex"
	"strings"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"github.com/fntable/fntable/unwindinfo"
)

// TestEpilogForms checks each accepted epilog instruction form twice: the
// unwinder must treat a function stopped at it as being in an epilog, and
// x86asm, an independent decoder, must read the bytes as the instruction
// the form stands for.
func TestEpilogForms(t *testing.T) {
	forms := []struct {
		hex  string // epilog from the control PC; the function is "55 <hex>" plus padding
		asm  string // x86asm GNU syntax of the first instruction
		regs map[unwindinfo.Register]bool
		in   bool // in an epilog
	}{
		{"4883c4085dc3", "add $0x8,%rsp", nil, true},
		{"4881c4080000005dc3", "add $0x8,%rsp", nil, true},
		{"488d65085dc3", "lea 0x8(%rbp),%rsp", nil, true},
		{"488da5080000005dc3", "lea 0x8(%rbp),%rsp", nil, true},
		{"5dc3", "pop %rbp", nil, true},
		{"415dc3", "pop %r13", nil, true},
		{"c3", "ret", nil, true},
		{"c21000", "retq $0x10", nil, true},
		{"f3c3", "rep retq", nil, true},
		{"f2c3", "bnd ret", nil, true},
		{"e900100000", "jmpq .+0x1000", nil, true},
		{"ff2500100000", "jmpq *0x1000(%rip)", nil, true},
		{"48ffe0", "rex.W jmp *%rax", nil, true},
		{"48ff20", "rex.W jmpq *(%rax)", nil, true},
		{"41ffe0", "jmp *%r8", nil, false},            // REX without W: not a tail call marker
		{"ffe0", "jmp *%rax", nil, false},             // plain register jump: a switch
		{"4883c0085dc3", "add $0x8,%rax", nil, false}, // not rsp
		{"90c3", "nop", nil, false},
		{"488d6c24085dc3", "lea 0x8(%rsp),%rbp", nil, false},
	}
	for _, f := range forms {
		code, err := hex.DecodeString(f.hex)
		if err != nil {
			t.Fatal(err)
		}
		inst, err := x86asm.Decode(code, 64)
		if err != nil {
			t.Errorf("%s: x86asm: %v", f.hex, err)
		} else if got := x86asm.GNUSyntax(inst, 0, nil); !strings.HasPrefix(got, f.asm) {
			t.Errorf("%s: x86asm reads %q, want %q", f.hex, got, f.asm)
		}

		// Function: push rbp at 0, the form at 1; frame register rbp so
		// lea rsp,[rbp+d] qualifies.
		const base, stack = 0x10000000, 0x20000000
		fcode := append([]byte{0x55}, code...)
		fcode = append(fcode, make([]byte, 16)...)
		info := []byte{0x01, 0x01, 0x01, 0x05, 0x01, 0x50, 0, 0}
		var mem SplicedMemory
		mem.Add(base+0x1000, fcode)
		mem.Add(base+0x2000, info)
		st := make([]byte, 0x100)
		for i := range 0x20 {
			putU64(st[8*i:], stack+uint64(8*i))
		}
		mem.Add(stack, st)
		fn := unwindinfo.RuntimeFunction{BeginAddress: 0x1000, EndAddress: 0x1000 + uint32(len(fcode)), UnwindData: 0x2000}
		ctx := Context{Rsp: stack, Rbp: stack + 0x10}
		res, err := VirtualUnwind(HandlerNone, base, base+0x1001, &fn, &ctx, nil, &mem)
		if err != nil {
			t.Errorf("%s: %v", f.hex, err)
			continue
		}
		if res.InEpilog() != f.in {
			t.Errorf("%s (%s): in epilog = %v, want %v", f.hex, f.asm, res.InEpilog(), f.in)
		}
	}
}
