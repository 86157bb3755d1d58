package demotarget_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fntable/fntable/functable"
	"github.com/fntable/fntable/functable/remote"
	"github.com/fntable/fntable/internal/demotarget"
	"github.com/fntable/fntable/internal/procmem"
	"github.com/fntable/fntable/symfile/perfmap"
)

// TestMain runs the test binary as the target when it is started as one.
// The target's arguments are its own flags; the testing package never
// sees them, since m.Run is not called.
func TestMain(m *testing.M) {
	if demotarget.IsTarget() {
		os.Exit(demotarget.Main(os.Args[1:]))
	}
	status := m.Run()
	if providerDir != "" {
		os.RemoveAll(providerDir)
	}
	os.Exit(status)
}

func needLinuxAMD64(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skipf("needs linux/amd64: the target runs x86-64 code and reads /proc, not %s/%s", runtime.GOOS, runtime.GOARCH)
	}
}

// start starts a target that t's cleanup ends.
func start(t *testing.T, opts demotarget.Options) *demotarget.Process {
	t.Helper()
	needLinuxAMD64(t)
	if opts.Lifetime == 0 {
		opts.Lifetime = 5 * time.Minute // in case everything else fails
	}
	p, err := demotarget.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(p.Report.PerfMap); err == nil {
			t.Errorf("perf map %s left after the target ended", p.Report.PerfMap)
		}
	})
	return p
}

var (
	providerOnce sync.Once
	providerDir  string // removed by TestMain
	providerPath string
	providerErr  error
)

// provider builds the example provider once per test binary, or skips t
// without a C compiler.
func provider(t *testing.T) string {
	t.Helper()
	if _, err := demotarget.Compiler(); err != nil {
		t.Skipf("needs a C compiler to build the example provider: %v", err)
	}
	providerOnce.Do(func() {
		providerDir, providerErr = os.MkdirTemp("", "demotarget-provider-")
		if providerErr != nil {
			return
		}
		providerPath, providerErr = demotarget.BuildProvider(providerDir)
	})
	if providerErr != nil {
		t.Fatal(providerErr)
	}
	return providerPath
}

