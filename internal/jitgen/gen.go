package jitgen

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/fntable/fntable/unwindinfo"
)

// symKind says what a fixup refers to.
type symKind uint8

const (
	symInst  symKind = iota // an instruction of this function (entry index and label)
	symFunc                 // the start of function fn
	symThunk                // the thunk after entry `entry` of this function
	symSlot                 // jump slot k
)

// label names an instruction of an entry before it is emitted.
type label struct {
	entry int // index in fbuild.es
	inst  int // instruction index; -1 until bound
}

type symbol struct {
	kind  symKind
	fn    int
	entry int
	lab   *label
	k     int
}

// fixup is a displacement to fill in once the image is laid out. Every
// displacement is relative to the end of its instruction.
type fixup struct {
	inst int // instruction index in the entry
	at   int // offset in the entry's code of the displacement
	size int // 1 or 4
	sym  symbol
	// tmpl is the instruction's Asm with one %s, for the target (an RVA)
	// or, if rip, for the RIP-relative memory operand.
	tmpl string
	rip  bool
}

// fragKind is what a fragment's own prolog does.
type fragKind uint8

const (
	fragNone   fragKind = iota // no unwind codes
	fragSaves                  // SAVE_NONVOL / SAVE_XMM128 only
	fragPushes                 // pushes and an optional allocation
)

// ebuild is an entry being generated. Offsets are relative to the entry
// until the image is laid out.
type ebuild struct {
	idx    int // index in fbuild.es; 0 is the primary entry
	parent int // index in fbuild.es of the parent; -1 for the primary entry
	kind   fragKind

	code   []byte
	insts  []Inst
	fixes  []fixup
	prolog []unwindinfo.Code // in prolog order
	info   *unwindinfo.Info

	st     State // current state
	bodySt State // state of the entry's body
	// pushes are the registers pushed by this entry and its ancestors,
	// in push order; the epilogs pop them in reverse.
	pushes []reg
	// fbBelow is E − (frame base for SAVE codes); area is the number of
	// allocated bytes above the frame base.
	fbBelow, area uint32
	alloc         uint32 // the allocation an epilog frees (add rsp)
	pAlloc        uint32 // the allocation a fragment's own prolog makes
	usedRegs      []reg
	usedXMM       []int

	children []int // indexes in fbuild.es of the fragments chained to this one
	joins    []int // body instructions other entries may jump to
	thunk    bool  // a thunk follows the entry
	thunkPad int   // int3 bytes between the entry and its thunk
	adjacent bool  // placed right after the previous entry of the function
	epilogs  []int // indexes in Function.Epilogs
}

func (e *ebuild) hasCodes() bool { return len(e.prolog) > 0 }

// clone copies a State deeply.
func (s State) clone() State {
	s.Saved = slices.Clone(s.Saved)
	return s
}

// emit appends an instruction and returns its index.
func (e *ebuild) emit(kind Kind, b []byte, asm string) int {
	e.insts = append(e.insts, Inst{RVA: uint32(len(e.code)), Len: uint8(len(b)), Kind: kind, Asm: asm, Epilog: -1, State: e.st.clone()})
	e.code = append(e.code, b...)
	return len(e.insts) - 1
}

// emitFix appends an instruction whose displacement, dispAt bytes into it,
// is filled in at layout.
func (e *ebuild) emitFix(kind Kind, b []byte, dispAt, size int, sym symbol, tmpl string, rip bool) int {
	i := e.emit(kind, b, "")
	e.fixes = append(e.fixes, fixup{inst: i, at: int(e.insts[i].RVA) + dispAt, size: size, sym: sym, tmpl: tmpl, rip: rip})
	return i
}

// code records an unwind code for the instruction just emitted.
func (e *ebuild) codeAfter(op unwindinfo.Op, info uint8, operand uint32) {
	e.prolog = append(e.prolog, unwindinfo.Code{Offset: uint8(len(e.code)), Op: op, OpInfo: info, Operand: operand})
}

func (e *ebuild) newLabel() *label { return &label{entry: e.idx, inst: -1} }

// bind makes l name the next instruction emitted.
func (e *ebuild) bind(l *label) { l.inst = len(e.insts) }

// fbuild is a function being generated.
type fbuild struct {
	g  *gen
	f  *Function
	es []*ebuild

	leaf, mach  bool
	fr          reg // frame register; 0 for none
	fo          uint8
	alloca      bool
	v2          bool
	v2Term      Terminator
	pl          *primaryPlan
	slots       map[int32]bool // 8-byte stack slots in use, by E − address
	intoEpilog  bool           // a body jump to the pops of an epilog is still to be emitted
	pendingInto *label         // the target of that jump, bound at the epilog's first pop
}

// gen holds what all functions of an image share.
type gen struct {
	cfg    *Config
	rng    *rand.Rand
	nfn    int
	nslots int
}

func (g *gen) chance(p float64) bool  { return g.rng.Float64() < p }
func (g *gen) intn(n int) int         { return g.rng.IntN(n) }
func (g *gen) between(lo, hi int) int { return lo + g.rng.IntN(hi-lo+1) }
func (g *gen) has(f Feature) bool     { return g.cfg.has(f) }
func (g *gen) exec() bool             { return g.cfg.Executable }
func (b *fbuild) feature(f Feature)   { b.f.Features |= f }

// otherFunction picks a function other than this one, or -1 if there is
// none.
func (b *fbuild) otherFunction() int {
	if b.g.nfn < 2 {
		return -1
	}
	k := b.g.intn(b.g.nfn - 1)
	if k >= b.f.ID {
		k++
	}
	return k
}

