/* SPDX-License-Identifier: MIT */
/*
 * A Treiber stack with an ABA tag: lock-free, multi-producer multi-consumer.
 *
 * The head is a {top, tag} pair. Every successful push or pop writes a tag
 * the head never had before (tag + 1), so a pop that read {top, tag} and
 * then top->next fails its CAS if anything changed the head in between,
 * including a pop, reuse and push back of the same top (ABA).
 *
 * What the tag does not do: make reading top->next safe when top's memory
 * can be released. The caller must keep nodes' memory mapped while a pop may
 * read them (fixed pools never unmap; growable pools pop under RCU).
 *
 * | operation          | may run concurrently with                    |
 * |--------------------|----------------------------------------------|
 * | push, push_chain,  | push, push_chain, pop, pop_all on the same   |
 * | pop, pop_all       | stack                                        |
 * | remove             | push (one remover at a time, no pop beside)  |
 * | init               | nothing on the same stack                    |
 *
 * Each push or pop costs one 16-byte CAS when uncontended.
 */
#ifndef LFP_STACK_H
#define LFP_STACK_H

#include <stddef.h>

#include "compiler.h"
#include "lfp_arch.h"

struct lfp_node {
    struct lfp_node *next;
};

struct lfp_stack {
    lfp_pair head; /* {struct lfp_node *top, tag} */
};

void lfp_stack_init(struct lfp_stack *s);

/* Push the NULL-terminated chain from first without walking it: one CAS
 * when the stack is empty. Otherwise its nodes are detached and put in
 * front of the chain (walking them, not the chain), and the whole pushed
 * onto the then empty stack: those nodes are off the stack meanwhile, so
 * callers count themselves in flight (lfp_depot_steal). */
void lfp_stack_push_chain(struct lfp_stack *s, struct lfp_node *first);

/* Detach the whole stack; returns its former top (a NULL-terminated chain). */
struct lfp_node *lfp_stack_pop_all(struct lfp_stack *s);

/* Take n out of the stack, wherever it lies; prev is the node above it when
 * the caller walked down from the top, NULL when n was the top then. Pushes
 * may run meanwhile: they only go above the top, so below it the links
 * change under no one but the one remover; pushed above n, one of the new
 * nodes then points to n. */
void lfp_stack_remove(struct lfp_stack *s, struct lfp_node *prev, struct lfp_node *n);

/* The top node at some instant, for a racy emptiness check. */
static inline struct lfp_node *lfp_stack_peek(const struct lfp_stack *s)
{
    return __atomic_load_n(&s->head.ptr, __ATOMIC_RELAXED);
}

/* The stack's tag: every push and pop changes it (to a value it never had),
 * so a stack seen empty between two reads of the same tag was empty all
 * the time between them. Acquire, so that the reads of the head that
 * follow it (a pop's) are not made before it. */
static inline uintptr_t lfp_stack_tag(const struct lfp_stack *s)
{
    return __atomic_load_n(&s->head.tag, __ATOMIC_ACQUIRE);
}

#ifdef LFP_TEST_HOOKS
/* Test builds only: called by pop between reading top->next and its CAS, to
 * widen the window in which another thread can change the stack (ABA). */
extern void (*lfp_test_pop_hook)(void);
/* Test builds only: called by pop between loading top and reading
 * top->next, the window in which top's memory may be given back. */
extern void (*lfp_test_pop_read_hook)(void);
#endif

#ifdef LFP_TEST_NO_TAG
/* Test builds only: the torture test must catch the ABA this lets through. */
#define LFP_TAG_STEP 0
#else
#define LFP_TAG_STEP 1
#endif

/* Push the chain first -> ... -> last (linked through next; last->next is
 * overwritten) with one CAS. Inline, as pop: a pool without a cache pushes
 * and pops once per alloc+free pair, and the calls around each CAS were
 * part of what it cost over the bare stack (README, "Without a cache"). */
static inline void lfp_stack_push(struct lfp_stack *s, struct lfp_node *first,
                                  struct lfp_node *last)
{
    lfp_pair old = lfp_load2(&s->head);
    lfp_pair new;

    do {
        /* last is ours until the CAS publishes it; the CAS releases the
         * store below together with the chain's links. */
        last->next = old.ptr;
        new.ptr = first;
        new.tag = old.tag + LFP_TAG_STEP;
    } while (!lfp_cas2(&s->head, &old, new));
}

/* Pop the top node, or NULL if the stack is empty; *below receives the node
 * the pop left on top (a hint: others may have taken it since). */
static inline struct lfp_node *lfp_stack_pop_below(struct lfp_stack *s,
                                                   struct lfp_node **below)
{
    lfp_pair old = lfp_load2(&s->head);
    lfp_pair new;

    do {
        if (old.ptr == NULL)
            return NULL;
#ifdef LFP_TEST_HOOKS
        if (lfp_test_pop_read_hook)
            lfp_test_pop_read_hook();
#endif
        /* Another thread may have popped old.ptr and be writing to it: the
         * value read is then stale, and the CAS below fails because the tag
         * moved on. */
        new.ptr = lfp_racy_load_ptr((void *const *)&((struct lfp_node *)old.ptr)->next);
        new.tag = old.tag + LFP_TAG_STEP;
#ifdef LFP_TEST_HOOKS
        if (lfp_test_pop_hook)
            lfp_test_pop_hook();
#endif
    } while (!lfp_cas2(&s->head, &old, new));
    *below = new.ptr;
    return old.ptr;
}

/* Pop the top node, or NULL if the stack is empty. */
static inline struct lfp_node *lfp_stack_pop(struct lfp_stack *s)
{
    struct lfp_node *below;
    return lfp_stack_pop_below(s, &below);
}

#endif
