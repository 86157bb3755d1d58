package verify

import (
	"encoding/hex"
	"slices"
	"sort"
	"strings"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"github.com/fntable/fntable/unwind"
	"github.com/fntable/fntable/unwindinfo"
)

// A shape is a small function table holding the shape of code, and of its
// unwind information, that the checker meets in real images. The code was
// assembled from the instructions in the comments with llvm-mc 14 (Intel
// syntax); the image lies at shapeBase, its code at RVA 0x1000.
type shape struct {
	name    string
	from    string // where the shape comes from
	code    string // hex
	entries []shapeEntry
}

type shapeEntry struct {
	begin, end uint32 // offsets in code
	info       unwindinfo.Info
	chainTo    int    // index of the parent entry + 1; 0: not chained
	want       []Kind // the kinds of the problems reported for the entry
	message    string // a text one of its problems must hold, if set
}

const (
	shapeBase = 0x180000000
	shapeCode = 0x1000 // RVA of the code
	shapeInfo = 0x4000 // RVA of the first UNWIND_INFO, 0x40 bytes each
)

func push(off uint8, r unwindinfo.Register) unwindinfo.Code {
	return unwindinfo.Code{Offset: off, Op: unwindinfo.UWOP_PUSH_NONVOL, OpInfo: uint8(r)}
}

func alloc(off uint8, size uint32) unwindinfo.Code {
	if size <= 128 {
		return unwindinfo.Code{Offset: off, Op: unwindinfo.UWOP_ALLOC_SMALL, OpInfo: uint8(size/8 - 1)}
	}
	return unwindinfo.Code{Offset: off, Op: unwindinfo.UWOP_ALLOC_LARGE, Operand: size / 8}
}

func saveReg(off uint8, r unwindinfo.Register, at uint32) unwindinfo.Code {
	return unwindinfo.Code{Offset: off, Op: unwindinfo.UWOP_SAVE_NONVOL, OpInfo: uint8(r), Operand: at / 8}
}

func saveXMM(off uint8, x int, at uint32) unwindinfo.Code {
	return unwindinfo.Code{Offset: off, Op: unwindinfo.UWOP_SAVE_XMM128, OpInfo: uint8(x), Operand: at / 16}
}

func setFP(off uint8) unwindinfo.Code {
	return unwindinfo.Code{Offset: off, Op: unwindinfo.UWOP_SET_FPREG}
}

func v1(prolog uint8, codes ...unwindinfo.Code) unwindinfo.Info {
	return unwindinfo.Info{Version: 1, SizeOfProlog: prolog, Codes: codes}
}

func framed(info unwindinfo.Info, fr unwindinfo.Register, off uint8) unwindinfo.Info {
	info.FrameRegister, info.FrameOffset = fr, off
	return info
}

