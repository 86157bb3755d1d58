/*
 * fntable.h: the Windows x64 dynamic function table API of winnt.h
 * (RtlAddFunctionTable, RtlInstallFunctionTableCallback, the growable
 * tables, RtlLookupFunctionEntry and RtlVirtualUnwind) for C and C++ on
 * Linux x86-64, implemented by libfntable (github.com/fntable/fntable).
 *
 * A JIT that registers unwind information for its code on Windows can use
 * the same calls, with the same types and semantics, on Linux: include this
 * header instead of <windows.h> and link with libfntable.so or libfntable.a
 * (see README.md). On Windows this header includes <windows.h> and defines
 * nothing else: there the real functions are in ntdll.
 *
 * References: Microsoft, "x64 exception handling"; winnt.h (AMD64 part):
 * CONTEXT, RUNTIME_FUNCTION, UNWIND_HISTORY_TABLE,
 * KNONVOLATILE_CONTEXT_POINTERS, UNW_FLAG_*; the reference pages of each
 * function below.
 *
 * Types. The integer types have their Windows sizes: DWORD and ULONG are 32
 * bits (not "unsigned long", which is 64 bits on Linux), and WCHAR is
 * uint16_t, a UTF-16 code unit (wchar_t is 32 bits on Linux). Write UTF-16
 * string literals as u"..." (C11 <uchar.h> char16_t, which is uint16_t
 * with glibc; C++ needs a cast from const char16_t *). If your code
 * already defines the basic Windows integer types identically, repeating the
 * typedefs is harmless; if it defines them differently, define
 * FNTABLE_NO_BASIC_TYPES before including this header and provide BYTE,
 * BOOLEAN, WORD, DWORD, ULONG, LONG, DWORD64, ULONG64, LONGLONG, ULONGLONG,
 * ULONG_PTR, WCHAR and PVOID with the Windows x64 sizes yourself.
 *
 * Errors. The functions keep their Windows signatures. Those that return
 * BOOLEAN, void or a pointer have no room for a reason: after every call,
 * FntableLastError() returns its NTSTATUS on the calling thread
 * (STATUS_SUCCESS, or one of the STATUS_* codes below). With the
 * environment variable FNTABLE_DEBUG set to a non-empty value, failures are
 * also described on standard error; by default the library writes nothing.
 *
 * Publishing. As on Windows, where debuggers read a process's dynamic
 * function tables, the library publishes its table list for tools in other
 * processes (package functable, "published table list") where it can; set
 * FNTABLE_PUBLISH=0 in the environment to keep the tables private. In-process
 * use is the same either way.
 *
 * Thread safety. Every function may be called from any thread, at any time,
 * concurrently. Lookups and unwinds take no lock and never wait for a
 * registration. Callbacks run with no lock held: a callback may register,
 * look up and delete tables, including its own.
 */
#ifndef FNTABLE_H
#define FNTABLE_H

#if defined(_WIN32)

#include <windows.h>

#else /* !_WIN32 */

#if !defined(__x86_64__)
#error "fntable.h: libfntable implements the x64 unwinding model and runs on x86-64 only"
#endif
#if defined(_WINNT_)
#error "fntable.h: a Windows compatibility <winnt.h> is already included; it declares these functions itself"
#endif

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Basic types (winnt.h, Windows x64 sizes) ---- */

#ifndef FNTABLE_NO_BASIC_TYPES
typedef uint8_t BYTE;
typedef uint8_t BOOLEAN;
typedef uint16_t WORD;
typedef uint32_t DWORD;
typedef uint32_t ULONG;
typedef int32_t LONG;
typedef uint64_t DWORD64;
typedef uint64_t ULONG64;
typedef int64_t LONGLONG;
typedef uint64_t ULONGLONG;
typedef uintptr_t ULONG_PTR;
typedef uint16_t WCHAR; /* UTF-16 code unit: not wchar_t, which is 32 bits on Linux */
typedef void *PVOID;
#endif
typedef DWORD *PDWORD;
typedef DWORD64 *PDWORD64;
typedef ULONG64 *PULONG64;
typedef const WCHAR *PCWSTR;

