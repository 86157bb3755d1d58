package symsrv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/fntable/fntable/internal/binread"
)

// msfMagic starts the superblock of every MSF 7.00 file (a PDB 7.0).
// Reference: LLVM, "The MSF File Format" (llvm/docs/PDB/MsfFile.rst).
const msfMagic = "Microsoft C/C++ MSF 7.00\r\n\x1aDS\x00\x00\x00"

const (
	superBlockSize = 56 // the magic and six little-endian uint32 fields

	// minBlockSize and maxBlockSize bound the MSF block size. Linkers
	// write 4096 (link.exe /PDBPAGESIZE and lld allow larger powers of
	// two up to 32 KiB for PDBs past 4 GiB); LLVM's yaml2pdb writes 512.
	minBlockSize = 512
	maxBlockSize = 32 << 10

	// nilStreamSize marks a stream that does not exist in the directory.
	nilStreamSize = 0xffffffff

	// Fixed stream indices (llvm/docs/PDB/index.rst, "Streams").
	pdbInfoStream = 1
	dbiStream     = 3

	// pdbInfoSize is the PDB info stream header with its GUID:
	// Version, Signature, Age (uint32 each) and the 16-byte GUID.
	pdbInfoSize = 28
	// dbiHeaderPrefix is the part of the DBI stream header read here:
	// VersionSignature (int32, -1 for the current format), VersionHeader
	// and Age.
	dbiHeaderPrefix = 12

	// PDBVersionVC70 is the PDB info stream version from which on the
	// header carries a GUID (PdbStreamVersion::VC70 = 20000404). Every
	// PDB paired with an RSDS CodeView record has this version or later.
	PDBVersionVC70 = 20000404
)

// PDBInfo is what identifies a PDB 7.0 file: the header of its PDB info
// stream (stream 1) and the age kept in its DBI stream (stream 3).
type PDBInfo struct {
	Version   uint32   // PdbStreamVersion, e.g. 20000404 (VC70)
	Signature uint32   // time() when the PDB was first written; not used for matching
	Age       uint32   // info stream age: bumped every time the PDB is written
	GUID      [16]byte // as stored (Data1..3 little-endian), the same bytes as the RSDS record's
	HasDBI    bool     // whether stream 3 exists with a current-format header
	DBIAge    uint32   // the DBI stream header's age (meaningful when HasDBI)
}

// MatchAge returns the age that a CodeView record's Age must equal: the
// DBI stream's when the PDB has one, the info stream's otherwise. Tools
// that rewrite a PDB after linking (for example to add source indexing)
// bump the info stream's age but not the DBI stream's, and the linker
// records the DBI age in the image.
func (p PDBInfo) MatchAge() uint32 {
	if p.HasDBI {
		return p.DBIAge
	}
	return p.Age
}

// FormatError describes a malformed PDB: what was wrong, where, and the
// offending value. Unwrap returns [ErrMalformed] and the sentinel in Err.
type FormatError struct {
	Off int64  // file offset of the problem; for stream contents, the offset in the stream named in Msg
	Msg string // what was being read or which rule failed
	Val any    // the offending value, or nil
	Err error  // a specific sentinel such as binread.ErrTruncated, or nil
}

func (e *FormatError) Error() string {
	s := "malformed pdb: " + e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	if e.Val != nil {
		s += fmt.Sprintf(" '%#x'", e.Val)
	}
	return fmt.Sprintf("%s (at offset %#x)", s, e.Off)
}

// Unwrap returns ErrMalformed and the specific sentinel, if any.
func (e *FormatError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrMalformed}
	}
	return []error{ErrMalformed, e.Err}
}

