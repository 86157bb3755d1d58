package elfsym

import (
	"bytes"
	"debug/dwarf"
	"debug/elf"
	"debug/gosym"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/fntable/fntable/internal/filemap"
	"github.com/fntable/fntable/internal/gopclntab"
	"github.com/fntable/fntable/symfile"
	"github.com/fntable/fntable/symfile/dwarfidx"
)

// These are the errors returned by this package, besides
// symfile.ErrUnrecognized for input that is not ELF.
var (
	// ErrMalformed matches every error about a malformed ELF file.
	ErrMalformed = errors.New("malformed elf file")
	// ErrUnsupported: an ELF file this reader does not handle (big-endian).
	ErrUnsupported = errors.New("unsupported elf file")
)

// FormatError describes a malformed ELF file. It wraps [ErrMalformed] and
// the underlying decoder's error.
type FormatError struct {
	Op  string // what was being read, such as "read symbol table"
	Err error  // the decoder's error
}

// errEndsEarly is the error of a FormatError for a file that ends
// before its headers do.
var errEndsEarly = errors.New("the file ends before its headers")

func (e *FormatError) Error() string { return e.Op + ": " + e.Err.Error() }

// Unwrap returns [ErrMalformed] and the decoder's error.
func (e *FormatError) Unwrap() []error { return []error{ErrMalformed, e.Err} }

// File is an ELF file's symbols, source lines and inline frames. It is
// safe for concurrent use.
type File struct {
	f      *elf.File
	r      io.ReaderAt
	file   *os.File // r, when it is a file: its symbol table is mapped while it is read
	closer io.Closer
	opts   symfile.Options
	ident  symfile.Ident

	dw    *dwarfidx.Index // nil without DWARF
	dwErr error           // why the DWARF could not be indexed

	goOnce sync.Once
	gotab  *gosym.Table // Go's pclntab, for files without DWARF
	goErr  error

	symOnce sync.Once
	syms    []symfile.Symbol
	dynsyms []symfile.Symbol // a .dynsym's symbols as NewFile decoded them, until Symbols completes them

	fmOnce sync.Once
	fm     *FunctionMap
}

var _ symfile.Source = (*File)(nil)

// Open opens the named file with [NewFile]; Close closes it.
func Open(name string, opts symfile.Options) (*File, error) {
	fd, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	f, err := NewFile(fd, opts)
	if err != nil {
		fd.Close()
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	f.closer = fd
	return f, nil
}

// NewFile reads the ELF file in r, which may be a file or an image in a
// process's memory such as the vDSO (section offsets are then offsets
// from the image's start). It reads the headers and indexes the DWARF
// compilation units (unless opts.PublicsOnly), and meanwhile, on a second
// goroutine, decodes the symbol table that Symbols returns (with
// opts.PublicsOnly it is decoded on the first call to Symbols). A unit's
// DIEs and line table are read on the first query in it. r must stay
// readable until Close.
func NewFile(r io.ReaderAt, opts symfile.Options) (_ *File, err error) {
	defer recoverError(&err, "read elf file")
	ef, err := newELF(r)
	if err != nil {
		return nil, err
	}
	f := &File{f: ef, r: r, opts: opts, ident: identify(ef)}
	f.file, _ = r.(*os.File)
	if opts.PublicsOnly {
		return f, nil
	}
	// The symbol table is decoded on a goroutine of its own while the
	// DWARF units are indexed (a symbolizer needs both, and they take
	// about as long for libc's debug file), and waited for here.
	var wg sync.WaitGroup
	wg.Go(func() {
		if syms, final := f.tableSymbols(); final {
			f.symOnce.Do(func() { f.syms = syms })
		} else {
			f.dynsyms = syms
		}
	})
	defer wg.Wait() // also when a decoder panics
	if err := f.loadDWARF(); err != nil && errors.Is(err, symfile.ErrCanceled) {
		return nil, err
	}
	return f, nil
}

// Identify reads what identifies the ELF file in r — program headers,
// notes and .gnu_debuglink — without reading symbols or DWARF.
func Identify(r io.ReaderAt) (_ symfile.Ident, err error) {
	defer recoverError(&err, "identify elf file")
	ef, err := newELF(r)
	if err != nil {
		return symfile.Ident{}, err
	}
	return identify(ef), nil
}

// recoverError turns a panic in the standard library's decoders, which
// some malformed inputs cause, into an error.
func recoverError(err *error, op string) {
	if r := recover(); r != nil {
		*err = &FormatError{Op: op, Err: fmt.Errorf("decoder panic: %v", r)}
	}
}

func newELF(r io.ReaderAt) (*elf.File, error) {
	var magic [4]byte
	if _, err := r.ReadAt(magic[:], 0); err != nil || string(magic[:]) != elf.ELFMAG {
		return nil, fmt.Errorf("read elf header: %w", symfile.ErrUnrecognized)
	}
	ef, err := elf.NewFile(r)
	if err != nil {
		if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
			err = errEndsEarly
		}
		return nil, &FormatError{Op: "read elf header", Err: err}
	}
	if ef.ByteOrder != binary.LittleEndian {
		return nil, fmt.Errorf("read elf header: %w: big-endian", ErrUnsupported)
	}
	return ef, nil
}

