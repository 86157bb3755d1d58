// Package unwindinfo decodes, validates and encodes the x64 Windows unwind
// data: RUNTIME_FUNCTION entries (.pdata) and UNWIND_INFO blocks (.xdata),
// versions 1 and 2, with every unwind opcode, version 2 epilog codes,
// exception-handler references and chained unwind information.
//
// The package is pure: it takes bytes and returns values. It does no I/O,
// knows nothing of images or processes, and builds on every GOOS.
//
// References:
//   - Microsoft, "x64 exception handling"
//     (https://learn.microsoft.com/cpp/build/exception-handling-x64):
//     RUNTIME_FUNCTION, UNWIND_INFO, UNWIND_CODE and the unwind procedure.
//   - winnt.h (mingw-w64): UNW_FLAG_*, RUNTIME_FUNCTION_INDIRECT.
//   - dotnet/runtime src/coreclr/unwinder/amd64/unwinder.cpp, a copy of the
//     Windows RtlVirtualUnwind: slot counts and version 2 UWOP_EPILOG codes.
//
// # Concepts
//
// A [RuntimeFunction] maps a code range [BeginAddress, EndAddress) to the
// RVA of its UNWIND_INFO. An UNWIND_INFO is a 4-byte header followed by
// CountOfCodes 16-bit slots of unwind codes, padded to an even count, then
// either the RVA of a language-specific handler (followed by the handler's
// data, whose length only the handler knows) or, for chained information,
// a copy of the parent RuntimeFunction.
//
// Each [Code] describes one prolog instruction; multi-slot codes carry
// their operand in the following slots. [Code] keeps the raw fields, so
// encoding a decoded [Info] reproduces the input bytes exactly; the methods
// of [Code] give the meaning (sizes and offsets in bytes, registers).
//
// [View] reads UNWIND_INFO in place without allocating, for unwinders on a
// hot path; [Decode] builds an [Info] value for tools.
//
// # Robustness
//
// Decoding never panics, whatever the input: every read is bounds-checked,
// and malformed data yields a *[FormatError] that wraps [ErrMalformed] and a
// more specific sentinel ([ErrTruncated], [ErrUnsupportedVersion],
// [ErrBadOp]). Decoders return what they decoded before the error. The
// fuzz tests in this package enforce this.
package unwindinfo
