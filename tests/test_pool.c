/* SPDX-License-Identifier: MIT */
/*
 * Single-threaded behaviour of the public API: what a pool hands out, how it
 * counts, what it does with caller memory, constructors and destructors, and
 * the small utility calls. Every scenario runs with the per-thread cache and
 * without it (LFP_NO_CACHE) where both apply, and ends with lfp_pool_verify().
 */
#include <errno.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lfpool.h>

#include "check.h"

static const unsigned cache_modes[] = {0, LFP_NO_CACHE};

static size_t effective_align(size_t align)
{
    return align ? align : alignof(max_align_t);
}

/* The documented stride, computed independently of the library's macros. */
static size_t expected_stride(size_t block_size, size_t align)
{
    size_t a = effective_align(align);
    size_t need = block_size < 2 * sizeof(void *) ? 2 * sizeof(void *) : block_size;
    return (need + a - 1) / a * a;
}

static lfp_pool *make_pool(size_t block_size, size_t align, size_t capacity, unsigned flags)
{
    struct lfp_config cfg = {0};
    cfg.block_size = block_size;
    cfg.align = align;
    cfg.capacity = capacity;
    cfg.flags = flags;
    return create_pool(&cfg);
}

/* 1 if the n ranges [v[i], v[i] + len) are pairwise disjoint (so also
 * distinct), 0 otherwise. Sorts a copy. */
static int ranges_disjoint(void *const *v, size_t n, size_t len)
{
    void **s = malloc((n ? n : 1) * sizeof *s);
    REQUIRE(s != NULL);
    memcpy(s, v, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_addr);
    int ok = 1;
    for (size_t i = 1; i < n; i++)
        if ((uintptr_t)s[i - 1] + len > (uintptr_t)s[i])
            ok = 0;
    free(s);
    return ok;
}

static int contains_ptr(void *const *v, size_t n, const void *p)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == p)
            return 1;
    return 0;
}

/* ------------------------------------------------------------------ */

static void create_then_destroy_round_trip_reports_the_configuration(void)
{
    for (size_t m = 0; m < 2; m++) {
        int before = atomic_load(&check_failures);
        unsigned flags = cache_modes[m];
        lfp_pool *pool = make_pool(48, 0, 16384, flags);
        struct lfp_stats s = stats_of(pool);
        CHECK(s.name == NULL);
        CHECK_EQ(s.block_size, 48);
        CHECK_EQ(s.stride, expected_stride(48, 0));
        CHECK_EQ(s.align, alignof(max_align_t));
        CHECK_EQ(s.blocks_total, 16384);
        CHECK_EQ(s.blocks_in_use, 0);
        CHECK_EQ(s.blocks_in_use_max, 0);
        CHECK_EQ(s.blocks_cached, 0);
        CHECK(s.blocks_carved <= 16384);
        CHECK(s.bytes_reserved >= 16384 * s.stride);
        if (flags & LFP_NO_CACHE)
            CHECK_EQ(s.cache_size, 0);
        else /* 32 KiB / 48 > 512, and 16384 / 16 >= 512 */
            CHECK_EQ(s.cache_size, LFP_CACHE_DEFAULT);
        verify_and_destroy(pool, 0);
        note_failures(before, "create/destroy round trip", flags);
    }
}

static void explicit_cache_size_is_honoured_and_small_pools_get_a_smaller_cache(void)
{
    struct lfp_config cfg = {0};
    cfg.block_size = 32;
    cfg.capacity = 4096;
    cfg.cache_size = 32;
    lfp_pool *pool = NULL;
    REQUIRE(lfp_pool_create(&cfg, &pool) == LFP_OK);
    CHECK_EQ(stats_of(pool).cache_size, 32);
    verify_and_destroy(pool, 0);

    static const size_t caps[] = {1, 15, 16, 64, 100, 256, 1000};
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
        pool = make_pool(32, 0, caps[i], 0);
        struct lfp_stats s = stats_of(pool);
        CHECK(s.cache_size <= caps[i] / 16);
        CHECK(s.cache_size <= LFP_CACHE_DEFAULT);
        /* A thread can still take every block of a small pool. */
        void **v = calloc(caps[i] + 1, sizeof *v);
        REQUIRE(v != NULL);
        CHECK_EQ(alloc_all(pool, v, caps[i] + 1), caps[i]);
        free_all(pool, v, caps[i]);
        free(v);
        verify_and_destroy(pool, 0);
    }
}

/* cache_size 0: a magazine of LFP_CACHE_BYTES of blocks, 16 to
 * LFP_CACHE_DEFAULT blocks. */
static void the_default_cache_holds_a_fixed_number_of_bytes_within_bounds(void)
{
    static const struct {
        size_t block_size, cache_size;
    } cases[] = {
        {8, LFP_CACHE_DEFAULT},  {64, LFP_CACHE_BYTES / 64}, {256, LFP_CACHE_BYTES / 256},
        {1024, LFP_CACHE_BYTES / 1024}, {4096, 16}, {65536, 16},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lfp_pool *pool = make_pool(cases[i].block_size, 0, 1024, 0);
        CHECK_EQ(stats_of(pool).cache_size, cases[i].cache_size < 1024 / 16
                                                 ? cases[i].cache_size : 1024 / 16);
        verify_and_destroy(pool, 0);
        struct lfp_config cfg = { .block_size = cases[i].block_size, .flags = LFP_GROWABLE };
        pool = create_pool(&cfg);
        CHECK_EQ(stats_of(pool).cache_size, cases[i].cache_size);
        verify_and_destroy(pool, 0);
    }
}

static void every_block_is_aligned_to_the_configured_alignment(void)
{
    static const size_t aligns[] = {0, 8, 16, 64, 256, 4096};
    static const size_t sizes[] = {1, 40, 300};
    enum { CAP = 64 };
    for (size_t m = 0; m < 2; m++)
        for (size_t a = 0; a < sizeof aligns / sizeof aligns[0]; a++)
            for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
                int before = atomic_load(&check_failures);
                size_t want = effective_align(aligns[a]);
                lfp_pool *pool = make_pool(sizes[z], aligns[a], CAP, cache_modes[m]);
                struct lfp_stats s = stats_of(pool);
                CHECK_EQ(s.align, want);
                void *v[CAP];
                CHECK_EQ(alloc_all(pool, v, CAP), CAP);
                for (size_t i = 0; i < CAP; i++)
                    CHECK_EQ((uintptr_t)v[i] % want, 0);
                free_all(pool, v, CAP);
                verify_and_destroy(pool, 0);
                if (atomic_load(&check_failures) != before)
                    fprintf(stderr, "  ... align %zu, block_size %zu\n", aligns[a], sizes[z]);
                note_failures(before, "alignment", cache_modes[m]);
            }
}

