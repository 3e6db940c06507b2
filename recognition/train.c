/* train.c — the training loop (TSN-style: SGD momentum or AdamW, warm-up +
 * step/cosine schedule, label smoothing, gradient clipping), checkpoints with
 * optimizer state for exact resumes, and batched prediction. */
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recognition/classifier.h"

cls_train_config cls_train_config_default(void)
{
    cls_train_config c = { 0 };
    c.opt = nn_opt_config_default(NN_OPT_SGD);
    c.opt.lr = 0.01;
    c.opt.momentum = 0.9;
    c.opt.weight_decay = 5e-4;
    c.schedule = NN_LR_COSINE;
    c.warmup_epochs = 0;
    c.min_lr = 0;
    c.step_epochs = 30;
    c.gamma = 0.1;
    c.label_smoothing = 0;
    c.clip_grad = 40; /* TSN's RGB setting */
    c.epochs = 10;
    c.seed = 1;
    c.batch_size = 32;
    c.threads = 0;
    c.prefetch = 2;
    return c;
}

int cls_train_config_validate(const cls_train_config *c)
{
    int rc = nn_opt_config_validate(&c->opt);
    if (rc < 0) return rc;
    if (c->epochs < 1) return gl_error(GL_EINVAL, "training config: epochs %ld, expected >= 1", c->epochs);
    if (c->batch_size < 1) return gl_error(GL_EINVAL, "training config: batch_size %d, expected >= 1", c->batch_size);
    if (!(c->warmup_epochs >= 0)) return gl_error(GL_EINVAL, "training config: warmup_epochs %g, expected >= 0", c->warmup_epochs);
    if (!(c->label_smoothing >= 0 && c->label_smoothing < 1)) return gl_error(GL_EINVAL, "training config: label_smoothing %g, expected in [0, 1)", c->label_smoothing);
    if (!(c->clip_grad >= 0)) return gl_error(GL_EINVAL, "training config: clip_grad %g, expected >= 0", c->clip_grad);
    if (c->schedule == NN_LR_STEP && !(c->step_epochs > 0)) return gl_error(GL_EINVAL, "training config: step_epochs %g, expected > 0", c->step_epochs);
    if (!(c->min_lr >= 0)) return gl_error(GL_EINVAL, "training config: min_lr %g, expected >= 0", c->min_lr);
    int W = nn_dist_world_size(c->dist);
    if (c->batch_size % W)
        return gl_error(GL_EINVAL, "training config: batch_size %d is not a multiple of the %d ranks "
                        "(it is the global batch; each rank takes batch_size / ranks)", c->batch_size, W);
    return 0;
}

/* Dropout seed of a step: SplitMix64's mix of seed G + step + 0x632BE59BD9B4E019
 * (G = GL_SPLITMIX64_GAMMA; gl_mix64 adds one G itself, hence the "- G"), the
 * formula the first runs used, so fixed-seed runs repeat. */
static uint64_t step_seed(uint64_t seed, long step)
{
    return gl_mix64(seed * GL_SPLITMIX64_GAMMA + (uint64_t)step + 0x632BE59BD9B4E019ull - GL_SPLITMIX64_GAMMA);
}

/* Batch [n, sample shape] as tensors on the runtime device. */
static int batch_tensors(const loader_batch *b, const loader_source *src, nn_tensor **x, nn_tensor **y)
{
    int64_t sh[LOADER_MAX_DIMS + 1];
    sh[0] = b->n;
    for (int i = 0; i < src->ndim; i++) sh[i + 1] = src->shape[i];
    nn_tensor *cx = NULL, *cy = NULL, *y32 = NULL;
    int rc;
    /* Borrowed: the loader keeps the batch until the next loader_next, and
     * every step ends its scope (freeing the graph that saved x) before that. */
    if ((rc = nn_from_blob(&cx, b->data, sh, src->ndim + 1, NN_F32)) < 0) goto fail;
    if (nn_default_device() == NN_CPU) { *x = cx; cx = NULL; }
    else if ((rc = nn_to_device(x, cx, nn_default_device())) < 0) goto fail;
    if (y) {
        int64_t ys[1] = { b->n };
        if ((rc = nn_from_data(&y32, b->labels, ys, 1, NN_I32)) < 0) goto fail;
        if ((rc = nn_to_dtype(&cy, y32, NN_I64)) < 0) goto fail;
        rc = nn_to_device(y, cy, nn_default_device());
    }
fail:
    nn_free(&cx);
    nn_free(&cy);
    nn_free(&y32);
    return rc;
}

/* The log so far: empty for a fresh run; on a resume, the lines of the
 * epochs the checkpoint holds (a line of a later epoch, written before a
 * kill, is dropped: that epoch runs again). */
