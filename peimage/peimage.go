package peimage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"

	"github.com/fntable/fntable/internal/binread"
	"github.com/fntable/fntable/memory"
	"github.com/fntable/fntable/unwindinfo"
)

// PE constants used here ("PE Format").
const (
	IMAGE_FILE_MACHINE_AMD64        = 0x8664 // COFF machine type of x64 images
	IMAGE_NT_OPTIONAL_HDR64_MAGIC   = 0x20b  // optional header magic of PE32+
	IMAGE_DIRECTORY_ENTRY_EXCEPTION = 3      // data directory index of the exception table
)

// Limits on what input may ask for.
const (
	// MaxFunctions caps the entries read from an exception directory
	// (48 MiB of RUNTIME_FUNCTIONs). The largest real images have about a
	// million entries; a bigger Size is corrupt or hostile.
	MaxFunctions = 1 << 22

	// MaxWarnings caps the warnings kept; the rest are counted in one
	// final warning.
	MaxWarnings = 100

	// maxHeaderOffset bounds e_lfanew: the PE header must lie in the
	// first 16 MiB (real images have it below 0x400).
	maxHeaderOffset = 1 << 24
)

// These are the errors returned by this package. A malformed image yields
// a *FormatError wrapping ErrMalformed; one that is well-formed but not a
// PE32+ x64 image yields an error wrapping one of the "not this format"
// sentinels, so that callers trying several formats can move on.
var (
	// ErrMalformed matches every error about malformed image data.
	ErrMalformed = errors.New("malformed pe image")
	// ErrTruncated: the image data ends before a structure it describes.
	ErrTruncated = errors.New("truncated")
	// ErrNotImage: the data is not a PE image (no MZ or PE signature);
	// COFF object files get this error too.
	ErrNotImage = errors.New("not a pe image")
	// ErrUnsupportedMachine: a PE image for a machine other than x64.
	ErrUnsupportedMachine = errors.New("not an x64 image")
	// ErrNotPE32Plus: an x64 machine type with a PE32 (not PE32+)
	// optional header.
	ErrNotPE32Plus = errors.New("not a pe32+ image")
)

// FormatError describes malformed image data: what was wrong, where, and
// the offending value. It wraps ErrMalformed and the sentinel in Err.
type FormatError struct {
	Off int64  // offset of the problem: a file offset, or an RVA for mapped images
	Msg string // what was being read or which rule failed
	Val any    // the offending value, or nil
	Err error  // a specific sentinel such as ErrTruncated, or nil
}

func (e *FormatError) Error() string {
	s := "malformed pe image: " + e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	if e.Val != nil {
		s += fmt.Sprintf(" '%#x'", e.Val)
	}
	return fmt.Sprintf("%s (at offset %#x)", s, e.Off)
}

// Unwrap returns ErrMalformed and the specific sentinel.
func (e *FormatError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrMalformed}
	}
	return []error{ErrMalformed, e.Err}
}

// UnmappedError reports a read of an address that the image does not map.
// It is memory.UnmappedError, the one type for every memory source (it
// matches memory.ErrShortRead with errors.Is). From
// [ImageMemory.ReadMemory] Addr is a virtual address; from [File.ReadRVA]
// it is an RVA.
type UnmappedError = memory.UnmappedError

// Memory reads an address space, such as that of a process or a dump,
// in which an image is mapped. It is memory.Reader, the one memory
// interface of the module (unwind.Memory is the same).
//
// ReadMemory reads len(p) bytes at addr into p and returns the number of
// bytes read; when that is less than len(p) it returns a non-nil error.
type Memory = memory.Reader

// WarningKind classifies a [Warning].
type WarningKind uint8

// Kinds of warnings about a function table.
const (
	WarnTableSize      WarningKind = iota + 1 // directory Size not a multiple of 12; the remainder is ignored
	WarnTableTruncated                        // fewer entries read than Size announces
	WarnUnsorted                              // entries not sorted by BeginAddress
	WarnOverlap                               // an entry overlaps the one before it (in address order)
	WarnOutsideImage                          // an entry's code range or unwind data lies outside the image
	WarnEmptyRange                            // a nonzero entry with EndAddress <= BeginAddress
	WarnIndirect                              // an indirect entry that cannot be resolved
	WarnMore                                  // more warnings than MaxWarnings; the rest were dropped
)

