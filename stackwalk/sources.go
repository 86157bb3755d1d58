package stackwalk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"

	"github.com/fntable/fntable/cfi"
	"github.com/fntable/fntable/functable"
	"github.com/fntable/fntable/functable/remote"
	"github.com/fntable/fntable/internal/procmaps"
	"github.com/fntable/fntable/minidump"
	"github.com/fntable/fntable/peimage"
	"github.com/fntable/fntable/target"
	"github.com/fntable/fntable/unwind"
	"github.com/fntable/fntable/unwindinfo"
)

// Options configures [NewSources]. The zero value walks with everything
// the target offers.
//
// Memory, FunctionTableAccess and ModuleBase are the hooks of
// StackWalkEx (ReadMemoryRoutine64, FunctionTableAccessRoutine64,
// GetModuleBaseRoutine64): each replaces or adds to what the walker
// would otherwise take from the target.
type Options struct {
	// MaxFrames bounds each walk; 0 means DefaultMaxFrames.
	MaxFrames int

	// Memory, if set, is read instead of the target (stack, code and
	// unwind information alike).
	Memory unwind.Memory

	// Maps, if set, is the live target's /proc/PID/maps as the caller
	// read it while the process was stopped; without it NewSources reads
	// the file itself (a capture that keeps the listing anyway spares the
	// stopped process a second read).
	Maps []byte

	// FunctionTableAccess, if set, is asked first for the function table
	// entry of a PC; an entry it returns is unwound with VirtualUnwind
	// and the frame it finds counts as HowTable.
	FunctionTableAccess unwind.FunctionTable

	// ModuleBase, if set, returns the base of the PE image containing a
	// PC that the target's module list does not place, before the walker
	// looks for an image header below the PC itself.
	ModuleBase func(pc uint64) (base uint64, ok bool)

	// DynamicTables, if set, replaces the function tables read from the
	// target's published registries (see [Sources.Snapshots]).
	DynamicTables unwind.FunctionTable

	// Provider, if set, resolves the callback tables of the published
	// registries through the provider libraries they name (package
	// provider, with its trust list), lazily: the first time a PC falls in
	// a callback table's range. Without it, or when the provider gives
	// nothing, a frame in a callback table's range ends the walk with
	// ErrNoUnwinder (or is scanned past, with Scan): the frame-pointer
	// guess would make up frames in JIT code. A dump holds the entries
	// its callback tables had when it was written; a frame in one
	// written without entries ends the walk the same way, and the error
	// names the table and its provider.
	Provider remote.Provider

	// CFI caches the call-frame information of ELF files between walks
	// and targets, by build ID; nil gives the Sources a cache of its own.
	// A profiler that walks a process again and again keeps one, so that
	// no walk after the first parses CFI.
	CFI *cfi.Cache

	// DebugDirs are the global debug directories searched for the
	// separate debug files whose .debug_frame covers code that .eh_frame
	// does not; nil means /usr/lib/debug.
	DebugDirs []string

	// Scan, if set, lets a walk go on past a frame that no unwinder
	// knows, or whose frame-pointer guess found no caller (a return
	// address read through rbp that is in no executable mapping, or, in
	// a dump, in no module or function table): the first word above its
	// SP, within MaxScanWords, that is a return address (it follows a
	// call instruction in a module or a dynamic table's range) becomes
	// the caller's PC, and its frame is marked HowScan. Off by default:
	// a scanned frame is a guess.
	Scan bool

	// Logf, if set, receives what the walker could not use and why (a
	// module whose CFI is unreadable, a published list that is torn).
	Logf func(format string, args ...any)
}

// Sources are the unwind data of one target, gathered once and shared by
// the walks of all its threads: the dynamic function tables the target
// publishes, the PE images mapped in it, and the CFI of its ELF modules.
// Gather them again after the target ran (the tables and modules may have
// changed). Sources are safe for concurrent use; each [Walker] is not.
type Sources struct {
	t     target.Target
	opts  Options
	mem   unwind.Memory
	mods  []target.Module // by Base
	snaps []*remote.Snapshot
	dyn   unwind.FunctionTable // the hook, then the published tables
	cfi   *cfi.Cache

	exec  procmaps.Ranges // a live process's executable mappings, sorted; nil when unknown
	empty []emptyTable    // a dump's callback tables written without entries

	mu  sync.Mutex
	pe  map[uint64]*peImage // by 64 KiB block of a PC: the image there, or nil
	elf map[uint64]*elfModule
}

