package pesym

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/fntable/fntable/internal/binread"
	"github.com/fntable/fntable/symfile"
)

// PE constants used here ("PE Format").
const (
	IMAGE_FILE_MACHINE_I386  = 0x14c
	IMAGE_FILE_MACHINE_AMD64 = 0x8664

	IMAGE_NT_OPTIONAL_HDR32_MAGIC = 0x10b // PE32
	IMAGE_NT_OPTIONAL_HDR64_MAGIC = 0x20b // PE32+

	IMAGE_DIRECTORY_ENTRY_EXPORT    = 0
	IMAGE_DIRECTORY_ENTRY_EXCEPTION = 3
	IMAGE_DIRECTORY_ENTRY_DEBUG     = 6

	IMAGE_DEBUG_TYPE_CODEVIEW = 2

	IMAGE_SCN_CNT_CODE               = 0x00000020
	IMAGE_SCN_CNT_INITIALIZED_DATA   = 0x00000040
	IMAGE_SCN_CNT_UNINITIALIZED_DATA = 0x00000080
	IMAGE_SCN_MEM_EXECUTE            = 0x20000000
)

// Limits on what input may ask for.
const (
	// maxHeaderOffset bounds e_lfanew (real images have it below 0x400).
	maxHeaderOffset = 1 << 24
	// maxSectionName bounds a long section name read from the string table.
	maxSectionName = 256
	// maxDirs is the number of data directories the spec defines.
	maxDirs = 16
	// chunk is how much a table read asks for at a time, so that a count
	// from the input allocates no more than the file holds plus one chunk.
	chunk = 1 << 20
	// maxZeroFill bounds the zeros a read of a directory may get from the
	// part of a section beyond its file data, so that what a read
	// allocates is backed by the file.
	maxZeroFill = 64 << 10
)

// These are the errors returned by this package. A malformed image yields
// a *FormatError wrapping ErrMalformed; input that is not a PE image yields
// an error wrapping symfile.ErrUnrecognized.
var (
	// ErrMalformed matches every error about malformed image data.
	ErrMalformed = errors.New("malformed pe image")
	// ErrTruncated: the data ends before a structure it describes.
	ErrTruncated = errors.New("truncated")
)

// FormatError describes malformed image data: what was wrong, where, and
// the offending value. It wraps ErrMalformed and the sentinel in Err.
type FormatError struct {
	Off int64  // file offset of the problem, or -1 when it has none
	Msg string // what was being read or which rule failed
	Val any    // the offending value, or nil
	Err error  // a specific cause such as ErrTruncated, or nil
}

func (e *FormatError) Error() string {
	s := "malformed pe image: " + e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	if e.Val != nil {
		s += fmt.Sprintf(" '%#x'", e.Val)
	}
	if e.Off >= 0 {
		s += fmt.Sprintf(" (at offset %#x)", e.Off)
	}
	return s
}

// Unwrap returns ErrMalformed and the specific cause.
func (e *FormatError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrMalformed}
	}
	return []error{ErrMalformed, e.Err}
}

// dataDir is an IMAGE_DATA_DIRECTORY.
type dataDir struct {
	RVA, Size uint32
}

// section is an IMAGE_SECTION_HEADER, with its long name resolved.
type section struct {
	name    string
	va      uint32 // VirtualAddress
	vsize   uint32 // VirtualSize, or SizeOfRawData when that is 0
	rawOff  uint32 // PointerToRawData
	rawSize uint32 // SizeOfRawData (0 when PointerToRawData is 0)
	chars   uint32 // Characteristics
}

func (s *section) code() bool {
	return s.chars&(IMAGE_SCN_CNT_CODE|IMAGE_SCN_MEM_EXECUTE) != 0
}

func (s *section) data() bool {
	return s.chars&(IMAGE_SCN_CNT_INITIALIZED_DATA|IMAGE_SCN_CNT_UNINITIALIZED_DATA) != 0
}

// contains reports whether [rva, rva+n) lies in the section's virtual span.
func (s *section) contains(rva uint32, n uint64) bool {
	return rva >= s.va && uint64(rva-s.va)+n <= uint64(s.vsize)
}

// image is a PE image's headers and its data by RVA.
type image struct {
	r io.ReaderAt

	machine         uint16
	timeDateStamp   uint32
	symPtr, nsyms   uint32 // COFF symbol table
	characteristics uint16
	pe32plus        bool
	imageBase       uint64
	sizeOfImage     uint32
	sizeOfHeaders   uint32
	dirs            [maxDirs]dataDir
	sections        []section
}

