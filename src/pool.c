/* SPDX-License-Identifier: MIT */
/*
 * The fixed-block pool: layout, creation and teardown, lazy carving, the
 * depot (tagged Treiber stacks of batches, one per CPU), ownership checks,
 * statistics and the consistency check.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "sanitize.h"

/* A pool's memory layout, derived from its configuration. */
struct lfp_layout {
    size_t align;
    size_t stride;
    size_t span;
    uint32_t link_off;
};

size_t lfp_page_size(void)
{
    static _Atomic size_t cached;
    size_t ps = atomic_load_explicit(&cached, memory_order_relaxed);
    if (ps == 0) {
        long v = sysconf(_SC_PAGESIZE);
        ps = v > 0 ? (size_t)v : 4096;
        atomic_store_explicit(&cached, ps, memory_order_relaxed);
    }
    return ps;
}

static bool lfp_add_overflows(size_t a, size_t b, size_t *sum)
{
    return __builtin_add_overflow(a, b, sum);
}

/* Validate cfg and compute its layout. Checks everything lfp_pool_create
 * checks except the caller memory's size and alignment. */
static int lfp_layout_of(const struct lfp_config *cfg, struct lfp_layout *lay)
{
    if (cfg == NULL || cfg->block_size == 0 || (cfg->flags & ~(unsigned)LFP_VALID_FLAGS))
        return LFP_EINVAL;
    bool growable = (cfg->flags & LFP_GROWABLE) != 0;
    if ((cfg->flags & LFP_ZERO) && cfg->init != NULL)
        return LFP_EINVAL; /* zeroing would destroy the constructed state */
    if ((cfg->capacity == 0 && !growable) || cfg->cache_size > LFP_CACHE_MAX)
        return LFP_EINVAL;
    if (growable && (cfg->mem != NULL || cfg->mem_size != 0))
        return LFP_EINVAL; /* slabs come from the OS */

    if ((cfg->align & (cfg->align - 1)) != 0)
        return LFP_EINVAL;
    size_t align = LFP__ALIGN(cfg->align);
    if (align > lfp_page_size())
        return LFP_EINVAL;

    /* With a constructor the links go after the caller's bytes, so a free
     * block keeps every byte the constructor wrote. */
    size_t need, link_off = 0;
    if (cfg->init != NULL) {
        if (lfp_add_overflows(cfg->block_size, sizeof(void *) - 1, &link_off))
            return LFP_EINVAL;
        link_off &= ~(sizeof(void *) - 1);
        if (link_off > UINT32_MAX || lfp_add_overflows(link_off, LFP_LINK_BYTES, &need))
            return LFP_EINVAL;
    } else {
        need = cfg->block_size < LFP_LINK_BYTES ? LFP_LINK_BYTES : cfg->block_size;
    }
    size_t stride;
    if (lfp_add_overflows(need, align - 1, &stride))
        return LFP_EINVAL;
    stride &= ~(align - 1);

    size_t span;
    if (__builtin_mul_overflow(cfg->capacity, stride, &span) ||
        span > (SIZE_MAX >> 2)) /* keep room for rounding to pages */
        return LFP_EINVAL;

    lay->align = align;
    lay->stride = stride;
    lay->span = span;
    lay->link_off = (uint32_t)link_off;
    return LFP_OK;
}

LFP_API size_t lfp_pool_bytes(const struct lfp_config *cfg)
{
    struct lfp_layout lay;
    if (lfp_layout_of(cfg, &lay) != LFP_OK || (cfg->flags & LFP_GROWABLE))
        return 0; /* growable pools take no caller memory */
    return lay.span;
}

/*
 * The depot is one tagged stack per CPU (the CPU count rounded up to a power
 * of two, at most LFP_DEPOT_STACKS_MAX). A thread pushes onto the stack of
 * the CPU it runs on and pops from it first, so a magazine it spilled comes
 * back to it, or to a thread on the same CPU, with its blocks still in that
 * CPU's caches, and threads on different CPUs do not contend on one head.
 * When that stack is empty, a pop takes from the others in turn: any thread
 * reaches every free block, and blocks are carved only when a pop found the
 * depot empty at one moment (see lfp_depot_scan), except that a pool
 * without a cache first carves one block per stack (lfp_depot_seeding).
 */
static uint32_t lfp_depot_stacks(void)
{
    static _Atomic uint32_t cached;
    uint32_t n = atomic_load_explicit(&cached, memory_order_relaxed);
    if (n == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_CONF);
        n = 1;
        while (n < LFP_DEPOT_STACKS_MAX && (long)n < cpus)
            n <<= 1;
        atomic_store_explicit(&cached, n, memory_order_relaxed);
    }
    return n;
}

#if defined(LFP_HAVE_RSEQ) && !defined(LFP_TEST_HOOKS)
_Atomic ptrdiff_t lfp_rseq_cpu_off;
#endif

int lfp_cpu(void)
{
    return lfp_cpu_hint();
}

/* Blocks per magazine. The library's choice is a magazine of about
 * LFP_CACHE_BYTES, within [16, LFP_CACHE_DEFAULT] blocks, so that what an
 * idle thread strands is bounded in bytes too. A thread caches at most two
 * magazines per pool, so capping a magazine at a sixteenth of the most
 * blocks the pool may hold lets one idle thread strand at most an eighth of
 * a small pool. */
