/* SPDX-License-Identifier: MIT */
/*
 * Holes: a trim (lfp_pool_trim) gives back the pages of runs of free
 * blocks in slabs that stay because a block in them is still in use, and a
 * growth takes those blocks back before it makes a new slab. Not in pools
 * with a destructor or in checked mode, nor in automatic trims.
 *
 * The layout the tests build: a growable pool of 64-byte blocks in 256 KiB
 * slabs, four of them allocated whole, and one block in 1024 (64 KiB of
 * blocks) kept in use: the lowest of each 64 KiB, so every slab stays and
 * every run of free blocks between two kept ones is 64 KiB less a block.
 * Its whole pages (64 KiB less a page) go back.
 *
 * Knobs: LFP_STRESS_SCALE (1.0) scales the threaded test; LFP_STRESS_THREADS
 * (4) its threads.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <lfpool.h>

#include "check.h"

#define KiB ((size_t)1024)
enum { SLABS = 4, SPACING = 1024, BLOCK = 64 };
#define SLAB (256 * KiB)
#define PER (SLAB / BLOCK)
#define NBLOCKS ((size_t)SLABS * PER)
#define NKEPT (NBLOCKS / SPACING)

static size_t page(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

/* The layout above: true if this machine's pages leave a run of 64 KiB
 * less a block at least the 16 KiB a hole takes. */
static bool layout_fits(void)
{
    if (SPACING * BLOCK - page() >= 16 * KiB)
        return true;
    printf("  skipped: %zu-byte pages leave no hole between blocks 64 KiB apart\n", page());
    return false;
}

struct layout {
    lfp_pool *pool;
    void **sorted;   /* every block, by address */
    void *kept[NKEPT];
};

