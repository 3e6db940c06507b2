/*
 * glocal.h — GLOCAL: self-supervised global (camera) and local (object)
 * motion between two frames (Zheng et al. 2024), reconstructed from the paper
 * with the changes the measurements asked for (results/motion/report.md,
 * README.md "GLOCAL's motion against ground truth").
 *
 * Pipeline for a pair (A, B), both resized to the model size S x S:
 *   GME  a shared conv encoder on both grey frames (1/4 resolution), a
 *        +-R correlation (cost) volume plus coordinate channels (so position
 *        is not pooled away), a strided conv "implicit bottleneck", then a
 *        dense "explicit bottleneck" to 8 coefficients c_k (scaled by
 *        coef_scale: the normalised bases need c ~ 5-20). Global flow
 *        g = sum_k c_k B_k over the homography flow bases (BasesHomo, Ye et al.
 *        ICCV 2021). Refined `iters` times with shared weights: warp B by g,
 *        estimate the residual coefficients, add (Nguyen et al. 2018 /
 *        Zhang et al. 2020 style iterative residual estimation).
 *        Arch 2 (glocal_gme2.c) runs twice by default
 *        (glocal_infer_options.net_passes): the second time on B warped by
 *        the first estimate, the two composed.
 *   H    the exact 3x3 homography is the normalised DLT fit of g (Hartley &
 *        Zisserman alg. 4.2) — reading corners off the first-order basis flow
 *        is biased (0.73 px at 128^2, measured on the first prototype), the
 *        DLT is not.
 *   RR   robust refinement (classical): inverse-compositional Gauss-Newton
 *        over the 8 homography parameters (Baker & Matthews 2004, sec. 3.2),
 *        coarse-to-fine, Cauchy IRLS weights, Levenberg-Marquardt damping,
 *        background weights (1 - mask). Starts from the network's H and
 *        (glocal_infer_options.start_dis, default) also from DIS + RANSAC's,
 *        and from block matching + RANSAC over a wide window (start_search,
 *        default), keeping the result most pixels agree with.
 *   LME  an attention U-Net (Oktay et al. 2018: additive attention gates on
 *        the skips) over A, B aligned by H, and their difference.
 *        lme_arch 2 (the default): a flow head and a mask head. The flow is
 *        predicted coarse to fine (1/8, 1/4 for context; at 1/2 a correction
 *        to the soft argmax of a +-3 px correlation of learned features of A
 *        and aligned B, as the GME's arch 2 does; at 1 a last correction) and
 *        trained on every pixel; the mask gates it at inference. Without the
 *        explicit match the U-Net did not learn the objects' motion within CPU
 *        budgets (tests/test_glocal_lme.c's setting, 300 steps with a TV-L1
 *        teacher: held-out object EPE 1.12 px, zero flow's 1.12; with it 0.53).
 *        Where the LME's flow is the output it runs coarse to fine (at half
 *        the model size first: glocal_infer_options.lme_coarse) and is
 *        finished by a variational refinement on the raw pair (lme_finish).
 *        lme_arch 1 (older checkpoints): the local flow is attention *
 *        lme_scale * tanh(raw), which never learned (the flow gets gradient
 *        only where the mask is on); their local flow is TV-L1 on the aligned
 *        pair, gated by the mask (glocal_infer_options.local_tvl1, the hybrid).
 *   mixed flow = global + local.
 *
 * Losses (all self-supervised, on grey frames in [0, 1]):
 *   global  multi-scale Charbonnier |A - B(p + g)| (Sun et al. 2014), weighted
 *           by the detached background 1 - mask once the mask is on;
 *   local   lme_arch 2: at every level of the local flow (upsampled to S),
 *           Charbonnier + census of |A - B(p + g + l)| on every pixel (g the
 *           detached global flow), the coarser levels at half the weight of
 *           the next finer; with a teacher (a classical flow of the pair
 *           computed by the caller, never ground truth) also Charbonnier of l
 *           against its local part (teacher - g) where the teacher is
 *           confident; edge-aware smoothness of l (first order,
 *           exp(-alpha |grad A|)); sparsity (mean mask). lme_arch 1: one level,
 *           Charbonnier only.
 *   mask    binary cross-entropy to a detached, residual-relative target:
 *           a pixel is foreground where the aligned residual (blurred) exceeds
 *           tau = tau0 + k * median residual (relative to the median residual, so
 *           the target does not collapse as the residuals shrink).
 *
 * Units: flows are in pixels of the frames given (input-pixel units), channel
 * 0 = x (right), 1 = y (down), forward: B(p + f(p)) ~ A(p). Homographies are
 * 3x3 row-major doubles mapping a pixel of A to B, pixel centres at integers
 * (as motion/flow.h).
 *
 * Ownership: glocal_model_new/_free; the model owns its parameter table.
 * glocal_result_alloc/_free own the output arrays. Every other buffer is the
 * caller's; nothing keeps a pointer after returning.
 *
 * Errors: negative GL_E* codes with a message (gl_last_error()); nothing here
 * prints. The nn/ runtime must be initialised (nn_runtime_init) first.
 */
#ifndef GLOCAL_MOTION_GLOCAL_H
#define GLOCAL_MOTION_GLOCAL_H

#include <stdint.h>

#include "nn/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GLOCAL_NBASES 8
/* Upper bound on the global estimates one forward pass records (glocal_outputs). */
#define GLOCAL_MAX_STAGES 12

/* ---- homography flow bases (pure C) ------------------------------------------ */

/* BasesHomo for a width x height grid: bases[k][c][y][x] (8 x 2 x H x W
 * floats), k = translation x, y; shear x, y; scale x, y; perspective (x^2, xy),
 * (xy, y^2) — each the flow pi(H_k p) - p of the identity with one entry
 * perturbed by 1e-3 in centred coordinates scaled to [-1, 1] — orthonormalised
 * together (modified Gram-Schmidt = thin QR, in double) and then each divided
 * by its max |value| (so a coefficient c moves some pixel by c pixels). */
int glocal_bases_compute(int width, int height, float *bases);

/* flow[c][y][x] = sum_k coeffs[k] * bases[k][c][y][x]. */
void glocal_bases_combine(const float *bases, const float coeffs[GLOCAL_NBASES], int width,
                          int height, float *flow);

/* Normalised DLT fit of the homography whose flow best matches flow[2][H][W]
 * (pixels), sampled on a grid every `step` pixels (>= 1, covering the
 * borders). h[8] = 1. */
int glocal_flow_to_homography(const float *flow, int width, int height, int step, double h[9]);

/* flow[2][H][W] of a homography: H p - p. */
int glocal_homography_to_flow(const double h[9], int width, int height, float *flow);

/* Homography between two sizes of the same frames: given h on frames of
 * (w0, h0), the same motion on frames of (w1, h1) (pixel centres kept). */
void glocal_homography_rescale(const double h[9], int w0, int h0, int w1, int h1, double out[9]);

/* ---- robust refinement (pure C) ---------------------------------------------- */

typedef struct {
    int min_size;       /* coarsest pyramid level's shorter side, >= 8 px */
    int max_levels;     /* 1..8 */
    int iterations;     /* Gauss-Newton iterations per level, >= 1 */
    double sigma;       /* Gaussian pre-smoothing (px at each level), >= 0 */
    double cauchy_k;    /* Cauchy scale = cauchy_k * 1.4826 * MAD of the residual */
    double cauchy_min;  /* floor of the Cauchy scale (grey levels 0..1) */
    double lm_lambda;   /* initial Levenberg-Marquardt damping (relative) */
    double tol;         /* stop a level when the update moves no corner more than tol px */
    /* 1 (default): keep the start when the result scores worse on the finest
     * level (mean truncated |A(p) - B(h p)| over the weighted pixels h maps
     * inside B), so the refinement never makes a pair worse. */
    int guard;
    /* Rounds of the polish (0..4, default 2): with further starts
     * (glocal_refine_homography_starts), the chosen result is refined once
     * more, weighted by its own photometric inliers (finest level,
     * |A(p) - B(h p)| under 0.01 of the grey range), and kept when more
     * pixels agree with it; again from there, until a round is not kept.
     * The winner was refined with its start's weights (the network's mask, DIS's RANSAC
     * inliers), made for the start, not for where it ended. Training photos
     * (scripts/photos train, seed 777, 30 pairs at 128^2 +-8 / +-16 and
     * 256^2 +-16 / +-32, photos of at most 512 and of 1024 px; the 128^2
     * model and gme-arch2-gn2 with the 128^2 LME: 16 sets), mean
     * largest-corner error 0.932 -> 0.901 px: lower on 14 sets (128^2 +-8
     * 0.287 -> 0.202 and 0.183 -> 0.120 with the 128^2 model), 6 pairs of
     * 480 worse by over 0.05 px (two pairs with both models, 0.07 -> 0.18
     * and 0.18 -> 0.47, and two already 13 and 29 px off). A second round:
     * 0.901 -> 0.893, lower on 14 sets and equal on 2 (128^2 +-8 0.202 ->
     * 0.178), no pair worse by over 0.05 px. Each round costs a refinement (bench/README.md:
     * 5 ms per pair at 128^2). */
    int polish;
} glocal_refine_config;