static uint32_t lfp_mag_size(const struct lfp_config *cfg, size_t stride)
{
    if (cfg->flags & LFP_NO_CACHE)
        return 0;
    size_t m = cfg->cache_size;
    if (m == 0) {
        m = LFP_CACHE_BYTES / stride;
        m = m < 16 ? 16 : m > LFP_CACHE_DEFAULT ? LFP_CACHE_DEFAULT : m;
    }
    size_t most = cfg->capacity;
    if (cfg->flags & LFP_GROWABLE)
        most = cfg->max_blocks ? cfg->max_blocks : SIZE_MAX;
    size_t bound = most / 16;
    return (uint32_t)(m < bound ? m : bound);
}

/* Set up the divisibility test of lfp_block_index for this stride. */
static void lfp_divisor_init(struct lfp_pool *pool, size_t stride)
{
    unsigned shift = (unsigned)__builtin_ctzll((unsigned long long)stride);
    uint64_t odd = (uint64_t)stride >> shift;
    uint64_t inv = odd; /* Newton's iteration doubles the correct low bits */
    for (int i = 0; i < 5; i++)
        inv *= 2 - odd * inv;
    pool->div_shift = shift;
    pool->div_inv = inv;
}

LFP_API int lfp_pool_create(const struct lfp_config *cfg, lfp_pool **out)
{
#if defined(LFP_HAVE_RSEQ) && !defined(LFP_TEST_HOOKS)
    /* For lfp_cpu_hint: every pool operation comes after a creation. Not
     * stored again once there, so that creations leave the line alone. */
    ptrdiff_t off = __rseq_offset + (ptrdiff_t)offsetof(struct rseq, cpu_id);
    if (__rseq_size != 0 &&
        atomic_load_explicit(&lfp_rseq_cpu_off, memory_order_relaxed) != off)
        atomic_store_explicit(&lfp_rseq_cpu_off, off, memory_order_relaxed);
#endif
    if (out == NULL)
        return LFP_EINVAL;
    *out = NULL;

    struct lfp_layout lay;
    int err = lfp_layout_of(cfg, &lay);
    if (err != LFP_OK)
        return err;
    if (cfg->mem != NULL) {
        if (cfg->mem_size < lay.span)
            return LFP_EINVAL;
        if ((uintptr_t)cfg->mem & (lay.align - 1))
            return LFP_EALIGN;
    } else if (cfg->mem_size != 0) {
        return LFP_EINVAL;
    }

    uint32_t nstacks = lfp_depot_stacks();
    struct lfp_pool *pool = lfp_sys_zalloc(sizeof(*pool) + nstacks * sizeof(pool->depot[0]),
                                           LFP_SHARING_SPAN);
    if (pool == NULL)
        return LFP_ENOMEM;
    pool->depot_mask = nstacks - 1;
    for (uint32_t i = 0; i < nstacks; i++)
        lfp_stack_init(&pool->depot[i].stack);
    pool->flags = cfg->flags | (lfp_checked_by_env() ? LFP_CHECKED : 0);
    /* Memory the library maps is page or slab aligned. */
    if (lfp_shadow_ok((uintptr_t)cfg->mem, lay.stride))
        pool->flags |= LFP_F_SHADOW;
    pool->mag_size = lfp_mag_size(cfg, lay.stride);
    pool->link_off = lay.link_off;
    pool->span = lay.span;
    pool->stride = lay.stride;
    pool->capacity = cfg->capacity;
    pool->block_size = cfg->block_size;
    pool->align = lay.align;
    pool->init = cfg->init;
    pool->fini = cfg->fini;
    pool->arg = cfg->arg;
    lfp_divisor_init(pool, lay.stride);
    atomic_init(&pool->carved, 0);
    atomic_init(&pool->retired, 0);

    err = LFP_ENOMEM;
    if (cfg->name != NULL && (pool->name = lfp_sys_strdup(cfg->name)) == NULL)
        goto fail;
    if (lfp_growable(pool)) {
        /* No region: blocks live in slabs, and the fixed-range check of
         * lfp_block_index fails for every pointer (carved stays 0). */
        pool->span = 0;
        if ((err = lfp_slab_setup(pool, cfg)) != LFP_OK)
            goto fail;
    } else if (cfg->mem != NULL) {
        pool->base = (uintptr_t)cfg->mem;
    } else {
        /* Address space only: pages become resident as blocks are carved. */
        size_t ps = lfp_page_size();
        pool->map_size = (lay.span + ps - 1) & ~(ps - 1);
        void *m = lfp_os_map(pool->map_size);
        if (m == NULL)
            goto fail;
        pool->map = m;
        pool->base = (uintptr_t)m;
    }
    if (lfp_checked(pool) && (err = lfp_checked_setup(pool)) != LFP_OK)
        goto fail;
    err = lfp_pool_id_acquire(pool);
    if (err != LFP_OK)
        goto fail;
    *out = pool;
    return LFP_OK;

fail:
    if (lfp_growable(pool))
        lfp_slab_destroy_all(pool);
    lfp_checked_teardown(pool, 0);
    if (pool->map != NULL)
        lfp_os_unmap(pool->map, pool->map_size);
    lfp_sys_free(pool->name);
    lfp_sys_free(pool);
    return err;
}

