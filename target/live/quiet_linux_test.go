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
	if _, ok := setNoCldStop(true, nil); !ok {
		t.Fatal("could not set SA_NOCLDSTOP")
	}
	quietStops()()
	if sigchldFlags(t)&saNoCldStop == 0 {
		t.Error("quietStops cleared an SA_NOCLDSTOP it had not set")
	}
	setNoCldStop(false, nil)

	// Changed by someone else during the stop: not written over.
	done := quietStops()
	act, _ := sigchldAction(nil)
	changed := act
	changed.mask ^= 1 << (unix.SIGUSR1 - 1)
	if _, err := sigchldAction(&changed); err != nil {
		t.Fatal(err)
	}
	done()
	if got, _ := sigchldAction(nil); got != changed {
		t.Errorf("the action changed during the stop became %+v at its end, want %+v", got, changed)
	}
	if _, err := sigchldAction(&act); err != nil {
		t.Fatal(err)
	}
	setNoCldStop(false, nil)
	if got := sigchldFlags(t); got != orig {
		t.Errorf("after the test the flags are %#x, want %#x", got, orig)
	}
}

// stopCountingSIGCHLD stops a child of 1+workers threads with opts,
// resumes it, and returns how many SIGCHLDs this process got meanwhile
// (signals coalesce, so a stop that raises them gives at least one).
func stopCountingSIGCHLD(t *testing.T, workers int, opts StopOptions) int {
	t.Helper()
	c := startChild(t, workers)
	ch := make(chan os.Signal, 64)
	signal.Notify(ch, unix.SIGCHLD)
	defer signal.Stop(ch)
	s, err := Stop(c.pid, opts)
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
		return n
	}
}

// TestKeepSIGCHLD stops a child with StopOptions.KeepSIGCHLD: the action
// is not touched, and the stop's SIGCHLDs arrive as before.
func TestKeepSIGCHLD(t *testing.T) {
	before, _ := sigchldAction(nil)
	testHookSeize = func(int) {
		if got, _ := sigchldAction(nil); got != before {
			t.Errorf("with KeepSIGCHLD the action changed during the stop: %+v, was %+v", got, before)
		}
	}
	defer func() { testHookSeize = nil }()
	if n := stopCountingSIGCHLD(t, 4, StopOptions{KeepSIGCHLD: true}); n == 0 {
		t.Error("a stop with KeepSIGCHLD raised no SIGCHLD")
	}
}

// TestStopRaisesNoSIGCHLD stops a child of 1+8 threads and counts the
// SIGCHLDs this process gets meanwhile: none, where each thread's
// ptrace-stop raised one before.
func TestStopRaisesNoSIGCHLD(t *testing.T) {
	if sigchldFlags(t)&saNoCldStop != 0 {
		t.Fatal("SA_NOCLDSTOP is set before the stop")
	}
	if n := stopCountingSIGCHLD(t, 8, StopOptions{}); n != 0 {
		t.Errorf("the stop raised %d SIGCHLD", n)
	}
	if sigchldFlags(t)&saNoCldStop != 0 {
		t.Error("SA_NOCLDSTOP is still set after the stop")
	}
}
