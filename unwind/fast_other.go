//go:build !amd64

package unwind

import "github.com/fntable/fntable/unwindinfo"

// asmSegments is 0: there is no assembly fast path on this architecture.
const asmSegments = 0

// fastStep is the assembly fast path of amd64; elsewhere fastUnwind does
// its work.
func fastStep(sm *SplicedMemory, fn *unwindinfo.RuntimeFunction, ctx *Context, ptrs *ContextPointers, imageBase, pc uint64, ht HandlerType) (handler, handlerData, frame uint64, flags StepFlags, ok bool) {
	return 0, 0, 0, 0, false
}
