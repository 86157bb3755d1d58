package cfi

import (
	"fmt"
	"sync"

	"github.com/fntable/fntable/unwind"
	"github.com/fntable/fntable/unwindinfo"
)

// dwarfToContext maps the x86-64 DWARF numbers of the general-purpose
// registers (0 rax, 1 rdx, 2 rcx, 3 rbx, 4 rsi, 5 rdi, 6 rbp, 7 rsp,
// 8–15 r8–r15) to the numbering of [unwind.Context.Reg] (0 rax, 1 rcx,
// 2 rdx, 3 rbx, 4 rsp, 5 rbp, 6 rsi, 7 rdi, 8–15 r8–r15).
var dwarfToContext = [16]unwindinfo.Register{0, 2, 1, 3, 6, 7, 5, 4, 8, 9, 10, 11, 12, 13, 14, 15}

// StepResult is what [File.Step] found about the frame it unwound.
type StepResult struct {
	CFA    uint64 // the canonical frame address of the frame unwound
	Signal bool   // the FDE's CIE has augmentation S: the caller's Rip is an interrupted pc, not a return address, and the next lookup uses it as is
	End    bool   // the return address column's rule is undefined: this is the outermost frame (glibc's _start, a thread's start); ctx is unchanged

	// CFAExpression: the CFA came from a DWARF expression
	// (DW_CFA_def_cfa_expression), not a register plus an offset: the
	// caller's stack pointer is one the frame saved in memory. This is how
	// CFI describes a stack switch (glibc's signal return trampoline,
	// Wine's system-call dispatcher), so the caller's stack may lie below.
	CFAExpression bool
}

// Step unwinds one frame. ctx holds the registers of a frame executing
// code of f, loaded with load bias bias (run-time address = link-time
// address + bias). lookupPC is the run-time address to find the FDE for:
// ctx.Rip for the innermost frame and for a frame interrupted by a signal,
// ctx.Rip-1 for a frame that made a call. mem is the frame's address space.
//
// On success ctx holds the caller's registers: Rip the return address,
// Rsp the CFA unless a rule recovers rsp, and the other registers by their
// rules. Registers whose rule is unspecified or same_value keep their
// values. Registers whose rule is undefined keep their values too, which
// are then meaningless, as the volatile registers are after a Windows
// unwind; the x86-64 ABI marks no callee-saved register undefined. The
// XMM registers, FsBase and GsBase are not changed.
//
// ok is false, with a nil error, when no FDE covers lookupPC. When the
// return address's rule is undefined, res.End is true and ctx is
// unchanged. On an error ctx is unchanged; a failed memory read is
// returned wrapped, so that errors.Is finds [unwind.ErrShortRead] and
// errors.As an *[unwind.UnmappedError].
func (f *File) Step(ctx *unwind.Context, bias, lookupPC uint64, mem unwind.Memory) (res StepResult, ok bool, err error) {
	pc := lookupPC - bias
	r := f.rows.get(pc)
	if r == nil {
		var found bool
		if r, found, err = f.row(pc); r == nil {
			return res, found, err
		}
	}
	res.Signal = r.cie.signal
	res, err = apply(&r.st, r.cie, ctx, mem, res)
	if err != nil {
		return res, true, fmt.Errorf("cfi: unwind pc %#x with the FDE at %s+%#x: %w", lookupPC, r.section, r.fdeOff, err)
	}
	return res, true, nil
}

// maxMemoRows bounds the rows a File keeps for the pcs it unwound: a
// profiler's working set of pcs, at about 1 KiB each.
const maxMemoRows = 1 << 14

// memoRow is the row of one pc, kept so that unwinding the same pc again
// (the next walk of a process, or another thread in the same code) runs
// no CFA program again.
type memoRow struct {
	st      regState
	cie     *cie
	section string // for errors: where the FDE is
	fdeOff  int
}

