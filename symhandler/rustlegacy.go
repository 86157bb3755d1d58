package symhandler

import (
	"strconv"
	"strings"
)

// demangleRustLegacy decodes a Rust symbol in the legacy mangling: an
// Itanium-style nested name _ZN{len}{ident}...17h{16 hex digits}E whose
// last element is the hash, with $-escapes in the identifiers. It returns
// the path without the hash ("std::rt::lang_start", as rustc-demangle's
// alternate form prints it) and true, or false when name is not one
// (C++ names go to the Itanium demangler).
//
// github.com/ianlancetaylor/demangle decodes these too but drops the first
// underscore of identifiers like "__rust_begin_short_backtrace".
//
// Reference: rustc-demangle's legacy module (the escapes and the "_$"
// rule).
func demangleRustLegacy(name string) (string, bool) {
	s, ok := strings.CutPrefix(name, "_ZN")
	if !ok {
		if s, ok = strings.CutPrefix(name, "__ZN"); !ok {
			return "", false
		}
	}
	var parts []string
	for {
		if s == "" {
			return "", false
		}
		if s[0] == 'E' {
			s = s[1:]
			break
		}
		n := 0
		for n < len(s) && s[n] >= '0' && s[n] <= '9' {
			n++
		}
		l, err := strconv.Atoi(s[:n])
		if n == 0 || err != nil || l <= 0 || l > len(s)-n {
			return "", false
		}
		parts = append(parts, s[n:n+l])
		s = s[n+l:]
	}
	// Anything after the E must be a suffix like ".llvm.123" that rustc
	// adds; keep it out of the name, as rustc-demangle does.
	if s != "" && s[0] != '.' {
		return "", false
	}
	if len(parts) < 2 || !isRustHash(parts[len(parts)-1]) {
		return "", false
	}
	var b strings.Builder
	for i, p := range parts[:len(parts)-1] {
		if i > 0 {
			b.WriteString("::")
		}
		if !unescapeRust(&b, p) {
			return "", false
		}
	}
	return b.String(), true
}

func isRustHash(s string) bool {
	if len(s) != 17 || s[0] != 'h' {
		return false
	}
	for _, c := range s[1:] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// unescapeRust writes one legacy identifier with its escapes decoded.
func unescapeRust(b *strings.Builder, id string) bool {
	if strings.HasPrefix(id, "_$") {
		id = id[1:]
	}
	for id != "" {
		switch {
		case strings.HasPrefix(id, ".."):
			b.WriteString("::")
			id = id[2:]
		case id[0] == '$':
			end := strings.IndexByte(id[1:], '$')
			if end < 0 {
				return false
			}
			esc := id[1 : 1+end]
			id = id[2+end:]
			switch esc {
			case "SP":
				b.WriteByte('@')
			case "BP":
				b.WriteByte('*')
			case "RF":
				b.WriteByte('&')
			case "LT":
				b.WriteByte('<')
			case "GT":
				b.WriteByte('>')
			case "LP":
				b.WriteByte('(')
			case "RP":
				b.WriteByte(')')
			case "C":
				b.WriteByte(',')
			default:
				h, ok := strings.CutPrefix(esc, "u")
				v, err := strconv.ParseUint(h, 16, 32)
				if !ok || err != nil || v > 0x10ffff {
					return false
				}
				b.WriteRune(rune(v))
			}
		default:
			b.WriteByte(id[0])
			id = id[1:]
		}
	}
	return true
}
