package verify

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/arch/x86/x86asm"

	"github.com/fntable/fntable/unwind"
	"github.com/fntable/fntable/unwindinfo"
)

// fnCheck is the check of one function table entry.
type fnCheck struct {
	c     *Checker
	code  []byte
	base  uint64
	fn    unwindinfo.RuntimeFunction // resolved entry
	begin uint64                     // base + fn.BeginAddress
	mem   stackMem
	uw    unwind.Unwinder

	info    *unwindinfo.Info
	chained bool
	primary unwindinfo.RuntimeFunction
	entry   state // state at the entry's first instruction
	body    state // state after the prolog
	mach    bool  // a machine frame is on the stack at E
	machErr bool  // with an error code

	dec    []x86asm.Inst
	idx    map[int]int // offset → index in dec
	endAt  map[int]int // end offset → start offset
	exits  []exit
	pend   []mismatch
	ninst  int
	probed map[int]bool // offsets compared

	problems []Problem
}

type exit struct {
	off, end int
	st       state
}

type mismatch struct {
	off      int
	inEpilog bool // the unwinder saw an epilog
	tearing  bool // the code has begun to take its frame down
	sig, msg string
}

func newFnCheck(c *Checker, code []byte, base uint64, fn unwindinfo.RuntimeFunction) *fnCheck {
	if len(code) > MaxCodeSize {
		code = code[:MaxCodeSize]
	}
	f := &fnCheck{c: c, code: code, base: base, fn: fn, idx: map[int]int{}, endAt: map[int]int{}, probed: map[int]bool{}}
	f.mem = stackMem{inner: c.Memory}
	f.uw = unwind.Unwinder{Memory: &f.mem, Functions: c.Functions}
	return f
}

func (f *fnCheck) problem(off int, kind Kind, format string, args ...any) {
	f.problems = append(f.problems, Problem{Function: f.begin, Offset: uint32(off), Kind: kind, Message: fmt.Sprintf(format, args...)})
}

// readInfo reads and decodes the UNWIND_INFO at rva.
func (f *fnCheck) readInfo(rva uint32) (*unwindinfo.Info, error) {
	if f.c.Memory == nil {
		return nil, fmt.Errorf("read unwind info at %#x: no memory", f.base+uint64(rva))
	}
	var h [unwindinfo.HeaderSize]byte
	addr := f.base + uint64(rva)
	if _, err := f.c.Memory.ReadMemory(h[:], addr); err != nil {
		return nil, fmt.Errorf("read unwind info at %#x: %w", addr, err)
	}
	hdr, err := unwindinfo.DecodeHeader(h[:])
	if err != nil {
		return nil, fmt.Errorf("decode unwind info at %#x: %w", addr, err)
	}
	b := make([]byte, hdr.Size())
	if _, err := f.c.Memory.ReadMemory(b, addr); err != nil {
		return nil, fmt.Errorf("read unwind info at %#x: %w", addr, err)
	}
	info, err := unwindinfo.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("decode unwind info at %#x: %w", addr, err)
	}
	return info, nil
}

// resolve follows an indirect entry.
func (f *fnCheck) resolve(fn unwindinfo.RuntimeFunction) (unwindinfo.RuntimeFunction, error) {
	for i := 0; fn.Indirect(); i++ {
		if i == unwindinfo.ChainLimit || f.c.Memory == nil {
			return fn, fmt.Errorf("resolve indirect entry at %#x: %w", f.base+uint64(fn.BeginAddress), unwind.ErrIndirectLoop)
		}
		var b [unwindinfo.RuntimeFunctionSize]byte
		addr := f.base + uint64(fn.UnwindData&^unwindinfo.RUNTIME_FUNCTION_INDIRECT)
		if _, err := f.c.Memory.ReadMemory(b[:], addr); err != nil {
			return fn, fmt.Errorf("resolve indirect entry at %#x: %w", addr, err)
		}
		fn, _ = unwindinfo.DecodeRuntimeFunction(b[:])
	}
	return fn, nil
}

