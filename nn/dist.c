/* dist.c — the plain-C side of distributed training (nn.h, "distributed
 * data-parallel"): options, reading torchrun's or Slurm's environment, and
 * the per-epoch data partition. The c10d process group itself is in
 * torch_dist.cpp. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

nn_dist_options nn_dist_options_default(void)
{
    /* 300 s: long enough for rank 0 to load a checkpoint or build a cache
     * index while the others wait in a collective; 25 MiB is DDP's
     * bucket_cap_mb. */
    nn_dist_options o = { .backend = NN_DIST_AUTO, .timeout_s = 300.0, .rendezvous_timeout_s = 0.0,
                          .bucket_mb = 25.0, .ifname = NULL };
    return o;
}

int nn_dist_options_validate(const nn_dist_options *o)
{
    if (!o) return gl_error(GL_EINVAL, "nn_dist_options: NULL");
    if (o->backend != NN_DIST_AUTO && o->backend != NN_DIST_GLOO && o->backend != NN_DIST_NCCL)
        return gl_error(GL_EINVAL, "nn_dist_options.backend: unknown value %d", (int)o->backend);
    /* Upper bound: c10d keeps timeouts in int64 milliseconds; a week is plenty. */
    if (!(o->timeout_s > 0 && o->timeout_s <= 7 * 86400.0))
        return gl_error(GL_EINVAL, "nn_dist_options.timeout_s must be in (0, 604800] seconds, got %g",
                        o->timeout_s);
    if (!(o->rendezvous_timeout_s >= 0 && o->rendezvous_timeout_s <= 7 * 86400.0))
        return gl_error(GL_EINVAL, "nn_dist_options.rendezvous_timeout_s must be in [0, 604800] "
                        "seconds (0: timeout_s), got %g", o->rendezvous_timeout_s);
    if (!(o->bucket_mb > 0 && o->bucket_mb <= 4096.0))
        return gl_error(GL_EINVAL, "nn_dist_options.bucket_mb must be in (0, 4096] MiB, got %g",
                        o->bucket_mb);
    if (o->ifname && !o->ifname[0])
        return gl_error(GL_EINVAL, "nn_dist_options.ifname is empty (use NULL for the default)");
    return 0;
}

/* An environment variable as an int in [lo, hi]; *found = 0 when unset or empty. */
static int env_int(const char *name, long lo, long hi, int *out, int *found)
{
    const char *s = getenv(name);
    *found = 0;
    if (!s || !s[0]) return 0;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return gl_error(GL_EINVAL, "environment variable %s='%s': expected a whole number in [%ld, %ld]",
                        name, s, lo, hi);
    *out = (int)v;
    *found = 1;
    return 0;
}

int nn_dist_env_read(nn_dist_env *e)
{
    if (!e) return gl_error(GL_EINVAL, "nn_dist_env_read: NULL");
    memset(e, 0, sizeof *e);
    e->world_size = 1;
    e->master_port = 29500;
    e->source = "none";
    int rc, has_rank, has_world, has_local;
    /* torchrun first: `glocal launch` inside a Slurm allocation sets it and
     * must win over the allocation's SLURM_* variables. */
    const char *vr = "RANK", *vw = "WORLD_SIZE", *vl = "LOCAL_RANK";
    if ((rc = env_int(vr, 0, INT_MAX - 1, &e->rank, &has_rank)) < 0) return rc;
    if (has_rank) {
        e->source = "torchrun";
    } else {
        vr = "SLURM_PROCID", vw = "SLURM_NTASKS", vl = "SLURM_LOCALID";
        if ((rc = env_int(vr, 0, INT_MAX - 1, &e->rank, &has_rank)) < 0) return rc;
        if (!has_rank) return 0; /* a single process */
        e->source = "slurm";
    }
    if ((rc = env_int(vw, 1, INT_MAX, &e->world_size, &has_world)) < 0) return rc;
    if (!has_world)
        return gl_error(GL_EINVAL, "environment: %s=%d is set but %s is not", vr, e->rank, vw);
    if (e->rank >= e->world_size)
        return gl_error(GL_EINVAL, "environment: %s=%d is not below %s=%d", vr, e->rank, vw,
                        e->world_size);
    if ((rc = env_int(vl, 0, INT_MAX - 1, &e->local_rank, &has_local)) < 0) return rc;
    if (!has_local) e->local_rank = e->world_size == 1 ? 0 : e->rank;
    int port, has_port;
    if ((rc = env_int("MASTER_PORT", 1, 65535, &port, &has_port)) < 0) return rc;
    if (has_port) e->master_port = port;
    const char *addr = getenv("MASTER_ADDR");
    if (e->world_size > 1) {
        if (!addr || !addr[0])
            return gl_error(GL_EINVAL,
                            "environment: %s=%d but MASTER_ADDR is not set (the address of rank 0's "
                            "host; under Slurm export it in the batch script)",
                            vw, e->world_size);
        if (strlen(addr) >= sizeof e->master_addr)
            return gl_error(GL_EINVAL, "environment: MASTER_ADDR is longer than %zu characters",
                            sizeof e->master_addr - 1);
        snprintf(e->master_addr, sizeof e->master_addr, "%s", addr);
    }
    return 0;
}

