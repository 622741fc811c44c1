/* SPDX-License-Identifier: MIT */
/*
 * Per-thread magazines (Bonwick & Adams, 2001) in front of the depot.
 *
 * Each thread owns a cache (struct lfp_tcache) with one slot per pool id.
 * A slot holds two magazines, "loaded" and "previous": arrays of block
 * pointers (rounds) in one buffer of the slot's, so the fast path touches
 * neither the block nor memory another thread writes. alloc takes the last
 * round of loaded; free appends to it. Only when loaded is empty (alloc) or
 * full (free) does the thread swap with previous or trade one whole magazine
 * with the depot, one CAS for cap blocks; in the depot a magazine is a chain
 * linked through its blocks, built or walked once per exchange.
 *
 * Thread caches are registered in a global push-only list and recycled when
 * their thread exits, so other threads may always walk them (statistics,
 * destroy) without their memory going away.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "sanitize.h"

#define LFP_SLOTS_CHUNK 64u
#define LFP_DIR_SIZE ((LFP_MAX_POOLS - LFP_SLOTS_INLINE) / LFP_SLOTS_CHUNK)

_Static_assert((LFP_MAX_POOLS - LFP_SLOTS_INLINE) % LFP_SLOTS_CHUNK == 0,
               "the directory covers every pool id");

struct lfp_tcache {
    struct lfp_slot slots[LFP_SLOTS_INLINE];
    /* Slots of the higher pool ids, a chunk at a time, made by the owner
     * on first use and kept with the cache for its next owner. */
    _Atomic(struct lfp_slot *) dir[LFP_DIR_SIZE];
    struct lfp_tcache *next_all; /* registry link; fixed once published */
    _Atomic int live;            /* 1 while a thread owns this cache */
};

static _Atomic(struct lfp_pool *) lfp_pool_table[LFP_MAX_POOLS];
static _Atomic(struct lfp_tcache *) lfp_registry;

/* Stands in for every slot a thread has not bound: cap 0 and no rounds send
 * both alloc and free to the slow path. Never written. */
static struct lfp_slot lfp_slot_none;

#define LFP_R4(x) x, x, x, x
#define LFP_R16(x) LFP_R4(x), LFP_R4(x), LFP_R4(x), LFP_R4(x)
#define LFP_R64(x) LFP_R16(x), LFP_R16(x), LFP_R16(x), LFP_R16(x)
_Static_assert(LFP_SLOTS_INLINE == 64, "the initialiser below has 64 + 1 entries");

/* The fast path's view of this thread's cache: the slot of each pool id
 * below LFP_SLOTS_INLINE, and one last entry that is always lfp_slot_none,
 * for pools with higher ids. One load finds a slot. */
static __thread struct lfp_slot *lfp_tls_slots[LFP_SLOTS_INLINE + 1]
    __attribute__((tls_model("initial-exec"))) = {
        LFP_R64(&lfp_slot_none), &lfp_slot_none
};
static __thread struct lfp_tcache *lfp_tc __attribute__((tls_model("initial-exec")));
/* Set once this thread's cache was handed back at exit: later calls from
 * other exit handlers go straight to the depot. */
static __thread bool lfp_tc_gone __attribute__((tls_model("initial-exec")));

static pthread_key_t lfp_tc_key;
static pthread_once_t lfp_tc_once = PTHREAD_ONCE_INIT;
static bool lfp_tc_key_ok;

/* ---- relaxed counters: plain loads and stores on the owner's side ---- */

static inline uint32_t lfp_get32(_Atomic uint32_t *p)
{
    return atomic_load_explicit(p, memory_order_relaxed);
}

static inline void lfp_set32(_Atomic uint32_t *p, uint32_t v)
{
    atomic_store_explicit(p, v, memory_order_relaxed);
}

/* Add to this thread's in-use balance of the pool; to the pool's shared
 * balance when the thread has no slot. In one step: a signal handler's call
 * on a pool without a cache may interrupt its thread's call on that pool
 * here (a load and a store lost the handler's count: a review's handlers
 * left blocks_in_use at 14 and 17 with every block back). */
static inline void lfp_take(struct lfp_pool *pool, struct lfp_slot *s, intptr_t n)
{
    if (s != NULL)
        lfp_add_own(&s->taken, n);
    else
        atomic_fetch_add_explicit(&pool->retired, n, memory_order_relaxed);
}

/* ---- a thread's slots ---- */

static struct lfp_slot *lfp_slot_at(struct lfp_tcache *tc, uint32_t id, bool create)
{
    if (id < LFP_SLOTS_INLINE)
        return &tc->slots[id];
    uint32_t k = (id - LFP_SLOTS_INLINE) / LFP_SLOTS_CHUNK;
    struct lfp_slot *chunk = atomic_load_explicit(&tc->dir[k], memory_order_acquire);
    if (chunk == NULL) {
        if (!create)
            return NULL;
        chunk = lfp_sys_zalloc(LFP_SLOTS_CHUNK * sizeof(*chunk), LFP_SHARING_SPAN);
        if (chunk == NULL)
            return NULL;
        atomic_store_explicit(&tc->dir[k], chunk, memory_order_release);
    }
    return &chunk[(id - LFP_SLOTS_INLINE) % LFP_SLOTS_CHUNK];
}

/* Every slot of a cache that exists, in id order. */
#define LFP_FOR_EACH_SLOT(tc, s, id)                                           \
    for (uint32_t id = 0; id < LFP_MAX_POOLS; id++)                            \
        for (struct lfp_slot *s = lfp_slot_at((tc), id, false); s != NULL; s = NULL)