// peImage is a PE image mapped in the target.
type peImage struct {
	f    *peimage.File
	base uint64
}

// LookupFunctionEntry makes a peImage an unwind.FunctionTable, for the
// unwinder's same-function check.
func (p *peImage) LookupFunctionEntry(pc uint64) (*unwindinfo.RuntimeFunction, uint64, bool) {
	if pc < p.base || pc-p.base >= uint64(p.f.SizeOfImage()) {
		return nil, 0, false
	}
	fn, ok := p.f.LookupFunctionEntry(uint32(pc - p.base))
	if !ok {
		return nil, 0, false
	}
	return &fn, p.base, true
}

// NewSources gathers the unwind data of t: its modules, and, for a live
// Linux process (a target with a Pid method), the function tables its
// registries publish. t may be nil when opts.Memory is set: a walk over
// memory and function tables alone, with no modules.
func NewSources(t target.Target, opts Options) (*Sources, error) {
	s := &Sources{t: t, opts: opts, pe: map[uint64]*peImage{}, elf: map[uint64]*elfModule{}}
	switch {
	case opts.Memory != nil:
		s.mem = opts.Memory
	case t != nil:
		s.mem = t
	default:
		return nil, errors.New("stack walk sources: no target and no memory")
	}
	if err := CheckArch(t); err != nil {
		return nil, fmt.Errorf("stack walk sources: %w", err)
	}
	s.cfi = opts.CFI
	if s.cfi == nil {
		s.cfi = new(cfi.Cache)
	}
	// A live process: its maps, read once, give both the modules and
	// the published function table lists.
	var maps []byte
	pid := 0
	if p, ok := t.(interface{ Pid() int }); ok {
		pid = p.Pid()
		maps = opts.Maps
		if maps == nil {
			maps, _ = os.ReadFile("/proc/" + strconv.Itoa(pid) + "/maps")
		}
	}
	if maps != nil {
		mods, err := target.ModulesFromMaps(bytes.NewReader(maps))
		if err != nil {
			return nil, fmt.Errorf("list modules of process %d: %w", pid, err)
		}
		s.mods = mods
		s.exec = procmaps.ExecutableRanges(maps)
	} else if t != nil {
		if err := t.Modules(func(m target.Module) bool { s.mods = append(s.mods, m); return true }); err != nil {
			return nil, fmt.Errorf("list modules: %w", err)
		}
	}
	var tables unwind.Tables
	if opts.FunctionTableAccess != nil {
		tables = append(tables, opts.FunctionTableAccess)
	}
	dumped, isDump := t.(interface {
		FunctionTables() (unwind.FunctionTable, error)
	})
	switch {
	case opts.DynamicTables != nil:
		tables = append(tables, opts.DynamicTables)
	case isDump:
		// A dump: the tables it captured (its function table stream).
		ft, err := dumped.FunctionTables()
		if err != nil {
			s.logf("dynamic function tables of the dump: %v", err)
		}
		if ft != nil {
			tables = append(tables, ft)
		}
		if mt, ok := ft.(*minidump.FunctionTables); ok && mt != nil {
			s.empty = emptyCallbackTables(mt, s.mem)
		}
	case maps != nil:
		snaps, errs := readPublished(maps, s.mem)
		for _, e := range errs {
			s.logf("%v", e)
		}
		s.snaps = snaps
		for _, sn := range snaps {
			if opts.Provider != nil {
				sn.UseProvider(pid, opts.Provider)
			}
			tables = append(tables, sn)
		}
	}
	if len(tables) > 0 {
		s.dyn = tables
	}
	return s, nil
}

// CheckArch rejects, with [ErrUnsupportedArch], a minidump target (one
// with a File() *minidump.File method) whose system information names a
// processor other than x64: the unwinders know only the x64 CONTEXT and
// UNWIND_INFO. (Its memory and modules can still be read through the
// target; only the walk is refused.) [NewSources] checks it; a program
// can check it first, before it spends time on the dump. Other targets,
// and a dump without system information, pass (a dump's threads'
// contexts are checked as they are read).
func CheckArch(t target.Target) error {
	d, ok := t.(interface{ File() *minidump.File })
	if !ok || d.File() == nil {
		return nil
	}
	si, err := d.File().SystemInfo()
	if err != nil || si == nil {
		return nil
	}
	switch a := si.ProcessorArchitecture; a {
	case minidump.PROCESSOR_ARCHITECTURE_AMD64:
		return nil
	case minidump.PROCESSOR_ARCHITECTURE_INTEL, minidump.PROCESSOR_ARCHITECTURE_IA32_ON_WIN64:
		return fmt.Errorf("the dump is of an x86 (32-bit) process (%v): %w", a, ErrUnsupportedArch)
	default:
		return fmt.Errorf("the dump is of a %v process: %w", a, ErrUnsupportedArch)
	}
}

