/* test_nn_ops.c — nn/'s C API over libtorch: creating, copying and borrowing
 * tensors, shape, element-wise, reduction and NN ops, scopes and autograd, the
 * runtime (nn/torch_tensor.cpp, nn/torch_ops.cpp). Layers, optimizers and
 * checkpoints: test_nn_train.c.
 *
 * Every op is checked against an analytic answer; gradients of the layers
 * glocal relies on are checked against float64 central differences. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/testutil.h"

#include "nn/nn.h"

#include "tests/nn_testutil.h"

static nn_tensor *f64(const double *data, const int64_t *shape, int nd)
{
    nn_tensor *t = NULL;
    OK(nn_from_data(&t, data, shape, nd, NN_F64));
    return t;
}

/* ---- creation, copy, borrow -------------------------------------------------------- */

static void test_creation(void **state)
{
    (void)state;
    nn_scope *s;
    OK(nn_scope_begin(&s));
    nn_tensor *a, *b, *c, *d;
    int64_t sh[2] = { 2, 3 };
    OK(nn_full(&a, sh, 2, 2.5, NN_F32));
    assert_int_equal(nn_ndim(a), 2);
    assert_int_equal(nn_size(a, -1), 3);
    assert_int_equal(nn_numel(a), 6);
    /* nn_item on 6 elements must fail */
    double v;
    assert_int_equal(nn_item(a, &v), GL_EINVAL);
    OK(nn_arange(&b, 0, 10, 1, NN_F64));
    nn_tensor *sum;
    OK(nn_sum(&sum, b, NULL, 0, 0));
    assert_double_equal(item(sum), 45.0, 0);
    OK(nn_linspace(&c, -1, 1, 5, NN_F64));
    double lin[5];
    to_f64(c, lin, 5);
    for (int i = 0; i < 5; i++) assert_double_equal(lin[i], -1 + 0.5 * i, 1e-15);
    nn_manual_seed(7);
    int64_t big[1] = { 20000 };
    OK(nn_randn(&d, big, 1, NN_F64));
    nn_tensor *m, *sq, *ms;
    OK(nn_mean(&m, d, NULL, 0, 0));
    OK(nn_unary(&sq, NN_SQUARE, d));
    OK(nn_mean(&ms, sq, NULL, 0, 0));
    assert_true(fabs(item(m)) < 0.03);          /* 3 sigma of the sample mean is 0.021 */
    assert_true(fabs(item(ms) - 1.0) < 0.05);
    nn_tensor *u, *umin, *umax;
    OK(nn_rand(&u, big, 1, NN_F32));
    OK(nn_min_dim(&umin, NULL, u, 0, 0));
    OK(nn_max_all(&umax, u));
    assert_true(item(umin) >= 0 && item(umax) < 1);
    nn_scope_end(&s);
}

static void test_borrow_vs_copy(void **state)
{
    (void)state;
    float buf[4] = { 1, 2, 3, 4 };
    int64_t sh[1] = { 4 };
    nn_tensor *copy = NULL, *view = NULL, *s = NULL;
    OK(nn_from_data(&copy, buf, sh, 1, NN_F32));
    OK(nn_from_blob(&view, buf, sh, 1, NN_F32));
    buf[0] = 100;
    OK(nn_sum(&s, copy, NULL, 0, 0));
    assert_double_equal(item(s), 10, 0);
    nn_free(&s);
    OK(nn_sum(&s, view, NULL, 0, 0));
    assert_double_equal(item(s), 109, 0);
    nn_free(&s);
    /* writing through the borrowed tensor lands in the C buffer */
    OK(nn_fill_(view, 0.5));
    assert_true(buf[3] == 0.5f);
    float out[4];
    assert_int_equal(nn_copy_to(copy, out, 3, NN_F32), GL_EINVAL);
    OK(nn_copy_to(copy, out, sizeof out, NN_F32));
    assert_true(out[0] == 1 && out[3] == 4);
    nn_free(&copy);
    nn_free(&view);
    assert_null(view);
    nn_free(&view); /* NULL is fine */
    nn_free(NULL);
}

/* ---- shape ops ------------------------------------------------------------------------ */

