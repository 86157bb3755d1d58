package symhandler_test

import (
	"bytes"
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/fntable/fntable/internal/testenv"
	"github.com/fntable/fntable/symhandler"
)

// rustSource is a small Rust program with a module, a trait, a generic
// function and a closure, so its symbols carry paths, impls and
// instantiations.
const rustSource = `mod shapes {
    pub trait Area { fn area(&self) -> f64; }
    pub struct Circle(pub f64);
    impl Area for Circle { #[inline(never)] fn area(&self) -> f64 { 3.14 * self.0 * self.0 } }
    #[inline(never)]
    pub fn total<T: Area>(v: &[T]) -> f64 { v.iter().map(|x| x.area()).sum() }
}
fn main() {
    let v: Vec<shapes::Circle> = (1..10).map(|i| shapes::Circle(i as f64)).collect();
    println!("{}", shapes::total(&v));
}
`

// rustc returns the Rust compiler, from PATH or rustup's default place.
func rustc(t *testing.T) string {
	if p, err := exec.LookPath("rustc"); err == nil {
		return p
	}
	if home, err := os.UserHomeDir(); err == nil {
		if p := filepath.Join(home, ".cargo", "bin", "rustc"); exists(p) {
			return p
		}
	}
	return testenv.Tool(t, "rustc")
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// TestRustDemangling builds the program with both Rust manglings (legacy
// and v0) and checks every mangled function name the handler returns
// against llvm-cxxfilt's demangling of the same symbol.
func TestRustDemangling(t *testing.T) {
	rc := rustc(t)
	cxxfilt := testenv.Tool(t, "llvm-cxxfilt")
	dir := t.TempDir()
	src := filepath.Join(dir, "m.rs")
	if err := os.WriteFile(src, []byte(rustSource), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, mangling := range []string{"legacy", "v0"} {
		exe := filepath.Join(dir, "m_"+mangling)
		args := []string{"-g", "-o", exe, src} // legacy is the default
		if mangling == "v0" {
			args = append(args, "-C", "symbol-mangling-version=v0")
		}
		run(t, dir, rc, args...)
		f, err := elf.Open(exe)
		if err != nil {
			t.Fatal(err)
		}
		syms, _ := f.Symbols()
		f.Close()
		var mangled []elf.Symbol
		var in bytes.Buffer
		for _, s := range syms {
			if elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Value != 0 && (strings.HasPrefix(s.Name, "_R") || strings.HasPrefix(s.Name, "_ZN")) {
				mangled = append(mangled, s)
				in.WriteString(s.Name + "\n")
			}
		}
		cmd := exec.Command(cxxfilt)
		cmd.Stdin = &in
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		want := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
		if len(want) != len(mangled) {
			t.Fatalf("llvm-cxxfilt answered %d names for %d", len(want), len(mangled))
		}
		h := newHandler(t, symhandler.Config{})
		if _, err := h.LoadModule(context.Background(), symhandler.LoadRequest{ImageName: exe}); err != nil {
			t.Fatal(err)
		}
		agree, v0, explained := 0, 0, map[string]int{}
		for i, s := range mangled {
			got, d, ok := h.FromAddr(s.Value)
			if !ok || d != 0 || got.Address != s.Value {
				t.Errorf("%s: FromAddr(%#x) = %+v +%d, %v", mangling, s.Value, got, d, ok)
				continue
			}
			if got.RawName != s.Name {
				continue // an alias at the same address
			}
			if strings.HasPrefix(s.Name, "_R") {
				v0++
			}
			if got.Name != want[i] {
				if cat := rustDifference(s.Name, got.Name, want[i]); cat != "" {
					explained[cat]++
					continue
				}
				t.Errorf("%s: %s demangles to %q; llvm-cxxfilt says %q", mangling, s.Name, got.Name, want[i])
				continue
			}
			agree++
		}
		t.Logf("%s mangling: %d function names agree with llvm-cxxfilt (%d of them v0)", mangling, agree, v0)
		for cat, n := range explained {
			t.Logf("%s mangling: %d: %s", mangling, n, cat)
		}
		if agree == 0 || mangling == "v0" && v0 == 0 {
			t.Errorf("%s: nothing compared", mangling)
		}
	}
}

var (
	rustHash    = regexp.MustCompile(`::h[0-9a-f]{16}$`)
	rustEscapes = strings.NewReplacer("$LT$", "<", "$GT$", ">", "$C$", ",", "$RF$", "&", "$BP$", "*",
		"$SP$", "@", "$LP$", "(", "$RP$", ")", "..", "::")
	rustHexEscape = regexp.MustCompile(`\$u([0-9a-f]{2})\$`)
	rustClosure   = regexp.MustCompile(`\{closure#\d+\}`)
	// rustUnderscore is the "_" legacy mangling puts before an element
	// that starts with an escape.
	rustUnderscore = regexp.MustCompile(`(^|::)_\$`)
)

// rustDifference names the explained ways the handler's demangling of a
// Rust symbol differs from LLVM 14's, or returns "".
func rustDifference(mangled, ours, llvm string) string {
	if strings.HasPrefix(mangled, "_ZN") {
		// LLVM 14 demangles legacy Rust names as C++ ones: it leaves the
		// $LT$-style escapes and the hash; ours decodes them and drops
		// the hash, as rustc-demangle's alternate form does.
		l := rustHash.ReplaceAllString(llvm, "")
		l = rustUnderscore.ReplaceAllString(l, "$1$$")
		l = rustHexEscape.ReplaceAllStringFunc(l, func(m string) string {
			n, _ := strconv.ParseUint(m[2:4], 16, 8)
			return string(rune(n))
		})
		l = rustEscapes.Replace(l)
		if l == ours || strings.ReplaceAll(l, ", ", ",") == strings.ReplaceAll(ours, ", ", ",") {
			return "legacy: LLVM 14 keeps the $-escapes and the hash, ours decodes them"
		}
		return ""
	}
	// Defects of github.com/ianlancetaylor/demangle's v0 decoder (LLVM's
	// reading follows the v0 grammar): it drops a trailing () generic
	// argument, and it prints nested closures' disambiguators in the
	// wrong order.
	if strings.ReplaceAll(llvm, ", ()>", ">") == ours {
		return "v0: ours drops a () generic argument (a demangler defect)"
	}
	if rustClosure.ReplaceAllString(llvm, "{closure}") == rustClosure.ReplaceAllString(ours, "{closure}") {
		return "v0: ours orders nested closures' numbers differently (a demangler defect)"
	}
	return ""
}
