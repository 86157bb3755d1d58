/* A provider library for the tests of package provider, built at test
 * time with
 *
 *   cc -shared -fPIC -O1 -I../libfntable/include -o provider.so testdata/provider.c
 *
 * (and with -DNO_EXPORT for a library without the export). It reads the
 * table's record from the target with process_vm_readv, follows its
 * Context to a test_meta block, and does what its mode says: answer with
 * the entries that follow it (well-formed or hostile), or crash, hang or
 * exit. Its constructor appends a line to the file named by
 * FNTABLE_TEST_PROVIDER_MARKER, so that a test can tell whether it was
 * loaded at all.
 *
 * When the marker file is set, every array it returns is ARRAY_MIN bytes, more than glibc's largest
 * mmap threshold (32 MiB) and than an arena's heap (64 MiB), so each array
 * is a mapping of its own (untouched pages past the entries cost nothing)
 * that free unmaps: the marker file gets "array ADDRESS", and a test
 * checks in /proc/self/maps that the caller freed it. A later mapping
 * that reuses the hole is placed at its top end, so the array's start
 * stays unmapped unless it is 64 MiB or more.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fntable.h"

enum {
    MODE_ANSWER = 0, /* *Functions = malloc'ed copy of the n entries, *Entries = count, return status */
    MODE_NULL = 1,   /* *Functions = NULL, *Entries = count, return status */
    MODE_SEGV = 2,   /* write through a NULL pointer */
    MODE_HANG = 3,   /* fork a child that also hangs, write its pid to the marker file, sleep for ever */
    MODE_EXIT = 4,   /* exit(status) */
    MODE_PRINT = 5,  /* print to stdout, then as MODE_ANSWER */
};

/* What the record's Context points to, in the target. */
struct test_meta {
    uint32_t mode;
    uint32_t status;
    uint32_t count;
    uint32_t n; /* entries that follow */
    RUNTIME_FUNCTION entries[];
};

#define MAX_TEST_ENTRIES 4096
#define ARRAY_MIN (65 << 20)

static void mark(const char *what) {
    const char *path = getenv("FNTABLE_TEST_PROVIDER_MARKER");
    if (path == NULL || *path == '\0') {
        return;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        return;
    }
    if (write(fd, what, strlen(what)) < 0) {
        /* nothing to do */
    }
    close(fd);
}

__attribute__((constructor)) static void loaded(void) {
    mark("loaded\n");
}

#ifndef NO_EXPORT
static int readTarget(pid_t pid, uint64_t addr, void *buf, size_t n) {
    struct iovec local = {buf, n};
    struct iovec remote = {(void *)(uintptr_t)addr, n};
    return process_vm_readv(pid, &local, 1, &remote, 1, 0) == (ssize_t)n ? 0 : -1;
}

__attribute__((visibility("default"))) DWORD OutOfProcessFunctionTableCallback(intptr_t Process, PVOID TableAddress,
                                                                               PDWORD Entries,
                                                                               PRUNTIME_FUNCTION *Functions) {
    FNTABLE_DYNAMIC_FUNCTION_TABLE rec;
    struct test_meta meta;
    if (readTarget((pid_t)Process, (uint64_t)(uintptr_t)TableAddress, &rec, sizeof rec) != 0 ||
        readTarget((pid_t)Process, rec.Context, &meta, sizeof meta) != 0) {
        return 0xC0000001; /* STATUS_UNSUCCESSFUL */
    }
    switch (meta.mode) {
    case MODE_NULL:
        *Entries = meta.count;
        *Functions = NULL;
        return meta.status;
    case MODE_SEGV:
        *(volatile int *)0 = 0;
        return 0;
    case MODE_HANG: {
        pid_t child = fork();
        if (child == 0) {
            for (;;) {
                pause();
            }
        }
        char line[64];
        snprintf(line, sizeof line, "child %d\n", (int)child);
        mark(line);
        for (;;) {
            pause();
        }
    }
    case MODE_EXIT:
        exit((int)meta.status);
    case MODE_PRINT:
        printf("a provider that prints to stdout\n");
        fflush(stdout);
        /* fall through */
    case MODE_ANSWER: {
        if (meta.n > MAX_TEST_ENTRIES) {
            return 0xC000000D; /* STATUS_INVALID_PARAMETER */
        }
        const char *marker = getenv("FNTABLE_TEST_PROVIDER_MARKER");
        int marking = marker != NULL && *marker != '\0';
        RUNTIME_FUNCTION *a = malloc(marking ? ARRAY_MIN : (meta.n + 1) * sizeof *a);
        if (a == NULL) {
            return 0xC0000017; /* STATUS_NO_MEMORY */
        }
        char line[64];
        snprintf(line, sizeof line, "array %#lx\n", (unsigned long)(uintptr_t)a);
        mark(line);
        if (meta.n > 0 &&
            readTarget((pid_t)Process, rec.Context + sizeof meta, a, meta.n * sizeof *a) != 0) {
            free(a);
            return 0xC0000001;
        }
        *Entries = meta.count;
        *Functions = a;
        return meta.status;
    }
    }
    return 0xC0000002; /* STATUS_NOT_IMPLEMENTED */
}
#endif
