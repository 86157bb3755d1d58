/*
 * lookupdiff.c: the Wine side of TestWineLookupDiff (../wine_diff_test.go).
 * It registers dynamic function tables with the ntdll it runs on (Wine's)
 * at addresses in a region it reserves, and answers RtlLookupFunctionEntry
 * for lists of PCs, following a script read from standard input.
 *
 * Build: x86_64-w64-mingw32-gcc -O2 -Wall -o lookupdiff.exe lookupdiff.c
 * Run:   wine lookupdiff.exe < script > results
 *
 * The script is whitespace-separated tokens; numbers are hexadecimal
 * without 0x. Offsets are relative to the region; RVAs relative to the
 * table's base. Table ids are small integers chosen by the script.
 *
 *   R size                       reserve the region (first command)
 *   S id base n {begin end unwind}*n
 *                                RtlAddFunctionTable of n entries
 *   G id base end count max {begin end unwind}*max
 *                                RtlAddGrowableFunctionTable(count, max,
 *                                region+base, region+end)
 *   C id base length n {begin end unwind}*n
 *                                RtlInstallFunctionTableCallback with
 *                                identifier (region+base)|3; the callback
 *                                returns the entry containing the PC
 *   g id count                   RtlGrowFunctionTable
 *   D id                         delete: RtlDeleteFunctionTable (static and
 *                                callback tables) or
 *                                RtlDeleteGrowableFunctionTable
 *   L n {pc}*n                   look up n PCs
 *   Q                            quit
 *
 * Output lines:
 *   base <region address>        after R
 *   L <n>                        then one line per PC:
 *   <found> <imagebase> <table id> <entry index> <begin> <end> <unwind> <callback calls> <last callback pc> <context ok>
 * found is 0 or 1; the image base and the entry fields are 0 when nothing
 * was found; table id and entry index are -1 when the returned entry is
 * not in any live table's array. The callback fields count the calls of
 * the callback during this lookup, the PC it was last called with, and
 * whether every call's Context was the table's.
 * Errors: a line "error ..." and exit status 1.
 */
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>

#define MAXTABLES 65536

struct table {
    int kind; /* 0: none; 'S', 'G', 'C' */
    DWORD64 base;
    DWORD64 length;          /* callback tables */
    RUNTIME_FUNCTION *rf;    /* entries (growable: max of them) */
    DWORD n;                 /* entries in rf */
    void *handle;            /* growable tables */
};

static struct table tables[MAXTABLES];
static int ntables; /* ids used so far are below this */
static BYTE *region;
static int cb_calls, cb_ctx_ok;
static DWORD64 cb_pc;

static void fail(const char *msg, long long a)
{
    printf("error %s %llx\n", msg, a);
    fflush(stdout);
    exit(1);
}

static unsigned long long hex(void)
{
    unsigned long long v;
    if (scanf("%llx", &v) != 1) fail("bad number in script", 0);
    return v;
}

static struct table *get(int want_live)
{
    unsigned long long id = hex();
    if (id >= MAXTABLES) fail("table id out of range", id);
    struct table *t = &tables[id];
    if (want_live && !t->kind) fail("table not registered", id);
    if (!want_live && t->kind) fail("table id in use", id);
    if ((int)id >= ntables) ntables = (int)id + 1;
    return t;
}

static RUNTIME_FUNCTION *read_entries(DWORD n)
{
    RUNTIME_FUNCTION *rf = calloc(n ? n : 1, sizeof *rf);
    if (!rf) fail("out of memory", n);
    for (DWORD i = 0; i < n; i++) {
        rf[i].BeginAddress = (DWORD)hex();
        rf[i].EndAddress = (DWORD)hex();
        rf[i].UnwindData = (DWORD)hex();
    }
    return rf;
}

/* search returns the entry of t containing pc, as a sorted-table lookup. */
static RUNTIME_FUNCTION *search(struct table *t, DWORD64 pc)
{
    if (pc < t->base) return NULL;
    DWORD64 rva = pc - t->base;
    int lo = 0, hi = (int)t->n - 1;
    while (lo <= hi) {
        int m = (lo + hi) / 2;
        if (rva < t->rf[m].BeginAddress) hi = m - 1;
        else if (rva >= t->rf[m].EndAddress) lo = m + 1;
        else return &t->rf[m];
    }
    return NULL;
}

