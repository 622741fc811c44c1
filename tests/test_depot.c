/* SPDX-License-Identifier: MIT */
/*
 * The depot's stacks, one per CPU, replayed step by step: this program
 * supplies its own sched_getcpu (a CPU number per thread, set by the test),
 * and the library's pop hook (LFP_TEST_HOOKS) runs other "threads'" steps in
 * the middle of a pop, between its read of the top's link and its CAS.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lfpool.h>

#include "check.h"
#include "internal.h" /* struct lfp_free, LFP_BATCH_LANES */

extern void (*lfp_test_pop_hook)(void);
extern void (*_Atomic lfp_test_seed_hook)(void);
extern void (*_Atomic lfp_test_steal_hook)(void);
extern void (*_Atomic lfp_test_take_hook)(void);
extern void (*_Atomic lfp_test_inflight_hook)(void);

static __thread int fake_cpu;

/* Overrides the C library's: the library asks this program for the CPU. */
int sched_getcpu(void)
{
    return fake_cpu;
}

static lfp_pool *pool;

/* Steps on two CPUs need two depot stacks: on one CPU there is one. */
static bool one_depot_stack(void)
{
    if (depot_stacks() >= 2)
        return false;
    printf("  skipped: one depot stack (one CPU)\n");
    return true;
}
static void *block_a, *block_b, *taken_by_v;

/* Inside T's pop of stack 1: U, on CPU 0, frees b onto stack 0 (already
 * passed by T's scan), then V, on CPU 1, takes a from stack 1, so T's CAS
 * fails and T finds stack 1 empty. */
static void u_frees_then_v_takes(void)
{
    lfp_test_pop_hook = NULL;
    fake_cpu = 0;
    CHECK_EQ(lfp_free(pool, block_b), LFP_OK);
    fake_cpu = 1;
    taken_by_v = lfp_alloc(pool);
    fake_cpu = 0;
}

/* A scan that finds each stack empty in turn must not conclude the depot is
 * empty while a block moved from a stack it had not reached to one it had
 * passed: the depot was never empty, so the pool (full: every block carved)
 * must not fail with ENOBUFS. Fails when the pop does not look again after
 * a stack's tag moved. */
static void a_block_moving_behind_a_scan_is_still_found(void)
{
    if (one_depot_stack())
        return;
    struct lfp_config cfg = { .block_size = 64, .capacity = 2, .flags = LFP_NO_CACHE };
    pool = create_pool(&cfg);
    fake_cpu = 0;
    block_a = lfp_alloc(pool);
    block_b = lfp_alloc(pool);
    REQUIRE(block_a != NULL && block_b != NULL);
    fake_cpu = 1;
    CHECK_EQ(lfp_free(pool, block_a), LFP_OK); /* onto stack 1 */
    fake_cpu = 0;
    lfp_test_pop_hook = u_frees_then_v_takes;
    errno = 0;
    void *t = lfp_alloc(pool); /* T, on CPU 0: stack 0 empty, then stack 1 */
    lfp_test_pop_hook = NULL;
    CHECK(taken_by_v == block_a);
    CHECK(t == block_b);
    if (t == NULL)
        printf("  T got NULL (%s) with a block free in the depot throughout\n",
               strerror(errno));
    struct lfp_stats st = stats_of(pool);
    CHECK_EQ(st.blocks_in_use, t != NULL ? 2 : 1);
    CHECK_EQ(lfp_free(pool, block_a), LFP_OK);
    if (t != NULL)
        CHECK_EQ(lfp_free(pool, t), LFP_OK);
    verify_and_destroy(pool, 0);
}

/* Without a cache, a fixed pool carves a block only when the depot is
 * empty, which can leave it fewer blocks than threads: then a thread whose
 * CPU's stack is empty takes another CPU's block, that CPU's thread does
 * the same, and blocks go round the CPUs (hundreds of ns a pair on 16
 * cores). Until it has carved one block per depot stack, a thread whose
 * stack is empty carves instead, so each CPU keeps its own block; past
 * that, carving is at the peak again. Fails when a CPU takes another's
 * block while the pool has carved fewer blocks than it has stacks. */
static void each_cpu_keeps_a_block_of_its_own_without_a_cache(void)
{
    struct lfp_config cfg = { .block_size = 64, .capacity = 1024, .flags = LFP_NO_CACHE };
    pool = create_pool(&cfg);
    size_t stacks = (size_t)((struct lfp_pool *)pool)->depot_mask + 1;
    CHECK_EQ(stacks, depot_stacks()); /* as the header documents */
    void *own[64];
    for (size_t c = 0; c < stacks; c++) { /* one CPU after another */
        fake_cpu = (int)c;
        own[c] = lfp_alloc(pool);
        REQUIRE(own[c] != NULL);
        CHECK_EQ(lfp_free(pool, own[c]), LFP_OK);
    }
    CHECK_EQ(stats_of(pool).blocks_carved, stacks);
    size_t shared = 0; /* own blocks of two CPUs that are one block */
    for (size_t c = 1; c < stacks; c++)
        shared += own[c] == own[c - 1];
    CHECK_EQ(shared, 0);
    size_t others = 0;
    for (int round = 0; round < 1000; round++) {
        for (size_t c = 0; c < stacks; c++) {
            fake_cpu = (int)c;
            void *b = lfp_alloc(pool);
            REQUIRE(b != NULL);
            others += b != own[c];
            CHECK_EQ(lfp_free(pool, b), LFP_OK);
        }
    }
    CHECK_EQ(others, 0);
    /* Past one block per stack: the depot's blocks first (stack 0's, then
     * the others'), then one carve per block beyond them, so carved is the
     * peak in use. */
    fake_cpu = 0;
    void *v[65];
    CHECK_EQ(alloc_all(pool, v, stacks), stacks);
    CHECK_EQ(stats_of(pool).blocks_carved, stacks);
    v[stacks] = lfp_alloc(pool);
    REQUIRE(v[stacks] != NULL);
    CHECK_EQ(stats_of(pool).blocks_carved, stacks + 1);
    CHECK_EQ(stats_of(pool).blocks_in_use_max, stacks + 1);
    free_all(pool, v, stacks + 1);
    verify_and_destroy(pool, 0);
    fake_cpu = 0;
}

/* A pool with fewer blocks than depot stacks: the carve a CPU with an empty
 * stack tries finds the pool carved out, and the pop must then look at the
 * other stacks rather than fail. Fails when the carve's ENOBUFS ends the
 * allocation while another CPU's stack holds a free block. */
