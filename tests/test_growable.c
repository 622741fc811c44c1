/* SPDX-License-Identifier: MIT */
/*
 * Growable pools: growth in slabs on demand, the configured bounds, the OS
 * refusing memory, trimming (explicit and automatic) that really returns
 * memory, ownership checks against every kind of foreign pointer, block
 * constructors and destructors over slab lifetimes, and threads churning
 * through magazines while another thread trims.
 *
 * Linked with the library built with LFP_TEST_HOOKS, whose lfp_os_map() can
 * be told to fail.
 *
 * Knobs: LFP_STRESS_SCALE (1.0) scales the churn and, below 1, shrinks the
 * big trim test from 512 MiB to 128 MiB; LFP_STRESS_THREADS (4) churn
 * threads; LFP_SKIP_BIG skips the big trim test (also skipped under ASan
 * and TSan, whose shadow memory blurs resident-size measurements).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lfpool.h>

#include "check.h"

#if defined(CHECK_ASAN) || defined(CHECK_TSAN)
#define UNDER_SANITIZER 1
#endif

/* In the library built with LFP_TEST_HOOKS: when set to n > 0, the n-th
 * following request for OS memory fails. */
extern _Atomic long lfp_test_map_fail_at;
/* ... counts the library's requests for memory that are not mappings. */
extern _Atomic long lfp_test_mallocs;
/* ... and when set to n > 0, pools reserve ranges of at most n bytes (1:
 * none at all), so that their slabs go to the registry. */
extern _Atomic long lfp_test_range_bytes;
/* ... and when set, called by a trim once it holds the whole depot and has
 * taken its victims off the pool's slab list. */
extern void (*_Atomic lfp_test_trim_hook)(void);
/* ... and when set, called by an automatic trim between counting a slab's
 * release and queuing it to call_rcu. */
extern void (*_Atomic lfp_test_queue_hook)(void);
/* ... and when set, called by every pop of a tagged stack between reading
 * the top's link and its CAS (in a depot pop: inside the RCU read-side
 * section). */
extern void (*lfp_test_pop_hook)(void);
/* ... and when set, called by an allocating thread that found nothing to
 * take and nothing to make (in a pool without a cache, which looks first,
 * before it tries to make any), before it looks at what is in flight. */
extern void (*_Atomic lfp_test_take_hook)(void);
/* ... and when set, called by an allocating thread of a pool without a
 * cache between its decision to carve or grow and its carve. */
extern void (*_Atomic lfp_test_carve_hook)(void);
/* ... and when set, called by a thread without a cache slot between taking
 * a batch from the depot and putting back the blocks it does not keep. */
extern void (*_Atomic lfp_test_split_hook)(void);
/* ... and when set, called by a pool without a cache that takes another
 * CPU's stack whole, between taking it and moving its rest onto the
 * caller's stack (inside the RCU read-side section): where a depot pop
 * that looks at another CPU's stack of more than one block goes instead of
 * lfp_test_pop_hook. */
extern void (*_Atomic lfp_test_steal_hook)(void);
/* ... and when set to n > 0, the n-th following request for memory of any
 * kind (mapping or malloc) fails. */
extern _Atomic long lfp_test_fail_at;
/* ... and when set, called by a growth that has just popped a hole, before
 * any of its blocks is made ready. */
extern void (*_Atomic lfp_test_hole_hook)(void);
/* ... and when set, called by lfp_pool_stats between its reads of the total
 * and of the holes' count. */
extern void (*_Atomic lfp_test_stats_hook)(void);

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)

/* ---- helpers ---- */

/* Create a pool; if that fails, so does the calling test, which stops
 * there (the other tests still run). */
#define CREATE_OR_RETURN(cfg, pool)                                        \
    do {                                                                   \
        int create_rc_ = lfp_pool_create((cfg), (pool));                   \
        CHECK_EQ(create_rc_, LFP_OK);                                      \
        if (create_rc_ != LFP_OK)                                          \
            return;                                                        \
    } while (0)

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Field 0 (address space) or 1 (resident) of /proc/self/statm, in bytes. */
static size_t statm_bytes(int field)
{
    unsigned long v[2] = { 0, 0 };
    FILE *f = fopen("/proc/self/statm", "r");
    REQUIRE(f != NULL);
    REQUIRE(fscanf(f, "%lu %lu", &v[0], &v[1]) == 2);
    fclose(f);
    return (size_t)v[field] * (size_t)sysconf(_SC_PAGESIZE);
}

static size_t resident_bytes(void)
{
    return statm_bytes(1);
}

static size_t mapped_bytes(void)
{
    return statm_bytes(0);
}

/* The start of the slab holding p, for slabs of slab_bytes: slabs are
 * aligned to 64 KiB (the registry unit), in a pool's range too, so to their
 * size when that is 64 KiB. */
static uintptr_t slab_of(const void *p, size_t slab_bytes)
{
    return (uintptr_t)p & ~(uintptr_t)(slab_bytes - 1);
}

/* lfp_pool_trim, checked against the stats: it returns what left
 * bytes_reserved. Returns the bytes of the slabs it released, of per blocks
 * and slab bytes each: besides, a trim gives back the free pages of slabs
 * that stay (holes), and the pages of a released slab's holes went before. */
static size_t trim_slabs(lfp_pool *pool, size_t per, size_t slab)
{
    struct lfp_stats a = stats_of(pool);
    size_t got = lfp_pool_trim(pool);
    struct lfp_stats b = stats_of(pool);
    CHECK_EQ(got, a.bytes_reserved - b.bytes_reserved);
    size_t gone = a.blocks_total - b.blocks_total;
    CHECK_EQ(gone % per, 0);
    return gone / per * slab;
}

/* ---- growth ---- */

static void test_growable_pool_grows_on_demand_far_beyond_one_slab(void)
{
    enum { N = 50000 };
    struct lfp_config cfg = { .block_size = 64, .flags = LFP_GROWABLE };
    lfp_pool *pool;
    CREATE_OR_RETURN(&cfg, &pool);
    CHECK_EQ(stats_of(pool).blocks_total, 0); /* capacity 0: nothing made yet */

    void **b = malloc(N * sizeof(void *));
    REQUIRE(b != NULL);
    size_t got = 0;
    for (; got < N; got++) {
        b[got] = lfp_alloc(pool);
        if (b[got] == NULL)
            break;
        memset(b[got], 0xa5, 64);
        if (got == 0) {
            /* The default slab: 256 KiB of 64-byte blocks. */
            CHECK_EQ(stats_of(pool).blocks_total, 256 * KiB / 64);
        }
    }
    CHECK_EQ(got, N);

    struct lfp_stats st = stats_of(pool);
    size_t slab_blocks = 256 * KiB / 64;
    CHECK(st.blocks_total >= N);
    CHECK_EQ(st.blocks_total % slab_blocks, 0);   /* whole slabs */
    CHECK(st.blocks_total < N + 2 * slab_blocks); /* and no more than needed */
    CHECK_EQ(st.blocks_in_use, got);
    CHECK_EQ(st.bytes_reserved, st.blocks_total / slab_blocks * 256 * KiB);

    /* Every block is distinct, owned, and none overlaps the next. */
    qsort(b, got, sizeof(void *), cmp_addr);
    size_t overlaps = 0, unowned = 0;
    for (size_t i = 0; i < got; i++) {
        if (i > 0 && (uintptr_t)b[i] - (uintptr_t)b[i - 1] < st.stride)
            overlaps++;
        if (!lfp_owns(pool, b[i]))
            unowned++;
    }
    CHECK_EQ(overlaps, 0);
    CHECK_EQ(unowned, 0);

    size_t bad_free = 0;
    for (size_t i = 0; i < got; i++)
        if (lfp_free(pool, b[i]) != 0)
            bad_free++;
    CHECK_EQ(bad_free, 0);
    CHECK_EQ(stats_of(pool).blocks_in_use, 0);
    CHECK_EQ(lfp_pool_verify(pool), 0);
    CHECK_EQ(lfp_pool_destroy(pool), 0);
    free(b);
}

static void test_a_new_slab_of_large_blocks_is_resident_only_where_written(void)
{
    /* A growth writes the links of every block of its slab: in the first
     * page of a block larger than a page, so the rest stays unresident
     * until the program writes it. (Blocks of a page or less have every
     * page written, and the slab is faulted in whole: lfp_carve_split.) */
    enum { PAGES = 4, BLOCKS = 16 };
    const size_t ps = (size_t)sysconf(_SC_PAGESIZE), block = PAGES * ps;
    struct lfp_config cfg = { .block_size = block, .flags = LFP_GROWABLE,
                              .slab_size = BLOCKS * block, .cache_size = 1 };
    lfp_pool *pool;
    CREATE_OR_RETURN(&cfg, &pool);
    void *b[BLOCKS];
    for (int i = 0; i < BLOCKS; i++)
        REQUIRE((b[i] = lfp_alloc(pool)) != NULL);
    CHECK_EQ(stats_of(pool).blocks_total, BLOCKS);
    size_t unwritten = 0;
    for (int i = 0; i < BLOCKS; i++)
        unwritten += resident_pages((char *)b[i] + ps, block - ps);
    CHECK_EQ(unwritten, 0);
    memset(b[0], 1, block);
    CHECK_EQ(resident_pages(b[0], block), PAGES);
    for (int i = 0; i < BLOCKS; i++)
        CHECK_EQ(lfp_free(pool, b[i]), 0);
    CHECK_EQ(lfp_pool_destroy(pool), 0);
}

static void test_a_slab_cut_short_by_max_blocks_is_resident_only_where_its_blocks_are(void)
{
    /* 100 blocks of 64 bytes at most: the one slab (256 KiB by default) is
     * cut short to 100 blocks, and only the pages those lie in may become
     * resident, not the rest of the slab's memory. Pools each this small,
     * many of them, must not cost a slab each. */
    enum { MAX = 100 };
    const size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    struct lfp_config cfg = { .block_size = 64, .flags = LFP_GROWABLE, .max_blocks = MAX };
    lfp_pool *pool;
    CREATE_OR_RETURN(&cfg, &pool);
    void *b[MAX];
    for (int i = 0; i < MAX; i++)
        REQUIRE((b[i] = lfp_alloc(pool)) != NULL);
    struct lfp_stats st = stats_of(pool);
    CHECK_EQ(st.blocks_total, MAX);
    size_t dups;
    void **sorted = sorted_blocks(b, MAX, &dups);
    CHECK_EQ(dups, 0);
    uintptr_t first = (uintptr_t)sorted[0] & ~(uintptr_t)(ps - 1);
    size_t pages = ((uintptr_t)sorted[MAX - 1] + st.stride - first + ps - 1) / ps;
    free(sorted);
    /* The slab's memory past its blocks, up to the default slab size. */
    size_t beyond = 256 * KiB / ps > pages ? 256 * KiB / ps - pages : 0;
    CHECK(beyond > 0);
    CHECK_EQ(resident_pages((char *)first + pages * ps, beyond * ps), 0);
    for (int i = 0; i < MAX; i++)
        CHECK_EQ(lfp_free(pool, b[i]), 0);
    CHECK_EQ(lfp_pool_destroy(pool), 0);
}

static void test_growable_capacity_is_made_up_front(void)
{
    enum { CAP = 1000 };
    struct lfp_config cfg = { .block_size = 64, .capacity = CAP, .flags = LFP_GROWABLE,
                              .slab_size = 64 * KiB };
    lfp_pool *pool;
    CREATE_OR_RETURN(&cfg, &pool);
    struct lfp_stats st = stats_of(pool);
    CHECK(st.blocks_total >= CAP);
    CHECK_EQ(st.blocks_in_use, 0);
    size_t total = st.blocks_total;

    /* Those blocks need no more memory from the OS: with every request for
     * memory failing, all CAP allocations still succeed. */
    atomic_store(&lfp_test_map_fail_at, 1);
    void *b[CAP];
    size_t got = 0;
    while (got < CAP && (b[got] = lfp_alloc(pool)) != NULL)
        got++;
    CHECK_EQ(atomic_load(&lfp_test_map_fail_at), 1); /* never asked */
    atomic_store(&lfp_test_map_fail_at, 0);
    CHECK_EQ(got, CAP);
    CHECK_EQ(stats_of(pool).blocks_total, total);
    for (size_t i = 0; i < got; i++)
        CHECK_EQ(lfp_free(pool, b[i]), 0);
    CHECK_EQ(lfp_pool_verify(pool), 0);
    CHECK_EQ(lfp_pool_destroy(pool), 0);
}

/* A call that does not return within the limit fails the test program. */
static const char *watchdog_what;

static void watchdog_fired(int sig)
{
    (void)sig;
    static const char msg[] = "watchdog: a call did not return: ";
    if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0 ||
        write(STDERR_FILENO, watchdog_what, strlen(watchdog_what)) < 0 ||
        write(STDERR_FILENO, "\n", 1) < 0)
        _exit(2);
    _exit(1);
}

static void watchdog_arm(const char *what, unsigned seconds)
{
    watchdog_what = what;
    signal(SIGALRM, watchdog_fired);
    alarm(seconds);
}

static void watchdog_disarm(void)
{
    alarm(0);
}

static void test_capacity_above_trim_threshold_is_still_made_up_front(void)
{
    /* The automatic trim policy must not eat the reservation as it is
     * being made (that would fail the create, or never finish it). */
    enum { CAP = 1000 };
    struct lfp_config cfg = { .block_size = 64, .capacity = CAP, .flags = LFP_GROWABLE,
                              .slab_size = 64 * KiB, .trim_threshold = 64 * 64 };
    lfp_pool *pool;
    watchdog_arm("lfp_pool_create with capacity above trim_threshold", 60);
    int rc = lfp_pool_create(&cfg, &pool);
    watchdog_disarm();
    CHECK_EQ(rc, LFP_OK);
    if (rc != LFP_OK)
        return;
    CHECK(stats_of(pool).blocks_total >= CAP);
    void *b = lfp_alloc(pool);
    CHECK(b != NULL);
    CHECK_EQ(lfp_free(pool, b), 0);
    CHECK_EQ(lfp_pool_verify(pool), 0);
    CHECK_EQ(lfp_pool_destroy(pool), 0);
}

/* ---- bounds and configuration ---- */

static void test_max_blocks_stops_growth_with_enobufs_and_leaves_pool_intact(void)
{
    /* 5000 is not a multiple of the 1024 blocks of a 64 KiB slab: the last
     * slab is a partial one. */
    enum { MAX = 5000 };
    static const unsigned flag_sets[] = { LFP_GROWABLE, LFP_GROWABLE | LFP_NO_CACHE };
    for (size_t f = 0; f < sizeof(flag_sets) / sizeof(flag_sets[0]); f++) {
        struct lfp_config cfg = { .block_size = 64, .max_blocks = MAX,
                                  .flags = flag_sets[f], .slab_size = 64 * KiB };
        lfp_pool *pool;
        CREATE_OR_RETURN(&cfg, &pool);
        static void *b[MAX + 1];
        size_t got = 0;
        errno = 0;
        while (got <= MAX && (b[got] = lfp_alloc(pool)) != NULL)
            got++;
        CHECK_EQ(got, MAX);
        CHECK_EQ(errno, ENOBUFS);
        struct lfp_stats st = stats_of(pool);
        CHECK_EQ(st.blocks_total, MAX);
        CHECK_EQ(st.blocks_in_use, MAX);
        CHECK_EQ(lfp_pool_verify(pool), 0);

        /* Still NULL on a second try; nothing changed. */
        errno = 0;
        CHECK(lfp_alloc(pool) == NULL);
        CHECK_EQ(errno, ENOBUFS);
        CHECK_EQ(stats_of(pool).blocks_total, MAX);

        /* One block back: exactly one more alloc succeeds, and it is that
         * block. */
        void *back = b[MAX / 2];
        CHECK_EQ(lfp_free(pool, back), 0);
        void *again = lfp_alloc(pool);
        CHECK(again == back);
        errno = 0;
        CHECK(lfp_alloc(pool) == NULL);
        CHECK_EQ(errno, ENOBUFS);
        CHECK_EQ(lfp_pool_verify(pool), 0);

        for (size_t i = 0; i < got; i++)
            CHECK_EQ(lfp_free(pool, b[i]), 0);
        CHECK_EQ(lfp_pool_verify(pool), 0);
        CHECK_EQ(lfp_pool_destroy(pool), 0);
    }
}

/* lfp_pool_create must reject cfg with LFP_EINVAL and leave out NULL. */
static int create_error(const struct lfp_config *cfg)
{
    lfp_pool *pool = (lfp_pool *)(uintptr_t)1;
    int rc = lfp_pool_create(cfg, &pool);
    CHECK(pool == NULL || rc == LFP_OK);
    if (rc == LFP_OK)
        lfp_pool_destroy(pool);
    return rc;
}

static void test_invalid_growable_configurations_are_rejected_with_einval(void)
{
    static char buf[64 * 1024] __attribute__((aligned(64)));
    struct lfp_config base = { .block_size = 64, .flags = LFP_GROWABLE };
    struct lfp_config c;

    c = base; /* max_blocks below capacity */
    c.capacity = 100;
    c.max_blocks = 99;
    CHECK_EQ(create_error(&c), LFP_EINVAL);
    c.max_blocks = 100; /* equal is fine */
    CHECK_EQ(create_error(&c), LFP_OK);

    c = base; /* slabs come from the OS, never from the caller */
    c.mem = buf;
    c.mem_size = sizeof(buf);
    CHECK_EQ(create_error(&c), LFP_EINVAL);
    c.capacity = 16;
    CHECK_EQ(create_error(&c), LFP_EINVAL);

    c = base; /* slab_size not a power of two */
    c.slab_size = 3 * 64 * KiB;
    CHECK_EQ(create_error(&c), LFP_EINVAL);
    c.slab_size = 64 * KiB + 1;
    CHECK_EQ(create_error(&c), LFP_EINVAL);

    c = base; /* powers of two below 64 KiB */
    c.slab_size = 32 * KiB;
    CHECK_EQ(create_error(&c), LFP_EINVAL);
    c.slab_size = 1;
    CHECK_EQ(create_error(&c), LFP_EINVAL);
    c.slab_size = 64 * KiB; /* the smallest valid one */
    CHECK_EQ(create_error(&c), LFP_OK);

    c = base; /* powers of two above 1 GiB: refused at create, where a
               * growth would have had to make them ready whole */
    c.slab_size = (size_t)2 << 30;
    CHECK_EQ(create_error(&c), LFP_EINVAL);
    c.slab_size = (size_t)1 << 40;
    CHECK_EQ(create_error(&c), LFP_EINVAL);
    c.slab_size = (size_t)1 << 63;
    CHECK_EQ(create_error(&c), LFP_EINVAL);
    c.slab_size = (size_t)1 << 30; /* the largest valid one */
    CHECK_EQ(create_error(&c), LFP_OK);

    c = base; /* smaller than one block */
    c.block_size = 64 * KiB + 16;
    c.slab_size = 64 * KiB;
    CHECK_EQ(create_error(&c), LFP_EINVAL);
    c.slab_size = 128 * KiB;
    CHECK_EQ(create_error(&c), LFP_OK);
    c.block_size = 64 * KiB; /* exactly one block */
    c.slab_size = 64 * KiB;
    CHECK_EQ(create_error(&c), LFP_OK);
}