void glocal_refine_config_default(glocal_refine_config *c);
int glocal_refine_config_validate(const glocal_refine_config *c);

/* Refines h (in: initial estimate, out: refined) so that B(h p) ~ A(p) for
 * grey frames a, b (width*height floats, any range; scaled internally to 0..1).
 * weights (may be NULL): per pixel of A in [0, 1] (e.g. 1 - mask). If a step
 * makes things worse at every damping, h keeps its last good value. */
int glocal_refine_homography(const float *a, const float *b, int width, int height,
                             const float *weights, const glocal_refine_config *c, double h[9]);

/* The same from several starts: h (in: the first start; out: the result)
 * and more[nmore][9], on one pyramid. h is refined as above. Each further
 * start k is refined with its own weights, more_weights + k*width*height
 * (a background that start's method found, e.g. a flow's RANSAC inliers;
 * more_weights NULL: unweighted), never h's (they may come from h's
 * alignment, wrong exactly where h is); a refinement that diverges or moves
 * a corner by more than 1/10 of the shorter side (another minimum) is
 * dropped. The candidates (h refined, each further start and its
 * refinement) compete by how many pixels agree with their alignment: the
 * mean of the shares of the frame with |A(p) - B(h p)| under 0.01 and under
 * 0.0025 of the grey range (the finer share lets a smooth background vote,
 * which stays within 0.01 under a misalignment of pixels); a later one wins
 * by half a percent of the frame; *which (may be NULL) gets the winner's start
 * (0: h's). E.g. the network's homography and a classical one: a start the
 * network got wrong is left behind.
 * flow (may be NULL): a dense flow of the pair, [2][height][width] (u then
 * v, pixels), e.g. the one a further start was fitted to. Photometric
 * agreement counts textured pixels, so a smooth background loses to a
 * textured moving patch; the flow counts area. Between a candidate and
 * the leader whose photometric scores are within a tenth of the frame of
 * each other, the one 15 % more of the flow's vectors (every 2nd pixel)
 * are within 1 px of wins, either way; but a further start that wins so
 * while its refinement stands gives way to that refinement (the flow it was
 * fitted to backs it by construction). The winner is then polished
 * (c->polish rounds: refined on its own photometric inliers, those under
 * 0.01, kept when more pixels agree).
 * search (0..GLOCAL_REFINE_SEARCH_MAX): after those, up to `search` further
 * starts from a wide search: block matching over +-0.16 of the frame, then RANSAC, and RANSAC
 * again on the blocks left out (glocal_infer_options.start_search; a and b
 * in grey levels 0..255 for it). Its matches may be a moving patch's or a
 * repeated texture's: its starts and their refinements win only by 0.05 of
 * the selection cost, never by a near-tie or the flow (which they do not come
 * from). *cost (may be NULL): the result's consensus cost, the share of
 * pixels that do not agree with its alignment within 0.01 (0..1). */
#define GLOCAL_REFINE_SEARCH_MAX 2
int glocal_refine_homography_starts(const float *a, const float *b, int width, int height,
                                    const float *weights, const glocal_refine_config *c, double h[9],
                                    const double *more, const float *more_weights, int nmore, int search,
                                    const float *flow, int *which, double *cost);

/* The photometric residual of an alignment, a proxy where no ground truth
 * exists (real video): the mean |A(p) - B(h p)| (bilinear B) over the pixels
 * p with keep[p] != 0 (keep may be NULL: every pixel) that h maps inside B,
 * in the units of a and b. *count (may be NULL) gets how many pixels it
 * covers; with none the mean is NAN. GL_EINVAL for a non-finite h or a frame
 * under 2 x 2. */
int glocal_align_residual(const float *a, const float *b, int width, int height, const double h[9],
                          const uint8_t *keep, double *mean, long *count);

/* ---- differentiable pieces (nn tensors, NCHW) --------------------------------- */

/* Backward warp: out(p) = img(p + flow(p)), bilinear, border padding
 * (align_corners: pixel centres at integer coordinates). img (N, C, H, W),
 * flow (N, 2, H, W) in pixels. */
int glocal_warp(nn_tensor **out, const nn_tensor *img, const nn_tensor *flow);

/* Weighted mean Charbonnier (sqrt(d^2 + eps^2) - eps) of a - b; weight
 * (N, 1, H, W) or NULL; divides by the weight sum (+1e-6). */
int glocal_loss_charbonnier(nn_tensor **out, const nn_tensor *a, const nn_tensor *b,
                            const nn_tensor *weight, double eps);

/* Census transform distance (Meister et al., UnFlow 2018): 3x3 census of a
 * and b (N, 1, H, W), soft Hamming distance d^2 / (0.1 + d^2) per neighbour,
 * weighted mean. */
int glocal_loss_census(nn_tensor **out, const nn_tensor *a, const nn_tensor *b,
                       const nn_tensor *weight);

/* First-order edge-aware smoothness of flow (N, 2, H, W) guided by img
 * (N, 1, H, W): mean |d flow| * exp(-alpha |d img|) over x and y. */
int glocal_loss_smooth(nn_tensor **out, const nn_tensor *flow, const nn_tensor *img,
                       double alpha);

/* ---- the model ----------------------------------------------------------------- */

typedef struct {
    /* 1: the cost volume of 1/4-resolution features with coordinates, two
     * strided convs and a dense layer to the 8 coefficients (the first
     * reconstruction). 2: a feature pyramid; at 1/8 and then 1/4 resolution a
     * cost volume drives a head that predicts a dense (mixed) flow and a
     * per-pixel weight, and the explicit bottleneck is the weighted least-
     * squares projection of that flow onto the 8 bases (differentiable, so
     * the weights learn to ignore moving objects and flat regions). Old
     * checkpoints without "arch" are 1. */
    int arch;
    int size;            /* model side S (frames are resized to S x S), multiple of 16, >= 32 */
    int feat;            /* encoder channels at 1/4 resolution */
    int radius;          /* cost-volume radius R (displacements -R..R at 1/4 res) */
    int iters;           /* GME refinement iterations (shared weights), >= 1 */
    double coef_scale;   /* multiplies the dense output: basis coefficients in pixels */
    int lme_ch;          /* LME U-Net base channels */
    double lme_scale;    /* arch 1: local flow = lme_scale * tanh(raw), pixels at S */
    /* 1: the first LME: local flow = attention * lme_scale * tanh(raw), so
     * the flow learns only where the mask is already on (it did not: object
     * EPE 3.8 px at 128^2). 2 (the default): an attention U-Net on
     * [A, B aligned, A - B aligned] whose flow head and mask head are
     * separate: the flow is predicted coarse-to-fine (1/8, 1/4, 1/2, 1, each
     * level adding a residual to the upsampled coarser one) and trained
     * everywhere; the mask gates it at inference and weights the global
     * loss. Checkpoints without "lme_arch" are 1. */
    int lme_arch;
    /* arch 2's Gauss-Newton finish on the images (glocal_gme2.c). 1 (arch-2
     * checkpoints without "gn"): one step at 1/2 and two at S, weighted by
     * the last level's learned weights x Cauchy(r / 0.25 mean |r|), the
     * weights taken once from the residual at the step's start. 2 (the
     * default): both images blurred (3x3 box), three steps at 1/2 and three
     * at S, uniform weights x Cauchy(r / 0.15 mean |r|), re-estimated three
     * times per step from the residual the step leaves (IRLS). Ignored by
     * arch 1. */
    int gn;
} glocal_config;

