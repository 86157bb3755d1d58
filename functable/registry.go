package functable

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf16"

	"github.com/fntable/fntable/target"
	"github.com/fntable/fntable/unwind"
	"github.com/fntable/fntable/unwindinfo"
)

// Callback returns the function table entry for controlPC, the address a
// lookup asked about, or nil if it has none. context is the value given to
// InstallFunctionTableCallback. The entry's RVAs are relative to the
// table's base address, and the entry must stay valid and unchanged for as
// long as anyone may use it (in practice: until the table is deleted).
//
// A callback runs on the goroutine that called LookupFunctionEntry, with no
// lock of the registry held: it may add, delete and look up tables,
// including its own. It must not block on a goroutine that is itself
// waiting for this lookup. On windows/amd64, ntdll also calls it (for
// unwinds Windows performs) while holding ntdll's own lock: there it must
// not wait for a goroutine that is adding, growing or deleting tables,
// which waits for that lock.
type Callback func(controlPC uint64, context any) *unwindinfo.RuntimeFunction

// Table is a registered function table. Its methods are safe for
// concurrent use.
type Table struct {
	typ        Type
	growable   bool
	id         uint64 // TableIdentifier (callback tables) or 0
	base       uint64
	min, max   uint64
	plain      bool                                         // static, with no overlapping entries: lookups search entries
	sorted     *unwind.SortedTable                          // static tables
	entries    []unwindinfo.RuntimeFunction                 // static tables: the sorted entries
	garray     atomic.Pointer[[]unwindinfo.RuntimeFunction] // growable: the copied entries, grown on demand
	count      atomic.Uint32                                // growable: entries visible to lookups
	maxCount   uint32
	source     []unwindinfo.RuntimeFunction // growable: the caller's array, read by Grow
	callback   Callback
	context    any
	dll        string
	registered time.Time
	reg        *Registry
	deleted    atomic.Bool
	pub        any // the publisher's record of this table
}

// Type returns how the table provides its entries.
func (t *Table) Type() Type { return t.typ }

// Growable reports whether the table was added with AddGrowableFunctionTable.
func (t *Table) Growable() bool { return t.growable }

// Identifier returns the TableIdentifier of a callback table, 0 otherwise.
func (t *Table) Identifier() uint64 { return t.id }

// BaseAddress returns the address the table's RVAs are relative to.
func (t *Table) BaseAddress() uint64 { return t.base }

// Range returns the address range [min, max) the table covers.
func (t *Table) Range() (min, max uint64) { return t.min, t.max }

// EntryCount returns the number of entries lookups see (0 for callback
// tables).
func (t *Table) EntryCount() uint32 {
	switch {
	case t.growable:
		return t.count.Load()
	case t.sorted != nil:
		return uint32(len(t.entries))
	}
	return 0
}

// Entries returns a copy of the entries lookups see, in address order.
func (t *Table) Entries() []unwindinfo.RuntimeFunction {
	return append([]unwindinfo.RuntimeFunction(nil), t.visible()...)
}

// visible returns the entries lookups see, in address order; the caller
// must not modify them.
func (t *Table) visible() []unwindinfo.RuntimeFunction {
	if t.growable {
		// The count first: the array is published before the count, so an
		// array loaded after a count holds at least that many entries.
		n := t.count.Load()
		return (*t.garray.Load())[:n]
	}
	return t.entries
}

// OutOfProcessCallbackDll returns the provider library recorded for a
// callback table ("" if none).
func (t *Table) OutOfProcessCallbackDll() string { return t.dll }

// lookup finds pc's entry in t. It may call the table's callback.
func (t *Table) lookup(pc uint64) *unwindinfo.RuntimeFunction {
	switch {
	case t.callback != nil:
		return t.callback(pc, t.context)
	case t.growable:
		rva := pc - t.base
		if rva > 0xffffffff {
			return nil
		}
		e := t.visible()
		if i, ok := unwindinfo.Find(e, uint32(rva)); ok {
			return &e[i]
		}
		return nil
	default:
		fn, _, _ := t.sorted.LookupFunctionEntry(pc)
		return fn
	}
}