/* ---- the OS refusing memory ---- */

static void test_os_refusing_a_slab_fails_alloc_with_enomem_and_leaves_pool_intact(void)
{
    struct lfp_config cfg = { .block_size = 64, .flags = LFP_GROWABLE, .slab_size = 64 * KiB };
    lfp_pool *pool;
    CREATE_OR_RETURN(&cfg, &pool);

    /* Use up the first slab exactly; its size shows in blocks_total. */
    void *first = lfp_alloc(pool);
    REQUIRE(first != NULL);
    size_t slab_blocks = stats_of(pool).blocks_total;
    CHECK_EQ(slab_blocks, 64 * KiB / 64);
    void **b = malloc((2 * slab_blocks + 1) * sizeof(void *));
    REQUIRE(b != NULL);
    b[0] = first;
    size_t got = 1;
    while (got < slab_blocks && (b[got] = lfp_alloc(pool)) != NULL)
        got++;
    CHECK_EQ(got, slab_blocks);
    struct lfp_stats before = stats_of(pool);
    CHECK_EQ(before.blocks_total, slab_blocks); /* no growth yet */

    /* The pool must grow now, and the OS says no. */
    atomic_store(&lfp_test_map_fail_at, 1);
    errno = 0;
    CHECK(lfp_alloc(pool) == NULL);
    CHECK_EQ(errno, ENOMEM);
    CHECK_EQ(atomic_load(&lfp_test_map_fail_at), 0); /* one request was made */
    struct lfp_stats after = stats_of(pool);
    CHECK(same_stats(&before, &after));
    CHECK_EQ(lfp_pool_verify(pool), 0);

    /* The bulk call reports the same. */
    void *more[4];
    atomic_store(&lfp_test_map_fail_at, 1);
    errno = 0;
    CHECK_EQ(lfp_alloc_bulk(pool, more, 4), 0);
    CHECK_EQ(errno, ENOMEM);
    atomic_store(&lfp_test_map_fail_at, 0);
    after = stats_of(pool);
    CHECK(same_stats(&before, &after));
    CHECK_EQ(lfp_pool_verify(pool), 0);

    /* With the OS willing again, the next alloc grows the pool. */
    void *x = lfp_alloc(pool);
    CHECK(x != NULL);
    if (x != NULL) {
        b[got++] = x;
        CHECK(lfp_owns(pool, x));
        memset(x, 0x5a, 64);
    }
    CHECK_EQ(stats_of(pool).blocks_total, 2 * slab_blocks);

    for (size_t i = 0; i < got; i++)
        CHECK_EQ(lfp_free(pool, b[i]), 0);
    CHECK_EQ(lfp_pool_verify(pool), 0);
    CHECK_EQ(lfp_pool_destroy(pool), 0);
    free(b);
}

static void test_create_fails_with_enomem_when_its_reservation_is_refused_and_leaks_nothing(void)
{
    lfp_pool *pool;

    /* The first slab of the reservation is refused. */
    struct lfp_config cfg = { .block_size = 64, .capacity = 1000, .flags = LFP_GROWABLE,
                              .name = "refused" };
    atomic_store(&lfp_test_map_fail_at, 1);
    pool = (lfp_pool *)(uintptr_t)1;
    CHECK_EQ(lfp_pool_create(&cfg, &pool), LFP_ENOMEM);
    CHECK(pool == NULL);
    CHECK_EQ(atomic_load(&lfp_test_map_fail_at), 0);

    /* The last of 16 slabs is refused: the 15 made before must go back to
     * the OS (at most the registry's tables may stay, 512 KiB per 4 GiB of
     * address space). Once made and dropped first, so that the tables for
     * this part of the address space exist already. */
    struct lfp_config big = { .block_size = 64 * KiB, .capacity = 16 * 16,
                              .max_blocks = 16 * 16, .flags = LFP_GROWABLE,
                              .slab_size = MiB, .name = "refused" };
    CREATE_OR_RETURN(&big, &pool);
    CHECK_EQ(stats_of(pool).blocks_total, 16 * 16);
    CHECK_EQ(lfp_pool_destroy(pool), 0);

    size_t vm0 = mapped_bytes();
    atomic_store(&lfp_test_map_fail_at, 16);
    pool = (lfp_pool *)(uintptr_t)1;
    CHECK_EQ(lfp_pool_create(&big, &pool), LFP_ENOMEM);
    CHECK(pool == NULL);
    CHECK_EQ(atomic_load(&lfp_test_map_fail_at), 0);
    size_t vm1 = mapped_bytes();
    CHECK(vm1 < vm0 + 4 * MiB);
    if (vm1 >= vm0 + 4 * MiB)
        printf("  address space grew by %zu KiB over a failed create\n", (vm1 - vm0) / KiB);

    /* Nothing is left armed: the same create succeeds now. */
    CREATE_OR_RETURN(&big, &pool);
    CHECK_EQ(lfp_pool_verify(pool), 0);
    CHECK_EQ(lfp_pool_destroy(pool), 0);
}

/* ---- trim ---- */

static void test_trim_gives_freed_memory_back_to_the_os(void)
{
#ifdef UNDER_SANITIZER
    printf("  skipped: resident sizes are not meaningful under a sanitizer\n");
    return;
#else
    if (getenv("LFP_SKIP_BIG") != NULL) {
        printf("  skipped: LFP_SKIP_BIG is set\n");
        return;
    }
    size_t bytes = stress_scale() < 1.0 ? 128 * MiB : 512 * MiB;
    size_t block = 4 * KiB, n = bytes / block;
    struct lfp_config cfg = { .block_size = block, .flags = LFP_GROWABLE };
    lfp_pool *pool;
    CREATE_OR_RETURN(&cfg, &pool);
    void **b = malloc(n * sizeof(void *));
    REQUIRE(b != NULL);
    memset(b, 0, n * sizeof(void *)); /* resident before the baseline */

    size_t rss0 = resident_bytes();
    size_t got = 0;
    for (; got < n; got++) {
        b[got] = lfp_alloc(pool);
        if (b[got] == NULL)
            break;
        ((volatile char *)b[got])[block / 2] = 1; /* make the page resident */
    }
    CHECK_EQ(got, n);
    size_t rss1 = resident_bytes();
    size_t grown = rss1 > rss0 ? rss1 - rss0 : 0;
    CHECK(grown >= bytes / 10 * 9); /* the blocks really were resident */

    for (size_t i = 0; i < got; i++)
        CHECK_EQ(lfp_free(pool, b[i]), 0);
    size_t released = lfp_pool_trim(pool);
    size_t rss2 = resident_bytes();
    size_t dropped = rss1 > rss2 ? rss1 - rss2 : 0;
    printf("  %zu MiB of blocks: resident +%zu MiB, trim released %zu MiB, resident -%zu MiB\n",
           bytes / MiB, grown / MiB, released / MiB, dropped / MiB);
    CHECK(released >= bytes / 100 * 95);
    CHECK(dropped >= grown / 100 * 95);
    struct lfp_stats st = stats_of(pool);
    CHECK(st.blocks_total * st.stride <= bytes / 20);
    CHECK_EQ(st.blocks_in_use, 0);
    CHECK_EQ(lfp_pool_verify(pool), 0);
    CHECK_EQ(lfp_pool_destroy(pool), 0);
    free(b);
#endif
}

/* A thread that takes `want` blocks of the pool and frees them again, so
 * they sit in its magazine, then waits until told to exit. */
struct cacher {
    lfp_pool *pool;
    void *blocks[8];
    int want;
    atomic_int ready, go;
};

static void *cacher_main(void *arg)
{
    struct cacher *c = arg;
    for (int i = 0; i < c->want; i++)
        c->blocks[i] = lfp_alloc(c->pool);
    for (int i = 0; i < c->want; i++)
        if (c->blocks[i] != NULL)
            lfp_free(c->pool, c->blocks[i]);
    atomic_store(&c->ready, 1);
    while (!atomic_load(&c->go))
        sleep_ms(1);
    return NULL; /* exiting hands the cached blocks back */
}

static void test_trim_keeps_slabs_with_a_block_in_use_or_cached(void)
{
    /* 4 KiB blocks in 64 KiB slabs: 16 blocks per slab, and a block's slab
     * is its address rounded down to 64 KiB. Magazines of 4. */
    enum { SLABS = 8, PER = 16, CACHED = 4 };
    const size_t slab = 64 * KiB;
    struct lfp_config cfg = { .block_size = 4 * KiB, .flags = LFP_GROWABLE,
                              .slab_size = 64 * KiB, .cache_size = CACHED };
    lfp_pool *pool;
    CREATE_OR_RETURN(&cfg, &pool);
    void *b[SLABS * PER];
    for (int i = 0; i < SLABS * PER; i++) {
        b[i] = lfp_alloc(pool);
        REQUIRE(b[i] != NULL);
    }
    CHECK_EQ(stats_of(pool).blocks_total, SLABS * PER);

    /* Nothing is free: trim has nothing to give back. */
    CHECK_EQ(lfp_pool_trim(pool), 0);
    CHECK_EQ(stats_of(pool).blocks_total, SLABS * PER);

    /* Keep one block in use, free the others; another thread then holds
     * CACHED of them in its magazine. */
    void *held = b[PER + 3];
    for (int i = 0; i < SLABS * PER; i++)
        if (b[i] != held)
            CHECK_EQ(lfp_free(pool, b[i]), 0);
    static struct cacher c;
    c.pool = pool;
    c.want = CACHED;
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, cacher_main, &c) == 0);
    while (!atomic_load(&c.ready))
        sleep_ms(1);
    CHECK(stats_of(pool).blocks_cached >= CACHED);

    /* The slabs to keep: held's and those of the cached blocks. */
    uintptr_t keep[1 + CACHED];
    int nkeep = 0;
    for (int i = -1; i < CACHED; i++) {
        void *p = i < 0 ? held : c.blocks[i];
        REQUIRE(p != NULL);
        uintptr_t s = slab_of(p, slab);
        bool seen = false;
        for (int k = 0; k < nkeep; k++)
            seen = seen || keep[k] == s;
        if (!seen)
            keep[nkeep++] = s;
    }

    size_t released = trim_slabs(pool, PER, slab);
    CHECK_EQ(released, (size_t)(SLABS - nkeep) * slab);
    CHECK_EQ(stats_of(pool).blocks_total, (size_t)nkeep * PER);
    CHECK(lfp_owns(pool, held));
    for (int i = 0; i < CACHED; i++)
        CHECK(lfp_owns(pool, c.blocks[i]));
    size_t gone = 0; /* the blocks of the released slabs */
    for (int i = 0; i < SLABS * PER; i++) {
        bool kept = false;
        for (int k = 0; k < nkeep; k++)
            kept = kept || keep[k] == slab_of(b[i], slab);
        if (!kept && !lfp_owns(pool, b[i]))
            gone++;
    }
    CHECK_EQ(gone, (size_t)(SLABS - nkeep) * PER);
    memset(held, 0x77, 4 * KiB); /* its memory is still there */
    CHECK_EQ(lfp_pool_verify(pool), 0);
    CHECK_EQ(lfp_free(pool, held), 0);

    /* The other thread exits and hands its blocks back: all free now. */
    atomic_store(&c.go, 1);
    REQUIRE(pthread_join(t, NULL) == 0);
    CHECK_EQ(trim_slabs(pool, PER, slab), (size_t)nkeep * slab);
    CHECK_EQ(stats_of(pool).blocks_total, 0);
    CHECK(!lfp_owns(pool, held));
    CHECK_EQ(lfp_pool_verify(pool), 0);
    CHECK_EQ(lfp_pool_destroy(pool), 0);
}

/* Frees n blocks in an order that mixes their slabs in every batch: index
 * i * step mod n, step coprime with n. */
static void free_mixed(lfp_pool *pool, void **b, size_t n, size_t step)
{
    for (size_t i = 0; i < n; i++)
        CHECK_EQ(lfp_free(pool, b[(i * step) % n]), 0);
}

/* Allocates want blocks into b; none may repeat, none may come from a slab
 * outside keep (NULL: any), and the pool must not grow: they are exactly
 * the free blocks the trim left. */
static void alloc_exactly(lfp_pool *pool, void **b, size_t want, const uintptr_t *keep,
                          size_t nkeep, size_t slab)
{
    size_t total = stats_of(pool).blocks_total;
    for (size_t i = 0; i < want; i++)
        REQUIRE((b[i] = lfp_alloc(pool)) != NULL);
    CHECK_EQ(stats_of(pool).blocks_total, total);
    size_t dups, outside = 0;
    void **sorted = sorted_blocks(b, want, &dups);
    for (size_t i = 0; i < want; i++) {
        bool in = keep == NULL;
        for (size_t k = 0; k < nkeep; k++)
            in = in || slab_of(sorted[i], slab) == keep[k];
        outside += !in;
    }
    CHECK_EQ(dups, 0);
    CHECK_EQ(outside, 0);
    free(sorted);
}

/* A growable pool of 64-byte blocks in slabs of LANED_SLAB whose magazines
 * of 100 spill as laned batches (more than LFP_BATCH_LANES + 2 blocks).
 * Frees by free_mixed with LANED_STEP put blocks of every slab in each batch. */
#define LANED_SLAB (64 * KiB)
enum { LANED_CACHE = 100, LANED_STEP = 7919 };

static lfp_pool *laned_pool(void)
{
    struct lfp_config cfg = { .block_size = 64, .flags = LFP_GROWABLE,
                              .slab_size = LANED_SLAB, .cache_size = LANED_CACHE };
    lfp_pool *pool = NULL;
    REQUIRE(lfp_pool_create(&cfg, &pool) == LFP_OK);
    REQUIRE(stats_of(pool).cache_size == LANED_CACHE);
    return pool;
}

static void test_trim_of_laned_batches_keeps_exactly_the_free_blocks_of_kept_slabs(void)
{
    /* Magazines of 100 spill as laned batches (more than LFP_BATCH_LANES + 2
     * blocks), which a trim reads down their lanes. Three trims: no slab
     * free (the batches go back whole), half of them free (the kept blocks
     * are sorted out of the batches), all free (nothing to sort). */
    enum { SLABS = 8 };
    lfp_pool *pool = laned_pool();
    const size_t slab = LANED_SLAB, per = slab / stats_of(pool).stride, n = SLABS * per;
    void **b = malloc(n * sizeof *b);
    void **rest = malloc(n * sizeof *rest);
    REQUIRE(b != NULL && rest != NULL);
    for (size_t i = 0; i < n; i++)
        REQUIRE((b[i] = lfp_alloc(pool)) != NULL);
    CHECK_EQ(stats_of(pool).blocks_total, n);

    /* One block of each slab stays in use (moved to the end of b); the
     * others go to the depot, every batch a mix of slabs. */
    uintptr_t slabs[SLABS];
    size_t nslabs = 0, nrest = 0;
    void *held[SLABS];
    for (size_t i = 0; i < n; i++) {
        uintptr_t s = slab_of(b[i], slab);
        bool seen = false;
        for (size_t k = 0; k < nslabs; k++)
            seen = seen || slabs[k] == s;
        if (!seen && nslabs < SLABS) {
            held[nslabs] = b[i];
            slabs[nslabs++] = s;
        } else {
            rest[nrest++] = b[i];
        }
    }
    REQUIRE(nslabs == SLABS && nrest == n - SLABS);
    free_mixed(pool, rest, nrest, LANED_STEP);
    lfp_thread_flush();
    CHECK_EQ(trim_slabs(pool, per, slab), 0);
    CHECK_EQ(stats_of(pool).blocks_total, n);
    CHECK_EQ(stats_of(pool).blocks_in_use, SLABS);
    CHECK_EQ(lfp_pool_verify(pool), 0);
    alloc_exactly(pool, rest, nrest, NULL, 0, slab);

    /* Free everything but the held blocks of the first half of the slabs:
     * the others are free whole, and go. */
    free_mixed(pool, rest, nrest, LANED_STEP);
    for (size_t k = SLABS / 2; k < SLABS; k++)
        CHECK_EQ(lfp_free(pool, held[k]), 0);
    lfp_thread_flush();
    CHECK_EQ(trim_slabs(pool, per, slab), (size_t)(SLABS / 2) * slab);
    CHECK_EQ(stats_of(pool).blocks_total, (SLABS / 2) * per);
    CHECK_EQ(lfp_pool_verify(pool), 0);
    for (size_t k = 0; k < SLABS / 2; k++)
        CHECK(lfp_owns(pool, held[k]));
    nrest = (SLABS / 2) * (per - 1);
    alloc_exactly(pool, rest, nrest, slabs, SLABS / 2, slab);

    /* Everything free: every slab goes. */
    free_mixed(pool, rest, nrest, LANED_STEP);
    for (size_t k = 0; k < SLABS / 2; k++)
        CHECK_EQ(lfp_free(pool, held[k]), 0);
    lfp_thread_flush();
    CHECK_EQ(trim_slabs(pool, per, slab), (size_t)(SLABS / 2) * slab);
    CHECK_EQ(stats_of(pool).blocks_total, 0);
    CHECK_EQ(lfp_pool_verify(pool), 0);
    free(b);
    free(rest);
    CHECK_EQ(lfp_pool_destroy(pool), 0);
}

static void test_trim_with_one_block_in_use_keeps_exactly_its_slab(void)
{
    /* A trim whose depot holds every block but one must keep that one's
     * slab, however the others lie: spilled (laned batches of 100), never
     * handed out (the last slab's carve), each slab's turn as the one. One
     * block short of all free is the nearest a pool comes to the trim that
     * needs no walk (every slab free) without being it. */
    enum { SLABS = 4 };
    lfp_pool *pool = laned_pool();
    const size_t slab = LANED_SLAB, per = slab / stats_of(pool).stride;
    const size_t n = SLABS * per - per / 2;
    void **b = malloc(n * sizeof *b);
    REQUIRE(b != NULL);
    for (size_t turn = 0; turn < SLABS; turn++) {
        for (size_t i = 0; i < n; i++)
            REQUIRE((b[i] = lfp_alloc(pool)) != NULL);
        CHECK_EQ(stats_of(pool).blocks_total, SLABS * per);
        /* The first block handed out of this turn's slab stays. */
        void *held = NULL;
        uintptr_t slabs[SLABS];
        size_t nslabs = 0;
        for (size_t i = 0; i < n; i++) {
            uintptr_t s = slab_of(b[i], slab);
            bool seen = false;
            for (size_t k = 0; k < nslabs; k++)
                seen = seen || slabs[k] == s;
            if (!seen && nslabs < SLABS)
                slabs[nslabs++] = s;
            if (!seen && nslabs == turn + 1) {
                held = b[i];
                b[i] = b[n - 1];
            }
        }
        REQUIRE(held != NULL);
        free_mixed(pool, b, n - 1, LANED_STEP);
        lfp_thread_flush();
        CHECK_EQ(trim_slabs(pool, per, slab), (size_t)(SLABS - 1) * slab);
        CHECK_EQ(stats_of(pool).blocks_total, per);
        CHECK_EQ(stats_of(pool).blocks_in_use, 1);
        CHECK(lfp_owns(pool, held));
        memset(held, 0x5A, 64); /* its memory is still there */
        CHECK_EQ(lfp_pool_verify(pool), 0);
        uintptr_t keep = slab_of(held, slab);
        alloc_exactly(pool, b, per - 1, &keep, 1, slab);
        free_mixed(pool, b, per - 1, LANED_STEP);
        CHECK_EQ(lfp_free(pool, held), 0);
        lfp_thread_flush();
        CHECK_EQ(trim_slabs(pool, per, slab), slab);
        CHECK_EQ(stats_of(pool).blocks_total, 0);
        CHECK(!lfp_owns(pool, held));
    }
    CHECK_EQ(lfp_pool_verify(pool), 0);
    free(b);
    CHECK_EQ(lfp_pool_destroy(pool), 0);
}

