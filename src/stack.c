/* SPDX-License-Identifier: MIT */
#include "stack.h"

#include "compiler.h"

#ifdef LFP_TEST_HOOKS
void (*lfp_test_pop_hook)(void);
void (*lfp_test_pop_read_hook)(void);
#endif

void lfp_stack_init(struct lfp_stack *s)
{
    lfp_store2_init(&s->head, NULL, 0);
}

void lfp_stack_push_chain(struct lfp_stack *s, struct lfp_node *first)
{
    for (;;) {
        lfp_pair old = lfp_load2(&s->head);
        if (old.ptr == NULL) {
            /* The chain's last link is NULL already, as the empty head's. */
            lfp_pair new = { first, old.tag + LFP_TAG_STEP };
            if (lfp_cas2(&s->head, &old, new))
                return;
            continue;
        }
        /* Nodes pushed since the caller saw the stack empty: usually a few
         * frees on this CPU, but another thread's take, a trim's hand-back
         * or an lfp_free_bulk can put a long chain here. Theirs go on top. */
        struct lfp_node *top = lfp_stack_pop_all(s);
        if (top == NULL)
            continue;
        struct lfp_node *last = top;
        while (last->next != NULL)
            last = last->next;
        last->next = first;
        first = top;
    }
}

void lfp_stack_remove(struct lfp_stack *s, struct lfp_node *prev, struct lfp_node *n)
{
    if (prev != NULL) {
        prev->next = n->next;
        return;
    }
    lfp_pair old = lfp_load2(&s->head);
    while (old.ptr == n) {
        lfp_pair new = { n->next, old.tag + LFP_TAG_STEP };
        if (lfp_cas2(&s->head, &old, new))
            return;
    }
    /* Once the top moved off n it never comes back to it: only the one
     * remover takes nodes out, and n is still in. */
    struct lfp_node *p = old.ptr;
    while (p->next != n)
        p = p->next;
    p->next = n->next;
}

struct lfp_node *lfp_stack_pop_all(struct lfp_stack *s)
{
    lfp_pair old = lfp_load2(&s->head);
    lfp_pair new;

    do {
        if (old.ptr == NULL)
            return NULL;
        new.ptr = NULL;
        new.tag = old.tag + LFP_TAG_STEP;
    } while (!lfp_cas2(&s->head, &old, new));
    return old.ptr;
}
