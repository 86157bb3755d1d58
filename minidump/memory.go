package minidump

import (
	"cmp"
	"container/heap"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/fntable/fntable/internal/binread"
	"github.com/fntable/fntable/memory"
)

const (
	memoryDescriptorSize   = 16 // MINIDUMP_MEMORY_DESCRIPTOR
	memoryDescriptor64Size = 16 // MINIDUMP_MEMORY_DESCRIPTOR64

	// maxCachedSegment is the largest piece of memory that [Memory.Bytes]
	// loads into Go memory; larger pieces are only read through
	// ReadMemory. Minidump ranges are usually a stack (up to a few hundred
	// KiB) or a few pages around an address.
	maxCachedSegment = 4 << 20
)

// MemoryList decodes the MemoryListStream. It returns nil and no error if
// the dump has none. Of a list cut short, the ranges before the cut are
// returned, with the error.
func (f *File) MemoryList() ([]MemoryDescriptor, error) {
	r, n, ok, err := f.listEntries(MemoryListStream, "memory list", memoryDescriptorSize)
	if !ok || n == 0 && err != nil {
		return nil, err
	}
	list := make([]MemoryDescriptor, n)
	for i := range list {
		list[i] = readMemoryDescriptor(&r)
	}
	if err == nil {
		err = formatErr(r.Err(), "read memory list")
	}
	return list, err
}

// MemoryDescriptor64 is MINIDUMP_MEMORY_DESCRIPTOR64, a range of a
// Memory64List. Its bytes follow those of the ranges before it.
type MemoryDescriptor64 struct {
	StartOfMemoryRange uint64 // address of the first byte
	DataSize           uint64 // size in bytes
}

// Memory64List is MINIDUMP_MEMORY64_LIST, the memory of a full-memory
// dump: the bytes of all ranges are stored back to back from BaseRva.
type Memory64List struct {
	BaseRva uint64 // file offset of the bytes of the first range
	Ranges  []MemoryDescriptor64
}

// Memory64List decodes the Memory64ListStream. It returns nil and no error
// if the dump has none.
func (f *File) Memory64List() (*Memory64List, error) {
	data, rva, ok, err := f.streamData(Memory64ListStream)
	if !ok || err != nil {
		return nil, err
	}
	r := binread.New("memory64 list", data, int64(rva))
	n, base := r.U64(), r.U64()
	if err := r.Err(); err != nil {
		return nil, formatErr(err, "read memory64 list")
	}
	if n > uint64(r.Len()/memoryDescriptor64Size) {
		return nil, &FormatError{Off: int64(rva), Msg: fmt.Sprintf("read memory64 list: %d ranges in %d bytes", n, r.Len()), Val: n, Err: ErrTruncated}
	}
	l := &Memory64List{BaseRva: base, Ranges: make([]MemoryDescriptor64, n)}
	for i := range l.Ranges {
		l.Ranges[i] = MemoryDescriptor64{StartOfMemoryRange: r.U64(), DataSize: r.U64()}
	}
	return l, formatErr(r.Err(), "read memory64 list")
}

// MemoryRange is a piece of the dumped address space and where its bytes
// are in the file.
type MemoryRange struct {
	Addr uint64 // address of the first byte
	Size uint64 // size in bytes
	Off  uint64 // file offset of the first byte
}

// Memory is the address space a dump holds: the ranges of its MemoryList
// and Memory64List and its threads' stacks. Where ranges overlap, the one
// listed first wins, MemoryList before Memory64List before the thread
// stacks (Breakpad's RangeMap likewise keeps the first of overlapping
// ranges). Bytes are read from the file when asked for.
//
// Memory has the method set of unwind.Memory and unwind.ByteSource, so an
// unwinder can read through it directly. It is safe for concurrent use
// when the io.ReaderAt given to [NewFile] is, as *os.File is.
type Memory struct {
	r     io.ReaderAt
	segs  []MemoryRange // visible pieces, sorted by address, disjoint
	cache []segCache    // per piece: its bytes, loaded on first use
	hint  atomic.Uint32 // index of the piece found last: reads cluster
	left  atomic.Int64  // bytes the cache may still load, see File.newBudget
}

type segCache struct {
	once sync.Once
	b    []byte // nil if the piece is too large or could not be read
}

