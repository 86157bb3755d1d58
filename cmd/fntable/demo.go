package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fntable/fntable/internal/demotarget"
	"github.com/fntable/fntable/provider"
)

func newDemoCmd() *command {
	c := &command{
		name:    "demo",
		args:    "[--json] [--seed N] [--isolate-providers]",
		summary: "walk a real JIT process from outside: static, growable and callback function tables",
		help: `
Demo runs fntable's main job on a built-in example: it walks, from outside,
the stacks of a process that executes generated code (JIT code) registered
in dynamic function tables, as a debugger or a profiler would.

 1. It builds the example provider library with the C compiler on PATH
    (cc -shared -fPIC): the library a callback table names as its
    OutOfProcessCallbackDll, which tools call for the table's entries. It
    is built in the user's cache directory (~/.cache/fntable/demo).
 2. It starts the target: fntable itself, re-executed, which generates
    x86-64 functions with Windows x64 unwind information, writes them into
    memory that it then makes read+execute (never writable and executable
    at once), and registers them in a published function table registry:
    a static table (RtlAddFunctionTable), a callback table
    (RtlInstallFunctionTableCallback, naming the example provider) and a
    growable table (RtlAddGrowableFunctionTable), which it grows while
    running. Its threads call into that code and block in a system call
    made from it, at different depths: one per table, one whose chain
    crosses all three, and one ordinary thread. It writes a perf map that
    names every generated function.
 3. It stops the target with ptrace, walks every thread (trusting only the
    example provider, as --trust-provider would), and resumes it.
 4. It prints every stack as "fntable stack" does: generated functions
    named from the perf map, "{static table}", "{callback table}" or
    "{growable table}" for the table that unwound each JIT frame.
 5. It checks every JIT frame against the chain the target built, and that
    every walk reached its outermost frame, and exits 0 if all hold.

Without a C compiler the target runs without its callback table, and the
demo says so. --json prints the stacks in the "fntable stack --json"
contract instead of the narrative. The target ends with the demo.`,
	}
	c.run = func(args []string, stdout, stderr io.Writer) error {
		fs := c.flagSet()
		asJSON := fs.Bool("json", false, "print the stacks as one JSON document (the fntable stack contract)")
		seed := fs.Uint64("seed", 1, "the code generator's seed `N`")
		isolate := fs.Bool("isolate-providers", false, "call the provider in a helper process")
		if err := c.parse(fs, args, stdout); err != nil {
			return err
		}
		if fs.NArg() != 0 {
			return c.usagef("demo takes no arguments")
		}
		return demoMain(demoConfig{seed: *seed, json: *asJSON, isolate: *isolate}, stdout, stderr)
	}
	return c
}

type demoConfig struct {
	seed          uint64
	json, isolate bool
}

// demoOut writes the narrative, or nothing with --json.
type demoOut struct {
	w    io.Writer
	json bool
}

func (o demoOut) printf(format string, args ...any) {
	if !o.json {
		fmt.Fprintf(o.w, format, args...)
	}
}

func demoMain(cfg demoConfig, stdout, stderr io.Writer) error {
	out := demoOut{stdout, cfg.json}
	ctx := context.Background()

	// 1. The provider.
	lib, dir, err := demoProvider()
	switch {
	case errors.Is(err, demotarget.ErrNoCompiler):
		out.printf("1. No C compiler on PATH (cc or gcc): the example provider cannot be built, so the target\n   runs without its callback table.\n")
		fmt.Fprintf(stderr, "fntable demo: %v: running without the callback table\n", err)
	case errors.Is(err, errNoSafeDir):
		out.printf("1. No directory where the trust rules would accept the example provider (set\n   XDG_CACHE_HOME to a directory only you can write), so the target runs without its\n   callback table.\n")
		fmt.Fprintf(stderr, "fntable demo: %v: running without the callback table\n", err)
	case err != nil:
		return fmt.Errorf("build the example provider: %w", err)
	default:
		out.printf("1. Built the example provider %s\n   (the library a callback table names; tools call its OutOfProcessFunctionTableCallback).\n", lib)
	}

	// 2. The target.
	p, err := demotarget.Start(ctx, demotarget.Options{Provider: lib, Seed: cfg.seed, Stderr: stderr})
	if err != nil {
		return fmt.Errorf("start the demo target: %w", err)
	}
	defer p.Close()
	rep := &p.Report
	out.printf("2. Started the target, process %d: it generated code into [%#x, %#x), registered it in\n   %s, and parked %d threads.\n",
		rep.Pid, uint64(rep.Reservation.Start), uint64(rep.Reservation.End), demoTables(rep), len(rep.Threads))
	for _, n := range rep.Notes {
		out.printf("   (%s)\n", n)
	}

	// 3. The walk.
	var extra []string
	if lib != "" {
		extra = []string{lib}
	}
	trust, err := demoTrust(dir, extra)
	if err != nil {
		return err
	}
	r := &provider.Resolver{Trust: trust, Isolate: cfg.isolate}
	scfg := stackConfig{pid: rep.Pid, maxFrames: 1024, symbols: true, provider: r}
	t0 := time.Now()
	res, err := walkProcess(scfg, stderr)
	if err != nil {
		return err
	}
	walked := time.Since(t0)
	symbolizeStacks(res, scfg, stderr)
	frames := 0
	for _, th := range res.Threads {
		frames += len(th.Frames)
	}
	trusting := "trusting only the example provider"
	if lib == "" {
		trusting = "trusting no provider"
	}
	out.printf("3. Stopped it with ptrace, walked its %d threads (%d frames) and resumed it in %.1f ms,\n   %s.\n",
		len(res.Threads), frames, float64(walked.Microseconds())/1000, trusting)

	// 4. The stacks.
	sum, checkErr := checkDemo(rep, res, true)
	if cfg.json {
		if err := writeListing(stdout, true, res, nil); err != nil {
			return err
		}
	} else {
		out.printf("4. Its stacks, JIT functions named from its perf map, {table} the table that unwound each JIT frame:\n\n")
		var b strings.Builder
		writeStacksText(&b, demoThreads(rep, res))
		for _, line := range strings.SplitAfter(b.String(), "\n") {
			if line != "" {
				out.printf("   %s", line)
			}
		}
		out.printf("\n   (%d Go runtime threads not shown: \"fntable demo --json\" lists every thread.)\n", len(res.Threads)-len(rep.Threads))
	}
	if checkErr != nil {
		return fmt.Errorf("the walk does not match the chains the target built: %w", checkErr)
	}
	out.printf("\n5. Checked: %s.\n", sum)
	return nil
}

