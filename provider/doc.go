// Package provider loads out-of-process function table providers and
// calls them safely: the libraries a callback table names
// (RtlInstallFunctionTableCallback's OutOfProcessCallbackDll), which a
// Windows debugger loads to learn the entries of a JIT's callback table.
// A [Resolver] implements [remote.Provider], so a [remote.Snapshot]
// resolves its callback tables through it.
//
// Reference: RtlInstallFunctionTableCallback (Microsoft Learn, winnt.h)
// for OutOfProcessCallbackDll and OUT_OF_PROCESS_FUNCTION_TABLE_CALLBACK;
// the registry key HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\
// KnownFunctionTableDlls for the trust list. The C declarations are in
// libfntable/include/fntable.h, "Out-of-process function table
// callbacks".
//
// # The ABI
//
// A provider is a shared library exporting
//
//	DWORD OutOfProcessFunctionTableCallback(intptr_t Process, PVOID TableAddress,
//	                                        PDWORD Entries, PRUNTIME_FUNCTION *Functions);
//
// Process is the target's pid; TableAddress is the address, in the
// target, of the table's FNTABLE_DYNAMIC_FUNCTION_TABLE record
// ([remote.Table.Record]). The provider reads the record and the JIT
// metadata it leads to from the target itself (process_vm_readv(2)),
// stores the entry count in *Entries and a malloc(3)ed array of
// RUNTIME_FUNCTIONs in *Functions, and returns STATUS_SUCCESS (0), or a
// failure NTSTATUS (≥ 0x80000000). The caller frees the array with
// free(3).
//
// Libraries are loaded with github.com/ebitengine/purego (dlopen, dlsym
// and C calls without cgo), so a program built with CGO_ENABLED=0 loads
// them too; such a program is then linked dynamically against the C
// library. A library is loaded once per process (RTLD_NOW|RTLD_LOCAL) and
// never unloaded; calls into one library are serialized.
//
// # Trust
//
// The target names any path; only the trust list decides what is loaded,
// as only the libraries under the KnownFunctionTableDlls registry key are
// on Windows. The list is [DefaultListFile] (one absolute path per line,
// '#' comment lines and blank lines ignored; other lines that are not
// absolute paths are ignored and reported by [Trust.Warnings]) plus the
// paths given on the command line ([TrustOptions.Extra], fntable's
// --trust-provider; a relative one is an error). [Trust.Check] gives the
// rules, briefly: the real path of the named library must be exactly a
// listed path, and a listed path must be its own real path, so a symlink
// is followed only to a listed file, never from a listed path; the
// library is a regular file; neither it, nor any directory above it, nor
// the list file, is writable by anyone but root and the invoking user
// (group- or world-writable, or owned by another user). That refuses
// everything under /tmp. The invoking user is os.Getuid().
//
// Nothing is loaded before the check passes. The library is loaded from
// its real path, never through the named symlinks. Just before dlopen the
// loader opens that path without following a symlink and checks, with
// fstat, that it is the file the check examined (device and inode) and
// still safe; after dlopen it checks that the path still names that
// file. What remains is the window between that fstat and dlopen's own
// open: a file swapped in there and back again before the last check
// goes unnoticed, but only someone who can write the library or a
// directory above it can do that, and the rules leave that to root and
// the invoking user. The libraries a provider depends on (DT_NEEDED) are
// found by the dynamic linker as usual and are not checked. A path is
// resolved in the caller's mount namespace, not the target's.
//
// # Every answer is hostile
//
// A provider's answer is untrusted input. It is refused, with an error
// for that table and no entries, when the status is a failure
// ([ErrStatus], a *[StatusError]), or ([ErrBadResult]) when the array is
// NULL with a nonzero count, the count exceeds [MaxEntries], an entry is
// empty or reversed, the entries are unsorted or overlap, an entry lies
// outside the table's [MinimumAddress, MaximumAddress), or an entry's
// unwind data (an RVA from BaseAddress, bit 0 masked) does not start in
// readable memory of the target (/proc/PID/maps, through
// internal/procmaps). Success with a count of 0 is a valid empty answer.
// A non-NULL array is freed whether it is accepted or not. What cannot
// be checked in-process is the memory itself: an array shorter than its
// count, or a pointer that is not malloc's, faults or corrupts the
// caller; isolation contains that too.
//
// # Isolation
//
// In-process, a provider that crashes, exits or hangs takes the caller
// with it, and one that writes through a wild pointer corrupts it. With
// [Resolver.Isolate] (fntable's --isolate-providers) each call runs in a
// helper process: the executable is run again ([Resolver.Executable],
// by default os.Executable()) with [HelperEnv] set to the request (the
// checked real path, the pid, the table address and the trust options).
// Its main must start with
//
//	if provider.IsHelper() {
//		os.Exit(provider.HelperMain())
//	}
//
// The helper checks the trust list again, loads the library, calls the
// export once, writes the answer to its stdout (after pointing fd 1 at
// stderr, so the library's own output cannot corrupt it) and exits. The
// parent kills the helper's whole process group when it does not answer
// within [Resolver.Timeout] (default 2 s) and reports a crash ("provider
// crashed: signal SIGSEGV", [ErrCrashed]), an exit ("provider exited with
// status 3 before answering") or the timeout ([ErrTimeout]). It checks the
// helper's answer exactly as an in-process one: the helper is as
// untrusted as the library it ran. Isolation costs a process start per
// call (see the benchmarks) and needs the helper to be able to read the
// target (ptrace access mode, as for the caller).
//
// # Robustness
//
// A provider's answer, a helper's answer and the trust list are parsed
// without panicking whatever they hold; the list and the helper's answer
// are bounded ([MaxListSize], MaxEntries). A provider running in-process
// can still crash the process: isolation is the defence against that.
package provider
