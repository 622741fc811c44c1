/* SPDX-License-Identifier: MIT */
/*
 * Every request lfpool makes for memory is refused, each in turn, and the
 * library copes: the call that met the refusal returns its documented error
 * (or, where the library absorbs the refusal by design, succeeds anyway),
 * the pool stays whole, nothing leaks, and destroy still counts the blocks
 * in use.
 *
 * A scenario (a create, a thread's first calls, a grow, ...) runs once per
 * request it makes: run k refuses its k-th request (lfp_test_fail_at = k).
 * The sweep of a scenario ends with the first run that its refusal did not
 * reach, and the runs before it must number exactly the requests a run
 * without refusal makes: every request site has been refused once.
 *
 * Each run is a child forked from a parent that never grows a pool nor
 * starts a thread, so every run starts from the same state: no thread cache
 * to recycle, no slab descriptor to reuse, no registry table. Run k's first
 * k - 1 requests are then those of the run without refusal, and its k-th is
 * the next site. The child's exit runs LeakSanitizer in the ASan build:
 * memory a refusal left behind fails that run.
 *
 * Linked with the library built with LFP_TEST_HOOKS.
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
#include <sys/wait.h>
#include <unistd.h>

#include <lfpool.h>

#include "check.h"

/* In the library built with LFP_TEST_HOOKS: when set to n > 0, the n-th
 * following request for memory of any kind (a mapping or a malloc) fails;
 * every request counts in lfp_test_requests. */
extern _Atomic long lfp_test_fail_at;
extern _Atomic long lfp_test_requests;

#define KiB ((size_t)1024)
/* A sweep that has not ended by then never will. */
#define MAX_SITES 1000

/* ---- runs: one forked child each ---- */

/* What a run tells the parent, in memory the two share. */
struct run_report {
    bool closed;   /* the scenario got to the end of its armed part */
    bool refused;  /* the run's refusal was reached */
    bool absorbed; /* ... and the call that met it succeeded all the same */
    long requests; /* requests made in the armed part */
    long checks;   /* the run's CHECKs, for the total */
};

static struct run_report *report;
/* The request this run refuses, counted from arm(); 0: none. */
static long run_refuse;

/* From here on requests count, and the chosen one is refused. */
static void arm(void)
{
    atomic_store(&lfp_test_requests, 0);
    atomic_store(&lfp_test_fail_at, run_refuse);
}

/* The end of the part whose requests are refused in turn; returns whether
 * this run's refusal was reached in it. */
static bool disarm(void)
{
    long left = atomic_exchange(&lfp_test_fail_at, 0);
    report->requests = atomic_load(&lfp_test_requests);
    report->refused = run_refuse > 0 && left == 0;
    report->closed = true;
    return report->refused;
}

/* Checked pools name each block still in use at destroy to the handler. */
static atomic_long leak_reports, other_reports;

static void count_report(lfp_pool *pool, void *ptr, int err, const char *what)
{
    (void)pool;
    (void)ptr;
    (void)what;
    atomic_fetch_add(err == LFP_ELEAK ? &leak_reports : &other_reports, 1);
}

/* ---- what every scenario checks afterwards ---- */

/* The blocks are distinct blocks of the pool. Sorts a copy. */
static void check_distinct_and_owned(lfp_pool *pool, void **blocks, size_t n)
{
    size_t twice, foreign = 0;
    void **v = sorted_blocks(blocks, n, &twice);
    for (size_t i = 0; i < n; i++)
        foreign += !lfp_owns(pool, v[i]);
    CHECK_EQ(twice, 0);
    CHECK_EQ(foreign, 0);
    free(v);
}

/*
 * Every block is accounted for. lfp_pool_verify passes; with the calling
 * thread's cache handed back (the scenario's other threads have exited),
 * in_use blocks are in use and none is cached; and the pool hands out
 * exactly the rest: a fixed pool every other block and then ENOBUFS, a
 * growable one the free blocks of its slabs without growing.
 */
