/* SPDX-License-Identifier: MIT */
/*
 * The slab-release race of lockless pools (HAProxy GH #1275; README,
 * "Growable pools and liburcu").
 *
 * A depot pop reads top->next after loading top. If, in between, another
 * thread pops top, frees it again and a trim finds top's slab fully free and
 * unmaps it, that read faults: the ABA tag makes the CAS fail afterwards,
 * but it cannot make the read itself safe. lfpool pops growable depots in an
 * RCU read-side section and unmaps a trimmed slab only after a grace period.
 *
 * The setup makes the dangerous interleaving common: a growable pool without
 * per-thread cache (every alloc pops the depot, every free pushes it), 64 KiB
 * blocks in 64 KiB slabs (one block per slab: every free block in the depot
 * is a whole free slab), churn threads that alloc and free bursts of 1..8
 * blocks, and a thread that trims as fast as it can.
 *
 * The window between a pop's load of top and its read of top->next is a
 * few instructions; the fault needs the popping thread to stall inside it
 * while others pop top, free it and trim its slab away. A preemption by the
 * scheduler does that, rarely. Here the test build's read hook stalls one
 * pop in 64 for 20 us inside that window, as a preemption there would (with
 * signals alone, which stall a thread wherever they land, a run of 8 churn
 * threads under ASan on 16 cores once went 45 s without a fault in the
 * build that needs one). A "preempter" thread also sends the churn threads
 * a signal every few microseconds, whose handler stalls the thread for
 * 20 us wherever it was interrupted. The pop hook that runs after the read,
 * before the CAS, lingers on some pops, so that read-side sections overlap
 * trims' grace periods and pops retry with a fresh top more often.
 *
 * Built normally the run must not crash and must leave the pool consistent,
 * after at least a minimum number of slab releases (else the race was not
 * exercised). Built with RACE_EXPECT_CRASH against a library that unmaps at
 * once (LFP_TEST_NO_GRACE), the same run goes to a child process, and the
 * test passes only if that child dies of SIGSEGV or SIGBUS: proof that the
 * normal run would catch a missing grace period.
 *
 * Knobs: LFP_STRESS_THREADS (4) churn threads, LFP_STRESS_SCALE (1.0) scales
 * the run time and the minimum number of slab releases.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lfpool.h>

#include "check.h"

/* In the library built with LFP_TEST_HOOKS: called by every stack pop
 * between its read of top->next and its CAS, and between its load of top
 * and that read. */
extern void (*lfp_test_pop_hook)(void);
extern void (*lfp_test_pop_read_hook)(void);

enum {
    BLOCK = 64 * 1024,
    SLAB = 64 * 1024,
    MAX_BURST = 8,
    STAMP_OFF = 64, /* past the free-list links */
};

struct race {
    lfp_pool *pool;
    int nthreads;
    pthread_t churners[256];
    atomic_bool stop;
    atomic_ulong bursts;
    atomic_ulong slabs_released;
    atomic_ulong trims;
    atomic_ulong alloc_failed;
    atomic_ulong bad_free;
    atomic_ulong bad_stamp;
    atomic_ulong signals;
};

static void spin_ns(long ns)
{
    double until = now_s() + (double)ns * 1e-9;
    while (now_s() < until)
        ;
}

static _Thread_local unsigned pop_calls;

/* On one pop in 16, linger a couple of microseconds between reading
 * top->next and the CAS: inside the read-side section, so trims' grace
 * periods find readers to wait for, and long enough that the CAS often
 * fails and the pop retries with a fresh top. (A delay here cannot by
 * itself expose the fault: it comes after the read.) */
static void widen_pop_window(void)
{
    if (++pop_calls % 16 == 0)
        spin_ns(2000);
}

/* On one pop in 64, stall 20 us after loading top and before reading
 * top->next: long enough for other threads to pop top, free it, and for a
 * trim to find its slab free and release it. */
static _Thread_local unsigned read_calls;

static void stall_before_read(void)
{
    if (++read_calls % 64 == 0)
        spin_ns(20000);
}

/* The stall of a simulated preemption: long enough for a trim to pop the
 * depot and unmap the slabs it found free. */
static void stall_handler(int sig)
{
    (void)sig;
    int saved = errno;
    spin_ns(20000);
    errno = saved;
}

struct churner {
    struct race *r;
    uint64_t id;
};