// primaryOf follows the chain of fn to its primary entry.
func (f *fnCheck) primaryOf(fn unwindinfo.RuntimeFunction) (unwindinfo.RuntimeFunction, []*unwindinfo.Info, error) {
	var infos []*unwindinfo.Info
	for chain := 0; ; chain++ {
		if chain > unwindinfo.ChainLimit {
			return fn, infos, fmt.Errorf("chained unwind info at %#x: %w", f.base+uint64(fn.UnwindData), unwindinfo.ErrChainTooDeep)
		}
		info, err := f.readInfo(fn.UnwindData)
		if err != nil {
			return fn, infos, err
		}
		infos = append(infos, info)
		if info.Flags&unwindinfo.UNW_FLAG_CHAININFO == 0 {
			return fn, infos, nil
		}
		fn = info.Chained
	}
}

func (f *fnCheck) run() {
	f.begin = f.base + uint64(f.fn.BeginAddress)
	f.mem.code, f.mem.codeAddr = f.code, f.begin
	fn, err := f.resolve(f.fn)
	if err != nil {
		f.problem(0, KindUnwindInfo, "%v", err)
		return
	}
	f.fn = fn
	f.begin = f.base + uint64(f.fn.BeginAddress)
	f.mem.codeAddr = f.begin
	primary, infos, err := f.primaryOf(fn)
	if err != nil {
		kind := KindUnwindInfo
		if len(infos) > 0 {
			kind = KindChain
		}
		f.problem(0, kind, "%v", err)
		return
	}
	f.info, f.primary = infos[0], primary
	f.chained = len(infos) > 1
	// The state at the entry: the effect of the parents' codes, primary
	// first.
	f.entry.spOK = true
	for i := len(infos) - 1; i >= 1; i-- {
		f.applyCodes(&f.entry, infos[i], false)
	}
	// Codes at offset 0 describe no instruction: they always apply, and
	// state what is on the stack at the entry (a machine frame; GCC's
	// .cold parts restate the frame of the function they belong to).
	f.applyCodes(&f.entry, f.info, true)
	for _, c := range f.info.Codes {
		if c.Op == unwindinfo.UWOP_PUSH_MACHFRAME {
			f.mach, f.machErr = true, c.MachineFrameErrorCode()
		}
	}
	f.prolog()
	f.traverse()
	f.finish()
}

// applyCodes applies the prolog codes of a parent's unwind information to
// st, as executing its prolog would.
//
// With atEntry, only the codes at offset 0 are applied.
func (f *fnCheck) applyCodes(st *state, info *unwindinfo.Info, atEntry bool) {
	codes := info.PrologCodes()
	if atEntry {
		codes = slices.DeleteFunc(slices.Clone(codes), func(c unwindinfo.Code) bool { return c.Offset != 0 })
	}
	type pending struct {
		reg int
		xmm bool
		off int64
	}
	var saves []pending
	fr := int(info.FrameRegister)
	for i := len(codes) - 1; i >= 0; i-- {
		c := codes[i]
		switch c.Op {
		case unwindinfo.UWOP_PUSH_NONVOL:
			st.sp += 8
			if r := int(c.Register()); st.gpr[r].w == inReg {
				st.gpr[r] = save{saved, st.sp}
			}
		case unwindinfo.UWOP_ALLOC_SMALL, unwindinfo.UWOP_ALLOC_LARGE:
			st.sp += int64(c.AllocSize())
		case unwindinfo.UWOP_SET_FPREG:
			if fr != 0 {
				st.rel[fr] = rel{true, st.sp - 16*int64(info.FrameOffset)}
			}
		case unwindinfo.UWOP_SAVE_NONVOL, unwindinfo.UWOP_SAVE_NONVOL_FAR:
			saves = append(saves, pending{int(c.Register()), false, int64(c.StackOffset())})
		case unwindinfo.UWOP_SAVE_XMM128, unwindinfo.UWOP_SAVE_XMM128_FAR:
			saves = append(saves, pending{c.XMM(), true, int64(c.StackOffset())})
		case unwindinfo.UWOP_PUSH_MACHFRAME:
			f.mach, f.machErr = true, c.MachineFrameErrorCode()
		}
	}
	baseOff := st.sp
	if fr != 0 && st.rel[fr].ok {
		baseOff = st.rel[fr].off + 16*int64(info.FrameOffset)
	}
	for _, s := range saves {
		sv := save{saved, baseOff - s.off}
		if s.xmm {
			if s.reg < 16 && st.xmm[s.reg].w == inReg {
				st.xmm[s.reg] = sv
			}
		} else if st.gpr[s.reg].w == inReg {
			st.gpr[s.reg] = sv
		}
	}
}

