/*
 * jit.c: a tiny JIT that uses libfntable the way a Windows JIT uses ntdll.
 *
 * It emits one x86-64 function with a Windows x64 prolog and its UNWIND_INFO
 * into each of three code pages, registers them as a static table
 * (RtlAddFunctionTable), a callback table (RtlInstallFunctionTableCallback)
 * and a growable table (RtlAddGrowableFunctionTable), calls the generated
 * code, and from a C function the generated code calls (the probe) unwinds
 * the JIT frame with RtlLookupFunctionEntry and RtlVirtualUnwind, checking
 * that the caller's registers come back. It also unwinds synthetic stacks
 * (in the epilog, in the prolog, through unreadable memory), deletes tables,
 * misuses the API on purpose, and looks up from several threads while tables
 * come and go.
 *
 * It prints what it checks and exits 0 if everything held, 1 otherwise.
 *
 * Build (see ../README.md), from the directory holding libfntable.so:
 *   cc -std=c11 -O2 -fno-omit-frame-pointer -I../include jit.c -L. -lfntable -Wl,-rpath,'$ORIGIN' -lpthread -o jit
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fntable.h"

static int failures;

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            failures++;                                                        \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);             \
            printf(__VA_ARGS__);                                               \
            printf("\n");                                                      \
        }                                                                      \
    } while (0)

#define CHECK_STATUS(want)                                                     \
    do {                                                                       \
        DWORD st_ = FntableLastError();                                        \
        CHECK(st_ == (want), "FntableLastError() = %#" PRIx32 ", want %#" PRIx32, st_, (DWORD)(want)); \
    } while (0)

/* ---- The generated code ----
 *
 * Each code page holds, at these offsets from its base:
 *
 *   0x00 jit_fn(probe, rbx_value, rbp_value, arg): calls probe(arg) with
 *        RBX and RBP set to the given values and returns what it returns.
 *          00: 53             push rbx
 *          01: 55             push rbp
 *          02: 48 83 ec 28    sub rsp, 0x28
 *          06: 48 89 f8       mov rax, rdi      (end of prolog: 6 bytes)
 *          09: 48 89 f3       mov rbx, rsi
 *          0c: 48 89 d5       mov rbp, rdx
 *          0f: 48 89 cf       mov rdi, rcx
 *          12: ff d0          call rax
 *          14: 90             nop
 *          15: 48 83 c4 28    add rsp, 0x28     (epilog)
 *          19: 5d             pop rbp
 *          1a: 5b             pop rbx
 *          1b: c3             ret
 *        The nop is what MSVC emits too: without it the return address of
 *        the call would be the first byte of the epilog, and RtlVirtualUnwind,
 *        which recognises epilogs by their bytes, would take the caller for
 *        being in the epilog (and report no handler).
 *   0x40 handler stub (never called: its address is what RtlVirtualUnwind
 *        reports as the exception handler)
 *          40: b8 01 00 00 00 mov eax, 1 (ExceptionContinueSearch)
 *          45: c3             ret
 *   0x80 UNWIND_INFO of jit_fn: version 1, UNW_FLAG_EHANDLER, prolog 6 bytes,
 *        3 codes (ALLOC_SMALL 0x28 at 6, PUSH_NONVOL rbp at 2, PUSH_NONVOL
 *        rbx at 1) padded to 4 slots, handler RVA 0x40, handler data.
 *   0xa0 UNWIND_INFO of the stub: version 1, no codes (a leaf).
 *   0xc0 a malformed UNWIND_INFO (version 7).
 *   0xd0 a RUNTIME_FUNCTION for jit_fn, the target of an indirect entry.
 */
enum {
    FN_BEGIN = 0x00,
    FN_END = 0x1c,
    FN_RETURN = 0x14, /* the return address of the call to the probe */
    FN_EPILOG_POP_RBP = 0x19,
    FN_AFTER_PUSH_RBX = 0x01,
    STUB_BEGIN = 0x40,
    STUB_END = 0x46,
    FN_INFO = 0x80,
    FN_HANDLER_DATA = FN_INFO + 4 + 2 * 4 + 4,
    STUB_INFO = 0xa0,
    BAD_INFO = 0xc0,
    TARGET_ENTRY = 0xd0,
    HANDLER_DATA_MAGIC = 0x0DDC0FFE,
};