// These are the errors the registry returns.
var (
	// ErrOverlap: the new table's range overlaps a registered table.
	ErrOverlap = errors.New("range overlaps a registered table")
	// ErrBadIdentifier: a callback table identifier without its two low
	// bits set (RtlInstallFunctionTableCallback returns FALSE).
	ErrBadIdentifier = errors.New("table identifier must have its two low bits set")
	// ErrNotRegistered: the table is not (or no longer) registered here.
	ErrNotRegistered = errors.New("table is not registered")
	// ErrBadGrow: a growable table misuse: shrinking, growing past the
	// maximum, or new entries that are unsorted or outside the range.
	ErrBadGrow = errors.New("invalid growable table update")
	// ErrBadTable: arguments that cannot describe a table.
	ErrBadTable = errors.New("invalid function table")
	// ErrClosed: the registry was closed.
	ErrClosed = errors.New("registry is closed")
	// ErrListFull: the published list has no room for the table (see
	// Options.Publish).
	ErrListFull = errors.New("published table list is full")
)

// Registry holds dynamic function tables: what RtlAddFunctionTable,
// RtlAddGrowableFunctionTable and RtlInstallFunctionTableCallback register
// on Windows. Its lookups answer RtlLookupFunctionEntry for the code
// those tables describe.
//
// A Registry is safe for concurrent use. Lookups take no lock and never
// wait for a writer: they read immutable lists of tables, which writers
// replace atomically (one writer at a time). Callbacks run with no lock
// held.
//
// Ranges of registered tables must not overlap: adding a table whose range
// overlaps another fails with ErrOverlap. (Windows lets the first table
// registered win, even when it has no entry for the PC; rejecting the
// ambiguity is safer.)
type Registry struct {
	dir    directory    // answers lookups
	n      atomic.Int64 // tables with a nonempty range
	mu     sync.Mutex   // serialises writers
	closed bool
	pub    publisher
	ids    map[uint64]*Table // callback tables by TableIdentifier

	// The ordered snapshot Tables reads, brought up to date by Tables
	// rather than by every change: pending holds the changes it lacks,
	// up to maxPending; past that, stale says to rebuild it from the
	// directory. dirty says that either holds something.
	snap    atomic.Pointer[index]
	pending []change
	stale   bool
	dirty   atomic.Bool
}

// change is an add (remove false) or delete not yet in Registry.snap.
type change struct {
	s      span
	remove bool
}

// maxPending bounds Registry.pending: past it, rebuilding the snapshot
// costs less than applying the changes one by one.
const maxPending = 64

// Options configure a Registry. The zero value is valid.
type Options struct {
	// Publish makes the registry keep a copy of its table list in shared
	// memory that another process can find and read (see the package
	// documentation). It is supported on Linux; elsewhere New fails with
	// ErrUnsupported, except on windows/amd64, where every registry
	// forwards its tables to ntdll whatever Publish says: ntdll's list is
	// the one Windows debuggers and exception dispatch read.
	Publish bool
}

// ErrUnsupported: a feature this OS does not have.
var ErrUnsupported = errors.New("not supported on this OS")

// New returns an empty registry.
func New(opts Options) (*Registry, error) {
	r := &Registry{ids: map[uint64]*Table{}}
	r.dir.init()
	r.snap.Store(emptyIndex)
	if opts.Publish || runtime.GOOS == "windows" && runtime.GOARCH == "amd64" {
		p, err := newPublisher()
		if err != nil {
			return nil, err
		}
		r.pub = p
	}
	return r, nil
}

// Close releases the published list, if any (on windows/amd64: removes the
// tables from ntdll). Lookups in the registry keep working; adding tables
// fails with ErrClosed.
func (r *Registry) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	if r.pub != nil {
		return r.pub.close()
	}
	return nil
}

// register adds t to the index under the writer lock.
func (r *Registry) register(t *Table) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if t.max > t.min {
		if o := r.dir.overlapping(t.min, t.max); o != nil {
			return fmt.Errorf("%w: [%#x, %#x) and [%#x, %#x)", ErrOverlap, t.min, t.max, o.min, o.max)
		}
	}
	if t.typ == RF_CALLBACK {
		if o := r.ids[t.id]; o != nil {
			return fmt.Errorf("%w: identifier %#x is already installed for [%#x, %#x)", ErrBadTable, t.id, o.min, o.max)
		}
	}
	t.reg = r
	if r.pub != nil {
		t.registered = time.Now() // the published TimeStamp
	}
	if r.pub != nil {
		if err := r.pub.add(t); err != nil {
			return err
		}
	}
	if t.max > t.min {
		s := span{t.min, t.max, t}
		r.dir.insert(s)
		r.n.Add(1)
		r.note(change{s: s})
	}
	if t.typ == RF_CALLBACK {
		r.ids[t.id] = t
	}
	return nil
}