// Warning reports something unusual about the function table that Windows
// tolerates, and that this package tolerates too.
type Warning struct {
	Kind  WarningKind
	Index int    // index in Functions of the entry concerned, or -1
	Msg   string // description, e.g. "entry 3 (0x1000-0x1020) overlaps entry 2 (0x1000-0x1010)"
}

func (w Warning) String() string { return w.Msg }

// File is a PE32+ x64 image with its function table. It is immutable once
// made; see the package documentation on concurrency.
type File struct {
	imageBase     uint64 // preferred base from the optional header
	sizeOfImage   uint32
	sizeOfHeaders uint32
	excRVA        uint32 // exception directory
	excSize       uint32

	regions []region // file images: what each RVA range maps to

	r      io.ReaderAt // file images
	mem    Memory      // mapped images
	base   uint64      // mapped images: address of RVA 0
	closer io.Closer   // what Open opened

	unwindBufs sync.Pool // of *[unwindinfo.MaxSize]byte: UnwindInfo and Chain read into one (see unwindBuf)

	tableOnce sync.Once                    // reads funcs, idx and warnings (see table)
	funcs     []unwindinfo.RuntimeFunction // file order
	idx       index
	warnings  warnList
}

// region maps [rva, rva+size) of a file image: the first raw bytes come
// from the file at off, the rest reads as zeros.
type region struct {
	rva, size uint32
	off       uint32
	raw       uint32 // <= size
}

// index is the sorted search structure of LookupFunctionEntry.
type index struct {
	begins  []uint32                     // BeginAddress of keys, for a cache-friendly search
	keys    []unwindinfo.RuntimeFunction // nonempty entries sorted by BeginAddress
	targets []unwindinfo.RuntimeFunction // what a lookup returns: keys with indirect entries resolved
	overlap bool
}

// keyed is an entry of the table with its index in file order.
type keyed struct {
	rf unwindinfo.RuntimeFunction
	i  int // index in file order
}

// warnList collects warnings, keeping the first MaxWarnings.
type warnList struct {
	ws      []Warning
	dropped int // warnings beyond MaxWarnings
}

func (l *warnList) add(kind WarningKind, i int, format string, args ...any) {
	if len(l.ws) >= MaxWarnings {
		l.dropped++
		return
	}
	l.ws = append(l.ws, Warning{Kind: kind, Index: i, Msg: fmt.Sprintf(format, args...)})
}

// mergeWarnings returns the warnings of lists one after the other, as one
// list that had received them in that order would hold them: the first
// MaxWarnings, then a WarnMore warning counting the rest.
func mergeWarnings(lists ...*warnList) []Warning {
	var ws []Warning
	dropped := 0
	for _, l := range lists {
		k := min(len(l.ws), MaxWarnings-len(ws))
		ws = append(ws, l.ws[:k]...)
		dropped += len(l.ws) - k + l.dropped
	}
	if dropped > 0 {
		ws = append(ws, Warning{Kind: WarnMore, Index: -1, Msg: fmt.Sprintf("%d more warnings not listed", dropped)})
	}
	return ws
}

// Open opens the named image file. Close closes it.
func Open(name string) (*File, error) {
	fh, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	f, err := NewFile(fh)
	if err != nil {
		fh.Close()
		return nil, err
	}
	f.closer = fh
	return f, nil
}

// Close closes the file opened by [Open]; for a File made by [NewFile] or
// [NewMapped] it does nothing.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	err := f.closer.Close()
	f.closer = nil
	return err
}

// NewFile reads an image file from r, which must stay readable while the
// File is used. It parses the headers and the function table.
func NewFile(r io.ReaderAt) (*File, error) {
	f, err := NewFileLazy(r)
	if err != nil {
		return nil, err
	}
	f.table()
	return f, nil
}

// NewFileLazy reads the headers of an image file from r, like [NewFile],
// but reads the function table only when a method needs it:
// [File.Functions], [File.Warnings] and [File.LookupFunctionEntry] read
// and index it at the first call of any of them. [File.ScanTable] reads it
// entry by entry without keeping it, so a File that is only scanned never
// holds its table, however large.
func NewFileLazy(r io.ReaderAt) (*File, error) {
	f := &File{r: r}
	read := func(p []byte, off uint32) error {
		n, err := r.ReadAt(p, int64(off))
		if n == len(p) {
			return nil
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("read pe headers: %w", err) // no format error
		}
		return &FormatError{Off: int64(off) + int64(n), Msg: "read pe headers", Err: ErrTruncated}
	}
	if err := f.parseHeaders(read); err != nil {
		return nil, err
	}
	return f, nil
}

