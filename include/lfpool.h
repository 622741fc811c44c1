/* SPDX-License-Identifier: MIT */
/**
 * @file lfpool.h
 * @brief lfpool: a lock-free concurrent pool of fixed-size blocks.
 *
 * A pool hands out blocks of one size to any number of threads. Each thread
 * keeps a small cache of free blocks per pool (two "magazines"), so the usual
 * lfp_alloc()/lfp_free() touches only memory of the calling thread: no atomic
 * read-modify-write, no lock. When a thread's magazines run empty or full it
 * trades a whole magazine with the pool's shared depot (lock-free stacks,
 * one per CPU) with one compare-and-swap. Blocks may be freed by a thread
 * other than the one that allocated them.
 *
 * Memory: a thread's first call on a pool mallocs its cache (two magazines
 * of cache_size pointers), which is not async-signal-safe; if malloc fails,
 * the thread works on the shared depot directly instead. After that,
 * lfp_alloc, lfp_free, their bulk forms and lfp_pool_trim call no malloc:
 * a growable pool's growths and trims map what they need (slabs, and slab
 * descriptors and hole records a page at a time, kept for reuse), but for
 * a checked pool's record of each slab's blocks in use. One exception is
 * liburcu's: the first automatic trim (trim_threshold) in the process that
 * releases a slab queues it with call_rcu, whose first call makes its
 * worker (a malloc and a pthread_create; liburcu aborts if they fail),
 * inside the lfp_free or lfp_thread_flush that set the trim off. A program
 * that wants that done up front, for example because its signal handlers
 * free into such a pool, calls urcu_bp_get_default_call_rcu_data() from
 * <urcu/urcu-bp.h> once at start-up (lfpool queues on that worker).
 *
 * Signal handlers: a handler may call lfp_alloc, lfp_free and their bulk
 * forms on a pool without a cache (LFP_NO_CACHE, fixed or growable, not
 * checked), also one its thread is inside, once that thread has made a call
 * on the pool (the first mallocs), and not while the thread exits. A pool
 * with a cache is not reentrant: its magazines change by plain loads and
 * stores, which is what makes the fast path cheap, so a handler's call on a
 * pool with a cache that its thread is inside may hand out a block twice.
 * Block the signal around the thread's calls on such a pool, or give the
 * handler a pool without a cache.
 *
 * Concurrency contract (who may call what at the same time):
 *
 * | call                         | concurrently with, on the same pool     |
 * |------------------------------|-----------------------------------------|
 * | lfp_alloc, lfp_free, *_bulk  | each other, lfp_owns, lfp_pool_stats,   |
 * |                              | lfp_pool_trim, lfp_thread_flush         |
 * | lfp_owns, lfp_pool_stats     | anything but lfp_pool_destroy           |
 * | lfp_pool_trim                | anything but lfp_pool_verify and        |
 * |                              | lfp_pool_destroy                        |
 * | lfp_pool_verify              | nothing (no thread may use the pool)    |
 * | lfp_pool_destroy             | nothing (no thread may use the pool)    |
 * | lfp_pool_create              | anything, on any pool                   |
 *
 * Calls on different pools never constrain each other. Threads may exit at
 * any time, also while another thread destroys a pool they used: an exiting
 * thread hands its cached blocks back and never touches a destroyed pool.
 * That hand-back is a call on the pool, like lfp_thread_flush: while it
 * runs, lfp_pool_verify may report counters that disagree (join the thread
 * first) and lfp_pool_stats is approximate.
 *
 * Fork: the child keeps the pools; blocks that other (now absent) threads of
 * the parent had cached stay counted as cached and are not reused, and so
 * do blocks they were moving between their magazines and the depot (a
 * refill, a spill), making ready (carving, growing, a hole included),
 * trimming (with the holes the trim held: their slabs then stay for good),
 * handing back (lfp_thread_flush, thread exit) or, in a pool without a cache,
 * moving from another CPU's depot stack to their own when the parent
 * forked: the child does not wait for those, and never hands them out.
 * Such a move cut short may leave blocks counted in no list, or both as
 * cached and as free, which lfp_pool_verify then reports in the child.
 * The first growable pool registers liburcu-bp's
 * fork handlers (so that the child's grace periods do not wait for readers
 * that are gone) and call_rcu's (which stop its thread around fork() and
 * start one in the child); a program that uses liburcu-bp itself must not
 * register them again. A fork waits for a thread that is queuing a slab
 * release.
 *
 * Debugging. Checked mode (LFP_CHECKED, or LFP_CHECKED=1 in the
 * environment) finds double frees, writes after free and leaks, and reports
 * them through lfp_set_error_handler(). Memory checkers see pool blocks as
 * they see malloc'd ones:
 * - built with AddressSanitizer, the library poisons free blocks, so a use
 *   after free of a pool block is an ASan "use-after-poison" report. A block
 *   freed into a thread's cache is poisoned whole; once it moved on to the
 *   shared depot, its first LFP_LINK_BYTES (at the end, with an init
 *   constructor) stay open for the depot's links. Pools whose blocks do not
 *   start on 8-byte boundaries (possible only where pointers have 4 bytes:
 *   align below 8, or caller memory so aligned) are not poisoned: ASan's
 *   granules are 8 bytes;
 * - built with -Dvalgrind=enabled, blocks are announced to Valgrind's
 *   memcheck as heap blocks (client requests), which then reports uses
 *   after free, double frees outside checked mode, and blocks never freed
 *   as leaks. Off by default: it costs a few instructions on every call.
 * Neither costs anything in a build without it.
 */
