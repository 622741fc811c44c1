/* SPDX-License-Identifier: MIT */
/* The rows of lfp-bench: lfpool itself, the general-purpose allocators it is
 * compared with, a mutex-guarded free list, and a thread-local free list.
 *
 * Peers are loaded with dlopen(RTLD_LOCAL) and called through entry points
 * looked up in their own library (jemalloc's malloc, mi_malloc, tc_malloc,
 * ...). Linking them would let the first one in the search order replace
 * malloc for the whole program, and then the "glibc" row would measure
 * somebody else. RTLD_LOCAL keeps their malloc symbols out of the global
 * scope. */
#include "bench.h"

#include <lfpool.h>
#include <stdatomic.h>

#include "stack.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef __GLIBC__
#include <gnu/lib-names.h>
#endif

#define CACHE_LINE 64u

/* A pool sized for the workload must not take the machine's memory. */
#define POOL_BYTES_MAX ((size_t)512 << 20)

unsigned bench_lfp_cache;
size_t bench_lfp_slab;

/* ------------------------------------------------------------------------ */
/* Sizing shared by the fixed pools (lfpool, mutex-list). */

/* The blocks per magazine lfpool uses at this stride: --cache, or the
 * library's choice for cache_size 0 (LFP_CACHE_BYTES of blocks, 16 to
 * LFP_CACHE_DEFAULT). */
static size_t lfp_magazine(size_t stride)
{
    size_t m = LFP_CACHE_BYTES / stride;
    if (bench_lfp_cache)
        return bench_lfp_cache;
    return m < 16 ? 16 : m > LFP_CACHE_DEFAULT ? LFP_CACHE_DEFAULT : m;
}

/* Threads' caches (two magazines each, plus partly filled ones in the
 * depot) hold blocks that are free but not available to other threads, so a
 * fixed pool needs slack over the blocks actually live at once. Generous
 * slack where memory allows; with large blocks, four magazines per thread,
 * which still covers the caches. */
static size_t pool_capacity(const struct bench_params *p, size_t stride)
{
    size_t mag = lfp_magazine(stride), slack = 1024;
    size_t n = (size_t)p->threads * (p->per_thread + slack) + p->in_flight;
    if (n > POOL_BYTES_MAX / stride) {
        slack = 4 * mag;
        n = (size_t)p->threads * (p->per_thread + slack) + p->in_flight;
    }
    /* lfpool caps a magazine at capacity / 16 (so that idle threads cannot
     * starve a small pool); the bench measures the magazine size asked for,
     * so its pools are never that small. */
    if (n < 16 * mag)
        n = 16 * mag;
    return n;
}

static size_t list_stride(size_t size)
{
    size_t a = _Alignof(max_align_t);
    if (size < sizeof(void *))
        size = sizeof(void *);
    return (size + a - 1) & ~(a - 1);
}

static void *alloc_lines(size_t bytes)
{
    size_t n = (bytes + CACHE_LINE - 1) & ~(size_t)(CACHE_LINE - 1);
    void *p = aligned_alloc(CACHE_LINE, n);
    if (p)
        memset(p, 0, n);
    return p;
}

/* ------------------------------------------------------------------------ */
/* lfpool */

struct lfp_row_global {
    lfp_pool *pool;
};

static void *lfp_row_create(const struct bench_alloc *a,
                            const struct bench_params *p, char *err,
                            size_t errlen)
{
    struct lfp_config cfg;
    struct lfp_row_global *g;
    int rc;

    memset(&cfg, 0, sizeof cfg);
    cfg.block_size = p->size;
    cfg.capacity = pool_capacity(p, LFP__STRIDE(p->size, 0));
    cfg.name = a->name;
    cfg.cache_size = bench_lfp_cache;
    if (strcmp(a->name, "lfpool-nocache") == 0)
        cfg.flags = LFP_NO_CACHE;
    else if (strcmp(a->name, "lfpool-growable") == 0) {
        cfg.flags = LFP_GROWABLE; /* the same blocks, reserved up front */
        cfg.slab_size = bench_lfp_slab;
    }
    else if (strcmp(a->name, "lfpool-checked") == 0)
        cfg.flags = LFP_CHECKED; /* what the checks cost when they are on */
    /* Spike: nothing up front, no bound, trimmed only on request, as a
     * server would configure a pool that follows its load. */
    if (p->grow && (cfg.flags & LFP_GROWABLE))
        cfg.capacity = 0;
    else if (cfg.capacity > POOL_BYTES_MAX / LFP__STRIDE(p->size, 0)) {
        snprintf(err, errlen, "a pool of %zu blocks of %zu bytes exceeds %zu MiB",
                 cfg.capacity, p->size, POOL_BYTES_MAX >> 20);
        return NULL;
    }
    g = malloc(sizeof *g);
    if (!g) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    rc = lfp_pool_create(&cfg, &g->pool);
    if (rc != 0) {
        snprintf(err, errlen, "lfp_pool_create: %s", lfp_strerror(rc));
        free(g);
        return NULL;
    }
    return g;
}

