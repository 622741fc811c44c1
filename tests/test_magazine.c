/* SPDX-License-Identifier: MIT */
/*
 * Per-thread caches (magazines): what a thread keeps, when it gives blocks
 * back, how much it may keep, and that caches stay correct when threads come
 * and go, when pools are destroyed under live threads, and when a thread uses
 * hundreds of pools.
 *
 * Most tests drive helper threads step by step: a helper runs one command
 * and then waits on a barrier, outside the library, so the main thread can
 * take exact statistics while the helper still holds its cache.
 *
 * Knobs: LFP_STRESS_THREADS (4), LFP_STRESS_OPS (200000),
 * LFP_STRESS_SCALE (1.0) multiplies op and thread counts (the churn test
 * keeps at least 1000 threads).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#ifdef LFP_TEST_RSEQ
#include <sys/rseq.h>
#endif

#include <lfpool.h>

#include "check.h"
#include "internal.h"

/* ---- utilities ---- */

static int knob_threads(void)
{
    long t = check_env("LFP_STRESS_THREADS", 4);
    return t < 1 ? 1 : t > 64 ? 64 : (int)t;
}

static lfp_pool *make_pool(size_t block_size, size_t capacity, unsigned cache_size,
                           unsigned flags)
{
    struct lfp_config cfg = {0};
    cfg.block_size = block_size;
    cfg.capacity = capacity;
    cfg.cache_size = cache_size;
    cfg.flags = flags;
    return create_pool(&cfg);
}

/* Number of duplicates among v[0..n) (sorts v). */
static size_t duplicates(void **v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_addr);
    size_t d = 0;
    for (size_t i = 1; i < n; i++)
        d += v[i] == v[i - 1];
    return d;
}

/* Free the n blocks of v; returns how many the pool refused. */
static size_t count_failed_frees(lfp_pool *pool, void **v, size_t n)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += lfp_free(pool, v[i]) != LFP_OK;
    return bad;
}

/* The main thread can take every block of the pool: nothing is stranded in
 * a cache or lost. Frees them again. */
static void check_all_blocks_available(lfp_pool *pool, size_t capacity)
{
    void **v = malloc((capacity + 1) * sizeof *v);
    REQUIRE(v != NULL);
    size_t n = alloc_all(pool, v, capacity + 1);
    CHECK_EQ(n, capacity);
    CHECK_EQ(count_failed_frees(pool, v, n), 0);
    CHECK_EQ(duplicates(v, n), 0);
    free(v);
}

/* ---- helper threads that run one command at a time, then park ---- */

struct helper;
typedef void (*helper_cmd)(struct helper *);

struct helper {
    pthread_t tid;
    pthread_barrier_t go, done;
    helper_cmd cmd;
    /* Inputs and outputs of commands. */
    lfp_pool *pool;
    size_t want;
    void **blocks;
    size_t n;
    size_t bad;
    int err;
};

static void *helper_main(void *arg)
{
    struct helper *a = arg;
    for (;;) {
        pthread_barrier_wait(&a->go);
        helper_cmd cmd = a->cmd;
        if (!cmd)
            return NULL;
        cmd(a);
        pthread_barrier_wait(&a->done);
    }
}

static void helper_start(struct helper *a, size_t max_blocks)
{
    memset(a, 0, sizeof *a);
    REQUIRE(pthread_barrier_init(&a->go, NULL, 2) == 0);
    REQUIRE(pthread_barrier_init(&a->done, NULL, 2) == 0);
    a->blocks = calloc(max_blocks + 1, sizeof *a->blocks);
    REQUIRE(a->blocks != NULL);
    REQUIRE(pthread_create(&a->tid, NULL, helper_main, a) == 0);
}

/* Run cmd on the helper and wait until it is parked again. */
static void helper_run(struct helper *a, helper_cmd cmd)
{
    a->cmd = cmd;
    pthread_barrier_wait(&a->go);
    pthread_barrier_wait(&a->done);
}

/* Let the helper's thread exit, and wait for it. */
static void helper_stop(struct helper *a)
{
    a->cmd = NULL;
    pthread_barrier_wait(&a->go);
    REQUIRE(pthread_join(a->tid, NULL) == 0);
    pthread_barrier_destroy(&a->go);
    pthread_barrier_destroy(&a->done);
    free(a->blocks);
}

/* Allocate `want` blocks into blocks[] (n = how many it got). */
static void cmd_alloc(struct helper *a)
{
    errno = 0;
    a->n = alloc_all(a->pool, a->blocks, a->want);
    a->err = errno;
}

static void cmd_free(struct helper *a)
{
    a->bad += count_failed_frees(a->pool, a->blocks, a->n);
    a->n = 0;
}

static void cmd_alloc_then_free(struct helper *a)
{
    cmd_alloc(a);
    cmd_free(a);
}

static void cmd_flush(struct helper *a)
{
    (void)a;
    lfp_thread_flush();
}

/* ------------------------------------------------------------------ */

static void a_freed_block_is_reused_first_and_only_by_the_freeing_thread(void)
{
    lfp_pool *pool = make_pool(64, 4096, 0, 0);
    REQUIRE(stats_of(pool).cache_size >= 16);
    void *p = lfp_alloc(pool);
    REQUIRE(p != NULL);
    CHECK_EQ(lfp_free(pool, p), LFP_OK);

    /* p sits in the main thread's magazine: another thread never gets it. */
    struct helper a;
    helper_start(&a, 64);
    a.pool = pool;
    a.want = 40;
    helper_run(&a, cmd_alloc);
    CHECK_EQ(a.n, 40);
    size_t got_p = 0;
    for (size_t i = 0; i < a.n; i++)
        got_p += a.blocks[i] == p;
    CHECK_EQ(got_p, 0);
    /* The helper's own frees come back to it last-in first-out. */
    void *last = a.blocks[a.n - 1];
    helper_run(&a, cmd_free);
    a.want = 1;
    helper_run(&a, cmd_alloc);
    CHECK(a.blocks[0] == last);
    helper_run(&a, cmd_free);

    CHECK(lfp_alloc(pool) == p);
    CHECK_EQ(lfp_free(pool, p), LFP_OK);
    helper_stop(&a);
    lfp_thread_flush();
    CHECK_EQ(stats_of(pool).blocks_cached, 0);
    verify_and_destroy(pool, 0);
}

