//go:build linux

package provider

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fntable/fntable/functable/remote"
	"github.com/fntable/fntable/unwindinfo"
)

// modes are the two ways of calling a provider.
var modes = []struct {
	name    string
	isolate bool
}{{"inprocess", false}, {"isolated", true}}

// TestResolve resolves a table through a listed provider: it is loaded
// once, its entries are used, and its array is freed.
func TestResolve(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			f := newFixture(t)
			tg := newTarget(t)
			lib := f.install(t, f.good, "provider.so")
			r := &Resolver{Trust: f.trust(t, lib), Isolate: m.isolate}
			tbl := tg.table(lib, answerMeta(goodEntries...))
			for i := range 3 {
				entries, res := r.ResolveCallbackTable(os.Getpid(), tbl)
				if res.Err != nil {
					t.Fatalf("call %d: %v", i, res.Err)
				}
				if !reflect.DeepEqual(entries, goodEntries) {
					t.Errorf("entries = %v, want %v", entries, goodEntries)
				}
				if !res.Trusted || !res.Loaded || res.Isolated != m.isolate || res.Entries != len(goodEntries) || res.Provider != lib || res.Duration <= 0 {
					t.Errorf("resolution = %+v", res)
				}
			}
			wantLoads := 1
			if m.isolate {
				wantLoads = 3 // once per helper
			}
			if n := f.loads(t); n != wantLoads {
				t.Errorf("loaded %d times, want %d", n, wantLoads)
			}
			checkFreed(t, f, m.isolate)
			if c := children(t); len(c) > 0 {
				t.Errorf("helper processes left: %v", c)
			}
		})
	}
}

// checkFreed checks that every array the test provider handed out in
// this process is unmapped: freed (testdata/provider.c makes each a
// mapping of its own).
func checkFreed(t *testing.T, f *fixture, isolated bool) {
	t.Helper()
	arrays := f.markerLines(t, "array ")
	if isolated {
		return // freed, or not, in the helper
	}
	if len(arrays) == 0 {
		t.Fatal("the provider reported no array")
	}
	for _, a := range arrays {
		addr, err := strconv.ParseUint(a, 0, 64)
		if err != nil {
			t.Fatal(err)
		}
		if mapped(t, addr) {
			t.Errorf("array %#x was not freed", addr)
		}
	}
}

// TestUntrustedNotLoaded checks that a library the list does not allow
// is never loaded: its constructor never runs.
func TestUntrustedNotLoaded(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			f := newFixture(t)
			tg := newTarget(t)
			listed := f.install(t, f.good, "lib/listed.so")
			unlisted := f.install(t, f.good, "lib/unlisted.so")
			gw := f.install(t, f.good, "lib/gw.so")
			must(t, os.Chmod(gw, 0o775))
			inOpenDir := f.install(t, f.good, "open/lib.so")
			must(t, os.Chmod(filepath.Dir(inOpenDir), 0o777))
			target := f.install(t, f.good, "lib/target.so")
			listedLink := filepath.Join(f.dir, "listedlink.so")
			must(t, os.Symlink(target, listedLink))
			unlistedLink := filepath.Join(f.dir, "unlistedlink.so")
			must(t, os.Symlink(unlisted, unlistedLink))
			tr := f.trust(t, listed, gw, inOpenDir, listedLink, "relative/listed.so")
			r := &Resolver{Trust: tr, Isolate: m.isolate}
			for _, c := range []struct{ name, path, reason string }{
				{"unlisted", unlisted, "not on the trust list"},
				{"symlink to unlisted", unlistedLink, "resolves to " + unlisted + ", which is not on the trust list"},
				{"listed symlink", listedLink, "a listed path must be the library's real path"},
				{"listed relative", "relative/listed.so", "not an absolute path"},
				{"group writable", gw, "writable by group or others"},
				{"directory writable", inOpenDir, "writable by group or others"},
			} {
				entries, res := r.ResolveCallbackTable(os.Getpid(), tg.table(c.path, answerMeta(goodEntries...)))
				if !errors.Is(res.Err, ErrUntrusted) || !strings.Contains(res.Err.Error(), c.reason) || entries != nil || res.Trusted || res.Loaded {
					t.Errorf("%s: %v, %+v; want ErrUntrusted: %s", c.name, entries, res, c.reason)
				}
			}
			if n := f.loads(t); n != 0 {
				t.Fatalf("an untrusted library was loaded (%d times)", n)
			}
			if _, res := r.ResolveCallbackTable(os.Getpid(), tg.table(listed, answerMeta(goodEntries...))); res.Err != nil {
				t.Fatal(res.Err)
			}
			if n := f.loads(t); n != 1 {
				t.Errorf("the listed library was loaded %d times, want 1", n)
			}
		})
	}
}

