package live

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/fntable/fntable/internal/procmem"
	"github.com/fntable/fntable/memory"
	"github.com/fntable/fntable/target"
	"github.com/fntable/fntable/unwind"
)

// These are the errors returned by [Stop] and by the [Stopped] it
// returns, besides those of package memory (reads), a *[PermissionError]
// and a *[TracedError]. Thread.Err values wrap ErrThreadGone or
// ErrNotStopped.
var (
	// ErrUnsupported: this OS has no live targets here. It is the same
	// value that [Open] wraps on such an OS.
	ErrUnsupported = procmem.ErrUnsupported
	// ErrNoProcess: there is no process with that pid (it may have
	// exited before or while it was being stopped; then the error also
	// wraps memory.ErrTargetGone).
	ErrNoProcess = errors.New("no such process")
	// ErrZombie: the process has exited and waits for its parent to
	// reap it; it has no memory or registers left.
	ErrZombie = errors.New("process is a zombie (exited, not yet reaped by its parent)")
	// ErrKernelThread: the pid is a kernel thread, which has no user
	// address space to walk.
	ErrKernelThread = errors.New("process is a kernel thread (no user address space)")
	// ErrThreadGone: the thread exited while the process was being
	// stopped. Errors that wrap it also wrap memory.ErrTargetGone.
	ErrThreadGone = errors.New("thread exited")
	// ErrNotStopped: the thread was attached but did not stop within
	// StopOptions.Timeout (it may be in an uninterruptible sleep).
	ErrNotStopped = errors.New("thread did not stop in time")
	// ErrClosed: the Stopped was closed; the process runs again.
	ErrClosed = errors.New("stopped process was closed")
	// ErrResumed: a read after Resume asked for memory that was not read
	// while the process was stopped.
	ErrResumed = errors.New("memory not read before the process was resumed")
)

// PermissionError reports that the kernel refused to let this process
// trace the target (EPERM from PTRACE_SEIZE). Its message says what the
// kernel requires; Err is the cause (it matches fs.ErrPermission).
type PermissionError struct {
	Pid int // the target
	// PtraceScope is kernel.yama.ptrace_scope
	// (/proc/sys/kernel/yama/ptrace_scope), or -1 when the kernel has no
	// Yama (the file is absent).
	PtraceScope int
	Err         error
}

func (e *PermissionError) Error() string {
	var need string
	switch e.PtraceScope {
	case -1:
		need = "there is no Yama (no /proc/sys/kernel/yama/ptrace_scope): tracing needs the target's uid (and a dumpable target) or CAP_SYS_PTRACE"
	case 0:
		need = "kernel.yama.ptrace_scope is 0 (classic): tracing needs the target's uid (and a dumpable target) or CAP_SYS_PTRACE"
	case 1:
		need = "kernel.yama.ptrace_scope is 1 (restricted): tracing needs the target's uid and to be its ancestor (or named by its prctl(PR_SET_PTRACER)), or CAP_SYS_PTRACE"
	case 2:
		need = "kernel.yama.ptrace_scope is 2 (admin-only): tracing needs CAP_SYS_PTRACE"
	case 3:
		need = "kernel.yama.ptrace_scope is 3 (no attach): no process may trace another until reboot"
	default:
		need = fmt.Sprintf("kernel.yama.ptrace_scope is %d", e.PtraceScope)
	}
	return fmt.Sprintf("stop process %d: permission denied: %s: %v", e.Pid, need, e.Err)
}

// Unwrap returns the cause.
func (e *PermissionError) Unwrap() error { return e.Err }

// TracedError reports that another tracer (a debugger, strace, another
// Stopped) already traces the target, as /proc/PID/status's TracerPid
// says. A process has at most one tracer.
type TracedError struct {
	Pid       int // the target
	TracerPid int // the process tracing it
}

func (e *TracedError) Error() string {
	who := ""
	if e.TracerPid == os.Getpid() {
		who = " (this process)"
	}
	return fmt.Sprintf("stop process %d: already traced by process %d%s", e.Pid, e.TracerPid, who)
}

// Defaults of [StopOptions].
const (
	// DefaultStopTimeout is how long Stop waits for the threads of one
	// scan of /proc/PID/task to stop.
	DefaultStopTimeout = 2 * time.Second
	// DefaultReadAhead is how many pages a cache miss fetches: 4 pages,
	// 16 KiB, the stack of a 64-frame walk of optimized code with room to
	// spare. More costs more than it saves: every page is copied, and a
	// new process touches each for the first time (a page fault).
	DefaultReadAhead = 4
	// maxReadAhead bounds StopOptions.ReadAhead (1 MiB of pages).
	maxReadAhead = 256
)

