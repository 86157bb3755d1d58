package dwarfidx

import (
	"cmp"
	"debug/dwarf"
	"encoding/binary"
	"sort"
	"sync"
)

// This file decodes DIEs straight from the raw sections (DWARF5.pdf §7.5),
// for indexes made by NewSections. Unlike debug/dwarf.New, which parses
// every unit's header and abbreviation table before the first query, it
// reads a unit's abbreviations on the first query in that unit, so opening
// a large file costs only the unit headers and .debug_aranges.

// unitHdr is one unit header of .debug_info.
type unitHdr struct {
	start, end int    // offsets of the header and of the next unit
	first      int    // offset of the unit's first DIE
	version    int    // 2 to 5
	addrSize   int    // 4 or 8
	offSize    int    // 4, or 8 in the 64-bit DWARF format
	abbrevOff  uint64 // offset of the abbreviation table in .debug_abbrev
	cu         bool   // a compile or partial unit (not a type or skeleton unit)

	once       sync.Once // load: allocates and fills the unit's state
	*unitState           // nil until load
}

// unitState is what a unit's first use reads, apart from its header so
// that the headers of a file's thousands of units stay small.
type unitState struct {
	full  sync.Once // ready: the whole abbreviation table
	abbr  *abbrevTable
	attrs unitAttrs // from the unit's own DIE
	err   error
}

// unitAttrs are the unit DIE's attributes that the unit's other DIEs and
// its line table depend on.
type unitAttrs struct {
	lowPC      uint64 // base address of range lists; 0 when absent
	compDir    string
	stmtList   int64 // -1 when absent
	strOffBase uint64
	addrBase   uint64
	rngBase    uint64
	ranges     [][2]uint64 // the unit's own address ranges
}

// abbrevTable is one abbreviation table: declarations by code, in a slice
// when the codes are dense (as producers number them), else in a map.
//
// To read a unit's own DIE, which is all that indexing a unit that
// .debug_aranges does not cover takes, a table in scan mode finds the one
// declaration asked for and keeps nothing else; [decoder.ready] reads the
// whole table before the unit's other DIEs are read.
type abbrevTable struct {
	dense  []abbrev // code c at dense[c-1]
	sparse map[uint64]*abbrev
	attrs  []abbrevAttr // backing store of the declarations' attributes
	b      buf          // where reading resumes
	n      int          // declarations read
	done   bool         // the whole table is read
	scan   bool         // find declarations one at a time, keeping none
}

type abbrev struct {
	tag      dwarf.Tag
	children bool
	attrs    []abbrevAttr
}

type abbrevAttr struct {
	attr     dwarf.Attr
	form     uint64
	implicit int64 // DW_FORM_implicit_const's value
}

// get returns the declaration of code, reading the table further if it
// is not read to the end yet.
func (t *abbrevTable) get(code uint64) *abbrev {
	if t.scan {
		return t.find(code)
	}
	for {
		if code-1 < uint64(len(t.dense)) {
			return &t.dense[code-1]
		}
		if a := t.sparse[code]; a != nil || t.done {
			return a
		}
		t.next()
	}
}

// Limits on what one abbreviation table may hold, against hostile input.
const (
	maxAbbrevs     = 1 << 20
	maxAbbrevAttrs = 1 << 10
)

// Attribute forms (DWARF5.pdf §7.5.6, table 7.6) and the GNU extensions
// (GCC's DebugFission and dwz proposals), shared with the line table reader.
const (
	formAddr          = 0x01
	formBlock2        = 0x03
	formBlock4        = 0x04
	formData2         = 0x05
	formData4         = 0x06
	formData8         = 0x07
	formString        = 0x08
	formBlock         = 0x09
	formBlock1        = 0x0a
	formData1         = 0x0b
	formFlag          = 0x0c
	formSdata         = 0x0d
	formStrp          = 0x0e
	formUdata         = 0x0f
	formRefAddr       = 0x10
	formRef1          = 0x11
	formRef2          = 0x12
	formRef4          = 0x13
	formRef8          = 0x14
	formRefUdata      = 0x15
	formIndirect      = 0x16
	formSecOffset     = 0x17
	formExprloc       = 0x18
	formFlagPresent   = 0x19
	formStrx          = 0x1a
	formAddrx         = 0x1b
	formRefSup4       = 0x1c
	formStrpSup       = 0x1d
	formData16        = 0x1e
	formLineStrp      = 0x1f
	formRefSig8       = 0x20
	formImplicitConst = 0x21
	formLoclistx      = 0x22
	formRnglistx      = 0x23
	formRefSup8       = 0x24
	formStrx1         = 0x25
	formStrx2         = 0x26
	formStrx3         = 0x27
	formStrx4         = 0x28
	formAddrx1        = 0x29
	formAddrx2        = 0x2a
	formAddrx3        = 0x2b
	formAddrx4        = 0x2c
	formGNUAddrIndex  = 0x1f01
	formGNUStrIndex   = 0x1f02
	formGNURefAlt     = 0x1f20
	formGNUStrpAlt    = 0x1f21
)

