/* SPDX-License-Identifier: MIT */
/*
 * Every bad input gets its documented answer and leaves the pool as it was.
 *
 * Each case runs against the same fixture: a lazily carved pool over its own
 * mapping, a pool over caller memory (whose address range the test knows)
 * and an unrelated pool. Before a case the fixture holds a few blocks of each
 * pool and takes their statistics; after the bad call it checks the return
 * value (and errno where documented), that both pools verify, that their
 * statistics did not move, that the held blocks can still be freed and that
 * the pools still allocate. The matrix of (function, input, expected answer)
 * is printed as the cases run.
 */
#include <errno.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lfpool.h>

#include "check.h"

enum { HELD = 4 };
enum { BIG_CAP = 100000, MEM_CAP = 4096, BS = 48 };

struct fixture {
    lfp_pool *big;   /* own mapping, lazily carved */
    lfp_pool *mem;   /* caller memory: blocks lie in [buf, buf + bytes) */
    lfp_pool *other; /* an unrelated pool */
    void *buf;
    size_t bytes;
    size_t stride;
    void *held[3][HELD];
};

static struct fixture fx;

static lfp_pool **fixture_pools(void)
{
    static lfp_pool *p[3];
    p[0] = fx.big;
    p[1] = fx.mem;
    p[2] = fx.other;
    return p;
}

static const char *err_name(int e)
{
    switch (e) {
    case LFP_OK: return "0";
    case LFP_EINVAL: return "LFP_EINVAL";
    case LFP_ENOMEM: return "LFP_ENOMEM";
    case LFP_EEXHAUSTED: return "LFP_EEXHAUSTED";
    case LFP_EALIGN: return "LFP_EALIGN";
    case LFP_EFOREIGN: return "LFP_EFOREIGN";
    case LFP_EDOUBLE: return "LFP_EDOUBLE";
    case LFP_ECORRUPT: return "LFP_ECORRUPT";
    case LFP_ELEAK: return "LFP_ELEAK";
    default: return "(unknown code)";
    }
}

static const char *errno_name(int e)
{
    switch (e) {
    case 0: return "0";
    case EINVAL: return "EINVAL";
    case ENOBUFS: return "ENOBUFS";
    case ENOMEM: return "ENOMEM";
    default: return "(other errno)";
    }
}

static void fixture_setup(void)
{
    struct lfp_config cfg = {0};
    cfg.block_size = BS;
    cfg.capacity = BIG_CAP;
    cfg.name = "big";
    REQUIRE(lfp_pool_create(&cfg, &fx.big) == LFP_OK);

    memset(&cfg, 0, sizeof cfg);
    cfg.block_size = BS;
    cfg.capacity = MEM_CAP;
    cfg.name = "mem";
    fx.bytes = lfp_pool_bytes(&cfg);
    REQUIRE(fx.bytes == LFP_POOL_BYTES(MEM_CAP, BS, 0));
    REQUIRE(posix_memalign(&fx.buf, 4096, fx.bytes) == 0);
    cfg.mem = fx.buf;
    cfg.mem_size = fx.bytes;
    REQUIRE(lfp_pool_create(&cfg, &fx.mem) == LFP_OK);

    memset(&cfg, 0, sizeof cfg);
    cfg.block_size = BS;
    cfg.capacity = 256;
    cfg.name = "other";
    REQUIRE(lfp_pool_create(&cfg, &fx.other) == LFP_OK);

    fx.stride = stats_of(fx.big).stride;
    REQUIRE(fx.stride == stats_of(fx.mem).stride);
    REQUIRE(fx.stride >= BS);
}

static void fixture_teardown(void)
{
    lfp_pool **p = fixture_pools();
    for (int i = 0; i < 3; i++)
        verify_and_destroy(p[i], 0);
    free(fx.buf);
}

/* ---- the cases ------------------------------------------------------ */

enum kind {
    RET_CODE,  /* the call returns an lfp_error code */
    RET_VALUE, /* the call returns a plain number (a count, 0/1, NULL as 0) */
};

