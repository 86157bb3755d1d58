// The C side of jitgenprog: the thread that enters the generated chain.
#define _GNU_SOURCE
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "cthread.h"

// jitfn is the type of the generated functions: they follow the Microsoft
// x64 calling convention, so GCC reserves the 32-byte home area above the
// return address and treats rsi, rdi and xmm6-xmm15 as callee-saved.
typedef long(__attribute__((ms_abi)) * jitfn)(long);

struct start {
	uintptr_t entry;
	char name[16];
	sem_t started;
	int tid;
};

// jitgen_thread_main runs on the new thread: it names the thread, reports
// its ID, and calls the first generated function, which never returns.
__attribute__((noinline)) void *jitgen_thread_main(void *p) {
	struct start *s = p;
	volatile long r;
	jitfn entry = (jitfn)s->entry;
	pthread_setname_np(pthread_self(), s->name);
	s->tid = gettid();
	sem_post(&s->started);
	// s belongs to the starter from here on.
	r = entry(0);
	return (void *)r;
}

int start_jitgen_thread(uintptr_t entry, size_t stack_size, const char *name) {
	struct start s;
	pthread_attr_t attr;
	pthread_t pt;
	memset(&s, 0, sizeof s);
	s.entry = entry;
	strncpy(s.name, name, sizeof s.name - 1);
	sem_init(&s.started, 0, 0);
	pthread_attr_init(&attr);
	if (pthread_attr_setstacksize(&attr, stack_size) != 0 || pthread_create(&pt, &attr, jitgen_thread_main, &s) != 0) {
		pthread_attr_destroy(&attr);
		return -1;
	}
	pthread_attr_destroy(&attr);
	while (sem_wait(&s.started) != 0) {
	}
	sem_destroy(&s.started);
	return s.tid;
}
