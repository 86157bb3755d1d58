package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/fntable/fntable/symhandler"
	"github.com/fntable/fntable/target"
	"github.com/fntable/fntable/target/dump"
	"github.com/fntable/fntable/target/live"
)

func newSymCmd() *command {
	c := &command{
		name:    "sym",
		args:    "[--json] [--symbol-path PATH] [--options OPTIONS] (--pid PID | --dump FILE | --module FILE[@BASE]...) [ADDR...]",
		summary: "symbolize addresses: module, function, inlined calls, file and line",
		help: `
Sym prints, for each address, the module that contains it, the function
that contains it with the offset from its start, and the chain of inlined
calls at the address with their source files, lines and columns (innermost
first, ending with the containing function, as llvm-symbolizer prints
them). Names are demangled (C++, Rust).

The addresses come from the arguments, each one input, or from standard
input (separated by blanks or new lines) when there are none. An address is hexadecimal
with 0x, or decimal. Output is in input order, one result per input: an
input that is not an address gives an error line in its place
("INPUT error: MESSAGE", or {"input": "...", "error": "..."} with --json)
and makes the exit status 1.

Where the modules come from:
  --pid PID          a running process: its mapped files and vDSO, and its
                     perf map (/tmp/perf-PID.map in its mount namespace) if
                     it writes one
  --dump FILE        a minidump's module list; images not found on disk are
                     fetched from the symbol stores of --symbol-path
  --module FILE@BASE a file loaded at BASE (repeatable); without @BASE the
                     addresses are the file's own link-time addresses, as
                     llvm-symbolizer --obj takes them

Separate debug files are found by build ID and .gnu_debuglink in
/usr/lib/debug and the directories of --symbol-path, then downloaded from
debuginfod servers. --symbol-path takes dbghelp's syntax: entries
separated by ';' — directories, srv*CACHE*URL (Microsoft symbol stores),
cache*DIR, debuginfod*URL. Without it, _NT_SYMBOL_PATH and DEBUGINFOD_URLS
are used. Downloads show a progress bar on standard error when it is a
terminal.

--options adds dbghelp's SYMOPT_* options, named without the prefix and
joined with '|': PUBLICS_ONLY (names from symbol tables alone: no DWARF
read, no lines or inlined calls), EXACT_SYMBOLS (refuse a file whose build
ID or timestamp is not the module's, instead of warning), NO_PROMPTS (no
progress bar), DEBUG (the handler's diagnostics on standard error), and
the others of SymSetOptions.

Debug files with compressed DWARF (as distributions ship them) are
decompressed once: the copy is kept under $XDG_CACHE_HOME/fntable/dwarf
(~/.cache/fntable/dwarf), or in $FNTABLE_CACHE_DIR; FNTABLE_CACHE_DIR=off
turns the cache off. Deleting the directory is always safe.

With --json the output is one JSON object per address and line:
{"address": "0x...", "module": "..." | null, "symbol": "..." | null,
"displacement": N, "frames": [{"function": "...", "file": "..." | null,
"line": N, "column": N}...]}, or {"input": "...", "error": "..."} for
an input that is not an address.`,
	}
	c.run = func(args []string, stdout, stderr io.Writer) error {
		fs := c.flagSet()
		asJSON := fs.Bool("json", false, "print one JSON object per address")
		pid := fs.Int("pid", 0, "symbolize in the running process `PID`")
		dumpFile := fs.String("dump", "", "symbolize in the minidump `FILE`")
		var modules []string
		fs.Func("module", "load `FILE[@BASE]` (repeatable)", func(s string) error { modules = append(modules, s); return nil })
		symPath := fs.String("symbol-path", "", "symbol search `PATH` (dbghelp syntax, ';'-separated)")
		opts := fs.String("options", "", "SYMOPT_* `OPTIONS` to add, joined with '|', e.g. EXACT_SYMBOLS|DEBUG")
		if err := c.parse(fs, args, stdout); err != nil {
			return err
		}
		sources := 0
		for _, set := range []bool{*pid != 0, *dumpFile != "", len(modules) > 0} {
			if set {
				sources++
			}
		}
		if sources != 1 {
			return c.usagef("want exactly one of --pid, --dump and --module")
		}
		extra, err := symhandler.ParseOptions(*opts)
		if err != nil {
			return c.usagef("%v", err)
		}
		var mods []moduleArg
		for _, s := range modules {
			m, err := parseModuleArg(s)
			if err != nil {
				return c.usagef("%v", err)
			}
			mods = append(mods, m)
		}
		// Each argument is one input; standard input is split at blanks.
		var readErr error
		words := scanWords(os.Stdin, &readErr)
		if fs.NArg() > 0 {
			words = argWords(fs.Args())
		}
		cfg := symConfig{pid: *pid, dump: *dumpFile, modules: mods, searchPath: *symPath, options: extra, json: *asJSON}
		if err := symMain(cfg, words, stdout, stderr); err != nil {
			return err
		}
		if readErr != nil {
			return fmt.Errorf("read standard input: %w", readErr)
		}
		return nil
	}
	return c
}

