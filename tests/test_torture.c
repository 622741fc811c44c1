/* SPDX-License-Identifier: MIT */
/*
 * ABA torture at the pool level. A pool of two to four blocks without thread
 * caches (LFP_NO_CACHE), so that every lfp_alloc is a pop and every lfp_free
 * a push on the depot's Treiber stack, and more threads than blocks fight
 * over them. The same few blocks keep returning to the top of the stack: the
 * situation in which a pop whose CAS compares only the pointer installs a
 * stale next link and hands out a block that someone already holds.
 *
 * Every block handed out is claimed in a side table (an atomic exchange on
 * its owner word) and stamped with a pattern its holder checks before
 * freeing it, so a block held by two threads at once, an address that is no
 * block, a pattern changed under its holder or a free the pool rejects is
 * seen at once.
 *
 * Built three ways (tests/meson.build):
 *   test_torture         the library as shipped: nothing may be detected;
 *   test_torture_hooked  TORTURE_HOOKED: the library calls lfp_test_pop_hook
 *                        between reading top->next and its CAS, and the hook
 *                        here yields or spins now and then, which widens the
 *                        window an ABA needs; nothing may be detected;
 *   test_torture_notag   TORTURE_EXPECT_ABA as well: the library never bumps
 *                        the tag, so ABA does happen, and this program passes
 *                        only if it sees the damage; otherwise it is not
 *                        strong enough to vouch for the other two builds.
 *
 * Environment: LFP_STRESS_SCALE (default 1.0) scales the operation counts
 * (and the notag build's time limit, never below 10 s), LFP_STRESS_THREADS
 * (default 4) the thread count.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lfpool.h"
#include "check.h" /* after lfpool.h: check_two_cpus */

#ifdef TORTURE_HOOKED
#ifndef LFP_TEST_HOOKS
#define LFP_TEST_HOOKS 1
#endif
#include "stack.h" /* lfp_test_pop_hook */
#endif

#ifdef TORTURE_EXPECT_ABA
#define EXPECT_ABA 1
#else
#define EXPECT_ABA 0
#endif

#if EXPECT_ABA && defined(CHECK_TSAN)
/* In this build blocks are handed to two owners on purpose, and the pool's
 * own accesses to their links then race: ThreadSanitizer would stop the
 * program on the damage this test is here to detect by its own checks. Only
 * this build mutes its reports; every other build keeps them. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
    return "report_bugs=0";
}
#endif

#if EXPECT_ABA && defined(CHECK_ASAN)
/* Likewise AddressSanitizer: a block handed out twice is written by its
 * second owner after the first freed it, which the pool's poisoning of free
 * blocks turns into a report that ends the program before this test's own
 * checks can report the double handout. Only this build turns poisoning
 * off; every other ASan build keeps it. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allow_user_poisoning=0";
}
#endif

#define MAX_CAP 4
#define BLOCK_SIZE 64
/* The pattern covers the block but for the first LFP_LINK_BYTES, where a
 * free block keeps its links: with the tag disabled the pool may write them
 * while a thread holds the block, and the owner table already tells. */
#define PAT_FIRST (LFP_LINK_BYTES / sizeof(uint64_t))
#define PAT_END (BLOCK_SIZE / sizeof(uint64_t))
#define FREE 0 /* owner of a block nobody holds */
/* Iterations per thread between two checks of the whole pool. */
#define EPOCH 2000

enum damage {
    NONE,
    DOUBLE_HANDOUT, /* a block given to a second owner while the first held it */
    UNKNOWN_BLOCK,  /* an address that is none of the pool's blocks */
    PATTERN,        /* a block's bytes changed while one owner held it */
    FREE_REJECTED,  /* lfp_free or lfp_free_bulk refused a block it handed out */
    ALLOC_ERRNO,    /* an allocation failed for another reason than ENOBUFS */
    STUCK,          /* threads stopped returning from the library */
    DRAIN,          /* afterwards, the pool did not give back exactly its blocks */
    VERIFY,         /* afterwards, lfp_pool_verify found an inconsistency */
    NKINDS
};

