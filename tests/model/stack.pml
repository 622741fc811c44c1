/*
 * The tagged Treiber stack (src/stack.h, src/stack.c) under every
 * interleaving of a few processes: Spin explores them all (see treiber.pml
 * for what is modelled).
 *
 * NB blocks start on the stack. Two workers repeatedly pop a block and hold
 * it, then either push it back alone, or pop a second one and push both:
 * pre-linked, as one chain in one CAS (a batch move), or one after the
 * other, the first while the second is still held. A sweeper detaches the
 * whole stack with pop_all, holds it, and pushes the chain back: in one CAS
 * with its last node known (push), or with push_chain, which splices the
 * chain under whatever the workers pushed meanwhile.
 *
 * Properties, as assertions (a safety search checks them all):
 *   - a claim takes only free blocks: no block has two owners at once;
 *   - conservation, in every state: the stack is a NULL-terminated list and
 *     each block is on it exactly once or owned, never both;
 *   - after its push_chain, the sweeper holds no block (one it took back
 *     and did not link would be lost);
 *   - once every process is done, all NB blocks are back on the stack.
 *
 * Variants:
 *   -DNOTAG   the tag never changes: Spin must find the ABA;
 *   -DNOCONS  without the conservation checks, so that with -DNOTAG the
 *             two-owners assertion alone must catch the ABA;
 *   -DNOWALK  push_chain links the chain under the first node it took, not
 *             the last: Spin must find the nodes below it lost.
 * Bounds (defaults in brackets): -DNB [3] blocks, -DROUNDS1 [1] and
 * -DROUNDS2 [2] rounds of the two workers, -DSWEEPS [1] of the sweeper.
 */

#ifndef NB
#define NB 3
#endif
#ifndef ROUNDS1
#define ROUNDS1 1
#endif
#ifndef ROUNDS2
#define ROUNDS2 2
#endif
#ifndef SWEEPS
#define SWEEPS 1
#endif

#define NPROC 3         /* workers 1 and 2, the sweeper 3 */

#include "treiber.pml"

byte done;              /* processes finished */

proctype worker(byte me; byte rounds)
{
    byte t, p, n, k;
    byte a, b;          /* the blocks held */
    byte round;

    do
    :: round < rounds ->
        pop(a);
        if
        :: a == 0 -> skip
        :: a != 0 ->
            if
            :: push(a, a)
            :: pop(b);
                if
                :: b == 0 -> push(a, a)
                :: b != 0 ->
                    if
                    :: next[a] = b;     /* a batch: a -> b, one CAS */
                        push(a, b)
                    :: push(a, a);      /* a back while b is held */
                        push(b, b)
                    fi
                fi
            fi
        fi;
        a = 0; b = 0;
        round++
    :: else -> break
    od;
    done++
}

proctype sweeper(byte me)
{
    byte t, p, n, k;
    byte first, last;
    byte round;

    do
    :: round < SWEEPS ->
        pop_all(first);
        if
        :: first == 0 -> skip
        :: first != 0 ->
            if
            :: chain_last(first, last);
                push(first, last)
            :: push_chain(first)
            fi
        fi;
        first = 0; last = 0;
        round++
    :: else -> break
    od;
    done++
}

/* Once every process is done, all blocks are back on the stack. */
proctype final_check()
{
    done == NPROC;
#ifndef NOCONS
    d_step {
        c_walk = head_ptr;
        c_len = 0;
        do
        :: c_walk != 0 && c_len <= NB ->
            assert(owner[c_walk] == 0);
            c_len++;
            c_walk = next[c_walk]
        :: else -> break
        od;
        assert(c_walk == 0 && c_len == NB);
        c_walk = 0; c_len = 0
    }
#endif
}

init {
    atomic {
        stack_init();
        run worker(1, ROUNDS1);
        run worker(2, ROUNDS2);
        run sweeper(3);
        run final_check()
    }
}