// readList reads the target's published list, as another process does.
func readList(t *testing.T, pid int) *remote.Snapshot {
	t.Helper()
	ms, err := remote.Find(pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 {
		t.Fatalf("found %d published lists, want 1", len(ms))
	}
	mem, err := procmem.Open(pid)
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	snap, err := remote.Read(mem, ms[0])
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// kindOf returns the report's kind of a table of the published list.
func kindOf(rt *remote.Table) demotarget.TableKind {
	switch {
	case rt.Type == functable.RF_CALLBACK:
		return demotarget.TableCallback
	case rt.Growable:
		return demotarget.TableGrowable
	default:
		return demotarget.TableStatic
	}
}

// fakeProvider is a provider path for tests that do not call the
// provider: the target only records it.
const fakeProvider = "/opt/fntable-demo/libfntdemo_provider.so"

func TestReport(t *testing.T) {
	prov := fakeProvider
	p := start(t, demotarget.Options{Provider: prov, Seed: 7})
	r := &p.Report
	if r.Provider != prov || r.Seed != 7 || r.Churn || len(r.Notes) != 0 {
		t.Errorf("report: provider %q seed %d churn %v notes %q", r.Provider, r.Seed, r.Churn, r.Notes)
	}

	// The published list holds exactly the three tables, as reported.
	snap := readList(t, p.Pid)
	if len(snap.Tables) != 3 {
		t.Fatalf("published list has %d tables, want 3", len(snap.Tables))
	}
	for i := range snap.Tables {
		rt := &snap.Tables[i]
		k := kindOf(rt)
		tt := r.Table(k)
		if tt == nil {
			t.Fatalf("published %s table [%#x, %#x) is not in the report", k, rt.MinimumAddress, rt.MaximumAddress)
		}
		if uint64(tt.Min) != rt.MinimumAddress || uint64(tt.Max) != rt.MaximumAddress || uint64(tt.Base) != rt.BaseAddress || uint64(tt.Record) != rt.Record {
			t.Errorf("%s table: published [%#x, %#x) base %#x record %#x, reported [%#x, %#x) base %#x record %#x", k,
				rt.MinimumAddress, rt.MaximumAddress, rt.BaseAddress, rt.Record, tt.Min, tt.Max, tt.Base, tt.Record)
		}
		switch k {
		case demotarget.TableCallback:
			if rt.OutOfProcessCallbackDll != prov || rt.Context != uint64(r.Metadata) || rt.Identifier() != uint64(tt.Identifier) || tt.Identifier != tt.Base|3 {
				t.Errorf("callback table: provider %q context %#x identifier %#x", rt.OutOfProcessCallbackDll, rt.Context, rt.Identifier())
			}
		default:
			if int(rt.EntryCount) != tt.EntryCount || int(rt.MaximumEntryCount) != tt.MaximumEntryCount {
				t.Errorf("%s table: published %d of %d entries, reported %d of %d", k, rt.EntryCount, rt.MaximumEntryCount, tt.EntryCount, tt.MaximumEntryCount)
			}
			for j, e := range rt.Entries {
				if j < len(tt.Entries) && (uint32(tt.Entries[j].BeginAddress) != e.BeginAddress || uint32(tt.Entries[j].EndAddress) != e.EndAddress ||
					uint32(tt.Entries[j].UnwindData) != e.UnwindData) {
					t.Errorf("%s table entry %d: published %+v, reported %+v", k, j, e, tt.Entries[j])
				}
			}
		}
	}
	// The tables are contiguous: static below callback below growable,
	// and the growable table grew while the target ran (its entries are
	// those of mixed-b's last four functions and the grown chain's).
	st, ct, gt := r.Table(demotarget.TableStatic), r.Table(demotarget.TableCallback), r.Table(demotarget.TableGrowable)
	if st.Max > ct.Min || ct.Max != gt.Min || !r.Reservation.Contains(st.Min) || !r.Reservation.Contains(gt.Max-1) {
		t.Errorf("tables out of order: static [%#x, %#x) callback [%#x, %#x) growable [%#x, %#x) reservation [%#x, %#x)",
			st.Min, st.Max, ct.Min, ct.Max, gt.Min, gt.Max, r.Reservation.Start, r.Reservation.End)
	}
	if gt.EntryCount != 4+3 || gt.MaximumEntryCount != 256 {
		t.Errorf("growable table has %d of %d entries, want 7 of 256", gt.EntryCount, gt.MaximumEntryCount)
	}

	// The threads.
	wantDepth := map[demotarget.ThreadKind]int{demotarget.ThreadStatic: 8, demotarget.ThreadMixed: 12,
		demotarget.ThreadCallback: 5, demotarget.ThreadGrown: 3, demotarget.ThreadOrdinary: -1}
	wantTables := map[demotarget.ThreadKind][]demotarget.TableKind{
		demotarget.ThreadStatic:   {demotarget.TableStatic},
		demotarget.ThreadMixed:    {demotarget.TableGrowable, demotarget.TableCallback, demotarget.TableStatic},
		demotarget.ThreadCallback: {demotarget.TableCallback, demotarget.TableStatic},
		demotarget.ThreadGrown:    {demotarget.TableGrowable, demotarget.TableStatic},
	}
	if len(r.Threads) != len(wantDepth) {
		t.Errorf("%d threads, want %d", len(r.Threads), len(wantDepth))
	}
	for _, th := range r.Threads {
		want, ok := wantDepth[th.Kind]
		if !ok {
			t.Errorf("thread %d: unexpected kind %q", th.Tid, th.Kind)
			continue
		}
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/comm", p.Pid, th.Tid))
		if err != nil || strings.TrimSpace(string(comm)) != th.Name {
			t.Errorf("thread %d %s: /proc comm %q %v", th.Tid, th.Name, comm, err)
		}
		sc, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/syscall", p.Pid, th.Tid))
		nr, pc, ok := demotarget.ParseSyscall(string(sc))
		if err != nil || !ok || nr != th.Syscall {
			t.Errorf("thread %d %s: not blocked in system call %d: %q %v", th.Tid, th.Name, th.Syscall, sc, err)
		}
		if th.Kind == demotarget.ThreadOrdinary {
			if len(th.Frames) != 0 {
				t.Errorf("ordinary thread has %d JIT frames", len(th.Frames))
			}
			continue
		}
		if len(th.Frames) != want+1 {
			t.Errorf("thread %s: %d frames, want %d and the thunk", th.Name, len(th.Frames), want)
			continue
		}
		if inner := th.Frames[0]; !(inner.Begin <= demotarget.Addr(pc) && demotarget.Addr(pc) < inner.End) {
			t.Errorf("thread %s: PC %#x outside its innermost function %s [%#x, %#x)", th.Name, pc, inner.Function, inner.Begin, inner.End)
		}
		if th.Frames[want].Function != "jit_thunk" {
			t.Errorf("thread %s: outermost frame %s, want jit_thunk", th.Name, th.Frames[want].Function)
		}
		var seen []demotarget.TableKind
		for i, f := range th.Frames {
			if i > 0 && f.End > th.Frames[i-1].Begin {
				t.Errorf("thread %s: frame %d %s [%#x, %#x) is not below its callee", th.Name, i, f.Function, f.Begin, f.End)
			}
			rt := snap.Table(uint64(f.Begin))
			if rt == nil || kindOf(rt) != f.Table || uint64(f.End) > rt.MaximumAddress {
				t.Errorf("thread %s: frame %s [%#x, %#x) of the %s table is not inside a published table of that kind", th.Name, f.Function, f.Begin, f.End, f.Table)
			}
			if len(seen) == 0 || seen[len(seen)-1] != f.Table {
				seen = append(seen, f.Table)
			}
		}
		if !slices.Equal(seen, wantTables[th.Kind]) {
			t.Errorf("thread %s crosses tables %v, want %v", th.Name, seen, wantTables[th.Kind])
		}
	}

	// The perf map names every frame.
	pm, err := perfmap.Open(r.PerfMap)
	if err != nil {
		t.Fatal(err)
	}
	names := map[uint64]string{}
	for _, s := range pm.Symbols() {
		names[s.Addr] = s.Name
	}
	for _, th := range r.Threads {
		for _, f := range th.Frames {
			if names[uint64(f.Begin)] != f.Function {
				t.Errorf("perf map names %#x %q, want %q", f.Begin, names[uint64(f.Begin)], f.Function)
			}
		}
	}
}

// TestNoWritableCode checks that no mapping of the target is writable and
// executable.
func TestNoWritableCode(t *testing.T) {
	p := start(t, demotarget.Options{Churn: true})
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", p.Pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		n++
		if strings.Contains(fields[1], "w") && strings.Contains(fields[1], "x") {
			t.Errorf("writable and executable mapping: %s", sc.Text())
		}
	}
	if n == 0 {
		t.Error("no mappings read")
	}
}

// TestNoProvider runs the target without a provider library: no callback
// table, and the frames of the callback part belong to no table.
func TestNoProvider(t *testing.T) {
	p := start(t, demotarget.Options{})
	r := &p.Report
	if r.Table(demotarget.TableCallback) != nil || len(r.Notes) == 0 {
		t.Errorf("without a provider: callback table %v, notes %q", r.Table(demotarget.TableCallback), r.Notes)
	}
	snap := readList(t, p.Pid)
	if len(snap.Tables) != 2 {
		t.Errorf("published list has %d tables, want 2", len(snap.Tables))
	}
	th := r.Thread(demotarget.ThreadCallback)
	if th == nil || th.Frames[0].Table != demotarget.TableNone {
		t.Errorf("callback thread %+v: want frames of no table", th)
	}
}

// TestSameSeedSameCode checks that the seed decides the code: two targets
// with one seed report the same functions at the same offsets from their
// reservations.
func TestSameSeedSameCode(t *testing.T) {
	rel := func(r *demotarget.Report) []string {
		var s []string
		for _, th := range r.Threads {
			for _, f := range th.Frames {
				s = append(s, fmt.Sprintf("%s %#x %#x %s", f.Function, f.Begin-r.Reservation.Start, f.End-r.Reservation.Start, f.Table))
			}
		}
		return s
	}
	a := start(t, demotarget.Options{Seed: 3})
	b := start(t, demotarget.Options{Seed: 3})
	c := start(t, demotarget.Options{Seed: 4})
	if !slices.Equal(rel(&a.Report), rel(&b.Report)) {
		t.Errorf("seed 3 gave different code:\n%q\n%q", rel(&a.Report), rel(&b.Report))
	}
	if slices.Equal(rel(&a.Report), rel(&c.Report)) {
		t.Error("seeds 3 and 4 gave the same code")
	}
}

// TestGCRuns checks that the garbage collector keeps running while the
// JIT threads are blocked in JIT code.
func TestGCRuns(t *testing.T) {
	p := start(t, demotarget.Options{})
	s0, err := p.Status()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		time.Sleep(100 * time.Millisecond)
		s1, err := p.Status()
		if err != nil {
			t.Fatal(err)
		}
		if s1.NumGC >= s0.NumGC+3 {
			t.Logf("%d garbage collections, then %d", s0.NumGC, s1.NumGC)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the garbage collector stalled: %d collections, then %d after 10 s", s0.NumGC, s1.NumGC)
		}
	}
	if s0.NumGC < p.Report.NumGC {
		t.Errorf("status reports %d collections, fewer than the report's %d", s0.NumGC, p.Report.NumGC)
	}
}