// function generates function id.
func (g *gen) function(id int) *fbuild {
	b := &fbuild{g: g, f: &Function{ID: id}, slots: map[int32]bool{}}
	p := &ebuild{idx: 0, parent: -1}
	b.es = []*ebuild{p}
	p.st.Unwindable = true

	leafP, machP := 0.0, 0.0
	// An executable function other than the last one calls the next: it
	// is never a leaf.
	if g.has(FeatLeaf) && (!g.exec() || id == g.nfn-1) {
		leafP = g.cfg.rate(FeatLeaf, 0.10)
	}
	if g.has(FeatMachineFrame) {
		machP = g.cfg.rate(FeatMachineFrame, 0.08)
	}
	switch r := g.rng.Float64(); {
	case r < leafP:
		b.leaf = true
		b.feature(FeatLeaf)
	case r < leafP+machP:
		b.mach = true
		b.f.MachineFrame = true
		b.f.ErrorCode = g.chance(0.5)
		b.feature(FeatMachineFrame)
	}
	flags := unwindinfo.Flags(0)
	if g.has(FeatHandler) && g.chance(g.cfg.rate(FeatHandler, 0.3)) {
		flags = [...]unwindinfo.Flags{unwindinfo.UNW_FLAG_EHANDLER, unwindinfo.UNW_FLAG_UHANDLER,
			unwindinfo.UNW_FLAG_EHANDLER | unwindinfo.UNW_FLAG_UHANDLER}[g.intn(3)]
		b.f.HandlerData = make([]byte, 4*g.between(1, 4))
		for i := range b.f.HandlerData {
			b.f.HandlerData[i] = byte(g.rng.Uint32())
		}
		b.feature(FeatHandler)
	}

	if !b.leaf {
		b.planPrimary(p)
	}
	// Fragments are planned before any code is emitted, so that parents
	// can branch to them.
	if !b.leaf && !b.mach && g.has(FeatChained) && g.chance(g.cfg.rate(FeatChained, 0.22)) {
		b.planFragments()
	}
	b.v2 = !b.leaf && !b.mach && len(b.es) == 1 && g.has(FeatVersion2) && g.chance(g.cfg.rate(FeatVersion2, 0.12))
	if b.v2 {
		b.v2Term = [...]Terminator{TermRet, TermRet, TermRepRet, TermRetImm, TermJmpRel32, TermJmpReg, TermJmpMem}[g.intn(7)]
		if b.v2Term == TermRetImm && !g.has(FeatRetImm) || b.v2Term.IsJump() && (!g.has(FeatJmp) || !g.chance(g.cfg.rate(FeatJmp, 1))) {
			b.v2Term = TermRet
		}
	}
	b.intoEpilog = g.has(FeatJumpIntoEpilog) && g.chance(g.cfg.rate(FeatJumpIntoEpilog, 0.15))

	if g.exec() {
		b.assembleExec(p)
		b.finishInfos(flags)
		return b
	}
	b.assemble(p)
	for _, e := range b.es[1:] {
		b.assemble(e)
	}
	b.finishInfos(flags)
	return b
}

// primaryPlan holds the prolog choices of the primary entry.
type primaryPlan struct {
	pushes    []reg
	alloc     uint32
	allocForm int // 0 small, 1 large 16-bit, 2 large 32-bit
	wide      bool
	saves     []plannedSave
	before    int // number of saves placed before the frame register is set
	movFrame  bool
}

type plannedSave struct {
	r    reg
	xmm  int // -1 for a general-purpose register
	off  uint32
	far  bool
	wide bool
	viaF bool // address through the frame register
}

// planPrimary chooses the primary prolog.
func (b *fbuild) planPrimary(p *ebuild) {
	g := b.g
	pl := &primaryPlan{}
	npush := [...]int{0, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 5, 6, 7, 8}[g.intn(15)]
	perm := slices.Clone(nonvolatile[:])
	g.rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
	pl.pushes = perm[:npush]

	if g.has(FeatFrameRegister) && g.chance(g.cfg.rate(FeatFrameRegister, 0.35)) {
		if len(pl.pushes) == 0 {
			pl.pushes = []reg{rbp}
			if g.chance(0.4) {
				pl.pushes[0] = perm[0]
			}
		}
		if slices.Contains(pl.pushes, rbp) && g.chance(0.5) {
			b.fr = rbp
		} else {
			b.fr = pl.pushes[g.intn(len(pl.pushes))]
		}
		b.fo = [...]uint8{0, 0, 1, 2, 2, 3, 4, 6, 8, 15}[g.intn(10)]
		if g.chance(0.1) {
			b.fo = uint8(g.intn(16))
		}
		b.alloca = !g.exec() && g.chance(0.6)
		pl.movFrame = b.fo == 0 && g.chance(0.3)
		b.feature(FeatFrameRegister)
	}
	large := g.has(FeatLargeFrame) && g.chance(g.cfg.rate(FeatLargeFrame, 0.06))
	if b.fr != 0 || g.exec() || g.chance(0.85) {
		pl.alloc = allocSize(g, large)
		if g.exec() && pl.alloc < HomeArea {
			// The callee's home area, and room for saves above it.
			pl.alloc += HomeArea
		}
		// An executable function keeps RSP 16-byte aligned below its
		// fixed allocation, for its call and its movaps.
		if (g.exec() || g.chance(0.7)) && (8*uint32(len(pl.pushes))+pl.alloc+8)%16 != 0 {
			pl.alloc += 8
		}
		switch {
		case pl.alloc <= 128 && g.chance(0.7):
			pl.allocForm = 0
		case pl.alloc/8 <= 0xffff && g.chance(0.6):
			pl.allocForm = 1
		default:
			pl.allocForm = 2
		}
		pl.wide = pl.alloc < 128 && g.chance(0.2)
		if large {
			b.feature(FeatLargeFrame)
		}
	}
	if b.fr == r12 && g.has(FeatR12Lea) && g.chance(g.cfg.rate(FeatR12Lea, 0.5)) {
		// Make lea rsp, [r12+disp8] in the epilogs take a displacement
		// that the Windows epilog scan misreads (see r12Safe).
		pl.alloc = 16*uint32(b.fo) + [...]uint32{0x40, 0x48, 0x50, 0x58}[g.intn(4)]
		pl.allocForm, pl.wide = 1, false
		if pl.alloc <= 128 {
			pl.allocForm = 0
		}
	}
	p.pushes = pl.pushes
	p.usedRegs = slices.Clone(pl.pushes)
	p.alloc = pl.alloc
	p.fbBelow = 8*uint32(len(pl.pushes)) + pl.alloc
	p.area = pl.alloc

	// Register saves with mov, into the allocation or the home area.
	free := []reg{}
	for _, r := range nonvolatile {
		if !slices.Contains(pl.pushes, r) {
			free = append(free, r)
		}
	}
	g.rng.Shuffle(len(free), func(i, j int) { free[i], free[j] = free[j], free[i] })
	nsave := min(len(free), [...]int{0, 0, 0, 1, 1, 2, 3}[g.intn(7)])
	for _, r := range free[:nsave] {
		if off, ok := b.pickSlot(p, false, !b.mach); ok {
			pl.saves = append(pl.saves, plannedSave{r: r, xmm: -1, off: off})
			p.usedRegs = append(p.usedRegs, r)
		}
	}
	nx := [...]int{0, 0, 0, 1, 1, 2, 3}[g.intn(7)]
	for _, x := range g.rng.Perm(10)[:nx] {
		if off, ok := b.pickSlot(p, true, false); ok {
			pl.saves = append(pl.saves, plannedSave{r: 0, xmm: 6 + x, off: off})
			p.usedXMM = append(p.usedXMM, 6+x)
		}
	}
	g.rng.Shuffle(len(pl.saves), func(i, j int) { pl.saves[i], pl.saves[j] = pl.saves[j], pl.saves[i] })
	for i := range pl.saves {
		s := &pl.saves[i]
		if s.xmm < 0 {
			s.far = s.off/8 > 0xffff || g.chance(0.2)
		} else {
			s.far = s.off/16 > 0xffff || g.chance(0.2)
		}
		s.wide = g.chance(0.15)
		s.viaF = b.fr != 0 && g.chance(0.3)
	}
	if b.fr != 0 && len(pl.saves) > 0 && g.has(FeatSaveBeforeFrame) && g.chance(g.cfg.rate(FeatSaveBeforeFrame, 0.25)) {
		pl.before = g.between(1, len(pl.saves))
		for i := range pl.saves[:pl.before] {
			pl.saves[i].viaF = false
		}
		b.feature(FeatSaveBeforeFrame)
	}
	b.pl = pl
}