// decode decodes the instruction at off, once.
func (f *fnCheck) decode(off int) (*x86asm.Inst, error) {
	if i, ok := f.idx[off]; ok {
		return &f.dec[i], nil
	}
	if off < 0 || off >= len(f.code) {
		return nil, fmt.Errorf("offset %#x outside the code", off)
	}
	in, err := x86asm.Decode(f.code[off:], 64)
	if err != nil {
		return nil, err
	}
	f.dec = append(f.dec, in)
	f.idx[off] = len(f.dec) - 1
	f.endAt[off+in.Len] = off
	return &f.dec[len(f.dec)-1], nil
}

func (f *fnCheck) asmAt(off int) string {
	in, err := f.decode(off)
	if err != nil {
		return "(undecodable)"
	}
	return asm(in, f.begin+uint64(off))
}

// prologInst is an instruction of the prolog and its unwind effect.
type prologInst struct {
	off, end int
	eff      effect
	used     bool
}

// prolog matches the unwind codes with the prolog instructions and
// computes the state of the body.
func (f *fnCheck) prolog() {
	info := f.info
	size := int(info.SizeOfProlog)
	st := f.entry
	var insts []prologInst
	off := 0
	for off < size && off < len(f.code) {
		in, err := f.decode(off)
		if err != nil {
			f.problem(off, KindInstruction, "prolog instruction at %#x cannot be decoded: %v", off, err)
			f.body = st
			return
		}
		eff := st.exec(in, true)
		insts = append(insts, prologInst{off: off, end: off + in.Len, eff: eff})
		off += in.Len
	}
	f.body = st
	if off != size {
		f.problem(0, KindPrologSize, "SizeOfProlog is %#x, but the prolog instructions end at %#x", size, off)
	}
	codes := info.PrologCodes()
	for i := 1; i < len(codes); i++ {
		if codes[i].Offset > codes[i-1].Offset {
			f.problem(int(codes[i].Offset), KindCodeOrder, "%s at %#x follows %s at %#x: codes must be in descending offset order",
				codeText(info, codes[i]), codes[i].Offset, codeText(info, codes[i-1]), codes[i-1].Offset)
		}
	}
	baseOff := st.sp
	if fr := int(info.FrameRegister); fr != 0 && st.rel[fr].ok {
		baseOff = st.rel[fr].off + 16*int64(info.FrameOffset)
	}
	for i := len(codes) - 1; i >= 0; i-- {
		c := codes[i]
		if c.Op == unwindinfo.UWOP_PUSH_MACHFRAME && c.Offset != 0 {
			f.problem(int(c.Offset), KindCodeOffset, "PUSH_MACHFRAME at %#x, but a machine frame is pushed before the first instruction (offset 0)", c.Offset)
			continue
		}
		if c.Offset == 0 {
			continue // applied to the entry state
		}
		if int(c.Offset) > size {
			f.problem(int(c.Offset), KindPrologSize, "%s at %#x lies past the end of the prolog (SizeOfProlog %#x)", codeText(info, c), c.Offset, size)
		}
		k := slices.IndexFunc(insts, func(p prologInst) bool { return p.end == int(c.Offset) })
		if k < 0 {
			f.problem(int(c.Offset), KindCodeOffset, "%s at %#x, but no prolog instruction ends there", codeText(info, c), c.Offset)
			continue
		}
		p := &insts[k]
		text := f.asmAt(p.off)
		switch {
		case p.used || p.eff.kind == effNone:
			f.problem(p.off, KindExtraCode, "%s at %#x, but the instruction is %s, which needs no other code", codeText(info, c), c.Offset, text)
		case !f.matches(c, p.eff, baseOff):
			f.problem(p.off, KindCodeMismatch, "%s at %#x, but the instruction is %s", codeText(info, c), c.Offset, text)
			p.used = true
		default:
			p.used = true
		}
	}
	for _, p := range insts {
		if p.used || p.eff.kind == effNone {
			continue
		}
		f.problem(p.off, KindMissingCode, "no unwind code describes %s (ending at %#x)", f.asmAt(p.off), p.end)
	}
}

