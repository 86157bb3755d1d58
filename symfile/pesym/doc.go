// Package pesym reads the symbols and the identity of a PE image (PE32 or
// PE32+) for the symbol handler: the export directory, the COFF symbol
// table that MinGW images keep, the function ranges of the x64 exception
// directory, and the CodeView (RSDS) record of the debug directory that
// names the image's PDB. A [File] is a [symfile.Source].
//
// References:
//   - Microsoft, "PE Format"
//     (https://learn.microsoft.com/windows/win32/debug/pe-format): the
//     optional header (PE32 magic 0x10b, PE32+ magic 0x20b), the data
//     directories, ".edata" (the export directory table, export address
//     table, name pointer table and ordinal table; forwarder RVAs point
//     inside the export directory), ".debug" (IMAGE_DEBUG_DIRECTORY,
//     IMAGE_DEBUG_TYPE_CODEVIEW), and "COFF Symbol Table" (storage classes,
//     section numbers, the string table for long names, "/n" section names).
//   - Microsoft, "x64 exception handling"
//     (https://learn.microsoft.com/cpp/build/exception-handling-x64):
//     RUNTIME_FUNCTION ranges and UNW_FLAG_CHAININFO.
//   - The RSDS layout ("RSDS", GUID, age, UTF-8 path), as llvm-readobj
//     --coff-debug-directory prints it (llvm/Object/CVDebugRecord.h).
//
// # Symbols
//
// [File.Symbols] merges three sources, all at ImageBase+RVA:
//
//   - COFF symbols with storage class EXTERNAL, STATIC or WEAK_EXTERNAL
//     that are defined in a section. Section values are converted to RVAs
//     (value + section VirtualAddress), as llvm-nm does. Skipped: .file and
//     other debug entries, section definitions (STATIC, not a function,
//     with an auxiliary record, as llvm-readobj tells them; GNU ld keeps
//     one per input section), labels (LABEL, UNDEFINED_LABEL), .bf/.ef/.lf
//     entries (FUNCTION), absolute and undefined symbols, and symbols
//     beyond their section or the image (linker markers like __end__).
//     A symbol is a [symfile.KindFunction] when its type says function or
//     its section holds code; [symfile.KindData] when its section holds
//     data; otherwise [symfile.KindOther].
//   - Exports. Exports by name keep their name; an export by ordinal only
//     is named "#<ordinal>" (decimal), since nothing else names it.
//     Forwarders (an export RVA inside the export directory, which holds
//     the "DLL.Function" string) are not code in this image and are left
//     out of Symbols; [File.Exports] lists them with their target. An
//     export is a function when its section holds code, else data.
//   - x64 images: the exception directory (package peimage). A function
//     symbol at the start of a RUNTIME_FUNCTION gets the entry's size.
//     Entries with no function symbol at their start get a name, because
//     otherwise an address in them would be attributed to the previous
//     symbol at a large offset, which is wrong, where a name that says
//     "unnamed function at this RVA" is right: a primary entry is named
//     "sub_<rva>" (lowercase hex RVA, no 0x, as IDA names unnamed code),
//     and a chained fragment (UNW_FLAG_CHAININFO; a function's code split
//     from its body) gets the name of the function its chain leads to.
//     Stripped MSVC images (exports at most) thus still get every
//     non-leaf function's bounds.
//
// The same address and name from several sources is one symbol: the
// first source in the order above decides the kind, and the size is the
// largest known. Sizes are 0 where no source gives one (leaf functions
// have no exception-directory entry; COFF and exports carry no sizes).
//
// # Frames
//
// MinGW images keep DWARF in their .debug_* sections (long section names
// resolved through the COFF string table). When an image has it, Frames
// answers from it through package dwarfidx: the inline chain with files
// and lines when Options.Lines is set, else the containing function.
// Compressed .zdebug_* sections are not read. Without DWARF, Frames
// returns dst unchanged and the handler symbolizes from Symbols: exports,
// COFF symbols and the exception directory have no line information.
//
// # Concurrency
//
// A [File] is immutable once made and safe for concurrent use.
//
// # Robustness
//
// Images come from symbol servers, crash dumps and hostile targets.
// Reading one never panics, never loops without bound and never allocates
// more than the input justifies: every header field is checked before it
// is used, every directory's RVA range is checked against SizeOfImage and
// the section that holds it, counts are capped ([MaxExports],
// [MaxSymbols]), and tables are read in bounded chunks so that a huge
// count in a short file stops at the file's end. Headers that cannot be
// read give an error: a *[FormatError] (wrapping [ErrMalformed]) for a
// malformed image, and an error wrapping [symfile.ErrUnrecognized] for
// input that is not a PE image at all (COFF object files included). A
// malformed export directory, symbol table, debug directory, exception
// directory or DWARF costs only what that source gives and is reported by
// [File.Warnings]. The fuzz test FuzzPESym enforces this.
package pesym
