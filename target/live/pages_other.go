//go:build !linux

package live

// chunk: pages come from the Go heap off Linux (a process cannot be
// stopped there anyway).
func chunk() *[chunkPages][cachePage]byte { return nil }

// release: off Linux there are no chunks, and trimPages releases only
// chunk pages; the Go heap pages of the cold list stay allocated.
func release(p *[cachePage]byte) {}