// matches reports whether code c describes an instruction with effect e;
// baseOff is E minus the frame base of the save codes.
func (f *fnCheck) matches(c unwindinfo.Code, e effect, baseOff int64) bool {
	switch c.Op {
	case unwindinfo.UWOP_PUSH_NONVOL:
		return e.kind == effPush && int(c.Register()) == e.reg
	case unwindinfo.UWOP_ALLOC_SMALL, unwindinfo.UWOP_ALLOC_LARGE:
		return e.kind == effAlloc && int64(c.AllocSize()) == e.size
	case unwindinfo.UWOP_SET_FPREG:
		return e.kind == effSetFP && int(f.info.FrameRegister) == e.reg && 16*int64(f.info.FrameOffset) == e.disp
	case unwindinfo.UWOP_SAVE_NONVOL, unwindinfo.UWOP_SAVE_NONVOL_FAR:
		return e.kind == effSave && int(c.Register()) == e.reg && int64(c.StackOffset()) == baseOff-e.slot
	case unwindinfo.UWOP_SAVE_XMM128, unwindinfo.UWOP_SAVE_XMM128_FAR:
		return e.kind == effSaveXMM && c.XMM() == e.reg && int64(c.StackOffset()) == baseOff-e.slot
	}
	return false
}

// codeText describes an unwind code: "SAVE_NONVOL rbx at 0x30".
func codeText(info *unwindinfo.Info, c unwindinfo.Code) string {
	switch c.Op {
	case unwindinfo.UWOP_PUSH_NONVOL:
		return "PUSH_NONVOL " + c.Register().String()
	case unwindinfo.UWOP_ALLOC_SMALL, unwindinfo.UWOP_ALLOC_LARGE:
		return fmt.Sprintf("%s %#x", c.Op.Name(), c.AllocSize())
	case unwindinfo.UWOP_SET_FPREG:
		return fmt.Sprintf("SET_FPREG %s+%#x", info.FrameRegister, 16*int(info.FrameOffset))
	case unwindinfo.UWOP_SAVE_NONVOL, unwindinfo.UWOP_SAVE_NONVOL_FAR:
		return fmt.Sprintf("%s %s at %#x", c.Op.Name(), c.Register(), c.StackOffset())
	case unwindinfo.UWOP_SAVE_XMM128, unwindinfo.UWOP_SAVE_XMM128_FAR:
		return fmt.Sprintf("%s xmm%d at %#x", c.Op.Name(), c.XMM(), c.StackOffset())
	}
	return c.Op.Name()
}

