//go:build !amd64

package unwind

// asmSegments is 0: there is no assembly fast path on this architecture.
const asmSegments = 0

// fastStep is the assembly fast path of amd64; elsewhere fastUnwind does
// its work.
func fastStep(segs *segment, n int, ht HandlerType, imageBase, pc uint64, begin, data uint32, ctx *Context, res *Result, ptrs *ContextPointers) bool {
	return false
}