// TestHostileAnswers checks that each malformed answer is refused with
// its error, and that its array is freed.
func TestHostileAnswers(t *testing.T) {
	e := func(begin, end, unwind uint32) unwindinfo.RuntimeFunction {
		return unwindinfo.RuntimeFunction{BeginAddress: begin, EndAddress: end, UnwindData: unwind}
	}
	g0, g1, g2 := goodEntries[0], goodEntries[1], goodEntries[2]
	for _, c := range []struct {
		name string
		meta meta
		kind error  // nil: accepted
		msg  string // a part of the error
		want []unwindinfo.RuntimeFunction
	}{
		{"good", answerMeta(g0, g1, g2), nil, "", goodEntries},
		{"informational status", meta{status: 0x40000000, count: 1, entries: []unwindinfo.RuntimeFunction{g0}}, nil, "", []unwindinfo.RuntimeFunction{g0}},
		{"empty, NULL", meta{mode: modeNull}, nil, "", nil},
		{"empty, array", meta{mode: modeAnswer}, nil, "", nil},
		{"failure status", meta{status: 0xC0000001, count: 3, entries: goodEntries}, ErrStatus, "provider failed: status 0xc0000001", nil},
		{"failure status, NULL", meta{mode: modeNull, status: 0xC000009A}, ErrStatus, "status 0xc000009a", nil},
		{"warning status", meta{mode: modeNull, status: 0x80000005}, ErrStatus, "status 0x80000005", nil},
		{"NULL with count", meta{mode: modeNull, count: 5}, ErrBadResult, "a NULL array of 5 entries", nil},
		{"count over cap", meta{count: MaxEntries + 1, entries: goodEntries}, ErrBadResult, "1048577 entries, more than the 1048576 allowed", nil},
		{"count max", meta{count: 0xffffffff, entries: goodEntries}, ErrBadResult, "4294967295 entries", nil},
		{"empty entry", answerMeta(g0, e(codeMin+0x200, codeMin+0x200, unwindOff)), ErrBadResult, "entry 1 [0x4200, 0x4200) is empty or reversed", nil},
		{"reversed entry", answerMeta(e(codeMin+0x100, codeMin, unwindOff)), ErrBadResult, "entry 0 [0x4100, 0x4000) is empty or reversed", nil},
		{"unsorted", answerMeta(g1, g0), ErrBadResult, "entries 0 and 1 are unsorted or overlap", nil},
		{"overlapping", answerMeta(g0, e(codeMin+0xf0, codeMin+0x200, unwindOff)), ErrBadResult, "entries 0 and 1 are unsorted or overlap", nil},
		{"below the range", answerMeta(e(codeMin-0x10, codeMin+0x10, unwindOff)), ErrBadResult, "is outside the table's range", nil},
		{"above the range", answerMeta(g0, e(codeMax-0x10, codeMax+1, unwindOff)), ErrBadResult, "entry 1", nil},
		{"far above the range", answerMeta(e(0xfffffff0, 0xffffffff, unwindOff)), ErrBadResult, "is outside the table's range", nil},
		{"unwind data not readable", answerMeta(e(codeMin, codeMin+4, targetSize)), ErrBadResult, "entry 0: unwind data at", nil},
		{"unwind data straddles", answerMeta(e(codeMin, codeMin+4, targetSize-2)), ErrBadResult, "is not in readable memory of the target", nil},
		{"indirect unwind data not readable", answerMeta(e(codeMin, codeMin+4, targetSize|1)), ErrBadResult, "(rva 0x10001)", nil},
		{"unwind data unmapped", answerMeta(e(codeMin, codeMin+4, 0xfffffff0)), ErrBadResult, "not in readable memory", nil},
	} {
		for _, m := range modes {
			t.Run(c.name+"/"+m.name, func(t *testing.T) {
				f := newFixture(t)
				tg := newTarget(t)
				lib := f.install(t, f.good, "provider.so")
				r := &Resolver{Trust: f.trust(t, lib), Isolate: m.isolate}
				entries, res := r.ResolveCallbackTable(os.Getpid(), tg.table(lib, c.meta))
				switch {
				case c.kind == nil && res.Err != nil:
					t.Fatalf("refused: %v", res.Err)
				case c.kind != nil && !errors.Is(res.Err, c.kind):
					t.Fatalf("err = %v, want %v", res.Err, c.kind)
				case c.kind != nil && !strings.Contains(res.Err.Error(), c.msg):
					t.Errorf("err = %v, want it to contain %q", res.Err, c.msg)
				}
				if !reflect.DeepEqual(entries, c.want) || res.Entries != len(c.want) {
					t.Errorf("entries = %v (%d), want %v", entries, res.Entries, c.want)
				}
				if c.kind != nil && !strings.HasPrefix(res.Err.Error(), "callback table ") {
					t.Errorf("err = %v, want it to name the table", res.Err)
				}
				if c.meta.mode == modeAnswer {
					checkFreed(t, f, m.isolate)
				}
			})
		}
	}
}