// Attributes read here that debug/dwarf names differently or not at all.
const (
	attrStrOffsetsBase dwarf.Attr = 0x72
	attrAddrBase       dwarf.Attr = 0x73
	attrRnglistsBase   dwarf.Attr = 0x74
)

// class says how to interpret a decoded attribute value.
type class uint8

const (
	clsNone     class = iota // skipped: blocks, flags, signatures, other files
	clsConst                 // unsigned constant (data, udata, implicit_const)
	clsSConst                // signed constant (sdata)
	clsAddr                  // an address
	clsAddrx                 // an index into .debug_addr
	clsRef                   // a .debug_info offset
	clsString                // inline string: val is its offset in .debug_info, n its length
	clsStrp                  // offset in .debug_str
	clsLineStrp              // offset in .debug_line_str
	clsStrx                  // index into .debug_str_offsets
	clsSecOff                // offset in another section
	clsRnglistx              // index into the unit's range list offsets
)

// decoder reads DIEs from raw sections. It is safe for concurrent use: a
// unit's abbreviations and attributes are read once, under its sync.Once.
type decoder struct {
	s      *Sections
	order  binary.ByteOrder
	units  []*unitHdr // every unit, by offset
	walked bool       // units come from a walk of the whole section that found no error

	// dieRanges, when units come from a unit table, are the address
	// ranges of the units .debug_aranges does not list, by index in
	// units, as the walk that made the table read them from their DIEs.
	dieRanges map[int][][2]uint64
}

// newDecoder takes the unit headers of .debug_info from s.Units, when
// that is a unit table of s.Info, or else walks them. On a malformed
// header it keeps the units before it and returns the error.
func newDecoder(s *Sections, order binary.ByteOrder) (*decoder, error) {
	d := &decoder{s: s, order: order}
	if s.Units != nil {
		if units, ranges, ok := parseUnitTable(s.Units, len(s.Info), len(s.Abbrev)); ok {
			d.units, d.dieRanges = units, ranges
			return d, nil
		}
	}
	b := newBuf(".debug_info", order, s.Info, 0)
	// Headers are allocated in blocks: a file has thousands of units.
	var block []unitHdr
	for b.left() > 0 {
		start := b.pos
		next, dwarf64, err := b.unitEnd("unit")
		if err != nil {
			return d, err
		}
		if len(block) == cap(block) {
			block = make([]unitHdr, 0, 256)
		}
		block = block[:len(block)+1]
		u := &block[len(block)-1]
		u.start, u.end, u.offSize, u.cu = start, next, 4, false
		if dwarf64 {
			u.offSize = 8
		}
		u.version = int(b.u16())
		ok := true
		switch {
		case u.version >= 2 && u.version <= 4:
			u.abbrevOff = b.uint(u.offSize)
			u.addrSize = int(b.u8())
			u.cu = true
		case u.version == 5:
			typ := b.u8()
			u.addrSize = int(b.u8())
			u.abbrevOff = b.uint(u.offSize)
			switch typ {
			case 0x01, 0x03: // DW_UT_compile, DW_UT_partial
				u.cu = true
			case 0x04, 0x05: // DW_UT_skeleton, DW_UT_split_compile
				b.skip(8)
			case 0x02, 0x06: // DW_UT_type, DW_UT_split_type
				b.skip(8 + uint64(u.offSize))
			default:
				ok = false
			}
		default:
			ok = false
		}
		if b.err != nil {
			return d, b.err
		}
		u.first = b.pos
		if ok && u.first < next && (u.addrSize == 4 || u.addrSize == 8) {
			d.units = append(d.units, u)
		} else {
			block = block[:len(block)-1]
		}
		b.pos = next
	}
	d.walked = true
	return d, nil
}

