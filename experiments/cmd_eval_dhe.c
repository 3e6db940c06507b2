/* glocal eval-dhe — homography error on the CA-UDHN ("DHE") benchmark: the
 * mean 6-point error per scene category (RE, LT, LL, SF, LF) and the mean of
 * the five, for the same methods as eval-motion (datasets/udhn.h has the
 * protocol). A command of its own rather than an eval-motion option: it
 * shares no input and no metric with the synthetic benchmark. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/udhn.h"
#include "experiments/cli.h"
#include "experiments/commands.h"
#include "motion/flow.h"
#include "motion/glocal.h"

GLOCAL_COMMAND(eval_dhe, "eval-dhe",
               "homography error per category on the CA-UDHN (DHE) benchmark, per method")

#define MAX_BATCH 64

enum { M_IDENT, M_REFINE, M_TVL1, M_DIS, M_GLOCAL, M_NET, M_N };
static const char *mname[M_N] = { "identity", "refine", "tvl1-ransac", "dis-ransac", "glocal", "glocal-net" };

typedef struct {
    double sum[UDHN_NCATS + 1];  /* per category; [UDHN_NCATS] = all pairs */
    int n[UDHN_NCATS + 1];
    int failed;                  /* pairs where H sent a point to infinity */
    double secs;
    int timed;                   /* pairs the time covers */
} acc;

typedef struct {
    double cat[UDHN_NCATS];      /* NAN where a category has no pairs */
    double mean_of_cats, all, ms;
    int cats_used;
} summary;

static summary summarise(const acc *a)
{
    summary s;
    double t = 0;
    s.cats_used = 0;
    for (int c = 0; c < UDHN_NCATS; c++) {
        s.cat[c] = a->n[c] ? a->sum[c] / a->n[c] : NAN;
        if (a->n[c]) { t += s.cat[c]; s.cats_used++; }
    }
    s.mean_of_cats = s.cats_used ? t / s.cats_used : NAN;
    s.all = a->n[UDHN_NCATS] ? a->sum[UDHN_NCATS] / a->n[UDHN_NCATS] : NAN;
    s.ms = a->timed ? 1000 * a->secs / a->timed : NAN;
    return s;
}


/* A table cell: "-" where a category has no pairs. */
static void cell(double v)
{
    if (isfinite(v)) printf(" %8.3f", v);
    else printf(" %8s", "-");
}

/* TV-L1 or DIS (medium) flow, then RANSAC on it sampled every 2 px
 * (eval-motion's baselines). */
static int flow_homography(flow_method_fn method, const uint8_t *a, const uint8_t *b, int w, int h, double H[9])
{
    flow_baseline_config c;
    flow_baseline_config_default(&c);
    c.method = method;
    return flow_baseline_rgb24(a, b, w, h, &c, H, NULL, NULL, NULL);
}

typedef struct {
    int index;          /* into the list */
    char *reason;       /* gl_malloc'ed */
} skipped;

/* One evaluation: the options, the list and points, the batch buffers and
 * what the methods add up. */
typedef struct {
    const char *cmd, *dir, *list_path, *points_path;
    int ww, wh, tvl1, refine;    /* --work-size, --no-tvl1, --no-refine */
    int N, B;                    /* pairs of the list evaluated, pairs per batch */
    size_t whs;                  /* bytes of one frame at the work size */
    udhn_list L;
    udhn_points_table T;
    glocal_model *m;             /* NULL without --model */
    glocal_result r;
    skipped *skip;               /* room for N, nskip used */
    int nskip;
    uint8_t *frames;             /* the batch: frames A and B of each pair */
    const uint8_t **pa, **pb;    /* into frames */
    const udhn_points **pts;     /* the batch's points */
    int *idx;                    /* the batch's pairs as indices into the list */
    char *path;                  /* room for DIR/Test/IMAGE */
    size_t pathlen;
    char *lbuf, *pbuf;           /* the default list and points paths */
    acc A[M_N];
} dhe_run;

/* The list, the points and the model; the buffers. CLI_OK, or CLI_FAIL
 * after saying why. */
