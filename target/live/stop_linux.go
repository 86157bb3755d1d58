//go:build linux

package live

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/fntable/fntable/memory"
	"github.com/fntable/fntable/target"
	"github.com/fntable/fntable/unwind"
)

// pfKthread is PF_KTHREAD, the flag of kernel threads in the flags field
// of /proc/PID/stat (include/linux/sched.h).
const pfKthread = 0x00200000

// si_code values of SIGCHLD (include/uapi/asm-generic/siginfo.h).
const (
	cldExited  = 1
	cldKilled  = 2
	cldDumped  = 3
	cldTrapped = 4
	cldStopped = 5
)

// maxScans bounds the scans of /proc/PID/task: a process that keeps
// creating threads faster than they can be stopped is stopped with the
// threads found by then.
const maxScans = 64

// lateStopWait bounds Close's wait for threads that were interrupted but
// not yet seen to stop.
const lateStopWait = 200 * time.Millisecond

// testHookSeize, if not nil, is called on the tracer thread before each
// thread is seized (tests make a thread exit there); testHookSeized after
// the seize and before the interrupt (tests send a signal there).
var testHookSeize, testHookSeized func(tid int)

// Stop stops every thread of process pid and returns the process as a
// [Stopped]; its Close detaches and resumes it.
//
// Each thread is attached with PTRACE_SEIZE and stopped with
// PTRACE_INTERRUPT, which neither sends nor consumes a signal, and Stop
// waits for it to stop (waitpid with __WALL). It scans /proc/PID/task
// again until a scan finds no new thread, so threads created meanwhile
// are stopped too. Threads that exit meanwhile are listed with an Err
// wrapping [ErrThreadGone]; a process that is gone by the end fails with
// [ErrNoProcess] and memory.ErrTargetGone.
//
// Stop needs the right to trace the process (see [PermissionError]) and
// that no one else traces it (see [TracedError]); it refuses zombies
// ([ErrZombie]), kernel threads ([ErrKernelThread]) and the calling
// process itself. When it fails it has detached from whatever it had
// attached, also when it panics.
//
// When the process is a child of the caller and exits during Stop, Stop
// leaves its exit status for the caller's wait. A goroutine of the caller
// that is blocked waiting for such a child (os.Process.Wait) takes the
// ptrace stops of its threads too, as the kernel reports them to any
// waiter in the tracer's process; Stop then finds the threads stopped by
// reading their registers after a few milliseconds without news.
func Stop(pid int, opts StopOptions) (*Stopped, error) {
	max := opts.MaxRestops
	if max <= 0 {
		max = DefaultMaxRestops
	}
	for attempt := 0; ; attempt++ {
		s, err := stop(pid, opts)
		if err != nil || opts.Ready == nil || attempt >= max || opts.Ready(s) {
			if s != nil {
				s.restops = attempt
			}
			return s, err
		}
		if err := s.Close(); err != nil {
			return nil, err
		}
		// Let the process run on: a few scheduler quanta at most.
		nap(time.Duration(min(attempt+1, 20)) * 50 * time.Microsecond)
	}
}

// stop stops the process once.
func stop(pid int, opts StopOptions) (*Stopped, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("stop process %d: invalid pid", pid)
	}
	if pid == os.Getpid() {
		return nil, fmt.Errorf("stop process %d: it is the calling process", pid)
	}
	if err := check(pid, "stop process"); err != nil {
		return nil, err
	}
	proc, err := Open(pid)
	if err != nil {
		return nil, fmt.Errorf("stop process %d: %w: %w", pid, ErrNoProcess, err)
	}
	s := &Stopped{pid: pid, proc: proc, opts: opts, tr: startTracer()}
	s.cache = newPageCache(s.readPages, opts.ReadAhead)
	if !opts.NoSignalHandler && !opts.LazySignalHandler {
		register(s)
	}
	ok := false
	defer func() {
		if !ok {
			// Failed or panicking: detach from what was attached.
			if cerr := s.Close(); cerr != nil {
				s.logf("stop process %d: %v", pid, cerr)
			}
		}
	}()
	quietDone := func() {}
	if !opts.KeepSIGCHLD {
		quietDone = quietStops()
	}
	err = s.tr.do(s.stopAll)
	quietDone()
	if err != nil {
		return nil, err
	}
	if !opts.NoSignalHandler && opts.LazySignalHandler && s.holdsSignal() {
		register(s)
	}
	ok = true
	return s, nil
}

