/* glocal_train.c — GLOCAL's self-supervised training loop: Adam after a
 * linear warm-up, gradient clipping, batches that depend on (seed, step) only
 * (a resumed run sees the batches it would have seen), checkpoints with the
 * optimizer state, and data parallelism over nn/'s c10d wrappers (every rank
 * draws the same global batch and trains on its slice). See motion/glocal.h. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "motion/glocal.h"
#include "motion/glocal_private.h"

glocal_train_config glocal_train_config_default(void)
{
    glocal_train_config c;
    memset(&c, 0, sizeof c);
    c.loss = glocal_loss_config_default();
    c.opt = nn_opt_config_default(NN_OPT_ADAM);
    c.opt.lr = 1e-3;
    c.warmup_steps = 100;
    c.clip_grad = 10;
    c.steps = 1000000;
    c.minutes = 0;
    c.batch_size = 16;
    c.seed = 1;
    c.ckpt_every = 500;
    c.log_every = 50;
    return c;
}

int glocal_train_config_validate(const glocal_train_config *c)
{
    if (!c) return gl_error(GL_EINVAL, "glocal_train_config: NULL");
    int rc = glocal_loss_config_validate(&c->loss);
    if (rc < 0) return rc;
    if ((rc = nn_opt_config_validate(&c->opt)) < 0) return gl_error_prefix(rc, "glocal_train_config.opt");
    if (c->warmup_steps < 0)
        return gl_error(GL_EINVAL, "glocal_train_config.warmup_steps: %ld, expected >= 0", c->warmup_steps);
    if (!(c->clip_grad > 0))
        return gl_error(GL_EINVAL, "glocal_train_config.clip_grad: %g, expected > 0 (its norm also catches "
                        "a non-finite gradient)", c->clip_grad);
    if (c->steps < 0) return gl_error(GL_EINVAL, "glocal_train_config.steps: %ld, expected >= 0", c->steps);
    if (!(c->minutes >= 0))
        return gl_error(GL_EINVAL, "glocal_train_config.minutes: %g, expected >= 0 (0 = no limit)", c->minutes);
    if (c->lme_align_refine && c->loss.train_gme)
        return gl_error(GL_EINVAL, "glocal_train_config.lme_align_refine needs the GME frozen (loss.train_gme = 0)");
    if (!(c->lr_final >= 0 && c->lr_final <= c->opt.lr))
        return gl_error(GL_EINVAL, "glocal_train_config.lr_final: %g, expected 0 (constant lr) or in (0, lr = %g]",
                        c->lr_final, c->opt.lr);
    if (c->batch_size < 1)
        return gl_error(GL_EINVAL, "glocal_train_config.batch_size: %d, expected >= 1", c->batch_size);
    if (c->ckpt_every < 1)
        return gl_error(GL_EINVAL, "glocal_train_config.ckpt_every: %ld, expected >= 1", c->ckpt_every);
    if (c->log_every < 1)
        return gl_error(GL_EINVAL, "glocal_train_config.log_every: %ld, expected >= 1", c->log_every);
    int W = nn_dist_world_size(c->dist);
    if (c->batch_size % W)
        return gl_error(GL_EINVAL, "glocal_train_config.batch_size: %d is not a multiple of the %d ranks "
                        "(it is the global batch; each rank takes batch_size / ranks)", c->batch_size, W);
    return 0;
}

/* The loop's state, shared by the helpers below. */
typedef struct {
    glocal_model *m;
    nn_params *p;
    const glocal_pair_source *src;
    const glocal_train_config *cfg;
    nn_optimizer *opt;
    nn_lr_schedule ls;
    FILE *log;
    long *index;               /* [batch]: the global batch */
    unsigned char *swap;       /* [batch] */
    const uint8_t **a, **b;    /* [per]: this rank's slice */
    const float **tf, **tc;    /* [per]: the teacher's flows and confidences (source's teacher) */
    float *tbuf;               /* [per][3][S][S]: them packed for a tensor */
    int rank, world, per;
    long step0, step, last_saved, last_log_step;
    double t0, tlog;
    double lr;                 /* the learning rate of the last step */
} trainer;

