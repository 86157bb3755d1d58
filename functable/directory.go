package functable

import (
	"slices"
	"sync/atomic"
	"unsafe"

	"github.com/fntable/fntable/unwindinfo"
)

// The directory answers lookups. It cuts the address space into chunks of
// 16 KiB; each chunk has a slot that points to the list of the tables
// whose ranges intersect the chunk, sorted by start. A lookup loads the
// slot of its PC's chunk and searches that short list: its cost does not
// grow with the number of tables, only with the number of tables that
// share one chunk.
//
// Slots live in pages of 4096 (64 MiB of address space), created when a
// table first needs one and dropped when their last table goes; the
// directory's top level is the sorted list of pages.
//
// Lookups take no lock and never wait: every list and every top level is
// immutable once stored, and a writer replaces a slot's list (or the top
// level) with one atomic store (read-copy-update, one chunk at a time).
// A lookup reads one slot, so it sees its chunk either before or after a
// change; the garbage collector keeps a replaced list alive for as long
// as a lookup still reads it. Writers are serialised by the registry's
// mutex.
//
// Tables may span many chunks (up to 4 GiB, 262,144 chunks): such a table
// is in the list of every chunk it touches, and the chunks it covers
// entirely share one list, allocated once.

const (
	chunkShift = 14 // a chunk is 16 KiB
	chunkSize  = 1 << chunkShift
	pageBits   = 12 // chunks per page: 4096
	pageMask   = 1<<pageBits - 1
	pageShift  = chunkShift + pageBits // a page covers 64 MiB
)

// dent is a table in a chunk's list: where it starts and, for a plain
// static table (Table.plain), its entries, so that a lookup searches them
// without loading the Table. A lookup needs no end: the entries tell
// whether a PC is past the last of them.
type dent struct {
	min uint64
	t   *Table
	fns *unwindinfo.RuntimeFunction // plain tables: the first entry; otherwise nil
	n   int                         // plain tables: the number of entries
}

func newDent(s span) dent {
	d := dent{min: s.min, t: s.t}
	if t := s.t; t.plain {
		d.fns, d.n = &t.entries[0], len(t.entries)
	}
	return d
}

// A list is one allocation of n+1 dents: a header whose min is n, then
// the n dents, sorted by min. A slot points to the header; lists are
// never modified once stored.
type list = dent

// spansOf returns the dents of the list h.
func spansOf(h *list) []dent {
	return unsafe.Slice(h, h.min+1)[1:]
}

// newList returns a list of n dents to fill.
func newList(n int) (*list, []dent) {
	l := make([]dent, n+1)
	l[0].min = uint64(n)
	return &l[0], l[1:]
}

// page holds the slots of 4096 consecutive chunks.
type page struct {
	slots [1 << pageBits]atomic.Pointer[list]
	used  int // slots in use; read and written by writers only
}

// topEntry is a page and the number of its first address >> pageShift.
type topEntry struct {
	key uint64
	pg  *page
}

// directory is the lookup structure of a Registry.
type directory struct {
	// top points to a header whose key is the number n of pages, followed
	// by the n pages sorted by key (one allocation, immutable once
	// stored).
	top atomic.Pointer[topEntry]
}

var noPages = new(topEntry)

func (d *directory) init() { d.top.Store(noPages) }

// pages returns the pages of the top level h.
func pages(h *topEntry) []topEntry { return unsafe.Slice(h, h.key+1)[1:] }

// storePages replaces the top level with a copy of ents.
func (d *directory) storePages(ents []topEntry) {
	if len(ents) == 0 {
		d.top.Store(noPages)
		return
	}
	n := make([]topEntry, len(ents)+1)
	n[0].key = uint64(len(ents))
	copy(n[1:], ents)
	d.top.Store(&n[0])
}