// stopAll seizes and stops every thread. It runs on the tracer thread.
func (s *Stopped) stopAll() error {
	timeout := s.opts.Timeout
	if timeout <= 0 {
		timeout = DefaultStopTimeout
	}
	seen := map[int]bool{}
	for scan := 0; scan < maxScans; scan++ {
		tids, err := listTasks(s.pid)
		if err != nil {
			if scan == 0 {
				return fmt.Errorf("stop process %d: %w: %w: %w", s.pid, ErrNoProcess, memory.ErrTargetGone, err)
			}
			break // the process exited: what was stopped says so
		}
		var pending []*thread
		for _, tid := range tids {
			if seen[tid] {
				continue
			}
			seen[tid] = true
			t, err := s.seize(tid)
			if err != nil {
				return err
			}
			if t.attached && t.Err == nil {
				pending = append(pending, t)
			}
		}
		if len(pending) == 0 {
			break
		}
		s.wait(pending, timeout)
	}
	sortThreads(s.pid, s.threads)
	live := 0
	for _, t := range s.threads {
		if t.Err == nil {
			live++
		} else {
			s.logf("stop process %d: %v", s.pid, t.Err)
		}
	}
	if live == 0 {
		return fmt.Errorf("stop process %d: %w: no thread could be stopped: %w", s.pid, ErrNoProcess, memory.ErrTargetGone)
	}
	return nil
}

// seize adds thread tid to s.threads, attaches to it and asks it to stop.
// A thread that is gone is returned with Err set; an error means the
// process cannot be stopped at all.
func (s *Stopped) seize(tid int) (*thread, error) {
	// The thread's name and state are read when Threads asks for them:
	// a read of its stat costs as much as stopping it.
	t := &thread{Thread: target.Thread{ID: tid}}
	s.threads = append(s.threads, t) // listed at once, so that Close detaches it whatever happens next
	if testHookSeize != nil {
		testHookSeize(tid)
	}
	switch err := unix.PtraceSeize(tid); err {
	case nil:
	case unix.ESRCH:
		t.Err = goneErr(tid, err)
		return t, nil
	case unix.EPERM:
		if tp := tracerOf(s.pid, tid); tp != 0 {
			return nil, &TracedError{Pid: s.pid, TracerPid: tp}
		}
		if st, serr := readStat(s.pid, tid); serr != nil || st.state == 'Z' || st.state == 'X' {
			// It exited, or is a zombie: ptrace refuses exiting tasks.
			t.Err = goneErr(tid, cmp.Or(serr, error(errors.New("thread is a zombie"))))
			return t, nil
		}
		return nil, &PermissionError{Pid: s.pid, PtraceScope: ptraceScope(), Err: err}
	default:
		return nil, fmt.Errorf("stop process %d: seize thread %d: %w", s.pid, tid, err)
	}
	t.attached = true
	if testHookSeized != nil {
		testHookSeized(tid)
	}
	if err := unix.PtraceInterrupt(tid); err != nil {
		// It is attached but exiting: wait reaps it.
		s.logf("stop process %d: interrupt thread %d: %v", s.pid, tid, err)
	}
	return t, nil
}

// wait waits until each thread of ts has stopped or exited, or timeout
// has passed, and reads the registers of those that stopped.
func (s *Stopped) wait(ts []*thread, timeout time.Duration) {
	start := time.Now()
	deadline := start.Add(timeout)
	pause := 10 * time.Microsecond
	for len(ts) > 0 {
		rest := ts[:0]
		for _, t := range ts {
			if !s.reap(t) {
				rest = append(rest, t)
			}
		}
		ts = rest
		if len(ts) == 0 {
			break
		}
		if time.Now().After(deadline) {
			for _, t := range ts {
				t.Err = fmt.Errorf("thread %d: %w after %v", t.ID, ErrNotStopped, timeout)
			}
			return
		}
		if time.Since(start) >= unseenWait {
			// No news for a while: another thread of this process may
			// have taken the stop's wait status (a goroutine blocked in
			// os.Process.Wait for a child gets ptrace stops too). A
			// thread whose registers can be read is in a ptrace stop.
			rest := ts[:0]
			for _, t := range ts {
				if !s.stoppedUnseen(t) {
					rest = append(rest, t)
				}
			}
			ts = rest
		}
		// Sleep between looks, briefly at first (see nap), rather than
		// spin: the threads need a CPU to stop, and a tracer that kept
		// one of a small machine's CPUs busy, yielding, made stops
		// longer (bench/README.md).
		nap(pause)
		pause = min(2*pause, time.Millisecond)
	}
}