static uint64_t stamp(const void *p)
{
    return (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15u;
}

/* The pool of cfg with every block of four slabs allocated, the lowest of
 * each 64 KiB kept (and stamped), the others freed. */
static void build(struct layout *l, struct lfp_config cfg)
{
    /* A constructor's pool keeps the links after the block's bytes. */
    cfg.block_size = cfg.init != NULL ? BLOCK - LFP_LINK_BYTES : BLOCK;
    cfg.flags |= LFP_GROWABLE;
    l->pool = create_pool(&cfg);
    REQUIRE(stats_of(l->pool).stride == BLOCK);
    void **v = malloc(NBLOCKS * sizeof *v);
    REQUIRE(v != NULL);
    REQUIRE(alloc_all(l->pool, v, NBLOCKS) == NBLOCKS);
    REQUIRE(stats_of(l->pool).blocks_total == NBLOCKS);
    size_t repeats;
    l->sorted = sorted_blocks(v, NBLOCKS, &repeats);
    REQUIRE(repeats == 0);
    free(v);
    /* Four slabs of exactly PER blocks: the blocks 64 KiB apart by index
     * are 64 KiB apart in memory. */
    for (size_t i = 0; i < NBLOCKS; i++) {
        if (i % SPACING == 0) {
            l->kept[i / SPACING] = l->sorted[i];
            *(uint64_t *)l->sorted[i] = stamp(l->sorted[i]);
        } else {
            CHECK_EQ(lfp_free(l->pool, l->sorted[i]), LFP_OK);
        }
    }
    REQUIRE((uintptr_t)l->sorted[0] % page() == 0);
}

static size_t kept_intact(const struct layout *l)
{
    size_t ok = 0;
    for (size_t k = 0; k < NKEPT; k++)
        ok += *(uint64_t *)l->kept[k] == stamp(l->kept[k]);
    return ok;
}

/* A trim: what it returns must be what left bytes_reserved. */
static size_t trim(lfp_pool *pool)
{
    size_t before = stats_of(pool).bytes_reserved, got = lfp_pool_trim(pool);
    CHECK_EQ(got, before - stats_of(pool).bytes_reserved);
    return got;
}

/* The pages each run gives back, and the blocks that lie in them. */
static size_t hole_bytes(void)
{
    return SPACING * BLOCK - page();
}

static size_t hole_blocks(void)
{
    return hole_bytes() / BLOCK;
}

/* Every free block taken back, without growth: n - NKEPT of them, none a
 * kept one, none twice. Returns them (for the caller to free). */
static void **take_every_free_block(struct layout *l)
{
    void **w = malloc((NBLOCKS + 1) * sizeof *w);
    REQUIRE(w != NULL);
    size_t got = alloc_all(l->pool, w, NBLOCKS - NKEPT);
    CHECK_EQ(got, NBLOCKS - NKEPT);
    memcpy(w + got, l->kept, sizeof l->kept);
    size_t repeats;
    void **all = sorted_blocks(w, got + NKEPT, &repeats);
    CHECK_EQ(repeats, 0);
    /* Exactly the blocks the four slabs had. */
    size_t same = 0;
    for (size_t i = 0; i < got + NKEPT && i < NBLOCKS; i++)
        same += all[i] == l->sorted[i];
    CHECK_EQ(same, NBLOCKS);
    free(all);
    CHECK_EQ(stats_of(l->pool).blocks_total, NBLOCKS);
    return w;
}

static void free_every_block(struct layout *l, void **w)
{
    CHECK_EQ(lfp_free_bulk(l->pool, w, NBLOCKS - NKEPT), LFP_OK);
    CHECK_EQ(lfp_free_bulk(l->pool, l->kept, NKEPT), LFP_OK);
    free(w);
}

static void teardown(struct layout *l)
{
    CHECK_EQ(lfp_pool_verify(l->pool), LFP_OK);
    CHECK_EQ(lfp_pool_destroy(l->pool), 0);
    free(l->sorted);
}

/* ---- tests ---- */

/* The trim gives back the pages between the kept blocks, and only those:
 * they are no longer resident, the kept blocks' pages and contents are;
 * the blocks are out of blocks_carved, still in blocks_total. A second
 * trim finds nothing more. Taking every free block back makes them ready
 * again without a new slab; with every block freed, the last trim gives
 * back the rest. Fails when a run's pages stay, when a page with a kept
 * block goes, or when a hole's blocks are lost or handed out twice. */
static void a_trim_gives_back_the_pages_between_blocks_in_use(void)
{
    if (!layout_fits())
        return;
    struct layout l;
    build(&l, (struct lfp_config){ 0 });
    size_t reserved = stats_of(l.pool).bytes_reserved;
    CHECK_EQ(reserved, SLABS * SLAB);

    CHECK_EQ(trim(l.pool), NKEPT * hole_bytes());
    struct lfp_stats s = stats_of(l.pool);
    CHECK_EQ(s.blocks_total, NBLOCKS);
    CHECK_EQ(s.blocks_carved, NBLOCKS - NKEPT * hole_blocks());
    CHECK_EQ(s.blocks_in_use, NKEPT);
    CHECK_EQ(s.bytes_reserved, reserved - NKEPT * hole_bytes());
    size_t gone = 0, stayed = 0;
    for (size_t k = 0; k < NKEPT; k++) {
        gone += resident_pages((char *)l.kept[k] + page(), hole_bytes()) == 0;
        stayed += resident_pages(l.kept[k], page());
    }
    CHECK_EQ(gone, NKEPT);
    CHECK_EQ(stayed, NKEPT);
    CHECK_EQ(kept_intact(&l), NKEPT);
    CHECK_EQ(lfp_pool_verify(l.pool), LFP_OK);

    CHECK_EQ(trim(l.pool), 0);
    CHECK_EQ(stats_of(l.pool).blocks_carved, NBLOCKS - NKEPT * hole_blocks());
    CHECK_EQ(lfp_pool_verify(l.pool), LFP_OK);

    void **w = take_every_free_block(&l);
    s = stats_of(l.pool);
    CHECK_EQ(s.blocks_carved, NBLOCKS);
    CHECK_EQ(s.bytes_reserved, reserved);
    CHECK_EQ(kept_intact(&l), NKEPT);
    CHECK_EQ(lfp_pool_verify(l.pool), LFP_OK);

    /* Holes again. Then the first slab's kept blocks are freed: it is
     * free, its blocks in the depot and in the holes the trim holds, and
     * goes while the others stay; then every slab. What the holes gave
     * back is not counted twice. */
    CHECK_EQ(lfp_free_bulk(l.pool, w, NBLOCKS - NKEPT), LFP_OK);
    free(w);
    CHECK_EQ(trim(l.pool), NKEPT * hole_bytes());
    const size_t first = NKEPT / SLABS; /* the kept blocks of the first slab */
    CHECK_EQ(lfp_free_bulk(l.pool, l.kept, first), LFP_OK);
    CHECK_EQ(trim(l.pool), SLAB - first * hole_bytes());
    s = stats_of(l.pool);
    CHECK_EQ(s.blocks_total, NBLOCKS - PER);
    CHECK_EQ(s.blocks_carved, NBLOCKS - PER - (NKEPT - first) * hole_blocks());
    CHECK_EQ(lfp_pool_verify(l.pool), LFP_OK);
    CHECK_EQ(lfp_free_bulk(l.pool, l.kept + first, NKEPT - first), LFP_OK);
    CHECK_EQ(trim(l.pool), reserved - SLAB - (NKEPT - first) * hole_bytes());
    s = stats_of(l.pool);
    CHECK_EQ(s.blocks_total, 0);
    CHECK_EQ(s.blocks_carved, 0);
    CHECK_EQ(s.bytes_reserved, 0);
    teardown(&l);
}

/* A bounded pool at max_blocks takes its holes back: they are its blocks,
 * free. Every one comes back, then ENOBUFS. Fails when a growth checks the
 * bound before it looks for a hole. */
static void a_pool_at_its_bound_takes_its_holes_back(void)
{
    if (!layout_fits())
        return;
    struct layout l;
    build(&l, (struct lfp_config){ .max_blocks = NBLOCKS });
    CHECK_EQ(trim(l.pool), NKEPT * hole_bytes());
    void **w = take_every_free_block(&l);
    errno = 0;
    CHECK(lfp_alloc(l.pool) == NULL);
    CHECK_EQ(errno, ENOBUFS);
    CHECK_EQ(kept_intact(&l), NKEPT);
    free_every_block(&l, w);
    teardown(&l);
}

/* The process's locked memory, in KiB (VmLck). */
static size_t locked_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    REQUIRE(f != NULL);
    char line[256];
    size_t kib = 0;
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "VmLck: %zu kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* Pages the OS keeps (locked with mlock) are not counted as given back,
 * and those before them in a run are: the trim returns the pages it
 * dropped, bytes_reserved falls by as much; the runs are holes all the
 * same, whose blocks come back once. Fails when a refused madvise is
 * counted, or a partly refused one not at all. Skipped where mlock is refused (RLIMIT_MEMLOCK) or locks
 * nothing (the sanitizers' runtimes make it a no-op). */
static void locked_pages_are_not_counted_as_given_back_and_the_others_are(void)
{
    if (!layout_fits())
        return;
    struct layout l;
    build(&l, (struct lfp_config){ 0 });
    /* The upper half of each run locked: madvise drops the pages below it
     * and stops at the first locked one. */
    const size_t half = SPACING * BLOCK / 2;
    size_t reserved = stats_of(l.pool).bytes_reserved, locked = 0, before = locked_kib();
    for (size_t k = 0; k < NKEPT; k++)
        locked += mlock((char *)l.kept[k] + half, half) == 0;
    if (locked == NKEPT && locked_kib() < before + NKEPT * half / KiB) {
        printf("  skipped: mlock locked nothing\n");
    } else if (locked == NKEPT) {
        CHECK_EQ(trim(l.pool), NKEPT * (half - page()));
        struct lfp_stats s = stats_of(l.pool);
        CHECK_EQ(s.bytes_reserved, reserved - NKEPT * (half - page()));
        CHECK_EQ(s.blocks_carved, NBLOCKS - NKEPT * hole_blocks());
        CHECK_EQ(lfp_pool_verify(l.pool), LFP_OK);
        void **w = take_every_free_block(&l);
        CHECK_EQ(stats_of(l.pool).bytes_reserved, reserved);
        CHECK_EQ(kept_intact(&l), NKEPT);
        CHECK_EQ(lfp_free_bulk(l.pool, w, NBLOCKS - NKEPT), LFP_OK);
        free(w);
    } else {
        printf("  skipped: mlock refused (%s)\n", strerror(errno));
    }
    for (size_t k = 0; k < NKEPT; k++)
        munlock((char *)l.kept[k] + half, half);
    CHECK_EQ(lfp_free_bulk(l.pool, l.kept, NKEPT), LFP_OK);
    teardown(&l);
}

/* A free slab goes back whole even when its pages are locked: a registry
 * slab's munmap takes locked pages with it, and a range slab's release
 * unlocks those madvise refuses, so the trim's count is what left the
 * process. Fails when a range slab's locked pages stay resident. Skipped
 * where mlock is refused or locks nothing, as above. */
static void a_free_slabs_locked_pages_go_back_too(void)
{
    struct lfp_config cfg = { .block_size = BLOCK, .flags = LFP_GROWABLE, .slab_size = SLAB };
    lfp_pool *pool = create_pool(&cfg);
    void **v = malloc(PER * sizeof *v);
    REQUIRE(v != NULL);
    REQUIRE(alloc_all(pool, v, PER) == PER);
    REQUIRE(stats_of(pool).blocks_total == PER);
    size_t repeats;
    void **sorted = sorted_blocks(v, PER, &repeats);
    REQUIRE(repeats == 0);
    char *base = sorted[0];
    free(sorted);
    REQUIRE((uintptr_t)base % page() == 0);
    size_t before = locked_kib();
    if (mlock(base, SLAB) != 0) {
        printf("  skipped: mlock refused (%s)\n", strerror(errno));
    } else if (locked_kib() < before + SLAB / KiB) {
        printf("  skipped: mlock locked nothing\n");
    } else {
        CHECK_EQ(lfp_free_bulk(pool, v, PER), LFP_OK);
        CHECK_EQ(trim(pool), SLAB);
        CHECK(locked_kib() <= before);
        /* qemu-user's mincore refuses memory without access; the kernel's
         * does not. */
        unsigned char vec[SLAB / 4096];
        size_t resident = 0;
        if (page() == 4096 && mincore(base, SLAB, vec) == 0)
            for (size_t i = 0; i < SLAB / 4096; i++)
                resident += vec[i] & 1;
        CHECK_EQ(resident, 0);
        CHECK_EQ(stats_of(pool).blocks_total, 0);
        /* The memory serves a new slab, unlocked. */
        REQUIRE(alloc_all(pool, v, PER) == PER);
    }
    munlock(base, SLAB);
    CHECK_EQ(lfp_free_bulk(pool, v, PER), LFP_OK);
    CHECK_EQ(lfp_pool_verify(pool), LFP_OK);
    CHECK_EQ(lfp_pool_destroy(pool), 0);
    free(v);
}

/* A slab cut short by max_blocks (1000 blocks, not a whole number of map
 * words) beside a free one: the free one goes, the short one keeps one
 * block in use near its end, a hole of its first pages and, from the maps,
 * the free blocks after the hole and after the kept one, its last block
 * among them. Each comes back once, without growth. Fails when the maps'
 * last word is read past the slab's blocks or short of them. */
static void a_slab_cut_short_keeps_its_last_blocks(void)
{
    enum { SHORT = 1000, KEEP_AT = 990 };
    size_t ps = page();
    if (ps > 16 * KiB)
        return;
    struct lfp_config cfg = { .block_size = BLOCK, .flags = LFP_GROWABLE,
                              .max_blocks = PER + SHORT };
    lfp_pool *pool = create_pool(&cfg);
    void **v = malloc((PER + SHORT) * sizeof *v);
    REQUIRE(v != NULL);
    REQUIRE(alloc_all(pool, v, PER + SHORT) == PER + SHORT);
    size_t repeats;
    void **sorted = sorted_blocks(v, PER + SHORT, &repeats);
    REQUIRE(repeats == 0);
    /* The short slab: the lowest 1000 blocks if a gap follows them. */
    bool short_first = (uintptr_t)sorted[SHORT] - (uintptr_t)sorted[SHORT - 1] > BLOCK;
    void **shrt = short_first ? sorted : sorted + PER;
    REQUIRE((uintptr_t)shrt[0] % ps == 0);
    void *kept = shrt[KEEP_AT];
    size_t n = 0;
    for (size_t i = 0; i < PER + SHORT; i++)
        if (sorted[i] != kept)
            v[n++] = sorted[i];
    CHECK_EQ(lfp_free_bulk(pool, v, n), LFP_OK);
    /* The hole: the whole pages of blocks 0 .. 989, and the blocks in them. */
    size_t hole = KEEP_AT * BLOCK / ps * ps;
    CHECK_EQ(trim(pool), SLAB + hole);
    struct lfp_stats s = stats_of(pool);
    CHECK_EQ(s.blocks_total, SHORT);
    CHECK_EQ(s.blocks_carved, SHORT - hole / BLOCK);
    CHECK_EQ(lfp_pool_verify(pool), LFP_OK);
    CHECK_EQ(alloc_all(pool, v, SHORT - 1), SHORT - 1);
    v[SHORT - 1] = kept;
    void **got = sorted_blocks(v, SHORT, &repeats);
    CHECK_EQ(repeats, 0);
    size_t same = 0;
    for (size_t i = 0; i < SHORT; i++)
        same += got[i] == shrt[i];
    CHECK_EQ(same, SHORT);
    CHECK_EQ(stats_of(pool).blocks_total, SHORT);
    CHECK_EQ(lfp_free_bulk(pool, v, SHORT), LFP_OK);
    CHECK_EQ(lfp_pool_verify(pool), LFP_OK);
    CHECK_EQ(lfp_pool_destroy(pool), 0);
    free(got);
    free(sorted);
    free(v);
}

static atomic_long inits, finis;

static void count_init(void *block, void *arg)
{
    (void)arg;
    *(uint64_t *)block = 0x1417;
    atomic_fetch_add(&inits, 1);
}

static void count_fini(void *block, void *arg)
{
    (void)block;
    (void)arg;
    atomic_fetch_add(&finis, 1);
}

/* A hole's blocks lost their constructed state with their pages: the
 * growth that takes them back runs init on each again. A pool with a
 * destructor makes no hole (fini would have to run first): its trim keeps
 * slabs in use whole, and fini runs once a block, at destroy. Fails when
 * a hole's blocks come back unconstructed, or a destructor's pool loses a
 * page. */
static void a_holes_blocks_are_constructed_again_and_a_destructor_keeps_slabs_whole(void)
{
    if (!layout_fits())
        return;
    for (int with_fini = 0; with_fini < 2; with_fini++) {
        atomic_store(&inits, 0);
        atomic_store(&finis, 0);
        struct layout l;
        build(&l, (struct lfp_config){ .init = count_init,
                                       .fini = with_fini ? count_fini : NULL });
        CHECK_EQ(atomic_load(&inits), NBLOCKS);
        size_t reserved = stats_of(l.pool).bytes_reserved;
        size_t got = trim(l.pool);
        CHECK_EQ(got, with_fini ? 0 : NKEPT * hole_bytes());
        CHECK_EQ(stats_of(l.pool).bytes_reserved, reserved - got);
        void **w = take_every_free_block(&l);
        CHECK_EQ(atomic_load(&inits),
                 NBLOCKS + (with_fini ? 0 : NKEPT * hole_blocks()));
        size_t constructed = 0;
        for (size_t i = 0; i < NBLOCKS - NKEPT; i++)
            constructed += *(uint64_t *)w[i] == 0x1417;
        CHECK_EQ(constructed, NBLOCKS - NKEPT);
        CHECK_EQ(atomic_load(&finis), 0);
        free_every_block(&l, w);
        teardown(&l);
        CHECK_EQ(atomic_load(&finis), with_fini ? (long)NBLOCKS : 0);
    }
}

static atomic_long corrupt_reports;

static void count_corrupt(lfp_pool *pool, void *ptr, int err, const char *what)
{
    (void)pool;
    (void)ptr;
    (void)what;
    if (err == LFP_ECORRUPT)
        atomic_fetch_add(&corrupt_reports, 1);
}

/* A checked pool makes no hole: the pages would take with them the
 * evidence of a write to a free block. Such a write, in the middle of a
 * run a hole would take, is still reported when the block is handed out
 * after the trim. Fails when a checked pool's trim makes holes. */
static void a_checked_pool_makes_no_hole_and_reports_a_write_to_a_free_block(void)
{
    if (!layout_fits())
        return;
    struct layout l;
    build(&l, (struct lfp_config){ .flags = LFP_CHECKED });
    char *victim = (char *)l.kept[3] + 2 * page();
    UNPOISON(victim, BLOCK);
    victim[BLOCK - 1] ^= 0x5a; /* its fill, not its links */
    struct lfp_stats before = stats_of(l.pool);
    CHECK_EQ(trim(l.pool), 0);
    struct lfp_stats after = stats_of(l.pool);
    CHECK_EQ(after.blocks_carved, after.blocks_total);
    CHECK_EQ(after.bytes_reserved, before.bytes_reserved);
    lfp_error_handler old = lfp_set_error_handler(count_corrupt);
    atomic_store(&corrupt_reports, 0);
    void **w = take_every_free_block(&l);
    CHECK_EQ(atomic_load(&corrupt_reports), 1);
    lfp_set_error_handler(old);
    free_every_block(&l, w);
    teardown(&l);
}

/* Automatic trims (trim_threshold) give back whole slabs only: in a steady
 * state with a block in use in most slabs, each would give pages back for
 * the next allocations to fault in again. Here every free sets one off
 * (the threshold is below a block), and none may make a hole; the
 * explicit trim after them does. Fails when an automatic trim makes
 * holes. */
static void automatic_trims_make_no_hole(void)
{
    if (!layout_fits())
        return;
    struct layout l;
    build(&l, (struct lfp_config){ .trim_threshold = 1 });
    lfp_thread_flush();
    struct lfp_stats s = stats_of(l.pool);
    CHECK_EQ(s.blocks_total, NBLOCKS);
    CHECK_EQ(s.blocks_carved, NBLOCKS);
    CHECK_EQ(s.bytes_reserved, SLABS * SLAB);
    CHECK_EQ(trim(l.pool), NKEPT * hole_bytes());
    void **w = take_every_free_block(&l);
    CHECK_EQ(kept_intact(&l), NKEPT);
    free_every_block(&l, w);
    teardown(&l);
}

/* Threads keep a few long-lived blocks scattered over the slabs and churn
 * through many short-lived ones, freeing some on other threads, while
 * another thread trims without pause: holes are made under threads that
 * are taking blocks and making holes ready again. A block handed out while
 * it lies in a hole (or twice) has its stamp overwritten by the links a
 * growth writes, or by its other holder. The test must see holes made, or
 * it tested nothing. */
struct churn {
    lfp_pool *pool;
    _Atomic(void *) exchange[64];
    atomic_bool stop;
    atomic_long bad_stamp, bad_free, bad_stats, alloc_failed, holes_seen, trims;
    long rounds;
};

struct churner {
    struct churn *c;
    uint64_t id, seed;
    pthread_t tid;
};

enum { LONG_LIVED = 64, BURST = 4096 };

static uint64_t owned_stamp(uint64_t id, const void *p)
{
    return id << 48 ^ (uint64_t)(uintptr_t)p;
}

static void put_back(struct churn *c, uint64_t id, void *p)
{
    if (*(volatile uint64_t *)p != owned_stamp(id, p))
        atomic_fetch_add(&c->bad_stamp, 1);
    if (lfp_free(c->pool, p) != LFP_OK)
        atomic_fetch_add(&c->bad_free, 1);
}

static void *churner_main(void *arg)
{
    struct churner *t = arg;
    struct churn *c = t->c;
    void *lived[LONG_LIVED] = { 0 };
    void **burst = malloc(BURST * sizeof *burst);
    REQUIRE(burst != NULL);
    for (long r = 0; r < c->rounds; r++) {
        size_t n = 1 + xorshift(&t->seed) % BURST;
        for (size_t i = 0; i < n; i++) {
            burst[i] = lfp_alloc(c->pool);
            if (burst[i] == NULL) {
                atomic_fetch_add(&c->alloc_failed, 1);
                n = i;
                break;
            }
            *(volatile uint64_t *)burst[i] = owned_stamp(t->id, burst[i]);
        }
        /* One in 256 of the burst outlives it, in place of an older one. */
        for (size_t i = 0; i < n; i += 256) {
            size_t k = xorshift(&t->seed) % LONG_LIVED;
            if (lived[k] != NULL)
                put_back(c, t->id, lived[k]);
            lived[k] = burst[i];
            burst[i] = NULL;
        }
        for (size_t i = 0; i < n; i++) {
            if (burst[i] == NULL)
                continue;
            if (xorshift(&t->seed) % 64 == 0) {
                /* To another thread: it frees what it finds here. */
                *(volatile uint64_t *)burst[i] = owned_stamp(0, burst[i]);
                void *q = atomic_exchange(&c->exchange[xorshift(&t->seed) % 64], burst[i]);
                if (q != NULL)
                    put_back(c, 0, q);
            } else {
                put_back(c, t->id, burst[i]);
            }
        }
        if (r % 16 == 0)
            lfp_thread_flush();
    }
    for (int k = 0; k < LONG_LIVED; k++)
        if (lived[k] != NULL)
            put_back(c, t->id, lived[k]);
    free(burst);
    return NULL;
}

/* Stats read without pause beside growths and trims: holes made of slabs
 * grown since the total was read must not wrap blocks_carved round. */
static void *stats_main(void *arg)
{
    struct churn *c = arg;
    while (!atomic_load(&c->stop)) {
        struct lfp_stats s = stats_of(c->pool);
        if (s.blocks_carved > s.blocks_total)
            atomic_fetch_add(&c->bad_stats, 1);
    }
    return NULL;
}

static void *trimmer_main(void *arg)
{
    struct churn *c = arg;
    while (!atomic_load(&c->stop)) {
        lfp_pool_trim(c->pool);
        atomic_fetch_add(&c->trims, 1);
        struct lfp_stats s = stats_of(c->pool);
        if (s.blocks_carved < s.blocks_total)
            atomic_fetch_add(&c->holes_seen, 1);
        struct timespec ts = { 0, 100 * 1000 };
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void threads_churning_while_a_trim_makes_holes_get_every_block_once(void)
{
    if (!layout_fits())
        return;
    static struct churn c;
    struct lfp_config cfg = { .block_size = BLOCK, .flags = LFP_GROWABLE,
                              .slab_size = 64 * KiB, .cache_size = 32 };
    c.pool = create_pool(&cfg);
    c.rounds = scaled(4000, 200);
    int threads = stress_threads();
    struct churner *t = calloc((size_t)threads, sizeof *t);
    REQUIRE(t != NULL);
    pthread_t trimmer, statter;
    REQUIRE(pthread_create(&trimmer, NULL, trimmer_main, &c) == 0);
    REQUIRE(pthread_create(&statter, NULL, stats_main, &c) == 0);
    for (int i = 0; i < threads; i++) {
        t[i] = (struct churner){ .c = &c, .id = (uint64_t)i + 1,
                                 .seed = 0x2545f4914f6cdd1du * ((uint64_t)i + 1) };
        REQUIRE(pthread_create(&t[i].tid, NULL, churner_main, &t[i]) == 0);
    }
    for (int i = 0; i < threads; i++)
        REQUIRE(pthread_join(t[i].tid, NULL) == 0);
    atomic_store(&c.stop, true);
    REQUIRE(pthread_join(trimmer, NULL) == 0);
    REQUIRE(pthread_join(statter, NULL) == 0);
    for (int i = 0; i < 64; i++) {
        void *q = atomic_exchange(&c.exchange[i], NULL);
        if (q != NULL)
            put_back(&c, 0, q);
    }
    printf("  %d threads x %ld rounds: %ld trims, holes after %ld of them\n", threads,
           c.rounds, atomic_load(&c.trims), atomic_load(&c.holes_seen));
    CHECK_EQ(atomic_load(&c.alloc_failed), 0);
    CHECK_EQ(atomic_load(&c.bad_free), 0);
    CHECK_EQ(atomic_load(&c.bad_stamp), 0);
    CHECK_EQ(atomic_load(&c.bad_stats), 0);
    CHECK(atomic_load(&c.holes_seen) > 0);
    lfp_thread_flush(); /* the blocks this thread just freed */
    CHECK_EQ(lfp_pool_verify(c.pool), LFP_OK);
    struct lfp_stats s = stats_of(c.pool);
    CHECK_EQ(s.blocks_in_use, 0);
    CHECK_EQ(s.blocks_cached, 0);
    /* Every slab free, holes and all: the last trim gives back the rest. */
    CHECK_EQ(trim(c.pool), s.bytes_reserved);
    s = stats_of(c.pool);
    CHECK_EQ(s.blocks_total, 0);
    CHECK_EQ(s.bytes_reserved, 0);
    CHECK_EQ(lfp_pool_destroy(c.pool), 0);
    free(t);
}

int main(void)
{
    RUN(a_trim_gives_back_the_pages_between_blocks_in_use);
    RUN(a_pool_at_its_bound_takes_its_holes_back);
    RUN(a_slab_cut_short_keeps_its_last_blocks);
    RUN(locked_pages_are_not_counted_as_given_back_and_the_others_are);
    RUN(a_free_slabs_locked_pages_go_back_too);
    RUN(a_holes_blocks_are_constructed_again_and_a_destructor_keeps_slabs_whole);
    RUN(a_checked_pool_makes_no_hole_and_reports_a_write_to_a_free_block);
    RUN(automatic_trims_make_no_hole);
    RUN(threads_churning_while_a_trim_makes_holes_get_every_block_once);
    return check_done();
}