static void stride_is_block_size_rounded_up_to_align_and_at_least_two_pointers(void)
{
    static const size_t sizes[] = {1, 8, 15, 16, 17, 24, 100, 4096};
    static const size_t aligns[] = {0, 8, 16, 64, 256};
    enum { CAP = 32 };
    for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++)
        for (size_t a = 0; a < sizeof aligns / sizeof aligns[0]; a++) {
            int before = atomic_load(&check_failures);
            size_t stride = expected_stride(sizes[z], aligns[a]);
            lfp_pool *pool = make_pool(sizes[z], aligns[a], CAP, 0);
            struct lfp_stats s = stats_of(pool);
            CHECK_EQ(s.block_size, sizes[z]);
            CHECK_EQ(s.stride, stride);
            /* All blocks come from one region, stride bytes apart. */
            void *v[CAP];
            REQUIRE(alloc_all(pool, v, CAP) == CAP);
            qsort(v, CAP, sizeof v[0], cmp_addr);
            for (size_t i = 1; i < CAP; i++)
                CHECK_EQ((uintptr_t)v[i] - (uintptr_t)v[0], i * stride);
            free_all(pool, v, CAP);
            verify_and_destroy(pool, 0);
            if (atomic_load(&check_failures) != before)
                fprintf(stderr, "  ... block_size %zu, align %zu\n", sizes[z], aligns[a]);
        }
}

static void small_block_sizes_hold_their_bytes_without_overlap(void)
{
    static const size_t sizes[] = {1, 8, 24, 100};
    enum { CAP = 200 };
    for (size_t m = 0; m < 2; m++)
        for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
            int before = atomic_load(&check_failures);
            size_t bs = sizes[z];
            lfp_pool *pool = make_pool(bs, 0, CAP, cache_modes[m]);
            void *v[CAP];
            CHECK_EQ(alloc_all(pool, v, CAP), CAP);
            for (size_t i = 0; i < CAP; i++)
                memset(v[i], (int)(i & 0xff), bs);
            for (size_t i = 0; i < CAP; i++) {
                const unsigned char *b = v[i];
                size_t bad = 0;
                for (size_t j = 0; j < bs; j++)
                    bad += b[j] != (unsigned char)(i & 0xff);
                CHECK_EQ(bad, 0);
            }
            free_all(pool, v, CAP);
            verify_and_destroy(pool, 0);
            note_failures(before, "small block sizes", cache_modes[m]);
        }
}

static void allocating_until_exhausted_gives_capacity_disjoint_blocks_then_enobufs(void)
{
    static const size_t caps[] = {1, 2, 17, 1000, 5000};
    for (size_t m = 0; m < 2; m++)
        for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
            int before = atomic_load(&check_failures);
            size_t cap = caps[c], bs = 40;
            lfp_pool *pool = make_pool(bs, 0, cap, cache_modes[m]);
            void **v = calloc(cap + 1, sizeof *v);
            REQUIRE(v != NULL);
            CHECK_EQ(alloc_all(pool, v, cap + 1), cap);
            CHECK(ranges_disjoint(v, cap, bs));
            struct lfp_stats s = stats_of(pool);
            CHECK_EQ(s.blocks_in_use, cap);
            CHECK_EQ(s.blocks_carved, cap);
            CHECK_EQ(s.blocks_cached, 0);

            errno = 0;
            CHECK(lfp_alloc(pool) == NULL);
            CHECK_EQ(errno, ENOBUFS);
            errno = 0;
            CHECK(lfp_alloc(pool) == NULL); /* stays exhausted */
            CHECK_EQ(errno, ENOBUFS);
            CHECK_EQ(lfp_pool_verify(pool), LFP_OK);

            /* One block back: it is the one handed out next, then none. */
            void *p = v[cap / 2];
            CHECK_EQ(lfp_free(pool, p), LFP_OK);
            CHECK_EQ(stats_of(pool).blocks_in_use, cap - 1);
            void *q = lfp_alloc(pool);
            CHECK(q == p);
            errno = 0;
            CHECK(lfp_alloc(pool) == NULL);
            CHECK_EQ(errno, ENOBUFS);

            free_all(pool, v, cap);
            CHECK_EQ(stats_of(pool).blocks_in_use, 0);
            /* ... and every block can be taken again. */
            CHECK_EQ(alloc_all(pool, v, cap + 1), cap);
            CHECK(ranges_disjoint(v, cap, bs));
            free_all(pool, v, cap);
            free(v);
            verify_and_destroy(pool, 0);
            if (atomic_load(&check_failures) != before)
                fprintf(stderr, "  ... capacity %zu\n", cap);
            note_failures(before, "exhaustion", cache_modes[m]);
        }
}

static void a_freed_block_is_the_next_one_allocated_on_the_same_thread(void)
{
    lfp_pool *pool = make_pool(64, 0, 4096, 0);
    REQUIRE(stats_of(pool).cache_size >= 4);
    void *p = lfp_alloc(pool);
    REQUIRE(p != NULL);
    CHECK_EQ(lfp_free(pool, p), LFP_OK);
    CHECK(lfp_alloc(pool) == p);

    void *a = lfp_alloc(pool), *b = lfp_alloc(pool), *c = lfp_alloc(pool);
    REQUIRE(a && b && c);
    CHECK_EQ(lfp_free(pool, b), LFP_OK);
    CHECK_EQ(lfp_free(pool, a), LFP_OK);
    CHECK_EQ(lfp_free(pool, c), LFP_OK);
    CHECK(lfp_alloc(pool) == c);
    CHECK(lfp_alloc(pool) == a);
    CHECK(lfp_alloc(pool) == b);
    CHECK_EQ(stats_of(pool).blocks_in_use, 4);
    verify_and_destroy(pool, 4);
}

