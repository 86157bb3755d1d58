package minidump

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/fntable/fntable/internal/winetest"
)

// The *.dmp.obj2yaml14.yaml files are LLVM 14's obj2yaml decode of the
// dumps: an independent reader. This test compares threads (with their
// contexts and stacks), modules (names, version resources, CodeView
// records), memory ranges (with their bytes), the exception and the
// system information with it. Fields obj2yaml leaves out are zero.

// yamlLine is a line of the block-style YAML obj2yaml writes.
type yamlLine struct {
	indent int
	text   string
}

// parseYAML parses the subset of YAML obj2yaml writes: block mappings and
// sequences, plain and quoted scalars, one key per line. Mappings are
// map[string]any, sequences []any, scalars string.
func parseYAML(b []byte) (any, error) {
	var lines []yamlLine
	for l := range strings.Lines(string(b)) {
		l = strings.TrimRight(l, "\r\n")
		t := strings.TrimLeft(l, " ")
		if t == "" || strings.HasPrefix(t, "---") || t == "..." || strings.HasPrefix(t, "#") {
			continue
		}
		lines = append(lines, yamlLine{len(l) - len(t), t})
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("empty yaml")
	}
	v, i, err := yamlBlock(lines, 0)
	if err == nil && i != len(lines) {
		err = fmt.Errorf("yaml line %d: unexpected %q", i, lines[i].text)
	}
	return v, err
}

func yamlBlock(lines []yamlLine, i int) (any, int, error) {
	if strings.HasPrefix(lines[i].text, "- ") {
		return yamlList(lines, i)
	}
	return yamlMap(lines, i)
}

func yamlList(lines []yamlLine, i int) (any, int, error) {
	indent := lines[i].indent
	var list []any
	for i < len(lines) && lines[i].indent == indent && strings.HasPrefix(lines[i].text, "- ") {
		lines[i] = yamlLine{indent + 2, lines[i].text[2:]}
		v, j, err := yamlMap(lines, i)
		if err != nil {
			return nil, j, err
		}
		list = append(list, v)
		i = j
	}
	return list, i, nil
}

func yamlMap(lines []yamlLine, i int) (any, int, error) {
	indent := lines[i].indent
	m := map[string]any{}
	for i < len(lines) && lines[i].indent == indent && !strings.HasPrefix(lines[i].text, "- ") {
		key, val, ok := strings.Cut(lines[i].text, ":")
		if !ok {
			return nil, i, fmt.Errorf("yaml line %d: no key in %q", i, lines[i].text)
		}
		val = strings.TrimSpace(val)
		i++
		if val == "" && i < len(lines) && (lines[i].indent > indent || lines[i].indent == indent && strings.HasPrefix(lines[i].text, "- ")) {
			v, j, err := yamlBlock(lines, i)
			if err != nil {
				return nil, j, err
			}
			m[key], i = v, j
			continue
		}
		s, err := yamlScalar(val)
		if err != nil {
			return nil, i, fmt.Errorf("yaml line %d: %v", i-1, err)
		}
		m[key] = s
	}
	return m, i, nil
}

func yamlScalar(s string) (string, error) {
	switch {
	case strings.HasPrefix(s, "'"):
		if len(s) < 2 || !strings.HasSuffix(s, "'") {
			return "", fmt.Errorf("bad quoted scalar %s", s)
		}
		return strings.ReplaceAll(s[1:len(s)-1], "''", "'"), nil
	case strings.HasPrefix(s, `"`):
		// YAML escapes are not Go's (\0); only the Vendor ID uses them,
		// and this test does not read it.
		if u, err := strconv.Unquote(s); err == nil {
			return u, nil
		}
	}
	return s, nil
}

// yamlNum returns the number in field key of m (hex with 0x, or decimal),
// or 0 when obj2yaml left the field out.
func yamlNum(t *testing.T, m map[string]any, key string) uint64 {
	t.Helper()
	v, ok := m[key]
	if !ok {
		return 0
	}
	s, _ := v.(string)
	var n uint64
	var err error
	if h, ok := strings.CutPrefix(s, "0x"); ok {
		n, err = strconv.ParseUint(h, 16, 64)
	} else {
		n, err = strconv.ParseUint(s, 10, 64)
	}
	if err != nil {
		t.Fatalf("yaml field %s: %q: %v", key, s, err)
	}
	return n
}

