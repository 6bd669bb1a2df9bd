// W1's shape without the engine: how close can one file come to a file per thread on this
// machine, whatever the engine does? (ARCHITECTURE.md, "An engine-free model of one file",
// session 12.) Not built by the workspace; a throwaway kept so the figures can be re-run:
//
//   gcc -O2 -pthread -o /tmp/model docs/experiments/one_file_model.c
//   /tmp/model DIR one|files THREADS COMMITS PASSES RULE [IOV_BYTES [ENCODE]]
//
// Each of THREADS threads makes COMMITS commits. A commit:
//   - with ENCODE=1, stores into a 270-page "value pool" (a write per 1 KiB, as inserts copy
//     values) and copies the pool into the thread's 270-page write buffer (as the engine
//     encodes its nodes);
//   - does PASSES quarter-passes of arithmetic over the write buffer (the rest of an insert's
//     CPU work; 5 with ENCODE=1 makes a commit at one thread about as long as W1's);
//   - writes the buffer with one call at the thread's next offset: `pwritev` of IOV_BYTES
//     pieces (16384: W1's 4-page leaves), or one `pwrite` without IOV_BYTES.
// One file: the threads take 64 MiB extents of one file in turn, `fallocate`d whole when
// taken, and write under one lock by RULE:
//   engine   - try; when taken, yield the core while at least 4 writers wait (up to 2 ms),
//              else sleep: `flush::FileBackend`'s rule;
//   mutex    - sleep at once;          none     - no lock (ext4's inode lock alone);
//   yieldall - yield from 1 waiter;    yield2   - yield from 2 waiters;
//   spinnext - the first waiter spins up to 2 ms, the others sleep;
//   relyield - as engine, and the releasing writer yields its core when writers wait;
//   early    - as engine, and after each pass the finished quarters of the buffer are
//              written at once if the lock is free (`trylock`), the rest at the end;
//   shortslice - as engine, and a writer about to sleep asks for a short scheduler slice
//              (`sched_setattr`, SHORT_NS nanoseconds, default 100000) until it has the
//              lock, so that its wake-up may preempt a working thread;
//   nudge    - as engine, and a releaser that leaves writers asleep raises a flag that the
//              next holder clears; working threads check it every 1,024 words of arithmetic
//              and yield their core while it is up, so that the woken one gets a core;
//   writer   - no writer writes: one more thread makes every write, in the order queued,
//              and a writer queues its buffer and goes on to its next commit, with NBUFS
//              buffers (env, default 2, at most 8) so that it waits only when all are
//              queued; IO_NICE (env) sets that thread's nice value (below 0 needs root).
//              The run ends when the queue is empty. (Session 13, the engine-free form of
//              session 6's flusher thread.)
//   predict  - try; when taken, estimate when this writer's turn comes (an average of recent
//              turns, how long the current one has run, the writers ahead by ticket) and
//              sleep on a timer (1 ns slack) until WAKE_NS (env, default 80000) before it,
//              then spin for the lock up to SPIN_MAX_NS (default 150000); four rounds of
//              that, then sleep on the lock. So a writer seldom waits for another's futex
//              wake-up across vCPUs (docs/experiments/vcpu_wake.c). (Session 13.)
//   predictmix - `engine`'s yielding while at least 4 writers wait in that rule (writers in
//              `predict` are not counted), else `predict`.
//   mapped   - try; when the lock is taken, do not wait: copy the buffer into a shared
//              mapping of the file (`MADV_HUGEPAGE`, so faults come 2 MiB at a time) instead
//              of writing it. (Session 14.)
//   mappedall - every commit copies into the mapping; no lock.
//   pinwait  - as engine, and a writer about to sleep on the lock first binds itself to the
//              CPU it is on (`sched_setaffinity`) and unbinds once it has the lock, so that
//              its wake-up cannot queue it behind a running thread on another CPU. (Session
//              14.)
//   awake    - as engine, and one `SCHED_IDLE` thread per CPU spins for the whole run, so
//              that no vCPU halts while the writers run (a woken writer preempts it at
//              once). (Session 14.)
// Any other RULE name sleeps at once, as `mutex`. Environment: NBUFS, IO_NICE (writer),
// WAKE_NS, SPIN_MAX_NS (predict), SHORT_NS (shortslice), FALLOC_UNLOCKED=1 (any rule: each
// extent's `fallocate` outside the lock; by default it takes the lock, as `FileBackend`'s
// `allocate` takes a write turn).
// A file per thread: each thread its own file, no lock.
// Prints one JSON line, as `bench` does (`ops_per_sec` counts 1,000 inserts a commit).
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define PAGES 270
#define BUF (PAGES * 4096)
#define EXT (64ull << 20)
#define MAX_THREADS 64