// unseenWait is how long wait waits for the threads' wait statuses before
// it also looks for threads stopped whose status went elsewhere.
const unseenWait = 500 * time.Microsecond

// stoppedUnseen reports whether t is in a ptrace stop whose wait status
// someone else collected, and if so reads its registers.
func (s *Stopped) stoppedUnseen(t *thread) bool {
	var regs unix.PtraceRegs
	if unix.PtraceGetRegs(t.ID, &regs) != nil {
		return false // running, or gone: the wait will tell
	}
	t.stopped = true
	regsToContext(&regs, &t.ctx)
	t.inSyscall = int64(regs.Orig_rax) >= 0
	s.logf("stop process %d: thread %d stopped, but its wait status went elsewhere", s.pid, t.ID)
	return true
}

// reap collects the wait status of t, if it has one, and reports whether
// t is settled: stopped (registers read) or gone.
func (s *Stopped) reap(t *thread) bool {
	if t.ID == s.pid {
		// Look first without consuming, so that the exit of a process
		// that is the caller's child stays for the caller's wait.
		var si unix.Siginfo
		err := unix.Waitid(unix.P_PID, t.ID, &si, unix.WEXITED|unix.WSTOPPED|unix.WNOHANG|unix.WNOWAIT|unix.WALL, nil)
		switch {
		case err != nil:
			t.Err, t.attached = goneErr(t.ID, err), false
			return true
		case si.Signo == 0:
			return false // no news
		case si.Code == cldExited || si.Code == cldKilled || si.Code == cldDumped:
			t.Err, t.attached = goneErr(t.ID, nil), false
			return true
		case si.Code != cldTrapped && si.Code != cldStopped:
			return false
		}
	}
	// Other threads are reaped when they exit: their process's exit
	// waits for that.
	var ws unix.WaitStatus
	wpid, err := unix.Wait4(t.ID, &ws, unix.WNOHANG|unix.WALL, nil)
	switch {
	case err != nil:
		t.Err, t.attached = goneErr(t.ID, err), false
		return true
	case wpid == 0:
		return false // no news
	case !ws.Stopped():
		t.Err, t.attached = goneErr(t.ID, nil), false
		return true
	}
	t.stopped = true
	if ws>>16 == 0 {
		// A signal-delivery-stop (no event in the status's third byte;
		// the interrupt's stop and a group-stop carry
		// PTRACE_EVENT_STOP): a signal arrived between seize and
		// interrupt. Deliver it when detaching. (ws.TrapCause() is -1
		// for any signal but SIGTRAP, so it cannot tell this.)
		t.sig = int(ws.StopSignal())
	} else if ws>>16 == unix.PTRACE_EVENT_STOP {
		// The interrupt's stop reports SIGTRAP; a group-stop, the
		// stopping signal: the thread was stopped by job control, and
		// stays stopped after the detach.
		switch ws.StopSignal() {
		case unix.SIGSTOP, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU:
			t.jobStop = true
		}
	}
	var regs unix.PtraceRegs
	if err := unix.PtraceGetRegs(t.ID, &regs); err != nil {
		t.Err = goneErr(t.ID, err)
		return true
	}
	regsToContext(&regs, &t.ctx)
	t.inSyscall = int64(regs.Orig_rax) >= 0
	return true
}

// regsToContext copies a user_regs_struct into ctx.
func regsToContext(r *unix.PtraceRegs, ctx *unwind.Context) {
	ctx.ContextFlags = unwind.CONTEXT_CONTROL | unwind.CONTEXT_INTEGER | unwind.CONTEXT_SEGMENTS
	ctx.Rax, ctx.Rcx, ctx.Rdx, ctx.Rbx = r.Rax, r.Rcx, r.Rdx, r.Rbx
	ctx.Rsp, ctx.Rbp, ctx.Rsi, ctx.Rdi = r.Rsp, r.Rbp, r.Rsi, r.Rdi
	ctx.R8, ctx.R9, ctx.R10, ctx.R11 = r.R8, r.R9, r.R10, r.R11
	ctx.R12, ctx.R13, ctx.R14, ctx.R15 = r.R12, r.R13, r.R14, r.R15
	ctx.Rip = r.Rip
	ctx.EFlags = uint32(r.Eflags)
	ctx.SegCs, ctx.SegDs, ctx.SegEs = uint16(r.Cs), uint16(r.Ds), uint16(r.Es)
	ctx.SegFs, ctx.SegGs, ctx.SegSs = uint16(r.Fs), uint16(r.Gs), uint16(r.Ss)
	ctx.FsBase, ctx.GsBase = r.Fs_base, r.Gs_base
}