static int dhe_open(dhe_run *e, const char *model, long max_pairs)
{
    const char *cmd = e->cmd;
    int rc;
    const size_t plen = strlen(e->dir) + 64;
    e->lbuf = gl_malloc(plen);
    e->pbuf = gl_malloc(plen);
    if (!e->lbuf || !e->pbuf) return cli_fail(cmd, GL_ENOMEM, "out of memory");
    if (!e->list_path) { snprintf(e->lbuf, plen, "%s/Test_List.txt", e->dir); e->list_path = e->lbuf; }
    if (!e->points_path) { snprintf(e->pbuf, plen, "%s/udhn_points.txt", e->dir); e->points_path = e->pbuf; }
    if ((rc = udhn_list_read(&e->L, e->list_path)) < 0) return cli_fail(cmd, rc, "cannot read the pair list");
    if ((rc = udhn_points_read(&e->T, e->points_path)) < 0) return cli_fail(cmd, rc, "cannot read the points");
    if (model && (rc = glocal_model_load(&e->m, model, NULL)) < 0)
        return cli_fail(cmd, rc, "cannot load the model %s", model);
    e->N = max_pairs && max_pairs < e->L.n ? (int)max_pairs : e->L.n;
    e->whs = (size_t)e->ww * e->wh * 3;
    e->skip = gl_calloc(e->N, sizeof *e->skip);
    e->frames = gl_malloc(e->whs * 2 * e->B);
    e->pa = gl_malloc(sizeof *e->pa * 2 * e->B);
    e->pts = gl_malloc(sizeof *e->pts * e->B);
    e->idx = gl_malloc(sizeof *e->idx * e->B);
    size_t longest = 0;  /* image paths are DIR/Test/NAME */
    for (int i = 0; i < e->N; i++) {
        size_t la = strlen(e->L.pairs[i].image_a), lb = strlen(e->L.pairs[i].image_b);
        longest = la > longest ? la : longest;
        longest = lb > longest ? lb : longest;
    }
    e->pathlen = strlen(e->dir) + longest + 8;
    e->path = gl_malloc(e->pathlen);
    if (!e->skip || !e->frames || !e->pa || !e->pts || !e->idx || !e->path)
        return cli_fail(cmd, GL_ENOMEM, "out of memory");
    e->pb = e->pa + e->B;
    return CLI_OK;
}

static void dhe_close(dhe_run *e)
{
    for (int s = 0; e->skip && s < e->nskip; s++) gl_free(e->skip[s].reason);
    gl_free(e->skip);
    gl_free(e->idx);
    gl_free((void *)e->pts);
    gl_free((void *)e->pa);
    gl_free(e->frames);
    gl_free(e->path);
    glocal_result_free(&e->r);
    glocal_model_free(&e->m);
    udhn_points_free(&e->T);
    udhn_list_free(&e->L);
    gl_free(e->pbuf);
    gl_free(e->lbuf);
}

static void dhe_skip(dhe_run *e, int index, const char *why)
{
    e->skip[e->nskip].index = index;
    e->skip[e->nskip++].reason = gl_strdup(why);
}

/* Pair `i` of the list into place n of the batch. Returns 1 when it is
 * there, 0 when it is skipped (with its reason), -1 when memory ran out
 * (said). */
static int dhe_load_pair(dhe_run *e, int i, int n)
{
    const udhn_pair *p = &e->L.pairs[i];
    const udhn_points *q;
    if (udhn_points_find(&e->T, p->key, &q) < 0) {
        char why[1200];
        snprintf(why, sizeof why, "no point entry in %s (Coordinate-v2/%s.npy missing or not "
                 "converted)", e->points_path, p->key);
        dhe_skip(e, i, why);
        return 0;
    }
    uint8_t *img[2] = { NULL, NULL };
    const char *names[2] = { p->image_a, p->image_b };
    int rc = 0;
    for (int k = 0; k < 2; k++) {
        snprintf(e->path, e->pathlen, "%s/Test/%s", e->dir, names[k]);
        rc = udhn_frame_load(e->path, &img[k], NULL, NULL);
        if (rc == GL_ENOMEM) {
            gl_free(img[0]);
            cli_fail(e->cmd, rc, "out of memory");
            return -1;
        }
        if (rc < 0) break;
        uint8_t *dst = e->frames + e->whs * (2 * n + k);
        if (e->ww == UDHN_WIDTH && e->wh == UDHN_HEIGHT) memcpy(dst, img[k], e->whs);
        else rc = udhn_rgb_resize(img[k], UDHN_WIDTH, UDHN_HEIGHT, dst, e->ww, e->wh);
        if (rc < 0) break;
    }
    gl_free(img[0]);
    gl_free(img[1]);
    if (rc < 0) {
        dhe_skip(e, i, gl_last_error());
        return 0;
    }
    e->pa[n] = e->frames + e->whs * 2 * n;
    e->pb[n] = e->frames + e->whs * (2 * n + 1);
    e->pts[n] = q;
    e->idx[n] = i;
    return 1;
}

