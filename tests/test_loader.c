/* test_loader.c — the threaded loader (datasets/loader.h): determinism across
 * thread counts, the memory bound, error propagation, the augmentations
 * (analytic crops, flips that negate motion x) and the video source against
 * frames decoded directly. */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "datasets/loader.h"
#include "datasets/ucf101.h"
#include "datasets/video.h"
#include "tests/testutil.h"

/* A source whose sample is a function of (item, seed) only, with a load
 * counter and an optional failing item. With limit > 0, a load that would
 * take the count past limit is counted in `over` (the memory bound's test
 * raises limit just before it lets the loader go further). */
typedef struct {
    long count;
    long fail_item;
    pthread_mutex_t mu;
    long loads;
    long limit, over;
} fn_src;

static int fn_load(void *ctx, void *wctx, long item, uint64_t seed, float *out, int32_t *label)
{
    (void)wctx;
    fn_src *s = ctx;
    pthread_mutex_lock(&s->mu);
    s->loads++;
    if (s->limit > 0 && s->loads > s->limit) s->over++;
    pthread_mutex_unlock(&s->mu);
    if (item == s->fail_item) return gl_error(GL_EFORMAT, "broken clip %ld", item);
    uint64_t r = seed;
    for (int i = 0; i < 6; i++) out[i] = (float)item + (float)loader_rand(&r);
    *label = (int32_t)(item % 3);
    return 0;
}

static loader_source fn_source(fn_src *s)
{
    loader_source src = { .ctx = s, .count = s->count, .ndim = 2, .shape = { 2, 3 }, .load = fn_load };
    return src;
}

/* Runs `epochs` epochs and returns every batch's data, labels and items concatenated. */
static void run_epochs(fn_src *s, int threads, int batch, int epochs, float *data, int32_t *labels, long *items,
                       long *nsamples)
{
    loader_source src = fn_source(s);
    loader_config c = loader_config_default();
    c.batch_size = batch;
    c.threads = threads;
    c.prefetch = 3;
    c.seed = 42;
    c.epochs = epochs;
    loader *l;
    OK(loader_open(&l, &src, &c));
    long n = 0;
    int eofs = 0;
    for (;;) {
        const loader_batch *b;
        int rc = loader_next(l, &b);
        assert_true(rc >= 0);
        if (rc == GL_EOF) {
            if (++eofs == epochs) break;
            continue;
        }
        assert_int_equal(b->epoch, eofs);
        memcpy(data + n * 6, b->data, (size_t)b->n * 6 * sizeof(float));
        memcpy(labels + n, b->labels, (size_t)b->n * sizeof(int32_t));
        memcpy(items + n, b->items, (size_t)b->n * sizeof(long));
        n += b->n;
    }
    /* past the last epoch it stays at the end */
    const loader_batch *b;
    assert_int_equal(loader_next(l, &b), GL_EOF);
    loader_close(&l);
    assert_null(l);
    *nsamples = n;
}