static void a_carved_out_pool_still_gives_another_cpus_block(void)
{
    struct lfp_config cfg = { .block_size = 64, .capacity = 1, .flags = LFP_NO_CACHE };
    pool = create_pool(&cfg);
    size_t stacks = (size_t)((struct lfp_pool *)pool)->depot_mask + 1;
    fake_cpu = 0;
    void *a = lfp_alloc(pool);
    REQUIRE(a != NULL);
    CHECK_EQ(lfp_free(pool, a), LFP_OK); /* onto stack 0 */
    fake_cpu = (int)(stacks - 1);         /* stack 0 only when there is one */
    errno = 0;
    void *b = lfp_alloc(pool);
    CHECK(b == a);
    CHECK_EQ(errno, 0); /* a block was free: no ENOBUFS left behind */
    CHECK(lfp_alloc(pool) == NULL); /* the pool is still bounded */
    CHECK_EQ(errno, ENOBUFS);
    CHECK_EQ(stats_of(pool).blocks_carved, 1);
    if (b != NULL)
        CHECK_EQ(lfp_free(pool, b), LFP_OK);
    verify_and_destroy(pool, 0);
    fake_cpu = 0;
}

/* Threads whose CPU's stack is empty race for the carve that gives that
 * stack its block, when the pool has carved one block fewer than it has
 * stacks: one of them may carve, the others must take the blocks the other
 * stacks hold, so the pool ends with one block per stack, no more (the
 * documented bound: the larger of the peak and the stack count). Fails,
 * now and then, when the carve is not bounded by the stack count. */
/* Inside T's pop, after T found its stack empty and the pool short of one
 * block per stack, before T's carve: U, on T's CPU, does the same and
 * carves the last stack's block. */
static void u_seeds_the_same_stack(void)
{
    atomic_store(&lfp_test_seed_hook, NULL);
    block_b = lfp_alloc(pool);
}

/* Two threads on one CPU whose stack is empty, the pool one block short of
 * one per stack, both decide to carve that stack's block: the first carve
 * takes it, and the second must fail and take a block from another stack,
 * or the pool passes its documented bound (the larger of the peak and the
 * stack count). Fails when the carve is bounded by the capacity only. */
static void two_threads_deciding_to_carve_for_one_stack_carve_once(void)
{
    size_t stacks = depot_stacks();
    struct lfp_config cfg = { .block_size = 64, .capacity = 1024, .flags = LFP_NO_CACHE };
    pool = create_pool(&cfg);
    void *first[64];
    for (size_t c = 0; c + 1 < stacks; c++) { /* a block on each stack but the last */
        fake_cpu = (int)c;
        first[c] = lfp_alloc(pool);
        REQUIRE(first[c] != NULL);
        CHECK_EQ(lfp_free(pool, first[c]), LFP_OK);
    }
    fake_cpu = (int)stacks - 1;
    block_b = NULL;
    atomic_store(&lfp_test_seed_hook, u_seeds_the_same_stack);
    void *t = lfp_alloc(pool); /* T; U's allocation runs inside it */
    atomic_store(&lfp_test_seed_hook, NULL);
    REQUIRE(t != NULL && block_b != NULL);
    CHECK(t != block_b);
    /* Two blocks in use: one stack (one CPU) needs a second carve. */
    CHECK_EQ(stats_of(pool).blocks_carved, stacks >= 2 ? stacks : 2);
    if (stacks >= 2)
        CHECK(t == first[0]); /* the scan's first stack after T's own */
    void *held[] = { t, block_b };
    free_all(pool, held, 2);
    verify_and_destroy(pool, 0);
    fake_cpu = 0;
}

enum { RACERS_MAX = 64 };
struct seed_race {
    pthread_barrier_t go;
    int cpu; /* the racers' CPU this trial; -1: stop */
    void *got[RACERS_MAX];
};
struct seed_racer {
    struct seed_race *race;
    size_t me;
};

/* Per trial, every racer and the main thread meet four times: the pool is
 * ready; each racer holds its block; main has looked; the blocks are free. */
static void *seed_racer(void *arg)
{
    struct seed_racer *a = arg;
    struct seed_race *r = a->race;
    for (;;) {
        pthread_barrier_wait(&r->go);
        if (r->cpu < 0)
            return NULL;
        fake_cpu = r->cpu;
        r->got[a->me] = lfp_alloc(pool);
        pthread_barrier_wait(&r->go);
        pthread_barrier_wait(&r->go);
        if (r->got[a->me] != NULL)
            CHECK_EQ(lfp_free(pool, r->got[a->me]), LFP_OK);
        pthread_barrier_wait(&r->go);
    }
}

static void racing_threads_carve_no_more_than_one_block_per_stack(void)
{
    if (one_depot_stack())
        return;
    size_t stacks = depot_stacks();
    /* As many threads as stacks: with the blocks of stacks - 1 stacks in
     * the depot and one carve for the last stack, each gets a block. */
    size_t n = stacks;
    struct seed_race r = { .cpu = 0 };
    struct seed_racer args[RACERS_MAX];
    pthread_t th[RACERS_MAX];
    REQUIRE(pthread_barrier_init(&r.go, NULL, (unsigned)n + 1) == 0);
    for (size_t i = 0; i < n; i++) {
        args[i] = (struct seed_racer){ .race = &r, .me = i };
        REQUIRE(pthread_create(&th[i], NULL, seed_racer, &args[i]) == 0);
    }
    long trials = scaled(2000, 100), over = 0, short_of_blocks = 0, twice = 0;
    for (long t = 0; t < trials; t++) {
        struct lfp_config cfg = { .block_size = 64, .capacity = 1024, .flags = LFP_NO_CACHE };
        pool = create_pool(&cfg);
        for (size_t c = 0; c + 1 < stacks; c++) { /* a block on each stack but the last */
            fake_cpu = (int)c;
            void *b = lfp_alloc(pool);
            REQUIRE(b != NULL);
            CHECK_EQ(lfp_free(pool, b), LFP_OK);
        }
        r.cpu = (int)stacks - 1;
        pthread_barrier_wait(&r.go);
        pthread_barrier_wait(&r.go);
        over += stats_of(pool).blocks_carved > stacks;
        void *got[RACERS_MAX];
        memcpy(got, r.got, n * sizeof got[0]);
        qsort(got, n, sizeof got[0], cmp_addr);
        for (size_t i = 0; i < n; i++) {
            short_of_blocks += got[i] == NULL;
            twice += i > 0 && got[i] != NULL && got[i] == got[i - 1];
        }
        pthread_barrier_wait(&r.go);
        pthread_barrier_wait(&r.go);
        verify_and_destroy(pool, 0);
    }
    r.cpu = -1;
    pthread_barrier_wait(&r.go);
    for (size_t i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&r.go);
    if (over != 0)
        printf("  %ld of %ld trials carved more than one block per stack\n", over, trials);
    CHECK_EQ(over, 0);
    CHECK_EQ(short_of_blocks, 0);
    CHECK_EQ(twice, 0);
    fake_cpu = 0;
}

