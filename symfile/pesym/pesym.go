package pesym

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/fntable/fntable/peimage"
	"github.com/fntable/fntable/symfile"
	"github.com/fntable/fntable/symfile/dwarfidx"
	"github.com/fntable/fntable/unwindinfo"
)

// MaxWarnings caps the warnings a [File] keeps.
const MaxWarnings = 100

// unwindWindowSize is how much unwind information is read at a time to
// tell primary exception-directory entries from chained fragments.
const unwindWindowSize = 64 << 10

// File is a PE image's symbols and identity. It is immutable once made
// and safe for concurrent use.
type File struct {
	ident    symfile.Ident
	syms     []symfile.Symbol
	exports  []Export
	warnings []error
	dw       *dwarfidx.Index // nil without DWARF
	closer   io.Closer
}

var _ symfile.Source = (*File)(nil)

// Open opens the named image file and reads it as [NewFile] does. Close
// closes the file.
func Open(name string, opts symfile.Options) (*File, error) {
	fh, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	f, err := NewFile(fh, opts)
	if err != nil {
		fh.Close()
		return nil, err
	}
	f.closer = fh
	return f, nil
}

// NewFile reads the headers, the identity and the symbols of the image in
// r. Everything is read before it returns; r is not used afterwards.
// Input that is not a PE image gives an error wrapping
// symfile.ErrUnrecognized; a cancelled opts.Context gives one wrapping
// symfile.ErrCanceled. Problems with one source of symbols do not fail
// the call: they are in [File.Warnings]. opts reaches the DWARF index
// (package dwarfidx) of an image that has DWARF: Lines selects inline
// frames with source positions, and Progress reports its indexing; the
// rest of the image is read in one quick pass that checks Context between
// steps.
func NewFile(r io.ReaderAt, opts symfile.Options) (*File, error) {
	ctx := opts.Context
	if ctx == nil {
		ctx = context.Background()
	}
	canceled := func() error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("read pe symbols: %w: %w", symfile.ErrCanceled, err)
		}
		return nil
	}
	img, err := parseHeaders(r)
	if err != nil {
		return nil, err
	}
	f := &File{}
	f.ident, err = img.ident()
	f.warn(err)
	if err := canceled(); err != nil {
		return nil, err
	}

	coff, err := img.readCOFF()
	f.warn(err)
	f.exports, err = img.readExports()
	f.warn(err)
	if err := canceled(); err != nil {
		return nil, err
	}

	var all []symfile.Symbol
	all = append(all, coff...)
	for _, e := range f.exports {
		if e.Forwarder != "" {
			continue
		}
		s := img.sectionOf(e.RVA, 1)
		if s == nil {
			f.warn(&FormatError{Off: -1, Msg: fmt.Sprintf("export %q (ordinal %d) at rva %#x: not within a section", e.Name, e.Ordinal, e.RVA)})
			continue
		}
		name := e.Name
		if name == "" {
			name = fmt.Sprintf("#%d", e.Ordinal)
		}
		kind := symfile.KindData
		if s.code() {
			kind = symfile.KindFunction
		}
		all = append(all, symfile.Symbol{Name: name, Addr: img.imageBase + uint64(e.RVA), Kind: kind})
	}
	if img.machine == IMAGE_FILE_MACHINE_AMD64 && img.pe32plus && img.dirs[IMAGE_DIRECTORY_ENTRY_EXCEPTION].Size != 0 {
		all = f.addFunctions(r, img, all)
	}
	if err := canceled(); err != nil {
		return nil, err
	}
	f.syms = f.dedupe(all)
	if err := f.loadDWARF(img, opts); err != nil {
		return nil, err
	}
	return f, nil
}

// maxDWARFSection caps the size of a DWARF section read.
const maxDWARFSection = 1 << 30