static const uint8_t fn_code[] = {
    0x53, 0x55, 0x48, 0x83, 0xec, 0x28, 0x48, 0x89, 0xf8, 0x48, 0x89, 0xf3, 0x48, 0x89,
    0xd5, 0x48, 0x89, 0xcf, 0xff, 0xd0, 0x90, 0x48, 0x83, 0xc4, 0x28, 0x5d, 0x5b, 0xc3,
};
static const uint8_t stub_code[] = {0xb8, 0x01, 0x00, 0x00, 0x00, 0xc3};
static const uint8_t fn_info[] = {
    0x01 | UNW_FLAG_EHANDLER << 3, /* Version 1, Flags */
    0x06,                          /* SizeOfProlog */
    0x03,                          /* CountOfCodes */
    0x00,                          /* FrameRegister, FrameOffset: none */
    0x06, 0x42,                    /* at 6: UWOP_ALLOC_SMALL (2), (0x28 - 8) / 8 = 4 */
    0x02, 0x50,                    /* at 2: UWOP_PUSH_NONVOL (0), rbp (5) */
    0x01, 0x30,                    /* at 1: UWOP_PUSH_NONVOL (0), rbx (3) */
    0x00, 0x00,                    /* padding to an even count */
    STUB_BEGIN, 0x00, 0x00, 0x00,  /* handler RVA */
    0xFE, 0x0F, 0xDC, 0x0D,        /* handler data: HANDLER_DATA_MAGIC */
};
static const uint8_t stub_info[] = {0x01, 0x00, 0x00, 0x00};
static const uint8_t bad_info[] = {0x07, 0x00, 0x00, 0x00};
static const RUNTIME_FUNCTION target_entry = {FN_BEGIN, FN_END, FN_INFO};

#define PAGE 4096
enum { PAGE_STATIC, PAGE_CALLBACK, PAGE_GROWABLE, PAGE_SPARE, NPAGES };

static uint8_t *code; /* NPAGES pages, read+execute once emitted */

static DWORD64 page_base(int page) { return (DWORD64)(uintptr_t)(code + page * PAGE); }

static int emit(void)
{
    code = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (code == MAP_FAILED) {
        perror("mmap");
        return -1;
    }
    for (int p = 0; p < NPAGES; p++) {
        uint8_t *b = code + p * PAGE;
        memcpy(b + FN_BEGIN, fn_code, sizeof fn_code);
        memcpy(b + STUB_BEGIN, stub_code, sizeof stub_code);
        memcpy(b + FN_INFO, fn_info, sizeof fn_info);
        memcpy(b + STUB_INFO, stub_info, sizeof stub_info);
        memcpy(b + BAD_INFO, bad_info, sizeof bad_info);
        memcpy(b + TARGET_ENTRY, &target_entry, sizeof target_entry);
    }
    /* Write, then execute: the unwind information stays readable. */
    if (mprotect(code, NPAGES * PAGE, PROT_READ | PROT_EXEC) != 0) {
        perror("mprotect");
        return -1;
    }
    return 0;
}

/* ---- Calling the generated code from C ----
 *
 * example_call(&call) is the "C caller" of the JIT function, written in
 * assembly so that the test knows the registers the JIT function saves: it
 * sets RBX and RBP to call.outer_rbx and call.outer_rbp, records its RSP at
 * the call in call.caller_rsp, and calls call.jit(call.probe, call.inner_rbx,
 * call.inner_rbp, call.arg). example_return_site is its return address. Its
 * CFI directives let debuggers (and fntable stack) unwind through it.
 */
struct call {
    uint64_t jit;        /* 0x00 */
    uint64_t probe;      /* 0x08 */
    uint64_t outer_rbx;  /* 0x10 */
    uint64_t outer_rbp;  /* 0x18 */
    uint64_t inner_rbx;  /* 0x20 */
    uint64_t inner_rbp;  /* 0x28 */
    uint64_t arg;        /* 0x30 */
    uint64_t caller_rsp; /* 0x38, written by example_call */
};

uint64_t example_call(struct call *c);
extern const char example_return_site[];

__asm__(".pushsection .text\n"
        ".globl example_call\n"
        ".type example_call, @function\n"
        "example_call:\n"
        "    .cfi_startproc\n"
        "    push %rbx\n"
        "    .cfi_adjust_cfa_offset 8\n"
        "    .cfi_offset %rbx, -16\n"
        "    push %rbp\n"
        "    .cfi_adjust_cfa_offset 8\n"
        "    .cfi_offset %rbp, -24\n"
        "    sub $8, %rsp\n" /* 16-byte alignment at the call */
        "    .cfi_adjust_cfa_offset 8\n"
        "    mov %rdi, %rax\n"
        "    mov 0x10(%rax), %rbx\n"
        "    mov 0x18(%rax), %rbp\n"
        "    mov 0x08(%rax), %rdi\n"
        "    mov 0x20(%rax), %rsi\n"
        "    mov 0x28(%rax), %rdx\n"
        "    mov 0x30(%rax), %rcx\n"
        "    mov %rsp, 0x38(%rax)\n"
        "    call *0x00(%rax)\n"
        ".globl example_return_site\n"
        "example_return_site:\n"
        "    add $8, %rsp\n"
        "    .cfi_adjust_cfa_offset -8\n"
        "    pop %rbp\n"
        "    .cfi_adjust_cfa_offset -8\n"
        "    .cfi_restore %rbp\n"
        "    pop %rbx\n"
        "    .cfi_adjust_cfa_offset -8\n"
        "    .cfi_restore %rbx\n"
        "    ret\n"
        "    .cfi_endproc\n"
        ".size example_call, .-example_call\n"
        ".popsection\n");

/* ---- The probe: unwinding the JIT frame from C code it called ---- */

struct probe {
    const char *what;
    struct call *call;
    DWORD64 base;                 /* the JIT function's code page */
    PRUNTIME_FUNCTION want_entry; /* the entry RtlLookupFunctionEntry must return, or NULL: any */
    int ran;
};