struct bad_case {
    const char *func;
    const char *input;
    enum kind kind;
    long expect;      /* the expected return */
    int expect_errno; /* -1: errno is not part of the contract */
    long (*call)(void);
};

/* A rejected create must leave *out NULL (it starts as garbage). */
static long create_with(const struct lfp_config *cfg)
{
    lfp_pool *out = (lfp_pool *)&fx; /* any non-NULL garbage */
    int rc = lfp_pool_create(cfg, &out);
    CHECK(out == NULL);
    if (rc == LFP_OK && out)
        lfp_pool_destroy(out);
    return rc;
}

static struct lfp_config base_cfg(void)
{
    struct lfp_config cfg = {0};
    cfg.block_size = 64;
    cfg.capacity = 100;
    return cfg;
}

static long create_null_cfg(void)
{
    return create_with(NULL);
}

static long create_null_out(void)
{
    struct lfp_config cfg = base_cfg();
    return lfp_pool_create(&cfg, NULL);
}

static long create_block_size_0(void)
{
    struct lfp_config cfg = base_cfg();
    cfg.block_size = 0;
    return create_with(&cfg);
}

static long create_align(size_t align)
{
    struct lfp_config cfg = base_cfg();
    cfg.align = align;
    return create_with(&cfg);
}
static long create_align_3(void) { return create_align(3); }
static long create_align_6(void) { return create_align(6); }
static long create_align_24(void) { return create_align(24); }
static long create_align_2_pages(void)
{
    return create_align((size_t)sysconf(_SC_PAGESIZE) * 2);
}

static long create_capacity_0(void)
{
    struct lfp_config cfg = base_cfg();
    cfg.capacity = 0;
    return create_with(&cfg);
}

static long create_overflow_capacity(void)
{
    struct lfp_config cfg = base_cfg();
    cfg.capacity = SIZE_MAX / 8;
    cfg.block_size = 64;
    return create_with(&cfg);
}

static long create_overflow_block_size(void)
{
    struct lfp_config cfg = base_cfg();
    cfg.capacity = 2;
    cfg.block_size = SIZE_MAX - 3;
    return create_with(&cfg);
}

static long create_cache_too_big(void)
{
    struct lfp_config cfg = base_cfg();
    cfg.capacity = 100000;
    cfg.cache_size = LFP_CACHE_MAX + 1;
    return create_with(&cfg);
}

static void dummy_init(void *block, void *arg)
{
    (void)block;
    (void)arg;
}

static long create_zero_with_init(void)
{
    struct lfp_config cfg = base_cfg();
    cfg.flags = LFP_ZERO;
    cfg.init = dummy_init;
    return create_with(&cfg);
}

static long create_unknown_flag(void)
{
    struct lfp_config cfg = base_cfg();
    cfg.flags = 1u << 20;
    return create_with(&cfg);
}

static struct lfp_config growable_cfg(void)
{
    struct lfp_config cfg = base_cfg();
    cfg.flags = LFP_GROWABLE;
    cfg.capacity = 100;
    cfg.max_blocks = 1000;
    return cfg;
}

static long create_growable_with_mem(void)
{
    static _Alignas(64) unsigned char buf[100 * 64];
    struct lfp_config cfg = growable_cfg();
    cfg.mem = buf;
    cfg.mem_size = sizeof buf;
    return create_with(&cfg);
}

static long create_growable_max_below_capacity(void)
{
    struct lfp_config cfg = growable_cfg();
    cfg.max_blocks = 99;
    return create_with(&cfg);
}

static long create_growable_slab(size_t slab, size_t block_size)
{
    struct lfp_config cfg = growable_cfg();
    cfg.slab_size = slab;
    cfg.block_size = block_size;
    return create_with(&cfg);
}
static long create_growable_slab_not_pow2(void) { return create_growable_slab(100000, 64); }
static long create_growable_slab_32k(void) { return create_growable_slab(32768, 64); }
static long create_growable_slab_1t(void) { return create_growable_slab((size_t)1 << 40, 64); }
static long create_growable_slab_below_block(void)
{
    return create_growable_slab(65536, 65536 + 64);
}

