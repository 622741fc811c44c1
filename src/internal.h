/* SPDX-License-Identifier: MIT */
/*
 * lfpool internals shared by the layers: the free-block record, the pool,
 * the per-thread cache slots, and the calls between pool.c and magazine.c.
 */
#ifndef LFP_INTERNAL_H
#define LFP_INTERNAL_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sched.h>
#ifdef LFP_HAVE_RSEQ
#include <sys/rseq.h>
#endif

#include "lfpool.h"
#include "compiler.h"
#include "stack.h"

/* Everything declared from here on is the library's own: hidden, so that
 * code built with -fPIC reaches its variables directly, not through the
 * GOT (a load less on each use: lfp_rseq_cpu_off on every call of a pool
 * without a cache). */
#pragma GCC visibility push(hidden)

struct lfp_slab;

/* Pool ids below this get a fast-path entry in every thread. */
#define LFP_SLOTS_INLINE 64u

#define LFP_VALID_FLAGS (LFP_GROWABLE | LFP_ZERO | LFP_CHECKED | LFP_NO_CACHE)
/* Not a caller's flag: set by lfp_pool_create when the pool's blocks may be
 * poisoned for AddressSanitizer (see sanitize.h). */
#define LFP_F_SHADOW (1u << 31)

/*
 * A free block as the pool sees it: two words at the block's start, or, for
 * pools with a constructor, at link_off bytes past it (after the caller's
 * bytes). The depot holds stacks of batches; a batch is a chain of free blocks.
 *   next   in a batch's first block: the next batch (the stack's link);
 *          in its second block: the batch's length, shifted left by one,
 *          and in the low bit whether the batch is laned (a batch of one
 *          has no second block, so a NULL chain means length 1);
 *          in the later blocks of a laned batch: the block LFP_BATCH_LANES
 *          further down the chain (block k's next is block k + L, for
 *          2 <= k < len - L), so that a thread taking the batch can follow
 *          L chains at once (lfp_mag_refill);
 *   chain  the next block of the same batch, or of the same magazine.
 */
struct lfp_free {
    struct lfp_free *next;
    struct lfp_free *chain;
};

_Static_assert(offsetof(struct lfp_free, next) == offsetof(struct lfp_node, next),
               "a batch's first block is the depot stack's node");
_Static_assert(sizeof(struct lfp_free) == LFP_LINK_BYTES, "links fit LFP_LINK_BYTES");

/* One of a pool's depot stacks. */
struct lfp_depot_stack {
    alignas(LFP_SHARING_SPAN) struct lfp_stack stack;
};

struct lfp_pool {
    /* Read on every call, written only by lfp_pool_create. */
    uint32_t id;          /* index in the pool table and in threads' caches */
    uint32_t tls_idx;     /* id if it has a fast-path entry, else LFP_SLOTS_INLINE */
    uint32_t flags;
    uint32_t mag_size;    /* blocks per magazine; 0 = no cache */
    uintptr_t base;       /* the first block */
    /* stride = odd << div_shift, and div_inv * odd = 1 (mod 2^64): see
     * lfp_block_index. */
    uint64_t div_inv;
    unsigned div_shift;
    uint32_t link_off;    /* where a free block's links live */
    size_t span;          /* capacity * stride */
    size_t stride;
    size_t capacity;
    size_t block_size;
    size_t align;
    void (*init)(void *block, void *arg);
    void (*fini)(void *block, void *arg);
    void *arg;
    char *name;
    void *map;            /* our own mapping, or NULL for caller memory */
    size_t map_size;
    uint32_t depot_mask;  /* depot stacks - 1 (a power of two) */

    /* Fixed pools: blocks carved so far, the bound of lfp_block_index.
     * Growable pools: the block positions of their reserved range (see
     * slab.c), or 0 without one, so that check sends them to the slabs. */
    alignas(LFP_SHARING_SPAN) _Atomic size_t carved;
    /* Carves, slab growths, trims, batch splits and stack moves whose
     * blocks are not all in the depot yet: a thread that finds nothing to
     * take waits for them (lfp_depot_take). The low 32 bits weigh those in
     * flight (enum lfp_flight), the high 32 count those landed, so that a
     * waiter also sees that one landed since it looked (struct
     * lfp_inflight). */
    _Atomic uint64_t inbound;
    /* Growable pools with a range: the slab at each position of the range,
     * NULL while none is there; position k holds blocks k << range_shift
     * on. NULL for every other pool. Read by lfp_free with carved. */
    _Atomic(struct lfp_slab *) *range;
    unsigned range_shift;
    /* In-use balance of threads that no longer keep their own: exited,
     * revoked, or with no cache slot. */
    _Atomic intptr_t retired;