static int lfp_row_destroy(void *gp, char *err, size_t errlen)
{
    struct lfp_row_global *g = gp;
    size_t left = lfp_pool_destroy(g->pool);
    free(g);
    if (left != 0) {
        snprintf(err, errlen, "lfp_pool_destroy: %zu blocks still in use", left);
        return -1;
    }
    return 0;
}

/* A thread's context is the pool itself. */
static void *lfp_row_thread_init(void *gp, unsigned tid)
{
    (void)tid;
    return ((struct lfp_row_global *)gp)->pool;
}

static unsigned long lfp_row_thread_fini(void *tp)
{
    (void)tp;
    return 0;
}

/* Returns once the released slabs are unmapped (after the grace period);
 * the byte count it returns is left out: the RSS says what was given back. */
static int lfp_row_trim(void *gp, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    (void)lfp_pool_trim(((struct lfp_row_global *)gp)->pool);
    return 0;
}

#define LFP_FIXED_NO_TRIM "a fixed pool keeps its memory until destroyed"

/* ------------------------------------------------------------------------ */
/* General-purpose allocators, all called through pointers looked up with
 * dlsym, from a stub per row (PEER_CALLS): the loop calls the stub, which
 * jumps into the library, close to a program's call through a PLT entry
 * (README, "Calls as a program makes them", says how close). */

struct peer_api {
    void *(*malloc1)(size_t);            /* glibc, mimalloc, tcmalloc */
    void (*free1)(void *);               /* same */
    void (*free_sized)(void *, size_t);  /* mi_free_size, tc_free_sized */
    void *(*mallocx)(size_t, int);       /* jemalloc */
    void (*dallocx)(void *, int);        /* jemalloc */
    void (*sdallocx)(void *, size_t, int);
    /* Giving free memory back to the OS, each peer its own way. */
    int (*malloc_trim)(size_t);          /* glibc */
    int (*mallctl)(const char *, void *, size_t *, void *, size_t); /* jemalloc */
    void (*mi_collect)(bool);            /* mimalloc */
    void (*release_free)(void);          /* tcmalloc */
};

struct peer_thread {
    struct peer_api api;
    size_t size;
};

static void *peer_create(const struct bench_alloc *a,
                         const struct bench_params *p, char *err,
                         size_t errlen)
{
    struct peer_thread *proto = malloc(sizeof *proto);
    (void)errlen;
    if (!proto) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    memcpy(&proto->api, a->priv, sizeof proto->api);
    proto->size = p->size;
    return proto;
}

static int peer_destroy(void *g, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    free(g);
    return 0;
}

static void *peer_thread_init(void *g, unsigned tid)
{
    struct peer_thread *t = alloc_lines(sizeof *t);
    (void)tid;
    if (t)
        memcpy(t, g, sizeof *t);
    return t;
}

static unsigned long peer_thread_fini(void *t)
{
    free(t);
    return 0;
}

/* Each peer's calls into its library, a copy per row (BENCH_OWN_CODE): one
 * shared wrapper would be one indirect jump for every row that uses it,
 * which the branch predictor charges each of them for the others. */
#define PEER_CALLS(P)                                                     \
    static BENCH_OWN_CODE void *P##_alloc(void *tp)                       \
    {                                                                     \
        struct peer_thread *t = tp;                                       \
        return t->api.malloc1(t->size);                                   \
    }                                                                     \
    static BENCH_OWN_CODE void P##_free(void *tp, void *p)                \
    {                                                                     \
        ((struct peer_thread *)tp)->api.free1(p);                         \
    }
#define PEER_FREE_SIZED(P)                                                \
    static BENCH_OWN_CODE void P##_free_sized(void *tp, void *p)          \
    {                                                                     \
        struct peer_thread *t = tp;                                       \
        t->api.free_sized(p, t->size);                                    \
    }
PEER_CALLS(glibc_row)
PEER_CALLS(je_plain_row)
PEER_CALLS(mi_row)
PEER_FREE_SIZED(mi_row)
PEER_CALLS(tc_row)
PEER_FREE_SIZED(tc_row)