LFP_API size_t lfp_pool_destroy(lfp_pool *pool)
{
    if (pool == NULL)
        return 0;
    /* Revoke first: once no thread's slot names the pool, nothing can push
     * into it any more, and the balances below are final. */
    intptr_t in_use = lfp_slots_revoke(pool);
    in_use += atomic_load_explicit(&pool->retired, memory_order_acquire);

    if (lfp_growable(pool)) {
        lfp_slab_destroy_all(pool);
    } else {
        size_t carved = atomic_load_explicit(&pool->carved, memory_order_acquire);
        lfp_checked_teardown(pool, carved);
        /* Plain memory again, for fini and for the caller's buffer. */
        lfp_mem_show(pool, (void *)pool->base, carved * pool->stride);
        if (pool->fini != NULL)
            for (size_t i = 0; i < carved; i++)
                pool->fini((void *)(pool->base + i * pool->stride), pool->arg);
    }
    if (pool->map != NULL)
        lfp_os_unmap(pool->map, pool->map_size);
    lfp_pool_id_release(pool);
    lfp_sys_free(pool->name);
    lfp_sys_free(pool);
    return in_use > 0 ? (size_t)in_use : 0;
}

void lfp_batch_seal(struct lfp_free *first, uint32_t len, bool laned)
{
    if (len > 1)
        first->chain->next = (struct lfp_free *)((uintptr_t)len << 1 | laned);
}

void lfp_depot_counted(struct lfp_pool *pool, size_t nblocks)
{
    /* The automatic trim policy: an O(1) check per magazine pushed. */
    size_t n = atomic_fetch_add_explicit(&pool->depot_blocks, nblocks,
                                         memory_order_relaxed) + nblocks;
    /* Signed: a pop may subtract before the push it raced adds, so the
     * count can dip below zero for a moment. */
    /* Not while this thread has blocks in flight (a growth's push, say):
     * threads waiting for them would wait for the trim's destructors
     * too. Nor inside a read-side section (a signal handler's free in
     * the middle of a pop): a grace period would wait for this thread.
     * The next push checks again. */
    if (pool->trim_above != 0 &&
        (intptr_t)n >= (intptr_t)atomic_load_explicit(&pool->trim_next,
                                                      memory_order_relaxed) &&
        !lfp_inflight_any() && !lfp_rcu_reading())
        lfp_slab_trim(pool, false);
}

#ifdef LFP_TEST_HOOKS
/* Test builds only: called by lfp_depot_steal between taking another CPU's
 * stack and putting its rest on the caller's. */
void (*_Atomic lfp_test_steal_hook)(void);
#endif

/* A pool without a cache, whose caller found its CPU's stack empty, takes
 * another CPU's stack whole: it keeps the top batch and moves the rest onto
 * its own CPU's stack, in one CAS each way. A thread that allocates what
 * threads on other CPUs free (xfer, server: every producer's block comes
 * from a consumer's CPU) then takes a run of blocks from their stack at a
 * time, not one CAS on their stack's line per block: on 2 cores xfer 1+1
 * went from 344-404 to 138-163 ns a pair (README, "Without a cache, xfer
 * and server"). A stack of one batch is popped as it was. The rest is out
 * of the depot's sight until it lands, so it is counted in flight from
 * before the take (whose CAS releases the count) for threads that find the
 * depot empty meanwhile (lfp_depot_take): as a split batch is. */
static struct lfp_free *lfp_depot_steal(struct lfp_pool *pool, struct lfp_stack *from,
                                        struct lfp_stack *home)
{
    struct lfp_node *top = lfp_stack_peek(from);
    if (top == NULL)
        return NULL;
    /* A hint: top may be taken and its link rewritten meanwhile (its
     * memory stays: fixed pools never unmap, growable ones pop under RCU). */
    if (lfp_racy_load_ptr((void *const *)&top->next) == NULL)
        return (struct lfp_free *)lfp_stack_pop(from);
    struct lfp_inflight r;
    lfp_inflight_begin(pool, &r, LFP_FLIGHT_MOVE);
    struct lfp_free *b = (struct lfp_free *)lfp_stack_pop_all(from);
    if (b == NULL || b->next == NULL) {
        lfp_inflight_cancel(&r);
        return b;
    }
    LFP_TEST_HOOK(lfp_test_steal_hook);
    lfp_stack_push_chain(home, (struct lfp_node *)b->next);
    lfp_inflight_end(&r);
    return b;
}

/* Every stack in turn from home's, until one gives a batch; NULL when the
 * depot was empty at one moment during the call. Out of line: the common
 * pop finds its batch on its own CPU's stack. */
static LFP_NOINLINE struct lfp_free *lfp_depot_scan(struct lfp_pool *pool, uint32_t home)
{
    uint32_t mask = pool->depot_mask;
    uintptr_t tags[LFP_DEPOT_STACKS_MAX];
    struct lfp_free *b = NULL;
    for (bool again = true; again && b == NULL;) {
        for (uint32_t i = 0; i <= mask && b == NULL; i++) {
            /* An empty stack costs three plain loads, no CAS. */
            struct lfp_stack *s = lfp_depot_at(pool, home + i);
            tags[i] = lfp_stack_tag(s);
            if (i != 0 && pool->mag_size == 0)
                b = lfp_depot_steal(pool, s, lfp_depot_at(pool, home));
            else
                b = (struct lfp_free *)lfp_stack_pop(s);
        }
        /* Each stack was empty when looked at, but not all at one time: a
         * block may have moved from a stack not yet seen to one already
         * passed. Every push and pop moves a stack's tag, so when no tag
         * moved since, each stack stayed empty from its first look to now,
         * and the depot was empty at the moment between the two passes
         * (then the caller may carve). Otherwise look again: some other
         * thread got on meanwhile, so this stays lock-free. */
        again = false;
        for (uint32_t i = 0; i <= mask && b == NULL && !again; i++)
            again = lfp_stack_tag(lfp_depot_at(pool, home + i)) != tags[i];
    }
    return b;
}