#define OUTER_RBX 0x0b0b0b0b0b0b0b0bull
#define OUTER_RBP 0x0bb0bb0bb0bb0bb0ull
#define INNER_RBX 0x1b1b1b1b1b1b1b1bull
#define INNER_RBP 0x1bb1bb1bb1bb1bb1ull
#define PROBE_RESULT 0x600d

__attribute__((noinline)) static uint64_t probe(struct probe *p)
{
    CONTEXT ctx, before;
    KNONVOLATILE_CONTEXT_POINTERS ptrs;
    DWORD64 image_base = 1, establisher = 0, caller_rsp = p->call->caller_rsp;
    PVOID handler_data = NULL;
    PRUNTIME_FUNCTION fe;
    PEXCEPTION_ROUTINE handler;

    p->ran = 1;
    FNTABLE_CALLER_CONTEXT(&ctx);
    CHECK(ctx.Rip == p->base + FN_RETURN, "%s: return address %#" PRIx64 ", want JIT base + %#x", p->what,
          ctx.Rip, FN_RETURN);
    CHECK(*(DWORD64 *)(uintptr_t)(ctx.Rsp - 8) == ctx.Rip, "%s: no return address below RSP %#" PRIx64, p->what,
          ctx.Rsp);
    CHECK(ctx.Rbp == INNER_RBP, "%s: JIT frame RBP %#" PRIx64, p->what, ctx.Rbp);
    ctx.Rbx = INNER_RBX; /* what the JIT function holds in RBX during the call */
    /* Fields an unwind must leave alone. */
    ctx.P1Home = 0x1111;
    ctx.Dr7 = 0x7777;
    ctx.Xmm6.Low = 0x6666;
    ctx.VectorControl = 0x4444;
    ctx.LastExceptionFromRip = 0x5555;

    fe = RtlLookupFunctionEntry(ctx.Rip, &image_base, NULL);
    CHECK_STATUS(STATUS_SUCCESS);
    CHECK(fe != NULL, "%s: no function entry for %#" PRIx64, p->what, ctx.Rip);
    if (fe == NULL)
        return 0;
    CHECK(image_base == p->base, "%s: image base %#" PRIx64 ", want %#" PRIx64, p->what, image_base, p->base);
    CHECK(p->want_entry == NULL || fe == p->want_entry, "%s: entry %p, want %p", p->what, (void *)fe,
          (void *)p->want_entry);
    CHECK(fe->BeginAddress == FN_BEGIN && fe->EndAddress == FN_END && fe->UnwindData == FN_INFO,
          "%s: entry {%#x, %#x, %#x}", p->what, fe->BeginAddress, fe->EndAddress, fe->UnwindData);

    /* Without a handler type: no handler. */
    before = ctx;
    handler = RtlVirtualUnwind(UNW_FLAG_NHANDLER, image_base, before.Rip, fe, &before, &handler_data, &establisher,
                               NULL);
    CHECK(handler == NULL && FntableLastError() == STATUS_SUCCESS,
          "%s: NHANDLER unwind returned %#" PRIxPTR ", status %#x", p->what, (uintptr_t)handler, FntableLastError());

    before = ctx;
    memset(&ptrs, 0, sizeof ptrs);
    handler = RtlVirtualUnwind(UNW_FLAG_EHANDLER, image_base, ctx.Rip, fe, &ctx, &handler_data, &establisher, &ptrs);
    CHECK_STATUS(STATUS_SUCCESS);
    CHECK(ctx.Rip == (DWORD64)(uintptr_t)example_return_site, "%s: unwound RIP %#" PRIx64 ", want %p", p->what,
          ctx.Rip, (const void *)example_return_site);
    CHECK(ctx.Rsp == caller_rsp, "%s: unwound RSP %#" PRIx64 ", want %#" PRIx64, p->what, ctx.Rsp, caller_rsp);
    CHECK(ctx.Rbx == OUTER_RBX, "%s: unwound RBX %#" PRIx64, p->what, ctx.Rbx);
    CHECK(ctx.Rbp == OUTER_RBP, "%s: unwound RBP %#" PRIx64, p->what, ctx.Rbp);
    CHECK(establisher == before.Rsp, "%s: establisher frame %#" PRIx64 ", want %#" PRIx64, p->what, establisher,
          before.Rsp);
    CHECK((uintptr_t)handler == p->base + STUB_BEGIN, "%s: handler %#" PRIxPTR, p->what, (uintptr_t)handler);
    CHECK(handler_data == (PVOID)(uintptr_t)(p->base + FN_HANDLER_DATA) &&
              *(const uint32_t *)handler_data == HANDLER_DATA_MAGIC,
          "%s: handler data %p", p->what, handler_data);
    /* The JIT function pushed RBX at caller_rsp - 16 and RBP at - 24 (the
       return address is at - 8). */
    CHECK(ptrs.Rbx == (PULONG64)(uintptr_t)(caller_rsp - 16) && *ptrs.Rbx == OUTER_RBX, "%s: RBX pointer %p",
          p->what, (void *)ptrs.Rbx);
    CHECK(ptrs.Rbp == (PULONG64)(uintptr_t)(caller_rsp - 24) && *ptrs.Rbp == OUTER_RBP, "%s: RBP pointer %p",
          p->what, (void *)ptrs.Rbp);
    CHECK(ptrs.Rax == NULL && ptrs.Rsp == NULL && ptrs.R12 == NULL && ptrs.Xmm6 == NULL,
          "%s: pointers recorded for registers that were not restored", p->what);
    CHECK(ctx.P1Home == 0x1111 && ctx.Dr7 == 0x7777 && ctx.Xmm6.Low == 0x6666 && ctx.VectorControl == 0x4444 &&
              ctx.LastExceptionFromRip == 0x5555 && ctx.ContextFlags == before.ContextFlags,
          "%s: the unwind changed fields it does not restore", p->what);
    printf("ok   %s: unwound the JIT frame to RIP %#" PRIx64 " RSP %#" PRIx64 ", RBX and RBP restored from the stack\n",
           p->what, ctx.Rip, ctx.Rsp);
    return PROBE_RESULT;
}

