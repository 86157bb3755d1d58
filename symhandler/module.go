package symhandler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/fntable/fntable/symfile"
	"github.com/fntable/fntable/symfile/elfsym"
	"github.com/fntable/fntable/target"
)

// SymType is dbghelp's SYM_TYPE: what a module's symbols came from.
type SymType uint32

// The SYM_TYPE values. ELF files have no dbghelp type of their own: an ELF
// symbol table is reported as SymSym, DWARF or Go line tables as SymDia
// (full debug information), a perf map as SymVirtual.
const (
	SymNone     SymType = 0 // no symbols (not loaded, or the load failed)
	SymCoff     SymType = 1 // PE COFF symbol table
	SymCv       SymType = 2 // CodeView
	SymPdb      SymType = 3 // PDB
	SymExport   SymType = 4 // PE exports only
	SymDeferred SymType = 5 // not loaded yet (SYMOPT_DEFERRED_LOADS)
	SymSym      SymType = 6 // a symbol table (ELF .symtab/.dynsym)
	SymDia      SymType = 7 // full debug information (DWARF, Go pclntab)
	SymVirtual  SymType = 8 // a virtual module: symbols added with AddSymbol or a perf map
)

// String returns the dbghelp name without "Sym" ("none", "coff", ...).
func (t SymType) String() string {
	switch t {
	case SymNone:
		return "none"
	case SymCoff:
		return "coff"
	case SymCv:
		return "cv"
	case SymPdb:
		return "pdb"
	case SymExport:
		return "export"
	case SymDeferred:
		return "deferred"
	case SymSym:
		return "sym"
	case SymDia:
		return "dia"
	case SymVirtual:
		return "virtual"
	}
	return fmt.Sprintf("SymType(%d)", uint32(t))
}

// The SLMFLAG_* flags of SymLoadModuleEx.
const (
	SLMFLAG_VIRTUAL    = 0x1 // a module with no file: symbols come from AddSymbol
	SLMFLAG_NO_SYMBOLS = 0x4 // load the module without reading any symbols
)

// LoadRequest describes a module to load (the arguments of
// SymLoadModuleEx).
type LoadRequest struct {
	ImageName  string // the image file; "" for virtual and in-memory modules
	ModuleName string // "" means the image's base name
	// Base is where the module is loaded. 0 means the image's own
	// link-time base (ELF: its first PT_LOAD's page; PE: ImageBase), so
	// addresses are the file's link-time addresses, as llvm-symbolizer
	// takes them with --obj.
	Base  uint64
	Size  uint64 // 0 means the image's size; required for virtual modules
	Flags uint32 // SLMFLAG_*

	// InMemory reads the image from the target's memory at Base (through
	// ReadMemory, so a CBA_READ_MEMORY callback can supply it) when it has
	// no file.
	InMemory bool
	// Identity the caller knows (from a dump's module list); files found
	// elsewhere are checked against it.
	TimeDateStamp uint32
	CheckSum      uint32
	BuildID       []byte
}

// Module is a module of a handler: an image loaded at Base, its symbols
// read now or on first use. A Module is safe for concurrent use.
type Module struct {
	h         *Handler // the handle New returned
	Name      string   // short name: "libc.so.6", "ntdll.dll", "[vdso]"
	ImageName string   // the image file as given or found
	Base      uint64
	Size      uint64
	req       LoadRequest

	virtual bool
	noSyms  bool

	mu       sync.Mutex
	state    loadState
	loader   *callChain    // the call chain loading, while state == stateLoading
	done     chan struct{} // closed when a load ends
	loaded   *loaded       // after a successful load
	lastErr  error
	unloaded bool                   // removed from the handler: never load again
	ready    atomic.Pointer[loaded] // loaded, for lock-free lookups

	vmu     sync.Mutex       // guards pending, for virtual modules
	pending []symfile.Symbol // added, not yet in the published table
	vtab    atomic.Pointer[symtab]
}

type loadState uint8

const (
	stateDeferred loadState = iota
	stateLoading
	stateLoaded
	stateFailed
)

// loaded is what a load produced.
type loaded struct {
	src       symfile.Source // nil for virtual modules
	closer    io.Closer
	tab       *symtab
	bias      uint64 // Base - LinkBase: add to a file address to get the loaded one
	ident     symfile.Ident
	typ       SymType
	debugFile string
	lines     bool
	demangled sync.Map // raw name → demangled name
	// funcMap returns the map that names the outermost frame of an ELF
	// module (see Symbolize); nil for other formats.
	funcMap func() *elfsym.FunctionMap
}

