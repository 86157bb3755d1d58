package remote

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"time"
	"unicode/utf16"

	"github.com/fntable/fntable/functable"
	"github.com/fntable/fntable/functable/record"
	"github.com/fntable/fntable/internal/binread"
	"github.com/fntable/fntable/memory"
	"github.com/fntable/fntable/unwind"
	"github.com/fntable/fntable/unwindinfo"
)

// Memory reads the address space of the process that published the list
// (unwind.Memory; internal/procmem provides one for a live process).
type Memory = unwind.Memory

// These are the errors returned by [Read], besides those of the Memory
// (which wrap unwind.ErrShortRead).
var (
	// ErrMalformed is wrapped by every *[FormatError].
	ErrMalformed = errors.New("malformed function table list")
	// ErrNotList: the memory does not start with functable.LayoutMagic.
	ErrNotList = errors.New("not a published function table list")
	// ErrUnsupportedVersion: a layout version this package does not read.
	ErrUnsupportedVersion = errors.New("unsupported function table list version")
	// ErrInconsistent: the list kept changing (or stayed in the middle of
	// a change) during every attempt to copy it.
	ErrInconsistent = errors.New("function table list changed during every read")
)

// FormatError reports a malformed list: what is wrong, where, and the
// value found.
type FormatError struct {
	Off uint64 // offset in the mapping of the bad field
	Msg string // what is wrong
	Val any    // the value found, or nil
}

func (e *FormatError) Error() string {
	msg := e.Msg
	if e.Val != nil {
		msg += fmt.Sprintf(" %#x", e.Val)
	}
	return fmt.Sprintf("malformed function table list at offset %#x: %s", e.Off, msg)
}

// Unwrap returns ErrMalformed.
func (e *FormatError) Unwrap() error { return ErrMalformed }

// Snapshot is a consistent copy of a published list: the list as it was
// at one instant. It is immutable and safe for concurrent use.
type Snapshot struct {
	Pid            uint32  // the writer's pid, as it sees itself (its pid namespace)
	Generation     uint64  // the even generation the copy was taken at
	MappingAddress uint64  // address of the list's header
	MappingSize    uint64  // bytes mapped at the time of the copy
	UsedSize       uint64  // bytes copied
	Tables         []Table // in list (registration) order
	Retries        int     // copies discarded because the list changed during them

	provider    Provider // resolves callback tables, or nil
	providerPid int      // the process, for provider

	byMin   []int // indexes of Tables with a nonempty range, by MinimumAddress
	overlap bool  // some ranges overlap: search Tables in list order
}

// Table is one DYNAMIC_FUNCTION_TABLE record of a [Snapshot].
type Table struct {
	Record                  uint64         // address of the record in the writer
	Type                    functable.Type // RF_SORTED, RF_UNSORTED or RF_CALLBACK
	FunctionTable           uint64         // address of the entry array; the TableIdentifier of an RF_CALLBACK table
	TimeStamp               uint64         // registration time: FILETIME, 100 ns units since 1601-01-01 UTC
	MinimumAddress          uint64         // first address of the range covered
	MaximumAddress          uint64         // end of the range covered (exclusive)
	BaseAddress             uint64         // base of the entries' RVAs
	Callback                uint64         // C callback pointer, or 0 (the Go callbacks of a registry are not published)
	Context                 uint64         // C callback context, or 0
	OutOfProcessCallbackDll string         // provider library of a callback table, or ""
	EntryCount              uint32         // valid entries: len(Entries)
	MaximumEntryCount       uint32         // the table's maximum: EntryCount, or the maximum of a growable table
	Growable                bool           // added by AddGrowableFunctionTable
	Entries                 []unwindinfo.RuntimeFunction

	sorted      *unwind.SortedTable // the entries, for lookups
	res         *resolution         // what a provider gave, for RF_CALLBACK
	array       uint64              // offset of the entry array in the copy
	dll, dllLen uint64              // offset and length in units of the path in the copy
}

// Identifier returns the TableIdentifier of an RF_CALLBACK table, 0
// otherwise.
func (t *Table) Identifier() uint64 {
	if t.Type == functable.RF_CALLBACK {
		return t.FunctionTable
	}
	return 0
}

// Registered returns TimeStamp as a time.
func (t *Table) Registered() time.Time {
	ft := int64(t.TimeStamp)
	if ft < 0 {
		ft = 0
	}
	ft -= record.FiletimeEpochDelta
	return time.Unix(ft/1e7, ft%1e7*100).UTC()
}