// unitAt returns the unit that contains .debug_info offset off, or nil.
func (d *decoder) unitAt(off int) *unitHdr {
	i := sort.Search(len(d.units), func(i int) bool { return d.units[i].end > off })
	if i == len(d.units) || d.units[i].first > off {
		return nil
	}
	return d.units[i]
}

// load reads a unit's own DIE's attributes, once, and as much of its
// abbreviation table as that takes.
func (d *decoder) load(u *unitHdr) error {
	u.once.Do(func() {
		u.unitState = &unitState{}
		u.attrs.stmtList = -1
		if u.abbrevOff > uint64(len(d.s.Abbrev)) {
			u.err = &FormatError{Section: ".debug_abbrev", Off: int64(u.abbrevOff), Msg: "offset outside section", Val: u.abbrevOff}
			return
		}
		u.abbr = &abbrevTable{b: newBuf(".debug_abbrev", d.order, d.s.Abbrev, int(u.abbrevOff)), scan: true}
		var e entry
		b := newBuf(".debug_info", d.order, d.s.Info[:u.end], u.first)
		if !d.read(u, &b, &e, modeUnit) {
			u.err = cmp.Or(u.abbr.b.err, b.err)
			if u.err == nil {
				u.err = &FormatError{Section: ".debug_info", Off: int64(u.first), Msg: "missing unit entry"}
			}
			return
		}
		u.attrs.lowPC = e.lo
		u.attrs.compDir = e.compDir
		u.attrs.stmtList = e.stmtList
		if e.hasLo && e.hasHi {
			if e.lo < e.hi {
				u.attrs.ranges = [][2]uint64{{e.lo, e.hi}}
			}
		} else if e.rangesCls != clsNone {
			u.attrs.ranges, _ = d.ranges(u, &e)
		}
	})
	return u.err
}

// ready loads u and reads the rest of its abbreviation table, once, so
// that the table is read-only from then on and its DIEs can be read by
// many goroutines.
func (d *decoder) ready(u *unitHdr) error {
	if err := d.load(u); err != nil {
		return err
	}
	u.full.Do(func() {
		t := &abbrevTable{b: newBuf(".debug_abbrev", d.order, d.s.Abbrev, int(u.abbrevOff))}
		for !t.done {
			t.next()
		}
		u.abbr = t
	})
	return nil
}

// find returns the declaration of code, reading the table from its start
// and keeping only that declaration.
func (t *abbrevTable) find(code uint64) *abbrev {
	b := t.b // a copy: each search starts at the table's start
	for n := 0; n < maxAbbrevs; n++ {
		c := b.uleb()
		if c == 0 || b.err != nil {
			break
		}
		if c == code {
			t.attrs = t.attrs[:0]
			a := t.read(&b)
			return &a
		}
		b.uleb() // tag
		b.u8()   // children
		for {
			at, form := b.uleb(), b.uleb()
			if b.err != nil || (at == 0 && form == 0) {
				break
			}
			if form == formImplicitConst {
				b.sleb()
			}
		}
	}
	if b.err != nil {
		t.b.err = b.err
	}
	return nil
}

// read reads a declaration after its code: tag, children flag and
// attribute specifications, the latter into the table's backing store.
func (t *abbrevTable) read(b *buf) abbrev {
	a := abbrev{tag: dwarf.Tag(b.uleb()), children: b.u8() != 0}
	start := len(t.attrs)
	for {
		at, form := b.uleb(), b.uleb()
		if b.err != nil || (at == 0 && form == 0) {
			break
		}
		aa := abbrevAttr{attr: dwarf.Attr(at), form: form}
		if form == formImplicitConst {
			aa.implicit = b.sleb()
		}
		if len(t.attrs)-start == maxAbbrevAttrs {
			b.fail("too many attributes in an abbreviation", maxAbbrevAttrs)
			break
		}
		t.attrs = append(t.attrs, aa)
	}
	// A full slice expression: a later append to the store must not
	// write into this declaration's attributes.
	a.attrs = t.attrs[start:len(t.attrs):len(t.attrs)]
	return a
}