static uint32_t lfp_carve_below(struct lfp_pool *pool, uint32_t want, size_t limit,
                                struct lfp_free **first);

/* A fixed pool without a cache carves one block at a time, when the depot
 * is empty, so that it holds no more blocks than were ever in use at once.
 * But then it may hold fewer blocks than threads, and a thread whose CPU's
 * stack is empty takes the block another CPU's thread is about to take
 * again, which does the same in turn: on 16 cores, 16 threads passed
 * blocks around so at 169-438 ns a pair (README, "On 16 cores").
 * So until the pool has carved as many blocks as it has depot stacks, a
 * thread whose stack is empty carves before it looks at the others (a
 * carve bounded by that count, so threads that race here cannot pass it):
 * each CPU's stack then keeps a block of its own, and blocks_carved is at
 * least the peak of blocks out of the depot at once and at most the larger
 * of that peak and the stack count. Returns the bound for that carve, the
 * stack count or the capacity if less, or 0 once the pool has carved that
 * many (a pool of fewer blocks than stacks stops once carved out) or has a
 * cache. Relaxed: a hint, the carve claims its block with its own CAS. */
static size_t lfp_depot_seeding(const struct lfp_pool *pool)
{
    if (!lfp_carves_at_peak(pool))
        return 0;
    size_t stacks = (size_t)pool->depot_mask + 1;
    size_t limit = stacks < pool->capacity ? stacks : pool->capacity;
    return atomic_load_explicit(&pool->carved, memory_order_relaxed) < limit ? limit : 0;
}

#ifdef LFP_TEST_HOOKS
/* Test builds only: called by lfp_depot_pop between lfp_depot_seeding's
 * bound and the carve. */
void (*_Atomic lfp_test_seed_hook)(void);
#endif

struct lfp_free *lfp_depot_pop(struct lfp_pool *pool, uint32_t *len)
{
    uint32_t home = lfp_depot_home(pool);
    /* A growable pool's pop may read a block whose slab a trim is releasing:
     * the read-side section keeps the slab mapped until the pop is done. */
    lfp_depot_read_lock(pool);
    struct lfp_free *b = (struct lfp_free *)lfp_stack_pop(&pool->depot[home].stack);
    /* A carve that fails (carved out meanwhile) leaves b NULL: scan. Its
     * block reads as a batch of one, as a carve's share does. */
    size_t seed_limit;
    if (b == NULL && (seed_limit = lfp_depot_seeding(pool)) != 0) {
        LFP_TEST_HOOK(lfp_test_seed_hook);
        int e = errno;
        if (lfp_carve_below(pool, 1, seed_limit, &b) == 0)
            errno = e;
    }
    if (b == NULL) /* the scan looks at home's stack again, in its passes */
        b = lfp_depot_scan(pool, home);
    lfp_depot_read_unlock(pool);
    if (b != NULL) {
        *len = lfp_batch_len(b);
        if (lfp_growable(pool))
            atomic_fetch_sub_explicit(&pool->depot_blocks, *len, memory_order_relaxed);
    }
    return b;
}

struct lfp_free *lfp_depot_take_stack(struct lfp_pool *pool, uint32_t stack)
{
    return (struct lfp_free *)lfp_stack_pop_all(lfp_depot_at(pool, stack));
}

uint32_t lfp_carve(struct lfp_pool *pool, uint32_t want, struct lfp_free **first)
{
    if (lfp_growable(pool))
        return lfp_slab_grow(pool, want, first);
    return lfp_carve_below(pool, want, pool->capacity, first);
}

/* A fixed pool's carve, up to limit blocks carved in all (the capacity, or
 * less: lfp_depot_pop); ENOBUFS at the limit. */
static uint32_t lfp_carve_below(struct lfp_pool *pool, uint32_t want, size_t limit,
                                struct lfp_free **first)
{
    /* A cached pool carves a run of LFP_CARVE_BYTES (at least a magazine,
     * at most a quarter of the pool, so that small pools stay lazily
     * carved): the caller's magazine takes its share, its CPU's depot stack
     * the rest. Threads that carve at the same time then hold blocks in
     * separate runs of pages. Carved a magazine at a time, their pages
     * alternated, and a thread's batch cost 1.5-2.1x as much beside a second
     * thread as alone (lfp-bench batch, 64-byte blocks, --cache 64; 1.1-1.2x
     * with runs), though no line both threads write was shared: most likely
     * the prefetchers, which read ahead into the next page, pulling in the
     * other core's blocks. Without a cache, one block at a time, so that
     * carved stays near the peak of blocks in use (lfp_depot_seeding). */
    size_t run = want;
    if (pool->mag_size != 0) {
        size_t r = LFP_CARVE_BYTES / pool->stride, most = pool->capacity / 4;
        r = r < most ? r : most;
        run = r > run ? r : run;
    }
    /* Carved out: fail before counting (below), so that threads which find
     * nothing to carve never keep each other waiting in lfp_depot_take. */
    size_t cur = atomic_load_explicit(&pool->carved, memory_order_acquire);
    if (cur >= limit) {
        errno = ENOBUFS;
        return 0;
    }
    /* A carve that may put blocks in the depot counts itself in flight
     * before its claim, which releases the count: a thread whose acquire
     * load sees the pool carved out then sees the count too, until the
     * blocks are in the depot (lfp_depot_take). */
    struct lfp_inflight r;
    bool counted = run > want;
    if (counted)
        lfp_inflight_begin(pool, &r, LFP_FLIGHT_MAKE);
    size_t n;
    do {
        if (cur >= limit) {
            if (counted)
                lfp_inflight_cancel(&r);
            errno = ENOBUFS;
            return 0;
        }
        n = limit - cur < run ? limit - cur : run;
    } while (!atomic_compare_exchange_weak_explicit(&pool->carved, &cur, cur + n,
                                                    memory_order_release,
                                                    memory_order_acquire));
    /* Blocks cur .. cur+n-1 are this thread's alone from here on. */
    uint32_t mine = lfp_carve_split(pool, pool->base + cur * pool->stride, n, want, first);
    if (counted)
        lfp_inflight_end(&r);
    return mine;
}