// StopOptions configures [Stop]. The zero value works.
type StopOptions struct {
	// Timeout bounds the wait for the threads of one scan of
	// /proc/PID/task to stop; 0 means DefaultStopTimeout. Threads that
	// have not stopped by then are listed with ErrNotStopped.
	Timeout time.Duration

	// ReadAhead is how many consecutive pages (4 KiB) a cache miss of
	// ReadMemory fetches in one process_vm_readv, the missing page
	// first (more when the read itself needs more, up to 256); 0 means
	// DefaultReadAhead, 1 fetches only the pages the read needs. Values
	// above 256 are taken as 256. The window stops at a page already
	// cached and, without failing, at the first page that cannot be
	// read.
	ReadAhead int

	// NoSignalHandler leaves SIGINT, SIGTERM and SIGHUP alone. By
	// default, while any Stopped is open the package catches them,
	// closes every open Stopped (so the processes run on), restores the
	// signal's default disposition and raises it again, so the tool
	// dies of the signal as it would have. A program that handles these
	// signals itself sets NoSignalHandler and closes its Stopped values
	// in its handler.
	//
	// When a tracer dies without closing, of any signal (SIGKILL too,
	// which no handler sees) or any other way, the kernel detaches every
	// thread it traces and lets it run on, unless the thread was in a
	// group-stop (a stopped process, which stays stopped as it was); see
	// "Detaching of the tracee" in ptrace(2). What is lost then is a
	// signal that reached a thread between its seize and its interrupt:
	// the thread reports it to the tracer, and only Close delivers it, on
	// detaching.
	NoSignalHandler bool

	// LazySignalHandler installs the handler above only for a stop in
	// which a thread holds such a signal (rare: it has to arrive in the
	// microseconds between two system calls), and otherwise leaves the
	// signals alone. It is for a program that lets SIGINT, SIGTERM and
	// SIGHUP kill it, as a command-line tool does: the kernel resumes the
	// threads, and the program is spared what the first signal.Notify
	// costs, the runtime's signal goroutines and a thread (2 to 3 ms of a
	// new process on a small virtual machine). A signal that reaches the
	// program while the process is being stopped is not caught.
	// NoSignalHandler takes precedence.
	LazySignalHandler bool

	// KeepSIGCHLD leaves the process's SIGCHLD action as it is during the
	// stop. By default SA_NOCLDSTOP is set on it while stops are in
	// progress (see the package doc, "Signals"), which spares a signal
	// delivery for each thread stopped, but for that moment changes
	// process-wide state: a program that changes the SIGCHLD action
	// (signal.Ignore or signal.Reset of SIGCHLD, or C code calling
	// sigaction) while a stop starts or ends may have its change undone.
	KeepSIGCHLD bool

	// Ready, if not nil, says whether the process was stopped at a good
	// moment: for a walker, one when no published function table list is
	// in the middle of a change (functable/remote.Changing). While it
	// says no, Stop resumes the process, lets it run for a moment, and
	// stops it again, up to MaxRestops times; then it returns the
	// process as it is. [Stopped.Restops] tells how many times.
	Ready func(*Stopped) bool

	// MaxRestops bounds the restops Ready asks for; 0 means
	// DefaultMaxRestops.
	MaxRestops int

	// Logf, if not nil, receives diagnostics (threads that exited or did
	// not stop, detach failures, a caught signal). It is called from the
	// goroutine that calls Stop or Close, or from the package's signal
	// goroutine; it must not call back into the Stopped.
	Logf func(format string, args ...any)
}

// DefaultMaxRestops is the number of times Stop stops a process again
// when StopOptions.Ready says it was stopped at a bad moment.
const DefaultMaxRestops = 50

// Restops returns how many times Stop resumed and stopped the process
// again because StopOptions.Ready said no.
func (s *Stopped) Restops() int { return s.restops }

// ReadStats counts the work of a [Stopped]'s ReadMemory.
type ReadStats struct {
	Reads    uint64 // ReadMemory calls
	Syscalls uint64 // process_vm_readv calls, one per cache miss
	Pages    uint64 // pages copied into the cache
	Hits     uint64 // pages served from the cache without a system call
}

// Stopped is a process whose threads are all stopped: a [target.Threads]
// whose memory and registers hold still while it is examined. Make one
// with [Stop]; Close resumes the process.
//
// Registers are read when the threads stop (the general-purpose and
// segment registers and the FS and GS bases), XMM registers on first
// request. Memory is read through a page cache: a miss copies a window
// of pages in one process_vm_readv, so that walking a stack costs a few
// system calls, not one per slot. The cache is dropped by Close.
//
// All ptrace(2) requests come from one goroutine locked to its OS thread
// (the kernel knows the tracer by thread), which Stop starts and Close
// ends; the methods hand requests to it. Should that thread end without
// detaching, the kernel detaches its tracees and they run on; this also
// happens when the tool dies, even of SIGKILL.
//
// A Stopped is safe for concurrent use: reads, Threads and ThreadContext
// may run on any goroutines at once, and Close may run concurrently with
// them (they then fail with ErrClosed).
type Stopped struct {
	pid  int
	proc *Process // modules and files
	opts StopOptions

	restops int // see Restops

	cache pageCache

	mu      sync.Mutex // guards tr and the threads' FP state
	tr      *tracer    // nil once closed
	threads []*thread  // sorted: the main thread first, then by ID

	resumeOnce sync.Once
	resumeErr  error
	closeOnce  sync.Once
	closeErr   error
}