static void an_exiting_thread_hands_its_cached_blocks_back(void)
{
    enum { CAP = 1024 };
    lfp_pool *pool = make_pool(48, CAP, 0, 0);
    struct lfp_stats s = stats_of(pool);
    REQUIRE(s.cache_size > 0);
    struct helper a;
    helper_start(&a, CAP);
    a.pool = pool;
    a.want = 100;
    helper_run(&a, cmd_alloc_then_free);
    CHECK_EQ(a.bad, 0);

    /* The helper is alive and parked: its frees sit in its magazines. */
    s = stats_of(pool);
    CHECK(s.blocks_cached > 0);
    CHECK(s.blocks_cached <= 2 * (size_t)s.cache_size);
    CHECK_EQ(s.blocks_in_use, 0);
    CHECK_EQ(lfp_pool_verify(pool), LFP_OK);

    helper_stop(&a); /* the thread exits */
    s = stats_of(pool);
    CHECK_EQ(s.blocks_cached, 0);
    CHECK_EQ(s.blocks_in_use, 0);
    CHECK_EQ(lfp_pool_verify(pool), LFP_OK);
    check_all_blocks_available(pool, CAP);
    lfp_thread_flush();
    verify_and_destroy(pool, 0);
}

static void an_exiting_thread_that_holds_blocks_leaves_them_in_use(void)
{
    enum { CAP = 1024 };
    lfp_pool *pool = make_pool(48, CAP, 0, 0);
    struct helper a;
    helper_start(&a, CAP);
    a.pool = pool;
    a.want = 150;
    helper_run(&a, cmd_alloc);
    REQUIRE(a.n == 150);
    /* Free 50 of them on the helper (cached there), keep 100 in use. */
    size_t keep = 100;
    void **kept = malloc(keep * sizeof *kept);
    REQUIRE(kept != NULL);
    memcpy(kept, a.blocks + 50, keep * sizeof *kept);
    a.n = 50;
    helper_run(&a, cmd_free);
    helper_stop(&a);
    struct lfp_stats s = stats_of(pool);
    CHECK_EQ(s.blocks_in_use, keep);
    CHECK_EQ(s.blocks_cached, 0);
    CHECK_EQ(lfp_pool_verify(pool), LFP_OK);
    /* Another thread frees what the dead one held. */
    CHECK_EQ(count_failed_frees(pool, kept, keep), 0);
    free(kept);
    CHECK_EQ(stats_of(pool).blocks_in_use, 0);
    check_all_blocks_available(pool, CAP);
    verify_and_destroy(pool, 0);
}

static void thread_flush_moves_only_the_calling_threads_cache_to_the_depot(void)
{
    enum { CAP = 2048 };
    lfp_pool *pool = make_pool(64, CAP, 0, 0);
    struct helper a;
    helper_start(&a, CAP);
    a.pool = pool;
    a.want = 90;
    helper_run(&a, cmd_alloc_then_free);
    size_t helper_part = stats_of(pool).blocks_cached;
    CHECK(helper_part > 0);

    void *v[90];
    CHECK_EQ(alloc_all(pool, v, 90), 90);
    CHECK_EQ(count_failed_frees(pool, v, 90), 0);
    size_t both = stats_of(pool).blocks_cached;
    CHECK(both > helper_part);

    lfp_thread_flush(); /* the main thread's part only */
    CHECK_EQ(stats_of(pool).blocks_cached, helper_part);
    CHECK_EQ(lfp_pool_verify(pool), LFP_OK);

    helper_run(&a, cmd_flush); /* and now the helper's, while it lives on */
    struct lfp_stats s = stats_of(pool);
    CHECK_EQ(s.blocks_cached, 0);
    CHECK_EQ(s.blocks_in_use, 0);
    CHECK_EQ(lfp_pool_verify(pool), LFP_OK);
    /* With both caches flushed, one thread can take every block. */
    check_all_blocks_available(pool, CAP);
    lfp_thread_flush();
    helper_stop(&a);
    CHECK_EQ(stats_of(pool).blocks_cached, 0);
    verify_and_destroy(pool, 0);
}

static void small_pools_cache_little_and_live_threads_strand_at_most_two_magazines_each(void)
{
    enum { CAP = 256 };
    lfp_pool *pool = make_pool(32, CAP, 0, 0);
    struct lfp_stats s = stats_of(pool);
    size_t cs = s.cache_size;
    CHECK(cs <= CAP / 16);

    /* One thread takes everything, gives it back and exits: nothing stays. */
    struct helper one;
    helper_start(&one, CAP);
    one.pool = pool;
    one.want = CAP + 1;
    helper_run(&one, cmd_alloc);
    CHECK_EQ(one.n, CAP);
    CHECK_EQ(one.err, ENOBUFS);
    helper_run(&one, cmd_free);
    helper_stop(&one);
    CHECK_EQ(stats_of(pool).blocks_cached, 0);
    check_all_blocks_available(pool, CAP);
    lfp_thread_flush();

    /* T live, idle threads, each with a full cache of the pool. */
    int nt = knob_threads();
    struct helper *ag = calloc((size_t)nt, sizeof *ag);
    REQUIRE(ag != NULL);
    for (int t = 0; t < nt; t++) {
        helper_start(&ag[t], CAP);
        ag[t].pool = pool;
        ag[t].want = 2 * cs + 3;
        helper_run(&ag[t], cmd_alloc_then_free);
        CHECK_EQ(ag[t].bad, 0);
    }
    s = stats_of(pool);
    CHECK(s.blocks_cached <= (size_t)nt * 2 * cs);

    void *v[CAP + 1];
    errno = 0;
    size_t n = alloc_all(pool, v, CAP + 1);
    CHECK_EQ(errno, ENOBUFS);
    size_t bound = (size_t)nt * 2 * cs < CAP ? CAP - (size_t)nt * 2 * cs : 0;
    CHECK(n >= bound);
    s = stats_of(pool);
    CHECK_EQ(s.blocks_in_use, n);
    CHECK_EQ(n + s.blocks_cached, CAP); /* every other block is in some cache */
    printf("  cache_size %zu, %d idle threads: main thread got %zu of %d blocks "
           "(bound %zu), %zu cached elsewhere\n",
           cs, nt, n, CAP, bound, s.blocks_cached);
    CHECK_EQ(lfp_pool_verify(pool), LFP_OK);
    CHECK_EQ(count_failed_frees(pool, v, n), 0);
    for (int t = 0; t < nt; t++)
        helper_stop(&ag[t]);
    free(ag);
    lfp_thread_flush();
    s = stats_of(pool);
    CHECK_EQ(s.blocks_cached, 0);
    CHECK_EQ(s.blocks_in_use, 0);
    check_all_blocks_available(pool, CAP);
    verify_and_destroy(pool, 0);
}

