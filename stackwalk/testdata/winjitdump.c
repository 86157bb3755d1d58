/*
 * winjitdump.c: a Windows x86-64 program that runs JIT code described by
 * a dynamic function table and writes a minidump of itself while that code
 * is on its stack, for the stack walk of Wine-written dumps.
 *
 * Usage: winjitdump.exe DUMPFILE
 *
 * main generates two functions into VirtualAlloc'ed memory, jit_outer and
 * jit_inner, with their UNWIND_INFO, registers them with
 * RtlAddFunctionTable and calls jit_outer(callback): jit_outer (push rbx;
 * sub rsp, 0x20) calls jit_inner (push rbp; mov rbp, rsp; sub rsp, 0x30,
 * a frame-pointer function), which calls callback. callback
 *
 *   1. walks its own stack with RtlCaptureContext, RtlLookupFunctionEntry
 *      and RtlVirtualUnwind, printing each frame as "frame I RIP RSP";
 *   2. signals the dumper thread and waits until it is done: the dumper
 *      writes a full-memory minidump with MiniDumpWriteDump, passing the
 *      JIT code's function table as a user stream of type 13
 *      (FunctionTableStream) in the layout dbghelp writes on Windows:
 *      MINIDUMP_FUNCTION_TABLE_STREAM, one MINIDUMP_FUNCTION_TABLE_DESCRIPTOR,
 *      a native DYNAMIC_FUNCTION_TABLE of the Windows 10 layout (0x70 bytes,
 *      built here from what the program registered: Wine's own record is
 *      not Windows'), and the RUNTIME_FUNCTION entries.
 *
 * Output lines (addresses in hex with 0x):
 *
 *   jit BASE SIZE       the JIT region
 *   fn NAME ADDR        jit_outer, jit_inner, callback, main
 *   tid TID             the thread that runs the JIT code (main's)
 *   frame I RIP RSP     the program's own walk, from callback outwards
 *   dump OK ERROR       MiniDumpWriteDump's result and GetLastError
 *   done
 *
 * Build: x86_64-w64-mingw32-gcc -O2 -g -o winjitdump.exe winjitdump.c -ldbghelp
 */
#include <windows.h>
#include <dbghelp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define NOIPA __attribute__((noipa))

static HANDLE ready, done;
static const char *dump_path;
static uint8_t *jit;
static RUNTIME_FUNCTION *table;
static const DWORD table_count = 2;

enum {
    JIT_SIZE = 0x10000,
    OFF_TABLE = 0x000,
    OFF_INFO_OUTER = 0x040,
    OFF_INFO_INNER = 0x060,
    OFF_OUTER = 0x100,
    OFF_INNER = 0x200,
};

/* hex formats v as 0x..., as the C runtime's %p and %llx vary. */
static const char *hex(uint64_t v, char *buf) {
    char tmp[17];
    int i = 16;
    tmp[i] = 0;
    do {
        tmp[--i] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v != 0);
    buf[0] = '0';
    buf[1] = 'x';
    strcpy(buf + 2, tmp + i);
    return buf;
}

static void line2(const char *what, const char *name, uint64_t a) {
    char b[20];
    printf("%s %s %s\n", what, name, hex(a, b));
}

static const uint8_t outer_code[] = {
    0x53,                   /* push rbx */
    0x48, 0x83, 0xEC, 0x20, /* sub rsp, 0x20 */
    0xE8, 0, 0, 0, 0,       /* call jit_inner (rel32 filled in) */
    0x48, 0x83, 0xC4, 0x20, /* add rsp, 0x20 */
    0x5B,                   /* pop rbx */
    0xC3,                   /* ret */
};

static const uint8_t outer_info[] = {
    0x01, 0x05, 0x02, 0x00, /* version 1, no flags, prolog 5, 2 codes, no frame register */
    0x05, 0x32,             /* at 5: UWOP_ALLOC_SMALL 0x20 */
    0x01, 0x30,             /* at 1: UWOP_PUSH_NONVOL rbx */
};

static const uint8_t inner_code[] = {
    0x55,                   /* push rbp */
    0x48, 0x89, 0xE5,       /* mov rbp, rsp */
    0x48, 0x83, 0xEC, 0x30, /* sub rsp, 0x30 */
    0xFF, 0xD1,             /* call rcx */
    0x48, 0x8D, 0x65, 0x00, /* lea rsp, [rbp+0] */
    0x5D,                   /* pop rbp */
    0xC3,                   /* ret */
};

static const uint8_t inner_info[] = {
    0x01, 0x08, 0x03, 0x05, /* version 1, no flags, prolog 8, 3 codes, frame register rbp, offset 0 */
    0x08, 0x52,             /* at 8: UWOP_ALLOC_SMALL 0x30 */
    0x04, 0x03,             /* at 4: UWOP_SET_FPREG */
    0x01, 0x50,             /* at 1: UWOP_PUSH_NONVOL rbp */
    0x00, 0x00,             /* padding to an even count */
};

NOIPA static void callback(void) {
    CONTEXT ctx;
    RtlCaptureContext(&ctx);
    for (int i = 0; i < 64 && ctx.Rip != 0; i++) {
        char b1[20], b2[20];
        printf("frame %d %s %s\n", i, hex(ctx.Rip, b1), hex(ctx.Rsp, b2));
        DWORD64 base = 0;
        PRUNTIME_FUNCTION fn = RtlLookupFunctionEntry(ctx.Rip, &base, NULL);
        if (fn == NULL) {
            /* A leaf function: its return address is at RSP. */
            ctx.Rip = *(DWORD64 *)ctx.Rsp;
            ctx.Rsp += 8;
            continue;
        }
        PVOID data;
        DWORD64 frame;
        RtlVirtualUnwind(UNW_FLAG_NHANDLER, base, ctx.Rip, fn, &ctx, &data, &frame, NULL);
    }
    fflush(stdout);
    SetEvent(ready);
    WaitForSingleObject(done, INFINITE);
}