static void test_shape_ops(void **state)
{
    (void)state;
    nn_scope *s;
    OK(nn_scope_begin(&s));
    nn_tensor *a, *v, *p, *c, *n, *st, *cat, *e, *f, *idx, *sel;
    OK(nn_arange(&a, 0, 24, 1, NN_F64));
    int64_t sh[3] = { 2, 3, 4 };
    OK(nn_view(&v, a, sh, 3));
    int64_t perm[3] = { 2, 0, 1 };
    OK(nn_permute(&p, v, perm, 3));
    OK(nn_contiguous(&c, p));
    double buf[24];
    to_f64(c, buf, 24);
    /* c[k][i][j] = v[i][j][k] = 12 i + 4 j + k */
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 3; j++) assert_double_equal(buf[k * 6 + i * 3 + j], 12 * i + 4 * j + k, 0);
    OK(nn_narrow(&n, v, 2, 1, 2));   /* [:, :, 1:3] */
    nn_tensor *ns;
    OK(nn_sum(&ns, n, NULL, 0, 0));
    double expect = 0;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 1; k < 3; k++) expect += 12 * i + 4 * j + k;
    assert_double_equal(item(ns), expect, 0);
    nn_tensor *parts[2] = { v, v };
    OK(nn_stack(&st, parts, 2, 0));
    assert_int_equal(nn_size(st, 0), 2);
    assert_int_equal(nn_ndim(st), 4);
    OK(nn_cat(&cat, parts, 2, 1));
    assert_int_equal(nn_size(cat, 1), 6);
    int64_t one[3] = { 1, 3, 1 }, ex[3] = { 2, 3, 4 };
    nn_tensor *small;
    double sm[3] = { 1, 2, 3 };
    small = f64(sm, one, 3);
    OK(nn_expand(&e, small, ex, 3));
    nn_tensor *es;
    OK(nn_sum(&es, e, NULL, 0, 0));
    assert_double_equal(item(es), 6 * 8, 0);
    int64_t fd[1] = { 2 };
    OK(nn_flip(&f, v, fd, 1));
    double fb[24];
    nn_tensor *fc;
    OK(nn_contiguous(&fc, f));
    to_f64(fc, fb, 24);
    assert_double_equal(fb[0], 3, 0);
    assert_double_equal(fb[3], 0, 0);
    int64_t ids[2] = { 2, 0 };
    int64_t isz[1] = { 2 };
    OK(nn_from_data(&idx, ids, isz, 1, NN_I64));
    OK(nn_index_select(&sel, v, 1, idx));
    double sb[16];
    nn_tensor *sc;
    OK(nn_contiguous(&sc, sel));
    to_f64(sc, sb, 16);
    assert_double_equal(sb[0], 8, 0);  /* v[0][2][0] */
    assert_double_equal(sb[4], 0, 0);  /* v[0][0][0] */
    /* a bad view is an error with libtorch's message, not a crash */
    int64_t bad[2] = { 5, 5 };
    nn_tensor *bv = NULL;
    int rc = nn_view(&bv, a, bad, 2);
    assert_int_equal(rc, GL_ETORCH);
    assert_null(bv);
    assert_non_null(strstr(gl_last_error(), "invalid"));
    nn_scope_end(&s);
}

/* ---- element-wise, reductions, linear algebra ------------------------------------------------ */

static void test_elementwise(void **state)
{
    (void)state;
    nn_scope *s;
    OK(nn_scope_begin(&s));
    double xa[4] = { -2, -0.5, 0.25, 3 };
    int64_t sh[1] = { 4 };
    nn_tensor *x = f64(xa, sh, 1), *r;
    double out[4];
    struct { nn_unary_op op; double (*f)(double); } cases[] = {
        { NN_EXP, exp }, { NN_TANH, tanh }, { NN_ABS, fabs }, { NN_SIN, sin }, { NN_COS, cos },
        { NN_FLOOR, floor }, { NN_CEIL, ceil },
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        OK(nn_unary(&r, cases[k].op, x));
        to_f64(r, out, 4);
        for (int i = 0; i < 4; i++) assert_double_equal(out[i], cases[k].f(xa[i]), 1e-14);
    }
    OK(nn_unary(&r, NN_SIGMOID, x));
    to_f64(r, out, 4);
    for (int i = 0; i < 4; i++) assert_double_equal(out[i], 1 / (1 + exp(-xa[i])), 1e-14);
    OK(nn_unary(&r, NN_RELU, x));
    to_f64(r, out, 4);
    for (int i = 0; i < 4; i++) assert_double_equal(out[i], xa[i] > 0 ? xa[i] : 0, 0);
    OK(nn_leaky_relu(&r, x, 0.1));
    to_f64(r, out, 4);
    for (int i = 0; i < 4; i++) assert_double_equal(out[i], xa[i] > 0 ? xa[i] : 0.1 * xa[i], 1e-15);
    OK(nn_clamp(&r, x, -1, NAN));
    to_f64(r, out, 4);
    assert_double_equal(out[0], -1, 0);
    assert_double_equal(out[3], 3, 0);
    OK(nn_binary_scalar(&r, NN_SUB, x, 1, 1)); /* 1 - x */
    to_f64(r, out, 4);
    for (int i = 0; i < 4; i++) assert_double_equal(out[i], 1 - xa[i], 0);
    OK(nn_binary_scalar(&r, NN_POW, x, 2, 0));
    to_f64(r, out, 4);
    for (int i = 0; i < 4; i++) assert_double_equal(out[i], xa[i] * xa[i], 1e-15);
    /* broadcasting (2,1) * (1,3) */
    double ca[2] = { 1, 2 }, cb[3] = { 10, 20, 30 };
    int64_t s21[2] = { 2, 1 }, s13[2] = { 1, 3 };
    nn_tensor *bc;
    OK(nn_mul(&bc, f64(ca, s21, 2), f64(cb, s13, 2)));
    double o6[6];
    to_f64(bc, o6, 6);
    assert_double_equal(o6[5], 60, 0);
    assert_double_equal(o6[1], 20, 0);
    nn_tensor *cond, *w;
    OK(nn_compare_scalar(&cond, NN_GT, x, 0));
    nn_tensor *zero;
    OK(nn_zeros_like(&zero, x));
    OK(nn_where(&w, cond, x, zero));
    to_f64(w, out, 4);
    assert_double_equal(out[0], 0, 0);
    assert_double_equal(out[2], 0.25, 0);
    /* softmax against the formula */
    OK(nn_softmax(&r, x, 0));
    to_f64(r, out, 4);
    double z = 0;
    for (int i = 0; i < 4; i++) z += exp(xa[i]);
    for (int i = 0; i < 4; i++) assert_double_equal(out[i], exp(xa[i]) / z, 1e-15);
    OK(nn_log_softmax(&r, x, 0));
    to_f64(r, out, 4);
    for (int i = 0; i < 4; i++) assert_double_equal(out[i], xa[i] - log(z), 1e-14);
    /* shape mismatch: negative code, libtorch's message, nothing leaks (ASan) */
    int64_t s3[1] = { 3 };
    nn_tensor *three = f64(cb, s3, 1), *bad = NULL;
    assert_int_equal(nn_add(&bad, x, three), GL_ETORCH);
    assert_null(bad);
    assert_non_null(strstr(gl_last_error(), "must match"));
    assert_null(strstr(gl_last_error(), "Exception raised from")); /* no C++ backtrace */
    assert_int_equal(nn_add(&bad, NULL, three), GL_EINVAL);
    nn_scope_end(&s);
}

