/* glocal extract — computes a motion method over every clip of a dataset
 * into an HDF5 motion cache (datasets/cache.h), resumably, in parallel. The
 * work is experiments/extract.h's extract_run; here are the options, the
 * progress line and the summary, Ctrl-C, and for several ranks the barrier
 * and rank 0's merge of their shards.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "datasets/cache.h"
#include "datasets/ucf101.h"
#include "experiments/cli.h"
#include "experiments/commands.h"
#include "experiments/extract.h"
#include "nn/nn.h"

GLOCAL_COMMAND(extract, "extract", "compute motion (GLOCAL, TV-L1, flow minus homography, RGB difference) into an HDF5 cache")

/* The progress line (and, before the first clip, what a resume skips); a
 * Ctrl-C asks extract_run to stop. */
typedef struct {
    cli_progress bar;
    const extract_config *ec;
} progress_ctx;

static int on_progress(void *ctx, const extract_progress *p)
{
    progress_ctx *pc = ctx;
    if (p->first) {
        if (p->resumed > 0) {
            fprintf(stderr, "glocal extract: resuming %s", pc->ec->out);
            for (int k = 0; k < pc->ec->nmore; k++) fprintf(stderr, ", %s", pc->ec->more[k].out);
            fprintf(stderr, ": %ld of %ld clips already done\n", p->resumed, p->assigned);
        }
        cli_progress_start(&pc->bar, "extract", p->assigned);
        return cli_signal_caught();
    }
    char extra[128];
    snprintf(extra, sizeof extra, "clips, %.1f pairs/s, %ld failed", p->seconds > 0 ? (double)p->pairs / p->seconds : 0.0,
             p->failed);
    if (p->last) cli_progress_end(&pc->bar, p->done, extra);
    else cli_progress_update(&pc->bar, p->done, extra);
    return cli_signal_caught();
}

/* extract_run with a progress line; Ctrl-C (or SIGTERM) stops it cleanly. */
static int run_interruptible(const extract_config *ec, extract_progress *sum)
{
    cli_signals_catch();
    progress_ctx pc = { .ec = ec };
    int rc = extract_run(ec, on_progress, &pc, sum);
    cli_signals_restore();
    return rc;
}

/* "glocal extract: <the library's message>". */
static int fail(int rc)
{
    const char *m = gl_last_error();
    fprintf(stderr, "glocal extract: %s\n", m && m[0] ? m : gl_strerror(rc));
    return CLI_FAIL;
}

/* Prints "PATH: N clips, P pairs<after_pairs>, F failed<after_failed>[, W
 * with warnings]" and, with list_failed, the failed clips and those stored
 * with a warning (damaged), whichever run met them; CLI_OK when there are
 * none. */
static int print_cache(const char *path, const char *after_pairs, const char *after_failed, int list_failed)
{
    cache *c = NULL;
    int rc = cache_open(path, 0, &c);
    if (rc < 0) return cli_fail("extract", rc, "cannot reopen %s", path);
    printf("%s: %ld clips, %ld pairs%s, %ld failed%s", path, cache_clip_count(c), cache_pair_count(c), after_pairs,
           cache_error_count(c), after_failed);
    if (cache_warning_count(c) > 0) printf(", %ld with warnings", cache_warning_count(c));
    printf("\n");
    for (long i = 0; list_failed && i < cache_error_count(c); i++) {
        const cache_error *e = cache_get_error(c, i);
        fprintf(stderr, "failed: %s: %s\n", e->name, e->message);
    }
    for (long i = 0; list_failed && i < cache_warning_count(c); i++) {
        const cache_warning *e = cache_get_warning(c, i);
        fprintf(stderr, "warning: %s: %s\n", e->name, e->message);
    }
    int code = cache_error_count(c) + cache_warning_count(c) > 0 ? CLI_FAIL : CLI_OK;
    cache_close(&c);
    return code;
}

/* Rank 0, after the barrier: the world's shards of final_out merged into it
 * (list_failed: see print_cache). Returns the exit code. */
