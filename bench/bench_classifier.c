/* bench_classifier — training steps/s of the classifier fed by the real loader
 * (videos decoded by FFmpeg, or motion stacks read from an HDF5 cache) against
 * the same model and steps on batches already in memory as tensors.
 *
 *   bench_classifier [--source video|cache|both] [--steps N] [--warmup N]
 *                    [--batch B] [--workers N] [--threads N] [--size S] [--rounds R]
 *
 * Data: a synthetic set (datasets/synth.h, 64x64, 4 classes) written to a temp
 * folder as AVI clips, and a motion cache of its ground-truth local flow.
 * Model: ResNet-10 of width 16, K = 3 segments, SxS input (default 56). The
 * in-memory run replays batches drawn from the same loader beforehand, so
 * both runs do identical arithmetic; the ratio is loader / memory (goal
 * >= 0.9: the loader hides its work behind the training step). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "datasets/cache.h"
#include "datasets/loader.h"
#include "datasets/synth.h"
#include "datasets/ucf101.h"
#include "recognition/classifier.h"

#define CHECK(call)                                                                          \
    do {                                                                                     \
        int rc_ = (call);                                                                    \
        if (rc_ < 0) {                                                                       \
            fprintf(stderr, "bench_classifier: %s: %s\n", #call, gl_last_error());          \
            exit(1);                                                                         \
        }                                                                                    \
    } while (0)

typedef struct {
    long warmup, steps;
    double t_start, t_end;
} timing;

static int on_step(void *ctx, const cls_train_status *s)
{
    timing *t = ctx;
    if (s->end_of_epoch) return 0;
    if (s->step == t->warmup) t->t_start = gl_now();
    if (s->step == t->warmup + t->steps) {
        t->t_end = gl_now();
        return 1;
    }
    return 0;
}

static cls_train_config train_config(int batch, int workers)
{
    cls_train_config tc = cls_train_config_default();
    tc.opt.lr = 0.01;
    tc.epochs = 100000;
    tc.batch_size = batch;
    tc.threads = workers;
    tc.prefetch = 2;
    tc.clip_grad = 40;
    return tc;
}

/* Steps/s through cls_train with the loader. */
static double run_loader(const classifier_config *cc, const loader_source *src, int batch, int workers, long warmup, long steps)
{
    classifier *c;
    nn_manual_seed(1);
    CHECK(classifier_new(&c, cc));
    cls_train_config tc = train_config(batch, workers);
    timing t = { warmup, steps, 0, 0 };
    int rc = cls_train(c, src, &tc, on_step, &t);
    if (rc != GL_ECANCELED) {
        fprintf(stderr, "bench_classifier: training ended with %d: %s\n", rc, gl_last_error());
        exit(1);
    }
    classifier_free(&c);
    return steps / (t.t_end - t.t_start);
}

/* Batches drawn from the loader beforehand, as tensors. */
typedef struct {
    long n;
    nn_tensor **xs, **ys;
} mem_batches;

static void mem_prepare(mem_batches *m, const loader_source *src, int batch, long total)
{
    m->n = total;
    m->xs = calloc((size_t)total, sizeof *m->xs);
    m->ys = calloc((size_t)total, sizeof *m->ys);
    loader_config lc = loader_config_default();
    lc.batch_size = batch;
    lc.drop_last = 1;
    lc.seed = 1;
    loader *ld;
    CHECK(loader_open(&ld, src, &lc));
    for (long i = 0; i < total;) {
        const loader_batch *b;
        int rc = loader_next(ld, &b);
        CHECK(rc);
        if (rc == GL_EOF) continue;
        int64_t sh[5] = { b->n, src->shape[0], src->shape[1], src->shape[2], src->shape[3] }, ysh[1] = { b->n };
        int64_t lab[256];
        for (int j = 0; j < b->n; j++) lab[j] = b->labels[j];
        CHECK(nn_from_data(&m->xs[i], b->data, sh, 5, NN_F32));
        CHECK(nn_from_data(&m->ys[i], lab, ysh, 1, NN_I64));
        i++;
    }
    loader_close(&ld);
}

static void mem_free(mem_batches *m)
{
    for (long i = 0; i < m->n; i++) { nn_free(&m->xs[i]); nn_free(&m->ys[i]); }
    free(m->xs);
    free(m->ys);
}

