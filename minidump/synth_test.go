package minidump

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
	"unicode/utf16"

	"github.com/fntable/fntable/internal/winetest"
	"github.com/fntable/fntable/unwindinfo"
)

// synth builds minidumps for tests: a header, a directory of a fixed
// number of entries, then blobs appended in order.
type synth struct {
	buf []byte
	n   int
}

func newSynth(streams int) *synth {
	return &synth{buf: make([]byte, headerSize+directorySize*streams), n: streams}
}

// blob appends b, 4-byte aligned, and returns its RVA.
func (s *synth) blob(b []byte) uint32 {
	for len(s.buf)%4 != 0 {
		s.buf = append(s.buf, 0)
	}
	rva := uint32(len(s.buf))
	s.buf = append(s.buf, b...)
	return rva
}

// stream sets directory entry i.
func (s *synth) stream(i int, t StreamType, rva, size uint32) {
	d := s.buf[headerSize+directorySize*i:]
	binary.LittleEndian.PutUint32(d, uint32(t))
	binary.LittleEndian.PutUint32(d[4:], size)
	binary.LittleEndian.PutUint32(d[8:], rva)
}

// add appends b as stream i of type t.
func (s *synth) add(i int, t StreamType, b []byte) uint32 {
	rva := s.blob(b)
	s.stream(i, t, rva, uint32(len(b)))
	return rva
}

func (s *synth) bytes() []byte {
	h := s.buf[:headerSize]
	binary.LittleEndian.PutUint32(h, MINIDUMP_SIGNATURE)
	binary.LittleEndian.PutUint32(h[4:], 0xa0f1a793)
	binary.LittleEndian.PutUint32(h[8:], uint32(s.n))
	binary.LittleEndian.PutUint32(h[12:], headerSize)
	return s.buf
}

// le encodes values of fixed size little-endian: uint8..uint64.
func le(vals ...any) []byte {
	var b []byte
	for _, v := range vals {
		switch v := v.(type) {
		case uint8:
			b = append(b, v)
		case uint16:
			b = binary.LittleEndian.AppendUint16(b, v)
		case uint32:
			b = binary.LittleEndian.AppendUint32(b, v)
		case int:
			b = binary.LittleEndian.AppendUint32(b, uint32(v))
		case uint64:
			b = binary.LittleEndian.AppendUint64(b, v)
		case []byte:
			b = append(b, v...)
		default:
			panic("le: unsupported type")
		}
	}
	return b
}

