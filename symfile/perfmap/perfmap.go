package perfmap

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/fntable/fntable/symfile"
)

// Limits.
const (
	// MaxLineLength caps a line: longer lines are skipped. Real names are
	// at most a few KiB (long C++ or Java signatures).
	MaxLineLength = 64 << 10
	// MaxSkippedReported is how many skipped lines [File.Skipped] lists.
	MaxSkippedReported = 10
)

// These are the errors returned by this package.
var (
	// ErrMalformed matches the error of a map in which no line parses.
	ErrMalformed = errors.New("malformed perf map")
)

// FormatError reports a map in which no line parses. It wraps
// ErrMalformed and symfile.ErrUnrecognized: such input is most likely not
// a perf map at all.
type FormatError struct {
	Lines   int           // number of lines read
	Skipped []SkippedLine // the first skipped lines
}

func (e *FormatError) Error() string {
	s := fmt.Sprintf("parse perf map: none of %d lines parses", e.Lines)
	if len(e.Skipped) > 0 {
		s += ": " + e.Skipped[0].String()
	}
	return s
}

// Unwrap returns ErrMalformed and symfile.ErrUnrecognized.
func (e *FormatError) Unwrap() []error { return []error{ErrMalformed, symfile.ErrUnrecognized} }

// SkippedLine is a line that does not parse, and why.
type SkippedLine struct {
	Line   int    // 1-based line number
	Reason string // e.g. "start address is not hex"
}

func (s SkippedLine) String() string { return fmt.Sprintf("line %d: %s", s.Line, s.Reason) }

// File is a parsed perf map. It is immutable once made and safe for
// concurrent use.
type File struct {
	syms    []symfile.Symbol
	lines   int
	skipped int
	first   []SkippedLine
}

var _ symfile.Source = (*File)(nil)

// entry is one parsed line.
type entry struct {
	start, end uint64
	name       string
	seq        int32 // order in the file: later lines win
}

// Open reads the perf map in the named file. The file is read whole and
// closed before Open returns.
func Open(name string) (*File, error) {
	fh, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	return Parse(fh)
}

// Parse reads a perf map from r. It fails only when r fails or when no
// line parses; see the package documentation for the format. The names
// share one copy of the input.
func Parse(r io.Reader) (*File, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read perf map: %w", err)
	}
	text := string(data)
	f := &File{}
	entries := make([]entry, 0, strings.Count(text, "\n")+1)
	for len(text) > 0 {
		line := text
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i+1], text[i+1:]
		} else {
			text = ""
		}
		f.lines++
		if len(line) > MaxLineLength {
			f.skip(fmt.Sprintf("longer than %d bytes", MaxLineLength))
		} else if e, reason := parseLine(line); reason != "" {
			f.skip(reason)
		} else if e.name != "" { // not a blank line
			e.seq = int32(len(entries))
			entries = append(entries, e)
		}
	}
	if len(entries) == 0 && f.skipped > 0 {
		return nil, &FormatError{Lines: f.lines, Skipped: f.first}
	}
	f.syms = resolve(entries)
	return f, nil
}

func (f *File) skip(reason string) {
	f.skipped++
	if len(f.first) < MaxSkippedReported {
		f.first = append(f.first, SkippedLine{Line: f.lines, Reason: reason})
	}
}

// parseLine parses one line. A blank line gives an entry with no name and
// no reason; a malformed one gives the reason.
func parseLine(line string) (entry, string) {
	rest := trimLeft(trimRight(line))
	if len(rest) == 0 {
		return entry{}, ""
	}
	start, rest, why := hexField(rest)
	if why != "" {
		return entry{}, "start address " + why
	}
	size, rest, why := hexField(rest)
	if why != "" {
		return entry{}, "size " + why
	}
	if len(rest) == 0 {
		return entry{}, "no name"
	}
	if size == 0 {
		return entry{}, "zero size"
	}
	if start+size <= start { // size > 0 here: the end would be 2^64 or beyond
		return entry{}, fmt.Sprintf("range %#x+%#x wraps past 2^64", start, size)
	}
	return entry{start: start, end: start + size, name: rest}, ""
}

// hexField parses a hex number with an optional 0x prefix at the start of
// s, and the white space after it. It returns the value, the rest of s,
// and a reason when the field is malformed.
func hexField(s string) (uint64, string, string) {
	if len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		s = s[2:]
	}
	var v uint64
	i := 0
loop:
	for ; i < len(s); i++ {
		c := s[i]
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		case c == ' ' || c == '\t':
			break loop
		default:
			return 0, "", fmt.Sprintf("is not hex (%q)", c)
		}
		if v>>60 != 0 {
			return 0, "", "overflows 64 bits"
		}
		v = v<<4 | uint64(d)
	}
	if i == 0 {
		if len(s) == 0 {
			return 0, "", "missing"
		}
		return 0, "", "is empty"
	}
	return v, trimLeft(s[i:]), ""
}

// trimLeft removes leading spaces and tabs.
func trimLeft(s string) string {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return s[i:]
}

// trimRight removes trailing spaces, tabs, CRs and LFs.
func trimRight(s string) string {
	i := len(s)
	for i > 0 && (s[i-1] == ' ' || s[i-1] == '\t' || s[i-1] == '\r' || s[i-1] == '\n') {
		i--
	}
	return s[:i]
}