// Ident returns what identifies the file and how it is laid out.
func (f *File) Ident() symfile.Ident { return f.ident }

// DWARFError returns why the file's DWARF could not be indexed, or nil.
// Frames then falls back to Go's pclntab where the file has one.
func (f *File) DWARFError() error { return f.dwErr }

// Close closes the file if [Open] opened it.
func (f *File) Close() error {
	if f.closer != nil {
		return f.closer.Close()
	}
	return nil
}

// identify reads the identity from the headers (symfile.Ident's fields
// say which).
func identify(f *elf.File) symfile.Ident {
	id := symfile.Ident{Format: "elf"}
	lo, hi := ^uint64(0), uint64(0)
	var loOff uint64
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD {
			continue
		}
		if p.Vaddr < lo {
			lo, loOff = p.Vaddr, p.Off
		}
		hi = max(hi, p.Vaddr+p.Memsz)
	}
	if hi > 0 && lo <= hi {
		id.LinkBase = (lo - min(loOff, lo)) &^ (pageSize - 1)
		id.ImageSize = hi - id.LinkBase
	}
	notes := func(data []byte) {
		for _, n := range parseNotes(data, f.ByteOrder) {
			switch {
			case n.name == "GNU" && n.typ == ntGNUBuildID && id.BuildID == nil:
				id.BuildID = n.desc
			case n.name == "Go" && n.typ == ntGoBuildID && id.GoBuildID == "":
				id.GoBuildID = string(n.desc)
			}
		}
	}
	found := false
	for _, s := range f.Sections {
		if s.Type == elf.SHT_NOTE {
			if data, err := sectionData(s, maxNoteSize); err == nil {
				notes(data)
				found = true
			}
		}
	}
	if !found {
		for _, p := range f.Progs {
			if p.Type == elf.PT_NOTE && p.Filesz <= maxNoteSize {
				data := make([]byte, p.Filesz)
				if _, err := p.ReadAt(data, 0); err == nil {
					notes(data)
				}
			}
		}
	}
	if s := f.Section(".gnu_debuglink"); s != nil && s.Type != elf.SHT_NOBITS {
		if data, err := sectionData(s, maxNoteSize); err == nil {
			if i := bytes.IndexByte(data, 0); i > 0 {
				id.DebugLink = string(data[:i])
				// The CRC follows the name's NUL, padded to 4 bytes.
				if c := (i + 4) &^ 3; c+4 <= len(data) {
					id.DebugLinkCRC = f.ByteOrder.Uint32(data[c:])
				}
			}
		}
	}
	for _, name := range []string{".symtab", ".dynsym"} {
		if s := f.Section(name); s != nil && s.Type != elf.SHT_NOBITS && s.Size > s.Entsize {
			id.HasSymbols = true
		}
	}
	for _, name := range []string{".debug_line", ".zdebug_line", ".gopclntab"} {
		if s := f.Section(name); s != nil && s.Type != elf.SHT_NOBITS && s.Size > 0 {
			id.HasDebugInfo = true
		}
	}
	return id
}

