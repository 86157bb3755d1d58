package stackwalk

import (
	"encoding/binary"

	"github.com/fntable/fntable/internal/gopclntab"
	"github.com/fntable/fntable/memory"
	"github.com/fntable/fntable/unwind"
)

// Go's own tracebacks know three kinds of functions that CFI does not
// describe well, and mark them in the pclntab rather than in the CFI:
//
//   - top frames (flag FuncFlagTopFrame): where a goroutine's stack begins
//     (runtime.goexit) and where a thread's system stack begins
//     (runtime.mstart); the CFI's last rows describe whatever the stack
//     holds above them;
//   - functions that write SP (flag FuncFlagSPWrite): the assembly that
//     switches stacks (runtime.mcall, runtime.morestack,
//     runtime.systemstack, ...). Go's traceback stops at them unless they
//     are the innermost frame, because what their CFI says about the
//     caller is not true after the switch;
//   - runtime.asmcgocall (FuncID_asmcgocall), through which Go calls C
//     code, and code called like C (purego, a JIT): it switches from the
//     goroutine's stack to the thread's system stack and leaves there the
//     way back, which the walker follows (see [goCgoCaller]).
//
// The walker reads them so that a Go thread's walk ends where Go's own
// would, and goes on from C (or JIT) code back into the goroutine that
// called it. The same table's pcsp values unwind Go code that has no
// .debug_frame (see goStep).
//
// Reference: the Go runtime's pcHeader and _func (runtime/symtab.go,
// runtime/runtime2.go), abi.FuncFlag and abi.FuncID
// (internal/abi/symtab.go), and runtime·asmcgocall
// (runtime/asm_amd64.s).

// goKind is what the walker does at a frame in a special Go function.
type goKind uint8

const (
	goNormal  goKind = iota
	goTop            // the walk ends: the outermost frame of its stack
	goSPWrite        // the walk ends: a stack switch Go's traceback does not cross either
	goCgoCall        // runtime.asmcgocall: go on in the goroutine that called C
)

// goFuncKind classifies a function of a pclntab.
func goFuncKind(f gopclntab.Func) goKind {
	switch {
	case f.ID == gopclntab.IDAsmcgocall:
		return goCgoCall // it writes SP too: the way back is known
	case f.Flag&gopclntab.FlagTopFrame != 0:
		return goTop
	case f.Flag&gopclntab.FlagSPWrite != 0:
		return goSPWrite
	}
	return goNormal
}

// goStep unwinds a frame of Go code with the pclntab's pcsp table, as
// Go's own traceback does, for Go programs without .debug_frame (linked
// with -w, as go run does): the CFA is RSP plus what the function pushed
// and allocated at lookupPC (link-time) plus the return address; the
// caller's RIP is below the CFA, and, where the function has saved the
// caller's frame pointer (Go saves RBP first thing in every function
// with a frame), RBP is restored from below that.
func goStep(tab *gopclntab.Table, mem unwind.Memory, ctx *unwind.Context, lookupPC uint64) (cfa uint64, ok bool, err error) {
	if m := tab.Mapping(); m.Any() {
		defer m.Catch(&err, m.Guard())
	}
	f, ok := tab.FuncAt(lookupPC)
	if !ok {
		return 0, false, nil
	}
	d, ok := tab.SPDelta(f, lookupPC)
	if !ok || d < -8 || d > maxFrameSize {
		return 0, false, nil
	}
	cfa = uint64(int64(ctx.Rsp) + d + 8)
	var b [16]byte
	if err := memory.ReadFull(mem, b[:], cfa-16); err != nil {
		return 0, false, err
	}
	if d >= 8 {
		ctx.Rbp = binary.LittleEndian.Uint64(b[:8])
	}
	ctx.Rip = binary.LittleEndian.Uint64(b[8:])
	ctx.Rsp = cfa
	return cfa, true, nil
}

// Where runtime·asmcgocall keeps the way back, at the SP of its frame
// once the C function (entered through asmcgocall_landingpad) returned:
//
//	0(SP)  the depth of the goroutine's SP below g.stack.hi; or, on the
//	       path for a call made on the system stack already ("nosave"),
//	       the SP itself
//	8(SP)  g, the goroutine; 0 on the nosave path
//
// The goroutine's SP there is asmcgocall's SP after its prologue: it
// points at the caller's RBP when the prologue pushed it (push rbp; mov
// rbp, rsp: the assembler adds that frame pointer prologue in recent Go
// releases even to this frameless function), then at the return address
// into runtime.cgocall. g.stack.hi is the second word of g (g.stack is its
// first field, {lo, hi}), in every Go release.
const (
	goStackHiOff = 8
	opPushRBP    = 0x55
)

// goCgoCaller unwinds a frame in runtime.asmcgocall (registers ctx, on the
// system stack; entry is the function's run-time address) to its caller
// on the goroutine's stack: it sets ctx's RIP, RSP and RBP and returns
// the CFA (the caller's SP).
func goCgoCaller(mem unwind.Memory, ctx *unwind.Context, entry uint64) (uint64, error) {
	var b [16]byte
	if err := memory.ReadFull(mem, b[:], ctx.Rsp); err != nil {
		return 0, err
	}
	le := binary.LittleEndian
	sp, g := le.Uint64(b[0:]), le.Uint64(b[8:])
	if g != 0 {
		var hi [8]byte
		if err := memory.ReadFull(mem, hi[:], g+goStackHiOff); err != nil {
			return 0, err
		}
		sp = le.Uint64(hi[:]) - sp
	}
	var op [1]byte
	if err := memory.ReadFull(mem, op[:], entry); err != nil {
		return 0, err
	}
	if op[0] == opPushRBP {
		if err := memory.ReadFull(mem, b[:], sp); err != nil {
			return 0, err
		}
		ctx.Rbp, ctx.Rip, ctx.Rsp = le.Uint64(b[:8]), le.Uint64(b[8:]), sp+16
		return sp + 16, nil
	}
	if err := memory.ReadFull(mem, b[:8], sp); err != nil {
		return 0, err
	}
	ctx.Rip, ctx.Rsp = le.Uint64(b[:8]), sp+8
	return sp + 8, nil
}

// goFuncAt is tab.FuncAt with a fault in a mapped pclntab (its file
// shrank) taken as no function.
func goFuncAt(tab *gopclntab.Table, pc uint64) (f gopclntab.Func, ok bool) {
	if m := tab.Mapping(); m.Any() {
		var err error
		defer func() {
			if err != nil {
				f, ok = gopclntab.Func{}, false
			}
		}()
		defer m.Catch(&err, m.Guard())
	}
	return tab.FuncAt(pc)
}