// note records a change for the next snapshot, under the writer lock.
func (r *Registry) note(c change) {
	r.dirty.Store(true)
	switch {
	case r.stale:
	case len(r.pending) == maxPending:
		// The snapshot will be rebuilt: let the collector have it now.
		r.pending, r.stale = nil, true
		r.snap.Store(nil)
	default:
		r.pending = append(r.pending, c)
	}
}

// snapshot returns the ordered snapshot of the tables, bringing it up to
// date first if changes are pending.
func (r *Registry) snapshot() *index {
	if !r.dirty.Load() {
		// Nil if a change came after the load of dirty.
		if ix := r.snap.Load(); ix != nil {
			return ix
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ix := r.snap.Load()
	switch {
	case r.stale:
		var spans []span
		r.dir.each(func(s span) { spans = append(spans, s) })
		ix = buildIndex(spans)
	default:
		for _, c := range r.pending {
			if c.remove {
				ix = ix.remove(c.s.min, c.s.t)
			} else {
				ix = ix.insert(c.s)
			}
		}
	}
	clear(r.pending)
	r.pending, r.stale = r.pending[:0], false
	r.snap.Store(ix)
	r.dirty.Store(false)
	return ix
}

// unregister removes t.
func (r *Registry) unregister(t *Table) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t == nil || t.reg != r || t.deleted.Load() {
		return ErrNotRegistered
	}
	t.deleted.Store(true)
	if t.max > t.min {
		s := span{t.min, t.max, t}
		r.dir.remove(s)
		r.n.Add(-1)
		r.note(change{s: s, remove: true})
	}
	if t.typ == RF_CALLBACK && r.ids[t.id] == t {
		delete(r.ids, t.id)
	}
	if r.pub != nil && !r.closed {
		return r.pub.remove(t)
	}
	return nil
}

// AddFunctionTable registers a static function table, as
// RtlAddFunctionTable: entries with RVAs relative to baseAddress. The
// entries are copied; the table covers [baseAddress+min Begin,
// baseAddress+max End). Unsorted entries are accepted (the table's Type is
// then RF_UNSORTED) and searched as fast as sorted ones. Entries with
// EndAddress <= BeginAddress never match.
func (r *Registry) AddFunctionTable(entries []unwindinfo.RuntimeFunction, baseAddress uint64) (*Table, error) {
	t := &Table{typ: RF_SORTED, base: baseAddress}
	t.sorted = unwind.NewSortedTable(baseAddress, entries)
	if t.sorted.Unsorted() {
		t.typ = RF_UNSORTED
	}
	t.entries = t.sorted.Entries()
	t.min, t.max = t.sorted.Range()
	t.plain = t.sorted.Overlaps() == 0
	// base+RVA wraps when it is below base: the start of the range (and
	// then the end too), or the end only (an end of exactly 2^64 too).
	if len(t.entries) > 0 && (t.max < t.min || t.min < baseAddress) {
		return nil, fmt.Errorf("add function table: %w: range wraps the address space", ErrBadTable)
	}
	if err := r.register(t); err != nil {
		return nil, fmt.Errorf("add function table at %#x: %w", baseAddress, err)
	}
	return t, nil
}

// DeleteFunctionTable removes a table added by AddFunctionTable or
// InstallFunctionTableCallback (and, as on Windows, a growable table).
// Lookups that already found one of its entries may still use it.
func (r *Registry) DeleteFunctionTable(t *Table) error {
	if err := r.unregister(t); err != nil {
		return fmt.Errorf("delete function table: %w", err)
	}
	return nil
}

// InstallFunctionTableCallback registers a callback table, as
// RtlInstallFunctionTableCallback: lookups of PCs in [baseAddress,
// baseAddress+length) call callback(pc, context), lazily, once per
// lookup, with no lock held. tableIdentifier must have its two low bits
// set (e.g. baseAddress|3) and must not be installed already; it
// identifies the table to RtlDeleteFunctionTable and to out-of-process
// readers, which call the provider library outOfProcessCallbackDll (a
// path; "" for none) to get the entries.
func (r *Registry) InstallFunctionTableCallback(tableIdentifier, baseAddress uint64, length uint32, callback Callback, context any, outOfProcessCallbackDll string) (*Table, error) {
	if tableIdentifier&3 != 3 {
		return nil, fmt.Errorf("install function table callback %#x: %w", tableIdentifier, ErrBadIdentifier)
	}
	if callback == nil {
		return nil, fmt.Errorf("install function table callback %#x: %w: no callback", tableIdentifier, ErrBadTable)
	}
	if baseAddress+uint64(length) < baseAddress {
		return nil, fmt.Errorf("install function table callback %#x: %w: range wraps the address space", tableIdentifier, ErrBadTable)
	}
	if err := checkDll(outOfProcessCallbackDll); err != nil {
		return nil, fmt.Errorf("install function table callback %#x: %w", tableIdentifier, err)
	}
	t := &Table{typ: RF_CALLBACK, id: tableIdentifier, base: baseAddress, min: baseAddress, max: baseAddress + uint64(length),
		callback: callback, context: context, dll: outOfProcessCallbackDll}
	if err := r.register(t); err != nil {
		return nil, fmt.Errorf("install function table callback %#x: %w", tableIdentifier, err)
	}
	return t, nil
}

// checkDll checks an out-of-process callback dll path as the published
// list would store it, published or not: no NUL, at most MaxDllLength
// UTF-16 units.
func checkDll(dll string) error {
	if strings.IndexByte(dll, 0) >= 0 {
		return fmt.Errorf("%w: out-of-process callback dll contains NUL", ErrBadTable)
	}
	if n := len(utf16.Encode([]rune(dll))); n > MaxDllLength {
		return fmt.Errorf("%w: out-of-process callback dll of %d UTF-16 units exceeds %d", ErrBadTable, n, MaxDllLength)
	}
	return nil
}

// AddGrowableFunctionTable registers a growable table, as
// RtlAddGrowableFunctionTable: entries holds room for maximumEntryCount
// entries, the first entryCount of which are valid now; their RVAs are
// relative to rangeBase, and the table covers [rangeBase, rangeEnd)
// whatever its entries. Valid entries must be sorted by BeginAddress and
// lie inside the range. The registry copies the valid entries, and copies
// more from entries each time GrowFunctionTable makes them valid, so the
// caller fills entries[count:newCount] before growing.
func (r *Registry) AddGrowableFunctionTable(entries []unwindinfo.RuntimeFunction, entryCount, maximumEntryCount uint32, rangeBase, rangeEnd uint64) (*Table, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("add growable function table at %#x: %w: %s", rangeBase, ErrBadTable, fmt.Sprintf(format, args...))
	}
	switch {
	case entryCount > maximumEntryCount:
		return nil, fail("entry count %d exceeds maximum %d", entryCount, maximumEntryCount)
	case uint64(len(entries)) < uint64(maximumEntryCount):
		return nil, fail("%d entries given for a maximum of %d", len(entries), maximumEntryCount)
	case rangeEnd <= rangeBase:
		return nil, fail("empty range [%#x, %#x)", rangeBase, rangeEnd)
	case rangeEnd-rangeBase > 1<<32:
		return nil, fail("range of %#x bytes exceeds 4 GiB", rangeEnd-rangeBase)
	}
	t := &Table{growable: true, typ: RF_SORTED, base: rangeBase, min: rangeBase, max: rangeEnd,
		maxCount: maximumEntryCount, source: entries[:maximumEntryCount]}
	t.garray.Store(new([]unwindinfo.RuntimeFunction))
	if err := t.copyNew(0, entryCount, ErrBadTable); err != nil {
		return nil, fmt.Errorf("add growable function table at %#x: %w", rangeBase, err)
	}
	t.count.Store(entryCount)
	if err := r.register(t); err != nil {
		return nil, fmt.Errorf("add growable function table at %#x: %w", rangeBase, err)
	}
	return t, nil
}

