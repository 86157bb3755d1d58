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

	flows *flows // nil outside a table check

	allApply int                // offsets from here on are past the prolog and every code of the entry
	parents  []level            // the chained parents
	probes   map[probeKey]probe // unwindAt's results where sameEverywhere

	info    *unwindinfo.Info
	chained bool
	primary unwindinfo.RuntimeFunction
	entry   state // state at the entry's first instruction
	body    state // state after the prolog
	mach    bool  // a machine frame is on the stack at E
	machErr bool  // with an error code

	endAt []int32 // end offset → 1 + start offset of an instruction decoded there; 0: none
	exits []exit
	pend  []mismatch
	ninst int

	// Buffers of the traversal, kept for the next entry of a table.
	seen  []uint8 // per offset: visitedOff, coveredOff, dataOff
	stack []work
	insts []prologInst

	problems []Problem
}

type exit struct {
	off, end int
	st       state
	kind     exitKind
}

// exitKind is how control leaves the function at an exit.
type exitKind uint8

const (
	exitReturn   exitKind = iota // ret
	exitJump                     // a jump the unwinder takes for a tail call
	exitUntagged                 // an indirect jmp without REX.W, with the frame taken down
)

type mismatch struct {
	off      int
	inEpilog bool // the unwinder saw an epilog
	tearing  bool // the code has begun to take its frame down
	sig, msg string
}

// work is a boundary the traversal has yet to visit, with its state.
type work struct {
	off int
	st  state
}

// Flags of fnCheck.seen.
const (
	visitedOff uint8 = 1 << iota // the traversal reached this offset
	coveredOff                   // an instruction reached covers this byte
	dataOff                      // a jump table holds this byte
)

// reset makes f the check of another entry, keeping its buffers.
func (f *fnCheck) reset(c *Checker, code []byte, base uint64, fn unwindinfo.RuntimeFunction) {
	if len(code) > MaxCodeSize {
		code = code[:MaxCodeSize]
	}
	clear(f.probes)
	*f = fnCheck{
		c: c, code: code, base: base, fn: fn, flows: f.flows, probes: f.probes,
		parents: f.parents[:0], exits: f.exits[:0], pend: f.pend[:0], problems: f.problems[:0],
		endAt: f.endAt[:0], seen: f.seen[:0], stack: f.stack[:0], insts: f.insts[:0],
	}
	f.mem = stackMem{inner: c.Memory}
	f.uw = unwind.Unwinder{Memory: &f.mem, Functions: c.Functions}
}

