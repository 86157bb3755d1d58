package cfi

import (
	"fmt"
	"math"
	"strings"
	"sync"
)

// Limits on input. Each bounds work or memory that the input chooses.
const (
	// MaxSectionSize caps the bytes read for one section (.eh_frame,
	// .eh_frame_hdr, .debug_frame, decompressed). The largest real
	// sections are a few tens of MiB (a big C++ binary's .eh_frame).
	MaxSectionSize = 256 << 20

	// MaxFDEs caps the FDEs indexed per section when there is no
	// .eh_frame_hdr table: about 40 bytes each in memory.
	MaxFDEs = 4 << 20

	// MaxStateDepth caps the DW_CFA_remember_state stack. GCC nests at
	// most a few levels (one per shrink-wrapped region).
	MaxStateDepth = 64

	// MaxRows caps the rows [File.Rows] returns for one FDE. A CFA
	// program's length bounds everything else it does.
	MaxRows = 1 << 16

	// maxAugmentation caps a CIE's augmentation string.
	maxAugmentation = 64
)

// secKind tells the two flavours of call-frame section apart.
type secKind uint8

const (
	ehFrame    secKind = iota // .eh_frame: GCC/LSB flavour
	debugFrame                // .debug_frame: DWARF flavour
)

// section is one .eh_frame or .debug_frame, with what has been parsed of
// it. Parsing happens on demand, under mu.
type section struct {
	name  string
	kind  secKind
	data  []byte
	addr  uint64 // link-time address of data[0] (0 for .debug_frame)
	bases bases  // data (.got) and text bases for datarel and textrel pointers

	mu   sync.Mutex
	cies map[int]*cie // by offset; nil value: known bad
	fdes map[int]*fde // by offset

	indexOnce sync.Once
	index     []indexEntry // sorted by begin; FDEs covering no address left out
	indexErr  error        // first error met while indexing, if any
}

// cie is a parsed Common Information Entry.
type cie struct {
	off        int
	version    uint8
	aug        string
	codeAlign  uint64
	dataAlign  int64
	raReg      uint64
	fdeEnc     uint8 // augmentation R; DW_EH_PE_absptr without
	lsdaEnc    uint8 // augmentation L; DW_EH_PE_omit without
	hasAugData bool  // augmentation z: FDEs have augmentation data
	signal     bool  // augmentation S
	addrSize   int
	insns      []byte
	insnsOff   int
	init       regState // after the initial instructions
	err        error    // why it is unusable, or nil
}

// fde is a parsed Frame Description Entry.
type fde struct {
	off        int
	cie        *cie
	begin, end uint64 // link-time [begin, end)
	lsda       uint64
	insns      []byte
	insnsOff   int
}

// indexEntry locates an FDE by the addresses it covers.
type indexEntry struct {
	begin, end uint64
	off        int
}

// entry is the header of an entry (CIE or FDE) of a section.
type entry struct {
	off   int    // offset of the length field
	body  int    // offset after the CIE id / CIE pointer
	end   int    // offset of the next entry
	id    uint64 // CIE id or CIE pointer
	idPos int    // offset of the CIE id / CIE pointer
	isCIE bool
	zero  bool // a zero length: .eh_frame's terminator
	is64  bool // 64-bit DWARF format
}

// entryAt reads the header of the entry at off.
func (s *section) entryAt(off int) (entry, error) {
	c := newCursor(s.name, s.data, off, len(s.data), s.addr)
	e := entry{off: off}
	length := uint64(c.U32())
	if c.Err() != nil {
		return e, readerErr(&c.Reader)
	}
	if length == 0 {
		e.zero, e.end = true, c.pos()
		return e, nil
	}
	if length >= 0xfffffff0 {
		if length != 0xffffffff {
			return e, &FormatError{Off: int64(off), Msg: s.name + ": reserved initial length", Val: length}
		}
		e.is64 = true
		length = c.U64()
	}
	if c.Err() != nil {
		return e, readerErr(&c.Reader)
	}
	start := c.pos()
	if length > uint64(len(s.data)-start) {
		return e, &FormatError{Off: int64(off), Msg: s.name + ": entry longer than its section", Val: length}
	}
	e.end = start + int(length)
	c = newCursor(s.name, s.data, start, e.end, s.addr)
	e.idPos = start
	if e.is64 {
		e.id = c.U64()
	} else {
		e.id = uint64(c.U32())
	}
	if c.Err() != nil {
		return e, readerErr(&c.Reader)
	}
	e.body = c.pos()
	switch {
	case s.kind == ehFrame:
		e.isCIE = e.id == 0
	case e.is64:
		e.isCIE = e.id == ^uint64(0)
	default:
		e.isCIE = e.id == 0xffffffff
	}
	return e, nil
}

