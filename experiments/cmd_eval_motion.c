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
               "evaluate GLOCAL motion (and TV-L1 / DIS + RANSAC) against synthetic or photo-pair ground truth")

/* Rows, in the order of the table. The flow + RANSAC baselines share one path
 * (flow_ransac_pair, flow_baselines below): another one is a row here and
 * { its row, its flow_method_fn } in flow_baselines. */
enum { M_IDENT, M_REFINE, M_TVL1, M_DIS, M_NET, M_GLOCAL, M_RESID, M_LME, M_LMER, M_N };
static const char *mname[M_N] = { "identity", "refine", "tvl1-ransac", "dis-ransac", "glocal-net", "glocal",
                                  "glocal-residual", "glocal-lme", "glocal-lme-residual" };

typedef struct {
    int n, nl, ni, nk, nglob;
    long inter, uni;
    double *corner;
    glocal_pair_metrics *pair;   /* each pair's, in the pairs' order (--per-pair) */
    double epe, lfg, leak, iou, secs;
} acc;

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void add(acc *a, const glocal_pair_metrics *pm)
{
    a->pair[a->n] = *pm;
    a->corner[a->n++] = pm->corner;
    if (!isnan(pm->global_epe)) { a->epe += pm->global_epe; a->nglob++; }
    if (!isnan(pm->local_epe_fg)) { a->lfg += pm->local_epe_fg; a->nl++; }
    if (!isnan(pm->leakage)) { a->leak += pm->leakage; a->nk++; }
    if (!isnan(pm->iou)) { a->iou += pm->iou; a->ni++; }
    a->inter += pm->inter;
    a->uni += pm->uni;
}

typedef struct {
    double mean, median, under1, over2, over5, epe, lfg, leak, iou, iou_pooled, ms;
} summary;

static summary summarise(acc *a)
{
    summary s = { NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN };
    if (!a->n) return s;
    double t = 0;
    int u = 0, o2 = 0, o = 0;
    for (int i = 0; i < a->n; i++) {
        t += a->corner[i];
        u += a->corner[i] < 1;
        o2 += a->corner[i] > 2;
        o += a->corner[i] > 5;
    }
    qsort(a->corner, a->n, sizeof(double), cmpd);
    s.mean = t / a->n;
    s.median = a->n % 2 ? a->corner[a->n / 2] : 0.5 * (a->corner[a->n / 2 - 1] + a->corner[a->n / 2]);
    s.under1 = (double)u / a->n;
    s.over2 = (double)o2 / a->n;
    s.over5 = (double)o / a->n;
    s.epe = a->nglob ? a->epe / a->nglob : NAN;
    s.lfg = a->nl ? a->lfg / a->nl : NAN;
    s.leak = a->nk ? a->leak / a->nk : NAN;
    s.iou = a->ni ? a->iou / a->ni : NAN;
    s.iou_pooled = a->uni ? (double)a->inter / a->uni : NAN;
    s.ms = 1000 * a->secs / a->n;
    return s;
}


/* The flow + RANSAC rows: { row, flow method (motion/flow.h) }. */
static const struct {
    int row;
    flow_method_fn flow;
} flow_baselines[] = {
    { M_TVL1, flow_method_tvl1 },
    { M_DIS, flow_method_dis }, /* NULL cfg: OpenCV's PRESET_MEDIUM */
};

/* Whether row k is one of flow_baselines (rows_flow's, not glocal_infer's). */
static int is_flow_row(int k)
{
    for (size_t fb = 0; fb < sizeof flow_baselines / sizeof *flow_baselines; fb++)
        if (flow_baselines[fb].row == k) return 1;
    return 0;
}

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

/* What the options set. */
typedef struct {
    const char *model, *dataset, *photos, *dhe, *per_pair;
    int synth, json, tvl1, refine, local_tvl1, local_fuse, start_dis, start_search, mask_lme;
    long max_clips, ppc, size, pairs, seed, batch, photo_side, lme_passes, net_passes, dis_starts, lme_finish, lme_coarse, lme_fine;
    double lme_repass, lme_thresh_k, lme_agree_k, lme_coarse_px, lme_support, lme_support_k, lme_flat, lme_flat_noise;
    double camera, magnitude;
} evm_options;

