package minidump

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/fntable/fntable/internal/winetest"
	"github.com/fntable/fntable/unwindinfo"
)

// FuzzMinidump opens arbitrary bytes as a minidump and exercises every
// accessor: no input may panic, every error must be typed, and what is
// returned must be consistent.
func FuzzMinidump(f *testing.F) {
	// Synthesized seeds reach every decoder without the shared files.
	s := newSynth(10)
	ctx := make([]byte, ContextSizeAMD64)
	ctx[0x32] = 0x10 // ContextFlags CONTEXT_AMD64
	rc := s.blob(ctx)
	stack := s.blob(bytes.Repeat([]byte{0x11}, 64))
	name := s.blob(mdString(`C:\jit\host.exe`))
	cv := s.blob(append(le(CV_SIGNATURE_RSDS, make([]byte, 16), 1), "host.pdb\x00"...))
	s.add(0, ThreadListStream, le(1, 7, 0, 0, 0, uint64(0x5000), uint64(0x7000), 64, stack, ContextSizeAMD64, rc))
	s.add(1, ModuleListStream, le(1, uint64(0x140000000), 0x1000, 0, 0, name, make([]byte, 52), 30, cv, 0, 0, uint64(0), uint64(0)))
	s.add(2, MemoryListStream, le(1, uint64(0x7000), 64, stack))
	s.add(3, Memory64ListStream, le(uint64(1), uint64(stack), uint64(0x6ff0), uint64(64)))
	s.add(4, ExceptionStream, le(7, 0, uint32(0xc0000005), 0, uint64(0), uint64(0x140001000), 2, 0, make([]byte, 120), ContextSizeAMD64, rc))
	s.add(5, SystemInfoStream, le(uint16(9), uint16(6), uint16(0x4501), uint8(2), uint8(1), 10, 0, 14393, 2, name, uint16(0), uint16(0), make([]byte, 24)))
	s.add(6, FunctionTableStream, funcTableStream(DynamicFunctionTableSizeWin10, 12, synthTable{0x10000, 0x20000, 0x10000, RF_SORTED, []unwindinfo.RuntimeFunction{rf(0, 0x100, 0x200)}}))
	s.add(7, MiscInfoStream, le(MiscInfoSize2, 7, 1234, 0, 0, 0, 0, 0, 0, 0, 0))
	s.add(8, ThreadInfoListStream, le(12, 64, 1, 7, make([]byte, 60)))
	s.add(9, ThreadNamesStream, le(1, 7, uint64(name)))
	f.Add(s.bytes())
	f.Add(newSynth(0).bytes())

	// The shared dumps, read in place; with -short only the small one:
	// large inputs slow fuzzing down to tens of executions a second.
	maxSeed := 1 << 30
	if testing.Short() {
		maxSeed = 64 << 10
	}
	winetest.AddSeeds(f, "minidumps/*.dmp", maxSeed)

	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := NewFile(bytes.NewReader(b))
		if err != nil {
			if errors.Is(err, ErrNotMinidump) == errors.Is(err, ErrMalformed) {
				t.Fatalf("NewFile error %v: not exactly one of not-a-minidump or malformed", err)
			}
			return
		}
		exercise(t, file)
		// The same bytes through an io.ReaderAt of unknown size.
		file2, err := NewFile(sizeless{bytes.NewReader(b)})
		if err != nil {
			t.Fatalf("NewFile of unknown size: %v", err)
		}
		exercise(t, file2)
	})
}

// checkErr fails unless err is nil or a malformed-dump error.
func checkErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil && !errors.Is(err, ErrMalformed) {
		t.Fatalf("%s: error %v does not wrap ErrMalformed", what, err)
	}
}