// Info returns what is known about the module now (SymGetModuleInfo64),
// without loading its symbols.
func (m *Module) Info() ModuleInfo {
	info := ModuleInfo{Name: m.Name, ImageName: m.ImageName, Base: m.Base, Size: m.Size,
		TimeDateStamp: m.req.TimeDateStamp, CheckSum: m.req.CheckSum, Type: SymDeferred}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.virtual:
		info.Type = SymVirtual
		m.vmu.Lock()
		if t := m.vtab.Load(); t != nil {
			info.NumSyms = len(t.syms)
		}
		info.NumSyms += len(m.pending)
		m.vmu.Unlock()
	case m.state == stateLoaded:
		l := m.loaded
		info.Type = l.typ
		info.NumSyms = len(l.tab.syms)
		info.DebugFile = l.debugFile
		info.LineNumbers = l.lines
		info.BuildID = l.ident.BuildID
		info.PDB = l.ident.PDB
		if l.ident.TimeDateStamp != 0 {
			info.TimeDateStamp = l.ident.TimeDateStamp
		}
	case m.state == stateFailed:
		info.Type = SymNone
		info.Err = m.lastErr
	case m.noSyms:
		info.Type = SymNone
	}
	return info
}

// ModuleInfo is IMAGEHLP_MODULE64, the parts that apply.
type ModuleInfo struct {
	Name          string
	ImageName     string
	Base, Size    uint64
	TimeDateStamp uint32
	CheckSum      uint32
	NumSyms       int
	Type          SymType
	DebugFile     string            // the separate file the symbols came from, "" when the image
	LineNumbers   bool              // lines and inline frames are available
	BuildID       []byte            // ELF build ID
	PDB           *symfile.CodeView // the PE image's PDB identity
	Err           error             // why the last load failed
}

// LoadModule adds a module (SymLoadModuleEx). Without
// SYMOPT_DEFERRED_LOADS its symbols are read now, otherwise on first use;
// a virtual module (SLMFLAG_VIRTUAL) has only the symbols AddSymbol adds.
// A module may not overlap another (ErrOverlap).
func (h *Handler) LoadModule(ctx context.Context, req LoadRequest) (*Module, error) {
	if h.closed.Load() {
		return nil, ErrClosed
	}
	m := &Module{h: h.root, req: req, ImageName: req.ImageName, Base: req.Base, Size: req.Size,
		virtual: req.Flags&SLMFLAG_VIRTUAL != 0, noSyms: req.Flags&SLMFLAG_NO_SYMBOLS != 0}
	m.Name = req.ModuleName
	if m.Name == "" {
		m.Name = target.BaseName(req.ImageName)
	}
	if m.virtual {
		if req.Size == 0 || m.Name == "" || m.Name == "." {
			return nil, fmt.Errorf("load virtual module: %w: needs a name and a size", ErrBadArgument)
		}
		m.vtab.Store(&symtab{})
	} else if req.Base == 0 || req.Size == 0 {
		// The image decides where it is and how long.
		ident, err := h.identify(m)
		if err != nil {
			return nil, fmt.Errorf("load module %s: %w", req.ImageName, err)
		}
		if m.Base == 0 {
			m.Base = ident.LinkBase
		}
		if m.Size == 0 {
			m.Size = ident.ImageSize
		}
		if m.Size == 0 {
			m.Size = 1
		}
	}
	if m.Base+m.Size < m.Base {
		return nil, fmt.Errorf("load module %s: %w: [%#x, +%#x) wraps", m.Name, ErrBadArgument, m.Base, m.Size)
	}
	if err := h.addModule(m); err != nil {
		return nil, err
	}
	if !m.virtual && !m.noSyms && h.Options()&SYMOPT_DEFERRED_LOADS == 0 {
		if _, err := m.load(ctx, h); err != nil && !errors.Is(err, ErrCanceled) {
			return m, err
		}
	}
	return m, nil
}

