package dwarfidx

import (
	"cmp"
	"context"
	"debug/dwarf"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/fntable/fntable/symfile"
)

// These are the errors returned by this package.
var (
	// ErrMalformed matches every error about malformed DWARF.
	ErrMalformed = errors.New("malformed dwarf")
)

// FormatError describes malformed DWARF: which section, where, what was
// wrong and the offending value. It wraps [ErrMalformed].
type FormatError struct {
	Section string // section name, such as ".debug_line"
	Off     int64  // offset in the section
	Msg     string // what was being read or which rule failed
	Val     any    // the offending value, or nil
}

func (e *FormatError) Error() string {
	s := "read " + e.Section + " at " + fmt.Sprintf("%#x", e.Off) + ": " + e.Msg
	if e.Val != nil {
		s += fmt.Sprintf(" %#x", e.Val)
	}
	return s
}

// Unwrap returns [ErrMalformed].
func (e *FormatError) Unwrap() error { return ErrMalformed }

// Sections holds a file's raw DWARF sections, decompressed and, for
// relocatable files, relocated. Only Info and Abbrev are required.
type Sections struct {
	Order      binary.ByteOrder // byte order of the file; nil means little-endian
	Info       []byte           // .debug_info
	Abbrev     []byte           // .debug_abbrev
	Line       []byte           // .debug_line
	Str        []byte           // .debug_str
	LineStr    []byte           // .debug_line_str (DWARF 5)
	StrOffsets []byte           // .debug_str_offsets (DWARF 5)
	Addr       []byte           // .debug_addr (DWARF 5)
	Ranges     []byte           // .debug_ranges (DWARF 2 to 4)
	RngLists   []byte           // .debug_rnglists (DWARF 5)
	Aranges    []byte           // .debug_aranges

	// Units, optional, is the unit table an earlier Index of the same
	// Info gave (Index.UnitTable): with it, NewSections does not walk
	// every unit header of Info, most of what opening a large file
	// costs in a new process. A table that does not fit Info is ignored.
	// Keep it with Info, under the same key (a build ID): a table of
	// another Info of the same length gives wrong answers, not errors.
	Units []byte
}

// Index answers address queries over one file's DWARF. It is safe for
// concurrent use.
type Index struct {
	d    *dwarf.Data // nil when built by NewSections
	dec  *decoder    // nil when built by New
	opts symfile.Options
	ls   *lineSections // nil when built by New: line tables then come from debug/dwarf

	units   []*unit                // by New, in the order of the units
	lazy    []atomic.Pointer[unit] // by NewSections, by header: made on first use; those before lazyEnd are indexed
	cus     []span                 // address → unit (in units, or header in lazy), sorted and disjoint
	lazyEnd int                    // the first header not indexed (a malformed unit ends the index)

	// For UnitTable: the ranges found in the DIEs of the units that
	// .debug_aranges does not list, and whether indexUnits ended well.
	dieRanges []dieRange
	indexed   bool

	// names caches resolved subprogram names by DIE offset, across units
	// (an abstract origin or specification may be in another unit).
	mu    sync.Mutex
	names map[dwarf.Offset]dieNames
}

// UnitTable returns the table of Info's unit headers that NewSections
// found by walking them, with the address ranges it read from the DIEs
// of the units .debug_aranges does not list, for Sections.Units the next
// time the same sections are opened; nil when the index was not made by
// NewSections, took its units from Sections.Units, or found a malformed
// header or DIE.
func (x *Index) UnitTable() []byte {
	if x.dec == nil || !x.dec.walked || !x.indexed {
		return nil
	}
	return appendUnitTable(nil, len(x.dec.s.Info), x.dec.units, x.dieRanges)
}

// unit is one compilation unit, its DIEs parsed on first use.
type unit struct {
	off      dwarf.Offset // offset of the unit's DIE
	hdr      *unitHdr     // the unit's header, for NewSections, whose attributes replace the next three
	compDir  string
	stmtList int64 // offset of the line table; -1 when absent
	addrSize int

	once sync.Once
	cu   *cuData
	err  error
}

// span maps [lo, hi) to an index (of a unit, or of a node in a unit).
type span struct {
	lo, hi uint64
	idx    int32
}

