//go:build linux

package functable

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"os"
	"sync/atomic"
	"unicode/utf16"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/fntable/fntable/functable/record"
	"github.com/fntable/fntable/unwindinfo"
)

// The writer of the published list. The layout is described in
// functable/remote's documentation and given by the constants of
// layout.go.
//
// The list lives in a memfd mapped MAP_SHARED at the start of a
// MaxMappingSize reservation of address space, so its addresses never
// move: growing extends the file and maps the new part right after the
// old one. Every change runs under the registry's writer lock between two
// increments of the header's generation (a seqlock): odd while the list
// changes, even when it is consistent. All stores into the mapping are
// atomic, so they become visible in program order. A reader copies what
// it needs and accepts the copy only if the generation was the same even
// value before and after; that is why freed blocks can be reused at once.
//
// Memory: each table has one block, a power of two of at least 128 bytes,
// that holds its record, its entry array and its provider path; but a
// growable table's array has a block of its own, with room for at least
// its entries (growableRoom at first), which a grow past that room
// replaces with one twice as large, up to the table's maximum. Freed blocks go to a free
// list of their size and are reused first; otherwise blocks are cut from
// the end of the used part, which only grows. Registering a table that
// does not fit in what is left of MaxMappingSize, or the MaxTables+1st
// table, fails (ErrListFull), and so does a provider path longer than
// MaxDllLength UTF-16 units or one with a NUL (ErrBadTable): the registry
// rejects what it could not publish.

// Sizes of the mapping.
const (
	pubInitialSize = 64 << 10 // first size of the file and mapping
	pubAlign       = 16       // alignment of every block
	minClass       = 7        // smallest block: 128 bytes (a record and a short path)
	numClasses     = 31       // classes up to 30: blocks of at most MaxMappingSize bytes
)

// mapPublisher keeps the published list of one registry.
type mapPublisher struct {
	fd     int
	base   unsafe.Pointer        // the header; the start of the reservation
	size   uintptr               // bytes of the file, all mapped at base
	used   uintptr               // bump pointer: bytes handed out (header included)
	free   [numClasses][]uintptr // free blocks (offsets) of each class
	count  uint32                // records in the list
	gen    uint64                // the header's generation
	closed bool
}

// pubRecord is what the publisher keeps for a table (Table.pub).
type pubRecord struct {
	off   uintptr // offset of the record (and of its block)
	class int     // block size class
	array uintptr // offset of the RUNTIME_FUNCTION array
	count uint32  // entries published

	// A growable table's array has a block of its own, which a grow
	// past its room replaces with a larger one.
	arrayClass int    // its block's class; 0 when the array is in the record's block
	room       uint32 // entries the array has room for
}

// growableRoom is the first room of a growable table's array, in entries
// (at least the entries it has): a block of 1 KiB. It doubles, up to the
// table's maximum, as the table grows.
const growableRoom = 85

func newPublisher() (publisher, error) {
	p, err := openMapPublisher()
	if err != nil {
		return nil, fmt.Errorf("publish function tables: %w", err)
	}
	return p, nil
}

