package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/fntable/fntable/functable"
	"github.com/fntable/fntable/functable/remote"
	"github.com/fntable/fntable/minidump"
	"github.com/fntable/fntable/stackwalk"
	"github.com/fntable/fntable/symhandler"
	"github.com/fntable/fntable/target"
	"github.com/fntable/fntable/target/dump"
	"github.com/fntable/fntable/target/live"
)

func newStackCmd() *command {
	c := &command{
		name:    "stack",
		args:    "[--json] [--tid TID]... [--max-frames N] [--scan] [--no-symbols | --options OPTIONS] [--symbol-path PATH] [provider flags] (PID | FILE.dmp)",
		summary: "print the call stack of every thread of a running process or a minidump, through JIT and native frames",
		help: `
Stack stops the process PID (every thread, with ptrace), walks the stack of
each thread, resumes the process and prints the stacks, symbolized.

Each frame is unwound by the first of these that knows its code:
  table  a dynamic function table the process publishes (a JIT's
         RtlAddFunctionTable, growable or callback table)
  pe     the .pdata of a PE image mapped in the process (Windows programs
         under Wine)
  go     Go code: the pclntab's stack-pointer table (what Go's own
         traceback reads), and the way back from runtime.asmcgocall to
         the goroutine that called C or JIT code
  cfi    the ELF call-frame information (.eh_frame, .debug_frame)
  fp     the frame-pointer chain
  scan   (with --scan, dumps) a word of the stack that follows a call
The innermost frame comes from the thread's registers ("context"). A thread
whose walk fails keeps the frames found so far, with the reason. A Go
thread's walk ends where Go's own traceback does: at runtime.goexit,
runtime.mstart, or a stack switch (runtime.mcall, runtime.morestack, ...).

A callback table's entries come from the provider library it names, loaded
only if the trust list allows it (see "fntable providers -h"), when a frame
falls in its range.

Text output is one block per thread, one line per frame, like gdb's bt:
  #3  0x00007f52513c7e53 __nanosleep+0x13 (libc.so.6) [cfi]
followed by "{static table}", "{growable table}" or "{callback table}" for a
frame in a dynamic function table, "at FILE:LINE" when line information is
known, and one indented line per inlined call.

With --json the output is one document:
  {"pid": N, "threads": [{"tid": N, "name": "...", "state": "...",
    "frames": [{"pc": "0x...", "sp": "0x...", "cfa": "0x..." | null, "how": "cfi",
      "module": "libc.so.6" | null, "module_offset": "0x..." | null,
      "symbol": "read" | null, "displacement": N,
      "inline": [{"function": "...", "file": "..." | null, "line": N,
                  "column": N}...],
      "table": null | {"type": "RF_SORTED" | "RF_UNSORTED" | "RF_CALLBACK",
                       "growable": false, "provider": "..." | null}}...],
    "error": null | "..."}]}
"cfa" is null for a frame no unwind data described (at most the last one). "state"
is the scheduler state as /proc shows it, "" when unknown. "inline" lists
the calls at the frame's address, innermost first, ending
with the containing function (as "fntable sym" gives them); it is empty
without debug information. "table" is the dynamic function table whose
range holds the frame's address. In a dump that records an exception, its
thread also has "exception": {"code": "0x...", "address": "0x...",
"parameters": ["0x..."...], "context": true}, and its frames start at the
registers of the exception when "context" is true.

Symbols are found as "fntable sym" finds them, separate debug files
included; a debug file with compressed DWARF is decompressed once and kept
in ~/.cache/fntable/dwarf ($FNTABLE_CACHE_DIR; "off" turns it off).

The process is stopped only while the stacks are walked (symbolization
happens after it resumes), and it is always resumed: after errors, and when
this command is interrupted or killed (the kernel lets the threads of a
tracer that dies run on). Attaching needs the right to trace the
process (same user and kernel.yama.ptrace_scope 0, or an ancestor with
scope 1, or CAP_SYS_PTRACE).

An argument that is not a number is a minidump (written by "fntable dump",
Breakpad or Windows): its threads are walked offline, with the output
above. The dynamic function tables are those of its function table stream
(a callback table's entries as its provider gave them when the dump was
written: no provider is loaded), the memory is the dump's, and where the
dump lacks a module's code or headers, the module's file: the path the
dump names when the file there has the module's build ID, else the file
found by build ID (ELF) or by name, time stamp and size (PE) along
--symbol-path. An ELF module's call-frame information is read from that
file; a module whose file is found nowhere has none, and its frames are
unwound by the frame-pointer chain, if at all. "pid" is the process's as
the dump's /proc/PID/status stream gives it (0 when unknown), "state" is
"", and thread names come from its thread names stream.

--scan: where no unwinder knows a frame, look for its return address in
the 1024 words above its stack pointer (a word that follows a call
instruction in a module or a table's range) and go on from there; such
frames are marked "scan", and they are guesses.`,
	}
	c.run = func(args []string, stdout, stderr io.Writer) error {
		fs := c.flagSet()
		asJSON := fs.Bool("json", false, "print one JSON document")
		var tids []int
		fs.Func("tid", "walk only thread `TID` (repeatable)", func(s string) error {
			n, err := strconv.Atoi(s)
			if err != nil || n <= 0 {
				return fmt.Errorf("bad thread id %q", s)
			}
			tids = append(tids, n)
			return nil
		})
		maxFrames := fs.Int("max-frames", stackwalk.DefaultMaxFrames, "stop each walk after `N` frames")
		noSyms := fs.Bool("no-symbols", false, "do not symbolize: print addresses and modules only")
		symPath := fs.String("symbol-path", "", "symbol search `PATH` (dbghelp syntax, as for sym)")
		opts := fs.String("options", "", "SYMOPT_* `OPTIONS` to add, as for sym: PUBLICS_ONLY names frames from symbol tables alone (no lines or inline frames, no DWARF read)")
		scan := fs.Bool("scan", false, "go on past frames no unwinder knows by scanning the stack for a return address")
		var pf providerFlags
		pf.register(fs)
		if err := c.parse(fs, args, stdout); err != nil {
			return err
		}
		pid, dumpFile, err := c.parseTarget(fs.Args())
		if err != nil {
			return err
		}
		if *maxFrames <= 0 {
			return c.usagef("--max-frames must be positive")
		}
		extra, err := symhandler.ParseOptions(*opts)
		if err != nil {
			return c.usagef("%v", err)
		}
		if *noSyms && *opts != "" {
			return c.usagef("--options is for symbols: not with --no-symbols")
		}
		cfg := stackConfig{pid: pid, tids: tids, maxFrames: *maxFrames, symbols: !*noSyms, searchPath: *symPath, options: extra, scan: *scan}
		if dumpFile != "" {
			res, err := walkDumpFile(dumpFile, cfg, stderr)
			if err != nil {
				return err
			}
			if err := writeListing(stdout, *asJSON, res, func(w io.Writer) { writeStacksText(w, res) }); err != nil {
				return err
			}
			return missingThreads(res)
		}
		resolver, err := pf.resolver(stderr)
		if err != nil {
			return err
		}
		if resolver != nil {
			cfg.provider = resolver
		}
		res, err := walkProcess(cfg, stderr)
		if err != nil {
			return err
		}
		if cfg.symbols {
			symbolizeStacks(res, cfg, stderr)
		}
		if err := writeListing(stdout, *asJSON, res, func(w io.Writer) { writeStacksText(w, res) }); err != nil {
			return err
		}
		return missingThreads(res)
	}
	return c
}