var shapes = []shape{
	{name: "msvc-home-save", from: "MSVC: symbolic-CrashWithException.exe 0x1400010b0",
		// mov [rsp+8], rbx; push rdi; sub rsp, 0x20 | mov rbx, rcx; xor edi, edi;
		// mov rbx, [rsp+0x30]; add rsp, 0x20; pop rdi; ret
		code: "48895c2408574883ec204889cb31ff488b5c24304883c4205fc3",
		entries: []shapeEntry{{begin: 0, end: 0x1a,
			info: v1(0xa, saveReg(0xa, unwindinfo.RBX, 0x30), alloc(0xa, 0x20), push(6, unwindinfo.RDI))}}},
	{name: "msvc-rbp-base", from: "MSVC: symbolic-CrashWithException.exe 0x140001a60",
		// mov [rsp+0x20], rbx; push rbp; mov rbp, rsp; sub rsp, 0x20 | mov rbx, rcx;
		// mov [rbp-8], rbx; mov rbx, [rsp+0x48]; add rsp, 0x20; pop rbp; ret
		code: "48895c2420554889e54883ec204889cb48895df8488b5c24484883c4205dc3",
		entries: []shapeEntry{{begin: 0, end: 0x1f,
			info: v1(0xd, saveReg(0xd, unwindinfo.RBX, 0x48), alloc(0xd, 0x20), push(6, unwindinfo.RBP))}}},
	{name: "gcc-setfp-late", from: "MinGW GCC: go-gcc-amd64-mingw-exec 0x401f20",
		// push rbp; mov rbp, rsp; push r12; push rdi; push rsi; push rbx; sub rsp, 0x60 |
		// xor ebx, ebx; xor r12d, r12d; lea rsp, [rbp-0x20]; pop rbx; pop rsi; pop rdi; pop r12; pop rbp; ret
		code: "554889e541545756534883ec6031db4531e4488d65e05b5e5f415c5dc3",
		entries: []shapeEntry{{begin: 0, end: 0x1d,
			info: framed(v1(0xd, setFP(0xd), alloc(0xd, 0x60), push(9, unwindinfo.RBX), push(8, unwindinfo.RSI),
				push(7, unwindinfo.RDI), push(6, unwindinfo.R12), push(1, unwindinfo.RBP)), unwindinfo.RBP, 8)}}},
	{name: "llvm-push-rax", from: "LLVM: biome.exe 0x1416bad30",
		// push r15; push rbx; push rax | mov rbx, rcx; xor r15d, r15d; add rsp, 8; pop rbx; pop r15; ret
		code: "415753504889cb4531ff4883c4085b415fc3",
		entries: []shapeEntry{{begin: 0, end: 0x12,
			info: v1(4, alloc(4, 8), push(3, unwindinfo.RBX), push(2, unwindinfo.R15))}}},
	{name: "perlasm-lea-alloc", from: "CRYPTOGAMS ghash-x86_64 in ring 0.17: biome.exe 0x145692d00",
		// lea rax, [rsp-0x88]; lea rsp, [rax-0x20]; movaps [rax-0x20], xmm6; movaps [rax-0x10], xmm7 |
		// pxor xmm6, xmm6; pxor xmm7, xmm7; movaps xmm6, [rsp]; movaps xmm7, [rsp+0x10]; lea rsp, [rsp+0xa8]; ret
		code: "488d842478ffffff488d60e00f2970e00f2978f0660feff6660fefff0f2834240f287c2410488da424a8000000c3",
		entries: []shapeEntry{{begin: 0, end: 0x2e,
			info: v1(0x14, saveXMM(0x14, 7, 0x10), saveXMM(0x10, 6, 0), alloc(0xc, 0xa8))}}},
	{name: "msvc-jump-table", from: "MSVC: lightningcss.win32-x64-msvc.node 0x180812120",
		// sub rsp, 0x28 | cmp ecx, 2; ja default; movabs rdx, 0x180000000; mov ecx, ecx;
		// mov ecx, [rdx+rcx*4+0x1074]; add rcx, rdx; jmp rcx; nops; 0x55: mov eax, 1; jmp end; nop;
		// 0x5d: mov eax, 2; jmp end; 0x64: mov eax, 3; end: add rsp, 0x28; ret; default: xor eax, eax;
		// jmp end; int3; int3; 0x74: the table, RVAs 0x1055, 0x105d, 0x1064 (push rbp, pop rbp as code)
		code:    "4883ec2883f902776548ba000000800100000089c98b8c8a741000004801d1ffe1662e0f1f8400000000000f1f44000090909090909090909090909090909090909090909090909090909090909090909090909090b801000000eb0d90b802000000eb05b8030000004883c428c331c0ebf7cccc551000005d10000064100000",
		entries: []shapeEntry{{begin: 0, end: 0x80, info: v1(4, alloc(4, 0x28))}}},
	{name: "msvc-fragment-saves-through-rax", from: "MSVC: rollup.win32-x64-msvc.node 0x1801cb3dc",
		// primary: mov rax, rsp; push rdi; sub rsp, 0x30 | mov rdi, rcx; test rcx, rcx; jne fragment;
		// add rsp, 0x30; pop rdi; ret
		// fragment: mov [rax+8], rbx | mov rbx, rdx; call; mov rbx, [rsp+0x40]; add rsp, 0x30; pop rdi; ret
		code: "4889e0574883ec304889cf4885c975064883c4305fc3488958084889d3e80b000000488b5c24404883c4305fc3c3",
		entries: []shapeEntry{
			{begin: 0, end: 0x16, info: v1(8, alloc(8, 0x30), push(4, unwindinfo.RDI))},
			{begin: 0x16, end: 0x2d, chainTo: 1, info: v1(4, saveReg(4, unwindinfo.RBX, 0x40))}}},
	{name: "msvc-early-return", from: "MSVC: biome.exe 0x1456b9940",
		// push rbx; push rsi; sub rsp, 0x88; mov rbx, r8; cmp edx, 0x80; je 0x23; mov eax, 1;
		// add rsp, 0x88; pop rsi; pop rbx; ret; 0x23: mov [rsp+0xa8], rbp | mov ebp, 5;
		// mov rbp, [rsp+0xa8]; add rsp, 0x88; pop rsi; pop rbx; ret
		code: "53564881ec880000004c89c381fa80000000740fb8010000004881c4880000005e5bc34889ac24a8000000bd05000000488bac24a80000004881c4880000005e5bc3",
		entries: []shapeEntry{{begin: 0, end: 0x42,
			info: v1(0x2b, saveReg(0x2b, unwindinfo.RBP, 0xa8), alloc(9, 0x88), push(2, unwindinfo.RSI), push(1, unwindinfo.RBX)),
			want: []Kind{KindPrologEpilog}, message: "inside the prolog"}}},
	{name: "msvc-fragment-epilog", from: "MSVC: rollup.win32-x64-msvc.node 0x1801ccde3",
		// primary: push rdi; sub rsp, 0x30 | mov rdi, rcx; test rcx, rcx; jne fragment; xor eax, eax; jmp fragment
		// fragment, no codes of its own: mov rcx, rdi; add rsp, 0x30; pop rdi; ret
		code: "574883ec304889cf4885c9750431c0eb004889f94883c4305fc3",
		entries: []shapeEntry{
			{begin: 0, end: 0x11, info: v1(5, alloc(5, 0x30), push(1, unwindinfo.RDI))},
			{begin: 0x11, end: 0x1a, chainTo: 1, info: v1(0), want: []Kind{KindFragmentEpilog}, message: "at pop rdi"}}},
	{name: "vzeroupper-epilog", from: "LLVM: biome.exe 0x140376a80",
		// sub rsp, 0x28 | vpxor ymm0, ymm0, ymm0; vmovdqu [rcx], ymm0; add rsp, 0x28; vzeroupper; ret
		code: "4883ec28c5fdefc0c5fe7f014883c428c5f877c3",
		entries: []shapeEntry{{begin: 0, end: 0x14, info: v1(4, alloc(4, 0x28)),
			want: []Kind{KindEpilog}, message: "at vzeroupper"}}},
	{name: "delay-load-thunk", from: "Wine: adsldp.dll 0x29b739ab0 (__wine_delay_load_netapi32)",
		// sub rsp, 0x48 | mov [rsp+0x40], rcx; mov rdx, rax; call; mov rcx, [rsp+0x40]; add rsp, 0x48; jmp rax
		code: "4883ec4848894c24404889c2e80b000000488b4c24404883c448ffe0c3",
		entries: []shapeEntry{{begin: 0, end: 0x1c, info: v1(4, alloc(4, 0x48)),
			want: []Kind{KindTailJump}, message: "at jmp rax"}}},
	{name: "gcc-cold-part", from: "Wine (GCC): advapi32.dll 0x1d8cb5180 (debugstr_sid.cold)",
		// hot: push rbx; sub rsp, 0x20 | test ecx, ecx; je 0x13; mov ebx, ecx; jmp cold;
		// 0xd: add rsp, 0x20; pop rbx; ret; 0x13: xor ebx, ebx; jmp 0xd; int3...
		// cold (0x20), codes at offset 0 restating the frame: lea rax, [rip]; jmp 0xd
		code: "534883ec2085c9740a89cbeb134883c4205bc331dbebf6cccccccccccccccccc488d0500000000ebe4",
		entries: []shapeEntry{
			{begin: 0, end: 0x17, info: v1(5, alloc(5, 0x20), push(1, unwindinfo.RBX)), want: []Kind{KindSplitJump}},
			{begin: 0x20, end: 0x29, info: v1(0, alloc(0, 0x20), push(0, unwindinfo.RBX)), want: []Kind{KindSplitJump}}}},
	{name: "save-outside-prolog", from: "Wine: ntdll.dll relay_call",
		// push rbp; mov rbp, rsp | lea rsp, [rbp-0x48]; and rsp, -16; mov [rbp-0x10], rsi; mov [rbp-8], rdi;
		// lea rsi, [rbp+0x18]; mov rdi, rsp; rep movsq; call rax; mov rsi, [rbp-0x10]; mov rdi, [rbp-8];
		// lea rsp, [rbp]; pop rbp; ret
		code: "554889e5488d65b84883e4f0488975f048897df8488d75184889e7f348a5ffd0488b75f0488b7df8488d65005dc3",
		entries: []shapeEntry{{begin: 0, end: 0x2e, info: framed(v1(4, setFP(4), push(1, unwindinfo.RBP)), unwindinfo.RBP, 0),
			want: []Kind{KindUnwindMismatch}, message: "the code gives rsi from [CFA-0x20]"}}},
	{name: "gcc-xmm-save-offset", from: "Wine (GCC): glu32.dll gluTessEndPolygon",
		// push rbp; mov rbp, rsp; push rdi; sub rsp, 0x38; movups [rbp-0x30], xmm6 | pxor xmm6, xmm6;
		// movups xmm6, [rbp-0x30]; lea rsp, [rbp-8]; pop rdi; pop rbp; ret
		// SAVE_XMM128 says 0x10: from rsp after the allocation, not from rbp, the frame base
		code: "554889e5574883ec380f1175d0660feff60f1075d0488d65f85f5dc3",
		entries: []shapeEntry{{begin: 0, end: 0x1c,
			info: framed(v1(0xd, saveXMM(0xd, 6, 0x10), alloc(9, 0x38), push(5, unwindinfo.RDI), setFP(4), push(1, unwindinfo.RBP)), unwindinfo.RBP, 0),
			want: []Kind{KindCodeMismatch, KindUnwindMismatch}, message: "SAVE_XMM128 xmm6 at 0x10"}}},
}