    /* Growable pools only. */
    alignas(LFP_SHARING_SPAN) _Atomic size_t total; /* blocks in live slabs */
    _Atomic size_t total_max;    /* high-water mark of total */
    _Atomic size_t depot_blocks; /* blocks in the depot, for the trim policy */
    _Atomic size_t trim_next;    /* depot_blocks that triggers the next auto trim */
    struct lfp_stack slabs;      /* the pool's slab descriptors */
    /* Runs of free blocks in slabs still partly in use whose pages a trim
     * gave back, out of the depot until a growth makes them ready again
     * (slab.c, "holes"); holed counts their blocks. */
    struct lfp_stack holes;
    _Atomic size_t holed;
    atomic_flag trimming;        /* one trim at a time */
    size_t max_blocks;           /* 0 = no bound */
    size_t slab_bytes;
    size_t slab_blocks;
    size_t trim_above;           /* fewest blocks over trim_threshold bytes, 0 = off */
    /* The reserved range: address space mapped without access, slabs made
     * accessible in it at positions claimed in range_claim (a bit each). */
    size_t range_slots;
    void *range_map;
    size_t range_map_size;
    _Atomic uint64_t *range_claim;
    _Atomic size_t range_hint;   /* no free position in claim words below */
    _Atomic size_t releasing;    /* slab releases waiting for a grace period */
    _Atomic size_t slab_mapped;  /* bytes of the slabs in the pool */

    /* Checked fixed pools only: a bit per block, set while it is in use. */
    _Atomic uint64_t *used;
    size_t used_size;
    /* The depot, the shared free list: one stack per CPU (see pool.c), each
     * apart from the others and from the pool's other words (see
     * LFP_SHARING_SPAN), as they are the contended words. */
    struct lfp_depot_stack depot[];
};

static inline bool lfp_growable(const struct lfp_pool *pool)
{
    return (pool->flags & LFP_GROWABLE) != 0;
}

static inline bool lfp_checked(const struct lfp_pool *pool)
{
    return (pool->flags & LFP_CHECKED) != 0;
}

/* A fixed pool without a cache: carved one block at a time, at the peak of
 * blocks in use (lfp_depot_seeding's stacks apart). Its depot stacks hold
 * single blocks. */
static inline bool lfp_carves_at_peak(const struct lfp_pool *pool)
{
    return pool->mag_size == 0 && !lfp_growable(pool);
}

/*
 * A thread's cache for one pool: two magazines (arrays of free blocks,
 * "rounds") and the thread's share of the pool's in-use count. Only the
 * owning thread writes it, except that lfp_pool_destroy claims `pool` with a
 * CAS and then zeroes the counts and cap of a slot it takes away. Fields
 * other threads read (stats) are relaxed atomics: on the owner's side they
 * compile to plain loads and stores.
 */
struct lfp_slot {
    _Atomic(struct lfp_pool *) pool; /* bound pool, NULL, or LFP_SLOT_BUSY */
    void **loaded;                   /* rounds; the next alloc takes the last */
    void **prev;
    _Atomic uint32_t nloaded;
    _Atomic uint32_t nprev;
    /* The pool's magazine size while bound; 0 when unbound or revoked, which
     * sends both alloc (nloaded 0) and free (nloaded >= cap) to the slow
     * path, so the fast path needs no check that the slot is bound. */
    _Atomic uint32_t cap;
    uint32_t buf_rounds;             /* buf holds 2 * buf_rounds pointers */
    /* Blocks this thread took from the depot (or carved) minus blocks it put
     * back: its share of "in use" is taken - nloaded - nprev. */
    _Atomic intptr_t taken;
    void **buf;
};

_Static_assert(sizeof(struct lfp_slot) <= LFP_CACHELINE, "a slot fits a cache line");

/* A slot being flushed by its owner; lfp_pool_destroy waits for it. */
#define LFP_SLOT_BUSY ((struct lfp_pool *)(uintptr_t)1)

static inline struct lfp_free *lfp_link_of(void *block, uint32_t link_off)
{
    return (struct lfp_free *)((char *)block + link_off);
}

