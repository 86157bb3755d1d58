/*
 * staleframe.c: a Linux x86-64 program, built without frame pointers,
 * whose main thread blocks in main -> f1 -> f2 -> f3 with rbp pointing at
 * zeros on the stack: rbp is a general register here, and what it points
 * at is no frame record. A frame-pointer guess reads a return address of
 * 0 through it; the return addresses are on the stack all the same.
 *
 * It writes its function addresses, its thread and the ready line:
 *
 *   fn f1 0x<addr>
 *   fn f2 0x<addr>
 *   fn f3 0x<addr>
 *   fn main 0x<addr>
 *   thread <tid> main
 *   ready <pid>
 *
 * then f3 loops on a raw pause system call, with rbp set to the address
 * of a zeroed local array.
 *
 * Build: gcc -O2 -g -fomit-frame-pointer -o staleframe staleframe.c
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>

#define NOIPA __attribute__((noipa))

NOIPA void f3(void) {
    volatile uint64_t zeros[4] = {0, 0, 0, 0};
    printf("thread %ld main\nready %d\n", (long)syscall(SYS_gettid), (int)getpid());
    fflush(stdout);
    for (;;) {
        __asm__ volatile("mov %0, %%rbp\n\tmov %1, %%eax\n\tsyscall"
                         :
                         : "r"(zeros), "i"(SYS_pause)
                         : "rbp", "rax", "rcx", "r11", "memory");
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

int main(void) {
    printf("fn f1 %p\nfn f2 %p\nfn f3 %p\nfn main %p\n", (void *)f1, (void *)f2, (void *)f3, (void *)main);
    f1();
    return 0;
}
