package verify

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"github.com/fntable/fntable/internal/testenv"
	"github.com/fntable/fntable/internal/winetest"
	"github.com/fntable/fntable/peimage"
	"github.com/fntable/fntable/symfile"
	"github.com/fntable/fntable/symfile/pesym"
	"github.com/fntable/fntable/unwindinfo"
)

// What the checker reports on real images, and why. Every function it
// flags falls in one of the classes below, found by a rule or named by
// image and function; a class is one of:
//
//   - real: the unwind information does not describe the code, so that
//     the Windows unwinder gives a wrong caller at the instructions
//     reported (most are harmless for exceptions, which are not raised
//     at those instructions, but not for profilers and debuggers that
//     interrupt code anywhere);
//   - deliberate: the unwind information describes something else than
//     the caller's frame on purpose;
//   - reference: real by the rules of the unwinder the checker compares
//     with (package unwind, formats.md §5.2), where Microsoft's own copy
//     of RtlVirtualUnwind in dotnet/runtime's unwinder.cpp differs: it
//     looks for a version 1 epilog everywhere, whatever the entry's code
//     count and inside the prolog too. Which one Windows follows for these
//     shapes is not verified;
//   - limit: the checker is wrong (a false positive), a documented limit.
type status string

const (
	statusReal       status = "real"
	statusDeliberate status = "deliberate"
	statusReference  status = "reference"
	statusLimit      status = "limit"
)

// flagged is a function the checker reported problems for.
type flagged struct {
	image    string // base name of the image file
	addr     uint64 // address of the entry
	name     string // symbol at addr, if the image names it
	problems []Problem
	info     *unwindinfo.Info // the entry's unwind information
	code     []byte           // the entry's code
}

// class is an explanation of flagged functions.
type class struct {
	name   string
	status status
	why    string
	match  func(f *flagged) bool
}

// allKind reports whether every problem of f is of one of the kinds.
func allKind(f *flagged, kinds ...Kind) bool {
	for _, p := range f.problems {
		if !slices.Contains(kinds, p.Kind) {
			return false
		}
	}
	return true
}

// named matches the functions image!name.
func named(image string, names ...string) func(f *flagged) bool {
	return func(f *flagged) bool { return f.image == image && slices.Contains(names, f.name) }
}

// at matches the functions at the addresses of an image.
func at(image string, addrs ...uint64) func(f *flagged) bool {
	return func(f *flagged) bool { return f.image == image && slices.Contains(addrs, f.addr) }
}

// vzeroupperEpilog reports whether the code from off on is an epilog
// with vzeroupper before its ret: pops, vzeroupper, ret.
func vzeroupperEpilog(code []byte, off int) bool {
	seen := false
	for n := 0; n < 24 && off >= 0 && off < len(code); n++ {
		in, err := decodeInst(code[off:])
		if err != nil {
			return false
		}
		switch in.Op {
		case x86asm.VZEROUPPER:
			seen = true
		case x86asm.RET:
			return seen
		case x86asm.POP, x86asm.ADD, x86asm.LEA:
		default:
			return false
		}
		off += in.Len
	}
	return false
}

