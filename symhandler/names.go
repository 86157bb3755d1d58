package symhandler

import (
	"context"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/ianlancetaylor/demangle"
)

// FromName returns the symbol called name (SymFromName). name may be
// qualified with a module, "module!name". It matches the stored name, the
// demangled name and the demangled name without parameters ("ns::f" finds
// "ns::f(int)"); with SYMOPT_CASE_INSENSITIVE case is ignored. Deferred
// modules are loaded as needed. When several symbols match, the
// callback chooses with CBA_DUPLICATE_SYMBOL; without an answer the first,
// in module and address order, is returned.
func (h *Handler) FromName(name string) (Symbol, bool) {
	modName, symName, qualified := strings.Cut(name, "!")
	if !qualified {
		symName, modName = name, ""
	}
	ci := h.Options()&SYMOPT_CASE_INSENSITIVE != 0
	key := symName
	if ci {
		key = strings.ToLower(key)
	}
	var found []Symbol
	for _, m := range *h.modules.Load() {
		if qualified && !sameName(m.Name, modName, true) && !sameName(strings.TrimSuffix(m.Name, ".dll"), modName, true) {
			continue
		}
		tab, l, bias := m.table(context.Background(), h)
		if tab == nil {
			continue
		}
		for _, i := range tab.names(ci)[key] {
			found = append(found, h.symbol(m, l, tab.syms[i], bias))
		}
	}
	switch len(found) {
	case 0:
		return Symbol{}, false
	case 1:
		return found[0], true
	}
	d := &DuplicateSymbol{Symbols: found}
	if h.deliver(CBA_DUPLICATE_SYMBOL, d) && d.SelectedSymbol >= 0 && d.SelectedSymbol < len(found) {
		return found[d.SelectedSymbol], true
	}
	return found[0], true
}

// EnumSymbols calls yield for every symbol whose name matches mask
// (SymEnumSymbols), in module then address order. mask is
// "[module!]pattern" where both parts may use * (any run) and ? (any one
// character); an empty pattern is *. Names are matched as they are
// displayed (demangled with SYMOPT_UNDNAME); case is ignored with
// SYMOPT_CASE_INSENSITIVE, and always for module names. Deferred modules
// whose name matches are loaded. It returns ErrStopped when yield returns
// false.
func (h *Handler) EnumSymbols(ctx context.Context, mask string, yield func(Symbol) bool) error {
	if h.closed.Load() {
		return ErrClosed
	}
	modMask, symMask, qualified := strings.Cut(mask, "!")
	if !qualified {
		symMask, modMask = mask, "*"
	}
	if symMask == "" {
		symMask = "*"
	}
	ci := h.Options()&SYMOPT_CASE_INSENSITIVE != 0
	for _, m := range *h.modules.Load() {
		if !match(modMask, m.Name, true) {
			continue
		}
		tab, l, bias := m.table(ctx, h)
		if tab == nil {
			continue
		}
		for _, s := range tab.syms {
			sym := h.symbol(m, l, s, bias)
			if match(symMask, sym.Name, ci) && !yield(sym) {
				return ErrStopped
			}
		}
	}
	return ctx.Err()
}

// table returns a module's symbol table, its load and its bias, loading
// deferred symbols; nil when it has none.
func (m *Module) table(ctx context.Context, h *Handler) (*symtab, *loaded, uint64) {
	if m.virtual {
		return m.virtualTable(), nil, 0
	}
	l := m.symbols(ctx, h)
	if l == nil {
		return nil, nil, 0
	}
	return l.tab, l, l.bias
}

// names indexes the table by stored name, demangled name and demangled
// name without parameters; lower-cased for case-insensitive lookups. Each
// index is built on first use.
func (t *symtab) names(caseInsensitive bool) map[string][]int32 {
	t.nameOnce.Do(func() {
		t.byName = make(map[string][]int32, len(t.syms))
		for i, s := range t.syms {
			keys := [3]string{s.Name}
			if d := demangleName(s.Name); d != s.Name {
				keys[1] = d
				if np, err := demangle.ToString(s.Name, demangle.NoParams); err == nil && np != d {
					keys[2] = np
				}
			}
			for k, key := range keys {
				if key == "" || k > 0 && (key == keys[0] || k == 2 && key == keys[1]) {
					continue
				}
				t.byName[key] = append(t.byName[key], int32(i))
			}
		}
	})
	if !caseInsensitive {
		return t.byName
	}
	t.lowerOnce.Do(func() {
		t.lower = make(map[string][]int32, len(t.byName))
		for key, idx := range t.byName {
			l := strings.ToLower(key)
			t.lower[l] = append(t.lower[l], idx...)
		}
		for l, idx := range t.lower {
			slices.Sort(idx) // address order, each symbol once
			t.lower[l] = slices.Compact(idx)
		}
	})
	return t.lower
}

func sameName(a, b string, ci bool) bool {
	if ci {
		return strings.EqualFold(a, b)
	}
	return a == b
}

// match reports whether s matches the wildcard pattern (* and ?).
func match(pattern, s string, ci bool) bool {
	if ci {
		pattern, s = strings.ToLower(pattern), strings.ToLower(s)
	}
	// Iterative matching with backtracking to the last star: linear in
	// practice, never exponential.
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		if p < len(pattern) {
			switch pattern[p] {
			case '*':
				star, mark = p, i
				p++
				continue
			case '?':
				_, w := utf8.DecodeRuneInString(s[i:])
				p++
				i += w
				continue
			default:
				if pattern[p] == s[i] {
					p++
					i++
					continue
				}
			}
		}
		if star < 0 {
			return false
		}
		p = star + 1
		mark++
		i = mark
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
