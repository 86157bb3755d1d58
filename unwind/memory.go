package unwind

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/fntable/fntable/memory"
)

// Memory reads the address space being unwound: a live process, a dump, an
// image, or the current process. It is [memory.Reader], the one memory
// interface of the module.
//
// ReadMemory reads len(p) bytes at addr into p. It returns the number of
// bytes read; when that is less than len(p) it returns a non-nil error
// that matches [ErrShortRead]: an *[UnmappedError], a *memory.ReadError,
// or an error wrapping memory.ErrTargetGone. It must not retain p.
type Memory = memory.Reader

// ByteSource is an optional interface of a [Memory] that keeps its bytes
// in Go memory. Bytes returns, without copying, the run of contiguous
// readable bytes that contains addr, and the address of its first byte; b
// is empty when addr is not readable. The unwinder reads through Bytes
// when a Memory has it, and through ReadMemory otherwise; both must give
// the same bytes. The bytes must not change while the unwinder uses them.
type ByteSource interface {
	Bytes(addr uint64) (start uint64, b []byte)
}

// ErrShortRead is returned by a [Memory] that read fewer bytes than asked.
// It is memory.ErrShortRead, the one value for every memory source.
var ErrShortRead = memory.ErrShortRead

// UnmappedError reports a read of memory that is not available. It is
// memory.UnmappedError, the one type for every memory source; it matches
// [ErrShortRead] with errors.Is.
type UnmappedError = memory.UnmappedError

// Region is a run of bytes at an address, a piece of a [SplicedMemory].
type Region struct {
	Addr uint64
	Data []byte
}

// SplicedMemory is an address space built from regions; where regions
// overlap, the one added last wins (dump memory layered over image bytes).
// It implements [Memory] and [ByteSource]; reads are binary searches.
// Adding is not safe for concurrent use with reading; reading is.
type SplicedMemory struct {
	regions []Region  // in the order added
	flat    []segment // the visible pieces, sorted by address, disjoint
}

// segment is a visible piece of a region.
type segment struct {
	start, end uint64 // [start, end)
	data       []byte // the bytes of [start, end)
}

// Add adds data at addr on top of the existing regions. An empty region, or
// one that would wrap past the end of the address space, is ignored.
func (m *SplicedMemory) Add(addr uint64, data []byte) {
	if len(data) == 0 || addr+uint64(len(data)) < addr || addr+uint64(len(data)) == 0 {
		return
	}
	m.regions = append(m.regions, Region{addr, data})
	end := addr + uint64(len(data))
	// Cut the new region out of the visible segments, then insert it.
	i := sort.Search(len(m.flat), func(i int) bool { return m.flat[i].end > addr })
	j := i
	var keep []segment
	for ; j < len(m.flat) && m.flat[j].start < end; j++ {
		s := m.flat[j]
		if s.start < addr {
			keep = append(keep, segment{s.start, addr, s.data[:addr-s.start]})
		}
		if s.end > end {
			keep = append(keep, segment{end, s.end, s.data[end-s.start:]})
		}
	}
	repl := make([]segment, 0, len(keep)+1)
	for _, k := range keep {
		if k.start < addr {
			repl = append(repl, k)
		}
	}
	repl = append(repl, segment{addr, end, data})
	for _, k := range keep {
		if k.start >= end {
			repl = append(repl, k)
		}
	}
	m.flat = append(m.flat[:i], append(repl, m.flat[j:]...)...)
}

// Regions returns the regions in the order they were added.
func (m *SplicedMemory) Regions() []Region { return m.regions }

// Bytes implements [ByteSource].
func (m *SplicedMemory) Bytes(addr uint64) (uint64, []byte) {
	if s := m.segment(addr); s != nil {
		return s.start, s.data
	}
	return 0, nil
}

// segment returns the visible segment that contains addr, or nil.
func (m *SplicedMemory) segment(addr uint64) *segment {
	f := m.flat
	if len(f) <= 4 {
		// A stack and an image or two: a scan beats a search.
		for i := range f {
			if addr-f[i].start < f[i].end-f[i].start {
				return &f[i]
			}
		}
		return nil
	}
	return searchSegment(f, addr)
}

// searchSegment returns the segment of f, sorted and disjoint, that
// contains addr, or nil.
func searchSegment(f []segment, addr uint64) *segment {
	lo, hi := 0, len(f)
	for lo < hi {
		h := int(uint(lo+hi) >> 1)
		if f[h].end <= addr {
			lo = h + 1
		} else {
			hi = h
		}
	}
	if lo == len(f) || addr < f[lo].start {
		return nil
	}
	return &f[lo]
}

// ReadMemory implements [Memory].
func (m *SplicedMemory) ReadMemory(p []byte, addr uint64) (int, error) {
	n := 0
	for n < len(p) {
		a := addr + uint64(n)
		if a < addr {
			return n, &UnmappedError{Addr: a}
		}
		start, b := m.Bytes(a)
		if len(b) == 0 {
			return n, &UnmappedError{Addr: a}
		}
		n += copy(p[n:], b[a-start:])
	}
	return n, nil
}

var (
	_ Memory     = (*SplicedMemory)(nil)
	_ ByteSource = (*SplicedMemory)(nil)
)

