/* SPDX-License-Identifier: MIT */
/*
 * Checked mode (LFP_CHECKED): double frees refused and the pool left
 * intact, writes after free found at the next alloc of the block, foreign
 * pointers and leaks reported, the LFP_CHECKED environment variable, the
 * error handler's contract, leaks named with the thread that allocated
 * them, and threads freeing each other's blocks without a false report.
 * Every scenario runs on a fixed pool with and without the per-thread
 * cache, and on a growable pool.
 *
 * Knobs: LFP_STRESS_THREADS (4), LFP_STRESS_SCALE (1.0).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ctype.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <lfpool.h>

#include "check.h"

enum { BS = 64, CAP = 1024 };

static const unsigned modes[] = {LFP_CHECKED, LFP_CHECKED | LFP_NO_CACHE,
                                 LFP_CHECKED | LFP_GROWABLE};

#define FOR_EACH_MODE(m) for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++)

/* A pool of CAP blocks at most: fixed, or growable in 64 KiB slabs. */
static lfp_pool *make_pool(size_t block_size, unsigned flags)
{
    struct lfp_config cfg = {0};
    cfg.block_size = block_size;
    cfg.flags = flags;
    cfg.name = "checked";
    if (flags & LFP_GROWABLE) {
        cfg.max_blocks = CAP;
        cfg.slab_size = 64 * 1024;
    } else {
        cfg.capacity = CAP;
    }
    return create_pool(&cfg);
}

static size_t count_ptr(void *const *v, size_t n, const void *p)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += v[i] == p;
    return c;
}

/* A write the program should not make: the byte at off of a freed block.
 * An ASan build would stop it (the use after free it is); let it through,
 * as if it came from code ASan does not see, so checked mode must find it. */
static void scribble(void *block, size_t off)
{
    UNPOISON((char *)block + off, 1);
    ((volatile unsigned char *)block)[off] ^= 0x5A;
}

/* ---- a handler that records what it is told ---- */

#define MAX_REPORTS 4096

struct report {
    lfp_pool *pool;
    void *ptr;
    int err;
    char what[80];
};

static struct {
    pthread_mutex_t lock;
    struct report r[MAX_REPORTS];
    size_t n;
} reports = {PTHREAD_MUTEX_INITIALIZER, {{0}}, 0};

static void record(lfp_pool *pool, void *ptr, int err, const char *what)
{
    CHECK(what != NULL && what[0] != '\0');
    pthread_mutex_lock(&reports.lock);
    if (reports.n < MAX_REPORTS) {
        struct report *r = &reports.r[reports.n++];
        *r = (struct report){pool, ptr, err, ""};
        snprintf(r->what, sizeof r->what, "%s", what != NULL ? what : "");
    }
    pthread_mutex_unlock(&reports.lock);
}

/* Start recording afresh. */
static void reports_reset(void)
{
    pthread_mutex_lock(&reports.lock);
    reports.n = 0;
    pthread_mutex_unlock(&reports.lock);
    lfp_set_error_handler(record);
}

static size_t reports_of(int err)
{
    size_t c = 0;
    pthread_mutex_lock(&reports.lock);
    for (size_t i = 0; i < reports.n; i++)
        c += reports.r[i].err == err;
    pthread_mutex_unlock(&reports.lock);
    return c;
}

/* Is the only report one of err about ptr? */
static int reported_once(int err, const void *ptr)
{
    pthread_mutex_lock(&reports.lock);
    int ok = reports.n == 1 && reports.r[0].err == err && reports.r[0].ptr == ptr;
    pthread_mutex_unlock(&reports.lock);
    return ok;
}

/* ---- the tests ---- */

