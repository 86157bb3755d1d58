package minidump

import (
	"fmt"

	"github.com/fntable/fntable/functable/record"
	"github.com/fntable/fntable/internal/binread"
	"github.com/fntable/fntable/unwindinfo"
)

// FunctionTableType is FUNCTION_TABLE_TYPE, the Type of a
// DYNAMIC_FUNCTION_TABLE: record.Type.
type FunctionTableType = record.Type

// Types of dynamic function tables (functable's).
const (
	RF_SORTED         = record.RF_SORTED         // RtlAddFunctionTable, RtlAddGrowableFunctionTable: entries sorted
	RF_UNSORTED       = record.RF_UNSORTED       // entries in any order
	RF_CALLBACK       = record.RF_CALLBACK       // RtlInstallFunctionTableCallback: no entries in the process
	RF_KERNEL_DYNAMIC = record.RF_KERNEL_DYNAMIC // the kernel's own tables
)

// Sizes of the structures of the function-table stream
// (minidumpapiset.h, #pragma pack(4)).
const (
	functionTableStreamSize     = 24 // MINIDUMP_FUNCTION_TABLE_STREAM
	functionTableDescriptorSize = 32 // MINIDUMP_FUNCTION_TABLE_DESCRIPTOR

	// DynamicFunctionTableSizeWin7 is the size of the x64
	// DYNAMIC_FUNCTION_TABLE up to and including EntryCount, the fields
	// every Windows version has (Windows 7 has no more).
	DynamicFunctionTableSizeWin7 = record.DynamicFunctionTableSizeWin7
	// DynamicFunctionTableSizeWin10 adds an RTL_BALANCED_NODE TreeNode
	// (Windows 8 to 10).
	DynamicFunctionTableSizeWin10 = record.DynamicFunctionTableSizeWin10
	// DynamicFunctionTableSizeWin11 has TreeNodeMin and TreeNodeMax
	// instead (recent builds).
	DynamicFunctionTableSizeWin11 = record.DynamicFunctionTableSizeWin11

	// MaxNativeDescriptorSize caps SizeOfNativeDescriptor and
	// SizeOfDescriptor; the largest known native table is 0x88 bytes.
	MaxNativeDescriptorSize = 4096
)

// FunctionTables is the decoded FunctionTableStream: the
// MINIDUMP_FUNCTION_TABLE_STREAM header and the dynamic function tables
// the process had registered (RtlAddFunctionTable and friends), as dbghelp
// saved them.
type FunctionTables struct {
	SizeOfHeader           uint32 // bytes of this header, 24
	SizeOfDescriptor       uint32 // bytes of each MINIDUMP_FUNCTION_TABLE_DESCRIPTOR, 32
	SizeOfNativeDescriptor uint32 // bytes of each raw DYNAMIC_FUNCTION_TABLE: 88, 112 or 136 on x64
	SizeOfFunctionEntry    uint32 // bytes of each entry: 12 (RUNTIME_FUNCTION) on x64
	NumberOfDescriptors    uint32 // number of tables
	SizeOfAlignPad         uint32 // bytes of padding after the header

	Tables []FunctionTable
}

// FunctionTableDescriptor is MINIDUMP_FUNCTION_TABLE_DESCRIPTOR.
type FunctionTableDescriptor struct {
	MinimumAddress uint64 // first address the table covers
	MaximumAddress uint64 // end of the covered range (exclusive)
	BaseAddress    uint64 // what the entries' RVAs are relative to
	EntryCount     uint32 // entries that follow the native descriptor
	SizeOfAlignPad uint32 // bytes of padding after the entries
}

// DynamicFunctionTable is the x64 DYNAMIC_FUNCTION_TABLE, the private
// ntdll record of a registered table (MicrosoftDocs win32 DevNotes
// "DYNAMIC_FUNCTION_TABLE"), which dbghelp copies raw into the dump:
// record.DynamicFunctionTable, the one codec of the record.
// MaximumEntryCount and Flags are 0 in a dump.
type DynamicFunctionTable = record.DynamicFunctionTable