// findSpan returns the span containing pc.
func findSpan(spans []span, pc uint64) (span, bool) {
	i := sort.Search(len(spans), func(i int) bool { return spans[i].hi > pc })
	if i == len(spans) || spans[i].lo > pc {
		return span{}, false
	}
	return spans[i], true
}

// span returns the span of the unit containing pc.
func (cu *cuData) span(pc uint64) (span, bool) {
	i := cu.index.last(0, len(cu.spans), pc)
	if i < 0 || cu.spans[i].hi <= pc {
		return span{}, false
	}
	return cu.spans[i], true
}

// New indexes d. It reads only the compilation units' own DIEs; a unit's
// other DIEs and its line table are read on the first query that needs
// them. File names come from debug/dwarf's line reader, which cleans
// paths ("a/../b" becomes "b"); [NewSections] reads line tables itself and
// keeps the paths as the file records them, as llvm-symbolizer prints
// them.
func New(d *dwarf.Data, opts symfile.Options) (*Index, error) {
	x := &Index{d: d, opts: opts, names: map[dwarf.Offset]dieNames{}}
	err := x.indexUnits(nil)
	return x, err
}

// NewSections is [New] for a file whose raw sections are at hand: it
// decodes DIEs and line tables itself, which keeps file paths exactly as
// llvm-symbolizer prints them, and reads only the unit headers and
// .debug_aranges up front: a unit's abbreviations and DIEs are read on
// the first query in it (units that .debug_aranges does not cover have
// their own DIE read here, for its ranges).
func NewSections(s *Sections, opts symfile.Options) (x *Index, err error) {
	defer recoverError(&err, "index dwarf")
	order := s.Order
	if order == nil {
		order = binary.LittleEndian
	}
	x = &Index{opts: opts, names: map[dwarf.Offset]dieNames{},
		ls: &lineSections{order: order, line: s.Line, str: s.Str, lineStr: s.LineStr}}
	err = x.indexUnits(s)
	return x, err
}

// recoverError turns a panic inside debug/dwarf, which some malformed
// inputs cause, into an error.
func recoverError(err *error, op string) {
	if r := recover(); r != nil {
		*err = &FormatError{Section: ".debug_info", Msg: fmt.Sprintf("%s: decoder panic: %v", op, r)}
	}
}