static void double_free_returns_edouble_and_leaves_the_pool_intact(void)
{
    FOR_EACH_MODE(m) {
        int before = atomic_load(&check_failures);
        lfp_pool *pool = make_pool(BS, modes[m]);
        void *keep = lfp_alloc(pool), *p = lfp_alloc(pool);
        REQUIRE(keep != NULL && p != NULL);
        CHECK_EQ(lfp_free(pool, p), LFP_OK);
        struct lfp_stats a = stats_of(pool);

        reports_reset();
        CHECK_EQ(lfp_free(pool, p), LFP_EDOUBLE);
        CHECK(reported_once(LFP_EDOUBLE, p));
        struct lfp_stats b = stats_of(pool);
        CHECK_EQ(b.blocks_in_use, a.blocks_in_use);
        CHECK_EQ(b.blocks_cached, a.blocks_cached);
        CHECK_EQ(b.blocks_carved, a.blocks_carved);
        CHECK_EQ(lfp_pool_verify(pool), LFP_OK);

        /* Every block once more: p among them exactly once. */
        static void *v[CAP];
        size_t n = alloc_all(pool, v, CAP);
        CHECK_EQ(n, CAP - 1);
        CHECK_EQ(count_ptr(v, n, p), 1);
        CHECK_EQ(reports_of(LFP_ECORRUPT), 0);
        free_all(pool, v, n);
        CHECK_EQ(lfp_free(pool, keep), LFP_OK);
        verify_and_destroy(pool, 0);
        CHECK_EQ(reports_of(LFP_ELEAK), 0);
        note_failures(before, "double free", modes[m]);
    }
}

static void double_free_within_one_bulk_call_frees_nothing(void)
{
    FOR_EACH_MODE(m) {
        int before = atomic_load(&check_failures);
        lfp_pool *pool = make_pool(BS, modes[m]);
        void *v[8];
        CHECK_EQ(lfp_alloc_bulk(pool, v, 8), 8);

        /* A block listed twice. */
        reports_reset();
        void *twice[5] = {v[0], v[1], NULL, v[2], v[1]};
        CHECK_EQ(lfp_free_bulk(pool, twice, 5), LFP_EDOUBLE);
        CHECK(reported_once(LFP_EDOUBLE, v[1]));
        CHECK_EQ(stats_of(pool).blocks_in_use, 8);
        CHECK_EQ(lfp_pool_verify(pool), LFP_OK);

        /* A block freed before. */
        CHECK_EQ(lfp_free(pool, v[3]), LFP_OK);
        reports_reset();
        void *stale[3] = {v[4], v[3], v[5]};
        CHECK_EQ(lfp_free_bulk(pool, stale, 3), LFP_EDOUBLE);
        CHECK(reported_once(LFP_EDOUBLE, v[3]));
        CHECK_EQ(stats_of(pool).blocks_in_use, 7);
        CHECK_EQ(lfp_pool_verify(pool), LFP_OK);

        /* Nothing was freed: each of the others frees exactly once now. */
        void *rest[7] = {v[0], v[1], v[2], v[4], v[5], v[6], v[7]};
        CHECK_EQ(lfp_free_bulk(pool, rest, 7), LFP_OK);
        CHECK_EQ(lfp_free(pool, v[4]), LFP_EDOUBLE);
        CHECK_EQ(stats_of(pool).blocks_in_use, 0);
        verify_and_destroy(pool, 0);
        note_failures(before, "double free in lfp_free_bulk", modes[m]);
    }
}

static void write_after_free_is_reported_at_the_next_alloc_of_that_block(void)
{
    FOR_EACH_MODE(m) {
        int before = atomic_load(&check_failures);
        lfp_pool *pool = make_pool(BS, modes[m]);
        /* Single-threaded, the block freed last is the next one out. */
        for (int bulk = 0; bulk < 2; bulk++) {
            void *p = lfp_alloc(pool);
            REQUIRE(p != NULL);
            memset(p, 0x11, BS);
            CHECK_EQ(lfp_free(pool, p), LFP_OK);
            scribble(p, BS - 1 - (size_t)bulk * 20);

            reports_reset();
            void *q = NULL;
            if (bulk)
                CHECK_EQ(lfp_alloc_bulk(pool, &q, 1), 1);
            else
                q = lfp_alloc(pool);
            CHECK(q == p); /* still handed out */
            CHECK(reported_once(LFP_ECORRUPT, p));

            /* Freed and taken again untouched: no report. */
            CHECK_EQ(lfp_free(pool, q), LFP_OK);
            reports_reset();
            q = lfp_alloc(pool);
            CHECK(q == p);
            CHECK_EQ(reports_of(LFP_ECORRUPT), 0);
            CHECK_EQ(lfp_free(pool, q), LFP_OK);
        }
        verify_and_destroy(pool, 0);
        note_failures(before, "write after free", modes[m]);
    }
}

