/* glocal run CONFIG — the whole experiment: data → GLOCAL self-supervised →
 * motion caches → one classifier per stream → evaluation → fusion → report.
 *
 * Each stage is a glocal subcommand run as a child process (stages.h); its
 * key hashes its own command line and the keys of the stages it reads, so a
 * re-run skips what is finished and redoes only what a config change touched.
 * The report (markdown, JSON, figures) is experiments/report.h's. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "experiments/cli.h"
#include "experiments/commands.h"
#include "experiments/config.h"
#include "datasets/ucf101.h"
#include "experiments/extract.h"
#include "experiments/report.h"
#include "experiments/stages.h"
#include "nn/nn.h"

GLOCAL_COMMAND(run, "run", "run an experiment end to end (data, GLOCAL, caches, classifiers, fusion, report)")

#define MAX_ARGS 96
#define MAX_STAGES 64

typedef struct {
    char *v[MAX_ARGS + 1];
    int n;
} argvec;

static void av_add(argvec *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void av_add(argvec *a, const char *fmt, ...)
{
    if (a->n >= MAX_ARGS) return;
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    a->v[a->n++] = gl_strdup(buf);
    a->v[a->n] = NULL;
}

/* An option and its value as two arguments ("--out", "DIR"): every glocal
 * subcommand parses that form. */