static void check_conserved(lfp_pool *pool, unsigned flags, size_t in_use)
{
    CHECK_EQ(lfp_pool_verify(pool), LFP_OK);
    lfp_thread_flush();
    struct lfp_stats st = stats_of(pool);
    CHECK_EQ(st.blocks_in_use, in_use);
    CHECK_EQ(st.blocks_cached, 0);
    CHECK(st.blocks_carved <= st.blocks_total);
    REQUIRE(st.blocks_total >= in_use);

    size_t rest = st.blocks_total - in_use;
    void **b = malloc((rest + 1) * sizeof *b);
    REQUIRE(b != NULL);
    size_t got = alloc_all(pool, b, rest);
    CHECK_EQ(got, rest);
    if (flags & LFP_GROWABLE) {
        CHECK_EQ(stats_of(pool).blocks_total, st.blocks_total);
    } else {
        errno = 0;
        CHECK(lfp_alloc(pool) == NULL);
        CHECK_EQ(errno, ENOBUFS);
    }
    check_distinct_and_owned(pool, b, got);
    CHECK_EQ(stats_of(pool).blocks_in_use, in_use + got);
    CHECK_EQ(lfp_free_bulk(pool, b, got), LFP_OK);
    CHECK_EQ(stats_of(pool).blocks_in_use, in_use);
    CHECK_EQ(lfp_pool_verify(pool), LFP_OK);
    free(b);
}

/* The pool at the end of a scenario, with in_use blocks still out: whole,
 * still handing out blocks, and destroyed counting those and one more taken
 * now; a checked pool also reports each of them. */
static void check_and_destroy(lfp_pool *pool, unsigned flags, size_t in_use)
{
    check_conserved(pool, flags, in_use);
    void *kept = lfp_alloc(pool);
    CHECK(kept != NULL);
    if (kept != NULL)
        memset(kept, 0x5a, stats_of(pool).block_size);
    size_t expect = in_use + (kept != NULL);
    long leaks = atomic_load(&leak_reports);
    CHECK_EQ(lfp_pool_destroy(pool), expect);
    CHECK_EQ(atomic_load(&leak_reports) - leaks, (flags & LFP_CHECKED) ? (long)expect : 0);
    CHECK_EQ(atomic_load(&other_reports), 0);
}

/* ---- scenarios ---- */

struct scenario {
    const char *name;                        /* what it pins down */
    void (*run)(const struct scenario *s);
    unsigned flags;                          /* the pool's flags */
    size_t block_size;
    bool high_id;                            /* the pool's id is 64 or more */
    long min_sites;                          /* requests it makes at least */
};

/* A create that met the refusal failed with LFP_ENOMEM and left nothing
 * half made: the same create succeeds now. Where the memory refused is an
 * optimisation (a growable pool's address range for its slabs), the create
 * may succeed without it instead. Returns the pool, or NULL. */
static lfp_pool *create_armed(const struct lfp_config *cfg, bool may_absorb)
{
    lfp_pool *pool = (lfp_pool *)(uintptr_t)1;
    arm();
    int rc = lfp_pool_create(cfg, &pool);
    if (disarm()) {
        if (rc == LFP_OK && may_absorb) {
            report->absorbed = true;
            return pool;
        }
        CHECK_EQ(rc, LFP_ENOMEM);
        CHECK(pool == NULL);
        rc = lfp_pool_create(cfg, &pool);
    }
    CHECK_EQ(rc, LFP_OK);
    return rc == LFP_OK ? pool : NULL;
}

/* Creating a fixed pool: its control structure, the copy of its name, the
 * region for its blocks and, checked, its in-use record. */
static void create_fixed(const struct scenario *s)
{
    struct lfp_config cfg = { .block_size = s->block_size, .capacity = 512,
                              .flags = s->flags, .name = "faults" };
    lfp_pool *pool = create_armed(&cfg, false);
    if (pool == NULL)
        return;
    struct lfp_stats st = stats_of(pool);
    CHECK(st.name != NULL && strcmp(st.name, "faults") == 0);
    CHECK_EQ(st.blocks_total, cfg.capacity);
    check_and_destroy(pool, cfg.flags, 0);
}

/* Creating a growable pool with two slabs' worth of blocks made up front:
 * the control structure, the name, the address range for its slabs and
 * that range's tables, and for each slab its descriptor, its in-use record
 * (checked), its memory and, for a slab outside a range whose addresses are
 * new to the registry, the registry's table. */