#ifndef TRUE
#define TRUE 1
#endif
#ifndef FALSE
#define FALSE 0
#endif

/* ---- Status codes (ntstatus.h) reported by FntableLastError ---- */

#ifndef STATUS_SUCCESS
#define STATUS_SUCCESS ((DWORD)0x00000000)
#endif
#ifndef STATUS_ACCESS_VIOLATION /* RtlVirtualUnwind: memory it needed is not readable */
#define STATUS_ACCESS_VIOLATION ((DWORD)0xC0000005)
#endif
#ifndef STATUS_INVALID_PARAMETER /* bad arguments, RtlGrowFunctionTable misuse */
#define STATUS_INVALID_PARAMETER ((DWORD)0xC000000D)
#endif
#ifndef STATUS_NO_MEMORY
#define STATUS_NO_MEMORY ((DWORD)0xC0000017)
#endif
#ifndef STATUS_CONFLICTING_ADDRESSES /* the range overlaps a registered table */
#define STATUS_CONFLICTING_ADDRESSES ((DWORD)0xC0000018)
#endif
#ifndef STATUS_BAD_FUNCTION_TABLE /* RtlVirtualUnwind: malformed unwind information */
#define STATUS_BAD_FUNCTION_TABLE ((DWORD)0xC00000FF)
#endif
#ifndef STATUS_NOT_FOUND /* delete or grow of a table that is not registered */
#define STATUS_NOT_FOUND ((DWORD)0xC0000225)
#endif

/* ---- Function table entries (winnt.h) ---- */

/* RUNTIME_FUNCTION (IMAGE_RUNTIME_FUNCTION_ENTRY): a code range and its
   UNWIND_INFO, as RVAs relative to the table's base address. */
typedef struct _RUNTIME_FUNCTION {
    DWORD BeginAddress; /* RVA of the first byte of the function */
    DWORD EndAddress;   /* RVA one past its last byte */
    DWORD UnwindData;   /* RVA of its UNWIND_INFO; bit 0 set: of another RUNTIME_FUNCTION */
} RUNTIME_FUNCTION, *PRUNTIME_FUNCTION;

#define RUNTIME_FUNCTION_INDIRECT 0x1

/* UNWIND_INFO.Flags */
#define UNW_FLAG_NHANDLER 0x0
#define UNW_FLAG_EHANDLER 0x1
#define UNW_FLAG_UHANDLER 0x2
#define UNW_FLAG_CHAININFO 0x4

/* The callback of RtlInstallFunctionTableCallback: returns the entry for
   ControlPc, or NULL. */
typedef PRUNTIME_FUNCTION (*PGET_RUNTIME_FUNCTION_CALLBACK)(DWORD64 ControlPc, PVOID Context);

/* ---- CONTEXT (AMD64), 1232 bytes, 16-byte aligned ---- */

#define FNTABLE_ALIGN16 __attribute__((aligned(16)))
/* Nameless unions and structs are C11 but not C++; winnt.h marks them the same way. */
#define FNTABLE_NAMELESS __extension__

typedef struct FNTABLE_ALIGN16 _M128A {
    ULONGLONG Low;
    LONGLONG High;
} M128A, *PM128A;

typedef struct FNTABLE_ALIGN16 _XMM_SAVE_AREA32 {
    WORD ControlWord;
    WORD StatusWord;
    BYTE TagWord;
    BYTE Reserved1;
    WORD ErrorOpcode;
    DWORD ErrorOffset;
    WORD ErrorSelector;
    WORD Reserved2;
    DWORD DataOffset;
    WORD DataSelector;
    WORD Reserved3;
    DWORD MxCsr;
    DWORD MxCsr_Mask;
    M128A FloatRegisters[8];
    M128A XmmRegisters[16];
    BYTE Reserved4[96];
} XMM_SAVE_AREA32, *PXMM_SAVE_AREA32;