static void test_reductions_linalg(void **state)
{
    (void)state;
    nn_scope *s;
    OK(nn_scope_begin(&s));
    double m[6] = { 1, 5, 2, 7, 0, 3 };
    int64_t sh[2] = { 2, 3 };
    nn_tensor *x = f64(m, sh, 2), *r, *idx;
    double o[6];
    int64_t d1[1] = { 1 };
    OK(nn_sum(&r, x, d1, 1, 0));
    to_f64(r, o, 2);
    assert_double_equal(o[0], 8, 0);
    assert_double_equal(o[1], 10, 0);
    OK(nn_mean(&r, x, d1, 1, 1));
    assert_int_equal(nn_ndim(r), 2);
    to_f64(r, o, 2);
    assert_double_equal(o[1], 10.0 / 3, 1e-15);
    OK(nn_max_dim(&r, &idx, x, 1, 0));
    to_f64(r, o, 2);
    assert_double_equal(o[0], 5, 0);
    assert_double_equal(o[1], 7, 0);
    int64_t ii[2];
    OK(nn_copy_to(idx, ii, sizeof ii, NN_I64));
    assert_int_equal(ii[0], 1);
    assert_int_equal(ii[1], 0);
    OK(nn_argmax(&r, x, 1, 0));
    OK(nn_copy_to(r, ii, sizeof ii, NN_I64));
    assert_int_equal(ii[0], 1);
    OK(nn_topk(&r, &idx, x, 2, 1, 1));
    to_f64(r, o, 4);
    assert_double_equal(o[0], 5, 0);
    assert_double_equal(o[1], 2, 0);
    assert_double_equal(o[2], 7, 0);
    assert_double_equal(o[3], 3, 0);
    OK(nn_median_all(&r, x));
    assert_double_equal(item(r), 2, 0); /* torch returns the lower median */
    /* matmul: [[1,5,2],[7,0,3]] x [[1],[1],[1]] */
    double ones[3] = { 1, 1, 1 };
    int64_t s31[2] = { 3, 1 };
    OK(nn_matmul(&r, x, f64(ones, s31, 2)));
    to_f64(r, o, 2);
    assert_double_equal(o[0], 8, 0);
    assert_double_equal(o[1], 10, 0);
    /* the 8x8 DLT of four point pairs under a known homography: solve and compare */
    double H[9] = { 1.1, 0.05, 3, -0.04, 0.95, -2, 1e-3, -2e-3, 1 };
    double src[4][2] = { { 0, 0 }, { 63, 0 }, { 63, 63 }, { 0, 63 } };
    double A[64] = { 0 }, b[8];
    for (int k = 0; k < 4; k++) {
        double x0 = src[k][0], y0 = src[k][1];
        double w = H[6] * x0 + H[7] * y0 + H[8];
        double u = (H[0] * x0 + H[1] * y0 + H[2]) / w, v = (H[3] * x0 + H[4] * y0 + H[5]) / w;
        double r1[8] = { x0, y0, 1, 0, 0, 0, -u * x0, -u * y0 }, r2[8] = { 0, 0, 0, x0, y0, 1, -v * x0, -v * y0 };
        memcpy(&A[(2 * k) * 8], r1, sizeof r1);
        memcpy(&A[(2 * k + 1) * 8], r2, sizeof r2);
        b[2 * k] = u;
        b[2 * k + 1] = v;
    }
    int64_t s88[3] = { 1, 8, 8 }, s81[3] = { 1, 8, 1 };
    OK(nn_linalg_solve(&r, f64(A, s88, 3), f64(b, s81, 3)));
    double h8[8];
    to_f64(r, h8, 8);
    for (int i = 0; i < 8; i++) assert_double_equal(h8[i], H[i], 1e-9);
    double M[4] = { 4, 7, 2, 6 };
    int64_t s22[2] = { 2, 2 };
    OK(nn_inverse(&r, f64(M, s22, 2)));
    to_f64(r, o, 4);
    assert_double_equal(o[0], 0.6, 1e-14);
    assert_double_equal(o[1], -0.7, 1e-14);
    assert_double_equal(o[2], -0.2, 1e-14);
    assert_double_equal(o[3], 0.4, 1e-14);
    nn_scope_end(&s);
}

