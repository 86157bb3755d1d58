//go:build amd64

package functable

import (
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/fntable/fntable/unwindinfo"
)

// On windows/amd64 the registry forwards every table to ntdll, so that
// what Windows itself looks up (exception dispatch, RtlVirtualUnwind
// callers, debuggers reading the table list through
// RtlGetFunctionTableListHead, dbghelp's out-of-process callback DLLs)
// sees the same tables as the registry's own lookups. The forwarder is
// the registry's publisher: it is called with the registry's writer lock
// held, after each change is validated and before lookups in this
// process see it.
//
// What ntdll is given:
//
//   - A static table: a copy of its entries, sorted (Wine 8 requires
//     sorted tables, Windows accepts both), in memory allocated by Go and
//     referenced from the table's record until the table is deleted.
//     Go's heap does not move objects, so the address stays valid.
//     A table with no entries covers nothing and is not forwarded.
//   - A growable table: the table's own entries array, which has room for
//     the maximum count and whose first EntryCount entries are valid;
//     GrowFunctionTable writes the new entries there before ntdll is told
//     the new count.
//   - A callback table: one C-callable function for the whole process
//     (windows.NewCallback slots are few and never freed) with, as its
//     Context, a small integer that maps back to the table, whose Go
//     callback it calls with the PC ntdll asks about. The
//     OutOfProcessCallbackDll path is converted to UTF-16 and kept.
//
// Deadlocks: ntdll calls table callbacks while holding its own lock (Wine
// does; Windows documents the hazard for RtlInstallFunctionTableCallback).
// A callback called by ntdll must therefore not wait for a goroutine that
// is itself adding, growing or deleting a table of a forwarding registry:
// that goroutine holds the registry's writer lock and waits for ntdll's
// lock. Lookups through Registry.LookupFunctionEntry call callbacks
// directly, without ntdll.

// ntRecord is what the forwarder keeps for a table (Table.pub).
type ntRecord struct {
	static []windows.RUNTIME_FUNCTION // the array ntdll reads (growable: room for the maximum)
	count  uint32                     // growable table: entries given to ntdll
	handle uintptr                    // growable table: DynamicTable from ntdll
	key    uintptr                    // callback table: the Context given to ntdll
	dll    []uint16                   // callback table: OutOfProcessCallbackDll, NUL-terminated
	none   bool                       // not forwarded (a static table with no entries)
}

// ntForwarder is the publisher on windows/amd64. Its methods run under the
// registry's writer lock.
type ntForwarder struct {
	tables map[*Table]*ntRecord // forwarded tables, for close
	ids    map[uint64]*Table    // callback tables by TableIdentifier
}

var _ publisher = (*ntForwarder)(nil)

func newPublisher() (publisher, error) {
	for _, p := range []*windows.LazyProc{procRtlAddFunctionTable, procRtlDeleteFunctionTable, procRtlInstallFunctionTableCallback} {
		if err := p.Find(); err != nil {
			return nil, fmt.Errorf("forward function tables to ntdll: %w", err)
		}
	}
	return &ntForwarder{tables: map[*Table]*ntRecord{}, ids: map[uint64]*Table{}}, nil
}

// The one callback ntdll calls for every callback table, and the tables
// it serves, by key.
var (
	ntCallbackOnce sync.Once
	ntCallbackAddr uintptr
	ntCallbacks    sync.Map // uintptr key → *ntCallbackTable
	ntLastKey      atomic.Uintptr
)

// ntCallbackTable is a callback table as ntdll's callback sees it.
type ntCallbackTable struct {
	t *Table

	mu   sync.Mutex
	kept map[unwindinfo.RuntimeFunction]*unwindinfo.RuntimeFunction
}

// ntCallback is PGET_RUNTIME_FUNCTION_CALLBACK: ntdll calls it with the PC
// it looks up and the Context the table was installed with.
func ntCallback(controlPC, context uintptr) (fn uintptr) {
	v, ok := ntCallbacks.Load(context)
	if !ok {
		return 0 // the table is being deleted
	}
	ct := v.(*ntCallbackTable)
	// A panic must not unwind through ntdll, which holds its lock while
	// it calls us: report no entry instead.
	defer func() {
		if recover() != nil {
			fn = 0
		}
	}()
	e := ct.t.callback(uint64(controlPC), ct.t.context)
	if e == nil {
		return 0
	}
	return uintptr(unsafe.Pointer(ct.keep(e)))
}

// keep returns an entry equal to *e that stays reachable until the table
// is deleted: ntdll hands the pointer to code the garbage collector does
// not see. Entries are kept by value, so a callback that returns a fresh
// copy of the same entry each time does not make the set grow.
func (ct *ntCallbackTable) keep(e *unwindinfo.RuntimeFunction) *unwindinfo.RuntimeFunction {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if k, ok := ct.kept[*e]; ok {
		return k
	}
	if ct.kept == nil {
		ct.kept = map[unwindinfo.RuntimeFunction]*unwindinfo.RuntimeFunction{}
	}
	ct.kept[*e] = e
	return e
}