// fxsave is user_fxsr_struct (arch/x86/include/asm/user_64.h), what
// PTRACE_GETFPREGS returns: the FXSAVE area.
type fxsave struct {
	Cwd, Swd, Ftw, Fop uint16
	Rip, Rdp           uint64
	Mxcsr, MxcsrMask   uint32
	St                 [32]uint32 // ST0–ST7, 16 bytes each
	Xmm                [64]uint32 // XMM0–XMM15, 16 bytes each
	_                  [24]uint32
}

// fpRegs reads t's XMM registers and MXCSR into t.ctx. It runs on the
// tracer thread. x/sys/unix has no wrapper for PTRACE_GETFPREGS, so it
// makes the system call itself.
func fpRegs(t *thread) error {
	var fx fxsave
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_GETFPREGS, uintptr(t.ID), 0, uintptr(unsafe.Pointer(&fx)), 0, 0)
	if e != 0 {
		if e == unix.ESRCH {
			return fmt.Errorf("%w: %w", memory.ErrTargetGone, e)
		}
		return e
	}
	t.ctx.MxCsr = fx.Mxcsr
	for i := range t.ctx.Xmm {
		for j := range 4 {
			v := fx.Xmm[4*i+j]
			t.ctx.Xmm[i][4*j], t.ctx.Xmm[i][4*j+1], t.ctx.Xmm[i][4*j+2], t.ctx.Xmm[i][4*j+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
		}
	}
	return nil
}

// close detaches from every thread and ends the tracer.
func (s *Stopped) resume() error {
	unregister(s)
	s.mu.Lock()
	tr := s.tr
	s.tr = nil
	s.mu.Unlock()
	s.cache.freeze()
	if tr == nil {
		return nil
	}
	err := tr.do(s.detachAll)
	// The tracer's thread serves the next Stop only if every thread was
	// stopped and detached: one that exited (or was killed) while traced
	// may still wait for its tracer to reap it, and its process's exit
	// waits for that. Ending the tracer's thread makes the kernel release
	// them all.
	clean := err == nil
	for _, t := range s.threads {
		clean = clean && t.detached
	}
	if clean {
		putTracer(tr)
	} else {
		tr.stop()
	}
	return err
}

// detachAll detaches from every attached thread. It runs on the tracer
// thread. A thread that is gone needs nothing; one that never stopped
// cannot be detached with PTRACE_DETACH and is detached by the kernel
// when the tracer thread ends.
func (s *Stopped) detachAll() error {
	// Threads attached but not seen to stop (Stop failed or panicked
	// before it waited, or they were slow): they were interrupted, so
	// they stop soon; wait for them a little, so as to detach them now.
	var late []*thread
	for _, t := range s.threads {
		if t.attached && !t.stopped {
			late = append(late, t)
		}
	}
	if len(late) > 0 {
		s.wait(late, lateStopWait)
	}
	var errs []error
	for _, t := range s.threads {
		if !t.attached || !t.stopped {
			continue
		}
		var err error
		if t.sig != 0 {
			// PTRACE_DETACH with a signal to deliver; x/sys/unix's
			// PtraceDetach always passes 0.
			if _, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_DETACH, uintptr(t.ID), 0, uintptr(t.sig), 0, 0); e != 0 {
				err = e
			}
		} else {
			err = unix.PtraceDetach(t.ID)
		}
		switch err {
		case nil:
			t.attached, t.stopped, t.detached = false, false, true
		case unix.ESRCH:
			// Killed meanwhile. A thread other than the main one waits
			// for its tracer to reap it, and its process's exit waits
			// for that.
			if t.ID != s.pid {
				reapDying(t.ID)
			}
			t.attached, t.stopped = false, false
		default:
			errs = append(errs, fmt.Errorf("detach thread %d of process %d: %w", t.ID, s.pid, err))
		}
	}
	return errors.Join(errs...)
}

