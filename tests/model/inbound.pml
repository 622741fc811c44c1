/*
 * Blocks on their way to the depot (pool->inbound, struct lfp_inflight,
 * lfp_depot_take): when may a thread that finds nothing give up with
 * ENOBUFS? Every interleaving of a few processes, with each atomic access
 * one step (sequentially consistent: the memory orders that make the real
 * code behave so are argued in src/, not modelled here).
 *
 * The pool holds CAP blocks, made ready in runs of RUN. Two carvers each
 * count themselves in flight, claim a run (if the pool is not carved out),
 * keep one block (in use from then on) and push the rest to the depot,
 * then land. A trimmer counts itself in flight, takes the whole depot,
 * and pushes it all back (it keeps every block: a fixed pool's bound
 * stands in for max_blocks), then lands. A stealer (a pool without a
 * cache taking another CPU's stack whole, lfp_depot_steal) counts itself
 * in flight, takes the depot, keeps one block (in use from then on) and
 * pushes the rest back, then lands; having taken one block or none, it
 * cancels its count instead. The waiter reads inbound (in
 * flight and landed), pops, else carves a run of its own in one step,
 * else reads inbound again: in flight -> look again; landed moved -> look
 * again; else ENOBUFS.
 *
 * With -DLOOKFIRST the waiter is a thread of a pool without a cache, which
 * does not carve (a fixed pool) or grow (a growable one) while a stealer
 * holds blocks out of sight: after its pop it reads inbound again before
 * it carves, looks again while a stealer is in flight (its own part of the
 * count: carvers and trims are not waited for below the bound) or when
 * the count moved since its first read, and carves only then. A carve that then finds the pool
 * carved out (another process claimed the last run since the look) sends
 * it round again, carving first from then on, as above.
 *
 * Properties: ENOBUFS only when no block is free: the depot is empty and
 * no process holds free blocks on their way to it (asserted at the step
 * that decides). With LOOKFIRST also: a look-first carve never while the
 * stealer holds blocks out of sight (asserted at the step that decides to
 * carve). Only counted operations put blocks in the depot here, so any
 * free block at the first step is one the waiter should have had.
 *
 * Variants that must fail:
 *   -DNOLANDED  give up when nothing is in flight, whatever landed: a run
 *               that lands between the pop and the second read is missed
 *               (the race review found in lfp_depot_take);
 *   -DNOWAIT    give up whatever is in flight;
 *   -DNOTRIMCOUNT  the trim does not count itself;
 *   -DNOSTEALCOUNT the stealer does not count itself;
 *   -DSTEALLATE    the stealer counts itself only after its take;
 *   -DLATECOUNT carvers count themselves in flight only after their claim
 *               (what the release on the claim publishes in src/pool.c:
 *               the count must come before it);
 *   -DLOOKFIRST -DNOBOUNDRETRY  give up when the look-first carve finds
 *               the pool carved out: a run claimed since the look is missed;
 *   -DLOOKFIRST -DNOLOOKWAIT    carve after the pop whatever is in flight:
 *               a carve beside blocks the stealer holds.
 */

#ifndef CAP
#define CAP 4
#endif
#ifndef RUN
#define RUN 2
#endif

byte depot;             /* free blocks in the depot */
byte carved;            /* blocks made ready so far */
byte flight;            /* inbound, low half: operations in flight */
byte landed;            /* inbound, high half: operations landed */
byte held;              /* free blocks taken out of the depot's sight */
byte moves;             /* inbound, the stealers' part of flight */
byte mheld;             /* the part of held that the stealer holds */

proctype carver(byte me)
{
    bool got;
#ifndef LATECOUNT
    flight++;                   /* lfp_inflight_begin, before the claim */
#endif
    atomic {
        if
        :: carved + RUN <= CAP ->
            carved = carved + RUN; held = held + RUN - 1; got = true;
            printf("P%d carves a run\n", me)
        :: else -> got = false
        fi
    }
#ifdef LATECOUNT
    flight++;
#endif
    if
    :: got ->
        atomic { depot = depot + RUN - 1; held = held - (RUN - 1) } /* the push */
    :: else -> skip
    fi;
    atomic { flight--; landed++; printf("P%d lands\n", me) }
}