#define CONTEXT_AMD64 0x00100000
#define CONTEXT_CONTROL (CONTEXT_AMD64 | 0x1)
#define CONTEXT_INTEGER (CONTEXT_AMD64 | 0x2)
#define CONTEXT_SEGMENTS (CONTEXT_AMD64 | 0x4)
#define CONTEXT_FLOATING_POINT (CONTEXT_AMD64 | 0x8)
#define CONTEXT_DEBUG_REGISTERS (CONTEXT_AMD64 | 0x10)
#define CONTEXT_FULL (CONTEXT_CONTROL | CONTEXT_INTEGER | CONTEXT_FLOATING_POINT)
#define CONTEXT_ALL (CONTEXT_FULL | CONTEXT_SEGMENTS | CONTEXT_DEBUG_REGISTERS)

typedef struct FNTABLE_ALIGN16 _CONTEXT {
    DWORD64 P1Home, P2Home, P3Home, P4Home, P5Home, P6Home;
    DWORD ContextFlags;
    DWORD MxCsr;
    WORD SegCs, SegDs, SegEs, SegFs, SegGs, SegSs;
    DWORD EFlags;
    DWORD64 Dr0, Dr1, Dr2, Dr3, Dr6, Dr7;
    DWORD64 Rax, Rcx, Rdx, Rbx, Rsp, Rbp, Rsi, Rdi;
    DWORD64 R8, R9, R10, R11, R12, R13, R14, R15;
    DWORD64 Rip;
    FNTABLE_NAMELESS union {
        XMM_SAVE_AREA32 FltSave;
        FNTABLE_NAMELESS struct {
            M128A Header[2];
            M128A Legacy[8];
            M128A Xmm0, Xmm1, Xmm2, Xmm3, Xmm4, Xmm5, Xmm6, Xmm7;
            M128A Xmm8, Xmm9, Xmm10, Xmm11, Xmm12, Xmm13, Xmm14, Xmm15;
        };
    };
    M128A VectorRegister[26];
    DWORD64 VectorControl;
    DWORD64 DebugControl;
    DWORD64 LastBranchToRip;
    DWORD64 LastBranchFromRip;
    DWORD64 LastExceptionToRip;
    DWORD64 LastExceptionFromRip;
} CONTEXT, *PCONTEXT;

/* ---- KNONVOLATILE_CONTEXT_POINTERS (AMD64), 256 bytes ---- */

/* Where RtlVirtualUnwind read each restored register: addresses in this
   process (on the stack being unwound). Entries of registers that were not
   restored from memory are left as they were: clear the structure first. */
typedef struct _KNONVOLATILE_CONTEXT_POINTERS {
    FNTABLE_NAMELESS union {
        PM128A FloatingContext[16];
        FNTABLE_NAMELESS struct {
            PM128A Xmm0, Xmm1, Xmm2, Xmm3, Xmm4, Xmm5, Xmm6, Xmm7;
            PM128A Xmm8, Xmm9, Xmm10, Xmm11, Xmm12, Xmm13, Xmm14, Xmm15;
        };
    };
    FNTABLE_NAMELESS union {
        PULONG64 IntegerContext[16];
        FNTABLE_NAMELESS struct {
            PULONG64 Rax, Rcx, Rdx, Rbx, Rsp, Rbp, Rsi, Rdi;
            PULONG64 R8, R9, R10, R11, R12, R13, R14, R15;
        };
    };
} KNONVOLATILE_CONTEXT_POINTERS, *PKNONVOLATILE_CONTEXT_POINTERS;

/* ---- UNWIND_HISTORY_TABLE (AMD64), 216 bytes ---- */