/* Fills the batch with the next pairs from *next on that have points and
 * images. Returns how many, or a negative number after a failure (said). */
static int dhe_fill_batch(dhe_run *e, int *next)
{
    int n = 0;
    for (; *next < e->N && n < e->B; (*next)++) {
        int got = dhe_load_pair(e, *next, n);
        if (got < 0) return got;
        n += got;
    }
    return n;
}

/* Whether method k runs at all (glocal needs --model; --no-tvl1). */
static int dhe_method_on(const dhe_run *e, int k)
{
    if ((k == M_GLOCAL || k == M_NET) && !e->m) return 0;
    return !(k == M_TVL1 && !e->tvl1);
}

/* Method k's homographies for the n pairs of the batch into Hs (9 each).
 * CLI_OK, or CLI_FAIL after saying which failed. */
static int dhe_method_run(dhe_run *e, int k, int n, double *Hs)
{
    int rc;
    if (k == M_IDENT) {
        for (int j = 0; j < n; j++) {
            double *h = Hs + 9 * j;
            memset(h, 0, 9 * sizeof *h);
            h[0] = h[4] = h[8] = 1;
        }
        return CLI_OK;
    }
    if (k == M_TVL1 || k == M_DIS) {
        flow_method_fn fm = k == M_TVL1 ? flow_method_tvl1 : flow_method_dis;
        for (int j = 0; j < n; j++)
            if ((rc = flow_homography(fm, e->pa[j], e->pb[j], e->ww, e->wh, Hs + 9 * j)) < 0)
                return cli_fail(e->cmd, rc, "%s failed on %s", mname[k], e->L.pairs[e->idx[j]].key);
        return CLI_OK;
    }
    glocal_infer_options o;
    glocal_infer_options_default(&o);
    o.use_network = k != M_REFINE;
    o.lme = k == M_GLOCAL;
    o.refine = k == M_REFINE || (k == M_GLOCAL && e->refine);
    o.homography_only = 1; /* only H is scored */
    if ((rc = glocal_infer(k == M_REFINE ? NULL : e->m, e->pa, e->pb, n, e->ww, e->wh, &o, &e->r)) < 0)
        return cli_fail(e->cmd, rc, "%s failed", mname[k]);
    memcpy(Hs, e->r.homography, sizeof(double) * 9 * n);
    glocal_result_free(&e->r);
    return CLI_OK;
}

/* Adds the errors of the batch's homographies Hs (at the work size) to a. */
static void dhe_score(const dhe_run *e, const double *Hs, int n, acc *a)
{
    for (int j = 0; j < n; j++) {
        double h[9], err;
        glocal_homography_rescale(Hs + 9 * j, e->ww, e->wh, UDHN_WIDTH, UDHN_HEIGHT, h);
        if (udhn_pair_error(h, e->pts[j], &err) < 0) { a->failed++; continue; }
        int c = e->L.pairs[e->idx[j]].category;
        if (c != UDHN_NONE) { a->sum[c] += err; a->n[c]++; }
        a->sum[UDHN_NCATS] += err;
        a->n[UDHN_NCATS]++;
    }
}

/* Every method on the n pairs of the batch, timed and scored. */
static int dhe_batch_evaluate(dhe_run *e, int n)
{
    double Hs[9 * MAX_BATCH];
    for (int k = 0; k < M_N; k++) {
        if (!dhe_method_on(e, k)) continue;
        double t0 = gl_now();
        if (dhe_method_run(e, k, n, Hs) != CLI_OK) return CLI_FAIL;
        e->A[k].secs += gl_now() - t0;
        e->A[k].timed += n;
        dhe_score(e, Hs, n, &e->A[k]);
    }
    return CLI_OK;
}

/* All N pairs, batch by batch, with a progress line. */
static int dhe_evaluate(dhe_run *e)
{
    cli_progress pr;
    cli_progress_start(&pr, "evaluating", e->N);
    int next = 0;
    while (next < e->N) {
        int n = dhe_fill_batch(e, &next);
        if (n < 0) return CLI_FAIL;
        if (!n) continue;
        if (dhe_batch_evaluate(e, n) != CLI_OK) return CLI_FAIL;
        cli_progress_update(&pr, next, NULL);
    }
    cli_progress_end(&pr, e->N, NULL);
    return CLI_OK;
}

