package unwind

// asmSegments is the largest number of runs of a SplicedMemory that
// fastStep scans; beyond it the Go fast path searches them.
const asmSegments = 8

// fastStep is the commonest unwind step in assembly (fast_amd64.s): a
// frame unwound from its body, past the prolog, or from an epilog that
// ends in a return, with version 1 unwind information that is not chained
// and saves integer registers only, code, unwind information and stack
// each in one of the n runs at segs. It takes the entry's BeginAddress and
// UnwindData. It changes ctx, and ptrs if it is not nil, only when it
// succeeds, and reports whether it did; res, which must be zero on entry,
// may be changed when it fails, and the step is then left to fastUnwind,
// which does the same in Go and more. Every differential test goes
// through it, and fast_test.go compares it with the Go paths.
//
//go:noescape
func fastStep(segs *segment, n int, ht HandlerType, imageBase, pc uint64, begin, data uint32, ctx *Context, res *Result, ptrs *ContextPointers) bool
