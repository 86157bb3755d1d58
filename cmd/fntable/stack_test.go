package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/fntable/fntable/internal/testenv"
	"github.com/fntable/fntable/internal/testproc"
)

// stackNoSuchPID is PID_MAX_LIMIT on 64-bit Linux (1<<22): kernel.pid_max
// cannot exceed it and process IDs are below pid_max, so no process or
// thread ever has this ID.
const stackNoSuchPID = 1 << 22

// stackThreadsArgs are the flags of the threads.c subject: main and two
// workers at recursion depth 5, and the sigalt thread.
var stackThreadsArgs = []string{"-n", "2", "-d", "5", "-s", "-T", "120"}

var (
	// stackThreadLine is the header of a thread's block.
	stackThreadLine = regexp.MustCompile(`^Thread (\d+) "([^"]*)"(?: ([^:]+))?:$`)
	// stackFrameLine is any frame line: "??" without a symbol, the
	// module only when known, the source line only when known.
	stackFrameLine = regexp.MustCompile(`^#(\d+) +0x([0-9a-f]{16}) (\?\?|(\S+)\+0x([0-9a-f]+))(?: \(([^)]+)\))? \[([a-z]+)\](?: \{(static|growable|callback) table\})?(?: at (.+):(\d+))?$`)
	// stackSymbolizedLine is the documented format of a frame with a
	// symbol and a module: #N  0x%016x SYMBOL+0xOFF (MODULE) [HOW].
	stackSymbolizedLine = regexp.MustCompile(`^#\d+ +0x[0-9a-f]{16} [^\s?]\S*\+0x[0-9a-f]+ \([^)]+\) \[[a-z]+\](?: \{[a-z]+ table\})?(?: at .+:\d+)?$`)
	stackInlineLine     = regexp.MustCompile(`^      inlined \S+(?: at .+:\d+)?$`)
	stackWalkEndedLine  = regexp.MustCompile(`^    \(walk ended: (.+)\)$`)
)

// stackTextThread is one block of the text output of fntable stack.
type stackTextThread struct {
	tid    int
	name   string
	state  string
	frames []stackTextFrame
	ended  string // the "walk ended" reason, if any
}

type stackTextFrame struct {
	line   string
	pc     uint64
	symbol string // "" for ??
	module string // "" when not printed
	how    string
	table  string // the kind of the dynamic function table holding pc, or ""
}

// parseStackText parses the text output of fntable stack, checking that
// every line has one of the documented shapes and that frames are
// numbered from 0.
func parseStackText(t *testing.T, out string) []stackTextThread {
	t.Helper()
	var threads []stackTextThread
	var cur *stackTextThread
	for i, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if line == "" {
			if cur == nil || i == 0 {
				t.Fatalf("line %d: empty line outside the separation of blocks:\n%s", i+1, out)
			}
			cur = nil
			continue
		}
		if m := stackThreadLine.FindStringSubmatch(line); m != nil {
			if cur != nil {
				t.Fatalf("line %d: thread block not preceded by an empty line: %q", i+1, line)
			}
			tid, _ := strconv.Atoi(m[1])
			threads = append(threads, stackTextThread{tid: tid, name: m[2], state: m[3]})
			cur = &threads[len(threads)-1]
			continue
		}
		if cur == nil {
			t.Fatalf("line %d outside a thread block: %q", i+1, line)
		}
		switch m := stackFrameLine.FindStringSubmatch(line); {
		case m != nil:
			if cur.ended != "" {
				t.Fatalf("line %d: frame after the walk ended: %q", i+1, line)
			}
			n, _ := strconv.Atoi(m[1])
			if n != len(cur.frames) {
				t.Fatalf("line %d: frame #%d, want #%d: %q", i+1, n, len(cur.frames), line)
			}
			if prefix := fmt.Sprintf("#%-2d 0x", n); !strings.HasPrefix(line, prefix) {
				t.Errorf("line %d: %q does not start with %q", i+1, line, prefix)
			}
			pc, _ := strconv.ParseUint(m[2], 16, 64)
			cur.frames = append(cur.frames, stackTextFrame{line: line, pc: pc, symbol: m[4], module: m[6], how: m[7], table: m[8]})
		case stackInlineLine.MatchString(line):
			if len(cur.frames) == 0 {
				t.Fatalf("line %d: inline line before any frame: %q", i+1, line)
			}
		case stackWalkEndedLine.MatchString(line):
			cur.ended = stackWalkEndedLine.FindStringSubmatch(line)[1]
		default:
			t.Fatalf("line %d has no documented shape: %q", i+1, line)
		}
	}
	return threads
}

// stackNeedLive skips the test unless it can trace a child process.
func stackNeedLive(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("needs linux/amd64: stops a live process with ptrace")
	}
	if data, err := os.ReadFile("/proc/sys/kernel/yama/ptrace_scope"); err == nil {
		scope := strings.TrimSpace(string(data))
		if scope == "3" || scope == "2" && os.Geteuid() != 0 {
			testenv.Unavailable(t, "needs ptrace of a child: kernel.yama.ptrace_scope is %s", scope)
		}
	}
}