/* --magnitude: "1/16" or a number, in (0, 1/4]. */
static int parse_magnitude(void *ctx, const char *v, char *why, size_t n)
{
    char *end;
    double num = strtod(v, &end), den = 1;
    int ok = end != v && isfinite(num);
    if (ok && *end == '/') {
        const char *d = end + 1;
        den = strtod(d, &end);
        ok = end != d && isfinite(den);
    }
    double m = den != 0 ? num / den : -1;
    if (!ok || *end || !(m > 0 && m <= 0.25))
        return snprintf(why, n, "'%s' is not a fraction of the size in (0, 1/4] (e.g. 1/16 or 0.125)", v), -1;
    *(double *)ctx = m;
    return 0;
}

/* The option table and the checks it cannot express. Returns CLI_PARSED or
 * the exit status. */
static int parse_options(evm_options *o, int argc, char **argv)
{
    const char *cmd = "eval-motion";
    *o = (evm_options){ .tvl1 = 1, .refine = 1, .local_tvl1 = 1, .max_clips = 40, .ppc = 4, .size = 64,
                        .pairs = 200, .seed = 12345, .batch = 32, .lme_passes = 1, .lme_repass = 1.0, .start_dis = 1, .start_search = 1, .dis_starts = 2, .photo_side = 512, .camera = 1.0,
                        .magnitude = 1.0 / 16 };
    glocal_infer_options gd;
    glocal_infer_options_default(&gd);
    o->lme_agree_k = gd.lme_agree_k;
    o->net_passes = gd.net_passes;
    o->local_fuse = gd.local_fuse;
    o->lme_finish = gd.lme_finish;
    o->lme_coarse = gd.lme_coarse;
    o->lme_coarse_px = gd.lme_coarse_px;
    o->lme_fine = gd.lme_fine;
    o->lme_support = gd.lme_support;
    o->lme_support_k = gd.lme_support_k;
    o->lme_flat = gd.lme_flat;
    o->lme_flat_noise = gd.lme_flat_noise;
    o->lme_thresh_k = gd.lme_thresh_k;
    cli_opt opts[] = {
        CLI_STR("--model", &o->model, "M", "a checkpoint from glocal train-motion (without it: the baselines)"),
        CLI_SECTION("Synthetic clips"),
        CLI_STR("--dataset", &o->dataset, "DIR",
                "a folder written by glocal synth: test-list clips, their videos and _gt.h5 ground truth"),
        CLI_NUM("--max-clips", &o->max_clips, 1, 1000000, "N", "clips of the test list to use"),
        CLI_NUM("--pairs-per-clip", &o->ppc, 1, 10000, "K", "pairs (t, t+1) per clip, spread over it"),
        CLI_SECTION("Synthetic pairs rendered in memory (no video coding)"),
        CLI_FLAG("--synth", &o->synth, "render the pairs of --size, --camera, --pairs and --seed"),
        CLI_NUM("--camera", &o->camera, -INFINITY, INFINITY, "C", "camera strength, corners move C*S/16 px"),
        CLI_SECTION("Pairs cut from photos (--size, --pairs and --seed too)"),
        CLI_STR("--photos", &o->photos, "DIR",
                "the photos of DIR (a folder or a list file; e.g. DIR/test of scripts/photos): a random "
                "crop, its corners moved within +-magnitude x S (HomographyNet), 1-2 patches of other photos "
                "moving on their own over 10-25 % of the frame; exact ground truth"),
        CLI_CALL("--magnitude", parse_magnitude, &o->magnitude, "F",
                 "corner displacement as a fraction of S: 1/16 or 1/8, or a number in (0, 1/4]; the "
                 "patches' own motion is F x S / 4 .. F x S", .def = "1/16"),
        CLI_NUM("--photo-side", &o->photo_side, 16, 8192, "N",
                "photos are downscaled to a shorter side of at most N px"),
        CLI_SECTION("Pairs of --synth and --photos"),
        CLI_NUM("--size", &o->size, 16, 4096, "S", "S x S frames, even with --photos"),
        CLI_NUM("--pairs", &o->pairs, 1, 1000000, "N", "pairs"),
        CLI_NUM("--seed", &o->seed, 0, 0x7fffffffL, "X", "seed of the pairs"),
        CLI_SECTION("Methods and output"),
        CLI_NOFLAG("--no-tvl1", &o->tvl1, "skip the TV-L1 baseline (the slowest)"),
        CLI_NOFLAG("--no-refine", &o->refine, "glocal without the robust refinement"),
        CLI_NOFLAG("--lme-local", &o->local_tvl1,
                   "glocal's local flow and mask from the LME alone (default: TV-L1 fused with DIS on the aligned pair, "
                   "gated by the mask; glocal.h)"),
        CLI_NUM("--net-passes", &o->net_passes, 0, 4, "P",
                "the network's passes, each after the first on B warped by the estimate so far; 0 = the "
                "model's (2 for GME arch 2, 1 for arch 1; glocal_infer_options.net_passes)"),
        CLI_NUM("--lme-passes", &o->lme_passes, 1, 2, "P",
                "1: one LME pass on the network's alignment, its flow carried to the refined one; 2: a "
                "second pass on the refined alignment (glocal_infer_options.lme_passes)"),
        CLI_NUM("--lme-repass", &o->lme_repass, 0, 1000, "PX",
                "with one pass: a second pass for the pairs whose refinement moved a corner by more than "
                "PX pixels of the model size; 0 = never (glocal_infer_options.lme_repass)"),
        CLI_NUM("--lme-thresh-k", &o->lme_thresh_k, 0, 100, "K",
                "the LME's own flow is foreground where |flow| > K x its median (clamped to 0.1..0.5 px); "
                "0 = the hybrid's 5 (glocal_infer_options.lme_thresh_k)"),
        CLI_NUM("--lme-agree-k", &o->lme_agree_k, 0, 100, "K",
                "the hybrid's foreground also needs the LME's own flow to move: |LME flow| > K x its median "
                "(clamped to 0.1..0.5 px); 0 = TV-L1's motion alone (glocal_infer_options.lme_agree_k)"),
        CLI_NUM("--lme-finish", &o->lme_finish, 0, 1000, "N",
                "the LME's own flow (glocal-lme rows) finished by N linearisations of DIS's variational "
                "refinement on the raw pair; 0 = the network's flow as it is (glocal_infer_options.lme_finish)"),
        CLI_NUM("--lme-coarse", &o->lme_coarse, 0, 3, "L",
                "the LME's own flow (glocal-lme rows) found coarse to fine from 1/2^L of the model size; 0 = "
                "one pass at the model size (glocal_infer_options.lme_coarse)"),
        CLI_NUM("--lme-coarse-px", &o->lme_coarse_px, 0, 1000, "PX",
                "... kept where the coarser levels' flow moves more than PX model pixels, the single pass "
                "elsewhere (glocal_infer_options.lme_coarse_px)"),
        CLI_NUM("--lme-fine", &o->lme_fine, 0, 2, "L",
                "... and on up to L levels above the model size (2x, 4x) where the input is that large; 0 = "
                "none (glocal_infer_options.lme_fine)"),
        CLI_NUM("--lme-support", &o->lme_support, 0, 0.999, "G",
                "the LME's own finished flow is foreground evidence only where it removes at least G of the "
                "aligned pair's 7x7 residual, or that residual is above K x its median; 0 = off "
                "(glocal_infer_options.lme_support)"),
        CLI_NUM("--lme-support-k", &o->lme_support_k, 0, 1000, "K",
                "... K (glocal_infer_options.lme_support_k)"),
        CLI_NUM("--lme-flat", &o->lme_flat, 0, 1000, "F",
                "... and, where the pair's still flat background (7x7 mean |grad A| below F grey levels a "
                "pixel) differs by more than N grey levels after alignment, flat windows are no evidence; 0 = "
                "off (glocal_infer_options.lme_flat)"),
        CLI_NUM("--lme-flat-noise", &o->lme_flat_noise, 0, 255, "N",
                "... N (glocal_infer_options.lme_flat_noise)"),
        CLI_NOFLAG("--no-fuse", &o->local_fuse, "the hybrid's local flow is TV-L1's alone, not fused with DIS's "
                   "(glocal_infer_options.local_fuse 0)"),
        CLI_FLAG("--mask-lme", &o->mask_lme, "the LME's mask >= 0.5 is foreground evidence too, beside the motion "
                 "(before 2026-12-03; glocal_infer_options.mask_lme)"),
        CLI_NUM("--start-dis", &o->dis_starts, 0, 2, "N",
                "glocal's refinement also from N DIS + RANSAC homographies: 1, or 2 (the default) with a second fit "
                "to the vectors the first leaves out when it explains under half the frame; 0 = --no-start-dis "
                "(glocal_infer_options.start_dis)"),
        CLI_NOFLAG("--no-start-dis", &o->start_dis, "the same as --start-dis 0: glocal's refinement from the network's start "
                   "alone (default: also from DIS + RANSAC homographies, the result most pixels agree with wins)"),
        CLI_NOFLAG("--no-start-search", &o->start_search, "glocal's refinement not also from the block-matching "
                   "search's homography (glocal_infer_options.start_search 0)"),
        CLI_NUM("--batch", &o->batch, 1, 4096, "B", "pairs per network batch"),
        CLI_FLAG("--json", &o->json, "print one JSON object with every number as the last line"),
        CLI_STR("--per-pair", &o->per_pair, "CSV",
                "also write every pair's numbers, one row per pair and method: pair, method, corner,\n"
                "global_epe, local_epe_fg, leakage, mask_iou (empty where a method has none), bg_texture\n"
                "(the pair's share of textured background: empty without ground truth)"),
        CLI_STR("--dhe", &o->dhe, "DIR", "glocal eval-dhe DIR with the other options: the CA-UDHN homography "
                "benchmark, real videos"),
        CLI_END,
    };
    cli_spec spec = {
        .cmd = cmd, .opts = opts,
        .usage = "[--model M] (--dataset SYNTH_DIR | --synth | --photos DIR) [options]\n"
                 "--dhe DIR [options]   (= glocal eval-dhe DIR)",
        .about = "Measures, per method, against the ground truth of the synthetic benchmark\n"
                 "(datasets/synth.h) or of pairs cut from photographs (datasets/photo_pairs.h): the\n"
                 "4-corner error of the homography (px; mean, median, the fraction of pairs under 1 px,\n"
                 "over 2 px and over 5 px), the global-flow EPE, the local-flow EPE on foreground pixels,\n"
                 "the background leakage (mean |local flow| off the foreground) and the mask IoU\n"
                 "(IoU: mean over pairs; IoUall: pixels pooled over all pairs).\n"
                 "Methods: identity (H = I, no local flow: the size of the motion), glocal (network +\n"
                 "robust refinement + LME), glocal-residual (the same, its local flow before the\n"
                 "mask), glocal-lme and glocal-lme-residual (for models whose LME learned a local\n"
                 "flow, lme_arch 2: the LME's own flow instead of TV-L1's), glocal-net (the network's DLT homography alone), refine (robust refinement\n"
                 "from the identity, no network), tvl1-ransac (TV-L1 flow, RANSAC homography;\n"
                 "local = flow minus homography, mask = RANSAC outliers) and dis-ransac (the same\n"
                 "with DIS flow, OpenCV's medium preset).\n",
    };
    int rc = cli_parse(&spec, argc, argv);
    if (rc != CLI_PARSED) return rc;
    if (!o->synth + !o->dataset + !o->photos != 2)
        return cli_usage_error(cmd, "give one of --dataset SYNTH_DIR, --synth and --photos DIR");
    if (o->photos && (o->size & 1)) return cli_usage_error(cmd, "--size must be even with --photos, got %ld", o->size);
    return o->per_pair ? cli_output_writable(cmd, "--per-pair", o->per_pair) : CLI_PARSED;
}