static int all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

static void zero_flag_returns_zeroed_blocks_even_after_they_were_dirtied(void)
{
    enum { CAP = 300, BS = 72 };
    for (size_t m = 0; m < 2; m++) {
        int before = atomic_load(&check_failures);
        lfp_pool *pool = make_pool(BS, 0, CAP, cache_modes[m] | LFP_ZERO);
        void *v[CAP];
        CHECK_EQ(alloc_all(pool, v, CAP), CAP);
        size_t dirty = 0;
        for (size_t i = 0; i < CAP; i++) {
            dirty += !all_zero(v[i], BS);
            memset(v[i], 0xA5, BS);
        }
        CHECK_EQ(dirty, 0);
        free_all(pool, v, CAP);
        CHECK_EQ(alloc_all(pool, v, CAP), CAP);
        for (size_t i = 0; i < CAP; i++) {
            dirty += !all_zero(v[i], BS);
            memset(v[i], 0xFF, BS);
        }
        CHECK_EQ(dirty, 0);
        /* A single dirtied block freed and taken straight back. */
        CHECK_EQ(lfp_free(pool, v[7]), LFP_OK);
        void *p = lfp_alloc(pool);
        CHECK(p == v[7]);
        REQUIRE(p != NULL);
        CHECK(all_zero(p, BS));
        free_all(pool, v, CAP);
        verify_and_destroy(pool, 0);
        note_failures(before, "LFP_ZERO", cache_modes[m]);
    }
}

/* Constructor and destructor bookkeeping. */
#define MAGIC_HEAD 0x1f2e3d4cu
#define MAGIC_TAIL 0x5b6a7988u
struct ctor_log {
    size_t block_size;
    size_t inits, finis;
    void **init_at, **fini_at;
    size_t max;
};

static void ctor(void *block, void *arg)
{
    struct ctor_log *log = arg;
    uint32_t head = MAGIC_HEAD, tail = MAGIC_TAIL;
    memcpy(block, &head, sizeof head);
    memcpy((char *)block + log->block_size - sizeof tail, &tail, sizeof tail);
    if (log->inits < log->max)
        log->init_at[log->inits] = block;
    log->inits++;
}

static void dtor(void *block, void *arg)
{
    struct ctor_log *log = arg;
    if (log->finis < log->max)
        log->fini_at[log->finis] = block;
    log->finis++;
}

static int is_constructed(const void *block, size_t block_size)
{
    uint32_t head, tail;
    memcpy(&head, block, sizeof head);
    memcpy(&tail, (const char *)block + block_size - sizeof tail, sizeof tail);
    return head == MAGIC_HEAD && tail == MAGIC_TAIL;
}

static struct ctor_log *new_log(size_t block_size, size_t max)
{
    struct ctor_log *log = calloc(1, sizeof *log);
    REQUIRE(log != NULL);
    log->block_size = block_size;
    log->max = max;
    log->init_at = calloc(max, sizeof(void *));
    log->fini_at = calloc(max, sizeof(void *));
    REQUIRE(log->init_at && log->fini_at);
    return log;
}

static void free_log(struct ctor_log *log)
{
    free(log->init_at);
    free(log->fini_at);
    free(log);
}

/* One constructor scenario in one cache mode: a pool of cap blocks of bs
 * bytes whose init (and fini, with_fini) log into log. */
struct ctor_fixture {
    lfp_pool *pool;
    struct ctor_log *log;
    unsigned flags;
    int before; /* check_failures when the scenario began */
};

static struct ctor_fixture ctor_fixture_open(size_t bs, size_t cap, unsigned flags,
                                             int with_fini)
{
    struct ctor_fixture f = {0};
    f.before = atomic_load(&check_failures);
    f.flags = flags;
    f.log = new_log(bs, cap + 1);
    struct lfp_config cfg = {0};
    cfg.block_size = bs;
    cfg.capacity = cap;
    cfg.flags = flags;
    cfg.init = ctor;
    cfg.fini = with_fini ? dtor : NULL;
    cfg.arg = f.log;
    f.pool = create_pool(&cfg);
    return f;
}

/* Ends a scenario that left every block free: verify, destroy, free the
 * log, and name the scenario and mode if it failed. */
static void ctor_fixture_close(struct ctor_fixture *f, const char *what)
{
    verify_and_destroy(f->pool, 0);
    free_log(f->log);
    note_failures(f->before, what, f->flags);
}

static void init_runs_exactly_once_per_carved_block(void)
{
    enum { CAP = 500, BS = 40 };
    for (size_t m = 0; m < 2; m++) {
        struct ctor_fixture f = ctor_fixture_open(BS, CAP, cache_modes[m], 0);
        struct ctor_log *log = f.log;
        CHECK_EQ(log->inits, stats_of(f.pool).blocks_carved);

        void *v[CAP];
        v[0] = lfp_alloc(f.pool);
        REQUIRE(v[0] != NULL);
        CHECK(log->inits >= 1);
        CHECK_EQ(log->inits, stats_of(f.pool).blocks_carved);
        CHECK(contains_ptr(log->init_at, log->inits < log->max ? log->inits : log->max, v[0]));

        size_t n = 1 + alloc_all(f.pool, v + 1, CAP - 1);
        CHECK_EQ(n, CAP);
        CHECK_EQ(log->inits, CAP);
        CHECK_EQ(stats_of(f.pool).blocks_carved, CAP);
        /* Each carved block was constructed once: the addresses are distinct. */
        CHECK(ranges_disjoint(log->init_at, CAP, 1));
        size_t unconstructed = 0;
        for (size_t i = 0; i < CAP; i++)
            unconstructed += !is_constructed(v[i], BS);
        CHECK_EQ(unconstructed, 0);

        /* Reuse constructs nothing again. */
        free_all(f.pool, v, CAP);
        CHECK_EQ(alloc_all(f.pool, v, CAP), CAP);
        free_all(f.pool, v, CAP);
        CHECK_EQ(log->inits, CAP);
        ctor_fixture_close(&f, "init once per carved block");
    }
}

