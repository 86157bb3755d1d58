//go:build linux

package live

import (
	"os"
	"os/signal"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sigchldFlags returns the flags of this process's SIGCHLD action.
func sigchldFlags(t *testing.T) uint64 {
	t.Helper()
	act, err := sigchldAction(nil)
	if err != nil {
		t.Fatal(err)
	}
	if act.handler == sigDfl || act.handler == sigIgn {
		t.Fatalf("SIGCHLD has no handler (%d): the Go runtime installs one", act.handler)
	}
	return act.flags
}

// TestQuietStops checks that quietStops sets SA_NOCLDSTOP while any stop
// is in progress, clears it after the last, and leaves a flag it did not
// set as it was.
func TestQuietStops(t *testing.T) {
	orig := sigchldFlags(t)
	if orig&saNoCldStop != 0 {
		t.Fatalf("SA_NOCLDSTOP is set before any stop (flags %#x)", orig)
	}
	done1 := quietStops()
	if sigchldFlags(t)&saNoCldStop == 0 {
		t.Error("SA_NOCLDSTOP is not set during a stop")
	}
	done2 := quietStops()
	done1()
	if sigchldFlags(t)&saNoCldStop == 0 {
		t.Error("SA_NOCLDSTOP was cleared while a second stop was in progress")
	}
	done2()
	if got := sigchldFlags(t); got != orig {
		t.Errorf("after the stops the flags are %#x, want %#x as before", got, orig)
	}

	// Set by someone else before: left set.
	if !setNoCldStop(true) {
		t.Fatal("could not set SA_NOCLDSTOP")
	}
	defer setNoCldStop(false)
	quietStops()()
	if sigchldFlags(t)&saNoCldStop == 0 {
		t.Error("quietStops cleared an SA_NOCLDSTOP it had not set")
	}
}

// TestStopRaisesNoSIGCHLD stops a child of 1+8 threads and counts the
// SIGCHLDs this process gets meanwhile: none, where each thread's
// ptrace-stop raised one before.
func TestStopRaisesNoSIGCHLD(t *testing.T) {
	c := startChild(t, 8)
	ch := make(chan os.Signal, 64)
	signal.Notify(ch, unix.SIGCHLD)
	defer signal.Stop(ch)
	if sigchldFlags(t)&saNoCldStop != 0 {
		t.Fatal("SA_NOCLDSTOP is set before the stop")
	}
	s, err := Stop(c.pid, StopOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Signal delivery to the channel is asynchronous: give it time.
	n := 0
	for deadline := time.After(100 * time.Millisecond); ; {
		select {
		case <-ch:
			n++
			continue
		case <-deadline:
		}
		break
	}
	if n != 0 {
		t.Errorf("the stop raised %d SIGCHLD", n)
	}
	if sigchldFlags(t)&saNoCldStop != 0 {
		t.Error("SA_NOCLDSTOP is still set after the stop")
	}
}