/* stream13 builds the FunctionTableStream for the JIT table into buf and
 * returns its size. */
static ULONG stream13(uint8_t *buf) {
    uint8_t *p = buf;
    uint64_t base = (uint64_t)jit;
    uint64_t min = base + table[0].BeginAddress, max = base + table[table_count - 1].EndAddress;
    const uint32_t native = 0x70;
    uint32_t hdr[6] = {24, 32, native, sizeof(RUNTIME_FUNCTION), 1, 0};
    memcpy(p, hdr, sizeof hdr);
    p += sizeof hdr;
    /* MINIDUMP_FUNCTION_TABLE_DESCRIPTOR */
    memcpy(p, &min, 8);
    memcpy(p + 8, &max, 8);
    memcpy(p + 16, &base, 8);
    memcpy(p + 24, &table_count, 4);
    memset(p + 28, 0, 4);
    p += 32;
    /* DYNAMIC_FUNCTION_TABLE (Windows 10): ListEntry, FunctionTable,
     * TimeStamp, MinimumAddress, MaximumAddress, BaseAddress, Callback,
     * Context, OutOfProcessCallbackDll, Type, EntryCount, TreeNode. */
    memset(p, 0, native);
    uint64_t ft = (uint64_t)table;
    memcpy(p + 0x10, &ft, 8);
    memcpy(p + 0x20, &min, 8);
    memcpy(p + 0x28, &max, 8);
    memcpy(p + 0x30, &base, 8);
    uint32_t type = 0; /* RF_SORTED */
    memcpy(p + 0x50, &type, 4);
    memcpy(p + 0x54, &table_count, 4);
    p += native;
    memcpy(p, table, table_count * sizeof(RUNTIME_FUNCTION));
    p += table_count * sizeof(RUNTIME_FUNCTION);
    return (ULONG)(p - buf);
}

static DWORD WINAPI dumper(LPVOID arg) {
    (void)arg;
    static uint8_t buf[4096];
    WaitForSingleObject(ready, INFINITE);
    HANDLE f = CreateFileA(dump_path, GENERIC_READ | GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
    BOOL ok = FALSE;
    DWORD err = GetLastError();
    if (f != INVALID_HANDLE_VALUE) {
        MINIDUMP_USER_STREAM us = {13, stream13(buf), buf};
        MINIDUMP_USER_STREAM_INFORMATION usi = {1, &us};
        ok = MiniDumpWriteDump(GetCurrentProcess(), GetCurrentProcessId(), f, MiniDumpWithFullMemory, NULL, &usi, NULL);
        err = ok ? 0 : GetLastError();
        CloseHandle(f);
    }
    printf("dump %d %lu\n", ok, err);
    fflush(stdout);
    SetEvent(done);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: winjitdump DUMPFILE\n");
        return 2;
    }
    dump_path = argv[1];
    jit = VirtualAlloc(NULL, JIT_SIZE, MEM_COMMIT | MEM_RESERVE, PAGE_EXECUTE_READWRITE);
    if (jit == NULL) {
        fprintf(stderr, "VirtualAlloc: %lu\n", GetLastError());
        return 1;
    }
    memcpy(jit + OFF_OUTER, outer_code, sizeof outer_code);
    int32_t rel = OFF_INNER - (OFF_OUTER + 10);
    memcpy(jit + OFF_OUTER + 6, &rel, 4);
    memcpy(jit + OFF_INNER, inner_code, sizeof inner_code);
    memcpy(jit + OFF_INFO_OUTER, outer_info, sizeof outer_info);
    memcpy(jit + OFF_INFO_INNER, inner_info, sizeof inner_info);
    table = (RUNTIME_FUNCTION *)(jit + OFF_TABLE);
    table[0] = (RUNTIME_FUNCTION){OFF_OUTER, OFF_OUTER + sizeof outer_code, OFF_INFO_OUTER};
    table[1] = (RUNTIME_FUNCTION){OFF_INNER, OFF_INNER + sizeof inner_code, OFF_INFO_INNER};
    if (!RtlAddFunctionTable(table, table_count, (DWORD64)jit)) {
        fprintf(stderr, "RtlAddFunctionTable failed\n");
        return 1;
    }
    FlushInstructionCache(GetCurrentProcess(), jit, JIT_SIZE);

    ready = CreateEventA(NULL, FALSE, FALSE, NULL);
    done = CreateEventA(NULL, FALSE, FALSE, NULL);
    HANDLE th = CreateThread(NULL, 0, dumper, NULL, 0, NULL);
    if (ready == NULL || done == NULL || th == NULL) {
        fprintf(stderr, "CreateEvent/CreateThread: %lu\n", GetLastError());
        return 1;
    }
    char b1[20], b2[20];
    printf("jit %s %s\n", hex((uint64_t)jit, b1), hex(JIT_SIZE, b2));
    line2("fn", "jit_outer", (uint64_t)(jit + OFF_OUTER));
    line2("fn", "jit_inner", (uint64_t)(jit + OFF_INNER));
    line2("fn", "callback", (uint64_t)callback);
    line2("fn", "main", (uint64_t)main);
    printf("tid %lu\n", GetCurrentThreadId());
    fflush(stdout);

    ((void (*)(void (*)(void)))(jit + OFF_OUTER))(callback);

    WaitForSingleObject(th, INFINITE);
    printf("done\n");
    fflush(stdout);
    return 0;
}