static void constructed_state_survives_free_and_realloc(void)
{
    enum { CAP = 256, BS = 24 };
    for (size_t m = 0; m < 2; m++) {
        struct ctor_fixture f = ctor_fixture_open(BS, CAP, cache_modes[m], 0);
        void *v[CAP];
        CHECK_EQ(alloc_all(f.pool, v, CAP), CAP);
        /* Free them all, so every block has been on a free list. */
        free_all(f.pool, v, CAP);
        CHECK_EQ(alloc_all(f.pool, v, CAP), CAP);
        size_t broken = 0;
        for (size_t i = 0; i < CAP; i++)
            broken += !is_constructed(v[i], BS);
        CHECK_EQ(broken, 0);
        free_all(f.pool, v, CAP);
        ctor_fixture_close(&f, "constructed state across free");
    }
}

static unsigned char pattern_byte(const void *block, size_t j)
{
    return (unsigned char)(((uintptr_t)block >> 3) * 31u + j * 7u + 1u);
}

static void fill_pattern(void *block, size_t bs)
{
    for (size_t j = 0; j < bs; j++)
        ((unsigned char *)block)[j] = pattern_byte(block, j);
}

/* With init the whole block is the caller's while free: pattern the n
 * blocks of v, free them, take n again (the same ones: the pool holds n),
 * check that no byte changed, and free them. */
static void check_pattern_survives_free_and_realloc(lfp_pool *pool, void **v, size_t n,
                                                    size_t bs)
{
    for (size_t i = 0; i < n; i++)
        fill_pattern(v[i], bs);
    free_all(pool, v, n);
    CHECK_EQ(alloc_all(pool, v, n), n);
    size_t changed = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < bs; j++)
            changed += ((unsigned char *)v[i])[j] != pattern_byte(v[i], j);
    CHECK_EQ(changed, 0);
    free_all(pool, v, n);
}

static void with_init_the_whole_block_keeps_its_bytes_while_free(void)
{
    enum { CAP = 128, BS = 100 };
    for (size_t m = 0; m < 2; m++) {
        struct ctor_fixture f = ctor_fixture_open(BS, CAP, cache_modes[m], 0);

        /* One block, freed and taken straight back. */
        void *p = lfp_alloc(f.pool);
        REQUIRE(p != NULL);
        fill_pattern(p, BS);
        CHECK_EQ(lfp_free(f.pool, p), LFP_OK);
        void *q = lfp_alloc(f.pool);
        REQUIRE(q != NULL);
        if (!(f.flags & LFP_NO_CACHE))
            CHECK(q == p);
        CHECK_EQ(lfp_free(f.pool, q), LFP_OK);

        /* Every block, all free at once, then all taken again. */
        void *v[CAP];
        CHECK_EQ(alloc_all(f.pool, v, CAP), CAP);
        check_pattern_survives_free_and_realloc(f.pool, v, CAP, BS);
        ctor_fixture_close(&f, "block bytes kept with init");
    }
}

static void fini_runs_once_per_carved_block_at_destroy(void)
{
    enum { CAP = 1000, BS = 32 };
    for (size_t m = 0; m < 2; m++) {
        struct ctor_fixture f = ctor_fixture_open(BS, CAP, cache_modes[m], 1);
        struct ctor_log *log = f.log;
        void *v[10];
        CHECK_EQ(alloc_all(f.pool, v, 10), 10);
        CHECK_EQ(lfp_free(f.pool, v[3]), LFP_OK);
        CHECK_EQ(lfp_free(f.pool, v[4]), LFP_OK);
        struct lfp_stats s = stats_of(f.pool);
        CHECK(s.blocks_carved >= 10);
        CHECK(s.blocks_carved < CAP); /* carving is lazy */
        CHECK_EQ(log->finis, 0);
        /* Destroy with blocks in use, free and cached alike. */
        verify_and_destroy(f.pool, 8);
        CHECK_EQ(log->finis, s.blocks_carved);
        CHECK_EQ(log->inits, s.blocks_carved);
        if (log->finis == log->inits && log->finis <= log->max) {
            /* The same blocks: sort both address lists and compare. */
            qsort(log->init_at, log->inits, sizeof(void *), cmp_addr);
            qsort(log->fini_at, log->finis, sizeof(void *), cmp_addr);
            CHECK(memcmp(log->init_at, log->fini_at, log->finis * sizeof(void *)) == 0);
        }
        free_log(log);
        note_failures(f.before, "fini at destroy", f.flags);
    }
}

static void zero_flag_with_an_init_constructor_is_refused(void)
{
    struct ctor_log *log = new_log(16, 1);
    struct lfp_config cfg = {0};
    cfg.block_size = 16;
    cfg.capacity = 10;
    cfg.flags = LFP_ZERO;
    cfg.init = ctor;
    cfg.arg = log;
    lfp_pool *pool = (lfp_pool *)&cfg; /* garbage that must be replaced */
    CHECK_EQ(lfp_pool_create(&cfg, &pool), LFP_EINVAL);
    CHECK(pool == NULL);
    CHECK_EQ(log->inits, 0);
    /* LFP_ZERO with only a destructor is fine. */
    cfg.init = NULL;
    cfg.fini = dtor;
    pool = NULL;
    CHECK_EQ(lfp_pool_create(&cfg, &pool), LFP_OK);
    if (pool)
        verify_and_destroy(pool, 0);
    free_log(log);
}