// indexUnits finds every compilation unit and the addresses it covers.
// With raw sections it walks the unit headers and reads each unit's own
// DIE; otherwise it walks the top-level DIEs, skipping children by their
// DW_AT_sibling where the producer emitted one.
func (x *Index) indexUnits(s *Sections) (err error) {
	defer recoverError(&err, "index units")
	ctx := x.opts.Context
	if ctx == nil {
		ctx = context.Background()
	}
	var ranges []rangeOf
	// add indexes a unit found through debug/dwarf by its DIE's ranges.
	add := func(e *dwarf.Entry, r *dwarf.Reader) {
		u := unit{off: e.Offset, stmtList: -1, addrSize: r.AddressSize()}
		u.compDir, _ = e.Val(dwarf.AttrCompDir).(string)
		if v, ok := e.Val(dwarf.AttrStmtList).(int64); ok {
			u.stmtList = v
		}
		rs, rerr := x.d.Ranges(e)
		if rerr == nil {
			for _, rg := range rs {
				if rg[0] < rg[1] {
					ranges = append(ranges, rangeOf{rg[0], rg[1], int32(len(x.units))})
				}
			}
		}
		x.units = append(x.units, &u)
	}
	if s != nil {
		order := s.Order
		if order == nil {
			order = binary.LittleEndian
		}
		dec, herr := newDecoder(s, order)
		x.dec = dec
		// The units' ranges from .debug_aranges; as in LLVM's
		// DWARFDebugAranges, a unit that has none there is indexed by
		// its DIE's ranges. A range's index is its unit header's. The
		// capacity is an upper bound (a tuple takes at least 8 bytes of
		// the section, and few units lack aranges): what is not used
		// is never touched.
		ranges = make([]rangeOf, 0, len(s.Aranges)/8+len(dec.units)/8+16)
		has := make([]bool, len(dec.units))
		eachArange(s, func(unit int, lo, hi uint64) {
			i, ok := slices.BinarySearchFunc(dec.units, unit, func(h *unitHdr, off int) int { return cmp.Compare(h.start, off) })
			if ok && dec.units[i].cu {
				ranges = append(ranges, rangeOf{lo, hi, int32(i)})
				has[i] = true
			}
		})
		stop := len(dec.units) // the first unit not indexed
		total := int64(len(s.Info))
		for i, h := range dec.units {
			if i%64 == 0 {
				if err := ctx.Err(); err != nil {
					return fmt.Errorf("%w: %w", symfile.ErrCanceled, err)
				}
				if x.opts.Progress != nil && !x.opts.Progress(int64(h.start), total) {
					return symfile.ErrCanceled
				}
			}
			if !h.cu || has[i] {
				continue
			}
			idx := int32(i)
			if dec.dieRanges != nil {
				// From the unit table: the ranges a walk found in the
				// unit's DIE, without reading it.
				for _, rg := range dec.dieRanges[i] {
					ranges = append(ranges, rangeOf{rg[0], rg[1], idx})
				}
				continue
			}
			if err := dec.load(h); err != nil {
				herr = cmp.Or(herr, err)
				stop = i
				break
			}
			for _, rg := range h.attrs.ranges {
				if rg[0] < rg[1] {
					ranges = append(ranges, rangeOf{rg[0], rg[1], idx})
					x.dieRanges = append(x.dieRanges, dieRange{int32(i), rg[0], rg[1]})
				}
			}
		}
		// Units are made on first use (unitAt): a large file has
		// thousands, and a lookup needs a few.
		x.lazy = make([]atomic.Pointer[unit], len(dec.units))
		x.lazyEnd = stop
		if herr != nil {
			// What was indexed before the malformed unit answers.
			ranges = slices.DeleteFunc(ranges, func(r rangeOf) bool { return int(r.idx) >= stop })
			x.cus = segmentOwned(ranges, false)
			return fmt.Errorf("index dwarf units: %w", herr)
		}
		x.indexed = true
		x.cus = segmentOwned(ranges, false)
		if x.opts.Progress != nil && !x.opts.Progress(total, total) {
			return symfile.ErrCanceled
		}
		return nil
	} else {
		r := x.d.Reader()
		for n := 0; ; n++ {
			if n%64 == 0 {
				if err := ctx.Err(); err != nil {
					return fmt.Errorf("%w: %w", symfile.ErrCanceled, err)
				}
			}
			e, err := r.Next()
			if err != nil {
				x.cus = segment(ranges, false)
				return fmt.Errorf("index dwarf units: %w", err)
			}
			if e == nil {
				break
			}
			if e.Tag == dwarf.TagCompileUnit || e.Tag == dwarf.TagPartialUnit {
				add(e, r)
			}
			if e.Children {
				r.SkipChildren()
			}
		}
	}
	x.cus = segment(ranges, false)
	return nil
}

// eachArange calls f for each non-empty range of .debug_aranges
// (DWARF5.pdf §6.1.2), with the offset of its unit's header in
// .debug_info, in the order of the section. It stops at the first
// malformed set.
func eachArange(s *Sections, f func(unit int, lo, hi uint64)) {
	if len(s.Aranges) == 0 {
		return
	}
	order := s.Order
	if order == nil {
		order = binary.LittleEndian
	}
	b := newBuf(".debug_aranges", order, s.Aranges, 0)
	for b.left() > 0 {
		length, dwarf64 := b.unitLength()
		if b.err != nil || length > uint64(b.left()) {
			break
		}
		start, next := b.pos, b.pos+int(length)
		if b.u16() != 2 { // version
			b.pos = next
			continue
		}
		var info uint64
		if dwarf64 {
			info = b.u64()
		} else {
			info = uint64(b.u32())
		}
		addrSize, segSize := int(b.u8()), int(b.u8())
		if (addrSize != 4 && addrSize != 8) || segSize != 0 || info > uint64(len(s.Info)) {
			b.pos = next
			continue
		}
		// Tuples start at a multiple of their size from the set's start.
		hdr := b.pos - (start - 4)
		if dwarf64 {
			hdr = b.pos - (start - 12)
		}
		if t := 2 * addrSize; hdr%t != 0 {
			b.skip(uint64(t - hdr%t))
		}
		for b.err == nil && b.pos+2*addrSize <= next {
			lo, n := b.uint(addrSize), b.uint(addrSize)
			if lo == 0 && n == 0 {
				break
			}
			if n > 0 && lo+n > lo {
				f(int(info), lo, lo+n)
			}
		}
		if b.err != nil {
			break
		}
		b.pos = next
	}
}