// TestChurn walks the published list repeatedly while the target adds and
// deletes tables as fast as it can.
func TestChurn(t *testing.T) {
	p := start(t, demotarget.Options{Churn: true})
	ms, err := remote.Find(p.Pid)
	if err != nil || len(ms) != 1 {
		t.Fatalf("find the list: %v %v", ms, err)
	}
	mem, err := procmem.Open(p.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	dur := 2 * time.Second
	if testing.Short() {
		dur = 300 * time.Millisecond
	}
	reads, retries, counts := 0, 0, map[int]int{}
	for end := time.Now().Add(dur); time.Now().Before(end); {
		snap, err := remote.Read(mem, ms[0])
		if err != nil {
			t.Fatalf("read %d: %v", reads, err)
		}
		reads++
		retries += snap.Retries
		counts[len(snap.Tables)]++
		// The parked threads' tables are always there, unchanged.
		for _, tt := range p.Report.Tables {
			rt := snap.Table(uint64(tt.Min))
			if rt == nil || kindOf(rt) != tt.Kind || rt.MaximumAddress != uint64(tt.Max) || (tt.Kind != demotarget.TableCallback && int(rt.EntryCount) != tt.EntryCount) {
				t.Fatalf("read %d: the %s table at %#x changed: %+v", reads, tt.Kind, tt.Min, rt)
			}
		}
	}
	st, err := p.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.ChurnErr != "" || st.ChurnCycles == 0 {
		t.Errorf("churn: %d cycles, error %q", st.ChurnCycles, st.ChurnErr)
	}
	if len(counts) < 2 {
		t.Errorf("every read saw the same number of tables: %v", counts)
	}
	t.Logf("%d reads (%d retries) during %d churn cycles; tables seen: %v", reads, retries, st.ChurnCycles, counts)
}

// harnessSource calls a provider library as a tool does: dlopen, dlsym,
// call, print the answer.
const harnessSource = `#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include "fntable.h"

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: harness provider pid record\n");
        return 2;
    }
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    POUT_OF_PROCESS_FUNCTION_TABLE_CALLBACK fn =
        (POUT_OF_PROCESS_FUNCTION_TABLE_CALLBACK)dlsym(h, OUT_OF_PROCESS_FUNCTION_TABLE_CALLBACK_EXPORT_NAME);
    if (fn == NULL) {
        fprintf(stderr, "dlsym: %s\n", dlerror());
        return 1;
    }
    DWORD n = 12345;
    PRUNTIME_FUNCTION f = (PRUNTIME_FUNCTION)1;
    DWORD st = fn((intptr_t)strtoll(argv[2], NULL, 0), (PVOID)(uintptr_t)strtoull(argv[3], NULL, 0), &n, &f);
    printf("status %#x entries %u %s\n", st, n, f == NULL ? "null" : "array");
    for (DWORD i = 0; f != NULL && i < n; i++) {
        printf("%#x %#x %#x\n", f[i].BeginAddress, f[i].EndAddress, f[i].UnwindData);
    }
    free(f);
    return 0;
}
`

// TestProvider builds the example provider and calls it from a C program
// on the live target: it returns exactly the callback table's entries,
// and fails cleanly for records that are not a callback table's.
func TestProvider(t *testing.T) {
	prov := provider(t)
	p := start(t, demotarget.Options{Provider: prov, Seed: 11})
	cc, _ := demotarget.Compiler()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "harness.c"), []byte(harnessSource), 0o644); err != nil {
		t.Fatal(err)
	}
	harness := filepath.Join(dir, "harness")
	incl := filepath.Dir(prov) // BuildProvider wrote fntable.h beside the library
	if out, err := exec.Command(cc, "-O2", "-Wall", "-Werror", "-I"+incl, "-o", harness, filepath.Join(dir, "harness.c"), "-ldl").CombinedOutput(); err != nil {
		t.Fatalf("build the harness: %v\n%s", err, out)
	}
	call := func(pid int, record uint64) []string {
		t.Helper()
		out, err := exec.Command(harness, prov, strconv.Itoa(pid), fmt.Sprintf("%#x", record)).CombinedOutput()
		if err != nil {
			t.Fatalf("harness: %v\n%s", err, out)
		}
		return strings.Split(strings.TrimSpace(string(out)), "\n")
	}

	snap := readList(t, p.Pid)
	var cb, static *remote.Table
	for i := range snap.Tables {
		switch kindOf(&snap.Tables[i]) {
		case demotarget.TableCallback:
			cb = &snap.Tables[i]
		case demotarget.TableStatic:
			static = &snap.Tables[i]
		}
	}
	if cb == nil || static == nil {
		t.Fatal("no callback or static table in the published list")
	}
	entries := p.Report.Table(demotarget.TableCallback).Entries
	want := []string{fmt.Sprintf("status 0 entries %d array", len(entries))}
	for _, e := range entries {
		want = append(want, fmt.Sprintf("%#x %#x %#x", uint32(e.BeginAddress), uint32(e.EndAddress), uint32(e.UnwindData)))
	}
	got := call(p.Pid, cb.Record)
	if !slices.Equal(got, fixZero(want)) {
		t.Errorf("provider answered\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(fixZero(want), "\n"))
	}

	// Failures: a static table's record, unreadable memory, no process.
	for _, c := range []struct {
		name   string
		pid    int
		record uint64
		want   string
	}{
		{"static record", p.Pid, static.Record, "status 0xc000000d entries 0 null"},
		{"unmapped", p.Pid, 0x10, "status 0xc0000005 entries 0 null"},
		{"no process", 0x7ffffff0, cb.Record, "status 0xc0000008 entries 0 null"},
	} {
		if got := call(c.pid, c.record); len(got) != 1 || got[0] != c.want {
			t.Errorf("%s: provider answered %q, want %q", c.name, got, c.want)
		}
	}
}

