package dwarfidx

import (
	"encoding/binary"
	"sort"
	"strings"
)

// Line number program constants (DWARF5.pdf §6.2.5 and §7.22).
const (
	lnsCopy             = 1
	lnsAdvancePC        = 2
	lnsAdvanceLine      = 3
	lnsSetFile          = 4
	lnsSetColumn        = 5
	lnsNegateStmt       = 6
	lnsSetBasicBlock    = 7
	lnsConstAddPC       = 8
	lnsFixedAdvancePC   = 9
	lnsSetPrologueEnd   = 10
	lnsSetEpilogueBegin = 11
	lnsSetISA           = 12

	lneEndSequence      = 1
	lneSetAddress       = 2
	lneDefineFile       = 3
	lneSetDiscriminator = 4

	lnctPath           = 1
	lnctDirectoryIndex = 2
)

// Limits on what a line table header may declare, so that a corrupt header
// cannot make the reader allocate without bound.
const (
	// maxLineFormats bounds the entry formats of a DWARF 5 header; the
	// standard defines five content types.
	maxLineFormats = 64
)

// row is one row of a line table's matrix, reduced to what a lookup needs.
type row struct {
	addr uint64
	file uint32 // index into lineTable.files
	line uint32
	col  uint32
}

// sequence is a run of rows with increasing addresses ending in an
// end_sequence row; rows[first:end] are its rows without the end row.
type sequence struct {
	lo, hi     uint64
	first, end int32
}

// lineTable is a decoded line number program: the rows of every sequence
// and the file names, already joined into full paths.
type lineTable struct {
	rows  []row
	seqs  []sequence  // sorted by hi, as LLVM's DWARFDebugLine sorts them
	files []string    // by file index as the rows and DW_AT_call_file use it
	index sparseIndex // over the rows' addresses
}

// lookup returns the row for pc, as LLVM's lookupAddress chooses it: the
// first sequence (by end address) that ends after pc must contain it, and
// within it the last row at or below pc.
func (lt *lineTable) lookup(pc uint64) (row, bool) {
	seqs := lt.seqs
	i := sort.Search(len(seqs), func(i int) bool { return seqs[i].hi > pc })
	if i == len(seqs) || seqs[i].lo > pc {
		return row{}, false
	}
	s := seqs[i]
	// The last row with addr <= pc; the first row's is s.lo <= pc.
	j := lt.index.last(int(s.first), int(s.end), pc)
	if j < 0 {
		return row{}, false
	}
	return lt.rows[j], true
}

func (lt *lineTable) file(i uint64) string {
	if i < uint64(len(lt.files)) {
		return lt.files[i]
	}
	return ""
}

// lineSections are the sections a line table refers to.
type lineSections struct {
	order   binary.ByteOrder
	line    []byte
	str     []byte
	lineStr []byte
}

