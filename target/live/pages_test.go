package live

import (
	"testing"
	"unsafe"
)

// TestPages: pages come from aligned chunks (on Linux), can be written
// whole, and a page given back is handed out again before a new one.
func TestPages(t *testing.T) {
	if c := chunk(); c != nil {
		const size = chunkPages * cachePage
		if a := uintptr(unsafe.Pointer(c)); a%size != 0 {
			t.Errorf("chunk at %#x, not aligned to %d bytes", a, size)
		}
		for i := range c {
			c[i][0], c[i][cachePage-1] = byte(i), byte(i>>8)
		}
		for i := range c {
			if c[i][0] != byte(i) || c[i][cachePage-1] != byte(i>>8) {
				t.Fatalf("page %d of the chunk does not keep what was written", i)
			}
		}
	}
	p := getPage()
	for i := range p {
		p[i] = 0xAB
	}
	putPage(p)
	if q := getPage(); q != p {
		t.Errorf("getPage after putPage gave %p, want the page given back (%p)", q, p)
	} else {
		putPage(q)
	}
	got := map[*[cachePage]byte]bool{}
	for range chunkPages + 3 {
		q := getPage()
		if got[q] {
			t.Fatalf("page %p handed out twice", q)
		}
		got[q] = true
	}
	for q := range got {
		putPage(q)
	}
}

// TestTrimPages: past keptPages free pages, a trim releases those freed
// longest ago to the cold list, whose pages read as zeros (chunk pages,
// on Linux) and are handed out after the warm ones.
func TestTrimPages(t *testing.T) {
	const extra = 100
	var pages []*[cachePage]byte
	for range keptPages + extra {
		p := getPage()
		p[0], p[cachePage-1] = 0xCD, 0xCD
		pages = append(pages, p)
	}
	for _, p := range pages {
		putPage(p)
	}
	coldBefore := len(freePages.cold)
	trimPages()
	freePages.Lock()
	warm, cold := len(freePages.warm), len(freePages.cold)
	released := freePages.cold[coldBefore:]
	chunked := freePages.chunks != nil
	freePages.Unlock()
	if warm != keptPages || cold-coldBefore < extra {
		t.Fatalf("after a trim: %d warm pages (want %d), %d more cold (want at least %d)", warm, keptPages, cold-coldBefore, extra)
	}
	if chunked {
		for _, p := range released {
			if p[0] != 0 || p[cachePage-1] != 0 {
				t.Fatal("a released page still holds what was written")
			}
		}
	}
	// Warm pages come first.
	w := getPage()
	for _, p := range released {
		if p == w {
			t.Fatal("a cold page was handed out while warm ones were free")
		}
	}
	putPage(w)
}

// TestFetchCachedPage: a fetch of a page cached meanwhile keeps the
// cached page (readers may hold its bytes) and gives the new copy back.
func TestFetchCachedPage(t *testing.T) {
	fetch := func(bufs [][]byte, addrs []uint64) (int, error) {
		for i, b := range bufs {
			for j := range b {
				b[j] = byte(addrs[i] >> 12)
			}
		}
		return len(bufs), nil
	}
	c := newPageCache(fetch, 1)
	if _, err := c.fetchAt([]uint64{0x1000}); err != nil {
		t.Fatal(err)
	}
	first := c.pages[0x1000].data
	freePages.Lock()
	free := len(freePages.warm) + len(freePages.cold)
	freePages.Unlock()
	if n, err := c.fetchAt([]uint64{0x1000, 0x2000}); n != 2 || err != nil {
		t.Fatalf("fetch: %d, %v", n, err)
	}
	if c.pages[0x1000].data != first {
		t.Error("the cached page was replaced")
	}
	if c.pages[0x2000] == nil || c.pages[0x2000].data[0] != 2 {
		t.Error("the new page was not cached")
	}
	freePages.Lock()
	after := len(freePages.warm) + len(freePages.cold)
	freePages.Unlock()
	if after != free-1 {
		t.Errorf("free pages %d before, %d after: want one fewer (the new page), the copy given back", free, after)
	}
	c.drop()
}