// lookup returns the dent of the last table that starts at or before pc
// in pc's chunk, or nil: the only table whose range may contain pc. If
// that table is plain, it also returns its entry that contains pc, or
// nil, and the base of its RVAs.
//
// It indexes the top level, the list and the entries with pointer
// arithmetic rather than through slices: their headers give the lengths,
// and slices would add checks that cost as much as the searches. It is
// one function so that a lookup makes one call.
func (d *directory) lookup(pc uint64) (*dent, *unwindinfo.RuntimeFunction, uint64) {
	h := d.top.Load()
	k := pc >> pageShift
	// The last page with key <= k (the first if none).
	n := int(h.key)
	if n == 0 {
		return nil, nil, 0
	}
	e := topAt(h, 1)
	for n > 1 {
		half := n >> 1
		if m := topAt(e, half); m.key <= k {
			e = m
		}
		n -= half
	}
	if e.key != k {
		return nil, nil, 0
	}
	l := e.pg.slots[(pc>>chunkShift)&pageMask].Load()
	if l == nil {
		return nil, nil, 0
	}
	// The last dent with min <= pc (the first if none); lists are never
	// empty.
	n = int(l.min)
	t := dentAt(l, 1)
	for n > 1 {
		half := n >> 1
		if m := dentAt(t, half); m.min <= pc {
			t = m
		}
		n -= half
	}
	if pc < t.min {
		return nil, nil, 0
	}
	if t.fns == nil {
		return t, nil, 0
	}
	// A plain table: the last entry whose BeginAddress is <= pc's RVA,
	// if its EndAddress is above it. The first entry starts the table's
	// range, so the base is min minus its BeginAddress.
	f, n := t.fns, t.n
	base := t.min - uint64(f.BeginAddress)
	if pc-base > 0xffffffff {
		return t, nil, 0
	}
	rva := uint32(pc - base)
	// Past the last entry, which ends the range: a miss, without a search.
	if rva >= fnAt(f, n-1).EndAddress {
		return t, nil, 0
	}
	for n > 1 {
		half := n >> 1
		if m := fnAt(f, half); m.BeginAddress <= rva {
			f = m
		}
		n -= half
	}
	if rva >= f.EndAddress {
		return t, nil, 0
	}
	return t, f, base
}

// topAt returns the entry i places after e in its allocation.
func topAt(e *topEntry, i int) *topEntry {
	return (*topEntry)(unsafe.Add(unsafe.Pointer(e), uintptr(i)*unsafe.Sizeof(topEntry{})))
}

// fnAt returns the entry i places after f in its array.
func fnAt(f *unwindinfo.RuntimeFunction, i int) *unwindinfo.RuntimeFunction {
	return (*unwindinfo.RuntimeFunction)(unsafe.Add(unsafe.Pointer(f), uintptr(i)*unsafe.Sizeof(*f)))
}

// dentAt returns the dent i places after d in its allocation.
func dentAt(d *dent, i int) *dent {
	return (*dent)(unsafe.Add(unsafe.Pointer(d), uintptr(i)*unsafe.Sizeof(dent{})))
}