// grow returns b resized to n zero elements, reusing its array if it can.
func grow[T any](b []T, n int) []T {
	if cap(b) < n {
		return make([]T, n)
	}
	b = b[:n]
	clear(b)
	return b
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
	if f.c.Memory != nil { // without it, readInfo below reports the problem
		fn, err := unwind.ResolveIndirect(f.c.Memory, f.base, f.fn)
		if err != nil {
			f.problem(0, KindUnwindInfo, "%v", err)
			return
		}
		f.fn = fn
	}
	f.begin = f.base + uint64(f.fn.BeginAddress)
	f.mem.codeAddr = f.begin
	primary, infos, err := f.primaryOf(f.fn)
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
	f.allApply = int(f.info.SizeOfProlog)
	for _, c := range f.info.Codes {
		f.allApply = max(f.allApply, int(c.Offset))
	}
	for i := 1; i < len(infos); i++ {
		l := level{begin: infos[i-1].Chained.BeginAddress}
		for _, c := range infos[i].Codes {
			l.maxOffset = max(l.maxOffset, uint32(c.Offset))
		}
		f.parents = append(f.parents, l)
	}
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
	if f.chained && f.flows != nil {
		if fl, ok := f.flows.take(f.begin); ok {
			fl.merge(&f.entry)
		}
	}
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

// decode decodes the instruction at off and records where it ends.
// Instructions are not kept: decoding again costs less than keeping them.
func (f *fnCheck) decode(off int) (x86asm.Inst, error) {
	if off < 0 || off >= len(f.code) {
		return x86asm.Inst{}, fmt.Errorf("offset %#x outside the code", off)
	}
	if len(f.endAt) == 0 {
		f.endAt = grow(f.endAt, len(f.code)+1)
	}
	in, err := decodeInst(f.code[off:])
	if err != nil {
		return x86asm.Inst{}, err
	}
	f.endAt[off+in.Len] = int32(off + 1)
	return in, nil
}

// decodeInst decodes one instruction. x86asm (golang.org/x/arch v0.32)
// reads a ModRM byte after VZEROUPPER and VZEROALL, which have none (Intel
// SDM Vol. 2C, "VZEROUPPER": VEX.128.0F.WIG 77); LLVM puts vzeroupper in
// epilogs, so a wrong length would swallow the ret after it.
func decodeInst(b []byte) (x86asm.Inst, error) {
	n := 0
	switch {
	case len(b) >= 3 && b[0] == 0xc5 && b[1]&0x7b == 0x78 && b[2] == 0x77: // VEX2: vvvv=1111, pp=00
		n = 3
	case len(b) >= 4 && b[0] == 0xc4 && b[1]&0x1f == 0x01 && b[2]&0x7b == 0x78 && b[3] == 0x77: // VEX3: map 0F
		n = 4
	}
	if n > 0 {
		op := x86asm.VZEROUPPER
		if b[n-2]&0x04 != 0 { // VEX.L
			op = x86asm.VZEROALL
		}
		return x86asm.Inst{Op: op, Len: n, Mode: 64}, nil
	}
	return x86asm.Decode(b, 64)
}

// startOf returns the start of an instruction decoded so far that ends at
// end.
func (f *fnCheck) startOf(end int) (int, bool) {
	if end < 0 || end >= len(f.endAt) || f.endAt[end] == 0 {
		return 0, false
	}
	return int(f.endAt[end]) - 1, true
}

func (f *fnCheck) asmAt(off int) string {
	in, err := f.decode(off)
	if err != nil {
		return "(undecodable)"
	}
	return asm(&in, f.begin+uint64(off))
}

// prologInst is an instruction of the prolog, its unwind effect, and the
// stack pointer and frame register after it.
type prologInst struct {
	off, end int
	eff      effect
	used     bool
	spOK     bool
	sp       int64  // E − RSP after the instruction
	fp       rel    // the header's frame register after the instruction
	succ     [2]int // offsets control goes to next; -1: none
	onPath   bool   // on a path from the entry to the end of the prolog
}

// walkProlog decodes the instructions of the prolog range
// [0, SizeOfProlog) along their control flow from the entry, sets f.body
// to the state at the end of the prolog, and returns, in offset order,
// the instructions on paths from the entry to that end. The range may
// hold code that leaves the function: MSVC defers saves past an early
// return (test, jcc, add rsp, pops, ret) and counts it in SizeOfProlog;
// such an epilog is not part of the prolog.
func (f *fnCheck) walkProlog() []prologInst {
	size := min(int(f.info.SizeOfProlog), len(f.code))
	fr := int(f.info.FrameRegister)
	insts := f.insts[:0]
	var at [256]int16 // offset → 1 + index in insts
	type item struct {
		off int
		st  state
	}
	work := []item{{0, f.entry}}
	f.body = f.entry
	other := f.entry
	ended, beyond, bad := false, false, false
	for len(work) > 0 {
		it := work[len(work)-1]
		work = work[:len(work)-1]
		off, st := it.off, it.st
		for off >= 0 && off < size && at[off] == 0 {
			in, err := f.decode(off)
			if err != nil {
				if !bad {
					f.problem(off, KindInstruction, "prolog instruction at %#x cannot be decoded: %v", off, err)
				}
				bad = true
				break
			}
			eff := st.exec(&in, true)
			if eff.kind == effSetFP && (fr == 0 || eff.reg != fr) {
				eff = effect{} // a copy of rsp to another register, as a base for stores
			}
			p := prologInst{off: off, end: off + in.Len, eff: eff, spOK: st.spOK, sp: st.sp, fp: st.rel[fr], succ: [2]int{-1, -1}}
			next := p.end
			switch {
			case in.Op == x86asm.RET || in.Op == x86asm.IRETQ || in.Op == x86asm.UD2 || in.Op == x86asm.INT || in.Op == x86asm.HLT:
				next = -1
			case in.Op == x86asm.JMP:
				next = -1
				if r, ok := in.Args[0].(x86asm.Rel); ok {
					if t := p.end + int(r); t > 0 && t < len(f.code) {
						next = t
					}
				}
			case isJcc(in.Op):
				if r, ok := in.Args[0].(x86asm.Rel); ok {
					if t := p.end + int(r); t > 0 && t < len(f.code) {
						p.succ[1] = t
						if t < size {
							work = append(work, item{t, st})
						} else if !ended && !beyond {
							other, beyond = st, true
						}
					}
				}
			}
			p.succ[0] = next
			insts = append(insts, p)
			at[off] = int16(len(insts))
			switch {
			case next == size && !ended:
				f.body, ended = st, true
			case next > size && !ended && !beyond:
				other, beyond = st, true
			}
			off = next
		}
		if !ended && !beyond && !bad {
			other = st
		}
	}
	if !ended {
		// No path reaches the end of the prolog exactly: the state where
		// a path leaves the prolog's range, else where the walk stopped.
		f.body = other
	}
	// The instructions from which the end of the prolog is reached.
	for changed := true; changed; {
		changed = false
		for i := range insts {
			p := &insts[i]
			if p.onPath {
				continue
			}
			for _, t := range p.succ {
				if t >= size || t >= 0 && at[t] > 0 && insts[at[t]-1].onPath {
					p.onPath, changed = true, true
					break
				}
			}
		}
	}
	insts = slices.DeleteFunc(insts, func(p prologInst) bool { return !p.onPath })
	slices.SortFunc(insts, func(a, b prologInst) int { return a.off - b.off })
	if full := int(f.info.SizeOfProlog); full > 0 && !bad && !slices.ContainsFunc(insts, func(p prologInst) bool { return p.end == full }) {
		end := 0
		if i := slices.IndexFunc(insts, func(p prologInst) bool { return p.off < size && p.end > size }); i >= 0 {
			end = insts[i].end
		} else if len(insts) > 0 {
			end = insts[len(insts)-1].end
		}
		f.problem(0, KindPrologSize, "SizeOfProlog is %#x, but the prolog instructions end at %#x", full, end)
	}
	return insts
}

// prolog matches the unwind codes with the prolog instructions and
// computes the state of the body.
//
// A push or an allocation must end exactly at its code's offset: the
// unwinder undoes it from there on. A save (SAVE_NONVOL, SAVE_XMM128)
// may come before its code: until the register changes, the register and
// the slot both hold the caller's value, so the code is needed only from
// then on (MSVC saves to the caller's home space before its pushes and
// puts the code at the end of the prolog). SET_FPREG states that from its
// offset on, RSP = frame register − 16*FrameOffset; the instruction that
// sets the register may come before it (MinGW's GCC sets rbp before its
// pushes and puts the code after the allocation). Whether the register
// keeps its value until the code applies is checked at every boundary.
func (f *fnCheck) prolog() {
	info := f.info
	size := int(info.SizeOfProlog)
	fr := int(info.FrameRegister)
	insts := f.walkProlog()
	defer func() { f.insts = insts[:0] }()
	st := f.body
	codes := info.PrologCodes()
	for i := 1; i < len(codes); i++ {
		if codes[i].Offset > codes[i-1].Offset {
			f.problem(int(codes[i].Offset), KindCodeOrder, "%s at %#x follows %s at %#x: codes must be in descending offset order",
				codeText(info, codes[i]), codes[i].Offset, codeText(info, codes[i-1]), codes[i-1].Offset)
		}
	}
	baseOff := st.sp
	if fr != 0 && st.rel[fr].ok {
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
		at := slices.IndexFunc(insts, func(p prologInst) bool { return p.end == int(c.Offset) })
		if at < 0 {
			f.problem(int(c.Offset), KindCodeOffset, "%s at %#x, but no prolog instruction ends there", codeText(info, c), c.Offset)
			continue
		}
		switch c.Op {
		case unwindinfo.UWOP_SAVE_NONVOL, unwindinfo.UWOP_SAVE_NONVOL_FAR, unwindinfo.UWOP_SAVE_XMM128, unwindinfo.UWOP_SAVE_XMM128_FAR:
			f.matchSave(c, insts[:at+1], baseOff)
		case unwindinfo.UWOP_SET_FPREG:
			f.matchSetFP(c, insts[:at+1])
		default:
			p := &insts[at]
			switch {
			case p.used || p.eff.kind == effNone:
				f.problem(p.off, KindExtraCode, "%s at %#x, but the instruction is %s, which needs no other code", codeText(info, c), c.Offset, f.asmAt(p.off))
			case !f.matches(c, p.eff):
				f.problem(p.off, KindCodeMismatch, "%s at %#x, but the instruction is %s", codeText(info, c), c.Offset, f.asmAt(p.off))
				p.used = true
			default:
				p.used = true
			}
		}
	}
	for _, p := range insts {
		if p.used || p.eff.kind == effNone {
			continue
		}
		f.problem(p.off, KindMissingCode, "no unwind code describes %s (ending at %#x)", f.asmAt(p.off), p.end)
	}
}

// matchSave matches a save code with the last save of its register to
// its slot among insts, the prolog instructions up to the code's offset;
// baseOff is E minus the frame base of the save codes.
func (f *fnCheck) matchSave(c unwindinfo.Code, insts []prologInst, baseOff int64) {
	xmm := c.Op == unwindinfo.UWOP_SAVE_XMM128 || c.Op == unwindinfo.UWOP_SAVE_XMM128_FAR
	kind, reg := effSave, int(c.Register())
	if xmm {
		kind, reg = effSaveXMM, c.XMM()
	}
	other := -1 // the last save of the register to another slot
	for k := len(insts) - 1; k >= 0; k-- {
		p := &insts[k]
		if p.used || p.eff.kind != kind || p.eff.reg != reg {
			continue
		}
		if int64(c.StackOffset()) == baseOff-p.eff.slot {
			p.used = true
			return
		}
		if other < 0 {
			other = k
		}
	}
	if other >= 0 {
		p := &insts[other]
		f.problem(p.off, KindCodeMismatch, "%s at %#x, but the instruction is %s (at %#x from the frame base)",
			codeText(f.info, c), c.Offset, f.asmAt(p.off), baseOff-p.eff.slot)
		p.used = true
		return
	}
	name := unwindinfo.Register(reg).String()
	if xmm {
		name = fmt.Sprintf("xmm%d", reg)
	}
	last := insts[len(insts)-1]
	f.problem(last.off, KindExtraCode, "%s at %#x, but no prolog instruction up to there saves %s", codeText(f.info, c), c.Offset, name)
}

// matchSetFP matches SET_FPREG with the last instruction among insts (the
// prolog up to the code's offset) that sets the frame register from rsp,
// and checks that at the code's offset RSP = frame register −
// 16*FrameOffset.
func (f *fnCheck) matchSetFP(c unwindinfo.Code, insts []prologInst) {
	fr := f.info.FrameRegister
	want := 16 * int64(f.info.FrameOffset)
	last := insts[len(insts)-1]
	for k := len(insts) - 1; k >= 0; k-- {
		p := &insts[k]
		if p.used || p.eff.kind != effSetFP {
			continue
		}
		p.used = true
		if !last.spOK || !last.fp.ok || last.sp-last.fp.off != want {
			got := "not rsp plus a constant"
			if last.spOK && last.fp.ok {
				got = fmt.Sprintf("rsp%+#x", last.sp-last.fp.off)
			}
			f.problem(p.off, KindCodeMismatch, "%s at %#x, but there %s is %s (set by %s)", codeText(f.info, c), c.Offset, fr, got, f.asmAt(p.off))
		}
		return
	}
	f.problem(last.off, KindExtraCode, "%s at %#x, but no prolog instruction up to there sets %s from rsp", codeText(f.info, c), c.Offset, fr)
}

// matches reports whether a push or allocation code c describes an
// instruction with effect e.
func (f *fnCheck) matches(c unwindinfo.Code, e effect) bool {
	switch c.Op {
	case unwindinfo.UWOP_PUSH_NONVOL:
		return e.kind == effPush && int(c.Register()) == e.reg
	case unwindinfo.UWOP_ALLOC_SMALL, unwindinfo.UWOP_ALLOC_LARGE:
		// LLVM allocates 8 bytes with push rax: a push of a volatile
		// register saves nothing the unwinder must restore.
		return e.kind == effAlloc && int64(c.AllocSize()) == e.size ||
			e.kind == effPush && !nonvolatile(e.reg) && c.AllocSize() == 8
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
	f.seen = grow(f.seen, len(f.code))
	seen := f.seen
	stack := f.stack[:0]
	defer func() { f.stack = stack[:0] }()
	walk := func(off int, st state) {
		stack = append(stack[:0], work{off, st})
		for len(stack) > 0 {
			w := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			off, st := w.off, w.st
			for off >= 0 && off < len(f.code) && seen[off]&(visitedOff|dataOff) == 0 {
				seen[off] |= visitedOff
				inst, err := f.decode(off)
				if err != nil {
					break
				}
				in := &inst
				for i := off; i < off+in.Len && i < len(seen); i++ {
					seen[i] |= coveredOff
				}
				f.ninst++
				f.compare(off, &st, in)
				// exec leaves st unchanged for RET and JMP, so the exits
				// below record the state before them.
				st.exec(in, off < int(f.info.SizeOfProlog))
				next := off + in.Len
				switch {
				case in.Op == x86asm.RET:
					f.exits = append(f.exits, exit{off, next, st, exitReturn})
					next = -1
				case in.Op == x86asm.IRETQ || in.Op == x86asm.IRETD || in.Op == x86asm.IRET ||
					in.Op == x86asm.UD2 || in.Op == x86asm.INT || in.Op == x86asm.HLT:
					next = -1
				case in.Op == x86asm.JMP:
					if r, ok := in.Args[0].(x86asm.Rel); ok {
						t := next + int(r)
						switch {
						case t == 0 && !f.chained:
							f.exits = append(f.exits, exit{off, next, st, exitJump}) // recursive tail call
							next = -1
						case t >= 0 && t < len(f.code) && t < int(f.fn.EndAddress-f.fn.BeginAddress):
							next = t
						default:
							if !f.sameFunction(f.begin + uint64(int64(t))) {
								f.exits = append(f.exits, exit{off, next, st, exitJump})
							}
							f.leave(t, &st)
							next = -1
						}
					} else {
						switch {
						case tailJump(in):
							f.exits = append(f.exits, exit{off, next, st, exitJump})
						case st.frameDown():
							// A tail call through a register, which the
							// unwinder does not take for one.
							f.exits = append(f.exits, exit{off, next, st, exitUntagged})
						}
						next = -1 // or a jump table: its targets are reached linearly
					}
				case isJcc(in.Op):
					if r, ok := in.Args[0].(x86asm.Rel); ok {
						if t := next + int(r); t >= 0 && t < len(f.code) {
							stack = append(stack, work{t, st})
						} else {
							f.leave(t, &st)
						}
					}
				}
				if next == len(f.code) {
					f.leave(next, &st) // into the code after the entry
				}
				off = next
			}
		}
	}
	// A chained fragment of MSVC may hold nothing but a jump table.
	roots := f.jumpTables(true)
	walk(0, f.entry)
	for _, t := range append(roots, f.jumpTables(false)...) {
		walk(t, f.body)
	}
	for off := 0; off < len(f.code); off++ {
		if seen[off]&(coveredOff|dataOff) != 0 {
			continue
		}
		if _, err := f.decode(off); err == nil {
			walk(off, f.body)
		}
	}
}

// jumpTables finds the jump tables MSVC places in a function's code, after
// the code that uses them: runs of at least two 4-byte aligned RVAs of
// addresses in the function (this entry, or another entry of the same
// function), in bytes the control flow has not reached. It marks them as
// data, which the rest of the traversal skips, and returns the offsets in
// this entry they hold, the targets of indirect jumps. With atStart it
// looks only for a table at the start of the entry, before the control
// flow is followed from there.
func (f *fnCheck) jumpTables(atStart bool) []int {
	var targets []int
	lo, hi := f.fn.BeginAddress, f.fn.BeginAddress+uint32(len(f.code))
	entry := func(off int) (uint32, bool) {
		if off+4 > len(f.code) || f.seen[off]&coveredOff != 0 || f.seen[off+3]&coveredOff != 0 {
			return 0, false
		}
		v := binary.LittleEndian.Uint32(f.code[off:])
		if v >= lo && v < hi {
			return v, true
		}
		if v == 0 || f.c.Functions == nil {
			return v, false
		}
		if _, _, ok := f.c.Functions.LookupFunctionEntry(f.base + uint64(v)); !ok {
			return v, false // the quick test: no entry holds it
		}
		return v, f.sameFunction(f.base+uint64(v)) && v-lo >= uint32(len(f.code))
	}
	off := int((4 - (f.begin & 3)) & 3)
	for off+8 <= len(f.code) {
		n := 0
		for {
			if _, ok := entry(off + 4*n); !ok {
				break
			}
			n++
		}
		if atStart && (off != 0 || n < 2) {
			break
		}
		if n < 2 {
			off += 4
			continue
		}
		for i := 0; i < n; i++ {
			if v, _ := entry(off + 4*i); v >= lo && v < hi {
				targets = append(targets, int(v-lo))
			}
		}
		for i := off; i < off+4*n; i++ {
			f.seen[i] |= dataOff
		}
		off += 4 * n
	}
	return targets
}

// leave records that control leaves the entry with state st for the code
// at offset t, if that is the start of another entry of this function
// (chained to it), in the table being checked.
func (f *fnCheck) leave(t int, st *state) {
	if f.flows == nil || f.c.Functions == nil || f.c.Memory == nil {
		return
	}
	addr := f.begin + uint64(int64(t))
	tfn, tbase, ok := f.c.Functions.LookupFunctionEntry(addr)
	if !ok || tfn == nil || tbase != f.base || tbase+uint64(tfn.BeginAddress) != addr || tfn.Indirect() {
		return
	}
	var h [1]byte
	if _, err := f.c.Memory.ReadMemory(h[:], f.base+uint64(tfn.UnwindData)); err != nil {
		return
	}
	if unwindinfo.Flags(h[0]>>3)&unwindinfo.UNW_FLAG_CHAININFO == 0 {
		return
	}
	// Only a part of this function continues this frame.
	if p, err := unwind.PrimaryEntry(f.c.Memory, f.base, *tfn); err == nil && p.BeginAddress == f.primary.BeginAddress {
		f.flows.add(addr, st)
	}
}

// tailJump reports whether an indirect jmp is one the unwinder takes for a
// tail call: jmp [rip+disp32] or any REX.W jmp r/m64.
func tailJump(in *x86asm.Inst) bool {
	if m, ok := in.Args[0].(x86asm.Mem); ok && m.Base == x86asm.RIP && m.Index == 0 {
		return true
	}
	return slices.ContainsFunc(in.Prefix[:], func(p x86asm.Prefix) bool { return p&0xf0 == x86asm.PrefixREX && p&x86asm.PrefixREXW != 0 })
}

// sameFunction reports whether addr lies in another entry of this
// function, not at its primary start ([clr] SameFunction).
func (f *fnCheck) sameFunction(addr uint64) bool {
	if f.c.Functions == nil || f.c.Memory == nil {
		return false
	}
	tfn, tbase, ok := f.c.Functions.LookupFunctionEntry(addr)
	if !ok || tfn == nil || tbase != f.base {
		return false
	}
	tp, err := unwind.PrimaryEntry(f.c.Memory, f.base, *tfn)
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
	pc := f.begin + uint64(off)
	var key probeKey
	cache := f.sameEverywhere(off)
	var d diff
	var err error
	hit := false
	if cache {
		key = st.probeKey(int(f.info.FrameRegister))
		var r probe
		if r, hit = f.probes[key]; hit {
			d, err = r.d, r.err
		}
	}
	if !hit {
		fn := f.fn
		d, err = f.unwindAt(st, pc, &fn)
		if cache {
			if f.probes == nil {
				f.probes = map[probeKey]probe{}
			}
			f.probes[key] = probe{d, err}
		}
	}
	if err != nil {
		f.pend = append(f.pend, mismatch{off: off, tearing: f.tearing(st), sig: "error: " + err.Error(),
			msg: fmt.Sprintf("at %s: the unwinder fails: %v", asm(in, pc), err)})
		return
	}
	if d.sig == "" {
		return
	}
	text := asm(in, pc)
	f.pend = append(f.pend, mismatch{off: off, inEpilog: d.inEpilog, tearing: f.tearing(st), sig: d.sig,
		msg: fmt.Sprintf("at %s: the unwinder gives %s; the code gives %s", text, d.got, d.want)})
}

// probe is the result of unwindAt, kept for boundaries where the
// unwinder's result depends on the state only.
type probe struct {
	d   diff
	err error
}

// sameEverywhere reports whether the unwinder's result at offset off
// depends on the machine state only, not on off: off lies past the
// prolog and past every code of the entry and its parents, so that all
// codes apply, and the instruction there cannot begin a version 1 epilog
// (unwind.MayStartEpilog). Version 2 unwind information, whose epilogs
// are ranges of offsets, is never cached.
func (f *fnCheck) sameEverywhere(off int) bool {
	if f.info.Version != 1 || off < f.allApply || off >= len(f.code) {
		return false
	}
	at := func(i int) byte {
		if off+i < len(f.code) {
			return f.code[off+i]
		}
		return 0
	}
	if unwind.MayStartEpilog(at(0), at(1)) {
		return false
	}
	pc := f.fn.BeginAddress + uint32(off)
	for _, p := range f.parents {
		if pc-p.begin < p.maxOffset {
			return false
		}
	}
	return true
}

// level is a chained parent: the entry's start and its largest code
// offset.
type level struct {
	begin, maxOffset uint32
}

// diff is how the unwinder's result differs from the symbolic state's.
type diff struct {
	got, want string // the differing values, as the unwinder and the code give them
	sig       string // the difference, without the instruction; "" if none
	inEpilog  bool   // the unwinder saw an epilog
}

// unwindAt runs the unwinder at pc, with the function entry fn, on the
// registers and synthetic stack of state st (whose rsp is known, or the
// frame register of this entry), and compares its result with what st
// says the caller's state is.
func (f *fnCheck) unwindAt(st *state, pc uint64, fn *unwindinfo.RuntimeFunction) (diff, error) {
	var ctx unwind.Context
	ctx.ContextFlags = unwind.CONTEXT_FULL
	rsp := stackE - uint64(st.sp)
	if !st.spOK {
		rsp = stackE - uint64(st.rel[f.info.FrameRegister].off) - 0x10000
	}
	var wantReg [16]uint64 // what a correct unwind gives for each register
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
		// A register not saved keeps its value (whatever the function
		// did to it: the check is of the unwind information, not of the
		// calling convention); a saved one comes from its slot.
		wantReg[r] = v
		if s.w != inReg {
			wantReg[r] = marker(stackE - uint64(s.slot))
		}
	}
	for x := 0; x < 16; x++ {
		ctx.Xmm[x] = f.xmmIn(st.xmm[x], x)
	}
	ctx.Rip = pc
	var ptrs unwind.ContextPointers
	res, err := f.uw.VirtualUnwind(unwind.HandlerNone, f.base, pc, fn, &ctx, &ptrs)
	if err != nil {
		return diff{}, err
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
		if g, w := ctx.Reg(unwindinfo.Register(r)), wantReg[r]; g != w {
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
	return diff{got: strings.Join(got, ", "), want: strings.Join(want, ", "), sig: strings.Join(sig, "; "), inEpilog: res.InEpilog()}, nil
}

// tearing reports whether st is part way through taking the frame down:
// the stack pointer above the body's, or a register the body keeps saved
// popped.
func (f *fnCheck) tearing(st *state) bool {
	if st.spOK && f.body.spOK && st.sp < f.body.sp {
		return true
	}
	for r := range st.gpr {
		if f.body.gpr[r].w != inReg && st.gpr[r].w == inReg {
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
	type region struct {
		start, pops, end int
		kind             exitKind
	}
	var regions []region
	split := map[int]uint64{} // offset of a split jump → its target entry
	for _, x := range f.exits {
		// The epilog: pops before the terminator, and an add or lea rsp
		// before them.
		pops := x.off
		for {
			p, ok := f.startOf(pops)
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
		if p, ok := f.startOf(pops); ok {
			in, _ := f.decode(p)
			if r, w, ok := regArg(in.Args[0]); ok && r == 4 && w == 8 && (in.Op == x86asm.ADD || in.Op == x86asm.LEA) {
				start = p
			}
		}
		regions = append(regions, region{start, pops, x.end, x.kind})
		if x.kind == exitJump && !x.st.frameDown() && !f.mach {
			if t, ok := f.splitJump(x); ok {
				split[x.off] = t
				continue
			}
		}
		st := x.st
		text := f.asmAt(x.off)
		if st.spOK && st.sp != 0 && !f.mach {
			if x.kind == exitJump {
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
			ok := slices.ContainsFunc(regions, func(r region) bool {
				return r.kind != exitUntagged && r.pops == s && r.end-r.pops == int(ep.Length)
			})
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
	regionAt := func(off int) (exitKind, bool) {
		for _, r := range regions {
			if off >= r.start && off < r.end {
				return r.kind, true
			}
		}
		return 0, false
	}
	// The unwinder (package unwind) looks for a version 1 epilog only if
	// the entry has unwind codes of its own (Windows 10 1809 and later;
	// formats.md §5.2), so a chained fragment without any, which MSVC
	// emits for code split off a function, gets none; and only outside the
	// prolog, as Wine does, so an early return that MSVC places inside
	// SizeOfProlog gets none either.
	noEpilogs := f.chained && f.info.Version < 2 && f.info.CountOfCodes() == 0
	type agg struct {
		first int
		n     int
	}
	seen := map[string]*agg{}
	var order []string
	for i, m := range f.pend {
		if t, ok := split[m.off]; ok {
			f.problem(m.off, KindSplitJump, "%s continues the function in the entry at %#x, whose unwind information describes this frame, "+
				"but the entries are not chained, so the unwinder takes the jump for a tail call: %s", f.asmAt(m.off), t, m.msg)
			continue
		}
		kind := KindUnwindMismatch
		rk, inRegion := regionAt(m.off)
		switch {
		case m.inEpilog:
		case inRegion && rk == exitUntagged:
			kind = KindTailJump
		case m.tearing || inRegion:
			kind = KindEpilog
			switch {
			case noEpilogs:
				kind = KindFragmentEpilog
			case f.info.Version < 2 && m.off < int(f.info.SizeOfProlog):
				kind = KindPrologEpilog
			}
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
		switch kind {
		case KindEpilog:
			msg = "not an epilog the unwinder recognizes: " + msg
		case KindFragmentEpilog:
			msg = "the unwinder looks for no epilog in a chained entry without unwind codes of its own: " + msg
		case KindPrologEpilog:
			msg = fmt.Sprintf("the unwinder looks for no epilog inside the prolog (SizeOfProlog %#x): %s", f.info.SizeOfProlog, msg)
		case KindTailJump:
			msg = "an indirect jmp without REX.W leaves the function, which the unwinder does not take for a tail call: " + msg
		}
		if a.n > 1 {
			msg += fmt.Sprintf(" (and at %d more boundaries)", a.n-1)
		}
		f.problem(m.off, kind, "%s", msg)
	}
}

// splitJump reports whether the jump of exit x, which leaves the entry
// with its frame on the stack, goes to another entry whose unwind
// information describes that frame at the target: the function continues
// there, in a part split off without chained unwind information (GCC's
// .cold parts, and the jumps back from them). It returns the target
// entry's address.
func (f *fnCheck) splitJump(x exit) (uint64, bool) {
	in, err := f.decode(x.off)
	if err != nil || f.c.Functions == nil || !x.st.spOK {
		return 0, false
	}
	r, ok := in.Args[0].(x86asm.Rel)
	if !ok {
		return 0, false
	}
	target := f.begin + uint64(int64(x.end)+int64(r))
	tfn, tbase, ok := f.c.Functions.LookupFunctionEntry(target)
	if !ok || tfn == nil || tbase != f.base {
		return 0, false
	}
	t := *tfn
	st := x.st
	d, err := f.unwindAt(&st, target, &t)
	if err != nil || d.sig != "" {
		return 0, false
	}
	return f.base + uint64(t.BeginAddress), true
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