/* Batches on depot stack i, top first into v (up to max); no other thread
 * may be in the library. */
static size_t depot_list(uint32_t i, void **v, size_t max)
{
    const struct lfp_pool *p = (const struct lfp_pool *)pool;
    size_t n = 0;
    for (struct lfp_node *x = p->depot[i].stack.head.ptr; x != NULL; x = x->next, n++)
        if (n < max)
            v[n] = lfp_block_of((struct lfp_free *)x, p->link_off);
    return n;
}

/* How many of got[0..n) differ from want[0..n), place by place. */
static size_t misplaced(void *const *got, void *const *want, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += got[i] != want[i];
    return k;
}

enum pool_kind { FIXED_FULL, FIXED_ROOMY, GROWABLE };

/* A pool without a cache whose n blocks were all freed on CPU 1, top first
 * in v (v[0] freed last). Fixed: carved out when FIXED_FULL, and n is more
 * than the stack count, so that no CPU carves a block of its own any more.
 * Growable: n is its one slab's blocks. */

static size_t freed_on_cpu_1(void **v, enum pool_kind kind)
{
    size_t n = depot_stacks() + 4;
    struct lfp_config cfg = { .block_size = 64, .capacity = kind == FIXED_FULL ? n : 4 * n,
                              .flags = LFP_NO_CACHE };
    if (kind == GROWABLE) /* 16 blocks a slab */
        cfg = (struct lfp_config){ .block_size = 4096, .slab_size = 64 << 10,
                                   .flags = LFP_GROWABLE | LFP_NO_CACHE };
    pool = create_pool(&cfg);
    fake_cpu = 1;
    void *out[68];
    if (kind == GROWABLE) {
        out[0] = lfp_alloc(pool);
        REQUIRE(out[0] != NULL);
        n = stats_of(pool).blocks_total;
        REQUIRE(n >= 2 && n <= 68);
        CHECK_EQ(alloc_all(pool, out + 1, n - 1), n - 1);
        CHECK_EQ(stats_of(pool).blocks_total, n);
    } else {
        CHECK_EQ(alloc_all(pool, out, n), n);
    }
    free_all(pool, out, n);
    for (size_t i = 0; i < n; i++)
        v[i] = out[n - 1 - i];
    CHECK_EQ(depot_list(1, out, 0), n);
    return n;
}

/* Without a cache, a thread whose CPU's stack is empty takes another CPU's
 * stack whole: it keeps the top block, and the rest moves onto its own
 * CPU's stack in the order it had, so a thread that allocates what another
 * CPU frees takes a run of blocks from that CPU's stack at a time rather
 * than one CAS on its line per block. Fails when the scan pops one block
 * off the other stack, or the move loses or reorders blocks. */
static void a_cpu_with_an_empty_stack_takes_another_cpus_stack_whole(void)
{
    if (one_depot_stack())
        return;
    void *v[68], *got[68];
    size_t n = freed_on_cpu_1(v, FIXED_ROOMY);
    fake_cpu = 0;
    got[0] = lfp_alloc(pool);
    CHECK(got[0] == v[0]);
    CHECK_EQ(depot_list(1, got + 1, 0), 0);
    CHECK_EQ(depot_list(0, got + 1, n), n - 1);
    CHECK_EQ(misplaced(got + 1, v + 1, n - 1), 0);
    /* The rest comes from CPU 0's stack, in that order; nothing carved. */
    CHECK_EQ(alloc_all(pool, got + 1, n - 1), n - 1);
    CHECK_EQ(misplaced(got + 1, v + 1, n - 1), 0);
    CHECK_EQ(stats_of(pool).blocks_carved, n);
    free_all(pool, got, n);
    verify_and_destroy(pool, 0);
    fake_cpu = 0;
}

/* Inside T's take of CPU 1's stack, before its rest goes onto CPU 0's: U,
 * on CPU 0, frees a block there. */
static void *block_u;

static void u_frees_on_the_takers_cpu(void)
{
    atomic_store(&lfp_test_steal_hook, NULL);
    CHECK_EQ(lfp_free(pool, block_u), LFP_OK);
}

/* The taker's own stack may have gained blocks by the time the rest goes
 * there: those stay on top, and every block of both is still there once.
 * Fails when the rest replaces the stack rather than goes below its
 * blocks. */
static void blocks_freed_on_the_takers_cpu_meanwhile_stay_on_top(void)
{
    if (one_depot_stack())
        return;
    void *v[68], *got[68];
    size_t n = freed_on_cpu_1(v, FIXED_ROOMY);
    fake_cpu = 0;
    block_u = lfp_alloc(pool); /* takes v[0], v[1..] go to stack 0 */
    CHECK(block_u == v[0]);
    void *w = lfp_alloc(pool);
    CHECK(w == v[1]);
    CHECK_EQ(lfp_free(pool, w), LFP_OK); /* stack 0: v[1], v[2], ... */
    fake_cpu = 1;
    CHECK(lfp_alloc(pool) == w); /* CPU 1 takes stack 0 in turn: v[2..] */
    fake_cpu = 0;
    atomic_store(&lfp_test_steal_hook, u_frees_on_the_takers_cpu);
    void *t = lfp_alloc(pool); /* T: takes stack 1, U frees v[0] inside */
    atomic_store(&lfp_test_steal_hook, NULL);
    CHECK(t == v[2]);
    /* Stack 0: U's block, then the rest of stack 1, in order. */
    CHECK_EQ(depot_list(0, got, n), n - 2);
    CHECK(got[0] == v[0]);
    CHECK_EQ(misplaced(got + 1, v + 3, n - 3), 0);
    CHECK_EQ(depot_list(1, got, 0), 0);
    void *held[] = { w, t };
    free_all(pool, held, 2);
    verify_and_destroy(pool, 0);
    fake_cpu = 0;
}

