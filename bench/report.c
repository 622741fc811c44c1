/* SPDX-License-Identifier: MIT */
/* lfp-bench output: the tables, JSON, CSV and the bar chart. */
#include "bench.h"

#include <lfpool.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void bench_print_header(FILE *f, const struct bench_meta *m,
                        const struct bench_alloc *rows, size_t nrows,
                        const int *selected)
{
    size_t i;
    fprintf(f, "lfp-bench: lfpool %s (LFP_VERSION %d)\n", m->version, LFP_VERSION);
    fprintf(f, "cpu: %s, %ld cores online", m->cpu, m->cores);
    if (m->usable > 0 && m->usable != m->cores)
        fprintf(f, " (%ld usable by this process)", m->usable);
    if (m->load >= 0)
        fprintf(f, ", 1-minute load average %.2f at start", m->load);
    fprintf(f, "\n");

    fprintf(f, "block size %zu bytes; %u timed repetitions per cell, the cells of a "
               "workload (every row, every thread count) taking turns, median "
               "reported; ", m->size, m->reps);
    if (m->ops)
        fprintf(f, "%llu pairs per lane per repetition\n", (unsigned long long)m->ops);
    else
        fprintf(f, "about %u ms per repetition (pairs calibrated in the "
                   "warm-up)\n", m->duration_ms);
    if (m->burst)
        fprintf(f, "xfer and server: each ring's producer and consumer publish "
                   "their index once per %u block%s (--burst)\n", m->burst,
                m->burst > 1 ? "s" : "");
    fprintf(f, "ns/pair: one alloc + free in one lane (thread, or producer "
               "with its consumer) = wall x lanes / pairs;\n"
               "Mops/s: pairs per second of all threads together / 1e6; "
               "vs best peer: ns / ns of the fastest of\n"
               "glibc, jemalloc, mimalloc, tcmalloc, mutex-list, treiber-list in "
               "the same table; vs floor: ns / tl-list's ns\n");
    fprintf(f, "allocators:\n");
    for (i = 0; i < nrows; i++) {
        if (!selected[i])
            continue;
        if (rows[i].missing)
            fprintf(f, "  %-15s skipped: %s\n", rows[i].name, rows[i].missing);
        else
            fprintf(f, "  %-15s %s\n", rows[i].name, rows[i].api);
    }
}

static int ok(const struct bench_result *r)
{
    return r->status == BENCH_OK;
}

static int is_spike(const struct bench_result *r)
{
    return strcmp(r->workload, bench_workload_names[W_SPIKE]) == 0;
}

/* The result of the same workload and allocator at the smallest thread count
 * measured, when that is below this one's: the scaling baseline. */
/* A row that was skipped or does not apply: one line saying why. */
static int print_unmeasured(FILE *f, const struct bench_result *x)
{
    if (x->status == BENCH_SKIPPED)
        fprintf(f, "  %-15s skipped (%s)\n", x->alloc->name, x->note);
    else if (x->status == BENCH_NA)
        fprintf(f, "  %-15s %9s  (%s)\n", x->alloc->name, "n/a", x->note);
    else
        return 0;
    return 1;
}

static const struct bench_result *baseline(const struct bench_result *x,
                                           const struct bench_result *all,
                                           size_t nall)
{
    const struct bench_result *best = NULL;
    size_t i;
    for (i = 0; i < nall; i++) {
        const struct bench_result *y = &all[i];
        if (y->alloc != x->alloc || strcmp(y->workload, x->workload) != 0 ||
            y->threads >= x->threads || !ok(y))
            continue;
        if (!best || y->threads < best->threads)
            best = y;
    }
    return best;
}

