/*
 * The tagged Treiber stack of src/stack.h and src/stack.c, shared by
 * stack.pml and reclaim.pml (which #include it after defining NB).
 *
 * The head is a {ptr, tag} pair. What the model keeps of the C code:
 *   - lfp_load2(): a snapshot reads the tag, then the pointer: two steps,
 *     so the halves may come from different updates;
 *   - a pop reads top->next as a step of its own, between the snapshot and
 *     the CAS;
 *   - lfp_cas2(): one atomic compare-and-update of the pair; on failure the
 *     caller's expected value becomes the pair observed, read atomically;
 *   - every successful push, pop and pop_all writes tag + 1 (tag + 0 with
 *     -DNOTAG, the bug the tag exists to prevent);
 *   - push_chain(), lfp_stack_push_chain(): a CAS onto an empty head, or
 *     else a pop_all of what is there, a walk to its end, a link to the
 *     caller's chain and another try (with -DNOWALK the link goes under the
 *     first node taken instead of the last: Spin must find the loss).
 *
 * Blocks are 1..NB; 0 is NULL. Ownership is explicit: owner[b] is 0 while
 * b is free, that is on the stack, else the id of the process holding it
 * (or any other non-zero mark the including model gives it). A claim (pop,
 * pop_all) and a release (push) change owner[] in the same atomic step as
 * the CAS that moves the blocks.
 *
 * The including model provides, before the #include:
 *   NB        the number of blocks;
 *   TOUCH(b)  optional: a statement run, in the same step, wherever the
 *             stack reads or writes block b's memory (its next link): a
 *             pop reading top->next, a push linking its last block, a
 *             pop_all claiming its chain, chain_last or push_chain
 *             walking one. skip if not defined.
 * and every process that calls these inlines declares
 *   byte me, t, p, n, k;   (its id, then scratch, left 0 between calls)
 * The printf()s narrate a counterexample replayed with spin -t; they cost
 * no states (each sits inside an atomic step).
 */

#ifdef NOTAG
#define STEP 0
#else
#define STEP 1
#endif

#ifndef TOUCH
#define TOUCH(b) skip
#endif

byte head_ptr;          /* the pair */
byte head_tag;
byte next[NB + 1];      /* each block's link; next[0] unused */
byte owner[NB + 1];     /* 0: free, else who holds it */

/* Scratch of the checks, outside the state vector. */
hidden byte c_walk;
hidden byte c_len;
hidden byte c_seen[NB + 1];

/* The stack starts as 1 -> 2 -> ... -> NB. */
inline stack_init()
{
    d_step {
        c_walk = 1;
        do
        :: c_walk < NB -> next[c_walk] = c_walk + 1; c_walk++
        :: else -> break
        od;
        next[NB] = 0;
        head_ptr = 1;
        head_tag = 0;
        c_walk = 0
    }
}

/* Conservation: the stack is a list ending in NULL, and every block is on
 * it exactly once or owned, never both. Runs inside the atomic step of each
 * successful CAS: those are the only steps that move blocks between the
 * stack and their owners, so it holds in every reachable state. -DNOCONS
 * leaves it out. */
inline check_conservation()
{
#ifndef NOCONS
    d_step {
        c_walk = 1;
        do
        :: c_walk <= NB -> c_seen[c_walk] = 0; c_walk++
        :: else -> break
        od;
        c_len = 0;
        c_walk = head_ptr;
        do
        :: c_walk != 0 && c_len <= NB ->
            c_seen[c_walk]++; c_len++; c_walk = next[c_walk]
        :: else -> break
        od;
        assert(c_walk == 0);            /* no cycle */
        c_walk = 1;
        do
        :: c_walk <= NB ->
            assert(c_seen[c_walk] + (owner[c_walk] != 0) == 1);
            c_walk++
        :: else -> break
        od;
        c_walk = 0; c_len = 0
    }
#else
    skip
#endif
}

/* lfp_stack_pop(): res = the popped block, or 0 if the stack was empty. */
inline pop(res)
{
    t = head_tag;                       /* lfp_load2: the tag, */
    p = head_ptr;                       /* then the pointer */
    do
    :: p == 0 -> t = 0; res = 0; break
    :: else ->
        d_step {                        /* racy read of top->next */
            printf("P%d pop: expects {%d,t%d}, reads next[%d] = %d\n",
                   me, p, t, p, next[p]);
            TOUCH(p);
            n = next[p]
        }
        atomic {
            if
            :: head_ptr == p && head_tag == t ->
                printf("P%d pop: CAS {%d,t%d} -> {%d,t%d}: claims block %d\n",
                       me, p, t, n, t + STEP, p);
                head_ptr = n;
                head_tag = t + STEP;
                assert(owner[p] == 0);  /* never two owners at once */
                owner[p] = me;
                res = p;
                check_conservation();
                t = 0; p = 0; n = 0;
                break
            :: else ->                  /* expected = observed, atomically */
                printf("P%d pop: CAS {%d,t%d} fails, head is {%d,t%d}\n",
                       me, p, t, head_ptr, head_tag);
                t = head_tag; p = head_ptr; n = 0
            fi
        }
    od
}

