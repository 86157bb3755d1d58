package jitgen

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"github.com/fntable/fntable/unwind"
	"github.com/fntable/fntable/unwindinfo"
)

func build(t testing.TB, cfg Config, seed uint64) *Image {
	t.Helper()
	return Build(cfg, rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)))
}

func testFunctions(t *testing.T) int {
	if testing.Short() {
		return 300
	}
	return 2000
}

// TestImageLayout checks the table, the unwind information and how
// entries cover the image.
func TestImageLayout(t *testing.T) {
	img := build(t, Config{Functions: testFunctions(t)}, 1)
	if len(img.Functions) != testFunctions(t) {
		t.Fatalf("%d functions, want %d", len(img.Functions), testFunctions(t))
	}
	for i, rf := range img.Table {
		got, err := unwindinfo.DecodeRuntimeFunction(img.Bytes[img.TableRVA+12*uint32(i):])
		if err != nil || got != rf {
			t.Fatalf("table entry %d: encoded %+v (%v), want %+v", i, got, err, rf)
		}
		if rf.BeginAddress >= rf.EndAddress {
			t.Errorf("table entry %d: empty range %+v", i, rf)
		}
		if i > 0 && img.Table[i-1].EndAddress > rf.BeginAddress {
			t.Errorf("table entries %d and %d overlap or are unsorted: %+v %+v", i-1, i, img.Table[i-1], rf)
		}
	}
	entries := 0
	for _, f := range img.Functions {
		for _, e := range f.Entries() {
			entries++
			if i := img.TableIndex(e.Begin); i < 0 || img.Table[i] != e.RuntimeFunction() {
				t.Errorf("f%d entry %#x not in the table", f.ID, e.Begin)
			}
			if gf, ge, ok := img.Find(e.Begin); !ok || gf != f || ge != e {
				t.Errorf("f%d: Find(%#x) = %v, %v", f.ID, e.Begin, gf, ok)
			}
			if !bytes.Equal(e.Code, img.Bytes[e.Begin:e.End]) {
				t.Errorf("f%d entry %#x: Code differs from the image", f.ID, e.Begin)
			}
			info, err := unwindinfo.Decode(img.Bytes[e.InfoRVA:])
			if err != nil {
				t.Errorf("f%d entry %#x: decode unwind info: %v", f.ID, e.Begin, err)
				continue
			}
			if len(info.Codes) == 0 {
				info.Codes = e.Info.Codes // nil or empty
			}
			if !reflect.DeepEqual(info, e.Info) {
				t.Errorf("f%d entry %#x: unwind info decodes to %+v, want %+v", f.ID, e.Begin, info, e.Info)
			}
			if err := info.Validate(); err != nil {
				t.Errorf("f%d entry %#x: %v", f.ID, e.Begin, err)
			}
			if p := f.Parent(e); p != nil {
				if info.Flags != unwindinfo.UNW_FLAG_CHAININFO || info.Chained != p.RuntimeFunction() {
					t.Errorf("f%d fragment %#x: flags %v chained %+v, want parent %+v", f.ID, e.Begin, info.Flags, info.Chained, p.RuntimeFunction())
				}
				if info.FrameRegister != f.Info.FrameRegister || info.FrameOffset != f.Info.FrameOffset {
					t.Errorf("f%d fragment %#x: frame register differs from the primary's", f.ID, e.Begin)
				}
			} else if info.Flags.HasHandler() {
				data := img.Bytes[e.InfoRVA+uint32(info.Size()):]
				if !bytes.Equal(data[:len(f.HandlerData)], f.HandlerData) || len(f.HandlerData) < 4 {
					t.Errorf("f%d: handler data %x, want %x", f.ID, data[:len(f.HandlerData)], f.HandlerData)
				}
				if !slices.Contains(img.Handlers, info.Handler) {
					t.Errorf("f%d: handler %#x is not a handler stub", f.ID, info.Handler)
				}
			} else if f.HandlerData != nil {
				t.Errorf("f%d: handler data without a handler", f.ID)
			}
		}
	}
	if entries != len(img.Table) {
		t.Errorf("%d entries in functions, %d in the table", entries, len(img.Table))
	}
	for _, rva := range append(slices.Clone(img.Handlers), img.Slots...) {
		if _, _, ok := img.LookupFunctionEntry(img.Base + uint64(rva)); ok {
			t.Errorf("handler or slot %#x lies in a function", rva)
		}
	}
}

