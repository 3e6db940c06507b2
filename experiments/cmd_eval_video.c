/* glocal eval-video — GLOCAL's camera motion on real video, where nothing
 * knows the truth: for each method, the photometric residual that its
 * homography leaves on the background, |A(p) - B(H p)| in grey levels
 * (glocal_align_residual). A proxy, lower is better: it also holds noise,
 * coding, blur and parallax, so no method reaches 0, and on a still camera
 * identity is already as good as it gets.
 *
 * "Background" three ways, so that no method grades itself alone: every
 * pixel; the pixels GLOCAL's own mask calls background (favours GLOCAL);
 * and the pixels where TV-L1's flow stays within --fg-threshold px of its
 * RANSAC homography (a mask of a strong flow's residual, independent of
 * GLOCAL; favours tvl1-ransac a little). A command of its own, as eval-dhe:
 * it shares no input and no metric with eval-motion's ground truth. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "experiments/cli.h"
#include "experiments/commands.h"
#include "experiments/motion_pairs.h"
#include "motion/flow.h"
#include "motion/glocal.h"

GLOCAL_COMMAND(eval_video, "eval-video",
               "GLOCAL's camera motion on real video: the background residual after alignment, per method")

enum { M_IDENT, M_REFINE, M_TVL1, M_DIS, M_NET, M_GLOCAL, M_N };
static const char *mname[M_N] = { "identity", "refine", "tvl1-ransac", "dis-ransac", "glocal-net", "glocal" };

/* The backgrounds: every pixel, GLOCAL's, TV-L1's. */
enum { K_ALL, K_GLOCAL, K_TVL1, K_N };
static const char *kname[K_N] = { "all", "glocal_bg", "tvl1_bg" };

#define MAX_VIDEOS 4096

typedef struct {
    const char *model, *per_pair, *videos[MAX_VIDEOS];
    int nvideos, json, tvl1, start_dis, start_search;
    long short_side, gap, pairs, batch, net_passes;
    double fg_threshold;
} evv_options;

/* Sums over pairs: per method and background, the residual and the pairs it
 * covers; per method the seconds; per background the share of the frame. */
typedef struct {
    double res[M_N][K_N];
    int n[M_N][K_N];
    double secs[M_N];
    int timed[M_N];
    double cover[K_N];
    int ncover[K_N];
    int pairs, worse[M_N];   /* pairs where the method's all-pixel residual exceeds identity's */
} acc;

static void acc_add(acc *t, const acc *a)
{
    for (int k = 0; k < M_N; k++) {
        for (int g = 0; g < K_N; g++) {
            t->res[k][g] += a->res[k][g];
            t->n[k][g] += a->n[k][g];
        }
        t->secs[k] += a->secs[k];
        t->timed[k] += a->timed[k];
        t->worse[k] += a->worse[k];
    }
    for (int g = 0; g < K_N; g++) {
        t->cover[g] += a->cover[g];
        t->ncover[g] += a->ncover[g];
    }
    t->pairs += a->pairs;
}

static double ratio(double s, int n) { return n ? s / n : NAN; }

