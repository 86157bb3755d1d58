// Package live makes running Linux processes targets.
//
// [Open] returns a [Process], a [target.Target] whose memory is read with
// process_vm_readv(2) (or /proc/PID/mem) without stopping the process,
// and whose modules come from /proc/PID/maps.
//
// [Stop] stops every thread of a process with ptrace(2) and returns a
// [Stopped], a [target.Threads]: the threads with their names, states and
// registers, and memory that holds still while a walk reads it, served
// from a page cache that fetches several pages per system call
// ([Stopped.Prefetch] fills it with whole ranges ahead of their reads).
// The cache's pages come from 2 MiB chunks mapped outside the Go heap
// and advised for transparent huge pages, and are reused by later
// stops: a new process pays one page fault for a chunk where the kernel
// grants the huge page, not one per page (the free pages past 16 MiB
// are given back to the system when a cache is dropped).
// Close resumes the process; [Stopped.Resume] resumes it too but keeps
// the cache, so that what was read while it was stopped can be used
// after it runs again, as a minidump capture writes the memory it
// kept. Stop and Close always leave the process running
// and untraced: after errors, after panics, and, by default, when the
// tool gets SIGINT, SIGTERM or SIGHUP (see [StopOptions]).
//
// # Signals
//
// While a stop is being made, the calling process's SIGCHLD action has
// SA_NOCLDSTOP set (its handler, the Go runtime's or another, stays): the
// kernel would otherwise send a SIGCHLD for each thread the stop
// interrupts, a signal delivery per thread. The flag is cleared when the
// last stop in progress is done (unless it was set before, or the action
// was changed meanwhile). Meanwhile, children of the calling process that
// stop or continue raise no SIGCHLD either; their exits still do, and
// wait(2) sees the stops as always. A program that changes its SIGCHLD
// action (signal.Ignore of SIGCHLD, or C code) at the moment a stop
// starts may have the change undone; [StopOptions.KeepSIGCHLD] leaves
// the action alone.
//
// # Goroutines
//
// Each Stopped has one goroutine locked to its OS thread, the tracer: the
// kernel accepts ptrace requests for a tracee only from the thread that
// attached it, so every request (seize, interrupt, wait, registers,
// detach) is made there and the other methods hand their requests to it
// over a channel. Close ends it, or keeps its thread idle for the next
// Stop; [Prepare] starts one ahead of a Stop, so that the thread's
// creation is not part of the time the process stays stopped. The waits
// of a stop sleep on the tracer thread itself (nanosleep), not on the
// runtime's timers, which wake an otherwise idle program in whole
// milliseconds. When any Stopped is open, a package goroutine waits for
// the signals above. Process and Stopped are safe for
// concurrent use (see their docs for Close).
//
// Module files are opened as the process sees them, through
// /proc/PID/root, so a process in a container or one whose file was
// deleted or replaced after it was mapped is still symbolized from the
// right bytes.
//
// On other operating systems Open and Stop fail with [ErrUnsupported].
//
// References: ptrace(2) ("PTRACE_SEIZE", "PTRACE_INTERRUPT", "Attaching
// and detaching"), process_vm_readv(2), proc_pid_stat(5),
// proc_pid_status(5), Documentation/admin-guide/LSM/Yama.rst.
package live
