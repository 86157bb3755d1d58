package target

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
)

// maxMapsLine bounds a line of a maps listing (a path is at most PATH_MAX).
const maxMapsLine = 64 << 10

// maxModules bounds the modules taken from one maps listing.
const maxModules = 1 << 16

// ModulesFromMaps returns the modules of a /proc/PID/maps listing (also the
// format of a Linux minidump's maps stream), in ascending Base order.
//
// The lines of one file (same device, inode and path) make one module:
// its Base is the start of its lowest mapping minus that mapping's file
// offset, so Base is where file offset 0 would be mapped, and its Size
// reaches the end of its highest mapping. Only the lines of files
// (absolute paths, including "(deleted)" ones) and the "[vdso]" image,
// which is complete in memory, become modules; anonymous memory, the heap,
// stacks, "[vsyscall]", "[vvar]" and memfds do not.
func ModulesFromMaps(r io.Reader) ([]Module, error) {
	type key struct {
		dev, inode, path string
	}
	var mods []Module
	index := map[key]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxMapsLine)
	for n := 1; sc.Scan(); n++ {
		// start-end perms offset dev inode [path]
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			if len(strings.TrimSpace(sc.Text())) == 0 {
				continue
			}
			return nil, fmt.Errorf("parse maps line %d: malformed %q", n, sc.Text())
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		off, err3 := strconv.ParseUint(f[2], 16, 64)
		if !ok || err1 != nil || err2 != nil || err3 != nil || end <= start {
			return nil, fmt.Errorf("parse maps line %d: malformed %q", n, sc.Text())
		}
		name := ""
		if len(f) > 5 {
			// The path may contain spaces: it is everything after the inode.
			rest := sc.Text()
			for i := 0; i < 5; i++ {
				rest = strings.TrimLeft(rest, " \t")
				if j := strings.IndexAny(rest, " \t"); j >= 0 {
					rest = rest[j:]
				} else {
					rest = ""
				}
			}
			name = strings.TrimLeft(rest, " \t")
		}
		var m Module
		switch {
		case name == "[vdso]":
			m = Module{Name: name, Base: start, Size: end - start, InMemory: true}
		case strings.HasPrefix(name, "/") && !strings.HasPrefix(name, "/memfd:"):
			p := strings.TrimSuffix(name, " (deleted)")
			if off > start {
				continue // cannot be where the file's start is mapped
			}
			m = Module{Name: path.Base(p), Path: p, Base: start - off, Size: end - (start - off)}
		default:
			continue
		}
		k := key{f[3], f[4], name}
		if i, ok := index[k]; ok {
			prev := &mods[i]
			if m.Base < prev.Base {
				prevEnd := prev.End()
				prev.Base = m.Base
				prev.Size = max(prevEnd, m.End()) - m.Base
			} else {
				prev.Size = max(prev.End(), end) - prev.Base
			}
			continue
		}
		if len(mods) == maxModules {
			return nil, fmt.Errorf("parse maps: more than %d modules", maxModules)
		}
		index[k] = len(mods)
		mods = append(mods, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("parse maps: %w", err)
	}
	SortModules(mods)
	return mods, nil
}
