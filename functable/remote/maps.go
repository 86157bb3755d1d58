package remote

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/fntable/fntable/functable"
	"github.com/fntable/fntable/internal/procmaps"
)

// Mapping is a published list in a process's address space.
type Mapping struct {
	Addr  uint64 // address of the list's header (the mapping's file offset 0)
	Size  uint64 // bytes mapped there when the mapping was found; the list may have grown since
	Inode uint64 // the memfd's inode, which tells the lists of one process apart
}

// memfdPath is the path /proc/PID/maps shows for a published list.
const memfdPath = "/memfd:" + functable.MemfdName

// ParseMaps returns the published lists in a /proc/PID/maps listing, in
// address order: the runs of the memfd "fntable-function-tables" that
// start at file offset 0, with the contiguous lines that follow them
// merged. It reads Linux maps files and the maps streams of Linux
// minidumps.
func ParseMaps(r io.Reader) ([]Mapping, error) {
	type line struct{ start, end, off, inode uint64 }
	var lines []line
	err := procmaps.Scan(r, func(n int, l procmaps.Line, err error) error {
		if err != nil {
			// Only the lines of published lists matter; a malformed one
			// is an error, other lines are skipped.
			var se *procmaps.SyntaxError
			if errors.As(err, &se) && strings.Contains(se.Text, memfdPath) {
				return fmt.Errorf("parse maps: %w", err)
			}
			return nil
		}
		if l.File() != memfdPath {
			return nil
		}
		lines = append(lines, line{l.Start, l.End, l.Offset, l.Inode})
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(lines, func(i, j int) bool { return lines[i].start < lines[j].start })
	var out []Mapping
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if l.off != 0 {
			continue
		}
		m := Mapping{Addr: l.start, Size: l.end - l.start, Inode: l.inode}
		for j := i + 1; j < len(lines); j++ {
			n := lines[j]
			if n.inode != l.inode || n.start != m.Addr+m.Size || n.off != m.Size {
				break
			}
			m.Size += n.end - n.start
		}
		out = append(out, m)
	}
	return out, nil
}
