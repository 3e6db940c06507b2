/* glocal_private.h — the GLOCAL model's layers, shared by glocal_*.c only. */
#ifndef GLOCAL_MOTION_GLOCAL_PRIVATE_H
#define GLOCAL_MOTION_GLOCAL_PRIVATE_H

#include "motion/glocal.h"

/* For functions with an `int rc` and one `fail:` label: runs call, keeps its
 * code in rc, and goes to fail when it is negative. */
#define TRY(call)                         \
    do {                                  \
        if ((rc = (call)) < 0) goto fail; \
    } while (0)

struct glocal_model {
    glocal_config cfg;
    nn_params p;
    nn_tensor *bases;          /* (8, 2*S*S), on the default device */
    /* GME */
    nn_conv enc1, enc2, enc3;  /* 1 -> 16 -> 32 (s2) -> feat (s2) */
    nn_conv head1, head2;      /* cost + coords + features -> 64 (s2) -> 64 (s2) */
    nn_conv implicit;          /* 1x1, 64 -> 16: the implicit bottleneck */
    nn_dense explicit_;        /* 16 (S/16)^2 -> 8 coefficients */
    /* LME: attention U-Net */
    nn_conv l_e1, l_e1b, l_e2, l_e2b, l_e3, l_e3b;
    nn_conv l_cost;            /* cost volume of A and aligned B (GME encoder) + e3 -> 4C */
    nn_conv g2x, g2g, g2psi, l_d2;
    nn_conv g1x, g1g, g1psi, l_d1;
    nn_conv l_out;             /* -> 2 flow + 1 attention logit */
};

/* LME on A and B already aligned by the global motion: local flow (N, 2, S, S)
 * = lme_scale * tanh(raw) * attention, mask = attention (N, 1, S, S). */
int glocal_lme_forward(glocal_model *m, const nn_tensor *a, const nn_tensor *bw, int training,
                       nn_tensor **local, nn_tensor **mask);

/* The k-th smallest of v[0..n-1] (reorders v). */
float glocal_quickselect(float *v, long n, long k);

#endif