// reapDying collects the exit of traced thread tid, which a detach found
// gone: killed, it exits within microseconds, but may not have yet. It
// waits at most dyingWait, polling.
func reapDying(tid int) {
	deadline := time.Now().Add(dyingWait)
	for {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(tid, &ws, unix.WNOHANG|unix.WALL, nil)
		if err != nil || wpid == tid && !ws.Stopped() || time.Now().After(deadline) {
			return
		}
		nap(100 * time.Microsecond)
	}
}

// nap sleeps the calling thread for about d. It does not go through the
// runtime's timers as time.Sleep does: a program with nothing else to do
// wakes from those in whole milliseconds (its poller waits in
// milliseconds), so that time.Sleep of 10 to 200 µs took 1.0–1.2 ms on
// the machines we measure on, and this 0.08–0.3 ms. The waits of a stop
// are that short: each millisecond lost keeps the process stopped.
func nap(d time.Duration) {
	ts := unix.NsecToTimespec(int64(d))
	for unix.Nanosleep(&ts, &ts) == unix.EINTR {
	}
}

// dyingWait bounds how long Close waits for a killed thread to exit.
const dyingWait = 200 * time.Millisecond

// readPages implements fetchFunc with one process_vm_readv, one remote
// iovec per page: the kernel stops at the first one it cannot read.
func (s *Stopped) readPages(bufs [][]byte, addrs []uint64) (int, error) {
	local := make([]unix.Iovec, len(bufs))
	remote := make([]unix.RemoteIovec, len(bufs))
	for i, b := range bufs {
		local[i].Base = &b[0]
		local[i].SetLen(len(b))
		remote[i] = unix.RemoteIovec{Base: uintptr(addrs[i]), Len: len(b)}
	}
	n, err := unix.ProcessVMReadv(s.pid, local, remote, 0)
	got := max(n, 0) / cachePage
	if got == len(bufs) {
		return got, nil
	}
	at := addrs[got]
	switch err {
	case nil, unix.EFAULT:
		return got, &memory.UnmappedError{Addr: at}
	case unix.ESRCH:
		return got, memory.Gone(at, fmt.Errorf("process %d: %w", s.pid, err))
	default:
		return got, &memory.ReadError{Addr: at, Err: fmt.Errorf("process_vm_readv of process %d: %w", s.pid, err)}
	}
}

// tracer is a goroutine locked to its OS thread that makes every ptrace
// request of one Stopped: the kernel takes the thread that attached as
// the tracer and accepts requests from it only.
type tracer struct {
	reqs chan func()
}

// idleTracer keeps the tracer of the last Stopped closed cleanly (one
// that traces nothing any more), so that the next Stop does not start an
// OS thread (about 100 µs); there is at most one.
var idleTracer struct {
	mu sync.Mutex
	tr *tracer
}

// putTracer keeps tr for the next Stop, or ends it if one is kept.
func putTracer(tr *tracer) {
	idleTracer.mu.Lock()
	if idleTracer.tr == nil {
		idleTracer.tr, tr = tr, nil
	}
	idleTracer.mu.Unlock()
	if tr != nil {
		tr.stop()
	}
}

// startTracer returns the idle tracer, or starts one.
func startTracer() *tracer {
	idleTracer.mu.Lock()
	tr := idleTracer.tr
	idleTracer.tr = nil
	idleTracer.mu.Unlock()
	if tr != nil {
		return tr
	}
	return newTracer()
}

// Prepare starts, in the background, the OS thread that the next Stop
// makes its ptrace requests from, so that Stop does not wait for a new
// thread to be created and scheduled: about 0.1 ms on an idle machine,
// and up to milliseconds in a new process on a busy or virtualized one,
// all of it while the process is stopped. A program that is about to
// stop a process calls Prepare first, before its other preparations
// (reading the process's maps, say), which then overlap the thread's
// start. Without it Stop starts the thread itself. Calling it again, or
// while a tracer is idle, does nothing.
func Prepare() {
	idleTracer.mu.Lock()
	defer idleTracer.mu.Unlock()
	if idleTracer.tr == nil {
		idleTracer.tr = newTracer()
	}
}

func newTracer() *tracer {
	t := &tracer{reqs: make(chan func())}
	go t.serve()
	return t
}

