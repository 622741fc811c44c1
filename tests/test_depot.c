/* SPDX-License-Identifier: MIT */
/*
 * The depot's stacks, one per CPU, replayed step by step: this program
 * supplies its own sched_getcpu (a CPU number per thread, set by the test),
 * and the library's pop hook (LFP_TEST_HOOKS) runs other "threads'" steps in
 * the middle of a pop, between its read of the top's link and its CAS.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lfpool.h>

#include "check.h"

extern void (*lfp_test_pop_hook)(void);

static __thread int fake_cpu;

/* Overrides the C library's: the library asks this program for the CPU. */
int sched_getcpu(void)
{
    return fake_cpu;
}

static lfp_pool *pool;
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

/* A trim puts each block it keeps back on the stack it took it from: blocks
 * freed on CPU 1 still serve CPU 1 first after a thread on CPU 0 trimmed.
 * Fails when the kept blocks all go to the trimming thread's stack. */
static void a_trim_puts_kept_blocks_back_on_their_own_stacks(void)
{
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

    /* CPU 0's stack holds the rest of the first slab, and nothing else. */
    size_t m = per_slab - 3;
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
    CHECK_EQ(stats_of(pool).blocks_in_use, per_slab);
    CHECK_EQ(stats_of(pool).blocks_total, per_slab);
    void *held[] = { v[0], a, b };
    free_all(pool, held, 3);
    free_all(pool, w, m);
    free(w);
    free(v);
    verify_and_destroy(pool, 0);
}

int main(void)
{
    RUN(a_block_moving_behind_a_scan_is_still_found);
    RUN(a_trim_puts_kept_blocks_back_on_their_own_stacks);
    return check_done();
}
