// Package remote reads the function tables another process published: the
// list a [functable.Registry] created with Options{Publish: true} keeps in
// shared memory. [Find] locates the lists of a process, [Read] copies one
// as a consistent [Snapshot], and the snapshot answers
// LookupFunctionEntry for the tables whose entries it holds.
//
// Callback tables (RF_CALLBACK) have no entries in the list: a snapshot
// reports them (identifier, range, provider library), and resolves them
// through a [Provider] given to [Snapshot.UseProvider], which calls the
// out-of-process provider library each names (package provider loads it,
// if the trust list allows). Without a Provider, LookupFunctionEntry
// answers nothing for their ranges.
//
// # Finding the list
//
// Each publishing registry owns one memfd named "fntable-function-tables"
// (functable.MemfdName), mapped shared at the start of a reserved range of
// address space, so /proc/PID/maps shows a line ending in
// "/memfd:fntable-function-tables (deleted)" at file offset 0. A process
// may have several. The mapping grows in place (the address of the header
// never changes) up to functable.MaxMappingSize bytes. No symbols are
// needed; another language reads it by the description below.
//
// # Layout (version 2)
//
// Little-endian. Every pointer is an address in the writer's address
// space and points into the mapping; subtract the mapping's address
// (HdrMappingAddress) to get an offset. The header is at offset 0:
//
//	off   size  field            meaning
//	0x00  8     Magic            "FNTBLLST" (functable.LayoutMagic)
//	0x08  4     Version          2 (functable.LayoutVersion; version 1 is read too)
//	0x0C  4     HeaderSize       bytes of the header: 0x80; readers accept ≥ 0x50
//	0x10  4     RecordSize       bytes of a record: 0x60; readers accept ≥ 0x60
//	0x14  4     Pid              the writer's pid, as it sees itself (its pid namespace)
//	0x18  8     Generation       seqlock counter: odd while the list changes
//	0x20  16    ListHead         LIST_ENTRY {Flink, Blink}: the records, in registration order
//	0x30  8     MappingAddress   address of this header in the writer
//	0x38  8     MappingSize      bytes mapped from MappingAddress
//	0x40  8     UsedSize         bytes from MappingAddress that may hold list data (≤ MappingSize)
//	0x48  4     TableCount       records in the list
//	0x4C  4     Flags            0
//	0x50  48    reserved         0
//
// ListHead is what RtlGetFunctionTableListHead returns on Windows: a
// circular doubly linked list. An empty list has Flink = Blink = the
// address of ListHead (MappingAddress+0x20). Each record starts with its
// LIST_ENTRY, so a Flink is the address of the next record. A record is
// the x64 DYNAMIC_FUNCTION_TABLE of Windows 7 (0x58 bytes), followed by
// fields of ours:
//
//	off   size  field                    meaning
//	0x00  16    ListEntry                {Flink, Blink}
//	0x10  8     FunctionTable            RUNTIME_FUNCTION array (RF_SORTED, RF_UNSORTED);
//	                                     the TableIdentifier (low 2 bits set) for RF_CALLBACK
//	0x18  8     TimeStamp                registration time: FILETIME, 100 ns units since 1601-01-01 UTC
//	0x20  8     MinimumAddress           first address of the range the table covers
//	0x28  8     MaximumAddress           end of that range (exclusive)
//	0x30  8     BaseAddress              the entries' RVAs are relative to it
//	0x38  8     Callback                 C callback of a table registered through a C API, else 0
//	0x40  8     Context                  its context argument, else 0
//	0x48  8     OutOfProcessCallbackDll  NUL-terminated UTF-16 path of the provider library, or 0
//	0x50  4     Type                     RF_SORTED 0, RF_UNSORTED 1, RF_CALLBACK 2
//	0x54  4     EntryCount               valid entries (0 for RF_CALLBACK)
//	0x58  4     MaximumEntryCount        the table's maximum: EntryCount for a static
//	                                     table, the maximum for a growable one
//	0x5C  4     Flags                    bit 0: growable (RtlAddGrowableFunctionTable)
//
// The array holds RUNTIME_FUNCTION entries of 12 bytes (BeginAddress,
// EndAddress, UnwindData: RVAs from BaseAddress), of which the first
// EntryCount are valid. A growable table's array has room for more than
// those, though not necessarily for its maximum: as the table grows, the
// writer replaces the array with a larger one and points the record to it
// (in version 1 the array had room for the maximum from the start, which
// a large maximum made a large part of what every reader copies); a static table's entries are sorted by
// BeginAddress even when it was registered unsorted (Type keeps what the
// caller gave). The path is at most 360 UTF-16 units
// (functable.MaxDllLength). Arrays and paths live in the mapping, but
// readers must follow the pointers, not assume where they are. The
// constants of package functable (functable.HdrGeneration,
// functable.RecEntryCount, ...) give these offsets.
//
// # Consistency
//
// The writer changes the list only between two increments of Generation,
// and reuses the memory of deleted tables at once. A reader reads
// Generation (and must retry later while it is odd), copies the bytes it
// needs (this package copies UsedSize bytes), reads Generation again, and
// keeps the copy only if the two values are equal: then no change
// overlapped the copy. A growable table's new entries are stored before
// its EntryCount, as on Windows, but only the generation check makes a
// copy safe to use. A process stopped in the middle of a change (a
// debugger, a crash) has an odd Generation until it runs again; [Read]
// then fails with [ErrInconsistent].
//
// # Robustness
//
// The list is memory of another process, which may be corrupted or
// hostile. [Read] never panics and never loops without bound: it checks
// the magic, version and sizes, that every pointer lies inside the
// mapping and is aligned, that the list is as long as TableCount (at most
// functable.MaxTables), that every Blink matches (so the list has no
// cycle), that records, arrays (their valid entries) and paths do not
// overlap, that EntryCount ≤ MaximumEntryCount, MinimumAddress ≤ MaximumAddress and path lengths ≤
// 360 units, and it reads at most functable.MaxMappingSize bytes. Entry
// values themselves are data: they are returned as found.
package remote
