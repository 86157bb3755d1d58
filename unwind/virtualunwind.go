package unwind

import (
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
	// ContextPointers records where each restored register was read from.
	ContextPointers ContextPointers
	// InEpilog reports that control was in an epilog, which was emulated.
	InEpilog bool
	// MachineFrame reports that a machine frame (UWOP_PUSH_MACHFRAME) was
	// unwound: RIP and RSP come from an interrupt or exception frame and
	// RIP is not a return address.
	MachineFrame bool
}

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
func VirtualUnwind(ht HandlerType, imageBase, controlPC uint64, fn *unwindinfo.RuntimeFunction, ctx *Context, mem Memory) (Result, error) {
	u := Unwinder{Memory: mem}
	u.Functions, _ = mem.(FunctionTable)
	return u.VirtualUnwind(ht, imageBase, controlPC, fn, ctx)
}

// VirtualUnwind unwinds one frame: given the function table entry fn for
// controlPC (nil for a leaf function, which has none) and the register
// state ctx of the function, it updates ctx to the state of its caller
// and returns the establisher frame, the handler of type ht if control
// left the function in its body, and where each register was restored
// from. It follows the current Windows RtlVirtualUnwind for x64:
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
// Indirect entries (UnwindData bit 0) are resolved. On error ctx may have
// been partly updated. VirtualUnwind does not allocate.
func (u *Unwinder) VirtualUnwind(ht HandlerType, imageBase, controlPC uint64, fn *unwindinfo.RuntimeFunction, ctx *Context) (res Result, err error) {
	r := newReader(u.Memory)
	defer r.release()

	if fn == nil {
		// Leaf function: RSP points at the return address.
		res.EstablisherFrame = ctx.Rsp
		rip, err := r.u64(ctx.Rsp)
		if err != nil {
			return res, fmt.Errorf("unwind leaf function at %#x: read return address: %w", controlPC, err)
		}
		ctx.Rip = rip
		ctx.Rsp += 8
		return res, nil
	}
	entry, err := resolveIndirect(&r, imageBase, *fn)
	if err != nil {
		return res, err
	}
	infoAddr := imageBase + uint64(entry.UnwindData)
	v, err := readInfo(&r, areaInfo, infoAddr)
	if err != nil {
		return res, fmt.Errorf("unwind function at %#x: %w", imageBase+uint64(entry.BeginAddress), err)
	}
	h := v.Header()

	// Establisher frame ([clr] VirtualUnwind).
	prologOffset := uint32(controlPC - imageBase - uint64(entry.BeginAddress))
	res.EstablisherFrame = ctx.Rsp
	if h.FrameRegister != 0 {
		framed := true
		if uint32(prologOffset) < uint32(h.SizeOfProlog) && h.Flags&unwindinfo.UNW_FLAG_CHAININFO == 0 {
			// In the prolog: framed only once SET_FPREG has executed.
			framed = false
			for i := 0; i < int(h.CountOfCodes); {
				c, k, err := v.Code(i)
				if err != nil {
					return res, err
				}
				if c.Op == unwindinfo.UWOP_SET_FPREG {
					framed = prologOffset >= uint32(c.Offset)
					break
				}
				i += k
			}
		}
		if framed {
			res.EstablisherFrame = ctx.Reg(h.FrameRegister) - h.FrameOffsetBytes()
		}
	}

	// Epilogs.
	if h.Version < 2 {
		inProlog := controlPC-imageBase-uint64(entry.BeginAddress) < uint64(h.SizeOfProlog)
		if h.CountOfCodes != 0 && !inProlog {
			ok, err := u.unwindV1Epilog(&r, imageBase, controlPC, entry, h, ctx, &res)
			if err != nil || ok {
				return res, err
			}
		}
	} else if h.CountOfCodes != 0 {
		ok, err := unwindV2Epilog(&r, imageBase, controlPC, entry, v, ctx, &res)
		if err != nil || ok {
			return res, err
		}
	}

	// Body or prolog: reverse the prolog codes of entry and its parents.
	primary, primaryInfoAddr, err := unwindPrologue(&r, imageBase, controlPC, res.EstablisherFrame, entry, ctx, &res)
	if err != nil {
		return res, err
	}

	if ht != HandlerNone {
		pv, err := readInfo(&r, areaInfo, primaryInfoAddr)
		if err != nil {
			return res, err
		}
		ph := pv.Header()
		po := uint32(controlPC - imageBase - uint64(primary.BeginAddress))
		if po >= uint32(ph.SizeOfProlog) && uint32(ph.Flags)&uint32(ht) != 0 {
			if rva, ok := pv.HandlerRVA(); ok {
				res.HandlerRoutine = imageBase + uint64(rva)
				res.HandlerData = primaryInfoAddr + uint64(pv.HandlerDataOffset())
			}
		}
	}
	return res, nil
}