// serve runs requests until stop. It never unlocks its thread: when it
// returns the runtime ends the thread, and the kernel then detaches
// anything still traced.
//
// The runtime never ends the main thread, though: a goroutine locked to it
// that returns leaves it parked, still the tracer of whatever it traced,
// so that a traced thread killed meanwhile stays a zombie and its
// process's parent waits for it forever. A tracer that finds itself on
// the main thread therefore starts its loop on a goroutine of its own
// while it holds the main thread (so that the new goroutine cannot run
// there), and lets the main thread go.
func (t *tracer) serve() {
	runtime.LockOSThread()
	if testHookMainThread != nil && testHookMainThread() || unix.Gettid() == unix.Getpid() {
		locked := make(chan struct{})
		go func() {
			runtime.LockOSThread()
			close(locked)
			t.loop()
		}()
		<-locked
		runtime.UnlockOSThread()
		return
	}
	t.loop()
}

func (t *tracer) loop() {
	for f := range t.reqs {
		f()
	}
}

// testHookMainThread, if set, makes serve take the thread it runs on for
// the main thread.
var testHookMainThread func() bool

// do runs f on the tracer thread and returns its error. A panic in f is
// returned as an error, and the tracer goes on serving (Close must still
// be able to detach).
func (t *tracer) do(f func() error) error {
	done := make(chan error, 1)
	t.reqs <- func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("live: internal error on the tracer thread: %v", r)
			}
		}()
		done <- f()
	}
	return <-done
}

// stop ends the tracer. No request may follow.
func (t *tracer) stop() { close(t.reqs) }

// stat is what Stop uses of /proc/PID/task/TID/stat.
type stat struct {
	comm  string // the thread's name, the same as its comm file
	state byte   // R, S, D, Z, ...
	flags uint64 // PF_* flags
}

// readStat reads /proc/PID/task/TID/stat (proc(5)). It reads with plain
// system calls into a stack buffer: it runs once per thread while the
// threads are being stopped, and os.ReadFile costs three times as much.
func readStat(pid, tid int) (stat, error) {
	name := "/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(tid) + "/stat"
	fd, err := unix.Open(name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return stat{}, &os.PathError{Op: "open", Path: name, Err: err}
	}
	var buf [1024]byte // a stat line is about 300 bytes; comm is at most 64
	n, err := unix.Read(fd, buf[:])
	unix.Close(fd)
	if err != nil {
		return stat{}, &os.PathError{Op: "read", Path: name, Err: err}
	}
	st, ok := parseStat(buf[:max(n, 0)])
	if !ok {
		return stat{}, fmt.Errorf("malformed stat of thread %d: %q", tid, buf[:max(n, 0)])
	}
	return st, nil
}

// parseStat parses a stat line (proc(5)): pid (comm) state ppid pgrp
// session tty_nr tpgid flags ... The name may hold spaces and
// parentheses, so it ends at the last ')'. Only the name is copied: a
// stop of 300 threads read 300 lines, and splitting each into a slice of
// its fifty fields cost a few hundred fresh pages in a new process.
func parseStat(b []byte) (stat, bool) {
	i, j := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if i < 0 || j < i {
		return stat{}, false
	}
	// The fields after the name: state is the first, flags the seventh.
	var state, flags []byte
	n := 0
	for f := range bytes.FieldsSeq(b[j+1:]) {
		switch n {
		case 0:
			state = f
		case 6:
			flags = f
		}
		if n++; n == 7 {
			break
		}
	}
	if n < 7 || len(state) != 1 {
		return stat{}, false
	}
	fl, err := strconv.ParseUint(string(flags), 10, 64)
	if err != nil {
		return stat{}, false
	}
	return stat{comm: string(b[i+1 : j]), state: state[0], flags: fl}, true
}

