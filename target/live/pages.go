package live

import "sync"

// The pages of the page cache come from chunks of chunkPages pages that
// chunk maps where it can (see pages_linux.go), else from the Go heap,
// and go back to a free list when a cache is dropped or a fetch falls
// short. A page costs its first touch once per process, not once per
// Stop: a stop reads 64 KiB or so per thread, a dump about 1 MiB. The
// list keeps the most pages ever in use at once and never shrinks.
const chunkPages = 512 // 2 MiB: an x86-64 huge page

var freePages struct {
	sync.Mutex
	list []*[cachePage]byte
}

// getPage returns a page of the cache, with whatever bytes it held.
func getPage() *[cachePage]byte {
	freePages.Lock()
	defer freePages.Unlock()
	if n := len(freePages.list); n > 0 {
		p := freePages.list[n-1]
		freePages.list = freePages.list[:n-1]
		return p
	}
	c := chunk()
	if c == nil {
		return new([cachePage]byte)
	}
	for i := len(c) - 1; i > 0; i-- {
		freePages.list = append(freePages.list, &c[i])
	}
	return &c[0]
}

// putPage gives p back.
func putPage(p *[cachePage]byte) {
	freePages.Lock()
	freePages.list = append(freePages.list, p)
	freePages.Unlock()
}
