package symhandler_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fntable/fntable/symhandler"
	"github.com/fntable/fntable/target/live"
)

func TestVirtualModule(t *testing.T) {
	h := newHandler(t, symhandler.Config{})
	const base, size = 0x7f0000000000, 0x100000
	m, err := h.LoadModule(context.Background(), symhandler.LoadRequest{ModuleName: "jit", Base: base, Size: size, Flags: symhandler.SLMFLAG_VIRTUAL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.LoadModule(context.Background(), symhandler.LoadRequest{ModuleName: "jit2", Base: base + 0x800, Size: size, Flags: symhandler.SLMFLAG_VIRTUAL}); !errors.Is(err, symhandler.ErrOverlap) {
		t.Errorf("an overlapping module: err %v, want ErrOverlap", err)
	}
	// Many goroutines add and look up at once.
	const writers, per = 4, 2000
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range per {
				n := w*per + i
				if err := h.AddSymbol(base, fmt.Sprintf("jit_fn_%d", n), base+uint64(n)*0x10, 0x10); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i := range per {
				n := w*per + i
				if i%100 == 0 {
					m.Info() // concurrent with AddSymbol
				}
				if s, d, ok := h.FromAddr(base + uint64(n)*0x10 + 3); ok && (s.Name != fmt.Sprintf("jit_fn_%d", n) || d != 3) {
					t.Errorf("FromAddr during additions = %+v +%d", s, d)
					return
				}
			}
		}()
	}
	wg.Wait()
	for n := range writers * per {
		s, d, ok := h.FromAddr(base + uint64(n)*0x10 + 0xf)
		if !ok || s.Name != fmt.Sprintf("jit_fn_%d", n) || d != 0xf || s.Module != "jit" || s.ModBase != base {
			t.Fatalf("FromAddr(fn %d + 0xf) = %+v +%d, %v", n, s, d, ok)
		}
	}
	if _, _, ok := h.FromAddr(base + writers*per*0x10); ok {
		t.Error("an address past every symbol resolved")
	}
	if info := m.Info(); info.Type != symhandler.SymVirtual || info.NumSyms != writers*per {
		t.Errorf("Info() = %+v", info)
	}
	if err := h.AddSymbol(base, "outside", base+size, 1); !errors.Is(err, symhandler.ErrBadArgument) {
		t.Errorf("a symbol outside the module: %v", err)
	}
	var names []string
	err = h.EnumSymbols(context.Background(), "JIT!jit_fn_1?9?", func(s symhandler.Symbol) bool {
		names = append(names, s.Name)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 100 || names[0] != "jit_fn_1090" || names[99] != "jit_fn_1999" {
		t.Errorf("EnumSymbols(jit_fn_1?9?) = %q", names)
	}
	if err := h.EnumSymbols(context.Background(), "*", func(symhandler.Symbol) bool { return false }); err != symhandler.ErrStopped {
		t.Errorf("stopped enumeration: %v", err)
	}
	if s, ok := h.FromName("jit!jit_fn_77"); !ok || s.Address != base+77*0x10 {
		t.Errorf("FromName(jit!jit_fn_77) = %+v, %v", s, ok)
	}
	if _, ok := h.FromName("JIT_FN_77"); ok {
		t.Error("a case-sensitive lookup ignored case")
	}
	h.SetOptions(h.Options() | symhandler.SYMOPT_CASE_INSENSITIVE)
	if _, ok := h.FromName("JIT_FN_77"); !ok {
		t.Error("SYMOPT_CASE_INSENSITIVE did not apply")
	}
}

func TestPerfMap(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "perf-4242.map")
	text := "7f1000000000 40 LazyCompile:~main file:///app.js:1\r\n" +
		"0x7f1000000040 0x20 Builtin:ArgumentsAdaptor\n" +
		"not a line\n" +
		"7f1000000100 10 [JIT] tid 7\n"
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	h := newHandler(t, symhandler.Config{})
	r := newRecorder(t, h)
	mods, err := h.ImportPerfMap(context.Background(), path, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(mods) != 1 {
		t.Fatalf("ImportPerfMap made %d modules, want 1", len(mods))
	}
	m := mods[0]
	want(t, r.take(false), "CBA_EVENT problem code=0")
	if m.Name != "perf-4242.map" || m.Base != 0x7f1000000000 || m.Size != 0x110 {
		t.Errorf("module %s [%#x, +%#x)", m.Name, m.Base, m.Size)
	}
	for _, c := range []struct {
		addr uint64
		name string
		disp uint64
	}{
		{0x7f1000000000, "LazyCompile:~main file:///app.js:1", 0},
		{0x7f100000004a, "Builtin:ArgumentsAdaptor", 0xa},
		{0x7f100000010f, "[JIT] tid 7", 0xf},
	} {
		s, d, ok := h.FromAddr(c.addr)
		if !ok || s.Name != c.name || d != c.disp {
			t.Errorf("FromAddr(%#x) = %q+%#x, %v; want %q+%#x", c.addr, s.Name, d, ok, c.name, c.disp)
		}
	}
	if _, _, ok := h.FromAddr(0x7f1000000080); ok {
		t.Error("a gap between perf-map entries resolved")
	}
}

// TestReadMemory loads this process's vDSO with no target: the image
// bytes come only from the CBA_READ_MEMORY callback.
func TestReadMemory(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs linux: reads the vDSO through /proc/self")
	}
	p, err := live.Open(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	base, size := vdso(t)
	h := newHandler(t, symhandler.Config{})
	r := newRecorder(t, h)
	var reads atomic.Int32
	r.answer[symhandler.CBA_READ_MEMORY] = func(_ *symhandler.Handler, data any) bool {
		rm := data.(*symhandler.ReadMemory)
		reads.Add(1)
		n, _ := p.ReadMemory(rm.Buf, rm.Addr)
		rm.BytesRead = n
		return n > 0
	}
	if _, err := h.LoadModule(context.Background(), symhandler.LoadRequest{ModuleName: "[vdso]", Base: base, Size: size, InMemory: true}); err != nil {
		t.Fatal(err)
	}
	s, ok := h.FromName("__vdso_clock_gettime")
	if !ok {
		t.Fatal("no __vdso_clock_gettime in the vDSO")
	}
	if s.Address < base || s.Address >= base+size {
		t.Errorf("__vdso_clock_gettime at %#x, outside the vDSO [%#x, %#x)", s.Address, base, base+size)
	}
	// clock_gettime is an alias of __vdso_clock_gettime: either name is right.
	if got, d, ok := h.FromAddr(s.Address + 1); !ok || got.Address != s.Address || !strings.HasSuffix(got.Name, "clock_gettime") || d != 1 {
		t.Errorf("FromAddr(__vdso_clock_gettime+1) = %+v +%d", got, d)
	}
	if reads.Load() == 0 {
		t.Error("no CBA_READ_MEMORY was sent")
	}
	got := r.take(true)
	if got[0] != "CBA_DEFERRED_SYMBOL_LOAD_START [vdso] file=." || got[len(got)-1] != "CBA_DEFERRED_SYMBOL_LOAD_COMPLETE [vdso] file=. type=sym debug=." {
		t.Errorf("callbacks %q", got)
	}
	if !slices.Contains(got, "CBA_READ_MEMORY read") {
		t.Errorf("no CBA_READ_MEMORY among %q", got)
	}

	// Without the callback nothing can be read: a partial load.
	h2 := newHandler(t, symhandler.Config{})
	r2 := newRecorder(t, h2)
	h2.LoadModule(context.Background(), symhandler.LoadRequest{ModuleName: "[vdso]", Base: base, Size: size, InMemory: true})
	if _, ok := h2.FromName("__vdso_clock_gettime"); ok {
		t.Error("the vDSO loaded without memory")
	}
	want(t, r2.take(true),
		"CBA_DEFERRED_SYMBOL_LOAD_START [vdso] file=.",
		"CBA_DEFERRED_SYMBOL_LOAD_CANCEL [vdso] file=.",
		"CBA_READ_MEMORY read",
		"CBA_DEFERRED_SYMBOL_LOAD_PARTIAL [vdso] file=.")
}

func vdso(t *testing.T) (base, size uint64) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasSuffix(sc.Text(), "[vdso]") {
			lo, hi, _ := strings.Cut(strings.Fields(sc.Text())[0], "-")
			b, _ := strconv.ParseUint(lo, 16, 64)
			e, _ := strconv.ParseUint(hi, 16, 64)
			return b, e - b
		}
	}
	t.Skip("this process has no vDSO")
	return 0, 0
}

// TestConcurrent symbolizes from many goroutines while modules are
// deferred: each module loads once, callbacks never overlap, and a
// callback that calls back into the handler does not deadlock.
func TestConcurrent(t *testing.T) {
	dir := t.TempDir()
	exe := buildC(t, dir, "prog", progSources, "-g", "-O2")
	var events []symhandler.Event
	var mu sync.Mutex
	h := newHandler(t, symhandler.Config{Progress: func(ev symhandler.Event) bool {
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
		return true
	}})
	r := newRecorder(t, h)
	var nested atomic.Int32
	r.answer[symhandler.CBA_DEFERRED_SYMBOL_LOAD_COMPLETE] = func(in *symhandler.Handler, data any) bool {
		// Re-enter: this module is still loading in this call chain, so
		// the lookup returns without its symbols instead of waiting.
		d := data.(*symhandler.DeferredSymbolLoad)
		in.FromAddr(d.BaseOfImage + 0x1000)
		in.Options()
		nested.Add(1)
		return true
	}
	const copies = 4
	var bases []uint64
	for i := range copies {
		m, err := h.LoadModule(context.Background(), symhandler.LoadRequest{ImageName: exe, ModuleName: fmt.Sprintf("prog%d", i), Base: 0x10000000 * uint64(i+1)})
		if err != nil {
			t.Fatal(err)
		}
		bases = append(bases, m.Base)
	}
	compute := addrOf(t, h, "prog0!compute") - bases[0]
	r.take(false)
	nested.Store(0)
	for _, b := range bases[1:] {
		_ = b
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				b := bases[(g+i)%copies]
				loc, err := h.Symbolize(context.Background(), b+compute+uint64(i%8))
				if err != nil || loc.Symbol == nil || loc.Symbol.Name != "compute" {
					t.Errorf("Symbolize = %+v, %v", loc, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if r.overlap.Load() {
		t.Error("two callbacks ran at the same time")
	}
	starts := 0
	for _, l := range r.take(false) {
		if strings.HasPrefix(l, "CBA_DEFERRED_SYMBOL_LOAD_START") {
			starts++
		}
	}
	if starts != copies-1 || nested.Load() != copies-1 {
		t.Errorf("%d loads started and %d completed after the first module, want %d", starts, nested.Load(), copies-1)
	}
	// The typed events mirror the callbacks.
	mu.Lock()
	defer mu.Unlock()
	var loaded int
	for _, ev := range events {
		switch ev := ev.(type) {
		case symhandler.SymbolsLoaded:
			loaded++
			if ev.Count == 0 || ev.Type != symhandler.SymDia {
				t.Errorf("SymbolsLoaded %+v", ev)
			}
		case symhandler.Progress:
			if ev.Stage != "index" || ev.Done > ev.Total && ev.Total >= 0 {
				t.Errorf("Progress %+v", ev)
			}
		}
	}
	if loaded != copies {
		t.Errorf("%d SymbolsLoaded events, want %d", loaded, copies)
	}
}

// TestProgressCancels: Config.Progress returning false cancels the load.
func TestProgressCancels(t *testing.T) {
	dir := t.TempDir()
	exe := buildC(t, dir, "prog", progSources, "-g", "-O2")
	stop := true
	h := newHandler(t, symhandler.Config{Progress: func(ev symhandler.Event) bool {
		_, started := ev.(symhandler.ModuleLoadStarted)
		return !(started && stop)
	}})
	m, _ := h.LoadModule(context.Background(), symhandler.LoadRequest{ImageName: exe})
	if _, ok := h.FromName("compute"); ok {
		t.Error("a load canceled by Progress resolved")
	}
	if m.Info().Type != symhandler.SymDeferred {
		t.Errorf("module %v after cancel", m.Info().Type)
	}
	stop = false
	if _, ok := h.FromName("compute"); !ok {
		t.Error("the next load failed")
	}
}

func TestLiveTarget(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs linux")
	}
	p, err := live.Open(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	h := newHandler(t, symhandler.Config{Target: p, Invade: true})
	pc := reflectPC()
	loc, err := h.Symbolize(context.Background(), pc)
	if err != nil {
		t.Fatal(err)
	}
	fn := runtime.FuncForPC(uintptr(pc))
	if loc.Symbol == nil || loc.Symbol.Name != fn.Name() {
		t.Fatalf("Symbolize(own pc) = %+v, want %s", loc, fn.Name())
	}
	file, line := fn.FileLine(uintptr(pc))
	if len(loc.Frames) == 0 || loc.Frames[0].File != file || loc.Frames[0].Line != line {
		t.Errorf("frames %+v, want %s:%d", loc.Frames, file, line)
	}
	// The vDSO is a module, readable from memory.
	base, _ := vdso(t)
	if m := h.ModuleAt(base); m == nil || m.Name != "[vdso]" {
		t.Errorf("ModuleAt(vdso) = %+v", m)
	} else if _, ok := h.FromName("[vdso]!__vdso_clock_gettime"); !ok {
		t.Error("no __vdso_clock_gettime through the live target")
	}
}

//go:noinline
func reflectPC() uint64 {
	pc, _, _, _ := runtime.Caller(0)
	return uint64(pc)
}