static void test_trim_of_fixed_pool_or_null_releases_nothing(void)
{
    CHECK_EQ(lfp_pool_trim(NULL), 0);
    struct lfp_config cfg = { .block_size = 64, .capacity = 256 };
    lfp_pool *pool;
    CREATE_OR_RETURN(&cfg, &pool);
    void *b[100];
    for (int i = 0; i < 100; i++)
        REQUIRE((b[i] = lfp_alloc(pool)) != NULL);
    for (int i = 1; i < 100; i++)
        CHECK_EQ(lfp_free(pool, b[i]), 0);
    struct lfp_stats before = stats_of(pool);
    CHECK_EQ(lfp_pool_trim(pool), 0);
    struct lfp_stats after = stats_of(pool);
    CHECK(same_stats(&before, &after));
    CHECK(lfp_owns(pool, b[50]));
    memset(b[0], 1, 64);
    CHECK_EQ(lfp_free(pool, b[0]), 0);
    CHECK_EQ(lfp_pool_verify(pool), 0);
    CHECK_EQ(lfp_pool_destroy(pool), 0);
}

/* ---- ownership ---- */

/* p is not a block of pool: free says so and changes nothing. */
static void check_foreign(lfp_pool *pool, const void *p, const char *what)
{
    size_t in_use = stats_of(pool).blocks_in_use;
    int owns = lfp_owns(pool, p);
    int rc = lfp_free(pool, (void *)(uintptr_t)p);
    CHECK_EQ(owns, 0);
    CHECK_EQ(rc, LFP_EFOREIGN);
    CHECK_EQ(stats_of(pool).blocks_in_use, in_use);
    CHECK_EQ(lfp_pool_verify(pool), 0);
    if (owns != 0 || rc != LFP_EFOREIGN)
        printf("  %s (%p) was taken for a block\n", what, p);
}

/* With a range (ranged), a slab of 48-byte blocks holds 1024 of them (a
 * power of two, 12 pages) and the next position of the range follows; without
 * one, 1365 fill a 64 KiB slab of its own, 16 bytes left over at its end.
 * Either way the first slab starts 64 KiB-aligned. */
static void check_foreign_pointers_of_every_kind(bool ranged)
{
    const size_t slab = 64 * KiB;
    struct lfp_config cfg = { .block_size = 48, .align = 16, .flags = LFP_GROWABLE,
                              .slab_size = 64 * KiB };
    atomic_store(&lfp_test_range_bytes, ranged ? 0 : 1);
    lfp_pool *pool, *other, *gone;
    CREATE_OR_RETURN(&cfg, &pool);
    CREATE_OR_RETURN(&cfg, &other);
    CREATE_OR_RETURN(&cfg, &gone);
    void *mine[8];
    for (int i = 0; i < 8; i++)
        REQUIRE((mine[i] = lfp_alloc(pool)) != NULL);
    size_t stride = stats_of(pool).stride;
    CHECK_EQ(stride, 48);

    int on_stack = 0;
    check_foreign(pool, (void *)(uintptr_t)16, "a NULL-page address");
    check_foreign(pool, &on_stack, "a stack address");
    void *heap = malloc(64);
    REQUIRE(heap != NULL);
    check_foreign(pool, heap, "a malloc'd block");
    free(heap);
    void *m = mmap(NULL, slab, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(m != MAP_FAILED);
    munmap(m, slab);
    check_foreign(pool, m, "an unmapped address");
    check_foreign(pool, (void *)(uintptr_t)0xffff800000000000ull, "a kernel-half address");
    check_foreign(pool, (void *)(uintptr_t)0xfffffffffffff000ull, "the top page");
    check_foreign(pool, (void *)(uintptr_t)0x0000800000000000ull, "a non-canonical address");
    check_foreign(pool, (void *)(uintptr_t)0x00ff000000000000ull, "a non-canonical address");
    check_foreign(pool, (void *)(uintptr_t)(0x7fffffffffff0000ull + 8), "the top of user space");

    /* Inside real blocks, and past the last block of a slab. */
    char *blk = mine[3];
    check_foreign(pool, blk + 1, "an interior pointer");
    check_foreign(pool, blk + 8, "an interior pointer");
    check_foreign(pool, blk + 16, "an interior pointer");
    check_foreign(pool, blk + stride - 1, "an interior pointer");
    size_t per_slab = ranged ? 1024 : slab / stride;
    check_foreign(pool, (void *)(slab_of(blk, slab) + per_slab * stride),
                  ranged ? "the next position of the range (no slab there)"
                         : "the tail of a slab");
    check_foreign(pool, (void *)(slab_of(blk, slab) + (per_slab + 7) * stride),
                  ranged ? "a block start at a position without a slab"
                         : "past the end of a slab");

    /* A block of another growable pool, and the other way round. */
    void *theirs = lfp_alloc(other);
    REQUIRE(theirs != NULL);
    check_foreign(pool, theirs, "another pool's block");
    check_foreign(other, mine[0], "another pool's block");
    CHECK(lfp_owns(other, theirs));
    CHECK_EQ(lfp_free(other, theirs), 0);

    /* A block whose slab was trimmed away. */
    void *old = lfp_alloc(gone);
    REQUIRE(old != NULL);
    CHECK(lfp_owns(gone, old));
    CHECK_EQ(lfp_free(gone, old), 0);
    CHECK(lfp_pool_trim(gone) > 0);
    check_foreign(gone, old, "a block of a trimmed slab");
    check_foreign(pool, old, "a block of a trimmed slab");

    /* All or none: a bulk free with one foreign pointer frees nothing. */
    void *mixed[3] = { mine[5], &on_stack, mine[6] };
    size_t in_use = stats_of(pool).blocks_in_use;
    CHECK_EQ(lfp_free_bulk(pool, mixed, 3), LFP_EFOREIGN);
    CHECK_EQ(stats_of(pool).blocks_in_use, in_use);
    CHECK_EQ(lfp_pool_verify(pool), 0);

    /* The real blocks are still whole and free normally. */
    for (int i = 0; i < 8; i++) {
        CHECK(lfp_owns(pool, mine[i]));
        CHECK_EQ(lfp_free(pool, mine[i]), 0);
    }
    CHECK_EQ(lfp_pool_verify(pool), 0);
    CHECK_EQ(lfp_pool_destroy(pool), 0);
    CHECK_EQ(lfp_pool_destroy(other), 0);
    CHECK_EQ(lfp_pool_destroy(gone), 0);

    /* Bounded at 100 blocks: the first slab holds 100, and the positions
     * after them, inside its span or not, are no blocks. */
    cfg.max_blocks = 100;
    CREATE_OR_RETURN(&cfg, &pool);
    void *first = lfp_alloc(pool);
    REQUIRE(first != NULL);
    uintptr_t start = slab_of(first, slab);
    check_foreign(pool, (void *)(start + 100 * stride), "the position past max_blocks");
    check_foreign(pool, (void *)(start + 1000 * stride), "a position past max_blocks");
    check_foreign(pool, (void *)(start + 1024 * stride), "a position past max_blocks");
    void *all[100];
    all[0] = first;
    for (int i = 1; i < 100; i++)
        REQUIRE((all[i] = lfp_alloc(pool)) != NULL);
    errno = 0;
    CHECK(lfp_alloc(pool) == NULL);
    CHECK_EQ(errno, ENOBUFS);
    for (int i = 0; i < 100; i++) {
        CHECK((uintptr_t)all[i] >= start && (uintptr_t)all[i] < start + 100 * stride);
        CHECK_EQ(lfp_free(pool, all[i]), 0);
    }
    CHECK_EQ(lfp_pool_verify(pool), 0);
    CHECK_EQ(lfp_pool_destroy(pool), 0);
    atomic_store(&lfp_test_range_bytes, 0);
}

static void test_foreign_pointers_of_every_kind_are_rejected_without_fault(void)
{
    check_foreign_pointers_of_every_kind(true);
    check_foreign_pointers_of_every_kind(false);
}

/* A pool whose range is at most range_bytes; NULL (a failed check) when
 * it cannot be made. */
static lfp_pool *create_with_range(const struct lfp_config *cfg, size_t range_bytes)
{
    atomic_store(&lfp_test_range_bytes, (long)range_bytes);
    lfp_pool *pool = NULL;
    int rc = lfp_pool_create(cfg, &pool);
    atomic_store(&lfp_test_range_bytes, 0);
    CHECK_EQ(rc, LFP_OK);
    return rc == LFP_OK ? pool : NULL;
}

/* Threads grow and release the range's positions at once (an automatic trim
 * of every slab's worth freed, releases through call_rcu): claims, releases
 * and the claim hint must lose no position. Once every release is done, all
 * of the range serves again: its positions hold exactly the blocks the
 * range has room for. */
enum { CHURN_SLOTS = 8, CHURN_PER = 16 };

struct churner {
    lfp_pool *pool;
    long rounds;
    uint64_t seed;
    long bad_frees;
};

static void *churner_main(void *arg)
{
    struct churner *c = arg;
    void *b[4 * CHURN_PER];
    for (long r = 0; r < c->rounds; r++) {
        size_t n = 1 + xorshift(&c->seed) % (4 * CHURN_PER);
        size_t got = alloc_all(c->pool, b, n);
        for (size_t i = 0; i < got; i++)
            c->bad_frees += lfp_free(c->pool, b[i]) != LFP_OK;
        if (r % 16 == 0)
            lfp_thread_flush(); /* cached blocks pin slabs: let them go */
    }
    return NULL;
}

/* Blocks of the range among n freshly allocated ones, then all freed. */
static int in_range_after_fill(lfp_pool *pool, uintptr_t lo, void **b, int n)
{
    int in = 0;
    for (int i = 0; i < n; i++) {
        REQUIRE((b[i] = lfp_alloc(pool)) != NULL);
        in += (uintptr_t)b[i] - lo < CHURN_SLOTS * 64 * KiB;
    }
    CHECK_EQ(lfp_free_bulk(pool, b, (size_t)n), LFP_OK);
    return in;
}

static void test_range_positions_churned_by_threads_are_never_lost(void)
{
    enum { N = CHURN_SLOTS * CHURN_PER };
    struct lfp_config cfg = { .block_size = 4 * KiB, .flags = LFP_GROWABLE,
                              .slab_size = 64 * KiB, .cache_size = 4,
                              .trim_threshold = 64 * KiB };
    lfp_pool *pool = create_with_range(&cfg, CHURN_SLOTS * 64 * KiB);
    if (pool == NULL)
        return;
    void *first = lfp_alloc(pool); /* opens position 0: the range's start */
    REQUIRE(first != NULL);
    uintptr_t lo = slab_of(first, 64 * KiB);
    CHECK_EQ(lfp_free(pool, first), LFP_OK);

    enum { THREADS = 3 };
    struct churner c[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        c[i] = (struct churner){ pool, scaled(20000, 500), 0x9e3779b97f4a7c15ull * (i + 1), 0 };
        REQUIRE(pthread_create(&t[i], NULL, churner_main, &c[i]) == 0);
    }
    for (int i = 0; i < THREADS; i++) {
        REQUIRE(pthread_join(t[i], NULL) == 0);
        CHECK_EQ(c[i].bad_frees, 0);
    }
    lfp_thread_flush();

    /* Releases left to call_rcu hold their positions until they run. */
    void *b[N];
    int in = 0;
    for (double t0 = now_s(); now_s() - t0 < 20.0; sleep_ms(10)) {
        lfp_pool_trim(pool);
        if ((in = in_range_after_fill(pool, lo, b, N)) == N)
            break;
    }
    CHECK_EQ(in, N);
    CHECK_EQ(lfp_pool_verify(pool), LFP_OK);
    CHECK_EQ(lfp_pool_destroy(pool), 0);
}

/* A pool whose range is full takes slabs of its own, found through the
 * registry: both kinds serve, free, trim and verify alike. */
static void test_slabs_beyond_a_full_range_work_like_those_in_it(void)
{
    enum { PER = 16, SLABS = 8, N = PER * SLABS };
    struct lfp_config cfg = { .block_size = 4 * KiB, .flags = LFP_GROWABLE,
                              .slab_size = 64 * KiB, .cache_size = 4 };
    lfp_pool *pool = create_with_range(&cfg, 3 * 64 * KiB); /* 3 slabs */
    if (pool == NULL)
        return;
    void *b[N];
    for (int i = 0; i < N; i++) {
        REQUIRE((b[i] = lfp_alloc(pool)) != NULL);
        memset(b[i], i, 4 * KiB);
    }
    /* The first slab opens the range, a run of 3 slabs; the rest lie
     * elsewhere. */
    uintptr_t lo = slab_of(b[0], 64 * KiB);
    int in_range = 0;
    for (int i = 0; i < N; i++) {
        in_range += (uintptr_t)b[i] - lo < 3 * 64 * KiB;
        CHECK(lfp_owns(pool, b[i]));
        CHECK(!lfp_owns(pool, (char *)b[i] + 8));
    }
    CHECK_EQ(in_range, 3 * PER);
    CHECK_EQ(stats_of(pool).blocks_total, N);
    for (int i = 0; i < N; i++) {
        unsigned char *p = b[i];
        CHECK(p[0] == (unsigned char)i && p[4 * KiB - 1] == (unsigned char)i);
        CHECK_EQ(lfp_free(pool, b[i]), 0);
    }
    CHECK_EQ(lfp_pool_verify(pool), 0);
    lfp_thread_flush();
    CHECK_EQ(lfp_pool_trim(pool), (size_t)SLABS * 64 * KiB);
    CHECK_EQ(stats_of(pool).blocks_total, 0);
    for (int i = 0; i < N; i++)
        check_foreign(pool, b[i], "a block of a trimmed slab");
    /* Grown again: the range's positions are free for use again. */
    for (int i = 0; i < N; i++)
        REQUIRE((b[i] = lfp_alloc(pool)) != NULL);
    in_range = 0;
    for (int i = 0; i < N; i++)
        in_range += (uintptr_t)b[i] - lo < 3 * 64 * KiB;
    CHECK_EQ(in_range, 3 * PER);
    CHECK_EQ(lfp_free_bulk(pool, b, N), 0);
    CHECK_EQ(lfp_pool_verify(pool), 0);
    CHECK_EQ(lfp_pool_destroy(pool), 0);
}

/* ---- the automatic trim policy ---- */

static void test_trim_threshold_trims_automatically_and_zero_never_does(void)
{
    /* 64 KiB blocks, 16 to a 1 MiB slab; 40 slabs, freed in order. */
    enum { SLABS = 40, PER = 16, N = SLABS * PER };
    const size_t block = 64 * KiB, slab = MiB;
    static void *b[N];
    for (int automatic = 1; automatic >= 0; automatic--) {
        struct lfp_config cfg = { .block_size = block, .slab_size = slab,
                                  .flags = LFP_GROWABLE | LFP_NO_CACHE,
                                  .trim_threshold = automatic ? 4 * slab : 0 };
        lfp_pool *pool;
        CREATE_OR_RETURN(&cfg, &pool);
        for (int i = 0; i < N; i++) {
            REQUIRE((b[i] = lfp_alloc(pool)) != NULL);
            memset(b[i], 0x3c, block); /* resident */
        }
        size_t peak = stats_of(pool).blocks_total;
        CHECK_EQ(peak, N);
        size_t rss1 = resident_bytes();

        for (int i = 0; i < N; i++)
            CHECK_EQ(lfp_free(pool, b[i]), 0);
        struct lfp_stats st = stats_of(pool);
        CHECK_EQ(st.blocks_in_use, 0);
        if (!automatic) {
            /* No threshold: nothing goes back until asked to. */
            CHECK_EQ(st.blocks_total, peak);
            CHECK(lfp_owns(pool, b[0]));
            CHECK_EQ(lfp_pool_trim(pool), (size_t)SLABS * slab);
            CHECK_EQ(stats_of(pool).blocks_total, 0);
            CHECK_EQ(lfp_pool_verify(pool), 0);
            CHECK_EQ(lfp_pool_destroy(pool), 0);
            continue;
        }

        /* The slabs left the pool at once (blocks_total and ownership);
         * their memory goes back once a grace period has passed. */
        printf("  threshold of 4 slabs: %zu of %zu blocks left after freeing all\n",
               st.blocks_total, peak);
        CHECK(st.blocks_total <= peak / 4);
        CHECK(!lfp_owns(pool, b[0]));
        size_t expect_drop = (peak - st.blocks_total) * block / 10 * 9;
        double t0 = now_s();
        size_t dropped = 0;
        while (now_s() - t0 < 20.0) {
            size_t rss = resident_bytes();
            dropped = rss1 > rss ? rss1 - rss : 0;
            if (dropped >= expect_drop)
                break;
            sleep_ms(5);
        }
        printf("  resident -%zu MiB after %.3f s\n", dropped / MiB, now_s() - t0);
        CHECK(dropped >= expect_drop);
        CHECK_EQ(lfp_pool_verify(pool), 0);
        CHECK_EQ(lfp_pool_destroy(pool), 0);
    }
}

/* A threshold below one block's size still trims automatically: every
 * block that comes back is more than it. */
static void test_a_trim_threshold_below_one_block_still_trims(void)
{
    enum { PER = 16, N = 2 * PER };
    struct lfp_config cfg = { .block_size = 64 * KiB, .slab_size = MiB,
                              .flags = LFP_GROWABLE | LFP_NO_CACHE, .trim_threshold = 1 };
    lfp_pool *pool;
    CREATE_OR_RETURN(&cfg, &pool);
    void *b[N];
    CHECK_EQ(alloc_all(pool, b, N), N);
    CHECK_EQ(stats_of(pool).blocks_total, N);
    free_all(pool, b, N);
    CHECK_EQ(stats_of(pool).blocks_total, 0); /* N when it was taken as 0, off */
    verify_and_destroy(pool, 0);
}

/* Free n blocks of a pool with a trim threshold of one slab: the frees
 * trim it automatically, its releases queued to call_rcu. */
static void churn_auto_trim(lfp_pool *pool, void **b, int n)
{
    for (int i = 0; i < n; i++)
        REQUIRE((b[i] = lfp_alloc(pool)) != NULL);
    for (int i = 0; i < n; i++)
        CHECK_EQ(lfp_free(pool, b[i]), 0);
    lfp_thread_flush();
}

/* A child of fork() trims automatically and destroys its pools as the
 * parent does: its releases run (liburcu's call_rcu thread is started
 * again in the child), and destroy, which waits for them, returns. */
static void test_automatic_trim_and_destroy_work_in_a_forked_child(void)
{
#ifdef CHECK_TSAN
    printf("  skipped under TSan: it does not support fork() in a threaded program\n");
#else
    if (check_under_qemu()) {
        printf("  skipped under qemu-user: it cannot start threads in a forked child\n");
        return;
    }
    enum { N = 16 * 16 };
    struct lfp_config cfg = { .block_size = 4 * KiB, .flags = LFP_GROWABLE,
                              .slab_size = 64 * KiB, .cache_size = 4,
                              .trim_threshold = 64 * KiB };
    lfp_pool *pool;
    CREATE_OR_RETURN(&cfg, &pool);
    static void *b[N];
    churn_auto_trim(pool, b, N); /* starts the call_rcu thread */
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        alarm(20); /* a hang is a failure, not a stuck test */
        churn_auto_trim(pool, b, N);
        int ok = lfp_pool_verify(pool) == 0 && lfp_pool_destroy(pool) == 0;
        lfp_pool *again;
        ok = ok && lfp_pool_create(&cfg, &again) == 0;
        if (ok) {
            churn_auto_trim(again, b, N);
            ok = lfp_pool_destroy(again) == 0;
        }
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0);
    /* The parent's releases still run after the fork, too. */
    churn_auto_trim(pool, b, N);
    CHECK_EQ(lfp_pool_verify(pool), 0);
    CHECK_EQ(lfp_pool_destroy(pool), 0);
#endif
}

