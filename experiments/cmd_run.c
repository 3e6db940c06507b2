/* glocal run CONFIG — the whole experiment: data → GLOCAL self-supervised →
 * motion caches → one classifier per stream → evaluation → fusion → report.
 *
 * Each stage is a glocal subcommand run as a child process (stages.h); its
 * key hashes its own command line and the keys of the stages it reads, so a
 * re-run skips what is finished and redoes only what a config change touched. */
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "experiments/cli.h"
#include "experiments/commands.h"
#include "experiments/config.h"
#include "datasets/ucf101.h"
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
    int next_chain;
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
    fprintf(stderr, "glocal run: %-28s %s\n", name, resume ? "resuming" : "running");
    char log[PATH_MAX + 16];
    snprintf(log, sizeof log, "%s/log.txt", res->dir);
    double t0 = gl_now();
    int status = stage_exec(name, a->v, log);
    res->seconds = gl_now() - t0;
    if (status < 0) return status;
    /* partial_ok: exit status 1 with this file in the stage folder means the
     * stage finished and recorded items it had to skip (glocal extract: bad or
     * missing videos, kept in the cache's /errors). The run goes on and says so. */
    char pf[PATH_MAX + 64];
    if (status == 1 && partial_ok) snprintf(pf, sizeof pf, "%s/%s", res->dir, partial_ok);
    if (status == 1 && partial_ok && access(pf, R_OK) == 0) {
        snprintf(res->note, sizeof res->note, "finished, but some items failed: see %s (glocal cache info %s)",
                 log, pf);
        fprintf(stderr, "glocal run: %s %s\n", name, res->note);
    } else if (status != 0) {
        return gl_error(GL_EIO, "stage %s failed (exit status %d); its log is %s; rerun the same "
                                "command to resume", name, status, log);
    }
    return stage_mark_done(res->dir, res->key, res->seconds, res->note);
}

/* The last line of a stage's log that parses as a JSON object. */
static json_object *last_json(const char *dir)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/log.txt", dir);
    void *data;
    size_t n;
    if (gl_read_file(path, &data, &n) < 0) return NULL;
    char *s = data;
    json_object *best = NULL;
    char *line = s;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '\n') {
            char save = i < n ? s[i] : 0;
            if (i < n) s[i] = 0;
            if (line[0] == '{') {
                json_object *j = json_tokener_parse(line);
                if (j) { json_object_put(best); best = j; }
            }
            if (i < n) s[i] = save;
            line = s + i + 1;
        }
    }
    gl_free(data);
    return best;
}

static json_object *load_json(const char *dir, const char *file)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    return json_object_from_file(path);
}