/* The evaluation pairs of the options. */
static int load_pairs(motion_pairs *P, const evm_options *o)
{
    if (o->synth) {
        synth_config sc = synth_config_default();
        sc.width = sc.height = (int)o->size;
        sc.camera = o->camera;
        return motion_pairs_synth(P, &sc, (int)o->pairs, (uint64_t)o->seed);
    }
    if (o->photos) {
        photo_pairs_config pc = photo_pairs_config_benchmark((int)o->size, o->magnitude, (uint64_t)o->seed);
        return motion_pairs_photos(P, o->photos, (int)o->photo_side, &pc, (int)o->pairs);
    }
    return motion_pairs_synth_dir(P, o->dataset, (int)o->max_clips, (int)o->ppc);
}

/* One batch of pairs i0 .. i0+n-1 (pa, pb: their frames): where the method
 * ran, the output and the pairs' ground truth. */
typedef struct {
    const evm_options *o;
    glocal_model *m;
    const motion_pairs *P;
    int i0, n;
    const uint8_t **pa, **pb;
    float *tg;            /* 5 planes of W x H: a flow baseline's global, local, mask */
    const float *zero;    /* 2 planes of zeros: identity's global and local flow */
    acc *A;
} evm_batch;

static const char *cmd_name = "eval-motion";