static void ctor(void *block, void *arg)
{
    (void)arg;
    memset(block, 0xC7, BS);
}

static void zero_and_init_pools_are_checked_without_false_reports(void)
{
    FOR_EACH_MODE(m) {
        int before = atomic_load(&check_failures);
        reports_reset();
        lfp_pool *pool = make_pool(BS, modes[m] | LFP_ZERO);
        void *p = lfp_alloc(pool);
        REQUIRE(p != NULL);
        memset(p, 0x77, BS);
        CHECK_EQ(lfp_free(pool, p), LFP_OK);
        p = lfp_alloc(pool);
        REQUIRE(p != NULL);
        size_t nonzero = 0;
        for (size_t j = 0; j < BS; j++)
            nonzero += ((unsigned char *)p)[j] != 0;
        CHECK_EQ(nonzero, 0);
        CHECK_EQ(lfp_free(pool, p), LFP_OK);
        CHECK_EQ(lfp_free(pool, p), LFP_EDOUBLE);
        CHECK_EQ(lfp_pool_destroy(pool), 0);

        /* A constructed block keeps its bytes while free: nothing is
         * filled, nothing reported; a double free is still caught. */
        struct lfp_config cfg = {0};
        cfg.block_size = BS;
        cfg.flags = modes[m];
        cfg.capacity = (modes[m] & LFP_GROWABLE) ? 0 : CAP;
        cfg.max_blocks = (modes[m] & LFP_GROWABLE) ? CAP : 0;
        cfg.init = ctor;
        pool = NULL;
        REQUIRE(lfp_pool_create(&cfg, &pool) == LFP_OK);
        p = lfp_alloc(pool);
        REQUIRE(p != NULL);
        ((unsigned char *)p)[BS - 1] = 1; /* the program's own state */
        CHECK_EQ(lfp_free(pool, p), LFP_OK);
        void *q = lfp_alloc(pool);
        CHECK(q == p);
        if (q == p)
            CHECK_EQ(((unsigned char *)q)[BS - 1], 1);
        CHECK_EQ(lfp_free(pool, q), LFP_OK);
        CHECK_EQ(lfp_free(pool, q), LFP_EDOUBLE);
        CHECK_EQ(reports_of(LFP_ECORRUPT), 0);
        CHECK_EQ(reports_of(LFP_EDOUBLE), 2);
        verify_and_destroy(pool, 0);
        note_failures(before, "LFP_ZERO and init", modes[m]);
    }
}

static void foreign_pointers_are_reported_as_eforeign(void)
{
    FOR_EACH_MODE(m) {
        int before = atomic_load(&check_failures);
        lfp_pool *pool = make_pool(BS, modes[m]);
        void *p = lfp_alloc(pool);
        REQUIRE(p != NULL);
        char *heap = malloc(BS);
        REQUIRE(heap != NULL);

        reports_reset();
        CHECK_EQ(lfp_free(pool, heap), LFP_EFOREIGN);
        CHECK(reported_once(LFP_EFOREIGN, heap));
        reports_reset();
        CHECK_EQ(lfp_free(pool, (char *)p + 8), LFP_EFOREIGN);
        CHECK(reported_once(LFP_EFOREIGN, (char *)p + 8));
        reports_reset();
        void *mixed[3] = {p, heap, NULL};
        CHECK_EQ(lfp_free_bulk(pool, mixed, 3), LFP_EFOREIGN);
        CHECK(reported_once(LFP_EFOREIGN, heap));
        CHECK_EQ(stats_of(pool).blocks_in_use, 1);

        /* NULL is no error. */
        reports_reset();
        CHECK_EQ(lfp_free(pool, NULL), LFP_OK);
        CHECK_EQ(reports_of(LFP_EFOREIGN), 0);
        CHECK_EQ(lfp_free(pool, p), LFP_OK);
        verify_and_destroy(pool, 0);
        free(heap);
        note_failures(before, "foreign pointers", modes[m]);
    }
}

