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
// each in one of at most asmSegments runs of sm. It changes ctx, and
// ptrs if it is not nil, only when it succeeds, and reports whether it
// did (ok) with the fields of the step's Result; when it fails, the step
// is left to fastUnwind, which does the same in Go and more. The fields
// come back as results, not through a *Result, so that no Result is
// zeroed in memory for each step: on the AMD EPYC machines we measure
// on, an 8-byte load from part of a 16-byte store (how Go zeroes or
// copies a struct) is slow to get its data, where one from an 8-byte
// store gets it at once (bench/README.md).
// Every differential test goes through it, and fast_test.go compares it
// with the Go paths.
//
//go:noescape
func fastStep(sm *SplicedMemory, fn *unwindinfo.RuntimeFunction, ctx *Context, ptrs *ContextPointers, imageBase, pc uint64, ht HandlerType) (handler, handlerData, frame uint64, flags StepFlags, ok bool)