static void test_deterministic_across_threads(void **state)
{
    (void)state;
    fn_src s = { .count = 37, .fail_item = -1 };
    pthread_mutex_init(&s.mu, NULL);
    enum { EP = 3, MAXN = 37 * EP };
    float d1[MAXN * 6], d4[MAXN * 6];
    int32_t l1[MAXN], l4[MAXN];
    long i1[MAXN], i4[MAXN], n1, n4;
    run_epochs(&s, 1, 5, EP, d1, l1, i1, &n1);
    run_epochs(&s, 4, 5, EP, d4, l4, i4, &n4);
    assert_int_equal(n1, 37 * EP);
    assert_int_equal(n4, n1);
    assert_memory_equal(d1, d4, sizeof(float) * (size_t)n1 * 6);
    assert_memory_equal(l1, l4, sizeof(int32_t) * (size_t)n1);
    assert_memory_equal(i1, i4, sizeof(long) * (size_t)n1);
    /* each epoch visits every item once, in a different order each epoch */
    for (int e = 0; e < EP; e++) {
        int seen[37] = { 0 };
        for (long i = 0; i < 37; i++) seen[i1[e * 37 + i]]++;
        for (int i = 0; i < 37; i++) assert_int_equal(seen[i], 1);
        /* labels and data belong to their item */
        for (long i = 0; i < 37; i++) {
            long it = i1[e * 37 + i];
            assert_int_equal(l1[e * 37 + i], it % 3);
            assert_true(d1[(e * 37 + i) * 6] >= it && d1[(e * 37 + i) * 6] < it + 1);
        }
    }
    assert_true(memcmp(i1, i1 + 37, 37 * sizeof(long)) != 0);
    assert_true(memcmp(i1 + 37, i1 + 74, 37 * sizeof(long)) != 0);
    /* the augmentation randomness differs between epochs for the same item */
    long pos0 = -1, pos1 = -1;
    for (long i = 0; i < 37; i++) {
        if (i1[i] == 5) pos0 = i;
        if (i1[37 + i] == 5) pos1 = 37 + i;
    }
    assert_true(d1[pos0 * 6] != d1[pos1 * 6]);
    pthread_mutex_destroy(&s.mu);
}

static void test_memory_bound_and_resume(void **state)
{
    (void)state;
    fn_src s = { .count = 100, .fail_item = -1 };
    pthread_mutex_init(&s.mu, NULL);
    loader_source src = fn_source(&s);
    loader_config c = loader_config_default();
    c.batch_size = 4;
    c.threads = 3;
    c.prefetch = 2;
    c.seed = 7;
    /* The loader owns prefetch + 1 buffers: holding batch 0, the workers fill
     * the other 2 and stop there. Every load past that bound is counted by
     * fn_load as it happens (s.over), so the check needs no waiting to see
     * whether one comes: the waits below are for loads that must come. */
    long bound = (long)(c.prefetch + 1) * c.batch_size;
    s.limit = bound;
    loader *l;
    OK(loader_open(&l, &src, &c));
    const loader_batch *b;
    OK(loader_next(l, &b));
    long first_item = b->items[0];
    float first_val = b->data[0];
    while (loader_samples_loaded(l) < bound) sched_yield();
    assert_int_equal(loader_samples_loaded(l), bound);
    /* releasing one batch lets exactly one more batch be loaded */
    pthread_mutex_lock(&s.mu);
    s.limit = bound + 4;
    pthread_mutex_unlock(&s.mu);
    OK(loader_next(l, &b));
    while (loader_samples_loaded(l) < bound + 4) sched_yield();
    assert_int_equal(loader_samples_loaded(l), bound + 4);
    loader_close(&l); /* joins the workers: every load they made is counted */
    assert_int_equal(s.loads, bound + 4);
    assert_int_equal(s.over, 0);
    s.limit = 0;
    /* the same seed starting at epoch 0 again gives the same first batch, and
     * starting at epoch 1 gives what epoch 1 gave in the long run */
    c.start_epoch = 0;
    OK(loader_open(&l, &src, &c));
    OK(loader_next(l, &b));
    assert_int_equal(b->epoch, 0);
    assert_int_equal(b->items[0], first_item);
    assert_true(b->data[0] == first_val);
    for (int i = 1; i < 25; i++) OK(loader_next(l, &b)); /* the rest of the 25 batches of epoch 0 */
    long last_item = b->items[0];
    assert_int_equal(loader_next(l, &b), GL_EOF);
    OK(loader_next(l, &b));
    assert_int_equal(b->epoch, 1);
    long e1_item = b->items[0];
    float e1_val = b->data[0];
    loader_close(&l);
    c.start_epoch = 1;
    OK(loader_open(&l, &src, &c));
    OK(loader_next(l, &b));
    assert_int_equal(b->epoch, 1);
    assert_int_equal(b->items[0], e1_item);
    assert_true(b->data[0] == e1_val);
    loader_close(&l);
    /* starting at batch 24 of epoch 0 (a resume inside an epoch): its last
     * batch, the end of the epoch, then epoch 1 as in the long run */
    c.start_epoch = 0;
    c.start_batch = 24;
    OK(loader_open(&l, &src, &c));
    OK(loader_next(l, &b));
    assert_int_equal(b->epoch, 0);
    assert_int_equal(b->index, 24);
    assert_int_equal(b->items[0], last_item);
    assert_int_equal(loader_next(l, &b), GL_EOF);
    OK(loader_next(l, &b));
    assert_int_equal(b->epoch, 1);
    assert_int_equal(b->index, 0);
    assert_int_equal(b->items[0], e1_item);
    assert_true(b->data[0] == e1_val);
    loader_close(&l);
    c.start_batch = 25; /* past the epoch */
    assert_int_equal(loader_open(&l, &src, &c), GL_EINVAL);
    pthread_mutex_destroy(&s.mu);
}