static int save(trainer *t)
{
    char json[512];
    nn_params st;
    nn_params_init(&st);
    int rc = glocal_config_to_json(glocal_model_config(t->m), json, sizeof json);
    if (rc >= 0) rc = nn_optimizer_state_export(t->opt, &st);
    if (rc >= 0) {
        nn_opt_kind k = t->cfg->opt.kind;
        nn_checkpoint_meta meta = { t->step, json, &st, k == NN_OPT_SGD ? "sgd" : k == NN_OPT_ADAM ? "adam" : "adamw" };
        rc = nn_checkpoint_save(t->cfg->checkpoint, t->p, &meta);
    }
    nn_params_free(&st);
    if (rc < 0) return gl_error_prefix(rc, "cannot save %s", t->cfg->checkpoint);
    t->last_saved = t->step;
    return 0;
}

static void trainer_close(trainer *t)
{
    if (t->log) fclose(t->log);
    gl_free(t->index);
    gl_free(t->swap);
    gl_free((void *)t->a);
    gl_free((void *)t->b);
    gl_free((void *)t->tf);
    gl_free((void *)t->tc);
    gl_free(t->tbuf);
    nn_optimizer_free(&t->opt);
}

/* Optimizer (with the checkpoint's state on a resume), rank 0's parameters on
 * every rank, the log, the batch buffers. */
static int trainer_open(trainer *t, glocal_model *m, const glocal_pair_source *src, const glocal_train_config *cfg)
{
    memset(t, 0, sizeof *t);
    t->m = m;
    t->p = glocal_model_params(m);
    t->src = src;
    t->cfg = cfg;
    t->rank = nn_dist_rank(cfg->dist);
    t->world = nn_dist_world_size(cfg->dist);
    t->per = cfg->batch_size / t->world;
    t->last_saved = -1;
    nn_params st;
    nn_params_init(&st);
    int64_t step0 = 0;
    int rc = nn_optimizer_new(&t->opt, t->p, &cfg->opt);
    if (rc < 0) goto fail;
    if (cfg->resume) {
        if ((rc = nn_checkpoint_load(cfg->resume, t->p, &step0, NULL, &st)) < 0 ||
            (rc = nn_optimizer_state_import(t->opt, &st)) < 0) {
            gl_error_prefix(rc, "cannot resume from %s (weights and optimizer state)", cfg->resume);
            goto fail;
        }
        /* the checkpoint is the file we would write: nothing new to save yet */
        if (cfg->checkpoint && !strcmp(cfg->checkpoint, cfg->resume)) t->last_saved = (long)step0;
    }
    t->step0 = t->step = t->last_log_step = (long)step0;
    if ((rc = nn_dist_broadcast_params(cfg->dist, t->p)) < 0) {
        gl_error_prefix(rc, "cannot broadcast rank 0's parameters");
        goto fail;
    }
    if (t->rank == 0 && cfg->log_path && !(t->log = fopen(cfg->log_path, cfg->resume ? "a" : "w"))) {
        rc = gl_error(GL_EIO, "cannot write %s", cfg->log_path);
        goto fail;
    }
    t->ls = nn_lr_schedule_default();
    t->ls.kind = NN_LR_CONSTANT;
    t->ls.base_lr = cfg->opt.lr;
    t->ls.warmup_steps = cfg->warmup_steps;
    t->ls.warmup_start = 0.1;
    t->index = gl_malloc(sizeof *t->index * (size_t)cfg->batch_size);
    t->swap = gl_malloc((size_t)cfg->batch_size);
    t->a = gl_malloc(sizeof *t->a * (size_t)t->per);
    t->b = gl_malloc(sizeof *t->b * (size_t)t->per);
    if (!t->index || !t->swap || !t->a || !t->b) rc = GL_ENOMEM;
    if (rc >= 0 && src->teacher && cfg->loss.w_teacher > 0) {
        const int S = glocal_model_config(m)->size;
        if (src->width != S || src->height != S)
            rc = gl_error(GL_EINVAL, "glocal_train: a teacher needs %dx%d pairs (the model size), got %dx%d",
                          S, S, src->width, src->height);
        else {
            t->tf = gl_malloc(sizeof *t->tf * (size_t)t->per);
            t->tc = gl_malloc(sizeof *t->tc * (size_t)t->per);
            t->tbuf = gl_malloc(sizeof(float) * 3 * (size_t)S * S * t->per);
            if (!t->tf || !t->tc || !t->tbuf) rc = GL_ENOMEM;
        }
    }
fail:
    nn_params_free(&st);
    return rc;
}