static void caller_memory_pool_keeps_every_block_inside_the_buffer_and_leaves_it_alone(void)
{
    enum { CAP = 50, BS = 100, AL = 64 };
    for (size_t m = 0; m < 2; m++) {
        int before = atomic_load(&check_failures);
        struct lfp_config cfg = {0};
        cfg.block_size = BS;
        cfg.align = AL;
        cfg.capacity = CAP;
        cfg.flags = cache_modes[m];
        size_t bytes = lfp_pool_bytes(&cfg);
        CHECK_EQ(bytes, LFP_POOL_BYTES(CAP, BS, AL));
        CHECK_EQ(bytes, CAP * expected_stride(BS, AL));
        void *buf = NULL;
        REQUIRE(posix_memalign(&buf, AL, bytes) == 0);
        memset(buf, 0xEE, bytes);
        cfg.mem = buf;
        cfg.mem_size = bytes;
        lfp_pool *pool = create_pool(&cfg);

        void *v[CAP + 1];
        CHECK_EQ(alloc_all(pool, v, CAP + 1), CAP);
        uintptr_t lo = (uintptr_t)buf, hi = lo + bytes;
        size_t outside = 0;
        for (size_t i = 0; i < CAP; i++)
            outside += (uintptr_t)v[i] < lo || (uintptr_t)v[i] + BS > hi;
        CHECK_EQ(outside, 0);
        CHECK(ranges_disjoint(v, CAP, BS));
        errno = 0;
        CHECK(lfp_alloc(pool) == NULL);
        CHECK_EQ(errno, ENOBUFS);
        for (size_t i = 0; i < CAP; i++)
            memset(v[i], (int)i, BS);
        free_all(pool, v, CAP);
        verify_and_destroy(pool, 0);

        /* Still ours: writable, and freeing it is our job (a sanitizer or
         * the C library would catch a second free). */
        memset(buf, 0x5A, bytes);
        CHECK(((unsigned char *)buf)[bytes - 1] == 0x5A);
        free(buf);
        note_failures(before, "caller memory", cache_modes[m]);
    }
}

static void construct_nothing(void *block, void *arg)
{
    (void)block;
    (void)arg;
}

/* A fixed pool's carve faults in, at once, the pages its run's links are
 * written to, and no others: not the rest of the pool (carved lazily, a
 * run at a time), nor the caller's memory around it. The buffer here
 * starts 32 bytes before a page ends and its last block ends 32 bytes
 * into a page. With 48-byte blocks, links at their starts, that last page
 * holds only the last block's tail; with a constructor (which writes
 * nothing here), links after the 48 bytes, the first page holds only the
 * first block's head. The carve writes no byte of either, and they must
 * stay unresident, as must the pages after the buffer. The pool is 4q
 * blocks of 48 bytes, so that its runs (a quarter of a pool this small)
 * are long and the last one ends at the buffer's end. Fails when the
 * prefault rounds a run's start down or its end up to a page, or covers
 * the whole pool. (With pages of 64 KiB no run spans two whole pages, and
 * nothing is prefaulted to be caught.) */
static void a_fixed_pools_carve_faults_in_only_the_pages_its_links_are_in(void)
{
    if (getenv("LFP_CHECKED") != NULL && strcmp(getenv("LFP_CHECKED"), "1") == 0) {
        printf("  skipped: LFP_CHECKED=1 fills whole blocks\n");
        return;
    }
    const size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    /* 4q blocks of 48 bytes are k pages and 64 bytes: the smallest q over
     * 512 (runs of 24 KiB or more, below the carve's 64 KiB). */
    size_t q = 513;
    while ((192 * q - 64) % ps != 0)
        q++;
    REQUIRE(q < 1365);
    const size_t n = 4 * q;
    for (int constructed = 0; constructed < 2; constructed++) {
        struct lfp_config cfg = { .block_size = 48, .align = 16, .capacity = n };
        if (constructed)
            cfg.init = construct_nothing;
        cfg.mem_size = lfp_pool_bytes(&cfg);
        /* The buffer's pages, from map, and two after them. */
        const size_t pages = (ps - 32 + cfg.mem_size + ps - 1) / ps, span = pages + 2;
        char *map = mmap(NULL, span * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                         -1, 0);
        REQUIRE(map != MAP_FAILED);
        madvise(map, span * ps, MADV_NOHUGEPAGE); /* a huge page would fill them all */
        cfg.mem = map + ps - 32;
        lfp_pool *pool = create_pool(&cfg);
        const size_t stride = stats_of(pool).stride;

        /* One block: its run is resident, not the pool. */
        void *one = lfp_alloc(pool);
        REQUIRE(one != NULL);
        CHECK(resident_pages(map, span * ps) <= (64 << 10) / ps + 2);
        CHECK_EQ(lfp_free(pool, one), LFP_OK);

        void **v = malloc(n * sizeof *v);
        REQUIRE(v != NULL);
        CHECK_EQ(alloc_all(pool, v, n), n);
        if (constructed) {
            REQUIRE(stride >= 64); /* the first links lie past the first page */
            CHECK_EQ(resident_pages(map, ps), 0);
        } else {
            REQUIRE(stride == 48 && cfg.mem_size == n * 48);
            char *tail = map + (pages - 1) * ps; /* the last block's last 32 bytes */
            REQUIRE((char *)cfg.mem + cfg.mem_size == tail + 32);
            CHECK_EQ(resident_pages(tail, (span - pages + 1) * ps), 0);
        }
        CHECK_EQ(resident_pages(map + pages * ps, (span - pages) * ps), 0);
        free_all(pool, v, n);
        free(v);
        verify_and_destroy(pool, 0);
        munmap(map, span * ps);
    }
}

static void caller_memory_pool_with_init_fits_in_pool_bytes(void)
{
    enum { CAP = 64, BS = 48 };
    for (size_t m = 0; m < 2; m++) {
        int before = atomic_load(&check_failures);
        struct ctor_log *log = new_log(BS, CAP + 1);
        struct lfp_config cfg = {0};
        cfg.block_size = BS;
        cfg.capacity = CAP;
        cfg.flags = cache_modes[m];
        cfg.init = ctor;
        cfg.fini = dtor;
        cfg.arg = log;
        size_t bytes = lfp_pool_bytes(&cfg);
        CHECK(bytes >= LFP_POOL_BYTES(CAP, BS, 0));
        void *buf = NULL;
        REQUIRE(posix_memalign(&buf, alignof(max_align_t), bytes) == 0);
        cfg.mem = buf;
        cfg.mem_size = bytes;
        lfp_pool *pool = create_pool(&cfg);
        void *v[CAP + 1];
        CHECK_EQ(alloc_all(pool, v, CAP + 1), CAP);
        size_t outside = 0;
        for (size_t i = 0; i < CAP; i++)
            outside += (uintptr_t)v[i] < (uintptr_t)buf ||
                       (uintptr_t)v[i] + BS > (uintptr_t)buf + bytes;
        CHECK_EQ(outside, 0);
        check_pattern_survives_free_and_realloc(pool, v, CAP, BS);
        verify_and_destroy(pool, 0);
        CHECK_EQ(log->inits, CAP);
        CHECK_EQ(log->finis, CAP);
        free(buf);
        free_log(log);
        note_failures(before, "caller memory with init", cache_modes[m]);
    }
}