static void test_errors(void **state)
{
    (void)state;
    fn_src s = { .count = 20, .fail_item = 7 };
    pthread_mutex_init(&s.mu, NULL);
    loader_source src = fn_source(&s);
    loader_config c = loader_config_default();
    c.batch_size = 20;
    c.threads = 2;
    c.shuffle = 0;
    loader *l;
    OK(loader_open(&l, &src, &c));
    const loader_batch *b;
    int rc = loader_next(l, &b);
    assert_int_equal(rc, GL_EFORMAT);
    assert_null(b);
    assert_non_null(strstr(gl_last_error(), "item 7: broken clip 7"));
    loader_close(&l);
    /* bad configurations name the field */
    c.batch_size = 0;
    assert_int_equal(loader_open(&l, &src, &c), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "batch_size"));
    c.batch_size = 30;
    c.drop_last = 1;
    assert_int_equal(loader_open(&l, &src, &c), GL_EINVAL);
    assert_null(l);
    pthread_mutex_destroy(&s.mu);
}

/* Every allocation of loader_open failing in turn: a clean GL_ENOMEM, nothing
 * leaked (ASan's leak check), and the loader works once they succeed. */
static void test_alloc_failures_clean_up(void **state)
{
    (void)state;
    fn_src s = { .count = 10, .fail_item = -1 };
    pthread_mutex_init(&s.mu, NULL);
    loader_source src = fn_source(&s);
    loader_config c = loader_config_default();
    c.batch_size = 3;
    c.threads = 2;
    int ok = 0;
    for (int k = 0; k < 40 && !ok; k++) {
        loader *l = NULL;
        gl_alloc_fail_after(k);
        int rc = loader_open(&l, &src, &c);
        gl_alloc_fail_after(-1);
        if (rc == 0) {
            const loader_batch *b;
            OK(loader_next(l, &b));
            assert_int_equal(b->n, 3);
            loader_close(&l);
            ok = 1;
        } else {
            assert_int_equal(rc, GL_ENOMEM);
            assert_null(l);
        }
    }
    assert_true(ok);
    pthread_mutex_destroy(&s.mu);
}

/* ---- augmentation ------------------------------------------------------------------------ */

