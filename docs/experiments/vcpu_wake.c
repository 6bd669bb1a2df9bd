// What a hand-over between threads costs on this VM (ARCHITECTURE.md, "What a sleeping
// hand-over costs here", session 13). Not built by the workspace; a throwaway kept so the
// figures can be re-run:
//
//   gcc -O2 -pthread -o /tmp/vcpu_wake docs/experiments/vcpu_wake.c && /tmp/vcpu_wake
//
// Prints, over 2,000 hand-overs each, the time from a store on CPU 1 to the moment a thread
// pinned to CPU 0 sees it:
//   futex, idle     - the thread sleeps on a futex and CPU 0 has nothing else to run;
//   futex, busy     - the same, with a SCHED_IDLE thread spinning on CPU 0;
//   spin            - the thread spins on the word instead of sleeping;
// then how late a timed sleep of 100 us ends (default timer slack, then 1 ns), and what a
// switch between two threads on one CPU costs (`sched_yield` ping-pong, counted by the
// other thread's loops).
#define _GNU_SOURCE
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define N 2000
static atomic_int word, stop;
static _Atomic uint64_t sent;
static double lat[N];
static int mode; // 0 futex, 1 spin

static uint64_t ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}
static void pin(int cpu) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}
static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static void report(const char *what, double *v, int n) {
    qsort(v, n, sizeof *v, cmp);
    printf("%-34s p50 %7.1f us  p90 %7.1f  p99 %7.1f\n", what, v[n / 2], v[n * 9 / 10], v[n * 99 / 100]);
}
static void *receiver(void *arg) {
    (void)arg;
    pin(0);
    for (int i = 0; i < N; i++) {
        while (atomic_load(&word) == 0)
            if (mode == 0) syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
        lat[i] = (double)(ns() - atomic_load(&sent)) / 1e3;
        atomic_store(&word, 0);
    }
    return NULL;
}
static void *burner(void *arg) {
    (void)arg;
    pin(0);
    struct sched_param p = {0};
    pthread_setschedparam(pthread_self(), SCHED_IDLE, &p);
    while (!atomic_load(&stop)) __builtin_ia32_pause();
    return NULL;
}
static void handovers(const char *what, int m, int busy) {
    pthread_t r, b;
    mode = m;
    atomic_store(&stop, 0);
    if (busy) pthread_create(&b, NULL, burner, NULL);
    pthread_create(&r, NULL, receiver, NULL);
    pin(1);
    for (int i = 0; i < N; i++) {
        struct timespec d = {0, 300000 + rand() % 700000};
        nanosleep(&d, NULL);
        while (atomic_load(&word) != 0) {}
        atomic_store(&sent, ns());
        atomic_store(&word, 1);
        if (m == 0) syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    }
    pthread_join(r, NULL);
    atomic_store(&stop, 1);
    if (busy) pthread_join(b, NULL);
    report(what, lat, N);
}
static atomic_long yields;
static void *yielder(void *arg) {
    (void)arg;
    pin(0);
    while (!atomic_load(&stop)) {
        sched_yield();
        atomic_fetch_add(&yields, 1);
    }
    return NULL;
}
int main(void) {
    handovers("futex, idle target CPU", 0, 0);
    handovers("futex, busy target CPU", 0, 1);
    handovers("spin", 1, 0);
    for (int slack = 0; slack < 2; slack++) {
        if (slack) prctl(PR_SET_TIMERSLACK, 1);
        for (int i = 0; i < N; i++) {
            uint64_t t = ns();
            struct timespec d = {0, 100000};
            clock_nanosleep(CLOCK_MONOTONIC, 0, &d, NULL);
            lat[i] = (double)(ns() - t) / 1e3 - 100;
        }
        report(slack ? "100 us sleep, late by (1 ns slack)" : "100 us sleep, late by", lat, N);
    }
    pthread_t y;
    atomic_store(&stop, 0);
    pthread_create(&y, NULL, yielder, NULL);
    pin(0);
    while (atomic_load(&yields) == 0) sched_yield();
    long before = atomic_load(&yields);
    uint64_t t = ns();
    for (int i = 0; i < 100000; i++) sched_yield();
    uint64_t spent = ns() - t;
    long theirs = atomic_load(&yields) - before;
    atomic_store(&stop, 1);
    pthread_join(y, NULL);
    // Each of our yields that switched let the other thread run one loop: a switch there and
    // one back. Count the switches by the other thread's loops, not by our calls.
    printf("switch on one CPU                  %.2f us (%ld of 100000 yields switched)\n",
           theirs > 0 ? (double)spent / (2.0 * (double)theirs) / 1e3 : 0.0, theirs);
    return 0;
}