/* The network rows (glocal, glocal-residual, glocal-net) and refine:
 * glocal_infer on the batch. Prints a failure; returns its code. */
static int rows_infer(const evm_batch *b)
{
    const int W = b->P->width, H = b->P->height;
    const size_t hw = (size_t)W * H;
    glocal_result r = { 0 };
    int rc = 0;
    /* glocal's local flow (glocal_infer_options.local_tvl1): TV-L1 on the
     * aligned pair (the hybrid, default) or, with --lme-local, the LME's; a
     * model whose LME learned a flow (lme_arch 2) also gets the LME's rows */
    const int lme2 = b->m && glocal_model_config(b->m)->lme_arch == 2;
    const int src = b->o->local_tvl1;
    for (int k = 0; k < M_N && rc == 0; k++) {
        if ((k == M_GLOCAL || k == M_RESID || k == M_NET || k == M_LME || k == M_LMER) && !b->m) continue;
        if (k == M_IDENT || is_flow_row(k) || (k == M_RESID && !src && !lme2)) continue;
        if ((k == M_LME || k == M_LMER) && (!lme2 || !src)) continue;
        glocal_infer_options o;
        glocal_infer_options_default(&o);
        o.use_network = k != M_REFINE;
        o.lme = k == M_GLOCAL || k == M_RESID || k == M_LME || k == M_LMER;
        o.refine = k == M_REFINE || (o.lme && b->o->refine);
        o.local_tvl1 = !o.lme || k == M_LME || k == M_LMER ? 0 : src;
        o.local_gate = k != M_RESID && k != M_LMER;
        o.lme_passes = (int)b->o->lme_passes;
        o.net_passes = (int)b->o->net_passes;
        o.lme_repass = b->o->lme_repass;
        o.lme_thresh_k = b->o->lme_thresh_k;
        o.lme_agree_k = b->o->lme_agree_k;
        o.local_fuse = b->o->local_fuse;
        o.lme_finish = (int)b->o->lme_finish;
        o.lme_coarse = (int)b->o->lme_coarse;
        o.lme_coarse_px = b->o->lme_coarse_px;
        o.lme_fine = (int)b->o->lme_fine;
        o.lme_support = b->o->lme_support;
        o.lme_support_k = b->o->lme_support_k;
        o.lme_flat = b->o->lme_flat;
        o.lme_flat_noise = b->o->lme_flat_noise;
        o.start_dis = k != M_REFINE && b->o->start_dis ? (int)b->o->dis_starts : 0;
        o.start_search = k != M_REFINE && b->o->start_search;
        o.mask_lme = b->o->mask_lme;
        double t0 = gl_now();
        if ((rc = glocal_infer(k == M_REFINE ? NULL : b->m, b->pa, b->pb, b->n, W, H, &o, &r)) < 0) {
            cli_fail(cmd_name, rc, "%s failed", mname[k]);
            break;
        }
        b->A[k].secs += gl_now() - t0;
        for (int j = 0; j < b->n; j++) {
            size_t q = (size_t)(b->i0 + j);
            const motion_pairs *P = b->P;
            glocal_pair_metrics pm;
            rc = glocal_metrics_pair(r.homography + 9 * j, P->homography + 9 * q, r.global_flow + j * 2 * hw,
                                     P->global_flow + q * 2 * hw, o.lme ? r.local_flow + j * 2 * hw : NULL,
                                     P->local_flow + q * 2 * hw, o.lme ? r.mask + j * hw : NULL,
                                     P->mask + q * hw, W, H, &pm);
            if (rc < 0) {
                cli_fail(cmd_name, rc, "metrics");
                break;
            }
            add(&b->A[k], &pm);
        }
        glocal_result_free(&r);
    }
    glocal_result_free(&r);
    return rc;
}