// FunctionTable is one table of the FunctionTableStream.
type FunctionTable struct {
	Descriptor FunctionTableDescriptor

	// Native is the raw DYNAMIC_FUNCTION_TABLE, SizeOfNativeDescriptor
	// bytes, and NativeTable its decoded fields; NativeOK reports whether
	// Native was long enough (DynamicFunctionTableSizeWin7 bytes) to
	// decode.
	Native      []byte
	NativeTable DynamicFunctionTable
	NativeOK    bool

	// EntryData holds the EntryCount raw entries, SizeOfFunctionEntry
	// bytes each. Entries holds them decoded when SizeOfFunctionEntry is
	// 12 (x64 RUNTIME_FUNCTION), and is nil otherwise. Their RVAs are
	// relative to Descriptor.BaseAddress; their UNWIND_INFO is in the
	// dump's memory at BaseAddress+UnwindData, when dbghelp saved it.
	EntryData []byte
	Entries   []unwindinfo.RuntimeFunction

	sorted bool // Entries are sorted by BeginAddress and do not overlap
}

// FunctionTables decodes the FunctionTableStream (stream 13). It returns
// nil and no error if the dump has none.
//
// The layout, checked against a Windows 10 dump, is the header
// (SizeOfHeader bytes) and SizeOfAlignPad bytes of padding, then per
// table the descriptor (SizeOfDescriptor bytes), the native table
// (SizeOfNativeDescriptor bytes), EntryCount entries of SizeOfFunctionEntry
// bytes, and the descriptor's SizeOfAlignPad bytes of padding. Tables
// decoded before a malformed one are returned with the error.
func (f *File) FunctionTables() (*FunctionTables, error) {
	data, rva, ok, err := f.streamData(FunctionTableStream)
	if !ok || err != nil {
		return nil, err
	}
	return decodeFunctionTables(data, int64(rva))
}

func decodeFunctionTables(data []byte, rva int64) (*FunctionTables, error) {
	const what = "read function table stream"
	r := binread.New("function table stream", data, rva)
	s := &FunctionTables{
		SizeOfHeader:           r.U32(),
		SizeOfDescriptor:       r.U32(),
		SizeOfNativeDescriptor: r.U32(),
		SizeOfFunctionEntry:    r.U32(),
		NumberOfDescriptors:    r.U32(),
		SizeOfAlignPad:         r.U32(),
	}
	if err := r.Err(); err != nil {
		return nil, formatErr(err, what)
	}
	switch {
	case s.SizeOfHeader < functionTableStreamSize || s.SizeOfHeader > uint32(len(data)):
		return nil, &FormatError{Off: rva, Msg: what + ": bad SizeOfHeader", Val: s.SizeOfHeader}
	case s.SizeOfDescriptor < functionTableDescriptorSize || s.SizeOfDescriptor > MaxNativeDescriptorSize:
		return nil, &FormatError{Off: rva + 4, Msg: what + ": bad SizeOfDescriptor", Val: s.SizeOfDescriptor}
	case s.SizeOfNativeDescriptor > MaxNativeDescriptorSize:
		return nil, &FormatError{Off: rva + 8, Msg: what + ": bad SizeOfNativeDescriptor", Val: s.SizeOfNativeDescriptor}
	}
	r.Skip(int(s.SizeOfHeader) - functionTableStreamSize)
	r.Skip(int(min(s.SizeOfAlignPad, uint32(len(data)))))
	if err := r.Err(); err != nil {
		return s, formatErr(err, what+": header padding")
	}
	// Each table takes at least SizeOfDescriptor (≥ 32) bytes, which
	// bounds the count by the stream size before anything is allocated.
	if uint64(s.NumberOfDescriptors)*uint64(s.SizeOfDescriptor) > uint64(r.Len()) {
		return s, &FormatError{Off: rva, Msg: fmt.Sprintf("%s: %d descriptors in %d bytes", what, s.NumberOfDescriptors, r.Len()), Val: s.NumberOfDescriptors, Err: ErrTruncated}
	}
	s.Tables = make([]FunctionTable, 0, s.NumberOfDescriptors)
	for i := range s.NumberOfDescriptors {
		var t FunctionTable
		start := r.Off()
		dr := binread.New("function table descriptor", r.Bytes(int(s.SizeOfDescriptor)), rva+int64(start))
		t.Descriptor = FunctionTableDescriptor{
			MinimumAddress: dr.U64(),
			MaximumAddress: dr.U64(),
			BaseAddress:    dr.U64(),
			EntryCount:     dr.U32(),
			SizeOfAlignPad: dr.U32(),
		}
		t.Native = r.Bytes(int(s.SizeOfNativeDescriptor))
		if err := r.Err(); err != nil {
			return s, formatErr(err, fmt.Sprintf("%s: table %d", what, i))
		}
		nt, err := record.DecodeDynamicFunctionTable(t.Native)
		t.NativeTable, t.NativeOK = nt, err == nil
		n := uint64(t.Descriptor.EntryCount) * uint64(s.SizeOfFunctionEntry)
		if n > uint64(r.Len()) {
			return s, &FormatError{Off: rva + int64(r.Off()), Msg: fmt.Sprintf("%s: table %d: %d entries of %d bytes in %d bytes", what, i, t.Descriptor.EntryCount, s.SizeOfFunctionEntry, r.Len()), Val: t.Descriptor.EntryCount, Err: ErrTruncated}
		}
		t.EntryData = r.Bytes(int(n))
		if s.SizeOfFunctionEntry == unwindinfo.RuntimeFunctionSize {
			t.Entries = make([]unwindinfo.RuntimeFunction, t.Descriptor.EntryCount)
			for j := range t.Entries {
				t.Entries[j], _ = unwindinfo.DecodeRuntimeFunction(t.EntryData[j*unwindinfo.RuntimeFunctionSize:])
			}
			t.sorted = sortedDisjoint(t.Entries)
		}
		// The last table's padding may be missing from a stream that
		// ends right after its entries.
		if pad := int(min(t.Descriptor.SizeOfAlignPad, uint32(len(data)))); pad <= r.Len() || i+1 < s.NumberOfDescriptors {
			r.Skip(pad)
		}
		if err := r.Err(); err != nil {
			return s, formatErr(err, fmt.Sprintf("%s: table %d: padding", what, i))
		}
		s.Tables = append(s.Tables, t)
	}
	return s, nil
}