#define LFP_FOR_EACH_TCACHE(tc)                                                \
    for (struct lfp_tcache *tc = atomic_load_explicit(&lfp_registry, memory_order_acquire); \
         tc != NULL; tc = tc->next_all)

/* ---- blocks on their way to a depot (struct lfp_inflight) ---- */

/* Landed + 1, in the high half; a landing takes its weight off the low. */
#define LFP_INBOUND_LANDED ((uint64_t)1 << 32)

static __thread struct lfp_inflight *lfp_inflight_list
    __attribute__((tls_model("initial-exec")));

/* Non-zero while the calling thread's list and pool->inbound disagree on
 * one of its records (between the change of one and of the other): a
 * signal handler that interrupts it there cannot tell its own part of the
 * count, and waits for nothing (lfp_inflight_may_wait). The signal fences
 * keep the compiler from moving the list's and records' stores out of the
 * span; a handler's own spans leave the count as they found it. */
static __thread _Atomic unsigned lfp_inflight_changing __attribute__((tls_model("initial-exec")));

/* Relaxed load and store, not an RMW: only this thread and its handlers
 * touch it, and a handler restores what it changes before it returns. */
static void lfp_inflight_change_by(unsigned d)
{
    unsigned v = atomic_load_explicit(&lfp_inflight_changing, memory_order_relaxed);
    atomic_store_explicit(&lfp_inflight_changing, v + d, memory_order_relaxed);
}

static void lfp_inflight_change_begin(void)
{
    lfp_inflight_change_by(1);
    atomic_signal_fence(memory_order_seq_cst);
}

static void lfp_inflight_change_end(void)
{
    atomic_signal_fence(memory_order_seq_cst);
    lfp_inflight_change_by(-1u);
}

#ifdef LFP_TEST_HOOKS
/* Test builds only: called inside each such span, where a signal handler
 * could run. */
void (*_Atomic lfp_test_inflight_hook)(void);
#endif

void lfp_inflight_begin(struct lfp_pool *pool, struct lfp_inflight *r, enum lfp_flight kind)
{
    r->pool = pool;
    r->counted = true;
    r->trimming = kind == LFP_FLIGHT_TRIM;
    r->weight = kind == LFP_FLIGHT_MOVE ? LFP_INBOUND_MOVE : 1;
    lfp_inflight_change_begin();
    r->next = lfp_inflight_list;
    lfp_inflight_list = r;
    LFP_TEST_HOOK(lfp_test_inflight_hook);
    /* Relaxed: the caller's claim (carved, total) or a trim's emptying of
     * the stacks, RMWs with release that follow, publish it. */
    atomic_fetch_add_explicit(&pool->inbound, r->weight, memory_order_relaxed);
    lfp_inflight_change_end();
}

void lfp_inflight_landed(struct lfp_inflight *r)
{
    lfp_inflight_change_begin();
    r->counted = false;
    LFP_TEST_HOOK(lfp_test_inflight_hook);
    /* Release: a waiter whose acquire load reads this (or a later RMW)
     * sees the blocks pushed before it. */
    atomic_fetch_add_explicit(&r->pool->inbound, LFP_INBOUND_LANDED - r->weight,
                              memory_order_release);
    lfp_inflight_change_end();
}

void lfp_inflight_end(struct lfp_inflight *r)
{
    if (r->counted)
        lfp_inflight_landed(r);
    lfp_inflight_list = r->next;
}

void lfp_inflight_cancel(struct lfp_inflight *r)
{
    /* Nothing was pushed, but a failed growth gave back its claim on the
     * pool's total first: release, so that a waiter whose acquire load sees
     * the count fall, and which looks again, sees that room too. */
    lfp_inflight_change_begin();
    r->counted = false;
    LFP_TEST_HOOK(lfp_test_inflight_hook);
    atomic_fetch_sub_explicit(&r->pool->inbound, r->weight, memory_order_release);
    lfp_inflight_change_end();
    lfp_inflight_list = r->next;
}

bool lfp_inflight_may_wait(const struct lfp_pool *pool)
{
    if (atomic_load_explicit(&lfp_inflight_changing, memory_order_relaxed) != 0)
        return false;
    for (const struct lfp_inflight *r = lfp_inflight_list; r != NULL; r = r->next)
        if (r->pool == pool && r->counted)
            return false;
    return true;
}

bool lfp_inflight_any(void)
{
    return lfp_inflight_list != NULL;
}

/* ---- pool ids, and fork ---- */

/* In a child process only the forking thread runs: the carves, growths and
 * trims other threads had in flight stopped with them (their blocks are
 * lost to the child), so a thread that finds a pool at its bound must wait
 * only for the forking thread's own (when fork was called from init, fini
 * or a signal handler in the middle of one); nor is a pool being trimmed
 * unless that thread is trimming it. */
