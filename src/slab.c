/* SPDX-License-Identifier: MIT */
/*
 * Growable pools: memory in slabs, a registry from addresses to slabs, and
 * trimming fully free slabs back to the OS behind an RCU grace period.
 *
 * A slab is one aligned mapping of blocks; its descriptor lives outside it,
 * in memory that is never unmapped (descriptors are recycled, not freed), so
 * looking a pointer up never touches a slab: any address, ours or not, maps
 * to a descriptor or to NULL without a fault.
 *
 * The hazard trimming creates (HAProxy's lockless pools crashed on it,
 * GH #1275): a depot pop reads top->next, while another thread has popped
 * top, and trim has found top's slab free and unmapped it. The tag stops ABA,
 * not that read. So every depot pop of a growable pool runs inside an RCU
 * read-side section, and trim unmaps a slab only after a grace period: once
 * no pop that could have seen one of its blocks is still running.
 *
 * Flavor: urcu-bp. A library does not own its users' threads, so it cannot
 * ask each of them to register (urcu-memb, urcu-mb) or to announce quiescent
 * states (urcu-qsbr); urcu-bp registers a thread on its first read-side
 * section and survives fork. Its read side costs about a nanosecond here and
 * runs once per magazine exchange, not per alloc; its grace period (about
 * 70 us) is paid by trim alone.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

#include <urcu/urcu-bp.h>

#include "internal.h"
#include "sanitize.h"

#define LFP_UNIT_SHIFT 16u /* the registry maps 64 KiB units */
#define LFP_UNIT ((size_t)1 << LFP_UNIT_SHIFT)
#define LFP_L2_BITS 16u
#define LFP_L1_BITS (48u - LFP_UNIT_SHIFT - LFP_L2_BITS) /* 48-bit addresses */
#define LFP_SLAB_MIN_DEFAULT ((size_t)256 * 1024)
#define LFP_SLAB_MIN_BLOCKS 16u
/* A growth makes every block of its slab ready at once, writing a link into
 * each: a slab_size far beyond memory had the process killed at the first
 * growth, where a refusal at create is what the caller can act on. */
#define LFP_SLAB_MAX ((size_t)1 << 30)
/* Address space a growable pool reserves for its range: unbounded pools
 * this much, bounded ones enough for max_blocks, up to the second. */
#define LFP_RANGE_DEFAULT ((size_t)1 << 30)
#define LFP_RANGE_MAX ((size_t)1 << 34)
/* With a limit on the address space (RLIMIT_AS), a range takes at most this
 * fraction of it. */
#define LFP_RANGE_RLIMIT_SHARE 16

#ifdef LFP_TEST_HOOKS
/* Test builds only: when > 0, ranges are at most this many bytes (1: none),
 * so that a test can fill one and see slabs go elsewhere. */
_Atomic long lfp_test_range_bytes;
/* Test builds only: called by a trim once it holds the whole depot and
 * has taken its victims off the pool's slab list. */
void (*_Atomic lfp_test_trim_hook)(void);
/* Test builds only: called by an automatic trim between counting a slab's
 * release in pool->releasing and queuing it. */
void (*_Atomic lfp_test_queue_hook)(void);
/* Test builds only: called by a growth that has just popped a hole, before
 * any of its blocks is made ready. */
void (*_Atomic lfp_test_hole_hook)(void);
#endif

#define LFP_CONTAINER(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

struct lfp_slab {
    struct lfp_node free_link; /* the list of recycled descriptors */
    struct lfp_node pool_link; /* its pool's slab list */
    /* A lookup may hold a descriptor that trim retires and a new slab then
     * reuses: pool, base, nblocks and used are read as a seqlock's data,
     * gen odd while lfp_slab_new rewrites them. */
    _Atomic uint64_t gen;
    _Atomic(const struct lfp_pool *) pool;
    _Atomic uintptr_t base;    /* the first block */
    _Atomic size_t nblocks;
    _Atomic(_Atomic uint64_t *) used; /* checked pools: the in-use bits */
    void *map;
    size_t map_size;
    size_t pos;                /* position in the pool's range, or SIZE_MAX */
    struct lfp_pool *home;     /* for the release of a range slab */
    size_t scratch;            /* trim: free blocks counted */
    uint64_t *free_map;        /* trim: a bit per block found free, or NULL
                                * (this trim's: stale after it) */
    struct rcu_head rcu;
};

typedef _Atomic(struct lfp_slab *) lfp_reg_entry;
static _Atomic(lfp_reg_entry *) lfp_reg[(size_t)1 << LFP_L1_BITS];
static struct lfp_stack lfp_slab_spare; /* recycled descriptors */

/* ---- the registry ---- */

static struct lfp_slab *lfp_reg_find(uintptr_t addr)
{
    uintptr_t u = addr >> LFP_UNIT_SHIFT;
    if (u >> (LFP_L1_BITS + LFP_L2_BITS))
        return NULL; /* beyond 48 bits: the kernel's half, or not canonical */
    lfp_reg_entry *t = atomic_load_explicit(&lfp_reg[u >> LFP_L2_BITS], memory_order_acquire);
    if (t == NULL)
        return NULL;
    return atomic_load_explicit(&t[u & (((uintptr_t)1 << LFP_L2_BITS) - 1)],
                                memory_order_acquire);
}

/* Point every unit of [base, base + size) at d (or at NULL). */
static int lfp_reg_set(uintptr_t base, size_t size, struct lfp_slab *d)
{
    for (uintptr_t u = base >> LFP_UNIT_SHIFT; u < (base + size) >> LFP_UNIT_SHIFT; u++) {
        _Atomic(lfp_reg_entry *) *slot = &lfp_reg[u >> LFP_L2_BITS];
        lfp_reg_entry *t = atomic_load_explicit(slot, memory_order_acquire);
        if (t == NULL) {
            if (d == NULL)
                continue;
            /* Tables are never freed, so lookups need no protection. */
            lfp_reg_entry *fresh = lfp_os_map(sizeof(lfp_reg_entry) << LFP_L2_BITS);
            if (fresh == NULL)
                return LFP_ENOMEM;
            if (atomic_compare_exchange_strong(slot, &t, fresh))
                t = fresh;
            else
                lfp_os_unmap(fresh, sizeof(lfp_reg_entry) << LFP_L2_BITS);
        }
        atomic_store_explicit(&t[u & (((uintptr_t)1 << LFP_L2_BITS) - 1)], d,
                              memory_order_release);
    }
    return LFP_OK;
}

/* Bytes of one position of the range. */
static size_t lfp_range_span(const struct lfp_pool *pool)
{
    return pool->stride << pool->range_shift;
}

/* The slab an address may lie in, found without a fault: through the
 * pool's range when it is a block start there, else through the registry
 * (which has no entry in the range: an interior address of the range, whose
 * lfp_stride_index is past every position, finds NULL there). The acquire
 * pairs with lfp_slab_new's release, for lookups that race the slab's
 * making (a foreign or stale pointer); a block the caller holds came to it
 * through the depot or a magazine, ordered after the making anyway. */
static struct lfp_slab *lfp_slab_lookup(const struct lfp_pool *pool, uintptr_t addr)
{
    if (pool->range != NULL) {
        uint64_t k = lfp_stride_index(pool, addr - pool->base) >> pool->range_shift;
        if (k < pool->range_slots)
            return atomic_load_explicit(&pool->range[k], memory_order_acquire);
    }
    return lfp_reg_find(addr);
}