static inline void *lfp_block_of(struct lfp_free *link, uint32_t link_off)
{
    return (char *)link - link_off;
}

/* The lanes of a laned batch (see struct lfp_free). A batch a magazine
 * spilled was last written by the spilling thread, so each block a refill
 * reads is a cache miss to that thread's core: one chain makes them one
 * after another, L chains L at a time. On a 16-core Xeon (lfp-bench xfer,
 * 64-byte blocks, 2 to 8 producers each passing blocks to a consumer) a
 * pair cost 80-100 ns per producer with one chain, 31-37 with 8 lanes and
 * 22-34 with 16; server 71-87 ns, then 21-26 with either. A trim reads
 * the depot's batches the same way (lfp_batch_walk). */
#define LFP_BATCH_LANES 16u

/* The length word of the batch whose first block is first, whole (a batch
 * of one, which has none, reads as length 1, not laned); its length, and
 * whether it is laned. */
static inline uintptr_t lfp_batch_word(const struct lfp_free *first)
{
    return first->chain ? (uintptr_t)first->chain->next : (uintptr_t)1 << 1;
}

static inline uint32_t lfp_batch_len(const struct lfp_free *first)
{
    return (uint32_t)(lfp_batch_word(first) >> 1);
}

static inline bool lfp_batch_laned(const struct lfp_free *first)
{
    return lfp_batch_word(first) & 1;
}

/* Visit the n blocks of the batch from b once each, in chain order, calling
 * visit(ctx, l, k) for block k. A block's links have been read when it is
 * visited, so visit may close or relink it. Of a laned batch the first
 * L + 2 come off the chain and the others off the lanes: block k from
 * block k - L, whose address is already known, so the loads of L blocks
 * are in flight at once where one chain would take them one by one. The
 * lanes' ends are kept here, not in the blocks: a block once visited is
 * not read again. Inlined, so that visit is too; a batch on one chain
 * (a carve's, or one too short for lanes) has a loop of its own, which
 * tests nothing but its end: a refill of carved blocks took 7
 * instructions a block instead of 14 (callgrind). */
static LFP_ALWAYS_INLINE void lfp_batch_walk(struct lfp_free *b, uint32_t n,
                                             void (*visit)(void *ctx, struct lfp_free *l,
                                                           uint32_t k),
                                             void *ctx)
{
    if (!lfp_batch_laned(b) || n <= LFP_BATCH_LANES + 2) {
        for (uint32_t k = 0; k < n; k++) {
            struct lfp_free *next = b->chain;
            visit(ctx, b, k);
            b = next;
        }
        return;
    }
    struct lfp_free *lane[LFP_BATCH_LANES];
    for (uint32_t k = 0; k < LFP_BATCH_LANES + 2; k++) {
        struct lfp_free *next = b->chain;
        if (k >= 2)
            lane[k % LFP_BATCH_LANES] = b; /* visited once its next is read */
        else
            visit(ctx, b, k);
        b = next;
    }
    for (uint32_t k = LFP_BATCH_LANES + 2; k < n; k++) {
        struct lfp_free **end = &lane[k % LFP_BATCH_LANES];
        struct lfp_free *l = (*end)->next;
        /* l's next is read L blocks from now: start its line on the way,
         * as the visits between may be too long for the core to overlap
         * the loads by itself. */
        __builtin_prefetch(l);
        visit(ctx, *end, k - LFP_BATCH_LANES);
        *end = l;
    }
    for (uint32_t k = n - LFP_BATCH_LANES; k < n; k++)
        visit(ctx, lane[k % LFP_BATCH_LANES], k);
}

/*
 * Index of the block that starts at p, or SIZE_MAX when p is not the start of
 * a carved block of pool. Never dereferences p. A subtract, a multiply, a
 * rotate and one compare: with stride = odd << k and inv the inverse of odd
 * modulo 2^64, rotating (p - base) * inv right by k yields the exact quotient
 * when stride divides p - base, and otherwise a value above 2^64 / stride,
 * which no carved index reaches. An address below base wraps around to a
 * huge offset and fails the same compare.
 */
static inline uint64_t lfp_stride_index(const struct lfp_pool *pool, uint64_t off)
{
    uint64_t x = off * pool->div_inv;
    unsigned k = pool->div_shift;
    return (x >> k) | (x << ((64 - k) & 63));
}