static int parse_options(evv_options *o, int argc, char **argv)
{
    const char *cmd = "eval-video";
    *o = (evv_options){ .tvl1 = 1, .start_dis = 1, .start_search = 1, .short_side = 240, .gap = 1, .pairs = 20, .batch = 16,
                        .fg_threshold = 1.0 };
    glocal_infer_options gd;
    glocal_infer_options_default(&gd);
    o->net_passes = gd.net_passes;
    cli_opt opts[] = {
        CLI_STR("--model", &o->model, "M", "a checkpoint from glocal train-motion (without it: the baselines)"),
        CLI_NUM("--short-side", &o->short_side, 0, 4096, "N",
                "frames scaled so the shorter side is N px, aspect kept (0: native)"),
        CLI_NUM("--gap", &o->gap, 1, 1000, "G", "pairs (t, t + G)"),
        CLI_NUM("--pairs", &o->pairs, 1, 1000000, "K", "pairs per video, spread over it"),
        CLI_NUM("--fg-threshold", &o->fg_threshold, 0, 1000, "PX",
                "TV-L1's background: flow within PX px of its RANSAC homography"),
        CLI_NOFLAG("--no-tvl1", &o->tvl1, "skip TV-L1 (its row and its background; the slowest)"),
        CLI_NOFLAG("--no-start-dis", &o->start_dis,
                   "glocal's refinement from the network's start alone (glocal_infer_options.start_dis)"),
        CLI_NOFLAG("--no-start-search", &o->start_search, "glocal's refinement not also from the block-matching "
                   "search's homography (glocal_infer_options.start_search 0)"),
        CLI_NUM("--net-passes", &o->net_passes, 0, 4, "P",
                "the network's passes, each after the first on B warped by the estimate so far; 0 = the "
                "model's (2 for GME arch 2, 1 for arch 1; glocal_infer_options.net_passes)"),
        CLI_NUM("--batch", &o->batch, 1, 4096, "B", "pairs per network batch"),
        CLI_FLAG("--json", &o->json, "print one JSON object with every number as the last line"),
        CLI_STR("--per-pair", &o->per_pair, "CSV",
                "also write every pair's numbers, one row per pair and method: video, pair, frame (t), "
                "method, all, glocal_bg, tvl1_bg (empty where not computed), h0..h8 (the method's "
                "homography A -> B in the evaluated frames' pixels, row-major); the videos that "
                "failed are left out; written atomically"),
        CLI_END,
    };
    cli_spec spec = {
        .cmd = cmd, .opts = opts, .args = "VIDEO...", .arg = o->videos, .min_args = 1,
        .max_args = MAX_VIDEOS, .nargs = &o->nvideos,
        .about = "Real video has no ground truth. Per method, the mean |A(p) - B(H p)| (grey levels\n"
                 "0..255, BT.601 luma) over the background of each pair (t, t + G), after aligning\n"
                 "by the method's homography H; pixels H maps outside B are left out. A proxy: lower\n"
                 "is better, noise and parallax keep it above 0, and with a still camera identity\n"
                 "is already the floor. Backgrounds: all (every pixel), glocal_bg (GLOCAL's mask\n"
                 "< 0.5 where it judged: in B's view, its view_margin in; favours GLOCAL), tvl1_bg\n"
                 "(TV-L1's flow within --fg-threshold px of its RANSAC homography; independent of\n"
                 "GLOCAL). Methods as eval-motion's: identity, refine (robust refinement from the\n"
                 "identity), tvl1-ransac, dis-ransac, glocal-net (the network's homography alone)\n"
                 "and glocal. worse: the share of pairs whose all-pixel residual is above\n"
                 "identity's.",
        .epilog = "A video that cannot be read is reported and skipped; the exit status is then 1.",
    };
    int rc = cli_parse(&spec, argc, argv);
    if (rc != CLI_PARSED) return rc;
    return o->per_pair ? cli_output_writable(cmd, "--per-pair", o->per_pair) : CLI_PARSED;
}

/* One batch of a video's pairs, every method. bg: [K_N][n][hw] background
 * masks (filled here); grey: 2 frames' grey planes. */
typedef struct {
    const evv_options *o;
    glocal_model *m;
    const motion_pairs *P;
    int i0, n;
    const uint8_t **pa, **pb;
    double *H;           /* [M_N][n][9] */
    uint8_t *bg;         /* [K_N][n][hw] */
    int have[K_N];
    float *grey;
    acc *A;
    FILE *rows;          /* --per-pair: this video's rows (NULL: none) */
    const char *video;
} evv_batch;

static const char *cmd_name = "eval-video";

/* identity, refine, glocal-net, glocal: their homographies; glocal's mask. */
static int homographies_infer(evv_batch *b)
{
    const int W = b->P->width, Hh = b->P->height, n = b->n;
    const size_t hw = (size_t)W * Hh;
    for (int j = 0; j < n; j++) {
        double *h = b->H + ((size_t)M_IDENT * n + j) * 9;
        memset(h, 0, 9 * sizeof *h);
        h[0] = h[4] = h[8] = 1;
    }
    static const int rows[] = { M_REFINE, M_NET, M_GLOCAL };
    for (size_t r = 0; r < sizeof rows / sizeof *rows; r++) {
        int k = rows[r];
        if (k != M_REFINE && !b->m) continue;
        glocal_infer_options io;
        glocal_infer_options_default(&io);
        io.use_network = k != M_REFINE;
        io.net_passes = (int)b->o->net_passes;
        io.lme = k == M_GLOCAL; /* the product's mask: its evidence is the default hybrid's local flow */
        io.refine = k != M_NET;
        if (!(k == M_GLOCAL && b->o->start_dis)) io.start_dis = 0; /* else the default */
        if (!(k == M_GLOCAL && b->o->start_search)) io.start_search = 0;
        glocal_result res = { 0 };
        double t0 = gl_now();
        int rc = glocal_infer(k == M_REFINE ? NULL : b->m, b->pa, b->pb, n, W, Hh, &io, &res);
        if (rc < 0) return cli_fail(cmd_name, rc, "%s failed", mname[k]), rc;
        b->A->secs[k] += gl_now() - t0;
        b->A->timed[k] += n;
        memcpy(b->H + (size_t)k * n * 9, res.homography, sizeof(double) * 9 * n);
        if (k == M_GLOCAL) {   /* what GLOCAL judged background: its mask off, and in view */
            uint8_t *bg = b->bg + (size_t)K_GLOCAL * n * hw;
            for (int i = 0; i < n; i++) glocal_view_mask(res.homography + 9 * i, W, Hh, io.view_margin, bg + i * hw);
            for (size_t p = 0; p < (size_t)n * hw; p++) bg[p] = bg[p] && res.mask[p] < 0.5f;
            b->have[K_GLOCAL] = 1;
        }
        glocal_result_free(&res);
    }
    return 0;
}