static void test_flip_negates_motion_x(void **state)
{
    (void)state;
    enum { L = 2, H = 3, W = 5 };
    float f[L * 2 * H * W], g[L * 2 * H * W];
    for (int l = 0; l < L; l++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                f[((l * 2 + 0) * H + y) * W + x] = (float)(10 * l + x + 0.5 * y); /* u */
                f[((l * 2 + 1) * H + y) * W + x] = (float)(-3 * l + 2 * x - y);  /* v */
            }
    memcpy(g, f, sizeof f);
    loader_flip_motion(g, L, H, W);
    for (int l = 0; l < L; l++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                /* the field seen in a mirror: position x <- W-1-x, u <- -u, v kept */
                assert_true(g[((l * 2 + 0) * H + y) * W + x] == -f[((l * 2 + 0) * H + y) * W + (W - 1 - x)]);
                assert_true(g[((l * 2 + 1) * H + y) * W + x] == f[((l * 2 + 1) * H + y) * W + (W - 1 - x)]);
            }
    /* through a view: full-size crop + flip = the same mirror, for every field of the stack */
    loader_view v = { .x = 0, .y = 0, .w = W, .h = H, .flip = 1 };
    float o[L * 2 * H * W];
    OK(loader_view_apply(&v, f, 2 * L, H, W, o, H, W, 1));
    assert_memory_equal(o, g, sizeof g);
    /* RGB planes are mirrored, never negated */
    OK(loader_view_apply(&v, f, 2 * L, H, W, o, H, W, 0));
    assert_true(o[0] == f[W - 1]);
    /* resizing a crop rescales the vectors: a uniform 2 px motion on a 4x4
     * crop shown at 8x8 is 4 px right and 1 px down (half-size vertically) */
    float u[2 * 16];
    for (int i = 0; i < 16; i++) { u[i] = 2.0f; u[16 + i] = 2.0f; }
    loader_view c = { .x = 0, .y = 0, .w = 4, .h = 4, .flip = 0 };
    float r[2 * 8 * 2];
    OK(loader_view_apply(&c, u, 2, 4, 4, r, 2, 8, 1));
    for (int i = 0; i < 16; i++) assert_double_equal(r[i], 4.0, 1e-6);
    for (int i = 0; i < 16; i++) assert_double_equal(r[16 + i], 1.0, 1e-6);
    /* a crop outside the input is refused */
    loader_view bad = { .x = 2, .y = 0, .w = 4, .h = 4 };
    assert_int_equal(loader_view_apply(&bad, u, 2, 4, 4, r, 2, 8, 1), GL_EINVAL);
}

static void test_views_and_segments(void **state)
{
    (void)state;
    loader_aug a = loader_aug_default(32, 32);
    a.test_scale = 0.5;
    a.test_views = 10;
    loader_view v;
    /* 80x40 input: crops of 20x20, corners at x in {0, 60}, y in {0, 20} */
    loader_view_test(&a, 80, 40, 0, &v);
    assert_true(v.x == 0 && v.y == 0 && v.w == 20 && v.h == 20 && !v.flip);
    loader_view_test(&a, 80, 40, 3, &v);
    assert_true(v.x == 60 && v.y == 20);
    loader_view_test(&a, 80, 40, 4, &v);
    assert_true(v.x == 30 && v.y == 10);
    loader_view_test(&a, 80, 40, 9, &v);
    assert_true(v.x == 30 && v.y == 10 && v.flip);
    a.test_views = 3;
    loader_view_test(&a, 80, 40, 2, &v);
    assert_true(v.x == 60 && v.y == 10);
    /* training crops stay inside and use the TSN scales of the shorter side */
    a.test_views = 0;
    uint64_t rng = 3;
    int flips = 0;
    for (int i = 0; i < 400; i++) {
        loader_view_draw(&a, 80, 40, &rng, &v);
        assert_true(v.x >= 0 && v.y >= 0 && v.x + v.w <= 80 && v.y + v.h <= 40);
        assert_true(v.w == 40 || v.w == 35 || v.w == 30 || v.w == 26);
        assert_true(v.h == 40 || v.h == 35 || v.h == 30 || v.h == 26);
        flips += v.flip;
    }
    assert_true(flips > 150 && flips < 250);
    /* TSN test sampling: centres of K equal segments of the valid starts */
    long s[3];
    loader_segment_starts(164, 1, 3, NULL, s);
    assert_int_equal(s[0], 27);  /* floor(0.5 * 164 / 3) */
    assert_int_equal(s[1], 82);
    assert_int_equal(s[2], 136);
    loader_segment_starts(10, 5, 2, NULL, s); /* 6 valid starts */
    assert_int_equal(s[0], 1);
    assert_int_equal(s[1], 4);
    for (int i = 0; i < 100; i++) {
        loader_segment_starts(30, 5, 3, &rng, s);
        for (int k = 0; k < 3; k++) {
            assert_true(s[k] >= k * 26 / 3 && s[k] <= (k + 1) * 26 / 3);
            assert_true(s[k] + 5 <= 30);
        }
    }
}

