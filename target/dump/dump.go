// Package dump is a [target.Target] over a minidump: the memory the dump
// captured, its module list and its threads with their registers, for
// offline symbolization and unwinding.
//
// # The exception
//
// A crash dump has an ExceptionStream (MINIDUMP_EXCEPTION_STREAM): the
// thread that raised the exception, the exception record, and the
// thread's CONTEXT at the exception. The thread list's context of that
// thread is where it was when the dump was written, usually inside the
// crash handler or the dump writer's wait. As WinDbg's .ecxr and lldb do,
// [Dump.ThreadContext] gives that thread the exception's registers, so
// that its stack is walked from the fault; [Dump.ThreadListContext] still
// gives the thread list's, and [Dump.Exception] the exception itself.
// Dumps written by package capture have no exception stream: each thread
// has its thread-list context.
//
// # Damaged dumps
//
// A dump from the field may be cut short or partly corrupt. [New] keeps
// what it can read: the memory ranges the file holds (a range cut by the
// end of the file is cut to what it holds), the modules and threads
// before the point where a list stops making sense. What it left out is
// reported by [Dump.Warnings], and the thread list's errors by
// [Dump.Threads]. [Open] fails only when the file cannot be opened or is
// no minidump at all (minidump.NewFile's errors).
package dump

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/fntable/fntable/memory"
	"github.com/fntable/fntable/minidump"
	"github.com/fntable/fntable/target"
	"github.com/fntable/fntable/unwind"
)

// Dump is a minidump as a [target.Threads]. It is safe for concurrent use,
// except Close.
type Dump struct {
	f        *minidump.File
	mem      *minidump.Memory
	mods     []target.Module
	threads  []thread   // in Threads order
	thrErr   error      // the error decoding the thread list or names gave
	exc      *Exception // the ExceptionStream's, or nil
	warnings []error    // what New left out, see Warnings
	own      bool       // Close closes f
	images   []*image   // module files under the dump's memory (LoadImages), by base
	ranges   []minidump.MemoryRange
}

// thread is a thread of the dump's ThreadListStream, or the thread the
// ExceptionStream names.
type thread struct {
	target.Thread
	context     []byte // the CONTEXT record ThreadContext decodes; nil if none is readable
	listContext []byte // the thread list's CONTEXT record; nil if unreadable or not listed
}

// Exception is the exception a dump records in its ExceptionStream
// (MINIDUMP_EXCEPTION_STREAM and its MINIDUMP_EXCEPTION record).
type Exception struct {
	ThreadID int    // the thread that raised it
	Code     uint32 // ExceptionCode: an NTSTATUS (0xc0000005, access violation, ...), or a signal number in a Breakpad Linux dump
	Flags    uint32 // ExceptionFlags (EXCEPTION_NONCONTINUABLE 1, ...)
	Address  uint64 // ExceptionAddress: where it happened

	// Parameters are the used entries of ExceptionInformation (at most
	// 15). For an access violation: 0 read, 1 write or 8 execute, then
	// the address accessed.
	Parameters []uint64

	// HasContext is set when [Dump.ThreadContext] of ThreadID gives the
	// registers at the exception. It is clear when the dump's exception
	// context cannot be read (a warning says why): then ThreadContext
	// gives the thread list's.
	HasContext bool
}

// String describes e as "exception 0xc0000005 at 0x7ff7215f8da4 in
// thread 6068".
func (e *Exception) String() string {
	return fmt.Sprintf("exception %#x at %#x in thread %d", e.Code, e.Address, e.ThreadID)
}

var (
	_ target.Target     = (*Dump)(nil)
	_ target.Threads    = (*Dump)(nil)
	_ target.FileOpener = (*Dump)(nil)
)

