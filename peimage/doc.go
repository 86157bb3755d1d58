// Package peimage reads the static function table of a PE32+ x64 image:
// the RUNTIME_FUNCTION entries of its exception directory, the UNWIND_INFO
// they point to, and the image bytes by RVA, from an image file or from an
// image mapped in memory (a live process or a minidump).
//
// [Open] and [NewFile] read an image file: RVAs are translated to file
// offsets through the section headers, and the part of a section beyond
// its raw data reads as zeros, as the loader maps it. [NewMapped] reads an
// image already mapped at some base address through a [Memory]: an RVA is
// then simply the address base+RVA. Either way, [File.Memory] serves the
// image as it would be mapped at a chosen base, so that an unwinder can
// read code and unwind information at virtual addresses.
//
// [File.LookupFunctionEntry] finds the entry for an RVA by binary search in
// an index built once, following indirect entries (RUNTIME_FUNCTION_INDIRECT);
// [File.UnwindInfo] decodes an entry's UNWIND_INFO, and [File.Chain] follows
// chained unwind information to the primary entry.
//
// References:
//   - Microsoft, "PE Format"
//     (https://learn.microsoft.com/windows/win32/debug/pe-format): the MS-DOS
//     stub, the COFF file header, the PE32+ optional header, data directory 3
//     (IMAGE_DIRECTORY_ENTRY_EXCEPTION) and the section table.
//   - Microsoft, "x64 exception handling"
//     (https://learn.microsoft.com/cpp/build/exception-handling-x64):
//     the .pdata table is sorted by BeginAddress and searched by binary search.
//   - winnt.h (mingw-w64): RUNTIME_FUNCTION_INDIRECT.
//
// # Function table
//
// The entry count is the exception directory's Size divided by 12; the
// size of the .pdata section, which is padded, is never used. The table
// should be sorted by BeginAddress without overlaps; all-zero entries
// (some linkers leave them) never match and are not reported. Anything else
// unusual — an unsorted table, overlapping entries, entries outside the
// image, a Size that is not a multiple of 12, indirect entries that cannot
// be resolved — is reported by [File.Warnings] and otherwise tolerated, as
// Windows tolerates it.
//
// [File.ScanTable] reads the table entry by entry through a fixed buffer
// and keeps none of it, with the same warnings: for listings of tables of
// any size. A File made by [NewFileLazy] reads and indexes its table only
// when a method needs it, so one that is only scanned never holds it.
//
// # Concurrency
//
// A [File] is immutable once made. Its lookups may run concurrently; its
// reads may when the underlying io.ReaderAt or [Memory] allows concurrent
// reads, as *os.File does. A File made by [NewFileLazy] reads its table
// once, at the first call that needs it, from whichever goroutine makes
// it.
//
// # Robustness
//
// Images come from disk, from dumps and from the memory of processes that
// may be corrupt or hostile. Reading them never panics: every header field
// is checked before it is used, every RVA range is checked against
// SizeOfImage and the section bounds before any read, the table is capped
// at [MaxFunctions] entries, and chains and indirect entries are followed
// at most unwindinfo.ChainLimit times. Malformed headers yield a
// *[FormatError] wrapping [ErrMalformed]; a file that is not a PE32+ x64
// image yields an error wrapping [ErrNotImage], [ErrUnsupportedMachine] or
// [ErrNotPE32Plus]. The fuzz test FuzzPEImage enforces this.
package peimage