/* Every free block on CPU 1's stack: while T, on CPU 0, has taken that
 * stack and not yet put its rest on its own, W finds every stack empty.
 * Those blocks are free, so W must wait for them: at the pool's capacity
 * rather than fail with ENOBUFS, below it rather than carve a block beyond
 * the peak in use, in a growable pool rather than grow a slab beside them
 * (a slab never needed: one such growth every few seconds, four producer
 * and consumer pairs grew a pool of at most 256 blocks in use without end). */
static _Atomic bool w_found_nothing;
static _Atomic bool w_done;
static void *w_got;

static void w_notes_it_found_nothing(void)
{
    atomic_store(&w_found_nothing, true);
}

static void *w_allocates(void *arg)
{
    (void)arg;
    fake_cpu = 0;
    errno = 0;
    w_got = lfp_alloc(pool);
    if (w_got == NULL)
        printf("  W got NULL (%s) beside blocks on their way to a stack\n", strerror(errno));
    atomic_store(&w_done, true);
    return NULL;
}

static pthread_t w_thread;

static void start_w_and_let_it_find_nothing(void)
{
    atomic_store(&lfp_test_steal_hook, NULL);
    REQUIRE(pthread_create(&w_thread, NULL, w_allocates, NULL) == 0);
    /* W calls the take hook each time it finds nothing to take or carve:
     * the first time, it then looks at what is in flight. */
    while (!atomic_load(&w_found_nothing) && !atomic_load(&w_done))
        sched_yield();
    struct timespec ms = { 0, 1000 * 1000 };
    nanosleep(&ms, NULL);
}

static void w_waits_for_a_taken_stack(enum pool_kind kind)
{
    if (one_depot_stack())
        return;
    void *v[68];
    size_t n = freed_on_cpu_1(v, kind);
    CHECK_EQ(stats_of(pool).blocks_carved, n);
    atomic_store(&w_found_nothing, false);
    atomic_store(&w_done, false);
    atomic_store(&lfp_test_take_hook, w_notes_it_found_nothing);
    atomic_store(&lfp_test_steal_hook, start_w_and_let_it_find_nothing);
    fake_cpu = 0;
    void *t = lfp_alloc(pool); /* T */
    REQUIRE(pthread_join(w_thread, NULL) == 0);
    atomic_store(&lfp_test_take_hook, NULL);
    CHECK(t == v[0]);
    CHECK(atomic_load(&w_found_nothing)); /* W did look while T held them */
    CHECK(w_got == v[1]);
    CHECK_EQ(stats_of(pool).blocks_carved, n);
    void *held[] = { t, w_got };
    free_all(pool, held, w_got != NULL ? 2 : 1);
    verify_and_destroy(pool, 0);
    fake_cpu = 0;
}

static void a_thread_at_the_bound_waits_for_a_taken_stack(void)
{
    w_waits_for_a_taken_stack(FIXED_FULL);
}

static void a_thread_below_the_bound_waits_for_a_taken_stack_rather_than_carve(void)
{
    w_waits_for_a_taken_stack(FIXED_ROOMY);
}

static void a_growable_pool_waits_for_a_taken_stack_rather_than_grow(void)
{
    w_waits_for_a_taken_stack(GROWABLE);
}

/* Two threads each in the middle of a move, each interrupted there by a
 * handler that allocates (a hook inside the move stands in for it), with
 * every free block out of sight in the two moves: neither handler may wait
 * for the other thread's move, for that thread waits for its handler (the
 * two waited for each other for ever: a signal storm on a pool without a
 * cache hung so under TSan on 16 cores). They carve instead. */
static _Atomic int in_move;
static void *stand_in_got[2];

static void both_moves_allocate(void)
{
    int me = atomic_fetch_add(&in_move, 1);
    if (me >= 2)
        return; /* a stand-in's own take of a stack the other thread landed */
    while (atomic_load(&in_move) < 2)
        sched_yield();
    stand_in_got[me] = lfp_alloc(pool);
}

static void *t1_moves(void *arg)
{
    (void)arg;
    fake_cpu = 1;
    return lfp_alloc(pool);
}

static void *t0_moves(void *arg)
{
    (void)arg;
    fake_cpu = 0;
    return lfp_alloc(pool);
}

static void handlers_in_two_moves_do_not_wait_for_each_other(void)
{
    if (one_depot_stack())
        return;
    void *v[68];
    size_t n = freed_on_cpu_1(v, FIXED_ROOMY);
    /* Two blocks off CPU 1's stack, for CPU 0's later. */
    void *x = lfp_alloc(pool), *y = lfp_alloc(pool);
    REQUIRE(x != NULL && y != NULL);
    atomic_store(&in_move, 0);
    memset(stand_in_got, 0, sizeof stand_in_got);
    atomic_store(&lfp_test_steal_hook, both_moves_allocate);
    alarm(60); /* the hang this test is about kills it */
    pthread_t t0, t1;
    REQUIRE(pthread_create(&t0, NULL, t0_moves, NULL) == 0); /* takes CPU 1's stack */
    while (atomic_load(&in_move) < 1)
        sched_yield();
    fake_cpu = 0;
    CHECK_EQ(lfp_free(pool, x), LFP_OK);
    CHECK_EQ(lfp_free(pool, y), LFP_OK);
    REQUIRE(pthread_create(&t1, NULL, t1_moves, NULL) == 0); /* takes CPU 0's */
    void *got0, *got1;
    REQUIRE(pthread_join(t0, &got0) == 0);
    REQUIRE(pthread_join(t1, &got1) == 0);
    alarm(0);
    atomic_store(&lfp_test_steal_hook, NULL);
    CHECK(atomic_load(&in_move) >= 2);
    CHECK(got0 == v[2]);
    CHECK(got1 == y);
    CHECK(stand_in_got[0] != NULL && stand_in_got[1] != NULL);
    /* The first carves; the second too, or finds the blocks the first's
     * thread landed meanwhile. */
    size_t carved = stats_of(pool).blocks_carved;
    CHECK(carved == n + 1 || carved == n + 2);
    void *held[] = { got0, got1, stand_in_got[0], stand_in_got[1] };
    free_all(pool, held, 4);
    verify_and_destroy(pool, 0);
    fake_cpu = 0;
}

