/* glocal cache info|verify|merge — look at, check and join motion caches
 * (datasets/cache.h). */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "datasets/cache.h"
#include "experiments/cli.h"
#include "experiments/commands.h"

GLOCAL_COMMAND(cache, "cache", "summarise (info), check (verify) or join (merge) motion caches")

/* An extraction still running (or killed) has only its spool folder. */
static int spool_info(const char *path)
{
    char spool[4096];
    snprintf(spool, sizeof spool, "%s.parts", path);
    DIR *d = opendir(spool);
    if (!d) return 0;
    long clips = 0, failed = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strlen(e->d_name) == 16 && !strcmp(e->d_name + 13, ".h5")) {
            if (e->d_name[0] == 'c') clips++;
            else if (e->d_name[0] == 'e') failed++;
        }
    closedir(d);
    fprintf(stderr, "glocal cache: %s is not published yet: %ld clips and %ld failures are spooled "
            "in %s (an extraction is running, or was stopped: rerun it to resume)\n", path, clips,
            failed, spool);
    return 1;
}

static int cache_info(const char *path)
{
    cache *c = NULL;
    struct stat sp;
    if (stat(path, &sp) < 0 && spool_info(path)) return CLI_FAIL;
    int rc = cache_open(path, 0, &c);
    if (rc < 0) return cli_fail("cache", rc, "info");
    const cache_config *cfg = cache_get_config(c);
    struct stat st;
    long long bytes = stat(path, &st) == 0 ? (long long)st.st_size : -1;
    long pairs = cache_pair_count(c);
    double raw = (double)pairs * cfg->channels * cfg->height * cfg->width * 4;
    printf("file         %s\n", path);
    printf("method       %s\n", cfg->method);
    printf("params       %s\n", cfg->params[0] ? cfg->params : "-");
    printf("model        %s\n", cfg->model_sha256[0] ? cfg->model_sha256 : "-");
    printf("glocal       %s\n", cfg->glocal_version);
    printf("source       %s\n", cfg->source[0] ? cfg->source : "-");
    printf("shard        %s of %ld clips\n", cfg->shard, cfg->total_clips);
    printf("fields       %ld x %d x %d x %d, %s", pairs, cfg->channels, cfg->height, cfg->width,
           cfg->encoding == CACHE_INT16 ? "int16" : "float16");
    if (cfg->encoding == CACHE_INT16) printf(" (scale %g per unit)", cfg->scale);
    printf("\nhomographies %s\n", cfg->has_homographies ? "yes" : "no");
    printf("clips        %ld stored, %ld failed\n", cache_clip_count(c), cache_error_count(c));
    if (bytes >= 0) {
        printf("size         %.1f MiB", (double)bytes / (1 << 20));
        if (pairs > 0)
            printf(", %.0f bytes per field, %.1f%% of float32", (double)bytes / (double)pairs,
                   100.0 * (double)bytes / raw);
        printf("\n");
    }
    long clipped = 0;
    for (long i = 0; i < cache_clip_count(c); i++) clipped += cache_get_clip(c, i)->clipped;
    if (clipped) printf("saturated    %ld values beyond the int16 range\n", clipped);
    for (long i = 0; i < cache_error_count(c); i++) {
        const cache_error *e = cache_get_error(c, i);
        if (i == 20) {
            printf("  ... %ld more failures\n", cache_error_count(c) - 20);
            break;
        }
        printf("  failed %lld %s: %s\n", (long long)e->index, e->name, e->message);
    }
    cache_close(&c);
    return CLI_OK;
}

static void print_problem(void *ctx, const char *msg)
{
    long *n = ctx;
    if (++*n <= 200) printf("problem: %s\n", msg);
}

static int cache_check(const char *path)
{
    cache *c = NULL;
    int rc = cache_open(path, 0, &c);
    if (rc < 0) return cli_fail("cache", rc, "verify");
    long shown = 0;
    long n = cache_verify(c, print_problem, &shown);
    if (n < 0) {
        cache_close(&c);
        return cli_fail("cache", (int)n, "verify: %s", path);
    }
    if (n > 200) printf("... %ld problems in all\n", n);
    if (n == 0)
        printf("%s: ok (%ld clips, %ld pairs, %ld failed clips recorded)\n", path, cache_clip_count(c),
               cache_pair_count(c), cache_error_count(c));
    else
        fprintf(stderr, "glocal cache: %s: %ld problem%s\n", path, n, n == 1 ? "" : "s");
    cache_close(&c);
    return n == 0 ? CLI_OK : CLI_FAIL;
}

int cmd_cache(int argc, char **argv)
{
    const char *args[argc];
    int n = 0;
    cli_opt opts[] = { CLI_END };
    cli_spec spec = {
        .cmd = "cache", .opts = opts, .arg = args, .max_args = argc, .nargs = &n,
        .usage = "info CACHE.h5\nverify CACHE.h5\nmerge OUT.h5 IN.h5...",
        .about = "info    prints how the cache was made (method, parameters, model hash, glocal\n"
                 "        version, source, shard), its size (clips, pairs, bytes per field and the\n"
                 "        ratio to float32), and the failed clips.\n"
                 "verify  reads every field and homography (chunk checksums), checks values are\n"
                 "        finite, the clip table is sorted, unique and contiguous, and that clips +\n"
                 "        failures are exactly the clips of the file's shard. Lists each problem;\n"
                 "        exits 1 when there is any.\n"
                 "merge   joins caches made with the same options (e.g. the shards of `glocal\n"
                 "        extract --shard K/N`) into OUT, clips in dataset order: the result equals\n"
                 "        a single run. OUT is written atomically; a clip in two inputs is an error.\n",
    };
    int rc = cli_parse(&spec, argc, argv);
    if (rc != CLI_PARSED) return rc;
    if (n < 1) return cli_usage_error("cache", "expected info, verify or merge");
    const char *sub = args[0];
    if (!strcmp(sub, "info") || !strcmp(sub, "verify")) {
        if (n != 2) return cli_usage_error("cache", "%s expects one CACHE.h5", sub);
        return sub[0] == 'i' ? cache_info(args[1]) : cache_check(args[1]);
    }
    if (!strcmp(sub, "merge")) {
        if (n < 3) return cli_usage_error("cache", "merge expects OUT.h5 and at least one IN.h5");
        double t0 = gl_now();
        rc = cache_merge(args[1], args + 2, n - 2);
        if (rc < 0) return cli_fail("cache", rc, "merge into %s", args[1]);
        cache *c = NULL;
        if ((rc = cache_open(args[1], 0, &c)) < 0) return cli_fail("cache", rc, "merge: cannot reopen");
        printf("%s: %ld clips, %ld pairs, %ld failed, shard %s (%.1f s)\n", args[1],
               cache_clip_count(c), cache_pair_count(c), cache_error_count(c),
               cache_get_config(c)->shard, gl_now() - t0);
        cache_close(&c);
        return CLI_OK;
    }
    return cli_usage_error("cache", "unknown subcommand '%s' (expected info, verify or merge)", sub);
}
