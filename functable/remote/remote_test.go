package remote

import (
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/fntable/fntable/functable"
	"github.com/fntable/fntable/unwind"
	"github.com/fntable/fntable/unwindinfo"
)

const testAddr = 0x7f0012340000

func rf(b, e, u uint32) unwindinfo.RuntimeFunction {
	return unwindinfo.RuntimeFunction{BeginAddress: b, EndAddress: e, UnwindData: u}
}

// builder writes lists in the published layout, independently of the
// writer, for tests that run on every OS.
type builder struct {
	b    []byte
	addr uint64
	recs []uint64 // record offsets, in list order
}

func newBuilder(addr uint64) *builder {
	bl := &builder{b: make([]byte, functable.HeaderSize), addr: addr}
	copy(bl.b, functable.LayoutMagic)
	bl.put32(functable.HdrVersion, functable.LayoutVersion)
	bl.put32(functable.HdrHeaderSize, functable.HeaderSize)
	bl.put32(functable.HdrRecordSize, functable.RecordSize)
	bl.put32(functable.HdrPid, 4242)
	bl.put64(functable.HdrGeneration, 6)
	return bl
}

func (bl *builder) put32(off uint64, v uint32) { binary.LittleEndian.PutUint32(bl.b[off:], v) }
func (bl *builder) put64(off uint64, v uint64) { binary.LittleEndian.PutUint64(bl.b[off:], v) }

// alloc appends n zero bytes, 16-aligned, and returns their offset.
func (bl *builder) alloc(n int) uint64 {
	for len(bl.b)%16 != 0 {
		bl.b = append(bl.b, 0)
	}
	off := uint64(len(bl.b))
	bl.b = append(bl.b, make([]byte, n)...)
	return off
}

// add appends a record for t (its Record, FunctionTable of sorted tables
// and OutOfProcessCallbackDll pointer are filled in).
func (bl *builder) add(t *Table) {
	off := bl.alloc(functable.RecordSize)
	t.Record = bl.addr + off
	if t.Type != functable.RF_CALLBACK {
		a := bl.alloc(int(t.MaximumEntryCount) * functable.RuntimeFunctionSize)
		for i, e := range t.Entries {
			o := a + uint64(i)*12
			bl.put32(o, e.BeginAddress)
			bl.put32(o+4, e.EndAddress)
			bl.put32(o+8, e.UnwindData)
		}
		t.FunctionTable = bl.addr + a
	}
	bl.put64(off+functable.RecFunctionTable, t.FunctionTable)
	bl.put64(off+functable.RecTimeStamp, t.TimeStamp)
	bl.put64(off+functable.RecMinimumAddress, t.MinimumAddress)
	bl.put64(off+functable.RecMaximumAddress, t.MaximumAddress)
	bl.put64(off+functable.RecBaseAddress, t.BaseAddress)
	bl.put64(off+functable.RecCallback, t.Callback)
	bl.put64(off+functable.RecContext, t.Context)
	if t.OutOfProcessCallbackDll != "" {
		u := append(utf16.Encode([]rune(t.OutOfProcessCallbackDll)), 0)
		a := bl.alloc(2 * len(u))
		for i, c := range u {
			binary.LittleEndian.PutUint16(bl.b[a+uint64(2*i):], c)
		}
		bl.put64(off+functable.RecOutOfProcessCallbackDll, bl.addr+a)
	}
	bl.put32(off+functable.RecType, uint32(t.Type))
	bl.put32(off+functable.RecEntryCount, t.EntryCount)
	bl.put32(off+functable.RecMaximumEntryCount, t.MaximumEntryCount)
	if t.Growable {
		bl.put32(off+functable.RecFlags, functable.RecFlagGrowable)
	}
	bl.recs = append(bl.recs, off)
}

