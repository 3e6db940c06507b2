/* bench_glocal.c — GLOCAL inference throughput (motion/glocal.h).
 *
 *   bench_glocal [--size S] [--batch B] [--seconds T] [--threads N] [--procs P]
 *
 * Per size: pairs/s of the GME network forward (batched), of the robust
 * refinement alone (pure C, per pair), of GME + LME forward (with_lme), of
 * the full glocal_infer (network, DLT, refinement, one LME pass — the
 * default lme_passes — and the LME's own local flow, lme_arch 2, with its
 * variational finish, coarse to fine), of the same without the finish
 * (glocal_infer_options.lme_finish 0), in one LME pass at the model size
 * (lme_coarse 0) and with two LME passes, at its lightest ("lean": no DIS
 * starts, no second LME pass, no coarse to fine, no finish), the same
 * network-only path on frames of 2S x 2S with and without the LME's level
 * there (lme_fine), of the hybrid (TV-L1 on the aligned pair as the local
 * flow, fused with DIS's; one and two LME passes; with one pass also without
 * the polish, glocal_refine_config.polish, without the fusion,
 * glocal_infer_options.local_fuse, and without the DIS start,
 * glocal_infer_options.start_dis) and of TV-L1 alone, with the ratios
 * full/hybrid, full/TV-L1, lean/hybrid, lean/TV-L1 and GME + LME
 * forward/TV-L1, of the arch-2 GME forward (gn 2) with and without the
 * consensus projection of its levels (random weights: matches are poor, so
 * RANSAC runs towards its sample cap — an upper bound on that step's cost),
 * of the network-only path again in a thread of its own (as
 * extract's and run's workers call it: glibc gives such a thread its own
 * arena) with the ratio worker/main, on random-weight models and synthetic
 * textured pairs (speed depends little on the weights: the refinement's
 * iterations do). Every
 * glocal_infer rate is timed after one untimed warm-up call. --procs P runs P
 * single-thread processes side by side (fork) and sums their rates, against
 * one process of N threads. Also the conv FLOP/s the GME forward reaches
 * (FLOPs counted from the layer shapes) as a fraction of the FLOP/s of a
 * large 3x3 convolution measured in the same process (the machine's practical
 * conv peak for libtorch here). One line per measurement:
 *   glocal S=<S> <what> <value> <unit>
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "motion/flow.h"
#include "motion/glocal.h"
#include "nn/nn.h"

#define CK(x)                                                                 \
    do {                                                                      \
        int rc_ = (x);                                                        \
        if (rc_ < 0) {                                                        \
            fprintf(stderr, "bench_glocal: %s: %s\n", #x, gl_last_error());  \
            exit(1);                                                          \
        }                                                                     \
    } while (0)

static double conv_flops(int cin, int cout, int k, int hout, int wout)
{
    return 2.0 * cin * cout * k * k * hout * wout;
}

/* FLOPs of one GME forward pass for one pair (convs, cost volume, dense). */
static double gme_flops(const glocal_config *c)
{
    const int S = c->size, F = c->feat, R = c->radius, nc = (2 * R + 1) * (2 * R + 1);
    double enc = conv_flops(1, 16, 3, S, S) + conv_flops(16, 32, 3, S / 2, S / 2) +
                 conv_flops(32, F, 3, S / 4, S / 4);
    double it = enc + 2.0 * nc * F * (S / 4) * (S / 4) + conv_flops(nc + 2 + F, 64, 3, S / 8, S / 8) +
                conv_flops(64, 64, 3, S / 16, S / 16) + conv_flops(64, 16, 1, S / 16, S / 16) +
                2.0 * 16 * (S / 16) * (S / 16) * 8;
    return enc + c->iters * it;
}

static double conv_peak(void)
{
    int64_t xs[4] = { 16, 64, 64, 64 }, ws[4] = { 64, 64, 3, 3 };
    nn_tensor *x, *w, *y = NULL;
    CK(nn_randn(&x, xs, 4, NN_F32));
    CK(nn_randn(&w, ws, 4, NN_F32));
    CK(nn_conv2d(&y, x, w, NULL, 1, 1, 1, 1));
    nn_free(&y);
    double best = 0;
    for (int r = 0; r < 3; r++) {
        double t0 = gl_now();
        CK(nn_conv2d(&y, x, w, NULL, 1, 1, 1, 1));
        double t = gl_now() - t0;
        nn_free(&y);
        best = fmax(best, 16 * conv_flops(64, 64, 3, 64, 64) / t);
    }
    nn_free(&x);
    nn_free(&w);
    return best;
}

