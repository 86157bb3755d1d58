package symhandler_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fntable/fntable/symhandler"
)

// recorder is a callback that records what it receives, one line per
// call, and answers with the function set for each action.
type recorder struct {
	mu      sync.Mutex
	lines   []string
	answer  map[symhandler.Action]func(_ *symhandler.Handler, data any) bool
	inside  atomic.Int32 // callbacks running now
	overlap atomic.Bool  // two ran at once
}

func (r *recorder) callback(h *symhandler.Handler, action symhandler.Action, data any, userContext any) bool {
	if r.inside.Add(1) > 1 {
		r.overlap.Store(true)
	}
	defer r.inside.Add(-1)
	if userContext != r {
		panic("wrong user context")
	}
	line := action.String()
	switch d := data.(type) {
	case *symhandler.DeferredSymbolLoad:
		line += fmt.Sprintf(" %s file=%s", d.Module, filepath.Base(d.FileName))
		if d.Reparse {
			line += " reparse"
		}
		if action == symhandler.CBA_DEFERRED_SYMBOL_LOAD_COMPLETE {
			line += fmt.Sprintf(" type=%v debug=%s", d.Type, filepath.Base(d.DebugFile))
		}
	case *symhandler.CBAEvent:
		line += fmt.Sprintf(" %v code=%d", d.Severity, d.Code)
		if d.Progress != nil {
			line += " progress=" + d.Progress.Stage
		}
	case symhandler.Options:
		line += " " + d.String()
	case *symhandler.ReadMemory:
		line += " read"
	case *symhandler.DuplicateSymbol:
		line += fmt.Sprintf(" candidates=%d", len(d.Symbols))
	case string:
		line += " text"
	}
	r.mu.Lock()
	r.lines = append(r.lines, line)
	f := r.answer[action]
	r.mu.Unlock()
	if f != nil {
		return f(h, data)
	}
	return false
}

// take returns the recorded lines and forgets them, dropping progress
// events and the cancel questions that follow them when compact is set.
func (r *recorder) take(compact bool) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.lines
	r.lines = nil
	if !compact {
		return out
	}
	var c []string
	for i := 0; i < len(out); i++ {
		if strings.Contains(out[i], "progress=") {
			if i+1 < len(out) && strings.HasPrefix(out[i+1], "CBA_DEFERRED_SYMBOL_LOAD_CANCEL") {
				i++
			}
			if len(c) == 0 || c[len(c)-1] != "PROGRESS" {
				c = append(c, "PROGRESS")
			}
			continue
		}
		c = append(c, out[i])
	}
	return c
}

func newRecorder(t *testing.T, h *symhandler.Handler) *recorder {
	r := &recorder{answer: map[symhandler.Action]func(*symhandler.Handler, any) bool{}}
	if err := h.RegisterCallback(r.callback, r); err != nil {
		t.Fatal(err)
	}
	return r
}

func want(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("callbacks:\n\tgot  %q\n\twant %q", got, want)
	}
}