static void destroy_reports_each_block_still_in_use_as_eleak(void)
{
    /* Blocks of 4 KiB: a growable pool's 64 KiB slabs hold 16, so the
     * leaks below lie in several slabs. */
    enum { BIG = 4096, N = 40 };
    FOR_EACH_MODE(m) {
        int before = atomic_load(&check_failures);
        lfp_pool *pool = make_pool(BIG, modes[m]);
        void *v[N], *leaked[N];
        size_t nleaked = 0;
        CHECK_EQ(alloc_all(pool, v, N), N);
        for (size_t i = 0; i < N; i++) {
            if (i % 3 == 0)
                leaked[nleaked++] = v[i];
            else
                CHECK_EQ(lfp_free(pool, v[i]), LFP_OK);
        }

        reports_reset();
        CHECK_EQ(lfp_pool_destroy(pool), nleaked);
        CHECK_EQ(reports_of(LFP_ELEAK), nleaked);
        pthread_mutex_lock(&reports.lock);
        size_t n = reports.n < N ? reports.n : N;
        void *seen[N];
        for (size_t i = 0; i < n; i++) {
            seen[i] = reports.r[i].ptr;
            CHECK(reports.r[i].pool == pool);
        }
        pthread_mutex_unlock(&reports.lock);
        qsort(seen, n, sizeof seen[0], cmp_addr);
        qsort(leaked, nleaked, sizeof leaked[0], cmp_addr);
        CHECK_EQ(n, nleaked);
        if (n == nleaked)
            CHECK(memcmp(seen, leaked, n * sizeof seen[0]) == 0);
        note_failures(before, "leaks at destroy", modes[m]);
    }
}

static void growable_checked_pool_survives_trim_and_regrowth(void)
{
    enum { BIG = 4096, N = 200 };
    struct lfp_config cfg = {0};
    cfg.block_size = BIG;
    cfg.flags = LFP_CHECKED | LFP_GROWABLE;
    cfg.slab_size = 64 * 1024;
    lfp_pool *pool = NULL;
    REQUIRE(lfp_pool_create(&cfg, &pool) == LFP_OK);
    reports_reset();
    static void *v[N];
    for (int round = 0; round < 3; round++) {
        CHECK_EQ(alloc_all(pool, v, N), N);
        free_all(pool, v, N);
        lfp_thread_flush();
        CHECK(lfp_pool_trim(pool) > 0);
        CHECK_EQ(lfp_free(pool, v[0]), LFP_EFOREIGN); /* its slab is gone */
    }
    CHECK_EQ(reports_of(LFP_EFOREIGN), 3);
    CHECK_EQ(reports_of(LFP_EDOUBLE) + reports_of(LFP_ECORRUPT), 0);
    verify_and_destroy(pool, 0);
}

static void environment_variable_turns_checked_mode_on(void)
{
    static const char *const values[] = {"1", "0", NULL};
    for (size_t k = 0; k < 3; k++) {
        if (values[k])
            REQUIRE(setenv("LFP_CHECKED", values[k], 1) == 0);
        else
            REQUIRE(unsetenv("LFP_CHECKED") == 0);
        int on = k == 0;
        lfp_pool *pool = make_pool(BS, 0);
        void *p = lfp_alloc(pool);
        REQUIRE(p != NULL);
        /* Only a checked pool reports a foreign pointer. */
        reports_reset();
        CHECK_EQ(lfp_free(pool, (char *)p + 1), LFP_EFOREIGN);
        CHECK_EQ(reports_of(LFP_EFOREIGN), (size_t)on);
        CHECK_EQ(lfp_free(pool, p), LFP_OK);
        if (on)
            CHECK_EQ(lfp_free(pool, p), LFP_EDOUBLE);
        verify_and_destroy(pool, 0);
    }
}

static void other(lfp_pool *pool, void *ptr, int err, const char *what)
{
    record(pool, ptr, err, what);
}

/* Stderr sent to a temporary file, to read the default handler's lines. */
struct capture {
    FILE *tmp;
    int saved;
};

static struct capture capture_stderr(void)
{
    struct capture c = {tmpfile(), -1};
    REQUIRE(c.tmp != NULL);
    fflush(stderr);
    c.saved = dup(2);
    REQUIRE(c.saved >= 0 && dup2(fileno(c.tmp), 2) == 2);
    return c;
}