/* ---- NN ops against analytic answers --------------------------------------------------------------- */

static void test_conv_pool_interp(void **state)
{
    (void)state;
    nn_scope *s;
    OK(nn_scope_begin(&s));
    /* conv with a 3x3 box of ones over a ramp image x[i][j] = j: the sum is 3*(j-1+j+j+1) = 9j inside */
    double img[36];
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 6; j++) img[i * 6 + j] = j;
    int64_t xs[4] = { 1, 1, 6, 6 }, ws[4] = { 1, 1, 3, 3 };
    nn_tensor *x = f64(img, xs, 4), *w, *y, *b;
    double bias = 0.5;
    int64_t bs[1] = { 1 };
    OK(nn_ones(&w, ws, 4, NN_F64));
    b = f64(&bias, bs, 1);
    OK(nn_conv2d(&y, x, w, b, 1, 0, 1, 1));
    assert_int_equal(nn_size(y, 2), 4);
    double o[36];
    to_f64(y, o, 16);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) assert_double_equal(o[i * 4 + j], 9 * (j + 1) + 0.5, 1e-12);
    /* stride 2 + padding 1 → 3x3; dilation 2 → 2x2 */
    OK(nn_conv2d(&y, x, w, NULL, 2, 1, 1, 1));
    assert_int_equal(nn_size(y, 3), 3);
    OK(nn_conv2d(&y, x, w, NULL, 1, 0, 2, 1));
    assert_int_equal(nn_size(y, 3), 2);
    to_f64(y, o, 4);
    assert_double_equal(o[0], 3 * (0 + 2 + 4), 1e-12);
    /* groups: two channels, each with its own 1x1 weight */
    double two[2] = { 2, -1 };
    int64_t gs[4] = { 2, 1, 1, 1 };
    nn_tensor *x2, *parts[2] = { x, x };
    OK(nn_cat(&x2, parts, 2, 1));
    assert_int_equal(nn_size(x2, 1), 2);
    OK(nn_conv2d(&y, x2, f64(two, gs, 4), NULL, 1, 0, 1, 2));
    double o72[72];
    to_f64(y, o72, 72);
    for (int i = 0; i < 36; i++) {
        assert_double_equal(o72[i], 2 * img[i], 0);
        assert_double_equal(o72[36 + i], -img[i], 0);
    }
    /* transposed conv with stride 2 of a single 1 gives the kernel */
    double one = 1, k4[4] = { 1, 2, 3, 4 };
    int64_t s1[4] = { 1, 1, 1, 1 }, k22[4] = { 1, 1, 2, 2 };
    OK(nn_conv_transpose2d(&y, f64(&one, s1, 4), f64(k4, k22, 4), NULL, 2, 0, 0, 1, 1));
    to_f64(y, o, 4);
    for (int i = 0; i < 4; i++) assert_double_equal(o[i], k4[i], 0);
    /* pooling */
    OK(nn_max_pool2d(&y, x, 2, 2, 0));
    to_f64(y, o, 9);
    assert_double_equal(o[0], 1, 0);
    assert_double_equal(o[2], 5, 0);
    OK(nn_avg_pool2d(&y, x, 2, 2, 0));
    to_f64(y, o, 9);
    assert_double_equal(o[1], 2.5, 0);
    OK(nn_adaptive_avg_pool2d(&y, x, 1, 1));
    assert_double_equal(item(y), 2.5, 1e-15);
    /* bilinear interpolation reproduces a linear ramp exactly (align_corners) */
    OK(nn_interpolate(&y, x, 11, 11, NN_BILINEAR, 1));
    double big[121];
    to_f64(y, big, 121);
    for (int i = 0; i < 11; i++)
        for (int j = 0; j < 11; j++) assert_double_equal(big[i * 11 + j], j * 0.5, 1e-12);
    OK(nn_interpolate(&y, x, 3, 3, NN_NEAREST, 0));
    to_f64(y, o, 9);
    assert_double_equal(o[1], 2, 0);
    OK(nn_interpolate(&y, x, 3, 3, NN_AREA, 0));
    to_f64(y, o, 9);
    assert_double_equal(o[0], 0.5, 1e-15);
    /* padding */
    OK(nn_pad2d(&y, x, 1, 2, 0, 0, NN_PAD_REPLICATE, 0));
    assert_int_equal(nn_size(y, 3), 9);
    double row[54];
    to_f64(y, row, 54);
    assert_double_equal(row[0], 0, 0);
    assert_double_equal(row[8], 5, 0);
    OK(nn_pad2d(&y, x, 2, 0, 0, 0, NN_PAD_REFLECT, 0));
    to_f64(y, row, 48);
    assert_double_equal(row[0], 2, 0);
    assert_double_equal(row[1], 1, 0);
    OK(nn_pad2d(&y, x, 1, 0, 0, 0, NN_PAD_CONSTANT, -3));
    to_f64(y, row, 42);
    assert_double_equal(row[0], -3, 0);
    /* dropout: eval is identity; training zeroes about p and rescales the rest by 1/(1-p) */
    int64_t ds[1] = { 10000 };
    nn_tensor *ones, *dr, *m;
    OK(nn_ones(&ones, ds, 1, NN_F64));
    OK(nn_dropout(&dr, ones, 0.3, 0));
    OK(nn_mean(&m, dr, NULL, 0, 0));
    assert_double_equal(item(m), 1, 0);
    OK(nn_dropout(&dr, ones, 0.3, 1));
    nn_tensor *nz, *nzm;
    OK(nn_compare_scalar(&nz, NN_EQ, dr, 0));
    OK(nn_to_dtype(&nzm, nz, NN_F64));
    OK(nn_mean(&m, nzm, NULL, 0, 0));
    assert_true(fabs(item(m) - 0.3) < 0.02);
    OK(nn_max_all(&m, dr));
    assert_double_equal(item(m), 1 / 0.7, 1e-12);
    nn_scope_end(&s);
}

