/* flow_bench.h — what bench_tvl1.c and bench_dis.c share (bench/flow_bench.py
 * is the same for their OpenCV twins): timing a flow method over grey pairs
 * (median ms per pair over rounds of all pairs), the EPE list against .flo
 * ground truth, and the release of the pairs. Benchmark-only: static
 * functions. */
#ifndef GLOCAL_BENCH_FLOW_BENCH_H
#define GLOCAL_BENCH_FLOW_BENCH_H

#include <stdio.h>
#include <stdlib.h>

#include "motion/flow.h"

/* One flow of a pair: a, b grey frames of f's size, into f. */
typedef int (*bench_flow_fn)(void *ctx, const float *a, const float *b, flow_field *f);

static int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* repeat rounds of fn over the n pairs img[p][0..1] into f[p]; *median_ms
 * gets the median over the rounds of the ms per pair. */
static int bench_time_pairs(bench_flow_fn fn, void *ctx, float *img[][2], flow_field *f, int n, int repeat,
                            double *median_ms)
{
    double *ms = malloc(sizeof(double) * repeat);
    if (!ms) return GL_ENOMEM;
    int rc = 0;
    for (int r = 0; r < repeat && rc >= 0; r++) {
        double t0 = gl_now();
        for (int p = 0; p < n && rc >= 0; p++) rc = fn(ctx, img[p][0], img[p][1], &f[p]);
        ms[r] = (gl_now() - t0) * 1000 / n;
    }
    if (rc >= 0) {
        qsort(ms, repeat, sizeof *ms, bench_cmp_double);
        *median_ms = ms[repeat / 2];
    }
    free(ms);
    return rc;
}

/* Prints `, "epe": [e0, e1, ...]` (decimals digits): f[p] against the .flo
 * at gt[p]. */
static int bench_print_epe(const flow_field *f, const char *const *gt, int n, int decimals)
{
    printf(", \"epe\": [");
    for (int p = 0; p < n; p++) {
        flow_field g = { 0 };
        double epe;
        int rc = flow_read_flo(gt[p], &g);
        if (rc >= 0) rc = flow_epe(&f[p], &g, 0, &epe, NULL);
        flow_field_free(&g);
        if (rc < 0) return rc;
        printf("%s%.*f", p ? ", " : "", decimals, epe);
    }
    printf("]");
    return 0;
}

/* Frees the n pairs and their flows. */
static void bench_free_pairs(float *img[][2], flow_field *f, int n)
{
    for (int p = 0; p < n; p++) {
        flow_field_free(&f[p]);
        free(img[p][0]);
        free(img[p][1]);
    }
}

#endif