// NewMapped reads an image mapped in m at address base: the headers are
// read at base and every RVA at base+RVA. m must stay readable while the
// File is used.
func NewMapped(m Memory, base uint64) (*File, error) {
	f := &File{mem: m, base: base}
	read := func(p []byte, off uint32) error {
		n, err := m.ReadMemory(p, base+uint64(off))
		if n == len(p) {
			return nil
		}
		if err == nil {
			err = ErrTruncated
		}
		return &FormatError{Off: int64(off) + int64(max(n, 0)), Msg: fmt.Sprintf("read pe headers at %#x", base), Err: err}
	}
	if err := f.parseHeaders(read); err != nil {
		return nil, err
	}
	f.table()
	return f, nil
}

// parseHeaders reads the MS-DOS, COFF and optional headers and the section
// table through read, which reads header bytes at an offset from the start
// of the image (the file start, or the mapped base: the headers are mapped
// as they are in the file).
func (f *File) parseHeaders(read func(p []byte, off uint32) error) error {
	var dos [64]byte
	if err := read(dos[:2], 0); err != nil {
		if !errors.Is(err, ErrTruncated) {
			return err // unreadable (a directory, an I/O error, unmapped)
		}
		return fmt.Errorf("read pe headers: %w: shorter than an MZ signature", ErrNotImage)
	}
	if dos[0] != 'M' || dos[1] != 'Z' {
		var coff [20]byte
		if read(coff[:], 0) == nil && isCOFFObject(coff[:]) {
			return fmt.Errorf("read pe headers: %w: COFF object file for machine %#x", ErrNotImage, binary.LittleEndian.Uint16(coff[:]))
		}
		return fmt.Errorf("read pe headers: %w: no MZ signature", ErrNotImage)
	}
	if err := read(dos[:], 0); err != nil {
		return err
	}
	lfanew := binary.LittleEndian.Uint32(dos[0x3c:])
	if lfanew > maxHeaderOffset {
		return &FormatError{Off: 0x3c, Msg: "pe header offset (e_lfanew) too large", Val: lfanew}
	}
	var nt [24]byte
	if err := read(nt[:], lfanew); err != nil {
		return fmt.Errorf("read pe headers: %w: no PE header at %#x: the data ends", ErrNotImage, lfanew)
	}
	if string(nt[:4]) != "PE\x00\x00" {
		return fmt.Errorf("read pe headers: %w: no PE signature at %#x", ErrNotImage, lfanew)
	}
	machine := binary.LittleEndian.Uint16(nt[4:])
	nsec := binary.LittleEndian.Uint16(nt[6:])
	optSize := binary.LittleEndian.Uint16(nt[20:])
	if machine != IMAGE_FILE_MACHINE_AMD64 {
		return fmt.Errorf("read pe headers: %w: machine %#x", ErrUnsupportedMachine, machine)
	}

	// The optional header: the PE32+ fields used here end with the
	// exception directory at 112+8*3.
	optOff := lfanew + 24
	var opt [112 + 8*(IMAGE_DIRECTORY_ENTRY_EXCEPTION+1)]byte
	if optSize < 2 {
		return &FormatError{Off: int64(lfanew) + 20, Msg: "optional header size", Val: optSize}
	}
	n := min(int(optSize), len(opt))
	if err := read(opt[:n], optOff); err != nil {
		return err
	}
	if magic := binary.LittleEndian.Uint16(opt[:]); magic != IMAGE_NT_OPTIONAL_HDR64_MAGIC {
		return fmt.Errorf("read pe headers: %w: optional header magic %#x", ErrNotPE32Plus, magic)
	}
	if n < 112 {
		return &FormatError{Off: int64(lfanew) + 20, Msg: "optional header too small for PE32+", Val: optSize, Err: ErrTruncated}
	}
	r := binread.New("optional header", opt[:n], int64(optOff))
	r.Skip(24)
	f.imageBase = r.U64()
	sectionAlignment := r.U32()
	r.Skip(56 - 36)
	f.sizeOfImage = r.U32()
	f.sizeOfHeaders = r.U32()
	r.Skip(108 - 64)
	ndirs := r.U32()
	if err := r.Err(); err != nil {
		return &FormatError{Off: int64(optOff), Msg: "read optional header", Err: ErrTruncated}
	}
	if f.sizeOfImage == 0 {
		return &FormatError{Off: int64(optOff) + 56, Msg: "SizeOfImage is zero"}
	}
	if ndirs > IMAGE_DIRECTORY_ENTRY_EXCEPTION && n >= len(opt) {
		r.Skip(8 * IMAGE_DIRECTORY_ENTRY_EXCEPTION)
		f.excRVA = r.U32()
		f.excSize = r.U32()
	}

	// The section table, after the optional header.
	secOff := uint64(optOff) + uint64(optSize)
	if secOff+40*uint64(nsec) > 1<<32 {
		return &FormatError{Off: int64(lfanew) + 6, Msg: "section table beyond 4 GiB", Val: nsec}
	}
	st := make([]byte, 40*int(nsec))
	if err := read(st, uint32(secOff)); err != nil {
		return err
	}
	align := func(v uint32) uint32 { // round v up to the section alignment, clamped to SizeOfImage
		a := uint64(v)
		if sectionAlignment > 1 {
			a = (a + uint64(sectionAlignment) - 1) &^ (uint64(sectionAlignment) - 1)
		}
		return uint32(min(a, uint64(f.sizeOfImage)))
	}
	// The headers are mapped at RVA 0, up to SizeOfHeaders from the file.
	hsize := align(f.sizeOfHeaders)
	f.regions = append(f.regions, region{rva: 0, size: hsize, raw: min(f.sizeOfHeaders, hsize)})
	for i := range int(nsec) {
		s := st[40*i:]
		vsize := binary.LittleEndian.Uint32(s[8:])
		va := binary.LittleEndian.Uint32(s[12:])
		rawSize := binary.LittleEndian.Uint32(s[16:])
		rawOff := binary.LittleEndian.Uint32(s[20:])
		if vsize == 0 {
			vsize = rawSize // as the loader does
		}
		if va >= f.sizeOfImage || vsize == 0 {
			continue // maps nothing in the image; never read
		}
		end := align(uint32(min(uint64(va)+uint64(vsize), uint64(f.sizeOfImage))))
		reg := region{rva: va, size: end - va, off: rawOff, raw: min(rawSize, end-va)}
		if rawOff == 0 {
			reg.raw = 0 // uninitialized data (.bss)
		}
		f.regions = append(f.regions, reg)
	}
	// Later sections win over the headers: search sections first.
	slices.Reverse(f.regions)

	if f.excSize == 0 {
		f.excRVA = 0 // no table, wherever the directory points
	} else {
		if uint64(f.excRVA)+uint64(f.excSize) > uint64(f.sizeOfImage) {
			return &FormatError{Off: int64(optOff) + 112 + 8*IMAGE_DIRECTORY_ENTRY_EXCEPTION,
				Msg: fmt.Sprintf("exception directory at rva %#x size %#x beyond SizeOfImage %#x", f.excRVA, f.excSize, f.sizeOfImage)}
		}
	}
	return nil
}