static void test_grid_sample_translation(void **state)
{
    (void)state;
    nn_scope *s;
    OK(nn_scope_begin(&s));
    /* Sampling at x + 2 (integer shift) with align_corners=1 is an exact shift. */
    enum { H = 5, W = 7 };
    double img[H * W], grid[H * W * 2];
    for (int i = 0; i < H * W; i++) img[i] = sin(0.7 * i) + 0.1 * i;
    for (int i = 0; i < H; i++)
        for (int j = 0; j < W; j++) {
            grid[(i * W + j) * 2 + 0] = 2.0 * (j + 2) / (W - 1) - 1; /* x in [-1,1] */
            grid[(i * W + j) * 2 + 1] = 2.0 * i / (H - 1) - 1;
        }
    int64_t xs[4] = { 1, 1, H, W }, gs[4] = { 1, H, W, 2 };
    nn_tensor *y;
    double o[H * W];
    OK(nn_grid_sample(&y, f64(img, xs, 4), f64(grid, gs, 4), NN_BILINEAR, NN_PAD_ZEROS, 1));
    to_f64(y, o, H * W);
    for (int i = 0; i < H; i++)
        for (int j = 0; j < W; j++) {
            double expect = j + 2 < W ? img[i * W + j + 2] : 0;
            assert_double_equal(o[i * W + j], expect, 1e-12);
        }
    OK(nn_grid_sample(&y, f64(img, xs, 4), f64(grid, gs, 4), NN_BILINEAR, NN_PAD_BORDER, 1));
    to_f64(y, o, H * W);
    assert_double_equal(o[W - 1], img[W - 1], 1e-12); /* clamped to the border */
    /* half-pixel shift = average of neighbours */
    for (int i = 0; i < H; i++)
        for (int j = 0; j < W; j++) grid[(i * W + j) * 2] = 2.0 * (j + 0.5) / (W - 1) - 1;
    OK(nn_grid_sample(&y, f64(img, xs, 4), f64(grid, gs, 4), NN_BILINEAR, NN_PAD_ZEROS, 1));
    to_f64(y, o, H * W);
    assert_double_equal(o[W + 2], 0.5 * (img[W + 2] + img[W + 3]), 1e-12);
    nn_scope_end(&s);
}