// thread is a thread of a Stopped, as the tracer keeps it.
type thread struct {
	target.Thread
	ctx      unwind.Context // control, integer and segment registers, FS and GS bases; valid when Err == nil
	fp       bool           // ctx's XMM registers and MXCSR have been read
	attached bool           // seized: Close must detach it
	stopped  bool           // in a ptrace-stop
	detached bool           // detached by PTRACE_DETACH while stopped
	sig      int            // signal to deliver when detaching (a signal-delivery-stop)

	inSyscall bool // stopped inside a system call (orig_rax is a call number)
	jobStop   bool // it was in a group-stop (SIGSTOP, SIGTSTP, ...) before the stop
	described bool // Name and State have been read
}

var (
	_ target.Target     = (*Stopped)(nil)
	_ target.Threads    = (*Stopped)(nil)
	_ target.FileOpener = (*Stopped)(nil)
	_ memory.Reader     = (*Stopped)(nil)
	_ unwind.ByteSource = (*Stopped)(nil)
)

// Pid returns the process's id.
func (s *Stopped) Pid() int { return s.pid }

// Process returns the process as an (unstopped) [Process]: its modules,
// files and perf map. Reading memory through it bypasses the cache.
func (s *Stopped) Process() *Process { return s.proc }

// Threads returns the threads of the process, the main thread first,
// then in ascending ID order. Threads that exited while the process was
// being stopped are listed with Err set (wrapping [ErrThreadGone] and
// memory.ErrTargetGone), as are those that did not stop
// ([ErrNotStopped]).
//
// Name is the thread's comm. State is what the thread was doing when it
// was stopped: "S (sleeping)" for a thread stopped inside a system call,
// "R (running)" for one stopped in user code; for a thread that did not
// stop, the state /proc gives. They are read at the first call, not by
// Stop: reading them costs as much as stopping a thread, and a profiler
// may not need them.
func (s *Stopped) Threads() ([]target.Thread, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tr == nil {
		return nil, fmt.Errorf("threads of process %d: %w", s.pid, ErrClosed)
	}
	// Each thread's name is a read of its /proc stat, 50-90 µs in a new
	// process here, most of it in the kernel: a few goroutines read them
	// side by side.
	var todo []*thread
	for _, t := range s.threads {
		if !t.described {
			todo = append(todo, t)
		}
	}
	var wg sync.WaitGroup
	for g := range min(4, len(todo)) {
		wg.Go(func() {
			for i := g; i < len(todo); i += 4 {
				s.describe(todo[i])
			}
		})
	}
	wg.Wait()
	out := make([]target.Thread, len(s.threads))
	for i, t := range s.threads {
		out[i] = t.Thread
	}
	return out, nil
}

// ThreadContext fills ctx with the registers of thread tid, as
// GetThreadContext does: CONTEXT_CONTROL, CONTEXT_INTEGER and
// CONTEXT_SEGMENTS always (with FsBase and GsBase), and XMM0–XMM15 and
// MxCsr when ctx.ContextFlags asks for CONTEXT_FLOATING_POINT. On return
// ctx.ContextFlags says which groups were filled; registers of groups not
// filled are left as they were. A thread listed with Err returns that
// error.
func (s *Stopped) ThreadContext(tid int, ctx *unwind.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tr == nil {
		return fmt.Errorf("thread %d of process %d: %w", tid, s.pid, ErrClosed)
	}
	i, ok := slices.BinarySearchFunc(s.threads[min(1, len(s.threads)):], tid, func(t *thread, tid int) int { return t.ID - tid })
	var t *thread
	switch {
	case len(s.threads) > 0 && s.threads[0].ID == tid:
		t = s.threads[0]
	case ok:
		t = s.threads[1+i]
	default:
		return fmt.Errorf("thread %d of process %d: no such thread", tid, s.pid)
	}
	if t.Err != nil {
		return t.Err
	}
	want := ctx.ContextFlags
	xmm, mxcsr := ctx.Xmm, ctx.MxCsr
	*ctx = t.ctx
	ctx.ContextFlags = unwind.CONTEXT_CONTROL | unwind.CONTEXT_INTEGER | unwind.CONTEXT_SEGMENTS
	ctx.Xmm, ctx.MxCsr = xmm, mxcsr
	if want&unwind.CONTEXT_FLOATING_POINT&^unwind.CONTEXT_AMD64 == 0 {
		return nil
	}
	if !t.fp {
		if err := s.tr.do(func() error { return fpRegs(t) }); err != nil {
			return fmt.Errorf("floating-point registers of thread %d of process %d: %w", tid, s.pid, err)
		}
		t.fp = true
	}
	ctx.Xmm, ctx.MxCsr = t.ctx.Xmm, t.ctx.MxCsr
	ctx.ContextFlags |= unwind.CONTEXT_FLOATING_POINT
	return nil
}