glocal_config glocal_config_default(int size);
int glocal_config_validate(const glocal_config *c);
/* JSON text of a config (for checkpoints) and back. */
int glocal_config_to_json(const glocal_config *c, char *buf, size_t n);
int glocal_config_from_json(const char *json, glocal_config *c);

typedef struct glocal_model glocal_model;

int glocal_model_new(glocal_model **out, const glocal_config *c);
void glocal_model_free(glocal_model **m);
const glocal_config *glocal_model_config(const glocal_model *m);
nn_params *glocal_model_params(glocal_model *m);
/* The bases as an (8, 2, S, S) tensor (borrowed). */
const nn_tensor *glocal_model_bases(const glocal_model *m);
/* Loads a checkpoint written by glocal train-motion: reads the config from
 * the file, builds the model and loads the weights. */
int glocal_model_load(glocal_model **out, const char *path, int64_t *step);

/* Copies the GME's weights (parameters "gme.*") from a checkpoint of glocal
 * train-motion into m, whose GME must have the file's shape (the same size,
 * arch, feat, radius; GL_EFORMAT naming the first difference otherwise); the
 * LME keeps its own weights (e.g. a new lme_arch trained on a trained GME).
 * Nothing is copied unless every GME tensor is in the file with its shape.
 * *copied (may be NULL): the number of tensors copied. */
int glocal_model_load_gme(glocal_model *m, const char *path, int *copied);

/* The same for the LME's weights (parameters "lme2.*", or "lme.*" for
 * lme_arch 1): lme_arch and lme_ch must be the file's; the GME keeps its
 * own (e.g. an LME trained on one GME fine-tuned on another's alignment). */
int glocal_model_load_lme(glocal_model *m, const char *path, int *copied);

/* Forward pass at the model size. a, b: (N, 1, S, S) grey in [0, 1].
 * Outputs (any may be NULL): global flow (N, 2, S, S) after every iteration
 * (glob[0..iters-1]; the last is the estimate), local flow (N, 2, S, S),
 * mask (N, 1, S, S). With `align` non-NULL ((N, 2, S, S), detached global
 * flow), LME aligns B by it instead of by the GME flow. */
typedef struct {
    nn_tensor *glob[GLOCAL_MAX_STAGES];    /* global flow after each stage; glob[nglob - 1] is the estimate */
    int nglob;
    nn_tensor *dense[GLOCAL_MAX_STAGES];   /* arch 2: each stage's dense mixed flow, (N, 2, S/k, S/k) in pixels at S */
    int ndense;
    nn_tensor *local;                      /* arch-2 LME: ungated (the mask is separate) */
    nn_tensor *mask;
    /* LME arch 2: the local flow of each level, coarse to fine (1/8, 1/4,
     * 1/2: (N, 2, S/k, S/k) in pixels at S); local is the finest. */
    nn_tensor *local_levels[GLOCAL_MAX_STAGES];
    int nlocal_levels;
} glocal_outputs;
int glocal_forward(glocal_model *m, const nn_tensor *a, const nn_tensor *b, int with_lme,
                   const nn_tensor *align, int training, glocal_outputs *out);
void glocal_outputs_free(glocal_outputs *o);

/* ---- training -------------------------------------------------------------------- */

typedef struct {
    double w_global;      /* global reconstruction */
    double w_census;      /* census term of the global loss */
    double w_local;       /* local reconstruction */
    double w_smooth;      /* local smoothness */
    double w_sparse;      /* attention sparsity */
    double w_mask;        /* mask BCE to the residual-relative target */
    double w_dense;       /* arch 2: photometric loss of each level's dense mixed flow */
    double w_teacher;     /* each level's dense flow (GME arch 2) and local flow (LME arch 2) against
                             the teacher's, where confident */
    double w_lcensus;     /* LME arch 2: census term of the local reconstruction */
    double charb_eps;     /* Charbonnier epsilon (grey 0..1) */
    double smooth_alpha;  /* edge-aware weight exp(-alpha |grad A|) */
    double tau0, tau_k;   /* mask target threshold tau0 + tau_k * median residual */
    long mask_start;      /* step from which the mask weights the global loss */
    long lme_start;       /* step from which LME and the mask are trained */
    /* 1 (default): the GME trains too. 0: the GME is fixed (run without
     * gradients, no global terms): the LME's stage on a trained GME
     * (glocal_model_load_gme). */
    int train_gme;
    /* Which pixels of A the local reconstruction compares (glocal_occlusion):
     * NONE every pixel; BORDER those whose mixed flow (global + local) stays
     * inside the frame; FB those too that pass the forward-backward test
     * against the LME's flow of the reversed pair (one more LME pass, no
     * gradient). Default NONE. */
    int occlusion;
} glocal_loss_config;

typedef enum { GLOCAL_OCC_NONE = 0, GLOCAL_OCC_BORDER = 1, GLOCAL_OCC_FB = 2 } glocal_occlusion;

glocal_loss_config glocal_loss_config_default(void);
int glocal_loss_config_validate(const glocal_loss_config *c);

typedef struct {
    double total, global, census, local, smooth, sparse, mask, dense, teacher;
    double mask_mean;     /* mean predicted mask */
} glocal_losses;

/* One loss evaluation (no optimizer step) for grey batches a, b (N, 1, S, S)
 * in [0, 1] at training step `step` (selects the stages). teacher (N, 2, S, S)
 * and its confidence tconf (N, 1, S, S) may be NULL (glocal_pair_source's
 * teacher). *loss is the scalar to back-propagate; parts (may be NULL) gets
 * the values. */
int glocal_loss(glocal_model *m, const nn_tensor *a, const nn_tensor *b, const nn_tensor *teacher,
                const nn_tensor *tconf, const glocal_loss_config *lc, long step, nn_tensor **loss,
                glocal_losses *parts);

/* The same with the LME's alignment given: align (N, 2, S, S), a global
 * flow in model pixels, aligns B for the LME and is the global flow of its
 * losses instead of the GME's own estimate. Only with train_gme = 0 (the
 * global terms would not see it). NULL: glocal_loss. */
int glocal_loss_aligned(glocal_model *m, const nn_tensor *a, const nn_tensor *b, const nn_tensor *align,
                        const nn_tensor *teacher, const nn_tensor *tconf, const glocal_loss_config *lc,
                        long step, nn_tensor **loss, glocal_losses *parts);

/* ---- the training loop (glocal_train.c) -------------------------------------------- */

/* Where training pairs come from. motion/ reads no dataset itself: the caller
 * (experiments/motion_source.c: the synthetic benchmark or a UCF-101-layout
 * dataset) holds the pairs and hands them out by index. Frames are RGB24, as
 * every source decodes them, and go through glocal_frames_to_tensor (grey,
 * area-resized to the model size) like glocal_infer's. */
typedef struct {
    long count;            /* pairs, >= 1 */
    int width, height;     /* size of every frame */
    /* Points a[i], b[i] (i < n) at the frames of pair index[i] (0 <= index[i]
     * < count): frame t and a later frame of the same scene, width*height*3
     * bytes each, borrowed until the next call. 0 or a negative GL_E* code. */
    int (*get)(void *ctx, const long *index, int n, const uint8_t **a, const uint8_t **b);
    /* Optional (NULL: none): an unsupervised teacher's dense flow of the same
     * pairs (a classical method computed by the caller, never ground truth):
     * flow[i] -> [2][H][W] pixels from frame A to B, or from B to A when
     * swap[i]; conf[i] -> [H][W] in [0, 1], where the teacher is to be
     * believed. Borrowed until the next call. Needs width = height = the
     * model size. Used by the w_teacher term (arch 2). */
    int (*teacher)(void *ctx, const long *index, const unsigned char *swap, int n,
                   const float **flow, const float **conf);
    void *ctx;
} glocal_pair_source;