// traverse follows the control flow from the entry, then reaches the
// code no branch reaches with the state of the body, comparing the
// unwinder with the symbolic state at every boundary.
func (f *fnCheck) traverse() {
	visited := make([]bool, len(f.code))
	covered := make([]bool, len(f.code))
	type work struct {
		off int
		st  state
	}
	var stack []work
	walk := func(off int, st state) {
		stack = append(stack[:0], work{off, st})
		for len(stack) > 0 {
			w := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			off, st := w.off, w.st
			for off >= 0 && off < len(f.code) && !visited[off] {
				visited[off] = true
				in, err := f.decode(off)
				if err != nil {
					break
				}
				for i := off; i < off+in.Len && i < len(covered); i++ {
					covered[i] = true
				}
				f.ninst++
				f.compare(off, &st, in)
				pre := st
				st.exec(in, off < int(f.info.SizeOfProlog))
				next := off + in.Len
				switch {
				case in.Op == x86asm.RET:
					f.exits = append(f.exits, exit{off, next, pre})
					next = -1
				case in.Op == x86asm.IRETQ || in.Op == x86asm.IRETD || in.Op == x86asm.IRET ||
					in.Op == x86asm.UD2 || in.Op == x86asm.INT || in.Op == x86asm.HLT:
					next = -1
				case in.Op == x86asm.JMP:
					if r, ok := in.Args[0].(x86asm.Rel); ok {
						t := next + int(r)
						switch {
						case t == 0 && !f.chained:
							f.exits = append(f.exits, exit{off, next, pre}) // recursive tail call
							next = -1
						case t >= 0 && t < len(f.code) && t < int(f.fn.EndAddress-f.fn.BeginAddress):
							next = t
						default:
							if !f.sameFunction(f.begin + uint64(int64(t))) {
								f.exits = append(f.exits, exit{off, next, pre})
							}
							next = -1
						}
					} else {
						if tailJump(in) {
							f.exits = append(f.exits, exit{off, next, pre})
						}
						next = -1 // a jump table: its targets are reached linearly
					}
				case isJcc(in.Op):
					if r, ok := in.Args[0].(x86asm.Rel); ok {
						if t := next + int(r); t >= 0 && t < len(f.code) {
							stack = append(stack, work{t, st})
						}
					}
				}
				off = next
			}
		}
	}
	walk(0, f.entry)
	for off := 0; off < len(f.code); off++ {
		if covered[off] {
			continue
		}
		if _, err := f.decode(off); err == nil {
			walk(off, f.body)
		}
	}
}

// tailJump reports whether an indirect jmp is one the unwinder takes for a
// tail call: jmp [rip+disp32] or any REX.W jmp r/m64.
func tailJump(in *x86asm.Inst) bool {
	if m, ok := in.Args[0].(x86asm.Mem); ok && m.Base == x86asm.RIP && m.Index == 0 {
		return true
	}
	return in.Prefix[0]&0xff == 0x48 || slices.ContainsFunc(in.Prefix[:], func(p x86asm.Prefix) bool { return p&0xf0 == x86asm.PrefixREX && p&x86asm.PrefixREXW != 0 })
}

// sameFunction reports whether addr lies in another entry of this
// function, not at its primary start ([clr] SameFunction).
func (f *fnCheck) sameFunction(addr uint64) bool {
	if f.c.Functions == nil {
		return false
	}
	tfn, tbase, ok := f.c.Functions.LookupFunctionEntry(addr)
	if !ok || tfn == nil || tbase != f.base {
		return false
	}
	tp, _, err := f.primaryOf(*tfn)
	if err != nil {
		return false
	}
	return tp.BeginAddress == f.primary.BeginAddress && addr != f.base+uint64(tp.BeginAddress)
}