/* Caller memory that must be left untouched by a refused create. */
static long create_over_buffer(size_t align, int with_init, size_t shrink, size_t offset,
                               int zero_size)
{
    struct lfp_config cfg = base_cfg();
    cfg.align = align;
    cfg.block_size = 100;
    cfg.capacity = 40;
    if (with_init)
        cfg.init = dummy_init;
    size_t need = lfp_pool_bytes(&cfg);
    REQUIRE(need > 0);
    size_t a = align ? align : alignof(max_align_t);
    size_t total = need + offset + a;
    unsigned char *raw = NULL;
    REQUIRE(posix_memalign((void **)&raw, a, total) == 0);
    memset(raw, 0xC3, total);
    cfg.mem = raw + offset;
    cfg.mem_size = zero_size ? 0 : need - shrink;
    long rc = create_with(&cfg);
    size_t touched = 0;
    for (size_t i = 0; i < total; i++)
        touched += raw[i] != 0xC3;
    CHECK_EQ(touched, 0);
    free(raw);
    return rc;
}
static long create_mem_one_byte_short(void) { return create_over_buffer(0, 0, 1, 0, 0); }
static long create_mem_one_byte_short_init(void) { return create_over_buffer(0, 1, 1, 0, 0); }
static long create_mem_misaligned_8_of_64(void) { return create_over_buffer(64, 0, 0, 8, 0); }
static long create_mem_misaligned_1(void) { return create_over_buffer(0, 0, 0, 1, 0); }
static long create_mem_size_0(void) { return create_over_buffer(0, 0, 0, 0, 1); }

/* lfp_free */
static long free_null_pool(void)
{
    return lfp_free(NULL, fx.held[0][0]);
}

static long free_other_pools_block(void)
{
    return lfp_free(fx.big, fx.held[2][0]);
}

static long free_mem_pools_block_to_big(void)
{
    return lfp_free(fx.big, fx.held[1][1]);
}

static long free_malloc_pointer(void)
{
    void *p = malloc(BS);
    REQUIRE(p != NULL);
    long rc = lfp_free(fx.big, p);
    free(p);
    return rc;
}

static long free_stack_address(void)
{
    alignas(64) char local[BS];
    memset(local, 0, sizeof local);
    return lfp_free(fx.big, local);
}

static long free_interior(lfp_pool *pool, void *block, size_t off)
{
    return lfp_free(pool, (char *)block + off);
}
static long free_plus_1(void) { return free_interior(fx.big, fx.held[0][1], 1); }
static long free_plus_8(void) { return free_interior(fx.big, fx.held[0][1], 8); }
static long free_plus_align(void)
{
    return free_interior(fx.big, fx.held[0][1], stats_of(fx.big).align);
}
static long free_plus_half_stride(void) { return free_interior(fx.big, fx.held[0][1], fx.stride / 2); }
static long free_misaligned(void) { return free_interior(fx.big, fx.held[0][2], fx.stride - 3); }
static long free_mem_interior(void) { return free_interior(fx.mem, fx.held[1][0], 16); }

static long free_mem_one_past_last(void)
{
    return lfp_free(fx.mem, (char *)fx.buf + (size_t)MEM_CAP * fx.stride);
}

static long free_mem_below_first(void)
{
    return lfp_free(fx.mem, (void *)((uintptr_t)fx.buf - fx.stride));
}

static long free_mem_far_below(void)
{
    return lfp_free(fx.mem, (void *)((uintptr_t)fx.buf - 1000 * fx.stride));
}

static long free_mem_uncarved(void)
{
    /* Inside the range, on a block boundary, but never carved. */
    REQUIRE(stats_of(fx.mem).blocks_carved < 4000);
    void *p = (char *)fx.buf + 4000 * fx.stride;
    CHECK_EQ(lfp_owns(fx.mem, p), 0);
    return lfp_free(fx.mem, p);
}