// reader is the unwinder's view of a Memory. It reads through ByteSource
// without copying when it can, caching the last run of bytes of each kind
// (code, unwind information, stack) so that most reads are slice
// indexing; otherwise it copies into pooled scratch, so that no call
// allocates.
type reader struct {
	mem     Memory
	src     ByteSource
	sm      *SplicedMemory // src, when it is one: a direct call
	image   run            // the last run read for code or unwind information
	stack   run            // the last run read for stack values
	scratch *scratch
}

// run is a cached run of readable bytes.
type run struct {
	addr uint64
	b    []byte
}

// Areas: what a read is for. Each has its own scratch.
const (
	areaInfo  = iota // the UNWIND_INFO being interpreted
	areaOther        // UNWIND_INFO of other entries (chains, same-function checks)
	areaCode         // instruction bytes
	areaData         // stack values
	numAreas
)

const areaSize = 1024 // ≥ unwindinfo.MaxSize and ≥ maxEpilogBytes

type scratch [numAreas][areaSize]byte

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func newReader(mem Memory) reader {
	r := reader{mem: mem}
	if sm, ok := mem.(*SplicedMemory); ok {
		r.sm = sm // no interface-to-interface assertion on the common path
	} else {
		r.src, _ = mem.(ByteSource)
	}
	return r
}

func (r *reader) release() {
	if r.scratch != nil {
		scratchPool.Put(r.scratch)
		r.scratch = nil
	}
}

// bytes returns the n ≤ areaSize bytes at addr. The slice stays valid until
// the next read in the same area. A short read returns the bytes read and
// an error that wraps ErrShortRead.
func (r *reader) bytes(area int, addr uint64, n int) ([]byte, error) {
	// The slice returned keeps the capacity of the run (and no more: a
	// run's own spare capacity is not memory), so that a caller may
	// extend it within the run. Code and unwind information usually
	// share a run (the image or the JIT's code region), stack values
	// another.
	c := &r.image
	if area == areaData {
		c = &r.stack
	}
	if off := addr - c.addr; off < uint64(len(c.b)) && uint64(n) <= uint64(len(c.b))-off {
		return c.b[off : off+uint64(n) : uint64(len(c.b))], nil
	}
	if start, b := r.run(addr); len(b) > 0 {
		if off := addr - start; uint64(n) <= uint64(len(b))-off {
			*c = run{start, b}
			return b[off : off+uint64(n) : uint64(len(b))], nil
		}
	}
	return r.copyIn(area, addr, n)
}

// run returns the run of bytes containing addr from the ByteSource.
func (r *reader) run(addr uint64) (uint64, []byte) {
	switch {
	case r.sm != nil:
		return r.sm.Bytes(addr)
	case r.src != nil:
		start, b := r.src.Bytes(addr)
		if addr-start >= uint64(len(b)) {
			return 0, nil // a ByteSource that answered for another address
		}
		return start, b
	}
	return 0, nil
}

// copyIn reads through ReadMemory into the scratch of area.
func (r *reader) copyIn(area int, addr uint64, n int) ([]byte, error) {
	if r.mem == nil {
		return nil, fmt.Errorf("read %d bytes at %#x: %w", n, addr, &UnmappedError{Addr: addr})
	}
	if r.scratch == nil {
		r.scratch = scratchPool.Get().(*scratch)
	}
	b := r.scratch[area][:n:n]
	got, err := r.mem.ReadMemory(b, addr)
	if got > n || got < 0 {
		got = 0 // a Memory that lies about its count
	}
	if got < n {
		// Wrap ErrShortRead whatever the Memory said, so that callers can
		// test for it across Memory implementations.
		switch {
		case err == nil || errors.Is(err, ErrShortRead):
			return b[:got], fmt.Errorf("read %d bytes at %#x: %w", n, addr, cmp.Or(err, ErrShortRead))
		default:
			return b[:got], fmt.Errorf("read %d bytes at %#x: %w: %w", n, addr, ErrShortRead, err)
		}
	}
	return b, nil
}

// prefix returns up to n ≤ areaSize bytes at addr: as many as can be read,
// possibly none. Used for instruction bytes, where unreadable code means
// "not an epilog".
func (r *reader) prefix(area int, addr uint64, n int) []byte {
	if b, err := r.bytes(area, addr, n); err == nil {
		return b
	}
	if start, b := r.run(addr); len(b) > 0 && r.mem == nil {
		off := addr - start
		return b[off:min(uint64(len(b)), off+uint64(n))]
	}
	if r.mem == nil || r.scratch == nil {
		return nil
	}
	// Read what can be read, up to the first unreadable byte.
	k := 0
	for k < n {
		if _, err := r.mem.ReadMemory(r.scratch[area][k:k+1], addr+uint64(k)); err != nil {
			break
		}
		k++
	}
	return r.scratch[area][:k]
}

func (r *reader) u64(addr uint64) (uint64, error) {
	if off := addr - r.stack.addr; off < uint64(len(r.stack.b)) && uint64(len(r.stack.b))-off >= 8 {
		return binary.LittleEndian.Uint64(r.stack.b[off:]), nil
	}
	return r.u64Slow(addr)
}

func (r *reader) u64Slow(addr uint64) (uint64, error) {
	b, err := r.bytes(areaData, addr, 8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

func (r *reader) u128(addr uint64) (v [16]byte, err error) {
	b, err := r.bytes(areaData, addr, 16)
	if err != nil {
		return v, err
	}
	copy(v[:], b)
	return v, nil
}