// writeListing writes v to stdout as one JSON document, or as text
// through text, buffered.
func writeListing(stdout io.Writer, asJSON bool, v any, text func(io.Writer)) error {
	w := bufio.NewWriter(stdout)
	var err error
	if asJSON {
		err = json.NewEncoder(w).Encode(v)
	} else {
		text(w)
	}
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	return err
}

// parseTarget parses the one argument of a command that takes a PID or a
// minidump file: a number is a PID, anything else a file.
func (c *command) parseTarget(args []string) (pid int, file string, err error) {
	if len(args) != 1 {
		return 0, "", c.usagef("want exactly one PID or dump file")
	}
	if args[0] == "" {
		return 0, "", c.usagef("the PID or dump file is empty")
	}
	if _, err := strconv.ParseInt(args[0], 10, 64); err != nil {
		return 0, args[0], nil
	}
	pid, err = c.parsePID(args)
	return pid, "", err
}

// parsePID parses the one PID argument of c. The ID of a thread that is
// not its process's main thread is a usage error that names the process.
func (c *command) parsePID(args []string) (int, error) {
	if len(args) != 1 {
		return 0, c.usagef("want exactly one PID")
	}
	pid, err := strconv.Atoi(args[0])
	if err != nil || pid <= 0 {
		return 0, c.usagef("bad PID %q", args[0])
	}
	if tgid, ok := threadGroup(pid); ok && tgid != pid {
		hint := ""
		if c.name == "stack" {
			hint = fmt.Sprintf(" (--tid %d selects this thread)", pid)
		}
		return 0, c.usagef("%d is a thread of process %d: give the process's ID%s", pid, tgid, hint)
	}
	return pid, nil
}

