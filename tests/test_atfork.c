/* SPDX-License-Identifier: MIT */
/*
 * A fork while the process's first pool is being created, at the moment
 * the library registers its fork handler (pthread_atfork): the child must
 * be able to create and use pools of its own. A lock held across that
 * registration would stay held for ever in the child, as the thread that
 * held it does not exist there.
 *
 * The program defines pthread_atfork itself and forks from a second thread
 * inside it, then registers the handler as the C library would. With glibc
 * the symbol comes from libc_nonshared.a, so the program's definition wins
 * when it is linked; elsewhere the test is skipped. Its own program, as the
 * registration happens once per process.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lfpool.h>

#include "check.h"

#if defined(__GLIBC__) && !defined(CHECK_TSAN)
#define FORK_IN_REGISTRATION 1

static _Atomic int armed, registrations;
static int child_status = -1;

/* The child: a pool of its own, used, checked and destroyed; a hang (the
 * alarm) or any failure is a non-zero status. */
static int child_main(void)
{
    alarm(20);
    struct lfp_config cfg = { .block_size = 64, .capacity = 64 };
    lfp_pool *pool = NULL;
    if (lfp_pool_create(&cfg, &pool) != LFP_OK)
        return 1;
    void *p = lfp_alloc(pool);
    if (p == NULL || lfp_free(pool, p) != LFP_OK || lfp_pool_verify(pool) != LFP_OK)
        return 2;
    return lfp_pool_destroy(pool) == 0 ? 0 : 3;
}

static void *forker_main(void *arg)
{
    (void)arg;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        _exit(child_main());
    if (pid > 0 && waitpid(pid, &child_status, 0) != pid)
        child_status = -1;
    return NULL;
}

extern void *__dso_handle;
extern int __register_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void),
                             void *dso);

int pthread_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void))
{
    atomic_fetch_add(&registrations, 1);
    if (atomic_exchange(&armed, 0)) {
        pthread_t t;
        if (pthread_create(&t, NULL, forker_main, NULL) == 0)
            pthread_join(t, NULL);
    }
    return __register_atfork(prepare, parent, child, __dso_handle);
}
#endif

static void test_a_child_forked_while_the_first_pool_registers_its_fork_handler_can_use_pools(void)
{
#ifndef FORK_IN_REGISTRATION
    printf("  skipped: needs glibc, and fork() in a threaded program (not under TSan)\n");
#else
    atomic_store(&armed, 1);
    struct lfp_config cfg = { .block_size = 64, .capacity = 64 };
    lfp_pool *pool = NULL;
    CHECK_EQ(lfp_pool_create(&cfg, &pool), LFP_OK);
    /* The library did register a handler, and the fork happened in it. */
    CHECK(atomic_load(&registrations) >= 1);
    CHECK_EQ(atomic_load(&armed), 0);
    CHECK(WIFEXITED(child_status));
    CHECK_EQ(WIFEXITED(child_status) ? WEXITSTATUS(child_status) : -1, 0);
    if (pool != NULL) {
        void *p = lfp_alloc(pool);
        CHECK(p != NULL);
        CHECK_EQ(lfp_free(pool, p), LFP_OK);
        verify_and_destroy(pool, 0);
    }
#endif
}

/* A fork whose prepare handlers already run when another thread's automatic
 * trim queues the process's first slab release. glibc runs only the
 * handlers that existed when the prepare phase began, so the library's must
 * be registered before any release can be queued (at the first growable
 * pool): registered at the first release, they missed this fork, whose child
 * then counted a release no thread of its own would ever run, and its
 * lfp_pool_destroy waited for ever (the alarm). The program's own prepare
 * handler, registered before any growable pool (so it runs after the
 * library's), holds the fork until the release is queued, or 300 ms when the
 * library's queue lock keeps the release waiting for the fork instead. */
#ifdef FORK_IN_REGISTRATION
static sem_t in_prepare, released;
static _Atomic int hold_the_fork;
static lfp_pool *growable;
static int growable_child_status = -1;

/* A growable pool without a cache, 16 blocks of 4 KiB to a slab, that trims
 * itself once a whole slab is free in its depot; its first slab's blocks
 * all in use, in b (*per of them). */
enum { SLAB_MAX = 64 };

static lfp_pool *pool_with_one_slab_in_use(void **b, size_t *per)
{
    struct lfp_config cfg = { .block_size = 4096, .slab_size = 64 * 1024,
                              .flags = LFP_GROWABLE | LFP_NO_CACHE,
                              .trim_threshold = 15 * 4096 };
    lfp_pool *pool = create_pool(&cfg);
    b[0] = lfp_alloc(pool);
    REQUIRE(b[0] != NULL);
    *per = stats_of(pool).blocks_total;
    REQUIRE(*per <= SLAB_MAX);
    CHECK_EQ(alloc_all(pool, b + 1, *per - 1), *per - 1);
    return pool;
}

