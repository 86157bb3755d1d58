//go:build !linux

package live

// chunk: pages come from the Go heap off Linux (a process cannot be
// stopped there anyway).
func chunk() *[chunkPages][cachePage]byte { return nil }

// release: pages are the Go heap's, which frees them.
func release(p *[cachePage]byte) {}