// rangeOf is an address range owned by the item of index idx, whose
// order decides between overlapping ranges (see segment).
type rangeOf = span

// segment turns possibly overlapping ranges into sorted disjoint spans.
// Where ranges overlap, the one with the highest order wins when last is
// true (a DIE later in pre-order, as LLVM's AddrDieMap ends up), and the
// lowest when it is false (the unit with the lowest offset, as LLVM's
// DWARFDebugAranges chooses).
func segment(rs []rangeOf, last bool) []span {
	return segmentTo(nil, rs, last)
}

// segmentOwned is segment for ranges the caller no longer needs: when
// they are disjoint, the spans are made in their memory, as indexUnits
// does for the thousands of ranges of a large file, whose pages a new
// process would otherwise touch twice.
func segmentOwned(rs []rangeOf, last bool) []span {
	return segmentTo(rs[:0], rs, last)
}

// segmentTo is segment; in the disjoint case it appends to out, which
// may share rs's memory as long as it starts at or before rs[0] (each
// span is written at or before the range it comes from).
func segmentTo(out []span, rs []rangeOf, last bool) []span {
	if len(rs) == 0 {
		return nil
	}
	slices.SortFunc(rs, func(a, b rangeOf) int { return cmp.Compare(a.lo, b.lo) })
	// Fast path: already disjoint.
	disjoint := true
	for i := 1; i < len(rs); i++ {
		if rs[i].lo < rs[i-1].hi {
			disjoint = false
			break
		}
	}
	if disjoint {
		if out == nil {
			out = make([]span, 0, len(rs))
		}
		for _, r := range rs {
			out = appendSpan(out, r)
		}
		return out
	}
	out = make([]span, 0, len(rs))
	bounds := make([]uint64, 0, 2*len(rs))
	for _, r := range rs {
		bounds = append(bounds, r.lo, r.hi)
	}
	slices.Sort(bounds)
	bounds = slices.Compact(bounds)
	better := func(a, b int32) bool {
		if last {
			return a > b
		}
		return a < b
	}
	var h ordHeap
	h.better = better
	j := 0
	for i := 0; i+1 < len(bounds); i++ {
		lo, hi := bounds[i], bounds[i+1]
		for j < len(rs) && rs[j].lo <= lo {
			h.push(rs[j])
			j++
		}
		for len(h.items) > 0 && h.items[0].hi <= lo {
			h.pop()
		}
		if len(h.items) > 0 {
			out = appendSpan(out, span{lo, hi, h.items[0].idx})
		}
	}
	return out
}

// appendSpan appends s, merging it with the last span when they touch and
// map to the same index.
func appendSpan(out []span, s span) []span {
	if n := len(out); n > 0 && out[n-1].hi == s.lo && out[n-1].idx == s.idx {
		out[n-1].hi = s.hi
		return out
	}
	return append(out, s)
}

// ordHeap is a binary heap of ranges, best order on top.
type ordHeap struct {
	items  []rangeOf
	better func(a, b int32) bool
}

func (h *ordHeap) push(r rangeOf) {
	h.items = append(h.items, r)
	i := len(h.items) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h.better(h.items[i].idx, h.items[p].idx) {
			break
		}
		h.items[i], h.items[p] = h.items[p], h.items[i]
		i = p
	}
}

