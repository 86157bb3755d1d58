package cfi

import (
	"bytes"
	"cmp"
	"compress/zlib"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/fntable/fntable/internal/filemap"
	"github.com/fntable/fntable/memory"
	"github.com/fntable/fntable/symfile/debugfile"
	"github.com/fntable/fntable/unwind"
)

// File is the call-frame information of one ELF object: an executable, a
// shared library or a vDSO image, with the .debug_frame of its separate
// debug file when one was added.
//
// A File reads the section headers when it is made, the sections the
// first time an address is looked up, and each CIE and FDE only when a
// lookup needs it; what it parsed it keeps. It is safe for concurrent use,
// except that Close must not run concurrently with other methods.
type File struct {
	elf    *elf.File
	closer io.Closer
	file   *os.File       // the file elf reads, when it is one: sections are mapped from it
	maps   filemap.Ranges // the sections mapped (see guard)

	buildID      []byte
	debugLink    string
	debugLinkCRC uint32

	linkBase uint64 // link-time address of file offset 0, from the first PT_LOAD
	hasLoad  bool   // the file has a PT_LOAD segment

	loadOnce sync.Once
	loadErr  error
	eh       *section  // .eh_frame, or nil
	hdr      *hdrTable // the .eh_frame_hdr search table, or nil

	rows rowMemo // the rows of the pcs Step unwound

	mu     sync.Mutex
	debug  []*section // .debug_frame sections: the file's own, then added ones
	closed bool

	memoMu sync.Mutex
	memo   map[any]any // see Memo
}

// ErrUnsupported is returned for an ELF file that is not x86-64 (64-bit,
// little-endian, EM_X86_64).
var ErrUnsupported = errors.New("unsupported ELF object: not x86-64")

// Open opens the named ELF file. Close closes it.
func Open(name string) (*File, error) {
	fh, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	f, err := NewFile(fh)
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("cfi: open %s: %w", name, err)
	}
	f.closer = fh
	return f, nil
}

// NewFile reads the ELF headers of r. The File reads r again when
// addresses are looked up, until Close; r must stay readable until then.
func NewFile(r io.ReaderAt) (*File, error) {
	ef, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("cfi: read ELF headers: %w", err)
	}
	if ef.Class != elf.ELFCLASS64 || ef.Data != elf.ELFDATA2LSB || ef.Machine != elf.EM_X86_64 {
		return nil, fmt.Errorf("cfi: %v %v %v: %w", ef.Class, ef.Data, ef.Machine, ErrUnsupported)
	}
	f := &File{elf: ef}
	f.file, _ = r.(*os.File)
	f.buildID = debugfile.BuildID(ef)
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD {
			f.linkBase, f.hasLoad = p.Vaddr-p.Off, true
			break
		}
	}
	if s := ef.Section(".gnu_debuglink"); s != nil && s.Type != elf.SHT_NOBITS && s.Size < 4096 {
		if b, err := s.Data(); err == nil {
			if i := bytes.IndexByte(b, 0); i > 0 {
				crcOff := (i + 4) &^ 3
				if crcOff+4 <= len(b) {
					f.debugLink = string(b[:i])
					f.debugLinkCRC = binary.LittleEndian.Uint32(b[crcOff:])
				}
			}
		}
	}
	return f, nil
}

// NewFileFromMemory reads an ELF image that lies complete in mem at base,
// file offsets equal to offsets from base, such as the vDSO. It copies
// the sections it needs before it returns and does not keep mem.
func NewFileFromMemory(mem unwind.Memory, base uint64) (*File, error) {
	f, err := NewFile(memory.ReaderAt(mem, base, MaxSectionSize))
	if err != nil {
		return nil, err
	}
	if err := f.load(); err != nil {
		return nil, err
	}
	f.elf = nil
	return f, nil
}

// Close closes the file Open opened; for a File from NewFile it does
// nothing.
func (f *File) Close() error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	if f.closer != nil {
		return f.closer.Close()
	}
	return nil
}

// Memo returns the value compute returned for key the first time Memo
// was called with key on f, calling compute now if this is that time. It
// keeps what a caller derives from the same file (Go's pclntab, say) for
// as long as the File is kept, so that a [Cache] saves that work along
// with the CFI. Calls with one key are serialized; compute must not call
// Memo on f. Use an unexported type of the calling package as the key.
func (f *File) Memo(key any, compute func() any) any {
	f.memoMu.Lock()
	defer f.memoMu.Unlock()
	if v, ok := f.memo[key]; ok {
		return v
	}
	v := compute()
	if f.memo == nil {
		f.memo = map[any]any{}
	}
	f.memo[key] = v
	return v
}

