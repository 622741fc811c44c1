/* SPDX-License-Identifier: MIT */
/*
 * The tagged Treiber stack (src/stack.h) on its own: order, chains, pop_all
 * and the tag single-threaded; then many threads popping and pushing the
 * same nodes, each node claimed through an owner word, so a node handed to
 * two threads at once, lost or duplicated shows up.
 *
 * Environment: LFP_STRESS_SCALE (default 1.0) scales the rounds,
 * LFP_STRESS_THREADS (default 4) the thread count.
 */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "stack.h"

#define NNODES 4096
#define FREE 0 /* owner of a node that sits in the stack */

struct tnode {
    struct lfp_node node; /* first: a struct lfp_node * is a struct tnode * */
    _Atomic int owner;
    unsigned id;
};

static struct tnode nodes[NNODES];

static struct lfp_node *N(int i)
{
    return &nodes[i].node;
}

/* Index of a node of the array, or -1 for anything else. */
static long index_of(const struct lfp_node *n)
{
    uintptr_t a = (uintptr_t)n, lo = (uintptr_t)&nodes[0];
    if (a < lo || a >= (uintptr_t)&nodes[NNODES] || (a - lo) % sizeof(nodes[0]))
        return -1;
    return (long)((a - lo) / sizeof(nodes[0]));
}

static void reset_nodes(void)
{
    for (int i = 0; i < NNODES; i++) {
        nodes[i].node.next = NULL;
        atomic_store(&nodes[i].owner, FREE);
        nodes[i].id = (unsigned)i;
    }
}

static void push1(struct lfp_stack *s, int i)
{
    lfp_stack_push(s, N(i), N(i));
}

/* ---- single-threaded contract ----------------------------------------- */

static void empty_stack_pops_null_and_peeks_null(void)
{
    struct lfp_stack s;
    memset(&s, 0xa5, sizeof s); /* init must not depend on prior contents */
    lfp_stack_init(&s);

    CHECK(lfp_stack_peek(&s) == NULL);
    CHECK(lfp_stack_pop(&s) == NULL);
    CHECK(lfp_stack_pop_all(&s) == NULL);
    CHECK(lfp_stack_pop(&s) == NULL);
    CHECK(lfp_stack_peek(&s) == NULL);
}

static void single_pushes_pop_in_lifo_order(void)
{
    struct lfp_stack s;
    reset_nodes();
    lfp_stack_init(&s);

    for (int i = 0; i < 5; i++) {
        push1(&s, i);
        CHECK(lfp_stack_peek(&s) == N(i));
    }
    for (int i = 4; i >= 0; i--) {
        CHECK(lfp_stack_peek(&s) == N(i));
        CHECK_EQ(index_of(lfp_stack_pop(&s)), i);
    }
    CHECK(lfp_stack_pop(&s) == NULL);
    CHECK(lfp_stack_peek(&s) == NULL);
}

static void push_links_chain_tail_to_previous_top(void)
{
    struct lfp_stack s;
    reset_nodes();
    lfp_stack_init(&s);

    /* Onto an empty stack the tail's link becomes NULL, whatever it held. */
    N(0)->next = N(7);
    push1(&s, 0);
    CHECK(N(0)->next == NULL);

    N(1)->next = N(2);
    N(2)->next = N(7); /* stale: push overwrites the tail's link */
    lfp_stack_push(&s, N(1), N(2));
    CHECK(N(1)->next == N(2));
    CHECK(N(2)->next == N(0));
    CHECK(lfp_stack_peek(&s) == N(1));
}

static void chain_push_pops_in_chain_order_above_older_nodes(void)
{
    struct lfp_stack s;
    reset_nodes();
    lfp_stack_init(&s);

    push1(&s, 10); /* x */
    push1(&s, 11); /* y */
    N(20)->next = N(21); /* a -> b -> c */
    N(21)->next = N(22);
    N(22)->next = N(3000); /* stale link on the tail */
    lfp_stack_push(&s, N(20), N(22));

    const long want[] = { 20, 21, 22, 11, 10 };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        CHECK_EQ(index_of(lfp_stack_pop(&s)), want[i]);
    CHECK(lfp_stack_pop(&s) == NULL);
}

