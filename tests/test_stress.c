/* SPDX-License-Identifier: MIT */
/*
 * Multithreaded stress with owner stamps.
 *
 * T threads share one pool and do a random mix of allocs, frees, bulk calls
 * and cache flushes, and pass blocks to each other through a shared
 * exchange (an array of atomic slots: a thread swaps a block of its own into
 * a random slot and takes over whatever was there), so that many frees
 * happen on a thread other than the one that allocated the block.
 *
 * Two independent witnesses catch a block handed to two owners at once:
 *   - a side table with one atomic owner word per block: a thread claims a
 *     block it got from lfp_alloc with an exchange that must find it FREE,
 *     and sets it back to FREE before lfp_free;
 *   - the block's bytes: while held, every word carries the holder's id and
 *     a sequence number, checked before the block leaves its holder.
 *
 * At the end every block is accounted for: nothing in use, nothing cached,
 * the pool verifies, the main thread can take every block once more, and
 * destroy reports 0. The run repeats without the per-thread cache.
 *
 * Knobs: LFP_STRESS_THREADS (4), LFP_STRESS_OPS per thread (200000),
 * LFP_STRESS_SCALE (1.0) multiplies the op count.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lfpool.h>

#include "check.h"

enum {
    CAPACITY = 4096,
    BLOCK = 64,
    WORDS = BLOCK / 8,
    MAX_HELD = 256,
    /* Blocks parked in the exchange: at most a quarter of the pool, so the
     * threads never starve each other for good. */
    EXCHANGE = CAPACITY / 4,
    ROUND = 2000,
    FREE_OWNER = -1,
    /* Owner word of a block parked in the exchange by thread t. */
    PARKED_BASE = -2,
};

static int parked_by(int t)
{
    return PARKED_BASE - t;
}

struct counters {
    long ops, allocs, frees, cross_frees, parked, taken, bulk_allocs, bulk_frees, flushes,
        exhausted;
    long bad_claim, bad_owner, bad_stamp, bad_rc, bad_errno, bad_range;
};

struct shared {
    lfp_pool *pool;
    uintptr_t base;
    size_t stride;
    _Atomic int *owner; /* per block: FREE_OWNER, a thread id, or parked_by(t) */
    _Atomic(void *) *exchange;
    int nthreads;
    long ops_per_thread;
    pthread_barrier_t start;
    /* The threads meet after every ROUND ops each: on a busy machine that
     * may run them one after another, this still makes each round's parked
     * blocks change threads in the next. */
    pthread_barrier_t round;
};

struct held {
    void *p;
    uint64_t seq;
    int from_other; /* came from another thread through the exchange */
};

struct worker {
    struct shared *sh;
    int id;
    uint64_t rng;
    uint64_t seq;
    struct held held[MAX_HELD];
    size_t nheld;
    struct counters c;
};

static size_t block_index(const struct shared *sh, const void *p, struct counters *c)
{
    uintptr_t off = (uintptr_t)p - sh->base;
    if ((uintptr_t)p < sh->base || off % sh->stride || off / sh->stride >= CAPACITY) {
        c->bad_range++;
        return SIZE_MAX;
    }
    return off / sh->stride;
}

/* ---- content stamps: (holder, seq) in every word of the block ---- */

#define SEQ_MASK ((1ull << 40) - 1)

static uint64_t stamp_word(int holder, uint64_t seq, int i)
{
    return (((uint64_t)(uint32_t)holder << 40) | (seq & SEQ_MASK)) ^
           ((uint64_t)(i + 1) * 0x9E3779B97F4A7C15ull);
}

static void stamp(void *p, int holder, uint64_t seq)
{
    uint64_t *w = p;
    for (int i = 0; i < WORDS; i++)
        w[i] = stamp_word(holder, seq, i);
}

static int stamp_ok(const void *p, int holder, uint64_t seq)
{
    const uint64_t *w = p;
    for (int i = 0; i < WORDS; i++)
        if (w[i] != stamp_word(holder, seq, i))
            return 0;
    return 1;
}

/* For a block parked by `holder`, whose seq the taker does not know: read
 * it from the first word; every word must agree. */
static int parked_stamp_ok(const void *p, int holder)
{
    uint64_t seq = (*(const uint64_t *)p ^ stamp_word(holder, 0, 0)) & SEQ_MASK;
    return stamp_ok(p, holder, seq);
}

/* ---- ownership ---- */

static int claim(struct worker *w, void *p)
{
    size_t i = block_index(w->sh, p, &w->c);
    if (i == SIZE_MAX)
        return 0;
    int prev = atomic_exchange(&w->sh->owner[i], w->id);
    if (prev != FREE_OWNER) {
        if (w->c.bad_claim++ < 5)
            fprintf(stderr, "thread %d got block %p still owned by %d\n", w->id, p, prev);
        return 0;
    }
    return 1;
}

