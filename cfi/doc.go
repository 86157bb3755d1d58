// Package cfi reads and evaluates the call-frame information of ELF
// objects on x86-64 Linux: .eh_frame with its .eh_frame_hdr search table,
// and .debug_frame, also from a separate debug file. The stack walker
// uses it to unwind native frames: [File.Step] turns the registers of one
// frame into those of its caller.
//
// References:
//   - DWARF 5, §6.4 "Call Frame Information" (CIE, FDE, the DW_CFA_*
//     instructions, the rules of the row table) and §2.5 "DWARF
//     Expressions" (DW_OP_*), https://dwarfstd.org/dwarf5std.html.
//   - Linux Standard Base Core, "Exception Frames" (.eh_frame, the
//     augmentations z, L, P, R, S, the DW_EH_PE_* pointer encodings,
//     .eh_frame_hdr), https://refspecs.linuxfoundation.org/LSB_5.0.0/LSB-Core-generic/LSB-Core-generic/ehframechpt.html.
//   - The .eh_frame_hdr table as GNU ld and gold write it
//     (--eh-frame-hdr): version 1, eh_frame_ptr, fde_count, then sorted
//     (initial location, FDE address) pairs, datarel to the header.
//   - System V x86-64 psABI, "DWARF Register Number Mapping".
//
// # Concepts
//
// A CIE holds what FDEs share: alignment factors, the return address
// column, pointer encodings and initial instructions. An FDE covers a
// range of code and carries a CFA program; running it up to a pc gives
// the row of the table for that pc: a rule for the canonical frame
// address (CFA, the caller's rsp before the call) and a [Rule] per
// register. Addresses in a [File] are link-time addresses; Step takes
// the load bias that maps them to run-time addresses.
//
// .eh_frame differs from .debug_frame in the CIE id (0 instead of
// all-ones), in its CIE pointers (relative to the field instead of the
// section start) and in its augmentations and pointer encodings. Both
// 32- and 64-bit DWARF formats are read, and CIE versions 1, 3 and 4.
//
// Lookups use .eh_frame_hdr's binary search table when there is one;
// otherwise, and for .debug_frame, a sorted index of the section's FDEs is
// built on first use. A [Cache] shares Files by build ID, so that a
// second walk of a process parses no call-frame information again.
// [FindDebugFile] finds the separate debug file whose .debug_frame
// [File.AddDebugFrame] adds.
//
// # Concurrency
//
// A [File] and a [Cache] are safe for concurrent use: parsing happens
// under a lock per section, and what is parsed is kept. Close must not
// run concurrently with other methods of the same File.
//
// # Robustness
//
// Call-frame information comes from files and process memory that may be
// corrupt or hostile. Malformed input gives a [*FormatError] (wrapping
// [ErrMalformed]) or one of the package's sentinel errors, never a panic,
// a hang or an allocation out of proportion to the input. Every loop is
// bounded by the input's length or by a named limit: [MaxSectionSize],
// [MaxFDEs], [MaxStateDepth], [MaxRows], [MaxExpressionSteps],
// [MaxExpressionStack]. The parsers and the expression evaluator are
// fuzzed.
package cfi