// parseLineTable decodes the line number program at off in .debug_line
// (DWARF5.pdf §6.2; DWARF 2 to 4 as well). compDir is the unit's
// DW_AT_comp_dir, used to make file names absolute as llvm-symbolizer does.
// On malformed input it returns the rows decoded so far with an error.
func parseLineTable(s *lineSections, off uint64, addrSize int, compDir string) (*lineTable, error) {
	if off > uint64(len(s.line)) {
		return nil, &FormatError{Section: ".debug_line", Off: int64(off), Msg: "line table offset outside section", Val: off}
	}
	b := newBuf(".debug_line", s.order, s.line, int(off))
	end, dwarf64, err := b.unitEnd("line table")
	if err != nil {
		return nil, err
	}
	b.data = b.data[:end]
	version := b.u16()
	if version < 2 || version > 5 {
		return nil, &FormatError{Section: ".debug_line", Off: int64(off), Msg: "unsupported line table version", Val: version}
	}
	if version >= 5 {
		addrSize = int(b.u8())
		b.u8() // segment_selector_size
	}
	var headerLength uint64
	if dwarf64 {
		headerLength = b.u64()
	} else {
		headerLength = uint64(b.u32())
	}
	if headerLength > uint64(b.left()) {
		b.fail("header length exceeds line table", headerLength)
		return nil, b.err
	}
	progStart := b.pos + int(headerLength)
	minInst := uint64(b.u8())
	maxOps := uint64(1)
	if version >= 4 {
		maxOps = uint64(b.u8())
	}
	defaultIsStmt := b.u8() != 0
	_ = defaultIsStmt
	lineBase := int64(int8(b.u8()))
	lineRange := uint64(b.u8())
	opcodeBase := int(b.u8())
	stdLens := b.bytes(max(opcodeBase-1, 0))
	if b.err != nil {
		return nil, b.err
	}

	lt := &lineTable{}
	var dirs, names []string
	var dirIdx []uint64
	if version >= 5 {
		dirs = s.readEntries(&b, dwarf64, addrSize, nil)
		names = s.readEntries(&b, dwarf64, addrSize, &dirIdx)
	} else {
		for b.err == nil {
			d := b.cstr()
			if d == "" {
				break
			}
			dirs = append(dirs, d)
		}
		for b.err == nil {
			n := b.cstr()
			if n == "" {
				break
			}
			di := b.uleb()
			b.uleb() // modification time
			b.uleb() // length
			names = append(names, n)
			dirIdx = append(dirIdx, di)
		}
	}
	if b.err != nil {
		return nil, b.err
	}
	join := func(name string, di uint64) string {
		return joinPath(version, compDir, dirs, name, di)
	}
	if version < 5 {
		// File indexes start at 1.
		lt.files = append(lt.files, "")
	}
	for i, n := range names {
		lt.files = append(lt.files, join(n, dirIdx[i]))
	}

	// The program.
	b.pos = progStart
	if lineRange == 0 {
		// Special opcodes would divide by zero; only standard and
		// extended opcodes can be decoded.
		lineRange = 1
	}
	var (
		addr    uint64
		opIndex uint64
		file    uint64 = 1
		line    int64  = 1
		col     uint64
		first   = len(lt.rows)
	)
	reset := func() {
		addr, opIndex, file, line, col = 0, 0, 1, 1, 0
		first = len(lt.rows)
	}
	advance := func(opAdv uint64) {
		if maxOps <= 1 {
			addr += minInst * opAdv
			return
		}
		addr += minInst * ((opIndex + opAdv) / maxOps)
		opIndex = (opIndex + opAdv) % maxOps
	}
	emit := func() {
		lt.rows = append(lt.rows, row{addr: addr, file: uint32(min(file, 1<<32-1)), line: uint32(min(max(line, 0), 1<<32-1)), col: uint32(min(col, 1<<32-1))})
	}
	for b.err == nil && b.pos < len(b.data) {
		op := int(b.u8())
		switch {
		case op >= opcodeBase:
			adj := uint64(op - opcodeBase)
			advance(adj / lineRange)
			line += lineBase + int64(adj%lineRange)
			emit()
		case op == 0:
			n := b.uleb()
			if n == 0 || n > uint64(b.left()) {
				b.fail("bad extended opcode length", n)
				break
			}
			next := b.pos + int(n)
			switch b.u8() {
			case lneEndSequence:
				if len(lt.rows) > first {
					lo := lt.rows[first].addr
					if lo < addr {
						lt.seqs = append(lt.seqs, sequence{lo: lo, hi: addr, first: int32(first), end: int32(len(lt.rows))})
					}
				}
				// The end row itself is not kept: lookups stop before it.
				reset()
			case lneSetAddress:
				size := int(n - 1)
				if size != 1 && size != 2 && size != 4 && size != 8 {
					size = addrSize
				}
				addr = b.uint(size)
				opIndex = 0
			case lneDefineFile:
				name := b.cstr()
				di := b.uleb()
				b.uleb()
				b.uleb()
				lt.files = append(lt.files, join(name, di))
			}
			if b.err == nil {
				b.pos = next
			}
		case op == lnsCopy:
			emit()
		case op == lnsAdvancePC:
			advance(b.uleb())
		case op == lnsAdvanceLine:
			line += b.sleb()
		case op == lnsSetFile:
			file = b.uleb()
		case op == lnsSetColumn:
			col = b.uleb()
		case op == lnsNegateStmt, op == lnsSetBasicBlock, op == lnsSetPrologueEnd, op == lnsSetEpilogueBegin:
		case op == lnsConstAddPC:
			advance(uint64(255-opcodeBase) / lineRange)
		case op == lnsFixedAdvancePC:
			addr += uint64(b.u16())
			opIndex = 0
		case op == lnsSetISA:
			b.uleb()
		default:
			// An opcode this reader does not know: skip its operands,
			// whose count the header gives.
			if op-1 < len(stdLens) {
				for range stdLens[op-1] {
					b.uleb()
				}
			}
		}
	}
	// Rows after the last end_sequence belong to no sequence; LLVM
	// ignores them too.
	sortSeqs(lt)
	return lt, b.err
}