func yamlHex(t *testing.T, m map[string]any, key string) []byte {
	t.Helper()
	s, _ := m[key].(string)
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("yaml field %s: %v", key, err)
	}
	return b
}

func yamlEq[T ~uint8 | ~uint16 | ~uint32 | ~uint64](t *testing.T, what string, got T, m map[string]any, key string) {
	t.Helper()
	if w := yamlNum(t, m, key); uint64(got) != w {
		t.Errorf("%s = %#x, want %#x (obj2yaml %q)", what, uint64(got), w, key)
	}
}

func TestObj2yaml(t *testing.T) {
	for _, name := range x64Dumps {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(winetest.Testdata(t, "expected/"+name+".obj2yaml14.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			doc, err := parseYAML(b)
			if err != nil {
				t.Fatal(err)
			}
			f := openDump(t, name)
			top := doc.(map[string]any)
			wantVersion, ok := top["Version"]
			if !ok {
				wantVersion = "0xA793" // obj2yaml leaves out the default
			}
			if got := fmt.Sprintf("0x%X", f.Header.Version); got != wantVersion {
				t.Errorf("Version = %s, want %s", got, wantVersion)
			}
			yamlEq(t, "Flags", f.Header.Flags, top, "Flags")
			streams := top["Streams"].([]any)
			if len(streams) != len(f.Streams()) {
				t.Errorf("%d streams, obj2yaml has %d", len(f.Streams()), len(streams))
			}
			mem, err := f.Memory()
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for i, s := range streams {
				s := s.(map[string]any)
				typ := s["Type"].(string)
				seen[typ] = true
				if i < len(f.Streams()) {
					if got := f.Streams()[i].StreamType; !sameStreamName(got, typ) {
						t.Errorf("stream %d is %v, obj2yaml says %s", i, got, typ)
					}
				}
				switch typ {
				case "ThreadList":
					yamlThreads(t, f, mem, s["Threads"].([]any))
				case "ModuleList":
					yamlModules(t, f, s["Modules"].([]any))
				case "MemoryList":
					yamlMemory(t, f, mem, s["Memory Ranges"].([]any))
				case "Exception":
					yamlException(t, f, s)
				case "SystemInfo":
					yamlSystemInfo(t, f, s)
				case "MemoryInfoList":
					yamlMemoryInfo(t, f, s["Memory Ranges"].([]any))
				}
			}
			for _, typ := range []string{"ThreadList", "ModuleList", "MemoryList", "SystemInfo"} {
				if !seen[typ] {
					t.Errorf("obj2yaml has no %s stream", typ)
				}
			}
		})
	}
}

// sameStreamName matches a StreamType with obj2yaml's name for it.
func sameStreamName(got StreamType, yaml string) bool {
	if strings.HasPrefix(yaml, "0x") {
		n, err := strconv.ParseUint(yaml[2:], 16, 32)
		return err == nil && StreamType(n) == got
	}
	alias := map[string]StreamType{
		"ProcessVMCounters": ProcessVmCountersStream,
		"AssertionInfo":     BreakpadAssertionInfoStream,
		"BreakpadInfo":      BreakpadInfoStream,
	}
	if t, ok := alias[yaml]; ok {
		return got == t
	}
	return got.String() == yaml+"Stream"
}