// stackRun runs fntable stack with args and then checks that the process
// pid was left running: no tracer and no thread stopped.
func stackRun(t *testing.T, pid int, args ...string) (status int, stdout, stderr string) {
	t.Helper()
	status, stdout, stderr = fntable(append([]string{"stack"}, args...)...)
	stackCheckResumed(t, pid)
	return status, stdout, stderr
}

// stackCheckResumed checks /proc/PID/status and that of each thread of
// pid: TracerPid is 0 and the state is not stopped (T) or traced (t).
func stackCheckResumed(t *testing.T, pid int) {
	t.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatalf("process %d after fntable stack: %v", pid, err)
	}
	paths := []string{fmt.Sprintf("/proc/%d/status", pid)}
	for _, e := range tasks {
		paths = append(paths, fmt.Sprintf("/proc/%d/task/%s/status", pid, e.Name()))
	}
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("after fntable stack: %v", err)
			continue
		}
		status := string(data)
		if !strings.Contains(status, "\nTracerPid:\t0\n") {
			t.Errorf("after fntable stack, %s is still traced:\n%s", path, status)
		}
		for line := range strings.Lines(status) {
			if state, ok := strings.CutPrefix(line, "State:\t"); ok && (state[0] == 'T' || state[0] == 't') {
				t.Errorf("after fntable stack, %s is stopped: State: %s", path, strings.TrimSpace(state))
			}
		}
	}
}

// stackStartThreads starts threads.c built with -O2 and no frame pointers.
func stackStartThreads(t *testing.T) *testproc.Proc {
	t.Helper()
	stackNeedLive(t)
	bin := testproc.BuildC(t, testproc.CVariant{Opt: "-O2"})
	return testproc.Start(t, bin, stackThreadsArgs...)
}

// stackRecursion returns the names of the recursion frames of threads.c
// at depth d, innermost first: level i (0 outermost) is f(i%3+1).
func stackRecursion(d int) []string {
	var names []string
	for i := d - 1; i >= 0; i-- {
		names = append(names, fmt.Sprintf("f%d", i%3+1))
	}
	return names
}

// stackIsFunc reports whether a libc symbol names function want, allowing
// for glibc's aliases (__poll, __GI___poll) and versions (@GLIBC_2.2.5).
func stackIsFunc(symbol, want string) bool {
	symbol, _, _ = strings.Cut(symbol, "@")
	return symbol == want || strings.HasSuffix(symbol, "_"+want)
}

func stackSymbols(frames []stackTextFrame) []string {
	var names []string
	for _, f := range frames {
		names = append(names, f.symbol)
	}
	return names
}

// stackDepth returns the announced recursion depth of thread tid.
func stackDepth(t *testing.T, p *testproc.Proc, tid int) int {
	t.Helper()
	d, err := strconv.Atoi(p.Attrs[tid]["depth"])
	if err != nil {
		t.Fatalf("thread %d announced depth %q", tid, p.Attrs[tid]["depth"])
	}
	return d
}

// TestStackText walks threads.c (-O2, no frame pointers) and checks the
// text output: one block per thread, named as announced, every frame line
// in the documented format, frame 0 from the registers and the others
// from CFI, and each thread's functions in order down to its start.
func TestStackText(t *testing.T) {
	p := stackStartThreads(t)
	status, stdout, stderr := stackRun(t, p.Pid, strconv.Itoa(p.Pid))
	if status != 0 {
		t.Fatalf("status %d\nstdout:\n%s\nstderr:\n%s", status, stdout, stderr)
	}
	if stderr != "" {
		t.Logf("stderr:\n%s", stderr)
	}
	threads := parseStackText(t, stdout)
	var tids, announced []int
	for _, th := range threads {
		tids = append(tids, th.tid)
	}
	for tid := range p.Threads {
		announced = append(announced, tid)
	}
	slices.Sort(tids)
	slices.Sort(announced)
	if !slices.Equal(tids, announced) {
		t.Fatalf("thread blocks for %v, want one for each announced thread %v:\n%s", tids, announced, stdout)
	}
	for _, th := range threads {
		role := p.Threads[th.tid]
		if th.name != role {
			t.Errorf("thread %d is named %q, want %q", th.tid, th.name, role)
		}
		if th.ended != "" {
			t.Errorf("thread %d (%s): walk ended: %s", th.tid, role, th.ended)
		}
		for i, f := range th.frames {
			if !stackSymbolizedLine.MatchString(f.line) {
				t.Errorf("thread %d (%s) frame %d: %q is not in the format #N  0x%%016x SYMBOL+0xOFF (MODULE) [HOW]", th.tid, role, i, f.line)
			}
			want := "cfi"
			if i == 0 {
				want = "context"
			}
			if f.how != want {
				t.Errorf("thread %d (%s) frame %d found by [%s], want [%s]: %q", th.tid, role, i, f.how, want, f.line)
			}
			if f.module != "threads" && f.module != "libc.so.6" {
				t.Errorf("thread %d (%s) frame %d in module %q, want threads or libc.so.6: %q", th.tid, role, i, f.module, f.line)
			}
		}
		if msg := stackCheckThreadsFrames(t, p, th.tid, th.frames); msg != "" {
			t.Errorf("thread %d (%s): %s:\n%s", th.tid, role, msg, strings.Join(stackSymbols(th.frames), "\n"))
		}
	}
}

