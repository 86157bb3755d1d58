package pesym

import (
	"encoding/binary"

	"github.com/fntable/fntable/internal/binread"
	"github.com/fntable/fntable/symfile"
)

// COFF symbol storage classes and types used here ("PE Format", "COFF
// Symbol Table").
const (
	IMAGE_SYM_CLASS_EXTERNAL        = 2
	IMAGE_SYM_CLASS_STATIC          = 3
	IMAGE_SYM_CLASS_LABEL           = 6
	IMAGE_SYM_CLASS_UNDEFINED_LABEL = 7
	IMAGE_SYM_CLASS_FUNCTION        = 101
	IMAGE_SYM_CLASS_FILE            = 103
	IMAGE_SYM_CLASS_SECTION         = 104
	IMAGE_SYM_CLASS_WEAK_EXTERNAL   = 105

	IMAGE_SYM_DTYPE_FUNCTION = 2 // complex type, in bits 4-5 of Type
)

// coffSymbolSize is the size of one symbol table record.
const coffSymbolSize = 18

// MaxSymbols caps the COFF symbol table records read (288 MiB of table).
const MaxSymbols = 1 << 24

// maxStringTable caps the COFF string table read.
const maxStringTable = 256 << 20

// readCOFF reads the COFF symbol table and returns the symbols that name
// addresses in the image (see the package documentation for which), at
// ImageBase+RVA. It returns what it could read with the first error.
func (img *image) readCOFF() ([]symfile.Symbol, error) {
	if img.symPtr == 0 || img.nsyms == 0 {
		return nil, nil
	}
	var firstErr error
	fail := func(err error) {
		if firstErr == nil {
			firstErr = err
		}
	}
	n := img.nsyms
	if n > MaxSymbols {
		fail(&FormatError{Off: -1, Msg: "too many COFF symbols", Val: n})
		n = MaxSymbols
	}
	tab, err := readChunked(img.r, int64(img.symPtr), uint64(n)*coffSymbolSize, "read COFF symbol table")
	if err != nil {
		fail(err)
	}
	n = uint32(len(tab) / coffSymbolSize)

	// The string table follows the full table; its first word is its
	// size, the word included.
	var strtab []byte
	if n == img.nsyms {
		strOff := int64(img.symPtr) + int64(img.nsyms)*coffSymbolSize
		var sz [4]byte
		if got, _ := img.r.ReadAt(sz[:], strOff); got == 4 {
			size := binary.LittleEndian.Uint32(sz[:])
			if size > maxStringTable {
				fail(&FormatError{Off: strOff, Msg: "COFF string table too large", Val: size})
				size = maxStringTable
			}
			if size > 4 {
				strtab, err = readChunked(img.r, strOff, uint64(size), "read COFF string table")
				if err != nil {
					fail(err)
				}
			}
		}
	}

	le := binary.LittleEndian
	var syms []symfile.Symbol
	for i := uint32(0); i < n; i++ {
		rd := binread.New("COFF symbol table", tab[i*coffSymbolSize:(i+1)*coffSymbolSize], int64(img.symPtr)+int64(i)*coffSymbolSize)
		name := rd.Bytes(8)
		value := rd.U32()
		secNum := int16(rd.U16())
		typ := rd.U16()
		class := rd.U8()
		aux := uint32(rd.U8())
		i += aux // the auxiliary records follow the symbol

		fn := (typ>>4)&3 == IMAGE_SYM_DTYPE_FUNCTION
		switch class {
		case IMAGE_SYM_CLASS_EXTERNAL, IMAGE_SYM_CLASS_WEAK_EXTERNAL:
		case IMAGE_SYM_CLASS_STATIC:
			if aux > 0 && !fn {
				// A section definition: GNU ld keeps one per input
				// section, valued at its offset in the output section.
				continue
			}
		default:
			continue // .file, labels, .bf/.ef, sections and the rest
		}
		if secNum <= 0 || int(secNum) > len(img.sections) {
			continue // undefined, absolute or debug
		}
		sec := &img.sections[secNum-1]
		// A symbol may name the end of its section (value == size).
		// Linker-defined markers such as MinGW's __end__ may lie beyond
		// it: they name no code or data and are skipped.
		if value > sec.vsize || uint64(sec.va)+uint64(value) >= uint64(img.sizeOfImage) {
			continue
		}
		var s string
		if le.Uint32(name) == 0 {
			off := le.Uint32(name[4:])
			if off < 4 || uint64(off) >= uint64(len(strtab)) {
				fail(&FormatError{Off: int64(img.symPtr) + int64(i-aux)*coffSymbolSize, Msg: "COFF symbol name beyond the string table", Val: off})
				continue
			}
			s = cstring(strtab[off:])
		} else {
			s = cstring(name)
		}
		if s == "" {
			continue
		}
		kind := symfile.KindOther
		switch {
		case fn || sec.code():
			kind = symfile.KindFunction
		case sec.data():
			kind = symfile.KindData
		}
		syms = append(syms, symfile.Symbol{Name: s, Addr: img.imageBase + uint64(sec.va) + uint64(value), Kind: kind})
	}
	return syms, firstErr
}