static double jget(json_object *o, const char *k)
{
    json_object *v;
    if (!o || !json_object_object_get_ex(o, k, &v) || json_object_get_type(v) == json_type_null) return NAN;
    return json_object_get_double(v);
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

/* extract (motion sources) -> train-classifier -> evaluate for source i */
static int run_chain(runner *r, int i)
{
    exp_config *c = &r->cfg;
    int rc;
        const char *src = c->sources[i];
        char name[64], cache[PATH_MAX + 96] = "";
        stage_result *s_ext = NULL, *s_tr = NULL;
        if (is_motion_source(src)) {
            argvec a = { 0 };
            av_glocal(r, &a);
            av_add(&a, "extract");
            add_data_args(r, &a, "--dataset");
            av_opt(&a, "--method", "%s", src);
            if (is_glocal_source(src)) av_opt(&a, "--model", "%s", r->model);
            snprintf(cache, sizeof cache, "%s/stages/extract-%s/cache.h5", r->out, src);
            av_opt(&a, "--out", "%s", cache);
            av_opt(&a, "--size", "%dx%d", c->extract_h, c->extract_w);
            av_opt(&a, "--stride", "%d", c->extract_stride);
            snprintf(name, sizeof name, "extract-%s", src);
            const char *up[] = { r->k_data, is_glocal_source(src) ? r->k_motion : "", NULL };
            rc = run_stage(r, name, &a, up, NULL, NULL, &s_ext, "cache.h5");
            av_free(&a);
            if (rc < 0) return rc;
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

static void *chain_worker(void *arg)
{
    runner *r = arg;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        int i = r->chain_rc < 0 ? r->cfg.nsources : r->next_chain++;
        pthread_mutex_unlock(&r->mu);
        if (i >= r->cfg.nsources) break;
        int rc = run_chain(r, i);
        if (rc < 0) {
            pthread_mutex_lock(&r->mu);
            if (r->chain_rc >= 0) {
                r->chain_rc = rc;
                snprintf(r->chain_msg, sizeof r->chain_msg, "%s", gl_last_error());
            }
            pthread_mutex_unlock(&r->mu);
        }
    }
    return NULL;
}

static int run_chains(runner *r)
{
    pthread_t t[EXP_MAX_SOURCES];
    int n = r->jobs < r->cfg.nsources ? r->jobs : r->cfg.nsources, started = 0;
    r->next_chain = 0;
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

/* ---- report ------------------------------------------------------------------------------ */

static void read_cmd(const char *cmd, char *buf, size_t n)
{
    buf[0] = 0;
    FILE *p = popen(cmd, "r");
    if (!p) return;
    if (!fgets(buf, (int)n, p)) buf[0] = 0;
    pclose(p);
    buf[strcspn(buf, "\n")] = 0;
}

static void machine_text(char *buf, size_t n)
{
    char cpu[256] = "unknown CPU", line[512];
    long mem_kb = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10)) {
            char *v = strchr(line, ':');
            if (v) snprintf(cpu, sizeof cpu, "%s", v + 2);
            cpu[strcspn(cpu, "\n")] = 0;
            break;
        }
    if (f) fclose(f);
    f = fopen("/proc/meminfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemTotal: %ld kB", &mem_kb) == 1) break;
    if (f) fclose(f);
    struct utsname u;
    uname(&u);
    nn_runtime_info ri;
    nn_runtime_get_info(&ri);
    snprintf(buf, n, "%s, %d cores, %.0f GiB RAM, %s %s; libtorch %s, %s", cpu, gl_num_cores(),
             (double)mem_kb / 1048576.0, u.sysname, u.machine, ri.torch_version,
             strcmp(cli_g.device, "cuda") == 0 ? "CUDA" : "CPU");
}

/* x,y columns of a JSON-lines log → a gnuplot data file. Returns rows written. */
static int jsonl_to_dat(const char *jsonl, const char *xkey, const char *ykey, const char *dat)
{
    FILE *in = fopen(jsonl, "r");
    if (!in) return 0;
    FILE *out = fopen(dat, "w");
    if (!out) { fclose(in); return 0; }
    char line[8192];
    int rows = 0;
    while (fgets(line, sizeof line, in)) {
        json_object *j = json_tokener_parse(line);
        if (!j) continue;
        double x = jget(j, xkey), y = jget(j, ykey);
        if (isfinite(x) && isfinite(y)) { fprintf(out, "%.9g %.9g\n", x, y); rows++; }
        json_object_put(j);
    }
    fclose(in);
    fclose(out);
    return rows;
}

/* Classes in a confusion.csv (its header row: "true\pred,A,B,..."); 0 if unreadable. */
static int csv_classes(const char *csv)
{
    FILE *f = fopen(csv, "r");
    if (!f) return 0;
    int n = 0, ch;
    while ((ch = fgetc(f)) != EOF && ch != '\n') n += ch == ',';
    fclose(f);
    return n;
}

/* A labelled heat map of each stream's confusion matrix (rows: true class,
 * columns: predicted; the counts printed in the cells up to 30 classes). */