// classes explains every function the checker flags on the images the
// tests check.
var classes = []class{
	{"tail-jump", statusReal,
		"Wine's delay-load thunks (__wine_delay_load_*) end with add rsp, 0x48; jmp rax (ff e0): " +
			"without REX.W the unwinder does not take an indirect jmp for a tail call (formats.md §5.2), " +
			"so at the jmp it undoes the allocation a second time",
		func(f *flagged) bool { return allKind(f, KindTailJump) }},
	{"split-jump", statusReal,
		"GCC's .cold parts have their own entries that restate the frame with codes at offset 0 instead of chaining to " +
			"the function; the jmp into or out of one is taken for a tail call at that instruction (wow64cpu's " +
			"BTCpuSimulate jumps the same way into syscall_32to64_return)",
		func(f *flagged) bool { return allKind(f, KindSplitJump) }},
	{"fragment-epilog", statusReference,
		"MSVC's chained fragments without codes of their own that hold an epilog (or the ret of one): " +
			"package unwind looks for no epilog in them",
		func(f *flagged) bool { return allKind(f, KindFragmentEpilog) }},
	{"prolog-epilog", statusReference,
		"MSVC's early returns inside SizeOfProlog (saves deferred past them): package unwind, like Wine, " +
			"looks for no epilog inside the prolog",
		func(f *flagged) bool { return allKind(f, KindPrologEpilog) }},
	{"empty-entry", statusReal,
		"entries [x, x) that GCC leaves for .cold parts it emptied (jscript's visit_statement.cold): they match no " +
			"address, harmless while sorted before the entry that starts at x",
		func(f *flagged) bool {
			return allKind(f, KindTableRange) && !slices.ContainsFunc(f.problems, func(p Problem) bool { return !strings.HasSuffix(p.Message, "is empty") })
		}},
	{"vzeroupper-epilog", statusReal,
		"LLVM puts vzeroupper between the pops and the ret of an epilog; the unwinder's epilog scan stops at it, " +
			"so from the first pop (or the vzeroupper) to the ret it unwinds as the body",
		func(f *flagged) bool {
			return !slices.ContainsFunc(f.problems, func(p Problem) bool {
				return p.Kind != KindEpilog || !vzeroupperEpilog(f.code, int(p.Offset))
			})
		}},
	{"handler-frame", statusDeliberate,
		"perlasm code (OpenSSL, BoringSSL, ring, AWS-LC) builds its frame without unwind codes and leaves " +
			"unwinding to its language-specific handler (se_handler), which RtlVirtualUnwind alone does not run",
		func(f *flagged) bool {
			return f.info != nil && f.info.Flags&unwindinfo.UNW_FLAG_CHAININFO == 0 && f.info.Flags.HasHandler() && f.info.CountOfCodes() == 0
		}},
	{"dispatcher", statusDeliberate,
		"Wine's user-mode dispatchers describe the CONTEXT they were given (pushes of rsi, rdi, rbp stored " +
			"at rcx-0x20, a machine frame built from the CONTEXT), so that unwinding from the dispatch " +
			"reaches the interrupted code, not a caller",
		named("ntdll.dll", "KiUserExceptionDispatcher", "KiUserApcDispatcher", "call_consolidate_callback")},
	{"push-after-frame", statusReal,
		"push rbp; mov rbp, rsp (SET_FPREG); push rsi; push rdi; then a dynamic allocation: the unwinder pops " +
			"rdi and rsi from the current rsp before it sets rsp from rbp, so after the allocation it reads them " +
			"from the wrong place (Wine's hand-written call wrappers)",
		func(f *flagged) bool {
			return named("oleaut32.dll", "call_method")(f) || named("rpcrt4.dll", "call_server_func")(f) ||
				strings.HasPrefix(f.image, "vcomp") && f.name == "_vcomp_fork_call_wrapper"
		}},
	{"xmm-save-offset", statusReal,
		"GCC sets rbp before the allocation (SET_FPREG rbp+0 at 0x4) but gives the SAVE_XMM128 offsets from " +
			"rsp after it: the unwinder reads xmm6..13 from rbp+0x100.. instead of rbp-0xa0..",
		named("glu32.dll", "gluTessEndPolygon")},
	{"save-outside-prolog", statusReal,
		"relay_call saves rsi and rdi with mov [rbp-0x10], rsi; mov [rbp-0x8], rdi after its prolog, then changes " +
			"them: no unwind code describes those saves, so the unwinder returns the changed values",
		named("ntdll.dll", "relay_call")},
	{"pushfq", statusReal,
		"RtlCaptureContext starts with pushfq and has no unwind code: until popq 0x44(%rcx) the unwinder takes the " +
			"flags for the return address",
		named("ntdll.dll", "RtlCaptureContext")},
	{"zero-code", statusDeliberate,
		"lldb-pecallframeinfo.exe is an unwind-data fixture whose .text is zero-filled (MANIFEST.md)",
		func(f *flagged) bool {
			return f.image == "lldb-pecallframeinfo.exe" && !slices.ContainsFunc(f.code, func(b byte) bool { return b != 0 })
		}},
	{"fixture", statusDeliberate,
		"llvm-win64-unwindv2.exe holds LLVM's UWOP_EPILOG decoding test, whose v2 data does not match its code; " +
			"symbolic-cfi_chained_loop.exe has one entry beyond its 0x400-byte image, chained to itself (MANIFEST.md)",
		func(f *flagged) bool {
			return f.image == "llvm-win64-unwindv2.exe" || f.image == "symbolic-cfi_chained_loop.exe"
		}},
	{"entry-after-start", statusLimit,
		"ring's ChaCha20 and poly1305 entries begin after lea rax, [rsp-0x88], the function's first instruction: " +
			"the prolog allocates with lea rsp, [rax-0x20] and saves through rax, which the checker does not know " +
			"at the entry (the unwind information is right)",
		at("biome.exe", 0x1456a46e8, 0x1456a4848, 0x1456a498e, 0x1456a4aee)},
}