void bench_print_group(FILE *f, const struct bench_result *r, size_t n,
                       const struct bench_result *all, size_t nall)
{
    const struct bench_result *peer = NULL, *floor_row = NULL, *b;
    unsigned base_threads = 0;
    size_t i;

    if (n == 0)
        return;
    for (i = 0; i < n; i++) {
        if (!ok(&r[i]))
            continue;
        if (r[i].alloc->kind == BENCH_PEER && (!peer || r[i].ns_med < peer->ns_med))
            peer = &r[i];
        if (r[i].alloc->kind == BENCH_FLOOR)
            floor_row = &r[i];
        b = baseline(&r[i], all, nall);
        if (b && (!base_threads || b->threads < base_threads))
            base_threads = b->threads;
    }

    if (strcmp(r[0].workload, "xfer") == 0 || strcmp(r[0].workload, "server") == 0)
        fprintf(f, "%s, %u threads (%u producer%s -> %u consumer%s, one ring each)\n",
                r[0].workload, r[0].threads, r[0].lanes, r[0].lanes > 1 ? "s" : "",
                r[0].lanes, r[0].lanes > 1 ? "s" : "");
    else
        fprintf(f, "%s, %u thread%s\n", r[0].workload, r[0].threads,
                r[0].threads > 1 ? "s" : "");
    fprintf(f, "  %-15s %9s %8s %8s %9s %13s %9s", "allocator", "ns/pair", "min",
            "max", "Mops/s", "vs best peer", "vs floor");
    if (base_threads)
        fprintf(f, "  per-lane ns vs %ut", base_threads);
    fprintf(f, "\n");

    for (i = 0; i < n; i++) {
        const struct bench_result *x = &r[i];
        if (print_unmeasured(f, x))
            continue;
        fprintf(f, "  %-15s %9.2f %8.2f %8.2f %9.1f", x->alloc->name, x->ns_med,
                x->ns_min, x->ns_max, x->mops);
        if (peer)
            fprintf(f, " %12.2fx", x->ns_med / peer->ns_med);
        else
            fprintf(f, " %13s", "-");
        if (floor_row && x->alloc->kind != BENCH_PEER)
            fprintf(f, " %8.2fx", x->ns_med / floor_row->ns_med);
        else if (x->alloc->kind == BENCH_OURS)
            fprintf(f, " %9s", "-");
        else
            fprintf(f, " %9s", "");
        b = base_threads ? baseline(x, all, nall) : NULL;
        if (b && b->threads == base_threads)
            fprintf(f, "  %7.2fx (%.2f ns at %ut)", x->ns_med / b->ns_med,
                    b->ns_med, b->threads);
        fprintf(f, "\n");
    }
    if (peer)
        fprintf(f, "  best peer: %s, %.2f ns/pair\n", peer->alloc->name, peer->ns_med);
    else
        fprintf(f, "  best peer: none measured\n");
    fprintf(f, "\n");
}

/* Its own table: the spike's figures are memory as much as time. */
void bench_print_spike(FILE *f, const struct bench_result *r, size_t n, uint64_t keep)
{
    const struct bench_result *done = NULL;
    size_t i;
    int first;

    for (i = 0; i < n && !done; i++)
        if (ok(&r[i]))
            done = &r[i];
    fprintf(f, "spike, 1 thread");
    if (done)
        fprintf(f, ": %llu blocks per cycle, median of %u cycle%s",
                (unsigned long long)done->ops, done->reps, done->reps > 1 ? "s" : "");
    if (keep == 0)
        fprintf(f, "\n  cycle: allocate and write every block, free them all, trim "
                   "(timed); RSS: the process's,\n  over its RSS before the "
                   "allocator's first cycle, at the peak and after the trim\n");
    else
        fprintf(f, "\n  cycle: allocate and write every block, free all but every "
                   "%llu-th, trim (timed), then free\n  those after the RSS read; RSS: "
                   "the process's, over its RSS before the allocator's\n  first cycle, "
                   "at the peak and after the trim (the survivors still allocated)\n",
                (unsigned long long)keep);
    fprintf(f, "  %-15s %9s %9s %13s %19s %11s\n", "allocator", "ms/cycle",
            "ns/block", "peak RSS MiB", "RSS after trim MiB", "% returned");
    for (i = 0; i < n; i++) {
        const struct bench_result *x = &r[i];
        if (print_unmeasured(f, x))
            continue;
        fprintf(f, "  %-15s %9.1f %9.2f %13.1f %19.1f %10.1f%%\n", x->alloc->name,
                x->ms_cycle, x->ns_med, x->peak_mib, x->trimmed_mib,
                x->returned_pct);
    }
    first = 1;
    for (i = 0; i < n; i++) {
        if (!ok(&r[i]))
            continue;
        fprintf(f, "%s%s %s", first ? "  trim: " : "; ", r[i].alloc->name,
                r[i].alloc->trim_api);
        first = 0;
    }
    fprintf(f, "%s\n", first ? "" : "\n");
}