static int threads, commits, passes, one_file, iov_bytes, encode;
static const char *rule;
static int fds[MAX_THREADS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int queued;
static atomic_ullong next_extent, write_ns, done;
static double first_ten;
static atomic_int handoff;
static uint64_t short_ns = 100000;
// `writer` rule: one thread makes every write; workers queue (buffer, offset) and go on.
#define MAX_BUFS 8
static int nbufs = 2;
static sem_t free_bufs[MAX_THREADS];
struct job { char *buf; uint64_t off; int owner; };
static struct job jobs[MAX_THREADS * MAX_BUFS];
static int job_head, job_tail, stop_writer;
static pthread_mutex_t jobs_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t jobs_cond = PTHREAD_COND_INITIALIZER;
static int write_all(int fd, char *buf, uint64_t off);
#include <sys/mman.h>
// `awake`: a spinner per CPU at SCHED_IDLE until the writers are done.
static atomic_int spinners_stop;
static void *spinner(void *arg) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET((int)(intptr_t)arg, &one);
    if (sched_setaffinity(0, sizeof one, &one) != 0) perror("sched_setaffinity");
    struct sched_param sp = {0};
    if (sched_setscheduler(0, SCHED_IDLE, &sp) != 0) perror("sched_setscheduler");
    while (!atomic_load_explicit(&spinners_stop, memory_order_relaxed)) __builtin_ia32_pause();
    return NULL;
}
static char *map; // `mapped`, `mappedall`: the whole file, mapped shared
static atomic_ullong mapped_commits;
static int falloc_unlocked; // FALLOC_UNLOCKED=1: `fallocate` outside the lock
static void *io_thread(void *arg) {
    (void)arg;
    if (getenv("IO_NICE") && setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), atoi(getenv("IO_NICE"))) != 0) perror("setpriority");
    for (;;) {
        pthread_mutex_lock(&jobs_lock);
        while (job_head == job_tail && !stop_writer) pthread_cond_wait(&jobs_cond, &jobs_lock);
        if (job_head == job_tail) { pthread_mutex_unlock(&jobs_lock); return NULL; }
        struct job j = jobs[job_head % (MAX_THREADS * MAX_BUFS)];
        job_head++;
        pthread_mutex_unlock(&jobs_lock);
        if (write_all(fds[0], j.buf, j.off) != BUF) { perror("write"); exit(1); }
        sem_post(&free_bufs[j.owner]);
    }
}

