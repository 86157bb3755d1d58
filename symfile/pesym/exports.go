package pesym

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/fntable/fntable/internal/binread"
)

// exportDirSize is sizeof(IMAGE_EXPORT_DIRECTORY).
const exportDirSize = 40

// MaxExports caps the export address table and the name table. Ordinals
// are 16-bit, so no real image has more.
const MaxExports = 1 << 16

// maxExportName bounds an export name or forwarder string read outside
// the export directory (C++ names can be long, but not longer).
const maxExportName = 4096

// Export is one entry of the export directory: an exported name, or an
// ordinal exported without a name. An address exported under several
// names has one Export per name.
type Export struct {
	Ordinal   uint32 // biased ordinal: the directory's Base plus the index in the address table
	Name      string // "" for an export by ordinal only
	RVA       uint32 // the export address table entry; for a forwarder, where the forwarder string is
	Forwarder string // "DLL.Function" or "DLL.#ordinal" when the export is forwarded; "" otherwise
}

// readExports reads the export directory. It returns what it could read
// with the first error.
func (img *image) readExports() ([]Export, error) {
	d := img.dirs[IMAGE_DIRECTORY_ENTRY_EXPORT]
	if d.Size == 0 || d.RVA == 0 {
		return nil, nil
	}
	hdr, err := img.readRVA(d.RVA, exportDirSize, "read export directory")
	if err != nil {
		return nil, err
	}
	h := binread.New("export directory", hdr, 0)
	h.Skip(16) // Characteristics, TimeDateStamp, versions, Name
	base := h.U32()
	nfuncs := h.U32()
	nnames := h.U32()
	funcsRVA := h.U32()
	namesRVA := h.U32()
	ordsRVA := h.U32()
	// The tables below are indexed at random, within the lengths read:
	// 4*nfuncs bytes of addresses, 4*nnames of names, 2*nnames of ordinals.
	le := binary.LittleEndian
	var firstErr error
	fail := func(err error) {
		if firstErr == nil {
			firstErr = err
		}
	}
	if nfuncs > MaxExports {
		fail(&FormatError{Off: -1, Msg: fmt.Sprintf("export directory at rva %#x: too many functions", d.RVA), Val: nfuncs})
		nfuncs = MaxExports
	}
	if nnames > MaxExports {
		fail(&FormatError{Off: -1, Msg: fmt.Sprintf("export directory at rva %#x: too many names", d.RVA), Val: nnames})
		nnames = MaxExports
	}
	if nfuncs == 0 {
		return nil, firstErr
	}
	eat, err := img.readRVA(funcsRVA, 4*nfuncs, "read export address table")
	if err != nil {
		fail(err)
		return nil, firstErr
	}

	// The directory's own span usually holds the names and forwarder
	// strings: read it once. Reading it is optional (Size may lie).
	blob, _ := img.readRVA(d.RVA, d.Size, "read export directory")
	str := func(rva uint32) (string, error) {
		if blob != nil && rva >= d.RVA && rva-d.RVA < uint32(len(blob)) {
			b := blob[rva-d.RVA:]
			if i := slices.Index(b, 0); i >= 0 {
				return string(b[:i]), nil
			}
		}
		s := img.sectionOf(rva, 1)
		if s == nil {
			return "", &FormatError{Off: -1, Msg: fmt.Sprintf("read export name at rva %#x: not within a section", rva)}
		}
		n := min(uint32(maxExportName), s.va+s.vsize-rva)
		b, err := img.readRVA(rva, n, "read export name")
		if err != nil {
			return "", err
		}
		return cstring(b), nil
	}
	forwarder := func(rva uint32) bool { return rva >= d.RVA && rva-d.RVA < d.Size }

	named := make([]bool, nfuncs)
	var exps []Export
	if nnames > 0 {
		names, err1 := img.readRVA(namesRVA, 4*nnames, "read export name table")
		ords, err2 := img.readRVA(ordsRVA, 2*nnames, "read export ordinal table")
		if err1 != nil || err2 != nil {
			fail(cmpErr(err1, err2))
		} else {
			for i := range nnames {
				idx := uint32(le.Uint16(ords[2*i:]))
				if idx >= nfuncs {
					fail(&FormatError{Off: -1, Msg: fmt.Sprintf("export name %d: ordinal index beyond the address table", i), Val: idx})
					continue
				}
				name, err := str(le.Uint32(names[4*i:]))
				if err != nil {
					fail(err)
					continue
				}
				rva := le.Uint32(eat[4*idx:])
				if rva == 0 {
					continue
				}
				named[idx] = true
				e := Export{Ordinal: base + idx, Name: name, RVA: rva}
				if forwarder(rva) {
					if e.Forwarder, err = str(rva); err != nil {
						fail(err)
					}
				}
				exps = append(exps, e)
			}
		}
	}
	for idx := range nfuncs {
		rva := le.Uint32(eat[4*idx:])
		if rva == 0 || named[idx] {
			continue
		}
		e := Export{Ordinal: base + idx, RVA: rva}
		if forwarder(rva) {
			if e.Forwarder, err = str(rva); err != nil {
				fail(err)
			}
		}
		exps = append(exps, e)
	}
	slices.SortFunc(exps, func(a, b Export) int {
		if a.Ordinal != b.Ordinal {
			if a.Ordinal < b.Ordinal {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	return exps, firstErr
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