/* run calls the JIT function at base with the probe, which checks the unwind. */
static void run(const char *what, DWORD64 base, PRUNTIME_FUNCTION want_entry)
{
    struct probe p = {what, NULL, base, want_entry, 0};
    struct call c = {base + FN_BEGIN, (uint64_t)(uintptr_t)probe, OUTER_RBX, OUTER_RBP,
                     INNER_RBX, INNER_RBP, (uint64_t)(uintptr_t)&p, 0};
    uint64_t r;

    p.call = &c;
    r = example_call(&c);
    CHECK(p.ran && r == PROBE_RESULT, "%s: the JIT function returned %#" PRIx64, what, r);
}

/* ---- Synthetic unwinds: the epilog, the prolog, unreadable memory ---- */

static void synthetic(DWORD64 base)
{
    PRUNTIME_FUNCTION fe;
    DWORD64 image_base = 0, establisher = 0;
    PVOID handler_data = (PVOID)1;
    PEXCEPTION_ROUTINE handler;
    CONTEXT ctx, saved;
    KNONVOLATILE_CONTEXT_POINTERS ptrs;
    /* A stack as the JIT function leaves it at "pop rbp": RBP, RBX, return address. */
    DWORD64 stack[3] = {0xaaaa, 0xbbbb, 0x123456789a};

    fe = RtlLookupFunctionEntry(base + FN_EPILOG_POP_RBP, &image_base, NULL);
    CHECK(fe != NULL && image_base == base, "no entry in the epilog");
    if (fe == NULL)
        return;

    memset(&ctx, 0, sizeof ctx);
    memset(&ptrs, 0, sizeof ptrs);
    ctx.Rip = base + FN_EPILOG_POP_RBP;
    ctx.Rsp = (DWORD64)(uintptr_t)stack;
    handler = RtlVirtualUnwind(UNW_FLAG_EHANDLER, image_base, ctx.Rip, fe, &ctx, &handler_data, &establisher, &ptrs);
    CHECK_STATUS(STATUS_SUCCESS);
    CHECK(handler == NULL && handler_data == NULL, "a handler reported in the epilog");
    CHECK(ctx.Rbp == 0xaaaa && ctx.Rbx == 0xbbbb && ctx.Rip == 0x123456789a &&
              ctx.Rsp == (DWORD64)(uintptr_t)&stack[3],
          "epilog unwind: RBP %#" PRIx64 " RBX %#" PRIx64 " RIP %#" PRIx64, ctx.Rbp, ctx.Rbx, ctx.Rip);
    CHECK(ptrs.Rbp == &stack[0] && ptrs.Rbx == &stack[1], "epilog unwind: pointers %p %p", (void *)ptrs.Rbp,
          (void *)ptrs.Rbx);
    printf("ok   epilog: emulated pop rbp; pop rbx; ret on a synthetic stack, no handler\n");

    /* In the prolog, after push rbx only: just that push is undone. */
    memset(&ctx, 0, sizeof ctx);
    stack[0] = 0xcccc;
    stack[1] = 0x2233445566;
    ctx.Rip = base + FN_AFTER_PUSH_RBX;
    ctx.Rsp = (DWORD64)(uintptr_t)stack;
    ctx.Rbp = 0xdddd;
    handler = RtlVirtualUnwind(UNW_FLAG_EHANDLER, image_base, ctx.Rip, fe, &ctx, &handler_data, &establisher, NULL);
    CHECK(handler == NULL && FntableLastError() == STATUS_SUCCESS, "prolog unwind failed");
    CHECK(ctx.Rbx == 0xcccc && ctx.Rbp == 0xdddd && ctx.Rip == 0x2233445566 &&
              ctx.Rsp == (DWORD64)(uintptr_t)&stack[2],
          "prolog unwind: RBX %#" PRIx64 " RBP %#" PRIx64 " RIP %#" PRIx64, ctx.Rbx, ctx.Rbp, ctx.Rip);
    printf("ok   prolog: only the executed push rbx was undone\n");

    /* A stack pointer into unmapped memory: an error, not a crash. */
    memset(&ctx, 0, sizeof ctx);
    ctx.Rip = base + 0x10;
    ctx.Rsp = 0x1000;
    ctx.Rbx = 0x77;
    saved = ctx;
    establisher = 0x99;
    handler = RtlVirtualUnwind(UNW_FLAG_NHANDLER, image_base, ctx.Rip, fe, &ctx, &handler_data, &establisher, NULL);
    CHECK_STATUS(STATUS_ACCESS_VIOLATION);
    CHECK(handler == NULL && memcmp(&ctx, &saved, sizeof ctx) == 0 && establisher == 0x99,
          "a failed unwind changed its outputs");
    /* A function entry pointer that is not readable either. */
    handler = RtlVirtualUnwind(UNW_FLAG_NHANDLER, image_base, ctx.Rip, (PRUNTIME_FUNCTION)(uintptr_t)0x2000, &ctx,
                               &handler_data, &establisher, NULL);
    CHECK_STATUS(STATUS_ACCESS_VIOLATION);
    printf("ok   unreadable stack and entry: RtlVirtualUnwind returned NULL with STATUS_ACCESS_VIOLATION\n");

    /* Malformed unwind information: an error, not a crash. */
    {
        RUNTIME_FUNCTION bad = {FN_BEGIN, FN_END, BAD_INFO};
        memset(&ctx, 0, sizeof ctx);
        ctx.Rip = base + 0x10;
        ctx.Rsp = (DWORD64)(uintptr_t)stack;
        handler = RtlVirtualUnwind(UNW_FLAG_NHANDLER, image_base, ctx.Rip, &bad, &ctx, &handler_data, &establisher,
                                   NULL);
        CHECK_STATUS(STATUS_BAD_FUNCTION_TABLE);
        CHECK(handler == NULL && ctx.Rsp == (DWORD64)(uintptr_t)stack, "a failed unwind changed the context");
    }
    printf("ok   malformed UNWIND_INFO: RtlVirtualUnwind returned NULL with STATUS_BAD_FUNCTION_TABLE\n");

    /* A leaf (no entry): the return address is at RSP. */
    memset(&ctx, 0, sizeof ctx);
    stack[0] = 0x4455;
    ctx.Rip = 0x1;
    ctx.Rsp = (DWORD64)(uintptr_t)stack;
    RtlVirtualUnwind(UNW_FLAG_NHANDLER, 0, ctx.Rip, NULL, &ctx, &handler_data, &establisher, NULL);
    CHECK(FntableLastError() == STATUS_SUCCESS && ctx.Rip == 0x4455 && ctx.Rsp == (DWORD64)(uintptr_t)&stack[1],
          "leaf unwind: RIP %#" PRIx64, ctx.Rip);
    printf("ok   leaf: popped the return address\n");
}

