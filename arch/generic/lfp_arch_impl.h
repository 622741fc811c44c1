/* SPDX-License-Identifier: MIT */
/* Any CPU: the C11/__atomic 16-byte compare-and-swap. Correct everywhere;
 * lock-free only where the compiler or libatomic uses a 16-byte instruction
 * (libatomic may fall back to a lock table). It is also the backend for
 * ThreadSanitizer builds, which cannot see into inline asm. */
#ifndef LFP_ARCH_IMPL_H
#define LFP_ARCH_IMPL_H

#define LFP_ARCH_NAME "generic-c11"

static inline bool lfp_arch_cas2(lfp_pair *p, lfp_pair *expected, lfp_pair desired)
{
    return __atomic_compare_exchange(p, expected, &desired, false,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

#endif