// Limits of Read.
const (
	// maxAttempts bounds the copies Read makes while the list changes.
	maxAttempts = 100
	// chunkSize is how much Read asks for in one call past the size of
	// the mapping given, so that a header that lies about the size costs
	// little memory.
	chunkSize = 1 << 20
	// minHeaderSize is the part of the header version 1 defines.
	minHeaderSize = 0x50
	// maxRecordSize bounds a record, for future layouts with more fields.
	maxRecordSize = 0x1000
)

// readConfig holds what tests change in Read.
type readConfig struct {
	attempts int
	pause    func(attempt int) // before attempt (≥ 1)
}

// pause waits a little longer at each attempt: the writer is another
// process that needs some time to finish its change.
func pause(attempt int) {
	if attempt < 4 {
		runtime.Gosched()
		return
	}
	time.Sleep(min(time.Millisecond, time.Microsecond<<min(attempt-4, 10)))
}

// Read copies the list m of the process that mem reads and returns it as a
// [Snapshot]. It copies the used part of the mapping (one read when it has
// not grown since m was found), checks that the generation was the same
// even value before and after the copy, and tries again otherwise, up to
// 100 times over about 100 ms, then fails with [ErrInconsistent]. A list
// that is malformed fails with a *[FormatError] (see the package
// documentation for what is checked); one that is not a list fails with
// [ErrNotList] or [ErrUnsupportedVersion].
func Read(mem Memory, m Mapping) (*Snapshot, error) {
	return read(mem, m, readConfig{attempts: maxAttempts, pause: pause})
}

func read(mem Memory, m Mapping, cfg readConfig) (*Snapshot, error) {
	var buf []byte
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if attempt >= cfg.attempts {
				return nil, fmt.Errorf("read function table list at %#x: %w (%d attempts)", m.Addr, ErrInconsistent, attempt)
			}
			cfg.pause(attempt)
		}
		var hdr [minHeaderSize]byte
		if err := memory.ReadFull(mem, hdr[:], m.Addr); err != nil {
			return nil, fmt.Errorf("read function table list at %#x: %w", m.Addr, err)
		}
		h := binread.New("function table list header", hdr[:], 0)
		magic := string(h.Bytes(8))
		version := h.U32()
		switch {
		case magic != functable.LayoutMagic:
			return nil, fmt.Errorf("read function table list at %#x: %w", m.Addr, ErrNotList)
		case version != functable.LayoutVersion && version != 1:
			// Version 1 differs only in that a growable table's array
			// had room for its maximum: what is read here reads both.
			return nil, fmt.Errorf("read function table list at %#x: %w %d", m.Addr, ErrUnsupportedVersion, version)
		}
		h.Skip(functable.HdrGeneration - 12)
		gen := h.U64()
		if gen&1 != 0 {
			continue // a change is under way
		}
		h.Skip(functable.HdrUsedSize - functable.HdrGeneration - 8)
		used := h.U64()
		if used < minHeaderSize || used > functable.MaxMappingSize {
			if changed(mem, m.Addr, gen) {
				continue
			}
			return nil, &FormatError{functable.HdrUsedSize, "used size out of bounds", used}
		}
		var err error
		if buf, err = readList(mem, m, buf[:0], int(used)); err != nil {
			if changed(mem, m.Addr, gen) {
				continue // the mapping may have changed under the read
			}
			return nil, fmt.Errorf("read function table list at %#x: %w", m.Addr, err)
		}
		if changed(mem, m.Addr, gen) {
			continue
		}
		s, err := parse(buf, m.Addr, gen)
		if errors.Is(err, errTorn) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read function table list at %#x: %w", m.Addr, err)
		}
		s.Retries = attempt
		return s, nil
	}
}

// changed reports whether the generation is no longer gen (or cannot be
// read).
func changed(mem Memory, addr, gen uint64) bool {
	var b [8]byte
	if memory.ReadFull(mem, b[:], addr+functable.HdrGeneration) != nil {
		return true
	}
	r := binread.New("generation", b[:], functable.HdrGeneration)
	return r.U64() != gen
}

// readList reads the first used bytes of the mapping into buf: what the
// mapping had when it was found in one read, the rest by chunks, so that
// the buffer grows only as reads succeed.
func readList(mem Memory, m Mapping, buf []byte, used int) ([]byte, error) {
	first := used
	if m.Size < uint64(used) {
		first = int(max(m.Size, chunkSize))
		first = min(first, used)
	}
	for len(buf) < used {
		n := min(used-len(buf), chunkSize)
		if len(buf) == 0 {
			n = first
		}
		buf = slices.Grow(buf, n)
		at := len(buf)
		buf = buf[:at+n]
		if err := memory.ReadFull(mem, buf[at:], m.Addr+uint64(at)); err != nil {
			return buf[:at], err
		}
	}
	return buf, nil
}

