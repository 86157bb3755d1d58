/* functable_bench: the Wine side of bench/functable.sh.
 *
 * Measures, under Wine's ntdll, the cases of the Go benchmarks in
 * functable/bench_test.go and prints one line per case in the form
 *
 *   BenchmarkLookup/tables=N/hit-first <ns> ns/op
 *   BenchmarkAddDelete/tables=N <ns> ns/op <ns> add-ns/op <ns> delete-ns/op
 *
 * Layout (as in the shared directory's wine/bench.c, anchors.md Part 2 §6):
 * N tables registered with RtlAddFunctionTable, table i covering its own
 * 4 KiB page at R + i*0x1000 with 8 entries, function k at [k*0x100, k*0x100+0x80),
 * UNWIND_INFO at 0xF00. A callback table (RtlInstallFunctionTableCallback,
 * a trivial callback) covers page N+1 and is registered after the static
 * tables; page N is empty. The region is only reserved: lookups never read
 * the code or the unwind information.
 *
 *   hit-first  PC in function 5 of the first table registered
 *   hit-last   PC in function 5 of the last static table registered
 *   miss       PC in page N (no table)
 *   callback   PC in the callback table's page
 *   AddDelete  with the N static tables registered: each iteration adds 16
 *              tables with RtlAddFunctionTable (pages N+2 on) and deletes
 *              them with RtlDeleteFunctionTable, newest first, timing the
 *              two halves; ns/op is per add plus delete, add-ns/op and
 *              delete-ns/op per add and per delete
 *
 * Time: QueryPerformanceCounter. Every loop runs about 20 ms; each figure
 * is the median of the runs (argument 1, default 7). Build:
 * x86_64-w64-mingw32-gcc -O2 -o functable_bench.exe functable_bench.c
 * Run: wine functable_bench.exe [runs] */
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>
#include "timing.h"

#define PER 8
#define PAGE 0x1000
#define FN_PC (5 * 0x100 + 0x10)
#define BATCH 16
#define LOOP_NS 20e6


#define CHECK(cond, ...) do { if (!(cond)) { fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(1); } } while (0)

static RUNTIME_FUNCTION cb_entry = {0, 0x80, 0xF00};
static PRUNTIME_FUNCTION trivial_cb(DWORD64 pc, PVOID ctx) { return &cb_entry; }

static double lookup_loop(DWORD64 pc, long iters)
{
    DWORD64 ib;
    double t0 = now_ns();
    for (long i = 0; i < iters; i++) sink += (DWORD64)(ULONG_PTR)RtlLookupFunctionEntry(pc, &ib, NULL);
    return now_ns() - t0;
}

/* iterations for a loop of about LOOP_NS, from a loop of one */
static long calibrate(double one_ns)
{
    double n = LOOP_NS / (one_ns > 1 ? one_ns : 1);
    return n < 1 ? 1 : n > 2e8 ? 200000000 : (long)n;
}

static RUNTIME_FUNCTION *extra; /* BATCH tables of PER entries */

static void fill(RUNTIME_FUNCTION *rf)
{
    for (int k = 0; k < PER; k++) {
        rf[k].BeginAddress = k * 0x100;
        rf[k].EndAddress = k * 0x100 + 0x80;
        rf[k].UnwindData = 0xF00;
    }
}

/* batch_loop runs iters iterations of BATCH adds and BATCH deletes of
 * tables at page.. and adds the time of each half to *add and *del. */