static void create_growable(const struct scenario *s)
{
    struct lfp_config cfg = { .block_size = s->block_size, .flags = LFP_GROWABLE | s->flags,
                              .slab_size = 64 * KiB, .name = "faults" };
    cfg.capacity = 64 * KiB / LFP__STRIDE(s->block_size, 0) + 1;
    lfp_pool *pool = create_armed(&cfg, true);
    if (pool == NULL)
        return;
    struct lfp_stats st = stats_of(pool);
    CHECK(st.name != NULL && strcmp(st.name, "faults") == 0);
    CHECK(st.blocks_total >= cfg.capacity);
    CHECK_EQ(st.blocks_in_use, 0);
    check_and_destroy(pool, cfg.flags, 0);
}

/* A full growable pool asked for one more block: the new slab's memory
 * and (checked) its in-use record; its descriptor comes from the page of
 * them mapped for the first slab (grow_many refuses those pages). A
 * refusal fails the alloc with ENOMEM and leaves the pool as it was. */
static void grow(const struct scenario *s)
{
    const size_t per_slab = 64 * KiB / 64;
    struct lfp_config cfg = { .block_size = 64, .capacity = per_slab,
                              .flags = LFP_GROWABLE | s->flags, .slab_size = 64 * KiB };
    lfp_pool *pool;
    REQUIRE(lfp_pool_create(&cfg, &pool) == LFP_OK);
    void **held = malloc((per_slab + 1) * sizeof *held);
    REQUIRE(held != NULL);
    size_t n = alloc_all(pool, held, per_slab);
    CHECK_EQ(n, per_slab);
    struct lfp_stats before = stats_of(pool);
    CHECK_EQ(before.blocks_total, per_slab); /* the next block needs a slab */

    arm();
    errno = 0;
    void *more = lfp_alloc(pool);
    int err = errno;
    if (disarm()) {
        CHECK(more == NULL);
        CHECK_EQ(err, ENOMEM);
        struct lfp_stats after = stats_of(pool);
        CHECK(same_stats(&before, &after));
        CHECK_EQ(lfp_pool_verify(pool), LFP_OK);
        more = lfp_alloc(pool); /* the OS is willing again */
    }
    CHECK(more != NULL);
    if (more != NULL)
        held[n++] = more;
    CHECK(stats_of(pool).blocks_total > per_slab);
    check_distinct_and_owned(pool, held, n);
    CHECK_EQ(lfp_free_bulk(pool, held, n), LFP_OK);
    free(held);
    check_and_destroy(pool, cfg.flags, 0);
}

/* Growths of one block a slab, from an empty pool without a cache, past
 * the first page of slab descriptors (the library maps them a page at a
 * time, never malloc, which a growth in a signal handler must not call):
 * each growth asks for its slab's memory, and some for a page of
 * descriptors. A refusal of either fails that alloc with ENOMEM and leaves
 * the pool as it was; the next alloc grows. */
static void grow_many(const struct scenario *s)
{
    enum { N = 80 };
    struct lfp_config cfg = { .block_size = 64 * KiB, .slab_size = 64 * KiB,
                              .flags = LFP_GROWABLE | LFP_NO_CACHE | s->flags };
    lfp_pool *pool;
    REQUIRE(lfp_pool_create(&cfg, &pool) == LFP_OK);
    void *held[N];
    size_t n = 0;
    arm();
    while (n < N) {
        errno = 0;
        held[n] = lfp_alloc(pool);
        if (held[n] != NULL) {
            n++;
            continue;
        }
        int err = errno;
        CHECK_EQ(err, ENOMEM);
        struct lfp_stats st = stats_of(pool);
        CHECK_EQ(st.blocks_total, n);
        CHECK_EQ(st.blocks_in_use, n);
        CHECK_EQ(lfp_pool_verify(pool), LFP_OK);
        if (err != ENOMEM || atomic_load(&lfp_test_fail_at) != 0)
            break; /* a failure the hook did not make: checked above */
    }
    disarm();
    CHECK_EQ(n, N);
    check_distinct_and_owned(pool, held, n);
    CHECK_EQ(lfp_free_bulk(pool, held, n), LFP_OK);
    check_and_destroy(pool, cfg.flags, 0);
}

/* A fixed pool of 1024 64-byte blocks in magazines of 16, made before the
 * hook is armed. */
