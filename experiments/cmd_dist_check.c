/* glocal dist-check — join the distributed job described by the environment
 * (nn.h, "distributed data-parallel"), check that every collective glocal's
 * training uses gives the right answer, and time the gradient all-reduce.
 * For trying a cluster setup (srun glocal dist-check) before a long run. */
#include <math.h>
#include <stdio.h>
#include <unistd.h>

#include "experiments/cli.h"
#include "experiments/commands.h"
#include "nn/nn.h"

GLOCAL_COMMAND(dist_check, "dist-check", "check a distributed setup (rendezvous, collectives) and time the all-reduce")

/* 1. Values: the sum of the ranks is W (W - 1) / 2; min 0, max W - 1.
 * CLI_OK, or CLI_FAIL after saying what went wrong (as every check here). */
static int check_values(const char *cmd, nn_dist *d, int r, int w)
{
    double v[3] = { r, r, r };
    int rc;
    if ((rc = nn_dist_allreduce_values(d, v, 1, NN_DIST_SUM)) < 0 ||
        (rc = nn_dist_allreduce_values(d, v + 1, 1, NN_DIST_MIN)) < 0 ||
        (rc = nn_dist_allreduce_values(d, v + 2, 1, NN_DIST_MAX)) < 0)
        return cli_fail(cmd, rc, "all-reduce of values");
    if (v[0] != 0.5 * w * (w - 1) || v[1] != 0 || v[2] != w - 1) {
        fprintf(stderr, "glocal dist-check: rank %d: all-reduce gave sum %g min %g max %g, expected %g, 0, %d\n",
                r, v[0], v[1], v[2], 0.5 * w * (w - 1), w - 1);
        return CLI_FAIL;
    }
    return CLI_OK;
}

/* 2. Broadcast: every rank fills g (the only parameter of p) with rank + 1;
 * afterwards all hold 1. */
static int check_broadcast(const char *cmd, nn_dist *d, nn_params *p, nn_tensor *g, int r)
{
    int rc;
    if ((rc = nn_fill_(g, r + 1.0)) < 0 || (rc = nn_dist_broadcast_params(d, p)) < 0)
        return cli_fail(cmd, rc, "broadcast");
    double lo[1], hi[1];
    nn_tensor *mx = NULL;
    if ((rc = nn_max_all(&mx, g)) < 0 || (rc = nn_item(mx, hi)) < 0) {
        nn_free(&mx);
        return cli_fail(cmd, rc, "broadcast check");
    }
    nn_free(&mx);
    lo[0] = hi[0];
    if ((rc = nn_dist_allreduce_values(d, lo, 1, NN_DIST_MIN)) < 0 ||
        (rc = nn_dist_allreduce_values(d, hi, 1, NN_DIST_MAX)) < 0)
        return cli_fail(cmd, rc, "broadcast check");
    if (lo[0] != 1.0 || hi[0] != 1.0) {
        fprintf(stderr, "glocal dist-check: rank %d: after the broadcast values range over [%g, %g], expected 1\n",
                r, lo[0], hi[0]);
        return CLI_FAIL;
    }
    return CLI_OK;
}

/* 3a. Gradients of g set to rank + 1 and all-reduced, iters + 1 times (the
 * first a warm-up); *t_sum: the seconds of the timed all-reduces. */
static int time_grad_allreduce(const char *cmd, nn_dist *d, nn_params *p, nn_tensor *g, int r, long iters,
                               double *t_sum)
{
    int rc;
    *t_sum = 0;
    for (long it = 0; it <= iters; it++) {
        nn_tensor *sum = NULL, *loss = NULL; /* d(loss)/dg = rank + 1 everywhere */
        if ((rc = nn_zero_grad(g)) < 0 || (rc = nn_sum(&sum, g, NULL, 0, 0)) < 0 ||
            (rc = nn_mul_scalar(&loss, sum, r + 1.0)) < 0 || (rc = nn_backward(loss)) < 0) {
            nn_free(&sum), nn_free(&loss);
            return cli_fail(cmd, rc, "making gradients");
        }
        nn_free(&sum), nn_free(&loss);
        if ((rc = nn_dist_barrier(d)) < 0) return cli_fail(cmd, rc, "barrier");
        double t0 = gl_now();
        if ((rc = nn_dist_allreduce_grads(d, p)) < 0) return cli_fail(cmd, rc, "gradient all-reduce");
        if (it > 0) *t_sum += gl_now() - t0;
    }
    return CLI_OK;
}

