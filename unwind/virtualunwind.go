package unwind

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/fntable/fntable/unwindinfo"
)

// HandlerType selects which language-specific handler VirtualUnwind
// reports, as the HandlerType argument of RtlVirtualUnwind.
type HandlerType uint32

// Handler types (the UNW_FLAG_* values of winnt.h).
const (
	HandlerNone      HandlerType = 0 // UNW_FLAG_NHANDLER: report no handler
	HandlerException HandlerType = 1 // UNW_FLAG_EHANDLER: exception handlers
	HandlerUnwind    HandlerType = 2 // UNW_FLAG_UHANDLER: termination handlers
)

// Result is what one virtual unwind step produces besides the updated
// Context: the out-parameters of RtlVirtualUnwind.
type Result struct {
	// HandlerRoutine is the address of the language-specific handler, or 0
	// when there is none of the requested type, or control was in the
	// prolog or an epilog.
	HandlerRoutine uint64
	// HandlerData is the address of the handler's data, or 0.
	HandlerData uint64
	// EstablisherFrame is the function's frame: its frame pointer minus the
	// frame offset, or the stack pointer of its body.
	EstablisherFrame uint64
	// Flags says how the step went: see [Result.InEpilog] and
	// [Result.MachineFrame].
	Flags StepFlags
}

// StepFlags are the flags of a [Result]. They are one field, not one bool
// each, so that a Result has four fields: the compiler then keeps one in
// registers, where a fifth field would make every caller store it to
// memory and copy it.
type StepFlags uint8

// The flags of a step.
const (
	// StepInEpilog: control was in an epilog, which was emulated.
	StepInEpilog StepFlags = 1 << iota
	// StepMachineFrame: a machine frame (UWOP_PUSH_MACHFRAME) was unwound;
	// RIP and RSP come from an interrupt or exception frame and RIP is not
	// a return address.
	StepMachineFrame
)

// InEpilog reports that control was in an epilog, which was emulated.
func (r Result) InEpilog() bool { return r.Flags&StepInEpilog != 0 }

// MachineFrame reports that a machine frame (UWOP_PUSH_MACHFRAME) was
// unwound: RIP and RSP come from an interrupt or exception frame and RIP is
// not a return address.
func (r Result) MachineFrame() bool { return r.Flags&StepMachineFrame != 0 }

// FunctionTable finds the function table entry for a code address, like
// RtlLookupFunctionEntry. The returned entry must stay valid and unchanged
// while the caller uses it; imageBase is the base its RVAs are relative to.
// A table without an entry for pc returns ok=false.
type FunctionTable interface {
	LookupFunctionEntry(pc uint64) (fn *unwindinfo.RuntimeFunction, imageBase uint64, ok bool)
}

// These are the errors returned by VirtualUnwind besides those of Memory
// and of package unwindinfo (which wrap unwindinfo.ErrMalformed).
var (
	// ErrIndirectLoop: an indirect function entry chain does not end.
	ErrIndirectLoop = errors.New("indirect function entries do not end")
)

// An Unwinder unwinds through a Memory. Its zero value reads nothing; set
// Memory. An Unwinder is safe for concurrent use if its Memory and
// Functions are.
type Unwinder struct {
	// Memory holds the code, the unwind information and the stack.
	Memory Memory
	// Functions, if set, is consulted when an epilog ends in a jump out of
	// the function's entry, to tell a tail call from a jump into another
	// part of the same function (Windows' SameFunction check). Without it,
	// every such jump is a tail call.
	Functions FunctionTable
}

// VirtualUnwind unwinds one frame through mem, as RtlVirtualUnwind does.
// If mem also implements [FunctionTable], it is used as
// [Unwinder.Functions]. See [Unwinder.VirtualUnwind].
func VirtualUnwind(ht HandlerType, imageBase, controlPC uint64, fn *unwindinfo.RuntimeFunction, ctx *Context, ptrs *ContextPointers, mem Memory) (Result, error) {
	u := Unwinder{Memory: mem}
	u.Functions, _ = mem.(FunctionTable)
	return u.VirtualUnwind(ht, imageBase, controlPC, fn, ctx, ptrs)
}

