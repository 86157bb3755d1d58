package debugfile

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"io"
)

// Limits of [BuildID]: MaxNoteBytes bounds how much of one note section or
// segment is read when looking for the build ID, and MaxNoteTotal how
// much of all of them: real ones are a few hundred bytes, and a hostile
// file could point thousands of note headers at the same megabyte.
const (
	MaxNoteBytes = 1 << 20
	MaxNoteTotal = 4 << 20
)

const (
	// ntGNUBuildID is the note type of NT_GNU_BUILD_ID in the "GNU" namespace.
	ntGNUBuildID = 3
)

// BuildID returns the NT_GNU_BUILD_ID of an ELF file: the first such
// note in an SHT_NOTE section, or else in a PT_NOTE segment. It returns
// nil when the file has none.
func BuildID(f *elf.File) []byte {
	budget := int64(MaxNoteTotal)
	scan := func(r io.Reader, size, align uint64) []byte {
		n := min(int64(min(size, MaxNoteBytes)), budget)
		if n <= 0 {
			return nil
		}
		budget -= n
		return findBuildID(io.LimitReader(r, n), f.ByteOrder, align)
	}
	for _, s := range f.Sections {
		if s.Type != elf.SHT_NOTE {
			continue
		}
		if id := scan(s.Open(), s.Size, s.Addralign); id != nil {
			return id
		}
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		if id := scan(p.Open(), p.Filesz, p.Align); id != nil {
			return id
		}
	}
	return nil
}

// findBuildID scans a run of ELF notes (Elf64_Nhdr and Elf32_Nhdr have the
// same layout: namesz, descsz, type, then the padded name and descriptor).
// Notes in segments aligned to 8 pad to 8 bytes, the others to 4.
func findBuildID(r io.Reader, bo binary.ByteOrder, align uint64) []byte {
	b, err := io.ReadAll(io.LimitReader(r, MaxNoteBytes))
	if err != nil && len(b) == 0 {
		return nil
	}
	pad := uint64(4)
	if align == 8 {
		pad = 8
	}
	up := func(n uint64) uint64 { return (n + pad - 1) &^ (pad - 1) }
	for off := uint64(0); off+12 <= uint64(len(b)); {
		namesz := uint64(bo.Uint32(b[off:]))
		descsz := uint64(bo.Uint32(b[off+4:]))
		typ := bo.Uint32(b[off+8:])
		nameOff := off + 12
		descOff := nameOff + up(namesz)
		end := descOff + up(descsz)
		if descOff+descsz > uint64(len(b)) {
			return nil
		}
		name := b[nameOff : nameOff+namesz]
		if typ == ntGNUBuildID && string(bytes.TrimRight(name, "\x00")) == "GNU" && descsz > 0 {
			return bytes.Clone(b[descOff : descOff+descsz])
		}
		if end <= off { // cannot happen, as end > off+12; kept as a loop guard
			return nil
		}
		off = end
	}
	return nil
}
