/* SPDX-License-Identifier: MIT */
/*
 * The 16-byte compare-and-swap layer (arch/lfp_arch.h) on whichever backend
 * this build selected: its single-threaded contract value by value, then
 * under contention: no lost update, and no torn pair from the atomic load or
 * from a failed CAS.
 *
 * Environment: LFP_STRESS_SCALE (default 1.0) scales the iteration counts,
 * LFP_STRESS_THREADS (default 4) the thread count.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "lfp_arch.h"

/* Bit patterns that differ from each other in the high and low half of each
 * word, so a comparison that looked at only part of a word would notice. */
#define P1 ((void *)(uintptr_t)0x0123456789abcdf0u)
#define P2 ((void *)(uintptr_t)0x0123456789abcdf8u)
#define P3 ((void *)(uintptr_t)0x8123456789abcdf0u)
#define T1 ((uintptr_t)0xfedcba9876543210u)
#define T2 ((uintptr_t)0xfedcba9876543211u)
#define T3 ((uintptr_t)0x7edcba9876543210u)

static lfp_pair pair(void *ptr, uintptr_t tag)
{
    lfp_pair p;
    lfp_store2_init(&p, ptr, tag);
    return p;
}

static uintptr_t word(void *ptr)
{
    return (uintptr_t)ptr;
}

/* ---- single-threaded contract ----------------------------------------- */

static void cas2_success_stores_desired_pair_and_keeps_expected(void)
{
    lfp_pair mem = pair(P1, T1);
    lfp_pair exp = pair(P1, T1);

    CHECK(lfp_cas2(&mem, &exp, pair(P2, T2)));
    CHECK(mem.ptr == P2);
    CHECK(mem.tag == T2);
    CHECK(exp.ptr == P1);
    CHECK(exp.tag == T1);

    /* And again from the new value: the first success left nothing behind
     * that makes the next one fail. */
    exp = pair(P2, T2);
    CHECK(lfp_cas2(&mem, &exp, pair(NULL, 0)));
    CHECK(mem.ptr == NULL);
    CHECK_EQ(mem.tag, 0);
}

/* One failing CAS: memory holds `have`, the caller expects `want`. */
static void check_failed_cas2(lfp_pair have, lfp_pair want)
{
    lfp_pair mem = have;
    lfp_pair exp = want;

    CHECK(!lfp_cas2(&mem, &exp, pair(P3, T3)));
    /* Memory unchanged... */
    CHECK(mem.ptr == have.ptr);
    CHECK(mem.tag == have.tag);
    /* ...and the caller now knows what it holds. */
    CHECK(exp.ptr == have.ptr);
    CHECK(exp.tag == have.tag);
}

static void cas2_failure_on_ptr_mismatch_reports_observed_pair(void)
{
    check_failed_cas2(pair(P1, T1), pair(P2, T1));
    /* Only the top bit of the pointer differs. */
    check_failed_cas2(pair(P1, T1), pair(P3, T1));
}

static void cas2_failure_on_tag_mismatch_reports_observed_pair(void)
{
    check_failed_cas2(pair(P1, T1), pair(P1, T2));
    /* Only the top bit of the tag differs. */
    check_failed_cas2(pair(P1, T1), pair(P1, T3));
}

static void cas2_failure_on_both_mismatched_reports_observed_pair(void)
{
    check_failed_cas2(pair(P1, T1), pair(P2, T2));
    check_failed_cas2(pair(NULL, 0), pair(P1, T1));
    check_failed_cas2(pair(P1, T1), pair(NULL, 0));
}

static void cas2_does_not_confuse_ptr_and_tag_halves(void)
{
    /* The expected pair holds the right two words in the wrong halves. */
    check_failed_cas2(pair(P1, T1), pair((void *)T1, word(P1)));
}

static void cas2_observed_pair_makes_the_retry_succeed(void)
{
    /* The CAS loop idiom: a failed CAS hands back exactly what the next
     * attempt must expect. */
    lfp_pair mem = pair(P2, T2);
    lfp_pair exp = pair(NULL, 0);

    CHECK(!lfp_cas2(&mem, &exp, pair(P3, T3)));
    CHECK(lfp_cas2(&mem, &exp, pair(P3, T3)));
    CHECK(mem.ptr == P3);
    CHECK(mem.tag == T3);
}

static void load2_atomic_returns_current_nonzero_pair_and_leaves_it(void)
{
    lfp_pair mem = pair(P1, T1);
    lfp_pair v = lfp_load2_atomic(&mem);

    CHECK(v.ptr == P1);
    CHECK(v.tag == T1);
    CHECK(mem.ptr == P1);
    CHECK(mem.tag == T1);
}

