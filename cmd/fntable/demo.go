package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"

	"github.com/fntable/fntable/functable"
	"github.com/fntable/fntable/functable/remote"
	"github.com/fntable/fntable/internal/jitgen"
	"github.com/fntable/fntable/internal/procmem"
	"github.com/fntable/fntable/stackwalk"
	"github.com/fntable/fntable/symhandler"
	"github.com/fntable/fntable/unwind"
	"github.com/fntable/fntable/unwindinfo"
)

func newDemoCmd() *command {
	c := &command{
		name:    "demo",
		args:    "[--functions N] [--depth N] [--seed N]",
		summary: "show the whole job on generated JIT code: register, publish, symbolize, unwind",
		help: `
Demo runs fntable's main job on a built-in example, in this process, and
says what it does at each step:

 1. A code generator (a small JIT) emits x86-64 functions with Windows x64
    unwind information (UNWIND_INFO: pushes, frame pointers, stack
    allocations, saved XMM registers, chained entries, handlers).
 2. The JIT registers them as RtlAddFunctionTable would, in a function
    table registry that is published for other processes (Linux); the demo
    then reads that list back the way another process would.
 3. The JIT names them in a symbol handler's virtual module (SymAddSymbol).
 4. A call stack through that code is laid out in memory, each frame in the
    state its function's code leaves it in, and is unwound frame by frame
    with RtlLookupFunctionEntry and RtlVirtualUnwind, symbolizing each
    frame. Every frame is checked against the registers the code saved.

The code is generated, not executed, so the demo runs on any OS and CPU;
the same seed gives the same code and stack.`,
	}
	c.run = func(args []string, stdout, stderr io.Writer) error {
		fs := c.flagSet()
		n := fs.Int("functions", 64, "how many functions the JIT generates")
		depth := fs.Int("depth", 8, "how many frames the call stack has")
		seed := fs.Uint64("seed", 1, "the generator's seed")
		if err := c.parse(fs, args, stdout); err != nil {
			return err
		}
		if fs.NArg() != 0 {
			return c.usagef("demo takes no arguments")
		}
		if *n < 2 || *n > 4096 || *depth < 1 || *depth > 256 {
			return c.usagef("--functions must be 2..4096 and --depth 1..256")
		}
		return demoMain(*n, *depth, *seed, stdout)
	}
	return c
}

const (
	demoBase      = 0x7f4a00000000 // where the generated code lives
	demoStackHigh = 0x7ffd00400000 // the top of the demo's stack
	demoStackSize = 4 << 20
)

