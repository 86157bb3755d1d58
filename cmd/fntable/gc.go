package main

import (
	"os"
	"runtime"
	"runtime/debug"
)

// startupGCPercent is the collector's GOGC until its first cycle ends.
// Most commands allocate a few MiB and end: with the default of 100 the
// first cycle starts at 4 MiB and costs a symbolizing stack walk about a
// tenth of its time (the workers' start and the first touch of their
// memory); at 400 it starts at 16 MiB and most runs end before. Once
// one cycle has run the default applies again, so a command that keeps
// hundreds of MiB live is collected as usual. A GOGC set in the
// environment is left alone.
const startupGCPercent = 400

// delayFirstGC applies startupGCPercent until the first collection.
func delayFirstGC() {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	old := debug.SetGCPercent(startupGCPercent)
	// A cleanup runs once a cycle has found its object unreachable.
	type sentinel struct{ _ *byte }
	runtime.AddCleanup(&sentinel{}, func(old int) { debug.SetGCPercent(old) }, old)
}