#ifdef LFP_TEST_HOOKS
/* Test builds only: called by lfp_depot_take when it found nothing to take
 * and nothing to carve (a pool without a cache, which looks before it
 * carves or grows, calls it before, until a carve found the bound), before
 * it looks at what is in flight. */
void (*_Atomic lfp_test_take_hook)(void);
/* Test builds only: called by lfp_depot_take in a pool without a cache
 * between its decision to carve or grow and the carve. */
void (*_Atomic lfp_test_carve_hook)(void);
#endif

struct lfp_free *lfp_depot_take(struct lfp_pool *pool, uint32_t want, uint32_t *len,
                                struct lfp_inflight *split)
{
    bool at_bound = false;
    for (;;) {
        uint64_t before = atomic_load_explicit(&pool->inbound, memory_order_acquire);
        if (split != NULL)
            lfp_inflight_begin(pool, split, LFP_FLIGHT_MAKE);
        struct lfp_free *b = lfp_depot_pop(pool, len);
        if (b != NULL)
            return b;
        /* Nothing taken: a thread that waits below must not count itself,
         * or two of them would wait for each other. Begun after before was
         * read, cancelled before now is: the two cancel out. */
        if (split != NULL)
            lfp_inflight_cancel(split);
        /* A cached pool carves or grows first and looks at what is in
         * flight only at its bound. A pool without a cache looks first, so
         * as not to carve or grow while another thread moves a CPU's stack
         * to its own (lfp_depot_steal), the one operation of such a pool
         * that takes free blocks out of sight, or when the count moved
         * since its first look: a fixed pool's blocks_carved then stays at
         * the peak of blocks in use, and a growable pool makes no slab
         * beside those blocks. Without that, a review's producers and consumer
         * with at most 10 blocks in use had carved 96 after 40 s, and here
         * four producer and consumer pairs with at most 256 in use grew a
         * pool of 64 KiB slabs a slab every few seconds, to 9216 blocks
         * after 40 s. A move is two CASes, unless its thread is preempted
         * between them. Nothing else is waited for below the bound: not
         * another thread's growth or hole, whose init may wait for what
         * this thread holds, nor a trim, which holds the depot for a walk
         * over every free block (a growable pool grows beside those, as a
         * cached one does). Once a look-first carve found the bound, the
         * thread carves first. */
        bool carve_first = at_bound || pool->mag_size != 0;
        if (carve_first) {
            if ((*len = lfp_carve(pool, want, &b)) != 0)
                return b;
            if (errno != ENOBUFS)
                return NULL; /* ENOMEM: waiting would not make memory */
        }
        LFP_TEST_HOOK(lfp_test_take_hook);
        /* At the bound (or, without a cache, before the carve), but another
         * thread's blocks may still be on their way to the depot: a run or
         * a new slab or a hole being made ready, the depot a trim took and
         * is handing back, or a stack being moved. They count as free (the
         * capacity rule of the README), so wait for them rather than fail.
         * The wait ends when that thread is done (up to LFP_CARVE_BYTES or
         * a slab of blocks made ready, one trim or one move); the acquire
         * pairs with the release that follows its push, so the pop above
         * then sees the push. One that landed after the first load (the
         * landed count moved) may have pushed after the pop looked: look
         * again. Only when none was in flight or landed between the two
         * loads was the pool without a free block outside the magazines at
         * one moment. Looking first, only moves are waited for (above).
         * A call whose own thread has an operation on this pool in flight
         * (a carve, a growth, a move or a trim) is nested in it: a signal
         * handler's, or one that came back through another pool's init or
         * fini (P's init allocates from Q, whose init allocates from P; init
         * and fini may not call into their own pool). It waits for nothing:
         * not for its own thread's operation, which cannot land while it
         * waits, nor for another's: two threads each nested so would each
         * wait for the other's operation, which waits for the nested call
         * (test_depot holds two handlers in their moves so; a signal storm
         * under TSan on 16 cores hung, most likely so; a review's two
         * threads in P-Q-P constructor chains hung with the wait). It
         * carves, grows or gets ENOBUFS instead, as does a handler that
         * does not know its weight. */
        uint64_t now = atomic_load_explicit(&pool->inbound, memory_order_acquire);
        uint32_t flying = (uint32_t)now;
        if (lfp_inflight_may_wait(pool) &&
            (carve_first ? flying != 0 : (flying & LFP_INBOUND_MOVES) != 0)) {
            sched_yield();
            continue;
        }
        if (now != before)
            continue;
        if (carve_first)
            return NULL;
        LFP_TEST_HOOK(lfp_test_carve_hook);
        if ((*len = lfp_carve(pool, want, &b)) != 0 || errno != ENOBUFS)
            return b;
        /* At the bound since the look: another thread may have claimed the
         * last room for blocks now on their way. Look again, carving first,
         * as a cached pool does. */
        at_bound = true;
    }
}