// sortedDisjoint reports whether fns is sorted by BeginAddress without
// overlaps, so that unwindinfo.Find may search it.
func sortedDisjoint(fns []unwindinfo.RuntimeFunction) bool {
	for j := 1; j < len(fns); j++ {
		if fns[j-1].BeginAddress > fns[j].BeginAddress || fns[j-1].EndAddress > fns[j].BeginAddress {
			return false
		}
	}
	return true
}

// LookupFunctionEntry finds the entry of the dumped dynamic function
// tables that covers pc, as RtlLookupFunctionEntry does for dynamic
// tables: the first table with MinimumAddress <= pc < MaximumAddress is
// searched for an entry with BeginAddress <= pc-BaseAddress < EndAddress
// (binary search when its entries are sorted and disjoint, a linear scan
// otherwise). It returns the entry and the table's BaseAddress, or
// ok=false. Tables whose entries are not x64 RUNTIME_FUNCTIONs are
// skipped.
func (s *FunctionTables) LookupFunctionEntry(pc uint64) (fn *unwindinfo.RuntimeFunction, imageBase uint64, ok bool) {
	for i := range s.Tables {
		t := &s.Tables[i]
		d := &t.Descriptor
		if pc < d.MinimumAddress || pc >= d.MaximumAddress || t.Entries == nil {
			continue
		}
		if pc < d.BaseAddress || pc-d.BaseAddress > 0xffffffff {
			return nil, 0, false
		}
		rva := uint32(pc - d.BaseAddress)
		if t.sorted {
			if j, ok := unwindinfo.Find(t.Entries, rva); ok {
				return &t.Entries[j], d.BaseAddress, true
			}
			return nil, 0, false
		}
		for j := range t.Entries {
			if t.Entries[j].Contains(rva) {
				return &t.Entries[j], d.BaseAddress, true
			}
		}
		return nil, 0, false
	}
	return nil, 0, false
}