// isCOFFObject reports whether b starts with a plausible COFF file header
// of an object file (no optional header, a known machine).
func isCOFFObject(b []byte) bool {
	switch binary.LittleEndian.Uint16(b) {
	case IMAGE_FILE_MACHINE_AMD64, 0x14c /* i386 */, 0xaa64 /* arm64 */, 0x1c4 /* armnt */ :
		return binary.LittleEndian.Uint16(b[16:]) == 0 // SizeOfOptionalHeader
	}
	return false
}

// ImageBase returns the preferred image base from the optional header.
// For a mapped image it is the value in the mapped header, which the
// loader may have updated to the actual base.
func (f *File) ImageBase() uint64 { return f.imageBase }

// SizeOfImage returns the size in bytes of the image when mapped.
func (f *File) SizeOfImage() uint32 { return f.sizeOfImage }

// ExceptionDirectory returns the RVA and size in bytes of the exception
// directory (data directory 3); size is 0 when the image has none.
func (f *File) ExceptionDirectory() (rva, size uint32) { return f.excRVA, f.excSize }

// Functions returns the entries of the function table in file order,
// including all-zero and otherwise unusual entries. The caller must not
// modify them.
func (f *File) Functions() []unwindinfo.RuntimeFunction {
	f.table()
	return f.funcs
}