/* ---- motion source over an in-memory reader ------------------------------------------------- */

enum { MW = 8, MH = 6, MPAIRS = 9 };

static long m_pairs(void *ctx, long item) { (void)ctx; return MPAIRS - item; }
static int32_t m_label(void *ctx, long item) { (void)ctx; return (int32_t)item; }
static int m_read(void *ctx, void *wctx, long item, long off, int L, float *out)
{
    (void)ctx; (void)wctx;
    if (off + L > MPAIRS - item) return gl_error(GL_EINVAL, "read past the end");
    /* field t of item i: u = 100 i + t + x / 10, v = -t */
    for (int l = 0; l < L; l++)
        for (int y = 0; y < MH; y++)
            for (int x = 0; x < MW; x++) {
                out[((l * 2 + 0) * MH + y) * MW + x] = (float)(100 * item + (off + l) + x / 10.0);
                out[((l * 2 + 1) * MH + y) * MW + x] = (float)(-(off + l));
            }
    return 0;
}

static void test_motion_source(void **state)
{
    (void)state;
    loader_motion_config mc = { .count = 3, .field_w = MW, .field_h = MH, .segments = 2, .L = 3, .channels = 2, .divide = 1,
                                .pairs = m_pairs, .label = m_label, .read = m_read };
    mc.aug = loader_aug_default(MW, MH);
    mc.aug.test_views = 10;
    mc.aug.test_scale = 1.0; /* the full field: views differ only by the flip */
    loader_source src;
    OK(loader_source_motion(&src, &mc));
    assert_int_equal(src.shape[0], 20);
    assert_int_equal(src.shape[1], 6);
    loader_config c = loader_config_default();
    c.batch_size = 3;
    c.shuffle = 0;
    c.threads = 2;
    c.epochs = 1;
    loader *l;
    OK(loader_open(&l, &src, &c));
    const loader_batch *b;
    OK(loader_next(l, &b));
    assert_int_equal(b->n, 3);
    size_t plane = MW * MH, seg = 6 * plane, sample = 20 * seg;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(b->labels[i], i);
        long starts[2];
        loader_segment_starts(MPAIRS - i, 3, 2, NULL, starts);
        const float *smp = b->data + i * sample;
        for (int k = 0; k < 2; k++)
            for (int l3 = 0; l3 < 3; l3++) {
                const float *u0 = smp + k * seg + (2 * l3) * plane;          /* view 0 */
                const float *u5 = smp + (5 * 2 + k) * seg + (2 * l3) * plane; /* view 5: mirrored */
                const float *v5 = u5 + plane;
                for (int x = 0; x < MW; x++) {
                    double want = 100 * i + starts[k] + l3 + x / 10.0;
                    assert_double_equal(u0[x], want, 1e-4);
                    assert_double_equal(u5[x], -(100 * i + starts[k] + l3 + (MW - 1 - x) / 10.0), 1e-4);
                    assert_double_equal(v5[x], -(double)(starts[k] + l3), 1e-5);
                }
            }
    }
    loader_close(&l);
    loader_source_free(&src);
    assert_null(src.ctx);
}

/* ---- video source against frames decoded directly ---------------------------------------------- */

static int add_one(void *ctx, uint64_t seed, float *sample, const int64_t *shape, int ndim)
{
    (void)ctx; (void)seed;
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    for (size_t i = 0; i < n; i++) sample[i] += 1.0f;
    return 0;
}

