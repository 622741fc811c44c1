/* SPDX-License-Identifier: MIT */
/* lfp-bench: lfpool side by side with general-purpose allocators, a
 * mutex-guarded free list and a thread-local free list, on five workloads.
 * Run with --help for the options and what the numbers mean. */
#include "bench.h"

#include <lfpool.h>

#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 256u
#define DEFAULT_REPS 5u
#define DEFAULT_DURATION_MS 100u

/* ------------------------------------------------------------------------ */
/* Options. */

struct options {
    unsigned threads[MAX_THREADS];
    unsigned nthreads;
    size_t size;
    uint64_t ops;
    uint64_t spike_blocks; /* 0: BENCH_SPIKE_BYTES of blocks */
    uint64_t spike_keep;   /* 0: free every block before the trim */
    unsigned burst;        /* ring entries per publication of an index */
    unsigned duration_ms;
    unsigned reps;
    int use_alloc[16];
    int use_workload[W_COUNT];
    const char *json, *csv, *plot;
    int quiet;
    int pin;
    int sized_free;
};

static void usage(FILE *f)
{
    fprintf(f,
"usage: lfp-bench [options]\n"
"\n"
"Measures lfpool and other allocators side by side, each called as a\n"
"program calls it: lfp_alloc and lfp_free directly (liblfpool.a is linked\n"
"in), a peer through a stub that jumps into its shared library (close to\n"
"a PLT entry). Each row runs its own copy of the timed loops (so that its\n"
"call sites see no other row), and every block is written and read.\n"
"\n"
"Workloads (--workload):\n"
"  pair    each thread: allocate, touch, free; repeat\n"
"  batch   each thread: allocate %u blocks, then free them in order; repeat\n"
"  xfer    producers allocate and pass blocks through one %u-entry ring\n"
"          each to a consumer, which frees them (cross-thread free); each\n"
"          side publishes its place in the ring once per --burst blocks\n"
"  server  like xfer, but a quarter of the blocks die at the producer and\n"
"          each consumer keeps %u live blocks, freeing a random one per\n"
"          block received\n"
"  spike   one thread, per cycle: allocate --spike-blocks blocks and write\n"
"          each whole, free them all, then ask the allocator to give memory\n"
"          back (lfpool-growable: lfp_pool_trim; glibc: malloc_trim(0);\n"
"          jemalloc: mallctl arena.<all>.purge; mimalloc: mi_collect(true);\n"
"          tcmalloc: MallocExtension_ReleaseFreeMemory). Reports ms per\n"
"          cycle (trim included), ns per block, and the process's RSS (from\n"
"          /proc/self/statm) at the peak and after the trim, both over the\n"
"          RSS before the first cycle, and the share of the peak given back.\n"
"          Rows that cannot give memory back are skipped; --reps sets the\n"
"          cycles, --threads does not apply. With --spike-keep N every N-th\n"
"          block stays allocated over the trim (scattered survivors, as a\n"
"          server's long-lived objects), freed after the RSS is read.\n"
"  xfer and server use max(1, T/2) producers and as many consumers for a\n"
"  thread count T, so T=1 runs as 2 threads, and T=1 and T=2 are the same\n"
"  measurement (done once).\n"
"\n"
"Allocators (--alloc): lfpool, lfpool-nocache, lfpool-growable,\n"
"  lfpool-checked (LFP_CHECKED: the cost of checked mode), glibc, jemalloc,\n"
"  mimalloc, tcmalloc, mutex-list, treiber-list, tl-list. Peers (glibc,\n"
"  jemalloc, mimalloc, tcmalloc, mutex-list, treiber-list: lfpool's bare\n"
"  lock-free stack, no cache) set \"vs best peer\"; tl-list is a per-thread list\n"
"  without atomics, the floor no thread-safe pool can beat, and cannot run\n"
"  xfer or server. jemalloc, mimalloc and tcmalloc are loaded at run time\n"
"  with dlopen and skipped when absent.\n"
"\n",
            BENCH_BATCH, BENCH_RING_SIZE, BENCH_WINDOW);
    fprintf(f,
"Options:\n"
"  --threads LIST      thread counts, comma separated, run in ascending order\n"
"                      (default 1..cores, or powers of two and the core count\n"
"                      above 4 cores; cores: those this process may run on)\n"
"  --size N            block size in bytes, 8..65536 (default 64)\n"
"  --duration-ms N     target length of one timed repetition; the pair\n"
"                      count per thread is calibrated from the warm-up\n"
"                      (default %u)\n"
"  --ops N             fix the pairs per thread (per producer for xfer and\n"
"                      server) instead; overrides --duration-ms\n"
"  --reps N            timed repetitions, every row of every thread count\n"
"                      of a workload taking turns; the median is reported\n"
"                      (default %u)\n"
"  --spike-blocks N    blocks per spike cycle (default: %zu MiB of blocks of\n"
"                      --size bytes)\n"
"  --spike-keep N      keep every N-th block of a spike cycle allocated over\n"
"                      the trim (default 0: none)\n"
"  --burst N           xfer and server: blocks a ring's producer passes (and\n"
"                      its consumer takes) before publishing its index, a\n"
"                      power of two up to %u (default %u; 1: every block\n"
"                      on its own, so that the consumer fetches the\n"
"                      producer's index line once per block)\n"
"  --alloc LIST        allocators to run (default all)\n"
"  --workload LIST     workloads to run (default all)\n"
"  --sized-free        free through the peers' sized calls (sdallocx,\n"
"                      mi_free_size, tc_free_sized)\n"
"  --no-pin            do not pin thread i to the i-th allowed CPU\n"
"  --cache N           blocks per magazine for the lfpool rows (default 0:\n"
"                      the library's choice)\n"
"  --slab N            slab_size for the lfpool-growable row, at most 1 GiB\n"
"                      (default 0: the library's choice)\n"
"  --json FILE         write every measurement as JSON\n"
"  --csv FILE          write every measurement as CSV\n"
"  --plot FILE         bar chart: PNG through gnuplot when it is on PATH,\n"
"                      else SVG; a name ending in .svg always gets SVG\n"
"  --quiet             no progress, no notes\n"
"  --help              this text\n"
"\n"
"ns/pair is the cost of one allocation plus its free in one lane: wall time\n"
"x lanes / pairs, where a lane is a thread (pair, batch) or a producer with\n"
"its consumer (xfer, server); flat across thread counts means perfect\n"
"scaling. Mops/s counts pairs per second of all threads together. Each\n"
"measurement: one untimed warm-up, then the timed repetitions, all threads\n"
"starting together on a barrier.\n",
            DEFAULT_DURATION_MS, DEFAULT_REPS, BENCH_SPIKE_BYTES >> 20,
            BENCH_BURST_MAX, BENCH_BURST);
}