// Limits on what the reader reads in one piece.
const (
	// pageSize is the alignment of LinkBase.
	pageSize = 4096
	// maxNoteSize bounds a note section or segment and .gnu_debuglink;
	// real ones are tens of bytes.
	maxNoteSize = 1 << 20
	// maxSectionSize bounds a DWARF or pclntab section; larger claims are
	// taken to be corrupt.
	maxSectionSize = 1 << 32
)

// Note types (elf.h; Go's cmd/link).
const (
	ntGNUBuildID = 3
	ntGoBuildID  = 4
)

type note struct {
	name string
	typ  uint32
	desc []byte
}

// parseNotes decodes a note section (ELF gABI "Note Section"): name size,
// descriptor size and type, then the name and descriptor, each padded to
// 4 bytes. It stops at the first malformed note.
func parseNotes(data []byte, order binary.ByteOrder) []note {
	var out []note
	for len(data) >= 12 {
		namesz, descsz, typ := uint64(order.Uint32(data)), uint64(order.Uint32(data[4:])), order.Uint32(data[8:])
		data = data[12:]
		na, da := (namesz+3)&^3, (descsz+3)&^3
		if na > uint64(len(data)) || da > uint64(len(data))-na {
			break
		}
		name := data[:namesz]
		name = bytes.TrimRight(name, "\x00")
		out = append(out, note{string(name), typ, data[na : na+descsz]})
		data = data[na+da:]
	}
	return out
}

// loadDWARF indexes the DWARF, if the file has any.
func (f *File) loadDWARF() error {
	info := f.section(".debug_info")
	if info == nil {
		return nil
	}
	var err error
	if f.f.Type == elf.ET_REL {
		// Relocatable objects need their DWARF relocated, which
		// debug/elf does.
		var d *dwarf.Data
		if d, err = f.f.DWARF(); err == nil {
			f.dw, err = dwarfidx.New(d, f.opts)
		}
	} else {
		s := &dwarfidx.Sections{Order: f.f.ByteOrder}
		secs := []struct {
			name string
			dst  *[]byte
		}{
			{"info", &s.Info}, {"abbrev", &s.Abbrev}, {"line", &s.Line}, {"str", &s.Str},
			{"line_str", &s.LineStr}, {"str_offsets", &s.StrOffsets}, {"addr", &s.Addr},
			{"ranges", &s.Ranges}, {"rnglists", &s.RngLists}, {"aranges", &s.Aranges},
		}
		// Read the sections in parallel: decompressing them is most of
		// the time it takes to open a file with compressed DWARF.
		errs := make([]error, len(secs))
		var wg sync.WaitGroup
		for i, p := range secs {
			sec := f.section(".debug_" + p.name)
			if sec == nil {
				continue
			}
			wg.Go(func() {
				defer recoverError(&errs[i], "read "+sec.Name)
				*p.dst, errs[i] = f.debugSection(sec, maxSectionSize)
			})
		}
		wg.Wait()
		err = errors.Join(errs...)
		if s.Info != nil && s.Abbrev != nil {
			units := f.unitTablePath(info)
			if units != "" {
				s.Units = readCached(units, unitTableLimit(s))
			}
			var ierr error
			f.dw, ierr = dwarfidx.NewSections(s, f.opts)
			err = errors.Join(err, ierr)
			switch t := f.dw.UnitTable(); {
			case units == "":
			case t != nil:
				storeCached(units, t)
			case ierr != nil && s.Units != nil && !errors.Is(ierr, symfile.ErrCanceled):
				os.Remove(units) // whatever went wrong, the next open walks the units again
			}
		}
	}
	if err != nil {
		f.dwErr = &FormatError{Op: "read dwarf", Err: err}
		if errors.Is(err, symfile.ErrCanceled) {
			return f.dwErr
		}
	}
	return nil
}

// section returns the named section, or its .zdebug_ variant, when it has
// contents.
func (f *File) section(name string) *elf.Section {
	s := f.f.Section(name)
	if s == nil && len(name) > 7 && name[:7] == ".debug_" {
		s = f.f.Section(".zdebug_" + name[7:])
	}
	if s == nil || s.Type == elf.SHT_NOBITS {
		return nil
	}
	return s
}