// UnloadModule removes the module at base (SymUnloadModule64) and sends
// CBA_SYMBOLS_UNLOADED.
func (h *Handler) UnloadModule(base uint64) error {
	if h.closed.Load() {
		return ErrClosed
	}
	m := h.removeModule(base)
	if m == nil {
		return fmt.Errorf("unload module at %#x: %w", base, ErrNoModule)
	}
	err := m.unload()
	h.deliver(CBA_SYMBOLS_UNLOADED, &DeferredSymbolLoad{BaseOfImage: m.Base, FileName: m.ImageName, Module: m.Name,
		TimeDateStamp: m.req.TimeDateStamp, CheckSum: m.req.CheckSum})
	return err
}

// RefreshModules adds the target's modules that the handler does not have
// yet (SymRefreshModuleList). Modules that overlap a loaded one are
// skipped.
func (h *Handler) RefreshModules(ctx context.Context) error {
	if h.closed.Load() {
		return ErrClosed
	}
	t := h.cfg.Target
	if t == nil {
		return nil
	}
	var mods []target.Module
	if err := t.Modules(func(m target.Module) bool { mods = append(mods, m); return true }); err != nil {
		return fmt.Errorf("refresh modules: %w", err)
	}
	for _, tm := range mods {
		if h.ModuleAt(tm.Base) != nil {
			continue
		}
		req := LoadRequest{ImageName: tm.Path, ModuleName: tm.Name, Base: tm.Base, Size: tm.Size, InMemory: tm.InMemory,
			TimeDateStamp: tm.TimeDateStamp, CheckSum: tm.CheckSum, BuildID: tm.BuildID}
		if _, err := h.LoadModule(ctx, req); err != nil {
			if errors.Is(err, ErrOverlap) || errors.Is(err, ErrClosed) {
				continue
			}
			h.event(SevProblem, EventStatus, tm.Name, "module %s at %#x: %v", tm.Name, tm.Base, err)
		}
	}
	return nil
}

// Reload forgets a failed or loaded module's symbols so that the next use
// loads them again (after the search path changed, say), and reports
// whether it did: a module being loaded is left to that load (which may
// still use the old search path), and Reload returns false; call it again
// once the load has ended. As for Close, lookups in the module on other
// goroutines must have returned: the files they read are released.
func (m *Module) Reload() bool {
	m.mu.Lock()
	if m.state == stateLoading {
		m.mu.Unlock()
		return false
	}
	l := m.loaded
	m.loaded, m.state, m.lastErr = nil, stateDeferred, nil
	m.ready.Store(nil)
	m.mu.Unlock()
	if l != nil && l.closer != nil {
		l.closer.Close()
	}
	return true
}

func (m *Module) unload() error {
	m.mu.Lock()
	l := m.loaded
	m.unloaded = true
	m.loaded = nil
	m.ready.Store(nil)
	if m.state != stateLoading {
		m.state, m.lastErr = stateFailed, ErrClosed
	}
	m.mu.Unlock()
	if l != nil && l.closer != nil {
		return l.closer.Close()
	}
	return nil
}

// symbols returns the module's loaded state, loading it first when
// needed through h. It returns nil when the module has no symbols (virtual
// modules use vtab), when its load failed, or when h's call chain is the
// one loading it (a callback that calls back into the handler).
func (m *Module) symbols(ctx context.Context, h *Handler) *loaded {
	l, _ := m.load(ctx, h)
	return l
}

