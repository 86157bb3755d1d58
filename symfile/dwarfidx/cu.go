package dwarfidx

import (
	"cmp"
	"debug/dwarf"
	"errors"
	"io"

	"github.com/fntable/fntable/symfile"
)

// Limits that keep malformed DWARF from making the reader loop or recurse
// without bound.
const (
	// maxNameHops bounds how many DW_AT_abstract_origin and
	// DW_AT_specification references a name lookup follows; real chains
	// are two or three long.
	maxNameHops = 16
	// maxDepth bounds the DIE nesting the unit walk follows; deeper
	// subtrees are skipped.
	maxDepth = 1 << 12
)

// cuData is one compilation unit, parsed.
type cuData struct {
	nodes []node
	spans []span      // address → innermost node, sorted and disjoint
	index sparseIndex // over the spans' start addresses
	lines *lineTable
	funcs []symfile.Symbol
}

// node is a subprogram or inlined subroutine DIE.
type node struct {
	name       string
	parent     int32 // enclosing subprogram or inlined subroutine; -1 for none
	subprogram bool  // DW_TAG_subprogram (else DW_TAG_inlined_subroutine)
	hasCode    bool  // has address ranges
	callFile   uint32
	callLine   uint32
	callCol    uint32
	attrs      dieNames
}

// dieNames is what a DIE says about its name, directly or by reference.
type dieNames struct {
	linkage, name       string
	hasLinkage, hasName bool
	origin, spec        dwarf.Offset // 0 when absent
	valid               bool         // the DIE was read
}

func namesOf(e *dwarf.Entry) dieNames {
	n := dieNames{valid: true}
	for _, f := range e.Field {
		switch f.Attr {
		case dwarf.AttrLinkageName, attrMIPSLinkageName:
			if s, ok := f.Val.(string); ok && !n.hasLinkage {
				n.linkage, n.hasLinkage = s, true
			}
		case dwarf.AttrName:
			if s, ok := f.Val.(string); ok {
				n.name, n.hasName = s, true
			}
		case dwarf.AttrAbstractOrigin:
			if o, ok := f.Val.(dwarf.Offset); ok {
				n.origin = o
			}
		case dwarf.AttrSpecification:
			if o, ok := f.Val.(dwarf.Offset); ok {
				n.spec = o
			}
		}
	}
	return n
}

// attrMIPSLinkageName is DW_AT_MIPS_linkage_name, which older producers
// emit instead of DW_AT_linkage_name.
const attrMIPSLinkageName dwarf.Attr = 0x2007

// descend reports whether the unit walk looks into the children of a DIE
// with this tag: only scopes can hold subprograms and inlined subroutines
// with code.
func descend(t dwarf.Tag) bool {
	switch t {
	case dwarf.TagSubprogram, dwarf.TagInlinedSubroutine, dwarf.TagLexDwarfBlock,
		dwarf.TagNamespace, dwarf.TagModule, dwarf.TagTryDwarfBlock,
		dwarf.TagCatchDwarfBlock, dwarf.TagWithStmt, dwarf.TagEntryPoint,
		dwarf.TagCommonDwarfBlock:
		return true
	}
	return false
}

// walker reads one unit's DIEs in pre-order: from debug/dwarf for
// indexes made by [New], from the raw sections for [NewSections].
type walker interface {
	// next reads the next DIE into e (a null entry has tag 0); it
	// reports false at the end of the unit or on an error.
	next(e *entry) bool
	// skipChildren moves past the children of e, the DIE just read.
	skipChildren(e *entry)
	// ranges returns the DW_AT_ranges of e, the DIE just read.
	ranges(e *entry) ([][2]uint64, error)
	err() error
}

// stdWalker is a walker over debug/dwarf.
type stdWalker struct {
	r    *dwarf.Reader
	d    *dwarf.Data
	last *dwarf.Entry
	e    error
}