// threadGroup returns the ID of the process of thread tid (its Tgid), if
// /proc tells it.
func threadGroup(tid int) (int, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(tid) + "/status")
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "Tgid:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			return n, err == nil
		}
	}
	return 0, false
}

type stackConfig struct {
	pid        int
	tids       []int
	maxFrames  int
	symbols    bool
	searchPath string
	options    symhandler.Options
	provider   remote.Provider // resolves callback tables, or nil
	scan       bool            // stackwalk.Options.Scan
}

// stackResult is the walk of a process.
type stackResult struct {
	Pid     int           `json:"pid"`
	Threads []threadStack `json:"threads"`
}

type threadStack struct {
	Tid    int          `json:"tid"`
	Name   string       `json:"name"`
	State  string       `json:"state"`
	Frames []stackFrame `json:"frames"`
	Error  *string      `json:"error"`

	// Exception is the exception a dump records for this thread; its
	// frames start at the registers of the exception when the dump has
	// them. Absent otherwise.
	Exception *exceptionInfo `json:"exception,omitempty"`

	missing bool // asked for with --tid, and not a thread of the process
}

// exceptionInfo is a dump's exception (MINIDUMP_EXCEPTION_STREAM).
type exceptionInfo struct {
	Code       hexUint   `json:"code"`       // ExceptionCode (0xc0000005: access violation)
	Address    hexUint   `json:"address"`    // ExceptionAddress
	Parameters []hexUint `json:"parameters"` // ExceptionInformation
	Context    bool      `json:"context"`    // the frames start at the registers of the exception
}

type stackFrame struct {
	PC           hexUint       `json:"pc"`
	SP           hexUint       `json:"sp"`
	CFA          optAddr       `json:"cfa"`
	How          string        `json:"how"`
	Module       optString     `json:"module"`
	ModuleOffset optAddr       `json:"module_offset"`
	Symbol       optString     `json:"symbol"`
	Displacement uint64        `json:"displacement"`
	Inline       []inlineFrame `json:"inline"`
	Table        *frameTable   `json:"table"`

	symbolPC uint64
}

// frameTable is the dynamic function table whose range holds a frame's
// PC: the one that unwinds it.
type frameTable struct {
	Type     string  `json:"type"`     // RF_SORTED, RF_UNSORTED or RF_CALLBACK
	Growable bool    `json:"growable"` // added with RtlAddGrowableFunctionTable
	Provider *string `json:"provider"` // a callback table's provider library
}

// kind is the table's kind as the text output names it.
func (t *frameTable) kind() string {
	switch {
	case t.Growable:
		return "growable"
	case t.Type == functable.RF_CALLBACK.String():
		return "callback"
	}
	return "static"
}

type inlineFrame struct {
	Function string    `json:"function"`
	File     optString `json:"file"`
	Line     int       `json:"line"`
	Column   int       `json:"column"`
}

// optAddr is an address that may be unknown: "0x..." or null in JSON.
// Frames keep these by value, not as pointers: one allocation fewer each,
// which counts on deep stacks of many threads.
type optAddr struct {
	v  uint64
	ok bool
}

func (a optAddr) MarshalJSON() ([]byte, error) {
	if !a.ok {
		return []byte("null"), nil
	}
	return hexUint(a.v).MarshalJSON()
}

