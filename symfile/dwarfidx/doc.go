// Package dwarfidx answers "which inlined frames are at this address" from
// a file's DWARF, for the ELF reader (symfile/elfsym) and for PE images
// with DWARF (MinGW).
//
// [New] and [NewSections] index the compilation units cheaply. New, over
// a debug/dwarf.Data, reads each unit's own DIE for its address ranges,
// line table offset and compilation directory. NewSections, over the raw
// sections, decodes DIEs itself and reads less: the unit headers and
// .debug_aranges, and the own DIE of a unit that .debug_aranges does not
// cover (with its abbreviation table read only up to that DIE's code).
// The first query that lands in a unit reads the unit's abbreviations,
// DIEs and line table and keeps them as sorted arrays; later queries in
// the unit are two binary searches and do not allocate beyond the frames
// they return. TestNewMatchesNewSections checks that both give the same
// frames and functions on GCC's DWARF 4 and 5, Go's, libc's separate debug
// file and libstdc++'s debug build.
//
// The answers follow llvm-symbolizer --inlines --no-demangle, which the
// tests use as the oracle:
//
//   - The frames at an address are the inlined subroutines whose ranges
//     contain it, innermost first, then the subprogram that contains them
//     (LLVM's DWARFUnit::getInlinedChainForAddress). Where ranges of
//     subroutines overlap, the DIE later in pre-order wins, as in LLVM's
//     address-to-DIE map.
//   - A function's name is the first DW_AT_linkage_name (or
//     DW_AT_MIPS_linkage_name) found on its DIE or through
//     DW_AT_specification and DW_AT_abstract_origin, else the first
//     DW_AT_name found the same way (LLVM's getSubroutineName). Names are
//     not demangled. llvm-symbolizer, unlike this package, replaces the
//     outermost frame's name with the symbol table's; the symbol handler
//     makes that choice.
//   - The innermost frame's file, line and column come from the line
//     table row for the address (the last row at or below it in the
//     sequence that contains it); each outer frame's from the
//     DW_AT_call_file, DW_AT_call_line and DW_AT_call_column of the
//     inlined subroutine it calls.
//   - File names are joined as LLVM joins them for absolute paths:
//     an absolute name as is, else the compilation directory (unless the
//     include directory is absolute), the include directory and the
//     name, without cleaning "." or "..". DWARF 2 to 5 line tables are
//     read. Indexes made with [New] read line tables through debug/dwarf,
//     which cleans the paths; [NewSections] keeps them as recorded.
//
// References: DWARF Debugging Information Format Version 5
// (https://dwarfstd.org/doc/DWARF5.pdf): §2.17 code addresses and
// ranges, §3.3.8 inlined subroutines, §6.2 line number information,
// §7.5.1 unit headers; and version 4 for the older line table header.
//
// # Concurrency
//
// An [Index] is safe for concurrent use: units are parsed once, under a
// per-unit sync.Once, and are read-only afterwards.
//
// # Robustness
//
// DWARF comes from files of unknown origin. Malformed DWARF gives an error
// or a partial result, never a panic or a hang: unit headers,
// abbreviations, DIEs, range lists and line tables are decoded with a
// bounds-checked cursor that stops at the first error (*[FormatError],
// wrapping [ErrMalformed]); the references a name lookup follows, the DIE
// nesting the walk follows and the size of an abbreviation table are
// bounded. Indexes made by New decode DIEs with debug/dwarf, which can
// panic on some malformed inputs; those panics, and any of this package's
// own, are recovered at its boundary and reported as a *FormatError. A unit that fails part way keeps what was read before the
// error. The fuzz test FuzzElfsym in symfile/elfsym exercises this.
package dwarfidx