/* tvl1-ransac and dis-ransac pair by pair; TV-L1's background. */
static int homographies_flow(evv_batch *b)
{
    const int W = b->P->width, Hh = b->P->height, n = b->n;
    const size_t hw = (size_t)W * Hh;
    flow_field g = { 0 }, l = { 0 };
    int rc;
    if ((rc = flow_field_new(&g, W, Hh)) < 0 || (rc = flow_field_new(&l, W, Hh)) < 0) goto done;
    for (int k = M_TVL1; k <= M_DIS; k++) {
        if (k == M_TVL1 && !b->o->tvl1) continue;
        flow_baseline_config c;
        flow_baseline_config_default(&c);
        c.method = k == M_TVL1 ? flow_method_tvl1 : flow_method_dis;
        for (int j = 0; j < n; j++) {
            double t0 = gl_now();
            if ((rc = flow_baseline_rgb24(b->pa[j], b->pb[j], W, Hh, &c, b->H + ((size_t)k * n + j) * 9, NULL, &g,
                                          &l)) < 0) {
                cli_fail(cmd_name, rc, "%s failed on pair %d", mname[k], b->i0 + j);
                goto done;
            }
            b->A->secs[k] += gl_now() - t0;
            b->A->timed[k]++;
            if (k != M_TVL1) continue;
            /* l = TV-L1's flow minus its homography's */
            uint8_t *bg = b->bg + ((size_t)K_TVL1 * n + j) * hw;
            for (size_t p = 0; p < hw; p++) bg[p] = hypot(l.u[p], l.v[p]) <= b->o->fg_threshold;
        }
        if (k == M_TVL1) b->have[K_TVL1] = 1;
    }
done:
    flow_field_free(&g);
    flow_field_free(&l);
    return rc;
}

/* Every residual of the batch. */
static int residuals(evv_batch *b)
{
    const int W = b->P->width, Hh = b->P->height, n = b->n;
    const size_t hw = (size_t)W * Hh;
    for (int j = 0; j < n; j++) {
        int rc;
        if ((rc = flow_gray_from_rgb24(b->pa[j], W, Hh, b->grey)) < 0 ||
            (rc = flow_gray_from_rgb24(b->pb[j], W, Hh, b->grey + hw)) < 0)
            return cli_fail(cmd_name, rc, "grey"), rc;
        double ident_all = NAN, row[M_N][K_N];
        for (int k = 0; k < M_N; k++)
            for (int g = 0; g < K_N; g++) row[k][g] = NAN;
        for (int k = 0; k < M_N; k++) {
            if (!b->A->timed[k] && k != M_IDENT) continue;
            for (int g = 0; g < K_N; g++) {
                if (g != K_ALL && !b->have[g]) continue;
                const uint8_t *keep = g == K_ALL ? NULL : b->bg + ((size_t)g * n + j) * hw;
                double r;
                if ((rc = glocal_align_residual(b->grey, b->grey + hw, W, Hh, b->H + ((size_t)k * n + j) * 9, keep,
                                                &r, NULL)) < 0)
                    return cli_fail(cmd_name, rc, "%s: residual of pair %d", mname[k], b->i0 + j), rc;
                if (isnan(r)) continue;   /* nothing of this background inside B */
                row[k][g] = r;
                b->A->res[k][g] += r;
                b->A->n[k][g]++;
                if (g != K_ALL) continue;
                if (k == M_IDENT) ident_all = r;
                else b->A->worse[k] += r > ident_all;
            }
        }
        for (int k = 0; b->rows && k < M_N; k++) {
            if (!b->A->timed[k] && k != M_IDENT) continue;
            cli_csv_str(b->rows, b->video);
            fprintf(b->rows, ",%d,%ld,%s", b->i0 + j, b->P->frame ? b->P->frame[b->i0 + j] : -1L, mname[k]);
            for (int g = 0; g < K_N; g++) isnan(row[k][g]) ? fputs(",", b->rows) : fprintf(b->rows, ",%.6g", row[k][g]);
            const double *h = b->H + ((size_t)k * n + j) * 9;
            for (int i = 0; i < 9; i++) fprintf(b->rows, ",%.10g", h[i]);
            fputc('\n', b->rows);
        }
        for (int g = 0; g < K_N; g++) {
            if (g == K_ALL || !b->have[g]) continue;
            long c = 0;
            const uint8_t *keep = b->bg + ((size_t)g * n + j) * hw;
            for (size_t p = 0; p < hw; p++) c += keep[p] != 0;
            b->A->cover[g] += (double)c / hw;
            b->A->ncover[g]++;
        }
    }
    b->A->pairs += n;
    return 0;
}