// compare runs the unwinder at the boundary before in and compares its
// result with the state st.
func (f *fnCheck) compare(off int, st *state, in *x86asm.Inst) {
	fr := int(f.info.FrameRegister)
	if !st.spOK && (fr == 0 || !st.rel[fr].ok || off < int(f.info.SizeOfProlog)) {
		return // the unwinder's frame base depends on the unknown rsp
	}
	f.probed[off] = true
	var ctx unwind.Context
	ctx.ContextFlags = unwind.CONTEXT_FULL
	rsp := stackE - uint64(st.sp)
	if !st.spOK {
		rsp = stackE - uint64(st.rel[fr].off) - 0x10000
	}
	for r := 0; r < 16; r++ {
		var v uint64
		s := st.gpr[r]
		switch {
		case r == 4:
			v = rsp
		case st.rel[r].ok:
			v = stackE - uint64(st.rel[r].off)
		case s.w == saved:
			v = junkVal(r)
		case s.w == reloaded:
			v = marker(stackE - uint64(s.slot))
		default:
			v = callerVal(r)
		}
		ctx.SetReg(unwindinfo.Register(r), v)
	}
	for x := 0; x < 16; x++ {
		ctx.Xmm[x] = f.xmmIn(st.xmm[x], x)
	}
	pc := f.begin + uint64(off)
	ctx.Rip = pc
	fn := f.fn
	var ptrs unwind.ContextPointers
	res, err := f.uw.VirtualUnwind(unwind.HandlerNone, f.base, pc, &fn, &ctx, &ptrs)
	text := asm(in, pc)
	if err != nil {
		f.pend = append(f.pend, mismatch{off: off, sig: "error: " + err.Error(),
			msg: fmt.Sprintf("at %s: the unwinder fails: %v", text, err)})
		return
	}
	// What a correct unwind gives.
	wantRIP, wantRSP := marker(stackE), stackE+8
	if f.mach {
		ra := stackE
		if f.machErr {
			ra += 8
		}
		wantRIP, wantRSP = marker(ra), marker(ra+24)
	}
	cfa := func(v uint64) string { return fmt.Sprintf("rsp%+#x", int64(v-rsp)) }
	var got, want, sig []string
	if ctx.Rsp != wantRSP {
		got = append(got, "CFA="+cfa(ctx.Rsp))
		want = append(want, "CFA="+cfa(wantRSP))
		sig = append(sig, fmt.Sprintf("cfa %d", int64(ctx.Rsp-wantRSP)))
	}
	if ctx.Rip != wantRIP {
		got = append(got, "return address "+f.where(ctx.Rip, -1))
		want = append(want, "return address "+f.where(wantRIP, -1))
		sig = append(sig, "rip "+f.where(ctx.Rip, -1))
	}
	for r := 0; r < 16; r++ {
		if !nonvolatile(r) {
			continue
		}
		s := st.gpr[r]
		w := callerVal(r)
		if s.w != inReg {
			w = marker(stackE - uint64(s.slot))
		}
		if g := ctx.Reg(unwindinfo.Register(r)); g != w {
			name := unwindinfo.Register(r).String()
			got = append(got, name+" "+f.where(g, r))
			want = append(want, name+" "+f.where(w, r))
			sig = append(sig, name+" "+f.where(g, r)+" "+f.where(w, r))
		}
	}
	for x := 6; x < 16; x++ {
		s := st.xmm[x]
		w := callerXMM(x)
		if s.w != inReg {
			w = stackXMM(stackE - uint64(s.slot))
		}
		if g := ctx.Xmm[x]; g != w {
			name := fmt.Sprintf("xmm%d", x)
			got = append(got, name+" "+f.whereXMM(g, x))
			want = append(want, name+" "+f.whereXMM(w, x))
			sig = append(sig, name+" "+f.whereXMM(g, x)+" "+f.whereXMM(w, x))
		}
	}
	if len(got) == 0 {
		return
	}
	f.pend = append(f.pend, mismatch{off: off, inEpilog: res.InEpilog, tearing: f.tearing(st), sig: strings.Join(sig, "; "),
		msg: fmt.Sprintf("at %s: the unwinder gives %s; the code gives %s", text, strings.Join(got, ", "), strings.Join(want, ", "))})
}

// tearing reports whether st is part way through taking the frame down:
// the stack pointer above the body's, or a register the body keeps saved
// popped.
func (f *fnCheck) tearing(st *state) bool {
	if st.spOK && f.body.spOK && st.sp < f.body.sp {
		return true
	}
	for r := range st.gpr {
		if f.body.gpr[r].w == saved && st.gpr[r].w == inReg {
			return true
		}
	}
	return false
}