/* The table on stdout: pairs per category, then a row per method. */
static void dhe_print_table(const dhe_run *e, const summary *S, const int *counts)
{
    printf("DHE (CA-UDHN) %s: %d of %d pairs evaluated (%d skipped)\n"
           "error: mean px over the 6 points of a pair, at 640x360; methods run at %dx%d\n",
           e->list_path, e->N - e->nskip, e->N, e->nskip, e->ww, e->wh);
    printf("%-12s", "method");
    for (int c = 0; c < UDHN_NCATS; c++) printf(" %8s", udhn_category_name(c));
    printf(" %8s %8s %9s %6s\n", "mean", "all", "ms/pair", "failed");
    printf("%-12s", "pairs");
    for (int c = 0; c < UDHN_NCATS; c++) printf(" %8d", counts[c]);
    printf(" %8s %8d\n", "", counts[UDHN_NCATS]);
    for (int k = 0; k < M_N; k++) {
        if (!e->A[k].timed) continue;
        printf("%-12s", mname[k]);
        for (int c = 0; c < UDHN_NCATS; c++) cell(S[k].cat[c]);
        cell(S[k].mean_of_cats);
        cell(S[k].all);
        printf(" %9.1f %6d\n", S[k].ms, e->A[k].failed);
    }
    int used = 0;
    for (int c = 0; c < UDHN_NCATS; c++) used += counts[c] > 0;
    if (used < UDHN_NCATS && e->N > e->nskip)
        printf("note: \"mean\" is over the %d categor%s with pairs, not all 5\n", used,
               used == 1 ? "y" : "ies");
}

/* The skipped pairs on stderr, each with its list line and reason. */
static void dhe_print_skipped(const dhe_run *e)
{
    if (!e->nskip) return;
    fprintf(stderr, "glocal eval-dhe: skipped %d pair%s:\n", e->nskip, e->nskip == 1 ? "" : "s");
    for (int s = 0; s < e->nskip; s++) {
        const udhn_pair *p = &e->L.pairs[e->skip[s].index];
        fprintf(stderr, "  %s:%d %s (%s %s): %s\n", e->list_path, p->line, p->key, p->image_a,
                p->image_b, e->skip[s].reason ? e->skip[s].reason : "out of memory");
    }
}

/* --json: one line with every number of the table and the skipped pairs. */
static void dhe_print_json(const dhe_run *e, const summary *S, const int *counts)
{
    printf("{\"listed\": %d, \"evaluated\": %d, \"skipped\": %d, \"work_width\": %d, "
           "\"work_height\": %d, \"pairs\": {", e->N, e->N - e->nskip, e->nskip, e->ww, e->wh);
    for (int c = 0; c <= UDHN_NCATS; c++)
        printf("\"%s\": %d%s", c < UDHN_NCATS ? udhn_category_name(c) : "all", counts[c],
               c < UDHN_NCATS ? ", " : "");
    printf("}, \"methods\": {");
    int first = 1;
    for (int k = 0; k < M_N; k++) {
        if (!e->A[k].timed) continue;
        printf("%s\"%s\": {", first ? "" : ", ", mname[k]);
        first = 0;
        for (int c = 0; c < UDHN_NCATS; c++) cli_json_num(stdout, udhn_category_name(c), S[k].cat[c], 1);
        cli_json_num(stdout, "mean", S[k].mean_of_cats, 1);
        printf("\"categories_in_mean\": %d, ", S[k].cats_used);
        cli_json_num(stdout, "all", S[k].all, 1);
        printf("\"failed\": %d, ", e->A[k].failed);
        cli_json_num(stdout, "ms_per_pair", S[k].ms, 0);
        printf("}");
    }
    printf("}, \"skipped_pairs\": [");
    for (int s = 0; s < e->nskip; s++) {
        if (s) printf(", ");
        cli_json_str(stdout, e->L.pairs[e->skip[s].index].key);
    }
    printf("]}\n");
}

static void dhe_report(const dhe_run *e, int json)
{
    summary S[M_N];
    for (int k = 0; k < M_N; k++) S[k] = summarise(&e->A[k]);
    /* pairs per category: those of any method that ran (all score the same pairs) */
    int counts[UDHN_NCATS + 1] = { 0 };
    for (int k = 0; k < M_N; k++)
        if (e->A[k].timed) { memcpy(counts, e->A[k].n, sizeof counts); break; }
    dhe_print_table(e, S, counts);
    dhe_print_skipped(e);
    if (json) dhe_print_json(e, S, counts);
}