typedef struct {
    glocal_loss_config loss;  /* which terms, and from which step (lme_start, mask_start) */
    nn_opt_config opt;        /* Adam, lr 1e-3 */
    long warmup_steps;        /* linear warm-up from 0.1 x lr, then constant */
    /* > 0: after the warm-up, a cosine decay from lr to lr_final that ends
     * with the run — at `steps`, or at the time budget when that comes first
     * (the fraction is the larger of (step - warmup_steps) / (steps -
     * warmup_steps) and elapsed / minutes, rank 0's clock shared by every
     * rank). 0 = constant lr. */
    double lr_final;
    /* 1: with the GME frozen (loss.train_gme = 0), the LME learns on B
     * aligned by the robust refinement (glocal_refine, unweighted) started
     * from the GME's homography — the alignment glocal_infer gives it where
     * the network is off (glocal_infer_options.lme_repass), e.g. on
     * photographs for a GME trained on the renderer. 0 (default): the GME's
     * own homography. */
    int lme_align_refine;
    double clip_grad;         /* max global gradient norm (> 0; 10) */
    long steps;               /* train until this step (a resumed run counts the checkpoint's) */
    double minutes;           /* time budget of this run; 0 = none */
    int batch_size;           /* pairs per step, over all ranks together */
    /* Batches depend on (seed, step) alone, so a resumed run sees the ones
     * it would have seen: r = gl_mix64(seed * 0x100000001B3 + step), then per
     * pair i of the batch r = gl_mix64(r), pair r % count, and (B, A) instead
     * of (A, B) when bit 40 of r is set. */
    uint64_t seed;
    /* Weights, optimizer state, step and model config, written atomically by
     * rank 0 every ckpt_every steps and at the end; NULL = none. */
    const char *checkpoint;
    long ckpt_every;
    const char *resume;       /* checkpoint to continue from (weights, optimizer state, step); NULL = fresh */
    /* JSON lines, one per log_every steps and at the last step (rank 0):
     * step, time_s, the losses (means over the ranks), grad_norm, lr,
     * pairs_per_s. Appended to on a resume; NULL = none. */
    const char *log_path;
    long log_every;
    /* Data parallelism (nn/nn.h, c10d); NULL = one process. Every rank draws
     * the same global batch and takes its batch_size / W slice; gradients are
     * averaged after backward (before clipping). In the global stage (before
     * loss.lme_start) each step is then the one a single process takes on the
     * whole batch, up to float summation order (GLOCAL has no batch norm).
     * LME's weights, unused on every rank before lme_start, leave the
     * all-reduce without a gradient, as under DDP (nn_dist_allreduce_grads),
     * so Adam starts counting their steps at lme_start, as one process does;
     * with the mask neither trained (w_mask 0) nor weighting (mask_start not
     * reached), the LME stage too is one process's step on the whole batch.
     * The mask's two terms use statistics of the batch, which stay per rank
     * as batch norm's do under DDP: the mask target's threshold (the median
     * residual) and the mask-weighted global loss (divided by the weight
     * sum). (tests/test_glocal_train_dist.c checks all three.) Every rank calls
     * glocal_train with the same config and starts from rank 0's parameters;
     * a non-finite loss, the time budget or a stop asked on any rank stops all
     * of them at the same step. Borrowed. */
    nn_dist *dist;
} glocal_train_config;

/* The settings of glocal train-motion's defaults (batch 16, 1000000 steps,
 * checkpoint every 500, log every 50, seed 1). */
glocal_train_config glocal_train_config_default(void);
/* GL_EINVAL naming the first bad field (the loss settings through
 * glocal_loss_config_validate: mask_start before lme_start is an error, not
 * raised silently). */
int glocal_train_config_validate(const glocal_train_config *c);

typedef struct {
    long step;                /* steps done, counting a resumed checkpoint's */
    long start_step, steps;   /* where this run started; where it stops */
    double elapsed_s;         /* since this run's first step */
    glocal_losses losses;     /* of this step: this rank's, or on logged steps the means over ranks */
    double grad_norm;         /* of the averaged gradient, before clipping */
    double lr;
    int logged;               /* this step went to the log */
    int saved;                /* the checkpoint was written after this step */
    int rank, world;
} glocal_train_status;

/* Called after every step on every rank (show progress where rank == 0);
 * nonzero asks to stop: every rank stops after its next forward pass, the
 * checkpoint is written and glocal_train returns GL_ECANCELED. */
typedef int (*glocal_train_callback)(void *ctx, const glocal_train_status *s);

/* Trains m on pairs from src until cfg->steps (or the time budget). m is the
 * caller's: built (glocal_model_new after nn_manual_seed) or, for a resume,
 * loaded from cfg->resume (glocal_model_load) so its config is the file's.
 * GL_ENUMERIC when the loss or its gradient stops being finite (no
 * checkpoint is written then: the last one stays good). */
int glocal_train(glocal_model *m, const glocal_pair_source *src, const glocal_train_config *cfg,
                 glocal_train_callback cb, void *cb_ctx);

/* ---- inference -------------------------------------------------------------------- */