// stackCheckThreadsFrames checks the functions of a threads.c thread's
// frames, innermost first, and says what is wrong, or returns "".
func stackCheckThreadsFrames(t *testing.T, p *testproc.Proc, tid int, frames []stackTextFrame) string {
	t.Helper()
	role := p.Threads[tid]
	syms := stackSymbols(frames)
	rec := stackRecursion(stackDepth(t, p, tid))
	park := slices.Index(syms, "park")
	if park < 0 {
		return "no park frame"
	}
	// seq checks that syms[at:] starts with want.
	seq := func(at int, want ...string) bool {
		return at >= 0 && at+len(want) <= len(syms) && slices.Equal(syms[at:at+len(want)], want)
	}
	switch {
	case role == "main":
		if len(syms) == 0 || !stackIsFunc(syms[0], "poll") || park != 1 {
			return "want poll, then park"
		}
		if !seq(park+1, append(rec, "main")...) {
			return fmt.Sprintf("want park, then %v, then main", rec)
		}
		rest := syms[park+1+len(rec)+1:]
		i := slices.IndexFunc(rest, func(s string) bool { return stackIsFunc(s, "__libc_start_call_main") })
		if i < 0 || len(rest) == 0 || rest[len(rest)-1] != "_start" {
			return "want __libc_start_call_main after main, and _start last"
		}
	case strings.HasPrefix(role, "worker-"):
		if !seq(park+1, append(rec, "thread_main")...) {
			return fmt.Sprintf("want park, then %v, then thread_main", rec)
		}
		if !stackEndsWithThreadStart(syms) || park+len(rec)+4 != len(syms) {
			return "want thread_main, start_thread, clone3 last"
		}
	case role == "sigalt":
		for _, fn := range []string{"sig_f2", "sig_f1", "on_signal", "sigalt_park"} {
			if !slices.Contains(syms, fn) {
				return "no " + fn + " frame"
			}
		}
		n := len(syms)
		if !stackEndsWithThreadStart(syms) || n < len(rec)+3 || !seq(n-len(rec)-3, append(rec, "thread_main")...) {
			return fmt.Sprintf("want %v, thread_main, start_thread, clone3 last", rec)
		}
	default:
		return "unexpected role"
	}
	return ""
}

// stackEndsWithThreadStart reports whether the outermost frames are
// start_thread and clone3.
func stackEndsWithThreadStart(syms []string) bool {
	n := len(syms)
	return n >= 2 && stackIsFunc(syms[n-2], "start_thread") && stackIsFunc(syms[n-1], "clone3")
}

// stackJSONKeys are the documented keys of each object of the JSON output.
var stackJSONKeys = map[string][]string{
	"document": {"pid", "threads"},
	"thread":   {"tid", "name", "state", "frames", "error"},
	"frame":    {"pc", "sp", "cfa", "how", "module", "module_offset", "symbol", "displacement", "inline", "table"},
	"inline":   {"function", "file", "line", "column"},
}

// stackJSON decodes the output of fntable stack --json into generic values
// and checks that it is one document whose objects have exactly the
// documented keys and whose values have the documented types.
func stackJSON(t *testing.T, out string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("decode: %v\n%s", err, out)
	}
	if dec.More() {
		t.Fatalf("more than one JSON document:\n%s", out)
	}
	stackKeys(t, "document", doc)
	if _, ok := doc["pid"].(float64); !ok {
		t.Errorf("pid = %#v, want a number", doc["pid"])
	}
	threads, ok := doc["threads"].([]any)
	if !ok {
		t.Fatalf("threads = %#v, want an array", doc["threads"])
	}
	for _, th := range threads {
		th, ok := th.(map[string]any)
		if !ok {
			t.Fatalf("thread %#v is not an object", th)
		}
		where := fmt.Sprintf("thread %v", th["tid"])
		stackKeys(t, where, th)
		stackType[float64](t, where+" tid", th["tid"], false)
		stackType[string](t, where+" name", th["name"], false)
		stackType[string](t, where+" error", th["error"], true)
		if _, ok := th["state"]; ok {
			stackType[string](t, where+" state", th["state"], false)
		}
		frames, ok := th["frames"].([]any)
		if !ok {
			t.Errorf("%s: frames = %#v, want an array", where, th["frames"])
			continue
		}
		for i, f := range frames {
			f, ok := f.(map[string]any)
			if !ok {
				t.Fatalf("%s frame %d: %#v is not an object", where, i, f)
			}
			fw := fmt.Sprintf("%s frame %d", where, i)
			stackKeys(t, fw, f)
			for _, k := range []string{"pc", "sp", "cfa", "module_offset"} {
				s, ok := f[k].(string)
				if !ok {
					if k == "pc" || k == "sp" || f[k] != nil {
						t.Errorf("%s: %s = %#v, want a \"0x...\" string", fw, k, f[k])
					}
					continue
				}
				if h, ok := strings.CutPrefix(s, "0x"); !ok || h == "" || strings.ToLower(h) != h {
					t.Errorf("%s: %s = %q, want lowercase \"0x...\"", fw, k, s)
				} else if _, err := strconv.ParseUint(h, 16, 64); err != nil {
					t.Errorf("%s: %s = %q: %v", fw, k, s, err)
				}
			}
			stackType[string](t, fw+" how", f["how"], false)
			stackType[string](t, fw+" module", f["module"], true)
			stackType[string](t, fw+" symbol", f["symbol"], true)
			stackType[float64](t, fw+" displacement", f["displacement"], false)
			inl, ok := f["inline"].([]any)
			if !ok {
				t.Errorf("%s: inline = %#v, want an array", fw, f["inline"])
				continue
			}
			for j, in := range inl {
				in, ok := in.(map[string]any)
				if !ok {
					t.Fatalf("%s inline %d: %#v is not an object", fw, j, in)
				}
				iw := fmt.Sprintf("%s inline %d", fw, j)
				stackKeys(t, "inline", in)
				stackType[string](t, iw+" function", in["function"], false)
				stackType[string](t, iw+" file", in["file"], true)
				stackType[float64](t, iw+" line", in["line"], false)
				stackType[float64](t, iw+" column", in["column"], false)
			}
		}
	}
	return doc
}