// readAt reads len(p) bytes at off, or fails with a *FormatError.
func readAt(r io.ReaderAt, p []byte, off int64, what string) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF || err == io.ErrUnexpectedEOF {
		err = ErrTruncated
	}
	return &FormatError{Off: off + int64(max(n, 0)), Msg: what, Err: err}
}

// readChunked reads n bytes at off in chunks, so that an n from the input
// allocates at most what the file holds plus one chunk. On a short read
// it returns what it read with the error.
func readChunked(r io.ReaderAt, off int64, n uint64, what string) ([]byte, error) {
	var buf []byte
	for done := uint64(0); done < n; {
		k := min(n-done, chunk)
		buf = append(buf, make([]byte, k)...)
		got, err := r.ReadAt(buf[done:done+k], off+int64(done))
		if uint64(got) < k {
			if err == nil || err == io.EOF {
				err = ErrTruncated
			}
			return buf[:done+uint64(max(got, 0))], &FormatError{Off: off + int64(done) + int64(max(got, 0)), Msg: what, Err: err}
		}
		done += k
	}
	return buf, nil
}

// parseHeaders reads the MS-DOS, COFF and optional headers and the section
// table.
func parseHeaders(r io.ReaderAt) (*image, error) {
	img := &image{r: r}
	var dos [64]byte
	if n, _ := r.ReadAt(dos[:], 0); n < 2 || dos[0] != 'M' || dos[1] != 'Z' {
		if n >= 20 && isCOFFObject(dos[:n]) {
			return nil, fmt.Errorf("read pe headers: %w: COFF object file for machine %#x, not an image",
				symfile.ErrUnrecognized, binary.LittleEndian.Uint16(dos[:]))
		}
		return nil, fmt.Errorf("read pe headers: %w: no MZ signature", symfile.ErrUnrecognized)
	} else if n < len(dos) {
		return nil, fmt.Errorf("read pe headers: %w: MS-DOS header truncated", symfile.ErrUnrecognized)
	}
	lfanew := binary.LittleEndian.Uint32(dos[0x3c:])
	if lfanew > maxHeaderOffset {
		return nil, &FormatError{Off: 0x3c, Msg: "pe header offset (e_lfanew) too large", Val: lfanew}
	}
	var nt [24]byte
	if n, _ := r.ReadAt(nt[:], int64(lfanew)); n < len(nt) || string(nt[:4]) != "PE\x00\x00" {
		return nil, fmt.Errorf("read pe headers: %w: no PE signature at %#x", symfile.ErrUnrecognized, lfanew)
	}
	fh := binread.New("file header", nt[4:], int64(lfanew)+4)
	img.machine = fh.U16()
	nsec := fh.U16()
	img.timeDateStamp = fh.U32()
	img.symPtr = fh.U32()
	img.nsyms = fh.U32()
	optSize := fh.U16()
	img.characteristics = fh.U16()

	optOff := int64(lfanew) + 24
	if optSize < 2 {
		return nil, &FormatError{Off: int64(lfanew) + 20, Msg: "optional header size", Val: optSize}
	}
	opt := make([]byte, optSize)
	if err := readAt(r, opt, optOff, "read optional header"); err != nil {
		return nil, err
	}
	or := binread.New("optional header", opt, optOff)
	var dirOff int // offset of the data directories in opt
	switch magic := or.U16(); magic {
	case IMAGE_NT_OPTIONAL_HDR64_MAGIC:
		img.pe32plus = true
		or.Skip(24 - 2)
		img.imageBase = or.U64()
		dirOff = 112
	case IMAGE_NT_OPTIONAL_HDR32_MAGIC:
		or.Skip(28 - 2)
		img.imageBase = uint64(or.U32())
		dirOff = 96
	default:
		return nil, &FormatError{Off: optOff, Msg: "optional header magic", Val: magic}
	}
	or.Skip(56 - or.Off())
	img.sizeOfImage = or.U32()
	img.sizeOfHeaders = or.U32()
	or.Skip(dirOff - 4 - or.Off())
	ndirs := or.U32()
	if err := or.Err(); err != nil {
		return nil, &FormatError{Off: optOff, Msg: "optional header too small", Val: optSize, Err: ErrTruncated}
	}
	if img.sizeOfImage == 0 {
		return nil, &FormatError{Off: optOff + 56, Msg: "SizeOfImage is zero"}
	}
	for i := range min(int(ndirs), maxDirs, (len(opt)-dirOff)/8) {
		img.dirs[i] = dataDir{RVA: or.U32(), Size: or.U32()}
	}

	st := make([]byte, 40*int(nsec))
	if err := readAt(r, st, optOff+int64(optSize), "read section table"); err != nil {
		return nil, err
	}
	sr := binread.New("section table", st, optOff+int64(optSize))
	for range int(nsec) {
		var sec section
		sec.name = cstring(sr.Bytes(8))
		sec.vsize = sr.U32()
		sec.va = sr.U32()
		sec.rawSize = sr.U32()
		sec.rawOff = sr.U32()
		sr.Skip(12) // relocations, line numbers and their counts
		sec.chars = sr.U32()
		if sec.vsize == 0 {
			sec.vsize = sec.rawSize // as the loader does
		}
		if sec.rawOff == 0 {
			sec.rawSize = 0 // uninitialized data
		}
		// Clamp to the image: nothing is mapped beyond SizeOfImage.
		if sec.va >= img.sizeOfImage {
			sec.vsize = 0
		} else {
			sec.vsize = uint32(min(uint64(sec.vsize), uint64(img.sizeOfImage-sec.va)))
		}
		if len(sec.name) > 1 && sec.name[0] == '/' {
			sec.name = img.longName(sec.name)
		}
		img.sections = append(img.sections, sec)
	}
	return img, nil
}

