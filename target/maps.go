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

// maxSegmentSlide bounds how much further apart two consecutive segments
// of one image can be in memory than in the file: the alignment padding
// between them, at most one largest page (1 GiB on x86-64); the PT_LOAD
// alignment of common images is 4 KiB to 2 MiB.
const maxSegmentSlide = 1 << 30

// ModulesFromMaps returns the modules of a /proc/PID/maps listing (also the
// format of a Linux minidump's maps stream), in ascending Base order.
//
// Only the lines of files (absolute paths, including "(deleted)" ones,
// but not memfds) and the "[vdso]" image, which is complete in memory,
// become modules; anonymous memory, the heap, stacks, "[vsyscall]",
// "[vvar]" and memfds do not.
//
// A module is a run of mappings of one file (same device, inode and path)
// that are consecutive in the listing, as the loader (ld.so, or the
// kernel for the executable) lays out an image's segments one after
// another; libdwfl's dwfl_linux_proc_report (eu-stack) groups them so,
// and the checks on offsets below keep a file mapped again from joining
// them. The run's first mapping gives the module's Base: its start minus
// its file offset, where file offset 0 is (or would be) mapped. Its Size
// reaches the end of the run's highest mapping. A mapping of the same
// file continues the run when
//
//   - no mapping of another file (a memfd included) nor the vDSO lies
//     between them; anonymous memory and the kernel's pseudo-mappings
//     ("[heap]") do not end a run, so that a module's .bss, the gaps
//     between the segments of an image aligned to large (huge) pages,
//     and a text segment a program has moved onto anonymous huge pages
//     (node --use-largepages) stay inside it;
//   - its file offset is not 0: a mapping of the file's first bytes is
//     where a new image of it starts;
//   - compared with the run's last accessible mapping (not "---p": the
//     PROT_NONE filler ld.so leaves in the gaps of a large-page aligned
//     image keeps the first mapping's offsets, which run past those of
//     the next segment), its file offset is not lower and its
//     start−offset is not lower nor more than 1 GiB higher:
//     the segments of an image follow one another in the file and in
//     memory, and the space between two of them in memory exceeds that
//     in the file by alignment padding only.
//
// A mapping of a file that does not continue a run starts a new module
// when its file offset is 0 (the same library loaded twice, with
// dlmopen, or a program that maps its own file again), or when no
// mapping of the file in the whole listing has offset 0 (its header was
// unmapped, or it is a data file mapped from an offset). Any other mapping
// of a file (part of it mapped again elsewhere, as V8 maps node's
// embedded builtins into its code range) is a data mapping and is left
// out: its file's start is mapped elsewhere, so no Base can be given to
// it, and a module from its start−offset would claim the memory below
// it. A line whose offset exceeds its start address is left out for the
// same reason.
//
// Reference: elfutils libdwfl/linux-proc-maps.c (proc_maps_report).
func ModulesFromMaps(r io.Reader) ([]Module, error) {
	// The lines that matter (files and the vDSO), and the files mapped
	// from offset 0 somewhere.
	var lines []procmaps.Line
	headed := map[fileKey]bool{}
	err := procmaps.Scan(r, func(_ int, l procmaps.Line, err error) error {
		if err != nil {
			return fmt.Errorf("parse maps: %w", err)
		}
		if isFile(l) || l.Path == "[vdso]" || isMemfd(l) {
			lines = append(lines, l)
		}
		if isFile(l) && l.Offset == 0 {
			headed[keyOf(l)] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var mods []Module
	open := -1 // index in mods of the module whose run is open, or -1
	var (
		openKey  fileKey
		lastOff  uint64 // file offset of the run's last accessible mapping
		lastBase uint64 // its start minus its offset
	)
	for _, l := range lines {
		start, end, off := l.Start, l.End, l.Offset
		var m Module
		switch {
		case isFile(l):
			k := keyOf(l)
			if open >= 0 && k == openKey && off != 0 && off <= start &&
				off >= lastOff && start-off >= lastBase && start-off-lastBase <= maxSegmentSlide {
				o := &mods[open]
				o.Size = max(o.End(), end) - o.Base
				if !strings.HasPrefix(l.Perms, "---") {
					lastOff, lastBase = off, start-off
				}
				continue
			}
			open = -1
			if off > start || off != 0 && headed[k] {
				continue // a data mapping
			}
			p := l.File()
			m = Module{Name: path.Base(p), Path: p, Base: start - off, Size: end - (start - off)}
		case l.Path == "[vdso]":
			open = -1
			m = Module{Name: l.Path, Base: start, Size: end - start, InMemory: true}
		default: // a memfd: another file, but no module
			open = -1
			continue
		}
		if len(mods) == maxModules {
			return nil, fmt.Errorf("parse maps: more than %d modules", maxModules)
		}
		if !m.InMemory {
			open, openKey, lastOff, lastBase = len(mods), keyOf(l), l.Offset, m.Base
		}
		mods = append(mods, m)
	}
	SortModules(mods)
	return mods, nil
}

// fileKey identifies a mapped file in a maps listing.
type fileKey struct {
	dev   string // "major:minor"
	inode uint64
	path  string // as listed, " (deleted)" included
}

func keyOf(l procmaps.Line) fileKey { return fileKey{l.Dev, l.Inode, l.Path} }

// isMemfd reports whether l maps a memfd (memfd_create), which is a file
// but never a module.
func isMemfd(l procmaps.Line) bool { return strings.HasPrefix(l.Path, "/memfd:") }

// isFile reports whether l maps a file that can be a module.
func isFile(l procmaps.Line) bool { return strings.HasPrefix(l.Path, "/") && !isMemfd(l) }