// stackKeys checks that obj has exactly the documented keys of its kind
// (the kind is the first word of where).
func stackKeys(t *testing.T, where string, obj map[string]any) {
	t.Helper()
	kind, _, _ := strings.Cut(where, " ")
	if strings.Contains(where, " frame ") {
		kind = "frame"
	}
	want := slices.Sorted(slices.Values(stackJSONKeys[kind]))
	have := slices.Sorted(func(yield func(string) bool) {
		for k := range obj {
			if !yield(k) {
				return
			}
		}
	})
	if !slices.Equal(have, want) {
		t.Errorf("%s has keys %v, want %v", where, have, want)
	}
}

// stackType checks that v has type T, or is null when nullable.
func stackType[T any](t *testing.T, where string, v any, nullable bool) {
	t.Helper()
	if v == nil && nullable {
		return
	}
	if _, ok := v.(T); !ok {
		var zero T
		t.Errorf("%s = %#v, want a %T", where, v, zero)
	}
}

// stackThreadsJSON returns the threads of a decoded document.
func stackThreadsJSON(doc map[string]any) []map[string]any {
	var out []map[string]any
	for _, th := range doc["threads"].([]any) {
		out = append(out, th.(map[string]any))
	}
	return out
}

func stackFramesJSON(th map[string]any) []map[string]any {
	var out []map[string]any
	for _, f := range th["frames"].([]any) {
		out = append(out, f.(map[string]any))
	}
	return out
}

func stackTid(th map[string]any) int { return int(th["tid"].(float64)) }

// TestStackJSON checks the --json document on threads.c against the
// documented contract, and that it agrees with the text output.
func TestStackJSON(t *testing.T) {
	p := stackStartThreads(t)
	pid := strconv.Itoa(p.Pid)
	status, stdout, stderr := stackRun(t, p.Pid, "--json", pid)
	if status != 0 {
		t.Fatalf("status %d: %s", status, stderr)
	}
	doc := stackJSON(t, stdout)
	if doc["pid"] != float64(p.Pid) {
		t.Errorf("pid = %v, want %d", doc["pid"], p.Pid)
	}
	threads := stackThreadsJSON(doc)
	if len(threads) != len(p.Threads) {
		t.Errorf("%d threads, want %d", len(threads), len(p.Threads))
	}
	byTid := map[int][]map[string]any{}
	for _, th := range threads {
		tid := stackTid(th)
		role, ok := p.Threads[tid]
		if !ok {
			t.Errorf("thread %d was not announced", tid)
			continue
		}
		if th["name"] != role {
			t.Errorf("thread %d: name %v, want %q", tid, th["name"], role)
		}
		if th["error"] != nil {
			t.Errorf("thread %d (%s): error %v, want null", tid, role, th["error"])
		}
		if s, _ := th["state"].(string); s == "" {
			t.Errorf("thread %d (%s): state %#v, want the thread's state", tid, role, th["state"])
		}
		frames := stackFramesJSON(th)
		byTid[tid] = frames
		if len(frames) == 0 {
			t.Errorf("thread %d (%s): no frames", tid, role)
		}
		for i, f := range frames {
			if f["module"] == nil || f["cfa"] == nil || f["module_offset"] == nil {
				t.Errorf("thread %d (%s) frame %d: %v: want a module, its offset and a cfa", tid, role, i, f)
			}
			if f["symbol"] == nil && f["module"] != nil {
				t.Errorf("thread %d (%s) frame %d: %v: no symbol in a known module", tid, role, i, f)
			}
		}
	}

	// The subject is parked: the text output shows the same frames.
	status, text, stderr := stackRun(t, p.Pid, pid)
	if status != 0 {
		t.Fatalf("text: status %d: %s", status, stderr)
	}
	for _, th := range parseStackText(t, text) {
		js := byTid[th.tid]
		if len(js) != len(th.frames) {
			t.Errorf("thread %d: %d frames in JSON, %d in text", th.tid, len(js), len(th.frames))
			continue
		}
		for i, f := range th.frames {
			want := fmt.Sprintf("0x%x", f.pc)
			if js[i]["pc"] != want || js[i]["how"] != f.how || js[i]["symbol"] != f.symbol || js[i]["module"] != f.module {
				t.Errorf("thread %d frame %d: JSON %v, text %q", th.tid, i, js[i], f.line)
			}
		}
	}
}