/* Under a limit on the address space, ranges take a small share of it:
 * four unbounded pools and a bounded one leave room for a 1 GiB malloc in a
 * 3 GiB address space (each would reserve 1 GiB or more without a limit). */
static void test_ranges_leave_room_under_an_address_space_limit(void)
{
#ifdef UNDER_SANITIZER
    printf("  skipped under a sanitizer: its shadow memory needs the address space\n");
#else
    if (check_under_qemu()) {
        printf("  skipped under qemu-user: it does not apply RLIMIT_AS\n");
        return;
    }
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        size_t vm = mapped_bytes();
        struct rlimit lim = { vm + 3 * (size_t)1024 * MiB, vm + 3 * (size_t)1024 * MiB };
        int ok = setrlimit(RLIMIT_AS, &lim) == 0;
        struct lfp_config cfg = { .block_size = 64, .flags = LFP_GROWABLE };
        lfp_pool *p[5];
        for (int i = 0; i < 4 && ok; i++)
            ok = lfp_pool_create(&cfg, &p[i]) == 0 && lfp_alloc(p[i]) != NULL;
        cfg.max_blocks = (size_t)1 << 26; /* 4 GiB of 64-byte blocks */
        ok = ok && lfp_pool_create(&cfg, &p[4]) == 0 && lfp_alloc(p[4]) != NULL;
        void *big = ok ? malloc((size_t)1024 * MiB) : NULL;
        ok = ok && big != NULL;
        free(big);
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
#endif
}

/* ---- constructors and destructors ---- */

#define CONSTRUCTED 0x0b10cc0de5eedull

struct lifecycle {
    atomic_long init, fini, bad_arg, bad_fini, bad_init;
};

static void block_init(void *block, void *arg)
{
    struct lifecycle *lc = arg;
    uint64_t *w = block;
    if (w[0] == CONSTRUCTED)
        atomic_fetch_add(&lc->bad_init, 1); /* constructed twice */
    w[0] = CONSTRUCTED;
    atomic_fetch_add(&lc->init, 1);
}

static void block_fini(void *block, void *arg)
{
    struct lifecycle *lc = arg;
    uint64_t *w = block;
    if (w[0] != CONSTRUCTED)
        atomic_fetch_add(&lc->bad_fini, 1); /* never constructed, or twice */
    w[0] = 0;
    atomic_fetch_add(&lc->fini, 1);
}

static struct lifecycle arg_probe;
static void check_arg_init(void *block, void *arg);

static void test_init_and_fini_run_once_per_block_over_each_slab_lifetime(void)
{
    /* 4 KiB blocks; with a constructor their links follow them, so a
     * 64 KiB slab holds 15 of them. */
    static struct lifecycle lc;
    const size_t slab = 64 * KiB;
    struct lfp_config cfg = { .block_size = 4 * KiB, .flags = LFP_GROWABLE,
                              .slab_size = 64 * KiB, .init = block_init,
                              .fini = block_fini, .arg = &lc };
    lfp_pool *pool;
    CREATE_OR_RETURN(&cfg, &pool);
    CHECK_EQ(atomic_load(&lc.init), 0); /* capacity 0: no slab yet */

    void *b[45];
    b[0] = lfp_alloc(pool);
    REQUIRE(b[0] != NULL);
    size_t per = stats_of(pool).blocks_total;
    CHECK_EQ(per, 64 * KiB / (4 * KiB + LFP_LINK_BYTES));
    CHECK_EQ(atomic_load(&lc.init), (long)per); /* the whole slab, at once */
    CHECK_EQ(atomic_load(&lc.fini), 0);
    for (size_t i = 1; i < 3 * per; i++)
        REQUIRE((b[i] = lfp_alloc(pool)) != NULL);
    CHECK_EQ(stats_of(pool).blocks_total, 3 * per);
    CHECK_EQ(atomic_load(&lc.init), (long)(3 * per));
    size_t unconstructed = 0;
    for (size_t i = 0; i < 3 * per; i++)
        if (*(uint64_t *)b[i] != CONSTRUCTED)
            unconstructed++;
    CHECK_EQ(unconstructed, 0);

    /* Trim destroys the blocks of the slabs it releases, and only those. */
    for (size_t i = 1; i < 3 * per; i++)
        CHECK_EQ(lfp_free(pool, b[i]), 0);
    size_t released = lfp_pool_trim(pool);
    CHECK_EQ(released, 2 * slab); /* b[0]'s slab stays */
    CHECK_EQ(atomic_load(&lc.fini), (long)(released / slab * per));
    CHECK_EQ(stats_of(pool).blocks_total, per);
    CHECK_EQ(*(uint64_t *)b[0], CONSTRUCTED);

    /* Growing again constructs a new slab's blocks. */
    for (size_t i = 1; i < 2 * per; i++)
        REQUIRE((b[i] = lfp_alloc(pool)) != NULL);
    CHECK_EQ(atomic_load(&lc.init), (long)(4 * per));
    for (size_t i = 1; i < 2 * per; i++)
        CHECK_EQ(lfp_free(pool, b[i]), 0);

    /* Destroy runs fini on every block left, free or still in use. */
    CHECK_EQ(lfp_pool_verify(pool), 0);
    CHECK_EQ(lfp_pool_destroy(pool), 1); /* b[0] */
    CHECK_EQ(atomic_load(&lc.fini), atomic_load(&lc.init));
    CHECK_EQ(atomic_load(&lc.bad_fini), 0);
    CHECK_EQ(atomic_load(&lc.bad_init), 0);

    /* The constructor gets the configured argument. */
    cfg.init = check_arg_init;
    cfg.fini = NULL;
    cfg.arg = &arg_probe;
    cfg.capacity = 1;
    CREATE_OR_RETURN(&cfg, &pool);
    CHECK_EQ(atomic_load(&arg_probe.init), (long)per);
    CHECK_EQ(atomic_load(&arg_probe.bad_arg), 0);
    CHECK_EQ(lfp_pool_destroy(pool), 0);
}

static void check_arg_init(void *block, void *arg)
{
    (void)block;
    if (arg != &arg_probe)
        atomic_fetch_add(&arg_probe.bad_arg, 1);
    atomic_fetch_add(&arg_probe.init, 1);
}

/* ---- threads ---- */

enum { CHURN_HELD = 64, EXCHANGE = 64, IN_TRANSIT = 0xffff };

struct churn_shared {
    lfp_pool *pool;
    long ops;
    _Atomic(void *) exchange[EXCHANGE]; /* blocks on their way to another thread */
    atomic_bool stop_trim;
    atomic_long alloc_failed, bad_free, bad_stamp, trims, released;
};

struct churn_thread {
    struct churn_shared *sh;
    uint64_t id;
    pthread_t tid;
};

static uint64_t stamp(uint64_t owner, void *p)
{
    return (owner << 48) ^ (uint64_t)(uintptr_t)p;
}

#define STAMP_AT(p) (*(volatile uint64_t *)((char *)(p) + 64))

static void *churn_main(void *arg)
{
    struct churn_thread *t = arg;
    struct churn_shared *sh = t->sh;
    uint64_t rng = 0x9e3779b97f4a7c15ull * (t->id + 7);
    void *held[CHURN_HELD];
    int n = 0;
    for (long op = 0; op < sh->ops; op++) {
        uint64_t r = xorshift(&rng);
        unsigned what = (unsigned)(r % 100);
        if (what < 45 && n < CHURN_HELD) {
            void *p = lfp_alloc(sh->pool);
            if (p == NULL) {
                atomic_fetch_add(&sh->alloc_failed, 1);
                continue;
            }
            STAMP_AT(p) = stamp(t->id, p);
            held[n++] = p;
        } else if (what < 90 && n > 0) {
            int i = (int)((r >> 8) % (uint64_t)n);
            void *p = held[i];
            held[i] = held[--n];
            if (STAMP_AT(p) != stamp(t->id, p))
                atomic_fetch_add(&sh->bad_stamp, 1);
            if (lfp_free(sh->pool, p) != 0)
                atomic_fetch_add(&sh->bad_free, 1);
        } else if (what < 98 && n > 0) {
            /* Hand a block over; free whatever another thread left there. */
            int i = (int)((r >> 8) % (uint64_t)n);
            void *p = held[i];
            held[i] = held[--n];
            if (STAMP_AT(p) != stamp(t->id, p))
                atomic_fetch_add(&sh->bad_stamp, 1);
            STAMP_AT(p) = stamp(IN_TRANSIT, p);
            void *q = atomic_exchange(&sh->exchange[(r >> 20) % EXCHANGE], p);
            if (q != NULL) {
                if (STAMP_AT(q) != stamp(IN_TRANSIT, q))
                    atomic_fetch_add(&sh->bad_stamp, 1);
                if (lfp_free(sh->pool, q) != 0)
                    atomic_fetch_add(&sh->bad_free, 1);
            }
        } else if (what == 98) {
            lfp_thread_flush();
        } else {
            struct lfp_stats st;
            lfp_pool_stats(sh->pool, &st);
        }
    }
    for (int i = 0; i < n; i++) {
        if (STAMP_AT(held[i]) != stamp(t->id, held[i]))
            atomic_fetch_add(&sh->bad_stamp, 1);
        if (lfp_free(sh->pool, held[i]) != 0)
            atomic_fetch_add(&sh->bad_free, 1);
    }
    return NULL;
}