// allocSize picks a fixed allocation size.
func allocSize(g *gen, large bool) uint32 {
	if large {
		return 8 * uint32(g.between(512<<10/8, 1280<<10/8))
	}
	switch r := g.intn(10); {
	case r < 5:
		return 8 * uint32(g.between(1, 16))
	case r < 8:
		return 8 * uint32(g.between(17, 512))
	default:
		return 8 * uint32(g.between(513, 0xffff))
	}
}

// pickSlot finds a free stack slot for a register save of entry e and
// returns its offset from e's frame base.
func (b *fbuild) pickSlot(e *ebuild, xmm, home bool) (uint32, bool) {
	g := b.g
	size := uint32(8)
	if xmm {
		size = 16
	}
	// In an executable function the lowest HomeArea bytes of the
	// allocation belong to the callee.
	lo := uint32(0)
	if g.exec() {
		lo = HomeArea
	}
	for try := 0; try < 24; try++ {
		var off uint32
		if home && !xmm && g.chance(0.3) {
			off = e.fbBelow + 8 + 8*uint32(g.intn(4))
		} else {
			if e.area < lo+size {
				if home && !xmm {
					continue
				}
				return 0, false
			}
			off = lo + size*uint32(g.intn(int((e.area-lo)/size)))
		}
		below := int32(e.fbBelow) - int32(off)
		if b.slots[below] || xmm && b.slots[below-8] {
			continue
		}
		b.slots[below] = true
		if xmm {
			b.slots[below-8] = true
		}
		return off, true
	}
	return 0, false
}

// planFragments chooses the chained fragments.
func (b *fbuild) planFragments() {
	g := b.g
	n := g.between(1, 3)
	pl := b.pl
	for i := 0; i < n; i++ {
		e := &ebuild{idx: len(b.es), parent: 0}
		if i > 0 && g.chance(0.4) {
			e.parent = g.between(1, len(b.es)-1)
		}
		par := b.es[e.parent]
		// Pushes are allowed only where no frame register, no allocation
		// and no register save exists above: the Windows frame base of a
		// function without a frame register is the current RSP, which
		// the pushes move.
		pushOK := b.fr == 0 && b.es[0].alloc == 0 && (pl == nil || len(pl.saves) == 0)
		for q := par; pushOK && q.idx != 0; q = b.es[q.parent] {
			if q.kind == fragSaves || q.pAlloc != 0 {
				pushOK = false
			}
		}
		switch r := g.intn(100); {
		case r < 30:
			e.kind = fragNone
		case r < 75 || !pushOK:
			e.kind = fragSaves
		default:
			e.kind = fragPushes
			if g.chance(0.6) {
				e.pAlloc = 8 * uint32(g.between(1, 64))
			}
		}
		e.adjacent = g.chance(0.5)
		par.children = append(par.children, e.idx)
		b.es = append(b.es, e)
		b.f.Fragments = append(b.f.Fragments, Fragment{Parent: e.parent - 1, Pushes: e.kind == fragPushes})
	}
	b.feature(FeatChained)
}

// assemble generates the code of entry e.
func (b *fbuild) assemble(e *ebuild) {
	g := b.g
	if e.idx == 0 {
		if !b.leaf {
			b.primaryProlog(e)
		}
	} else {
		b.fragmentProlog(e)
	}
	e.st.Alloca = b.alloca
	e.bodySt = e.st.clone()

	// Blocks, each followed by an exit; all but the last exit are
	// skipped by a conditional branch.
	nexit := 1
	if g.chance(0.35) {
		nexit += g.between(1, 2)
	}
	kids := slices.Clone(e.children)
	for x := 0; x < nexit; x++ {
		last := x == nexit-1
		var branch []int
		if len(kids) > 0 && (last || g.chance(0.6)) {
			branch, kids = kids, nil
		}
		b.block(e, g.between(2, 8), branch, e.idx == 0 && x == 0)
		if !last {
			skip := e.newLabel()
			bs := []byte{0x0f, 0x84, 0, 0, 0, 0}
			e.emitFix(KindBody, bs, 2, 4, symbol{kind: symInst, entry: e.idx, lab: skip}, "jz %s", false)
			b.exit(e, false)
			e.st = e.bodySt.clone()
			e.bind(skip)
		} else {
			b.exit(e, true)
		}
	}
}