// Memory builds the dump's address space. A range whose bytes lie partly
// beyond the end of the file is cut to what the file holds, a range that
// wraps past the end of the address space is dropped, and the first such
// problem is returned as an error together with the usable Memory. The
// error of a memory stream that cannot be decoded in full is returned the
// same way. The thread stacks are those of the threads the thread list
// holds; its own errors are [File.Threads]'s to report. Memory returns an
// empty Memory, not nil, for a dump without memory.
func (f *File) Memory() (*Memory, error) {
	var errs errList
	var srcs []MemoryRange // in priority order
	add := func(addr, size, off uint64, what string) {
		if size == 0 {
			return
		}
		if end := addr + size; end != 0 && end < addr {
			errs.add(&FormatError{Off: int64(off & (1<<63 - 1)), Msg: fmt.Sprintf("%s at %#x: size %#x wraps the address space", what, addr, size)})
			return
		} else if end == 0 {
			// It ends at the top of the address space, whose end is not
			// representable: keep all but the last byte.
			if size--; size == 0 {
				return
			}
		}
		if f.size >= 0 {
			fs := uint64(f.size)
			if off >= fs || size > fs-off {
				errs.add(&FormatError{Off: int64(off & (1<<63 - 1)), Msg: fmt.Sprintf("%s at %#x: %#x bytes at file offset %#x beyond the end of the file", what, addr, size, off), Err: ErrTruncated})
				if off >= fs {
					return
				}
				size = fs - off
			}
		}
		if len(srcs) >= MaxMemoryRanges {
			if len(srcs) == MaxMemoryRanges {
				errs.add(&FormatError{Msg: fmt.Sprintf("more than %d memory ranges", MaxMemoryRanges)})
			}
			return
		}
		srcs = append(srcs, MemoryRange{addr, size, off})
	}

	list, err := f.MemoryList()
	if err != nil {
		errs.add(err)
	}
	for _, d := range list {
		add(d.StartOfMemoryRange, uint64(d.Memory.DataSize), uint64(d.Memory.Rva), "memory range")
	}
	l64, err := f.Memory64List()
	if err != nil {
		errs.add(err)
	}
	if l64 != nil {
		off := l64.BaseRva
		for _, d := range l64.Ranges {
			if off+d.DataSize < off {
				errs.add(&FormatError{Off: int64(off & (1<<63 - 1)), Msg: "memory64 list: file offsets overflow", Val: d.DataSize})
				break
			}
			add(d.StartOfMemoryRange, d.DataSize, off, "memory64 range")
			off += d.DataSize
		}
	}
	// A thread list that cannot be decoded in full is File.Threads's
	// error to report, not the memory's: the stacks are those of the
	// threads it holds.
	threads, _ := f.threadList()
	for _, t := range threads {
		add(t.Stack.StartOfMemoryRange, uint64(t.Stack.Memory.DataSize), uint64(t.Stack.Memory.Rva), "thread stack")
	}

	m := &Memory{r: f.r}
	m.left.Store(f.newBudget().left)
	m.segs = flatten(srcs)
	m.cache = make([]segCache, len(m.segs))
	return m, errs.err()
}

// flatten returns the visible pieces of ranges given in priority order
// (the first wins where they overlap), sorted by address and disjoint.
// It sweeps the sorted range boundaries with a heap of the ranges that
// cover the current point, ordered by priority: O(n log n).
func flatten(srcs []MemoryRange) []MemoryRange {
	type item struct {
		MemoryRange
		prio int
	}
	items := make([]item, len(srcs))
	bounds := make([]uint64, 0, 2*len(srcs))
	for i, r := range srcs {
		items[i] = item{r, i}
		bounds = append(bounds, r.Addr, r.Addr+r.Size)
	}
	slices.SortStableFunc(items, func(a, b item) int { return cmp.Compare(a.Addr, b.Addr) })
	slices.Sort(bounds)
	bounds = slices.Compact(bounds)

	var out []MemoryRange
	var h prioHeap[item]
	h.less = func(a, b item) bool { return a.prio < b.prio }
	next := 0
	last := -1 // prio of the range that made out's last piece
	for i := 0; i+1 < len(bounds); i++ {
		lo, hi := bounds[i], bounds[i+1]
		for next < len(items) && items[next].Addr == lo {
			heap.Push(&h, items[next])
			next++
		}
		for h.Len() > 0 && h.s[0].Addr+h.s[0].Size <= lo {
			heap.Pop(&h)
		}
		if h.Len() == 0 {
			last = -1
			continue
		}
		top := h.s[0]
		piece := MemoryRange{Addr: lo, Size: hi - lo, Off: top.Off + (lo - top.Addr)}
		if n := len(out); n > 0 && last == top.prio && out[n-1].Addr+out[n-1].Size == lo {
			out[n-1].Size += piece.Size
		} else {
			out = append(out, piece)
		}
		last = top.prio
	}
	return out
}