// TestDeterministic checks that a seed gives the same image.
func TestDeterministic(t *testing.T) {
	a := build(t, Config{Functions: 50}, 7)
	b := build(t, Config{Functions: 50}, 7)
	if !bytes.Equal(a.Bytes, b.Bytes) || !reflect.DeepEqual(a.Table, b.Table) {
		t.Fatal("same seed, different images")
	}
	c := build(t, Config{Functions: 50}, 8)
	if bytes.Equal(a.Bytes, c.Bytes) {
		t.Fatal("different seeds, same image")
	}
}

// TestCoverage checks that an image of the default mix has every feature,
// every unwind operation, every epilog form, and that Omit leaves features
// out.
func TestCoverage(t *testing.T) {
	// Large enough for every feature to show up, whatever -short says.
	img := build(t, Config{Functions: 2000}, 2)
	var feats Feature
	ops := map[string]int{}
	forms := map[string]int{}
	for _, f := range img.Functions {
		feats |= f.Features
		for _, e := range f.Entries() {
			for _, c := range e.Info.Codes {
				name := c.Op.Name()
				switch c.Op {
				case unwindinfo.UWOP_ALLOC_LARGE, unwindinfo.UWOP_PUSH_MACHFRAME:
					name += fmt.Sprint(c.OpInfo)
				}
				ops[name]++
			}
			if e.Info.FrameRegister != 0 {
				ops["frame-"+e.Info.FrameRegister.String()]++
			}
		}
		for _, d := range f.Epilogs {
			forms["dealloc-"+d.Dealloc.String()]++
			forms["term-"+d.Term.String()]++
			forms["target-"+d.TargetKind.String()]++
			if d.Bnd {
				forms["bnd-"+d.Term.String()]++
			}
			if d.RexW {
				forms["rexw-jmp-rip"]++
			}
			for i, r := range d.Pops {
				forms[fmt.Sprintf("pop-%v-rex%v", r >= 8, d.PopREX[i])]++
			}
			if d.Version2 {
				forms["version2"]++
			}
		}
	}
	all := Feature(1<<len(featureNames) - 1)
	if feats != all {
		t.Errorf("features %v, missing %v", feats, all&^feats)
	}
	for _, want := range []string{"PUSH_NONVOL", "ALLOC_SMALL", "ALLOC_LARGE0", "ALLOC_LARGE1", "SET_FPREG",
		"SAVE_NONVOL", "SAVE_NONVOL_FAR", "SAVE_XMM128", "SAVE_XMM128_FAR", "PUSH_MACHFRAME0", "PUSH_MACHFRAME1", "EPILOG",
		"frame-rbx", "frame-rbp", "frame-rsi", "frame-rdi", "frame-r12", "frame-r13", "frame-r14", "frame-r15"} {
		if ops[want] == 0 {
			t.Errorf("no %s", want)
		}
	}
	for _, want := range []string{"dealloc-none", "dealloc-add8", "dealloc-add32", "dealloc-lea8", "dealloc-lea32",
		"term-ret", "term-ret-imm", "term-rep-ret", "term-jmp-rel8", "term-jmp-rel32", "term-jmp-rip", "term-jmp-reg",
		"term-jmp-mem", "term-iretq", "target-function", "target-thunk", "target-self", "bnd-ret", "bnd-jmp-rel8",
		"bnd-jmp-rel32", "bnd-jmp-rip", "bnd-jmp-reg", "bnd-jmp-mem", "rexw-jmp-rip",
		"pop-false-rexfalse", "pop-false-rextrue", "pop-true-rexfalse", "pop-true-rextrue", "version2"} {
		if forms[want] == 0 {
			t.Errorf("no epilog with %s", want)
		}
	}
	t.Logf("unwind codes: %v", ops)
	t.Logf("epilog forms: %v", forms)

	jumps := func(img *Image) float64 {
		n, total := 0, 0
		for _, f := range img.Functions {
			for _, d := range f.Epilogs {
				total++
				if d.Term.IsJump() {
					n++
				}
			}
		}
		return float64(n) / float64(total)
	}
	usual := jumps(img)
	rare := jumps(build(t, Config{Functions: 2000, Rare: FeatJmp | FeatRecursion}, 2))
	if rare <= 0 || rare > usual/3 {
		t.Errorf("jump epilogs: %.3f usually, %.3f when rare", usual, rare)
	}

	omit := FeatJmp | FeatBndRet | FeatChained | FeatVersion2 | FeatMachineFrame
	img = build(t, Config{Functions: 300, Omit: omit}, 3)
	for _, f := range img.Functions {
		if f.Features&omit != 0 {
			t.Errorf("f%d has omitted features %v", f.ID, f.Features&omit)
		}
	}
}

