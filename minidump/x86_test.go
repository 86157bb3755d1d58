package minidump

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/fntable/fntable/internal/winetest"
	"github.com/fntable/fntable/unwind"
)

// dumpSection is one block of Breakpad's minidump_dump output: a title
// line and "key = value" lines.
type dumpSection struct {
	name   string
	fields map[string]string
}

// readDumpOut parses expected/breakpad-minidump2.dump.out, the output of
// Breakpad's minidump_dump for the x86 dump.
func readDumpOut(t *testing.T) []dumpSection {
	t.Helper()
	b, err := os.ReadFile(winetest.Testdata(t, "expected/breakpad-minidump2.dump.out"))
	if err != nil {
		t.Fatal(err)
	}
	var secs []dumpSection
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case l == "":
		case !strings.HasPrefix(l, " "):
			if n := len(secs); n > 0 && secs[n-1].name == "Memory" && strings.HasPrefix(l, "0x") {
				secs[n-1].fields["bytes"] = l[2:]
				continue
			}
			secs = append(secs, dumpSection{name: l, fields: map[string]string{}})
		case len(secs) > 0:
			k, v, ok := strings.Cut(l, "=")
			if ok {
				secs[len(secs)-1].fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		}
	}
	return secs
}

func sections(secs []dumpSection, name string) []dumpSection {
	var out []dumpSection
	for _, s := range secs {
		if s.name == name {
			out = append(out, s)
		}
	}
	return out
}

// dumpNum parses a minidump_dump number: "0x1f", "42", or either followed
// by a comment ("0x45d35f73 2007-02-14 ...", "0x3 (MD_...)").
func dumpNum(t *testing.T, s dumpSection, key string) uint64 {
	t.Helper()
	v, ok := s.fields[key]
	if !ok {
		t.Fatalf("%s has no %s", s.name, key)
	}
	v, _, _ = strings.Cut(v, " ")
	n, err := strconv.ParseUint(v, 0, 64)
	if err != nil {
		t.Fatalf("%s.%s: %v", s.name, key, err)
	}
	return n
}

func dumpEq[T ~uint8 | ~uint16 | ~uint32 | ~uint64](t *testing.T, what string, got T, s dumpSection, key string) {
	t.Helper()
	if w := dumpNum(t, s, key); uint64(got) != w {
		t.Errorf("%s = %#x, minidump_dump %s = %#x", what, uint64(got), key, w)
	}
}