// ReadPDBInfo reads the identity of the PDB 7.0 file r of the given size:
// it reads the MSF superblock, follows the block map to the parts of the
// stream directory that describe streams 0 to 3, and reads the PDB info
// stream header and the DBI stream header through their block lists. It
// reads a few blocks, never the whole file.
//
// A file without the MSF 7.00 magic yields an error wrapping [ErrNotPDB];
// a malformed one a *[FormatError] wrapping [ErrMalformed]; an error from r
// other than io.EOF is returned wrapped.
func ReadPDBInfo(r io.ReaderAt, size int64) (PDBInfo, error) {
	var info PDBInfo
	var sb [superBlockSize]byte
	if err := readFull(r, sb[:], 0); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return info, fmt.Errorf("read pdb superblock: %w", ErrNotPDB)
		}
		return info, fmt.Errorf("read pdb superblock: %w", err)
	}
	if string(sb[:len(msfMagic)]) != msfMagic {
		return info, fmt.Errorf("read pdb superblock: %w", ErrNotPDB)
	}
	br := binread.New("msf superblock", sb[len(msfMagic):], int64(len(msfMagic)))
	m := msf{r: r, size: size}
	m.blockSize = br.U32()
	_ = br.U32() // FreeBlockMapBlock
	m.numBlocks = br.U32()
	dirBytes := br.U32()
	_ = br.U32() // unknown
	blockMapAddr := br.U32()
	if err := br.Err(); err != nil { // cannot happen: sb has all 56 bytes
		return info, &FormatError{Off: 32, Msg: "read superblock", Err: err}
	}
	bs := m.blockSize
	if bs < minBlockSize || bs > maxBlockSize || bs&(bs-1) != 0 {
		return info, &FormatError{Off: 32, Msg: "invalid block size", Val: bs}
	}
	if uint64(m.numBlocks)*uint64(bs) > uint64(size) {
		return info, &FormatError{Off: 40, Msg: "block count exceeds file size", Val: m.numBlocks}
	}
	// The block map (the list of the directory's blocks) must fit in one
	// block: MSF 7.00 has no indirection beyond it.
	dirBlocks := (uint64(dirBytes) + uint64(bs) - 1) / uint64(bs)
	if dirBytes < 4 || dirBlocks*4 > uint64(bs) {
		return info, &FormatError{Off: 44, Msg: "invalid stream directory size", Val: dirBytes}
	}
	mapOff, err := m.blockOffset(blockMapAddr, 52)
	if err != nil {
		return info, err
	}
	mapBytes := make([]byte, dirBlocks*4)
	if err := m.read(mapBytes, mapOff, "stream directory block map"); err != nil {
		return info, err
	}
	dir := stream{m: &m, size: dirBytes, blocks: make([]uint32, dirBlocks), name: "stream directory"}
	mr := binread.New("stream directory block map", mapBytes, mapOff)
	for i := range dir.blocks {
		dir.blocks[i] = mr.U32()
	}

	// Directory: NumStreams, StreamSizes[NumStreams], then each stream's
	// block list in stream order.
	var hdr [4 * 5]byte
	n := min(int64(len(hdr)), int64(dirBytes))
	if err := dir.readAt(hdr[:n], 0); err != nil {
		return info, err
	}
	dr := binread.New("stream directory", hdr[:n], 0)
	numStreams := dr.U32()
	if uint64(numStreams)*4+4 > uint64(dirBytes) {
		return info, &FormatError{Off: 0, Msg: "stream count exceeds the stream directory", Val: numStreams}
	}
	if numStreams <= pdbInfoStream {
		return info, &FormatError{Off: 0, Msg: "no pdb info stream", Val: numStreams}
	}
	var sizes [dbiStream + 1]uint32
	for i := range sizes {
		if uint32(i) < numStreams {
			sizes[i] = dr.U32()
		} else {
			sizes[i] = nilStreamSize
		}
	}
	// Offset of stream i's block list: after the sizes and the lists of
	// streams before it.
	listOff := uint64(4) + uint64(numStreams)*4
	var streams [dbiStream + 1]stream
	for i := range streams {
		if uint32(i) >= numStreams {
			break
		}
		sz := sizes[i]
		if sz == nilStreamSize {
			sz = 0
		}
		nb := (uint64(sz) + uint64(bs) - 1) / uint64(bs)
		if listOff+nb*4 > uint64(dirBytes) {
			return info, &FormatError{Off: int64(listOff), Msg: fmt.Sprintf("stream %d block list exceeds the stream directory", i), Val: sz}
		}
		if i == pdbInfoStream || i == dbiStream {
			// Only the blocks the headers need: the first one or two.
			want := min(nb, 2)
			raw := make([]byte, want*4)
			if err := dir.readAt(raw, int64(listOff)); err != nil {
				return info, err
			}
			name := "pdb info stream"
			if i == dbiStream {
				name = "dbi stream"
			}
			s := stream{m: &m, size: sz, blocks: make([]uint32, want), name: name}
			lr := binread.New("stream directory", raw, int64(listOff))
			for j := range s.blocks {
				s.blocks[j] = lr.U32()
			}
			streams[i] = s
		}
		listOff += nb * 4
	}

	ps := streams[pdbInfoStream]
	if ps.size < pdbInfoSize {
		return info, &FormatError{Off: 4 + 4*pdbInfoStream, Msg: "pdb info stream too short", Val: sizes[pdbInfoStream]}
	}
	var ib [pdbInfoSize]byte
	if err := ps.readAt(ib[:], 0); err != nil {
		return info, err
	}
	ir := binread.New("pdb info stream", ib[:], 0)
	info.Version = ir.U32()
	info.Signature = ir.U32()
	info.Age = ir.U32()
	copy(info.GUID[:], ir.Bytes(16))
	if info.Version < PDBVersionVC70 {
		return info, &FormatError{Off: 0, Msg: "pdb info stream version without a guid", Val: info.Version}
	}

	if ds := streams[dbiStream]; ds.size >= dbiHeaderPrefix {
		var db [dbiHeaderPrefix]byte
		if err := ds.readAt(db[:], 0); err != nil {
			return info, err
		}
		if int32(binary.LittleEndian.Uint32(db[0:])) == -1 {
			info.HasDBI = true
			info.DBIAge = binary.LittleEndian.Uint32(db[8:])
		}
	}
	return info, nil
}