// Open opens the minidump file name.
func Open(name string) (*Dump, error) {
	f, err := minidump.Open(name)
	if err != nil {
		return nil, err
	}
	d, err := New(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	d.own = true
	return d, nil
}

// New returns the target of an open minidump; Close does not close f.
// It keeps what it can read of a damaged dump, and reports what it left
// out through [Dump.Warnings] (see the package doc).
func New(f *minidump.File) (*Dump, error) {
	d := &Dump{f: f}
	mem, err := f.Memory()
	if mem == nil {
		if err == nil {
			err = errors.New("no memory")
		}
		return nil, fmt.Errorf("dump memory: %w", err)
	}
	if err != nil {
		d.warn(fmt.Errorf("dump memory: %w", err))
	}
	d.mem, d.ranges = mem, mem.Ranges()
	mods, err := f.Modules()
	if err != nil {
		d.warn(fmt.Errorf("dump modules: %w", err))
	}
	for _, m := range mods {
		tm := target.Module{
			Name:          target.BaseName(m.Name),
			Path:          m.Name,
			Base:          m.BaseOfImage,
			Size:          uint64(m.SizeOfImage),
			TimeDateStamp: m.TimeDateStamp,
			CheckSum:      m.CheckSum,
			CodeView:      m.CvData,
			BuildID:       minidump.ELFBuildID(m.CvData),
		}
		if strings.HasPrefix(m.Name, "[") {
			// A Linux image without a file ("[vdso]"): complete in
			// memory, as the dump holds it.
			tm.Name, tm.Path, tm.InMemory = m.Name, "", true
		}
		if tm.Size == 0 || tm.Base+tm.Size < tm.Base {
			continue
		}
		d.mods = append(d.mods, tm)
	}
	target.SortModules(d.mods)
	e, err := f.Exception()
	if err != nil {
		d.warn(fmt.Errorf("dump exception: %w", err))
	}
	d.threads, d.thrErr = threadsOf(f, e)
	if e != nil {
		d.exc = &Exception{
			ThreadID:   int(e.ThreadId),
			Code:       e.ExceptionRecord.ExceptionCode,
			Flags:      e.ExceptionRecord.ExceptionFlags,
			Address:    e.ExceptionRecord.ExceptionAddress,
			Parameters: slices.Clone(e.ExceptionRecord.Parameters()),
			HasContext: usableContext(e.Context),
		}
		if e.Context != nil && !d.exc.HasContext {
			d.warn(fmt.Errorf("dump exception: thread %d: the exception's context is not a CONTEXT of a known architecture: the thread list's is used", e.ThreadId))
		}
	}
	return d, nil
}

// warn records a problem New worked around.
func (d *Dump) warn(err error) { d.warnings = append(d.warnings, err) }

// Warnings returns what [New] could not read in the dump and left out,
// one error per stream: memory ranges beyond the end of a file cut short
// or otherwise unusable (minidump.File.Memory's error), the modules after
// the point where the module list is cut or corrupt, an exception stream
// or exception context that cannot be read. Each wraps
// minidump.ErrMalformed (and minidump.ErrTruncated for data cut short)
// where the dump is at fault. The thread list's errors are returned by
// [Dump.Threads] instead. Nil for a sound dump.
func (d *Dump) Warnings() []error { return slices.Clone(d.warnings) }

// Exception returns the exception the dump records in its
// ExceptionStream, or nil when it has none (a dump not written for a
// crash, as package capture writes them). The caller may modify the
// result.
func (d *Dump) Exception() *Exception {
	if d.exc == nil {
		return nil
	}
	e := *d.exc
	e.Parameters = slices.Clone(e.Parameters)
	return &e
}

// usableContext reports whether ctx is a CONTEXT record of a known
// architecture (see minidump.ContextArch).
func usableContext(ctx []byte) bool {
	return minidump.ContextArch(ctx) != minidump.PROCESSOR_ARCHITECTURE_UNKNOWN
}

// threadsOf reads the thread list, with the names of the ThreadNamesStream
// when the dump has one, in [target.Threads] order: the thread whose ID is
// the process's (a Linux dump's main thread) first, then by ID. The thread
// exception e names (if not nil) gets the exception's context when it is
// usable, and is added when the thread list lacks it.
func threadsOf(f *minidump.File, e *minidump.Exception) ([]thread, error) {
	list, err := f.Threads()
	if err != nil {
		err = fmt.Errorf("dump threads: %w", err)
	}
	excCtx := e != nil && usableContext(e.Context)
	if list == nil && !excCtx {
		return nil, err
	}
	names := map[uint32]string{}
	tn, nerr := f.ThreadNames()
	for _, n := range tn {
		names[n.ThreadId] = n.Name
	}
	if nerr != nil && err == nil {
		err = fmt.Errorf("dump thread names: %w", nerr)
	}
	pid := -1
	if mi, _ := f.MiscInfo(); mi != nil && mi.Flags1&minidump.MINIDUMP_MISC1_PROCESS_ID != 0 {
		pid = int(mi.ProcessId)
	}
	out := make([]thread, 0, len(list)+1)
	for _, t := range list {
		out = append(out, thread{Thread: target.Thread{ID: int(t.ThreadId), Name: names[t.ThreadId]}, context: t.Context, listContext: t.Context})
	}
	if excCtx {
		i := slices.IndexFunc(out, func(t thread) bool { return t.ID == int(e.ThreadId) })
		if i < 0 {
			// The thread list lacks the thread that raised the
			// exception: its walk is the one wanted most.
			out = append(out, thread{Thread: target.Thread{ID: int(e.ThreadId), Name: names[e.ThreadId]}})
			i = len(out) - 1
		}
		out[i].context = e.Context
	}
	for i := range out {
		if out[i].context == nil {
			out[i].Err = fmt.Errorf("thread %d: the dump has no readable context", out[i].ID)
		}
	}
	slices.SortStableFunc(out, func(a, b thread) int {
		switch {
		case a.ID == b.ID:
			return 0
		case a.ID == pid:
			return -1
		case b.ID == pid:
			return 1
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out, err
}

// Threads returns the threads of the dump's thread list, the thread whose
// ID is the process's first (a Linux dump's main thread), then in
// ascending ID order, named from the ThreadNamesStream when the dump has
// one. The thread the ExceptionStream names is listed even if the thread
// list lacks it. State is empty. A thread whose context could not be read
// is listed with Err set. The error is that of decoding the thread list or
// the names, returned with the threads that could be had (those before
// the point where a list cut short or corrupt stops).
func (d *Dump) Threads() ([]target.Thread, error) {
	out := make([]target.Thread, len(d.threads))
	for i, t := range d.threads {
		out[i] = t.Thread
	}
	return out, d.thrErr
}

// ThreadContext fills ctx with the registers the dump recorded for thread
// tid, decoded with unwind.Context.UnmarshalWindows: for the thread that
// raised the dump's exception (see [Dump.Exception]), its context at the
// exception, as WinDbg's .ecxr shows it; for the others, the thread
// list's. The groups filled are those the record's ContextFlags has, less
// CONTEXT_FLOATING_POINT when ctx.ContextFlags does not ask for it (then
// XMM0–XMM15 and MxCsr are left as they were); ctx.ContextFlags says
// which on return. FsBase and GsBase are 0: a CONTEXT has no room for
// them. Only x64 contexts are decoded.
func (d *Dump) ThreadContext(tid int, ctx *unwind.Context) error {
	i := slices.IndexFunc(d.threads, func(t thread) bool { return t.ID == tid })
	if i < 0 {
		return fmt.Errorf("thread %d: not in the dump", tid)
	}
	t := &d.threads[i]
	if t.Err != nil {
		return t.Err
	}
	return decodeContext(tid, t.context, ctx)
}

// ThreadListContext is [Dump.ThreadContext] from the thread list's
// context of thread tid, the exception's thread included: for that
// thread, where it was when the dump was written (for a dump written from
// inside the crashing process, in the crash handler). For the other
// threads it is the same as ThreadContext.
func (d *Dump) ThreadListContext(tid int, ctx *unwind.Context) error {
	i := slices.IndexFunc(d.threads, func(t thread) bool { return t.ID == tid })
	if i < 0 {
		return fmt.Errorf("thread %d: not in the dump", tid)
	}
	t := &d.threads[i]
	if t.listContext == nil {
		return fmt.Errorf("thread %d: the dump's thread list has no readable context for it", tid)
	}
	return decodeContext(tid, t.listContext, ctx)
}

// decodeContext decodes the CONTEXT record rec of thread tid into ctx, as
// ThreadContext documents.
func decodeContext(tid int, rec []byte, ctx *unwind.Context) error {
	if arch := minidump.ContextArch(rec); arch != minidump.PROCESSOR_ARCHITECTURE_AMD64 {
		return fmt.Errorf("thread %d: the dump's context is not an x64 CONTEXT (%v)", tid, arch)
	}
	var c unwind.Context
	if err := c.UnmarshalWindows(rec); err != nil {
		return fmt.Errorf("thread %d: %w", tid, err)
	}
	const fp = unwind.CONTEXT_FLOATING_POINT &^ unwind.CONTEXT_AMD64
	if ctx.ContextFlags&fp == 0 {
		c.Xmm, c.MxCsr = ctx.Xmm, ctx.MxCsr
		c.ContextFlags &^= fp
	}
	*ctx = c
	return nil
}

// File returns the minidump.
func (d *Dump) File() *minidump.File { return d.f }

// ReadMemory reads the memory the dump captured, and where it holds none,
// the module files [Dump.LoadImages] mapped.
func (d *Dump) ReadMemory(p []byte, addr uint64) (int, error) {
	n, err := d.mem.ReadMemory(p, addr)
	if err == nil || len(d.images) == 0 {
		return n, err
	}
	total := 0
	for {
		total += n
		if err == nil || !isUnmapped(err) {
			return total, err
		}
		p, addr = p[n:], addr+uint64(n)
		// addr is in a hole of the dump: the images fill it, up to the
		// next range the dump holds.
		i := sort.Search(len(d.ranges), func(i int) bool { return d.ranges[i].Addr > addr })
		limit := uint64(0)
		if i < len(d.ranges) {
			limit = d.ranges[i].Addr
		}
		k, ierr := d.readImages(p, addr, limit)
		total += k
		if ierr != nil {
			return total, ierr
		}
		p, addr = p[k:], addr+uint64(k)
		if len(p) == 0 {
			return total, nil
		}
		n, err = d.mem.ReadMemory(p, addr)
	}
}

func isUnmapped(err error) bool {
	var u *memory.UnmappedError
	return errors.As(err, &u)
}

// Modules calls yield for each module of the dump's module list, in
// ascending Base order.
func (d *Dump) Modules(yield func(target.Module) bool) error {
	for _, m := range d.mods {
		if !yield(m) {
			return target.ErrStopped
		}
	}
	return nil
}

// Close closes the module files LoadImages opened, and the dump file if
// Open opened it.
func (d *Dump) Close() error {
	for _, img := range d.images {
		img.f.Close()
	}
	d.images = nil
	if d.own {
		return d.f.Close()
	}
	return nil
}

// FunctionTables returns the dynamic function tables the dump holds (its
// FunctionTableStream, stream 13: RtlAddFunctionTable, growable and
// callback tables as they were when it was written), for lookups; nil when
// the dump has none. Their UNWIND_INFO is read from the dump's memory.
func (d *Dump) FunctionTables() (unwind.FunctionTable, error) {
	ft, err := d.f.FunctionTables()
	if ft == nil {
		return nil, err
	}
	return ft, err
}