// primaryProlog emits the primary entry's prolog.
func (b *fbuild) primaryProlog(e *ebuild) {
	pl := b.pl
	if b.mach {
		info := uint8(0)
		if b.f.ErrorCode {
			info = 1
		}
		e.prolog = append(e.prolog, unwindinfo.Code{Offset: 0, Op: unwindinfo.UWOP_PUSH_MACHFRAME, OpInfo: info})
	}
	for _, r := range pl.pushes {
		bs, asm := encPush(r)
		e.emit(KindProlog, bs, asm)
		e.st.SP += 8
		e.st.Saved = append(e.st.Saved, Saved{Reg: r, Slot: e.st.SP})
		e.codeAfter(unwindinfo.UWOP_PUSH_NONVOL, uint8(r), 0)
	}
	if pl.alloc > 0 {
		bs, asm := encRSPImm(true, pl.alloc, pl.wide)
		e.emit(KindProlog, bs, asm)
		e.st.SP += int32(pl.alloc)
		switch pl.allocForm {
		case 0:
			e.codeAfter(unwindinfo.UWOP_ALLOC_SMALL, uint8(pl.alloc/8-1), 0)
		case 1:
			e.codeAfter(unwindinfo.UWOP_ALLOC_LARGE, 0, pl.alloc/8)
		default:
			e.codeAfter(unwindinfo.UWOP_ALLOC_LARGE, 1, pl.alloc)
		}
	}
	for _, s := range pl.saves[:pl.before] {
		b.emitSave(e, s)
	}
	if b.fr != 0 {
		var bs []byte
		var asm string
		if pl.movFrame {
			bs, asm = encMovFromRSP(b.fr)
		} else {
			bs, asm = encLeaFromRSP(b.fr, 16*int32(b.fo))
		}
		e.emit(KindProlog, bs, asm)
		e.st.FrameSet = true
		e.st.FP = e.st.SP - 16*int32(b.fo)
		e.codeAfter(unwindinfo.UWOP_SET_FPREG, 0, 0)
	}
	for _, s := range pl.saves[pl.before:] {
		b.emitSave(e, s)
	}
}

// emitSave emits a register save with mov or movaps and its unwind code.
func (b *fbuild) emitSave(e *ebuild, s plannedSave) {
	below := int32(e.fbBelow) - int32(s.off)
	base, disp := rsp, e.st.SP-below
	if s.viaF && e.st.FrameSet {
		base, disp = b.fr, e.st.FP-below
	}
	if s.xmm < 0 {
		bs, asm := encMovStore(base, disp, s.r, s.wide)
		e.emit(KindProlog, bs, asm)
		e.st.Saved = append(e.st.Saved, Saved{Reg: s.r, Slot: below})
		if s.far {
			e.codeAfter(unwindinfo.UWOP_SAVE_NONVOL_FAR, uint8(s.r), s.off)
		} else {
			e.codeAfter(unwindinfo.UWOP_SAVE_NONVOL, uint8(s.r), s.off/8)
		}
		return
	}
	bs, asm := encMovaps(true, base, disp, s.xmm, s.wide)
	e.emit(KindProlog, bs, asm)
	e.st.Saved = append(e.st.Saved, Saved{Reg: reg(s.xmm), XMM: true, Slot: below})
	if s.far {
		e.codeAfter(unwindinfo.UWOP_SAVE_XMM128_FAR, uint8(s.xmm), s.off)
	} else {
		e.codeAfter(unwindinfo.UWOP_SAVE_XMM128, uint8(s.xmm), s.off/16)
	}
}

// fragmentProlog starts fragment e from its parent's body state and emits
// its own prolog.
func (b *fbuild) fragmentProlog(e *ebuild) {
	g := b.g
	par := b.es[e.parent]
	e.st = par.bodySt.clone()
	e.st.Unwindable = true
	e.pushes = slices.Clone(par.pushes)
	e.fbBelow, e.area, e.alloc = par.fbBelow, par.area, par.alloc
	e.usedRegs = slices.Clone(par.usedRegs)
	e.usedXMM = slices.Clone(par.usedXMM)
	switch e.kind {
	case fragSaves:
		n := g.between(1, 3)
		for i := 0; i < n; i++ {
			s := plannedSave{xmm: -1, wide: g.chance(0.15), viaF: b.fr != 0 && g.chance(0.5)}
			if g.chance(0.35) {
				x := 6 + g.intn(10)
				if slices.Contains(e.usedXMM, x) {
					continue
				}
				s.xmm = x
			} else {
				var free []reg
				for _, r := range nonvolatile {
					if !slices.Contains(e.usedRegs, r) {
						free = append(free, r)
					}
				}
				if len(free) == 0 {
					continue
				}
				s.r = free[g.intn(len(free))]
			}
			off, ok := b.pickSlot(e, s.xmm >= 0, true)
			if !ok {
				continue
			}
			s.off = off
			if s.xmm < 0 {
				s.far = off/8 > 0xffff || g.chance(0.2)
				e.usedRegs = append(e.usedRegs, s.r)
			} else {
				s.far = off/16 > 0xffff || g.chance(0.2)
				e.usedXMM = append(e.usedXMM, s.xmm)
			}
			b.emitSave(e, s)
		}
	case fragPushes:
		n := g.between(1, 3)
		for i := 0; i < n; i++ {
			var free []reg
			for _, r := range nonvolatile {
				if !slices.Contains(e.usedRegs, r) {
					free = append(free, r)
				}
			}
			if len(free) == 0 {
				break
			}
			r := free[g.intn(len(free))]
			bs, asm := encPush(r)
			e.emit(KindProlog, bs, asm)
			e.st.SP += 8
			e.st.Saved = append(e.st.Saved, Saved{Reg: r, Slot: e.st.SP})
			e.codeAfter(unwindinfo.UWOP_PUSH_NONVOL, uint8(r), 0)
			e.pushes = append(e.pushes, r)
			e.usedRegs = append(e.usedRegs, r)
		}
		if n := e.pAlloc; n > 0 {
			bs, asm := encRSPImm(true, n, g.chance(0.2))
			e.emit(KindProlog, bs, asm)
			e.st.SP += int32(n)
			switch {
			case n <= 128 && g.chance(0.6):
				e.codeAfter(unwindinfo.UWOP_ALLOC_SMALL, uint8(n/8-1), 0)
			case g.chance(0.5):
				e.codeAfter(unwindinfo.UWOP_ALLOC_LARGE, 0, n/8)
			default:
				e.codeAfter(unwindinfo.UWOP_ALLOC_LARGE, 1, n)
			}
			e.alloc = n
		}
		e.fbBelow, e.area = uint32(e.st.SP), e.alloc
	}
	if len(e.prolog) == 0 {
		// No register or slot was free: a fragment without codes.
		e.kind = fragNone
		b.f.Fragments[e.idx-1].Pushes = false
	}
}