static void *trim_main(void *arg)
{
    struct churn_shared *sh = arg;
    while (!atomic_load(&sh->stop_trim)) {
        atomic_fetch_add(&sh->released, (long)lfp_pool_trim(sh->pool));
        atomic_fetch_add(&sh->trims, 1);
        struct timespec ts = { 0, 200 * 1000 };
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void test_threads_churning_through_magazines_while_trimming_stay_consistent(void)
{
    int threads = stress_threads();
    static struct churn_shared sh;
    /* 256-byte blocks, 256 to a 64 KiB slab, magazines of 16: slabs fill
     * and empty often enough for trim to find free ones. */
    struct lfp_config cfg = { .block_size = 256, .flags = LFP_GROWABLE,
                              .slab_size = 64 * KiB, .cache_size = 16 };
    CREATE_OR_RETURN(&cfg, &sh.pool);
    sh.ops = scaled(200000, 1000);

    static struct churn_thread t[256];
    pthread_t trimmer;
    REQUIRE(pthread_create(&trimmer, NULL, trim_main, &sh) == 0);
    for (int i = 0; i < threads; i++) {
        t[i].sh = &sh;
        t[i].id = (uint64_t)i + 1;
        REQUIRE(pthread_create(&t[i].tid, NULL, churn_main, &t[i]) == 0);
    }
    for (int i = 0; i < threads; i++)
        REQUIRE(pthread_join(t[i].tid, NULL) == 0);
    atomic_store(&sh.stop_trim, true);
    REQUIRE(pthread_join(trimmer, NULL) == 0);

    /* Blocks still on their way to another thread. */
    for (int i = 0; i < EXCHANGE; i++) {
        void *q = atomic_exchange(&sh.exchange[i], NULL);
        if (q == NULL)
            continue;
        if (STAMP_AT(q) != stamp(IN_TRANSIT, q))
            atomic_fetch_add(&sh.bad_stamp, 1);
        if (lfp_free(sh.pool, q) != 0)
            atomic_fetch_add(&sh.bad_free, 1);
    }
    printf("  %d threads x %ld ops: %ld trims released %ld KiB\n", threads, sh.ops,
           atomic_load(&sh.trims), atomic_load(&sh.released) / 1024);
    CHECK_EQ(atomic_load(&sh.alloc_failed), 0);
    CHECK_EQ(atomic_load(&sh.bad_free), 0);
    CHECK_EQ(atomic_load(&sh.bad_stamp), 0);
    CHECK_EQ(lfp_pool_verify(sh.pool), 0);
    lfp_thread_flush(); /* the blocks this thread just freed */
    struct lfp_stats st = stats_of(sh.pool);
    CHECK_EQ(st.blocks_in_use, 0);
    CHECK_EQ(st.blocks_cached, 0);
    /* The churn threads exited and handed their caches back: every slab
     * is free, and trim releases all of them. */
    lfp_pool_trim(sh.pool);
    CHECK_EQ(stats_of(sh.pool).blocks_total, 0);
    CHECK_EQ(lfp_pool_verify(sh.pool), 0);
    CHECK_EQ(lfp_pool_destroy(sh.pool), 0);
}

/* Threads that drain a pool together and then grow it again, against the
 * trim that finds every slab's blocks in the depot and so reads none. */
struct drainer {
    lfp_pool *pool;
    pthread_barrier_t *bar;
    long rounds;
    uint64_t seed, id;
    long bad_stamp, bad_free;
};

/* Up to three 64 KiB slabs of 64-byte blocks a thread. */
enum { DRAIN_MAX = 3 * 1024 };

static void *drainer_main(void *arg)
{
    struct drainer *d = arg;
    void **b = malloc(DRAIN_MAX * sizeof *b);
    REQUIRE(b != NULL);
    for (long r = 0; r < d->rounds; r++) {
        size_t got = alloc_all(d->pool, b, 1 + xorshift(&d->seed) % DRAIN_MAX);
        for (size_t i = 0; i < got; i++)
            *(volatile uint64_t *)b[i] = stamp(d->id, b[i]);
        for (size_t i = 0; i < got; i++) {
            d->bad_stamp += *(volatile uint64_t *)b[i] != stamp(d->id, b[i]);
            d->bad_free += lfp_free(d->pool, b[i]) != LFP_OK;
        }
        lfp_thread_flush();
        /* Every thread is drained: the trim starts. Each fourth round it
         * has the pool to itself; the others grow it again meanwhile. */
        pthread_barrier_wait(d->bar);
        if (r % 4 == 0)
            pthread_barrier_wait(d->bar);
    }
    free(b);
    return NULL;
}

static void test_a_trim_of_a_drained_pool_races_threads_growing_it_again(void)
{
    enum { THREADS = 2 };
    struct lfp_config cfg = { .block_size = 64, .flags = LFP_GROWABLE,
                              .slab_size = 64 * KiB, .cache_size = 32 };
    lfp_pool *pool;
    CREATE_OR_RETURN(&cfg, &pool);
    pthread_barrier_t bar;
    REQUIRE(pthread_barrier_init(&bar, NULL, THREADS + 1) == 0);
    long rounds = scaled(400, 40);
    struct drainer d[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        d[i] = (struct drainer){ .pool = pool, .bar = &bar, .rounds = rounds,
                                 .seed = 0x2545f4914f6cdd1dull * (uint64_t)(i + 1),
                                 .id = (uint64_t)i + 1 };
        REQUIRE(pthread_create(&t[i], NULL, drainer_main, &d[i]) == 0);
    }
    long left = 0; /* alone, the trim must release every slab */
    for (long r = 0; r < rounds; r++) {
        pthread_barrier_wait(&bar);
        lfp_pool_trim(pool);
        if (r % 4 == 0) {
            left += stats_of(pool).blocks_total != 0;
            pthread_barrier_wait(&bar);
        }
    }
    for (int i = 0; i < THREADS; i++) {
        REQUIRE(pthread_join(t[i], NULL) == 0);
        CHECK_EQ(d[i].bad_stamp, 0);
        CHECK_EQ(d[i].bad_free, 0);
    }
    CHECK_EQ(left, 0);
    CHECK_EQ(stats_of(pool).blocks_in_use, 0);
    CHECK_EQ(lfp_pool_verify(pool), LFP_OK);
    lfp_pool_trim(pool);
    CHECK_EQ(stats_of(pool).blocks_total, 0);
    pthread_barrier_destroy(&bar);
    CHECK_EQ(lfp_pool_destroy(pool), 0);
}

/* The depot keeps a stack per CPU: a trim must gather the free blocks of
 * every one of them. Half of each slab's blocks are freed on one CPU, half on
 * another; every slab is then free, and the trim releases them all. */
static void test_trim_releases_slabs_whose_blocks_are_spread_over_cpus(void)
{
    cpu_set_t saved;
    int c0 = 0, c1 = 0;
    if (!check_two_cpus(&saved, &c0, &c1))
        return;
    const size_t n = 4096;
    struct lfp_config cfg = { .block_size = 64, .flags = LFP_GROWABLE, .cache_size = 16,
                              .slab_size = 64 * KiB };
    lfp_pool *pool;
    CREATE_OR_RETURN(&cfg, &pool);
    void **b = malloc(n * sizeof(void *));
    REQUIRE(b != NULL);
    CHECK_EQ(alloc_all(pool, b, n), n);
    size_t mapped = stats_of(pool).bytes_reserved;
    check_pin(c0);
    for (size_t i = 0; i < n; i += 2)
        CHECK_EQ(lfp_free(pool, b[i]), LFP_OK);
    lfp_thread_flush();
    check_pin(c1);
    for (size_t i = 1; i < n; i += 2)
        CHECK_EQ(lfp_free(pool, b[i]), LFP_OK);
    CHECK_EQ(lfp_pool_trim(pool), mapped);
    struct lfp_stats st = stats_of(pool);
    CHECK_EQ(st.blocks_total, 0);
    CHECK_EQ(st.bytes_reserved, 0);
    verify_and_destroy(pool, 0);
    free(b);
    CHECK_EQ(sched_setaffinity(0, sizeof saved, &saved), 0);
}

/* ---- blocks on their way to the depot ---- */

/* A pool at max_blocks whose depot is empty for the moment, because another
 * thread is making a new slab ready or trimming, still has free blocks: a
 * thread that allocates then must wait for them, not fail with ENOBUFS.
 * While held_armed is set, the first thread through hold_here stays there
 * until held_release is. */
static _Atomic int held_armed, held_calls, held_release, held_done;
static void *(*held_first)(void *);
static void *held_ret;

static void hold_here(void)
{
    if (atomic_load(&held_armed) && atomic_fetch_add(&held_calls, 1) == 0)
        while (!atomic_load(&held_release))
            sched_yield();
}

static void hold_in_callback(void *block, void *arg)
{
    (void)block;
    (void)arg;
    hold_here();
}

static void *alloc_one(void *pool)
{
    return lfp_alloc(pool);
}

static void *trim_one(void *pool)
{
    return (void *)(uintptr_t)lfp_pool_trim(pool);
}

static void *held_main(void *pool)
{
    held_ret = held_first(pool);
    atomic_store(&held_done, 1);
    return NULL;
}

/* Run first(pool) on a new thread until it is held, with the pool at its
 * bound (checked). */
static pthread_t hold_start(lfp_pool *pool, size_t bound, void *(*first)(void *))
{
    atomic_store(&held_calls, 0);
    atomic_store(&held_release, 0);
    atomic_store(&held_done, 0);
    atomic_store(&held_armed, 1);
    held_first = first;
    pthread_t a;
    REQUIRE(pthread_create(&a, NULL, held_main, pool) == 0);
    while (atomic_load(&held_calls) == 0)
        sched_yield();
    CHECK_EQ(stats_of(pool).blocks_total, bound);
    return a;
}

/* Let the held thread go on; returns its result. */
static void *hold_end(pthread_t a)
{
    atomic_store(&held_release, 1);
    REQUIRE(pthread_join(a, NULL) == 0);
    atomic_store(&held_armed, 0);
    return held_ret;
}

/* Called by lfp_depot_take (test hook) when it found nothing to take and
 * nothing to make: while waiting (WAIT), or, once (LAND), after letting
 * the held thread finish, so that its blocks landed after the depot was
 * looked at and before lfp_depot_take looks at what is in flight. */
enum held_mode { WAIT, LAND, BEFORE };
static _Atomic int take_mode, take_calls;

static void take_hook(void)
{
    if (atomic_fetch_add(&take_calls, 1) == 0 && atomic_load(&take_mode) == LAND) {
        atomic_store(&held_release, 1);
        while (!atomic_load(&held_done))
            sched_yield();
    }
}

static _Atomic int second_done;

static void *second_main(void *pool)
{
    void *p = lfp_alloc(pool);
    atomic_store(&second_done, 1);
    return p;
}

/* lfp_alloc(pool) on a second thread while first(pool) is held, then let
 * the first go on: in mode WAIT once the second has found nothing twice,
 * in mode LAND in the second's hook (or once the second has returned, in
 * either mode); in mode BEFORE the second must return while the first is
 * held (checked, giving up after 10 s). Returns the second thread's block; *first_ret gets the
 * first's result. */
static void *alloc_while_held(lfp_pool *pool, size_t bound, void *(*first)(void *),
                              enum held_mode mode, void **first_ret)
{
    atomic_store(&take_mode, mode);
    atomic_store(&take_calls, 0);
    atomic_store(&second_done, 0);
    atomic_store(&lfp_test_take_hook, take_hook);
    pthread_t a = hold_start(pool, bound, first), b;
    REQUIRE(pthread_create(&b, NULL, second_main, pool) == 0);
    int calls = mode == WAIT ? 2 : mode == LAND ? 1 : INT_MAX;
    for (long spins = 0; atomic_load(&take_calls) < calls && !atomic_load(&second_done); spins++) {
        if (mode == BEFORE && spins == 10000) /* 10 s */
            break;
        if (mode == BEFORE)
            sleep_ms(1);
        else
            sched_yield();
    }
    CHECK(mode != BEFORE || atomic_load(&second_done));
    *first_ret = hold_end(a);
    void *got = NULL;
    REQUIRE(pthread_join(b, &got) == 0);
    atomic_store(&lfp_test_take_hook, NULL);
    return got;
}

/* A pool bounded at two 1024-block slabs (48-byte blocks and their 16 link
 * bytes), with init as constructor, whose first slab, made up front, is
 * all in use: its blocks in *blocks, which has room for both slabs'. */
enum { SLAB_BLOCKS = 1024 };

/* A pool of cfg with n blocks in use: in *blocks, which has room for
 * `room` blocks. */
static lfp_pool *pool_with_in_use(const struct lfp_config *cfg, size_t n, size_t room,
                                  void ***blocks)
{
    lfp_pool *pool = NULL;
    CHECK_EQ(lfp_pool_create(cfg, &pool), LFP_OK);
    *blocks = malloc(room * sizeof(void *));
    REQUIRE(pool != NULL && *blocks != NULL);
    CHECK_EQ(alloc_all(pool, *blocks, n), n);
    return pool;
}

static lfp_pool *pool_with_first_slab_in_use(void (*init)(void *, void *), void ***blocks)
{
    struct lfp_config cfg = { .block_size = 48, .flags = LFP_GROWABLE,
                              .capacity = SLAB_BLOCKS, .max_blocks = 2 * SLAB_BLOCKS,
                              .slab_size = 64 * KiB, .init = init };
    lfp_pool *pool = pool_with_in_use(&cfg, SLAB_BLOCKS, 2 * SLAB_BLOCKS, blocks);
    CHECK_EQ(stats_of(pool).blocks_total, SLAB_BLOCKS);
    return pool;
}

/* Free the first n blocks (NULL ones free nothing), check and destroy
 * the pool. */
static void free_check_destroy(lfp_pool *pool, void **blocks, size_t n)
{
    for (size_t i = 0; i < n; i++)
        CHECK_EQ(lfp_free(pool, blocks[i]), LFP_OK);
    verify_and_destroy(pool, 0);
    free(blocks);
}

/* Both threads got a block, and not the same: blocks[n] and blocks[n + 1]
 * get them, and the pool is checked and destroyed with all n + 2 freed. */
static void both_got_one(lfp_pool *pool, void **blocks, size_t n, void *pa, void *pb)
{
    CHECK(pa != NULL && pb != NULL && pa != pb);
    blocks[n] = pa;
    blocks[n + 1] = pb != pa ? pb : NULL;
    free_check_destroy(pool, blocks, n + 2);
}

/* Free (and clear) each of the n blocks that lies in the slab of p. */
static void free_slab_of(lfp_pool *pool, void **b, size_t n, const void *p, size_t slab)
{
    uintptr_t base = slab_of(p, slab);
    for (size_t i = 0; i < n; i++)
        if (b[i] != NULL && slab_of(b[i], slab) == base) {
            CHECK_EQ(lfp_free(pool, b[i]), LFP_OK);
            b[i] = NULL;
        }
}

/* A pool of two 64 KiB slabs of 16 4 KiB blocks without a cache (cfg's
 * other fields as given), made up front and all allocated into b, then the
 * first slab's blocks freed (NULL in b); NULL when it cannot be made. */
enum { TWO_SLABS_PER = 16 };

static lfp_pool *two_slabs_first_free(struct lfp_config cfg, void **b)
{
    cfg.block_size = 4 * KiB;
    cfg.flags = LFP_GROWABLE | LFP_NO_CACHE;
    cfg.capacity = 2 * TWO_SLABS_PER;
    cfg.slab_size = 64 * KiB;
    lfp_pool *pool;
    int rc = lfp_pool_create(&cfg, &pool);
    CHECK_EQ(rc, LFP_OK);
    if (rc != LFP_OK)
        return NULL;
    CHECK_EQ(alloc_all(pool, b, cfg.capacity), cfg.capacity);
    free_slab_of(pool, b, cfg.capacity, b[0], cfg.slab_size);
    return pool;
}

/* The child must have exited with status 0; a SIGALRM (its alarm, against
 * a hang) or a non-zero status fails the test. */
static void check_child(pid_t pid)
{
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0);
}

static void test_a_thread_at_max_blocks_waits_for_a_slab_being_made_ready(void)
{
    /* The second and last slab the bound allows is held in its first
     * constructor call, before any of its blocks reaches the depot. */
    for (int mode = WAIT; mode <= LAND; mode++) {
        void **b;
        lfp_pool *pool = pool_with_first_slab_in_use(hold_in_callback, &b);
        void *pa = NULL;
        void *pb = alloc_while_held(pool, 2 * SLAB_BLOCKS, alloc_one, mode, &pa);
        CHECK_EQ(stats_of(pool).blocks_total, 2 * SLAB_BLOCKS);
        /* ENOBUFS (pb NULL) without the wait (WAIT), or without looking
         * again when the slab's blocks landed after the depot was looked at
         * (LAND). */
        both_got_one(pool, b, SLAB_BLOCKS, pa, pb);
    }
}

/* The same for a hole being made ready: a pool of one slab, the bound,
 * whose lowest block stays in use; a trim makes the free pages of the rest
 * a hole, and the blocks left in the depot are taken. The first thread
 * takes the hole and is held in its first constructor call, before any of
 * its blocks reaches the depot; the second, which finds no block, no hole
 * and no room, must wait for them. Fails when the hole's growth does not
 * count itself in flight from before it takes the hole (ENOBUFS). */
/* lfp_pool_stats reads the total, then the count of blocks in holes: a
 * growth and a trim that makes holes in the new slabs between the two
 * reads can leave more blocks in holes than the total it read. blocks_carved
 * must then be 0, not that difference wrapped round to near 2^64. */
enum { WRAP_SLABS = 3 };
static lfp_pool *wrap_pool;
static void **wrap_blocks;
static size_t wrap_made;

static void grow_and_make_holes(void)
{
    atomic_store(&lfp_test_stats_hook, NULL); /* once: the hook reads stats too */
    lfp_pool *pool = wrap_pool;
    const size_t n = WRAP_SLABS * SLAB_BLOCKS;
    CHECK_EQ(alloc_all(pool, wrap_blocks, n), n);
    size_t repeats;
    void **sorted = sorted_blocks(wrap_blocks, n, &repeats);
    CHECK_EQ(repeats, 0);
    /* The lowest block of each new slab stays in use, so the slabs stay
     * and the rest of each becomes a hole. */
    for (size_t i = 0; i < n; i++) {
        wrap_blocks[i] = i % SLAB_BLOCKS == 0 ? sorted[i] : NULL;
        if (wrap_blocks[i] == NULL)
            CHECK_EQ(lfp_free(pool, sorted[i]), LFP_OK);
    }
    free(sorted);
    wrap_made = lfp_pool_trim(pool);
}

static void test_stats_read_across_a_growth_and_its_holes_do_not_wrap(void)
{
    if ((size_t)sysconf(_SC_PAGESIZE) > 16 * KiB)
        return; /* no hole fits in a 64 KiB slab */
    void **b;
    struct lfp_config cfg = { .block_size = 48, .flags = LFP_GROWABLE,
                              .capacity = SLAB_BLOCKS, .slab_size = 64 * KiB };
    wrap_pool = pool_with_in_use(&cfg, SLAB_BLOCKS, (WRAP_SLABS + 1) * SLAB_BLOCKS, &b);
    wrap_blocks = b + SLAB_BLOCKS;
    wrap_made = 0;
    atomic_store(&lfp_test_stats_hook, grow_and_make_holes);
    struct lfp_stats s = stats_of(wrap_pool);
    CHECK(atomic_load(&lfp_test_stats_hook) == NULL); /* the hook ran */
    CHECK(wrap_made > 0);
    /* Read before the growth: one slab. */
    CHECK_EQ(s.blocks_total, SLAB_BLOCKS);
    CHECK(s.blocks_carved <= s.blocks_total);
    /* Read again, after: the holes exceed a slab, and are out of the
     * carved count. */
    s = stats_of(wrap_pool);
    CHECK_EQ(s.blocks_total, (WRAP_SLABS + 1) * SLAB_BLOCKS);
    CHECK(s.blocks_total - s.blocks_carved > SLAB_BLOCKS);
    size_t n = 0;
    for (size_t i = 0; i < (WRAP_SLABS + 1) * SLAB_BLOCKS; i++)
        if (b[i] != NULL)
            b[n++] = b[i];
    CHECK_EQ(n, SLAB_BLOCKS + WRAP_SLABS);
    free_check_destroy(wrap_pool, b, n);
}

/* The first thread that takes a hole is held just after its pop (where
 * it holds the hole's blocks and nothing yet says so unless its growth is
 * counted in flight before the pop), or in its first constructor call. */
static void test_a_thread_at_max_blocks_waits_for_a_hole_being_made_ready(void)
{
    if ((size_t)sysconf(_SC_PAGESIZE) > 16 * KiB)
        return; /* no hole fits in a 64 KiB slab */
    for (int at = 0; at < 4; at++) {
        bool after_pop = at >= 2;
        int mode = at % 2 == 0 ? WAIT : LAND;
        struct lfp_config cfg = { .block_size = 48, .flags = LFP_GROWABLE,
                                  .capacity = SLAB_BLOCKS, .max_blocks = SLAB_BLOCKS,
                                  .slab_size = 64 * KiB,
                                  .init = after_pop ? NULL : hold_in_callback };
        void **b;
        lfp_pool *pool = pool_with_in_use(&cfg, SLAB_BLOCKS, SLAB_BLOCKS + 2, &b);
        size_t repeats;
        void **sorted = sorted_blocks(b, SLAB_BLOCKS, &repeats);
        REQUIRE(repeats == 0);
        CHECK_EQ(lfp_free_bulk(pool, sorted + 1, SLAB_BLOCKS - 1), LFP_OK);
        b[0] = sorted[0];
        free(sorted);
        CHECK(lfp_pool_trim(pool) > 0);
        struct lfp_stats s = stats_of(pool);
        CHECK(s.blocks_carved < s.blocks_total);
        size_t n = 1 + alloc_all(pool, b + 1, s.blocks_carved - 1);
        CHECK_EQ(n, s.blocks_carved);
        CHECK_EQ(stats_of(pool).blocks_carved, n); /* the hole is still there */
        void *pa = NULL;
        if (after_pop)
            atomic_store(&lfp_test_hole_hook, hold_here);
        void *pb = alloc_while_held(pool, SLAB_BLOCKS, alloc_one, mode, &pa);
        atomic_store(&lfp_test_hole_hook, NULL);
        CHECK_EQ(stats_of(pool).blocks_total, SLAB_BLOCKS);
        both_got_one(pool, b, n, pa, pb);
    }
}

/* The pool of two_slabs_first_free(extra) (the first slab's blocks free,
 * the second's in use), trimmed by a thread held in fini, or, with
 * at_trim_hook, where the trim holds the depot; blocks_total is held_total
 * there. A second thread's alloc must return meanwhile (BEFORE), with a
 * block of a new slab, and the trim must release the first. */
static void grow_while_a_trim_is_held(struct lfp_config extra, bool at_trim_hook,
                                      size_t held_total)
{
    enum { PER = TWO_SLABS_PER, MAX = 2 * PER };
    const size_t slab = 64 * KiB;
    void *b[MAX + 1];
    lfp_pool *pool = two_slabs_first_free(extra, b);
    if (pool == NULL)
        return;
    void *released = NULL;
    if (at_trim_hook)
        atomic_store(&lfp_test_trim_hook, hold_here);
    b[MAX] = alloc_while_held(pool, held_total, trim_one, BEFORE, &released);
    atomic_store(&lfp_test_trim_hook, NULL);
    CHECK_EQ((size_t)(uintptr_t)released, slab);
    CHECK(b[MAX] != NULL);
    for (size_t i = 0; i < MAX && b[MAX] != NULL; i++)
        CHECK(b[i] == NULL || slab_of(b[i], slab) != slab_of(b[MAX], slab));
    CHECK_EQ(stats_of(pool).blocks_total, MAX);
    for (size_t i = 0; i <= MAX; i++)
        if (b[i] != NULL)
            CHECK_EQ(lfp_free(pool, b[i]), LFP_OK);
    verify_and_destroy(pool, 0);
}

/* A trim lands (kept blocks back, released slabs out of the total) before
 * it runs the destructors over the released slabs: a thread at max_blocks
 * grows the pool while fini is still held, instead of waiting for it. */
static void test_a_thread_at_max_blocks_does_not_wait_for_a_trims_destructors(void)
{
    grow_while_a_trim_is_held(
        (struct lfp_config){ .max_blocks = 2 * TWO_SLABS_PER, .fini = hold_in_callback },
        false, TWO_SLABS_PER);
}

/* Without a cache, a thread that finds the depot empty while other
 * threads' blocks are on their way to it waits for them rather than grow
 * (test_depot), but not for a trim, whose walk over every free block may
 * take milliseconds: below max_blocks it grows, as a cached pool does. The
 * trim is held once it holds the depot. */
static void test_a_pool_without_a_cache_grows_during_a_trim_rather_than_wait(void)
{
    grow_while_a_trim_is_held((struct lfp_config){ 0 }, true, 2 * TWO_SLABS_PER);
}

/* Below its bound, a pool without a cache waits only for a stack being
 * moved, not for another thread's growth: that growth's init may wait for
 * something the allocating thread holds (a lock of the program's), and the
 * two would wait for each other. Here the other growth is held in its first
 * constructor call; the second thread must return meanwhile, with a block
 * of a slab of its own. */
static void test_a_pool_without_a_cache_does_not_wait_below_its_bound_for_a_growth(void)
{
    enum { PER = 16 };
    struct lfp_config cfg = { .block_size = 4 * KiB - LFP_LINK_BYTES,
                              .flags = LFP_GROWABLE | LFP_NO_CACHE, .capacity = PER,
                              .slab_size = 64 * KiB, .init = hold_in_callback };
    lfp_pool *pool;
    CREATE_OR_RETURN(&cfg, &pool);
    void *b[PER + 2];
    CHECK_EQ(alloc_all(pool, b, PER), PER);
    CHECK_EQ(stats_of(pool).blocks_total, PER);
    b[PER] = alloc_while_held(pool, 2 * PER, alloc_one, BEFORE, &b[PER + 1]);
    CHECK(b[PER] != NULL);
    CHECK(b[PER + 1] != NULL);
    CHECK_EQ(stats_of(pool).blocks_total, 3 * PER);
    for (size_t i = 0; i < PER + 2; i++)
        if (b[i] != NULL)
            CHECK_EQ(lfp_free(pool, b[i]), LFP_OK);
    verify_and_destroy(pool, 0);
}

/* A pool without a cache decides to grow only once it found no block and
 * none on its way; another thread may then grow first, into the last room
 * below max_blocks. Its slab's blocks are on their way when the first
 * thread's growth fails: that thread must wait for them, not fail with
 * ENOBUFS. Here the second growth runs inside the first thread's carve
 * hook, held in its first constructor call. */
static lfp_pool *racing_pool;
static pthread_t racing_growth;
static _Atomic int race_calls = -1; /* take_calls once the growth is held */

static void grow_the_last_slab_first(void)
{
    atomic_store(&lfp_test_carve_hook, NULL);
    racing_growth = hold_start(racing_pool, 2 * 16, alloc_one); /* MAX */
    atomic_store(&race_calls, atomic_load(&take_calls));
}

static void test_a_thread_whose_growth_finds_the_bound_waits_for_the_racing_slab(void)
{
    enum { PER = 16, MAX = 2 * PER };
    const size_t slab = 64 * KiB;
    struct lfp_config cfg = { .block_size = 4 * KiB - LFP_LINK_BYTES,
                              .flags = LFP_GROWABLE | LFP_NO_CACHE, .capacity = PER,
                              .max_blocks = MAX, .slab_size = slab, .init = hold_in_callback };
    lfp_pool *pool;
    CREATE_OR_RETURN(&cfg, &pool);
    void *b[MAX + 1];
    CHECK_EQ(alloc_all(pool, b, PER), PER);
    CHECK_EQ(stats_of(pool).blocks_total, PER);
    racing_pool = pool;
    atomic_store(&take_mode, WAIT);
    atomic_store(&take_calls, 0);
    atomic_store(&second_done, 0);
    atomic_store(&lfp_test_take_hook, take_hook);
    atomic_store(&lfp_test_carve_hook, grow_the_last_slab_first);
    atomic_store(&race_calls, -1);
    pthread_t w;
    REQUIRE(pthread_create(&w, NULL, second_main, pool) == 0);
    /* Once the racing growth is held, W waits (looks twice) for its
     * blocks, or returns at once. */
    while (!atomic_load(&second_done) &&
           (atomic_load(&race_calls) < 0 || atomic_load(&take_calls) < atomic_load(&race_calls) + 2))
        sched_yield();
    REQUIRE(atomic_load(&race_calls) >= 0); /* the race ran */
    b[PER] = hold_end(racing_growth);
    void *got = NULL;
    REQUIRE(pthread_join(w, &got) == 0);
    atomic_store(&lfp_test_take_hook, NULL);
    atomic_store(&lfp_test_carve_hook, NULL);
    CHECK(b[PER] != NULL);
    CHECK(got != NULL); /* ENOBUFS without the look after the failed growth */
    CHECK_EQ(stats_of(pool).blocks_total, MAX);
    b[PER + 1] = got;
    for (size_t i = 0; i < PER + 2; i++)
        if (b[i] != NULL)
            CHECK_EQ(lfp_free(pool, b[i]), LFP_OK);
    verify_and_destroy(pool, 0);
}

/* The same for a fixed pool carved out but for a run held in its first
 * constructor call (here rather than in test_magazine, for the hooks). */
static void test_a_thread_at_a_fixed_pools_bound_waits_for_a_run_being_made_ready(void)
{
    enum { CAP = 256, HELD = CAP - CAP / 4 }; /* runs of CAP / 4 */
    struct lfp_config cfg = { .block_size = 64, .capacity = CAP, .init = hold_in_callback };
    for (int mode = WAIT; mode <= LAND; mode++) {
        void **b;
        lfp_pool *pool = pool_with_in_use(&cfg, HELD, HELD + 2, &b);
        CHECK_EQ(stats_of(pool).blocks_carved, HELD);
        void *pa = NULL;
        void *pb = alloc_while_held(pool, CAP, alloc_one, mode, &pa);
        CHECK_EQ(stats_of(pool).blocks_carved, CAP);
        both_got_one(pool, b, HELD, pa, pb);
    }
}

/* A process forked while one of its threads is making a slab ready: in the
 * child, which has only the forking thread, nothing is on its way to the
 * depot any more, so at the bound lfp_alloc fails at once with ENOBUFS
 * rather than wait for ever. */
static void test_a_child_forked_during_growth_does_not_wait_for_it(void)
{
#ifdef CHECK_TSAN
    printf("  skipped under TSan: it does not support fork() in a threaded program\n");
#else
    void **b;
    lfp_pool *pool = pool_with_first_slab_in_use(hold_in_callback, &b);
    pthread_t a = hold_start(pool, 2 * SLAB_BLOCKS, alloc_one);
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        alarm(20);
        errno = 0;
        void *p = lfp_alloc(pool);
        _exit(p == NULL && errno == ENOBUFS ? 0 : 1);
    }
    check_child(pid);
    b[SLAB_BLOCKS] = hold_end(a);
    CHECK(b[SLAB_BLOCKS] != NULL);
    free_check_destroy(pool, b, SLAB_BLOCKS + 1);
#endif
}