func newHandler(t *testing.T, cfg symhandler.Config) *symhandler.Handler {
	t.Helper()
	if cfg.SearchPath == "" {
		cfg.SearchPath = t.TempDir() // nothing from the environment
	}
	if cfg.DebugDirs == nil {
		cfg.DebugDirs = []string{}
	}
	h, err := symhandler.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// addrOf returns the link-time address of a function through the handler.
func addrOf(t *testing.T, h *symhandler.Handler, name string) uint64 {
	t.Helper()
	s, ok := h.FromName(name)
	if !ok {
		t.Fatalf("FromName(%q) found nothing", name)
	}
	return s.Address
}

func TestDeferredLoad(t *testing.T) {
	dir := t.TempDir()
	exe := buildC(t, dir, "prog", progSources, "-g", "-O2")
	h := newHandler(t, symhandler.Config{})
	r := newRecorder(t, h)
	m, err := h.LoadModule(context.Background(), symhandler.LoadRequest{ImageName: exe})
	if err != nil {
		t.Fatal(err)
	}
	want(t, r.take(true)) // deferred: nothing yet
	if info := m.Info(); info.Type != symhandler.SymDeferred {
		t.Errorf("before first use: type %v, want deferred", info.Type)
	}
	pc := addrOf(t, h, "compute")
	want(t, r.take(true),
		"CBA_DEFERRED_SYMBOL_LOAD_START prog file=prog",
		"CBA_DEFERRED_SYMBOL_LOAD_CANCEL prog file=prog",
		"PROGRESS",
		"CBA_DEFERRED_SYMBOL_LOAD_COMPLETE prog file=prog type=dia debug=.")
	loc, err := h.Symbolize(context.Background(), pc+1)
	if err != nil {
		t.Fatal(err)
	}
	want(t, r.take(true)) // loaded once
	if loc.Symbol == nil || loc.Symbol.Name != "compute" || loc.Displacement != 1 || loc.Module != m {
		t.Errorf("Symbolize(compute+1) = %+v", loc)
	}
	if len(loc.Frames) == 0 || loc.Frames[len(loc.Frames)-1].Function != "compute" || !strings.HasSuffix(loc.Frames[0].File, "main.c") {
		t.Errorf("frames at compute+1 = %+v", loc.Frames)
	}
	if info := m.Info(); info.Type != symhandler.SymDia || !info.LineNumbers || info.NumSyms == 0 {
		t.Errorf("after load: %+v", info)
	}
	if err := h.UnloadModule(m.Base); err != nil {
		t.Fatal(err)
	}
	want(t, r.take(true), "CBA_SYMBOLS_UNLOADED prog file=prog")
	if _, _, ok := h.FromAddr(pc); ok {
		t.Error("an unloaded module still resolves")
	}
}

func TestImmediateLoad(t *testing.T) {
	dir := t.TempDir()
	exe := buildC(t, dir, "prog", progSources, "-g", "-O2")
	h := newHandler(t, symhandler.Config{Options: symhandler.SYMOPT_UNDNAME | symhandler.SYMOPT_LOAD_LINES})
	r := newRecorder(t, h)
	if _, err := h.LoadModule(context.Background(), symhandler.LoadRequest{ImageName: exe}); err != nil {
		t.Fatal(err)
	}
	want(t, r.take(true),
		"CBA_DEFERRED_SYMBOL_LOAD_START prog file=prog",
		"CBA_DEFERRED_SYMBOL_LOAD_CANCEL prog file=prog",
		"PROGRESS",
		"CBA_DEFERRED_SYMBOL_LOAD_COMPLETE prog file=prog type=dia debug=.")
}

func TestFailedLoadRetry(t *testing.T) {
	dir := t.TempDir()
	exe, debug := splitDebug(t, dir)
	moved := filepath.Join(t.TempDir(), "elsewhere.debug")
	if err := os.Rename(debug, moved); err != nil {
		t.Fatal(err)
	}
	h := newHandler(t, symhandler.Config{})
	r := newRecorder(t, h)
	// The stripped image has no symbols and its debug file is not where
	// the debuglink says: the load fails, and the callback points at the
	// debug file.
	r.answer[symhandler.CBA_DEFERRED_SYMBOL_LOAD_FAILURE] = func(_ *symhandler.Handler, data any) bool {
		d := data.(*symhandler.DeferredSymbolLoad)
		if d.Err == nil {
			t.Error("FAILURE without an error")
		}
		d.FileName = moved
		return true
	}
	m, err := h.LoadModule(context.Background(), symhandler.LoadRequest{ImageName: exe})
	if err != nil {
		t.Fatal(err)
	}
	pc := symbolAddr(t, moved, "compute")
	if s, _, ok := h.FromAddr(pc); !ok || s.Name != "compute" {
		t.Fatalf("FromAddr(compute) = %+v, %v", s, ok)
	}
	want(t, r.take(true),
		"CBA_DEFERRED_SYMBOL_LOAD_START prog file=prog",
		"CBA_DEFERRED_SYMBOL_LOAD_CANCEL prog file=prog",
		"CBA_DEFERRED_SYMBOL_LOAD_FAILURE prog file=prog",
		"CBA_DEFERRED_SYMBOL_LOAD_START prog file=elsewhere.debug reparse",
		"CBA_DEFERRED_SYMBOL_LOAD_CANCEL prog file=elsewhere.debug reparse",
		"PROGRESS",
		"CBA_DEFERRED_SYMBOL_LOAD_COMPLETE prog file=elsewhere.debug reparse type=dia debug=.")
	if m.Info().Type != symhandler.SymDia {
		t.Errorf("module type %v after the retry", m.Info().Type)
	}

	// A missing image is a partial load; the callback supplies the file.
	h2 := newHandler(t, symhandler.Config{})
	r2 := newRecorder(t, h2)
	r2.answer[symhandler.CBA_DEFERRED_SYMBOL_LOAD_PARTIAL] = func(_ *symhandler.Handler, data any) bool {
		data.(*symhandler.DeferredSymbolLoad).FileName = moved
		return true
	}
	if _, err := h2.LoadModule(context.Background(), symhandler.LoadRequest{ImageName: filepath.Join(dir, "missing"), Base: 0x400000, Size: 0x100000}); err != nil {
		t.Fatal(err)
	}
	if s, _, ok := h2.FromAddr(pc); !ok || s.Name != "compute" {
		t.Fatalf("FromAddr(compute) after a partial load = %+v, %v", s, ok)
	}
	want(t, r2.take(true),
		"CBA_DEFERRED_SYMBOL_LOAD_START missing file=missing",
		"CBA_DEFERRED_SYMBOL_LOAD_CANCEL missing file=missing",
		"CBA_DEFERRED_SYMBOL_LOAD_PARTIAL missing file=missing",
		"CBA_DEFERRED_SYMBOL_LOAD_START missing file=elsewhere.debug reparse",
		"CBA_DEFERRED_SYMBOL_LOAD_CANCEL missing file=elsewhere.debug reparse",
		"PROGRESS",
		"CBA_DEFERRED_SYMBOL_LOAD_COMPLETE missing file=elsewhere.debug reparse type=dia debug=.")

	// Without an answer, the failure is final and reported once.
	h3 := newHandler(t, symhandler.Config{})
	r3 := newRecorder(t, h3)
	m3, _ := h3.LoadModule(context.Background(), symhandler.LoadRequest{ImageName: exe})
	for range 2 {
		if _, _, ok := h3.FromAddr(pc); ok {
			t.Fatal("a module without symbols resolved an address")
		}
	}
	want(t, r3.take(true),
		"CBA_DEFERRED_SYMBOL_LOAD_START prog file=prog",
		"CBA_DEFERRED_SYMBOL_LOAD_CANCEL prog file=prog",
		"CBA_DEFERRED_SYMBOL_LOAD_FAILURE prog file=prog")
	if info := m3.Info(); info.Type != symhandler.SymNone || info.Err == nil {
		t.Errorf("failed module info %+v", info)
	}
}

func TestSeparateDebugFile(t *testing.T) {
	dir := t.TempDir()
	exe, debug := splitDebug(t, dir)
	h := newHandler(t, symhandler.Config{})
	r := newRecorder(t, h)
	if _, err := h.LoadModule(context.Background(), symhandler.LoadRequest{ImageName: exe}); err != nil {
		t.Fatal(err)
	}
	pc := symbolAddr(t, debug, "compute")
	loc, err := h.Symbolize(context.Background(), pc)
	if err != nil || loc.Symbol == nil || loc.Symbol.Name != "compute" {
		t.Fatalf("Symbolize(compute) = %+v, %v", loc, err)
	}
	want(t, r.take(true),
		"CBA_DEFERRED_SYMBOL_LOAD_START prog file=prog",
		"CBA_DEFERRED_SYMBOL_LOAD_CANCEL prog file=prog",
		"CBA_EVENT info code=3",
		"PROGRESS",
		"CBA_DEFERRED_SYMBOL_LOAD_COMPLETE prog file=prog type=dia debug=prog.debug")

	// A debug file that does not match the debuglink CRC is refused.
	if err := os.WriteFile(debug, append(mustRead(t, debug), 0), 0o644); err != nil {
		t.Fatal(err)
	}
	h2 := newHandler(t, symhandler.Config{})
	r2 := newRecorder(t, h2)
	h2.LoadModule(context.Background(), symhandler.LoadRequest{ImageName: exe})
	if _, _, ok := h2.FromAddr(pc); ok {
		t.Error("a debug file with the wrong CRC was used")
	}
	want(t, r2.take(true),
		"CBA_DEFERRED_SYMBOL_LOAD_START prog file=prog",
		"CBA_DEFERRED_SYMBOL_LOAD_CANCEL prog file=prog",
		"CBA_EVENT problem code=4",
		"CBA_DEFERRED_SYMBOL_LOAD_FAILURE prog file=prog")
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCancel(t *testing.T) {
	dir := t.TempDir()
	exe := buildC(t, dir, "prog", progSources, "-g", "-O2")
	h := newHandler(t, symhandler.Config{})
	r := newRecorder(t, h)
	cancel := true
	r.answer[symhandler.CBA_DEFERRED_SYMBOL_LOAD_CANCEL] = func(*symhandler.Handler, any) bool { return cancel }
	m, err := h.LoadModule(context.Background(), symhandler.LoadRequest{ImageName: exe})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := h.FromName("prog!compute"); ok {
		t.Fatal("a canceled load resolved a name")
	}
	want(t, r.take(true),
		"CBA_DEFERRED_SYMBOL_LOAD_START prog file=prog",
		"CBA_DEFERRED_SYMBOL_LOAD_CANCEL prog file=prog")
	if m.Info().Type != symhandler.SymDeferred {
		t.Errorf("a canceled module is %v, want still deferred", m.Info().Type)
	}
	// The next use loads it.
	cancel = false
	if _, ok := h.FromName("prog!compute"); !ok {
		t.Fatal("the load after a cancel failed")
	}
	want(t, r.take(true),
		"CBA_DEFERRED_SYMBOL_LOAD_START prog file=prog",
		"CBA_DEFERRED_SYMBOL_LOAD_CANCEL prog file=prog",
		"PROGRESS",
		"CBA_DEFERRED_SYMBOL_LOAD_COMPLETE prog file=prog type=dia debug=.")

	// A canceled context cancels too, without asking.
	h2 := newHandler(t, symhandler.Config{})
	r2 := newRecorder(t, h2)
	m2, _ := h2.LoadModule(context.Background(), symhandler.LoadRequest{ImageName: exe})
	ctx, stop := context.WithCancel(context.Background())
	stop()
	if loc, _ := h2.Symbolize(ctx, m2.Base+0x1000); loc.Symbol != nil {
		t.Error("a canceled context loaded symbols")
	}
	want(t, r2.take(true), "CBA_DEFERRED_SYMBOL_LOAD_START prog file=prog")
}

func TestOptionsChange(t *testing.T) {
	h := newHandler(t, symhandler.Config{})
	r := newRecorder(t, h)
	o := h.Options()
	h.SetOptions(o | symhandler.SYMOPT_DEBUG)
	h.SetOptions(o | symhandler.SYMOPT_DEBUG) // no change: no callback
	h.SetOptions(o)
	want(t, r.take(false),
		"CBA_SET_OPTIONS "+(o|symhandler.SYMOPT_DEBUG).String(),
		"CBA_SET_OPTIONS "+o.String())
	if h.Options() != o {
		t.Errorf("Options() = %v, want %v", h.Options(), o)
	}
}

func TestDuplicateSymbol(t *testing.T) {
	dir := t.TempDir()
	exe := buildC(t, dir, "prog", progSources, "-g", "-O0")
	h := newHandler(t, symhandler.Config{})
	r := newRecorder(t, h)
	if _, err := h.LoadModule(context.Background(), symhandler.LoadRequest{ImageName: exe}); err != nil {
		t.Fatal(err)
	}
	other := addrOf(t, h, "other")
	r.take(true)
	var candidates []symhandler.Symbol
	r.answer[symhandler.CBA_DUPLICATE_SYMBOL] = func(_ *symhandler.Handler, data any) bool {
		d := data.(*symhandler.DuplicateSymbol)
		candidates = d.Symbols
		// Pick the helper of other.c: the one closest below other().
		d.SelectedSymbol = -1
		for i, s := range d.Symbols {
			if s.Address < other && (d.SelectedSymbol < 0 || s.Address > d.Symbols[d.SelectedSymbol].Address) {
				d.SelectedSymbol = i
			}
		}
		return true
	}
	s, ok := h.FromName("helper")
	if !ok {
		t.Fatal("FromName(helper) found nothing")
	}
	want(t, r.take(true), "CBA_DUPLICATE_SYMBOL candidates=2")
	if len(candidates) != 2 || candidates[0].Address == candidates[1].Address {
		t.Fatalf("candidates %+v", candidates)
	}
	if s.Address > other || s.Address == min(candidates[0].Address, candidates[1].Address) && other-candidates[0].Address > other-candidates[1].Address {
		t.Errorf("FromName returned %+v, not the chosen candidate", s)
	}
	// Without an answer the first candidate is returned.
	delete(r.answer, symhandler.CBA_DUPLICATE_SYMBOL)
	if s, _ := h.FromName("helper"); s.Address != candidates[0].Address {
		t.Errorf("unanswered duplicate returned %+v, want the first", s)
	}
}

func TestEventsAndDebugInfo(t *testing.T) {
	dir := t.TempDir()
	exe, debug := splitDebug(t, dir)
	pc := symbolAddr(t, debug, "compute")
	for _, debugOpt := range []bool{false, true} {
		o := symhandler.DefaultOptions
		if debugOpt {
			o |= symhandler.SYMOPT_DEBUG
		}
		h := newHandler(t, symhandler.Config{Options: o})
		r := newRecorder(t, h)
		h.LoadModule(context.Background(), symhandler.LoadRequest{ImageName: exe})
		h.FromAddr(pc)
		got := r.take(true)
		// The "debug file found" CBA_EVENT is not handled (the recorder
		// returns false), so with SYMOPT_DEBUG it comes again as
		// CBA_DEBUG_INFO.
		i := slices.Index(got, "CBA_EVENT info code=3")
		if i < 0 {
			t.Fatalf("no debug-file event: %q", got)
		}
		resent := i+1 < len(got) && got[i+1] == "CBA_DEBUG_INFO text"
		if resent != debugOpt {
			t.Errorf("SYMOPT_DEBUG=%v: event resent as debug info: %v (%q)", debugOpt, resent, got)
		}
		if !debugOpt && slices.Contains(got, "CBA_DEBUG_INFO text") {
			t.Errorf("CBA_DEBUG_INFO without SYMOPT_DEBUG: %q", got)
		}
		// A handled event is not resent.
		r.answer[symhandler.CBA_EVENT] = func(*symhandler.Handler, any) bool { return true }
		h.LoadModule(context.Background(), symhandler.LoadRequest{ImageName: exe, Base: 0x10000000})
		h.FromAddr(0x10000000 + pc - 0x400000)
		if got := r.take(true); slices.Contains(got, "CBA_DEBUG_INFO text") {
			t.Errorf("a handled event was resent: %q", got)
		}
	}
}

// TestCallbackPanics: a callback that panics (recovered by the caller)
// does not keep the delivery slot: later callbacks, from this goroutine
// and from others, are delivered.
func TestCallbackPanics(t *testing.T) {
	h := newHandler(t, symhandler.Config{})
	h.RegisterCallback(func(_ *symhandler.Handler, a symhandler.Action, _ any, _ any) bool {
		if a == symhandler.CBA_SET_OPTIONS {
			panic("callback fails")
		}
		return false
	}, nil)
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the callback's panic did not reach the caller")
			}
		}()
		h.SetOptions(symhandler.DefaultOptions | symhandler.SYMOPT_DEBUG)
	}()
	var calls atomic.Int32
	h.RegisterCallback(func(*symhandler.Handler, symhandler.Action, any, any) bool {
		calls.Add(1)
		return true
	}, nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.SetOptions(symhandler.DefaultOptions)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a callback after a panicking one never ran: the delivery slot is still held")
	}
	h.SetOptions(symhandler.DefaultOptions | symhandler.SYMOPT_DEBUG)
	if n := calls.Load(); n != 2 {
		t.Errorf("%d callbacks after the panic, want 2", n)
	}
}