/* 3b. The gradients of g averaged over the W ranks: (W + 1) / 2 everywhere. */
static int check_grad_average(const char *cmd, nn_tensor *g, int r, int w)
{
    double gmin, gmax;
    nn_tensor *grad = NULL, *gmn = NULL, *gmx = NULL, *neg = NULL;
    int rc;
    if ((rc = nn_grad(&grad, g)) < 0 || (rc = nn_max_all(&gmx, grad)) < 0 || (rc = nn_item(gmx, &gmax)) < 0 ||
        (rc = nn_unary(&neg, NN_NEG, grad)) < 0 || (rc = nn_max_all(&gmn, neg)) < 0 ||
        (rc = nn_item(gmn, &gmin)) < 0) {
        nn_free(&gmn), nn_free(&gmx), nn_free(&neg), nn_free(&grad);
        return cli_fail(cmd, rc, "gradient check");
    }
    nn_free(&gmn), nn_free(&gmx), nn_free(&neg), nn_free(&grad);
    gmin = -gmin;
    double want = 0.5 * (w + 1);
    if (fabs(gmin - want) > 1e-6 * want || fabs(gmax - want) > 1e-6 * want) {
        fprintf(stderr, "glocal dist-check: rank %d: averaged gradients range over [%g, %g], expected %g\n",
                r, gmin, gmax, want);
        return CLI_FAIL;
    }
    return CLI_OK;
}

/* The checks on a joined job; rank 0 prints the timing. */
static int dist_check_run(const char *cmd, nn_dist *d, double mb, long iters)
{
    int r = nn_dist_rank(d), w = nn_dist_world_size(d);
    nn_params p;
    nn_params_init(&p);
    nn_tensor *g = NULL;
    int64_t n = (int64_t)(mb * 1048576.0 / sizeof(float));
    if (n < 1) n = 1;
    double t_sum = 0;
    int rc, ret = check_values(cmd, d, r, w);
    if (ret == CLI_OK && (rc = nn_params_new(&p, &g, "g", &n, 1, NN_INIT_ZEROS, 0)) < 0)
        ret = cli_fail(cmd, rc, "broadcast");
    if (ret == CLI_OK) ret = check_broadcast(cmd, d, &p, g, r);
    if (ret == CLI_OK) ret = time_grad_allreduce(cmd, d, &p, g, r, iters, &t_sum);
    if (ret == CLI_OK) ret = check_grad_average(cmd, g, r, w);
    if (ret == CLI_OK && r == 0) {
        double t = t_sum / (double)iters, bytes = (double)n * sizeof(float);
        printf("dist-check: ok, %d rank%s; gradient all-reduce of %.1f MiB: %.2f ms, bus bandwidth %.2f GB/s\n",
               w, w == 1 ? "" : "s", bytes / 1048576.0, 1e3 * t,
               w > 1 ? 2.0 * (w - 1) / w * bytes / t / 1e9 : 0.0);
    }
    nn_params_free(&p);
    return ret;
}

int cmd_dist_check(int argc, char **argv)
{
    const char *cmd = "dist-check";
    double mb = 16, timeout = 60;
    long iters = 5;
    cli_opt opts[] = {
        CLI_NUM("--mb", &mb, 0, 4096, "M", "gradient size in MiB", .open_lo = 1),
        CLI_NUM("--iters", &iters, 1, 100000, "N", "timed all-reduces, after one warm-up"),
        CLI_NUM("--timeout", &timeout, -INFINITY, INFINITY, "S", "collective timeout in seconds"),
        CLI_END,
    };
    cli_spec spec = {
        .cmd = cmd, .opts = opts,
        .about = "Joins the job described by torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK,\n"
                 "MASTER_ADDR, MASTER_PORT) or Slurm's (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID plus\n"
                 "MASTER_ADDR/MASTER_PORT), alone when neither is set. Every rank prints where it\n"
                 "runs; then the collectives glocal's training uses are checked against their known\n"
                 "results (a sum of the ranks, a broadcast of rank 0's values, the average of\n"
                 "gradients set to rank + 1), and rank 0 prints the time of one gradient all-reduce\n"
                 "of M MiB and its bus bandwidth (2 (W-1)/W x bytes / time, as nccl-tests count it).\n"
                 "Exits 0 when every check passes on this rank.\n",
        .epilog = "examples:\n"
                  "  glocal launch -n 2 -- glocal dist-check\n"
                  "  srun --ntasks 8 glocal dist-check      (MASTER_ADDR/MASTER_PORT exported)\n",
    };
    int rc = cli_parse(&spec, argc, argv);
    if (rc != CLI_PARSED) return rc;
    nn_dist_options o = nn_dist_options_default();
    o.timeout_s = timeout;
    nn_dist *d = NULL;
    rc = nn_dist_options_validate(&o);
    if (rc < 0) return cli_fail(cmd, rc, "options");
    if ((rc = nn_dist_init_from_env(&d, &o)) < 0) return cli_fail(cmd, rc, "cannot join the job");
    char host[256] = "?";
    gethostname(host, sizeof host - 1);
    printf("rank %d of %d (local rank %d) on %s, backend %s, %d thread%s\n", nn_dist_rank(d),
           nn_dist_world_size(d), nn_dist_local_rank(d), host, nn_dist_backend_name(d), gl_num_threads(),
           gl_num_threads() == 1 ? "" : "s");
    fflush(stdout);
    int ret = dist_check_run(cmd, d, mb, iters);
    nn_dist_free(&d);
    return ret;
}