/* A lookup cache on Windows. libfntable accepts and ignores it (it may be
   NULL); it is defined in full so that code declaring one compiles. */
#define UNWIND_HISTORY_TABLE_SIZE 12
#define UNWIND_HISTORY_TABLE_NONE 0
#define UNWIND_HISTORY_TABLE_GLOBAL 1
#define UNWIND_HISTORY_TABLE_LOCAL 2

typedef struct _UNWIND_HISTORY_TABLE_ENTRY {
    DWORD64 ImageBase;
    PRUNTIME_FUNCTION FunctionEntry;
} UNWIND_HISTORY_TABLE_ENTRY, *PUNWIND_HISTORY_TABLE_ENTRY;

typedef struct _UNWIND_HISTORY_TABLE {
    DWORD Count;
    BYTE LocalHint;
    BYTE GlobalHint;
    BYTE Search;
    BYTE Once;
    DWORD64 LowAddress;
    DWORD64 HighAddress;
    UNWIND_HISTORY_TABLE_ENTRY Entry[UNWIND_HISTORY_TABLE_SIZE];
} UNWIND_HISTORY_TABLE, *PUNWIND_HISTORY_TABLE;

/* ---- Language-specific handlers ---- */

typedef enum _EXCEPTION_DISPOSITION {
    ExceptionContinueExecution = 0,
    ExceptionContinueSearch = 1,
    ExceptionNestedException = 2,
    ExceptionCollidedUnwind = 3
} EXCEPTION_DISPOSITION;

struct _EXCEPTION_RECORD;

/* The handler named by UNWIND_INFO. libfntable never calls it: RtlVirtualUnwind
   only returns its address. */
typedef EXCEPTION_DISPOSITION EXCEPTION_ROUTINE(struct _EXCEPTION_RECORD *ExceptionRecord, PVOID EstablisherFrame,
                                                struct _CONTEXT *ContextRecord, PVOID DispatcherContext);
typedef EXCEPTION_ROUTINE *PEXCEPTION_ROUTINE;

/* ---- Layout checks (winnt.h, x64) ---- */

#ifdef __cplusplus
#define FNTABLE_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#define FNTABLE_ALIGNOF(t) alignof(t)
#else
#define FNTABLE_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#define FNTABLE_ALIGNOF(t) _Alignof(t)
#endif

FNTABLE_STATIC_ASSERT(sizeof(RUNTIME_FUNCTION) == 12, "RUNTIME_FUNCTION is 12 bytes");
FNTABLE_STATIC_ASSERT(sizeof(M128A) == 16, "M128A is 16 bytes");
FNTABLE_STATIC_ASSERT(sizeof(XMM_SAVE_AREA32) == 512, "XMM_SAVE_AREA32 is 512 bytes");
FNTABLE_STATIC_ASSERT(sizeof(CONTEXT) == 1232, "CONTEXT is 1232 bytes");
FNTABLE_STATIC_ASSERT(FNTABLE_ALIGNOF(CONTEXT) == 16, "CONTEXT is 16-byte aligned");
FNTABLE_STATIC_ASSERT(offsetof(CONTEXT, ContextFlags) == 0x30, "CONTEXT.ContextFlags at 0x30");
FNTABLE_STATIC_ASSERT(offsetof(CONTEXT, EFlags) == 0x44, "CONTEXT.EFlags at 0x44");
FNTABLE_STATIC_ASSERT(offsetof(CONTEXT, Rax) == 0x78, "CONTEXT.Rax at 0x78");
FNTABLE_STATIC_ASSERT(offsetof(CONTEXT, Rsp) == 0x98, "CONTEXT.Rsp at 0x98");
FNTABLE_STATIC_ASSERT(offsetof(CONTEXT, Rip) == 0xF8, "CONTEXT.Rip at 0xF8");
FNTABLE_STATIC_ASSERT(offsetof(CONTEXT, FltSave) == 0x100, "CONTEXT.FltSave at 0x100");
FNTABLE_STATIC_ASSERT(offsetof(CONTEXT, Xmm0) == 0x1A0, "CONTEXT.Xmm0 at 0x1A0");
FNTABLE_STATIC_ASSERT(offsetof(CONTEXT, VectorRegister) == 0x300, "CONTEXT.VectorRegister at 0x300");
FNTABLE_STATIC_ASSERT(offsetof(CONTEXT, VectorControl) == 0x4A0, "CONTEXT.VectorControl at 0x4A0");
FNTABLE_STATIC_ASSERT(sizeof(KNONVOLATILE_CONTEXT_POINTERS) == 256, "KNONVOLATILE_CONTEXT_POINTERS is 256 bytes");
FNTABLE_STATIC_ASSERT(offsetof(KNONVOLATILE_CONTEXT_POINTERS, IntegerContext) == 0x80,
                      "KNONVOLATILE_CONTEXT_POINTERS.IntegerContext at 0x80");
