package unwind

import (
	"unsafe"

	"github.com/fntable/fntable/unwindinfo"
)

// asmSegments is the largest number of runs of a SplicedMemory that
// fastStep scans; beyond it the Go fast path searches them.
const asmSegments = 8

// The offsets of the RUNTIME_FUNCTION fields that fastStep reads.
const (
	rfBeginAddress = unsafe.Offsetof(unwindinfo.RuntimeFunction{}.BeginAddress)
	rfUnwindData   = unsafe.Offsetof(unwindinfo.RuntimeFunction{}.UnwindData)
)

// fastStep is the commonest unwind step in assembly (fast_amd64.s): a
// frame unwound from its body, past the prolog, or from an epilog that
// ends in a return, with version 1 unwind information that is not chained
// and saves integer registers only, code, unwind information and stack
// each in one of at most asmSegments runs of a.sm. It changes a.ctx, and
// a.ptrs if it is not nil, only when it succeeds, and reports whether it
// did; res, which must be zero on entry, may be changed when it fails, and
// the step is then left to fastUnwind, which does the same in Go and more.
// Every differential test goes through it, and fast_test.go compares it
// with the Go paths.
//
//go:noescape
func fastStep(a *stepArgs, res *Result) bool