// errTorn: the copy is not of one instant (the generation inside it is not
// the one read before and after).
var errTorn = errors.New("torn copy")

// list is a copy of the used part of a mapping, being parsed.
type list struct {
	b          []byte
	addr       uint64 // address of b[0] in the writer
	headerSize uint64
	recordSize uint64
	objs       []span // what the records use, to check that nothing overlaps
}

// span is the bytes [start, end) (offsets in the mapping) of one object.
type span struct {
	start, end uint64
	what       string
}

// parse decodes a copy taken at generation gen.
func parse(b []byte, addr, gen uint64) (*Snapshot, error) {
	l := &list{b: b, addr: addr}
	h := binread.New("function table list header", b, 0)
	h.Skip(functable.HdrVersion)
	h.U32() // version, checked by read
	l.headerSize = uint64(h.U32())
	l.recordSize = uint64(h.U32())
	s := &Snapshot{Pid: h.U32(), Generation: h.U64()}
	flink, blink := h.U64(), h.U64()
	s.MappingAddress, s.MappingSize, s.UsedSize = h.U64(), h.U64(), h.U64()
	count := h.U32()
	flags := h.U32()
	if err := h.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	used := uint64(len(b))
	switch {
	case s.Generation != gen:
		return nil, errTorn
	case l.headerSize < minHeaderSize || l.headerSize > used || l.headerSize%8 != 0:
		return nil, &FormatError{functable.HdrHeaderSize, "bad header size", l.headerSize}
	case l.recordSize < functable.RecordSize || l.recordSize > maxRecordSize || l.recordSize%8 != 0:
		return nil, &FormatError{functable.HdrRecordSize, "bad record size", l.recordSize}
	case s.MappingAddress != addr:
		return nil, &FormatError{functable.HdrMappingAddress, fmt.Sprintf("list read at %#x says it is at", addr), s.MappingAddress}
	case s.UsedSize != used:
		return nil, &FormatError{functable.HdrUsedSize, fmt.Sprintf("%#x bytes copied, used size", used), s.UsedSize}
	case s.MappingSize < used || s.MappingSize > functable.MaxMappingSize:
		return nil, &FormatError{functable.HdrMappingSize, "bad mapping size", s.MappingSize}
	case count > functable.MaxTables:
		return nil, &FormatError{functable.HdrTableCount, "too many tables", count}
	case flags != 0:
		return nil, &FormatError{functable.HdrFlags, "unknown flags", flags}
	}
	l.objs = append(l.objs, span{0, l.headerSize, "header"})
	// Walk the list. Each record's Blink must be the record before it, so
	// no record is visited twice: there is no cycle, and at most count
	// records are visited.
	headAddr := addr + functable.HdrListHead
	prev := headAddr
	s.Tables = make([]Table, 0, min(count, uint32(used/l.recordSize)))
	for cur := flink; cur != headAddr; {
		if uint32(len(s.Tables)) >= count {
			return nil, &FormatError{functable.HdrTableCount, fmt.Sprintf("list longer than its count %d", count), nil}
		}
		off, ok := l.inside(cur, l.recordSize, 8)
		if !ok || off < l.headerSize {
			return nil, &FormatError{l.linkOff(prev), "record pointer outside the list", cur}
		}
		t, next, back, err := l.record(off)
		if err != nil {
			return nil, err
		}
		if back != prev {
			return nil, &FormatError{off + functable.RecListEntry + 8, fmt.Sprintf("Blink does not point to the previous entry %#x", prev), back}
		}
		s.Tables = append(s.Tables, t)
		prev, cur = cur, next
	}
	if uint32(len(s.Tables)) != count {
		return nil, &FormatError{functable.HdrTableCount, fmt.Sprintf("list of %d records, count", len(s.Tables)), count}
	}
	if blink != prev {
		return nil, &FormatError{functable.HdrListHead + 8, fmt.Sprintf("Blink of the head is not the last record %#x", prev), blink}
	}
	if err := l.checkOverlaps(); err != nil {
		return nil, err
	}
	for i := range s.Tables {
		if err := l.decode(&s.Tables[i]); err != nil {
			return nil, err
		}
	}
	s.index()
	return s, nil
}

// linkOff returns the offset of the Flink at address a (the head's or a
// record's).
func (l *list) linkOff(a uint64) uint64 { return a - l.addr }

// inside returns the offset of the n bytes at address a if they lie in the
// copy and a is aligned to align.
func (l *list) inside(a, n, align uint64) (uint64, bool) {
	off := a - l.addr
	if a < l.addr || off > uint64(len(l.b)) || n > uint64(len(l.b))-off || a%align != 0 {
		return 0, false
	}
	return off, true
}

