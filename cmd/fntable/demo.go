package main

import (
	"context"
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
	"github.com/fntable/fntable/internal/jitstack"
	"github.com/fntable/fntable/internal/procmem"
	"github.com/fntable/fntable/stackwalk"
	"github.com/fntable/fntable/symhandler"
	"github.com/fntable/fntable/unwind"
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
	st, err := jitstack.Lay(img, depth, demoStackHigh, demoStackSize, rng)
	if err != nil {
		return err
	}
	mem := &unwind.SplicedMemory{}
	mem.Add(img.Base, img.Bytes)
	mem.Add(st.Low(), st.Bytes)
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
	walk := src.Walk(st.Frames[0])
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
		if i+1 >= len(st.Frames) {
			return fmt.Errorf("frame %d: the unwind went past the outermost frame", i)
		}
		if diff := jitstack.Diff(&st.Frames[i], &f.Context); diff != "" {
			return fmt.Errorf("frame %d: the unwind gave %s", i, diff)
		}
		fmt.Fprintf(w, "   #%-2d %#14x  %-22s rsp %#x  cfa %#x  restored %s\n", i, f.PC, name, f.SP, f.CFA, restored(&f.Context, &st.Frames[i+1]))
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
	for _, r := range jitstack.Nonvolatile {
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