// `sched_setattr` of the calling thread: SCHED_OTHER with this slice (0: the default).
struct slice_attr {
    uint32_t size, policy;
    uint64_t flags;
    int32_t nice;
    uint32_t priority;
    uint64_t runtime, deadline, period;
    uint32_t util_min, util_max;
};
static void set_slice(uint64_t ns) {
    struct slice_attr a = {.size = sizeof a, .runtime = ns};
    if (syscall(SYS_sched_setattr, 0, &a, 0) != 0) perror("sched_setattr");
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int write_all(int fd, char *buf, uint64_t off) {
    if (!iov_bytes) return (int)pwrite(fd, buf, BUF, off);
    struct iovec iov[PAGES];
    int k = 0;
    for (size_t o = 0; o < BUF; o += iov_bytes) {
        iov[k].iov_base = buf + o;
        iov[k].iov_len = BUF - o < (size_t)iov_bytes ? BUF - o : (size_t)iov_bytes;
        k++;
    }
    return (int)pwritev(fd, iov, k, off);
}

static int is(const char *r) { return strcmp(rule, r) == 0; }

// `predict`: an average of recent turns, when the current one began, and tickets for where a
// waiter stands; a waiter sleeps on a timer until shortly before its expected turn, then spins.
static atomic_ullong hold_avg_ns, turn_began_ns, tickets, served;
static uint64_t wake_ns = 80000, spin_max_ns = 150000;
static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
static void lock_predict(void) {
    if (pthread_mutex_trylock(&lock) == 0) goto got;
    uint64_t ticket = atomic_fetch_add(&tickets, 1);
    for (int round = 0; round < 4; round++) {
        uint64_t now_ns = mono_ns(), avg = atomic_load(&hold_avg_ns);
        uint64_t into = now_ns - atomic_load(&turn_began_ns);
        uint64_t left = avg > into ? avg - into : 0;
        uint64_t s = atomic_load(&served), ahead = ticket > s ? ticket - s : 0;
        uint64_t wait = left + ahead * avg;
        if (wait > wake_ns) {
            uint64_t d = wait - wake_ns;
            struct timespec ts = {(time_t)(d / 1000000000ull), (long)(d % 1000000000ull)};
            clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
        }
        uint64_t until = mono_ns() + spin_max_ns;
        while (mono_ns() < until) {
            if (pthread_mutex_trylock(&lock) == 0) goto got_ticket;
            for (int k = 0; k < 32; k++) __builtin_ia32_pause();
        }
    }
    pthread_mutex_lock(&lock);
got_ticket:
    // Only ticketed waiters count, so `ticket - served` is how many took a ticket earlier and
    // still wait (in number; the lock need not serve them in ticket order).
    atomic_fetch_add(&served, 1);
got:
    atomic_store(&turn_began_ns, mono_ns());
}
static void unlock_predict(void) {
    uint64_t held = mono_ns() - atomic_load(&turn_began_ns), avg = atomic_load(&hold_avg_ns);
    atomic_store(&hold_avg_ns, avg - avg / 8 + held / 8);
    pthread_mutex_unlock(&lock);
}

// Try; on contention yield while at least `min_queued` writers wait, for up to 2 ms, then sleep.
static void lock_yielding(int min_queued) {
    if (pthread_mutex_trylock(&lock) == 0) return;
    int q = atomic_fetch_add(&queued, 1) + 1;
    double give_up = now() + (q >= min_queued ? 0.002 : 0);
    for (;;) {
        if (now() >= give_up) {
            if (is("shortslice")) set_slice(short_ns);
            cpu_set_t all, one;
            int pin = is("pinwait");
            if (pin) {
                if (sched_getaffinity(0, sizeof all, &all) != 0) { perror("sched_getaffinity"); exit(1); }
                CPU_ZERO(&one);
                CPU_SET(sched_getcpu(), &one);
                if (sched_setaffinity(0, sizeof one, &one) != 0) perror("sched_setaffinity");
            }
            pthread_mutex_lock(&lock);
            if (pin && sched_setaffinity(0, sizeof all, &all) != 0) perror("sched_setaffinity");
            if (is("shortslice")) set_slice(0);
            break;
        }
        sched_yield();
        if (pthread_mutex_trylock(&lock) == 0) break;
    }
    atomic_fetch_sub(&queued, 1);
}

static void lock_spin_first(void) {
    if (pthread_mutex_trylock(&lock) == 0) return;
    int q = atomic_fetch_add(&queued, 1) + 1;
    int got = 0;
    if (q == 1) {
        double give_up = now() + 0.002;
        while (!got && now() < give_up) {
            got = pthread_mutex_trylock(&lock) == 0;
            for (int k = 0; k < 64 && !got; k++) __builtin_ia32_pause();
        }
    }
    if (!got) pthread_mutex_lock(&lock);
    atomic_fetch_sub(&queued, 1);
}

static void take_lock(void) {
    if (is("engine") || is("relyield") || is("early") || is("shortslice") || is("pinwait") || is("awake")) lock_yielding(4);
    else if (is("nudge")) { lock_yielding(4); atomic_store(&handoff, 0); }
    else if (is("yieldall")) lock_yielding(1);
    else if (is("yield2")) lock_yielding(2);
    else if (is("spinnext")) lock_spin_first();
    else if (is("predict")) lock_predict();
    else if (is("predictmix")) {
        // `engine`'s yielding while at least 4 writers wait in it (`queued` counts only those).
        if (atomic_load(&queued) + 1 >= 4) { lock_yielding(4); atomic_store(&turn_began_ns, mono_ns()); }
        else lock_predict();
    }
    else pthread_mutex_lock(&lock);
}

static void *writer(void *arg) {
    int id = (int)(intptr_t)arg;
    char *bufs[MAX_BUFS], *pool = aligned_alloc(4096, BUF);
    int nb = is("writer") ? nbufs : 1;
    for (int b = 0; b < nb; b++) { bufs[b] = aligned_alloc(4096, BUF); memset(bufs[b], id, BUF); }
    char *buf = bufs[0];
    memset(pool, id, BUF);
    uint64_t x = id + 1, extent = 0, used = EXT, extents = 0;
    int fd = one_file ? fds[0] : fds[id];
    int locked = one_file && !is("none") && !is("writer") && !is("mappedall");
    int mapping = one_file && (is("mapped") || is("mappedall"));
    if (is("predict") || is("predictmix")) prctl(PR_SET_TIMERSLACK, 1);
    for (int c = 0; c < commits; c++) {
        if (is("writer")) { sem_wait(&free_bufs[id]); buf = bufs[c % nb]; }
        if (encode) {
            uint64_t *p = (uint64_t *)pool;
            for (size_t i = 0; i < BUF / 8; i += 128) p[i] = x++;
            memcpy(buf, pool, BUF);
        }
        if (used + BUF > EXT) {
            extent = one_file ? atomic_fetch_add(&next_extent, 1) * EXT : extents++ * EXT;
            used = 0;
            int under = (locked || mapping) && !falloc_unlocked;
            if (under) pthread_mutex_lock(&lock);
            if (fallocate(fd, 0, extent, EXT) != 0) { perror("fallocate"); exit(1); }
            if (under) pthread_mutex_unlock(&lock);
        }
        // With `early`, a prefix of the buffer (whole quarters) may be written during the work.
        size_t written = 0, quarter = BUF / 4;
        uint64_t *w = (uint64_t *)buf;
        for (int p = 0; p < passes; p++) {
            for (size_t i = (size_t)(p % 4) * (BUF / 32); i < (size_t)(p % 4 + 1) * (BUF / 32); i++) {
                x = x * 6364136223846793005ull + 1442695040888963407ull;
                w[i] ^= x >> 7;
                if ((i & 1023) == 0 && atomic_load_explicit(&handoff, memory_order_relaxed)) sched_yield();
            }
            size_t ready = (size_t)(p + 1) * BUF / passes / quarter * quarter;
            if (locked && is("early") && ready > written && pthread_mutex_trylock(&lock) == 0) {
                ssize_t k = pwrite(fd, buf + written, ready - written, extent + used + written);
                pthread_mutex_unlock(&lock);
                if (k != (ssize_t)(ready - written)) { perror("write"); exit(1); }
                written = ready;
            }
        }
        int copy_in = mapping && (is("mappedall") || pthread_mutex_trylock(&lock) != 0);
        if (locked && !copy_in && !is("mapped")) take_lock();
        double t0 = now();
        ssize_t n;
        if (copy_in) {
            memcpy(map + extent + used, buf, BUF);
            atomic_fetch_add(&mapped_commits, 1);
            n = BUF;
        } else if (is("writer")) {
            pthread_mutex_lock(&jobs_lock);
            jobs[job_tail % (MAX_THREADS * MAX_BUFS)] = (struct job){buf, extent + used, id};
            job_tail++;
            pthread_cond_signal(&jobs_cond);
            pthread_mutex_unlock(&jobs_lock);
            n = BUF; // `write_us_per_commit` then counts the queueing only
        } else if (written) {
            n = pwrite(fd, buf + written, BUF - written, extent + used + written) + (ssize_t)written;
        } else {
            n = write_all(fd, buf, extent + used);
        }
        if (n != BUF) { perror("write"); exit(1); }
        atomic_fetch_add(&write_ns, (unsigned long long)((now() - t0) * 1e9));
        if (locked && !copy_in) {
            if (is("nudge") && atomic_load(&queued) > 0) atomic_store(&handoff, 1);
            if (is("predict") || is("predictmix")) {
                unlock_predict();
            } else {
                pthread_mutex_unlock(&lock);
            }
            if (is("relyield") && atomic_load(&queued) > 0) sched_yield();
        }
        used += BUF;
        if (atomic_fetch_add(&done, 1) + 1 == 10ull * threads) first_ten = now();
    }
    if (is("writer")) for (int b = 0; b < nb; b++) sem_wait(&free_bufs[id]);
    for (int b = 0; b < nb; b++) free(bufs[b]);
    free(pool);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: %s DIR one|files THREADS COMMITS PASSES RULE [IOV_BYTES [ENCODE]]\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    one_file = strcmp(argv[2], "one") == 0;
    threads = atoi(argv[3]);
    commits = atoi(argv[4]);
    passes = atoi(argv[5]);
    rule = argv[6];
    iov_bytes = argc > 7 ? atoi(argv[7]) : 0;
    encode = argc > 8 ? atoi(argv[8]) : 0;
    if (getenv("WAKE_NS")) wake_ns = strtoull(getenv("WAKE_NS"), NULL, 10);
    if (getenv("SPIN_MAX_NS")) spin_max_ns = strtoull(getenv("SPIN_MAX_NS"), NULL, 10);
    falloc_unlocked = getenv("FALLOC_UNLOCKED") && atoi(getenv("FALLOC_UNLOCKED"));
    if (getenv("SHORT_NS")) short_ns = strtoull(getenv("SHORT_NS"), NULL, 10);
    if (threads < 1 || threads > MAX_THREADS || commits < 11 || iov_bytes < 0 ||
        (iov_bytes && iov_bytes % 4096)) {
        fprintf(stderr, "threads 1-%d, commits > 10, IOV_BYTES a multiple of 4096\n", MAX_THREADS);
        return 2;
    }
    int files = one_file ? 1 : threads;
    char path[4096];
    for (int i = 0; i < files; i++) {
        snprintf(path, sizeof path, "%s/model-%d", dir, i);
        fds[i] = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
        if (fds[i] < 0) { perror(path); return 1; }
    }
    if (one_file && (is("mapped") || is("mappedall"))) {
        // Each thread's commits fill whole extents of EXT / BUF commits each.
        size_t per = EXT / BUF, len = (size_t)threads * ((commits + per - 1) / per) * EXT;
        map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
        if (map == MAP_FAILED) { perror("mmap"); return 1; }
        if (madvise(map, len, MADV_HUGEPAGE) != 0) { perror("madvise"); return 1; }
    }
    pthread_t th[MAX_THREADS];
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    double t0 = now();
    pthread_t io;
    if (is("writer")) {
        if (!one_file) { fprintf(stderr, "writer is a one-file rule\n"); return 2; }
        if (getenv("NBUFS")) nbufs = atoi(getenv("NBUFS"));
        if (nbufs < 1 || nbufs > MAX_BUFS) { fprintf(stderr, "NBUFS 1-%d\n", MAX_BUFS); return 2; }
        for (int i = 0; i < threads; i++) sem_init(&free_bufs[i], 0, nbufs);
        pthread_create(&io, NULL, io_thread, NULL);
    }
    pthread_t spin[MAX_THREADS];
    int ncpu = is("awake") ? (int)sysconf(_SC_NPROCESSORS_ONLN) : 0;
    if (ncpu > MAX_THREADS) ncpu = MAX_THREADS;
    for (int i = 0; i < ncpu; i++) pthread_create(&spin[i], NULL, spinner, (void *)(intptr_t)i);
    for (int i = 0; i < threads; i++) pthread_create(&th[i], NULL, writer, (void *)(intptr_t)i);
    for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
    atomic_store(&spinners_stop, 1);
    for (int i = 0; i < ncpu; i++) pthread_join(spin[i], NULL);
    if (is("writer")) {
        pthread_mutex_lock(&jobs_lock);
        stop_writer = 1;
        pthread_cond_signal(&jobs_cond);
        pthread_mutex_unlock(&jobs_lock);
        pthread_join(io, NULL);
    }
    double secs = now() - t0;
    getrusage(RUSAGE_SELF, &r1);
    double cpu = (r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) + (r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) * 1e-6 +
                 (r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) + (r1.ru_stime.tv_usec - r0.ru_stime.tv_usec) * 1e-6;
    for (int i = 0; i < files; i++) {
        snprintf(path, sizeof path, "%s/model-%d", dir, i);
        unlink(path);
        close(fds[i]);
    }
    long total = (long)threads * commits;
    printf("{\"ops_per_sec\": %.0f, \"cpu_utilization\": %.3f, \"write_us_per_commit\": %.1f, \"secs\": %.4f, "
           "\"first_ten_ms\": %.2f, \"rest_us_per_commit\": %.1f, \"mapped_commits\": %llu}\n",
           total * 1000 / secs, cpu / secs, atomic_load(&write_ns) / 1e3 / total, secs, (first_ten - t0) * 1e3,
           (t0 + secs - first_ten) * 1e6 / (total - 10l * threads), atomic_load(&mapped_commits));
    return 0;
}