/* ---- Static tables ---- */

static void static_table(void)
{
    DWORD64 base = page_base(PAGE_STATIC), image_base = 1;
    /* Unsorted on purpose; the library sorts its copy. */
    RUNTIME_FUNCTION *table = malloc(2 * sizeof *table);
    RUNTIME_FUNCTION overlap = {0x10, 0x20, FN_INFO};
    PRUNTIME_FUNCTION fe;

    table[0] = (RUNTIME_FUNCTION){STUB_BEGIN, STUB_END, STUB_INFO};
    table[1] = (RUNTIME_FUNCTION){FN_BEGIN, FN_END, FN_INFO};
    CHECK(RtlAddFunctionTable(table, 2, base), "RtlAddFunctionTable failed: %#x", FntableLastError());
    CHECK_STATUS(STATUS_SUCCESS);
    printf("ok   RtlAddFunctionTable: 2 entries (unsorted) at %#" PRIx64 "\n", base);

    /* The entries were copied: the caller's array may go. */
    memset(table, 0xff, 2 * sizeof *table);
    fe = RtlLookupFunctionEntry(base + 0x10, &image_base, NULL);
    CHECK(fe != NULL && fe != &table[1] && image_base == base && fe->EndAddress == FN_END,
          "lookup after the caller's array changed: %p", (void *)fe);
    fe = RtlLookupFunctionEntry(base + STUB_BEGIN + 1, &image_base, NULL);
    CHECK(fe != NULL && fe->BeginAddress == STUB_BEGIN && fe->UnwindData == STUB_INFO, "stub lookup: %p",
          (void *)fe);
    fe = RtlLookupFunctionEntry(base + FN_END, &image_base, NULL);
    CHECK(fe == NULL && image_base == 0, "lookup between functions found %p, image base %#" PRIx64, (void *)fe,
          image_base);
    CHECK_STATUS(STATUS_SUCCESS);
    printf("ok   RtlLookupFunctionEntry: finds both functions in the library's copy, nothing between them\n");

    CHECK(!RtlAddFunctionTable(&overlap, 1, base), "an overlapping table was accepted");
    CHECK_STATUS(STATUS_CONFLICTING_ADDRESSES);
    printf("ok   overlapping RtlAddFunctionTable: FALSE, STATUS_CONFLICTING_ADDRESSES\n");

    run("static table", base, NULL);
    synthetic(base);

    CHECK(RtlDeleteFunctionTable(table), "RtlDeleteFunctionTable failed: %#x", FntableLastError());
    fe = RtlLookupFunctionEntry(base + 0x10, &image_base, NULL);
    CHECK(fe == NULL && image_base == 0, "lookup after delete found %p", (void *)fe);
    CHECK(!RtlDeleteFunctionTable(table), "deleted twice");
    CHECK_STATUS(STATUS_NOT_FOUND);
    printf("ok   RtlDeleteFunctionTable: gone; a second delete returns FALSE, STATUS_NOT_FOUND\n");
    free(table);
}