// load loads the module's symbols once; concurrent callers wait for the
// one that loads. h is the caller's handle: the load runs as a link of
// its call chain, so that the load's callbacks may call back.
func (m *Module) load(ctx context.Context, h *Handler) (*loaded, error) {
	if m.virtual || m.noSyms {
		return nil, nil
	}
	if l := m.ready.Load(); l != nil {
		return l, nil // the common case: no lock
	}
	for {
		m.mu.Lock()
		switch m.state {
		case stateLoaded:
			l := m.loaded
			m.mu.Unlock()
			return l, nil
		case stateFailed:
			err := m.lastErr
			m.mu.Unlock()
			return nil, err
		case stateLoading:
			if h.call.isLoading(m) {
				m.mu.Unlock()
				return nil, nil
			}
			if h.call != nil && h.call.delivering {
				// Called from a callback, which holds the delivery slot:
				// the goroutine loading m may be waiting for that slot to
				// deliver its own events, so waiting for it here could
				// wait forever. m has no symbols for this call.
				m.mu.Unlock()
				return nil, nil
			}
			done := m.done
			m.mu.Unlock()
			select {
			case <-done:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		lh := loadingHandle(h, m)
		lctx, cancel := context.WithCancel(ctx)
		lh.call.cancel = cancel
		m.state, m.loader, m.done = stateLoading, lh.call, make(chan struct{})
		m.mu.Unlock()

		l, err := m.loadSymbols(lctx, lh)
		if err == nil && lctx.Err() != nil && ctx.Err() == nil {
			// Config.Progress said stop during the load: what it read is
			// dropped, and the module stays deferred.
			if l != nil && l.closer != nil {
				l.closer.Close()
			}
			l, err = nil, ErrCanceled
		}
		cancel()

		m.mu.Lock()
		if m.unloaded {
			// Unloaded while it loaded: drop what the load produced.
			if l != nil && l.closer != nil {
				l.closer.Close()
			}
			l, err = nil, ErrClosed
		}
		switch {
		case err == nil:
			m.state, m.loaded = stateLoaded, l
			m.ready.Store(l)
		case errors.Is(err, ErrCanceled) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
			m.state = stateDeferred // a later use may try again
		default:
			m.state, m.lastErr = stateFailed, err
		}
		m.loader = nil
		close(m.done)
		m.mu.Unlock()
		return l, err
	}
}

// loadSymbols runs h.loadSymbols; if a callback panics, the module goes
// back to deferred and those waiting for the load are released before
// the panic goes on.
func (m *Module) loadSymbols(ctx context.Context, h *Handler) (l *loaded, err error) {
	ok := false
	defer func() {
		if ok {
			return
		}
		m.mu.Lock()
		m.state, m.loader = stateDeferred, nil
		close(m.done)
		m.mu.Unlock()
	}()
	l, err = h.loadSymbols(ctx, m)
	ok = true
	return l, err
}

// loadingHandle returns the handle a load of m started through h runs
// with: a new link of h's call chain.
func loadingHandle(h *Handler, m *Module) *Handler {
	c := &callChain{loading: m, parent: h.call}
	lh := &Handler{handler: h.handler, call: c}
	if h.call != nil && h.call.delivering {
		c.delivering, c.inside = true, lh
	} else {
		c.inside = &Handler{handler: h.handler, call: &callChain{delivering: true, loading: m, parent: h.call}}
		c.inside.call.inside = c.inside
	}
	return lh
}

// symtab is a module's symbols in loaded (not link-time) order, sorted.
type symtab struct {
	syms []symfile.Symbol // sorted by Addr; file addresses (add bias)
	// byName indexes syms by name for lookups by name; built on first use.
	nameOnce  sync.Once
	byName    map[string][]int32
	lowerOnce sync.Once
	lower     map[string][]int32 // byName with lower-cased keys
}

func newSymtab(syms []symfile.Symbol) *symtab {
	return &symtab{syms: syms}
}

// find returns the index of the symbol that contains addr (a file
// address), or -1. A symbol with a size contains [Addr, Addr+Size); one
// without a size contains addresses up to the next symbol's start. Among
// symbols that contain addr the one that starts last wins, functions
// before others.
func (t *symtab) find(addr uint64) int {
	syms := t.syms
	i, _ := slices.BinarySearchFunc(syms, addr, func(s symfile.Symbol, a uint64) int {
		if s.Addr > a {
			return 1
		}
		return -1
	})
	// syms[:i] start at or before addr.
	best := -1
	for j := i - 1; j >= 0 && j >= i-maxBackScan; j-- {
		s := syms[j]
		if s.Kind == symfile.KindThreadLocal {
			continue // an offset in the TLS block, not an address
		}
		if s.Size == 0 {
			if best < 0 && j == i-1 {
				best = j
			}
			continue
		}
		if addr-s.Addr < s.Size {
			if best < 0 || syms[best].Size == 0 || syms[best].Addr < s.Addr ||
				syms[best].Addr == s.Addr && syms[best].Kind != symfile.KindFunction && s.Kind == symfile.KindFunction {
				best = j
			}
			if s.Addr < syms[i-1].Addr {
				break
			}
		}
	}
	return best
}

// maxBackScan bounds how far find looks back past symbols that end before
// the address (a nested or overlapping symbol set).
const maxBackScan = 64