#ifndef LFPOOL_H
#define LFPOOL_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Library version: major * 10000 + minor * 100 + patch. */
#define LFP_VERSION 100

/** An opaque pool. */
typedef struct lfp_pool lfp_pool;

/** Pool flags for lfp_config::flags. */
enum {
    /** Grow in slabs on demand up to lfp_config::max_blocks, and give fully
     *  free slabs back to the OS with lfp_pool_trim() (or automatically, see
     *  lfp_config::trim_threshold). Depot exchanges of growable pools run in
     *  an RCU read-side section (liburcu-bp); fixed pools never use RCU.
     *  A growable pool reserves address space (not memory) for its slabs:
     *  enough for max_blocks, up to 16 GiB, or 1 GiB when unbounded, and at
     *  most 1/16 of RLIMIT_AS when that is set. Blocks
     *  in that range are freed as cheaply as a fixed pool's; slabs past it
     *  still work, found through a table (a few loads more per lfp_free). */
    LFP_GROWABLE = 1u << 0,
    /** lfp_alloc() returns blocks filled with zero bytes (a memset per
     *  alloc). Cannot be combined with an init constructor. */
    LFP_ZERO = 1u << 1,
    /** Checked mode, for debugging; also set on every pool created while
     *  the environment variable LFP_CHECKED is set to 1. The pool keeps one
     *  "in use" bit per block, and the OS thread id (gettid) of the thread
     *  that allocated it, and then:
     *  - lfp_free() and lfp_free_bulk() of a block that is already free
     *    return LFP_EDOUBLE and leave the pool as it was;
     *  - lfp_free() fills the block with the byte 0xDB, all but its first
     *    LFP_LINK_BYTES (where the free lists may keep their links), and
     *    lfp_alloc() checks the fill: a byte changed while the block was
     *    free (a write after free) is reported as LFP_ECORRUPT, and the
     *    block is still handed out. Not for pools with an init constructor,
     *    whose free blocks keep their constructed bytes;
     *  - every error lfp_free() and lfp_free_bulk() return (LFP_EFOREIGN,
     *    LFP_EDOUBLE), every LFP_ECORRUPT and, at lfp_pool_destroy(), each
     *    block still in use (LFP_ELEAK, naming the thread that allocated
     *    it) goes to the error handler (see lfp_set_error_handler()).
     *  Cost: every call on the pool takes the slow path, with an atomic
     *  read-modify-write of the in-use bit (and at alloc a store of the
     *  thread id) and a pass over the block's bytes (fill at free, compare
     *  at alloc); memory: a bit and 4 bytes per block (mapped lazily for
     *  fixed pools, per slab for growable ones). Pools without this flag
     *  pay nothing for it: their fast paths have no test of it. */
    LFP_CHECKED = 1u << 2,
    /** No per-thread cache: every call goes to the shared lock-free stack
     *  (one compare-and-swap per alloc and per free on the calling CPU's
     *  depot stack; an alloc that finds that stack empty takes another
     *  CPU's whole, keeps one block and moves the rest onto its own, so
     *  blocks freed on other CPUs come over a run at a time). */
    LFP_NO_CACHE = 1u << 3,
};