/* The carve writes each block's links at once: with blocks of a page or
 * less, whose links lie a stride apart, every page wholly inside the run.
 * Fault those in with one call rather than a trap each: here, writing a
 * word every 64 bytes of 256 KiB took 1.3-1.5x as long page fault by page
 * fault. Only those pages: a slab cut short by max_blocks has memory no
 * block lies in, and a fixed pool's first and last pages may be shared
 * with the caller's memory around it. A lone page is left to the write. */
static void lfp_carve_prefault(const struct lfp_pool *pool, uintptr_t start, size_t n)
{
    size_t ps = lfp_page_size();
    if (pool->stride > ps)
        return;
    uintptr_t lo;
    size_t bytes = lfp_pages_within(start, start + n * pool->stride, &lo);
    if (bytes > ps)
        lfp_os_prefault((void *)lo, bytes);
}

/* Chain blocks from .. to - 1 of a run whose block 0 has its links at
 * link0, in address order, the last's chain NULL; returns the first's
 * links, NULL when there are none. */
static struct lfp_free *lfp_run_chain(uintptr_t link0, size_t stride, size_t from, size_t to)
{
    if (from >= to)
        return NULL;
    struct lfp_free *first = (struct lfp_free *)(link0 + from * stride), *l = first;
    for (size_t i = from + 1; i < to; i++) {
        struct lfp_free *next = (struct lfp_free *)((uintptr_t)l + stride);
        l->chain = next;
        l = next;
    }
    l->chain = NULL;
    return first;
}

uint32_t lfp_carve_split(struct lfp_pool *pool, uintptr_t start, size_t n, uint32_t want,
                         struct lfp_free **first)
{
    lfp_carve_prefault(pool, start, n);
    const size_t stride = pool->stride, size = pool->mag_size ? pool->mag_size : 1;
    /* Constructors, checked mode's fill and the sanitizers' poisoning run
     * first, block by block; a plain pool's blocks need only their links,
     * which the loops below write a chain at a time: 6 instructions a block
     * where making each ready and adding it to a batcher took 24 (callgrind,
     * growth of a pool of 64-byte blocks). */
    if (pool->init != NULL || lfp_checked(pool) || lfp_shadowed(pool))
        for (size_t i = n; i-- > 0;)
            lfp_block_fresh(pool, (void *)(start + i * stride));
    const uintptr_t link0 = start + pool->link_off;
    uint32_t mine = want < n ? want : (uint32_t)n;
    /* The rest, from the top, in batches of a magazine (one block without a
     * cache): each batch's first block is its highest, and the others
     * follow it in address order; the lowest batch is the list's head. */
    struct lfp_free *head = NULL, *tail = NULL;
    for (size_t hi = n; hi > mine;) {
        size_t lo = hi - mine > size ? hi - size : mine;
        struct lfp_free *top = (struct lfp_free *)(link0 + (hi - 1) * stride);
        top->chain = lfp_run_chain(link0, stride, lo, hi - 1);
        top->next = head;
        lfp_batch_seal(top, (uint32_t)(hi - lo), false);
        if (tail == NULL)
            tail = top;
        head = top;
        hi = lo;
    }
    if (head != NULL)
        lfp_depot_push(pool, head, tail, n - mine);
    /* The caller's share, in address order, read as a batch
     * (lfp_mag_refill): its length word, not whatever the fresh memory
     * held there. */
    struct lfp_free *own = lfp_run_chain(link0, stride, 0, mine);
    lfp_batch_seal(own, mine, false);
    *first = own;
    return mine;
}

struct lfp_free *lfp_block_fresh(struct lfp_pool *pool, void *block)
{
    if (pool->init != NULL)
        pool->init(block, pool->arg);
    if (lfp_checked(pool))
        lfp_checked_fill(pool, block);
    lfp_mem_hide(pool, block, pool->stride);
    return lfp_link_open(pool, block);
}

bool lfp_pool_owns(const struct lfp_pool *pool, const void *p)
{
    if (lfp_growable(pool))
        return lfp_slab_owns(pool, p);
    return lfp_block_index(pool, p) != SIZE_MAX;
}

LFP_API int lfp_owns(const lfp_pool *pool, const void *p)
{
    return pool != NULL && lfp_pool_owns(pool, p);
}

/* Blocks the pool holds now: carved so far, or in a growable pool's slabs. */
static size_t lfp_pool_total(const struct lfp_pool *pool)
{
    return atomic_load_explicit(lfp_growable(pool) ? &((struct lfp_pool *)pool)->total
                                                   : &((struct lfp_pool *)pool)->carved,
                                memory_order_acquire);
}

#ifdef LFP_TEST_HOOKS
/* Test builds only: called by lfp_pool_stats between its reads of the
 * total and of the holes' count. */
void (*_Atomic lfp_test_stats_hook)(void);
#endif

