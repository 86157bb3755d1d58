package live

import (
	"sync"
	"unsafe"
)

// The pages of the page cache come from chunks of chunkPages pages that
// chunk maps where it can (see pages_linux.go), else from the Go heap,
// and go back to a free list when a cache is dropped or a fetch falls
// short. A page costs its first touch once per process, not once per
// Stop: a stop reads 64 KiB or so per thread, a dump about 1 MiB.
//
// The free list keeps up to keptPages pages with their memory ("warm").
// Past that, when a cache is dropped, the pages freed longest ago give
// their memory back to the system (release) and wait on a list of their
// own ("cold"), used after the warm ones: a burst of large stops does
// not hold its memory for the life of the process.
const (
	chunkPages = 512  // 2 MiB: an x86-64 huge page
	keptPages  = 4096 // 16 MiB
)

var freePages struct {
	sync.Mutex
	warm   []*[cachePage]byte // last freed at the end
	cold   []*[cachePage]byte // memory released
	chunks map[uintptr]bool   // the addresses of the chunks mapped
}

// getPage returns a page of the cache, with whatever bytes it held.
func getPage() *[cachePage]byte {
	freePages.Lock()
	defer freePages.Unlock()
	for _, l := range []*[]*[cachePage]byte{&freePages.warm, &freePages.cold} {
		if n := len(*l); n > 0 {
			p := (*l)[n-1]
			*l = (*l)[:n-1]
			return p
		}
	}
	c := chunk()
	if c == nil {
		return new([cachePage]byte)
	}
	if freePages.chunks == nil {
		freePages.chunks = map[uintptr]bool{}
	}
	freePages.chunks[uintptr(unsafe.Pointer(c))] = true
	for i := len(c) - 1; i > 0; i-- {
		freePages.warm = append(freePages.warm, &c[i])
	}
	return &c[0]
}

// putPage gives p back.
func putPage(p *[cachePage]byte) {
	freePages.Lock()
	freePages.warm = append(freePages.warm, p)
	freePages.Unlock()
}

// trimPages moves the warm pages past keptPages, those freed longest
// ago, to the cold list, releasing their memory.
func trimPages() {
	freePages.Lock()
	defer freePages.Unlock()
	n := len(freePages.warm) - keptPages
	if n <= 0 {
		return
	}
	old := freePages.warm[:n]
	for _, p := range old {
		if freePages.chunks[uintptr(unsafe.Pointer(p))&^(chunkPages*cachePage-1)] {
			release(p)
		}
	}
	freePages.cold = append(freePages.cold, old...)
	freePages.warm = append(freePages.warm[:0], freePages.warm[n:]...)
}