// Warnings returns what is unusual about the function table.
func (f *File) Warnings() []Warning {
	f.table()
	if f.warnings.dropped == 0 {
		return f.warnings.ws
	}
	return mergeWarnings(&f.warnings)
}

// ReadRVA reads len(p) bytes of the mapped image at rva into p: the
// headers, section data, and zeros for the part of a section beyond its
// raw data. It returns the number of bytes read; when that is less than
// len(p) the error is an *[UnmappedError] (with the RVA) for bytes outside
// every section and the headers, or the error of the underlying read.
func (f *File) ReadRVA(p []byte, rva uint32) (int, error) {
	avail := len(p)
	if uint64(rva)+uint64(len(p)) > uint64(f.sizeOfImage) {
		avail = int(max(int64(f.sizeOfImage)-int64(rva), 0))
	}
	var n int
	var err error
	if f.mem != nil {
		n, err = f.readMapped(p[:avail], rva)
	} else {
		n, err = f.readFile(p[:avail], rva)
	}
	if err == nil && n < len(p) {
		err = &UnmappedError{Addr: uint64(rva) + uint64(n)}
	}
	return n, err
}

func (f *File) readMapped(p []byte, rva uint32) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, err := f.mem.ReadMemory(p, f.base+uint64(rva))
	if n < 0 || n > len(p) {
		n = 0 // a Memory that misreports its count
	}
	if n < len(p) {
		// ReadRVA reports RVAs; the Memory reported an address, or
		// nothing.
		if _, ok := err.(*UnmappedError); ok || err == nil {
			err = &UnmappedError{Addr: uint64(rva) + uint64(n)}
		}
	}
	return n, err
}

func (f *File) readFile(p []byte, rva uint32) (int, error) {
	n := 0
	for n < len(p) {
		a := rva + uint32(n) // no overflow: rva+len(p) <= SizeOfImage
		r, ok := f.region(a)
		if !ok {
			return n, &UnmappedError{Addr: uint64(a)}
		}
		off := a - r.rva
		k := min(len(p)-n, int(r.size-off))
		if off < r.raw {
			m := min(k, int(r.raw-off))
			got, err := f.r.ReadAt(p[n:n+m], int64(r.off)+int64(off))
			if got < m {
				if err == nil || err == io.EOF {
					err = ErrTruncated
				}
				return n + max(got, 0), &FormatError{Off: int64(r.off) + int64(off) + int64(max(got, 0)),
					Msg: fmt.Sprintf("read image data at rva %#x", a), Err: err}
			}
			n += m
			k -= m
		}
		clear(p[n : n+k])
		n += k
	}
	return n, nil
}

// region returns the region of a file image that maps rva.
func (f *File) region(rva uint32) (region, bool) {
	for _, r := range f.regions {
		if rva >= r.rva && rva-r.rva < r.size {
			return r, true
		}
	}
	return region{}, false
}

// backedEnd returns the end of the last file-backed byte of a file image
// in [rva, end), or rva if there is none. Table entries beyond it are
// zero-filled and never match.
func (f *File) backedEnd(rva, end uint32) uint32 {
	last := rva
	for _, r := range f.regions {
		lo, hi := max(r.rva, rva), min(r.rva+r.raw, end)
		if lo < hi {
			last = max(last, hi)
		}
	}
	return last
}

// table reads the function table and builds the lookup index, once.
func (f *File) table() { f.tableOnce.Do(f.readTable) }

// readTable reads the function table and builds the lookup index.
func (f *File) readTable() {
	sc := f.newScanner(false)
	for sc.Next() {
		f.funcs = append(f.funcs, sc.Function())
	}
	f.warnings = sc.tableWarnings // those of the directory come first
	if f.funcs == nil {
		return
	}
	f.check()
	f.buildIndex()
}

// check reports unusual entries.
func (f *File) check() {
	var c entryCheck
	for i, rf := range f.funcs {
		c.add(f, &f.warnings, i, rf)
	}
}

// entryCheck holds the state of the checks of the entries in file order.
type entryCheck struct {
	prev     unwindinfo.RuntimeFunction // the last entry that is not all zero
	prevIdx  int                        // its index
	started  bool                       // prev is set
	unsorted bool                       // an entry began before the one before it
}