/** Error codes. Every function that returns int returns 0 or one of these,
 *  except lfp_owns(), which answers 1 or 0. */
enum lfp_error {
    LFP_OK = 0,
    LFP_EINVAL,     /**< invalid argument or configuration */
    LFP_ENOMEM,     /**< the OS refused memory, or no pool id is free */
    LFP_EEXHAUSTED, /**< the pool has no free block and may not grow */
    LFP_EALIGN,     /**< caller memory is not aligned as the pool needs */
    LFP_EFOREIGN,   /**< the pointer is not the start of one of the pool's blocks */
    LFP_EDOUBLE,    /**< the block is already free (checked mode) */
    LFP_ECORRUPT,   /**< a free block's bytes were written (write after free;
                         checked mode, reported to the error handler) */
    LFP_ELEAK,      /**< a block still in use at lfp_pool_destroy() (checked
                         mode, reported to the error handler with the
                         thread that allocated it) */
};

/** How to build a pool. Zero-initialise it and set what you need. */
struct lfp_config {
    size_t block_size;   /**< bytes per block; required, > 0 */
    size_t align;        /**< block alignment, a power of two no larger than
                              the page size; 0 = alignof(max_align_t); below
                              sizeof(void *), raised to it */
    size_t capacity;     /**< fixed pool: number of blocks (required, > 0);
                              growable: blocks made up front (may be 0), not
                              a floor: trims release them like any others */
    size_t max_blocks;   /**< growable pools only (fixed pools ignore it):
                              upper bound, 0 = none; else at least capacity */
    unsigned flags;      /**< LFP_* flags */
    void *mem;           /**< optional caller memory for a fixed pool, aligned
                              to the block alignment, of ... */
    size_t mem_size;     /**< ... at least this many bytes: lfp_pool_bytes(cfg);
                              must be 0 when mem is NULL */
    const char *name;    /**< optional; the pool keeps its own copy */
    unsigned cache_size; /**< blocks per magazine; 0 = the library's choice
                              (LFP_CACHE_BYTES of blocks, 16 to
                              LFP_CACHE_DEFAULT blocks). Requested or default, it is
                              capped at capacity / 16 (max_blocks / 16 for a
                              bounded growable pool): stats.cache_size says
                              what applies. A thread holds up to two
                              magazines of free blocks per pool, and one that
                              only frees always holds one to two full ones:
                              size a fixed pool for that (README, "Choosing
                              cache_size") */
    /** Optional constructor, run once per block when the pool first carves
     *  it. With a constructor the pool keeps its free-list links outside the
     *  block's bytes, so a block's constructed state survives lfp_free() and a
     *  later lfp_alloc(); this costs LFP_LINK_BYTES per block. In a growable
     *  pool without fini, a trim may give back the pages of free blocks in
     *  a slab still in use (see lfp_pool_trim()): their state goes with the
     *  pages, and init runs on each again when the pool next makes them
     *  ready. init and fini must return (no thread exit, cancellation or
     *  longjmp out of them), must not call into the same pool
     *  (lfp_thread_flush is allowed), and must not wait for anything a
     *  thread allocating from the pool may hold: such a thread, finding the
     *  pool at its bound, waits for the blocks being made ready. A call
     *  that comes back into the pool through another pool's init or fini
     *  (P's init allocates from Q, whose init allocates from P) is treated
     *  as a signal handler's: it waits for no blocks on their way, and may
     *  get ENOBUFS at the bound, or carve or grow one more (two threads in
     *  such chains would otherwise wait for each other). */
    void (*init)(void *block, void *arg);
    /** Optional destructor, run on each carved block, free or in use, before
     *  its memory is released: by lfp_pool_destroy(), and for a growable
     *  pool also when a trim releases a slab (all of whose blocks are free).
     *  A growable pool with fini gives back whole slabs only. */
    void (*fini)(void *block, void *arg);
    void *arg;           /**< passed to init and fini */
    /** Growable pools only (fixed pools ignore it): bytes per slab, a power
     *  of two of at least
     *  64 KiB and one block, and at most 1 GiB (a growth makes a whole slab
     *  ready at once); 0 = the library's choice: 256 KiB, doubled
     *  until it holds at least 16 blocks. In the pool's reserved range (see
     *  LFP_GROWABLE) a slab holds a power of two of blocks, the most that
     *  fit this size, rounded up to whole pages (never past 4x the size). */
    size_t slab_size;
    /** Growable pools only (fixed pools ignore it): when more than this
     *  many bytes of free blocks have come into the shared depot since the
     *  pool was created or last trimmed, on top of those that trim kept
     *  (blocks of slabs still partly in use), the thread whose free crosses
     *  the line trims the pool (O(free blocks), slabs unmapped by liburcu's
     *  call_rcu thread after a grace period). Counting from what the last
     *  trim kept spares a trim at every free when many free blocks sit in
     *  slabs that cannot go. These trims release whole slabs only, not the
     *  free pages of slabs in use (lfp_pool_trim() does): in a steady state
     *  they would give back pages for the next allocations to fault in
     *  again. 0 = trim only on lfp_pool_trim(). */
    size_t trim_threshold;
};