static double texture(double x, double y, double ph)
{
    return 0.5 + 0.2 * sin(0.5 * x + ph) + 0.15 * sin(0.37 * y - ph) + 0.1 * sin(0.23 * x + 0.41 * y);
}

static void make_pairs(int S, int n, uint8_t *a, uint8_t *b)
{
    for (int i = 0; i < n; i++)
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                size_t p = ((size_t)i * S * S + (size_t)y * S + x) * 3;
                uint8_t va = (uint8_t)(255 * texture(x, y, i)), vb = (uint8_t)(255 * texture(x + 1.3, y - 0.7, i));
                a[p] = a[p + 1] = a[p + 2] = va;
                b[p] = b[p + 1] = b[p + 2] = vb;
            }
}

typedef struct {
    double gme, gme_lme, refine, full, full_worker, full_lean, full_nofinish, full_nocoarse, full2, full_x2, full_x2_nofine, hybrid, hybrid2, hybrid_nopolish, hybrid_nofuse, hybrid_nodis, hybrid_net2, hybrid_nosearch, tvl1;
    double flops_frac, gme_gflops, peak_gflops;
    double gme2, gme2_plain; /* arch 2: the product's forward, and without the consensus projection */
} rates;

/* pairs/s of glocal_infer with options io on the batch, for `seconds`. */
static double infer_rate(glocal_model *m, const uint8_t **pa, const uint8_t **pb, int n, int S,
                         const glocal_infer_options *io, double seconds)
{
    glocal_result res;
    long k = 0;
    CK(glocal_infer(m, pa, pb, n, S, S, io, &res)); /* warm-up: oneDNN's kernels, allocations */
    glocal_result_free(&res);
    double t0 = gl_now();
    while (gl_now() - t0 < seconds) {
        CK(glocal_infer(m, pa, pb, n, S, S, io, &res));
        glocal_result_free(&res);
        k += n;
    }
    return k / (gl_now() - t0);
}

typedef struct {
    glocal_model *m;
    const uint8_t **pa, **pb;
    int n, S;
    const glocal_infer_options *io;
    double seconds, rate;
} worker_job;

static void *worker_main(void *arg)
{
    worker_job *j = arg;
    j->rate = infer_rate(j->m, j->pa, j->pb, j->n, j->S, j->io, j->seconds);
    return NULL;
}

/* infer_rate in a new thread, as extract's and run's workers call glocal_infer. */
static double infer_rate_worker(glocal_model *m, const uint8_t **pa, const uint8_t **pb, int n, int S,
                                const glocal_infer_options *io, double seconds)
{
    worker_job j = { m, pa, pb, n, S, io, seconds, 0 };
    pthread_t t;
    if (pthread_create(&t, NULL, worker_main, &j) != 0 || pthread_join(t, NULL) != 0) {
        fprintf(stderr, "bench_glocal: cannot run a worker thread\n");
        exit(1);
    }
    return j.rate;
}

/* n synthetic S x S pairs (make_pairs) in *a, *b, with pointers to each
 * frame in *pa, *pb; exits on out of memory. */
static void pairs_new(int S, int n, uint8_t **a, uint8_t **b, const uint8_t ***pa, const uint8_t ***pb)
{
    const size_t fb = (size_t)S * S * 3;
    *a = malloc(fb * n);
    *b = malloc(fb * n);
    *pa = malloc(sizeof **pa * n);
    *pb = malloc(sizeof **pb * n);
    if (!*a || !*b || !*pa || !*pb) {
        fprintf(stderr, "bench_glocal: out of memory\n");
        exit(1);
    }
    make_pairs(S, n, *a, *b);
    for (int i = 0; i < n; i++) {
        (*pa)[i] = *a + i * fb;
        (*pb)[i] = *b + i * fb;
    }
}