// where describes a value the unwinder returned for register r (-1: the
// return address), relative to the CFA E+8.
func (f *fnCheck) where(v uint64, r int) string {
	if a := v ^ marker(0); a >= stackE-stackBelow && a < stackE+stackAbove {
		return fmt.Sprintf("from [CFA%+#x]", int64(a-(stackE+8)))
	}
	if r >= 0 && v == callerVal(r) {
		return "from its register (not saved)"
	}
	if r >= 0 && v == junkVal(r) {
		return "from its register (saved and changed)"
	}
	if v >= stackE-stackBelow && v < stackE+stackAbove {
		return fmt.Sprintf("= CFA%+#x", int64(v-(stackE+8)))
	}
	return fmt.Sprintf("= %#x", v)
}

func (f *fnCheck) whereXMM(v [16]byte, x int) string {
	if v == callerXMM(x) {
		return "from its register (not saved)"
	}
	if v == junkXMM(x) {
		return "from its register (saved and changed)"
	}
	a := binary.LittleEndian.Uint64(v[:]) ^ marker(0)
	if a >= stackE-stackBelow && a < stackE+stackAbove && stackXMM(a) == v {
		return fmt.Sprintf("from [CFA%+#x]", int64(a-(stackE+8)))
	}
	return fmt.Sprintf("= %x", v)
}

func (f *fnCheck) xmmIn(s save, x int) [16]byte {
	switch s.w {
	case saved:
		return junkXMM(x)
	case reloaded:
		return stackXMM(stackE - uint64(s.slot))
	}
	return callerXMM(x)
}

func callerXMM(x int) (v [16]byte) {
	binary.LittleEndian.PutUint64(v[:], callerVal(16+x))
	binary.LittleEndian.PutUint64(v[8:], callerVal(16+x))
	return v
}

func junkXMM(x int) (v [16]byte) {
	binary.LittleEndian.PutUint64(v[:], junkVal(16+x))
	binary.LittleEndian.PutUint64(v[8:], junkVal(16+x))
	return v
}

// stackXMM returns the 16 bytes of the synthetic stack at a.
func stackXMM(a uint64) (v [16]byte) {
	stackBytes(v[:], a)
	return v
}

func stackBytes(p []byte, addr uint64) {
	for i := range p {
		a := addr + uint64(i)
		p[i] = byte(marker(a&^7) >> (8 * (a & 7)))
	}
}