func yamlThreads(t *testing.T, f *File, mem *Memory, want []any) {
	threads, err := f.Threads()
	if err != nil {
		t.Fatal(err)
	}
	if len(threads) != len(want) {
		t.Fatalf("%d threads, obj2yaml has %d", len(threads), len(want))
	}
	for i, th := range threads {
		w := want[i].(map[string]any)
		yamlEq(t, "ThreadId", th.ThreadId, w, "Thread Id")
		yamlEq(t, "SuspendCount", th.SuspendCount, w, "Suspend Count")
		yamlEq(t, "PriorityClass", th.PriorityClass, w, "Priority Class")
		yamlEq(t, "Priority", th.Priority, w, "Priority")
		yamlEq(t, "Teb", th.Teb, w, "Environment Block")
		if !bytes.Equal(th.Context, yamlHex(t, w, "Context")) {
			t.Errorf("thread %#x: context differs from obj2yaml's", th.ThreadId)
		}
		ws := w["Stack"].(map[string]any)
		yamlEq(t, "stack start", th.Stack.StartOfMemoryRange, ws, "Start of Memory Range")
		stack := yamlHex(t, ws, "Content")
		got, err := f.ReadLocation(th.Stack.Memory)
		if err != nil || !bytes.Equal(got, stack) {
			t.Errorf("thread %#x: stack differs from obj2yaml's (%v)", th.ThreadId, err)
		}
		// The stack reads back through Memory too.
		p := make([]byte, len(stack))
		if n, err := mem.ReadMemory(p, th.Stack.StartOfMemoryRange); n != len(p) || err != nil || !bytes.Equal(p, stack) {
			t.Errorf("thread %#x: ReadMemory of the stack = %d, %v", th.ThreadId, n, err)
		}
	}
}

func yamlModules(t *testing.T, f *File, want []any) {
	mods, err := f.Modules()
	if err != nil {
		t.Fatal(err)
	}
	if len(mods) != len(want) {
		t.Fatalf("%d modules, obj2yaml has %d", len(mods), len(want))
	}
	for i, m := range mods {
		w := want[i].(map[string]any)
		yamlEq(t, "BaseOfImage", m.BaseOfImage, w, "Base of Image")
		yamlEq(t, "SizeOfImage", m.SizeOfImage, w, "Size of Image")
		yamlEq(t, "CheckSum", m.CheckSum, w, "Checksum")
		yamlEq(t, "TimeDateStamp", m.TimeDateStamp, w, "Time Date Stamp")
		yamlEq(t, "Reserved0", m.Reserved0, w, "Reserved0")
		yamlEq(t, "Reserved1", m.Reserved1, w, "Reserved1")
		if m.Name != w["Module Name"] {
			t.Errorf("module %d: Name = %q, obj2yaml %q", i, m.Name, w["Module Name"])
		}
		if !bytes.Equal(m.CvData, yamlHex(t, w, "CodeView Record")) {
			t.Errorf("module %s: CodeView record differs from obj2yaml's", m.Name)
		}
		if !bytes.Equal(m.MiscData, yamlHex(t, w, "Misc Record")) {
			t.Errorf("module %s: misc record differs from obj2yaml's", m.Name)
		}
		if m.CvData != nil && m.CodeView == nil {
			t.Errorf("module %s: CodeView record % x not decoded", m.Name, m.CvData[:min(4, len(m.CvData))])
		}
		if cv := m.CodeView; cv != nil && (cv.Signature != CV_SIGNATURE_RSDS || cv.PDBFileName == "" || cv.Age == 0) {
			t.Errorf("module %s: CodeView %+v", m.Name, cv)
		}
		vi, _ := w["Version Info"].(map[string]any)
		if vi == nil {
			vi = map[string]any{}
		}
		v := m.VersionInfo
		yamlEq(t, "Signature", v.Signature, vi, "Signature")
		yamlEq(t, "StrucVersion", v.StrucVersion, vi, "Struct Version")
		yamlEq(t, "FileVersionMS", v.FileVersionMS, vi, "File Version High")
		yamlEq(t, "FileVersionLS", v.FileVersionLS, vi, "File Version Low")
		yamlEq(t, "ProductVersionMS", v.ProductVersionMS, vi, "Product Version High")
		yamlEq(t, "ProductVersionLS", v.ProductVersionLS, vi, "Product Version Low")
		yamlEq(t, "FileFlagsMask", v.FileFlagsMask, vi, "File Flags Mask")
		yamlEq(t, "FileFlags", v.FileFlags, vi, "File Flags")
		yamlEq(t, "FileOS", v.FileOS, vi, "File OS")
		yamlEq(t, "FileType", v.FileType, vi, "File Type")
		yamlEq(t, "FileSubtype", v.FileSubtype, vi, "File Subtype")
		yamlEq(t, "FileDateMS", v.FileDateMS, vi, "File Date High")
		yamlEq(t, "FileDateLS", v.FileDateLS, vi, "File Date Low")
	}
}

