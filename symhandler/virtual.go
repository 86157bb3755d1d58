package symhandler

import (
	"context"
	"fmt"
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
// lines, with or without 0x) into a new virtual module spanning its
// symbols, named moduleName ("" means the file's name). Lines it cannot
// parse are reported as one sevProblem CBA_EVENT and skipped.
func (h *Handler) ImportPerfMap(ctx context.Context, path, moduleName string) (*Module, error) {
	f, err := perfmap.Open(path)
	if err != nil {
		return nil, fmt.Errorf("import perf map: %w", err)
	}
	defer f.Close()
	syms := f.Symbols()
	if n, _ := f.Skipped(); n > 0 {
		h.event(SevProblem, EventStatus, path, "%s: skipped %d malformed lines", path, n)
	}
	if len(syms) == 0 {
		return nil, fmt.Errorf("import perf map %s: %w", path, ErrNoSymbols)
	}
	lo, hi := syms[0].Addr, syms[0].End()
	for _, s := range syms {
		hi = max(hi, s.End(), s.Addr+1)
	}
	if moduleName == "" {
		moduleName = filepath.Base(path)
	}
	m, err := h.LoadModule(ctx, LoadRequest{ImageName: path, ModuleName: moduleName, Base: lo, Size: hi - lo, Flags: SLMFLAG_VIRTUAL})
	if err != nil {
		return nil, err
	}
	m.vmu.Lock()
	m.pending = append(m.pending, syms...)
	m.vmu.Unlock()
	return m, nil
}