// readStatus returns the fields of /proc/PID/task/TID/status, or nil.
func readStatus(pid, tid int) map[string]string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(tid) + "/status")
	if err != nil {
		return nil
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// tracerOf returns the process tracing thread tid of process pid, or 0.
// The status file's TracerPid is the tracing thread; its Tgid is the
// process.
func tracerOf(pid, tid int) int {
	tp, _ := strconv.Atoi(readStatus(pid, tid)["TracerPid"])
	if tp == 0 {
		return 0
	}
	if tgid, err := strconv.Atoi(readStatus(tp, tp)["Tgid"]); err == nil && tgid != 0 {
		return tgid
	}
	return tp
}

// listTasks returns the thread ids of /proc/PID/task.
func listTasks(pid int) ([]int, error) {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return nil, err
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// anyLiveTask reports whether a thread of pid is not a zombie (a process
// whose main thread has exited while others run).
// Check reports why pid names no process whose memory and threads can be
// read, as [Stop] would, without stopping it: [ErrNoProcess],
// [ErrKernelThread] or [ErrZombie] (wrapped in an error that names the
// process), or nil.
func Check(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("process %d: invalid pid", pid)
	}
	return check(pid, "process")
}

// check is Check, with op ("stop process") before the pid in its errors.
func check(pid int, op string) error {
	st, err := readStat(pid, pid)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("%s %d: %w", op, pid, ErrNoProcess)
	}
	if err != nil {
		return fmt.Errorf("%s %d: %w: %w", op, pid, ErrNoProcess, err)
	}
	if st.flags&pfKthread != 0 {
		return fmt.Errorf("%s %d (%s): %w", op, pid, st.comm, ErrKernelThread)
	}
	if (st.state == 'Z' || st.state == 'X') && !anyLiveTask(pid) {
		return fmt.Errorf("%s %d (%s): %w", op, pid, st.comm, ErrZombie)
	}
	return nil
}

func anyLiveTask(pid int) bool {
	tids, _ := listTasks(pid)
	for _, tid := range tids {
		if st, err := readStat(pid, tid); err == nil && st.state != 'Z' && st.state != 'X' {
			return true
		}
	}
	return false
}

// ptraceScope returns kernel.yama.ptrace_scope, or -1 without Yama.
func ptraceScope() int {
	b, err := os.ReadFile("/proc/sys/kernel/yama/ptrace_scope")
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1
	}
	return n
}

// handles is the registry of open Stopped values whose signal handler is
// on, and the channel the handler receives on while there are any.
var handles struct {
	mu   sync.Mutex
	open map[*Stopped]bool
	ch   chan os.Signal
}

// caughtSignals are the signals whose handler resumes the stopped
// processes before the tool dies.
var caughtSignals = []os.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP}

// holdsSignal reports whether a thread of s holds a signal that only its
// detach delivers: one that arrived between its seize and its interrupt.
func (s *Stopped) holdsSignal() bool {
	for _, t := range s.threads {
		if t.sig != 0 {
			return true
		}
	}
	return false
}

// register adds s to the registry, installing the handler if s is the
// first.
func register(s *Stopped) {
	handles.mu.Lock()
	defer handles.mu.Unlock()
	if handles.open == nil {
		handles.open = map[*Stopped]bool{}
	}
	handles.open[s] = true
	if handles.ch == nil {
		handles.ch = make(chan os.Signal, 1)
		signal.Notify(handles.ch, caughtSignals...)
		go watchSignals(handles.ch)
	}
}

// unregister removes s from the registry, removing the handler if s was
// the last.
func unregister(s *Stopped) {
	handles.mu.Lock()
	defer handles.mu.Unlock()
	if !handles.open[s] {
		return
	}
	delete(handles.open, s)
	if len(handles.open) == 0 && handles.ch != nil {
		signal.Stop(handles.ch)
		close(handles.ch)
		handles.ch = nil
	}
}

// watchSignals is the handler: on a signal it closes every open Stopped,
// then restores the signal's default disposition and raises it again.
// It returns when its channel is closed.
func watchSignals(ch chan os.Signal) {
	for sig := range ch {
		handles.mu.Lock()
		var open []*Stopped
		for s := range handles.open {
			open = append(open, s)
		}
		handles.mu.Unlock()
		for _, s := range open {
			s.logf("caught %v: resuming process %d", sig, s.pid)
			if err := s.Close(); err != nil {
				s.logf("%v", err)
			}
		}
		signal.Reset(sig)
		unix.Kill(os.Getpid(), sig.(syscall.Signal))
		// A signal ignored at start-up stays ignored: carry on.
	}
}

// describe reads t's name and state.
func (s *Stopped) describe(t *thread) {
	t.described = true
	st, err := readStat(s.pid, t.ID)
	if err != nil {
		return
	}
	t.Name = st.comm
	switch {
	case t.jobStop:
		t.State = stateName('T')
	case t.stopped && t.inSyscall:
		t.State = stateName('S')
	case t.stopped:
		t.State = stateName('R')
	default:
		t.State = stateName(st.state)
	}
}
