// Package blockcache reads an io.ReaderAt through a few cached, aligned
// blocks, for readers that decode a file in many small pieces mostly in
// order (a PE image's function table and unwind information, a
// minidump's records): from the cache, a few hundred reads of the file
// serve a million small ones.
package blockcache

import "io"

// Reader reads r in aligned blocks and keeps the ones it used last. A
// read of a block's size or more goes to r directly. A Reader is not safe
// for concurrent use.
type Reader struct {
	r         io.ReaderAt
	blockSize int64
	blocks    []block
	clock     uint64 // counts uses, for the choice of the block to replace
	size      int64  // the size of r, or -1 if unknown
}

// block is one cached block.
type block struct {
	off  int64  // offset in the file of data; -1 for none
	data []byte // the bytes read: blockSize, fewer where the file ends
	err  error  // why data is short, or nil
	used uint64 // clock at the last use
}

// New returns a Reader of r that keeps n blocks of blockSize bytes, a
// power of 2, allocated at once: the memory a Reader uses is the same
// whatever it reads.
func New(r io.ReaderAt, blockSize, n int) *Reader {
	c := &Reader{r: r, blockSize: int64(blockSize), blocks: make([]block, n), size: -1}
	slab := make([]byte, n*blockSize)
	for i := range c.blocks {
		c.blocks[i].off = -1
		c.blocks[i].data = slab[i*blockSize : i*blockSize : (i+1)*blockSize]
	}
	return c
}

// NewSized is New for a reader of size bytes: the blocks are allocated as
// they are first used, none larger than the part of the file it holds, so
// that a small file costs little.
func NewSized(r io.ReaderAt, size int64, blockSize, n int) *Reader {
	c := &Reader{r: r, blockSize: int64(blockSize), blocks: make([]block, n), size: size}
	for i := range c.blocks {
		c.blocks[i].off = -1
	}
	return c
}

// ReadAt implements io.ReaderAt.
func (c *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || int64(len(p)) >= c.blockSize {
		return c.r.ReadAt(p, off)
	}
	n := 0
	for n < len(p) {
		o := off + int64(n)
		b := c.block(o &^ (c.blockSize - 1))
		i := int(o - b.off)
		if i >= len(b.data) {
			return n, b.err
		}
		n += copy(p[n:], b.data[i:])
	}
	return n, nil
}

// block returns the block at off, reading it if it is not in the cache
// (in place of the least recently used one).
func (c *Reader) block(off int64) *block {
	c.clock++
	victim := &c.blocks[0]
	for i := range c.blocks {
		b := &c.blocks[i]
		if b.off == off {
			b.used = c.clock
			return b
		}
		if b.used < victim.used {
			victim = b
		}
	}
	want := c.blockSize
	if c.size >= 0 {
		want = max(0, min(want, c.size-off))
	}
	if int64(cap(victim.data)) < want {
		victim.data = make([]byte, want)
	}
	n, err := c.r.ReadAt(victim.data[:want], off)
	if int64(n) < c.blockSize && err == nil {
		if c.size >= 0 && off+int64(n) >= c.size {
			err = io.EOF // the file ends in this block
		} else {
			err = io.ErrUnexpectedEOF // a ReaderAt that breaks its contract
		}
	}
	victim.off, victim.data, victim.err, victim.used = off, victim.data[:max(n, 0)], err, c.clock
	return victim
}