static void *churn(void *arg)
{
    struct churner *c = arg;
    struct race *r = c->r;
    uint64_t rng = 0x9e3779b97f4a7c15ull * (c->id + 1);
    uint64_t seq = 0;
    void *held[MAX_BURST];
    while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
        unsigned want = 1 + (unsigned)(xorshift(&rng) % MAX_BURST), got = 0;
        for (; got < want; got++) {
            void *b = lfp_alloc(r->pool);
            if (b == NULL) {
                atomic_fetch_add(&r->alloc_failed, 1);
                break;
            }
            /* The owner's stamp: a block handed to two owners shows up as
             * a stamp that changed under its holder. */
            *(volatile uint64_t *)((char *)b + STAMP_OFF) = (c->id << 48) | (seq + got);
            held[got] = b;
        }
        for (unsigned i = 0; i < got; i++) {
            if (*(volatile uint64_t *)((char *)held[i] + STAMP_OFF) != ((c->id << 48) | (seq + i)))
                atomic_fetch_add(&r->bad_stamp, 1);
            if (lfp_free(r->pool, held[i]) != 0)
                atomic_fetch_add(&r->bad_free, 1);
        }
        seq += got;
        atomic_fetch_add_explicit(&r->bursts, 1, memory_order_relaxed);
    }
    return NULL;
}

static void *trimmer(void *arg)
{
    struct race *r = arg;
    while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
        size_t bytes = lfp_pool_trim(r->pool);
        atomic_fetch_add_explicit(&r->slabs_released, bytes / SLAB, memory_order_relaxed);
        atomic_fetch_add_explicit(&r->trims, 1, memory_order_relaxed);
    }
    return NULL;
}

/* Interrupt a random churn thread every few microseconds. */
static void *preempter(void *arg)
{
    struct race *r = arg;
    uint64_t rng = 0x2545f4914f6cdd1dull;
    struct timespec gap = { 0, 5000 };
    while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
        int t = (int)(xorshift(&rng) % (uint64_t)r->nthreads);
        if (pthread_kill(r->churners[t], SIGUSR1) == 0)
            atomic_fetch_add_explicit(&r->signals, 1, memory_order_relaxed);
        nanosleep(&gap, NULL);
    }
    return NULL;
}

/* Churn and trim until at least min_s seconds have passed and at least
 * min_releases slabs were released, or max_s seconds passed. */
static void race_run(struct race *r, double min_s, double max_s, unsigned long min_releases)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = stall_handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    REQUIRE(sigaction(SIGUSR1, &sa, NULL) == 0);

    struct lfp_config cfg = {
        .block_size = BLOCK,
        .flags = LFP_GROWABLE | LFP_NO_CACHE,
        .slab_size = SLAB,
        .name = "slab-race",
    };
    REQUIRE(lfp_pool_create(&cfg, &r->pool) == LFP_OK);
    lfp_test_pop_hook = widen_pop_window;
    lfp_test_pop_read_hook = stall_before_read;

    static struct churner cs[256];
    pthread_t trim_thread, preempt_thread;
    for (int i = 0; i < r->nthreads; i++) {
        cs[i].r = r;
        cs[i].id = (uint64_t)i + 1;
        REQUIRE(pthread_create(&r->churners[i], NULL, churn, &cs[i]) == 0);
    }
    REQUIRE(pthread_create(&trim_thread, NULL, trimmer, r) == 0);
    REQUIRE(pthread_create(&preempt_thread, NULL, preempter, r) == 0);

    double t0 = now_s();
    for (;;) {
        struct timespec tick = { 0, 10 * 1000 * 1000 };
        nanosleep(&tick, NULL);
        double el = now_s() - t0;
        if (el >= max_s ||
            (el >= min_s && atomic_load(&r->slabs_released) >= min_releases))
            break;
    }
    atomic_store(&r->stop, true);
    REQUIRE(pthread_join(preempt_thread, NULL) == 0);
    for (int i = 0; i < r->nthreads; i++)
        REQUIRE(pthread_join(r->churners[i], NULL) == 0);
    REQUIRE(pthread_join(trim_thread, NULL) == 0);
    lfp_test_pop_hook = NULL;
    lfp_test_pop_read_hook = NULL;
    printf("  %.2f s, %d churn threads: %lu bursts, %lu trims, %lu slabs released, "
           "%lu signals\n",
           now_s() - t0, r->nthreads, atomic_load(&r->bursts), atomic_load(&r->trims),
           atomic_load(&r->slabs_released), atomic_load(&r->signals));
    fflush(stdout);
}

#ifndef RACE_EXPECT_CRASH

static void test_trim_racing_pops_never_faults_and_keeps_pool_consistent(void)
{
    double scale = stress_scale();
    unsigned long min_releases = (unsigned long)scaled(1000, 1);
    static struct race r;
    r.nthreads = stress_threads();
    race_run(&r, 3.0 * scale, 60.0, min_releases);

    CHECK(atomic_load(&r.slabs_released) >= min_releases);
    CHECK(atomic_load(&r.bursts) > 0);
    CHECK_EQ(atomic_load(&r.bad_free), 0);
    CHECK_EQ(atomic_load(&r.bad_stamp), 0);
    CHECK_EQ(atomic_load(&r.alloc_failed), 0);
    CHECK_EQ(lfp_pool_verify(r.pool), 0);
    struct lfp_stats st;
    CHECK_EQ(lfp_pool_stats(r.pool, &st), 0);
    CHECK_EQ(st.blocks_in_use, 0);
    CHECK_EQ(lfp_pool_destroy(r.pool), 0);
}