// next reads one more declaration of the table (DWARF5.pdf §7.5.3), or
// marks the table done at its end or at malformed input.
func (t *abbrevTable) next() {
	b := &t.b
	code := b.uleb()
	if code == 0 || b.err != nil {
		t.done = true
		return
	}
	if t.n == maxAbbrevs {
		b.fail("too many abbreviations", t.n)
		t.done = true
		return
	}
	t.n++
	a := t.read(b)
	if b.err != nil {
		t.done = true
		return
	}
	if code == uint64(len(t.dense))+1 && t.sparse == nil {
		t.dense = append(t.dense, a)
		return
	}
	if t.sparse == nil {
		// From here on declarations go to the map; the slice is no
		// longer appended to, so pointers into it stay valid.
		t.sparse = make(map[uint64]*abbrev, len(t.dense)+1)
		for i := range t.dense {
			t.sparse[uint64(i)+1] = &t.dense[i]
		}
		t.dense = nil
	}
	if _, dup := t.sparse[code]; !dup {
		t.sparse[code] = &a
	}
}

// entry is what the index needs from one DIE.
type entry struct {
	off      dwarf.Offset
	tag      dwarf.Tag // 0 for the null entry that ends a list of siblings
	children bool
	sibling  int // DW_AT_sibling as a .debug_info offset; 0 when absent

	names dieNames // for subprograms and inlined subroutines

	lo, hi       uint64
	hasLo, hasHi bool
	hiOff        bool // high_pc is an offset from low_pc
	rangesCls    class
	rangesVal    uint64

	callFile, callLine, callCol uint32

	// The unit DIE's own attributes.
	compDir  string
	stmtList int64
}

// What read takes from a DIE.
type readMode uint8

const (
	modeSkip  readMode = iota // structure only: tag, children, sibling
	modeWalk                  // and names, ranges and call positions of subroutines
	modeNames                 // and names, whatever the tag
	modeUnit                  // the unit DIE: and the unit's base attributes
)

// read decodes the DIE at b's position into e. It reports false at the
// end of the unit or on malformed input (b.err then says why). The unit
// DIE is read with modeUnit, which also takes the unit's base attributes
// before resolving the attributes that depend on them.
func (d *decoder) read(u *unitHdr, b *buf, e *entry, mode readMode) bool {
	unit := mode == modeUnit
	*e = entry{off: dwarf.Offset(b.pos), stmtList: -1}
	if b.left() == 0 {
		return false
	}
	code := b.uleb()
	if b.err != nil {
		return false
	}
	if code == 0 {
		return true
	}
	a := u.abbr.get(code)
	if a == nil {
		b.fail("unknown abbreviation code", code)
		return false
	}
	e.tag, e.children = a.tag, a.children
	names := mode == modeNames || mode == modeWalk && (a.tag == dwarf.TagSubprogram || a.tag == dwarf.TagInlinedSubroutine)
	// A unit DIE may give its string and address bases after the
	// attributes that use them; those are resolved at the end.
	var late [4]pending
	nlate := 0
	for i := range a.attrs {
		at := &a.attrs[i]
		cls, val, n := formValue(u, b, at.form, at.implicit)
		if b.err != nil {
			return false
		}
		switch at.attr {
		case dwarf.AttrSibling:
			if cls == clsRef {
				e.sibling = int(val)
			}
		case dwarf.AttrLowpc:
			e.lo, e.hasLo = val, cls == clsAddr
			if cls == clsAddrx {
				if unit {
					nlate = addLate(late[:], nlate, pending{at.attr, cls, val})
				} else {
					e.lo, e.hasLo = d.addrx(u, val)
				}
			}
		case dwarf.AttrHighpc:
			switch cls {
			case clsAddr:
				e.hi, e.hasHi = val, true
			case clsAddrx:
				if unit {
					nlate = addLate(late[:], nlate, pending{at.attr, cls, val})
				} else {
					e.hi, e.hasHi = d.addrx(u, val)
				}
			case clsConst, clsSConst:
				e.hi, e.hasHi, e.hiOff = val, true, true
			}
		case dwarf.AttrRanges:
			if cls == clsSecOff || cls == clsConst || cls == clsRnglistx {
				e.rangesCls, e.rangesVal = cls, val
			}
		case dwarf.AttrName, dwarf.AttrLinkageName, attrMIPSLinkageName, dwarf.AttrCompDir:
			if at.attr == dwarf.AttrCompDir && !unit || at.attr != dwarf.AttrCompDir && !names {
				continue
			}
			if unit && cls == clsStrx {
				nlate = addLate(late[:], nlate, pending{at.attr, cls, val})
				continue
			}
			d.setString(u, e, at.attr, cls, val, n)
		case dwarf.AttrAbstractOrigin:
			if names && cls == clsRef {
				e.names.origin = dwarf.Offset(val)
			}
		case dwarf.AttrSpecification:
			if names && cls == clsRef {
				e.names.spec = dwarf.Offset(val)
			}
		case dwarf.AttrCallFile:
			e.callFile = constU32(cls, val)
		case dwarf.AttrCallLine:
			e.callLine = constU32(cls, val)
		case dwarf.AttrCallColumn:
			e.callCol = constU32(cls, val)
		case dwarf.AttrStmtList:
			if unit && (cls == clsSecOff || cls == clsConst) && val < 1<<62 {
				e.stmtList = int64(val)
			}
		case attrStrOffsetsBase:
			if unit {
				u.attrs.strOffBase = val
			}
		case attrAddrBase:
			if unit {
				u.attrs.addrBase = val
			}
		case attrRnglistsBase:
			if unit {
				u.attrs.rngBase = val
			}
		}
	}
	for _, p := range late[:nlate] {
		switch p.attr {
		case dwarf.AttrLowpc:
			e.lo, e.hasLo = d.addrx(u, p.val)
		case dwarf.AttrHighpc:
			e.hi, e.hasHi = d.addrx(u, p.val)
		default:
			d.setString(u, e, p.attr, p.cls, p.val, 0)
		}
	}
	if e.hiOff && e.hasLo {
		e.hi += e.lo
		if e.hi < e.lo {
			e.hasHi = false
		}
	}
	e.names.valid = true
	return true
}

