package remote

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/fntable/fntable/functable"
)

// Mapping is a published list in a process's address space.
type Mapping struct {
	Addr  uint64 // address of the list's header (the mapping's file offset 0)
	Size  uint64 // bytes mapped there when the mapping was found; the list may have grown since
	Inode uint64 // the memfd's inode, which tells the lists of one process apart
}

// memfdPath is the path /proc/PID/maps shows for a published list.
const memfdPath = "/memfd:" + functable.MemfdName

// maxMapsLine bounds a line of a maps file (a path is at most PATH_MAX).
const maxMapsLine = 64 << 10

// ParseMaps returns the published lists in a /proc/PID/maps listing, in
// address order: the runs of the memfd "fntable-function-tables" that
// start at file offset 0, with the contiguous lines that follow them
// merged. It reads Linux maps files and the maps streams of Linux
// minidumps.
func ParseMaps(r io.Reader) ([]Mapping, error) {
	type line struct{ start, end, off, inode uint64 }
	var lines []line
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxMapsLine)
	for n := 1; sc.Scan(); n++ {
		// start-end perms offset dev inode [path]
		f := strings.Fields(sc.Text())
		if len(f) < 6 {
			continue
		}
		path := strings.Join(f[5:], " ")
		if path != memfdPath && path != memfdPath+" (deleted)" {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		off, err3 := strconv.ParseUint(f[2], 16, 64)
		inode, err4 := strconv.ParseUint(f[4], 10, 64)
		if !ok || err1 != nil || err2 != nil || err3 != nil || err4 != nil || end <= start {
			return nil, fmt.Errorf("parse maps line %d: malformed %q", n, sc.Text())
		}
		lines = append(lines, line{start, end, off, inode})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("parse maps: %w", err)
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