// pageIndex returns the index in ents of the first entry with key >= k.
func pageIndex(ents []topEntry, k uint64) int {
	lo, hi := 0, len(ents)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if ents[m].key < k {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// page returns the page of key k, creating it if it does not exist.
func (d *directory) page(k uint64) *page {
	ents := pages(d.top.Load())
	i := pageIndex(ents, k)
	if i < len(ents) && ents[i].key == k {
		return ents[i].pg
	}
	pg := new(page)
	d.storePages(slices.Insert(slices.Clip(ents), i, topEntry{k, pg}))
	return pg
}

// lookupPage returns the page of key k, or nil.
func (d *directory) lookupPage(k uint64) *page {
	ents := pages(d.top.Load())
	if i := pageIndex(ents, k); i < len(ents) && ents[i].key == k {
		return ents[i].pg
	}
	return nil
}

// dropPage removes the page of key k.
func (d *directory) dropPage(k uint64) {
	ents := pages(d.top.Load())
	i := pageIndex(ents, k)
	if i == len(ents) || ents[i].key != k {
		return
	}
	d.storePages(slices.Delete(slices.Clone(ents), i, i+1))
}

// chunks calls f for each chunk that [lo, hi) intersects, with its page,
// the page's key and the chunk's number, page by page; pages that do not
// exist are skipped unless create. hi > lo.
func (d *directory) chunks(lo, hi uint64, create bool, f func(pg *page, key uint64, c uint64)) {
	first, last := lo>>chunkShift, (hi-1)>>chunkShift
	for c := first; ; {
		key := c >> pageBits
		end := min(last, c|pageMask)
		var pg *page
		if create {
			pg = d.page(key)
		} else {
			pg = d.lookupPage(key)
		}
		if pg != nil {
			for ; c <= end; c++ {
				f(pg, key, c)
			}
		}
		if end == last {
			return
		}
		c = end + 1
	}
}

// insert adds s, which overlaps no span of the directory.
func (d *directory) insert(s span) {
	var full *list // the list of the chunks s covers entirely
	d.chunks(s.min, s.max, true, func(pg *page, _ uint64, c uint64) {
		slot := &pg.slots[c&pageMask]
		old := slot.Load()
		start := c << chunkShift
		var l *list
		if s.min <= start && s.max-start >= chunkSize {
			// Nothing else can be in a chunk s covers.
			if full == nil {
				var ds []dent
				full, ds = newList(1)
				ds[0] = newDent(s)
			}
			l = full
		} else {
			l = listInsert(old, s)
		}
		if old == nil {
			pg.used++
		}
		slot.Store(l)
	})
}

// remove removes s (the span of table s.t).
func (d *directory) remove(s span) {
	d.chunks(s.min, s.max, false, func(pg *page, key uint64, c uint64) {
		slot := &pg.slots[c&pageMask]
		old := slot.Load()
		if old == nil {
			return
		}
		l := listRemove(old, s.t)
		if l == old {
			return
		}
		slot.Store(l)
		if l == nil {
			pg.used--
			if pg.used == 0 {
				d.dropPage(key)
			}
		}
	})
}

// listInsert returns a copy of the list old (nil: empty) with s added.
func listInsert(old *list, s span) *list {
	var os []dent
	if old != nil {
		os = spansOf(old)
	}
	j := 0
	for j < len(os) && os[j].min <= s.min {
		j++
	}
	h, ns := newList(len(os) + 1)
	copy(ns, os[:j])
	ns[j] = newDent(s)
	copy(ns[j+1:], os[j:])
	return h
}

// listRemove returns a copy of the list old without t's span (nil if it
// becomes empty), or old if t is not in it.
func listRemove(old *list, t *Table) *list {
	os := spansOf(old)
	for j := range os {
		if os[j].t != t {
			continue
		}
		if len(os) == 1 {
			return nil
		}
		h, ns := newList(len(os) - 1)
		copy(ns, os[:j])
		copy(ns[j:], os[j+1:])
		return h
	}
	return old
}

// overlapping returns a table whose range intersects [min, max), or nil.
func (d *directory) overlapping(min, max uint64) *Table {
	var o *Table
	d.chunks(min, max, false, func(pg *page, _ uint64, c uint64) {
		if o != nil {
			return
		}
		h := pg.slots[c&pageMask].Load()
		if h == nil {
			return
		}
		// Spans are sorted by min and do not overlap, so by max too: the
		// last span starting before max is the only candidate.
		ss := spansOf(h)
		for j := len(ss) - 1; j >= 0; j-- {
			if ss[j].min < max {
				if ss[j].t.max > min {
					o = ss[j].t
				}
				return
			}
		}
	})
	return o
}

// each calls f for each span in address order, once per table.
func (d *directory) each(f func(s span)) {
	var prev *Table
	for _, e := range pages(d.top.Load()) {
		for i := range e.pg.slots {
			h := e.pg.slots[i].Load()
			if h == nil {
				continue
			}
			for _, s := range spansOf(h) {
				if s.t != prev {
					f(span{s.min, s.t.max, s.t})
					prev = s.t
				}
			}
		}
	}
}