static void test_video_source_real_clip(void **state)
{
    (void)state;
    char dir[] = "/tmp/glocal_test_loader_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cmd[1200];
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/ApplyEyeMakeup && ln -s %s/ucf101/videos/v_ApplyEyeMakeup_g01_c01.avi %s/ApplyEyeMakeup/ && "
             "printf '1 ApplyEyeMakeup\\r\\n' > %s/classInd.txt && "
             "printf 'ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 1\\r\\n' > %s/trainlist01.txt && "
             ": > %s/testlist01.txt",
             dir, GLOCAL_DATA_DIR, dir, dir, dir, dir);
    assert_int_equal(system(cmd), 0);
    dataset_index *idx = NULL;
    OK(dataset_index_load(&idx, dir, NULL, 1));
    loader_video_config vc = loader_video_config_default(idx, DATASET_TRAIN);
    vc.segments = 3;
    vc.decode_w = 64;
    vc.decode_h = 48;
    vc.aug = loader_aug_default(32, 32);
    vc.aug.test_views = 1;
    vc.aug.test_scale = 32.0 / 48.0; /* a 32x32 centre crop, no resampling */
    loader_source src;
    OK(loader_source_video(&src, &vc));
    loader_config c = loader_config_default();
    c.batch_size = 1;
    c.threads = 1;
    c.epochs = 1;
    loader *l;
    OK(loader_open(&l, &src, &c));
    const loader_batch *b;
    OK(loader_next(l, &b));
    assert_int_equal(b->labels[0], 0);
    /* independent path: decode frames 27, 82, 136 (TSN centres of 164) at 64x48 */
    long want_idx[3] = { 27, 82, 136 };
    float *frames = malloc(3 * 64 * 48 * 3 * sizeof(float));
    video_reader_opts o = video_reader_opts_default();
    o.width = 64;
    o.height = 48;
    o.dtype = VIDEO_F32;
    OK(video_decode_frames(idx->clips[0].path, &o, want_idx, 3, frames, NULL));
    double maxd = 0;
    for (int k = 0; k < 3; k++)
        for (int ch = 0; ch < 3; ch++)
            for (int y = 0; y < 32; y++)
                for (int x = 0; x < 32; x++) {
                    float px = frames[((size_t)k * 48 * 64 + (y + 8) * 64 + (x + 16)) * 3 + ch];
                    double want = (px - vc.mean[ch]) / vc.std[ch];
                    double got = b->data[(((size_t)k * 3 + ch) * 32 + y) * 32 + x];
                    if (fabs(got - want) > maxd) maxd = fabs(got - want);
                }
    assert_true(maxd < 1e-5);
    assert_int_equal(loader_next(l, &b), GL_EOF);
    loader_close(&l);
    loader_source_free(&src);
    /* frame pairs: one segment of 2 consecutive frames (TSN centre start
     * floor(0.5 * 163) = 81), stacked as 6 channels, through a hook that adds 1 */
    vc.segments = 1;
    vc.frames = 2;
    vc.hook = add_one;
    OK(loader_source_video(&src, &vc));
    assert_int_equal(src.shape[1], 6);
    OK(loader_open(&l, &src, &c));
    OK(loader_next(l, &b));
    long pair_idx[2] = { 81, 82 };
    OK(video_decode_frames(idx->clips[0].path, &o, pair_idx, 2, frames, NULL));
    maxd = 0;
    for (int f = 0; f < 2; f++)
        for (int ch = 0; ch < 3; ch++)
            for (int y = 0; y < 32; y++)
                for (int x = 0; x < 32; x++) {
                    float px = frames[((size_t)f * 48 * 64 + (y + 8) * 64 + (x + 16)) * 3 + ch];
                    double want = (px - vc.mean[ch]) / vc.std[ch] + 1.0;
                    double got = b->data[(((size_t)f * 3 + ch) * 32 + y) * 32 + x];
                    if (fabs(got - want) > maxd) maxd = fabs(got - want);
                }
    assert_true(maxd < 1e-5);
    loader_close(&l);
    loader_source_free(&src);
    free(frames);
    dataset_index_free(&idx);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* Data parallelism: with world 2, rank r's batch i holds the global positions
 * i*B + r, i*B + r + 2, ... of the epoch's order; where those exist in the
 * one-rank epoch, the item and the augmented sample (keyed by the global
 * position) are bit-identical to the one-rank stream's, past its end the
 * order wraps around; together the ranks cover each padded position once. */
