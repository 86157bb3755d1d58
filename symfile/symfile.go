package symfile

import (
	"cmp"
	"context"
	"errors"
	"math"
	"slices"
	"strings"
)

// These are the errors shared by the readers.
var (
	// ErrUnrecognized: the file is not in the reader's format. Opener
	// chains test it with errors.Is and try the next reader.
	ErrUnrecognized = errors.New("unrecognized symbol file format")
	// ErrCanceled: Options.Progress returned false, or Options.Context
	// was canceled, before the source was ready.
	ErrCanceled = errors.New("symbol load canceled")
)

// Kind says what a [Symbol] names.
type Kind uint8

const (
	KindOther    Kind = iota // a label, section or symbol of unknown type
	KindFunction             // code: an ELF STT_FUNC, a PE function, a JIT function
	KindData                 // an object: ELF STT_OBJECT/STT_COMMON, PE data
	// KindThreadLocal is a thread-local variable (ELF STT_TLS): its Addr
	// is an offset in the module's TLS block, not an address, so it never
	// names an address; it is found only by name.
	KindThreadLocal
)

// String returns "function", "data", "thread-local" or "other".
func (k Kind) String() string {
	switch k {
	case KindFunction:
		return "function"
	case KindData:
		return "data"
	case KindThreadLocal:
		return "thread-local"
	}
	return "other"
}

// Symbol is one named address of a module.
type Symbol struct {
	Name string // as stored in the file: mangled for C++ and Rust
	Addr uint64 // link-time address (ELF st_value; PE ImageBase+RVA; perf map: absolute)
	Size uint64 // length in bytes; 0 when the file does not say
	Kind Kind
}

// End returns Addr+Size.
func (s Symbol) End() uint64 { return s.Addr + s.Size }

// Compare orders symbols as [Source.Symbols] returns them: by Addr, then
// by Size descending, then by Name, then by Kind. Use it with
// slices.SortFunc.
func Compare(a, b Symbol) int {
	if c := cmp.Compare(a.Addr, b.Addr); c != 0 {
		return c
	}
	if c := cmp.Compare(b.Size, a.Size); c != 0 {
		return c
	}
	if c := strings.Compare(a.Name, b.Name); c != 0 {
		return c
	}
	return cmp.Compare(a.Kind, b.Kind)
}

// Sort sorts syms as [Compare] orders them. It sorts by address and size
// with [SortByAddr] and then orders the symbols of one address and size
// by name and kind: on a symbol table of thousands this is several times
// faster than slices.SortFunc(syms, Compare), which swaps the names'
// pointers under the garbage collector's write barriers and compares
// names it need not.
func Sort(syms []Symbol) {
	if slices.IsSortedFunc(syms, Compare) {
		return
	}
	SortByAddr(syms, true)
	for i := 0; i < len(syms); {
		j := i + 1
		for j < len(syms) && syms[j].Addr == syms[i].Addr && syms[j].Size == syms[i].Size {
			j++
		}
		if j-i > 1 {
			slices.SortFunc(syms[i:j], Compare)
		}
		i = j
	}
}

// SortByAddr sorts syms by address, then by size (largest first when
// largeFirst), keeping the order syms had among symbols of one address
// and size. It sorts an index of 4 bytes a symbol, not the symbols (a
// sort of 40-byte values with pointers in them moves them under the
// garbage collector's write barriers), and then moves each symbol once,
// in place: on a table of 10,000 symbols it allocates 80 KB where keys
// with the address and size copied in took 240 KB, which a new process
// pays for in page faults.
//
// The index is sorted by radix, least significant byte first: a stable
// counting sort on each byte of the size, then of the address, skipping
// the bytes in which every symbol agrees (a library's addresses differ in
// three bytes or so, its sizes in two). On 10,000 symbols that takes a
// quarter of the time of the comparison sort it replaced
// (BenchmarkSortByAddr: 0.21-0.23 ms against 0.91 ms).
func SortByAddr(syms []Symbol, largeFirst bool) {
	if len(syms) > math.MaxInt32 {
		slices.SortStableFunc(syms, func(a, b Symbol) int { return compareAddr(&a, &b, largeFirst) })
		return
	}
	n := len(syms)
	if n < 2 {
		return
	}
	buf := make([]int32, 2*n)
	idx, tmp := buf[:n], buf[n:]
	for i := range idx {
		idx[i] = int32(i)
	}
	// The size key: ascending ^Size is descending Size.
	var flip uint64
	if largeFirst {
		flip = ^uint64(0)
	}
	var sizeDiff, addrDiff uint64
	size0, addr0 := syms[0].Size^flip, syms[0].Addr
	for i := range syms {
		sizeDiff |= (syms[i].Size ^ flip) ^ size0
		addrDiff |= syms[i].Addr ^ addr0
	}
	for shift := uint(0); shift < 64; shift += 8 {
		if sizeDiff>>shift&0xff != 0 {
			radixPass(syms, idx, tmp, shift, flip, false)
			idx, tmp = tmp, idx
		}
	}
	for shift := uint(0); shift < 64; shift += 8 {
		if addrDiff>>shift&0xff != 0 {
			radixPass(syms, idx, tmp, shift, 0, true)
			idx, tmp = tmp, idx
		}
	}
	// Move the symbols one cycle of the permutation at a time; an index
	// becomes -1 once its place is filled.
	for i := range idx {
		if idx[i] < 0 {
			continue
		}
		t := syms[i]
		j := i
		for {
			k := int(idx[j])
			idx[j] = -1
			if k == i {
				syms[j] = t
				break
			}
			syms[j] = syms[k]
			j = k
		}
	}
}