/* ---- thread churn over many pools ---- */

enum { CHURN_POOLS = 200, CHURN_CAP = 512, CHURN_SLOTS = 4, CHURN_WAVE = 4 };
#define CHURN_MAGIC 0x6c66706f6f6c0000ull

struct churn {
    lfp_pool *pool[CHURN_POOLS];
    _Atomic(void *) shared[CHURN_POOLS][CHURN_SLOTS];
    _Atomic long bad_owns, bad_stamp, bad_rc, bad_alloc, ops, cross;
};

struct churn_thread {
    struct churn *ch;
    uint64_t rng;
};

static void churn_stamp(void *p, size_t pool_idx)
{
    uint64_t v = CHURN_MAGIC | pool_idx;
    memcpy(p, &v, sizeof v);
}

static int churn_stamp_ok(const void *p, size_t pool_idx)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v == (CHURN_MAGIC | pool_idx);
}

static void *churn_main(void *arg)
{
    struct churn_thread *ct = arg;
    struct churn *ch = ct->ch;
    long bad_owns = 0, bad_stamp = 0, bad_rc = 0, bad_alloc = 0, ops = 0, cross = 0;
    for (int round = 0; round < 4; round++) {
        size_t k = (size_t)(xorshift(&ct->rng) % CHURN_POOLS);
        lfp_pool *pool = ch->pool[k];
        void *v[8];
        size_t n = 1 + (size_t)(xorshift(&ct->rng) % 8);
        for (size_t i = 0; i < n; i++) {
            v[i] = lfp_alloc(pool);
            if (!v[i]) {
                bad_alloc++;
                n = i;
                break;
            }
            bad_owns += lfp_owns(pool, v[i]) != 1;
            churn_stamp(v[i], k);
            ops++;
        }
        for (size_t i = 0; i < n; i++) {
            if (i % 2 == 0) {
                /* Leave it for another thread; free what was there. */
                size_t s = (size_t)(xorshift(&ct->rng) % CHURN_SLOTS);
                void *q = atomic_exchange(&ch->shared[k][s], v[i]);
                if (!q)
                    continue;
                bad_stamp += !churn_stamp_ok(q, k);
                bad_rc += lfp_free(pool, q) != LFP_OK;
                cross++;
            } else {
                bad_stamp += !churn_stamp_ok(v[i], k);
                bad_rc += lfp_free(pool, v[i]) != LFP_OK;
            }
            ops++;
        }
    }
    atomic_fetch_add(&ch->bad_owns, bad_owns);
    atomic_fetch_add(&ch->bad_stamp, bad_stamp);
    atomic_fetch_add(&ch->bad_rc, bad_rc);
    atomic_fetch_add(&ch->bad_alloc, bad_alloc);
    atomic_fetch_add(&ch->ops, ops);
    atomic_fetch_add(&ch->cross, cross);
    return NULL;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

/* Growth of VmRSS allowed beyond what the same waves of threads cost
 * without the library (the control: an emulator or a sanitizer runtime may
 * keep memory per thread of its own). */
#define RSS_GROWTH_LIMIT_KIB (4L * 1024)

static void *idle_thread(void *arg)
{
    return arg;
}

/* Run `waves` waves of CHURN_WAVE threads; returns the VmRSS growth over the
 * second half of them, in KiB. */
static long rss_growth_over_waves(long waves, void *(*fn)(void *), struct churn *ch)
{
    long rss_half = 0;
    for (long w = 0; w < waves; w++) {
        if (w == waves / 2)
            rss_half = rss_kib();
        pthread_t tid[CHURN_WAVE];
        struct churn_thread ct[CHURN_WAVE];
        for (int i = 0; i < CHURN_WAVE; i++) {
            ct[i].ch = ch;
            ct[i].rng = 0x9E3779B97F4A7C15ull * (uint64_t)(w * CHURN_WAVE + i + 1);
            REQUIRE(pthread_create(&tid[i], NULL, fn, &ct[i]) == 0);
        }
        for (int i = 0; i < CHURN_WAVE; i++)
            REQUIRE(pthread_join(tid[i], NULL) == 0);
    }
    long rss_end = rss_kib();
    return rss_half > 0 && rss_end > 0 ? rss_end - rss_half : 0;
}

static void short_lived_threads_over_many_pools_recycle_their_caches(void)
{
    struct churn *ch = calloc(1, sizeof *ch);
    REQUIRE(ch != NULL);
    for (size_t k = 0; k < CHURN_POOLS; k++) {
        size_t bs = 16 + (k * 40) % 1000;
        ch->pool[k] = make_pool(bs, CHURN_CAP, 0, k % 7 == 3 ? LFP_NO_CACHE : 0);
        for (size_t s = 0; s < CHURN_SLOTS; s++)
            atomic_init(&ch->shared[k][s], NULL);
    }
    /* Not scaled below 1000 threads: the second half's 500 must show a leak
     * of 8 KiB per thread over the RSS limit. */
    long nthreads = (long)(2000 * stress_scale());
    if (nthreads < 1000)
        nthreads = 1000;
    long waves = nthreads / CHURN_WAVE;
    long control = rss_growth_over_waves(waves, idle_thread, ch);
    double t0 = now_s();
    long growth = rss_growth_over_waves(waves, churn_main, ch);
    printf("  %ld threads in waves of %d over %d pools: %ld ops (%ld cross-thread frees) "
           "in %.2f s; VmRSS grew %ld KiB over the second half (%ld KiB for as many "
           "threads that do not use the library)\n",
           waves * CHURN_WAVE, CHURN_WAVE, CHURN_POOLS, atomic_load(&ch->ops),
           atomic_load(&ch->cross), now_s() - t0, growth, control);
    CHECK_EQ(atomic_load(&ch->bad_owns), 0);
    CHECK_EQ(atomic_load(&ch->bad_stamp), 0);
    CHECK_EQ(atomic_load(&ch->bad_rc), 0);
    CHECK_EQ(atomic_load(&ch->bad_alloc), 0);
    CHECK(atomic_load(&ch->cross) > 0);
    CHECK(growth - control < RSS_GROWTH_LIMIT_KIB);

    for (size_t k = 0; k < CHURN_POOLS; k++) {
        for (size_t s = 0; s < CHURN_SLOTS; s++) {
            void *q = atomic_exchange(&ch->shared[k][s], NULL);
            if (!q)
                continue;
            CHECK(churn_stamp_ok(q, k));
            CHECK_EQ(lfp_free(ch->pool[k], q), LFP_OK);
        }
    }
    lfp_thread_flush();
    size_t bad_in_use = 0, bad_cached = 0, bad_verify = 0, bad_destroy = 0;
    for (size_t k = 0; k < CHURN_POOLS; k++) {
        struct lfp_stats s = stats_of(ch->pool[k]);
        bad_in_use += s.blocks_in_use != 0;
        bad_cached += s.blocks_cached != 0;
        bad_verify += lfp_pool_verify(ch->pool[k]) != LFP_OK;
        bad_destroy += lfp_pool_destroy(ch->pool[k]) != 0;
    }
    CHECK_EQ(bad_in_use, 0);
    CHECK_EQ(bad_cached, 0);
    CHECK_EQ(bad_verify, 0);
    CHECK_EQ(bad_destroy, 0);
    free(ch);
}

/* ---- destroying pools under live threads ---- */

static size_t fini_calls;

static void count_fini(void *block, void *arg)
{
    (void)block;
    (void)arg;
    fini_calls++;
}

/* A keeps blocks of P1 in its cache; P1 is destroyed (its memory, caller
 * memory here, released at once) and P2 created; A's use of P2 must never
 * see a block of P1. */
static void destroyed_pools_cached_blocks_never_reach_its_successor(int p1_caller_memory)
{
    enum { CAP = 512, BS = 64 };
    struct lfp_config cfg = {0};
    cfg.block_size = BS;
    cfg.capacity = CAP;
    cfg.fini = count_fini;
    void *buf = NULL;
    if (p1_caller_memory) {
        cfg.mem_size = lfp_pool_bytes(&cfg);
        REQUIRE(posix_memalign(&buf, 64, cfg.mem_size) == 0);
        cfg.mem = buf;
    }
    lfp_pool *p1 = NULL;
    REQUIRE(lfp_pool_create(&cfg, &p1) == LFP_OK);

    struct helper a;
    helper_start(&a, CAP);
    a.pool = p1;
    a.want = 100;
    helper_run(&a, cmd_alloc_then_free);
    struct lfp_stats s = stats_of(p1);
    CHECK(s.blocks_cached > 0);
    CHECK_EQ(s.blocks_in_use, 0);

    fini_calls = 0;
    CHECK_EQ(lfp_pool_destroy(p1), 0); /* cached blocks are free, not in use */
    CHECK_EQ(fini_calls, s.blocks_carved);
    free(buf); /* a later touch of P1's blocks is a use after free */

    cfg.mem = NULL;
    cfg.mem_size = 0;
    cfg.fini = NULL;
    lfp_pool *p2 = NULL;
    REQUIRE(lfp_pool_create(&cfg, &p2) == LFP_OK);

    helper_run(&a, cmd_flush); /* must not touch P1 */
    a.pool = p2;
    a.want = CAP + 1;
    helper_run(&a, cmd_alloc);
    CHECK_EQ(a.n, CAP);
    CHECK_EQ(a.err, ENOBUFS);
    size_t foreign = 0;
    for (size_t i = 0; i < a.n; i++)
        foreign += lfp_owns(p2, a.blocks[i]) != 1;
    CHECK_EQ(foreign, 0);
    void **copy = malloc(a.n * sizeof *copy);
    REQUIRE(copy != NULL);
    memcpy(copy, a.blocks, a.n * sizeof *copy);
    CHECK_EQ(duplicates(copy, a.n), 0);
    free(copy);
    CHECK_EQ(stats_of(p2).blocks_in_use, CAP);
    helper_run(&a, cmd_free);
    CHECK_EQ(a.bad, 0);
    s = stats_of(p2);
    CHECK_EQ(s.blocks_in_use, 0);
    CHECK(s.blocks_cached <= 2 * (size_t)s.cache_size);
    CHECK_EQ(lfp_pool_verify(p2), LFP_OK);
    helper_stop(&a);
    CHECK_EQ(stats_of(p2).blocks_cached, 0);
    check_all_blocks_available(p2, CAP);
    verify_and_destroy(p2, 0);
}

static void destroyed_pools_cached_blocks_never_reach_a_successor_over_caller_memory(void)
{
    destroyed_pools_cached_blocks_never_reach_its_successor(1);
}

static void destroyed_pools_cached_blocks_never_reach_a_successor_over_its_own_mapping(void)
{
    destroyed_pools_cached_blocks_never_reach_its_successor(0);
}

static void destroy_counts_blocks_freed_into_a_live_threads_cache_as_free(void)
{
    enum { CAP = 2048 };
    lfp_pool *pool = make_pool(96, CAP, 0, 0);
    void *v[10];
    REQUIRE(alloc_all(pool, v, 10) == 10);
    struct helper b;
    helper_start(&b, 64);
    b.pool = pool;
    /* B frees 6 of main's blocks (into its own cache) ... */
    memcpy(b.blocks, v, 6 * sizeof *v);
    b.n = 6;
    helper_run(&b, cmd_free);
    CHECK_EQ(b.bad, 0);
    /* ... and allocates 5 it keeps. */
    b.want = 5;
    helper_run(&b, cmd_alloc);
    CHECK_EQ(b.n, 5);
    struct lfp_stats s = stats_of(pool);
    CHECK_EQ(s.blocks_in_use, 4 + 5);
    verify_and_destroy(pool, 4 + 5);
    /* B lives on past the destroy, flushes, and exits: neither touches the
     * destroyed pool. */
    helper_run(&b, cmd_flush);
    helper_stop(&b);
}

/* ---- producers and consumers through SPSC rings ---- */

enum { RING = 64, PC_BLOCK = 64, PC_FREE = -1 };

struct ring {
    _Atomic size_t head; /* written by the consumer */
    char pad1[64 - sizeof(size_t)];
    _Atomic size_t tail; /* written by the producer */
    char pad2[64 - sizeof(size_t)];
    void *slot[RING];
};

struct pc {
    lfp_pool *pool;
    uintptr_t base;
    size_t stride, capacity;
    _Atomic int *owner;
    struct ring *rings; /* producer p to consumer c: rings[p * nc + c] */
    int np, nc;
    long per_producer;
    _Atomic int producers_done;
    _Atomic long bad_claim, bad_owner, bad_stamp, bad_rc, bad_errno, stalled, freed;
    double deadline;
};

struct pc_role {
    struct pc *pc;
    int id;
};

static size_t pc_index(struct pc *pc, const void *p)
{
    uintptr_t off = (uintptr_t)p - pc->base;
    if ((uintptr_t)p < pc->base || off % pc->stride || off / pc->stride >= pc->capacity)
        return SIZE_MAX;
    return off / pc->stride;
}

static uint64_t pc_word(int producer, long seq, int i)
{
    return ((uint64_t)(uint32_t)producer << 40 | (uint64_t)seq) ^
           ((uint64_t)(i + 1) * 0x9E3779B97F4A7C15ull);
}

static long pc_seq(const void *block)
{
    return (long)((*(const uint64_t *)block ^ pc_word(0, 0, 0)) & ((1ull << 40) - 1));
}

static void *pc_producer(void *arg)
{
    struct pc_role *r = arg;
    struct pc *pc = r->pc;
    long bad_claim = 0, bad_errno = 0, stalled = 0;
    int c = 0;
    for (long seq = 0; seq < pc->per_producer && !stalled; seq++) {
        void *p;
        unsigned spins = 0;
        while ((p = lfp_alloc(pc->pool)) == NULL) {
            bad_errno += errno != ENOBUFS;
            sched_yield();
            if ((++spins & 1023) == 0 && now_s() > pc->deadline) {
                stalled = 1;
                break;
            }
        }
        if (!p)
            break;
        size_t i = pc_index(pc, p);
        if (i == SIZE_MAX || atomic_exchange(&pc->owner[i], r->id) != PC_FREE) {
            bad_claim++;
            continue; /* do not touch it further */
        }
        uint64_t *w = p;
        for (int j = 0; j < PC_BLOCK / 8; j++)
            w[j] = pc_word(r->id, seq, j);
        /* Round-robin over the consumers. */
        struct ring *q = &pc->rings[r->id * pc->nc + c];
        c = (c + 1) % pc->nc;
        size_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
        spins = 0;
        while (t - atomic_load_explicit(&q->head, memory_order_acquire) == RING) {
            sched_yield();
            if ((++spins & 1023) == 0 && now_s() > pc->deadline) {
                stalled = 1;
                break;
            }
        }
        if (stalled)
            break;
        q->slot[t % RING] = p;
        atomic_store_explicit(&q->tail, t + 1, memory_order_release);
    }
    atomic_fetch_add(&pc->bad_claim, bad_claim);
    atomic_fetch_add(&pc->bad_errno, bad_errno);
    atomic_fetch_add(&pc->stalled, stalled);
    atomic_fetch_add(&pc->producers_done, 1);
    return NULL;
}

static void *pc_consumer(void *arg)
{
    struct pc_role *r = arg;
    struct pc *pc = r->pc;
    int me = pc->np + r->id; /* owner ids after the producers' */
    long bad_owner = 0, bad_stamp = 0, bad_rc = 0, freed = 0;
    for (;;) {
        int done = atomic_load(&pc->producers_done) == pc->np;
        size_t got = 0;
        for (int p = 0; p < pc->np; p++) {
            struct ring *q = &pc->rings[p * pc->nc + r->id];
            size_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
            size_t t = atomic_load_explicit(&q->tail, memory_order_acquire);
            for (; h != t; h++, got++) {
                void *b = q->slot[h % RING];
                size_t i = pc_index(pc, b);
                if (i == SIZE_MAX) {
                    bad_owner++;
                    continue;
                }
                if (atomic_exchange(&pc->owner[i], me) != p)
                    bad_owner++;
                const uint64_t *w = b;
                long seq = pc_seq(b);
                for (int j = 0; j < PC_BLOCK / 8; j++)
                    bad_stamp += w[j] != pc_word(p, seq, j);
                if (atomic_exchange(&pc->owner[i], PC_FREE) != me)
                    bad_owner++;
                bad_rc += lfp_free(pc->pool, b) != LFP_OK;
                freed++;
            }
            atomic_store_explicit(&q->head, h, memory_order_release);
        }
        if (done && got == 0)
            break;
        if (got == 0) {
            if (now_s() > pc->deadline + 5) {
                atomic_fetch_add(&pc->stalled, 1);
                break;
            }
            sched_yield();
        }
    }
    atomic_fetch_add(&pc->bad_owner, bad_owner);
    atomic_fetch_add(&pc->bad_stamp, bad_stamp);
    atomic_fetch_add(&pc->bad_rc, bad_rc);
    atomic_fetch_add(&pc->freed, freed);
    return NULL;
}

static void producers_and_consumers(unsigned flags)
{
    int nt = knob_threads();
    struct pc pc;
    memset(&pc, 0, sizeof pc);
    pc.np = nt / 2 > 0 ? nt / 2 : 1;
    pc.nc = nt - pc.np > 0 ? nt - pc.np : 1;
    pc.per_producer = (long)((double)check_env("LFP_STRESS_OPS", 200000) / 2 * stress_scale());
    if (pc.per_producer < 1000)
        pc.per_producer = 1000;
    /* Room for full rings and full caches everywhere, and then some: a
     * consumer only frees, so it keeps one to two full magazines, and the
     * library's magazine may hold up to LFP_CACHE_DEFAULT blocks. With less
     * (64-block magazines were assumed here), 8 consumers held the whole
     * pool and every producer waited for ever (LFP_STRESS_THREADS=16). */
    pc.capacity = (size_t)(pc.np * pc.nc) * RING +
                  (size_t)(pc.np + pc.nc) * 2 * LFP_CACHE_DEFAULT + 1024;
    pc.deadline = now_s() + 120;
    pc.pool = make_pool(PC_BLOCK, pc.capacity, 0, flags);
    pc.stride = stats_of(pc.pool).stride;

    /* Find the lowest block address: take every block once. */
    void **all = malloc(pc.capacity * sizeof *all);
    REQUIRE(all != NULL);
    REQUIRE(alloc_all(pc.pool, all, pc.capacity) == pc.capacity);
    qsort(all, pc.capacity, sizeof *all, cmp_addr);
    pc.base = (uintptr_t)all[0];
    CHECK_EQ(count_failed_frees(pc.pool, all, pc.capacity), 0);
    lfp_thread_flush();

    pc.owner = malloc(pc.capacity * sizeof *pc.owner);
    pc.rings = calloc((size_t)(pc.np * pc.nc), sizeof *pc.rings);
    REQUIRE(pc.owner && pc.rings);
    for (size_t i = 0; i < pc.capacity; i++)
        atomic_init(&pc.owner[i], PC_FREE);
    for (int i = 0; i < pc.np * pc.nc; i++) {
        atomic_init(&pc.rings[i].head, 0);
        atomic_init(&pc.rings[i].tail, 0);
    }
    atomic_init(&pc.producers_done, 0);

    pthread_t *tid = calloc((size_t)(pc.np + pc.nc), sizeof *tid);
    struct pc_role *role = calloc((size_t)(pc.np + pc.nc), sizeof *role);
    REQUIRE(tid && role);
    double t0 = now_s();
    for (int i = 0; i < pc.np + pc.nc; i++) {
        role[i].pc = &pc;
        role[i].id = i < pc.np ? i : i - pc.np;
        REQUIRE(pthread_create(&tid[i], NULL, i < pc.np ? pc_producer : pc_consumer,
                               &role[i]) == 0);
    }
    for (int i = 0; i < pc.np + pc.nc; i++)
        REQUIRE(pthread_join(tid[i], NULL) == 0);
    printf("  %s: %d producers, %d consumers, %ld blocks freed across threads in %.2f s\n",
           mode_name(flags), pc.np, pc.nc,
           atomic_load(&pc.freed), now_s() - t0);

    CHECK_EQ(atomic_load(&pc.stalled), 0);
    CHECK_EQ(atomic_load(&pc.bad_claim), 0);
    CHECK_EQ(atomic_load(&pc.bad_owner), 0);
    CHECK_EQ(atomic_load(&pc.bad_stamp), 0);
    CHECK_EQ(atomic_load(&pc.bad_rc), 0);
    CHECK_EQ(atomic_load(&pc.bad_errno), 0);
    CHECK_EQ(atomic_load(&pc.freed), pc.per_producer * pc.np);

    check_settled_after_threads(pc.pool, pc.owner, pc.capacity, PC_FREE);
    check_all_blocks_available(pc.pool, pc.capacity);
    lfp_thread_flush();
    verify_and_destroy(pc.pool, 0);
    free(all);
    free(pc.owner);
    free(pc.rings);
    free(tid);
    free(role);
}

static void blocks_freed_by_consumer_threads_are_conserved_and_never_doubly_owned(void)
{
    producers_and_consumers(0);
    producers_and_consumers(LFP_NO_CACHE);
}

/* ---- bulk calls ---- */

static void bulk_calls_move_more_than_a_magazine_and_cache_at_most_two(void)
{
    enum { CAP = 4096, N = 1000 };
    lfp_pool *pool = make_pool(40, CAP, 64, 0);
    CHECK_EQ(stats_of(pool).cache_size, 64);
    struct helper a;
    helper_start(&a, N);
    void **v = malloc(N * sizeof *v);
    REQUIRE(v != NULL);
    CHECK_EQ(lfp_alloc_bulk(pool, v, N), N);
    size_t foreign = 0;
    for (size_t i = 0; i < N; i++)
        foreign += lfp_owns(pool, v[i]) != 1;
    CHECK_EQ(foreign, 0);
    CHECK_EQ(stats_of(pool).blocks_in_use, N);
    CHECK_EQ(lfp_free_bulk(pool, v, N), LFP_OK);
    struct lfp_stats s = stats_of(pool);
    CHECK_EQ(s.blocks_in_use, 0);
    CHECK(s.blocks_cached <= 2 * 64);
    CHECK_EQ(lfp_pool_verify(pool), LFP_OK);
    qsort(v, N, sizeof *v, cmp_addr);
    size_t dup = 0;
    for (size_t i = 1; i < N; i++)
        dup += v[i] == v[i - 1];
    CHECK_EQ(dup, 0);

    /* The same on another thread, and the main thread frees its blocks. */
    a.pool = pool;
    a.want = N;
    helper_run(&a, cmd_alloc);
    CHECK_EQ(a.n, N);
    CHECK_EQ(lfp_free_bulk(pool, a.blocks, a.n), LFP_OK);
    a.n = 0;
    s = stats_of(pool);
    CHECK_EQ(s.blocks_in_use, 0);
    CHECK(s.blocks_cached <= 2 * 2 * 64); /* two threads' caches at most */
    helper_stop(&a);
    CHECK(stats_of(pool).blocks_cached <= 2 * 64);
    lfp_thread_flush();
    CHECK_EQ(stats_of(pool).blocks_cached, 0);
    verify_and_destroy(pool, 0);
    free(v);
}

/* ---- one thread, many pools ---- */

static void one_thread_keeps_separate_caches_for_hundreds_of_pools(void)
{
    enum { NP = 300, CAP = 256 };
    lfp_pool **pool = calloc(NP, sizeof *pool);
    void **first = calloc(NP, sizeof *first);
    void **held = calloc(NP, sizeof *held);
    REQUIRE(pool && first && held);
    for (size_t k = 0; k < NP; k++)
        pool[k] = make_pool(16 + (k % 13) * 8, CAP, 0, 0);

    /* Sweep 1: each pool's block goes into this thread's cache of that pool. */
    size_t wrong = 0;
    for (size_t k = 0; k < NP; k++) {
        first[k] = lfp_alloc(pool[k]);
        REQUIRE(first[k] != NULL);
        wrong += lfp_owns(pool[k], first[k]) != 1;
        wrong += lfp_owns(pool[(k + 1) % NP], first[k]) != 0;
        wrong += lfp_owns(pool[(k + NP - 1) % NP], first[k]) != 0;
        held[k] = lfp_alloc(pool[k]); /* one stays in use */
        REQUIRE(held[k] != NULL);
        wrong += lfp_free(pool[k], first[k]) != LFP_OK;
    }
    CHECK_EQ(wrong, 0);
    /* Sweep 2: the caches kept apart: each pool gives its own block back. */
    size_t not_lifo = 0;
    for (size_t k = 0; k < NP; k++) {
        void *p = lfp_alloc(pool[k]);
        not_lifo += p != first[k];
        wrong += lfp_free(pool[k], p) != LFP_OK;
        struct lfp_stats s = stats_of(pool[k]);
        wrong += s.blocks_in_use != 1;
        wrong += s.blocks_cached > 2 * (size_t)s.cache_size;
    }
    CHECK_EQ(not_lifo, 0);
    CHECK_EQ(wrong, 0);

    /* Destroy every other pool (this thread caches blocks of each) and make
     * new ones, which reuse the freed ids. */
    size_t bad_destroy = 0;
    for (size_t k = 0; k < NP; k += 2)
        bad_destroy += lfp_pool_destroy(pool[k]) != 1;
    CHECK_EQ(bad_destroy, 0);
    for (size_t k = 0; k < NP; k += 2) {
        pool[k] = make_pool(24 + (k % 5) * 16, CAP, 0, 0);
        held[k] = NULL;
    }
    /* Each new pool hands out exactly its own CAP blocks. */
    void *v[CAP + 1];
    size_t bad_count = 0, bad_owner = 0;
    for (size_t k = 0; k < NP; k += 2) {
        size_t n = alloc_all(pool[k], v, CAP + 1);
        bad_count += n != CAP;
        for (size_t i = 0; i < n; i++)
            bad_owner += lfp_owns(pool[k], v[i]) != 1;
        bad_count += duplicates(v, n) != 0;
        wrong += count_failed_frees(pool[k], v, n);
    }
    CHECK_EQ(bad_count, 0);
    CHECK_EQ(bad_owner, 0);
    CHECK_EQ(wrong, 0);

    size_t bad_verify = 0;
    bad_destroy = 0;
    for (size_t k = 0; k < NP; k++) {
        bad_verify += lfp_pool_verify(pool[k]) != LFP_OK;
        bad_destroy += lfp_pool_destroy(pool[k]) != (held[k] ? 1u : 0u);
    }
    CHECK_EQ(bad_verify, 0);
    CHECK_EQ(bad_destroy, 0);
    lfp_thread_flush(); /* nothing of the destroyed pools is touched */
    free(pool);
    free(first);
    free(held);
}

/* The depot keeps a stack per CPU. A thread on one CPU spills every block
 * of a fixed pool onto its CPU's stack; a thread on another CPU must find
 * them there (the pool has carved all it may, so it has nothing else to
 * give), with or without magazines. */
static void blocks_spilled_on_one_cpu_serve_a_thread_on_another(void)
{
    cpu_set_t saved;
    int c0 = 0, c1 = 0;
    if (!check_two_cpus(&saved, &c0, &c1))
        return;
    const size_t cap = 4096;
    void **v = malloc((cap + 1) * sizeof *v);
    REQUIRE(v != NULL);
    for (int k = 0; k < 2; k++) {
        unsigned flags = k ? LFP_NO_CACHE : 0;
        int before = atomic_load(&check_failures);
        lfp_pool *pool = make_pool(64, cap, 16, flags);
        check_pin(c0);
        size_t n = alloc_all(pool, v, cap + 1);
        CHECK_EQ(n, cap);
        free_all(pool, v, n);
        lfp_thread_flush();
        check_pin(c1);
        n = alloc_all(pool, v, cap + 1);
        CHECK_EQ(n, cap);
        CHECK_EQ(stats_of(pool).blocks_carved, cap);
        free_all(pool, v, n);
        CHECK_EQ(duplicates(v, n), 0);
        verify_and_destroy(pool, 0);
        note_failures(before, "blocks taken from another CPU's depot stack", flags);
    }
    free(v);
    CHECK_EQ(sched_setaffinity(0, sizeof saved, &saved), 0);
}

/* A cached fixed pool carves a run of LFP_CARVE_BYTES (at most a quarter
 * of the pool, at least a magazine) when its depot is empty; the caller's
 * magazine takes its share and the depot the rest, from which the next
 * magazines come before anything more is carved. Blocks stay distinct and
 * the pool's counts add up. */
static void a_cached_fixed_pool_carves_in_runs_and_serves_magazines_from_them(void)
{
    static const struct {
        size_t block, capacity;
        unsigned cache, flags;
        size_t run; /* blocks the first allocation carves */
    } cases[] = {
        {64, 1u << 16, 0, 0, (64u << 10) / 64},     /* magazine 512, run 1024 */
        {4096, 4096, 0, 0, (64u << 10) / 4096},     /* magazine 16 = run */
        {64, 1000, 0, 0, 1000 / 4},                 /* a quarter of the pool */
        {64, 1u << 16, 2048, 0, 2048},              /* a magazine above the run */
        {64, 1u << 16, 0, LFP_NO_CACHE, 1},         /* one block at a time */
    };
    _Static_assert(LFP_CARVE_BYTES == 64u << 10, "the cases above assume 64 KiB runs");
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int before = atomic_load(&check_failures);
        lfp_pool *pool = make_pool(cases[c].block, cases[c].capacity, cases[c].cache,
                                   cases[c].flags);
        size_t run = cases[c].run, n = run + 1;
        void **v = malloc(n * sizeof *v);
        REQUIRE(v != NULL);
        v[0] = lfp_alloc(pool);
        CHECK(v[0] != NULL);
        CHECK_EQ(stats_of(pool).blocks_carved, run);
        /* The rest of the run serves before a second one is carved. */
        for (size_t i = 1; i < run; i++)
            v[i] = lfp_alloc(pool);
        CHECK_EQ(stats_of(pool).blocks_carved, run);
        v[run] = lfp_alloc(pool);
        CHECK(v[run] != NULL);
        size_t second = run + (cases[c].run < cases[c].capacity ? run : 0);
        if (second > cases[c].capacity)
            second = cases[c].capacity;
        CHECK_EQ(stats_of(pool).blocks_carved, second);
        CHECK_EQ(stats_of(pool).blocks_in_use, n);
        for (size_t i = 0; i < n; i++)
            CHECK(v[i] != NULL && lfp_owns(pool, v[i]));
        free_all(pool, v, n);
        CHECK_EQ(duplicates(v, n), 0);
        verify_and_destroy(pool, 0);
        free(v);
        if (atomic_load(&check_failures) != before)
            fprintf(stderr, "  case %zu: %zu-byte blocks, capacity %zu\n", c,
                    cases[c].block, cases[c].capacity);
    }
}

