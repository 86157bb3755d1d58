// Package perfmap reads and writes perf's JIT symbol maps, the files
// /tmp/perf-PID.map that JIT compilers (V8 with --perf-basic-prof, the JVM
// with -XX:+DumpPerfMapAtExit or perf-map-agent, .NET with
// DOTNET_PerfMapEnabled, wasm engines) write so that profilers can name
// generated code. A [File] is a [symfile.Source].
//
// References:
//   - Linux, tools/perf/Documentation/jit-interface.txt: one line per
//     function, "START SIZE symbolname", START and SIZE in hex.
//   - Linux, tools/perf/util/symbol.c, dso__load_perf_map: how perf reads
//     the lines (below).
//
// # Line format
//
// Each line is START, SIZE and a name, separated by spaces or tabs. START
// and SIZE are hexadecimal, with or without a 0x or 0X prefix: perf reads
// them with strtoull(..., 16), which accepts the prefix, and the JDK 25
// writes it (DataDog/ddprof#560 is a profiler that dropped every JIT frame
// because it did not). The name is the rest of the line, spaces included
// ("JS:*fib file.js:1:20"), without the line end: LF or CRLF. Blank lines
// are ignored. A last line without a line end is read as it is, as perf
// reads it, though a map read while its JIT appends to it may end in half
// a line.
//
// Where this reader differs from perf: perf skips exactly one character
// after each number, so extra separators end up in the name, and it keeps
// a CR in the name; this reader skips any run of spaces and tabs and
// trims trailing white space and CR. Perf ignores names of one or two
// characters (its "len + 2 >= line_len" test); this reader keeps them.
//
// Malformed lines are skipped and counted, never fatal: a START or SIZE
// that is not hex or overflows 64 bits, a missing name, a zero SIZE (the
// entry covers no address), a range that ends at 2^64 or beyond, or a line longer
// than [MaxLineLength]. [File.Skipped] gives the count and the line
// numbers and reasons of the first [MaxSkippedReported]. Only input in
// which no line parses is an error (wrapping [ErrMalformed] and
// symfile.ErrUnrecognized); an empty map is a valid map with no symbols.
//
// # Overlapping entries
//
// A JIT appends a line for each function it emits and reuses the memory
// of code it frees, so a map can describe an address more than once. Perf
// keeps every line in a tree ordered by START and its lookup returns
// whichever covering entry the tree search meets first, which depends on
// the tree's shape, not on the order of the lines. This reader makes the
// later line win, for every address it covers: each address is attributed
// to the last line whose range contains it, because the newest code at an
// address is the code that runs there. An earlier entry keeps the parts
// of its range no later line covers, possibly as several symbols with its
// name. [File.Symbols] is therefore sorted and non-overlapping.
//
// # Addresses
//
// Addresses are absolute: a perf map describes one process's memory, not
// a file that is loaded somewhere. [File.Ident] reports LinkBase as the
// lowest address and ImageSize as the span up to the highest end, so a
// handler that maps the "module" at LinkBase uses the addresses as they
// are.
//
// # Robustness
//
// Maps are written by the JIT in the target process and may be truncated
// (the process died mid-line), corrupt or hostile. Parsing never panics,
// keeps one copy of the input (the names are substrings of it), and runs
// in O(n log n) for n lines. The fuzz test FuzzPerfMap enforces this.
package perfmap