func (w *stdWalker) next(e *entry) bool {
	de, err := w.r.Next()
	if err != nil {
		w.e = err
		return false
	}
	if de == nil {
		return false
	}
	w.last = de
	*e = entry{off: de.Offset, tag: de.Tag, children: de.Children}
	if de.Tag == dwarf.TagSubprogram || de.Tag == dwarf.TagInlinedSubroutine {
		e.names = namesOf(de)
		e.lo, e.hi, e.hasLo = lowHigh(de)
		e.hasHi = e.hasLo
		if de.Val(dwarf.AttrRanges) != nil {
			e.rangesCls = clsSecOff
		}
		e.callFile = u32(de.Val(dwarf.AttrCallFile))
		e.callLine = u32(de.Val(dwarf.AttrCallLine))
		e.callCol = u32(de.Val(dwarf.AttrCallColumn))
	}
	return true
}

func (w *stdWalker) skipChildren(*entry) { w.r.SkipChildren() }

func (w *stdWalker) ranges(*entry) ([][2]uint64, error) { return w.d.Ranges(w.last) }

func (w *stdWalker) err() error { return w.e }

// rawWalker is a walker over the raw sections.
type rawWalker struct {
	d *decoder
	u *unitHdr
	b buf
}

func (w *rawWalker) next(e *entry) bool { return w.d.read(w.u, &w.b, e, modeWalk) }

func (w *rawWalker) skipChildren(e *entry) { w.d.skipChildren(w.u, &w.b, e) }

func (w *rawWalker) ranges(e *entry) ([][2]uint64, error) { return w.d.ranges(w.u, e) }

func (w *rawWalker) err() error { return w.b.err }

