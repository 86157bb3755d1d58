package minidump

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fntable/fntable/functable"
	"github.com/fntable/fntable/unwind"
	"github.com/fntable/fntable/unwindinfo"
)

var updateSeeds = flag.Bool("update-write-seeds", false, "rewrite testdata/fuzz/FuzzWriteRead from the writer's sample contents")

// fakeMemory is an address space of a few byte runs, for memory sources.
type fakeMemory map[uint64][]byte

// source returns a MemorySource over the run at addr.
func (m fakeMemory) source(addr, size uint64) MemorySource {
	return MemorySource{Addr: addr, Size: size, Read: m.read}
}

func (m fakeMemory) read(p []byte, addr uint64) (int, error) {
	for base, b := range m {
		if addr >= base && addr-base < uint64(len(b)) {
			n := copy(p, b[addr-base:])
			if n < len(p) {
				return n, fmt.Errorf("read %#x: %w", addr+uint64(n), ErrShortRead)
			}
			return n, nil
		}
	}
	return 0, &UnmappedError{Addr: addr}
}

// pattern returns n bytes that differ from those of other runs.
func pattern(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed ^ byte(i*7) ^ byte(i>>8)
	}
	return b
}

// sampleContextBytes is sampleContext(seed) as a Windows CONTEXT record.
func sampleContextBytes(seed uint64) []byte {
	c := sampleContext(seed)
	return c.MarshalWindows()
}

func sampleContext(seed uint64) unwind.Context {
	c := unwind.Context{ContextFlags: unwind.CONTEXT_FULL | unwind.CONTEXT_SEGMENTS, MxCsr: 0x1f80,
		SegCs: 0x33, SegSs: 0x2b, EFlags: 0x246, Rip: 0x401000 + seed}
	for r := range unwindinfo.Register(16) {
		c.SetReg(r, seed<<32|uint64(r)*0x1111)
	}
	c.Xmm[3][0] = byte(seed)
	return c
}

// SampleContent is a content that uses every stream and every kind of
// overlap the writer handles.
func sampleContent() (*Content, fakeMemory) {
	mem := fakeMemory{
		0x7ffcf000:     pattern(1, 0x3000), // holds thread 1's stack whole
		0x7f00001ff000: pattern(2, 0x2800), // holds the start of thread 3's stack
		0x140001000:    pattern(3, 0x100),  // unwind info
		0x140002000:    pattern(4, 0x10),   // adjacent to nothing
		0x7f0000100000: pattern(5, 0x2000), // thread 2's stack
	}
	c := &Content{
		SystemInfo: WriteSystemInfo{PlatformID: MD_OS_LINUX, MajorVersion: 6, MinorVersion: 1, BuildNumber: 0,
			CSDVersion: "Linux 6.1.0-13-amd64 #1 SMP PREEMPT_DYNAMIC x86_64", NumberOfProcessors: 8,
			VendorID: [12]byte([]byte("GenuineIntel")), VersionInformation: 0x000906ea, FeatureInformation: 0xbfebfbff},
		Threads: []WriteThread{
			{ID: 4242, Context: sampleContextBytes(1), Stack: mem.source(0x7ffd0000, 0x1800)},
			{ID: 4243, Context: sampleContextBytes(2), Stack: mem.source(0x7f0000100000, 0x2000), Name: "worker-1"},
			{ID: 4244, Context: sampleContextBytes(3), Stack: mem.source(0x7f0000201000, 0x800), Name: "jit-é𝄞"},
		},
		Modules: []WriteModule{
			{Base: 0x400000, Size: 0x5000, Name: "/usr/bin/prog", CodeView: ELFCodeView([]byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})},
			{Base: 0x140000000, Size: 0x10000, Name: `C:\jit\host.exe`, TimeDateStamp: 0x5f000000, CheckSum: 0x1234,
				CodeView: append([]byte("RSDS\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x02\x00\x00\x00"), "host.pdb\x00"...)},
			{Base: 0x7f0000000000, Size: 0x1000, Name: "[vdso]"},
		},
		Memory: []MemorySource{
			mem.source(0x7ffcf000, 0x3000),
			mem.source(0x7f00001ff000, 0x2800),
			mem.source(0x140001000, 0x100),
			mem.source(0x140002000, 0x10),
		},
		FunctionTables: []WriteFunctionTable{
			{Table: functable.DynamicFunctionTable{Flink: 0x7fff67363270, Blink: 0x7fff67363270, FunctionTable: 0x140003000,
				TimeStamp: 0x1d2259f80e7fce6, MinimumAddress: 0x140001000, MaximumAddress: 0x140001300, BaseAddress: 0x140000000,
				Type: functable.RF_SORTED, EntryCount: 3},
				Entries: []unwindinfo.RuntimeFunction{{BeginAddress: 0x1000, EndAddress: 0x1100, UnwindData: 0x1000},
					{BeginAddress: 0x1100, EndAddress: 0x1200, UnwindData: 0x1010}, {BeginAddress: 0x1200, EndAddress: 0x1300, UnwindData: 0x1020}}},
			{Table: functable.DynamicFunctionTable{FunctionTable: 0x50003, MinimumAddress: 0x50000, MaximumAddress: 0x60000,
				BaseAddress: 0x50000, Callback: 0x7f00aa00, Context: 0x1234, OutOfProcessCallbackDll: 0x7f00bb00, Type: functable.RF_CALLBACK},
				Entries: []unwindinfo.RuntimeFunction{{BeginAddress: 0, EndAddress: 0x10, UnwindData: 0x100}, {BeginAddress: 0x10, EndAddress: 0x20, UnwindData: 0x100}}},
		},
		Exception: &WriteException{ThreadID: 4242, Code: 0xc0000005, Flags: 1, Address: 0x401001, Parameters: []uint64{1, 0xdead}, Context: sampleContextBytes(9)},
		Streams: []RawStream{
			{BreakpadLinuxMapsStream, []byte("00400000-00405000 r-xp 00000000 08:01 42 /usr/bin/prog\n")},
			{BreakpadLinuxCmdLineStream, []byte("prog\x00-x\x00")},
			{BreakpadLinuxAuxvStream, []byte{}},
		},
		ProcessID:     4242,
		TimeDateStamp: 1700000000,
	}
	return c, mem
}

