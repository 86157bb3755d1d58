// Package elfsym reads an ELF file's symbols, source lines and inline
// frames for the symbol handler: [Open] and [NewFile] return a [File],
// which implements symfile.Source, and [Identify] reads only what
// identifies the file (build ID, Go build ID, .gnu_debuglink, layout).
//
// Symbols come from .symtab, or from .dynsym when the file was stripped;
// section, file and undefined symbols are left out. Frames come from the
// DWARF through package dwarfidx, whose compilation units are indexed when
// the file is opened and parsed on first use. A Go program without DWARF
// (built with -ldflags=-s -w) keeps its pclntab, read with debug/gosym:
// it gives Symbols when there is no symbol table, and Frames the
// containing function and the innermost position, without inlined frames
// or columns.
//
// A [File] reads from an io.ReaderAt, which may be a process's memory
// (the vDSO, say): ELF file offsets are then offsets from the image's
// start, which for the vDSO are the same.
//
// Compressed debug sections (SHF_COMPRESSED with zlib or zstd, and GNU's
// .zdebug_ sections) are inflated when the file is opened. With
// symfile.Options.CacheDir set, the inflated sections are kept there by
// build ID (DIR/xx/rest/.debug_info-COMPRESSED-SIZE, written to a
// temporary file, synced and renamed) and the next open maps them
// read-only instead of inflating again: libc's debug file opens in about
// 4 ms instead of 68. A cached copy whose size is wrong is ignored and
// replaced; copies unused for 30 days are deleted by a sweep made at most
// daily when a copy is stored. Beside the inflated .debug_info the cache
// keeps the table of its unit headers (dwarfidx.Sections.Units,
// .debug_info-COMPRESSED-SIZE.units), so that the next open does not
// walk them either. A cached copy's mapping stays for the life of the
// process (once per file): an index may still be in use on another
// goroutine after its File is closed. The cache's files are replaced by
// rename, never rewritten in place; the user's files may be, so nothing
// of them stays mapped: a File opened by name maps its symbol table's
// entries only while it decodes them, and reads the string table, which
// the symbol names point into.
//
// References: System V ABI, "Object Files" (ELF header, sections, symbol
// table, notes, program headers); the GNU build ID and .gnu_debuglink
// conventions (GDB manual, "Debugging Information in Separate Files");
// Go's cmd/link for the Go build ID note.
//
// # Robustness
//
// Files come from disk, symbol servers and process memory. Malformed input
// gives an error or a partial result, never a panic: input that is not ELF
// gives an error wrapping symfile.ErrUnrecognized; malformed headers a
// *[FormatError] wrapping [ErrMalformed]; big-endian files [ErrUnsupported].
// Notes, .gnu_debuglink and DWARF sections are size-limited before they
// are read, and a compressed section's buffer grows with the data it
// inflates rather than taking the size its header claims. debug/elf, debug/dwarf and debug/gosym can panic on some
// malformed inputs: the panics are recovered at this package's boundary
// (NewFile, Identify, Symbols, Frames) and reported as errors or an empty
// result. DWARF that cannot be indexed does not fail NewFile: it is
// reported by [File.DWARFError], and Frames falls back to the pclntab
// where there is one. FuzzElfsym enforces this.
package elfsym