// LoadBias returns what to add to the file's link-time addresses to get
// run-time ones (the bias to pass to [File.Step]) when the file's offset
// 0 is mapped at base, as /proc/PID/maps shows it (the start of the
// file's first mapping minus its offset). ok is false for a file without
// a loadable segment.
func (f *File) LoadBias(base uint64) (bias uint64, ok bool) {
	return base - f.linkBase, f.hasLoad
}

// BuildID returns the file's GNU build ID (the NT_GNU_BUILD_ID note), or
// nil.
func (f *File) BuildID() []byte { return f.buildID }

// HasSection reports whether the file has a section named name, from the
// section headers read when it was opened: a caller looking for one (a
// Go binary's .gopclntab) need not open and parse the file again.
func (f *File) HasSection(name string) bool { return f.elf != nil && f.elf.Section(name) != nil }

// DebugLink returns the file name and CRC-32 in the file's .gnu_debuglink
// section, or "" when it has none.
func (f *File) DebugLink() (name string, crc uint32) { return f.debugLink, f.debugLinkCRC }

// AddDebugFrame adds the .debug_frame (or compressed .zdebug_frame) of r,
// the separate debug file of f's image. It is used for addresses that
// .eh_frame has no FDE for. AddDebugFrame reads the section before it
// returns and does not keep r. A file without .debug_frame is not an
// error: nothing is added.
func (f *File) AddDebugFrame(r io.ReaderAt) error {
	ef, err := elf.NewFile(r)
	if err != nil {
		return fmt.Errorf("cfi: read debug file: %w", err)
	}
	file, _ := r.(*os.File)
	s, err := f.debugFrameOf(file, ef)
	if err != nil || s == nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s.name = fmt.Sprintf(".debug_frame#%d", len(f.debug))
	f.debug = append(f.debug, s)
	return nil
}

// load reads the sections of f once.
func (f *File) load() error {
	f.loadOnce.Do(func() { f.loadErr = f.doLoad() })
	return f.loadErr
}

func (f *File) doLoad() error {
	ef := f.elf
	var b bases
	b.addrSize = 8
	if s := ef.Section(".got"); s != nil {
		b.data, b.hasData = s.Addr, true
	}
	if s := ef.Section(".text"); s != nil {
		b.text, b.hasText = s.Addr, true
	}
	if s := ef.Section(".eh_frame"); s != nil && s.Type != elf.SHT_NOBITS {
		data, unmap, err := readSection(f.file, s)
		if err != nil {
			return err
		}
		f.eh = &section{name: ".eh_frame", kind: ehFrame, data: data, addr: s.Addr, bases: b}
		keepMapping(f, f.eh, data, unmap, f.file, ".eh_frame")
	}
	if f.eh != nil {
		var data []byte
		var addr uint64
		var unmap func()
		if s := ef.Section(".eh_frame_hdr"); s != nil && s.Type != elf.SHT_NOBITS {
			d, u, err := readSection(f.file, s)
			if err != nil {
				return err
			}
			data, addr, unmap = d, s.Addr, u
		} else {
			for _, p := range ef.Progs {
				if p.Type == elf.PT_GNU_EH_FRAME && p.Filesz < MaxSectionSize {
					d, err := io.ReadAll(io.LimitReader(p.Open(), MaxSectionSize))
					if err != nil {
						return fmt.Errorf("cfi: read PT_GNU_EH_FRAME: %w", err)
					}
					data, addr = d, p.Vaddr
				}
			}
		}
		if data != nil {
			// A table that cannot be used is ignored: lookups fall back
			// to an index of .eh_frame.
			f.hdr, _ = parseHdr(data, addr, f.eh)
		}
		switch {
		case unmap == nil:
		case f.hdr != nil:
			keepMapping(f, f.hdr, data, unmap, f.file, ".eh_frame_hdr")
		default:
			unmap()
		}
	}
	s, err := f.debugFrameOf(f.file, ef)
	if err != nil {
		return err
	}
	if s != nil {
		f.mu.Lock()
		f.debug = slices.Insert(f.debug, 0, s)
		f.mu.Unlock()
	}
	return nil
}