static rates measure(int S, int batch, double seconds, int report_flops)
{
    rates r = { 0 };
    glocal_config c = glocal_config_default(S);
    glocal_model *m = NULL;
    nn_manual_seed(1);
    CK(glocal_model_new(&m, &c));
    uint8_t *a, *b;
    const uint8_t **pa, **pb;
    pairs_new(S, batch, &a, &b, &pa, &pb);
    nn_tensor *ta, *tb;
    CK(glocal_frames_to_tensor(&ta, pa, batch, S, S, S));
    CK(glocal_frames_to_tensor(&tb, pb, batch, S, S, S));
    int prev = nn_grad_mode_set(0);
    glocal_outputs o;
    CK(glocal_forward(m, ta, tb, 0, NULL, 0, &o)); /* warm-up */
    glocal_outputs_free(&o);
    long n = 0;
    double t0 = gl_now();
    while (gl_now() - t0 < seconds) {
        CK(glocal_forward(m, ta, tb, 0, NULL, 0, &o));
        glocal_outputs_free(&o);
        n += batch;
    }
    r.gme = n / (gl_now() - t0);
    CK(glocal_forward(m, ta, tb, 1, NULL, 0, &o)); /* warm-up */
    glocal_outputs_free(&o);
    n = 0;
    t0 = gl_now();
    while (gl_now() - t0 < seconds) {
        CK(glocal_forward(m, ta, tb, 1, NULL, 0, &o));
        glocal_outputs_free(&o);
        n += batch;
    }
    r.gme_lme = n / (gl_now() - t0);
    if (report_flops) {
        /* The arch-2 GME (gn 2) on the same pairs, as inference runs it and
         * without the consensus projection of its levels (training = 1 skips
         * it; its convs have no normalisation, so nothing else changes). */
        glocal_config c2 = c;
        c2.arch = 2;
        c2.gn = 2;
        glocal_model *m2 = NULL;
        CK(glocal_model_new(&m2, &c2));
        for (int plain = 0; plain < 2; plain++) {
            CK(glocal_forward(m2, ta, tb, 0, NULL, plain, &o)); /* warm-up */
            glocal_outputs_free(&o);
            n = 0;
            t0 = gl_now();
            while (gl_now() - t0 < seconds) {
                CK(glocal_forward(m2, ta, tb, 0, NULL, plain, &o));
                glocal_outputs_free(&o);
                n += batch;
            }
            *(plain ? &r.gme2_plain : &r.gme2) = n / (gl_now() - t0);
        }
        glocal_model_free(&m2);
    }
    nn_grad_mode_set(prev);
    if (report_flops) {
        r.gme_gflops = r.gme * gme_flops(&c) / 1e9;
        r.peak_gflops = conv_peak() / 1e9;
        r.flops_frac = r.gme_gflops / r.peak_gflops;
    }
    glocal_infer_options io;
    glocal_infer_options_default(&io);
    io.use_network = 0;
    io.lme = 0;
    r.refine = infer_rate(NULL, pa, pb, 1, S, &io, seconds);
    /* network only: the LME's own local flow (lme_arch 2), one LME pass */
    glocal_infer_options_default(&io);
    io.local_tvl1 = 0;
    r.full = infer_rate(m, pa, pb, batch, S, &io, seconds);
    r.full_worker = infer_rate_worker(m, pa, pb, batch, S, &io, seconds);
    const int finish = io.lme_finish;
    io.lme_finish = 0; /* the network's flow without its variational finish */
    r.full_nofinish = infer_rate(m, pa, pb, batch, S, &io, seconds);
    io.lme_finish = finish;
    const int coarse = io.lme_coarse;
    io.lme_coarse = 0; /* the LME in one pass at the model size, not coarse to fine */
    r.full_nocoarse = infer_rate(m, pa, pb, batch, S, &io, seconds);
    io.lme_coarse = coarse;
    {   /* the network-only path at its lightest: the refinement from the
         * network's start alone (no DIS starts, so no polish), one LME pass
         * on the network's alignment carried to the refined one (no second
         * pass), no coarse to fine, no finish: the floor of today's path */
        glocal_infer_options lean = io;
        lean.start_dis = 0;
        lean.lme_repass = 0;
        lean.lme_coarse = 0;
        lean.lme_finish = 0;
        r.full_lean = infer_rate(m, pa, pb, batch, S, &lean, seconds);
    }
    {   /* frames twice the model size: with and without the LME's level there (lme_fine) */
        uint8_t *a2, *b2;
        const uint8_t **pa2, **pb2;
        pairs_new(2 * S, batch, &a2, &b2, &pa2, &pb2);
        r.full_x2 = infer_rate(m, pa2, pb2, batch, 2 * S, &io, seconds);
        const int fine = io.lme_fine;
        io.lme_fine = 0;
        r.full_x2_nofine = infer_rate(m, pa2, pb2, batch, 2 * S, &io, seconds);
        io.lme_fine = fine;
        free(a2); free(b2); free(pa2); free(pb2);
    }
    io.lme_passes = 2;
    r.full2 = infer_rate(m, pa, pb, batch, S, &io, seconds);
    io.local_tvl1 = 1; /* the hybrid: TV-L1 on the aligned pair */
    r.hybrid2 = infer_rate(m, pa, pb, batch, S, &io, seconds);
    io.lme_passes = 1;
    r.hybrid = infer_rate(m, pa, pb, batch, S, &io, seconds);
    const int polish = io.rc.polish;
    io.rc.polish = 0; /* the chosen start's result not refined again on its inliers */
    r.hybrid_nopolish = infer_rate(m, pa, pb, batch, S, &io, seconds);
    io.rc.polish = polish;
    const int fuse = io.local_fuse;
    io.local_fuse = 0; /* TV-L1's local flow alone, not fused with DIS's */
    r.hybrid_nofuse = infer_rate(m, pa, pb, batch, S, &io, seconds);
    io.local_fuse = fuse;
    const int passes = io.net_passes, search = io.start_search;
    io.net_passes = 2; /* the network twice (arch 2's default; this arch-1 model's is once) */
    r.hybrid_net2 = infer_rate(m, pa, pb, batch, S, &io, seconds);
    io.net_passes = passes;
    io.start_search = 0; /* no block-matching search's starts (on every pair otherwise) */
    r.hybrid_nosearch = infer_rate(m, pa, pb, batch, S, &io, seconds);
    io.start_search = search;
    io.start_dis = 0; /* the refinement from the network's start alone */
    r.hybrid_nodis = infer_rate(m, pa, pb, batch, S, &io, seconds);
    /* TV-L1 alone on the same pairs (grey, IPOL defaults) */
    flow_field f = { 0 };
    CK(flow_field_new(&f, S, S));
    long n1 = 0;
    double t1 = gl_now();
    while (gl_now() - t1 < seconds) {
        CK(flow_from_rgb24(pa[n1 % batch], pb[n1 % batch], S, S, flow_method_tvl1, NULL, &f));
        n1++;
    }
    r.tvl1 = n1 / (gl_now() - t1);
    flow_field_free(&f);
    nn_free(&ta);
    nn_free(&tb);
    free(a); free(b); free(pa); free(pb);
    glocal_model_free(&m);
    return r;
}

