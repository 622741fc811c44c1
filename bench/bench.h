/* SPDX-License-Identifier: MIT */
/* Shared declarations of lfp-bench: the allocator interface every row goes
 * through, and the records the report is built from. */
#ifndef BENCH_H
#define BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "compiler.h"

/* Entries of one producer->consumer ring; also what a pool must hold per
 * ring on top of the blocks the threads keep. */
#define BENCH_RING_SIZE 1024u
/* Entries a ring's producer and consumer pass before publishing their
 * index (--burst; workloads.c, the ring). A power of two, at most
 * BENCH_BURST_MAX, so that it divides BENCH_RING_SIZE. 16 pointers fill
 * two cache lines of the ring's slots, which the consumer fetches from the
 * producer's core anyway: the index line then moves once per two of them
 * instead of once per block. */
#define BENCH_BURST 16u
#define BENCH_BURST_MAX 256u
_Static_assert(BENCH_RING_SIZE % BENCH_BURST_MAX == 0,
               "every burst must divide the ring, or the ring can stall");
/* Blocks one thread holds at once in the batch workload. */
#define BENCH_BATCH 1024u
/* Live objects each consumer keeps in the server workload. */
#define BENCH_WINDOW 128u

/* Blocks held at the peak of the spike workload unless --spike-blocks says
 * otherwise: this many bytes of blocks. */
#define BENCH_SPIKE_BYTES ((size_t)256 << 20)

enum bench_workload { W_PAIR, W_BATCH, W_XFER, W_SERVER, W_SPIKE, W_COUNT };

extern const char *const bench_workload_names[W_COUNT];

/* xfer and server free every block on another thread than the one that
 * allocated it (server: three in four). */
static inline int bench_is_cross(enum bench_workload w)
{
    return w == W_XFER || w == W_SERVER;
}

/* Where a row stands in the comparison: "vs best peer" divides by the best
 * BENCH_PEER row; the floor is what no thread-safe pool can beat. The
 * BENCH_OURS rows are lfpool's: t is the pool, and the timed loops call
 * lfp_alloc and lfp_free directly, as a program linked with liblfpool.a
 * does. Every other row is called through its alloc and free: a peer's are
 * stubs that jump through a pointer into its library, close to a PLT entry
 * (README, "Calls as a program makes them"); the in-tree lists' are their
 * code. */
enum bench_kind { BENCH_OURS, BENCH_PEER, BENCH_FLOOR };

/* What a measurement asks of an allocator, so that fixed pools can be sized
 * for it. */
struct bench_params {
    size_t size;       /* bytes per block */
    unsigned threads;  /* worker threads */
    size_t per_thread; /* most blocks one thread holds at once */
    size_t in_flight;  /* blocks travelling between threads, all rings */
    int grow;          /* spike: a growable pool starts empty and grows with
                          the load, instead of reserving these blocks */
};

/* One row, with a per-thread context. lfpool's rows (BENCH_OURS) are called
 * directly, the others through alloc and free. */
struct bench_alloc {
    const char *name;
    enum bench_kind kind;
    int cross_thread;    /* may a block be freed by another thread */
    const char *api;     /* what the row calls, for the header */
    const char *missing; /* NULL, or why the row cannot run here */
    /* Main thread, once per measurement; NULL on failure with err filled. */
    void *(*create)(const struct bench_alloc *a, const struct bench_params *p,
                    char *err, size_t errlen);
    /* Main thread, after all workers joined; nonzero (err filled) when the
     * allocator reports blocks still in use or another error. */
    int (*destroy)(void *g, char *err, size_t errlen);
    /* Worker thread, before the start barrier; NULL on failure. */
    void *(*thread_init)(void *g, unsigned tid);
    /* Worker thread, after its timed work; number of errors seen by free. */
    unsigned long (*thread_fini)(void *t);
    /* NULL for lfpool's rows (BENCH_OURS), whose loops call lfp_alloc and
     * lfp_free themselves. */
    void *(*alloc)(void *t);
    void (*free)(void *t, void *p);
    /* The thread that allocated and freed the blocks (some allocators trim
     * only the calling thread's heap or cache), after a thread_init: give
     * the memory of free blocks back to the OS; nonzero (err filled) when
     * the allocator refused. NULL when the row cannot: no_trim says why. */
    int (*trim)(void *g, char *err, size_t errlen);
    const char *trim_api; /* what trim calls, for the spike table */
    const char *no_trim;
    const void *priv; /* row-specific constant data (peer entry points) */
    unsigned index;   /* position in the table: picks the row's own copy of
                         the timed loops (workloads.c) */
};

/* The most rows the table has. */
#define BENCH_MAX_ROWS 11

/* Code a row has to itself: each row's copy of the timed loops
 * (workloads.c) and each peer's calls into its library (peers.c). Not
 * inlined, not folded into an identical copy (GCC's -fipa-icf; clang folds
 * nothing before the link), and on a cache line of its own
 * (LFP_FAST_ENTRY), so that every row's copy of the same code is laid out
 * alike and each indirect call in it sees one allocator only. */
#if defined(__has_attribute) && __has_attribute(no_icf)
#define BENCH_OWN_CODE LFP_NOINLINE LFP_FAST_ENTRY __attribute__((no_icf))
#else
#define BENCH_OWN_CODE LFP_NOINLINE LFP_FAST_ENTRY
#endif

/* Fill *out with every row, in report order; peers' libraries are loaded
 * here. Returns the number of rows. */