// debugFrameOf returns the .debug_frame section of ef, or nil. file is
// the file ef reads, or nil (see readSection).
func (f *File) debugFrameOf(file *os.File, ef *elf.File) (*section, error) {
	if ef.Class != elf.ELFCLASS64 || ef.Data != elf.ELFDATA2LSB || ef.Machine != elf.EM_X86_64 {
		return nil, fmt.Errorf("cfi: %v %v %v: %w", ef.Class, ef.Data, ef.Machine, ErrUnsupported)
	}
	for _, name := range []string{".debug_frame", ".zdebug_frame"} {
		if s := ef.Section(name); s != nil && s.Type != elf.SHT_NOBITS {
			data, unmap, err := readSection(file, s)
			if err != nil {
				return nil, err
			}
			sec := &section{name: ".debug_frame", kind: debugFrame, data: data, bases: bases{addrSize: 8}}
			keepMapping(f, sec, data, unmap, file, s.Name)
			return sec, nil
		}
	}
	return nil, nil
}

// readSection reads s, decompressed, capped at MaxSectionSize. It reads
// in growing steps so that a size in a header does not decide the
// allocation.
//
// An uncompressed section of file (nil: none) is mapped instead, and
// unmap is not nil: a walk touches a few pages of a library's
// .eh_frame, and a mapped page of a file in the page cache costs less
// than a new page of memory to copy it into. The mapping must stay
// while anything may read the data: it is tied to the object that
// holds the data (see keepMapping), and what the package hands out of it
// (FDE.Instructions, Rule.Expr) is copied.
func readSection(file *os.File, s *elf.Section) (data []byte, unmap func(), err error) {
	if s.Flags&elf.SHF_COMPRESSED == 0 && s.Size > MaxSectionSize {
		return nil, nil, fmt.Errorf("cfi: section %s of %d bytes: %w", s.Name, s.Size, ErrLimit)
	}
	if data, unmap, err := filemap.Section(file, s); err == nil {
		return data, unmap, nil
	}
	// Otherwise read it, and fail as a read fails.
	data, err = readData(s)
	return data, nil, err
}

// keepMapping records data, the mapping of section name of file (unmap
// nil: read, not mapped), as f's, so that a fault in it is an error (see
// filemap.Ranges), and has it unmapped once owner, which holds it, is
// unreachable.
func keepMapping[T any](f *File, owner *T, data []byte, unmap func(), file *os.File, name string) {
	if unmap == nil {
		return
	}
	f.maps.Add(data, "cfi: "+file.Name()+" "+name)
	runtime.AddCleanup(owner, func(unmap func()) { unmap() }, unmap)
}

// readData reads s into memory: readSection without the mapping.
func readData(s *elf.Section) ([]byte, error) {
	var data []byte
	if s.Flags&elf.SHF_COMPRESSED == 0 {
		// One read of the known size: no buffer growing and copying.
		data = make([]byte, s.Size)
		if n, err := s.ReadAt(data, 0); n != len(data) {
			return nil, fmt.Errorf("cfi: read section %s: %w", s.Name, cmp.Or(err, io.ErrUnexpectedEOF))
		}
	} else {
		var err error
		if data, err = readCapped(s.Open(), s.Name); err != nil {
			return nil, err
		}
	}
	if strings.HasPrefix(s.Name, ".zdebug_") {
		// GNU's older compressed sections: "ZLIB", the size as a
		// big-endian uint64, then a zlib stream.
		if len(data) < 12 || string(data[:4]) != "ZLIB" {
			return nil, &FormatError{Msg: s.Name + ": no ZLIB header"}
		}
		zr, err := zlib.NewReader(bytes.NewReader(data[12:]))
		if err != nil {
			return nil, &FormatError{Msg: s.Name + ": " + err.Error()}
		}
		data, err = readCapped(zr, s.Name)
		if err != nil {
			return nil, err
		}
	}
	return data, nil
}

func readCapped(r io.Reader, name string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSectionSize+1))
	if err != nil {
		return nil, fmt.Errorf("cfi: read section %s: %w", name, err)
	}
	if len(data) > MaxSectionSize {
		return nil, fmt.Errorf("cfi: section %s over %d bytes: %w", name, MaxSectionSize, ErrLimit)
	}
	return data, nil
}

// hdrTable is the binary search table of .eh_frame_hdr. Reference: LSB
// Core, "Exception Frames", ".eh_frame_hdr".
type hdrTable struct {
	data    []byte
	addr    uint64 // link-time address of data[0]
	enc     uint8  // encoding of the table entries
	size    int    // size of one encoded value
	count   int    // entries
	tabOff  int    // offset of the table in data
	ehFrame *section
}

