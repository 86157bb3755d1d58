package symhandler

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/fntable/fntable/symfile"
	"github.com/fntable/fntable/target"
)

// These are the errors returned by the handler, besides those of the
// readers (symfile.ErrUnrecognized, ...) and of symbol servers, which it
// wraps.
var (
	ErrClosed      = errors.New("symbol handler closed")
	ErrOverlap     = errors.New("module overlaps a loaded module")
	ErrNoModule    = errors.New("no module at that address")
	ErrNotVirtual  = errors.New("module is not virtual")
	ErrCanceled    = symfile.ErrCanceled
	ErrNoSymbols   = errors.New("no symbols found")
	ErrStopped     = target.ErrStopped // the same value as target's and functable's
	ErrBadArgument = errors.New("invalid argument")
)

// Config configures a [Handler]; the zero value is a handler with no
// target, the default options and the default search path.
type Config struct {
	// Target is the process or dump whose modules and memory the handler
	// serves (the hProcess of SymInitialize); nil for files only.
	Target target.Target
	// Options are the initial SYMOPT_* options; 0 means DefaultOptions.
	Options Options
	// SearchPath is the symbol search path (SymInitialize's UserSearchPath),
	// in the syntax of SetSearchPath; "" means the environment's
	// (_NT_SYMBOL_PATH, DEBUGINFOD_URLS) and the system debug directory.
	// The download limits of the environment (DEBUGINFOD_TIMEOUT,
	// DEBUGINFOD_RETRY_LIMIT, DEBUGINFOD_MAXTIME, DEBUGINFOD_MAXSIZE)
	// apply to the environment's path only; a path given here uses
	// symsrv's defaults (SYMOPT_DISABLE_SYMSRV_TIMEOUT lifts the time
	// limits of either).
	SearchPath string
	// Invade loads every module of Target at New (fInvadeProcess); with
	// SYMOPT_DEFERRED_LOADS their symbols are still read on first use.
	Invade bool
	// DebugDirs are the global debug directories searched for separate
	// debug files by build ID and debuglink; nil means /usr/lib/debug.
	DebugDirs []string
	// CacheDir, if not "", is where decompressed copies of compressed
	// debug sections are kept between processes (symfile.Options.CacheDir):
	// a module whose debug file has compressed DWARF, as distributions
	// ship them, then loads in milliseconds after the first time. ""
	// means no cache; DefaultCacheDir is the conventional place.
	CacheDir string
	// Progress, if not nil, receives every event as a typed value (the
	// idiomatic form of the CBA_* callbacks), after the registered
	// callback and on the same goroutine, inside the same delivery: it
	// must not call methods of the handler that send events (loads,
	// lookups, SetOptions), as they would wait for that delivery to end.
	// Returning false cancels the load the event belongs to, if any (up to
	// its SymbolsLoaded, which comes too late): what the load read is
	// dropped and the module stays deferred. It is otherwise ignored.
	Progress func(Event) bool
}

// Handler is a symbol handler for one target: the state SymInitialize
// creates for a process handle. It is safe for concurrent use by many
// goroutines (dbghelp is not); lookups do not block one another, and a
// module's symbols are read once even when many goroutines ask for them
// at the same time.
//
// The *Handler a [Callback] receives is a handle on the same handler that
// carries the delivery in progress: calls made through it from the
// callback's goroutine, while the callback runs, are nested in that
// delivery (see [Callback]).
type Handler struct {
	*handler
	// call is the call chain this handle belongs to: nil for the handle New
	// returns; set for the handles given to callbacks and used by loads.
	call *callChain
}

// callChain is what a call passes down to the calls it makes: whether it
// runs inside a delivery (and so holds the delivery slot) and which
// modules it is loading. It replaces a goroutine identity: the handle a
// callback receives carries it, so re-entry costs nothing to detect.
type callChain struct {
	delivering bool    // the chain holds the delivery slot
	loading    *Module // the module this link of the chain loads; nil if none
	cancel     func()  // cancels that load (a callback or Progress said stop)
	parent     *callChain
	// inside is the handle given to callbacks delivered from this chain:
	// the chain itself when it is delivering, else one that is.
	inside *Handler
}

// cancelLoad cancels the innermost load of the chain, if any.
func (c *callChain) cancelLoad() {
	for ; c != nil; c = c.parent {
		if c.loading != nil && c.cancel != nil {
			c.cancel()
			return
		}
	}
}