/* ---- Callback tables ----
 *
 * The callback's Context is a struct callback_state. A tool in another
 * process finds it through the Context field of the table's published
 * record, and the example provider (provider.c) reads the entries from it:
 * keep the layout of its first two fields in step with provider.c.
 */

struct callback_state {
    DWORD64 base;
    RUNTIME_FUNCTION entries[2];
    int calls;
    DWORD64 last_pc;
    PVOID last_context;
};

static PRUNTIME_FUNCTION get_entry(DWORD64 control_pc, PVOID context)
{
    struct callback_state *s = context;
    DWORD64 rva = control_pc - s->base;

    s->calls++;
    s->last_pc = control_pc;
    s->last_context = context;
    for (int i = 0; i < 2; i++)
        if (rva >= s->entries[i].BeginAddress && rva < s->entries[i].EndAddress)
            return &s->entries[i];
    return NULL;
}

static void callback_table(void)
{
    static struct callback_state s = {
        0, {{FN_BEGIN, FN_END, FN_INFO}, {STUB_BEGIN, STUB_END, STUB_INFO}}, 0, 0, NULL};
    DWORD64 base = page_base(PAGE_CALLBACK), id = base | 3, image_base = 0;
    /* UTF-16, as PCWSTR is on Windows. */
    static const WCHAR dll[] = {'/', 'o', 'p', 't', '/', 'j', 'i', 't', '/', 'p', 'r', 'o', 'v', '.', 's', 'o', 0};
    PRUNTIME_FUNCTION fe;

    s.base = base;
    CHECK(!RtlInstallFunctionTableCallback(base, base, PAGE, get_entry, &s, NULL), "identifier without low bits accepted");
    CHECK_STATUS(STATUS_INVALID_PARAMETER);
    CHECK(RtlInstallFunctionTableCallback(id, base, PAGE, get_entry, &s, dll), "install failed: %#x",
          FntableLastError());
    CHECK(s.calls == 0, "the callback ran at registration");
    printf("ok   RtlInstallFunctionTableCallback: [%#" PRIx64 ", +%#x) id %#" PRIx64 ", callback not called yet\n", base,
           PAGE, id);

    fe = RtlLookupFunctionEntry(page_base(PAGE_SPARE) + 0x10, &image_base, NULL);
    CHECK(fe == NULL && s.calls == 0, "a lookup outside the range called the callback");
    fe = RtlLookupFunctionEntry(base + 0x11, &image_base, NULL);
    CHECK(fe == &s.entries[0] && image_base == base, "lookup: %p, image base %#" PRIx64, (void *)fe, image_base);
    CHECK(s.calls == 1 && s.last_pc == base + 0x11 && s.last_context == &s,
          "callback: %d calls, last PC %#" PRIx64 ", context %p", s.calls, s.last_pc, s.last_context);
    printf("ok   lookup: the callback ran once with the exact PC and Context and its pointer came back\n");

    s.calls = 0;
    run("callback table", base, &s.entries[0]);
    CHECK(s.calls == 1 && s.last_pc == base + FN_RETURN, "during the unwind: %d calls, last PC %#" PRIx64, s.calls,
          s.last_pc);

    CHECK(RtlDeleteFunctionTable((PRUNTIME_FUNCTION)(uintptr_t)id), "delete by identifier failed: %#x",
          FntableLastError());
    s.calls = 0;
    fe = RtlLookupFunctionEntry(base + 0x11, &image_base, NULL);
    CHECK(fe == NULL && s.calls == 0, "lookup after delete: %p, %d calls", (void *)fe, s.calls);
    printf("ok   RtlDeleteFunctionTable(TableIdentifier): gone, the callback is no longer called\n");
}

/* ---- Growable tables ---- */

