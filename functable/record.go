package functable

import "github.com/fntable/fntable/functable/record"

// The layouts and the record codec live in package functable/record (no
// dependencies, for format packages such as minidump); these are their
// names here.

// Type is the FUNCTION_TABLE_TYPE of a table: how its entries are held.
type Type = record.Type

// Function table types (the values of the DYNAMIC_FUNCTION_TABLE Type field).
const (
	RF_SORTED         = record.RF_SORTED         // entries sorted by BeginAddress
	RF_UNSORTED       = record.RF_UNSORTED       // entries in no particular order
	RF_CALLBACK       = record.RF_CALLBACK       // entries come from a callback, per lookup
	RF_KERNEL_DYNAMIC = record.RF_KERNEL_DYNAMIC // the Windows kernel's own tables (kernel dumps only)
)

// DynamicFunctionTable is the x64 DYNAMIC_FUNCTION_TABLE record
// (record.DynamicFunctionTable).
type DynamicFunctionTable = record.DynamicFunctionTable

// The published list's layout (see functable/remote) and the record sizes.
const (
	LayoutMagic         = record.LayoutMagic
	LayoutVersion       = record.LayoutVersion
	MemfdName           = record.MemfdName
	HeaderSize          = record.HeaderSize
	RecordSize          = record.RecordSize
	RuntimeFunctionSize = record.RuntimeFunctionSize
	MaxMappingSize      = record.MaxMappingSize
	MaxTables           = record.MaxTables
	MaxDllLength        = record.MaxDllLength

	HdrMagic          = record.HdrMagic
	HdrVersion        = record.HdrVersion
	HdrHeaderSize     = record.HdrHeaderSize
	HdrRecordSize     = record.HdrRecordSize
	HdrPid            = record.HdrPid
	HdrGeneration     = record.HdrGeneration
	HdrListHead       = record.HdrListHead
	HdrMappingAddress = record.HdrMappingAddress
	HdrMappingSize    = record.HdrMappingSize
	HdrUsedSize       = record.HdrUsedSize
	HdrTableCount     = record.HdrTableCount
	HdrFlags          = record.HdrFlags

	RecListEntry               = record.RecListEntry
	RecFunctionTable           = record.RecFunctionTable
	RecTimeStamp               = record.RecTimeStamp
	RecMinimumAddress          = record.RecMinimumAddress
	RecMaximumAddress          = record.RecMaximumAddress
	RecBaseAddress             = record.RecBaseAddress
	RecCallback                = record.RecCallback
	RecContext                 = record.RecContext
	RecOutOfProcessCallbackDll = record.RecOutOfProcessCallbackDll
	RecType                    = record.RecType
	RecEntryCount              = record.RecEntryCount
	RecMaximumEntryCount       = record.RecMaximumEntryCount
	RecFlags                   = record.RecFlags
	RecFlagGrowable            = record.RecFlagGrowable

	DynamicFunctionTableSizeWin7  = record.DynamicFunctionTableSizeWin7
	DynamicFunctionTableSizeWin10 = record.DynamicFunctionTableSizeWin10
	DynamicFunctionTableSizeWin11 = record.DynamicFunctionTableSizeWin11
)
