// Package dump is a [target.Target] over a minidump: the memory the dump
// captured, its module list and its threads with their registers, for
// offline symbolization and unwinding.
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
	f       *minidump.File
	mem     *minidump.Memory
	mods    []target.Module
	threads []thread // in Threads order
	thrErr  error    // the error decoding the thread list or names gave
	own     bool     // Close closes f
	images  []*image // module files under the dump's memory (LoadImages), by base
	ranges  []minidump.MemoryRange
}

// thread is a thread of the dump's ThreadListStream.
type thread struct {
	target.Thread
	context []byte // the CONTEXT record, undecoded; nil if unreadable
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
func New(f *minidump.File) (*Dump, error) {
	mem, err := f.Memory()
	if err != nil {
		return nil, fmt.Errorf("dump memory: %w", err)
	}
	mods, err := f.Modules()
	if err != nil && mods == nil {
		return nil, fmt.Errorf("dump modules: %w", err)
	}
	d := &Dump{f: f, mem: mem, ranges: mem.Ranges()}
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
	d.threads, d.thrErr = threadsOf(f)
	return d, nil
}

// threadsOf reads the thread list, with the names of the ThreadNamesStream
// when the dump has one, in [target.Threads] order: the thread whose ID is
// the process's (a Linux dump's main thread) first, then by ID.
func threadsOf(f *minidump.File) ([]thread, error) {
	list, err := f.Threads()
	if list == nil {
		if err != nil {
			return nil, fmt.Errorf("dump threads: %w", err)
		}
		return nil, nil
	}
	if err != nil {
		err = fmt.Errorf("dump threads: %w", err)
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
	out := make([]thread, len(list))
	for i, t := range list {
		out[i] = thread{Thread: target.Thread{ID: int(t.ThreadId), Name: names[t.ThreadId]}, context: t.Context}
		if t.Context == nil {
			out[i].Err = fmt.Errorf("thread %d: the dump has no readable context", t.ThreadId)
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
// one. State is empty. A thread whose context could not be read is listed
// with Err set. The error is that of decoding the thread list or the
// names, returned with the threads that could be had.
func (d *Dump) Threads() ([]target.Thread, error) {
	out := make([]target.Thread, len(d.threads))
	for i, t := range d.threads {
		out[i] = t.Thread
	}
	return out, d.thrErr
}

// ThreadContext fills ctx with the registers the dump recorded for thread
// tid, decoded with unwind.Context.UnmarshalWindows. The groups filled are
// those the record's ContextFlags has, less CONTEXT_FLOATING_POINT when
// ctx.ContextFlags does not ask for it (then XMM0–XMM15 and MxCsr are left
// as they were); ctx.ContextFlags says which on return. FsBase and GsBase
// are 0: a CONTEXT has no room for them. Only x64 contexts are decoded.
func (d *Dump) ThreadContext(tid int, ctx *unwind.Context) error {
	i := slices.IndexFunc(d.threads, func(t thread) bool { return t.ID == tid })
	if i < 0 {
		return fmt.Errorf("thread %d: not in the dump", tid)
	}
	t := &d.threads[i]
	if t.Err != nil {
		return t.Err
	}
	if arch := minidump.ContextArch(t.context); arch != minidump.PROCESSOR_ARCHITECTURE_AMD64 {
		return fmt.Errorf("thread %d: the dump's context is not an x64 CONTEXT (%v)", tid, arch)
	}
	var c unwind.Context
	if err := c.UnmarshalWindows(t.context); err != nil {
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