int main(void)
{
    RUN(test_trim_racing_pops_never_faults_and_keeps_pool_consistent);
    return check_done();
}

#else /* RACE_EXPECT_CRASH */

/* How long the child may churn, and how long the parent waits for it. */
#define CHILD_RUN_S 45.0
#define PARENT_WAIT_S 60.0

#ifdef CHECK_ASAN
/* ASan catches the fault itself: it prints a report, then aborts. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "handle_segv=1:handle_sigbus=1:abort_on_error=1";
}
#endif

static void child_main(void)
{
    /* The crash is expected: no core dump, also not through a pipe. */
    struct rlimit no_core = { 0, 0 };
    setrlimit(RLIMIT_CORE, &no_core);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    static struct race r;
    r.nthreads = stress_threads();
    race_run(&r, CHILD_RUN_S, CHILD_RUN_S, 0);
    _exit(0); /* it did not crash */
}

/* Does the text hold ASan's report of a fault? */
static int asan_reported_fault(const char *text)
{
    return strstr(text, "SEGV") != NULL || strstr(text, "BUS") != NULL;
}

static void test_trim_without_grace_period_crashes_a_racing_pop(void)
{
    int errpipe[2];
    REQUIRE(pipe(errpipe) == 0);
    fflush(stdout);
    fflush(stderr);
    double t0 = now_s();
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        close(errpipe[0]);
        dup2(errpipe[1], STDERR_FILENO);
        close(errpipe[1]);
        child_main();
    }
    close(errpipe[1]);

    /* Collect the child's stderr (ASan's report) until it closes or the
     * time is up. */
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap + 1);
    REQUIRE(text != NULL);
    int timed_out = 0;
    for (;;) {
        double left = PARENT_WAIT_S - (now_s() - t0);
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        struct pollfd pfd = { .fd = errpipe[0], .events = POLLIN };
        int n = poll(&pfd, 1, (int)(left * 1000) + 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            continue;
        char buf[4096];
        ssize_t got = read(errpipe[0], buf, sizeof(buf));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        fwrite(buf, 1, (size_t)got, stderr);
        size_t keep = (size_t)got < cap - len ? (size_t)got : cap - len;
        memcpy(text + len, buf, keep);
        len += keep;
    }
    text[len] = '\0';
    close(errpipe[0]);

    int status = 0;
    pid_t w;
    if (timed_out) {
        kill(pid, SIGKILL);
        w = waitpid(pid, &status, 0);
    } else {
        /* stderr closed: the child is gone or going; wait for it. */
        while ((w = waitpid(pid, &status, WNOHANG)) == 0 && now_s() - t0 < PARENT_WAIT_S) {
            struct timespec ms = { 0, 1000 * 1000 };
            nanosleep(&ms, NULL);
        }
        if (w == 0) {
            timed_out = 1;
            kill(pid, SIGKILL);
            w = waitpid(pid, &status, 0);
        }
    }
    double took = now_s() - t0;
    REQUIRE(w == pid);

    int crashed = 0;
    if (timed_out) {
        printf("  the child ran past %.0f s without a fault: killed\n", PARENT_WAIT_S);
    } else if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        if (sig == SIGSEGV || sig == SIGBUS) {
            crashed = 1;
            printf("  the child died of %s after %.2f s\n",
                   sig == SIGSEGV ? "SIGSEGV" : "SIGBUS", took);
#ifdef CHECK_ASAN
        } else if (sig == SIGABRT && asan_reported_fault(text)) {
            crashed = 1;
            printf("  the child faulted (ASan report, SIGABRT) after %.2f s\n", took);
#endif
        } else {
            printf("  the child died of signal %d after %.2f s\n", sig, took);
        }
    } else if (WIFEXITED(status)) {
#ifdef CHECK_ASAN
        if (WEXITSTATUS(status) != 0 && asan_reported_fault(text)) {
            crashed = 1;
            printf("  the child faulted (ASan report, exit %d) after %.2f s\n",
                   WEXITSTATUS(status), took);
        } else
#endif
        printf("  the child exited with status %d after %.2f s without a fault\n",
               WEXITSTATUS(status), took);
    }
    (void)asan_reported_fault;
    free(text);
    CHECK(crashed);
}

int main(void)
{
#ifdef CHECK_TSAN
    (void)test_trim_without_grace_period_crashes_a_racing_pop;
    printf("skipped under TSan: the expected crash runs in a forked child, and "
           "ThreadSanitizer does not support fork with threads\n");
    return 0;
#else
    RUN(test_trim_without_grace_period_crashes_a_racing_pop);
    return check_done();
#endif
}

#endif /* RACE_EXPECT_CRASH */
