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
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
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

int main(void)
{
    RUN(test_a_child_forked_while_the_first_pool_registers_its_fork_handler_can_use_pools);
    return check_done();
}