// block emits n body instructions of entry e, with short jumps inside the
// block, branches to the fragments in kids, and, in frame-register
// functions, a dynamic allocation.
func (b *fbuild) block(e *ebuild, n int, kids []int, first bool) {
	g := b.g
	type op struct {
		kind   int // 0 plain, 1 call, 2 jcc8, 3 jmp8, 4 branch to kid, 5 alloca, 6 jump into epilog
		target int // op index for 2 and 3
		kid    int
	}
	ops := make([]op, n)
	for i := range ops {
		switch r := g.intn(100); {
		case r < 10:
			ops[i].kind = 1
		case r < 20:
			ops[i].kind = 2
		case r < 26:
			ops[i].kind = 3
		}
	}
	for _, k := range kids {
		ops = slices.Insert(ops, g.intn(len(ops)+1), op{kind: 4, kid: k})
	}
	if first && b.alloca {
		ops = slices.Insert(ops, g.intn(len(ops)+1), op{kind: 5})
	}
	if b.intoEpilog && e.idx == 0 && b.canJumpIntoEpilog(e) {
		ops = slices.Insert(ops, g.intn(len(ops)+1), op{kind: 6})
	}
	// Short jumps go to plain instructions of the block, never to the
	// entry's first byte (a jump to the start is a tail call).
	var plain []int
	for i, o := range ops {
		if o.kind == 0 && (i > 0 || len(e.code) > 0) {
			plain = append(plain, i)
		}
	}
	labels := make([]*label, len(ops))
	for i := range ops {
		if o := &ops[i]; o.kind == 2 || o.kind == 3 {
			if len(plain) == 0 {
				o.kind = 0
				continue
			}
			o.target = plain[g.intn(len(plain))]
			if labels[o.target] == nil {
				labels[o.target] = e.newLabel()
			}
		}
	}
	for i, o := range ops {
		if labels[i] != nil {
			e.bind(labels[i])
		}
		switch o.kind {
		case 0:
			var bs []byte
			var asm string
			switch r := g.intn(10); {
			case r < 6:
				bo := bodyOps[g.intn(len(bodyOps))]
				bs, asm = bo.b, bo.asm
			case r < 8:
				bs, asm = encMovImm(reg(g.intn(3)), g.rng.Uint32()>>g.intn(32))
			default:
				bs, asm = encCmpImm(int8(g.rng.Uint32()))
			}
			j := e.emit(KindBody, bs, asm)
			if e.idx != 0 || e.insts[j].RVA != 0 {
				// A jump to the function's start would be a tail call.
				e.joins = append(e.joins, j)
			}
		case 1:
			sym := symbol{kind: symFunc, fn: g.intn(g.nfn)}
			e.emitFix(KindBody, []byte{0xe8, 0, 0, 0, 0}, 1, 4, sym, "call %s", false)
		case 2:
			cc := [...]byte{2, 3, 4, 5}[g.intn(4)]
			e.emitFix(KindBody, []byte{0x70 | cc, 0}, 1, 1, symbol{kind: symInst, entry: e.idx, lab: labels[o.target]}, jccNames[cc]+" %s", false)
		case 3:
			e.emitFix(KindBody, []byte{0xeb, 0}, 1, 1, symbol{kind: symInst, entry: e.idx, lab: labels[o.target]}, "jmp %s", false)
		case 4:
			sym := symbol{kind: symInst, entry: o.kid, lab: &label{entry: o.kid, inst: 0}}
			if g.chance(0.5) {
				e.emitFix(KindBody, []byte{0xe9, 0, 0, 0, 0}, 1, 4, sym, "jmp %s", false)
			} else {
				cc := [...]byte{2, 3, 4, 5}[g.intn(4)]
				e.emitFix(KindBody, []byte{0x0f, 0x80 | cc, 0, 0, 0, 0}, 2, 4, sym, jccNames[cc]+" %s", false)
			}
		case 5:
			e.emit(KindBody, []byte{0x48, 0x29, 0xc4}, "sub rsp, rax")
		case 6:
			l := e.newLabel()
			i := e.emitFix(KindBody, []byte{0xe9, 0, 0, 0, 0}, 1, 4, symbol{kind: symInst, entry: e.idx, lab: l}, "jmp %s", false)
			e.insts[i].IntoEpilog = true
			b.pendingInto = l
			b.intoEpilog = false
			b.feature(FeatJumpIntoEpilog)
		}
	}
	if len(e.joins) == 0 {
		j := e.emit(KindBody, []byte{0x90}, "nop")
		e.joins = append(e.joins, j)
	}
}