// TestStackJSONOptions checks --tid, --no-symbols and --max-frames.
func TestStackJSONOptions(t *testing.T) {
	p := stackStartThreads(t)
	pid := strconv.Itoa(p.Pid)
	var mainTid, workerTid int
	for tid, role := range p.Threads {
		switch role {
		case "main":
			mainTid = tid
		case "worker-1":
			workerTid = tid
		}
	}
	// run runs stack --json --no-symbols (TestStackJSON covers the
	// symbols) with args.
	// A thread asked for that the process does not have is listed with
	// its error, and makes the status 1.
	run := func(t *testing.T, args ...string) []map[string]any {
		t.Helper()
		status, stdout, stderr := stackRun(t, p.Pid, append(append([]string{"--json", "--no-symbols"}, args...), pid)...)
		want := 0
		if slices.Contains(args, strconv.Itoa(stackNoSuchPID)) {
			want = 1
			if !strings.Contains(stderr, fmt.Sprintf("has no thread %d", stackNoSuchPID)) {
				t.Errorf("stderr %q does not name the missing thread", stderr)
			}
		}
		if status != want {
			t.Fatalf("status %d, want %d: %s", status, want, stderr)
		}
		doc := stackJSON(t, stdout)
		if doc["pid"] != float64(p.Pid) {
			t.Errorf("pid = %v, want %d", doc["pid"], p.Pid)
		}
		return stackThreadsJSON(doc)
	}

	t.Run("tid", func(t *testing.T) {
		threads := run(t, "--tid", strconv.Itoa(workerTid))
		if len(threads) != 1 || stackTid(threads[0]) != workerTid {
			t.Fatalf("threads %v, want only %d", threads, workerTid)
		}
		if th := threads[0]; th["error"] != nil || th["name"] != "worker-1" || len(stackFramesJSON(th)) == 0 {
			t.Errorf("thread %v", th)
		}
	})
	t.Run("tid missing", func(t *testing.T) {
		threads := run(t, "--tid", strconv.Itoa(mainTid), "--tid", strconv.Itoa(stackNoSuchPID))
		if len(threads) != 2 {
			t.Fatalf("%d threads, want 2: %v", len(threads), threads)
		}
		var missing map[string]any
		for _, th := range threads {
			switch stackTid(th) {
			case mainTid:
				if th["error"] != nil || len(stackFramesJSON(th)) == 0 {
					t.Errorf("main thread %v", th)
				}
			case stackNoSuchPID:
				missing = th
			default:
				t.Errorf("thread %v was not asked for", th)
			}
		}
		if missing == nil {
			t.Fatalf("no entry for thread %d", stackNoSuchPID)
		}
		msg, _ := missing["error"].(string)
		if !strings.Contains(msg, strconv.Itoa(stackNoSuchPID)) || !strings.Contains(msg, "no thread") {
			t.Errorf("missing thread: error %q, want it to say the process has no thread %d", msg, stackNoSuchPID)
		}
		if n := len(stackFramesJSON(missing)); n != 0 {
			t.Errorf("missing thread has %d frames", n)
		}
	})
	t.Run("no-symbols", func(t *testing.T) {
		status, stdout, stderr := stackRun(t, p.Pid, "--json", "--no-symbols", pid)
		if status != 0 || stderr != "" {
			t.Fatalf("status %d, stderr %q", status, stderr)
		}
		threads := stackThreadsJSON(stackJSON(t, stdout))
		if len(threads) != len(p.Threads) {
			t.Errorf("%d threads, want %d", len(threads), len(p.Threads))
		}
		for _, th := range threads {
			frames := stackFramesJSON(th)
			if th["error"] != nil || len(frames) == 0 {
				t.Errorf("thread %v", th)
			}
			for i, f := range frames {
				if f["symbol"] != nil || f["displacement"] != 0.0 || len(f["inline"].([]any)) != 0 {
					t.Errorf("thread %d frame %d: %v: want no symbol, displacement 0, no inline frames", stackTid(th), i, f)
				}
				if m, _ := f["module"].(string); m != "threads" && m != "libc.so.6" {
					t.Errorf("thread %d frame %d: module %#v, want threads or libc.so.6", stackTid(th), i, f["module"])
				}
			}
		}
	})
	t.Run("publics-only", func(t *testing.T) {
		// Names from symbol tables alone: every frame named, no source
		// positions (no DWARF is read).
		status, stdout, stderr := stackRun(t, p.Pid, "--json", "--options", "PUBLICS_ONLY", "--tid", strconv.Itoa(mainTid), pid)
		if status != 0 || stderr != "" {
			t.Fatalf("status %d, stderr %q", status, stderr)
		}
		threads := stackThreadsJSON(stackJSON(t, stdout))
		if len(threads) != 1 {
			t.Fatalf("%d threads, want 1", len(threads))
		}
		var names []string
		for i, f := range stackFramesJSON(threads[0]) {
			name, _ := f["symbol"].(string)
			if name == "" {
				t.Errorf("frame %d has no symbol: %v", i, f)
			}
			names = append(names, name)
			for _, in := range f["inline"].([]any) {
				if in.(map[string]any)["file"] != nil {
					t.Errorf("frame %d: a source position without DWARF: %v", i, f)
				}
			}
		}
		if !slices.Contains(names, "park") || !slices.Contains(names, "main") {
			t.Errorf("frames %q lack park or main", names)
		}
	})
	t.Run("max-frames", func(t *testing.T) {
		threads := run(t, "--max-frames", "3")
		if len(threads) != len(p.Threads) {
			t.Errorf("%d threads, want %d", len(threads), len(p.Threads))
		}
		for _, th := range threads {
			frames := stackFramesJSON(th)
			if len(frames) == 0 || len(frames) > 3 {
				t.Errorf("thread %d: %d frames, want 1 to 3", stackTid(th), len(frames))
			}
			// Every thread of threads.c is deeper than 3 frames.
			if msg, _ := th["error"].(string); !strings.Contains(msg, "limit") {
				t.Errorf("thread %d: error %#v, want one that mentions the frame limit", stackTid(th), th["error"])
			}
		}
	})
	t.Run("max-frames boundary", func(t *testing.T) {
		full := run(t, "--tid", strconv.Itoa(mainTid))
		n := len(stackFramesJSON(full[0]))
		if n < 2 || full[0]["error"] != nil {
			t.Fatalf("main thread: %v", full[0])
		}
		// A limit equal to the depth of the stack is no error; one less
		// stops the walk there.
		exact := run(t, "--tid", strconv.Itoa(mainTid), "--max-frames", strconv.Itoa(n))
		if got := len(stackFramesJSON(exact[0])); got != n || exact[0]["error"] != nil {
			t.Errorf("--max-frames %d: %d frames, error %v; want %d frames, no error", n, got, exact[0]["error"], n)
		}
		short := run(t, "--tid", strconv.Itoa(mainTid), "--max-frames", strconv.Itoa(n-1))
		if got := len(stackFramesJSON(short[0])); got != n-1 || short[0]["error"] == nil {
			t.Errorf("--max-frames %d: %d frames, error %v; want %d frames and an error", n-1, got, short[0]["error"], n-1)
		}
	})
}

