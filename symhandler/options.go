package symhandler

import (
	"fmt"
	"strings"
)

// Options is the SYMOPT_* bit set of SymSetOptions, with dbghelp's values.
//
// The options this handler acts on:
//
//   - SYMOPT_CASE_INSENSITIVE: name lookups and enumeration masks ignore case.
//   - SYMOPT_UNDNAME: names are returned demangled (C++, Rust; Go names are
//     already readable). Without it they are returned as stored.
//   - SYMOPT_DEFERRED_LOADS: a module's symbols are read on first use, not
//     when the module is loaded; the CBA_DEFERRED_SYMBOL_LOAD_* callbacks
//     then fire at that first use.
//   - SYMOPT_LOAD_LINES: source lines and inline frames are read.
//   - SYMOPT_EXACT_SYMBOLS: an image or debug file whose identity differs
//     from what the target recorded (build ID, PE timestamp), or a debuglink
//     file whose build ID differs from the image's, is refused; without it
//     such a file is used, with a sevProblem CBA_EVENT. A debuglink file
//     whose CRC does not match is always refused (as GDB does).
//   - SYMOPT_PUBLICS_ONLY: only symbol tables (ELF .symtab/.dynsym, PE
//     exports and COFF symbols); no DWARF.
//   - SYMOPT_NO_PUBLICS: symbol tables are not used for names; functions
//     come from the debug information.
//   - SYMOPT_SECURE: no symbol server is contacted and no file outside the
//     module's own is opened.
//   - SYMOPT_NO_PROMPTS: nothing interactive happens (the CLI's progress bar
//     is drawn only without it).
//   - SYMOPT_DISABLE_SYMSRV_TIMEOUT: downloads have no time limit.
//   - SYMOPT_ALLOW_ZERO_ADDRESS: address 0 may resolve to a symbol.
//   - SYMOPT_DEBUG: CBA_DEBUG_INFO callbacks are sent (and unhandled
//     CBA_EVENTs are resent as CBA_DEBUG_INFO).
//
// The others are accepted and kept, so SymGetOptions returns what was set,
// but have no effect here. SYMOPT_AUTO_PUBLICS is always in effect: when a
// file has no symbol table, the readers take its functions from the debug
// information (DWARF subprograms, Go's pclntab).
type Options uint32

// The SYMOPT_* values of dbghelp.h.
const (
	SYMOPT_CASE_INSENSITIVE           Options = 0x00000001
	SYMOPT_UNDNAME                    Options = 0x00000002
	SYMOPT_DEFERRED_LOADS             Options = 0x00000004
	SYMOPT_NO_CPP                     Options = 0x00000008
	SYMOPT_LOAD_LINES                 Options = 0x00000010
	SYMOPT_OMAP_FIND_NEAREST          Options = 0x00000020
	SYMOPT_LOAD_ANYTHING              Options = 0x00000040
	SYMOPT_IGNORE_CVREC               Options = 0x00000080
	SYMOPT_NO_UNQUALIFIED_LOADS       Options = 0x00000100
	SYMOPT_FAIL_CRITICAL_ERRORS       Options = 0x00000200
	SYMOPT_EXACT_SYMBOLS              Options = 0x00000400
	SYMOPT_ALLOW_ABSOLUTE_SYMBOLS     Options = 0x00000800
	SYMOPT_IGNORE_NT_SYMPATH          Options = 0x00001000
	SYMOPT_INCLUDE_32BIT_MODULES      Options = 0x00002000
	SYMOPT_PUBLICS_ONLY               Options = 0x00004000
	SYMOPT_NO_PUBLICS                 Options = 0x00008000
	SYMOPT_AUTO_PUBLICS               Options = 0x00010000
	SYMOPT_NO_IMAGE_SEARCH            Options = 0x00020000
	SYMOPT_SECURE                     Options = 0x00040000
	SYMOPT_NO_PROMPTS                 Options = 0x00080000
	SYMOPT_OVERWRITE                  Options = 0x00100000
	SYMOPT_IGNORE_IMAGEDIR            Options = 0x00200000
	SYMOPT_FLAT_DIRECTORY             Options = 0x00400000
	SYMOPT_FAVOR_COMPRESSED           Options = 0x00800000
	SYMOPT_ALLOW_ZERO_ADDRESS         Options = 0x01000000
	SYMOPT_DISABLE_SYMSRV_AUTODETECT  Options = 0x02000000
	SYMOPT_READONLY_CACHE             Options = 0x04000000
	SYMOPT_SYMPATH_LAST               Options = 0x08000000
	SYMOPT_DISABLE_FAST_SYMBOLS       Options = 0x10000000
	SYMOPT_DISABLE_SYMSRV_TIMEOUT     Options = 0x20000000
	SYMOPT_DISABLE_SRVSTAR_ON_STARTUP Options = 0x40000000
	SYMOPT_DEBUG                      Options = 0x80000000
)

