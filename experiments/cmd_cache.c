/* glocal cache info|verify|merge|export|import — look at, check and join
 * motion caches (datasets/cache.h), and convert flow caches to and from
 * mmaction2's rawframes / denseflow JPEGs (datasets/rawframes.h). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "datasets/cache.h"
#include "datasets/rawframes.h"
#include "datasets/ucf101.h"
#include "experiments/cli.h"
#include "experiments/commands.h"

GLOCAL_COMMAND(cache, "cache",
               "summarise (info), check (verify), join (merge), export or import (denseflow JPEGs) motion caches")

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
    printf("clips        %ld stored, %ld failed", cache_clip_count(c), cache_error_count(c));
    if (cache_warning_count(c) > 0) printf(", %ld stored with a warning", cache_warning_count(c));
    printf("\nformat       %d\n", cfg->format_version);
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
    for (long i = 0; i < cache_warning_count(c); i++) {
        const cache_warning *e = cache_get_warning(c, i);
        if (i == 20) {
            printf("  ... %ld more warnings\n", cache_warning_count(c) - 20);
            break;
        }
        printf("  warning %lld %s: %s\n", (long long)e->index, e->name, e->message);
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

/* Prints the first 20 failed clips of an export or import, counts them all. */
static void report_clip(void *ctx, const char *clip, const char *why)
{
    long *n = ctx;
    if (++*n <= 20) fprintf(stderr, "glocal cache: %s: %s\n", clip, why);
}

/* The N of "split=N" in a cache's source text, else 1. */
static int source_split(const char *source)
{
    const char *s = strstr(source, "split=");
    int n = s ? atoi(s + 6) : 0;
    return n >= 1 && n <= 99 ? n : 1;
}

static int cache_export(int argc, char **argv)
{
    const char *cmd = "cache export";
    rawframes_export_options o = rawframes_export_options_default();
    const char *format = "denseflow";
    long split = 0, quality = o.quality, failed = 0, workers = 0;
    const char *args[3] = { 0 };
    int n = 0;
    cli_opt opts[] = {
        CLI_STR("--format", &format, "F", "denseflow: OUT/<Class>/<clip>/flow_{x,y}_%05d.jpg (mmaction2 rawframes)"),
        CLI_NUM("--bound", &o.bound, 0, 1e6, "B", "pixels mapped to 0 and 255 (denseflow's -b)", .open_lo = 1),
        CLI_NUM("--quality", &quality, 1, 100, "Q", "JPEG quality (OpenCV's imwrite default, as denseflow)"),
        CLI_STR("--name", &o.name, "NAME", "prefix of the annotation files"),
        CLI_NUM("--split", &split, 1, 99, "N", "N of the annotation file names", .def = "the cache's split, else 1"),
        CLI_NUM("--workers", &workers, 1, 256, "W", "clips exported at once", .def = "--threads"),
        CLI_STR("--frames", &o.frames, "ROOT",
                "also img_%05d.jpg: every frame of ROOT/<clip name> (the videos), RGB at the cache's grid"),
        CLI_END,
    };
    cli_spec spec = {
        .cmd = cmd, .opts = opts, .args = "CACHE.h5 OUT", .arg = args, .max_args = 3, .nargs = &n,
        .about = "Writes every clip of a flow cache as denseflow writes flow, the layout mmaction2's\n"
                 "RawframeDataset reads: OUT/<Class>/<clip>/flow_x_00001.jpg, flow_y_00001.jpg, ...\n"
                 "(grey JPEGs, value = round(255 (f + B) / 2B) clipped to 0..255, numbered from 1,\n"
                 "one per pair), and the annotation files OUT/NAME_train_split_N_rawframes.txt and\n"
                 "NAME_val_split_N_rawframes.txt (the test list): \"<Class>/<clip> <frames> <label>\",\n"
                 "label 0-based. With --frames, also img_00001.jpg, ... (every frame of the video, RGB).\n"
                 "Each clip folder is written under a temporary name and renamed when whole; rerunning\n"
                 "skips the folders that exist.\n",
        .epilog = "Exit status: 0 every clip exported, 1 some clips failed (listed) or an error, 2 usage.\n",
    };
    int rc = cli_parse(&spec, argc, argv);
    if (rc != CLI_PARSED) return rc;
    if (n != 2) return cli_usage_error(cmd, "expects CACHE.h5 and OUT");
    if (strcmp(format, "denseflow") != 0) return cli_usage_error(cmd, "--format: only denseflow, got '%s'", format);
    o.quality = (int)quality;
    o.workers = workers ? (int)workers : cli_g.threads > 0 ? cli_g.threads : gl_num_cores();
    if (split) {
        o.split_no = (int)split;
    } else {
        cache *c = NULL;
        if ((rc = cache_open(args[0], 0, &c)) < 0) return cli_fail("cache", rc, "export");
        o.split_no = source_split(cache_get_config(c)->source);
        cache_close(&c);
    }
    rawframes_summary sum;
    double t0 = gl_now();
    rc = rawframes_export(args[0], args[1], &o, report_clip, &failed, &sum);
    if (rc < 0) return cli_fail("cache", rc, "export %s", args[0]);
    if (failed > 20) fprintf(stderr, "glocal cache: ... %ld clips failed in all\n", failed);
    printf("%s: %ld clips exported (%ld flow images each of x and y), %ld already there, %ld failed; "
           "%ld values beyond +-%g px saturated (%.1f s)\n", args[1], sum.clips, sum.frames, sum.skipped, sum.failed,
           sum.saturated, o.bound, gl_now() - t0);
    return rc ? CLI_FAIL : CLI_OK;
}