// TestStackJIT walks jitprog: on thread jit-pause the frames of the
// generated code are unwound with the function table the process
// publishes, and the walk goes on to the thread's start.
func TestStackJIT(t *testing.T) {
	stackNeedLive(t)
	p := testproc.Start(t, testproc.BuildJIT(t), "-T", "120")
	status, stdout, stderr := stackRun(t, p.Pid, strconv.Itoa(p.Pid))
	if status != 0 {
		t.Fatalf("status %d\nstdout:\n%s\nstderr:\n%s", status, stdout, stderr)
	}
	jitName := func(pc uint64) string {
		for _, f := range p.JIT {
			// A return address may be one past its call.
			if f.Contains(pc) || f.Contains(pc-1) {
				return f.Name
			}
		}
		return ""
	}
	want := map[string]struct {
		jit   []string // function of each frame in generated code ("" elsewhere)
		table []int    // frames found through the table
	}{
		"jit-pause":    {[]string{"jit_a3", "jit_a2", "jit_a1", ""}, []int{1, 2, 3}},
		"jit-callback": {[]string{"", "", "jit_b3", "jit_b2", "jit_b1", ""}, []int{3, 4, 5}},
	}
	seen := 0
	for _, th := range parseStackText(t, stdout) {
		role := p.Threads[th.tid]
		w, ok := want[role]
		if !ok {
			continue
		}
		seen++
		dump := func() string {
			var lines []string
			for _, f := range th.frames {
				lines = append(lines, f.line)
			}
			return strings.Join(lines, "\n")
		}
		if th.name != role || th.ended != "" {
			t.Errorf("thread %d (%s): name %q, walk ended %q", th.tid, role, th.name, th.ended)
		}
		if len(th.frames) < len(w.jit) {
			t.Errorf("thread %d (%s): %d frames:\n%s", th.tid, role, len(th.frames), dump())
			continue
		}
		for i, name := range w.jit {
			if got := jitName(th.frames[i].pc); got != name {
				t.Errorf("thread %d (%s) frame %d is in generated function %q, want %q:\n%s", th.tid, role, i, got, name, dump())
			}
			if name != "" && (th.frames[i].symbol != "" || th.frames[i].module != "") {
				t.Errorf("thread %d (%s) frame %d in generated code: %q, want \"?? [...]\"", th.tid, role, i, th.frames[i].line)
			}
			if (name != "") != (th.frames[i].table == "static") {
				t.Errorf("thread %d (%s) frame %d: table %q, want \"static\" exactly for generated code: %q", th.tid, role, i, th.frames[i].table, th.frames[i].line)
			}
		}
		for _, i := range w.table {
			if th.frames[i].how != "table" {
				t.Errorf("thread %d (%s) frame %d found by [%s], want [table]:\n%s", th.tid, role, i, th.frames[i].how, dump())
			}
		}
		if th.frames[0].how != "context" {
			t.Errorf("thread %d (%s) frame 0 found by [%s], want [context]", th.tid, role, th.frames[0].how)
		}
		syms := stackSymbols(th.frames)
		n := len(syms)
		if !stackEndsWithThreadStart(syms) || syms[n-3] != "jit_thread_main" {
			t.Errorf("thread %d (%s): want jit_thread_main, start_thread, clone3 last:\n%s", th.tid, role, dump())
		}
	}
	if seen != len(want) {
		t.Errorf("%d of the %d JIT threads have a block:\n%s", seen, len(want), stdout)
	}
}

