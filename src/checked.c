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
 * Fixed pools keep the bits in one bitmap of capacity bits, mapped like the
 * blocks, so only the part for carved blocks becomes resident; growable
 * pools in one bitmap per slab, made and freed with the slab. A growable
 * pool's bit is reached inside an RCU read-side section: a double free may
 * race with a trim that releases the block's slab, and the slab's bitmap is
 * freed only after a grace period.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "sanitize.h"

/* The byte free blocks are filled with. */
#define LFP_FILL 0xDB

bool lfp_checked_by_env(void)
{
    const char *v = getenv("LFP_CHECKED");
    return v != NULL && strcmp(v, "1") == 0;
}

int lfp_checked_setup(struct lfp_pool *pool)
{
    if (lfp_growable(pool))
        return LFP_OK; /* the bitmaps come with the slabs */
    pool->used_size = lfp_used_bytes(pool->capacity);
    pool->used = lfp_os_map(pool->used_size);
    return pool->used != NULL ? LFP_OK : LFP_ENOMEM;
}

void lfp_checked_leaks(struct lfp_pool *pool, uintptr_t base, size_t nblocks,
                       _Atomic uint64_t *used)
{
    for (size_t w = 0; w < lfp_used_bytes(nblocks) / sizeof(uint64_t); w++) {
        uint64_t bits = atomic_load_explicit(&used[w], memory_order_relaxed);
        for (; bits != 0; bits &= bits - 1) {
            size_t i = w * 64 + (size_t)__builtin_ctzll(bits);
            lfp_report(pool, (void *)(base + i * pool->stride), LFP_ELEAK, "leaked block");
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
 * value, or -1 when p is not the start of one of the pool's blocks. */
static int lfp_used_swap(struct lfp_pool *pool, const void *p, bool set)
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
        uint64_t bit = (uint64_t)1 << (i % 64);
        uint64_t old = set ? atomic_fetch_or_explicit(&map[i / 64], bit, memory_order_relaxed)
                           : atomic_fetch_and_explicit(&map[i / 64], ~bit,
                                                       memory_order_relaxed);
        was = (old & bit) != 0;
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
    if (lfp_used_swap(pool, block, true) != 0)
        lfp_report(pool, block, LFP_ECORRUPT, "corrupt free list handed out");
}

int lfp_checked_free(struct lfp_pool *pool, void *const *blocks, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (blocks[i] == NULL)
            continue;
        /* Free already (or earlier in this array), or, after the caller's
         * ownership check, in a slab a trim just took: all double frees. */
        if (lfp_used_swap(pool, blocks[i], false) != 1) {
            for (size_t j = 0; j < i; j++) /* all or none */
                if (blocks[j] != NULL)
                    lfp_used_swap(pool, blocks[j], true);
            lfp_report(pool, blocks[i], LFP_EDOUBLE, "double free of");
            return LFP_EDOUBLE;
        }
    }
    for (size_t i = 0; i < n; i++)
        if (blocks[i] != NULL)
            lfp_checked_fill(pool, blocks[i]);
    return LFP_OK;
}