static int merge_one(const char *final_out, int world, int list_failed)
{
    const char *cmd = "extract";
    const char *ins[256];
    static char names[256][4096];
    for (int k = 0; k < world; k++) {
        snprintf(names[k], sizeof names[k], "%s.shard%dof%d.h5", final_out, k, world);
        ins[k] = names[k];
    }
    /* the shards are published by rename before the barrier: a file that
     * exists is complete (a shared file system may show it a little later) */
    for (int k = 1; k < world && !cli_signal_caught(); k++)
        for (int t = 0; access(ins[k], R_OK) != 0 && !cli_signal_caught(); t++) {
            if (t == 120) return cli_fail(cmd, GL_EIO, "%s: not visible 120 s after its rank finished", ins[k]);
            sleep(1);
        }
    if (cli_signal_caught()) return 128 + cli_signal_caught();
    int rc = cache_merge(final_out, ins, world);
    if (rc < 0) return cli_fail(cmd, rc, "cannot merge the shards into %s", final_out);
    char note[64];
    snprintf(note, sizeof note, " (merged from %d shards)", world);
    return print_cache(final_out, "", note, list_failed);
}

/* Several ranks: every rank's shard of each cache is published; meet, then
 * rank 0 merges them into each final_out[k]. A rank that died (or failed
 * before this point) makes the barrier fail here at once on the others.
 * Returns the exit code. */
static int merge_shards(nn_dist *dist, char (*final_out)[4096], int nout)
{
    const char *cmd = "extract";
    const int rank = nn_dist_rank(dist), world = nn_dist_world_size(dist);
    int rc = nn_dist_barrier(dist);
    if (rc < 0)
        return cli_fail(cmd, rc, "another rank stopped before finishing its shard; the finished "
                        "shards are kept: rerun the same command to resume");
    /* Failed clips are recorded in the shard and reported by rank 0 after
     * the merge; a non-zero exit here would make glocal launch stop rank 0. */
    if (rank != 0) return CLI_OK;
    if (world > 256) return cli_fail(cmd, GL_EINVAL, "at most 256 ranks");
    int code = CLI_OK;
    for (int k = 0; k < nout; k++) {
        int c = merge_one(final_out[k], world, k == 0);
        if (c > 128) return c; /* interrupted */
        if (c != CLI_OK) code = c;
    }
    return code;
}

/* "trainlist01.txt" -> split 1, DATASET_TRAIN. */
static int parse_list_name(const char *file, int *split_no, dataset_split *kind)
{
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    static const struct { const char *prefix; dataset_split s; } kinds[] = {
        { "trainlist", DATASET_TRAIN }, { "testlist", DATASET_TEST }, { "vallist", DATASET_VAL } };
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(kinds[i].prefix);
        if (!strncmp(base, kinds[i].prefix, n) && base[n] >= '0' && base[n] <= '9' &&
            base[n + 1] >= '0' && base[n + 1] <= '9' && !strcmp(base + n + 2, ".txt")) {
            *split_no = (base[n] - '0') * 10 + (base[n + 1] - '0');
            *kind = kinds[i].s;
            return 0;
        }
    }
    return -1;
}

/* OUT -> final_out = OUT, shard_out = OUT.shardKofN.h5 (4096 bytes each). */
static void shard_paths(const char *out, int k, int n, char *final_out, char *shard_out)
{
    snprintf(final_out, 4096, "%s", out);
    snprintf(shard_out, 4096, "%s.shard%dof%d.h5", out, k, n);
}

/* --split-file F: its split number and kind (from its name), its folder. */
static int list_of_file(const char *file, int *split_no, int *only, char *dir, size_t n)
{
    dataset_split kind;
    if (parse_list_name(file, split_no, &kind) < 0) return -1;
    *only = (int)kind;
    snprintf(dir, n, "%s", file);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, n, ".");
    return 0;
}

/* --shard K/N: 0 <= K < N <= 100000. */
typedef struct {
    int k, n;
} shard_opt;

static int parse_shard(void *ctx, const char *v, char *why, size_t n)
{
    shard_opt *sh = ctx;
    char *end;
    long k = strtol(v, &end, 10), m = -1;
    if (end != v && *end == '/') m = strtol(end + 1, &end, 10);
    if (*end || m < 1 || m > 100000 || k < 0 || k >= m)
        return snprintf(why, n, "'%s' is not K/N with 0 <= K < N", v), -1;
    sh->k = (int)k;
    sh->n = (int)m;
    return 0;
}