func dumpStr(t *testing.T, what, got string, s dumpSection, key string) {
	t.Helper()
	w, ok := s.fields[key]
	if !ok {
		t.Fatalf("%s has no %s", s.name, key)
	}
	if w == "(null)" {
		w = ""
	} else if uq, err := strconv.Unquote(strings.ReplaceAll(w, `\`, `\\`)); err == nil {
		w = uq
	}
	if got != w {
		t.Errorf("%s = %q, minidump_dump %s = %q", what, got, key, w)
	}
}

// x86Context is the part of the x86 CONTEXT (winnt.h, 716 bytes with
// ExtendedRegisters) this test compares.
type x86Context struct{ flags, eip, esp, ebp uint32 }

func decodeX86Context(b []byte) x86Context {
	le := binary.LittleEndian
	return x86Context{flags: le.Uint32(b[0:]), ebp: le.Uint32(b[0xb4:]), eip: le.Uint32(b[0xb8:]), esp: le.Uint32(b[0xc4:])}
}

// TestBreakpadX86 reads the x86 Windows XP dump: everything but the
// contexts decodes as for x64, and the 716-byte contexts are reported as
// x86, not x64.
func TestBreakpadX86(t *testing.T) {
	secs := readDumpOut(t)
	f := openDump(t, x86Dump)

	h := sections(secs, "MDRawHeader")[0]
	dumpEq(t, "Signature", f.Header.Signature, h, "signature")
	dumpEq(t, "Version", f.Header.Version, h, "version")
	dumpEq(t, "NumberOfStreams", f.Header.NumberOfStreams, h, "stream_count")
	dumpEq(t, "StreamDirectoryRva", f.Header.StreamDirectoryRva, h, "stream_directory_rva")
	dumpEq(t, "CheckSum", f.Header.CheckSum, h, "checksum")
	dumpEq(t, "TimeDateStamp", f.Header.TimeDateStamp, h, "time_date_stamp")
	dumpEq(t, "Flags", f.Header.Flags, h, "flags")

	dir := sections(secs, "MDRawDirectory")
	if len(dir) != len(f.Streams()) {
		t.Fatalf("%d streams, minidump_dump has %d", len(f.Streams()), len(dir))
	}
	for i, d := range f.Streams() {
		dumpEq(t, "StreamType", d.StreamType, dir[i], "stream_type")
		dumpEq(t, "DataSize", d.Location.DataSize, dir[i], "location.data_size")
		dumpEq(t, "Rva", d.Location.Rva, dir[i], "location.rva")
	}

	s, err := f.SystemInfo()
	if err != nil {
		t.Fatal(err)
	}
	si := sections(secs, "MDRawSystemInfo")[0]
	if s.ProcessorArchitecture != PROCESSOR_ARCHITECTURE_INTEL {
		t.Errorf("ProcessorArchitecture = %v, want PROCESSOR_ARCHITECTURE_INTEL", s.ProcessorArchitecture)
	}
	dumpEq(t, "ProcessorArchitecture", s.ProcessorArchitecture, si, "processor_architecture")
	dumpEq(t, "ProcessorLevel", s.ProcessorLevel, si, "processor_level")
	dumpEq(t, "ProcessorRevision", s.ProcessorRevision, si, "processor_revision")
	dumpEq(t, "NumberOfProcessors", s.NumberOfProcessors, si, "number_of_processors")
	dumpEq(t, "ProductType", s.ProductType, si, "product_type")
	dumpEq(t, "MajorVersion", s.MajorVersion, si, "major_version")
	dumpEq(t, "MinorVersion", s.MinorVersion, si, "minor_version")
	dumpEq(t, "BuildNumber", s.BuildNumber, si, "build_number")
	dumpEq(t, "PlatformId", s.PlatformId, si, "platform_id")
	dumpEq(t, "CSDVersionRva", s.CSDVersionRva, si, "csd_version_rva")
	dumpEq(t, "SuiteMask", s.SuiteMask, si, "suite_mask")
	dumpStr(t, "CSDVersion", s.CSDVersion, si, "(csd_version)")
	cpu := s.X86CpuInfo()
	for i, v := range cpu.VendorId {
		dumpEq(t, "VendorId", v, si, fmt.Sprintf("cpu.x86_cpu_info.vendor_id[%d]", i))
	}
	dumpEq(t, "VersionInformation", cpu.VersionInformation, si, "cpu.x86_cpu_info.version_information")
	dumpEq(t, "FeatureInformation", cpu.FeatureInformation, si, "cpu.x86_cpu_info.feature_information")
	dumpEq(t, "AMDExtendedCpuFeatures", cpu.AMDExtendedCpuFeatures, si, "cpu.x86_cpu_info.amd_extended_cpu_features")
	dumpStr(t, "Vendor", cpu.Vendor(), si, "(cpu_vendor)")

	// minidump_dump prints each thread's context after the thread, and
	// the exception's context last.
	ctxs := sections(secs, "MDRawContextX86")
	threads, err := f.Threads()
	if err != nil {
		t.Fatal(err)
	}
	want := sections(secs, "MDRawThread")
	if len(threads) != len(want) || len(ctxs) != len(want)+1 {
		t.Fatalf("%d threads, minidump_dump has %d threads and %d contexts", len(threads), len(want), len(ctxs))
	}
	var uc unwind.Context
	for i, th := range threads {
		w := want[i]
		dumpEq(t, "ThreadId", th.ThreadId, w, "thread_id")
		dumpEq(t, "SuspendCount", th.SuspendCount, w, "suspend_count")
		dumpEq(t, "PriorityClass", th.PriorityClass, w, "priority_class")
		dumpEq(t, "Priority", th.Priority, w, "priority")
		dumpEq(t, "Teb", th.Teb, w, "teb")
		dumpEq(t, "stack start", th.Stack.StartOfMemoryRange, w, "stack.start_of_memory_range")
		dumpEq(t, "stack size", th.Stack.Memory.DataSize, w, "stack.memory.data_size")
		dumpEq(t, "stack rva", th.Stack.Memory.Rva, w, "stack.memory.rva")
		dumpEq(t, "context size", th.ThreadContext.DataSize, w, "thread_context.data_size")
		dumpEq(t, "context rva", th.ThreadContext.Rva, w, "thread_context.rva")
		if len(th.Context) != ContextSizeX86 {
			t.Errorf("thread %#x: %d context bytes, want %d", th.ThreadId, len(th.Context), ContextSizeX86)
		}
		if a := ContextArch(th.Context); a != PROCESSOR_ARCHITECTURE_INTEL {
			t.Errorf("thread %#x: ContextArch = %v, want PROCESSOR_ARCHITECTURE_INTEL", th.ThreadId, a)
		}
		if err := uc.UnmarshalWindows(th.Context); err == nil {
			t.Errorf("thread %#x: unwind.Context.UnmarshalWindows accepted a %d-byte x86 context", th.ThreadId, len(th.Context))
		}
		c := decodeX86Context(th.Context)
		dumpEq(t, "context_flags", c.flags, ctxs[i], "context_flags")
		dumpEq(t, "eip", c.eip, ctxs[i], "eip")
		dumpEq(t, "esp", c.esp, ctxs[i], "esp")
		dumpEq(t, "ebp", c.ebp, ctxs[i], "ebp")
	}

	mods, err := f.Modules()
	if err != nil {
		t.Fatal(err)
	}
	wm := sections(secs, "MDRawModule")
	if len(mods) != len(wm) {
		t.Fatalf("%d modules, minidump_dump has %d", len(mods), len(wm))
	}
	for i, m := range mods {
		w := wm[i]
		dumpEq(t, "BaseOfImage", m.BaseOfImage, w, "base_of_image")
		dumpEq(t, "SizeOfImage", m.SizeOfImage, w, "size_of_image")
		dumpEq(t, "CheckSum", m.CheckSum, w, "checksum")
		dumpEq(t, "TimeDateStamp", m.TimeDateStamp, w, "time_date_stamp")
		dumpEq(t, "ModuleNameRva", m.ModuleNameRva, w, "module_name_rva")
		v := m.VersionInfo
		dumpEq(t, "Signature", v.Signature, w, "version_info.signature")
		dumpEq(t, "StrucVersion", v.StrucVersion, w, "version_info.struct_version")
		dumpStr(t, "file version", fmt.Sprintf("%#x:%#x", v.FileVersionMS, v.FileVersionLS), w, "version_info.file_version")
		dumpStr(t, "product version", fmt.Sprintf("%#x:%#x", v.ProductVersionMS, v.ProductVersionLS), w, "version_info.product_version")
		dumpEq(t, "FileFlagsMask", v.FileFlagsMask, w, "version_info.file_flags_mask")
		dumpEq(t, "FileFlags", v.FileFlags, w, "version_info.file_flags")
		dumpEq(t, "FileOS", v.FileOS, w, "version_info.file_os")
		dumpEq(t, "FileType", v.FileType, w, "version_info.file_type")
		dumpEq(t, "FileSubtype", v.FileSubtype, w, "version_info.file_subtype")
		dumpStr(t, "file date", fmt.Sprintf("%#x:%#x", v.FileDateMS, v.FileDateLS), w, "version_info.file_date")
		dumpEq(t, "CvRecord.DataSize", m.CvRecord.DataSize, w, "cv_record.data_size")
		dumpEq(t, "CvRecord.Rva", m.CvRecord.Rva, w, "cv_record.rva")
		dumpEq(t, "MiscRecord.DataSize", m.MiscRecord.DataSize, w, "misc_record.data_size")
		dumpEq(t, "MiscRecord.Rva", m.MiscRecord.Rva, w, "misc_record.rva")
		dumpStr(t, "Name", m.Name, w, "(code_file)")
		dumpStr(t, "CodeIdentifier", m.CodeIdentifier(), w, "(code_identifier)")
		dumpStr(t, "FileVersion", v.FileVersion(), w, "(version)")
		cv := m.CodeView
		if cv == nil {
			t.Errorf("module %s: no CodeView", m.Name)
			continue
		}
		dumpEq(t, "CodeView.Signature", cv.Signature, w, "(cv_record).cv_signature")
		dumpStr(t, "GUID", cv.GUID.String(), w, "(cv_record).signature")
		dumpEq(t, "Age", cv.Age, w, "(cv_record).age")
		dumpStr(t, "PDBFileName", cv.PDBFileName, w, "(cv_record).pdb_file_name")
		dumpStr(t, "DebugIdentifier", cv.DebugIdentifier(), w, "(debug_identifier)")
	}

	list, err := f.MemoryList()
	if err != nil {
		t.Fatal(err)
	}
	mem, err := f.Memory()
	if err != nil {
		t.Fatal(err)
	}
	wr, wb := sections(secs, "MDMemoryDescriptor"), sections(secs, "Memory")
	if len(list) != len(wr) || len(wb) != len(wr) {
		t.Fatalf("%d memory ranges, minidump_dump has %d", len(list), len(wr))
	}
	for i, d := range list {
		dumpEq(t, "StartOfMemoryRange", d.StartOfMemoryRange, wr[i], "start_of_memory_range")
		dumpEq(t, "DataSize", d.Memory.DataSize, wr[i], "memory.data_size")
		dumpEq(t, "Rva", d.Memory.Rva, wr[i], "memory.rva")
		p := make([]byte, d.Memory.DataSize)
		if n, err := mem.ReadMemory(p, d.StartOfMemoryRange); n != len(p) || err != nil {
			t.Errorf("ReadMemory at %#x = %d, %v", d.StartOfMemoryRange, n, err)
		}
		if got := hex.EncodeToString(p); got != wb[i].fields["bytes"] {
			t.Errorf("memory at %#x differs from minidump_dump's", d.StartOfMemoryRange)
		}
	}

	e, err := f.Exception()
	if err != nil {
		t.Fatal(err)
	}
	we := sections(secs, "MDException")[0]
	x := e.ExceptionRecord
	dumpEq(t, "ThreadId", e.ThreadId, we, "thread_id")
	dumpEq(t, "ExceptionCode", x.ExceptionCode, we, "exception_record.exception_code")
	dumpEq(t, "ExceptionFlags", x.ExceptionFlags, we, "exception_record.exception_flags")
	dumpEq(t, "ExceptionRecord", x.ExceptionRecord, we, "exception_record.exception_record")
	dumpEq(t, "ExceptionAddress", x.ExceptionAddress, we, "exception_record.exception_address")
	dumpEq(t, "NumberParameters", x.NumberParameters, we, "exception_record.number_parameters")
	for i, p := range x.Parameters() {
		dumpEq(t, "parameter", p, we, fmt.Sprintf("exception_record.exception_information[%2d]", i))
	}
	dumpEq(t, "context size", e.ThreadContext.DataSize, we, "thread_context.data_size")
	dumpEq(t, "context rva", e.ThreadContext.Rva, we, "thread_context.rva")
	if a := ContextArch(e.Context); a != PROCESSOR_ARCHITECTURE_INTEL {
		t.Errorf("exception ContextArch = %v, want PROCESSOR_ARCHITECTURE_INTEL", a)
	}
	c := decodeX86Context(e.Context)
	dumpEq(t, "exception eip", c.eip, ctxs[len(ctxs)-1], "eip")
	dumpEq(t, "exception esp", c.esp, ctxs[len(ctxs)-1], "esp")

	mi, err := f.MiscInfo()
	if err != nil {
		t.Fatal(err)
	}
	wmi := sections(secs, "MDRawMiscInfo")[0]
	dumpEq(t, "SizeOfInfo", mi.SizeOfInfo, wmi, "size_of_info")
	dumpEq(t, "Flags1", mi.Flags1, wmi, "flags1")
	dumpEq(t, "ProcessId", mi.ProcessId, wmi, "process_id")
	dumpEq(t, "ProcessCreateTime", mi.ProcessCreateTime, wmi, "process_create_time")
	dumpEq(t, "ProcessUserTime", mi.ProcessUserTime, wmi, "process_user_time")
	dumpEq(t, "ProcessKernelTime", mi.ProcessKernelTime, wmi, "process_kernel_time")

	bi, err := f.BreakpadInfo()
	if err != nil || bi == nil {
		t.Fatalf("BreakpadInfo = %v, %v", bi, err)
	}
	wbi := sections(secs, "MDRawBreakpadInfo")[0]
	dumpEq(t, "Validity", bi.Validity, wbi, "validity")
	dumpEq(t, "DumpThreadId", bi.DumpThreadId, wbi, "dump_thread_id")
	dumpEq(t, "RequestingThreadId", bi.RequestingThreadId, wbi, "requesting_thread_id")

	if ft, err := f.FunctionTables(); ft != nil || err != nil {
		t.Errorf("FunctionTables = %v, %v; the dump has none", ft, err)
	}
}
