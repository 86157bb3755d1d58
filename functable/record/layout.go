// Package record holds the binary layouts of dynamic function tables
// that several packages read and write: the x64 DYNAMIC_FUNCTION_TABLE
// record (Windows' layouts and the published list's), its table types, and
// the offsets of the published list (see package functable/remote for the
// description). It has no dependencies beyond the standard library, so
// that format packages (minidump) and the registry (functable) share one
// codec. Package functable re-exports its names.
package record

import "fmt"

// The published table list: the memory layout another process reads (see
// the package documentation of functable/remote for the full description
// and the offset tables). These constants build on every OS, so that
// readers do too; only the writer is Linux-only.
//
// All integers are little-endian; every pointer is an address in the
// writer's address space and points into the mapping. The header is at
// the first byte of the mapping.
const (
	// LayoutMagic is the first 8 bytes of a published list.
	LayoutMagic = "FNTBLLST"
	// LayoutVersion is the layout version this package writes. Version 2
	// gives a growable table's array room for at least its entries, no
	// longer for its maximum; the records are the same, and readers read
	// version 1 lists too.
	LayoutVersion = 2
	// MemfdName is the name of the memfd that holds a published list;
	// /proc/PID/maps shows it as "/memfd:fntable-function-tables (deleted)".
	MemfdName = "fntable-function-tables"

	// HeaderSize is the size of the header this version writes.
	HeaderSize = 0x80
	// RecordSize is the size of a record this version writes: the 0x58
	// bytes of the Windows 7 DYNAMIC_FUNCTION_TABLE, then fields of ours.
	RecordSize = 0x60
	// RuntimeFunctionSize is the size of one RUNTIME_FUNCTION.
	RuntimeFunctionSize = 12

	// MaxMappingSize bounds a published list: the writer reserves this much
	// address space and never maps more; readers read no more.
	MaxMappingSize = 1 << 30
	// MaxTables bounds the number of tables in one published list.
	MaxTables = 1 << 20
	// MaxDllLength bounds OutOfProcessCallbackDll, in UTF-16 units without
	// the terminating NUL (what dbghelp accepts).
	MaxDllLength = 360
)

// Header field offsets.
const (
	HdrMagic          = 0x00 // [8]byte LayoutMagic
	HdrVersion        = 0x08 // uint32 LayoutVersion
	HdrHeaderSize     = 0x0C // uint32 size of the header, ≥ 0x50
	HdrRecordSize     = 0x10 // uint32 size of a record, ≥ 0x60
	HdrPid            = 0x14 // uint32 the writer's pid, in its own pid namespace
	HdrGeneration     = 0x18 // uint64 seqlock: odd while the list changes
	HdrListHead       = 0x20 // LIST_ENTRY {Flink, Blink} of the records
	HdrMappingAddress = 0x30 // uint64 address of the header (the mapping) in the writer
	HdrMappingSize    = 0x38 // uint64 bytes of the mapping that are mapped
	HdrUsedSize       = 0x40 // uint64 bytes from the start that may hold list data
	HdrTableCount     = 0x48 // uint32 number of records in the list
	HdrFlags          = 0x4C // uint32 0 (reserved)
)

// Record field offsets: DYNAMIC_FUNCTION_TABLE (x64) up to 0x58, then ours.
const (
	RecListEntry               = 0x00 // LIST_ENTRY {Flink, Blink}
	RecFunctionTable           = 0x10 // RUNTIME_FUNCTION array, or the TableIdentifier (RF_CALLBACK)
	RecTimeStamp               = 0x18 // FILETIME of the registration
	RecMinimumAddress          = 0x20 // uint64 first address covered
	RecMaximumAddress          = 0x28 // uint64 end of the range (exclusive)
	RecBaseAddress             = 0x30 // uint64 base of the entries' RVAs
	RecCallback                = 0x38 // C callback pointer, or 0
	RecContext                 = 0x40 // C callback context, or 0
	RecOutOfProcessCallbackDll = 0x48 // NUL-terminated UTF-16 path, or 0
	RecType                    = 0x50 // uint32 FUNCTION_TABLE_TYPE
	RecEntryCount              = 0x54 // uint32 valid entries
	RecMaximumEntryCount       = 0x58 // uint32 the table's maximum entries (EntryCount for a static table)
	RecFlags                   = 0x5C // uint32 RecFlag* bits
)

// RecFlagGrowable marks a record of a table added by
// AddGrowableFunctionTable.
const RecFlagGrowable = 1

// Type is the FUNCTION_TABLE_TYPE of a table: how its entries are held.
type Type uint32

// Function table types (the values of the DYNAMIC_FUNCTION_TABLE Type field).
const (
	RF_SORTED   Type = 0 // entries sorted by BeginAddress
	RF_UNSORTED Type = 1 // entries in no particular order
	RF_CALLBACK Type = 2 // entries come from a callback, per lookup
	// RF_KERNEL_DYNAMIC is the type of tables the Windows kernel registers
	// for its own dynamic code. It appears in kernel dumps only; a
	// registry never makes one.
	RF_KERNEL_DYNAMIC Type = 3
)

func (t Type) String() string {
	switch t {
	case RF_SORTED:
		return "RF_SORTED"
	case RF_UNSORTED:
		return "RF_UNSORTED"
	case RF_CALLBACK:
		return "RF_CALLBACK"
	case RF_KERNEL_DYNAMIC:
		return "RF_KERNEL_DYNAMIC"
	}
	return fmt.Sprintf("Type(%d)", uint32(t))
}