static long free_big_uncarved(void)
{
    /* Far above what a few allocations carve (runs of LFP_CARVE_BYTES). */
    REQUIRE(stats_of(fx.big).blocks_carved < 10000);
    void *p = (char *)fx.held[0][0] + 90000 * fx.stride;
    CHECK_EQ(lfp_owns(fx.big, p), 0);
    return lfp_free(fx.big, p);
}

static long free_big_uncarved_next(void)
{
    /* The block right after the highest carved one. */
    size_t carved = stats_of(fx.big).blocks_carved;
    REQUIRE(carved < BIG_CAP);
    uintptr_t hi = 0;
    for (int i = 0; i < HELD; i++)
        if ((uintptr_t)fx.held[0][i] > hi)
            hi = (uintptr_t)fx.held[0][i];
    /* Walk up from a carved block to the first block the pool disowns. */
    uintptr_t p = hi;
    while (lfp_owns(fx.big, (void *)p))
        p += fx.stride;
    CHECK(p - hi <= carved * fx.stride);
    return lfp_free(fx.big, (void *)p);
}

/* lfp_free_bulk: all or nothing */
static long free_bulk_bad_at(size_t pos)
{
    void *v[HELD + 1];
    size_t k = 0;
    for (size_t i = 0; i < HELD + 1; i++)
        v[i] = i == pos ? (char *)fx.held[0][0] + 8 : fx.held[0][k++];
    return lfp_free_bulk(fx.big, v, HELD + 1);
}
static long free_bulk_bad_first(void) { return free_bulk_bad_at(0); }
static long free_bulk_bad_middle(void) { return free_bulk_bad_at(2); }
static long free_bulk_bad_last(void) { return free_bulk_bad_at(HELD); }

static long free_bulk_other_pools_block(void)
{
    void *v[HELD + 1];
    memcpy(v, fx.held[0], sizeof fx.held[0]);
    v[HELD] = fx.held[2][3];
    return lfp_free_bulk(fx.big, v, HELD + 1);
}

static long free_bulk_null_array(void) { return lfp_free_bulk(fx.big, NULL, 3); }
static long free_bulk_null_pool(void) { return lfp_free_bulk(NULL, fx.held[0], HELD); }
static long free_bulk_n_0(void) { return lfp_free_bulk(fx.big, fx.held[0], 0); }
static long free_bulk_null_array_n_0(void) { return lfp_free_bulk(fx.big, NULL, 0); }

/* lfp_alloc, lfp_alloc_bulk */
static long alloc_null_pool(void) { return lfp_alloc(NULL) != NULL; }

static long alloc_bulk_null_pool(void)
{
    void *v[5] = {0};
    return (long)lfp_alloc_bulk(NULL, v, 5);
}

static long alloc_bulk_null_array(void) { return (long)lfp_alloc_bulk(fx.big, NULL, 5); }

/* queries */
static long stats_null_pool(void)
{
    struct lfp_stats s;
    return lfp_pool_stats(NULL, &s);
}
static long stats_null_out(void) { return lfp_pool_stats(fx.big, NULL); }
static long owns_null_pool(void) { return lfp_owns(NULL, fx.held[0][0]); }
static long owns_null_pointer(void) { return lfp_owns(fx.big, NULL); }
static long verify_null(void) { return lfp_pool_verify(NULL); }
static long trim_null(void) { return (long)lfp_pool_trim(NULL); }
static long destroy_null(void) { return (long)lfp_pool_destroy(NULL); }
static long bytes_null(void) { return (long)lfp_pool_bytes(NULL); }