static void pool_bytes_macro_equals_the_function_for_configs_without_init(void)
{
    static const size_t sizes[] = {1, 16, 24, 100, 1000};
    static const size_t aligns[] = {0, 8, 16, 64, 4096};
    static const size_t caps[] = {1, 3, 1000};
    for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++)
        for (size_t a = 0; a < sizeof aligns / sizeof aligns[0]; a++)
            for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
                struct lfp_config cfg = {0};
                cfg.block_size = sizes[z];
                cfg.align = aligns[a];
                cfg.capacity = caps[c];
                size_t f = lfp_pool_bytes(&cfg);
                CHECK_EQ(f, LFP_POOL_BYTES(caps[c], sizes[z], aligns[a]));
                CHECK_EQ(f, caps[c] * expected_stride(sizes[z], aligns[a]));
                if (f != LFP_POOL_BYTES(caps[c], sizes[z], aligns[a]))
                    fprintf(stderr, "  ... %zu blocks of %zu, align %zu\n", caps[c],
                            sizes[z], aligns[a]);
            }
}

static void owns_is_true_exactly_for_starts_of_this_pools_carved_blocks(void)
{
    enum { CAP = 64, BS = 48 };
    for (size_t m = 0; m < 2; m++) {
        int before = atomic_load(&check_failures);
        lfp_pool *pool = make_pool(BS, 0, CAP, cache_modes[m]);
        lfp_pool *other = make_pool(BS, 0, CAP, cache_modes[m]);
        size_t stride = stats_of(pool).stride;
        void *v[CAP];
        REQUIRE(alloc_all(pool, v, CAP) == CAP);
        void *w = lfp_alloc(other);
        REQUIRE(w != NULL);

        size_t wrong = 0;
        for (size_t i = 0; i < CAP; i++) {
            char *p = v[i];
            wrong += lfp_owns(pool, p) != 1;
            wrong += lfp_owns(pool, p + 1) != 0;
            wrong += lfp_owns(pool, p + 8) != 0;
            wrong += lfp_owns(pool, p + 16) != 0;
            wrong += lfp_owns(pool, p + stride / 2) != 0;
            wrong += lfp_owns(pool, p + stride - 1) != 0;
            wrong += lfp_owns(other, p) != 0;
        }
        CHECK_EQ(wrong, 0);
        CHECK_EQ(lfp_owns(other, w), 1);
        CHECK_EQ(lfp_owns(pool, w), 0);

        qsort(v, CAP, sizeof v[0], cmp_addr);
        CHECK_EQ(lfp_owns(pool, (char *)v[CAP - 1] + stride), 0); /* one past the end */
        CHECK_EQ(lfp_owns(pool, (char *)v[0] - stride), 0);       /* one below */
        CHECK_EQ(lfp_owns(pool, NULL), 0);
        int on_stack = 0;
        CHECK_EQ(lfp_owns(pool, &on_stack), 0);
        void *heap = malloc(BS);
        REQUIRE(heap != NULL);
        CHECK_EQ(lfp_owns(pool, heap), 0);
        free(heap);

        /* Free blocks are still the pool's blocks. */
        for (size_t i = 0; i < CAP; i += 2)
            CHECK_EQ(lfp_free(pool, v[i]), LFP_OK);
        wrong = 0;
        for (size_t i = 0; i < CAP; i++)
            wrong += lfp_owns(pool, v[i]) != 1;
        CHECK_EQ(wrong, 0);
        lfp_thread_flush();
        wrong = 0;
        for (size_t i = 0; i < CAP; i++)
            wrong += lfp_owns(pool, v[i]) != 1;
        CHECK_EQ(wrong, 0);

        for (size_t i = 1; i < CAP; i += 2)
            CHECK_EQ(lfp_free(pool, v[i]), LFP_OK);
        CHECK_EQ(lfp_free(other, w), LFP_OK);
        verify_and_destroy(pool, 0);
        verify_and_destroy(other, 0);
        note_failures(before, "lfp_owns", cache_modes[m]);
    }
}

static void stats_keep_a_copy_of_the_name_and_count_blocks_in_use_exactly(void)
{
    enum { N = 40 };
    for (size_t m = 0; m < 2; m++) {
        int before = atomic_load(&check_failures);
        char name[32];
        strcpy(name, "connections");
        struct lfp_config cfg = {0};
        cfg.block_size = 128;
        cfg.capacity = 2048;
        cfg.flags = cache_modes[m];
        cfg.name = name;
        lfp_pool *pool = create_pool(&cfg);
        memset(name, 'X', sizeof name - 1);
        name[sizeof name - 1] = '\0';
        struct lfp_stats s = stats_of(pool);
        REQUIRE(s.name != NULL);
        CHECK(s.name != name);
        CHECK(strcmp(s.name, "connections") == 0);

        void *v[N];
        for (size_t i = 0; i < N; i++) {
            v[i] = lfp_alloc(pool);
            REQUIRE(v[i] != NULL);
            CHECK_EQ(stats_of(pool).blocks_in_use, i + 1);
        }
        for (size_t i = 0; i < N / 2; i++) {
            CHECK_EQ(lfp_free(pool, v[i]), LFP_OK);
            CHECK_EQ(stats_of(pool).blocks_in_use, N - i - 1);
        }
        for (size_t i = 0; i < 5; i++) {
            v[i] = lfp_alloc(pool);
            REQUIRE(v[i] != NULL);
        }
        s = stats_of(pool);
        CHECK_EQ(s.blocks_in_use, N / 2 + 5);
        CHECK(s.blocks_in_use_max >= N);
        if (cache_modes[m] & LFP_NO_CACHE) {
            /* The peak, N, or the depot's stack count if more (then a
             * thread that moved CPUs may have carved on its new one). */
            CHECK(s.blocks_in_use_max <= (N > depot_stacks() ? N : depot_stacks()));
            CHECK_EQ(s.blocks_cached, 0);
        } else {
            CHECK(s.blocks_cached <= 2 * (size_t)s.cache_size);
        }
        CHECK(s.blocks_carved >= N);
        CHECK(s.blocks_carved <= s.blocks_total);
        CHECK_EQ(lfp_pool_verify(pool), LFP_OK);
        for (size_t i = 0; i < 5; i++)
            CHECK_EQ(lfp_free(pool, v[i]), LFP_OK);
        for (size_t i = N / 2; i < N; i++)
            CHECK_EQ(lfp_free(pool, v[i]), LFP_OK);
        s = stats_of(pool);
        CHECK_EQ(s.blocks_in_use, 0);
        CHECK(s.blocks_in_use_max >= N);
        lfp_thread_flush();
        CHECK_EQ(stats_of(pool).blocks_cached, 0);
        verify_and_destroy(pool, 0);
        note_failures(before, "stats", cache_modes[m]);
    }
}