// readInfo reads and checks the UNWIND_INFO at addr.
func readInfo(r *reader, area int, addr uint64) (unwindinfo.View, error) {
	b, err := r.bytes(area, addr, unwindinfo.HeaderSize)
	if err != nil {
		return unwindinfo.View{}, fmt.Errorf("read unwind info at %#x: %w", addr, err)
	}
	h, err := unwindinfo.DecodeHeader(b)
	if err != nil {
		return unwindinfo.View{}, fmt.Errorf("read unwind info at %#x: %w", addr, err)
	}
	b, err = r.bytes(area, addr, h.Size())
	if err != nil {
		return unwindinfo.View{}, fmt.Errorf("read unwind info at %#x: %w", addr, err)
	}
	return unwindinfo.NewView(b)
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
// for entry and every chained parent ([clr] UnwindPrologue). It returns the
// primary (final) entry and the address of its UNWIND_INFO.
func unwindPrologue(r *reader, imageBase, controlPC, frameBase uint64, entry unwindinfo.RuntimeFunction, ctx *Context, res *Result) (unwindinfo.RuntimeFunction, uint64, error) {
	for chain := 0; ; chain++ {
		if chain > unwindinfo.ChainLimit {
			return entry, 0, chainErr(imageBase + uint64(entry.UnwindData))
		}
		infoAddr := imageBase + uint64(entry.UnwindData)
		v, err := readInfo(r, areaInfo, infoAddr)
		if err != nil {
			return entry, 0, err
		}
		h := v.Header()
		prologOffset := uint32(controlPC - imageBase - uint64(entry.BeginAddress))
		machineFrame := false
		n := int(h.CountOfCodes)
		for i := 0; i < n; {
			c, k, err := v.Code(i)
			if err != nil {
				return entry, 0, fmt.Errorf("unwind info at %#x: %w", infoAddr, err)
			}
			if c.Op == unwindinfo.UWOP_EPILOG {
				k = 2 // the Windows unwinder steps over epilog codes in pairs
			}
			if prologOffset >= uint32(c.Offset) {
				if err := applyCode(r, c, h, frameBase, ctx, res, &machineFrame); err != nil {
					return entry, 0, fmt.Errorf("unwind %s at %#x: %w", c.Op.Name(), controlPC, err)
				}
			}
			i += k
		}
		parent, chained := v.Chained()
		if !chained {
			if !machineFrame {
				rip, err := r.u64(ctx.Rsp)
				if err != nil {
					return entry, 0, fmt.Errorf("unwind at %#x: read return address: %w", controlPC, err)
				}
				ctx.Rip = rip
				ctx.Rsp += 8
			}
			return entry, infoAddr, nil
		}
		entry = parent
	}
}

// applyCode reverses one prolog operation.
func applyCode(r *reader, c unwindinfo.Code, h unwindinfo.Header, frameBase uint64, ctx *Context, res *Result, machineFrame *bool) error {
	switch c.Op {
	case unwindinfo.UWOP_PUSH_NONVOL:
		return popReg(r, c.Register(), ctx, res)
	case unwindinfo.UWOP_ALLOC_LARGE, unwindinfo.UWOP_ALLOC_SMALL:
		ctx.Rsp += uint64(c.AllocSize())
	case unwindinfo.UWOP_SET_FPREG:
		ctx.Rsp = ctx.Reg(h.FrameRegister) - h.FrameOffsetBytes()
	case unwindinfo.UWOP_SAVE_NONVOL, unwindinfo.UWOP_SAVE_NONVOL_FAR:
		addr := frameBase + uint64(c.StackOffset())
		v, err := r.u64(addr)
		if err != nil {
			return err
		}
		ctx.SetReg(c.Register(), v)
		res.ContextPointers.Integer[c.Register()&15] = addr
	case unwindinfo.UWOP_SAVE_XMM128, unwindinfo.UWOP_SAVE_XMM128_FAR:
		addr := frameBase + uint64(c.StackOffset())
		v, err := r.u128(addr)
		if err != nil {
			return err
		}
		ctx.Xmm[c.XMM()&15] = v
		res.ContextPointers.Floating[c.XMM()&15] = addr
	case unwindinfo.UWOP_PUSH_MACHFRAME:
		ra := ctx.Rsp
		if c.MachineFrameErrorCode() {
			ra += 8
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
		res.MachineFrame = true
	case unwindinfo.UWOP_EPILOG:
		// Describes epilogs; nothing to reverse.
	}
	return nil
}

// popReg restores reg from the top of the stack.
func popReg(r *reader, reg unwindinfo.Register, ctx *Context, res *Result) error {
	addr := ctx.Rsp
	v, err := r.u64(addr)
	if err != nil {
		return err
	}
	ctx.SetReg(reg, v)
	res.ContextPointers.Integer[reg&15] = addr
	ctx.Rsp += 8
	return nil
}