/* A signal handler may allocate from a pool whose stack its thread is
 * moving: it must not wait for that move, its own, also when it
 * interrupted the thread between the move's record in the thread's list
 * and the move's count in the pool (at the move's start, or at its
 * landing), where the two disagree. Here the hook inside those spans
 * stands in for the handler, at T's first span (its move's start) or
 * second (the landing): it takes every free block of the pool's one slab,
 * and one more, which the pool must grow for (it spun for ever on a move
 * in flight, its own). */
static _Atomic int spans, handler_at;
static void *handler_got[70];
static size_t handler_wants;

static void handler_takes_all_and_one_more(void)
{
    if (atomic_fetch_add(&spans, 1) + 1 != atomic_load(&handler_at))
        return;
    for (size_t i = 0; i < handler_wants; i++)
        handler_got[i] = lfp_alloc(pool);
}

static void a_handler_does_not_wait_for_its_threads_move(int at)
{
    if (one_depot_stack())
        return;
    void *v[68];
    size_t n = freed_on_cpu_1(v, GROWABLE);
    /* At the landing T holds v[0] already. */
    handler_wants = at == 1 ? n + 1 : n;
    memset(handler_got, 0, sizeof handler_got);
    atomic_store(&spans, 0);
    atomic_store(&handler_at, at);
    atomic_store(&lfp_test_inflight_hook, handler_takes_all_and_one_more);
    fake_cpu = 0;
    alarm(60); /* the hang this test is about kills it */
    void *t = lfp_alloc(pool); /* T */
    alarm(0);
    atomic_store(&lfp_test_inflight_hook, NULL);
    CHECK(atomic_load(&spans) >= at);
    CHECK(t != NULL);
    size_t got = 0;
    for (size_t i = 0; i < handler_wants; i++)
        got += handler_got[i] != NULL;
    CHECK_EQ(got, handler_wants);
    CHECK_EQ(stats_of(pool).blocks_total, 2 * n); /* one growth */
    if (t != NULL)
        CHECK_EQ(lfp_free(pool, t), LFP_OK);
    for (size_t i = 0; i < handler_wants; i++)
        if (handler_got[i] != NULL)
            CHECK_EQ(lfp_free(pool, handler_got[i]), LFP_OK);
    verify_and_destroy(pool, 0);
    fake_cpu = 0;
}

static void a_handler_at_its_threads_move_start_does_not_wait_for_it(void)
{
    a_handler_does_not_wait_for_its_threads_move(1);
}

static void a_handler_at_its_threads_move_landing_does_not_wait_for_it(void)
{
    a_handler_does_not_wait_for_its_threads_move(2);
}

/* Two producers on CPU 0 hand blocks to a consumer on CPU 1 through a few
 * slots, so the producers keep taking CPU 1's stack, and now and then find
 * the depot empty while the other holds it. A fixed pool must not carve
 * past the most blocks in use at once (counted from before each alloc to
 * after each free, so at least the true peak) or the stack count; a
 * growable one, made with a slab of 16 blocks, more than that peak (at most
 * the slots, and a block in each thread's hands), must not grow. */
enum { HANDOFF_SLOTS = 8 };
static _Atomic(void *) handoff[HANDOFF_SLOTS];
static _Atomic long handoff_in_use, handoff_peak, handoff_left;
static _Atomic bool handoff_failed;

static void *handoff_producer(void *arg)
{
    fake_cpu = 0;
    size_t i = (size_t)(uintptr_t)arg;
    while (atomic_load(&handoff_left) > 0) {
        i = (i + 1) % HANDOFF_SLOTS;
        if (atomic_load(&handoff[i]) != NULL)
            continue;
        long now = atomic_fetch_add(&handoff_in_use, 1) + 1;
        long peak = atomic_load(&handoff_peak);
        while (now > peak && !atomic_compare_exchange_weak(&handoff_peak, &peak, now))
            ;
        void *b = lfp_alloc(pool);
        if (b == NULL) {
            atomic_store(&handoff_failed, true);
            atomic_store(&handoff_left, 0);
            break;
        }
        void *empty = NULL;
        if (atomic_compare_exchange_strong(&handoff[i], &empty, b)) {
            atomic_fetch_sub(&handoff_left, 1);
            continue;
        }
        CHECK_EQ(lfp_free(pool, b), LFP_OK);
        atomic_fetch_sub(&handoff_in_use, 1);
    }
    return NULL;
}

static void *handoff_consumer(void *arg)
{
    (void)arg;
    fake_cpu = 1;
    for (;;) {
        for (size_t i = 0; i < HANDOFF_SLOTS; i++) {
            void *b = atomic_exchange(&handoff[i], NULL);
            if (b != NULL) {
                CHECK_EQ(lfp_free(pool, b), LFP_OK);
                atomic_fetch_sub(&handoff_in_use, 1);
            }
        }
        if (atomic_load(&handoff_left) <= 0)
            return NULL; /* the main thread frees what is left */
    }
}

static void handoff_run(bool growable)
{
    if (one_depot_stack())
        return;
    struct lfp_config cfg = { .block_size = 64, .capacity = 1 << 20, .flags = LFP_NO_CACHE };
    if (growable)
        cfg = (struct lfp_config){ .block_size = 4096, .capacity = 16, .slab_size = 64 << 10,
                                   .flags = LFP_GROWABLE | LFP_NO_CACHE };
    pool = create_pool(&cfg);
    size_t made = stats_of(pool).blocks_total;
    atomic_store(&handoff_in_use, 0);
    atomic_store(&handoff_peak, 0);
    atomic_store(&handoff_failed, false);
    atomic_store(&handoff_left, scaled(400000, 20000));
    pthread_t th[3];
    REQUIRE(pthread_create(&th[0], NULL, handoff_producer, (void *)(uintptr_t)0) == 0);
    REQUIRE(pthread_create(&th[1], NULL, handoff_producer,
                           (void *)(uintptr_t)(HANDOFF_SLOTS / 2)) == 0);
    REQUIRE(pthread_create(&th[2], NULL, handoff_consumer, NULL) == 0);
    for (int i = 0; i < 3; i++)
        REQUIRE(pthread_join(th[i], NULL) == 0);
    /* A producer that passed its loop's test just before the count ran
     * out may have handed over a block after the consumer's last pass. */
    for (size_t i = 0; i < HANDOFF_SLOTS; i++) {
        void *b = atomic_exchange(&handoff[i], NULL);
        if (b != NULL)
            CHECK_EQ(lfp_free(pool, b), LFP_OK);
    }
    CHECK(!atomic_load(&handoff_failed));
    struct lfp_stats st = stats_of(pool);
    size_t peak = (size_t)atomic_load(&handoff_peak), stacks = depot_stacks();
    size_t bound = growable ? made : peak > stacks ? peak : stacks;
    if (growable)
        REQUIRE(peak < made);
    if (st.blocks_carved > bound)
        printf("  %zu blocks made ready with at most %zu in use at once and %zu stacks\n",
               st.blocks_carved, peak, stacks);
    CHECK(st.blocks_carved <= bound);
    CHECK_EQ(st.blocks_total, made);
    CHECK_EQ(st.blocks_in_use, 0);
    verify_and_destroy(pool, 0);
    fake_cpu = 0;
}