typedef struct {
    int refine;                  /* 1: robust refinement after the network */
    glocal_refine_config rc;
    int lme;                     /* 1: compute local flow and mask */
    int use_network;             /* 0: skip GME, start the refinement from identity */
    /* The network's passes (1..4; 0, the default: the model's, 2 for a GME
     * of arch 2 and 1 for arch 1): pass k > 1 runs the GME on A
     * and B warped (at the model size, bilinear, border replicated) by the
     * homography so far and composes its estimate with it, H = H_prev H_k:
     * a cascade, for pairs the first pass leaves pixels off (its 1/8 level
     * matched far from the truth). Network alone, photo128 (results/motion),
     * training photos seed 790 (60 pairs; chosen there, on no test photo),
     * mean / median corner px, 1 -> 2 passes: 128^2 +-8 0.867 / 0.106 ->
     * 0.833 / 0.031, +-16 2.785 / 0.523 -> 2.086 / 0.058, 256^2 +-16 1.617 /
     * 0.212 -> 1.703 / 0.057, +-32 4.479 / 0.974 -> 3.202 / 0.101 (3 passes:
     * 1.691 at 128^2 +-16, 3.290 at 256^2 +-32); the renderer (seed 777,
     * 100 pairs) 0.013 -> 0.008 px; real video (results/motion/video, five
     * clips, TV-L1's background) within 0.03 grey levels either way. Arch 1
     * (the renderer-trained 128^2 model, whose GME already iterates on its
     * own warped features) got worse on every real clip with two (five
     * clips 2.63 -> 3.24 grey levels on TV-L1's background; cup 3.88 ->
     * 6.22), full GLOCAL unchanged: it keeps one. Each pass costs the
     * network's time again. test_glocal_arch2 test_net_passes. */
    int net_passes;
    /* 1 (with refine): the refinement also starts from the
     * classical DIS + RANSAC homography of the pair (flow_method_dis,
     * OpenCV's medium preset, fitted by flow_minus_homography on every 2nd
     * pixel: eval-motion's dis-ransac) and keeps the candidate most pixels
     * agree with (glocal_refine_homography_starts) — a classical fallback
     * for pairs the network starts too far from: on photographs the
     * renderer-trained network removes only a third of the camera motion.
     * Test photos, mean corner error, start_dis 0 -> 1 (DIS + RANSAC alone):
     * 128^2 +-8 px 0.97 -> 0.35 (0.93), +-16 px 3.68 -> 1.59 (2.98), 256^2
     * +-16 px 1.77 -> 0.11 (0.34), +-32 px 6.97 -> 0.13 (0.81); renderer
     * pairs unchanged (results/motion). The DIS flow also breaks near-ties
     * between the starts (glocal_refine_homography_starts' flow).
     * 2 (default): as 1, and when that fit explains under half the frame
     * (its RANSAC inliers; a large textured patch on a smooth background
     * outvotes the camera, DIS's smoothing spreading the patch's motion
     * around it) a second start, RANSAC again on the DIS vectors the first
     * left out (sequential RANSAC), if it explains at least 5 % of the
     * frame: one more start to refine. Training photos (seed 777, 30 pairs,
     * 128^2 model), mean corner error 1 -> 2: 128^2 +-16 px 1.66 -> 1.07
     * (two pairs 13.2 / 13.6 -> 4.2 / 4.8 px; > 5 px 10 % -> 3 %), the
     * other settings, the training-photo clips and the renderer unchanged
     * (the same with the second start tried on every pair).
     * test_glocal_ops test_infer_second_dis_start. 0: the network's start
     * alone. */
    int start_dis;
    /* 1 (default): up to two more starts found by search, not descent (glocal_search.c: each 12 px block of A
     * matched over +-0.16 of the frame in B, RANSAC, and RANSAC again on the
     * blocks left out), which win only by a clear margin
     * (glocal_refine_homography_starts' search): for pairs whose camera
     * moved too far in perspective for any descent to reach. Training
     * photos (128^2 +-16 px, seeds 778 / 779, 60 pairs each): mean corner
     * error 0.464 / 1.145 -> 0.187 / 0.401 px (> 2 px: 2 / 4 -> 1 / 1 pairs);
     * the training clips, 256^2 pairs and the renderer unchanged. Since
     * 2026-12-06 on every pair, not only where the other starts left more
     * than half the pixels disagreeing (glocal_refine.c SEARCH_WIN).
     * test_glocal_ops test_search_homography. 0: not. */
    int start_search;
    /* LME passes with the network and the refinement on. 1 (default): one,
     * on the pair aligned by the network's H0: its mask weights the
     * refinement and its flow l0 is carried to the refined H1 exactly,
     * l1(p) = H1^-1 H0 (p + l0(p)) - p (the LME learned on the GME's own
     * alignment, which H0 is). 2: a second pass on B aligned by H1 (twice
     * the LME's cost). Without the network (use_network = 0) the first
     * alignment is the identity and two passes are always made. */
    int lme_passes;
    /* With lme_passes = 1: a pair whose refinement moved a corner of the
     * frame by more than lme_repass pixels of the model size (from H0 to
     * H1) gets the second pass all the same — the first pass saw a pair the
     * network aligned that badly, unlike its training pairs (on photographs
     * the network's H0 is off by pixels, and the carried flow then leaks
     * onto the background). 0: never. Default 1. */
    double lme_repass;
    /* 1: only the homographies (and the global flow) are wanted — the LME
     * runs once, for the refinement's weights; no local flow (r->local_flow
     * is 0) and no mask clean-up (r->mask is not meaningful). The
     * homographies are bit-identical to a full run's. */
    int homography_only;
    /* Where the local flow comes from. 0: the LME's own flow. 1 (the
     * default): TV-L1 (motion/flow.h) between A and B aligned by the refined
     * H (the hybrid; it also runs with lme = 0, without the LME's mask). The
     * default stays the hybrid until the LME's own flow matches it
     * everywhere (today lme_arch 2 with lme_coarse and lme_finish, masked
     * object EPE against the hybrid's: ahead on the synthetic benchmark,
     * 64^2 0.32 vs 0.36, 128^2 0.30 vs 0.40, results/motion/report.md, and
     * on the test photos at 128^2 +-8 / +-16 and 256^2 +-16 px, 0.80 /
     * 2.38 / 0.88 vs 1.01 / 2.60 / 1.03; behind at 256^2 +-32, 3.38 vs
     * 3.04, results/motion/photos; its mask behind on clips textured with
     * the test photos, IoU 0.56 vs 0.67; arch-1 LMEs never learned a flow). -1: by the model: the LME's own flow where it is computed
     * (lme = 1) and learned (lme_arch 2), TV-L1 otherwise.
     * Either flow (arch 1's own flow excepted, which is attention-weighted
     * already) is then post-processed the same way: foreground evidence is
     * |flow| > t (with mask_lme, or the LME mask >= 0.5), cleaned up (below)
     * into the mask, which gates the flow (local_gate).
     * t adapts to the noise of the residual flow, whose median is set by the
     * background (most pixels): t = local_thresh_k * median |flow|, clamped
     * to [local_thresh_min, local_thresh]; local_thresh_k = 0 gives a fixed
     * t = local_thresh. (Synthetic benchmark, 64^2: mask IoU 0.46 -> 0.54 on
     * uncoded frames, unchanged on MPEG-4-coded ones, whose noise is higher.) */
    int local_tvl1;
    /* With the hybrid: 1 (default) TV-L1's local flow is fused pixel by
     * pixel with DIS's (medium preset) on the same aligned pair: each pixel
     * keeps the vector whose photometric error, summed over its 5 x 5
     * window, is lower (flow_fuse, motion/flow.h). TV-L1 loses large
     * motions of small regions (a patch moving 10-30 px), DIS fine detail
     * and thin structures. (Either way the flow of the aligned pair,
     * l_a, is then mapped into B's frame, H(p + l_a(p)) - H(p), the
     * convention of glocal_result's local flow.) The mask's evidence
     * stays TV-L1's motion (the threshold below follows TV-L1's noise,
     * in the aligned frame): the mask is the same either
     * way, the flow it gates is the fused one. 0: TV-L1 alone (before
     * 2026-12-04). Frames under 16 px on a side: TV-L1 alone. Chosen on
     * training data only (results/motion 128^2 model; training photos,
     * seed 777, 30 pairs; clips textured with the training photos;
     * renderer seeds 777.., 100 pairs, both models), object EPE of the
     * hybrid 0 -> 1: photos 128 +-8 0.801 -> 0.741, 128 +-16 2.414 ->
     * 2.133, 256 +-16 1.416 -> 1.117, 256 +-32 4.888 -> 4.035; clips 0.761
     * -> 0.761; renderer 128^2 0.473 -> 0.437, 64^2 0.395 -> 0.395;
     * leakage within +6 % (128 +-16 0.568 -> 0.601). With the evidence
     * taken from the fused flow instead the mask IoU moved by 0.003 on
     * these, but fell 0.06 on clips textured with the test photos (DIS's
     * vectors in coding noise): hence TV-L1's. Windows of 3 x 3 and 9 x 9:
     * within 1.5 % of 5 x 5. Judging each pixel's two vectors by the
     * error they give its whole window (a block-matching cost) lowered the
     * object EPE 1-7 % more but raised the leakage 6-12 %: not taken. DIS
     * alone instead of TV-L1: better on large photo motions, worse on the
     * renderer (128^2 0.568, 64^2 0.686), and its noisier flow cost
     * 0.04-0.21 of mask IoU. Costs DIS's time (about a third of TV-L1's). */
    int local_fuse;
    double local_thresh;         /* px, default 0.5 */
    double local_thresh_k;       /* default 5 */
    double local_thresh_min;     /* px, default 0.1 */
    /* local_thresh_k for the LME's own flow (lme_arch 2, local_tvl1 0 and
     * local_both's LME outputs); 0: local_thresh_k (5). The LME's flow
     * is smoother than TV-L1's (blurred object edges, slow object parts
     * under the threshold), so at 64^2 its mask misses what TV-L1's finds.
     * Renderer seeds 777.. (never trained on, not the report's 12345..),
     * results/motion models, LME masked object EPE / leakage / mask IoU at
     * k = 5 / 3.5 / 2.5: 64^2 0.445 / 0.030 / 0.534, 0.415 / 0.035 / 0.609,
     * 0.396 / 0.040 / 0.653 (the hybrid: 0.397 / 0.042 / 0.651); 128^2
     * 0.553 / 0.046 / 0.806, 0.547 / 0.053 / 0.748, 0.544 / 0.058 / 0.704
     * (the hybrid 0.472 / 0.054 / 0.789). No one k serves both sizes, so
     * the default stays. With k = 1.5 and the 64^2 LME continued without
     * its teacher (results/motion/finetune/teacher-none) the LME's flow is
     * 0.375 px against the hybrid's 0.365 on the report's held-out seeds.
     * With the finish (lme_finish) and its agreement rule, k = 5 (the old
     * default) / 2.5 / 1.5, LME object EPE / leakage / IoU on the training
     * sets: renderer 64^2 0.352 / 0.024 / 0.641, 0.329 / 0.029 / 0.692,
     * 0.327 / 0.030 / 0.687 (hybrid 0.386 / 0.034 / 0.668); 128^2 0.331 /
     * 0.034 / 0.868, 0.320 / 0.039 / 0.843, 0.319 / 0.040 / 0.837 (hybrid
     * 0.404 / 0.049 / 0.827); training-photo clips 1.009 / 0.066 / 0.654,
     * 0.996 / 0.068 / 0.671, 0.975 / 0.073 / 0.659; training photos 128
     * +-8 0.749 / 0.087 / 0.874, 0.746 / 0.097 / 0.851, 0.744 / 0.111 /
     * 0.818: 2.5 lowers the object EPE everywhere and keeps every mask at
     * or above the hybrid's on the renderer. Default 2.5 (2026-12-04; 0
     * before). */
    double lme_thresh_k;
    /* With the hybrid (TV-L1's local flow) and an LME that learned a flow
     * (lme_arch 2, lme on): foreground evidence is TV-L1's motion where the
     * LME's own flow moves too, |LME flow| > lme_agree_k x its median
     * (clamped as t above) — two flows that have to agree. TV-L1 alone
     * also moves on fine textures and around misaligned edges, the LME's
     * smooth flow alone misses the slow parts of objects; where both move
     * is the object. 0: TV-L1's motion alone (before 2026-12-04). Chosen on
     * training data only (results/motion 128^2 model; photo pairs of
     * scripts/photos train, seed 777, 30 pairs; photo-textured synth clips
     * of the training photos, seed 4242, 40 pairs; renderer seeds 777..,
     * 100 pairs, results/motion 128^2 and 64^2 models), hybrid mask IoU
     * with 0 / 2.5 / 5: photos 128 +-8 0.711 / 0.818 / 0.848, 128 +-16
     * 0.606 / 0.730 / 0.744, 256 +-16 0.677 / 0.774 / 0.784, 256 +-32
     * 0.593 / 0.689 / 0.692; clips 0.654 / 0.674 / 0.609; renderer 128^2
     * 0.787 / 0.807 / 0.832, 64^2 0.652 / 0.655 / 0.531 (the 64^2 LME's
     * flow misses slow object parts at 5). Object EPE within 1.3 % (more
     * foreground pixels gated off), leakage down by a quarter to a half.
     * The same rule judges the LME's own flow when it is finished
     * (lme_finish): evidence is the finished flow's motion where the
     * network's unfinished flow moves too (lme_finish below).
     * Default 2.5. */
    double lme_agree_k;
    /* Where the LME's own flow is an output (local_tvl1 0, or local_both's
     * second set), it is finished by DIS's variational refinement
     * (dis_refine_flow, motion/flow.h: DeepFlow's energy with DIS medium's
     * weights, alpha 20, delta 5, gamma 10; float warps) on the raw grey
     * pair: the mixed flow global + local is refined lme_finish times per
     * level, each a new linearisation around the flow so far (5 fixed-point
     * iterations of 5 SOR sweeps), and the local flow is the result minus
     * the global flow. The mask's evidence is the finished flow's motion
     * where the network's own (unfinished) flow moves too, lme_agree_k as
     * for the hybrid; the gate passes the finished flow.
     * Levels: the LME saw the frames at the model size S, so the finish
     * starts at the scale nearest it — frames up to about 1.4 S: at the
     * input size only; about 2 S: at 1/2, then at the input size (levels 1
     * + round(log2(max side / S))). A classical finish, like the GME's Gauss-Newton one
     * (gn): it starts from the network's flow and follows the images from
     * there; no TV-L1, no DIS search. One linearisation alone removes about
     * 40 % of a 1 px offset (tests/test_dis.c), hence several. 0: the
     * network's flow as it is (before 2026-12-04). The hybrid's flow and
     * mask are not touched (its agreement rule reads the unfinished flow).
     * Chosen on training sets only (results/motion 128^2 and 64^2 models;
     * renderer seeds 777.., 100 pairs; training photos, seed 777, 30 pairs;
     * clips of the training photos), the LME's masked object EPE / leakage
     * / mask IoU with lme_finish 0 / 1 / 5 / 10 / 20: renderer 128^2 0.551
     * / 0.040 / 0.846, 0.413 / 0.038 / 0.855, 0.334 / 0.035 / 0.865, 0.328
     * / 0.034 / 0.866, 0.329 / 0.034 / 0.867 (the hybrid 0.404 / 0.049 /
     * 0.827); 64^2 0.440 / 0.027 / 0.526, 0.368 / 0.027 / 0.643, 0.348 /
     * 0.025 / 0.649, 0.349 / 0.025 / 0.643, 0.350 / 0.024 / 0.642 (hybrid
     * 0.386 / 0.034 / 0.668); photos 128 +-8 1.681 / 0.107 / 0.843, 1.309 /
     * 0.093 / 0.863, 0.908 / 0.097 / 0.847, 0.746 / 0.102 / 0.836, 0.639 /
     * 0.105 / 0.830 (hybrid 0.642 / 0.150 / 0.821); 256 +-16 3.377 / 0.302
     * / 0.743, 2.888 / 0.255 / 0.798, 2.311 / 0.217 / 0.836, 2.059 / 0.206
     * / 0.842, 1.819 / 0.201 / 0.845 (hybrid 0.807 / 0.341 / 0.782); clips
     * 1.230 / 0.082 / 0.595, 1.103 / 0.077 / 0.629, 1.023 / 0.100 / 0.583,
     * 1.002 / 0.115 / 0.555, 0.982 / 0.130 / 0.531 (hybrid 0.730 / 0.086
     * / 0.681): the finish follows the images further with every
     * linearisation, and on coded clips it also follows the coding noise
     * into the mask. Evidence from the network's flow instead (the finished
     * one only gated): clips 0.073 / 0.595 at 10, but 64^2 IoU 0.525 and
     * 256 +-16 0.743: not taken; both must move (lme_agree_k 2.5), at 10
     * and the levels below: clips 1.002 / 0.115 / 0.555 -> 1.009 / 0.066 /
     * 0.654, photos 128 +-8 0.746 / 0.102 / 0.836 -> 0.749 / 0.087 / 0.874,
     * 256 +-16 1.016 / 0.207 / 0.839 -> 1.017 / 0.201 / 0.853, renderer
     * 128^2 IoU 0.866 -> 0.868, 64^2 0.643 -> 0.641: taken. Levels, at 10: two levels everywhere took
     * photos 128 +-8 to 0.576 and 256 +-16 to 1.016 but the renderer to
     * 0.355 (128^2) and 0.432 (64^2) and the clips to 1.022, three levels
     * 256 +-16 to 0.799 and the renderer to 0.494 / 0.549: a coarser level
     * than the LME saw loses its detail, hence the rule above (256 +-16
     * 1.016, 256 +-32 12.181 -> 9.253 with it; at 128^2 one level).
     * Default 10. */
    int lme_finish;
    /* Where the LME's own flow is an output (as for lme_finish), it is
     * found coarse to fine: the LME on both frames at 1/2^lme_coarse of the
     * model size S (area-averaged), then on each finer level with B warped
     * by the flow so far, the finer flow composed with it (f + c(p + f)),
     * the last level at S. The network matches over +-3 px at 1/2 of its
     * input (about 6 px at S), and larger motions leave it in the wrong
     * basin; at 1/2 they are half as large. Where the coarser levels' flow
     * moves by lme_coarse_px model pixels or less, the single pass at S is
     * kept (on still background the half-size pass adds noise). The mask
     * (and the refinement's weights) stay the single pass's; the hybrid's
     * agreement rule reads the single pass too, so the hybrid's flow and
     * mask are untouched. Chosen on training sets only (results/motion
     * 128^2 model; training photos, seed 777, 30 pairs; clips of the
     * training photos; renderer seeds 777.., 100 pairs; the 64^2 model on
     * 64^2 renderer pairs), the LME's finished, masked object EPE /
     * leakage / IoU, lme_coarse 0 -> 1 (px 2): photos 128 +-8 0.745 / 0.097
     * / 0.851 -> 0.534 / 0.112 / 0.843, 128 +-16 4.823 / 0.287 / 0.746 ->
     * 1.511 / 0.456 / 0.728, 256 +-16 1.018 / 0.211 / 0.836 -> 0.712 /
     * 0.250 / 0.826, 256 +-32 9.253 / 0.600 / 0.724 -> 2.883 / 1.026 /
     * 0.702 (the hybrid 0.642, 1.587, 0.806, 2.646); clips 0.996 / 0.068 /
     * 0.671 -> 0.788 / 0.077 / 0.665 (hybrid 0.730); renderer 128^2 0.320 /
     * 0.039 / 0.843 -> 0.301 / 0.042 / 0.842, 64^2 0.329 / 0.029 / 0.692 ->
     * 0.326 / 0.029 / 0.692. Two levels: photos 128 +-16 1.395 / 0.712 /
     * 0.642, 256 +-32 2.812 / 1.538 / 0.635 (more leakage than they gain);
     * px 1 / 3 at 128 +-16: 1.491 / 0.480 / 0.716, 1.531 / 0.433 / 0.735;
     * at 256 +-32: 2.863 / 1.053 / 0.694, 2.937 / 0.982 / 0.709. Without
     * the fall-back to the single pass (px 0): 128 +-16 1.484 / 0.500 /
     * 0.698, 128 +-8 0.532 / 0.125 / 0.825. 0: one pass at S (before
     * 2026-12-04). Default 1, lme_coarse_px 2. It runs once, after the
     * refinement, on the final alignment (the single pass there is the
     * carried or repassed one): two more LME passes, one at S and one at
     * S/2 (bench_glocal at 128^2, one thread: 10.6 pairs/s against 13.5
     * without it). The numbers above were measured with it run on the
     * first pass's alignment as well (and again on repass); once, on the
     * final alignment, they moved by at most 0.007 px (clips 0.788 ->
     * 0.781), the rest within 0.003. On a weakly trained network it can
     * cost: tests/test_glocal_lme_learn.c's 48^2 LME (300 steps, motions
     * about 1 px) gives 0.572 px unfinished in one pass, 0.658 coarse to
     * fine (its half-size flow is noise above 2 px); finished, 0.305 and
     * 0.302 (AMD EPYC; 0.540 / 0.303 in one pass on the Intel machine). */
    int lme_coarse;
    double lme_coarse_px;
    /* ... and beyond S, where the input is larger: on up to lme_fine more
     * levels (2S, 4S; each only while it is no longer than the input's
     * longer side), from the input frames area-resized to that size, B
     * aligned there by H and warped by the flow so far, the LME's flow
     * composed with it; the same selection (where the levels below S move
     * by more than lme_coarse_px). The LME never saw 2S, but its features
     * are local: the finer level recovers the detail (patch edges, texture)
     * that resizing to S loses. Chosen on training photos (results/motion
     * 128^2 model, seed 777, 30 pairs), the LME's finished, masked object
     * EPE / leakage / IoU, lme_fine 0 -> 1: 256 +-16 0.711 / 0.251 / 0.826
     * -> 0.651 / 0.245 / 0.829; 256 +-32 2.880 / 1.023 / 0.704 -> 2.647 /
     * 1.019 / 0.708 (the hybrid 0.806 and 2.646). Inputs shorter than 2S
     * on their longer side are untouched (bit for bit; every 128^2 and 64^2
     * number above). Cost: one LME forward at 2S, about 4.5 of those at S
     * (in sub-batches of 2 x 256^2 pixels: larger batches run slower a pair
     * there); eval-motion's glocal-lme ms/pair at 256^2 in
     * results/motion/photos. Default 1 (0..2); only with lme_coarse > 0. */
    int lme_fine;
    /* Where the LME's own flow is finished (lme_finish) and gated: its
     * motion is evidence only where it explains the images. Over 7x7
     * windows, r0 = mean |A(p) - B(H p)| (the pair aligned, no local
     * motion) and r1 = mean |A(p) - B(H p + l(p))|; the evidence goes where
     * r1 removes less than lme_support of r0 AND r0 is below lme_support_k
     * x the frame's median r0 (its noise and alignment floor): motion
     * claimed where the still hypothesis already fits as well as the
     * frame's typical background. On MPEG-4-coded clips the network
     * finds motion of about a pixel in smooth background (sky, walls: few
     * grey levels of texture), and the finish, whose data term is weak
     * there, keeps it; the hybrid's TV-L1 does not. A textured object that
     * moves leaves a large r0 (kept whatever r1), a slow object in a
     * smooth region a small r0 that its flow explains (kept), an occlusion
     * band a large r0 (kept). Chosen on training sets only (results/motion
     * 128^2 model; clips of the training photos, seed 4242 and seed 5151,
     * 40 pairs each; training photos seed 777, 30 pairs; renderer seeds
     * 777.., 100 pairs, and the 64^2 model at 64^2), the LME's finished,
     * masked object EPE / leakage / IoU, off -> on (0.4, 1.5): clips 0.781
     * / 0.077 / 0.666 -> 0.790 / 0.057 / 0.694 and 0.552 / 0.071 / 0.611
     * -> 0.556 / 0.042 / 0.696 (hybrid 0.730 / 0.086 / 0.681 and 0.612 /
     * 0.039 / 0.713); photos 128 +-8 0.534 / 0.112 / 0.843 -> 0.534 /
     * 0.110 / 0.850, 128 +-16 1.511 / 0.456 / 0.728 -> 1.516 / 0.431 /
     * 0.736, 256 +-16 0.651 / 0.245 / 0.829 -> 0.653 / 0.229 / 0.841, 256
     * +-32 2.647 / 1.019 / 0.708 -> 2.661 / 0.910 / 0.730; renderer 128^2
     * 0.302 / 0.041 / 0.842 -> 0.302 / 0.041 / 0.844, 64^2 0.327 / 0.029 /
     * 0.692 -> 0.328 / 0.029 / 0.689. Rejected: an absolute
     * floor of 1 grey level (clips 0.784 / 0.063 / 0.693, 0.554 / 0.032 /
     * 0.713, but photos 128 +-8 0.534 -> 0.625 px, 256 +-16 0.651 ->
     * 0.908: clean photos have slow objects in smooth regions); the gain
     * alone (r1 < 0.75 r0: photos 128 +-8 0.563, the 64^2 renderer's IoU
     * 0.692 -> 0.63 with connected components); a floor of 3 grey levels
     * (64^2 renderer IoU 0.640); k 2 (0.679). 0: off. Defaults 0.4, 1.5. */
    double lme_support;
    double lme_support_k;
    /* With lme_support: flat windows are no evidence where the pair is
     * noisy there. A 7x7 window whose mean |grad A| (central differences,
     * grey levels a pixel) is below lme_flat carries no observable motion:
     * whatever flow is found there comes from the network's fill-in and
     * from the finish fitting noise. Where the pair is clean in such
     * windows, that fill-in is worth keeping (the flat interiors of moving
     * patches on photo pairs); where it is noisy (MPEG-4 clips: sky, walls)
     * it is the false motion the support test cannot see, because the
     * finished flow does lower the residual there (by 40-60 %, fitting
     * sub-grey-level coding noise). So: the pair's flat-background noise
     * is the median r0 (as above) over the flat windows that are not
     * evidence; if there are more than 1/50 of the frame's pixels such
     * windows and that noise is above lme_flat_noise grey levels, every
     * flat window loses its evidence (the bilateral clean-up then refills
     * object interiors bounded by textured evidence). Chosen on training
     * sets only (as lme_support's), glocal-lme object EPE / leakage / IoU,
     * off -> on (1, 0.25): clips 0.790 / 0.057 / 0.694 -> 0.801 / 0.052 /
     * 0.702 and 0.556 / 0.042 / 0.696 -> 0.556 / 0.035 / 0.702 (hybrid IoU
     * 0.681 and 0.713); photos 128 +-8 0.534 / 0.110 / 0.850 unchanged, 128
     * +-16 1.516 / 0.431 / 0.736 -> 1.518 / 0.376 / 0.746; renderer 128^2
     * and 64^2 bit for bit. The two statistics overlap (the noise as the
     * rule computes it, on pairs with enough flat windows): at most 0.22
     * grey on the training photos but for the one pair whose alignment
     * failed (128 +-16 pair 23, 0.31: the gate fires, and helps there),
     * 0.29-0.54 on clips 4242 and 0.00-0.61 on clips 5151 (above 0.25 on
     * 46 of 64 evaluations); lme_flat_noise 0.2 cost photos 128 +-8 EPE
     * 0.534 -> 0.604, 0.3 ~ 0.25. Rejected: no evidence in flat windows at all
     * (clips 0.703 / 0.719 but photos 128 +-8 EPE 0.812: flat moving
     * patches lose their interior), or a per-window r0 gate (the photo
     * pairs' flat moving interiors have r0 as large as the clips' false
     * motion). lme_flat 0: off. Defaults 1 and 0.25. */
    double lme_flat;
    double lme_flat_noise;
    /* The mask (and the gate) is that evidence cleaned up by a joint
     * bilateral filter guided by frame A, separable (a row pass, then a
     * column pass): spatial sigma mask_sigma x the shorter side (windows of
     * at most 33 px), range sigma mask_range grey
     * levels (0..255); mask_sigma = 0: no clean-up. Synthetic benchmark, mask
     * IoU: 0.54 -> 0.64 at 64^2, 0.61 -> 0.78 at 128^2, 0.53 -> 0.60 on
     * MPEG-4-coded 64^2 clips (results/motion, README). */
    double mask_sigma;           /* default 1/16 */
    double mask_range;           /* default 20 */
    /* No foreground evidence where the alignment takes a pixel of A out of
     * B's view, or within view_margin x the shorter side of B's border:
     * nothing there to compare (the aligned B repeats its border), and TV-L1
     * on that repeated border smears flow a few pixels inward. So the mask
     * is 0 there and the gated flow too. < 0: evidence everywhere (before
     * 2026-12-03). Training photos (scripts/photos train, seed 777, 30
     * pairs, 128^2 model), hybrid mask IoU at 128 +-8 / 128 +-16 / 256 +-16
     * / 256 +-32: none 0.669 / 0.457 / 0.612 / 0.471; 1/40 0.712 / 0.540 /
     * 0.668 / 0.575; 1/32 0.717 / 0.546 / 0.672 / 0.579; 1/16 0.733 /
     * 0.571 / 0.686 / 0.596 at 2-4 % more object EPE; the renderer's 0.773
     * -> 0.788 (1/40) at 128^2. 1/32 (default): a person entering the frame
     * is masked from 1/32 of the side in (7 px at 240 lines). */
    double view_margin;
    /* 1: the LME's mask >= 0.5 is foreground evidence as well as the motion
     * (the default before 2026-12-03). 0 (default): the motion alone; the
     * LME's mask still weights the refinement. The renderer-trained mask
     * fires on fine real textures (grass, foliage: their aligned residual
     * is high), and the clean-up then spreads it over the background.
     * Chosen on training data only (128^2 model; photo pairs of
     * scripts/photos train, seed 777, 30 pairs; photo-textured synth clips of
     * the training photos, seed 4242, 40 pairs), hybrid mask IoU 1 -> 0:
     * clips 0.600 -> 0.658; photos 128 +-8 0.717 -> 0.727, 128 +-16 0.546
     * -> 0.556, 256 +-16 0.672 -> 0.688, 256 +-32 0.579 -> 0.593; the
     * LME-flow mask 0.564 -> 0.574 on the clips; the renderer's unchanged
     * (128^2 0.789 -> 0.789, 64^2 0.652 -> 0.651). Object EPE +0.011 on the
     * clips (0.766 -> 0.777), within 0.002 elsewhere; leakage a little lower. */
    int mask_lme;
    /* 1 (default) zeroes the local flow outside the mask (the paper's
     * suppression of background motion); 0 keeps the whole residual flow on
     * GLOCAL's alignment (the mask is computed the same, so the gated flow
     * is the ungated one times (mask >= 0.5)).
     * Measured on the synthetic benchmark (README): the ungated residual
     * classifies better, because the gate also drops the slow parts of the
     * objects (centres of rotations, grow/shrink). */
    int local_gate;
    /* 1: with the hybrid (the local flow resolved to TV-L1) and the LME on,
     * the LME's own local flow is returned as well, in r->lme_local_flow and
     * its mask in r->lme_mask (NULL otherwise): exactly what local_tvl1 = 0
     * gives (post-processed the same way, gated by local_gate), from the same
     * inference, so the hybrid and the network-only outputs cost one pass
     * (extract's glocal-* and glocal-lme-* sources). Its mixed flow is
     * global_flow + lme_local_flow. 0 (default): not computed. */
    int local_both;
} glocal_infer_options;