// optString is a string that may be unknown: a string or null in JSON.
type optString struct {
	s  string
	ok bool
}

func (s optString) MarshalJSON() ([]byte, error) {
	if !s.ok {
		return []byte("null"), nil
	}
	return json.Marshal(s.s)
}

// walkProcess stops the process, walks the threads and resumes it.
func walkProcess(cfg stackConfig, stderr io.Writer) (*stackResult, error) {
	// Stop it at a moment when its published function table lists are
	// not being changed: a list stopped in the middle of a change cannot
	// be read until the process runs again.
	// (If the maps cannot be read, Stop says why.)
	live.Prepare() // the tracer thread starts while the lists are found
	lists, _ := remote.Find(cfg.pid)
	// A signal handler only when a thread holds a signal that only its
	// detach delivers: if this command dies, of a signal or otherwise,
	// the kernel lets every thread it stopped run on.
	opts := live.StopOptions{LazySignalHandler: true}
	if len(lists) > 0 {
		opts.Ready = func(s *live.Stopped) bool { return !remote.Changing(s, lists) }
	}
	st, err := live.Stop(cfg.pid, opts)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	src, err := stackwalk.NewSources(st, stackwalk.Options{
		MaxFrames: cfg.maxFrames,
		Provider:  cfg.provider,
		Scan:      cfg.scan,
		Logf:      func(format string, args ...any) { fmt.Fprintf(stderr, "fntable: "+format+"\n", args...) },
	})
	if err != nil {
		return nil, err
	}
	threads, err := st.Threads()
	if err != nil {
		return nil, err
	}
	res := &stackResult{Pid: cfg.pid, Threads: []threadStack{}}
	walkThreads(res, src, threads, cfg, func(pc uint64) *frameTable {
		t, _ := src.TableAt(pc)
		return tableOf(t)
	})
	return res, st.Close()
}

// walkThreads walks threads (those of cfg.tids, if any) with src and
// appends their stacks to res; tableAt gives the table of a frame's PC.
func walkThreads(res *stackResult, src *stackwalk.Sources, threads []target.Thread, cfg stackConfig, tableAt func(pc uint64) *frameTable) {
	// Frames are collected in scratch and each thread's are copied out
	// at their exact size: new memory costs a page fault a page, and a
	// slice grown by appends leaves as much again behind.
	var scratch []stackFrame
	for _, th := range threads {
		if len(cfg.tids) > 0 && !slices.Contains(cfg.tids, th.ID) {
			continue
		}
		ts := threadStack{Tid: th.ID, Name: th.Name, State: th.State, Frames: []stackFrame{}}
		if th.Err != nil {
			ts.Error = ptr(th.Err.Error())
			res.Threads = append(res.Threads, ts)
			continue
		}
		w := src.WalkThread(th.ID)
		for w.Next() {
			f := w.Frame()
			sf := stackFrame{PC: hexUint(f.PC), SP: hexUint(f.SP), How: f.How.String(), Inline: []inlineFrame{}, symbolPC: f.SymbolPC}
			if f.CFA != 0 {
				sf.CFA = optAddr{f.CFA, true}
			}
			if m, ok := src.Module(f.SymbolPC); ok {
				sf.Module = optString{m.Name, true}
				sf.ModuleOffset = optAddr{f.PC - m.Base, true}
			}
			sf.Table = tableAt(f.SymbolPC)
			scratch = append(scratch, sf)
		}
		if len(scratch) > 0 {
			ts.Frames = slices.Clone(scratch)
			scratch = scratch[:0]
		}
		if err := w.Err(); err != nil {
			ts.Error = ptr(err.Error())
		}
		res.Threads = append(res.Threads, ts)
	}
	for _, tid := range cfg.tids {
		if !slices.ContainsFunc(res.Threads, func(t threadStack) bool { return t.Tid == tid }) {
			res.Threads = append(res.Threads, threadStack{Tid: tid, Frames: []stackFrame{}, Error: ptr(noThread(res.Pid, tid)), missing: true})
		}
	}
}

func noThread(pid, tid int) string { return fmt.Sprintf("process %d has no thread %d", pid, tid) }

