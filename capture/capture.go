package capture

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/fntable/fntable/functable"
	"github.com/fntable/fntable/functable/record"
	"github.com/fntable/fntable/functable/remote"
	"github.com/fntable/fntable/internal/procmaps"
	"github.com/fntable/fntable/internal/procmem"
	"github.com/fntable/fntable/memory"
	"github.com/fntable/fntable/minidump"
	"github.com/fntable/fntable/stackwalk"
	"github.com/fntable/fntable/symfile/debugfile"
	"github.com/fntable/fntable/target"
	"github.com/fntable/fntable/target/live"
	"github.com/fntable/fntable/unwind"
	"github.com/fntable/fntable/unwindinfo"
)

// Limits of a capture.
const (
	// DefaultStackLimit is the bytes of each thread's stack a dump holds
	// when Options.StackLimit is 0: from RSP−128 up, 256 KiB, more than
	// the deepest real stacks use. When the walk taken at capture time
	// reached the thread's outermost frame, the stack is kept only up to
	// 1 KiB above that frame.
	DefaultStackLimit = 256 << 10
	// redZone is the part below RSP that leaf functions may use (System V
	// x86-64 ABI §3.2.2).
	redZone = 128
	// codeWindow is the code kept before and after the PC of every frame.
	codeWindow = 256
	// handlerDataWindow is the bytes kept after an UNWIND_INFO with a
	// handler: its handler data, whose length only the handler knows.
	handlerDataWindow = 64
	// maxChain bounds the chained UNWIND_INFO followed from one entry
	// (Windows follows at most 32).
	maxChain = 32
	// maxHeaderBytes bounds the ELF header and program headers kept per
	// module.
	maxHeaderBytes = 4096
	// maxVDSO bounds the vDSO image kept whole.
	maxVDSO = 64 << 10
	// pageSize is the granule of the ranges the walk read.
	pageSize = 4096
	// stackSlack is the stack kept above the outermost frame of a walk
	// that reached it.
	stackSlack = 1024
)

// Options configures [WriteFile]. The zero value captures a small dump
// with callback tables unresolved.
type Options struct {
	// Full keeps every readable mapping of the process (a
	// Memory64ListStream) instead of the parts the stacks need. The
	// process stays stopped while the file is written.
	Full bool

	// Provider resolves callback tables through the provider libraries
	// they name (package provider, with its trust list); their entries go
	// into the dump. Without it, callback tables are written without
	// entries.
	Provider remote.Provider

	// StackLimit bounds the bytes of each thread's stack; 0 means
	// DefaultStackLimit.
	StackLimit uint64

	// MaxFrames bounds the walks taken at capture time; 0 means
	// stackwalk.DefaultMaxFrames.
	MaxFrames int

	// NoSignalHandler and LazySignalHandler are passed to live.Stop (see
	// live.StopOptions): set the first in a program that handles SIGINT,
	// SIGTERM and SIGHUP itself, the second in one that lets them kill
	// it.
	NoSignalHandler, LazySignalHandler bool

	// Progress, if set, is called on the goroutine that called WriteFile
	// while the file is written, with the bytes written and the total.
	Progress func(written, total int64)

	// Logf, if set, receives what could not be captured and why (a thread
	// without registers, a module whose build ID cannot be read). It is
	// called on the goroutine that called WriteFile.
	Logf func(format string, args ...any)
}

// Summary says what a dump holds.
type Summary struct {
	Pid         int           // the process
	Threads     int           // threads with registers
	Modules     int           // modules listed
	Tables      int           // dynamic function tables in stream 13
	Entries     int           // their entries (a callback table's from its provider)
	Unresolved  int           // callback tables written without entries
	Ranges      int           // memory ranges
	MemoryBytes uint64        // bytes of memory
	Streams     int           // Breakpad Linux streams (/proc files)
	PerfMap     int           // bytes of the perf map kept (FntablePerfMapStream), 0 without one
	Full        bool          // every readable mapping was kept
	Size        int64         // bytes of the file
	Stopped     time.Duration // how long the process was stopped
}

// testHookStopped, if set, is called once the process is stopped, before
// anything is read (tests kill the process there).
var testHookStopped func(pid int)