type moduleArg struct {
	file string
	base uint64 // 0: the file's own
}

func parseModuleArg(s string) (moduleArg, error) {
	// The last @ separates the base: a file name may contain @.
	file, base, ok := s, "", false
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		file, base, ok = s[:i], s[i+1:], true
	}
	m := moduleArg{file: file}
	if ok {
		b, err := parseAddr(base)
		if err != nil {
			return m, fmt.Errorf("--module %s: bad base: %v", s, err)
		}
		m.base = b
	}
	if m.file == "" {
		return m, fmt.Errorf("--module %q: no file", s)
	}
	return m, nil
}

// parseAddr parses 0x-prefixed hexadecimal or decimal. Its errors read
// "… is not an address: …", with no Go names.
func parseAddr(s string) (uint64, error) {
	digits, base := s, 10
	if h, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		digits, base = h, 16
	}
	v, err := strconv.ParseUint(digits, base, 64)
	if err != nil {
		why := "want hexadecimal with 0x, or decimal"
		if errors.Is(err, strconv.ErrRange) {
			why = "more than 64 bits"
		}
		return 0, fmt.Errorf("%q is not an address: %s", s, why)
	}
	return v, nil
}

type symConfig struct {
	pid        int
	dump       string
	modules    []moduleArg
	searchPath string
	options    symhandler.Options
	json       bool
}

func symMain(cfg symConfig, words iter.Seq[string], stdout, stderr io.Writer) error {
	var tgt target.Target
	switch {
	case cfg.pid != 0:
		p, err := live.Open(cfg.pid)
		if err != nil {
			return err
		}
		defer p.Close()
		tgt = p
	case cfg.dump != "":
		d, err := dump.Open(cfg.dump)
		if err != nil {
			return fileError(cfg.dump, err)
		}
		defer d.Close()
		tgt = d
	}
	rep := newReporter(stderr)
	h, err := symhandler.New(symhandler.Config{
		Target:     tgt,
		Options:    symhandler.DefaultOptions | cfg.options,
		SearchPath: cfg.searchPath,
		CacheDir:   symhandler.DefaultCacheDir(),
		Invade:     tgt != nil,
		Progress:   rep.event,
	})
	if err != nil {
		return err
	}
	defer h.Close()
	rep.h = h
	if cfg.options&symhandler.SYMOPT_DEBUG != 0 {
		h.RegisterCallback(func(_ *symhandler.Handler, a symhandler.Action, data any, _ any) bool {
			if a == symhandler.CBA_DEBUG_INFO {
				fmt.Fprintf(stderr, "fntable: debug: %v\n", data)
				return true
			}
			return false
		}, nil)
	}
	ctx := context.Background()
	for _, m := range cfg.modules {
		if _, err := h.LoadModule(ctx, symhandler.LoadRequest{ImageName: m.file, Base: m.base}); err != nil {
			return err
		}
	}
	var perf perfMap
	switch t := tgt.(type) {
	case *live.Process:
		perf.path = t.PerfMapPath()
	case *dump.Dump:
		perf = dumpPerfMap(t)
	}
	if err := perf.load(ctx, h); err != nil {
		fmt.Fprintf(stderr, "fntable: %v\n", err)
	}
	return symbolizeStream(ctx, h, words, stdout, stderr, cfg.json)
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// symBatch is how many addresses one worker symbolizes at a time.
const symBatch = 256

// scanWords returns the words of in, separated by blanks, each cut to
// maxWord bytes (see boundedWords); a read error ends them and is stored
// in *errp.
func scanWords(in io.Reader, errp *error) iter.Seq[string] {
	return func(yield func(string) bool) {
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 4<<10), 64<<10)
		var words boundedWords
		sc.Split(words.split)
		for sc.Scan() {
			if !yield(sc.Text()) {
				return
			}
		}
		*errp = sc.Err()
	}
}

