// Package symfile defines what one module's symbol file gives the symbol
// handler (package symhandler): the module's identity, its symbols, and for
// an address the chain of inlined frames with source positions.
//
// The readers live in sub-packages, one per format: elfsym (ELF symbol
// tables, DWARF and Go's pclntab), pesym (PE exports, COFF symbols and the
// CodeView identity) and perfmap (perf's /tmp/perf-PID.map files). Each
// returns a [Source]. The handler chooses the reader, finds separate debug
// files and maps link-time addresses to where a module is loaded; a Source
// knows only its own file and works in the file's link-time addresses.
//
// # Robustness
//
// Readers take files from anywhere (a symbol server, a crashed machine, a
// hostile target's memory). Malformed input gives an error or partial
// results, never a panic, a hang or an allocation the input's size does not
// justify; every reader is fuzzed.
package symfile