// msf is an MSF file being read.
type msf struct {
	r         io.ReaderAt
	size      int64
	blockSize uint32
	numBlocks uint32
}

// blockOffset returns the file offset of block b, checking it against the
// block count; off is where b was read from, for the error.
func (m *msf) blockOffset(b uint32, off int64) (int64, error) {
	if b == 0 || b >= m.numBlocks {
		// Block 0 is the superblock; no stream lives there.
		return 0, &FormatError{Off: off, Msg: "block index out of range", Val: b}
	}
	return int64(b) * int64(m.blockSize), nil
}

// read fills p from offset off of the file; what names the data read,
// for errors.
func (m *msf) read(p []byte, off int64, what string) error {
	if err := readFull(m.r, p, off); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return &FormatError{Off: off, Msg: "read " + what, Err: binread.ErrTruncated}
		}
		return fmt.Errorf("read %s: %w", what, err)
	}
	return nil
}

// stream is an MSF stream: its size and (a prefix of) its block list.
type stream struct {
	m      *msf
	size   uint32
	blocks []uint32
	name   string
}

// readAt fills p from offset off of the stream, block by block.
func (s *stream) readAt(p []byte, off int64) error {
	if off < 0 || off+int64(len(p)) > int64(s.size) {
		return &FormatError{Off: off, Msg: "read past the end of " + s.name, Val: s.size}
	}
	bs := int64(s.m.blockSize)
	for len(p) > 0 {
		i := off / bs
		if i >= int64(len(s.blocks)) { // a bug here, not bad input: callers load enough blocks
			return &FormatError{Off: off, Msg: "read beyond the loaded blocks of " + s.name}
		}
		base, err := s.m.blockOffset(s.blocks[i], off)
		if err != nil {
			return err
		}
		within := off % bs
		n := min(int64(len(p)), bs-within)
		if err := s.m.read(p[:n], base+within, s.name); err != nil {
			return err
		}
		p = p[n:]
		off += n
	}
	return nil
}

// readFull reads len(p) bytes at off; a short read is io.ErrUnexpectedEOF.
func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}
