/*
 * threads.c: a process whose threads sit at known depths in known
 * functions, blocked in system calls, for stack walkers to walk from outside.
 *
 * Usage: threads [-n threads] [-d depth] [-s] [-T seconds]
 *
 *   -n N  extra threads besides main (default 4)
 *   -d D  recursion depth of every thread (default 8)
 *   -s    one more thread that blocks inside a signal handler running on a
 *         sigaltstack
 *   -T S  exit after S seconds (alarm), so that a forgotten process does not
 *         live for ever (default 600; 0: never)
 *
 * Every thread, main included, recurses through f1 -> f2 -> f3 -> f1 ...
 * until D frames of them are on its stack (the outermost is f1, the frame
 * at recursion level i, counted from 0 at the outside, is f(i%3+1)), then
 * calls park, which blocks in a system call that depends on the thread:
 * worker i waits in nanosleep, read (of a pipe nobody writes), condwait
 * (pthread_cond_wait), pause or futex (a raw FUTEX_WAIT), by i modulo 5, and
 * main waits in poll. The sigalt thread recurses D frames, then sends itself
 * SIGUSR1 with pthread_kill; its handler, on_signal, runs on the alternate
 * stack and calls sig_f1 -> sig_f2 -> park, which reads a pipe.
 *
 * When every thread is blocked in its system call (main checks
 * /proc/self/task/TID/syscall), main writes one line per thread and then
 * the ready line, and flushes:
 *
 *   thread <tid> <name> depth <D> wait <kind> [altstack <lo>-<hi>]
 *   ready <pid>
 *
 * name is the thread's name (pthread_setname_np): "main", "worker-<i>" or
 * "sigalt"; kind is the blocking call; altstack is the sigalt thread's
 * alternate signal stack [lo, hi) in hex.
 *
 * Frames survive -O2: the functions are noipa (no inlining, cloning or
 * interprocedural assumptions) and each uses a volatile local after its
 * call, so no call is a tail call.
 *
 * Build: gcc -g -pthread -O2 [-fomit-frame-pointer|-fno-omit-frame-pointer]
 *        -o threads threads.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define NOIPA __attribute__((noipa))

enum wait_kind { W_NANOSLEEP, W_READ, W_CONDWAIT, W_PAUSE, W_FUTEX, W_POLL, W_SIGALT };

static const char *const wait_names[] = {"nanosleep", "read", "condwait", "pause", "futex", "poll", "read"};

struct thr {
    pthread_t pt;
    pid_t tid;
    char name[16];
    enum wait_kind kind;
    int depth;
    uintptr_t alt_lo, alt_hi; /* sigalt thread: its alternate stack */
};

static struct thr *thrs;   /* thrs[0] is main, then the workers, then sigalt */
static int nthr;
static atomic_int parked; /* threads that reached park */
static int never_pipe[2]; /* nobody writes to it */
static pthread_mutex_t cond_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static uint32_t futex_word;
static struct thr *sigalt_thr;

static void announce(void);

/* park blocks t for ever in its system call. For main, it first waits until
 * every other thread is blocked and announces them. */
NOIPA int park(struct thr *t) {
    volatile int spins = 0;
    char c;
    if (t->kind == W_POLL) {
        announce();
    } else {
        atomic_fetch_add(&parked, 1);
    }
    for (;;) {
        switch (t->kind) {
        case W_NANOSLEEP: {
            struct timespec ts = {3600, 0};
            nanosleep(&ts, NULL);
            break;
        }
        case W_READ:
        case W_SIGALT:
            if (read(never_pipe[0], &c, 1) == 0) {
                pause(); /* the write end is open: not reached */
            }
            break;
        case W_CONDWAIT:
            pthread_mutex_lock(&cond_mu);
            pthread_cond_wait(&cond, &cond_mu);
            pthread_mutex_unlock(&cond_mu);
            break;
        case W_PAUSE:
            pause();
            break;
        case W_FUTEX:
            syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
            break;
        case W_POLL:
            poll(NULL, 0, -1);
            break;
        }
        spins++;
    }
    return spins;
}

NOIPA int f2(struct thr *t, int d);
NOIPA int f3(struct thr *t, int d);
NOIPA int sigalt_park(struct thr *t);

/* BOTTOM is where a thread's recursion ends: park, or for the sigalt
 * thread, sigalt_park. It is a macro, not an inline function, so that
 * debuggers show no inline frame for it. */
#define BOTTOM(t) ((t)->kind == W_SIGALT ? sigalt_park(t) : park(t))

NOIPA int f1(struct thr *t, int d) {
    volatile int local = d;
    int r = d > 1 ? f2(t, d - 1) : BOTTOM(t);
    return r + local;
}

NOIPA int f2(struct thr *t, int d) {
    volatile int local = d * 2;
    int r = d > 1 ? f3(t, d - 1) : BOTTOM(t);
    return r + local;
}

NOIPA int f3(struct thr *t, int d) {
    volatile int local = d * 3;
    int r = d > 1 ? f1(t, d - 1) : BOTTOM(t);
    return r + local;
}

NOIPA int sig_f2(struct thr *t) {
    volatile int local = 2;
    int r = park(t);
    return r + local;
}