// readPublished reads every list a process publishes, found in its maps
// listing. Lists that cannot be read are reported and skipped.
func readPublished(mapsText []byte, mem unwind.Memory) ([]*remote.Snapshot, []error) {
	maps, err := remote.ParseMaps(bytes.NewReader(mapsText))
	if err != nil {
		return nil, []error{err}
	}
	var snaps []*remote.Snapshot
	var errs []error
	for _, m := range maps {
		sn, err := remote.Read(mem, m)
		if err != nil {
			errs = append(errs, fmt.Errorf("read function table list at %#x: %w", m.Addr, err))
			continue
		}
		snaps = append(snaps, sn)
	}
	return snaps, errs
}

// goFunc says whether pc is in a special function of a Go binary (see
// gofuncs.go): where Go's own tracebacks end (runtime.goexit,
// runtime.mstart, the stack switches), or runtime.asmcgocall; and the
// function's run-time entry address.
func (s *Sources) goFunc(pc uint64) (goKind, uint64) {
	m, ok := s.Module(pc)
	if !ok {
		return goNormal, 0
	}
	em := s.elfAt(m)
	if em == nil || em.gotab == nil {
		return goNormal, 0
	}
	f, ok := goFuncAt(em.gotab, pc-em.bias)
	if !ok {
		return goNormal, 0
	}
	return goFuncKind(f), f.Entry + em.bias
}

// executable reports whether pc is in an executable mapping; true when
// the mappings are not known (a dump).
func (s *Sources) executable(pc uint64) bool {
	return s.exec == nil || s.exec.Contains(pc)
}

// fpCallerKnown reports whether pc, a return address found through the
// frame-pointer chain, may be taken for one. When the target's executable
// mappings are not known but its modules are (a minidump), it must lie in
// a module or in a dynamic function table; otherwise any PC passes (the
// executable check and the stack guards judge it).
func (s *Sources) fpCallerKnown(pc uint64) bool {
	if s.exec != nil || len(s.mods) == 0 {
		return true
	}
	if _, ok := s.Module(pc); ok {
		return true
	}
	if s.dyn != nil {
		if _, _, ok := s.dyn.LookupFunctionEntry(pc); ok {
			return true
		}
	}
	return s.emptyTableAt(pc) != nil
}

// TableAt returns the published dynamic function table whose range
// contains pc, as RtlLookupFunctionEntry chooses it, and the snapshot it
// belongs to; nil when there is none.
func (s *Sources) TableAt(pc uint64) (*remote.Table, *remote.Snapshot) {
	for _, sn := range s.snaps {
		if t := sn.Table(pc); t != nil {
			return t, sn
		}
	}
	return nil, nil
}

// Snapshots returns the published function table lists read from the
// target, in address order.
func (s *Sources) Snapshots() []*remote.Snapshot { return s.snaps }

// Target returns the target the sources were gathered from.
func (s *Sources) Target() target.Target { return s.t }

// Modules returns the target's modules, by base address: those of the
// maps listing for a live process (read once, or given as Options.Maps).
// The slice is shared: callers must not modify it.
func (s *Sources) Modules() []target.Module { return s.mods }

// Module returns the module that contains addr.
func (s *Sources) Module(addr uint64) (target.Module, bool) {
	i := sort.Search(len(s.mods), func(i int) bool { return s.mods[i].Base > addr }) - 1
	if i >= 0 && addr < s.mods[i].End() {
		return s.mods[i], true
	}
	return target.Module{}, false
}

func (s *Sources) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
	}
}

// stepResult is what one unwind step found.
type stepResult struct {
	how         How
	cfa         uint64
	end         bool // the frame is the outermost one
	interrupted bool // the caller's PC is an interrupted PC, not a return address
	switched    bool // the caller is on another stack (a known stack switch)
}