// copyNew validates source[from:to] and copies it into the growable
// table's array, replacing the array with a larger one when it is full.
// Entries below the count are never written, so lookups can read them
// while this runs; the caller publishes the new count afterwards.
//
// Its errors wrap kind: ErrBadTable when the table is added, ErrBadGrow
// when it grows.
func (t *Table) copyNew(from, to uint32, kind error) error {
	arr := *t.garray.Load()
	grown := false
	if int(to) > len(arr) {
		// Room grows with the table, not with its maximum: a large maximum
		// costs nothing until it is used, as on Windows.
		n := min(t.maxCount, max(to, 2*uint32(len(arr)), 16))
		bigger := make([]unwindinfo.RuntimeFunction, n)
		copy(bigger, arr[:from])
		arr, grown = bigger, true
	}
	limit := t.max - t.min
	for i := from; i < to; i++ {
		e := t.source[i]
		switch {
		case e.EndAddress < e.BeginAddress || uint64(e.EndAddress) > limit:
			return fmt.Errorf("%w: entry %d [%#x, %#x) outside the range of %#x bytes", kind, i, e.BeginAddress, e.EndAddress, limit)
		case i > 0 && e.BeginAddress < t.source[i-1].EndAddress:
			return fmt.Errorf("%w: entry %d at %#x is not sorted after entry %d ending at %#x", kind, i, e.BeginAddress, i-1, t.source[i-1].EndAddress)
		}
		arr[i] = e
	}
	if grown {
		t.garray.Store(&arr)
	}
	return nil
}

