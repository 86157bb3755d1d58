//go:build !amd64

package unwind

import "github.com/fntable/fntable/unwindinfo"

// asmSegments is 0: there is no assembly fast path on this architecture.
const asmSegments = 0

// step is VirtualUnwind's body; on amd64 it is in assembly
// (fast_amd64.s), and takes the commonest steps itself.
func step(u *Unwinder, ht HandlerType, imageBase, controlPC uint64, fn *unwindinfo.RuntimeFunction, ctx *Context, ptrs *ContextPointers) (Result, error) {
	return virtualUnwindGo(u, ht, imageBase, controlPC, fn, ctx, ptrs)
}
