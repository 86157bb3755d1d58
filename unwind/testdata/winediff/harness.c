/*
 * harness.c: runs RtlLookupFunctionEntry and RtlVirtualUnwind of the ntdll
 * it runs on (Wine's, for wine_diff_test.go) on generated code, for a batch
 * of test points read from standard input, and writes the results to
 * standard output. Build: x86_64-w64-mingw32-gcc -O2 -o harness.exe harness.c
 *
 * All integers are little-endian; there is no padding unless shown.
 *
 * Input:
 *   header (32 bytes):
 *     char     magic[4]      "FWD1"
 *     uint32   image_size    bytes of the image that follow
 *     uint32   table_rva     RVA of the RUNTIME_FUNCTION table in the image
 *     uint32   table_count   entries in it
 *     uint32   stack_size    bytes of the stack buffer (a multiple of 8)
 *     uint32   npoints       test points that follow the image
 *     uint64   seed          seeds the stack and the registers (below)
 *   image bytes
 *   npoints test points:
 *     uint32   pc_rva        RVA of the control PC
 *     uint32   entry         index in the table of the entry to unwind with
 *     uint8    ngpr, nxmm    register overrides that follow
 *     uint8    pad[2]
 *     ngpr x { uint8 reg; uint8 rel; uint8 pad[6]; uint64 value }
 *              rel 1: value is relative to the stack buffer's address
 *     nxmm x { uint8 reg; uint8 pad[7]; uint8 value[16] }
 *
 * The stack buffer's 8-byte slot j holds splitmix64(seed + j), so every slot
 * differs. Before the overrides, test point i has general-purpose register r
 * = splitmix64(seed ^ REGMIX + 64*i + r) and XMM register n = the two
 * 64-bit halves splitmix64(seed ^ REGMIX + 64*i + 16 + 2*n) (low) and
 * ... + 17 + 2*n (high); RIP is the image address of pc_rva.
 *
 * Output:
 *   header (32 bytes): char magic[4] "FWR1"; uint32 npoints;
 *                      uint64 image_base, stack_base, table_address
 *   per test point:
 *     int32    lookup        RtlLookupFunctionEntry(pc): table index, -1 for
 *                            none, -2 for an entry outside the table, -3
 *                            if the call faulted
 *     uint32   pad
 *     uint64   lookup_base   its ImageBase
 *     for handler type 0, UNW_FLAG_EHANDLER, UNW_FLAG_UHANDLER:
 *       uint8  status        bit 0: RtlVirtualUnwind faulted (nothing
 *                            follows); bit 1: context, frame and pointers
 *                            equal those of handler type 0 (only handler
 *                            and data follow)
 *       uint64 handler, data
 *       unless bit 1:
 *       uint64 frame, rip, rsp
 *       uint16 mask of general-purpose registers (rsp excluded) that differ
 *              from the input, then their values (8 bytes each)
 *       uint16 mask of changed XMM registers, then their values (16 each)
 *       uint16 mask of non-NULL IntegerContext pointers, then the pointers
 *       uint16 mask of non-NULL FloatingContext pointers, then the pointers
 *
 * Access violations inside the Rtl calls are caught (a vectored handler
 * resumes at a recovery point) and reported, so one bad state cannot end the
 * batch.
 */
#include <windows.h>
#include <fcntl.h>
#include <io.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REGMIX 0x5245474953544552ULL /* "REGISTER" */

