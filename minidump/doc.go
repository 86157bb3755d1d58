// Package minidump reads Windows minidump files (.dmp) on any operating
// system: the header and stream directory, threads and their contexts,
// modules, memory, the exception, system and process information, and the
// function-table stream that keeps the dynamic function tables of JIT
// code, so that stacks can be unwound through JIT frames offline.
//
// [Open] and [NewFile] read the header and the directory; each stream is
// decoded when its accessor is called: [File.SystemInfo],
// [File.Threads], [File.ThreadInfoList], [File.ThreadNames],
// [File.Modules], [File.UnloadedModules], [File.MemoryList],
// [File.Memory64List], [File.MemoryInfoList], [File.Exception],
// [File.FunctionTables], [File.MiscInfo] and [File.BreakpadInfo]. Any
// stream, including those not decoded here, can be read raw with
// [File.StreamData]. An accessor for a stream the dump does not have
// returns nil and no error.
//
// The Go types mirror the on-disk structures field for field, with the
// spec's names, plus the data the structures point to (names, records,
// contexts), so that a writer can produce a dump from the same values.
//
// [Write] and [WriteFile] write a minidump of an x64 process from a
// [Content]: system information, threads (with their names) and their
// 1232-byte CONTEXTs, modules with CodeView records ([ELFCodeView] for
// Breakpad's Linux form), memory as a MemoryListStream or, with
// WriteOptions.Full, a Memory64ListStream, the function-table stream,
// an exception and any raw stream (Breakpad's /proc files). What they
// write reads back through this package to the values given.
//
// Thread contexts are returned as raw bytes, because their layout depends
// on the architecture; [ContextArch] tells an x64 CONTEXT from an x86 one,
// and package unwind decodes the x64 CONTEXT (Context.UnmarshalWindows).
// The reader does not use unwind (only the writer's Content takes
// unwind.Context values); [File.Memory] returns a
// [Memory] with the method set of unwind.Memory and unwind.ByteSource, and
// its short reads return the errors of package memory, as every memory
// source does: an *[UnmappedError] or a *memory.ReadError, both matching
// [ErrShortRead] (these names are package memory's).
//
// References:
//   - minidumpapiset.h (Windows SDK) and its mingw-w64 transcription
//     psdk_inc/_dbg_common.h: every MINIDUMP_* structure, #pragma pack(4),
//     and the MINIDUMP_STREAM_TYPE values.
//   - Microsoft, "minidumpapiset.h header"
//     (https://learn.microsoft.com/windows/win32/api/minidumpapiset/):
//     MINIDUMP_HEADER, MINIDUMP_DIRECTORY, MINIDUMP_STRING,
//     MINIDUMP_THREAD, MINIDUMP_MODULE, MINIDUMP_MEMORY_LIST,
//     MINIDUMP_MEMORY64_LIST, MINIDUMP_EXCEPTION_STREAM,
//     MINIDUMP_SYSTEM_INFO, MINIDUMP_MISC_INFO_5,
//     MINIDUMP_FUNCTION_TABLE_STREAM and MINIDUMP_FUNCTION_TABLE_DESCRIPTOR.
//   - Microsoft, "DYNAMIC_FUNCTION_TABLE structure"
//     (https://learn.microsoft.com/windows/win32/devnotes/dynamic_function_table_type):
//     the native table dbghelp copies into the function-table stream.
//   - Google Breakpad src/processor/minidump.cc: the 4 bytes of padding
//     that 64-bit writers put after the count of a list stream, and the
//     Breakpad stream types.
//
// # Function-table stream
//
// The FunctionTableStream (13) is a MINIDUMP_FUNCTION_TABLE_STREAM header
// followed, per table, by a MINIDUMP_FUNCTION_TABLE_DESCRIPTOR, the raw
// native DYNAMIC_FUNCTION_TABLE of the process (88 bytes on Windows 7, 112
// on Windows 10 with its TreeNode, 136 on recent builds; the size is
// taken from the header, and only the first 88 bytes, common to all, are
// decoded, by record.DecodeDynamicFunctionTable; [Write] writes the
// 88-byte Windows 7 layout), the table's entries (x64 RUNTIME_FUNCTIONs relative to the
// table's BaseAddress), and padding. dbghelp also saves the UNWIND_INFO
// the entries point to in the memory list, so that [FunctionTables.LookupFunctionEntry]
// and [Memory] together give an unwinder all it needs for JIT frames.
//
// # Concurrency
//
// A [File] is not safe for concurrent use. A [Memory] is, when the
// io.ReaderAt given to [NewFile] is (as *os.File is).
//
// # Robustness
//
// Dumps come from the field, written by crashing processes, and may be
// truncated, corrupt or hostile. Reading them never panics. All decoding
// goes through a bounds-checked cursor; every count and size read from the
// dump is checked against the size of the data that must hold it, and
// every location against the size of the file, before anything is
// allocated (when the io.ReaderAt cannot tell its size, data is read in
// 1 MiB chunks, so that a bogus size fails before it allocates much).
// Strings, records and contexts are capped ([MaxStringBytes],
// [MaxRecordSize]), as are the stream directory ([MaxStreams]) and the
// memory index ([MaxMemoryRanges]). Because entries can all point at the
// same bytes of the file, the records one accessor reads, and the memory
// a [Memory] loads, may add up to at most twice the size of the file
// (64 MiB when the size is unknown); beyond that they are reported as
// malformed, so a small file never makes a large allocation. Malformed data yields a
// *[FormatError] wrapping [ErrMalformed] and, for data cut short,
// [ErrTruncated]; data that is not a minidump yields an error wrapping
// [ErrNotMinidump]. Accessors return what they decoded together with the
// error where a part can be decoded without the rest (a module whose name
// cannot be read, a memory range beyond the end of the file, the entries
// of a thread, module or memory list before the point where the file or
// the list's own count cuts it short). The fuzz test FuzzMinidump
// enforces this.
package minidump