// TestNoExport checks a trusted library without the export.
func TestNoExport(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			f := newFixture(t)
			tg := newTarget(t)
			lib := f.install(t, f.noExport, "noexport.so")
			r := &Resolver{Trust: f.trust(t, lib), Isolate: m.isolate}
			_, res := r.ResolveCallbackTable(os.Getpid(), tg.table(lib, answerMeta(goodEntries...)))
			if !errors.Is(res.Err, ErrLoad) || !strings.Contains(res.Err.Error(), "no export OutOfProcessFunctionTableCallback") || res.Loaded || !res.Trusted {
				t.Errorf("%+v", res)
			}
		})
	}
}

// TestIsolatedFailures checks that a provider that crashes, hangs or
// exits costs an error, not the test process, and leaves no process
// behind.
func TestIsolatedFailures(t *testing.T) {
	for _, c := range []struct {
		name string
		meta meta
		kind error
		msg  string
	}{
		{"segv", meta{mode: modeSEGV}, ErrCrashed, "provider crashed: signal SIGSEGV"},
		{"hang", meta{mode: modeHang}, ErrTimeout, "provider did not return within 500ms"},
		{"exit", meta{mode: modeExit, status: 3}, ErrCrashed, "provider exited with status 3 before answering"},
		{"exit 0", meta{mode: modeExit, status: 0}, ErrCrashed, "provider exited with status 0 before answering"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			tg := newTarget(t)
			lib := f.install(t, f.good, "provider.so")
			r := &Resolver{Trust: f.trust(t, lib), Isolate: true, Timeout: 500 * time.Millisecond}
			start := time.Now()
			entries, res := r.ResolveCallbackTable(os.Getpid(), tg.table(lib, c.meta))
			if !errors.Is(res.Err, c.kind) || !strings.HasSuffix(res.Err.Error(), c.msg) || entries != nil {
				t.Errorf("err = %v, want %v ending in %q", res.Err, c.kind, c.msg)
			}
			if !res.Trusted || !res.Loaded || !res.Isolated {
				t.Errorf("resolution = %+v", res)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
			if kids := children(t); len(kids) > 0 {
				t.Errorf("helper processes left: %v", kids)
			}
			// The hanging provider forked a child in the helper's process
			// group: it must be gone too.
			for _, s := range f.markerLines(t, "child ") {
				pid, err := strconv.Atoi(s)
				if err != nil {
					t.Fatal(err)
				}
				deadline := time.Now().Add(2 * time.Second)
				for alive(pid) && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
				if alive(pid) {
					t.Errorf("the provider's child %d is still running", pid)
				}
			}
		})
	}
}

