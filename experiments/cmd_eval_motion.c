/* glocal eval-motion — GLOCAL against exact ground truth (synthetic pairs,
 * or pairs cut from real photos: datasets/photo_pairs.h), side by side with
 * the identity, the robust refinement alone and flow + RANSAC baselines. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "experiments/cli.h"
#include "experiments/commands.h"
#include "experiments/motion_pairs.h"
#include "motion/flow.h"
#include "motion/glocal.h"

GLOCAL_COMMAND(eval_motion, "eval-motion",
               "evaluate GLOCAL motion (and TV-L1 + RANSAC) against synthetic or photo-pair ground truth")

static void help(void)
{
    printf("usage: glocal eval-motion [--model M] (--dataset SYNTH_DIR | --synth | --photos DIR) [options]\n"
           "       glocal eval-motion --dhe DIR [options]   (= glocal eval-dhe DIR: the CA-UDHN\n"
           "                                                 homography benchmark, real videos)\n\n"
           "Measures, per method, against the ground truth of the synthetic benchmark\n"
           "(datasets/synth.h) or of pairs cut from photographs (datasets/photo_pairs.h): the\n"
           "4-corner error of the homography (px; mean, median, the fraction of pairs under 1 px\n"
           "and over 5 px), the global-flow EPE, the local-flow EPE on foreground pixels,\n"
           "the background leakage (mean |local flow| off the foreground) and the mask IoU\n"
           "(IoU: mean over pairs; IoUall: pixels pooled over all pairs).\n"
           "Methods: identity (H = I, no local flow: the size of the motion), glocal (network +\n"
           "robust refinement + LME), glocal-residual (the same, its\n"
           "local flow before the mask), glocal-net (the network's DLT\n"
           "homography alone), refine (robust refinement from the identity, no network) and\n"
           "tvl1-ransac (TV-L1 flow, RANSAC homography; local = flow minus homography, mask =\n"
           "RANSAC outliers).\n\n"
           "  --model M             a checkpoint from glocal train-motion (without it: baselines)\n"
           "  --dataset DIR         a folder written by glocal synth: test-list clips, their videos\n"
           "                        and _gt.h5 ground truth\n"
           "  --max-clips N         clips of the test list to use (default 40)\n"
           "  --pairs-per-clip K    pairs (t, t+1) per clip, spread over it (default 4)\n"
           "  --synth               render pairs in memory instead (no video coding)\n"
           "  --size S  --camera C  --pairs N  --seed X   for --synth (64, 1, 200, 12345)\n"
           "  --photos DIR          pairs cut from the photos of DIR (a folder or a list file; e.g.\n"
           "                        DIR/test of scripts/photos): a random crop, its corners moved\n"
           "                        within +-magnitude x S (HomographyNet), 1-2 patches of other\n"
           "                        photos moving on their own over 10-25 %% of the frame; exact\n"
           "                        ground truth. --size S (64), --pairs N (200), --seed X (12345)\n"
           "                        as for --synth, and:\n"
           "  --magnitude F         corner displacement as a fraction of S: 1/16 or 1/8, or a\n"
           "                        number in (0, 1/4] (default 1/16); the patches' own motion\n"
           "                        is F x S / 4 .. F x S\n"
           "  --photo-side N        photos are downscaled to a shorter side of at most N px (512)\n"
           "  --no-tvl1             skip the TV-L1 baseline (the slowest)\n"
           "  --no-refine           glocal without the robust refinement\n"
           "  --lme-local           glocal's local flow and mask from the LME alone (default:\n"
           "                        TV-L1 on the aligned pair, gated by the LME mask; glocal.h)\n"
           "  --batch B             pairs per network batch (default 32)\n"
           "  --json                print one JSON object with every number as the last line\n");
}

/* Rows, in the order of the table. The flow + RANSAC baselines share one path
 * (flow_ransac_pair, flow_baselines below): a dis-ransac row goes in after
 * M_TVL1, with its flow function in flow_baselines. */
enum { M_IDENT, M_REFINE, M_TVL1, M_NET, M_GLOCAL, M_RESID, M_N };
static const char *mname[M_N] = { "identity", "refine", "tvl1-ransac", "glocal-net", "glocal",
                                  "glocal-residual" };

