package record

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/fntable/fntable/internal/binread"
)

// Sizes of the layouts of the x64 DYNAMIC_FUNCTION_TABLE. The fields of
// [DynamicFunctionTable] are at the same offsets in all of them (the
// Rec* constants, up to RecEntryCount); the layouts differ only in what
// follows EntryCount.
//
// Reference: Microsoft, "DYNAMIC_FUNCTION_TABLE structure" (win32
// DevNotes), and the PDB type records of ntdll and ntoskrnl for each
// Windows version (shared reference formats.md §9).
const (
	// DynamicFunctionTableSizeWin7 is the Windows 7 layout: the record
	// ends with EntryCount. Every later layout starts with these bytes.
	DynamicFunctionTableSizeWin7 = 0x58
	// DynamicFunctionTableSizeWin10 is the Windows 8 to 10 layout: an
	// RTL_BALANCED_NODE TreeNode (24 bytes) follows EntryCount.
	DynamicFunctionTableSizeWin10 = 0x70
	// DynamicFunctionTableSizeWin11 is the layout of recent builds:
	// TreeNodeMin and TreeNodeMax (RTL_BALANCED_NODE each) follow
	// EntryCount.
	DynamicFunctionTableSizeWin11 = 0x88
)

// ErrShortRecord is wrapped by the error of [DecodeDynamicFunctionTable]
// and [DecodePublishedRecord] for a record too short for its layout.
var ErrShortRecord = errors.New("dynamic function table record too short")

// FiletimeEpochDelta is the number of 100 ns intervals from 1601-01-01,
// the epoch of a FILETIME such as TimeStamp, to 1970-01-01 (Unix time).
const FiletimeEpochDelta = 116444736000000000

// DynamicFunctionTable is the x64 DYNAMIC_FUNCTION_TABLE: the record of a
// registered table in ntdll's list (what a minidump's function-table
// stream copies raw), and the record of a table in a published list (see
// package functable/remote), which adds MaximumEntryCount and Flags.
// Pointers are addresses in the process that holds the record. Callback,
// Context and OutOfProcessCallbackDll are meaningful only for RF_CALLBACK
// tables; in Windows' records of other tables they can hold junk.
type DynamicFunctionTable struct {
	Flink, Blink            uint64 // ListEntry: the next and previous records of the list
	FunctionTable           uint64 // the RUNTIME_FUNCTION array, or the TableIdentifier of an RF_CALLBACK table
	TimeStamp               uint64 // when the table was registered: FILETIME (Reserved1 in Microsoft's documentation)
	MinimumAddress          uint64 // first address the table covers
	MaximumAddress          uint64 // end of the covered range (exclusive)
	BaseAddress             uint64 // base of the entries' RVAs
	Callback                uint64 // PGET_RUNTIME_FUNCTION_CALLBACK, or 0 (Reserved2[0])
	Context                 uint64 // the callback's context argument (Reserved2[1])
	OutOfProcessCallbackDll uint64 // PWSTR: NUL-terminated UTF-16 path of the provider library, or 0
	Type                    Type   // FUNCTION_TABLE_TYPE
	EntryCount              uint32 // valid entries

	// MaximumEntryCount and Flags are fntable's fields of a published
	// record (RecMaximumEntryCount, RecFlags); they are 0 in Windows'
	// records.
	MaximumEntryCount uint32 // the table's maximum entries: EntryCount, or a growable table's maximum
	Flags             uint32 // RecFlag* bits
}

// DecodeDynamicFunctionTable decodes a whole record, whose length tells its
// layout: DynamicFunctionTableSizeWin7, DynamicFunctionTableSizeWin10 and
// DynamicFunctionTableSizeWin11 are Windows' records, whose
// MaximumEntryCount and Flags are left 0; RecordSize is a published
// record, decoded as [DecodePublishedRecord] does. A record of any other
// length of at least DynamicFunctionTableSizeWin7 bytes is taken as a
// Windows layout not known here: the fields every layout shares are
// decoded and the rest is ignored. A shorter record is an error wrapping
// [ErrShortRecord].
func DecodeDynamicFunctionTable(b []byte) (DynamicFunctionTable, error) {
	if len(b) == RecordSize {
		return DecodePublishedRecord(b)
	}
	return decodeRecord(b, DynamicFunctionTableSizeWin7)
}