// goTable decodes Go's pclntab on first use.
func (f *File) goTable() *gosym.Table {
	f.goOnce.Do(func() {
		defer recoverError(&f.goErr, "read go pclntab")
		s := f.section(".gopclntab")
		if s == nil {
			return
		}
		data, err := sectionData(s, maxSectionSize)
		if err != nil {
			f.goErr = err
			return
		}
		// runtime.text, which is not the start of .text in an externally
		// linked (cgo) program; found without a symbol table too.
		text := gopclntab.TextStart(f.f)
		if t := f.f.Section(".text"); text == 0 && t != nil {
			text = t.Addr
		}
		tab, err := gosym.NewTable(nil, gosym.NewLineTable(data, text))
		if err != nil {
			f.goErr = &FormatError{Op: "read go pclntab", Err: err}
			return
		}
		f.gotab = tab
	})
	return f.gotab
}

// Frames appends the frames at addr: from the DWARF when the file has
// it; otherwise, for Go programs, the function and position from the
// pclntab (which gives the position of the innermost inlined call but
// names the function that contains it, without the inlined frames).
func (f *File) Frames(dst []symfile.Frame, addr uint64) (_ []symfile.Frame, err error) {
	defer recoverError(&err, "read frames")
	if f.dw != nil {
		return f.dw.Frames(dst, addr)
	}
	tab := f.goTable()
	if tab == nil {
		return dst, nil
	}
	file, line, fn := tab.PCToLine(addr)
	if fn == nil || (file == "" && line <= 0) {
		// Outside every function, or in the padding after one, which
		// the pclntab's position tables do not cover.
		return dst, nil
	}
	if !f.opts.Lines {
		return append(dst, symfile.Frame{Function: fn.Name}), nil
	}
	return append(dst, symfile.Frame{Function: fn.Name, File: file, Line: line}), nil
}

// testHookSymbolsMapped, if set, is called by symTable.each when the
// entries it is about to decode are mapped (tests truncate the file
// there).
var testHookSymbolsMapped func()

// Symbols returns the symbol table (.symtab, or .dynsym when it was
// stripped), without section, file and undefined symbols. A file with
// neither gets the functions its DWARF or Go pclntab describes; a file with
// only .dynsym gets those added.
func (f *File) Symbols() []symfile.Symbol {
	f.symOnce.Do(func() {
		// NewFile decoded the table unless opts.PublicsOnly, and
		// completed this Once if it was final.
		syms, final := f.dynsyms, false
		if f.opts.PublicsOnly {
			syms, final = f.tableSymbols()
		}
		f.dynsyms = nil
		if !final {
			syms = f.addFunctions(syms)
		}
		f.syms = syms
	})
	return f.syms
}

// tableSymbols decodes the symbol table for Symbols. From .symtab the
// symbols are final: sorted, and all there are. From .dynsym they are
// not: Symbols adds the functions of the DWARF or the pclntab, and sorts
// them. It reads neither of those, so that NewFile can run it while it
// indexes the DWARF. An unreadable table (a file truncated while mapped)
// gives no symbols.
func (f *File) tableSymbols() (syms []symfile.Symbol, final bool) {
	defer func() {
		if recover() != nil {
			syms, final = nil, true
		}
	}()
	tab, fromSymtab := symbolTable(f.f, f.file)
	defer tab.release()
	out := make([]symfile.Symbol, 0, tab.len())
	tab.each(func(s rawSym) {
		if s.Section == elf.SHN_UNDEF || s.Section == elf.SHN_ABS || s.Section == elf.SHN_COMMON || s.Name == "" {
			// Undefined, or a value that is no address in the module:
			// an absolute symbol (the version names GLIBC_PRIVATE and
			// LINUX_2.6 are absolute symbols of value 0), a common one.
			return
		}
		if i := int(s.Section); s.Section < elf.SHN_LORESERVE && i < len(f.f.Sections) && f.f.Sections[i].Flags&elf.SHF_ALLOC == 0 {
			// In a section that is not loaded (glibc's .gnu.warning.*
			// markers): its value is no address.
			return
		}
		var k symfile.Kind
		switch elf.ST_TYPE(s.Info) {
		case elf.STT_SECTION, elf.STT_FILE:
			return
		case elf.STT_FUNC, elf.STT_GNU_IFUNC:
			k = symfile.KindFunction
		case elf.STT_OBJECT, elf.STT_COMMON:
			k = symfile.KindData
		case elf.STT_TLS:
			k = symfile.KindThreadLocal
		}
		out = append(out, symfile.Symbol{Name: s.Name, Addr: s.Value, Size: s.Size, Kind: k})
	})
	stripVersions(out)
	if !fromSymtab {
		return out, false
	}
	symfile.Sort(out)
	return slices.Compact(out), true
}

