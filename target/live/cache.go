package live

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/fntable/fntable/memory"
)

// cachePage is the unit of the page cache. It is the x86-64 page size;
// process_vm_readv's partial reads stop at iovec boundaries, and each
// cached page is one iovec, so a window stops exactly at the first page
// that cannot be read.
const cachePage = 4096

// pageCache caches the pages of a stopped process. Hits take a read lock;
// a miss takes the write lock and fetches a window of pages with one
// call of fetch. Pages that could not be read because they are not
// mapped are remembered too (the process is stopped, so its mappings
// hold still).
type pageCache struct {
	mu        sync.RWMutex
	pages     map[uint64]*page // by page address; nil once dropped
	fetch     fetchFunc
	readAhead int // pages a miss fetches, ≥ 1

	reads, syscalls, fetched, hits atomic.Uint64
}

// page is a cached page: its bytes, or unmapped set.
type page struct {
	data     []byte // cachePage bytes
	unmapped bool
}

// fetchFunc reads len(bufs) consecutive pages from addr, one per buffer,
// and returns how many whole pages it read. When that is fewer than
// len(bufs) it returns the error of the first page not read (a
// *memory.UnmappedError for an unmapped one). It makes one system call.
type fetchFunc func(bufs [][]byte, addr uint64) (int, error)

func newPageCache(fetch fetchFunc, readAhead int) pageCache {
	switch {
	case readAhead <= 0:
		readAhead = DefaultReadAhead
	case readAhead > maxReadAhead:
		readAhead = maxReadAhead
	}
	return pageCache{pages: map[uint64]*page{}, fetch: fetch, readAhead: readAhead}
}

func (c *pageCache) stats() ReadStats {
	return ReadStats{Reads: c.reads.Load(), Syscalls: c.syscalls.Load(), Pages: c.fetched.Load(), Hits: c.hits.Load()}
}

// drop empties the cache for good: later reads fail with ErrClosed.
func (c *pageCache) drop() {
	c.mu.Lock()
	c.pages = nil
	c.mu.Unlock()
}

// read implements ReadMemory.
func (c *pageCache) read(p []byte, addr uint64) (int, error) {
	c.reads.Add(1)
	n := 0
	for n < len(p) {
		a := addr + uint64(n)
		if a < addr {
			return n, &memory.UnmappedError{Addr: a} // past the top of the address space
		}
		base := a &^ (cachePage - 1)
		c.mu.RLock()
		pg, closed := c.pages[base], c.pages == nil
		c.mu.RUnlock()
		if closed {
			return n, &memory.ReadError{Addr: a, Err: ErrClosed}
		}
		if pg != nil {
			c.hits.Add(1)
		} else {
			var err error
			if pg, err = c.miss(base); err != nil {
				if ue, ok := err.(*memory.UnmappedError); ok && ue.Addr < a {
					err = &memory.UnmappedError{Addr: a}
				}
				return n, err
			}
		}
		if pg.unmapped {
			return n, &memory.UnmappedError{Addr: a}
		}
		n += copy(p[n:], pg.data[a-base:])
	}
	return n, nil
}

// miss fetches the page at base and up to readAhead-1 uncached pages
// after it, and returns the page at base.
func (c *pageCache) miss(base uint64) (*page, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pages == nil {
		return nil, &memory.ReadError{Addr: base, Err: ErrClosed}
	}
	if pg := c.pages[base]; pg != nil {
		c.hits.Add(1)
		return pg, nil
	}
	k := 1
	for ; k < c.readAhead; k++ {
		a := base + uint64(k)*cachePage
		if a < base || c.pages[a] != nil {
			break // the top of the address space, or cached already
		}
	}
	slab := make([]byte, k*cachePage)
	bufs := make([][]byte, k)
	for i := range bufs {
		bufs[i] = slab[i*cachePage : (i+1)*cachePage : (i+1)*cachePage]
	}
	c.syscalls.Add(1)
	got, err := c.fetch(bufs, base)
	if got < 0 || got > k {
		panic(fmt.Sprintf("live: page fetch returned %d of %d pages", got, k))
	}
	for i := range got {
		c.pages[base+uint64(i)*cachePage] = &page{data: bufs[i]}
	}
	c.fetched.Add(uint64(got))
	if got > 0 {
		return c.pages[base], nil
	}
	if _, ok := err.(*memory.UnmappedError); ok {
		pg := &page{unmapped: true}
		c.pages[base] = pg
		return pg, nil
	}
	if err == nil {
		err = &memory.ReadError{Addr: base}
	}
	return nil, err
}