// record decodes the record at offset off.
func (l *list) record(off uint64) (t Table, flink, blink uint64, err error) {
	rec, err := record.DecodePublishedRecord(l.b[off : off+l.recordSize])
	if err != nil {
		return t, 0, 0, fmt.Errorf("%w: record at offset %#x: %w", ErrMalformed, off, err)
	}
	flink, blink = rec.Flink, rec.Blink
	t.Record = l.addr + off
	t.FunctionTable = rec.FunctionTable
	t.TimeStamp = rec.TimeStamp
	t.MinimumAddress, t.MaximumAddress, t.BaseAddress = rec.MinimumAddress, rec.MaximumAddress, rec.BaseAddress
	t.Callback, t.Context = rec.Callback, rec.Context
	dll := rec.OutOfProcessCallbackDll
	t.Type = rec.Type
	t.EntryCount, t.MaximumEntryCount = rec.EntryCount, rec.MaximumEntryCount
	flags := rec.Flags
	l.objs = append(l.objs, span{off, off + l.recordSize, "record"})
	bad := func(field uint64, msg string, val any) error { return &FormatError{off + field, msg, val} }
	t.Growable = flags&functable.RecFlagGrowable != 0
	switch {
	case flags&^functable.RecFlagGrowable != 0:
		return t, 0, 0, bad(functable.RecFlags, "unknown flags", flags)
	case t.MinimumAddress > t.MaximumAddress:
		return t, 0, 0, bad(functable.RecMaximumAddress, fmt.Sprintf("range ends before its start %#x", t.MinimumAddress), t.MaximumAddress)
	case t.EntryCount > t.MaximumEntryCount:
		return t, 0, 0, bad(functable.RecEntryCount, fmt.Sprintf("more entries than the maximum %d", t.MaximumEntryCount), t.EntryCount)
	}
	switch t.Type {
	case functable.RF_SORTED, functable.RF_UNSORTED:
		if !t.Growable && t.EntryCount != t.MaximumEntryCount {
			return t, 0, 0, bad(functable.RecMaximumEntryCount, fmt.Sprintf("static table of %d entries with a maximum of", t.EntryCount), t.MaximumEntryCount)
		}
		// The array holds at least the valid entries (a growable
		// table's has room for more, but not necessarily its maximum).
		size := uint64(t.EntryCount) * functable.RuntimeFunctionSize
		if size > 0 || t.FunctionTable != 0 {
			at, ok := l.inside(t.FunctionTable, size, 4)
			if !ok {
				return t, 0, 0, bad(functable.RecFunctionTable, fmt.Sprintf("array of %d entries outside the list", t.EntryCount), t.FunctionTable)
			}
			l.objs = append(l.objs, span{at, at + size, "entry array"})
			t.array = at
		}
	case functable.RF_CALLBACK:
		switch {
		case t.FunctionTable&3 != 3:
			return t, 0, 0, bad(functable.RecFunctionTable, "callback table identifier without its two low bits set", t.FunctionTable)
		case t.MaximumEntryCount != 0 || t.Growable:
			return t, 0, 0, bad(functable.RecMaximumEntryCount, "callback table with entries", t.MaximumEntryCount)
		}
	default:
		return t, 0, 0, bad(functable.RecType, "unknown table type", uint32(t.Type))
	}
	if dll != 0 {
		at, n, err := l.utf16z(dll)
		if err != nil {
			return t, 0, 0, bad(functable.RecOutOfProcessCallbackDll, err.Error(), dll)
		}
		l.objs = append(l.objs, span{at, at + 2*n + 2, "path"})
		t.dll, t.dllLen = at, n
	}
	return t, flink, blink, nil
}