/* Set the block's owner word from us to `to`. */
static void hand_over(struct worker *w, void *p, int to)
{
    size_t i = block_index(w->sh, p, &w->c);
    if (i == SIZE_MAX)
        return;
    int prev = atomic_exchange(&w->sh->owner[i], to);
    if (prev != w->id && w->c.bad_owner++ < 5)
        fprintf(stderr, "thread %d: block %p was owned by %d meanwhile\n", w->id, p, prev);
}

static void hold(struct worker *w, void *p, int from_other)
{
    uint64_t seq = ++w->seq;
    stamp(p, w->id, seq);
    w->held[w->nheld].p = p;
    w->held[w->nheld].seq = seq;
    w->held[w->nheld].from_other = from_other;
    w->nheld++;
}

/* Check the stamp and take held[k] out of the array. */
static struct held unhold(struct worker *w, size_t k)
{
    struct held h = w->held[k];
    w->held[k] = w->held[--w->nheld];
    if (!stamp_ok(h.p, w->id, h.seq) && w->c.bad_stamp++ < 5)
        fprintf(stderr, "thread %d: block %p was written by someone else while held\n",
                w->id, h.p);
    return h;
}

static void free_one(struct worker *w, size_t k)
{
    struct held h = unhold(w, k);
    hand_over(w, h.p, FREE_OWNER);
    if (lfp_free(w->sh->pool, h.p) != LFP_OK)
        w->c.bad_rc++;
    w->c.frees++;
    w->c.ops++;
    w->c.cross_frees += h.from_other;
}

/* A block that came out of the exchange: parked there by someone, now ours. */
static void adopt(struct worker *w, void *p)
{
    w->c.taken++;
    size_t i = block_index(w->sh, p, &w->c);
    if (i == SIZE_MAX)
        return;
    int prev = atomic_exchange(&w->sh->owner[i], w->id);
    int parker = PARKED_BASE - prev;
    if (prev > PARKED_BASE || parker >= w->sh->nthreads) {
        if (w->c.bad_owner++ < 5)
            fprintf(stderr, "thread %d took parked block %p owned by %d\n", w->id, p, prev);
        return;
    }
    if (!parked_stamp_ok(p, parker) && w->c.bad_stamp++ < 5)
        fprintf(stderr, "thread %d: parked block %p was written while parked\n", w->id, p);
    if (w->nheld == MAX_HELD)
        free_one(w, (size_t)(xorshift(&w->rng) % MAX_HELD));
    hold(w, p, parker != w->id);
}

/* ---- the operations ---- */

static void alloc_some(struct worker *w, size_t k)
{
    for (size_t i = 0; i < k && w->nheld < MAX_HELD; i++) {
        errno = 0;
        void *p = lfp_alloc(w->sh->pool);
        if (!p) {
            if (errno != ENOBUFS)
                w->c.bad_errno++;
            w->c.exhausted++;
            return;
        }
        w->c.allocs++;
        w->c.ops++;
        if (claim(w, p))
            hold(w, p, 0);
    }
}

static void free_some(struct worker *w)
{
    for (size_t k = w->nheld; k-- > 0;)
        if (xorshift(&w->rng) & 1)
            free_one(w, k);
}

static void alloc_bulk(struct worker *w, size_t k)
{
    void *v[32];
    if (k > MAX_HELD - w->nheld)
        k = MAX_HELD - w->nheld;
    if (k > 32)
        k = 32;
    errno = 0;
    size_t n = lfp_alloc_bulk(w->sh->pool, v, k);
    if (n < k) {
        if (errno != ENOBUFS)
            w->c.bad_errno++;
        w->c.exhausted++;
    }
    w->c.bulk_allocs++;
    for (size_t i = 0; i < n; i++) {
        w->c.allocs++;
        w->c.ops++;
        if (claim(w, v[i]))
            hold(w, v[i], 0);
    }
}

static void free_bulk(struct worker *w, size_t k)
{
    void *v[32];
    size_t n = 0;
    while (n < k && n < 32 && w->nheld > 0) {
        struct held h = unhold(w, (size_t)(xorshift(&w->rng) % w->nheld));
        hand_over(w, h.p, FREE_OWNER);
        w->c.cross_frees += h.from_other;
        v[n++] = h.p;
    }
    if (lfp_free_bulk(w->sh->pool, v, n) != LFP_OK)
        w->c.bad_rc++;
    w->c.bulk_frees++;
    w->c.frees += (long)n;
    w->c.ops += (long)n;
}

/* Each thread parks in its own region of the exchange and takes from the
 * others' regions, so a block taken over always changes threads. */