// loadDWARF indexes the DWARF of a MinGW image, if it has any. Only a
// cancellation is an error; malformed DWARF is a warning.
func (f *File) loadDWARF(img *image, opts symfile.Options) error {
	s := &dwarfidx.Sections{}
	var errs []error
	for _, p := range []struct {
		name string
		dst  *[]byte
	}{
		{"info", &s.Info}, {"abbrev", &s.Abbrev}, {"line", &s.Line}, {"str", &s.Str},
		{"line_str", &s.LineStr}, {"str_offsets", &s.StrOffsets}, {"addr", &s.Addr},
		{"ranges", &s.Ranges}, {"rnglists", &s.RngLists}, {"aranges", &s.Aranges},
	} {
		data, err := img.sectionData(".debug_" + p.name)
		if err != nil {
			errs = append(errs, err)
		}
		*p.dst = data
	}
	if s.Info == nil || s.Abbrev == nil {
		f.warn(errors.Join(errs...))
		return nil
	}
	x, err := dwarfidx.NewSections(s, opts)
	if errors.Is(err, symfile.ErrCanceled) {
		return fmt.Errorf("read pe dwarf: %w", err)
	}
	if err != nil {
		errs = append(errs, err)
	}
	if x != nil {
		f.dw = x
	}
	if len(errs) > 0 {
		f.warn(fmt.Errorf("read pe dwarf: %w", errors.Join(errs...)))
	}
	return nil
}

// warn records a problem that cost some symbols.
func (f *File) warn(err error) {
	if err != nil && len(f.warnings) < MaxWarnings {
		f.warnings = append(f.warnings, err)
	}
}

