// Package functable is an in-process registry of dynamic function tables:
// what RtlAddFunctionTable, RtlAddGrowableFunctionTable,
// RtlGrowFunctionTable, RtlDeleteGrowableFunctionTable,
// RtlInstallFunctionTableCallback and RtlDeleteFunctionTable do on Windows,
// for Go programs on any OS, with RtlLookupFunctionEntry for the code those
// tables describe.
//
// A JIT registers the unwind information of the code it generates with a
// [Registry]; [Registry.LookupFunctionEntry] then finds the entry for a PC,
// and the registry serves package unwind as an unwind.FunctionTable, so
// generated code unwinds like compiled code.
//
// References: Microsoft, "RtlAddFunctionTable",
// "RtlInstallFunctionTableCallback", "RtlAddGrowableFunctionTable" (winnt.h),
// and "DYNAMIC_FUNCTION_TABLE structure" (the table list debuggers read).
//
// # Semantics
//
//   - A static table's entries are copied; its range is [base + lowest
//     BeginAddress, base + highest EndAddress). Unsorted entries are
//     accepted (RF_UNSORTED) and indexed like sorted ones.
//   - A growable table covers [RangeBase, RangeEnd); lookups see its first
//     EntryCount entries. Growing copies the newly valid entries from the
//     caller's array. Shrinking, growing past the maximum, or adding
//     entries out of order or outside the range is an error (Windows and
//     Wine ignore such calls silently).
//   - A callback table's identifier must have its two low bits set. Its
//     callback is called only when a lookup hits its range, with the exact
//     PC, and with no lock held.
//   - Registered ranges never overlap: an overlapping registration fails
//     with ErrOverlap.
//
// # Published list
//
// A registry made with Options{Publish: true} also keeps its table list in
// shared memory that another process can find without symbols — on Linux a
// memfd named "fntable-function-tables", visible in /proc/PID/maps — as a
// versioned header and records in the x64 DYNAMIC_FUNCTION_TABLE layout,
// with entry arrays and provider paths inside the mapping. Writers bracket
// each change with a generation counter, so a reader that copies the
// mapping can tell a consistent copy from a torn one. Package
// functable/remote reads it and documents the layout for other languages;
// the offsets are the Hdr* and Rec* constants of this package.
//
// # Concurrency
//
// A Registry is safe for concurrent use. Lookups take no lock, make no
// atomic writes, and never wait for writers: a lookup loads the list of
// the tables near its PC from a two-level directory and searches it, and
// writers never modify a published list, they replace it
// (read-copy-update). A lookup's cost does not depend on the number of
// tables. Writers are serialised by a mutex that is never held while
// user code runs.
package functable