static long bytes_of(size_t block_size, size_t capacity, size_t align)
{
    struct lfp_config cfg = {0};
    cfg.block_size = block_size;
    cfg.capacity = capacity;
    cfg.align = align;
    return (long)lfp_pool_bytes(&cfg);
}
static long bytes_overflow_capacity(void) { return bytes_of(64, SIZE_MAX / 8, 0); }
static long bytes_overflow_block_size(void) { return bytes_of(SIZE_MAX - 3, 2, 0); }
static long bytes_block_size_0(void) { return bytes_of(0, 10, 0); }
static long bytes_bad_align(void) { return bytes_of(64, 10, 24); }
static long bytes_growable(void)
{
    struct lfp_config cfg = {0};
    cfg.block_size = 64;
    cfg.capacity = 10;
    cfg.flags = LFP_GROWABLE;
    return (long)lfp_pool_bytes(&cfg);
}

static const struct bad_case cases[] = {
    {"lfp_pool_create", "cfg NULL", RET_CODE, LFP_EINVAL, -1, create_null_cfg},
    {"lfp_pool_create", "out NULL", RET_CODE, LFP_EINVAL, -1, create_null_out},
    {"lfp_pool_create", "block_size 0", RET_CODE, LFP_EINVAL, -1, create_block_size_0},
    {"lfp_pool_create", "align 3", RET_CODE, LFP_EINVAL, -1, create_align_3},
    {"lfp_pool_create", "align 6", RET_CODE, LFP_EINVAL, -1, create_align_6},
    {"lfp_pool_create", "align 24", RET_CODE, LFP_EINVAL, -1, create_align_24},
    {"lfp_pool_create", "align 2 pages", RET_CODE, LFP_EINVAL, -1, create_align_2_pages},
    {"lfp_pool_create", "capacity 0 (fixed pool)", RET_CODE, LFP_EINVAL, -1, create_capacity_0},
    {"lfp_pool_create", "capacity SIZE_MAX/8 x 64 B overflows", RET_CODE, LFP_EINVAL, -1,
     create_overflow_capacity},
    {"lfp_pool_create", "block_size SIZE_MAX-3 x 2 overflows", RET_CODE, LFP_EINVAL, -1,
     create_overflow_block_size},
    {"lfp_pool_create", "cache_size LFP_CACHE_MAX+1", RET_CODE, LFP_EINVAL, -1,
     create_cache_too_big},
    {"lfp_pool_create", "LFP_ZERO with init", RET_CODE, LFP_EINVAL, -1, create_zero_with_init},
    {"lfp_pool_create", "unknown flag 1<<20", RET_CODE, LFP_EINVAL, -1, create_unknown_flag},
    {"lfp_pool_create", "LFP_GROWABLE with caller memory", RET_CODE, LFP_EINVAL, -1,
     create_growable_with_mem},
    {"lfp_pool_create", "LFP_GROWABLE, max_blocks < capacity", RET_CODE, LFP_EINVAL, -1,
     create_growable_max_below_capacity},
    {"lfp_pool_create", "LFP_GROWABLE, slab_size 100000", RET_CODE, LFP_EINVAL, -1,
     create_growable_slab_not_pow2},
    {"lfp_pool_create", "LFP_GROWABLE, slab_size 32 KiB", RET_CODE, LFP_EINVAL, -1,
     create_growable_slab_32k},
    {"lfp_pool_create", "LFP_GROWABLE, slab_size 1 TiB", RET_CODE, LFP_EINVAL, -1,
     create_growable_slab_1t},
    {"lfp_pool_create", "LFP_GROWABLE, slab smaller than a block", RET_CODE, LFP_EINVAL, -1,
     create_growable_slab_below_block},
    {"lfp_pool_create", "mem of lfp_pool_bytes-1", RET_CODE, LFP_EINVAL, -1,
     create_mem_one_byte_short},
    {"lfp_pool_create", "mem of lfp_pool_bytes-1, with init", RET_CODE, LFP_EINVAL, -1,
     create_mem_one_byte_short_init},
    {"lfp_pool_create", "mem at +8 for align 64", RET_CODE, LFP_EALIGN, -1,
     create_mem_misaligned_8_of_64},
    {"lfp_pool_create", "mem at +1, default align", RET_CODE, LFP_EALIGN, -1,
     create_mem_misaligned_1},
    {"lfp_pool_create", "mem set, mem_size 0", RET_CODE, LFP_EINVAL, -1, create_mem_size_0},

    {"lfp_free", "pool NULL", RET_CODE, LFP_EINVAL, -1, free_null_pool},
    {"lfp_free", "another pool's block", RET_CODE, LFP_EFOREIGN, -1, free_other_pools_block},
    {"lfp_free", "caller-memory pool's block", RET_CODE, LFP_EFOREIGN, -1,
     free_mem_pools_block_to_big},
    {"lfp_free", "malloc'd pointer", RET_CODE, LFP_EFOREIGN, -1, free_malloc_pointer},
    {"lfp_free", "stack address", RET_CODE, LFP_EFOREIGN, -1, free_stack_address},
    {"lfp_free", "block + 1", RET_CODE, LFP_EFOREIGN, -1, free_plus_1},
    {"lfp_free", "block + 8", RET_CODE, LFP_EFOREIGN, -1, free_plus_8},
    {"lfp_free", "block + align (aligned, interior)", RET_CODE, LFP_EFOREIGN, -1, free_plus_align},
    {"lfp_free", "block + stride/2", RET_CODE, LFP_EFOREIGN, -1, free_plus_half_stride},
    {"lfp_free", "block + stride-3 (misaligned)", RET_CODE, LFP_EFOREIGN, -1, free_misaligned},
    {"lfp_free", "caller-memory block + 16", RET_CODE, LFP_EFOREIGN, -1, free_mem_interior},
    {"lfp_free", "one past the last block", RET_CODE, LFP_EFOREIGN, -1, free_mem_one_past_last},
    {"lfp_free", "one block below the first", RET_CODE, LFP_EFOREIGN, -1, free_mem_below_first},
    {"lfp_free", "1000 blocks below the first", RET_CODE, LFP_EFOREIGN, -1, free_mem_far_below},
    {"lfp_free", "uncarved block (caller memory)", RET_CODE, LFP_EFOREIGN, -1, free_mem_uncarved},
    {"lfp_free", "uncarved block, first + 90000 strides", RET_CODE, LFP_EFOREIGN, -1,
     free_big_uncarved},
    {"lfp_free", "first uncarved block above the carved", RET_CODE, LFP_EFOREIGN, -1,
     free_big_uncarved_next},

    {"lfp_free_bulk", "bad pointer first of 5", RET_CODE, LFP_EFOREIGN, -1, free_bulk_bad_first},
    {"lfp_free_bulk", "bad pointer third of 5", RET_CODE, LFP_EFOREIGN, -1, free_bulk_bad_middle},
    {"lfp_free_bulk", "bad pointer last of 5", RET_CODE, LFP_EFOREIGN, -1, free_bulk_bad_last},
    {"lfp_free_bulk", "another pool's block last of 5", RET_CODE, LFP_EFOREIGN, -1,
     free_bulk_other_pools_block},
    {"lfp_free_bulk", "array NULL, n 3", RET_CODE, LFP_EINVAL, -1, free_bulk_null_array},
    {"lfp_free_bulk", "pool NULL", RET_CODE, LFP_EINVAL, -1, free_bulk_null_pool},
    {"lfp_free_bulk", "n 0", RET_CODE, LFP_OK, -1, free_bulk_n_0},
    {"lfp_free_bulk", "array NULL, n 0", RET_CODE, LFP_OK, -1, free_bulk_null_array_n_0},

    {"lfp_alloc", "pool NULL (NULL returned)", RET_VALUE, 0, EINVAL, alloc_null_pool},
    {"lfp_alloc_bulk", "pool NULL", RET_VALUE, 0, EINVAL, alloc_bulk_null_pool},
    {"lfp_alloc_bulk", "array NULL, n 5", RET_VALUE, 0, EINVAL, alloc_bulk_null_array},

    {"lfp_pool_stats", "pool NULL", RET_CODE, LFP_EINVAL, -1, stats_null_pool},
    {"lfp_pool_stats", "out NULL", RET_CODE, LFP_EINVAL, -1, stats_null_out},
    {"lfp_owns", "pool NULL", RET_VALUE, 0, -1, owns_null_pool},
    {"lfp_owns", "pointer NULL", RET_VALUE, 0, -1, owns_null_pointer},
    {"lfp_pool_verify", "pool NULL", RET_CODE, LFP_EINVAL, -1, verify_null},
    {"lfp_pool_trim", "pool NULL", RET_VALUE, 0, -1, trim_null},
    {"lfp_pool_destroy", "pool NULL", RET_VALUE, 0, -1, destroy_null},
    {"lfp_pool_bytes", "cfg NULL", RET_VALUE, 0, -1, bytes_null},
    {"lfp_pool_bytes", "capacity SIZE_MAX/8 x 64 B", RET_VALUE, 0, -1, bytes_overflow_capacity},
    {"lfp_pool_bytes", "block_size SIZE_MAX-3 x 2", RET_VALUE, 0, -1, bytes_overflow_block_size},
    {"lfp_pool_bytes", "block_size 0", RET_VALUE, 0, -1, bytes_block_size_0},
    {"lfp_pool_bytes", "align 24", RET_VALUE, 0, -1, bytes_bad_align},
    {"lfp_pool_bytes", "LFP_GROWABLE (no caller memory)", RET_VALUE, 0, -1, bytes_growable},
};
enum { NCASES = sizeof cases / sizeof cases[0] };