// parseHdr parses .eh_frame_hdr. A table that is absent or has a variable
// size encoding gives nil.
func parseHdr(data []byte, addr uint64, eh *section) (*hdrTable, error) {
	c := newCursor(".eh_frame_hdr", data, 0, len(data), addr)
	version := c.U8()
	ptrEnc, countEnc, tabEnc := c.U8(), c.U8(), c.U8()
	if c.Err() != nil {
		return nil, readerErr(&c.Reader)
	}
	if version != 1 {
		return nil, &FormatError{Msg: ".eh_frame_hdr: unsupported version", Val: version}
	}
	b := bases{data: addr, hasData: true, addrSize: 8}
	c.readEncoded(ptrEnc, &b) // .eh_frame's address: the section headers give it
	if countEnc == DW_EH_PE_omit || tabEnc == DW_EH_PE_omit {
		return nil, nil
	}
	n, _ := c.readEncoded(countEnc, &b)
	if c.Err() != nil {
		return nil, readerErr(&c.Reader)
	}
	size := encodedSize(tabEnc, 8)
	if size == 0 || tabEnc&DW_EH_PE_indirect != 0 || (tabEnc&0x70 != DW_EH_PE_datarel && tabEnc&0x70 != DW_EH_PE_absptr) {
		return nil, nil // variable-size or unusual entries: no binary search
	}
	if n > uint64(c.Len()/(2*size)) {
		return nil, &FormatError{Off: int64(c.pos()), Msg: ".eh_frame_hdr: table longer than the section", Val: n}
	}
	return &hdrTable{data: data, addr: addr, enc: tabEnc, size: size, count: int(n), tabOff: c.pos(), ehFrame: eh}, nil
}

// entry returns the initial location and FDE address of entry i.
func (h *hdrTable) entry(i int) (loc, fdeAddr uint64) {
	off := h.tabOff + 2*i*h.size
	if h.enc == DW_EH_PE_datarel|DW_EH_PE_sdata4 {
		// What GNU ld writes: decode it directly.
		e := h.data[off : off+8]
		return h.addr + uint64(int64(int32(binary.LittleEndian.Uint32(e)))),
			h.addr + uint64(int64(int32(binary.LittleEndian.Uint32(e[4:]))))
	}
	c := newCursor(".eh_frame_hdr", h.data, off, off+2*h.size, h.addr)
	b := bases{data: h.addr, hasData: true, addrSize: 8}
	loc, _ = c.readEncoded(h.enc, &b)
	fdeAddr, _ = c.readEncoded(h.enc, &b)
	return loc, fdeAddr
}

// lookup returns the .eh_frame offset of the FDE whose initial location
// is the greatest not above pc.
func (h *hdrTable) lookup(pc uint64) (int, bool) {
	i := sort.Search(h.count, func(i int) bool {
		loc, _ := h.entry(i)
		return loc > pc
	}) - 1
	if i < 0 {
		return 0, false
	}
	_, a := h.entry(i)
	off := a - h.ehFrame.addr
	if a < h.ehFrame.addr || off >= uint64(len(h.ehFrame.data)) {
		return 0, false
	}
	return int(off), true
}

// sections returns the sections to search, .eh_frame first.
func (f *File) sections() ([]*section, error) {
	if err := f.load(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, ErrClosed
	}
	var ss []*section
	if f.eh != nil {
		ss = append(ss, f.eh)
	}
	return append(ss, f.debug...), nil
}

