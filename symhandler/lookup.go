package symhandler

import (
	"context"
	"fmt"
	"strings"

	"github.com/ianlancetaylor/demangle"

	"github.com/fntable/fntable/symfile"
)

// Symbol is SYMBOL_INFO: a symbol where its module is loaded.
type Symbol struct {
	Name    string       // demangled when SYMOPT_UNDNAME is set, else as stored
	RawName string       // as stored in the file
	Address uint64       // where it is in the target
	Size    uint64       // bytes; 0 when the file does not say
	Kind    symfile.Kind // function, data or other
	ModBase uint64       // the module's base
	Module  string       // the module's name
}

// Frame is one level of the inline chain at an address.
type Frame struct {
	Function string // demangled when SYMOPT_UNDNAME is set; "" when unknown
	File     string // "" when unknown
	Line     int    // 0 when unknown
	Column   int    // 0 when unknown
}

// Location is everything the handler knows about an address.
type Location struct {
	Address      uint64
	Module       *Module // nil when no module contains the address
	Symbol       *Symbol // the symbol containing the address; nil when none
	Displacement uint64  // Address - Symbol.Address
	// Frames are the inlined calls at the address, innermost first, ending
	// with the containing function (llvm-symbolizer's order). Without line
	// information it holds just the containing function, when known.
	Frames []Frame
}

// Symbolize returns what is known about addr: module, containing symbol
// and displacement, and the inline frames with source positions. It loads
// the module's symbols if they are deferred; ctx cancels that load. A
// module whose symbols cannot be loaded gives a Location with only the
// module (the failure was reported through the callbacks); an error is
// returned only when the debug information is there but unreadable, when
// ctx ended before the symbols could be read (ctx.Err()), and after Close
// (ErrClosed).
func (h *Handler) Symbolize(ctx context.Context, addr uint64) (Location, error) {
	if h.closed.Load() {
		return Location{Address: addr}, ErrClosed
	}
	return h.locate(ctx, addr, true)
}

// locate finds addr's module and symbol and, with frames, its inline
// frames (which cost a line-table and DIE lookup that FromAddr does not
// need).
func (h *Handler) locate(ctx context.Context, addr uint64, frames bool) (Location, error) {
	loc := Location{Address: addr}
	if addr == 0 && h.Options()&SYMOPT_ALLOW_ZERO_ADDRESS == 0 {
		return loc, nil
	}
	m := h.moduleFor(addr)
	if m == nil {
		return loc, nil
	}
	loc.Module = m
	if m.virtual {
		t := m.virtualTable()
		if i := t.find(addr); i >= 0 {
			s := h.symbol(m, nil, t.syms[i], 0)
			loc.Symbol, loc.Displacement = &s, addr-s.Address
			if frames {
				loc.Frames = []Frame{{Function: s.Name}}
			}
		}
		return loc, nil
	}
	l := m.symbols(ctx, h)
	if l == nil {
		// No symbols: none to be had, or ctx ended the wait for them.
		return loc, ctx.Err()
	}
	fa := addr - l.bias
	if i := l.tab.find(fa); i >= 0 {
		s := h.symbol(m, l, l.tab.syms[i], l.bias)
		loc.Symbol, loc.Displacement = &s, addr-s.Address
	}
	if !frames {
		return loc, nil
	}
	var err error
	if l.lines {
		var raw []symfile.Frame
		raw, err = l.src.Frames(nil, fa)
		if len(raw) > 0 {
			loc.Frames = make([]Frame, len(raw))
			for i, f := range raw {
				loc.Frames[i] = Frame{Function: h.displayName(l, f.Function), File: f.File, Line: f.Line, Column: f.Column}
			}
		}
	}
	outer, named := l.outerName(fa)
	switch {
	case len(loc.Frames) > 0 && named:
		loc.Frames[len(loc.Frames)-1].Function = h.displayName(l, outer)
	case len(loc.Frames) == 0 && named && l.lines:
		loc.Frames = []Frame{{Function: h.displayName(l, outer)}}
	case len(loc.Frames) == 0 && loc.Symbol != nil:
		loc.Frames = []Frame{{Function: loc.Symbol.Name}}
	}
	if err != nil {
		err = fmt.Errorf("symbolize %#x in %s: %w", addr, m.Name, err)
	}
	return loc, err
}