static inline size_t lfp_block_index(const struct lfp_pool *pool, const void *p)
{
    uint64_t q = lfp_stride_index(pool, (uint64_t)((uintptr_t)p - pool->base));
    size_t carved = atomic_load_explicit(&((struct lfp_pool *)pool)->carved,
                                         memory_order_relaxed);
    return q < carved ? (size_t)q : SIZE_MAX;
}

/* Given a block index that passed lfp_block_index: is its memory there? For
 * fixed pools always; in a growable pool's range, while its slab is. A slab
 * with a block in use is never released, so for blocks the caller holds the
 * answer cannot change under it. */
static inline bool lfp_range_live(const struct lfp_pool *pool, size_t q)
{
    /* Fixed pools fall through: the growable pool's test is the jump. */
    return LFP_LIKELY(pool->range == NULL) ||
           atomic_load_explicit(&pool->range[q >> pool->range_shift],
                                memory_order_relaxed) != NULL;
}

/* magazine.c: blocks on their way to a pool's depot. An operation that
 * takes blocks out of sight of lfp_depot_pop without handing them out (a
 * carve or growth whose rest goes to the depot, a trim, a batch split for
 * a thread without a cache slot) counts itself in pool->inbound from
 * lfp_inflight_begin until lfp_inflight_landed, and keeps this record, on
 * its own stack, in the thread's list until lfp_inflight_end (LIFO:
 * operations nest only through init, fini and signal handlers). A forked
 * child, which has only the forking thread, counts in flight only what
 * that thread's list says (fork from a signal handler that interrupted a
 * call into the library is not supported: the list and the count may
 * disagree at that moment). */
struct lfp_inflight {
    struct lfp_pool *pool;
    struct lfp_inflight *next;
    uint32_t weight; /* in pool->inbound's in-flight half (LFP_INBOUND_*) */
    bool counted;    /* between begin and landed */
    bool trimming;   /* holds pool->trimming */
};

/* The kinds of operation in flight. In pool->inbound's in-flight half a
 * move weighs LFP_INBOUND_MOVE, in bits of its own, as a pool without a
 * cache waits for moves alone below its bound (lfp_depot_take); the others
 * weigh 1. More than 65535 of those in flight at once would spill into the
 * moves' bits: read as a move, whose only effect is a wait. */
enum lfp_flight {
    LFP_FLIGHT_MAKE, /* a carve, growth or hole with blocks for the depot; a split */
    LFP_FLIGHT_TRIM, /* a trim: holds the depot and pool->trimming */
    LFP_FLIGHT_MOVE, /* another CPU's stack being moved (lfp_depot_steal) */
};
#define LFP_INBOUND_MOVE (1u << 16)
#define LFP_INBOUND_MOVES 0xffff0000u

void lfp_inflight_begin(struct lfp_pool *pool, struct lfp_inflight *r, enum lfp_flight kind);
void lfp_inflight_landed(struct lfp_inflight *r);
void lfp_inflight_end(struct lfp_inflight *r);
/* End an operation that took no block after all (nothing lands). */
void lfp_inflight_cancel(struct lfp_inflight *r);
/* May the calling thread wait for other threads' operations in flight on
 * pool? Not when it has one of its own there (a call nested in it: a
 * signal handler's, or one through another pool's init), nor when that is
 * not known (a handler that interrupted its thread between its list and
 * the count). */
bool lfp_inflight_may_wait(const struct lfp_pool *pool);
/* Has the calling thread any operation in flight (on any pool)? */
bool lfp_inflight_any(void);

/* pool.c: the depot and carving. */

#if defined(LFP_HAVE_RSEQ) && !defined(LFP_TEST_HOOKS)
/* __rseq_offset plus cpu_id's offset in struct rseq when glibc registered
 * rseq areas, else 0; set by lfp_pool_create. */
extern _Atomic ptrdiff_t lfp_rseq_cpu_off;
#endif