typedef struct {
    int n, nl, ni, nk, nglob;
    long inter, uni;
    double *corner;
    double epe, lfg, leak, iou, secs;
} acc;

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void add(acc *a, const glocal_pair_metrics *pm)
{
    a->corner[a->n++] = pm->corner;
    if (!isnan(pm->global_epe)) { a->epe += pm->global_epe; a->nglob++; }
    if (!isnan(pm->local_epe_fg)) { a->lfg += pm->local_epe_fg; a->nl++; }
    if (!isnan(pm->leakage)) { a->leak += pm->leakage; a->nk++; }
    if (!isnan(pm->iou)) { a->iou += pm->iou; a->ni++; }
    a->inter += pm->inter;
    a->uni += pm->uni;
}

typedef struct {
    double mean, median, under1, over5, epe, lfg, leak, iou, iou_pooled, ms;
} summary;

static summary summarise(acc *a)
{
    summary s = { NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN };
    if (!a->n) return s;
    double t = 0;
    int u = 0, o = 0;
    for (int i = 0; i < a->n; i++) { t += a->corner[i]; u += a->corner[i] < 1; o += a->corner[i] > 5; }
    qsort(a->corner, a->n, sizeof(double), cmpd);
    s.mean = t / a->n;
    s.median = a->n % 2 ? a->corner[a->n / 2] : 0.5 * (a->corner[a->n / 2 - 1] + a->corner[a->n / 2]);
    s.under1 = (double)u / a->n;
    s.over5 = (double)o / a->n;
    s.epe = a->nglob ? a->epe / a->nglob : NAN;
    s.lfg = a->nl ? a->lfg / a->nl : NAN;
    s.leak = a->nk ? a->leak / a->nk : NAN;
    s.iou = a->ni ? a->iou / a->ni : NAN;
    s.iou_pooled = a->uni ? (double)a->inter / a->uni : NAN;
    s.ms = 1000 * a->secs / a->n;
    return s;
}

static void jnum(FILE *f, const char *k, double v, int comma)
{
    if (isfinite(v)) fprintf(f, "\"%s\": %.6g%s", k, v, comma ? ", " : "");
    else fprintf(f, "\"%s\": null%s", k, comma ? ", " : "");
}

/* The flow + RANSAC rows: { row, flow method (motion/flow.h) }. */
static const struct {
    int row;
    flow_method_fn flow;
} flow_baselines[] = {
    { M_TVL1, flow_method_tvl1 },
};

/* Flow + RANSAC on one pair (flow_baseline_rgb24 with its defaults and the
 * given flow method): H, global, local and an outlier mask (1 where the
 * local flow is not zero, i.e. off the homography's inliers). */
static int flow_ransac_pair(flow_method_fn flow, const uint8_t *a, const uint8_t *b, int w, int h,
                            double H[9], float *glob, float *local, float *mask)
{
    const size_t hw = (size_t)w * h;
    flow_field g = { 0 }, l = { 0 };
    flow_baseline_config c;
    flow_baseline_config_default(&c);
    c.method = flow;
    int rc;
    if ((rc = flow_field_new(&g, w, h)) < 0 || (rc = flow_field_new(&l, w, h)) < 0) goto fail;
    if ((rc = flow_baseline_rgb24(a, b, w, h, &c, H, NULL, &g, &l)) < 0) goto fail;
    for (size_t p = 0; p < hw; p++) {
        glob[p] = g.u[p];
        glob[hw + p] = g.v[p];
        local[p] = l.u[p];
        local[hw + p] = l.v[p];
        mask[p] = (l.u[p] != 0 || l.v[p] != 0) ? 1.0f : 0.0f;
    }
fail:
    flow_field_free(&g);
    flow_field_free(&l);
    return rc;
}

int cmd_eval_dhe(int argc, char **argv);

