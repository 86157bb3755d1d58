package minidump

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"unicode/utf16"

	"github.com/fntable/fntable/internal/binread"
	"github.com/fntable/fntable/internal/blockcache"
	"github.com/fntable/fntable/memory"
)

// MINIDUMP_SIGNATURE is the Signature of a MINIDUMP_HEADER: "MDMP" read as a
// little-endian uint32 (minidumpapiset.h).
const MINIDUMP_SIGNATURE = 0x504d444d

// MINIDUMP_VERSION is the low 16 bits of MINIDUMP_HEADER.Version; the high
// 16 bits are implementation-specific (minidumpapiset.h).
const MINIDUMP_VERSION = 42899

// Sizes of the fixed-size structures (minidumpapiset.h, #pragma pack(4)).
const (
	headerSize    = 32 // MINIDUMP_HEADER
	directorySize = 12 // MINIDUMP_DIRECTORY
)

// Limits on what input may ask for. Counts are also bounded by the size of
// the data that holds them, and sizes by the size of the file.
const (
	// MaxStreams caps NumberOfStreams. dbghelp and Breakpad write a few
	// dozen streams; a directory of 65536 entries (768 KiB) is already
	// absurd.
	MaxStreams = 1 << 16

	// MaxStringBytes caps the Length of a MINIDUMP_STRING: 32767 UTF-16
	// code units, the longest path Windows can name, plus the terminator.
	MaxStringBytes = 1 << 16

	// MaxRecordSize caps a CodeView or misc record and a thread context.
	// Real ones are a few hundred bytes (an x64 CONTEXT with an AVX-512
	// XSTATE tail is under 4 KiB).
	MaxRecordSize = 1 << 16

	// MaxMemoryRanges caps the ranges of a MemoryList plus a Memory64List
	// that [File.Memory] indexes. Full-memory dumps of large processes have
	// tens of thousands.
	MaxMemoryRanges = 1 << 22

	// readChunk is how much is read at a time when the size of the
	// underlying data is unknown, so that a huge size in a small file
	// fails before it allocates.
	readChunk = 1 << 20

	// Reads of at most smallRead bytes go through a cache of numBlocks
	// blocks of blockSize bytes: module names, CodeView records and
	// contexts lie close together, and one read serves many of them.
	smallRead = 4 << 10
	blockSize = 64 << 10
	numBlocks = 4
)

// These are the errors returned by this package. A malformed dump yields a
// *FormatError wrapping ErrMalformed and, where it applies, ErrTruncated.
// Data that is not a minidump at all yields an error wrapping
// ErrNotMinidump, so that callers trying several formats can move on. Reads
// of dump memory that is not there return an *UnmappedError, and reads
// that fail in the file a *memory.ReadError; both match ErrShortRead,
// which is memory.ErrShortRead.
var (
	// ErrMalformed matches every error about malformed dump data.
	ErrMalformed = errors.New("malformed minidump")
	// ErrNotMinidump: the data does not start with the MDMP signature.
	ErrNotMinidump = errors.New("not a minidump")
	// ErrTruncated: a structure or stream extends past the end of the
	// file or of the data that should hold it.
	ErrTruncated = errors.New("truncated")
	// ErrShortRead: fewer bytes of dump memory could be read than asked.
	// It is memory.ErrShortRead, the one value for every memory source.
	ErrShortRead = memory.ErrShortRead
)

// FormatError describes malformed dump data: what was wrong, where, and the
// offending value. It wraps ErrMalformed and the sentinel in Err.
type FormatError struct {
	Off int64  // file offset (RVA) of the problem
	Msg string // what was being read or which rule failed
	Val any    // the offending value, or nil
	Err error  // a specific sentinel such as ErrTruncated, or nil
}