// dedupe sorts syms as Symbols promises and merges entries with the same
// address and name: the first one's kind wins, the largest size is kept.
func (f *File) dedupe(syms []symfile.Symbol) []symfile.Symbol {
	// Sort by address, name and position: a total order, so that an
	// unstable sort keeps the first of equal symbols first.
	type keyed struct {
		s   symfile.Symbol
		seq int
	}
	ks := make([]keyed, len(syms))
	for i, s := range syms {
		ks[i] = keyed{s, i}
	}
	slices.SortFunc(ks, func(a, b keyed) int {
		if a.s.Addr != b.s.Addr {
			return cmp.Compare(a.s.Addr, b.s.Addr)
		}
		if c := strings.Compare(a.s.Name, b.s.Name); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	out := syms[:0]
	for _, k := range ks {
		if n := len(out); n > 0 && out[n-1].Addr == k.s.Addr && out[n-1].Name == k.s.Name {
			out[n-1].Size = max(out[n-1].Size, k.s.Size)
			continue
		}
		out = append(out, k.s)
	}
	// Address and name are now unique: this order is total too.
	symfile.Sort(out)
	return slices.Clip(out)
}

// addFunctions gives function symbols at the start of an exception
// directory entry the entry's size, and names the entries that have no
// function symbol (see the package documentation). Where several function
// symbols share an address, the first in syms names the chained fragments
// of its function.
func (f *File) addFunctions(r io.ReaderAt, img *image, syms []symfile.Symbol) []symfile.Symbol {
	pf, err := peimage.NewFile(r)
	if err != nil {
		f.warn(fmt.Errorf("read exception directory: %w", err))
		return syms
	}
	for _, w := range pf.Warnings() {
		f.warn(fmt.Errorf("read exception directory: %s", w.Msg))
	}
	type entry struct {
		rf   unwindinfo.RuntimeFunction
		root uint32 // BeginAddress of the chain's primary entry
	}
	var entries []entry
	for _, rf := range pf.Functions() {
		if rf.EndAddress > rf.BeginAddress && rf.EndAddress <= img.sizeOfImage {
			entries = append(entries, entry{rf: rf, root: rf.BeginAddress})
		}
	}
	if len(entries) == 0 {
		return syms
	}
	// Function names by address.
	nameAt := make(map[uint32]string)
	for _, s := range syms {
		if s.Kind != symfile.KindFunction || s.Addr < img.imageBase || s.Addr-img.imageBase >= uint64(img.sizeOfImage) {
			continue
		}
		rva := uint32(s.Addr - img.imageBase)
		if _, ok := nameAt[rva]; !ok {
			nameAt[rva] = s.Name
		}
	}
	// Find the roots of the unnamed entries' chains, reading their
	// unwind information in address order through a small window.
	var todo []int
	for i, e := range entries {
		if _, ok := nameAt[e.rf.BeginAddress]; !ok && !e.rf.Indirect() {
			todo = append(todo, i)
		}
	}
	slices.SortFunc(todo, func(a, b int) int { return cmp.Compare(entries[a].rf.UnwindData, entries[b].rf.UnwindData) })
	var win unwindWindow
	for _, i := range todo {
		e := &entries[i]
		cur := e.rf
		for range unwindinfo.ChainLimit {
			v, ok := win.view(pf, cur.UnwindData)
			if !ok {
				break
			}
			parent, ok := v.Chained()
			if !ok || parent.Indirect() {
				break
			}
			cur = parent
		}
		e.root = cur.BeginAddress
	}
	// Sizes for the symbols at entry starts, names for the rest.
	sizeAt := make(map[uint32]uint32, len(entries))
	for _, e := range entries {
		sizeAt[e.rf.BeginAddress] = max(sizeAt[e.rf.BeginAddress], e.rf.EndAddress-e.rf.BeginAddress)
	}
	for i := range syms {
		s := &syms[i]
		if s.Kind != symfile.KindFunction || s.Size != 0 || s.Addr < img.imageBase || s.Addr-img.imageBase >= uint64(img.sizeOfImage) {
			continue
		}
		if size, ok := sizeAt[uint32(s.Addr-img.imageBase)]; ok {
			s.Size = uint64(size)
		}
	}
	for _, e := range entries {
		begin := e.rf.BeginAddress
		if _, ok := nameAt[begin]; ok {
			continue
		}
		name, ok := nameAt[e.root]
		if !ok {
			name = fmt.Sprintf("sub_%x", e.root)
		}
		syms = append(syms, symfile.Symbol{Name: name, Addr: img.imageBase + uint64(begin),
			Size: uint64(e.rf.EndAddress - begin), Kind: symfile.KindFunction})
	}
	return syms
}

// Ident returns the image's identity.
func (f *File) Ident() symfile.Ident { return f.ident }

// Symbols returns the image's symbols, sorted by address, then size
// descending, then name. The slice is shared: callers must not modify it.
func (f *File) Symbols() []symfile.Symbol { return f.syms }

// Exports returns the export directory's entries sorted by ordinal, then
// name, forwarders included. The slice is shared: callers must not modify
// it.
func (f *File) Exports() []Export { return f.exports }

// Warnings returns the problems that cost symbols or frames: a malformed
// export directory, symbol table, debug directory, exception directory or
// DWARF (at most [MaxWarnings]).
func (f *File) Warnings() []error { return f.warnings }

// Frames appends the inline frames at addr from the image's DWARF (see
// package dwarfidx), innermost first; without Options.Lines only the
// containing function. Without DWARF, or where it says nothing about addr,
// it returns dst unchanged: exports, COFF symbols and the exception
// directory have no line or inline information.
func (f *File) Frames(dst []symfile.Frame, addr uint64) ([]symfile.Frame, error) {
	if f.dw == nil {
		return dst, nil
	}
	return f.dw.Frames(dst, addr)
}

// Close closes the file opened by [Open]; for a File made by [NewFile] it
// does nothing.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	err := f.closer.Close()
	f.closer = nil
	return err
}

// unwindWindow reads unwind information through a window of
// unwindWindowSize bytes, so that entries visited in address order cost
// one read per window, not one per entry.
type unwindWindow struct {
	lo  uint32
	buf []byte
}

// view returns the unwind information at rva.
func (w *unwindWindow) view(pf *peimage.File, rva uint32) (unwindinfo.View, bool) {
	if rva < w.lo || uint64(rva)+unwindinfo.MaxSize > uint64(w.lo)+uint64(len(w.buf)) {
		if w.buf == nil {
			w.buf = make([]byte, unwindWindowSize)
		}
		w.buf = w.buf[:unwindWindowSize]
		n, _ := pf.ReadRVA(w.buf, rva)
		w.lo, w.buf = rva, w.buf[:n]
	}
	v, err := unwindinfo.NewView(w.buf[rva-w.lo:])
	return v, err == nil
}