// argWords returns the arguments as inputs, each cut to maxWord bytes.
func argWords(args []string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for _, a := range args {
			if len(a) > maxWord {
				a = string(cutWord([]byte(a)))
			}
			if !yield(a) {
				return
			}
		}
	}
}

// symbolizeStream symbolizes words, the inputs, and writes the results
// to stdout in input order, symbolizing batches on several goroutines.
func symbolizeStream(ctx context.Context, h *symhandler.Handler, words iter.Seq[string], stdout, stderr io.Writer, asJSON bool) error {
	type batch struct {
		tokens []string
		out    chan []byte
	}
	jobs := make(chan *batch, 4)
	order := make(chan *batch, 64)
	var bad atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range jobs {
				var buf []byte
				for _, tok := range b.tokens {
					addr, err := parseAddr(tok)
					if err != nil {
						bad.Add(1)
						fmt.Fprintf(stderr, "fntable: %v\n", err)
						if asJSON {
							buf = appendInputErrorJSON(buf, tok, err)
						} else {
							in := tok
							if in == "" {
								in = `""` // an empty argument
							}
							buf = fmt.Appendf(buf, "%s error: %v\n", in, err)
						}
						continue
					}
					loc, err := h.Symbolize(ctx, addr)
					if err != nil {
						fmt.Fprintf(stderr, "fntable: %v\n", err)
					}
					if asJSON {
						buf = appendLocationJSON(buf, loc)
					} else {
						buf = appendLocationText(buf, loc)
					}
				}
				b.out <- buf
			}
		}()
	}
	go func() {
		defer close(jobs)
		defer close(order)
		b := &batch{out: make(chan []byte, 1)}
		flush := func() {
			order <- b
			jobs <- b
			b = &batch{out: make(chan []byte, 1)}
		}
		for w := range words {
			b.tokens = append(b.tokens, w)
			if len(b.tokens) == symBatch {
				flush()
			}
		}
		if len(b.tokens) > 0 {
			flush()
		}
	}()
	w := bufio.NewWriterSize(stdout, 64<<10)
	var werr error
	for b := range order {
		if _, err := w.Write(<-b.out); err != nil && werr == nil {
			werr = err
		}
	}
	wg.Wait()
	if err := w.Flush(); err != nil {
		return err
	}
	if werr != nil {
		return werr
	}
	if n := bad.Load(); n > 0 {
		if n == 1 {
			return errors.New("1 input was not an address")
		}
		return fmt.Errorf("%d inputs were not addresses", n)
	}
	return nil
}

// appendInputErrorJSON appends the JSON line of an input that could not
// be symbolized: {"input": "…", "error": "…"}.
func appendInputErrorJSON(b []byte, input string, err error) []byte {
	b = append(b, `{"input":`...)
	b = appendJSONString(b, input)
	b = append(b, `,"error":`...)
	b = appendJSONString(b, err.Error())
	return append(b, "}\n"...)
}