func openMapPublisher() (*mapPublisher, error) {
	fd, err := unix.MemfdCreate(MemfdName, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	p := &mapPublisher{fd: fd, size: pubInitialSize, used: HeaderSize}
	fail := func(op string, err error) (*mapPublisher, error) {
		if p.base != nil {
			unix.MunmapPtr(p.base, MaxMappingSize)
		}
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := unix.Ftruncate(fd, int64(p.size)); err != nil {
		return fail("ftruncate", err)
	}
	// Reserve the address space: nothing else can be mapped there, so the
	// list can grow in place.
	p.base, err = unix.MmapPtr(-1, 0, nil, MaxMappingSize, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		p.base = nil
		return fail("reserve address space", err)
	}
	// Write the header through the file before mapping it, so that a
	// reader never finds the mapping without it.
	var h [HeaderSize]byte
	addr := uint64(uintptr(p.base))
	copy(h[HdrMagic:], LayoutMagic)
	binary.LittleEndian.PutUint32(h[HdrVersion:], LayoutVersion)
	binary.LittleEndian.PutUint32(h[HdrHeaderSize:], HeaderSize)
	binary.LittleEndian.PutUint32(h[HdrRecordSize:], RecordSize)
	binary.LittleEndian.PutUint32(h[HdrPid:], uint32(os.Getpid()))
	binary.LittleEndian.PutUint64(h[HdrListHead:], addr+HdrListHead)   // Flink: empty list
	binary.LittleEndian.PutUint64(h[HdrListHead+8:], addr+HdrListHead) // Blink
	binary.LittleEndian.PutUint64(h[HdrMappingAddress:], addr)
	binary.LittleEndian.PutUint64(h[HdrMappingSize:], uint64(p.size))
	binary.LittleEndian.PutUint64(h[HdrUsedSize:], uint64(p.used))
	if _, err := unix.Pwrite(fd, h[:], 0); err != nil {
		return fail("write header", err)
	}
	if err := p.mapRange(0, p.size); err != nil {
		return fail("map", err)
	}
	return p, nil
}

// mapRange maps the file's bytes [off, off+n) at base+off.
func (p *mapPublisher) mapRange(off, n uintptr) error {
	at := unsafe.Add(p.base, off)
	got, err := unix.MmapPtr(p.fd, int64(off), at, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_FIXED)
	if err != nil {
		return err
	}
	if got != at {
		return fmt.Errorf("mapped at %p instead of %p", got, at)
	}
	// A child forked without exec must not share (and show) our list.
	return unix.Madvise(unsafe.Slice((*byte)(at), n), unix.MADV_DONTFORK)
}

// Atomic accessors of the mapping.

func (p *mapPublisher) ptr(off uintptr) unsafe.Pointer { return unsafe.Add(p.base, off) }

func (p *mapPublisher) addr(off uintptr) uint64 { return uint64(uintptr(p.base) + off) }

func (p *mapPublisher) put64(off uintptr, v uint64) { atomic.StoreUint64((*uint64)(p.ptr(off)), v) }

func (p *mapPublisher) put32(off uintptr, v uint32) { atomic.StoreUint32((*uint32)(p.ptr(off)), v) }

func (p *mapPublisher) get64(off uintptr) uint64 { return atomic.LoadUint64((*uint64)(p.ptr(off))) }

// begin and end bracket a change: the generation is odd in between.
func (p *mapPublisher) begin() {
	p.gen++
	p.put64(HdrGeneration, p.gen)
}

func (p *mapPublisher) end() {
	p.gen++
	p.put64(HdrGeneration, p.gen)
}

// blockClass returns the size class of a block of n bytes: blocks of class
// c are 1<<c bytes.
func blockClass(n uintptr) int {
	if n <= 1<<minClass {
		return minClass
	}
	return bits.Len64(uint64(n - 1))
}

// alloc returns the offset of a block of class c, from the class's free
// list or from the end of the used part, growing the mapping. It runs
// inside begin/end (it may change the header's sizes).
func (p *mapPublisher) alloc(c int) (uintptr, error) {
	if c >= numClasses || uintptr(1)<<c > MaxMappingSize-HeaderSize {
		return 0, ErrListFull
	}
	if fl := p.free[c]; len(fl) > 0 {
		off := fl[len(fl)-1]
		p.free[c] = fl[:len(fl)-1]
		return off, nil
	}
	n := uintptr(1) << c
	off := (p.used + pubAlign - 1) &^ (pubAlign - 1)
	if off+n > MaxMappingSize {
		return 0, ErrListFull
	}
	if off+n > p.size {
		size := p.size
		for size < off+n {
			size *= 2
		}
		size = min(size, MaxMappingSize)
		if err := unix.Ftruncate(p.fd, int64(size)); err != nil {
			return 0, fmt.Errorf("grow published list to %d bytes: %w", size, err)
		}
		if err := p.mapRange(p.size, size-p.size); err != nil {
			return 0, fmt.Errorf("grow published list to %d bytes: %w", size, err)
		}
		p.size = size
		p.put64(HdrMappingSize, uint64(size))
	}
	p.used = off + n
	p.put64(HdrUsedSize, uint64(p.used))
	return off, nil
}

// dllUTF16 returns the NUL-terminated UTF-16 form of a provider path.
func dllUTF16(dll string) ([]uint16, error) {
	if dll == "" {
		return nil, nil
	}
	if err := checkDll(dll); err != nil {
		return nil, err
	}
	return append(utf16.Encode([]rune(dll)), 0), nil
}

// filetime converts t's registration time to FILETIME.
func (t *Table) filetime() uint64 {
	ns := t.registered.UnixNano()
	return uint64(ns/100 + record.FiletimeEpochDelta)
}

func (p *mapPublisher) add(t *Table) error {
	if p.closed {
		return ErrClosed
	}
	if p.count >= MaxTables {
		return fmt.Errorf("%w: %d tables", ErrListFull, p.count)
	}
	dll, err := dllUTF16(t.dll)
	if err != nil {
		return err
	}
	var capacity, count, maximum uint32
	switch {
	case t.typ == RF_CALLBACK:
	case t.growable:
		// The array gets a block of its own, with room for what the
		// table holds and some more, not for its maximum: a JIT may ask
		// for a maximum of millions of entries, and a reader copies
		// every byte of the list that is in use.
		count, maximum = t.count.Load(), t.maxCount
		capacity = min(max(count, growableRoom), maximum)
	default:
		capacity = uint32(len(t.entries))
		count, maximum = capacity, capacity
	}
	// One block: the record, the array (but a growable table's), the path.
	inline := capacity
	if t.growable {
		inline = 0
	}
	arrayOff := uintptr(RecordSize)
	dllOff := arrayOff + (uintptr(inline)*RuntimeFunctionSize+7)&^7
	size := uint64(dllOff) + 2*uint64(len(dll))
	if size > MaxMappingSize {
		return fmt.Errorf("%w: a table of %d entries needs %d bytes", ErrListFull, capacity, size)
	}
	p.begin()
	defer p.end()
	c := blockClass(uintptr(size))
	off, err := p.alloc(c)
	if err != nil {
		return fmt.Errorf("%w: a table of %d entries needs %d bytes", err, capacity, size)
	}
	rec := &pubRecord{off: off, class: c, array: off + arrayOff, room: capacity}
	if t.growable {
		if err := p.allocArray(rec, capacity); err != nil {
			p.free[c] = append(p.free[c], off)
			return err
		}
	}
	for i := range RecordSize / 8 {
		p.put64(off+uintptr(i)*8, 0)
	}
	if t.typ == RF_CALLBACK {
		p.put64(off+RecFunctionTable, t.id)
	} else {
		p.put64(off+RecFunctionTable, p.addr(rec.array))
	}
	p.put64(off+RecTimeStamp, t.filetime())
	p.put64(off+RecMinimumAddress, t.min)
	p.put64(off+RecMaximumAddress, t.max)
	p.put64(off+RecBaseAddress, t.base)
	if dll != nil {
		for i, u := range dll {
			p.putUnit(off+dllOff+uintptr(i)*2, u)
		}
		p.put64(off+RecOutOfProcessCallbackDll, p.addr(off+dllOff))
	}
	p.put32(off+RecType, uint32(t.typ))
	p.put32(off+RecMaximumEntryCount, maximum)
	if t.growable {
		p.put32(off+RecFlags, RecFlagGrowable)
	}
	p.copyEntries(rec, t.visible(), 0, count)
	p.put32(off+RecEntryCount, count)
	rec.count = count
	// InsertTailList.
	head := uintptr(HdrListHead)
	last := uintptr(p.get64(head+8) - uint64(uintptr(p.base)))
	p.put64(off+RecListEntry, p.addr(head))
	p.put64(off+RecListEntry+8, p.addr(last))
	p.put64(last, p.addr(off)) // last.Flink (the head's Flink if the list is empty)
	p.put64(head+8, p.addr(off))
	p.count++
	p.put32(HdrTableCount, p.count)
	t.pub = rec
	return nil
}

// putUnit stores one UTF-16 unit. There is no 16-bit atomic store; the
// unit is merged into its aligned 32-bit word, which only this writer
// changes.
func (p *mapPublisher) putUnit(off uintptr, u uint16) {
	w := off &^ 3
	ptr := (*uint32)(p.ptr(w))
	v := atomic.LoadUint32(ptr)
	if off&3 == 0 {
		v = v&0xffff0000 | uint32(u)
	} else {
		v = v&0x0000ffff | uint32(u)<<16
	}
	atomic.StoreUint32(ptr, v)
}

// copyEntries stores entries[from:to] into rec's array.
func (p *mapPublisher) copyEntries(rec *pubRecord, entries []unwindinfo.RuntimeFunction, from, to uint32) {
	for i := from; i < to; i++ {
		e := &entries[i]
		o := rec.array + uintptr(i)*RuntimeFunctionSize
		p.put32(o, e.BeginAddress)
		p.put32(o+4, e.EndAddress)
		p.put32(o+8, e.UnwindData)
	}
}

// allocArray gives rec's growable array a block of its own with room for
// room entries (inside begin/end).
func (p *mapPublisher) allocArray(rec *pubRecord, room uint32) error {
	size := uintptr(room) * RuntimeFunctionSize
	c := blockClass(size)
	off, err := p.alloc(c)
	if err != nil {
		return fmt.Errorf("%w: an array of %d entries needs %d bytes", err, room, size)
	}
	rec.array, rec.arrayClass, rec.room = off, c, uint32(min(uint64(1)<<c/RuntimeFunctionSize, uint64(^uint32(0))))
	return nil
}

func (p *mapPublisher) grow(t *Table) error {
	rec, ok := t.pub.(*pubRecord)
	if !ok || p.closed {
		return ErrNotRegistered
	}
	n := t.count.Load()
	if n <= rec.count {
		return nil
	}
	p.begin()
	defer p.end()
	if n > rec.room {
		// A larger array: the entries so far are copied to it, the
		// record points to it, and the old block is freed. Readers
		// follow the pointer, and the generation tells them that
		// everything may have moved.
		old, oldClass := rec.array, rec.arrayClass
		if err := p.allocArray(rec, min(max(n, 2*rec.room), t.maxCount)); err != nil {
			return err
		}
		p.copyEntries(rec, t.visible(), 0, rec.count)
		p.put64(rec.off+RecFunctionTable, p.addr(rec.array))
		p.free[oldClass] = append(p.free[oldClass], old)
	}
	// The new entries first, then the count, as RtlGrowFunctionTable.
	p.copyEntries(rec, t.visible(), rec.count, n)
	p.put32(rec.off+RecEntryCount, n)
	rec.count = n
	return nil
}

func (p *mapPublisher) remove(t *Table) error {
	rec, ok := t.pub.(*pubRecord)
	if !ok || p.closed {
		return ErrNotRegistered
	}
	t.pub = nil
	p.begin()
	defer p.end()
	// RemoveEntryList.
	base := uint64(uintptr(p.base))
	next := uintptr(p.get64(rec.off+RecListEntry) - base)
	prev := uintptr(p.get64(rec.off+RecListEntry+8) - base)
	p.put64(prev, p.addr(next))   // prev.Flink
	p.put64(next+8, p.addr(prev)) // next.Blink
	p.put64(rec.off+RecListEntry, 0)
	p.put64(rec.off+RecListEntry+8, 0)
	p.count--
	p.put32(HdrTableCount, p.count)
	// Readers validate their copy against the generation, so the block can
	// be reused by the next change.
	p.free[rec.class] = append(p.free[rec.class], rec.off)
	if rec.arrayClass != 0 {
		p.free[rec.arrayClass] = append(p.free[rec.arrayClass], rec.array)
	}
	return nil
}

// setNative records a C callback and its context in t's record.
func (p *mapPublisher) setNative(t *Table, callback, context uint64) error {
	rec, ok := t.pub.(*pubRecord)
	if !ok || p.closed {
		return ErrNotRegistered
	}
	p.begin()
	defer p.end()
	p.put64(rec.off+RecCallback, callback)
	p.put64(rec.off+RecContext, context)
	return nil
}

func (p *mapPublisher) close() error {
	if p.closed {
		return nil
	}
	p.closed = true
	err := unix.MunmapPtr(p.base, MaxMappingSize)
	p.base = nil
	if cerr := unix.Close(p.fd); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("close published list: %w", err)
	}
	return nil
}

// PublishNativeCallback records in the published list the callback and
// context of callback table t as the native (C) values that the
// DYNAMIC_FUNCTION_TABLE Callback and Context fields hold on Windows:
// addresses in this process that out-of-process readers, and the provider
// library the table names, may use to find the JIT's own metadata (the
// registry itself keeps calling the Go callback). It does nothing if the
// registry does not publish.
func (t *Table) PublishNativeCallback(callback, context uint64) error {
	r := t.reg
	if r == nil {
		return ErrNotRegistered
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case t.deleted.Load():
		return ErrNotRegistered
	case t.typ != RF_CALLBACK:
		return fmt.Errorf("%w: not a callback table", ErrBadTable)
	}
	p, ok := r.pub.(*mapPublisher)
	if !ok || r.closed {
		return nil
	}
	return p.setNative(t, callback, context)
}

var _ publisher = (*mapPublisher)(nil)
