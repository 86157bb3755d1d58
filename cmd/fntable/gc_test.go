package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// TestDelayFirstGC: the collector runs at startupGCPercent until its
// first cycle, then at the percent it had before; a GOGC in the
// environment is left alone.
func TestDelayFirstGC(t *testing.T) {
	gcPercent := func() int {
		p := debug.SetGCPercent(-1)
		debug.SetGCPercent(p)
		return p
	}
	before := debug.SetGCPercent(150)
	defer debug.SetGCPercent(before)

	t.Setenv("GOGC", "150")
	delayFirstGC()
	if p := gcPercent(); p != 150 {
		t.Fatalf("with GOGC set: percent %d, want it left at 150", p)
	}

	os.Unsetenv("GOGC") // t.Setenv restores it
	delayFirstGC()
	if p := gcPercent(); p != startupGCPercent {
		t.Fatalf("percent %d before the first cycle, want %d", p, startupGCPercent)
	}
	deadline := time.Now().Add(10 * time.Second)
	for gcPercent() != 150 {
		if time.Now().After(deadline) {
			t.Fatalf("percent %d after cycles, want 150 again", gcPercent())
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
}
