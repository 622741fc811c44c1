/* SPDX-License-Identifier: MIT */
/* Shared declarations of lfp-bench: the allocator interface every row goes
 * through, and the records the report is built from. */
#ifndef BENCH_H
#define BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Entries of one producer->consumer ring; also what a pool must hold per
 * ring on top of the blocks the threads keep. */
#define BENCH_RING_SIZE 1024u
/* Blocks one thread holds at once in the batch workload. */
#define BENCH_BATCH 1024u
/* Live objects each consumer keeps in the server workload. */
#define BENCH_WINDOW 128u

enum bench_workload { W_PAIR, W_BATCH, W_XFER, W_SERVER, W_COUNT };

extern const char *const bench_workload_names[W_COUNT];

/* xfer and server free every block on another thread than the one that
 * allocated it (server: three in four). */
static inline int bench_is_cross(enum bench_workload w)
{
    return w == W_XFER || w == W_SERVER;
}

/* Where a row stands in the comparison: "vs best peer" divides by the best
 * BENCH_PEER row; the floor is what no thread-safe pool can beat. */
enum bench_kind { BENCH_OURS, BENCH_PEER, BENCH_FLOOR };

/* What a measurement asks of an allocator, so that fixed pools can be sized
 * for it. */
struct bench_params {
    size_t size;       /* bytes per block */
    unsigned threads;  /* worker threads */
    size_t per_thread; /* most blocks one thread holds at once */
    size_t in_flight;  /* blocks travelling between threads, all rings */
};

/* One row. All rows are called the same way, through these pointers, with a
 * per-thread context, so call overhead is the same for every allocator. */
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
    void *(*alloc)(void *t);
    void (*free)(void *t, void *p);
    const void *priv; /* row-specific constant data (peer entry points) */
};

/* Fill *out with every row, in report order; peers' libraries are loaded
 * here. Returns the number of rows. */
size_t bench_alloc_table(const struct bench_alloc **out, int sized_free);

/* lfp_config::cache_size for the lfpool rows (--cache). */
extern unsigned bench_lfp_cache;

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
    const struct bench_alloc *alloc;
    enum bench_status status;
    const char *note; /* why n/a or skipped */
    double ns_med;    /* ns per pair per lane: wall ns * lanes / pairs */
    double ns_min;
    double ns_max;
    double mops;      /* pairs per second across all threads, / 1e6 */
    unsigned reps;
    uint64_t ops;     /* pairs per lane per repetition */
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
};

/* Measures one (workload, threads, allocator) cell into *res: allocator
 * created, warm-up, timed repetitions, allocator destroyed. Exits the
 * program with a message when the allocator fails, loses, corrupts or leaks
 * blocks. lanes: threads for pair and batch, producer/consumer pairs for xfer
 * and server (threads = 2 * lanes). */
void bench_measure(const struct bench_run_cfg *cfg, const struct bench_alloc *a,
                   enum bench_workload w, unsigned threads, unsigned lanes,
                   struct bench_result *res);

struct bench_meta {
    char cpu[128];
    long cores;
    double load;          /* 1-minute load average at start, -1 unknown */
    double other_cores;   /* cores other processes kept busy during the
                             run, on average; -1 unknown */
    size_t size;
    unsigned reps;
    const char *version;
    unsigned duration_ms; /* 0 when --ops fixed the count */
    uint64_t ops;         /* fixed count, or 0 */
    int sized_free;
};

/* Report: tables on stdout, files on request. Results of one workload and
 * thread count are contiguous. */
void bench_print_header(FILE *f, const struct bench_meta *m,
                        const struct bench_alloc *rows, size_t nrows,
                        const int *selected);
void bench_print_group(FILE *f, const struct bench_result *r, size_t n,
                       const struct bench_result *all, size_t nall);
int bench_write_json(const char *path, const struct bench_meta *m,
                     const struct bench_result *r, size_t n);
int bench_write_csv(const char *path, const struct bench_result *r, size_t n);
int bench_write_plot(const char *path, const struct bench_meta *m,
                     const struct bench_result *r, size_t n, int quiet);

#endif
