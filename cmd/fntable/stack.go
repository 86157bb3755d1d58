package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/fntable/fntable/functable"
	"github.com/fntable/fntable/functable/remote"
	"github.com/fntable/fntable/stackwalk"
	"github.com/fntable/fntable/symhandler"
	"github.com/fntable/fntable/target/live"
)

func newStackCmd() *command {
	c := &command{
		name:    "stack",
		args:    "[--json] [--tid TID]... [--max-frames N] [--no-symbols | --options OPTIONS] [--symbol-path PATH] [provider flags] PID",
		summary: "print the call stack of every thread of a running process, through JIT and native frames",
		help: `
Stack stops the process PID (every thread, with ptrace), walks the stack of
each thread, resumes the process and prints the stacks, symbolized.

Each frame is unwound by the first of these that knows its code:
  table  a dynamic function table the process publishes (a JIT's
         RtlAddFunctionTable, growable or callback table)
  pe     the .pdata of a PE image mapped in the process (Windows programs
         under Wine)
  cfi    the ELF call-frame information (.eh_frame, .debug_frame)
  fp     the frame-pointer chain
  go     the way back from runtime.asmcgocall to the goroutine that
         called C or JIT code (Go programs)
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
"cfa" is null for a frame that could not be unwound (the last one). "state"
is the scheduler state as /proc shows it, "" when unknown. "inline" lists
the calls at the frame's address, innermost first, ending
with the containing function (as "fntable sym" gives them); it is empty
without debug information. "table" is the dynamic function table whose
range holds the frame's address.

The process is stopped only while the stacks are walked (symbolization
happens after it resumes), and it is always resumed: after errors, and when
this command is interrupted. Attaching needs the right to trace the
process (same user and kernel.yama.ptrace_scope 0, or an ancestor with
scope 1, or CAP_SYS_PTRACE).`,
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
		var pf providerFlags
		pf.register(fs)
		if err := c.parse(fs, args, stdout); err != nil {
			return err
		}
		pid, err := c.parsePID(fs.Args())
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
		cfg := stackConfig{pid: pid, tids: tids, maxFrames: *maxFrames, symbols: !*noSyms, searchPath: *symPath, options: extra}
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
		return writeListing(stdout, *asJSON, res, func(w io.Writer) { writeStacksText(w, res) })
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

// parsePID parses the one PID argument of c.
func (c *command) parsePID(args []string) (int, error) {
	if len(args) != 1 {
		return 0, c.usagef("want exactly one PID")
	}
	pid, err := strconv.Atoi(args[0])
	if err != nil || pid <= 0 {
		return 0, c.usagef("bad PID %q", args[0])
	}
	return pid, nil
}

type stackConfig struct {
	pid        int
	tids       []int
	maxFrames  int
	symbols    bool
	searchPath string
	options    symhandler.Options
	provider   remote.Provider // resolves callback tables, or nil
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
	lists, _ := remote.Find(cfg.pid)
	opts := live.StopOptions{}
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
		Logf:      func(format string, args ...any) { fmt.Fprintf(stderr, "fntable: "+format+"\n", args...) },
	})
	if err != nil {
		return nil, err
	}
	threads, err := st.Threads()
	if err != nil {
		return nil, err
	}
	res := &stackResult{Pid: cfg.pid}
	for _, th := range threads {
		if len(cfg.tids) > 0 && !slices.Contains(cfg.tids, th.ID) {
			continue
		}
		ts := threadStack{Tid: th.ID, Name: th.Name, State: th.State, Frames: make([]stackFrame, 0, 64)}
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
			if t, _ := src.TableAt(f.SymbolPC); t != nil {
				sf.Table = &frameTable{Type: t.Type.String(), Growable: t.Growable}
				if t.OutOfProcessCallbackDll != "" {
					sf.Table.Provider = ptr(t.OutOfProcessCallbackDll)
				}
			}
			ts.Frames = append(ts.Frames, sf)
		}
		if err := w.Err(); err != nil {
			ts.Error = ptr(err.Error())
		}
		res.Threads = append(res.Threads, ts)
	}
	for _, tid := range cfg.tids {
		if !slices.ContainsFunc(res.Threads, func(t threadStack) bool { return t.Tid == tid }) {
			res.Threads = append(res.Threads, threadStack{Tid: tid, Frames: []stackFrame{}, Error: ptr(fmt.Sprintf("process %d has no thread %d", cfg.pid, tid))})
		}
	}
	return res, st.Close()
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
	h, err := symhandler.New(symhandler.Config{Target: p, Invade: true, SearchPath: cfg.searchPath, Options: symhandler.DefaultOptions | cfg.options})
	if err != nil {
		fmt.Fprintf(stderr, "fntable: symbolize: %v\n", err)
		return
	}
	defer h.Close()
	ctx := context.Background()
	if path := p.PerfMapPath(); fileExists(path) {
		if _, err := h.ImportPerfMap(ctx, path, "perf-map"); err != nil {
			fmt.Fprintf(stderr, "fntable: %v\n", err)
		}
	}
	cache := map[uint64]symhandler.Location{}
	for i := range res.Threads {
		for j := range res.Threads[i].Frames {
			f := &res.Threads[i].Frames[j]
			loc, ok := cache[f.symbolPC]
			if !ok {
				loc, err = h.Symbolize(ctx, f.symbolPC)
				if err != nil {
					fmt.Fprintf(stderr, "fntable: %v\n", err)
				}
				cache[f.symbolPC] = loc
			}
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

func writeStacksText(w io.Writer, res *stackResult) {
	for i, t := range res.Threads {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "Thread %d %q", t.Tid, t.Name)
		if t.State != "" {
			fmt.Fprintf(w, " %s", t.State)
		}
		fmt.Fprintln(w, ":")
		for j, f := range t.Frames {
			fmt.Fprintf(w, "#%-2d 0x%016x", j, uint64(f.PC))
			switch {
			case f.Symbol.ok:
				fmt.Fprintf(w, " %s+%#x", f.Symbol.s, f.Displacement)
			default:
				fmt.Fprint(w, " ??")
			}
			if f.Module.ok {
				fmt.Fprintf(w, " (%s)", f.Module.s)
			}
			fmt.Fprintf(w, " [%s]", f.How)
			if f.Table != nil {
				fmt.Fprintf(w, " {%s table}", f.Table.kind())
			}
			if n := len(f.Inline); n > 0 && f.Inline[n-1].File.ok {
				fmt.Fprintf(w, " at %s:%d", f.Inline[n-1].File.s, f.Inline[n-1].Line)
			}
			fmt.Fprintln(w)
			for _, in := range f.Inline[:max(len(f.Inline)-1, 0)] {
				fmt.Fprintf(w, "      inlined %s", in.Function)
				if in.File.ok {
					fmt.Fprintf(w, " at %s:%d", in.File.s, in.Line)
				}
				fmt.Fprintln(w)
			}
		}
		if t.Error != nil {
			fmt.Fprintf(w, "    (walk ended: %s)\n", *t.Error)
		}
	}
}
