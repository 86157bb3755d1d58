/* timing.h: the clock and the median shared by the Wine-side benchmarks. */
#ifndef FNTABLE_BENCH_TIMING_H
#define FNTABLE_BENCH_TIMING_H
#include <windows.h>
#include <stdlib.h>

static LARGE_INTEGER freq; /* set with QueryPerformanceFrequency in main */
static volatile DWORD64 sink;

static double now_ns(void)
{
    LARGE_INTEGER t;
    QueryPerformanceCounter(&t);
    return (double)t.QuadPart * 1e9 / (double)freq.QuadPart;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* median sorts v in place. */
static double median(double *v, int n)
{
    qsort(v, n, sizeof *v, cmpd);
    return n & 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}
#endif