static int plot_confusions(runner *r, FILE *f, const char *figs)
{
    int plotted = 0;
    for (int i = 0; i < r->cfg.nsources; i++) {
        char csv[PATH_MAX + 96];
        snprintf(csv, sizeof csv, "%s/stages/evaluate-%s/confusion.csv", r->out, r->cfg.sources[i]);
        int n = csv_classes(csv);
        if (n < 1) continue;
        int px = n <= 30 ? 560 + 12 * n : 1500, font = n <= 30 ? 9 : 5;
        fprintf(f, "reset\nset terminal pngcairo size %d,%d font 'sans,%d'\nset output '%s/confusion-%s.png'\n"
                   "set datafile separator ','\nunset key\nset xtics rotate by 45 right\n"
                   "set yrange [] reverse\nset autoscale xfix\nset autoscale yfix\n"
                   "set palette defined (0 'white', 1 '#08306b')\nset cblabel 'clips'\n"
                   "set title '%s: test clips (rows: true class, columns: predicted)'\n"
                   "plot '%s' matrix rowheaders columnheaders using 1:2:3 with image",
                px + 80, px, font, figs, r->cfg.sources[i], r->cfg.sources[i], csv);
        if (n <= 30)
            fprintf(f, ", '' matrix rowheaders columnheaders using 1:2:($3 > 0 ? sprintf('%%d', $3) : '') "
                       "with labels");
        fprintf(f, "\n");
        plotted++;
    }
    return plotted;
}

static int have_gnuplot(void) { return system("command -v gnuplot >/dev/null 2>&1") == 0; }

/* Training curves and confusion matrices with gnuplot (Debian's gnuplot-nox);
 * none when it is missing (the report then shows evaluate's plain matrices). */
static int plot_curves(runner *r, char *note, size_t nn)
{
    char figs[PATH_MAX + 16], gp[PATH_MAX + 32], dat[PATH_MAX + 96];
    snprintf(figs, sizeof figs, "%s/figures", r->out);
    if (gl_mkdirs(figs) < 0) return 0;
    if (!have_gnuplot()) {
        snprintf(note, nn, "(gnuplot not found: training curves not drawn)");
        return 0;
    }
    snprintf(gp, sizeof gp, "%s/curves.gp", figs);
    FILE *f = fopen(gp, "w");
    if (!f) return 0;
    fprintf(f, "set terminal pngcairo size 900,360 font 'sans,10'\nset grid\nset key outside right\n");
    /* GLOCAL self-supervised loss */
    char ml[PATH_MAX + 64];
    snprintf(ml, sizeof ml, "%s/stages/motion/log.jsonl", r->out);
    snprintf(dat, sizeof dat, "%s/stages/motion/loss.dat", r->out);
    int plotted = 0;
    if (jsonl_to_dat(ml, "step", "loss", dat) > 1) {
        fprintf(f, "set output '%s/motion_loss.png'\nset title 'GLOCAL self-supervised training'\n"
                   "set xlabel 'step'\nset ylabel 'loss'\nset logscale y\n"
                   "plot '%s' using 1:2 with lines lw 2 title 'loss'\nunset logscale y\n", figs, dat);
        plotted++;
    }
    /* classifier loss and training accuracy per stream */
    const char *keys[2][3] = { { "loss", "classifier_loss.png", "training loss" },
                               { "accuracy", "classifier_accuracy.png", "training accuracy" } };
    for (int k = 0; k < 2; k++) {
        char plot[8192] = "";
        for (int i = 0; i < r->cfg.nsources; i++) {
            char tl[PATH_MAX + 96];
            snprintf(tl, sizeof tl, "%s/stages/train-%s/train.jsonl", r->out, r->cfg.sources[i]);
            snprintf(dat, sizeof dat, "%s/stages/train-%s/%s.dat", r->out, r->cfg.sources[i], keys[k][0]);
            if (jsonl_to_dat(tl, "epoch", keys[k][0], dat) < 1) continue;
            size_t o = strlen(plot);
            snprintf(plot + o, sizeof plot - o, "%s'%s' using 1:2 with linespoints lw 2 title '%s'",
                     o ? ", " : "", dat, r->cfg.sources[i]);
        }
        if (!plot[0]) continue;
        fprintf(f, "set output '%s/%s'\nset title 'classifiers: %s'\nset xlabel 'epoch'\nset ylabel '%s'\nplot %s\n",
                figs, keys[k][1], keys[k][2], keys[k][0], plot);
        plotted++;
    }
    plotted += plot_confusions(r, f, figs);
    fclose(f);
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof cmd, "gnuplot '%s' 2>/dev/null", gp);
    if (plotted && system(cmd) != 0) snprintf(note, nn, "(gnuplot failed: see %s)", gp);
    return plotted;
}

