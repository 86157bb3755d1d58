//go:build linux

package live

import (
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Each thread that a stop interrupts enters a ptrace-stop, and the kernel
// tells the tracer with a SIGCHLD unless the tracer's SIGCHLD action has
// SA_NOCLDSTOP (do_notify_parent_cldstop in kernel/signal.c). The Go
// runtime handles SIGCHLD, so every stopped thread costs this process a
// signal delivery and return, on whichever of its threads the kernel
// picks: alternating the builds before and after, BenchmarkStop took
// 55–58 µs a thread with the signals and 46–55 µs without them
// (bench/README.md). Waiting for the stops does not need the signals:
// wait4 is woken all the same.
//
// quietStops therefore sets SA_NOCLDSTOP on this process's SIGCHLD action
// while stops are being made, and clears it when the last one is done.
// Only the flag changes; the handler (the Go runtime's, or one installed
// by C code) stays. While the flag is set, stopped and continued children
// of this process raise no SIGCHLD either; their exits still do.
//
// Reading and writing an action are two system calls, so a change made
// by another thread in between (signal.Ignore of SIGCHLD, say) would be
// undone. setNoCldStop therefore writes back only over the action it
// last wrote or read, and the window is a few microseconds at the start
// and at the end of stops; StopOptions.KeepSIGCHLD avoids it altogether.

// saNoCldStop is SA_NOCLDSTOP (asm-generic/signal.h; the same on x86),
// and sigDfl and sigIgn the handlers SIG_DFL and SIG_IGN.
const (
	saNoCldStop = 1
	sigDfl      = 0
	sigIgn      = 1
)

// kSigaction is the kernel's struct sigaction for rt_sigaction(2) on
// architectures with SA_RESTORER (amd64, arm64), with an 8-byte mask.
type kSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

var quiet struct {
	mu    sync.Mutex
	users int        // stops in progress
	set   bool       // whether quietStops set the flag (and must clear it)
	act   kSigaction // the action quietStops wrote, when set
}

// quietStops sets SA_NOCLDSTOP for the duration of a stop and returns the
// function that ends that duration. Concurrent stops share the setting;
// the last one to end clears the flag, unless it was set before the first
// began (then it was not quietStops's to clear) or the action has changed
// since quietStops wrote it.
func quietStops() (done func()) {
	quiet.mu.Lock()
	if quiet.users == 0 {
		quiet.act, quiet.set = setNoCldStop(true, nil)
	}
	quiet.users++
	quiet.mu.Unlock()
	return func() {
		quiet.mu.Lock()
		quiet.users--
		if quiet.users == 0 && quiet.set {
			setNoCldStop(false, &quiet.act)
			quiet.set = false
		}
		quiet.mu.Unlock()
	}
}

// setNoCldStop sets or clears SA_NOCLDSTOP in the SIGCHLD action and
// returns the action it wrote, and whether it wrote one. An action that is
// not a handler (SIG_DFL and SIG_IGN, for which the kernel sends no
// SIGCHLD on stops anyway), one that already is as asked, and one that
// differs from *want (when want is not nil) are left alone.
func setNoCldStop(on bool, want *kSigaction) (kSigaction, bool) {
	act, err := sigchldAction(nil)
	if err != nil || act.handler == sigDfl || act.handler == sigIgn || (act.flags&saNoCldStop != 0) == on {
		return act, false
	}
	if want != nil && act != *want {
		return act, false
	}
	act.flags ^= saNoCldStop
	if _, err := sigchldAction(&act); err != nil {
		return act, false
	}
	return act, true
}

// sigchldAction returns this process's SIGCHLD action, after setting it
// to *set if set is not nil.
func sigchldAction(set *kSigaction) (kSigaction, error) {
	var old kSigaction
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(unix.SIGCHLD), uintptr(unsafe.Pointer(set)), uintptr(unsafe.Pointer(&old)), unsafe.Sizeof(old.mask), 0, 0); e != 0 {
		return old, e
	}
	return old, nil
}