/* push_chain: onto an empty stack the chain as it is, with one update of
 * the tag; onto a stack with nodes, those nodes stay on top, in their
 * order, and the chain goes below them. */
static void push_chain_goes_below_the_nodes_already_there(void)
{
    struct lfp_stack s;
    reset_nodes();
    lfp_stack_init(&s);

    N(20)->next = N(21);
    N(21)->next = NULL;
    uintptr_t tag = lfp_stack_tag(&s);
    lfp_stack_push_chain(&s, N(20));
    CHECK_EQ(lfp_stack_tag(&s), tag + 1);
    CHECK(lfp_stack_peek(&s) == N(20));

    push1(&s, 10); /* x, y on top of a -> b */
    push1(&s, 11);
    CHECK(lfp_stack_pop(&s) == N(11));
    CHECK(lfp_stack_pop(&s) == N(10));
    CHECK(lfp_stack_pop(&s) == N(20));
    CHECK(lfp_stack_pop(&s) == N(21));

    push1(&s, 10);
    push1(&s, 11);
    N(30)->next = N(31);
    N(31)->next = N(32);
    N(32)->next = NULL;
    lfp_stack_push_chain(&s, N(30));
    const long want[] = { 11, 10, 30, 31, 32 };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        CHECK_EQ(index_of(lfp_stack_pop(&s)), want[i]);
    CHECK(lfp_stack_pop(&s) == NULL);
}

static void pop_all_returns_whole_stack_in_lifo_order_and_empties_it(void)
{
    struct lfp_stack s;
    reset_nodes();
    lfp_stack_init(&s);

    for (int i = 0; i < 6; i++)
        push1(&s, 100 + i);
    struct lfp_node *n = lfp_stack_pop_all(&s);

    CHECK(lfp_stack_peek(&s) == NULL);
    CHECK(lfp_stack_pop(&s) == NULL);
    CHECK(lfp_stack_pop_all(&s) == NULL);
    for (int i = 5; i >= 0; i--) {
        REQUIRE(n != NULL);
        CHECK_EQ(index_of(n), 100 + i);
        n = n->next;
    }
    CHECK(n == NULL); /* the chain ends with the bottom node */

    /* The emptied stack works as a new one. */
    push1(&s, 200);
    CHECK_EQ(index_of(lfp_stack_pop(&s)), 200);
    CHECK(lfp_stack_pop(&s) == NULL);
}

static void every_successful_push_and_pop_advances_tag(void)
{
#ifdef LFP_TEST_NO_TAG
    printf("     (skipped: the stack was built without its tag)\n");
#else
    struct lfp_stack s;
    reset_nodes();
    lfp_stack_init(&s);
    uintptr_t t = s.head.tag;

#define EXPECT_TAG_ADVANCED()                                              \
    do {                                                                   \
        CHECK(s.head.tag > t);                                             \
        t = s.head.tag;                                                    \
    } while (0)

    push1(&s, 0);
    EXPECT_TAG_ADVANCED();
    push1(&s, 1);
    EXPECT_TAG_ADVANCED();
    N(2)->next = N(3);
    lfp_stack_push(&s, N(2), N(3));
    EXPECT_TAG_ADVANCED();
    CHECK(lfp_stack_pop(&s) == N(2));
    EXPECT_TAG_ADVANCED();
    CHECK(lfp_stack_pop(&s) == N(3));
    EXPECT_TAG_ADVANCED();
    CHECK(lfp_stack_pop_all(&s) == N(1));
    EXPECT_TAG_ADVANCED();

    /* Pop and push back the same node: the head's pointer returns to what
     * it was (the A in ABA) but its tag does not. */
    push1(&s, 5);
    lfp_pair before = s.head;
    CHECK(lfp_stack_pop(&s) == N(5));
    push1(&s, 5);
    CHECK(s.head.ptr == before.ptr);
    CHECK(s.head.tag != before.tag);
    CHECK(s.head.tag > before.tag);
#undef EXPECT_TAG_ADVANCED
#endif
}

