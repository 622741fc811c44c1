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
#include <stdlib.h>
#include <string.h>

#include <urcu/urcu-bp.h>

#include "internal.h"
#include "sanitize.h"

#define LFP_UNIT_SHIFT 16u /* the registry maps 64 KiB units */
#define LFP_UNIT ((size_t)1 << LFP_UNIT_SHIFT)
#define LFP_L2_BITS 16u
#define LFP_L1_BITS (48u - LFP_UNIT_SHIFT - LFP_L2_BITS) /* 48-bit addresses */
#define LFP_SLAB_MIN_DEFAULT ((size_t)256 * 1024)
#define LFP_SLAB_MIN_BLOCKS 16u

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
    size_t scratch;            /* trim: free blocks counted */
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

/* Is p the start of one of pool's blocks? Then also its index in its slab
 * and, when used is not NULL, the slab's in-use bitmap. Inlined, so that
 * the plain ownership check does not load the bitmap. */
static inline bool lfp_slab_find(const struct lfp_pool *pool, const void *p, size_t *index,
                                 _Atomic uint64_t **used)
{
    struct lfp_slab *d = lfp_reg_find((uintptr_t)p);
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

/* ---- slabs ---- */

static struct lfp_slab *lfp_slab_new(struct lfp_pool *pool, size_t nblocks)
{
    struct lfp_node *n = lfp_stack_pop(&lfp_slab_spare);
    struct lfp_slab *d = n ? LFP_CONTAINER(n, struct lfp_slab, free_link)
                           : lfp_sys_zalloc(sizeof(*d), 0);
    if (d == NULL)
        return NULL;
    _Atomic uint64_t *used = NULL;
    if (lfp_checked(pool) && (used = lfp_sys_zalloc(lfp_used_bytes(nblocks), 0)) == NULL)
        goto fail;
    /* Over-map by one unit and cut the ends off, for unit alignment. */
    size_t size = pool->slab_bytes;
    char *m = lfp_os_map(size + LFP_UNIT);
    if (m == NULL)
        goto fail;
    uintptr_t base = ((uintptr_t)m + LFP_UNIT - 1) & ~(uintptr_t)(LFP_UNIT - 1);
    if (base > (uintptr_t)m)
        lfp_os_unmap(m, base - (uintptr_t)m);
    if ((uintptr_t)m + LFP_UNIT > base)
        lfp_os_unmap((void *)(base + size), (uintptr_t)m + LFP_UNIT - base);
    d->map = (void *)base;
    d->map_size = size;
    d->scratch = 0;
    uint64_t gen = atomic_load_explicit(&d->gen, memory_order_relaxed);
    atomic_store_explicit(&d->gen, gen + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&d->base, base, memory_order_relaxed);
    atomic_store_explicit(&d->nblocks, nblocks, memory_order_relaxed);
    atomic_store_explicit(&d->used, used, memory_order_relaxed);
    atomic_store_explicit(&d->pool, pool, memory_order_relaxed);
    atomic_store_explicit(&d->gen, gen + 2, memory_order_release);
    if (lfp_reg_set(base, size, d) != LFP_OK) {
        lfp_reg_set(base, size, NULL);
        lfp_os_unmap(d->map, size);
        goto fail;
    }
    return d;
fail:
    /* No stale bitmap in a recycled descriptor. */
    atomic_store_explicit(&d->used, NULL, memory_order_relaxed);
    lfp_sys_free(used);
    lfp_stack_push(&lfp_slab_spare, &d->free_link, &d->free_link);
    return NULL;
}

/* Unmap a slab that is out of the registry and that no pop can still read. */
static void lfp_slab_release(struct lfp_slab *d)
{
    lfp_os_unmap(d->map, d->map_size);
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
    LFP_TSAN_ACQUIRE(d);
    lfp_slab_release(d);
}
#endif

/* Take a slab out of its pool: destructors, registry, counters. Its blocks
 * must all be free and in the caller's hands. */
static void lfp_slab_retire(struct lfp_pool *pool, struct lfp_slab *d)
{
    size_t n = lfp_slab_blocks(d);
    /* Plain memory again, for fini and for whatever is mapped here next. */
    lfp_mem_show(pool, (void *)lfp_slab_base(d), n * pool->stride);
    if (pool->fini != NULL)
        for (size_t i = 0; i < n; i++)
            pool->fini((void *)(lfp_slab_base(d) + i * pool->stride), pool->arg);
    lfp_reg_set(lfp_slab_base(d), d->map_size, NULL);
    atomic_store_explicit(&d->pool, NULL, memory_order_release);
    atomic_fetch_sub_explicit(&pool->total, n, memory_order_relaxed);
}

/* Link blocks into depot batches of the pool's size (one block each for
 * pools without a cache); the chain grows at *head. Returns its last batch. */
struct lfp_batcher {
    struct lfp_free *head, *tail, *cur;
    uint32_t cur_len, size;
    size_t count;
};

static void lfp_batcher_add(struct lfp_batcher *b, struct lfp_free *l)
{
    if (b->cur != NULL && b->cur_len == b->size) {
        lfp_batch_seal(b->cur, b->cur_len);
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
        /* Insert after the batch's first block, which stays the head. */
        l->chain = b->cur->chain;
        b->cur->chain = l;
        b->cur_len++;
    }
    b->count++;
}

static void lfp_batcher_push(struct lfp_pool *pool, struct lfp_batcher *b)
{
    if (b->cur != NULL)
        lfp_batch_seal(b->cur, b->cur_len);
    if (b->head != NULL)
        lfp_depot_push(pool, b->head, b->tail, b->count);
}

uint32_t lfp_slab_grow(struct lfp_pool *pool, uint32_t want, struct lfp_free **first)
{
    size_t n;
    size_t cur = atomic_load_explicit(&pool->total, memory_order_relaxed);
    do {
        n = pool->slab_blocks;
        if (pool->max_blocks != 0 && cur + n > pool->max_blocks) {
            n = cur < pool->max_blocks ? pool->max_blocks - cur : 0;
            if (n == 0) {
                errno = ENOBUFS;
                return 0;
            }
        }
    } while (!atomic_compare_exchange_weak_explicit(&pool->total, &cur, cur + n,
                                                    memory_order_relaxed,
                                                    memory_order_relaxed));
    struct lfp_slab *d = lfp_slab_new(pool, n);
    if (d == NULL) {
        atomic_fetch_sub_explicit(&pool->total, n, memory_order_relaxed);
        errno = ENOMEM;
        return 0;
    }
    size_t hwm = atomic_load_explicit(&pool->total_max, memory_order_relaxed);
    while (hwm < cur + n &&
           !atomic_compare_exchange_weak_explicit(&pool->total_max, &hwm, cur + n,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
    /* On the pool's list before any block is published, so a trim that
     * finds a block also finds its slab. */
    lfp_stack_push(&pool->slabs, &d->pool_link, &d->pool_link);

    uint32_t mine = want < n ? want : (uint32_t)n;
    struct lfp_free *own = NULL;
    struct lfp_batcher rest = { .size = pool->mag_size ? pool->mag_size : 1 };
    for (size_t i = n; i-- > 0;) {
        struct lfp_free *l =
            lfp_block_fresh(pool, (void *)(lfp_slab_base(d) + i * pool->stride));
        if (i < mine) {
            l->chain = own;
            own = l;
        } else {
            lfp_batcher_add(&rest, l);
        }
    }
    lfp_batcher_push(pool, &rest);
    *first = own;
    return mine;
}

int lfp_slab_setup(struct lfp_pool *pool, const struct lfp_config *cfg)
{
    size_t bytes = cfg->slab_size;
    if (bytes != 0) {
        if ((bytes & (bytes - 1)) != 0 || bytes < LFP_UNIT || bytes < pool->stride)
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
    atomic_flag_clear(&pool->trimming);

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
    pool->trim_above = cfg->trim_threshold / pool->stride;
    atomic_init(&pool->trim_next,
                atomic_load_explicit(&pool->depot_blocks, memory_order_relaxed) +
                    pool->trim_above);
    return LFP_OK;
}

void lfp_slab_destroy_all(struct lfp_pool *pool)
{
    struct lfp_node *n = lfp_stack_pop_all(&pool->slabs);
    while (n != NULL) {
        struct lfp_slab *d = LFP_CONTAINER(n, struct lfp_slab, pool_link);
        n = n->next;
        _Atomic uint64_t *used = atomic_load_explicit(&d->used, memory_order_relaxed);
        if (used != NULL)
            lfp_checked_leaks(pool, lfp_slab_base(d), lfp_slab_blocks(d), used);
        lfp_slab_retire(pool, d);
        lfp_slab_release(d); /* nobody can be inside the pool any more */
    }
}

void lfp_rcu_read_lock(void)
{
    urcu_bp_read_lock();
}

void lfp_rcu_read_unlock(void)
{
    urcu_bp_read_unlock();
}

/* ---- trim ---- */

/* Call fn on every block of a detached depot list; fn may relink the block,
 * so its links are read before the call. */
static void lfp_depot_list_each(struct lfp_pool *pool, struct lfp_free *batches,
                                void (*fn)(void *ctx, struct lfp_free *l), void *ctx)
{
    while (batches != NULL) {
        struct lfp_free *next_batch = batches->next;
        uint32_t len = batches->chain ? (uint32_t)(uintptr_t)batches->chain->next : 1;
        struct lfp_free *l = batches;
        for (uint32_t i = 0; i < len && l != NULL; i++) {
            struct lfp_free *nx = l->chain;
            fn(ctx, l);
            l = nx;
        }
        batches = next_batch;
    }
    (void)pool;
}

struct lfp_trim_ctx {
    struct lfp_pool *pool;
    struct lfp_batcher keep;
};

static void lfp_trim_count(void *ctx, struct lfp_free *l)
{
    struct lfp_trim_ctx *t = ctx;
    struct lfp_slab *d = lfp_reg_find((uintptr_t)lfp_block_of(l, t->pool->link_off));
    if (d != NULL) /* always: depot blocks lie in registered slabs */
        d->scratch++;
}

static void lfp_trim_keep(void *ctx, struct lfp_free *l)
{
    struct lfp_trim_ctx *t = ctx;
    struct lfp_slab *d = lfp_reg_find((uintptr_t)lfp_block_of(l, t->pool->link_off));
    if (d == NULL || d->scratch != lfp_slab_blocks(d))
        lfp_batcher_add(&t->keep, l);
}

size_t lfp_slab_trim(struct lfp_pool *pool, bool wait)
{
    if (atomic_flag_test_and_set_explicit(&pool->trimming, memory_order_acquire))
        return 0; /* another thread is trimming this pool */

    /* Take the whole depot: from here its blocks are this thread's, and a
     * slab all of whose blocks are among them is free for good. Threads
     * that find the depot empty meanwhile grow the pool instead. */
    struct lfp_free *batches = (struct lfp_free *)lfp_stack_pop_all(&pool->depot);
    struct lfp_trim_ctx t = { .pool = pool };
    t.keep.size = pool->mag_size ? pool->mag_size : 1;
    lfp_depot_list_each(pool, batches, lfp_trim_count, &t);

    struct lfp_node *all = lfp_stack_pop_all(&pool->slabs);
    struct lfp_node *kept_first = NULL, *kept_last = NULL;
    struct lfp_slab *victims = NULL;
    size_t detached = 0;
    for (struct lfp_node *n = all; n != NULL;) {
        struct lfp_slab *d = LFP_CONTAINER(n, struct lfp_slab, pool_link);
        n = n->next;
        detached += d->scratch;
        if (d->scratch == lfp_slab_blocks(d)) {
            d->free_link.next = (struct lfp_node *)victims;
            victims = d;
        } else {
            d->pool_link.next = kept_first;
            kept_first = &d->pool_link;
            if (kept_last == NULL)
                kept_last = kept_first;
        }
    }
    atomic_fetch_sub_explicit(&pool->depot_blocks, detached, memory_order_relaxed);
    lfp_depot_list_each(pool, batches, lfp_trim_keep, &t);
    for (struct lfp_node *n = kept_first; n != NULL; n = n->next)
        LFP_CONTAINER(n, struct lfp_slab, pool_link)->scratch = 0;
    if (kept_first != NULL)
        lfp_stack_push(&pool->slabs, kept_first, kept_last);
    lfp_batcher_push(pool, &t.keep);

    size_t released = 0;
    struct lfp_slab *list = victims;
    for (struct lfp_slab *d = list; d != NULL; d = (struct lfp_slab *)d->free_link.next) {
        lfp_slab_retire(pool, d);
        released += d->map_size;
    }
    atomic_store_explicit(&pool->trim_next,
                          atomic_load_explicit(&pool->depot_blocks, memory_order_relaxed) +
                              pool->trim_above,
                          memory_order_relaxed);
    atomic_flag_clear_explicit(&pool->trimming, memory_order_release);

    if (list != NULL && wait) {
#ifndef LFP_TEST_NO_GRACE
        urcu_bp_synchronize_rcu();
#endif
    }
    while (list != NULL) {
        struct lfp_slab *d = list;
        list = (struct lfp_slab *)d->free_link.next;
#ifndef LFP_TEST_NO_GRACE
        if (!wait) {
            LFP_TSAN_RELEASE(d);
            urcu_bp_call_rcu(&d->rcu, lfp_slab_release_rcu);
            continue;
        }
#endif
        lfp_slab_release(d);
    }
    return released;
}