int cmd_eval_dhe(int argc, char **argv)
{
    const char *cmd = "eval-dhe";
    const char *dir = NULL, *list_path = NULL, *points_path = NULL, *model = NULL;
    int json = 0, tvl1 = 1, refine = 1, ww = UDHN_WIDTH, wh = UDHN_HEIGHT;
    long max_pairs = 0, batch = 8;
    cli_opt opts[] = {
        CLI_STR("--list", &list_path, "FILE", "the pair list", .def = "DIR/Test_List.txt"),
        CLI_STR("--points", &points_path, "FILE", "the converted points", .def = "DIR/udhn_points.txt"),
        CLI_STR("--model", &model, "M", "a checkpoint from glocal train-motion (adds glocal, glocal-net)"),
        CLI_NUM("--max-pairs", &max_pairs, 1, 100000000, "N", "evaluate the first N pairs of the list",
                .def = "all"),
        CLI_SIZE("--work-size", &ww, &wh, "WxH",
                 "run the methods on frames resized to WxH, each side 32..4096; H is rescaled to "
                 "640x360 pixels before scoring"),
        CLI_NOFLAG("--no-tvl1", &tvl1, "skip the TV-L1 baseline (with glocal, the slowest method)"),
        CLI_NOFLAG("--no-refine", &refine, "glocal without the robust refinement"),
        CLI_NUM("--batch", &batch, 1, MAX_BATCH, "B", "pairs per network batch"),
        CLI_FLAG("--json", &json, "print one JSON object with every number as the last line"),
        CLI_END,
    };
    cli_spec spec = {
        .cmd = cmd, .opts = opts, .args = "DIR", .arg = &dir, .min_args = 1, .max_args = 1,
        .usage = "DIR [--model M] [options]",
        .about = "Evaluates homography estimation with the DHE protocol of CA-UDHN (Zhang et al.,\n"
                 "ECCV 2020; JirongZhang/DeepHomography): for each listed pair of DIR/Test/VIDEO/IMAGE\n"
                 "frames (resized to 640x360 if they are not), the error is the mean over its 6\n"
                 "labelled point pairs of min(|pB - H pA|, |pA - H pB|) in pixels of 640x360, H the\n"
                 "estimated homography from A to B. Reported per method: the mean error of each\n"
                 "category RE (regular), LT (low texture), LL (low light), SF (small foreground),\n"
                 "LF (large foreground), the mean of the category means (\"mean\"; over the\n"
                 "categories that have pairs, with a note when that is fewer than 5), the mean\n"
                 "over all pairs (\"all\"; pairs of videos in no category count only there) and\n"
                 "the time per pair (\"-\": no pairs in that category; \"failed\": pairs whose H sends\n"
                 "a point to infinity, left out of the means).\n"
                 "Methods: identity (H = I: the size of the motion), refine (robust refinement from\n"
                 "the identity, no network), tvl1-ransac and dis-ransac (TV-L1 or DIS flow,\n"
                 "RANSAC homography; as eval-motion), and with --model: glocal (network + robust\n"
                 "refinement weighted by the LME background) and glocal-net (the network's DLT\n"
                 "homography alone).\n\n"
                 "DIR is the CA-UDHN folder: Test/, Test_List.txt, udhn_points.txt. The point\n"
                 "files DIR/Coordinate-v2/*.npy must first be converted once with\n"
                 "    scripts/udhn-points DIR        (writes DIR/udhn_points.txt)\n",
        .epilog = "A pair whose image or point entry is missing or unreadable is skipped; the skipped\n"
                  "pairs are listed on stderr at the end and the exit status is then 1.\n"
                  "Exit status: 0 all pairs evaluated, 1 some skipped or a failure, 2 usage error.\n",
    };
    int rc = cli_parse(&spec, argc, argv);
    if (rc != CLI_PARSED) return rc;
    if (ww < 32 || wh < 32 || ww > 4096 || wh > 4096)
        return cli_usage_error(cmd, "--work-size %dx%d: each side must be 32..4096", ww, wh);

    dhe_run e = { .cmd = cmd, .dir = dir, .list_path = list_path, .points_path = points_path,
                  .ww = ww, .wh = wh, .tvl1 = tvl1, .refine = refine, .B = (int)batch };
    int code = dhe_open(&e, model, max_pairs);
    if (code == CLI_OK) code = dhe_evaluate(&e);
    if (code == CLI_OK) {
        dhe_report(&e, json);
        code = e.nskip ? CLI_FAIL : CLI_OK;
    }
    dhe_close(&e);
    return code;
}