static void producers_taking_a_consumers_stack_carve_no_more_than_the_peak(void)
{
    handoff_run(false);
}

static void producers_taking_a_consumers_stack_grow_no_slab_beside_free_blocks(void)
{
    handoff_run(true);
}

/* A trim puts each block it keeps back on the stack it took it from: blocks
 * freed on CPU 1 still serve CPU 1 first after a thread on CPU 0 trimmed.
 * Fails when the kept blocks all go to the trimming thread's stack. */
static void a_trim_puts_kept_blocks_back_on_their_own_stacks(void)
{
    if (one_depot_stack())
        return;
    struct lfp_config cfg = { .block_size = 64, .slab_size = 64 << 10,
                              .flags = LFP_GROWABLE | LFP_NO_CACHE };
    pool = create_pool(&cfg);
    fake_cpu = 0;
    void *first = lfp_alloc(pool);
    REQUIRE(first != NULL);
    /* Without a cache the depot holds the rest of the first slab, and the
     * second slab is made only when it is empty. */
    size_t per_slab = stats_of(pool).blocks_total;
    REQUIRE(per_slab >= 4);
    size_t n = 2 * per_slab;
    void **v = calloc(n, sizeof *v);
    REQUIRE(v != NULL);
    v[0] = first;
    CHECK_EQ(alloc_all(pool, v + 1, n - 1), n - 1);
    CHECK_EQ(stats_of(pool).blocks_total, n);

    /* v[0] stays in use, so the first slab stays; the second is all free. */
    fake_cpu = 1;
    free_all(pool, v + 1, 2);
    fake_cpu = 0;
    free_all(pool, v + 3, n - 3);
    CHECK(lfp_pool_trim(pool) > 0);
    CHECK_EQ(stats_of(pool).blocks_total, per_slab);

    /* CPU 0's stack holds the rest of the first slab, and nothing else:
     * its blocks made ready, less v[0] (in use) and v[1], v[2] (CPU 1's).
     * The trim made the run of free pages after them a hole, which a
     * growth takes only once every stack is empty. */
    size_t m = stats_of(pool).blocks_carved - 3;
    REQUIRE(m >= 1 && m < per_slab - 3);
    void **w = calloc(m, sizeof *w);
    REQUIRE(w != NULL);
    CHECK_EQ(alloc_all(pool, w, m), m);
    size_t on_wrong_stack = 0;
    for (size_t i = 0; i < m; i++)
        on_wrong_stack += w[i] == v[1] || w[i] == v[2];
    CHECK_EQ(on_wrong_stack, 0);
    fake_cpu = 1;
    void *a = lfp_alloc(pool), *b = lfp_alloc(pool);
    CHECK((a == v[1] && b == v[2]) || (a == v[2] && b == v[1]));
    CHECK_EQ(stats_of(pool).blocks_in_use, m + 3);
    CHECK_EQ(stats_of(pool).blocks_total, per_slab);
    void *held[] = { v[0], a, b };
    free_all(pool, held, 3);
    free_all(pool, w, m);
    free(w);
    free(v);
    verify_and_destroy(pool, 0);
}

static void no_op_fini(void *block, void *arg)
{
    (void)block;
    (void)arg;
}

/* A growable pool (the global pool) of 64-byte blocks in slabs of slab
 * bytes, magazines of cache, on fake CPU 0, with two slabs' worth of
 * blocks allocated: per a slab, returned in v (2 * per, for the caller to
 * free). With whole, the pool has a destructor (which does nothing), so
 * that a trim keeps a slab in use whole, with no hole: its free blocks all
 * stay in the depot. */
static void **two_slabs_in_use(uint32_t cache, size_t slab, bool whole, size_t *per)
{
    struct lfp_config cfg = { .block_size = 64, .slab_size = slab,
                              .flags = LFP_GROWABLE, .cache_size = cache,
                              .fini = whole ? no_op_fini : NULL };
    pool = create_pool(&cfg);
    fake_cpu = 0;
    *per = slab / stats_of(pool).stride;
    void **v = calloc(2 * *per, sizeof *v);
    REQUIRE(v != NULL);
    CHECK_EQ(alloc_all(pool, v, 2 * *per), 2 * *per);
    REQUIRE(stats_of(pool).blocks_total == 2 * *per);
    return v;
}

/* A trim of the global pool: what it returns must be what left
 * bytes_reserved. */
static size_t trim_and_check(void)
{
    size_t before = stats_of(pool).bytes_reserved, got = lfp_pool_trim(pool);
    CHECK_EQ(got, before - stats_of(pool).bytes_reserved);
    return got;
}

/* Free the last block in use of a slab and trim: the slab goes, all of it
 * with whole (its pages given back before, as a hole, are not counted
 * again otherwise). */
static void free_and_trim(void *block, int whole, size_t slab)
{
    CHECK_EQ(lfp_free(pool, block), LFP_OK);
    lfp_thread_flush();
    size_t got = trim_and_check();
    CHECK(got > 0);
    if (whole)
        CHECK_EQ(got, slab);
}

/* The depot's block count, which decides when a growable pool trims by
 * itself, must stay exact across a trim by each of its ways: no slab free
 * and no hole made (the batches go back whole), holes made in slabs that
 * stay, some slabs free (the kept blocks are sorted out of the batches),
 * all free (nothing kept). It is the blocks made ready (blocks_carved,
 * which holes are not) less those in use, once no thread caches any.
 * Magazines of 100 spill as laned batches. */