/* same_stats(), and the stride and cache size too. */
static bool same_stats_and_geometry(const struct lfp_stats *a, const struct lfp_stats *b)
{
    return same_stats(a, b) && a->stride == b->stride && a->cache_size == b->cache_size;
}

static void print_stats_diff(const char *pool, const struct lfp_stats *a, const struct lfp_stats *b)
{
    fprintf(stderr,
            "  pool %s: in_use %zu -> %zu, cached %zu -> %zu, carved %zu -> %zu, "
            "in_use_max %zu -> %zu\n",
            pool, a->blocks_in_use, b->blocks_in_use, a->blocks_cached, b->blocks_cached,
            a->blocks_carved, b->blocks_carved, a->blocks_in_use_max, b->blocks_in_use_max);
}

static void run_case(const struct bad_case *c)
{
    int before = atomic_load(&check_failures);
    lfp_pool **pools = fixture_pools();
    static const char *names[3] = {"big", "mem", "other"};

    for (int k = 0; k < 3; k++)
        for (int i = 0; i < HELD; i++) {
            fx.held[k][i] = lfp_alloc(pools[k]);
            REQUIRE(fx.held[k][i] != NULL);
        }
    struct lfp_stats pre[3];
    for (int k = 0; k < 3; k++)
        pre[k] = stats_of(pools[k]);

    errno = 0;
    long got = c->call();
    int got_errno = errno;

    char want[64], have[64];
    if (c->kind == RET_CODE) {
        snprintf(want, sizeof want, "%s", err_name((int)c->expect));
        snprintf(have, sizeof have, "%s", err_name((int)got));
    } else {
        snprintf(want, sizeof want, "%ld", c->expect);
        snprintf(have, sizeof have, "%ld", got);
    }
    if (c->expect_errno >= 0) {
        size_t n = strlen(want), m = strlen(have);
        snprintf(want + n, sizeof want - n, ", errno %s", errno_name(c->expect_errno));
        snprintf(have + m, sizeof have - m, ", errno %s", errno_name(got_errno));
    }
    printf("  %-17s %-40s expect %-22s", c->func, c->input, want);

    CHECK_EQ(got, c->expect);
    if (c->expect_errno >= 0)
        CHECK_EQ(got_errno, c->expect_errno);

    for (int k = 0; k < 3; k++) {
        CHECK_EQ(lfp_pool_verify(pools[k]), LFP_OK);
        struct lfp_stats post = stats_of(pools[k]);
        bool same = same_stats_and_geometry(&pre[k], &post);
        CHECK(same);
        if (!same)
            print_stats_diff(names[k], &pre[k], &post);
    }
    /* The held blocks are still ours to free, and the pools still work. */
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < HELD; i++)
            CHECK_EQ(lfp_free(pools[k], fx.held[k][i]), LFP_OK);
        void *p = lfp_alloc(pools[k]);
        CHECK(p != NULL);
        CHECK_EQ(lfp_free(pools[k], p), LFP_OK);
        CHECK_EQ(stats_of(pools[k]).blocks_in_use, 0);
        CHECK_EQ(lfp_pool_verify(pools[k]), LFP_OK);
    }
    if (atomic_load(&check_failures) != before) {
        printf(" FAILED (got %s)\n", have);
        fprintf(stderr, "  ... in case %s(%s)\n", c->func, c->input);
    } else {
        printf(" ok\n");
    }
    fflush(stdout);
}