// readSource reads a whole source.
func readSource(t testing.TB, s MemorySource) []byte {
	t.Helper()
	if s.Data != nil {
		return s.Data
	}
	b := make([]byte, s.Size)
	if n, err := s.Read(b, s.Addr); n != len(b) {
		t.Fatalf("read source %#x: %d bytes, %v", s.Addr, n, err)
	}
	return b
}

// union returns the merged extents of the content's memory.
func union(c *Content) [][2]uint64 {
	var rs [][2]uint64
	for _, m := range c.Memory {
		rs = append(rs, [2]uint64{m.Addr, m.Addr + m.Size})
	}
	for _, th := range c.Threads {
		if th.Stack.Size > 0 {
			rs = append(rs, [2]uint64{th.Stack.Addr, th.Stack.Addr + th.Stack.Size})
		}
	}
	slices.SortFunc(rs, func(a, b [2]uint64) int {
		switch {
		case a[0] < b[0]:
			return -1
		case a[0] > b[0]:
			return 1
		}
		return 0
	})
	var out [][2]uint64
	for _, r := range rs {
		if n := len(out); n > 0 && r[0] < out[n-1][1] {
			out[n-1][1] = max(out[n-1][1], r[1])
			continue
		}
		out = append(out, r)
	}
	return out
}