static PRUNTIME_FUNCTION callback(DWORD64 pc, PVOID context)
{
    struct table *t = context;
    cb_calls++;
    cb_pc = pc;
    if (t < tables || t >= tables + MAXTABLES || t->kind != 'C') {
        cb_ctx_ok = 0;
        return NULL;
    }
    return search(t, pc);
}

int main(void)
{
    static char outbuf[1 << 16];
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
    char cmd[4];
    while (scanf("%3s", cmd) == 1) {
        struct table *t;
        switch (cmd[0]) {
        case 'R': {
            SIZE_T size = (SIZE_T)hex();
            region = VirtualAlloc(NULL, size, MEM_RESERVE, PAGE_NOACCESS);
            if (!region) fail("VirtualAlloc", size);
            printf("base %llx\n", (unsigned long long)(ULONG_PTR)region);
            break;
        }
        case 'S':
            t = get(0);
            t->base = (DWORD64)(ULONG_PTR)region + hex();
            t->n = (DWORD)hex();
            t->rf = read_entries(t->n);
            if (!RtlAddFunctionTable(t->rf, t->n, t->base)) fail("RtlAddFunctionTable", t->base);
            t->kind = 'S';
            break;
        case 'G': {
            t = get(0);
            t->base = (DWORD64)(ULONG_PTR)region + hex();
            DWORD64 end = (DWORD64)(ULONG_PTR)region + hex();
            DWORD count = (DWORD)hex();
            t->n = (DWORD)hex();
            t->rf = read_entries(t->n);
            DWORD st = RtlAddGrowableFunctionTable(&t->handle, t->rf, count, t->n, (ULONG_PTR)t->base, (ULONG_PTR)end);
            if (st) fail("RtlAddGrowableFunctionTable", st);
            t->kind = 'G';
            break;
        }
        case 'C':
            t = get(0);
            t->base = (DWORD64)(ULONG_PTR)region + hex();
            t->length = hex();
            t->n = (DWORD)hex();
            t->rf = read_entries(t->n);
            t->kind = 'C';
            if (!RtlInstallFunctionTableCallback(t->base | 3, t->base, (DWORD)t->length, callback, t, L"lookupdiff-provider.dll"))
                fail("RtlInstallFunctionTableCallback", t->base);
            break;
        case 'g':
            t = get(1);
            if (t->kind != 'G') fail("grow of a table that is not growable", t->base);
            RtlGrowFunctionTable(t->handle, (DWORD)hex());
            break;
        case 'D':
            t = get(1);
            if (t->kind == 'G') RtlDeleteGrowableFunctionTable(t->handle);
            else if (!RtlDeleteFunctionTable(t->kind == 'C' ? (PRUNTIME_FUNCTION)(ULONG_PTR)(t->base | 3) : t->rf))
                fail("RtlDeleteFunctionTable", t->base);
            free(t->rf);
            memset(t, 0, sizeof *t);
            break;
        case 'L': {
            unsigned long long n = hex();
            printf("L %llx\n", n);
            for (unsigned long long i = 0; i < n; i++) {
                DWORD64 pc = (DWORD64)(ULONG_PTR)region + hex(), ib = 0;
                cb_calls = 0;
                cb_pc = 0;
                cb_ctx_ok = 1;
                RUNTIME_FUNCTION *f = RtlLookupFunctionEntry(pc, &ib, NULL);
                long long tid = -1, idx = -1;
                if (f) {
                    for (int k = 0; k < ntables; k++) {
                        struct table *u = &tables[k];
                        if (u->kind && f >= u->rf && f < u->rf + u->n) {
                            tid = k;
                            idx = f - u->rf;
                            break;
                        }
                    }
                }
                printf("%d %llx %lld %lld %lx %lx %lx %d %llx %d\n", f != NULL, (unsigned long long)(f ? ib : 0), tid, idx,
                       f ? f->BeginAddress : 0, f ? f->EndAddress : 0, f ? f->UnwindData : 0, cb_calls,
                       (unsigned long long)cb_pc, cb_ctx_ok);
            }
            break;
        }
        case 'Q':
            fflush(stdout);
            return 0;
        default:
            fail("unknown command", cmd[0]);
        }
    }
    fail("script ended without Q", 0);
    return 1;
}