static void alloc_bulk_gives_distinct_blocks_and_stops_short_with_enobufs(void)
{
    enum { CAP = 100, BS = 56 };
    for (size_t m = 0; m < 2; m++) {
        int before = atomic_load(&check_failures);
        lfp_pool *pool = make_pool(BS, 0, CAP, cache_modes[m]);
        void *v[CAP + 30];
        memset(v, 0, sizeof v);
        CHECK_EQ(lfp_alloc_bulk(pool, v, 60), 60);
        CHECK_EQ(stats_of(pool).blocks_in_use, 60);
        errno = 0;
        CHECK_EQ(lfp_alloc_bulk(pool, v + 60, 60), CAP - 60);
        CHECK_EQ(errno, ENOBUFS);
        CHECK(ranges_disjoint(v, CAP, BS));
        size_t foreign = 0;
        for (size_t i = 0; i < CAP; i++)
            foreign += lfp_owns(pool, v[i]) != 1;
        CHECK_EQ(foreign, 0);
        CHECK_EQ(stats_of(pool).blocks_in_use, CAP);
        errno = 0;
        CHECK_EQ(lfp_alloc_bulk(pool, v + CAP, 5), 0);
        CHECK_EQ(errno, ENOBUFS);
        CHECK_EQ(lfp_alloc_bulk(pool, v + CAP, 0), 0);
        CHECK_EQ(lfp_pool_verify(pool), LFP_OK);
        CHECK_EQ(lfp_free_bulk(pool, v, CAP), LFP_OK);
        CHECK_EQ(stats_of(pool).blocks_in_use, 0);
        /* Everything again in one call. */
        CHECK_EQ(lfp_alloc_bulk(pool, v, CAP), CAP);
        CHECK(ranges_disjoint(v, CAP, BS));
        CHECK_EQ(lfp_free_bulk(pool, v, CAP), LFP_OK);
        verify_and_destroy(pool, 0);
        note_failures(before, "lfp_alloc_bulk", cache_modes[m]);
    }
}

static void free_bulk_frees_every_block_and_skips_null_entries(void)
{
    enum { N = 200 };
    for (size_t m = 0; m < 2; m++) {
        int before = atomic_load(&check_failures);
        lfp_pool *pool = make_pool(64, 0, 1024, cache_modes[m]);
        void *v[N];
        REQUIRE(lfp_alloc_bulk(pool, v, N) == N);
        CHECK_EQ(lfp_free_bulk(pool, v, 50), LFP_OK);
        CHECK_EQ(stats_of(pool).blocks_in_use, N - 50);
        /* Holes in the array are skipped. */
        for (size_t i = 50; i < N; i += 3)
            v[i] = NULL;
        size_t held = 0;
        for (size_t i = 50; i < N; i++)
            held += v[i] != NULL;
        size_t skipped = (N - 50) - held;
        CHECK_EQ(lfp_free_bulk(pool, v + 50, N - 50), LFP_OK);
        CHECK_EQ(stats_of(pool).blocks_in_use, skipped);
        /* The skipped ones are still ours; an all-NULL array frees nothing. */
        void *nulls[4] = {NULL, NULL, NULL, NULL};
        CHECK_EQ(lfp_free_bulk(pool, nulls, 4), LFP_OK);
        CHECK_EQ(stats_of(pool).blocks_in_use, skipped);
        verify_and_destroy(pool, skipped);
        note_failures(before, "lfp_free_bulk", cache_modes[m]);
    }
}

static void strerror_describes_every_code_distinctly_and_survives_unknown_codes(void)
{
    static const int codes[] = {LFP_OK,       LFP_EINVAL,  LFP_ENOMEM,   LFP_EEXHAUSTED,
                                LFP_EALIGN,   LFP_EFOREIGN, LFP_EDOUBLE, LFP_ECORRUPT,
                                LFP_ELEAK};
    enum { NC = sizeof codes / sizeof codes[0] };
    const char *s[NC];
    for (size_t i = 0; i < NC; i++) {
        s[i] = lfp_strerror(codes[i]);
        REQUIRE(s[i] != NULL);
        CHECK(s[i][0] != '\0');
    }
    for (size_t i = 0; i < NC; i++)
        for (size_t j = i + 1; j < NC; j++)
            if (strcmp(s[i], s[j]) == 0) {
                CHECK(strcmp(s[i], s[j]) != 0);
                fprintf(stderr, "  ... codes %d and %d both read \"%s\"\n", codes[i],
                        codes[j], s[i]);
            }
    static const int unknown[] = {999, -1, LFP_ELEAK + 1, 1 << 30};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *u = lfp_strerror(unknown[i]);
        CHECK(u != NULL);
        if (u)
            CHECK(u[0] != '\0');
    }
}

static void null_pool_destroy_and_null_block_free_do_nothing(void)
{
    CHECK_EQ(lfp_pool_destroy(NULL), 0);
    for (size_t m = 0; m < 2; m++) {
        lfp_pool *pool = make_pool(32, 0, 128, cache_modes[m]);
        void *p = lfp_alloc(pool);
        REQUIRE(p != NULL);
        struct lfp_stats a = stats_of(pool);
        CHECK_EQ(lfp_free(pool, NULL), LFP_OK);
        struct lfp_stats b = stats_of(pool);
        CHECK_EQ(b.blocks_in_use, a.blocks_in_use);
        CHECK_EQ(b.blocks_cached, a.blocks_cached);
        CHECK_EQ(lfp_free(pool, p), LFP_OK);
        verify_and_destroy(pool, 0);
    }
}