// sortSeqs sorts the sequences by end address and each sequence's rows by
// address (a well-formed sequence is sorted already).
func sortSeqs(lt *lineTable) {
	sort.SliceStable(lt.seqs, func(i, j int) bool { return lt.seqs[i].hi < lt.seqs[j].hi })
	for _, sq := range lt.seqs {
		rows := lt.rows[sq.first:sq.end]
		if !sort.SliceIsSorted(rows, func(i, j int) bool { return rows[i].addr < rows[j].addr }) {
			sort.SliceStable(rows, func(i, j int) bool { return rows[i].addr < rows[j].addr })
		}
	}
	addrs := make([]uint64, len(lt.rows))
	for i, r := range lt.rows {
		addrs[i] = r.addr
	}
	lt.index = newSparseIndex(addrs)
}

// readEntries reads a DWARF 5 directory or file name table (DWARF5.pdf
// §6.2.4.1): the entry formats, then the entries, each value decoded as
// a DIE's attribute is (formValue). It returns the paths and, when
// dirIdx is not nil, stores each entry's directory index there.
func (s *lineSections) readEntries(b *buf, dwarf64 bool, addrSize int, dirIdx *[]uint64) []string {
	nfmt := int(b.u8())
	if nfmt > maxLineFormats {
		b.fail("too many entry formats", nfmt)
		return nil
	}
	type format struct{ content, form uint64 }
	var fmts [maxLineFormats]format
	for i := range nfmt {
		fmts[i] = format{b.uleb(), b.uleb()}
	}
	count := b.uleb()
	// Every entry takes at least one byte per format, or none when there
	// are no formats; either way the count cannot exceed what is left.
	if count > uint64(b.left()) || (nfmt == 0 && count > 0) {
		b.fail("entry count exceeds line table", count)
		return nil
	}
	u := unitHdr{version: 5, addrSize: addrSize, offSize: 4}
	if dwarf64 {
		u.offSize = 8
	}
	out := make([]string, 0, count)
	for range count {
		var path string
		var di uint64
		for _, f := range fmts[:nfmt] {
			var str string
			var err error
			cls, val, n := formValue(&u, b, f.form, 0)
			switch cls {
			case clsString:
				str = string(b.data[val : val+uint64(n)])
			case clsStrp:
				str, err = cstrAt(".debug_str", s.str, val)
			case clsLineStrp:
				str, err = cstrAt(".debug_line_str", s.lineStr, val)
			}
			if err != nil && b.err == nil {
				b.err = err
			}
			switch f.content {
			case lnctPath:
				path = str
			case lnctDirectoryIndex:
				di = val
			}
		}
		if b.err != nil {
			return out
		}
		out = append(out, path)
		if dirIdx != nil {
			*dirIdx = append(*dirIdx, di)
		}
	}
	return out
}

// joinPath makes a file name absolute as llvm-symbolizer prints it
// (LLVM's DWARFDebugLine::Prologue::getFileNameByIndex with
// AbsoluteFilePath): an absolute name is kept; otherwise the include
// directory is prepended, and the compilation directory as well when the
// include directory is not absolute. Nothing is cleaned: "a/../b" stays.
func joinPath(version uint16, compDir string, dirs []string, name string, di uint64) string {
	if isAbs(name) {
		return name
	}
	var inc string
	if version >= 5 {
		if di < uint64(len(dirs)) {
			inc = dirs[di]
		}
	} else if di > 0 && di <= uint64(len(dirs)) {
		inc = dirs[di-1]
	}
	var p string
	if compDir != "" && !isAbs(inc) {
		p = compDir
	}
	p = appendPath(p, inc)
	return appendPath(p, name)
}

// appendPath appends one component as LLVM's sys::path::append does.
func appendPath(p, c string) string {
	if p != "" && p[len(p)-1] == '/' {
		return p + strings.TrimLeft(c, "/")
	}
	if c != "" && c[0] == '/' || p == "" {
		return p + c
	}
	return p + "/" + c
}

// isAbs reports whether p is absolute in POSIX or Windows style, as LLVM's
// isPathAbsoluteOnWindowsOrPosix does.
func isAbs(p string) bool {
	if strings.HasPrefix(p, "/") {
		return true
	}
	return len(p) >= 3 && p[1] == ':' && (p[2] == '\\' || p[2] == '/') &&
		('a' <= p[0]|0x20 && p[0]|0x20 <= 'z')
}
