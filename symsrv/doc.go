// Package symsrv finds symbol files and downloads them from symbol
// servers: ELF executables and debug files by build ID from debuginfod
// servers, PE images, PDBs and ELF debug files by their index from
// Microsoft symbol stores, over HTTP or in directories. It keeps what it downloads in a
// cache that a failed, truncated or canceled download never corrupts.
//
// [ParsePath] reads a dbghelp-style search path (_NT_SYMBOL_PATH,
// SymSetSearchPath) with a debuginfod extension; [FromEnv] configures a
// [Client] from the environment variables of dbghelp and elfutils. The
// [Client] fetches files with [Client.FetchDebuginfo], [Client.FetchImage]
// and [Client.FetchPDB], reporting progress and honouring cancellation as
// elfutils' debuginfod_set_progressfn does. [ReadPDBInfo] reads a PDB's
// identity; the fetch methods use it to check the PDBs they find.
//
// References:
//   - elfutils, debuginfod(8), debuginfod_find_debuginfo(3) and
//     debuginfod-client-config(7): the /buildid/BUILDID/debuginfo and
//     /buildid/BUILDID/executable requests, DEBUGINFOD_URLS,
//     DEBUGINFOD_CACHE_PATH, DEBUGINFOD_TIMEOUT, DEBUGINFOD_RETRY_LIMIT,
//     DEBUGINFOD_MAXTIME, DEBUGINFOD_MAXSIZE, the cache layout and
//     cache_miss_s.
//   - Microsoft, "Symbol path for Windows debuggers" and "SymSrv"
//     (https://learn.microsoft.com/windows-hardware/drivers/debugger/symbol-path,
//     .../advanced-symsrv-use): the srv*, symsrv* and cache* elements,
//     downstream and upstream stores, and the store layout
//     NAME/INDEX/NAME with INDEX = TimeDateStamp%08X SizeOfImage%x for
//     images and GUID%32X Age%X for PDBs.
//   - dotnet/symstore, "SSQP Key Conventions": the key of an ELF debug
//     file in a symbol store, _.debug/elf-buildid-sym-BUILDID/_.debug.
//   - LLVM, "The MSF File Format", "The PDB Info Stream" and "The DBI
//     Stream" (llvm/docs/PDB): the superblock, block map, stream
//     directory, and the headers of streams 1 and 3.
//
// # Robustness
//
// Everything a server sends and every file in a directory or cache is
// untrusted. Nothing reaches the caller or the final cache path before it
// is identified: ELF files through debug/elf and a bounds-checked note
// scan, PE images through debug/pe, PDBs through [ReadPDBInfo]. File names
// taken from modules and CodeView records are reduced to their last
// element and rejected when they could leave the cache directory.
//
// [ReadPDBInfo] never panics on malformed input: it checks the block size,
// the block count against the file size, every block index against the
// block count, the directory size against what one block map can hold, and
// every stream read against the stream's size, and it reads only the few
// blocks it needs, so a hostile size cannot make it allocate much. A file
// without the MSF 7.00 magic yields [ErrNotPDB]; a malformed one a
// *[FormatError] wrapping [ErrMalformed]. The fuzz test FuzzPDBInfo
// enforces this.
//
// # Limitations
//
// Symbol stores: compressed files (NAME.pd_, NAME.dl_, CAB archives) and
// file.ptr redirections are not read: a directory store must hold, and an
// HTTP server must serve, the plain file under NAME/INDEX/NAME. File names
// are sent and looked up as given: a store on a case-sensitive file system must
// use the case the image records. Debuginfod: only debuginfo and
// executable files are fetched (no /source or /section requests), and
// the elfutils cache's control files (cache_clean_interval_s,
// max_unused_age_s, cache_miss_s) are neither read nor written: the
// negative cache is in memory, and cleaning the cache is left to elfutils
// or the user.
//
// # Concurrency
//
// A [Client] is safe for concurrent use; requests for the same file made
// while a search for it runs share that search. Progress functions are
// called on the goroutine of the request they belong to.
package symsrv