// prioHeap is a container/heap of values ordered by less.
type prioHeap[T any] struct {
	s    []T
	less func(a, b T) bool
}

func (h *prioHeap[T]) Len() int           { return len(h.s) }
func (h *prioHeap[T]) Less(i, j int) bool { return h.less(h.s[i], h.s[j]) }
func (h *prioHeap[T]) Swap(i, j int)      { h.s[i], h.s[j] = h.s[j], h.s[i] }
func (h *prioHeap[T]) Push(x any)         { h.s = append(h.s, x.(T)) }
func (h *prioHeap[T]) Pop() any {
	x := h.s[len(h.s)-1]
	h.s = h.s[:len(h.s)-1]
	return x
}

// Ranges returns the visible pieces of the address space, sorted by
// address and disjoint; adjacent ranges of the dump stay separate pieces.
func (m *Memory) Ranges() []MemoryRange { return slices.Clone(m.segs) }

// find returns the index of the piece containing addr: the piece found
// last, or a binary search.
func (m *Memory) find(addr uint64) (int, bool) {
	s := m.segs
	if i := int(m.hint.Load()); i < len(s) && addr-s[i].Addr < s[i].Size {
		return i, true
	}
	lo, hi := 0, len(s)
	for lo < hi {
		h := int(uint(lo+hi) >> 1)
		if s[h].Addr+s[h].Size <= addr {
			lo = h + 1
		} else {
			hi = h
		}
	}
	if lo < len(s) && addr >= s[lo].Addr {
		m.hint.Store(uint32(lo))
		return lo, true
	}
	return lo, false
}

// ReadMemory reads len(p) bytes at addr. When fewer can be read, it returns
// how many were and an *[UnmappedError] for the first address the dump
// does not hold, or a *memory.ReadError (which matches [ErrShortRead])
// wrapping the cause when the file could not be read.
func (m *Memory) ReadMemory(p []byte, addr uint64) (int, error) {
	n := 0
	for n < len(p) {
		a := addr + uint64(n)
		if a < addr {
			return n, &UnmappedError{Addr: a}
		}
		i, ok := m.find(a)
		if !ok {
			return n, &UnmappedError{Addr: a}
		}
		s := m.segs[i]
		k := int(min(uint64(len(p)-n), s.Size-(a-s.Addr)))
		if b := m.segBytes(i); b != nil {
			n += copy(p[n:n+k], b[a-s.Addr:])
			continue
		}
		got, err := m.r.ReadAt(p[n:n+k], int64(s.Off+(a-s.Addr)))
		if got > k || got < 0 {
			got = 0
		}
		n += got
		if got < k {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return n, &memory.ReadError{Addr: addr + uint64(n), Err: fmt.Errorf("read dump file: %w", err)}
		}
	}
	return n, nil
}

// Bytes returns, without copying, the bytes of the piece of memory that
// contains addr and the address of its first byte (the ByteSource
// interface of package unwind). Pieces are loaded from the file on first
// use; b is empty when addr is not in the dump, and also when the piece is
// larger than 4 MiB, cannot be read, or would take the pieces loaded
// beyond twice the size of the file, in which case ReadMemory still reads
// it. The caller must not modify b.
func (m *Memory) Bytes(addr uint64) (start uint64, b []byte) {
	i, ok := m.find(addr)
	if !ok {
		return 0, nil
	}
	if b := m.segBytes(i); b != nil {
		return m.segs[i].Addr, b
	}
	return 0, nil
}

// segBytes returns the bytes of piece i, loading them on first use, or nil.
func (m *Memory) segBytes(i int) []byte {
	s := m.segs[i]
	if s.Size > maxCachedSegment {
		return nil
	}
	c := &m.cache[i]
	c.once.Do(func() {
		// Pieces can share their bytes in the file; the budget keeps
		// them from loading more than a few times the file's size.
		if m.left.Add(-int64(s.Size)) < 0 {
			m.left.Add(int64(s.Size))
			return
		}
		// Probe the last byte before allocating: with a file of unknown
		// size the piece may lie past its end.
		var last [1]byte
		if n, _ := m.r.ReadAt(last[:], int64(s.Off+s.Size-1)); n != 1 {
			m.left.Add(int64(s.Size))
			return
		}
		b := make([]byte, s.Size)
		if n, _ := m.r.ReadAt(b, int64(s.Off)); n == len(b) {
			c.b = b
		} else {
			m.left.Add(int64(s.Size))
		}
	})
	return c.b
}