static void hold_in_prepare(void)
{
    if (!atomic_exchange(&hold_the_fork, 0))
        return;
    sem_post(&in_prepare);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 300 * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (sem_timedwait(&released, &until) != 0 && errno == EINTR)
        ;
}

/* The child's status; a child still running after 20 s (it may hang with
 * every signal blocked, where its alarm cannot end it) is killed: -1. */
static int wait_child(pid_t pid)
{
    int status = -1;
    for (int i = 0; i < 2000; i++) {
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid)
            return status;
        if (got < 0)
            return -1;
        struct timespec pause = { 0, 10 * 1000000L };
        nanosleep(&pause, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

static void *fork_and_destroy_in_child(void *arg)
{
    (void)arg;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(20);
        _exit(lfp_pool_destroy(growable) == 0 ? 0 : 1);
    }
    growable_child_status = pid > 0 ? wait_child(pid) : -1;
    return NULL;
}

/* The program's parent fork handler (registered before the library's, so it
 * runs first among them) raises a signal whose handler frees the last block
 * of a slab into a growable pool: its trim queues the release. */
static _Atomic int raise_armed;
static lfp_pool *freed_in_handler;
static void *last_block;

static void raise_in_parent(void)
{
    if (atomic_exchange(&raise_armed, 0))
        raise(SIGUSR1);
}

static void free_last_block(int sig)
{
    (void)sig;
    lfp_free(freed_in_handler, last_block);
}
#endif

static void test_a_fork_under_way_when_the_first_release_is_queued_leaves_a_working_child(void)
{
#ifndef FORK_IN_REGISTRATION
    printf("  skipped: needs glibc, and fork() in a threaded program (not under TSan)\n");
#else
    REQUIRE(sem_init(&in_prepare, 0, 0) == 0 && sem_init(&released, 0, 0) == 0);
    REQUIRE(pthread_atfork(hold_in_prepare, raise_in_parent, NULL) == 0);
    void *b[SLAB_MAX];
    size_t per;
    growable = pool_with_one_slab_in_use(b, &per);
    atomic_store(&hold_the_fork, 1);
    pthread_t f;
    REQUIRE(pthread_create(&f, NULL, fork_and_destroy_in_child, NULL) == 0);
    REQUIRE(sem_wait(&in_prepare) == 0);
    free_all(growable, b, per); /* the last free trims the slab: a release */
    sem_post(&released);
    REQUIRE(pthread_join(f, NULL) == 0);
    CHECK(WIFEXITED(growable_child_status));
    CHECK_EQ(WIFEXITED(growable_child_status) ? WEXITSTATUS(growable_child_status) : -1, 0);
    CHECK_EQ(stats_of(growable).blocks_total, 0);
    verify_and_destroy(growable, 0);
#endif
}

/* A signal that arrives during fork()'s handlers, whose handler frees into
 * a growable pool and so queues a slab release: the library holds its queue
 * lock from its prepare handler to its last parent handler, with signals
 * blocked for all that time, so the handler runs after it (liburcu-bp's
 * parent handler unblocks signals before the library's runs: with only the
 * lock held, the handler waited for it for ever on its own thread). */
#ifdef FORK_IN_REGISTRATION
static void *fork_with_a_signal_in_its_handlers(void *arg)
{
    (void)arg;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    growable_child_status = pid > 0 ? wait_child(pid) : -1;
    return NULL;
}
#endif

static void test_a_signal_during_forks_handlers_may_free_into_a_growable_pool(void)
{
#ifndef FORK_IN_REGISTRATION
    printf("  skipped: needs glibc, and fork() in a threaded program (not under TSan)\n");
#else
    void *b[SLAB_MAX];
    size_t per;
    freed_in_handler = pool_with_one_slab_in_use(b, &per);
    free_all(freed_in_handler, b, per - 1);
    last_block = b[per - 1];
    signal(SIGUSR1, free_last_block);
    atomic_store(&raise_armed, 1);
    pthread_t f;
    REQUIRE(pthread_create(&f, NULL, fork_with_a_signal_in_its_handlers, NULL) == 0);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    int joined = pthread_timedjoin_np(f, NULL, &until);
    CHECK_EQ(joined, 0); /* ETIMEDOUT: the handler waits for its own thread */
    if (joined != 0)
        return; /* the forking thread is stuck: leave the pool alone */
    signal(SIGUSR1, SIG_DFL);
    CHECK_EQ(atomic_load(&raise_armed), 0);
    CHECK(WIFEXITED(growable_child_status));
    CHECK_EQ(stats_of(freed_in_handler).blocks_total, 0); /* the handler's trim */
    verify_and_destroy(freed_in_handler, 0);
#endif
}

int main(void)
{
    RUN(test_a_child_forked_while_the_first_pool_registers_its_fork_handler_can_use_pools);
    RUN(test_a_fork_under_way_when_the_first_release_is_queued_leaves_a_working_child);
    RUN(test_a_signal_during_forks_handlers_may_free_into_a_growable_pool);
    return check_done();
}