static const char *const damage_name[NKINDS] = {
    [NONE] = "nothing",
    [DOUBLE_HANDOUT] = "a block handed to two owners at once",
    [UNKNOWN_BLOCK] = "an address that is none of the pool's blocks",
    [PATTERN] = "a block's contents changed under its owner",
    [FREE_REJECTED] = "a free of a handed-out block rejected",
    [ALLOC_ERRNO] = "an allocation failure other than ENOBUFS",
    [STUCK] = "threads stuck inside the library",
    [DRAIN] = "the pool no longer holds exactly its blocks",
    [VERIFY] = "lfp_pool_verify reports an inconsistency",
};

struct torture {
    lfp_pool *pool;
    size_t cap;
    void *block[MAX_CAP];       /* the pool's blocks, learnt up front */
    _Atomic int owner[MAX_CAP]; /* FREE or the holding thread's id */
    long iterations;            /* per thread, in this epoch */
    double deadline;
    atomic_int go;
    atomic_int stop;
    atomic_int finished;        /* threads that left their loop */
    atomic_long ops;            /* blocks allocated, checked and freed */
    atomic_long allocs_failed;  /* ENOBUFS: all blocks were taken */
    atomic_long hook_calls;
    atomic_int first;           /* the first damage seen */
    long ops_at_first;
    double time_at_first;
    atomic_long seen[NKINDS];
};

struct worker {
    struct torture *t;
    int self;
    uint64_t rng;
    uint64_t seq;
    pthread_t thread;
};

static int torture_threads(void)
{
    int n = stress_threads();
    return n > 64 ? 64 : n;
}

static double started;

static void report(struct torture *t, enum damage kind)
{
    atomic_fetch_add(&t->seen[kind], 1);
    int none = NONE;
    if (atomic_compare_exchange_strong(&t->first, &none, (int)kind)) {
        t->ops_at_first = atomic_load(&t->ops);
        t->time_at_first = now_s() - started;
    }
    atomic_store(&t->stop, 1);
}

#ifdef TORTURE_HOOKED
static _Thread_local uint64_t hook_rng;
static _Thread_local long hook_calls;
static atomic_ulong hook_seeds;

/* Between a pop's read of top->next and its CAS: on one call in four, give
 * the other threads time to pop, reuse and push back that top. */
static void widen_window(void)
{
    hook_calls++;
    if (hook_rng == 0)
        hook_rng = 0x9e3779b97f4a7c15u * (atomic_fetch_add(&hook_seeds, 1) + 1);
    uint64_t r = xorshift(&hook_rng);
    if ((r & 7) == 0) {
        sched_yield();
    } else if ((r & 7) == 1) {
        for (volatile int i = 0; i < 300; i++)
            ;
    }
}
#endif

static int index_of(const struct torture *t, const void *b)
{
    for (size_t i = 0; i < t->cap; i++)
        if (t->block[i] == b)
            return (int)i;
    return -1;
}

/* Pattern words are accessed atomically: when two threads do hold one block
 * (the notag build), that is the damage to report, not undefined behaviour
 * of the test. */
static void stamp(void *b, uint64_t v)
{
    uint64_t *w = b;
    for (size_t i = PAT_FIRST; i < PAT_END; i++)
        __atomic_store_n(&w[i], v + i, __ATOMIC_RELAXED);
}

static int stamp_intact(void *b, uint64_t v)
{
    uint64_t *w = b;
    for (size_t i = PAT_FIRST; i < PAT_END; i++)
        if (__atomic_load_n(&w[i], __ATOMIC_RELAXED) != v + i)
            return 0;
    return 1;
}