static size_t region_slot(struct worker *w, int t)
{
    size_t per = EXCHANGE / (size_t)w->sh->nthreads;
    return (size_t)t * per + (size_t)(xorshift(&w->rng) % per);
}

/* Park k held blocks in our region, adopting what each displaces. */
static void park_some(struct worker *w, size_t k)
{
    struct shared *sh = w->sh;
    for (size_t j = 0; j < k && w->nheld > 0; j++) {
        struct held h = unhold(w, (size_t)(xorshift(&w->rng) % w->nheld));
        stamp(h.p, w->id, ++w->seq);
        hand_over(w, h.p, parked_by(w->id));
        w->c.parked++;
        void *q = atomic_exchange(&sh->exchange[region_slot(w, w->id)], h.p);
        if (q)
            adopt(w, q);
    }
}

/* Take k blocks out of other threads' regions. */
static void take_some(struct worker *w, size_t k)
{
    int n = w->sh->nthreads;
    for (size_t j = 0; j < k; j++) {
        int t = w->id;
        if (n > 1) {
            t = (int)(xorshift(&w->rng) % (uint64_t)(n - 1));
            t += t >= w->id;
        }
        void *q = atomic_exchange(&w->sh->exchange[region_slot(w, t)], NULL);
        if (q)
            adopt(w, q);
    }
}