// outerName returns the name llvm-symbolizer 14 gives the function
// containing the file address fa of an ELF module: the name from the
// image's own symbol table that LLVM's getNameFromSymbolTable finds
// (elfsym.FunctionMap). ok is false for other formats and where that
// table names nothing.
func (l *loaded) outerName(fa uint64) (name string, ok bool) {
	if l.funcMap == nil {
		return "", false
	}
	s, ok := l.funcMap().Lookup(fa)
	return s.Name, ok && s.Name != ""
}

// moduleFor returns the module containing addr, asking CBA_MAP_JIT_SYMBOL
// once when none does.
func (h *Handler) moduleFor(addr uint64) *Module {
	if m := h.ModuleAt(addr); m != nil {
		return m
	}
	if h.deliver(CBA_MAP_JIT_SYMBOL, &JITSymbolMap{Address: addr}) {
		return h.ModuleAt(addr)
	}
	return nil
}

// FromAddr returns the symbol containing addr and addr's displacement from
// it (SymFromAddr). ok is false when no symbol contains addr.
func (h *Handler) FromAddr(addr uint64) (sym Symbol, displacement uint64, ok bool) {
	loc, _ := h.locate(context.Background(), addr, false)
	if loc.Symbol == nil {
		return Symbol{}, 0, false
	}
	return *loc.Symbol, loc.Displacement, true
}

// Line is IMAGEHLP_LINE64: the source position of an address.
type Line struct {
	File   string
	Line   int
	Column int
}

// LineFromAddr returns the source position of addr, in the innermost
// inlined call (SymGetLineFromAddr64). ok is false when there is no line
// information for addr.
func (h *Handler) LineFromAddr(addr uint64) (line Line, ok bool, err error) {
	if h.closed.Load() {
		return Line{}, false, ErrClosed
	}
	loc, err := h.Symbolize(context.Background(), addr)
	if len(loc.Frames) == 0 || loc.Frames[0].Line == 0 {
		return Line{}, false, err
	}
	f := loc.Frames[0]
	return Line{File: f.File, Line: f.Line, Column: f.Column}, true, err
}

// symbol converts a file symbol to a Symbol of module m.
func (h *Handler) symbol(m *Module, l *loaded, s symfile.Symbol, bias uint64) Symbol {
	return Symbol{Name: h.displayName(l, s.Name), RawName: s.Name, Address: s.Addr + bias, Size: s.Size, Kind: s.Kind,
		ModBase: m.Base, Module: m.Name}
}

// displayName demangles name when SYMOPT_UNDNAME is set, caching the
// result in the module's load.
func (h *Handler) displayName(l *loaded, name string) string {
	if h.Options()&SYMOPT_UNDNAME == 0 || name == "" {
		return name
	}
	if l == nil {
		return demangleName(name)
	}
	if v, ok := l.demangled.Load(name); ok {
		return v.(string)
	}
	d := demangleName(name)
	l.demangled.Store(name, d)
	return d
}

// demangleName demangles C++ (Itanium) and Rust (legacy and v0) names,
// and undoes the escapes Go's linker puts in package paths
// ("gopkg.in/yaml%2ev3.Marshal" is gopkg.in/yaml.v3.Marshal); other names
// (C, plain Go) are returned as they are. Legacy Rust names lose their
// hash.
func demangleName(name string) string {
	if strings.IndexByte(name, '%') >= 0 {
		return unescapeGo(name)
	}
	if len(name) < 2 || name[0] != '_' || !strings.HasPrefix(name, "_Z") && !strings.HasPrefix(name, "_R") && !strings.HasPrefix(name, "__Z") {
		return name
	}
	if d, ok := demangleRustLegacy(name); ok {
		return d
	}
	return demangle.Filter(name)
}

// unescapeGo decodes the %XX escapes of a Go symbol name (the linker's
// PathToPrefix escapes '.' in a path's last element, '%', '"', blanks,
// control and non-ASCII bytes). Invalid escapes are left as they are.
func unescapeGo(name string) string {
	var b []byte
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '%' && i+2 < len(name) && isHex(name[i+1]) && isHex(name[i+2]) {
			if b == nil {
				b = append(make([]byte, 0, len(name)), name[:i]...)
			}
			b = append(b, unhex(name[i+1])<<4|unhex(name[i+2]))
			i += 2
			continue
		}
		if b != nil {
			b = append(b, c)
		}
	}
	if b == nil {
		return name
	}
	return string(b)
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}