void glocal_infer_options_default(glocal_infer_options *o);
/* 1 when glocal_infer's local flow with options o and model m (may be NULL)
 * is TV-L1 on the aligned pair (local_tvl1 resolved: -1 is TV-L1 unless the
 * LME is on and learned a flow, lme_arch 2), 0 when it is the LME's. */
int glocal_infer_local_is_tvl1(const glocal_model *m, const glocal_infer_options *o);

/* seen[p] = 1 where homography h (A -> B, pixels) takes pixel p of a W x H
 * frame A inside B's view, at least view_margin x the shorter side from
 * B's border; 0 elsewhere (out of view: nothing there to judge). With
 * view_margin < 0 every pixel is seen. The rule of
 * glocal_infer_options.view_margin, for callers that score the mask. */
void glocal_view_mask(const double h[9], int width, int height, double view_margin, uint8_t *seen);

typedef struct {
    int n, width, height;
    double *homography;    /* [n][9] */
    float *global_flow;    /* [n][2][H][W] */
    /* local = mixed - global, in B's frame: pixel p of A goes to
     * p + mixed(p) in B, the camera alone would take it to p + global(p)
     * (a flow computed on the aligned pair is mapped there; before
     * 2026-12-04 the hybrid's was not, off by (dH - I) x the flow). */
    float *local_flow;     /* [n][2][H][W] */
    float *mixed_flow;     /* [n][2][H][W] = global_flow + local_flow */
    float *mask;           /* [n][H][W] in [0, 1] */
    float *lme_local_flow; /* [n][2][H][W], only with local_both (else NULL) */
    float *lme_mask;       /* [n][H][W], only with local_both (else NULL) */
} glocal_result;