static void a_trim_keeps_the_depots_block_count_exact(void)
{
    const size_t slab = 64 << 10;
    for (int whole = 1; whole >= 0; whole--) {
        size_t per;
        void **v = two_slabs_in_use(100, slab, whole, &per);
        size_t n = 2 * per;
        /* One block of each slab stays in use. */
        size_t keep[2], nkeep = 0;
        for (size_t i = 0; i < n && nkeep < 2; i++)
            if (nkeep == 0 || ((uintptr_t)v[i] & ~(uintptr_t)(slab - 1)) !=
                                  ((uintptr_t)v[keep[0]] & ~(uintptr_t)(slab - 1)))
                keep[nkeep++] = i;
        REQUIRE(nkeep == 2);
        void *held[2] = { v[keep[0]], v[keep[1]] };
        for (size_t i = 0; i < n; i++)
            if (i != keep[0] && i != keep[1])
                CHECK_EQ(lfp_free(pool, v[i]), LFP_OK);
        lfp_thread_flush();
        CHECK_EQ(atomic_load(&pool->depot_blocks), n - 2);
        /* No slab is free; without a destructor, each has a hole. */
        size_t got = trim_and_check();
        CHECK_EQ(got == 0, whole);
        CHECK_EQ(stats_of(pool).blocks_total, n);
        CHECK_EQ(atomic_load(&pool->depot_blocks), stats_of(pool).blocks_carved - 2);
        if (whole)
            CHECK_EQ(atomic_load(&pool->depot_blocks), n - 2);
        else
            CHECK(stats_of(pool).blocks_carved < n / 2);

        free_and_trim(held[1], whole, slab);
        CHECK_EQ(stats_of(pool).blocks_total, per);
        CHECK_EQ(atomic_load(&pool->depot_blocks), stats_of(pool).blocks_carved - 1);
        if (whole)
            CHECK_EQ(atomic_load(&pool->depot_blocks), per - 1);

        free_and_trim(held[0], whole, slab);
        CHECK_EQ(stats_of(pool).blocks_total, 0);
        CHECK_EQ(stats_of(pool).bytes_reserved, 0);
        CHECK_EQ(atomic_load(&pool->depot_blocks), 0);
        free(v);
        verify_and_destroy(pool, 0);
    }
}

/* The blocks a trim keeps, in a slab with a block still in use, go back
 * to the depot in laned batches, as a magazine's spill does: they came out
 * of spilled magazines, scattered, and a later trim or refill reading them
 * down one chain would miss the cache at every block (a pool of 4 Mi
 * blocks with a block in use in every other slab: a second trim took
 * 350-380 ms that way, 47-50 with lanes). For magazines of 1 to 3 blocks
 * (no lanes), L + 1 to L + 4, 100 and 600, the free blocks of the kept
 * slab, freed in a scattered order, must come back in batches of at most a magazine, each
 * longer than L + 2 laned, with lane links lfp_pool_verify accepts, and
 * each block must be taken back once. Twice: with a destructor, so that
 * the trim makes no hole and sorts every free block of the kept slab out
 * of the batches (a second walk), and without, where the holes take most
 * and the maps name the blocks kept. Fails when the trim links the kept
 * blocks on one chain, or a lane link is off by one. */
static void a_trims_kept_blocks_come_back_in_laned_batches(void)
{
    static const uint32_t sizes[] = { 1, 2, 3, LFP_BATCH_LANES + 1, LFP_BATCH_LANES + 2,
                                      LFP_BATCH_LANES + 3, LFP_BATCH_LANES + 4, 100, 600 };
    const size_t slab = 64 << 10;
    for (size_t zw = 0; zw < 2 * sizeof sizes / sizeof sizes[0]; zw++) {
        size_t z = zw / 2;
        bool whole = zw % 2 == 0;
        size_t per;
        void **v = two_slabs_in_use(sizes[z], slab, whole, &per);
        size_t n = 2 * per;
        /* v[0] stays in use; the rest are freed in a shuffled order. */
        uint64_t seed = 0x9e3779b97f4a7c15u;
        for (size_t i = n - 1; i > 1; i--) {
            size_t j = 1 + xorshift(&seed) % i;
            void *t = v[i];
            v[i] = v[j];
            v[j] = t;
        }
        free_all(pool, v + 1, n - 1);
        lfp_thread_flush();
        size_t got = lfp_pool_trim(pool);
        CHECK(whole ? got == slab : got > slab);
        size_t carved = stats_of(pool).blocks_carved;
        CHECK(whole ? carved == per : carved < per);
        uintptr_t kept = (uintptr_t)v[0] & ~(uintptr_t)(slab - 1);

        size_t held = 0, unlaned = 0, oversized = 0;
        for (uint32_t i = 0; i <= pool->depot_mask; i++)
            for (struct lfp_free *b = (struct lfp_free *)lfp_stack_peek(&pool->depot[i].stack);
                 b != NULL; b = b->next) {
                uint32_t len = lfp_batch_len(b);
                held += len;
                oversized += len > sizes[z];
                unlaned += len > LFP_BATCH_LANES + 2 && !lfp_batch_laned(b);
            }
        CHECK_EQ(held, carved - 1);
        CHECK_EQ(oversized, 0);
        CHECK_EQ(unlaned, 0);
        CHECK_EQ(lfp_pool_verify(pool), LFP_OK);

        /* Every free block of the kept slab, once (a hole's made ready). */
        size_t repeats = 0, elsewhere = 0;
        got = alloc_all(pool, v + 1, per - 1);
        CHECK_EQ(got, per - 1);
        void **sorted = sorted_blocks(v, got + 1, &repeats);
        for (size_t i = 0; i <= got; i++)
            elsewhere += ((uintptr_t)sorted[i] & ~(uintptr_t)(slab - 1)) != kept;
        CHECK_EQ(repeats, 0);
        CHECK_EQ(elsewhere, 0);
        CHECK_EQ(stats_of(pool).blocks_total, per);
        free(sorted);
        free_all(pool, v, got + 1);
        free(v);
        verify_and_destroy(pool, 0);
    }
}

/* A magazine that spills to the depot becomes a laned batch (struct
 * lfp_free): the thread that takes it reads its blocks L at a time through
 * the lane links. Each block must come back once, in the chain's order (for
 * the one magazine spilled here, the order its blocks were freed), for
 * magazines shorter than L + 2 blocks (no lane is read), of just L + 2, and
 * longer; and lfp_pool_verify must check each lane link and the length
 * word: a lane link bent to another block of the batch, or a high bit set
 * in the length, is LFP_EFOREIGN. Fails when a lane link or the refill's
 * reading of them is off by a block. */