// GrowFunctionTable makes the first newEntryCount entries of a growable
// table valid, as RtlGrowFunctionTable. The table only grows: a smaller
// count, a count past the maximum, or new entries that are not sorted
// after the existing ones or not inside the range fail with ErrBadGrow
// (Windows and Wine ignore such calls silently).
func (r *Registry) GrowFunctionTable(t *Table, newEntryCount uint32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t == nil || t.reg != r || t.deleted.Load() || !t.growable {
		return fmt.Errorf("grow function table: %w", ErrNotRegistered)
	}
	old := t.count.Load()
	switch {
	case newEntryCount < old:
		return fmt.Errorf("grow function table at %#x: %w: shrink from %d to %d entries", t.base, ErrBadGrow, old, newEntryCount)
	case newEntryCount > t.maxCount:
		return fmt.Errorf("grow function table at %#x: %w: %d entries exceed the maximum %d", t.base, ErrBadGrow, newEntryCount, t.maxCount)
	case newEntryCount == old:
		return nil
	}
	if old > 0 && t.source[old-1] != (*t.garray.Load())[old-1] {
		return fmt.Errorf("grow function table at %#x: %w: valid entry %d changed", t.base, ErrBadGrow, old-1)
	}
	if err := t.copyNew(old, newEntryCount, ErrBadGrow); err != nil {
		return fmt.Errorf("grow function table at %#x: %w", t.base, err)
	}
	// Entries below the count are written before the count is published:
	// a lookup that sees the new count sees the entries.
	t.count.Store(newEntryCount)
	if r.pub != nil && !r.closed {
		return r.pub.grow(t)
	}
	return nil
}

// DeleteGrowableFunctionTable removes a growable table, as
// RtlDeleteGrowableFunctionTable.
func (r *Registry) DeleteGrowableFunctionTable(t *Table) error {
	if t != nil && !t.growable {
		return fmt.Errorf("delete growable function table: %w: not a growable table", ErrNotRegistered)
	}
	if err := r.unregister(t); err != nil {
		return fmt.Errorf("delete growable function table: %w", err)
	}
	return nil
}

// LookupFunctionEntry returns the entry for pc and the base its RVAs are
// relative to, as RtlLookupFunctionEntry does for dynamic tables: the
// table whose range contains pc answers, through its entries or its
// callback. It does not lock and does not allocate (beyond what a
// callback does). It implements unwind.FunctionTable; indirect entries
// are returned as they are (unwind.Lookup resolves them).
func (r *Registry) LookupFunctionEntry(pc uint64) (*unwindinfo.RuntimeFunction, uint64, bool) {
	d, fn, base := r.dir.lookup(pc)
	if fn != nil {
		return fn, base, true
	}
	if d == nil || d.fns != nil {
		return nil, 0, false
	}
	t := d.t
	if pc >= t.max {
		return nil, 0, false
	}
	fn = t.lookup(pc)
	if fn == nil {
		return nil, 0, false
	}
	return fn, t.base, true
}

// Table returns the registered table whose range contains pc, or nil.
func (r *Registry) Table(pc uint64) *Table {
	if d, _, _ := r.dir.lookup(pc); d != nil && pc < d.t.max {
		return d.t
	}
	return nil
}

// Tables calls yield for each registered table with a nonempty range, in
// address order, from one consistent snapshot. It stops early, returning
// ErrStopped, if yield returns false. The snapshot is brought up to date
// when tables changed since the last call, under the writer lock; yield
// runs with no lock held.
func (r *Registry) Tables(yield func(*Table) bool) error {
	if !r.snapshot().each(func(s *span) bool { return yield(s.t) }) {
		return ErrStopped
	}
	return nil
}

// Len returns the number of registered tables with a nonempty range.
func (r *Registry) Len() int { return int(r.n.Load()) }

// ErrStopped is returned by enumerations stopped by their callback. It is
// target.ErrStopped, the one value for every enumeration of the module.
var ErrStopped = target.ErrStopped

var _ unwind.FunctionTable = (*Registry)(nil)
