// threads.c is the child process of target/live's tests. The tests build
// it with: gcc -O1 -g -fno-omit-frame-pointer -pthread -o threads threads.c
//
// Usage: threads N [churn]
//
// It starts N threads named "worker-I", each blocked reading its own pipe,
// and a thread named "deep" that calls deep() 64 times recursively (with
// frame pointers) and blocks in a read system call made from the
// innermost frame. It prints one line per thread,
//
//	thread TID STACKLO STACKHI NAME
//
// then "ready", and then serves its standard input line by line:
//
//	ping    prints "pong"
//	exit I  makes worker I return, joins it, prints "exited I"
//
// At the end of its input it exits with status 0. With "churn" a further
// thread creates and joins short-lived threads without end.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { DEPTH = 64 };

static pthread_barrier_t barrier;
static int deepfd[2];

static void report(const char *name) {
	pthread_attr_t a;
	void *lo = 0;
	size_t size = 0;
	if (pthread_getattr_np(pthread_self(), &a) == 0) {
		pthread_attr_getstack(&a, &lo, &size);
		pthread_attr_destroy(&a);
	}
	flockfile(stdout);
	printf("thread %ld %p %p %s\n", (long)syscall(SYS_gettid), lo, (char *)lo + size, name);
	funlockfile(stdout);
}

struct worker {
	pthread_t th;
	int fd[2];
	int i;
};

static void *work(void *arg) {
	struct worker *w = arg;
	char name[16];
	snprintf(name, sizeof name, "worker-%d", w->i);
	pthread_setname_np(pthread_self(), name);
	report(name);
	pthread_barrier_wait(&barrier);
	char c;
	while (read(w->fd[0], &c, 1) < 0) {
	}
	return NULL;
}

// deep recurses n times, then blocks in read(2) made directly, so that
// RBP still points at the innermost frame while the thread waits.
__attribute__((noinline)) static long deep(int n) {
	volatile char pad[48];
	pad[0] = (char)n;
	if (n > 1)
		return deep(n - 1) + pad[0];
	pthread_barrier_wait(&barrier);
	char c;
	long ret;
	do {
		__asm__ volatile("syscall" : "=a"(ret) : "a"((long)SYS_read), "D"((long)deepfd[0]), "S"(&c), "d"(1L) : "rcx", "r11", "memory");
	} while (ret < 0);
	return ret + pad[0];
}

static void *deepmain(void *arg) {
	(void)arg;
	pthread_setname_np(pthread_self(), "deep");
	report("deep");
	return (void *)deep(DEPTH);
}

static void *nothing(void *arg) { return arg; }

static void *churn(void *arg) {
	(void)arg;
	pthread_setname_np(pthread_self(), "churn");
	pthread_barrier_wait(&barrier);
	for (;;) {
		pthread_t t;
		if (pthread_create(&t, NULL, nothing, NULL) == 0)
			pthread_join(t, NULL);
	}
	return NULL;
}

int main(int argc, char **argv) {
	int n = argc > 1 ? atoi(argv[1]) : 4;
	int churning = argc > 2 && strcmp(argv[2], "churn") == 0;
	struct worker *ws = calloc(n, sizeof *ws);
	pthread_t d, c;
	if (pipe(deepfd) != 0)
		return 1;
	pthread_barrier_init(&barrier, NULL, n + 2 + churning);
	for (int i = 0; i < n; i++) {
		ws[i].i = i;
		if (pipe(ws[i].fd) != 0 || pthread_create(&ws[i].th, NULL, work, &ws[i]) != 0)
			return 1;
	}
	if (pthread_create(&d, NULL, deepmain, NULL) != 0)
		return 1;
	if (churning && pthread_create(&c, NULL, churn, NULL) != 0)
		return 1;
	report("main");
	pthread_barrier_wait(&barrier);
	printf("ready\n");
	fflush(stdout);
	char line[64];
	while (fgets(line, sizeof line, stdin)) {
		int i;
		if (strncmp(line, "ping", 4) == 0) {
			printf("pong\n");
		} else if (sscanf(line, "exit %d", &i) == 1 && i >= 0 && i < n) {
			write(ws[i].fd[1], "x", 1);
			pthread_join(ws[i].th, NULL);
			printf("exited %d\n", i);
		}
		fflush(stdout);
	}
	return 0;
}