/* ------------------------------------------------------------------------ */

static const char *status_name(enum bench_status s)
{
    return s == BENCH_OK ? "ok" : s == BENCH_NA ? "n/a" : "skipped";
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static int close_file(FILE *f, const char *path)
{
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        fprintf(stderr, "lfp-bench: writing %s failed\n", path);
        return -1;
    }
    return 0;
}

static FILE *open_out(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        fprintf(stderr, "lfp-bench: cannot write %s: %s\n", path, strerror(errno));
    return f;
}

int bench_write_json(const char *path, const struct bench_meta *m,
                     const struct bench_result *r, size_t n)
{
    FILE *f = open_out(path);
    size_t i;
    if (!f)
        return -1;
    fprintf(f, "{\n  \"lfpool_version\": ");
    json_string(f, m->version);
    fprintf(f, ",\n  \"cpu\": ");
    json_string(f, m->cpu);
    fprintf(f, ",\n  \"load_average\": %.2f", m->load);
    fprintf(f, ",\n  \"other_processes_cores\": %.2f", m->other_cores);
    fprintf(f, ",\n  \"cores\": %ld,\n  \"block_size\": %zu,\n  \"reps\": %u,\n",
            m->cores, m->size, m->reps);
    if (m->ops)
        fprintf(f, "  \"ops_fixed\": %llu,\n", (unsigned long long)m->ops);
    else
        fprintf(f, "  \"duration_ms\": %u,\n", m->duration_ms);
    fprintf(f, "  \"sized_free\": %s,\n", m->sized_free ? "true" : "false");
    if (m->burst)
        fprintf(f, "  \"burst\": %u,\n", m->burst);
    fprintf(f, "  \"unit\": \"ns per alloc+free pair per lane; mops across all "
               "threads; spike: ns per block of a cycle, trim included, and "
               "RSS in MiB over the RSS before the first cycle\",\n"
               "  \"results\": [\n");
    for (i = 0; i < n; i++) {
        const struct bench_result *x = &r[i];
        fprintf(f, "    {\"workload\": \"%s\", \"threads\": %u, \"lanes\": %u, "
                   "\"allocator\": ",
                x->workload, x->threads, x->lanes);
        json_string(f, x->alloc->name);
        fprintf(f, ", \"status\": \"%s\"", status_name(x->status));
        if (x->burst)
            fprintf(f, ", \"burst\": %u", x->burst);
        if (x->status == BENCH_OK)
            fprintf(f, ", \"ns_per_pair\": %.4f, \"ns_min\": %.4f, \"ns_max\": %.4f, "
                       "\"mops\": %.3f, \"reps\": %u, \"ops_per_lane\": %llu",
                    x->ns_med, x->ns_min, x->ns_max, x->mops, x->reps,
                    (unsigned long long)x->ops);
        if (x->status == BENCH_OK && is_spike(x))
            fprintf(f, ", \"ms_per_cycle\": %.3f, \"ns_per_block\": %.4f, "
                       "\"peak_rss_mib\": %.2f, \"rss_after_trim_mib\": %.2f, "
                       "\"returned_pct\": %.2f",
                    x->ms_cycle, x->ns_med, x->peak_mib, x->trimmed_mib,
                    x->returned_pct);
        if (x->status != BENCH_OK) {
            fprintf(f, ", \"note\": ");
            json_string(f, x->note);
        }
        fprintf(f, "}%s\n", i + 1 < n ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    return close_file(f, path);
}

static void csv_field(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

int bench_write_csv(const char *path, const struct bench_result *r, size_t n)
{
    FILE *f = open_out(path);
    size_t i;
    if (!f)
        return -1;
    fprintf(f, "workload,threads,lanes,allocator,status,ns_per_pair,ns_min,ns_max,"
               "mops,reps,ops_per_lane,note,ms_per_cycle,ns_per_block,"
               "peak_rss_mib,rss_after_trim_mib,returned_pct,burst\n");
    for (i = 0; i < n; i++) {
        const struct bench_result *x = &r[i];
        fprintf(f, "%s,%u,%u,%s,%s,", x->workload, x->threads, x->lanes,
                x->alloc->name, status_name(x->status));
        if (x->status == BENCH_OK)
            fprintf(f, "%.4f,%.4f,%.4f,%.3f,%u,%llu,", x->ns_med, x->ns_min,
                    x->ns_max, x->mops, x->reps, (unsigned long long)x->ops);
        else
            fprintf(f, ",,,,,,");
        csv_field(f, x->note);
        if (x->status == BENCH_OK && is_spike(x))
            fprintf(f, ",%.3f,%.4f,%.2f,%.2f,%.2f", x->ms_cycle, x->ns_med,
                    x->peak_mib, x->trimmed_mib, x->returned_pct);
        else
            fprintf(f, ",,,,,");
        if (x->burst)
            fprintf(f, ",%u", x->burst);
        else
            fputc(',', f);
        fputc('\n', f);
    }
    return close_file(f, path);
}

/* ------------------------------------------------------------------------ */
/* Bar chart. Groups are the (workload, threads) cells in report order,
 * series the allocators. The spike is left out: its time per block mixes
 * page faults and the trim, and its point is the memory. */

struct chart {
    const struct bench_result *r;
    size_t n;
    size_t group_first[256]; /* index in r of each group's first result */
    size_t ngroups;
    const struct bench_alloc *series[16];
    size_t nseries;
};

static void chart_build(struct chart *c, const struct bench_result *r, size_t n)
{
    size_t i, j;
    memset(c, 0, sizeof *c);
    c->r = r;
    c->n = n;
    for (i = 0; i < n; i++) {
        if (is_spike(&r[i]))
            continue;
        if ((i == 0 || r[i].threads != r[i - 1].threads ||
             strcmp(r[i].workload, r[i - 1].workload) != 0) &&
            c->ngroups < sizeof c->group_first / sizeof c->group_first[0])
            c->group_first[c->ngroups++] = i;
        for (j = 0; j < c->nseries; j++)
            if (c->series[j] == r[i].alloc)
                break;
        if (j == c->nseries && c->nseries < sizeof c->series / sizeof c->series[0])
            c->series[c->nseries++] = r[i].alloc;
    }
}

/* The result for group g and series s, or NULL when not measured. */
static const struct bench_result *chart_cell(const struct chart *c, size_t g,
                                             size_t s)
{
    const struct bench_result *h = &c->r[c->group_first[g]];
    size_t i, end = g + 1 < c->ngroups ? c->group_first[g + 1] : c->n;
    /* The range may run on into results left out of the chart. */
    for (i = c->group_first[g]; i < end; i++)
        if (c->r[i].alloc == c->series[s] && ok(&c->r[i]) &&
            c->r[i].threads == h->threads && strcmp(c->r[i].workload, h->workload) == 0)
            return &c->r[i];
    return NULL;
}

static const char *series_color(const char *name, size_t i)
{
    static const struct {
        const char *name, *color;
    } known[] = {
        {"lfpool", "#1f4e99"},   {"lfpool-nocache", "#7ea6e0"},
        {"glibc", "#d62728"},    {"jemalloc", "#ff7f0e"},
        {"mimalloc", "#2ca02c"}, {"tcmalloc", "#9467bd"},
        {"mutex-list", "#8c564b"}, {"treiber-list", "#5c4033"},
        {"tl-list", "#9a9a9a"},     {"lfpool-growable", "#e377c2"},
        {"lfpool-checked", "#17becf"},
    };
    static const char *const spare[] = {"#17becf", "#bcbd22", "#e377c2"};
    size_t k;
    for (k = 0; k < sizeof known / sizeof known[0]; k++)
        if (strcmp(name, known[k].name) == 0)
            return known[k].color;
    return spare[i % 3];
}

/* Smallest and largest value drawn; 1 and 10 when there is none. */
static void chart_range(const struct chart *c, double *vmin, double *vmax)
{
    size_t g, s;
    int first = 1;
    *vmin = 1;
    *vmax = 10;
    for (g = 0; g < c->ngroups; g++) {
        for (s = 0; s < c->nseries; s++) {
            const struct bench_result *x = chart_cell(c, g, s);
            if (!x || x->ns_med <= 0)
                continue;
            if (first || x->ns_med < *vmin)
                *vmin = x->ns_med;
            if (first || x->ns_med > *vmax)
                *vmax = x->ns_med;
            first = 0;
        }
    }
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int gnuplot_on_path(void)
{
    const char *path = getenv("PATH");
    char buf[4096];
    while (path && *path) {
        size_t len = strcspn(path, ":");
        if (len > 0 && len + sizeof "/gnuplot" < sizeof buf) {
            memcpy(buf, path, len);
            memcpy(buf + len, "/gnuplot", sizeof "/gnuplot");
            if (access(buf, X_OK) == 0)
                return 1;
        }
        path += len;
        if (*path == ':')
            path++;
    }
    return 0;
}

static void svg_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '>')
            fputs("&gt;", f);
        else if (*s == '&')
            fputs("&amp;", f);
        else
            fputc(*s, f);
    }
}

/* At most four characters, so that a label fits over its bar. */
static void short_value(char *buf, size_t len, double v)
{
    if (v < 10)
        snprintf(buf, len, "%.2f", v);
    else if (v < 100)
        snprintf(buf, len, "%.1f", v);
    else if (v < 1000)
        snprintf(buf, len, "%.0f", v);
    else if (v < 9950)
        snprintf(buf, len, "%.1fk", v / 1000);
    else
        snprintf(buf, len, "%.0fk", v / 1000);
}

static int write_svg(const char *path, const struct bench_meta *m,
                     const struct chart *c)
{
    const double bar = 24, gap = 28, left = 78, top = 56, plot_h = 360;
    const double legend_w = 170;
    double group_w = (double)c->nseries * bar + gap;
    double plot_w = (double)c->ngroups * group_w;
    double width = left + plot_w + 20 + legend_w, height = top + plot_h + 70;
    double vmin, vmax, lo, hi, dec, y0 = top + plot_h;
    size_t g, s;
    FILE *f;

    chart_range(c, &vmin, &vmax);
    /* Log scale: costs span two or three decades, and a linear axis would
     * flatten the fast rows into the baseline. */
    lo = floor(log10(vmin));
    hi = ceil(log10(vmax * 1.3));
    if (hi <= lo)
        hi = lo + 1;
    dec = hi - lo;

    f = open_out(path);
    if (!f)
        return -1;
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
               "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
               "font-family=\"DejaVu Sans, Arial, sans-serif\">\n",
            width, height, width, height);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%.1f\" y=\"24\" font-size=\"16\" font-weight=\"bold\" "
               "text-anchor=\"middle\">lfp-bench: ns per alloc+free pair, %zu-byte "
               "blocks (lower is better)</text>\n",
            width / 2, m->size);
    fprintf(f, "<text x=\"%.1f\" y=\"42\" font-size=\"11\" text-anchor=\"middle\" "
               "fill=\"#444\">", width / 2);
    svg_text(f, m->cpu);
    fprintf(f, ", %ld cores; median of %u; log scale</text>\n", m->cores, m->reps);

    /* Grid and y ticks at 1, 2, 5 per decade. */
    {
        double e;
        for (e = lo; e <= hi; e += 1) {
            static const double mult[] = {1, 2, 5};
            unsigned k;
            for (k = 0; k < 3; k++) {
                double v = mult[k] * pow(10, e);
                double y = y0 - (log10(v) - lo) / dec * plot_h;
                if (log10(v) > hi + 1e-9)
                    break;
                fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                           "stroke=\"%s\" stroke-width=\"1\"/>\n",
                        left, y, left + plot_w, y, k == 0 ? "#bbb" : "#e4e4e4");
                fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" "
                           "text-anchor=\"end\">%g</text>\n",
                        left - 6, y + 4, v);
            }
        }
    }
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
               "stroke=\"black\"/>\n", left, top, left, y0);
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
               "stroke=\"black\"/>\n", left, y0, left + plot_w, y0);
    fprintf(f, "<text transform=\"translate(18 %.1f) rotate(-90)\" font-size=\"12\" "
               "text-anchor=\"middle\">ns per pair (log scale)</text>\n",
            top + plot_h / 2);

    for (g = 0; g < c->ngroups; g++) {
        const struct bench_result *h = &c->r[c->group_first[g]];
        double gx = left + (double)g * group_w + gap / 2;
        for (s = 0; s < c->nseries; s++) {
            const struct bench_result *x = chart_cell(c, g, s);
            double bx = gx + (double)s * bar, y;
            char label[16];
            if (!x) {
                fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"9\" "
                           "fill=\"#888\" text-anchor=\"middle\">n/a</text>\n",
                        bx + bar / 2, y0 - 4);
                continue;
            }
            y = y0 - (log10(x->ns_med) - lo) / dec * plot_h;
            if (y > y0 - 1)
                y = y0 - 1;
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                       "fill=\"%s\"><title>%s %s %ut: %.2f ns</title></rect>\n",
                    bx + 0.5, y, bar - 1, y0 - y,
                    series_color(c->series[s]->name, s), x->workload,
                    x->alloc->name, x->threads, x->ns_med);
            short_value(label, sizeof label, x->ns_med);
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"9\" "
                       "text-anchor=\"middle\">%s</text>\n",
                    bx + bar / 2, y - 3, label);
        }
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" "
                   "text-anchor=\"middle\">%s</text>\n",
                gx + (double)c->nseries * bar / 2, y0 + 18, h->workload);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"#444\" "
                   "text-anchor=\"middle\">%u thread%s</text>\n",
                gx + (double)c->nseries * bar / 2, y0 + 33, h->threads,
                h->threads > 1 ? "s" : "");
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" "
               "text-anchor=\"middle\">workload, threads</text>\n",
            left + plot_w / 2, y0 + 56);

    for (s = 0; s < c->nseries; s++) {
        double lx = left + plot_w + 24, ly = top + 6 + (double)s * 20;
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"14\" "
                   "fill=\"%s\"/>\n",
                lx, ly, series_color(c->series[s]->name, s));
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\">%s</text>\n",
                lx + 20, ly + 11, c->series[s]->name);
    }
    fprintf(f, "</svg>\n");
    return close_file(f, path);
}