int main(int argc, char **argv)
{
    int sizes[2] = { 64, 128 }, nsizes = 2, batch = 16, threads = 1, procs = 2;
    double seconds = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--size")) { sizes[0] = atoi(argv[i + 1]); nsizes = 1; }
        else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--procs")) procs = atoi(argv[i + 1]);
        else { fprintf(stderr, "bench_glocal: unknown option %s\n", argv[i]); return 2; }
    }
    if (batch < 1 || threads < 1 || procs < 1 || !(seconds > 0)) {
        fprintf(stderr, "bench_glocal: bad arguments\n");
        return 2;
    }
    for (int s = 0; s < nsizes; s++) {
        const int S = sizes[s];
        /* P single-thread processes side by side: each reports through a pipe. */
        int fds[64][2];
        if (procs > 64) procs = 64;
        for (int p = 0; p < procs; p++) {
            if (pipe(fds[p]) < 0) return 1;
            pid_t pid = fork();
            if (pid < 0) return 1;
            if (pid == 0) {
                close(fds[p][0]);
                gl_set_num_threads(1);
                CK(nn_runtime_init(1, "cpu"));
                rates r = measure(S, batch, seconds, 0);
                if (write(fds[p][1], &r, sizeof r) != (ssize_t)sizeof r) _exit(1);
                _exit(0);
            }
            close(fds[p][1]);
        }
        rates sum = { 0 };
        for (int p = 0; p < procs; p++) {
            rates r;
            if (read(fds[p][0], &r, sizeof r) != (ssize_t)sizeof r) {
                fprintf(stderr, "bench_glocal: a worker process failed\n");
                return 1;
            }
            close(fds[p][0]);
            sum.gme += r.gme;
            sum.refine += r.refine;
            sum.full += r.full;
            sum.hybrid += r.hybrid;
            sum.tvl1 += r.tvl1;
        }
        while (wait(NULL) > 0) {}
        /* One process of `threads` threads, after the workers are gone. */
        int fd[2];
        if (pipe(fd) < 0) return 1;
        pid_t pid = fork();
        if (pid < 0) return 1;
        if (pid == 0) {
            close(fd[0]);
            gl_set_num_threads(threads);
            CK(nn_runtime_init(threads, "cpu"));
            rates r = measure(S, batch, seconds, 1);
            if (write(fd[1], &r, sizeof r) != (ssize_t)sizeof r) _exit(1);
            _exit(0);
        }
        close(fd[1]);
        rates one;
        if (read(fd[0], &one, sizeof one) != (ssize_t)sizeof one) {
            fprintf(stderr, "bench_glocal: the threaded process failed\n");
            return 1;
        }
        close(fd[0]);
        while (wait(NULL) > 0) {}
        printf("glocal S=%d gme_forward_%dthr %.1f pairs/s\n", S, threads, one.gme);
        printf("glocal S=%d gme_forward_%dproc %.1f pairs/s\n", S, procs, sum.gme);
        printf("glocal S=%d refine_only_%dthr %.1f pairs/s\n", S, threads, one.refine);
        printf("glocal S=%d refine_only_%dproc %.1f pairs/s\n", S, procs, sum.refine);
        printf("glocal S=%d full_infer_%dthr %.1f pairs/s\n", S, threads, one.full);
        printf("glocal S=%d full_infer_%dproc %.1f pairs/s\n", S, procs, sum.full);
        printf("glocal S=%d full_infer_worker_thread_%dthr %.1f pairs/s\n", S, threads, one.full_worker);
        printf("glocal S=%d gme_lme_forward_%dthr %.1f pairs/s\n", S, threads, one.gme_lme);
        printf("glocal S=%d gme2_forward_%dthr %.1f pairs/s\n", S, threads, one.gme2);
        printf("glocal S=%d gme2_forward_no_consensus_%dthr %.1f pairs/s\n", S, threads, one.gme2_plain);
        printf("glocal S=%d full_infer_no_finish_%dthr %.1f pairs/s\n", S, threads, one.full_nofinish);
        printf("glocal S=%d full_infer_no_coarse_%dthr %.1f pairs/s\n", S, threads, one.full_nocoarse);
        printf("glocal S=%d full_infer_lean_%dthr %.1f pairs/s\n", S, threads, one.full_lean);
        printf("glocal S=%d full_infer_2pass_%dthr %.1f pairs/s\n", S, threads, one.full2);
        printf("glocal S=%d full_infer_%dx%d_frames_%dthr %.1f pairs/s\n", S, 2 * S, 2 * S, threads, one.full_x2);
        printf("glocal S=%d full_infer_%dx%d_frames_no_fine_%dthr %.1f pairs/s\n", S, 2 * S, 2 * S, threads,
               one.full_x2_nofine);
        printf("glocal S=%d hybrid_infer_%dthr %.1f pairs/s\n", S, threads, one.hybrid);
        printf("glocal S=%d hybrid_infer_2pass_%dthr %.1f pairs/s\n", S, threads, one.hybrid2);
        printf("glocal S=%d hybrid_infer_no_polish_%dthr %.1f pairs/s\n", S, threads, one.hybrid_nopolish);
        printf("glocal S=%d hybrid_infer_no_fuse_%dthr %.1f pairs/s\n", S, threads, one.hybrid_nofuse);
        printf("glocal S=%d hybrid_infer_no_start_dis_%dthr %.1f pairs/s\n", S, threads, one.hybrid_nodis);
        printf("glocal S=%d hybrid_infer_two_net_passes_%dthr %.1f pairs/s\n", S, threads, one.hybrid_net2);
        printf("glocal S=%d hybrid_infer_no_search_%dthr %.1f pairs/s\n", S, threads, one.hybrid_nosearch);
        printf("glocal S=%d tvl1_alone_%dthr %.1f pairs/s\n", S, threads, one.tvl1);
        printf("glocal S=%d full_over_hybrid_%dthr %.2f x\n", S, threads, one.full / one.hybrid);
        printf("glocal S=%d full_over_hybrid_2pass_%dthr %.2f x\n", S, threads, one.full / one.hybrid2);
        printf("glocal S=%d full_worker_over_main_%dthr %.2f x\n", S, threads, one.full_worker / one.full);
        printf("glocal S=%d full_over_tvl1_%dthr %.2f x\n", S, threads, one.full / one.tvl1);
        printf("glocal S=%d full_lean_over_hybrid_%dthr %.2f x\n", S, threads, one.full_lean / one.hybrid);
        printf("glocal S=%d full_lean_over_tvl1_%dthr %.2f x\n", S, threads, one.full_lean / one.tvl1);
        printf("glocal S=%d gme_lme_forward_over_tvl1_%dthr %.2f x\n", S, threads, one.gme_lme / one.tvl1);
        printf("glocal S=%d gme2_consensus_over_plain_%dthr %.2f x\n", S, threads, one.gme2 / one.gme2_plain);
        printf("glocal S=%d gme_conv_peak_fraction_%dthr %.3f (GME %.1f GFLOP/s, conv peak %.1f GFLOP/s)\n", S,
               threads, one.flops_frac, one.gme_gflops, one.peak_gflops);
        fflush(stdout);
    }
    return 0;
}