// add checks entry i of the table, rf, after the entries before it.
func (c *entryCheck) add(f *File, w *warnList, i int, rf unwindinfo.RuntimeFunction) {
	if rf == (unwindinfo.RuntimeFunction{}) {
		return
	}
	if rf.EndAddress <= rf.BeginAddress {
		w.add(WarnEmptyRange, i, "entry %d (%#x-%#x) has an empty range", i, rf.BeginAddress, rf.EndAddress)
	}
	if rf.EndAddress > f.sizeOfImage || rf.BeginAddress >= f.sizeOfImage {
		w.add(WarnOutsideImage, i, "entry %d (%#x-%#x) lies outside the image (SizeOfImage %#x)", i, rf.BeginAddress, rf.EndAddress, f.sizeOfImage)
	} else if ud := rf.UnwindData &^ unwindinfo.RUNTIME_FUNCTION_INDIRECT; uint64(ud)+unwindinfo.HeaderSize > uint64(f.sizeOfImage) {
		w.add(WarnOutsideImage, i, "entry %d (%#x-%#x) has unwind data at %#x outside the image (SizeOfImage %#x)", i, rf.BeginAddress, rf.EndAddress, ud, f.sizeOfImage)
	}
	if c.started && rf.BeginAddress < c.prev.BeginAddress && !c.unsorted {
		c.unsorted = true
		w.add(WarnUnsorted, i, "function table is not sorted: entry %d begins at %#x, before entry %d at %#x", i, rf.BeginAddress, c.prevIdx, c.prev.BeginAddress)
	}
	c.prev, c.prevIdx, c.started = rf, i, true
}

// buildIndex builds the sorted lookup index and resolves indirect entries.
func (f *File) buildIndex() {
	keys := make([]keyed, 0, len(f.funcs))
	for i, rf := range f.funcs {
		if rf.EndAddress > rf.BeginAddress {
			keys = append(keys, keyed{rf, i})
		}
	}
	sortKeys(keys)
	idx := index{begins: make([]uint32, 0, len(keys)), keys: make([]unwindinfo.RuntimeFunction, 0, len(keys))}
	var targets []unwindinfo.RuntimeFunction // allocated at the first indirect entry
	for k, e := range keys {
		var p *keyed
		if k > 0 {
			p = &keys[k-1]
		}
		target, overlap, ok := f.checkKey(&f.warnings, p, e)
		idx.overlap = idx.overlap || overlap
		if !ok {
			continue // never matches
		}
		if e.rf.Indirect() && targets == nil {
			targets = slices.Clone(idx.keys)
		}
		idx.begins = append(idx.begins, e.rf.BeginAddress)
		idx.keys = append(idx.keys, e.rf)
		if targets != nil {
			targets = append(targets, target)
		}
	}
	idx.targets = idx.keys
	if targets != nil {
		idx.targets = targets
	}
	f.idx = idx
}

// sortKeys sorts keys by BeginAddress, keeping the file order of entries
// that begin at the same address.
func sortKeys(keys []keyed) {
	slices.SortStableFunc(keys, func(a, b keyed) int {
		switch {
		case a.rf.BeginAddress < b.rf.BeginAddress:
			return -1
		case a.rf.BeginAddress > b.rf.BeginAddress:
			return 1
		}
		return 0
	})
}

// checkKey checks e, an entry with a nonempty range that comes after p
// (nil for the first) in address order, and returns what a lookup in e
// finds: e itself, or the entry it points to when it is indirect. overlap
// reports that e begins before p ends; ok is false for an indirect entry
// that cannot be resolved, which never matches.
func (f *File) checkKey(w *warnList, p *keyed, e keyed) (target unwindinfo.RuntimeFunction, overlap, ok bool) {
	if p != nil && e.rf.BeginAddress < p.rf.EndAddress {
		overlap = true
		w.add(WarnOverlap, e.i, "entry %d (%#x-%#x) overlaps entry %d (%#x-%#x)",
			e.i, e.rf.BeginAddress, e.rf.EndAddress, p.i, p.rf.BeginAddress, p.rf.EndAddress)
	}
	if !e.rf.Indirect() {
		return e.rf, overlap, true
	}
	t, err := f.Resolve(e.rf)
	if err != nil {
		w.add(WarnIndirect, e.i, "entry %d (%#x-%#x) is indirect and cannot be resolved: %v", e.i, e.rf.BeginAddress, e.rf.EndAddress, err)
		return e.rf, overlap, false
	}
	return t, overlap, true
}

