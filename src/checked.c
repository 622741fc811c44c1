/* SPDX-License-Identifier: MIT */
/*
 * Checked mode (LFP_CHECKED): an "in use" bit per block, set by alloc and
 * cleared by free with one atomic read-modify-write each, so that a second
 * free of a block finds its bit clear already; and a fill of free blocks,
 * checked when the block is handed out again, so that a write after free
 * is found at the next alloc of that block.
 *
 * Checked pools never take the fast paths (lfp_pool_id_acquire gives them
 * no fast-path entry), so those test no flag: pools without LFP_CHECKED
 * pay nothing for this file.
 *
 * Beside each bit, alloc records the thread that took the block (its OS
 * thread id), so that a leak report at lfp_pool_destroy names it.
 *
 * Fixed pools keep the record in one map of capacity blocks, mapped like
 * the blocks, so only the part for carved blocks becomes resident; growable
 * pools in one record per slab, made and freed with the slab. A growable
 * pool's record is reached inside an RCU read-side section: a double free
 * may race with a trim that releases the block's slab, and the slab's
 * record is freed only after a grace period.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"
#include "sanitize.h"

/* The byte free blocks are filled with. */
#define LFP_FILL 0xDB

bool lfp_checked_by_env(void)
{
    const char *v = getenv("LFP_CHECKED");
    return v != NULL && strcmp(v, "1") == 0;
}

/*
 * The in-use record behind a pool's (or slab's) `used` pointer, in groups of
 * 64 blocks: block i's in-use bit is bit i % 64 of group i / 64's word, and
 * its owner, the id of the thread that allocated it, sits in the same group,
 * so (used, i) alone finds both. An owner is written by alloc only and never
 * cleared: a free that is rolled back (lfp_checked_free, all or none) sets
 * the bit again and finds the owner still in place.
 */
struct lfp_used_group {
    _Atomic uint64_t bits;
    _Atomic uint32_t owner[64];
};

_Static_assert(sizeof(struct lfp_used_group) == sizeof(uint64_t) + 64 * sizeof(uint32_t),
               "lfp_used_bytes counts whole groups, without padding");

static inline struct lfp_used_group *lfp_used_group(_Atomic uint64_t *used, size_t i)
{
    return (struct lfp_used_group *)(void *)used + i / 64;
}

/* The calling thread's OS thread id, fetched (a system call) at its first
 * checked alloc; 0 until then. A fork's child forgets it: its one thread
 * is a new thread, with an id of its own. */
static __thread uint32_t lfp_tid __attribute__((tls_model("initial-exec")));
static pthread_once_t lfp_tid_once = PTHREAD_ONCE_INIT;
static int lfp_tid_once_err;

static void lfp_tid_forget(void)
{
    lfp_tid = 0;
}

static void lfp_tid_watch_fork(void)
{
    lfp_tid_once_err = pthread_atfork(NULL, NULL, lfp_tid_forget);
}

/* One TLS load, but for a thread's first call. */
static inline uint32_t lfp_thread_id(void)
{
    uint32_t t = lfp_tid;
    if (LFP_UNLIKELY(t == 0))
        lfp_tid = t = (uint32_t)syscall(SYS_gettid);
    return t;
}

int lfp_checked_setup(struct lfp_pool *pool)
{
    /* Before the pool's first alloc can cache an id that a fork outdates. */
    pthread_once(&lfp_tid_once, lfp_tid_watch_fork);
    if (lfp_tid_once_err != 0)
        return LFP_ENOMEM;
    if (lfp_growable(pool))
        return LFP_OK; /* the records come with the slabs */
    pool->used_size = lfp_used_bytes(pool->capacity);
    pool->used = lfp_os_map(pool->used_size);
    return pool->used != NULL ? LFP_OK : LFP_ENOMEM;
}

void lfp_checked_leaks(struct lfp_pool *pool, uintptr_t base, size_t nblocks,
                       _Atomic uint64_t *used)
{
    size_t ngroups = lfp_used_bytes(nblocks) / sizeof(struct lfp_used_group);
    for (size_t g = 0; g < ngroups; g++) {
        struct lfp_used_group *grp = lfp_used_group(used, g * 64);
        uint64_t bits = atomic_load_explicit(&grp->bits, memory_order_relaxed);
        for (; bits != 0; bits &= bits - 1) {
            unsigned k = (unsigned)__builtin_ctzll(bits);
            uint32_t owner = atomic_load_explicit(&grp->owner[k], memory_order_relaxed);
            /* A phrase that reads before the address, as every report's. */
            char what[64];
            snprintf(what, sizeof what, "leaked block allocated by thread %" PRIu32 ":", owner);
            lfp_report(pool, (void *)(base + (g * 64 + k) * pool->stride), LFP_ELEAK, what);
        }
    }
}