// cieOff returns the offset of the CIE of the FDE e.
func (s *section) cieOff(e entry) (int, error) {
	if s.kind == ehFrame {
		// A CIE pointer in .eh_frame counts back from its own field.
		if e.id > uint64(e.idPos) {
			return 0, &FormatError{Off: int64(e.idPos), Msg: s.name + ": CIE pointer before the section", Val: e.id}
		}
		return e.idPos - int(e.id), nil
	}
	if e.id >= uint64(len(s.data)) {
		return 0, &FormatError{Off: int64(e.idPos), Msg: s.name + ": CIE pointer past the section", Val: e.id}
	}
	return int(e.id), nil
}

// cieAt returns the CIE at off, parsing it once. s.mu must be held.
func (s *section) cieAt(off int) (*cie, error) {
	if c, ok := s.cies[off]; ok {
		return c, c.err
	}
	c := s.parseCIE(off)
	if s.cies == nil {
		s.cies = make(map[int]*cie)
	}
	s.cies[off] = c
	return c, c.err
}

// parseCIE parses the CIE at off. Reference: DWARF 5 §6.4.1 and LSB Core
// "The Common Information Entry Format".
func (s *section) parseCIE(off int) *cie {
	ci := &cie{off: off, fdeEnc: DW_EH_PE_absptr, lsdaEnc: DW_EH_PE_omit, addrSize: 8}
	fail := func(err error) *cie { ci.err = err; return ci }
	e, err := s.entryAt(off)
	if err != nil {
		return fail(err)
	}
	if e.zero || !e.isCIE {
		return fail(&FormatError{Off: int64(off), Msg: s.name + ": CIE pointer to an entry that is not a CIE"})
	}
	c := newCursor(s.name, s.data, e.body, e.end, s.addr)
	ci.version = c.U8()
	switch ci.version {
	case 1, 3:
	case 4:
		if s.kind == ehFrame {
			return fail(&FormatError{Off: int64(e.body), Msg: s.name + ": unsupported CIE version", Val: ci.version})
		}
	default:
		return fail(&FormatError{Off: int64(e.body), Msg: s.name + ": unsupported CIE version", Val: ci.version})
	}
	ci.aug = c.cstring(maxAugmentation)
	if strings.HasPrefix(ci.aug, "eh") {
		c.Skip(ci.addrSize) // the old GCC "eh" augmentation: a pointer to exception data
	}
	if ci.version == 4 {
		ci.addrSize = int(c.U8())
		if seg := c.U8(); seg != 0 {
			return fail(&FormatError{Off: int64(c.pos() - 1), Msg: s.name + ": segmented addresses are not supported", Val: seg})
		}
		if ci.addrSize != 4 && ci.addrSize != 8 && c.Err() == nil {
			return fail(&FormatError{Off: int64(c.pos() - 2), Msg: s.name + ": unsupported address size", Val: ci.addrSize})
		}
	}
	ci.codeAlign = c.ULEB128()
	ci.dataAlign = c.SLEB128()
	if ci.version == 1 {
		ci.raReg = uint64(c.U8())
	} else {
		ci.raReg = c.ULEB128()
	}
	if c.Err() != nil {
		return fail(readerErr(&c.Reader))
	}
	if ci.raReg >= NumRegs {
		return fail(&FormatError{Off: int64(c.pos() - 1), Msg: s.name + ": unsupported return address register", Val: ci.raReg})
	}
	aug := strings.TrimPrefix(ci.aug, "eh")
	if strings.HasPrefix(aug, "z") {
		ci.hasAugData = true
		n := c.ULEB128()
		if c.Err() == nil && n > uint64(c.Len()) {
			return fail(&FormatError{Off: int64(c.pos()), Msg: s.name + ": augmentation data longer than the CIE", Val: n})
		}
		end := c.pos() + int(n)
		ac := newCursor(s.name, s.data, c.pos(), end, s.addr)
		b := s.bases
	letters:
		for _, l := range aug[1:] {
			switch l {
			case 'L':
				ci.lsdaEnc = ac.U8()
			case 'R':
				ci.fdeEnc = ac.U8()
			case 'P':
				enc := ac.U8()
				ac.readEncoded(enc&^DW_EH_PE_indirect, &b) // the personality routine: not needed here
			case 'S':
				ci.signal = true
			case 'B', 'G':
				// AArch64 pointer authentication and memory tagging: no data.
			default:
				break letters // the augmentation data's length lets the rest be skipped
			}
		}
		if ac.Err() != nil {
			return fail(readerErr(&ac.Reader))
		}
		c.Skip(int(n))
	} else if aug != "" {
		return fail(&FormatError{Off: int64(e.body), Msg: s.name + ": unknown augmentation", Val: ci.aug})
	}
	if c.Err() != nil {
		return fail(readerErr(&c.Reader))
	}
	ci.insnsOff = c.pos()
	ci.insns = s.data[ci.insnsOff:e.end]
	m := machine{sec: s, cie: ci}
	if err := m.run(ci.insns, ci.insnsOff, math.MaxUint64, nil); err != nil {
		return fail(err)
	}
	ci.init = m.st
	return ci
}

