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