proctype trimmer(byte me)
{
    byte h;
#ifndef NOTRIMCOUNT
    flight++;
#endif
    atomic { h = depot; depot = 0; held = held + h; printf("P%d takes the depot (%d)\n", me, h) }
    atomic { depot = depot + h; held = held - h }
#ifndef NOTRIMCOUNT
    atomic { flight--; landed++; printf("P%d lands\n", me) }
#else
    printf("P%d lands\n", me)
#endif
}

proctype stealer(byte me)
{
    byte h;
#if !defined(NOSTEALCOUNT) && !defined(STEALLATE)
    atomic { flight++; moves++ }  /* before the take, whose CAS publishes it */
#endif
    atomic {
        h = depot; depot = 0;
        if
        :: h > 0 -> held = held + h - 1; mheld = h - 1
        :: else -> skip
        fi;
        printf("P%d takes the depot (%d)\n", me, h)
    }
#ifdef STEALLATE
    atomic { flight++; moves++ }
#endif
    if
    :: h > 1 ->
        atomic { depot = depot + h - 1; held = held - (h - 1); mheld = 0 };
#ifndef NOSTEALCOUNT
        atomic { flight--; moves--; landed++; printf("P%d lands\n", me) }
#else
        printf("P%d lands\n", me)
#endif
    :: else ->
#ifndef NOSTEALCOUNT
        atomic { flight--; moves-- } /* lfp_inflight_cancel: nothing to land */
#else
        skip
#endif
    fi
}

proctype waiter(byte me)
{
    byte bf, bl;
    bool got, carve_first, at_bound;
again:
    atomic { bf = flight; bl = landed; printf("P%d looks: in flight %d, landed %d\n", me, bf, bl) }
    atomic {
        if
        :: depot > 0 -> depot--; got = true
        :: else -> got = false
        fi
    }
    if
    :: got -> goto done
    :: else -> skip
    fi;
#ifdef LOOKFIRST
    carve_first = at_bound;
#else
    carve_first = true;
#endif
    if
    :: carve_first ->
        atomic {
            if
            :: carved + RUN <= CAP -> carved = carved + RUN; depot = depot + RUN - 1; got = true
            :: else -> got = false
            fi
        }
    :: else -> got = false
    fi;
    if
    :: got -> goto done
    :: else -> skip
    fi;
    atomic {
        if
#ifndef NOWAIT
        :: flight != 0 && carve_first -> goto again
#ifndef NOLOOKWAIT
        :: moves != 0 && !carve_first -> goto again
#endif
#endif
#ifndef NOLANDED
        :: flight == 0 && landed != bl && carve_first -> goto again
#endif
        /* Looking first, as the C code compares the whole word: anything
         * begun, landed or cancelled since the first read. */
        :: moves == 0 && (flight != bf || landed != bl) && !carve_first -> goto again
        :: else ->
            if
            :: carve_first ->
                printf("P%d gives up: depot %d, held %d\n", me, depot, held);
                assert(depot == 0 && held == 0)
            :: else ->
                printf("P%d makes more: depot %d, held %d\n", me, depot, mheld);
                assert(mheld == 0)
            fi
        fi
    }
    /* Only a look-first waiter comes here: its carve, in a step of its own. */
    atomic {
        if
        :: carved + RUN <= CAP -> carved = carved + RUN; depot = depot + RUN - 1; got = true
        :: else -> got = false
        fi
    }
    if
    :: got -> goto done
    :: else -> skip
    fi;
#ifdef NOBOUNDRETRY
    printf("P%d gives up: depot %d, held %d\n", me, depot, held);
    assert(depot == 0 && held == 0);
#else
    at_bound = true;
    goto again;
#endif
done:
    skip
}

init {
    atomic {
        run carver(1);
        run carver(2);
        run trimmer(3);
        run stealer(4);
        run waiter(5)
    }
}