// TestTables lists the function tables of jitprog (one published list
// with its one sorted table of six functions) and of threads.c (none), as
// text and as JSON.
func TestTables(t *testing.T) {
	stackNeedLive(t)
	tableKeys := []string{"record", "type", "growable", "minimum", "maximum", "base", "entries",
		"max_entries", "identifier", "provider", "status", "resolution"}
	decode := func(t *testing.T, pid int) map[string]any {
		t.Helper()
		status, stdout, stderr := fntable("tables", "--json", strconv.Itoa(pid))
		if status != 0 || stderr != "" {
			t.Fatalf("status %d, stderr %q", status, stderr)
		}
		dec := json.NewDecoder(strings.NewReader(stdout))
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil || dec.More() {
			t.Fatalf("not one JSON document (%v):\n%s", err, stdout)
		}
		if doc["pid"] != float64(pid) {
			t.Errorf("pid = %v, want %d", doc["pid"], pid)
		}
		if _, ok := doc["lists"].([]any); !ok {
			t.Fatalf("lists = %#v, want an array", doc["lists"])
		}
		return doc
	}
	keys := func(obj map[string]any) []string {
		return slices.Sorted(func(yield func(string) bool) {
			for k := range obj {
				if !yield(k) {
					return
				}
			}
		})
	}
	hex := func(t *testing.T, v any) uint64 {
		t.Helper()
		s, _ := v.(string)
		n, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 64)
		if err != nil || !strings.HasPrefix(s, "0x") {
			t.Errorf("%#v is not a \"0x...\" address", v)
		}
		return n
	}

	t.Run("jitprog", func(t *testing.T) {
		p := testproc.Start(t, testproc.BuildJIT(t), "-T", "120")
		if len(p.JIT) != 6 {
			t.Fatalf("jitprog announced %d functions, want 6", len(p.JIT))
		}
		doc := decode(t, p.Pid)
		lists := doc["lists"].([]any)
		if len(lists) != 1 {
			t.Fatalf("%d lists, want 1: %v", len(lists), lists)
		}
		l := lists[0].(map[string]any)
		if got, want := keys(l), []string{"address", "error", "generation", "tables"}; !slices.Equal(got, want) {
			t.Errorf("list keys %v, want %v", got, want)
		}
		if l["error"] != nil {
			t.Fatalf("list error %v", l["error"])
		}
		tables, _ := l["tables"].([]any)
		if len(tables) != 1 {
			t.Fatalf("%d tables, want 1: %v", len(tables), tables)
		}
		tb := tables[0].(map[string]any)
		if got, want := keys(tb), slices.Sorted(slices.Values(tableKeys)); !slices.Equal(got, want) {
			t.Errorf("table keys %v, want %v", got, want)
		}
		if tb["type"] != "RF_SORTED" || tb["growable"] != false || tb["entries"] != 6.0 || tb["max_entries"] != 6.0 ||
			tb["identifier"] != nil || tb["provider"] != nil || tb["status"] != "ok" {
			t.Errorf("table %v, want a sorted, not growable table of 6 entries, status ok", tb)
		}
		lo, hi, base := hex(t, tb["minimum"]), hex(t, tb["maximum"]), hex(t, tb["base"])
		hex(t, tb["record"])
		addr := hex(t, l["address"])
		if base > lo {
			t.Errorf("base %#x above minimum %#x", base, lo)
		}
		for _, f := range p.JIT {
			if f.Begin < lo || f.End > hi {
				t.Errorf("%s [%#x, %#x) is outside the table's range [%#x, %#x)", f.Name, f.Begin, f.End, lo, hi)
			}
		}

		status, stdout, stderr := fntable("tables", strconv.Itoa(p.Pid))
		if status != 0 || stderr != "" {
			t.Fatalf("status %d, stderr %q", status, stderr)
		}
		want := fmt.Sprintf("list at %#x (generation %v): 1 table\n  %-20s [%#x, %#x) base %#x 6 entries: ok\n",
			addr, l["generation"], "RF_SORTED", lo, hi, base)
		if stdout != want {
			t.Errorf("text:\n%s\nwant:\n%s", stdout, want)
		}
	})

	t.Run("threads", func(t *testing.T) {
		p := stackStartThreads(t)
		doc := decode(t, p.Pid)
		if got, want := keys(doc), []string{"lists", "pid"}; !slices.Equal(got, want) {
			t.Errorf("keys %v, want %v", got, want)
		}
		if lists := doc["lists"].([]any); len(lists) != 0 {
			t.Errorf("lists %v, want []", lists)
		}
		status, stdout, stderr := fntable("tables", strconv.Itoa(p.Pid))
		if want := fmt.Sprintf("process %d publishes no function table list\n", p.Pid); status != 0 || stdout != want || stderr != "" {
			t.Errorf("status %d, stdout %q, stderr %q; want 0, %q, \"\"", status, stdout, stderr, want)
		}
	})
}