// bytes links the records and fills in the header's sizes.
func (bl *builder) bytes() []byte {
	head := uint64(functable.HdrListHead)
	prev := head
	for _, r := range bl.recs {
		bl.put64(prev, bl.addr+r)
		bl.put64(r+8, bl.addr+prev)
		prev = r
	}
	bl.put64(prev, bl.addr+head)
	bl.put64(head+8, bl.addr+prev)
	bl.alloc(0)
	bl.put64(functable.HdrMappingAddress, bl.addr)
	bl.put64(functable.HdrMappingSize, uint64(len(bl.b)))
	bl.put64(functable.HdrUsedSize, uint64(len(bl.b)))
	bl.put32(functable.HdrTableCount, uint32(len(bl.recs)))
	return bl.b
}

// sampleTables returns one table of each kind.
func sampleTables() []Table {
	return []Table{
		{Type: functable.RF_SORTED, TimeStamp: 133000000000000000, MinimumAddress: 0x10010, MaximumAddress: 0x10050, BaseAddress: 0x10000,
			EntryCount: 3, MaximumEntryCount: 3, Entries: []unwindinfo.RuntimeFunction{rf(0x10, 0x20, 0x100), rf(0x20, 0x30, 0x104), rf(0x40, 0x50, 0x108)}},
		{Type: functable.RF_UNSORTED, MinimumAddress: 0x20000, MaximumAddress: 0x20050, BaseAddress: 0x20000,
			EntryCount: 2, MaximumEntryCount: 2, Entries: []unwindinfo.RuntimeFunction{rf(0x40, 0x50, 8), rf(0, 0x10, 4)}},
		{Type: functable.RF_SORTED, Growable: true, MinimumAddress: 0x70000, MaximumAddress: 0x80000, BaseAddress: 0x70000,
			EntryCount: 1, MaximumEntryCount: 4, Entries: []unwindinfo.RuntimeFunction{rf(0, 0x10, 0x1000)}},
		{Type: functable.RF_CALLBACK, FunctionTable: 0x40003, MinimumAddress: 0x40000, MaximumAddress: 0x41000, BaseAddress: 0x40000,
			Callback: 0x5555aaaa0000, Context: 0x1234, OutOfProcessCallbackDll: "/opt/jit/libprovider-é𝄞.so"},
		{Type: functable.RF_SORTED, MinimumAddress: 0, MaximumAddress: 0, BaseAddress: 0x90000}, // empty
	}
}

func sampleList() ([]byte, []Table) {
	bl := newBuilder(testAddr)
	ts := sampleTables()
	for i := range ts {
		bl.add(&ts[i])
	}
	return bl.bytes(), ts
}

func memOf(b []byte) *unwind.SplicedMemory {
	var m unwind.SplicedMemory
	m.Add(testAddr, b)
	return &m
}

func noPause(int) {}

func testRead(mem Memory, m Mapping) (*Snapshot, error) {
	return read(mem, m, readConfig{attempts: 5, pause: noPause})
}