/* Take a block just allocated; returns its index, or -1 after reporting. */
static int take(struct worker *w, void *b)
{
    struct torture *t = w->t;
    int i = index_of(t, b);
    if (i < 0) {
        report(t, UNKNOWN_BLOCK);
        return -1;
    }
    if (atomic_exchange(&t->owner[i], w->self) != FREE) {
        report(t, DOUBLE_HANDOUT);
        return -1;
    }
    return i;
}

/* Use a held block for a moment, check it, and give up the claim before
 * it goes back to the pool. Returns 0, or -1 after reporting. */
static int use_and_release(struct worker *w, void *b, int i, uint64_t v)
{
    struct torture *t = w->t;
    if (!stamp_intact(b, v)) {
        report(t, PATTERN);
        return -1;
    }
    if (atomic_exchange(&t->owner[i], FREE) != w->self) {
        report(t, DOUBLE_HANDOUT); /* someone claimed it under us */
        return -1;
    }
    return 0;
}

/*
 * One round of a thread: take usually one block, sometimes up to the whole
 * pool (one lfp_alloc each, or one lfp_alloc_bulk), claim and stamp each,
 * check them, and give them back oldest first (one lfp_free each, or one
 * lfp_free_bulk). Freeing in allocation order matters: the first block
 * returns to the top of the stack while the later ones are still held,
 * which is when a pop that read the old top's link before they were taken
 * can install a held block as the new top. Returns -1 when the thread must
 * stop.
 */
static int cycle(struct worker *w)
{
    struct torture *t = w->t;
    void *b[MAX_CAP];
    int idx[MAX_CAP];
    uint64_t v[MAX_CAP];
    uint64_t r = xorshift(&w->rng);
    size_t want = r & 1 ? 1 : 1 + (size_t)((r >> 8) % t->cap);
    size_t got = 0;

    if ((r & 0x30) == 0) {
        errno = 0;
        got = lfp_alloc_bulk(t->pool, b, want);
        if (got < want && errno != ENOBUFS) {
            report(t, ALLOC_ERRNO);
            return -1;
        }
    } else {
        for (; got < want; got++) {
            errno = 0;
            if ((b[got] = lfp_alloc(t->pool)) == NULL) {
                if (errno != ENOBUFS) {
                    report(t, ALLOC_ERRNO);
                    return -1;
                }
                break;
            }
        }
    }
    for (size_t k = 0; k < got; k++) {
        if ((idx[k] = take(w, b[k])) < 0)
            return -1; /* keep the blocks: one may be someone else's */
        v[k] = (uint64_t)w->self << 48 | ++w->seq << 8;
        stamp(b[k], v[k]);
    }
    if (got == 0) {
        atomic_fetch_add_explicit(&t->allocs_failed, 1, memory_order_relaxed);
        sched_yield(); /* let a holder run */
        return 0;
    }
    if ((r & 0xf000) == 0)
        sched_yield(); /* hold them across a reschedule now and then */
    for (size_t k = 0; k < got; k++)
        if (use_and_release(w, b[k], idx[k], v[k]) < 0)
            return -1;
    if (atomic_load(&t->stop))
        return -1; /* damage elsewhere: leave the pool alone */
    if ((r & 0xc0) == 0) {
        if (lfp_free_bulk(t->pool, b, got) != 0) {
            report(t, FREE_REJECTED);
            return -1;
        }
    } else {
        for (size_t k = 0; k < got; k++) {
            if (lfp_free(t->pool, b[k]) != 0) {
                report(t, FREE_REJECTED);
                return -1;
            }
        }
    }
    atomic_fetch_add_explicit(&t->ops, (long)got, memory_order_relaxed);
    return 0;
}

static void *worker_main(void *p)
{
    struct worker *w = p;
    struct torture *t = w->t;

    while (!atomic_load_explicit(&t->go, memory_order_acquire))
        sched_yield();
    for (long n = 0; n < t->iterations; n++) {
        if (atomic_load_explicit(&t->stop, memory_order_relaxed))
            break;
        if ((n & 63) == 0 && now_s() > t->deadline)
            break;
        if (cycle(w) < 0)
            break;
    }
#ifdef TORTURE_HOOKED
    atomic_fetch_add(&t->hook_calls, hook_calls);
    hook_calls = 0;
#endif
    atomic_fetch_add_explicit(&t->finished, 1, memory_order_release);
    return NULL;
}