static void lfp_pools_after_fork(void)
{
    for (uint32_t i = 0; i < LFP_MAX_POOLS; i++) {
        struct lfp_pool *pool = atomic_load_explicit(&lfp_pool_table[i], memory_order_relaxed);
        if (pool == NULL)
            continue;
        uint64_t mine = 0;
        bool trimming = false;
        for (struct lfp_inflight *r = lfp_inflight_list; r != NULL; r = r->next)
            if (r->pool == pool) {
                mine += r->counted ? r->weight : 0;
                trimming = trimming || r->trimming;
            }
        uint64_t v = atomic_load_explicit(&pool->inbound, memory_order_relaxed);
        atomic_store_explicit(&pool->inbound, (v & ~(uint64_t)UINT32_MAX) | mine,
                              memory_order_relaxed);
        if (!trimming)
            atomic_flag_clear_explicit(&pool->trimming, memory_order_relaxed);
        /* A slot another thread was flushing stays claimed (LFP_SLOT_BUSY)
         * now that the thread is gone, and lfp_pool_destroy would wait for
         * it for ever: it goes back to its pool (the claim kept the pool
         * alive), counted as it stands, with cap 0 (never used again). */
        LFP_FOR_EACH_TCACHE(tc) {
            struct lfp_slot *s = tc != lfp_tc ? lfp_slot_at(tc, i, false) : NULL;
            if (s != NULL &&
                atomic_load_explicit(&s->pool, memory_order_relaxed) == LFP_SLOT_BUSY) {
                lfp_set32(&s->cap, 0);
                atomic_store_explicit(&s->pool, pool, memory_order_relaxed);
            }
        }
    }
}

/* Registered at the first pool's creation; tried again at the next one
 * if pthread_atfork failed (out of memory). No lock: a fork while one was
 * held would leave it held in the child. Threads creating the first pools
 * at once may each register the handler, which only costs it running
 * again: its result is the same. */
static _Atomic bool lfp_atfork_done;

static int lfp_atfork_register(void)
{
    if (atomic_load_explicit(&lfp_atfork_done, memory_order_acquire))
        return LFP_OK;
    if (pthread_atfork(NULL, NULL, lfp_pools_after_fork) != 0)
        return LFP_ENOMEM;
    atomic_store_explicit(&lfp_atfork_done, true, memory_order_release);
    return LFP_OK;
}

int lfp_pool_id_acquire(struct lfp_pool *pool)
{
    if (lfp_atfork_register() != LFP_OK)
        return LFP_ENOMEM;
    /* Lowest free id first, so the common few pools get fast-path entries. */
    for (uint32_t i = 0; i < LFP_MAX_POOLS; i++) {
        struct lfp_pool *expect = NULL;
        if (atomic_load_explicit(&lfp_pool_table[i], memory_order_relaxed) == NULL &&
            atomic_compare_exchange_strong(&lfp_pool_table[i], &expect, pool)) {
            pool->id = i;
            /* LFP_ZERO and LFP_CHECKED pools keep their alloc and free off
             * the fast path, which then needs no flag test: they pay a
             * memset or a check per call anyway. */
            pool->tls_idx = i < LFP_SLOTS_INLINE && !(pool->flags & (LFP_ZERO | LFP_CHECKED))
                                ? i : LFP_SLOTS_INLINE;
            return LFP_OK;
        }
    }
    return LFP_ENOMEM;
}

void lfp_pool_id_release(struct lfp_pool *pool)
{
    atomic_store_explicit(&lfp_pool_table[pool->id], NULL, memory_order_release);
}

/* ---- thread caches ---- */

static void lfp_flush_slot(struct lfp_slot *s, bool unbind);

static void lfp_tcache_exit(void *arg)
{
    struct lfp_tcache *tc = arg;
    /* The cache goes to the next thread; this one must not reach it again,
     * from here on: a flush may run a trim whose fini calls into another
     * pool, and a slot bound again now would strand that call's block in
     * a cache no thread owns. Such calls go to the depot directly. */
    for (uint32_t i = 0; i < LFP_SLOTS_INLINE; i++)
        lfp_tls_slots[i] = &lfp_slot_none;
    lfp_tc = NULL;
    lfp_tc_gone = true;
    LFP_FOR_EACH_SLOT(tc, s, id)
        lfp_flush_slot(s, true);
    atomic_store_explicit(&tc->live, 0, memory_order_release);
}

static void lfp_tc_key_init(void)
{
    lfp_tc_key_ok = pthread_key_create(&lfp_tc_key, lfp_tcache_exit) == 0;
}

/* This thread's cache, made (or recycled) on first use; NULL when none can
 * be had: the thread then works directly on the depot. */
static struct lfp_tcache *lfp_tcache_get(void)
{
    if (lfp_tc != NULL)
        return lfp_tc;
    if (lfp_tc_gone)
        return NULL;
    pthread_once(&lfp_tc_once, lfp_tc_key_init);
    if (!lfp_tc_key_ok)
        return NULL;

