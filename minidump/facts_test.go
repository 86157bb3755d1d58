package minidump

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/fntable/fntable/internal/winetest"
	"github.com/fntable/fntable/unwind"
	"github.com/fntable/fntable/unwindinfo"
)

// The dumps in ../shared/testdata/minidumps (see its MANIFEST.md). The x64
// ones have a facts.json (header, directory, system info, threads, modules,
// exception, memory list, function tables) written by an independent
// reader, and an obj2yaml (LLVM 14) decode.
var x64Dumps = []string{
	"electron-node-minidump-windows-x64.dmp",
	"breakpad-tiny-exe-fastfail.dmp",
	"breakpad-write_av_non_canonical.dmp",
	"breakpad-tiny-exe-with-cet-xsave.dmp",
}

const x86Dump = "breakpad-minidump2.dmp"

// Memory serves package unwind directly.
var (
	_ unwind.Memory     = (*Memory)(nil)
	_ unwind.ByteSource = (*Memory)(nil)
)

func openDump(t testing.TB, name string) *File {
	t.Helper()
	f, err := Open(winetest.Testdata(t, "minidumps/"+name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// facts is the part of a *.dmp.facts.json this test reads. Numbers are
// either JSON numbers or "0x..." strings; num converts both.
type facts struct {
	Size   int64 `json:"size"`
	Header struct {
		Signature, Version, NumberOfStreams, StreamDirectoryRva, Checksum, TimeDateStamp, Flags any
	} `json:"-"`
	RawHeader  map[string]any   `json:"header"`
	Directory  []map[string]any `json:"directory"`
	SystemInfo map[string]any   `json:"system_info"`
	Threads    []map[string]any `json:"threads"`
	Modules    []map[string]any `json:"modules"`
	Exception  map[string]any   `json:"exception"`
	MemoryList []map[string]any `json:"memory_list"`
	FuncTables map[string]any   `json:"function_table_stream"`
}

func readFacts(t *testing.T, name string) *facts {
	t.Helper()
	b, err := os.ReadFile(winetest.Testdata(t, "expected/"+name+".facts.json"))
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var fx facts
	if err := d.Decode(&fx); err != nil {
		t.Fatal(err)
	}
	return &fx
}

// num converts a facts value (json.Number or a "0x" hex string) to uint64.
func num(t *testing.T, v any) uint64 {
	t.Helper()
	switch v := v.(type) {
	case json.Number:
		if n, err := strconv.ParseUint(v.String(), 10, 64); err == nil {
			return n
		}
		n, err := strconv.ParseInt(v.String(), 10, 64)
		if err != nil {
			t.Fatalf("number %v: %v", v, err)
		}
		return uint64(n)
	case string:
		n, err := strconv.ParseUint(strings.TrimPrefix(v, "0x"), 16, 64)
		if err != nil {
			t.Fatalf("hex %q: %v", v, err)
		}
		return n
	}
	t.Fatalf("facts value %v (%T) is not a number", v, v)
	return 0
}

// eq compares a decoded value with a facts value.
func eq[T ~uint8 | ~uint16 | ~uint32 | ~uint64](t *testing.T, what string, got T, want any) {
	t.Helper()
	if w := num(t, want); uint64(got) != w {
		t.Errorf("%s = %#x, want %#x", what, uint64(got), w)
	}
}

func TestFacts(t *testing.T) {
	for _, name := range x64Dumps {
		t.Run(name, func(t *testing.T) {
			fx := readFacts(t, name)
			f := openDump(t, name)
			if f.Size() != fx.Size {
				t.Errorf("Size = %d, want %d", f.Size(), fx.Size)
			}
			h, fh := f.Header, fx.RawHeader
			eq(t, "Signature", h.Signature, fh["signature"])
			eq(t, "Version", h.Version, fh["version"])
			eq(t, "NumberOfStreams", h.NumberOfStreams, fh["number_of_streams"])
			eq(t, "StreamDirectoryRva", h.StreamDirectoryRva, fh["stream_directory_rva"])
			eq(t, "CheckSum", h.CheckSum, fh["checksum"])
			eq(t, "TimeDateStamp", h.TimeDateStamp, fh["time_date_stamp"])
			eq(t, "Flags", h.Flags, fh["flags"])

			dir := f.Streams()
			if len(dir) != len(fx.Directory) {
				t.Fatalf("%d streams, want %d", len(dir), len(fx.Directory))
			}
			for i, d := range dir {
				w := fx.Directory[i]
				eq(t, "stream type", d.StreamType, w["stream_type"])
				eq(t, d.StreamType.String()+" DataSize", d.Location.DataSize, w["data_size"])
				eq(t, d.StreamType.String()+" Rva", d.Location.Rva, w["rva"])
			}

			checkSystemInfo(t, f, fx.SystemInfo)
			checkThreads(t, f, fx.Threads)
			checkModules(t, f, fx.Modules)
			checkException(t, f, fx.Exception)
			checkMemoryList(t, f, fx.MemoryList)
			checkFunctionTables(t, f, fx.FuncTables)
			checkMiscInfo(t, f)
		})
	}
}

// checkMiscInfo checks MiscInfo against what other streams say: the
// facts have no decode of it.
func checkMiscInfo(t *testing.T, f *File) {
	m, err := f.MiscInfo()
	if err != nil || m == nil {
		t.Fatalf("MiscInfo = %v, %v", m, err)
	}
	d, _ := f.Stream(MiscInfoStream)
	if m.SizeOfInfo != d.Location.DataSize || m.SizeOfInfo != MiscInfoSize5 {
		t.Errorf("SizeOfInfo = %d, stream size %d", m.SizeOfInfo, d.Location.DataSize)
	}
	if m.Flags1&MINIDUMP_MISC1_PROCESS_TIMES != 0 && (m.ProcessCreateTime > f.Header.TimeDateStamp || m.ProcessCreateTime < f.Header.TimeDateStamp-86400) {
		t.Errorf("ProcessCreateTime %d is not within the day before the dump's time %d", m.ProcessCreateTime, f.Header.TimeDateStamp)
	}
	if m.Flags1&MINIDUMP_MISC4_BUILDSTRING != 0 && (m.BuildString == "" || m.DbgBldStr == "") {
		t.Errorf("BuildString %q, DbgBldStr %q", m.BuildString, m.DbgBldStr)
	}
	// A dump with XSTATE contexts records their size in the XSTATE
	// configuration.
	threads, _ := f.Threads()
	for _, th := range threads {
		if th.ThreadContext.DataSize > ContextSizeAMD64 && m.XStateData.ContextSize != th.ThreadContext.DataSize {
			t.Errorf("thread %#x: %d-byte context, XStateData.ContextSize %d", th.ThreadId, th.ThreadContext.DataSize, m.XStateData.ContextSize)
		}
	}
}

func checkSystemInfo(t *testing.T, f *File, w map[string]any) {
	s, err := f.SystemInfo()
	if err != nil || s == nil {
		t.Fatalf("SystemInfo = %v, %v", s, err)
	}
	eq(t, "ProcessorArchitecture", s.ProcessorArchitecture, w["processor_architecture"])
	eq(t, "ProcessorLevel", s.ProcessorLevel, w["processor_level"])
	eq(t, "ProcessorRevision", s.ProcessorRevision, w["processor_revision"])
	eq(t, "NumberOfProcessors", s.NumberOfProcessors, w["number_of_processors"])
	eq(t, "ProductType", s.ProductType, w["product_type"])
	eq(t, "MajorVersion", s.MajorVersion, w["major"])
	eq(t, "MinorVersion", s.MinorVersion, w["minor"])
	eq(t, "BuildNumber", s.BuildNumber, w["build"])
	eq(t, "PlatformId", s.PlatformId, w["platform_id"])
	if s.CSDVersion != w["csd_version"] {
		t.Errorf("CSDVersion = %q, want %q", s.CSDVersion, w["csd_version"])
	}
	if s.ProcessorArchitecture != PROCESSOR_ARCHITECTURE_AMD64 {
		t.Errorf("ProcessorArchitecture = %v, want PROCESSOR_ARCHITECTURE_AMD64", s.ProcessorArchitecture)
	}
}

func checkThreads(t *testing.T, f *File, want []map[string]any) {
	threads, err := f.Threads()
	if err != nil {
		t.Fatal(err)
	}
	if len(threads) != len(want) {
		t.Fatalf("%d threads, want %d", len(threads), len(want))
	}
	for i, th := range threads {
		w := want[i]
		eq(t, "ThreadId", th.ThreadId, w["thread_id"])
		eq(t, "Teb", th.Teb, w["teb"])
		eq(t, "stack start", th.Stack.StartOfMemoryRange, w["stack_start"])
		eq(t, "stack size", th.Stack.Memory.DataSize, w["stack_size"])
		eq(t, "context size", th.ThreadContext.DataSize, w["context_size"])
		if uint32(len(th.Context)) != th.ThreadContext.DataSize {
			t.Errorf("thread %#x: %d context bytes, want %d", th.ThreadId, len(th.Context), th.ThreadContext.DataSize)
		}
		if a := ContextArch(th.Context); a != PROCESSOR_ARCHITECTURE_AMD64 {
			t.Errorf("thread %#x: ContextArch = %v, want AMD64", th.ThreadId, a)
		}
		var c unwind.Context
		if err := c.UnmarshalWindows(th.Context); err != nil {
			t.Errorf("thread %#x: %v", th.ThreadId, err)
			continue
		}
		eq(t, "ContextFlags", c.ContextFlags, w["context_flags"])
		eq(t, "Rip", c.Rip, w["rip"])
		eq(t, "Rsp", c.Rsp, w["rsp"])
		eq(t, "Rbp", c.Rbp, w["rbp"])
	}
}

func checkModules(t *testing.T, f *File, want []map[string]any) {
	mods, err := f.Modules()
	if err != nil {
		t.Fatal(err)
	}
	if len(mods) != len(want) {
		t.Fatalf("%d modules, want %d", len(mods), len(want))
	}
	for i, m := range mods {
		w := want[i]
		eq(t, "BaseOfImage", m.BaseOfImage, w["base"])
		eq(t, "SizeOfImage", m.SizeOfImage, w["size"])
		eq(t, "TimeDateStamp", m.TimeDateStamp, w["timestamp"])
		if m.Name != w["name"] {
			t.Errorf("module %d: Name = %q, want %q", i, m.Name, w["name"])
		}
	}
}

func checkException(t *testing.T, f *File, w map[string]any) {
	e, err := f.Exception()
	if err != nil {
		t.Fatal(err)
	}
	if (e == nil) != (w == nil) {
		t.Fatalf("Exception = %v, want %v", e, w)
	}
	if e == nil {
		return
	}
	x := &e.ExceptionRecord
	eq(t, "ThreadId", e.ThreadId, w["thread_id"])
	eq(t, "ExceptionCode", x.ExceptionCode, w["code"])
	eq(t, "ExceptionFlags", x.ExceptionFlags, w["flags"])
	eq(t, "ExceptionAddress", x.ExceptionAddress, w["address"])
	eq(t, "NumberParameters", x.NumberParameters, w["number_parameters"])
	params := w["params"].([]any)
	if got := x.Parameters(); len(got) != len(params) {
		t.Errorf("Parameters() = %#x, want %v", got, params)
	} else {
		for i := range got {
			eq(t, "parameter", got[i], params[i])
		}
	}
	eq(t, "context rva", e.ThreadContext.Rva, w["context_rva"])
	eq(t, "context size", e.ThreadContext.DataSize, w["context_size"])
	var c unwind.Context
	if err := c.UnmarshalWindows(e.Context); err != nil {
		t.Fatal(err)
	}
	eq(t, "context Rip", c.Rip, w["context_rip"])
	eq(t, "context Rsp", c.Rsp, w["context_rsp"])
}

func checkMemoryList(t *testing.T, f *File, want []map[string]any) {
	list, err := f.MemoryList()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(want) {
		t.Fatalf("%d memory ranges, want %d", len(list), len(want))
	}
	for i, d := range list {
		w := want[i]
		eq(t, "StartOfMemoryRange", d.StartOfMemoryRange, w["start"])
		eq(t, "DataSize", d.Memory.DataSize, w["size"])
		eq(t, "Rva", d.Memory.Rva, w["rva"])
	}
	// Every range reads back through Memory as the file holds it.
	mem, err := f.Memory()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range list {
		got := make([]byte, d.Memory.DataSize)
		if n, err := mem.ReadMemory(got, d.StartOfMemoryRange); err != nil || n != len(got) {
			t.Errorf("ReadMemory(%d bytes at %#x) = %d, %v", len(got), d.StartOfMemoryRange, n, err)
			continue
		}
		raw, err := f.ReadLocation(d.Memory)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, raw) {
			t.Errorf("memory at %#x differs from the file at %#x", d.StartOfMemoryRange, d.Memory.Rva)
		}
	}
}

func checkFunctionTables(t *testing.T, f *File, w map[string]any) {
	ft, err := f.FunctionTables()
	if err != nil {
		t.Fatal(err)
	}
	if (ft == nil) != (w == nil) {
		t.Fatalf("FunctionTables = %v, want %v", ft, w)
	}
	if ft == nil {
		return
	}
	d, _ := f.Stream(FunctionTableStream)
	eq(t, "stream rva", d.Location.Rva, w["rva"])
	eq(t, "stream size", d.Location.DataSize, w["data_size"])
	eq(t, "SizeOfHeader", ft.SizeOfHeader, w["size_of_header"])
	eq(t, "SizeOfDescriptor", ft.SizeOfDescriptor, w["size_of_descriptor"])
	eq(t, "SizeOfNativeDescriptor", ft.SizeOfNativeDescriptor, w["size_of_native_descriptor"])
	eq(t, "SizeOfFunctionEntry", ft.SizeOfFunctionEntry, w["size_of_function_entry"])
	eq(t, "NumberOfDescriptors", ft.NumberOfDescriptors, w["number_of_descriptors"])
	eq(t, "SizeOfAlignPad", ft.SizeOfAlignPad, w["size_of_align_pad"])
	// The layout accounts for every byte of the stream.
	consumed := uint64(ft.SizeOfHeader + ft.SizeOfAlignPad)
	for _, tab := range ft.Tables {
		consumed += uint64(ft.SizeOfDescriptor) + uint64(len(tab.Native)) + uint64(len(tab.EntryData)) + uint64(tab.Descriptor.SizeOfAlignPad)
	}
	eq(t, "consumed bytes", consumed, w["consumed_bytes"])

	descs := w["descriptors"].([]any)
	if len(ft.Tables) != len(descs) {
		t.Fatalf("%d tables, want %d", len(ft.Tables), len(descs))
	}
	for i, tab := range ft.Tables {
		wd := descs[i].(map[string]any)
		dd, wn := wd["descriptor"].(map[string]any), wd["native_dynamic_function_table"].(map[string]any)
		eq(t, "MinimumAddress", tab.Descriptor.MinimumAddress, dd["minimum_address"])
		eq(t, "MaximumAddress", tab.Descriptor.MaximumAddress, dd["maximum_address"])
		eq(t, "BaseAddress", tab.Descriptor.BaseAddress, dd["base_address"])
		eq(t, "EntryCount", tab.Descriptor.EntryCount, dd["entry_count"])
		eq(t, "descriptor SizeOfAlignPad", tab.Descriptor.SizeOfAlignPad, dd["size_of_align_pad"])

		if !tab.NativeOK {
			t.Fatal("native table not decoded")
		}
		n := tab.NativeTable
		eq(t, "native size", uint64(len(tab.Native)), wn["size"])
		eq(t, "Flink", n.Flink, wn["flink"])
		eq(t, "Blink", n.Blink, wn["blink"])
		eq(t, "FunctionTable", n.FunctionTable, wn["function_table"])
		eq(t, "TimeStamp", n.TimeStamp, wn["timestamp"])
		eq(t, "native MinimumAddress", n.MinimumAddress, wn["minimum_address"])
		eq(t, "native MaximumAddress", n.MaximumAddress, wn["maximum_address"])
		eq(t, "native BaseAddress", n.BaseAddress, wn["base_address"])
		eq(t, "Type", n.Type, wn["type"])
		eq(t, "native EntryCount", n.EntryCount, wn["entry_count"])
		if got := hex.EncodeToString(tab.Native[0x38:0x50]); got != wn["bytes_0x38_0x50_raw"] {
			t.Errorf("native bytes 0x38..0x50 = %s, want %s", got, wn["bytes_0x38_0x50_raw"])
		}
		var raw [24]byte
		for j, p := range []uint64{n.Callback, n.Context, n.OutOfProcessCallbackDll} {
			for k := range 8 {
				raw[8*j+k] = byte(p >> (8 * k))
			}
		}
		if got := hex.EncodeToString(raw[:]); got != wn["bytes_0x38_0x50_raw"] {
			t.Errorf("Callback, Context, OutOfProcessCallbackDll = %s, want %s", got, wn["bytes_0x38_0x50_raw"])
		}
		if got := hex.EncodeToString(tab.Native[0x58:]); got != wn["tree_node_raw"] {
			t.Errorf("tree node = %s, want %s", got, wn["tree_node_raw"])
		}

		entries := wd["entries"].([]any)
		if len(tab.Entries) != len(entries) {
			t.Fatalf("%d entries, want %d", len(tab.Entries), len(entries))
		}
		for j, e := range tab.Entries {
			we := entries[j].(map[string]any)
			eq(t, "BeginAddress", e.BeginAddress, we["begin"])
			eq(t, "EndAddress", e.EndAddress, we["end"])
			eq(t, "UnwindData", e.UnwindData, we["unwind_data"])
		}
	}
}

// TestElectronJITFrame checks what an unwinder needs for a V8 frame of the
// Electron dump: the dynamic table gives the entry and base for a pc in
// the code range, and the UNWIND_INFO it names is in the dump's memory.
func TestElectronJITFrame(t *testing.T) {
	f := openDump(t, "electron-node-minidump-windows-x64.dmp")
	ft, err := f.FunctionTables()
	if err != nil {
		t.Fatal(err)
	}
	mem, err := f.Memory()
	if err != nil {
		t.Fatal(err)
	}
	const base = 0x1FCAA00000
	for _, tc := range []struct {
		pc uint64
		ok bool
	}{
		{base - 1, false},
		{base, true},
		{base + 0x12345, true},
		{base + 0x20000000 - 1, true},
		{base + 0x20000000, false},
	} {
		fn, imageBase, ok := ft.LookupFunctionEntry(tc.pc)
		if ok != tc.ok {
			t.Errorf("LookupFunctionEntry(%#x) ok = %v, want %v", tc.pc, ok, tc.ok)
			continue
		}
		if !ok {
			continue
		}
		if imageBase != base || *fn != (unwindinfo.RuntimeFunction{BeginAddress: 0, EndAddress: 0x20000000, UnwindData: 0xC}) {
			t.Errorf("LookupFunctionEntry(%#x) = %+v, %#x", tc.pc, *fn, imageBase)
		}
		p := make([]byte, 4)
		if n, err := mem.ReadMemory(p, imageBase+uint64(fn.UnwindData)); n != 4 || err != nil {
			t.Fatalf("read unwind info: %d, %v", n, err)
		}
		if hex.EncodeToString(p) != "09000000" {
			t.Errorf("unwind info = % x, want 09 00 00 00", p)
		}
		// Only the header was saved: v1, EHANDLER, no codes. The handler
		// RVA that follows is not in the dump.
		h, err := unwindinfo.DecodeHeader(p)
		if err != nil {
			t.Fatal(err)
		}
		if h.Version != 1 || h.Flags != unwindinfo.UNW_FLAG_EHANDLER || h.CountOfCodes != 0 {
			t.Errorf("unwind info header = %+v", h)
		}
		// One byte more is not in the dump: a short read with the count.
		p = make([]byte, 5)
		n, err := mem.ReadMemory(p, imageBase+uint64(fn.UnwindData))
		var ue *UnmappedError
		if n != 4 || !errors.As(err, &ue) || ue.Addr != base+0x10 || !errors.Is(err, ErrShortRead) {
			t.Errorf("ReadMemory past the range = %d, %v", n, err)
		}
		// Through the ByteSource view as well.
		start, b := mem.Bytes(base + 0xE)
		if start != base+0xC || !bytes.Equal(b, []byte{9, 0, 0, 0}) {
			t.Errorf("Bytes(%#x) = %#x, % x", uint64(base+0xE), start, b)
		}
	}
}