/*
 * With no thread inside the pool: it gives out exactly its blocks, each
 * once, then ENOBUFS; takes them all back; and lfp_pool_verify agrees. This
 * catches the damage the owner table cannot see, such as a block that fell
 * off the free list. Every step is bounded, so a corrupted (even cyclic)
 * free list cannot hang it. Returns NONE or the damage found.
 */
static enum damage check_pool_whole(struct torture *t)
{
    void *got[MAX_CAP + 1];
    size_t n = 0;
    int seen[MAX_CAP] = { 0 };
    enum damage d = NONE;

    for (int i = 0; i < (int)t->cap; i++)
        if (atomic_load(&t->owner[i]) != FREE)
            d = DRAIN;
    while (d == NONE && n <= t->cap) {
        errno = 0;
        void *b = lfp_alloc(t->pool);
        if (b == NULL) {
            if (errno != ENOBUFS || n != t->cap)
                d = DRAIN; /* short of blocks, or a strange error */
            break;
        }
        int i = index_of(t, b);
        if (i < 0 || seen[i]++ || n == t->cap)
            d = DRAIN; /* unknown, repeated, or one too many */
        got[n++] = b;
    }
    if (d != NONE)
        return d; /* the pool is inconsistent: give nothing back to it */
    for (size_t k = 0; k < n; k++)
        if (lfp_free(t->pool, got[k]) != 0)
            return FREE_REJECTED;
    if (lfp_pool_verify(t->pool) != 0)
        return VERIFY;
    return NONE;
}

/* Learn the pool's blocks: allocate all of them on this thread, which also
 * shows the pool holds exactly cap blocks, then free them. */
static int learn_blocks(struct torture *t)
{
    for (size_t i = 0; i < t->cap; i++) {
        t->block[i] = lfp_alloc(t->pool);
        CHECK(t->block[i] != NULL);
        if (t->block[i] == NULL)
            return -1;
        CHECK(lfp_owns(t->pool, t->block[i]));
        for (size_t j = 0; j < i; j++)
            CHECK(t->block[j] != t->block[i]);
        atomic_init(&t->owner[i], FREE);
    }
    errno = 0;
    CHECK(lfp_alloc(t->pool) == NULL);
    CHECK_EQ(errno, ENOBUFS);
    for (size_t i = 0; i < t->cap; i++)
        CHECK_EQ(lfp_free(t->pool, t->block[i]), 0);
    return 0;
}

/* One round of the threads on the pool; returns how many did not come back
 * in time (with the tag disabled, one may never return from a pool whose
 * free list has been wrecked). */
static int run_epoch(struct torture *t, struct worker *ws, int nthreads)
{
    atomic_store(&t->go, 0);
    atomic_store(&t->finished, 0);
    for (int i = 0; i < nthreads; i++)
        REQUIRE(pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]) == 0);
    atomic_store_explicit(&t->go, 1, memory_order_release);

    while (atomic_load_explicit(&t->finished, memory_order_acquire) < nthreads &&
           now_s() < t->deadline + 10)
        usleep(1000);
    int stuck = nthreads - atomic_load_explicit(&t->finished, memory_order_acquire);
    if (stuck == 0)
        for (int i = 0; i < nthreads; i++)
            REQUIRE(pthread_join(ws[i].thread, NULL) == 0);
    return stuck;
}