// step unwinds the frame with registers ctx, whose PC is looked up as
// lookup, trying each unwinder in turn; ctx becomes the caller's.
//
// Function tables are searched for the PC itself, as RtlVirtualUnwind's
// callers on Windows do (compilers for Windows never end a function with
// a call, so a return address is always inside its caller), and only
// then for lookup (PC−1 for a caller), for code that does end with a
// call. CFI is searched for lookup, as DWARF unwinders do.
func (s *Sources) step(ctx *unwind.Context, lookup uint64) (stepResult, error) {
	pcs := [2]uint64{ctx.Rip, lookup}
	n := 1
	if lookup != ctx.Rip {
		n = 2
	}
	// 1. Dynamic function tables.
	if s.dyn != nil {
		for _, pc := range pcs[:n] {
			fn, base, ok, err := unwind.Lookup(s.dyn, s.mem, pc)
			if err != nil {
				return stepResult{}, err
			}
			if ok {
				return s.virtualUnwind(HowTable, s.dyn, base, &fn, ctx)
			}
		}
	}
	// A callback table whose provider gave nothing covers the PC: its
	// code is JIT code that only the provider describes; guessing with
	// the frame pointer would make up frames. The same holds offline for
	// a callback table that a dump holds without entries.
	if t, sn := s.TableAt(lookup); t != nil && t.Type == functable.RF_CALLBACK {
		if res := sn.Resolve(t); res.Err != nil {
			return stepResult{}, fmt.Errorf("%w (unresolved callback table: %v)", ErrNoUnwinder, res.Err)
		}
	}
	if t := s.emptyTableAt(lookup); t != nil {
		return stepResult{}, fmt.Errorf("%w (%v)", ErrNoUnwinder, t)
	}
	// 2. PE images, for code outside the ELF modules.
	m, inModule := s.Module(lookup)
	var em *elfModule
	if inModule {
		em = s.elfAt(m)
	}
	for _, pc := range pcs[:n] {
		if em != nil {
			break
		}
		img := s.peAt(pc)
		if img == nil {
			continue
		}
		if fn, ok := img.f.LookupFunctionEntry(uint32(pc - img.base)); ok {
			return s.virtualUnwind(HowPE, img, img.base, &fn, ctx)
		}
		if pc == lookup {
			// A leaf function: it has no entry, and RSP points at its
			// return address.
			return s.virtualUnwind(HowPE, img, img.base, nil, ctx)
		}
	}
	// 3. Go code: the pclntab's pcsp table, which Go's own traceback
	// reads and the .debug_frame of a Go program only restates (it is
	// generated from it), mapped from the file instead of parsed: much
	// cheaper on a large program than building an index of .debug_frame.
	if em != nil && em.gotab != nil {
		saved := *ctx
		cfa, ok, err := goStep(em.gotab, s.mem, ctx, lookup-em.bias)
		if err != nil {
			return stepResult{}, fmt.Errorf("%s: %w", m.Name, err)
		}
		if ok {
			return stepResult{how: HowGo, cfa: cfa}, nil
		}
		*ctx = saved
	}
	// 4. ELF call-frame information.
	if em != nil {
		sp := ctx.Rsp
		res, ok, err := em.step(s, ctx, lookup)
		if err != nil {
			return stepResult{}, fmt.Errorf("%s: %w", m.Name, err)
		}
		if ok {
			// A CFA loaded from memory describes a stack switch: the
			// stack pointer may then not rise.
			st := stepResult{how: HowCFI, cfa: res.CFA, end: res.End, interrupted: res.Signal,
				switched: !res.End && ctx.Rsp <= sp && res.CFAExpression}
			return st, nil
		}
	}
	// 5. The frame-pointer chain.
	return s.framePointer(ctx)
}

// virtualUnwind performs one RtlVirtualUnwind step.
func (s *Sources) virtualUnwind(how How, ft unwind.FunctionTable, base uint64, fn *unwindinfo.RuntimeFunction, ctx *unwind.Context) (stepResult, error) {
	u := unwind.Unwinder{Memory: s.mem, Functions: ft}
	res, err := u.VirtualUnwind(unwind.HandlerNone, base, ctx.Rip, fn, ctx, nil)
	if err != nil {
		return stepResult{}, err
	}
	return stepResult{how: how, cfa: ctx.Rsp, interrupted: res.MachineFrame()}, nil
}