// pending is an attribute of a unit DIE resolved after the others.
type pending struct {
	attr dwarf.Attr
	cls  class
	val  uint64
}

// addLate appends p to late[:n] unless it is full (a unit DIE has three
// such attributes at most; more are repeats, which are dropped) and
// returns the new count.
func addLate(late []pending, n int, p pending) int {
	if n == len(late) {
		return n
	}
	late[n] = p
	return n + 1
}

// setString stores a string attribute: the first linkage name, the last
// name (as debug/dwarf's Entry.Val finds them) and the compilation
// directory.
func (d *decoder) setString(u *unitHdr, e *entry, at dwarf.Attr, cls class, val uint64, n int) {
	var s string
	var ok bool
	switch cls {
	case clsString:
		s, ok = string(d.s.Info[val:val+uint64(n)]), true
	case clsStrp:
		s, ok = cstrOK(d.s.Str, val)
	case clsLineStrp:
		s, ok = cstrOK(d.s.LineStr, val)
	case clsStrx:
		var off uint64
		if off, ok = d.indexed(d.s.StrOffsets, u.attrs.strOffBase, val, u.offSize); ok {
			s, ok = cstrOK(d.s.Str, off)
		}
	}
	if !ok {
		return
	}
	switch at {
	case dwarf.AttrName:
		e.names.name, e.names.hasName = s, true
	case dwarf.AttrLinkageName, attrMIPSLinkageName:
		if !e.names.hasLinkage {
			e.names.linkage, e.names.hasLinkage = s, true
		}
	case dwarf.AttrCompDir:
		e.compDir = s
	}
}

func cstrOK(sec []byte, off uint64) (string, bool) {
	if off >= uint64(len(sec)) {
		return "", false
	}
	for i := off; i < uint64(len(sec)); i++ {
		if sec[i] == 0 {
			return string(sec[off:i]), true
		}
	}
	return "", false
}

func constU32(cls class, v uint64) uint32 {
	if (cls == clsConst || cls == clsSConst) && v < 1<<32 {
		return uint32(v)
	}
	return 0
}

// indexed reads entry i of an offsets table at base in sec (the string
// offsets or the range list offsets of DWARF 5).
func (d *decoder) indexed(sec []byte, base, i uint64, size int) (uint64, bool) {
	if i > uint64(len(sec)) {
		return 0, false
	}
	p := base + i*uint64(size)
	if p < base || p+uint64(size) > uint64(len(sec)) {
		return 0, false
	}
	if size == 8 {
		return d.order.Uint64(sec[p:]), true
	}
	return uint64(d.order.Uint32(sec[p:])), true
}