static void test_distributed_ranks_union(void **state)
{
    (void)state;
    enum { B = 4, EPOCHS = 2, MAXN = 16 };
    for (long count = 10; count <= 11; count++) {
        fn_src s = { .count = count, .fail_item = -1 };
        pthread_mutex_init(&s.mu, NULL);
        loader_source src = fn_source(&s);
        /* the one-rank stream, indexed by (epoch, position) */
        long items1[EPOCHS][MAXN];
        float data1[EPOCHS][MAXN][6];
        loader_config c = loader_config_default();
        c.batch_size = B;
        c.threads = 2;
        c.seed = 42;
        c.epochs = EPOCHS;
        loader *l;
        OK(loader_open(&l, &src, &c));
        const loader_batch *b;
        int rc;
        long pos = 0, epoch = 0;
        while (epoch < EPOCHS) {
            rc = loader_next(l, &b);
            assert_true(rc >= 0);
            if (rc == GL_EOF) { assert_int_equal(pos, count); epoch++; pos = 0; continue; }
            for (int j = 0; j < b->n; j++, pos++) {
                items1[epoch][pos] = b->items[j];
                memcpy(data1[epoch][pos], b->data + j * 6, sizeof data1[epoch][pos]);
            }
        }
        loader_close(&l);
        long padded = (count + 1) / 2 * 2;
        assert_int_equal(loader_padded_count(count, 2), padded);
        int seen[EPOCHS][MAXN] = { { 0 } };
        long nb[2];
        for (int r = 0; r < 2; r++) {
            c.rank = r;
            c.world = 2;
            OK(loader_open(&l, &src, &c));
            nb[r] = loader_batches_per_epoch(l);
            assert_int_equal(nb[r], (padded + B - 1) / B);
            epoch = 0;
            while (epoch < EPOCHS) {
                rc = loader_next(l, &b);
                assert_true(rc >= 0);
                if (rc == GL_EOF) { epoch++; continue; }
                assert_int_equal(b->epoch, epoch);
                long first = b->index * B, left = padded - first;
                assert_int_equal(b->n, (left < B ? left : B) / 2);
                for (int j = 0; j < b->n; j++) {
                    long p = first + 2 * j + r;
                    assert_int_equal(b->positions[j], p);
                    seen[epoch][p]++;
                    if (p < count) {
                        assert_int_equal(b->items[j], items1[epoch][p]);
                        assert_memory_equal(b->data + j * 6, data1[epoch][p], sizeof data1[epoch][p]);
                    } else { /* padding: wraps to the start of the order, own seed */
                        assert_int_equal(b->items[j], items1[epoch][p - count]);
                        float want[6];
                        int32_t lab;
                        OK(fn_load(&s, NULL, b->items[j], loader_sample_seed(42, epoch, p), want, &lab));
                        assert_memory_equal(b->data + j * 6, want, sizeof want);
                    }
                }
            }
            loader_close(&l);
        }
        for (int e = 0; e < EPOCHS; e++)
            for (long p = 0; p < padded; p++) assert_int_equal(seen[e][p], 1);
        /* bad layouts are refused with a message, not a crash */
        c.batch_size = 5;
        assert_int_equal(loader_open(&l, &src, &c), GL_EINVAL);
        assert_non_null(strstr(gl_last_error(), "multiple of the world size"));
        c.batch_size = B;
        c.rank = 2;
        assert_int_equal(loader_open(&l, &src, &c), GL_EINVAL);
        pthread_mutex_destroy(&s.mu);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deterministic_across_threads),
        cmocka_unit_test(test_memory_bound_and_resume),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_alloc_failures_clean_up),
        cmocka_unit_test(test_flip_negates_motion_x),
        cmocka_unit_test(test_views_and_segments),
        cmocka_unit_test(test_motion_source),
        cmocka_unit_test(test_video_source_real_clip),
        cmocka_unit_test(test_distributed_ranks_union),
    };
    return cmocka_run_group_tests_name("loader", tests, NULL, NULL);
}
