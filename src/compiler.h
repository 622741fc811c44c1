/* SPDX-License-Identifier: MIT */
/* Compiler hints shared by the library's sources. */
#ifndef LFP_COMPILER_H
#define LFP_COMPILER_H

#define LFP_LIKELY(x) __builtin_expect(!!(x), 1)
#define LFP_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define LFP_API __attribute__((visibility("default")))
#define LFP_NOINLINE __attribute__((noinline))
#define LFP_ALWAYS_INLINE inline __attribute__((always_inline))
#define LFP_CACHELINE 64
/* The fast paths' entry points (lfp_alloc, lfp_free) start a cache line,
 * wherever the link puts them, so that lfp_alloc's fast path is fetched
 * from one line and lfp_free's from two. Linked at a line's 48th byte, as
 * it was in lfp-bench, lfp_alloc's fast path straddled two lines, and a
 * pair took 2.86 to 2.90 ns against 2.58 to 2.59 aligned (lfp-bench
 * --workload pair, AMD EPYC host, three rounds taking turns). */
#define LFP_FAST_ENTRY __attribute__((aligned(LFP_CACHELINE)))
/* How far apart words that different threads write are kept: two lines, as
 * the L2 spatial prefetcher of Intel cores fetches a line's 128-byte-aligned
 * pair with it (Intel's optimization manual), so that data 64 bytes apart
 * still moves between cores together. */
#define LFP_SHARING_SPAN 128

/* Test builds only: call the hook h, an atomic function pointer, when one
 * is set; nothing in other builds. */
#ifdef LFP_TEST_HOOKS
#define LFP_TEST_HOOK(h)                                                       \
    do {                                                                       \
        void (*lfp_hook_)(void) = atomic_load(&(h));                           \
        if (lfp_hook_ != NULL)                                                 \
            lfp_hook_();                                                       \
    } while (0)
#else
#define LFP_TEST_HOOK(h) ((void)0)
#endif

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_THREAD__) || __has_feature(thread_sanitizer)
#define LFP_TSAN 1
#endif
#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#define LFP_ASAN 1
#endif

/*
 * Read a link word that another thread may be writing at the same moment
 * (a Treiber pop's read of top->next). The race is by design: the value is
 * used only if a later tagged CAS proves it was current. The read is one
 * aligned 8-byte load, single-copy atomic on every supported CPU; it is kept
 * out of the sanitizers' view, which would otherwise report it.
 */
#if defined(LFP_TSAN) || defined(LFP_ASAN)
/* Out of line: an inlined copy would be instrumented as its caller is. */
#define LFP_RACY_FN __attribute__((no_sanitize("thread", "address"), noinline, unused)) static
#else
#define LFP_RACY_FN static inline
#endif
#if defined(LFP_VALGRIND) && !defined(LFP_ASAN)
/* memcheck sees every access: the word may lie in a block that the thread
 * which took it has just made inaccessible. */
#include <valgrind/valgrind.h>
#define LFP_RACY_BEGIN VALGRIND_DISABLE_ERROR_REPORTING
#define LFP_RACY_END VALGRIND_ENABLE_ERROR_REPORTING
#else
#define LFP_RACY_BEGIN ((void)0)
#define LFP_RACY_END ((void)0)
#endif

LFP_RACY_FN void *lfp_racy_load_ptr(void *const *p)
{
    LFP_RACY_BEGIN;
    void *v = *(void *const volatile *)p;
    LFP_RACY_END;
    return v;
}

#endif