// ReadMemory reads the process's memory through the page cache. A read
// that reaches an unmapped (or unreadable) page returns the bytes before
// it and a *memory.UnmappedError; a read of a process that has exited
// fails with an error matching memory.ErrTargetGone; other failures are
// a *memory.ReadError. All match memory.ErrShortRead. It is safe for
// concurrent use.
func (s *Stopped) ReadMemory(p []byte, addr uint64) (int, error) {
	return s.cache.read(p, addr)
}

// Bytes implements unwind.ByteSource: it returns the cached page that
// holds addr (fetching it, and the pages after it, on a miss) and the
// page's address, or nothing when addr cannot be read. The unwinders read
// through it without copying. The page stays valid, and unchanged, until
// Close.
func (s *Stopped) Bytes(addr uint64) (start uint64, b []byte) { return s.cache.bytes(addr) }

// Stats returns the counts of the reads so far.
func (s *Stopped) Stats() ReadStats { return s.cache.stats() }

// Prefetch reads into the page cache the pages of the ranges [lo, hi) it
// does not hold yet, up to 256 pages a system call whether they are
// consecutive or not, and returns for each range how many bytes from lo
// can be read: hi-lo, or fewer when a page cannot be read. Pages an
// earlier read cached are not read again. An unmapped page ends its
// range; any other failure (memory.ErrTargetGone when the process is
// gone) stops the reads, and the lengths then count what was read. A
// capture prefetches what it keeps, resumes the process and then writes
// it out of the cache.
func (s *Stopped) Prefetch(ranges [][2]uint64) ([]uint64, error) { return s.cache.prefetch(ranges) }

// Modules reads /proc/PID/maps and calls yield for each module (see
// [Process.Modules]).
func (s *Stopped) Modules(yield func(target.Module) bool) error { return s.proc.Modules(yield) }

// OpenModule opens a module's file as the process sees it (see
// [Process.OpenModule]).
func (s *Stopped) OpenModule(m target.Module) (io.ReaderAt, io.Closer, error) {
	return s.proc.OpenModule(m)
}

// Resume detaches from every thread, which resumes the process (a thread
// caught in a signal-delivery stop gets its signal), and ends the tracer
// goroutine, but keeps the page cache: ReadMemory and Bytes go on
// returning the memory as it was read while the process was stopped, and
// a read of anything else fails with ErrResumed (which matches
// memory.ErrShortRead). Threads and ThreadContext fail with ErrClosed.
// It is idempotent: later calls return the first call's result.
func (s *Stopped) Resume() error {
	s.resumeOnce.Do(func() {
		s.resumeErr = s.resume()
	})
	return s.resumeErr
}

// Close resumes the process, as Resume does, and drops the page cache:
// later reads fail with ErrClosed. It is idempotent: later calls return
// the first call's result.
func (s *Stopped) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = s.Resume()
		s.cache.drop()
	})
	return s.closeErr
}

func (s *Stopped) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
	}
}

// sortThreads puts the main thread first, then the others by ID.
func sortThreads(pid int, ts []*thread) {
	slices.SortFunc(ts, func(a, b *thread) int {
		switch {
		case a.ID == b.ID:
			return 0
		case a.ID == pid:
			return -1
		case b.ID == pid:
			return 1
		}
		return a.ID - b.ID
	})
}

// goneErr is the Err of a thread that exited during the stop.
func goneErr(tid int, cause error) error {
	if cause == nil {
		return fmt.Errorf("thread %d: %w: %w", tid, ErrThreadGone, memory.ErrTargetGone)
	}
	return fmt.Errorf("thread %d: %w: %w: %w", tid, ErrThreadGone, memory.ErrTargetGone, cause)
}

// stateNames are the descriptions /proc/PID/status gives the state
// letters of /proc/PID/stat (fs/proc/array.c task_state_array).
var stateNames = map[byte]string{
	'R': "R (running)",
	'S': "S (sleeping)",
	'D': "D (disk sleep)",
	'T': "T (stopped)",
	't': "t (tracing stop)",
	'X': "X (dead)",
	'Z': "Z (zombie)",
	'P': "P (parked)",
	'I': "I (idle)",
}

func stateName(c byte) string {
	if s, ok := stateNames[c]; ok {
		return s
	}
	return string(c)
}
