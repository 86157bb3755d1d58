/* unwind_bench: the Wine side of bench/compare.sh.
 *
 * Measures, under Wine's ntdll, the cases of the Go benchmarks in
 * unwind/bench_test.go and prints one line per case in the form
 *
 *   BenchmarkVirtualUnwind/push-alloc <net> ns/op <total> total-ns/op <copy> copy-ns/op
 *   BenchmarkLookupImage/entries=1000 <ns> ns/op
 *
 * Unwind cases (frames of ../shared/wine/common.h, as in ../shared/wine/bench.c):
 *   push-alloc        F1 body (push rbp; push rbx; sub rsp,0x28; no frame pointer), NHANDLER
 *   fp-ehandler       F2 body (frame pointer rbp, exception handler), EHANDLER
 *   epilog            F1 at its epilog's add rsp (epilog emulation), NHANDLER
 *   alloc-large-save  F3 body (ALLOC_LARGE + SAVE_NONVOL), NHANDLER
 * Each iteration copies a prepared CONTEXT and calls RtlVirtualUnwind once
 * (ContextPointers NULL). "total" is that loop; "copy" is the same loop
 * without the call; the first figure is total - copy, the median over the
 * runs of the per-run differences. BenchmarkVirtualUnwindPointers/<case>
 * passes a KNONVOLATILE_CONTEXT_POINTERS (zeroed once) instead of NULL.
 * BenchmarkLookupUnwind adds RtlLookupFunctionEntry before the unwind
 * (F1 body).
 *
 * Lookup cases: one dynamic table (RtlAddFunctionTable) of N sorted entries,
 * function i at [i*0x40, i*0x40+0x30); the PCs cycle through 4096
 * pseudo-random PCs from the same splitmix64 sequence as the Go benchmark.
 * Only the table being measured is registered.
 *
 * Time: QueryPerformanceCounter; each figure is the median of the runs
 * (argument 1, default 7). Arguments 2 and 3, for instruction counts
 * (bench/instructions.sh): run only unwind case K (0 to 8, in the order
 * printed: the four frames, the four again with context pointers,
 * LookupUnwind) with ITERS iterations per loop, and no lookup cases.
 * Build: x86_64-w64-mingw32-gcc -O2 -I../shared/wine -o unwind_bench.exe
 * unwind_bench.c; run: wine unwind_bench.exe [runs [case iters]]. */
#include "common.h"
#include <stdlib.h>
#include "timing.h"

#define STACK_SLOTS 512
#define RET_ADDR 0x7ff6a1b01234ULL
#define STRIDE 0x40
#define FN_LEN 0x30
#define NUM_PCS 4096 /* a power of 2 */


static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static EXCEPTION_DISPOSITION handler(EXCEPTION_RECORD *rec, void *frame, CONTEXT *ctx, void *dc)
{
    return ExceptionContinueSearch;
}

/* The stack: slot 256 is S, the caller's RSP before the call; the values
 * are those of the Go benchmark (benchStack). */
static uint64_t stk[STACK_SLOTS];

static void fill_stack(void)
{
    uint64_t base = (uint64_t)(uintptr_t)stk, S = (uint64_t)(uintptr_t)&stk[256];
    for (int i = 0; i < STACK_SLOTS; i++)
        stk[i] = i % 3 == 0 ? 0x7ff6b2c41000ULL + (uint64_t)i * 0x37 : base + 8 * (uint64_t)(i + 8);
    stk[256] = RET_ADDR;           /* return address */
    stk[255] = S + 0x40;           /* F1/F2: saved rbp; F3: saved rsi */
    stk[254] = 0xbb5;              /* F1/F2: saved rbx */
    stk[256 - 0x88 / 8] = 0xd15;   /* F3: saved rdi */
}

struct ucase {
    const char *name;
    DWORD off;
    DWORD64 rsp, rbp; /* relative to S: S - rsp, S - rbp (0: rbp unchanged) */
    DWORD ht;
    DWORD64 want_rbx, want_rsi, want_rdi; /* 0: unchanged */
};

