package unwind

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
)

// Memory reads the address space being unwound: a live process, a dump, an
// image, or the current process.
//
// ReadMemory reads len(p) bytes at addr into p. It returns the number of
// bytes read; when that is less than len(p) it returns a non-nil error,
// [ErrShortRead] or an *[UnmappedError]. It must not retain p.
type Memory interface {
	ReadMemory(p []byte, addr uint64) (n int, err error)
}

// ByteSource is an optional interface of a [Memory] that keeps its bytes
// in Go memory. Bytes returns the n bytes at addr without copying, or
// ok=false when they are not all available. The unwinder reads through
// Bytes when a Memory has it and through ReadMemory otherwise; both must
// give the same bytes. The returned slice must not change while the
// unwinder uses it.
type ByteSource interface {
	Bytes(addr uint64, n int) (b []byte, ok bool)
}

// ErrShortRead is returned by a [Memory] that read fewer bytes than asked.
var ErrShortRead = errors.New("short read")

// UnmappedError reports a read of memory that is not available.
type UnmappedError struct {
	Addr uint64 // first address that could not be read
}

func (e *UnmappedError) Error() string { return fmt.Sprintf("address %#x is not mapped", e.Addr) }

// Is makes errors.Is(err, ErrShortRead) true for an UnmappedError.
func (e *UnmappedError) Is(target error) bool { return target == ErrShortRead }

// Region is a run of bytes at an address, a piece of a [SplicedMemory].
type Region struct {
	Addr uint64
	Data []byte
}

// SplicedMemory is an address space built from regions; where regions
// overlap, the one added last wins (dump memory layered over image bytes).
// It implements [Memory] and [ByteSource]. Adding is not safe for
// concurrent use with reading; reading is.
type SplicedMemory struct {
	regions []Region
}

// Add adds data at addr on top of the existing regions. An empty or
// address-space-overflowing region is ignored.
func (m *SplicedMemory) Add(addr uint64, data []byte) {
	if len(data) == 0 || addr+uint64(len(data)) < addr {
		return
	}
	m.regions = append(m.regions, Region{addr, data})
}

// find returns the topmost region containing addr and the number of bytes
// available from addr in it.
func (m *SplicedMemory) find(addr uint64) (Region, int) {
	for i := len(m.regions) - 1; i >= 0; i-- {
		r := m.regions[i]
		if addr >= r.Addr && addr-r.Addr < uint64(len(r.Data)) {
			return r, len(r.Data) - int(addr-r.Addr)
		}
	}
	return Region{}, 0
}

// Bytes implements [ByteSource]: it succeeds when one region, not hidden by
// a later one, holds all n bytes.
func (m *SplicedMemory) Bytes(addr uint64, n int) ([]byte, bool) {
	r, avail := m.find(addr)
	if avail < n || n < 0 {
		return nil, false
	}
	end := addr + uint64(n)
	for i := len(m.regions) - 1; i >= 0 && m.regions[i].Addr != r.Addr; i-- {
		o := m.regions[i]
		if o.Addr < end && addr < o.Addr+uint64(len(o.Data)) {
			return nil, false // partly covered by a later region
		}
	}
	off := addr - r.Addr
	return r.Data[off : off+uint64(n) : off+uint64(n)], true
}

// ReadMemory implements [Memory].
func (m *SplicedMemory) ReadMemory(p []byte, addr uint64) (int, error) {
	n := 0
	for n < len(p) {
		a := addr + uint64(n)
		if a < addr {
			return n, &UnmappedError{Addr: a}
		}
		r, avail := m.find(a)
		if avail == 0 {
			return n, &UnmappedError{Addr: a}
		}
		// Stop at the start of a later region that overlaps this one.
		limit := avail
		for i := len(m.regions) - 1; i >= 0 && m.regions[i].Addr != r.Addr; i-- {
			o := m.regions[i]
			if o.Addr > a && o.Addr-a < uint64(limit) {
				limit = int(o.Addr - a)
			}
		}
		off := a - r.Addr
		n += copy(p[n:], r.Data[off:off+uint64(limit)])
	}
	return n, nil
}

var (
	_ Memory     = (*SplicedMemory)(nil)
	_ ByteSource = (*SplicedMemory)(nil)
)

// reader is the unwinder's view of a Memory: zero-copy through ByteSource
// when it can, else copies into pooled scratch so that no call allocates.
// The scratch is split into areas so that bytes read for one purpose stay
// valid while others are read.
type reader struct {
	mem     Memory
	src     ByteSource
	scratch *scratch
}

// Scratch areas.
const (
	areaInfo  = iota // the UNWIND_INFO being interpreted
	areaOther        // UNWIND_INFO of other entries (chain and same-function checks)
	areaCode         // instruction bytes
	areaData         // stack values
	numAreas
)

const areaSize = 1024 // ≥ unwindinfo.MaxSize

type scratch [numAreas][areaSize]byte

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func newReader(mem Memory) reader {
	src, _ := mem.(ByteSource)
	return reader{mem: mem, src: src}
}

func (r *reader) release() {
	if r.scratch != nil {
		scratchPool.Put(r.scratch)
		r.scratch = nil
	}
}

// bytes returns n ≤ areaSize bytes at addr, copied into the given scratch
// area unless the Memory is a ByteSource. The slice stays valid until the
// next read into the same area. A short read returns the bytes read and an
// error.
func (r *reader) bytes(area int, addr uint64, n int) ([]byte, error) {
	if r.src != nil {
		if b, ok := r.src.Bytes(addr, n); ok {
			return b, nil
		}
	}
	if r.mem == nil {
		return nil, &UnmappedError{Addr: addr}
	}
	if r.scratch == nil {
		r.scratch = scratchPool.Get().(*scratch)
	}
	b := r.scratch[area][:n]
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

func (r *reader) u64(addr uint64) (uint64, error) {
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
