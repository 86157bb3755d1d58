package stackwalk

import (
	"cmp"
	"debug/elf"
	"encoding/binary"
	"io"
	"slices"
)

// Go marks the functions at which its own tracebacks stop — where a
// goroutine's stack begins (runtime.goexit) and where a thread's system
// stack begins (runtime.mstart) — with the flag FuncFlagTopFrame in the
// pclntab, not in its CFI, whose last rows describe whatever the stack
// holds above them. The walker reads those functions so that a Go
// thread's walk ends where Go's own would.
//
// Reference: the Go runtime's pcHeader and _func (runtime/symtab.go,
// runtime/runtime2.go) and abi.FuncFlagTopFrame (internal/abi/symtab.go).

// Layout of the pclntab of Go 1.18 and later, for 64-bit targets.
const (
	goMagic118       = 0xfffffff0 // Go 1.18, 1.19
	goMagic120       = 0xfffffff1 // Go 1.20 and later
	goHeaderPclnOff  = 8 + 7*8    // pcHeader.pclnOffset: after magic, pads, minLC, ptrSize and seven words
	goFuncFlagOff    = 41         // _func.flag: after ten 32-bit fields and funcID
	goFuncFlagTop    = 1          // abi.FuncFlagTopFrame
	maxGoFuncs       = 1 << 22    // a bound on nfunc from the file
	maxPclntabToRead = 256 << 20  // a bound on the section read
)

// goTopFrames returns the link-time ranges [entry, end) of the functions
// of a Go binary flagged FuncFlagTopFrame, sorted; nil when ef is not a
// Go binary or its table is not one this reader knows.
func goTopFrames(ef *elf.File) [][2]uint64 {
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
	return parseGoTopFrames(data, text)
}

// parseGoTopFrames returns the ranges of the top-frame functions of the
// pclntab data, whose entry offsets are relative to text; nil when data
// is not a pclntab this reader knows.
func parseGoTopFrames(data []byte, text uint64) [][2]uint64 {
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
	var top [][2]uint64
	for i := range nfunc {
		entry, off := le.Uint32(tab[8*i:]), le.Uint32(tab[8*i+4:])
		next := le.Uint32(tab[8*(i+1):])
		if uint64(off)+goFuncFlagOff >= uint64(len(tab)) {
			return nil
		}
		if tab[uint64(off)+goFuncFlagOff]&goFuncFlagTop != 0 && next > entry {
			top = append(top, [2]uint64{text + uint64(entry), text + uint64(next)})
		}
	}
	slices.SortFunc(top, func(a, b [2]uint64) int { return cmp.Compare(a[0], b[0]) })
	return top
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
