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

static void jnum(const char *k, double v, int comma)
{
    if (isfinite(v)) printf("\"%s\": %.6g%s", k, v, comma ? ", " : "");
    else printf("\"%s\": null%s", k, comma ? ", " : "");
}

/* A table cell: "-" where a category has no pairs. */
static void cell(double v)
{
    if (isfinite(v)) printf(" %8.3f", v);
    else printf(" %8s", "-");
}

/* JSON string body: the list's names are plain, but escape anyway. */
static void jstr(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
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

    int code = CLI_FAIL, nskip = 0;
    char *lbuf = NULL, *pbuf = NULL, *path = NULL;
    udhn_list L = { 0 };
    udhn_points_table T = { 0 };
    glocal_model *m = NULL;
    glocal_result r = { 0 };
    skipped *skip = NULL;
    uint8_t *frames = NULL;
    const uint8_t **pa = NULL;
    const udhn_points **pts = NULL;
    int *idx = NULL;
    acc A[M_N];
    memset(A, 0, sizeof A);
    const size_t plen = strlen(dir) + 64;
    lbuf = gl_malloc(plen);
    pbuf = gl_malloc(plen);
    if (!lbuf || !pbuf) { cli_fail(cmd, GL_ENOMEM, "out of memory"); goto done; }
    if (!list_path) { snprintf(lbuf, plen, "%s/Test_List.txt", dir); list_path = lbuf; }
    if (!points_path) { snprintf(pbuf, plen, "%s/udhn_points.txt", dir); points_path = pbuf; }
    if ((rc = udhn_list_read(&L, list_path)) < 0) { cli_fail(cmd, rc, "cannot read the pair list"); goto done; }
    if ((rc = udhn_points_read(&T, points_path)) < 0) { cli_fail(cmd, rc, "cannot read the points"); goto done; }
    if (model && (rc = glocal_model_load(&m, model, NULL)) < 0) {
        cli_fail(cmd, rc, "cannot load the model %s", model);
        goto done;
    }
    const int N = max_pairs && max_pairs < L.n ? (int)max_pairs : L.n;
    const int B = (int)batch;
    const size_t whs = (size_t)ww * wh * 3;
    skip = gl_calloc(N, sizeof *skip);
    frames = gl_malloc(whs * 2 * B);
    pa = gl_malloc(sizeof *pa * 2 * B);
    pts = gl_malloc(sizeof *pts * B);
    idx = gl_malloc(sizeof *idx * B);
    size_t longest = 0;  /* image paths are DIR/Test/NAME */
    for (int i = 0; i < N; i++) {
        size_t la = strlen(L.pairs[i].image_a), lb = strlen(L.pairs[i].image_b);
        longest = la > longest ? la : longest;
        longest = lb > longest ? lb : longest;
    }
    const size_t pathlen = strlen(dir) + longest + 8;
    path = gl_malloc(pathlen);
    if (!skip || !frames || !pa || !pts || !idx || !path) { cli_fail(cmd, GL_ENOMEM, "out of memory"); goto done; }
    const uint8_t **pb = pa + B;
    cli_progress pr;
    cli_progress_start(&pr, "evaluating", N);
    int next = 0;
    while (next < N) {
        /* Fill a batch with the next pairs that have points and images. */
        int n = 0;
        for (; next < N && n < B; next++) {
            const udhn_pair *p = &L.pairs[next];
            const udhn_points *q;
            if (udhn_points_find(&T, p->key, &q) < 0) {
                char why[1200];
                snprintf(why, sizeof why, "no point entry in %s (Coordinate-v2/%s.npy missing or not "
                         "converted)", points_path, p->key);
                skip[nskip].index = next;
                skip[nskip++].reason = gl_strdup(why);
                continue;
            }
            uint8_t *img[2] = { NULL, NULL };
            const char *names[2] = { p->image_a, p->image_b };
            for (int k = 0; k < 2; k++) {
                snprintf(path, pathlen, "%s/Test/%s", dir, names[k]);
                rc = udhn_frame_load(path, &img[k], NULL, NULL);
                if (rc == GL_ENOMEM) { gl_free(img[0]); cli_fail(cmd, rc, "out of memory"); goto done; }
                if (rc < 0) break;
                uint8_t *dst = frames + whs * (2 * n + k);
                if (ww == UDHN_WIDTH && wh == UDHN_HEIGHT) memcpy(dst, img[k], whs);
                else rc = udhn_rgb_resize(img[k], UDHN_WIDTH, UDHN_HEIGHT, dst, ww, wh);
                if (rc < 0) break;
            }
            gl_free(img[0]);
            gl_free(img[1]);
            if (rc < 0) {
                skip[nskip].index = next;
                skip[nskip++].reason = gl_strdup(gl_last_error());
                continue;
            }
            pa[n] = frames + whs * 2 * n;
            pb[n] = frames + whs * (2 * n + 1);
            pts[n] = q;
            idx[n] = next;
            n++;
        }
        if (!n) continue;
        double Hs[M_N][9 * MAX_BATCH];  /* per method, per pair of this batch */
        for (int k = 0; k < M_N; k++) {
            if ((k == M_GLOCAL || k == M_NET) && !m) continue;
            if (k == M_TVL1 && !tvl1) continue;
            double t0 = gl_now();
            if (k == M_IDENT) {
                for (int j = 0; j < n; j++) {
                    double *h = Hs[k] + 9 * j;
                    memset(h, 0, 9 * sizeof *h);
                    h[0] = h[4] = h[8] = 1;
                }
            } else if (k == M_TVL1 || k == M_DIS) {
                flow_method_fn fm = k == M_TVL1 ? flow_method_tvl1 : flow_method_dis;
                for (int j = 0; j < n; j++)
                    if ((rc = flow_homography(fm, pa[j], pb[j], ww, wh, Hs[k] + 9 * j)) < 0) {
                        cli_fail(cmd, rc, "%s failed on %s", mname[k], L.pairs[idx[j]].key);
                        goto done;
                    }
            } else {
                glocal_infer_options o;
                glocal_infer_options_default(&o);
                o.use_network = k != M_REFINE;
                o.lme = k == M_GLOCAL;
                o.refine = k == M_REFINE || (k == M_GLOCAL && refine);
                o.local_tvl1 = 0; /* only H is scored */
                if ((rc = glocal_infer(k == M_REFINE ? NULL : m, pa, pb, n, ww, wh, &o,
                                       &r)) < 0) {
                    cli_fail(cmd, rc, "%s failed", mname[k]);
                    goto done;
                }
                memcpy(Hs[k], r.homography, sizeof(double) * 9 * n);
                glocal_result_free(&r);
            }
            A[k].secs += gl_now() - t0;
            A[k].timed += n;
            for (int j = 0; j < n; j++) {
                double h[9], e;
                glocal_homography_rescale(Hs[k] + 9 * j, ww, wh, UDHN_WIDTH, UDHN_HEIGHT, h);
                if (udhn_pair_error(h, pts[j], &e) < 0) { A[k].failed++; continue; }
                int c = L.pairs[idx[j]].category;
                if (c != UDHN_NONE) { A[k].sum[c] += e; A[k].n[c]++; }
                A[k].sum[UDHN_NCATS] += e;
                A[k].n[UDHN_NCATS]++;
            }
        }
        cli_progress_update(&pr, next, NULL);
    }
    cli_progress_end(&pr, N, NULL);

    summary S[M_N];
    for (int k = 0; k < M_N; k++) S[k] = summarise(&A[k]);
    int counts[UDHN_NCATS + 1] = { 0 };
    for (int k = 0; k < M_N; k++)
        if (A[k].timed) { memcpy(counts, A[k].n, sizeof counts); break; }
    printf("DHE (CA-UDHN) %s: %d of %d pairs evaluated (%d skipped)\n"
           "error: mean px over the 6 points of a pair, at 640x360; methods run at %dx%d\n",
           list_path, N - nskip, N, nskip, ww, wh);
    printf("%-12s", "method");
    for (int c = 0; c < UDHN_NCATS; c++) printf(" %8s", udhn_category_name(c));
    printf(" %8s %8s %9s %6s\n", "mean", "all", "ms/pair", "failed");
    printf("%-12s", "pairs");
    for (int c = 0; c < UDHN_NCATS; c++) printf(" %8d", counts[c]);
    printf(" %8s %8d\n", "", counts[UDHN_NCATS]);
    for (int k = 0; k < M_N; k++) {
        if (!A[k].timed) continue;
        printf("%-12s", mname[k]);
        for (int c = 0; c < UDHN_NCATS; c++) cell(S[k].cat[c]);
        cell(S[k].mean_of_cats);
        cell(S[k].all);
        printf(" %9.1f %6d\n", S[k].ms, A[k].failed);
    }
    int used = 0;
    for (int c = 0; c < UDHN_NCATS; c++) used += counts[c] > 0;
    if (used < UDHN_NCATS && N > nskip)
        printf("note: \"mean\" is over the %d categor%s with pairs, not all 5\n", used,
               used == 1 ? "y" : "ies");
    if (nskip) {
        fprintf(stderr, "glocal eval-dhe: skipped %d pair%s:\n", nskip, nskip == 1 ? "" : "s");
        for (int s = 0; s < nskip; s++) {
            const udhn_pair *p = &L.pairs[skip[s].index];
            fprintf(stderr, "  %s:%d %s (%s %s): %s\n", list_path, p->line, p->key, p->image_a,
                    p->image_b, skip[s].reason ? skip[s].reason : "out of memory");
        }
    }
    if (json) {
        printf("{\"listed\": %d, \"evaluated\": %d, \"skipped\": %d, \"work_width\": %d, "
               "\"work_height\": %d, \"pairs\": {", N, N - nskip, nskip, ww, wh);
        for (int c = 0; c <= UDHN_NCATS; c++)
            printf("\"%s\": %d%s", c < UDHN_NCATS ? udhn_category_name(c) : "all", counts[c],
                   c < UDHN_NCATS ? ", " : "");
        printf("}, \"methods\": {");
        int first = 1;
        for (int k = 0; k < M_N; k++) {
            if (!A[k].timed) continue;
            printf("%s\"%s\": {", first ? "" : ", ", mname[k]);
            first = 0;
            for (int c = 0; c < UDHN_NCATS; c++) jnum(udhn_category_name(c), S[k].cat[c], 1);
            jnum("mean", S[k].mean_of_cats, 1);
            printf("\"categories_in_mean\": %d, ", S[k].cats_used);
            jnum("all", S[k].all, 1);
            printf("\"failed\": %d, ", A[k].failed);
            jnum("ms_per_pair", S[k].ms, 0);
            printf("}");
        }
        printf("}, \"skipped_pairs\": [");
        for (int s = 0; s < nskip; s++) {
            if (s) printf(", ");
            jstr(L.pairs[skip[s].index].key);
        }
        printf("]}\n");
    }
    code = nskip ? CLI_FAIL : CLI_OK;
done:
    for (int s = 0; skip && s < nskip; s++) gl_free(skip[s].reason);
    gl_free(skip);
    gl_free(idx);
    gl_free((void *)pts);
    gl_free((void *)pa);
    gl_free(frames);
    gl_free(path);
    glocal_result_free(&r);
    glocal_model_free(&m);
    udhn_points_free(&T);
    udhn_list_free(&L);
    gl_free(pbuf);
    gl_free(lbuf);
    return code;
}
