/* SPDX-License-Identifier: MIT */
/* x86-64: lock cmpxchg16b. GCC does not inline 16-byte __atomic operations
 * (it calls libatomic), so the instruction is spelled out here. The operand
 * must be 16-byte aligned (#GP otherwise): lfp_pair guarantees it. A locked
 * instruction is a full barrier, stronger than the acq_rel the interface
 * promises. */
#ifndef LFP_ARCH_IMPL_H
#define LFP_ARCH_IMPL_H

#define LFP_ARCH_NAME "x86_64-cmpxchg16b"

static inline bool lfp_arch_cas2(lfp_pair *p, lfp_pair *expected, lfp_pair desired)
{
    bool ok;
    /* rdx:rax holds the expected pair and receives the observed one on
     * failure; rcx:rbx holds the new pair. rbx is callee-saved: named as an
     * operand, it makes each function around a CAS save it on the stack, a
     * store that the locked instruction then waits for. So the new pointer
     * comes in a scratch register, rbx waits in another across the
     * instruction (moves between registers, no store), and the address
     * comes in rsi, never in rbx. lfp-bench pair, bare stack (treiber-list),
     * 1 thread, on the README's 2-core VM: 14.1 to 14.4 ns against 14.7 to
     * 15.3 with rbx an operand, in runs taking turns. Between the two moves
     * a debugger unwinding the stack sees the new pointer as the caller's
     * rbx. Both assembler dialects are spelled out (-masm=intel). */
    uintptr_t lo = (uintptr_t)desired.ptr;
    uintptr_t save;
    __asm__ __volatile__("{movq %%rbx, %[save]|mov %[save], rbx}\n\t"
                         "{movq %[lo], %%rbx|mov rbx, %[lo]}\n\t"
                         "lock {cmpxchg16b (%[addr])|cmpxchg16b xmmword ptr [%[addr]]}\n\t"
                         "{movq %[save], %%rbx|mov rbx, %[save]}"
                         : "=@ccz"(ok), "+m"(*p), [save] "=&r"(save),
                           "+a"(expected->ptr), "+d"(expected->tag)
                         : [addr] "S"(p), [lo] "r"(lo), "c"(desired.tag)
                         : "memory");
    return ok;
}

/* One instruction, so no signal lands inside it; without the lock prefix
 * (a full barrier, 11 ns a lock xadd on the 2-core VM of the README) other
 * cores may interleave their own writes, and here there are none. Readers on
 * other cores see the aligned 8-byte store whole. */
#define LFP_ARCH_HAS_ADD_OWN 1
static inline void lfp_arch_add_own(_Atomic intptr_t *p, intptr_t n)
{
    __asm__ __volatile__("addq %[n], %[mem]"
                         : [mem] "+m"(*(intptr_t *)p)
                         : [n] "er"(n)
                         : "cc");
}

#endif