// DecodePublishedRecord decodes the record of a published list: the
// Windows 7 DYNAMIC_FUNCTION_TABLE and then MaximumEntryCount and Flags.
// b holds at least RecordSize bytes; bytes past them (fields of a later
// layout version) are ignored. It checks no value: functable/remote does.
func DecodePublishedRecord(b []byte) (DynamicFunctionTable, error) {
	return decodeRecord(b, RecordSize)
}

// decodeRecord decodes the fields of the first size bytes of b.
func decodeRecord(b []byte, size int) (DynamicFunctionTable, error) {
	if len(b) < size {
		return DynamicFunctionTable{}, fmt.Errorf("decode dynamic function table: %d bytes, want at least %#x: %w", len(b), size, ErrShortRecord)
	}
	r := binread.New("dynamic function table", b, 0)
	t := DynamicFunctionTable{
		Flink: r.U64(), Blink: r.U64(),
		FunctionTable:  r.U64(),
		TimeStamp:      r.U64(),
		MinimumAddress: r.U64(), MaximumAddress: r.U64(), BaseAddress: r.U64(),
		Callback: r.U64(), Context: r.U64(),
		OutOfProcessCallbackDll: r.U64(),
		Type:                    Type(r.U32()),
		EntryCount:              r.U32(),
	}
	if size >= RecordSize {
		t.MaximumEntryCount, t.Flags = r.U32(), r.U32()
	}
	// The length was checked: the reader cannot fail.
	return t, r.Err()
}

// AppendWindows appends t as a Windows DYNAMIC_FUNCTION_TABLE of size
// bytes, which is one of DynamicFunctionTableSizeWin7,
// DynamicFunctionTableSizeWin10 and DynamicFunctionTableSizeWin11: the
// fields up to EntryCount, then zeros (an empty tree node: Windows' tree
// pointers mean nothing outside the process). MaximumEntryCount and Flags
// have no place in these layouts and are dropped. It panics on another
// size.
func (t DynamicFunctionTable) AppendWindows(b []byte, size int) []byte {
	switch size {
	case DynamicFunctionTableSizeWin7, DynamicFunctionTableSizeWin10, DynamicFunctionTableSizeWin11:
	default:
		panic(fmt.Sprintf("record: AppendWindows: unknown layout size %#x", size))
	}
	b = t.appendCommon(b)
	return append(b, make([]byte, size-DynamicFunctionTableSizeWin7)...)
}

// AppendWin7 appends t in the Windows 7 layout
// (DynamicFunctionTableSizeWin7 bytes), which every reader of the record
// handles: AppendWindows(b, DynamicFunctionTableSizeWin7).
func (t DynamicFunctionTable) AppendWin7(b []byte) []byte {
	return t.appendCommon(b)
}

// AppendPublished appends t as a published record (RecordSize bytes).
func (t DynamicFunctionTable) AppendPublished(b []byte) []byte {
	b = t.appendCommon(b)
	b = binary.LittleEndian.AppendUint32(b, t.MaximumEntryCount)
	return binary.LittleEndian.AppendUint32(b, t.Flags)
}

// appendCommon appends the fields every layout has, in order
// (DynamicFunctionTableSizeWin7 bytes).
func (t DynamicFunctionTable) appendCommon(b []byte) []byte {
	le := binary.LittleEndian
	for _, v := range [...]uint64{t.Flink, t.Blink, t.FunctionTable, t.TimeStamp,
		t.MinimumAddress, t.MaximumAddress, t.BaseAddress,
		t.Callback, t.Context, t.OutOfProcessCallbackDll} {
		b = le.AppendUint64(b, v)
	}
	b = le.AppendUint32(b, uint32(t.Type))
	return le.AppendUint32(b, t.EntryCount)
}