static void load2_atomic_returns_zero_pair_and_leaves_it(void)
{
    /* {0, 0} is the value the atomic load compares with internally: the
     * compare then succeeds and must write back the same value. */
    lfp_pair mem = pair(NULL, 0);
    lfp_pair v = lfp_load2_atomic(&mem);

    CHECK(v.ptr == NULL);
    CHECK_EQ(v.tag, 0);
    CHECK(mem.ptr == NULL);
    CHECK_EQ(mem.tag, 0);

    /* Half zero: the compare fails on the other half. */
    mem = pair(NULL, T2);
    v = lfp_load2_atomic(&mem);
    CHECK(v.ptr == NULL && v.tag == T2);
    CHECK(mem.ptr == NULL && mem.tag == T2);
    mem = pair(P2, 0);
    v = lfp_load2_atomic(&mem);
    CHECK(v.ptr == P2 && v.tag == 0);
    CHECK(mem.ptr == P2 && mem.tag == 0);
}

static void load2_returns_current_pair(void)
{
    lfp_pair mem = pair(P3, T3);
    lfp_pair v = lfp_load2(&mem);

    CHECK(v.ptr == P3);
    CHECK(v.tag == T3);

    lfp_pair exp = mem;
    CHECK(lfp_cas2(&mem, &exp, pair(P1, T2)));
    v = lfp_load2(&mem);
    CHECK(v.ptr == P1);
    CHECK(v.tag == T2);
}

static void store2_init_sets_both_halves(void)
{
    lfp_pair mem;
    lfp_store2_init(&mem, P2, T3);
    CHECK(mem.ptr == P2);
    CHECK(mem.tag == T3);
}

struct after_char {
    char c;
    lfp_pair p;
};

struct after_pair_and_char {
    lfp_pair a;
    char c;
    lfp_pair b;
};

static struct after_char statics[3];

static void pair_is_16_byte_aligned_alone_and_inside_structs(void)
{
    CHECK_EQ(_Alignof(lfp_pair), 16);
    CHECK_EQ(sizeof(lfp_pair), 16);
    CHECK_EQ(offsetof(struct after_char, p), 16);
    CHECK_EQ(_Alignof(struct after_char), 16);
    CHECK_EQ(offsetof(struct after_pair_and_char, b), 32);

    struct after_char local[3];
    lfp_pair lone;
    for (int i = 0; i < 3; i++) {
        CHECK_EQ((uintptr_t)&local[i].p % 16, 0);
        CHECK_EQ((uintptr_t)&statics[i].p % 16, 0);
    }
    CHECK_EQ((uintptr_t)&lone % 16, 0);

    /* cmpxchg16b faults on a misaligned operand: run a CAS on each. */
    for (int i = 0; i < 3; i++) {
        lfp_store2_init(&local[i].p, P1, T1);
        lfp_pair exp = pair(P1, T1);
        CHECK(lfp_cas2(&local[i].p, &exp, pair(P2, T2)));
        CHECK(local[i].p.ptr == P2 && local[i].p.tag == T2);
    }
}

/* ---- concurrency ---------------------------------------------------- */

/* The shared pair of the concurrent tests; always {x, x}. */
static lfp_pair shared;
static atomic_int go;
static atomic_int writers_left;

static void wait_for_go(void)
{
    while (!atomic_load_explicit(&go, memory_order_acquire))
        lfp_cpu_relax();
}

struct incr_arg {
    long iterations;
    int use_atomic_load; /* re-read with lfp_load2_atomic before each try */
    long torn_observed;  /* failed CASes that reported ptr != tag */
    long failures;       /* failed CASes (contention seen) */
};

static void *incrementer(void *p)
{
    struct incr_arg *a = p;
    wait_for_go();
    for (long i = 0; i < a->iterations; i++) {
        lfp_pair old = a->use_atomic_load ? lfp_load2_atomic(&shared) : lfp_load2(&shared);
        for (;;) {
            lfp_pair new = pair((void *)(word(old.ptr) + 1), old.tag + 1);
            if (lfp_cas2(&shared, &old, new))
                break;
            /* The pair only ever holds {x, x}: a failed CAS reports what
             * it saw, read atomically, so the halves match. */
            a->failures++;
            if (word(old.ptr) != old.tag)
                a->torn_observed++;
        }
    }
    return NULL;
}

static void concurrent_cas2_increments_lose_no_update(void)
{
    int n = stress_threads();
    long k = scaled(100000, 1000);
    pthread_t th[256];
    struct incr_arg args[256];

    lfp_store2_init(&shared, NULL, 0);
    atomic_store(&go, 0);
    for (int i = 0; i < n; i++) {
        args[i] = (struct incr_arg){ .iterations = k, .use_atomic_load = i & 1 };
        REQUIRE(pthread_create(&th[i], NULL, incrementer, &args[i]) == 0);
    }
    atomic_store_explicit(&go, 1, memory_order_release);

    long torn = 0, failures = 0;
    for (int i = 0; i < n; i++) {
        REQUIRE(pthread_join(th[i], NULL) == 0);
        torn += args[i].torn_observed;
        failures += args[i].failures;
    }
    lfp_pair end = lfp_load2_atomic(&shared);
    CHECK_EQ(word(end.ptr), (uintptr_t)n * (uintptr_t)k);
    CHECK_EQ(end.tag, (uintptr_t)n * (uintptr_t)k);
    CHECK_EQ(torn, 0);
    printf("     %d threads x %ld increments, %ld failed CASes retried\n", n, k, failures);
}