// isLoading reports whether the chain is loading m.
func (c *callChain) isLoading(m *Module) bool {
	for ; c != nil; c = c.parent {
		if c.loading == m {
			return true
		}
	}
	return false
}

// handler is the state shared by every handle on one Handler.
type handler struct {
	root   *Handler // the handle New returned
	inside *Handler // the handle given to callbacks of top-level calls

	cfg    Config
	opts   atomic.Uint32
	closed atomic.Bool

	mu      sync.Mutex // guards search and serializes module list changes
	search  *searchPath
	cb      atomic.Pointer[registration] // the callback; nil when none
	modules atomic.Pointer[[]*Module]    // sorted by Base; replaced, never changed

	deliv sync.Mutex // the delivery slot: held while a callback runs
}

// New returns a handler for cfg.Target (SymInitialize).
func New(cfg Config) (*Handler, error) {
	h := &Handler{handler: &handler{cfg: cfg}}
	h.root = h
	h.inside = &Handler{handler: h.handler, call: &callChain{delivering: true}}
	h.inside.call.inside = h.inside
	o := cfg.Options
	if o == 0 {
		o = DefaultOptions
	}
	h.opts.Store(uint32(o))
	sp, err := parseSearchPath(cfg.SearchPath, cfg.DebugDirs)
	if err != nil {
		return nil, err
	}
	h.search = sp
	h.modules.Store(&[]*Module{})
	if cfg.Invade && cfg.Target != nil {
		if err := h.RefreshModules(context.Background()); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// Close unloads every module and releases their files (SymCleanup). The
// target is not closed. Calls after Close that return an error fail with
// ErrClosed; FromAddr, FromName and ModuleAt find nothing. Calls in
// progress on other goroutines must have returned before Close is
// called: it releases the files they read.
func (h *Handler) Close() error {
	if h.closed.Swap(true) {
		return nil
	}
	h.mu.Lock()
	mods := *h.modules.Load()
	h.modules.Store(&[]*Module{})
	h.mu.Unlock()
	var errs []error
	for _, m := range mods {
		errs = append(errs, m.unload())
	}
	return errors.Join(errs...)
}

// Target returns the handler's target, nil when it has none.
func (h *Handler) Target() target.Target { return h.cfg.Target }

// Options returns the current options (SymGetOptions).
func (h *Handler) Options() Options { return Options(h.opts.Load()) }

// SetOptions replaces the options (SymSetOptions) and sends
// CBA_SET_OPTIONS with the new value. It returns the new options. Modules
// already loaded keep what they loaded; the options apply to later loads
// and lookups (so SYMOPT_UNDNAME takes effect at once).
func (h *Handler) SetOptions(o Options) Options {
	old := Options(h.opts.Swap(uint32(o)))
	if old != o {
		h.deliver(CBA_SET_OPTIONS, o)
	}
	return o
}

// RegisterCallback sets the handler's callback (SymRegisterCallback64),
// replacing any earlier one; fn nil removes it. userContext is passed to
// every call.
func (h *Handler) RegisterCallback(fn Callback, userContext any) error {
	if h.closed.Load() {
		return ErrClosed
	}
	if fn == nil {
		h.cb.Store(nil)
	} else {
		h.cb.Store(&registration{fn, userContext})
	}
	return nil
}

// deliver sends action to the callback and the Progress function (see
// send) and returns the callback's answer.
func (h *Handler) deliver(action Action, data any) bool {
	handled, stop := h.send(action, data)
	if stop {
		// Progress returned false: the load the event belongs to ends.
		h.call.cancelLoad()
	}
	return handled
}

// send delivers action to the callback and then, as a typed [Event], to
// Config.Progress: one delivery at a time, with no lock of the handler
// held. handled is the callback's answer (false when there is none); stop
// reports that Progress returned false. Unhandled CBA_EVENTs are resent as
// CBA_DEBUG_INFO when SYMOPT_DEBUG is set; CBA_DEBUG_INFO is sent only
// then.
//
// A call from inside a delivery (h's chain holds the slot) is delivered
// at once, nested; any other waits for the slot. The slot is released on
// every path, a callback that panics included.
func (h *Handler) send(action Action, data any) (handled, stop bool) {
	if action == CBA_DEBUG_INFO && h.Options()&SYMOPT_DEBUG == 0 {
		return false, false
	}
	reg := h.cb.Load()
	progress := h.cfg.Progress
	if reg == nil && progress == nil {
		return false, false
	}
	in := h.inside
	if h.call != nil {
		in = h.call.inside
	}
	if h.call == nil || !h.call.delivering {
		h.deliv.Lock()
		defer h.deliv.Unlock()
	}
	if reg != nil {
		handled = reg.fn(in, action, data, reg.ctx)
	}
	if progress != nil {
		if ev := typed(action, data); ev != nil {
			stop = !progress(ev)
		}
	}
	if action == CBA_EVENT && !handled && h.Options()&SYMOPT_DEBUG != 0 {
		if ev, ok := data.(*CBAEvent); ok {
			in.send(CBA_DEBUG_INFO, ev.Severity.String()+": "+ev.Desc)
		}
	}
	return handled, stop
}

// event sends a CBA_EVENT.
func (h *Handler) event(sev Severity, code EventCode, object any, format string, args ...any) {
	h.deliver(CBA_EVENT, &CBAEvent{Severity: sev, Code: code, Desc: fmt.Sprintf(format, args...), Object: object})
}

// ReadMemory reads the target's memory; what the target cannot supply
// (or all of it, without a target) is asked from the callback with
// CBA_READ_MEMORY.
func (h *Handler) ReadMemory(p []byte, addr uint64) (int, error) {
	n := 0
	var err error
	if t := h.cfg.Target; t != nil {
		n, err = t.ReadMemory(p, addr)
		if n == len(p) && err == nil {
			return n, nil
		}
		n = max(0, min(n, len(p)))
	} else {
		err = fmt.Errorf("read %d bytes at %#x: no target", len(p), addr)
	}
	rm := &ReadMemory{Addr: addr + uint64(n), Buf: p[n:]}
	if h.deliver(CBA_READ_MEMORY, rm) && rm.BytesRead > 0 {
		n += min(rm.BytesRead, len(rm.Buf))
		if n == len(p) {
			return n, nil
		}
	}
	return n, err
}

// Modules calls yield for each module in ascending base order
// (SymEnumerateModules64). It returns ErrStopped when yield returns false.
func (h *Handler) Modules(yield func(*Module) bool) error {
	if h.closed.Load() {
		return ErrClosed
	}
	for _, m := range *h.modules.Load() {
		if !yield(m) {
			return ErrStopped
		}
	}
	return nil
}

// ModuleAt returns the module containing addr, nil when none does
// (SymGetModuleBase64).
func (h *Handler) ModuleAt(addr uint64) *Module {
	mods := *h.modules.Load()
	i, _ := slices.BinarySearchFunc(mods, addr, func(m *Module, a uint64) int {
		if m.Base > a {
			return 1
		}
		return -1
	})
	if i == 0 {
		return nil
	}
	if m := mods[i-1]; addr-m.Base < m.Size {
		return m
	}
	return nil
}

// addModule inserts m, failing when it overlaps a module.
func (h *Handler) addModule(m *Module) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed.Load() {
		return ErrClosed
	}
	old := *h.modules.Load()
	for _, o := range old {
		if m.Base < o.Base+o.Size && o.Base < m.Base+m.Size {
			return fmt.Errorf("load module %s at %#x: %w %s at [%#x, %#x)", m.Name, m.Base, ErrOverlap, o.Name, o.Base, o.Base+o.Size)
		}
	}
	mods := append(slices.Clip(old), m)
	slices.SortFunc(mods, func(a, b *Module) int { return cmp.Compare(a.Base, b.Base) })
	h.modules.Store(&mods)
	return nil
}

// removeModule removes the module at base and returns it.
func (h *Handler) removeModule(base uint64) *Module {
	h.mu.Lock()
	defer h.mu.Unlock()
	old := *h.modules.Load()
	i := slices.IndexFunc(old, func(m *Module) bool { return m.Base == base })
	if i < 0 {
		return nil
	}
	m := old[i]
	mods := slices.Delete(slices.Clone(old), i, i+1)
	h.modules.Store(&mods)
	return m
}

// DefaultCacheDir returns the conventional Config.CacheDir: the directory
// named by $FNTABLE_CACHE_DIR, else "fntable/dwarf" under the user's cache
// directory ($XDG_CACHE_HOME, else ~/.cache). It returns "" when
// $FNTABLE_CACHE_DIR is "off" or no cache directory is known.
func DefaultCacheDir() string {
	if d, ok := os.LookupEnv("FNTABLE_CACHE_DIR"); ok {
		if d == "off" {
			return ""
		}
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "fntable", "dwarf")
}