/** A snapshot of a pool. Exact when no thread is inside the library. */
struct lfp_stats {
    const char *name;         /**< the pool's copy of its name, or NULL */
    size_t block_size;        /**< as configured */
    size_t stride;            /**< bytes from one block to the next */
    size_t align;             /**< effective alignment */
    size_t blocks_total;      /**< blocks the pool holds now: its capacity,
                                   or the blocks in a growable pool's slabs */
    size_t blocks_in_use;     /**< allocated and not yet freed */
    size_t blocks_in_use_max; /**< fixed pool: blocks_carved, which blocks
                                   are carved lazily to keep near the peak of
                                   blocks out of the shared free list at once
                                   (in use, or cached in some thread's
                                   magazine): without a cache that peak, or
                                   at most the depot's stack count where that
                                   is more (the CPU count rounded up to a
                                   power of two, at most 64: each CPU's stack
                                   carves a block of its own); with a cache
                                   up to a carve's run more;
                                   growable pool: the peak of blocks in its
                                   slabs */
    size_t blocks_cached;     /**< free blocks sitting in threads' magazines */
    size_t blocks_carved;     /**< fixed pool: blocks made ready so far (carving
                                   is lazy: with a cache, 64 KiB of blocks at a
                                   time, at most a quarter of the pool and at
                                   least a magazine; without, one block);
                                   growable pool: blocks made ready in its
                                   slabs now (falls after a trim: blocks of
                                   released slabs, and those whose pages a
                                   trim gave back, until a growth makes them
                                   ready again) */
    size_t bytes_reserved;    /**< memory the pool holds: a fixed pool's
                                   mapping (address space, resident as
                                   carved); a growable pool's live slabs,
                                   less the pages a trim gave back from
                                   slabs still in use */
    size_t cache_size;        /**< effective blocks per magazine, 0 = no cache */
};

/** Most blocks per magazine the library chooses (see README, "Choosing
 *  cache_size"): for cache_size 0 a magazine holds LFP_CACHE_BYTES worth of
 *  blocks, at least 16 and at most this many. */