/* The same steps on tensors prepared beforehand (the loop of cls_train without the loader). */
static double run_memory(const classifier_config *cc, const mem_batches *mb, int batch, long warmup, long steps)
{
    long total = warmup + steps;
    classifier *c;
    nn_manual_seed(1);
    CHECK(classifier_new(&c, cc));
    cls_train_config tc = train_config(batch, 1);
    nn_optimizer *opt;
    CHECK(nn_optimizer_new(&opt, classifier_params(c), &tc.opt));
    double t0 = 0;
    for (long i = 0; i < total; i++) {
        if (i == warmup) t0 = gl_now();
        nn_scope *sc;
        CHECK(nn_scope_begin(&sc));
        nn_tensor *logits, *loss, *pred, *eq, *nc;
        double lv, ncv, norm;
        CHECK(nn_optimizer_set_lr(opt, tc.opt.lr));
        CHECK(nn_optimizer_zero_grad(opt));
        CHECK(classifier_forward(&logits, c, mb->xs[i], 1));
        CHECK(nn_cross_entropy(&loss, logits, mb->ys[i], 0));
        CHECK(nn_item(loss, &lv));
        CHECK(nn_backward(loss));
        CHECK(nn_clip_grad_norm(classifier_params(c), tc.clip_grad, &norm));
        CHECK(nn_optimizer_step(opt));
        CHECK(nn_argmax(&pred, logits, 1, 0));
        CHECK(nn_compare(&eq, NN_EQ, pred, mb->ys[i]));
        CHECK(nn_sum(&nc, eq, NULL, 0, 0));
        CHECK(nn_item(nc, &ncv));
        nn_scope_end(&sc);
    }
    double rate = steps / (gl_now() - t0);
    nn_optimizer_free(&opt);
    classifier_free(&c);
    return rate;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Loader and memory runs interleaved `rounds` times (load from other jobs
 * falls on both alike); prints the medians. */
static void compare(const char *name, const classifier_config *cc, const loader_source *src, int batch, int workers,
                    long warmup, long steps, int rounds);

/* Samples/s of the loader alone (no training), for reading the ratio. */
static double run_loader_only(const loader_source *src, int batch, int workers, long batches)
{
    loader_config lc = loader_config_default();
    lc.batch_size = batch;
    lc.threads = workers;
    lc.drop_last = 1;
    loader *ld;
    CHECK(loader_open(&ld, src, &lc));
    long n = 0, got = 0;
    double t0 = gl_now();
    while (got < batches) {
        const loader_batch *b;
        int rc = loader_next(ld, &b);
        CHECK(rc);
        if (rc == GL_EOF) continue;
        n += b->n;
        got++;
    }
    double rate = n / (gl_now() - t0);
    loader_close(&ld);
    return rate;
}

static void compare(const char *name, const classifier_config *cc, const loader_source *src, int batch, int workers,
                    long warmup, long steps, int rounds)
{
    mem_batches mb;
    mem_prepare(&mb, src, batch, warmup + steps);
    double a[64], b[64];
    for (int r = 0; r < rounds; r++) {
        a[r] = run_loader(cc, src, batch, workers, warmup, steps);
        b[r] = run_memory(cc, &mb, batch, warmup, steps);
        if (getenv("BENCH_VERBOSE")) fprintf(stderr, "%s round %d: loader %.3f memory %.3f steps/s\n", name, r, a[r], b[r]);
    }
    mem_free(&mb);
    double l = run_loader_only(src, batch, workers, steps);
    double ma = median(a, rounds), mbm = median(b, rounds);
    printf("%-8s %16.3f %16.3f %8.2f %16.1f\n", name, ma, mbm, ma / mbm, l);
}

/* Motion stacks from the cache: one reader handle per worker. */
typedef struct {
    const char *path;
    long n;
    long pairs[256];
    int32_t labels[256];
} cache_ctx;

static long c_pairs(void *ctx, long item) { return ((cache_ctx *)ctx)->pairs[item]; }
static int32_t c_label(void *ctx, long item) { return ((cache_ctx *)ctx)->labels[item]; }
static int c_open(void *ctx, int w, void **wctx)
{
    (void)w;
    cache *c;
    int rc = cache_open(((cache_ctx *)ctx)->path, 16 << 20, &c);
    *wctx = c;
    return rc;
}
static void c_close(void *ctx, void *wctx)
{
    (void)ctx;
    cache *c = wctx;
    cache_close(&c);
}
static int c_read(void *ctx, void *wctx, long item, long off, int L, float *out)
{
    (void)ctx;
    return cache_read_fields(wctx, item, off, L, out);
}

int main(int argc, char **argv)
{
    const char *source = "both";
    long steps = 20, warmup = 3;
    int batch = 8, workers = 2, threads = 2, size = 56, rounds = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--source") && i + 1 < argc) source = argv[++i];
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atol(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) warmup = atol(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--workers") && i + 1 < argc) workers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--size") && i + 1 < argc) size = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_classifier [--source video|cache|both] [--steps N] [--warmup N] [--batch B]\n"
                            "                        [--workers N] [--threads N] [--size S] [--rounds R]\n");
            return 2;
        }
    }
    if (batch < 1 || batch > 256 || steps < 1 || warmup < 0 || rounds < 1 || rounds > 64) { fprintf(stderr, "bench_classifier: bad sizes\n"); return 2; }
    gl_set_num_threads(threads);
    CHECK(nn_runtime_init(threads, "cpu"));
    char dir[] = "/tmp/glocal_bench_classifier_XXXXXX";
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    synth_config sc = synth_config_default();
    sc.classes = 4;
    sc.frames = 16;
    sc.camera = 0.5;
    synth *sy;
    CHECK(synth_new(&sc, &sy));
    int want_video = strcmp(source, "cache") != 0, want_cache = strcmp(source, "video") != 0;
    printf("bench_classifier: ResNet-10 width 16, K = 3, %dx%d input, batch %d, %d loader workers, %d torch threads; "
           "%ld steps after %ld warm-up, median of %d interleaved rounds\n", size, size, batch, workers, threads, steps, warmup, rounds);
    printf("%-8s %16s %16s %8s %16s\n", "source", "loader steps/s", "memory steps/s", "ratio", "loader alone clips/s");
    if (want_video) {
        synth_dataset_options so = { .out_dir = dir, .clips_per_class = 8 };
        CHECK(synth_dataset_write(sy, &so));
        dataset_index *idx;
        CHECK(dataset_index_load(&idx, dir, NULL, 1));
        loader_video_config vc = loader_video_config_default(idx, DATASET_TRAIN);
        vc.decode_w = vc.decode_h = 64;
        vc.aug = loader_aug_default(size, size);
        loader_source src;
        CHECK(loader_source_video(&src, &vc));
        classifier_config cc;
        CHECK(classifier_config_preset("resnet10", 3, idx->num_classes, &cc));
        cc.width = 16;
        compare("video", &cc, &src, batch, workers, warmup, steps, rounds);
        loader_source_free(&src);
        dataset_index_free(&idx);
    }
    if (want_cache) {
        enum { L = 5, CLIPS = 32 };
        char path[256];
        snprintf(path, sizeof path, "%s/local.h5", dir);
        cache_config cfg;
        cache_config_default(&cfg);
        snprintf(cfg.method, sizeof cfg.method, "synth-local-gt");
        cfg.width = sc.width;
        cfg.height = sc.height;
        cfg.total_clips = CLIPS;
        cache_writer *w;
        CHECK(cache_writer_open(path, &cfg, &w));
        cache_ctx cx = { .path = path, .n = CLIPS };
        for (int i = 0; i < CLIPS; i++) {
            synth_clip *clip;
            CHECK(synth_clip_render(sy, i % sc.classes, 100 + i, 200 + i, 0, &clip));
            cache_clip info = { .index = i, .label = clip->label, .split = 0 };
            snprintf(info.name, sizeof info.name, "clip%02d", i);
            cache_clip_writer *cw;
            CHECK(cache_clip_begin(w, &info, &cw));
            CHECK(cache_clip_append(cw, clip->frames - 1, clip->local_flow, NULL));
            CHECK(cache_clip_commit(&cw));
            cx.pairs[i] = clip->frames - 1;
            cx.labels[i] = clip->label;
            synth_clip_free(&clip);
        }
        CHECK(cache_writer_finish(w));
        cache_writer_close(&w);
        loader_motion_config mc = { .ctx = &cx, .count = CLIPS, .field_w = sc.width, .field_h = sc.height,
                                    .segments = 3, .L = L, .channels = 2, .divide = 1, .pairs = c_pairs,
                                    .label = c_label, .open_worker = c_open, .close_worker = c_close, .read = c_read };
        mc.aug = loader_aug_default(size, size);
        loader_source src;
        CHECK(loader_source_motion(&src, &mc));
        classifier_config cc;
        CHECK(classifier_config_preset("resnet10", 2 * L, sc.classes, &cc));
        cc.width = 16;
        compare("cache", &cc, &src, batch, workers, warmup, steps, rounds);
        loader_source_free(&src);
    }
    printf("(ratio = loader / in-memory steps per second; goal >= 0.9)\n");
    synth_free(&sy);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "bench_classifier: could not remove %s\n", dir);
    return 0;
}
