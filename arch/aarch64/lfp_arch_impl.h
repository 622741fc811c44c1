/* SPDX-License-Identifier: MIT */
/* AArch64: CASPAL where the compiler targets LSE (Armv8.1+), else an
 * LDAXP/STLXP loop. Little-endian: the first register of each pair goes with
 * the lower address, which holds lfp_pair.ptr. */
#ifndef LFP_ARCH_IMPL_H
#define LFP_ARCH_IMPL_H

#if defined(__ARM_FEATURE_ATOMICS)

#define LFP_ARCH_NAME "aarch64-lse-caspal"

static inline bool lfp_arch_cas2(lfp_pair *p, lfp_pair *expected, lfp_pair desired)
{
    /* CASP needs even/odd consecutive register pairs; pinning x0-x3 gives
     * them under every compiler. Everything is loaded into plain locals
     * first: a call between setting a pinned register and the asm (such as
     * sanitizer instrumentation of those loads) could clobber it. */
    const uint64_t e0 = (uint64_t)expected->ptr, e1 = expected->tag;
    const uint64_t d0 = (uint64_t)desired.ptr, d1 = desired.tag;
    register uint64_t o0 __asm__("x0") = e0;
    register uint64_t o1 __asm__("x1") = e1;
    register uint64_t n0 __asm__("x2") = d0;
    register uint64_t n1 __asm__("x3") = d1;

    __asm__ __volatile__("caspal %[o0], %[o1], %[n0], %[n1], %[mem]"
                         : [o0] "+r"(o0), [o1] "+r"(o1), [mem] "+Q"(*p)
                         : [n0] "r"(n0), [n1] "r"(n1)
                         : "memory");
    expected->ptr = (void *)o0;
    expected->tag = o1;
    return o0 == e0 && o1 == e1;
}

#else

#define LFP_ARCH_NAME "aarch64-llsc-ldaxp"

static inline bool lfp_arch_cas2(lfp_pair *p, lfp_pair *expected, lfp_pair desired)
{
    uint64_t o0, o1;
    uint32_t failed;
    const uint64_t e0 = (uint64_t)expected->ptr, e1 = expected->tag;

    /* One asm block, so no compiler-generated memory access lands between
     * the exclusive load and store (it could clear the monitor forever). A
     * lone LDAXP pair read is not single-copy atomic: only a successful
     * store-exclusive proves the two words were read together, so on a
     * mismatch the observed value is stored back before it is trusted. */
    __asm__ __volatile__("1: ldaxp  %[o0], %[o1], %[mem]\n"
                         "   cmp    %[o0], %[e0]\n"
                         "   ccmp   %[o1], %[e1], #0, eq\n"
                         "   b.ne   2f\n"
                         "   stlxp  %w[f], %[n0], %[n1], %[mem]\n"
                         "   cbnz   %w[f], 1b\n"
                         "   b      3f\n"
                         "2: stlxp  %w[f], %[o0], %[o1], %[mem]\n"
                         "   cbnz   %w[f], 1b\n"
                         "3:\n"
                         : [o0] "=&r"(o0), [o1] "=&r"(o1), [f] "=&r"(failed),
                           [mem] "+Q"(*p)
                         : [e0] "r"(e0), [e1] "r"(e1),
                           [n0] "r"((uint64_t)desired.ptr), [n1] "r"(desired.tag)
                         : "cc", "memory");
    expected->ptr = (void *)o0;
    expected->tag = o1;
    return o0 == e0 && o1 == e1;
}

#endif
#endif
