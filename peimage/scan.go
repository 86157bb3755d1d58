package peimage

import (
	"fmt"

	"github.com/fntable/fntable/unwindinfo"
)

// scanChunk is how many entries a [TableScanner] reads at a time
// (48 KiB).
const scanChunk = 4096

// TableScanner reads the function table of a [File] one entry at a time,
// in file order, through a buffer of fixed size, and keeps none of the
// entries: listing a table of millions of entries needs no memory for
// them. Make one with [File.ScanTable], call Next until it returns false,
// then Err.
//
// A TableScanner checks the entries as they pass: [TableScanner.Warnings]
// returns the warnings [File.Warnings] returns for the same image. A
// TableScanner is not safe for concurrent use; several may scan one File
// at the same time, as its reads allow (see the package documentation).
type TableScanner struct {
	f     *File
	check bool   // check the entries (ScanTable), or only read them (readTable)
	want  uint32 // entries the exception directory announces (Size/12)
	count uint32 // entries to read: want, clamped as described in Err
	next  uint32 // index of the first entry of the next read
	buf   []byte // read buffer, for at most scanChunk entries
	b     []byte // the entries of buf not yet returned
	cur   unwindinfo.RuntimeFunction
	n     int   // entries returned by Next
	done  bool  // Next has returned false
	rerr  error // the failed read: nothing more is read
	rerrN int   // index of the first entry of the failed read that was not read
	err   error

	tableWarnings warnList   // directory size and short table, as readTable reports them
	entryWarnings warnList   // entryCheck's, in file order
	keyWarnings   warnList   // checkKey's, in file order: right while the table is sorted
	entries       entryCheck // state of the file-order checks
	prevKey       keyed      // the last entry with a nonempty range
	haveKey       bool       // prevKey is set
}

// ScanTable returns a [TableScanner] over the function table of f. It
// reads the image, not the table a File may already hold.
func (f *File) ScanTable() *TableScanner { return f.newScanner(true) }

// newScanner returns a scanner over the table; check selects the checks
// of [TableScanner.Warnings].
func (f *File) newScanner(check bool) *TableScanner {
	s := &TableScanner{f: f, check: check}
	size := f.excSize
	if size == 0 {
		return s
	}
	if size%unwindinfo.RuntimeFunctionSize != 0 {
		s.tableWarnings.add(WarnTableSize, -1, "exception directory size %#x is not a multiple of %d; the last %d bytes are ignored",
			size, unwindinfo.RuntimeFunctionSize, size%unwindinfo.RuntimeFunctionSize)
	}
	s.want = size / unwindinfo.RuntimeFunctionSize
	count := s.want
	if f.mem == nil {
		// Entries past the file data would all be zero: drop them.
		backed := (f.backedEnd(f.excRVA, f.excRVA+size) - f.excRVA + unwindinfo.RuntimeFunctionSize - 1) / unwindinfo.RuntimeFunctionSize
		count = min(count, backed)
	}
	s.count = min(count, MaxFunctions)
	s.buf = make([]byte, min(s.count, scanChunk)*unwindinfo.RuntimeFunctionSize)
	return s
}

// Next reads the next entry, which Function then returns. It returns
// false at the end of the table, or when an entry cannot be read; Err
// then tells which.
func (s *TableScanner) Next() bool {
	if s.done {
		return false
	}
	if len(s.b) < unwindinfo.RuntimeFunctionSize && !s.fill() {
		s.finish()
		return false
	}
	s.cur, _ = unwindinfo.DecodeRuntimeFunction(s.b)
	s.b = s.b[unwindinfo.RuntimeFunctionSize:]
	i := s.n
	s.n++
	if s.check {
		s.checkEntry(i, s.cur)
	}
	return true
}

// Function returns the entry the last call of Next read.
func (s *TableScanner) Function() unwindinfo.RuntimeFunction { return s.cur }

// Count returns how many entries Next has returned: once it has returned
// false, the number of entries of the table that could be read.
func (s *TableScanner) Count() int { return s.n }

