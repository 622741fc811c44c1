/*
 * Releasing slabs under concurrent pops (src/slab.c, lfp_slab_trim): the
 * race that crashed HAProxy's lockless pools (GH #1275), and the RCU grace
 * period that closes it.
 *
 * The depot is the tagged Treiber stack of treiber.pml. Its NB = 3 blocks
 * live in two slabs: blocks 1 and 2 in slab 0, block 3 in slab 1.
 *
 * Poppers: each round, enter an RCU read-side section, pop a block (reading
 * top->next before the CAS), leave the section, hold the block and push it
 * back. That is lfp_depot_pop() then a free.
 *
 * The trimmer: each round, pop_all the depot (the detached blocks are now
 * its own), retire every slab all of whose blocks are among them, push the
 * other blocks back, wait for a grace period, unmap the retired slabs; then
 * grow each back (a new mapping, possibly at the same address: the same
 * block ids) and push its blocks. This is the order of lfp_slab_trim().
 *
 * RCU (urcu-bp, abstracted): a reader's section sets in_cs[me] and bumps
 * cs_ctr[me] on entry, clears in_cs[me] on exit. A grace period snapshots
 * both for every reader, then waits, reader by reader, until the reader is
 * out of the section it was in at the snapshot: out of any section, or in
 * a later one (its counter moved on).
 *
 * Properties, as assertions:
 *   - no process ever reads or writes the memory of a block whose slab is
 *     unmapped (TOUCH below, at every access to a block's link);
 *   - the stack properties of treiber.pml: no block has two owners,
 *     conservation in every state (a block of a retired slab is marked
 *     RETIRED, an owner that is nobody, until its slab is grown back);
 *   - once everyone is done, every block is back on the stack exactly once.
 *
 * Variant: -DNOGRACE unmaps without waiting for the grace period; Spin must
 * find a pop reading the link of a block whose slab was just unmapped.
 * Bounds: -DROUNDS [2] rounds per popper, -DTRIMS [2] trims.
 */

#define NB 3
#define NS 2                    /* slabs */
#define S0_BLOCKS 2             /* blocks 1..2 in slab 0, the rest in 1 */
#define SLAB(b) ((b) > S0_BLOCKS -> 1 : 0)
#define SLAB_FIRST(s) ((s) == 0 -> 1 : S0_BLOCKS + 1)
#define SLAB_LAST(s) ((s) == 0 -> S0_BLOCKS : NB)

#ifndef ROUNDS
#define ROUNDS 2
#endif
#ifndef TRIMS
#define TRIMS 2
#endif

#define NPOP 2                  /* poppers 1 and 2 */
#define TRIMMER 3
#define NPROC 3
#define RETIRED 9               /* owner[] of a block of a retired slab */

bool mapped[NS];
bool in_cs[NPOP + 1];           /* RCU: reader inside a read-side section */
byte cs_ctr[NPOP + 1];          /* RCU: sections entered */
byte done;

#define TOUCH(b) assert(mapped[SLAB(b)])

#include "treiber.pml"

proctype popper(byte me)
{
    byte t, p, n, k;
    byte a;
    byte round;

    do
    :: round < ROUNDS ->
        d_step {                /* rcu_read_lock() */
            in_cs[me] = true;
            cs_ctr[me]++;
            printf("P%d enters read-side section #%d\n", me, cs_ctr[me])
        }
        pop(a);
        atomic {                /* rcu_read_unlock() */
            in_cs[me] = false;
            printf("P%d leaves its section\n", me)
        }
        if
        :: a == 0 -> skip
        :: a != 0 -> push(a, a)
        fi;
        a = 0;
        round++
    :: else -> break
    od;
    done++
}

/* synchronize_rcu(): returns once every reader that was inside a
 * read-side section at the start has left that section. */
inline synchronize_rcu()
{
    d_step {
        k = 1;
        do
        :: k <= NPOP -> snap_in[k] = in_cs[k]; snap_ctr[k] = cs_ctr[k]; k++
        :: else -> break
        od;
        k = 0;
        printf("P%d grace period starts\n", me)
    }
    k = 1;
    do
    :: k <= NPOP ->
        !snap_in[k] || !in_cs[k] || cs_ctr[k] != snap_ctr[k];
        k++
    :: else -> break
    od;
    atomic {
        k = 1;
        do
        :: k <= NPOP -> snap_in[k] = false; snap_ctr[k] = 0; k++
        :: else -> break
        od;
        k = 0;
        printf("P%d grace period ends\n", me)
    }
}