/* The CPU the calling thread runs on (it may move at any time: a hint), or
 * a negative number. The kernel keeps it in the thread's rseq area, which
 * glibc registers (2.35 and later; __rseq_size is 0 when it could not, as
 * under valgrind or qemu-user, and cpu_id negative): a load, where
 * sched_getcpu is a call that reads the same field (3.7 ns a call on the
 * Xeon VM of the README's results), and without rseq a vDSO call on x86-64,
 * a system call on AArch64. The area's offset is kept in a variable of the
 * library's own, not read through __rseq_size and __rseq_offset, which are
 * the C library's and reached through the GOT. Builds whose compiler or C
 * library lacks what meson checks for, and test builds (a test may supply
 * sched_getcpu), call sched_getcpu. Inline, as the depot's stack
 * operations: a pool without a cache asks on every call.
 *
 * lfp_cpu_cheap is its first step, the load, with no call: negative where
 * that does not tell (test builds: sched_getcpu's answer). For paths that
 * have nothing to save around a call and leave the rest to one that has. */
static inline int lfp_cpu_cheap(void)
{
#if defined(LFP_HAVE_RSEQ) && !defined(LFP_TEST_HOOKS)
    ptrdiff_t off = atomic_load_explicit(&lfp_rseq_cpu_off, memory_order_relaxed);
    if (LFP_LIKELY(off != 0)) {
        const uint32_t *cpu_id =
            (const uint32_t *)((char *)__builtin_thread_pointer() + off);
        return (int)__atomic_load_n(cpu_id, __ATOMIC_RELAXED);
    }
    return -1;
#else
    return sched_getcpu();
#endif
}

static inline int lfp_cpu_hint(void)
{
#if defined(LFP_HAVE_RSEQ) && !defined(LFP_TEST_HOOKS)
    int cpu = lfp_cpu_cheap();
    if (LFP_LIKELY(cpu >= 0))
        return cpu;
#endif
    return sched_getcpu();
}

/* lfp_cpu_hint, out of line: for tests, which are built without the
 * library's configuration. */
int lfp_cpu(void);

/* The caller's own depot stack: its CPU's; the first when the CPU is
 * unknown. Once per depot exchange (every call of a LFP_NO_CACHE pool). */
static inline uint32_t lfp_depot_home(const struct lfp_pool *pool)
{
    int cpu = lfp_cpu_hint();
    return cpu >= 0 ? (uint32_t)cpu & pool->depot_mask : 0;
}

/* Depot stack number stack, masked: any number will do. */
static inline struct lfp_stack *lfp_depot_at(struct lfp_pool *pool, uint32_t stack)
{
    return &pool->depot[stack & pool->depot_mask].stack;
}

/* A growable pool's count of blocks in its depot, and its automatic trim:
 * after nblocks were pushed. */
void lfp_depot_counted(struct lfp_pool *pool, size_t nblocks);

/* Push the batches first .. last (linked through next), nblocks in all, onto
 * stack (masked: any number will do), or onto the calling thread's CPU's.
 * Inline, with the stack's push: a pool without a cache pushes on every
 * free. */
static inline void lfp_depot_push_to(struct lfp_pool *pool, uint32_t stack,
                                     struct lfp_free *first, struct lfp_free *last,
                                     size_t nblocks)
{
    lfp_stack_push(lfp_depot_at(pool, stack), (struct lfp_node *)first, (struct lfp_node *)last);
    if (lfp_growable(pool))
        lfp_depot_counted(pool, nblocks);
}

static inline void lfp_depot_push(struct lfp_pool *pool, struct lfp_free *first,
                                  struct lfp_free *last, size_t nblocks)
{
    lfp_depot_push_to(pool, lfp_depot_home(pool), first, last, nblocks);
}

struct lfp_free *lfp_depot_pop(struct lfp_pool *pool, uint32_t *len);
/* One block off a depot stack (masked; lfp_depot_pop_own: the calling
 * thread's CPU's), or NULL: lfp_depot_pop's first step alone, for a pool
 * whose stacks hold single blocks and need no read-side section
 * (lfp_carves_at_peak). It asks for the line of the block left on top,
 * which the next pop reads: when another thread freed the blocks (a
 * producer allocating what its consumer freed), that line is in the other
 * core's cache. On a 2-core EPYC VM (lfp-bench xfer 1+1 without
 * a cache) a pair took 77 to 88 ns with the stack's push and pop out of
 * line, 94 to 116 with them inline and no request, 78 to 83 inline with
 * it (README, "Without a cache"). Asked for writing (prefetchw, built with
 * -mprfchw), xfer took 133 to 148 ns and server 121 to 133, against 103
 * to 115 and 99 to 113 asked for reading, in rounds taking turns. */