// fixZero rewrites the numbers of want as C's printf("%#x") writes them:
// 0 without a prefix.
func fixZero(want []string) []string {
	out := make([]string, len(want))
	for i, w := range want {
		f := strings.Fields(w)
		for j, s := range f {
			if s == "0x0" {
				f[j] = "0"
			}
		}
		out[i] = strings.Join(f, " ")
	}
	return out
}

// TestStartFailures checks that Start reports a target that ends or hangs
// without a report, quoting its standard error, and leaves no process.
func TestStartFailures(t *testing.T) {
	needLinuxAMD64(t)
	dir := t.TempDir()
	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct {
		name string
		opts demotarget.Options
		want string
	}{
		{"ends", demotarget.Options{Executable: script("ends", "echo boom >&2; exit 3")}, "ended without a report; its standard error:\nboom"},
		{"garbage", demotarget.Options{Executable: script("garbage", "echo '{'; exec sleep 60")}, "read its report"},
		{"hangs", demotarget.Options{Executable: script("hangs", "echo still here >&2; exec sleep 60"), Timeout: 300 * time.Millisecond}, "no report after 300ms; its standard error:\nstill here"},
		{"missing", demotarget.Options{Executable: filepath.Join(dir, "missing")}, "no such file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := demotarget.Start(context.Background(), c.opts)
			if err == nil {
				p.Close()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want it to contain %q", err, c.want)
			}
		})
	}
}