LFP_API int lfp_pool_stats(const lfp_pool *pool, struct lfp_stats *out)
{
    if (pool == NULL || out == NULL)
        return LFP_EINVAL;
    size_t cached;
    intptr_t balance;
    lfp_slots_sum(pool, &cached, &balance);
    intptr_t in_use = balance +
        atomic_load_explicit(&((struct lfp_pool *)pool)->retired, memory_order_acquire);
    size_t carved = lfp_pool_total(pool);
    bool growable = lfp_growable(pool);

    memset(out, 0, sizeof(*out));
    out->name = pool->name;
    out->block_size = pool->block_size;
    out->stride = pool->stride;
    out->align = pool->align;
    out->blocks_total = growable ? carved : pool->capacity;
    out->blocks_in_use = in_use > 0 ? (size_t)in_use : 0;
    /* Blocks are carved (slabs grown) only when the depot is empty, so that
     * count is the most blocks ever out of the depot at once, plus what the
     * last carve (or slab) put in the depot; without a cache the peak, or
     * up to the depot's stack count if that is more (lfp_depot_seeding). */
    out->blocks_in_use_max =
        growable ? atomic_load_explicit(&((struct lfp_pool *)pool)->total_max,
                                        memory_order_relaxed)
                 : carved;
    out->blocks_cached = cached;
    LFP_TEST_HOOK(lfp_test_stats_hook);
    /* A growable pool's holes are in its slabs, but not made ready. Read
     * after the total, they may count a hole made of a slab grown since:
     * 0 then, not a count wrapped round. */
    size_t holed = growable ? atomic_load_explicit(&((struct lfp_pool *)pool)->holed,
                                                   memory_order_relaxed)
                            : 0;
    out->blocks_carved = carved > holed ? carved - holed : 0;
    if (growable)
        out->bytes_reserved =
            atomic_load_explicit(&((struct lfp_pool *)pool)->slab_mapped, memory_order_relaxed);
    else
        out->bytes_reserved = pool->map != NULL ? pool->map_size : pool->span;
    out->cache_size = pool->mag_size;
    return LFP_OK;
}

LFP_API size_t lfp_pool_trim(lfp_pool *pool)
{
    if (pool == NULL || !lfp_growable(pool))
        return 0; /* fixed pools keep their memory until destroyed */
    lfp_flush_own(pool);
    return lfp_slab_trim(pool, true);
}

#ifdef LFP_TEST_HOOKS
/* Test builds only, to show every caller copes with a refusal:
 * lfp_test_map_fail_at   the n-th OS mapping from now on fails (0 = none);
 * lfp_test_fail_at       the n-th request of any kind (mapping or malloc)
 *                        from now on fails;
 * lfp_test_requests      counts every request, so a test can fail each in turn;
 * lfp_test_mallocs       counts those that are not mappings (malloc). */
_Atomic long lfp_test_map_fail_at;
_Atomic long lfp_test_fail_at;
_Atomic long lfp_test_requests;
_Atomic long lfp_test_mallocs;

static bool lfp_test_countdown(_Atomic long *at)
{
    return atomic_load(at) > 0 && atomic_fetch_sub(at, 1) == 1;
}
#endif

/* Does this request fail by a test's order? Never outside test builds. */
static inline bool lfp_sys_refused(bool map)
{
#ifdef LFP_TEST_HOOKS
    atomic_fetch_add(&lfp_test_requests, 1);
    if (!map)
        atomic_fetch_add(&lfp_test_mallocs, 1);
    bool refused = lfp_test_countdown(&lfp_test_fail_at);
    if (map && lfp_test_countdown(&lfp_test_map_fail_at))
        refused = true;
    if (refused) {
        errno = ENOMEM;
        return true;
    }
#else
    (void)map;
#endif
    return false;
}

void *lfp_os_map(size_t size)
{
    if (lfp_sys_refused(true))
        return NULL;
    void *m = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return m == MAP_FAILED ? NULL : m;
}

void *lfp_sys_alloc(size_t size, size_t align)
{
    if (lfp_sys_refused(false))
        return NULL;
    if (align <= alignof(max_align_t))
        return malloc(size);
    return aligned_alloc(align, (size + align - 1) & ~(align - 1));
}

void *lfp_sys_zalloc(size_t size, size_t align)
{
    void *p = lfp_sys_alloc(size, align);
    if (p != NULL)
        memset(p, 0, size);
    return p;
}

char *lfp_sys_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = lfp_sys_alloc(n, 1);
    return d != NULL ? memcpy(d, s, n) : NULL;
}

void lfp_sys_free(void *p)
{
    free(p);
}

void lfp_os_unmap(void *p, size_t size)
{
    munmap(p, size);
}

void *lfp_os_reserve(size_t size)
{
    if (lfp_sys_refused(false))
        return NULL;
    void *m = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return m == MAP_FAILED ? NULL : m;
}

/* Access changes only, never a new mapping: a failed mmap(MAP_FIXED) may
 * leave a hole in the reservation, where anything could be mapped next. The
 * pages read as zero: never touched, or dropped by lfp_os_decommit. */
bool lfp_os_commit(void *p, size_t size)
{
    if (lfp_sys_refused(true))
        return false;
    return mprotect(p, size, PROT_READ | PROT_WRITE) == 0;
}

void lfp_os_prefault(void *p, size_t size)
{
#ifdef MADV_POPULATE_WRITE
    int e = errno;
    if (madvise(p, size, MADV_POPULATE_WRITE) != 0)
        errno = e;
#else
    (void)p;
    (void)size;
#endif
}