#define LFP_CACHE_DEFAULT 512u
/** Bytes of blocks per magazine the library aims at when it chooses. */
#define LFP_CACHE_BYTES (32u << 10)
/** Largest accepted lfp_config::cache_size. */
#define LFP_CACHE_MAX 4096u
/** Most pools that may exist at once in a process. */
#define LFP_MAX_POOLS 4096u
/** Bytes the free-list links take per block when a constructor is set. */
#define LFP_LINK_BYTES (2 * sizeof(void *))

/** Internal: x rounded up to a multiple of the power of two a. */
#define LFP__ROUND(x, a) (((x) + (a) - 1) & ~((size_t)(a) - 1))
#ifdef __cplusplus
#define LFP__MAXALIGN alignof(max_align_t)
#else
#define LFP__MAXALIGN _Alignof(max_align_t)
#endif
/** Internal: effective alignment of a configured one: 0 means
 *  alignof(max_align_t), and a free block's links need at least a pointer's
 *  alignment, so smaller requests are raised to it. */
#define LFP__ALIGN(a)                                                       \
    ((a) ? ((size_t)(a) < sizeof(void *) ? sizeof(void *) : (size_t)(a))    \
         : (size_t)LFP__MAXALIGN)
/** Internal: block stride for a block size and alignment. */
#define LFP__STRIDE(bs, a)                                                  \
    LFP__ROUND(((bs) < LFP_LINK_BYTES ? LFP_LINK_BYTES : (size_t)(bs)), LFP__ALIGN(a))

/**
 * Bytes of caller memory a fixed pool of @p nblocks blocks of @p block_size
 * bytes aligned to @p align (0 = default) needs, for a pool without an init
 * constructor. lfp_pool_bytes() covers every configuration. Does not check
 * for overflow: lfp_pool_bytes() does.
 */
#define LFP_POOL_BYTES(nblocks, block_size, align)                          \
    ((size_t)(nblocks) * LFP__STRIDE((block_size), (align)))

/**
 * Bytes of caller memory the fixed pool @p cfg describes needs (blocks only:
 * the pool's control structure is allocated separately). It reads the
 * fields that set the blocks' layout (block_size, align, capacity, flags,
 * cache_size, init), not mem and mem_size, which the caller sets from it.
 * @return the size, or 0 if those fields are invalid or overflow, or for
 *   LFP_GROWABLE (growable pools take no caller memory).
 * Thread-safe; O(1).
 */
size_t lfp_pool_bytes(const struct lfp_config *cfg);

/**
 * Create a pool.
 * @param cfg  the configuration; read only during the call.
 * @param out  receives the pool; set to NULL on failure.
 * @return 0, or LFP_EINVAL (NULL argument, block_size 0, bad align, capacity 0
 *   for a fixed pool, sizes that overflow, caller memory too small, LFP_ZERO
 *   with init, cache_size above LFP_CACHE_MAX, unknown flags, mem_size
 *   without mem, more than SIZE_MAX / 4 bytes of blocks, LFP_GROWABLE
 *   with caller memory, max_blocks below capacity or a bad slab_size),
 *   LFP_EALIGN (caller memory misaligned) or LFP_ENOMEM.
 * Thread-safe. Reserves address space for all blocks; pages become resident
 * only as blocks are first used.
 */
int lfp_pool_create(const struct lfp_config *cfg, lfp_pool **out);

/**
 * Destroy a pool: run fini on every carved block, release its memory and id.
 * No thread may be inside any call on this pool, and none may use it again;
 * blocks cached by other threads are taken back from them.
 * In checked mode each block still in use is reported to the error handler
 * as LFP_ELEAK, with its address and the OS thread id (gettid) of the thread
 * that allocated it, e.g. with the default handler
 * `lfpool: pool "conns": leaked block allocated by thread 12345: 0x7f3a2c001040 (LFP_ELEAK)`.
 * @return the number of blocks still in use (allocated, never freed); 0 for
 *   a NULL pool.
 */
size_t lfp_pool_destroy(lfp_pool *pool);