proctype trimmer(byte me)
{
    byte t, p, n, k;
    byte first, last;
    byte victims;               /* bit s: slab s is retired */
    byte s, b;
    bool snap_in[NPOP + 1];
    byte snap_ctr[NPOP + 1];
    byte round;

    do
    :: round < TRIMS ->
        pop_all(first);
        if
        :: first == 0 -> skip
        :: first != 0 ->
            /* The blocks just detached are ours: retire each slab they
             * cover entirely, and link the others into one chain. */
            d_step {
                victims = 0;
                s = 0;
                do
                :: s < NS ->
                    b = SLAB_FIRST(s);
                    do
                    :: b <= SLAB_LAST(s) && owner[b] == me -> b++
                    :: else -> break
                    od;
                    if
                    :: b > SLAB_LAST(s) ->
                        victims = victims | (1 << s);
                        printf("P%d retires slab %d\n", me, s);
                        b = SLAB_FIRST(s);
                        do
                        :: b <= SLAB_LAST(s) -> owner[b] = RETIRED; b++
                        :: else -> break
                        od
                    :: else -> skip
                    fi;
                    s++
                :: else -> break
                od;
                first = 0; last = 0;
                b = NB;
                do
                :: b >= 1 ->
                    if
                    :: owner[b] == me ->
                        TOUCH(b);
                        next[b] = first;
                        if
                        :: first == 0 -> last = b
                        :: else -> skip
                        fi;
                        first = b
                    :: else -> skip
                    fi;
                    b--
                :: else -> break
                od;
                s = 0; b = 0
            }
            if
            :: first != 0 -> push(first, last)
            :: else -> skip
            fi;
            first = 0; last = 0;
            if
            :: victims != 0 ->
#ifndef NOGRACE
                synchronize_rcu();
#endif
                d_step {        /* lfp_slab_release(): munmap */
                    s = 0;
                    do
                    :: s < NS ->
                        if
                        :: (victims & (1 << s)) != 0 ->
                            mapped[s] = false;
                            printf("P%d unmaps slab %d (blocks %d..%d)\n",
                                   me, s, SLAB_FIRST(s), SLAB_LAST(s))
                        :: else -> skip
                        fi;
                        s++
                    :: else -> break
                    od;
                    s = 0
                }
                /* lfp_slab_grow(): map each slab again and push its
                 * blocks, as one chain per slab */
                do
                :: victims != 0 ->
                    d_step {
                        s = ((victims & 1) != 0 -> 0 : 1);
                        victims = victims & ~(1 << s);
                        mapped[s] = true;
                        printf("P%d maps slab %d again (blocks %d..%d)\n",
                               me, s, SLAB_FIRST(s), SLAB_LAST(s));
                        b = SLAB_FIRST(s);
                        first = b;
                        do
                        :: b <= SLAB_LAST(s) ->
                            owner[b] = me;
                            if
                            :: b < SLAB_LAST(s) -> next[b] = b + 1
                            :: else -> skip
                            fi;
                            b++
                        :: else -> break
                        od;
                        last = SLAB_LAST(s);
                        s = 0; b = 0
                    }
                    push(first, last);
                    first = 0; last = 0
                :: else -> break
                od
            :: else -> skip
            fi
        fi;
        round++
    :: else -> break
    od;
    done++
}

/* Once every process is done, every block is back on the stack. */
proctype final_check()
{
    done == NPROC;
    d_step {
        c_walk = head_ptr;
        c_len = 0;
        do
        :: c_walk != 0 && c_len <= NB ->
            assert(owner[c_walk] == 0 && mapped[SLAB(c_walk)]);
            c_len++;
            c_walk = next[c_walk]
        :: else -> break
        od;
        assert(c_walk == 0 && c_len == NB);
        c_walk = 0; c_len = 0
    }
}

init {
    atomic {
        stack_init();
        mapped[0] = true;
        mapped[1] = true;
        run popper(1);
        run popper(2);
        run trimmer(TRIMMER);
        run final_check()
    }
}