// errNoSafeDir: no directory was found where the trust rules would
// accept the example provider.
var errNoSafeDir = errors.New("no directory for the example provider passes the trust rules")

// demoProvider builds the example provider in a directory that the trust
// rules accept (it, and every directory above it, owned by the user or
// root and writable by no one else): the user's cache directory, or, when
// that lies under a directory others can write (HOME in /tmp), the user's
// runtime directory or the cache directory of the home that the user
// database gives.
func demoProvider() (lib, dir string, err error) {
	var candidates, refused []string
	if base, err := os.UserCacheDir(); err == nil {
		candidates = append(candidates, filepath.Join(base, "fntable", "demo"))
	}
	if run := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(run) {
		candidates = append(candidates, filepath.Join(run, "fntable-demo"))
	}
	if u, err := user.Current(); err == nil && filepath.IsAbs(u.HomeDir) {
		candidates = append(candidates, filepath.Join(u.HomeDir, ".cache", "fntable", "demo"))
	}
	for i, dir := range candidates {
		if slices.Contains(candidates[:i], dir) {
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			refused = append(refused, fmt.Sprintf("%s: %v", dir, err))
			continue
		}
		if err := os.Chmod(dir, 0o755); err != nil { // MkdirAll obeys the umask
			refused = append(refused, fmt.Sprintf("%s: %v", dir, err))
			continue
		}
		if err := provider.CheckDir(dir); err != nil {
			refused = append(refused, fmt.Sprintf("%s: %v", dir, err))
			continue
		}
		lib, err = demotarget.BuildProvider(dir)
		return lib, dir, err
	}
	return "", "", fmt.Errorf("%w (%s)", errNoSafeDir, strings.Join(refused, "; "))
}

// demoTrust is the demo's trust list: only the paths in extra, as with an
// empty list file and --trust-provider.
func demoTrust(dir string, extra []string) (*provider.Trust, error) {
	if dir == "" {
		return provider.LoadTrust(provider.TrustOptions{Extra: extra})
	}
	list := filepath.Join(dir, "known-function-table-dlls")
	if err := os.WriteFile(list, []byte("# fntable demo: the example provider is trusted with --trust-provider\n"), 0o644); err != nil {
		return nil, err
	}
	return provider.LoadTrust(provider.TrustOptions{File: list, Extra: extra})
}