// VirtualUnwind unwinds one frame: given the function table entry fn for
// controlPC (nil for a leaf function, which has none) and the register
// state ctx of the function, it updates ctx to the state of its caller
// and returns the establisher frame and the handler of type ht if control
// left the function in its body.
//
// ptrs, which may be nil, is the ContextPointers argument of
// RtlVirtualUnwind: for each register restored from memory, VirtualUnwind
// stores the address it was read from, and leaves the other entries as
// they are. A stack walk that passes the same ContextPointers to each
// step thus ends with, for each register, where its value in the last
// frame is saved; zero ptrs before a step to learn what that step alone
// restored.
//
// VirtualUnwind follows the current Windows RtlVirtualUnwind for x64:
//
//   - a leaf function pops its return address;
//   - for UNWIND_INFO version 1, an epilog is recognised by decoding the
//     instructions at controlPC (add/lea rsp, pops, then ret or a tail
//     jump) and emulated forward; version 2 finds epilogs with its
//     UWOP_EPILOG codes;
//   - otherwise the prolog codes whose offset controlPC has passed are
//     reversed, for fn and each chained parent (at most
//     unwindinfo.ChainLimit links);
//   - a handler is reported only outside the prolog and epilogs, and only
//     if the primary entry's flags include ht.
//
// Indirect entries (UnwindData bit 0) are resolved. On error ctx and ptrs
// may have been partly updated. VirtualUnwind does not allocate.
func (u *Unwinder) VirtualUnwind(ht HandlerType, imageBase, controlPC uint64, fn *unwindinfo.RuntimeFunction, ctx *Context, ptrs *ContextPointers) (Result, error) {
	sm, _ := u.Memory.(*SplicedMemory)
	if sm != nil && fn != nil {
		if h, d, f, fl, ok := fastStep(sm, fn, ctx, ptrs, imageBase, controlPC, ht); ok {
			return Result{h, d, f, fl}, nil
		}
	}
	return u.unwindGo(sm, ht, imageBase, controlPC, fn, ctx, ptrs)
}

// unwindGo is VirtualUnwind in Go: the Go fast path if u.Memory is the
// SplicedMemory sm (nil if it is not one), then the general path.
func (u *Unwinder) unwindGo(sm *SplicedMemory, ht HandlerType, imageBase, controlPC uint64, fn *unwindinfo.RuntimeFunction, ctx *Context, ptrs *ContextPointers) (res Result, err error) {
	if sm != nil && fn != nil {
		if fastUnwind(sm, ht, imageBase, controlPC, fn, ctx, &res, ptrs) {
			return res, nil
		}
		res = Result{}
	}
	if ptrs == nil {
		ptrs = new(ContextPointers) // on the stack: it does not escape
	}
	err = u.virtualUnwind(ht, imageBase, controlPC, fn, ctx, &res, ptrs)
	return res, err
}

// virtualUnwind is the general path of VirtualUnwind, for any Memory and
// every kind of unwind information; res must be zero on entry.
func (u *Unwinder) virtualUnwind(ht HandlerType, imageBase, controlPC uint64, fn *unwindinfo.RuntimeFunction, ctx *Context, res *Result, ptrs *ContextPointers) (err error) {
	r := newReader(u.Memory)
	defer r.release()

	if fn == nil {
		// Leaf function: RSP points at the return address.
		res.EstablisherFrame = ctx.Rsp
		rip, err := r.u64(ctx.Rsp)
		if err != nil {
			return fmt.Errorf("unwind leaf function at %#x: read return address: %w", controlPC, err)
		}
		ctx.Rip = rip
		ctx.Rsp += 8
		return nil
	}
	entry := *fn
	if entry.Indirect() {
		if entry, err = resolveIndirect(&r, imageBase, entry); err != nil {
			return err
		}
	}
	infoAddr := imageBase + uint64(entry.UnwindData)
	in, err := readInfo(&r, areaInfo, infoAddr)
	if err != nil {
		return fmt.Errorf("unwind function at %#x: %w", imageBase+uint64(entry.BeginAddress), err)
	}

	// Establisher frame ([clr] VirtualUnwind).
	prologOffset := uint32(controlPC - imageBase - uint64(entry.BeginAddress))
	res.EstablisherFrame = ctx.Rsp
	if fr := in.frameReg(); fr != 0 {
		framed := true
		if prologOffset < in.prolog() && in.flags()&unwindinfo.UNW_FLAG_CHAININFO == 0 {
			// In the prolog: framed only once SET_FPREG has executed.
			framed = false
			for i, n := 0, in.count(); i < n; {
				s := in.slot(i)
				if unwindinfo.Op(s>>8)&0xf == unwindinfo.UWOP_SET_FPREG {
					framed = prologOffset >= uint32(uint8(s))
					break
				}
				k := codeSlots(in.version(), s)
				if k == 0 {
					return badCode(infoAddr, i, s, false)
				}
				i += k
			}
		}
		if framed {
			res.EstablisherFrame = ctx.Reg(fr) - in.frameOff()
		}
	}

	// Epilogs.
	if in.count() != 0 {
		if in.version() < 2 {
			inProlog := controlPC-imageBase-uint64(entry.BeginAddress) < uint64(in.prolog())
			if !inProlog {
				ok, err := u.unwindV1Epilog(&r, imageBase, controlPC, entry, in, ctx, res, ptrs)
				if err != nil || ok {
					return err
				}
			}
		} else {
			ok, err := unwindV2Epilog(&r, imageBase, controlPC, entry, in, ctx, res, ptrs)
			if err != nil || ok {
				return err
			}
		}
	}

	// Body or prolog: reverse the prolog codes of entry and its parents.
	primary, pin, err := unwindPrologue(&r, imageBase, controlPC, res.EstablisherFrame, entry, in, ctx, res, ptrs)
	if err != nil {
		return err
	}

	if ht != HandlerNone {
		po := uint32(controlPC - imageBase - uint64(primary.BeginAddress))
		if po >= pin.prolog() && uint32(pin.flags())&uint32(ht) != 0 && pin.flags().HasHandler() {
			// The handler RVA follows the codes; readInfo left it out.
			at := imageBase + uint64(primary.UnwindData) + uint64(pin.trailer())
			b, err := r.bytes(areaOther, at, 4)
			if err != nil {
				return fmt.Errorf("read handler of unwind info at %#x: %w", imageBase+uint64(primary.UnwindData), err)
			}
			res.HandlerRoutine = imageBase + uint64(binary.LittleEndian.Uint32(b))
			res.HandlerData = at + 4
		}
	}
	return nil
}

