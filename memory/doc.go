// Package memory is the contract every source of target memory keeps: a
// live process, a minidump, a PE image, the current process, a provider.
//
// A [Reader] reads len(p) bytes at an address. A read that returns fewer
// bytes returns an error too, and every such error matches [ErrShortRead]
// with errors.Is. Callers that need to know why tell three cases apart:
//
//   - *[UnmappedError]: the address is not mapped (or not readable) in the
//     target. For an unwinder this is the end of the readable stack.
//   - *[ReadError]: the address may be mapped but could not be read (the
//     kernel refused, an I/O error, a provider failed).
//   - [ErrTargetGone]: the process exited (ESRCH); no further read will
//     succeed.
//
// The errors are defined here, below every package that reads memory, so
// that errors.Is and errors.As work across layers whichever source the
// bytes came from. Packages that had their own names for them (unwind,
// peimage, minidump, target) keep those names as aliases of these.
//
// The package imports only the standard library.
package memory
