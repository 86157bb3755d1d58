package unwind

import (
	"encoding/binary"
	"encoding/hex"
	"testing"

	"github.com/fntable/fntable/unwindinfo"
)

// FuzzVirtualUnwind unwinds arbitrary code, unwind information, register
// state and stack: it must never panic or hang, and every register it
// reports as restored from memory must hold the value at that address.
func FuzzVirtualUnwind(f *testing.F) {
	seeds := []struct{ code, info string }{
		{"57fff54881ec10010000488d6c243048899df00000004889b5f800000090488b9df0000000488bb5f8000000488da5e00000005d5fc3",
			"091d09351d642500163424000f530a0122000350017000000002000005060708"},
		{"5355565741544883ec3090904883c430415c5f5e5d5bc3", "090a06000a5206c004700360025001300002000005060708"},
		{"5590905dc3", "090002000150001a0002000005060708"},
		{"55905deb0290c3", "01010100015000000000000000000000"},
		{"4883ec3048895c241090e90b00000090488b5c24104883c430c3554883ec50488d6c243048895d10e9e3ffffffe90000000090488b5d104883c4505dc3",
			"210e05350e3402000f530552015000001a0000003d00000000000000010903000934020004520000"},
		{"c3", "02040300011606000482000000"},
	}
	for i, s := range seeds {
		code, _ := hex.DecodeString(s.code)
		info, _ := hex.DecodeString(s.info)
		f.Add(code, info, make([]byte, 64), uint8(i), uint8(0), uint64(0x5555))
	}
	f.Fuzz(func(t *testing.T, code, info, stack []byte, pcOff, ht uint8, seed uint64) {
		const base, stackBase = 0x140000000, 0x7ff00000
		const codeRVA, infoRVA = 0x1000, 0x2000
		var mem SplicedMemory
		mem.Add(base+codeRVA, code)
		mem.Add(base+infoRVA, info)
		mem.Add(stackBase, stack)
		var ctx Context
		g := ctx.gpr()
		for i := range g {
			g[i] = seed*uint64(i+1) ^ uint64(i)<<56
		}
		ctx.Rsp = stackBase + seed%64
		ctx.Rbp = stackBase + (seed>>8)%64
		pc := base + codeRVA + uint64(pcOff)
		fn := unwindinfo.RuntimeFunction{BeginAddress: codeRVA, EndAddress: codeRVA + uint32(len(code)), UnwindData: infoRVA}
		if len(info) >= 16 && info[0]&0x20 != 0 {
			fn.UnwindData |= uint32(seed & 1) // sometimes an indirect entry
		}
		table := NewSortedTable(base, []unwindinfo.RuntimeFunction{fn, {BeginAddress: codeRVA + 0x100, EndAddress: codeRVA + 0x200, UnwindData: infoRVA}})
		u := Unwinder{Memory: &mem, Functions: table}
		var ptrs ContextPointers
		if _, err := u.VirtualUnwind(HandlerType(ht%4), base, pc, &fn, &ctx, &ptrs); err != nil {
			return
		}
		for r, p := range ptrs.Integer {
			if p == 0 {
				continue
			}
			var b [8]byte
			if _, err := mem.ReadMemory(b[:], p); err != nil {
				t.Fatalf("%s restored from unreadable %#x", unwindinfo.Register(r), p)
			}
			if got := binary.LittleEndian.Uint64(b[:]); got != ctx.Reg(unwindinfo.Register(r)) && r != int(unwindinfo.RSP) {
				t.Fatalf("%s = %#x, but [%#x] = %#x", unwindinfo.Register(r), ctx.Reg(unwindinfo.Register(r)), p, got)
			}
		}
	})
}
