package blockcache

import (
	"bytes"
	"io"
	"testing"
)

// countingReader counts the reads that reach it.
type countingReader struct {
	r     io.ReaderAt
	reads int
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	c.reads++
	return c.r.ReadAt(p, off)
}

// TestReadAt reads pieces of a file larger than the cache, some across
// blocks, some past its end, in an order that evicts blocks, and compares
// them with the file; reads of one block come from the cache.
func TestReadAt(t *testing.T) {
	const bs = 64
	data := make([]byte, 9*bs+13)
	for i := range data {
		data[i] = byte(i*7 + i>>8)
	}
	for _, sized := range []bool{false, true} {
		cr := &countingReader{r: bytes.NewReader(data)}
		c := New(cr, bs, 3)
		if sized {
			c = NewSized(cr, int64(len(data)), bs, 3)
		}
		testReadAt(t, c, cr, data)
	}
}

func testReadAt(t *testing.T, c *Reader, cr *countingReader, data []byte) {
	const bs = 64
	offs := []int64{0, 1, bs - 4, bs - 1, 5 * bs, 2*bs + 17, int64(len(data)) - 10, int64(len(data)) - 1, 8 * bs, 3 * bs, bs, 7*bs - 2, int64(len(data)), int64(len(data)) + 5}
	for round := range 3 {
		for _, off := range offs {
			for _, n := range []int{0, 1, 4, 30, bs - 1, bs, 3 * bs} {
				got := make([]byte, n)
				k, err := c.ReadAt(got, off)
				want := data[min(off, int64(len(data))):min(off+int64(n), int64(len(data)))]
				if k != len(want) || !bytes.Equal(got[:k], want) {
					t.Errorf("round %d: ReadAt(%d bytes at %d) = %d bytes, %v; want %d", round, n, off, k, err, len(want))
				}
				if k < n && err == nil {
					t.Errorf("round %d: ReadAt(%d bytes at %d): %d bytes and no error", round, n, off, k)
				}
			}
		}
	}
	before := cr.reads
	for range 100 {
		var b [8]byte
		c.ReadAt(b[:], 3*bs+8)
	}
	if cr.reads-before > 1 {
		t.Errorf("100 reads inside one block reached the file %d times", cr.reads-before)
	}
}