// Resolve follows an indirect entry (RUNTIME_FUNCTION_INDIRECT set in
// UnwindData) to the RUNTIME_FUNCTION it points to, as Wine's
// RtlLookupFunctionEntry does, at most unwindinfo.ChainLimit times. An
// entry that is not indirect is returned as is.
func (f *File) Resolve(rf unwindinfo.RuntimeFunction) (unwindinfo.RuntimeFunction, error) {
	orig := rf
	for i := 0; rf.Indirect(); i++ {
		if i >= unwindinfo.ChainLimit {
			return orig, fmt.Errorf("resolve indirect entry %#x-%#x: more than %d indirections: %w",
				orig.BeginAddress, orig.EndAddress, unwindinfo.ChainLimit, unwindinfo.ErrChainTooDeep)
		}
		var b [unwindinfo.RuntimeFunctionSize]byte
		at := rf.UnwindData &^ unwindinfo.RUNTIME_FUNCTION_INDIRECT
		if _, err := f.ReadRVA(b[:], at); err != nil {
			return orig, fmt.Errorf("resolve indirect entry %#x-%#x: read entry at rva %#x: %w", orig.BeginAddress, orig.EndAddress, at, err)
		}
		rf, _ = unwindinfo.DecodeRuntimeFunction(b[:])
	}
	return rf, nil
}

// LookupFunctionEntry returns the entry whose [BeginAddress, EndAddress)
// contains rva, with indirect entries resolved, as RtlLookupFunctionEntry
// does for an image. It is a binary search that does not allocate. ok is
// false when no entry contains rva. Where entries overlap, the one with
// the greatest BeginAddress <= rva that contains rva is found.
func (f *File) LookupFunctionEntry(rva uint32) (fn unwindinfo.RuntimeFunction, ok bool) {
	f.table()
	b := f.idx.begins
	lo, hi := 0, len(b)
	for lo < hi { // find the first entry with BeginAddress > rva
		m := int(uint(lo+hi) >> 1)
		if b[m] <= rva {
			lo = m + 1
		} else {
			hi = m
		}
	}
	for i := lo - 1; i >= 0; i-- {
		if rva < f.idx.keys[i].EndAddress {
			return f.idx.targets[i], true
		}
		if !f.idx.overlap {
			break // entries below end before this one begins
		}
	}
	return unwindinfo.RuntimeFunction{}, false
}

// UnwindInfo reads and decodes the UNWIND_INFO of rf (resolving rf first
// if it is indirect). It reads up to unwindinfo.MaxSize bytes, fewer where
// the image ends. On a decoding error it returns what decoded with the
// error.
func (f *File) UnwindInfo(rf unwindinfo.RuntimeFunction) (*unwindinfo.Info, error) {
	rf, err := f.Resolve(rf)
	if err != nil {
		return nil, err
	}
	buf := f.unwindBuf()
	defer f.unwindBufs.Put(buf)
	n, rerr := f.ReadRVA(buf[:], rf.UnwindData)
	info, err := unwindinfo.Decode(buf[:n]) // the Info shares no memory with buf
	if err != nil {
		if n == 0 && rerr != nil {
			return nil, fmt.Errorf("read unwind info at rva %#x: %w", rf.UnwindData, rerr)
		}
		if errors.Is(err, unwindinfo.ErrTruncated) && rerr != nil {
			return info, fmt.Errorf("read unwind info at rva %#x: %w (the image ends after %d bytes: %w)", rf.UnwindData, err, n, rerr)
		}
		return info, fmt.Errorf("read unwind info at rva %#x: %w", rf.UnwindData, err)
	}
	return info, nil
}

// unwindBuf returns a buffer for one UNWIND_INFO, to be put back in
// f.unwindBufs after use. A buffer on the stack would not stay there: the
// image is read through an interface. Describing every entry of a large
// table allocated two a time, most of what it allocated.
func (f *File) unwindBuf() *[unwindinfo.MaxSize]byte {
	if b, ok := f.unwindBufs.Get().(*[unwindinfo.MaxSize]byte); ok {
		return b
	}
	return new([unwindinfo.MaxSize]byte)
}