static void batch_loop(BYTE *page, long iters, double *add, double *del)
{
    for (long i = 0; i < iters; i++) {
        double t0 = now_ns();
        for (int b = 0; b < BATCH; b++)
            CHECK(RtlAddFunctionTable(extra + b * PER, PER, (DWORD64)(ULONG_PTR)(page + (SIZE_T)b * PAGE)), "RtlAddFunctionTable failed");
        double t1 = now_ns();
        for (int b = BATCH - 1; b >= 0; b--) CHECK(RtlDeleteFunctionTable(extra + b * PER), "RtlDeleteFunctionTable failed");
        *add += t1 - t0;
        *del += now_ns() - t1;
    }
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    int runs = argc > 1 ? atoi(argv[1]) : 7;
    if (runs < 1) runs = 1;
    QueryPerformanceFrequency(&freq);
    printf("# QueryPerformanceFrequency=%lld runs=%d\n", (long long)freq.QuadPart, runs);
    double *v = malloc(sizeof(double) * runs), *va = malloc(sizeof(double) * runs), *vd = malloc(sizeof(double) * runs);
    extra = malloc(sizeof(RUNTIME_FUNCTION) * PER * BATCH);
    for (int b = 0; b < BATCH; b++) fill(extra + b * PER);

    int Ns[] = {1, 100, 10000, 100000};
    for (int ni = 0; ni < 4; ni++) {
        int N = Ns[ni];
        SIZE_T size = (SIZE_T)(N + 2 + BATCH) * PAGE;
        BYTE *R = VirtualAlloc(NULL, size, MEM_RESERVE, PAGE_NOACCESS);
        CHECK(R, "VirtualAlloc of %lu bytes failed", (unsigned long)size);
        RUNTIME_FUNCTION *rf = malloc(sizeof(RUNTIME_FUNCTION) * PER * N);
        for (int t = 0; t < N; t++) {
            fill(rf + t * PER);
            CHECK(RtlAddFunctionTable(rf + t * PER, PER, (DWORD64)(ULONG_PTR)(R + (SIZE_T)t * PAGE)), "RtlAddFunctionTable failed");
        }
        DWORD64 cbase = (DWORD64)(ULONG_PTR)(R + (SIZE_T)(N + 1) * PAGE);
        CHECK(RtlInstallFunctionTableCallback(cbase | 3, cbase, PAGE, trivial_cb, NULL, NULL), "RtlInstallFunctionTableCallback failed");

        struct { const char *name; DWORD64 pc; RUNTIME_FUNCTION *want; } cases[] = {
            {"hit-first", (DWORD64)(ULONG_PTR)R + FN_PC, rf + 5},
            {"hit-last", (DWORD64)(ULONG_PTR)R + (DWORD64)(N - 1) * PAGE + FN_PC, rf + (N - 1) * PER + 5},
            {"miss", (DWORD64)(ULONG_PTR)R + (DWORD64)N * PAGE + 0x10, NULL},
            {"callback", cbase + 0x10, &cb_entry},
        };
        for (int c = 0; c < 4; c++) {
            DWORD64 ib;
            CHECK(RtlLookupFunctionEntry(cases[c].pc, &ib, NULL) == cases[c].want, "tables=%d %s: wrong entry", N, cases[c].name);
            long iters = calibrate(lookup_loop(cases[c].pc, 1000) / 1000);
            for (int r = 0; r < runs; r++) v[r] = lookup_loop(cases[c].pc, iters) / iters;
            printf("BenchmarkLookup/tables=%d/%s %.2f ns/op\n", N, cases[c].name, median(v, runs));
        }
        CHECK(RtlDeleteFunctionTable((PRUNTIME_FUNCTION)(ULONG_PTR)(cbase | 3)), "RtlDeleteFunctionTable of the callback table failed");

        BYTE *next = R + (SIZE_T)(N + 2) * PAGE;
        double a = 0, d = 0;
        batch_loop(next, 4, &a, &d);
        long iters = calibrate((a + d) / 4);
        for (int r = 0; r < runs; r++) {
            a = d = 0;
            batch_loop(next, iters, &a, &d);
            v[r] = (a + d) / (iters * BATCH);
            va[r] = a / (iters * BATCH);
            vd[r] = d / (iters * BATCH);
        }
        printf("BenchmarkAddDelete/tables=%d %.2f ns/op %.2f add-ns/op %.2f delete-ns/op\n", N, median(v, runs), median(va, runs), median(vd, runs));

        /* Oldest first: Wine finds each at the head of its list. */
        for (int t = 0; t < N; t++) CHECK(RtlDeleteFunctionTable(rf + t * PER), "RtlDeleteFunctionTable failed");
        free(rf);
        VirtualFree(R, 0, MEM_RELEASE);
    }
    return 0;
}
