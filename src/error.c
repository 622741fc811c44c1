/* SPDX-License-Identifier: MIT */
/* Error codes: their names and descriptions, and the reports of checked
 * mode to the error handler. */
#include <stdio.h>

#include "internal.h"

static const struct {
    const char *name;
    const char *text;
} lfp_errors[] = {
    [LFP_OK] = {"LFP_OK", "success"},
    [LFP_EINVAL] = {"LFP_EINVAL", "invalid argument or configuration"},
    [LFP_ENOMEM] = {"LFP_ENOMEM", "out of memory (the OS refused, or no pool id is free)"},
    [LFP_EEXHAUSTED] = {"LFP_EEXHAUSTED", "pool exhausted: no free block and it may not grow"},
    [LFP_EALIGN] = {"LFP_EALIGN", "caller memory is not aligned as the pool needs"},
    [LFP_EFOREIGN] = {"LFP_EFOREIGN", "pointer is not the start of one of this pool's blocks"},
    [LFP_EDOUBLE] = {"LFP_EDOUBLE", "block is already free (double free)"},
    [LFP_ECORRUPT] = {"LFP_ECORRUPT", "a free block was written (write after free)"},
    [LFP_ELEAK] = {"LFP_ELEAK", "block still in use when its pool was destroyed (leak)"},
};

static bool lfp_error_known(int err)
{
    return err >= 0 && (size_t)err < sizeof(lfp_errors) / sizeof(lfp_errors[0]);
}

LFP_API const char *lfp_strerror(int err)
{
    return lfp_error_known(err) ? lfp_errors[err].text : "unknown lfpool error";
}

/* The handler set by the program; NULL = the default. */
static _Atomic(lfp_error_handler) lfp_handler;

static void lfp_default_handler(lfp_pool *pool, void *ptr, int err, const char *what)
{
    const char *code = lfp_error_known(err) ? lfp_errors[err].name : "unknown error";
    /* One call, so that one report is one line even when threads race. */
    if (pool != NULL && pool->name != NULL)
        fprintf(stderr, "lfpool: pool \"%s\": %s %p (%s)\n", pool->name, what, ptr, code);
    else
        fprintf(stderr, "lfpool: pool %p: %s %p (%s)\n", (void *)pool, what, ptr, code);
}

LFP_API lfp_error_handler lfp_set_error_handler(lfp_error_handler h)
{
    return atomic_exchange_explicit(&lfp_handler, h, memory_order_acq_rel);
}

void lfp_report(const struct lfp_pool *pool, void *ptr, int err, const char *what)
{
    lfp_error_handler h = atomic_load_explicit(&lfp_handler, memory_order_acquire);
    (h != NULL ? h : lfp_default_handler)((struct lfp_pool *)pool, ptr, err, what);
}