// TestCallbackPanicsInLoad: a callback that panics while a module loads
// leaves the module deferred, not loading for ever: the next use (from
// another goroutine) loads it.
func TestCallbackPanicsInLoad(t *testing.T) {
	dir := t.TempDir()
	exe := buildC(t, dir, "prog", progSources, "-g", "-O2")
	h := newHandler(t, symhandler.Config{})
	r := newRecorder(t, h)
	r.answer[symhandler.CBA_DEFERRED_SYMBOL_LOAD_START] = func(*symhandler.Handler, any) bool { panic("callback fails") }
	m, err := h.LoadModule(context.Background(), symhandler.LoadRequest{ImageName: exe})
	if err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() { recover() }()
		h.FromName("prog!compute")
		t.Error("the callback's panic did not reach the caller")
	}()
	if m.Info().Type != symhandler.SymDeferred {
		t.Errorf("after a panic in its load the module is %v, want deferred", m.Info().Type)
	}
	r.answer[symhandler.CBA_DEFERRED_SYMBOL_LOAD_START] = nil
	found := make(chan bool)
	go func() {
		_, ok := h.FromName("prog!compute")
		found <- ok
	}()
	select {
	case ok := <-found:
		if !ok {
			t.Error("the load after a panicking callback failed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the load after a panicking callback never ended")
	}
}