func mdString(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := le(len(u) * 2)
	for _, c := range u {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	return append(b, 0, 0)
}

func open(t *testing.T, b []byte) *File {
	t.Helper()
	f, err := NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// isMalformed reports whether err is a *FormatError wrapping ErrMalformed
// (and ErrTruncated when truncated is set).
func isMalformed(err error, truncated bool) bool {
	var fe *FormatError
	return errors.As(err, &fe) && errors.Is(err, ErrMalformed) && (!truncated || errors.Is(err, ErrTruncated))
}

func TestNewFileErrors(t *testing.T) {
	valid := newSynth(1)
	valid.add(0, SystemInfoStream, make([]byte, systemInfoSize))
	good := valid.bytes()

	patch := func(off int, v uint32) []byte {
		b := bytes.Clone(good)
		binary.LittleEndian.PutUint32(b[off:], v)
		return b
	}
	for _, tc := range []struct {
		name      string
		data      []byte
		notDump   bool
		truncated bool
	}{
		{"empty", nil, true, false},
		{"three bytes of signature", []byte("MDM"), true, false},
		{"elf", []byte("\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00"), true, false},
		{"pe", []byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00"), true, false},
		{"header cut short", good[:20], false, true},
		{"bad version", patch(4, 0xa0f10001), false, false},
		{"huge stream count", patch(8, 0xffffffff), false, false},
		{"directory past eof", patch(12, uint32(len(good))), false, true},
		{"directory rva near 4 GiB", patch(12, 0xfffffff0), false, true},
		{"truncated directory", patch(8, 10), false, true},
		{"directory cut in the middle of an entry", good[:headerSize+6], false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := NewFile(bytes.NewReader(tc.data))
			if f != nil || err == nil {
				t.Fatalf("NewFile = %v, %v; want an error", f, err)
			}
			if got := errors.Is(err, ErrNotMinidump); got != tc.notDump {
				t.Errorf("errors.Is(%v, ErrNotMinidump) = %v", err, got)
			}
			if !tc.notDump && !isMalformed(err, tc.truncated) {
				t.Errorf("error %v is not a *FormatError wrapping ErrMalformed (truncated %v)", err, tc.truncated)
			}
		})
	}
	if _, err := NewFile(bytes.NewReader(good)); err != nil {
		t.Fatalf("valid dump: %v", err)
	}
}

func TestOpenOtherFormat(t *testing.T) {
	f, err := Open(winetest.Testdata(t, "pe/symbolic-cfi_chained_loop.exe"))
	if f != nil || !errors.Is(err, ErrNotMinidump) || errors.Is(err, ErrMalformed) {
		t.Errorf("Open(a PE image) = %v, %v; want ErrNotMinidump", f, err)
	}
	if _, err := Open("no-such-file.dmp"); err == nil || errors.Is(err, ErrNotMinidump) {
		t.Errorf("Open(a missing file) = %v", err)
	}
}

func TestStreamErrors(t *testing.T) {
	// A stream whose data lies past the end of the file.
	s := newSynth(12)
	for i, typ := range []StreamType{ThreadListStream, ModuleListStream, MemoryListStream, ExceptionStream, SystemInfoStream, FunctionTableStream, MiscInfoStream, ThreadInfoListStream, ThreadNamesStream, MemoryInfoListStream, UnloadedModuleListStream, BreakpadInfoStream} {
		s.stream(i, typ, 0x100, 0x10000)
	}
	f := open(t, s.bytes())
	for name, call := range accessors(f) {
		if err := call(); !isMalformed(err, true) {
			t.Errorf("%s on a stream past eof: %v; want a truncation error", name, err)
		}
	}
	if _, err := f.Memory(); !isMalformed(err, true) {
		t.Errorf("Memory on a stream past eof: %v", err)
	}

	// Huge counts in small streams fail before they allocate.
	s = newSynth(4)
	s.add(0, ThreadListStream, le(uint32(0xfffffff0)))
	s.add(1, ModuleListStream, le(0x40000000, 0))
	s.add(2, MemoryListStream, le(uint32(0xffffffff), 0, 0, 0))
	s.add(3, Memory64ListStream, le(uint64(1)<<60, uint64(0)))
	f = open(t, s.bytes())
	allocs := testing.AllocsPerRun(10, func() {
		if th, err := f.Threads(); th != nil || !isMalformed(err, true) {
			t.Errorf("Threads = %v, %v", th, err)
		}
		if m, err := f.Modules(); m != nil || !isMalformed(err, true) {
			t.Errorf("Modules = %v, %v", m, err)
		}
		if m, err := f.MemoryList(); m != nil || !isMalformed(err, true) {
			t.Errorf("MemoryList = %v, %v", m, err)
		}
		if m, err := f.Memory64List(); m != nil || !isMalformed(err, true) {
			t.Errorf("Memory64List = %v, %v", m, err)
		}
	})
	if allocs > 100 {
		t.Errorf("%v allocations for four bad counts", allocs)
	}
}

// accessors returns every stream accessor of f as a func() error.
func accessors(f *File) map[string]func() error {
	return map[string]func() error{
		"Threads":         func() error { _, err := f.Threads(); return err },
		"ThreadInfoList":  func() error { _, err := f.ThreadInfoList(); return err },
		"ThreadNames":     func() error { _, err := f.ThreadNames(); return err },
		"Modules":         func() error { _, err := f.Modules(); return err },
		"MemoryList":      func() error { _, err := f.MemoryList(); return err },
		"Exception":       func() error { _, err := f.Exception(); return err },
		"SystemInfo":      func() error { _, err := f.SystemInfo(); return err },
		"FunctionTables":  func() error { _, err := f.FunctionTables(); return err },
		"MiscInfo":        func() error { _, err := f.MiscInfo(); return err },
		"MemoryInfoList":  func() error { _, err := f.MemoryInfoList(); return err },
		"UnloadedModules": func() error { _, err := f.UnloadedModules(); return err },
		"BreakpadInfo":    func() error { _, err := f.BreakpadInfo(); return err },
	}
}

func TestAbsentStreams(t *testing.T) {
	f := open(t, newSynth(0).bytes())
	for name, call := range accessors(f) {
		if err := call(); err != nil {
			t.Errorf("%s on a dump without the stream: %v", name, err)
		}
	}
	if l, err := f.Memory64List(); l != nil || err != nil {
		t.Errorf("Memory64List = %v, %v", l, err)
	}
	m, err := f.Memory()
	if err != nil || m == nil || len(m.Ranges()) != 0 {
		t.Fatalf("Memory = %v, %v", m, err)
	}
	if n, err := m.ReadMemory(make([]byte, 1), 0x1000); n != 0 || !errors.Is(err, ErrShortRead) {
		t.Errorf("ReadMemory = %d, %v", n, err)
	}
}

func TestStrings(t *testing.T) {
	for _, tc := range []struct {
		name      string
		str       []byte
		want      string
		truncated bool
		bad       bool
	}{
		{"ascii", mdString(`C:\Windows\System32\ntdll.dll`), `C:\Windows\System32\ntdll.dll`, false, false},
		{"empty", mdString(""), "", false, false},
		{"non-bmp", mdString("jit-\U0001F600.dll"), "jit-\U0001F600.dll", false, false},
		{"no terminator", le(4, uint16('a'), uint16('b')), "ab", false, false},
		{"unpaired surrogate", le(2, uint16(0xd800), uint16(0)), "\uFFFD", false, false},
		{"odd length", le(3, uint16('a'), uint16('b')), "", false, true},
		{"huge length", le(0x7ffffffe, uint16('a')), "", false, true},
		{"length past eof", le(0x100, uint16('a')), "", true, true},
		{"length field cut", []byte{2, 0}, "", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSynth(1)
			nameRVA := s.blob(nil) + 4 + moduleSize
			mod := le(uint64(0x7ff700000000), 0x1000, 0, 0, nameRVA, make([]byte, moduleSize-24))
			s.add(0, ModuleListStream, le(1, mod))
			s.buf = append(s.buf, tc.str...)
			f := open(t, s.bytes())
			mods, err := f.Modules()
			if len(mods) != 1 {
				t.Fatalf("Modules = %v, %v", mods, err)
			}
			if mods[0].Name != tc.want {
				t.Errorf("Name = %q, want %q", mods[0].Name, tc.want)
			}
			if tc.bad != (err != nil) || tc.bad && !isMalformed(err, tc.truncated) {
				t.Errorf("error %v; want malformed %v (truncated %v)", err, tc.bad, tc.truncated)
			}
		})
	}
}

func TestListPadding(t *testing.T) {
	// Breakpad's 64-bit writers put 4 bytes between the count and the
	// entries; both layouts decode the same.
	entry := le(uint64(0x1000), 16, 0)
	for _, pad := range []bool{false, true} {
		s := newSynth(1)
		list := le(1)
		if pad {
			list = append(list, 0xcc, 0xcc, 0xcc, 0xcc)
		}
		s.add(0, MemoryListStream, append(list, entry...))
		f := open(t, s.bytes())
		l, err := f.MemoryList()
		if err != nil || len(l) != 1 || l[0].StartOfMemoryRange != 0x1000 || l[0].Memory.DataSize != 16 {
			t.Errorf("padding %v: MemoryList = %+v, %v", pad, l, err)
		}
	}
}

func TestMemoryOverlap(t *testing.T) {
	a := bytes.Repeat([]byte{0xaa}, 16)
	b := bytes.Repeat([]byte{0xbb}, 16)
	c := bytes.Repeat([]byte{0xcc}, 64)
	st := bytes.Repeat([]byte{0x55}, 32)
	s := newSynth(3)
	ra, rb := s.blob(a), s.blob(b)
	rc := s.blob(c)
	rs := s.blob(st)
	// MemoryList: A at 0x1000 and B at 0x1008 (overlapping A's second
	// half), then a range that wraps the address space, one past the end
	// of the file, and one of zero bytes.
	s.add(0, MemoryListStream, le(5,
		uint64(0x1000), 16, ra,
		uint64(0x1008), 16, rb,
		uint64(0xfffffffffffffff8), 16, ra,
		uint64(0x9000), 0x100000, rc,
		uint64(0x7000), 0, ra))
	// Memory64List: C at 0xff0..0x1030, under both.
	s.add(1, Memory64ListStream, le(uint64(1), uint64(rc), uint64(0xff0), uint64(64)))
	// A thread whose stack at 0x1020 overlaps C's end.
	th := le(7, 0, 0, 0, uint64(0x5000), uint64(0x1020), 32, rs, 0, 0)
	s.add(2, ThreadListStream, le(1, th))
	f := open(t, s.bytes())
	m, err := f.Memory()
	if !isMalformed(err, false) {
		t.Errorf("Memory error = %v; want the wrapping range reported", err)
	}
	// Paint the ranges lowest priority first: the stack, C, B, then A.
	want := map[uint64]byte{}
	paint := func(addr uint64, v byte, n int) {
		for i := range n {
			want[addr+uint64(i)] = v
		}
	}
	paint(0x1020, 0x55, 32)
	paint(0xff0, 0xcc, 64)
	paint(0x1008, 0xbb, 16)
	paint(0x1000, 0xaa, 16)
	for addr := uint64(0xfe0); addr < 0x1060; addr++ {
		var p [1]byte
		n, err := m.ReadMemory(p[:], addr)
		v, ok := want[addr]
		switch {
		case ok && (n != 1 || err != nil || p[0] != v):
			t.Errorf("ReadMemory(%#x) = %d, %v, %#x; want %#x", addr, n, err, p[0], v)
		case !ok && (n != 0 || !errors.Is(err, ErrShortRead)):
			t.Errorf("ReadMemory(%#x) = %d, %v; want unmapped", addr, n, err)
		}
	}
	// A read across all pieces, and one that runs off the end.
	p := make([]byte, 0x1040-0xff0)
	if n, err := m.ReadMemory(p, 0xff0); n != len(p) || err != nil {
		t.Errorf("ReadMemory across pieces = %d, %v", n, err)
	}
	p = make([]byte, 0x1050-0xff0)
	n, err := m.ReadMemory(p, 0xff0)
	var ue *UnmappedError
	if n != 0x1040-0xff0 || !errors.As(err, &ue) || ue.Addr != 0x1040 {
		t.Errorf("ReadMemory off the end = %d, %v", n, err)
	}
	// The range past the end of the file is cut to what the file holds.
	got := make([]byte, 0x1000)
	n, _ = m.ReadMemory(got, 0x9000)
	if fileLeft := len(s.buf) - int(rc); n != fileLeft {
		t.Errorf("range cut at eof: read %d bytes, file holds %d", n, fileLeft)
	}
	// Ranges are sorted and disjoint.
	rs2 := m.Ranges()
	for i := 1; i < len(rs2); i++ {
		if rs2[i-1].Addr+rs2[i-1].Size > rs2[i].Addr {
			t.Errorf("ranges %+v and %+v overlap", rs2[i-1], rs2[i])
		}
	}
}

func TestThreadContextErrors(t *testing.T) {
	s := newSynth(1)
	ctx := make([]byte, ContextSizeAMD64)
	binary.LittleEndian.PutUint32(ctx[0x30:], 0x10001f)
	rc := s.blob(ctx)
	th1 := le(1, 0, 0, 0, uint64(0), uint64(0), 0, 0, ContextSizeAMD64, rc)
	th2 := le(2, 0, 0, 0, uint64(0), uint64(0), 0, 0, MaxRecordSize+1, rc)
	th3 := le(3, 0, 0, 0, uint64(0), uint64(0), 0, 0, 0x100, uint32(0xffffff00))
	s.add(0, ThreadListStream, le(3, th1, th2, th3))
	f := open(t, s.bytes())
	threads, err := f.Threads()
	if len(threads) != 3 || !isMalformed(err, false) {
		t.Fatalf("Threads = %d threads, %v", len(threads), err)
	}
	if ContextArch(threads[0].Context) != PROCESSOR_ARCHITECTURE_AMD64 || threads[1].Context != nil || threads[2].Context != nil {
		t.Errorf("contexts: %d, %d, %d bytes", len(threads[0].Context), len(threads[1].Context), len(threads[2].Context))
	}
}

func TestContextArch(t *testing.T) {
	amd64 := make([]byte, ContextSizeAMD64)
	binary.LittleEndian.PutUint32(amd64[0x30:], 0x10005f)
	x86 := make([]byte, ContextSizeX86)
	binary.LittleEndian.PutUint32(x86, 0x1003f)
	arm64 := make([]byte, ContextSizeAMD64)
	binary.LittleEndian.PutUint32(arm64[0x30:], 0x40000f)
	for _, tc := range []struct {
		name string
		ctx  []byte
		want ProcessorArchitecture
	}{
		{"amd64", amd64, PROCESSOR_ARCHITECTURE_AMD64},
		{"amd64 with xstate", append(bytes.Clone(amd64), make([]byte, 175)...), PROCESSOR_ARCHITECTURE_AMD64},
		{"amd64 cut short", amd64[:ContextSizeAMD64-1], PROCESSOR_ARCHITECTURE_UNKNOWN},
		{"x86", x86, PROCESSOR_ARCHITECTURE_INTEL},
		{"x86 without extended registers", x86[:204], PROCESSOR_ARCHITECTURE_INTEL},
		{"x86 cut short", x86[:203], PROCESSOR_ARCHITECTURE_UNKNOWN},
		{"other architecture", arm64, PROCESSOR_ARCHITECTURE_UNKNOWN},
		{"empty", nil, PROCESSOR_ARCHITECTURE_UNKNOWN},
	} {
		if got := ContextArch(tc.ctx); got != tc.want {
			t.Errorf("%s: ContextArch = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// funcTableStream encodes a FunctionTableStream with the given native
// descriptor size and entry size; each table is {min, max, base, entries}.
type synthTable struct {
	min, max, base uint64
	typ            FunctionTableType
	entries        []unwindinfo.RuntimeFunction
}

func funcTableStream(native, entrySize uint32, tables ...synthTable) []byte {
	b := le(24, 32, native, entrySize, len(tables), 4, 0)
	for _, tb := range tables {
		b = append(b, le(tb.min, tb.max, tb.base, len(tb.entries), 4)...)
		nat := make([]byte, native)
		if native >= DynamicFunctionTableSizeWin7 {
			binary.LittleEndian.PutUint64(nat[0x20:], tb.min)
			binary.LittleEndian.PutUint64(nat[0x28:], tb.max)
			binary.LittleEndian.PutUint64(nat[0x30:], tb.base)
			binary.LittleEndian.PutUint32(nat[0x50:], uint32(tb.typ))
			binary.LittleEndian.PutUint32(nat[0x54:], uint32(len(tb.entries)))
		}
		b = append(b, nat...)
		for _, e := range tb.entries {
			e := e.Append(nil)
			b = append(b, e...)
			b = append(b, make([]byte, entrySize-12)...)
		}
		b = append(b, 0, 0, 0, 0)
	}
	return b
}

func rf(begin, end, unwind uint32) unwindinfo.RuntimeFunction {
	return unwindinfo.RuntimeFunction{BeginAddress: begin, EndAddress: end, UnwindData: unwind}
}

func TestFunctionTables(t *testing.T) {
	sorted := synthTable{0x10000, 0x20000, 0x10000, RF_SORTED, []unwindinfo.RuntimeFunction{rf(0x100, 0x200, 0x8000), rf(0x200, 0x280, 0x8010), rf(0x300, 0x400, 0x8020)}}
	unsorted := synthTable{0x30000, 0x40000, 0x30000, RF_UNSORTED, []unwindinfo.RuntimeFunction{rf(0x300, 0x400, 0x9020), rf(0x100, 0x200, 0x9000)}}
	// A second table over the first one's range is never searched: the
	// first table that covers a pc wins, as in RtlLookupFunctionEntry.
	shadow := synthTable{0x10000, 0x20000, 0x10000, RF_SORTED, []unwindinfo.RuntimeFunction{rf(0x280, 0x300, 0x7000)}}
	for _, native := range []uint32{DynamicFunctionTableSizeWin7, DynamicFunctionTableSizeWin10, DynamicFunctionTableSizeWin11} {
		s := newSynth(1)
		s.add(0, FunctionTableStream, funcTableStream(native, 12, sorted, unsorted, shadow))
		f := open(t, s.bytes())
		ft, err := f.FunctionTables()
		if err != nil || len(ft.Tables) != 3 {
			t.Fatalf("native %d: FunctionTables = %+v, %v", native, ft, err)
		}
		for i, tb := range []synthTable{sorted, unsorted, shadow} {
			got := ft.Tables[i]
			if !got.NativeOK || got.NativeTable.Type != tb.typ || got.NativeTable.BaseAddress != tb.base || int(got.NativeTable.EntryCount) != len(tb.entries) || len(got.Native) != int(native) {
				t.Errorf("native %d: table %d native = %+v", native, i, got.NativeTable)
			}
			if len(got.Entries) != len(tb.entries) {
				t.Fatalf("table %d: %d entries", i, len(got.Entries))
			}
			for j := range got.Entries {
				if got.Entries[j] != tb.entries[j] {
					t.Errorf("table %d entry %d = %+v, want %+v", i, j, got.Entries[j], tb.entries[j])
				}
			}
		}
		for _, tc := range []struct {
			pc   uint64
			want *unwindinfo.RuntimeFunction
			base uint64
		}{
			{0xffff, nil, 0},
			{0x10000, nil, 0},
			{0x10100, &sorted.entries[0], 0x10000},
			{0x101ff, &sorted.entries[0], 0x10000},
			{0x10200, &sorted.entries[1], 0x10000},
			{0x1027f, &sorted.entries[1], 0x10000},
			{0x10280, nil, 0}, // in shadow's entry, but sorted covers the pc first
			{0x10399, &sorted.entries[2], 0x10000},
			{0x10400, nil, 0},
			{0x30100, &unsorted.entries[1], 0x30000},
			{0x303ff, &unsorted.entries[0], 0x30000},
			{0x30400, nil, 0},
			{0x40000, nil, 0},
		} {
			fn, base, ok := ft.LookupFunctionEntry(tc.pc)
			if ok != (tc.want != nil) || ok && (*fn != *tc.want || base != tc.base) {
				t.Errorf("native %d: LookupFunctionEntry(%#x) = %v, %#x, %v; want %v, %#x", native, tc.pc, fn, base, ok, tc.want, tc.base)
			}
		}
	}

	// Entries that are not x64 RUNTIME_FUNCTIONs (x86 dumps store 16-byte
	// FPO_DATA) are kept raw.
	s := newSynth(1)
	s.add(0, FunctionTableStream, funcTableStream(DynamicFunctionTableSizeWin7, 16, sorted))
	ft, err := open(t, s.bytes()).FunctionTables()
	if err != nil || len(ft.Tables) != 1 || ft.Tables[0].Entries != nil || len(ft.Tables[0].EntryData) != 48 {
		t.Errorf("16-byte entries: %+v, %v", ft, err)
	}
	if _, _, ok := ft.LookupFunctionEntry(0x10100); ok {
		t.Error("LookupFunctionEntry found an entry in a table of 16-byte entries")
	}
	// A native descriptor too short to decode is kept raw.
	s = newSynth(1)
	s.add(0, FunctionTableStream, funcTableStream(0x40, 12, sorted))
	ft, err = open(t, s.bytes()).FunctionTables()
	if err != nil || ft.Tables[0].NativeOK || len(ft.Tables[0].Native) != 0x40 || len(ft.Tables[0].Entries) != 3 {
		t.Errorf("short native descriptor: %+v, %v", ft, err)
	}
}

func TestFunctionTableErrors(t *testing.T) {
	one := synthTable{0x10000, 0x20000, 0x10000, RF_SORTED, []unwindinfo.RuntimeFunction{rf(0x100, 0x200, 0x8000)}}
	good := funcTableStream(DynamicFunctionTableSizeWin10, 12, one, one)
	patch := func(off int, v uint32) []byte {
		b := bytes.Clone(good)
		binary.LittleEndian.PutUint32(b[off:], v)
		return b
	}
	const desc2 = 28 + 32 + 112 + 12 + 4 // offset of the second descriptor
	for _, tc := range []struct {
		name      string
		data      []byte
		tables    int // decoded before the error
		truncated bool
	}{
		{"header cut", good[:20], -1, true},
		{"SizeOfHeader too small", patch(0, 8), -1, false},
		{"SizeOfHeader past the stream", patch(0, 0x10000), -1, false},
		{"SizeOfDescriptor zero", patch(4, 0), -1, false},
		{"SizeOfDescriptor huge", patch(4, 0x7fffffff), -1, false},
		{"SizeOfNativeDescriptor huge", patch(8, 0xfffffff0), -1, false},
		{"SizeOfAlignPad huge", patch(20, 0xffffffff), 0, true},
		{"huge NumberOfDescriptors", patch(16, 0xffffffff), 0, true},
		{"huge EntryCount", patch(28+24, 0x7fffffff), 0, true},
		{"huge SizeOfFunctionEntry", patch(12, 0x7fffffff), 0, true},
		{"second descriptor's EntryCount past the end", patch(desc2+24, 2), 1, true},
		{"stream cut in the second table", good[:desc2+40], 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSynth(1)
			s.add(0, FunctionTableStream, tc.data)
			ft, err := open(t, s.bytes()).FunctionTables()
			if !isMalformed(err, tc.truncated) {
				t.Errorf("error %v; want malformed (truncated %v)", err, tc.truncated)
			}
			if tc.tables < 0 {
				if ft != nil {
					t.Errorf("FunctionTables = %+v; want nil", ft)
				}
			} else if ft == nil || len(ft.Tables) != tc.tables {
				t.Errorf("FunctionTables = %+v; want %d tables", ft, tc.tables)
			}
		})
	}
	// The last table's padding may be missing.
	s := newSynth(1)
	s.add(0, FunctionTableStream, good[:len(good)-4])
	if ft, err := open(t, s.bytes()).FunctionTables(); err != nil || len(ft.Tables) != 2 {
		t.Errorf("without the last padding: %+v, %v", ft, err)
	}
}

func TestExceptionParameters(t *testing.T) {
	s := newSynth(1)
	params := make([]byte, 15*8)
	for i := range 15 {
		binary.LittleEndian.PutUint64(params[8*i:], uint64(i+1))
	}
	s.add(0, ExceptionStream, le(9, 0, uint32(0xc0000005), 1, uint64(0), uint64(0x401000), 100, 0, params, 0, 0))
	e, err := open(t, s.bytes()).Exception()
	if err != nil || e.ThreadId != 9 || e.ExceptionRecord.ExceptionAddress != 0x401000 || e.Context != nil {
		t.Fatalf("Exception = %+v, %v", e, err)
	}
	if p := e.ExceptionRecord.Parameters(); len(p) != 15 || p[14] != 15 {
		t.Errorf("Parameters() = %v", p)
	}
	// Cut short.
	s = newSynth(1)
	s.add(0, ExceptionStream, le(9, 0, uint32(0xc0000005), 1, uint64(0), uint64(0x401000), 2, 0))
	if e, err := open(t, s.bytes()).Exception(); e != nil || !isMalformed(err, true) {
		t.Errorf("short exception stream: %v, %v", e, err)
	}
}

func TestMiscInfo(t *testing.T) {
	full := make([]byte, MiscInfoSize5)
	binary.LittleEndian.PutUint32(full, MiscInfoSize5)
	binary.LittleEndian.PutUint32(full[4:], 0x3f7)
	binary.LittleEndian.PutUint32(full[8:], 4242)
	copy(full[232:], le(uint16('1'), uint16('9'), uint16(0)))
	binary.LittleEndian.PutUint32(full[MiscInfoSize5-4:], 0xc00c1e)
	for _, tc := range []struct {
		name      string
		data      []byte
		pid       uint32
		build     string
		cookie    uint32
		bad       bool
		truncated bool
	}{
		{"version 5", full, 4242, "19", 0xc00c1e, false, false},
		{"version 1", le(MiscInfoSize, 1, 4242, 0, 0, 0), 4242, "", 0, false, false},
		{"version 4 size in a version 5 stream", append(le(MiscInfoSize4), full[4:]...), 4242, "19", 0, false, false},
		{"SizeOfInfo beyond the stream", le(MiscInfoSize5, 1, 4242, 0, 0, 0), 4242, "", 0, true, true},
		{"SizeOfInfo too small", le(8, 1, 4242, 0, 0, 0), 0, "", 0, true, true},
		{"stream too small", le(MiscInfoSize, 1), 0, "", 0, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSynth(1)
			s.add(0, MiscInfoStream, tc.data)
			m, err := open(t, s.bytes()).MiscInfo()
			if tc.bad != (err != nil) || tc.bad && !isMalformed(err, tc.truncated) {
				t.Errorf("error %v; want malformed %v", err, tc.bad)
			}
			if m == nil {
				if tc.pid != 0 {
					t.Fatal("MiscInfo = nil")
				}
				return
			}
			if m.ProcessId != tc.pid || m.BuildString != tc.build || m.ProcessCookie != tc.cookie {
				t.Errorf("MiscInfo = pid %d, build %q, cookie %#x", m.ProcessId, m.BuildString, m.ProcessCookie)
			}
		})
	}
}

// sizeless hides the Size method of a bytes.Reader, as a ReaderAt over a
// pipe or a network store would.
type sizeless struct{ r io.ReaderAt }

func (s sizeless) ReadAt(p []byte, off int64) (int, error) { return s.r.ReadAt(p, off) }

func TestUnknownSize(t *testing.T) {
	s := newSynth(2)
	s.add(0, SystemInfoStream, make([]byte, systemInfoSize))
	s.stream(1, ModuleListStream, 0x100, 0xfffffff0) // 4 GiB past the end
	f, err := NewFile(sizeless{bytes.NewReader(s.bytes())})
	if err != nil {
		t.Fatal(err)
	}
	if f.Size() != -1 {
		t.Errorf("Size = %d, want -1", f.Size())
	}
	if si, err := f.SystemInfo(); si == nil || err != nil {
		t.Errorf("SystemInfo = %v, %v", si, err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	mods, err := f.Modules()
	runtime.ReadMemStats(&after)
	allocs := after.TotalAlloc - before.TotalAlloc
	if mods != nil || !isMalformed(err, true) {
		t.Errorf("Modules = %v, %v", mods, err)
	}
	if allocs > 4<<20 {
		t.Errorf("a 4 GiB stream in a small file of unknown size allocated %d bytes", allocs)
	}
}

// TestReadCache reads small pieces of a file larger than the block cache,
// in an order that evicts blocks, and compares them with the file.
func TestReadCache(t *testing.T) {
	s := newSynth(0)
	data := make([]byte, 9*blockSize+123)
	for i := range data {
		data[i] = byte(i*7 + i>>8)
	}
	s.blob(data)
	b := s.bytes()
	f := open(t, b)
	offs := []uint64{0, 1, blockSize - 4, blockSize - 1, 5 * blockSize, 2*blockSize + 17, uint64(len(b)) - 100, uint64(len(b)) - 1, 8 * blockSize, 3 * blockSize, blockSize, 7*blockSize - 2}
	for round := range 3 {
		for _, off := range offs {
			for _, n := range []uint64{0, 1, 4, 100, smallRead} {
				got, err := f.readAt(off, n)
				if off+n > uint64(len(b)) {
					if !isMalformed(err, true) {
						t.Errorf("round %d: readAt(%#x, %d) past eof: %v", round, off, n, err)
					}
					continue
				}
				if err != nil || !bytes.Equal(got, b[off:off+n]) {
					t.Errorf("round %d: readAt(%#x, %d) = % x, %v", round, off, n, got[:min(len(got), 8)], err)
				}
			}
		}
	}
}

func TestFlatten(t *testing.T) {
	type R = MemoryRange
	for _, tc := range []struct {
		name string
		in   []R // in priority order
		want []R
	}{
		{"none", nil, nil},
		{"disjoint, out of order", []R{{0x200, 0x10, 0x1000}, {0x100, 0x10, 0x2000}}, []R{{0x100, 0x10, 0x2000}, {0x200, 0x10, 0x1000}}},
		{"adjacent stay separate", []R{{0x100, 0x10, 0x1000}, {0x110, 0x10, 0x1010}}, []R{{0x100, 0x10, 0x1000}, {0x110, 0x10, 0x1010}}},
		{"identical: the first wins", []R{{0x100, 0x10, 0x1000}, {0x100, 0x10, 0x2000}}, []R{{0x100, 0x10, 0x1000}}},
		{"contained in the first", []R{{0x100, 0x100, 0x1000}, {0x110, 0x10, 0x2000}}, []R{{0x100, 0x100, 0x1000}}},
		{"containing the first", []R{{0x110, 0x10, 0x2000}, {0x100, 0x100, 0x1000}}, []R{{0x100, 0x10, 0x1000}, {0x110, 0x10, 0x2000}, {0x120, 0xe0, 0x1020}}},
		{"overlapping the first's end", []R{{0x100, 0x20, 0x1000}, {0x110, 0x20, 0x2000}}, []R{{0x100, 0x20, 0x1000}, {0x120, 0x10, 0x2010}}},
		{"same start, the second longer", []R{{0x100, 0x10, 0x1000}, {0x100, 0x20, 0x2000}}, []R{{0x100, 0x10, 0x1000}, {0x110, 0x10, 0x2010}}},
		{"three layers", []R{{0x108, 0x4, 0x3000}, {0x104, 0xc, 0x2000}, {0x100, 0x20, 0x1000}}, []R{{0x100, 0x4, 0x1000}, {0x104, 0x4, 0x2000}, {0x108, 0x4, 0x3000}, {0x10c, 0x4, 0x2008}, {0x110, 0x10, 0x1010}}},
		{"at the top of the address space", []R{{0xffffffffffffff00, 0xff, 0x1000}}, []R{{0xffffffffffffff00, 0xff, 0x1000}}},
	} {
		got := flatten(tc.in)
		if len(got) != len(tc.want) {
			t.Errorf("%s: flatten = %#v, want %#v", tc.name, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: flatten = %#v, want %#v", tc.name, got, tc.want)
				break
			}
		}
	}
}

func TestThreadInfoAndNames(t *testing.T) {
	for _, entrySize := range []uint32{threadInfoSize, threadInfoSize + 8} {
		s := newSynth(2)
		info := func(id uint32) []byte {
			b := le(id, 1, 0, 259, uint64(0x01d2259f80e7fce6), uint64(0), uint64(100), uint64(200), uint64(0x7ff712340000), uint64(3))
			return append(b, make([]byte, entrySize-threadInfoSize)...)
		}
		s.add(0, ThreadInfoListStream, le(12, entrySize, 2, info(7), info(8)))
		name := s.blob(mdString("CrBrowserMain"))
		s.add(1, ThreadNamesStream, le(2, 7, uint64(name), 8, uint64(0x7fffffff00)))
		f := open(t, s.bytes())
		ti, err := f.ThreadInfoList()
		if err != nil || len(ti) != 2 || ti[1].ThreadId != 8 || ti[0].ExitStatus != 259 || ti[0].StartAddress != 0x7ff712340000 || ti[0].Affinity != 3 || ti[0].UserTime != 200 {
			t.Errorf("entry size %d: ThreadInfoList = %+v, %v", entrySize, ti, err)
		}
		names, err := f.ThreadNames()
		if len(names) != 2 || names[0].Name != "CrBrowserMain" || names[1].Name != "" || !isMalformed(err, true) {
			t.Errorf("ThreadNames = %+v, %v; want the first name and an error for the second", names, err)
		}
	}
	// An entry size below MINIDUMP_THREAD_INFO's is malformed.
	s := newSynth(1)
	s.add(0, ThreadInfoListStream, le(12, 48, 1, make([]byte, 48)))
	if ti, err := open(t, s.bytes()).ThreadInfoList(); ti != nil || !isMalformed(err, false) {
		t.Errorf("small entries: %v, %v", ti, err)
	}
}

func TestDecodeCodeView(t *testing.T) {
	guid := []byte{0xe5, 0x32, 0x98, 0x5a, 0x72, 0x28, 0xc1, 0x41, 0x83, 0x8e, 0xd9, 0x89, 0x14, 0xe9, 0xb7, 0xff}
	for _, tc := range []struct {
		name     string
		rec      []byte
		want     *CodeView
		debugID  string
		wantErr  bool
		guidText string
	}{
		{"rsds", le(CV_SIGNATURE_RSDS, guid, 1, []byte("c:\\test_app.pdb\x00")),
			&CodeView{Signature: CV_SIGNATURE_RSDS, GUID: GUID{0x5a9832e5, 0x2872, 0x41c1, [8]byte{0x83, 0x8e, 0xd9, 0x89, 0x14, 0xe9, 0xb7, 0xff}}, Age: 1, PDBFileName: `c:\test_app.pdb`},
			"5A9832E5287241C1838ED98914E9B7FF1", false, "5a9832e5-2872-41c1-838e-d98914e9b7ff"},
		{"rsds without terminator, utf-8 name", le(CV_SIGNATURE_RSDS, guid, 0x2a, []byte("jit-é.pdb")),
			&CodeView{Signature: CV_SIGNATURE_RSDS, GUID: GUID{0x5a9832e5, 0x2872, 0x41c1, [8]byte{0x83, 0x8e, 0xd9, 0x89, 0x14, 0xe9, 0xb7, 0xff}}, Age: 0x2a, PDBFileName: "jit-é.pdb"},
			"5A9832E5287241C1838ED98914E9B7FF2a", false, ""},
		{"nb10", le(CV_SIGNATURE_NB10, 0, uint32(0x3f2a1b0c), 3, []byte("old.pdb\x00junk")),
			&CodeView{Signature: CV_SIGNATURE_NB10, Timestamp: 0x3f2a1b0c, Age: 3, PDBFileName: "old.pdb"},
			"3F2A1B0C3", false, ""},
		{"nb09 is not decoded", le(uint32(0x3930424e), 0, 0), nil, "", false, ""},
		{"rsds cut in the guid", le(CV_SIGNATURE_RSDS, guid[:10]), nil, "", true, ""},
		{"nb10 cut", le(CV_SIGNATURE_NB10, 0), nil, "", true, ""},
		{"signature cut", []byte("RS"), nil, "", true, ""},
	} {
		cv, err := DecodeCodeView(tc.rec)
		if tc.wantErr != (err != nil) || err != nil && !isMalformed(err, true) {
			t.Errorf("%s: error %v", tc.name, err)
		}
		if (cv == nil) != (tc.want == nil) || cv != nil && *cv != *tc.want {
			t.Errorf("%s: DecodeCodeView = %+v, want %+v", tc.name, cv, tc.want)
			continue
		}
		if cv != nil && cv.DebugIdentifier() != tc.debugID {
			t.Errorf("%s: DebugIdentifier = %s, want %s", tc.name, cv.DebugIdentifier(), tc.debugID)
		}
		if tc.guidText != "" && cv.GUID.String() != tc.guidText {
			t.Errorf("%s: GUID = %s, want %s", tc.name, cv.GUID, tc.guidText)
		}
	}
}

func TestMemory64(t *testing.T) {
	// Three ranges back to back from BaseRva; the third is cut by the end
	// of the file.
	s := newSynth(1)
	data := make([]byte, 0x30)
	for i := range data {
		data[i] = byte(i)
	}
	base := uint64(s.blob(nil)) + 16 + 3*16
	s.add(0, Memory64ListStream, le(uint64(3), base,
		uint64(0x7ff000), uint64(0x10),
		uint64(0x100000), uint64(0x18),
		uint64(0x200000), uint64(0x20)))
	s.buf = append(s.buf, data...)
	f := open(t, s.bytes())
	l, err := f.Memory64List()
	if err != nil || l.BaseRva != base || len(l.Ranges) != 3 || l.Ranges[1] != (MemoryDescriptor64{0x100000, 0x18}) {
		t.Fatalf("Memory64List = %+v, %v", l, err)
	}
	m, err := f.Memory()
	if !isMalformed(err, true) {
		t.Errorf("Memory error = %v; want the cut range reported", err)
	}
	for _, tc := range []struct {
		addr uint64
		n    int
		want []byte
	}{
		{0x7ff000, 0x10, data[:0x10]},
		{0x7ff008, 0x10, data[8:0x10]},
		{0x100000, 0x18, data[0x10:0x28]},
		{0x200000, 0x20, data[0x28:0x30]},
	} {
		p := make([]byte, tc.n)
		n, err := m.ReadMemory(p, tc.addr)
		if n != len(tc.want) || !bytes.Equal(p[:n], tc.want) || (n < tc.n) != errors.Is(err, ErrShortRead) {
			t.Errorf("ReadMemory(%d bytes at %#x) = %d, % x, %v; want % x", tc.n, tc.addr, n, p[:n], err, tc.want)
		}
	}
}

// TestSharedRecords makes thousands of entries point at the same bytes:
// what the accessors allocate stays bounded by the size of the file.
func TestSharedRecords(t *testing.T) {
	const n = 20000
	s := newSynth(3)
	ctx := s.blob(make([]byte, MaxRecordSize))
	name := s.blob(append(le(MaxStringBytes-2), make([]byte, MaxStringBytes)...))
	var threads, mods, mem []byte
	for i := range n {
		threads = append(threads, le(i, 0, 0, 0, uint64(0), uint64(0x10000)*uint64(i), MaxRecordSize, ctx, MaxRecordSize, ctx)...)
		mods = append(mods, le(uint64(0x10000)*uint64(i), 0x1000, 0, 0, name, make([]byte, 52), MaxRecordSize, ctx, MaxRecordSize, ctx, uint64(0), uint64(0))...)
		mem = append(mem, le(uint64(0x10000)*uint64(i)+0x100000000, MaxRecordSize, ctx)...)
	}
	s.add(0, ThreadListStream, append(le(n), threads...))
	s.add(1, ModuleListStream, append(le(n), mods...))
	s.add(2, MemoryListStream, append(le(n), mem...))
	b := s.bytes()
	f := open(t, b)

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	th, err := f.Threads()
	if len(th) != n || !isMalformed(err, false) {
		t.Errorf("Threads = %d threads, %v", len(th), err)
	}
	ms, err := f.Modules()
	if len(ms) != n || !isMalformed(err, false) {
		t.Errorf("Modules = %d modules, %v", len(ms), err)
	}
	m, err := f.Memory()
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 8)
	for i := range 2 * n {
		addr := uint64(0x10000) * uint64(i%n)
		if i >= n {
			addr += 0x100000000
		}
		if _, err := m.ReadMemory(p, addr); err != nil {
			t.Fatalf("ReadMemory(%#x): %v", addr, err)
		}
	}
	runtime.ReadMemStats(&after)
	// The entries' records alone would be 5 GB; what remains is in
	// proportion to the number of entries, as for any dump.
	if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(24*len(b)); got > limit {
		t.Errorf("allocated %d MB for a %d MB file", got>>20, len(b)>>20)
	}
}

func TestMemoryInfoAndUnloadedModules(t *testing.T) {
	s := newSynth(2)
	mi := func(base, size uint64, state, protect uint32) []byte {
		return le(base, base, uint32(PAGE_READWRITE), 0, size, state, protect, uint32(MEM_PRIVATE), 0)
	}
	s.add(0, MemoryInfoListStream, le(16, memoryInfoSize, uint64(2), mi(0x10000, 0x1000, MEM_COMMIT, PAGE_EXECUTE_READ), mi(0x11000, 0x2000, MEM_RESERVE, PAGE_NOACCESS)))
	name := s.blob(mdString(`C:\jit\gone.dll`))
	s.add(1, UnloadedModuleListStream, le(12, unloadedModuleSize+8, 2,
		uint64(0x7ff800000000), 0x3000, 0xabc, 0x5f000000, name, uint64(0),
		uint64(0x7ff900000000), 0x1000, 0, 0, uint32(0xfffffff0), uint64(0)))
	f := open(t, s.bytes())
	l, err := f.MemoryInfoList()
	if err != nil || len(l) != 2 || !l[0].Executable() || l[1].Executable() || l[1].RegionSize != 0x2000 || l[0].AllocationProtect != PAGE_READWRITE || l[0].Type != MEM_PRIVATE {
		t.Errorf("MemoryInfoList = %+v, %v", l, err)
	}
	u, err := f.UnloadedModules()
	if len(u) != 2 || u[0].Name != `C:\jit\gone.dll` || u[0].CheckSum != 0xabc || u[1].BaseOfImage != 0x7ff900000000 || !isMalformed(err, true) {
		t.Errorf("UnloadedModules = %+v, %v; want both, and an error for the second name", u, err)
	}
	for _, tc := range []struct {
		name string
		data []byte
		typ  StreamType
	}{
		{"memory info: huge count", le(16, memoryInfoSize, uint64(1)<<62), MemoryInfoListStream},
		{"memory info: small entries", le(16, 8, uint64(1), uint64(0)), MemoryInfoListStream},
		{"memory info: header past the stream", le(0x1000, memoryInfoSize, uint64(0)), MemoryInfoListStream},
		{"unloaded: huge count", le(12, unloadedModuleSize, 0x7fffffff), UnloadedModuleListStream},
		{"unloaded: huge entries", le(12, 0x7fffffff, 1), UnloadedModuleListStream},
		{"unloaded: cut header", le(12, unloadedModuleSize), UnloadedModuleListStream},
	} {
		s := newSynth(1)
		s.add(0, tc.typ, tc.data)
		f := open(t, s.bytes())
		var err error
		if tc.typ == MemoryInfoListStream {
			_, err = f.MemoryInfoList()
		} else {
			_, err = f.UnloadedModules()
		}
		if !isMalformed(err, false) {
			t.Errorf("%s: error %v", tc.name, err)
		}
	}
}
