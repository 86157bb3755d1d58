// Package gopclntab reads the pclntab of Go programs (Go 1.18 and later,
// 64-bit): the table the Go runtime itself uses to find functions, their
// flags and their stack frames. It is there in every Go binary, also in
// those linked without a symbol table or DWARF (go build -ldflags=-s -w,
// which is what go run does), where it is the only unwind information
// the Go code has besides frame pointers.
//
// Reference: the Go runtime's pcHeader, moduledata, functab and _func
// (runtime/symtab.go, runtime/runtime2.go, internal/abi/symtab.go) and
// its pc-value tables (runtime.pcvalue, runtime.step).
package gopclntab

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"

	"github.com/fntable/fntable/internal/filemap"
)

// Layout of the pclntab of Go 1.18 and later, for 64-bit targets.
const (
	magic118 = 0xfffffff0 // Go 1.18, 1.19
	magic120 = 0xfffffff1 // Go 1.20 and later

	hdrNfunc    = 8  // pcHeader.nfunc
	hdrPctabOff = 56 // pcHeader.pctabOffset
	hdrPclnOff  = 64 // pcHeader.pclnOffset
	hdrSize     = 72

	funcPcspOff   = 16 // _func.pcsp
	funcFuncIDOff = 40 // _func.funcID
	funcFlagOff   = 41 // _func.flag
	funcSize      = 42 // the part of _func read here

	// moduledata.text: after pcHeader (8), six slices (6×24),
	// findfunctab (8), minpc and maxpc (16).
	moduleTextOff = 8 + 6*24 + 8 + 16

	maxFuncs   = 1 << 22   // a bound on nfunc from the file
	maxSection = 256 << 20 // a bound on the section read
)

// Function flags and IDs (internal/abi).
const (
	FlagTopFrame = 1 // abi.FuncFlagTopFrame: the outermost frame of a stack (runtime.goexit, runtime.mstart)
	FlagSPWrite  = 2 // abi.FuncFlagSPWrite: writes an arbitrary value to SP (a stack switch)
	FlagAsm      = 4 // abi.FuncFlagAsm: written in assembly

	IDAsmcgocall = 2 // abi.FuncID_asmcgocall
)

// ErrNotGo: the file has no pclntab this package reads.
var ErrNotGo = errors.New("no Go 1.18+ 64-bit pclntab")

// Table is a parsed pclntab. It is immutable and safe for concurrent use.
type Table struct {
	text  uint64 // the link-time address function entry offsets are relative to
	nfunc int
	ftab  []byte // nfunc+1 (entryoff, funcoff) pairs
	funcs []byte // the table functab's funcoff values are relative to
	pctab []byte

	maps filemap.Ranges // the pclntab's mapping, when it is mapped
}

// Mapping returns the ranges of t's mapped pclntab (none when it was
// read): callers that must survive the file shrinking under the mapping
// guard their calls with it (filemap.Ranges.Catch).
func (t *Table) Mapping() *filemap.Ranges { return &t.maps }

// Func is a function of a Table.
type Func struct {
	Entry, End uint64 // link-time [Entry, End)
	Flag       uint8  // Flag* bits
	ID         uint8  // abi.FuncID
	pcsp       uint32
}

// Open reads the pclntab of a Go ELF file. The base of function entries
// (the symbol runtime.text) comes from the runtime's moduledata in the
// file, or from the symbol table.
func Open(ef *elf.File) (*Table, error) {
	return open(ef, nil)
}

// OpenFile is Open for the file at path, which ef must have been read
// from: the pclntab, several megabytes in a large program, is mapped from
// the file (read-only, shared with the page cache) instead of copied where
// the OS allows; the mapping goes when the Table is garbage.
func OpenFile(path string, ef *elf.File) (*Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return open(ef, f)
}

func open(ef *elf.File, file *os.File) (*Table, error) {
	sec := ef.Section(".gopclntab")
	if sec == nil || sec.Type == elf.SHT_NOBITS {
		return nil, ErrNotGo
	}
	if sec.Size > maxSection {
		return nil, fmt.Errorf("pclntab of %d bytes: too large", sec.Size)
	}
	text := TextStart(ef)
	if text == 0 {
		return nil, errors.New("pclntab: cannot find runtime.text (no symbol table and no moduledata)")
	}
	var (
		data  []byte
		unmap func()
		err   error
	)
	data, unmap, err = filemap.Section(file, sec)
	if err != nil {
		if data, err = io.ReadAll(sec.Open()); err != nil {
			return nil, fmt.Errorf("read pclntab: %w", err)
		}
		unmap = nil
	}
	t, err := Parse(data, text)
	if err != nil {
		if unmap != nil {
			unmap()
		}
		return nil, err
	}
	if unmap != nil {
		t.maps.Add(data, file.Name()+" .gopclntab")
		runtime.AddCleanup(t, func(f func()) { f() }, unmap)
	}
	return t, nil
}

// TextStart returns the link-time address of runtime.text, which Go's
// function entry offsets are relative to: from the runtime's moduledata
// (the section .go.module of Go 1.26, or a writable data section of older
// releases), whose first word is the address of the pclntab, else from
// the symbol table. 0 when neither is there. The start of .text is
// not a safe guess: an externally linked (cgo) binary puts C code first.
func TextStart(ef *elf.File) uint64 {
	if text := moduleText(ef); text != 0 {
		return text
	}
	if syms, err := ef.Symbols(); err == nil {
		for _, s := range syms {
			if s.Name == "runtime.text" {
				return s.Value
			}
		}
	}
	return 0
}