// lookup finds the FDE covering the link-time address pc.
func (f *File) lookup(pc uint64) (*section, *fde, error) {
	if err := f.load(); err != nil {
		return nil, nil, err
	}
	if f.eh != nil && f.hdr != nil {
		// The common case, without allocating.
		if off, ok := f.hdr.lookup(pc); ok {
			f.eh.mu.Lock()
			fd, err := f.eh.fdeAt(off)
			f.eh.mu.Unlock()
			if err == nil && pc >= fd.begin && pc < fd.end {
				return f.eh, fd, nil
			}
		}
	}
	ss, err := f.sections()
	if err != nil {
		return nil, nil, err
	}
	var firstErr error
	for _, s := range ss {
		var fd *fde
		var err error
		if s == f.eh && f.hdr != nil {
			if off, ok := f.hdr.lookup(pc); ok {
				s.mu.Lock()
				fd, err = s.fdeAt(off)
				s.mu.Unlock()
			}
		} else {
			fd, err = s.search(pc)
		}
		if err != nil {
			firstErr = cmpOr(firstErr, err)
			continue
		}
		if fd != nil && pc >= fd.begin && pc < fd.end {
			return s, fd, nil
		}
	}
	return nil, nil, firstErr
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// search finds the FDE covering pc through the index of s, built on first
// use. Errors met while indexing are returned only when no FDE is found.
func (s *section) search(pc uint64) (*fde, error) {
	s.indexOnce.Do(s.buildIndex)
	i := sort.Search(len(s.index), func(i int) bool { return s.index[i].begin > pc }) - 1
	if i < 0 || pc >= s.index[i].end {
		return nil, s.indexErr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fdeAt(s.index[i].off)
}

func (s *section) buildIndex() {
	err := s.forEachFDE(func(fd *fde, err error) bool {
		if err != nil {
			s.indexErr = cmpOr(s.indexErr, err)
			return true
		}
		if fd.begin < fd.end {
			s.index = append(s.index, indexEntry{fd.begin, fd.end, fd.off})
		}
		return true
	})
	s.indexErr = cmpOr(s.indexErr, err)
	slices.SortStableFunc(s.index, func(a, b indexEntry) int {
		switch {
		case a.begin < b.begin:
			return -1
		case a.begin > b.begin:
			return 1
		}
		return 0
	})
}

// FDE describes a Frame Description Entry and its CIE.
type FDE struct {
	Section      string // ".eh_frame", or ".debug_frame" (".debug_frame#N" for the Nth added debug file)
	Off          int64  // offset of the FDE in its section
	CIEOff       int64  // offset of its CIE
	Begin, End   uint64 // the link-time addresses covered, [Begin, End)
	LSDA         uint64 // the language-specific data area (augmentation L), or 0
	Augmentation string // the CIE's augmentation string
	Signal       bool   // the CIE has augmentation S: a signal frame
	CodeAlign    uint64 // the CIE's code alignment factor
	DataAlign    int64  // the CIE's data alignment factor
	RAReg        int    // the CIE's return address register
	Instructions []byte // the FDE's CFA program (a copy)

	sec *section
	fde *fde
}

func (s *section) export(fd *fde) FDE {
	ci := fd.cie
	return FDE{Section: s.name, Off: int64(fd.off), CIEOff: int64(ci.off), Begin: fd.begin, End: fd.end,
		LSDA: fd.lsda, Augmentation: ci.aug, Signal: ci.signal, CodeAlign: ci.codeAlign, DataAlign: ci.dataAlign,
		RAReg: int(ci.raReg), Instructions: slices.Clone(fd.insns), sec: s, fde: fd}
}

// FDEs calls yield for every FDE of the file, those of .eh_frame first,
// then those of each .debug_frame, in section order. It stops at the
// first malformed entry and returns its error, having yielded the FDEs
// before it; when yield returns false it stops and returns [ErrStopped].
func (f *File) FDEs(yield func(FDE) bool) (err error) {
	if f.maps.Any() {
		defer f.maps.Catch(&err, f.maps.Guard())
	}
	ss, err := f.sections()
	if err != nil {
		return err
	}
	for _, s := range ss {
		var ferr error
		err := s.forEachFDE(func(fd *fde, err error) bool {
			if err != nil {
				ferr = err
				return false
			}
			return yield(s.export(fd))
		})
		if ferr != nil {
			return ferr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Lookup returns the FDE covering the link-time address pc; ok is false
// when there is none.
func (f *File) Lookup(pc uint64) (fde FDE, ok bool, err error) {
	if f.maps.Any() {
		defer f.maps.Catch(&err, f.maps.Guard())
	}
	s, fd, err := f.lookup(pc)
	if fd == nil {
		return FDE{}, false, err
	}
	return s.export(fd), true, nil
}

// Rows returns every row of the FDE that covers the link-time address pc,
// or nil when there is none.
func (f *File) Rows(pc uint64) (rows []Row, err error) {
	if f.maps.Any() {
		defer f.maps.Catch(&err, f.maps.Guard())
	}
	s, fd, err := f.lookup(pc)
	if fd == nil {
		return nil, err
	}
	return s.rows(fd)
}

// RowsOf returns every row of fde, which [File.FDEs] or [File.Lookup]
// returned: a row at each location change, as readelf prints them, and
// one for the state at the end. It returns the rows decoded before an
// error along with it.
func (f *File) RowsOf(fde FDE) (rows []Row, err error) {
	if fde.sec == nil || fde.fde == nil {
		return nil, errors.New("cfi: RowsOf: FDE not from this package")
	}
	if f.maps.Any() {
		defer f.maps.Catch(&err, f.maps.Guard())
	}
	return fde.sec.rows(fde.fde)
}