static int log_start(const char *path, int resume, long start_epoch, char **log, size_t *len)
{
    *log = NULL;
    *len = 0;
    char *text = NULL;
    size_t size = 0;
    if (!resume || gl_read_file(path, (void **)&text, &size) < 0) {
        gl_clear_error();
        *log = gl_calloc(1, 1);
        return *log ? 0 : GL_ENOMEM;
    }
    char *out = gl_malloc(size + 1);
    if (!out) { gl_free(text); return GL_ENOMEM; }
    size_t o = 0;
    for (size_t i = 0; i < size;) {
        size_t j = i;
        while (j < size && text[j] != '\n') j++;
        long e = -1;
        if (j < size) { /* a whole line: its "epoch" */
            text[j] = 0;
            json_object *line = json_tokener_parse(text + i), *v;
            if (line && json_object_object_get_ex(line, "epoch", &v) && json_object_is_type(v, json_type_int))
                e = (long)json_object_get_int64(v);
            json_object_put(line);
            text[j] = '\n';
        }
        if (e >= 1 && e <= start_epoch) {
            memcpy(out + o, text + i, j - i + 1);
            o += j - i + 1;
        }
        i = j + 1;
    }
    out[o] = 0;
    gl_free(text);
    *log = out;
    *len = o;
    return 0;
}

/* Rank 0 writes cfg->checkpoint (atomically): parameters, optimizer state
 * (exported into *state) and the step; other ranks and a NULL path do nothing. */
static int checkpoint_write(const cls_train_config *cfg, nn_params *p, nn_optimizer *opt, nn_params *state,
                            int64_t step, int rank)
{
    if (!cfg->checkpoint || rank != 0) return 0;
    nn_params_free(state);
    nn_params_init(state);
    int rc = nn_optimizer_state_export(opt, state);
    if (rc < 0) return rc;
    nn_checkpoint_meta meta = { .step = step, .config_json = cfg->config_json, .optimizer_state = state,
                                .optimizer_kind = cfg->opt.kind == NN_OPT_SGD ? "sgd" : cfg->opt.kind == NN_OPT_ADAM ? "adam" : "adamw" };
    return nn_checkpoint_save(cfg->checkpoint, p, &meta);
}

/* Runs the callback; 1 when it asks to stop on any rank (all ranks agree). */
static int stop_requested(nn_dist *dist, cls_train_callback cb, void *cb_ctx, const cls_train_status *st)
{
    double stop = cb && cb(cb_ctx, st) ? 1 : 0;
    if (nn_dist_world_size(dist) > 1) {
        int rc = nn_dist_allreduce_values(dist, &stop, 1, NN_DIST_MAX);
        if (rc < 0) return rc;
    }
    return stop > 0;
}

/* Long (~160 lines): the epoch and step loops share resume, seeding, the log
 * and the all-rank stop checks; the pieces that stand alone are above. */