/* identity: H = I, global and local flow 0, no mask. */
static int row_identity(const evm_batch *b)
{
    const motion_pairs *P = b->P;
    const int W = P->width, H = P->height;
    const size_t hw = (size_t)W * H;
    const double I[9] = { 1, 0, 0, 0, 1, 0, 0, 0, 1 };
    for (int j = 0; j < b->n; j++) {
        size_t q = (size_t)(b->i0 + j);
        glocal_pair_metrics pm;
        int rc = glocal_metrics_pair(I, P->homography + 9 * q, b->zero, P->global_flow + q * 2 * hw, b->zero,
                                     P->local_flow + q * 2 * hw, NULL, P->mask + q * hw, W, H, &pm);
        if (rc < 0) return cli_fail(cmd_name, rc, "metrics"), rc;
        add(&b->A[M_IDENT], &pm);
    }
    return 0;
}

/* The flow + RANSAC rows, pair by pair. */
static int rows_flow(const evm_batch *b)
{
    const motion_pairs *P = b->P;
    const int W = P->width, H = P->height;
    const size_t hw = (size_t)W * H;
    float *tg = b->tg;
    for (size_t fb = 0; fb < sizeof flow_baselines / sizeof *flow_baselines; fb++) {
        int k = flow_baselines[fb].row;
        if (k == M_TVL1 && !b->o->tvl1) continue;
        for (int j = 0; j < b->n; j++) {
            size_t q = (size_t)(b->i0 + j);
            double Hh[9], t0 = gl_now();
            int rc = flow_ransac_pair(flow_baselines[fb].flow, b->pa[j], b->pb[j], W, H, Hh, tg, tg + 2 * hw,
                                      tg + 4 * hw);
            if (rc < 0) return cli_fail(cmd_name, rc, "%s failed on pair %zu", mname[k], q), rc;
            b->A[k].secs += gl_now() - t0;
            glocal_pair_metrics pm;
            if ((rc = glocal_metrics_pair(Hh, P->homography + 9 * q, tg, P->global_flow + q * 2 * hw, tg + 2 * hw,
                                          P->local_flow + q * 2 * hw, tg + 4 * hw, P->mask + q * hw, W, H,
                                          &pm)) < 0)
                return cli_fail(cmd_name, rc, "metrics"), rc;
            add(&b->A[k], &pm);
        }
    }
    return 0;
}