func (h *ordHeap) pop() {
	n := len(h.items) - 1
	h.items[0] = h.items[n]
	h.items = h.items[:n]
	i := 0
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && h.better(h.items[l].idx, h.items[m].idx) {
			m = l
		}
		if r < n && h.better(h.items[r].idx, h.items[m].idx) {
			m = r
		}
		if m == i {
			return
		}
		h.items[i], h.items[m] = h.items[m], h.items[i]
		i = m
	}
}

// unitFor returns the parsed unit covering pc, or nil.
func (x *Index) unitFor(pc uint64) (*cuData, error) {
	s, ok := findSpan(x.cus, pc)
	if !ok {
		return nil, nil
	}
	return x.load(int(s.idx))
}

func (x *Index) load(i int) (*cuData, error) {
	u := x.unitAt(i)
	u.once.Do(func() { u.cu, u.err = x.parseUnit(u) })
	return u.cu, u.err
}

// unitAt returns unit i: of x.units, or for an index made by NewSections
// the unit of header i, made on first use.
func (x *Index) unitAt(i int) *unit {
	if x.lazy == nil {
		return x.units[i]
	}
	p := &x.lazy[i]
	if u := p.Load(); u != nil {
		return u
	}
	h := x.dec.units[i]
	u := &unit{off: dwarf.Offset(h.first), hdr: h, stmtList: -1}
	if p.CompareAndSwap(nil, u) {
		return u
	}
	return p.Load()
}

// Frames appends to dst the frames at addr: the innermost inlined call
// first, ending with the subprogram that contains addr, in the order
// llvm-symbolizer --inlines prints them. The innermost frame's position
// comes from the line table; each outer frame's from the DW_AT_call_file,
// DW_AT_call_line and DW_AT_call_column of the inlined subroutine it calls.
// An address that is in a unit's ranges but in no subprogram gets one frame
// with the line table's position and no function name, as llvm-symbolizer
// gives it. Without Options.Lines only the containing subprogram's name is
// returned. When the DWARF says nothing about addr, Frames returns dst
// unchanged and a nil error.
func (x *Index) Frames(dst []symfile.Frame, addr uint64) (_ []symfile.Frame, err error) {
	cu, err := x.unitFor(addr)
	if cu == nil {
		return dst, err
	}
	// A unit parsed in part answers for what it has; its error is
	// returned only when that is nothing.
	s, ok := cu.span(addr)
	if !ok {
		if x.opts.Lines && cu.lines != nil {
			if r, ok := cu.lines.lookup(addr); ok {
				return append(dst, symfile.Frame{File: cu.lines.file(uint64(r.file)), Line: int(r.line), Column: int(r.col)}), nil
			}
		}
		return dst, err
	}
	n := &cu.nodes[s.idx]
	if !x.opts.Lines {
		for n.parent >= 0 && !n.subprogram {
			n = &cu.nodes[n.parent]
		}
		return append(dst, symfile.Frame{Function: n.name}), nil
	}
	f := symfile.Frame{Function: n.name}
	if cu.lines != nil {
		if r, ok := cu.lines.lookup(addr); ok {
			f.File = cu.lines.file(uint64(r.file))
			f.Line = int(r.line)
			f.Column = int(r.col)
		}
	}
	dst = append(dst, f)
	for !n.subprogram && n.parent >= 0 {
		p := &cu.nodes[n.parent]
		f := symfile.Frame{Function: p.name, Line: int(n.callLine), Column: int(n.callCol)}
		if cu.lines != nil {
			f.File = cu.lines.file(uint64(n.callFile))
		}
		dst = append(dst, f)
		n = p
	}
	return dst, nil
}

// Functions returns the subprograms that have code, one symbol per address
// range, sorted as [symfile.Source.Symbols] requires. It parses every unit.
func (x *Index) Functions() []symfile.Symbol {
	var out []symfile.Symbol
	n := len(x.units)
	if x.lazy != nil {
		n = x.lazyEnd // as x.cus: not past a malformed unit
	}
	for i := range n {
		if x.lazy != nil && !x.dec.units[i].cu {
			continue
		}
		cu, _ := x.load(i)
		if cu == nil {
			continue
		}
		out = append(out, cu.funcs...)
	}
	symfile.Sort(out)
	return slices.CompactFunc(out, func(a, b symfile.Symbol) bool { return a == b })
}