static uint64_t splitmix64(uint64_t x)
{
    uint64_t z = x + 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void die(const char *msg)
{
    fprintf(stderr, "harness: %s (error %lu)\n", msg, GetLastError());
    exit(2);
}

/* ---- input ---- */

static unsigned char *in_buf;
static size_t in_len, in_pos;

static void read_all(void)
{
    size_t cap = 1 << 20;
    in_buf = malloc(cap);
    if (!in_buf) die("out of memory");
    for (;;)
    {
        size_t n;
        if (in_len == cap)
        {
            cap *= 2;
            in_buf = realloc(in_buf, cap);
            if (!in_buf) die("out of memory");
        }
        n = fread(in_buf + in_len, 1, cap - in_len, stdin);
        if (n == 0) break;
        in_len += n;
    }
}

static const void *take(size_t n)
{
    const void *p;
    if (in_len - in_pos < n) die("truncated input");
    p = in_buf + in_pos;
    in_pos += n;
    return p;
}

static uint8_t get8(void) { return *(const uint8_t *)take(1); }
static uint32_t get32(void) { uint32_t v; memcpy(&v, take(4), 4); return v; }
static uint64_t get64(void) { uint64_t v; memcpy(&v, take(8), 8); return v; }

/* ---- output ---- */

static unsigned char *out_buf;
static size_t out_len, out_cap;

static void put(const void *p, size_t n)
{
    if (out_len + n > out_cap)
    {
        out_cap = out_cap ? 2 * out_cap : 1 << 22;
        while (out_len + n > out_cap) out_cap *= 2;
        out_buf = realloc(out_buf, out_cap);
        if (!out_buf) die("out of memory");
    }
    memcpy(out_buf + out_len, p, n);
    out_len += n;
}

static void put8(uint8_t v) { put(&v, 1); }
static void put16(uint16_t v) { put(&v, 2); }
static void put32(uint32_t v) { put(&v, 4); }
static void put64(uint64_t v) { put(&v, 8); }

/* ---- fault recovery ---- */

static void *recover_point[5];
static volatile LONG guarded;

static void recover(void)
{
    __builtin_longjmp(recover_point, 1);
}

static LONG CALLBACK on_exception(EXCEPTION_POINTERS *ep)
{
    if (!guarded || ep->ExceptionRecord->ExceptionCode != EXCEPTION_ACCESS_VIOLATION)
        return EXCEPTION_CONTINUE_SEARCH;
    guarded = 0;
    /* Resume in recover() as if it had been called from the faulting code. */
    ep->ContextRecord->Rsp = (ep->ContextRecord->Rsp & ~(DWORD64)15) - 8;
    ep->ContextRecord->Rip = (DWORD64)(ULONG_PTR)recover;
    return EXCEPTION_CONTINUE_EXECUTION;
}

/* KNONVOLATILE_CONTEXT_POINTERS (AMD64) without the header's unions. */
typedef struct
{
    M128A *flt[16];
    ULONG64 *intg[16];
} context_pointers;

typedef struct
{
    int faulted;
    PEXCEPTION_ROUTINE handler;
    void *data;
    DWORD64 frame;
    CONTEXT ctx;
    context_pointers ptrs;
} result;

/* unwind runs RtlVirtualUnwind on a copy of *in. It is noinline so that the
 * recovery point's frame stays intact. */
static __attribute__((noinline)) void unwind(DWORD type, DWORD64 base, DWORD64 pc, RUNTIME_FUNCTION *fn,
                                             const CONTEXT *in, result *r)
{
    memset(r, 0, sizeof *r);
    r->ctx = *in;
    if (__builtin_setjmp(recover_point))
    {
        r->faulted = 1;
        return;
    }
    guarded = 1;
    r->handler = RtlVirtualUnwind(type, base, pc, fn, &r->ctx, &r->data, &r->frame,
                                  (PKNONVOLATILE_CONTEXT_POINTERS)&r->ptrs);
    guarded = 0;
}

static __attribute__((noinline)) PRUNTIME_FUNCTION lookup(DWORD64 pc, DWORD64 *base, int *faulted)
{
    PRUNTIME_FUNCTION fn;
    *faulted = 0;
    *base = 0;
    if (__builtin_setjmp(recover_point))
    {
        *faulted = 1;
        return NULL;
    }
    guarded = 1;
    fn = RtlLookupFunctionEntry(pc, base, NULL);
    guarded = 0;
    return fn;
}

static void put_result(const result *r, const result *r0, const CONTEXT *in)
{
    uint16_t mask;
    int i;
    uint8_t status = 0;

    if (r->faulted) status |= 1;
    else if (r0 && !r0->faulted && r->frame == r0->frame && !memcmp(&r->ctx, &r0->ctx, sizeof r->ctx) &&
             !memcmp(&r->ptrs, &r0->ptrs, sizeof r->ptrs))
        status |= 2;
    put8(status);
    if (status & 1) return;
    put64((uint64_t)(ULONG_PTR)r->handler);
    put64((uint64_t)(ULONG_PTR)r->data);
    if (status & 2) return;
    put64(r->frame);
    put64(r->ctx.Rip);
    put64(r->ctx.Rsp);
    for (mask = 0, i = 0; i < 16; i++)
        if (i != 4 && (&r->ctx.Rax)[i] != (&in->Rax)[i]) mask |= 1 << i;
    put16(mask);
    for (i = 0; i < 16; i++)
        if (mask & (1 << i)) put64((&r->ctx.Rax)[i]);
    for (mask = 0, i = 0; i < 16; i++)
        if (memcmp(&(&r->ctx.Xmm0)[i], &(&in->Xmm0)[i], 16)) mask |= 1 << i;
    put16(mask);
    for (i = 0; i < 16; i++)
        if (mask & (1 << i)) put(&(&r->ctx.Xmm0)[i], 16);
    for (mask = 0, i = 0; i < 16; i++)
        if (r->ptrs.intg[i]) mask |= 1 << i;
    put16(mask);
    for (i = 0; i < 16; i++)
        if (mask & (1 << i)) put64((uint64_t)(ULONG_PTR)r->ptrs.intg[i]);
    for (mask = 0, i = 0; i < 16; i++)
        if (r->ptrs.flt[i]) mask |= 1 << i;
    put16(mask);
    for (i = 0; i < 16; i++)
        if (mask & (1 << i)) put64((uint64_t)(ULONG_PTR)r->ptrs.flt[i]);
}

int main(void)
{
    static const DWORD types[3] = {0, UNW_FLAG_EHANDLER, UNW_FLAG_UHANDLER};
    uint32_t image_size, table_rva, table_count, stack_size, npoints, i, j;
    uint64_t seed;
    unsigned char *image;
    uint64_t *stack;
    RUNTIME_FUNCTION *table;
    static result res[3];

    _setmode(_fileno(stdin), _O_BINARY);
    _setmode(_fileno(stdout), _O_BINARY);
    read_all();
    if (memcmp(take(4), "FWD1", 4)) die("bad magic");
    image_size = get32();
    table_rva = get32();
    table_count = get32();
    stack_size = get32();
    npoints = get32();
    seed = get64();
    if (image_size == 0 || (uint64_t)table_rva + 12ULL * table_count > image_size || stack_size % 8)
        die("bad header");

    image = VirtualAlloc(NULL, image_size, MEM_RESERVE | MEM_COMMIT, PAGE_EXECUTE_READWRITE);
    stack = VirtualAlloc(NULL, stack_size, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
    if (!image || !stack) die("VirtualAlloc");
    memcpy(image, take(image_size), image_size);
    FlushInstructionCache(GetCurrentProcess(), image, image_size);
    for (j = 0; j < stack_size / 8; j++) stack[j] = splitmix64(seed + j);
    table = (RUNTIME_FUNCTION *)(image + table_rva);
    if (!RtlAddFunctionTable(table, table_count, (DWORD64)(ULONG_PTR)image)) die("RtlAddFunctionTable");
    if (!AddVectoredExceptionHandler(1, on_exception)) die("AddVectoredExceptionHandler");

    put("FWR1", 4);
    put32(npoints);
    put64((uint64_t)(ULONG_PTR)image);
    put64((uint64_t)(ULONG_PTR)stack);
    put64((uint64_t)(ULONG_PTR)table);

    for (i = 0; i < npoints; i++)
    {
        CONTEXT ctx;
        DWORD64 pc, base;
        PRUNTIME_FUNCTION fn;
        uint32_t pc_rva = get32(), entry = get32();
        uint8_t ngpr = get8(), nxmm = get8();
        uint64_t rs = (seed ^ REGMIX) + 64ULL * i;
        int faulted, t;

        take(2);
        memset(&ctx, 0, sizeof ctx);
        ctx.ContextFlags = CONTEXT_FULL;
        ctx.MxCsr = 0x1f80;
        for (j = 0; j < 16; j++) (&ctx.Rax)[j] = splitmix64(rs + j);
        for (j = 0; j < 16; j++)
        {
            (&ctx.Xmm0)[j].Low = splitmix64(rs + 16 + 2 * j);
            (&ctx.Xmm0)[j].High = (LONGLONG)splitmix64(rs + 17 + 2 * j);
        }
        for (j = 0; j < ngpr; j++)
        {
            uint8_t r = get8(), rel = get8();
            uint64_t v;
            take(6);
            v = get64();
            if (rel) v += (uint64_t)(ULONG_PTR)stack;
            (&ctx.Rax)[r & 15] = v;
        }
        for (j = 0; j < nxmm; j++)
        {
            uint8_t r = get8();
            take(7);
            memcpy(&(&ctx.Xmm0)[r & 15], take(16), 16);
        }
        if (entry >= table_count) die("bad entry index");
        pc = (DWORD64)(ULONG_PTR)image + pc_rva;
        ctx.Rip = pc;

        fn = lookup(pc, &base, &faulted);
        if (faulted) put32((uint32_t)-3);
        else if (!fn) put32((uint32_t)-1);
        else if ((unsigned char *)fn < (unsigned char *)table || (unsigned char *)fn >= (unsigned char *)(table + table_count) ||
                 ((unsigned char *)fn - (unsigned char *)table) % sizeof *table)
            put32((uint32_t)-2);
        else put32((uint32_t)(fn - table));
        put32(0);
        put64(base);

        for (t = 0; t < 3; t++)
        {
            unwind(types[t], (DWORD64)(ULONG_PTR)image, pc, &table[entry], &ctx, &res[t]);
            put_result(&res[t], t ? &res[0] : NULL, &ctx);
        }
    }
    if (in_pos != in_len) die("trailing input");
    if (fwrite(out_buf, 1, out_len, stdout) != out_len || fflush(stdout)) die("write");
    RtlDeleteFunctionTable(table);
    return 0;
}