func exercise(t *testing.T, f *File) {
	for _, d := range f.Streams() {
		_ = d.StreamType.String()
		_, err := f.StreamData(d)
		checkErr(t, "StreamData", err)
	}
	si, err := f.SystemInfo()
	checkErr(t, "SystemInfo", err)
	if si != nil {
		_ = si.ProcessorArchitecture.String()
		_ = si.X86CpuInfo().Vendor()
		_ = si.ProcessorFeatures()
	}
	threads, err := f.Threads()
	checkErr(t, "Threads", err)
	for _, th := range threads {
		_ = ContextArch(th.Context).String()
		if th.Context != nil && uint32(len(th.Context)) != th.ThreadContext.DataSize {
			t.Fatalf("thread context of %d bytes for a location of %d", len(th.Context), th.ThreadContext.DataSize)
		}
	}
	_, err = f.ThreadInfoList()
	checkErr(t, "ThreadInfoList", err)
	_, err = f.ThreadNames()
	checkErr(t, "ThreadNames", err)
	mods, err := f.Modules()
	checkErr(t, "Modules", err)
	for _, m := range mods {
		_ = m.CodeIdentifier()
		_ = m.VersionInfo.FileVersion()
		if m.CodeView != nil {
			_ = m.CodeView.DebugIdentifier()
			_ = m.CodeView.GUID.String()
		}
	}
	_, err = f.MemoryList()
	checkErr(t, "MemoryList", err)
	_, err = f.Memory64List()
	checkErr(t, "Memory64List", err)
	e, err := f.Exception()
	checkErr(t, "Exception", err)
	if e != nil {
		if len(e.ExceptionRecord.Parameters()) > EXCEPTION_MAXIMUM_PARAMETERS {
			t.Fatal("more than 15 parameters")
		}
	}
	_, err = f.MiscInfo()
	checkErr(t, "MiscInfo", err)
	infos, err := f.MemoryInfoList()
	checkErr(t, "MemoryInfoList", err)
	for i := range infos {
		_ = infos[i].Executable()
	}
	_, err = f.UnloadedModules()
	checkErr(t, "UnloadedModules", err)
	_, err = f.BreakpadInfo()
	checkErr(t, "BreakpadInfo", err)

	mem, err := f.Memory()
	checkErr(t, "Memory", err)
	ranges := mem.Ranges()
	p := make([]byte, 64)
	for i, r := range ranges {
		if r.Size == 0 || r.Addr+r.Size < r.Addr {
			t.Fatalf("bad range %+v", r)
		}
		if i > 0 && ranges[i-1].Addr+ranges[i-1].Size > r.Addr {
			t.Fatalf("ranges %+v and %+v overlap", ranges[i-1], r)
		}
		if i >= 64 {
			continue
		}
		for _, a := range []uint64{r.Addr, r.Addr + r.Size - 1, r.Addr + r.Size - min(r.Size, 64)} {
			n, err := mem.ReadMemory(p, a)
			if n > len(p) || n < len(p) && !errors.Is(err, ErrShortRead) || n == len(p) && err != nil {
				t.Fatalf("ReadMemory(%#x) = %d, %v", a, n, err)
			}
			if start, b := mem.Bytes(a); len(b) > 0 && (a < start || a-start >= uint64(len(b))) {
				t.Fatalf("Bytes(%#x) = %#x, %d bytes", a, start, len(b))
			}
		}
	}

	ft, err := f.FunctionTables()
	checkErr(t, "FunctionTables", err)
	if ft != nil {
		for i, tb := range ft.Tables {
			if i >= 16 {
				break
			}
			d := tb.Descriptor
			_ = tb.NativeTable.Type.String()
			for _, pc := range []uint64{d.MinimumAddress, d.MaximumAddress - 1, d.BaseAddress, d.BaseAddress + 0x100} {
				fn, base, ok := ft.LookupFunctionEntry(pc)
				if ok && (fn == nil || !fn.Contains(uint32(pc-base))) {
					t.Fatalf("LookupFunctionEntry(%#x) = %+v, %#x", pc, fn, base)
				}
			}
		}
	}
}

// FuzzFunctionTables decodes arbitrary bytes as the data of a
// FunctionTableStream, the decoder this package adds over other minidump
// readers; small inputs make it much faster than FuzzMinidump.
func FuzzFunctionTables(f *testing.F) {
	one := synthTable{0x10000, 0x20000, 0x10000, RF_SORTED, []unwindinfo.RuntimeFunction{rf(0x100, 0x200, 0x8000), rf(0x200, 0x300, 0x8010)}}
	two := synthTable{0x30000, 0x40000, 0x30000, RF_UNSORTED, []unwindinfo.RuntimeFunction{rf(0x300, 0x400, 0x9020), rf(0x100, 0x200, 0x9000)}}
	for _, native := range []uint32{DynamicFunctionTableSizeWin7, DynamicFunctionTableSizeWin10, DynamicFunctionTableSizeWin11} {
		f.Add(funcTableStream(native, 12, one, two))
	}
	f.Add(funcTableStream(DynamicFunctionTableSizeWin7, 16, one))
	if paths, _ := filepath.Glob("../../shared/testdata/minidumps/*.dmp"); len(paths) > 0 {
		for _, p := range paths {
			file, err := Open(p)
			if err != nil {
				f.Fatal(err)
			}
			if d, ok := file.Stream(FunctionTableStream); ok {
				b, err := file.StreamData(d)
				if err != nil {
					f.Fatal(err)
				}
				f.Add(b)
			}
			file.Close()
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ft, err := decodeFunctionTables(b, 0x1000)
		checkErr(t, "decodeFunctionTables", err)
		if ft == nil {
			return
		}
		used := uint64(ft.SizeOfHeader)
		for _, tb := range ft.Tables {
			used += uint64(ft.SizeOfDescriptor) + uint64(len(tb.Native)) + uint64(len(tb.EntryData))
			if uint32(len(tb.Native)) != ft.SizeOfNativeDescriptor || uint64(len(tb.EntryData)) != uint64(tb.Descriptor.EntryCount)*uint64(ft.SizeOfFunctionEntry) {
				t.Fatalf("table sizes: native %d, entries %d", len(tb.Native), len(tb.EntryData))
			}
			if tb.Entries != nil && len(tb.Entries) != int(tb.Descriptor.EntryCount) {
				t.Fatalf("%d entries decoded of %d", len(tb.Entries), tb.Descriptor.EntryCount)
			}
			d := tb.Descriptor
			for _, pc := range []uint64{d.MinimumAddress, d.MaximumAddress - 1, d.BaseAddress + 0x100, d.BaseAddress + 0x2ff} {
				fn, base, ok := ft.LookupFunctionEntry(pc)
				if ok && (fn == nil || pc < base || !fn.Contains(uint32(pc-base))) {
					t.Fatalf("LookupFunctionEntry(%#x) = %+v, %#x", pc, fn, base)
				}
			}
		}
		if used > uint64(len(b)) {
			t.Fatalf("tables use %d bytes of %d", used, len(b))
		}
	})
}