// Err returns, once Next has returned false, why the scan ended before the
// last entry the exception directory announces (its Size divided by 12):
// an entry that cannot be read (the file ends, or the table runs out of
// the image or its mapped memory), entries past the raw data of their
// section in an image file (the loader would map zeros there, which
// [File.Functions] leaves out too), or more entries than [MaxFunctions].
// The errors of the first two wrap [ErrTruncated]. Err is nil when every
// entry announced was read; [File.Warnings] reports the same conditions
// as warnings of kind WarnTableTruncated.
func (s *TableScanner) Err() error { return s.err }

// Warnings returns what [File.Warnings] returns for the same image, after
// reading the rest of the table if Next has not yet returned false. The
// checks run as the entries pass, in memory of fixed size, except for an
// unsorted table: the overlaps of entries are then found in address
// order, which Warnings reads the table again to sort, with 24 bytes an
// entry.
func (s *TableScanner) Warnings() []Warning {
	for s.Next() {
	}
	keys := &s.keyWarnings
	if s.entries.unsorted {
		keys = s.sortedKeyWarnings()
	}
	return mergeWarnings(&s.tableWarnings, &s.entryWarnings, keys)
}

// fill reads the next entries into s.b and reports whether it holds one.
func (s *TableScanner) fill() bool {
	if s.rerr != nil || s.next >= s.count {
		return false
	}
	f := s.f
	k := min(s.count-s.next, scanChunk)
	b := s.buf[:k*unwindinfo.RuntimeFunctionSize]
	n, err := f.ReadRVA(b, f.excRVA+s.next*unwindinfo.RuntimeFunctionSize)
	n -= n % unwindinfo.RuntimeFunctionSize
	s.b = b[:n]
	if err != nil {
		s.rerr = err
		s.rerrN = int(s.next) + n/unwindinfo.RuntimeFunctionSize
		s.tableWarnings.add(WarnTableTruncated, -1, "read function table entry %d at rva %#x: %v", s.rerrN,
			f.excRVA+uint32(s.rerrN)*unwindinfo.RuntimeFunctionSize, err)
	}
	s.next += k
	return n > 0
}

// finish records the end of the table: the warnings and the error of a
// table shorter than its directory announces.
func (s *TableScanner) finish() {
	s.done = true
	got := uint32(s.n)
	if got >= s.want {
		return
	}
	s.tableWarnings.add(WarnTableTruncated, -1, "function table has %d entries of the %d its size announces", got, s.want)
	rva := s.f.excRVA + got*unwindinfo.RuntimeFunctionSize
	switch {
	case s.rerr != nil:
		s.err = fmt.Errorf("read function table: entry %d of %d at rva %#x: %w", s.rerrN, s.want, rva, s.rerr)
	case got >= MaxFunctions:
		s.err = fmt.Errorf("read function table: %d entries, more than the %d read (the limit for a table)", s.want, MaxFunctions)
	default:
		s.err = fmt.Errorf("read function table: entry %d of %d at rva %#x: past the raw data of its section: %w", got, s.want, rva, ErrTruncated)
	}
}

// checkEntry runs the checks of File.check and File.buildIndex on entry i,
// the latter in file order.
func (s *TableScanner) checkEntry(i int, rf unwindinfo.RuntimeFunction) {
	s.entries.add(s.f, &s.entryWarnings, i, rf)
	if s.entries.unsorted || rf.EndAddress <= rf.BeginAddress {
		// Once the table is found unsorted, Warnings sorts it.
		return
	}
	e := keyed{rf, i}
	var p *keyed
	if s.haveKey {
		p = &s.prevKey
	}
	s.f.checkKey(&s.keyWarnings, p, e)
	s.prevKey, s.haveKey = e, true
}

// sortedKeyWarnings returns the warnings of checkKey for an unsorted
// table: it reads the table again and checks its entries in address
// order, as File.buildIndex does.
func (s *TableScanner) sortedKeyWarnings() *warnList {
	var keys []keyed
	sc := s.f.newScanner(false)
	for sc.Next() {
		if rf := sc.Function(); rf.EndAddress > rf.BeginAddress {
			keys = append(keys, keyed{rf, sc.Count() - 1})
		}
	}
	sortKeys(keys)
	var w warnList
	for k, e := range keys {
		var p *keyed
		if k > 0 {
			p = &keys[k-1]
		}
		s.f.checkKey(&w, p, e)
	}
	return &w
}