/* The global batch of this step (the rule in glocal.h), and this rank's
 * slice of its frames. */
static int draw_batch(trainer *t)
{
    const glocal_train_config *c = t->cfg;
    uint64_t r = gl_mix64(c->seed * 0x100000001B3ull + (uint64_t)t->step);
    for (int i = 0; i < c->batch_size; i++) {
        r = gl_mix64(r);
        t->index[i] = (long)(r % (uint64_t)t->src->count);
        t->swap[i] = (unsigned char)((r >> 40) & 1); /* (B, A) is a pair too */
    }
    const int first = t->rank * t->per;
    int rc = t->src->get(t->src->ctx, t->index + first, t->per, t->a, t->b);
    if (rc < 0) return gl_error_prefix(rc, "step %ld: pairs", t->step);
    for (int i = 0; i < t->per; i++)
        if (t->swap[first + i]) {
            const uint8_t *x = t->a[i];
            t->a[i] = t->b[i];
            t->b[i] = x;
        }
    return 0;
}

/* The teacher's flows (N, 2, S, S) and confidences (N, 1, S, S) of this
 * rank's slice, in the current scope; both NULL without a teacher. */
static int teacher_batch(trainer *t, int S, nn_tensor **flow, nn_tensor **conf)
{
    *flow = *conf = NULL;
    if (!t->tbuf) return 0;
    const int first = t->rank * t->per;
    int rc = t->src->teacher(t->src->ctx, t->index + first, t->swap + first, t->per, t->tf, t->tc);
    if (rc < 0) return gl_error_prefix(rc, "step %ld: teacher", t->step);
    const size_t plane = (size_t)S * S;
    float *fl = t->tbuf, *cf = t->tbuf + 2 * plane * t->per;
    for (int i = 0; i < t->per; i++) {
        memcpy(fl + 2 * plane * i, t->tf[i], sizeof(float) * 2 * plane);
        memcpy(cf + plane * i, t->tc[i], sizeof(float) * plane);
    }
    int64_t sf[4] = { t->per, 2, S, S }, sc[4] = { t->per, 1, S, S };
    nn_tensor *a = NULL, *b = NULL;
    if ((rc = nn_from_data(&a, fl, sf, 4, NN_F32)) < 0 || (rc = nn_from_data(&b, cf, sc, 4, NN_F32)) < 0) {
        nn_free(&a);
        return rc;
    }
    if (nn_default_device() != NN_CPU) {
        nn_tensor *ad = NULL, *bd = NULL;
        rc = nn_to_device(&ad, a, nn_default_device());
        if (rc >= 0) rc = nn_to_device(&bd, b, nn_default_device());
        nn_free(&a);
        nn_free(&b);
        if (rc < 0) { nn_free(&ad); return rc; }
        a = ad, b = bd;
    }
    *flow = a;
    *conf = b;
    return 0;
}

/* glocal_train_config.lme_align_refine: the global flow (per, 2, S, S) of
 * the robust refinement started from the GME's homography (glocal_infer, no
 * LME), in the current scope. */
static int refined_alignment(trainer *t, int S, int W, int H, nn_tensor **out)
{
    glocal_infer_options o;
    glocal_infer_options_default(&o);
    o.lme = 0;
    o.local_tvl1 = 0;
    o.homography_only = 1;
    glocal_result r;
    int rc = glocal_infer(t->m, t->a, t->b, t->per, W, H, &o, &r);
    if (rc < 0) return gl_error_prefix(rc, "step %ld: refined alignment", t->step);
    rc = glocal_homographies_to_flow(r.homography, t->per, W, H, S, out);
    glocal_result_free(&r);
    return rc;
}

enum { STEP_DONE = 0, STEP_STOP = 1, STEP_BUDGET = 2, STEP_NAN = 3 };

/* The learning rate of step t->step: warm-up, then constant or (lr_final > 0)
 * a cosine to lr_final over max((step - warm-up) / (steps - warm-up), time_frac). */