/* ---- the tests ------------------------------------------------------ */

static void each_bad_input_gets_its_documented_answer_and_leaves_the_pools_intact(void)
{
    printf("  %-17s %-40s %s\n", "function", "input", "expected");
    for (size_t i = 0; i < NCASES; i++)
        run_case(&cases[i]);
}

static void rejected_creates_release_every_pool_id_they_took(void)
{
    /* More rounds than there are pool ids: a refused create that kept an id
     * (or memory) would exhaust them and the valid create below would fail. */
    size_t rounds = LFP_MAX_POOLS + 8;
    int before = atomic_load(&check_failures);
    for (size_t r = 0; r < rounds; r++) {
        CHECK_EQ(create_mem_one_byte_short(), LFP_EINVAL);
        CHECK_EQ(create_mem_misaligned_1(), LFP_EALIGN);
        CHECK_EQ(create_cache_too_big(), LFP_EINVAL);
        CHECK_EQ(create_zero_with_init(), LFP_EINVAL);
        CHECK_EQ(create_growable_with_mem(), LFP_EINVAL);
        CHECK_EQ(create_growable_slab_32k(), LFP_EINVAL);
        CHECK_EQ(create_overflow_capacity(), LFP_EINVAL);
        CHECK_EQ(create_align_2_pages(), LFP_EINVAL);
        if (atomic_load(&check_failures) != before)
            break;
    }
    struct lfp_config cfg = base_cfg();
    lfp_pool *pool = NULL;
    CHECK_EQ(lfp_pool_create(&cfg, &pool), LFP_OK);
    if (pool)
        verify_and_destroy(pool, 0);
}