static void torture(size_t cap)
{
    static struct torture t; /* one run at a time; its pool may be leaked */
    static struct worker ws[64];
    int nthreads = torture_threads();
    double scale = stress_scale();
    /* Production builds: a fixed amount of work, with a generous time limit
     * as a safety net. The notag build: until damage or the time limit. */
    long iterations = EXPECT_ABA ? -1 : scaled(100000, 1000);
    double limit = EXPECT_ABA ? (20 * scale < 10 ? 10 : 20 * scale)
                              : 60 * (scale < 1 ? 1 : scale);

    memset(&t, 0, sizeof t);
    t.cap = cap;
    struct lfp_config cfg = { .block_size = BLOCK_SIZE, .capacity = cap,
                              .flags = LFP_NO_CACHE, .name = "torture" };
    REQUIRE(lfp_pool_create(&cfg, &t.pool) == 0);
    if (learn_blocks(&t) < 0)
        return;
    for (int i = 0; i < nthreads; i++)
        ws[i] = (struct worker){ .t = &t, .self = i + 1,
                                 .rng = 0x9e3779b97f4a7c15u * (uint64_t)(i + 1) };

#ifdef TORTURE_HOOKED
    lfp_test_pop_hook = widen_window;
#endif
    /* Epochs of a bounded number of iterations per thread, the pool checked
     * whole after each, so damage that leaves no trace in the owner table
     * is caught soon after it happens. */
    started = now_s();
    t.deadline = started + limit;
    long done = 0, epochs = 0;
    int stuck = 0;
    while (atomic_load(&t.first) == NONE && (iterations < 0 || done < iterations) &&
           now_s() < t.deadline) {
        t.iterations = iterations < 0 || iterations - done > EPOCH ? EPOCH : iterations - done;
        stuck = run_epoch(&t, ws, nthreads);
        done += t.iterations;
        epochs++;
        if (stuck > 0) {
            report(&t, STUCK);
            break;
        }
        if (atomic_load(&t.first) == NONE) {
            enum damage d = check_pool_whole(&t);
            if (d != NONE)
                report(&t, d);
        }
    }
    double secs = now_s() - started;
#ifdef TORTURE_HOOKED
    if (stuck == 0)
        lfp_test_pop_hook = NULL;
#endif

    long ops = atomic_load(&t.ops);
    enum damage first = (enum damage)atomic_load(&t.first);
    printf("     capacity %zu: %d threads, %ld epochs, %ld ops in %.2f s, "
           "%ld allocs found the pool empty, %ld double handouts",
           cap, nthreads, epochs, ops, secs, atomic_load(&t.allocs_failed),
           atomic_load(&t.seen[DOUBLE_HANDOUT]));
#ifdef TORTURE_HOOKED
    printf(", %ld pop hook calls", atomic_load(&t.hook_calls));
#endif
    printf("\n");
    if (first != NONE)
        printf("     detected: %s, after %ld ops and %.3f s\n", damage_name[first],
               t.ops_at_first, t.time_at_first);
    for (int k = NONE + 1; k < NKINDS; k++)
        if (atomic_load(&t.seen[k]) && k != (int)first)
            printf("     also: %s (%ld times)\n", damage_name[k], atomic_load(&t.seen[k]));
    fflush(stdout);

#ifdef TORTURE_HOOKED
    /* Otherwise the window this build widens was never open. */
    if (stuck == 0)
        CHECK(atomic_load(&t.hook_calls) > 0);
#endif

    if (EXPECT_ABA) {
        /* The stack without its tag must have been caught. The damaged pool
         * is left as it is (leaked): tearing it down could crash. */
        if (first == NONE)
            fprintf(stderr, "capacity %zu: the tagless stack survived %ld ops in %.1f s "
                            "undetected: the torture is too weak\n", cap, ops, secs);
        CHECK(first != NONE);
        if (first == NONE)
            CHECK_EQ(lfp_pool_destroy(t.pool), 0);
    } else {
        CHECK_EQ(atomic_load(&t.seen[DOUBLE_HANDOUT]), 0);
        CHECK_EQ(atomic_load(&t.seen[UNKNOWN_BLOCK]), 0);
        CHECK_EQ(atomic_load(&t.seen[PATTERN]), 0);
        CHECK_EQ(atomic_load(&t.seen[FREE_REJECTED]), 0);
        CHECK_EQ(atomic_load(&t.seen[ALLOC_ERRNO]), 0);
        CHECK_EQ(stuck, 0);
        CHECK_EQ(atomic_load(&t.seen[DRAIN]), 0);
        CHECK_EQ(atomic_load(&t.seen[VERIFY]), 0);
        /* All the work was done, within the time limit. */
        CHECK_EQ(done, iterations);
        CHECK(secs < limit);
        CHECK(ops > 0);
        if (first == NONE) {
            struct lfp_stats st;
            CHECK_EQ(lfp_pool_stats(t.pool, &st), 0);
            CHECK_EQ(st.blocks_in_use, 0);
            CHECK_EQ(st.blocks_carved, cap);
            CHECK_EQ(lfp_pool_verify(t.pool), 0);
            CHECK_EQ(lfp_pool_destroy(t.pool), 0);
        }
    }

    if (stuck > 0) {
        /* Threads are still inside the pool: nothing more can run safely. */
        printf("     %d threads did not come back; stopping here\n", stuck);
        int rc = check_done();
        fflush(stdout);
        fflush(stderr);
        _exit(rc);
    }
}