static void test_norms_and_loss(void **state)
{
    (void)state;
    nn_scope *s;
    OK(nn_scope_begin(&s));
    /* batch norm in training: per-channel mean 0, (biased) variance 1; running stats
     * follow r = (1 - m) r + m * batch (unbiased var). */
    double xa[8] = { 1, 2, 3, 4, 10, 20, 30, 40 }; /* (N=2, C=2, 1, 2) */
    int64_t xs[4] = { 2, 2, 1, 2 }, cs[1] = { 2 };
    nn_tensor *x = f64(xa, xs, 4), *rm, *rv, *y;
    OK(nn_zeros(&rm, cs, 1, NN_F64));
    OK(nn_ones(&rv, cs, 1, NN_F64));
    OK(nn_batch_norm(&y, x, NULL, NULL, rm, rv, 1, 0.1, 0));
    double o[8];
    to_f64(y, o, 8);
    /* channel 0 holds {1, 2, 10, 20}: mean 8.25, biased var 58.6875 */
    double mu = 8.25, var = ((1 - mu) * (1 - mu) + (2 - mu) * (2 - mu) + (10 - mu) * (10 - mu) + (20 - mu) * (20 - mu)) / 4;
    assert_double_equal(o[0], (1 - mu) / sqrt(var), 1e-12);
    double r[2];
    to_f64(rm, r, 2);
    assert_double_equal(r[0], 0.1 * mu, 1e-12);
    to_f64(rv, r, 2);
    assert_double_equal(r[0], 0.9 + 0.1 * var * 4 / 3, 1e-12);
    /* evaluation uses the running statistics */
    OK(nn_batch_norm(&y, x, NULL, NULL, rm, rv, 0, 0.1, 0));
    to_f64(y, o, 8);
    assert_double_equal(o[0], (1 - 0.1 * mu) / sqrt(0.9 + 0.1 * var * 4 / 3), 1e-12);
    assert_int_equal(nn_batch_norm(&y, x, NULL, NULL, NULL, NULL, 0, 0.1, 1e-5), GL_EINVAL);
    /* group norm with one group per sample: zero mean over (C, H, W) */
    OK(nn_group_norm(&y, x, 1, NULL, NULL, 0));
    to_f64(y, o, 8);
    double s0 = 0;
    for (int i = 0; i < 4; i++) s0 += o[i];
    assert_double_equal(s0, 0, 1e-12);
    /* cross entropy with label smoothing ε: (1-ε) (-log p_y) + ε mean_c(-log p_c) */
    double logits[6] = { 2, 0, -1, 0.5, 0.5, 3 };
    int64_t tg[2] = { 0, 2 }, ls[2] = { 2, 3 }, ts[1] = { 2 };
    nn_tensor *t, *loss;
    OK(nn_from_data(&t, tg, ts, 1, NN_I64));
    OK(nn_cross_entropy(&loss, f64(logits, ls, 2), t, 0.1));
    double expect = 0;
    for (int n = 0; n < 2; n++) {
        double z = 0;
        for (int c = 0; c < 3; c++) z += exp(logits[n * 3 + c]);
        double nll = -(logits[n * 3 + tg[n]] - log(z)), smooth = 0;
        for (int c = 0; c < 3; c++) smooth += -(logits[n * 3 + c] - log(z)) / 3;
        expect += 0.9 * nll + 0.1 * smooth;
    }
    assert_double_equal(item(loss), expect / 2, 1e-12);
    nn_scope_end(&s);
}

/* ---- gradients against float64 central differences ---------------------------------------------- */

typedef int (*loss_fn)(nn_tensor **loss, const nn_tensor *x, void *ctx);

/* Checks d loss / d x at every element of x (small tensors) and returns the
 * max relative error. */
static double gradcheck(loss_fn f, const double *x0, const int64_t *shape, int nd, void *ctx)
{
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)shape[i];
    nn_scope *s;
    OK(nn_scope_begin(&s));
    nn_tensor *x = f64(x0, shape, nd), *loss, *g;
    OK(nn_set_requires_grad(x, 1));
    OK(f(&loss, x, ctx));
    OK(nn_backward(loss));
    OK(nn_grad(&g, x));
    assert_non_null(g);
    double *ga = malloc(n * sizeof *ga), *xp = malloc(n * sizeof *xp);
    to_f64(g, ga, n);
    memcpy(xp, x0, n * sizeof *xp);
    int prev = nn_grad_mode_set(0);
    double worst = 0, h = 1e-6;
    for (size_t i = 0; i < n; i++) {
        double lp, lm;
        xp[i] = x0[i] + h;
        OK(f(&loss, f64(xp, shape, nd), ctx));
        lp = item(loss);
        xp[i] = x0[i] - h;
        OK(f(&loss, f64(xp, shape, nd), ctx));
        lm = item(loss);
        xp[i] = x0[i];
        double num = (lp - lm) / (2 * h);
        double err = fabs(num - ga[i]) / fmax(1e-6, fmax(fabs(num), fabs(ga[i])));
        if (fabs(num - ga[i]) < 1e-8) err = 0;
        if (err > worst) worst = err;
    }
    nn_grad_mode_set(prev);
    free(ga);
    free(xp);
    nn_scope_end(&s);
    return worst;
}

/* loss = sum(conv_bn_relu(x) * R): weights fixed, float64, training-mode BN. */
typedef struct {
    nn_tensor *w, *gamma, *beta, *R;
} cbr_ctx;

static int cbr_loss(nn_tensor **loss, const nn_tensor *x, void *vctx)
{
    cbr_ctx *c = vctx;
    nn_tensor *y, *z, *r, *p;
    int rc;
    if ((rc = nn_conv2d(&y, x, c->w, NULL, 1, 1, 1, 1)) < 0) return rc;
    if ((rc = nn_batch_norm(&z, y, c->gamma, c->beta, NULL, NULL, 1, 0.1, 1e-5)) < 0) return rc;
    if ((rc = nn_unary(&r, NN_RELU, z)) < 0) return rc;
    if ((rc = nn_mul(&p, r, c->R)) < 0) return rc;
    return nn_sum(loss, p, NULL, 0, 0);
}

