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
// picks: BenchmarkStop measured 42–57 µs a thread with them and 50–61
// without, alternating the two builds (bench/README.md). Waiting for the
// stops does not need the signals: wait4 is woken all the same.
//
// quietStops therefore sets SA_NOCLDSTOP on this process's SIGCHLD action
// while stops are being made, and clears it when the last one is done.
// Only the flag changes; the handler (the Go runtime's, or one installed
// by C code) stays. While the flag is set, stopped and continued children
// of this process raise no SIGCHLD either; their exits still do.

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
	users int  // stops in progress
	set   bool // whether quietStops set the flag (and must clear it)
}

// quietStops sets SA_NOCLDSTOP for the duration of a stop and returns the
// function that ends that duration. Concurrent stops share the setting;
// the last one to end clears the flag, unless it was set before the first
// began (then it was not quietStops's to clear).
func quietStops() (done func()) {
	quiet.mu.Lock()
	if quiet.users == 0 {
		quiet.set = setNoCldStop(true)
	}
	quiet.users++
	quiet.mu.Unlock()
	return func() {
		quiet.mu.Lock()
		quiet.users--
		if quiet.users == 0 && quiet.set {
			setNoCldStop(false)
			quiet.set = false
		}
		quiet.mu.Unlock()
	}
}

// setNoCldStop sets or clears SA_NOCLDSTOP in the SIGCHLD action and
// reports whether it changed it. An action that is not a handler (SIG_DFL
// and SIG_IGN, for which the kernel sends no SIGCHLD on stops anyway) and
// one that already is as asked are left alone.
func setNoCldStop(on bool) bool {
	act, err := sigchldAction(nil)
	if err != nil || act.handler == sigDfl || act.handler == sigIgn || (act.flags&saNoCldStop != 0) == on {
		return false
	}
	act.flags ^= saNoCldStop
	_, err = sigchldAction(&act)
	return err == nil
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
