/*
 * winsleep.c: a Windows x86-64 program whose two threads block in Sleep,
 * each in f1 -> f2 -> f3, for stack walkers that walk Wine processes from
 * Linux: under Wine a thread blocked in a Windows API call waits in the
 * Unix side of ntdll, below Wine's system-call dispatcher, which switches
 * from the thread's Unix stack back to its Windows stack.
 *
 * main starts a worker thread that calls f1, which calls f2, which calls
 * f3, which signals an event and sleeps for ever. When the event is set,
 * main writes the addresses of its functions and the ready line, flushes,
 * and calls f1 itself:
 *
 *   fn f1 <addr>
 *   fn f2 <addr>
 *   fn f3 <addr>
 *   fn worker <addr>
 *   fn main <addr>
 *   ready
 *
 * The functions are noipa and use a volatile local after their call, so
 * each keeps its frame and its call is not a tail call; the frames are
 * described by the .pdata and .xdata that MinGW-w64 emits.
 *
 * Build: x86_64-w64-mingw32-gcc -O2 -g -o winsleep.exe winsleep.c
 */
#include <windows.h>
#include <stdint.h>
#include <stdio.h>

#define NOIPA __attribute__((noipa))

NOIPA void f3(HANDLE started) {
    if (started != NULL) {
        SetEvent(started);
    }
    for (;;) {
        Sleep(100000);
    }
}

NOIPA void f2(HANDLE started) {
    volatile int local = 2;
    f3(started);
    local++;
}

NOIPA void f1(HANDLE started) {
    volatile int local = 1;
    f2(started);
    local++;
}

NOIPA DWORD WINAPI worker(LPVOID started) {
    volatile int local = 0;
    f1((HANDLE)started);
    local++;
    return 0;
}

/* announce writes "fn name 0x<addr>", formatting the address itself: the
 * C runtime's %p has no 0x and its %llx support varies. */
static void announce(const char *name, void *fn) {
    uintptr_t a = (uintptr_t)fn;
    char hex[2 * sizeof a + 1];
    int i = (int)sizeof hex - 1;
    hex[i] = 0;
    do {
        hex[--i] = "0123456789abcdef"[a & 15];
        a >>= 4;
    } while (a != 0);
    printf("fn %s 0x%s\n", name, hex + i);
}

int main(void) {
    HANDLE started = CreateEventA(NULL, TRUE, FALSE, NULL);
    if (started == NULL || CreateThread(NULL, 0, worker, started, 0, NULL) == NULL) {
        printf("error %lu\n", GetLastError());
        return 1;
    }
    WaitForSingleObject(started, INFINITE);
    announce("f1", (void *)f1);
    announce("f2", (void *)f2);
    announce("f3", (void *)f3);
    announce("worker", (void *)worker);
    announce("main", (void *)main);
    printf("ready\n");
    fflush(stdout);
    f1(NULL);
    return 0;
}