/* Stderr restored; is what was written meanwhile exactly want? */
static void check_captured(struct capture c, const char *want)
{
    char line[256];
    fflush(stderr);
    dup2(c.saved, 2);
    close(c.saved);
    rewind(c.tmp);
    size_t n = fread(line, 1, sizeof line - 1, c.tmp);
    line[n] = '\0';
    fclose(c.tmp);
    CHECK(strcmp(line, want) == 0);
    if (strcmp(line, want) != 0)
        fprintf(stderr, "  ... got \"%s\", want \"%s\"\n", line, want);
}

/* The default handler's line for a double free. */
static void default_report_of_a_double_free(void)
{
    struct capture c = capture_stderr();
    lfp_pool *pool = make_pool(BS, LFP_CHECKED);
    void *p = lfp_alloc(pool);
    REQUIRE(p != NULL);
    CHECK_EQ(lfp_free(pool, p), LFP_OK);
    CHECK_EQ(lfp_free(pool, p), LFP_EDOUBLE);
    char want[128];
    snprintf(want, sizeof want, "lfpool: pool \"checked\": double free of %p (LFP_EDOUBLE)\n", p);
    check_captured(c, want);
    lfp_pool_destroy(pool);
}

static void set_error_handler_returns_the_previous_one_and_null_restores_the_default(void)
{
    lfp_set_error_handler(NULL);
    CHECK(lfp_set_error_handler(record) == NULL);
    CHECK(lfp_set_error_handler(other) == record);
    CHECK(lfp_set_error_handler(NULL) == other);
    CHECK(lfp_set_error_handler(NULL) == NULL);

    default_report_of_a_double_free();

    /* A handler set again gets the reports instead. */
    reports_reset();
    lfp_pool *pool = make_pool(BS, LFP_CHECKED);
    void *p = lfp_alloc(pool);
    REQUIRE(p != NULL);
    CHECK_EQ(lfp_free(pool, p), LFP_OK);
    CHECK_EQ(lfp_free(pool, p), LFP_EDOUBLE);
    CHECK(reported_once(LFP_EDOUBLE, p));
    lfp_pool_destroy(pool);
}

static void unchecked_pools_never_call_the_handler(void)
{
    REQUIRE(unsetenv("LFP_CHECKED") == 0);
    reports_reset();
    lfp_pool *pool = make_pool(BS, 0);
    void *p = lfp_alloc(pool);
    REQUIRE(p != NULL);
    CHECK_EQ(lfp_free(pool, (char *)p + 1), LFP_EFOREIGN);
    CHECK_EQ(lfp_pool_destroy(pool), 1); /* p leaked */
    pthread_mutex_lock(&reports.lock);
    CHECK_EQ(reports.n, 0);
    pthread_mutex_unlock(&reports.lock);
}

/* ---- leaks name the thread that allocated the block ---- */

static uint32_t own_tid(void)
{
    return (uint32_t)syscall(SYS_gettid);
}

/* A second thread's work: take two blocks, and say who took them. */
struct taker {
    lfp_pool *pool;
    void *kept, *passed;
    uint32_t tid;
};

static void *take_two(void *arg)
{
    struct taker *t = arg;
    t->tid = own_tid();
    t->kept = lfp_alloc(t->pool);
    t->passed = lfp_alloc(t->pool);
    return NULL;
}

/* Does what name thread tid (the whole number)? */
static int names_thread(const char *what, uint32_t tid)
{
    char want[32];
    int n = snprintf(want, sizeof want, "thread %" PRIu32, tid);
    const char *at = strstr(what, want);
    return at != NULL && !isdigit((unsigned char)at[n]);
}