// CheckContent checks that f holds c, field by field, through this
// package's reader.
func checkContent(t *testing.T, f *File, c *Content, full bool) {
	t.Helper()
	h := f.Header
	wantFlags := uint64(MiniDumpNormal)
	if full {
		wantFlags = MiniDumpWithFullMemory
	}
	if h.Signature != MINIDUMP_SIGNATURE || h.Version != MINIDUMP_VERSION || h.TimeDateStamp != c.TimeDateStamp || h.Flags != wantFlags || h.StreamDirectoryRva != headerSize {
		t.Errorf("header %+v", h)
	}
	for _, d := range f.Streams() {
		if d.Location.Rva%4 != 0 {
			t.Errorf("stream %v at %#x: not 4-byte aligned", d.StreamType, d.Location.Rva)
		}
	}

	si, err := f.SystemInfo()
	if err != nil || si == nil {
		t.Fatalf("SystemInfo: %v", err)
	}
	ws := c.SystemInfo
	cpu := si.X86CpuInfo()
	if si.ProcessorArchitecture != PROCESSOR_ARCHITECTURE_AMD64 || si.PlatformId != ws.PlatformID || si.MajorVersion != ws.MajorVersion ||
		si.MinorVersion != ws.MinorVersion || si.BuildNumber != ws.BuildNumber || si.CSDVersion != ws.CSDVersion ||
		si.NumberOfProcessors != ws.NumberOfProcessors || cpu.Vendor() != string(ws.VendorID[:]) ||
		cpu.VersionInformation != ws.VersionInformation || cpu.FeatureInformation != ws.FeatureInformation ||
		cpu.AMDExtendedCpuFeatures != ws.AMDExtendedCpuFeatures {
		t.Errorf("system info %+v, want %+v", si, ws)
	}
	if ws.VersionInformation == 0x000906ea && (si.ProcessorLevel != 6 || si.ProcessorRevision != 0x9e0a) {
		t.Errorf("processor level %d revision %#x, want 6 and 0x9e0a", si.ProcessorLevel, si.ProcessorRevision)
	}

	mi, err := f.MiscInfo()
	if err != nil || (c.ProcessID != 0) != (mi != nil) || mi != nil && (mi.ProcessId != c.ProcessID || mi.Flags1 != MINIDUMP_MISC1_PROCESS_ID) {
		t.Errorf("misc info %+v, %v; want pid %d", mi, err, c.ProcessID)
	}

	threads, err := f.Threads()
	if err != nil || len(threads) != len(c.Threads) {
		t.Fatalf("Threads: %d, %v; want %d", len(threads), err, len(c.Threads))
	}
	for i, th := range threads {
		w := c.Threads[i]
		if th.ThreadId != w.ID || !bytes.Equal(th.Context, w.Context) || len(th.Context) != unwind.WindowsContextSize || ContextArch(th.Context) != PROCESSOR_ARCHITECTURE_AMD64 {
			t.Errorf("thread %d: id %d context % x, want % x", i, th.ThreadId, th.Context, w.Context)
		}
		if th.Stack.StartOfMemoryRange != w.Stack.Addr || uint64(th.Stack.Memory.DataSize) != w.Stack.Size {
			t.Errorf("thread %d stack %+v, want %#x+%#x", w.ID, th.Stack, w.Stack.Addr, w.Stack.Size)
		}
		if w.Stack.Size > 0 {
			b, err := f.ReadLocation(th.Stack.Memory)
			if err != nil || !bytes.Equal(b, readSource(t, w.Stack)) {
				t.Errorf("thread %d: stack bytes differ (%v)", w.ID, err)
			}
		}
	}
	names, err := f.ThreadNames()
	if err != nil {
		t.Fatal(err)
	}
	var wantNames []ThreadName
	for _, th := range c.Threads {
		if th.Name != "" {
			wantNames = append(wantNames, ThreadName{ThreadId: th.ID, Name: th.Name})
		}
	}
	if len(names) != len(wantNames) {
		t.Fatalf("thread names %+v, want %+v", names, wantNames)
	}
	for i := range names {
		if names[i].ThreadId != wantNames[i].ThreadId || names[i].Name != wantNames[i].Name {
			t.Errorf("thread name %+v, want %+v", names[i], wantNames[i])
		}
	}

	mods, err := f.Modules()
	if err != nil || len(mods) != len(c.Modules) {
		t.Fatalf("Modules: %d, %v", len(mods), err)
	}
	for i, m := range mods {
		w := c.Modules[i]
		if m.BaseOfImage != w.Base || uint64(m.SizeOfImage) != w.Size || m.Name != w.Name || m.TimeDateStamp != w.TimeDateStamp ||
			m.CheckSum != w.CheckSum || !bytes.Equal(m.CvData, w.CodeView) || m.MiscData != nil {
			t.Errorf("module %+v, want %+v", m, w)
		}
		if m.CvRecord.DataSize > 0 && m.CvRecord.Rva%4 != 0 {
			t.Errorf("module %s: CodeView record at %#x", m.Name, m.CvRecord.Rva)
		}
	}

	// Memory: every range once, every source's bytes.
	want := union(c)
	var got [][2]uint64
	if full {
		l, err := f.Memory64List()
		if err != nil || l == nil {
			t.Fatalf("Memory64List: %v", err)
		}
		if ml, _ := f.MemoryList(); ml != nil {
			t.Error("a full dump with a MemoryList")
		}
		for _, r := range l.Ranges {
			got = append(got, [2]uint64{r.StartOfMemoryRange, r.StartOfMemoryRange + r.DataSize})
		}
		slices.SortFunc(got, func(a, b [2]uint64) int { return int(int64(a[0]>>1) - int64(b[0]>>1)) })
		if l.BaseRva%8 != 0 {
			t.Errorf("BaseRva %#x", l.BaseRva)
		}
	} else {
		l, err := f.MemoryList()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range l {
			got = append(got, [2]uint64{r.StartOfMemoryRange, r.StartOfMemoryRange + uint64(r.Memory.DataSize)})
			if r.Memory.Rva%8 != 0 {
				t.Errorf("memory %#x at %#x", r.StartOfMemoryRange, r.Memory.Rva)
			}
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("memory ranges %x, want %x", got, want)
	}
	mem, err := f.Memory()
	if err != nil {
		t.Fatal(err)
	}
	srcs := append([]MemorySource(nil), c.Memory...)
	for _, th := range c.Threads {
		srcs = append(srcs, th.Stack)
	}
	for _, s := range srcs {
		if s.Size == 0 {
			continue
		}
		b := make([]byte, s.Size)
		if n, err := mem.ReadMemory(b, s.Addr); n != len(b) || !bytes.Equal(b, readSource(t, s)) {
			t.Errorf("memory %#x+%#x: %d bytes, %v, or bytes differ", s.Addr, s.Size, n, err)
		}
	}

	ft, err := f.FunctionTables()
	if err != nil {
		t.Fatal(err)
	}
	if len(c.FunctionTables) == 0 {
		if ft != nil {
			t.Error("a function table stream for no tables")
		}
	} else {
		if ft == nil || ft.SizeOfHeader != 24 || ft.SizeOfDescriptor != 32 || ft.SizeOfNativeDescriptor != functable.DynamicFunctionTableSizeWin7 ||
			ft.SizeOfFunctionEntry != 12 || int(ft.NumberOfDescriptors) != len(c.FunctionTables) || len(ft.Tables) != len(c.FunctionTables) {
			t.Fatalf("function tables %+v", ft)
		}
		for i, tb := range ft.Tables {
			w := c.FunctionTables[i]
			wt := w.Table
			wt.MaximumEntryCount, wt.Flags = 0, 0
			d := tb.Descriptor
			if !tb.NativeOK || tb.NativeTable != wt || d.MinimumAddress != wt.MinimumAddress || d.MaximumAddress != wt.MaximumAddress ||
				d.BaseAddress != wt.BaseAddress || int(d.EntryCount) != len(w.Entries) || !slices.Equal(tb.Entries, w.Entries) {
				t.Errorf("function table %d: %+v, want %+v", i, tb, w)
			}
		}
	}

	e, err := f.Exception()
	if err != nil || (e != nil) != (c.Exception != nil) {
		t.Fatalf("Exception: %+v, %v", e, err)
	}
	if we := c.Exception; we != nil {
		x := e.ExceptionRecord
		if e.ThreadId != we.ThreadID || x.ExceptionCode != we.Code || x.ExceptionFlags != we.Flags || x.ExceptionAddress != we.Address ||
			!slices.Equal(x.Parameters(), we.Parameters) || !bytes.Equal(e.Context, we.Context) {
			t.Errorf("exception %+v, want %+v", e, we)
		}
	}

	for _, s := range c.Streams {
		d, ok := f.Stream(s.Type)
		if !ok {
			t.Errorf("no stream %v", s.Type)
			continue
		}
		b, err := f.StreamData(d)
		if err != nil || !bytes.Equal(b, s.Data) {
			t.Errorf("stream %v: %q, %v; want %q", s.Type, b, err, s.Data)
		}
	}
}

func writeBytes(t testing.TB, c *Content, opts WriteOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := Write(&buf, c, opts)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Fatalf("Write returned %d, wrote %d", n, buf.Len())
	}
	return buf.Bytes()
}