/* Every method on every pair, a batch at a time, with a progress line.
 * Prints a failure; returns its code. */
static int evaluate(const evm_options *o, glocal_model *m, const motion_pairs *P, acc *A)
{
    const int N = P->n, batch = (int)o->batch;
    const size_t hw = (size_t)P->width * P->height;
    float *tg = gl_malloc(sizeof(float) * 5 * hw);
    float *zero = gl_calloc(2 * hw, sizeof(float));
    const uint8_t **pa = gl_malloc(sizeof *pa * 2 * (size_t)batch);
    int rc = 0;
    if (!tg || !zero || !pa) {
        rc = GL_ENOMEM;
        cli_fail(cmd_name, rc, "out of memory");
        goto done;
    }
    evm_batch b = { .o = o, .m = m, .P = P, .pa = pa, .pb = pa + batch, .tg = tg, .zero = zero, .A = A };
    cli_progress pr;
    cli_progress_start(&pr, "evaluating", N);
    for (b.i0 = 0; b.i0 < N; b.i0 += batch) {
        b.n = N - b.i0 < batch ? N - b.i0 : batch;
        for (int j = 0; j < b.n; j++) {
            pa[j] = P->a + (size_t)(b.i0 + j) * hw * 3;
            b.pb[j] = P->b + (size_t)(b.i0 + j) * hw * 3;
        }
        if ((rc = rows_infer(&b)) < 0 || (rc = row_identity(&b)) < 0 || (rc = rows_flow(&b)) < 0) goto done;
        cli_progress_update(&pr, b.i0 + b.n, NULL);
    }
    cli_progress_end(&pr, N, NULL);
done:
    gl_free((void *)pa);
    gl_free(zero);
    gl_free(tg);
    return rc;
}

/* What a motion-based mask can reach at all: the IoU of "true local flow
 * above 0.5 px" with the true objects (parts that barely move are lost). */
static double mask_iou_ceiling(const motion_pairs *P)
{
    const size_t hw = (size_t)P->width * P->height;
    double ceil_iou = 0;
    int ceil_n = 0;
    for (int q = 0; q < P->n; q++) {
        long in = 0, un = 0;
        const float *l = P->local_flow + (size_t)q * 2 * hw;
        for (size_t p = 0; p < hw; p++) {
            int g = P->mask[(size_t)q * hw + p] != 0, e = hypot(l[p], l[hw + p]) > 0.5;
            in += g && e;
            un += g || e;
        }
        if (un) { ceil_iou += (double)in / un; ceil_n++; }
    }
    return ceil_n ? ceil_iou / ceil_n : NAN;
}

/* A pair's textured background (--per-pair's bg_texture): the share of
 * frame a's inner pixels (one in from the border) that are background in
 * the true mask and whose grey gradient (BT.601 luma, central differences)
 * exceeds BG_TEXTURE levels of 255 per pixel. Where little of the frame is
 * both, the camera's motion is barely observable (a sky, a wall, a
 * gradient): the benchmark's hard pairs. NAN without a mask. */