// fdeAt returns the FDE at off, parsing it once. s.mu must be held.
func (s *section) fdeAt(off int) (*fde, error) {
	if f, ok := s.fdes[off]; ok {
		return f, nil
	}
	e, err := s.entryAt(off)
	if err != nil {
		return nil, err
	}
	if e.zero || e.isCIE {
		return nil, &FormatError{Off: int64(off), Msg: s.name + ": not an FDE"}
	}
	f, err := s.parseFDE(e)
	if err != nil {
		return nil, err
	}
	if s.fdes == nil {
		s.fdes = make(map[int]*fde)
	}
	s.fdes[off] = f
	return f, nil
}

// parseFDE parses the FDE whose header is e. s.mu must be held.
func (s *section) parseFDE(e entry) (*fde, error) {
	coff, err := s.cieOff(e)
	if err != nil {
		return nil, err
	}
	ci, err := s.cieAt(coff)
	if err != nil {
		return nil, err
	}
	f := &fde{off: e.off, cie: ci}
	c := newCursor(s.name, s.data, e.body, e.end, s.addr)
	b := s.bases
	b.addrSize = ci.addrSize
	var rng uint64
	if s.kind == ehFrame {
		var ind bool
		f.begin, ind = c.readEncoded(ci.fdeEnc, &b)
		if ind {
			return nil, &FormatError{Off: int64(e.body), Msg: s.name + ": indirect FDE address", Val: ci.fdeEnc}
		}
		rng = c.readRaw(ci.fdeEnc&0x0f, ci.addrSize)
	} else {
		f.begin = c.readRaw(DW_EH_PE_absptr, ci.addrSize)
		rng = c.readRaw(DW_EH_PE_absptr, ci.addrSize)
	}
	if ci.hasAugData {
		n := c.ULEB128()
		if c.Err() == nil && n > uint64(c.Len()) {
			return nil, &FormatError{Off: int64(c.pos()), Msg: s.name + ": augmentation data longer than the FDE", Val: n}
		}
		end := c.pos() + int(n)
		if ci.lsdaEnc != DW_EH_PE_omit && c.Err() == nil {
			ac := newCursor(s.name, s.data, c.pos(), end, s.addr)
			b.fn, b.hasFn = f.begin, true
			f.lsda, _ = ac.readEncoded(ci.lsdaEnc, &b)
			if ac.Err() != nil {
				return nil, readerErr(&ac.Reader)
			}
		}
		c.Skip(int(n))
	}
	if c.Err() != nil {
		return nil, readerErr(&c.Reader)
	}
	f.end = f.begin + rng
	if f.end < f.begin {
		return nil, &FormatError{Off: int64(e.off), Msg: s.name + ": FDE address range wraps", Val: rng}
	}
	f.insnsOff = c.pos()
	f.insns = s.data[f.insnsOff:e.end]
	return f, nil
}

// forEachFDE calls fn for every FDE of s, in section order, until fn
// returns false. It stops at the first entry whose header is unreadable;
// an FDE or CIE that is malformed is passed to fn as its error.
func (s *section) forEachFDE(fn func(f *fde, err error) bool) error {
	n := 0
	for off := 0; off < len(s.data); {
		e, err := s.entryAt(off)
		if err != nil {
			return err
		}
		if e.zero {
			if s.kind == ehFrame {
				return nil // the terminator
			}
			off = e.end
			continue
		}
		off = e.end
		if e.isCIE {
			continue
		}
		if n++; n > MaxFDEs {
			return fmt.Errorf("cfi: %s: more than %d FDEs: %w", s.name, MaxFDEs, ErrLimit)
		}
		s.mu.Lock()
		f, err := s.parseFDE(e)
		s.mu.Unlock()
		if !fn(f, err) {
			return ErrStopped
		}
	}
	return nil
}