// addFunctions adds to the symbols of a .dynsym the functions that the
// DWARF or Go's pclntab describe, and sorts them; a decoder's panic gives
// no symbols, as an unreadable table does.
func (f *File) addFunctions(syms []symfile.Symbol) (out []symfile.Symbol) {
	defer func() {
		if recover() != nil {
			out = nil
		}
	}()
	if f.dw != nil {
		syms = append(syms, f.dw.Functions()...)
	} else if tab := f.goTable(); tab != nil {
		for _, fn := range tab.Funcs {
			syms = append(syms, symfile.Symbol{Name: fn.Name, Addr: fn.Entry, Size: fn.End - fn.Entry, Kind: symfile.KindFunction})
		}
	}
	symfile.Sort(syms)
	return slices.Compact(syms)
}

// stripVersions removes the ELF symbol version that a .symtab spells into
// a name ("pthread_sigmask@GLIBC_2.2.5", "memcpy@@GLIBC_2.14", as glibc's
// .symver directives leave them), except where the module holds two
// versions of one name at different addresses (memcpy@GLIBC_2.2.5 and
// memcpy@@GLIBC_2.14 are two functions): there the versions tell them
// apart and stay. Versions of one name at one address are one function,
// named once without a version. (.dynsym names carry no version:
// debug/elf keeps it apart.)
func stripVersions(syms []symfile.Symbol) {
	// The versioned names: a few hundred of libc's 10,000 symbols. Only
	// they go into the map, and the names are split once.
	type versioned struct {
		i    int
		base string
	}
	var vers []versioned
	for i, s := range syms {
		if base, ok := unversioned(s.Name); ok {
			vers = append(vers, versioned{i, base})
		}
	}
	if len(vers) == 0 {
		return
	}
	type seen struct {
		addr uint64
		many bool // versions of the name at more than one address
	}
	names := make(map[string]seen, len(vers))
	for _, v := range vers {
		addr := syms[v.i].Addr
		if n, ok := names[v.base]; !ok {
			names[v.base] = seen{addr: addr}
		} else if n.addr != addr {
			n.many = true
			names[v.base] = n
		}
	}
	// A plain name at another address than its versions also makes two.
	for _, s := range syms {
		if n, ok := names[s.Name]; ok && n.addr != s.Addr && !n.many {
			n.many = true
			names[s.Name] = n
		}
	}
	for _, v := range vers {
		if !names[v.base].many {
			syms[v.i].Name = v.base
		}
	}
}

// unversioned splits "name@VERSION" or "name@@VERSION" and returns the
// name; ok is false for a name without a version.
func unversioned(name string) (base string, ok bool) {
	i := strings.IndexByte(name, '@')
	if i <= 0 || i == len(name)-1 {
		return name, false
	}
	v := strings.TrimPrefix(name[i+1:], "@")
	if v == "" || strings.ContainsAny(v, "@ ") {
		return name, false
	}
	return name[:i], true
}

// symTable is a symbol table (ELF gABI, "Symbol Table") read for
// decoding without debug/elf, which allocates a string per name and a
// slice of all the symbols: here the names are substrings of one copy of
// the string table, and each entry is decoded as it is visited. Names
// carry no version from .gnu.version (debug/elf keeps those apart too).
type symTable struct {
	data  []byte // the entries, without the null first one
	strs  string // the string table
	size  int    // of an entry: 24, or 16 for ELFCLASS32
	order binary.ByteOrder
	unmap func() // unmaps data when it is mapped, or nil
}