#define BG_TEXTURE 2.0
static double bg_texture(const motion_pairs *P, int q, float *grey)
{
    const int W = P->width, H = P->height;
    if (!P->mask || W < 3 || H < 3) return NAN;
    const size_t hw = (size_t)W * H;
    const uint8_t *m = P->mask + q * hw;
    flow_gray_from_rgb24(P->a + q * hw * 3, W, H, grey);
    long tex = 0;
    for (int y = 1; y < H - 1; y++)
        for (int x = 1; x < W - 1; x++) {
            const size_t p = (size_t)y * W + x;
            const double gx = 0.5 * (grey[p + 1] - grey[p - 1]), gy = 0.5 * (grey[p + W] - grey[p - W]);
            tex += !m[p] && gx * gx + gy * gy > BG_TEXTURE * BG_TEXTURE;
        }
    return (double)tex / ((double)(W - 2) * (H - 2));
}

/* --per-pair: one CSV row per pair and method, written atomically. Prints a
 * failure; returns its code. */
static int write_per_pair(const char *path, const motion_pairs *P, const acc *A)
{
    char *buf = NULL;
    size_t len = 0;
    double *tex = gl_malloc(sizeof(double) * (P->n > 0 ? P->n : 1));
    float *grey = gl_malloc(sizeof(float) * P->width * P->height);
    FILE *f = tex && grey ? open_memstream(&buf, &len) : NULL;
    if (!f) {
        gl_free(tex);
        gl_free(grey);
        return cli_fail(cmd_name, GL_ENOMEM, "out of memory"), GL_ENOMEM;
    }
    for (int q = 0; q < P->n; q++) tex[q] = bg_texture(P, q, grey);
    fprintf(f, "pair,method,corner,global_epe,local_epe_fg,leakage,mask_iou,bg_texture\n");
    for (int k = 0; k < M_N; k++)
        for (int i = 0; i < A[k].n; i++) {
            const glocal_pair_metrics *pm = &A[k].pair[i];
            const double v[6] = { pm->corner, pm->global_epe, pm->local_epe_fg, pm->leakage, pm->iou,
                                  i < P->n ? tex[i] : NAN };
            fprintf(f, "%d,%s", i, mname[k]);
            for (int j = 0; j < 6; j++) isnan(v[j]) ? fputs(",", f) : fprintf(f, ",%.6g", v[j]);
            fputc('\n', f);
        }
    gl_free(tex);
    gl_free(grey);
    int rc = fclose(f) ? GL_ENOMEM : 0;
    if (rc == 0 && (rc = gl_write_file_atomic(path, buf, len)) < 0) cli_fail(cmd_name, rc, "cannot write %s", path);
    else if (rc < 0) cli_fail(cmd_name, rc, "out of memory");
    free(buf);
    return rc;
}