    struct lfp_tcache *tc = NULL;
    LFP_FOR_EACH_TCACHE(t) {
        int idle = 0;
        if (atomic_load_explicit(&t->live, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_strong(&t->live, &idle, 1)) {
            tc = t;
            break;
        }
    }
    if (tc == NULL) {
        tc = lfp_sys_zalloc(sizeof(*tc), LFP_SHARING_SPAN);
        if (tc == NULL)
            return NULL;
        atomic_init(&tc->live, 1);
        struct lfp_tcache *head = atomic_load_explicit(&lfp_registry, memory_order_relaxed);
        do {
            tc->next_all = head;
        } while (!atomic_compare_exchange_weak_explicit(&lfp_registry, &head, tc,
                                                        memory_order_release,
                                                        memory_order_relaxed));
    }
    if (pthread_setspecific(lfp_tc_key, tc) != 0) {
        atomic_store_explicit(&tc->live, 0, memory_order_release);
        return NULL;
    }
    lfp_tc = tc;
    return tc;
}

/* The calling thread's slot for pool, bound on first use; NULL when the
 * thread has no cache (or no memory for its magazines). */
static LFP_NOINLINE struct lfp_slot *lfp_slot_bind(struct lfp_pool *pool)
{
    struct lfp_tcache *tc = lfp_tcache_get();
    if (tc == NULL)
        return NULL;
    struct lfp_slot *s = lfp_slot_at(tc, pool->id, true);
    if (s == NULL)
        return NULL;
    if (atomic_load_explicit(&s->pool, memory_order_relaxed) == pool)
        return s;

    /* Unbound, or revoked by the destroy of an earlier pool with this id:
     * whatever the rounds held died with that pool. */
    uint32_t m = pool->mag_size;
    if (s->buf_rounds < m) {
        /* Whole spans of LFP_SHARING_SPAN: no other thread's data moves
         * with the rounds this thread writes on every call. */
        void **buf = lfp_sys_alloc(2 * (size_t)m * sizeof(void *), LFP_SHARING_SPAN);
        if (buf == NULL)
            return NULL;
        lfp_sys_free(s->buf);
        s->buf = buf;
        s->buf_rounds = m;
    }
    s->loaded = s->buf;
    /* A pool without a cache has no rounds (and maybe no buffer at all). */
    s->prev = s->buf != NULL ? s->buf + s->buf_rounds : NULL;
    lfp_set32(&s->nloaded, 0);
    lfp_set32(&s->nprev, 0);
    lfp_set32(&s->cap, m);
    atomic_store_explicit(&s->taken, 0, memory_order_relaxed);
    atomic_store_explicit(&s->pool, pool, memory_order_release);
    if (pool->tls_idx < LFP_SLOTS_INLINE)
        lfp_tls_slots[pool->tls_idx] = s;
    return s;
}

/* lfp_slot_bind's answer, found through the fast path's table when the
 * slot is bound already: the slow paths of every pool with a fast-path
 * entry, and every call on a pool without a cache, need nothing more. */
static inline struct lfp_slot *lfp_slot_get(struct lfp_pool *pool)
{
    struct lfp_slot *s = lfp_tls_slots[pool->tls_idx];
    if (LFP_LIKELY(atomic_load_explicit(&s->pool, memory_order_relaxed) == pool))
        return s;
    return lfp_slot_bind(pool);
}

/* ---- magazines ---- */

/* Take the round at the top of a magazine of n. */
static inline void *lfp_round_take(void **rounds, uint32_t n)
{
    void *block = rounds[n - 1];
    lfp_round_forget(&rounds[n - 1]);
    return block;
}

/* Link rounds from .. to - 1 of a magazine onto head, each on top, and
 * return the new head: with lane, round i's lane link to round i - L; with
 * ahead, asking for round i + L's line first. The rounds' lines are often
 * elsewhere: in another core's cache (a block freed on another thread than
 * the one that wrote it) or out of the cache (a large pool emptied); asked
 * for L rounds ahead, the stores do not wait for them in turn. Inlined with
 * constant lane and ahead, so that each run's loop tests neither. */
static LFP_ALWAYS_INLINE struct lfp_free *lfp_rounds_link(const struct lfp_pool *pool,
                                                          void **rounds, uint32_t from,
                                                          uint32_t to, struct lfp_free *head,
                                                          bool lane, bool ahead)
{
    for (uint32_t i = from; i < to; i++) {
        if (ahead)
            __builtin_prefetch((char *)rounds[i + LFP_BATCH_LANES] + pool->link_off, 1);
        struct lfp_free *l = lfp_link_open(pool, rounds[i]);
        l->chain = head;
        if (lane)
            l->next = lfp_link_of(rounds[i - LFP_BATCH_LANES], pool->link_off);
        head = l;
    }
    return head;
}

/* Link n rounds into a laned batch for the depot; returns its first
 * block's links. The chain runs from the last round to the first, so round
 * i is block n - 1 - i of the batch, and its lane link names round i - L:
 * rounds L to n - 3 have one (blocks 0 and 1 keep next for the stack's link
 * and the length), and rounds below n - L ask for the line L ahead. Five
 * runs, each with its loop's tests fixed: 12 to 13 instructions a round
 * where one loop testing both took 22 (callgrind). */
static struct lfp_free *lfp_rounds_chain(const struct lfp_pool *pool, void **rounds, uint32_t n)
{
    const uint32_t L = LFP_BATCH_LANES;
    uint32_t bare = n < L ? n : L;              /* rounds before the first lane link */
    uint32_t ahead = n > L ? n - L : 0;         /* rounds that ask ahead */
    uint32_t laned = n > 2 ? n - 2 : 0;         /* end of the lane links */
    uint32_t bare_ahead = bare < ahead ? bare : ahead;
    uint32_t lane_ahead = ahead > L ? ahead : L, lane_end = laned > L ? laned : L;
    struct lfp_free *head = NULL;
    head = lfp_rounds_link(pool, rounds, 0, bare_ahead, head, false, true);
    head = lfp_rounds_link(pool, rounds, bare_ahead, bare, head, false, false);
    head = lfp_rounds_link(pool, rounds, L, lane_ahead, head, true, true);
    head = lfp_rounds_link(pool, rounds, lane_ahead, lane_end, head, true, false);
    head = lfp_rounds_link(pool, rounds, lane_end, n, head, false, false);
    for (uint32_t i = 0; i < n; i++)
        lfp_round_forget(&rounds[i]); /* nothing outside Valgrind builds */
    lfp_batch_seal(head, n, true);
    return head;
}

struct lfp_unchain {
    const struct lfp_pool *pool;
    void **rounds;
};

static LFP_ALWAYS_INLINE void lfp_unchain_one(void *ctx, struct lfp_free *l, uint32_t k)
{
    struct lfp_unchain *u = ctx;
    u->rounds[k] = lfp_block_of(l, u->pool->link_off);
    lfp_link_close(u->pool, l);
}

/* The n blocks of batch b, in chain order, into rounds. */
static void lfp_batch_unchain(const struct lfp_pool *pool, struct lfp_free *b, uint32_t n,
                              void **rounds)
{
    struct lfp_unchain u = { pool, rounds };
    lfp_batch_walk(b, n, lfp_unchain_one, &u);
}

/* loaded is empty: fill it from previous, the depot, or fresh blocks.
 * Returns false when the pool has no free block to give this thread. */
static bool lfp_mag_refill(struct lfp_pool *pool, struct lfp_slot *s)
{
    uint32_t n = lfp_get32(&s->nprev);
    if (n != 0) {
        void **t = s->loaded;
        s->loaded = s->prev;
        s->prev = t;
        lfp_set32(&s->nloaded, n);
        lfp_set32(&s->nprev, 0);
        return true;
    }
    struct lfp_free *b = lfp_depot_take(pool, lfp_get32(&s->cap), &n, NULL);
    if (b == NULL)
        return false;
    /* Batches of a cached pool hold at most its magazine size. The walk is
     * the one pointer chase of the design: one load per block, once per
     * magazine, L at a time in a laned batch. */
    lfp_batch_unchain(pool, b, n, s->loaded);
    lfp_set32(&s->nloaded, n);
    lfp_take(pool, s, n);
    return true;
}

/* loaded is full: it becomes previous; a full previous goes to the depot. */
static void lfp_mag_spill(struct lfp_pool *pool, struct lfp_slot *s)
{
    uint32_t np = lfp_get32(&s->nprev);
    struct lfp_free *b = np != 0 ? lfp_rounds_chain(pool, s->prev, np) : NULL;
    /* The slot is settled before the push, which may run a trim, whose fini
     * may flush this thread's caches (lfp_thread_flush). */
    lfp_take(pool, s, -(intptr_t)np);
    void **t = s->prev;
    s->prev = s->loaded;
    s->loaded = t;
    lfp_set32(&s->nprev, lfp_get32(&s->nloaded));
    lfp_set32(&s->nloaded, 0);
    if (b != NULL)
        lfp_depot_push(pool, b, b, np);
}

/* Hand a slot's magazines to the depot (one CAS for both). With unbind the
 * slot also gives up its binding and its balance (thread exit). The slot is
 * claimed first, so a concurrent lfp_pool_destroy either revoked it before
 * (nothing to do) or waits until this is done. */
static void lfp_flush_slot(struct lfp_slot *s, bool unbind)
{
    /* A slot without magazines (a pool without a cache) holds no block: left
     * alone, so that a signal handler's call on its pool, which may land
     * here, finds it bound (claimed, it would bind it afresh and zero the
     * thread's balance). */
    if (!unbind && lfp_get32(&s->cap) == 0)
        return;
    struct lfp_pool *pool = atomic_load_explicit(&s->pool, memory_order_acquire);
    if (pool == NULL || pool == LFP_SLOT_BUSY ||
        !atomic_compare_exchange_strong(&s->pool, &pool, LFP_SLOT_BUSY))
        return;

    uint32_t nl = lfp_get32(&s->nloaded), np = lfp_get32(&s->nprev);
    struct lfp_free *first = NULL, *last = NULL;
    if (nl != 0)
        first = last = lfp_rounds_chain(pool, s->loaded, nl);
    if (np != 0) {
        struct lfp_free *b = lfp_rounds_chain(pool, s->prev, np);
        if (first != NULL)
            first->next = b;
        else
            first = b;
        last = b;
    }
    if (first != NULL)
        lfp_depot_push(pool, first, last, (size_t)nl + np);
    lfp_set32(&s->nloaded, 0);
    lfp_set32(&s->nprev, 0);
    intptr_t taken = atomic_load_explicit(&s->taken, memory_order_relaxed) - nl - np;
    if (unbind) {
        atomic_fetch_add_explicit(&pool->retired, taken, memory_order_relaxed);
        atomic_store_explicit(&s->taken, 0, memory_order_relaxed);
        lfp_set32(&s->cap, 0);
        atomic_store_explicit(&s->pool, NULL, memory_order_release);
    } else {
        atomic_store_explicit(&s->taken, taken, memory_order_relaxed);
        atomic_store_explicit(&s->pool, pool, memory_order_release);
    }
}

/* ---- the path without a magazine (LFP_NO_CACHE, or no thread cache) ---- */

/* Push a chain of blocks (linked through chain) as batches of one: each
 * block stands alone in the depot, for pools whose threads take one at a
 * time. One CAS for the whole chain. */
static void lfp_depot_push_singles(struct lfp_pool *pool, struct lfp_free *first)
{
    struct lfp_free *l = first;
    size_t n = 1;
    for (; l->chain != NULL; n++) {
        l->next = l->chain;
        l->chain = NULL;
        l = l->next;
    }
    lfp_depot_push(pool, first, l, n);
}

#ifdef LFP_TEST_HOOKS
/* Test builds only: called by a thread without a slot between taking a
 * batch from the depot and putting back all but one of its blocks. */
void (*_Atomic lfp_test_split_hook)(void);
#endif

static struct lfp_free *lfp_take_one(struct lfp_pool *pool, struct lfp_slot *s)
{
    uint32_t n;
    /* One block at a time: for a pool without a cache, carving one block
     * when the depot is empty keeps the carved count at the peak of blocks
     * in use (or the depot's stack count: lfp_depot_seeding). */
    struct lfp_free *b;
    if (pool->mag_size == 0) {
        b = lfp_depot_take(pool, 1, &n, NULL);
    } else {
        /* A cached pool and a thread without its slot: a batch comes, and
         * the rest goes back, out of sight until then. Counted in flight
         * from before the pop (whose CAS releases the count) for threads
         * that find the depot empty meanwhile; a carve gives one block. */
        struct lfp_inflight r = { .counted = false };
        b = lfp_depot_take(pool, 1, &n, &r);
        if (r.counted && n > 1) {
            LFP_TEST_HOOK(lfp_test_split_hook);
            lfp_depot_push_singles(pool, b->chain);
            b->chain = NULL;
            lfp_inflight_end(&r);
        } else if (r.counted) {
            lfp_inflight_cancel(&r);
        }
    }
    if (b != NULL)
        lfp_take(pool, s, 1);
    return b;
}

static LFP_ALWAYS_INLINE void lfp_give_one(struct lfp_pool *pool, struct lfp_slot *s,
                                          void *block)
{
    struct lfp_free *l = lfp_link_open(pool, block);
    l->chain = NULL;
    lfp_take(pool, s, -1);
    lfp_depot_push(pool, l, l, 1);
}

/* ---- the API ---- */

/* A block leaves the pool by a path other than the fast one. */
static inline void *lfp_alloc_done(struct lfp_pool *pool, void *block)
{
    if (LFP_UNLIKELY(lfp_checked(pool)))
        lfp_checked_alloc(pool, block);
    lfp_mem_handout(pool, block);
    if (LFP_UNLIKELY(pool->flags & LFP_ZERO))
        memset(block, 0, pool->block_size);
    return block;
}

/* One block off the fast path: from the thread's magazine (refilled when
 * empty), or from the depot for a thread or pool without one; NULL with
 * errno set by the carve. The slot is settled before lfp_alloc_done, whose
 * error handler may flush this thread's caches. */
static void *lfp_alloc_one(struct lfp_pool *pool, struct lfp_slot *s)
{
    void *block;
    if (s != NULL && lfp_get32(&s->cap) != 0) {
        /* Pools off the fast path (LFP_ZERO, high ids) come here with
         * rounds still loaded. */
        if (lfp_get32(&s->nloaded) == 0 && !lfp_mag_refill(pool, s))
            return NULL;
        uint32_t n = lfp_get32(&s->nloaded);
        block = lfp_round_take(s->loaded, n);
        lfp_set32(&s->nloaded, n - 1);
    } else {
        struct lfp_free *l = lfp_take_one(pool, s);
        if (l == NULL)
            return NULL;
        block = lfp_block_of(l, pool->link_off);
    }
    return lfp_alloc_done(pool, block);
}

/* A fixed pool without a cache, neither checked nor zeroing: every call
 * comes off the fast path, and most need no more than one block to or
 * from the calling CPU's depot stack. When the calling thread's slot is
 * bound to such a pool and the CPU is known without a call (rseq), that
 * CPU, and the slot in *slot; else -1, and the call goes on to
 * lfp_alloc_settle or lfp_free_settle, which handle every pool. So
 * lfp_alloc_slow and lfp_free_slow are leaves: with nothing to keep
 * across a call, they save nothing on the stack, a store that the CAS's
 * lock would wait for. lfp-bench pair without a cache, 1 thread, on the
 * README's 2-core VM: 16.5 to 16.7 ns with the calls of lfp_cpu_hint and
 * of the growable pool's count inside them, 16.0 to 16.5 as leaves (four
 * rounds each, taking turns; README, "Without a cache, in leaves"). The
 * pool's kind is asked first, then the CPU, so that the pools that always
 * come off the fast path (zeroing, checked, ids past the fast-path
 * entries) and calls without rseq (valgrind) pay a few instructions for
 * the detour: under callgrind a pair without a cache costs 236 instead of
 * 212 without it. */
static inline int lfp_plain_cpu(struct lfp_pool *pool, struct lfp_slot **slot)
{
    /* lfp_carves_at_peak and neither checked nor zeroing, spelled out:
     * GCC then tests mag_size and the flags, adjacent, with one and. */
    if (LFP_UNLIKELY(pool->mag_size != 0 ||
                     (pool->flags & (LFP_GROWABLE | LFP_ZERO | LFP_CHECKED)) != 0))
        return -1;
    int cpu = lfp_cpu_cheap();
    *slot = lfp_tls_slots[pool->tls_idx];
    if (LFP_LIKELY(cpu >= 0) &&
        LFP_LIKELY(atomic_load_explicit(&(*slot)->pool, memory_order_relaxed) == pool))
        return cpu;
    return -1;
}

/* Every alloc off the fast path that lfp_alloc_slow did not serve; tried:
 * it found the calling CPU's stack empty. */
static LFP_NOINLINE void *lfp_alloc_settle(struct lfp_pool *pool, bool tried)
{
    struct lfp_slot *s = lfp_slot_get(pool);
    /* A fixed pool without a cache that lfp_plain_cpu turned away (checked
     * or zeroing, a slot not yet bound, no rseq): a block on the calling
     * CPU's stack is taken without the layers that handle an empty stack
     * (lfp_depot_take's waits, the seeding carve, the scan of other
     * stacks). */
    if (!tried && lfp_carves_at_peak(pool)) {
        struct lfp_free *l = lfp_depot_pop_own(pool);
        if (l != NULL) {
            lfp_take(pool, s, 1);
            return lfp_alloc_done(pool, lfp_block_of(l, pool->link_off));
        }
    }
    return lfp_alloc_one(pool, s);
}

static LFP_NOINLINE LFP_FAST_ENTRY void *lfp_alloc_slow(struct lfp_pool *pool)
{
    struct lfp_slot *s;
    int cpu = lfp_plain_cpu(pool, &s);
    if (LFP_LIKELY(cpu >= 0)) {
        struct lfp_free *l = lfp_depot_pop_at(pool, (uint32_t)cpu);
        if (LFP_LIKELY(l != NULL)) {
            lfp_add_own(&s->taken, 1);
            void *block = lfp_block_of(l, pool->link_off);
            lfp_mem_handout(pool, block);
            return block;
        }
    }
    return lfp_alloc_settle(pool, cpu >= 0);
}

/* Fast path: 14 instructions on x86-64, no atomic read-modify-write, no
 * store outside the calling thread's slot, no access to the block itself. */
LFP_FAST_ENTRY LFP_API void *lfp_alloc(lfp_pool *pool)
{
    if (LFP_UNLIKELY(pool == NULL)) {
        errno = EINVAL;
        return NULL;
    }
    struct lfp_slot *s = lfp_tls_slots[pool->tls_idx];
    uint32_t n = lfp_get32(&s->nloaded);
    if (LFP_LIKELY(n != 0)) {
        void *block = lfp_round_take(s->loaded, n);
        lfp_set32(&s->nloaded, n - 1);
        lfp_mem_handout(pool, block); /* nothing outside sanitizer builds */
        return block;
    }
    return lfp_alloc_slow(pool);
}

static void lfp_free_one(struct lfp_pool *pool, struct lfp_slot *s, void *block)
{
    if (s != NULL && lfp_get32(&s->cap) != 0) {
        if (lfp_get32(&s->nloaded) >= lfp_get32(&s->cap))
            lfp_mag_spill(pool, s);
        uint32_t n = lfp_get32(&s->nloaded);
        s->loaded[n] = block;
        lfp_set32(&s->nloaded, n + 1);
    } else {
        lfp_give_one(pool, s, block);
    }
}

static LFP_NOINLINE int lfp_free_settle(struct lfp_pool *pool, void *block)
{
    if (lfp_checked(pool)) {
        int err = lfp_checked_free(pool, &block, 1);
        if (err != LFP_OK)
            return err;
    }
    lfp_mem_takeback(pool, block);
    struct lfp_slot *s = lfp_slot_get(pool);
    /* A pool without a cache that lfp_plain_cpu turned away: straight
     * to the depot. */
    if (pool->mag_size == 0)
        lfp_give_one(pool, s, block);
    else
        lfp_free_one(pool, s, block);
    return LFP_OK;
}

static LFP_NOINLINE LFP_FAST_ENTRY int lfp_free_slow(struct lfp_pool *pool, void *block)
{
    struct lfp_slot *s;
    int cpu = lfp_plain_cpu(pool, &s);
    if (LFP_LIKELY(cpu >= 0)) {
        lfp_mem_takeback(pool, block);
        struct lfp_free *l = lfp_link_open(pool, block);
        l->chain = NULL;
        /* lfp_depot_push_to's count is a growable pool's: not here. */
        lfp_stack_push(lfp_depot_at(pool, (uint32_t)cpu), (struct lfp_node *)l,
                       (struct lfp_node *)l);
        lfp_add_own(&s->taken, -1);
        return LFP_OK;
    }
    return lfp_free_settle(pool, block);
}

/* Not one of the pool's blocks: the pool stays as it was; checked pools
 * report it. */
static LFP_NOINLINE int lfp_free_foreign(struct lfp_pool *pool, void *block)
{
    if (lfp_checked(pool))
        lfp_report(pool, block, LFP_EFOREIGN, "free of a foreign or interior pointer");
    return LFP_EFOREIGN;
}

/* Push onto this thread's loaded magazine, or take the slow path. */
static inline int lfp_free_push(struct lfp_pool *pool, void *block)
{
    struct lfp_slot *s = lfp_tls_slots[pool->tls_idx];
    uint32_t n = lfp_get32(&s->nloaded);
    if (LFP_LIKELY(n < lfp_get32(&s->cap))) {
        lfp_mem_takeback(pool, block); /* nothing outside sanitizer builds */
        s->loaded[n] = block;
        lfp_set32(&s->nloaded, n + 1);
        return LFP_OK;
    }
    return lfp_free_slow(pool, block);
}

/* Pointers outside a fixed pool's carved blocks: NULL, blocks of a growable
 * pool outside its range (in slabs of their own), or foreign ones. Out of line, so
 * that the fixed pool's fast path needs no stack frame. */
static LFP_NOINLINE int lfp_free_unlisted(struct lfp_pool *pool, void *block)
{
    if (block == NULL)
        return LFP_OK;
    if (lfp_growable(pool) && lfp_slab_owns(pool, block))
        return lfp_free_push(pool, block);
    return lfp_free_foreign(pool, block);
}

/* Fast path: the ownership check (a multiply and a compare, no division)
 * and a store into this thread's magazine; 27 instructions on x86-64, with
 * no taken jump before the return for a fixed pool; no atomic
 * read-modify-write, no access to the block itself. */
LFP_FAST_ENTRY LFP_API int lfp_free(lfp_pool *pool, void *block)
{
    if (LFP_UNLIKELY(pool == NULL))
        return LFP_EINVAL;
    /* NULL fails the ownership check too (it lies below any pool), so it is
     * told apart only on that rare path. */
    size_t q = lfp_block_index(pool, block);
    if (LFP_UNLIKELY(q == SIZE_MAX || !lfp_range_live(pool, q)))
        return lfp_free_unlisted(pool, block);
    return lfp_free_push(pool, block);
}

LFP_API size_t lfp_alloc_bulk(lfp_pool *pool, void **blocks, size_t n)
{
    if (pool == NULL || (blocks == NULL && n != 0)) {
        errno = EINVAL;
        return 0;
    }
    struct lfp_slot *s = lfp_slot_get(pool);
    size_t i = 0;
    for (void *block; i < n && (block = lfp_alloc_one(pool, s)) != NULL; i++)
        blocks[i] = block;
    return i; /* when short, errno was set by the carve */
}

LFP_API int lfp_free_bulk(lfp_pool *pool, void *const *blocks, size_t n)
{
    if (pool == NULL || (blocks == NULL && n != 0))
        return LFP_EINVAL;
    /* All or none: check every pointer before the first is freed. */
    for (size_t i = 0; i < n; i++)
        if (blocks[i] != NULL && !lfp_pool_owns(pool, blocks[i]))
            return lfp_free_foreign(pool, blocks[i]);
    if (lfp_checked(pool)) {
        int err = lfp_checked_free(pool, blocks, n);
        if (err != LFP_OK)
            return err;
    }
    for (size_t i = 0; i < n; i++)
        if (blocks[i] != NULL)
            lfp_mem_takeback(pool, blocks[i]);

    struct lfp_slot *s = lfp_slot_get(pool);
    if (s != NULL && lfp_get32(&s->cap) != 0) {
        for (size_t i = 0; i < n; i++)
            if (blocks[i] != NULL)
                lfp_free_one(pool, s, blocks[i]);
        return LFP_OK;
    }
    /* No magazine: chain them and push the chain with one CAS. */
    struct lfp_free *first = NULL;
    intptr_t count = 0;
    for (size_t i = n; i-- > 0;) {
        if (blocks[i] == NULL)
            continue;
        struct lfp_free *l = lfp_link_open(pool, blocks[i]);
        l->chain = first;
        first = l;
        count++;
    }
    if (first != NULL) {
        lfp_take(pool, s, -count);
        lfp_depot_push_singles(pool, first);
    }
    return LFP_OK;
}

void lfp_flush_own(struct lfp_pool *pool)
{
    struct lfp_tcache *tc = lfp_tc;
    struct lfp_slot *s = tc ? lfp_slot_at(tc, pool->id, false) : NULL;
    if (s != NULL && atomic_load_explicit(&s->pool, memory_order_relaxed) == pool)
        lfp_flush_slot(s, false);
}

LFP_API void lfp_thread_flush(void)
{
    struct lfp_tcache *tc = lfp_tc;
    if (tc == NULL)
        return;
    LFP_FOR_EACH_SLOT(tc, s, id)
        lfp_flush_slot(s, false);
}

/* ---- views of every thread's slots, for the pool layer ---- */

intptr_t lfp_slots_revoke(struct lfp_pool *pool)
{
    intptr_t balance = 0;
    LFP_FOR_EACH_TCACHE(tc) {
        struct lfp_slot *s = lfp_slot_at(tc, pool->id, false);
        if (s == NULL)
            continue;
        for (;;) {
            struct lfp_pool *p = atomic_load_explicit(&s->pool, memory_order_acquire);
            if (p == LFP_SLOT_BUSY) {
                sched_yield(); /* a flush into this pool is finishing */
                continue;
            }
            if (p != pool)
                break;
            if (atomic_compare_exchange_strong(&s->pool, &p, NULL)) {
                balance += atomic_load_explicit(&s->taken, memory_order_relaxed) -
                           (intptr_t)lfp_get32(&s->nloaded) - (intptr_t)lfp_get32(&s->nprev);
                /* The owner's next call on this id then takes the slow path
                 * and binds the slot afresh. */
                lfp_set32(&s->cap, 0);
                lfp_set32(&s->nloaded, 0);
                lfp_set32(&s->nprev, 0);
                break;
            }
        }
    }
    return balance;
}

void lfp_slots_sum(const struct lfp_pool *pool, size_t *cached, intptr_t *balance)
{
    size_t c = 0;
    intptr_t b = 0;
    LFP_FOR_EACH_TCACHE(tc) {
        struct lfp_slot *s = lfp_slot_at(tc, pool->id, false);
        if (s == NULL || atomic_load_explicit(&s->pool, memory_order_acquire) != pool)
            continue;
        uint32_t n = lfp_get32(&s->nloaded) + lfp_get32(&s->nprev);
        c += n;
        b += atomic_load_explicit(&s->taken, memory_order_relaxed) - (intptr_t)n;
    }
    *cached = c;
    *balance = b;
}

int lfp_slots_walk(struct lfp_pool *pool, int (*fn)(void *ctx, void *block), void *ctx)
{
    LFP_FOR_EACH_TCACHE(tc) {
        struct lfp_slot *s = lfp_slot_at(tc, pool->id, false);
        if (s == NULL || atomic_load_explicit(&s->pool, memory_order_acquire) != pool)
            continue;
        uint32_t nl = lfp_get32(&s->nloaded), np = lfp_get32(&s->nprev);
        for (uint32_t i = 0; i < nl + np; i++) {
            int err = fn(ctx, i < nl ? s->loaded[i] : s->prev[i - nl]);
            if (err != LFP_OK)
                return err;
        }
    }
    return LFP_OK;
}