// TestCallbackLooksUpAnotherLoad: a callback (holding the delivery slot)
// looks up an address in a module another goroutine has begun to load,
// and whose load waits for the slot to deliver its own start: the lookup
// returns, without the module's symbols, instead of waiting for ever.
func TestCallbackLooksUpAnotherLoad(t *testing.T) {
	dir := t.TempDir()
	exe := buildC(t, dir, "prog", progSources, "-g", "-O2")
	h := newHandler(t, symhandler.Config{})
	ctx := context.Background()
	a, err := h.LoadModule(ctx, symhandler.LoadRequest{ImageName: exe, ModuleName: "A", Base: 0x100000})
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.LoadModule(ctx, symhandler.LoadRequest{ImageName: exe, ModuleName: "B", Base: 0x200000})
	if err != nil {
		t.Fatal(err)
	}
	nested := make(chan error, 1)
	var once sync.Once
	var bg sync.WaitGroup
	defer bg.Wait() // before Close: a lookup must not outlive the handler
	h.RegisterCallback(func(hh *symhandler.Handler, action symhandler.Action, data any, _ any) bool {
		if d, ok := data.(*symhandler.DeferredSymbolLoad); ok && action == symhandler.CBA_DEFERRED_SYMBOL_LOAD_START && d.Module == "A" {
			once.Do(func() {
				bg.Go(func() { h.Symbolize(ctx, b.Base+0x1000) }) // B's load begins, and waits for the slot
				time.Sleep(200 * time.Millisecond)
				c, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				t0 := time.Now()
				_, err := hh.Symbolize(c, b.Base+0x1000)
				if d := time.Since(t0); err == nil && d > 2*time.Second {
					err = fmt.Errorf("it took %v", d)
				}
				nested <- err
			})
		}
		return false
	}, nil)
	done := make(chan struct{})
	go func() { h.Symbolize(ctx, a.Base+0x1000); close(done) }()
	select {
	case err := <-nested:
		if err != nil {
			t.Errorf("the callback's lookup in the module being loaded: %v, want an answer at once", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the callback's lookup never returned")
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the load of A never ended")
	}
}

// TestAfterClose: the methods that return an error fail with ErrClosed
// after Close; the others find nothing.
func TestAfterClose(t *testing.T) {
	dir := t.TempDir()
	exe := buildC(t, dir, "prog", progSources, "-g", "-O2")
	h, err := symhandler.New(symhandler.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m, err := h.LoadModule(ctx, symhandler.LoadRequest{ImageName: exe})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	_, err1 := h.Symbolize(ctx, m.Base+0x1000)
	_, _, err2 := h.LineFromAddr(m.Base + 0x1000)
	for name, err := range map[string]error{
		"Symbolize":      err1,
		"LineFromAddr":   err2,
		"Modules":        h.Modules(func(*symhandler.Module) bool { return true }),
		"UnloadModule":   h.UnloadModule(m.Base),
		"RefreshModules": h.RefreshModules(ctx),
		"EnumSymbols":    h.EnumSymbols(ctx, "*", func(symhandler.Symbol) bool { return true }),
		"SetSearchPath":  h.SetSearchPath(dir),
		"AddSymbol":      h.AddSymbol(m.Base, "x", m.Base, 1),
	} {
		if !errors.Is(err, symhandler.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	if _, _, ok := h.FromAddr(m.Base + 0x1000); ok {
		t.Error("FromAddr after Close found a symbol")
	}
}

// TestProgressStopsOnMessage: Config.Progress returning false for a
// Message sent during a load (the debug file found) cancels that load:
// the module stays deferred, and loads when Progress lets it.
func TestProgressStopsOnMessage(t *testing.T) {
	dir := t.TempDir()
	exe, debug := splitDebug(t, dir)
	var stop atomic.Bool
	stop.Store(true)
	h := newHandler(t, symhandler.Config{Progress: func(e symhandler.Event) bool {
		_, msg := e.(symhandler.Message)
		return !(msg && stop.Load())
	}})
	m, err := h.LoadModule(context.Background(), symhandler.LoadRequest{ImageName: exe})
	if err != nil {
		t.Fatal(err)
	}
	pc := symbolAddr(t, debug, "compute")
	if loc, _ := h.Symbolize(context.Background(), pc); loc.Symbol != nil || m.Info().Type != symhandler.SymDeferred {
		t.Errorf("canceled from a Message: symbol %v, module %v; want none and deferred", loc.Symbol, m.Info().Type)
	}
	stop.Store(false)
	if loc, err := h.Symbolize(context.Background(), pc); err != nil || loc.Symbol == nil || loc.Symbol.Name != "compute" {
		t.Errorf("the next load: %+v, %v", loc, err)
	}
}

// TestReload: Reload forgets loaded symbols (the next use loads them
// again) and says so; a module being loaded is left to its load.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	exe := buildC(t, dir, "prog", progSources, "-g", "-O2")
	h := newHandler(t, symhandler.Config{})
	m, err := h.LoadModule(context.Background(), symhandler.LoadRequest{ImageName: exe})
	if err != nil {
		t.Fatal(err)
	}
	var during []bool
	h.RegisterCallback(func(_ *symhandler.Handler, action symhandler.Action, _ any, _ any) bool {
		if action == symhandler.CBA_DEFERRED_SYMBOL_LOAD_START {
			during = append(during, m.Reload())
		}
		return false
	}, nil)
	pc := addrOf(t, h, "compute")
	if len(during) != 1 || during[0] {
		t.Errorf("Reload during the load = %v, want false", during)
	}
	if m.Info().Type != symhandler.SymDia {
		t.Fatalf("after the load: %v", m.Info().Type)
	}
	if !m.Reload() || m.Info().Type != symhandler.SymDeferred {
		t.Errorf("Reload of a loaded module: module %v, want deferred", m.Info().Type)
	}
	if s, _, ok := h.FromAddr(pc); !ok || s.Name != "compute" || len(during) != 2 {
		t.Errorf("after Reload: %+v %v, %d loads", s, ok, len(during))
	}
}