FNTABLE_STATIC_ASSERT(sizeof(UNWIND_HISTORY_TABLE) == 216, "UNWIND_HISTORY_TABLE is 216 bytes");

/* ---- Registering tables ---- */

/*
 * RtlAddFunctionTable registers EntryCount entries whose RVAs are relative
 * to BaseAddress. The table covers [BaseAddress + lowest BeginAddress,
 * BaseAddress + highest EndAddress). Returns TRUE on success.
 *
 * Ownership: the entries are copied (into memory the library allocates and
 * frees on delete), so FunctionTable may be freed or reused once the call
 * returns. Windows keeps using the caller's array instead; code written for
 * Windows keeps it alive anyway, which is harmless here. Unsorted entries are
 * accepted. FunctionTable is the table's identity for RtlDeleteFunctionTable.
 *
 * Fails (FALSE, FntableLastError() = STATUS_CONFLICTING_ADDRESSES) if the
 * range overlaps a table already registered; Windows accepts overlapping
 * tables and lets the first one registered answer.
 */
BOOLEAN RtlAddFunctionTable(PRUNTIME_FUNCTION FunctionTable, DWORD EntryCount, DWORD64 BaseAddress);

/*
 * RtlDeleteFunctionTable removes a table, identified as on Windows: by the
 * FunctionTable pointer given to RtlAddFunctionTable, or by the
 * TableIdentifier given to RtlInstallFunctionTableCallback. A growable table
 * may be removed here too, by its FunctionTable pointer or by the handle
 * RtlAddGrowableFunctionTable returned. If several registered tables have the
 * identity, the one registered first goes. Returns FALSE
 * (STATUS_NOT_FOUND) if none has it.
 *
 * The library frees its copy of the entries: pointers that
 * RtlLookupFunctionEntry returned for the table become invalid. As on
 * Windows, do not delete a table while another thread may be looking up or
 * unwinding through it.
 */
BOOLEAN RtlDeleteFunctionTable(PRUNTIME_FUNCTION FunctionTable);

/*
 * RtlInstallFunctionTableCallback registers the range [BaseAddress,
 * BaseAddress + Length), whose entries come from Callback: a lookup of a PC in
 * the range calls Callback(PC, Context) on the looking-up thread, lazily (never
 * at registration), once per lookup, with no lock held. The callback returns a
 * pointer to an entry with RVAs relative to BaseAddress, or NULL; the pointer
 * is handed out as it is by RtlLookupFunctionEntry, so the entry must stay
 * valid while anyone may use it (in practice, until the table is deleted).
 *
 * TableIdentifier must have its two low bits set (BaseAddress | 3, say); it is
 * the table's identity for RtlDeleteFunctionTable. OutOfProcessCallbackDll
 * (UTF-16, NUL-terminated, or NULL) is the path of the provider library a
 * debugger in another process loads to get the entries; it is copied, and
 * may hold at most 360 UTF-16 units. Returns FALSE (STATUS_INVALID_PARAMETER)
 * on a bad identifier, a NULL callback, a range that wraps or a longer path,
 * and (STATUS_CONFLICTING_ADDRESSES) on an overlap.
 */
