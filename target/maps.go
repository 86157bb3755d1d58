package target

import (
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/fntable/fntable/internal/procmaps"
)

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
		dev   string
		inode uint64
		path  string
	}
	var mods []Module
	index := map[key]int{}
	err := procmaps.Scan(r, func(n int, l procmaps.Line, err error) error {
		if err != nil {
			return fmt.Errorf("parse maps: %w", err)
		}
		start, end, off, name := l.Start, l.End, l.Offset, l.Path
		var m Module
		switch {
		case name == "[vdso]":
			m = Module{Name: name, Base: start, Size: end - start, InMemory: true}
		case strings.HasPrefix(name, "/") && !strings.HasPrefix(name, "/memfd:"):
			p := l.File()
			if off > start {
				return nil // cannot be where the file's start is mapped
			}
			m = Module{Name: path.Base(p), Path: p, Base: start - off, Size: end - (start - off)}
		default:
			return nil
		}
		k := key{l.Dev, l.Inode, name}
		if i, ok := index[k]; ok {
			prev := &mods[i]
			if m.Base < prev.Base {
				prevEnd := prev.End()
				prev.Base = m.Base
				prev.Size = max(prevEnd, m.End()) - m.Base
			} else {
				prev.Size = max(prev.End(), end) - prev.Base
			}
			return nil
		}
		if len(mods) == maxModules {
			return fmt.Errorf("parse maps: more than %d modules", maxModules)
		}
		index[k] = len(mods)
		mods = append(mods, m)
		return nil
	})
	if err != nil {
		return nil, err
	}
	SortModules(mods)
	return mods, nil
}