static void growable_table(void)
{
    DWORD64 base = page_base(PAGE_GROWABLE), image_base = 0;
    RUNTIME_FUNCTION entries[4] = {{FN_BEGIN, FN_END, FN_INFO}};
    PVOID table = NULL, other = NULL;
    PRUNTIME_FUNCTION fe;
    DWORD st;

    st = RtlAddGrowableFunctionTable(&other, entries, 5, 4, base, base + PAGE);
    CHECK(st == STATUS_INVALID_PARAMETER && other == NULL, "EntryCount > MaximumEntryCount: %#x", st);
    st = RtlAddGrowableFunctionTable(&table, entries, 0, 4, base, base + PAGE);
    CHECK(st == STATUS_SUCCESS && table != NULL, "RtlAddGrowableFunctionTable: %#x", st);
    fe = RtlLookupFunctionEntry(base + 0x10, &image_base, NULL);
    CHECK(fe == NULL, "an entry before the table grew: %p", (void *)fe);
    printf("ok   RtlAddGrowableFunctionTable: 0 of 4 entries, nothing found yet\n");

    RtlGrowFunctionTable(table, 1);
    CHECK_STATUS(STATUS_SUCCESS);
    fe = RtlLookupFunctionEntry(base + 0x10, &image_base, NULL);
    CHECK(fe == &entries[0] && image_base == base, "after growing: %p", (void *)fe);
    printf("ok   RtlGrowFunctionTable(1): the entry is found, in the caller's array\n");
    run("growable table", base, &entries[0]);

    RtlGrowFunctionTable(table, 0);
    CHECK_STATUS(STATUS_INVALID_PARAMETER);
    RtlGrowFunctionTable(table, 5);
    CHECK_STATUS(STATUS_INVALID_PARAMETER);
    entries[1] = (RUNTIME_FUNCTION){0x10, 0x30, FN_INFO}; /* overlaps entry 0 */
    RtlGrowFunctionTable(table, 2);
    CHECK_STATUS(STATUS_INVALID_PARAMETER);
    fe = RtlLookupFunctionEntry(base + 0x10, &image_base, NULL);
    CHECK(fe == &entries[0], "a rejected grow changed the table");
    printf("ok   RtlGrowFunctionTable misuse (shrink, past the maximum, unsorted): ignored, STATUS_INVALID_PARAMETER\n");

    entries[1] = (RUNTIME_FUNCTION){STUB_BEGIN, STUB_END, STUB_INFO};
    RtlGrowFunctionTable(table, 2);
    CHECK_STATUS(STATUS_SUCCESS);
    fe = RtlLookupFunctionEntry(base + STUB_BEGIN, &image_base, NULL);
    CHECK(fe == &entries[1], "after growing to 2: %p", (void *)fe);

    RtlDeleteGrowableFunctionTable(table);
    CHECK_STATUS(STATUS_SUCCESS);
    fe = RtlLookupFunctionEntry(base + 0x10, &image_base, NULL);
    CHECK(fe == NULL && image_base == 0, "lookup after delete: %p", (void *)fe);
    RtlDeleteGrowableFunctionTable(table);
    CHECK_STATUS(STATUS_NOT_FOUND);
    printf("ok   RtlDeleteGrowableFunctionTable: gone; a second delete is ignored, STATUS_NOT_FOUND\n");

    /* RtlDeleteFunctionTable takes a growable table's handle too. */
    st = RtlAddGrowableFunctionTable(&table, entries, 1, 4, base, base + PAGE);
    CHECK(st == STATUS_SUCCESS, "RtlAddGrowableFunctionTable again: %#x", st);
    CHECK(RtlDeleteFunctionTable((PRUNTIME_FUNCTION)table), "RtlDeleteFunctionTable(handle) failed: %#x",
          FntableLastError());
    CHECK(RtlLookupFunctionEntry(base + 0x10, &image_base, NULL) == NULL, "still registered");
    printf("ok   RtlDeleteFunctionTable(growable handle): gone\n");
}

/* ---- Indirect entries ---- */

static void indirect_entry(void)
{
    DWORD64 base = page_base(PAGE_SPARE), image_base = 0;
    RUNTIME_FUNCTION fn = {FN_BEGIN, FN_END, TARGET_ENTRY | RUNTIME_FUNCTION_INDIRECT};
    PRUNTIME_FUNCTION fe;

    CHECK(RtlAddFunctionTable(&fn, 1, base), "RtlAddFunctionTable: %#x", FntableLastError());
    fe = RtlLookupFunctionEntry(base + 0x10, &image_base, NULL);
    CHECK(fe == (PRUNTIME_FUNCTION)(uintptr_t)(base + TARGET_ENTRY) && image_base == base,
          "lookup of an indirect entry: %p", (void *)fe);
    CHECK(RtlDeleteFunctionTable(&fn), "RtlDeleteFunctionTable: %#x", FntableLastError());
    printf("ok   indirect entry: RtlLookupFunctionEntry followed it to the entry in the code page\n");
}

/* ---- Concurrency: lookups and unwinds on threads while tables come and go ---- */

enum { THREADS = 4, ITERATIONS = 20000 };

static void *lookup_loop(void *arg)
{
    DWORD64 base = *(DWORD64 *)arg;
    long bad = 0;

    for (int i = 0; i < ITERATIONS; i++) {
        DWORD64 image_base = 0;
        PRUNTIME_FUNCTION fe = RtlLookupFunctionEntry(base + (DWORD64)(i % FN_END), &image_base, NULL);
        if (fe == NULL || image_base != base || fe->UnwindData != FN_INFO || FntableLastError() != STATUS_SUCCESS)
            bad++;
        if (i % 64 == 0 && fe != NULL) {
            DWORD64 stack[3] = {1, 2, 3}, establisher;
            PVOID data;
            CONTEXT ctx;
            memset(&ctx, 0, sizeof ctx);
            ctx.Rip = base + FN_EPILOG_POP_RBP;
            ctx.Rsp = (DWORD64)(uintptr_t)stack;
            RtlVirtualUnwind(UNW_FLAG_NHANDLER, image_base, ctx.Rip, fe, &ctx, &data, &establisher, NULL);
            if (ctx.Rip != 3 || ctx.Rbx != 2 || ctx.Rbp != 1)
                bad++;
        }
    }
    return (void *)bad;
}