static lfp_pool *fixed_pool_1024(const struct scenario *s)
{
    struct lfp_config cfg = { .block_size = 64, .capacity = 1024, .cache_size = 16,
                              .flags = s->flags };
    lfp_pool *pool;
    REQUIRE(lfp_pool_create(&cfg, &pool) == LFP_OK);
    return pool;
}

/* Frees that fill the calling thread's magazines, so that full ones go to
 * the depot, and allocs that take them back. lfp_free has no error for a
 * lack of memory: whatever these ask for, a refusal must be absorbed. */
static void spill(const struct scenario *s)
{
    enum { N = 200 }; /* a dozen magazines of 16 */
    lfp_pool *pool = fixed_pool_1024(s);
    void *b[N];
    REQUIRE(alloc_all(pool, b, N) == N);

    arm();
    size_t bad_free = 0;
    for (size_t i = 0; i < N / 2; i++)
        bad_free += lfp_free(pool, b[i]) != LFP_OK;
    int bulk_rc = lfp_free_bulk(pool, b + N / 2, N - N / 2);
    size_t got = alloc_all(pool, b, N);
    report->absorbed = disarm();

    CHECK_EQ(bad_free, 0);
    CHECK_EQ(bulk_rc, LFP_OK);
    CHECK_EQ(got, N);
    check_distinct_and_owned(pool, b, got);
    CHECK_EQ(lfp_free_bulk(pool, b, got), LFP_OK);
    check_and_destroy(pool, s->flags, 0);
}

/* A thread that uses the pool for the first time. */
struct newcomer {
    lfp_pool *pool;
    void *theirs;  /* a block the main thread took, freed here */
    void *mine;    /* taken here and left in use */
    size_t got;    /* blocks it was given */
    int free_rc, free_theirs_rc;
};

/* Its first calls: a block taken and given back, one taken and kept, and
 * one of another thread's blocks freed. */
static void *newcomer_main(void *arg)
{
    struct newcomer *t = arg;
    void *b = lfp_alloc(t->pool);
    t->mine = lfp_alloc(t->pool);
    t->got = (b != NULL) + (t->mine != NULL);
    if (b != NULL)
        memset(b, 0x3c, 64);
    t->free_rc = lfp_free(t->pool, b);
    t->free_theirs_rc = lfp_free(t->pool, t->theirs);
    return NULL;
}

/*
 * A thread's first alloc and free on a pool, on a new thread every run: the
 * thread's cache, for a pool id of 64 or more the chunk of slots that holds
 * it, and the thread's magazines for the pool. The library absorbs each
 * refusal: the thread works on the shared depot instead (and asks again at
 * its next call), so every call succeeds.
 */
static void newcomer(const struct scenario *s)
{
    /* Ids below 64 have their slot in the thread's cache itself. */
    lfp_pool *fillers[64];
    size_t nfill = s->high_id ? 64 : 0;
    struct lfp_config small = { .block_size = 16, .capacity = 16 };
    for (size_t i = 0; i < nfill; i++)
        REQUIRE(lfp_pool_create(&small, &fillers[i]) == LFP_OK);
    struct lfp_config cfg = { .block_size = 64, .capacity = 1024 };
    lfp_pool *pool;
    REQUIRE(lfp_pool_create(&cfg, &pool) == LFP_OK);

    struct newcomer t = { .pool = pool, .theirs = lfp_alloc(pool) };
    REQUIRE(t.theirs != NULL);
    pthread_t tid;
    arm();
    REQUIRE(pthread_create(&tid, NULL, newcomer_main, &t) == 0);
    REQUIRE(pthread_join(tid, NULL) == 0);
    report->absorbed = disarm();

    CHECK_EQ(t.got, 2);
    CHECK_EQ(t.free_rc, LFP_OK);
    CHECK_EQ(t.free_theirs_rc, LFP_OK);
    CHECK(t.mine == NULL || lfp_owns(pool, t.mine));
    check_and_destroy(pool, cfg.flags, t.mine != NULL);
    for (size_t i = 0; i < nfill; i++)
        CHECK_EQ(lfp_pool_destroy(fillers[i]), 0);
}

enum { BULK = 8 };

/* A thread whose first calls are the bulk ones. */
struct bulk_newcomer {
    lfp_pool *pool;
    void *theirs[BULK]; /* the main thread's blocks, freed here */
    void *mine[BULK];   /* taken here and left in use */
    size_t got;
    int free_rc;
};

