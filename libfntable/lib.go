//go:build cgo && linux && amd64

package main

/*
#cgo CFLAGS: -O2 -Wall -I${SRCDIR}/include
#include <stdlib.h>
#include "fntable_impl.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"unicode/utf16"
	"unsafe"

	"github.com/fntable/fntable/functable"
	"github.com/fntable/fntable/internal/procmem"
	"github.com/fntable/fntable/unwind"
	"github.com/fntable/fntable/unwindinfo"
)

// NTSTATUS values the C API reports (ntstatus.h; fntable.h repeats them).
const (
	statusSuccess              = 0x00000000
	statusAccessViolation      = 0xC0000005 // RtlVirtualUnwind: unreadable memory
	statusInvalidParameter     = 0xC000000D
	statusNoMemory             = 0xC0000017
	statusConflictingAddresses = 0xC0000018 // overlapping ranges
	statusBadFunctionTable     = 0xC00000FF // malformed unwind information
	statusNotFound             = 0xC0000225 // no such table
)

// Limits on what the C API accepts.
const (
	// maxDllPath bounds the OutOfProcessCallbackDll string, in UTF-16 code
	// units: the most a UNICODE_STRING holds.
	maxDllPath = 32767
	// maxGrowableEntries bounds MaximumEntryCount. Windows allocates
	// nothing for a growable table, but the registry reserves its copy of
	// all maximumEntryCount entries up front; an unbounded count would let
	// one call exhaust memory and abort the process.
	maxGrowableEntries = 1 << 24
)

var (
	errInvalid  = errors.New("invalid parameter")
	errNoMemory = errors.New("out of memory")
	errNoTable  = errors.New("no such table")
	errBadTable = errors.New("bad function table") // an unwind failed other than on a read
)

// kind is how a table was registered.
type kind uint8

const (
	kindStatic   kind = iota // RtlAddFunctionTable
	kindCallback             // RtlInstallFunctionTableCallback
	kindGrowable             // RtlAddGrowableFunctionTable
)

// record is the C API's side of one registered table.
type record struct {
	kind  kind
	seq   uint64 // registration order: deletes by identity take the oldest
	ident uint64 // FunctionTable pointer (static, growable) or TableIdentifier
	table *functable.Table
	base  uint64

	// Static tables: the entries in address order (for lookups, which stay
	// in Go memory) and the same entries in C memory (what lookups return).
	sorted *unwind.SortedTable
	copyC  unsafe.Pointer // malloc'd; nil when there are no entries

	// Growable tables: the caller's array, used in place, and the handle.
	user   unsafe.Pointer
	handle unsafe.Pointer // malloc'd; the DynamicTable value

	// Callback tables: the C callback and its Context, as integers.
	callback, context uintptr
}

// library is the state behind the C API: one registry for the process.
type library struct {
	reg   *functable.Registry
	mem   unwind.Memory // this process, read through the kernel
	debug bool          // FNTABLE_DEBUG: describe failures on stderr

	// byTable maps a registered *functable.Table to its *record. Lookups
	// read it without locking.
	byTable sync.Map

	mu       sync.Mutex           // serialises writers; never held while user code runs
	byIdent  map[uint64][]*record // RtlDeleteFunctionTable identities
	byHandle map[uint64]*record   // growable tables by handle
	seq      uint64
}

var (
	libOnce sync.Once
	libInst *library
)

// lib returns the process's library state, creating it on first use.
func lib() *library {
	libOnce.Do(func() {
		l := &library{debug: os.Getenv("FNTABLE_DEBUG") != "",
			byIdent: map[uint64][]*record{}, byHandle: map[uint64]*record{}}
		// RtlVirtualUnwind reads the stack, the code and the unwind
		// information with process_vm_readv(2) on this process (or
		// /proc/self/mem where that is denied), never by dereferencing:
		// a bad stack pointer or RVA is then an error, not a SIGSEGV, and
		// a mapping that goes away during the read is no race.
		if mem, err := procmem.Open(os.Getpid()); err != nil {
			l.logf("cannot read this process's memory: %v", err)
			l.mem = noMemory{err}
		} else {
			l.mem = mem
		}
		// Publish the table list for debuggers in other processes, as
		// Windows does, unless FNTABLE_PUBLISH=0 or the registry cannot;
		// in-process use works either way.
		if os.Getenv("FNTABLE_PUBLISH") != "0" {
			reg, err := functable.New(functable.Options{Publish: true})
			if err != nil {
				l.logf("function tables are not published: %v", err)
			}
			l.reg = reg
		}
		if l.reg == nil {
			l.reg, _ = functable.New(functable.Options{}) // cannot fail without Publish
		}
		libInst = l
	})
	return libInst
}

func (l *library) logf(format string, args ...any) {
	if l.debug {
		fmt.Fprintf(os.Stderr, "libfntable: "+format+"\n", args...)
	}
}

// status turns err into the NTSTATUS the C API reports, describing it on
// stderr when FNTABLE_DEBUG is set.
func (l *library) status(op string, err error) C.DWORD {
	if err == nil {
		return statusSuccess
	}
	l.logf("%s: %v", op, err)
	switch {
	case errors.Is(err, functable.ErrOverlap):
		return statusConflictingAddresses
	case errors.Is(err, functable.ErrNotRegistered), errors.Is(err, errNoTable):
		return statusNotFound
	case errors.Is(err, errNoMemory), errors.Is(err, functable.ErrListFull):
		// The published list has no room for the table (or its new
		// entries): what Windows reports when it cannot allocate.
		return statusNoMemory
	case errors.Is(err, unwind.ErrShortRead):
		return statusAccessViolation
	case errors.Is(err, unwindinfo.ErrMalformed), errors.Is(err, unwind.ErrIndirectLoop), errors.Is(err, errBadTable):
		return statusBadFunctionTable
	}
	return statusInvalidParameter
}

// noMemory is the memory of a process that cannot be read: every read
// fails with err.
type noMemory struct{ err error }

func (m noMemory) ReadMemory(p []byte, addr uint64) (int, error) {
	return 0, fmt.Errorf("read %d bytes at %#x: %w: %w", len(p), addr, unwind.ErrShortRead, m.err)
}

// add records rec, registered as rec.table. l.mu is held.
func (l *library) add(rec *record) {
	l.seq++
	rec.seq = l.seq
	l.byIdent[rec.ident] = append(l.byIdent[rec.ident], rec)
	if rec.handle != nil {
		l.byHandle[uint64(uintptr(rec.handle))] = rec
	}
	l.byTable.Store(rec.table, rec)
}

// remove unregisters rec and frees its C memory. l.mu is held.
func (l *library) remove(rec *record) error {
	var err error
	if rec.kind == kindGrowable {
		err = l.reg.DeleteGrowableFunctionTable(rec.table)
	} else {
		err = l.reg.DeleteFunctionTable(rec.table)
	}
	if err != nil {
		return err
	}
	l.byTable.Delete(rec.table)
	recs := l.byIdent[rec.ident]
	for i, r := range recs {
		if r == rec {
			recs = append(recs[:i:i], recs[i+1:]...)
			break
		}
	}
	if len(recs) == 0 {
		delete(l.byIdent, rec.ident)
	} else {
		l.byIdent[rec.ident] = recs
	}
	if rec.handle != nil {
		delete(l.byHandle, uint64(uintptr(rec.handle)))
		C.free(rec.handle)
	}
	if rec.copyC != nil {
		C.free(rec.copyC)
	}
	return nil
}

// entries returns the n entries at p as a Go slice over C memory.
func entries(p *C.RUNTIME_FUNCTION, n uint32) ([]unwindinfo.RuntimeFunction, error) {
	switch {
	case n == 0:
		return nil, nil
	case p == nil:
		return nil, fmt.Errorf("%w: no entries for a count of %d", errInvalid, n)
	case uintptr(unsafe.Pointer(p))+uintptr(n)*unwindinfo.RuntimeFunctionSize < uintptr(unsafe.Pointer(p)):
		return nil, fmt.Errorf("%w: %d entries at %p wrap the address space", errInvalid, n, p)
	}
	return unsafe.Slice((*unwindinfo.RuntimeFunction)(unsafe.Pointer(p)), n), nil
}

func (l *library) addFunctionTable(table *C.RUNTIME_FUNCTION, count uint32, base uint64) error {
	in, err := entries(table, count)
	if err != nil {
		return err
	}
	sorted := unwind.NewSortedTable(base, in)
	rec := &record{kind: kindStatic, ident: uint64(uintptr(unsafe.Pointer(table))), base: base, sorted: sorted}
	if n := sorted.Len(); n > 0 {
		rec.copyC = C.malloc(C.size_t(n) * unwindinfo.RuntimeFunctionSize)
		if rec.copyC == nil {
			return fmt.Errorf("%w: copy of %d entries", errNoMemory, n)
		}
		copy(unsafe.Slice((*unwindinfo.RuntimeFunction)(rec.copyC), n), sorted.Entries())
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	t, err := l.reg.AddFunctionTable(in, base)
	if err != nil {
		if rec.copyC != nil {
			C.free(rec.copyC)
		}
		return err
	}
	rec.table = t
	l.add(rec)
	return nil
}

func (l *library) installCallback(id, base uint64, length uint32, callback, context uintptr, dll *C.WCHAR) error {
	if callback == 0 {
		return fmt.Errorf("%w: no callback", errInvalid)
	}
	path, err := utf16String(dll)
	if err != nil {
		return err
	}
	call := func(pc uint64, context any) *unwindinfo.RuntimeFunction {
		return callCallback(callback, pc, context.(uintptr))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	t, err := l.reg.InstallFunctionTableCallback(id, base, length, call, context, path)
	if err != nil {
		return err
	}
	// Out-of-process readers and providers see the C callback and its
	// Context in the published record, as in Windows' DYNAMIC_FUNCTION_TABLE.
	if err := t.PublishNativeCallback(uint64(callback), uint64(context)); err != nil {
		l.reg.DeleteFunctionTable(t)
		return err
	}
	l.add(&record{kind: kindCallback, ident: id, table: t, base: base, callback: callback, context: context})
	return nil
}

// callCallback calls a PGET_RUNTIME_FUNCTION_CALLBACK. The entry it returns
// is in C memory (or wherever the callback keeps it), never in Go's.
func callCallback(callback uintptr, pc uint64, context uintptr) *unwindinfo.RuntimeFunction {
	p := C.fntable_call_callback(C.uintptr_t(callback), C.DWORD64(pc), C.uintptr_t(context))
	return (*unwindinfo.RuntimeFunction)(unsafe.Pointer(p))
}

// utf16String decodes a NUL-terminated UTF-16 string; nil is "".
func utf16String(p *C.WCHAR) (string, error) {
	if p == nil {
		return "", nil
	}
	var u []uint16
	for i := 0; ; i++ {
		if i == maxDllPath {
			return "", fmt.Errorf("%w: out-of-process callback DLL path longer than %d UTF-16 units", errInvalid, maxDllPath)
		}
		c := *(*uint16)(unsafe.Add(unsafe.Pointer(p), 2*i))
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u)), nil
}

func (l *library) addGrowable(handle *C.uintptr_t, table *C.RUNTIME_FUNCTION, count, maxCount uint32, rangeBase, rangeEnd uint64) error {
	if maxCount > maxGrowableEntries {
		return fmt.Errorf("%w: maximum entry count %d exceeds %d", errNoMemory, maxCount, maxGrowableEntries)
	}
	in, err := entries(table, maxCount)
	if err != nil {
		return err
	}
	// The handle is a small allocation: unique while the table lives, and
	// 16-byte aligned, so it never equals a callback table's identifier
	// (whose two low bits are set) in RtlDeleteFunctionTable.
	h := C.calloc(1, 16)
	if h == nil {
		return fmt.Errorf("%w: table handle", errNoMemory)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	t, err := l.reg.AddGrowableFunctionTable(in, count, maxCount, rangeBase, rangeEnd)
	if err != nil {
		C.free(h)
		return err
	}
	l.add(&record{kind: kindGrowable, ident: uint64(uintptr(unsafe.Pointer(table))), table: t, base: rangeBase,
		user: unsafe.Pointer(table), handle: h})
	*handle = C.uintptr_t(uintptr(h))
	return nil
}

func (l *library) grow(handle uint64, count uint32) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	rec := l.byHandle[handle]
	if rec == nil {
		return fmt.Errorf("%w: growable table handle %#x", errNoTable, handle)
	}
	return l.reg.GrowFunctionTable(rec.table, count)
}

func (l *library) deleteGrowable(handle uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	rec := l.byHandle[handle]
	if rec == nil {
		return fmt.Errorf("%w: growable table handle %#x", errNoTable, handle)
	}
	return l.remove(rec)
}

// deleteTable removes the oldest table with identity id: the FunctionTable
// pointer of a static or growable table, a callback table's identifier,
// or a growable table's handle.
func (l *library) deleteTable(id uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var oldest *record
	if recs := l.byIdent[id]; len(recs) > 0 {
		oldest = recs[0]
	}
	if rec := l.byHandle[id]; rec != nil && (oldest == nil || rec.seq < oldest.seq) {
		oldest = rec
	}
	if oldest == nil {
		return fmt.Errorf("%w: function table %#x", errNoTable, id)
	}
	return l.remove(oldest)
}

// find returns the entry for pc: its address (what RtlLookupFunctionEntry
// returns), the entry itself, the base of its RVAs, and the kind of table
// that answered; addr is 0 when no table has an entry. It takes no lock.
// Indirect entries are returned as they are.
func (l *library) find(pc uint64) (addr uint64, fn *unwindinfo.RuntimeFunction, base uint64, k kind) {
	t := l.reg.Table(pc)
	if t == nil {
		return 0, nil, 0, 0
	}
	v, ok := l.byTable.Load(t)
	if !ok {
		return 0, nil, 0, 0 // being added or deleted
	}
	rec := v.(*record)
	switch rec.kind {
	case kindStatic:
		f, _, ok := rec.sorted.LookupFunctionEntry(pc)
		if !ok {
			return 0, nil, 0, 0
		}
		i := (uintptr(unsafe.Pointer(f)) - uintptr(unsafe.Pointer(&rec.sorted.Entries()[0]))) / unwindinfo.RuntimeFunctionSize
		return uint64(uintptr(rec.copyC)) + uint64(i)*unwindinfo.RuntimeFunctionSize, f, rec.base, kindStatic
	case kindGrowable:
		// The registry validated the first EntryCount entries (sorted,
		// inside the range) and the caller keeps them unchanged.
		e := unsafe.Slice((*unwindinfo.RuntimeFunction)(rec.user), t.EntryCount())
		rva := pc - rec.base
		if rva > 0xffffffff {
			return 0, nil, 0, 0
		}
		i, ok := unwindinfo.Find(e, uint32(rva))
		if !ok {
			return 0, nil, 0, 0
		}
		return uint64(uintptr(rec.user)) + uint64(i)*unwindinfo.RuntimeFunctionSize, &e[i], rec.base, kindGrowable
	default:
		f := callCallback(rec.callback, pc, rec.context)
		if f == nil {
			return 0, nil, 0, 0
		}
		return uint64(uintptr(unsafe.Pointer(f))), f, rec.base, kindCallback
	}
}

// lookup is RtlLookupFunctionEntry: find, then, for static and growable
// tables, follow indirect entries (RUNTIME_FUNCTION_INDIRECT) to the entry
// they name, as Windows and Wine do; callback entries are returned as the
// callback gave them.
func (l *library) lookup(pc uint64) (addr, base uint64, err error) {
	addr, fn, base, k := l.find(pc)
	if addr == 0 || k == kindCallback || !fn.Indirect() {
		return addr, base, nil
	}
	e := *fn
	for i := 0; e.Indirect(); i++ {
		if i == unwindinfo.ChainLimit {
			return 0, 0, fmt.Errorf("lookup function entry for %#x: %w", pc, unwind.ErrIndirectLoop)
		}
		addr = base + uint64(e.UnwindData&^unwindinfo.RUNTIME_FUNCTION_INDIRECT)
		var b [unwindinfo.RuntimeFunctionSize]byte
		if _, err := l.mem.ReadMemory(b[:], addr); err != nil {
			return 0, 0, fmt.Errorf("lookup function entry for %#x: resolve indirect entry at %#x: %w", pc, addr, err)
		}
		e, _ = unwindinfo.DecodeRuntimeFunction(b[:])
	}
	return addr, base, nil
}

// functions is the library's tables as an [unwind.FunctionTable], for the
// unwinder's same-function check on jumps out of an epilog.
type functions struct{ l *library }

func (f functions) LookupFunctionEntry(pc uint64) (*unwindinfo.RuntimeFunction, uint64, bool) {
	addr, fn, base, _ := f.l.find(pc)
	return fn, base, addr != 0
}

var _ unwind.FunctionTable = functions{}

// virtualUnwind is RtlVirtualUnwind: it reads the CONTEXT at in, unwinds,
// and writes the caller's CONTEXT to out and the other results to res.
// entry is the address of the caller's RUNTIME_FUNCTION (0 for a leaf
// function); it is read through the kernel like the rest of memory.
func (l *library) virtualUnwind(ht uint32, imageBase, pc uint64, entry uintptr, in, out unsafe.Pointer, res *C.fntable_unwind_result) error {
	var ctx unwind.Context
	if err := ctx.UnmarshalWindows(unsafe.Slice((*byte)(in), unwind.WindowsContextSize)); err != nil {
		return err
	}
	var fn *unwindinfo.RuntimeFunction
	if entry != 0 {
		var b [unwindinfo.RuntimeFunctionSize]byte
		if _, err := l.mem.ReadMemory(b[:], uint64(entry)); err != nil {
			return fmt.Errorf("virtual unwind at %#x: read function entry: %w", pc, err)
		}
		e, _ := unwindinfo.DecodeRuntimeFunction(b[:])
		fn = &e
	}
	u := unwind.Unwinder{Memory: l.mem, Functions: functions{l}}
	var ptrs unwind.ContextPointers
	r, err := u.VirtualUnwind(unwind.HandlerType(ht), imageBase, pc, fn, &ctx, &ptrs)
	switch {
	case errors.Is(err, unwind.ErrShortRead):
		return err
	case err != nil:
		return fmt.Errorf("%w: %w", errBadTable, err)
	}
	copy(unsafe.Slice((*byte)(out), unwind.WindowsContextSize), ctx.MarshalWindows())
	res.handler = C.DWORD64(r.HandlerRoutine)
	res.handler_data = C.DWORD64(r.HandlerData)
	res.establisher = C.DWORD64(r.EstablisherFrame)
	for i := range 16 {
		res.integer[i] = C.DWORD64(ptrs.Integer[i])
		res.floating[i] = C.DWORD64(ptrs.Floating[i])
	}
	return nil
}

// The Go half of each C API function (fntable.c holds the C half). Each
// returns the NTSTATUS that FntableLastError reports.

//export fntableAddFunctionTable
func fntableAddFunctionTable(table *C.RUNTIME_FUNCTION, count C.DWORD, base C.DWORD64) C.DWORD {
	l := lib()
	return l.status("RtlAddFunctionTable", l.addFunctionTable(table, uint32(count), uint64(base)))
}

//export fntableDeleteFunctionTable
func fntableDeleteFunctionTable(id C.uintptr_t) C.DWORD {
	l := lib()
	return l.status("RtlDeleteFunctionTable", l.deleteTable(uint64(id)))
}

//export fntableInstallFunctionTableCallback
func fntableInstallFunctionTableCallback(id, base C.DWORD64, length C.DWORD, callback, context C.uintptr_t, dll *C.WCHAR) C.DWORD {
	l := lib()
	err := l.installCallback(uint64(id), uint64(base), uint32(length), uintptr(callback), uintptr(context), dll)
	return l.status("RtlInstallFunctionTableCallback", err)
}

//export fntableAddGrowableFunctionTable
func fntableAddGrowableFunctionTable(handle *C.uintptr_t, table *C.RUNTIME_FUNCTION, count, maxCount C.DWORD, rangeBase, rangeEnd C.ULONG_PTR) C.DWORD {
	l := lib()
	err := l.addGrowable(handle, table, uint32(count), uint32(maxCount), uint64(rangeBase), uint64(rangeEnd))
	return l.status("RtlAddGrowableFunctionTable", err)
}

//export fntableGrowFunctionTable
func fntableGrowFunctionTable(handle C.uintptr_t, count C.DWORD) C.DWORD {
	l := lib()
	return l.status("RtlGrowFunctionTable", l.grow(uint64(handle), uint32(count)))
}

//export fntableDeleteGrowableFunctionTable
func fntableDeleteGrowableFunctionTable(handle C.uintptr_t) C.DWORD {
	l := lib()
	return l.status("RtlDeleteGrowableFunctionTable", l.deleteGrowable(uint64(handle)))
}

//export fntableLookupFunctionEntry
func fntableLookupFunctionEntry(pc C.DWORD64, entry, base *C.DWORD64) C.DWORD {
	l := lib()
	addr, b, err := l.lookup(uint64(pc))
	*entry, *base = C.DWORD64(addr), C.DWORD64(b)
	return l.status("RtlLookupFunctionEntry", err)
}

//export fntableVirtualUnwind
func fntableVirtualUnwind(ht C.DWORD, imageBase, pc C.DWORD64, entry C.uintptr_t, in, out unsafe.Pointer, res *C.fntable_unwind_result) C.DWORD {
	l := lib()
	err := l.virtualUnwind(uint32(ht), uint64(imageBase), uint64(pc), uintptr(entry), in, out, res)
	return l.status("RtlVirtualUnwind", err)
}