// radixPass sorts the index src into dst, stably, by the byte at shift of
// each symbol's address (addr) or of its size xor flip. Its loops are
// written out for each key: one loop choosing the key for each symbol
// (by masks) took 10-20 % longer in BenchmarkSortByAddr.
func radixPass(syms []Symbol, src, dst []int32, shift uint, flip uint64, addr bool) {
	var count [256]int32
	if addr {
		for _, i := range src {
			count[byte(syms[i].Addr>>shift)]++
		}
	} else {
		for _, i := range src {
			count[byte((syms[i].Size^flip)>>shift)]++
		}
	}
	var pos int32
	for b, c := range count {
		count[b] = pos
		pos += c
	}
	if addr {
		for _, i := range src {
			k := byte(syms[i].Addr >> shift)
			dst[count[k]] = i
			count[k]++
		}
	} else {
		for _, i := range src {
			k := byte((syms[i].Size ^ flip) >> shift)
			dst[count[k]] = i
			count[k]++
		}
	}
}

// compareAddr orders a and b by address, then by size (largest first
// when largeFirst).
func compareAddr(a, b *Symbol, largeFirst bool) int {
	if c := cmp.Compare(a.Addr, b.Addr); c != 0 {
		return c
	}
	if largeFirst {
		return cmp.Compare(b.Size, a.Size)
	}
	return cmp.Compare(a.Size, b.Size)
}

// Frame is one level of the inline chain at an address.
type Frame struct {
	Function string // as stored (the linkage name when the file has one, so mangled); "" when unknown
	File     string // full path as the file records it (DWARF: comp_dir/dir/name joined); "" when unknown
	Line     int    // 1-based; 0 when unknown
	Column   int    // 1-based; 0 when unknown
}

// Source is one module's symbols and, where its file has them, source
// lines and inline frames. All addresses are the file's link-time
// addresses. Implementations are safe for concurrent use.
type Source interface {
	// Symbols returns every symbol, sorted by [Compare]. The slice is
	// shared: callers must not modify it.
	Symbols() []Symbol
	// Frames appends to dst the frames at addr, innermost inlined call
	// first and ending with the function that contains addr (the order
	// llvm-symbolizer prints). When the source has no line or inline
	// information for addr it returns dst unchanged and a nil error; an
	// error means the debug information is there but could not be read.
	Frames(dst []Frame, addr uint64) ([]Frame, error)
	// Close releases what the reader opened.
	Close() error
}

// Options tell a reader how much to load and how to report progress.
// The zero value loads symbols only and reports nothing.
type Options struct {
	// Lines asks for source lines and inline frames (SYMOPT_LOAD_LINES).
	// Without it, Frames returns at most the containing function.
	Lines bool
	// PublicsOnly names functions from symbol tables (and Go's pclntab)
	// alone, without reading DWARF (SYMOPT_PUBLICS_ONLY): much faster on
	// a file with large or compressed debug information.
	PublicsOnly bool
	// Context cancels a long load; nil means context.Background().
	Context context.Context
	// Progress, if not nil, is called from the loading goroutine while the
	// reader indexes large debug information, with bytes done and total.
	// Returning false cancels the load with ErrCanceled.
	Progress func(done, total int64) bool
	// CacheDir, if not "", is where the ELF reader keeps decompressed
	// copies of compressed debug sections (SHF_COMPRESSED, .zdebug_*), by
	// build ID, and where it looks for them first: the next process that
	// opens the file maps the copy instead of decompressing the section
	// again, as GDB's index cache spares it re-reading DWARF. It keeps
	// the table of the DWARF units' headers there too. Copies are
	// written atomically (a synced temporary file, renamed) and must not
	// be modified in place; copies unused for 30 days are deleted, and
	// deleting the directory is always safe.
	CacheDir string
}

// Ident is what identifies a module's file to symbol servers and separate
// debug files, and how the file is laid out in memory.
type Ident struct {
	Format string // "elf", "pe" or "perfmap"

	// LinkBase is the link-time address of the file's first byte as
	// loaded (ELF: the lowest PT_LOAD p_vaddr minus its p_offset, page
	// aligned; PE: ImageBase). A module loaded at base B has its symbols
	// at their link-time address plus B-LinkBase.
	LinkBase uint64
	// ImageSize is the span the file covers when loaded (ELF: from
	// LinkBase to the end of the last PT_LOAD; PE: SizeOfImage).
	ImageSize uint64

	// ELF
	BuildID      []byte // NT_GNU_BUILD_ID note; nil when absent
	GoBuildID    string // Go's build ID note; "" when absent
	DebugLink    string // .gnu_debuglink file name; "" when absent
	DebugLinkCRC uint32 // .gnu_debuglink CRC-32 of the debug file
	HasSymbols   bool   // a symbol table (ELF .symtab or .dynsym; PE COFF symbols or exports)
	HasDebugInfo bool   // DWARF line information, or Go's pclntab

	// PE
	TimeDateStamp uint32    // IMAGE_FILE_HEADER.TimeDateStamp
	SizeOfImage   uint32    // IMAGE_OPTIONAL_HEADER64.SizeOfImage
	PDB           *CodeView // the debug directory's RSDS record; nil when absent
}

// CodeView is an RSDS debug record: the identity of a PE image's PDB.
type CodeView struct {
	GUID [16]byte // as stored (Data1..3 little-endian)
	Age  uint32
	Path string // the PDB path the linker recorded
}