// addrx reads entry i of the unit's .debug_addr table.
func (d *decoder) addrx(u *unitHdr, i uint64) (uint64, bool) {
	return d.indexed(d.s.Addr, u.attrs.addrBase, i, u.addrSize)
}

// formValue decodes one attribute value of the given form, in unit u
// (its sizes, version and start). For strings held inline it returns
// their offset in b and their length; references are returned as
// .debug_info offsets. The DWARF 5 line table header's entries use it
// too, with a unit of their own sizes.
func formValue(u *unitHdr, b *buf, form uint64, implicit int64) (cls class, v uint64, n int) {
	for hops := 0; form == formIndirect; hops++ {
		if hops == 8 {
			b.fail("indirect form loop", nil)
			return clsNone, 0, 0
		}
		form = b.uleb()
	}
	switch form {
	case formAddr:
		return clsAddr, b.uint(u.addrSize), 0
	case formAddrx, formGNUAddrIndex:
		return clsAddrx, b.uleb(), 0
	case formAddrx1:
		return clsAddrx, uint64(b.u8()), 0
	case formAddrx2:
		return clsAddrx, uint64(b.u16()), 0
	case formAddrx3:
		return clsAddrx, b.u24(), 0
	case formAddrx4:
		return clsAddrx, uint64(b.u32()), 0
	case formData1:
		return clsConst, uint64(b.u8()), 0
	case formData2:
		return clsConst, uint64(b.u16()), 0
	case formData4:
		return clsConst, uint64(b.u32()), 0
	case formData8:
		return clsConst, b.u64(), 0
	case formData16:
		b.skip(16)
	case formUdata:
		return clsConst, b.uleb(), 0
	case formSdata:
		return clsSConst, uint64(b.sleb()), 0
	case formImplicitConst:
		return clsSConst, uint64(implicit), 0
	case formFlag:
		b.skip(1)
	case formFlagPresent:
	case formBlock1:
		b.skip(uint64(b.u8()))
	case formBlock2:
		b.skip(uint64(b.u16()))
	case formBlock4:
		b.skip(uint64(b.u32()))
	case formBlock, formExprloc:
		b.skip(b.uleb())
	case formString:
		start := b.pos
		for b.pos < len(b.data) && b.data[b.pos] != 0 {
			b.pos++
		}
		if b.pos == len(b.data) {
			b.fail("unterminated string", nil)
			return clsNone, 0, 0
		}
		b.pos++
		return clsString, uint64(start), b.pos - 1 - start
	case formStrp:
		return clsStrp, b.uint(u.offSize), 0
	case formLineStrp:
		return clsLineStrp, b.uint(u.offSize), 0
	case formStrx, formGNUStrIndex:
		return clsStrx, b.uleb(), 0
	case formStrx1:
		return clsStrx, uint64(b.u8()), 0
	case formStrx2:
		return clsStrx, uint64(b.u16()), 0
	case formStrx3:
		return clsStrx, b.u24(), 0
	case formStrx4:
		return clsStrx, uint64(b.u32()), 0
	case formStrpSup, formGNUStrpAlt, formGNURefAlt:
		b.skip(uint64(u.offSize))
	case formRefAddr:
		size := u.offSize
		if u.version == 2 {
			size = u.addrSize
		}
		return clsRef, b.uint(size), 0
	case formRef1:
		return clsRef, uint64(u.start) + uint64(b.u8()), 0
	case formRef2:
		return clsRef, uint64(u.start) + uint64(b.u16()), 0
	case formRef4:
		return clsRef, uint64(u.start) + uint64(b.u32()), 0
	case formRef8:
		return clsRef, uint64(u.start) + b.u64(), 0
	case formRefUdata:
		return clsRef, uint64(u.start) + b.uleb(), 0
	case formRefSig8, formRefSup8:
		b.skip(8)
	case formRefSup4:
		b.skip(4)
	case formSecOffset:
		return clsSecOff, b.uint(u.offSize), 0
	case formLoclistx:
		b.uleb()
	case formRnglistx:
		return clsRnglistx, b.uleb(), 0
	default:
		b.fail("unknown attribute form", form)
	}
	return clsNone, 0, 0
}

