/*
 * winspin.c: a Windows x86-64 program that spins for ever in
 * main -> f1 -> f2 -> f3, for stack walkers that walk Wine processes from
 * Linux.
 *
 * It writes the addresses of its functions and then the ready line, and
 * flushes:
 *
 *   fn f1 <addr>
 *   fn f2 <addr>
 *   fn f3 <addr>
 *   fn main <addr>
 *   ready
 *
 * then calls f1, which calls f2, which calls f3, which increments a volatile
 * counter for ever. The functions are noipa and use a volatile local after
 * their call, so each keeps its frame and its call is not a tail call; the
 * frames are described by the .pdata and .xdata that MinGW-w64 emits.
 *
 * Build: x86_64-w64-mingw32-gcc -O2 -g -o winspin.exe winspin.c
 */
#include <stdint.h>
#include <stdio.h>

#define NOIPA __attribute__((noipa))

volatile unsigned long long counter;

NOIPA void f3(void) {
    for (;;) {
        counter++;
    }
}

NOIPA void f2(void) {
    volatile int local = 2;
    f3();
    local++;
}

NOIPA void f1(void) {
    volatile int local = 1;
    f2();
    local++;
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
    announce("f1", (void *)f1);
    announce("f2", (void *)f2);
    announce("f3", (void *)f3);
    announce("main", (void *)main);
    printf("ready\n");
    fflush(stdout);
    f1();
    return 0;
}