static BENCH_OWN_CODE void *je_alloc(void *tp)
{
    struct peer_thread *t = tp;
    return t->api.mallocx(t->size, 0);
}

static BENCH_OWN_CODE void je_free(void *tp, void *p)
{
    ((struct peer_thread *)tp)->api.dallocx(p, 0);
}

static BENCH_OWN_CODE void je_free_sized(void *tp, void *p)
{
    struct peer_thread *t = tp;
    t->api.sdallocx(p, t->size, 0);
}

/* The trims take the row's global (a struct peer_thread). */

/* Every arena: consolidates free chunks, shrinks the main heap's top and
 * drops the pages inside free chunks. */
static int glibc_trim(void *g, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    (void)((struct peer_thread *)g)->api.malloc_trim(0);
    return 0;
}

#ifndef BENCH_JEMALLOC_ARENAS_ALL
#define BENCH_JEMALLOC_ARENAS_ALL 4096 /* MALLCTL_ARENAS_ALL of jemalloc 5 */
#endif
#define JE_STR_(x) #x
#define JE_STR(x) JE_STR_(x)
#define JE_PURGE_ALL "arena." JE_STR(BENCH_JEMALLOC_ARENAS_ALL) ".purge"

/* Every arena's dirty and muzzy pages, now rather than after the decay
 * time. */
static int je_trim(void *g, char *err, size_t errlen)
{
    int rc = ((struct peer_thread *)g)->api.mallctl(JE_PURGE_ALL, NULL, NULL, NULL, 0);
    if (rc != 0) {
        snprintf(err, errlen, "mallctl(\"%s\"): %s", JE_PURGE_ALL, strerror(rc));
        return -1;
    }
    return 0;
}

/* The calling thread's heap, forced: its free pages and segments go back
 * now rather than after the purge delay. */
static int mi_trim(void *g, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    ((struct peer_thread *)g)->api.mi_collect(true);
    return 0;
}

/* The page heap's free spans; objects in thread caches keep theirs. */
static int tc_trim(void *g, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    ((struct peer_thread *)g)->api.release_free();
    return 0;
}

/* ------------------------------------------------------------------------ */
/* mutex-list: the classic thread-safe pool, one lock around an intrusive
 * free list over a preallocated array. */

/* The blocks of a shared free list (mutex-list, treiber-list): an array
 * sized like a fixed pool, linked through each block's first word in
 * address order, so the first blocks handed out are neighbours, as with a
 * freshly carved pool. NULL with err filled when it cannot be had. */
static char *list_blocks(const struct bench_params *p, size_t *count, char *err,
                         size_t errlen)
{
    size_t stride = list_stride(p->size), n = pool_capacity(p, stride), i;
    char *mem;
    if (n > POOL_BYTES_MAX / stride) {
        snprintf(err, errlen, "a list of %zu blocks of %zu bytes exceeds %zu MiB", n,
                 p->size, POOL_BYTES_MAX >> 20);
        return NULL;
    }
    mem = alloc_lines(n * stride);
    if (!mem) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (i = 0; i < n; i++) {
        void *next = i + 1 < n ? mem + (i + 1) * stride : NULL;
        memcpy(mem + i * stride, &next, sizeof next);
    }
    *count = n;
    return mem;
}

struct mutex_list {
    pthread_mutex_t lock;
    void *head;
    size_t in_use;
    char *mem;
    size_t count;
};