int nn_dist_init_from_env(nn_dist **out, const nn_dist_options *o)
{
    if (!out) return gl_error(GL_EINVAL, "nn_dist_init_from_env: out is NULL");
    *out = NULL;
    nn_dist_env e;
    int rc = nn_dist_env_read(&e);
    if (rc < 0) return rc;
    rc = nn_dist_init(out, e.rank, e.world_size, e.local_rank, e.master_addr, e.master_port, o);
    if (rc < 0)
        return gl_error_prefix(rc, "joining rank %d of %d (from %s variables)", e.rank,
                               e.world_size, e.source);
    return 0;
}

/* Uniform in [0, n) without modulo bias (rejection of the short last block). */
static uint64_t below(uint64_t *s, uint64_t n)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t r;
    do r = gl_splitmix64(s);
    while (r >= limit);
    return r % n;
}

int nn_dist_permutation(long n, uint64_t epoch, uint64_t seed, long *perm)
{
    if (n < 0 || (n > 0 && !perm))
        return gl_error(GL_EINVAL, "nn_dist_permutation: need n >= 0 and a buffer, got n = %ld", n);
    /* Mix seed and epoch through one SplitMix step each, so that (seed, epoch)
     * and (seed + 1, epoch - 1) give unrelated orders. */
    uint64_t s = seed;
    uint64_t a = gl_splitmix64(&s);
    s = a ^ (epoch * 0xd1b54a32d192ed03ULL);
    for (long i = 0; i < n; i++) perm[i] = i;
    for (long i = n - 1; i > 0; i--) { /* Fisher-Yates (Knuth, TAOCP 3.4.2, Algorithm P) */
        long j = (long)below(&s, (uint64_t)i + 1);
        long t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    return 0;
}

long nn_dist_shard_count(const nn_dist *d, long n_items)
{
    long w = nn_dist_world_size(d);
    return n_items <= 0 ? 0 : (n_items + w - 1) / w;
}

int nn_dist_shard(const nn_dist *d, long n_items, uint64_t epoch, uint64_t seed, int shuffle,
                  long *idx, long *count)
{
    if (n_items < 0 || !count || (n_items > 0 && !idx))
        return gl_error(GL_EINVAL, "nn_dist_shard: need n_items >= 0, idx and count, got n_items = %ld",
                        n_items);
    long w = nn_dist_world_size(d), r = nn_dist_rank(d);
    long m = nn_dist_shard_count(d, n_items);
    *count = m;
    if (m == 0) return 0;
    long *perm = gl_malloc((size_t)n_items * sizeof *perm);
    if (!perm) return GL_ENOMEM;
    if (shuffle) {
        int rc = nn_dist_permutation(n_items, epoch, seed, perm);
        if (rc < 0) {
            gl_free(perm);
            return rc;
        }
    } else {
        for (long i = 0; i < n_items; i++) perm[i] = i;
    }
    for (long k = 0; k < m; k++) idx[k] = perm[(r + k * w) % n_items]; /* wraps: padding */
    gl_free(perm);
    return 0;
}

int nn_dist_shard_range(const nn_dist *d, long n_items, long *begin, long *end)
{
    if (n_items < 0 || !begin || !end)
        return gl_error(GL_EINVAL, "nn_dist_shard_range: need n_items >= 0, begin and end");
    long w = nn_dist_world_size(d), r = nn_dist_rank(d);
    long q = n_items / w, extra = n_items % w;
    /* The first `extra` ranks take q + 1 items. */
    *begin = r * q + (r < extra ? r : extra);
    *end = *begin + q + (r < extra ? 1 : 0);
    return 0;
}