// canJumpIntoEpilog reports whether a later epilog of e starts with its
// pops, with nothing to restore before them.
func (b *fbuild) canJumpIntoEpilog(e *ebuild) bool {
	return len(e.pushes) > 0 && e.alloc == 0 && b.fr == 0 && !b.mach && !b.v2 && (b.pl == nil || len(b.pl.saves) == 0)
}

// exit emits an exit of entry e: an epilog (or machine-frame exit) or, for
// fragments without pushes, a jump back into the parent.
func (b *fbuild) exit(e *ebuild, last bool) {
	g := b.g
	if e.idx > 0 && e.kind != fragPushes {
		epilogOK := e.kind == fragSaves || g.has(FeatEmptyFragmentEpilog)
		if !epilogOK || g.chance(0.4) || e.kind == fragNone && !g.chance(g.cfg.rate(FeatEmptyFragmentEpilog, 1)) {
			b.jumpBack(e)
			return
		}
		if e.kind == fragNone {
			b.feature(FeatEmptyFragmentEpilog)
		}
	}
	b.epilog(e, last)
}

// jumpBack restores what fragment e saved and jumps to a body instruction
// of its parent.
func (b *fbuild) jumpBack(e *ebuild) {
	par := b.es[e.parent]
	b.restore(e, len(par.bodySt.Saved))
	j := par.joins[b.g.intn(len(par.joins))]
	sym := symbol{kind: symInst, entry: par.idx, lab: &label{entry: par.idx, inst: j}}
	e.emitFix(KindBody, []byte{0xe9, 0, 0, 0, 0}, 1, 4, sym, "jmp %s", false)
}

// restore reloads the registers saved with mov (from Saved[from:]) that
// are not restored yet, in random order.
func (b *fbuild) restore(e *ebuild, from int) {
	g := b.g
	var todo []int
	for i := from; i < len(e.st.Saved); i++ {
		s := e.st.Saved[i]
		if !s.Restored && (s.XMM || !slices.Contains(e.pushes, s.Reg)) {
			todo = append(todo, i)
		}
	}
	g.rng.Shuffle(len(todo), func(i, j int) { todo[i], todo[j] = todo[j], todo[i] })
	for _, i := range todo {
		s := e.st.Saved[i]
		base, disp := rsp, e.st.SP-s.Slot
		if e.st.FrameSet && (e.st.Alloca || g.chance(0.5)) {
			base, disp = b.fr, e.st.FP-s.Slot
		}
		var bs []byte
		var asm string
		if s.XMM {
			bs, asm = encMovaps(false, base, disp, int(s.Reg), false)
		} else {
			bs, asm = encMovLoad(s.Reg, base, disp)
		}
		e.emit(KindRestore, bs, asm)
		e.st.Saved[i].Restored = true
	}
}

// markRestored records that the caller's value of r is back in r.
func (s *State) markRestored(r reg) {
	for i := range s.Saved {
		if !s.Saved[i].XMM && s.Saved[i].Reg == r {
			s.Saved[i].Restored = true
		}
	}
}

// r12Safe reports whether the disp8 of lea rsp, [r12+disp8] reads as
// harmless to the Windows epilog scan, which takes the SIB byte for the
// displacement and the displacement for the next instruction: anything
// but a pop, a REX prefix, or the start of a return or jump. The scan then
// finds no epilog and unwinds the body, which is right at that point. Other
// displacements are encoded as disp32 (whose high byte, 00 or ff, is as
// harmless) unless FeatR12Lea asks for them.
func r12Safe(d int8) bool {
	switch v := byte(d); {
	case v >= 0x40 && v <= 0x5f:
		return false
	case v == 0xc2 || v == 0xc3 || v == 0xe9 || v == 0xeb || v == 0xf2 || v == 0xf3 || v == 0xff:
		return false
	}
	return true
}