int cmd_eval_motion(int argc, char **argv)
{
    /* `eval-motion --dhe DIR ...` is `eval-dhe DIR ...` (the CA-UDHN protocol) */
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--dhe")) {
            char *av[argc];
            int n = 0;
            av[n++] = "eval-dhe";
            av[n++] = argv[i + 1];
            for (int j = 1; j < argc; j++)
                if (j != i && j != i + 1) av[n++] = argv[j];
            return cmd_eval_dhe(n, av);
        }
    const char *cmd = "eval-motion";
    const char *model = NULL, *dataset = NULL, *photos = NULL;
    int synth = 0, json = 0, tvl1 = 1, refine = 1, local_tvl1 = 1;
    long max_clips = 40, ppc = 4, size = 64, pairs = 200, seed = 12345, batch = 32, photo_side = 512;
    double camera = 1.0, magnitude = 1.0 / 16;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { help(); return CLI_OK; }
        if (!strcmp(a, "--synth")) { synth = 1; continue; }
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if (!strcmp(a, "--no-tvl1")) { tvl1 = 0; continue; }
        if (!strcmp(a, "--no-refine")) { refine = 0; continue; }
        if (!strcmp(a, "--lme-local")) { local_tvl1 = 0; continue; }
        if (!v) return cli_usage_error(cmd, "option '%s' needs a value (or is unknown)", a);
        i++;
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--dataset")) dataset = v;
        else if (!strcmp(a, "--photos")) photos = v;
        else if (!strcmp(a, "--magnitude")) {
            /* "1/16" or a number */
            const char *sl = strchr(v, '/');
            double num, den = 1;
            if (sl) {
                char nb[64];
                snprintf(nb, sizeof nb, "%.*s", (int)(sl - v), v);
                if (cli_parse_double(cmd, a, nb, &num) < 0 || cli_parse_double(cmd, a, sl + 1, &den) < 0)
                    return CLI_USAGE;
            } else if (cli_parse_double(cmd, a, v, &num) < 0) {
                return CLI_USAGE;
            }
            magnitude = den != 0 ? num / den : -1;
            if (!(magnitude > 0 && magnitude <= 0.25))
                return cli_usage_error(cmd, "--magnitude expects a fraction of the size in (0, 1/4] "
                                       "(e.g. 1/16 or 0.125), got '%s'", v);
        }
        else if (!strcmp(a, "--photo-side")) { if (cli_parse_int(cmd, a, v, 16, 8192, &photo_side) < 0) return CLI_USAGE; }
        else if (!strcmp(a, "--max-clips")) { if (cli_parse_int(cmd, a, v, 1, 1000000, &max_clips) < 0) return CLI_USAGE; }
        else if (!strcmp(a, "--pairs-per-clip")) { if (cli_parse_int(cmd, a, v, 1, 10000, &ppc) < 0) return CLI_USAGE; }
        else if (!strcmp(a, "--size")) { if (cli_parse_int(cmd, a, v, 16, 4096, &size) < 0) return CLI_USAGE; }
        else if (!strcmp(a, "--camera")) { if (cli_parse_double(cmd, a, v, &camera) < 0) return CLI_USAGE; }
        else if (!strcmp(a, "--pairs")) { if (cli_parse_int(cmd, a, v, 1, 1000000, &pairs) < 0) return CLI_USAGE; }
        else if (!strcmp(a, "--seed")) { if (cli_parse_int(cmd, a, v, 0, 0x7fffffffL, &seed) < 0) return CLI_USAGE; }
        else if (!strcmp(a, "--batch")) { if (cli_parse_int(cmd, a, v, 1, 4096, &batch) < 0) return CLI_USAGE; }
        else return cli_usage_error(cmd, "unknown option '%s'", a);
    }
    if (!synth + !dataset + !photos != 2)
        return cli_usage_error(cmd, "give one of --dataset SYNTH_DIR, --synth and --photos DIR");
    if (photos && (size & 1)) return cli_usage_error(cmd, "--size must be even with --photos, got %ld", size);
    int code = CLI_FAIL, rc;
    glocal_model *m = NULL;
    motion_pairs P = { 0 };
    glocal_result r = { 0 };
    acc A[M_N];
    memset(A, 0, sizeof A);
    float *tg = NULL, *zero = NULL;
    if (model && (rc = glocal_model_load(&m, model, NULL)) < 0) {
        cli_fail(cmd, rc, "cannot load the model %s", model);
        goto done;
    }
    if (synth) {
        synth_config sc = synth_config_default();
        sc.width = sc.height = (int)size;
        sc.camera = camera;
        rc = motion_pairs_synth(&P, &sc, (int)pairs, (uint64_t)seed);
    } else if (photos) {
        photo_pairs_config pc = photo_pairs_config_benchmark((int)size, magnitude, (uint64_t)seed);
        rc = motion_pairs_photos(&P, photos, (int)photo_side, &pc, (int)pairs);
    } else {
        rc = motion_pairs_synth_dir(&P, dataset, (int)max_clips, (int)ppc);
    }
    if (rc < 0) { cli_fail(cmd, rc, "cannot load the evaluation pairs"); goto done; }
    const int W = P.width, H = P.height, N = P.n;
    const size_t hw = (size_t)W * H;
    for (int k = 0; k < M_N; k++) {
        A[k].corner = gl_calloc(N, sizeof(double));
        if (!A[k].corner) { cli_fail(cmd, GL_ENOMEM, "out of memory"); goto done; }
    }
    tg = gl_malloc(sizeof(float) * 5 * hw);
    zero = gl_calloc(2 * hw, sizeof(float)); /* identity's global and local flow */
    if (!tg || !zero) { cli_fail(cmd, GL_ENOMEM, "out of memory"); goto done; }
    const uint8_t **pa = gl_malloc(sizeof *pa * 2 * batch);
    if (!pa) { cli_fail(cmd, GL_ENOMEM, "out of memory"); goto done; }
    const uint8_t **pb = pa + batch;
    cli_progress pr;
    cli_progress_start(&pr, "evaluating", N);
    for (int i0 = 0; i0 < N; i0 += (int)batch) {
        int n = N - i0 < batch ? N - i0 : (int)batch;
        for (int j = 0; j < n; j++) {
            pa[j] = P.a + (size_t)(i0 + j) * hw * 3;
            pb[j] = P.b + (size_t)(i0 + j) * hw * 3;
        }
        for (int k = 0; k < M_N; k++) {
            if ((k == M_GLOCAL || k == M_RESID || k == M_NET) && !m) continue;
            if (k == M_IDENT || k == M_TVL1 || (k == M_RESID && !local_tvl1)) continue;
            glocal_infer_options o;
            glocal_infer_options_default(&o);
            o.use_network = k != M_REFINE;
            o.lme = k == M_GLOCAL || k == M_RESID;
            o.refine = k == M_REFINE || (o.lme && refine);
            o.local_tvl1 = o.lme && local_tvl1;
            o.local_gate = k != M_RESID;
            double t0 = gl_now();
            if ((rc = glocal_infer(k == M_REFINE ? NULL : m, pa, pb, n, W, H, &o, &r)) < 0) {
                gl_free((void *)pa);
                cli_fail(cmd, rc, "%s failed", mname[k]);
                goto done;
            }
            A[k].secs += gl_now() - t0;
            for (int j = 0; j < n; j++) {
                size_t q = (size_t)(i0 + j);
                glocal_pair_metrics pm;
                rc = glocal_metrics_pair(r.homography + 9 * j, P.homography + 9 * q,
                                         r.global_flow + j * 2 * hw, P.global_flow + q * 2 * hw,
                                         o.lme ? r.local_flow + j * 2 * hw : NULL,
                                         P.local_flow + q * 2 * hw, o.lme ? r.mask + j * hw : NULL,
                                         P.mask + q * hw, W, H, &pm);
                if (rc < 0) { gl_free((void *)pa); cli_fail(cmd, rc, "metrics"); goto done; }
                add(&A[k], &pm);
            }
            glocal_result_free(&r);
        }
        /* identity: H = I, global and local flow 0, no mask */
        for (int j = 0; j < n; j++) {
            size_t q = (size_t)(i0 + j);
            const double I[9] = { 1, 0, 0, 0, 1, 0, 0, 0, 1 };
            glocal_pair_metrics pm;
            if ((rc = glocal_metrics_pair(I, P.homography + 9 * q, zero, P.global_flow + q * 2 * hw, zero,
                                          P.local_flow + q * 2 * hw, NULL, P.mask + q * hw, W, H, &pm)) < 0) {
                gl_free((void *)pa);
                cli_fail(cmd, rc, "metrics");
                goto done;
            }
            add(&A[M_IDENT], &pm);
        }
        for (size_t fb = 0; fb < sizeof flow_baselines / sizeof *flow_baselines; fb++) {
            int k = flow_baselines[fb].row;
            if (k == M_TVL1 && !tvl1) continue;
            for (int j = 0; j < n; j++) {
                size_t q = (size_t)(i0 + j);
                double Hh[9], t0 = gl_now();
                if ((rc = flow_ransac_pair(flow_baselines[fb].flow, pa[j], pb[j], W, H, Hh, tg, tg + 2 * hw,
                                           tg + 4 * hw)) < 0) {
                    gl_free((void *)pa);
                    cli_fail(cmd, rc, "%s failed on pair %zu", mname[k], q);
                    goto done;
                }
                A[k].secs += gl_now() - t0;
                glocal_pair_metrics pm;
                if ((rc = glocal_metrics_pair(Hh, P.homography + 9 * q, tg, P.global_flow + q * 2 * hw,
                                              tg + 2 * hw, P.local_flow + q * 2 * hw, tg + 4 * hw,
                                              P.mask + q * hw, W, H, &pm)) < 0) {
                    gl_free((void *)pa);
                    cli_fail(cmd, rc, "metrics");
                    goto done;
                }
                add(&A[k], &pm);
            }
        }
        cli_progress_update(&pr, i0 + n, NULL);
    }
    cli_progress_end(&pr, N, NULL);
    gl_free((void *)pa);
    /* What a motion-based mask can reach at all: the IoU of "true local flow
     * above 0.5 px" with the true objects (parts that barely move are lost). */
    double ceil_iou = 0;
    int ceil_n = 0;
    for (int q = 0; q < N; q++) {
        long in = 0, un = 0;
        const float *l = P.local_flow + (size_t)q * 2 * hw;
        for (size_t p = 0; p < hw; p++) {
            int g = P.mask[(size_t)q * hw + p] != 0, e = hypot(l[p], l[hw + p]) > 0.5;
            in += g && e;
            un += g || e;
        }
        if (un) { ceil_iou += (double)in / un; ceil_n++; }
    }
    ceil_iou = ceil_n ? ceil_iou / ceil_n : NAN;
    summary S[M_N];
    for (int k = 0; k < M_N; k++) S[k] = summarise(&A[k]);
    if (photos)
        printf("%d pairs, %dx%d (photos %s: corners moved within +-%.3g px = %.4g x %d, seed %ld)\n", N, W,
               H, photos, magnitude * size, magnitude, (int)size, seed);
    else
        printf("%d pairs, %dx%d (%s)\n", N, W, H, synth ? "synthetic, rendered" : dataset);
    printf("%-15s %9s %9s %7s %7s %9s %11s %9s %7s %7s %9s\n", "method", "corner", "median", "<1px",
           ">5px", "globEPE", "localEPEfg", "leakage", "IoU", "IoUall", "ms/pair");
    for (int k = 0; k < M_N; k++) {
        if (!A[k].n) continue;
        printf("%-15s %9.3f %9.3f %7.3f %7.3f %9.3f %11.3f %9.3f %7.3f %7.3f %9.2f\n", mname[k],
               S[k].mean, S[k].median, S[k].under1, S[k].over5, S[k].epe, S[k].lfg, S[k].leak, S[k].iou,
               S[k].iou_pooled, S[k].ms);
    }
    printf("mask IoU of the true local flow thresholded at 0.5 px (a motion-based mask's ceiling): %.3f\n",
           ceil_iou);
    if (json) {
        printf("{\"pairs\": %d, \"width\": %d, \"height\": %d, \"source\": \"%s\", ", N, W, H,
               synth ? "synth" : photos ? "photos" : "dataset");
        if (photos) {
            jnum(stdout, "magnitude", magnitude, 1);
            jnum(stdout, "corner_px", magnitude * size, 1);
            printf("\"seed\": %ld, ", seed);
        }
        printf("\"methods\": {");
        int first = 1;
        for (int k = 0; k < M_N; k++) {
            if (!A[k].n) continue;
            printf("%s\"%s\": {", first ? "" : ", ", mname[k]);
            first = 0;
            jnum(stdout, "corner_mean", S[k].mean, 1);
            jnum(stdout, "corner_median", S[k].median, 1);
            jnum(stdout, "corner_under_1px", S[k].under1, 1);
            jnum(stdout, "corner_over_5px", S[k].over5, 1);
            jnum(stdout, "global_epe", S[k].epe, 1);
            jnum(stdout, "local_epe_fg", S[k].lfg, 1);
            jnum(stdout, "leakage", S[k].leak, 1);
            jnum(stdout, "mask_iou", S[k].iou, 1);
            jnum(stdout, "mask_iou_pooled", S[k].iou_pooled, 1);
            jnum(stdout, "ms_per_pair", S[k].ms, 0);
            printf("}");
        }
        printf("}, ");
        jnum(stdout, "mask_iou_ceiling", ceil_iou, 0);
        printf("}\n");
    }
    code = CLI_OK;
done:
    for (int k = 0; k < M_N; k++) gl_free(A[k].corner);
    gl_free(tg);
    gl_free(zero);
    glocal_result_free(&r);
    motion_pairs_free(&P);
    glocal_model_free(&m);
    return code;
}