// missingThreads returns an error naming the threads asked for that res
// does not hold (listed with an error), nil when it holds them all.
func missingThreads(res *stackResult) error {
	var missing []string
	for _, t := range res.Threads {
		if t.missing {
			missing = append(missing, strconv.Itoa(t.Tid))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("process %d has no thread %s", res.Pid, strings.Join(missing, ", "))
}

// tableOf describes published table t (nil: none).
func tableOf(t *remote.Table) *frameTable {
	if t == nil {
		return nil
	}
	ft := &frameTable{Type: t.Type.String(), Growable: t.Growable}
	if t.OutOfProcessCallbackDll != "" {
		ft.Provider = ptr(t.OutOfProcessCallbackDll)
	}
	return ft
}

func ptr[T any](v T) *T { return &v }

// symbolizeStacks names every frame, after the process has resumed.
func symbolizeStacks(res *stackResult, cfg stackConfig, stderr io.Writer) {
	p, err := live.Open(res.Pid)
	if err != nil {
		fmt.Fprintf(stderr, "fntable: symbolize: %v\n", err)
		return
	}
	defer p.Close()
	symbolizeFrames(res, cfg, p, perfMap{path: p.PerfMapPath()}, stderr)
}

// perfMap is where a target's perf map is: a file, or a dump's copy.
type perfMap struct {
	path string // the file, if there is one there
	data []byte // else the copy, if any
	from string // the copy's source, for messages
}

// load imports the perf map into h, as the virtual modules "perf-map".
func (p perfMap) load(ctx context.Context, h *symhandler.Handler) error {
	var err error
	switch {
	case p.path != "" && fileExists(p.path):
		_, err = h.ImportPerfMap(ctx, p.path, "perf-map")
	case p.data != nil:
		_, err = h.ImportPerfMapData(ctx, bytes.NewReader(p.data), p.from, "perf-map")
	}
	return err
}

// symbolizeFrames names every frame of res with the modules of tgt and
// its perf map, if there is one.
func symbolizeFrames(res *stackResult, cfg stackConfig, tgt target.Target, perf perfMap, stderr io.Writer) {
	// The handler's problems (a module that cannot be loaded, a file
	// whose build ID is not the module's) are told as for sym.
	rep := newReporter(stderr)
	h, err := symhandler.New(symhandler.Config{Target: tgt, Invade: true, SearchPath: cfg.searchPath,
		Options: symhandler.DefaultOptions | cfg.options, CacheDir: symhandler.DefaultCacheDir(), Progress: rep.event})
	if err != nil {
		fmt.Fprintf(stderr, "fntable: symbolize: %v\n", err)
		return
	}
	defer h.Close()
	rep.h = h
	ctx := context.Background()
	if err := perf.load(ctx, h); err != nil {
		fmt.Fprintf(stderr, "fntable: %v\n", err)
	}
	cache := symbolizeAll(ctx, h, res, stderr)
	for i := range res.Threads {
		for j := range res.Threads[i].Frames {
			f := &res.Threads[i].Frames[j]
			loc := cache[f.symbolPC]
			if loc.Module != nil && !f.Module.ok {
				f.Module = optString{loc.Module.Name, true}
				f.ModuleOffset = optAddr{uint64(f.PC) - loc.Module.Base, true}
			}
			if loc.Symbol != nil {
				f.Symbol = optString{loc.Symbol.Name, true}
				f.Displacement = uint64(f.PC) - loc.Symbol.Address
			}
			for _, fr := range loc.Frames {
				in := inlineFrame{Function: fr.Function, Line: fr.Line, Column: fr.Column}
				if fr.File != "" {
					in.File = optString{fr.File, true}
				}
				f.Inline = append(f.Inline, in)
			}
		}
	}
}

// symbolizeAll symbolizes the distinct addresses of res's frames on as
// many goroutines as there are CPUs (at most symbolizeWorkers): the
// modules load, and the debug information's units are read, in parallel.
// Errors are reported in the order of the frames.
func symbolizeAll(ctx context.Context, h *symhandler.Handler, res *stackResult, stderr io.Writer) map[uint64]symhandler.Location {
	var pcs []uint64
	cache := map[uint64]symhandler.Location{}
	for i := range res.Threads {
		for _, f := range res.Threads[i].Frames {
			if _, ok := cache[f.symbolPC]; !ok {
				cache[f.symbolPC] = symhandler.Location{}
				pcs = append(pcs, f.symbolPC)
			}
		}
	}
	locs := make([]symhandler.Location, len(pcs))
	errs := make([]error, len(pcs))
	var next atomic.Int64
	work := func() {
		for {
			i := int(next.Add(1)) - 1
			if i >= len(pcs) {
				return
			}
			locs[i], errs[i] = h.Symbolize(ctx, pcs[i])
		}
	}
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), symbolizeWorkers, len(pcs)) - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
	for i, pc := range pcs {
		if errs[i] != nil {
			fmt.Fprintf(stderr, "fntable: %v\n", errs[i])
		}
		cache[pc] = locs[i]
	}
	return cache
}