func demoMain(nfn, depth int, seed uint64, w io.Writer) error {
	rng := rand.New(rand.NewPCG(seed, 0x64656d6f))
	img := jitgen.Build(jitgen.Config{Functions: nfn, Base: demoBase}, rng)
	code := 0
	for _, f := range img.Functions {
		code += int(f.End - f.Begin)
	}
	fmt.Fprintf(w, "1. A JIT emitted %d functions at %#x: %d bytes of x86-64 code with %d RUNTIME_FUNCTION entries and their UNWIND_INFO.\n",
		len(img.Functions), img.Base, code, len(img.Table))

	// 2. Register and publish.
	publish := runtime.GOOS == "linux"
	reg, err := functable.New(functable.Options{Publish: publish})
	if err != nil {
		return err
	}
	defer reg.Close()
	if _, err := reg.AddFunctionTable(img.Table, img.Base); err != nil {
		return err
	}
	fmt.Fprintf(w, "2. It registered them with RtlAddFunctionTable(%d entries, base %#x) in a function table registry.\n", len(img.Table), img.Base)
	// The walker reads the tables as another process would, from the
	// published list, where there is one; else it asks the registry.
	var tables unwind.FunctionTable = reg
	how := "the registry (RtlLookupFunctionEntry)"
	if publish {
		snap, err := demoRemote(w, img)
		if err != nil {
			fmt.Fprintf(w, "   (reading the published list back failed: %v)\n", err)
		} else {
			tables, how = snap, "the published list, as another process reads it"
		}
	}

	// 3. Name them.
	h, err := symhandler.New(symhandler.Config{SearchPath: os.DevNull})
	if err != nil {
		return err
	}
	defer h.Close()
	end := img.Base + uint64(len(img.Bytes))
	if _, err := h.LoadModule(context.Background(), symhandler.LoadRequest{ModuleName: "jit", Base: img.Base, Size: end - img.Base, Flags: symhandler.SLMFLAG_VIRTUAL}); err != nil {
		return err
	}
	for _, f := range img.Functions {
		if err := h.AddSymbol(img.Base, fmt.Sprintf("jit_fn_%d", f.ID), img.Base+uint64(f.Begin), uint64(f.End-f.Begin)); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "3. It named them in a symbol handler: virtual module \"jit\" [%#x, %#x) with %d symbols (SymAddSymbol).\n", img.Base, end, len(img.Functions))

	// 4. Lay out a call stack and unwind it.
	st, err := buildStack(img, depth, rng)
	if err != nil {
		return err
	}
	mem := &unwind.SplicedMemory{}
	mem.Add(img.Base, img.Bytes)
	mem.Add(demoStackHigh-demoStackSize, st.stack)
	fmt.Fprintf(w, "4. A call stack %d frames deep runs through that code (stack [%#x, %#x)). Unwinding it with\n   RtlLookupFunctionEntry and RtlVirtualUnwind, one frame at a time:\n\n",
		depth, uint64(demoStackHigh-demoStackSize), uint64(demoStackHigh))
	// The walker finds each frame's entry in the tables, and looks jump
	// targets up there too, to tell a jump to one of the function's own
	// chained fragments from a tail call (Windows' same-function rule).
	src, err := stackwalk.NewSources(nil, stackwalk.Options{Memory: mem, DynamicTables: tables})
	if err != nil {
		return err
	}
	var frames []stackwalk.Frame
	walk := src.Walk(st.frames[0].regs)
	for walk.Next() {
		frames = append(frames, walk.Frame())
	}
	if err := walk.Err(); err != nil {
		return err
	}
	fmt.Fprintf(w, "   (entries from %s)\n\n", how)
	for i, f := range frames {
		// Every frame of the laid-out stack stands at an instruction of
		// its function (none is after a call), so PC names it.
		name := "??"
		if loc, _ := h.Symbolize(context.Background(), f.PC); loc.Symbol != nil {
			name = fmt.Sprintf("%s!%s+%#x", loc.Module.Name, loc.Symbol.Name, f.PC-loc.Symbol.Address)
		}
		if f.How != stackwalk.HowContext && f.How != stackwalk.HowTable {
			return fmt.Errorf("frame %d: found by %s, not by the function table", i, f.How)
		}
		if i+1 >= len(st.frames) {
			return fmt.Errorf("frame %d: the unwind went past the outermost frame", i)
		}
		if diff := st.frames[i].diff(&f.Context); diff != "" {
			return fmt.Errorf("frame %d: the unwind gave %s", i, diff)
		}
		fmt.Fprintf(w, "   #%-2d %#14x  %-22s rsp %#x  cfa %#x  restored %s\n", i, f.PC, name, f.SP, f.CFA, restored(&f.Context, &st.frames[i+1].regs))
	}
	if len(frames) != depth {
		return fmt.Errorf("the walk found %d frames, want %d", len(frames), depth)
	}
	fmt.Fprintf(w, "   #%-2d %#14x  end of stack (the outermost frame's return address is 0)\n", len(frames), 0)
	fmt.Fprintf(w, "\n   All %d frames unwound to exactly the registers and stack pointer their callers had.\n", len(frames))
	return nil
}

// demoRemote reads this process's published list as another process
// would: find the mapping in /proc/self/maps, read it through
// process_vm_readv, and look an entry up in the snapshot.
func demoRemote(w io.Writer, img *jitgen.Image) (*remote.Snapshot, error) {
	pid := os.Getpid()
	maps, err := remote.Find(pid)
	if err != nil {
		return nil, err
	}
	if len(maps) == 0 {
		return nil, errors.New("no published list in /proc/self/maps")
	}
	mem, err := procmem.Open(pid)
	if err != nil {
		return nil, err
	}
	defer mem.Close()
	snap, err := remote.Read(mem, maps[len(maps)-1])
	if err != nil {
		return nil, err
	}
	f := img.Functions[len(img.Functions)/2]
	pc := img.Base + uint64(f.Begin)
	rf, base, ok := snap.LookupFunctionEntry(pc)
	if !ok {
		return nil, fmt.Errorf("the snapshot has no entry for %#x", pc)
	}
	fmt.Fprintf(w, "   The registry publishes its list in shared memory (memfd %q at %#x in /proc/%d/maps).\n"+
		"   Read back through process_vm_readv as a debugger would, it holds %d table(s); %#x is in\n"+
		"   [%#x, %#x) there, unwind data at %#x.\n",
		functable.MemfdName, maps[len(maps)-1].Addr, pid, len(snap.Tables), pc, base+uint64(rf.BeginAddress), base+uint64(rf.EndAddress), base+uint64(rf.UnwindData))
	return snap, nil
}