/* lfp_stack_pop_all(): res = the former top; the caller claims the whole
 * chain (k bounds the walk, should a bug have made it cyclic). */
inline pop_all(res)
{
    t = head_tag;
    p = head_ptr;
    do
    :: p == 0 -> t = 0; res = 0; break
    :: else ->
        atomic {
            if
            :: head_ptr == p && head_tag == t ->
                printf("P%d pop_all: CAS {%d,t%d} -> {0,t%d}\n",
                       me, p, t, t + STEP);
                head_ptr = 0;
                head_tag = t + STEP;
                res = p;
                k = 0;
                do
                :: p != 0 && k <= NB ->
                    assert(owner[p] == 0);
                    owner[p] = me;
                    TOUCH(p);
                    p = next[p]; k++
                :: else -> break
                od;
                check_conservation();
                t = 0; p = 0; k = 0;
                break
            :: else ->
                t = head_tag; p = head_ptr
            fi
        }
    od
}

/* lfp_stack_push() of the chain first -> ... -> last, which the caller
 * holds and gives up (owner 0) with the CAS that publishes it. */
inline push(first, last)
{
    t = head_tag;
    p = head_ptr;
    do
    :: d_step { TOUCH(last); next[last] = p }   /* last is still ours */
        atomic {
            if
            :: head_ptr == p && head_tag == t ->
                printf("P%d push: CAS {%d,t%d} -> {%d,t%d}: pushes %d..%d\n",
                       me, p, t, first, t + STEP, first, last);
                head_ptr = first;
                head_tag = t + STEP;
                n = first; k = 0;
                do
                :: k <= NB ->
                    owner[n] = 0;
                    if
                    :: n == last -> break
                    :: else -> n = next[n]; k++
                    fi
                :: else -> break
                od;
                check_conservation();
                t = 0; p = 0; n = 0; k = 0;
                break
            :: else ->
                t = head_tag; p = head_ptr
            fi
        }
    od
}

/* The end of the caller's chain from first (k bounds the walk). */
inline chain_last(first, last)
{
    d_step {
        last = first; k = 0;
        do
        :: next[last] != 0 && k < NB -> TOUCH(last); last = next[last]; k++
        :: else -> break
        od;
        k = 0
    }
}

/* After push_chain: the caller holds no block. Its callers in the models
 * hold nothing but the chain they push, so a block still theirs is one the
 * splice dropped (it took it back with pop_all and never linked it): lost
 * to the pool, though conservation, which counts it as owned, holds. */
inline chain_gave_all()
{
    d_step {
        c_walk = 1;
        do
        :: c_walk <= NB -> assert(owner[c_walk] != me); c_walk++
        :: else -> break
        od;
        c_walk = 0
    }
}

/* lfp_stack_push_chain() of the caller's NULL-terminated chain from first,
 * which it holds and gives up with the CAS that publishes it. first ends
 * up naming the chain actually pushed (the nodes found on the stack, then
 * the caller's). */
inline push_chain(first)
{
    do
    :: t = head_tag;                    /* lfp_load2 */
        p = head_ptr;
        if
        :: p == 0 ->
            atomic {
                if
                :: head_ptr == 0 && head_tag == t ->
                    printf("P%d push_chain: CAS {0,t%d} -> {%d,t%d}\n",
                           me, t, first, t + STEP);
                    head_ptr = first;
                    head_tag = t + STEP;
                    n = first; k = 0;
                    do
                    :: n != 0 && k <= NB -> owner[n] = 0; n = next[n]; k++
                    :: else -> break
                    od;
                    check_conservation();
                    chain_gave_all();
                    t = 0; p = 0; n = 0; k = 0;
                    break
                :: else -> t = 0; p = 0     /* look again */
                fi
            }
        :: else ->
            t = 0; p = 0;
            pop_all(n);                 /* what was pushed since */
            if
            :: n == 0 -> skip           /* emptied meanwhile: look again */
            :: else ->
                d_step {                /* the taken nodes are ours */
                    p = n; k = 1;
                    do
                    :: next[p] != 0 && k <= NB -> TOUCH(p); p = next[p]; k++
                    :: else -> break
                    od;
#ifdef NOWALK
                    p = n;
#endif
                    printf("P%d push_chain: took %d block(s) from %d, links %d -> %d\n",
                           me, k, n, p, first);
                    TOUCH(p);
                    next[p] = first;
                    first = n;
                    p = 0; n = 0; k = 0
                }
            fi
        fi
    od
}