func (f *ntForwarder) add(t *Table) error {
	rec := &ntRecord{}
	var err error
	switch {
	case t.callback != nil:
		err = f.addCallback(t, rec)
	case t.growable:
		err = f.addGrowable(t, rec)
	default:
		err = f.addStatic(t, rec)
	}
	if err != nil {
		return fmt.Errorf("forward to ntdll: %w", err)
	}
	t.pub = rec
	f.tables[t] = rec
	return nil
}

func (f *ntForwarder) addStatic(t *Table, rec *ntRecord) error {
	if len(t.entries) == 0 {
		rec.none = true
		return nil
	}
	rec.static = make([]windows.RUNTIME_FUNCTION, len(t.entries))
	for i, e := range t.entries {
		rec.static[i] = windows.RUNTIME_FUNCTION(e)
	}
	if rtlAddFunctionTable(&rec.static[0], uint32(len(rec.static)), t.base) == 0 {
		return fmt.Errorf("RtlAddFunctionTable of %d entries at %#x failed", len(rec.static), t.base)
	}
	return nil
}

func (f *ntForwarder) addGrowable(t *Table, rec *ntRecord) error {
	if err := procRtlAddGrowableFunctionTable.Find(); err != nil {
		return err
	}
	// ntdll reads an array with room for the maximum count, whose first
	// count entries are valid: give it one of our own, which grow fills in
	// before it grows the count. The array of a table with a maximum of 0
	// entries is never read, but must be a valid pointer.
	rec.static = make([]windows.RUNTIME_FUNCTION, max(t.maxCount, 1))
	n := t.count.Load()
	for i, e := range t.visible()[:n] {
		rec.static[i] = windows.RUNTIME_FUNCTION(e)
	}
	rec.count = n
	if err := rtlAddGrowableFunctionTable(&rec.handle, &rec.static[0], n, t.maxCount, uintptr(t.min), uintptr(t.max)); err != nil {
		return fmt.Errorf("RtlAddGrowableFunctionTable at %#x: %w", t.min, err)
	}
	return nil
}

func (f *ntForwarder) addCallback(t *Table, rec *ntRecord) error {
	// RtlDeleteFunctionTable finds a callback table by its identifier, so
	// two tables with the same one could not be told apart.
	if o, ok := f.ids[t.id]; ok {
		return fmt.Errorf("%w: identifier %#x is already installed at %#x", ErrBadTable, t.id, o.base)
	}
	ntCallbackOnce.Do(func() { ntCallbackAddr = windows.NewCallback(ntCallback) })
	var dll *uint16
	if t.dll != "" {
		s, err := windows.UTF16FromString(t.dll)
		if err != nil {
			return fmt.Errorf("out-of-process callback DLL %q: %w", t.dll, err)
		}
		rec.dll = s
		dll = &s[0]
	}
	rec.key = ntLastKey.Add(1)
	ntCallbacks.Store(rec.key, &ntCallbackTable{t: t})
	if rtlInstallFunctionTableCallback(t.id, t.base, uint32(t.max-t.min), ntCallbackAddr, rec.key, dll) == 0 {
		ntCallbacks.Delete(rec.key)
		return fmt.Errorf("RtlInstallFunctionTableCallback %#x at %#x failed", t.id, t.base)
	}
	f.ids[t.id] = t
	return nil
}

func (f *ntForwarder) grow(t *Table) error {
	rec, ok := f.tables[t]
	if !ok || !t.growable {
		return fmt.Errorf("forward to ntdll: grow function table at %#x: %w", t.base, ErrNotRegistered)
	}
	e := t.visible()
	for i := rec.count; i < uint32(len(e)); i++ {
		rec.static[i] = windows.RUNTIME_FUNCTION(e[i])
	}
	rec.count = uint32(len(e))
	rtlGrowFunctionTable(rec.handle, rec.count)
	return nil
}

func (f *ntForwarder) remove(t *Table) error {
	rec, ok := f.tables[t]
	if !ok {
		return fmt.Errorf("forward to ntdll: delete function table at %#x: %w", t.base, ErrNotRegistered)
	}
	delete(f.tables, t)
	if err := f.delete(t, rec); err != nil {
		return fmt.Errorf("forward to ntdll: %w", err)
	}
	return nil
}

// delete removes t from ntdll.
func (f *ntForwarder) delete(t *Table, rec *ntRecord) error {
	switch {
	case rec.none:
	case t.callback != nil:
		ok := rtlDeleteFunctionTable(uintptr(t.id))
		ntCallbacks.Delete(rec.key)
		delete(f.ids, t.id)
		if ok == 0 {
			return fmt.Errorf("RtlDeleteFunctionTable of callback table %#x failed", t.id)
		}
	case t.growable:
		rtlDeleteGrowableFunctionTable(rec.handle)
	default:
		if rtlDeleteFunctionTable(uintptr(unsafe.Pointer(&rec.static[0]))) == 0 {
			return fmt.Errorf("RtlDeleteFunctionTable at %#x failed", t.base)
		}
	}
	return nil
}

// close removes every table from ntdll: once the registry is closed it no
// longer tells the forwarder about deletions.
func (f *ntForwarder) close() error {
	var first error
	for t, rec := range f.tables {
		if err := f.delete(t, rec); err != nil && first == nil {
			first = fmt.Errorf("forward to ntdll: %w", err)
		}
	}
	clear(f.tables)
	clear(f.ids)
	return first
}