/* The table, and with --json the JSON line. */
static void print_results(const evm_options *o, const motion_pairs *P, acc *A, double ceil_iou)
{
    const int N = P->n, W = P->width, H = P->height;
    summary S[M_N];
    for (int k = 0; k < M_N; k++) S[k] = summarise(&A[k]);
    if (o->photos)
        printf("%d pairs, %dx%d (photos %s: corners moved within +-%.3g px = %.4g x %d, seed %ld)\n", N, W,
               H, o->photos, o->magnitude * o->size, o->magnitude, (int)o->size, o->seed);
    else
        printf("%d pairs, %dx%d (%s)\n", N, W, H, o->synth ? "synthetic, rendered" : o->dataset);
    printf("%-15s %9s %9s %7s %7s %7s %9s %11s %9s %7s %7s %9s\n", "method", "corner", "median", "<1px",
           ">2px", ">5px", "globEPE", "localEPEfg", "leakage", "IoU", "IoUall", "ms/pair");
    for (int k = 0; k < M_N; k++) {
        if (!A[k].n) continue;
        printf("%-15s %9.3f %9.3f %7.3f %7.3f %7.3f %9.3f %11.3f %9.3f %7.3f %7.3f %9.2f\n", mname[k],
               S[k].mean, S[k].median, S[k].under1, S[k].over2, S[k].over5, S[k].epe, S[k].lfg, S[k].leak, S[k].iou,
               S[k].iou_pooled, S[k].ms);
    }
    printf("mask IoU of the true local flow thresholded at 0.5 px (a motion-based mask's ceiling): %.3f\n",
           ceil_iou);
    if (!o->json) return;
    printf("{\"pairs\": %d, \"width\": %d, \"height\": %d, \"source\": \"%s\", ", N, W, H,
           o->synth ? "synth" : o->photos ? "photos" : "dataset");
    if (o->photos) {
        cli_json_num(stdout, "magnitude", o->magnitude, 1);
        cli_json_num(stdout, "corner_px", o->magnitude * o->size, 1);
        printf("\"seed\": %ld, ", o->seed);
    }
    printf("\"methods\": {");
    int first = 1;
    for (int k = 0; k < M_N; k++) {
        if (!A[k].n) continue;
        printf("%s\"%s\": {", first ? "" : ", ", mname[k]);
        first = 0;
        cli_json_num(stdout, "corner_mean", S[k].mean, 1);
        cli_json_num(stdout, "corner_median", S[k].median, 1);
        cli_json_num(stdout, "corner_under_1px", S[k].under1, 1);
        cli_json_num(stdout, "corner_over_2px", S[k].over2, 1);
        cli_json_num(stdout, "corner_over_5px", S[k].over5, 1);
        cli_json_num(stdout, "global_epe", S[k].epe, 1);
        cli_json_num(stdout, "local_epe_fg", S[k].lfg, 1);
        cli_json_num(stdout, "leakage", S[k].leak, 1);
        cli_json_num(stdout, "mask_iou", S[k].iou, 1);
        cli_json_num(stdout, "mask_iou_pooled", S[k].iou_pooled, 1);
        cli_json_num(stdout, "ms_per_pair", S[k].ms, 0);
        printf("}");
    }
    printf("}, ");
    cli_json_num(stdout, "mask_iou_ceiling", ceil_iou, 0);
    printf("}\n");
}

int cmd_eval_dhe(int argc, char **argv);

/* `eval-motion --dhe DIR ...` (or --dhe=DIR) is `eval-dhe DIR ...` with the
 * other arguments (the CA-UDHN protocol): -1 when there is no --dhe. */
static int forward_dhe(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        int eq = !strncmp(argv[i], "--dhe=", 6);
        if (!eq && (strcmp(argv[i], "--dhe") || i + 1 >= argc)) continue;
        char *av[argc + 1];
        int n = 0;
        av[n++] = "eval-dhe";
        av[n++] = eq ? argv[i] + 6 : argv[i + 1];
        for (int j = 1; j < argc; j++)
            if (j != i && (eq || j != i + 1)) av[n++] = argv[j];
        av[n] = NULL;
        return cmd_eval_dhe(n, av);
    }
    return -1;
}

int cmd_eval_motion(int argc, char **argv)
{
    const char *cmd = cmd_name;
    int code = forward_dhe(argc, argv);
    if (code >= 0) return code;
    evm_options o;
    int rc = parse_options(&o, argc, argv);
    if (rc != CLI_PARSED) return rc;
    code = CLI_FAIL;
    glocal_model *m = NULL;
    motion_pairs P = { 0 };
    acc A[M_N];
    memset(A, 0, sizeof A);
    if (o.model && (rc = glocal_model_load(&m, o.model, NULL)) < 0) {
        cli_fail(cmd, rc, "cannot load the model %s", o.model);
        goto done;
    }
    if ((rc = load_pairs(&P, &o)) < 0) {
        cli_fail(cmd, rc, "cannot load the evaluation pairs");
        goto done;
    }
    for (int k = 0; k < M_N; k++)
        if (!(A[k].corner = gl_calloc(P.n, sizeof(double))) ||
            !(A[k].pair = gl_calloc(P.n, sizeof *A[k].pair))) {
            cli_fail(cmd, GL_ENOMEM, "out of memory");
            goto done;
        }
    if (evaluate(&o, m, &P, A) < 0) goto done;
    /* the table first: a CSV that cannot be written loses it not */
    print_results(&o, &P, A, mask_iou_ceiling(&P));
    code = o.per_pair && write_per_pair(o.per_pair, &P, A) < 0 ? CLI_FAIL : CLI_OK;
done:
    for (int k = 0; k < M_N; k++) {
        gl_free(A[k].corner);
        gl_free(A[k].pair);
    }
    motion_pairs_free(&P);
    glocal_model_free(&m);
    return code;
}
