/* SPDX-License-Identifier: MIT */
#include "internal.h"

LFP_API const char *lfp_strerror(int err)
{
    switch (err) {
    case LFP_OK: return "success";
    case LFP_EINVAL: return "invalid argument or configuration";
    case LFP_ENOMEM: return "out of memory (the OS refused, or no pool id is free)";
    case LFP_EEXHAUSTED: return "pool exhausted: no free block and it may not grow";
    case LFP_EALIGN: return "caller memory is not aligned as the pool needs";
    case LFP_EFOREIGN: return "pointer is not the start of one of this pool's blocks";
    case LFP_EDOUBLE: return "block is already free (double free)";
    default: return "unknown lfpool error";
    }
}