/* What the options set. */
typedef struct {
    const char *dataset, *lists, *split_file, *model;
    /* --method and --out, in pairs: the k-th --out is the k-th --method's cache */
    const char *method_v[EXTRACT_MAX_OUTPUTS], *out_v[EXTRACT_MAX_OUTPUTS];
    cli_strings methods, outs;
    long split, stride, workers;
    int height, width;
    shard_opt shard;
    int shard_given, strict;
    double dist_timeout;
} extract_options;

/* The option table and the checks it cannot express (those that need the
 * method or the distributed environment stay in cmd_extract). Returns
 * CLI_PARSED or the exit status. */
static int parse_options(extract_options *o, int argc, char **argv)
{
    *o = (extract_options){ .stride = 1, .height = 112, .width = 112, .shard = { 0, 1 }, .dist_timeout = 604800 };
    o->methods = (cli_strings){ .v = o->method_v, .max = EXTRACT_MAX_OUTPUTS };
    o->outs = (cli_strings){ .v = o->out_v, .max = EXTRACT_MAX_OUTPUTS };
    cli_opt opts[] = {
        CLI_STR("--dataset", &o->dataset, "DIR", "clips in the UCF-101 layout: DIR/Class/v_Class_gGG_cCC.avi",
                .required = 1),
        CLI_STRS("--out", &o->outs, "CACHE.h5", "the cache of the --method given at the same place (the k-th "
                 "--out holds the k-th --method); rerunning the same command resumes it", .required = 1),
        CLI_STR("--lists", &o->lists, "DIR", "folder of classInd.txt and the split lists",
                .def = "DIR/ucfTrainTestlist, DIR/../ucfTrainTestlist, DIR/../annotations or DIR"),
        CLI_NUM("--split", &o->split, 1, 99, "N", "all clips of split N: its train, test and val lists", .def = "1"),
        CLI_STR("--split-file", &o->split_file, "F", "only the clips of list F (e.g. .../testlist01.txt)"),
        CLI_STRS("--method", &o->methods, "METHOD",
                 "tvl1, tvl1-minus-homography, dis, dis-minus-homography or rgbdiff; or GLOCAL, with "
                 "--model: glocal-local (the local flow gated by the mask), glocal-residual (the same local "
                 "flow before the gate), glocal-mixed (global + local), glocal-global, glocal-mask (the gate, "
                 "1 channel); glocal-tvl1-local, -residual, -mixed, -mask (the same with TV-L1 on the pair "
                 "aligned by GLOCAL's homography as the local flow); glocal-lme-local, -residual, -mixed, "
                 "-mask (the LME network's own local flow). Several glocal-* methods, each with its --out, "
                 "are computed at once, from one GLOCAL inference per pair", .required = 1),
        CLI_STR("--model", &o->model, "CKPT", "the checkpoint of glocal train-motion for the glocal-* methods"),
        CLI_SIZE("--size", &o->height, &o->width, "HxW", "field grid: frames are resized to it, each side 8..4096"),
        CLI_NUM("--stride", &o->stride, 1, 1000, "S", "frames between the two of a pair, and between pairs"),
        CLI_CALL("--shard", parse_shard, &o->shard, "K/N",
                 "compute only clips i with i % N == K (0 <= K < N); join the shards with `glocal cache merge`"),
        CLI_NUM("--workers", &o->workers, 1, 256, "W",
                "clips computed at once; each method call then gets threads / W threads", .def = "--threads"),
        CLI_FLAG("--strict", &o->strict, "a damaged clip (FFmpeg's decoding errors, or more than 2 frames "
                 "fewer than its header says) is recorded as failed instead of stored"),
        CLI_NUM("--dist-timeout", &o->dist_timeout, 0, INFINITY, "S",
                "several ranks: how long one waits for the others, seconds", .open_lo = 1),
        CLI_END,
    };
    cli_spec spec = {
        .cmd = "extract", .opts = opts,
        .about = "Computes METHOD between frames t and t+S of every clip and stores the fields\n"
                 "in an HDF5 motion cache (schema: datasets/cache.h; `glocal cache info` shows it).\n",
        .epilog = "Methods: tvl1 = TV-L1 flow (IPOL defaults) on grey frames, 2 channels (u, v) in\n"
                  "pixels of the grid; tvl1-minus-homography = TV-L1 minus the RANSAC homography\n"
                  "of the flow (local motion) plus the homography per pair; dis and\n"
                  "dis-minus-homography = the same with DIS flow (OpenCV's medium preset; --size\n"
                  "16x16 at least); rgbdiff = TSN's RGB difference, 3 channels in [-1, 1], stored\n"
                  "exactly.\n"
                  "\n"
                  "One pass, several caches: --method glocal-local --out L.h5 --method\n"
                  "glocal-residual --out R.h5 --method glocal-mixed --out M.h5 runs GLOCAL once\n"
                  "per pair and writes the three caches, each the same as a run of its method\n"
                  "alone would write (either way resumes a cache the other left unfinished).\n"
                  "Every glocal-* method can join that pass (the hybrid's glocal-tvl1-* and\n"
                  "the LME's glocal-lme-* too: both local flows from one network run; and\n"
                  "glocal-mask, glocal-tvl1-mask, glocal-lme-mask: 1 channel, the mask that\n"
                  "gates that local flow); every other method is a pass of its own.\n"
                  "\n"
                  "Several ranks (glocal launch -n N, torchrun, srun) without --shard: rank K\n"
                  "computes shard K/N into CACHE.h5.shardKofN.h5; the ranks meet at a barrier\n"
                  "(c10d) and rank 0 merges the shards into CACHE.h5. A rank that dies makes the\n"
                  "others stop at once (exit 1; finished shards are kept, rerun to resume); one\n"
                  "that hangs, after --dist-timeout seconds (shards may differ in length by hours).\n"
                  "\n"
                  "Crash safety: each finished clip is spooled in CACHE.h5.parts/ and the cache is\n"
                  "published atomically at the end; kill -9 loses only the clips in flight.\n"
                  "Ctrl-C stops after the clips in flight are dropped; rerun to resume.\n"
                  "Clips that cannot be read are recorded in the cache's /errors and listed at the\n"
                  "end ('failed: CLIP: WHY'); damaged clips are stored, recorded in its /warnings\n"
                  "and listed as 'warning: CLIP: damaged: WHY', also when an earlier (killed) run\n"
                  "stored them (with --strict they fail instead; a resume with the other --strict\n"
                  "is refused). Exit status: 0 all clips stored and none damaged,\n"
                  "1 some clips failed or were damaged, or an error, 2 usage,\n"
                  "130 interrupted (SIGINT), 143 terminated (SIGTERM): rerun to resume.\n",
    };
    int rc = cli_parse(&spec, argc, argv);
    if (rc != CLI_PARSED) return rc;
    for (const cli_opt *t = opts; t->kind != CLI_K_END; t++)
        if (t->ptr == &o->shard) o->shard_given = t->count > 0;
    const char *cmd = "extract";
    if (o->height < 8 || o->width < 8 || o->height > 4096 || o->width > 4096)
        return cli_usage_error(cmd, "--size: each side in 8..4096, got %dx%d", o->height, o->width);
    if (o->split_file && o->split) return cli_usage_error(cmd, "give --split or --split-file, not both");
    if (o->methods.n != o->outs.n)
        return cli_usage_error(cmd, "%d --method and %d --out: give one --out per --method", o->methods.n,
                               o->outs.n);
    int needs_model = 0;
    for (int k = 0; k < o->methods.n; k++) {
        const char *m = o->method_v[k];
        if (!extract_method_known(m, &needs_model))
            return cli_usage_error(cmd, "--method: unknown '%s' (%s)", m, extract_method_names());
        if (strcmp(extract_method_pass(m), extract_method_pass(o->method_v[0])) != 0)
            return cli_usage_error(cmd, "--method %s and --method %s: not one pass (together: glocal-local, "
                                   "glocal-residual, glocal-mixed; or glocal-tvl1-local, -residual, -mixed)",
                                   o->method_v[0], m);
        for (int i = 0; i < k; i++) {
            if (!strcmp(o->method_v[i], m)) return cli_usage_error(cmd, "--method %s: given twice", m);
            if (!strcmp(o->out_v[i], o->out_v[k]))
                return cli_usage_error(cmd, "--out %s: given twice", o->out_v[k]);
        }
    }
    if (o->model && !needs_model) return cli_usage_error(cmd, "--model applies to the glocal-* methods only");
    if (needs_model && !o->model)
        return cli_usage_error(cmd, "--method %s needs --model CKPT (a checkpoint of glocal train-motion)",
                               o->method_v[0]);
    return CLI_PARSED;
}