/**
 * Allocate one block.
 * @return the block, aligned as configured; or NULL with errno ENOBUFS (no
 *   free block left), ENOMEM (the OS refused memory) or EINVAL (NULL pool).
 * Fast path (a block in this thread's magazine): no atomic read-modify-write,
 * no lock, 14 instructions on x86-64 (GCC 12, -O2). Otherwise one CAS on the
 * shared depot moves a whole magazine of blocks. Lock-free, but for three
 * cases: a growable pool that grows maps a slab (a system call); a thread
 * that finds the pool at its bound while another thread's blocks are on
 * their way to the depot (a run or slab being made ready, the depot a trim
 * is handing back) waits for them (sched_yield) rather than fail with
 * ENOBUFS; and a thread of a pool without a cache that finds every depot
 * stack empty while another thread moves a CPU's stack to its own (two
 * CASes apart) waits for those blocks rather than carve or grow beside
 * them, so that a fixed pool carves no more than its peak in use and a
 * growable one makes no slab for blocks it has. A signal handler's call
 * (see "Signal handlers" above) that interrupted its thread's operation on
 * the pool waits for nothing, its thread's blocks or another's: it may
 * carve a block or grow a slab more, or get ENOBUFS at the bound.
 */
void *lfp_alloc(lfp_pool *pool);

/**
 * Free one block. Any thread may free any block of the pool.
 * @return 0 (also for a NULL block); LFP_EINVAL for a NULL pool;
 *   LFP_EFOREIGN when @p block is not the start of one of the pool's carved
 *   blocks (another pool's, malloc's, the stack's, interior or misaligned),
 *   leaving the pool untouched; in checked mode, LFP_EDOUBLE for a block
 *   that is already free. Outside checked mode a free of a block that is
 *   free already, or carved but never handed out, is not detected.
 * Fast path: bounds and stride check plus a push onto this thread's magazine,
 * no atomic read-modify-write: 27 instructions on x86-64 (GCC 12, -O2), 32
 * for a block in a growable pool's reserved range. Lock-free, except that
 * a free whose spill takes a growable pool past its trim_threshold runs that
 * trim (see lfp_pool_trim) on the calling thread.
 */
int lfp_free(lfp_pool *pool, void *block);

/**
 * Allocate up to @p n blocks into @p blocks.
 * @return how many were allocated (fewer than n when the pool runs out; then
 *   errno is ENOBUFS or ENOMEM); 0 with errno EINVAL for a NULL pool, or a
 *   NULL @p blocks with n > 0. Uses and refills this thread's magazines.
 */
size_t lfp_alloc_bulk(lfp_pool *pool, void **blocks, size_t n);

/**
 * Free @p n blocks. All or none: every pointer is checked first, and if any
 * is not a block of this pool (NULL entries are skipped) nothing is freed.
 * In checked mode the same holds for a block that is already free, or that
 * the array lists twice.
 * @return 0, LFP_EINVAL (NULL pool, or NULL array with n > 0), LFP_EFOREIGN
 *   or (checked mode) LFP_EDOUBLE.
 */
int lfp_free_bulk(lfp_pool *pool, void *const *blocks, size_t n);

/**
 * @return 1 if @p p is the start of one of the pool's carved blocks (free or
 *   in use), else 0. Never dereferences @p p. Thread-safe, O(1).
 */
int lfp_owns(const lfp_pool *pool, const void *p);

/**
 * Fill @p out with a snapshot of the pool. Exact when no thread is inside the
 * library, approximate otherwise. Costs O(threads that used the library).
 * @return 0, or LFP_EINVAL for a NULL argument.
 */
int lfp_pool_stats(const lfp_pool *pool, struct lfp_stats *out);