// classify returns the class of f, or nil.
func classify(f *flagged) *class {
	for i := range classes {
		if classes[i].match(f) {
			return &classes[i]
		}
	}
	return nil
}

// imageResult is what the check of one image found.
type imageResult struct {
	functions int
	flagged   []*flagged
}

// checkImage checks the PE image file name and describes the functions it
// flags. It returns ok=false for a file that is not a PE32+ x64 image.
func checkImage(t testing.TB, name string) (imageResult, bool) {
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Image(bytes.NewReader(b), 0)
	if err != nil {
		return imageResult{}, false
	}
	res := imageResult{functions: rep.Functions}
	if len(rep.Problems) == 0 {
		return res, true
	}
	f, err := peimage.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	names := map[uint64]string{}
	if sf, err := pesym.NewFile(bytes.NewReader(b), symfile.Options{}); err == nil {
		for _, s := range sf.Symbols() {
			if s.Kind == symfile.KindFunction {
				if _, dup := names[s.Addr]; !dup {
					names[s.Addr] = s.Name
				}
			}
		}
	}
	byAddr := map[uint64]*flagged{}
	for _, p := range rep.Problems {
		fl := byAddr[p.Function]
		if fl == nil {
			fl = &flagged{image: filepath.Base(name), addr: p.Function, name: names[p.Function]}
			if rva := p.Function - f.ImageBase(); rva < 1<<32 {
				if rf, ok := f.LookupFunctionEntry(uint32(rva)); ok && f.ImageBase()+uint64(rf.BeginAddress) == p.Function {
					fl.info, _ = f.UnwindInfo(rf)
					fl.code = make([]byte, min(rf.EndAddress-rf.BeginAddress, MaxCodeSize))
					n, _ := f.ReadRVA(fl.code, rf.BeginAddress)
					fl.code = fl.code[:n]
				}
			}
			byAddr[p.Function] = fl
			res.flagged = append(res.flagged, fl)
		}
		fl.problems = append(fl.problems, p)
	}
	return res, true
}

// imageSet is the result of checking a set of images.
type imageSet struct {
	images, functions int
	byClass           map[string]int // flagged functions per class
	unexplained       []*flagged
}

// checkImages checks the images in parallel and classifies what they flag.
func checkImages(t *testing.T, names []string) imageSet {
	results := make([]imageResult, len(names))
	oks := make([]bool, len(names))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i, name := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			results[i], oks[i] = checkImage(t, name)
		}()
	}
	wg.Wait()
	set := imageSet{byClass: map[string]int{}}
	for i, r := range results {
		if !oks[i] {
			continue
		}
		set.images++
		set.functions += r.functions
		for _, f := range r.flagged {
			if c := classify(f); c != nil {
				set.byClass[c.name]++
			} else {
				set.unexplained = append(set.unexplained, f)
			}
		}
	}
	return set
}

// falsePositives returns the functions in classes that are limits of the
// checker, and the rate of those and the unexplained ones among all the
// functions checked.
func (s imageSet) falsePositives() (int, float64) {
	n := len(s.unexplained)
	for _, c := range classes {
		if c.status == statusLimit {
			n += s.byClass[c.name]
		}
	}
	if s.functions == 0 {
		return n, 0
	}
	return n, float64(n) / float64(s.functions)
}

// maxFalsePositiveRate is the largest share of the functions of an image
// set the checker may flag wrongly.
const maxFalsePositiveRate = 0.001