// DefaultOptions are the options a new handler starts with when its
// Config.Options is zero: demangled names, deferred loads, lines and
// inline frames (and SYMOPT_AUTO_PUBLICS, which is how the readers work).
const DefaultOptions = SYMOPT_UNDNAME | SYMOPT_DEFERRED_LOADS | SYMOPT_LOAD_LINES | SYMOPT_AUTO_PUBLICS

var optionNames = [32]string{
	"CASE_INSENSITIVE", "UNDNAME", "DEFERRED_LOADS", "NO_CPP", "LOAD_LINES", "OMAP_FIND_NEAREST",
	"LOAD_ANYTHING", "IGNORE_CVREC", "NO_UNQUALIFIED_LOADS", "FAIL_CRITICAL_ERRORS", "EXACT_SYMBOLS",
	"ALLOW_ABSOLUTE_SYMBOLS", "IGNORE_NT_SYMPATH", "INCLUDE_32BIT_MODULES", "PUBLICS_ONLY",
	"NO_PUBLICS", "AUTO_PUBLICS", "NO_IMAGE_SEARCH", "SECURE", "NO_PROMPTS", "OVERWRITE",
	"IGNORE_IMAGEDIR", "FLAT_DIRECTORY", "FAVOR_COMPRESSED", "ALLOW_ZERO_ADDRESS",
	"DISABLE_SYMSRV_AUTODETECT", "READONLY_CACHE", "SYMPATH_LAST", "DISABLE_FAST_SYMBOLS",
	"DISABLE_SYMSRV_TIMEOUT", "DISABLE_SRVSTAR_ON_STARTUP", "DEBUG",
}

// String returns the set bits' names joined by "|", e.g.
// "SYMOPT_UNDNAME|SYMOPT_LOAD_LINES", or "0".
func (o Options) String() string {
	if o == 0 {
		return "0"
	}
	var b strings.Builder
	for i := range 32 {
		if o&(1<<i) != 0 {
			if b.Len() > 0 {
				b.WriteByte('|')
			}
			b.WriteString("SYMOPT_" + optionNames[i])
		}
	}
	return b.String()
}

// ParseOptions parses names as String prints them ("|" or "," separated,
// with or without the SYMOPT_ prefix, any case) or a number (0x… or
// decimal).
func ParseOptions(s string) (Options, error) {
	var o Options
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == '|' || r == ',' || r == ' ' }) {
		var n uint32
		if _, err := fmt.Sscan(f, &n); err == nil {
			o |= Options(n)
			continue
		}
		name := strings.TrimPrefix(strings.ToUpper(f), "SYMOPT_")
		found := false
		for i, on := range optionNames {
			if on == name {
				o |= 1 << i
				found = true
				break
			}
		}
		if !found {
			return 0, fmt.Errorf("parse options: unknown option %q", f)
		}
	}
	return o, nil
}
