//go:build !amd64

package unwind

// asmSegments is 0: there is no assembly fast path on this architecture.
const asmSegments = 0

// fastStep is the assembly fast path of amd64; elsewhere fastUnwind does
// its work.
func fastStep(a *stepArgs, res *Result) bool { return false }