static void leak_reports_name_the_thread_that_allocated_the_block(void)
{
    uint32_t me = own_tid();
    FOR_EACH_MODE(m) {
        int before = atomic_load(&check_failures);
        lfp_pool *pool = make_pool(BS, modes[m]);
        struct taker t = {pool, NULL, NULL, 0};
        pthread_t th;
        REQUIRE(pthread_create(&th, NULL, take_two, &t) == 0);
        REQUIRE(pthread_join(th, NULL) == 0);
        REQUIRE(t.kept != NULL && t.passed != NULL);
        CHECK(t.tid != me);
        /* A block the other thread took, freed here and taken again: the
         * allocating thread is the last one, this one. */
        CHECK_EQ(lfp_free(pool, t.passed), LFP_OK);
        void *mine = lfp_alloc(pool);
        CHECK(mine == t.passed);

        reports_reset();
        CHECK_EQ(lfp_pool_destroy(pool), 2);
        pthread_mutex_lock(&reports.lock);
        CHECK_EQ(reports.n, 2);
        int seen_kept = 0, seen_mine = 0;
        for (size_t i = 0; i < reports.n; i++) {
            const struct report *r = &reports.r[i];
            CHECK(r->pool == pool);
            CHECK_EQ(r->err, LFP_ELEAK);
            CHECK(strstr(r->what, "leaked block") == r->what);
            uint32_t owner = r->ptr == t.kept ? t.tid : me;
            CHECK(r->ptr == t.kept || r->ptr == mine);
            seen_kept += r->ptr == t.kept;
            seen_mine += r->ptr == mine;
            CHECK(names_thread(r->what, owner));
            CHECK(!names_thread(r->what, owner == me ? t.tid : me));
            if (!names_thread(r->what, owner))
                fprintf(stderr, "  ... \"%s\" should name thread %" PRIu32 "\n", r->what,
                        owner);
        }
        pthread_mutex_unlock(&reports.lock);
        CHECK_EQ(seen_kept, 1);
        CHECK_EQ(seen_mine, 1);
        note_failures(before, "the allocating thread in leak reports", modes[m]);
    }

    /* The default handler's line: the block's address and its thread. */
    lfp_set_error_handler(NULL);
    lfp_pool *pool = make_pool(BS, LFP_CHECKED | LFP_GROWABLE);
    void *p = lfp_alloc(pool);
    REQUIRE(p != NULL);
    char want[160];
    snprintf(want, sizeof want,
             "lfpool: pool \"checked\": leaked block allocated by thread %" PRIu32
             ": %p (LFP_ELEAK)\n", me, p);
    struct capture c = capture_stderr();
    CHECK_EQ(lfp_pool_destroy(pool), 1);
    check_captured(c, want);
}

/* ---- threads freeing each other's blocks ---- */

enum { PER_ROUND = 48 };

struct mt {
    lfp_pool *pool;
    pthread_barrier_t *barrier;
    void *(*handoff)[PER_ROUND]; /* one row per thread */
    int nthreads, id;
    long rounds;
};

/* Each round: allocate a row of blocks and stamp every byte with the
 * thread's id; at the barrier, take the next thread's row, check its stamp
 * (no block had two owners) and free it, half one by one, half in bulk. */
static void *mt_worker(void *arg)
{
    struct mt *t = arg;
    void **mine = t->handoff[t->id];
    void **theirs = t->handoff[(t->id + 1) % t->nthreads];
    unsigned char stamp = (unsigned char)(t->id + 1);
    unsigned char their_stamp = (unsigned char)((t->id + 1) % t->nthreads + 1);
    for (long r = 0; r < t->rounds; r++) {
        for (int i = 0; i < PER_ROUND; i++) {
            mine[i] = lfp_alloc(t->pool);
            if (mine[i] != NULL)
                memset(mine[i], stamp, BS);
        }
        pthread_barrier_wait(t->barrier);
        size_t bad = 0;
        for (int i = 0; i < PER_ROUND; i++) {
            if (theirs[i] == NULL)
                continue;
            for (int j = 0; j < BS; j++)
                bad += ((unsigned char *)theirs[i])[j] != their_stamp;
            if (i < PER_ROUND / 2)
                CHECK_EQ(lfp_free(t->pool, theirs[i]), LFP_OK);
        }
        CHECK_EQ(lfp_free_bulk(t->pool, theirs + PER_ROUND / 2, PER_ROUND / 2), LFP_OK);
        CHECK_EQ(bad, 0);
        pthread_barrier_wait(t->barrier);
    }
    return NULL;
}