// sameTables compares the exported fields.
func sameTables(t *testing.T, got, want []Table) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d tables, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		g.sorted, g.res, g.array, g.dll, g.dllLen = nil, nil, 0, 0, 0
		w.sorted, w.res, w.array, w.dll, w.dllLen = nil, nil, 0, 0, 0
		if len(g.Entries) == 0 && len(w.Entries) == 0 {
			g.Entries, w.Entries = nil, nil
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("table %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
}

func TestReadSynthetic(t *testing.T) {
	b, want := sampleList()
	s, err := testRead(memOf(b), Mapping{Addr: testAddr, Size: uint64(len(b))})
	if err != nil {
		t.Fatal(err)
	}
	if s.Pid != 4242 || s.Generation != 6 || s.MappingAddress != testAddr || s.UsedSize != uint64(len(b)) || s.Retries != 0 {
		t.Errorf("snapshot %+v", s)
	}
	sameTables(t, s.Tables, want)
	if got := s.Tables[0].Registered(); got.Year() != 2022 {
		t.Errorf("registered %v", got)
	}
	if s.Tables[3].Identifier() != 0x40003 || s.Tables[0].Identifier() != 0 {
		t.Error("identifiers")
	}
	cases := []struct {
		pc   uint64
		ok   bool
		base uint64
		unw  uint32
	}{
		{0x10010, true, 0x10000, 0x100},
		{0x1004f, true, 0x10000, 0x108},
		{0x10035, false, 0, 0}, // a gap
		{0x10050, false, 0, 0},
		{0x20000, true, 0x20000, 4}, // unsorted
		{0x20045, true, 0x20000, 8},
		{0x70005, true, 0x70000, 0x1000}, // growable
		{0x70015, false, 0, 0},           // beyond its count
		{0x40100, false, 0, 0},           // callback: answered elsewhere
		{0x90000, false, 0, 0},
		{0, false, 0, 0},
	}
	for _, c := range cases {
		fn, base, ok := s.LookupFunctionEntry(c.pc)
		if ok != c.ok || ok && (base != c.base || fn.UnwindData != c.unw) {
			t.Errorf("lookup %#x: %+v %#x %v", c.pc, fn, base, ok)
		}
	}
	if tb := s.Table(0x40100); tb == nil || tb.Type != functable.RF_CALLBACK {
		t.Error("Table of a callback range")
	}
	// A mapping found smaller than the list now is: the rest is read too.
	s2, err := testRead(memOf(b), Mapping{Addr: testAddr, Size: 0x100})
	if err != nil || len(s2.Tables) != len(want) {
		t.Errorf("small mapping: %v", err)
	}
}

func TestReadEmpty(t *testing.T) {
	b := newBuilder(testAddr).bytes()
	s, err := testRead(memOf(b), Mapping{Addr: testAddr, Size: 4096})
	if err != nil || len(s.Tables) != 0 {
		t.Fatal(s, err)
	}
	if _, _, ok := s.LookupFunctionEntry(0x1000); ok {
		t.Error("lookup in an empty list")
	}
}

// TestReadOverlappingRanges: with overlapping ranges, the first table in
// list order answers (RtlLookupFunctionEntry).
func TestReadOverlappingRanges(t *testing.T) {
	bl := newBuilder(testAddr)
	bl.add(&Table{Type: functable.RF_SORTED, MinimumAddress: 0x2000, MaximumAddress: 0x2200, BaseAddress: 0x2000,
		EntryCount: 1, MaximumEntryCount: 1, Entries: []unwindinfo.RuntimeFunction{rf(0, 0x100, 1)}})
	bl.add(&Table{Type: functable.RF_SORTED, MinimumAddress: 0x1000, MaximumAddress: 0x3000, BaseAddress: 0x1000,
		EntryCount: 1, MaximumEntryCount: 1, Entries: []unwindinfo.RuntimeFunction{rf(0, 0x2000, 2)}})
	b := bl.bytes()
	s, err := testRead(memOf(b), Mapping{Addr: testAddr, Size: uint64(len(b))})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		pc  uint64
		unw uint32
	}{{0x2050, 1}, {0x1050, 2}, {0x2f00, 2}, {0x2150, 0}} {
		fn, _, ok := s.LookupFunctionEntry(c.pc)
		if c.unw == 0 && ok || c.unw != 0 && (!ok || fn.UnwindData != c.unw) {
			t.Errorf("%#x: %+v %v", c.pc, fn, ok)
		}
	}
}

