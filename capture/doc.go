// Package capture writes a minidump of a running Linux process that keeps
// what its stacks need to be walked later, on any machine, through its JIT
// frames: the dynamic function tables it publishes (the
// FunctionTableStream, stream 13, with callback tables resolved through
// their providers at capture time, as MiniDumpWriteDump resolves them
// through OutOfProcessFunctionTableCallback), the UNWIND_INFO they point
// to, and the memory an unwinder reads.
//
// # What a dump holds
//
//   - SystemInfoStream: the kernel (uname), the CPU (/proc/cpuinfo), with
//     PlatformId MD_OS_LINUX as Breakpad writes it.
//   - ThreadListStream and ThreadNamesStream: every thread, its registers
//     (an x64 CONTEXT) and its name (comm).
//   - ModuleListStream: the files mapped in the process (from
//     /proc/PID/maps, as target.ModulesFromMaps groups them) and the vDSO,
//     each with its ELF build ID as a CodeView record (MD_CVINFOELF_SIGNATURE, Breakpad's
//     layout), read from the file, or from the mapped note when the file
//     cannot be opened.
//   - Memory, without Options.Full (a MemoryListStream):
//     each thread's stack from RSP−128 (the red zone) to the end of its
//     mapping, at most Options.StackLimit bytes (256 KiB by default), which
//     holds every frame of any real stack; when the walk taken at capture
//     time reached the outermost frame, only up to 1 KiB above it (a Go
//     thread blocked in a system call has its RSP in a goroutine stack in
//     the heap, whose mapping goes on for megabytes);
//     every byte the stack walker read while it walked each thread at
//     capture time (stack slots, a Go goroutine's stack and g, code for
//     epilog detection), rounded out to whole pages;
//     the code around the PC of every frame of those walks (±256 bytes:
//     the unwinder reads code to detect epilogs);
//     the UNWIND_INFO every entry of every dynamic table points to, with
//     the chained entries and 64 bytes of handler data after a handler
//     RVA (only the handler knows their length);
//     the published table lists themselves (their memfd mappings, up to
//     the part in use), so that the names of providers and the lists'
//     generations can be read back;
//     the ELF header and program headers of every module, and the whole
//     vDSO (it has no file to read the call-frame information from).
//   - Memory with Options.Full (a Memory64ListStream): every readable
//     mapping instead.
//   - Breakpad's Linux streams: /proc/PID/maps, status, auxv, cmdline and
//     environ, /proc/cpuinfo and /etc/lsb-release (when present). The
//     status is read just before the process is stopped, so that it says
//     how the process was running; the others but the maps on a goroutine
//     of their own while it is being stopped.
//   - FunctionTableStream: every table of every published list.
//   - minidump.FntablePerfMapStream: the process's perf map
//     (/tmp/perf-PID.map in its mount namespace, at most 64 MiB), read
//     while it is stopped, which names its JIT code for offline
//     symbolization.
//
// The call-frame information of ELF modules is not copied: a reader takes
// it from the module files (target/dump finds them by path or by build ID
// along a symbol path).
//
// # When the process is stopped
//
// The process is stopped (live.Stop, at a moment when none of its
// published lists is being changed) while the dump's contents are
// gathered, and always resumed: after errors, and on SIGINT or SIGTERM.
// Without Options.Full the memory kept is read while it is stopped into
// the page cache the stack walks filled (live.Stopped.Prefetch: a page
// the walks read is not read again), the process is resumed with that
// cache kept (live.Stopped.Resume), and only then is the file written,
// out of the cache: the process is stopped for the few milliseconds the
// reads take, not for the write. With Options.Full the memory is read from the process while
// the file is written, so the process stays stopped until the file is
// complete (copying every mapping first would need as much memory as the
// process has).
//
// The file is written atomically (minidump.CreateFile and Write: a
// temporary file, unnamed on Linux until it is complete, fsync, rename): a
// process that dies during the capture, a full disk or any other failure
// gives an error and leaves no file under the name given, and a capturing
// process that is killed leaves no temporary file. The temporary file is
// created first, so that a destination that cannot be written (a missing
// or read-only directory; a name that is a directory, a device, a named
// pipe or a symbolic link, which a dump never replaces) fails before the
// process is stopped.
package capture