static unsigned allowed_cpus(int *cpus, unsigned max)
{
    cpu_set_t set;
    unsigned n = 0;
    int i;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return 0;
    for (i = 0; i < CPU_SETSIZE && n < max; i++)
        if (CPU_ISSET(i, &set))
            cpus[n++] = i;
    return n;
}

/* How many CPUs this process may run on (its affinity mask: a container or
 * taskset may allow fewer than are online), else the online count. */
static long usable_cpus(void)
{
    int cpus[CPU_SETSIZE];
    unsigned n = allowed_cpus(cpus, CPU_SETSIZE);
    return n > 0 ? (long)n : sysconf(_SC_NPROCESSORS_ONLN);
}

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    unsigned long long v;
    if (!*s || *s == '-')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* The number an option takes, lo..hi; on a bad one, says so. */
static int option_u64(const char *name, const char *s, uint64_t lo, uint64_t hi,
                      uint64_t *out)
{
    if (parse_u64(s, lo, hi, out) == 0)
        return 0;
    fprintf(stderr, "lfp-bench: --%s takes %llu..%llu\n", name, (unsigned long long)lo,
            (unsigned long long)hi);
    return -1;
}

/* Calls fn for each item of a comma list. Works on a copy: argv must stay
 * intact for a re-execution. */