// TestReadMalformed: each corruption is reported, never a panic.
func TestReadMalformed(t *testing.T) {
	good, _ := sampleList()
	first := binary.LittleEndian.Uint64(good[functable.HdrListHead:]) - testAddr
	second := binary.LittleEndian.Uint64(good[first:]) - testAddr
	callback := uint64(0)
	for off := first; off != functable.HdrListHead; off = binary.LittleEndian.Uint64(good[off:]) - testAddr {
		if binary.LittleEndian.Uint32(good[off+functable.RecType:]) == uint32(functable.RF_CALLBACK) {
			callback = off
		}
	}
	p64 := func(off, v uint64) func([]byte) { return func(b []byte) { binary.LittleEndian.PutUint64(b[off:], v) } }
	p32 := func(off uint64, v uint32) func([]byte) {
		return func(b []byte) { binary.LittleEndian.PutUint32(b[off:], v) }
	}
	cases := []struct {
		name   string
		change func([]byte)
		want   error // nil: any FormatError
		text   string
	}{
		{"magic", func(b []byte) { b[0] = 'X' }, ErrNotList, ""},
		{"version", p32(functable.HdrVersion, 3), ErrUnsupportedVersion, ""},
		{"version 0", p32(functable.HdrVersion, 0), ErrUnsupportedVersion, ""},
		{"header size small", p32(functable.HdrHeaderSize, 0x48), nil, "header size"},
		{"header size past used", p32(functable.HdrHeaderSize, 1<<20), nil, "header size"},
		{"record size", p32(functable.HdrRecordSize, 0x58), nil, "record size"},
		{"record size huge", p32(functable.HdrRecordSize, 1<<30), nil, "record size"},
		{"mapping address", p64(functable.HdrMappingAddress, testAddr+0x1000), nil, "says it is at"},
		{"used size huge", p64(functable.HdrUsedSize, 1<<40), nil, "used size"},
		{"used size tiny", p64(functable.HdrUsedSize, 8), nil, "used size"},
		{"used size past memory", p64(functable.HdrUsedSize, uint64(len(good))+0x1000), unwind.ErrShortRead, ""},
		{"mapping size", p64(functable.HdrMappingSize, 0x10), nil, "mapping size"},
		{"count high", p32(functable.HdrTableCount, 6), nil, "count"},
		{"count low", p32(functable.HdrTableCount, 4), nil, "longer than its count"},
		{"count huge", p32(functable.HdrTableCount, functable.MaxTables+1), nil, "too many"},
		{"header flags", p32(functable.HdrFlags, 1), nil, "flags"},
		{"flink outside", p64(functable.HdrListHead, 0x1000), nil, "outside"},
		{"flink misaligned", p64(functable.HdrListHead, testAddr+first+4), nil, "outside"},
		{"flink into header", p64(functable.HdrListHead, testAddr+0x40), nil, "outside"},
		{"flink at the end", p64(functable.HdrListHead, testAddr+uint64(len(good))-8), nil, "outside"},
		{"head blink", p64(functable.HdrListHead+8, testAddr+first), nil, "Blink of the head"},
		{"record blink", p64(second+8, testAddr+second), nil, "Blink"},
		{"cycle", p64(second, testAddr+first), nil, "Blink"},
		{"self loop", p64(first, testAddr+first), nil, "Blink"},
		{"type", p32(first+functable.RecType, 3), nil, "type"},
		{"range", p64(first+functable.RecMinimumAddress, 0x20000), nil, "range"},
		{"count over the maximum", p32(first+functable.RecEntryCount, 4), nil, "more entries than the maximum"},
		{"static with a larger maximum", p32(first+functable.RecMaximumEntryCount, 4), nil, "with a maximum of"},
		{"array outside", p64(first+functable.RecFunctionTable, testAddr+1<<20), nil, "array"},
		{"array misaligned", p64(first+functable.RecFunctionTable, testAddr+first+0x62), nil, "array"},
		{"array over a record", p64(second+functable.RecFunctionTable, testAddr+first), nil, "overlaps"},
		{"array over the header", p64(first+functable.RecFunctionTable, testAddr+0x10), nil, "overlaps"},
		{"flags", p32(first+functable.RecFlags, 6), nil, "flags"},
		{"callback identifier", p64(callback+functable.RecFunctionTable, 0x40001), nil, "identifier"},
		{"callback entries", p32(callback+functable.RecMaximumEntryCount, 1), nil, "entries"},
		{"callback growable", p32(callback+functable.RecFlags, functable.RecFlagGrowable), nil, "entries"},
		{"dll outside", p64(callback+functable.RecOutOfProcessCallbackDll, 0x10), nil, "path"},
		{"dll odd", p64(callback+functable.RecOutOfProcessCallbackDll, testAddr+callback+functable.RecordSize+1), nil, "path"},
		{"dll unterminated", func(b []byte) {
			b[len(b)-2] = 'x'
			binary.LittleEndian.PutUint64(b[callback+functable.RecOutOfProcessCallbackDll:], testAddr+uint64(len(b))-2)
		}, nil, "terminated"},
		{"dll over a record", p64(callback+functable.RecOutOfProcessCallbackDll, testAddr+first+functable.RecTimeStamp), nil, "overlaps"},
	}
	for _, c := range cases {
		b := append([]byte(nil), good...)
		c.change(b)
		s, err := testRead(memOf(b), Mapping{Addr: testAddr, Size: uint64(len(b))})
		var fe *FormatError
		switch {
		case err == nil:
			t.Errorf("%s: no error, %d tables", c.name, len(s.Tables))
		case c.want != nil && !errors.Is(err, c.want):
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		case c.want == nil && (!errors.As(err, &fe) || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.text)):
			t.Errorf("%s: %v, want a FormatError about %q", c.name, err, c.text)
		}
	}
	// A path too long.
	bl := newBuilder(testAddr)
	bl.add(&Table{Type: functable.RF_CALLBACK, FunctionTable: 3, OutOfProcessCallbackDll: strings.Repeat("x", functable.MaxDllLength+1)})
	b := bl.bytes()
	if _, err := testRead(memOf(b), Mapping{Addr: testAddr, Size: uint64(len(b))}); err == nil || !strings.Contains(err.Error(), "longer") {
		t.Errorf("long path: %v", err)
	}
	// The longest path.
	bl = newBuilder(testAddr)
	bl.add(&Table{Type: functable.RF_CALLBACK, FunctionTable: 3, OutOfProcessCallbackDll: strings.Repeat("x", functable.MaxDllLength)})
	b = bl.bytes()
	if s, err := testRead(memOf(b), Mapping{Addr: testAddr, Size: uint64(len(b))}); err != nil || len(s.Tables[0].OutOfProcessCallbackDll) != functable.MaxDllLength {
		t.Errorf("longest path: %v", err)
	}
	// Nothing mapped.
	if _, err := testRead(memOf(good), Mapping{Addr: testAddr + 1<<30}); !errors.Is(err, unwind.ErrShortRead) {
		t.Errorf("unmapped: %v", err)
	}
}

