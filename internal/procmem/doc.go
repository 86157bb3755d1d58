// Package procmem reads the memory of another process (or of this one)
// through the kernel, without stopping it: [Open] returns a [Process],
// which implements memory.Reader.
//
// On Linux it reads with process_vm_readv(2), and falls back to
// /proc/PID/mem when the system call is denied (a seccomp profile that
// blocks it, or a kernel without it). Both need the right to trace the
// process (ptrace access mode "attach": the same user and, under Yama's
// ptrace_scope 1, an ancestor, or CAP_SYS_PTRACE). Elsewhere [Open] fails
// with [ErrUnsupported].
//
// Reads are not atomic: the process keeps running and may change the
// memory while it is copied. Callers that need a consistent view use a
// protocol of their own (the published function-table list has a
// generation counter).
//
// References: process_vm_readv(2), proc(5) "/proc/pid/mem".
package procmem