func (e *FormatError) Error() string {
	s := "malformed minidump: " + e.Msg
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

// UnmappedError reports a read of an address that the dump holds no memory
// for. It is memory.UnmappedError, the one type for every memory source,
// and matches [ErrShortRead] with errors.Is, so unwinders treat it as the
// end of readable memory.
type UnmappedError = memory.UnmappedError

// Header is MINIDUMP_HEADER, the 32 bytes at the start of a dump.
type Header struct {
	Signature          uint32 // MINIDUMP_SIGNATURE
	Version            uint32 // low 16 bits MINIDUMP_VERSION, high 16 implementation-specific
	NumberOfStreams    uint32 // entries in the stream directory
	StreamDirectoryRva uint32 // file offset of the stream directory
	CheckSum           uint32 // usually 0
	TimeDateStamp      uint32 // time_t of the dump, seconds since 1970 UTC
	Flags              uint64 // MINIDUMP_TYPE bits the dump was written with
}

// Location is MINIDUMP_LOCATION_DESCRIPTOR: a run of bytes in the file.
type Location struct {
	DataSize uint32 // size in bytes
	Rva      uint32 // file offset
}

// Directory is MINIDUMP_DIRECTORY, one entry of the stream directory.
type Directory struct {
	StreamType StreamType
	Location   Location
}

// File is an open minidump. It is not safe for concurrent use, except for
// the [Memory] it returns, which is.
//
// The header and the stream directory are read by [NewFile]; each stream is
// read and decoded when its accessor is called, and decoded again on every
// call. An accessor for a stream the dump does not have returns nil and no
// error. Small reads (names, records, contexts) are served from a cache of
// a few 64 KiB blocks of the file, so that decoding a stream costs a few
// reads of the underlying io.ReaderAt, not one per entry.
type File struct {
	Header Header

	r      io.ReaderAt
	size   int64 // size of the data, or -1 when r cannot tell
	closer io.Closer
	dir    []Directory

	cache *blockcache.Reader // of r, for small reads, see readAt
}

// Open opens the named minidump. Close closes it.
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

// NewFile reads a minidump from r, which must stay readable while the File
// is used. It reads the header and the stream directory. If r has a
// Size() int64 method (bytes.Reader, io.SectionReader) or a Stat method
// (os.File), every size in the dump is checked against it before anything
// is allocated; otherwise sizes are bounded by reading in chunks.
func NewFile(r io.ReaderAt) (*File, error) {
	f := &File{r: r, size: sizeOf(r)}
	f.cache = blockcache.NewSized(r, f.size, blockSize, numBlocks)
	var hb [headerSize]byte
	n, err := r.ReadAt(hb[:], 0)
	if n < 4 {
		if err == nil || err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("read minidump header: %w", ErrNotMinidump)
		}
		return nil, fmt.Errorf("read minidump header: %w", err)
	}
	if binary.LittleEndian.Uint32(hb[:]) != MINIDUMP_SIGNATURE {
		return nil, fmt.Errorf("read minidump header: signature %#x: %w", binary.LittleEndian.Uint32(hb[:]), ErrNotMinidump)
	}
	if n < headerSize {
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("read minidump header: %w", err)
		}
		return nil, &FormatError{Off: 0, Msg: "read header", Val: n, Err: ErrTruncated}
	}
	br := binread.New("minidump header", hb[:], 0)
	f.Header = Header{
		Signature:          br.U32(),
		Version:            br.U32(),
		NumberOfStreams:    br.U32(),
		StreamDirectoryRva: br.U32(),
		CheckSum:           br.U32(),
		TimeDateStamp:      br.U32(),
		Flags:              br.U64(),
	}
	h := &f.Header
	if h.Version&0xffff != MINIDUMP_VERSION {
		// Every writer (dbghelp, Breakpad, Crashpad, LLVM) uses 42899;
		// minidumpapiset.h defines no other.
		return nil, &FormatError{Off: 4, Msg: "read header: unknown version", Val: h.Version}
	}
	if h.NumberOfStreams > MaxStreams {
		return nil, &FormatError{Off: 8, Msg: "read header: too many streams", Val: h.NumberOfStreams}
	}
	d, err := f.readAt(uint64(h.StreamDirectoryRva), uint64(h.NumberOfStreams)*directorySize)
	if err != nil {
		return nil, fmt.Errorf("read stream directory: %w", err)
	}
	dr := binread.New("stream directory", d, int64(h.StreamDirectoryRva))
	f.dir = make([]Directory, h.NumberOfStreams)
	for i := range f.dir {
		f.dir[i] = Directory{
			StreamType: StreamType(dr.U32()),
			Location:   Location{DataSize: dr.U32(), Rva: dr.U32()},
		}
	}
	return f, nil
}

// sizeOf returns the size of the data behind r, or -1 if r cannot tell.
func sizeOf(r io.ReaderAt) int64 {
	switch v := r.(type) {
	case interface{ Size() int64 }:
		return v.Size()
	case interface{ Stat() (fs.FileInfo, error) }:
		if fi, err := v.Stat(); err == nil && fi.Mode().IsRegular() {
			return fi.Size()
		}
	}
	return -1
}

// Size returns the size of the dump in bytes, or -1 when the io.ReaderAt
// given to [NewFile] cannot tell it.
func (f *File) Size() int64 { return f.size }