// TestShapes checks the shapes of code and unwind information the checker
// meets in real images: those it must accept, and those whose problems it
// must report as their kinds.
func TestShapes(t *testing.T) {
	for _, s := range shapes {
		t.Run(s.name, func(t *testing.T) {
			code, err := hex.DecodeString(s.code)
			if err != nil {
				t.Fatal(err)
			}
			mem := new(unwind.SplicedMemory)
			mem.Add(shapeBase+shapeCode, code)
			fns := make([]unwindinfo.RuntimeFunction, len(s.entries))
			for i, e := range s.entries {
				info := e.info
				if e.chainTo > 0 {
					info.Flags |= unwindinfo.UNW_FLAG_CHAININFO
					info.Chained = fns[e.chainTo-1]
				}
				b, err := info.Encode()
				if err != nil {
					t.Fatalf("entry %d: %v", i, err)
				}
				rva := uint32(shapeInfo + 0x40*i)
				mem.Add(shapeBase+uint64(rva), b)
				fns[i] = unwindinfo.RuntimeFunction{BeginAddress: shapeCode + e.begin, EndAddress: shapeCode + e.end, UnwindData: rva}
			}
			c := &Checker{Memory: mem}
			rep, err := c.Table(shapeBase, fns, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Functions != len(fns) {
				t.Errorf("%d functions checked, want %d", rep.Functions, len(fns))
			}
			for i, e := range s.entries {
				addr := shapeBase + uint64(fns[i].BeginAddress)
				var kinds []Kind
				found := e.message == ""
				for _, p := range rep.Problems {
					if p.Function != addr {
						continue
					}
					if !slices.Contains(kinds, p.Kind) {
						kinds = append(kinds, p.Kind)
					}
					found = found || strings.Contains(p.Message, e.message)
				}
				sort.Slice(kinds, func(a, b int) bool { return kinds[a] < kinds[b] })
				want := slices.Clone(e.want)
				sort.Slice(want, func(a, b int) bool { return want[a] < want[b] })
				if !slices.Equal(kinds, want) || !found {
					for _, p := range rep.Problems {
						if p.Function == addr {
							t.Logf("%s [%s]", p, p.Kind)
						}
					}
					t.Errorf("%s entry %d: problem kinds %v, want %v (with a message holding %q)", s.from, i, kinds, want, e.message)
				}
			}
		})
	}
}

// TestDecodeVzeroupper checks the length of VZEROUPPER and VZEROALL, which
// x86asm (golang.org/x/arch v0.32) decodes with a ModRM byte they do not
// have: vzeroupper; ret must be two instructions.
func TestDecodeVzeroupper(t *testing.T) {
	for _, tc := range []struct {
		hex string
		op  x86asm.Op
		n   int
	}{
		{"c5f877c3", x86asm.VZEROUPPER, 3},   // VEX2
		{"c5fc77c3", x86asm.VZEROALL, 3},     // VEX2, L=1
		{"c4e17877c3", x86asm.VZEROUPPER, 4}, // VEX3
		{"c5f8ae5c2408", x86asm.VSTMXCSR, 6}, // another VEX2 0F instruction, as x86asm decodes it
	} {
		b, _ := hex.DecodeString(tc.hex)
		in, err := decodeInst(b)
		if err != nil || in.Op != tc.op || in.Len != tc.n {
			t.Errorf("%s: %v (%d bytes), %v; want %v (%d bytes)", tc.hex, in.Op, in.Len, err, tc.op, tc.n)
		}
	}
}