/* The last run of a fixed pool is still being made ready (its constructor
 * runs) by one thread when another finds the depot empty and the pool
 * carved out: the second must wait for the run's blocks, which count as
 * free, not fail with ENOBUFS. */
static _Atomic int run_phase; /* 1: hold the constructor; 2: B is calling */
static _Atomic int run_inits, run_release;

static void slow_init(void *block, void *arg)
{
    (void)block;
    (void)arg;
    if (atomic_load(&run_phase) >= 1 && atomic_fetch_add(&run_inits, 1) == 1)
        while (!atomic_load(&run_release))
            sched_yield();
}

static void *alloc_one(void *pool)
{
    return lfp_alloc(pool);
}

static void *alloc_one_after_a(void *pool)
{
    while (atomic_load(&run_inits) < 2)
        sched_yield();
    atomic_store(&run_phase, 2);
    return lfp_alloc(pool);
}

static void a_thread_waits_for_a_run_in_flight_instead_of_failing(void)
{
    enum { CAP = 256, HELD = CAP - CAP / 4 };
    struct lfp_config cfg = {0};
    cfg.block_size = 64;
    cfg.capacity = CAP;
    cfg.init = slow_init;
    lfp_pool *pool = create_pool(&cfg);
    REQUIRE(stats_of(pool).cache_size == CAP / 16);
    /* Three runs of a quarter each, all in use: the depot is empty. */
    void **v = malloc(HELD * sizeof *v);
    REQUIRE(v != NULL);
    CHECK_EQ(alloc_all(pool, v, HELD), HELD);
    CHECK_EQ(stats_of(pool).blocks_carved, HELD);
    atomic_store(&run_inits, 0);
    atomic_store(&run_release, 0);
    atomic_store(&run_phase, 1);
    pthread_t a, b;
    REQUIRE(pthread_create(&a, NULL, alloc_one, pool) == 0);
    REQUIRE(pthread_create(&b, NULL, alloc_one_after_a, pool) == 0);
    while (atomic_load(&run_phase) < 2)
        sched_yield();
    struct timespec ts = {0, 100 * 1000 * 1000}; /* B is in lfp_alloc by now */
    nanosleep(&ts, NULL);
    CHECK_EQ(stats_of(pool).blocks_carved, CAP); /* A holds the last run */
    atomic_store(&run_release, 1);
    void *pa = NULL, *pb = NULL;
    pthread_join(a, &pa);
    pthread_join(b, &pb);
    atomic_store(&run_phase, 0);
    CHECK(pa != NULL);
    CHECK(pb != NULL); /* ENOBUFS here without the wait */
    CHECK(pa != pb);
    CHECK_EQ(lfp_free(pool, pa), LFP_OK);
    CHECK_EQ(lfp_free(pool, pb), LFP_OK);
    free_all(pool, v, HELD);
    free(v);
    verify_and_destroy(pool, 0);
}