static int cache_import(int argc, char **argv)
{
    const char *cmd = "cache import";
    double bound = RAWFRAMES_BOUND_DEFAULT;
    const char *lists = NULL, *method = "denseflow";
    long split = 1, failed = 0;
    const char *args[3] = { 0 };
    int n = 0;
    cli_opt opts[] = {
        CLI_NUM("--bound", &bound, 0, 1e6, "B", "pixels the values 0 and 255 stand for (denseflow's -b)",
                .open_lo = 1),
        CLI_STR("--lists", &lists, "DIR", "folder of classInd.txt and the split lists",
                .def = "DIR/ucfTrainTestlist, DIR/../ucfTrainTestlist, DIR/../annotations or DIR"),
        CLI_NUM("--split", &split, 1, 99, "N", "the clips of split N (train, test and val lists)"),
        CLI_STR("--method", &method, "NAME", "the cache's method name (e.g. tvl1-denseflow)"),
        CLI_END,
    };
    cli_spec spec = {
        .cmd = cmd, .opts = opts, .args = "DIR CACHE.h5", .arg = args, .max_args = 3, .nargs = &n,
        .about = "Builds a flow cache from denseflow / mmaction2 rawframes: for every clip of the\n"
                 "split's lists, DIR/<Class>/<clip>/flow_x_%05d.jpg and flow_y_%05d.jpg from 00001,\n"
                 "value v -> v * 2B / 255 - B pixels, so flow computed elsewhere (e.g. denseflow's\n"
                 "TV-L1) is a stream `glocal train-classifier --modality motion --cache` reads. The grid\n"
                 "is the first clip's size; clips without a folder, with unreadable images or of\n"
                 "another size are recorded in the cache's failures. Rerunning resumes.\n",
        .epilog = "Exit status: 0 every listed clip imported, 1 some clips failed (listed) or an error, 2 usage.\n",
    };
    int rc = cli_parse(&spec, argc, argv);
    if (rc != CLI_PARSED) return rc;
    if (n != 2) return cli_usage_error(cmd, "expects DIR and CACHE.h5");
    char lists_dir[4096];
    if ((rc = cli_lists_locate("cache", args[0], lists, lists_dir, sizeof lists_dir)) != CLI_OK) return rc;
    dataset_index *idx = NULL;
    if ((rc = dataset_index_load(&idx, args[0], lists_dir, (int)split)) < 0)
        return cli_fail("cache", rc, "import: cannot read the lists");
    rawframes_summary sum;
    double t0 = gl_now();
    rc = rawframes_import(args[0], idx, bound, method, args[1], report_clip, &failed, &sum);
    dataset_index_free(&idx);
    if (rc < 0) return cli_fail("cache", rc, "import %s", args[0]);
    if (failed > 20) fprintf(stderr, "glocal cache: ... %ld clips failed in all\n", failed);
    printf("%s: %ld clips imported (%ld pairs), %ld already there, %ld failed (%.1f s)\n", args[1], sum.clips,
           sum.frames, sum.skipped, sum.failed, gl_now() - t0);
    return rc ? CLI_FAIL : CLI_OK;
}

int cmd_cache(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "export")) return cache_export(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "import")) return cache_import(argc - 1, argv + 1);
    const char *args[argc];
    int n = 0;
    cli_opt opts[] = { CLI_END };
    cli_spec spec = {
        .cmd = "cache", .opts = opts, .arg = args, .max_args = argc, .nargs = &n,
        .usage = "info CACHE.h5\nverify CACHE.h5\nmerge OUT.h5 IN.h5...\nexport CACHE.h5 OUT [--format denseflow] "
                 "[options]\nimport DIR CACHE.h5 [options]",
        .about = "info    prints how the cache was made (method, parameters, model hash, glocal\n"
                 "        version, source, shard), its size (clips, pairs, bytes per field and the\n"
                 "        ratio to float32), and the failed clips.\n"
                 "verify  reads every field and homography (chunk checksums), checks values are\n"
                 "        finite, the clip table is sorted, unique and contiguous, and that clips +\n"
                 "        failures are exactly the clips of the file's shard. Lists each problem;\n"
                 "        exits 1 when there is any.\n"
                 "merge   joins caches made with the same options (e.g. the shards of `glocal\n"
                 "        extract --shard K/N`) into OUT, clips in dataset order: the result equals\n"
                 "        a single run. OUT is written atomically; a clip in two inputs is an error.\n"
                 "export  writes a flow cache as denseflow JPEGs + mmaction2 annotation files\n"
                 "        (glocal cache export --help).\n"
                 "import  builds a flow cache from denseflow JPEGs (glocal cache import --help).\n",
    };
    int rc = cli_parse(&spec, argc, argv);
    if (rc != CLI_PARSED) return rc;
    if (n < 1) return cli_usage_error("cache", "expected info, verify, merge, export or import");
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
    return cli_usage_error("cache", "unknown subcommand '%s' (expected info, verify, merge, export or import)", sub);
}
