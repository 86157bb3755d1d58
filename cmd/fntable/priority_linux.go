package main

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// lowerPriority locks the calling goroutine to its thread and gives the
// thread the lowest scheduling priority (nice 19), so that its work takes
// only CPU time that nothing else wants. The goroutine must not unlock
// the thread: when it ends, the runtime ends the thread with it, and no
// other goroutine runs at that priority.
func lowerPriority() {
	runtime.LockOSThread()
	unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), 19)
}
