// Package symtest gives the symbol readers' tests and benchmarks real
// binaries and an oracle: a large C program with DWARF (SQLite embedded
// through cgo), a C++ program with inlined frames and mangled names, a Go
// program with and without DWARF, and a C program whose debug information
// is in a separate file; random addresses in their code; and what
// llvm-symbolizer says about those addresses.
//
// The programs are built from the sources in testdata with the machine's
// go, gcc, g++ and objcopy, and cached under os.UserCacheDir()/fntable/symtest
// in a directory named by a hash of the sources, the commands and the
// tools' versions, so that later runs and other test processes reuse them.
// llvm-symbolizer's answers are cached the same way, keyed by the
// executable's contents, the addresses, the flags and its version. Entries
// are made in a temporary directory and renamed into place, so concurrent
// test processes never see a partial one.
//
// A function whose tool is missing skips the test with the reason, or
// fails it when the environment variable CI is non-empty: CI must run
// these tests.
package symtest