// x86 decodes one instruction at rva.
func decodeAt(img *Image, rva uint32) (x86asm.Inst, error) {
	end := min(int(rva)+15, len(img.Bytes))
	return x86asm.Decode(img.Bytes[rva:end], 64)
}

// TestDisassembly decodes every instruction with x86asm and checks its
// length and text, and that the unwind codes describe the prolog
// instructions and the epilog descriptions the epilog bytes.
func TestDisassembly(t *testing.T) {
	checkDisassembly(t, build(t, Config{Functions: testFunctions(t)}, 4))
}

// checkDisassembly checks every instruction, prolog and epilog of img.
func checkDisassembly(t *testing.T, img *Image) {
	t.Helper()
	for _, f := range img.Functions {
		for _, e := range f.Entries() {
			at := e.Begin
			for _, in := range e.Insts {
				if in.RVA != at {
					t.Fatalf("f%d: instruction at %#x, want %#x", f.ID, in.RVA, at)
				}
				at += uint32(in.Len)
				checkInst(t, img, f, in)
			}
			if at != e.End {
				t.Fatalf("f%d entry %#x: instructions end at %#x, entry at %#x", f.ID, e.Begin, at, e.End)
			}
			checkProlog(t, img, f, e)
		}
		for k := range f.Epilogs {
			checkEpilog(t, img, f, k)
		}
	}
}

// checkInst compares x86asm's decoding of in with its claimed text.
func checkInst(t *testing.T, img *Image, f *Function, in Inst) {
	t.Helper()
	xi, err := decodeAt(img, in.RVA)
	if err != nil {
		t.Errorf("f%d %#x: decode %q: %v", f.ID, in.RVA, in.Asm, err)
		return
	}
	if xi.Len != int(in.Len) {
		t.Errorf("f%d %#x: %q decodes with length %d, want %d", f.ID, in.RVA, in.Asm, xi.Len, in.Len)
	}
	claim := in.Asm
	raw := img.Bytes[in.RVA : in.RVA+uint32(in.Len)]
	for {
		switch {
		case strings.HasPrefix(claim, "rep "):
			if !slices.ContainsFunc(xi.Prefix[:], func(p x86asm.Prefix) bool { return p&0xff == x86asm.PrefixREP }) {
				t.Errorf("f%d %#x: %q: no rep prefix", f.ID, in.RVA, in.Asm)
			}
			claim = claim[4:]
			continue
		case strings.HasPrefix(claim, "rex.w "):
			if !slices.Contains(raw[:len(raw)-1], 0x48) && !slices.Contains(raw[:len(raw)-1], 0x49) {
				t.Errorf("f%d %#x: %q: no rex.w prefix in %x", f.ID, in.RVA, in.Asm, raw)
			}
			claim = claim[6:]
			continue
		case strings.HasPrefix(claim, "rex "):
			if raw[0] != 0x40 {
				t.Errorf("f%d %#x: %q: no rex prefix in %x", f.ID, in.RVA, in.Asm, raw)
			}
			claim = claim[4:]
			continue
		}
		break
	}
	got := x86asm.IntelSyntax(xi, uint64(in.RVA), nil)
	if strings.HasPrefix(claim, "bnd ") && !strings.HasPrefix(got, "bnd ") && raw[0] == 0xf2 {
		claim = claim[4:] // x86asm leaves out bnd before some jumps
	}
	if got != claim {
		t.Errorf("f%d %#x: % x decodes as %q, claimed %q", f.ID, in.RVA, raw, got, in.Asm)
	}
}

