/* SPDX-License-Identifier: MIT */
/*
 * A program's use of a freed pool block is reported by the memory checker
 * the library was built for, as a use of freed malloc memory would be.
 *
 * AddressSanitizer build: each faulty scenario runs in a forked child,
 * whose stderr comes back through a pipe; the child must fail with ASan's
 * "use-after-poison" report. A child that uses its blocks correctly must
 * exit cleanly, with no report.
 *
 * Valgrind build (-Dvalgrind=enabled): `test_uaf --memcheck VALGRIND` runs
 * `test_uaf --faulty` under memcheck, which must report the write to a
 * freed block and the block still allocated at exit as definitely lost.
 *
 * Any other build: skipped (exit status 77).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lfpool.h>

#include "check.h"

#ifdef CHECK_ASAN
static const bool asan_build = true;
#else
static const bool asan_build = false;
#endif

#define SKIPPED 77

static lfp_pool *make_pool(size_t block_size, unsigned flags)
{
    struct lfp_config cfg = {0};
    cfg.block_size = block_size;
    cfg.flags = flags;
    if (flags & LFP_GROWABLE)
        cfg.max_blocks = 4096;
    else
        cfg.capacity = 4096;
    lfp_pool *pool = NULL;
    REQUIRE(lfp_pool_create(&cfg, &pool) == LFP_OK);
    return pool;
}

/* The faulty write: through a volatile pointer, so that it is made. */
static void poke(void *block, size_t off)
{
    ((volatile unsigned char *)block)[off] = 0x5A;
}

/* Run fn in a child, or exec argv when fn is NULL; collect the child's
 * stderr into out and return its wait status. */
static int run_child(void (*fn)(void), char *const argv[], char *out, size_t size)
{
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        struct rlimit none = {0, 0};
        setrlimit(RLIMIT_CORE, &none); /* an abort() leaves no core file */
        close(fds[0]);
        dup2(fds[1], 2);
        close(fds[1]);
        if (fn != NULL) {
            fn();
            exit(0);
        }
        execv(argv[0], argv);
        perror("execv");
        _exit(127);
    }
    close(fds[1]);
    size_t n = 0;
    for (;;) {
        char buf[4096];
        ssize_t r = read(fds[0], buf, sizeof buf);
        if (r <= 0)
            break;
        size_t keep = (size_t)r < size - 1 - n ? (size_t)r : size - 1 - n;
        memcpy(out + n, buf, keep);
        n += keep;
    }
    out[n] = '\0';
    close(fds[0]);
    int status;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    return status;
}

static char child_err[1 << 16];

/* ---- the scenarios, each run in a child of its own ---- */

/* Freed and written at once: the block sits in the thread's magazine. */
static void write_to_a_block_in_the_magazine(void)
{
    lfp_pool *pool = make_pool(64, 0);
    void *p = lfp_alloc(pool);
    lfp_free(pool, p);
    poke(p, 0);
}

/* Without a cache the block goes to the depot, which keeps its links:
 * a write past them. */
static void write_to_a_block_in_the_depot(void)
{
    lfp_pool *pool = make_pool(64, LFP_NO_CACHE);
    void *p = lfp_alloc(pool);
    lfp_free(pool, p);
    poke(p, 24);
}

static void write_to_a_freed_block_of_a_growable_pool(void)
{
    lfp_pool *pool = make_pool(64, LFP_GROWABLE);
    void *p = lfp_alloc(pool);
    lfp_free(pool, p);
    poke(p, 8);
}

/* A neighbour of the first block handed out: carved with it, for the
 * thread's magazine or the depot, but never handed out. Past its first 16
 * bytes, which hold its links while it is in the depot (readable there by
 * concurrent pops, as in write_to_a_block_in_the_depot). */
static void write_to_a_block_never_handed_out(void)
{
    lfp_pool *pool = make_pool(64, 0);
    char *p = lfp_alloc(pool);
    size_t stride = stats_of(pool).stride;
    char *next = lfp_owns(pool, p + stride) ? p + stride : p - stride;
    REQUIRE(lfp_owns(pool, next));
    poke(next, 24);
}

/* 40-byte blocks in a 48-byte stride: the padding is not the caller's. */
static void write_past_the_block_size(void)
{
    lfp_pool *pool = make_pool(40, 0);
    void *p = lfp_alloc(pool);
    poke(p, 44);
}