/* remove: a node below the top through its predecessor's link, the top
 * through a CAS that advances the tag, and a node that was the top when the
 * caller looked but has had nodes pushed above it since. */
static void remove_takes_a_node_out_wherever_it_lies(void)
{
    struct lfp_stack s;
    reset_nodes();
    lfp_stack_init(&s);
    for (int i = 0; i < 5; i++)
        push1(&s, i); /* 4 3 2 1 0 */
    lfp_stack_remove(&s, N(3), N(2));
    uintptr_t t = s.head.tag;
    lfp_stack_remove(&s, NULL, N(4));
    CHECK(s.head.ptr == N(3));
    CHECK(s.head.tag > t);
    push1(&s, 7);
    lfp_stack_remove(&s, NULL, N(3)); /* the top when looked at, not now */
    const int want[] = { 7, 1, 0 };
    for (int i = 0; i < 3; i++)
        CHECK_EQ(index_of(lfp_stack_pop(&s)), want[i]);
    CHECK(lfp_stack_pop(&s) == NULL);
}

/* ---- many threads --------------------------------------------------- */

static struct lfp_stack shared;
static atomic_int go;
static int live; /* the stress uses nodes[0..live) */
static int max_take; /* most nodes a thread holds at once */

struct worker {
    int self;         /* owner id, never FREE */
    long rounds;
    unsigned seed;
    long popped;      /* nodes popped */
    long pop_alls;    /* non-empty pop_all calls */
    long double_handouts;
    long strangers;   /* popped a pointer that is not one of the nodes */
    long stolen;      /* a node held by us changed owner */
    long corrupted;   /* a node's id no longer matches its slot */
};