static void *bulk_newcomer_main(void *arg)
{
    struct bulk_newcomer *t = arg;
    t->free_rc = lfp_free_bulk(t->pool, t->theirs, BULK);
    t->got = lfp_alloc_bulk(t->pool, t->mine, BULK);
    return NULL;
}

/* The same with lfp_free_bulk and lfp_alloc_bulk as the thread's first
 * calls: without a slot, the bulk free chains the blocks into the depot. */
static void bulk_newcomer(const struct scenario *s)
{
    (void)s;
    struct lfp_config cfg = { .block_size = 64, .capacity = 1024 };
    lfp_pool *pool;
    REQUIRE(lfp_pool_create(&cfg, &pool) == LFP_OK);
    struct bulk_newcomer t = { .pool = pool };
    REQUIRE(alloc_all(pool, t.theirs, BULK) == BULK);

    pthread_t tid;
    arm();
    REQUIRE(pthread_create(&tid, NULL, bulk_newcomer_main, &t) == 0);
    REQUIRE(pthread_join(tid, NULL) == 0);
    report->absorbed = disarm();

    CHECK_EQ(t.free_rc, LFP_OK);
    CHECK_EQ(t.got, BULK);
    check_distinct_and_owned(pool, t.mine, t.got);
    check_and_destroy(pool, cfg.flags, t.got);
}

/* lfp_alloc_bulk across the growth of several slabs: each new slab's
 * descriptor and memory. A refusal cuts the call short with errno ENOMEM;
 * the blocks it handed out are the caller's. */
static void alloc_bulk_grow(const struct scenario *s)
{
    enum { WANT = 200 }; /* a little over three slabs of 64 blocks */
    struct lfp_config cfg = { .block_size = 1024, .flags = LFP_GROWABLE | s->flags,
                              .slab_size = 64 * KiB };
    lfp_pool *pool;
    REQUIRE(lfp_pool_create(&cfg, &pool) == LFP_OK);
    /* The calling thread's slot, and the first slab, before. */
    void *first = lfp_alloc(pool);
    REQUIRE(first != NULL);
    CHECK_EQ(lfp_free(pool, first), LFP_OK);

    void *b[WANT];
    arm();
    errno = 0;
    size_t got = lfp_alloc_bulk(pool, b, WANT);
    int err = errno;
    if (disarm()) {
        CHECK(got < WANT);
        CHECK_EQ(err, ENOMEM);
        check_distinct_and_owned(pool, b, got);
        CHECK_EQ(stats_of(pool).blocks_in_use, got);
        CHECK_EQ(lfp_pool_verify(pool), LFP_OK);
        got += lfp_alloc_bulk(pool, b + got, WANT - got);
    }
    CHECK_EQ(got, WANT);
    check_distinct_and_owned(pool, b, got);
    CHECK_EQ(lfp_free_bulk(pool, b, got), LFP_OK);
    check_and_destroy(pool, cfg.flags, 0);
}

/* lfp_pool_verify's list of free blocks. A refusal is LFP_ENOMEM and
 * changes nothing. */
static void verify(const struct scenario *s)
{
    enum { TAKEN = 100, BACK = 60 };
    lfp_pool *pool = fixed_pool_1024(s);
    /* Free blocks in the depot and in this thread's magazines. */
    void *b[TAKEN];
    REQUIRE(alloc_all(pool, b, TAKEN) == TAKEN);
    CHECK_EQ(lfp_free_bulk(pool, b, BACK), LFP_OK);
    struct lfp_stats before = stats_of(pool);
    CHECK(before.blocks_cached > 0);

    arm();
    int rc = lfp_pool_verify(pool);
    if (disarm()) {
        CHECK_EQ(rc, LFP_ENOMEM);
        struct lfp_stats after = stats_of(pool);
        CHECK(same_stats(&before, &after));
        rc = lfp_pool_verify(pool);
    }
    CHECK_EQ(rc, LFP_OK);
    check_and_destroy(pool, s->flags, TAKEN - BACK);
}