// readAt reads n bytes at file offset off. It checks the range against the
// size of the file before it allocates, or, when the size is unknown, reads
// in chunks so that a bogus size fails before a large allocation. The error
// is a *FormatError wrapping ErrTruncated when the file is too short.
func (f *File) readAt(off, n uint64) ([]byte, error) {
	if off+n < off || off > 1<<62 || n > 1<<62 || n != uint64(int(n)) {
		return nil, &FormatError{Off: int64(off & (1<<63 - 1)), Msg: fmt.Sprintf("read %d bytes", n), Err: ErrTruncated}
	}
	if f.size >= 0 {
		if off+n > uint64(f.size) {
			return nil, &FormatError{Off: int64(off), Msg: fmt.Sprintf("read %d bytes: file has %d", n, f.size), Err: ErrTruncated}
		}
		b := make([]byte, n)
		if n <= smallRead {
			if k, _ := f.cache.ReadAt(b, int64(off)); k == len(b) {
				return b, nil
			}
		}
		if err := f.fill(b, off); err != nil {
			return nil, err
		}
		return b, nil
	}
	var b []byte
	for done := uint64(0); done < n; {
		k := min(n-done, readChunk)
		// Probe the chunk's last byte before allocating the chunk.
		var last [1]byte
		if err := f.fill(last[:], off+done+k-1); err != nil {
			return nil, err
		}
		b = append(b, make([]byte, k)...)
		if err := f.fill(b[done:done+k], off+done); err != nil {
			return nil, err
		}
		done += k
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}

// fill reads exactly len(p) bytes at off.
func (f *File) fill(p []byte, off uint64) error {
	n, err := f.r.ReadAt(p, int64(off))
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF || err == io.ErrUnexpectedEOF {
		return &FormatError{Off: int64(off), Msg: fmt.Sprintf("read %d bytes: got %d", len(p), n), Err: ErrTruncated}
	}
	return fmt.Errorf("read minidump at %#x: %w", off, err)
}

// ReadLocation returns the bytes a location descriptor names, such as a
// thread's stack.
func (f *File) ReadLocation(l Location) ([]byte, error) {
	return f.readAt(uint64(l.Rva), uint64(l.DataSize))
}

// Streams returns a copy of the stream directory, in file order, including
// unused entries (type UnusedStream) and streams this package does not
// decode. [File.StreamData] reads any of them raw.
func (f *File) Streams() []Directory {
	return append([]Directory(nil), f.dir...)
}

// Stream returns the first directory entry of type t, and whether there is
// one. UnusedStream entries are never returned.
func (f *File) Stream(t StreamType) (Directory, bool) {
	if t == UnusedStream {
		return Directory{}, false
	}
	for _, d := range f.dir {
		if d.StreamType == t {
			return d, true
		}
	}
	return Directory{}, false
}

// StreamData returns the raw bytes of the stream d describes.
func (f *File) StreamData(d Directory) ([]byte, error) {
	b, err := f.readAt(uint64(d.Location.Rva), uint64(d.Location.DataSize))
	if err != nil {
		return nil, fmt.Errorf("read %v: %w", d.StreamType, err)
	}
	return b, nil
}

// streamData returns the data of the first stream of type t and its file
// offset; ok is false when the dump has none.
func (f *File) streamData(t StreamType) (data []byte, rva uint32, ok bool, err error) {
	d, ok := f.Stream(t)
	if !ok {
		return nil, 0, false, nil
	}
	data, err = f.StreamData(d)
	return data, d.Location.Rva, true, err
}

// ReadString reads the MINIDUMP_STRING at rva: a uint32 length in bytes,
// then that many bytes of UTF-16LE text (a terminating NUL follows, which
// is not counted and not required). An odd length, or one above
// MaxStringBytes, is malformed. Unpaired surrogates become U+FFFD.
func (f *File) ReadString(rva uint32) (string, error) {
	return f.readString(uint64(rva), nil)
}

// readString reads the MINIDUMP_STRING at file offset rva (an RVA64 for
// the streams that use them), charging its length to b, if not nil.
func (f *File) readString(rva uint64, b *budget) (string, error) {
	lb, err := f.readAt(rva, 4)
	if err != nil {
		return "", fmt.Errorf("read string: %w", err)
	}
	n := binary.LittleEndian.Uint32(lb)
	if n%2 != 0 {
		return "", &FormatError{Off: int64(rva), Msg: "read string: odd length", Val: n}
	}
	if n > MaxStringBytes {
		return "", &FormatError{Off: int64(rva), Msg: "read string: too long", Val: n}
	}
	if err := b.take(rva, uint64(n)); err != nil {
		return "", fmt.Errorf("read string: %w", err)
	}
	data, err := f.readAt(rva+4, uint64(n))
	if err != nil {
		return "", fmt.Errorf("read string: %w", err)
	}
	return decodeUTF16(data), nil
}

// budget bounds what the records an accessor reads (names, CodeView
// records, contexts) may allocate in total. Entries of a list can all
// point at the same bytes of the file, so without it a small file could
// make a huge allocation: 20,000 thread entries naming one 64 KiB context
// would ask for 1.3 GB.
type budget struct{ left int64 }

// newBudget returns the budget of one accessor call: twice the size of
// the file plus 1 MiB (the records of a real dump never add up to more
// than the file), or 64 MiB when the size is unknown.
func (f *File) newBudget() *budget {
	if f.size >= 0 {
		return &budget{2*f.size + 1<<20}
	}
	return &budget{64 << 20}
}

// spent returns an error once b has run out, for entries i and up of n:
// loops over entries stop then, rather than report an error for each of
// thousands of entries.
func (b *budget) spent(what string, i, n int) error {
	if b == nil || b.left > 0 {
		return nil
	}
	return &FormatError{Msg: fmt.Sprintf("read %s: records of entries %d to %d not read: the stream's records add up to more than twice the file", what, i, n-1)}
}

// take charges n bytes of a record at rva to b; a nil budget is unlimited.
func (b *budget) take(rva, n uint64) error {
	if b == nil {
		return nil
	}
	if int64(n) > b.left {
		b.left = 0
		return &FormatError{Off: int64(rva & (1<<63 - 1)), Msg: "read record: the stream's records add up to more than twice the file (entries share their bytes)", Val: n}
	}
	b.left -= int64(n)
	return nil
}

// decodeUTF16 decodes UTF-16LE text, stopping at a NUL.
func decodeUTF16(b []byte) string {
	s, _ := DecodeUTF16Z(b)
	return s
}

// DecodeUTF16Z decodes the UTF-16LE text of b up to its first NUL unit,
// and reports whether there was one (b holds all of a NUL-terminated
// string, such as a DYNAMIC_FUNCTION_TABLE's OutOfProcessCallbackDll);
// without one it decodes all of b.
func DecodeUTF16Z(b []byte) (s string, terminated bool) {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			terminated = true
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u)), terminated
}

