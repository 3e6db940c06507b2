/* bench_dist — training throughput of small conv models with R data-parallel
 * ranks (nn_dist, Gloo over loopback) of T libtorch threads each, for the
 * question: on a small machine, do R single-thread ranks beat one
 * rank with R threads?
 *
 *   bench_dist [--model unet|resnet] [--ranks R] [--threads T] [--batch B]
 *              [--size HxW] [--steps S] [--warmup W]
 *
 * The global batch B is split evenly over the ranks (B/R each), so every
 * configuration does the same work per step (strong scaling): steps/s and
 * samples/s compare directly. Ranks are fork()ed before libtorch starts;
 * rank 0 times S steps between two barriers after W warm-up steps and prints
 * one line:
 *   unet ranks 2 threads 1 batch 8 size 64x64 params 528770: allreduce 4.1 ms/step, 1.18 steps/s 9.40 samples/s
 *
 * Models (random inputs and targets, generated once: data loading is not
 * measured), both conv -> batch norm -> ReLU blocks, Adam:
 *   unet   ~0.53M parameters: the motion stage's shape, two RGB frames
 *          (6, H, W) -> encoder 32/64/128 (stride 2 twice), two 128 blocks,
 *          decoder with skip connections -> 2-channel flow, MSE loss.
 *   resnet ~0.46M parameters: the classifier's shape, (3, H, W) -> 32 (s2),
 *          two residual blocks, 64, 128, 256 (each s2), global pool, 101
 *          classes, cross entropy.
 */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nn/nn.h"

typedef struct {
    const char *model;
    int ranks, threads, batch, h, w, steps, warmup;
} bench_cfg;

typedef struct {
    nn_params p;
    nn_conv c[8];
    nn_dense fc;
    int nc;
} bench_model;

#define TRY(x)                                                                               \
    do {                                                                                     \
        if ((rc = (x)) < 0) goto fail;                                                       \
    } while (0)

static int model_init(bench_model *m, const char *kind)
{
    int rc = 0;
    memset(m, 0, sizeof *m);
    nn_params_init(&m->p);
    static const int unet[8][4] = { /* cin, cout, stride, act */
        { 6, 32, 1, 1 }, { 32, 64, 2, 1 }, { 64, 128, 2, 1 }, { 128, 128, 1, 1 },
        { 128, 128, 1, 1 }, { 128 + 64, 64, 1, 1 }, { 64 + 32, 32, 1, 1 }, { 32, 2, 1, 0 } };
    static const int resnet[8][3] = { { 3, 32, 2 }, { 32, 32, 1 }, { 32, 32, 1 }, { 32, 32, 1 },
                                      { 32, 32, 1 }, { 32, 64, 2 }, { 64, 128, 2 }, { 128, 256, 2 } };
    char name[32];
    if (!strcmp(kind, "unet")) {
        for (int i = 0; i < 8; i++) {
            snprintf(name, sizeof name, "c%d", i);
            TRY(nn_conv_init(&m->c[i], &m->p, name, unet[i][0], unet[i][1], 3, unet[i][2], 1,
                             unet[i][3] ? NN_NORM_BATCH : NN_NORM_NONE,
                             unet[i][3] ? NN_ACT_RELU : NN_ACT_NONE));
        }
        m->nc = 8;
    } else {
        for (int i = 0; i < 8; i++) {
            snprintf(name, sizeof name, "c%d", i);
            TRY(nn_conv_init(&m->c[i], &m->p, name, resnet[i][0], resnet[i][1], 3, resnet[i][2], 1,
                             NN_NORM_BATCH, NN_ACT_RELU));
        }
        m->nc = 8;
        TRY(nn_dense_init(&m->fc, &m->p, "fc", 256, 101));
    }
fail:
    return rc;
}