/* A trim that gives two slabs back and, but in a checked pool, the pages
 * of the third's free run (a hole, which needs a map of free blocks and a
 * record), then growing again: the hole first, then new slabs' memory and
 * (checked) in-use records; their descriptors are the released ones. A
 * refusal in the trim only leaves the run's pages where they are; one in
 * the growth fails an alloc with ENOMEM, and the pool grows on after. */
static void trim_regrow(const struct scenario *s)
{
    const size_t per_slab = 64 * KiB / 64, n = 3 * per_slab;
    struct lfp_config cfg = { .block_size = 64, .flags = LFP_GROWABLE | s->flags,
                              .slab_size = 64 * KiB };
    lfp_pool *pool;
    REQUIRE(lfp_pool_create(&cfg, &pool) == LFP_OK);
    void **b = malloc(n * sizeof *b);
    REQUIRE(b != NULL);
    REQUIRE(alloc_all(pool, b, n) == n);
    /* b[0] keeps its slab. */
    CHECK_EQ(lfp_free_bulk(pool, b + 1, n - 1), LFP_OK);

    size_t reserved = stats_of(pool).bytes_reserved;
    arm();
    size_t released = lfp_pool_trim(pool);
    bool trim_refused = run_refuse > 0 && atomic_load(&lfp_test_fail_at) == 0;
    size_t left = stats_of(pool).blocks_total;
    CHECK_EQ(released, reserved - stats_of(pool).bytes_reserved);
    errno = 0;
    size_t got = alloc_all(pool, b + 1, n - 1);
    int err = errno;
    if (disarm() && !trim_refused) {
        CHECK(got < n - 1);
        CHECK_EQ(err, ENOMEM);
        CHECK_EQ(stats_of(pool).blocks_in_use, 1 + got);
        CHECK_EQ(lfp_pool_verify(pool), LFP_OK);
        got += alloc_all(pool, b + 1 + got, n - 1 - got);
    }
    CHECK_EQ(left, per_slab);
    /* Checked pools make no hole (its pages would take the evidence of a
     * write to a free block with them). */
    if (trim_refused || (s->flags & LFP_CHECKED))
        CHECK(released >= 2 * 64 * KiB);
    else
        CHECK(released > 2 * 64 * KiB);
    if (s->flags & LFP_CHECKED)
        CHECK_EQ(released, 2 * 64 * KiB);
    CHECK_EQ(got, n - 1);
    check_distinct_and_owned(pool, b, 1 + got);
    CHECK_EQ(lfp_free_bulk(pool, b + 1, got), LFP_OK);
    free(b);
    check_and_destroy(pool, cfg.flags, 1);
}

/* ---- the sweep ---- */

/* Run the scenario in a child that refuses its refuse-th request. */
static struct run_report run_forked(const struct scenario *s, long refuse)
{
    memset(report, 0, sizeof *report);
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        atomic_store(&check_count, 0);
        atomic_store(&check_failures, 0);
        run_refuse = refuse;
        alarm(120); /* a run that hangs fails */
        s->run(s);
        report->checks = atomic_load(&check_count);
        exit(atomic_load(&check_failures) != 0); /* then LeakSanitizer, if built in */
    }
    int status;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    struct run_report r = *report;
    bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    CHECK(clean);
    CHECK(r.closed);
    if (!clean || !r.closed)
        fprintf(stderr, "  the run refusing request %ld failed (wait status %#x)\n", refuse,
                (unsigned)status);
    atomic_fetch_add(&check_count, r.checks);
    return r;
}

/* Refuse each request of the scenario in turn; returns how many sites
 * there were, and in *absorbed at how many of them the call succeeded. */
static long sweep(const struct scenario *s, long *absorbed)
{
    struct run_report whole = run_forked(s, 0);
    CHECK(!whole.refused);
    long k = 1;
    *absorbed = 0;
    for (; k <= MAX_SITES; k++) {
        struct run_report r = run_forked(s, k);
        if (!r.refused)
            break;
        *absorbed += r.absorbed;
    }
    long sites = k - 1;
    CHECK(k <= MAX_SITES);
    /* Every request of a run without refusal was refused once. */
    CHECK_EQ(sites, whole.requests);
    CHECK(sites >= s->min_sites);
    return sites;
}