// row finds the rules at link-time address pc and memoizes them: r nil
// with found false when no FDE covers pc, with found true when its
// program fails. It reads the sections, which may be mapped: a fault in
// a mapping is an error (the file shrank), not the end of the process.
func (f *File) row(pc uint64) (r *memoRow, found bool, err error) {
	if f.maps.Any() {
		defer f.maps.Catch(&err, f.maps.Guard())
	}
	s, fd, err := f.lookup(pc)
	if fd == nil {
		return nil, false, err
	}
	r = &memoRow{cie: fd.cie, section: s.name, fdeOff: fd.off}
	if err := s.rulesAt(fd, pc, &r.st); err != nil {
		return nil, true, err
	}
	f.rows.put(pc, r)
	return r, true, nil
}

// rowMemo maps link-time pcs to their rows. It is safe for concurrent
// use; when full it starts again empty.
type rowMemo struct {
	mu   sync.RWMutex
	rows map[uint64]*memoRow
}

func (m *rowMemo) get(pc uint64) *memoRow {
	m.mu.RLock()
	r := m.rows[pc]
	m.mu.RUnlock()
	return r
}

func (m *rowMemo) put(pc uint64, r *memoRow) {
	m.mu.Lock()
	if m.rows == nil || len(m.rows) >= maxMemoRows {
		m.rows = make(map[uint64]*memoRow)
	}
	m.rows[pc] = r
	m.mu.Unlock()
}

// apply recovers the caller's registers from ctx by the rules st.
func apply(st *regState, ci *cie, ctx *unwind.Context, mem unwind.Memory, res StepResult) (StepResult, error) {
	env := evalEnv{ctx: ctx, mem: mem}
	switch st.cfa.Kind {
	case RuleCFA:
		v, ok := regValue(ctx, st.cfa.Reg)
		if !ok {
			return res, &FormatError{Msg: "CFA rule uses a register without a value", Val: st.cfa.Reg}
		}
		env.cfa = v + uint64(st.cfa.Offset)
	case RuleCFAExpression:
		v, err := eval(st.cfa.Expr, &env)
		if err != nil {
			return res, err
		}
		env.cfa = v
		res.CFAExpression = true
	default:
		return res, &FormatError{Msg: "no CFA rule"}
	}
	env.haveCFA = true
	res.CFA = env.cfa
	switch st.regs[ci.raReg].Kind {
	case RuleUndefined:
		res.End = true
		return res, nil
	case RuleUnspecified, RuleSameValue:
		// The return address would be the pc itself: a loop.
		return res, &FormatError{Msg: "return address has no rule", Val: ci.raReg}
	}
	out := *ctx
	if st.regs[RegRSP].Kind == RuleUnspecified {
		out.Rsp = env.cfa // the x86-64 convention: the caller's rsp is the CFA
	}
	for r := range NumRegs {
		v, set, err := recoverReg(&st.regs[r], &env)
		if err != nil {
			return res, fmt.Errorf("recover %s: %w", RegName(r), err)
		}
		if !set {
			continue
		}
		if r == int(ci.raReg) {
			out.Rip = v
		}
		if r < 16 {
			out.SetReg(dwarfToContext[r], v)
		}
	}
	*ctx = out
	return res, nil
}

// recoverReg returns the caller's value of a register by rule r; set is
// false when the value stays as it is.
func recoverReg(r *Rule, env *evalEnv) (v uint64, set bool, err error) {
	switch r.Kind {
	case RuleUnspecified, RuleSameValue, RuleUndefined:
		return 0, false, nil
	case RuleOffset:
		v, err = readU64(env.mem, env.cfa+uint64(r.Offset), 8)
	case RuleValOffset:
		v = env.cfa + uint64(r.Offset)
	case RuleRegister:
		var ok bool
		if v, ok = regValue(env.ctx, r.Reg); !ok {
			return 0, false, &FormatError{Msg: "rule copies a register without a value", Val: r.Reg}
		}
	case RuleExpression:
		var addr uint64
		if addr, err = eval(r.Expr, env, env.cfa); err == nil {
			v, err = readU64(env.mem, addr, 8)
		}
	case RuleValExpression:
		v, err = eval(r.Expr, env, env.cfa)
	default:
		return 0, false, &FormatError{Msg: "rule of unknown kind", Val: r.Kind}
	}
	return v, err == nil, err
}