// Chain returns the chain of entries whose unwind codes apply to rf: rf
// itself (resolved if indirect), then the parent named by each chained
// UNWIND_INFO (UNW_FLAG_CHAININFO), ending with the primary entry. It
// follows at most unwindinfo.ChainLimit links; a longer chain, or one that
// comes back to an entry already in it, yields an error wrapping
// unwindinfo.ErrChainTooDeep. On any error the chain found so far is
// returned with it.
func (f *File) Chain(rf unwindinfo.RuntimeFunction) ([]unwindinfo.RuntimeFunction, error) {
	rf, err := f.Resolve(rf)
	if err != nil {
		return nil, err
	}
	chain := []unwindinfo.RuntimeFunction{rf}
	buf := f.unwindBuf()
	defer f.unwindBufs.Put(buf)
	for cur := rf; ; {
		n, rerr := f.ReadRVA(buf[:], cur.UnwindData)
		v, err := unwindinfo.NewView(buf[:n])
		if err != nil {
			if rerr != nil && n < unwindinfo.HeaderSize {
				err = rerr
			}
			return chain, fmt.Errorf("unwind chain of %#x-%#x: read unwind info at rva %#x: %w", rf.BeginAddress, rf.EndAddress, cur.UnwindData, err)
		}
		parent, ok := v.Chained()
		if !ok {
			return chain, nil
		}
		if slices.Contains(chain, parent) {
			return chain, fmt.Errorf("unwind chain of %#x-%#x: entry %#x-%#x unwind %#x comes back: %w",
				rf.BeginAddress, rf.EndAddress, parent.BeginAddress, parent.EndAddress, parent.UnwindData, unwindinfo.ErrChainTooDeep)
		}
		if len(chain) > unwindinfo.ChainLimit {
			return chain, fmt.Errorf("unwind chain of %#x-%#x: more than %d links: %w",
				rf.BeginAddress, rf.EndAddress, unwindinfo.ChainLimit, unwindinfo.ErrChainTooDeep)
		}
		chain = append(chain, parent)
		cur = parent
	}
}

// ImageMemory serves the bytes of an image as mapped at a chosen base,
// [base, base+SizeOfImage). It implements [Memory] (and so unwind.Memory).
// Make one with [File.Memory].
type ImageMemory struct {
	f    *File
	base uint64
}

var _ Memory = ImageMemory{}

// Memory returns the image as mapped at base.
func (f *File) Memory(base uint64) ImageMemory { return ImageMemory{f: f, base: base} }

// Base returns the address at which m maps RVA 0.
func (m ImageMemory) Base() uint64 { return m.base }

// ReadMemory reads len(p) bytes at addr into p. Bytes outside
// [base, base+SizeOfImage), or in no section or the headers, are not
// mapped: the read stops there and returns the count so far with an
// *[UnmappedError] holding the first unmapped address.
func (m ImageMemory) ReadMemory(p []byte, addr uint64) (int, error) {
	if addr < m.base || addr-m.base >= uint64(m.f.sizeOfImage) {
		return 0, &UnmappedError{Addr: addr}
	}
	n, err := m.f.ReadRVA(p, uint32(addr-m.base))
	if ue, ok := err.(*UnmappedError); ok {
		err = &UnmappedError{Addr: m.base + ue.Addr}
	}
	return n, err
}

// Describe returns rf with everything known about its unwind information,
// ready for the text and JSON renderers of package unwindinfo: the decoded
// UNWIND_INFO, the chain of parents (each decoded, linked through
// Function.Chained), or the target of an indirect entry. Failures are
// recorded in the Err fields of the result, never returned: an entry
// whose chain loops or is longer than unwindinfo.ChainLimit carries an
// error wrapping unwindinfo.ErrChainTooDeep. An all-zero entry gets no
// unwind information and no error.
func (f *File) Describe(rf unwindinfo.RuntimeFunction) *unwindinfo.Function {
	fn := &unwindinfo.Function{Entry: rf}
	if rf == (unwindinfo.RuntimeFunction{}) {
		return fn
	}
	if rf.Indirect() {
		target, err := f.Resolve(rf)
		if err != nil {
			fn.Err = err
			return fn
		}
		fn.Indirect = f.Describe(target)
		return fn
	}
	chain, cerr := f.Chain(rf)
	failed := false
	prev := fn
	for i, e := range chain {
		node := fn
		if i > 0 {
			node = &unwindinfo.Function{Entry: e}
			prev.Chained = node
		}
		node.Info, node.Err = f.UnwindInfo(e)
		failed = failed || node.Err != nil
		prev = node
	}
	if cerr != nil && !failed {
		fn.Err = cerr
	}
	return fn
}