// flipMemory changes the generation of the list it serves, as a writer
// would: reads see an odd generation or a new even one until settle reads
// have happened.
type flipMemory struct {
	b      []byte
	reads  int
	settle int
	odd    bool // keep the generation odd (a writer stopped mid-change)
}

func (m *flipMemory) ReadMemory(p []byte, addr uint64) (int, error) {
	m.reads++
	gen := uint64(8)
	switch {
	case m.odd:
		gen = 9
	case m.reads < m.settle:
		gen = uint64(10 + m.reads)
	}
	binary.LittleEndian.PutUint64(m.b[functable.HdrGeneration:], gen)
	return memOf(m.b).ReadMemory(p, addr)
}

func TestReadRetries(t *testing.T) {
	b, want := sampleList()
	m := &flipMemory{b: b, settle: 12}
	s, err := read(m, Mapping{Addr: testAddr, Size: uint64(len(b))}, readConfig{attempts: 20, pause: noPause})
	if err != nil {
		t.Fatal(err)
	}
	if s.Retries == 0 || s.Generation != 8 {
		t.Errorf("retries %d generation %d", s.Retries, s.Generation)
	}
	sameTables(t, s.Tables, want)
	m = &flipMemory{b: b, odd: true}
	if _, err := read(m, Mapping{Addr: testAddr, Size: uint64(len(b))}, readConfig{attempts: 20, pause: noPause}); !errors.Is(err, ErrInconsistent) {
		t.Errorf("odd forever: %v", err)
	}
	if m.reads != 20 {
		t.Errorf("%d reads for 20 attempts", m.reads)
	}
}

