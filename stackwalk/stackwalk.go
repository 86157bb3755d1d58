package stackwalk

import (
	"errors"
	"fmt"

	"github.com/fntable/fntable/target"
	"github.com/fntable/fntable/unwind"
)

// How tells how a frame was found: from the thread's registers, or by the
// unwinder that stepped out of the frame below it.
type How uint8

// The ways a frame is found (the package documentation gives the order
// in which the walker tries the unwinders).
const (
	HowContext How = iota // the thread's registers (the innermost frame, or a start context)
	HowTable              // a dynamic function table published in the target (RtlAddFunctionTable ...)
	HowPE                 // the exception directory (.pdata) of a PE image mapped in the target
	HowCFI                // ELF call-frame information (.eh_frame, .debug_frame)
	HowFP                 // the frame-pointer chain (rbp)
	HowGo                 // Go's own unwind data: the pclntab's pcsp table for Go code, and the way back from runtime.asmcgocall to the goroutine that called C (or JIT) code
)

var howNames = [...]string{"context", "table", "pe", "cfi", "fp", "go", "scan"}

// String returns the name of h as the CLI prints it: "context", "table",
// "pe", "cfi", "fp", "go" or "scan".
func (h How) String() string {
	if int(h) < len(howNames) {
		return howNames[h]
	}
	return fmt.Sprintf("How(%d)", h)
}

// Frame is one frame of a walk.
type Frame struct {
	PC  uint64 // the frame's instruction pointer: where it executes, or the return address it will resume at
	SP  uint64 // the frame's stack pointer
	CFA uint64 // the canonical frame address: the caller's SP just before its call; 0 when the frame could not be unwound
	How How    // how this frame was found

	// SymbolPC is the address to symbolize: PC for the innermost frame
	// and for a frame interrupted by a signal or an exception, PC-1 for
	// a frame that made a call (its return address may be the first
	// instruction of the next function, or of the next line).
	SymbolPC uint64

	// Interrupted reports that the frame's PC is where it was interrupted
	// (a signal frame, a machine frame) and not a return address.
	Interrupted bool

	// Context holds the frame's registers as far as the walk knows them:
	// RIP, RSP and the registers the unwinders restored; the others keep
	// values from frames below and are not to be trusted.
	Context unwind.Context
}

// Limits of a walk.
const (
	// DefaultMaxFrames is the frame limit when Options.MaxFrames is 0:
	// deep enough for any real stack, small enough to end a corrupted one
	// quickly.
	DefaultMaxFrames = 1024
	// maxFlatSteps bounds the steps in a row that do not raise the stack
	// pointer (signal frames on an alternate stack and Wine's return to
	// a thread's Windows stack do not).
	maxFlatSteps = 16
)

// These are the errors that end a walk, besides those of the memory and
// of the unwind data, which they wrap.
var (
	// ErrNoUnwinder: no unwinder knows how to leave the frame's PC.
	ErrNoUnwinder = errors.New("no unwind information for the frame")
	// ErrStackDirection: the stack pointer went down (or stayed) without
	// unwind data describing a stack switch.
	ErrStackDirection = errors.New("stack pointer did not increase")
	// ErrLoop: a frame repeated itself.
	ErrLoop = errors.New("frames repeat")
	// ErrTooManyFrames: the walk reached its frame limit.
	ErrTooManyFrames = errors.New("frame limit reached")
	// ErrNotCode: the caller's PC is in no executable mapping of a live
	// process (a return address read from a slot that holds something
	// else).
	ErrNotCode = errors.New("return address is not in executable memory")
	// ErrUnsupportedArch: the target is not an x64 process (a minidump
	// of an x86 or ARM64 process); [NewSources] refuses it.
	ErrUnsupportedArch = errors.New("fntable unwinds x64 stacks only")
)

// FrameError is the error that ended a walk: which frame could not be
// unwound, and why.
type FrameError struct {
	Frame int    // index of the frame that could not be unwound
	PC    uint64 // its PC
	Err   error
}

