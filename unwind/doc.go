// Package unwind emulates the Windows x64 unwinder: RtlVirtualUnwind and
// RtlLookupFunctionEntry, exactly as current Windows performs them, in Go
// on any OS.
//
// [Unwinder.VirtualUnwind] (and the function [VirtualUnwind]) takes the
// register state of a function, its RUNTIME_FUNCTION entry and the image
// base, and computes the register state of its caller, the establisher
// frame and the language-specific handler, and, when given a
// [ContextPointers], where each restored register was saved. Memory comes
// from a [Memory]: a live process, a minidump, an image file, or the
// current process; the unwinder never knows which.
// [SortedTable], [Tables] and [Lookup] find the entry for a PC.
//
// References:
//   - Microsoft, "x64 exception handling", section "Unwind procedure"
//     (https://learn.microsoft.com/cpp/build/exception-handling-x64).
//   - dotnet/runtime src/coreclr/unwinder/amd64/unwinder.cpp, Microsoft's
//     copy of the Windows RtlVirtualUnwind: establisher frame, epilog
//     detection and emulation, version 2 epilog codes, chain limit.
//   - Wine dlls/ntdll/tests/unwind.c, whose expectations are checked on
//     Windows: the establisher frame after an epilog (Windows 11), no epilog
//     scan for functions without unwind codes (Windows 10 1809), jumps into
//     another part of the same function (Windows 10 2009).
//
// # Epilog detection
//
// For version 1 unwind information, Windows decides whether control is in
// an epilog by matching instruction bytes at the PC: an optional
// `add rsp, imm` or `lea rsp, [framereg+disp]`, any number of `pop r64`,
// an optional F2 prefix, and a return or a jump that leaves the function.
// This package matches the same bytes with the same rules rather than
// disassembling, because an exact emulation must accept and reject exactly
// what Windows does, including its quirks (a REX.W prefix marks any
// `jmp r/m64` as a tail call; `ret imm16` is emulated as `ret`). The tests
// cross-check every accepted form with golang.org/x/arch/x86/x86asm.
//
// # Performance
//
// A step through a [SplicedMemory] (the form the other packages of this
// module give their memory in) takes a fast path when it can: on amd64,
// an assembly routine for the commonest steps (version 1 unwind
// information without chaining or XMM saves, from a function's body or
// from an epilog that ends in a return); then a Go routine that also
// handles prologs and any number of memory runs; then the general path,
// which handles everything through any [Memory]. Each path hands a step it
// does not take to the next without changing anything, and the tests
// check that all three give the same results, field for field. Steps do
// not allocate.
//
// # Concurrency
//
// [Unwinder] values, [SortedTable] and [Tables] are safe for concurrent use
// when the Memory and FunctionTable they use are. A [Context] is not.
//
// # Robustness
//
// Unwinding reads memory that may be corrupt or hostile. It never panics:
// malformed unwind information yields an error wrapping
// unwindinfo.ErrMalformed, unreadable memory an error wrapping
// [ErrShortRead], and chains are cut at unwindinfo.ChainLimit links. The
// fuzz test FuzzVirtualUnwind enforces this.
package unwind
