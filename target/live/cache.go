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
	readAhead int  // pages a miss fetches, ≥ 1
	frozen    bool // the process runs again: a miss fails with ErrResumed

	// The buffers of one fetch, kept and grown here because fetch, a
	// function value, makes its arguments escape: arrays of
	// maxReadAhead on the stack would be 8 KiB of new heap every fetch.
	// Used with mu held.
	arrays []*[cachePage]byte
	slices [][]byte

	reads, syscalls, fetched, hits atomic.Uint64
}

// page is a cached page: its bytes, or unmapped set.
type page struct {
	data     *[cachePage]byte // nil when unmapped
	unmapped bool
}

// fetchFunc reads the page at addrs[i] into bufs[i], in order, and
// returns how many whole pages it read. When that is fewer than
// len(bufs) it returns the error of the first page not read (a
// *memory.UnmappedError for an unmapped one). It makes one system call,
// whether the pages are consecutive or not.
type fetchFunc func(bufs [][]byte, addrs []uint64) (int, error)

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
	pages := c.pages
	c.pages = nil
	c.mu.Unlock()
	for _, pg := range pages {
		if pg.data != nil {
			putPage(pg.data)
		}
	}
	trimPages()
}

// freeze makes later misses fail with ErrResumed: the process runs again,
// and what was not read while it was stopped is no longer that state.
func (c *pageCache) freeze() {
	c.mu.Lock()
	c.frozen = true
	c.mu.Unlock()
}

// prefetch implements Prefetch: it fetches the pages of rs that are not
// cached, maxReadAhead at a time, then measures each range.
func (c *pageCache) prefetch(rs [][2]uint64) ([]uint64, error) {
	// The pages to fetch, in the ranges' order, each once.
	c.mu.RLock()
	if c.pages == nil {
		c.mu.RUnlock()
		return make([]uint64, len(rs)), &memory.ReadError{Err: ErrClosed}
	}
	var want []uint64
	seen := map[uint64]bool{}
	for _, r := range rs {
		for a := r[0] &^ (cachePage - 1); a < r[1]; a += cachePage {
			if c.pages[a] == nil && !seen[a] {
				seen[a] = true
				want = append(want, a)
			}
			if a+cachePage < a {
				break // the top of the address space
			}
		}
	}
	c.mu.RUnlock()
	for len(want) > 0 {
		n, err := c.fetchAt(want[:min(len(want), maxReadAhead)])
		if err != nil {
			return c.readable(rs), err
		}
		want = want[n:]
	}
	return c.readable(rs), nil
}

// fetchAt fetches the pages at addrs, which are not cached, with one call
// of fetch, and caches them. It returns how many addresses it settled:
// those fetched and, when one was unmapped, that one too; an error other
// than an unmapped page stops it.
func (c *pageCache) fetchAt(addrs []uint64) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fetchLocked(addrs)
}

// fetchLocked is fetchAt with c.mu held: the one place that reads pages
// into the cache, for misses and for prefetches alike.
func (c *pageCache) fetchLocked(addrs []uint64) (int, error) {
	if c.pages == nil {
		return 0, &memory.ReadError{Addr: addrs[0], Err: ErrClosed}
	}
	if c.frozen {
		return 0, &memory.ReadError{Addr: addrs[0], Err: ErrResumed}
	}
	k := len(addrs)
	if len(c.arrays) < k {
		c.arrays = make([]*[cachePage]byte, k)
		c.slices = make([][]byte, k)
	}
	arrays, slices := c.arrays, c.slices
	for i := range k {
		arrays[i] = getPage()
		slices[i] = arrays[i][:]
	}
	c.syscalls.Add(1)
	got, err := c.fetch(slices[:k], addrs)
	if got < 0 || got > k {
		panic(fmt.Sprintf("live: page fetch returned %d of %d pages", got, k))
	}
	for i := range got {
		if c.pages[addrs[i]] != nil {
			// Cached meanwhile (a prefetch chooses its pages under the
			// read lock and fetches under the write lock): the page
			// cached stays, since readers may hold its bytes, and this
			// copy goes back.
			putPage(arrays[i])
			continue
		}
		c.pages[addrs[i]] = &page{data: arrays[i]}
	}
	for i := got; i < k; i++ {
		putPage(arrays[i])
	}
	clear(arrays[:k])
	clear(slices[:k])
	c.fetched.Add(uint64(got))
	if got == k {
		return got, nil
	}
	if _, ok := err.(*memory.UnmappedError); ok {
		if c.pages[addrs[got]] == nil {
			c.pages[addrs[got]] = &page{unmapped: true}
		}
		return got + 1, nil
	}
	if err == nil {
		err = &memory.ReadError{Addr: addrs[got]}
	}
	return got, err
}

// readable returns how many bytes from the start of each range of rs
// the cache holds: up to its end, or to the first page it holds as
// unmapped or does not hold.
func (c *pageCache) readable(rs [][2]uint64) []uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]uint64, len(rs))
	for i, r := range rs {
		out[i] = r[1] - min(r[0], r[1])
		for a := r[0] &^ (cachePage - 1); a < r[1]; a += cachePage {
			if pg := c.pages[a]; pg == nil || pg.unmapped {
				out[i] = max(a, r[0]) - r[0]
				break
			}
			if a+cachePage < a {
				break
			}
		}
	}
	return out
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
			// Fetch at least the pages the rest of the read needs.
			need := (a+uint64(len(p)-n)-1)/cachePage - a/cachePage + 1
			var err error
			if pg, err = c.miss(base, int(min(need, maxReadAhead))); err != nil {
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

// bytes returns the cached page that holds addr, fetching it on a miss,
// and the page's address; nothing when addr is not readable.
func (c *pageCache) bytes(addr uint64) (uint64, []byte) {
	base := addr &^ (cachePage - 1)
	c.mu.RLock()
	pg := c.pages[base]
	c.mu.RUnlock()
	if pg == nil {
		var err error
		if pg, err = c.miss(base, 1); err != nil {
			return 0, nil
		}
	} else {
		c.hits.Add(1)
	}
	if pg.unmapped {
		return 0, nil
	}
	return base, pg.data[:]
}

// miss fetches the page at base and the uncached pages after it, up to
// max(readAhead, need) pages in all, and returns the page at base.
func (c *pageCache) miss(base uint64, need int) (*page, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if pg := c.pages[base]; pg != nil {
		c.hits.Add(1)
		return pg, nil
	}
	var addrs [maxReadAhead]uint64
	k, window := 1, max(c.readAhead, need)
	addrs[0] = base
	for ; k < window; k++ {
		a := base + uint64(k)*cachePage
		if a < base || c.pages[a] != nil {
			break // the top of the address space, or cached already
		}
		addrs[k] = a
	}
	if _, err := c.fetchLocked(addrs[:k]); err != nil && c.pages[base] == nil {
		return nil, err
	}
	return c.pages[base], nil
}