#if EXPECT_ABA
static void tagless_stack_is_caught_on_a_pool_of_2_blocks(void)
{
    torture(2);
}

static void tagless_stack_is_caught_on_a_pool_of_3_blocks(void)
{
    torture(3);
}

static void tagless_stack_is_caught_on_a_pool_of_4_blocks(void)
{
    torture(4);
}
#else
static void pool_of_2_blocks_never_hands_a_block_to_two_owners(void)
{
    torture(2);
}

static void pool_of_3_blocks_never_hands_a_block_to_two_owners(void)
{
    torture(3);
}

static void pool_of_4_blocks_never_hands_a_block_to_two_owners(void)
{
    torture(4);
}
#endif

#ifdef TORTURE_HOOKED
/* The hooked and the tagless builds run on two CPUs at most. The depot has
 * a stack per CPU, so on many CPUs a pool of 2 to 4 blocks is spread over
 * stacks that threads on other CPUs seldom share, and the ABA the tagless
 * build must show grew rare: with 16 threads on a 16-core machine its TSan
 * run once went 10 s without damage at capacities 2 and 4. On two CPUs the
 * threads meet on the same stacks, as on the 2-core machine, where it is
 * caught within a second. Both builds run alike, so the one with the tag
 * is tried as hard as the control shows the torture can. */
static void confine_to_two_cpus(void)
{
    cpu_set_t saved, two;
    int a = 0, b = 0;
    if (!check_two_cpus(&saved, &a, &b))
        return;
    CPU_ZERO(&two);
    CPU_SET(a, &two);
    CPU_SET(b, &two);
    REQUIRE(sched_setaffinity(0, sizeof two, &two) == 0);
    printf("running on CPUs %d and %d\n", a, b);
}
#endif

int main(void)
{
#if EXPECT_ABA
    printf("library built without the ABA tag: each run must detect damage\n");
#elif defined(TORTURE_HOOKED)
    printf("library with a pop hook that widens the ABA window\n");
#endif
#ifdef TORTURE_HOOKED
    confine_to_two_cpus();
#endif
#if EXPECT_ABA
    RUN(tagless_stack_is_caught_on_a_pool_of_2_blocks);
    RUN(tagless_stack_is_caught_on_a_pool_of_3_blocks);
    RUN(tagless_stack_is_caught_on_a_pool_of_4_blocks);
#else
    RUN(pool_of_2_blocks_never_hands_a_block_to_two_owners);
    RUN(pool_of_3_blocks_never_hands_a_block_to_two_owners);
    RUN(pool_of_4_blocks_never_hands_a_block_to_two_owners);
#endif
    return check_done();
}