static int each_item(const char *list, int (*fn)(const char *item, void *ctx),
                     void *ctx)
{
    char *copy = strdup(list), *save = NULL, *tok;
    int any = 0, rc = 0;
    if (!copy)
        return -1;
    for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (fn(tok, ctx) != 0) {
            rc = -1;
            break;
        }
        any = 1;
    }
    free(copy);
    return rc == 0 && any ? 0 : -1;
}

static int add_thread(const char *item, void *ctx)
{
    struct options *o = ctx;
    uint64_t v;
    unsigned i;
    if (parse_u64(item, 1, MAX_THREADS, &v) != 0) {
        fprintf(stderr, "lfp-bench: bad thread count '%s' (1..%u)\n", item,
                MAX_THREADS);
        return -1;
    }
    for (i = 0; i < o->nthreads; i++)
        if (o->threads[i] == v)
            return 0;
    o->threads[o->nthreads++] = (unsigned)v;
    return 0;
}

static const char *const row_names[] = {"lfpool", "lfpool-nocache", "lfpool-growable",
                                        "lfpool-checked", "glibc", "jemalloc", "mimalloc",
                                        "tcmalloc", "mutex-list", "treiber-list", "tl-list"};
#define NROW_NAMES (sizeof row_names / sizeof row_names[0])

static size_t row_index(const char *name)
{
    size_t i;
    for (i = 0; i < NROW_NAMES; i++)
        if (strcmp(name, row_names[i]) == 0)
            break;
    return i;
}

/* Row names are checked before the peers are loaded, so that a typo does
 * not cost a library load. */
static int add_alloc(const char *item, void *ctx)
{
    int *use = ctx;
    size_t i = row_index(item);
    if (i == NROW_NAMES) {
        fprintf(stderr, "lfp-bench: unknown allocator '%s'\n", item);
        return -1;
    }
    use[i] = 1;
    return 0;
}

static int add_workload(const char *item, void *ctx)
{
    int *use = ctx;
    int i;
    for (i = 0; i < W_COUNT; i++) {
        if (strcmp(item, bench_workload_names[i]) == 0) {
            use[i] = 1;
            return 0;
        }
    }
    fprintf(stderr, "lfp-bench: unknown workload '%s'\n", item);
    return -1;
}