// symbolizeWorkers bounds the goroutines of symbolizeAll.
const symbolizeWorkers = 4

// writeStacksText writes res as text, one line a frame. Lines are built
// with strconv's appends into one buffer: a stack of thousands of frames
// would otherwise spend more on fmt than on walking.
func writeStacksText(w io.Writer, res *stackResult) {
	b := make([]byte, 0, 256)
	for i, t := range res.Threads {
		b = b[:0]
		if i > 0 {
			b = append(b, '\n')
		}
		b = append(b, "Thread "...)
		b = strconv.AppendInt(b, int64(t.Tid), 10)
		b = append(b, ' ')
		b = strconv.AppendQuote(b, t.Name)
		if t.State != "" {
			b = append(b, ' ')
			b = append(b, t.State...)
		}
		b = append(b, ":\n"...)
		if e := t.Exception; e != nil {
			b = append(b, "    (exception 0x"...)
			b = strconv.AppendUint(b, uint64(e.Code), 16)
			b = append(b, " at 0x"...)
			b = strconv.AppendUint(b, uint64(e.Address), 16)
			if e.Context {
				b = append(b, "; the frames start at its registers"...)
			}
			b = append(b, ")\n"...)
		}
		w.Write(b)
		for j, f := range t.Frames {
			b = append(b[:0], '#')
			b = strconv.AppendInt(b, int64(j), 10)
			if j < 10 {
				b = append(b, ' ')
			}
			b = append(b, " 0x"...)
			b = appendHex16(b, uint64(f.PC))
			if f.Symbol.ok {
				b = append(b, ' ')
				b = append(b, f.Symbol.s...)
				b = append(b, "+0x"...)
				b = strconv.AppendUint(b, f.Displacement, 16)
			} else {
				b = append(b, " ??"...)
			}
			if f.Module.ok {
				b = append(b, " ("...)
				b = append(b, f.Module.s...)
				b = append(b, ')')
			}
			b = append(b, " ["...)
			b = append(b, f.How...)
			b = append(b, ']')
			if f.Table != nil {
				b = append(b, " {"...)
				b = append(b, f.Table.kind()...)
				b = append(b, " table}"...)
			}
			if n := len(f.Inline); n > 0 && f.Inline[n-1].File.ok {
				b = appendAt(b, f.Inline[n-1].File.s, f.Inline[n-1].Line)
			}
			b = append(b, '\n')
			for _, in := range f.Inline[:max(len(f.Inline)-1, 0)] {
				b = append(b, "      inlined "...)
				b = append(b, in.Function...)
				if in.File.ok {
					b = appendAt(b, in.File.s, in.Line)
				}
				b = append(b, '\n')
			}
			w.Write(b)
		}
		if t.Error != nil {
			b = append(b[:0], "    (walk ended: "...)
			b = append(b, *t.Error...)
			b = append(b, ")\n"...)
			w.Write(b)
		}
	}
}

// appendHex16 appends v as 16 hexadecimal digits, zero-padded (%016x).
func appendHex16(b []byte, v uint64) []byte {
	const digits = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		b = append(b, digits[v>>uint(shift)&0xf])
	}
	return b
}