static void av_opt(argvec *a, const char *opt, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void av_opt(argvec *a, const char *opt, const char *fmt, ...)
{
    if (a->n + 2 > MAX_ARGS) return;
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    a->v[a->n++] = gl_strdup(opt);
    a->v[a->n++] = gl_strdup(buf);
    a->v[a->n] = NULL;
}

static void av_free(argvec *a)
{
    for (int i = 0; i < a->n; i++) gl_free(a->v[i]);
    a->n = 0;
}

typedef struct {
    exp_config cfg;
    char out[PATH_MAX];
    char data[PATH_MAX];
    char lists[PATH_MAX];
    char self[PATH_MAX];
    char from[64];
    int threads;          /* per stage process (--threads, else 1: see cmd_run) */
    int jobs;             /* independent stages run at once */
    pthread_mutex_t mu;   /* r->st and the chain bookkeeping below */
    /* the per-source chains (extract -> train -> evaluate), run in parallel */
    char model[PATH_MAX + 64];
    const char *k_data, *k_motion;
    stage_result *s_eval[EXP_MAX_SOURCES];
    /* GLOCAL sources of one pass (extract_method_pass) share one extract
     * stage, run by the chain of the first of them (its leader); the others'
     * chains start once it is done. */
    int leader[EXP_MAX_SOURCES];     /* the source whose chain extracts this one's cache */
    stage_result *s_ext[EXP_MAX_SOURCES]; /* leaders: their extract stage, once done */
    int extracted[EXP_MAX_SOURCES];  /* leaders: their extract stage is done */
    int chain_state[EXP_MAX_SOURCES]; /* 0 waiting, 1 started */
    pthread_cond_t chain_cv;         /* an extract stage or a chain finished */
    int chain_rc;
    char chain_msg[4096];
    stage_result st[MAX_STAGES];
    int nst;
    char cmdline[4096];
} runner;

static const char *stage_order[] = { "data", "motion", "eval-motion", "extract", "train", "evaluate",
                                     "fuse", "samples", "report" };

static int stage_rank(const char *name)
{
    for (int i = 0; i < (int)(sizeof stage_order / sizeof stage_order[0]); i++) {
        size_t n = strlen(stage_order[i]);
        if (strncmp(name, stage_order[i], n) == 0 && (name[n] == 0 || name[n] == '-')) return i;
    }
    return -1;
}

/* glocal [--threads T] [--device D] */
static void av_glocal(runner *r, argvec *a)
{
    av_add(a, "%s", r->self);
    if (r->threads > 0) av_opt(a, "--threads", "%d", r->threads);
    av_opt(a, "--device", "%s", cli_g.device);
}

/* Hashes s with every occurrence of `from` replaced by `to`. */
static uint64_t hash_normalised(uint64_t h, const char *s, const char *from, const char *to)
{
    size_t nf = strlen(from);
    char piece[2];
    piece[1] = 0;
    while (*s) {
        if (nf && !strncmp(s, from, nf) && (s[nf] == '/' || s[nf] == 0 || s[nf] == '\'')) {
            h = stage_hash(h, to);
            s += nf;
        } else {
            piece[0] = *s++;
            h = stage_hash(h, piece);
        }
    }
    return h;
}

/* Runs one stage. *key_out gets its key (for stages that read it). extra_resume
 * is appended (not hashed) when an unfinished run of the same key exists. */
static int run_stage(runner *r, const char *name, argvec *a, const char *const *upstream,
                     const char *resume_flag, const char *resume_file, stage_result **res_out,
                     const char *partial_ok)
{
    pthread_mutex_lock(&r->mu);
    if (r->nst >= MAX_STAGES) {
        pthread_mutex_unlock(&r->mu);
        return gl_error(GL_EINVAL, "too many stages");
    }
    stage_result *res = &r->st[r->nst++];
    pthread_mutex_unlock(&r->mu);
    memset(res, 0, sizeof *res);
    snprintf(res->name, sizeof res->name, "%s", name);
    snprintf(res->dir, sizeof res->dir, "%s/stages/%s", r->out, name);
    uint64_t h = stage_hash(0, GLOCAL_VERSION);
    h = stage_hash(h, name);
    for (int i = 1; i < a->n; i++) { /* argv[0] is this binary's path: not part of the key */
        if (strncmp(a->v[i], "--threads", 9) == 0) continue; /* results do not depend on it */
        if (i > 1 && strcmp(a->v[i - 1], "--threads") == 0) continue;
        if (!strcmp(a->v[i], r->self)) { /* the binary: by name, wherever it was built */
            h = stage_hash(h, "glocal\x1f");
            continue;
        }
        /* paths inside OUT count relative to it and this binary by name, so a
         * moved or copied results folder keeps its finished stages */
        h = hash_normalised(h, a->v[i], r->out, "$OUT");
        h = stage_hash(h, "\x1f");
    }
    for (int i = 0; upstream && upstream[i]; i++) h = stage_hash(h, upstream[i]);
    snprintf(res->key, sizeof res->key, "%016llx", (unsigned long long)h);
    if (res_out) *res_out = res;
    /* --from: this stage and every later one in stage_order are redone */
    int forcing = r->from[0] && stage_rank(name) >= stage_rank(r->from);
    if (!forcing && stage_is_done(res->dir, res->key, &res->seconds, res->note, sizeof res->note)) {
        res->skipped = 1;
        fprintf(stderr, "glocal run: %-28s done earlier (%.1f s), skipped\n", name, res->seconds);
        return 0;
    }
    /* A folder started under another key holds stale partial output: start clean. */
    char started[PATH_MAX + 32];
    snprintf(started, sizeof started, "%s/stage.started", res->dir);
    int resume = 0;
    void *prev = NULL;
    size_t prevn = 0;
    if (!forcing && gl_read_file(started, &prev, &prevn) == 0 && prevn == 16 &&
        memcmp(prev, res->key, 16) == 0) {
        resume = 1;
    } else {
        char cmd[PATH_MAX + 32];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", res->dir);
        if (system(cmd) != 0) { gl_free(prev); return gl_error(GL_EIO, "%s: cannot clear", res->dir); }
    }
    gl_free(prev);
    gl_clear_error();
    int rc = gl_mkdirs(res->dir);
    if (rc < 0) return rc;
    if ((rc = gl_write_file_atomic(started, res->key, 16)) < 0) return rc;
    if (resume && resume_flag) {
        char rf[PATH_MAX + 64];
        snprintf(rf, sizeof rf, "%s/%s", res->dir, resume_file ? resume_file : "");
        if (!resume_file || access(rf, R_OK) == 0) av_add(a, "%s", resume_flag);
    }
    if (cli_signal_caught()) /* SIGINT/SIGTERM: no new stage */
        return gl_error(GL_ECANCELED, "stopped by signal %d before stage %s; rerun the same command to resume",
                        cli_signal_caught(), name);
    fprintf(stderr, "glocal run: %-28s %s\n", name, resume ? "resuming" : "running");
    char log[PATH_MAX + 16];
    snprintf(log, sizeof log, "%s/log.txt", res->dir);
    double t0 = gl_now();
    int status = stage_exec(name, a->v, log);
    res->seconds = gl_now() - t0;
    if (status < 0) return status;
    /* stopped by the signal stage_exec passed on: not done (one that
     * finished before it is, and is marked so below) */
    if (status != 0 && cli_signal_caught())
        return gl_error(GL_ECANCELED, "stopped by signal %d during stage %s (exit status %d, its log is %s); "
                        "rerun the same command to resume", cli_signal_caught(), name, status, log);
    /* partial_ok: exit status 1 with this file in the stage folder means the
     * stage finished and recorded items it had to skip or warn about (glocal
     * extract: bad or missing videos, kept in the cache's /errors, and damaged
     * ones stored anyway, in its /warnings, whichever run of the stage met
     * them). The run goes on and says so. */
    char pf[PATH_MAX + 64];
    if (status == 1 && partial_ok) snprintf(pf, sizeof pf, "%s/%s", res->dir, partial_ok);
    if (status == 1 && partial_ok && access(pf, R_OK) == 0) {
        snprintf(res->note, sizeof res->note,
                 "finished, but some items failed or were damaged: see %s (glocal cache info %s)", log, pf);
        fprintf(stderr, "glocal run: %s %s\n", name, res->note);
    } else if (status != 0) {
        return gl_error(GL_EIO, "stage %s failed (exit status %d); its log is %s; rerun the same "
                                "command to resume", name, status, log);
    }
    return stage_mark_done(res->dir, res->key, res->seconds, res->note);
}

static int is_motion_source(const char *s) { return strcmp(s, "rgb") != 0; }
static int is_glocal_source(const char *s) { return strncmp(s, "glocal-", 7) == 0; }

/* ---- stages ------------------------------------------------------------------------ */

static int stage_data(runner *r, stage_result **res)
{
    exp_config *c = &r->cfg;
    if (strcmp(c->kind, "synthetic") != 0) {
        *res = NULL;
        return 0;
    }
    snprintf(r->data, sizeof r->data, "%s/stages/data/dataset", r->out);
    r->lists[0] = 0;
    argvec a = { 0 };
    av_glocal(r, &a);
    av_add(&a, "synth");
    av_opt(&a, "--out", "%s", r->data);
    av_opt(&a, "--classes", "%d", c->classes);
    av_opt(&a, "--clips-per-class", "%d", c->clips_per_class);
    av_opt(&a, "--frames", "%d", c->frames);
    av_opt(&a, "--size", "%dx%d", c->width, c->height);
    av_opt(&a, "--camera", "%s", c->camera);
    if (c->textures[0]) av_opt(&a, "--textures", "%s", c->textures);
    av_opt(&a, "--seed", "%d", c->dataset_seed);
    int rc = run_stage(r, "data", &a, NULL, NULL, NULL, res, NULL);
    av_free(&a);
    return rc;
}

static void add_data_args(runner *r, argvec *a, const char *data_flag)
{
    av_opt(a, data_flag, "%s", r->data);
    if (r->lists[0]) av_opt(a, "--lists", "%s", r->lists);
    av_opt(a, "--split", "%d", r->cfg.split);
}

/* Sources that share source i's extract stage (i itself first), in config
 * order; returns how many. */
static int extract_group(const runner *r, int i, int *members)
{
    int n = 0;
    for (int k = 0; k < r->cfg.nsources; k++)
        if (r->leader[k] == i) members[n++] = k;
    return n;
}

/* Each source's leader: a GLOCAL source's is the first source of its pass
 * (glocal-local, glocal-residual and glocal-mixed come from one inference);
 * every other source is its own. */
static void group_sources(runner *r)
{
    const exp_config *c = &r->cfg;
    for (int i = 0; i < c->nsources; i++) {
        r->leader[i] = i;
        const char *pass = is_glocal_source(c->sources[i]) ? extract_method_pass(c->sources[i]) : NULL;
        for (int k = 0; pass && k < i; k++)
            if (is_glocal_source(c->sources[k]) && !strcmp(extract_method_pass(c->sources[k]), pass)) {
                r->leader[i] = r->leader[k];
                break;
            }
    }
}

/* Source i's cache: OUT/stages/extract-SRC/cache.h5 when its extract stage
 * is its own, OUT/stages/extract-PASS/SRC.h5 when it shares one. */
static void cache_path(const runner *r, int i, char *out, size_t n)
{
    int members[EXP_MAX_SOURCES];
    const char *src = r->cfg.sources[i];
    if (extract_group(r, r->leader[i], members) == 1)
        snprintf(out, n, "%s/stages/extract-%s/cache.h5", r->out, src);
    else
        snprintf(out, n, "%s/stages/extract-%s/%s.h5", r->out, extract_method_pass(src), src);
}

/* The extract stage of leader i: one glocal extract writing the cache of
 * every source of its group (one GLOCAL inference per pair for all). */
static int stage_extract(runner *r, int i, stage_result **s_ext)
{
    const exp_config *c = &r->cfg;
    const char *src = c->sources[i];
    int members[EXP_MAX_SOURCES];
    const int n = extract_group(r, i, members);
    argvec a = { 0 };
    av_glocal(r, &a);
    av_add(&a, "extract");
    add_data_args(r, &a, "--dataset");
    char name[64], cache[PATH_MAX + 96], first[PATH_MAX + 96] = "";
    for (int k = 0; k < n; k++) {
        /* the order of a stage of one source as it always was (its key) */
        av_opt(&a, "--method", "%s", c->sources[members[k]]);
        if (k == 0 && is_glocal_source(src)) av_opt(&a, "--model", "%s", r->model);
        cache_path(r, members[k], cache, sizeof cache);
        av_opt(&a, "--out", "%s", cache);
        if (k == 0) snprintf(first, sizeof first, "%s", strrchr(cache, '/') + 1);
    }
    av_opt(&a, "--size", "%dx%d", c->extract_h, c->extract_w);
    av_opt(&a, "--stride", "%d", c->extract_stride);
    snprintf(name, sizeof name, "extract-%s", n == 1 ? src : extract_method_pass(src));
    const char *up[] = { r->k_data, is_glocal_source(src) ? r->k_motion : "", NULL };
    int rc = run_stage(r, name, &a, up, NULL, NULL, s_ext, first);
    av_free(&a);
    return rc;
}

/* extract (motion sources) -> train-classifier -> evaluate for source i; the
 * extract stage is the leader's (run here when i leads, else done before
 * this chain started). */
static int run_chain(runner *r, int i)
{
    exp_config *c = &r->cfg;
    int rc;
        const char *src = c->sources[i];
        char name[64], cache[PATH_MAX + 96] = "";
        stage_result *s_ext = NULL, *s_tr = NULL;
        if (is_motion_source(src)) {
            if (r->leader[i] == i) {
                rc = stage_extract(r, i, &s_ext);
                pthread_mutex_lock(&r->mu);
                r->s_ext[i] = s_ext;
                r->extracted[i] = rc >= 0;
                pthread_cond_broadcast(&r->chain_cv);
                pthread_mutex_unlock(&r->mu);
                if (rc < 0) return rc;
            } else {
                s_ext = r->s_ext[r->leader[i]];
            }
            cache_path(r, i, cache, sizeof cache);
        }
        argvec a = { 0 };
        av_glocal(r, &a);
        av_add(&a, "train-classifier");
        add_data_args(r, &a, "--data");
        av_opt(&a, "--out", "%s/stages/train-%s", r->out, src);
        av_opt(&a, "--modality", "%s", is_motion_source(src) ? "motion" : "rgb");
        if (cache[0]) av_opt(&a, "--cache", "%s", cache);
        av_opt(&a, "--stack", "%d", c->stack);
        av_opt(&a, "--segments", "%d", c->segments);
        av_opt(&a, "--size", "%dx%d", c->crop_w, c->crop_h);
        if (!is_motion_source(src))
            av_opt(&a, "--decode", "%dx%d", c->decode_w ? c->decode_w : c->width,
                   c->decode_h ? c->decode_h : c->height);
        if (!c->flip) av_add(&a, "--no-flip");
        av_opt(&a, "--arch", "%s", c->arch);
        if (c->width_mult) av_opt(&a, "--width", "%d", c->width_mult);
        av_opt(&a, "--dropout", "%g", c->dropout);
        av_opt(&a, "--optimizer", "%s", c->optimizer);
        av_opt(&a, "--lr", "%g", c->lr);
        av_opt(&a, "--weight-decay", "%g", c->weight_decay);
        av_opt(&a, "--label-smoothing", "%g", c->label_smoothing);
        av_opt(&a, "--epochs", "%d", c->epochs);
        av_opt(&a, "--batch", "%d", c->batch);
        av_opt(&a, "--seed", "%d", c->classifier_seed);
        snprintf(name, sizeof name, "train-%s", src);
        const char *up[] = { r->k_data, s_ext ? s_ext->key : "", NULL };
        rc = run_stage(r, name, &a, up, "--resume", "checkpoint.h5", &s_tr, NULL);
        av_free(&a);
        if (rc < 0) return rc;
        argvec e = { 0 };
        av_glocal(r, &e);
        av_add(&e, "evaluate");
        av_opt(&e, "--checkpoint", "%s/stages/train-%s/checkpoint.h5", r->out, src);
        add_data_args(r, &e, "--data");
        av_opt(&e, "--out", "%s/stages/evaluate-%s", r->out, src);
        if (cache[0]) av_opt(&e, "--cache", "%s", cache);
        av_opt(&e, "--segments", "%d", c->test_segments);
        av_opt(&e, "--crops", "%d", c->test_crops);
        av_add(&e, "--json");
        snprintf(name, sizeof name, "evaluate-%s", src);
        const char *up2[] = { s_tr->key, s_ext ? s_ext->key : "", NULL };
        rc = run_stage(r, name, &e, up2, NULL, NULL, &r->s_eval[i], NULL);
        av_free(&e);
        if (rc < 0) return rc;
    
    return 0;
}

/* The first chain not started whose cache is made by its own chain or by a
 * finished extract stage (under r->mu); -1 when none can start now, -2 when
 * every chain has started. */
static int next_chain(const runner *r)
{
    int waiting = 0;
    for (int i = 0; i < r->cfg.nsources; i++) {
        if (r->chain_state[i]) continue;
        if (r->leader[i] == i || r->extracted[r->leader[i]]) return i;
        waiting = 1;
    }
    return waiting ? -1 : -2;
}

static void *chain_worker(void *arg)
{
    runner *r = arg;
    pthread_mutex_lock(&r->mu);
    while (r->chain_rc >= 0) {
        int i = next_chain(r);
        if (i == -2) break;
        if (i == -1) { /* a leader's chain is still extracting: it broadcasts */
            pthread_cond_wait(&r->chain_cv, &r->mu);
            continue;
        }
        r->chain_state[i] = 1;
        pthread_mutex_unlock(&r->mu);
        int rc = run_chain(r, i);
        pthread_mutex_lock(&r->mu);
        if (rc < 0 && r->chain_rc >= 0) {
            r->chain_rc = rc;
            snprintf(r->chain_msg, sizeof r->chain_msg, "%s", gl_last_error());
        }
        pthread_cond_broadcast(&r->chain_cv);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static int run_chains(runner *r)
{
    pthread_t t[EXP_MAX_SOURCES];
    int n = r->jobs < r->cfg.nsources ? r->jobs : r->cfg.nsources, started = 0;
    group_sources(r);
    memset(r->chain_state, 0, sizeof r->chain_state);
    memset(r->extracted, 0, sizeof r->extracted);
    r->chain_rc = 0;
    for (int k = 1; k < n; k++)
        if (pthread_create(&t[started], NULL, chain_worker, r) == 0) started++;
    chain_worker(r);
    for (int k = 0; k < started; k++) pthread_join(t[k], NULL);
    if (r->chain_rc < 0) return gl_error(r->chain_rc, "%s", r->chain_msg);
    return 0;
}

/* ---- samples: frame | mixed | TV-L1 | global | local | mask, for a few test clips ---- */

#define NUM_SAMPLES 3

static int stage_samples(runner *r, stage_result *s_motion)
{
    dataset_index *idx = NULL;
    int rc = dataset_index_load(&idx, r->data, r->lists[0] ? r->lists : NULL, r->cfg.split);
    if (rc < 0) return rc;
    argvec a = { 0 };
    /* one shell line per sample keeps this a single stage with a single log */
    char script[8192] = "set -e\n";
    int taken = 0, last_label = -1;
    for (long i = 0; i < idx->num_clips && taken < NUM_SAMPLES; i++) {
        const dataset_clip *cl = &idx->clips[i];
        if (cl->split != DATASET_TEST || !cl->exists || cl->label == last_label) continue;
        last_label = cl->label;
        size_t o = strlen(script);
        snprintf(script + o, sizeof script - o,
                 "\"$1\" \"$2\" \"$3\" motion --model '%s/stages/motion/glocal.h5' --out '%s/stages/samples/%d' "
                 "--video '%s' --frame %d --zoom %d\n",
                 r->out, r->out, taken, cl->path,
                 r->cfg.frames > 8 ? r->cfg.frames / 2 : 0, r->cfg.width < 128 ? 3 : 1);
        taken++;
    }
    dataset_index_free(&idx);
    if (!taken) return 0;
    av_add(&a, "/bin/sh");
    av_add(&a, "-c");
    av_add(&a, "%s", script);
    av_add(&a, "sh");                  /* $0 */
    av_add(&a, "%s", r->self);         /* $1: this glocal */
    av_opt(&a, "--threads", "%d", r->threads); /* $2 $3 (not hashed) */
    const char *up[] = { s_motion ? s_motion->key : "", NULL };
    rc = run_stage(r, "samples", &a, up, NULL, NULL, NULL, NULL);
    av_free(&a);
    return rc;
}

/* GLOCAL trained self-supervised (train-motion, data-parallel over the
 * cores), when a source needs it or the data is synthetic (eval-motion).
 * model gets its checkpoint path, "" when the stage does not apply. */
static int stage_motion(runner *r, const char *k_data, stage_result **s_motion, char *model, size_t model_size)
{
    const exp_config *c = &r->cfg;
    int need_glocal = 0, rc;
    for (int i = 0; i < c->nsources; i++) need_glocal |= is_glocal_source(c->sources[i]);
    model[0] = 0;
    if (!need_glocal && strcmp(c->kind, "synthetic") != 0) return 0;
    argvec a = { 0 };
    /* ranks = 0: one process per core (or GPU). Measured on an idle 2-core
     * machine (train-motion, 64x64, batch 16): 2 ranks x 1 thread 13.6
     * steps/s, 1 rank x 2 threads 10.7, 1 x 1 6.6 (README, "Scaling out"). */
    int ranks = c->ranks;
    if (ranks == 0) {
        ranks = strcmp(cli_g.device, "cuda") == 0 ? nn_cuda_device_count() : gl_num_cores() / r->threads;
        if (ranks < 1) ranks = 1;
        while (ranks > 1 && c->motion_batch % ranks != 0) ranks--;
    }
    if (ranks > 1) {
        /* data-parallel GLOCAL training: `ranks` single-thread processes */
        av_add(&a, "%s", r->self);
        av_add(&a, "launch");
        av_opt(&a, "-n", "%d", ranks);
        av_add(&a, "--");
        av_add(&a, "glocal");
        av_opt(&a, "--threads", "%d", r->threads);
        av_opt(&a, "--device", "%s", cli_g.device);
    } else {
        av_glocal(r, &a);
    }
    av_add(&a, "train-motion");
    av_opt(&a, "--out", "%s/stages/motion", r->out);
    add_data_args(r, &a, "--dataset");
    av_opt(&a, "--size", "%d", c->motion_w);
    if (c->motion_minutes > 0) av_opt(&a, "--minutes", "%g", c->motion_minutes);
    if (c->motion_steps > 0) av_opt(&a, "--steps", "%ld", c->motion_steps);
    av_opt(&a, "--batch", "%d", c->motion_batch);
    av_opt(&a, "--lr", "%g", c->motion_lr);
    av_opt(&a, "--seed", "%d", c->motion_seed);
    av_opt(&a, "--lme-start", "%ld", c->motion_lme_start);
    av_opt(&a, "--mask-start", "%ld", c->motion_mask_start);
    av_opt(&a, "--teacher", "%s", c->motion_teacher);
    const char *up[] = { k_data, NULL };
    rc = run_stage(r, "motion", &a, up, "--resume", "glocal.h5", s_motion, NULL);
    av_free(&a);
    if (rc < 0) return rc;
    snprintf(model, model_size, "%s/stages/motion/glocal.h5", r->out);
    return 0;
}

/* The model against the synthetic ground truth (eval-motion). */
static int stage_eval_motion(runner *r, const char *model, const char *k_data, stage_result *s_motion,
                             stage_result **s_evm)
{
    argvec a = { 0 };
    av_glocal(r, &a);
    av_add(&a, "eval-motion");
    av_opt(&a, "--model", "%s", model);
    av_opt(&a, "--dataset", "%s", r->data);
    av_add(&a, "--json");
    const char *up[] = { k_data, s_motion->key, NULL };
    int rc = run_stage(r, "eval-motion", &a, up, NULL, NULL, s_evm, NULL);
    av_free(&a);
    return rc;
}

/* One fuse stage per configured fusion of the evaluated streams. */
static int stage_fusions(runner *r, stage_result **s_eval, stage_result **s_fuse)
{
    exp_config *c = &r->cfg;
    for (int f = 0; f < c->nfusions; f++) {
        exp_fusion *fu = &c->fusions[f];
        argvec a = { 0 };
        av_glocal(r, &a);
        av_add(&a, "fuse");
        const char *up[EXP_MAX_SOURCES + 1] = { 0 };
        char w[256] = "";
        for (int k = 0; k < fu->nstreams; k++) {
            av_add(&a, "%s/stages/evaluate-%s/scores.csv", r->out, fu->streams[k]);
            for (int i = 0; i < c->nsources; i++)
                if (!strcmp(c->sources[i], fu->streams[k])) up[k] = s_eval[i]->key;
            size_t o = strlen(w);
            snprintf(w + o, sizeof w - o, "%s%g", k ? "," : "", fu->weights[k]);
        }
        av_opt(&a, "--weights", "%s", w);
        av_opt(&a, "--out", "%s/stages/fuse-%s", r->out, fu->name);
        av_add(&a, "--json");
        char name[96];
        snprintf(name, sizeof name, "fuse-%s", fu->name);
        int rc = run_stage(r, name, &a, up, NULL, NULL, &s_fuse[f], NULL);
        av_free(&a);
        if (rc < 0) return rc;
    }
    return 0;
}

/* --from STAGE: a name of stage_order, alone or with a suffix ("train-rgb"). */
static int parse_from(void *ctx, const char *v, char *why, size_t n)
{
    if (stage_rank(v) < 0)
        return snprintf(why, n, "unknown stage '%s' (data, motion, eval-motion, extract, train, evaluate, "
                        "fuse, samples or report)", v), -1;
    runner *r = ctx;
    snprintf(r->from, sizeof r->from, "%s", v);
    return 0;
}

/* The options into r (r->from) and *config, *root, *out. Returns
 * CLI_PARSED or the exit status. */
static int parse_options(runner *r, int argc, char **argv, const char **config, const char **root,
                         const char **lists, const char **out)
{
    cli_opt opts[] = {
        CLI_STR("--root", root, "DIR",
                "dataset root: for UCF-101 the folder with the class folders, for NCAA the output of glocal "
                "ncaa-import", .def = "the config's dataset.root"),
        CLI_STR("--lists", lists, "DIR", "folder of classInd.txt and the split lists",
                .def = "the config's dataset.lists, else the first of DIR/ucfTrainTestlist, "
                       "DIR/../ucfTrainTestlist, DIR/../annotations and DIR that has them"),
        CLI_STR("--out", out, "DIR", "where everything goes", .def = "results/NAME"),
        CLI_CALL("--from", parse_from, r, "STAGE",
                 "redo STAGE and everything after it: data, motion, eval-motion, extract, train, evaluate, "
                 "fuse, samples, report"),
        CLI_END,
    };
    int nargs = 0;
    const char *args[2] = { NULL, NULL };
    cli_spec spec = {
        .cmd = "run", .opts = opts, .args = "CONFIG", .arg = args, .max_args = 2, .nargs = &nargs,
        .about = "Runs an experiment end to end: the dataset (glocal synth for synthetic\n"
                 "configs), GLOCAL trained self-supervised on the training videos (glocal\n"
                 "train-motion), its accuracy against ground truth (synthetic: glocal\n"
                 "eval-motion), one motion cache per motion source (glocal extract; the\n"
                 "GLOCAL sources of one pass, e.g. glocal-local, glocal-residual and\n"
                 "glocal-mixed, from one extraction: stage extract-glocal), one\n"
                 "classifier per stream (glocal train-classifier), their evaluation (glocal\n"
                 "evaluate), the fusions (glocal fuse), sample decompositions, and the report\n"
                 "OUT/report.md with its JSON twin OUT/report.json.\n\n"
                 "Every stage's output lives in OUT/stages/NAME with its log (log.txt, which\n"
                 "starts with the exact command). A stage is keyed by its command line and the\n"
                 "stages it reads: a re-run skips finished stages, resumes an interrupted one,\n"
                 "and redoes only what a changed config touches. SIGINT or SIGTERM is passed\n"
                 "on to the running stages, which stop cleanly and are not marked done; the\n"
                 "exit status is then 130 / 143 and a re-run resumes.\n\n"
                 "CONFIG is experiments/synthetic.cfg, ucf101.cfg, ncaa.cfg or your own.\n",
        .epilog = "Global options (before 'run') apply to every stage: --threads N, --device cuda.\n",
    };
    int rc = cli_parse(&spec, argc, argv);
    if (rc != CLI_PARSED) return rc;
    if (!nargs) return cli_usage_error("run", "which config? e.g. glocal run experiments/synthetic.cfg");
    if (nargs > 1) return cli_usage_error("run", "one config only (got '%s' and '%s')", args[0], args[1]);
    *config = args[0];
    return CLI_PARSED;
}

/* The dataset of a non-synthetic config: r->data = the real path of --root
 * (else the config's dataset.root), r->lists = the real path of --lists (else
 * dataset.lists), else the folder cli_lists_locate finds; left empty when that
 * is the root itself, so the stages' command lines (their keys) stay as they
 * were. Prints an error and returns its status, or CLI_OK. */
static int resolve_root(runner *r, const char *config, const char *root, const char *lists)
{
    const char *rt = root ? root : r->cfg.root;
    if (!rt || !rt[0]) return cli_usage_error("run", "%s: dataset.root is empty; pass --root DIR", config);
    if (!realpath(rt, r->data)) return cli_usage_error("run", "--root %s: %s", rt, strerror(errno));
    const char *ls = lists ? lists : (r->cfg.lists[0] ? r->cfg.lists : NULL);
    char found[PATH_MAX + 32];
    int code;
    if (ls) {
        if (!realpath(ls, found))
            return cli_usage_error("run", "%s %s: %s", lists ? "--lists" : "dataset.lists", ls, strerror(errno));
    } else if ((code = cli_lists_locate("run", r->data, NULL, found, sizeof found)) != CLI_OK) {
        return code;
    }
    r->lists[0] = 0;
    if (strcmp(found, r->data) != 0) snprintf(r->lists, sizeof r->lists, "%s", found);
    return CLI_OK;
}

/* Every stage in order, then the report. Returns 0, or a negative code
 * (gl_last_error() says which stage). */
static int run_stages(runner *r)
{
    exp_config *c = &r->cfg;
    double t_all = gl_now();
    stage_result *s_data = NULL, *s_motion = NULL, *s_evm = NULL;
    int rc;
    if ((rc = stage_data(r, &s_data)) < 0) return rc;
    const char *k_data = s_data ? s_data->key : "";
    /* GLOCAL, self-supervised */
    char model[PATH_MAX + 64] = "";
    if ((rc = stage_motion(r, k_data, &s_motion, model, sizeof model)) < 0) return rc;
    /* motion quality against the ground truth (synthetic data only) */
    if (!strcmp(c->kind, "synthetic") && model[0] && (rc = stage_eval_motion(r, model, k_data, s_motion, &s_evm)) < 0)
        return rc;
    /* caches, classifiers, evaluations: one chain per source (extract ->
     * train -> evaluate), r->jobs at a time */
    snprintf(r->model, sizeof r->model, "%s", model);
    r->k_data = k_data;
    r->k_motion = s_motion ? s_motion->key : "";
    if ((rc = run_chains(r)) < 0) return rc;
    stage_result **s_eval = r->s_eval;
    /* fusions */
    stage_result *s_fuse[EXP_MAX_FUSIONS] = { 0 };
    if ((rc = stage_fusions(r, s_eval, s_fuse)) < 0) return rc;
    if (cli_signal_caught()) return gl_error(GL_ECANCELED, "stopped by signal %d; rerun the same command to resume",
                                             cli_signal_caught());
    /* sample decompositions of a few test clips */
    if (model[0] && (rc = stage_samples(r, s_motion)) < 0) return rc;
    report_input rep = { .cfg = c, .out = r->out, .data = r->data, .cmdline = r->cmdline, .device = cli_g.device,
                         .stages = r->st, .nstages = r->nst, .eval_motion = s_evm, .eval = s_eval, .fuse = s_fuse,
                         .samples = NUM_SAMPLES, .seconds = gl_now() - t_all };
    return report_write(&rep);
}

int cmd_run(int argc, char **argv)
{
    const char *cmd = "run";
    runner *r = gl_calloc(1, sizeof *r);
    if (!r) return cli_fail(cmd, GL_ENOMEM, "start");
    const char *config = NULL, *root = NULL, *lists = NULL, *out = NULL;
    int code = parse_options(r, argc, argv, &config, &root, &lists, &out);
    if (code != CLI_PARSED) goto done;
    code = CLI_USAGE;
    exp_config *c = &r->cfg;
    exp_config_default(c);
    int rc = exp_config_load(c, config);
    if (rc < 0) { fprintf(stderr, "glocal run: %s\n", gl_last_error()); goto done; }
    snprintf(r->out, sizeof r->out, "%s", out ? out : "");
    if (!out) snprintf(r->out, sizeof r->out, "results/%s", c->name);
    /* One libtorch thread per stage process and as many processes as cores:
     * measured here, two OpenMP threads in one small-model process are 2-10x
     * slower than one whenever the other core is busy (bench/README.md "dist",
     * "classifier"), while independent stages (one chain per motion source)
     * keep every core busy. --threads N gives each stage N threads instead. */
    r->threads = cli_g.threads > 0 ? cli_g.threads : (c->threads > 0 ? c->threads : 1);
    r->jobs = gl_num_cores() / r->threads;
    if (r->jobs < 1) r->jobs = 1;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->chain_cv, NULL);
    code = CLI_FAIL;
    ssize_t sl = readlink("/proc/self/exe", r->self, sizeof r->self - 1);
    if (sl <= 0) { cli_fail(cmd, GL_ESYSTEM, "cannot find the glocal executable"); goto done; }
    r->self[sl] = 0;
    for (size_t o = 0, i = 0; i < (size_t)argc && o < sizeof r->cmdline - 2; i++)
        o += (size_t)snprintf(r->cmdline + o, sizeof r->cmdline - o, "%s%s", i ? " " : "glocal ", argv[i]);
    if ((rc = gl_mkdirs(r->out)) < 0) { cli_fail(cmd, rc, "output folder"); goto done; }
    if (strcmp(c->kind, "synthetic") != 0 && (code = resolve_root(r, config, root, lists)) != CLI_OK) goto done;
    code = CLI_FAIL;
    /* SIGINT/SIGTERM: passed on to the running stages (stage_exec), which
     * stop cleanly; no stage is marked done by it and none starts after it */
    cli_signals_catch();
    rc = run_stages(r);
    cli_signals_restore();
    if (rc == GL_ECANCELED && cli_signal_caught()) {
        fprintf(stderr, "glocal run: %s\n", gl_last_error());
        code = 128 + cli_signal_caught();
        goto done;
    }
    if (rc < 0) {
        fprintf(stderr, "glocal run: %s\n", gl_last_error());
        goto done;
    }
    fprintf(stderr, "glocal run: report: %s/report.md (and report.json)\n", r->out);
    printf("%s/report.md\n", r->out);
    code = CLI_OK;
    /* finished, but not everything (a stage's note): the exit status says so */
    for (int i = 0; i < r->nst; i++)
        if (r->st[i].note[0]) {
            fprintf(stderr, "glocal run: warning: %s %s\n", r->st[i].name, r->st[i].note);
            code = CLI_FAIL;
        }
done:
    gl_free(r);
    return code;
}