/* Options, then extract_run. */
int cmd_extract(int argc, char **argv)
{
    const char *cmd = "extract";
    extract_options o;
    int rc = parse_options(&o, argc, argv);
    if (rc != CLI_PARSED) return rc;
    const char *lists = o.lists, *split_file = o.split_file;
    const char *out[EXTRACT_MAX_OUTPUTS];
    const int nout = o.outs.n;
    for (int k = 0; k < nout; k++) out[k] = o.out_v[k];
    int shard_k = o.shard.k, shard_n = o.shard.n;
    /* Under glocal launch / torchrun / srun without --shard, rank K of N computes
     * shard K/N into its own cache OUT.shardKofN.h5 (published on its own, so a
     * rank that dies loses none of the others' work), and rank 0 then merges
     * every shard into OUT (each OUT, with several outputs). */
    static char shard_out[EXTRACT_MAX_OUTPUTS][4096], final_out[EXTRACT_MAX_OUTPUTS][4096];
    int dist_world = 1;
    nn_dist *dist = NULL;
    if (!o.shard_given) {
        nn_dist_env e;
        int erc = nn_dist_env_read(&e);
        if (erc < 0) return cli_fail(cmd, erc, "distributed environment");
        if (e.world_size > 1) {
            dist_world = e.world_size;
            shard_k = e.rank;
            shard_n = e.world_size;
            for (int k = 0; k < nout; k++) {
                shard_paths(out[k], shard_k, shard_n, final_out[k], shard_out[k]);
                out[k] = shard_out[k];
            }
        }
    }

    /* the clip list */
    int split_no = o.split ? (int)o.split : 1, only = -1;
    char lists_dir[4096];
    if (split_file) {
        if (list_of_file(split_file, &split_no, &only, lists_dir, sizeof lists_dir) < 0)
            return cli_usage_error(cmd, "--split-file: '%s' is not named trainlistNN.txt, "
                                   "testlistNN.txt or vallistNN.txt", split_file);
        if (lists) return cli_usage_error(cmd, "--split-file names its folder: drop --lists");
        lists = lists_dir;
    } else {
        lists = cli_lists_note(cmd, o.dataset, lists, lists_dir, sizeof lists_dir);
    }
    extract_config ec = { .dataset = o.dataset, .lists = lists, .split = split_no, .only = only,
                          .list_file = split_file, .method = o.method_v[0], .model = o.model, .out = out[0],
                          .width = o.width, .height = o.height, .stride = (int)o.stride,
                          .workers = (int)o.workers, .shard_k = shard_k, .shard_n = shard_n,
                          .strict = o.strict };
    for (int k = 1; k < nout; k++) {
        ec.more[ec.nmore].method = o.method_v[k];
        ec.more[ec.nmore++].out = out[k];
    }
    int code = CLI_FAIL;
    if (dist_world > 1) {
        /* Joined before any work, so a rank that fails anywhere later is seen
         * by the others at the final barrier instead of being waited for. */
        nn_dist_options dopt = nn_dist_options_default();
        dopt.timeout_s = o.dist_timeout;
        dopt.rendezvous_timeout_s = 300;
        if ((rc = nn_dist_init_from_env(&dist, &dopt)) < 0) {
            cli_fail(cmd, rc, "cannot join the distributed job");
            goto done;
        }
    }
    extract_progress sum;
    rc = run_interruptible(&ec, &sum);
    if (rc == GL_ECANCELED) {
        fail(rc);
        code = 128 + (cli_signal_caught() ? cli_signal_caught() : SIGINT);
        goto done;
    }
    if (rc < 0) {
        code = fail(rc);
        goto done;
    }
    char note[160];
    snprintf(note, sizeof note, " (%ld pairs this run in %.1f s, %.1f pairs/s)", sum.pairs, sum.seconds,
             sum.seconds > 0 ? sum.pairs / sum.seconds : 0.0);
    /* the failed and damaged clips are listed once, with the first cache (the
     * others record the same ones, unless they were resumed from other runs) */
    code = CLI_OK;
    for (int k = 0; k < nout; k++) {
        int c = print_cache(out[k], note, "", k == 0);
        if (c != CLI_OK) code = c;
    }
    if (dist_world > 1) code = merge_shards(dist, final_out, nout);
done:
    nn_dist_free(&dist);
    return code;
}
