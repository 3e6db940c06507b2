/* report.c — the report of glocal run (experiments/report.h): markdown,
 * JSON and gnuplot figures, from the stages' folders. */
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "experiments/report.h"
#include "nn/nn.h"

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

static void read_cmd(const char *cmd, char *buf, size_t n)
{
    buf[0] = 0;
    FILE *p = popen(cmd, "r");
    if (!p) return;
    if (!fgets(buf, (int)n, p)) buf[0] = 0;
    pclose(p);
    buf[strcspn(buf, "\n")] = 0;
}

static void machine_text(const char *device, char *buf, size_t n)
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
             device && strcmp(device, "cuda") == 0 ? "CUDA" : "CPU");
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
static int plot_confusions(const report_input *r, FILE *f, const char *figs)
{
    int plotted = 0;
    for (int i = 0; i < r->cfg->nsources; i++) {
        char csv[PATH_MAX + 96];
        snprintf(csv, sizeof csv, "%s/stages/evaluate-%s/confusion.csv", r->out, r->cfg->sources[i]);
        int n = csv_classes(csv);
        if (n < 1) continue;
        int px = n <= 30 ? 560 + 12 * n : 1500, font = n <= 30 ? 9 : 5;
        fprintf(f, "reset\nset terminal pngcairo size %d,%d font 'sans,%d'\nset output '%s/confusion-%s.png'\n"
                   "set datafile separator ','\nunset key\nset xtics rotate by 45 right\n"
                   "set yrange [] reverse\nset autoscale xfix\nset autoscale yfix\n"
                   "set palette defined (0 'white', 1 '#08306b')\nset cblabel 'clips'\n"
                   "set title '%s: test clips (rows: true class, columns: predicted)'\n"
                   "plot '%s' matrix rowheaders columnheaders using 1:2:3 with image",
                px + 80, px, font, figs, r->cfg->sources[i], r->cfg->sources[i], csv);
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
static int plot_curves(const report_input *r, char *note, size_t nn)
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
        for (int i = 0; i < r->cfg->nsources; i++) {
            char tl[PATH_MAX + 96];
            snprintf(tl, sizeof tl, "%s/stages/train-%s/train.jsonl", r->out, r->cfg->sources[i]);
            snprintf(dat, sizeof dat, "%s/stages/train-%s/%s.dat", r->out, r->cfg->sources[i], keys[k][0]);
            if (jsonl_to_dat(tl, "epoch", keys[k][0], dat) < 1) continue;
            size_t o = strlen(plot);
            snprintf(plot + o, sizeof plot - o, "%s'%s' using 1:2 with linespoints lw 2 title '%s'",
                     o ? ", " : "", dat, r->cfg->sources[i]);
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

/* Where the report and its figures come from: machine, commit, date. */
typedef struct {
    char machine[512], commit[128], date[64];
    int dirty;
} provenance;

static void provenance_get(const report_input *r, provenance *p)
{
    char dirty[16], gitcmd[PATH_MAX + 96];
    machine_text(r->device, p->machine, sizeof p->machine);
    snprintf(gitcmd, sizeof gitcmd, "git -C '%s' rev-parse --short=12 HEAD 2>/dev/null", GLOCAL_SOURCE_DIR);
    read_cmd(gitcmd, p->commit, sizeof p->commit);
    snprintf(gitcmd, sizeof gitcmd,
             "git -C '%s' status --porcelain --untracked-files=no -- nn motion datasets recognition "
             "experiments scripts CMakeLists.txt 2>/dev/null | head -1 | wc -l", GLOCAL_SOURCE_DIR);
    read_cmd(gitcmd, dirty, sizeof dirty);
    p->dirty = atoi(dirty) > 0;
    time_t now = time(NULL);
    strftime(p->date, sizeof p->date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
}

/* Title, provenance, dataset and warnings. */
static void write_header(const report_input *r, const provenance *p, FILE *f, json_object *J)
{
    const exp_config *c = r->cfg;
    json_object_object_add(J, "name", json_object_new_string(c->name));
    json_object_object_add(J, "command", json_object_new_string(r->cmdline));
    json_object_object_add(J, "config", json_object_new_string(c->path));
    json_object_object_add(J, "commit", json_object_new_string(p->commit[0] ? p->commit : "unknown"));
    json_object_object_add(J, "commit_dirty", json_object_new_boolean(p->dirty));
    json_object_object_add(J, "machine", json_object_new_string(p->machine));
    json_object_object_add(J, "date", json_object_new_string(p->date));
    json_object_object_add(J, "glocal_version", json_object_new_string(GLOCAL_VERSION));
    fprintf(f, "# glocal experiment: %s\n\n", c->name);
    fprintf(f, "Produced by `%s` (config `%s`) at commit `%s`%s on %s.\n\n", r->cmdline, c->path,
            p->commit[0] ? p->commit : "unknown", p->dirty ? " (with uncommitted changes to the code)" : "", p->date);
    fprintf(f, "Machine: %s.\n\n", p->machine);
    if (!strcmp(c->kind, "synthetic"))
        fprintf(f, "Dataset: synthetic, %d classes x %d clips of %d frames at %dx%d, camera %s, seed %d "
                   "(objects' motion is the class; the camera adds a confound).\n\n",
                c->classes, c->clips_per_class, c->frames, c->width, c->height, c->camera, c->dataset_seed);
    else
        fprintf(f, "Dataset: %s at `%s`, split %d.\n\n", c->kind, r->data, c->split);
    int warned = 0;
    for (int i = 0; i < r->nstages; i++)
        if (r->stages[i].note[0]) {
            if (!warned++) fprintf(f, "## Warnings\n\n");
            fprintf(f, "- %s: %s\n", r->stages[i].name, r->stages[i].note);
        }
    if (warned) fprintf(f, "\n");
}

/* One row of the recognition table (a stream or a fusion) and its JSON. */
static void recognition_row(FILE *f, json_object *jr, const char *stage_dir, const char *label, const char *name,
                            const char *kind, const char *weights)
{
    json_object *m = stage_dir ? load_json(stage_dir, "metrics.json") : NULL;
    char a[16], b[16], d[16];
    fmt_pct(a, sizeof a, jget(m, "top1"));
    fmt_pct(b, sizeof b, jget(m, "top5"));
    fmt_pct(d, sizeof d, jget(m, "mean_class_accuracy"));
    fprintf(f, "| %s | %s | %s | %s | %.0f |\n", label, a, b, d, jget(m, "clips"));
    json_object *row = json_object_new_object();
    json_object_object_add(row, "stream", json_object_new_string(name));
    json_object_object_add(row, "kind", json_object_new_string(kind));
    if (weights) json_object_object_add(row, "weights", json_object_new_string(weights));
    json_object_object_add(row, "top1", json_object_new_double(jget(m, "top1")));
    json_object_object_add(row, "top5", json_object_new_double(jget(m, "top5")));
    json_object_object_add(row, "mean_class_accuracy", json_object_new_double(jget(m, "mean_class_accuracy")));
    json_object_array_add(jr, row);
    if (m) json_object_put(m);
}

/* Recognition on the test split: one row per stream, one per fusion. */
static void write_recognition(const report_input *r, const char *figs, FILE *f, json_object *J)
{
    const exp_config *c = r->cfg;
    fprintf(f, "## Recognition (test split)\n\n");
    fprintf(f, "| stream | top-1 %% | top-5 %% | mean class %% | clips |\n|---|---:|---:|---:|---:|\n");
    json_object *jr = json_object_new_array();
    const int gnuplot = have_gnuplot();
    for (int i = 0; i < c->nsources; i++) {
        recognition_row(f, jr, r->eval[i] ? r->eval[i]->dir : NULL, c->sources[i], c->sources[i], "stream", NULL);
        char from[PATH_MAX + 64], to[PATH_MAX + 64];
        if (r->eval[i] && !gnuplot) { /* else plot_confusions drew it, labelled */
            snprintf(from, sizeof from, "%s/confusion.png", r->eval[i]->dir);
            snprintf(to, sizeof to, "%s/confusion-%s.png", figs, c->sources[i]);
            copy_file(from, to);
        }
    }
    for (int k = 0; k < c->nfusions; k++) {
        char w[128] = "", label[256];
        for (int s = 0; s < c->fusions[k].nstreams; s++) {
            size_t o = strlen(w);
            snprintf(w + o, sizeof w - o, "%s%g", s ? ":" : "", c->fusions[k].weights[s]);
        }
        snprintf(label, sizeof label, "fusion %s (%s)", c->fusions[k].name, w);
        recognition_row(f, jr, r->fuse[k] ? r->fuse[k]->dir : NULL, label, c->fusions[k].name, "fusion", w);
    }
    json_object_object_add(J, "recognition", jr);
}

/* Motion quality against the synthetic ground truth (eval-motion's JSON). */
static void write_motion(const report_input *r, FILE *f, json_object *J)
{
    if (!r->eval_motion) return;
    json_object *m = last_json(r->eval_motion->dir), *methods = NULL;
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
                   "homography (local = flow minus homography); dis-ransac = the same with DIS flow.\n");
        json_object_object_add(J, "motion", json_object_get(m));
    } else {
        fprintf(f, "(no metrics: see %s/log.txt)\n", r->eval_motion->dir);
    }
    if (m) json_object_put(m);
}

/* Training curves, confusion matrices, sample decompositions. */
static void write_figures(const report_input *r, const char *figs, int plotted, const char *note, FILE *f)
{
    const exp_config *c = r->cfg;
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
    for (int q = 0; q < r->samples; q++) {
        char from[PATH_MAX + 64], to[PATH_MAX + 64];
        snprintf(from, sizeof from, "%s/stages/samples/%d/strip.png", r->out, q);
        if (access(from, R_OK) != 0) continue;
        snprintf(to, sizeof to, "%s/sample-%d.png", figs, q);
        copy_file(from, to);
        if (!ns++) fprintf(f, "Sample decompositions (test clips; each strip: frame | GLOCAL mixed flow | TV-L1 | GLOCAL global | GLOCAL local | mask; flows in the Middlebury colour wheel on one scale):\n\n");
        fprintf(f, "![sample %d](figures/sample-%d.png)\n\n", q, q);
    }
}

/* Time per stage, and the config as given. */
static void write_time_and_config(const report_input *r, FILE *f, json_object *J)
{
    fprintf(f, "## Time per stage\n\n| stage | seconds | this run |\n|---|---:|---|\n");
    json_object *jt = json_object_new_object();
    double sum = 0;
    for (int i = 0; i < r->nstages; i++) {
        fprintf(f, "| %s | %.1f | %s |\n", r->stages[i].name, r->stages[i].seconds, r->stages[i].skipped ? "skipped (done before)" : "ran");
        json_object_object_add(jt, r->stages[i].name, json_object_new_double(r->stages[i].seconds));
        sum += r->stages[i].seconds;
    }
    fprintf(f, "| all stages | %.1f | |\n\nThis invocation took %.1f s.\n", sum, r->seconds);
    json_object_object_add(J, "seconds", jt);
    fprintf(f, "\n## Config\n\n```\n");
    void *cfgtext;
    size_t cn;
    if (gl_read_file(r->cfg->path, &cfgtext, &cn) == 0) {
        fwrite(cfgtext, 1, cn, f);
        gl_free(cfgtext);
    }
    fprintf(f, "```\n");
}

int report_write(const report_input *r)
{
    char figs[PATH_MAX + 16];
    snprintf(figs, sizeof figs, "%s/figures", r->out);
    int rc = gl_mkdirs(figs);
    if (rc < 0) return rc;
    provenance p;
    provenance_get(r, &p);
    char note[512] = "";
    int plotted = plot_curves(r, note, sizeof note);
    char path[PATH_MAX + 32], tmp[PATH_MAX + 48];
    snprintf(path, sizeof path, "%s/report.md", r->out);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return gl_error(GL_EIO, "%s: cannot write: %s", tmp, strerror(errno));
    json_object *J = json_object_new_object();
    write_header(r, &p, f, J);
    write_recognition(r, figs, f, J);
    write_motion(r, f, J);
    write_figures(r, figs, plotted, note, f);
    write_time_and_config(r, f, J);
    /* a full disk shows in ferror (errno of the failed write) or in fclose's flush */
    int bad = ferror(f), e = bad ? errno : 0;
    if (fclose(f) != 0 && !bad) bad = 1, e = errno;
    if (!bad && rename(tmp, path) != 0) bad = 1, e = errno;
    if (bad) {
        json_object_put(J);
        unlink(tmp);
        return gl_error(GL_EIO, "%s: cannot write the report: %s", path, strerror(e ? e : EIO));
    }
    snprintf(path, sizeof path, "%s/report.json", r->out);
    const char *js = json_object_to_json_string_ext(J, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
    rc = gl_write_file_atomic(path, js, strlen(js));
    json_object_put(J);
    return rc;
}