/* One training step; the scope frees every temporary. */
static int model_step(bench_model *m, const char *kind, nn_optimizer *opt, nn_dist *d,
                      const nn_tensor *x, const nn_tensor *y, double *comm_s)
{
    nn_scope *sc = NULL;
    int rc = nn_scope_begin(&sc);
    if (rc < 0) return rc;
    nn_tensor *loss = NULL;
    TRY(nn_optimizer_zero_grad(opt));
    if (!strcmp(kind, "unet")) {
        nn_tensor *e0, *e1, *e2, *b0, *b1, *u1, *k1, *d1, *u0, *k0, *d0, *out, *diff, *sq;
        TRY(nn_conv_forward(&e0, &m->c[0], x, 1));      /* 32, H */
        TRY(nn_conv_forward(&e1, &m->c[1], e0, 1));     /* 64, H/2 */
        TRY(nn_conv_forward(&e2, &m->c[2], e1, 1));     /* 128, H/4 */
        TRY(nn_conv_forward(&b0, &m->c[3], e2, 1));
        TRY(nn_conv_forward(&b1, &m->c[4], b0, 1));
        TRY(nn_interpolate(&u1, b1, nn_size(e1, 2), nn_size(e1, 3), NN_BILINEAR, 0));
        nn_tensor *cat1[2] = { u1, e1 };
        TRY(nn_cat(&k1, cat1, 2, 1));
        TRY(nn_conv_forward(&d1, &m->c[5], k1, 1));     /* 64, H/2 */
        TRY(nn_interpolate(&u0, d1, nn_size(e0, 2), nn_size(e0, 3), NN_BILINEAR, 0));
        nn_tensor *cat0[2] = { u0, e0 };
        TRY(nn_cat(&k0, cat0, 2, 1));
        TRY(nn_conv_forward(&d0, &m->c[6], k0, 1));     /* 32, H */
        TRY(nn_conv_forward(&out, &m->c[7], d0, 1));    /* 2, H */
        TRY(nn_sub(&diff, out, y));
        TRY(nn_unary(&sq, NN_SQUARE, diff));
        TRY(nn_mean(&loss, sq, NULL, 0, 0));
    } else {
        nn_tensor *h, *a, *b, *s1, *c, *dd, *s2, *r, *q, *z, *pool, *flat, *logits;
        TRY(nn_conv_forward(&h, &m->c[0], x, 1));
        TRY(nn_conv_forward(&a, &m->c[1], h, 1));
        TRY(nn_conv_forward(&b, &m->c[2], a, 1));
        TRY(nn_add(&s1, b, h));                         /* residual */
        TRY(nn_conv_forward(&c, &m->c[3], s1, 1));
        TRY(nn_conv_forward(&dd, &m->c[4], c, 1));
        TRY(nn_add(&s2, dd, s1));
        TRY(nn_conv_forward(&r, &m->c[5], s2, 1));
        TRY(nn_conv_forward(&q, &m->c[6], r, 1));
        TRY(nn_conv_forward(&z, &m->c[7], q, 1));
        TRY(nn_adaptive_avg_pool2d(&pool, z, 1, 1));
        TRY(nn_flatten(&flat, pool, 1, -1));
        TRY(nn_dense_forward(&logits, &m->fc, flat));
        TRY(nn_cross_entropy(&loss, logits, y, 0.0));
    }
    TRY(nn_backward(loss));
    double t0 = gl_now();
    TRY(nn_dist_allreduce_grads(d, &m->p));
    *comm_s += gl_now() - t0;
    TRY(nn_optimizer_step(opt));
fail:
    nn_scope_end(&sc);
    return rc;
}