void lfp_os_decommit(void *p, size_t size)
{
    /* Dropping the pages gives the memory back even should the kernel
     * refuse the protection change (out of mappings). Locked pages too: a
     * range slab's memory goes back as a registry slab's does, whose munmap
     * takes locked pages with it, and as the trim counted it. */
    int e = errno;
    lfp_os_drop(p, size, true);
    mprotect(p, size, PROT_NONE);
    errno = e;
}

size_t lfp_os_drop(void *p, size_t size, bool unlock)
{
    /* MADV_DONTNEED rather than MADV_FREE: the memory leaves the process's
     * resident set now, not whenever the kernel comes short of it. */
    int e = errno;
    size_t done = size;
    if (madvise(p, size, MADV_DONTNEED) != 0) {
        if (unlock) {
            munlock(p, size);
            done = madvise(p, size, MADV_DONTNEED) == 0 ? size : 0;
        } else {
            /* Refused at the first locked page, after it dropped those
             * before it: page by page, to count what went. */
            size_t ps = lfp_page_size();
            done = 0;
            for (size_t off = 0; off < size; off += ps)
                done += madvise((char *)p + off, ps, MADV_DONTNEED) == 0 ? ps : 0;
        }
    }
    errno = e;
    return done;
}

static int lfp_cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)*(void *const *)a, y = (uintptr_t)*(void *const *)b;
    return x < y ? -1 : x > y;
}

/* State of lfp_pool_verify: every free block found, checked as it is found
 * so that a corrupt list cannot send the walk astray. */
struct lfp_verify {
    struct lfp_pool *pool;
    void **free;
    size_t nfree, max;
};

static int lfp_verify_block(void *ctx, void *block)
{
    struct lfp_verify *v = ctx;
    if (!lfp_pool_owns(v->pool, block))
        return LFP_EFOREIGN;
    if (v->nfree == v->max)
        return LFP_EDOUBLE; /* more free blocks than blocks: one is listed twice */
    v->free[v->nfree++] = block;
    return LFP_OK;
}

/* One depot batch: each block, its length, that its chain ends there, and
 * in a laned batch that each lane link names the block L further on. */
static int lfp_verify_batch(struct lfp_verify *v, struct lfp_free *b)
{
    int err = lfp_verify_block(v, lfp_block_of(b, v->pool->link_off));
    if (err != LFP_OK)
        return err;
    /* The whole word: lfp_batch_len keeps 32 bits of it. */
    uintptr_t word = lfp_batch_word(b);
    size_t len = word >> 1;
    if (b->chain != NULL && (len < 2 || len > v->max))
        return LFP_EFOREIGN;
    bool laned = word & 1;
    struct lfp_free *back[LFP_BATCH_LANES]; /* the last L blocks seen */
    struct lfp_free *l = b->chain;
    for (size_t i = 1; i < len; i++, l = l->chain) {
        if (l == NULL)
            return LFP_EFOREIGN; /* shorter than its length */
        if ((err = lfp_verify_block(v, lfp_block_of(l, v->pool->link_off))) != LFP_OK)
            return err;
        if (laned && i >= LFP_BATCH_LANES + 2 && back[i % LFP_BATCH_LANES]->next != l)
            return LFP_EFOREIGN;
        back[i % LFP_BATCH_LANES] = l;
    }
    return l == NULL ? LFP_OK : LFP_EFOREIGN; /* or longer */
}

LFP_API int lfp_pool_verify(lfp_pool *pool)
{
    if (pool == NULL)
        return LFP_EINVAL;
    size_t total = lfp_pool_total(pool);
    struct lfp_verify v = { .pool = pool, .max = total };
    v.free = lfp_sys_alloc((total + 1) * sizeof(void *), 0);
    if (v.free == NULL)
        return LFP_ENOMEM;

    int err = LFP_OK;
    for (uint32_t i = 0; i <= pool->depot_mask && err == LFP_OK; i++)
        for (struct lfp_free *b = pool->depot[i].stack.head.ptr; b != NULL && err == LFP_OK;
             b = b->next)
            err = lfp_verify_batch(&v, b);
    if (err == LFP_OK)
        err = lfp_slots_walk(pool, lfp_verify_block, &v);
    /* A growable pool's holes: free blocks too, with a count of their own. */
    size_t holed = 0;
    if (err == LFP_OK && lfp_growable(pool))
        err = lfp_slab_holes_walk(pool, lfp_verify_block, &v, &holed);
    if (err == LFP_OK && holed != atomic_load_explicit(&pool->holed, memory_order_relaxed))
        err = LFP_EINVAL;
    if (err == LFP_OK) {
        qsort(v.free, v.nfree, sizeof(void *), lfp_cmp_ptr);
        for (size_t i = 1; i < v.nfree && err == LFP_OK; i++)
            if (v.free[i] == v.free[i - 1])
                err = LFP_EDOUBLE;
    }
    if (err == LFP_OK) {
        size_t cached;
        intptr_t balance;
        lfp_slots_sum(pool, &cached, &balance);
        intptr_t in_use = balance + atomic_load_explicit(&pool->retired, memory_order_acquire);
        if (in_use < 0 || v.nfree + (size_t)in_use != total)
            err = LFP_EINVAL; /* counters disagree with the free lists */
    }
    lfp_sys_free(v.free);
    return err;
}