/* fork() called by a constructor, in the middle of a growth: the child goes
 * on with that growth, which is its own, and later, at the bound, gets
 * ENOBUFS rather than wait for ever on a count gone wrong. */
static _Atomic int fork_armed;
static pid_t fork_child = -1; /* 0 in the child */

static void fork_in_init(void *block, void *arg)
{
    (void)block;
    (void)arg;
    if (atomic_exchange(&fork_armed, 0)) {
        fflush(NULL);
        fork_child = fork();
        REQUIRE(fork_child >= 0);
    }
}

static void test_a_child_forked_by_a_constructor_finishes_that_growth(void)
{
#ifdef CHECK_TSAN
    printf("  skipped under TSan: it does not support fork() in a threaded program\n");
#else
    void **b;
    lfp_pool *pool = pool_with_first_slab_in_use(fork_in_init, &b);
    atomic_store(&fork_armed, 1);
    b[SLAB_BLOCKS] = lfp_alloc(pool); /* forks in the new slab's first init */
    if (fork_child == 0) {
        alarm(20);
        size_t got = SLAB_BLOCKS + (b[SLAB_BLOCKS] != NULL);
        got += alloc_all(pool, b + got, 2 * SLAB_BLOCKS - got);
        errno = 0;
        bool ok = got == 2 * SLAB_BLOCKS && lfp_alloc(pool) == NULL && errno == ENOBUFS;
        _exit(ok ? 0 : 1);
    }
    check_child(fork_child);
    CHECK(b[SLAB_BLOCKS] != NULL);
    free_check_destroy(pool, b, SLAB_BLOCKS + 1);
#endif
}

/* A process forked while one of its threads is trimming a pool: the child
 * can trim the pool itself. */
static void test_a_child_forked_during_a_trim_can_trim(void)
{
#ifdef CHECK_TSAN
    printf("  skipped under TSan: it does not support fork() in a threaded program\n");
#else
    /* Two 16-block slabs, all in use; the first slab's blocks are freed,
     * and a trim that will release it is held in the parent. */
    enum { PER = TWO_SLABS_PER, MAX = 2 * PER };
    const size_t slab = 64 * KiB;
    void *b[MAX];
    lfp_pool *pool = two_slabs_first_free((struct lfp_config){ 0 }, b);
    if (pool == NULL)
        return;
    atomic_store(&lfp_test_trim_hook, hold_here);
    pthread_t a = hold_start(pool, MAX, trim_one);
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        alarm(20);
        /* The second slab's blocks freed, the child's trim releases it. */
        bool ok = true;
        for (size_t i = 0; i < MAX; i++)
            ok = ok && (b[i] == NULL || lfp_free(pool, b[i]) == LFP_OK);
        _exit(ok && lfp_pool_trim(pool) == slab ? 0 : 1);
    }
    check_child(pid);
    CHECK_EQ((size_t)(uintptr_t)hold_end(a), slab);
    atomic_store(&lfp_test_trim_hook, NULL);
    for (size_t i = 0; i < MAX; i++)
        if (b[i] != NULL)
            CHECK_EQ(lfp_free(pool, b[i]), LFP_OK);
    CHECK_EQ(stats_of(pool).blocks_total, PER);
    verify_and_destroy(pool, 0);
#endif
}

static void test_a_thread_at_max_blocks_waits_for_a_trim_to_hand_blocks_back(void)
{
    /* Two 16-block slabs, the bound; no cache, so frees go straight to the
     * depot. All of one slab and half of the other are freed: the trim,
     * held once it holds the whole depot, then releases the first and puts
     * the free half of the second back. */
    enum { PER = 16, MAX = 2 * PER };
    const size_t slab = 64 * KiB;
    struct lfp_config cfg = { .block_size = 4 * KiB, .flags = LFP_GROWABLE | LFP_NO_CACHE,
                              .capacity = MAX, .max_blocks = MAX, .slab_size = slab };
    for (int mode = WAIT; mode <= LAND; mode++) {
        lfp_pool *pool;
        CREATE_OR_RETURN(&cfg, &pool);
        void *b[MAX];
        CHECK_EQ(alloc_all(pool, b, MAX), MAX);
        errno = 0;
        CHECK(lfp_alloc(pool) == NULL);
        CHECK_EQ(errno, ENOBUFS);
        uintptr_t kept = slab_of(b[0], slab);
        size_t freed_kept = 0;
        for (size_t i = 0; i < MAX; i++) {
            bool in_kept = slab_of(b[i], slab) == kept;
            if (in_kept && freed_kept == PER / 2)
                continue;
            freed_kept += in_kept;
            CHECK_EQ(lfp_free(pool, b[i]), LFP_OK);
            b[i] = NULL;
        }
        CHECK_EQ(stats_of(pool).blocks_in_use, PER / 2);

        atomic_store(&lfp_test_trim_hook, hold_here);
        void *released = NULL;
        void *got = alloc_while_held(pool, MAX, trim_one, mode, &released);
        atomic_store(&lfp_test_trim_hook, NULL);
        /* The free slab, and the pages of the free half of the other
         * (a hole, which the waiting thread may take its block from). */
        CHECK((size_t)(uintptr_t)released >= slab);
        CHECK(got != NULL); /* ENOBUFS here without the wait, as above */
        /* A kept block; but in WAIT the second thread may look at the depot
         * just before the kept blocks are back and find room to grow just
         * after the released slab left the total: a new slab's block. */
        size_t total = stats_of(pool).blocks_total;
        CHECK(total == PER || (mode == WAIT && total == MAX));
        if (got != NULL) {
            CHECK(slab_of(got, slab) == kept || total == MAX);
            CHECK_EQ(lfp_free(pool, got), LFP_OK);
        }
        for (size_t i = 0; i < MAX; i++)
            if (b[i] != NULL)
                CHECK_EQ(lfp_free(pool, b[i]), LFP_OK);
        verify_and_destroy(pool, 0);
    }
}

/* A cached pool and a thread that has no slot in it (its magazines could
 * not be made): that thread takes a whole batch from the depot, keeps one
 * block and puts the rest back. A thread that finds the depot empty
 * meanwhile, with the pool carved out, must wait for them. */
static void *alloc_one_without_slot(void *pool)
{
    /* The thread's first request for memory, which binding its slot makes
     * (the magazine is larger than any an earlier thread had), is refused. */
    atomic_store(&lfp_test_fail_at, 1);
    void *p = lfp_alloc(pool);
    CHECK_EQ(atomic_load(&lfp_test_fail_at), 0);
    return p;
}

static void test_a_thread_at_a_fixed_pools_bound_waits_for_a_split_batch(void)
{
    /* A magazine of 600 blocks, above the library's largest default (512),
     * so that no recycled thread cache has a buffer big enough; the
     * capacity keeps it from being scaled down. */
    enum { MAG = 600, CAP = 16 * MAG, FREED = 8 };
    struct lfp_config cfg = { .block_size = 64, .capacity = CAP, .cache_size = MAG };
    for (int mode = WAIT; mode <= LAND; mode++) {
        void **b;
        lfp_pool *pool = pool_with_in_use(&cfg, CAP, CAP + 2, &b);
        /* One batch of FREED blocks in the depot, nothing anywhere else. */
        for (size_t i = 0; i < FREED; i++)
            CHECK_EQ(lfp_free(pool, b[CAP - 1 - i]), LFP_OK);
        lfp_thread_flush();
        struct lfp_stats st = stats_of(pool);
        CHECK_EQ(st.blocks_in_use, CAP - FREED);
        CHECK_EQ(st.blocks_cached, 0);
        CHECK_EQ(st.blocks_carved, CAP);
        CHECK_EQ(st.cache_size, MAG);

        atomic_store(&lfp_test_split_hook, hold_here);
        watchdog_arm("a thread without a slot taking a block from a batch", 60);
        void *pa = NULL;
        void *pb = alloc_while_held(pool, CAP, alloc_one_without_slot, mode, &pa);
        watchdog_disarm();
        atomic_store(&lfp_test_split_hook, NULL);
        /* pb NULL (ENOBUFS) when the split is not counted in flight (WAIT),
         * or not looked at again once it landed (LAND). */
        both_got_one(pool, b, CAP - FREED, pa, pb);
    }
}

/* The automatic trim waits while the thread that would run it has blocks
 * in flight: a growth that pushes its new slab past the trim threshold
 * does not trim (its waiters would wait for the destructors); the next
 * push does. Here another thread frees the first slab while the second is
 * being made (from its first constructor call), so that the growth's push
 * is the one that crosses the threshold. */
static _Atomic int defer_armed, defer_growing, defer_fini_calls, defer_fini_in_growth;
static lfp_pool *defer_pool;
static void **defer_blocks;
static size_t defer_count;

static void *defer_free_first(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < defer_count; i++)
        CHECK_EQ(lfp_free(defer_pool, defer_blocks[i]), LFP_OK);
    return NULL;
}

static void defer_init(void *block, void *arg)
{
    (void)block;
    (void)arg;
    if (atomic_exchange(&defer_armed, 0)) {
        atomic_store(&defer_growing, 1);
        pthread_t t;
        REQUIRE(pthread_create(&t, NULL, defer_free_first, NULL) == 0);
        REQUIRE(pthread_join(t, NULL) == 0);
    }
}

static void defer_fini(void *block, void *arg)
{
    (void)block;
    (void)arg;
    atomic_fetch_add(&defer_fini_calls, 1);
    if (atomic_load(&defer_growing))
        atomic_fetch_add(&defer_fini_in_growth, 1);
}

static void test_no_automatic_trim_runs_inside_a_growth(void)
{
    struct lfp_config cfg = { .block_size = 64, .flags = LFP_GROWABLE | LFP_NO_CACHE,
                              .capacity = 1, .slab_size = 64 * KiB,
                              .init = defer_init, .fini = defer_fini };
    /* A slab's blocks and stride, from a pool of one slab. */
    lfp_pool *pool;
    CREATE_OR_RETURN(&cfg, &pool);
    struct lfp_stats st = stats_of(pool);
    const size_t per = st.blocks_total;
    CHECK_EQ(lfp_pool_destroy(pool), 0);
    /* The line: half a slab of free blocks above the depot's count once the
     * first slab is made. The first slab's blocks coming back stay below it
     * (per < 1.5 per); with the second slab's they cross it. */
    cfg.capacity = per;
    cfg.trim_threshold = per / 2 * st.stride;
    CREATE_OR_RETURN(&cfg, &pool);
    CHECK_EQ(stats_of(pool).blocks_total, per);
    void **b = malloc(per * sizeof(void *));
    REQUIRE(b != NULL);
    CHECK_EQ(alloc_all(pool, b, per), per);
    defer_pool = pool;
    defer_blocks = b;
    defer_count = per;
    atomic_store(&defer_fini_calls, 0);
    atomic_store(&defer_fini_in_growth, 0);
    atomic_store(&defer_armed, 1);
    void *p = lfp_alloc(pool); /* grows */
    atomic_store(&defer_growing, 0);
    CHECK(p != NULL);
    CHECK_EQ(atomic_load(&defer_armed), 0);
    /* Without the deferral, the first slab's destructors ran here. */
    CHECK_EQ(atomic_load(&defer_fini_in_growth), 0);
    CHECK_EQ(atomic_load(&defer_fini_calls), 0);
    CHECK_EQ(stats_of(pool).blocks_total, 2 * per);
    /* The next push trims. */
    CHECK_EQ(lfp_free(pool, p), LFP_OK);
    size_t left = stats_of(pool).blocks_total;
    CHECK(left < 2 * per);
    CHECK_EQ((size_t)atomic_load(&defer_fini_calls), 2 * per - left);
    CHECK_EQ(atomic_load(&defer_fini_in_growth), 0);
    verify_and_destroy(pool, 0);
    free(b);
}

/* Two threads without a slot at a cached pool's bound, the depot empty and
 * nothing on its way: each must get ENOBUFS, not wait for the other (a
 * thread that found nothing to take holds no blocks, so it must not count
 * as in flight while it looks at what is). The hook holds the first in
 * its look until the second is there too. */
static _Atomic int meet_arrivals;
static __thread int meet_done;

static void meet_hook(void)
{
    if (meet_done)
        return;
    meet_done = 1;
    atomic_fetch_add(&meet_arrivals, 1);
    for (int i = 0; i < 5000 && atomic_load(&meet_arrivals) < 2; i++)
        sleep_ms(1);
}

static void *alloc_without_slot_main(void *pool)
{
    void *p = alloc_one_without_slot(pool);
    return p == NULL && errno == ENOBUFS ? (void *)1 : p;
}

static void test_threads_without_a_slot_at_the_bound_do_not_wait_for_each_other(void)
{
    /* A magazine size no earlier test used, so that binding a slot makes a
     * request (refused below) even in a recycled thread cache. */
    enum { MAG = 700, CAP = 16 * MAG };
    struct lfp_config cfg = { .block_size = 64, .capacity = CAP, .cache_size = MAG };
    void **b;
    lfp_pool *pool = pool_with_in_use(&cfg, CAP, CAP, &b);
    CHECK_EQ(stats_of(pool).blocks_cached, 0);
    atomic_store(&meet_arrivals, 0);
    atomic_store(&lfp_test_take_hook, meet_hook);
    watchdog_arm("two threads without a slot at a cached pool's bound", 60);
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        /* One at a time through the refused request (alloc_one_without_slot
         * checks it was used); the first then waits in the hook. */
        REQUIRE(pthread_create(&t[i], NULL, alloc_without_slot_main, pool) == 0);
        while (atomic_load(&meet_arrivals) == i)
            sched_yield();
    }
    for (int i = 0; i < 2; i++) {
        void *r = NULL;
        REQUIRE(pthread_join(t[i], &r) == 0);
        CHECK(r == (void *)1); /* NULL with ENOBUFS */
    }
    watchdog_disarm();
    atomic_store(&lfp_test_take_hook, NULL);
    CHECK_EQ(atomic_load(&meet_arrivals), 2);
    free_check_destroy(pool, b, CAP);
}

/* Blocks in each slab of a pool made from cfg (growable, capacity 0), from
 * a pool made to find out. */
static size_t blocks_per_slab(const struct lfp_config *cfg)
{
    lfp_pool *pool = create_pool(cfg);
    void *first = lfp_alloc(pool);
    REQUIRE(first != NULL);
    size_t per = stats_of(pool).blocks_total;
    CHECK_EQ(lfp_free(pool, first), LFP_OK);
    CHECK_EQ(lfp_pool_destroy(pool), 0);
    return per;
}

/* A destructor may flush the calling thread's caches (lfp_thread_flush):
 * here it runs in the automatic trim a magazine's spill sets off, and the
 * spill must have settled the thread's slot before its push, or the flush
 * pushes the same rounds a second time (lfp_pool_verify: LFP_EDOUBLE, and
 * blocks handed out twice). */
static _Atomic int flush_armed;

static void flush_in_fini(void *block, void *arg)
{
    (void)block;
    (void)arg;
    if (atomic_exchange(&flush_armed, 0))
        lfp_thread_flush();
}

static void test_a_destructor_may_flush_the_threads_caches_during_a_spill(void)
{
    enum { MAG = 4 };
    struct lfp_config cfg = { .block_size = 4 * KiB, .flags = LFP_GROWABLE,
                              .slab_size = 64 * KiB, .cache_size = MAG, .fini = flush_in_fini };
    size_t per = blocks_per_slab(&cfg);
    lfp_pool *pool;
    /* The first slab whole in the depot stays below the line; the second
     * slab's second spill crosses it. */
    cfg.trim_threshold = (per + MAG / 2) * 4 * KiB;
    CREATE_OR_RETURN(&cfg, &pool);
    size_t n = 2 * per;
    void **b = calloc(n, sizeof *b);
    REQUIRE(b != NULL);
    CHECK_EQ(alloc_all(pool, b, n), n);
    free_all(pool, b, per); /* the first slab: handed out first */
    lfp_thread_flush();
    CHECK_EQ(stats_of(pool).blocks_total, n);
    atomic_store(&flush_armed, 1);
    free_all(pool, b + per, per);
    CHECK_EQ(atomic_load(&flush_armed), 0); /* the trim ran, and its fini */
    lfp_thread_flush();
    CHECK_EQ(stats_of(pool).blocks_total, per);
    CHECK_EQ(lfp_pool_verify(pool), LFP_OK);
    /* Every block once: the pool's whole slab, no block twice. */
    CHECK_EQ(alloc_all(pool, b, per), per);
    qsort(b, per, sizeof *b, cmp_addr);
    size_t twice = 0;
    for (size_t i = 1; i < per; i++)
        twice += b[i] == b[i - 1];
    CHECK_EQ(twice, 0);
    CHECK_EQ(stats_of(pool).blocks_total, per);
    free_all(pool, b, per);
    free(b);
    verify_and_destroy(pool, 0);
}

