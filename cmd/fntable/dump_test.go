package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fntable/fntable/capture"
	"github.com/fntable/fntable/internal/demotarget"
	"github.com/fntable/fntable/internal/testenv"
	"github.com/fntable/fntable/provider"
	"github.com/fntable/fntable/target/dump"
)

// dumpDemo starts the demo target with its provider trusted and returns
// it with the resolver that trusts the provider; t's cleanup ends it.
func dumpDemo(t testing.TB) (*demotarget.Process, *provider.Resolver) {
	t.Helper()
	dir := testenv.TrustedDir(t)
	lib, err := demotarget.BuildProvider(dir)
	if err != nil {
		t.Skipf("no example provider: %v", err)
	}
	list := filepath.Join(dir, "empty-trust-list")
	if err := os.WriteFile(list, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	trust, err := provider.LoadTrust(provider.TrustOptions{File: list, Extra: []string{lib}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := demotarget.Start(context.Background(), demotarget.Options{Provider: lib, Lifetime: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, &provider.Resolver{Trust: trust}
}

// walkDumpNoProvider walks the dump at path offline: no provider, module
// files only from the paths the dump names (an empty search path).
func walkDumpNoProvider(t *testing.T, path string) *stackResult {
	t.Helper()
	d, err := dump.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.LoadImages(context.Background(), dump.ImageOptions{SearchPath: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	res, err := walkDump(d, stackConfig{maxFrames: 1024}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestDumpRoundTrip captures the demo target, walks the dump offline with
// no provider, and compares the walk with the live one: the same threads,
// and for every thread of the target's report (every JIT thread) the same
// frames, pc and sp, JIT frames included, each in the table it was
// registered in. It walks the dump again after the target has exited.
func TestDumpRoundTrip(t *testing.T) {
	stackNeedLive(t)
	p, r := dumpDemo(t)
	live, err := walkProcess(stackConfig{pid: p.Pid, maxFrames: 1024, provider: r}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := checkDemo(&p.Report, live, false); err != nil {
		t.Fatalf("live walk: %v", err)
	}
	path := filepath.Join(t.TempDir(), "demo.dmp")
	sum, err := capture.WriteFile(p.Pid, path, capture.Options{Provider: r})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dump: %+v", *sum)
	if sum.Unresolved != 0 || sum.Tables < 3 {
		t.Errorf("dump holds %d tables, %d unresolved; want the 3 tables of the demo, all resolved", sum.Tables, sum.Unresolved)
	}
	compare := func(what string, off *stackResult) {
		t.Helper()
		if off.Pid != p.Pid {
			t.Errorf("%s: pid %d, want %d", what, off.Pid, p.Pid)
		}
		tids := func(r *stackResult) []int {
			var ids []int
			for _, th := range r.Threads {
				ids = append(ids, th.Tid)
			}
			slices.Sort(ids)
			return ids
		}
		// The Go runtime of the target may start or end a thread between
		// the live walk and the capture; the report's threads are in both.
		if a, b := tids(live), tids(off); !slices.Equal(a, b) {
			t.Logf("%s: threads %v, live %v", what, b, a)
		}
		if _, err := checkDemo(&p.Report, off, false); err != nil {
			var b strings.Builder
			writeStacksText(&b, demoThreads(&p.Report, off))
			t.Errorf("%s: %v\n%s", what, err, b.String())
		}
		for _, rt := range p.Report.Threads {
			lt := findThread(live, rt.Tid)
			ot := findThread(off, rt.Tid)
			if lt == nil || ot == nil {
				t.Errorf("%s: thread %d (%s) missing", what, rt.Tid, rt.Name)
				continue
			}
			if ot.Name != lt.Name {
				t.Errorf("%s: thread %d named %q, live %q", what, rt.Tid, ot.Name, lt.Name)
			}
			if len(ot.Frames) != len(lt.Frames) {
				t.Errorf("%s: thread %d (%s): %d frames, live %d (offline error %v)", what, rt.Tid, rt.Name, len(ot.Frames), len(lt.Frames), deref(ot.Error))
				continue
			}
			for i := range lt.Frames {
				lf, of := lt.Frames[i], ot.Frames[i]
				samePC := lf.PC == of.PC
				if i == 0 && (lf.PC-of.PC == 2 || of.PC-lf.PC == 2) {
					// The thread loops on pause: stopped again just
					// after the live walk resumed it, it may not have
					// re-entered the restarted system call yet, and its
					// PC is then on the syscall instruction, 2 bytes
					// before the PC it has while blocked in it.
					samePC = true
				}
				if !samePC || lf.SP != of.SP || lf.How != of.How || (lf.Table == nil) != (of.Table == nil) {
					t.Errorf("%s: thread %d (%s) frame %d: pc %#x sp %#x %s, live pc %#x sp %#x %s", what, rt.Tid, rt.Name, i, uint64(of.PC), uint64(of.SP), of.How, uint64(lf.PC), uint64(lf.SP), lf.How)
				}
			}
		}
	}
	compare("offline walk", walkDumpNoProvider(t, path))
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	compare("offline walk after the target exited", walkDumpNoProvider(t, path))

	// The command line: stack and tables of the dump, in JSON.
	status, out, errOut := fntable("stack", "--json", "--no-symbols", path)
	if status != 0 {
		t.Fatalf("stack %s: status %d: %s", path, status, errOut)
	}
	var doc stackResultJSON
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Pid != p.Pid || len(doc.Threads) != sum.Threads {
		t.Errorf("stack --json: pid %d, %d threads; want %d, %d", doc.Pid, len(doc.Threads), p.Pid, sum.Threads)
	}
	// With symbols, the JIT frames are named from the perf map the dump
	// keeps: the target, and its map file, are gone.
	if sum.PerfMap == 0 {
		t.Error("the dump keeps no perf map")
	}
	status, out, errOut = fntable("stack", "--symbol-path", t.TempDir(), path)
	if status != 0 {
		t.Fatalf("stack %s: status %d: %s", path, status, errOut)
	}
	for _, rt := range p.Report.Threads {
		for _, fn := range rt.Frames {
			if !strings.Contains(out, " "+fn.Function+"+0x") {
				t.Errorf("offline stack does not name %s (thread %s):\n%s", fn.Function, rt.Name, out)
			}
		}
	}
	status, out, errOut = fntable("tables", path)
	if status != 0 {
		t.Fatalf("tables %s: status %d: %s", path, status, errOut)
	}
	for _, want := range []string{"RF_SORTED", "RF_SORTED growable", "RF_CALLBACK", "entries from the dump"} {
		if !strings.Contains(out, want) {
			t.Errorf("tables of the dump lack %q:\n%s", want, out)
		}
	}
}

// stackResultJSON is the part of stack --json the tests read.
type stackResultJSON struct {
	Pid     int `json:"pid"`
	Threads []struct {
		Tid    int `json:"tid"`
		Frames []struct {
			PC  string `json:"pc"`
			How string `json:"how"`
		} `json:"frames"`
	} `json:"threads"`
}

func findThread(r *stackResult, tid int) *threadStack {
	for i := range r.Threads {
		if r.Threads[i].Tid == tid {
			return &r.Threads[i]
		}
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// TestDumpCommand runs fntable dump on the demo target and checks what
// it prints, and that the target runs on.
func TestDumpCommand(t *testing.T) {
	stackNeedLive(t)
	p, r := dumpDemo(t)
	path := filepath.Join(t.TempDir(), "x.dmp")
	opts := r.Trust.Options()
	status, out, errOut := fntable("dump", "-o", path, "--trust-provider", opts.Extra[0], "--trust-list", opts.File, strconv.Itoa(p.Pid))
	stackCheckResumed(t, p.Pid)
	if status != 0 {
		t.Fatalf("dump: status %d: %s", status, errOut)
	}
	for _, want := range []string{"wrote " + path, "threads", "dynamic function tables", "Breakpad Linux streams"} {
		if !strings.Contains(out, want) {
			t.Errorf("dump output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	// A process that does not exist: an error, and no file.
	gone := filepath.Join(t.TempDir(), "gone.dmp")
	status, _, errOut = fntable("dump", "-o", gone, strconv.Itoa(stackNoSuchPID))
	if status != 1 || !strings.Contains(errOut, "no such process") {
		t.Errorf("dump of no process: status %d, %q", status, errOut)
	}
	if _, err := os.Stat(gone); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dump of no process left %s: %v", gone, err)
	}
}