func TestWriteRead(t *testing.T) {
	for _, full := range []bool{false, true} {
		t.Run(fmt.Sprintf("full=%v", full), func(t *testing.T) {
			c, _ := sampleContent()
			b := writeBytes(t, c, WriteOptions{Full: full})
			f, err := NewFile(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			checkContent(t, f, c, full)
		})
	}
}

// TestPlannedSize: plan allocates the metadata once (plannedSize is at
// least what it builds) and not far beyond it.
func TestPlannedSize(t *testing.T) {
	c, _ := sampleContent()
	for _, full := range []bool{false, true} {
		l, err := plan(c, WriteOptions{Full: full})
		if err != nil {
			t.Fatal(err)
		}
		want := plannedSize(c, len(l.regions))
		if len(l.meta) > want || cap(l.meta) > want+want/4 || len(l.meta) < want/4 {
			t.Errorf("full=%v: %d bytes of metadata in a buffer of %d, planned %d", full, len(l.meta), cap(l.meta), want)
		}
	}
}

func TestWriteEmpty(t *testing.T) {
	for _, full := range []bool{false, true} {
		c := &Content{}
		b := writeBytes(t, c, WriteOptions{Full: full})
		f, err := NewFile(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		checkContent(t, f, c, full)
		if len(f.Streams()) != 4 {
			t.Errorf("streams %v", f.Streams())
		}
	}
}

func TestWriteProgress(t *testing.T) {
	c, mem := sampleContent()
	big := pattern(9, 5<<20+123)
	mem[0x10000000] = big
	c.Memory = append(c.Memory, mem.source(0x10000000, uint64(len(big))))
	for _, full := range []bool{false, true} {
		var calls [][2]int64
		var buf bytes.Buffer
		n, err := Write(&buf, c, WriteOptions{Full: full, Progress: func(w, total int64) {
			if w > int64(buf.Len()) {
				t.Errorf("progress %d before the bytes reached the writer (%d)", w, buf.Len())
			}
			calls = append(calls, [2]int64{w, total})
		}})
		if err != nil {
			t.Fatal(err)
		}
		last := calls[len(calls)-1]
		if last != [2]int64{n, n} || n != int64(buf.Len()) {
			t.Errorf("last progress %v, file of %d bytes", last, buf.Len())
		}
		prev := int64(0)
		for _, c := range calls {
			if c[1] != n || c[0] <= prev || c[0]-prev > 1<<20 {
				t.Errorf("progress calls %v", calls)
				break
			}
			prev = c[0]
		}
	}
}

func TestWriteReadError(t *testing.T) {
	c, _ := sampleContent()
	boom := errors.New("boom")
	c.Memory = append(c.Memory, MemorySource{Addr: 0x90000, Size: 0x100, Read: func(p []byte, addr uint64) (int, error) { return 3, boom }})
	_, err := Write(&bytes.Buffer{}, c, WriteOptions{})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "0x90000-0x90100") {
		t.Errorf("Write with a failing source: %v", err)
	}
	// A short read without an error.
	c.Memory[len(c.Memory)-1].Read = func(p []byte, addr uint64) (int, error) { return len(p) - 1, nil }
	if _, err := Write(&bytes.Buffer{}, c, WriteOptions{}); !errors.Is(err, ErrShortRead) {
		t.Errorf("Write with a short source: %v", err)
	}

	dir := t.TempDir()
	name := filepath.Join(dir, "x.dmp")
	if err := WriteFile(name, c, WriteOptions{}); !errors.Is(err, ErrShortRead) {
		t.Errorf("WriteFile: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("WriteFile left %v", ents)
	}
	// An existing file stays as it was.
	os.WriteFile(name, []byte("old"), 0o644)
	WriteFile(name, c, WriteOptions{})
	if b, _ := os.ReadFile(name); string(b) != "old" {
		t.Errorf("the old file became %q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("WriteFile left %v", ents)
	}
}

func TestWriteInvalid(t *testing.T) {
	tests := map[string]func(c *Content){
		"huge module":    func(c *Content) { c.Modules[0].Size = 1 << 32 },
		"16 parameters":  func(c *Content) { c.Exception.Parameters = make([]uint64, 16) },
		"wrapping range": func(c *Content) { c.Memory[0].Addr = ^uint64(0) - 10 },
		"no Read":        func(c *Content) { c.Memory[0].Read = nil },
		"short Data":     func(c *Content) { c.Memory[0].Data = make([]byte, c.Memory[0].Size-1) },
		"beyond 4 GiB": func(c *Content) {
			c.Memory = append(c.Memory, MemorySource{Addr: 1 << 40, Size: 1 << 32, Read: func(p []byte, _ uint64) (int, error) { return len(p), nil }})
		},
	}
	for name, mod := range tests {
		c, _ := sampleContent()
		mod(c)
		var buf bytes.Buffer
		if _, err := Write(&buf, c, WriteOptions{}); err == nil || buf.Len() != 0 {
			t.Errorf("%s: Write wrote %d bytes, error %v", name, buf.Len(), err)
		}
	}
}

// sameAsRead checks that memory given another way than by Read is written
// as the same bytes as memory given by Read, also where the two kinds
// overlap (thread stacks inside memory ranges) and with Full: give
// rewrites the sources of even memory ranges and odd thread stacks,
// getting the bytes Read would give and whether the source is a stack.
func sameAsRead(t *testing.T, how string, give func(m *MemorySource, data []byte, stack bool)) {
	t.Helper()
	for _, full := range []bool{false, true} {
		c, _ := sampleContent()
		want := writeBytes(t, c, WriteOptions{Full: full})
		d, _ := sampleContent()
		for i := range d.Memory {
			if i%2 == 0 {
				give(&d.Memory[i], readSource(t, d.Memory[i]), false)
			}
		}
		for i := range d.Threads {
			if s := d.Threads[i].Stack; s.Size > 0 && i%2 == 1 {
				give(&d.Threads[i].Stack, readSource(t, s), true)
			}
		}
		if got := writeBytes(t, d, WriteOptions{Full: full}); !bytes.Equal(got, want) {
			t.Errorf("full=%v: the dump from %s differs from the one from Read", full, how)
		}
	}
}

// TestWriteData: memory given as Data (already read) is written as the
// same bytes as memory given by Read.
func TestWriteData(t *testing.T) {
	sameAsRead(t, "Data", func(m *MemorySource, data []byte, _ bool) {
		m.Data, m.Read = data, nil
	})
}

// pagedBytes returns a MemorySource.Bytes over data at base that gives it
// out in pieces of k bytes aligned on base, as a page cache gives pages.
func pagedBytes(data []byte, base, k uint64) func(uint64) (uint64, []byte) {
	return func(addr uint64) (uint64, []byte) {
		if addr < base || addr-base >= uint64(len(data)) {
			return 0, nil
		}
		off := (addr - base) / k * k
		return base + off, data[off:min(off+k, uint64(len(data)))]
	}
}

// TestWriteBytes: memory given by Bytes, in pieces that do not line up
// with the ranges (7 bytes for memory ranges, pages for stacks), is
// written as the same bytes as memory given by Read; a Bytes that has
// nothing at an address fails the write.
func TestWriteBytes(t *testing.T) {
	sameAsRead(t, "Bytes", func(m *MemorySource, data []byte, stack bool) {
		k := uint64(7)
		if stack {
			k = 0x1000
		}
		m.Bytes, m.Read = pagedBytes(data, m.Addr, k), nil
	})
	c, _ := sampleContent()
	m := &c.Memory[0]
	m.Bytes = pagedBytes(readSource(t, *m)[:m.Size/2], m.Addr, 0x1000) // the second half is missing
	if _, err := Write(&bytes.Buffer{}, c, WriteOptions{}); !errors.Is(err, ErrShortRead) {
		t.Errorf("Write with a Bytes that runs short: %v", err)
	}
}

func TestWriteFile(t *testing.T) {
	c, _ := sampleContent()
	name := filepath.Join(t.TempDir(), "a.dmp")
	if err := WriteFile(name, c, WriteOptions{Full: true}); err != nil {
		t.Fatal(err)
	}
	f, err := Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checkContent(t, f, c, true)
	if ents, _ := os.ReadDir(filepath.Dir(name)); len(ents) != 1 {
		t.Errorf("directory holds %v", ents)
	}
}

func TestELFCodeView(t *testing.T) {
	got := ELFCodeView([]byte{1, 2, 3})
	// MD_CVINFOELF_SIGNATURE, 0x4270454c, little-endian: "LEpB".
	if !bytes.Equal(got, []byte{'L', 'E', 'p', 'B', 1, 2, 3}) {
		t.Errorf("ELFCodeView = % x", got)
	}
	if cv, err := DecodeCodeView(got); cv != nil || err != nil {
		t.Errorf("DecodeCodeView(ELF record) = %+v, %v", cv, err)
	}
	if id := ELFBuildID(got); !bytes.Equal(id, []byte{1, 2, 3}) {
		t.Errorf("ELFBuildID(ELFCodeView) = % x", id)
	}
	if id := ELFBuildID([]byte{'B', 'p', 'E', 'L', 9}); !bytes.Equal(id, []byte{9}) {
		t.Errorf("ELFBuildID of a \"BpEL\" record = % x", id)
	}
	if id := ELFBuildID([]byte{'R', 'S', 'D', 'S', 9}); id != nil {
		t.Errorf("ELFBuildID of a PDB record = % x", id)
	}
}

// FuzzWriteRead mutates files the writer wrote: the reader must never
// panic on them, and every error must be typed. Its seeds are the
// committed corpus testdata/fuzz/FuzzWriteRead, small dumps of every
// stream, memory list and Memory64List, which TestWriteSeeds keeps up to
// date (go test -run TestWriteSeeds -update-write-seeds).
func FuzzWriteRead(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := NewFile(bytes.NewReader(b))
		if err != nil {
			if errors.Is(err, ErrNotMinidump) == errors.Is(err, ErrMalformed) {
				t.Fatalf("NewFile error %v: not exactly one of not-a-minidump or malformed", err)
			}
			return
		}
		exercise(t, file)
	})
}

// TestWriteSeeds checks that the committed seeds of FuzzWriteRead are
// what the writer writes today, and rewrites them with
// -update-write-seeds.
func TestWriteSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzWriteRead")
	for _, full := range []bool{false, true} {
		c, _ := sampleContent()
		for i := range c.Threads {
			c.Threads[i].Stack.Size = 0x40 // small seeds fuzz faster
		}
		c.Memory = c.Memory[2:]
		b := writeBytes(t, c, WriteOptions{Full: full})
		name := filepath.Join(dir, fmt.Sprintf("sample-full-%v", full))
		enc := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if *updateSeeds {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(name, []byte(enc), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		old, err := os.ReadFile(name)
		if err != nil {
			t.Fatalf("%v (run with -update-write-seeds)", err)
		}
		if string(old) != enc {
			t.Errorf("%s is not what the writer writes today (run with -update-write-seeds)", name)
		}
	}
}

// BenchmarkWrite writes a 14-thread dump of about 1 MiB: 14 stacks of
// 64 KiB, 64 KiB of other memory, 20 modules and a function table.
func BenchmarkWrite(b *testing.B) {
	mem := fakeMemory{}
	c := &Content{SystemInfo: WriteSystemInfo{PlatformID: MD_OS_LINUX, CSDVersion: "Linux"}, ProcessID: 1}
	for i := range 14 {
		addr := uint64(0x7f0000000000 + i<<24)
		mem[addr] = pattern(byte(i), 64<<10)
		c.Threads = append(c.Threads, WriteThread{ID: uint32(100 + i), Context: sampleContextBytes(uint64(i)), Stack: mem.source(addr, 64<<10), Name: fmt.Sprintf("worker-%d", i)})
	}
	mem[0x140000000] = pattern(99, 64<<10)
	c.Memory = append(c.Memory, mem.source(0x140000000, 64<<10))
	for i := range 20 {
		c.Modules = append(c.Modules, WriteModule{Base: uint64(0x10000000 + i<<20), Size: 0x10000, Name: fmt.Sprintf("/usr/lib/x86_64-linux-gnu/libm%d.so", i), CodeView: ELFCodeView(make([]byte, 20))})
	}
	sc, _ := sampleContent()
	c.FunctionTables = sc.FunctionTables
	var buf bytes.Buffer
	n, err := Write(&buf, c, WriteOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(n)
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if _, err := Write(&buf, c, WriteOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