/* A thread's exit hands its cached blocks back; a destructor run by the
 * trim one of those hand-backs sets off may free into another pool (only
 * the same pool is off limits), and that block must reach the other pool's
 * depot, not a cache of the exiting thread's that no thread owns. */
static lfp_pool *other_pool;
static void *other_block;
static _Atomic int exit_armed;

static void free_other_in_fini(void *block, void *arg)
{
    (void)block;
    (void)arg;
    if (atomic_exchange(&exit_armed, 0))
        CHECK_EQ(lfp_free(other_pool, other_block), LFP_OK);
}

static void *fill_and_free_one_slab(void *pool)
{
    size_t per = (size_t)(uintptr_t)held_ret;
    void **b = calloc(per, sizeof *b);
    REQUIRE(b != NULL);
    CHECK_EQ(alloc_all(pool, b, per), per);
    free_all(pool, b, per);
    free(b);
    atomic_store(&exit_armed, 1); /* the exit's hand-back crosses the line */
    return NULL;
}

static void test_a_destructor_run_by_a_threads_exit_may_free_into_another_pool(void)
{
    enum { OTHER = 256 };
    /* Made first: the lower id, whose slot the exit flushes first. */
    struct lfp_config ocfg = { .block_size = 64, .capacity = OTHER, .cache_size = 16 };
    CREATE_OR_RETURN(&ocfg, &other_pool);
    struct lfp_config cfg = { .block_size = 4 * KiB, .flags = LFP_GROWABLE,
                              .slab_size = 64 * KiB, .cache_size = 16,
                              .fini = free_other_in_fini };
    size_t per = blocks_per_slab(&cfg);
    lfp_pool *pool;
    cfg.trim_threshold = (per - 1) * 4 * KiB;
    CREATE_OR_RETURN(&cfg, &pool);

    void **o = calloc(OTHER, sizeof *o);
    REQUIRE(o != NULL);
    CHECK_EQ(alloc_all(other_pool, o, OTHER), OTHER);
    other_block = o[0];
    held_ret = (void *)(uintptr_t)per;
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, fill_and_free_one_slab, pool) == 0);
    REQUIRE(pthread_join(t, NULL) == 0);
    CHECK_EQ(atomic_load(&exit_armed), 0);
    CHECK_EQ(stats_of(pool).blocks_total, 0); /* the trim released the slab */
    struct lfp_stats st = stats_of(other_pool);
    CHECK_EQ(st.blocks_cached, 0);
    CHECK_EQ(st.blocks_in_use, OTHER - 1);
    o[0] = lfp_alloc(other_pool); /* ENOBUFS when the block was stranded */
    CHECK(o[0] == other_block);
    if (o[0] == NULL)
        o[0] = o[1], o[1] = NULL;
    for (size_t i = 0; i < OTHER; i++)
        if (o[i] != NULL)
            CHECK_EQ(lfp_free(other_pool, o[i]), LFP_OK);
    free(o);
    verify_and_destroy(other_pool, 0);
    verify_and_destroy(pool, 0);
}

/* A process forked while another thread hands its cached blocks back
 * (here held in a destructor of the trim that hand-back set off, its slot
 * claimed): in the child, where that thread is gone, lfp_pool_destroy must
 * not wait for it. */
static void **flushed_blocks;
static size_t flushed_n;
static lfp_pool *held_pool;

static void *free_then_flush(void *pool)
{
    free_all(pool, flushed_blocks, flushed_n);
    lfp_thread_flush();
    return NULL;
}

static void test_a_child_forked_while_a_thread_flushes_can_destroy_the_pool(void)
{
#ifdef CHECK_TSAN
    printf("  skipped under TSan: it does not support fork() in a threaded program\n");
#else
    enum { MAG = 16 };
    struct lfp_config cfg = { .block_size = 4 * KiB, .flags = LFP_GROWABLE,
                              .slab_size = 64 * KiB, .cache_size = MAG,
                              .fini = hold_in_callback, .trim_threshold = MAG * 4 * KiB };
    lfp_pool *pool;
    CREATE_OR_RETURN(&cfg, &pool);
    /* Two magazines' worth in use, freed by the thread into its magazines,
     * all handed back by its flush at once: the trim that follows releases
     * every slab, and its first destructor call holds the thread. */
    flushed_n = 2 * MAG;
    flushed_blocks = calloc(flushed_n, sizeof *flushed_blocks);
    REQUIRE(flushed_blocks != NULL);
    CHECK_EQ(alloc_all(pool, flushed_blocks, flushed_n), flushed_n);
    pthread_t a = hold_start(pool, 0, free_then_flush);
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        alarm(20); /* lfp_pool_destroy waited for the flush for ever */
        _exit(lfp_pool_destroy(pool) == 0 ? 0 : 1);
    }
    check_child(pid);
    hold_end(a);
    free(flushed_blocks);
    verify_and_destroy(pool, 0);
#endif
}

/* Wait for a child that may hang with every signal blocked (inside a grace
 * period, as liburcu waits): SIGKILL after 20 s, and the test fails. */
static void check_child_or_kill(pid_t pid)
{
    int status = 0;
    for (int i = 0; i < 2000; i++) {
        pid_t got = waitpid(pid, &status, WNOHANG);
        REQUIRE(got >= 0);
        if (got == pid) {
            CHECK(WIFEXITED(status));
            CHECK_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0);
            return;
        }
        sleep_ms(10);
    }
    printf("  the child did not finish in 20 s: killed\n");
    kill(pid, SIGKILL);
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(0);
}

/* 4 KiB blocks in 64 KiB slabs, no cache: each free reaches the depot. */
static struct lfp_config small_slabs_without_cache(void)
{
    return (struct lfp_config){ .block_size = 4 * KiB, .slab_size = 64 * KiB,
                                .flags = LFP_GROWABLE | LFP_NO_CACHE };
}

/* Such a pool that trims itself once a whole slab is free in its depot,
 * with its one slab's blocks all in use: in *blocks (malloc'd), *n of them. */
static lfp_pool *pool_trimming_at_one_slab(void ***blocks, size_t *n)
{
    struct lfp_config cfg = small_slabs_without_cache();
    size_t per = blocks_per_slab(&cfg);
    cfg.trim_threshold = (per - 1) * 4 * KiB;
    lfp_pool *pool = create_pool(&cfg);
    *blocks = calloc(per, sizeof **blocks);
    REQUIRE(*blocks != NULL);
    CHECK_EQ(alloc_all(pool, *blocks, per), per);
    *n = per;
    return pool;
}

/* A process forked while another thread is inside an RCU read-side section
 * (held in a depot pop, or in the take of another CPU's stack that the pop
 * makes when that thread runs on another CPU than the frees did): the
 * child's grace periods must not wait for that thread, which is gone there
 * (liburcu-bp's own fork handlers forget it): the child's trim, which waits
 * for one, must return. */
static __thread bool hold_my_pop;

static void hold_a_pop(void)
{
    if (hold_my_pop)
        hold_here();
}

static void *alloc_one_held_in_pop(void *pool)
{
    hold_my_pop = true;
    void *p = lfp_alloc(pool);
    hold_my_pop = false;
    return p;
}

static void test_a_child_forked_while_a_thread_reads_under_rcu_can_trim(void)
{
#ifdef CHECK_TSAN
    printf("  skipped under TSan: it does not support fork() in a threaded program\n");
#else
    struct lfp_config cfg = small_slabs_without_cache();
    size_t per = blocks_per_slab(&cfg);
    lfp_pool *pool;
    CREATE_OR_RETURN(&cfg, &pool);
    size_t n = 2 * per;
    void **b = calloc(n + 1, sizeof *b);
    REQUIRE(b != NULL);
    CHECK_EQ(alloc_all(pool, b, n), n);
    free_all(pool, b, per + 1); /* the first slab, and a block of the second */
    lfp_test_pop_hook = hold_a_pop;
    atomic_store(&lfp_test_steal_hook, hold_a_pop);
    pthread_t a = hold_start(pool, n, alloc_one_held_in_pop);
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        lfp_test_pop_hook = NULL;
        atomic_store(&lfp_test_steal_hook, NULL);
        (void)lfp_pool_trim(pool); /* waits for a grace period */
        _exit(lfp_pool_destroy(pool) == per - 1 ? 0 : 1);
    }
    check_child_or_kill(pid);
    b[n] = hold_end(a);
    lfp_test_pop_hook = NULL;
    atomic_store(&lfp_test_steal_hook, NULL);
    CHECK(b[n] != NULL);
    for (size_t i = per + 1; i <= n; i++)
        CHECK_EQ(lfp_free(pool, b[i]), LFP_OK);
    free(b);
    verify_and_destroy(pool, 0);
#endif
}

/* A process forked while another thread's automatic trim counts a slab's
 * release and queues it: the fork waits until it is queued, so that the
 * child never waits in lfp_pool_destroy for a release nobody queued. */
static _Atomic int forked_yet;

static void *fork_and_check_child(void *arg)
{
    (void)arg;
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        alarm(20);
        _exit(lfp_pool_destroy(held_pool) == 0 ? 0 : 1);
    }
    atomic_store(&forked_yet, 1);
    check_child_or_kill(pid);
    return NULL;
}

static void test_a_fork_waits_for_a_release_being_queued(void)
{
#ifdef CHECK_TSAN
    printf("  skipped under TSan: it does not support fork() in a threaded program\n");
#else
    held_pool = pool_trimming_at_one_slab(&flushed_blocks, &flushed_n);
    /* The last free trims the slab away, and the trim is held just before
     * it queues the release. */
    atomic_store(&lfp_test_queue_hook, hold_here);
    pthread_t a = hold_start(held_pool, 0, free_then_flush);
    atomic_store(&forked_yet, 0);
    pthread_t f;
    REQUIRE(pthread_create(&f, NULL, fork_and_check_child, NULL) == 0);
    sleep_ms(200);
    CHECK_EQ(atomic_load(&forked_yet), 0); /* the fork waits for the queuing */
    hold_end(a);
    REQUIRE(pthread_join(f, NULL) == 0);
    atomic_store(&lfp_test_queue_hook, NULL);
    free(flushed_blocks);
    verify_and_destroy(held_pool, 0);
#endif
}

/* A signal handler that frees into a growable pool whose automatic trim
 * queues a release, run while its own thread was queuing one: it must not
 * wait for the queue lock that thread holds (signals stay blocked while it
 * is held, so the handler runs once it is dropped). */
static lfp_pool *handler_pool;
static void **handler_blocks;
static size_t handler_n;
static _Atomic int handler_ran;

static void free_in_handler(int sig)
{
    (void)sig;
    free_all(handler_pool, handler_blocks, handler_n);
    atomic_store(&handler_ran, 1);
}

static void raise_once(void)
{
    atomic_store(&lfp_test_queue_hook, NULL);
    raise(SIGUSR1);
}

static void test_a_signal_handler_may_free_into_a_pool_while_a_release_is_queued(void)
{
    void **b;
    size_t per;
    lfp_pool *pool = pool_trimming_at_one_slab(&b, &per);
    handler_pool = pool_trimming_at_one_slab(&handler_blocks, &handler_n);
    atomic_store(&handler_ran, 0);
    signal(SIGUSR1, free_in_handler);
    atomic_store(&lfp_test_queue_hook, raise_once);
    watchdog_arm("a signal handler freeing while its thread queues a release", 30);
    free_all(pool, b, per); /* the last free trims the slab: the hook raises */
    watchdog_disarm();
    signal(SIGUSR1, SIG_DFL);
    CHECK_EQ(atomic_load(&handler_ran), 1);
    CHECK_EQ(stats_of(pool).blocks_total, 0);
    CHECK_EQ(stats_of(handler_pool).blocks_total, 0);
    free(b);
    free(handler_blocks);
    verify_and_destroy(handler_pool, 0);
    verify_and_destroy(pool, 0);
}

/* Growths, a trim and the growths after it call no malloc once the
 * thread has its cache: a signal handler may grow the pool, and malloc is
 * not async-signal-safe (the handler may have interrupted it). Slab
 * descriptors and hole records are mapped a page at a time; here 80
 * growths need more than one page of descriptors (malloc'd one by one,
 * they made 79 requests here). The trim is lfp_pool_trim's, which waits
 * for its own grace period: an automatic one would start call_rcu's
 * worker thread in this first test, after which qemu-user's forked
 * children in later tests abort in qemu itself. */
static void test_growths_and_trims_call_no_malloc(void)
{
    enum { N = 80 };
    struct lfp_config cfg = { .block_size = 64 * KiB, .slab_size = 64 * KiB,
                              .flags = LFP_GROWABLE | LFP_NO_CACHE };
    lfp_pool *pool;
    CREATE_OR_RETURN(&cfg, &pool);
    void *b[N];
    b[0] = lfp_alloc(pool); /* the thread's slot */
    REQUIRE(b[0] != NULL);
    long before = atomic_load(&lfp_test_mallocs);
    CHECK_EQ(alloc_all(pool, b + 1, N - 1), N - 1);
    free_all(pool, b, N / 2);
    CHECK(lfp_pool_trim(pool) > 0);
    CHECK(stats_of(pool).blocks_total < N);
    CHECK_EQ(alloc_all(pool, b, N / 2), N / 2);
    CHECK_EQ(atomic_load(&lfp_test_mallocs), before);
    free_all(pool, b, N);
    verify_and_destroy(pool, 0);
}

/* Two threads each grow a pool P to its bound, and P's constructor, run by
 * each growth, allocates from a pool Q whose constructor allocates from P:
 * each of those calls comes back into P while its thread's growth is in
 * flight, and finds P empty at its bound but for the other thread's
 * growth. Waiting for it, each waited for the other for ever (a review's
 * program, at the bound with the old rule): such a nested call waits for
 * nothing, and gets a block or ENOBUFS. */
static lfp_pool *chain_p, *chain_q;
static _Atomic int chain_in_init;
static _Thread_local bool chain_on, chain_fired;
static _Thread_local void *chain_nested, *chain_q_block;
static _Thread_local int chain_errno;

static void chain_p_init(void *block, void *arg)
{
    (void)block, (void)arg;
    if (!chain_on || chain_fired)
        return;
    chain_fired = true;
    /* Both growths in flight before either comes back into P. */
    atomic_fetch_add(&chain_in_init, 1);
    while (atomic_load(&chain_in_init) < 2)
        sched_yield();
    /* Kept until the end: each thread's Q block is carved, so that Q's
     * constructor runs. */
    chain_q_block = lfp_alloc(chain_q);
}

static void chain_q_init(void *block, void *arg)
{
    (void)block, (void)arg;
    if (!chain_on || chain_nested != NULL || chain_errno != 0)
        return;
    errno = 0;
    chain_nested = lfp_alloc(chain_p);
    chain_errno = chain_nested != NULL ? 0 : errno;
}

struct chain_result { void *outer, *nested, *q; int err; };

static void *chain_worker(void *arg)
{
    struct chain_result *r = arg;
    chain_on = true;
    r->outer = lfp_alloc(chain_p);
    r->nested = chain_nested;
    r->q = chain_q_block;
    r->err = chain_errno;
    return NULL;
}

static void test_two_constructor_chains_back_into_a_pool_do_not_wait_for_each_other(void)
{
    struct lfp_config pc = { .block_size = 4000, .slab_size = 64 * KiB, .max_blocks = 48,
                             .flags = LFP_GROWABLE | LFP_NO_CACHE, .init = chain_p_init };
    struct lfp_config qc = { .block_size = 64, .capacity = 16, .flags = LFP_NO_CACHE,
                             .init = chain_q_init };
    CREATE_OR_RETURN(&pc, &chain_p);
    CREATE_OR_RETURN(&qc, &chain_q);
    /* The first slab (16 blocks) taken whole: the two threads' growths
     * then take the pool to its bound. */
    enum { PER = 16 };
    void *first[PER];
    for (size_t i = 0; i < PER; i++)
        REQUIRE((first[i] = lfp_alloc(chain_p)) != NULL);
    REQUIRE(stats_of(chain_p).blocks_total == PER);
    atomic_store(&chain_in_init, 0);
    watchdog_arm("two threads whose constructors come back into the pool", 60);
    struct chain_result r[2];
    memset(r, 0, sizeof r);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        REQUIRE(pthread_create(&t[i], NULL, chain_worker, &r[i]) == 0);
    for (int i = 0; i < 2; i++)
        REQUIRE(pthread_join(t[i], NULL) == 0);
    watchdog_disarm();
    for (int i = 0; i < 2; i++) {
        CHECK(r[i].outer != NULL && r[i].q != NULL);
        CHECK(r[i].nested != NULL || r[i].err == ENOBUFS);
        CHECK_EQ(lfp_free(chain_p, r[i].outer), LFP_OK);
        CHECK_EQ(lfp_free(chain_p, r[i].nested), LFP_OK);
        CHECK_EQ(lfp_free(chain_q, r[i].q), LFP_OK);
    }
    CHECK_EQ(stats_of(chain_p).blocks_total, 3 * PER);
    for (size_t i = 0; i < PER; i++)
        CHECK_EQ(lfp_free(chain_p, first[i]), LFP_OK);
    verify_and_destroy(chain_q, 0);
    verify_and_destroy(chain_p, 0);
}

/* SIGUSR1 runs handler, which interrupted calls resume after. */
static void on_sigusr1(void (*handler)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    REQUIRE(sigaction(SIGUSR1, &sa, NULL) == 0);
}

/* Set once no more signals come: a thread that a handler's calls may
 * interrupt waits for it before it exits, for a handler's call on the pool
 * may not interrupt the exit, which hands back the thread's balance
 * (include/lfpool.h, "Signal handlers"). */
static _Atomic bool signals_quiet;

static void *wait_for_quiet(void)
{
    while (!atomic_load(&signals_quiet))
        sched_yield();
    return NULL;
}

/* Signals storm threads that move blocks between CPUs through a pool
 * without a cache (so its allocations take other CPUs' stacks whole, carve
 * or grow, and wait for moves), and each handler allocates and frees a few
 * blocks of the same pool, and allocates or frees one more that it keeps
 * between signals: wherever the signal lands (a pop, a move, a growth, the
 * change of the thread's count of blocks in use, the spans where a
 * thread's in-flight list and the pool's count disagree), no call may
 * hang, fail or hand out a block twice, nor a count go astray. Blocks
 * carry their producer's stamp to the consumer, which checks it; every
 * block must be back at the end, and the pool's counts exact. Signals
 * begin once every worker has made its first call, which mallocs its
 * cache (not async-signal-safe), and end before any exits. */