static void copy_file(const char *from, const char *to)
{
    void *d;
    size_t n;
    if (gl_read_file(from, &d, &n) == 0) {
        gl_write_file_atomic(to, d, n);
        gl_free(d);
    }
}

static void fmt_pct(char *b, size_t n, double v)
{
    if (isfinite(v)) snprintf(b, n, "%.1f", 100 * v);
    else snprintf(b, n, "–");
}

static void fmt_num(char *b, size_t n, double v, const char *f)
{
    if (isfinite(v)) snprintf(b, n, f, v);
    else snprintf(b, n, "–");
}

static int write_report(runner *r, stage_result *s_evm, stage_result **s_eval, stage_result **s_fuse,
                        double total_s)
{
    exp_config *c = &r->cfg;
    char figs[PATH_MAX + 16];
    snprintf(figs, sizeof figs, "%s/figures", r->out);
    int rc = gl_mkdirs(figs);
    if (rc < 0) return rc;
    char machine[512], commit[128], dirty[16], date[64], note[512] = "";
    machine_text(machine, sizeof machine);
    char gitcmd[PATH_MAX + 96];
    snprintf(gitcmd, sizeof gitcmd, "git -C '%s' rev-parse --short=12 HEAD 2>/dev/null", GLOCAL_SOURCE_DIR);
    read_cmd(gitcmd, commit, sizeof commit);
    snprintf(gitcmd, sizeof gitcmd,
             "git -C '%s' status --porcelain --untracked-files=no -- nn motion datasets recognition "
             "experiments scripts CMakeLists.txt 2>/dev/null | head -1 | wc -l", GLOCAL_SOURCE_DIR);
    read_cmd(gitcmd, dirty, sizeof dirty);
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    json_object *J = json_object_new_object();
    json_object_object_add(J, "name", json_object_new_string(c->name));
    json_object_object_add(J, "command", json_object_new_string(r->cmdline));
    json_object_object_add(J, "config", json_object_new_string(c->path));
    json_object_object_add(J, "commit", json_object_new_string(commit[0] ? commit : "unknown"));
    json_object_object_add(J, "commit_dirty", json_object_new_boolean(atoi(dirty) > 0));
    json_object_object_add(J, "machine", json_object_new_string(machine));
    json_object_object_add(J, "date", json_object_new_string(date));
    json_object_object_add(J, "glocal_version", json_object_new_string(GLOCAL_VERSION));
    int plotted = plot_curves(r, note, sizeof note);

    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/report.md", r->out);
    char tmp[PATH_MAX + 48];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) { json_object_put(J); return gl_error(GL_EIO, "%s: cannot write: %s", tmp, strerror(errno)); }
    fprintf(f, "# glocal experiment: %s\n\n", c->name);
    fprintf(f, "Produced by `%s` (config `%s`) at commit `%s`%s on %s.\n\n", r->cmdline, c->path,
            commit[0] ? commit : "unknown", atoi(dirty) > 0 ? " (with uncommitted changes to the code)" : "", date);
    fprintf(f, "Machine: %s.\n\n", machine);
    if (!strcmp(c->kind, "synthetic"))
        fprintf(f, "Dataset: synthetic, %d classes x %d clips of %d frames at %dx%d, camera %s, seed %d "
                   "(objects' motion is the class; the camera adds a confound).\n\n",
                c->classes, c->clips_per_class, c->frames, c->width, c->height, c->camera, c->dataset_seed);
    else
        fprintf(f, "Dataset: %s at `%s`, split %d.\n\n", c->kind, r->data, c->split);

    int warned = 0;
    for (int i = 0; i < r->nst; i++)
        if (r->st[i].note[0]) {
            if (!warned++) fprintf(f, "## Warnings\n\n");
            fprintf(f, "- %s: %s\n", r->st[i].name, r->st[i].note);
        }
    if (warned) fprintf(f, "\n");
    /* recognition */
    fprintf(f, "## Recognition (test split)\n\n");
    fprintf(f, "| stream | top-1 %% | top-5 %% | mean class %% | clips |\n|---|---:|---:|---:|---:|\n");
    json_object *jr = json_object_new_array();
    const int gnuplot = have_gnuplot();
    for (int i = 0; i < c->nsources; i++) {
        json_object *m = s_eval[i] ? load_json(s_eval[i]->dir, "metrics.json") : NULL;
        char a[16], b[16], d[16];
        fmt_pct(a, sizeof a, jget(m, "top1"));
        fmt_pct(b, sizeof b, jget(m, "top5"));
        fmt_pct(d, sizeof d, jget(m, "mean_class_accuracy"));
        fprintf(f, "| %s | %s | %s | %s | %.0f |\n", c->sources[i], a, b, d, jget(m, "clips"));
        json_object *row = json_object_new_object();
        json_object_object_add(row, "stream", json_object_new_string(c->sources[i]));
        json_object_object_add(row, "kind", json_object_new_string("stream"));
        json_object_object_add(row, "top1", json_object_new_double(jget(m, "top1")));
        json_object_object_add(row, "top5", json_object_new_double(jget(m, "top5")));
        json_object_object_add(row, "mean_class_accuracy", json_object_new_double(jget(m, "mean_class_accuracy")));
        json_object_array_add(jr, row);
        if (m) json_object_put(m);
        char from[PATH_MAX + 64], to[PATH_MAX + 64];
        if (s_eval[i] && !gnuplot) { /* else plot_confusions drew it, labelled */
            snprintf(from, sizeof from, "%s/confusion.png", s_eval[i]->dir);
            snprintf(to, sizeof to, "%s/confusion-%s.png", figs, c->sources[i]);
            copy_file(from, to);
        }
    }
    for (int k = 0; k < c->nfusions; k++) {
        json_object *m = s_fuse[k] ? load_json(s_fuse[k]->dir, "metrics.json") : NULL;
        char a[16], b[16], d[16], w[128] = "";
        fmt_pct(a, sizeof a, jget(m, "top1"));
        fmt_pct(b, sizeof b, jget(m, "top5"));
        fmt_pct(d, sizeof d, jget(m, "mean_class_accuracy"));
        for (int s = 0; s < c->fusions[k].nstreams; s++) {
            size_t o = strlen(w);
            snprintf(w + o, sizeof w - o, "%s%g", s ? ":" : "", c->fusions[k].weights[s]);
        }
        fprintf(f, "| fusion %s (%s) | %s | %s | %s | %.0f |\n", c->fusions[k].name, w, a, b, d, jget(m, "clips"));
        json_object *row = json_object_new_object();
        json_object_object_add(row, "stream", json_object_new_string(c->fusions[k].name));
        json_object_object_add(row, "kind", json_object_new_string("fusion"));
        json_object_object_add(row, "weights", json_object_new_string(w));
        json_object_object_add(row, "top1", json_object_new_double(jget(m, "top1")));
        json_object_object_add(row, "top5", json_object_new_double(jget(m, "top5")));
        json_object_object_add(row, "mean_class_accuracy", json_object_new_double(jget(m, "mean_class_accuracy")));
        json_object_array_add(jr, row);
        if (m) json_object_put(m);
    }
    json_object_object_add(J, "recognition", jr);

    /* motion quality */
    if (s_evm) {
        json_object *m = last_json(s_evm->dir), *methods = NULL;
        fprintf(f, "\n## Motion against ground truth (synthetic test clips)\n\n");
        if (m && json_object_object_get_ex(m, "methods", &methods)) {
            fprintf(f, "%.0f frame pairs at %.0fx%.0f. Corner error: the 4 image corners mapped by the estimated vs the "
                       "true homography (px). Local EPE on foreground pixels; leakage = mean |local flow| on "
                       "background (px); IoU of the foreground mask.\n\n",
                    jget(m, "pairs"), jget(m, "width"), jget(m, "height"));
            fprintf(f, "| method | corner mean | corner median | < 1 px | global EPE | local EPE (fg) | leakage | mask IoU | ms/pair |\n"
                       "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
            json_object_object_foreach(methods, name, v) {
                char x[9][24];
                const char *k[9] = { "corner_mean", "corner_median", "corner_under_1px", "global_epe",
                                     "local_epe_fg", "leakage", "mask_iou", "ms_per_pair", NULL };
                for (int q = 0; q < 8; q++)
                    fmt_num(x[q], sizeof x[q], jget(v, k[q]), q == 2 || q == 6 ? "%.2f" : (q == 7 ? "%.1f" : "%.3f"));
                fprintf(f, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", name, x[0], x[1], x[2], x[3], x[4],
                        x[5], x[6], x[7]);
            }
            fprintf(f, "\nglocal = network + robust refinement + LME (local flow masked); glocal-residual = the same "
                       "local flow before the mask; glocal-net = the network's homography alone; "
                       "refine = robust refinement from the identity; tvl1-ransac = TV-L1 flow with a RANSAC "
                       "homography (local = flow minus homography).\n");
            json_object_object_add(J, "motion", json_object_get(m));
        } else {
            fprintf(f, "(no metrics: see %s/log.txt)\n", s_evm->dir);
        }
        if (m) json_object_put(m);
    }

    /* figures */
    fprintf(f, "\n## Figures\n\n");
    if (plotted) {
        const char *pngs[3] = { "motion_loss.png", "classifier_loss.png", "classifier_accuracy.png" };
        for (int q = 0; q < 3; q++) {
            char p2[PATH_MAX + 64];
            snprintf(p2, sizeof p2, "%s/%s", figs, pngs[q]);
            if (access(p2, R_OK) == 0) fprintf(f, "![%s](figures/%s)\n\n", pngs[q], pngs[q]);
        }
    } else if (note[0]) {
        fprintf(f, "%s\n\n", note);
    }
    for (int i = 0; i < c->nsources; i++) {
        char p2[PATH_MAX + 64];
        snprintf(p2, sizeof p2, "%s/confusion-%s.png", figs, c->sources[i]);
        if (access(p2, R_OK) == 0) fprintf(f, "Confusion matrix, %s: ![confusion %s](figures/confusion-%s.png)\n\n",
                                           c->sources[i], c->sources[i], c->sources[i]);
    }
    int ns = 0;
    for (int q = 0; q < NUM_SAMPLES; q++) {
        char from[PATH_MAX + 64], to[PATH_MAX + 64];
        snprintf(from, sizeof from, "%s/stages/samples/%d/strip.png", r->out, q);
        if (access(from, R_OK) != 0) continue;
        snprintf(to, sizeof to, "%s/sample-%d.png", figs, q);
        copy_file(from, to);
        if (!ns++) fprintf(f, "Sample decompositions (test clips; each strip: frame | GLOCAL mixed flow | TV-L1 | GLOCAL global | GLOCAL local | mask; flows in the Middlebury colour wheel on one scale):\n\n");
        fprintf(f, "![sample %d](figures/sample-%d.png)\n\n", q, q);
    }

    /* time */
    fprintf(f, "## Time per stage\n\n| stage | seconds | this run |\n|---|---:|---|\n");
    json_object *jt = json_object_new_object();
    double sum = 0;
    for (int i = 0; i < r->nst; i++) {
        fprintf(f, "| %s | %.1f | %s |\n", r->st[i].name, r->st[i].seconds, r->st[i].skipped ? "skipped (done before)" : "ran");
        json_object_object_add(jt, r->st[i].name, json_object_new_double(r->st[i].seconds));
        sum += r->st[i].seconds;
    }
    fprintf(f, "| all stages | %.1f | |\n\nThis invocation took %.1f s.\n", sum, total_s);
    json_object_object_add(J, "seconds", jt);

    /* config */
    fprintf(f, "\n## Config\n\n```\n");
    void *cfgtext;
    size_t cn;
    if (gl_read_file(c->path, &cfgtext, &cn) == 0) {
        fwrite(cfgtext, 1, cn, f);
        gl_free(cfgtext);
    }
    fprintf(f, "```\n");
    int bad = ferror(f);
    if (fclose(f) != 0 || bad || rename(tmp, path) != 0) {
        json_object_put(J);
        return gl_error(GL_EIO, "%s: cannot write the report", path);
    }
    snprintf(path, sizeof path, "%s/report.json", r->out);
    const char *js = json_object_to_json_string_ext(J, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
    rc = gl_write_file_atomic(path, js, strlen(js));
    json_object_put(J);
    return rc;
}

int cmd_run(int argc, char **argv)
{
    const char *cmd = "run";
    runner *r = gl_calloc(1, sizeof *r);
    if (!r) return cli_fail(cmd, GL_ENOMEM, "start");
    const char *config = NULL, *root = NULL, *out = NULL;
    int code = CLI_FAIL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: glocal run CONFIG [--root DIR] [--out results/NAME] [--from STAGE]\n\n"
                   "Runs an experiment end to end: the dataset (glocal synth for synthetic\n"
                   "configs), GLOCAL trained self-supervised on the training videos (glocal\n"
                   "train-motion), its accuracy against ground truth (synthetic: glocal\n"
                   "eval-motion), one motion cache per motion source (glocal extract), one\n"
                   "classifier per stream (glocal train-classifier), their evaluation (glocal\n"
                   "evaluate), the fusions (glocal fuse), sample decompositions, and the report\n"
                   "OUT/report.md with its JSON twin OUT/report.json.\n\n"
                   "Every stage's output lives in OUT/stages/NAME with its log (log.txt, which\n"
                   "starts with the exact command). A stage is keyed by its command line and the\n"
                   "stages it reads: a re-run skips finished stages, resumes an interrupted one,\n"
                   "and redoes only what a changed config touches.\n\n"
                   "  CONFIG             experiments/synthetic.cfg, ucf101.cfg, ncaa.cfg or your own\n"
                   "  --root DIR         dataset root (UCF-101: the folder with the class folders\n"
                   "                     and ucfTrainTestlist/; NCAA: the output of glocal ncaa-import)\n"
                   "  --out DIR          where everything goes (default results/NAME)\n"
                   "  --from STAGE       redo STAGE and everything after it: data, motion,\n"
                   "                     eval-motion, extract, train, evaluate, fuse, samples, report\n"
                   "Global options (before 'run') apply to every stage: --threads N, --device cuda.\n");
            gl_free(r);
            return CLI_OK;
        }
        if (!strncmp(a, "--root", 6) || !strncmp(a, "--out", 5) || !strncmp(a, "--from", 6)) {
            const char *v = strchr(a, '=');
            if (v) v++;
            else if (i + 1 < argc) v = argv[++i];
            else { gl_free(r); return cli_usage_error(cmd, "%s needs a value", a); }
            if (!strncmp(a, "--root", 6)) root = v;
            else if (!strncmp(a, "--out", 5)) out = v;
            else {
                if (stage_rank(v) < 0) { gl_free(r); return cli_usage_error(cmd, "unknown stage '%s'", v); }
                snprintf(r->from, sizeof r->from, "%s", v);
            }
        } else if (a[0] == '-') {
            gl_free(r);
            return cli_usage_error(cmd, "unknown option '%s'", a);
        } else if (!config) {
            config = a;
        } else {
            gl_free(r);
            return cli_usage_error(cmd, "one config only (got '%s' and '%s')", config, a);
        }
    }
    if (!config) { gl_free(r); return cli_usage_error(cmd, "which config? e.g. glocal run experiments/synthetic.cfg"); }
    exp_config *c = &r->cfg;
    exp_config_default(c);
    int rc = exp_config_load(c, config);
    if (rc < 0) { fprintf(stderr, "glocal run: %s\n", gl_last_error()); gl_free(r); return CLI_USAGE; }
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
    ssize_t sl = readlink("/proc/self/exe", r->self, sizeof r->self - 1);
    if (sl <= 0) { gl_free(r); return cli_fail(cmd, GL_ESYSTEM, "cannot find the glocal executable"); }
    r->self[sl] = 0;
    {
        size_t o = 0;
        for (int i = 0; i < argc && o < sizeof r->cmdline - 2; i++)
            o += (size_t)snprintf(r->cmdline + o, sizeof r->cmdline - o, "%s%s", i ? " " : "glocal ", argv[i]);
    }
    if ((rc = gl_mkdirs(r->out)) < 0) { gl_free(r); return cli_fail(cmd, rc, "output folder"); }
    /* dataset */
    if (strcmp(c->kind, "synthetic") != 0) {
        const char *rt = root ? root : c->root;
        if (!rt || !rt[0]) {
            gl_free(r);
            return cli_usage_error(cmd, "%s: dataset.root is empty; pass --root DIR", config);
        }
        if (!realpath(rt, r->data)) {
            int e = errno;
            gl_free(r);
            return cli_usage_error(cmd, "--root %s: %s", rt, strerror(e));
        }
        char l[PATH_MAX + 32];
        snprintf(l, sizeof l, "%s/ucfTrainTestlist", r->data);
        struct stat sb;
        if (stat(l, &sb) == 0 && S_ISDIR(sb.st_mode)) snprintf(r->lists, sizeof r->lists, "%s", l);
    }
    double t_all = gl_now();
    stage_result *s_data = NULL, *s_motion = NULL, *s_evm = NULL;
    if ((rc = stage_data(r, &s_data)) < 0) goto fail;
    const char *k_data = s_data ? s_data->key : "";
    /* GLOCAL, self-supervised */
    int need_glocal = 0;
    for (int i = 0; i < c->nsources; i++) need_glocal |= is_glocal_source(c->sources[i]);
    char model[PATH_MAX + 64] = "";
    if (need_glocal || !strcmp(c->kind, "synthetic")) {
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
        const char *up[] = { k_data, NULL };
        rc = run_stage(r, "motion", &a, up, "--resume", "glocal.h5", &s_motion, NULL);
        av_free(&a);
        if (rc < 0) goto fail;
        snprintf(model, sizeof model, "%s/stages/motion/glocal.h5", r->out);
    }
    /* motion quality against the ground truth (synthetic data only) */
    if (!strcmp(c->kind, "synthetic") && model[0]) {
        argvec a = { 0 };
        av_glocal(r, &a);
        av_add(&a, "eval-motion");
        av_opt(&a, "--model", "%s", model);
        av_opt(&a, "--dataset", "%s", r->data);
        av_add(&a, "--json");
        const char *up[] = { k_data, s_motion->key, NULL };
        rc = run_stage(r, "eval-motion", &a, up, NULL, NULL, &s_evm, NULL);
        av_free(&a);
        if (rc < 0) goto fail;
    }
    /* caches, classifiers, evaluations */
    /* one chain per source (extract -> train -> evaluate), r->jobs at a time */
    r->model[0] = 0;
    snprintf(r->model, sizeof r->model, "%s", model);
    r->k_data = k_data;
    r->k_motion = s_motion ? s_motion->key : "";
    if ((rc = run_chains(r)) < 0) goto fail;
    stage_result **s_eval = r->s_eval;
    /* fusions */
    stage_result *s_fuse[EXP_MAX_FUSIONS] = { 0 };
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
        rc = run_stage(r, name, &a, up, NULL, NULL, &s_fuse[f], NULL);
        av_free(&a);
        if (rc < 0) goto fail;
    }
    /* sample decompositions of a few test clips */
    if (model[0] && (rc = stage_samples(r, s_motion)) < 0) goto fail;
    rc = write_report(r, s_evm, s_eval, s_fuse, gl_now() - t_all);
    if (rc < 0) goto fail;
    fprintf(stderr, "glocal run: report: %s/report.md (and report.json)\n", r->out);
    printf("%s/report.md\n", r->out);
    code = CLI_OK;
    for (int i = 0; i < r->nst; i++)
        if (r->st[i].note[0]) {
            fprintf(stderr, "glocal run: warning: %s %s\n", r->st[i].name, r->st[i].note);
            code = 3; /* finished, but not everything: the exit status says so */
        }
    if (code == 3) {
        code = CLI_FAIL;
        gl_free(r);
        return code;
    }
fail:
    if (code != CLI_OK) fprintf(stderr, "glocal run: %s\n", gl_last_error());
    gl_free(r);
    return code;
}
