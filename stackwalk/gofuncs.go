package stackwalk

import (
	"cmp"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"sort"

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
// called it.
//
// Reference: the Go runtime's pcHeader and _func (runtime/symtab.go,
// runtime/runtime2.go), abi.FuncFlag and abi.FuncID
// (internal/abi/symtab.go), and runtime·asmcgocall
// (runtime/asm_amd64.s).

// Layout of the pclntab of Go 1.18 and later, for 64-bit targets.
const (
	goMagic118       = 0xfffffff0 // Go 1.18, 1.19
	goMagic120       = 0xfffffff1 // Go 1.20 and later
	goHeaderPclnOff  = 8 + 7*8    // pcHeader.pclnOffset: after magic, pads, minLC, ptrSize and seven words
	goFuncIDOff      = 40         // _func.funcID: after ten 32-bit fields
	goFuncFlagOff    = 41         // _func.flag
	goFuncFlagTop    = 1          // abi.FuncFlagTopFrame
	goFuncFlagSPW    = 2          // abi.FuncFlagSPWrite
	goFuncIDCgoCall  = 2          // abi.FuncID_asmcgocall
	maxGoFuncs       = 1 << 22    // a bound on nfunc from the file
	maxPclntabToRead = 256 << 20  // a bound on the section read
)

// goKind is what the walker does at a frame in a special Go function.
type goKind uint8

const (
	goNormal  goKind = iota
	goTop            // the walk ends: the outermost frame of its stack
	goSPWrite        // the walk ends: a stack switch Go's traceback does not cross either
	goCgoCall        // runtime.asmcgocall: go on in the goroutine that called C
)

// goFunc is a special function of a Go binary: link-time [lo, hi).
type goFunc struct {
	lo, hi uint64
	kind   goKind
}

// goFuncs returns the special functions of a Go binary, sorted; nil when
// ef is not a Go binary or its table is not one this reader knows.
func goFuncs(ef *elf.File) []goFunc {
	sec := ef.Section(".gopclntab")
	if sec == nil || sec.Type == elf.SHT_NOBITS || sec.Size > maxPclntabToRead {
		return nil
	}
	data, err := io.ReadAll(sec.Open())
	if err != nil {
		return nil
	}
	text := goText(ef)
	if text == 0 {
		return nil
	}
	return parseGoFuncs(data, text)
}

// parseGoFuncs returns the special functions of the pclntab data, whose
// entry offsets are relative to text; nil when data is not a pclntab this
// reader knows.
func parseGoFuncs(data []byte, text uint64) []goFunc {
	if len(data) < goHeaderPclnOff+8 {
		return nil
	}
	le := binary.LittleEndian
	if m := le.Uint32(data); (m != goMagic118 && m != goMagic120) || data[7] != 8 {
		return nil
	}
	nfunc := le.Uint64(data[8:])
	pcln := le.Uint64(data[goHeaderPclnOff:])
	if nfunc > maxGoFuncs || pcln > uint64(len(data)) || (uint64(len(data))-pcln)/8 < nfunc+1 {
		return nil
	}
	tab := data[pcln:]
	var out []goFunc
	for i := range nfunc {
		entry, off := le.Uint32(tab[8*i:]), le.Uint32(tab[8*i+4:])
		next := le.Uint32(tab[8*(i+1):])
		if uint64(off)+goFuncFlagOff >= uint64(len(tab)) {
			return nil
		}
		flag, id := tab[uint64(off)+goFuncFlagOff], tab[uint64(off)+goFuncIDOff]
		kind := goNormal
		switch {
		case id == goFuncIDCgoCall:
			kind = goCgoCall // it writes SP too: the way back is known
		case flag&goFuncFlagTop != 0:
			kind = goTop
		case flag&goFuncFlagSPW != 0:
			kind = goSPWrite
		}
		if kind != goNormal && next > entry {
			out = append(out, goFunc{text + uint64(entry), text + uint64(next), kind})
		}
	}
	slices.SortFunc(out, func(a, b goFunc) int { return cmp.Compare(a.lo, b.lo) })
	return out
}

// goFuncAt returns the kind of the special function of fs containing the
// link-time address pc.
func goFuncAt(fs []goFunc, pc uint64) goKind {
	i := sort.Search(len(fs), func(i int) bool { return fs[i].hi > pc })
	if i < len(fs) && pc >= fs[i].lo {
		return fs[i].kind
	}
	return goNormal
}

// goText returns the address _func.entryOff is relative to, the symbol
// runtime.text; 0 when the symbol table is gone. The start of .text is
// not a safe guess: an externally linked (cgo) binary puts C code first,
// and a wrong base would end walks in the middle of a stack.
func goText(ef *elf.File) uint64 {
	syms, err := ef.Symbols()
	if err != nil {
		return 0
	}
	for _, s := range syms {
		if s.Name == "runtime.text" {
			return s.Value
		}
	}
	return 0
}

// Where runtime·asmcgocall keeps the way back, at the SP of its frame
// once the C function (entered through asmcgocall_landingpad) returned:
//
//	0(SP)  the depth of the goroutine's SP below g.stack.hi; or, on the
//	       path for a call made on the system stack already ("nosave"),
//	       the SP itself
//	8(SP)  g, the goroutine; 0 on the nosave path
//
// The goroutine's SP there is asmcgocall's SP on entry, which points at
// its return address into runtime.cgocall. g.stack.hi is the second word
// of g (g.stack is its first field, {lo, hi}), in every Go release.
const goStackHiOff = 8

// goCgoCaller unwinds a frame in runtime.asmcgocall (registers ctx, on the
// system stack) to its caller on the goroutine's stack: it sets ctx's RIP
// and RSP and returns the CFA (the caller's SP).
func goCgoCaller(mem unwind.Memory, ctx *unwind.Context) (uint64, error) {
	var b [16]byte
	if err := readFull(mem, b[:], ctx.Rsp); err != nil {
		return 0, err
	}
	le := binary.LittleEndian
	sp, g := le.Uint64(b[0:]), le.Uint64(b[8:])
	if g != 0 {
		var hi [8]byte
		if err := readFull(mem, hi[:], g+goStackHiOff); err != nil {
			return 0, err
		}
		sp = le.Uint64(hi[:]) - sp
	}
	var ra [8]byte
	if err := readFull(mem, ra[:], sp); err != nil {
		return 0, err
	}
	ctx.Rip, ctx.Rsp = le.Uint64(ra[:]), sp+8
	return sp + 8, nil
}

// readFull reads len(p) bytes at addr or fails.
func readFull(mem unwind.Memory, p []byte, addr uint64) error {
	n, err := mem.ReadMemory(p, addr)
	if err == nil && n < len(p) {
		err = memory.ErrShortRead
	}
	if err != nil {
		return fmt.Errorf("go stack switch: read %d bytes at %#x: %w", len(p), addr, err)
	}
	return nil
}