// epilog emits the restores and an epilog of entry e.
func (b *fbuild) epilog(e *ebuild, last bool) {
	g := b.g
	f := b.f
	b.restore(e, 0)
	epi := len(f.Epilogs)
	d := EpilogDesc{Fragment: e.idx - 1, Start: uint32(len(e.code)), ErrorCode: b.mach && f.ErrorCode}
	term, tk, bnd := b.pickTerm(e, last)
	d.Term, d.TargetKind, d.Bnd = term, tk, bnd

	// An unwinder following the Windows rules sees the epilog if it is
	// one and the entry has unwind codes (or version 2 codes describe
	// it); otherwise it unwinds the body, which is right only before the
	// epilog's first instruction has run.
	sees := b.v2 || d.IsEpilog() && e.hasCodes()
	first := true
	put := func(bs []byte, asm string, unwindable bool) int {
		e.st.Unwindable = unwindable && (sees || first)
		i := e.emit(KindEpilog, bs, asm)
		e.insts[i].Epilog = epi
		e.st.Unwindable = true
		first = false
		return i
	}
	putFix := func(bs []byte, dispAt, size int, sym symbol, tmpl string, rip bool) int {
		e.st.Unwindable = sees || first
		i := e.emitFix(KindEpilog, bs, dispAt, size, sym, tmpl, rip)
		e.insts[i].Epilog = epi
		e.st.Unwindable = true
		first = false
		return i
	}

	// Stack deallocation.
	switch {
	case b.fr != 0 && (b.alloca || e.alloc == 0 && g.chance(0.5) || g.chance(0.6)):
		disp := int32(e.alloc) - 16*int32(b.fo)
		wide := disp < -128 || disp > 127 || g.chance(0.2)
		ok := true
		if b.fr == r12 && !wide && !r12Safe(int8(disp)) {
			if g.has(FeatR12Lea) && g.chance(g.cfg.rate(FeatR12Lea, 0.5)) {
				ok = false
				b.feature(FeatR12Lea)
			} else {
				wide = true
			}
		}
		bs, asm := encLeaRSP(b.fr, disp, wide)
		put(bs, asm, ok)
		d.Dealloc = DeallocLea8
		if wide {
			d.Dealloc = DeallocLea32
		}
		e.st.SP = 8 * int32(len(e.pushes))
		e.st.Alloca = false
	case e.alloc > 0:
		wide := e.alloc >= 128 || g.chance(0.2)
		bs, asm := encRSPImm(false, e.alloc, wide)
		put(bs, asm, true)
		d.Dealloc = DeallocAdd8
		if wide {
			d.Dealloc = DeallocAdd32
		}
		e.st.SP -= int32(e.alloc)
		e.st.Alloca = false
	}
	d.V2Start = uint32(len(e.code))

	// Pops, in the reverse order of the pushes.
	if b.pendingInto != nil && e.idx == 0 && len(e.pushes) > 0 && d.Dealloc == DeallocNone {
		e.bind(b.pendingInto)
		b.pendingInto = nil
	}
	for i := len(e.pushes) - 1; i >= 0; i-- {
		r := e.pushes[i]
		p := popPlain
		if !b.v2 && g.chance(0.1) {
			p = popW
			if r < 8 && g.chance(0.5) {
				p = popBare
			}
		}
		bs, asm := encPop(r, p)
		put(bs, asm, true)
		d.Pops = append(d.Pops, r)
		d.PopREX = append(d.PopREX, p != popPlain)
		e.st.SP -= 8
		e.st.markRestored(r)
	}
	if d.ErrorCode {
		bs, asm := encRSPImm(false, 8, false)
		put(bs, asm, true)
		e.st.SP -= 8
	}

	// The terminator.
	var pre []byte
	ptext := ""
	if bnd {
		pre, ptext = []byte{0xf2}, "bnd "
	}
	n := len(pre)
	switch term {
	case TermRet:
		put(append(pre, 0xc3), ptext+"ret", true)
	case TermRetImm:
		d.Imm = uint16(8 * g.between(1, 4))
		put([]byte{0xc2, byte(d.Imm), byte(d.Imm >> 8)}, fmt.Sprintf("ret %#x", d.Imm), true)
	case TermRepRet:
		put([]byte{0xf3, 0xc3}, "rep ret", true)
	case TermJmpRel8, TermJmpRel32:
		var sym symbol
		switch tk {
		case TargetSelf:
			sym = symbol{kind: symInst, entry: 0, lab: &label{entry: 0, inst: 0}}
			if term == TermJmpRel8 && (e.idx != 0 || len(e.code)+n+2 > 128) {
				term = TermJmpRel32
			}
		case TargetFunction:
			if k := b.otherFunction(); k >= 0 {
				sym = symbol{kind: symFunc, fn: k}
				break
			}
			tk = TargetThunk
			fallthrough
		case TargetThunk:
			sym = symbol{kind: symThunk, entry: e.idx}
			e.thunk = true
		}
		if term == TermJmpRel8 {
			putFix(append(pre, 0xeb, 0), n+1, 1, sym, ptext+"jmp %s", false)
		} else {
			putFix(append(pre, 0xe9, 0, 0, 0, 0), n+1, 4, sym, ptext+"jmp %s", false)
		}
		d.Term, d.TargetKind = term, tk
	case TermJmpRIP:
		d.RexW = g.chance(0.3)
		bs, text := append(pre, 0xff, 0x25, 0, 0, 0, 0), ptext+"jmp qword ptr %s"
		if d.RexW {
			bs, text = append(pre, 0x48, 0xff, 0x25, 0, 0, 0, 0), "rex.w "+text
		}
		putFix(bs, len(bs)-4, 4, symbol{kind: symSlot, k: g.intn(g.nslots)}, text, true)
	case TermJmpReg:
		r := [...]reg{rax, rcx, rdx, r8, r9, r10, r11}[g.intn(7)]
		bs, asm := encJmpReg(r)
		put(append(pre, bs...), ptext+asm, true)
	case TermJmpMem:
		r := [...]reg{rax, rcx, rdx, r8, r9, r10, r11}[g.intn(7)]
		bs, asm := encJmpMem(r, 8*int32(g.intn(4)))
		put(append(pre, bs...), ptext+asm, true)
	case TermIretq:
		put([]byte{0x48, 0xcf}, "iretq", true)
	}
	d.End = uint32(len(e.code))
	switch {
	case term == TermRetImm:
		b.feature(FeatRetImm)
	case term == TermRet && bnd:
		b.feature(FeatBndRet)
	case tk == TargetSelf:
		b.feature(FeatRecursion)
	case term.IsJump():
		b.feature(FeatJmp)
	}
	f.Epilogs = append(f.Epilogs, d)
	e.epilogs = append(e.epilogs, epi)
}

// pickTerm chooses the terminator of an epilog of e.
func (b *fbuild) pickTerm(e *ebuild, last bool) (Terminator, TargetKind, bool) {
	g := b.g
	if b.mach {
		return TermIretq, TargetNone, false
	}
	if b.v2 {
		tk := TargetNone
		if b.v2Term == TermJmpRel32 {
			tk = [...]TargetKind{TargetFunction, TargetThunk}[g.intn(2)]
		}
		return b.v2Term, tk, false
	}
	type cand struct {
		t   Terminator
		tk  TargetKind
		bnd bool
		w   float64
	}
	cands := []cand{{TermRet, TargetNone, false, 30}, {TermRepRet, TargetNone, false, 8}}
	if g.has(FeatRetImm) {
		cands = append(cands, cand{TermRetImm, TargetNone, false, g.cfg.rate(FeatRetImm, 8)})
	}
	if g.has(FeatBndRet) {
		cands = append(cands, cand{TermRet, TargetNone, true, g.cfg.rate(FeatBndRet, 5)})
	}
	if g.has(FeatJmp) {
		cands = append(cands,
			cand{TermJmpRel32, TargetFunction, false, g.cfg.rate(FeatJmp, 8)},
			cand{TermJmpRel32, TargetThunk, false, g.cfg.rate(FeatJmp, 3)},
			cand{TermJmpRIP, TargetNone, false, g.cfg.rate(FeatJmp, 6)},
			cand{TermJmpReg, TargetNone, false, g.cfg.rate(FeatJmp, 5)},
			cand{TermJmpMem, TargetNone, false, g.cfg.rate(FeatJmp, 5)})
		if last {
			cands = append(cands, cand{TermJmpRel8, TargetThunk, false, g.cfg.rate(FeatJmp, 6)})
		}
	}
	if g.has(FeatRecursion) {
		w := g.cfg.rate(FeatRecursion, 2)
		cands = append(cands, cand{TermJmpRel8, TargetSelf, false, w}, cand{TermJmpRel32, TargetSelf, false, w})
	}
	total := 0.0
	for _, c := range cands {
		total += c.w
	}
	r := g.rng.Float64() * total
	c := cands[len(cands)-1]
	for _, x := range cands {
		if r < x.w {
			c = x
			break
		}
		r -= x.w
	}
	bnd := c.bnd
	if c.t.IsJump() && g.chance(0.15) {
		bnd = true
	}
	return c.t, c.tk, bnd
}

