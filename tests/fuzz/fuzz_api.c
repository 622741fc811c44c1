/* SPDX-License-Identifier: MIT */
/*
 * A libFuzzer harness for the public API, checked against a reference model.
 *
 * The input is a program: each operation is one byte (its code, modulo
 * OP_COUNT) followed by its argument bytes; a program that runs out of bytes
 * reads zeros. make_corpus.py, which writes the seed corpus, spells out the
 * bytes of each operation. It works on at most NPOOLS live pools. For each pool the model keeps the
 * configuration, the blocks it holds (address and the seed of the pattern
 * written into them), and what lfpool.h says must follow from that:
 *
 *   create     the exact code lfp_pool_create returns for any configuration
 *              (valid or not: sizes, alignments, flags including unknown
 *              ones, cache sizes, growable bounds, slab sizes, caller memory
 *              exact, larger, too small, misaligned), *out NULL on failure,
 *              lfp_pool_bytes and LFP_POOL_BYTES for fixed configurations;
 *   alloc      success exactly while the pool is below its limit (capacity,
 *              or max_blocks of a growable pool; one thread can always get
 *              all of them), else NULL with errno ENOBUFS; the block aligned,
 *              distinct from every live block of every pool, inside the
 *              pool's region (caller memory: exactly one of its blocks),
 *              zeroed with LFP_ZERO, and with an init constructor holding the
 *              constructed state or the bytes it had when it was last freed;
 *   free       0 for a live block (whose pattern must be intact) and for
 *              NULL; LFP_EFOREIGN for interior, misaligned, stack, malloc,
 *              another pool's and out-of-range pointers, the pool unchanged;
 *   bulk       alloc_bulk returns exactly min(n, what is left); free_bulk
 *              frees all, or with one bad pointer nothing (LFP_EFOREIGN);
 *   owns       1 for live blocks, and for freed blocks (of a growable pool:
 *              while their slab is kept), 0 for bad pointers;
 *   stats      blocks_in_use exact after every mutating step; block size,
 *              stride, alignment, name copy, cache size, totals consistent;
 *   verify     0 (after mutating steps on small pools, every few otherwise);
 *   trim       0 for fixed pools; for growable ones a multiple of 64 KiB that
 *              matches the blocks that went away, and with no block in use
 *              every slab released;
 *   flush      no block left in this thread's magazines;
 *   thread     a second thread (the harness waits for it) frees blocks the
 *              first one allocated, allocates (exactly what is left when the
 *              first thread's cache was handed back), frees some of its own
 *              and exits: what it still holds joins the model;
 *   misuse     in LFP_CHECKED pools (all pools with LFP_CHECKED=1), a
 *              double free and a free_bulk listing a block twice or a free
 *              one return LFP_EDOUBLE and change nothing; a write after free
 *              is reported as LFP_ECORRUPT when the block is handed out
 *              again; each bad free and each block still in use at destroy
 *              is reported; the error handler hears exactly these reports.
 *              Other pools get only the writes after free, unreported;
 *   pool ids   pools of one block take up ids, so that the model's pools
 *              get ids past the inline thread slots, or take every id: then
 *              creating a pool fails with LFP_ENOMEM;
 *   destroy    returns the live-block count, runs fini once per carved block
 *              (init and fini balance), after every pool's patterns and
 *              verify were checked.
 *
 * Any disagreement prints what and where, then aborts.
 *
 * Built with -DFUZZ_STANDALONE it has a main() that replays files or
 * directories of inputs, so the seed corpus runs as a regression test with
 * any compiler.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lfpool.h"

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#define FZ_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define FZ_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#define FZ_IS_POISONED(p) __asan_address_is_poisoned(p)
#else
#define FZ_POISON(p, n) ((void)(p), (void)(n))
#define FZ_UNPOISON(p, n) ((void)(p), (void)(n))
#define FZ_IS_POISONED(p) ((void)(p), 0)
#endif

enum {
    NPOOLS = 3,
    /* Most blocks the harness holds in one pool of unbounded size. */
    LIVE_CAP = 16384,
    /* Most operations run from one input. */
    MAX_STEPS = 4096,
    FREED_RING = 8,
};

/* A configured span beyond any user address space: the pool cannot exist,
 * the header leaves EINVAL ("sizes that overflow") or ENOMEM open. */
#define FZ_HUGE ((size_t)1 << 47)
#define FZ_UNBOUNDED SIZE_MAX

/* ---- failures ---- */

static unsigned long fz_step;
static const char *fz_op = "start";
static int fz_trace; /* FUZZ_API_TRACE=1: print each step */

static void fz_fail(int line, const char *what, long long a, long long b, int have_ab)
{
    fprintf(stderr, "fuzz_api.c:%d: step %lu (%s): model disagrees: %s", line, fz_step,
            fz_op, what);
    if (have_ab)
        fprintf(stderr, " (%lld vs %lld)", a, b);
    fputc('\n', stderr);
    fflush(stderr);
    abort();
}