// moduleText finds runtime.text in the runtime's moduledata: cheaper than
// reading the symbol table, and there without one.
func moduleText(ef *elf.File) uint64 {
	pcln := ef.Section(".gopclntab")
	if pcln == nil {
		return 0
	}
	le := binary.LittleEndian
	for _, name := range []string{".go.module", ".noptrdata", ".data"} {
		s := ef.Section(name)
		if s == nil || s.Type != elf.SHT_PROGBITS || s.Size > maxSection {
			continue
		}
		d, err := s.Data()
		if err != nil {
			continue
		}
		for off := 0; off+moduleTextOff+16 <= len(d); off += 8 {
			if le.Uint64(d[off:]) != pcln.Addr {
				continue
			}
			text, etext := le.Uint64(d[off+moduleTextOff:]), le.Uint64(d[off+moduleTextOff+8:])
			if text != 0 && text < etext && inExec(ef, text) {
				return text
			}
		}
	}
	return 0
}

// inExec reports whether addr is in an executable section of ef.
func inExec(ef *elf.File, addr uint64) bool {
	for _, s := range ef.Sections {
		if s.Flags&elf.SHF_EXECINSTR != 0 && addr >= s.Addr && addr-s.Addr < s.Size {
			return true
		}
	}
	return false
}

// Parse parses pclntab data whose function entries are relative to text.
func Parse(data []byte, text uint64) (*Table, error) {
	le := binary.LittleEndian
	if len(data) < hdrSize {
		return nil, ErrNotGo
	}
	if m := le.Uint32(data); (m != magic118 && m != magic120) || data[7] != 8 {
		return nil, ErrNotGo
	}
	nfunc := le.Uint64(data[hdrNfunc:])
	pctab, pcln := le.Uint64(data[hdrPctabOff:]), le.Uint64(data[hdrPclnOff:])
	if nfunc > maxFuncs || pctab > uint64(len(data)) || pcln > uint64(len(data)) || (uint64(len(data))-pcln)/8 < nfunc+1 {
		return nil, fmt.Errorf("%w: bad header (nfunc %d, pctab %#x, pcln %#x, %d bytes)", ErrNotGo, nfunc, pctab, pcln, len(data))
	}
	return &Table{
		text:  text,
		nfunc: int(nfunc),
		ftab:  data[pcln : pcln+8*(nfunc+1)],
		funcs: data[pcln:],
		pctab: data[pctab:],
	}, nil
}

// Len returns the number of functions.
func (t *Table) Len() int { return t.nfunc }

// Func returns function i (0 ≤ i < Len), and false when its record is
// malformed.
func (t *Table) Func(i int) (Func, bool) {
	le := binary.LittleEndian
	entry, off := le.Uint32(t.ftab[8*i:]), le.Uint32(t.ftab[8*i+4:])
	next := le.Uint32(t.ftab[8*(i+1):])
	if uint64(off)+funcSize > uint64(len(t.funcs)) || next < entry {
		return Func{}, false
	}
	f := t.funcs[off:]
	return Func{
		Entry: t.text + uint64(entry),
		End:   t.text + uint64(next),
		Flag:  f[funcFlagOff],
		ID:    f[funcFuncIDOff],
		pcsp:  le.Uint32(f[funcPcspOff:]),
	}, true
}

// FuncAt returns the function containing the link-time address pc.
func (t *Table) FuncAt(pc uint64) (Func, bool) {
	if pc < t.text || t.nfunc == 0 {
		return Func{}, false
	}
	off := pc - t.text
	le := binary.LittleEndian
	i := sort.Search(t.nfunc, func(i int) bool { return uint64(le.Uint32(t.ftab[8*(i+1):])) > off }) // first function ending after pc
	if i >= t.nfunc || uint64(le.Uint32(t.ftab[8*i:])) > off {
		return Func{}, false
	}
	return t.Func(i)
}

// SPDelta returns how many bytes function f has pushed or allocated on
// the stack at the link-time address pc, below its return address: the
// pc-value table pcsp that Go's own tracebacks read. It is negative in
// the rare assembly that pops its return address. false when the table
// does not cover pc or is malformed.
func (t *Table) SPDelta(f Func, pc uint64) (int64, bool) {
	if pc < f.Entry || pc >= f.End || f.pcsp == 0 || uint64(f.pcsp) >= uint64(len(t.pctab)) {
		return 0, false
	}
	p := t.pctab[f.pcsp:]
	val := int64(-1)
	at := f.Entry
	for first := true; ; first = false {
		uv, n := binary.Uvarint(p)
		if n <= 0 || (uv == 0 && !first) {
			return 0, false
		}
		p = p[n:]
		val += int64(-(int64(uv) & 1) ^ int64(uv>>1))
		pcd, n := binary.Uvarint(p)
		if n <= 0 {
			return 0, false
		}
		p = p[n:]
		at += pcd // PCQuantum is 1 on amd64
		if pc < at {
			return val, true
		}
		if at >= f.End {
			return 0, false
		}
	}
}