static void destroy_returns_the_exact_number_of_blocks_still_in_use(void)
{
    for (size_t m = 0; m < 2; m++) {
        int before = atomic_load(&check_failures);
        lfp_pool *pool = make_pool(80, 0, 1000, cache_modes[m]);
        void *v[7];
        CHECK_EQ(alloc_all(pool, v, 7), 7);
        CHECK_EQ(lfp_free(pool, v[1]), LFP_OK);
        CHECK_EQ(lfp_free(pool, v[4]), LFP_OK);
        CHECK_EQ(lfp_free(pool, v[6]), LFP_OK);
        verify_and_destroy(pool, 4);

        /* Every block in use, none in use. */
        pool = make_pool(80, 0, 33, cache_modes[m]);
        void *w[33];
        CHECK_EQ(alloc_all(pool, w, 33), 33);
        verify_and_destroy(pool, 33);
        pool = make_pool(80, 0, 33, cache_modes[m]);
        verify_and_destroy(pool, 0);
        note_failures(before, "destroy's count", cache_modes[m]);
    }
}

static void checked_pool_hands_out_every_block_once(void)
{
    lfp_pool *pool = make_pool(64, 0, 256, LFP_CHECKED);
    void *v[256];
    CHECK_EQ(alloc_all(pool, v, 256), 256);
    CHECK(ranges_disjoint(v, 256, 64));
    free_all(pool, v, 256);
    verify_and_destroy(pool, 0);
}

static void growable_flag_with_caller_memory_is_refused(void)
{
    static _Alignas(64) unsigned char buf[256 * 64];
    struct lfp_config cfg = {0};
    cfg.block_size = 64;
    cfg.capacity = 256;
    cfg.max_blocks = 4096;
    cfg.flags = LFP_GROWABLE;
    cfg.mem = buf;
    cfg.mem_size = sizeof buf;
    lfp_pool *pool = (lfp_pool *)&cfg;
    CHECK_EQ(lfp_pool_create(&cfg, &pool), LFP_EINVAL);
    CHECK(pool == NULL);
}

static void trim_of_a_fixed_pool_releases_nothing_and_keeps_it_usable(void)
{
    for (size_t m = 0; m < 2; m++) {
        lfp_pool *pool = make_pool(256, 0, 512, cache_modes[m]);
        void *v[512];
        CHECK_EQ(alloc_all(pool, v, 512), 512);
        free_all(pool, v, 256);
        CHECK_EQ(lfp_pool_trim(pool), 0);
        CHECK_EQ(stats_of(pool).blocks_in_use, 256);
        free_all(pool, v + 256, 256);
        lfp_thread_flush();
        CHECK_EQ(lfp_pool_trim(pool), 0);
        CHECK_EQ(alloc_all(pool, v, 512), 512);
        free_all(pool, v, 512);
        verify_and_destroy(pool, 0);
    }
}

static void thread_flush_keeps_blocks_available_to_the_same_thread(void)
{
    lfp_thread_flush(); /* nothing cached anywhere: harmless */
    lfp_pool *pool = make_pool(64, 0, 2048, 0);
    void *v[300];
    CHECK_EQ(alloc_all(pool, v, 300), 300);
    free_all(pool, v, 300);
    CHECK(stats_of(pool).blocks_cached > 0);
    lfp_thread_flush();
    struct lfp_stats s = stats_of(pool);
    CHECK_EQ(s.blocks_cached, 0);
    CHECK_EQ(s.blocks_in_use, 0);
    CHECK_EQ(lfp_pool_verify(pool), LFP_OK);
    lfp_thread_flush();
    void **all = calloc(2049, sizeof *all);
    REQUIRE(all != NULL);
    CHECK_EQ(alloc_all(pool, all, 2049), 2048);
    free_all(pool, all, 2048);
    free(all);
    verify_and_destroy(pool, 0);
}

int main(void)
{
    RUN(create_then_destroy_round_trip_reports_the_configuration);
    RUN(explicit_cache_size_is_honoured_and_small_pools_get_a_smaller_cache);
    RUN(the_default_cache_holds_a_fixed_number_of_bytes_within_bounds);
    RUN(every_block_is_aligned_to_the_configured_alignment);
    RUN(stride_is_block_size_rounded_up_to_align_and_at_least_two_pointers);
    RUN(small_block_sizes_hold_their_bytes_without_overlap);
    RUN(allocating_until_exhausted_gives_capacity_disjoint_blocks_then_enobufs);
    RUN(a_freed_block_is_the_next_one_allocated_on_the_same_thread);
    RUN(zero_flag_returns_zeroed_blocks_even_after_they_were_dirtied);
    RUN(init_runs_exactly_once_per_carved_block);
    RUN(constructed_state_survives_free_and_realloc);
    RUN(with_init_the_whole_block_keeps_its_bytes_while_free);
    RUN(fini_runs_once_per_carved_block_at_destroy);
    RUN(zero_flag_with_an_init_constructor_is_refused);
    RUN(caller_memory_pool_keeps_every_block_inside_the_buffer_and_leaves_it_alone);
    RUN(a_fixed_pools_carve_faults_in_only_the_pages_its_links_are_in);
    RUN(caller_memory_pool_with_init_fits_in_pool_bytes);
    RUN(pool_bytes_macro_equals_the_function_for_configs_without_init);
    RUN(owns_is_true_exactly_for_starts_of_this_pools_carved_blocks);
    RUN(stats_keep_a_copy_of_the_name_and_count_blocks_in_use_exactly);
    RUN(alloc_bulk_gives_distinct_blocks_and_stops_short_with_enobufs);
    RUN(free_bulk_frees_every_block_and_skips_null_entries);
    RUN(strerror_describes_every_code_distinctly_and_survives_unknown_codes);
    RUN(null_pool_destroy_and_null_block_free_do_nothing);
    RUN(destroy_returns_the_exact_number_of_blocks_still_in_use);
    RUN(checked_pool_hands_out_every_block_once);
    RUN(growable_flag_with_caller_memory_is_refused);
    RUN(trim_of_a_fixed_pool_releases_nothing_and_keeps_it_usable);
    RUN(thread_flush_keeps_blocks_available_to_the_same_thread);
    return check_done();
}