// finishInfos builds the UNWIND_INFO of every entry, with flags for the
// primary entry. Chained entries and the handler are filled in at layout.
func (b *fbuild) finishInfos(flags unwindinfo.Flags) {
	for _, e := range b.es {
		codes := slices.Clone(e.prolog)
		slices.Reverse(codes)
		size := 0
		for _, in := range e.insts {
			if in.Kind == KindProlog {
				size = int(in.RVA) + int(in.Len)
			}
		}
		info := &unwindinfo.Info{Version: 1, SizeOfProlog: uint8(size), FrameRegister: b.fr, FrameOffset: b.fo, Codes: codes}
		if b.fr == 0 {
			info.FrameOffset = 0
		}
		if e.idx == 0 {
			info.Flags = flags
			if b.v2 {
				if ep, ok := b.v2Codes(e); ok {
					info.Version = 2
					info.Codes = append(ep, codes...)
					for _, k := range e.epilogs {
						b.f.Epilogs[k].Version2 = true
					}
					b.feature(FeatVersion2)
				}
			}
		} else {
			info.Flags = unwindinfo.UNW_FLAG_CHAININFO
		}
		e.info = info
	}
}

// v2Codes returns the UWOP_EPILOG codes describing the epilogs of e, or
// false if they cannot: the epilogs differ in length, or one starts too
// far from the end.
func (b *fbuild) v2Codes(e *ebuild) ([]unwindinfo.Code, bool) {
	end := uint32(len(e.code))
	var length uint32
	atEnd := false
	var offs []uint32
	for _, k := range e.epilogs {
		d := &b.f.Epilogs[k]
		l := d.End - d.V2Start
		if length == 0 {
			length = l
		} else if l != length {
			return nil, false
		}
		if d.End == end && !atEnd {
			atEnd = true
			continue
		}
		offs = append(offs, end-d.V2Start)
	}
	if length == 0 || length > 255 {
		return nil, false
	}
	info := uint8(0)
	if atEnd {
		info = 1
	}
	codes := []unwindinfo.Code{{Offset: uint8(length), Op: unwindinfo.UWOP_EPILOG, OpInfo: info}}
	for _, off := range offs {
		if off > 0xfff {
			return nil, false
		}
		codes = append(codes, unwindinfo.Code{Offset: uint8(off), Op: unwindinfo.UWOP_EPILOG, OpInfo: uint8(off >> 8)})
	}
	if len(codes)%2 != 0 {
		codes = append(codes, unwindinfo.Code{Op: unwindinfo.UWOP_EPILOG})
	}
	return codes, true
}

// sysPause is the x86-64 Linux system call number of pause(2).
const sysPause = 34

// assembleExec generates the code of the primary entry e of an executable
// function: the prolog, then blocks of straight-line body instructions,
// each followed by an epilog. The first block holds the one call of the
// next function or, in the last function, the loop on the pause system
// call, always followed by at least one body instruction, so that the
// return address lies in the body. The blocks after the first epilog are
// never reached.
func (b *fbuild) assembleExec(e *ebuild) {
	g := b.g
	if !b.leaf {
		b.primaryProlog(e)
	}
	e.bodySt = e.st.clone()
	nexit := 1
	if g.chance(0.35) {
		nexit += g.between(1, 2)
	}
	for x := 0; x < nexit; x++ {
		n := g.between(2, 8)
		at := -1
		if x == 0 {
			at = g.intn(n)
		}
		for i := 0; i < n; i++ {
			if i == at {
				b.execTransfer(e)
			}
			b.plainOp(e)
		}
		b.epilog(e, x == nexit-1)
		e.st = e.bodySt.clone()
	}
}

// execTransfer emits the call of the next function or, in the last
// function, mov eax, 34; syscall; jmp back to the mov.
func (b *fbuild) execTransfer(e *ebuild) {
	if next := b.f.ID + 1; next < b.g.nfn {
		e.emitFix(KindBody, []byte{0xe8, 0, 0, 0, 0}, 1, 4, symbol{kind: symFunc, fn: next}, "call %s", false)
		return
	}
	loop := e.newLabel()
	e.bind(loop)
	bs, asm := encMovImm(rax, sysPause)
	e.emit(KindBody, bs, asm)
	e.emit(KindBody, []byte{0x0f, 0x05}, "syscall")
	e.emitFix(KindBody, []byte{0xeb, 0}, 1, 1, symbol{kind: symInst, entry: e.idx, lab: loop}, "jmp %s", false)
}

// plainOp emits one harmless body instruction: a nop or an ALU operation
// on volatile registers, a mov of an immediate, or a compare.
func (b *fbuild) plainOp(e *ebuild) {
	g := b.g
	var bs []byte
	var asm string
	switch r := g.intn(10); {
	case r < 6:
		bo := bodyOps[g.intn(len(bodyOps))]
		bs, asm = bo.b, bo.asm
	case r < 8:
		bs, asm = encMovImm(reg(g.intn(3)), g.rng.Uint32()>>g.intn(32))
	default:
		bs, asm = encCmpImm(int8(g.rng.Uint32()))
	}
	e.emit(KindBody, bs, asm)
}
