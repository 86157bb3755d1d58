/*
 * provider.c: the out-of-process provider library of the jit.c example.
 *
 * jit.c registers a callback table (RtlInstallFunctionTableCallback) whose
 * entries only its callback knows. A debugger or profiler in another process
 * (fntable stack) reads the table's record from jit.c's published table list,
 * sees this library named as its OutOfProcessCallbackDll, loads it (if its
 * trust list allows) and calls OutOfProcessFunctionTableCallback with jit.c's
 * process ID and the record's address in jit.c. This library then reads, from
 * jit.c's memory:
 *
 *   1. the record (FNTABLE_DYNAMIC_FUNCTION_TABLE), for its Type, BaseAddress
 *      and Context: the callback's Context, a struct callback_state of jit.c;
 *   2. the first fields of that struct: the code page's base and the two
 *      RUNTIME_FUNCTION entries the callback answers with;
 *
 * and returns the entries in memory from malloc, which the caller frees.
 * It trusts nothing it reads: every value is checked before use.
 *
 * Build (see ../README.md):
 *   cc -std=c11 -O2 -Wall -shared -fPIC -I../include provider.c -o libjit_provider.so
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "fntable.h"

#ifndef STATUS_UNSUCCESSFUL
#define STATUS_UNSUCCESSFUL ((DWORD)0xC0000001)
#endif
#ifndef STATUS_ACCESS_VIOLATION
#define STATUS_ACCESS_VIOLATION ((DWORD)0xC0000005)
#endif
#ifndef STATUS_NO_MEMORY
#define STATUS_NO_MEMORY ((DWORD)0xC0000017)
#endif

/* The first fields of jit.c's struct callback_state. */
struct jit_state {
    DWORD64 base;
    RUNTIME_FUNCTION entries[2];
};

/* read copies n bytes at addr in process pid into buf: 0, or -1. */
static int read_target(pid_t pid, uint64_t addr, void *buf, size_t n)
{
    struct iovec local = {buf, n};
    struct iovec remote = {(void *)(uintptr_t)addr, n};
    return process_vm_readv(pid, &local, 1, &remote, 1, 0) == (ssize_t)n ? 0 : -1;
}

DWORD OutOfProcessFunctionTableCallback(intptr_t Process, PVOID TableAddress, PDWORD Entries,
                                        PRUNTIME_FUNCTION *Functions)
{
    FNTABLE_DYNAMIC_FUNCTION_TABLE rec;
    struct jit_state st;
    PRUNTIME_FUNCTION out;

    if (Entries == NULL || Functions == NULL)
        return STATUS_UNSUCCESSFUL;
    *Entries = 0;
    *Functions = NULL;
    if (read_target((pid_t)Process, (uint64_t)(uintptr_t)TableAddress, &rec, sizeof rec) != 0)
        return STATUS_ACCESS_VIOLATION;
    if (rec.Type != RF_CALLBACK || rec.Context == 0)
        return STATUS_UNSUCCESSFUL;
    if (read_target((pid_t)Process, rec.Context, &st, sizeof st) != 0)
        return STATUS_ACCESS_VIOLATION;
    /* The state must describe this table's code page. */
    if (st.base != rec.BaseAddress)
        return STATUS_UNSUCCESSFUL;
    out = malloc(sizeof st.entries);
    if (out == NULL)
        return STATUS_NO_MEMORY;
    memcpy(out, st.entries, sizeof st.entries);
    *Functions = out;
    *Entries = 2;
    return 0; /* STATUS_SUCCESS */
}