int glocal_result_alloc(glocal_result *r, int n, int width, int height);
void glocal_result_free(glocal_result *r);

/* Motion of n pairs of RGB24 frames a[i], b[i] (each width*height*3 bytes,
 * any size): resizes to the model size, runs the model (batched), rescales
 * to input pixels, refines H at the input size. m may be NULL when
 * use_network = 0 and lme = 0 (refinement from identity only). */
int glocal_infer(glocal_model *m, const uint8_t *const *a, const uint8_t *const *b, int n,
                 int width, int height, const glocal_infer_options *o, glocal_result *r);

/* RGB24 frames (n, H, W, 3) -> grey (N, 1, S, S) in [0, 1], area-resized. */
int glocal_frames_to_tensor(nn_tensor **out, const uint8_t *const *frames, int n, int width,
                            int height, int size);

/* ---- metrics ---------------------------------------------------------------------- */

/* Per pair against ground truth (flows [2][H][W], mask [H][W] nonzero =
 * foreground). est_local / est_mask may be NULL (their metrics become NAN). */
typedef struct {
    double corner;        /* mean 4-corner error of the homography (px) */
    double global_epe;    /* EPE of the global flow over all pixels */
    double local_epe_fg;  /* EPE of the local flow on foreground pixels (NAN if none) */
    double leakage;       /* mean |local| on background pixels */
    double iou;           /* IoU of (mask >= 0.5) with the foreground (NAN if both empty) */
    long inter, uni;      /* its pixel counts, for an IoU pooled over pairs */
} glocal_pair_metrics;

int glocal_metrics_pair(const double h_est[9], const double h_gt[9], const float *est_global,
                        const float *gt_global, const float *est_local, const float *gt_local,
                        const float *est_mask, const uint8_t *gt_mask, int width, int height,
                        glocal_pair_metrics *out);

#ifdef __cplusplus
}
#endif
#endif