static int run_rank(const bench_cfg *c, int rank, int port)
{
    int rc;
    nn_dist *d = NULL;
    nn_optimizer *opt = NULL;
    nn_tensor *x = NULL, *y = NULL;
    bench_model m;
    memset(&m, 0, sizeof m);
    nn_params_init(&m.p);
    TRY(nn_runtime_init(c->threads, "cpu"));
    nn_dist_options o = nn_dist_options_default();
    o.timeout_s = 120;
    TRY(nn_dist_init(&d, rank, c->ranks, rank, "127.0.0.1", port, &o));
    nn_manual_seed(1 + (uint64_t)rank);
    TRY(model_init(&m, c->model));
    TRY(nn_dist_broadcast_params(d, &m.p));
    nn_opt_config oc = nn_opt_config_default(NN_OPT_ADAM);
    TRY(nn_optimizer_new(&opt, &m.p, &oc));
    int n = c->batch / c->ranks;
    int unet = !strcmp(c->model, "unet");
    int64_t sx[4] = { n, unet ? 6 : 3, c->h, c->w }, sy[4] = { n, 2, c->h, c->w }, sl[1] = { n };
    TRY(nn_randn(&x, sx, 4, NN_F32));
    if (unet) TRY(nn_randn(&y, sy, 4, NN_F32));
    else TRY(nn_randint(&y, 0, 101, sl, 1));
    double comm = 0;
    for (int s = 0; s < c->warmup; s++) TRY(model_step(&m, c->model, opt, d, x, y, &comm));
    TRY(nn_dist_barrier(d));
    comm = 0;
    double t0 = gl_now();
    for (int s = 0; s < c->steps; s++) TRY(model_step(&m, c->model, opt, d, x, y, &comm));
    TRY(nn_dist_barrier(d));
    double el = gl_now() - t0;
    if (rank == 0) {
        /* The all-reduce time includes waiting for the slower rank. Keep
         * samples/s second to last: scripts/bench reads that field. */
        printf("%s ranks %d threads %d batch %d size %dx%d params %lld: allreduce %.1f ms/step, "
               "%.3f steps/s %.2f samples/s\n",
               c->model, c->ranks, c->threads, c->batch, c->h, c->w, (long long)nn_params_count(&m.p),
               1000.0 * comm / c->steps, c->steps / el, c->steps * (double)c->batch / el);
        fflush(stdout);
    }
fail:
    if (rc < 0) fprintf(stderr, "bench_dist rank %d: %s\n", rank, gl_last_error());
    nn_free(&x);
    nn_free(&y);
    nn_optimizer_free(&opt);
    nn_params_free(&m.p);
    nn_dist_free(&d);
    return rc < 0 ? 1 : 0;
}

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t n = sizeof a;
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(s, (struct sockaddr *)&a, &n) < 0) {
        if (s >= 0) close(s);
        return -1;
    }
    close(s);
    return ntohs(a.sin_port);
}

int main(int argc, char **argv)
{
    bench_cfg c = { "unet", 1, 1, 8, 64, 64, 20, 3 };
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--model")) c.model = v;
        else if (!strcmp(a, "--ranks")) c.ranks = atoi(v);
        else if (!strcmp(a, "--threads")) c.threads = atoi(v);
        else if (!strcmp(a, "--batch")) c.batch = atoi(v);
        else if (!strcmp(a, "--size")) {
            if (sscanf(v, "%dx%d", &c.h, &c.w) != 2) c.h = 0;
        } else if (!strcmp(a, "--steps")) c.steps = atoi(v);
        else if (!strcmp(a, "--warmup")) c.warmup = atoi(v);
        else {
            fprintf(stderr, "bench_dist: unknown option %s (see the comment at the top)\n", a);
            return 2;
        }
    }
    if ((strcmp(c.model, "unet") && strcmp(c.model, "resnet")) || c.ranks < 1 || c.ranks > 16 ||
        c.threads < 1 || c.batch < c.ranks || c.batch % c.ranks || c.h < 8 || c.w < 8 || c.h % 4 ||
        c.w % 4 || c.steps < 1 || c.warmup < 0) {
        fprintf(stderr, "bench_dist: bad options (model unet|resnet, batch a multiple of ranks, "
                        "sizes multiples of 4)\n");
        return 2;
    }
    int port = free_port();
    if (port < 0) {
        perror("bench_dist: free port");
        return 1;
    }
    pid_t pids[16];
    fflush(NULL);
    for (int r = 0; r < c.ranks; r++) {
        pids[r] = fork();
        if (pids[r] < 0) {
            perror("bench_dist: fork");
            return 1;
        }
        if (pids[r] == 0) exit(run_rank(&c, r, port));
    }
    int bad = 0;
    for (int r = 0; r < c.ranks; r++) {
        int st;
        waitpid(pids[r], &st, 0);
        bad |= !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    return bad;
}
