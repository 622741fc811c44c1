/* SPDX-License-Identifier: MIT */
/*
 * The depot's stacks, one per CPU, replayed step by step: this program
 * supplies its own sched_getcpu (a CPU number per thread, set by the test),
 * and the library's pop hook (LFP_TEST_HOOKS) runs other "threads'" steps in
 * the middle of a pop, between its read of the top's link and its CAS.
 */
#include <errno.h>
#include <stdio.h>
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

int main(void)
{
    RUN(a_block_moving_behind_a_scan_is_still_found);
    return check_done();
}