struct torn_arg {
    long iterations;  /* writers: CASes to do; readers: minimum reads */
    long reads;       /* readers: reads done */
    long torn;        /* readers: pairs seen with ptr != tag */
    long backwards;   /* readers: a value older than one read before */
    long split_ahead; /* readers: lfp_load2 saw a tag newer than its ptr */
};

static void *torn_writer(void *p)
{
    struct torn_arg *a = p;
    wait_for_go();
    lfp_pair old = lfp_load2_atomic(&shared);
    for (long i = 0; i < a->iterations; i++) {
        for (;;) {
            uintptr_t x = word(old.ptr) + 1;
            if (lfp_cas2(&shared, &old, pair((void *)x, x)))
                break;
        }
        old = pair((void *)(word(old.ptr) + 1), old.tag + 1);
    }
    atomic_fetch_sub_explicit(&writers_left, 1, memory_order_release);
    return NULL;
}

static void *torn_reader(void *p)
{
    struct torn_arg *a = p;
    uintptr_t last = 0;
    wait_for_go();
    for (;;) {
        int writing = atomic_load_explicit(&writers_left, memory_order_acquire) > 0;
        if (!writing && a->reads >= a->iterations)
            break;
        lfp_pair v = lfp_load2_atomic(&shared);
        a->reads++;
        if (word(v.ptr) != v.tag)
            a->torn++;
        if (word(v.ptr) < last)
            a->backwards++;
        last = word(v.ptr);
        /* The split load may mix two updates, but it reads the tag first:
         * it can pair an older tag with a newer pointer, never the reverse. */
        lfp_pair s = lfp_load2(&shared);
        if (s.tag > word(s.ptr))
            a->split_ahead++;
    }
    return NULL;
}

static void atomic_load_and_cas_never_see_a_torn_pair(void)
{
    int n = stress_threads();
    int nwriters = n / 2, nreaders = n - nwriters;
    long w = scaled(100000, 1000);
    pthread_t th[256];
    struct torn_arg args[256];

    lfp_store2_init(&shared, (void *)(uintptr_t)1, 1);
    atomic_store(&go, 0);
    atomic_store(&writers_left, nwriters);
    for (int i = 0; i < n; i++) {
        int writer = i < nwriters;
        args[i] = (struct torn_arg){ .iterations = writer ? w : scaled(10000, 100) };
        REQUIRE(pthread_create(&th[i], NULL, writer ? torn_writer : torn_reader, &args[i]) == 0);
    }
    atomic_store_explicit(&go, 1, memory_order_release);

    long reads = 0, torn = 0, backwards = 0, split_ahead = 0;
    for (int i = 0; i < n; i++) {
        REQUIRE(pthread_join(th[i], NULL) == 0);
        reads += args[i].reads;
        torn += args[i].torn;
        backwards += args[i].backwards;
        split_ahead += args[i].split_ahead;
    }
    lfp_pair end = lfp_load2_atomic(&shared);
    CHECK_EQ(word(end.ptr), 1 + (uintptr_t)nwriters * (uintptr_t)w);
    CHECK_EQ(end.tag, 1 + (uintptr_t)nwriters * (uintptr_t)w);
    CHECK(reads >= (long)nreaders * scaled(10000, 100));
    CHECK_EQ(torn, 0);
    CHECK_EQ(backwards, 0);
    CHECK_EQ(split_ahead, 0);
    printf("     %d writers x %ld CASes, %d readers, %ld atomic loads\n", nwriters, w,
           nreaders, reads);
}

int main(void)
{
    printf("backend: %s\n", LFP_ARCH_NAME);
    RUN(cas2_success_stores_desired_pair_and_keeps_expected);
    RUN(cas2_failure_on_ptr_mismatch_reports_observed_pair);
    RUN(cas2_failure_on_tag_mismatch_reports_observed_pair);
    RUN(cas2_failure_on_both_mismatched_reports_observed_pair);
    RUN(cas2_does_not_confuse_ptr_and_tag_halves);
    RUN(cas2_observed_pair_makes_the_retry_succeed);
    RUN(load2_atomic_returns_current_nonzero_pair_and_leaves_it);
    RUN(load2_atomic_returns_zero_pair_and_leaves_it);
    RUN(load2_returns_current_pair);
    RUN(store2_init_sets_both_halves);
    RUN(pair_is_16_byte_aligned_alone_and_inside_structs);
    RUN(concurrent_cas2_increments_lose_no_update);
    RUN(atomic_load_and_cas_never_see_a_torn_pair);
    return check_done();
}