BOOLEAN RtlInstallFunctionTableCallback(DWORD64 TableIdentifier, DWORD64 BaseAddress, DWORD Length,
                                        PGET_RUNTIME_FUNCTION_CALLBACK Callback, PVOID Context,
                                        PCWSTR OutOfProcessCallbackDll);

/*
 * RtlAddGrowableFunctionTable registers a table for [RangeBase, RangeEnd) whose
 * entries are FunctionTable[0 .. EntryCount), with room for MaximumEntryCount;
 * RVAs are relative to RangeBase, entries must be sorted and inside the range.
 * It stores an opaque handle in *DynamicTable and returns an NTSTATUS:
 * STATUS_SUCCESS, STATUS_INVALID_PARAMETER (bad arguments, unsorted entries,
 * an empty range or one larger than 4 GiB), STATUS_CONFLICTING_ADDRESSES or
 * STATUS_NO_MEMORY.
 *
 * Ownership: as on Windows, the caller's array is used in place: it must stay
 * valid until the table is deleted, entries below the current count must not
 * change, and RtlLookupFunctionEntry returns pointers into it. The library also
 * keeps its own copy of the valid entries, which lookups search.
 */
DWORD RtlAddGrowableFunctionTable(PVOID *DynamicTable, PRUNTIME_FUNCTION FunctionTable, DWORD EntryCount,
                                  DWORD MaximumEntryCount, ULONG_PTR RangeBase, ULONG_PTR RangeEnd);

/*
 * RtlGrowFunctionTable makes FunctionTable[0 .. NewEntryCount) valid: fill in
 * the new entries first. It returns nothing, as on Windows, where a misuse is
 * silently ignored. Here a misuse is ignored as well (the table is left as it
 * was) but reported: FntableLastError() is STATUS_INVALID_PARAMETER after a
 * shrink, a count above the maximum, or new entries that are unsorted or
 * outside the range, and STATUS_NOT_FOUND for an unknown handle.
 */
void RtlGrowFunctionTable(PVOID DynamicTable, DWORD NewEntryCount);

/*
 * RtlDeleteGrowableFunctionTable removes a growable table and invalidates its
 * handle. An unknown handle is ignored (FntableLastError() = STATUS_NOT_FOUND).
 */
void RtlDeleteGrowableFunctionTable(PVOID DynamicTable);

/* ---- Looking up and unwinding ---- */

/*
 * RtlLookupFunctionEntry returns the entry for ControlPc from the registered
 * tables and stores the base its RVAs are relative to in *ImageBase, or
 * returns NULL and stores 0 when no table has an entry (not an error). Only
 * tables registered with this library are searched: it knows nothing of the
 * ELF images of the process. HistoryTable is ignored and may be NULL.
 *
 * The pointer returned is, for a table added by RtlAddFunctionTable, into the
 * library's copy of its entries; for a growable table, into the caller's
 * array; for a callback table, the callback's own result. An indirect entry
 * (UnwindData bit 0) of a static or growable table is followed to the entry it
 * names, in the JIT's memory, as Windows does. The pointer stays valid until
 * the table is deleted.
 */
PRUNTIME_FUNCTION RtlLookupFunctionEntry(DWORD64 ControlPc, PDWORD64 ImageBase, PUNWIND_HISTORY_TABLE HistoryTable);