/**
 * Check the pool's free lists and counters: every free block is a carved
 * block of the pool, none is listed twice, and free (depot and magazines) +
 * in use = carved. For tests and debugging; no thread may use the pool.
 * Costs O(f log f) time for f free blocks, and a pointer per carved block
 * (per block of a growable pool's slabs) of temporary memory.
 * @return 0 if consistent, LFP_EINVAL for a NULL pool or when the counters
 *   disagree with the free lists, LFP_ENOMEM, or LFP_EFOREIGN / LFP_EDOUBLE
 *   naming the first inconsistency found.
 */
int lfp_pool_verify(lfp_pool *pool);

/**
 * Give memory back to the OS: hand the calling thread's cached blocks of the
 * pool back, find the slabs all of whose blocks are free in the depot, and
 * unmap them after an RCU grace period (this call waits for it, about 70 us).
 * In a slab that stays (a block in it in use or cached), a run of free
 * blocks over at least 16 KiB of whole pages gives those pages back
 * (MADV_DONTNEED), unless the pool has a destructor or is checked: the
 * blocks in them wait, out of the depot, until the pool next grows, which
 * makes them ready again before it maps a new slab (and may do so at
 * max_blocks). Automatic trims (trim_threshold) release whole slabs only.
 * Locked pages (mlock) of a hole stay, not counted; a free slab goes whole,
 * locked or not. Where transparent huge pages are enabled "always",
 * khugepaged may fill a hole's pages again (README, "Growable pools and
 * liburcu").
 * Slabs an automatic trim (trim_threshold) releases meanwhile are not counted
 * in the return value.
 * Blocks cached by other threads keep their slabs. Fixed pools never release
 * memory, and their trim does nothing at all (it flushes no cache). May
 * run concurrently with every call but lfp_pool_verify and lfp_pool_destroy; while it holds the
 * depot (O(free blocks)), other threads that need blocks grow the pool
 * instead (or, at max_blocks, wait for the blocks it keeps to come back).
 * One trim at a time per pool: a concurrent one returns 0.
 * @return bytes released: slabs, less the pages given back from them
 *   before, and pages of slabs that stay (0 for fixed pools and NULL).
 */
size_t lfp_pool_trim(lfp_pool *pool);

/**
 * Hand the calling thread's cached blocks of every pool back to their depots.
 * Threads do this by themselves when they exit. Lock-free, except for the
 * automatic trim of a growable pool this takes past its trim_threshold (as
 * lfp_free).
 */
void lfp_thread_flush(void);

/**
 * @return a static, human-readable description of an lfp_error code (or of
 *   an unknown one). Thread-safe.
 */
const char *lfp_strerror(int err);

/**
 * Receives the errors checked mode finds (see LFP_CHECKED).
 * @param pool  the pool the error was found in;
 * @param ptr   the block (or pointer) concerned;
 * @param err   LFP_EFOREIGN or LFP_EDOUBLE (from lfp_free() or
 *              lfp_free_bulk(), which also return it), LFP_ECORRUPT (from
 *              lfp_alloc() and lfp_alloc_bulk(), which still hand the block
 *              out) or LFP_ELEAK (from lfp_pool_destroy(), once per block
 *              still in use);
 * @param what  a short phrase that reads before the address, such as
 *              "double free of"; for LFP_ELEAK it names the allocating
 *              thread: "leaked block allocated by thread 12345:". Valid
 *              only during the call.
 * Called on the thread whose call found the error, while that call runs: it
 * may log, count, or abort(); it must not call into the same pool
 * (lfp_thread_flush is allowed).
 */
typedef void (*lfp_error_handler)(lfp_pool *pool, void *ptr, int err, const char *what);

/**
 * Set the process-wide error handler for checked mode; NULL restores the
 * default, which writes one line to stderr, e.g.
 * `lfpool: pool "conns": double free of 0x7f3a2c001040 (LFP_EDOUBLE)`.
 * Pools not in checked mode never call the handler.
 * @return the previous handler, NULL when it was the default.
 * Thread-safe (an atomic exchange); a report running at the same time may
 * still go to the previous handler.
 */
lfp_error_handler lfp_set_error_handler(lfp_error_handler h);

#ifdef __cplusplus
}
#endif
#endif /* LFPOOL_H */