static const struct scenario scenarios[] = {
    { "create_named_fixed_pool_fails_with_enomem_and_leaks_nothing",
      create_fixed, .block_size = 64, .min_sites = 3 },
    { "create_named_checked_fixed_pool_fails_with_enomem_and_leaks_nothing",
      create_fixed, .flags = LFP_CHECKED, .block_size = 64, .min_sites = 4 },
    { "create_checked_growable_pool_with_capacity_fails_with_enomem_and_leaks_nothing",
      create_growable, .flags = LFP_CHECKED, .block_size = 64, .min_sites = 8 },
    /* A stride with a large odd factor (1040 = 65 x 16): its slabs do not
     * hold a power of two of blocks that fills whole pages. */
    { "create_growable_pool_of_odd_stride_fails_with_enomem_and_leaks_nothing",
      create_growable, .block_size = 1040, .min_sites = 6 },
    { "growing_a_checked_pool_fails_alloc_with_enomem_and_leaves_it_intact",
      grow, .flags = LFP_CHECKED, .min_sites = 2 },
    { "growing_a_cacheless_pool_fails_alloc_with_enomem_and_leaves_it_intact",
      grow, .flags = LFP_NO_CACHE, .min_sites = 1 },
    /* 80 slabs and at least two pages of descriptors. */
    { "growing_past_a_page_of_slab_descriptors_fails_alloc_with_enomem_and_leaves_it_intact",
      grow_many, .min_sites = 82 },
    { "new_thread_without_cache_or_magazines_still_allocates_and_frees",
      newcomer, .min_sites = 2 },
    { "new_thread_without_slot_chunk_for_pool_id_64_still_allocates_and_frees",
      newcomer, .high_id = true, .min_sites = 3 },
    { "new_thread_without_cache_still_frees_and_allocates_in_bulk",
      bulk_newcomer, .min_sites = 2 },
    /* None while magazines live in their slot's buffer; one per spill
     * where a magazine is an object of its own, made on demand. */
    { "frees_that_spill_magazines_to_the_depot_never_fail",
      spill, .min_sites = 0 },
    { "alloc_bulk_that_cannot_grow_returns_short_with_enomem",
      alloc_bulk_grow, .min_sites = 3 },
    { "verify_without_memory_fails_with_enomem_and_changes_nothing",
      verify, .min_sites = 1 },
    { "regrowing_a_trimmed_checked_pool_fails_alloc_with_enomem_and_leaves_it_intact",
      trim_regrow, .flags = LFP_CHECKED, .min_sites = 4 },
    /* The trim's map of free blocks and hole record, then the growths. */
    { "regrowing_a_pool_trimmed_around_a_hole_fails_alloc_with_enomem_and_leaves_it_intact",
      trim_regrow, .min_sites = 3 },
};

/* The hook works at all: without this, every sweep could pass by refusing
 * nothing. Leaves no state behind (the parent must stay fresh). */
static void test_refused_first_request_fails_pool_create_with_enomem(void)
{
    struct lfp_config cfg = { .block_size = 64, .capacity = 16 };
    lfp_pool *pool = (lfp_pool *)(uintptr_t)1;
    long before = atomic_load(&lfp_test_requests);
    atomic_store(&lfp_test_fail_at, 1);
    CHECK_EQ(lfp_pool_create(&cfg, &pool), LFP_ENOMEM);
    CHECK(pool == NULL);
    CHECK_EQ(atomic_load(&lfp_test_fail_at), 0);
    CHECK_EQ(atomic_load(&lfp_test_requests) - before, 1);
    atomic_store(&lfp_test_fail_at, 0);
}

int main(void)
{
    /* The scenarios' request counts assume only the pools they ask for
     * are checked. */
    unsetenv("LFP_CHECKED");
    lfp_set_error_handler(count_report);
    report = mmap(NULL, sizeof *report, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                  -1, 0);
    REQUIRE(report != MAP_FAILED);

    RUN(test_refused_first_request_fails_pool_create_with_enomem);
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
        int before = atomic_load(&check_failures);
        long absorbed;
        long sites = sweep(&scenarios[i], &absorbed);
        printf("%-4s %s (%ld request sites, %ld refusals absorbed)\n",
               atomic_load(&check_failures) == before ? "ok" : "FAIL", scenarios[i].name,
               sites, absorbed);
        fflush(stdout);
    }
    munmap(report, sizeof *report);
    return check_done();
}
