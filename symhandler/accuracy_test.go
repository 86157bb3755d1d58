package symhandler_test

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ianlancetaylor/demangle"

	"github.com/fntable/fntable/internal/symtest"
	"github.com/fntable/fntable/symhandler"
)

// accuracyAddrs is how many random addresses of each binary the handler is
// compared with llvm-symbolizer at.
const accuracyAddrs = 4000

// Categories of differences with llvm-symbolizer that are explained; any
// other difference fails the test.
const (
	// catNoLineSymtabFile: no line information at the address;
	// llvm-symbolizer takes a file name from the symbol table's STT_FILE
	// symbol, which says nothing about where the address is.
	catNoLineSymtabFile = "no line info: llvm-symbolizer prints an STT_FILE name"
	// catDemangler: the names are the same symbol, demangled in GNU's
	// spelling (ours, github.com/ianlancetaylor/demangle, as c++filt
	// prints them) and LLVM 14's: "{lambda(int)#3}" for "'lambda1'(int)",
	// " [clone .isra.0]" for " (.isra.0)", "operator< <T>" for
	// "operator<<T>".
	catDemangler = "demangler spelling: GNU (c++filt) vs LLVM 14"
	// catLLVMMangled: LLVM 14's demangler gives up on the name (template
	// expressions such as "sr...E5value" in enable_if) and prints it
	// mangled; ours demangles it.
	catLLVMMangled = "LLVM 14 leaves the name mangled; ours demangles it"
	// catGoEscape: a Go package path with the linker's escapes
	// ("entropy/v1%2e0%2e0"), which llvm-symbolizer prints as stored and
	// ours decodes.
	catGoEscape = "Go path escapes: LLVM prints %2e, ours decodes it"
	// catDebugFileSymtab: for the stripped binary llvm-symbolizer reads
	// the separate debug file as --obj, so it names the outermost frame
	// from that file's .symtab ("main.cold"); the handler, as
	// llvm-symbolizer does for an image, from the image's table, and
	// from DWARF ("main") where that has nothing.
	catDebugFileSymtab = "outermost name: llvm-symbolizer read the debug file's .symtab"
)

var (
	gnuLambda = regexp.MustCompile(`\{lambda\(([^{}]*)\)#(\d+)\}`)
	gnuClone  = regexp.MustCompile(` \[clone ([^\]]+)\]`)
)

// llvmSpelling rewrites a GNU-style demangled name in LLVM 14's spelling.
func llvmSpelling(name string) string {
	name = gnuLambda.ReplaceAllStringFunc(name, func(m string) string {
		sub := gnuLambda.FindStringSubmatch(m)
		n, _ := strconv.Atoi(sub[2])
		label := "'lambda'"
		if n > 1 {
			label = fmt.Sprintf("'lambda%d'", n-2)
		}
		return label + "(" + sub[1] + ")"
	})
	name = gnuClone.ReplaceAllString(name, " ($1)")
	return strings.ReplaceAll(name, "operator< <", "operator<<")
}

// TestAccuracy symbolizes random addresses of real binaries through the
// handler, as `fntable sym` does (names demangled, separate debug files
// found by debuglink), and compares every frame with llvm-symbolizer's
// (demangled) answer.
func TestAccuracy(t *testing.T) {
	if testing.Short() {
		t.Skip("builds SQLite and C++ programs")
	}
	type bin struct {
		name  string
		exe   string // what the handler loads
		debug string // what llvm-symbolizer reads ("" = exe)
	}
	stripped, debug := symtest.SplitDebug(t)
	bins := []bin{
		{"sqlite (cgo, C with DWARF)", symtest.SQLite(t), ""},
		{"c++", symtest.CPP(t), ""},
		{"go", symtest.Go(t), ""},
		{"stripped + .gnu_debuglink", stripped, debug},
	}
	total := 0
	for _, b := range bins {
		t.Run(filepath.Base(b.name), func(t *testing.T) {
			oracle := or(b.debug, b.exe)
			addrs := symtest.RandomAddrs(t, oracle, accuracyAddrs, 1)
			want := symtest.Symbolize(t, oracle, addrs)
			h := newHandler(t, symhandler.Config{SearchPath: filepath.Dir(oracle)})
			if _, err := h.LoadModule(context.Background(), symhandler.LoadRequest{ImageName: b.exe}); err != nil {
				t.Fatal(err)
			}
			counts := map[string]int{}
			var bad []string
			for i, a := range addrs {
				loc, err := h.Symbolize(context.Background(), a)
				if err != nil {
					t.Fatalf("Symbolize(%#x): %v", a, err)
				}
				cat := classify(loc.Frames, want[i])
				if cat == "" {
					cat = "unexplained"
					if len(bad) < 10 {
						bad = append(bad, fmt.Sprintf("%#x\n  ours: %+v\n  llvm: %+v", a, loc.Frames, want[i].Frames))
					}
				}
				counts[cat]++
			}
			total += len(addrs)
			keys := make([]string, 0, len(counts))
			for k := range counts {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				t.Logf("%-60s %5d of %d", k, counts[k], len(addrs))
			}
			if len(bad) > 0 {
				t.Errorf("%d unexplained differences:\n%s", counts["unexplained"], strings.Join(bad, "\n"))
			}
		})
	}
	t.Logf("%d addresses compared", total)
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// classify returns "agree", an explained category, or "".
func classify(got []symhandler.Frame, want symtest.Result) string {
	w := want.Frames
	if want.Empty() {
		w = nil
	}
	if len(got) == len(w) {
		cat := "agree"
		for i := range got {
			g, x := got[i], w[i]
			if g.Function == x.Function && g.File == "" && g.Line == 0 && x.File != "" && x.Line == 0 {
				cat, g.File = catNoLineSymtabFile, x.File
			}
			if g.Function != x.Function && strings.HasPrefix(x.Function, "_Z") && demangle.Filter(x.Function) == g.Function {
				cat, g.Function = catLLVMMangled, x.Function
			}
			if g.Function != x.Function && strings.Contains(x.Function, "%") && strings.NewReplacer("%2e", ".", "%2f", "/", "%25", "%").Replace(x.Function) == g.Function {
				cat, g.Function = catGoEscape, x.Function
			}
			if g.Function != x.Function && llvmSpelling(g.Function) == x.Function {
				cat, g.Function = catDemangler, x.Function
			}
			if i == len(got)-1 && g.Function != x.Function && strings.HasPrefix(x.Function, g.Function+".") {
				cat, g.Function = catDebugFileSymtab, x.Function
			}
			if g.Function != x.Function || g.File != x.File || g.Line != x.Line || g.Column != x.Column {
				return ""
			}
		}
		return cat
	}
	return ""
}