NOIPA int sig_f1(struct thr *t) {
    volatile int local = 1;
    int r = sig_f2(t);
    return r + local;
}

NOIPA void on_signal(int sig) {
    volatile int local = sig;
    sig_f1(sigalt_thr);
    local++;
}

/* sigalt_park is where the sigalt thread's recursion ends: it raises the
 * signal whose handler parks. */
NOIPA int sigalt_park(struct thr *t) {
    volatile int local = 0;
    pthread_kill(pthread_self(), SIGUSR1);
    return local + t->depth;
}

NOIPA void *thread_main(void *arg) {
    struct thr *t = arg;
    volatile int local = 0;
    t->tid = gettid();
    pthread_setname_np(pthread_self(), t->name);
    if (t->kind == W_SIGALT) {
        size_t size = 1 << 16;
        stack_t ss = {.ss_sp = malloc(size), .ss_size = size};
        if (ss.ss_sp == NULL || sigaltstack(&ss, NULL) != 0) {
            perror("sigaltstack");
            exit(1);
        }
        t->alt_lo = (uintptr_t)ss.ss_sp;
        t->alt_hi = t->alt_lo + size;
    }
    local = f1(t, t->depth);
    return (void *)(intptr_t)local;
}

/* blocked reports whether thread tid is blocked in a system call: its state
 * is S and /proc/self/task/TID/syscall gives a syscall number. */
static int blocked(pid_t tid) {
    char path[64], buf[256];
    FILE *f;
    int ok = 0;
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
    if ((f = fopen(path, "r")) != NULL) {
        if (fgets(buf, sizeof buf, f) != NULL) {
            char *p = strrchr(buf, ')');
            ok = p != NULL && p[1] == ' ' && p[2] == 'S';
        }
        fclose(f);
    }
    if (!ok) {
        return 0;
    }
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", tid);
    ok = 0;
    if ((f = fopen(path, "r")) != NULL) {
        if (fgets(buf, sizeof buf, f) != NULL) {
            ok = buf[0] >= '0' && buf[0] <= '9';
        }
        fclose(f);
    }
    return ok;
}

static void announce(void) {
    struct timespec ts = {0, 1000000};
    while (atomic_load(&parked) < nthr - 1) {
        nanosleep(&ts, NULL);
    }
    for (int i = 1; i < nthr; i++) {
        while (!blocked(thrs[i].tid)) {
            nanosleep(&ts, NULL);
        }
    }
    for (int i = 0; i < nthr; i++) {
        struct thr *t = &thrs[i];
        printf("thread %d %s depth %d wait %s", t->tid, t->name, t->depth, wait_names[t->kind]);
        if (t->kind == W_SIGALT) {
            printf(" altstack %#lx-%#lx", (unsigned long)t->alt_lo, (unsigned long)t->alt_hi);
        }
        printf("\n");
    }
    printf("ready %d\n", getpid());
    fflush(stdout);
}

static void usage(void) {
    fprintf(stderr, "usage: threads [-n threads] [-d depth] [-s] [-T seconds]\n");
    exit(2);
}

int main(int argc, char **argv) {
    int n = 4, depth = 8, sigalt = 0, lifetime = 600, opt;
    while ((opt = getopt(argc, argv, "n:d:sT:")) != -1) {
        switch (opt) {
        case 'n':
            n = atoi(optarg);
            break;
        case 'd':
            depth = atoi(optarg);
            break;
        case 's':
            sigalt = 1;
            break;
        case 'T':
            lifetime = atoi(optarg);
            break;
        default:
            usage();
        }
    }
    if (optind != argc || n < 0 || n > 1000 || depth < 1 || depth > 100000 || lifetime < 0) {
        usage();
    }
    if (lifetime > 0) {
        alarm(lifetime);
    }
    if (pipe(never_pipe) != 0) {
        perror("pipe");
        return 1;
    }
    nthr = 1 + n + sigalt;
    thrs = calloc(nthr, sizeof *thrs);
    if (thrs == NULL) {
        perror("calloc");
        return 1;
    }
    thrs[0].tid = gettid();
    thrs[0].kind = W_POLL;
    thrs[0].depth = depth;
    strcpy(thrs[0].name, "main");
    pthread_setname_np(pthread_self(), "main");
    for (int i = 1; i < nthr; i++) {
        struct thr *t = &thrs[i];
        t->depth = depth;
        if (sigalt && i == nthr - 1) {
            t->kind = W_SIGALT;
            strcpy(t->name, "sigalt");
            sigalt_thr = t;
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = on_signal;
            sa.sa_flags = SA_ONSTACK;
            sigemptyset(&sa.sa_mask);
            if (sigaction(SIGUSR1, &sa, NULL) != 0) {
                perror("sigaction");
                return 1;
            }
        } else {
            t->kind = (enum wait_kind)((i - 1) % 5);
            snprintf(t->name, sizeof t->name, "worker-%u", (unsigned short)(i - 1));
        }
        int err = pthread_create(&t->pt, NULL, thread_main, t);
        if (err != 0) {
            fprintf(stderr, "pthread_create: %s\n", strerror(err));
            return 1;
        }
    }
    return f1(&thrs[0], depth) == 0;
}