/* One random operation. */
static void step(struct worker *w)
{
    unsigned r = (unsigned)(xorshift(&w->rng) % 100);
    size_t k = 1 + (size_t)(xorshift(&w->rng) % 32);
    if (r < 28)
        alloc_some(w, k);
    else if (r < 42)
        free_some(w);
    else if (r < 62)
        park_some(w, k / 2 + 1);
    else if (r < 80)
        take_some(w, k);
    else if (r < 88)
        alloc_bulk(w, k);
    else if (r < 96)
        free_bulk(w, k);
    else if (r < 98) {
        lfp_thread_flush();
        w->c.flushes++;
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct shared *sh = w->sh;
    pthread_barrier_wait(&sh->start);
    for (long goal = ROUND; goal <= sh->ops_per_thread; goal += ROUND) {
        while (w->c.ops < goal)
            step(w);
        pthread_barrier_wait(&sh->round);
    }
    while (w->nheld > 0)
        free_one(w, w->nheld - 1);
    return NULL;
}

static void add_counters(struct counters *t, const struct counters *c)
{
    t->ops += c->ops;
    t->allocs += c->allocs;
    t->frees += c->frees;
    t->cross_frees += c->cross_frees;
    t->parked += c->parked;
    t->taken += c->taken;
    t->bulk_allocs += c->bulk_allocs;
    t->bulk_frees += c->bulk_frees;
    t->flushes += c->flushes;
    t->exhausted += c->exhausted;
    t->bad_claim += c->bad_claim;
    t->bad_owner += c->bad_owner;
    t->bad_stamp += c->bad_stamp;
    t->bad_rc += c->bad_rc;
    t->bad_errno += c->bad_errno;
    t->bad_range += c->bad_range;
}

static void stress(unsigned flags)
{
    int nthreads = (int)check_env("LFP_STRESS_THREADS", 4);
    long ops = scaled(check_env("LFP_STRESS_OPS", 200000), 1000);
    if (nthreads < 1)
        nthreads = 1;
    if (nthreads > EXCHANGE)
        nthreads = EXCHANGE;
    if (ops < ROUND)
        ops = ROUND;

    struct shared sh;
    memset(&sh, 0, sizeof sh);
    struct lfp_config cfg = {0};
    cfg.block_size = BLOCK;
    cfg.capacity = CAPACITY;
    cfg.flags = flags;
    cfg.name = "stress";
    REQUIRE(lfp_pool_create(&cfg, &sh.pool) == LFP_OK);
    struct lfp_stats st;
    REQUIRE(lfp_pool_stats(sh.pool, &st) == LFP_OK);
    sh.stride = st.stride;
    sh.nthreads = nthreads;
    sh.ops_per_thread = ops;

    /* Learn where the blocks are: take them all once. */
    void **all = malloc(CAPACITY * sizeof *all);
    REQUIRE(all != NULL);
    for (size_t i = 0; i < CAPACITY; i++) {
        all[i] = lfp_alloc(sh.pool);
        REQUIRE(all[i] != NULL);
    }
    qsort(all, CAPACITY, sizeof *all, cmp_addr);
    sh.base = (uintptr_t)all[0];
    CHECK_EQ((uintptr_t)all[CAPACITY - 1] - sh.base, (CAPACITY - 1) * sh.stride);
    free_all(sh.pool, all, CAPACITY);
    lfp_thread_flush();

    sh.owner = malloc(CAPACITY * sizeof *sh.owner);
    sh.exchange = malloc(EXCHANGE * sizeof *sh.exchange);
    struct worker *w = calloc((size_t)nthreads, sizeof *w);
    pthread_t *tid = calloc((size_t)nthreads, sizeof *tid);
    REQUIRE(sh.owner && sh.exchange && w && tid);
    for (size_t i = 0; i < CAPACITY; i++)
        atomic_init(&sh.owner[i], FREE_OWNER);
    for (size_t i = 0; i < EXCHANGE; i++)
        atomic_init(&sh.exchange[i], NULL);
    REQUIRE(pthread_barrier_init(&sh.start, NULL, (unsigned)nthreads) == 0);
    REQUIRE(pthread_barrier_init(&sh.round, NULL, (unsigned)nthreads) == 0);

    double t0 = now_s();
    for (int t = 0; t < nthreads; t++) {
        w[t].sh = &sh;
        w[t].id = t;
        w[t].rng = 0x9E3779B97F4A7C15ull * (uint64_t)(t + 1) + flags;
        REQUIRE(pthread_create(&tid[t], NULL, worker_main, &w[t]) == 0);
    }
    for (int t = 0; t < nthreads; t++)
        REQUIRE(pthread_join(tid[t], NULL) == 0);
    double elapsed = now_s() - t0;
    pthread_barrier_destroy(&sh.start);
    pthread_barrier_destroy(&sh.round);

    /* The main thread frees what is still parked: cross-thread frees too. */
    struct counters total;
    memset(&total, 0, sizeof total);
    long leftovers = 0, bad_leftovers = 0;
    for (size_t s = 0; s < EXCHANGE; s++) {
        void *p = atomic_exchange(&sh.exchange[s], NULL);
        if (!p)
            continue;
        leftovers++;
        size_t i = block_index(&sh, p, &total);
        if (i == SIZE_MAX)
            continue;
        int prev = atomic_exchange(&sh.owner[i], FREE_OWNER);
        int parker = PARKED_BASE - prev;
        if (prev > PARKED_BASE || parker >= nthreads)
            bad_leftovers++;
        else
            bad_leftovers += !parked_stamp_ok(p, parker);
        CHECK_EQ(lfp_free(sh.pool, p), LFP_OK);
    }
    CHECK_EQ(bad_leftovers, 0);

    for (int t = 0; t < nthreads; t++)
        add_counters(&total, &w[t].c);
    printf("  %s: %d threads, %ld ops in %.2f s: %ld allocs, %ld frees (%ld of them "
           "cross-thread), %ld parked, %ld taken over, %ld bulk allocs, %ld bulk frees, "
           "%ld flushes, %ld times exhausted, %ld freed by main at the end\n",
           mode_name(flags), nthreads, total.ops, elapsed,
           total.allocs, total.frees, total.cross_frees, total.parked, total.taken,
           total.bulk_allocs, total.bulk_frees, total.flushes, total.exhausted, leftovers);

    CHECK_EQ(total.bad_claim, 0); /* a block handed to two owners at once */
    CHECK_EQ(total.bad_owner, 0); /* a block whose owner word changed under us */
    CHECK_EQ(total.bad_stamp, 0); /* a held block written by someone else */
    CHECK_EQ(total.bad_rc, 0);    /* lfp_free / lfp_free_bulk refused a block */
    CHECK_EQ(total.bad_errno, 0); /* running out, with errno other than ENOBUFS */
    CHECK_EQ(total.bad_range, 0); /* a block outside the pool */
    CHECK_EQ(total.allocs, total.frees + leftovers);
    if (nthreads > 1) /* the rounds guarantee some traffic between threads */
        CHECK(total.cross_frees * 100 >= total.frees);

    /* Conservation. */
    st = check_settled_after_threads(sh.pool, sh.owner, CAPACITY, FREE_OWNER);
    CHECK(st.blocks_carved <= CAPACITY);

    /* Nothing was lost: every block can be taken once more. */
    size_t got = alloc_all(sh.pool, all, CAPACITY);
    CHECK_EQ(got, CAPACITY);
    CHECK(lfp_alloc(sh.pool) == NULL);
    free_all(sh.pool, all, got);
    lfp_thread_flush();
    verify_and_destroy(sh.pool, 0);

    free(all);
    free(sh.owner);
    free(sh.exchange);
    free(w);
    free(tid);
}

static void concurrent_mixed_traffic_never_hands_a_block_to_two_owners(void)
{
    stress(0);
}

static void concurrent_mixed_traffic_without_cache_never_hands_a_block_to_two_owners(void)
{
    stress(LFP_NO_CACHE);
}

int main(void)
{
    RUN(concurrent_mixed_traffic_never_hands_a_block_to_two_owners);
    RUN(concurrent_mixed_traffic_without_cache_never_hands_a_block_to_two_owners);
    return check_done();
}