// ResolveIndirect follows indirect entries (RUNTIME_FUNCTION_INDIRECT)
// from fn, read from mem, as the unwinder does.
func ResolveIndirect(mem Memory, imageBase uint64, fn unwindinfo.RuntimeFunction) (unwindinfo.RuntimeFunction, error) {
	r := newReader(mem)
	defer r.release()
	return resolveIndirect(&r, imageBase, fn)
}

// resolveIndirect follows indirect entries (RUNTIME_FUNCTION_INDIRECT).
func resolveIndirect(r *reader, imageBase uint64, fn unwindinfo.RuntimeFunction) (unwindinfo.RuntimeFunction, error) {
	for i := 0; fn.Indirect(); i++ {
		if i == unwindinfo.ChainLimit {
			return fn, fmt.Errorf("resolve function entry at %#x: %w", imageBase+uint64(fn.BeginAddress), ErrIndirectLoop)
		}
		addr := imageBase + uint64(fn.UnwindData&^unwindinfo.RUNTIME_FUNCTION_INDIRECT)
		b, err := r.bytes(areaOther, addr, unwindinfo.RuntimeFunctionSize)
		if err != nil {
			return fn, fmt.Errorf("resolve indirect function entry at %#x: %w", addr, err)
		}
		fn, _ = unwindinfo.DecodeRuntimeFunction(b)
	}
	return fn, nil
}

// chainErr is the error for a chain longer than the limit.
func chainErr(addr uint64) error {
	return &unwindinfo.FormatError{Off: int64(addr), Msg: fmt.Sprintf("chained unwind info at %#x", addr),
		Val: unwindinfo.ChainLimit, Err: unwindinfo.ErrChainTooDeep}
}

// unwindPrologue reverses the effect of the prolog codes that have executed,
// for entry (whose unwind information is in) and every chained parent
// ([clr] UnwindPrologue). It returns the primary (final) entry and its
// unwind information.
func unwindPrologue(r *reader, imageBase, controlPC, frameBase uint64, entry unwindinfo.RuntimeFunction, in info, ctx *Context, res *Result, ptrs *ContextPointers) (unwindinfo.RuntimeFunction, info, error) {
	for chain := 0; ; chain++ {
		infoAddr := imageBase + uint64(entry.UnwindData)
		if chain > 0 {
			if chain > unwindinfo.ChainLimit {
				return entry, nil, chainErr(infoAddr)
			}
			var err error
			if in, err = readInfo(r, areaInfo, infoAddr); err != nil {
				return entry, nil, err
			}
		}
		prologOffset := uint32(controlPC - imageBase - uint64(entry.BeginAddress))
		machineFrame := false
		version := in.version()
		n := in.count()
		for i := 0; i < n; {
			s := in.slot(i)
			k := codeSlots(version, s)
			op := unwindinfo.Op(s>>8) & 0xf
			switch {
			case k == 0:
				return entry, nil, badCode(infoAddr, i, s, false)
			case i+k > n && op != unwindinfo.UWOP_EPILOG:
				return entry, nil, badCode(infoAddr, i, s, true)
			}
			if prologOffset >= uint32(uint8(s)) {
				switch op {
				case unwindinfo.UWOP_PUSH_NONVOL: // the most common code, inline
					reg := s >> 12
					v, err := r.u64(ctx.Rsp)
					if err != nil {
						return entry, nil, fmt.Errorf("unwind PUSH_NONVOL at %#x: %w", controlPC, err)
					}
					ctx.gpr()[reg] = v
					ptrs.Integer[reg] = ctx.Rsp
					ctx.Rsp += 8
				case unwindinfo.UWOP_ALLOC_SMALL:
					ctx.Rsp += uint64(s>>12)*8 + 8
				case unwindinfo.UWOP_EPILOG:
				default:
					if err := applyCode(r, in, i, s, frameBase, ctx, res, ptrs, &machineFrame); err != nil {
						return entry, nil, fmt.Errorf("unwind %s at %#x: %w", op.Name(), controlPC, err)
					}
				}
			}
			i += k
		}
		parent, chained := in.chained()
		if !chained {
			if !machineFrame {
				rip, err := r.u64(ctx.Rsp)
				if err != nil {
					return entry, nil, fmt.Errorf("unwind at %#x: read return address: %w", controlPC, err)
				}
				ctx.Rip = rip
				ctx.Rsp += 8
			}
			return entry, in, nil
		}
		entry = parent
	}
}