func yamlMemory(t *testing.T, f *File, mem *Memory, want []any) {
	list, err := f.MemoryList()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(want) {
		t.Fatalf("%d memory ranges, obj2yaml has %d", len(list), len(want))
	}
	for i, d := range list {
		w := want[i].(map[string]any)
		yamlEq(t, "StartOfMemoryRange", d.StartOfMemoryRange, w, "Start of Memory Range")
		content := yamlHex(t, w, "Content")
		p := make([]byte, len(content))
		if n, err := mem.ReadMemory(p, d.StartOfMemoryRange); n != len(p) || err != nil || !bytes.Equal(p, content) {
			t.Errorf("memory at %#x: ReadMemory = %d, %v, or the bytes differ from obj2yaml's", d.StartOfMemoryRange, n, err)
		}
	}
}

func yamlException(t *testing.T, f *File, w map[string]any) {
	e, err := f.Exception()
	if err != nil || e == nil {
		t.Fatalf("Exception = %v, %v", e, err)
	}
	yamlEq(t, "ThreadId", e.ThreadId, w, "Thread ID")
	wr := w["Exception Record"].(map[string]any)
	x := e.ExceptionRecord
	yamlEq(t, "ExceptionCode", x.ExceptionCode, wr, "Exception Code")
	yamlEq(t, "ExceptionFlags", x.ExceptionFlags, wr, "Exception Flags")
	yamlEq(t, "ExceptionRecord", x.ExceptionRecord, wr, "Exception Record")
	yamlEq(t, "ExceptionAddress", x.ExceptionAddress, wr, "Exception Address")
	yamlEq(t, "NumberParameters", x.NumberParameters, wr, "Number of Parameters")
	for i, p := range x.Parameters() {
		yamlEq(t, "parameter", p, wr, fmt.Sprintf("Parameter %d", i))
	}
	if !bytes.Equal(e.Context, yamlHex(t, w, "Thread Context")) {
		t.Error("exception context differs from obj2yaml's")
	}
}

func yamlSystemInfo(t *testing.T, f *File, w map[string]any) {
	s, err := f.SystemInfo()
	if err != nil || s == nil {
		t.Fatalf("SystemInfo = %v, %v", s, err)
	}
	if w["Processor Arch"] != "AMD64" || s.ProcessorArchitecture != PROCESSOR_ARCHITECTURE_AMD64 {
		t.Errorf("ProcessorArchitecture = %v, obj2yaml %v", s.ProcessorArchitecture, w["Processor Arch"])
	}
	yamlEq(t, "ProcessorLevel", s.ProcessorLevel, w, "Processor Level")
	yamlEq(t, "ProcessorRevision", s.ProcessorRevision, w, "Processor Revision")
	yamlEq(t, "NumberOfProcessors", s.NumberOfProcessors, w, "Number of Processors")
	yamlEq(t, "ProductType", s.ProductType, w, "Product type")
	yamlEq(t, "MajorVersion", s.MajorVersion, w, "Major Version")
	yamlEq(t, "MinorVersion", s.MinorVersion, w, "Minor Version")
	yamlEq(t, "BuildNumber", s.BuildNumber, w, "Build Number")
	yamlEq(t, "SuiteMask", s.SuiteMask, w, "Suite Mask")
	if w["Platform ID"] != "Win32NT" || s.PlatformId != VER_PLATFORM_WIN32_NT {
		t.Errorf("PlatformId = %d, obj2yaml %v", s.PlatformId, w["Platform ID"])
	}
	if got, want := s.CSDVersion, w["CSD Version"]; want != nil && got != want {
		t.Errorf("CSDVersion = %q, obj2yaml %q", got, want)
	}
	// obj2yaml reads the CPU union as X86CpuInfo for AMD64 too.
	cpu := w["CPU"].(map[string]any)
	x := s.X86CpuInfo()
	yamlEq(t, "VersionInformation", x.VersionInformation, cpu, "Version Info")
	yamlEq(t, "FeatureInformation", x.FeatureInformation, cpu, "Feature Info")
	yamlEq(t, "AMDExtendedCpuFeatures", x.AMDExtendedCpuFeatures, cpu, "AMD Extended Features")
}