/* Is p the start of one of pool's blocks? Then also its index in its slab
 * and, when used is not NULL, the slab's in-use bitmap. Inlined, so that
 * the plain ownership check does not load the bitmap. */
static inline bool lfp_slab_find(const struct lfp_pool *pool, const void *p, size_t *index,
                                 _Atomic uint64_t **used)
{
    struct lfp_slab *d = lfp_slab_lookup(pool, (uintptr_t)p);
    if (d == NULL)
        return false;
    uint64_t gen = atomic_load_explicit(&d->gen, memory_order_acquire);
    const struct lfp_pool *owner = atomic_load_explicit(&d->pool, memory_order_relaxed);
    uintptr_t base = atomic_load_explicit(&d->base, memory_order_relaxed);
    size_t nblocks = atomic_load_explicit(&d->nblocks, memory_order_relaxed);
    if (used != NULL)
        *used = atomic_load_explicit(&d->used, memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    if ((gen & 1) || atomic_load_explicit(&d->gen, memory_order_relaxed) != gen ||
        owner != pool)
        return false; /* being rewritten, rewritten since, or not the pool's */
    *index = lfp_stride_index(pool, (uintptr_t)p - base);
    return *index < nblocks;
}

bool lfp_slab_owns(const struct lfp_pool *pool, const void *p)
{
    size_t i;
    return lfp_slab_find(pool, p, &i, NULL);
}

_Atomic uint64_t *lfp_slab_used(const struct lfp_pool *pool, const void *p, size_t *index)
{
    _Atomic uint64_t *used = NULL;
    return lfp_slab_find(pool, p, index, &used) ? used : NULL;
}

/* The slab's fields, for the threads that own it (grow, trim, destroy). */
static inline uintptr_t lfp_slab_base(const struct lfp_slab *d)
{
    return atomic_load_explicit(&d->base, memory_order_relaxed);
}

static inline size_t lfp_slab_blocks(const struct lfp_slab *d)
{
    return atomic_load_explicit(&d->nblocks, memory_order_relaxed);
}

/* ---- the range ---- */

/* Words of range_claim below the hint have no free position: lower it to w.
 * Sequentially consistent, as the claim's raise and look again are: with
 * weaker orders both sides could miss the other (store buffering). */
static void lfp_range_hint_lower(struct lfp_pool *pool, size_t w)
{
    size_t h = atomic_load(&pool->range_hint);
    while (h > w && !atomic_compare_exchange_weak(&pool->range_hint, &h, w))
        ;
}

/* Claim the lowest free position of the range; SIZE_MAX when none is. */
static size_t lfp_range_claim(struct lfp_pool *pool)
{
    size_t words = (pool->range_slots + 63) / 64;
    for (size_t w = atomic_load(&pool->range_hint); w < words; w++) {
        uint64_t bits = atomic_load_explicit(&pool->range_claim[w], memory_order_relaxed);
        while (~bits != 0) {
            uint64_t bit = (uint64_t)1 << __builtin_ctzll(~bits);
            if (atomic_compare_exchange_weak_explicit(&pool->range_claim[w], &bits, bits | bit,
                                                      memory_order_acquire,
                                                      memory_order_relaxed))
                return w * 64 + (size_t)__builtin_ctzll(bit);
        }
        /* Full: raise the hint past it, then look again, for a position
         * freed before the raise would be hidden by it; if one was, try
         * this word again. */
        size_t h = w;
        if (atomic_compare_exchange_strong(&pool->range_hint, &h, w + 1) &&
            ~atomic_load(&pool->range_claim[w]) != 0) {
            lfp_range_hint_lower(pool, w);
            w--;
        }
    }
    return SIZE_MAX;
}

static void lfp_range_unclaim(struct lfp_pool *pool, size_t pos)
{
    atomic_fetch_and(&pool->range_claim[pos / 64], ~((uint64_t)1 << (pos % 64)));
    lfp_range_hint_lower(pool, pos / 64);
}

/* Blocks of the slab at a position: all its positions, but those past the
 * pool's bound. */
static size_t lfp_range_blocks(const struct lfp_pool *pool, size_t pos)
{
    size_t per = (size_t)1 << pool->range_shift;
    size_t left = atomic_load_explicit(&((struct lfp_pool *)pool)->carved,
                                       memory_order_relaxed) - pos * per;
    return left < per ? left : per;
}

/* The range's tables: a slab pointer per position, then the claim bitmap. */
static size_t lfp_range_tables_size(size_t slots)
{
    return slots * sizeof(struct lfp_slab *) + (slots + 63) / 64 * sizeof(uint64_t);
}

/*
 * Reserve the pool's range: address space for slabs at fixed positions, so
 * that lfp_free checks a block of a growable pool as it does a fixed pool's
 * (a multiply and a compare, then one load: is the slab there). A slab
 * holds a power of two of blocks there, the most that fit the slab size,
 * so its position is the block index shifted right; and a whole number of
 * pages, so it can be made accessible and given back on its own. Without a
 * range (no geometry fits within 4x the slab size, or no address space), or
 * once it is full, slabs are mapped anywhere and found through the
 * registry. Either way the pool works; the range only makes free cheaper.
 * Its tables sit at the start of the same reservation, made accessible
 * there: pages of them become resident only as positions are used.
 */
static void lfp_range_setup(struct lfp_pool *pool)
{
    size_t ps = lfp_page_size(), stride = pool->stride;
    size_t blocks = (size_t)1 << (63 - __builtin_clzll(pool->slab_bytes / stride));
    while (blocks * stride % ps != 0 && blocks * stride <= 4 * pool->slab_bytes)
        blocks *= 2;
    size_t span = blocks * stride;
    if (span % ps != 0 || span > 4 * pool->slab_bytes)
        return;
    size_t limit = pool->max_blocks != 0 ? LFP_RANGE_MAX : LFP_RANGE_DEFAULT;
    struct rlimit as;
    if (getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY &&
        as.rlim_cur / LFP_RANGE_RLIMIT_SHARE < limit)
        limit = (size_t)(as.rlim_cur / LFP_RANGE_RLIMIT_SHARE);
#ifdef LFP_TEST_HOOKS
    long test_limit = atomic_load(&lfp_test_range_bytes);
    if (test_limit > 0 && (size_t)test_limit < limit)
        limit = (size_t)test_limit;
#endif
    size_t slots = limit / span;
    if (pool->max_blocks != 0 && slots > (pool->max_blocks - 1) / blocks + 1)
        slots = (pool->max_blocks - 1) / blocks + 1;
    if (slots == 0)
        return;

    size_t words = (slots + 63) / 64;
    /* Aligned to the blocks, and to the registry's unit as slabs of their
     * own are, so that slabs of 64 KiB are aligned to their size. */
    size_t pad = pool->align > LFP_UNIT ? pool->align : LFP_UNIT;
    size_t tables = LFP__ROUND(lfp_range_tables_size(slots), ps);
    size_t size = tables + pad + slots * span;
    char *m = lfp_os_reserve(size);
    if (m == NULL)
        return;
    if (mprotect(m, tables, PROT_READ | PROT_WRITE) != 0) {
        lfp_os_unmap(m, size);
        return;
    }
    _Atomic(struct lfp_slab *) *range = (void *)m;
    _Atomic uint64_t *claim = (_Atomic uint64_t *)(void *)(range + slots);
    /* Positions past the last are claimed for good. */
    if (slots % 64 != 0)
        atomic_store(&claim[words - 1], ~(uint64_t)0 << (slots % 64));
    pool->range_map = m;
    pool->range_map_size = size;
    pool->base = LFP__ROUND((uintptr_t)m + tables, pad);
    pool->range_slots = slots;
    pool->range_claim = claim;
    pool->range_shift = (unsigned)__builtin_ctzll(blocks);
    size_t positions = slots * blocks;
    atomic_store(&pool->carved, pool->max_blocks != 0 && pool->max_blocks < positions
                                    ? pool->max_blocks : positions);
    pool->range = range;
}

static void lfp_range_teardown(struct lfp_pool *pool)
{
    if (pool->range == NULL)
        return;
    lfp_os_unmap(pool->range_map, pool->range_map_size);
    pool->range = NULL;
    atomic_store(&pool->carved, 0);
}

/* ---- records: slab descriptors, holes ---- */

/* A record of size bytes, whose spare-list node lies link_off bytes in: a
 * spare one, or the first of a page of new ones (the rest become spares).
 * Records are never given back, so a pop of the spare list, or a lookup
 * that holds a descriptor, may read one another thread has just taken.
 * Mapped, not malloc'd: a growth or an automatic trim may run in a signal
 * handler, where malloc is not safe (it may have interrupted malloc). A
 * new page is zeroed; a spare keeps what its last user left. */
static void *lfp_record_new(struct lfp_stack *spare, size_t size, size_t link_off)
{
    struct lfp_node *n = lfp_stack_pop(spare);
    if (n != NULL)
        return (char *)n - link_off;
    size_t ps = lfp_page_size(), k = ps / size;
    char *m = lfp_os_map(ps);
    if (m == NULL)
        return NULL;
#define LFP_RECORD_LINK(i) ((struct lfp_node *)(m + (i) * size + link_off))
    for (size_t i = 1; i + 1 < k; i++)
        LFP_RECORD_LINK(i)->next = LFP_RECORD_LINK(i + 1);
    if (k > 1)
        lfp_stack_push(spare, LFP_RECORD_LINK(1), LFP_RECORD_LINK(k - 1));
#undef LFP_RECORD_LINK
    return m;
}

/* ---- slabs ---- */

/* A slab of nblocks blocks at the range's position pos, or anywhere with
 * pos SIZE_MAX. On failure, pos is given up. */
static struct lfp_slab *lfp_slab_new(struct lfp_pool *pool, size_t nblocks, size_t pos)
{
    struct lfp_slab *d = lfp_record_new(&lfp_slab_spare, sizeof(*d),
                                        offsetof(struct lfp_slab, free_link));
    if (d == NULL)
        goto fail_pos;
    _Atomic uint64_t *used = NULL;
    if (lfp_checked(pool) && (used = lfp_sys_zalloc(lfp_used_bytes(nblocks), 0)) == NULL)
        goto fail;
    size_t size;
    uintptr_t base;
    if (pos != SIZE_MAX) {
        size = lfp_range_span(pool);
        base = pool->base + pos * size;
        if (!lfp_os_commit((void *)base, size))
            goto fail;
    } else {
        /* Over-map by one unit and cut the ends off, for unit alignment;
         * whole units, as the registry maps them. */
        size = LFP__ROUND(pool->slab_bytes, LFP_UNIT);
        char *m = lfp_os_map(size + LFP_UNIT);
        if (m == NULL)
            goto fail;
        base = ((uintptr_t)m + LFP_UNIT - 1) & ~(uintptr_t)(LFP_UNIT - 1);
        if (base > (uintptr_t)m)
            lfp_os_unmap(m, base - (uintptr_t)m);
        if ((uintptr_t)m + LFP_UNIT > base)
            lfp_os_unmap((void *)(base + size), (uintptr_t)m + LFP_UNIT - base);
    }
    d->map = (void *)base;
    d->map_size = size;
    d->pos = pos;
    d->home = pool;
    d->scratch = 0;
    uint64_t gen = atomic_load_explicit(&d->gen, memory_order_relaxed);
    atomic_store_explicit(&d->gen, gen + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&d->base, base, memory_order_relaxed);
    atomic_store_explicit(&d->nblocks, nblocks, memory_order_relaxed);
    atomic_store_explicit(&d->used, used, memory_order_relaxed);
    atomic_store_explicit(&d->pool, pool, memory_order_relaxed);
    atomic_store_explicit(&d->gen, gen + 2, memory_order_release);
    if (pos != SIZE_MAX) {
        atomic_store_explicit(&pool->range[pos], d, memory_order_release);
    } else if (lfp_reg_set(base, size, d) != LFP_OK) {
        lfp_reg_set(base, size, NULL);
        lfp_os_unmap(d->map, size);
        goto fail;
    }
    atomic_fetch_add_explicit(&pool->slab_mapped, size, memory_order_relaxed);
    return d;
fail:
    /* No stale bitmap in a recycled descriptor. */
    atomic_store_explicit(&d->used, NULL, memory_order_relaxed);
    lfp_sys_free(used);
    lfp_stack_push(&lfp_slab_spare, &d->free_link, &d->free_link);
fail_pos:
    if (pos != SIZE_MAX)
        lfp_range_unclaim(pool, pos);
    return NULL;
}

/* Give back the memory of a slab that is out of the registry (or range) and
 * that no pop can still read. A range slab's position is free again once
 * its memory is gone; keep_range: the whole range goes next, leave it. */
static void lfp_slab_release(struct lfp_slab *d, bool keep_range)
{
    if (d->pos == SIZE_MAX) {
        lfp_os_unmap(d->map, d->map_size);
    } else if (!keep_range) {
        lfp_os_decommit(d->map, d->map_size);
        lfp_range_unclaim(d->home, d->pos);
    }
    d->map = NULL;
    lfp_sys_free(atomic_exchange_explicit(&d->used, NULL, memory_order_relaxed));
    lfp_stack_push(&lfp_slab_spare, &d->free_link, &d->free_link);
}

#ifndef LFP_TEST_NO_GRACE
#ifdef LFP_TSAN
/* liburcu is not instrumented: tell TSan that call_rcu orders what the
 * trimming thread did to a descriptor before its callback runs. */
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define LFP_TSAN_RELEASE(p) __tsan_release(p)
#define LFP_TSAN_ACQUIRE(p) __tsan_acquire(p)
#else
#define LFP_TSAN_RELEASE(p) ((void)(p))
#define LFP_TSAN_ACQUIRE(p) ((void)(p))
#endif

static void lfp_slab_release_rcu(struct rcu_head *h)
{
    struct lfp_slab *d = LFP_CONTAINER(h, struct lfp_slab, rcu);
    LFP_TSAN_ACQUIRE(d); /* before the first read of d */
    struct lfp_pool *pool = d->home;
    lfp_slab_release(d, false);
    /* The last touch of the pool: its destroy waits for this. */
    atomic_fetch_sub_explicit(&pool->releasing, 1, memory_order_release);
}
#endif

/* Take a slab out of its pool: destructors, registry, counters (but the
 * pool's total, which the caller keeps). Its blocks must all be free and
 * in the caller's hands. */
static void lfp_slab_retire(struct lfp_pool *pool, struct lfp_slab *d)
{
    size_t n = lfp_slab_blocks(d);
    /* Plain memory again, for fini and for whatever is mapped here next. */
    lfp_mem_show(pool, (void *)lfp_slab_base(d), n * pool->stride);
    if (pool->fini != NULL)
        for (size_t i = 0; i < n; i++)
            pool->fini((void *)(lfp_slab_base(d) + i * pool->stride), pool->arg);
    if (d->pos != SIZE_MAX)
        atomic_store_explicit(&pool->range[d->pos], NULL, memory_order_release);
    else
        lfp_reg_set(lfp_slab_base(d), d->map_size, NULL);
    atomic_store_explicit(&d->pool, NULL, memory_order_release);
    atomic_fetch_sub_explicit(&pool->slab_mapped, d->map_size, memory_order_relaxed);
}

/* ---- holes ----
 *
 * A slab with a block in use stays whole, but a trim that finds a run of
 * its blocks free over at least LFP_HOLE_MIN bytes of whole pages gives
 * those pages back: the blocks that lie in them leave the depot as a hole
 * (a record on the pool's holes stack) and their pages go (MADV_DONTNEED).
 * A growth takes a hole before it makes a slab, and makes its blocks ready
 * as it would a new slab's. Their links lived in those pages, so the hole
 * is all that is left of them; destructors would have to run over them
 * first, and a pool with one (fini) only gives back whole slabs.
 *
 * A trim takes the whole holes stack with the depot: a slab is free when
 * its blocks are all among the batches and the holes it holds. A hole that
 * a growth has popped is in neither, so its slab stays. Records live in
 * library memory that is never given back (recycled like descriptors), so
 * a pop may read one that another thread has just taken. */
#define LFP_HOLE_MIN ((size_t)16 << 10)

struct lfp_hole {
    struct lfp_node link; /* the pool's holes, a trim's, or the spare list */
    struct lfp_slab *slab;
    size_t first, count;  /* the slab's blocks first .. first + count - 1 */
    size_t bytes;         /* of their pages given back (0: the OS refused) */
};

static struct lfp_stack lfp_hole_spare; /* recycled records */

static struct lfp_hole *lfp_hole_new(void)
{
    return lfp_record_new(&lfp_hole_spare, sizeof(struct lfp_hole),
                          offsetof(struct lfp_hole, link));
}

static void lfp_hole_recycle(struct lfp_hole *h)
{
    lfp_stack_push(&lfp_hole_spare, &h->link, &h->link);
}

/* Make blocks a .. b - 1 of slab d, all free and the caller's, a hole if
 * they span enough whole pages: the blocks that lie in those pages leave
 * the map of free blocks (lfp_hole_drop gives the pages back). Returns the
 * hole, or NULL. */
static struct lfp_hole *lfp_hole_make(struct lfp_pool *pool, struct lfp_slab *d, size_t a,
                                      size_t b)
{
    size_t ps = lfp_page_size(), stride = pool->stride;
    size_t least = LFP_HOLE_MIN > ps ? LFP_HOLE_MIN : ps;
    uintptr_t base = lfp_slab_base(d), lo;
    size_t bytes = lfp_pages_within(base + a * stride, base + b * stride, &lo);
    if (bytes < least)
        return NULL;
    uintptr_t hi = lo + bytes;
    struct lfp_hole *h = lfp_hole_new();
    if (h == NULL)
        return NULL; /* the blocks stay in the depot */
    /* The blocks that have a byte in [lo, hi). */
    h->slab = d;
    h->first = (lo - base) / stride;
    h->count = (hi - base + stride - 1) / stride - h->first;
    for (size_t i = h->first; i < h->first + h->count; i++)
        d->free_map[i / 64] &= ~((uint64_t)1 << (i % 64));
    return h;
}

/* Give a new hole's pages back, once no walk of the depot's batches needs
 * the links in them; returns the bytes given back. Pages the OS keeps
 * (locked) stay counted as memory the pool holds; the hole is a hole all
 * the same. */
static size_t lfp_hole_drop(struct lfp_pool *pool, struct lfp_hole *h)
{
    uintptr_t start = lfp_slab_base(h->slab) + h->first * pool->stride, from;
    /* Out of bounds, links and all, until a growth takes the hole: a write
     * through a stale pointer stays a memory checker's report. */
    lfp_mem_hide(pool, (void *)start, h->count * pool->stride);
    /* The pages wholly inside its blocks; those at either end may reach
     * into pages that stay. */
    size_t bytes = lfp_pages_within(start, start + h->count * pool->stride, &from);
    h->bytes = lfp_os_drop((void *)from, bytes, false);
    return h->bytes;
}

/* Take a hole, if the pool has one, and make its blocks ready as a growth
 * does a slab's: want of them in *first, the rest to the depot. In flight
 * from before the pop, whose CAS releases the count: a thread that finds
 * the stack empty and the pool at its bound waits for these blocks
 * (lfp_depot_take). The acquire load spares a thread that finds no hole
 * the count, which others at the bound would wait on. */
static bool lfp_hole_fill(struct lfp_pool *pool, uint32_t want, struct lfp_free **first,
                          uint32_t *mine)
{
    if (lfp_load2(&pool->holes.head).ptr == NULL)
        return false;
    struct lfp_inflight r;
    lfp_inflight_begin(pool, &r, LFP_FLIGHT_MAKE);
    struct lfp_node *n = lfp_stack_pop(&pool->holes);
    if (n == NULL) {
        lfp_inflight_cancel(&r);
        return false;
    }
    LFP_TEST_HOOK(lfp_test_hole_hook);
    struct lfp_hole *h = LFP_CONTAINER(n, struct lfp_hole, link);
    uintptr_t start = lfp_slab_base(h->slab) + h->first * pool->stride;
    size_t count = h->count, bytes = h->bytes;
    lfp_hole_recycle(h);
    atomic_fetch_sub_explicit(&pool->holed, count, memory_order_relaxed);
    atomic_fetch_add_explicit(&pool->slab_mapped, bytes, memory_order_relaxed);
    /* Plain memory again, as a new slab's is, for the carve. */
    lfp_mem_show(pool, (void *)start, count * pool->stride);
    *mine = lfp_carve_split(pool, start, count, want, first);
    lfp_inflight_end(&r);
    return true;
}

int lfp_slab_holes_walk(struct lfp_pool *pool, int (*fn)(void *ctx, void *block), void *ctx,
                        size_t *n)
{
    *n = 0;
    for (struct lfp_node *k = pool->holes.head.ptr; k != NULL; k = k->next) {
        struct lfp_hole *h = LFP_CONTAINER(k, struct lfp_hole, link);
        for (size_t i = 0; i < h->count; i++) {
            int err = fn(ctx, (void *)(lfp_slab_base(h->slab) + (h->first + i) * pool->stride));
            if (err != LFP_OK)
                return err;
        }
        *n += h->count;
    }
    return LFP_OK;
}

/* Count up to n more blocks in the pool's total, within max_blocks: all n,
 * or with partial as many as fit. Returns the count added, maybe 0. */
static size_t lfp_total_add(struct lfp_pool *pool, size_t n, bool partial)
{
    /* Release on success, to publish the caller's count of itself in
     * pool->inbound; acquire on the loads, so that a thread that finds the
     * pool at its bound sees every earlier claimer's count (lfp_slab_grow). */
    size_t cur = atomic_load_explicit(&pool->total, memory_order_acquire), k;
    do {
        k = n;
        if (pool->max_blocks != 0 && cur + k > pool->max_blocks) {
            k = partial && cur < pool->max_blocks ? pool->max_blocks - cur : 0;
            if (k == 0)
                return 0;
        }
    } while (!atomic_compare_exchange_weak_explicit(&pool->total, &cur, cur + k,
                                                    memory_order_release,
                                                    memory_order_acquire));
    return k;
}

uint32_t lfp_slab_grow(struct lfp_pool *pool, uint32_t want, struct lfp_free **first)
{
    /* A hole first: its blocks are counted in the pool already, so it is
     * taken at the bound too. */
    uint32_t mine;
    if (lfp_hole_fill(pool, want, first, &mine))
        return mine;
    /* A whole position of the range if one is free and fits the bound, else
     * a slab of its own (the last one may be cut short by the bound). */
    if (pool->max_blocks != 0 &&
        atomic_load_explicit(&pool->total, memory_order_acquire) >= pool->max_blocks) {
        errno = ENOBUFS;
        return 0;
    }
    /* The slab's blocks beyond want go to the depot only once made ready:
     * in flight until then, counted as lfp_carve counts a fixed pool's run
     * (the claim in lfp_total_add releases the count). At the bound the
     * check above fails first, without counting. */
    struct lfp_inflight r;
    lfp_inflight_begin(pool, &r, LFP_FLIGHT_MAKE);
    size_t n = 0, pos = pool->range != NULL ? lfp_range_claim(pool) : SIZE_MAX;
    if (pos != SIZE_MAX && (n = lfp_total_add(pool, lfp_range_blocks(pool, pos), false)) == 0) {
        lfp_range_unclaim(pool, pos);
        pos = SIZE_MAX;
    }
    if (pos == SIZE_MAX && (n = lfp_total_add(pool, pool->slab_blocks, true)) == 0) {
        lfp_inflight_cancel(&r);
        errno = ENOBUFS;
        return 0;
    }
    size_t cur = atomic_load_explicit(&pool->total, memory_order_relaxed);
    struct lfp_slab *d = lfp_slab_new(pool, n, pos);
    if (d == NULL) {
        atomic_fetch_sub_explicit(&pool->total, n, memory_order_relaxed);
        lfp_inflight_cancel(&r);
        errno = ENOMEM;
        return 0;
    }
    size_t hwm = atomic_load_explicit(&pool->total_max, memory_order_relaxed);
    while (hwm < cur &&
           !atomic_compare_exchange_weak_explicit(&pool->total_max, &hwm, cur,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
    /* On the pool's list before any block is published, so a trim that
     * finds a block also finds its slab. */
    lfp_stack_push(&pool->slabs, &d->pool_link, &d->pool_link);

    mine = lfp_carve_split(pool, lfp_slab_base(d), n, want, first);
    lfp_inflight_end(&r);
    return mine;
}

/* Held from counting a slab release in pool->releasing to queuing it with
 * call_rcu, and by fork() (prepare to parent or child): a child never
 * inherits a count whose release was never queued, which its
 * lfp_pool_destroy would wait for for ever. Held with every signal blocked:
 * a handler that forked, or freed into a growable pool whose trim queues a
 * release, would wait for the lock its own thread holds. */
static pthread_mutex_t lfp_queue_lock = PTHREAD_MUTEX_INITIALIZER;

/* Returns the signal mask to restore. */
static sigset_t lfp_queue_lock_take(void)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_mutex_lock(&lfp_queue_lock);
    return old;
}

static void lfp_queue_lock_drop(sigset_t old)
{
    pthread_mutex_unlock(&lfp_queue_lock);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* Around fork(): the lock, and so the blocked signals, last from the first
 * prepare handler to the last parent or child one, over call_rcu's and
 * liburcu-bp's (which wait for call_rcu's worker, and unblock signals). */
static sigset_t lfp_fork_mask;

static void lfp_fork_prepare(void)
{
    lfp_fork_mask = lfp_queue_lock_take();
}

static void lfp_fork_after(void)
{
    lfp_queue_lock_drop(lfp_fork_mask);
}

/*
 * fork() and RCU. liburcu-bp leaves fork to the program: its handlers hold
 * its locks across the fork and, in the child, forget the readers of the
 * threads that are gone, which every later grace period (a trim's,
 * call_rcu's) would wait for for ever, with signals blocked. call_rcu's
 * worker thread does not survive a fork either: its handlers stop it around
 * the fork and start one in the child. And the queue lock above keeps a
 * release from being counted and not queued at the fork.
 *
 * All three sets are registered at once, at the first growable pool, before
 * that pool can queue anything: glibc runs only the handlers that existed
 * when a fork's prepare phase began, so a set registered later, at the first
 * release, would miss a fork already under way. In this order, as prepare
 * handlers run in the reverse order of registration: the queue lock first,
 * then call_rcu's (which pauses its worker), then liburcu-bp's locks. When
 * liburcu-bp's registration fails, growable pools cannot be made (ENOMEM);
 * when one of the others does, automatic trims wait for their own grace
 * periods instead of queuing.
 */
static pthread_once_t lfp_fork_once = PTHREAD_ONCE_INIT;
static int lfp_rcu_fork_err, lfp_fork_err;

static void lfp_fork_hooks(void)
{
    lfp_rcu_fork_err = pthread_atfork(urcu_bp_before_fork, urcu_bp_after_fork_parent,
                                      urcu_bp_after_fork_child);
    lfp_fork_err = lfp_rcu_fork_err;
    if (lfp_fork_err == 0)
        lfp_fork_err = pthread_atfork(urcu_bp_call_rcu_before_fork,
                                      urcu_bp_call_rcu_after_fork_parent,
                                      urcu_bp_call_rcu_after_fork_child);
    if (lfp_fork_err == 0)
        lfp_fork_err = pthread_atfork(lfp_fork_prepare, lfp_fork_after, lfp_fork_after);
}

int lfp_slab_setup(struct lfp_pool *pool, const struct lfp_config *cfg)
{
    pthread_once(&lfp_fork_once, lfp_fork_hooks);
    if (lfp_rcu_fork_err != 0)
        return LFP_ENOMEM;
    size_t bytes = cfg->slab_size;
    if (bytes != 0) {
        if ((bytes & (bytes - 1)) != 0 || bytes < LFP_UNIT || bytes > LFP_SLAB_MAX ||
            bytes < pool->stride)
            return LFP_EINVAL;
    } else {
        /* At least 256 KiB, and room for LFP_SLAB_MIN_BLOCKS large blocks. */
        bytes = LFP_SLAB_MIN_DEFAULT;
        while (bytes / LFP_SLAB_MIN_BLOCKS < pool->stride) {
            if (bytes > SIZE_MAX / 4)
                return LFP_EINVAL;
            bytes *= 2;
        }
    }
    if (cfg->max_blocks != 0 && cfg->max_blocks < cfg->capacity)
        return LFP_EINVAL;
    pool->slab_bytes = bytes;
    pool->slab_blocks = bytes / pool->stride;
    pool->max_blocks = cfg->max_blocks;
    lfp_stack_init(&pool->slabs);
    lfp_stack_init(&pool->holes);
    atomic_flag_clear(&pool->trimming);
    lfp_range_setup(pool);

    /* The blocks reserved up front go straight to the depot. */
    for (;;) {
        size_t have = atomic_load_explicit(&pool->total, memory_order_relaxed);
        if (have >= cfg->capacity)
            break;
        struct lfp_free *none;
        lfp_slab_grow(pool, 0, &none); /* returns 0 here even when it grew */
        if (atomic_load_explicit(&pool->total, memory_order_relaxed) == have)
            return LFP_ENOMEM;
    }
    /* The trim policy starts once the reservation is made; before, it would
     * trim each reserved slab away as soon as it was made. */
    /* The fewest blocks of more than trim_threshold bytes: a threshold
     * below one block trims at every block that comes back. */
    pool->trim_above = cfg->trim_threshold != 0 ? cfg->trim_threshold / pool->stride + 1 : 0;
    atomic_init(&pool->trim_next,
                atomic_load_explicit(&pool->depot_blocks, memory_order_relaxed) +
                    pool->trim_above);
    return LFP_OK;
}

void lfp_slab_destroy_all(struct lfp_pool *pool)
{
    /* Releases an automatic trim left to call_rcu still touch the pool:
     * wait until the last is done. (Not urcu_bp_barrier: it would wait for
     * every pool's, and its ordering is invisible to ThreadSanitizer.) */
    while (atomic_load_explicit(&pool->releasing, memory_order_acquire) != 0) {
        struct timespec pause = { 0, 100000 };
        nanosleep(&pause, NULL);
    }
    for (struct lfp_node *h = lfp_stack_pop_all(&pool->holes), *next; h != NULL; h = next) {
        next = h->next;
        lfp_hole_recycle(LFP_CONTAINER(h, struct lfp_hole, link));
    }
    struct lfp_node *n = lfp_stack_pop_all(&pool->slabs);
    while (n != NULL) {
        struct lfp_slab *d = LFP_CONTAINER(n, struct lfp_slab, pool_link);
        n = n->next;
        _Atomic uint64_t *used = atomic_load_explicit(&d->used, memory_order_relaxed);
        if (used != NULL)
            lfp_checked_leaks(pool, lfp_slab_base(d), lfp_slab_blocks(d), used);
        lfp_slab_retire(pool, d);
        lfp_slab_release(d, true); /* nobody can be inside the pool any more */
    }
    lfp_range_teardown(pool);
}

void lfp_rcu_read_lock(void)
{
    urcu_bp_read_lock();
}

void lfp_rcu_read_unlock(void)
{
    urcu_bp_read_unlock();
}

bool lfp_rcu_reading(void)
{
    return urcu_bp_read_ongoing() != 0;
}

/* ---- trim ---- */

/* Call fn on every block of a detached depot list, batch by batch, down
 * each laned batch's lanes at once (lfp_batch_walk): a trim of a large
 * depot reads blocks that are mostly out of cache. fn may relink the
 * block. */
static LFP_ALWAYS_INLINE void lfp_depot_list_each(struct lfp_free *batches,
                                                  void (*fn)(void *ctx, struct lfp_free *l,
                                                             uint32_t k),
                                                  void *ctx)
{
    while (batches != NULL) {
        struct lfp_free *next_batch = batches->next;
        lfp_batch_walk(batches, lfp_batch_len(batches), fn, ctx);
        batches = next_batch;
    }
}

/* The blocks of a detached depot list, by its batches' length words (two
 * reads a batch, not one a block), and its last batch in *last. */
static size_t lfp_depot_list_len(struct lfp_free *batches, struct lfp_free **last)
{
    size_t n = 0;
    for (struct lfp_free *b = batches; b != NULL; b = b->next) {
        n += lfp_batch_len(b);
        *last = b;
    }
    return n;
}

/* Push a detached depot list back onto stack i whole, as its batches are. */
static void lfp_depot_list_restore(struct lfp_pool *pool, uint32_t i, struct lfp_free *batches)
{
    if (batches == NULL)
        return;
    struct lfp_free *last = batches;
    size_t n = lfp_depot_list_len(batches, &last);
    lfp_depot_push_to(pool, i, batches, last, n);
}

/* The blocks a trim keeps, linked into laned depot batches of the pool's
 * magazine size (one block each without a cache) as they are added, then
 * pushed with one CAS. They came out of spilled magazines, scattered: on
 * one chain, every later trim and the refill that takes them would read
 * them one cache miss after another. */
struct lfp_batcher {
    struct lfp_free *head, *tail, *cur;
    uint32_t cur_len, size;
    size_t count;
    struct lfp_free *back[LFP_BATCH_LANES]; /* the last L added to cur */
};

static void lfp_batcher_add(struct lfp_batcher *b, struct lfp_free *l)
{
    if (b->cur != NULL && b->cur_len == b->size) {
        lfp_batch_seal(b->cur, b->cur_len, true);
        b->cur = NULL;
    }
    if (b->cur == NULL) {
        l->chain = NULL;
        l->next = b->head;
        if (b->head == NULL)
            b->tail = l;
        b->head = l;
        b->cur = l;
        b->cur_len = 1;
    } else {
        /* Insert after the batch's first block, which stays the head (place
         * 0 of the chain): the j-th block added, j >= 2, ends at place
         * len + 1 - j, so the block L places down from it is the one added
         * L before it. That lane link is set now. The last added (place 1)
         * has its next overwritten by the length when the batch is sealed,
         * and the L added after the head are the last L places, which have
         * no lane link. */
        l->chain = b->cur->chain;
        b->cur->chain = l;
        uint32_t j = ++b->cur_len;
        struct lfp_free **back = &b->back[j % LFP_BATCH_LANES];
        if (j > LFP_BATCH_LANES + 1)
            l->next = *back;
        *back = l;
    }
    b->count++;
}

static void lfp_batcher_push_to(struct lfp_pool *pool, struct lfp_batcher *b, uint32_t stack)
{
    if (b->cur != NULL)
        lfp_batch_seal(b->cur, b->cur_len, true);
    if (b->head != NULL)
        lfp_depot_push_to(pool, stack, b->head, b->tail, b->count);
}

struct lfp_trim_ctx {
    struct lfp_pool *pool;
    struct lfp_batcher keep;
};

static inline size_t lfp_trim_index(const struct lfp_pool *pool, const struct lfp_slab *d,
                                    uintptr_t p)
{
    return lfp_stride_index(pool, p - lfp_slab_base(d));
}

static void lfp_trim_count(void *ctx, struct lfp_free *l, uint32_t k)
{
    (void)k;
    struct lfp_trim_ctx *t = ctx;
    uintptr_t p = (uintptr_t)lfp_block_of(l, t->pool->link_off);
    struct lfp_slab *d = lfp_slab_lookup(t->pool, p);
    if (d == NULL) /* never: depot blocks lie in registered slabs */
        return;
    d->scratch++;
    if (d->free_map != NULL) {
        size_t i = lfp_trim_index(t->pool, d, p);
        d->free_map[i / 64] |= (uint64_t)1 << (i % 64);
    }
}

/* Blocks of slabs that stay, but those a hole took. */
static void lfp_trim_keep(void *ctx, struct lfp_free *l, uint32_t k)
{
    (void)k;
    struct lfp_trim_ctx *t = ctx;
    uintptr_t p = (uintptr_t)lfp_block_of(l, t->pool->link_off);
    struct lfp_slab *d = lfp_slab_lookup(t->pool, p);
    if (d != NULL && d->scratch == lfp_slab_blocks(d))
        return;
    if (d != NULL && d->free_map != NULL) {
        size_t i = lfp_trim_index(t->pool, d, p);
        if (!(d->free_map[i / 64] & ((uint64_t)1 << (i % 64))))
            return;
    }
    lfp_batcher_add(&t->keep, l);
}

/* A map of free blocks for each listed slab, in one mapping of *bytes;
 * NULL (no holes this time) when the OS refuses it. */
static uint64_t *lfp_trim_maps(struct lfp_node *slabs, size_t *bytes)
{
    size_t words = 0;
    for (struct lfp_node *n = slabs; n != NULL; n = n->next)
        words += (lfp_slab_blocks(LFP_CONTAINER(n, struct lfp_slab, pool_link)) + 63) / 64;
    *bytes = LFP__ROUND(words * sizeof(uint64_t), lfp_page_size());
    uint64_t *maps = *bytes != 0 ? lfp_os_map(*bytes) : NULL;
    for (struct lfp_node *n = slabs, *u = (void *)maps; maps != NULL && n != NULL; n = n->next) {
        struct lfp_slab *d = LFP_CONTAINER(n, struct lfp_slab, pool_link);
        d->free_map = (uint64_t *)u;
        u = (void *)(d->free_map + (lfp_slab_blocks(d) + 63) / 64);
    }
    return maps;
}

/* The next bit from i that is set (want) or clear (!want) in a map of n
 * bits; n if none is. */
static size_t lfp_map_next(const uint64_t *map, size_t n, size_t i, bool want)
{
    while (i < n) {
        uint64_t w = want ? map[i / 64] : ~map[i / 64];
        w &= ~(uint64_t)0 << (i % 64);
        if (w != 0) {
            i = i / 64 * 64 + (size_t)__builtin_ctzll(w);
            return i < n ? i : n;
        }
        i = (i / 64 + 1) * 64;
    }
    return n;
}

/* Holes in a slab that stays, from the runs of blocks its map has free;
 * pushed on *list. Returns the blocks they took. */
static size_t lfp_trim_holes(struct lfp_pool *pool, struct lfp_slab *d, struct lfp_node **list)
{
    size_t n = lfp_slab_blocks(d), taken = 0;
    for (size_t a = lfp_map_next(d->free_map, n, 0, true); a < n;) {
        size_t b = lfp_map_next(d->free_map, n, a, false);
        struct lfp_hole *h = lfp_hole_make(pool, d, a, b);
        if (h != NULL) {
            taken += h->count;
            h->link.next = *list;
            *list = &h->link;
        }
        a = lfp_map_next(d->free_map, n, b, true);
    }
    return taken;
}

/* The blocks a trim keeps, named by the maps: in each slab that stays, the
 * blocks found free and not taken by a hole, in address order, in laned
 * batches of a magazine, pushed to the trimming thread's stack. Where
 * holes took most of the free blocks, this reads only the maps and writes
 * only the blocks kept: a second walk would read every block the trim
 * took, for the few it keeps (with one block in use in each MiB of 256 MiB
 * of blocks, 1 in 64). */
static void lfp_trim_keep_mapped(struct lfp_pool *pool, struct lfp_node *slabs)
{
    struct lfp_batcher b = { .size = pool->mag_size };
    for (struct lfp_node *n = slabs; n != NULL; n = n->next) {
        struct lfp_slab *d = LFP_CONTAINER(n, struct lfp_slab, pool_link);
        size_t nb = lfp_slab_blocks(d);
        if (d->scratch == nb || d->free_map == NULL)
            continue; /* gone: the top, and those right after it, are
                       * still reached from the top when they went */
        uintptr_t link0 = lfp_slab_base(d) + pool->link_off;
        for (size_t i = lfp_map_next(d->free_map, nb, 0, true); i < nb;
             i = lfp_map_next(d->free_map, nb, i + 1, true))
            lfp_batcher_add(&b, (struct lfp_free *)(link0 + i * pool->stride));
    }
    lfp_batcher_push_to(pool, &b, lfp_depot_home(pool));
}

#ifndef LFP_TEST_NO_GRACE
/* Queue the release of each slab of list (linked through free_link) to
 * call_rcu, counted in pool->releasing first, under the queue lock. */
static void lfp_release_later(struct lfp_pool *pool, struct lfp_slab *list)
{
    sigset_t old = lfp_queue_lock_take();
    while (list != NULL) {
        struct lfp_slab *d = list;
        list = (struct lfp_slab *)d->free_link.next;
        atomic_fetch_add_explicit(&pool->releasing, 1, memory_order_relaxed);
        LFP_TEST_HOOK(lfp_test_queue_hook);
        LFP_TSAN_RELEASE(d);
        urcu_bp_call_rcu(&d->rcu, lfp_slab_release_rcu);
    }
    lfp_queue_lock_drop(old);
}
#endif

size_t lfp_slab_trim(struct lfp_pool *pool, bool wait)
{
    /* Holes: in lfp_pool_trim's trims (wait), not in automatic ones, which
     * a steady state with blocks in use in most slabs sets off at every
     * trim_threshold bytes freed: each would give pages back for the next
     * burst of allocations to fault in again (a review's program, one block
     * in use every 64 KiB and a threshold of 1 MiB: 22 ms a cycle against
     * 5). Not in a pool with destructors (fini would have to run over the
     * blocks first), nor in a checked one: the pages would take with them
     * the evidence of a write to a free block, which the next lfp_alloc of
     * that block reports. */
    bool holes_ok = wait && pool->fini == NULL && !lfp_checked(pool);
    if (atomic_flag_test_and_set_explicit(&pool->trimming, memory_order_acquire))
        return 0; /* another thread is trimming this pool */

    /* Take the whole depot: from here its blocks are this thread's, and a
     * slab all of whose blocks are among them is free for good. Threads
     * that find the depot empty meanwhile grow the pool instead, or, at
     * max_blocks, wait for the blocks kept to come back (lfp_depot_take):
     * the trim counts itself in flight, and the pops' CAS release the
     * count to any thread whose acquire reads of the stacks' tags find
     * them emptied. */
    struct lfp_inflight r;
    lfp_inflight_begin(pool, &r, LFP_FLIGHT_TRIM);
    uint32_t nstacks = pool->depot_mask + 1;
    struct lfp_free *batches[LFP_DEPOT_STACKS_MAX];
    for (uint32_t i = 0; i < nstacks; i++)
        batches[i] = lfp_depot_take_stack(pool, i);
    /* The holes too: from here they are this trim's, and a slab is free
     * when its blocks are all among the batches and its holes. */
    struct lfp_node *holes = lfp_stack_pop_all(&pool->holes);
    /* The pool's slabs are walked where they lie, never detached (only a
     * trim removes, one at a time; destroy is excluded), so that
     * a child forked meanwhile keeps them all but the victims unlinked so
     * far (whose blocks this trim holds). Every slab with a block among the
     * batches is on the list from before the batches were taken: a growth
     * lists its slab before it publishes a block. The counts are this
     * trim's: set to zero first, as a trim cut short by a fork leaves its
     * own. */
    lfp_pair top = lfp_load2(&pool->slabs.head);
    /* When the batches and holes hold as many blocks as the listed slabs
     * have, every listed slab is free, with no walk over the blocks (a pool
     * drained after a peak, the usual trim): the blocks are distinct and
     * each lies in a listed slab, so as many means all of them. Else one
     * walk counts each slab's blocks among the batches, and marks them in
     * a map for the holes. Not in a pool without a cache, whose batches
     * are single blocks: there the count would be a walk of its own. */
    size_t held = 0, listed = 0, holed = 0;
    for (uint32_t i = 0; i < nstacks && pool->mag_size != 0; i++) {
        struct lfp_free *last;
        held += lfp_depot_list_len(batches[i], &last);
    }
    for (struct lfp_node *n = holes; n != NULL; n = n->next)
        holed += LFP_CONTAINER(n, struct lfp_hole, link)->count;
    for (struct lfp_node *n = top.ptr; n != NULL; n = n->next)
        listed += lfp_slab_blocks(LFP_CONTAINER(n, struct lfp_slab, pool_link));
    bool all_free = held + holed == listed;
    for (struct lfp_node *n = top.ptr; n != NULL; n = n->next) {
        struct lfp_slab *d = LFP_CONTAINER(n, struct lfp_slab, pool_link);
        d->scratch = all_free ? lfp_slab_blocks(d) : 0;
        d->free_map = NULL;
    }
    struct lfp_trim_ctx t = { .pool = pool };
    uint64_t *maps = NULL;
    size_t maps_bytes = 0;
    if (!all_free) {
        for (struct lfp_node *n = holes; n != NULL; n = n->next) {
            struct lfp_hole *h = LFP_CONTAINER(n, struct lfp_hole, link);
            h->slab->scratch += h->count;
        }
        if (holes_ok)
            maps = lfp_trim_maps(top.ptr, &maps_bytes);
        for (uint32_t i = 0; i < nstacks; i++)
            lfp_depot_list_each(batches[i], lfp_trim_count, &t);
    }

    struct lfp_slab *victims = NULL;
    size_t counted = 0, gone = 0;
    for (struct lfp_node *n = top.ptr, *prev = NULL; n != NULL; n = n->next) {
        struct lfp_slab *d = LFP_CONTAINER(n, struct lfp_slab, pool_link);
        counted += d->scratch;
        if (d->scratch == lfp_slab_blocks(d)) {
            gone += d->scratch;
            lfp_stack_remove(&pool->slabs, prev, n);
            d->free_map = NULL;
            d->free_link.next = (struct lfp_node *)victims;
            victims = d;
        } else {
            prev = n;
        }
    }
    /* The victims' holes go with them (their pages are counted in the
     * slab's mapping again, which its retirement takes off); the others
     * stay, with the holes this trim makes. */
    size_t dropped = 0, dropped_bytes = 0, made_bytes = 0, taken = 0;
    struct lfp_node *keep_holes = NULL;
    for (struct lfp_node *n = holes, *next; n != NULL; n = next) {
        next = n->next;
        struct lfp_hole *h = LFP_CONTAINER(n, struct lfp_hole, link);
        if (h->slab->scratch == lfp_slab_blocks(h->slab)) {
            dropped_bytes += h->bytes;
            dropped += h->count;
            lfp_hole_recycle(h);
        } else {
            n->next = keep_holes;
            keep_holes = n;
        }
    }
    atomic_fetch_add_explicit(&pool->slab_mapped, dropped_bytes, memory_order_relaxed);
    struct lfp_node *made = NULL;
    for (struct lfp_node *n = top.ptr; maps != NULL && n != NULL; n = n->next) {
        struct lfp_slab *d = LFP_CONTAINER(n, struct lfp_slab, pool_link);
        if (d->free_map != NULL && d->scratch != lfp_slab_blocks(d))
            taken += lfp_trim_holes(pool, d, &made);
    }
    /* Blocks of the batches: detached from the depot, gone with a slab,
     * taken by a new hole, kept. */
    size_t detached = counted - holed, kept = detached - (gone - dropped) - taken;
    atomic_fetch_sub_explicit(&pool->depot_blocks, detached, memory_order_relaxed);
    LFP_TEST_HOOK(lfp_test_trim_hook);
    /* With no slab free and no hole made, the batches go back as they are,
     * to the stacks they came from; with nothing kept, none. Otherwise,
     * with maps, the maps name the blocks kept, which go to the trimming
     * thread's stack, and the batches are not read again; without (maps
     * refused, or a pool without a cache, whose single blocks came from
     * each CPU's frees) a second walk over every block sorts them out,
     * each stack's back to it, so that a CPU's blocks stay where its
     * threads look first. */
    bool from_maps = maps != NULL && pool->mag_size != 0 && (gone != 0 || taken != 0);
    if (from_maps && kept != 0)
        lfp_trim_keep_mapped(pool, top.ptr);
    for (uint32_t i = 0; i < nstacks && kept != 0 && !from_maps; i++) {
        if (gone == 0 && taken == 0) {
            lfp_depot_list_restore(pool, i, batches[i]);
            continue;
        }
        t.keep = (struct lfp_batcher){ .size = pool->mag_size ? pool->mag_size : 1 };
        lfp_depot_list_each(batches[i], lfp_trim_keep, &t);
        lfp_batcher_push_to(pool, &t.keep, i);
    }
    if (maps != NULL)
        lfp_os_unmap(maps, maps_bytes);
    /* The new holes' pages go now that no walk reads the links in them. */
    for (struct lfp_node *n = made, *next; n != NULL; n = next) {
        next = n->next;
        made_bytes += lfp_hole_drop(pool, LFP_CONTAINER(n, struct lfp_hole, link));
        n->next = keep_holes;
        keep_holes = n;
    }
    /* Counted before the holes are pushed, whose CAS publishes it to the
     * growth that pops one. */
    atomic_fetch_add_explicit(&pool->holed, taken, memory_order_relaxed);
    atomic_fetch_sub_explicit(&pool->holed, dropped, memory_order_relaxed);
    atomic_fetch_sub_explicit(&pool->slab_mapped, made_bytes, memory_order_relaxed);
    if (keep_holes != NULL) {
        struct lfp_node *last = keep_holes;
        while (last->next != NULL)
            last = last->next;
        lfp_stack_push(&pool->holes, keep_holes, last);
    }
    /* The victims' blocks leave the pool's total before their destructors
     * run: a thread waiting at max_blocks then sees the kept blocks back
     * and room to grow (landed releases both), and does not wait for fini
     * to run over whole slabs. */
    atomic_fetch_sub_explicit(&pool->total, gone, memory_order_relaxed);
    lfp_inflight_landed(&r);

    /* The new holes' pages, and the victims' but for their holes' (given
     * back by an earlier trim). */
    size_t released = made_bytes;
    struct lfp_slab *list = victims;
    for (struct lfp_slab *d = list; d != NULL; d = (struct lfp_slab *)d->free_link.next) {
        lfp_slab_retire(pool, d);
        released += d->map_size;
    }
    released -= dropped_bytes;
    atomic_store_explicit(&pool->trim_next,
                          atomic_load_explicit(&pool->depot_blocks, memory_order_relaxed) +
                              pool->trim_above,
                          memory_order_relaxed);
    atomic_flag_clear_explicit(&pool->trimming, memory_order_release);
    lfp_inflight_end(&r);

    /* The automatic policy leaves the wait to call_rcu, when it can. */
    wait = wait || lfp_fork_err != 0;
#ifndef LFP_TEST_NO_GRACE
    if (list != NULL && !wait) {
        lfp_release_later(pool, list);
        return released;
    }
    if (list != NULL)
        urcu_bp_synchronize_rcu();
#endif
    while (list != NULL) {
        struct lfp_slab *d = list;
        list = (struct lfp_slab *)d->free_link.next;
        lfp_slab_release(d, false);
    }
    return released;
}