static void threads(void)
{
    RUNTIME_FUNCTION fn = {FN_BEGIN, FN_END, FN_INFO};
    DWORD64 base = page_base(PAGE_STATIC), spare = page_base(PAGE_SPARE);
    pthread_t th[THREADS];
    long bad = 0;
    int churn = 0;

    CHECK(RtlAddFunctionTable(&fn, 1, base), "RtlAddFunctionTable: %#x", FntableLastError());
    for (int i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, lookup_loop, &base);
    for (int i = 0; i < 500; i++) {
        RUNTIME_FUNCTION other = {FN_BEGIN, FN_END, FN_INFO};
        if (RtlAddFunctionTable(&other, 1, spare) && RtlDeleteFunctionTable(&other))
            churn++;
    }
    for (int i = 0; i < THREADS; i++) {
        void *r;
        pthread_join(th[i], &r);
        bad += (long)r;
    }
    CHECK(bad == 0, "%ld bad lookups or unwinds on threads", bad);
    CHECK(churn == 500, "only %d of 500 add/delete pairs succeeded", churn);
    CHECK(RtlDeleteFunctionTable(&fn), "RtlDeleteFunctionTable: %#x", FntableLastError());
    printf("ok   %d threads x %d lookups while another table was added and deleted %d times\n", THREADS, ITERATIONS,
           churn);
}

/* ---- Park mode: a stack for tools in other processes to walk ----
 *
 * "jit park [PROVIDER]" registers the static page with RtlAddFunctionTable
 * and the callback page with RtlInstallFunctionTableCallback, naming
 * PROVIDER (an absolute path; the example provider, provider.c) as its
 * OutOfProcessCallbackDll, and then blocks with this call chain on the
 * main thread:
 *
 *   main → park_mode → example_call → jit_fn (static page) → hop
 *        → example_call → jit_fn (callback page) → park → pause()
 *
 * It prints "ready PID STATIC_BASE CALLBACK_BASE" just before it blocks, so
 * a tool should also wait until the thread sleeps in pause.
 */

static struct callback_state park_state = {0, {{FN_BEGIN, FN_END, FN_INFO}, {STUB_BEGIN, STUB_END, STUB_INFO}}, 0, 0, NULL};

__attribute__((noinline)) static uint64_t park(void *arg)
{
    (void)arg;
    printf("ready %d %#" PRIx64 " %#" PRIx64 "\n", (int)getpid(), page_base(PAGE_STATIC), page_base(PAGE_CALLBACK));
    for (;;)
        pause();
    return 0;
}

__attribute__((noinline)) static uint64_t hop(void *arg)
{
    struct call c = {page_base(PAGE_CALLBACK) + FN_BEGIN, (uint64_t)(uintptr_t)park, OUTER_RBX, OUTER_RBP,
                     INNER_RBX, INNER_RBP, (uint64_t)(uintptr_t)arg, 0};
    return example_call(&c);
}

static int park_mode(const char *provider)
{
    static RUNTIME_FUNCTION fn = {FN_BEGIN, FN_END, FN_INFO};
    static WCHAR dll[512];
    DWORD64 cb = page_base(PAGE_CALLBACK);
    size_t n = provider ? strlen(provider) : 0;

    if (n >= sizeof dll / sizeof dll[0]) {
        fprintf(stderr, "provider path too long\n");
        return 2;
    }
    for (size_t i = 0; i < n; i++)
        dll[i] = (unsigned char)provider[i]; /* ASCII paths: UTF-16 is the same code units */
    dll[n] = 0;
    park_state.base = cb;
    if (!RtlAddFunctionTable(&fn, 1, page_base(PAGE_STATIC)) ||
        !RtlInstallFunctionTableCallback(cb | 3, cb, PAGE, get_entry, &park_state, n ? dll : NULL)) {
        fprintf(stderr, "registration failed: %#x\n", FntableLastError());
        return 1;
    }
    struct call c = {page_base(PAGE_STATIC) + FN_BEGIN, (uint64_t)(uintptr_t)hop, OUTER_RBX, OUTER_RBP,
                     INNER_RBX, INNER_RBP, 0, 0};
    return (int)example_call(&c);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (emit() != 0)
        return 1;
    if (argc >= 2 && strcmp(argv[1], "park") == 0)
        return park_mode(argc >= 3 ? argv[2] : NULL);
    printf("ok   emitted %d code pages at %p\n", NPAGES, (void *)code);
    static_table();
    callback_table();
    growable_table();
    indirect_entry();
    threads();
    if (failures != 0) {
        printf("FAIL: %d checks failed\n", failures);
        return 1;
    }
    printf("PASS\n");
    return 0;
}