static inline struct lfp_free *lfp_depot_pop_at(struct lfp_pool *pool, uint32_t stack)
{
    struct lfp_node *below = NULL;
    struct lfp_free *l =
        (struct lfp_free *)lfp_stack_pop_below(lfp_depot_at(pool, stack), &below);
    if (below != NULL)
        __builtin_prefetch(below);
    return l;
}

static inline struct lfp_free *lfp_depot_pop_own(struct lfp_pool *pool)
{
    return lfp_depot_pop_at(pool, lfp_depot_home(pool));
}

/* The depot has one stack per CPU (see pool.c), depot_mask + 1 of them. */
#define LFP_DEPOT_STACKS_MAX 64u
/* Detach every batch of one depot stack (for a trim); they are the caller's,
 * linked through next. */
struct lfp_free *lfp_depot_take_stack(struct lfp_pool *pool, uint32_t stack);
/* Bytes a cached fixed pool carves at least at a time (see lfp_carve). */
#define LFP_CARVE_BYTES (64u << 10)
/* New blocks, at most want, a batch (not laned); 0 with errno ENOBUFS
 * (no more may be made) or ENOMEM. Blocks made with them go to the depot. */
uint32_t lfp_carve(struct lfp_pool *pool, uint32_t want, struct lfp_free **first);
/* A batch from the depot, else a batch of up to want new blocks (its
 * length in *len either way); NULL with errno ENOBUFS or ENOMEM when the pool
 * has none to give. With split, each pop counts itself in flight there:
 * a batch returned popped leaves split counted (split->counted), for the
 * caller to end once it has put back what it does not keep. */
struct lfp_free *lfp_depot_take(struct lfp_pool *pool, uint32_t want, uint32_t *len,
                                struct lfp_inflight *split);
/* n new blocks from start: the first min(want, n), a batch (not laned),
 * for the caller (returns how many); the rest to the depot, in batches of
 * the pool's magazine size. */
uint32_t lfp_carve_split(struct lfp_pool *pool, uintptr_t start, size_t n, uint32_t want,
                         struct lfp_free **first);
/* Make a newly carved block ready: construct it, fill it (checked mode),
 * poison it; returns its links, open for writing. */
struct lfp_free *lfp_block_fresh(struct lfp_pool *pool, void *block);
/* Write a batch's length (and whether its lanes are linked) into it. */
void lfp_batch_seal(struct lfp_free *first, uint32_t len, bool laned);
/* Is p the start of one of pool's blocks? Fixed and growable pools alike. */
bool lfp_pool_owns(const struct lfp_pool *pool, const void *p);
/* Memory from the OS and from malloc: every request the library makes goes
 * through these, so a test can make each fail in turn (LFP_TEST_HOOKS). */
void *lfp_os_map(size_t size);
void lfp_os_unmap(void *p, size_t size);
/* Address space without access, a request like the others; commit makes a
 * part of it memory (a mapping, as lfp_os_map), decommit gives that back. */
void *lfp_os_reserve(size_t size);
bool lfp_os_commit(void *p, size_t size);
void lfp_os_decommit(void *p, size_t size);
/* Give the pages of memory that stays mapped back to the OS: they read as
 * zero when next touched. Locked pages (mlock, mlockall), which the OS
 * keeps, are unlocked first with unlock, else stay as they were. Returns
 * the bytes given back: less than size where some stayed. */
size_t lfp_os_drop(void *p, size_t size, bool unlock);
/* Fault in the pages of memory about to be written all over, in one call
 * where each page would trap on its own. A hint: where the kernel refuses
 * (MADV_POPULATE_WRITE is Linux 5.14's) or memory is short, the writes
 * fault the pages in as before. */
void lfp_os_prefault(void *p, size_t size);
size_t lfp_page_size(void);

/* The whole pages inside [start, end): their bytes, from *lo (0 if none). */
static inline size_t lfp_pages_within(uintptr_t start, uintptr_t end, uintptr_t *lo)
{
    size_t ps = lfp_page_size();
    *lo = LFP__ROUND(start, ps);
    end &= ~(uintptr_t)(ps - 1);
    return end > *lo ? end - *lo : 0;
}
/* align 0 or up to max_align_t: malloc's; larger: aligned_alloc's. */
void *lfp_sys_alloc(size_t size, size_t align);
void *lfp_sys_zalloc(size_t size, size_t align); /* zero-filled */
char *lfp_sys_strdup(const char *s);
void lfp_sys_free(void *p);