/* sched_getcpu, counted: the library's calls of it land here (a static
 * link prefers this definition to the C library's). */
static atomic_uint getcpu_calls;

int sched_getcpu(void)
{
    atomic_fetch_add(&getcpu_calls, 1);
    unsigned cpu;
    return syscall(SYS_getcpu, &cpu, NULL, NULL) == 0 ? (int)cpu : -1;
}

/* The depot's CPU (read from the thread's rseq area where glibc registered
 * one, else from sched_getcpu) is the CPU the thread was moved to, on the
 * main thread and on a new one (each thread has its own area). A move the
 * C library does not confirm is not counted; qemu-user may confirm none.
 * Where glibc registered rseq areas, the answer must come from the area,
 * without a call of sched_getcpu. */
static atomic_int rseq_reads;

static void cpu_of(int *confirmed)
{
    cpu_set_t saved;
    REQUIRE(sched_getaffinity(0, sizeof saved, &saved) == 0);
    int tried = 0;
    *confirmed = 0;
    for (int c = 0; c < CPU_SETSIZE && tried < 8; c++) {
        if (!CPU_ISSET(c, &saved))
            continue;
        tried++;
        check_pin(c);
        if (sched_getcpu() != c)
            continue;
        unsigned calls = atomic_load(&getcpu_calls);
        CHECK_EQ(lfp_cpu(), c);
#ifdef LFP_TEST_RSEQ
        if (__rseq_size != 0) {
            CHECK_EQ(atomic_load(&getcpu_calls), calls);
            atomic_fetch_add(&rseq_reads, 1);
        }
#endif
        (void)calls;
        (*confirmed)++;
    }
    CHECK(check_under_qemu() || *confirmed == tried);
    CHECK_EQ(sched_setaffinity(0, sizeof saved, &saved), 0);
}