// resolve turns the entries into sorted, non-overlapping symbols in which
// every address belongs to the last entry that covers it. It sweeps the
// boundaries of all entries in address order, keeping the entries that
// cover the current stretch in a max-heap by file position.
func resolve(entries []entry) []symfile.Symbol {
	if len(entries) == 0 {
		return nil
	}
	pts := make([]uint64, 0, 2*len(entries))
	for _, e := range entries {
		pts = append(pts, e.start, e.end)
	}
	slices.Sort(pts)
	pts = slices.Compact(pts)
	byStart := make([]int32, len(entries))
	for i := range byStart {
		byStart[i] = int32(i)
	}
	slices.SortFunc(byStart, func(a, b int32) int {
		if c := cmp.Compare(entries[a].start, entries[b].start); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})

	syms := make([]symfile.Symbol, 0, len(entries))
	var active []int32 // max-heap of indices into entries (= file positions)
	prev := int32(-1)  // the entry that won the previous stretch
	next := 0
	for k := 0; k+1 < len(pts); k++ {
		lo, hi := pts[k], pts[k+1]
		for next < len(byStart) && entries[byStart[next]].start == lo {
			active = heapPush(active, byStart[next])
			next++
		}
		for len(active) > 0 && entries[active[0]].end <= lo {
			active = heapPop(active)
		}
		if len(active) == 0 {
			continue
		}
		top := active[0]
		if n := len(syms); n > 0 && syms[n-1].End() == lo && prev == top {
			syms[n-1].Size = hi - syms[n-1].Addr
			continue
		}
		syms = append(syms, symfile.Symbol{Name: entries[top].name, Addr: lo, Size: hi - lo, Kind: symfile.KindFunction})
		prev = top
	}
	return slices.Clip(syms)
}

// heapPush adds x to the max-heap h.
func heapPush(h []int32, x int32) []int32 {
	h = append(h, x)
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if h[p] >= h[i] {
			break
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
	return h
}

// heapPop removes the largest element of the max-heap h.
func heapPop(h []int32) []int32 {
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && h[l] > h[m] {
			m = l
		}
		if r < n && h[r] > h[m] {
			m = r
		}
		if m == i {
			return h
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// Symbols returns the map's functions at their absolute addresses, sorted
// and non-overlapping (see the package documentation). The slice is
// shared: callers must not modify it.
func (f *File) Symbols() []symfile.Symbol { return f.syms }

// Skipped returns the number of malformed lines that were skipped, and the
// line numbers and reasons of the first [MaxSkippedReported] of them.
// Blank lines are not counted.
func (f *File) Skipped() (n int, first []SkippedLine) { return f.skipped, f.first }

// Lines returns the number of lines read, blank and skipped ones included.
func (f *File) Lines() int { return f.lines }

// Ident returns the map's identity: Format "perfmap", LinkBase the lowest
// address and ImageSize the span to the highest end.
func (f *File) Ident() symfile.Ident {
	id := symfile.Ident{Format: "perfmap", HasSymbols: len(f.syms) > 0}
	if len(f.syms) > 0 {
		id.LinkBase = f.syms[0].Addr
		id.ImageSize = f.syms[len(f.syms)-1].End() - id.LinkBase
	}
	return id
}

// Frames returns dst unchanged: a perf map has no line information.
func (f *File) Frames(dst []symfile.Frame, addr uint64) ([]symfile.Frame, error) {
	return dst, nil
}

// Close does nothing: [Open] reads the file whole.
func (f *File) Close() error { return nil }

// Write writes syms to w as a perf map, one "START SIZE name" line each
// in lowercase hex without a prefix, the form perf and every reader
// accept, in the order given. It fails, writing nothing more, at the
// first symbol that cannot be read back as written: a zero size, a range
// that ends at 2^64 or beyond, or a name that is empty, holds a line break, or
// starts or ends with white space.
//
// A JIT that emits code as it runs appends to its map: open
// /tmp/perf-PID.map with O_APPEND once and call Write for each batch of
// new functions. Write buffers a batch and writes it with as few calls as
// it can, so readers racing the JIT rarely see half a line; a later line
// for an address supersedes earlier ones (see the package documentation).
func Write(w io.Writer, syms []symfile.Symbol) error {
	bw := bufio.NewWriter(w)
	for i, s := range syms {
		if why := unwritable(s); why != "" {
			bw.Flush()
			return fmt.Errorf("write perf map symbol %d %q at %#x: %s", i, s.Name, s.Addr, why)
		}
		fmt.Fprintf(bw, "%x %x %s\n", s.Addr, s.Size, s.Name)
	}
	return bw.Flush()
}

func unwritable(s symfile.Symbol) string {
	switch {
	case s.Size == 0:
		return "zero size"
	case s.Addr+s.Size <= s.Addr:
		return "range wraps past 2^64"
	case s.Name == "":
		return "empty name"
	case strings.ContainsAny(s.Name, "\r\n"):
		return "name holds a line break"
	case strings.Trim(s.Name, " \t") != s.Name:
		return "name starts or ends with white space"
	case len(s.Name) > MaxLineLength-64:
		return "name too long"
	}
	return ""
}