// parseUnit reads a unit's DIEs and line table. On malformed input it
// returns what it read with an error.
func (x *Index) parseUnit(u *unit) (cu *cuData, err error) {
	cu = &cuData{}
	defer func() {
		if r := recover(); r != nil {
			err = &FormatError{Section: ".debug_info", Off: int64(u.off), Msg: "decoder panic reading unit"}
		}
	}()
	missing := &FormatError{Section: ".debug_info", Off: int64(u.off), Msg: "missing unit entry"}
	var (
		w        walker
		r        *dwarf.Reader // for names in other DIEs, without raw sections
		children bool
		lerr     error
	)
	if h := u.hdr; h != nil {
		if err := x.dec.ready(h); err != nil {
			return cu, err
		}
		rw := &rawWalker{d: x.dec, u: h, b: newBuf(".debug_info", x.dec.order, x.dec.s.Info[:h.end], h.first)}
		var e entry
		if !x.dec.read(h, &rw.b, &e, modeSkip) || e.tag == 0 {
			return cu, cmp.Or(rw.b.err, error(missing))
		}
		w, children = rw, e.children
		if x.opts.Lines && h.attrs.stmtList >= 0 {
			cu.lines, lerr = parseLineTable(x.ls, uint64(h.attrs.stmtList), h.addrSize, h.attrs.compDir)
		}
	} else {
		r = x.d.Reader()
		r.Seek(u.off)
		cuEntry, err := r.Next()
		if err != nil || cuEntry == nil {
			return cu, cmp.Or(err, error(missing))
		}
		if x.opts.Lines && u.stmtList >= 0 {
			if x.ls != nil {
				cu.lines, lerr = parseLineTable(x.ls, uint64(u.stmtList), u.addrSize, u.compDir)
			} else {
				cu.lines, lerr = lineReaderTable(x.d, cuEntry)
			}
		}
		w, children = &stdWalker{r: r, d: x.d}, cuEntry.Children
	}

	local := map[dwarf.Offset]dieNames{}
	var ranges []rangeOf
	stack := make([]int32, 1, 64)
	stack[0] = -1
	werr := func() error {
		if !children {
			return nil
		}
		var e entry
		for {
			if !w.next(&e) {
				return w.err()
			}
			if e.tag == 0 {
				stack = stack[:len(stack)-1]
				if len(stack) == 0 {
					return nil
				}
				continue
			}
			cur := stack[len(stack)-1]
			if e.tag == dwarf.TagSubprogram || e.tag == dwarf.TagInlinedSubroutine {
				if e.tag == dwarf.TagSubprogram {
					local[e.off] = e.names
				}
				n := node{parent: cur, subprogram: e.tag == dwarf.TagSubprogram, attrs: e.names}
				if e.tag == dwarf.TagInlinedSubroutine {
					n.callFile, n.callLine, n.callCol = e.callFile, e.callLine, e.callCol
				}
				idx := int32(len(cu.nodes))
				if e.hasLo && e.hasHi {
					if e.lo < e.hi {
						ranges = append(ranges, rangeOf{e.lo, e.hi, idx})
						n.hasCode = true
					}
				} else if e.rangesCls != clsNone {
					rs, err := w.ranges(&e)
					if err == nil {
						for _, rg := range rs {
							if rg[0] < rg[1] {
								ranges = append(ranges, rangeOf{rg[0], rg[1], idx})
								n.hasCode = true
							}
						}
					}
				}
				cu.nodes = append(cu.nodes, n)
				cur = idx
			}
			if e.children {
				if descend(e.tag) && len(stack) < maxDepth {
					stack = append(stack, cur)
				} else {
					w.skipChildren(&e)
				}
			}
		}
	}()

	// Resolve the names of the nodes that a lookup can reach: those with
	// code and their enclosing nodes.
	need := make([]bool, len(cu.nodes))
	for i := range cu.nodes {
		if !cu.nodes[i].hasCode {
			continue
		}
		for j := int32(i); j >= 0 && !need[j]; j = cu.nodes[j].parent {
			need[j] = true
		}
	}
	for i := range cu.nodes {
		n := &cu.nodes[i]
		if need[i] {
			n.name = x.resolveName(r, local, n.attrs)
		}
		n.attrs = dieNames{}
	}
	cu.spans = segment(ranges, true)
	starts := make([]uint64, len(cu.spans))
	for i, sp := range cu.spans {
		starts[i] = sp.lo
	}
	cu.index = newSparseIndex(starts)
	for _, rg := range ranges {
		if n := &cu.nodes[rg.idx]; n.subprogram {
			cu.funcs = append(cu.funcs, symfile.Symbol{Name: n.name, Addr: rg.lo, Size: rg.hi - rg.lo, Kind: symfile.KindFunction})
		}
	}
	return cu, errors.Join(werr, lerr)
}

// lowHigh returns the range of a DIE with DW_AT_low_pc and DW_AT_high_pc
// (DWARF5.pdf §2.17.2: a high_pc of class constant is an offset from
// low_pc).
func lowHigh(e *dwarf.Entry) (lo, hi uint64, ok bool) {
	var haveLo, haveHi bool
	var hiOff bool
	for _, f := range e.Field {
		switch f.Attr {
		case dwarf.AttrLowpc:
			lo, haveLo = f.Val.(uint64)
		case dwarf.AttrHighpc:
			switch v := f.Val.(type) {
			case uint64:
				hi, haveHi = v, f.Class == dwarf.ClassAddress
			case int64:
				hi, haveHi, hiOff = uint64(v), f.Class == dwarf.ClassConstant, true
			}
		}
	}
	if !haveLo || !haveHi {
		return 0, 0, false
	}
	if hiOff {
		hi += lo
		if hi < lo {
			return 0, 0, false
		}
	}
	return lo, hi, true
}

func u32(v any) uint32 {
	if i, ok := v.(int64); ok && i >= 0 && i < 1<<32 {
		return uint32(i)
	}
	return 0
}