// yamlFlags maps obj2yaml's names of PAGE_* and MEM_* bits to the values.
var yamlFlags = map[string]uint32{
	"PAGE_NO_ACCESS": PAGE_NOACCESS, "PAGE_READ_ONLY": PAGE_READONLY, "PAGE_READ_WRITE": PAGE_READWRITE,
	"PAGE_WRITE_COPY": PAGE_WRITECOPY, "PAGE_EXECUTE": PAGE_EXECUTE, "PAGE_EXECUTE_READ": PAGE_EXECUTE_READ,
	"PAGE_EXECUTE_READ_WRITE": PAGE_EXECUTE_READWRITE, "PAGE_EXECUTE_WRITE_COPY": PAGE_EXECUTE_WRITECOPY,
	"PAGE_GUARD": PAGE_GUARD, "PAGE_NO_CACHE": PAGE_NOCACHE, "PAGE_WRITE_COMBINE": PAGE_WRITECOMBINE,
	"PAGE_TARGETS_INVALID": PAGE_TARGETS_INVALID,
	"MEM_COMMIT":           MEM_COMMIT, "MEM_RESERVE": MEM_RESERVE, "MEM_FREE": MEM_FREE,
	"MEM_PRIVATE": MEM_PRIVATE, "MEM_MAPPED": MEM_MAPPED, "MEM_IMAGE": MEM_IMAGE,
}

// yamlFlagSet parses a flow sequence of flag names, "[ A, B ]".
func yamlFlagSet(t *testing.T, m map[string]any, key string) uint32 {
	t.Helper()
	s, _ := m[key].(string)
	s = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
	var v uint32
	for name := range strings.SplitSeq(s, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		bit, ok := yamlFlags[name]
		if !ok {
			t.Fatalf("yaml field %s: unknown flag %q", key, name)
		}
		v |= bit
	}
	return v
}

func yamlMemoryInfo(t *testing.T, f *File, want []any) {
	list, err := f.MemoryInfoList()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(want) {
		t.Fatalf("%d memory info entries, obj2yaml has %d", len(list), len(want))
	}
	for i, m := range list {
		w := want[i].(map[string]any)
		yamlEq(t, "BaseAddress", m.BaseAddress, w, "Base Address")
		if _, ok := w["Allocation Base"]; ok {
			yamlEq(t, "AllocationBase", m.AllocationBase, w, "Allocation Base")
		} else if m.AllocationBase != m.BaseAddress {
			t.Errorf("entry %d: AllocationBase %#x, obj2yaml's default is BaseAddress %#x", i, m.AllocationBase, m.BaseAddress)
		}
		yamlEq(t, "RegionSize", m.RegionSize, w, "Region Size")
		if _, ok := w["Protect"]; !ok {
			// obj2yaml leaves Protect out when it equals AllocationProtect.
			w["Protect"] = w["Allocation Protect"]
		}
		for _, c := range []struct {
			what string
			got  uint32
			key  string
		}{{"AllocationProtect", m.AllocationProtect, "Allocation Protect"}, {"State", m.State, "State"}, {"Protect", m.Protect, "Protect"}, {"Type", m.Type, "Type"}} {
			if want := yamlFlagSet(t, w, c.key); c.got != want {
				t.Errorf("entry %d: %s = %#x, obj2yaml %#x (%v)", i, c.what, c.got, want, w[c.key])
			}
		}
	}
	// Every dumped memory range lies in committed memory.
	ranges, err := f.MemoryList()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range ranges {
		j := sort.Search(len(list), func(j int) bool { return list[j].BaseAddress+list[j].RegionSize > r.StartOfMemoryRange })
		if j == len(list) || list[j].BaseAddress > r.StartOfMemoryRange || list[j].State != MEM_COMMIT {
			t.Errorf("memory range at %#x is not in a committed region", r.StartOfMemoryRange)
		}
	}
}
