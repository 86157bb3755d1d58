// Package debugfile says where the separate debug file of an ELF image may
// be, and checks a candidate found by .gnu_debuglink name.
//
// Distributions strip debugging information (.debug_*, the full symbol
// table, .debug_frame) into separate files. An image names its debug file
// in two ways: its build ID (the NT_GNU_BUILD_ID note), which leads to
// DIR/.build-id/xx/rest.debug under a global debug directory, and its
// .gnu_debuglink section, which gives a file name and the CRC-32 of that
// file. [Candidates] lists the places in GDB's order (GDB manual,
// "Debugging Information in Separate Files"); [CRCMatches] checks a file
// found by name against the debuglink's CRC.
//
// The package does no I/O except reading the file given to [CRCMatches]:
// callers decide which candidates exist and whether to trust them.
package debugfile