static void owns_rejects_the_same_pointers_free_rejects(void)
{
    void *p = lfp_alloc(fx.big);
    REQUIRE(p != NULL);
    CHECK_EQ(lfp_owns(fx.big, p), 1);
    CHECK_EQ(lfp_owns(fx.big, (char *)p + 1), 0);
    CHECK_EQ(lfp_owns(fx.big, (char *)p + fx.stride / 2), 0);
    CHECK_EQ(lfp_owns(fx.big, (char *)p + 90000 * fx.stride), 0);
    CHECK_EQ(lfp_owns(fx.mem, (char *)fx.buf + (size_t)MEM_CAP * fx.stride), 0);
    CHECK_EQ(lfp_owns(fx.mem, (void *)((uintptr_t)fx.buf - fx.stride)), 0);
    CHECK_EQ(lfp_owns(fx.other, p), 0);
    CHECK_EQ(lfp_free(fx.big, p), LFP_OK);
    CHECK_EQ(lfp_pool_verify(fx.big), LFP_OK);
}

int main(void)
{
    fixture_setup();
    RUN(each_bad_input_gets_its_documented_answer_and_leaves_the_pools_intact);
    RUN(owns_rejects_the_same_pointers_free_rejects);
    RUN(rejected_creates_release_every_pool_id_they_took);
    fixture_teardown();
    return check_done();
}