// restored names the nonvolatile registers whose values differ between a
// frame and its caller: those the frame saved and the unwind restored.
func restored(frame, caller *unwind.Context) string {
	var regs []string
	for _, r := range nonvolatile {
		if frame.Reg(r) != caller.Reg(r) {
			regs = append(regs, r.String())
		}
	}
	for x := 6; x < 16; x++ {
		if frame.Xmm[x] != caller.Xmm[x] {
			regs = append(regs, fmt.Sprintf("xmm%d", x))
		}
	}
	if len(regs) == 0 {
		return "-"
	}
	return strings.Join(regs, " ")
}

// nonvolatile are the general registers a Windows x64 function must
// preserve, besides RSP.
var nonvolatile = [...]unwindinfo.Register{unwindinfo.RBX, unwindinfo.RBP, unwindinfo.RSI, unwindinfo.RDI,
	unwindinfo.R12, unwindinfo.R13, unwindinfo.R14, unwindinfo.R15}

// demoFrame is one frame of the demo stack: the registers at its PC.
type demoFrame struct {
	regs unwind.Context
}

// diff compares the nonvolatile registers, RIP and RSP of got with the
// frame's and describes the first difference.
func (f *demoFrame) diff(got *unwind.Context) string {
	w := &f.regs
	if got.Rip != w.Rip || got.Rsp != w.Rsp {
		return fmt.Sprintf("rip %#x rsp %#x, want rip %#x rsp %#x", got.Rip, got.Rsp, w.Rip, w.Rsp)
	}
	for _, r := range nonvolatile {
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

// demoStack is a laid-out call stack: frames[0] is the innermost, the
// last one is the outermost frame's caller (RIP 0).
type demoStack struct {
	frames []demoFrame
	stack  []byte // [demoStackHigh-demoStackSize, demoStackHigh)
}

// buildStack picks depth functions of img, a body instruction in each,
// and lays out the stack each would have there, called from the next one:
// return addresses, saved registers in their slots, frame registers set.
func buildStack(img *jitgen.Image, depth int, rng *rand.Rand) (*demoStack, error) {
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
	const lo = demoStackHigh - demoStackSize
	s := &demoStack{stack: make([]byte, demoStackSize), frames: make([]demoFrame, depth+1)}
	// written has a bit per stack byte already given a value; undo lists
	// the bytes the frame being laid out wrote, to take back on failure.
	written := make([]uint64, demoStackSize/64)
	var undo []uint64
	put := func(addr uint64, b []byte) bool {
		if addr < lo || addr+uint64(len(b)) > demoStackHigh {
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
		copy(s.stack[addr-lo:], b)
		return true
	}
	// The outermost frame's caller: random nonvolatile registers, RIP 0.
	caller := &s.frames[depth].regs
	randomRegs(caller, rng)
	caller.Rip = 0
	caller.Rsp = demoStackHigh - 0x200
	for i := depth - 1; i >= 0; i-- {
		up := &s.frames[i+1].regs
		ok := false
		for try := 0; try < 64 && !ok; try++ {
			p := cands[rng.IntN(len(cands))]
			undo = undo[:0]
			regs, good := layFrame(p.f, p.in, up, rng, put)
			if good {
				s.frames[i].regs = regs
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
func layFrame(f *jitgen.Function, in jitgen.Inst, up *unwind.Context, rng *rand.Rand, put func(uint64, []byte) bool) (unwind.Context, bool) {
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
	regs.Rip = demoBase + uint64(in.RVA)
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