// memArg returns the base register and displacement of a memory operand.
func memArg(a x86asm.Arg) (x86asm.Reg, int64, bool) {
	m, ok := a.(x86asm.Mem)
	if !ok || m.Index != 0 || m.Segment != 0 {
		return 0, 0, false
	}
	return m.Base, int64(int32(m.Disp)), true
}

func gpr(r unwindinfo.Register) x86asm.Reg { return x86asm.RAX + x86asm.Reg(r) }

// checkProlog checks that every prolog instruction ends exactly where its
// unwind code says, and that the code describes the instruction.
func checkProlog(t *testing.T, img *Image, f *Function, e *Entry) {
	t.Helper()
	codes := slices.Clone(e.Info.PrologCodes())
	slices.Reverse(codes) // prolog order
	if len(codes) > 0 && codes[0].Op == unwindinfo.UWOP_PUSH_MACHFRAME {
		if codes[0].Offset != 0 || !f.MachineFrame || codes[0].OpInfo != map[bool]uint8{false: 0, true: 1}[f.ErrorCode] {
			t.Errorf("f%d: bad machine frame code %+v", f.ID, codes[0])
		}
		codes = codes[1:]
	}
	var prolog []Inst
	for _, in := range e.Insts {
		if in.Kind == KindProlog {
			prolog = append(prolog, in)
		}
	}
	if len(prolog) != len(codes) {
		t.Errorf("f%d entry %#x: %d prolog instructions, %d unwind codes", f.ID, e.Begin, len(prolog), len(codes))
		return
	}
	size := uint32(0)
	fr, fo := e.Info.FrameRegister, int64(e.Info.FrameOffset)*16
	for i, in := range prolog {
		c := codes[i]
		end := in.RVA + uint32(in.Len) - e.Begin
		size = end
		if uint32(c.Offset) != end {
			t.Errorf("f%d %#x %q: ends at prolog offset %#x, code %v at %#x", f.ID, in.RVA, in.Asm, end, c.Op, c.Offset)
		}
		xi, _ := decodeAt(img, in.RVA)
		// The stack pointer at the instruction, relative to the frame base
		// of the SAVE codes: the saves run after the fixed allocation.
		ok := true
		switch c.Op {
		case unwindinfo.UWOP_PUSH_NONVOL:
			ok = xi.Op == x86asm.PUSH && xi.Args[0] == gpr(c.Register())
		case unwindinfo.UWOP_ALLOC_SMALL, unwindinfo.UWOP_ALLOC_LARGE:
			imm, isImm := xi.Args[1].(x86asm.Imm)
			ok = xi.Op == x86asm.SUB && xi.Args[0] == x86asm.RSP && isImm && uint32(imm) == c.AllocSize()
		case unwindinfo.UWOP_SET_FPREG:
			switch xi.Op {
			case x86asm.LEA:
				base, disp, isMem := memArg(xi.Args[1])
				ok = xi.Args[0] == gpr(fr) && isMem && base == x86asm.RSP && disp == fo
			case x86asm.MOV:
				ok = xi.Args[0] == gpr(fr) && xi.Args[1] == x86asm.RSP && fo == 0
			default:
				ok = false
			}
		case unwindinfo.UWOP_SAVE_NONVOL, unwindinfo.UWOP_SAVE_NONVOL_FAR, unwindinfo.UWOP_SAVE_XMM128, unwindinfo.UWOP_SAVE_XMM128_FAR:
			xmm := c.Op == unwindinfo.UWOP_SAVE_XMM128 || c.Op == unwindinfo.UWOP_SAVE_XMM128_FAR
			base, disp, isMem := memArg(xi.Args[0])
			want := int64(c.StackOffset())
			if base != x86asm.RSP {
				want -= fo // addressed through the frame register
				ok = in.State.FrameSet && base == gpr(fr)
			}
			if xmm {
				ok = ok && xi.Op == x86asm.MOVAPS && xi.Args[1] == x86asm.X0+x86asm.Reg(c.XMM())
			} else {
				ok = ok && xi.Op == x86asm.MOV && xi.Args[1] == gpr(c.Register())
			}
			// Saves are placed after the allocation, where RSP is the
			// frame base; so the displacement is the code's offset.
			ok = ok && isMem && disp == want
		default:
			ok = false
		}
		if !ok {
			t.Errorf("f%d %#x: %q is not described by %+v", f.ID, in.RVA, in.Asm, c)
		}
	}
	if uint32(e.Info.SizeOfProlog) != size {
		t.Errorf("f%d entry %#x: SizeOfProlog %#x, prolog ends at %#x", f.ID, e.Begin, e.Info.SizeOfProlog, size)
	}
}