int cls_train(classifier *c, const loader_source *train, const cls_train_config *cfg, cls_train_callback cb, void *cb_ctx)
{
    if (!c || !train || !cfg) return gl_error(GL_EINVAL, "cls_train: NULL argument");
    int rc = cls_train_config_validate(cfg);
    if (rc < 0) return rc;
    if (train->ndim != 4 || train->shape[1] != classifier_get_config(c)->in_channels)
        return gl_error(GL_EINVAL, "cls_train: samples must be [S, %d, H, W]", classifier_get_config(c)->in_channels);
    nn_params *p = classifier_params(c);
    nn_dist *dist = cfg->dist;
    int R = nn_dist_rank(dist), W = nn_dist_world_size(dist);
    nn_optimizer *opt = NULL;
    loader *ld = NULL;
    nn_params state;
    nn_params_init(&state);
    char *log = NULL;     /* the whole JSON-lines log, rewritten atomically after each epoch */
    size_t log_len = 0;
    int64_t step = 0;
    if ((rc = nn_optimizer_new(&opt, p, &cfg->opt)) < 0) goto fail;
    if (cfg->resume) {
        if ((rc = nn_checkpoint_load(cfg->resume, p, &step, NULL, &state)) < 0) goto fail;
        if (state.n && (rc = nn_optimizer_state_import(opt, &state)) < 0) {
            gl_error_prefix(rc, "%s: optimizer state", cfg->resume);
            goto fail;
        }
    }
    /* every rank starts from rank 0's values (a fresh init differs per process) */
    if ((rc = nn_dist_broadcast_params(dist, p)) < 0) goto fail;
    loader_config lc = loader_config_default();
    lc.batch_size = cfg->batch_size;
    lc.threads = cfg->threads;
    lc.prefetch = cfg->prefetch;
    lc.seed = cfg->seed;
    lc.rank = R;
    lc.world = W;
    long padded = loader_padded_count(train->count, W); /* = count for one rank */
    lc.drop_last = padded >= cfg->batch_size; /* BN wants full batches when there are any */
    lc.epochs = 1; /* set below */
    long nb = lc.drop_last ? padded / cfg->batch_size : 1;
    long start_epoch = (long)(step / nb);
    if (start_epoch >= cfg->epochs) goto done; /* already trained */
    lc.start_epoch = start_epoch;
    lc.start_batch = (long)(step % nb); /* a checkpoint written by a stop inside an epoch */
    lc.epochs = cfg->epochs - start_epoch;
    if ((rc = loader_open(&ld, train, &lc)) < 0) goto fail;
    nn_lr_schedule sched = nn_lr_schedule_default();
    sched.kind = cfg->schedule;
    sched.base_lr = cfg->opt.lr;
    sched.warmup_steps = (long)lrint(cfg->warmup_epochs * nb);
    sched.warmup_start = 0.1;
    sched.total_steps = cfg->epochs * nb;
    sched.min_lr = cfg->min_lr;
    sched.step_size = (long)lrint(cfg->step_epochs * nb);
    if (sched.step_size < 1) sched.step_size = 1;
    sched.gamma = cfg->gamma;
    if (cfg->log_path && R == 0 && (rc = log_start(cfg->log_path, cfg->resume != NULL, start_epoch, &log, &log_len)) < 0) goto fail;
    cls_train_status st = { .total_steps = cfg->epochs * nb, .batches = nb, .rank = R, .world = W };
    /* dropout: rank 0 keeps the one-process masks, other ranks draw their own */
    uint64_t drop_seed = cfg->seed + (uint64_t)R * GL_SPLITMIX64_GAMMA;
    int stopping = 0; /* a stop asked after the last step of an epoch */
    for (long epoch = start_epoch; epoch < cfg->epochs; epoch++) {
        double loss_sum = 0, correct = 0, seen = 0, t0 = gl_now();
        long bi = epoch == start_epoch ? lc.start_batch : 0;
        for (;;) {
            const loader_batch *b;
            rc = loader_next(ld, &b);
            if (rc < 0) goto fail;
            if (rc == GL_EOF) break;
            nn_scope *sc = NULL;
            if ((rc = nn_scope_begin(&sc)) < 0) goto fail;
            nn_tensor *x, *y, *logits, *loss, *pred, *eq, *nc;
            double lr = nn_lr_at(&sched, (long)step), lv = 0, ncv = 0;
            nn_manual_seed(step_seed(drop_seed, (long)step)); /* dropout: same masks after a resume */
            if ((rc = batch_tensors(b, train, &x, &y)) < 0 || (rc = nn_optimizer_set_lr(opt, lr)) < 0 ||
                (rc = nn_optimizer_zero_grad(opt)) < 0 || (rc = classifier_forward(&logits, c, x, 1)) < 0 ||
                (rc = nn_cross_entropy(&loss, logits, y, cfg->label_smoothing)) < 0 || (rc = nn_item(loss, &lv)) < 0) {
                nn_scope_end(&sc);
                goto fail;
            }
            double bad = !isfinite(lv); /* all ranks stop together: max over ranks */
            if (W > 1 && (rc = nn_dist_allreduce_values(dist, &bad, 1, NN_DIST_MAX)) < 0) {
                nn_scope_end(&sc);
                goto fail;
            }
            if (bad > 0) {
                nn_scope_end(&sc);
                char what[96];
                if (!isfinite(lv)) snprintf(what, sizeof what, "%g", lv);
                else snprintf(what, sizeof what, "not finite on another of the %d ranks", W);
                rc = gl_error(GL_ENUMERIC, "training diverged: loss is %s at step %lld (epoch %ld, batch %ld, lr %g); "
                              "lower the learning rate, add warm-up or gradient clipping, or check the inputs",
                              what, (long long)step, epoch + 1, bi, lr);
                goto fail;
            }
            double gnorm = 0;
            if ((rc = nn_backward(loss)) < 0 || (rc = nn_dist_allreduce_grads(dist, p)) < 0 ||
                (cfg->clip_grad > 0 && (rc = nn_clip_grad_norm(p, cfg->clip_grad, &gnorm)) < 0) ||
                (rc = nn_optimizer_step(opt)) < 0 || (rc = nn_argmax(&pred, logits, 1, 0)) < 0 ||
                (rc = nn_compare(&eq, NN_EQ, pred, y)) < 0 || (rc = nn_sum(&nc, eq, NULL, 0, 0)) < 0 ||
                (rc = nn_item(nc, &ncv)) < 0) {
                nn_scope_end(&sc);
                goto fail;
            }
            nn_scope_end(&sc);
            step++;
            bi++;
            /* sums over the combined batch (every rank calls this; with one rank it returns at once) */
            double sums[2] = { lv * b->n, ncv };
            if ((rc = nn_dist_allreduce_values(dist, sums, 2, NN_DIST_SUM)) < 0) goto fail;
            loss_sum += sums[0];
            correct += sums[1];
            seen += (double)b->n * W;
            st.step = (long)step;
            st.epoch = epoch;
            st.batch = bi;
            st.loss = loss_sum / seen;
            st.acc = correct / seen;
            st.lr = lr;
            st.clips_per_s = seen / (gl_now() - t0 + 1e-12);
            st.end_of_epoch = 0;
            if ((rc = stop_requested(dist, cb, cb_ctx, &st)) < 0) goto fail;
            if (rc && bi == nb) { /* the epoch's last step: its checkpoint and log line first */
                stopping = 1;
                break;
            }
            if (rc) { /* inside an epoch: a checkpoint that a resume continues at the next batch */
                if ((rc = checkpoint_write(cfg, p, opt, &state, step, R)) < 0) goto fail;
                rc = gl_error(GL_ECANCELED, "training stopped on request at step %lld (epoch %ld, batch %ld of %ld)%s%s",
                              (long long)step, epoch + 1, bi, nb, cfg->checkpoint ? "; checkpoint " : "",
                              cfg->checkpoint ? cfg->checkpoint : "");
                goto fail;
            }
        }
        if ((rc = checkpoint_write(cfg, p, opt, &state, step, R)) < 0) goto fail;
        if (cfg->log_path && R == 0) {
            char line[512];
            int k = snprintf(line, sizeof line,
                             "{\"epoch\": %ld, \"step\": %lld, \"loss\": %.6g, \"accuracy\": %.6g, \"lr\": %.6g, \"clips_per_s\": %.4g}\n",
                             epoch + 1, (long long)step, st.loss, st.acc, st.lr, st.clips_per_s);
            char *nl = gl_realloc(log, log_len + (size_t)k + 1);
            if (!nl) { rc = GL_ENOMEM; goto fail; }
            log = nl;
            memcpy(log + log_len, line, (size_t)k + 1);
            log_len += (size_t)k;
            if ((rc = gl_write_file_atomic(cfg->log_path, log, log_len)) < 0) goto fail;
        }
        st.end_of_epoch = 1;
        if (!stopping && (rc = stop_requested(dist, cb, cb_ctx, &st)) < 0) goto fail;
        if (stopping) rc = 1;
        if (rc) { rc = gl_error(GL_ECANCELED, "training stopped on request after epoch %ld", epoch + 1); goto fail; }
    }
done:
    rc = 0;
fail:
    gl_free(log);
    loader_close(&ld);
    nn_params_free(&state);
    nn_optimizer_free(&opt);
    return rc;
}