// maxFrameSize bounds the distance from RSP to RBP that the frame-pointer
// unwinder accepts: beyond it RBP is taken for a general register.
const maxFrameSize = 64 << 20

// framePointer unwinds through the frame-pointer chain: [rbp] is the
// caller's rbp and [rbp+8] the return address.
func (s *Sources) framePointer(ctx *unwind.Context) (stepResult, error) {
	fp := ctx.Rbp
	if fp < ctx.Rsp || fp-ctx.Rsp > maxFrameSize || fp%8 != 0 {
		return stepResult{}, fmt.Errorf("%w (%s, and rbp %#x is no frame pointer)", ErrNoUnwinder, s.describe(ctx.Rip), fp)
	}
	var b [16]byte
	if _, err := s.mem.ReadMemory(b[:], fp); err != nil {
		return stepResult{}, fmt.Errorf("frame pointer chain at %#x: %w", fp, err)
	}
	ctx.Rbp = binary.LittleEndian.Uint64(b[:8])
	ctx.Rip = binary.LittleEndian.Uint64(b[8:])
	ctx.Rsp = fp + 16
	return stepResult{how: HowFP, cfa: fp + 16}, nil
}

// describe says where pc is, for errors.
func (s *Sources) describe(pc uint64) string {
	if t, sn := s.TableAt(pc); t != nil && t.Type == functable.RF_CALLBACK {
		res := sn.Resolve(t)
		if res.Err != nil {
			return fmt.Sprintf("unresolved: %v", res.Err)
		}
		return fmt.Sprintf("in callback table %#x, whose provider gave no entry for it", t.FunctionTable)
	}
	if m, ok := s.Module(pc); ok {
		var b [1]byte
		if _, err := s.mem.ReadMemory(b[:], m.Base); err != nil {
			// A minidump that did not capture the image: its headers,
			// and so its exception directory, are not in the memory.
			return fmt.Sprintf("%s+%#x, whose image is not in the target's memory", m.Name, pc-m.Base)
		}
		return fmt.Sprintf("%s+%#x has no unwind data", m.Name, pc-m.Base)
	}
	return "in no module or function table"
}

// Limits of the search for PE images.
const (
	peAlign   = 64 << 10 // PE images are loaded at 64 KiB boundaries (the allocation granularity)
	maxPEScan = 1024     // 64 KiB steps down from a PC: images up to 64 MiB
)

// peAt returns the PE image mapped in the target that contains pc, or nil.
func (s *Sources) peAt(pc uint64) *peImage {
	block := pc &^ (peAlign - 1)
	s.mu.Lock()
	img, done := s.pe[block]
	s.mu.Unlock()
	if done {
		return img
	}
	img = s.findPE(pc)
	s.mu.Lock()
	s.pe[block] = img
	s.mu.Unlock()
	return img
}

// findPE looks for the image containing pc: at the base of the module
// that contains it, at the base the ModuleBase hook gives, else at each
// 64 KiB boundary below pc down to the first unreadable one.
func (s *Sources) findPE(pc uint64) *peImage {
	try := func(base uint64) *peImage {
		var mz [2]byte
		if _, err := s.mem.ReadMemory(mz[:], base); err != nil || mz != [2]byte{'M', 'Z'} {
			return nil
		}
		f, err := peimage.NewMapped(s.mem, base)
		if err != nil || pc-base >= uint64(f.SizeOfImage()) {
			return nil
		}
		return &peImage{f: f, base: base}
	}
	if m, ok := s.Module(pc); ok {
		if img := try(m.Base); img != nil {
			return img
		}
		if !m.InMemory && m.Path != "" && s.isELF(m.Base) {
			return nil // an ELF module: not a PE image
		}
	}
	if s.opts.ModuleBase != nil {
		if base, ok := s.opts.ModuleBase(pc); ok {
			return try(base)
		}
	}
	var b [1]byte
	for i, base := 0, pc&^(peAlign-1); i < maxPEScan && base != 0; i, base = i+1, base-peAlign {
		if _, err := s.mem.ReadMemory(b[:], base); err != nil {
			return nil
		}
		if b[0] == 'M' {
			if img := try(base); img != nil {
				return img
			}
		}
	}
	return nil
}

func (s *Sources) isELF(addr uint64) bool {
	var b [4]byte
	_, err := s.mem.ReadMemory(b[:], addr)
	return err == nil && string(b[:]) == "\x7fELF"
}
