//go:build ignore

/*
 * provider.c: an example out-of-process function table provider, the
 * library a JIT ships so that debuggers and profilers in other processes
 * can unwind through the code of its callback tables.
 *
 * This one serves the demo target of fntable (package internal/demotarget).
 * Copy it for your own JIT: only read_metadata() depends on how the JIT
 * keeps its unwind data.
 *
 * Build:  cc -shared -fPIC -O2 -Wall -Werror -I<dir of fntable.h> \
 *            -o libfntdemo_provider.so provider.c
 *
 * How it is used. The JIT registers a callback table (fntable.h:
 * RtlInstallFunctionTableCallback) whose OutOfProcessCallbackDll is this
 * library's path. A callback table has no entries in the table list the
 * JIT process publishes; its record, an FNTABLE_DYNAMIC_FUNCTION_TABLE,
 * only gives the range, the base, and a Context. A tool that needs the
 * table's entries loads this library (if its path is on the tool's trust
 * list) and calls
 *
 *   DWORD OutOfProcessFunctionTableCallback(intptr_t Process, PVOID TableAddress,
 *                                           PDWORD Entries, PRUNTIME_FUNCTION *Functions);
 *
 * in the tool's process, with the target's process ID and the address of
 * the record in the target. Nothing of the target is mapped here: every
 * byte is read from the target with process_vm_readv(2).
 *
 * The JIT metadata block. The demo target keeps its unwind data where the
 * record's Context points, at the start of its code reservation, as V8
 * keeps it at the start of its code range. Little-endian:
 *
 *   off  size      field
 *   0    8         Magic    "FNTDEMO1"
 *   8    4         Version  1
 *   12   4         Count    number of entries (at most FNTDEMO_MAX_ENTRIES)
 *   16   8         Base     the table's BaseAddress
 *   24   12*Count  RUNTIME_FUNCTION entries: RVAs from Base, sorted
 *
 * Robustness. The target's memory may be changing or corrupt: the
 * provider checks everything it reads (type, magic, version, count, base,
 * order and range of the entries) and fails with an NTSTATUS code instead
 * of returning doubtful entries. The tool checks the answer again.
 *
 * References: Microsoft, "POUT_OF_PROCESS_FUNCTION_TABLE_CALLBACK callback
 * function" (winnt.h), "DYNAMIC_FUNCTION_TABLE structure"; Linux,
 * process_vm_readv(2).
 */

#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "fntable.h"

/* NTSTATUS codes fntable.h does not define (ntstatus.h). */
#ifndef STATUS_UNSUCCESSFUL
#define STATUS_UNSUCCESSFUL ((DWORD)0xC0000001) /* the metadata is not what we expect */
#endif
#ifndef STATUS_INVALID_HANDLE
#define STATUS_INVALID_HANDLE ((DWORD)0xC0000008) /* no such process (Process is a handle on Windows) */
#endif
#ifndef STATUS_ACCESS_DENIED
#define STATUS_ACCESS_DENIED ((DWORD)0xC0000022) /* not allowed to read the process's memory */
#endif

/* The metadata block's header. */
#define FNTDEMO_MAGIC "FNTDEMO1"
#define FNTDEMO_VERSION 1
#define FNTDEMO_MAX_ENTRIES 65536 /* a cap: a corrupt count must not make us allocate gigabytes */

typedef struct {
    char Magic[8];
    uint32_t Version;
    uint32_t Count;
    uint64_t Base;
} FNTDEMO_METADATA;

FNTABLE_STATIC_ASSERT(sizeof(FNTDEMO_METADATA) == 24, "FNTDEMO_METADATA is 24 bytes");

/* read_target copies len bytes at addr in process pid into buf. It succeeds
   only if it read all of them: a short read means part of the range is not
   mapped. */
static DWORD read_target(pid_t pid, DWORD64 addr, void *buf, size_t len) {
    struct iovec local = {.iov_base = buf, .iov_len = len};
    struct iovec remote = {.iov_base = (void *)(uintptr_t)addr, .iov_len = len};
    ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    if (n == (ssize_t)len) {
        return STATUS_SUCCESS;
    }
    if (n >= 0) {
        return STATUS_ACCESS_VIOLATION;
    }
    switch (errno) {
    case EFAULT:
        return STATUS_ACCESS_VIOLATION;
    case EPERM:
        return STATUS_ACCESS_DENIED;
    case ESRCH:
        return STATUS_INVALID_HANDLE;
    case ENOMEM:
        return STATUS_NO_MEMORY;
    default:
        return STATUS_UNSUCCESSFUL;
    }
}

