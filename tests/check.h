/* SPDX-License-Identifier: MIT */
/* The tests' assertions: each failed CHECK prints where and what, counts a
 * failure and the program carries on, so one run shows every broken
 * expectation; check_done() turns the count into the exit status. */
#ifndef LFP_TESTS_CHECK_H
#define LFP_TESTS_CHECK_H

#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifndef __has_feature
#define __has_feature(x) 0
#endif
/* The sanitizer a test is built with, for the few tests that adapt. */
#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#define CHECK_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__) || __has_feature(thread_sanitizer)
#define CHECK_TSAN 1
#endif

/* Make a pool block the library keeps out of bounds writable, for a test
 * that writes to a free block on purpose (checked mode's write-after-free
 * reports); nothing outside ASan builds. */
#ifdef CHECK_ASAN
#include <sanitizer/asan_interface.h>
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

static atomic_int check_failures;
static atomic_long check_count;

#define CHECK(cond)                                                        \
    do {                                                                   \
        atomic_fetch_add(&check_count, 1);                                 \
        if (!(cond)) {                                                     \
            atomic_fetch_add(&check_failures, 1);                          \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,         \
                    __LINE__, #cond);                                      \
        }                                                                  \
    } while (0)

/* Compare two integers and print both values on mismatch. */
#define CHECK_EQ(a, b)                                                     \
    do {                                                                   \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);    \
        atomic_fetch_add(&check_count, 1);                                 \
        if (check_a_ != check_b_) {                                        \
            atomic_fetch_add(&check_failures, 1);                          \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s (%lld vs %lld)\n", \
                    __FILE__, __LINE__, #a, #b, check_a_, check_b_);       \
        }                                                                  \
    } while (0)

/* A fatal check: stop now, later steps would only crash. */
#define REQUIRE(cond)                                                      \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__,       \
                    __LINE__, #cond);                                      \
            exit(1);                                                       \
        }                                                                  \
    } while (0)

/* Run one named test function and report it. */
#define RUN(fn)                                                            \
    do {                                                                   \
        int check_before_ = atomic_load(&check_failures);                  \
        fn();                                                              \
        printf("%-4s %s\n",                                                \
               atomic_load(&check_failures) == check_before_ ? "ok" : "FAIL", #fn); \
        fflush(stdout);                                                    \
    } while (0)

static inline int check_done(void)
{
    int f = atomic_load(&check_failures);
    printf("%ld checks, %d failed\n", atomic_load(&check_count), f);
    return f ? 1 : 0;
}

/* An environment knob with a default, for thread and operation counts. */
static inline long check_env(const char *name, long dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 0) : dflt;
}

/* LFP_STRESS_SCALE: a factor for iteration counts (below 1 for slow
 * configurations: sanitizers, qemu). */
static inline double stress_scale(void)
{
    const char *v = getenv("LFP_STRESS_SCALE");
    double s = v && *v ? strtod(v, NULL) : 1.0;
    return s > 0 ? s : 1.0;
}

/* n scaled by LFP_STRESS_SCALE, but never below floor. */
static inline long scaled(long n, long floor)
{
    double v = (double)n * stress_scale();
    return v < (double)floor ? floor : (long)v;
}

/* LFP_STRESS_THREADS, between 2 and 256 (default 4). */
static inline int stress_threads(void)
{
    long n = check_env("LFP_STRESS_THREADS", 4);
    return n < 2 ? 2 : n > 256 ? 256 : (int)n;
}

/* The depot's stack count as the header documents it: the CPU count
 * rounded up to a power of two, at most 64. A fixed pool without a cache
 * carves up to that many blocks before it carves only at its peak. */
static inline size_t depot_stacks(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_CONF);
    size_t n = 1;
    while (n < 64 && (long)n < cpus)
        n <<= 1;
    return n;
}

/* qsort order of pointers by address. */
static inline int cmp_addr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)*(void *const *)a, y = (uintptr_t)*(void *const *)b;
    return x < y ? -1 : x > y;
}

/* A copy of the n pointers sorted by address, for the caller to free;
 * *repeats counts those equal to the one before (a block handed out
 * twice). */
static inline void **sorted_blocks(void *const *blocks, size_t n, size_t *repeats)
{
    void **v = malloc((n + 1) * sizeof *v);
    REQUIRE(v != NULL);
    memcpy(v, blocks, n * sizeof *v);
    qsort(v, n, sizeof *v, cmp_addr);
    *repeats = 0;
    for (size_t i = 1; i < n; i++)
        *repeats += v[i] == v[i - 1];
    return v;
}

/* Seconds on the monotonic clock, for deadlines and reported durations. */
static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A per-thread pseudo-random sequence (xorshift64); the seed must not be 0. */
static inline uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* Pages of [p, p + len) resident, by mincore; p page-aligned, len a
 * multiple of the page. */