func (e *FrameError) Error() string {
	return fmt.Sprintf("unwind frame %d at %#x: %v", e.Frame, e.PC, e.Err)
}

func (e *FrameError) Unwrap() error { return e.Err }

// Walker walks one stack, frame by frame, like bufio.Scanner:
//
//	w := s.Walk(ctx)
//	for w.Next() {
//		f := w.Frame()
//		...
//	}
//	if err := w.Err(); err != nil { ... }
//
// A Walker is not safe for concurrent use; walk threads concurrently with
// one Walker each over the same [Sources].
type Walker struct {
	s     *Sources
	max   int
	n     int   // frames returned so far
	cur   Frame // the frame Next returned
	next  Frame // the caller of cur, when have
	have  bool  // next is valid
	done  bool  // no more frames
	err   error
	flat  int // steps in a row that did not raise SP
	seen  map[[2]uint64]struct{}
	start unwind.Context
	ctx   unwind.Context // the registers being unwound: in the Walker, not on the heap each step
}

// Walk returns a Walker over the stack whose innermost frame has the
// registers ctx.
func (s *Sources) Walk(ctx unwind.Context) *Walker {
	m := s.opts.MaxFrames
	if m <= 0 {
		m = DefaultMaxFrames
	}
	return &Walker{s: s, max: m, start: ctx}
}

// WalkThread returns a Walker over the stack of thread tid of the target,
// which must implement [target.Threads]. Its registers are read at once;
// a failure shows in the Walker's Err.
func (s *Sources) WalkThread(tid int) *Walker {
	w := s.Walk(unwind.Context{})
	th, ok := s.t.(target.Threads)
	if !ok {
		w.fail(-1, 0, errors.New("the target has no threads"))
		return w
	}
	if err := th.ThreadContext(tid, &w.start); err != nil {
		w.fail(-1, 0, fmt.Errorf("read registers of thread %d: %w", tid, err))
	}
	return w
}

func (w *Walker) fail(i int, pc uint64, err error) {
	w.done = true
	if i < 0 {
		w.err = err
		return
	}
	w.err = &FrameError{Frame: i, PC: pc, Err: err}
}

// Next advances to the next frame, the innermost first. It returns false
// at the end of the stack or when a frame cannot be unwound; Err tells
// which.
func (w *Walker) Next() bool {
	if w.done {
		return false
	}
	if w.n == 0 {
		w.cur = Frame{PC: w.start.Rip, SP: w.start.Rsp, How: HowContext, SymbolPC: w.start.Rip, Context: w.start}
	} else {
		if !w.have {
			w.done = true
			return false
		}
		w.cur = w.next
	}
	if w.n >= w.max {
		w.fail(w.n, w.cur.PC, fmt.Errorf("%w (%d)", ErrTooManyFrames, w.max))
		return false
	}
	w.n++
	w.have = false
	w.step()
	return true
}