/* slab.c: growable pools. */
int lfp_slab_setup(struct lfp_pool *pool, const struct lfp_config *cfg);
uint32_t lfp_slab_grow(struct lfp_pool *pool, uint32_t want, struct lfp_free **first);
bool lfp_slab_owns(const struct lfp_pool *pool, const void *p);
size_t lfp_slab_trim(struct lfp_pool *pool, bool wait);
void lfp_slab_destroy_all(struct lfp_pool *pool);
/* Call fn on every block of the pool's holes; stops at the first non-zero
 * return, else returns LFP_OK with the count in *n. Only when no thread
 * uses the pool. */
int lfp_slab_holes_walk(struct lfp_pool *pool, int (*fn)(void *ctx, void *block), void *ctx,
                        size_t *n);
void lfp_rcu_read_lock(void);
void lfp_rcu_read_unlock(void);
/* Is the calling thread inside a read-side section (a signal handler that
 * interrupted a depot pop)? */
bool lfp_rcu_reading(void);

/* A read-side section around a depot pop, for growable pools only: fixed
 * pools never unmap, and pay one flag test. */
static inline void lfp_depot_read_lock(const struct lfp_pool *pool)
{
    if (lfp_growable(pool))
        lfp_rcu_read_lock();
}

static inline void lfp_depot_read_unlock(const struct lfp_pool *pool)
{
    if (lfp_growable(pool))
        lfp_rcu_read_unlock();
}
/* Checked growable pools: the in-use bitmap of p's slab and p's index in it,
 * or NULL when p is not the start of one of pool's blocks. The bitmap stays
 * valid until the caller's lfp_depot_read_unlock. */
_Atomic uint64_t *lfp_slab_used(const struct lfp_pool *pool, const void *p, size_t *index);

/* checked.c: checked mode (LFP_CHECKED); called for checked pools only,
 * but for teardown. */
/* Is LFP_CHECKED=1 in the environment? */
bool lfp_checked_by_env(void);
int lfp_checked_setup(struct lfp_pool *pool);
/* Report the blocks still in use among nblocks blocks from base, whose
 * in-use bits are used. */
void lfp_checked_leaks(struct lfp_pool *pool, uintptr_t base, size_t nblocks,
                       _Atomic uint64_t *used);
/* A fixed pool's leaks among its first carved blocks reported, its bitmap
 * released; nothing for other pools. */
void lfp_checked_teardown(struct lfp_pool *pool, size_t carved);
/* Fill a block that has just become free (or was just carved). */
void lfp_checked_fill(const struct lfp_pool *pool, void *block);
/* A block leaves the pool: check its fill, mark it in use. */
void lfp_checked_alloc(struct lfp_pool *pool, void *block);
/* Blocks come back: all or none, LFP_EDOUBLE (reported) if one is free
 * already or listed twice. NULL entries are skipped. */
int lfp_checked_free(struct lfp_pool *pool, void *const *blocks, size_t n);
/* Bytes of the in-use record of nblocks blocks: groups of 64 blocks, each a
 * 64-bit word of in-use bits followed by the 64 blocks' allocating thread
 * ids (32 bits each); see checked.c. */
static inline size_t lfp_used_bytes(size_t nblocks)
{
    return (nblocks + 63) / 64 * (sizeof(uint64_t) + 64 * sizeof(uint32_t));
}

/* error.c: reports to the error handler (checked mode only). */
void lfp_report(const struct lfp_pool *pool, void *ptr, int err, const char *what);

/* magazine.c: per-thread caches, as seen by pool creation and teardown. */
/* Hand the calling thread's cached blocks of pool back to the depot. */
void lfp_flush_own(struct lfp_pool *pool);
int lfp_pool_id_acquire(struct lfp_pool *pool);
void lfp_pool_id_release(struct lfp_pool *pool);
/* Take every thread's slot of the pool away; returns their in-use balance. */
intptr_t lfp_slots_revoke(struct lfp_pool *pool);
/* Sum the threads' slots of the pool: cached blocks and in-use balance. */
void lfp_slots_sum(const struct lfp_pool *pool, size_t *cached, intptr_t *balance);
/* Call fn on every free block cached in a thread's magazine of the pool;
 * stops at the first non-zero return. Only when no thread uses the pool. */
int lfp_slots_walk(struct lfp_pool *pool, int (*fn)(void *ctx, void *block), void *ctx);

#pragma GCC visibility pop

#endif