static void *ml_create(const struct bench_alloc *a, const struct bench_params *p,
                       char *err, size_t errlen)
{
    struct mutex_list *m;
    (void)a;

    m = alloc_lines(sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    m->mem = list_blocks(p, &m->count, err, errlen);
    if (!m->mem) {
        free(m);
        return NULL;
    }
    pthread_mutex_init(&m->lock, NULL);
    m->head = m->mem;
    return m;
}

static int ml_destroy(void *gp, char *err, size_t errlen)
{
    struct mutex_list *m = gp;
    size_t left = m->in_use;
    pthread_mutex_destroy(&m->lock);
    free(m->mem);
    free(m);
    if (left != 0) {
        snprintf(err, errlen, "%zu blocks still in use", left);
        return -1;
    }
    return 0;
}

static void *ml_thread_init(void *g, unsigned tid)
{
    (void)tid;
    return g;
}

static unsigned long ml_thread_fini(void *t)
{
    (void)t;
    return 0;
}

static BENCH_OWN_CODE void *ml_alloc(void *gp)
{
    struct mutex_list *m = gp;
    void *p;
    pthread_mutex_lock(&m->lock);
    p = m->head;
    if (p) {
        memcpy(&m->head, p, sizeof m->head);
        m->in_use++;
    }
    pthread_mutex_unlock(&m->lock);
    return p;
}

static BENCH_OWN_CODE void ml_free(void *gp, void *p)
{
    struct mutex_list *m = gp;
    pthread_mutex_lock(&m->lock);
    memcpy(p, &m->head, sizeof m->head);
    m->head = p;
    m->in_use--;
    pthread_mutex_unlock(&m->lock);
}

/* ------------------------------------------------------------------------ */
/* treiber-list: the lock-free free list that lfpool's depot is, bare: a
 * Treiber stack of the blocks with a {pointer, tag} compare-and-swap
 * (lfpool's own src/stack.h and src/stack.c, compiled in), and nothing else: no per-thread
 * cache, no ownership check, no counts. Its pair is two locked 16-byte CAS:
 * the floor of lfpool-nocache. */

struct treiber_list {
    struct lfp_stack stack;
    _Atomic long in_use;
    char *mem;
};

static void *tr_create(const struct bench_alloc *a, const struct bench_params *p,
                       char *err, size_t errlen)
{
    struct treiber_list *t;
    size_t count;
    (void)a;

    t = alloc_lines(sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->mem = list_blocks(p, &count, err, errlen);
    if (!t->mem) {
        free(t);
        return NULL;
    }
    lfp_stack_init(&t->stack);
    /* The blocks' first words link them already: one push of the chain. */
    lfp_stack_push(&t->stack, (struct lfp_node *)(void *)t->mem,
                   (struct lfp_node *)(void *)(t->mem + (count - 1) * list_stride(p->size)));
    return t;
}

static int tr_destroy(void *gp, char *err, size_t errlen)
{
    struct treiber_list *t = gp;
    long left = atomic_load(&t->in_use);
    free(t->mem);
    free(t);
    if (left != 0) {
        snprintf(err, errlen, "%ld blocks still in use", left);
        return -1;
    }
    return 0;
}

/* The in-use count is kept per thread and summed at the end, so the pair
 * costs only the two CAS. */
struct treiber_thread {
    struct treiber_list *t;
    long in_use;
};

static void *tr_thread_init(void *g, unsigned tid)
{
    struct treiber_thread *th = alloc_lines(sizeof *th);
    (void)tid;
    if (th)
        th->t = g;
    return th;
}

static unsigned long tr_thread_fini(void *tp)
{
    struct treiber_thread *th = tp;
    atomic_fetch_add(&th->t->in_use, th->in_use);
    free(th);
    return 0;
}

static BENCH_OWN_CODE void *tr_alloc(void *tp)
{
    struct treiber_thread *th = tp;
    void *b = lfp_stack_pop(&th->t->stack);
    th->in_use += b != NULL;
    return b;
}

static BENCH_OWN_CODE void tr_free(void *tp, void *b)
{
    struct treiber_thread *th = tp;
    struct lfp_node *n = b;
    th->in_use--;
    lfp_stack_push(&th->t->stack, n, n);
}

/* ------------------------------------------------------------------------ */
/* tl-list: each thread owns its blocks and its list; no atomics, no lock,
 * no sharing. Only valid when every block is freed by its allocating thread,
 * which is why it is the floor for pair and batch and absent elsewhere. */

struct tl_global {
    size_t stride;
    size_t count;
};

struct tl_thread {
    void *head;
    size_t in_use;
    char *mem;
};

static void *tl_create(const struct bench_alloc *a, const struct bench_params *p,
                       char *err, size_t errlen)
{
    struct tl_global *g = malloc(sizeof *g);
    (void)a;
    if (!g) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    g->stride = list_stride(p->size);
    g->count = p->per_thread + 64;
    if (g->count > POOL_BYTES_MAX / g->stride) {
        snprintf(err, errlen, "%zu blocks of %zu bytes per thread exceed %zu MiB",
                 g->count, p->size, POOL_BYTES_MAX >> 20);
        free(g);
        return NULL;
    }
    return g;
}

static int tl_destroy(void *g, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    free(g);
    return 0;
}

static void *tl_thread_init(void *gp, unsigned tid)
{
    struct tl_global *g = gp;
    struct tl_thread *t = alloc_lines(sizeof *t);
    size_t i;
    (void)tid;
    if (!t)
        return NULL;
    t->mem = alloc_lines(g->count * g->stride);
    if (!t->mem) {
        free(t);
        return NULL;
    }
    for (i = 0; i < g->count; i++) {
        void *next = i + 1 < g->count ? t->mem + (i + 1) * g->stride : NULL;
        memcpy(t->mem + i * g->stride, &next, sizeof next);
    }
    t->head = t->mem;
    return t;
}

static unsigned long tl_thread_fini(void *tp)
{
    struct tl_thread *t = tp;
    unsigned long e = t->in_use != 0;
    free(t->mem);
    free(t);
    return e;
}

static BENCH_OWN_CODE void *tl_alloc(void *tp)
{
    struct tl_thread *t = tp;
    void *p = t->head;
    if (p) {
        memcpy(&t->head, p, sizeof t->head);
        t->in_use++;
    }
    return p;
}

static BENCH_OWN_CODE void tl_free(void *tp, void *p)
{
    struct tl_thread *t = tp;
    memcpy(p, &t->head, sizeof t->head);
    t->head = p;
    t->in_use--;
}

/* ------------------------------------------------------------------------ */
/* Loading the peers. */

/* dlsym returns an object pointer; POSIX guarantees it converts to the
 * function's type, ISO C does not, so copy the representation. */
#define LOAD_SYM(dst, handle, name)                                          \
    do {                                                                      \
        void *sym_ = dlsym((handle), (name));                                 \
        _Static_assert(sizeof(dst) == sizeof sym_, "function pointer size");  \
        memcpy(&(dst), &sym_, sizeof sym_);                                   \
    } while (0)

static struct peer_api glibc_api, je_api, mi_api, tc_api;
/* jemalloc's own malloc/free were found in libjemalloc itself. */
static int je_plain;
static char glibc_why[256];
/* Which library and version a row measures, for the header. */
static char glibc_desc[128], je_desc[192], mi_desc[128], tc_desc[128];

#if defined(BENCH_JEMALLOC_SONAME) || defined(BENCH_MIMALLOC_SONAME) || \
    defined(BENCH_TCMALLOC_SONAME)
static const char *open_peer(const char *soname, void **handle, char *why,
                             size_t whylen)
{
    *handle = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!*handle) {
        const char *e = dlerror();
        snprintf(why, whylen, "cannot load %s: %s", soname, e ? e : "?");
        return why;
    }
    return NULL;
}
#endif

static const char *missing_sym(const char *soname, const char *name, char *why,
                               size_t whylen)
{
    snprintf(why, whylen, "%s has no %s", soname, name);
    return why;
}

#define PEER_NOT_CONFIGURED "not found when lfp-bench was configured"

static const char *load_glibc(void)
{
#ifdef __GLIBC__
    void *h = dlopen(LIBC_SO, RTLD_NOW | RTLD_NOLOAD);
    if (!h) {
        snprintf(glibc_why, sizeof glibc_why, "cannot find %s", LIBC_SO);
        return glibc_why;
    }
    LOAD_SYM(glibc_api.malloc1, h, "malloc");
    LOAD_SYM(glibc_api.free1, h, "free");
    LOAD_SYM(glibc_api.malloc_trim, h, "malloc_trim");
    if (!glibc_api.malloc1 || !glibc_api.free1)
        return missing_sym(LIBC_SO, "malloc/free", glibc_why, sizeof glibc_why);
    snprintf(glibc_desc, sizeof glibc_desc, "malloc/free of %s (glibc %d.%d)",
             LIBC_SO, __GLIBC__, __GLIBC_MINOR__);
    return NULL;
#else
    snprintf(glibc_why, sizeof glibc_why, "not a glibc system");
    return glibc_why;
#endif
}

static const char *load_jemalloc(int sized_free)
{
#ifdef BENCH_JEMALLOC_SONAME
    static char je_why[256];
    void *h;
    const char *why = open_peer(BENCH_JEMALLOC_SONAME, &h, je_why, sizeof je_why);
    if (why)
        return why;
    LOAD_SYM(je_api.mallocx, h, "mallocx");
    LOAD_SYM(je_api.dallocx, h, "dallocx");
    LOAD_SYM(je_api.sdallocx, h, "sdallocx");
    if (!je_api.mallocx || !je_api.dallocx || !je_api.sdallocx)
        return missing_sym(BENCH_JEMALLOC_SONAME, "mallocx/dallocx/sdallocx",
                           je_why, sizeof je_why);
    /* jemalloc 5 has a fast path in malloc and free but not in mallocx and
     * dallocx (about twice the cost here), so its exported malloc and free
     * are what it should be measured by. dlsym on the handle finds them in
     * libjemalloc first; dladdr confirms they live there and not in a
     * library jemalloc depends on. */
    LOAD_SYM(je_api.malloc1, h, "malloc");
    LOAD_SYM(je_api.free1, h, "free");
    {
        Dl_info a, b, c;
        void *sm, *sf, *sx;
        memcpy(&sm, &je_api.malloc1, sizeof sm);
        memcpy(&sf, &je_api.free1, sizeof sf);
        memcpy(&sx, &je_api.mallocx, sizeof sx);
        je_plain = sm && sf && dladdr(sm, &a) && dladdr(sf, &b) &&
                   dladdr(sx, &c) && a.dli_fbase == c.dli_fbase &&
                   b.dli_fbase == c.dli_fbase;
    }
    {
        const char *ver = NULL;
        size_t len = sizeof ver;
        LOAD_SYM(je_api.mallctl, h, "mallctl");
        if (!je_api.mallctl || je_api.mallctl("version", &ver, &len, NULL, 0) != 0)
            ver = NULL;
        if (!ver)
            ver = "?";
        /* "5.3.0-0-g<commit>": the release is enough. */
        snprintf(je_desc, sizeof je_desc, "%s/%s of %s (jemalloc %.*s)",
                 je_plain ? "malloc" : "mallocx",
                 sized_free ? "sdallocx" : je_plain ? "free" : "dallocx",
                 BENCH_JEMALLOC_SONAME, (int)strcspn(ver, "-"), ver);
    }
    return NULL;
#else
    (void)sized_free;
    return PEER_NOT_CONFIGURED;
#endif
}

static const char *load_mimalloc(int sized_free)
{
#ifdef BENCH_MIMALLOC_SONAME
    static char mi_why[256];
    void *h;
    const char *why = open_peer(BENCH_MIMALLOC_SONAME, &h, mi_why, sizeof mi_why);
    if (why)
        return why;
    LOAD_SYM(mi_api.malloc1, h, "mi_malloc");
    LOAD_SYM(mi_api.free1, h, "mi_free");
    LOAD_SYM(mi_api.free_sized, h, "mi_free_size");
    LOAD_SYM(mi_api.mi_collect, h, "mi_collect");
    if (!mi_api.malloc1 || !mi_api.free1 || !mi_api.free_sized)
        return missing_sym(BENCH_MIMALLOC_SONAME, "mi_malloc/mi_free/mi_free_size",
                           mi_why, sizeof mi_why);
    {
        int (*version)(void);
        int v = -1;
        LOAD_SYM(version, h, "mi_version");
        if (version)
            v = version();
        snprintf(mi_desc, sizeof mi_desc, "%s of %s (mimalloc %d.%d.%d)",
                 sized_free ? "mi_malloc/mi_free_size" : "mi_malloc/mi_free",
                 BENCH_MIMALLOC_SONAME, v / 100, v / 10 % 10, v % 10);
    }
    return NULL;
#else
    (void)sized_free;
    return PEER_NOT_CONFIGURED;
#endif
}

static const char *load_tcmalloc(int sized_free)
{
#ifdef BENCH_TCMALLOC_SONAME
    static char tc_why[256];
    void *h;
    const char *why = open_peer(BENCH_TCMALLOC_SONAME, &h, tc_why, sizeof tc_why);
    if (why)
        return why;
    LOAD_SYM(tc_api.malloc1, h, "tc_malloc");
    LOAD_SYM(tc_api.free1, h, "tc_free");
    LOAD_SYM(tc_api.free_sized, h, "tc_free_sized");
    /* The C entry point of gperftools' malloc_extension_c.h. */
    LOAD_SYM(tc_api.release_free, h, "MallocExtension_ReleaseFreeMemory");
    if (!tc_api.malloc1 || !tc_api.free1 || !tc_api.free_sized)
        return missing_sym(BENCH_TCMALLOC_SONAME, "tc_malloc/tc_free/tc_free_sized",
                           tc_why, sizeof tc_why);
    {
        const char *(*version)(int *, int *, const char **);
        const char *v = NULL;
        LOAD_SYM(version, h, "tc_version");
        if (version)
            v = version(NULL, NULL, NULL);
        snprintf(tc_desc, sizeof tc_desc, "%s of %s (%s)",
                 sized_free ? "tc_malloc/tc_free_sized" : "tc_malloc/tc_free",
                 BENCH_TCMALLOC_SONAME, v ? v : "?");
    }
    return NULL;
#else
    (void)sized_free;
    return PEER_NOT_CONFIGURED;
#endif
}

/* The environment variable that marks the re-executed process, so that a
 * failing second attempt does not loop. */
#define REEXEC_MARK "LFP_BENCH_STATIC_TLS"
/* Bytes of static TLS to reserve for libraries loaded later; jemalloc 5.3
 * needs about 2.6 KiB where glibc reserves 512 bytes by default. */
#define STATIC_TLS_BYTES "16384"

void bench_peers_early(char **argv)
{
#ifdef BENCH_JEMALLOC_SONAME
    const char *old, *e;
    char *tun;
    size_t n;
    void *h;

    if (getenv(REEXEC_MARK))
        return;
    h = dlopen(BENCH_JEMALLOC_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (h)
        return; /* keep it: the table's dlopen gets the same handle */
    e = dlerror();
    if (!e || !strstr(e, "static TLS"))
        return;
    old = getenv("GLIBC_TUNABLES");
    n = (old ? strlen(old) + 1 : 0) + sizeof "glibc.rtld.optional_static_tls="
        + sizeof STATIC_TLS_BYTES;
    tun = malloc(n);
    if (!tun)
        return;
    snprintf(tun, n, "%s%sglibc.rtld.optional_static_tls=%s", old ? old : "",
             old ? ":" : "", STATIC_TLS_BYTES);
    if (setenv("GLIBC_TUNABLES", tun, 1) != 0 || setenv(REEXEC_MARK, "1", 1) != 0) {
        free(tun);
        return;
    }
    free(tun);
    fflush(NULL);
    execv("/proc/self/exe", argv);
    /* Could not re-execute: jemalloc's row will say why it is missing. */
    unsetenv(REEXEC_MARK);
#else
    (void)argv;
#endif
}

void bench_check_glibc(FILE *f, int quiet)
{
    const char *perturb = getenv("MALLOC_PERTURB_");
    if (perturb && atoi(perturb) != 0)
        fprintf(f, "warning: MALLOC_PERTURB_ is set: glibc fills each block on "
                   "malloc and free, which slows its row\n");
#ifdef __GLIBC__
    void *h = dlopen(LIBC_SO, RTLD_NOW | RTLD_NOLOAD);
    void *mine = dlsym(RTLD_DEFAULT, "malloc");
    void *libc = h ? dlsym(h, "malloc") : NULL;
    if (mine != libc) {
        Dl_info info;
        const char *where = "?";
        if (mine && dladdr(mine, &info) && info.dli_fname)
            where = info.dli_fname;
        fprintf(f, "warning: malloc in this process is %s's, not glibc's; "
                   "the glibc row still calls glibc's own malloc\n", where);
    } else if (!quiet) {
        fprintf(f, "check: malloc in this process is still glibc's after "
                   "loading the peers\n");
    }
#else
    (void)f;
    (void)quiet;
#endif
}

#define NROWS BENCH_MAX_ROWS

size_t bench_alloc_table(const struct bench_alloc **out, int sized_free)
{
    static struct bench_alloc rows[NROWS];
    const char *why;
    size_t n = 0;

    rows[n++] = (struct bench_alloc){
        .name = "lfpool", .kind = BENCH_OURS, .cross_thread = 1,
        .api = "lfp_alloc/lfp_free, default cache",
        .create = lfp_row_create, .destroy = lfp_row_destroy,
        .thread_init = lfp_row_thread_init, .thread_fini = lfp_row_thread_fini,
        .no_trim = LFP_FIXED_NO_TRIM "; lfpool-growable is the row that trims"};
    rows[n++] = (struct bench_alloc){
        .name = "lfpool-nocache", .kind = BENCH_OURS, .cross_thread = 1,
        .api = "lfp_alloc/lfp_free, LFP_NO_CACHE",
        .create = lfp_row_create, .destroy = lfp_row_destroy,
        .thread_init = lfp_row_thread_init, .thread_fini = lfp_row_thread_fini,
        .no_trim = LFP_FIXED_NO_TRIM};
    rows[n++] = (struct bench_alloc){
        .name = "lfpool-growable", .kind = BENCH_OURS, .cross_thread = 1,
        .api = "lfp_alloc/lfp_free, LFP_GROWABLE (slabs, RCU), default cache",
        .create = lfp_row_create, .destroy = lfp_row_destroy,
        .thread_init = lfp_row_thread_init, .thread_fini = lfp_row_thread_fini,
        .trim = lfp_row_trim,
        .trim_api = "lfp_pool_trim(pool)"};
    rows[n++] = (struct bench_alloc){
        .name = "lfpool-checked", .kind = BENCH_OURS, .cross_thread = 1,
        .api = "lfp_alloc/lfp_free, LFP_CHECKED (double free, write after free), default cache",
        .create = lfp_row_create, .destroy = lfp_row_destroy,
        .thread_init = lfp_row_thread_init, .thread_fini = lfp_row_thread_fini,
        .no_trim = LFP_FIXED_NO_TRIM};

    why = load_glibc();
    rows[n++] = (struct bench_alloc){
        .name = "glibc", .kind = BENCH_PEER, .cross_thread = 1,
        .api = glibc_desc, .missing = why,
        .create = peer_create, .destroy = peer_destroy,
        .thread_init = peer_thread_init, .thread_fini = peer_thread_fini,
        .alloc = glibc_row_alloc, .free = glibc_row_free, .priv = &glibc_api,
        .trim = glibc_api.malloc_trim ? glibc_trim : NULL, .trim_api = "malloc_trim(0)",
        .no_trim = "the C library has no malloc_trim"};

    why = load_jemalloc(sized_free);
    rows[n++] = (struct bench_alloc){
        .name = "jemalloc", .kind = BENCH_PEER, .cross_thread = 1,
        .api = je_desc,
        .missing = why, .create = peer_create, .destroy = peer_destroy,
        .thread_init = peer_thread_init, .thread_fini = peer_thread_fini,
        .alloc = je_plain ? je_plain_row_alloc : je_alloc,
        .free = sized_free ? je_free_sized : je_plain ? je_plain_row_free : je_free,
        .priv = &je_api, .trim = je_api.mallctl ? je_trim : NULL,
        .trim_api = "mallctl(\"" JE_PURGE_ALL "\")",
        .no_trim = "libjemalloc has no mallctl"};

    why = load_mimalloc(sized_free);
    rows[n++] = (struct bench_alloc){
        .name = "mimalloc", .kind = BENCH_PEER, .cross_thread = 1,
        .api = mi_desc,
        .missing = why, .create = peer_create, .destroy = peer_destroy,
        .thread_init = peer_thread_init, .thread_fini = peer_thread_fini,
        .alloc = mi_row_alloc, .free = sized_free ? mi_row_free_sized : mi_row_free,
        .priv = &mi_api, .trim = mi_api.mi_collect ? mi_trim : NULL,
        .trim_api = "mi_collect(true)",
        .no_trim = "libmimalloc has no mi_collect"};

    why = load_tcmalloc(sized_free);
    rows[n++] = (struct bench_alloc){
        .name = "tcmalloc", .kind = BENCH_PEER, .cross_thread = 1,
        .api = tc_desc,
        .missing = why, .create = peer_create, .destroy = peer_destroy,
        .thread_init = peer_thread_init, .thread_fini = peer_thread_fini,
        .alloc = tc_row_alloc, .free = sized_free ? tc_row_free_sized : tc_row_free,
        .priv = &tc_api, .trim = tc_api.release_free ? tc_trim : NULL,
        .trim_api = "MallocExtension_ReleaseFreeMemory()",
        .no_trim = "libtcmalloc_minimal has no MallocExtension_ReleaseFreeMemory"};

    rows[n++] = (struct bench_alloc){
        .name = "mutex-list", .kind = BENCH_PEER, .cross_thread = 1,
        .api = "pthread_mutex + intrusive free list",
        .create = ml_create, .destroy = ml_destroy,
        .thread_init = ml_thread_init, .thread_fini = ml_thread_fini,
        .alloc = ml_alloc, .free = ml_free,
        .no_trim = "a fixed array, kept until destroyed"};
    rows[n++] = (struct bench_alloc){
        .name = "treiber-list", .kind = BENCH_PEER, .cross_thread = 1,
        .api = "bare tagged Treiber stack, no cache (lfpool-nocache's floor)",
        .create = tr_create, .destroy = tr_destroy,
        .thread_init = tr_thread_init, .thread_fini = tr_thread_fini,
        .alloc = tr_alloc, .free = tr_free,
        .no_trim = "a fixed array, kept until destroyed"};
    rows[n++] = (struct bench_alloc){
        .name = "tl-list", .kind = BENCH_FLOOR, .cross_thread = 0,
        .api = "per-thread free list, no atomics (floor)",
        .create = tl_create, .destroy = tl_destroy,
        .thread_init = tl_thread_init, .thread_fini = tl_thread_fini,
        .alloc = tl_alloc, .free = tl_free,
        .no_trim = "fixed per-thread arrays, kept until destroyed"};

    for (size_t i = 0; i < n; i++)
        rows[i].index = (unsigned)i;
    *out = rows;
    return n;
}