/*
 * RtlVirtualUnwind unwinds one frame of x64 code as Windows does: given the
 * entry FunctionEntry for ControlPc (NULL for a leaf function) and the state
 * *ContextRecord of the function, it updates *ContextRecord to the state of
 * its caller. It stores the establisher frame in *EstablisherFrame and, if
 * ContextPointers is not NULL, the stack address each restored register was
 * read from in its entry of ContextPointers (others are left unchanged). It
 * returns the language-specific handler of type HandlerType (UNW_FLAG_*) when
 * ControlPc is in the function's body and it has one, storing its data's
 * address in *HandlerData; otherwise it returns NULL and stores NULL there.
 *
 * Only the registers an unwind changes are written: Rax..R15, Rip and
 * Xmm0..Xmm15. The stack, the code and the unwind information are read from
 * this process's memory with process_vm_readv(2), which fails cleanly on
 * unmapped or unreadable memory: then, and on malformed unwind information,
 * RtlVirtualUnwind returns NULL, leaves *ContextRecord and the out-parameters
 * unchanged, and FntableLastError() is STATUS_ACCESS_VIOLATION or
 * STATUS_BAD_FUNCTION_TABLE (Windows would raise an exception).
 * HandlerData and EstablisherFrame may be NULL.
 */
PEXCEPTION_ROUTINE RtlVirtualUnwind(DWORD HandlerType, DWORD64 ImageBase, DWORD64 ControlPc,
                                    PRUNTIME_FUNCTION FunctionEntry, PCONTEXT ContextRecord, PVOID *HandlerData,
                                    PDWORD64 EstablisherFrame, PKNONVOLATILE_CONTEXT_POINTERS ContextPointers);

/* ---- libfntable additions ---- */

/*
 * FntableLastError returns the NTSTATUS of the last fntable call made on the
 * calling thread: STATUS_SUCCESS if it succeeded (a lookup that finds nothing
 * succeeds), or one of the STATUS_* codes above.
 */
DWORD FntableLastError(void);

/*
 * FNTABLE_CALLER_CONTEXT(ctx) fills the CONTEXT *ctx with the state of the
 * function that called the current one, as it is while that call runs:
 * Rip is the return address, Rsp the address just past the return address
 * slot, Rbp the caller's RBP saved by this function's prolog, ContextFlags
 * CONTEXT_CONTROL | CONTEXT_INTEGER; everything else is zero (the other
 * nonvolatile registers may have been reused by this function already). Use
 * it in a C function called from JIT code to start unwinding at the JIT
 * frame. It needs the standard frame layout (push rbp; mov rbp, rsp), which
 * GCC and Clang set up in any function that uses __builtin_frame_address, as
 * this macro does; compile with -fno-omit-frame-pointer to be sure.
 */
#define FNTABLE_CALLER_CONTEXT(ctx)                                                       \
    do {                                                                                  \
        CONTEXT *fntable_ctx_ = (ctx);                                                    \
        DWORD64 *fntable_fp_ = (DWORD64 *)__builtin_frame_address(0);                     \
        memset(fntable_ctx_, 0, sizeof(CONTEXT));                                         \
        fntable_ctx_->ContextFlags = CONTEXT_CONTROL | CONTEXT_INTEGER;                   \
        fntable_ctx_->Rip = (DWORD64)(uintptr_t)__builtin_return_address(0);              \
        fntable_ctx_->Rsp = (DWORD64)(uintptr_t)(fntable_fp_ + 2);                        \
        fntable_ctx_->Rbp = fntable_fp_[0];                                               \
    } while (0)