// resolveName names a subroutine as llvm-symbolizer does with
// --no-demangle (LLVM's DWARFDie::getSubroutineName with LinkageName): the
// first DW_AT_linkage_name (or DW_AT_MIPS_linkage_name) found on the DIE
// or through its DW_AT_specification and DW_AT_abstract_origin
// references, else the first DW_AT_name found the same way.
func (x *Index) resolveName(r *dwarf.Reader, local map[dwarf.Offset]dieNames, n dieNames) string {
	if s, ok := x.findName(r, local, n, true); ok {
		return s
	}
	s, _ := x.findName(r, local, n, false)
	return s
}

// findName is LLVM's DWARFDie::findRecursively: a depth-first search over
// the references, the specification before the abstract origin.
func (x *Index) findName(r *dwarf.Reader, local map[dwarf.Offset]dieNames, n dieNames, linkage bool) (string, bool) {
	var work [maxNameHops]dieNames
	var seen [maxNameHops]dwarf.Offset
	nw, ns := 1, 0
	work[0] = n
	for hops := 0; nw > 0 && hops < maxNameHops; hops++ {
		nw--
		d := work[nw]
		if linkage && d.hasLinkage {
			return d.linkage, true
		}
		if !linkage && d.hasName {
			return d.name, true
		}
		for _, ref := range [2]dwarf.Offset{d.origin, d.spec} {
			if ref == 0 || nw == len(work) {
				continue
			}
			dup := false
			for _, s := range seen[:ns] {
				dup = dup || s == ref
			}
			if dup || ns == len(seen) {
				continue
			}
			seen[ns] = ref
			ns++
			if t := x.dieAt(r, local, ref); t.valid {
				work[nw] = t
				nw++
			}
		}
	}
	return "", false
}

// dieAt returns the names of the DIE at off, from the unit being parsed,
// the index's cache or the DWARF itself.
func (x *Index) dieAt(r *dwarf.Reader, local map[dwarf.Offset]dieNames, off dwarf.Offset) dieNames {
	if n, ok := local[off]; ok {
		return n
	}
	x.mu.Lock()
	n, ok := x.names[off]
	x.mu.Unlock()
	if ok {
		return n
	}
	if x.dec != nil {
		n = x.dec.namesAt(off)
	} else {
		r.Seek(off)
		if e, err := r.Next(); err == nil && e != nil && e.Offset == off {
			n = namesOf(e)
		}
	}
	x.mu.Lock()
	x.names[off] = n
	x.mu.Unlock()
	return n
}

// lineReaderTable builds a line table through debug/dwarf's LineReader,
// for indexes made by [New] without the raw sections.
func lineReaderTable(d *dwarf.Data, cu *dwarf.Entry) (*lineTable, error) {
	lr, err := d.LineReader(cu)
	if err != nil || lr == nil {
		return nil, err
	}
	lt := &lineTable{}
	index := map[*dwarf.LineFile]uint32{}
	for i, f := range lr.Files() {
		lt.files = append(lt.files, "")
		if f != nil {
			lt.files[i] = f.Name
			index[f] = uint32(i)
		}
	}
	first := 0
	var le dwarf.LineEntry
	for {
		err := lr.Next(&le)
		if err == io.EOF {
			break
		}
		if err != nil {
			return lt, err
		}
		if le.EndSequence {
			if len(lt.rows) > first && lt.rows[first].addr < le.Address {
				lt.seqs = append(lt.seqs, sequence{lo: lt.rows[first].addr, hi: le.Address, first: int32(first), end: int32(len(lt.rows))})
			}
			first = len(lt.rows)
			continue
		}
		fi, ok := index[le.File]
		if !ok && le.File != nil {
			// A file defined by DW_LNE_define_file after Files was read.
			fi = uint32(len(lt.files))
			lt.files = append(lt.files, le.File.Name)
			index[le.File] = fi
		}
		lt.rows = append(lt.rows, row{addr: le.Address, file: fi, line: uint32(max(le.Line, 0)), col: uint32(max(le.Column, 0))})
	}
	sortSeqs(lt)
	return lt, nil
}
