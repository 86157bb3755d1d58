// Package jitstack lays out call stacks through the code of an
// internal/jitgen image, each frame in the state its function's code
// leaves it in, for demonstrations and tests of stack walkers: it knows
// the registers every frame must unwind to.
package jitstack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/fntable/fntable/internal/jitgen"
	"github.com/fntable/fntable/unwind"
	"github.com/fntable/fntable/unwindinfo"
)

// Nonvolatile are the general registers a Windows x64 function must
// preserve, besides RSP.
var Nonvolatile = [...]unwindinfo.Register{unwindinfo.RBX, unwindinfo.RBP, unwindinfo.RSI, unwindinfo.RDI,
	unwindinfo.R12, unwindinfo.R13, unwindinfo.R14, unwindinfo.R15}

// Diff compares the nonvolatile registers, RIP and RSP of got with
// want's and describes the first difference; "" when they agree.
func Diff(want, got *unwind.Context) string {
	w := want
	if got.Rip != w.Rip || got.Rsp != w.Rsp {
		return fmt.Sprintf("rip %#x rsp %#x, want rip %#x rsp %#x", got.Rip, got.Rsp, w.Rip, w.Rsp)
	}
	for _, r := range Nonvolatile {
		if got.Reg(r) != w.Reg(r) {
			return fmt.Sprintf("%v = %#x, want %#x", r, got.Reg(r), w.Reg(r))
		}
	}
	for x := 6; x < 16; x++ {
		if got.Xmm[x] != w.Xmm[x] {
			return fmt.Sprintf("xmm%d = %x, want %x", x, got.Xmm[x], w.Xmm[x])
		}
	}
	return ""
}

// Stack is a laid-out call stack: Frames[0] holds the registers of the
// innermost frame, the last one those of the outermost frame's caller
// (RIP 0). Bytes are the stack's memory, [High-len(Bytes), High).
type Stack struct {
	Frames []unwind.Context
	Bytes  []byte
	High   uint64
}

// Low returns the address of the stack's first byte.
func (s *Stack) Low() uint64 { return s.High - uint64(len(s.Bytes)) }

// Lay picks depth functions of img (placed at img.Base), a body
// instruction in each, and lays out the stack each would have there,
// called from the next one: return addresses, saved registers in their
// slots, frame registers set. The stack is size bytes below high.
func Lay(img *jitgen.Image, depth int, high uint64, size int, rng *rand.Rand) (*Stack, error) {
	type pick struct {
		f  *jitgen.Function
		in jitgen.Inst
	}
	var cands []pick
	for _, f := range img.Functions {
		if f.MachineFrame {
			continue
		}
		for _, in := range f.Insts {
			// Frames up to 16 KiB, so that deep stacks fit.
			if in.Kind == jitgen.KindBody && in.State.Unwindable && !in.State.Alloca && in.State.SP < 16<<10 {
				cands = append(cands, pick{f, in})
			}
		}
	}
	if len(cands) == 0 {
		return nil, errors.New("the generated code has no body instruction to stop in")
	}
	lo := high - uint64(size)
	s := &Stack{Bytes: make([]byte, size), Frames: make([]unwind.Context, depth+1), High: high}
	// written has a bit per stack byte already given a value; undo lists
	// the bytes the frame being laid out wrote, to take back on failure.
	written := make([]uint64, (size+63)/64)
	var undo []uint64
	put := func(addr uint64, b []byte) bool {
		if addr < lo || addr+uint64(len(b)) > high {
			return false
		}
		for i := range uint64(len(b)) {
			o := addr - lo + i
			if written[o/64]&(1<<(o%64)) != 0 {
				return false
			}
		}
		for i := range uint64(len(b)) {
			o := addr - lo + i
			written[o/64] |= 1 << (o % 64)
			undo = append(undo, o)
		}
		copy(s.Bytes[addr-lo:], b)
		return true
	}
	// The outermost frame's caller: random nonvolatile registers, RIP 0.
	caller := &s.Frames[depth]
	randomRegs(caller, rng)
	caller.Rip = 0
	caller.Rsp = high - 0x200
	for i := depth - 1; i >= 0; i-- {
		up := &s.Frames[i+1]
		ok := false
		for try := 0; try < 64 && !ok; try++ {
			p := cands[rng.IntN(len(cands))]
			undo = undo[:0]
			regs, good := layFrame(img.Base, p.f, p.in, up, rng, put)
			if good {
				s.Frames[i] = regs
				ok = true
			} else {
				for _, o := range undo {
					written[o/64] &^= 1 << (o % 64)
				}
			}
		}
		if !ok {
			return nil, fmt.Errorf("could not lay out frame %d", i)
		}
	}
	return s, nil
}

// layFrame lays out the frame of f stopped at in, called by a frame with
// registers up (whose RIP is the return address): it writes the return
// address and the saved registers through put and returns f's registers.
func layFrame(base uint64, f *jitgen.Function, in jitgen.Inst, up *unwind.Context, rng *rand.Rand, put func(uint64, []byte) bool) (unwind.Context, bool) {
	st := in.State
	e := up.Rsp - 8 // the call pushed the return address
	var b8 [8]byte
	binary.LittleEndian.PutUint64(b8[:], up.Rip)
	if !put(e, b8[:]) {
		return unwind.Context{}, false
	}
	// Registers the function has not saved still hold the caller's values;
	// those it saved hold values of its own.
	regs := *up
	for _, sv := range st.Saved {
		if sv.Restored {
			continue
		}
		addr := e - uint64(int64(sv.Slot))
		r := sv.Reg & 15
		if sv.XMM {
			if !put(addr, up.Xmm[r][:]) {
				return unwind.Context{}, false
			}
			binary.LittleEndian.PutUint64(regs.Xmm[r][:8], rng.Uint64())
			binary.LittleEndian.PutUint64(regs.Xmm[r][8:], rng.Uint64())
			continue
		}
		binary.LittleEndian.PutUint64(b8[:], up.Reg(r))
		if !put(addr, b8[:]) {
			return unwind.Context{}, false
		}
		regs.SetReg(r, rng.Uint64())
	}
	if st.FrameSet {
		regs.SetReg(f.Info.FrameRegister, e-uint64(int64(st.FP)))
	}
	regs.Rsp = e - uint64(int64(st.SP))
	regs.Rip = base + uint64(in.RVA)
	return regs, true
}

func randomRegs(c *unwind.Context, rng *rand.Rand) {
	for r := range 16 {
		if unwindinfo.Register(r) != unwindinfo.RSP {
			c.SetReg(unwindinfo.Register(r), rng.Uint64())
		}
		binary.LittleEndian.PutUint64(c.Xmm[r][:8], rng.Uint64())
		binary.LittleEndian.PutUint64(c.Xmm[r][8:], rng.Uint64())
	}
}
