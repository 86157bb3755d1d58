package symhandler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"

	"github.com/fntable/fntable/symfile"
	"github.com/fntable/fntable/symfile/perfmap"
)

// AddSymbol adds a symbol to the virtual module at base (SymAddSymbol):
// name at the absolute address addr, size bytes long (0 when unknown).
// It is meant for JIT code: many goroutines may add and look up at once,
// and a run of additions costs O(n log n) in all, not O(n) each.
func (h *Handler) AddSymbol(base uint64, name string, addr, size uint64) error {
	if h.closed.Load() {
		return ErrClosed
	}
	m := h.ModuleAt(base)
	if m == nil || m.Base != base {
		return fmt.Errorf("add symbol %s: %w at %#x", name, ErrNoModule, base)
	}
	if !m.virtual {
		return fmt.Errorf("add symbol %s to %s: %w", name, m.Name, ErrNotVirtual)
	}
	if addr < m.Base || addr-m.Base >= m.Size || size > m.Base+m.Size-addr {
		return fmt.Errorf("add symbol %s: %w: [%#x, +%#x) is outside module %s [%#x, %#x)",
			name, ErrBadArgument, addr, size, m.Name, m.Base, m.Base+m.Size)
	}
	m.vmu.Lock()
	m.pending = append(m.pending, symfile.Symbol{Name: name, Addr: addr, Size: size, Kind: symfile.KindFunction})
	m.vmu.Unlock()
	return nil
}

// virtualTable returns the virtual module's symbols, merging the pending
// additions first.
func (m *Module) virtualTable() *symtab {
	m.vmu.Lock()
	defer m.vmu.Unlock()
	t := m.vtab.Load()
	if len(m.pending) == 0 {
		return t
	}
	slices.SortFunc(m.pending, symfile.Compare)
	merged := make([]symfile.Symbol, 0, len(t.syms)+len(m.pending))
	i, j := 0, 0
	for i < len(t.syms) && j < len(m.pending) {
		if symfile.Compare(t.syms[i], m.pending[j]) <= 0 {
			merged = append(merged, t.syms[i])
			i++
		} else {
			merged = append(merged, m.pending[j])
			j++
		}
	}
	merged = append(append(merged, t.syms[i:]...), m.pending[j:]...)
	m.pending = m.pending[:0]
	nt := newSymtab(merged)
	m.vtab.Store(nt)
	return nt
}

// ImportPerfMap reads a perf map (/tmp/perf-PID.map: "START SIZE name"
// lines, with or without 0x) into virtual modules named moduleName (""
// means the file's name) and returns them in address order.
//
// A JIT's entries may lie on both sides of a loaded module: V8
// (node --perf-basic-prof) lists the builtins embedded in the node
// binary as well as the code it generates on its heap, and a JIT may
// have code regions far apart. The entries are therefore split at the
// modules loaded when the map is read: each run of entries with no
// loaded module between them becomes one virtual module, from its first
// entry's start to its last entry's end, and all of them bear the same
// name (names need not be unique; "name!symbol" searches each). Entries
// that overlap a loaded module are left out, as perf leaves them out: it
// names an address in a mapped file from the file's symbols and consults
// the perf map only for anonymous memory. The file's own symbols, with
// their sizes, lines and inline frames, are what a profiler wants there;
// one CBA_EVENT (SevInfo) says how many entries were left out. An entry
// inside a virtual module loaded before (an earlier import of the same
// map) is left out too: unload those modules to import the map again.
// Load the target's modules first (Config.Invade or RefreshModules), or
// the virtual modules may cover them and keep them from loading.
//
// Lines it cannot parse are reported as one SevProblem CBA_EVENT and
// skipped. A map in which every entry lies in a loaded module gives no
// modules and no error. When a part cannot be loaded (a module was loaded
// at its place meanwhile), the others are still returned, together with
// the error.
func (h *Handler) ImportPerfMap(ctx context.Context, path, moduleName string) ([]*Module, error) {
	f, err := perfmap.Open(path)
	if err != nil {
		return nil, fmt.Errorf("import perf map: %w", err)
	}
	defer f.Close()
	return h.importPerfMap(ctx, f, path, moduleName)
}

// ImportPerfMapData is [ImportPerfMap] for a perf map read from r (a
// minidump's copy, say); source names it in events, errors and as the
// modules' ImageName, and is the default module name.
func (h *Handler) ImportPerfMapData(ctx context.Context, r io.Reader, source, moduleName string) ([]*Module, error) {
	f, err := perfmap.Parse(r)
	if err != nil {
		return nil, fmt.Errorf("import perf map %s: %w", source, err)
	}
	return h.importPerfMap(ctx, f, source, moduleName)
}

func (h *Handler) importPerfMap(ctx context.Context, f *perfmap.File, path, moduleName string) ([]*Module, error) {
	syms := f.Symbols()
	if n, _ := f.Skipped(); n > 0 {
		h.event(SevProblem, EventStatus, path, "%s: skipped %d malformed lines", path, n)
	}
	if len(syms) == 0 {
		return nil, fmt.Errorf("import perf map %s: %w", path, ErrNoSymbols)
	}
	if moduleName == "" {
		moduleName = filepath.Base(path)
	}
	parts, dropped := splitAtModules(syms, *h.modules.Load())
	if dropped > 0 {
		h.event(SevInfo, EventStatus, path, "%s: %d of %d entries lie in loaded modules, whose symbols name them", path, dropped, len(syms))
	}
	var mods []*Module
	var errs []error
	for _, part := range parts {
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("import perf map %s: %w", path, err))
			break
		}
		lo, hi := part[0].Addr, part[0].End()
		for _, s := range part {
			hi = max(hi, s.End(), s.Addr+1)
		}
		m, err := h.LoadModule(ctx, LoadRequest{ImageName: path, ModuleName: moduleName, Base: lo, Size: hi - lo, Flags: SLMFLAG_VIRTUAL})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m.vmu.Lock()
		m.pending = append(m.pending, part...)
		m.vmu.Unlock()
		mods = append(mods, m)
	}
	return mods, errors.Join(errs...)
}

// splitAtModules splits syms (sorted, not overlapping) into runs with no
// module of mods (sorted by Base, not overlapping) between or over their
// entries, leaving out the entries that overlap a module; dropped counts
// those. Each run is a subslice of syms: an entry left out has a module
// over it, so it ends a run.
func splitAtModules(syms []symfile.Symbol, mods []*Module) (parts [][]symfile.Symbol, dropped int) {
	start := -1  // syms[start:last+1] is the run being built; -1 when none
	last := -1   // the run's last entry
	j := 0       // mods[:j] end at or before the entry at hand
	cut := false // a module lies between the run and the entry at hand
	for i, s := range syms {
		for j < len(mods) && mods[j].Base+mods[j].Size <= s.Addr {
			j++
			cut = true
		}
		if j < len(mods) && mods[j].Base < max(s.End(), s.Addr+1) {
			dropped++ // over mods[j]
			continue
		}
		if start >= 0 && cut {
			parts = append(parts, syms[start:last+1])
			start = -1
		}
		if start < 0 {
			start = i
		}
		last, cut = i, false
	}
	if start >= 0 {
		parts = append(parts, syms[start:last+1])
	}
	return parts, dropped
}