size_t bench_alloc_table(const struct bench_alloc **out, int sized_free);

/* lfp_config::cache_size for the lfpool rows (--cache). */
extern unsigned bench_lfp_cache;
/* lfp_config::slab_size for the lfpool-growable row (--slab). */
extern size_t bench_lfp_slab;

/* Before anything else runs: a peer that needs static TLS cannot be loaded
 * later unless the process was started with room for it; this re-executes
 * the program with that room when needed. Returns only if no re-exec was
 * needed or it failed. */
void bench_peers_early(char **argv);

/* Warn on f when malloc in the main program is not glibc's. */
void bench_check_glibc(FILE *f, int quiet);

/* One measured (or skipped) cell of the report. */
enum bench_status { BENCH_OK, BENCH_NA, BENCH_SKIPPED };

struct bench_result {
    const char *workload;
    unsigned threads; /* threads that ran */
    unsigned lanes;   /* threads (pair, batch) or producer/consumer pairs */
    unsigned burst;   /* xfer and server: --burst; 0 for the others */
    const struct bench_alloc *alloc;
    enum bench_status status;
    const char *note; /* why n/a or skipped */
    double ns_med;    /* ns per pair per lane: wall ns * lanes / pairs */
    double ns_min;
    double ns_max;
    double mops;      /* pairs per second across all threads, / 1e6 */
    unsigned reps;
    uint64_t ops;     /* pairs per lane per repetition */
    /* spike only; ns_med, ns_min and ns_max are then ns per block of a
     * cycle (alloc, touch, free, trim), reps the cycles and ops the blocks
     * per cycle. RSS figures are over the RSS before the first cycle. */
    double ms_cycle;     /* median ms per cycle */
    double peak_mib;     /* median RSS with every block allocated */
    double trimmed_mib;  /* median RSS after the free and the trim */
    double returned_pct; /* median share of the peak the trim gave back */
};

/* How to run one cell. */
struct bench_run_cfg {
    size_t size;          /* bytes per block */
    unsigned reps;        /* timed repetitions */
    uint64_t ops;         /* pairs per lane per repetition; 0: calibrate */
    unsigned duration_ms; /* target length of a repetition when calibrating */
    int pin;              /* pin thread i to cpus[i] when threads <= ncpus */
    const int *cpus;
    unsigned ncpus;
    uint64_t spike_blocks; /* blocks per spike cycle */
    uint64_t spike_keep;   /* every spike_keep-th block survives the trim; 0: none */
    unsigned burst;        /* ring entries per publication of an index */
};

/* One (workload, threads, allocator) cell: open creates the allocator and
 * warms it up (which also sizes a repetition), rep times one repetition,
 * close destroys the allocator and puts the median of the repetitions in
 * *res. The caller interleaves the cells of a table repetition by
 * repetition, so that a slow phase of a shared machine falls on every row
 * alike rather than on one. Each exits the program with a message when
 * the allocator fails, loses, corrupts or leaks blocks. lanes: threads for
 * pair and batch, producer/consumer pairs for xfer and server (threads =
 * 2 * lanes). */
struct bench_cell;
/* NULL when the allocator cannot be set up for this cell (a pool too large,
 * say): its reason, in err, goes into the row, and the run goes on. */
struct bench_cell *bench_cell_open(const struct bench_run_cfg *cfg,
                                   const struct bench_alloc *a, enum bench_workload w,
                                   unsigned threads, unsigned lanes,
                                   char *err, size_t errlen);
void bench_cell_rep(struct bench_cell *c);
void bench_cell_close(struct bench_cell *c, struct bench_result *res);

/* Measures one spike cell into *res: cfg->reps cycles on one thread of
 * allocating cfg->spike_blocks blocks, touching each, freeing them all and
 * calling a->trim, with the process's RSS read at the peak and after the
 * trim. Exits like bench_measure on failure; a refused trim makes the row
 * BENCH_SKIPPED with the allocator's message. */
void bench_measure_spike(const struct bench_run_cfg *cfg,
                         const struct bench_alloc *a, struct bench_result *res);

struct bench_meta {
    char cpu[128];
    long cores;
    long usable;          /* CPUs this process may run on, 0 unknown */
    double load;          /* 1-minute load average at start, -1 unknown */
    double other_cores;   /* cores other processes kept busy during the
                             run, on average; -1 unknown */
    size_t size;
    unsigned reps;
    const char *version;
    unsigned duration_ms; /* 0 when --ops fixed the count */
    uint64_t ops;         /* fixed count, or 0 */
    unsigned burst;       /* xfer and server: ring entries per publication;
                             0 when neither runs */
    int sized_free;
};

/* Report: tables on stdout, files on request. Results of one workload and
 * thread count are contiguous. */
void bench_print_header(FILE *f, const struct bench_meta *m,
                        const struct bench_alloc *rows, size_t nrows,
                        const int *selected);
void bench_print_group(FILE *f, const struct bench_result *r, size_t n,
                       const struct bench_result *all, size_t nall);
void bench_print_spike(FILE *f, const struct bench_result *r, size_t n, uint64_t keep);
int bench_write_json(const char *path, const struct bench_meta *m,
                     const struct bench_result *r, size_t n);
int bench_write_csv(const char *path, const struct bench_result *r, size_t n);
int bench_write_plot(const char *path, const struct bench_meta *m,
                     const struct bench_result *r, size_t n, int quiet);

#endif
