// Package symhandler is a symbol handler in the model of dbghelp's
// (SymInitialize, SymLoadModuleEx, SymFromAddr, SymGetLineFromAddr64,
// SymFromName, SymEnumSymbols, SymAddSymbol, SymRegisterCallback64), for
// Linux and Windows binaries, safe for concurrent use.
//
// A [Handler] serves one target (a live process, a dump, or none for plain
// files): its modules, their symbols, source lines and inline frames.
// Modules come from the target's module list ([Handler.RefreshModules]),
// from files ([Handler.LoadModule]), or are virtual — JIT code whose
// symbols the JIT adds with [Handler.AddSymbol] or writes to a perf map
// ([Handler.ImportPerfMap]).
//
// # Where symbols come from
//
//   - ELF: .symtab or .dynsym; DWARF for lines and inline frames; Go's
//     pclntab when a Go binary is stripped. A stripped image's symbols are
//     looked for in a separate debug file: by build ID under the debug
//     directories and the search path's directories
//     (.build-id/xx/rest.debug), by .gnu_debuglink name next to the image,
//     in its .debug directory and under the debug directories (the file's
//     CRC must match), then from debuginfod servers by build ID.
//   - PE: exports, COFF symbols and the exception directory; the CodeView
//     record (PDB name, GUID, age) is recorded. An image missing on disk is
//     fetched from Microsoft-style symbol stores by timestamp and size.
//   - Virtual modules: AddSymbol, perf maps.
//
// # Function names in frames
//
// [Handler.Symbolize] names the frames of an ELF module as llvm-symbolizer
// 14 does, so that its answers can be checked against that tool:
//
//   - inlined frames get DWARF's name for the subprogram (its linkage name
//     demangled, or DW_AT_name);
//   - the outermost frame, the function that contains the address, gets
//     the name the module image's own symbol table gives the address
//     (.symtab, or .dynsym when the image is stripped; never the separate
//     debug file's), chosen as LLVM's SymbolizableObjectFile does (see
//     elfsym.FunctionMap): so _IO_link_in, not DWARF's linkage name
//     __GI__IO_link_in; pthread_sigmask, not the debug file's
//     pthread_sigmask@GLIBC_2.2.5; a weak alias such as msgsnd; a C++
//     function's full demangled signature where DWARF has only a short
//     name;
//   - where that table names nothing (libc's static functions and
//     compiler clones such as fts_stat.isra.0, which only the debug file
//     lists), DWARF's name: fts_stat, __vsyslog_internal;
//   - where there is no DWARF either, the symbol table the handler loaded
//     (the debug file's, when there is one): llvm-symbolizer says "??".
//
// The rule follows llvm-symbolizer rather than naming every frame after
// DWARF, because agreement with llvm-symbolizer is how the handler's
// frames are measured (symhandler's TestAgreement). Names are demangled by
// GNU's rules (as c++filt and gdb print them), which LLVM 14 spells
// differently in places ("{lambda(int)#1}" for "'lambda'(int)",
// "[clone .cold]" for "(.cold)"). [Location.Symbol], the SymFromAddr
// answer, is the symbol of the loaded table that contains the address,
// and carries no ELF version unless the module holds two versions of the
// name. PE modules name frames from their debug information.
//
// Addresses are where the target has them: a module loaded at Base has its
// file's link-time addresses moved by Base minus the file's link-time base.
//
// # Callbacks
//
// [Handler.RegisterCallback] installs a [Callback] with dbghelp's action
// codes and payloads ([CBA_DEFERRED_SYMBOL_LOAD_START] ... [CBA_EVENT],
// [CBA_DEBUG_INFO]). A module load reports, in this order:
//
//	CBA_DEFERRED_SYMBOL_LOAD_START
//	CBA_DEFERRED_SYMBOL_LOAD_CANCEL      true cancels; the module stays deferred
//	CBA_EVENT progress + CBA_DEFERRED_SYMBOL_LOAD_CANCEL, repeated while a
//	                                     file downloads or debug information is indexed
//	CBA_EVENT                            a separate debug file found, problems
//	CBA_DEFERRED_SYMBOL_LOAD_COMPLETE    or _PARTIAL (the image is unreadable) or
//	                                     _FAILURE (no symbols): set FileName and
//	                                     return true to retry with that file,
//	                                     which starts again at _START (Reparse set)
//
// Unloading sends CBA_SYMBOLS_UNLOADED; SetOptions sends CBA_SET_OPTIONS;
// a lookup by name that matches several symbols sends
// CBA_DUPLICATE_SYMBOL; memory the target cannot supply (or all memory,
// without a target) is asked with CBA_READ_MEMORY; an address in no module
// sends CBA_MAP_JIT_SYMBOL, so a JIT can add its module on demand. A
// CBA_EVENT the callback does not handle is sent again as CBA_DEBUG_INFO
// when SYMOPT_DEBUG is set; CBA_DEBUG_INFO is sent only then.
//
// Callbacks of a handler are delivered one at a time, on the goroutine
// whose call caused them, with no lock of the handler held: a callback
// may call the handler again through the *Handler it receives, which
// carries the delivery in progress (events of that call are delivered
// nested, on the same goroutine), but must not wait for another goroutine
// that uses the handler. A callback that panics ends its delivery and the
// load it belonged to (the module stays deferred); the panic reaches the
// caller, and later deliveries go on.
//
// For Go code, [Config.Progress] receives the same events as typed values
// ([ModuleLoadStarted], [SymbolsLoaded], [ModuleLoadFailed],
// [SymbolsUnloaded], [Progress], [Message], [OptionsChanged]); returning
// false cancels the load in progress. [Handler.Symbolize] and the other
// context-taking methods stop waiting, and cancel downloads, when their
// context is done.
//
// # Concurrency
//
// A Handler is safe for concurrent use. Lookups take no lock in the common
// case; a deferred module is loaded once, by the first goroutine that needs
// it, while the others wait. A callback that looks up a module being
// loaded, through the handle it received, gets no symbols from it instead
// of waiting: the load is its own call's, or another goroutine's that may
// be waiting for the callback to return to deliver its own events.
//
// References: dbghelp's SymRegisterCallbackProc64 and
// IMAGEHLP_DEFERRED_SYMBOL_LOAD64 documentation; GDB's "Debugging
// Information in Separate Files"; the debuginfod client's environment
// (debuginfod_find_debuginfo(3)).
package symhandler
