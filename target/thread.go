package target

import "github.com/fntable/fntable/unwind"

// Thread is a thread of a [Threads] target, as it was when the target was
// stopped (a live process) or captured (a dump).
type Thread struct {
	ID    int    // the kernel's thread id (TID); a dump's ThreadId
	Name  string // the thread's name (comm on Linux), or ""
	State string // the scheduler state as /proc shows it ("S (sleeping)"), or ""

	// Err is why this thread's registers cannot be had (it exited while
	// the target was being stopped, it is a zombie, ...), or nil. Such a
	// thread is still listed, so that a walk can say what became of it.
	Err error
}

// Threads is implemented by targets that have threads with registers: a
// stopped live process, a minidump.
type Threads interface {
	Target
	// Threads returns the target's threads, in ascending ID order with the
	// main thread (ID = pid) first when there is one.
	Threads() ([]Thread, error)
	// ThreadContext fills ctx with the registers of thread tid, as
	// GetThreadContext does: ctx.ContextFlags says which groups are wanted
	// (CONTEXT_CONTROL and CONTEXT_INTEGER always come; add
	// CONTEXT_FLOATING_POINT for XMM0–XMM15 and MXCSR) and, on return,
	// which were filled. FsBase and GsBase are filled where the target
	// knows them.
	ThreadContext(tid int, ctx *unwind.Context) error
}
