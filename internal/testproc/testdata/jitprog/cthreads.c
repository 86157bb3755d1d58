// The C side of jitprog: threads that enter generated code, and the C
// function generated code calls back into.
#define _GNU_SOURCE
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "cthreads.h"

struct start {
	uintptr_t entry;
	long arg;
	char name[16];
	sem_t started;
	int tid;
};

// c_block is called by generated code: it blocks for ever reading fd, a
// pipe nobody writes to.
__attribute__((noinline)) long c_block(long fd) {
	volatile long n = 0;
	char c;
	for (;;) {
		n += read((int)fd, &c, 1);
	}
	return n;
}

// jit_thread_main runs on the new thread: it names the thread, reports its
// ID, and calls the generated code, which never returns.
__attribute__((noinline)) static void *jit_thread_main(void *p) {
	struct start *s = p;
	volatile long r;
	uintptr_t entry = s->entry;
	long arg = s->arg;
	pthread_setname_np(pthread_self(), s->name);
	s->tid = gettid();
	sem_post(&s->started);
	// s belongs to the starter from here on.
	r = ((long (*)(long))entry)(arg);
	return (void *)r;
}

int start_jit_thread(uintptr_t entry, long arg, const char *name) {
	struct start s;
	pthread_t pt;
	memset(&s, 0, sizeof s);
	s.entry = entry;
	s.arg = arg;
	strncpy(s.name, name, sizeof s.name - 1);
	sem_init(&s.started, 0, 0);
	if (pthread_create(&pt, NULL, jit_thread_main, &s) != 0) {
		return -1;
	}
	while (sem_wait(&s.started) != 0) {
	}
	sem_destroy(&s.started);
	return s.tid;
}

uintptr_t c_block_addr(void) { return (uintptr_t)c_block; }