// appendLocationJSON appends the JSON line of one address:
// {"address": "0x…", "module": "…" | null, "symbol": "…" | null,
// "displacement": N, "frames": [{"function", "file" | null, "line",
// "column"}…]}. It writes the JSON by hand: encoding/json's reflection
// was a third of the command's time per address.
func appendLocationJSON(b []byte, loc symhandler.Location) []byte {
	b = append(b, `{"address":"0x`...)
	b = strconv.AppendUint(b, loc.Address, 16)
	b = append(b, `","module":`...)
	if loc.Module != nil {
		b = appendJSONString(b, loc.Module.Name)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"symbol":`...)
	var disp uint64
	if loc.Symbol != nil {
		b = appendJSONString(b, loc.Symbol.Name)
		disp = loc.Displacement
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"displacement":`...)
	b = strconv.AppendUint(b, disp, 10)
	b = append(b, `,"frames":[`...)
	for i, f := range loc.Frames {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"function":`...)
		b = appendJSONString(b, f.Function)
		b = append(b, `,"file":`...)
		if f.File != "" {
			b = appendJSONString(b, f.File)
		} else {
			b = append(b, "null"...)
		}
		b = append(b, `,"line":`...)
		b = strconv.AppendInt(b, int64(f.Line), 10)
		b = append(b, `,"column":`...)
		b = strconv.AppendInt(b, int64(f.Column), 10)
		b = append(b, '}')
	}
	return append(b, "]}\n"...)
}

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 replaced by U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			b = append(b, c)
			i++
			continue
		}
		if c < utf8.RuneSelf {
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\t':
				b = append(b, '\\', 't')
			case '\r':
				b = append(b, '\\', 'r')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// appendLocationText formats one address:
//
//	0x401136 prog!compute+0x6
//	    twice at /src/main.c:3:44 (inlined)
//	    compute at /src/main.c:6:10
func appendLocationText(b []byte, loc symhandler.Location) []byte {
	b = fmt.Appendf(b, "%#x ", loc.Address)
	switch {
	case loc.Symbol != nil:
		b = fmt.Appendf(b, "%s!%s+%#x\n", loc.Module.Name, loc.Symbol.Name, loc.Displacement)
	case loc.Module != nil:
		b = fmt.Appendf(b, "%s+%#x\n", loc.Module.Name, loc.Address-loc.Module.Base)
	default:
		b = append(b, "??\n"...)
	}
	for i, f := range loc.Frames {
		if f.File == "" && len(loc.Frames) == 1 {
			break
		}
		name := f.Function
		if name == "" {
			name = "??"
		}
		b = fmt.Appendf(b, "    %s at %s", name, orUnknown(f.File))
		if f.Line > 0 {
			b = fmt.Appendf(b, ":%d", f.Line)
			if f.Column > 0 {
				b = fmt.Appendf(b, ":%d", f.Column)
			}
		}
		if i < len(loc.Frames)-1 {
			b = append(b, " (inlined)"...)
		}
		b = append(b, '\n')
	}
	return b
}

func orUnknown(s string) string {
	if s == "" {
		return "??"
	}
	return s
}

// reporter turns the handler's events into diagnostics and, when standard
// error is a terminal, download progress bars.
type reporter struct {
	h      *symhandler.Handler
	stderr io.Writer
	tty    bool
	mu     sync.Mutex
	bars   map[string]*bar
	failed map[string]bool
}

func newReporter(stderr io.Writer) *reporter {
	r := &reporter{stderr: stderr, bars: map[string]*bar{}, failed: map[string]bool{}}
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		r.tty = true
	}
	return r
}

func (r *reporter) event(ev symhandler.Event) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch ev := ev.(type) {
	case symhandler.ModuleLoadFailed:
		if !r.failed[ev.Module] && !errors.Is(ev.Err, symhandler.ErrCanceled) {
			r.failed[ev.Module] = true
			fmt.Fprintf(r.stderr, "fntable: no symbols for %s: %v\n", ev.Module, ev.Err)
		}
	case symhandler.Message:
		if ev.Severity >= symhandler.SevProblem {
			fmt.Fprintf(r.stderr, "fntable: %s\n", ev.Text)
		}
	case symhandler.Progress:
		if ev.Stage != "download" || !r.tty || r.h != nil && r.h.Options()&symhandler.SYMOPT_NO_PROMPTS != 0 {
			break
		}
		b := r.bars[ev.File]
		if b == nil {
			b = newBar(r.stderr, "downloading "+ev.Module, ev.Total)
			r.bars[ev.File] = b
		}
		b.set(ev.Done)
		if ev.Total >= 0 && ev.Done >= ev.Total {
			b.clear()
			delete(r.bars, ev.File)
		}
	}
	return true
}