// appendAt appends " at FILE:LINE".
func appendAt(b []byte, file string, line int) []byte {
	b = append(b, " at "...)
	b = append(b, file...)
	b = append(b, ':')
	return strconv.AppendInt(b, int64(line), 10)
}

// walkDumpFile walks the threads of the minidump name offline and, with
// cfg.symbols, names the frames.
func walkDumpFile(name string, cfg stackConfig, stderr io.Writer) (*stackResult, error) {
	d, err := openDump(name, cfg.searchPath, stderr)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	res, err := walkDump(d, cfg, stderr)
	if err != nil {
		return nil, err
	}
	if cfg.symbols {
		symbolizeFrames(res, cfg, d, dumpPerfMap(d), stderr)
	}
	return res, nil
}

// dumpPerfMap returns the perf map a dump holds (FntablePerfMapStream),
// if any.
func dumpPerfMap(d *dump.Dump) perfMap {
	f := d.File()
	dir, ok := f.Stream(minidump.FntablePerfMapStream)
	if !ok {
		return perfMap{}
	}
	b, err := f.StreamData(dir)
	if err != nil {
		return perfMap{}
	}
	return perfMap{data: b, from: "the dump's perf map"}
}

// openDump opens the minidump name with the module files that back the
// memory it lacks, found along searchPath.
func openDump(name, searchPath string, stderr io.Writer) (*dump.Dump, error) {
	d, err := dump.Open(name)
	if err != nil {
		return nil, fileError(name, err)
	}
	if err := stackwalk.CheckArch(d); err != nil {
		d.Close()
		return nil, fileError(name, err)
	}
	// What the dump lacks or holds damaged is told, naming the dump.
	logf := func(format string, args ...any) {
		fmt.Fprintf(stderr, "fntable: %s: "+format+"\n", append([]any{name}, args...)...)
	}
	for _, w := range d.Warnings() {
		logf("%v", w)
	}
	if _, err := d.LoadImages(context.Background(), dump.ImageOptions{SearchPath: searchPath, Logf: logf}); err != nil {
		d.Close()
		return nil, fileError(name, err)
	}
	return d, nil
}

// walkDump walks the threads of dump d.
func walkDump(d *dump.Dump, cfg stackConfig, stderr io.Writer) (*stackResult, error) {
	logf := func(format string, args ...any) { fmt.Fprintf(stderr, "fntable: "+format+"\n", args...) }
	src, err := stackwalk.NewSources(d, stackwalk.Options{MaxFrames: cfg.maxFrames, Scan: cfg.scan, Logf: logf})
	if err != nil {
		return nil, err
	}
	threads, err := d.Threads()
	if threads == nil && err != nil {
		return nil, err
	}
	if err != nil {
		logf("%v", err)
	}
	lists, err := d.PublishedLists()
	if err != nil {
		logf("%v", err)
	}
	tables, _ := d.File().FunctionTables()
	res := &stackResult{Pid: d.ProcessID(), Threads: []threadStack{}}
	walkThreads(res, src, threads, cfg, func(pc uint64) *frameTable {
		for _, sn := range lists {
			if t := sn.Table(pc); t != nil {
				return tableOf(t)
			}
		}
		return dumpTableAt(tables, pc)
	})
	if e := d.Exception(); e != nil {
		for i := range res.Threads {
			if t := &res.Threads[i]; t.Tid == e.ThreadID {
				t.Exception = &exceptionInfo{Code: hexUint(e.Code), Address: hexUint(e.Address), Parameters: []hexUint{}, Context: e.HasContext}
				for _, p := range e.Parameters {
					t.Exception.Parameters = append(t.Exception.Parameters, hexUint(p))
				}
			}
		}
	}
	return res, nil
}

// dumpTableAt describes the table of a dump's function table stream whose
// range holds pc, for a dump without published lists (a Windows dump).
func dumpTableAt(ft *minidump.FunctionTables, pc uint64) *frameTable {
	if ft == nil {
		return nil
	}
	for i := range ft.Tables {
		t := &ft.Tables[i]
		if pc >= t.Descriptor.MinimumAddress && pc < t.Descriptor.MaximumAddress {
			return &frameTable{Type: functable.Type(t.NativeTable.Type).String()}
		}
	}
	return nil
}
