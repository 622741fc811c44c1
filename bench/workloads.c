/* SPDX-License-Identifier: MIT */
/* The workloads of lfp-bench and the timing around them. */
#include "bench.h"
#include <lfpool.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* The untimed warm-up grows until it lasts this long; it then also tells how
 * many pairs fill the requested duration. */
#define WARMUP_MS 20.0
#define WARMUP_START_OPS 16384u

#define MAX_OPS ((uint64_t)1 << 40)

/* Keeps the compiler from dropping or moving stores into a block across this
 * point: the block must really be touched. */
#define COMPILER_BARRIER() __asm__ volatile("" ::: "memory")

#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __asm__ volatile("pause" ::: "memory")
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ volatile("yield" ::: "memory")
#else
#define CPU_RELAX() COMPILER_BARRIER()
#endif

const char *const bench_workload_names[W_COUNT] = {"pair", "batch", "xfer",
                                                   "server", "spike"};

/* Results the checksum sink keeps alive: nothing the loops compute is dead. */
static volatile uint64_t checksum_sink;

static void put64(void *p, uint64_t v)
{
    memcpy(p, &v, sizeof v);
}

static uint64_t get64(const void *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static double ts_ns(const struct timespec *t)
{
    return (double)t->tv_sec * 1e9 + (double)t->tv_nsec;
}

/* ------------------------------------------------------------------------ */
/* Single-producer single-consumer ring. Each index lives on its own line and
 * each side keeps a private copy of the other's index, re-reading it only
 * when the ring looks full (or empty). Each side also publishes its own
 * index once per burst of entries (--burst) rather than per entry: a
 * consumer that has caught up re-reads the producer's index as soon as it
 * changes, and with a burst of 1 that fetch of a line the other core has
 * just written comes once per block, a cost added to every row's. On the
 * 2-core EPYC VM, three rounds of xfer taking turns: lfpool 52 to 61 ns a
 * pair with a burst of 1, 13.3 to 13.7 with 16; mimalloc 115 to 132 and
 * 115 to 128 (README, "Handing over in bursts"). The burst divides the
 * ring's size, so a full ring always ends a burst: a side waits only for
 * entries the other has not finished, never forever. */

struct ring {
    size_t burst_mask; /* --burst - 1; set before the threads start */
    _Alignas(64) _Atomic size_t head; /* written by the producer */
    _Alignas(64) _Atomic size_t tail; /* written by the consumer */
    _Alignas(64) void *slot[BENCH_RING_SIZE];
};

struct ring_end {
    size_t mine;   /* own index, only this thread writes it */
    size_t theirs; /* last seen value of the other index */
    size_t mask;   /* publish mine when (mine & mask) == 0 */
};

static struct ring_end ring_end_of(const struct ring *r)
{
    struct ring_end e = {0, 0, r->burst_mask};
    return e;
}

static void wait_a_bit(unsigned *spins)
{
    /* Spinning is right while the other side runs on another core; yielding
     * matters when threads outnumber cores. */
    if (++*spins < 128)
        CPU_RELAX();
    else
        sched_yield();
}

/* p NULL ends the stream: it is published at once. */
static void ring_push(struct ring *r, struct ring_end *e, void *p)
{
    unsigned spins = 0;
    while (e->mine - e->theirs == BENCH_RING_SIZE) {
        e->theirs = atomic_load_explicit(&r->tail, memory_order_acquire);
        if (e->mine - e->theirs == BENCH_RING_SIZE)
            wait_a_bit(&spins);
    }
    r->slot[e->mine % BENCH_RING_SIZE] = p;
    e->mine++;
    if ((e->mine & e->mask) == 0 || !p)
        atomic_store_explicit(&r->head, e->mine, memory_order_release);
}

static void *ring_pop(struct ring *r, struct ring_end *e)
{
    unsigned spins = 0;
    void *p;
    while (e->mine == e->theirs) {
        e->theirs = atomic_load_explicit(&r->head, memory_order_acquire);
        if (e->mine == e->theirs)
            wait_a_bit(&spins);
    }
    p = r->slot[e->mine % BENCH_RING_SIZE];
    e->mine++;
    if ((e->mine & e->mask) == 0)
        atomic_store_explicit(&r->tail, e->mine, memory_order_release);
    return p;
}

/* ------------------------------------------------------------------------ */
/* One measurement: threads, a start barrier, the timed loop. */

struct shared {
    const struct bench_alloc *a;
    void *g;
    enum bench_workload w;
    uint64_t ops; /* pairs per lane */
    unsigned threads;
    unsigned lanes;
    struct ring *rings;
    pthread_barrier_t start;
    atomic_int init_failed;
    int pin;
    const int *cpus;
    unsigned ncpus;
};

struct worker {
    _Alignas(64) struct shared *s;
    unsigned tid;
    pthread_t th;
    struct timespec t0, t1;
    uint64_t sum;
    uint64_t null_allocs;  /* allocation returned NULL */
    uint64_t bad_data;     /* a block's contents changed while it was ours */
    uint64_t lost;         /* a consumer saw fewer blocks than were sent */
    uint64_t sent;         /* server producer: blocks passed to the consumer */
    uint64_t received;     /* server consumer: blocks taken off the ring */
    int alloc_errno;       /* errno of the first NULL allocation */
    unsigned long free_errors;
    int init_failed;
};

typedef void *(*alloc_fn)(void *);
typedef void (*free_fn)(void *, void *);

/* One allocation; a failure is recorded on the worker (the run stops and
 * the report says why). */
static LFP_ALWAYS_INLINE void *take(struct worker *w, alloc_fn A, void *t)
{
    void *p = A(t);
    if (!p) {
        w->null_allocs++;
        w->alloc_errno = errno;
    }
    return p;
}

static LFP_ALWAYS_INLINE void run_pair(struct worker *w, void *t, alloc_fn A, free_fn F, uint64_t n)
{
    uint64_t i, sum = 0;
    for (i = 0; i < n; i++) {
        void *p = take(w, A, t);
        if (!p)
            break;
        put64(p, i);
        COMPILER_BARRIER();
        sum += get64(p);
        F(t, p);
    }
    w->sum = sum;
}

static LFP_ALWAYS_INLINE void run_batch(struct worker *w, void *t, alloc_fn A, free_fn F,
                      uint64_t n, void **held)
{
    uint64_t r, rounds = n / BENCH_BATCH, sum = 0;
    unsigned i, got;
    for (r = 0; r < rounds; r++) {
        uint64_t base = r * BENCH_BATCH;
        for (got = 0; got < BENCH_BATCH; got++) {
            void *p = take(w, A, t);
            if (!p)
                break;
            put64(p, base + got);
            held[got] = p;
        }
        COMPILER_BARRIER();
        /* Freed in allocation order, and each checked: a block handed out
         * twice in one batch shows up as a mismatch. */
        for (i = 0; i < got; i++) {
            uint64_t v = get64(held[i]);
            if (v != base + i)
                w->bad_data++;
            sum += v;
            F(t, held[i]);
        }
        if (got < BENCH_BATCH)
            break;
    }
    w->sum = sum;
}

static LFP_ALWAYS_INLINE void run_xfer_producer(struct worker *w, void *t, alloc_fn A,
                              struct ring *r, uint64_t n)
{
    struct ring_end e = ring_end_of(r);
    uint64_t i;
    for (i = 0; i < n; i++) {
        void *p = take(w, A, t);
        if (!p)
            break;
        put64(p, i);
        ring_push(r, &e, p);
    }
    ring_push(r, &e, NULL); /* end of stream */
}

static LFP_ALWAYS_INLINE void run_xfer_consumer(struct worker *w, void *t, free_fn F,
                              struct ring *r, uint64_t n)
{
    struct ring_end e = ring_end_of(r);
    uint64_t expect = 0, sum = 0;
    void *p;
    while ((p = ring_pop(r, &e)) != NULL) {
        uint64_t v = get64(p);
        if (v != expect)
            w->bad_data++;
        expect++;
        sum += v;
        F(t, p);
    }
    if (expect != n)
        w->lost += n - expect;
    w->sum = sum;
}

struct live {
    void *p;
    uint64_t tag;
};

static uint64_t seed_for(unsigned tid)
{
    return 0x9E3779B97F4A7C15ull * (tid + 1u) | 1u;
}

static LFP_ALWAYS_INLINE void run_server_producer(struct worker *w, void *t, alloc_fn A,
                                free_fn F, struct ring *r, uint64_t n)
{
    struct ring_end e = ring_end_of(r);
    /* Counts in locals, stored once at the end: with a store to the worker
     * for each block, server took 33.8 to 36.0 ns a pair on the 16-core VM,
     * and 22.3 to 24.5 so (README, "On 16 cores"). */
    uint64_t rng = seed_for(w->tid), i, sum = 0, sent = 0;
    for (i = 0; i < n; i++) {
        void *p = take(w, A, t);
        if (!p)
            break;
        put64(p, i);
        if ((xorshift64(&rng) & 3) == 0) {
            /* A short-lived object: used and dropped by its creator. */
            COMPILER_BARRIER();
            sum += get64(p);
            F(t, p);
        } else {
            ring_push(r, &e, p);
            sent++;
        }
    }
    ring_push(r, &e, NULL);
    w->sum = sum;
    w->sent = sent;
}

static LFP_ALWAYS_INLINE void run_server_consumer(struct worker *w, void *t, free_fn F,
                                struct ring *r, struct live *win)
{
    struct ring_end e = ring_end_of(r);
    uint64_t rng = seed_for(w->tid), sum = 0, last = 0, received = 0, bad = 0;
    unsigned k;
    void *p;
    memset(win, 0, BENCH_WINDOW * sizeof *win);
    while ((p = ring_pop(r, &e)) != NULL) {
        struct live old;
        k = (unsigned)(xorshift64(&rng) >> 32) % BENCH_WINDOW;
        old = win[k];
        win[k].p = p;
        win[k].tag = get64(p);
        /* The producer numbers its blocks in order: on arrival each number
         * is above the one before. */
        if (received++ != 0 && win[k].tag <= last)
            bad++;
        last = win[k].tag;
        if (old.p) {
            uint64_t v = get64(old.p);
            if (v != old.tag)
                bad++;
            sum += v;
            F(t, old.p);
        }
    }
    for (k = 0; k < BENCH_WINDOW; k++) {
        if (win[k].p) {
            if (get64(win[k].p) != win[k].tag)
                bad++;
            F(t, win[k].p);
        }
    }
    w->sum = sum;
    w->received = received;
    w->bad_data += bad;
}

static void pin_self(const struct shared *s, unsigned tid)
{
    cpu_set_t set;
    if (!s->pin || s->ncpus == 0 || s->threads > s->ncpus)
        return;
    CPU_ZERO(&set);
    CPU_SET(s->cpus[tid % s->ncpus], &set);
    /* Best effort: an unpinned run is still a valid run. */
    (void)pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static LFP_ALWAYS_INLINE void *worker_body(void *arg, alloc_fn A, free_fn F)
{
    struct worker *w = arg;
    struct shared *s = w->s;
    const struct bench_alloc *a = s->a;
    void **held = NULL;
    struct live *win = NULL;
    void *t;
    int producer = w->tid < s->lanes;
    struct ring *r = s->rings ? &s->rings[w->tid % s->lanes] : NULL;

    pin_self(s, w->tid);
    t = a->thread_init(s->g, w->tid);
    if (s->w == W_BATCH)
        held = malloc(BENCH_BATCH * sizeof *held);
    if (s->w == W_SERVER)
        win = malloc(BENCH_WINDOW * sizeof *win);
    if (!t || (s->w == W_BATCH && !held) || (s->w == W_SERVER && !win)) {
        w->init_failed = 1;
        atomic_store(&s->init_failed, 1);
    }
    pthread_barrier_wait(&s->start);
    clock_gettime(CLOCK_MONOTONIC, &w->t0);
    /* Every thread has passed init by now, so all agree whether to run: a
     * consumer must not wait for a producer that will never start. */
    if (!atomic_load(&s->init_failed)) {
        switch (s->w) {
        case W_PAIR:
            run_pair(w, t, A, F, s->ops);
            break;
        case W_BATCH:
            run_batch(w, t, A, F, s->ops, held);
            break;
        case W_XFER:
            if (producer)
                run_xfer_producer(w, t, A, r, s->ops);
            else
                run_xfer_consumer(w, t, F, r, s->ops);
            break;
        case W_SERVER:
            if (producer)
                run_server_producer(w, t, A, F, r, s->ops);
            else
                run_server_consumer(w, t, F, r, win);
            break;
        case W_SPIKE: /* bench_measure_spike */
        case W_COUNT:
            break;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &w->t1);
    if (t)
        w->free_errors = a->thread_fini(t);
    free(held);
    free(win);
    return NULL;
}

/* Each row's own copies of worker_body and spike_body (ROW_CODE, below),
 * into which the loops above (LFP_ALWAYS_INLINE) are inlined. */
struct row_code {
    void *(*worker)(void *);
    void *(*spike)(void *);
};
static const struct row_code row_code[BENCH_MAX_ROWS];

/* Runs the workload once; returns the wall time in ns from the first thread
 * leaving the barrier to the last one finishing, or a negative value after
 * printing what went wrong. */
static double run_once(struct shared *s, struct worker *ws)
{
    unsigned i, started = 0;
    double first = 0, last = 0;
    uint64_t sum = 0, nulls = 0, bad = 0, lost = 0;
    unsigned long ferr = 0;
    int init_failed = 0, rc, alloc_errno = 0;

    atomic_store(&s->init_failed, 0);
    if (s->rings) {
        for (i = 0; i < s->lanes; i++) {
            atomic_store(&s->rings[i].head, 0);
            atomic_store(&s->rings[i].tail, 0);
        }
    }
    rc = pthread_barrier_init(&s->start, NULL, s->threads);
    if (rc != 0) {
        fprintf(stderr, "lfp-bench: pthread_barrier_init: %s\n", strerror(rc));
        return -1;
    }
    for (i = 0; i < s->threads; i++) {
        memset(&ws[i], 0, sizeof ws[i]);
        ws[i].s = s;
        ws[i].tid = i;
    }
    for (i = 0; i < s->threads; i++) {
        rc = pthread_create(&ws[i].th, NULL, row_code[s->a->index].worker, &ws[i]);
        if (rc != 0) {
            fprintf(stderr, "lfp-bench: pthread_create: %s\n", strerror(rc));
            /* The started ones are stuck on the barrier; nothing sane is
             * left to do. */
            exit(2);
        }
        started++;
    }
    for (i = 0; i < started; i++)
        pthread_join(ws[i].th, NULL);
    pthread_barrier_destroy(&s->start);

    /* Server: producer i and consumer lanes + i share ring i. */
    for (i = 0; s->w == W_SERVER && i < s->lanes; i++) {
        uint64_t sent = ws[i].sent, got = ws[s->lanes + i].received;
        ws[i].lost += sent > got ? sent - got : got - sent;
    }
    for (i = 0; i < s->threads; i++) {
        double a = ts_ns(&ws[i].t0), b = ts_ns(&ws[i].t1);
        if (i == 0 || a < first)
            first = a;
        if (i == 0 || b > last)
            last = b;
        sum += ws[i].sum;
        nulls += ws[i].null_allocs;
        bad += ws[i].bad_data;
        lost += ws[i].lost;
        ferr += ws[i].free_errors;
        init_failed |= ws[i].init_failed;
        if (ws[i].null_allocs && !alloc_errno)
            alloc_errno = ws[i].alloc_errno;
    }
    checksum_sink += sum;
    if (init_failed) {
        fprintf(stderr, "lfp-bench: %s: per-thread setup failed\n", s->a->name);
        return -1;
    }
    if (nulls) {
        fprintf(stderr, "lfp-bench: %s: allocation returned NULL (%s)\n",
                s->a->name, strerror(alloc_errno));
        return -1;
    }
    if (bad || lost || ferr) {
        fprintf(stderr,
                "lfp-bench: %s: %llu blocks changed while allocated, %llu "
                "blocks lost, %lu failed frees\n",
                s->a->name, (unsigned long long)bad, (unsigned long long)lost,
                ferr);
        return -1;
    }
    return last - first;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v[0..n) (n > 0) and returns its median; of an even count, the mean
 * of the middle two. */
static double median(double *v, unsigned n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static uint64_t round_ops(enum bench_workload w, uint64_t ops)
{
    if (ops < 1)
        ops = 1;
    if (w == W_BATCH)
        ops = (ops + BENCH_BATCH - 1) / BENCH_BATCH * BENCH_BATCH;
    return ops;
}

struct bench_cell {
    struct shared s;
    struct worker *ws;
    double *ns;        /* wall time of each repetition so far */
    unsigned done, reps, lanes;
};

struct bench_cell *bench_cell_open(const struct bench_run_cfg *o, const struct bench_alloc *a,
                                   enum bench_workload w, unsigned threads, unsigned lanes,
                                   char *err, size_t errlen)
{
    struct bench_params p;
    struct bench_cell *c;
    struct shared *sp;
    struct worker *ws;
    double *ns, wall;
    uint64_t ops;
    unsigned i;

    memset(&p, 0, sizeof p);
    p.size = o->size;
    p.threads = threads;
    p.per_thread = w == W_BATCH ? BENCH_BATCH : w == W_SERVER ? BENCH_WINDOW : 1;
    p.in_flight = bench_is_cross(w) ? (size_t)lanes * (BENCH_RING_SIZE + 1) : 0;

    c = aligned_alloc(64, (sizeof *c + 63) & ~(size_t)63);
    ws = aligned_alloc(64, threads * sizeof *ws);
    ns = malloc(o->reps * sizeof *ns);
    if (!c || !ws || !ns) {
        fprintf(stderr, "lfp-bench: out of memory\n");
        exit(2);
    }
    memset(c, 0, sizeof *c);
    c->ws = ws;
    c->ns = ns;
    c->reps = o->reps;
    c->lanes = lanes;
    sp = &c->s;
    sp->a = a;
    sp->w = w;
    sp->threads = threads;
    sp->lanes = lanes;
    sp->pin = o->pin;
    sp->cpus = o->cpus;
    sp->ncpus = o->ncpus;
    if (bench_is_cross(w)) {
        sp->rings = aligned_alloc(64, lanes * sizeof *sp->rings);
        if (!sp->rings) {
            fprintf(stderr, "lfp-bench: out of memory\n");
            exit(2);
        }
        memset(sp->rings, 0, lanes * sizeof *sp->rings);
        for (i = 0; i < lanes; i++)
            sp->rings[i].burst_mask = o->burst - 1;
    }

    snprintf(err, errlen, "could not be set up");
    sp->g = a->create(a, &p, err, errlen);
    if (!sp->g) {
        free(sp->rings);
        free(ns);
        free(ws);
        free(c);
        return NULL;
    }

    /* Warm-up: first-touch page faults and the allocators' own start-up
     * stay out of the timed runs; its length also calibrates --duration-ms. */
    if (o->ops) {
        sp->ops = round_ops(w, o->ops / 10 > WARMUP_START_OPS ? o->ops / 10
                                                             : WARMUP_START_OPS);
        if (run_once(sp, ws) < 0)
            exit(1);
        ops = round_ops(w, o->ops);
    } else {
        sp->ops = round_ops(w, WARMUP_START_OPS);
        for (;;) {
            wall = run_once(sp, ws);
            if (wall < 0)
                exit(1);
            if (wall >= WARMUP_MS * 1e6 || sp->ops >= MAX_OPS / 8)
                break;
            sp->ops = round_ops(w, sp->ops * (wall < WARMUP_MS * 1e5 ? 8 : 2));
        }
        wall = (double)sp->ops * o->duration_ms * 1e6 / (wall > 1 ? wall : 1);
        ops = round_ops(w, wall < (double)MAX_OPS ? (uint64_t)wall : MAX_OPS);
    }

    sp->ops = ops;
    return c;
}

void bench_cell_rep(struct bench_cell *c)
{
    double wall = run_once(&c->s, c->ws);
    if (wall < 0)
        exit(1);
    c->ns[c->done++] = wall;
}

void bench_cell_close(struct bench_cell *c, struct bench_result *res)
{
    struct shared *s = &c->s;
    char err[256] = "";
    double wall;

    if (s->a->destroy(s->g, err, sizeof err) != 0) {
        fprintf(stderr, "lfp-bench: %s after %s with %u threads: %s\n", s->a->name,
                bench_workload_names[s->w], s->threads, err);
        exit(1);
    }
    wall = median(c->ns, c->done);
    res->status = BENCH_OK;
    res->reps = c->done;
    res->ops = s->ops;
    res->ns_med = wall / (double)s->ops;
    res->ns_min = c->ns[0] / (double)s->ops;
    res->ns_max = c->ns[c->done - 1] / (double)s->ops;
    res->mops = (double)s->ops * c->lanes / wall * 1e3;

    free(c->ns);
    free(c->ws);
    free(s->rings);
    free(c);
}

/* ------------------------------------------------------------------------ */
/* spike: one thread takes a peak of blocks, frees them all and asks the
 * allocator to give the memory back; the process's resident set says how
 * much it did. The peers share the process, so only changes of the RSS
 * compare. */

/* Resident bytes of the process, or 0 when unknown. Reads /proc/self/statm
 * into a buffer on the stack: a FILE would malloc, and the glibc row's heap
 * must hold only its own blocks. */
static size_t rss_bytes(void)
{
    char buf[128];
    unsigned long long pages, resident;
    long page = sysconf(_SC_PAGESIZE);
    ssize_t len;
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    len = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (len <= 0 || page <= 0)
        return 0;
    buf[len] = '\0';
    if (sscanf(buf, "%llu %llu", &pages, &resident) != 2)
        return 0;
    return (size_t)resident * (size_t)page;
}

struct spike {
    struct shared s;   /* allocator, pinning; threads = 1 */
    size_t size;
    size_t nblocks;
    size_t keep;       /* every keep-th block survives the trim; 0: none */
    void **held;       /* nblocks slots, resident before the baseline */
    unsigned cycles;
    double *ns, *peak, *after, *pct; /* per cycle; bytes over the baseline */
    uint64_t null_allocs, bad_data;
    int alloc_errno;
    unsigned long free_errors;
    int init_failed;
    int trim_failed;
    char err[256];
};

static double elapsed_ns(const struct timespec *a, const struct timespec *b)
{
    return ts_ns(b) - ts_ns(a);
}

static double over(size_t rss, size_t base)
{
    return rss > base ? (double)(rss - base) : 0;
}

/* One cycle; nonzero when it failed (recorded in k). The RSS reads stay
 * out of the time. */
static LFP_ALWAYS_INLINE int spike_cycle(struct spike *k, void *t, unsigned c, size_t base,
                                         alloc_fn A, free_fn F)
{
    const struct bench_alloc *a = k->s.a;
    struct timespec t0, t1, t2, t3;
    size_t i, got, peak;
    uint64_t sum = 0;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (got = 0; got < k->nblocks; got++) {
        void *p = A(t);
        if (!p) {
            k->null_allocs++;
            k->alloc_errno = errno;
            break;
        }
        /* Every byte: a spike's buffers are filled, and a large block's
         * pages are resident only once written. */
        memset(p, 0xA5, k->size);
        put64(p, got);
        k->held[got] = p;
    }
    COMPILER_BARRIER();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    peak = rss_bytes();
    clock_gettime(CLOCK_MONOTONIC, &t2);
    for (i = 0; i < got; i++) {
        uint64_t v = get64(k->held[i]);
        if (v != i)
            k->bad_data++;
        sum += v;
        if (k->keep == 0 || i % k->keep != 0)
            F(t, k->held[i]);
    }
    if (got == k->nblocks && a->trim(k->s.g, k->err, sizeof k->err) != 0)
        k->trim_failed = 1;
    clock_gettime(CLOCK_MONOTONIC, &t3);
    checksum_sink += sum;
    k->ns[c] = elapsed_ns(&t0, &t1) + elapsed_ns(&t2, &t3);
    k->peak[c] = over(peak, base);
    k->after[c] = over(rss_bytes(), base);
    k->pct[c] = k->peak[c] > 0 ? 100.0 * (k->peak[c] - k->after[c]) / k->peak[c] : 0;
    /* The survivors die before the next cycle, untimed, each checked
     * first: the trim must have left their memory as it was. */
    for (i = 0; k->keep != 0 && i < got; i += k->keep) {
        if (get64(k->held[i]) != i)
            k->bad_data++;
        F(t, k->held[i]);
    }
    return k->null_allocs || k->bad_data || k->trim_failed;
}

static LFP_ALWAYS_INLINE void *spike_body(void *arg, alloc_fn A, free_fn F)
{
    struct spike *k = arg;
    size_t base;
    unsigned c;
    void *t;

    pin_self(&k->s, 0);
    t = k->s.a->thread_init(k->s.g, 0);
    if (!t) {
        k->init_failed = 1;
        return NULL;
    }
    memset(k->held, 0, k->nblocks * sizeof *k->held);
    /* Once, before the first cycle: memory an allocator keeps after its
     * trim then shows in every later cycle's "after", and a later baseline
     * would hide it. */
    base = rss_bytes();
    for (c = 0; c < k->cycles; c++)
        if (spike_cycle(k, t, c, base, A, F) != 0)
            break;
    k->free_errors = k->s.a->thread_fini(t);
    return NULL;
}

/* lfpool's rows (BENCH_OURS): inlined into the loops, these leave the
 * direct calls a program linked with liblfpool.a makes. Through a stub of
 * their own, as the other rows are called, lfpool's pair took 2.55 to 2.58
 * ns instead of 2.30 to 2.31 on the 2-core AMD EPYC VM: the stub's jump
 * costs it about a cycle there (README, "Calls as a program makes them").
 * A free that failed leaves its block in use, and the row's destroy
 * reports it. */
static LFP_ALWAYS_INLINE void *lfpool_alloc(void *t)
{
    return lfp_alloc(t);
}

static LFP_ALWAYS_INLINE void lfpool_free(void *t, void *p)
{
    (void)lfp_free(t, p);
}

/* Each row runs the loops from its own copy of the worker (and of the
 * spike's), so that every call site of an allocator's alloc and free only
 * ever sees that allocator, as the call sites of a program do. Through one
 * shared copy, those indirect calls see every row in turn, and the branch
 * predictor charges each row for the others: on the 2-core AMD EPYC VM,
 * lfpool's pair took 3.2 to 3.7 ns a pair after another row against 2.8
 * when it ran alone (README, "Each row with call sites of its own"). Each
 * copy holds the loops twice: calling lfp_alloc and lfp_free, for lfpool's
 * rows, and through the row's alloc and free, for the others. */
/* BODY of the row a runs, with lfpool's calls or the row's alloc and free. */
#define ROW_BODY(BODY, arg, a)                                             \
    ((a)->kind == BENCH_OURS ? BODY(arg, lfpool_alloc, lfpool_free)        \
                             : BODY(arg, (a)->alloc, (a)->free))
#define ROW_CODE(N)                                                        \
    static BENCH_OWN_CODE void *worker_main_##N(void *arg)                 \
    {                                                                      \
        return ROW_BODY(worker_body, arg, ((struct worker *)arg)->s->a);   \
    }                                                                      \
    static BENCH_OWN_CODE void *spike_main_##N(void *arg)                  \
    {                                                                      \
        return ROW_BODY(spike_body, arg, ((struct spike *)arg)->s.a);      \
    }
ROW_CODE(0)
ROW_CODE(1)
ROW_CODE(2)
ROW_CODE(3)
ROW_CODE(4)
ROW_CODE(5)
ROW_CODE(6)
ROW_CODE(7)
ROW_CODE(8)
ROW_CODE(9)
ROW_CODE(10)

#define ROW_ENTRY(N) {worker_main_##N, spike_main_##N}
static const struct row_code row_code[BENCH_MAX_ROWS] = {
    ROW_ENTRY(0), ROW_ENTRY(1), ROW_ENTRY(2), ROW_ENTRY(3),
    ROW_ENTRY(4), ROW_ENTRY(5), ROW_ENTRY(6), ROW_ENTRY(7),
    ROW_ENTRY(8), ROW_ENTRY(9), ROW_ENTRY(10),
};
_Static_assert(BENCH_MAX_ROWS == 11, "a ROW_CODE and a ROW_ENTRY per row");

void bench_measure_spike(const struct bench_run_cfg *o, const struct bench_alloc *a,
                         struct bench_result *res)
{
    const double mib = 1024.0 * 1024.0;
    struct bench_params p;
    struct spike k;
    char err[256] = "";
    size_t held_bytes;
    pthread_t th;
    double *buf;
    int rc;

    memset(&k, 0, sizeof k);
    k.s.a = a;
    k.s.w = W_SPIKE;
    k.s.threads = 1;
    k.s.lanes = 1;
    k.s.pin = o->pin;
    k.s.cpus = o->cpus;
    k.s.ncpus = o->ncpus;
    k.size = o->size;
    k.nblocks = (size_t)o->spike_blocks;
    k.keep = (size_t)o->spike_keep;
    k.cycles = o->reps;

    /* The pointer array is mapped, not malloc'd: in glibc's heap it would
     * sit among the glibc row's blocks. */
    held_bytes = k.nblocks * sizeof *k.held;
    k.held = mmap(NULL, held_bytes, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    buf = calloc(4 * (size_t)k.cycles, sizeof *buf);
    if (k.held == MAP_FAILED || !buf) {
        fprintf(stderr, "lfp-bench: spike: no memory for %zu block pointers\n",
                k.nblocks);
        exit(2);
    }
    k.ns = buf;
    k.peak = buf + k.cycles;
    k.after = buf + 2 * k.cycles;
    k.pct = buf + 3 * k.cycles;

    memset(&p, 0, sizeof p);
    p.size = o->size;
    p.threads = 1;
    p.per_thread = k.nblocks;
    p.grow = 1;
    k.s.g = a->create(a, &p, err, sizeof err);
    if (!k.s.g) {
        fprintf(stderr, "lfp-bench: %s: %s\n", a->name, err);
        exit(1);
    }

    rc = pthread_create(&th, NULL, row_code[a->index].spike, &k);
    if (rc != 0) {
        fprintf(stderr, "lfp-bench: pthread_create: %s\n", strerror(rc));
        exit(2);
    }
    pthread_join(th, NULL);

    if (k.init_failed) {
        fprintf(stderr, "lfp-bench: %s: per-thread setup failed\n", a->name);
        exit(1);
    }
    if (k.null_allocs) {
        fprintf(stderr, "lfp-bench: %s: allocation returned NULL (%s)\n",
                a->name, strerror(k.alloc_errno));
        exit(1);
    }
    if (k.bad_data || k.free_errors) {
        fprintf(stderr, "lfp-bench: %s: %llu blocks changed while allocated, "
                        "%lu failed frees\n",
                a->name, (unsigned long long)k.bad_data, k.free_errors);
        exit(1);
    }
    if (a->destroy(k.s.g, err, sizeof err) != 0) {
        fprintf(stderr, "lfp-bench: %s after spike: %s\n", a->name, err);
        exit(1);
    }
    munmap(k.held, held_bytes);

    if (k.trim_failed) {
        res->status = BENCH_SKIPPED;
        res->note = strdup(k.err); /* kept until the program ends */
        if (!res->note)
            res->note = "the trim failed";
    } else {
        res->status = BENCH_OK;
        res->reps = k.cycles;
        res->ops = k.nblocks;
        res->ms_cycle = median(k.ns, k.cycles) / 1e6;
        res->ns_med = res->ms_cycle * 1e6 / (double)k.nblocks;
        res->ns_min = k.ns[0] / (double)k.nblocks;
        res->ns_max = k.ns[k.cycles - 1] / (double)k.nblocks;
        res->mops = (double)k.nblocks / (res->ms_cycle * 1e3);
        res->peak_mib = median(k.peak, k.cycles) / mib;
        res->trimmed_mib = median(k.after, k.cycles) / mib;
        res->returned_pct = median(k.pct, k.cycles);
    }
    free(buf);
}