int cls_predict(classifier *c, const loader_source *src, int batch_size, int threads, float *scores, int32_t *labels,
                long *items, cls_train_callback cb, void *cb_ctx)
{
    if (!c || !src || !scores) return gl_error(GL_EINVAL, "cls_predict: NULL argument");
    int C = classifier_get_config(c)->num_classes;
    loader_config lc = loader_config_default();
    lc.batch_size = batch_size;
    lc.threads = threads;
    lc.shuffle = 0;
    lc.epochs = 1;
    loader *ld = NULL;
    int rc = loader_open(&ld, src, &lc);
    if (rc < 0) return rc;
    int prev = nn_grad_mode_set(0);
    long done = 0;
    cls_train_status st = { .batches = loader_batches_per_epoch(ld) };
    double t0 = gl_now();
    for (;;) {
        const loader_batch *b;
        rc = loader_next(ld, &b);
        if (rc == GL_EOF) { rc = 0; break; }
        if (rc < 0) break;
        nn_scope *sc = NULL;
        if ((rc = nn_scope_begin(&sc)) < 0) break;
        nn_tensor *x, *logits, *prob;
        if ((rc = batch_tensors(b, src, &x, NULL)) < 0 || (rc = classifier_forward(&logits, c, x, 0)) < 0 ||
            (rc = nn_softmax(&prob, logits, 1)) < 0 ||
            (rc = nn_copy_to(prob, scores + (size_t)b->index * batch_size * C, (size_t)b->n * C * sizeof(float), NN_F32)) < 0) {
            nn_scope_end(&sc);
            break;
        }
        nn_scope_end(&sc);
        for (int i = 0; i < b->n; i++) {
            long pos = b->index * (long)batch_size + i;
            if (labels) labels[pos] = b->labels[i];
            if (items) items[pos] = b->items[i];
        }
        done += b->n;
        st.batch = b->index + 1;
        st.step = done;
        st.clips_per_s = done / (gl_now() - t0 + 1e-12);
        if (cb && cb(cb_ctx, &st)) { rc = gl_error(GL_ECANCELED, "evaluation stopped on request"); break; }
    }
    nn_grad_mode_set(prev);
    loader_close(&ld);
    return rc;
}
