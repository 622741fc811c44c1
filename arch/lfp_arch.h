/* SPDX-License-Identifier: MIT */
/*
 * The atomic primitives lfpool is built on, behind one small interface.
 *
 * A pair is a {pointer, tag} of 16 bytes, 16-byte aligned. Each backend in
 * arch/<cpu>/lfp_arch_impl.h (chosen by meson) supplies:
 *
 *   bool lfp_arch_cas2(lfp_pair *p, lfp_pair *expected, lfp_pair desired);
 *       Single-copy-atomic 16-byte compare-and-swap, acquire+release. On
 *       failure *expected receives the value observed, read atomically.
 *   LFP_ARCH_NAME  a string naming the backend.
 *
 * and may supply (else the C11 fallback below serves):
 *
 *   void lfp_arch_add_own(_Atomic intptr_t *p, intptr_t n);
 *       with LFP_ARCH_HAS_ADD_OWN defined: see lfp_add_own().
 *
 * Everything else here is shared by all backends.
 */
#ifndef LFP_ARCH_H
#define LFP_ARCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct lfp_pair {
    void *ptr;
    uintptr_t tag;
} __attribute__((aligned(16))) lfp_pair;

_Static_assert(sizeof(lfp_pair) == 16, "a pair is two 8-byte words");

#include "lfp_arch_impl.h"

static inline bool lfp_cas2(lfp_pair *p, lfp_pair *expected, lfp_pair desired)
{
    return lfp_arch_cas2(p, expected, desired);
}

/*
 * A snapshot of *p for a CAS retry loop: the tag, then the pointer, each an
 * 8-byte acquire load, so the two halves may come from different updates.
 * That is enough when every update of *p changes its tag to a value it never
 * had before: a CAS that expects a torn {ptr, tag} compares against the one
 * update that wrote this tag, finds a different pointer and fails. In
 * exchange the snapshot costs two plain loads instead of a locked
 * instruction (cmpxchg16b writes even when it only reads). Use
 * lfp_load2_atomic() where the halves must match.
 */
static inline lfp_pair lfp_load2(const lfp_pair *p)
{
    lfp_pair v;
    v.tag = __atomic_load_n(&p->tag, __ATOMIC_ACQUIRE);
    v.ptr = __atomic_load_n(&p->ptr, __ATOMIC_ACQUIRE);
    return v;
}

/*
 * A single-copy-atomic 16-byte load. Before Armv8.4 and on x86-64 without a
 * documented atomic 16-byte load, only a CAS reads 16 bytes atomically: it
 * compares with an arbitrary value and, either way, yields what it saw (when
 * it matches, it writes the same value back). So *p must be writable.
 */
static inline lfp_pair lfp_load2_atomic(lfp_pair *p)
{
    lfp_pair v = { 0, 0 };
    lfp_cas2(p, &v, v);
    return v;
}

/* Plain 16-byte store, for initialisation before the pair is shared. */
static inline void lfp_store2_init(lfp_pair *p, void *ptr, uintptr_t tag)
{
    p->ptr = ptr;
    p->tag = tag;
}

/*
 * Add n to *p, a word that only the calling thread writes (other threads
 * may read it), in one step that a signal handler on the same thread cannot
 * split: an add the handler makes to the same word is not lost, as it is
 * between a load and a store. Relaxed. Not atomic against another thread's
 * write, for there is none.
 */
static inline void lfp_add_own(_Atomic intptr_t *p, intptr_t n)
{
#ifdef LFP_ARCH_HAS_ADD_OWN
    lfp_arch_add_own(p, n);
#else
    atomic_fetch_add_explicit(p, n, memory_order_relaxed);
#endif
}

/* CPU hint inside spin loops. */
static inline void lfp_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __asm__ __volatile__("pause" ::: "memory");
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

#endif