// assertSet checks that every flagged function of s is explained, that
// the false positives stay under maxFalsePositiveRate, and, if want is
// not nil, that the flagged functions per class are those of want.
func assertSet(t *testing.T, s imageSet, want map[string]int) {
	t.Helper()
	for _, f := range s.unexplained {
		t.Errorf("%s %#x %s: unexplained: %s [%s] (%d problems)", f.image, f.addr, f.name, f.problems[0].Message, f.problems[0].Kind, len(f.problems))
	}
	fp, rate := s.falsePositives()
	if rate > maxFalsePositiveRate {
		t.Errorf("%d false positives in %d functions: %.4f%%, more than %.1f%%", fp, s.functions, 100*rate, 100*maxFalsePositiveRate)
	}
	total := 0
	var lines []string
	for name, n := range s.byClass {
		total += n
		c := classOf(name)
		lines = append(lines, fmt.Sprintf("%s (%s) %d", name, c.status, n))
	}
	sort.Strings(lines)
	t.Logf("%d images, %d functions, %d flagged (%.4f%%): %s; false positives %d (%.4f%%)",
		s.images, s.functions, total+len(s.unexplained), 100*float64(total+len(s.unexplained))/float64(max(s.functions, 1)),
		strings.Join(lines, ", "), fp, 100*rate)
	if want != nil {
		for _, c := range classes {
			if got := s.byClass[c.name]; got != want[c.name] {
				t.Errorf("class %s: %d flagged functions, want %d", c.name, got, want[c.name])
			}
		}
	}
}

func classOf(name string) *class {
	for i := range classes {
		if classes[i].name == name {
			return &classes[i]
		}
	}
	return nil
}

// TestSharedImages checks the PE images of ../shared/testdata/pe (MSVC,
// MinGW and LLVM images and unwind fixtures, MANIFEST.md).
func TestSharedImages(t *testing.T) {
	dir := winetest.Testdata(t, "pe")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, filepath.Join(dir, e.Name()))
	}
	s := checkImages(t, names)
	if s.images < 6 {
		t.Errorf("%d images checked in %s, want the 6 of MANIFEST.md", s.images, dir)
	}
	// symbolic-CrashWithException.exe (MSVC) and the MinGW images have no
	// problem: MSVC's saves to the home space before its pushes, its
	// mov rbp, rsp without a frame register, and old GCC's SET_FPREG at the
	// end of the prolog are all described correctly.
	assertSet(t, s, map[string]int{"zero-code": 3, "fixture": 2})
}

// wineDLLDir returns the directory of Wine's x64 PE DLLs, or "".
func wineDLLDir() string {
	for _, d := range []string{"/usr/lib/x86_64-linux-gnu/wine/x86_64-windows", "/usr/lib/wine/x86_64-windows", "/usr/lib64/wine/x86_64-windows"} {
		if fi, err := os.Stat(filepath.Join(d, "ntdll.dll")); err == nil && fi.Mode().IsRegular() {
			return d
		}
	}
	return ""
}

// wine80NTDLL is the SHA-256 of ntdll.dll of Wine 8.0 (Debian
// 8.0~repack-4), whose images the counts of TestWineImages are of.
const wine80NTDLL = "442753c30d9b3189b60331e1fa1d055f83f98656b7cea6b701857188d356f3af"

// wineCounts are the flagged functions per class of Wine 8.0 (Debian
// 8.0~repack-4), every *.dll and *.exe of its x86_64-windows directory.
var wineCounts = map[string]int{
	"tail-jump":           182,
	"split-jump":          124,
	"push-after-frame":    7,
	"dispatcher":          3,
	"empty-entry":         1,
	"pushfq":              1,
	"save-outside-prolog": 1,
	"xmm-save-offset":     1,
}

// wineSampleCounts are those of the images TestWineImages checks under
// the race detector: 70 images, 16,240 functions.
var wineSampleCounts = map[string]int{
	"tail-jump":           27,
	"split-jump":          16,
	"dispatcher":          3,
	"push-after-frame":    2,
	"empty-entry":         1,
	"pushfq":              1,
	"save-outside-prolog": 1,
	"xmm-save-offset":     1,
}