/* Every method on every pair of P, a batch at a time, into *A. */
static int evaluate(const evv_options *o, glocal_model *m, const motion_pairs *P, const char *video, FILE *rows,
                    acc *A)
{
    const int N = P->n, batch = (int)o->batch;
    const size_t hw = (size_t)P->width * P->height;
    evv_batch b = { .o = o, .m = m, .P = P, .A = A, .rows = rows, .video = video };
    b.pa = gl_malloc(sizeof *b.pa * 2 * (size_t)batch);
    b.H = gl_malloc(sizeof(double) * 9 * M_N * (size_t)batch);
    b.bg = gl_malloc((size_t)K_N * batch * hw);
    b.grey = gl_malloc(sizeof(float) * 2 * hw);
    int rc = 0;
    if (!b.pa || !b.H || !b.bg || !b.grey) {
        rc = GL_ENOMEM;
        cli_fail(cmd_name, rc, "out of memory");
        goto done;
    }
    b.pb = b.pa + batch;
    for (b.i0 = 0; b.i0 < N; b.i0 += batch) {
        b.n = N - b.i0 < batch ? N - b.i0 : batch;
        for (int j = 0; j < b.n; j++) {
            b.pa[j] = P->a + (size_t)(b.i0 + j) * hw * 3;
            b.pb[j] = P->b + (size_t)(b.i0 + j) * hw * 3;
        }
        if ((rc = homographies_infer(&b)) < 0 || (rc = homographies_flow(&b)) < 0 || (rc = residuals(&b)) < 0)
            goto done;
    }
done:
    gl_free(b.grey);
    gl_free(b.bg);
    gl_free(b.H);
    gl_free((void *)b.pa);
    return rc;
}

static void print_table(const char *title, const acc *a)
{
    printf("%s\n", title);
    printf("%-12s %9s %10s %9s %7s %9s\n", "method", "all", "glocal_bg", "tvl1_bg", "worse", "ms/pair");
    for (int k = 0; k < M_N; k++) {
        if (k != M_IDENT && !a->timed[k]) continue;
        printf("%-12s", mname[k]);
        for (int g = 0; g < K_N; g++) {
            double v = ratio(a->res[k][g], a->n[k][g]);
            if (isnan(v)) printf(" %*s", g == K_GLOCAL ? 10 : 9, "-");
            else printf(" %*.3f", g == K_GLOCAL ? 10 : 9, v);
        }
        if (k == M_IDENT) printf(" %7s %9s\n", "-", "-");
        else printf(" %7.3f %9.2f\n", ratio(a->worse[k], a->pairs), 1000 * ratio(a->secs[k], a->timed[k]));
    }
    for (int g = K_GLOCAL; g < K_N; g++)
        if (a->ncover[g]) printf("%s share of the frame: %.3f\n", kname[g], ratio(a->cover[g], a->ncover[g]));
}

static void json_acc(const acc *a)
{
    printf("{\"pairs\": %d, \"methods\": {", a->pairs);
    int first = 1;
    for (int k = 0; k < M_N; k++) {
        if (k != M_IDENT && !a->timed[k]) continue;
        printf("%s\"%s\": {", first ? "" : ", ", mname[k]);
        first = 0;
        for (int g = 0; g < K_N; g++) cli_json_num(stdout, kname[g], ratio(a->res[k][g], a->n[k][g]), 1);
        cli_json_num(stdout, "worse_than_identity", k == M_IDENT ? NAN : ratio(a->worse[k], a->pairs), 1);
        cli_json_num(stdout, "ms_per_pair", k == M_IDENT ? NAN : 1000 * ratio(a->secs[k], a->timed[k]), 0);
        printf("}");
    }
    printf("}, ");
    cli_json_num(stdout, "glocal_bg_share", ratio(a->cover[K_GLOCAL], a->ncover[K_GLOCAL]), 1);
    cli_json_num(stdout, "tvl1_bg_share", ratio(a->cover[K_TVL1], a->ncover[K_TVL1]), 0);
    printf("}");
}