// applyCode reverses the prolog operation in slot i (s = in.slot(i)).
func applyCode(r *reader, in info, i int, s uint16, frameBase uint64, ctx *Context, res *Result, ptrs *ContextPointers, machineFrame *bool) error {
	opInfo := uint8(s >> 12)
	switch unwindinfo.Op(s>>8) & 0xf {
	case unwindinfo.UWOP_PUSH_NONVOL:
		return popReg(r, unwindinfo.Register(opInfo), ctx, ptrs)
	case unwindinfo.UWOP_ALLOC_LARGE:
		if opInfo == 0 {
			ctx.Rsp += uint64(in.slot(i+1)) * 8
		} else {
			ctx.Rsp += uint64(in.slot(i+1)) | uint64(in.slot(i+2))<<16
		}
	case unwindinfo.UWOP_ALLOC_SMALL:
		ctx.Rsp += uint64(opInfo)*8 + 8
	case unwindinfo.UWOP_SET_FPREG:
		ctx.Rsp = ctx.Reg(in.frameReg()) - in.frameOff()
	case unwindinfo.UWOP_SAVE_NONVOL:
		return restoreReg(r, unwindinfo.Register(opInfo), frameBase+uint64(in.slot(i+1))*8, ctx, ptrs)
	case unwindinfo.UWOP_SAVE_NONVOL_FAR:
		return restoreReg(r, unwindinfo.Register(opInfo), frameBase+(uint64(in.slot(i+1))|uint64(in.slot(i+2))<<16), ctx, ptrs)
	case unwindinfo.UWOP_SAVE_XMM128:
		return restoreXMM(r, opInfo, frameBase+uint64(in.slot(i+1))*16, ctx, ptrs)
	case unwindinfo.UWOP_SAVE_XMM128_FAR:
		return restoreXMM(r, opInfo, frameBase+(uint64(in.slot(i+1))|uint64(in.slot(i+2))<<16), ctx, ptrs)
	case unwindinfo.UWOP_PUSH_MACHFRAME:
		ra := ctx.Rsp
		if opInfo != 0 {
			ra += 8 // error code
		}
		rip, err := r.u64(ra)
		if err != nil {
			return err
		}
		rsp, err := r.u64(ra + 24)
		if err != nil {
			return err
		}
		ctx.Rip, ctx.Rsp = rip, rsp
		*machineFrame = true
		res.Flags |= StepMachineFrame
	}
	return nil
}

// restoreReg restores reg from addr.
func restoreReg(r *reader, reg unwindinfo.Register, addr uint64, ctx *Context, ptrs *ContextPointers) error {
	v, err := r.u64(addr)
	if err != nil {
		return err
	}
	ctx.gpr()[reg&15] = v
	ptrs.Integer[reg&15] = addr
	return nil
}

// restoreXMM restores XMM register x from addr.
func restoreXMM(r *reader, x uint8, addr uint64, ctx *Context, ptrs *ContextPointers) error {
	v, err := r.u128(addr)
	if err != nil {
		return err
	}
	ctx.Xmm[x&15] = v
	ptrs.Floating[x&15] = addr
	return nil
}

// popReg restores reg from the top of the stack.
func popReg(r *reader, reg unwindinfo.Register, ctx *Context, ptrs *ContextPointers) error {
	if err := restoreReg(r, reg, ctx.Rsp, ctx, ptrs); err != nil {
		return err
	}
	ctx.Rsp += 8
	return nil
}