// TestWineImages checks every x64 PE DLL and EXE Wine ships (about
// 170,000 functions). With Wine 8.0 of Debian 12 it checks the counts per
// class; with another build, that everything flagged is explained.
func TestWineImages(t *testing.T) {
	if testing.Short() {
		t.Skip("checks 170,000 functions; skipped in short mode")
	}
	dir := wineDLLDir()
	if dir == "" {
		testenv.Unavailable(t, "needs Wine's x64 DLLs (x86_64-windows); on Debian: apt-get install wine64")
	}
	dlls, _ := filepath.Glob(filepath.Join(dir, "*.dll"))
	exes, _ := filepath.Glob(filepath.Join(dir, "*.exe"))
	names := append(dlls, exes...)
	if raceEnabled {
		// The race detector makes the full set take minutes: check the
		// images that hold the named classes, and every tenth other.
		var some []string
		for i, n := range names {
			switch b := filepath.Base(n); {
			case i%10 == 0, b == "ntdll.dll", b == "glu32.dll", b == "oleaut32.dll", b == "rpcrt4.dll", b == "wow64cpu.dll", b == "jscript.dll":
				some = append(some, n)
			}
		}
		names = some
	}
	s := checkImages(t, names)
	var want map[string]int
	switch sum, _ := fileSum(filepath.Join(dir, "ntdll.dll")); {
	case sum != wine80NTDLL:
		t.Logf("not the Wine 8.0 build of Debian 12 (ntdll.dll SHA-256 %s): counts not compared", sum)
	case raceEnabled:
		want = wineSampleCounts
	default:
		want = wineCounts
	}
	assertSet(t, s, want)
}

func fileSum(name string) (string, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:]), nil
}

// msvcImages names files for TestMSVCImages.
var msvcImages = flag.String("msvc-images", "", "comma-separated PE `files` for TestMSVCImages (bench/verify.sh fetches them)")

// knownImages are the MSVC images of the npm registry that bench/verify.sh
// fetches, by SHA-256, with their functions and flagged functions per
// class.
var knownImages = map[string]struct {
	name      string
	functions int
	counts    map[string]int
}{
	"12ecf4622bd324046a4e2f0f469fb7c79254d77280277082a187183fa591b48a": {"biome.exe (@biomejs/cli-win32-x64 2.6.9)", 297425,
		map[string]int{"fragment-epilog": 60, "handler-frame": 35, "vzeroupper-epilog": 23, "prolog-epilog": 4, "entry-after-start": 4}},
	"e099817a5f9273d6eb1133ee278bbf70ad987784729cffe1e61299b458731bd3": {"rollup.win32-x64-msvc.node (@rollup/rollup-win32-x64-msvc 4.69.3)", 8947,
		map[string]int{"fragment-epilog": 94}},
	"d043df0f0675e7fffed4cf8b8c33e28639ec9f21d445c21e7fe4985e4a9b5a91": {"lightningcss.win32-x64-msvc.node (lightningcss-win32-x64-msvc 1.33.0)", 7888,
		map[string]int{"fragment-epilog": 17, "vzeroupper-epilog": 2, "prolog-epilog": 1}},
	"a7f0d8a92b83b62c24c9785ab814438056bf01bfda967cbfeeef157916666ff1": {"swc.win32-x64-msvc.node (@swc/core-win32-x64-msvc 1.16.22)", 1466,
		map[string]int{"fragment-epilog": 47, "vzeroupper-epilog": 1, "prolog-epilog": 1}},
}

// TestMSVCImages checks the images given with -msvc-images: everything
// flagged must be explained, and for the images bench/verify.sh fetches
// the counts per class are known.
func TestMSVCImages(t *testing.T) {
	if *msvcImages == "" {
		t.Skip("run with -msvc-images FILE,... (bench/verify.sh fetches biome.exe and other MSVC images)")
	}
	for _, name := range strings.Split(*msvcImages, ",") {
		t.Run(filepath.Base(name), func(t *testing.T) {
			s := checkImages(t, []string{name})
			if s.images != 1 {
				t.Fatalf("%s is not a PE32+ x64 image", name)
			}
			var want map[string]int
			sum, err := fileSum(name)
			if err != nil {
				t.Fatal(err)
			}
			if k, ok := knownImages[sum]; ok {
				t.Logf("%s", k.name)
				want = k.counts
				if s.functions != k.functions {
					t.Errorf("%d functions, want %d", s.functions, k.functions)
				}
			} else {
				t.Logf("%s (SHA-256 %s) is not one of the known images: counts not compared", name, sum)
			}
			assertSet(t, s, want)
		})
	}
}