// checkEpilog checks the bytes of epilog k against its description.
func checkEpilog(t *testing.T, img *Image, f *Function, k int) {
	t.Helper()
	d := f.Epilogs[k]
	e := entryOf(f, d.Fragment)
	bad := func(format string, args ...any) {
		t.Errorf("f%d epilog %d at %#x (% x): %s", f.ID, k, d.Start, img.Bytes[d.Start:d.End], fmt.Sprintf(format, args...))
	}
	if d.Start < e.Begin || d.End > e.End || d.Start >= d.End {
		bad("outside its entry [%#x,%#x)", e.Begin, e.End)
		return
	}
	var insts []Inst
	for _, in := range e.Insts {
		if in.RVA >= d.Start && in.RVA < d.End {
			if in.Kind != KindEpilog || in.Epilog != k {
				bad("instruction %#x %q has kind %v epilog %d", in.RVA, in.Asm, in.Kind, in.Epilog)
			}
			insts = append(insts, in)
		} else if in.Epilog == k {
			bad("instruction %#x outside claims it", in.RVA)
		}
	}
	b := func(in Inst) []byte { return img.Bytes[in.RVA : in.RVA+uint32(in.Len)] }
	i := 0
	if d.Dealloc != DeallocNone {
		raw := b(insts[0])
		xi, _ := decodeAt(img, insts[0].RVA)
		switch d.Dealloc {
		case DeallocAdd8:
			if raw[0] != 0x48 || raw[1] != 0x83 || raw[2] != 0xc4 {
				bad("not add rsp, imm8")
			}
		case DeallocAdd32:
			if raw[0] != 0x48 || raw[1] != 0x81 || raw[2] != 0xc4 {
				bad("not add rsp, imm32")
			}
		case DeallocLea8, DeallocLea32:
			base, _, isMem := memArg(xi.Args[1])
			mod := raw[2] >> 6
			if raw[0]&0xfe != 0x48 || raw[1] != 0x8d || xi.Args[0] != x86asm.RSP || !isMem || base != gpr(e.Info.FrameRegister) ||
				d.Dealloc == DeallocLea8 && mod != 1 || d.Dealloc == DeallocLea32 && mod != 2 {
				bad("not lea rsp, [framereg+disp] in form %v", d.Dealloc)
			}
		}
		i++
	}
	if d.Version2 && insts[i].RVA != d.V2Start {
		bad("version 2 part starts at %#x, want %#x", d.V2Start, insts[i].RVA)
	}
	for j, r := range d.Pops {
		raw := b(insts[i])
		xi, _ := decodeAt(img, insts[i].RVA)
		rex := len(raw) == 2 && !(r >= 8 && raw[0] == 0x41)
		if xi.Op != x86asm.POP || xi.Args[0] != gpr(r) || rex != d.PopREX[j] {
			bad("pop %d: % x is not pop %v (rex %v)", j, raw, r, d.PopREX[j])
		}
		i++
	}
	if d.ErrorCode {
		if raw := b(insts[i]); !bytes.Equal(raw, []byte{0x48, 0x83, 0xc4, 0x08}) {
			bad("error code discard is % x", raw)
		}
		i++
	}
	if i != len(insts)-1 {
		bad("%d instructions, want %d", len(insts), i+1)
		return
	}
	raw := b(insts[i])
	if d.Bnd != (raw[0] == 0xf2) {
		bad("bnd prefix %v", d.Bnd)
	}
	if d.Bnd {
		raw = raw[1:]
	}
	tgt := int64(insts[i].RVA) + int64(insts[i].Len)
	ok := true
	switch d.Term {
	case TermRet:
		ok = bytes.Equal(raw, []byte{0xc3})
	case TermRetImm:
		ok = len(raw) == 3 && raw[0] == 0xc2 && binary.LittleEndian.Uint16(raw[1:]) == d.Imm
	case TermRepRet:
		ok = bytes.Equal(raw, []byte{0xf3, 0xc3})
	case TermJmpRel8:
		ok = len(raw) == 2 && raw[0] == 0xeb && uint32(tgt+int64(int8(raw[1]))) == d.Target
	case TermJmpRel32:
		ok = len(raw) == 5 && raw[0] == 0xe9 && uint32(tgt+int64(int32(binary.LittleEndian.Uint32(raw[1:])))) == d.Target
	case TermJmpRIP:
		if d.RexW {
			ok = raw[0] == 0x48
			raw = raw[1:]
		}
		ok = ok && len(raw) == 6 && raw[0] == 0xff && raw[1] == 0x25 && uint32(tgt+int64(int32(binary.LittleEndian.Uint32(raw[2:])))) == d.Target &&
			slices.Contains(img.Slots, d.Target)
	case TermJmpReg:
		ok = len(raw) == 3 && raw[0]&0xf8 == 0x48 && raw[1] == 0xff && raw[2]&0xf8 == 0xe0
	case TermJmpMem:
		ok = len(raw) >= 3 && raw[0]&0xf8 == 0x48 && raw[1] == 0xff && raw[2]&0x38 == 0x20 && raw[2]>>6 != 3
	case TermIretq:
		ok = bytes.Equal(raw, []byte{0x48, 0xcf})
	}
	if !ok {
		bad("terminator is not %v", d.Term)
	}
	switch d.TargetKind {
	case TargetSelf:
		ok = d.Target == f.Begin
	case TargetFunction:
		_, _, in := img.LookupFunctionEntry(img.Base + uint64(d.Target))
		g, ge, _ := img.Find(d.Target)
		ok = in && g != f && ge.Begin == d.Target && ge == &g.Entry
	case TargetThunk:
		_, _, in := img.LookupFunctionEntry(img.Base + uint64(d.Target))
		ok = !in
	}
	if !ok {
		bad("jump target %#x is not of kind %v", d.Target, d.TargetKind)
	}
}