static void test_gradcheck_conv_bn_relu(void **state)
{
    (void)state;
    nn_scope *s;
    OK(nn_scope_begin(&s));
    nn_manual_seed(1);
    int64_t xs[4] = { 2, 2, 4, 4 }, ws[4] = { 3, 2, 3, 3 }, cs[1] = { 3 }, ys[4] = { 2, 3, 4, 4 };
    cbr_ctx c;
    OK(nn_randn(&c.w, ws, 4, NN_F64));
    OK(nn_randn(&c.gamma, cs, 1, NN_F64));
    OK(nn_randn(&c.beta, cs, 1, NN_F64));
    OK(nn_randn(&c.R, ys, 4, NN_F64));
    double x0[64];
    nn_tensor *xr;
    OK(nn_randn(&xr, xs, 4, NN_F64));
    to_f64(xr, x0, 64);
    double err = gradcheck(cbr_loss, x0, xs, 4, &c);
    assert_true(err < 1e-5);
    nn_scope_end(&s);
}

typedef struct { nn_tensor *R; } interp_ctx;

static int interp_loss(nn_tensor **loss, const nn_tensor *x, void *vctx)
{
    interp_ctx *c = vctx;
    nn_tensor *y, *p;
    int rc;
    if ((rc = nn_interpolate(&y, x, 7, 9, NN_BILINEAR, 0)) < 0) return rc;
    if ((rc = nn_mul(&p, y, c->R)) < 0) return rc;
    return nn_sum(loss, p, NULL, 0, 0);
}

static void test_gradcheck_interpolate(void **state)
{
    (void)state;
    nn_scope *s;
    OK(nn_scope_begin(&s));
    nn_manual_seed(2);
    int64_t xs[4] = { 1, 2, 4, 5 }, ys[4] = { 1, 2, 7, 9 };
    interp_ctx c;
    OK(nn_randn(&c.R, ys, 4, NN_F64));
    nn_tensor *xr;
    double x0[40];
    OK(nn_randn(&xr, xs, 4, NN_F64));
    to_f64(xr, x0, 40);
    assert_true(gradcheck(interp_loss, x0, xs, 4, &c) < 1e-6);
    nn_scope_end(&s);
}

/* Warp: loss = sum(grid_sample(img, base + flow) * R), gradient w.r.t. the flow
 * (what the motion models train through) and w.r.t. the image. */
typedef struct { nn_tensor *img, *base, *R, *flow; int wrt_image; } warp_ctx;

static int warp_loss(nn_tensor **loss, const nn_tensor *v, void *vctx)
{
    warp_ctx *c = vctx;
    nn_tensor *g, *y, *p;
    int rc;
    const nn_tensor *img = c->wrt_image ? v : c->img;
    const nn_tensor *flow = c->wrt_image ? c->flow : v;
    if ((rc = nn_add(&g, c->base, flow)) < 0) return rc;
    if ((rc = nn_grid_sample(&y, img, g, NN_BILINEAR, c->wrt_image ? NN_PAD_ZEROS : NN_PAD_BORDER, 0)) < 0) return rc;
    if ((rc = nn_mul(&p, y, c->R)) < 0) return rc;
    return nn_sum(loss, p, NULL, 0, 0);
}

static void test_gradcheck_grid_sample(void **state)
{
    (void)state;
    nn_scope *s;
    OK(nn_scope_begin(&s));
    nn_manual_seed(3);
    enum { H = 4, W = 5 };
    int64_t is[4] = { 1, 2, H, W }, gs[4] = { 1, H, W, 2 }, ys[4] = { 1, 2, H, W };
    warp_ctx c = { 0 };
    OK(nn_randn(&c.img, is, 4, NN_F64));
    OK(nn_randn(&c.R, ys, 4, NN_F64));
    double base[H * W * 2], flow[H * W * 2];
    for (int i = 0; i < H; i++)
        for (int j = 0; j < W; j++) {
            base[(i * W + j) * 2] = (2.0 * j + 1) / W - 1;
            base[(i * W + j) * 2 + 1] = (2.0 * i + 1) / H - 1;
            /* offsets that avoid exact pixel centres (bilinear kinks) */
            flow[(i * W + j) * 2] = 0.13 * sin(1.3 * i + j) + 0.031;
            flow[(i * W + j) * 2 + 1] = 0.11 * cos(0.7 * i - j) + 0.017;
        }
    c.base = f64(base, gs, 4);
    assert_true(gradcheck(warp_loss, flow, gs, 4, &c) < 1e-5);
    c.flow = f64(flow, gs, 4);
    c.wrt_image = 1;
    double img0[2 * H * W];
    to_f64(c.img, img0, 2 * H * W);
    assert_true(gradcheck(warp_loss, img0, is, 4, &c) < 1e-6);
    nn_scope_end(&s);
}

/* ---- scopes and autograd plumbing ------------------------------------------------------------------ */