// finish checks the exits and version 2 epilog codes and turns the
// mismatches into problems.
func (f *fnCheck) finish() {
	type region struct{ start, pops, end int }
	var regions []region
	for _, x := range f.exits {
		// The epilog: pops before the terminator, and an add or lea rsp
		// before them.
		pops := x.off
		for {
			p, ok := f.endAt[pops]
			if !ok {
				break
			}
			in, _ := f.decode(p)
			if r, w, ok := regArg(in.Args[0]); in.Op != x86asm.POP || !ok || w != 8 || r == 4 {
				break
			}
			pops = p
		}
		start := pops
		if p, ok := f.endAt[pops]; ok {
			in, _ := f.decode(p)
			if r, w, ok := regArg(in.Args[0]); ok && r == 4 && w == 8 && (in.Op == x86asm.ADD || in.Op == x86asm.LEA) {
				start = p
			}
		}
		regions = append(regions, region{start, pops, x.end})
		st := x.st
		text := f.asmAt(x.off)
		if st.spOK && st.sp != 0 && !f.mach {
			if in, _ := f.decode(x.off); in != nil && in.Op == x86asm.JMP {
				f.problem(x.off, KindEpilogRestore, "%s leaves the function, which the unwinder takes for a tail call, with rsp at CFA%+#x, not at the return address (CFA-0x8)", text, -st.sp-8)
			} else {
				f.problem(x.off, KindEpilogRestore, "%s leaves rsp at CFA%+#x, not at the return address (CFA-0x8)", text, -st.sp-8)
			}
		}
		for r := 0; r < 16; r++ {
			if st.gpr[r].w == saved {
				f.problem(x.off, KindEpilogRestore, "%s leaves %s unrestored (saved at CFA%+#x)", text, unwindinfo.Register(r), -st.gpr[r].slot-8)
			}
			if st.xmm[r].w == saved {
				f.problem(x.off, KindEpilogRestore, "%s leaves xmm%d unrestored (saved at CFA%+#x)", text, r, -st.xmm[r].slot-8)
			}
		}
	}
	// Version 2 epilog codes must each describe the pops and terminator
	// of an exit.
	if ep, ok := f.info.Epilogs(); ok {
		size := int(f.fn.EndAddress - f.fn.BeginAddress)
		var starts []int
		if ep.AtEnd {
			starts = append(starts, size-int(ep.Length))
		}
		for _, o := range ep.Offsets {
			starts = append(starts, size-int(o))
		}
		for _, s := range starts {
			ok := slices.ContainsFunc(regions, func(r region) bool { return r.pops == s && r.end-r.pops == int(ep.Length) })
			if !ok {
				what := "outside the function"
				if s >= 0 && s < len(f.code) {
					what = "the instruction there is " + f.asmAt(s)
				}
				f.problem(max(s, 0), KindV2Epilog, "UWOP_EPILOG describes an epilog of %#x bytes at %#x, but no epilog (pops and return) starts there: %s", ep.Length, s, what)
			}
		}
	}
	// Mismatches: one problem per distinct disagreement.
	inRegion := func(off int) bool {
		return slices.ContainsFunc(regions, func(r region) bool { return off >= r.start && off < r.end })
	}
	type agg struct {
		first int
		n     int
	}
	seen := map[string]*agg{}
	var order []string
	for i, m := range f.pend {
		kind := KindUnwindMismatch
		if !m.inEpilog && (m.tearing || inRegion(m.off)) {
			kind = KindEpilog
		}
		key := string(kind) + "|" + m.sig
		if a, ok := seen[key]; ok {
			a.n++
			continue
		}
		seen[key] = &agg{first: i, n: 1}
		order = append(order, key)
	}
	for _, key := range order {
		a := seen[key]
		m := f.pend[a.first]
		kind := Kind(key[:strings.IndexByte(key, '|')])
		msg := m.msg
		if kind == KindEpilog {
			msg = "not an epilog the unwinder recognizes: " + msg
		}
		if a.n > 1 {
			msg += fmt.Sprintf(" (and at %d more boundaries)", a.n-1)
		}
		f.problem(m.off, kind, "%s", msg)
	}
}

// stackMem is the memory the unwinder reads: the code being checked, the
// synthetic stack, and the caller's memory for everything else.
type stackMem struct {
	inner    unwind.Memory
	code     []byte
	codeAddr uint64
}

func (m *stackMem) ReadMemory(p []byte, addr uint64) (int, error) {
	end := addr + uint64(len(p))
	if addr >= stackE-stackBelow && end <= stackE+stackAbove && end >= addr {
		stackBytes(p, addr)
		return len(p), nil
	}
	if addr >= m.codeAddr && addr < m.codeAddr+uint64(len(m.code)) {
		n := copy(p, m.code[addr-m.codeAddr:])
		if n == len(p) {
			return n, nil
		}
		if m.inner == nil {
			return n, &unwind.UnmappedError{Addr: addr + uint64(n)}
		}
		k, err := m.inner.ReadMemory(p[n:], addr+uint64(n))
		return n + k, err
	}
	if m.inner == nil {
		return 0, &unwind.UnmappedError{Addr: addr}
	}
	return m.inner.ReadMemory(p, addr)
}

var _ unwind.Memory = (*stackMem)(nil)