/* A growable pool of one 64 KiB slab, all of it allocated, the lowest
 * block kept and the others freed, then trimmed: the free run's pages are
 * a hole. v gets the blocks (the lowest first). */
static lfp_pool *pool_with_a_hole(void **v, size_t n)
{
    struct lfp_config cfg = { .block_size = 64, .flags = LFP_GROWABLE,
                              .slab_size = 64 * 1024, .cache_size = 16 };
    lfp_pool *pool = NULL;
    REQUIRE(lfp_pool_create(&cfg, &pool) == LFP_OK);
    for (size_t i = 0; i < n; i++)
        REQUIRE((v[i] = lfp_alloc(pool)) != NULL);
    for (size_t i = 1; i < n; i++)
        if ((uintptr_t)v[i] < (uintptr_t)v[0]) {
            void *t = v[0];
            v[0] = v[i];
            v[i] = t;
        }
    REQUIRE(lfp_free_bulk(pool, v + 1, n - 1) == LFP_OK);
    REQUIRE(lfp_pool_trim(pool) > 0);
    struct lfp_stats s = stats_of(pool);
    REQUIRE(s.blocks_carved < s.blocks_total);
    return pool;
}

/* A block whose page a trim gave back (a hole): written through a stale
 * pointer, far from the kept block's page. */
static void write_to_a_block_of_a_hole(void)
{
    void *v[1024];
    pool_with_a_hole(v, 1024);
    poke((char *)v[0] + 32 * 1024, 8);
}

/* Rounds of allocating 600 blocks, writing each whole, and freeing them,
 * some one by one, some in bulk. */
static void *churn(void *pool)
{
    void *v[600];
    for (int round = 0; round < 3; round++) {
        REQUIRE(lfp_alloc_bulk(pool, v, 100) == 100);
        for (int i = 100; i < 600; i++)
            REQUIRE((v[i] = lfp_alloc(pool)) != NULL);
        for (int i = 0; i < 600; i++)
            memset(v[i], i, 40);
        for (int i = 0; i < 600; i += 2)
            REQUIRE(lfp_free(pool, v[i]) == LFP_OK);
        for (int i = 1; i < 600; i += 2)
            REQUIRE(lfp_free_bulk(pool, &v[i], 1) == LFP_OK);
    }
    return NULL;
}

static void ctor(void *block, void *arg)
{
    (void)arg;
    memset(block, 0x3C, 40);
}

/* Everything a program may do, with every kind of pool and two threads at
 * once: no report, a clean exit. */
static void correct_use(void)
{
    static const unsigned flags[] = {0, LFP_NO_CACHE, LFP_GROWABLE, LFP_ZERO,
                                     LFP_CHECKED, LFP_CHECKED | LFP_GROWABLE};
    for (size_t f = 0; f < sizeof flags / sizeof flags[0] * 2; f++) {
        struct lfp_config cfg = {0};
        cfg.block_size = 40;
        cfg.flags = flags[f / 2];
        cfg.capacity = (cfg.flags & LFP_GROWABLE) ? 0 : 4096;
        if (f % 2 == 1 && !(cfg.flags & LFP_ZERO))
            cfg.init = ctor;
        lfp_pool *pool = NULL;
        REQUIRE(lfp_pool_create(&cfg, &pool) == LFP_OK);
        pthread_t other;
        REQUIRE(pthread_create(&other, NULL, churn, pool) == 0);
        churn(pool);
        pthread_join(other, NULL);
        lfp_thread_flush();
        lfp_pool_trim(pool);
        REQUIRE(lfp_pool_verify(pool) == LFP_OK);
        REQUIRE(lfp_pool_destroy(pool) == 0);
    }
    /* A hole made ready again: every block written whole. */
    void *v[1024];
    lfp_pool *pool = pool_with_a_hole(v, 1024);
    for (size_t i = 1; i < 1024; i++) {
        REQUIRE((v[i] = lfp_alloc(pool)) != NULL);
        memset(v[i], (int)i, 64);
    }
    REQUIRE(lfp_free_bulk(pool, v, 1024) == LFP_OK);
    REQUIRE(lfp_pool_verify(pool) == LFP_OK);
    REQUIRE(lfp_pool_destroy(pool) == 0);
}