static void test_scopes(void **state)
{
    (void)state;
    nn_scope *outer, *inner;
    nn_tensor *kept = NULL, *a;
    OK(nn_scope_begin(&outer));
    OK(nn_scope_begin(&inner));
    int64_t sh[1] = { 1000 };
    for (int i = 0; i < 50; i++) OK(nn_ones(&a, sh, 1, NN_F32)); /* all freed by the scope */
    OK(nn_ones(&a, sh, 1, NN_F32));
    nn_free(&a); /* freeing a recorded handle early is fine */
    OK(nn_full(&kept, sh, 1, 3.0, NN_F32));
    nn_scope_keep(inner, kept); /* moves to the outer scope */
    nn_scope_end(&inner);
    assert_null(inner);
    nn_tensor *m;
    OK(nn_mean(&m, kept, NULL, 0, 0));
    assert_double_equal(item(m), 3.0, 0);
    nn_scope_keep(outer, kept); /* now the caller's */
    nn_scope_end(&outer);
    OK(nn_mean(&m, kept, NULL, 0, 0));
    assert_double_equal(item(m), 3.0, 0);
    nn_free(&m);
    nn_free(&kept);
}

static void test_autograd_basics(void **state)
{
    (void)state;
    nn_scope *s;
    OK(nn_scope_begin(&s));
    double xa[3] = { 1, 2, 3 };
    int64_t sh[1] = { 3 };
    nn_tensor *x = f64(xa, sh, 1), *y, *l, *g;
    OK(nn_set_requires_grad(x, 1));
    assert_int_equal(nn_requires_grad(x), 1);
    OK(nn_grad(&g, x));
    assert_null(g); /* no gradient yet */
    OK(nn_unary(&y, NN_SQUARE, x));
    OK(nn_sum(&l, y, NULL, 0, 0));
    OK(nn_backward(l));
    OK(nn_grad(&g, x));
    double ga[3];
    to_f64(g, ga, 3);
    for (int i = 0; i < 3; i++) assert_double_equal(ga[i], 2 * xa[i], 0);
    OK(nn_zero_grad(x));
    OK(nn_grad(&g, x));
    to_f64(g, ga, 3);
    assert_double_equal(ga[2], 0, 0);
    nn_tensor *d;
    OK(nn_detach(&d, x));
    assert_int_equal(nn_requires_grad(d), 0);
    int prev = nn_grad_mode_set(0);
    OK(nn_unary(&y, NN_SQUARE, x));
    assert_int_equal(nn_requires_grad(y), 0);
    nn_grad_mode_set(prev);
    /* dtype conversions */
    double vals[4] = { -1.5, 0.25, 300.7, 1e5 };
    int64_t s4[1] = { 4 };
    nn_tensor *v = f64(vals, s4, 1), *h, *i16, *u8, *i8;
    OK(nn_to_dtype(&h, v, NN_F16));
    assert_int_equal(nn_get_dtype(h), NN_F16);
    double back[4];
    to_f64(h, back, 4);
    assert_double_equal(back[1], 0.25, 0);
    assert_double_equal(back[2], 300.75, 0); /* nearest half */
    OK(nn_to_dtype(&i16, v, NN_I16));
    short sv[4];
    OK(nn_copy_to(i16, sv, sizeof sv, NN_I16));
    assert_int_equal(sv[0], -1);
    assert_int_equal(sv[2], 300);
    OK(nn_to_dtype(&u8, v, NN_U8));
    OK(nn_to_dtype(&i8, v, NN_I8));
    assert_int_equal(nn_get_dtype(i8), NN_I8);
    assert_int_equal(nn_to_device(&h, v, NN_CUDA) == 0, nn_cuda_available());
    nn_scope_end(&s);
}

static void test_runtime_info(void **state)
{
    (void)state;
    nn_runtime_info ri;
    OK(nn_runtime_get_info(&ri));
    assert_true(strlen(ri.torch_version) > 0);
    assert_true(ri.threads >= 1);
    assert_int_equal(nn_runtime_init(2, "cpu"), 0);
    OK(nn_runtime_get_info(&ri));
    assert_int_equal(ri.threads, 2);
    assert_int_equal(nn_runtime_init(1, "tpu"), GL_EINVAL);
    if (!nn_cuda_available()) {
        assert_int_equal(nn_runtime_init(1, "cuda"), GL_EUNSUPPORTED);
        assert_int_equal(nn_default_device(), NN_CPU);
    }
}

int main(void)
{
    nn_runtime_init(2, "cpu");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runtime_info),
        cmocka_unit_test(test_creation),
        cmocka_unit_test(test_borrow_vs_copy),
        cmocka_unit_test(test_shape_ops),
        cmocka_unit_test(test_elementwise),
        cmocka_unit_test(test_reductions_linalg),
        cmocka_unit_test(test_conv_pool_interp),
        cmocka_unit_test(test_grid_sample_translation),
        cmocka_unit_test(test_norms_and_loss),
        cmocka_unit_test(test_gradcheck_conv_bn_relu),
        cmocka_unit_test(test_gradcheck_interpolate),
        cmocka_unit_test(test_gradcheck_grid_sample),
        cmocka_unit_test(test_scopes),
        cmocka_unit_test(test_autograd_basics),
    };
    return cmocka_run_group_tests_name("nn_ops", tests, NULL, NULL);
}