// isCOFFObject reports whether b starts with a plausible COFF file header
// of an object file: a known machine and no optional header.
func isCOFFObject(b []byte) bool {
	switch binary.LittleEndian.Uint16(b) {
	case IMAGE_FILE_MACHINE_AMD64, IMAGE_FILE_MACHINE_I386, 0xaa64 /* arm64 */, 0x1c4 /* armnt */ :
		return binary.LittleEndian.Uint16(b[16:]) == 0
	}
	return false
}

// longName resolves a "/n" section name: n is a decimal offset into the
// COFF string table. A name that does not resolve is kept as it is.
func (img *image) longName(name string) string {
	off, err := strconv.ParseUint(name[1:], 10, 32)
	if err != nil || img.symPtr == 0 {
		return name
	}
	at := int64(img.symPtr) + 18*int64(img.nsyms) + int64(off)
	var b [maxSectionName]byte
	n, _ := img.r.ReadAt(b[:], at)
	if n <= 0 {
		return name
	}
	return cstring(b[:n])
}

// cstring returns b up to its first NUL.
func cstring(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// sectionOf returns the section whose virtual span holds [rva, rva+n).
func (img *image) sectionOf(rva uint32, n uint64) *section {
	for i := range img.sections {
		if s := &img.sections[i]; s.contains(rva, n) {
			return s
		}
	}
	return nil
}

// readRVA reads n bytes of the mapped image at rva: [rva, rva+n) must lie
// within SizeOfImage and within the headers or one section; the part of
// a section beyond its raw data reads as zeros. n is bounded by the
// section, so the allocation is bounded by the image's size.
func (img *image) readRVA(rva uint32, n uint32, what string) ([]byte, error) {
	if uint64(rva)+uint64(n) > uint64(img.sizeOfImage) {
		return nil, &FormatError{Off: -1, Msg: fmt.Sprintf("%s at rva %#x size %#x: beyond SizeOfImage %#x", what, rva, n, img.sizeOfImage)}
	}
	if s := img.sectionOf(rva, uint64(n)); s != nil {
		off := rva - s.va
		var buf []byte
		if off < s.rawSize {
			k := min(n, s.rawSize-off)
			var err error
			buf, err = readChunked(img.r, int64(s.rawOff)+int64(off), uint64(k), fmt.Sprintf("%s at rva %#x", what, rva))
			if err != nil {
				return nil, err
			}
		}
		// The rest reads as zeros, as the loader maps it; no real
		// directory lies much beyond its section's file data.
		if zeros := n - uint32(len(buf)); zeros > maxZeroFill {
			return nil, &FormatError{Off: -1, Msg: fmt.Sprintf("%s at rva %#x size %#x: %#x bytes beyond the section's file data", what, rva, n, zeros)}
		}
		return append(buf, make([]byte, n-uint32(len(buf)))...), nil
	}
	if uint64(rva)+uint64(n) <= uint64(img.sizeOfHeaders) {
		return readChunked(img.r, int64(rva), uint64(n), fmt.Sprintf("%s at rva %#x", what, rva))
	}
	return nil, &FormatError{Off: -1, Msg: fmt.Sprintf("%s at rva %#x size %#x: not within one section", what, rva, n)}
}

// debugDirectoryEntrySize is sizeof(IMAGE_DEBUG_DIRECTORY).
const debugDirectoryEntrySize = 28

// maxDebugEntries bounds the debug directory entries examined.
const maxDebugEntries = 64

// maxCodeView bounds the size of a CodeView record read (the PDB path is
// at most a few hundred bytes).
const maxCodeView = 4096

// codeView reads the first RSDS record of the debug directory. It returns
// nil and no error when the image has none. Older NB10 records (PDB 2.0)
// carry no GUID and are not reported.
func (img *image) codeView() (*symfile.CodeView, error) {
	d := img.dirs[IMAGE_DIRECTORY_ENTRY_DEBUG]
	if d.Size == 0 || d.RVA == 0 {
		return nil, nil
	}
	count := min(d.Size/debugDirectoryEntrySize, maxDebugEntries)
	dir, err := img.readRVA(d.RVA, count*debugDirectoryEntrySize, "read debug directory")
	if err != nil {
		return nil, err
	}
	for i := range count {
		e := binread.New("debug directory", dir[i*debugDirectoryEntrySize:(i+1)*debugDirectoryEntrySize], 0)
		e.Skip(12)
		typ := e.U32()
		size := e.U32()
		addr := e.U32()
		ptr := e.U32()
		if typ != IMAGE_DEBUG_TYPE_CODEVIEW || size < 24 {
			continue
		}
		size = min(size, maxCodeView)
		var rec []byte
		// The file offset is what dbghelp and llvm-readobj read; the RVA
		// is the fallback for images whose raw pointer is missing.
		if ptr != 0 {
			rec = make([]byte, size)
			if err := readAt(img.r, rec, int64(ptr), fmt.Sprintf("read codeview record %d", i)); err != nil {
				return nil, err
			}
		} else if addr != 0 {
			if rec, err = img.readRVA(addr, size, fmt.Sprintf("read codeview record %d", i)); err != nil {
				return nil, err
			}
		} else {
			continue
		}
		cr := binread.New("codeview record", rec, int64(ptr))
		if string(cr.Bytes(4)) != "RSDS" {
			continue
		}
		cv := &symfile.CodeView{}
		copy(cv.GUID[:], cr.Bytes(16))
		cv.Age = cr.U32()
		cv.Path = cstring(cr.Bytes(cr.Len()))
		if cr.Err() != nil {
			continue // size >= 24 above: not reached
		}
		return cv, nil
	}
	return nil, nil
}

// hasDWARFLines reports whether the image has a DWARF line table section.
func (img *image) hasDWARFLines() bool {
	for _, s := range img.sections {
		if s.name == ".debug_line" || s.name == ".zdebug_line" {
			return true
		}
	}
	return false
}

// hasExports reports whether the export directory lists any function.
func (img *image) hasExports() bool {
	d := img.dirs[IMAGE_DIRECTORY_ENTRY_EXPORT]
	if d.Size == 0 || d.RVA == 0 {
		return false
	}
	b, err := img.readRVA(d.RVA, exportDirSize, "read export directory")
	if err != nil {
		return false
	}
	return binary.LittleEndian.Uint32(b[20:]) > 0 // NumberOfFunctions
}

// ident returns the image's identity.
func (img *image) ident() (symfile.Ident, error) {
	id := symfile.Ident{
		Format:        "pe",
		LinkBase:      img.imageBase,
		ImageSize:     uint64(img.sizeOfImage),
		TimeDateStamp: img.timeDateStamp,
		SizeOfImage:   img.sizeOfImage,
		HasSymbols:    (img.symPtr != 0 && img.nsyms != 0) || img.hasExports(),
		HasDebugInfo:  img.hasDWARFLines(),
	}
	cv, err := img.codeView()
	id.PDB = cv
	return id, err
}

// Identify reads only the headers (and the long section names they point
// to in the COFF string table), the debug directory and the export
// directory's header of the image in r and returns its identity. It is
// the cheap way to find a module's PDB or symbol-server key. Input that is
// not a PE image gives an error wrapping symfile.ErrUnrecognized.
func Identify(r io.ReaderAt) (symfile.Ident, error) {
	img, err := parseHeaders(r)
	if err != nil {
		return symfile.Ident{}, err
	}
	return img.ident()
}

// sectionData returns the file data of the named section, up to its
// VirtualSize (SizeOfRawData is padded to the file alignment), or nil
// when the image has no such section.
func (img *image) sectionData(name string) ([]byte, error) {
	for i := range img.sections {
		s := &img.sections[i]
		if s.name != name {
			continue
		}
		n := min(s.vsize, s.rawSize)
		if n > maxDWARFSection {
			return nil, &FormatError{Off: int64(s.rawOff), Msg: fmt.Sprintf("section %s too large", name), Val: n}
		}
		return readChunked(img.r, int64(s.rawOff), uint64(n), "read section "+name)
	}
	return nil, nil
}