#define CHECK(cond, ...) do { if (!(cond)) { fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(1); } } while (0)

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    int runs = argc > 1 ? atoi(argv[1]) : 7;
    if (runs < 1) runs = 1;
    int only = argc > 2 ? atoi(argv[2]) : -1;
    long iters = argc > 3 ? atol(argv[3]) : 2000000;
    if (iters < 1) iters = 1;
    QueryPerformanceFrequency(&freq);
    printf("# QueryPerformanceFrequency=%lld runs=%d\n", (long long)freq.QuadPart, runs);
    double *v = malloc(sizeof(double) * runs), *vt = malloc(sizeof(double) * runs), *vc = malloc(sizeof(double) * runs);

    /* ---- LookupImage: one table of N sorted entries ---- */
    int Ns[] = {1000, 100000};
    for (int ni = 0; ni < (only >= 0 ? 0 : 2); ni++) {
        int N = Ns[ni];
        SIZE_T size = (SIZE_T)N * STRIDE + 0x1000;
        BYTE *R = VirtualAlloc(NULL, size, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
        CHECK(R, "VirtualAlloc %lu bytes failed", (unsigned long)size);
        DWORD64 base = (DWORD64)(uintptr_t)R;
        DWORD info = (DWORD)N * STRIDE; /* F1's UNWIND_INFO, shared by all entries */
        R[info] = 1; R[info + 1] = 6; R[info + 2] = 3; R[info + 3] = 0;
        WORD *c = (WORD *)(R + info + 4);
        c[0] = ucode(6, UWOP_ALLOC_SMALL, 4); c[1] = ucode(2, UWOP_PUSH_NONVOL, R_RBX); c[2] = ucode(1, UWOP_PUSH_NONVOL, R_RBP); c[3] = 0;
        RUNTIME_FUNCTION *rf = malloc(sizeof *rf * N);
        for (int i = 0; i < N; i++) {
            rf[i].BeginAddress = (DWORD)i * STRIDE;
            rf[i].EndAddress = (DWORD)i * STRIDE + FN_LEN;
            rf[i].UnwindData = info;
        }
        CHECK(RtlAddFunctionTable(rf, N, base), "RtlAddFunctionTable failed");
        static DWORD64 pcs[NUM_PCS];
        uint64_t seed = 1;
        for (int i = 0; i < NUM_PCS; i++) {
            uint64_t r = splitmix64(&seed);
            DWORD k = (DWORD)(r % (uint64_t)N), off = (DWORD)((r >> 32) % FN_LEN);
            pcs[i] = base + (DWORD64)k * STRIDE + off;
            DWORD64 ib;
            PRUNTIME_FUNCTION f = RtlLookupFunctionEntry(pcs[i], &ib, NULL);
            CHECK(f == &rf[k] && ib == base, "lookup %#llx: got %p base %#llx, want %p", (unsigned long long)pcs[i], (void *)f, (unsigned long long)ib, (void *)&rf[k]);
        }
        for (int r = 0; r < runs; r++) {
            DWORD64 sum = 0, ib;
            double t0 = now_ns();
            for (long i = 0; i < iters; i++) sum += RtlLookupFunctionEntry(pcs[i & (NUM_PCS - 1)], &ib, NULL)->BeginAddress;
            v[r] = (now_ns() - t0) / iters;
            sink += sum;
        }
        printf("BenchmarkLookupImage/entries=%d %.2f ns/op\n", N, median(v, runs));
        RtlDeleteFunctionTable(rf);
        free(rf);
        VirtualFree(R, 0, MEM_RELEASE);
    }

    /* ---- VirtualUnwind on the JIT page ---- */
    jit_t J;
    BYTE *mem = jit_alloc();
    CHECK(mem, "VirtualAlloc of the JIT page failed");
    jit_build(&J, mem, (void *)handler);
    DWORD64 base = (DWORD64)(uintptr_t)mem;
    CHECK(RtlAddFunctionTable(J.rf, 4, base), "RtlAddFunctionTable failed");
    fill_stack();
    DWORD64 S = (DWORD64)(uintptr_t)&stk[256];
    struct ucase cases[] = {
        {"push-alloc", OFF_F1 + 0x1a, 0x38, 0, UNW_FLAG_NHANDLER, 0xbb5, 0, 0},
        {"fp-ehandler", OFF_F2 + 0x19, 0x78, 0x18, UNW_FLAG_EHANDLER, 0xbb5, 0, 0},
        {"epilog", OFF_F1 + 0x23, 0x38, 0, UNW_FLAG_NHANDLER, 0xbb5, 0, 0},
        {"alloc-large-save", OFF_F3 + 0x10, 0x108, 0, UNW_FLAG_NHANDLER, 0, S + 0x40, 0xd15},
    };
    static KNONVOLATILE_CONTEXT_POINTERS ptrs;
    for (int k = 0; k < 9; k++) {
        if (only >= 0 && k != only) continue;
        int step = k == 8; /* BenchmarkLookupUnwind: lookup + unwind of F1's body */
        PKNONVOLATILE_CONTEXT_POINTERS cp = k >= 4 && !step ? &ptrs : NULL;
        struct ucase *uc = &cases[step ? 0 : k % 4];
        CONTEXT c0, c;
        fill_ctx(&c0);
        c0.Rip = base + uc->off;
        c0.Rsp = S - uc->rsp;
        if (uc->rbp) c0.Rbp = S - uc->rbp;
        DWORD64 ib;
        PRUNTIME_FUNCTION f = RtlLookupFunctionEntry(c0.Rip, &ib, NULL);
        CHECK(f && ib == base, "%s: no function entry", uc->name);

        /* check one unwind */
        {
            DWORD64 est; PVOID hd = NULL;
            c = c0;
            PEXCEPTION_ROUTINE h = RtlVirtualUnwind(uc->ht, ib, c.Rip, f, &c, &hd, &est, NULL);
            CHECK(c.Rip == RET_ADDR && c.Rsp == S + 8, "%s: rip %#llx rsp %#llx", uc->name, (unsigned long long)c.Rip, (unsigned long long)c.Rsp);
            CHECK(c.Rbp == (uc->want_rsi ? c0.Rbp : S + 0x40), "%s: rbp %#llx", uc->name, (unsigned long long)c.Rbp);
            CHECK(c.Rbx == (uc->want_rbx ? uc->want_rbx : c0.Rbx), "%s: rbx %#llx", uc->name, (unsigned long long)c.Rbx);
            CHECK(c.Rsi == (uc->want_rsi ? uc->want_rsi : c0.Rsi), "%s: rsi %#llx", uc->name, (unsigned long long)c.Rsi);
            CHECK(c.Rdi == (uc->want_rdi ? uc->want_rdi : c0.Rdi), "%s: rdi %#llx", uc->name, (unsigned long long)c.Rdi);
            CHECK((uc->ht == UNW_FLAG_EHANDLER) == ((DWORD64)(uintptr_t)h == base + OFF_TRAMP), "%s: handler %p", uc->name, (void *)h);
        }

        for (int r = 0; r < runs; r++) {
            DWORD64 sum = 0;
            double t0 = now_ns();
            for (long i = 0; i < iters; i++) {
                c = c0;
                __asm__ volatile("" ::"m"(c) : "memory");
                sum += c.Rip;
            }
            vc[r] = (now_ns() - t0) / iters;
            t0 = now_ns();
            if (!step) {
                for (long i = 0; i < iters; i++) {
                    DWORD64 est; PVOID hd;
                    c = c0;
                    __asm__ volatile("" ::"m"(c) : "memory");
                    RtlVirtualUnwind(uc->ht, ib, c.Rip, f, &c, &hd, &est, cp);
                    sum += est;
                }
            } else {
                for (long i = 0; i < iters; i++) {
                    DWORD64 est, ib2; PVOID hd;
                    c = c0;
                    __asm__ volatile("" ::"m"(c) : "memory");
                    PRUNTIME_FUNCTION f2 = RtlLookupFunctionEntry(c.Rip, &ib2, NULL);
                    RtlVirtualUnwind(UNW_FLAG_NHANDLER, ib2, c.Rip, f2, &c, &hd, &est, NULL);
                    sum += est;
                }
            }
            vt[r] = (now_ns() - t0) / iters;
            v[r] = vt[r] - vc[r];
            sink += sum;
        }
        double net = median(v, runs), tot = median(vt, runs), cpy = median(vc, runs);
        const char *ptrs_name = cp ? "Pointers" : "";
        if (step)
            printf("BenchmarkLookupUnwind %.2f ns/op %.2f total-ns/op %.2f copy-ns/op\n", net, tot, cpy);
        else
            printf("BenchmarkVirtualUnwind%s/%s %.2f ns/op %.2f total-ns/op %.2f copy-ns/op\n", ptrs_name, uc->name, net, tot, cpy);
    }
    RtlDeleteFunctionTable(J.rf);
    return 0;
}