// step unwinds w.cur, setting its CFA and w.next, or ends the walk after
// w.cur (with an error when it could not be unwound).
func (w *Walker) step() {
	cur := &w.cur
	i := w.n - 1
	if cur.PC == 0 {
		w.done = true // a start context with no PC: nothing to unwind
		return
	}
	kind, entry := goNormal, uint64(0)
	if i > 0 {
		kind, entry = w.s.goFunc(cur.SymbolPC)
	}
	if kind == goTop || kind == goSPWrite {
		w.done = true // where Go's own traceback ends
		return
	}
	lookup := cur.PC
	if i > 0 && !cur.Interrupted {
		lookup = cur.PC - 1
	}
	w.ctx = cur.Context
	ctx := &w.ctx
	var (
		st  stepResult
		err error
	)
	if kind == goCgoCall {
		// Back from the system stack to the goroutine's.
		st = stepResult{how: HowGo, switched: true}
		st.cfa, err = goCgoCaller(w.s.mem, ctx, entry)
	} else {
		st, err = w.s.step(ctx, lookup)
	}
	if err == nil && st.how == HowFP {
		// The frame-pointer step is a guess: a caller it finds that
		// cannot be one ends the walk, or gives way to the scan.
		err = w.s.checkFPCaller(ctx.Rip)
	}
	if err != nil && w.s.opts.Scan && (errors.Is(err, ErrNoUnwinder) || st.how == HowFP) {
		// No unwinder knows the frame, or only the frame-pointer guess
		// did and found no caller: look for a return address on the
		// stack (scan.go).
		w.ctx = cur.Context
		if scanned, ok := w.s.scan(ctx); ok {
			st, err = scanned, nil
		} else {
			err = scanError(err)
		}
	}
	if err != nil {
		w.fail(i, cur.PC, err)
		return
	}
	cur.CFA = st.cfa
	if st.interrupted && st.how == HowCFI {
		// A signal trampoline (its FDE is a signal frame): it was not
		// called, the kernel made its frame, so its PC names it.
		cur.SymbolPC = cur.PC
	}
	if st.end || ctx.Rip == 0 {
		// The unwind data marks the outermost frame, or the return
		// address is 0 (Windows' outermost frames return to 0).
		w.done = true
		return
	}
	// The caller's PC must be code: a return address read from a slot
	// that held something else (the end of a stack that no unwind data
	// marks as the end, such as a Go runtime thread's) ends the walk
	// here rather than adding a frame that is not one. (checkFPCaller
	// made the same check for a frame-pointer step, before the scan.)
	if !w.s.executable(ctx.Rip) {
		w.fail(i, cur.PC, fmt.Errorf("%w: %#x (%s)", ErrNotCode, ctx.Rip, st.how))
		return
	}
	// Guards: the stack grows down, so the caller's SP is above ours,
	// unless the unwind data said this was a stack switch.
	if ctx.Rsp <= cur.SP {
		if !st.interrupted && !st.switched {
			w.fail(i, cur.PC, fmt.Errorf("%w: caller's rsp %#x, frame's %#x (%s)", ErrStackDirection, ctx.Rsp, cur.SP, st.how))
			return
		}
		if w.flat++; w.flat > maxFlatSteps {
			w.fail(i, cur.PC, fmt.Errorf("%w: %d stack switches in a row", ErrLoop, w.flat))
			return
		}
		if w.seen == nil {
			w.seen = map[[2]uint64]struct{}{}
		}
		k := [2]uint64{ctx.Rip, ctx.Rsp}
		if _, dup := w.seen[k]; dup {
			w.fail(i, cur.PC, fmt.Errorf("%w: pc %#x sp %#x again", ErrLoop, ctx.Rip, ctx.Rsp))
			return
		}
		w.seen[k] = struct{}{}
	} else {
		w.flat = 0
	}
	sym := ctx.Rip
	if !st.interrupted && sym != 0 {
		sym--
	}
	w.next = Frame{PC: ctx.Rip, SP: ctx.Rsp, How: st.how, SymbolPC: sym, Interrupted: st.interrupted, Context: *ctx}
	w.have = true
}

// Frame returns the frame Next advanced to.
func (w *Walker) Frame() Frame { return w.cur }

// Err returns the error that ended the walk, or nil when it reached the
// end of the stack (a zero return address, or unwind data that marks the
// outermost frame). The error is a *[FrameError] when a frame could not
// be unwound.
func (w *Walker) Err() error { return w.err }

// checkFPCaller judges pc, the return address the frame-pointer step
// read through rbp: nil when it may be a caller's PC (or is 0, the end of
// a live process's stack), else why not, wrapping [ErrNotCode].
func (s *Sources) checkFPCaller(pc uint64) error {
	if !s.fpCallerKnown(pc) {
		// Without the target's mappings (a dump), a return address that
		// only the frame-pointer guess found, and that is in no module
		// and no function table, is more likely a stale slot than code;
		// a zero there is no sign of the stack's end either.
		return fmt.Errorf("%w: %#x, read through rbp, is in no module or function table of the target", ErrNotCode, pc)
	}
	if pc != 0 && !s.executable(pc) {
		return fmt.Errorf("%w: %#x (%s)", ErrNotCode, pc, HowFP)
	}
	return nil
}