// WriteFile stops process pid, gathers its dump (see the package
// documentation), resumes it and writes the dump to the file name. On
// any error, including the death of the process, there is no file name
// afterwards (an existing one is left as it was).
func WriteFile(pid int, name string, opts Options) (*Summary, error) {
	if opts.StackLimit == 0 {
		opts.StackLimit = DefaultStackLimit
	}
	// A destination that cannot be written fails now, before the
	// process is stopped.
	w, err := minidump.CreateFile(name)
	if err != nil {
		return nil, err
	}
	defer w.Discard()            // after Write, nothing
	live.Prepare()               // the tracer thread starts while the rest is prepared
	lists, _ := remote.Find(pid) // Stop says why when the maps cannot be read
	g := &gatherer{pid: pid, opts: opts, sum: &Summary{Pid: pid, Full: opts.Full}}
	g.ids = startFileIDs(pid)
	// The status as the process runs, read before it is stopped (the
	// other /proc files do not change with the stop: startFileIDs reads
	// them meanwhile).
	g.status, g.statusErr = os.ReadFile(procPath(pid, "status"))
	sopts := live.StopOptions{NoSignalHandler: opts.NoSignalHandler, LazySignalHandler: opts.LazySignalHandler}
	if len(lists) > 0 {
		sopts.Ready = func(s *live.Stopped) bool { return !remote.Changing(s, lists) }
	}
	stopped := time.Now()
	st, err := live.Stop(pid, sopts)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	if testHookStopped != nil {
		testHookStopped(pid)
	}
	g.st = st
	c, err := g.gather()
	if err != nil {
		return nil, fmt.Errorf("capture process %d: %w", pid, err)
	}
	wopts := minidump.WriteOptions{Full: opts.Full, Progress: opts.Progress}
	if opts.Full {
		// The memory is read from the stopped process while the file is
		// written.
		mem, err := procmem.Open(pid)
		if err != nil {
			return nil, fmt.Errorf("capture process %d: %w", pid, err)
		}
		defer mem.Close()
		c.Memory = g.fullMemory(mem)
		setStackReads(c)
		err = w.Write(c, wopts)
		g.sum.Stopped = time.Since(stopped)
		if cerr := st.Close(); err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("capture process %d: %w", pid, err)
		}
	} else {
		// The process runs on while the memory kept is written out of
		// the page cache.
		if err := st.Resume(); err != nil {
			return nil, fmt.Errorf("capture process %d: %w", pid, err)
		}
		g.sum.Stopped = time.Since(stopped)
		if err := w.Write(c, wopts); err != nil {
			return nil, fmt.Errorf("capture process %d: %w", pid, err)
		}
	}
	for _, m := range c.Memory {
		g.sum.MemoryBytes += m.Size
	}
	g.sum.Ranges = len(c.Memory)
	if fi, err := os.Stat(name); err == nil {
		g.sum.Size = fi.Size()
	}
	return g.sum, nil
}

// gatherer collects one dump's contents from a stopped process.
type gatherer struct {
	pid  int
	st   *live.Stopped
	opts Options
	sum  *Summary

	ids       *fileIDs // the modules' files' build IDs and procFiles, read meanwhile
	status    []byte   // /proc/PID/status, read before the stop
	statusErr error
	maps      []procmaps.Line // the process's mappings, in address order
	spans     spanSet         // memory to keep (without Full)
}

func (g *gatherer) logf(format string, args ...any) {
	if g.opts.Logf != nil {
		g.opts.Logf(format, args...)
	}
}