// demoTables says which tables the target registered.
func demoTables(rep *demotarget.Report) string {
	var parts []string
	for _, t := range rep.Tables {
		switch t.Kind {
		case demotarget.TableGrowable:
			parts = append(parts, fmt.Sprintf("a growable table (%d of %d entries, grown while running)", t.EntryCount, t.MaximumEntryCount))
		case demotarget.TableCallback:
			parts = append(parts, fmt.Sprintf("a callback table (provider %s)", filepath.Base(rep.Provider)))
		default:
			parts = append(parts, fmt.Sprintf("a %s table (%d entries)", t.Kind, t.EntryCount))
		}
	}
	switch len(parts) {
	case 0:
		return "no table"
	case 1:
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

// demoThreads returns res with the target's own threads only, in the
// order the target started them.
func demoThreads(rep *demotarget.Report, res *stackResult) *stackResult {
	out := &stackResult{Pid: res.Pid}
	for _, rt := range rep.Threads {
		for _, th := range res.Threads {
			if th.Tid == rt.Tid {
				out.Threads = append(out.Threads, th)
			}
		}
	}
	return out
}

// checkDemo checks the walk against the report: every JIT thread's frames
// are the chain the target built, innermost first, each in the function
// the target reports, named from the perf map (if named), and found in the
// table it was registered in; every walk of the target's threads ends
// without an error (at the outermost frame).
func checkDemo(rep *demotarget.Report, res *stackResult, named bool) (string, error) {
	byTable := map[demotarget.TableKind]int{}
	jitThreads, stopped := 0, 0
threads:
	for _, rt := range rep.Threads {
		var th *threadStack
		for i := range res.Threads {
			if res.Threads[i].Tid == rt.Tid {
				th = &res.Threads[i]
			}
		}
		if th == nil {
			return "", fmt.Errorf("thread %d (%s) was not walked", rt.Tid, rt.Name)
		}
		if len(rt.Frames) > 0 {
			jitThreads++
		}
		// Without the callback table (no provider), nothing describes the
		// code of its part: the frames up to its first one are checked,
		// and what the walk finds beyond (the frame-pointer chain, a
		// guess) is not.
		if k := slices.IndexFunc(rt.Frames, func(f demotarget.Frame) bool { return f.Table == demotarget.TableNone }); k >= 0 {
			if len(th.Frames) < k+1 {
				return "", fmt.Errorf("thread %d (%s): %d frames, want at least %d, to %s", rt.Tid, rt.Name, len(th.Frames), k+1, rt.Frames[k].Function)
			}
			if f := th.Frames[k]; f.Table != nil {
				return "", fmt.Errorf("thread %d (%s) frame %d (%s): in a %s table, want none", rt.Tid, rt.Name, k, rt.Frames[k].Function, f.Table.kind())
			}
			if err := checkDemoFrames(rt, th, rt.Frames[:k], named, byTable); err != nil {
				return "", err
			}
			stopped++
			continue threads
		}
		switch {
		case th.Error != nil:
			return "", fmt.Errorf("thread %d (%s): the walk ended early: %s", rt.Tid, rt.Name, *th.Error)
		case len(th.Frames) < len(rt.Frames)+1:
			return "", fmt.Errorf("thread %d (%s): %d frames, want more than its %d JIT frames", rt.Tid, rt.Name, len(th.Frames), len(rt.Frames))
		}
		if err := checkDemoFrames(rt, th, rt.Frames, named, byTable); err != nil {
			return "", err
		}
		for _, f := range th.Frames[len(rt.Frames):] {
			if f.Table != nil {
				return "", fmt.Errorf("thread %d (%s): a frame at %#x beyond the chain is in a %s table", rt.Tid, rt.Name, uint64(f.PC), f.Table.kind())
			}
		}
	}
	var parts []string
	for _, k := range []demotarget.TableKind{demotarget.TableStatic, demotarget.TableCallback, demotarget.TableGrowable} {
		if n := byTable[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, k))
		}
	}
	total := 0
	for _, n := range byTable {
		total += n
	}
	sum := fmt.Sprintf("all %d JIT frames of the %d JIT threads are the functions the target called,\n"+
		"   in order, each found through the table it registered it in (%s);\n", total, jitThreads, strings.Join(parts, ", "))
	if stopped > 0 {
		return sum + fmt.Sprintf("   %d threads were checked up to the first frame of the unregistered callback part\n"+
			"   (beyond it the walk can only guess, from the frame pointer); the walks of its other\n"+
			"   %d threads reached their outermost frame", stopped, len(rep.Threads)-stopped), nil
	}
	return sum + fmt.Sprintf("   every walk of its %d threads reached its outermost frame", len(rep.Threads)), nil
}

// checkDemoFrames checks the first len(frames) frames of th against the
// JIT frames the target reported for its thread rt.
func checkDemoFrames(rt demotarget.Thread, th *threadStack, frames []demotarget.Frame, named bool, byTable map[demotarget.TableKind]int) error {
	for k, want := range frames {
		f := th.Frames[k]
		if f.Table == nil || demotarget.TableKind(f.Table.kind()) != want.Table {
			got := "no table"
			if f.Table != nil {
				got = f.Table.kind() + " table"
			}
			return fmt.Errorf("thread %d (%s) frame %d (%s): in the %s, want the %s table", rt.Tid, rt.Name, k, want.Function, got, want.Table)
		}
		pc := demotarget.Addr(f.symbolPC)
		if pc < want.Begin || pc >= want.End {
			return fmt.Errorf("thread %d (%s) frame %d at %#x: not in %s [%#x, %#x)", rt.Tid, rt.Name, k, uint64(f.PC), want.Function, uint64(want.Begin), uint64(want.End))
		}
		if named && (!f.Symbol.ok || f.Symbol.s != want.Function) {
			return fmt.Errorf("thread %d (%s) frame %d: named %q, want %s from the perf map", rt.Tid, rt.Name, k, f.Symbol.s, want.Function)
		}
		// Every caller of a JIT frame was found through the JIT
		// frame's table.
		if next := th.Frames[k+1]; next.How != "table" {
			return fmt.Errorf("thread %d (%s) frame %d: its caller was found by %s, not through its table", rt.Tid, rt.Name, k, next.How)
		}
		byTable[want.Table]++
	}
	return nil
}