static void gnuplot_rows(FILE *p, const struct chart *c)
{
    size_t g, s;
    for (g = 0; g < c->ngroups; g++) {
        const struct bench_result *h = &c->r[c->group_first[g]];
        fprintf(p, "\"%s %ut\"", h->workload, h->threads);
        for (s = 0; s < c->nseries; s++) {
            const struct bench_result *x = chart_cell(c, g, s);
            if (x)
                fprintf(p, " %.4f", x->ns_med);
            else
                fprintf(p, " -");
        }
        fprintf(p, "\n");
    }
}

static int write_gnuplot(const char *path, const struct bench_meta *m,
                         const struct chart *c)
{
    FILE *p = popen("gnuplot", "w");
    size_t s;
    double vmin, vmax;
    int st;
    if (!p) {
        fprintf(stderr, "lfp-bench: cannot run gnuplot: %s\n", strerror(errno));
        return -1;
    }
    /* Room above the tallest bar for its label. */
    chart_range(c, &vmin, &vmax);
    fprintf(p, "set terminal pngcairo size %d,600 font 'sans,10'\n",
            (int)(300 + c->ngroups * (c->nseries * 18 + 30)));
    fprintf(p, "set output '%s'\n", path);
    fprintf(p, "set title \"lfp-bench: ns per alloc+free pair, %zu-byte blocks "
               "(lower is better)\\n", m->size);
    for (const char *q = m->cpu; *q; q++)
        if (*q != '"' && *q != '\\')
            fputc(*q, p);
    fprintf(p, ", %ld cores, median of %u\"\n", m->cores, m->reps);
    fprintf(p, "set style data histograms\n"
               "set style histogram clustered gap 1\n"
               "set style fill solid 0.9 border -1\n"
               "set boxwidth 0.9\n"
               "set logscale y\n"
               "set yrange [%g:%g]\n"
               "set ylabel 'ns per pair (log scale)'\n"
               "set xlabel 'workload, threads'\n"
               "set grid ytics mytics\n"
               "set key outside right top\n"
               "set datafile missing '-'\n"
               "$d << EOD\n",
            pow(10, floor(log10(vmin))), vmax * 4);
    fprintf(p, "group");
    for (s = 0; s < c->nseries; s++)
        fprintf(p, " %s", c->series[s]->name);
    fprintf(p, "\n");
    gnuplot_rows(p, c);
    /* The same rows without the header, for the value labels: there $0
     * must count groups from 0. */
    fprintf(p, "EOD\n$v << EOD\n");
    gnuplot_rows(p, c);
    fprintf(p, "EOD\nplot ");
    for (s = 0; s < c->nseries; s++)
        fprintf(p, "%s$d using %zu:xtic(1) title columnheader(%zu) lc rgb '%s'",
                s ? ", " : "", s + 2, s + 2, series_color(c->series[s]->name, s));
    /* Each value over its bar: a clustered histogram centres group g on x =
     * g and gives every bar 1 / (series + gap) of the unit. */
    for (s = 0; s < c->nseries; s++)
        fprintf(p, ", $v using ($0 + (%zu - %.1f) / %zu.0):%zu:(sprintf("
                   "column(%zu) < 10 ? '%%.2f' : column(%zu) < 100 ? '%%.1f' : "
                   "'%%.0f', column(%zu))) with labels rotate by 90 left "
                   "offset 0,0.4 font ',7' notitle",
                s, ((double)c->nseries - 1) / 2, c->nseries + 1, s + 2, s + 2,
                s + 2, s + 2);
    fprintf(p, "\n");
    st = pclose(p);
    if (st != 0) {
        fprintf(stderr, "lfp-bench: gnuplot failed (status %d)\n", st);
        return -1;
    }
    return 0;
}

int bench_write_plot(const char *path, const struct bench_meta *m,
                     const struct bench_result *r, size_t n, int quiet)
{
    struct chart c;
    char *out;
    size_t len = strlen(path);
    int rc, svg;

    chart_build(&c, r, n);
    if (c.ngroups == 0) {
        fprintf(stderr, "lfp-bench: nothing to plot (the spike workload is "
                        "not charted); %s not written\n", path);
        return 0;
    }
    out = malloc(len + 5);
    if (!out)
        return -1;
    memcpy(out, path, len + 1);
    svg = ends_with(path, ".svg") || !gnuplot_on_path() || strchr(path, '\'');
    if (svg) {
        if (!ends_with(out, ".svg")) {
            if (ends_with(out, ".png"))
                out[len - 4] = '\0';
            strcat(out, ".svg");
        }
        rc = write_svg(out, m, &c);
    } else {
        if (!ends_with(out, ".png"))
            strcat(out, ".png");
        rc = write_gnuplot(out, m, &c);
    }
    if (rc == 0 && !quiet)
        fprintf(stdout, "plot written to %s\n", out);
    free(out);
    return rc;
}