// gather reads everything but (with Full) the memory.
func (g *gatherer) gather() (*minidump.Content, error) {
	c := &minidump.Content{ProcessID: uint32(g.pid), TimeDateStamp: uint32(time.Now().Unix())}
	mapsText, err := os.ReadFile(procPath(g.pid, "maps"))
	if err != nil {
		return nil, gone(g.pid, err)
	}
	err = procmaps.Scan(bytes.NewReader(mapsText), func(_ int, l procmaps.Line, err error) error {
		if err == nil {
			g.maps = append(g.maps, l)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	files := g.ids.files(g.logf)
	c.SystemInfo = files.machine.info
	c.Streams = g.procStreams(mapsText, files)

	// The walks, with every byte they read recorded.
	rec := &recorder{src: g.st}
	src, err := stackwalk.NewSources(g.st, stackwalk.Options{
		Maps:      mapsText,
		Memory:    rec,
		MaxFrames: g.opts.MaxFrames,
		Provider:  g.opts.Provider,
		Logf:      g.opts.Logf,
	})
	if err != nil {
		return nil, err
	}
	threads, err := g.st.Threads()
	if err != nil {
		return nil, err
	}
	for _, th := range threads {
		if th.Err != nil {
			if errors.Is(th.Err, memory.ErrTargetGone) && !processAlive(g.pid) {
				return nil, th.Err
			}
			g.logf("thread %d: %v", th.ID, th.Err)
			continue
		}
		ctx := unwind.Context{ContextFlags: unwind.CONTEXT_FULL | unwind.CONTEXT_SEGMENTS}
		if err := g.st.ThreadContext(th.ID, &ctx); err != nil {
			if errors.Is(err, memory.ErrTargetGone) {
				return nil, err
			}
			g.logf("thread %d: %v", th.ID, err)
			continue
		}
		// The walk; top is the highest address its frames used on the
		// thread's stack.
		w := src.WalkThread(th.ID)
		top := ctx.Rsp
		sm, _ := g.mapping(ctx.Rsp)
		for w.Next() {
			f := w.Frame()
			g.addCode(f.PC)
			for _, a := range [2]uint64{f.SP, f.CFA} {
				if a >= sm.Start && a < sm.End {
					top = max(top, a)
				}
			}
		}
		complete := w.Err() == nil
		if err := w.Err(); err != nil && errors.Is(err, memory.ErrTargetGone) {
			return nil, err
		}
		wt := minidump.WriteThread{ID: uint32(th.ID), Context: ctx.MarshalWindows(), Name: th.Name}
		if lo, hi, ok := g.stackRange(ctx.Rsp); ok {
			if complete {
				// The walk reached the outermost frame: what lies above
				// it (the rest of a goroutine's stack, the environment
				// strings above main) is no frame of this thread.
				hi = max(lo, min(hi, (top+stackSlack+pageSize-1)&^(pageSize-1)))
			}
			wt.Stack = minidump.MemorySource{Addr: lo, Size: hi - lo}
			g.spans.add(lo, hi)
		}
		c.Threads = append(c.Threads, wt)
	}
	if len(c.Threads) == 0 {
		if !processAlive(g.pid) {
			return nil, gone(g.pid, nil)
		}
		return nil, errors.New("no thread's registers could be read")
	}
	g.sum.Threads = len(c.Threads)
	for _, r := range rec.spans.list() {
		g.spans.add(r[0]&^(pageSize-1), (r[1]+pageSize-1)&^(pageSize-1))
	}

	// Modules, as the walks' sources parsed them from the maps.
	for _, m := range src.Modules() {
		if m.InMemory || g.isELF(m) {
			c.Modules = append(c.Modules, g.module(m))
		}
	}
	g.sum.Modules = len(c.Modules)

	// The dynamic function tables.
	for _, sn := range src.Snapshots() {
		g.spans.add(sn.MappingAddress, sn.MappingAddress+max(sn.UsedSize, functable.HeaderSize))
		for i := range sn.Tables {
			wt, ok := g.table(sn, &sn.Tables[i])
			if ok {
				c.FunctionTables = append(c.FunctionTables, wt)
			}
		}
	}
	g.sum.Tables = len(c.FunctionTables)

	if !processAlive(g.pid) {
		return nil, gone(g.pid, nil)
	}
	if g.opts.Full {
		return c, nil
	}
	// Read the memory kept now, while the process is stopped, into the
	// page cache the walks filled: what they read is not read again.
	mem, err := g.prefetchMemory()
	if err != nil {
		return nil, err
	}
	if !processAlive(g.pid) {
		return nil, gone(g.pid, nil)
	}
	c.Memory = mem
	setStackReads(c)
	return c, nil
}

// setStackReads reads each thread's stack through the memory range that
// holds it, cut to that range; a stack no range holds is dropped.
func setStackReads(c *minidump.Content) {
	for i := range c.Threads {
		s := &c.Threads[i].Stack
		if s.Size == 0 {
			continue
		}
		j := slices.IndexFunc(c.Memory, func(m minidump.MemorySource) bool { return m.Addr <= s.Addr && s.Addr-m.Addr < m.Size })
		if j < 0 {
			*s = minidump.MemorySource{}
			continue
		}
		m := c.Memory[j]
		s.Size = min(s.Size, m.Addr+m.Size-s.Addr)
		s.Read, s.Bytes = m.Read, m.Bytes
		if m.Data != nil {
			s.Data = m.Data[s.Addr-m.Addr:][:s.Size]
		}
	}
}

// procStreams returns Breakpad's Linux streams.
func (g *gatherer) procStreams(maps []byte, files *procFiles) []minidump.RawStream {
	out := []minidump.RawStream{{Type: minidump.BreakpadLinuxMapsStream, Data: maps}}
	if g.statusErr != nil {
		g.logf("%v", g.statusErr)
	} else {
		out = append(out, minidump.RawStream{Type: minidump.BreakpadLinuxProcStatusStream, Data: g.status})
	}
	out = append(out, files.streams...)
	out = append(out, files.machine.streams...)
	g.sum.Streams = len(out)
	if pm := g.perfMap(); pm != nil {
		out = append(out, minidump.RawStream{Type: minidump.FntablePerfMapStream, Data: pm})
		g.sum.PerfMap = len(pm)
	}
	return out
}

// maxPerfMap bounds the perf map kept in a dump.
const maxPerfMap = 64 << 20

// perfMap reads the process's perf map, read while it is stopped so that
// it names the code its stacks run in; nil when it has none.
func (g *gatherer) perfMap() []byte {
	path := live.PerfMapPath(g.pid, g.status) // the status read before the stop
	f, err := os.Open(path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			g.logf("perf map: %v", err)
		}
		return nil
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPerfMap+1))
	switch {
	case err != nil:
		g.logf("perf map: %v", err)
		return nil
	case len(b) > maxPerfMap:
		g.logf("perf map %s: larger than %d MiB: not kept", path, maxPerfMap>>20)
		return nil
	}
	return b
}

// mapping returns the mapping that holds addr.
func (g *gatherer) mapping(addr uint64) (procmaps.Line, bool) {
	i, _ := slices.BinarySearchFunc(g.maps, addr, func(l procmaps.Line, a uint64) int {
		switch {
		case l.End <= a:
			return -1
		case l.Start > a:
			return 1
		}
		return 0
	})
	if i < len(g.maps) && g.maps[i].Start <= addr && addr < g.maps[i].End {
		return g.maps[i], true
	}
	return procmaps.Line{}, false
}

// stackRange returns the part of the stack of a thread whose RSP is rsp
// that the dump keeps.
func (g *gatherer) stackRange(rsp uint64) (lo, hi uint64, ok bool) {
	m, ok := g.mapping(rsp)
	if !ok {
		return 0, 0, false
	}
	lo = max(rsp-min(rsp, redZone), m.Start)
	hi = min(m.End, lo+g.opts.StackLimit)
	return lo, hi, hi > lo
}

// addCode keeps the code around pc.
func (g *gatherer) addCode(pc uint64) {
	m, ok := g.mapping(pc)
	if !ok {
		return
	}
	lo := max(pc-min(pc, codeWindow), m.Start)
	g.spans.add(lo, min(pc+codeWindow, m.End))
}

// module describes module m and keeps its headers (the vDSO whole).
func (g *gatherer) module(m target.Module) minidump.WriteModule {
	wm := minidump.WriteModule{Base: m.Base, Size: m.Size, Name: m.Path}
	if m.Path == "" {
		wm.Name = m.Name
	}
	var id []byte
	if m.InMemory {
		size := min(m.Size, maxVDSO)
		g.spans.add(m.Base, m.Base+size)
		id = g.memoryBuildID(m.Base, size)
	} else {
		g.addHeaders(m.Base)
		id = g.fileBuildID(m)
		if id == nil {
			id = g.memoryBuildID(m.Base, min(m.Size, maxHeaderBytes))
		}
	}
	if id != nil {
		wm.CodeView = minidump.ELFCodeView(id)
	} else {
		g.logf("no build id for %s", wm.Name)
	}
	return wm
}

// isELF reports whether module m is an ELF image (not a data file such
// as a locale archive): its first bytes in memory, or else in its file.
func (g *gatherer) isELF(m target.Module) bool {
	var b [4]byte
	if n, _ := g.st.ReadMemory(b[:], m.Base); n == len(b) {
		return string(b[:]) == elf.ELFMAG
	}
	r, c, err := g.st.OpenModule(m)
	if err != nil || r == nil {
		return false
	}
	defer c.Close()
	n, _ := r.ReadAt(b[:], 0)
	return n == len(b) && string(b[:]) == elf.ELFMAG
}

// addHeaders keeps the ELF header and program headers at base, so that
// a reader knows the module for an ELF image without its file.
func (g *gatherer) addHeaders(base uint64) {
	var h [64]byte
	if n, _ := g.st.ReadMemory(h[:], base); n < len(h) || string(h[:4]) != elf.ELFMAG {
		return
	}
	le := binary.LittleEndian
	phoff, phentsize, phnum := le.Uint64(h[0x20:]), uint64(le.Uint16(h[0x36:])), uint64(le.Uint16(h[0x38:]))
	end := min(max(64, phoff+phentsize*phnum), maxHeaderBytes)
	if m, ok := g.mapping(base); ok {
		g.spans.add(base, min(base+end, m.End))
	}
}

// fileBuildID returns the build ID of m's file, as the process sees it:
// read while the process was being stopped, when it mapped the file then.
func (g *gatherer) fileBuildID(m target.Module) []byte {
	if id, ok := g.ids.get(m.Path); ok {
		return id
	}
	return fileBuildID(g.st, m)
}

// fileBuildID reads the build ID of m's file through t.
func fileBuildID(t target.FileOpener, m target.Module) (id []byte) {
	defer func() {
		if recover() != nil { // debug/elf on a hostile file
			id = nil
		}
	}()
	r, c, err := t.OpenModule(m)
	if err != nil || r == nil {
		return nil
	}
	defer c.Close()
	f, err := elf.NewFile(r)
	if err != nil {
		return nil
	}
	return debugfile.BuildID(f)
}

// fileIDs holds the build IDs of the files a process maps, read on their
// own goroutine from the mappings as they were before the process was
// stopped, while it is being stopped and walked: a file does not change
// when the process stops, and on two CPUs the reads (half a millisecond
// a module) then cost the capture nothing.
type fileIDs struct {
	procDone chan struct{}
	proc     procFiles
	done     chan struct{}
	ids      map[string][]byte // by path; nil for a file without one
}

// procFiles are the dump's streams of /proc and /etc apart from the maps
// and the status: this machine's (readMachine), and the process's auxv,
// command line and environment, none of which the stop changes, read as
// the process is being stopped.
type procFiles struct {
	machine machine
	streams []minidump.RawStream
	errs    []string // what could not be read
}

// startFileIDs starts reading, on one goroutine, the files of procFiles
// and then the build IDs of the files process pid maps: they need not
// wait for the process to stop, nor the stop for them.
func startFileIDs(pid int) *fileIDs {
	f := &fileIDs{procDone: make(chan struct{}), done: make(chan struct{}), ids: map[string][]byte{}}
	go func() {
		defer close(f.done)
		f.proc.read(pid)
		close(f.procDone)
		p, err := live.Open(pid)
		if err != nil {
			return
		}
		defer p.Close()
		p.Modules(func(m target.Module) bool {
			if !m.InMemory && m.Path != "" {
				f.ids[m.Path] = fileBuildID(p, m)
			}
			return true
		})
	}()
	return f
}

// read reads the files of procFiles.
func (p *procFiles) read(pid int) {
	p.machine = readMachine(func(format string, args ...any) { p.errs = append(p.errs, fmt.Sprintf(format, args...)) })
	for _, f := range []struct {
		t    minidump.StreamType
		path string
	}{
		{minidump.BreakpadLinuxAuxvStream, procPath(pid, "auxv")},
		{minidump.BreakpadLinuxCmdLineStream, procPath(pid, "cmdline")},
		{minidump.BreakpadLinuxEnvironStream, procPath(pid, "environ")},
	} {
		b, err := os.ReadFile(f.path)
		if err != nil {
			p.errs = append(p.errs, err.Error())
			continue
		}
		p.streams = append(p.streams, minidump.RawStream{Type: f.t, Data: b})
	}
}

// files returns the files of procFiles, waiting for their reads, and
// passes what could not be read to logf.
func (f *fileIDs) files(logf func(format string, args ...any)) *procFiles {
	<-f.procDone
	for _, e := range f.proc.errs {
		logf("%s", e)
	}
	return &f.proc
}

// get returns the build ID read for the file at path, waiting for the
// reads to end; ok is false when that file was not read.
func (f *fileIDs) get(path string) (id []byte, ok bool) {
	<-f.done
	id, ok = f.ids[path]
	return id, ok
}

// memoryBuildID reads the build ID from the ELF image mapped at base.
func (g *gatherer) memoryBuildID(base, size uint64) []byte {
	f, err := elf.NewFile(memory.ReaderAt(g.st, base, size))
	if err != nil {
		return nil
	}
	return debugfile.BuildID(f)
}

// table returns the stream 13 record of table t of snapshot sn, and keeps
// the UNWIND_INFO its entries point to.
func (g *gatherer) table(sn *remote.Snapshot, t *remote.Table) (minidump.WriteFunctionTable, bool) {
	var rec [functable.RecordSize]byte
	if _, err := g.st.ReadMemory(rec[:], t.Record); err != nil {
		g.logf("table record at %#x: %v", t.Record, err)
		return minidump.WriteFunctionTable{}, false
	}
	d, err := record.DecodePublishedRecord(rec[:])
	if err != nil {
		g.logf("table record at %#x: %v", t.Record, err)
		return minidump.WriteFunctionTable{}, false
	}
	// The snapshot's values, checked when it was read, over the record's.
	d.FunctionTable, d.TimeStamp, d.Type = t.FunctionTable, t.TimeStamp, t.Type
	d.MinimumAddress, d.MaximumAddress, d.BaseAddress = t.MinimumAddress, t.MaximumAddress, t.BaseAddress
	d.Callback, d.Context = t.Callback, t.Context
	d.EntryCount, d.MaximumEntryCount = t.EntryCount, t.MaximumEntryCount
	if t.Growable {
		d.Flags |= functable.RecFlagGrowable
	}
	entries := t.Entries
	if t.Type == functable.RF_CALLBACK {
		entries = nil
		if res := sn.Resolve(t); res.Err != nil {
			g.logf("%v", res.Err) // it names the table
		} else if _, e, ok := t.Resolution(); ok {
			entries = e
		}
		if entries == nil {
			g.sum.Unresolved++
		}
		d.EntryCount, d.MaximumEntryCount = uint32(len(entries)), uint32(len(entries))
	}
	for _, e := range entries {
		g.addUnwindInfo(t.BaseAddress, e)
	}
	g.sum.Entries += len(entries)
	return minidump.WriteFunctionTable{Table: d, Entries: slices.Clone(entries)}, true
}

// addUnwindInfo keeps the UNWIND_INFO of entry e (RVAs from base), its
// chained entries' and its handler data.
func (g *gatherer) addUnwindInfo(base uint64, e unwindinfo.RuntimeFunction) {
	for range maxChain {
		if e.Indirect() {
			return
		}
		addr := base + uint64(e.UnwindData)
		var b [4 + 2*255 + 2 + unwindinfo.RuntimeFunctionSize]byte
		n, _ := g.st.ReadMemory(b[:], addr)
		h, err := unwindinfo.DecodeHeader(b[:n])
		if err != nil {
			if n > 0 {
				g.spans.add(addr, addr+uint64(min(n, 4)))
			}
			return
		}
		size := uint64(h.Size())
		if h.Flags&unwindinfo.UNW_FLAG_CHAININFO == 0 && h.Flags.HasHandler() {
			size += handlerDataWindow
		}
		if m, ok := g.mapping(addr); ok {
			g.spans.add(addr, min(addr+size, m.End))
		}
		if h.Flags&unwindinfo.UNW_FLAG_CHAININFO == 0 {
			return
		}
		v, err := unwindinfo.NewView(b[:n])
		if err != nil {
			return
		}
		var ok bool
		if e, ok = v.Chained(); !ok {
			return
		}
	}
}

// prefetchMemory reads the kept spans, each cut to the readable mappings
// it overlaps, into the stopped process's page cache, and returns them as
// ranges read out of that cache: WriteFile writes them after the process
// has resumed (live.Stopped.Resume). A range ends where its memory stops
// being readable.
func (g *gatherer) prefetchMemory() ([]minidump.MemorySource, error) {
	var rs [][2]uint64
	for _, s := range g.spans.list() {
		for _, m := range g.maps {
			lo, hi := max(s[0], m.Start), min(s[1], m.End)
			if lo < hi && len(m.Perms) > 0 && m.Perms[0] == 'r' {
				rs = append(rs, [2]uint64{lo, hi})
			}
		}
	}
	n, err := g.st.Prefetch(rs)
	if err != nil {
		if errors.Is(err, memory.ErrTargetGone) {
			return nil, err
		}
		g.logf("read the memory kept: %v", err)
	}
	var out []minidump.MemorySource
	for i, r := range rs {
		if n[i] < r[1]-r[0] {
			g.logf("read %#x bytes at %#x: only %#x readable", r[1]-r[0], r[0], n[i])
		}
		if n[i] > 0 {
			out = append(out, minidump.MemorySource{Addr: r[0], Size: n[i], Bytes: g.st.Bytes})
		}
	}
	return out, nil
}

// fullMemory returns every readable mapping, read from mem while the
// file is written. A part that cannot be read (a file mapping beyond the
// end of its file) is written as zeros; a process that died fails the
// write.
func (g *gatherer) fullMemory(mem *procmem.Process) []minidump.MemorySource {
	var out []minidump.MemorySource
	for _, m := range g.maps {
		if len(m.Perms) == 0 || m.Perms[0] != 'r' || m.Path == "[vvar]" || m.Path == "[vsyscall]" || m.Path == "[vvar_vclock]" {
			continue
		}
		out = append(out, minidump.MemorySource{Addr: m.Start, Size: m.End - m.Start, Read: func(p []byte, addr uint64) (int, error) {
			n, err := mem.ReadMemory(p, addr)
			if err == nil {
				return n, nil
			}
			if errors.Is(err, memory.ErrTargetGone) || !processAlive(g.pid) {
				return n, gone(g.pid, err)
			}
			clear(p[n:])
			return len(p), nil
		}})
	}
	return out
}

// recorder is the walker's memory: the stopped process, with every range
// read recorded.
type recorder struct {
	src   *live.Stopped
	spans spanSet
}

var (
	_ unwind.Memory     = (*recorder)(nil)
	_ unwind.ByteSource = (*recorder)(nil)
)

func (r *recorder) ReadMemory(p []byte, addr uint64) (int, error) {
	n, err := r.src.ReadMemory(p, addr)
	if n > 0 {
		r.spans.add(addr, addr+uint64(n))
	}
	return n, err
}

func (r *recorder) Bytes(addr uint64) (uint64, []byte) {
	start, b := r.src.Bytes(addr)
	if len(b) > 0 {
		r.spans.add(start, start+uint64(len(b)))
	}
	return start, b
}

// processAlive reports whether pid is a process that has not exited.
func processAlive(pid int) bool {
	b, err := os.ReadFile(procPath(pid, "stat"))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] != 'Z' && b[i+2] != 'X'
}

// gone is the error of a process that exited during the capture.
func gone(pid int, cause error) error {
	if cause == nil {
		return fmt.Errorf("process %d exited during the capture: %w", pid, memory.ErrTargetGone)
	}
	if errors.Is(cause, memory.ErrTargetGone) {
		return cause
	}
	return fmt.Errorf("process %d exited during the capture: %w: %w", pid, memory.ErrTargetGone, cause)
}

func procPath(pid int, rel string) string {
	return filepath.Join("/proc", strconv.Itoa(pid), rel)
}