// decode copies t's entries and path out of the list. It runs once the
// list is known to have no overlapping objects, so that what it
// allocates is bounded by the list's size.
func (l *list) decode(t *Table) error {
	if t.Type == functable.RF_CALLBACK {
		t.res = new(resolution)
	} else {
		t.Entries = make([]unwindinfo.RuntimeFunction, t.EntryCount)
		er := binread.New("function table entries", l.b[t.array:], int64(t.array))
		for i := range t.Entries {
			t.Entries[i] = unwindinfo.RuntimeFunction{BeginAddress: er.U32(), EndAddress: er.U32(), UnwindData: er.U32()}
		}
		if err := er.Err(); err != nil {
			return fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		t.sorted = unwind.NewSortedTable(t.BaseAddress, t.Entries)
	}
	if t.dllLen > 0 {
		r := binread.New("out-of-process callback dll", l.b[t.dll:], int64(t.dll))
		u := make([]uint16, t.dllLen)
		for i := range u {
			u[i] = r.U16()
		}
		if err := r.Err(); err != nil {
			return fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		t.OutOfProcessCallbackDll = string(utf16.Decode(u))
	}
	return nil
}

// utf16z finds the NUL-terminated UTF-16 string at address a, of at most
// functable.MaxDllLength units: its offset and length in units.
func (l *list) utf16z(a uint64) (off, n uint64, err error) {
	off, ok := l.inside(a, 2, 2)
	if !ok {
		return 0, 0, errors.New("path outside the list")
	}
	avail := (uint64(len(l.b)) - off) / 2
	r := binread.New("out-of-process callback dll", l.b[off:off+2*min(avail, functable.MaxDllLength+1)], int64(off))
	for r.Len() > 0 {
		if r.U16() == 0 {
			return off, n, nil
		}
		n++
	}
	if n > functable.MaxDllLength {
		return 0, 0, fmt.Errorf("path longer than %d UTF-16 units", functable.MaxDllLength)
	}
	return 0, 0, errors.New("path not terminated inside the list")
}

// checkOverlaps checks that the header, records, arrays and paths do not
// share bytes. It also bounds what a snapshot holds by the list's size.
func (l *list) checkOverlaps() error {
	objs := l.objs
	sort.Slice(objs, func(i, j int) bool { return objs[i].start < objs[j].start })
	var last span
	for _, o := range objs {
		if o.end == o.start {
			continue
		}
		if o.start < last.end {
			return &FormatError{o.start, fmt.Sprintf("%s overlaps a %s at offset %#x", o.what, last.what, last.start), nil}
		}
		last = o
	}
	return nil
}

// index prepares lookups.
func (s *Snapshot) index() {
	for i := range s.Tables {
		if t := &s.Tables[i]; t.MinimumAddress < t.MaximumAddress {
			s.byMin = append(s.byMin, i)
		}
	}
	sort.SliceStable(s.byMin, func(i, j int) bool {
		return s.Tables[s.byMin[i]].MinimumAddress < s.Tables[s.byMin[j]].MinimumAddress
	})
	for k := 1; k < len(s.byMin); k++ {
		if s.Tables[s.byMin[k]].MinimumAddress < s.Tables[s.byMin[k-1]].MaximumAddress {
			s.overlap = true
		}
	}
}

// Table returns the table whose range contains pc, as
// RtlLookupFunctionEntry chooses it (the first in list order), or nil.
func (s *Snapshot) Table(pc uint64) *Table {
	if s.overlap {
		for i := range s.Tables {
			if t := &s.Tables[i]; t.MinimumAddress <= pc && pc < t.MaximumAddress {
				return t
			}
		}
		return nil
	}
	k := sort.Search(len(s.byMin), func(k int) bool { return s.Tables[s.byMin[k]].MinimumAddress > pc })
	if k == 0 {
		return nil
	}
	if t := &s.Tables[s.byMin[k-1]]; pc < t.MaximumAddress {
		return t
	}
	return nil
}

// LookupFunctionEntry implements unwind.FunctionTable: the entry for pc of
// the table whose range contains pc, and the table's base address. Callback
// tables answer through the snapshot's Provider (see
// [Snapshot.UseProvider]), and nothing without one. Entries are returned as
// they are; unwind.Lookup resolves indirect ones.
func (s *Snapshot) LookupFunctionEntry(pc uint64) (*unwindinfo.RuntimeFunction, uint64, bool) {
	t := s.Table(pc)
	if t == nil {
		return nil, 0, false
	}
	if t.Type == functable.RF_CALLBACK {
		return s.callbackLookup(t, pc)
	}
	if t.sorted == nil {
		return nil, 0, false
	}
	return t.sorted.LookupFunctionEntry(pc)
}

var _ unwind.FunctionTable = (*Snapshot)(nil)

// Changing reports whether any of the lists ms of the process that mem
// reads is in the middle of a change (its generation is odd) or cannot be
// read. A tool that stops a process to walk it checks this and lets the
// process run on for a moment if so: a list stopped in the middle of a
// change stays so, and [Read] would fail with [ErrInconsistent].
func Changing(mem Memory, ms []Mapping) bool {
	for _, m := range ms {
		var b [8]byte
		if memory.ReadFull(mem, b[:], m.Addr+functable.HdrGeneration) != nil {
			return true
		}
		r := binread.New("generation", b[:], functable.HdrGeneration)
		if r.U64()&1 != 0 {
			return true
		}
	}
	return false
}