// ranges decodes the DW_AT_ranges of e, a DIE of unit u, from
// .debug_ranges (DWARF 2 to 4, §2.17.3 of version 4) or .debug_rnglists
// (DWARF 5, §2.17.3), with the unit's low_pc as the base address.
func (d *decoder) ranges(u *unitHdr, e *entry) ([][2]uint64, error) {
	base := u.attrs.lowPC
	var out [][2]uint64
	if u.version < 5 {
		b := newBuf(".debug_ranges", d.order, d.s.Ranges, 0)
		if e.rangesVal > uint64(len(d.s.Ranges)) {
			b.fail("offset outside section", e.rangesVal)
			return nil, b.err
		}
		b.pos = int(e.rangesVal)
		maxAddr := ^uint64(0) >> (64 - 8*uint(u.addrSize))
		for b.left() > 0 {
			lo, hi := b.uint(u.addrSize), b.uint(u.addrSize)
			switch {
			case b.err != nil:
			case lo == 0 && hi == 0:
				return out, nil
			case lo == maxAddr:
				base = hi
			default:
				out = append(out, [2]uint64{base + lo, base + hi})
			}
		}
		return out, b.err
	}
	off := e.rangesVal
	if e.rangesCls == clsRnglistx {
		rel, ok := d.indexed(d.s.RngLists, u.attrs.rngBase, e.rangesVal, u.offSize)
		if !ok {
			return nil, &FormatError{Section: ".debug_rnglists", Off: int64(u.attrs.rngBase), Msg: "range list index outside section", Val: e.rangesVal}
		}
		off = u.attrs.rngBase + rel
	}
	b := newBuf(".debug_rnglists", d.order, d.s.RngLists, 0)
	if off > uint64(len(d.s.RngLists)) {
		b.fail("offset outside section", off)
		return nil, b.err
	}
	b.pos = int(off)
	addr := func(i uint64) uint64 {
		a, ok := d.addrx(u, i)
		if !ok {
			b.fail("address index outside .debug_addr", i)
		}
		return a
	}
	for b.left() > 0 {
		switch kind := b.u8(); kind {
		case 0x00: // DW_RLE_end_of_list
			return out, nil
		case 0x01: // DW_RLE_base_addressx
			base = addr(b.uleb())
		case 0x02: // DW_RLE_startx_endx
			lo := addr(b.uleb())
			hi := addr(b.uleb())
			out = append(out, [2]uint64{lo, hi})
		case 0x03: // DW_RLE_startx_length
			lo := addr(b.uleb())
			out = append(out, [2]uint64{lo, lo + b.uleb()})
		case 0x04: // DW_RLE_offset_pair
			lo, hi := b.uleb(), b.uleb()
			out = append(out, [2]uint64{base + lo, base + hi})
		case 0x05: // DW_RLE_base_address
			base = b.uint(u.addrSize)
		case 0x06: // DW_RLE_start_end
			lo, hi := b.uint(u.addrSize), b.uint(u.addrSize)
			out = append(out, [2]uint64{lo, hi})
		case 0x07: // DW_RLE_start_length
			lo := b.uint(u.addrSize)
			out = append(out, [2]uint64{lo, lo + b.uleb()})
		default:
			b.fail("unknown range list entry", kind)
		}
	}
	if b.err != nil {
		return nil, b.err
	}
	return out, nil
}

// skipChildren moves b past the children of e, which b has just read:
// to its DW_AT_sibling where it has one inside the unit, else by reading
// the subtree. depth bounds the nesting it follows.
func (d *decoder) skipChildren(u *unitHdr, b *buf, e *entry) {
	if !e.children {
		return
	}
	if e.sibling > b.pos && e.sibling < u.end {
		b.pos = e.sibling
		return
	}
	var c entry
	for depth := 1; depth > 0; {
		if !d.read(u, b, &c, modeSkip) {
			return
		}
		switch {
		case c.tag == 0:
			depth--
		case c.children:
			if c.sibling > b.pos && c.sibling < u.end {
				b.pos = c.sibling
			} else if depth++; depth > maxDepth {
				b.fail("DIEs nested too deep", depth)
				return
			}
		}
	}
}

// namesAt reads the names of the DIE at .debug_info offset off.
func (d *decoder) namesAt(off dwarf.Offset) dieNames {
	u := d.unitAt(int(off))
	if u == nil || d.ready(u) != nil {
		return dieNames{}
	}
	b := newBuf(".debug_info", d.order, d.s.Info[:u.end], int(off))
	var e entry
	if !d.read(u, &b, &e, modeNames) || e.tag == 0 {
		return dieNames{}
	}
	return e.names
}
