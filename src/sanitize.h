/* SPDX-License-Identifier: MIT */
/*
 * What AddressSanitizer and Valgrind's memcheck are told about a pool's
 * blocks, so that a program's use of a freed block is reported as it would
 * be for malloc'd memory. Everything here compiles to nothing unless the
 * library is built with ASan, or with -Dvalgrind=enabled (LFP_VALGRIND);
 * ASan wins when both are asked for.
 *
 * What the tools let the program touch, by the state of a block:
 *
 * | block                          | accessible                             |
 * |--------------------------------|----------------------------------------|
 * | in use (handed out)            | its block_size bytes                   |
 * | free, in a thread's magazine   | nothing: the library never touches it  |
 * | free, in a chain (the depot, a | only its LFP_LINK_BYTES of links, at   |
 * | batch, carved but not yet out) | link_off                               |
 *
 * The links stay open for as long as a block is in a chain, rather than
 * being opened around each access: the depot reads and writes them in many
 * places (a pop's length read, trim, verify), and one of those reads, a
 * pop's speculative read of a top that another thread may just have taken,
 * cannot be bracketed at all. The cost is that a stray write to the first
 * 16 bytes of a block that has reached the depot goes unseen (as it would
 * corrupt the depot, checked mode's lfp_pool_verify may still find it). A
 * block freed moments ago sits in its thread's magazine and is fully
 * poisoned.
 *
 * ASan tracks 8-byte granules: a pool's blocks are poisoned only when its
 * base and stride are multiples of 8 (LFP_F_SHADOW, decided at creation),
 * so that no granule is shared by two blocks that two threads may poison
 * at once. Valgrind has no such limit: there LFP_F_SHADOW is always set.
 *
 * memcheck sees a handed-out block as a heap block (MALLOCLIKE), so it
 * reports blocks still in use at exit as leaks, and a free one as freed
 * (FREELIKE): an access to it is an invalid read or write, and a second
 * free outside checked mode an invalid free.
 */
#ifndef LFP_SANITIZE_H
#define LFP_SANITIZE_H

#include "internal.h"

#if defined(LFP_ASAN)
#include <sanitizer/asan_interface.h>
#define LFP_SHADOW_GRANULE 8u
#define LFP_MEM_HIDE(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define LFP_MEM_SHOW(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#elif defined(LFP_VALGRIND)
#include <valgrind/memcheck.h>
#define LFP_SHADOW_GRANULE 1u
#define LFP_MEM_HIDE(p, n) VALGRIND_MAKE_MEM_NOACCESS((p), (n))
#define LFP_MEM_SHOW(p, n) VALGRIND_MAKE_MEM_DEFINED((p), (n))
#else
#define LFP_SHADOW_GRANULE 0u /* no tool to tell */
#define LFP_MEM_HIDE(p, n) ((void)(p), (void)(n))
#define LFP_MEM_SHOW(p, n) ((void)(p), (void)(n))
#endif

/* May the blocks of a pool whose blocks start at base + i * stride be
 * poisoned? base 0 stands for memory the library maps (page aligned). */
static inline bool lfp_shadow_ok(uintptr_t base, size_t stride)
{
#if LFP_SHADOW_GRANULE
    return ((base | stride) & (LFP_SHADOW_GRANULE - 1)) == 0;
#else
    (void)base;
    (void)stride;
    return false;
#endif
}

static inline bool lfp_shadowed(const struct lfp_pool *pool)
{
    return LFP_SHADOW_GRANULE != 0 && (pool->flags & LFP_F_SHADOW) != 0;
}

/* Make n bytes at p inaccessible, or accessible (and, for memcheck,
 * defined) again. */
static inline void lfp_mem_hide(const struct lfp_pool *pool, void *p, size_t n)
{
    if (lfp_shadowed(pool))
        LFP_MEM_HIDE(p, n);
}

static inline void lfp_mem_show(const struct lfp_pool *pool, void *p, size_t n)
{
    if (lfp_shadowed(pool))
        LFP_MEM_SHOW(p, n);
}

/* The caller gets the block: its block_size bytes, not the links that may
 * follow them (pools with a constructor). */
static inline void lfp_mem_handout(const struct lfp_pool *pool, void *block)
{
    lfp_mem_hide(pool, block, pool->stride);
#if defined(LFP_VALGRIND) && !defined(LFP_ASAN)
    /* A constructed block's bytes are defined; a plain one's are not. */
    if (lfp_shadowed(pool))
        VALGRIND_MALLOCLIKE_BLOCK(block, pool->block_size, 0, pool->init != NULL);
#else
    lfp_mem_show(pool, block, pool->block_size);
#endif
}

/* The caller gave the block back. */
static inline void lfp_mem_takeback(const struct lfp_pool *pool, void *block)
{
#if defined(LFP_VALGRIND) && !defined(LFP_ASAN)
    if (lfp_shadowed(pool))
        VALGRIND_FREELIKE_BLOCK(block, 0);
#endif
    lfp_mem_hide(pool, block, pool->stride);
}

/* A free block joins a chain: its links, open for the depot. */
static inline struct lfp_free *lfp_link_open(const struct lfp_pool *pool, void *block)
{
    struct lfp_free *l = lfp_link_of(block, pool->link_off);
    lfp_mem_show(pool, l, sizeof(*l));
    return l;
}

/* A block leaves a chain for a magazine: its links close again. */
static inline void lfp_link_close(const struct lfp_pool *pool, struct lfp_free *l)
{
    lfp_mem_hide(pool, l, sizeof(*l));
}

/* A magazine round whose block has left the magazine. memcheck's leak
 * check reads the magazines: a stale pointer there would make a block the
 * program leaked look reachable. */
static inline void lfp_round_forget(void **round)
{
#if defined(LFP_VALGRIND) && !defined(LFP_ASAN)
    *round = NULL;
#else
    (void)round;
#endif
}

#endif