static unsigned next_rand(unsigned *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Take ownership of a node just popped; false if it is not ours to take. */
static int claim(struct worker *w, struct lfp_node *n)
{
    long i = index_of(n);
    if (i < 0 || i >= live) {
        w->strangers++;
        return 0;
    }
    if (atomic_exchange(&nodes[i].owner, w->self) != FREE) {
        w->double_handouts++;
        return 0;
    }
    if (nodes[i].id != (unsigned)i)
        w->corrupted++;
    return 1;
}

static void release(struct worker *w, struct lfp_node *n)
{
    if (atomic_exchange(&nodes[index_of(n)].owner, FREE) != w->self)
        w->stolen++;
}

#define MAX_HELD 64

/* Push back held[0..k) and forget them: in turn one at a time, linked into
 * one chain and pushed with a single CAS, or as a NULL-terminated chain by
 * push_chain (which, when the stack is not empty, takes what is there off
 * it and puts it in front of the chain: a third way nodes leave and come
 * back beside everyone's pops). */
static void push_back(struct worker *w, long round, struct lfp_node **held, int k)
{
    for (int j = 0; j < k; j++)
        release(w, held[j]);
    if (k == 0)
        return;
    if (round % 3 == 1) {
        for (int j = 0; j < k; j++)
            lfp_stack_push(&shared, held[j], held[j]);
        return;
    }
    for (int j = 0; j + 1 < k; j++)
        held[j]->next = held[j + 1];
    if (round % 3 == 0) {
        lfp_stack_push(&shared, held[0], held[k - 1]);
    } else {
        held[k - 1]->next = NULL;
        lfp_stack_push_chain(&shared, held[0]);
    }
}

/* Empty the whole stack at once, under everyone else's pops, claim every
 * node of the chain, and push it all back as one chain. */
static void take_all_and_push_back(struct worker *w)
{
    struct lfp_node *first = lfp_stack_pop_all(&shared), *last = NULL;
    long len = 0;

    if (first == NULL)
        return;
    w->pop_alls++;
    for (struct lfp_node *n = first; n != NULL; n = n->next) {
        /* A node seen twice (a cycle) is already ours: claim refuses it. */
        if (!claim(w, n))
            return; /* counted; push back nothing that may not be ours */
        last = n;
        len++;
    }
    w->popped += len;
    for (struct lfp_node *n = first;; n = n->next) {
        release(w, n);
        if (n == last)
            break;
    }
    lfp_stack_push(&shared, first, last);
}

static void *mpmc_worker(void *p)
{
    struct worker *w = p;
    struct lfp_node *held[MAX_HELD];

    while (!atomic_load_explicit(&go, memory_order_acquire))
        lfp_cpu_relax();
    for (long r = 0; r < w->rounds; r++) {
        int want = 1 + (int)(next_rand(&w->seed) % (unsigned)max_take);
        int k = 0;

        if (w->self == 1 && r % 512 == 511) {
            take_all_and_push_back(w);
            continue;
        }

        while (k < want) {
            struct lfp_node *n = lfp_stack_pop(&shared);
            if (n == NULL)
                break;
            w->popped++;
            if (!claim(w, n))
                break; /* counted; never push back what is not ours */
            held[k++] = n;
        }
        push_back(w, r, held, k);
    }
    return NULL;
}

static void run_mpmc(int nnodes, int take, long rounds)
{
    int n = stress_threads();
    pthread_t th[256];
    struct worker ws[256];

    reset_nodes();
    live = nnodes;
    max_take = take;
    lfp_stack_init(&shared);
    for (int i = 0; i < live; i++)
        push1(&shared, i);

    atomic_store(&go, 0);
    for (int i = 0; i < n; i++) {
        ws[i] = (struct worker){ .self = i + 1, .rounds = rounds,
                                 .seed = 0x9e3779b9u * (unsigned)(i + 1) };
        REQUIRE(pthread_create(&th[i], NULL, mpmc_worker, &ws[i]) == 0);
    }
    atomic_store_explicit(&go, 1, memory_order_release);

    long popped = 0, pop_alls = 0, doubles = 0, strangers = 0, stolen = 0, corrupted = 0;
    for (int i = 0; i < n; i++) {
        REQUIRE(pthread_join(th[i], NULL) == 0);
        popped += ws[i].popped;
        pop_alls += ws[i].pop_alls;
        doubles += ws[i].double_handouts;
        strangers += ws[i].strangers;
        stolen += ws[i].stolen;
        corrupted += ws[i].corrupted;
    }
    CHECK_EQ(doubles, 0);
    CHECK_EQ(strangers, 0);
    CHECK_EQ(stolen, 0);
    CHECK_EQ(corrupted, 0);
    CHECK(popped > (long)n); /* the threads did get nodes */

    /* Every node is back, exactly once, and nobody holds one. */
    static unsigned char seen[NNODES];
    memset(seen, 0, sizeof seen);
    long count = 0, dup = 0, unknown = 0, owned = 0;
    struct lfp_node *m = lfp_stack_pop_all(&shared);
    for (; m != NULL && count <= live; m = m->next, count++) {
        long i = index_of(m);
        if (i < 0 || i >= live) {
            unknown++;
            break;
        }
        if (seen[i]++)
            dup++;
    }
    for (int i = 0; i < NNODES; i++)
        if (atomic_load(&nodes[i].owner) != FREE)
            owned++;
    CHECK_EQ(count, live);
    CHECK_EQ(dup, 0);
    CHECK_EQ(unknown, 0);
    CHECK_EQ(owned, 0);
    CHECK(lfp_stack_pop(&shared) == NULL);
    printf("     %d nodes, %d threads x %ld rounds, %ld pops, %ld pop_alls\n", live, n, rounds,
           popped, pop_alls);
}

static void concurrent_pops_and_pushes_hand_out_each_node_once_and_lose_none(void)
{
    run_mpmc(NNODES, 16, scaled(40000, 500));
}

/* Few nodes, many takers: the same node keeps coming back to the top, the
 * situation the tag exists for. */
static void concurrent_pops_on_a_few_nodes_never_hand_one_out_twice(void)
{
    run_mpmc(4, 2, scaled(100000, 1000));
}

/* One thread pushes pairs of nodes, an even one then an odd one, and waits
 * after each pair until the even one is gone; another takes each even one
 * out as soon as it sees it, as the top when it finds it there (its CAS
 * racing the odd one's push), else through the node above. The stack then
 * holds the odd ones, each once, over the nodes that were there before. */
enum { REMOVE_BASE = 16, REMOVE_PAIRS = 1500 };
static _Atomic int removed;

static bool to_remove(const struct lfp_node *n)
{
    return index_of(n) >= REMOVE_BASE && index_of(n) % 2 == 0;
}

static void *push_pairs(void *arg)
{
    for (int k = 0; k < REMOVE_PAIRS; k++) {
        push1(arg, REMOVE_BASE + 2 * k);
        /* A pause of varying length, so that the odd push meets the
         * removal at every point. */
        for (volatile int d = 0; d < (k % 64) * 16; d++)
            ;
        push1(arg, REMOVE_BASE + 2 * k + 1);
        while (atomic_load(&removed) <= k)
            sched_yield();
    }
    return NULL;
}

static void remove_beside_pushes_loses_and_doubles_no_node(void)
{
    struct lfp_stack s;
    reset_nodes();
    lfp_stack_init(&s);
    for (int i = 0; i < REMOVE_BASE; i++)
        push1(&s, i);
    atomic_store(&removed, 0);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, push_pairs, &s) == 0);
    long as_top = 0;
    while (atomic_load(&removed) < REMOVE_PAIRS) {
        struct lfp_node *prev = NULL, *n = lfp_load2(&s.head).ptr;
        while (n != NULL && !to_remove(n)) {
            prev = n;
            n = n->next;
        }
        if (n == NULL)
            continue;
        lfp_stack_remove(&s, prev, n);
        as_top += prev == NULL;
        atomic_fetch_add(&removed, 1);
    }
    REQUIRE(pthread_join(t, NULL) == 0);
    printf("     %ld of %d taken out as the top\n", as_top, REMOVE_PAIRS);
    static int seen[NNODES];
    memset(seen, 0, sizeof seen);
    long total = 0;
    for (struct lfp_node *n = lfp_stack_pop_all(&s); n != NULL; n = n->next, total++) {
        long i = index_of(n);
        REQUIRE(i >= 0);
        seen[i]++;
    }
    CHECK_EQ(total, REMOVE_BASE + REMOVE_PAIRS);
    long wrong = 0;
    for (int i = 0; i < REMOVE_BASE + 2 * REMOVE_PAIRS; i++)
        wrong += seen[i] != (to_remove(N(i)) ? 0 : 1);
    CHECK_EQ(wrong, 0);
}

int main(void)
{
    RUN(empty_stack_pops_null_and_peeks_null);
    RUN(single_pushes_pop_in_lifo_order);
    RUN(push_links_chain_tail_to_previous_top);
    RUN(chain_push_pops_in_chain_order_above_older_nodes);
    RUN(push_chain_goes_below_the_nodes_already_there);
    RUN(pop_all_returns_whole_stack_in_lifo_order_and_empties_it);
    RUN(every_successful_push_and_pop_advances_tag);
    RUN(remove_takes_a_node_out_wherever_it_lies);
    RUN(remove_beside_pushes_loses_and_doubles_no_node);
    RUN(concurrent_pops_and_pushes_hand_out_each_node_once_and_lose_none);
    RUN(concurrent_pops_on_a_few_nodes_never_hand_one_out_twice);
    return check_done();
}