func TestParseMaps(t *testing.T) {
	const maps = `55d4c9a00000-55d4c9a02000 r--p 00000000 08:01 1234 /usr/bin/jit
7f0000000000-7f0000010000 rw-s 00000000 00:01 2049 /memfd:fntable-function-tables (deleted)
7f0000010000-7f0000030000 rw-s 00010000 00:01 2049 /memfd:fntable-function-tables (deleted)
7f0000030000-7f0040000000 ---p 00000000 00:00 0
7f1000000000-7f1000010000 rw-s 00000000 00:01 2050 /memfd:fntable-function-tables (deleted)
7f2000000000-7f2000010000 rw-s 00000000 00:01 2051 /memfd:fntable-function-tables-other (deleted)
7f3000000000-7f3000001000 rw-s 00001000 00:01 2052 /memfd:fntable-function-tables (deleted)
7f4000000000-7f4000001000 rw-s 00000000 00:01 2053 /memfd:fntable-function-tables
7fff00000000-7fff00021000 rw-p 00000000 00:00 0 [stack]
`
	got, err := ParseMaps(strings.NewReader(maps))
	if err != nil {
		t.Fatal(err)
	}
	want := []Mapping{{0x7f0000000000, 0x30000, 2049}, {0x7f1000000000, 0x10000, 2050}, {0x7f4000000000, 0x1000, 2053}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v", got)
	}
	for _, bad := range []string{
		"zz-7f00 rw-s 00000000 00:01 1 /memfd:fntable-function-tables (deleted)\n",
		"7f00-7e00 rw-s 00000000 00:01 1 /memfd:fntable-function-tables (deleted)\n",
		"7f00-7f10 rw-s 0000g000 00:01 1 /memfd:fntable-function-tables (deleted)\n",
	} {
		if _, err := ParseMaps(strings.NewReader(bad)); err == nil {
			t.Errorf("no error for %q", bad)
		}
	}
}

func FuzzRead(f *testing.F) {
	good, _ := sampleList()
	f.Add(good, uint64(len(good)))
	f.Add(newBuilder(testAddr).bytes(), uint64(0))
	f.Add(good[:functable.HeaderSize], uint64(0x1000))
	bl := newBuilder(testAddr)
	ts := sampleTables()
	bl.add(&ts[3])
	bl.add(&ts[2])
	f.Add(bl.bytes(), uint64(0))
	f.Fuzz(func(t *testing.T, b []byte, size uint64) {
		// Read trusts the size of the mapping it is given (Find takes it
		// from the kernel) to read the list at once; keep it near the data.
		size %= 2*uint64(len(b)) + 1
		s, err := read(memOf(b), Mapping{Addr: testAddr, Size: size}, readConfig{attempts: 3, pause: noPause})
		if err != nil {
			return
		}
		// Exercise every accessor; check what Read promises.
		if len(s.Tables) > functable.MaxTables || s.UsedSize > uint64(len(b)) {
			t.Fatalf("%d tables, used %d of %d", len(s.Tables), s.UsedSize, len(b))
		}
		for i := range s.Tables {
			tb := &s.Tables[i]
			if int(tb.EntryCount) != len(tb.Entries) || tb.EntryCount > tb.MaximumEntryCount || tb.MinimumAddress > tb.MaximumAddress {
				t.Fatalf("table %d: %+v", i, tb)
			}
			tb.Registered()
			tb.Identifier()
			s.LookupFunctionEntry(tb.MinimumAddress)
			s.LookupFunctionEntry(tb.MaximumAddress - 1)
			for _, e := range tb.Entries {
				s.LookupFunctionEntry(tb.BaseAddress + uint64(e.BeginAddress))
			}
		}
	})
}

// TestChanging reports lists in the middle of a change (odd generation)
// and lists that cannot be read.
func TestChanging(t *testing.T) {
	const addr = 0x7f0000000000
	for _, c := range []struct {
		gen  uint64
		want bool
	}{{0, false}, {2, false}, {3, true}} {
		b := make([]byte, 0x100)
		binary.LittleEndian.PutUint64(b[functable.HdrGeneration:], c.gen)
		mem := &unwind.SplicedMemory{}
		mem.Add(addr, b)
		if got := Changing(mem, []Mapping{{Addr: addr, Size: 0x100}}); got != c.want {
			t.Errorf("generation %d: Changing %v, want %v", c.gen, got, c.want)
		}
		if !Changing(mem, []Mapping{{Addr: addr, Size: 0x100}, {Addr: addr + 0x1000, Size: 0x100}}) {
			t.Errorf("an unreadable list is not reported")
		}
	}
	if Changing(&unwind.SplicedMemory{}, nil) {
		t.Error("no lists: changing")
	}
}