#define FZ_CHECK(cond)                                                     \
    do {                                                                   \
        if (!(cond))                                                       \
            fz_fail(__LINE__, #cond, 0, 0, 0);                             \
    } while (0)

#define FZ_EQ(a, b)                                                        \
    do {                                                                   \
        long long fz_a_ = (long long)(a), fz_b_ = (long long)(b);          \
        if (fz_a_ != fz_b_)                                                \
            fz_fail(__LINE__, #a " == " #b, fz_a_, fz_b_, 1);              \
    } while (0)

/* ---- the input ---- */

struct rd {
    const uint8_t *p;
    size_t n, i;
};

static uint8_t rd_u8(struct rd *r)
{
    return r->i < r->n ? r->p[r->i++] : 0;
}

static unsigned rd_u16(struct rd *r)
{
    unsigned lo = rd_u8(r);
    return lo | (unsigned)rd_u8(r) << 8;
}

/* ---- an address-keyed hash table (linear probing, backward-shift delete) ---- */

struct hent {
    uintptr_t key;   /* 0 = empty */
    int pool;        /* the pool's slot */
    uint32_t seed;   /* pattern in the block's bytes; 0 = as constructed */
    uint32_t idx;    /* live set: index in the pool's live array */
    int constructed; /* constructor map: init ran, fini not yet */
};

struct htab {
    struct hent *e;
    size_t cap, n;
};

static size_t fz_hash(uintptr_t k)
{
    uint64_t x = (uint64_t)k;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x;
}

static struct hent *hfind(struct htab *t, const void *p)
{
    uintptr_t k = (uintptr_t)p;
    if (t->cap == 0 || k == 0)
        return NULL;
    for (size_t i = fz_hash(k) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        if (t->e[i].key == k)
            return &t->e[i];
        if (t->e[i].key == 0)
            return NULL;
    }
}

static void hgrow(struct htab *t)
{
    size_t ncap = t->cap ? t->cap * 2 : 1024;
    struct hent *ne = calloc(ncap, sizeof(*ne));
    if (ne == NULL) {
        fprintf(stderr, "fuzz_api: out of memory\n");
        abort();
    }
    for (size_t i = 0; i < t->cap; i++) {
        if (t->e[i].key == 0)
            continue;
        size_t j = fz_hash(t->e[i].key) & (ncap - 1);
        while (ne[j].key != 0)
            j = (j + 1) & (ncap - 1);
        ne[j] = t->e[i];
    }
    free(t->e);
    t->e = ne;
    t->cap = ncap;
}

/* The entry for p, made (zeroed) if absent. Invalidates earlier entries. */
static struct hent *hput(struct htab *t, const void *p)
{
    struct hent *e = hfind(t, p);
    if (e != NULL)
        return e;
    if ((t->n + 1) * 2 > t->cap)
        hgrow(t);
    uintptr_t k = (uintptr_t)p;
    size_t i = fz_hash(k) & (t->cap - 1);
    while (t->e[i].key != 0)
        i = (i + 1) & (t->cap - 1);
    memset(&t->e[i], 0, sizeof(t->e[i]));
    t->e[i].key = k;
    t->n++;
    return &t->e[i];
}

static void hdel(struct htab *t, const void *p)
{
    struct hent *e = hfind(t, p);
    if (e == NULL)
        return;
    size_t i = (size_t)(e - t->e), mask = t->cap - 1;
    for (size_t j = (i + 1) & mask; t->e[j].key != 0; j = (j + 1) & mask) {
        size_t home = fz_hash(t->e[j].key) & mask;
        /* Move j back into the hole at i unless its home lies in (i, j]. */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            t->e[i] = t->e[j];
            i = j;
        }
    }
    t->e[i].key = 0;
    t->n--;
}

static void hclear(struct htab *t)
{
    free(t->e);
    memset(t, 0, sizeof(*t));
}

/* ---- block patterns ---- */

static uint8_t fz_base(uint32_t seed, const void *p)
{
    uint64_t x = ((uint64_t)seed << 32) ^ (uint64_t)(uintptr_t)p;
    x ^= x >> 29;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 32;
    return (uint8_t)x;
}

static void fz_fill(void *block, size_t n, uint32_t seed)
{
    uint8_t *b = block, base = fz_base(seed, block);
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(base + i * 7u + (i >> 8));
}

static int fz_intact(const void *block, size_t n, uint32_t seed)
{
    const uint8_t *b = block;
    uint8_t base = fz_base(seed, block);
    for (size_t i = 0; i < n; i++)
        if (b[i] != (uint8_t)(base + i * 7u + (i >> 8)))
            return 0;
    return 1;
}

static int fz_zeroed(const void *block, size_t n)
{
    const uint8_t *b = block;
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return 0;
    return 1;
}

/* ---- the model ---- */

struct mpool {
    int used, idx;
    lfp_pool *pool;
    struct lfp_config cfg;
    char name[8];         /* what the pool's copy of its name must read */
    int has_name;
    const char *name_arg; /* the buffer passed in, overwritten after create */
    size_t align, stride, span;
    size_t limit;         /* most blocks one thread can hold, or FZ_UNBOUNDED */
    int growable, has_init, has_fini, zero;
    unsigned char *raw;   /* caller memory: the allocation ... */
    size_t raw_size;
    unsigned char *mem;   /* ... and the part passed as cfg.mem */
    void **live;
    size_t nlive, live_cap;
    size_t peak;          /* most blocks held at once */
    size_t total_hwm;     /* growable: most blocks_total seen */
    uintptr_t lo, hi;     /* fixed: lowest and highest block handed out */
    int any;
    void *freed[FREED_RING]; /* blocks freed lately, still carved */
    unsigned nfreed, freed_pos;
    long constructed;     /* init calls minus fini calls */
    size_t fini_calls;
    int creating, in_destroy;
    int trimmed;          /* growable: slabs may have been released */
    int checked;          /* LFP_CHECKED, by flag or environment */
    void *corrupt[FREED_RING]; /* free blocks written after their free */
    unsigned ncorrupt;
};

static struct mpool P[NPOOLS];
/* Pools of one block that only take up pool ids, so that the model's pools
 * get ids past the threads' inline slots, or none is left. */
static lfp_pool *fillers[LFP_MAX_POOLS];
static size_t nfillers;
static struct htab lset; /* every live block of every pool */
static struct htab cmap; /* blocks of pools with a constructor */
static uint32_t fz_seed_ctr;
static size_t fz_pagesz;
static size_t fz_stacks; /* the depot's stack count, as documented */

static uint32_t fz_next_seed(void)
{
    if (++fz_seed_ctr == 0)
        fz_seed_ctr = 1;
    return fz_seed_ctr;
}

/* ---- checked mode's reports ---- */

struct fz_report {
    lfp_pool *pool;
    void *ptr;
    int err;
};

static struct fz_report *reports; /* received, not yet expected */
static size_t nreports, reports_cap;
static int fz_env_checked;        /* LFP_CHECKED=1: every pool is checked */

static void fz_handler(lfp_pool *pool, void *ptr, int err, const char *what)
{
    FZ_CHECK(what != NULL && what[0] != '\0');
    if (fz_trace)
        fprintf(stderr, "  report: %s %p (%d)\n", what, ptr, err);
    if (nreports == reports_cap) {
        size_t nc = reports_cap ? reports_cap * 2 : 64;
        struct fz_report *nr = realloc(reports, nc * sizeof(*nr));
        if (nr == NULL) {
            fprintf(stderr, "fuzz_api: out of memory\n");
            abort();
        }
        reports = nr;
        reports_cap = nc;
    }
    reports[nreports].pool = pool;
    reports[nreports].ptr = ptr;
    reports[nreports].err = err;
    nreports++;
}

/* The handler must have received this report: take it off the list. */
static void fz_expect_report(lfp_pool *pool, void *ptr, int err, int line)
{
    for (size_t i = 0; i < nreports; i++) {
        if (reports[i].pool == pool && reports[i].ptr == ptr && reports[i].err == err) {
            reports[i] = reports[--nreports];
            return;
        }
    }
    fz_fail(line, "a checked-mode report (error code) reached the handler", err, 0, 0);
}

#define FZ_REPORTED(pool, ptr, err) fz_expect_report((pool), (ptr), (err), __LINE__)

/* Nothing else may have been reported. */
static void fz_no_reports(void)
{
    if (nreports != 0) {
        fprintf(stderr, "fuzz_api: unexpected report: pool %p, ptr %p, error %d\n",
                (void *)reports[0].pool, reports[0].ptr, reports[0].err);
        fz_fail(__LINE__, "no report beyond the expected ones", (long long)nreports, 0, 1);
    }
}

static struct mpool *fz_pool_of_arg(void *arg)
{
    for (int i = 0; i < NPOOLS; i++)
        if (arg == &P[i])
            return &P[i];
    return NULL;
}

static void fz_init(void *block, void *arg)
{
    struct mpool *m = fz_pool_of_arg(arg);
    FZ_CHECK(m != NULL && (m->used || m->creating) && m->has_init);
    FZ_CHECK(block != NULL && ((uintptr_t)block & (m->align - 1)) == 0);
    /* Never on a block someone holds. */
    FZ_CHECK(hfind(&lset, block) == NULL);
    struct hent *e = hput(&cmap, block);
    /* Once per carving: a block made again (a growable pool's slab given
     * back and a new one mapped there) was finalised first. */
    if (m->has_fini)
        FZ_CHECK(!e->constructed);
    e->constructed = 1;
    e->pool = m->idx;
    e->seed = 0;
    fz_fill(block, m->cfg.block_size, 0);
    m->constructed++;
}

static void fz_fini(void *block, void *arg)
{
    struct mpool *m = fz_pool_of_arg(arg);
    FZ_CHECK(m != NULL && (m->used || m->creating) && m->has_fini);
    FZ_CHECK(block != NULL && ((uintptr_t)block & (m->align - 1)) == 0);
    struct hent *l = hfind(&lset, block);
    if (l != NULL) {
        /* A block in use: only destroy may finalise it, and its bytes are
         * still the ones the harness wrote. */
        FZ_CHECK(m->in_destroy);
        FZ_EQ(l->pool, m->idx);
        FZ_CHECK(fz_intact(block, m->cfg.block_size, l->seed));
    }
    if (m->has_init) {
        struct hent *e = hfind(&cmap, block);
        FZ_CHECK(e != NULL && e->constructed);
        FZ_EQ(e->pool, m->idx);
        /* With a constructor the pool keeps its links outside the block:
         * a free block's bytes are as they were when it was freed. */
        FZ_CHECK(fz_intact(block, m->cfg.block_size, e->seed));
        e->constructed = 0;
        m->constructed--;
    }
    m->fini_calls++;
}

/* ---- configuration tables ---- */

static const size_t bs_small[32] = {
    1, 2, 3, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 40, 48, 63,
    64, 65, 100, 127, 128, 200, 255, 256, 511, 1000, 1024, 2047, 2048, 4095, 4096, 0,
};
static const size_t bs_huge[8] = {
    SIZE_MAX, SIZE_MAX - 7, SIZE_MAX - 15, SIZE_MAX / 2,
    SIZE_MAX / 2 + 1, (size_t)1 << 62, (size_t)1 << 61, SIZE_MAX - 4096,
};
static const size_t align_tab[16] = {
    0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 4096, 3, 24, 8192, (size_t)1 << 63,
};
static const size_t cap_small[20] = {
    1, 2, 3, 4, 7, 15, 16, 17, 31, 32, 33, 64, 100, 255, 256, 257, 1000, 1023, 4096, 0,
};
static const size_t cap_huge[4] = {
    SIZE_MAX, SIZE_MAX / 2 + 1, SIZE_MAX / 16, (size_t)1 << 60,
};
static const unsigned cache_tab[16] = {
    0, 0, 1, 2, 3, 5, 8, 16, 64, 255, 256, 1024,
    LFP_CACHE_MAX, LFP_CACHE_MAX + 1, UINT_MAX, 0,
};
static const size_t slab_tab[16] = {
    0, 0, 0, 0, 0, 65536, 65536, 131072, 262144, 1 << 20, 2 << 20,
    /* bad: below 64 KiB, not a power of two */
    32768, 65536 + 4096, 1, 4096, 0,
};
static const size_t trim_tab[8] = { 0, 0, 0, 0, 1, 4096, 65536, 1 << 20 };

static int fz_pow2(size_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

/* The layout the configuration describes: 0, or 1 when the alignment is
 * invalid, or 2 when the sizes overflow. */
static int fz_layout(const struct lfp_config *c, size_t *align, size_t *stride, size_t *span)
{
    /* 0 is alignof(max_align_t); below a pointer's, raised to it. */
    size_t a = c->align == 0 ? alignof(max_align_t)
               : c->align < sizeof(void *) ? sizeof(void *) : c->align;
    *align = a;
    *stride = *span = 0;
    if ((c->align != 0 && !fz_pow2(c->align)) || a > fz_pagesz)
        return 1;
    size_t need;
    if (c->init != NULL) {
        /* The links follow the caller's bytes, pointer-aligned. */
        size_t pa = sizeof(void *);
        if (c->block_size > SIZE_MAX - (pa - 1))
            return 2;
        size_t off = (c->block_size + pa - 1) & ~(pa - 1);
        if (off > SIZE_MAX - LFP_LINK_BYTES)
            return 2;
        need = off + LFP_LINK_BYTES;
    } else {
        need = c->block_size < LFP_LINK_BYTES ? LFP_LINK_BYTES : c->block_size;
    }
    if (need > SIZE_MAX - (a - 1))
        return 2;
    *stride = (need + a - 1) & ~(a - 1);
    if (__builtin_mul_overflow(c->capacity, *stride, span))
        return 2;
    return 0;
}

/* ---- model helpers ---- */

static int fz_bounded(const struct mpool *m)
{
    return m->limit <= LIVE_CAP;
}

/* May the harness ask for one more block? Bounded pools always (at their
 * limit the answer must be NULL); unbounded ones while below LIVE_CAP. */
static int fz_may_alloc(const struct mpool *m)
{
    return fz_bounded(m) || m->nlive < LIVE_CAP;
}

static void fz_live_push(struct mpool *m, void *p, uint32_t seed)
{
    if (m->nlive == m->live_cap) {
        size_t nc = m->live_cap ? m->live_cap * 2 : 64;
        void **nl = realloc(m->live, nc * sizeof(void *));
        if (nl == NULL) {
            fprintf(stderr, "fuzz_api: out of memory\n");
            abort();
        }
        m->live = nl;
        m->live_cap = nc;
    }
    struct hent *e = hput(&lset, p);
    e->pool = m->idx;
    e->seed = seed;
    e->idx = (uint32_t)m->nlive;
    m->live[m->nlive++] = p;
    if (m->nlive > m->peak)
        m->peak = m->nlive;
}

static void fz_live_remove(struct mpool *m, void *p)
{
    struct hent *e = hfind(&lset, p);
    FZ_CHECK(e != NULL && e->pool == m->idx);
    size_t i = e->idx;
    FZ_CHECK(i < m->nlive && m->live[i] == p);
    void *last = m->live[m->nlive - 1];
    m->live[i] = last;
    if (last != p)
        hfind(&lset, last)->idx = (uint32_t)i;
    m->nlive--;
    hdel(&lset, p);
}

static void fz_note_freed(struct mpool *m, void *p)
{
    if (m->growable && m->cfg.trim_threshold != 0)
        return; /* an automatic trim may release its slab at any free */
    m->freed[m->freed_pos] = p;
    m->freed_pos = (m->freed_pos + 1) % FREED_RING;
    if (m->nfreed < FREED_RING)
        m->nfreed++;
}

/* Can checked mode see a write after free in m's blocks? Only in the bytes
 * it fills: past the links, in pools without a constructor. */
static int fz_fill_checked(const struct mpool *m)
{
    return m->checked && !m->has_init && m->cfg.block_size > LFP_LINK_BYTES;
}

/* p was just handed out: if it was written while free, checked mode must
 * have reported it, once. */
static void fz_handed_out(struct mpool *m, void *p)
{
    for (unsigned i = 0; i < m->ncorrupt; i++) {
        if (m->corrupt[i] == p) {
            m->corrupt[i] = m->corrupt[--m->ncorrupt];
            if (fz_fill_checked(m))
                FZ_REPORTED(m->pool, p, LFP_ECORRUPT);
            return;
        }
    }
}

/* A block the pool just handed out: check it against the model and write a
 * fresh pattern into it (with a constructor, only when `write`). */
static void fz_new_block(struct mpool *m, void *p, int write)
{
    uintptr_t a = (uintptr_t)p;
    size_t bs = m->cfg.block_size;
    FZ_CHECK(p != NULL);
    FZ_EQ(a & (m->align - 1), 0);
    FZ_CHECK(hfind(&lset, p) == NULL); /* distinct from every live block */
    FZ_CHECK(a + bs > a);              /* does not wrap */
    fz_handed_out(m, p);

    if (!m->growable) {
        if (m->mem != NULL) {
            /* Caller memory: exactly one of its capacity blocks. */
            FZ_CHECK(a >= (uintptr_t)m->mem);
            size_t off = a - (uintptr_t)m->mem;
            FZ_EQ(off % m->stride, 0);
            FZ_CHECK(off / m->stride < m->cfg.capacity);
        }
        if (!m->any) {
            m->lo = m->hi = a;
            m->any = 1;
        } else {
            uintptr_t d = a > m->lo ? a - m->lo : m->lo - a;
            FZ_EQ(d % m->stride, 0); /* one array of blocks */
            if (a < m->lo)
                m->lo = a;
            if (a > m->hi)
                m->hi = a;
            FZ_CHECK((m->hi - m->lo) / m->stride < m->cfg.capacity);
        }
    }
    /* Nothing of another pool's: its blocks' region, its caller memory. */
    for (int i = 0; i < NPOOLS; i++) {
        const struct mpool *q = &P[i];
        if (q == m || !q->used)
            continue;
        if (q->mem != NULL)
            FZ_CHECK(a + bs <= (uintptr_t)q->mem ||
                     a >= (uintptr_t)q->mem + q->cfg.mem_size);
        if (!q->growable && q->any)
            FZ_CHECK(a + bs <= q->lo || a >= q->hi + q->stride);
    }
    /* Our own caller memory's surroundings are poisoned: any touch of the
     * bytes around it would have been reported by ASan already. */

    if (m->zero)
        FZ_CHECK(fz_zeroed(p, bs));
    uint32_t seed = 0;
    if (m->has_init) {
        struct hent *e = hfind(&cmap, p);
        FZ_CHECK(e != NULL && e->constructed);
        FZ_EQ(e->pool, m->idx);
        /* The constructed state, or the bytes it was freed with. */
        FZ_CHECK(fz_intact(p, bs, e->seed));
        seed = e->seed;
        if (write) {
            seed = fz_next_seed();
            fz_fill(p, bs, seed);
            hfind(&cmap, p)->seed = seed;
        }
    } else {
        seed = fz_next_seed();
        fz_fill(p, bs, seed);
    }
    fz_live_push(m, p, seed);
}

static void fz_check_pattern(struct mpool *m, void *p)
{
    struct hent *e = hfind(&lset, p);
    FZ_CHECK(e != NULL);
    FZ_EQ(e->pool, m->idx);
    FZ_CHECK(fz_intact(p, m->cfg.block_size, e->seed));
}

static struct lfp_stats fz_stats(struct mpool *m)
{
    struct lfp_stats s;
    memset(&s, 0xa5, sizeof(s));
    FZ_EQ(lfp_pool_stats(m->pool, &s), LFP_OK);
    return s;
}

static void fz_check_stats(struct mpool *m)
{
    struct lfp_stats s = fz_stats(m);
    FZ_EQ(s.blocks_in_use, m->nlive);
    FZ_EQ(s.block_size, m->cfg.block_size);
    FZ_EQ(s.stride, m->stride);
    FZ_EQ(s.align, m->align);
    if (m->has_name) {
        FZ_CHECK(s.name != NULL && s.name != m->name_arg);
        FZ_CHECK(strcmp(s.name, m->name) == 0);
    } else {
        FZ_CHECK(s.name == NULL);
    }
    size_t asked = m->cfg.cache_size ? m->cfg.cache_size : LFP_CACHE_DEFAULT;
    if (m->cfg.flags & LFP_NO_CACHE)
        FZ_EQ(s.cache_size, 0);
    FZ_CHECK(s.cache_size <= asked);
    FZ_CHECK(s.blocks_cached <= 2 * s.cache_size); /* this thread's two magazines */
    FZ_CHECK(s.blocks_in_use_max >= m->peak);
    FZ_CHECK(s.blocks_in_use_max >= s.blocks_in_use);
    if (!m->growable) {
        FZ_EQ(s.blocks_total, m->cfg.capacity);
        FZ_CHECK(s.blocks_carved <= m->cfg.capacity);
        FZ_CHECK(s.blocks_in_use + s.blocks_cached <= s.blocks_carved);
        FZ_CHECK(s.blocks_in_use_max <= m->cfg.capacity);
        FZ_CHECK(s.bytes_reserved >= m->span);
        /* Documented: the peak of blocks_in_use, or at most the depot's
         * stack count (CPUs rounded up to a power of two, at most 64)
         * where that is more; one call at a time here, so exactly the
         * peak once it reaches the stack count. */
        if (s.cache_size == 0 && m->peak >= fz_stacks)
            FZ_EQ(s.blocks_in_use_max, m->peak);
        else if (s.cache_size == 0)
            FZ_CHECK(s.blocks_in_use_max <= fz_stacks);
    } else {
        FZ_CHECK(s.blocks_in_use + s.blocks_cached <= s.blocks_total);
        if (m->cfg.max_blocks != 0) {
            FZ_CHECK(s.blocks_total <= m->cfg.max_blocks);
            FZ_CHECK(s.blocks_in_use_max <= m->cfg.max_blocks);
        }
        if (!m->trimmed && m->cfg.trim_threshold == 0)
            FZ_CHECK(s.blocks_total >= m->cfg.capacity); /* made up front */
        if (s.blocks_total > m->total_hwm)
            m->total_hwm = s.blocks_total;
        FZ_CHECK(s.blocks_in_use_max >= m->total_hwm); /* of blocks in slabs */
        /* Holes (free runs of slabs in use whose pages a trim gave back)
         * are in blocks_total, not in blocks_carved or bytes_reserved. */
        FZ_CHECK(s.blocks_carved <= s.blocks_total);
        FZ_CHECK(s.blocks_in_use + s.blocks_cached <= s.blocks_carved);
        FZ_CHECK(s.bytes_reserved / m->stride >= s.blocks_carved);
    }
}

static void fz_verify(struct mpool *m)
{
    FZ_EQ(lfp_pool_verify(m->pool), LFP_OK);
}

/* After a step that changed the pool: exact statistics, and the free lists
 * checked each time while they are short, every 32nd step when long (the
 * check sorts them). */
static void fz_post(struct mpool *m)
{
    fz_check_stats(m);
    struct lfp_stats s = fz_stats(m);
    if (s.blocks_carved - s.blocks_in_use <= 256 || fz_step % 32 == 0)
        fz_verify(m);
}

static struct mpool *fz_pick(struct rd *r)
{
    unsigned k = rd_u8(r) % NPOOLS;
    for (unsigned i = 0; i < NPOOLS; i++)
        if (P[(k + i) % NPOOLS].used)
            return &P[(k + i) % NPOOLS];
    return NULL;
}

static struct mpool *fz_other(const struct mpool *m)
{
    for (int i = 1; i < NPOOLS; i++) {
        struct mpool *q = &P[(m->idx + i) % NPOOLS];
        if (q->used && q->nlive > 0)
            return q;
    }
    return NULL;
}

/* ---- pointers that are not the start of one of m's blocks ---- */

struct badptr {
    void *p;
    void *heap; /* malloc'd here, for the caller to free */
};

static void fz_bad(struct mpool *m, uint8_t kind, uint8_t sel, void *stack, struct badptr *b)
{
    b->heap = NULL;
    b->p = NULL;
    switch (kind % 9) {
    case 0: /* malloc's */
        b->heap = malloc(m->cfg.block_size < 4096 ? m->cfg.block_size : 4096);
        b->p = b->heap;
        break;
    case 1: /* interior of a live block */
        if (m->nlive > 0)
            b->p = (char *)m->live[sel % m->nlive] + 1 + sel % (m->stride - 1);
        break;
    case 2: /* misaligned: just before or after a live block's start */
        if (m->nlive > 0)
            b->p = (char *)m->live[sel % m->nlive] + ((sel & 1) ? 1 : -1);
        break;
    case 3: { /* another pool's live block */
        struct mpool *q = fz_other(m);
        if (q != NULL)
            b->p = q->live[sel % q->nlive];
        break;
    }
    case 4: /* the edges of the caller memory */
        if (m->mem != NULL)
            b->p = (sel & 1) ? m->mem + m->span : m->mem - m->stride;
        break;
    case 5: /* the pool's own control structure */
        b->p = m->pool;
        break;
    case 6: /* addresses no mapping has */
        b->p = (sel & 1) ? (void *)(uintptr_t)0xffff800000001000ull
                         : (void *)(uintptr_t)(m->stride * (1 + sel % 4));
        break;
    case 7: /* another pool's caller memory */
        for (int i = 0; i < NPOOLS; i++)
            if (P[i].used && &P[i] != m && P[i].mem != NULL)
                b->p = P[i].mem;
        break;
    default:
        break;
    }
    if (b->p == NULL) /* the stack's, also when the kind has no candidate */
        b->p = (char *)stack + (sel % 4) * 16;
}

/* ---- operations ---- */

static size_t fz_npools(void)
{
    size_t n = nfillers;
    for (int i = 0; i < NPOOLS; i++)
        n += P[i].used;
    return n;
}

static void fz_free_caller_mem(struct mpool *m)
{
    if (m->raw != NULL) {
        FZ_UNPOISON(m->raw, m->raw_size);
        free(m->raw);
    }
    m->raw = m->mem = NULL;
    m->raw_size = 0;
}

static void fz_destroy(struct mpool *m)
{
    fz_op = "destroy";
    for (size_t i = 0; i < m->nlive; i++)
        fz_check_pattern(m, m->live[i]);
    fz_check_stats(m);
    fz_verify(m);
    struct lfp_stats s = fz_stats(m);
    size_t carved = s.blocks_carved;

    m->in_destroy = 1;
    m->fini_calls = 0;
    lfp_pool *pool = m->pool;
    size_t n = lfp_pool_destroy(pool);
    m->in_destroy = 0;
    FZ_EQ(n, m->nlive);
    if (m->checked) /* each block still in use, once */
        for (size_t i = 0; i < m->nlive; i++)
            FZ_REPORTED(pool, m->live[i], LFP_ELEAK);
    if (m->has_fini)
        FZ_EQ(m->fini_calls, carved); /* each carved block, free or not */
    if (m->has_init && m->has_fini)
        FZ_EQ(m->constructed, 0); /* init and fini balance */
    if (m->has_init && !m->has_fini) {
        /* Nothing finalises them: forget the pool's constructed blocks. */
        for (size_t i = 0; i < cmap.cap; i++)
            if (cmap.e[i].key != 0 && cmap.e[i].pool == m->idx)
                cmap.e[i].constructed = 0;
    }
    while (m->nlive > 0)
        fz_live_remove(m, m->live[m->nlive - 1]);
    free(m->live);
    fz_free_caller_mem(m);
    memset(m, 0, sizeof(*m));
}

static void op_create(struct rd *r)
{
    unsigned slot = rd_u8(r) % NPOOLS;
    uint8_t b_bs = rd_u8(r), b_al = rd_u8(r), b_cap = rd_u8(r), b_fl = rd_u8(r);
    uint8_t b_cache = rd_u8(r), b_max = rd_u8(r), b_slab = rd_u8(r), b_mem = rd_u8(r);
    uint8_t b_cb = rd_u8(r), b_name = rd_u8(r);
    struct mpool *m = &P[slot];
    if (m->used)
        fz_destroy(m);
    fz_op = "create";

    struct lfp_config c;
    memset(&c, 0, sizeof(c));
    c.block_size = b_bs >= 0xf8 ? bs_huge[b_bs & 7] : bs_small[b_bs % 32];
    c.align = align_tab[b_al % 16];
    c.capacity = b_cap >= 0xfc ? cap_huge[b_cap & 3] : cap_small[b_cap % 20];
    c.flags = b_fl & 0xf;
    if ((b_fl & 0x30) == 0x30)
        c.flags |= 1u << (4 + (b_fl >> 6) * 9); /* bits 4, 13, 22, 31 */
    c.cache_size = cache_tab[b_cache % 16];
    switch (b_max % 16) {
    case 2: c.max_blocks = c.capacity; break;
    case 3: c.max_blocks = c.capacity + 1; break;
    case 4: c.max_blocks = c.capacity - 1; break; /* below: EINVAL (growable) */
    case 5: c.max_blocks = 1; break;
    case 6: c.max_blocks = 2; break;
    case 7: c.max_blocks = 15; break;
    case 8: c.max_blocks = 16; break;
    case 9: c.max_blocks = 17; break;
    case 10: c.max_blocks = 100; break;
    case 11: c.max_blocks = 1000; break;
    case 12: c.max_blocks = 4096; break;
    case 13: c.max_blocks = c.capacity * 2 + 3; break;
    case 14: c.max_blocks = SIZE_MAX; break;
    default: c.max_blocks = 0; break;
    }
    c.slab_size = slab_tab[b_slab % 16];
    c.trim_threshold = trim_tab[b_slab >> 5];
    if (b_cb % 8 == 5 || b_cb % 8 == 6)
        c.init = fz_init;
    if (b_cb % 8 == 6 || b_cb % 8 == 7)
        c.fini = fz_fini;
    c.arg = m;
    char name_arg[8] = "";
    if (b_name % 4 == 2)
        snprintf(name_arg, sizeof(name_arg), "pool%u", slot);
    if (b_name % 4 >= 2)
        c.name = name_arg; /* "pool<slot>", or "" */

    int growable = (c.flags & LFP_GROWABLE) != 0;
    size_t align, stride, span;
    int lay = fz_layout(&c, &align, &stride, &span);

    /* Caller memory. */
    unsigned mode = b_mem % 16;
    size_t mem_size = 0, off = 0;
    int want_mem = mode >= 8 && mode != 14;
    if (mode >= 8) {
        int fits = lay == 0 && span <= ((size_t)64 << 20) && stride <= ((size_t)1 << 20);
        switch (mode) {
        case 8: case 9: case 13: mem_size = fits ? span : 64; break;
        case 10: mem_size = fits ? span + (stride ? stride : 16) + (b_mem >> 4) : 64; break;
        case 11: mem_size = fits && span > 0 ? span - 1 : 0; break;
        case 12: mem_size = fits && span >= stride ? span - stride : 0; break;
        case 14: mem_size = fits && span > 0 ? span : 1; break;
        default: mem_size = 0; break;
        }
        size_t a = lay != 1 ? align : 1;
        if (mode == 13) {
            /* Misaligned by a power of two below the alignment. */
            unsigned lg = 0;
            while (((size_t)2 << lg) <= a)
                lg++;
            off = lg ? (size_t)1 << ((b_mem >> 4) % lg) : 1;
        } else if (b_mem & 0x10) {
            off = a % fz_pagesz; /* aligned exactly as asked, no more */
        }
    }
    if (want_mem) {
        size_t total = off + mem_size + 64;
        m->raw_size = (total + fz_pagesz - 1) & ~(fz_pagesz - 1);
        m->raw = aligned_alloc(fz_pagesz, m->raw_size);
        if (m->raw == NULL) {
            fprintf(stderr, "fuzz_api: out of memory\n");
            abort();
        }
        m->mem = m->raw + off;
        /* The pool may touch [mem, mem + mem_size) and nothing around it. */
        FZ_POISON(m->raw, off);
        FZ_POISON(m->mem + mem_size, m->raw_size - off - mem_size);
        c.mem = m->mem;
    }
    c.mem_size = mem_size;

    /* What lfpool.h says lfp_pool_create must answer. */
    int einval = 0, ealign = 0, huge = 0;
    if (c.block_size == 0 || (c.flags & ~0xfu) || ((c.flags & LFP_ZERO) && c.init) ||
        (!growable && c.capacity == 0) || c.cache_size > LFP_CACHE_MAX || lay != 0)
        einval = 1;
    int layout_einval = einval;
    if (lay == 0 && span > FZ_HUGE)
        huge = 1;
    if (growable) {
        if (c.mem != NULL || c.mem_size != 0)
            einval = 1;
        if (c.max_blocks != 0 && c.max_blocks < c.capacity)
            einval = 1;
        if (c.slab_size != 0) {
            if (!fz_pow2(c.slab_size) || c.slab_size < 65536 ||
                (lay == 0 && c.slab_size < stride))
                einval = 1;
        } else if (lay == 0 && stride > FZ_HUGE / 16) {
            huge = 1; /* the library's slab would exceed the address space */
        }
    } else if (c.mem != NULL) {
        if (lay != 0 || c.mem_size < span)
            einval = 1;
        if ((uintptr_t)c.mem & (align - 1))
            ealign = 1;
    } else if (c.mem_size != 0) {
        /* Not in lfpool.h: a size without memory is refused as invalid. */
        einval = 1;
    }

    /* lfp_pool_bytes for the same configuration without caller memory
     * (beyond the address space, the library may call it invalid). */
    if (!growable) {
        struct lfp_config cb = c;
        cb.mem = NULL;
        cb.mem_size = 0;
        size_t got = lfp_pool_bytes(&cb);
        if (huge)
            FZ_CHECK(got == span || got == 0);
        else
            FZ_EQ(got, layout_einval ? 0 : span);
        if (!layout_einval && !huge && c.init == NULL)
            FZ_EQ(LFP_POOL_BYTES(c.capacity, c.block_size, c.align), span);
    } else {
        FZ_EQ(lfp_pool_bytes(&c), 0); /* no caller memory for these */
    }

    m->idx = (int)slot;
    m->cfg = c;
    m->align = align;
    m->stride = stride;
    m->span = span;
    m->growable = growable;
    m->has_init = c.init != NULL;
    m->has_fini = c.fini != NULL;
    m->zero = (c.flags & LFP_ZERO) != 0;
    m->checked = (c.flags & LFP_CHECKED) != 0 || fz_env_checked;
    m->has_name = c.name != NULL;
    m->name_arg = name_arg;
    if (c.name != NULL)
        memcpy(m->name, name_arg, sizeof(m->name));
    m->limit = !growable ? c.capacity : c.max_blocks ? c.max_blocks : FZ_UNBOUNDED;
    if (m->limit > LIVE_CAP)
        m->limit = FZ_UNBOUNDED;
    m->creating = 1;

    lfp_pool *out = (lfp_pool *)(void *)&out; /* must become NULL on failure */
    int rc = lfp_pool_create(&c, &out);
    m->creating = 0;
    memset(name_arg, 'X', sizeof(name_arg) - 1); /* the pool keeps a copy */

    if (fz_trace)
        fprintf(stderr,
                "  create slot %u: block_size %zu align %zu capacity %zu flags %#x "
                "cache %u max_blocks %zu slab %zu trim %zu mem %s%+zd size %zu "
                "init %d fini %d -> %d (expected %s)\n",
                slot, c.block_size, c.align, c.capacity, c.flags, c.cache_size,
                c.max_blocks, c.slab_size, c.trim_threshold, c.mem ? "buf" : "NULL",
                (ssize_t)off, c.mem_size, c.init != NULL, c.fini != NULL, rc,
                einval ? "EINVAL" : ealign ? "EALIGN" : huge ? "EINVAL or ENOMEM"
                : fz_npools() >= LFP_MAX_POOLS ? "ENOMEM" : "OK");
    if (einval)
        FZ_EQ(rc, LFP_EINVAL);
    else if (ealign)
        FZ_EQ(rc, LFP_EALIGN);
    else if (huge || fz_npools() >= LFP_MAX_POOLS)
        FZ_CHECK(rc == LFP_EINVAL || rc == LFP_ENOMEM);
    else
        FZ_EQ(rc, LFP_OK);
    if (!einval && !ealign && !huge && fz_npools() >= LFP_MAX_POOLS)
        FZ_EQ(rc, LFP_ENOMEM); /* no pool id is free */

    if (rc != LFP_OK) {
        FZ_CHECK(out == NULL);
        if (m->has_fini)
            FZ_EQ(m->constructed, 0); /* whatever was made was taken apart */
        for (size_t i = 0; i < cmap.cap; i++)
            if (cmap.e[i].key != 0 && cmap.e[i].pool == m->idx)
                cmap.e[i].constructed = 0;
        fz_free_caller_mem(m);
        memset(m, 0, sizeof(*m));
        return;
    }
    FZ_CHECK(out != NULL);
    m->pool = out;
    m->used = 1;
    fz_post(m);
    m->name_arg = NULL; /* a dead stack buffer from here on */
}

static void op_destroy(struct rd *r)
{
    struct mpool *m = fz_pick(r);
    if (m != NULL)
        fz_destroy(m);
}

static void fz_alloc_one(struct mpool *m, int write)
{
    if (!fz_may_alloc(m))
        return;
    errno = 0;
    void *p = lfp_alloc(m->pool);
    if (p == NULL) {
        FZ_EQ(errno, ENOBUFS);
        FZ_CHECK(m->nlive >= m->limit); /* only a full pool says no */
        return;
    }
    FZ_CHECK(m->nlive < m->limit);
    fz_new_block(m, p, write);
}

static void op_alloc(struct rd *r)
{
    struct mpool *m = fz_pick(r);
    uint8_t w = rd_u8(r);
    if (m == NULL)
        return;
    fz_op = "alloc";
    fz_alloc_one(m, w & 1);
    fz_post(m);
}

static void fz_free_live(struct mpool *m, size_t i)
{
    void *p = m->live[i];
    fz_check_pattern(m, p);
    FZ_EQ(lfp_free(m->pool, p), LFP_OK);
    fz_live_remove(m, p);
    fz_note_freed(m, p);
}

static void op_free(struct rd *r)
{
    struct mpool *m = fz_pick(r);
    unsigned sel = rd_u16(r);
    if (m == NULL || m->nlive == 0)
        return;
    fz_op = "free";
    fz_free_live(m, sel % m->nlive);
    fz_post(m);
}

static void op_free_bad(struct rd *r)
{
    struct mpool *m = fz_pick(r);
    uint8_t kind = rd_u8(r), sel = rd_u8(r);
    if (m == NULL)
        return;
    fz_op = "free(bad pointer)";
    alignas(64) char stack[128];
    if (kind == 0xff) {
        FZ_EQ(lfp_free(m->pool, NULL), LFP_OK);
    } else {
        struct badptr b;
        fz_bad(m, kind, sel, stack, &b);
        FZ_EQ(lfp_free(m->pool, b.p), LFP_EFOREIGN);
        if (m->checked)
            FZ_REPORTED(m->pool, b.p, LFP_EFOREIGN);
        FZ_EQ(lfp_owns(m->pool, b.p), 0);
        free(b.heap);
    }
    fz_post(m);
}

static void op_alloc_bulk(struct rd *r)
{
    struct mpool *m = fz_pick(r);
    uint8_t bn = rd_u8(r);
    if (m == NULL)
        return;
    fz_op = "alloc_bulk";
    size_t n = bn % 70;
    if (!fz_bounded(m) && m->nlive + n > LIVE_CAP)
        n = LIVE_CAP - m->nlive;
    size_t left = m->limit - m->nlive;
    size_t want = n < left ? n : left;
    void **v = malloc((n ? n : 1) * sizeof(void *)); /* exact: ASan sees overruns */
    FZ_CHECK(v != NULL);
    errno = 0;
    size_t k = lfp_alloc_bulk(m->pool, v, n);
    FZ_EQ(k, want);
    if (k < n)
        FZ_EQ(errno, ENOBUFS);
    for (size_t i = 0; i < k; i++)
        fz_new_block(m, v[i], (bn >> 7) & 1);
    free(v);
    fz_post(m);
}

static void op_free_bulk(struct rd *r, int with_bad)
{
    struct mpool *m = fz_pick(r);
    uint8_t bc = rd_u8(r), bs = rd_u8(r), bnull = rd_u8(r), kind = rd_u8(r);
    if (m == NULL)
        return;
    fz_op = with_bad ? "free_bulk(one bad pointer)" : "free_bulk";
    size_t c = m->nlive ? bc % 40 % (m->nlive + 1) : 0;
    size_t start = m->nlive ? bs % m->nlive : 0;
    size_t nnull = bnull % 3, n = c + nnull + (with_bad ? 1 : 0);
    void **v = malloc((n ? n : 1) * sizeof(void *));
    FZ_CHECK(v != NULL);
    size_t j = 0;
    for (size_t i = 0; i < c; i++)
        v[j++] = m->live[(start + i) % m->nlive];
    for (size_t i = 0; i < nnull; i++)
        v[j++] = NULL;
    alignas(64) char stack[128];
    struct badptr b = { NULL, NULL };
    if (with_bad) {
        fz_bad(m, kind, bc, stack, &b);
        v[j++] = b.p;
    }
    /* Shuffle, so the bad and the NULL entries land anywhere. */
    for (size_t i = n; i > 1; i--) {
        size_t k = (bnull + i * (size_t)kind + 7 * i) % i;
        void *t = v[i - 1];
        v[i - 1] = v[k];
        v[k] = t;
    }
    if (with_bad) {
        FZ_EQ(lfp_free_bulk(m->pool, v, n), LFP_EFOREIGN);
        if (m->checked)
            FZ_REPORTED(m->pool, b.p, LFP_EFOREIGN);
        /* Nothing freed: the blocks are still the harness's. */
    } else {
        for (size_t i = 0; i < n; i++)
            if (v[i] != NULL)
                fz_check_pattern(m, v[i]);
        FZ_EQ(lfp_free_bulk(m->pool, v, n), LFP_OK);
        for (size_t i = 0; i < n; i++) {
            if (v[i] != NULL) {
                fz_live_remove(m, v[i]);
                fz_note_freed(m, v[i]);
            }
        }
    }
    free(b.heap);
    free(v);
    fz_post(m);
}

static void op_owns(struct rd *r)
{
    struct mpool *m = fz_pick(r);
    uint8_t kind = rd_u8(r), sel = rd_u8(r);
    if (m == NULL)
        return;
    fz_op = "owns";
    alignas(64) char stack[128];
    switch (kind % 4) {
    case 0:
        if (m->nlive > 0)
            FZ_EQ(lfp_owns(m->pool, m->live[sel % m->nlive]), 1);
        break;
    case 1:
        /* Freed blocks are still carved blocks of the pool (no trim). */
        if (m->nfreed > 0)
            FZ_EQ(lfp_owns(m->pool, m->freed[sel % m->nfreed]), 1);
        break;
    case 2:
        FZ_EQ(lfp_owns(m->pool, NULL), 0);
        break;
    default: {
        struct badptr b;
        fz_bad(m, kind >> 2, sel, stack, &b);
        FZ_EQ(lfp_owns(m->pool, b.p), 0);
        free(b.heap);
        break;
    }
    }
}

static void op_stats(struct rd *r)
{
    struct mpool *m = fz_pick(r);
    if (m == NULL)
        return;
    fz_op = "stats";
    fz_check_stats(m);
}

static void op_verify(struct rd *r)
{
    struct mpool *m = fz_pick(r);
    if (m == NULL)
        return;
    fz_op = "verify";
    fz_verify(m);
    for (size_t i = 0; i < m->nlive; i++)
        fz_check_pattern(m, m->live[i]);
}

/* After a trim: free blocks whose slab went back to the OS are no longer
 * the pool's (lfp_owns says which, nothing else having run meanwhile); the
 * others are still free blocks of it. */
static void fz_forget_released(struct mpool *m)
{
    unsigned k = 0;
    for (unsigned i = 0; i < m->nfreed; i++)
        if (lfp_owns(m->pool, m->freed[i]))
            m->freed[k++] = m->freed[i];
    m->nfreed = k;
    m->freed_pos = k % FREED_RING;
    k = 0;
    for (unsigned i = 0; i < m->ncorrupt; i++)
        if (lfp_owns(m->pool, m->corrupt[i]))
            m->corrupt[k++] = m->corrupt[i];
    m->ncorrupt = k;
}

static void op_trim(struct rd *r)
{
    struct mpool *m = fz_pick(r);
    if (m == NULL)
        return;
    fz_op = "trim";
    struct lfp_stats before = fz_stats(m);
    size_t got = lfp_pool_trim(m->pool);
    if (!m->growable) {
        FZ_EQ(got, 0); /* fixed pools keep their memory */
    } else {
        struct lfp_stats after = fz_stats(m);
        m->trimmed = 1;
        fz_forget_released(m);
        FZ_EQ(got % (size_t)sysconf(_SC_PAGESIZE), 0); /* whole slabs, whole pages */
        FZ_CHECK(after.blocks_total <= before.blocks_total);
        if (m->cfg.trim_threshold == 0) {
            /* What went away is what it reports. (With a threshold, the
             * flush that starts the trim may trigger an automatic trim,
             * whose bytes it does not count.) */
            FZ_EQ(got, before.bytes_reserved - after.bytes_reserved);
            FZ_CHECK((before.blocks_total - after.blocks_total) * m->stride <= got +
                     (before.blocks_total - before.blocks_carved) * m->stride);
        }
        /* This thread's cache went back first; with nothing else cached,
         * every slab with no block in use is free in the depot. */
        FZ_EQ(after.blocks_cached, 0);
        if (m->nlive == 0)
            FZ_EQ(after.blocks_total, 0);
    }
    fz_post(m);
}

static void op_flush(void)
{
    fz_op = "thread_flush";
    lfp_thread_flush();
    for (int i = 0; i < NPOOLS; i++) {
        if (!P[i].used)
            continue;
        struct lfp_stats s = fz_stats(&P[i]);
        FZ_EQ(s.blocks_cached, 0); /* the only thread's cache is empty */
        fz_post(&P[i]);
    }
}

static void op_null_args(struct rd *r)
{
    struct mpool *m = fz_pick(r);
    fz_op = "NULL arguments";
    lfp_pool *out = (lfp_pool *)(void *)&out;
    FZ_EQ(lfp_pool_create(NULL, &out), LFP_EINVAL);
    FZ_CHECK(out == NULL);
    struct lfp_config c;
    memset(&c, 0, sizeof(c));
    c.block_size = 16;
    c.capacity = 4;
    FZ_EQ(lfp_pool_create(&c, NULL), LFP_EINVAL);
    FZ_EQ(lfp_pool_bytes(NULL), 0);
    FZ_EQ(lfp_pool_destroy(NULL), 0);
    errno = 0;
    FZ_CHECK(lfp_alloc(NULL) == NULL);
    FZ_EQ(errno, EINVAL);
    int x;
    FZ_EQ(lfp_free(NULL, NULL), LFP_EINVAL);
    FZ_EQ(lfp_free(NULL, &x), LFP_EINVAL);
    void *v[2] = { &x, NULL };
    FZ_EQ(lfp_alloc_bulk(NULL, v, 2), 0);
    FZ_EQ(lfp_free_bulk(NULL, v, 2), LFP_EINVAL);
    FZ_EQ(lfp_owns(NULL, &x), 0);
    FZ_EQ(lfp_owns(NULL, NULL), 0);
    struct lfp_stats s;
    FZ_EQ(lfp_pool_stats(NULL, &s), LFP_EINVAL);
    FZ_EQ(lfp_pool_verify(NULL), LFP_EINVAL);
    FZ_EQ(lfp_pool_trim(NULL), 0);
    for (int e = -2; e <= LFP_EDOUBLE + 2; e++) {
        const char *msg = lfp_strerror(e);
        FZ_CHECK(msg != NULL && msg[0] != '\0');
    }
    if (m != NULL) {
        FZ_EQ(lfp_pool_stats(m->pool, NULL), LFP_EINVAL);
        FZ_EQ(lfp_alloc_bulk(m->pool, v, 0), 0);
        FZ_EQ(lfp_free_bulk(m->pool, NULL, 0), LFP_OK);
        FZ_EQ(lfp_free_bulk(m->pool, NULL, 3), LFP_EINVAL);
        void *nulls[3] = { NULL, NULL, NULL };
        FZ_EQ(lfp_free_bulk(m->pool, nulls, 3), LFP_OK);
        fz_post(m);
    }
}

/* Allocate until the pool says no (bounded pools), or a burst. */
static void op_exhaust(struct rd *r)
{
    struct mpool *m = fz_pick(r);
    uint8_t b = rd_u8(r);
    if (m == NULL)
        return;
    fz_op = "alloc until full";
    if (fz_bounded(m)) {
        while (m->nlive < m->limit)
            fz_alloc_one(m, b & 1);
        fz_alloc_one(m, b & 1); /* NULL, ENOBUFS */
        fz_alloc_one(m, b & 1);
    } else {
        for (unsigned i = 0; i < 1u + b % 128u; i++)
            fz_alloc_one(m, b & 1);
    }
    fz_post(m);
}

static void op_free_all(struct rd *r)
{
    struct mpool *m = fz_pick(r);
    uint8_t b = rd_u8(r);
    if (m == NULL)
        return;
    fz_op = "free all";
    /* From the newest, the oldest, or in between. */
    while (m->nlive > 0)
        fz_free_live(m, b % 3 == 0 ? m->nlive - 1 : b % 3 == 1 ? 0 : m->nlive / 2);
    fz_post(m);
}

/* ---- misuse ---- */

/* A block m gave out and got back, not handed out since, or NULL. */
static void *fz_freed_block(struct mpool *m, unsigned sel)
{
    for (unsigned i = 0; i < m->nfreed; i++) {
        void *p = m->freed[(sel + i) % m->nfreed];
        if (hfind(&lset, p) == NULL)
            return p;
    }
    return NULL;
}

/* What checked mode must catch: double frees, which only it may be given
 * (they break other pools), and writes after free, which any pool without
 * a constructor survives (the harness writes past the links). */
static void op_misuse(struct rd *r)
{
    struct mpool *m = fz_pick(r);
    uint8_t kind = rd_u8(r), sel = rd_u8(r);
    if (m == NULL)
        return;
    fz_op = "misuse";
    void *freed = fz_freed_block(m, sel);
    switch (kind % 4) {
    case 0: /* a double free: refused, the pool unchanged */
        if (!m->checked || freed == NULL)
            return;
        FZ_EQ(lfp_free(m->pool, freed), LFP_EDOUBLE);
        FZ_REPORTED(m->pool, freed, LFP_EDOUBLE);
        break;
    case 1:   /* free_bulk listing a live block twice */
    case 2: { /* free_bulk with a free block among live ones */
        if (!m->checked || m->nlive == 0 || (kind % 4 == 2 && freed == NULL))
            return;
        size_t c = 1 + sel % (m->nlive < 8 ? m->nlive : 8);
        void **v = malloc((c + 1) * sizeof(void *));
        FZ_CHECK(v != NULL);
        for (size_t i = 0; i < c; i++)
            v[i] = m->live[(sel + i) % m->nlive];
        void *dup = kind % 4 == 1 ? v[sel % c] : freed;
        size_t at = (size_t)(sel >> 3) % (c + 1);
        memmove(v + at + 1, v + at, (c - at) * sizeof(void *));
        v[at] = dup;
        FZ_EQ(lfp_free_bulk(m->pool, v, c + 1), LFP_EDOUBLE); /* all or none */
        FZ_REPORTED(m->pool, dup, LFP_EDOUBLE);
        free(v);
        break;
    }
    default: { /* a write after free, past the links */
        if (freed == NULL || m->has_init || m->cfg.block_size <= LFP_LINK_BYTES ||
            m->ncorrupt == FREED_RING)
            return;
        for (unsigned i = 0; i < m->ncorrupt; i++)
            if (m->corrupt[i] == freed)
                return;
        /* The byte lies in an 8-byte granule of its own (blocks are at least
         * pointer-aligned), which ASan builds of the library poison. */
        unsigned char *q = (unsigned char *)freed + LFP_LINK_BYTES;
        int hidden = FZ_IS_POISONED(q);
        if (hidden)
            FZ_UNPOISON(q, 8);
        *q ^= 0x5a;
        if (hidden)
            FZ_POISON(q, 8);
        m->corrupt[m->ncorrupt++] = freed;
        break;
    }
    }
    fz_post(m);
}

/* ---- another thread ---- */

/* What a short-lived thread does on one pool, in this order: free blocks
 * the main thread allocated, allocate, free some of its own, exit (which
 * hands its cached blocks back). The main thread waits for it, so the
 * model stays sequential. */
struct fz_job {
    lfp_pool *pool;
    void **give;
    size_t ngive;
    size_t want;
    int bulk, flush;
    void **got;
    size_t nalloced, ngot; /* allocated; still held when it exits */
    size_t nown;           /* how many of its blocks it frees */
    int alloc_errno;       /* errno when it got fewer than it wanted */
    int free_rc;           /* the first non-zero lfp_free result */
};

static void *fz_job_run(void *arg)
{
    struct fz_job *j = arg;
    for (size_t i = 0; i < j->ngive; i++) {
        int rc = lfp_free(j->pool, j->give[i]);
        if (rc != LFP_OK && j->free_rc == LFP_OK)
            j->free_rc = rc;
    }
    errno = 0;
    if (j->bulk) {
        j->nalloced = lfp_alloc_bulk(j->pool, j->got, j->want);
        if (j->nalloced < j->want)
            j->alloc_errno = errno;
    } else {
        while (j->nalloced < j->want) {
            void *p = lfp_alloc(j->pool);
            if (p == NULL) {
                j->alloc_errno = errno;
                break;
            }
            j->got[j->nalloced++] = p;
        }
    }
    j->ngot = j->nalloced;
    for (size_t k = 0; k < j->nown && j->ngot > 0; k++) {
        int rc = lfp_free(j->pool, j->got[--j->ngot]);
        if (rc != LFP_OK && j->free_rc == LFP_OK)
            j->free_rc = rc;
    }
    if (j->flush)
        lfp_thread_flush();
    return NULL;
}

static void op_thread(struct rd *r)
{
    struct mpool *m = fz_pick(r);
    uint8_t b_give = rd_u8(r), b_want = rd_u8(r), b_own = rd_u8(r), b_fl = rd_u8(r);
    if (m == NULL)
        return;
    fz_op = "thread";
    struct fz_job j;
    memset(&j, 0, sizeof(j));
    j.pool = m->pool;
    j.ngive = m->nlive ? b_give % 17 % (m->nlive + 1) : 0;
    j.want = b_want % 80;
    if (!fz_bounded(m) && m->nlive + j.want > LIVE_CAP)
        j.want = LIVE_CAP - m->nlive;
    j.nown = b_own % 17;
    j.bulk = b_fl & 1;
    j.flush = (b_fl >> 1) & 1;
    /* With this thread's magazines handed back first, every free block is
     * within the other thread's reach: its count is exact. */
    int exact = (b_fl >> 2) & 1;
    if (exact)
        lfp_thread_flush();
    j.give = malloc((j.ngive ? j.ngive : 1) * sizeof(void *));
    j.got = malloc((j.want ? j.want : 1) * sizeof(void *));
    FZ_CHECK(j.give != NULL && j.got != NULL);
    size_t start = m->nlive ? b_give % m->nlive : 0;
    for (size_t i = 0; i < j.ngive; i++)
        j.give[i] = m->live[(start + i) % m->nlive];

    for (size_t i = 0; i < j.ngive; i++)
        fz_check_pattern(m, j.give[i]);

    pthread_t t;
    if (pthread_create(&t, NULL, fz_job_run, &j) != 0) {
        free(j.give);
        free(j.got);
        return; /* no thread to be had: nothing happened */
    }
    FZ_EQ(pthread_join(t, NULL), 0);

    FZ_EQ(j.free_rc, LFP_OK);
    for (size_t i = 0; i < j.ngive; i++) {
        fz_live_remove(m, j.give[i]);
        fz_note_freed(m, j.give[i]);
    }
    size_t left = m->limit - m->nlive;
    size_t expect = j.want < left ? j.want : left;
    if (exact)
        FZ_EQ(j.nalloced, expect);
    else
        FZ_CHECK(j.nalloced <= expect); /* the rest may sit in our cache */
    if (j.nalloced < j.want)
        FZ_EQ(j.alloc_errno, ENOBUFS);
    if (m->nlive + j.nalloced > m->peak)
        m->peak = m->nlive + j.nalloced;
    for (size_t i = j.ngot; i < j.nalloced; i++)
        fz_handed_out(m, j.got[i]); /* handed out and given back */
    for (size_t i = 0; i < j.ngot; i++)
        fz_new_block(m, j.got[i], 1);
    free(j.give);
    free(j.got);
    fz_post(m);
}

/* ---- pool ids ---- */

static void fz_fillers_release(void)
{
    while (nfillers > 0)
        FZ_EQ(lfp_pool_destroy(fillers[--nfillers]), 0);
}

static void op_ids(struct rd *r)
{
    uint8_t b = rd_u8(r), n = rd_u8(r);
    fz_op = "pool ids";
    struct lfp_config c;
    memset(&c, 0, sizeof(c));
    c.block_size = 16;
    c.capacity = 1;
    /* Taking every id costs LFP_MAX_POOLS creates, each scanning the id
     * table from the start: kept rare. */
    switch (b == 0xff ? 2 : b % 4 == 2 ? 0 : b % 4) {
    case 0:
    case 1: /* take 1 to 80 more ids, up to 160 */
        for (unsigned i = 0; i <= n % 80u && nfillers < 160; i++) {
            lfp_pool *p = NULL;
            FZ_EQ(lfp_pool_create(&c, &p), LFP_OK);
            fillers[nfillers++] = p;
        }
        break;
    case 2: { /* take every id: the next create has none */
        while (fz_npools() < LFP_MAX_POOLS) {
            lfp_pool *p = NULL;
            FZ_EQ(lfp_pool_create(&c, &p), LFP_OK);
            fillers[nfillers++] = p;
        }
        lfp_pool *p = (lfp_pool *)(void *)&p;
        FZ_EQ(lfp_pool_create(&c, &p), LFP_ENOMEM);
        FZ_CHECK(p == NULL);
        if (n & 1) /* give one back: it can be had again */
            FZ_EQ(lfp_pool_destroy(fillers[--nfillers]), 0);
        break;
    }
    default:
        fz_fillers_release();
        break;
    }
}

enum {
    OP_CREATE, OP_CREATE2, OP_DESTROY, OP_ALLOC, OP_ALLOC2, OP_ALLOC3, OP_FREE,
    OP_FREE2, OP_FREE_BAD, OP_ALLOC_BULK, OP_FREE_BULK, OP_FREE_BULK_BAD, OP_OWNS,
    OP_STATS, OP_VERIFY, OP_TRIM, OP_FLUSH, OP_NULL_ARGS, OP_EXHAUST, OP_FREE_ALL,
    OP_THREAD, OP_IDS, OP_MISUSE, OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
    "create", "create", "destroy", "alloc", "alloc", "alloc", "free", "free",
    "free(bad)", "alloc_bulk", "free_bulk", "free_bulk(bad)", "owns", "stats",
    "verify", "trim", "thread_flush", "NULL arguments", "alloc until full",
    "free all", "thread", "pool ids", "misuse",
};

static void fz_reset(void)
{
    static int once;
    if (!once) {
        const char *t = getenv("FUZZ_API_TRACE");
        fz_trace = t != NULL && t[0] == '1';
        t = getenv("LFP_CHECKED");
        fz_env_checked = t != NULL && strcmp(t, "1") == 0;
        lfp_set_error_handler(fz_handler);
        once = 1;
    }
    memset(P, 0, sizeof(P));
    hclear(&lset);
    hclear(&cmap);
    nreports = 0;
    fz_step = 0;
    fz_op = "start";
    if (fz_pagesz == 0) {
        long ps = sysconf(_SC_PAGESIZE);
        fz_pagesz = ps > 0 ? (size_t)ps : 4096;
        long cpus = sysconf(_SC_NPROCESSORS_CONF);
        for (fz_stacks = 1; fz_stacks < 64 && (long)fz_stacks < cpus;)
            fz_stacks <<= 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rd r = { data, size, 0 };
    fz_reset();
    while (r.i < r.n && fz_step < MAX_STEPS) {
        fz_step++;
        unsigned code = rd_u8(&r) % OP_COUNT;
        if (fz_trace) {
            fprintf(stderr, "step %lu: %s;", fz_step, op_names[code]);
            for (int i = 0; i < NPOOLS; i++)
                if (P[i].used)
                    fprintf(stderr, " pool %d holds %zu", i, P[i].nlive);
            fputc('\n', stderr);
        }
        switch (code) {
        case OP_CREATE:
        case OP_CREATE2: op_create(&r); break;
        case OP_DESTROY: op_destroy(&r); break;
        case OP_ALLOC:
        case OP_ALLOC2:
        case OP_ALLOC3: op_alloc(&r); break;
        case OP_FREE:
        case OP_FREE2: op_free(&r); break;
        case OP_FREE_BAD: op_free_bad(&r); break;
        case OP_ALLOC_BULK: op_alloc_bulk(&r); break;
        case OP_FREE_BULK: op_free_bulk(&r, 0); break;
        case OP_FREE_BULK_BAD: op_free_bulk(&r, 1); break;
        case OP_OWNS: op_owns(&r); break;
        case OP_STATS: op_stats(&r); break;
        case OP_VERIFY: op_verify(&r); break;
        case OP_TRIM: op_trim(&r); break;
        case OP_FLUSH: op_flush(); break;
        case OP_NULL_ARGS: op_null_args(&r); break;
        case OP_EXHAUST: op_exhaust(&r); break;
        case OP_FREE_ALL: op_free_all(&r); break;
        case OP_THREAD: op_thread(&r); break;
        case OP_IDS: op_ids(&r); break;
        case OP_MISUSE: op_misuse(&r); break;
        default: break;
        }
        fz_no_reports();
    }
    fz_step++;
    for (int i = 0; i < NPOOLS; i++)
        if (P[i].used)
            fz_destroy(&P[i]);
    fz_fillers_release();
    fz_no_reports();
    /* Every constructed block was finalised by its pool's destroy. */
    for (size_t i = 0; i < cmap.cap; i++)
        FZ_CHECK(cmap.e[i].key == 0 || !cmap.e[i].constructed);
    FZ_EQ(lset.n, 0);
    hclear(&lset);
    hclear(&cmap);
    return 0;
}

#ifdef FUZZ_STANDALONE
/* Replay inputs without libFuzzer: each argument is a file or a directory
 * whose files (not recursively, dot files skipped) are run in name order. */
#include <dirent.h>
#include <sys/stat.h>

static int fz_run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (buf == NULL) {
            fclose(f);
            fprintf(stderr, "fuzz_api: out of memory\n");
            return -1;
        }
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        uint8_t *nb = realloc(buf, cap * 2);
        if (nb == NULL)
            free(buf);
        buf = nb;
        cap *= 2;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        fprintf(stderr, "fuzz_api: cannot read %s\n", path);
        free(buf);
        return -1;
    }
    printf("replay %s (%zu bytes)\n", path, n);
    fflush(stdout);
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE_OR_DIR...\n", argv[0]);
        return 2;
    }
    size_t runs = 0;
    int bad = 0;
    for (int a = 1; a < argc; a++) {
        struct stat st;
        if (stat(argv[a], &st) != 0) {
            perror(argv[a]);
            bad = 1;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (fz_run_file(argv[a]) == 0)
                runs++;
            else
                bad = 1;
            continue;
        }
        struct dirent **list;
        int k = scandir(argv[a], &list, NULL, alphasort);
        if (k < 0) {
            perror(argv[a]);
            bad = 1;
            continue;
        }
        for (int i = 0; i < k; i++) {
            char path[4096];
            struct stat fst;
            if (list[i]->d_name[0] != '.' &&
                snprintf(path, sizeof(path), "%s/%s", argv[a], list[i]->d_name) <
                    (int)sizeof(path) &&
                stat(path, &fst) == 0 && S_ISREG(fst.st_mode)) {
                if (fz_run_file(path) == 0)
                    runs++;
                else
                    bad = 1;
            }
            free(list[i]);
        }
        free(list);
    }
    printf("fuzz_api: %zu inputs replayed%s\n", runs, bad ? ", some unreadable" : "");
    if (runs == 0)
        fprintf(stderr, "fuzz_api: no input found\n");
    return bad || runs == 0 ? 1 : 0;
}
#endif