enum { STORM_PAIRS = 2, STORM_SLOTS = 32 };
static lfp_pool *storm_pool;
static _Atomic(void *) storm_ring[STORM_PAIRS][STORM_SLOTS];
static _Atomic long storm_left, storm_handled, storm_failed, storm_bad, storm_ready;
static _Atomic bool storm_stop;
static pthread_t storm_workers[2 * STORM_PAIRS];
/* A block each worker's handlers keep from one signal to the next: so that
 * a handler's count of blocks in use moves by one, not back to where it
 * was, while the thread it interrupted may be in the middle of changing
 * that count (a load and a store, before, lost it). */
static void *storm_kept[2 * STORM_PAIRS];
static _Thread_local int storm_me = -1;

static void storm_handler(int sig)
{
    (void)sig;
    int e = errno;
    if (storm_me >= 0) {
        void *k = storm_kept[storm_me];
        storm_kept[storm_me] = NULL;
        if (k == NULL && (storm_kept[storm_me] = lfp_alloc(storm_pool)) == NULL)
            atomic_fetch_add(&storm_failed, 1);
        if (k != NULL && lfp_free(storm_pool, k) != LFP_OK)
            atomic_fetch_add(&storm_bad, 1);
    }
    void *b[3];
    size_t n = 0;
    for (; n < 3; n++) {
        b[n] = lfp_alloc(storm_pool);
        if (b[n] == NULL) {
            atomic_fetch_add(&storm_failed, 1);
            break;
        }
        memset(b[n], 0xa5, sizeof(uint64_t));
    }
    for (size_t i = 0; i < n; i++)
        if (lfp_free(storm_pool, b[i]) != LFP_OK)
            atomic_fetch_add(&storm_bad, 1);
    atomic_fetch_add(&storm_handled, 1);
    errno = e;
}

/* The worker's first call, then wait for the others'. */
static void storm_warm_up(int me)
{
    storm_me = me;
    void *b = lfp_alloc(storm_pool);
    if (b == NULL || lfp_free(storm_pool, b) != LFP_OK)
        atomic_fetch_add(&storm_bad, 1);
    atomic_fetch_add(&storm_ready, 1);
    while (atomic_load(&storm_ready) < 2 * STORM_PAIRS)
        sched_yield();
}

static void *storm_producer(void *arg)
{
    storm_warm_up(2 * (int)(uintptr_t)arg);
    uint64_t id = (uint64_t)(uintptr_t)arg, seq = 0;
    _Atomic(void *) *ring = storm_ring[id];
    for (size_t i = 0; atomic_fetch_sub(&storm_left, 1) > 0; i = (i + 1) % STORM_SLOTS) {
        while (atomic_load_explicit(&ring[i], memory_order_acquire) != NULL)
            if (atomic_load(&storm_stop))
                return wait_for_quiet();
        uint64_t *b = lfp_alloc(storm_pool);
        if (b == NULL) {
            atomic_fetch_add(&storm_failed, 1);
            break;
        }
        *b = id << 48 | seq++;
        b[1] = ~*b;
        atomic_store_explicit(&ring[i], b, memory_order_release);
    }
    atomic_fetch_add(&storm_ready, 1);
    return wait_for_quiet();
}

static void *storm_consumer(void *arg)
{
    storm_warm_up(2 * (int)(uintptr_t)arg + 1);
    _Atomic(void *) *ring = storm_ring[(uintptr_t)arg];
    for (size_t i = 0;; i = (i + 1) % STORM_SLOTS) {
        uint64_t *b = atomic_exchange_explicit(&ring[i], NULL, memory_order_acquire);
        if (b == NULL) {
            if (atomic_load(&storm_stop))
                return wait_for_quiet();
            continue;
        }
        if (b[1] != ~b[0])
            atomic_fetch_add(&storm_bad, 1);
        if (lfp_free(storm_pool, b) != LFP_OK)
            atomic_fetch_add(&storm_bad, 1);
    }
}

static void *storm_signaller(void *arg)
{
    (void)arg;
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    struct timespec gap = { 0, 20 * 1000 };
    while (atomic_load(&storm_ready) < 2 * STORM_PAIRS)
        sched_yield();
    while (!atomic_load(&storm_stop)) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        pthread_kill(storm_workers[rng % (2 * STORM_PAIRS)], SIGUSR1);
        nanosleep(&gap, NULL);
    }
    return NULL;
}

static void storm_run(const struct lfp_config *cfg)
{
    CREATE_OR_RETURN(cfg, &storm_pool);
    on_sigusr1(storm_handler);
    atomic_store(&storm_left, scaled(400000, 20000));
    atomic_store(&storm_handled, 0);
    atomic_store(&storm_failed, 0);
    atomic_store(&storm_bad, 0);
    atomic_store(&storm_ready, 0);
    atomic_store(&storm_stop, false);
    atomic_store(&signals_quiet, false);
    memset(storm_kept, 0, sizeof storm_kept);
    watchdog_arm("threads and signal handlers allocating from one pool", 300);
    for (uintptr_t i = 0; i < STORM_PAIRS; i++) {
        REQUIRE(pthread_create(&storm_workers[2 * i], NULL, storm_producer, (void *)i) == 0);
        REQUIRE(pthread_create(&storm_workers[2 * i + 1], NULL, storm_consumer, (void *)i) == 0);
    }
    pthread_t sig;
    REQUIRE(pthread_create(&sig, NULL, storm_signaller, NULL) == 0);
    /* Each producer counts itself ready once more when it is done. */
    while (atomic_load(&storm_ready) < 3 * STORM_PAIRS)
        sched_yield();
    atomic_store(&storm_stop, true);
    REQUIRE(pthread_join(sig, NULL) == 0);
    atomic_store(&signals_quiet, true);
    for (int i = 0; i < 2 * STORM_PAIRS; i++)
        REQUIRE(pthread_join(storm_workers[i], NULL) == 0);
    watchdog_disarm();
    signal(SIGUSR1, SIG_DFL);
    for (int p = 0; p < STORM_PAIRS; p++)
        for (int i = 0; i < STORM_SLOTS; i++) {
            void *b = atomic_exchange(&storm_ring[p][i], NULL);
            if (b != NULL)
                CHECK_EQ(lfp_free(storm_pool, b), LFP_OK);
        }
    for (int i = 0; i < 2 * STORM_PAIRS; i++)
        if (storm_kept[i] != NULL)
            CHECK_EQ(lfp_free(storm_pool, storm_kept[i]), LFP_OK);
    printf("  %ld signals handled, %zu blocks carved or made ready\n",
           atomic_load(&storm_handled), stats_of(storm_pool).blocks_carved);
    CHECK(atomic_load(&storm_handled) > 0);
    CHECK_EQ(atomic_load(&storm_failed), 0);
    CHECK_EQ(atomic_load(&storm_bad), 0);
    CHECK_EQ(stats_of(storm_pool).blocks_in_use, 0);
    verify_and_destroy(storm_pool, 0);
}

/* A signal handler's block counts where its thread's would: a thread
 * allocates and frees in a tight loop on a pool without a cache (each call
 * changes the thread's count of blocks in use) while signals come, and
 * each handler allocates a block that it keeps, so that every count a
 * handler loses leaves the balance short, not a loss and a gain that
 * cancel. Changed by a load and a store, the count lost the handlers'
 * blocks (a review's program: blocks_in_use 14 and 17, verify EINVAL, with
 * every block back). */
/* One worker: the main thread sends each signal once the last was handled,
 * and with more busy threads than two cores a signal waited for its
 * thread's next time slice (4 ms a signal here, with two). */
enum { TALLY_WORKERS = 1 };
static lfp_pool *tally_pool;
static _Atomic bool tally_stop;
static _Atomic long tally_ready, tally_failed, tally_handled;
static void *tally_kept[TALLY_WORKERS]; /* each a list linked through the blocks */
static _Thread_local int tally_me = -1;

static void tally_handler(int sig)
{
    (void)sig;
    int e = errno;
    if (tally_me >= 0) {
        void **b = lfp_alloc(tally_pool);
        if (b == NULL) {
            atomic_fetch_add(&tally_failed, 1);
        } else {
            *b = tally_kept[tally_me];
            tally_kept[tally_me] = b;
            atomic_fetch_add(&tally_handled, 1);
        }
    }
    errno = e;
}

static void *tally_worker(void *arg)
{
    tally_me = (int)(uintptr_t)arg;
    /* Signals come after the thread's first call, which mallocs. */
    for (bool first = true; !atomic_load_explicit(&tally_stop, memory_order_relaxed);
         first = false) {
        void *b = lfp_alloc(tally_pool);
        if (b == NULL || lfp_free(tally_pool, b) != LFP_OK)
            atomic_fetch_add(&tally_failed, 1);
        if (first)
            atomic_fetch_add(&tally_ready, 1);
    }
    return wait_for_quiet();
}

static void tally_run(const struct lfp_config *cfg)
{
    CREATE_OR_RETURN(cfg, &tally_pool);
    on_sigusr1(tally_handler);
    atomic_store(&tally_stop, false);
    atomic_store(&signals_quiet, false);
    atomic_store(&tally_ready, 0);
    atomic_store(&tally_failed, 0);
    atomic_store(&tally_handled, 0);
    memset(tally_kept, 0, sizeof tally_kept);
    watchdog_arm("signal handlers allocating beside their threads", 120);
    pthread_t w[TALLY_WORKERS];
    for (uintptr_t i = 0; i < TALLY_WORKERS; i++)
        REQUIRE(pthread_create(&w[i], NULL, tally_worker, (void *)i) == 0);
    while (atomic_load(&tally_ready) < TALLY_WORKERS)
        sched_yield();
    /* One signal at a time, each sent once the last was handled: two sent
     * to a thread before it runs its handler would make one. */
    long signals = scaled(40000, 4000);
    for (long i = 0; i < signals; i++) {
        REQUIRE(pthread_kill(w[i % TALLY_WORKERS], SIGUSR1) == 0);
        while (atomic_load(&tally_handled) + atomic_load(&tally_failed) <= i)
            sched_yield();
    }
    atomic_store(&tally_stop, true);
    atomic_store(&signals_quiet, true);
    for (int i = 0; i < TALLY_WORKERS; i++)
        REQUIRE(pthread_join(w[i], NULL) == 0);
    watchdog_disarm();
    signal(SIGUSR1, SIG_DFL);
    size_t kept = 0;
    for (int i = 0; i < TALLY_WORKERS; i++)
        for (void **b = tally_kept[i]; b != NULL; kept++) {
            void **next = *b;
            CHECK_EQ(lfp_free(tally_pool, b), LFP_OK);
            b = next;
        }
    printf("  %ld signals handled, %zu blocks kept by handlers\n", atomic_load(&tally_handled),
           kept);
    CHECK_EQ(atomic_load(&tally_failed), 0);
    CHECK_EQ((long)kept, atomic_load(&tally_handled));
    /* lfp_pool_stats shows a balance below zero (lost counts of handlers'
     * allocations) as 0: lfp_pool_verify is the check that catches it. */
    CHECK_EQ(stats_of(tally_pool).blocks_in_use, 0);
    verify_and_destroy(tally_pool, 0);
}

static void test_a_handlers_blocks_count_beside_its_threads_in_a_fixed_pool(void)
{
    struct lfp_config cfg = { .block_size = 64, .capacity = 1 << 17, .flags = LFP_NO_CACHE };
    tally_run(&cfg);
}

static void test_a_handlers_blocks_count_beside_its_threads_in_a_growable_pool(void)
{
    struct lfp_config cfg = { .block_size = 64, .slab_size = 64 * KiB,
                              .flags = LFP_GROWABLE | LFP_NO_CACHE };
    tally_run(&cfg);
}

static void test_signal_handlers_allocating_amid_moves_and_growths_lose_nothing(void)
{
    struct lfp_config cfg = { .block_size = 64, .slab_size = 64 * KiB,
                              .flags = LFP_GROWABLE | LFP_NO_CACHE };
    storm_run(&cfg);
}

/* The same on a fixed pool without a cache (moves and carves). */
static void test_signal_handlers_allocating_amid_moves_in_a_fixed_pool_lose_nothing(void)
{
    struct lfp_config cfg = { .block_size = 64, .capacity = 4096, .flags = LFP_NO_CACHE };
    storm_run(&cfg);
}

/* A signal handler that interrupts a depot pop (inside its read-side
 * section) and frees into a growable pool past its trim threshold: no trim
 * starts there (a grace period, or call_rcu's worker that a fork waits for,
 * would wait for this very thread); the next push outside it trims. */
static lfp_pool *pop_pool;
static _Atomic int raise_in_pop;

static void raise_from_pop(void)
{
    if (atomic_exchange(&raise_in_pop, 0))
        raise(SIGUSR1);
}

static void free_last_in_handler(int sig)
{
    (void)sig;
    CHECK_EQ(lfp_free(handler_pool, handler_blocks[handler_n - 1]), LFP_OK);
    CHECK_EQ(stats_of(handler_pool).blocks_total, handler_n); /* no trim yet */
    atomic_store(&handler_ran, 1);
}

static void test_no_automatic_trim_starts_inside_a_read_side_section(void)
{
    struct lfp_config cfg = small_slabs_without_cache();
    CREATE_OR_RETURN(&cfg, &pop_pool);
    handler_pool = pool_trimming_at_one_slab(&handler_blocks, &handler_n);
    free_all(handler_pool, handler_blocks, handler_n - 1); /* below the line */
    void *a = lfp_alloc(pop_pool);
    REQUIRE(a != NULL); /* the rest of its slab is in its depot now */
    atomic_store(&handler_ran, 0);
    signal(SIGUSR1, free_last_in_handler);
    lfp_test_pop_hook = raise_from_pop;
    atomic_store(&lfp_test_steal_hook, raise_from_pop); /* moved to another CPU */
    atomic_store(&raise_in_pop, 1);
    void *b = lfp_alloc(pop_pool); /* its pop raises the signal */
    lfp_test_pop_hook = NULL;
    atomic_store(&lfp_test_steal_hook, NULL);
    signal(SIGUSR1, SIG_DFL);
    CHECK(b != NULL);
    CHECK_EQ(atomic_load(&handler_ran), 1);
    /* The next push, outside any read-side section, trims. */
    void *c = lfp_alloc(handler_pool);
    REQUIRE(c != NULL);
    CHECK_EQ(lfp_free(handler_pool, c), LFP_OK);
    CHECK_EQ(stats_of(handler_pool).blocks_total, 0);
    CHECK_EQ(lfp_free(pop_pool, a), LFP_OK);
    CHECK_EQ(lfp_free(pop_pool, b), LFP_OK);
    free(handler_blocks);
    verify_and_destroy(handler_pool, 0);
    verify_and_destroy(pop_pool, 0);
}

int main(void)
{
    /* First, while no slab has been released yet: its growths find no
     * recycled descriptor. */
    RUN(test_growths_and_trims_call_no_malloc);
    RUN(test_growable_pool_grows_on_demand_far_beyond_one_slab);
    RUN(test_a_new_slab_of_large_blocks_is_resident_only_where_written);
    RUN(test_a_slab_cut_short_by_max_blocks_is_resident_only_where_its_blocks_are);
    RUN(test_growable_capacity_is_made_up_front);
    RUN(test_capacity_above_trim_threshold_is_still_made_up_front);
    RUN(test_max_blocks_stops_growth_with_enobufs_and_leaves_pool_intact);
    RUN(test_invalid_growable_configurations_are_rejected_with_einval);
    RUN(test_os_refusing_a_slab_fails_alloc_with_enomem_and_leaves_pool_intact);
    RUN(test_create_fails_with_enomem_when_its_reservation_is_refused_and_leaks_nothing);
    RUN(test_trim_gives_freed_memory_back_to_the_os);
    RUN(test_trim_keeps_slabs_with_a_block_in_use_or_cached);
    RUN(test_trim_of_laned_batches_keeps_exactly_the_free_blocks_of_kept_slabs);
    RUN(test_trim_with_one_block_in_use_keeps_exactly_its_slab);
    RUN(test_trim_of_fixed_pool_or_null_releases_nothing);
    RUN(test_trim_releases_slabs_whose_blocks_are_spread_over_cpus);
    RUN(test_foreign_pointers_of_every_kind_are_rejected_without_fault);
    RUN(test_slabs_beyond_a_full_range_work_like_those_in_it);
    RUN(test_range_positions_churned_by_threads_are_never_lost);
    RUN(test_trim_threshold_trims_automatically_and_zero_never_does);
    RUN(test_a_trim_threshold_below_one_block_still_trims);
    RUN(test_automatic_trim_and_destroy_work_in_a_forked_child);
    RUN(test_ranges_leave_room_under_an_address_space_limit);
    RUN(test_init_and_fini_run_once_per_block_over_each_slab_lifetime);
    RUN(test_threads_churning_through_magazines_while_trimming_stay_consistent);
    RUN(test_a_trim_of_a_drained_pool_races_threads_growing_it_again);
    RUN(test_a_thread_at_max_blocks_waits_for_a_slab_being_made_ready);
    RUN(test_a_thread_at_max_blocks_waits_for_a_trim_to_hand_blocks_back);
    RUN(test_a_thread_at_max_blocks_waits_for_a_hole_being_made_ready);
    RUN(test_stats_read_across_a_growth_and_its_holes_do_not_wrap);
    RUN(test_a_thread_at_a_fixed_pools_bound_waits_for_a_run_being_made_ready);
    RUN(test_a_thread_at_max_blocks_does_not_wait_for_a_trims_destructors);
    RUN(test_a_pool_without_a_cache_grows_during_a_trim_rather_than_wait);
    RUN(test_a_thread_whose_growth_finds_the_bound_waits_for_the_racing_slab);
    RUN(test_a_pool_without_a_cache_does_not_wait_below_its_bound_for_a_growth);
    RUN(test_a_child_forked_during_growth_does_not_wait_for_it);
    RUN(test_a_child_forked_during_a_trim_can_trim);
    RUN(test_a_child_forked_by_a_constructor_finishes_that_growth);
    RUN(test_a_thread_at_a_fixed_pools_bound_waits_for_a_split_batch);
    RUN(test_no_automatic_trim_runs_inside_a_growth);
    RUN(test_threads_without_a_slot_at_the_bound_do_not_wait_for_each_other);
    RUN(test_a_destructor_may_flush_the_threads_caches_during_a_spill);
    RUN(test_a_destructor_run_by_a_threads_exit_may_free_into_another_pool);
    RUN(test_a_child_forked_while_a_thread_flushes_can_destroy_the_pool);
    RUN(test_a_child_forked_while_a_thread_reads_under_rcu_can_trim);
    RUN(test_a_fork_waits_for_a_release_being_queued);
    RUN(test_a_signal_handler_may_free_into_a_pool_while_a_release_is_queued);
    RUN(test_no_automatic_trim_starts_inside_a_read_side_section);
    RUN(test_signal_handlers_allocating_amid_moves_and_growths_lose_nothing);
    RUN(test_signal_handlers_allocating_amid_moves_in_a_fixed_pool_lose_nothing);
    RUN(test_a_handlers_blocks_count_beside_its_threads_in_a_fixed_pool);
    RUN(test_a_handlers_blocks_count_beside_its_threads_in_a_growable_pool);
    RUN(test_two_constructor_chains_back_into_a_pool_do_not_wait_for_each_other);
    return check_done();
}