int cmd_eval_video(int argc, char **argv)
{
    const char *cmd = cmd_name;
    evv_options o;
    int rc = parse_options(&o, argc, argv);
    if (rc != CLI_PARSED) return rc;
    int code = CLI_FAIL, failed = 0;
    glocal_model *m = NULL;
    acc total = { 0 };
    /* --per-pair: every video's rows, then one atomic write */
    char *csv = NULL;
    size_t csv_len = 0;
    FILE *all_rows = NULL;
    acc *per = gl_calloc((size_t)o.nvideos, sizeof *per);
    if (!per) {
        cli_fail(cmd, GL_ENOMEM, "out of memory");
        return CLI_FAIL;
    }
    if (o.model && (rc = glocal_model_load(&m, o.model, NULL)) < 0) {
        cli_fail(cmd, rc, "cannot load the model %s", o.model);
        goto done;
    }
    if (o.per_pair) {
        if (!(all_rows = open_memstream(&csv, &csv_len))) {
            cli_fail(cmd, GL_ENOMEM, "out of memory");
            goto done;
        }
        fputs("video,pair,frame,method,all,glocal_bg,tvl1_bg,h0,h1,h2,h3,h4,h5,h6,h7,h8\n", all_rows);
    }
    for (int v = 0; v < o.nvideos; v++) {
        motion_pairs P = { 0 };
        if ((rc = motion_pairs_video(&P, o.videos[v], (int)o.short_side, (int)o.gap, (int)o.pairs)) < 0) {
            cli_fail(cmd, rc, "%s: skipped", o.videos[v]);
            failed++;
            continue;
        }
        fprintf(stderr, "%s: %d pairs of %dx%d\n", o.videos[v], P.n, P.width, P.height);
        /* this video's rows join the file only when it is evaluated whole */
        char *vcsv = NULL;
        size_t vlen = 0;
        FILE *rows = all_rows ? open_memstream(&vcsv, &vlen) : NULL;
        rc = all_rows && !rows ? GL_ENOMEM : evaluate(&o, m, &P, o.videos[v], rows, &per[v]);
        const int rows_lost = (all_rows && !rows) || (rows && fclose(rows) != 0 && rc >= 0);
        if (rows_lost) {
            rc = GL_ENOMEM;
            cli_fail(cmd, rc, "%s: out of memory for its --per-pair rows", o.videos[v]);
        }
        if (rc >= 0 && vcsv) fwrite(vcsv, 1, vlen, all_rows);
        free(vcsv);
        char title[4200];
        snprintf(title, sizeof title, "%s: %d pairs (t, t+%ld), %dx%d", o.videos[v], P.n, o.gap, P.width, P.height);
        motion_pairs_free(&P);
        if (rc < 0) {
            fprintf(stderr, "glocal eval-video: %s: skipped\n", o.videos[v]);
            memset(&per[v], 0, sizeof per[v]);
            failed++;
            continue;
        }
        print_table(title, &per[v]);
        printf("\n");
        acc_add(&total, &per[v]);
    }
    if (o.nvideos - failed > 1) print_table("all videos (mean over pairs)", &total);
    if (failed)
        fprintf(stderr, "glocal eval-video: %d of %d video(s) failed (above); the tables leave them out\n", failed,
                o.nvideos);
    if (o.json) {
        printf("{\"gap\": %ld, \"short_side\": %ld, ", o.gap, o.short_side);
        cli_json_num(stdout, "fg_threshold", o.fg_threshold, 1);
        printf("\"failed\": %d, \"videos\": [", failed);
        int first = 1;
        for (int v = 0; v < o.nvideos; v++) {
            if (!per[v].pairs) continue;
            printf("%s{\"path\": ", first ? "" : ", ");
            cli_json_str(stdout, o.videos[v]);
            printf(", \"result\": ");
            json_acc(&per[v]);
            printf("}");
            first = 0;
        }
        printf("], \"all\": ");
        json_acc(&total);
        printf("}\n");
    }
    code = failed ? CLI_FAIL : CLI_OK;
    if (all_rows) {
        rc = fclose(all_rows) ? GL_ENOMEM : 0;
        all_rows = NULL;
        if (rc == 0) rc = gl_write_file_atomic(o.per_pair, csv, csv_len);
        if (rc < 0) code = cli_fail(cmd, rc, "cannot write %s", o.per_pair);
    }
done:
    if (all_rows) fclose(all_rows);
    free(csv);
    gl_free(per);
    glocal_model_free(&m);
    return code;
}