static double lr_at(const trainer *t, double time_frac)
{
    const glocal_train_config *c = t->cfg;
    if (c->lr_final <= 0 || t->step < c->warmup_steps) return nn_lr_at(&t->ls, t->step);
    const long span = c->steps - c->warmup_steps;
    double f = span > 0 ? (double)(t->step - c->warmup_steps) / (double)span : 1.0;
    if (time_frac > f) f = time_frac;
    if (f > 1) f = 1;
    return c->lr_final + 0.5 * (c->opt.lr - c->lr_final) * (1.0 + cos(M_PI * f));
}

/* One optimizer step on this rank's slice. Returns STEP_DONE, or (without
 * stepping) STEP_STOP / STEP_BUDGET / STEP_NAN when any rank asked to stop,
 * ran out of time or met a non-finite loss or gradient; < 0 on errors. */
static int train_step(trainer *t, int stop_asked, double limit_s, glocal_losses *L, double *gnorm)
{
    const glocal_model *m = t->m;
    const int S = glocal_model_config(m)->size, W = t->src->width, H = t->src->height;
    int rc = draw_batch(t);
    if (rc < 0) return rc;
    nn_scope *sc = NULL;
    nn_tensor *ta, *tb, *loss, *tt = NULL, *tcf = NULL, *al = NULL;
    if ((rc = nn_scope_begin(&sc)) < 0 ||
        (rc = glocal_frames_to_tensor(&ta, t->a, t->per, W, H, S)) < 0 ||
        (rc = glocal_frames_to_tensor(&tb, t->b, t->per, W, H, S)) < 0 ||
        (rc = nn_optimizer_zero_grad(t->opt)) < 0 ||
        (rc = teacher_batch(t, S, &tt, &tcf)) < 0 ||
        (t->cfg->lme_align_refine && (rc = refined_alignment(t, S, W, H, &al)) < 0) ||
        (rc = glocal_loss_aligned(t->m, ta, tb, al, tt, tcf, &t->cfg->loss, t->step, &loss, L)) < 0)
        goto fail;
    /* Stop decisions are taken together: the time budget by any rank's
     * clock (MAX), a non-finite loss on any rank, a stop asked on any rank. */
    const double elapsed = gl_now() - t->t0;
    double flags[4] = { elapsed >= limit_s, !isfinite(L->total), stop_asked,
                        t->rank == 0 && isfinite(limit_s) ? elapsed / limit_s : 0 };
    if ((rc = nn_dist_allreduce_values(t->cfg->dist, flags, 4, NN_DIST_MAX)) < 0) goto fail;
    t->lr = lr_at(t, flags[3]);
    if ((rc = nn_optimizer_set_lr(t->opt, t->lr)) < 0) goto fail;
    if (flags[1] > 0) rc = STEP_NAN;
    else if (flags[2] > 0) rc = STEP_STOP;
    else if (flags[0] > 0) rc = STEP_BUDGET;
    if (rc > 0) goto fail;
    if ((rc = nn_backward(loss)) < 0 || (rc = nn_dist_allreduce_grads(t->cfg->dist, t->p)) < 0 ||
        (rc = nn_clip_grad_norm(t->p, t->cfg->clip_grad, gnorm)) < 0)
        goto fail;
    /* the norm of the averaged gradient: the same on every rank */
    if (!isfinite(*gnorm)) rc = STEP_NAN;
    else rc = nn_optimizer_step(t->opt);
fail:
    nn_scope_end(&sc);
    if (rc < 0) return gl_error_prefix(rc, "step %ld", t->step);
    return rc;
}

/* The log line of the step just taken; the losses become means over the
 * ranks (every rank takes part in that all-reduce). */