static void *cpu_of_thread(void *arg)
{
    cpu_of(arg);
    return NULL;
}

static void the_depot_finds_the_cpu_each_thread_runs_on(void)
{
    /* A pool first: its creation tells the library where the rseq area's
     * CPU lies (before any pool it calls sched_getcpu). */
    lfp_pool *pool = make_pool(64, 64, 0, LFP_NO_CACHE);
    int on_main = 0, on_new = 0;
    cpu_of(&on_main);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, cpu_of_thread, &on_new) == 0);
    REQUIRE(pthread_join(t, NULL) == 0);
    verify_and_destroy(pool, 0);
    printf("  CPUs confirmed: %d on the main thread, %d on a new one; %d checked to "
           "come from the rseq area\n",
           on_main, on_new, atomic_load(&rseq_reads));
    CHECK(check_under_qemu() || (on_main >= 1 && on_new >= 1));
}

int main(void)
{
    RUN(a_freed_block_is_reused_first_and_only_by_the_freeing_thread);
    RUN(an_exiting_thread_hands_its_cached_blocks_back);
    RUN(an_exiting_thread_that_holds_blocks_leaves_them_in_use);
    RUN(thread_flush_moves_only_the_calling_threads_cache_to_the_depot);
    RUN(small_pools_cache_little_and_live_threads_strand_at_most_two_magazines_each);
    RUN(short_lived_threads_over_many_pools_recycle_their_caches);
    RUN(destroyed_pools_cached_blocks_never_reach_a_successor_over_caller_memory);
    RUN(destroyed_pools_cached_blocks_never_reach_a_successor_over_its_own_mapping);
    RUN(destroy_counts_blocks_freed_into_a_live_threads_cache_as_free);
    RUN(blocks_freed_by_consumer_threads_are_conserved_and_never_doubly_owned);
    RUN(bulk_calls_move_more_than_a_magazine_and_cache_at_most_two);
    RUN(one_thread_keeps_separate_caches_for_hundreds_of_pools);
    RUN(blocks_spilled_on_one_cpu_serve_a_thread_on_another);
    RUN(a_cached_fixed_pool_carves_in_runs_and_serves_magazines_from_them);
    RUN(a_thread_waits_for_a_run_in_flight_instead_of_failing);
    RUN(the_depot_finds_the_cpu_each_thread_runs_on);
    return check_done();
}