static void threads_freeing_each_others_blocks_see_no_false_report(void)
{
    int nthreads = stress_threads();
    long rounds = scaled(2000, 50);
    FOR_EACH_MODE(m) {
        int before = atomic_load(&check_failures);
        lfp_pool *pool = make_pool(BS, modes[m]);
        reports_reset();
        pthread_barrier_t barrier;
        REQUIRE(pthread_barrier_init(&barrier, NULL, (unsigned)nthreads) == 0);
        void *(*handoff)[PER_ROUND] = calloc((size_t)nthreads, sizeof *handoff);
        struct mt *ts = calloc((size_t)nthreads, sizeof *ts);
        pthread_t *tids = calloc((size_t)nthreads, sizeof *tids);
        REQUIRE(handoff && ts && tids);
        for (int i = 0; i < nthreads; i++) {
            ts[i] = (struct mt){pool, &barrier, handoff, nthreads, i, rounds};
            REQUIRE(pthread_create(&tids[i], NULL, mt_worker, &ts[i]) == 0);
        }
        for (int i = 0; i < nthreads; i++)
            pthread_join(tids[i], NULL);
        pthread_barrier_destroy(&barrier);
        CHECK_EQ(reports_of(LFP_EDOUBLE), 0);
        CHECK_EQ(reports_of(LFP_ECORRUPT), 0);
        CHECK_EQ(reports_of(LFP_EFOREIGN), 0);
        CHECK_EQ(stats_of(pool).blocks_in_use, 0);
        verify_and_destroy(pool, 0);
        CHECK_EQ(reports_of(LFP_ELEAK), 0);
        free(handoff);
        free(ts);
        free(tids);
        note_failures(before, "threads", modes[m]);
    }
}

/* A handler may flush the calling thread's caches (lfp_thread_flush) while
 * lfp_alloc_bulk reports a block it takes: the rounds taken before the
 * report must be out of the thread's magazine by then, or the flush puts
 * them back in the depot while the caller gets them too. */
static void flush_and_record(lfp_pool *pool, void *ptr, int err, const char *what)
{
    record(pool, ptr, err, what);
    lfp_thread_flush();
}

static void a_handler_may_flush_the_threads_caches_during_a_bulk_alloc(void)
{
    enum { N = 32 };
    lfp_pool *pool = make_pool(BS, LFP_CHECKED);
    REQUIRE(stats_of(pool).cache_size >= 2);
    void *v[N], *w[N];
    CHECK_EQ(lfp_alloc_bulk(pool, v, N), N);
    CHECK_EQ(lfp_free_bulk(pool, v, N), LFP_OK);
    scribble(v[N - 1], BS - 1); /* the block freed last: the first out again */
    reports_reset();
    lfp_set_error_handler(flush_and_record);
    CHECK_EQ(lfp_alloc_bulk(pool, w, N), N);
    lfp_set_error_handler(record);
    CHECK(reported_once(LFP_ECORRUPT, v[N - 1]));
    qsort(w, N, sizeof w[0], cmp_addr);
    size_t twice = 0;
    for (size_t i = 1; i < N; i++)
        twice += w[i] == w[i - 1];
    CHECK_EQ(twice, 0);
    CHECK_EQ(stats_of(pool).blocks_in_use, N);
    CHECK_EQ(lfp_free_bulk(pool, w, N), LFP_OK);
    verify_and_destroy(pool, 0);
}

int main(void)
{
    REQUIRE(unsetenv("LFP_CHECKED") == 0);
    RUN(double_free_returns_edouble_and_leaves_the_pool_intact);
    RUN(double_free_within_one_bulk_call_frees_nothing);
    RUN(write_after_free_is_reported_at_the_next_alloc_of_that_block);
    RUN(zero_and_init_pools_are_checked_without_false_reports);
    RUN(foreign_pointers_are_reported_as_eforeign);
    RUN(destroy_reports_each_block_still_in_use_as_eleak);
    RUN(leak_reports_name_the_thread_that_allocated_the_block);
    RUN(growable_checked_pool_survives_trim_and_regrowth);
    RUN(environment_variable_turns_checked_mode_on);
    RUN(set_error_handler_returns_the_previous_one_and_null_restores_the_default);
    RUN(unchecked_pools_never_call_the_handler);
    RUN(a_handler_may_flush_the_threads_caches_during_a_bulk_alloc);
    RUN(threads_freeing_each_others_blocks_see_no_false_report);
    lfp_set_error_handler(NULL);
    return check_done();
}