/* read_metadata reads the entries of the callback table whose record is
   rec from the JIT's metadata block, checking them against the record. On
   success *out holds count entries allocated with malloc. This is the part
   that depends on the JIT. */
static DWORD read_metadata(pid_t pid, const FNTABLE_DYNAMIC_FUNCTION_TABLE *rec, DWORD *count,
                           RUNTIME_FUNCTION **out) {
    FNTDEMO_METADATA md;
    DWORD st = read_target(pid, rec->Context, &md, sizeof md);
    if (st != STATUS_SUCCESS) {
        return st;
    }
    if (memcmp(md.Magic, FNTDEMO_MAGIC, sizeof md.Magic) != 0 || md.Version != FNTDEMO_VERSION ||
        md.Count > FNTDEMO_MAX_ENTRIES || md.Base != rec->BaseAddress) {
        return STATUS_UNSUCCESSFUL;
    }
    if (md.Count == 0) {
        *count = 0;
        *out = NULL;
        return STATUS_SUCCESS;
    }
    RUNTIME_FUNCTION *fns = malloc((size_t)md.Count * sizeof *fns);
    if (fns == NULL) {
        return STATUS_NO_MEMORY;
    }
    st = read_target(pid, rec->Context + sizeof md, fns, (size_t)md.Count * sizeof *fns);
    if (st != STATUS_SUCCESS) {
        free(fns);
        return st;
    }
    /* Every entry must lie inside the table's range, in order, without
       overlaps: [BaseAddress+Begin, BaseAddress+End) within
       [MinimumAddress, MaximumAddress). */
    for (DWORD i = 0; i < md.Count; i++) {
        DWORD64 begin = rec->BaseAddress + fns[i].BeginAddress;
        DWORD64 end = rec->BaseAddress + fns[i].EndAddress;
        if (fns[i].EndAddress <= fns[i].BeginAddress || begin < rec->MinimumAddress || end > rec->MaximumAddress ||
            (i > 0 && fns[i].BeginAddress < fns[i - 1].EndAddress)) {
            free(fns);
            return STATUS_UNSUCCESSFUL;
        }
    }
    *count = md.Count;
    *out = fns;
    return STATUS_SUCCESS;
}

/* OutOfProcessFunctionTableCallback is the export a tool calls (see
   fntable.h). It returns STATUS_SUCCESS with the entries in *Functions
   (malloc'ed; the caller frees them) and their number in *Entries, or an
   NTSTATUS failure with *Entries = 0 and *Functions = NULL. */
__attribute__((visibility("default"))) DWORD OutOfProcessFunctionTableCallback(intptr_t Process, PVOID TableAddress,
                                                                               PDWORD Entries,
                                                                               PRUNTIME_FUNCTION *Functions) {
    if (Entries == NULL || Functions == NULL) {
        return STATUS_INVALID_PARAMETER;
    }
    *Entries = 0;
    *Functions = NULL;
    if (Process <= 0 || TableAddress == NULL) {
        return STATUS_INVALID_PARAMETER;
    }
    pid_t pid = (pid_t)Process;

    /* The record, in the target. */
    FNTABLE_DYNAMIC_FUNCTION_TABLE rec;
    DWORD st = read_target(pid, (DWORD64)(uintptr_t)TableAddress, &rec, sizeof rec);
    if (st != STATUS_SUCCESS) {
        return st;
    }
    /* Only callback tables come here; their FunctionTable field is the
       TableIdentifier, whose two low bits are set. A tool that calls us
       for another record made a mistake. */
    if (rec.Type != RF_CALLBACK || (rec.FunctionTable & 3) != 3 || rec.Context == 0 ||
        rec.MinimumAddress > rec.MaximumAddress || rec.BaseAddress > rec.MinimumAddress) {
        return STATUS_INVALID_PARAMETER;
    }

    DWORD count;
    RUNTIME_FUNCTION *fns;
    st = read_metadata(pid, &rec, &count, &fns);
    if (st != STATUS_SUCCESS) {
        return st;
    }
    *Entries = count;
    *Functions = fns;
    return STATUS_SUCCESS;
}

/* Never used: it makes the compiler check the definition above against the
   type fntable.h declares for the export. */
static POUT_OF_PROCESS_FUNCTION_TABLE_CALLBACK const check_type __attribute__((unused)) =
    OutOfProcessFunctionTableCallback;