static void a_spilled_magazine_comes_back_whole_and_in_order(void)
{
    static const uint32_t sizes[] = { 8, LFP_BATCH_LANES + 1, LFP_BATCH_LANES + 2,
                                      LFP_BATCH_LANES + 3, LFP_BATCH_LANES + 4, 17, 64, 100 };
    for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
        uint32_t c = sizes[z];
        struct lfp_config cfg = { .block_size = 64, .capacity = 16 * (size_t)c,
                                  .cache_size = c };
        pool = create_pool(&cfg);
        REQUIRE(stats_of(pool).cache_size == c);
        void **all = malloc(cfg.capacity * sizeof *all);
        REQUIRE(all != NULL);
        /* Every block out: the depot is empty, and the magazines. */
        REQUIRE(alloc_all(pool, all, cfg.capacity) == cfg.capacity);
        /* 2c + 1 frees: the first c blocks fill a magazine, which becomes
         * the previous one, and goes to the depot at the last free. */
        free_all(pool, all, 2 * (size_t)c + 1);
        CHECK_EQ(stats_of(pool).blocks_cached, (size_t)c + 1);
        CHECK_EQ(lfp_pool_verify(pool), LFP_OK);

        /* The batch: the block freed i-th is its block c - 1 - i. Bend
         * block 2's lane link (to block L + 2) to block L + 3. */
        if (c >= LFP_BATCH_LANES + 4) {
            struct lfp_free *l2 = all[c - 1 - 2];
            void *keep = l2->next;
            CHECK(keep == all[c - 1 - 2 - LFP_BATCH_LANES]);
            l2->next = all[c - 1 - 3 - LFP_BATCH_LANES];
            CHECK_EQ(lfp_pool_verify(pool), LFP_EFOREIGN);
            l2->next = keep;
            CHECK_EQ(lfp_pool_verify(pool), LFP_OK);
        }
        /* Block 1 holds the length: a stray high bit there is caught too,
         * not cut off with the bits above the 32 a length has. */
        struct lfp_free *l1 = all[c - 1 - 1];
        void *len_word = l1->next;
        CHECK((uintptr_t)len_word == ((uintptr_t)c << 1 | 1));
        l1->next = (void *)((uintptr_t)len_word | (uintptr_t)1 << (sizeof(uintptr_t) * 8 - 2));
        CHECK_EQ(lfp_pool_verify(pool), LFP_EFOREIGN);
        l1->next = len_word;
        CHECK_EQ(lfp_pool_verify(pool), LFP_OK);

        /* This thread's own magazines first (c + 1 blocks, the last ones
         * freed, newest first), then the batch: the oldest freed first. */
        for (size_t i = 2 * (size_t)c + 1; i-- > (size_t)c;)
            CHECK(lfp_alloc(pool) == all[i]);
        int before = check_failures;
        for (size_t i = 0; i < c; i++) {
            void *b = lfp_alloc(pool);
            CHECK(b == all[i]);
            if (b != all[i])
                break;
        }
        if (check_failures != before)
            printf("  magazine of %u blocks: the batch came back out of order\n", c);
        CHECK_EQ(stats_of(pool).blocks_cached, 0);
        free_all(pool, all, cfg.capacity);
        free(all);
        verify_and_destroy(pool, 0);
    }
}

/* The run a carve hands the carving thread is a chain of fresh blocks,
 * whose next words hold whatever the memory held: a refill must not read
 * them as a laned batch's length and lane links. Caller memory full of
 * ones makes every such word odd (the laned bit). Fails when the carved
 * chain carries no length of its own. */
static void a_carved_run_is_not_read_as_a_laned_batch(void)
{
    enum { C = 64, CAP = 16 * C };
    struct lfp_config cfg = { .block_size = 64, .capacity = CAP, .cache_size = C };
    cfg.mem_size = lfp_pool_bytes(&cfg);
    void *mem = NULL;
    REQUIRE(posix_memalign(&mem, 4096, cfg.mem_size) == 0);
    memset(mem, 0xff, cfg.mem_size);
    cfg.mem = mem;
    pool = create_pool(&cfg);
    void **all = malloc(CAP * sizeof *all);
    REQUIRE(all != NULL);
    size_t n = alloc_all(pool, all, CAP);
    CHECK_EQ(n, CAP);
    size_t foreign = 0;
    for (size_t i = 0; i < n; i++)
        foreign += lfp_owns(pool, all[i]) != 1;
    CHECK_EQ(foreign, 0);
    qsort(all, n, sizeof *all, cmp_addr);
    size_t twice = 0;
    for (size_t i = 1; i < n; i++)
        twice += all[i] == all[i - 1];
    CHECK_EQ(twice, 0);
    if (foreign == 0)
        free_all(pool, all, n);
    free(all);
    verify_and_destroy(pool, foreign == 0 ? 0 : n);
    free(mem);
}

int main(void)
{
    RUN(a_block_moving_behind_a_scan_is_still_found);
    RUN(each_cpu_keeps_a_block_of_its_own_without_a_cache);
    RUN(a_carved_out_pool_still_gives_another_cpus_block);
    RUN(two_threads_deciding_to_carve_for_one_stack_carve_once);
    RUN(racing_threads_carve_no_more_than_one_block_per_stack);
    RUN(a_cpu_with_an_empty_stack_takes_another_cpus_stack_whole);
    RUN(blocks_freed_on_the_takers_cpu_meanwhile_stay_on_top);
    RUN(a_thread_at_the_bound_waits_for_a_taken_stack);
    RUN(a_thread_below_the_bound_waits_for_a_taken_stack_rather_than_carve);
    RUN(a_growable_pool_waits_for_a_taken_stack_rather_than_grow);
    RUN(a_handler_at_its_threads_move_start_does_not_wait_for_it);
    RUN(a_handler_at_its_threads_move_landing_does_not_wait_for_it);
    RUN(handlers_in_two_moves_do_not_wait_for_each_other);
    RUN(producers_taking_a_consumers_stack_carve_no_more_than_the_peak);
    RUN(producers_taking_a_consumers_stack_grow_no_slab_beside_free_blocks);
    RUN(a_trim_puts_kept_blocks_back_on_their_own_stacks);
    RUN(a_trim_keeps_the_depots_block_count_exact);
    RUN(a_trims_kept_blocks_come_back_in_laned_batches);
    RUN(a_spilled_magazine_comes_back_whole_and_in_order);
    RUN(a_carved_run_is_not_read_as_a_laned_batch);
    return check_done();
}