static inline size_t resident_pages(const void *p, size_t len)
{
    size_t ps = (size_t)sysconf(_SC_PAGESIZE), n = len / ps, in = 0;
    unsigned char *vec = malloc(n);
    REQUIRE(vec != NULL);
    REQUIRE(mincore((void *)p, len, vec) == 0);
    for (size_t i = 0; i < n; i++)
        in += vec[i] & 1;
    free(vec);
    return in;
}

#ifdef LFPOOL_H
/* A pool made from cfg, which lfp_pool_create() must accept. */
static inline lfp_pool *create_pool(const struct lfp_config *cfg)
{
    lfp_pool *pool = NULL;
    CHECK_EQ(lfp_pool_create(cfg, &pool), LFP_OK);
    REQUIRE(pool != NULL);
    return pool;
}

/* Allocate until the pool says no or max blocks are out; returns how many. */
static inline size_t alloc_all(lfp_pool *pool, void **out, size_t max)
{
    size_t n = 0;
    while (n < max && (out[n] = lfp_alloc(pool)) != NULL)
        n++;
    return n;
}

/* Free the n blocks of v, each of which the pool must take back. */
static inline void free_all(lfp_pool *pool, void **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        CHECK_EQ(lfp_free(pool, v[i]), LFP_OK);
}

/* The pool must verify, then destroy reporting in_use blocks still out. */
static inline void verify_and_destroy(lfp_pool *pool, size_t in_use)
{
    CHECK_EQ(lfp_pool_verify(pool), LFP_OK);
    CHECK_EQ(lfp_pool_destroy(pool), in_use);
}

/* A pool's statistics, which must be available. */
static inline struct lfp_stats stats_of(const lfp_pool *pool)
{
    struct lfp_stats s;
    memset(&s, 0, sizeof s);
    REQUIRE(lfp_pool_stats(pool, &s) == LFP_OK);
    return s;
}

/* True if two snapshots agree on every block count and on the bytes reserved. */
static inline bool same_stats(const struct lfp_stats *a, const struct lfp_stats *b)
{
    return a->blocks_total == b->blocks_total && a->blocks_in_use == b->blocks_in_use &&
           a->blocks_cached == b->blocks_cached && a->blocks_carved == b->blocks_carved &&
           a->bytes_reserved == b->bytes_reserved &&
           a->blocks_in_use_max == b->blocks_in_use_max;
}

/* After a concurrent run, its threads joined: with this thread's cache
 * flushed, no block is in use or cached, the pool verifies, and the owner
 * table (one word per block, free_mark when no thread holds it) shows no
 * block still held. Returns the statistics it read. */
static inline struct lfp_stats check_settled_after_threads(lfp_pool *pool,
                                                           _Atomic int *owner,
                                                           size_t capacity, int free_mark)
{
    lfp_thread_flush();
    struct lfp_stats s = stats_of(pool);
    CHECK_EQ(s.blocks_in_use, 0);
    CHECK_EQ(s.blocks_cached, 0);
    CHECK_EQ(lfp_pool_verify(pool), LFP_OK);
    long still_owned = 0;
    for (size_t i = 0; i < capacity; i++)
        still_owned += atomic_load(&owner[i]) != free_mark;
    CHECK_EQ(still_owned, 0);
    return s;
}

/* How a pool's flags name its mode in failure notes. */
static inline const char *mode_name(unsigned flags)
{
    return (flags & LFP_GROWABLE) ? "growable" : (flags & LFP_NO_CACHE) ? "LFP_NO_CACHE"
                                                                      : "cached";
}

/* After the checks of one scenario, say which and in what mode if any of
 * them failed (before: check_failures when it began). */
static inline void note_failures(int before, const char *what, unsigned flags)
{
    if (atomic_load(&check_failures) != before)
        fprintf(stderr, "  ... while checking %s (%s)\n", what, mode_name(flags));
}

/* Two CPUs the calling thread may run on, and its affinity to restore with
 * sched_setaffinity afterwards. When it may run on one CPU only, says the
 * test is skipped and returns false. For the tests of the depot's per-CPU
 * stacks. */
static inline bool check_two_cpus(cpu_set_t *saved, int *a, int *b)
{
    int found = 0;
    if (sched_getaffinity(0, sizeof(*saved), saved) == 0)
        for (int c = 0; c < CPU_SETSIZE && found < 2; c++)
            if (CPU_ISSET(c, saved))
                *(found++ == 0 ? a : b) = c;
    if (found < 2)
        printf("  skipped: this thread may run on one CPU only\n");
    return found == 2;
}

/* Move the calling thread onto cpu; notes it when sched_getcpu does not
 * confirm the move (qemu-user may not tell). */
static inline void check_pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) != 0 || sched_getcpu() != cpu)
        printf("  note: could not confirm a move to CPU %d\n", cpu);
}

/* Set by the AArch64 cross files' qemu-user wrapper (LFP_TEST_QEMU=1):
 * qemu 7.2 cannot start a thread in the child of a threaded program's
 * fork(), so the tests that need that skip it there. */
static inline bool check_under_qemu(void)
{
    return getenv("LFP_TEST_QEMU") != NULL;
}

#endif

#endif
