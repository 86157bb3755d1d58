package unwind

import (
	"unsafe"

	"github.com/fntable/fntable/unwindinfo"
)

// asmSegments is the largest number of runs of a SplicedMemory that
// step scans; beyond it the Go fast path searches them.
const asmSegments = 8

// The offsets of the RUNTIME_FUNCTION fields that step reads.
const (
	rfBeginAddress = unsafe.Offsetof(unwindinfo.RuntimeFunction{}.BeginAddress)
	rfUnwindData   = unsafe.Offsetof(unwindinfo.RuntimeFunction{}.UnwindData)
)

// step is VirtualUnwind's commonest case in assembly (fast_amd64.s): a
// frame unwound from its body, past the prolog, or from an epilog that
// ends in a return, with version 1 unwind information that is not chained
// and saves integer registers only, code, unwind information and stack
// each in one of at most asmSegments runs of the *SplicedMemory that is
// u.Memory. Every other step, and every step it declines part way, it
// passes on to virtualUnwindGo with the same arguments (a jump, not a
// call); it changes ctx and ptrs only when it takes the step. Being
// VirtualUnwind's body in assembly, it is called from other packages
// without a Go function between: the call and the spills of such a
// wrapper cost about 2 ns a step, a tenth of it. Every differential test goes
// through it, and fast_test.go compares it alone with the Go paths.
//
// It writes the Result's fields as 8-byte results rather than through a
// *Result that would be zeroed first: on the AMD EPYC machines we
// measure on, an 8-byte load from part of a 16-byte store (how Go zeroes
// or copies a struct) is slow to get its data, where one from an 8-byte
// store gets it at once (bench/README.md).
//
//go:noescape
func step(u *Unwinder, ht HandlerType, imageBase, controlPC uint64, fn *unwindinfo.RuntimeFunction, ctx *Context, ptrs *ContextPointers) (res Result, err error)

// splicedMemoryItab is the type word of a Memory holding a
// *SplicedMemory, which step compares with u.Memory's.
var splicedMemoryItab = func() uintptr {
	var m Memory = (*SplicedMemory)(nil)
	return (*[2]uintptr)(unsafe.Pointer(&m))[0]
}()