void lfp_checked_teardown(struct lfp_pool *pool, size_t carved)
{
    if (pool->used == NULL)
        return;
    lfp_checked_leaks(pool, pool->base, carved, pool->used);
    lfp_os_unmap(pool->used, pool->used_size);
    pool->used = NULL;
}

/* Set (alloc) or clear (free) the in-use bit of p; returns its previous
 * value, or -1 when p is not the start of one of the pool's blocks. A set
 * that finds the bit clear records owner as p's allocating thread, unless
 * owner is 0 (a free rolled back: the owner from p's alloc is still there). */
static int lfp_used_swap(struct lfp_pool *pool, const void *p, bool set, uint32_t owner)
{
    _Atomic uint64_t *map;
    size_t i;
    int was = -1;
    lfp_depot_read_lock(pool);
    if (lfp_growable(pool)) {
        map = lfp_slab_used(pool, p, &i);
    } else {
        i = lfp_block_index(pool, p);
        map = i != SIZE_MAX ? pool->used : NULL;
    }
    if (map != NULL) {
        /* Relaxed: a block passes from its freeing to its allocating thread
         * through the depot's release and acquire, which orders the two. */
        struct lfp_used_group *grp = lfp_used_group(map, i);
        uint64_t bit = (uint64_t)1 << (i % 64);
        uint64_t old = set ? atomic_fetch_or_explicit(&grp->bits, bit, memory_order_relaxed)
                           : atomic_fetch_and_explicit(&grp->bits, ~bit, memory_order_relaxed);
        was = (old & bit) != 0;
        /* Read only at lfp_pool_destroy, which no call on the pool may
         * overlap; inside the read-side section, as a slab's record may be
         * freed after it. */
        if (set && !was && owner != 0)
            atomic_store_explicit(&grp->owner[i % 64], owner, memory_order_relaxed);
    }
    lfp_depot_read_unlock(pool);
    return was;
}

/* Bytes filled in a free block: all but the links at its start; none for
 * pools with a constructor, whose free blocks keep their bytes. */
static size_t lfp_fill_len(const struct lfp_pool *pool)
{
    if (pool->init != NULL || pool->block_size <= LFP_LINK_BYTES)
        return 0;
    return pool->block_size - LFP_LINK_BYTES;
}

void lfp_checked_fill(const struct lfp_pool *pool, void *block)
{
    memset((char *)block + LFP_LINK_BYTES, LFP_FILL, lfp_fill_len(pool));
}

static bool lfp_fill_intact(const struct lfp_pool *pool, const void *block)
{
    const unsigned char *b = (const unsigned char *)block + LFP_LINK_BYTES;
    unsigned diff = 0;
    /* No early exit: the loop vectorises, and intact is the usual case. */
    for (size_t i = 0, n = lfp_fill_len(pool); i < n; i++)
        diff |= b[i] ^ LFP_FILL;
    return diff == 0;
}

void lfp_checked_alloc(struct lfp_pool *pool, void *block)
{
    if (lfp_fill_len(pool) != 0) {
        /* The block may be poisoned still: it is handed out after this. */
        lfp_mem_show(pool, block, pool->block_size);
        if (!lfp_fill_intact(pool, block))
            lfp_report(pool, block, LFP_ECORRUPT, "write after free detected in block");
    }
    /* In use already, or not ours: only a corrupt free list hands it out. */
    if (lfp_used_swap(pool, block, true, lfp_thread_id()) != 0)
        lfp_report(pool, block, LFP_ECORRUPT, "corrupt free list handed out");
}

int lfp_checked_free(struct lfp_pool *pool, void *const *blocks, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (blocks[i] == NULL)
            continue;
        /* Free already (or earlier in this array), or, after the caller's
         * ownership check, in a slab a trim just took: all double frees. */
        if (lfp_used_swap(pool, blocks[i], false, 0) != 1) {
            for (size_t j = 0; j < i; j++) /* all or none */
                if (blocks[j] != NULL)
                    lfp_used_swap(pool, blocks[j], true, 0);
            lfp_report(pool, blocks[i], LFP_EDOUBLE, "double free of");
            return LFP_EDOUBLE;
        }
    }
    for (size_t i = 0; i < n; i++)
        if (blocks[i] != NULL)
            lfp_checked_fill(pool, blocks[i]);
    return LFP_OK;
}
