#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the seed corpus of fuzz_api.c into tests/fuzz/corpus/.

Each seed is a small program in the harness's input language: one opcode
byte, then the operation's argument bytes (see fuzz_api.c). The tables below
mirror the harness's; a value missing from them is an error here.

    python3 tests/fuzz/make_corpus.py [OUTDIR]
"""
import os
import sys

SIZE_MAX = (1 << 64) - 1

# Opcodes: the harness takes the byte modulo OP_COUNT.
(OP_CREATE, OP_CREATE2, OP_DESTROY, OP_ALLOC, OP_ALLOC2, OP_ALLOC3, OP_FREE,
 OP_FREE2, OP_FREE_BAD, OP_ALLOC_BULK, OP_FREE_BULK, OP_FREE_BULK_BAD, OP_OWNS,
 OP_STATS, OP_VERIFY, OP_TRIM, OP_FLUSH, OP_NULL_ARGS, OP_EXHAUST,
 OP_FREE_ALL, OP_THREAD, OP_IDS, OP_MISUSE) = range(23)

BS_SMALL = [1, 2, 3, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 40, 48, 63,
            64, 65, 100, 127, 128, 200, 255, 256, 511, 1000, 1024, 2047, 2048,
            4095, 4096, 0]
BS_HUGE = [SIZE_MAX, SIZE_MAX - 7, SIZE_MAX - 15, SIZE_MAX // 2,
           SIZE_MAX // 2 + 1, 1 << 62, 1 << 61, SIZE_MAX - 4096]
ALIGN = [0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 4096, 3, 24, 8192, 1 << 63]
CAP_SMALL = [1, 2, 3, 4, 7, 15, 16, 17, 31, 32, 33, 64, 100, 255, 256, 257,
             1000, 1023, 4096, 0]
CAP_HUGE = [SIZE_MAX, SIZE_MAX // 2 + 1, SIZE_MAX // 16, 1 << 60]
CACHE = [0, 0, 1, 2, 3, 5, 8, 16, 64, 255, 256, 1024, 4096, 4097,
         (1 << 32) - 1, 0]
SLAB = [0, 0, 0, 0, 0, 65536, 65536, 131072, 262144, 1 << 20, 2 << 20,
        32768, 65536 + 4096, 1, 4096, 0]
TRIM = [0, 0, 0, 0, 1, 4096, 65536, 1 << 20]
# max_blocks selector (b % 16): a value, or relative to the capacity.
MAX = {0: 0, 'cap': 2, 'cap+1': 3, 'cap-1': 4, 1: 5, 2: 6, 15: 7, 16: 8,
       17: 9, 100: 10, 1000: 11, 4096: 12, '2cap+3': 13, SIZE_MAX: 14}
# Caller memory (b % 16): 'exact', 'exact+off' (aligned exactly as asked),
# 'larger', 'short1' (one byte short), 'short_block', 'misaligned',
# 'size_only' (mem NULL, mem_size set), 'mem_only' (mem_size 0).
MEM = {None: 0, 'exact': 8, 'exact+off': 8 | 0x10, 'larger': 10,
       'short1': 11, 'short_block': 12, 'misaligned': 13, 'size_only': 14,
       'mem_only': 15}
CB = {None: 0, 'init': 5, 'init+fini': 6, 'fini': 7}
NAME = {None: 0, 'name': 2, 'empty': 3}

GROWABLE, ZERO, CHECKED, NO_CACHE = 1, 2, 4, 8
# Unknown flag bits: bits 4 and 5 of the flags byte set, bits 6-7 choose
# which one (4, 13, 22 or 31).
UNKNOWN = {4: 0x30, 13: 0x70, 22: 0xb0, 31: 0xf0}


def index(table, value, what):
    try:
        return table.index(value)
    except ValueError:
        sys.exit(f"make_corpus.py: {what} {value} is not in the harness's table")


def create(slot, bs=64, align=0, cap=64, flags=0, unknown=None, cache=0,
           max_blocks=0, slab=0, trim=0, mem=None, misalign=0, cb=None,
           name=None):
    """OP_CREATE with its eleven argument bytes."""
    if bs in BS_SMALL:
        b_bs = index(BS_SMALL, bs, 'block_size')
    else:
        b_bs = 0xf8 | index(BS_HUGE, bs, 'block_size')
    b_al = index(ALIGN, align, 'align')
    if cap in CAP_SMALL:
        b_cap = index(CAP_SMALL, cap, 'capacity')
    else:
        b_cap = 0xfc | index(CAP_HUGE, cap, 'capacity')
    b_fl = flags | (UNKNOWN[unknown] if unknown is not None else 0)
    b_cache = index(CACHE, cache, 'cache_size')
    b_max = MAX[max_blocks]
    b_slab = index(SLAB, slab, 'slab_size') | index(TRIM, trim, 'trim') << 5
    b_mem = MEM[mem] | (misalign << 4 if mem == 'misaligned' else 0)
    return bytes([OP_CREATE, slot, b_bs, b_al, b_cap, b_fl, b_cache, b_max,
                  b_slab, b_mem, CB[cb], NAME[name]])


def op(code, *args):
    return bytes([code, *args])


def alloc(slot, n=1, write=1):
    return b''.join(op(OP_ALLOC, slot, write) for _ in range(n))


def free(slot, n=1, sel=0):
    return b''.join(op(OP_FREE, slot, (sel + 7 * i) & 0xff, 0) for i in range(n))


# Bad-pointer kinds (fuzz_api.c fz_bad): 0 malloc, 1 interior, 2 misaligned,
# 3 another pool's block, 4 caller memory edges, 5 the pool handle,
# 6 unmapped addresses, 7 another pool's caller memory, 8 the stack.
BAD_KINDS = range(9)


def seeds():
    s = {}
    s['fixed_basic'] = (create(0, bs=64, cap=64, name='name') + alloc(0, 10) +
                        free(0, 5) + op(OP_STATS, 0) + op(OP_VERIFY, 0) +
                        op(OP_OWNS, 0, 0, 3) + op(OP_OWNS, 0, 1, 1) +
                        op(OP_DESTROY, 0))
    s['fixed_exhaust_cached'] = (create(0, bs=48, cap=100, cache=8) +
                                 op(OP_EXHAUST, 0, 1) + op(OP_FREE_ALL, 0, 1) +
                                 op(OP_EXHAUST, 0, 0) + free(0, 30) +
                                 op(OP_EXHAUST, 0, 1))
    s['fixed_nocache_peak'] = (create(1, bs=24, cap=16, flags=NO_CACHE) +
                               alloc(1, 9) + free(1, 4) + alloc(1, 6) +
                               op(OP_STATS, 1) + op(OP_EXHAUST, 1, 0) +
                               op(OP_FREE_ALL, 1, 2))
    s['fixed_small_no_magazine'] = (create(0, bs=7, cap=15, cache=64) +
                                    op(OP_EXHAUST, 0, 1) + free(0, 8) +
                                    op(OP_ALLOC_BULK, 0, 20))
    s['growable_bounded'] = (create(0, bs=100, cap=0, flags=GROWABLE,
                                    max_blocks=1000, slab=65536) +
                             op(OP_EXHAUST, 0, 1) + op(OP_FREE_ALL, 0, 0) +
                             op(OP_TRIM, 0) + op(OP_STATS, 0) +
                             op(OP_EXHAUST, 0, 1) + free(0, 40) + op(OP_TRIM, 0))
    s['growable_unbounded_trim'] = (create(2, bs=1000, cap=256, flags=GROWABLE) +
                                    op(OP_ALLOC_BULK, 2, 60) * 3 +
                                    op(OP_FREE_BULK, 2, 33, 5, 1, 0) +
                                    op(OP_FREE_ALL, 2, 1) + op(OP_TRIM, 2) +
                                    alloc(2, 5) + op(OP_TRIM, 2) + free(2, 5) +
                                    op(OP_TRIM, 2))
    s['growable_auto_trim'] = (create(0, bs=256, cap=16, flags=GROWABLE,
                                      slab=65536, trim=4096, cache=8) +
                               op(OP_ALLOC_BULK, 0, 69) * 4 +
                               op(OP_FREE_ALL, 0, 0) + op(OP_ALLOC_BULK, 0, 30) +
                               op(OP_FLUSH) + op(OP_FREE_ALL, 0, 2))
    s['growable_nocache_small_max'] = (create(1, bs=16, cap=4, flags=GROWABLE,
                                              max_blocks=15) +
                                       op(OP_EXHAUST, 1, 1) + free(1, 3) +
                                       op(OP_ALLOC_BULK, 1, 10) +
                                       op(OP_FREE_ALL, 1, 0) + op(OP_TRIM, 1))
    s['caller_mem_exact'] = (create(0, bs=33, cap=64, mem='exact') +
                             op(OP_EXHAUST, 0, 1) +
                             op(OP_FREE_BAD, 0, 4, 0) + op(OP_FREE_BAD, 0, 4, 1) +
                             op(OP_OWNS, 0, 3 | 4 << 2, 1) + free(0, 10) +
                             op(OP_EXHAUST, 0, 0))
    s['caller_mem_sizes'] = (create(0, bs=64, align=64, cap=16, mem='exact+off') +
                             alloc(0, 3) +
                             create(1, bs=64, align=64, cap=16, mem='larger') +
                             op(OP_EXHAUST, 1, 1) +
                             create(2, bs=64, align=64, cap=16, mem='short1') +
                             create(2, bs=64, align=64, cap=16, mem='short_block') +
                             create(2, bs=64, align=64, cap=16, mem='size_only') +
                             create(2, bs=64, align=64, cap=16, mem='mem_only') +
                             create(2, bs=64, align=64, cap=16,
                                    flags=GROWABLE, mem='exact'))
    s['caller_mem_misaligned'] = b''.join(
        create(0, bs=128, align=a, cap=4, mem='misaligned', misalign=k)
        for a, k in ((8, 0), (8, 2), (64, 5), (4096, 11), (1, 0), (0, 3))) + \
        create(1, bs=128, align=4096, cap=4, mem='exact') + op(OP_EXHAUST, 1, 1)
    s['invalid_configs'] = b''.join([
        create(0, bs=0), create(0, align=3), create(0, align=24),
        create(0, align=8192), create(0, align=1 << 63), create(0, cap=0),
        create(0, unknown=4), create(0, unknown=13), create(0, unknown=22),
        create(0, unknown=31), create(0, cache=4097),
        create(0, cache=(1 << 32) - 1), create(0, flags=ZERO, cb='init'),
        create(0, flags=GROWABLE, cap=100, max_blocks='cap-1'),
        create(0, flags=GROWABLE, slab=32768), create(0, flags=GROWABLE, slab=1),
        create(0, flags=GROWABLE, slab=65536 + 4096),
        create(0, flags=GROWABLE, slab=4096),
    ])
    s['huge_sizes'] = b''.join([
        create(0, bs=SIZE_MAX), create(0, bs=SIZE_MAX - 7, cb='init'),
        create(0, bs=SIZE_MAX // 2, align=4096), create(0, bs=1 << 61, cap=1),
        create(0, bs=1 << 62, cap=1), create(0, bs=16, cap=SIZE_MAX // 16),
        create(0, bs=16, cap=1 << 60), create(0, bs=1, cap=SIZE_MAX),
        create(0, bs=1 << 61, cap=0, flags=GROWABLE),
        create(0, bs=1 << 61, cap=1, flags=GROWABLE, slab=1 << 20),
        create(0, bs=SIZE_MAX - 4096, flags=GROWABLE),
        create(0, bs=64, cap=SIZE_MAX // 16, mem='exact'),
        create(0, bs=64, cap=16),  # and a good one after them
        alloc(0, 2),
    ])
    s['valid_edge_configs'] = b''.join([
        create(0, bs=1, align=1, cap=1), alloc(0, 2),
        create(0, bs=4096, align=4096, cap=2, cb='init+fini'), alloc(0, 3),
        create(0, bs=9, align=2, cap=3, cache=4096), op(OP_EXHAUST, 0, 1),
        create(0, bs=17, cap=1, flags=GROWABLE, max_blocks=SIZE_MAX,
               slab=2 << 20), alloc(0, 3),
        create(0, bs=24, cap=100, max_blocks='cap-1', slab=1, trim=65536),
        op(OP_EXHAUST, 0, 0),
        create(0, bs=40, cap=33, flags=CHECKED, name='empty'), alloc(0, 4),
    ])
    s['init_fini_fixed'] = (create(0, bs=40, cap=32, cb='init+fini') +
                            alloc(0, 4, write=1) + free(0, 2) +
                            alloc(0, 4, write=0) + op(OP_FREE_ALL, 0, 1) +
                            alloc(0, 6, write=0) + op(OP_VERIFY, 0) +
                            op(OP_DESTROY, 0))
    s['init_growable_trim'] = (create(1, bs=200, cap=64, flags=GROWABLE,
                                      max_blocks=1000, slab=65536,
                                      cb='init+fini', cache=16) +
                               op(OP_ALLOC_BULK, 1, 0x80 | 50) +
                               op(OP_FREE_ALL, 1, 0) + op(OP_TRIM, 1) +
                               op(OP_ALLOC_BULK, 1, 40) + free(1, 20) +
                               op(OP_TRIM, 1) + op(OP_EXHAUST, 1, 1))
    s['fini_only'] = (create(2, bs=31, cap=100, cb='fini') + alloc(2, 10) +
                      free(2, 3) + create(0, bs=31, cap=100, flags=GROWABLE,
                                          cb='fini', max_blocks=1000) +
                      op(OP_ALLOC_BULK, 0, 60) + op(OP_FREE_ALL, 0, 1) +
                      op(OP_TRIM, 0) + alloc(0, 2))
    s['zero_fixed'] = (create(0, bs=100, cap=16, flags=ZERO) + alloc(0, 8) +
                       free(0, 8) + alloc(0, 8) + op(OP_ALLOC_BULK, 0, 10) +
                       op(OP_FREE_ALL, 0, 0) + op(OP_EXHAUST, 0, 1))
    s['zero_growable'] = (create(1, bs=2048, cap=0, flags=GROWABLE | ZERO,
                                 max_blocks=100) +
                          op(OP_ALLOC_BULK, 1, 40) + op(OP_FREE_ALL, 1, 2) +
                          op(OP_ALLOC_BULK, 1, 40) + op(OP_TRIM, 1))
    s['bulk'] = (create(0, bs=32, cap=256, cache=16) +
                 op(OP_ALLOC_BULK, 0, 0) + op(OP_ALLOC_BULK, 0, 69) * 3 +
                 op(OP_FREE_BULK, 0, 39, 0, 2, 0) +
                 b''.join(op(OP_FREE_BULK_BAD, 0, 10 + k, k, 1, k)
                          for k in BAD_KINDS) +
                 op(OP_ALLOC_BULK, 0, 69) * 2 + op(OP_FREE_BULK, 0, 0, 0, 2, 0))
    three = (create(0, bs=64, cap=64, mem='exact') + alloc(0, 3) +
             create(1, bs=64, cap=64, flags=GROWABLE, max_blocks=100) +
             alloc(1, 3) + create(2, bs=64, cap=64, flags=NO_CACHE) +
             alloc(2, 3))
    s['free_bad_every_kind'] = (three + b''.join(
        op(OP_FREE_BAD, p, k, 1 + k) for p in range(3) for k in BAD_KINDS) +
        b''.join(op(OP_FREE_BAD, p, 0xff, 0) for p in range(3)))
    s['owns_every_kind'] = (three + free(0, 1) + free(1, 1) + free(2, 1) + b''.join(
        op(OP_OWNS, p, k | b << 2, 3) for p in range(3) for k in range(3)
        for b in range(1)) + b''.join(
        op(OP_OWNS, p, 3 | k << 2, 5) for p in range(3) for k in BAD_KINDS))
    s['three_pools_recreate'] = (three + free(1, 2) + op(OP_DESTROY, 1) +
                                 create(1, bs=16, cap=7, flags=ZERO) +
                                 op(OP_EXHAUST, 1, 0) +
                                 create(0, bs=128, cap=4096, cache=1) +
                                 op(OP_EXHAUST, 0, 0) + op(OP_FREE_ALL, 0, 1) +
                                 op(OP_FLUSH))
    s['thread_flush'] = (create(0, bs=8, cap=1000) + create(1, bs=8, cap=64,
                                                             flags=GROWABLE) +
                         op(OP_ALLOC_BULK, 0, 69) + op(OP_ALLOC_BULK, 1, 69) +
                         op(OP_FREE_ALL, 0, 1) + op(OP_FREE_ALL, 1, 1) +
                         op(OP_FLUSH) + alloc(0, 3) + op(OP_FLUSH))
    s['null_args'] = (op(OP_NULL_ARGS, 0) + create(0, bs=16, cap=4) +
                      alloc(0, 2) + op(OP_NULL_ARGS, 0))
    s['tiny_blocks_full'] = (create(0, bs=1, align=1, cap=4096) +
                             op(OP_EXHAUST, 0, 0) + op(OP_FREE_ALL, 0, 2) +
                             op(OP_EXHAUST, 0, 0))
    s['page_aligned_init'] = (create(0, bs=4096, align=4096, cap=16,
                                     cb='init', mem='exact') +
                              op(OP_EXHAUST, 0, 1) + free(0, 5) + alloc(0, 5, 0))
    s['destroy_with_live'] = (create(0, bs=64, cap=64, cb='init+fini') +
                              alloc(0, 5) + op(OP_DESTROY, 0) +
                              create(0, bs=64, cap=64, flags=GROWABLE,
                                     cb='fini') + alloc(0, 5))
    # Another thread: frees some of ours, allocates (flags: 1 bulk, 2 flush
    # before exit, 4 exact: our cache handed back first), frees some of its
    # own, exits.
    s['thread_cross_free'] = (create(0, bs=48, cap=100, cache=8) +
                              op(OP_ALLOC_BULK, 0, 30) +
                              op(OP_THREAD, 0, 10, 40, 3, 4) +
                              op(OP_THREAD, 0, 5, 79, 0, 5) +
                              op(OP_THREAD, 0, 16, 20, 16, 2) +
                              op(OP_FREE_ALL, 0, 0) +
                              create(1, bs=100, cap=16, flags=GROWABLE,
                                     max_blocks=100, cb='init+fini') +
                              op(OP_THREAD, 1, 0, 79, 2, 5) +
                              op(OP_THREAD, 1, 16, 10, 1, 4) +
                              create(2, bs=24, cap=16, flags=NO_CACHE) +
                              op(OP_THREAD, 2, 0, 20, 4, 4) + alloc(2, 2))
    # Pool ids (first byte: 0xff takes every id; else modulo 4: 3 gives the
    # ids back, the others take 1 to 80 more, up to 160): 80 fillers push the
    # next pools past the inline slots; then every id taken (a create must
    # fail with LFP_ENOMEM), one given back.
    s['pool_ids'] = (op(OP_IDS, 0, 79) + create(0, bs=64, cap=64) +
                     alloc(0, 5) + create(1, bs=16, cap=64, flags=ZERO) +
                     alloc(1, 3) + free(1, 2) + op(OP_THREAD, 0, 2, 10, 1, 4) +
                     op(OP_IDS, 0xff, 0) + create(2, bs=64, cap=64) +
                     op(OP_IDS, 0xff, 1) + create(2, bs=64, cap=64) + alloc(2, 2) +
                     op(OP_IDS, 3))
    # Checked mode: double free, free_bulk with a block twice or a free one
    # (LFP_EDOUBLE), a write after free (LFP_ECORRUPT at the next alloc of
    # the block), bad frees (LFP_EFOREIGN) and leaks at destroy (LFP_ELEAK)
    # reach the handler; misuse kinds: 0 double free, 1 bulk duplicate,
    # 2 bulk with a free block, 3 write after free.
    misuse = b''.join(op(OP_MISUSE, 0, k, sel) for k, sel in
                      ((0, 0), (1, 3), (2, 9), (3, 0), (3, 1), (0, 1)))
    s['checked_fixed'] = (create(0, bs=64, cap=64, flags=CHECKED, name='name') +
                          alloc(0, 8) + free(0, 4) + misuse +
                          op(OP_FREE_BAD, 0, 1, 5) + op(OP_FREE_BAD, 0, 8, 0) +
                          op(OP_FREE_BULK_BAD, 0, 2, 0, 1, 2) +
                          alloc(0, 6) + op(OP_DESTROY, 0))
    s['checked_growable_cacheless'] = (
        create(1, bs=100, cap=32, flags=GROWABLE | CHECKED | ZERO,
               max_blocks=100, slab=65536) +
        op(OP_ALLOC_BULK, 1, 20) + free(1, 6) +
        b''.join(op(OP_MISUSE, 1, k, sel) for k, sel in
                 ((3, 0), (3, 2), (0, 1), (2, 4), (1, 0))) +
        op(OP_EXHAUST, 1, 0) + op(OP_FREE_ALL, 1, 1) + op(OP_TRIM, 1) +
        create(2, bs=40, cap=15, flags=CHECKED | NO_CACHE) + alloc(2, 5) +
        free(2, 3) + op(OP_MISUSE, 2, 3, 0) + op(OP_MISUSE, 2, 0, 1) +
        op(OP_THREAD, 2, 1, 12, 1, 4) + alloc(2, 3))
    s['checked_init_keeps_bytes'] = (
        create(0, bs=64, cap=32, flags=CHECKED, cb='init+fini') +
        alloc(0, 6) + free(0, 3) + op(OP_MISUSE, 0, 0, 0) + alloc(0, 3, 0) +
        op(OP_MISUSE, 0, 1, 2))
    s['write_after_free_unchecked'] = (
        create(0, bs=200, cap=64) + alloc(0, 5) + free(0, 3) +
        op(OP_MISUSE, 0, 3, 0) + op(OP_MISUSE, 0, 3, 1) + alloc(0, 5) +
        op(OP_VERIFY, 0))
    # Minimised inputs of findings (see the comments); they stay as
    # regression inputs.
    # UBSan (clang): lfp_slot_get computes s->buf + s->buf_rounds with buf
    # NULL and 0 rounds on the first bind of a cacheless pool's slot.
    s['bug_ub_null_plus_zero_cacheless_slot'] = (
        create(0, bs=64, cap=64, flags=NO_CACHE) + alloc(0, 1))
    # UBSan: align 1, 2 or 4 with a block size above LFP_LINK_BYTES that is
    # no multiple of a pointer makes a stride (LFP__STRIDE) that puts the
    # free-list links of every other block at a misaligned address.
    s['bug_misaligned_links_fixed_align2'] = (
        create(0, bs=33, align=2, cap=2) + alloc(0, 2))
    s['bug_misaligned_links_growable_align2'] = (
        create(0, bs=33, align=2, cap=1, flags=GROWABLE))
    return s


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), 'corpus')
    os.makedirs(out, exist_ok=True)
    for name, data in sorted(seeds().items()):
        with open(os.path.join(out, name), 'wb') as f:
            f.write(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == '__main__':
    main()