// TestStackTablesCommandLine checks the usage errors (status 2) and the
// failure on a process that does not exist (status 1) of stack and tables.
func TestStackTablesCommandLine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs linux: reads /proc")
	}
	if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(stackNoSuchPID))); err == nil {
		t.Fatalf("process %d exists", stackNoSuchPID)
	}
	none := strconv.Itoa(stackNoSuchPID)
	for _, c := range []struct {
		args   []string
		status int
		stderr string // substring
	}{
		{[]string{"stack"}, 2, "fntable stack: want exactly one PID or dump file\nusage: fntable stack "},
		{[]string{"stack", "1", "2"}, 2, "fntable stack: want exactly one PID or dump file\n"},
		{[]string{"stack", "--max-frames", "0", "1"}, 2, "fntable stack: --max-frames must be positive\n"},
		{[]string{"stack", "--max-frames", "-1", "1"}, 2, "--max-frames must be positive"},
		{[]string{"stack", "--max-frames", "x", "1"}, 2, "fntable stack: invalid value \"x\" for flag -max-frames"},
		{[]string{"stack", "abc"}, 1, "abc: no such file"}, // not a number: a dump file
		{[]string{"stack", "0"}, 2, "fntable stack: bad PID \"0\"\n"},
		{[]string{"stack", "-5"}, 2, "fntable stack: "},
		{[]string{"stack", "--tid", "0", "1"}, 2, "bad thread id \"0\""},
		{[]string{"stack", "--tid", "x", "1"}, 2, "bad thread id \"x\""},
		{[]string{"stack", "--bogus", "1"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"stack", "--no-symbols", "--options", "PUBLICS_ONLY", "1"}, 2, "not with --no-symbols"},
		{[]string{"stack", none}, 1, "process " + none + ": no such process"},
		{[]string{"stack", "--json", none}, 1, "process " + none + ": no such process"},
		{[]string{"tables"}, 2, "fntable tables: want exactly one PID or dump file\nusage: fntable tables "},
		{[]string{"tables", "1", "2"}, 2, "fntable tables: want exactly one PID or dump file\n"},
		{[]string{"tables", "abc"}, 1, "abc: no such file"},
		{[]string{"tables", none}, 1, "process " + none + ": no such process"},
		{[]string{"stack", ""}, 2, "fntable stack: the PID or dump file is empty"},
		{[]string{"tables", ""}, 2, "fntable tables: the PID or dump file is empty"},
		// A thread's ID is refused, and the process's is named.
		{[]string{"stack", strconv.Itoa(otherThread(t))}, 2, fmt.Sprintf("is a thread of process %d: give the process's ID (--tid", os.Getpid())},
		{[]string{"tables", strconv.Itoa(otherThread(t))}, 2, fmt.Sprintf("is a thread of process %d: give the process's ID\n", os.Getpid())},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			status, stdout, stderr := fntable(c.args...)
			if status != c.status || stdout != "" || !strings.Contains(stderr, c.stderr) {
				t.Errorf("status %d, stdout %q, stderr %q; want %d, \"\", a stderr containing %q", status, stdout, stderr, c.status, c.stderr)
			}
			if c.status == 1 && strings.Contains(stderr, "usage:") {
				t.Errorf("a failure that is no usage error prints the usage: %q", stderr)
			}
		})
	}
}

// otherThread returns the ID of a thread of this process that is not its
// main thread.
func otherThread(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if tid, _ := strconv.Atoi(e.Name()); tid != 0 && tid != os.Getpid() {
			return tid
		}
	}
	t.Fatal("this process has one thread only")
	return 0
}