// release unmaps the entries if they are mapped; t is empty afterwards.
func (t *symTable) release() {
	if t.unmap != nil {
		t.unmap()
		t.unmap = nil
	}
	t.data = nil
}

// rawSym is an ELF symbol table entry, with the fields of elf.Symbol that
// this package reads.
type rawSym struct {
	Name        string
	Value, Size uint64
	Info, Other byte
	Section     elf.SectionIndex
}

// symbolTable returns .symtab, or .dynsym when .symtab is absent or
// empty, and whether it is .symtab. An unreadable table has no entries.
func symbolTable(ef *elf.File, file *os.File) (t symTable, fromSymtab bool) {
	if t = readSymTable(ef, file, elf.SHT_SYMTAB); t.len() > 0 {
		return t, true
	}
	return readSymTable(ef, file, elf.SHT_DYNSYM), false
}

// readSymTable reads the first section of type typ and its string table.
// The entries are mapped from file when it is not nil (filemap.Section):
// they are decoded once, by each, and release unmaps them. The string
// table is read: the names point into it.
func readSymTable(ef *elf.File, file *os.File, typ elf.SectionType) symTable {
	t := symTable{size: 24, order: ef.ByteOrder}
	if ef.Class == elf.ELFCLASS32 {
		t.size = 16
	}
	var sec *elf.Section
	for _, s := range ef.Sections {
		if s.Type == typ {
			sec = s
			break
		}
	}
	if sec == nil || sec.Link == 0 || int(sec.Link) >= len(ef.Sections) {
		return t
	}
	strData, err := sectionData(ef.Sections[sec.Link], maxSectionSize)
	if err != nil {
		return t
	}
	var data []byte
	if sec.Size > maxSectionSize {
		return t
	}
	// Mapped for a short use: the file may be rewritten in place later.
	if b, unmap, err := filemap.Section(file, sec); err == nil {
		data, t.unmap = b, unmap
	} else if data, err = sectionData(sec, maxSectionSize); err != nil {
		return t
	}
	if len(data) < 2*t.size {
		t.release()
		return t
	}
	// The names are substrings of the string table, which is used as it
	// was read: it is this function's own copy, never written, so a
	// string made without copying it (one fresh page fewer for each 4 KiB
	// of it) never changes.
	t.data, t.strs = data[t.size:], unsafe.String(unsafe.SliceData(strData), len(strData))
	return t
}

// len returns the number of entries.
func (t symTable) len() int { return len(t.data) / t.size }

// each calls fn with each entry. When the entries are mapped, a fault in
// them (the file truncated meanwhile) panics, as a runtime error, rather
// than ending the process: the caller recovers it as it recovers a
// malformed table.
func (t symTable) each(fn func(rawSym)) {
	if t.unmap != nil {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		if testHookSymbolsMapped != nil {
			testHookSymbolsMapped()
		}
	}
	name := func(off uint32) string {
		if uint64(off) >= uint64(len(t.strs)) {
			return ""
		}
		if n := strings.IndexByte(t.strs[off:], 0); n >= 0 {
			return t.strs[off : int(off)+n]
		}
		return ""
	}
	le := t.order
	for p := 0; p+t.size <= len(t.data); p += t.size {
		e := t.data[p : p+t.size]
		if t.size == 24 {
			fn(rawSym{Name: name(le.Uint32(e[0:])), Info: e[4], Other: e[5],
				Section: elf.SectionIndex(le.Uint16(e[6:])), Value: le.Uint64(e[8:]), Size: le.Uint64(e[16:])})
		} else {
			fn(rawSym{Name: name(le.Uint32(e[0:])), Value: uint64(le.Uint32(e[4:])), Size: uint64(le.Uint32(e[8:])),
				Info: e[12], Other: e[13], Section: elf.SectionIndex(le.Uint16(e[14:]))})
		}
	}
}