static void run_asan(void)
{
    static const struct {
        const char *name;
        void (*fn)(void);
    } faulty[] = {
        {"write_to_a_block_in_the_magazine", write_to_a_block_in_the_magazine},
        {"write_to_a_block_in_the_depot", write_to_a_block_in_the_depot},
        {"write_to_a_freed_block_of_a_growable_pool", write_to_a_freed_block_of_a_growable_pool},
        {"write_to_a_block_never_handed_out", write_to_a_block_never_handed_out},
        {"write_past_the_block_size", write_past_the_block_size},
        {"write_to_a_block_of_a_hole", write_to_a_block_of_a_hole},
    };
    for (size_t i = 0; i < sizeof faulty / sizeof faulty[0]; i++) {
        int before = atomic_load(&check_failures);
        int status = run_child(faulty[i].fn, NULL, child_err, sizeof child_err);
        CHECK(!(WIFEXITED(status) && WEXITSTATUS(status) == 0));
        CHECK(strstr(child_err, "AddressSanitizer: use-after-poison") != NULL);
        printf("%-4s %s is an ASan report\n",
               atomic_load(&check_failures) == before ? "ok" : "FAIL", faulty[i].name);
        if (atomic_load(&check_failures) != before)
            fprintf(stderr, "  ... the child's stderr:\n%s\n", child_err);
    }
    int before = atomic_load(&check_failures);
    int status = run_child(correct_use, NULL, child_err, sizeof child_err);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(strstr(child_err, "AddressSanitizer") == NULL);
    printf("%-4s correct_use has no report\n",
           atomic_load(&check_failures) == before ? "ok" : "FAIL");
    if (atomic_load(&check_failures) != before)
        fprintf(stderr, "  ... the child's stderr:\n%s\n", child_err);
}

/* ---- memcheck ---- */

static lfp_pool *faulty_pool;

/* Allocated, and the pointer dropped: a leak. */
static __attribute__((noinline)) void leak_one(void)
{
    void *volatile q = lfp_alloc(faulty_pool);
    q = NULL;
    (void)q;
}

/* What memcheck must report: a write to a freed block, a leaked block. */
static void faulty_program(void)
{
    faulty_pool = make_pool(48, 0);
    leak_one();
    void *p = lfp_alloc(faulty_pool);
    lfp_free(faulty_pool, p);
    poke(p, 8);
}

/* Run this program with one argument under memcheck; its wait status. */
static int memcheck_self(const char *valgrind, const char *arg)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    REQUIRE(n > 0);
    self[n] = '\0';
    char *argv[] = {(char *)valgrind, "--error-exitcode=99", "--leak-check=full",
                    self, (char *)arg, NULL};
    return run_child(NULL, argv, child_err, sizeof child_err);
}

static void run_memcheck(const char *valgrind)
{
    int status = memcheck_self(valgrind, "--faulty");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 99);
    CHECK(strstr(child_err, "Invalid write of size 1") != NULL);
    CHECK(strstr(child_err, "8 bytes inside a block of size 48 free'd") != NULL);
    CHECK(strstr(child_err, "48 bytes in 1 blocks are definitely lost") != NULL);
    CHECK(strstr(child_err, "lfp_alloc") != NULL); /* where it was allocated */
    if (atomic_load(&check_failures) != 0)
        fprintf(stderr, "  ... memcheck's output:\n%s\n", child_err);
    printf("%-4s memcheck reports the write after free and the leak\n",
           atomic_load(&check_failures) == 0 ? "ok" : "FAIL");

    int before = atomic_load(&check_failures);
    status = memcheck_self(valgrind, "--correct");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(strstr(child_err, "ERROR SUMMARY: 0 errors") != NULL);
    if (atomic_load(&check_failures) != before)
        fprintf(stderr, "  ... memcheck's output:\n%s\n", child_err);
    printf("%-4s memcheck finds nothing wrong with correct use\n",
           atomic_load(&check_failures) == before ? "ok" : "FAIL");
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--faulty") == 0) {
        faulty_program();
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--correct") == 0) {
        correct_use();
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "--memcheck") == 0) {
        run_memcheck(argv[2]);
        return check_done();
    }
    if (!asan_build) {
        printf("skipped (not an ASan build)\n");
        return SKIPPED;
    }
    run_asan();
    return check_done();
}