static int parse_options(int argc, char **argv, struct options *o)
{
    enum { O_THREADS = 256, O_SIZE, O_OPS, O_DUR, O_REPS, O_ALLOC, O_WORK,
           O_JSON, O_CSV, O_PLOT, O_QUIET, O_NOPIN, O_SIZED, O_CACHE,
           O_SPIKE, O_KEEP, O_SLAB, O_BURST, O_HELP };
    static const struct option longopts[] = {
        {"threads", required_argument, NULL, O_THREADS},
        {"size", required_argument, NULL, O_SIZE},
        {"ops", required_argument, NULL, O_OPS},
        {"duration-ms", required_argument, NULL, O_DUR},
        {"reps", required_argument, NULL, O_REPS},
        {"alloc", required_argument, NULL, O_ALLOC},
        {"workload", required_argument, NULL, O_WORK},
        {"json", required_argument, NULL, O_JSON},
        {"csv", required_argument, NULL, O_CSV},
        {"plot", required_argument, NULL, O_PLOT},
        {"quiet", no_argument, NULL, O_QUIET},
        {"no-pin", no_argument, NULL, O_NOPIN},
        {"sized-free", no_argument, NULL, O_SIZED},
        {"cache", required_argument, NULL, O_CACHE},
        {"spike-blocks", required_argument, NULL, O_SPIKE},
        {"spike-keep", required_argument, NULL, O_KEEP},
        {"slab", required_argument, NULL, O_SLAB},
        {"burst", required_argument, NULL, O_BURST},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    int c, any_alloc = 0, any_work = 0;
    uint64_t v;
    unsigned i;

    memset(o, 0, sizeof *o);
    o->size = 64;
    o->duration_ms = DEFAULT_DURATION_MS;
    o->reps = DEFAULT_REPS;
    o->burst = BENCH_BURST;
    o->pin = 1;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case O_THREADS:
            o->nthreads = 0;
            if (each_item(optarg, add_thread, o) != 0)
                return -1;
            break;
        case O_SIZE:
            if (option_u64("size", optarg, 8, 65536, &v) != 0)
                return -1;
            o->size = (size_t)v;
            break;
        case O_OPS:
            if (option_u64("ops", optarg, 1, (uint64_t)1 << 40, &o->ops) != 0)
                return -1;
            break;
        case O_DUR:
            if (option_u64("duration-ms", optarg, 1, 600000, &v) != 0)
                return -1;
            o->duration_ms = (unsigned)v;
            break;
        case O_REPS:
            if (option_u64("reps", optarg, 1, 1000, &v) != 0)
                return -1;
            o->reps = (unsigned)v;
            break;
        case O_ALLOC:
            any_alloc = 1;
            if (each_item(optarg, add_alloc, o->use_alloc) != 0)
                return -1;
            break;
        case O_WORK:
            any_work = 1;
            if (each_item(optarg, add_workload, o->use_workload) != 0)
                return -1;
            break;
        case O_JSON:
            o->json = optarg;
            break;
        case O_CSV:
            o->csv = optarg;
            break;
        case O_PLOT:
            o->plot = optarg;
            break;
        case O_QUIET:
            o->quiet = 1;
            break;
        case O_NOPIN:
            o->pin = 0;
            break;
        case O_SIZED:
            o->sized_free = 1;
            break;
        case O_CACHE:
            if (option_u64("cache", optarg, 0, LFP_CACHE_MAX, &v) != 0)
                return -1;
            bench_lfp_cache = (unsigned)v;
            break;
        case O_SPIKE:
            /* The pointer array alone is 8 bytes a block. */
            if (option_u64("spike-blocks", optarg, 1, (uint64_t)1 << 32, &o->spike_blocks) != 0)
                return -1;
            break;
        case O_SLAB:
            /* lfp_pool_create says which sizes it takes (powers of two
             * from 64 KiB to 1 GiB); the bound here reports a size above
             * them before any row runs. */
            if (option_u64("slab", optarg, 0, (uint64_t)1 << 30, &v) != 0)
                return -1;
            bench_lfp_slab = (size_t)v;
            break;
        case O_KEEP:
            if (option_u64("spike-keep", optarg, 0, (uint64_t)1 << 32, &o->spike_keep) != 0)
                return -1;
            break;
        case O_BURST:
            if (parse_u64(optarg, 1, BENCH_BURST_MAX, &v) != 0 || (v & (v - 1)) != 0) {
                fprintf(stderr, "lfp-bench: --burst takes a power of two, 1..%u\n",
                        BENCH_BURST_MAX);
                return -1;
            }
            o->burst = (unsigned)v;
            break;
        case O_HELP:
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "lfp-bench: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (!any_alloc)
        for (i = 0; i < NROW_NAMES; i++)
            o->use_alloc[i] = 1;
    if (!any_work)
        for (i = 0; i < W_COUNT; i++)
            o->use_workload[i] = 1;
    if (o->spike_blocks == 0)
        o->spike_blocks = BENCH_SPIKE_BYTES / o->size;
    if (o->nthreads == 0) {
        long n = usable_cpus();
        unsigned cores = n < 1 ? 1 : n > (long)MAX_THREADS ? MAX_THREADS : (unsigned)n;
        if (cores <= 4) {
            for (i = 1; i <= cores; i++)
                o->threads[o->nthreads++] = i;
        } else {
            for (i = 1; i < cores; i *= 2)
                o->threads[o->nthreads++] = i;
            o->threads[o->nthreads++] = cores;
        }
    }
    /* Ascending: the tables come out in that order, and each one's per-lane
     * column compares with a smaller thread count measured before it. */
    for (i = 1; i < o->nthreads; i++) {
        unsigned v = o->threads[i], j = i;
        for (; j > 0 && o->threads[j - 1] > v; j--)
            o->threads[j] = o->threads[j - 1];
        o->threads[j] = v;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */

static void cpu_model(char *buf, size_t len)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    snprintf(buf, len, "unknown CPU");
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        char *colon;
        if (strncmp(line, "model name", 10) != 0)
            continue;
        colon = strchr(line, ':');
        if (colon) {
            colon++;
            while (*colon == ' ' || *colon == '\t')
                colon++;
            colon[strcspn(colon, "\n")] = '\0';
            snprintf(buf, len, "%s", colon);
        }
        break;
    }
    fclose(f);
}

static double load_average(void)
{
    FILE *f = fopen("/proc/loadavg", "r");
    double v = -1;
    if (f) {
        if (fscanf(f, "%lf", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

/* CPU time all processes spent busy, from /proc/stat, in seconds; -1 when
 * unknown. */
static double busy_seconds(void)
{
    FILE *f = fopen("/proc/stat", "r");
    unsigned long long v[8] = {0};
    double busy = -1;
    long hz = sysconf(_SC_CLK_TCK);
    if (!f)
        return -1;
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
               &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) == 8 && hz > 0)
        busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)hz;
    fclose(f);
    return busy;
}

static double own_seconds(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double wall_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

struct progress {
    unsigned done, total;
    int tty, quiet;
};

static void show_progress(struct progress *pg, const char *w, const char *a,
                          unsigned threads)
{
    pg->done++;
    if (pg->quiet || !pg->tty)
        return;
    fprintf(stderr, "\r\033[K[%u/%u] %s %s %ut", pg->done, pg->total, w, a,
            threads);
    fflush(stderr);
}

static void clear_progress(const struct progress *pg)
{
    if (!pg->quiet && pg->tty) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
}

/* Threads a cell of workload w runs for a requested count t, and its lanes:
 * xfer and server pair producers with consumers, spike runs on one thread. */
static unsigned cell_threads(enum bench_workload w, unsigned t, unsigned *lanes)
{
    if (w == W_SPIKE)
        t = 1;
    *lanes = t;
    if (bench_is_cross(w)) {
        *lanes = t / 2 > 0 ? t / 2 : 1;
        t = 2 * *lanes;
    }
    return t;
}

int main(int argc, char **argv)
{
    struct options o;
    const struct bench_alloc *rows;
    size_t nrows, nres = 0, ncells = 0, i, r, k;
    unsigned rep;
    struct bench_result *res;
    /* The open cells of the workload being measured: by thread count (in
     * the order of its tables), then row. */
    struct bench_cell **cells;
    struct bench_meta meta;
    struct progress pg;
    struct bench_run_cfg cfg;
    unsigned t, done_threads[W_COUNT][MAX_THREADS * 2 + 1];
    int cpus[1024];
    unsigned ncpus;
    char version[32];
    int w, rc = 0;
    double busy0, own0, wall0, busy1, own1, wall1;

    if (parse_options(argc, argv, &o) != 0)
        return 2;
    if (o.use_alloc[row_index("jemalloc")])
        bench_peers_early(argv);
    nrows = bench_alloc_table(&rows, o.sized_free);
    /* --alloc was matched against row_names; the table must agree. */
    if (nrows != NROW_NAMES) {
        fprintf(stderr, "lfp-bench: allocator table out of step\n");
        return 2;
    }
    for (i = 0; i < nrows; i++) {
        if (strcmp(rows[i].name, row_names[i]) != 0) {
            fprintf(stderr, "lfp-bench: allocator table out of step\n");
            return 2;
        }
    }
    ncpus = allowed_cpus(cpus, sizeof cpus / sizeof cpus[0]);
    memset(&cfg, 0, sizeof cfg);
    cfg.size = o.size;
    cfg.reps = o.reps;
    cfg.ops = o.ops;
    cfg.duration_ms = o.duration_ms;
    cfg.pin = o.pin;
    cfg.cpus = cpus;
    cfg.ncpus = ncpus;
    cfg.spike_blocks = o.spike_blocks;
    cfg.spike_keep = o.spike_keep;
    cfg.burst = o.burst;

    memset(&meta, 0, sizeof meta);
    cpu_model(meta.cpu, sizeof meta.cpu);
    meta.cores = sysconf(_SC_NPROCESSORS_ONLN);
    meta.usable = ncpus;
    meta.load = load_average();
    meta.other_cores = -1;
    meta.size = o.size;
    meta.reps = o.reps;
    snprintf(version, sizeof version, "%d.%d.%d", LFP_VERSION / 10000,
             LFP_VERSION / 100 % 100, LFP_VERSION % 100);
    meta.version = version;
    meta.duration_ms = o.ops ? 0 : o.duration_ms;
    meta.ops = o.ops;
    meta.sized_free = o.sized_free;
    meta.burst = o.use_workload[W_XFER] || o.use_workload[W_SERVER] ? o.burst : 0;

    bench_print_header(stdout, &meta, rows, nrows, o.use_alloc);
    bench_check_glibc(o.quiet ? stderr : stdout, o.quiet);

    /* Cells, in report order: workload, thread count, allocator. */
    memset(done_threads, 0, sizeof done_threads);
    pg.done = 0;
    pg.total = 0;
    pg.tty = isatty(STDERR_FILENO);
    pg.quiet = o.quiet;
    for (w = 0; w < W_COUNT; w++) {
        if (!o.use_workload[w])
            continue;
        for (t = 0; t < o.nthreads; t++) {
            unsigned lanes;
            unsigned th = cell_threads((enum bench_workload)w, o.threads[t], &lanes);
            if (done_threads[w][th])
                continue;
            done_threads[w][th] = 1;
            /* A progress step per cell opened and per repetition of it. */
            for (r = 0; r < nrows; r++) {
                ncells += o.use_alloc[r] != 0;
                pg.total += o.use_alloc[r] != 0 ? 1 + (w == W_SPIKE ? 0 : cfg.reps) : 0;
            }
        }
    }
    res = calloc(ncells ? ncells : 1, sizeof *res);
    cells = calloc((size_t)o.nthreads * nrows, sizeof *cells);
    if (!res || !cells) {
        fprintf(stderr, "lfp-bench: out of memory\n");
        return 2;
    }
    memset(done_threads, 0, sizeof done_threads);
    if (!o.quiet) {
        for (t = 0; t < o.nthreads; t++) {
            if (o.threads[t] % 2 && (o.use_workload[W_XFER] || o.use_workload[W_SERVER])) {
                unsigned lanes = o.threads[t] / 2 ? o.threads[t] / 2 : 1;
                printf("note: xfer and server run T=%u as %u producer%s + %u "
                       "consumer%s\n",
                       o.threads[t], lanes, lanes > 1 ? "s" : "", lanes,
                       lanes > 1 ? "s" : "");
            }
        }
    }
    if (!o.quiet && bench_lfp_cache != 0)
        printf("note: the lfpool rows use magazines of %u blocks (--cache)\n", bench_lfp_cache);
    if (!o.quiet && bench_lfp_slab != 0)
        printf("note: lfpool-growable uses slabs of %zu bytes (--slab)\n", bench_lfp_slab);
    printf("\n");
    fflush(stdout);

    busy0 = busy_seconds();
    own0 = own_seconds();
    wall0 = wall_seconds();
    for (w = 0; w < W_COUNT; w++) {
        /* The tables of one workload, one per thread count: their cells are
         * all opened first, and their repetitions take turns, every row of
         * every table once per round, so that a slow phase of the machine
         * falls on all of them and the per-lane cost at T threads compares
         * with the 1-thread cost measured over the same time. */
        size_t first[MAX_THREADS], ngroups = 0, g;
        if (!o.use_workload[w])
            continue;
        for (t = 0; t < o.nthreads; t++) {
            unsigned lanes;
            unsigned th = cell_threads((enum bench_workload)w, o.threads[t], &lanes);
            if (done_threads[w][th])
                continue;
            done_threads[w][th] = 1;
            first[ngroups] = nres;
            for (r = 0; r < nrows; r++) {
                struct bench_result *x;
                if (!o.use_alloc[r])
                    continue;
                x = &res[nres++];
                x->workload = bench_workload_names[w];
                x->threads = th;
                x->lanes = lanes;
                x->burst = bench_is_cross((enum bench_workload)w) ? o.burst : 0;
                x->alloc = &rows[r];
                show_progress(&pg, bench_workload_names[w], rows[r].name, th);
                if (rows[r].missing) {
                    x->status = BENCH_SKIPPED;
                    x->note = rows[r].missing;
                } else if (bench_is_cross((enum bench_workload)w) && !rows[r].cross_thread) {
                    x->status = BENCH_NA;
                    x->note = "cannot free a block on another thread";
                } else if (w == W_SPIKE && !rows[r].trim) {
                    x->status = BENCH_NA;
                    x->note = rows[r].no_trim;
                } else if (w == W_SPIKE) {
                    bench_measure_spike(&cfg, &rows[r], x);
                } else {
                    char err[256];
                    struct bench_cell *c = bench_cell_open(&cfg, &rows[r], (enum bench_workload)w,
                                                           th, lanes, err, sizeof err);
                    cells[ngroups * nrows + r] = c;
                    if (c == NULL) {
                        x->status = BENCH_SKIPPED;
                        x->note = strdup(err); /* kept until the program ends */
                        if (x->note == NULL)
                            x->note = "could not be set up";
                    }
                }
            }
            ngroups++;
        }
        for (rep = 0; rep < cfg.reps; rep++) {
            for (g = 0; g < ngroups; g++) {
                for (r = 0; r < nrows; r++) {
                    struct bench_cell *c = cells[g * nrows + r];
                    if (c == NULL)
                        continue;
                    show_progress(&pg, bench_workload_names[w], rows[r].name,
                                  res[first[g]].threads);
                    bench_cell_rep(c);
                }
            }
        }
        for (g = 0; g < ngroups; g++) {
            size_t end = g + 1 < ngroups ? first[g + 1] : nres;
            for (r = 0, k = first[g]; r < nrows; r++) {
                struct bench_cell **c = &cells[g * nrows + r];
                if (!o.use_alloc[r])
                    continue;
                if (*c != NULL)
                    bench_cell_close(*c, &res[k]);
                *c = NULL;
                k++;
            }
            clear_progress(&pg);
            if (w == W_SPIKE)
                bench_print_spike(stdout, &res[first[g]], end - first[g], o.spike_keep);
            else
                bench_print_group(stdout, &res[first[g]], end - first[g], res, nres);
            fflush(stdout);
        }
    }
    clear_progress(&pg);

    /* What other processes took from the cores while we measured: the
     * numbers above are only as good as this is small, the cross-thread
     * workloads most of all (a descheduled consumer stalls its producer).
     * Unlike the load average, this covers exactly the run. */
    busy1 = busy_seconds();
    own1 = own_seconds();
    wall1 = wall_seconds();
    if (busy0 >= 0 && busy1 >= 0 && own0 >= 0 && own1 >= 0 && wall1 > wall0) {
        meta.other_cores = ((busy1 - busy0) - (own1 - own0)) / (wall1 - wall0);
        if (meta.other_cores < 0)
            meta.other_cores = 0;
        if (meta.other_cores >= 0.1)
            printf("warning: other processes kept %.2f of %ld cores busy on "
                   "average during the run; the numbers are disturbed\n",
                   meta.other_cores, meta.cores);
        else if (!o.quiet)
            printf("other processes used %.2f cores on average during the "
                   "run\n", meta.other_cores);
    }

    if (o.json && bench_write_json(o.json, &meta, res, nres) != 0)
        rc = 1;
    if (o.csv && bench_write_csv(o.csv, res, nres) != 0)
        rc = 1;
    if (o.plot && bench_write_plot(o.plot, &meta, res, nres, o.quiet) != 0)
        rc = 1;
    free(res);
    free(cells);
    return rc;
}
