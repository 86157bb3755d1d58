package procmaps

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// MaxLine bounds a line of a listing (a path is at most PATH_MAX, 4096
// bytes, but the kernel escapes only newlines, so allow more).
const MaxLine = 64 << 10

// ErrMalformed matches every error about a malformed line.
var ErrMalformed = errors.New("malformed maps line")

// SyntaxError is the error of a malformed line. It wraps [ErrMalformed].
type SyntaxError struct {
	Line int    // 1-based line number, or 0 from Parse
	Text string // the line
	Msg  string // what is wrong
}

func (e *SyntaxError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%v: %s: %q", ErrMalformed, e.Msg, e.Text)
	}
	return fmt.Sprintf("line %d: %v: %s: %q", e.Line, ErrMalformed, e.Msg, e.Text)
}

// Unwrap returns ErrMalformed.
func (e *SyntaxError) Unwrap() error { return ErrMalformed }

// deletedSuffix is what the kernel appends to the path of a file unlinked
// after it was mapped.
const deletedSuffix = " (deleted)"

// Line is one line of a maps listing: a mapping.
type Line struct {
	Start, End uint64 // [Start, End): the mapping's addresses
	Perms      string // "r-xp": read, write, execute, and p(rivate) or s(hared)
	Offset     uint64 // file offset of Start
	Dev        string // the file's device, "major:minor" in hex
	Inode      uint64 // the file's inode; 0 for anonymous memory
	Path       string // the path or pseudo-path ("[stack]", "/memfd:name (deleted)"), or ""
}

// Deleted reports whether the mapped file was unlinked: the path ends in
// " (deleted)".
func (l Line) Deleted() bool { return strings.HasSuffix(l.Path, deletedSuffix) }

// File returns Path without the " (deleted)" suffix.
func (l Line) File() string { return strings.TrimSuffix(l.Path, deletedSuffix) }

// Executable reports whether the mapping is executable.
func (l Line) Executable() bool { return len(l.Perms) > 2 && l.Perms[2] == 'x' }

// Parse parses one line. An error is a *[SyntaxError].
func Parse(s string) (Line, error) {
	var l Line
	var f [5]string
	rest := s
	for i := range f {
		rest = strings.TrimLeft(rest, " \t")
		j := strings.IndexAny(rest, " \t")
		if j < 0 {
			j = len(rest)
		}
		f[i], rest = rest[:j], rest[j:]
		if f[i] == "" {
			return Line{}, &SyntaxError{Text: s, Msg: fmt.Sprintf("%d fields, want at least 5", i)}
		}
	}
	l.Path = strings.TrimLeft(rest, " \t")
	lo, hi, ok := strings.Cut(f[0], "-")
	var err1, err2, err3, err4 error
	l.Start, err1 = strconv.ParseUint(lo, 16, 64)
	l.End, err2 = strconv.ParseUint(hi, 16, 64)
	l.Offset, err3 = strconv.ParseUint(f[2], 16, 64)
	l.Inode, err4 = strconv.ParseUint(f[4], 10, 64)
	if !ok || err1 != nil || err2 != nil || err3 != nil || err4 != nil || l.End <= l.Start {
		return Line{}, &SyntaxError{Text: s, Msg: "bad address range, offset or inode"}
	}
	l.Perms, l.Dev = f[1], f[3]
	return l, nil
}

// Scan calls fn for each line of r that is not blank, with its 1-based
// line number and the result of [Parse] (a *[SyntaxError] carrying the
// line number). fn decides what a malformed line
// means: returning a non-nil error stops the scan and Scan returns it. A
// line longer than [MaxLine] stops the scan with an error.
func Scan(r io.Reader, fn func(n int, l Line, err error) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), MaxLine)
	for n := 1; sc.Scan(); n++ {
		text := sc.Text()
		if strings.TrimSpace(text) == "" {
			continue
		}
		l, err := Parse(text)
		if se, ok := err.(*SyntaxError); ok {
			se.Line = n
		}
		if err := fn(n, l, err); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read maps: %w", err)
	}
	return nil
}

// Ranges are address ranges [start, end), sorted and disjoint.
type Ranges [][2]uint64

// ExecutableRanges returns the executable mappings of a maps listing, in
// address order (as the kernel lists them); malformed lines are skipped.
// The result is empty, not nil, when there are none.
func ExecutableRanges(maps []byte) Ranges {
	r := Ranges{}
	Scan(bytes.NewReader(maps), func(_ int, l Line, err error) error {
		if err == nil && l.Executable() {
			r = append(r, [2]uint64{l.Start, l.End})
		}
		return nil
	})
	return r
}

// Contains reports whether addr lies in one of the ranges.
func (r Ranges) Contains(addr uint64) bool {
	i := sort.Search(len(r), func(i int) bool { return r[i][1] > addr })
	return i < len(r) && addr >= r[i][0]
}