// TestIsolatedOutput checks that what a provider prints to stdout does
// not corrupt the helper's answer, and reaches Logf.
func TestIsolatedOutput(t *testing.T) {
	f := newFixture(t)
	tg := newTarget(t)
	lib := f.install(t, f.good, "provider.so")
	var mu sync.Mutex
	var logs []string
	r := &Resolver{Trust: f.trust(t, lib), Isolate: true, Logf: func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		logs = append(logs, format)
		for _, a := range args {
			if s, ok := a.(string); ok {
				logs = append(logs, s)
			}
		}
	}}
	m := answerMeta(goodEntries...)
	m.mode = modePrint
	entries, res := r.ResolveCallbackTable(os.Getpid(), tg.table(lib, m))
	if res.Err != nil || !reflect.DeepEqual(entries, goodEntries) {
		t.Fatalf("%v, %v", entries, res.Err)
	}
	if !strings.Contains(strings.Join(logs, "\n"), "a provider that prints to stdout") {
		t.Errorf("logs = %q", logs)
	}
}

// TestHelperRechecksTrust checks that the helper checks the list itself:
// a process started as a helper for a library not on the list refuses
// to load it.
func TestHelperRechecksTrust(t *testing.T) {
	f := newFixture(t)
	tg := newTarget(t)
	lib := f.install(t, f.good, "provider.so")
	other := f.install(t, f.good, "other.so")
	r := &Resolver{Trust: f.trust(t, lib), Isolate: true}
	// The parent checks lib, then hands the helper a list that no longer
	// holds it: the helper, reading the list again, refuses.
	d := r.Trust.Check(lib)
	f.trust(t, other)
	_, _, err := r.callIsolated(r.Trust, d, os.Getpid(), tg.table(lib, answerMeta()).Record)
	if !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "not on the trust list") {
		t.Errorf("err = %v, want ErrUntrusted", err)
	}
	if n := f.loads(t); n != 0 {
		t.Errorf("loaded %d times", n)
	}
}

// TestConcurrent resolves one table from many goroutines (run with
// -race).
func TestConcurrent(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			f := newFixture(t)
			tg := newTarget(t)
			lib := f.install(t, f.good, "provider.so")
			r := &Resolver{Trust: f.trust(t, lib), Isolate: m.isolate}
			tbl := tg.table(lib, answerMeta(goodEntries...))
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					for range 4 {
						entries, res := r.ResolveCallbackTable(os.Getpid(), tbl)
						if res.Err != nil || len(entries) != len(goodEntries) {
							t.Errorf("%v, %v", entries, res.Err)
						}
					}
				})
			}
			wg.Wait()
		})
	}
}

func BenchmarkResolve(b *testing.B) {
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			f := newFixture(b)
			b.Setenv(markerEnv, "") // no marker file, small arrays: the provider's own cost is small
			tg := newTarget(b)
			lib := f.install(b, f.good, "provider.so")
			r := &Resolver{Trust: f.trust(b, lib), Isolate: m.isolate}
			tbl := tg.table(lib, answerMeta(goodEntries...))
			for b.Loop() {
				if _, res := r.ResolveCallbackTable(os.Getpid(), tbl); res.Err != nil {
					b.Fatal(res.Err)
				}
			}
		})
	}
}

// TestZeroResolver checks the zero Resolver: the default list (missing
// here, or not listing the test library) decides, and a table naming no
// library is refused without a call.
func TestZeroResolver(t *testing.T) {
	f := newFixture(t)
	tg := newTarget(t)
	lib := f.install(t, f.good, "provider.so")
	var r Resolver
	_, res := r.ResolveCallbackTable(os.Getpid(), tg.table(lib, answerMeta(goodEntries...)))
	if _, err := os.Stat(DefaultListFile); errors.Is(err, os.ErrNotExist) && !errors.Is(res.Err, ErrUntrusted) {
		t.Errorf("no default list: %v", res.Err)
	}
	if res.Err == nil || res.Loaded {
		t.Errorf("a library on no list: %+v", res)
	}
	_, res = r.ResolveCallbackTable(os.Getpid(), tg.table("", answerMeta(goodEntries...)))
	if !errors.Is(res.Err, remote.ErrNoProvider) || res.Trusted {
		t.Errorf("no library named: %+v", res)
	}
	if n := f.loads(t); n != 0 {
		t.Errorf("loaded %d times", n)
	}
}