// formatErr turns the error of a binread.Reader into a *FormatError.
func formatErr(err error, msg string) error {
	if err == nil {
		return nil
	}
	var be *binread.Error
	if errors.As(err, &be) {
		var sentinel error
		if errors.Is(be.Err, binread.ErrTruncated) {
			sentinel = ErrTruncated
		}
		return &FormatError{Off: be.Off, Msg: msg + ": " + be.Name, Err: sentinel}
	}
	return err
}

// listEntries opens the first list stream of type t (see [listCount]):
// it returns a reader positioned at the first entry, the number of
// entries the file holds in full, and whether the dump has the stream.
// The error is that of a list cut short, returned with the entries before
// the cut: a count larger than the stream holds, or a stream that runs
// past the end of a file of known size (a dump cut short), of which the
// part the file holds is decoded.
func (f *File) listEntries(t StreamType, what string, entrySize int) (r binread.Reader, n int, ok bool, err error) {
	d, ok := f.Stream(t)
	if !ok {
		return r, 0, false, nil
	}
	rva, size := d.Location.Rva, d.Location.DataSize
	data, err := f.StreamData(d)
	if err != nil {
		if f.size < 0 || uint64(rva) >= uint64(f.size) || uint64(rva)+uint64(size) <= uint64(f.size) {
			return r, 0, true, err
		}
		part, perr := f.readAt(uint64(rva), uint64(f.size)-uint64(rva))
		if perr != nil {
			return r, 0, true, err
		}
		data = part
	}
	r, n, lerr := listCount(data, rva, size, what, entrySize)
	if lerr != nil {
		err = lerr
	}
	return r, n, true, err
}

// listCount reads the count of a list stream (ThreadList, ModuleList,
// MemoryList, ThreadNames) and checks it against the data: count entries
// of entrySize bytes must follow the 4-byte count, or follow 4 bytes of
// padding after it, which Breakpad's 64-bit writers add (Breakpad
// minidump.cc accepts both). size is the stream's size in the directory,
// which can be more than len(data) when the file is cut short. It returns
// the reader positioned at the first entry and the number of entries the
// data holds in full: the count, or, when the data is too short for it,
// fewer, with an error wrapping ErrTruncated.
func listCount(data []byte, rva, size uint32, what string, entrySize int) (binread.Reader, int, error) {
	r := binread.New(what, data, int64(rva))
	n := r.U32()
	if r.Err() != nil {
		return r, 0, formatErr(r.Err(), "read "+what)
	}
	avail := uint64(len(data) - 4)
	need := uint64(n) * uint64(entrySize)
	// Padding: the stream's size says so, even where the file holds
	// less of it.
	if uint64(size) == 4+need+4 || avail == need+4 {
		r.Skip(4)
		avail = uint64(r.Len())
	}
	if need > avail {
		return r, int(avail / uint64(entrySize)), &FormatError{Off: int64(rva), Msg: fmt.Sprintf("read %s: %d entries of %d bytes in %d bytes", what, n, entrySize, avail), Val: n, Err: ErrTruncated}
	}
	return r, int(n), nil
}