static int log_step(trainer *t, glocal_losses *L, double gnorm)
{
    double now = gl_now();
    double v[10] = { L->total, L->global, L->census, L->local, L->smooth, L->sparse, L->mask, L->mask_mean,
                     L->dense, L->teacher };
    int rc = nn_dist_allreduce_values(t->cfg->dist, v, 10, NN_DIST_MEAN);
    if (rc < 0) return gl_error_prefix(rc, "step %ld: mean losses", t->step);
    L->total = v[0]; L->global = v[1]; L->census = v[2]; L->local = v[3];
    L->smooth = v[4]; L->sparse = v[5]; L->mask = v[6]; L->mask_mean = v[7]; L->dense = v[8];
    L->teacher = v[9];
    if (t->log) {
        fprintf(t->log,
                "{\"step\": %ld, \"time_s\": %.3f, \"loss\": %.6g, \"global\": %.6g, "
                "\"census\": %.6g, \"local\": %.6g, \"smooth\": %.6g, \"sparse\": %.6g, "
                "\"mask\": %.6g, \"mask_mean\": %.4f, \"dense\": %.6g, \"teacher\": %.6g, \"grad_norm\": %.4g, \"lr\": %.4g, "
                "\"pairs_per_s\": %.2f}\n",
                t->step, now - t->t0, L->total, L->global, L->census, L->local, L->smooth, L->sparse,
                L->mask, L->mask_mean, L->dense, L->teacher, gnorm, t->lr,
                (double)(t->step - t->last_log_step) * t->cfg->batch_size / (now - t->tlog));
        if (fflush(t->log) != 0) return gl_error(GL_EIO, "cannot write %s", t->cfg->log_path);
    }
    t->tlog = now;
    t->last_log_step = t->step;
    return 0;
}

int glocal_train(glocal_model *m, const glocal_pair_source *src, const glocal_train_config *cfg,
                 glocal_train_callback cb, void *cb_ctx)
{
    if (!m || !src || !cfg) return gl_error(GL_EINVAL, "glocal_train: NULL argument");
    if (!src->get || src->count < 1 || src->width < 1 || src->height < 1)
        return gl_error(GL_EINVAL, "glocal_train: the pair source has %ld pairs of %dx%d frames%s", src->count,
                        src->width, src->height, src->get ? "" : " and no get function");
    int rc = glocal_train_config_validate(cfg);
    if (rc < 0) return rc;
    trainer t;
    if ((rc = trainer_open(&t, m, src, cfg)) < 0) goto fail;
    const double limit = cfg->minutes > 0 ? cfg->minutes * 60 : INFINITY;
    int stop = STEP_DONE, stop_asked = 0;
    t.t0 = t.tlog = gl_now();
    while (t.step < cfg->steps) {
        glocal_losses L;
        double gnorm = 0;
        if ((stop = train_step(&t, stop_asked, limit, &L, &gnorm)) != STEP_DONE) break;
        t.step++;
        glocal_train_status st = { .step = t.step, .start_step = t.step0, .steps = cfg->steps, .grad_norm = gnorm,
                                   .lr = t.lr, .rank = t.rank, .world = t.world };
        if (t.step % cfg->log_every == 0 || t.step == cfg->steps) {
            if ((rc = log_step(&t, &L, gnorm)) < 0) goto fail;
            st.logged = 1;
        }
        if (t.rank == 0 && cfg->checkpoint && t.step % cfg->ckpt_every == 0) {
            if ((rc = save(&t)) < 0) goto fail;
            st.saved = 1;
        }
        st.losses = L;
        st.elapsed_s = gl_now() - t.t0;
        if (cb && cb(cb_ctx, &st)) stop_asked = 1;
    }
    if (stop < 0) { rc = stop; goto fail; }
    if (stop == STEP_NAN) {
        if (t.last_saved >= 0)
            rc = gl_error(GL_ENUMERIC, "the loss or its gradient became NaN/infinite at step %ld; stopped. %s keeps "
                          "the last good checkpoint (step %ld)", t.step, cfg->checkpoint, t.last_saved);
        else
            rc = gl_error(GL_ENUMERIC, "the loss or its gradient became NaN/infinite at step %ld; stopped. No "
                          "checkpoint was written", t.step);
        goto fail;
    }
    if (t.rank == 0 && cfg->checkpoint && t.step != t.last_saved && (rc = save(&t)) < 0) goto fail;
    /* nobody returns before rank 0's checkpoint is on disk */
    if ((rc = nn_dist_barrier(cfg->dist)) < 0) {
        gl_error_prefix(rc, "final barrier");
        goto fail;
    }
    rc = stop == STEP_STOP ? gl_error(GL_ECANCELED, "training stopped on request at step %ld%s", t.step,
                                      cfg->checkpoint ? " (checkpoint written)" : "")
                           : 0;
fail:
    trainer_close(&t);
    return rc;
}