/* ---- Out-of-process function table callbacks (provider libraries) ----
 *
 * A debugger or profiler in another process reads a target's dynamic function
 * tables from the list the library publishes (see "Publishing" above). A
 * callback table has no entries there: RtlInstallFunctionTableCallback's
 * OutOfProcessCallbackDll names a provider library, and the tool loads that
 * library (only if the path is on its trust list, as Windows only loads those
 * under the KnownFunctionTableDlls registry key) and calls its export:
 *
 *   DWORD OutOfProcessFunctionTableCallback(intptr_t Process, PVOID TableAddress,
 *                                           PDWORD Entries, PRUNTIME_FUNCTION *Functions);
 *
 * Process is the target's process ID (on Windows, a process handle).
 * TableAddress is the address, in the target, of the table's record (an
 * FNTABLE_DYNAMIC_FUNCTION_TABLE below): it is not readable in the provider's
 * address space, so the provider reads the record, and whatever JIT
 * metadata it leads to (its Context field, for example), from the target's
 * memory itself, with process_vm_readv(2) or /proc/PID/mem. It stores the
 * number of entries in *Entries and an array of them in *Functions, allocated
 * with malloc(3): the caller frees it with free(3). The entries are RVAs from
 * the record's BaseAddress, sorted by BeginAddress, inside [MinimumAddress,
 * MaximumAddress); their UnwindData RVAs point into the target's memory. It
 * returns STATUS_SUCCESS (0), or an NTSTATUS failure (>= 0x80000000) and no
 * array. The tool checks every answer before it uses it.
 *
 * A provider may be called from any thread, and, with fntable's
 * --isolate-providers, in a helper process of its own. It should not keep
 * state between calls: the tool may unload it.
 */

/* The name of the export, and its type (winnt.h). */
#define OUT_OF_PROCESS_FUNCTION_TABLE_CALLBACK_EXPORT_NAME "OutOfProcessFunctionTableCallback"
typedef DWORD (*POUT_OF_PROCESS_FUNCTION_TABLE_CALLBACK)(intptr_t Process, PVOID TableAddress, PDWORD Entries,
                                                        PRUNTIME_FUNCTION *Functions);

/* Table types (FUNCTION_TABLE_TYPE): the record's Type. */
#define RF_SORTED 0
#define RF_UNSORTED 1
#define RF_CALLBACK 2

/* A record of the published list: the x64 DYNAMIC_FUNCTION_TABLE of Windows
   (0x58 bytes) and two fields of fntable's. Every address is in the target's
   address space, so they are integers here, not pointers. */
typedef struct _FNTABLE_DYNAMIC_FUNCTION_TABLE {
    DWORD64 Flink, Blink;           /* LIST_ENTRY: the next and previous records */
    DWORD64 FunctionTable;          /* entry array; the TableIdentifier of an RF_CALLBACK table */
    LONGLONG TimeStamp;             /* registration time (FILETIME) */
    DWORD64 MinimumAddress;         /* the range covered: [MinimumAddress, MaximumAddress) */
    DWORD64 MaximumAddress;
    DWORD64 BaseAddress;            /* the entries' RVAs are relative to it */
    DWORD64 Callback;               /* the PGET_RUNTIME_FUNCTION_CALLBACK of a C caller, or 0 */
    DWORD64 Context;                /* its Context argument, or 0 */
    DWORD64 OutOfProcessCallbackDll; /* NUL-terminated UTF-16 path of the provider, or 0 */
    DWORD Type;                     /* RF_SORTED, RF_UNSORTED or RF_CALLBACK */
    DWORD EntryCount;               /* valid entries (0 for RF_CALLBACK) */
    DWORD MaximumEntryCount;        /* the table's maximum entries (fntable) */
    DWORD Flags;                    /* bit 0: growable (fntable) */
} FNTABLE_DYNAMIC_FUNCTION_TABLE;

FNTABLE_STATIC_ASSERT(sizeof(FNTABLE_DYNAMIC_FUNCTION_TABLE) == 0x60, "FNTABLE_DYNAMIC_FUNCTION_TABLE is 0x60 bytes");
FNTABLE_STATIC_ASSERT(offsetof(FNTABLE_DYNAMIC_FUNCTION_TABLE, Context) == 0x40, "Context is at 0x40");
FNTABLE_STATIC_ASSERT(offsetof(FNTABLE_DYNAMIC_FUNCTION_TABLE, Type) == 0x50, "Type is at 0x50");

#ifdef __cplusplus
}
#endif

#endif /* !_WIN32 */

#endif /* FNTABLE_H */