// splitmix64 is the SplitMix64 output function, a bijection: distinct
// inputs give distinct values.
func splitmix64(x uint64) uint64 {
	z := x + 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// TestUnwindStates unwinds every instruction boundary of every function
// with package unwind, from a register file and stack built from the
// boundary's State, and checks that the caller's state comes back where
// State.Unwindable says it should.
func TestUnwindStates(t *testing.T) {
	checkUnwindStates(t, build(t, Config{Functions: testFunctions(t)}, 5), 5)
}

// checkUnwindStates unwinds every instruction boundary of img from the
// state its State describes, with random register values and entry stack
// pointers drawn from seed.
func checkUnwindStates(t *testing.T, img *Image, seed uint64) {
	t.Helper()
	const stackBase = 0x7ffe_0000_0000
	const stackSize = 2*MaxFrame + 2*MaxAlloca + 1<<16
	stack := make([]byte, stackSize)
	for i := 0; i < stackSize/8; i++ {
		binary.LittleEndian.PutUint64(stack[8*i:], splitmix64(uint64(i)))
	}
	var mem unwind.SplicedMemory
	mem.Add(img.Base, img.Bytes)
	mem.Add(stackBase, stack)
	u := unwind.Unwinder{Memory: &mem, Functions: img}
	rng := rand.New(rand.NewPCG(seed, seed))
	read := func(addr uint64) uint64 { return binary.LittleEndian.Uint64(stack[addr-stackBase:]) }

	checked, skipped := 0, 0
	for _, f := range img.Functions {
		for _, e := range f.Entries() {
			rf := e.RuntimeFunction()
			for _, in := range e.Insts {
				s := in.State
				entry := uint64(stackBase+MaxFrame+MaxAlloca) + 8*uint64(rng.IntN(4096)) + 8
				var ctx unwind.Context
				for r := range 16 {
					ctx.SetReg(unwindinfo.Register(r), rng.Uint64())
				}
				for x := range 16 {
					binary.LittleEndian.PutUint64(ctx.Xmm[x][:], rng.Uint64())
					binary.LittleEndian.PutUint64(ctx.Xmm[x][8:], rng.Uint64())
				}
				dyn := uint64(0)
				if s.Alloca {
					dyn = 16 * uint64(rng.IntN(MaxAlloca/16))
				}
				ctx.Rsp = entry - uint64(int64(s.SP)) - dyn
				fr := e.Info.FrameRegister
				if s.FrameSet {
					ctx.SetReg(fr, entry-uint64(int64(s.FP)))
				}
				want := ctx
				for _, sv := range s.Saved {
					addr := entry - uint64(int64(sv.Slot))
					if sv.XMM {
						var v [16]byte
						copy(v[:], stack[addr-stackBase:])
						want.Xmm[sv.Reg] = v
						if sv.Restored {
							ctx.Xmm[sv.Reg] = v
						}
					} else {
						want.SetReg(sv.Reg, read(addr))
						if sv.Restored {
							ctx.SetReg(sv.Reg, read(addr))
						}
					}
				}
				if f.MachineFrame {
					frame := entry
					if f.ErrorCode {
						frame += 8
					}
					want.Rip, want.Rsp = read(frame), read(frame+24)
				} else {
					want.Rip, want.Rsp = read(entry), entry+8
				}
				pc := img.Base + uint64(in.RVA)
				ctx.Rip = pc
				got := ctx
				_, err := u.VirtualUnwind(unwind.HandlerNone, img.Base, pc, &rf, &got, nil)
				if !s.Unwindable {
					skipped++
					continue
				}
				checked++
				var diffs []string
				if err != nil {
					diffs = append(diffs, err.Error())
				}
				for r := unwindinfo.Register(0); r < 16; r++ {
					if got.Reg(r) != want.Reg(r) {
						diffs = append(diffs, fmt.Sprintf("%v %#x, want %#x", r, got.Reg(r), want.Reg(r)))
					}
				}
				if got.Rip != want.Rip {
					diffs = append(diffs, fmt.Sprintf("rip %#x, want %#x", got.Rip, want.Rip))
				}
				for x := range 16 {
					if got.Xmm[x] != want.Xmm[x] {
						diffs = append(diffs, fmt.Sprintf("xmm%d %x, want %x", x, got.Xmm[x], want.Xmm[x]))
					}
				}
				if len(diffs) > 0 {
					t.Errorf("f%d %#x %q (%v, state %+v):\n\t%s\n%s", f.ID, in.RVA, in.Asm, in.Kind, s, strings.Join(diffs, "\n\t"), listing(f))
					if t.Failed() && checked > 50 {
						t.FailNow()
					}
				}
			}
		}
	}
	t.Logf("checked %d boundaries, %d not unwindable by design", checked, skipped)
}

// listing returns the disassembly of f, for failure messages.
func listing(f *Function) string {
	var sb strings.Builder
	for _, e := range f.Entries() {
		fmt.Fprintf(&sb, "  entry [%#x,%#x) info %+v\n", e.Begin, e.End, *e.Info)
		for _, in := range e.Insts {
			fmt.Fprintf(&sb, "    %#x  %-8v %s\n", in.RVA, in.Kind, in.Asm)
		}
	}
	return sb.String()
}

func BenchmarkBuild(b *testing.B) {
	for b.Loop() {
		Build(Config{Functions: 100}, rand.New(rand.NewPCG(1, 1)))
	}
}
