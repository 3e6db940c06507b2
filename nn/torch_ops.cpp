// torch_ops.cpp — libtorch behind nn.h, part 2: element-wise maths,
// comparisons, reductions, linear algebra and the neural-network ops
// (convolutions, normalisation, pooling, resampling, losses). Every entry
// point is a thin NN_TRY wrapper (torch_internal.hpp).

#include "nn/torch_internal.hpp"

#include <cmath>
#include <string>
#include <utility>

using namespace nn_torch;

extern "C" {

/* ---- element-wise ------------------------------------------------------------------------ */

static at::Tensor binary(nn_binary_op op, const at::Tensor &a, const at::Tensor &b)
{
    switch (op) {
    case NN_ADD: return a + b;
    case NN_SUB: return a - b;
    case NN_MUL: return a * b;
    case NN_DIV: return a / b;
    case NN_POW: return at::pow(a, b);
    case NN_MAXIMUM: return at::maximum(a, b);
    case NN_MINIMUM: return at::minimum(a, b);
    case NN_ATAN2: return at::atan2(a, b);
    }
    throw std::invalid_argument("unknown binary op " + std::to_string((int)op));
}

int nn_binary(nn_tensor **out, nn_binary_op op, const nn_tensor *a, const nn_tensor *b)
{
    NEED(out); *out = nullptr; NEED(a); NEED(b);
    NN_TRY(*out = wrap(binary(op, a->t, b->t));)
}

int nn_binary_scalar(nn_tensor **out, nn_binary_op op, const nn_tensor *a, double s, int s_first)
{
    NEED(out); *out = nullptr; NEED(a);
    NN_TRY(
        at::Tensor r;
        switch (op) {
        case NN_ADD: r = a->t + s; break;
        case NN_MUL: r = a->t * s; break;
        case NN_SUB: r = s_first ? s - a->t : a->t - s; break;
        case NN_DIV: r = s_first ? at::reciprocal(a->t) * s : a->t / s; break;
        case NN_POW: r = s_first ? at::pow(s, a->t) : at::pow(a->t, s); break;
        case NN_MAXIMUM: r = at::clamp_min(a->t, s); break;
        case NN_MINIMUM: r = at::clamp_max(a->t, s); break;
        case NN_ATAN2: {
            at::Tensor st = at::full_like(a->t, s);
            r = s_first ? at::atan2(st, a->t) : at::atan2(a->t, st);
            break;
        }
        default: return gl_error(GL_EINVAL, "unknown binary op %d", (int)op);
        }
        *out = wrap(std::move(r));
    )
}

int nn_unary(nn_tensor **out, nn_unary_op op, const nn_tensor *a)
{
    NEED(out); *out = nullptr; NEED(a);
    NN_TRY(
        const at::Tensor &x = a->t;
        at::Tensor r;
        switch (op) {
        case NN_NEG: r = -x; break;
        case NN_ABS: r = at::abs(x); break;
        case NN_SQRT: r = at::sqrt(x); break;
        case NN_RSQRT: r = at::rsqrt(x); break;
        case NN_EXP: r = at::exp(x); break;
        case NN_LOG: r = at::log(x); break;
        case NN_SQUARE: r = x * x; break;
        case NN_RELU: r = at::relu(x); break;
        case NN_SIGMOID: r = at::sigmoid(x); break;
        case NN_TANH: r = at::tanh(x); break;
        case NN_FLOOR: r = at::floor(x); break;
        case NN_CEIL: r = at::ceil(x); break;
        case NN_ROUND: r = at::round(x); break;
        case NN_SIN: r = at::sin(x); break;
        case NN_COS: r = at::cos(x); break;
        case NN_SIGN: r = at::sign(x); break;
        case NN_RECIPROCAL: r = at::reciprocal(x); break;
        case NN_ISNAN: r = at::isnan(x); break;
        default: return gl_error(GL_EINVAL, "unknown unary op %d", (int)op);
        }
        *out = wrap(std::move(r));
    )
}

int nn_add(nn_tensor **o, const nn_tensor *a, const nn_tensor *b) { return nn_binary(o, NN_ADD, a, b); }
int nn_sub(nn_tensor **o, const nn_tensor *a, const nn_tensor *b) { return nn_binary(o, NN_SUB, a, b); }
int nn_mul(nn_tensor **o, const nn_tensor *a, const nn_tensor *b) { return nn_binary(o, NN_MUL, a, b); }
int nn_div(nn_tensor **o, const nn_tensor *a, const nn_tensor *b) { return nn_binary(o, NN_DIV, a, b); }
int nn_add_scalar(nn_tensor **o, const nn_tensor *a, double s) { return nn_binary_scalar(o, NN_ADD, a, s, 0); }
int nn_mul_scalar(nn_tensor **o, const nn_tensor *a, double s) { return nn_binary_scalar(o, NN_MUL, a, s, 0); }

int nn_axpy(nn_tensor **out, const nn_tensor *a, double alpha, const nn_tensor *b)
{
    NEED(out); *out = nullptr; NEED(a); NEED(b);
    NN_TRY(*out = wrap(at::add(a->t, b->t, alpha));)
}

int nn_clamp(nn_tensor **out, const nn_tensor *a, double lo, double hi)
{
    NEED(out); *out = nullptr; NEED(a);
    NN_TRY(
        c10::optional<at::Scalar> l, h;
        if (!std::isnan(lo)) l = lo;
        if (!std::isnan(hi)) h = hi;
        *out = wrap(at::clamp(a->t, l, h));
    )
}

int nn_where(nn_tensor **out, const nn_tensor *cond, const nn_tensor *a, const nn_tensor *b)
{
    NEED(out); *out = nullptr; NEED(cond); NEED(a); NEED(b);
    NN_TRY(*out = wrap(at::where(cond->t.to(at::kBool), a->t, b->t));)
}

static at::Tensor compare(nn_compare_op op, const at::Tensor &a, const at::Tensor &b)
{
    switch (op) {
    case NN_EQ: return at::eq(a, b);
    case NN_NE: return at::ne(a, b);
    case NN_LT: return at::lt(a, b);
    case NN_LE: return at::le(a, b);
    case NN_GT: return at::gt(a, b);
    case NN_GE: return at::ge(a, b);
    }
    throw std::invalid_argument("unknown compare op");
}

int nn_compare(nn_tensor **out, nn_compare_op op, const nn_tensor *a, const nn_tensor *b)
{
    NEED(out); *out = nullptr; NEED(a); NEED(b);
    NN_TRY(*out = wrap(compare(op, a->t, b->t));)
}

int nn_compare_scalar(nn_tensor **out, nn_compare_op op, const nn_tensor *a, double s)
{
    NEED(out); *out = nullptr; NEED(a);
    NN_TRY(*out = wrap(compare(op, a->t, at::scalar_tensor(s, a->t.options())));)
}

int nn_leaky_relu(nn_tensor **out, const nn_tensor *a, double slope)
{
    NEED(out); *out = nullptr; NEED(a);
    NN_TRY(*out = wrap(at::leaky_relu(a->t, slope));)
}

int nn_softmax(nn_tensor **out, const nn_tensor *a, int dim)
{
    NEED(out); *out = nullptr; NEED(a);
    NN_TRY(*out = wrap(at::softmax(a->t, dim));)
}

int nn_log_softmax(nn_tensor **out, const nn_tensor *a, int dim)
{
    NEED(out); *out = nullptr; NEED(a);
    NN_TRY(*out = wrap(at::log_softmax(a->t, dim));)
}

/* ---- reductions --------------------------------------------------------------------------- */

int nn_sum(nn_tensor **out, const nn_tensor *t, const int64_t *dims, int ndims, int keepdim)
{
    NEED(out); *out = nullptr; NEED(t);
    NN_TRY(*out = wrap(ndims == 0 ? t->t.sum() : t->t.sum(dims_of(dims, ndims), keepdim != 0));)
}

int nn_mean(nn_tensor **out, const nn_tensor *t, const int64_t *dims, int ndims, int keepdim)
{
    NEED(out); *out = nullptr; NEED(t);
    NN_TRY(*out = wrap(ndims == 0 ? t->t.mean() : t->t.mean(dims_of(dims, ndims), keepdim != 0));)
}

int nn_max_dim(nn_tensor **values, nn_tensor **indices, const nn_tensor *t, int dim, int keepdim)
{
    if (values) *values = nullptr;
    if (indices) *indices = nullptr;
    NEED(t);
    NN_TRY(
        auto r = t->t.max(dim, keepdim != 0);
        if (values) *values = wrap(std::get<0>(r));
        if (indices) *indices = wrap(std::get<1>(r));
    )
}

int nn_min_dim(nn_tensor **values, nn_tensor **indices, const nn_tensor *t, int dim, int keepdim)
{
    if (values) *values = nullptr;
    if (indices) *indices = nullptr;
    NEED(t);
    NN_TRY(
        auto r = t->t.min(dim, keepdim != 0);
        if (values) *values = wrap(std::get<0>(r));
        if (indices) *indices = wrap(std::get<1>(r));
    )
}

int nn_max_all(nn_tensor **out, const nn_tensor *t)
{
    NEED(out); *out = nullptr; NEED(t);
    NN_TRY(*out = wrap(t->t.max());)
}

int nn_argmax(nn_tensor **out, const nn_tensor *t, int dim, int keepdim)
{
    NEED(out); *out = nullptr; NEED(t);
    NN_TRY(*out = wrap(t->t.argmax(dim, keepdim != 0));)
}

int nn_topk(nn_tensor **values, nn_tensor **indices, const nn_tensor *t, int64_t k, int dim, int largest)
{
    if (values) *values = nullptr;
    if (indices) *indices = nullptr;
    NEED(t);
    NN_TRY(
        auto r = t->t.topk(k, dim, largest != 0, true);
        if (values) *values = wrap(std::get<0>(r));
        if (indices) *indices = wrap(std::get<1>(r));
    )
}

int nn_median_all(nn_tensor **out, const nn_tensor *t)
{
    NEED(out); *out = nullptr; NEED(t);
    NN_TRY(*out = wrap(t->t.median());)
}

/* ---- linear algebra ------------------------------------------------------------------------- */

int nn_matmul(nn_tensor **out, const nn_tensor *a, const nn_tensor *b)
{
    NEED(out); *out = nullptr; NEED(a); NEED(b);
    NN_TRY(*out = wrap(at::matmul(a->t, b->t));)
}

int nn_bmm(nn_tensor **out, const nn_tensor *a, const nn_tensor *b)
{
    NEED(out); *out = nullptr; NEED(a); NEED(b);
    NN_TRY(*out = wrap(at::bmm(a->t, b->t));)
}

int nn_linalg_solve(nn_tensor **out, const nn_tensor *A, const nn_tensor *B)
{
    NEED(out); *out = nullptr; NEED(A); NEED(B);
    NN_TRY(*out = wrap(at::linalg_solve(A->t, B->t));)
}

int nn_inverse(nn_tensor **out, const nn_tensor *A)
{
    NEED(out); *out = nullptr; NEED(A);
    NN_TRY(*out = wrap(at::linalg_inv(A->t));)
}

/* ---- neural-network ops ------------------------------------------------------------------------ */

int nn_conv2d(nn_tensor **out, const nn_tensor *x, const nn_tensor *w, const nn_tensor *b,
              int stride, int padding, int dilation, int groups)
{
    NEED(out); *out = nullptr; NEED(x); NEED(w);
    NN_TRY(*out = wrap(at::conv2d(x->t, w->t, opt_t(b), {stride, stride}, {padding, padding},
                                  {dilation, dilation}, groups));)
}

int nn_conv_transpose2d(nn_tensor **out, const nn_tensor *x, const nn_tensor *w, const nn_tensor *b,
                        int stride, int padding, int output_padding, int groups, int dilation)
{
    NEED(out); *out = nullptr; NEED(x); NEED(w);
    NN_TRY(*out = wrap(at::conv_transpose2d(x->t, w->t, opt_t(b), {stride, stride},
                                            {padding, padding}, {output_padding, output_padding},
                                            groups, {dilation, dilation}));)
}

int nn_linear(nn_tensor **out, const nn_tensor *x, const nn_tensor *w, const nn_tensor *b)
{
    NEED(out); *out = nullptr; NEED(x); NEED(w);
    NN_TRY(*out = wrap(at::linear(x->t, w->t, opt_t(b)));)
}

int nn_batch_norm(nn_tensor **out, const nn_tensor *x, const nn_tensor *weight, const nn_tensor *bias,
                  nn_tensor *running_mean, nn_tensor *running_var, int training, double momentum,
                  double eps)
{
    NEED(out); *out = nullptr; NEED(x);
    NN_TRY(
        if (!training && (!running_mean || !running_var))
            return gl_error(GL_EINVAL, "nn_batch_norm: evaluation needs running statistics");
        *out = wrap(at::batch_norm(x->t, opt_t(weight), opt_t(bias), opt_t(running_mean),
                                   opt_t(running_var), training != 0, momentum, eps, true));
    )
}

int nn_group_norm(nn_tensor **out, const nn_tensor *x, int groups, const nn_tensor *weight,
                  const nn_tensor *bias, double eps)
{
    NEED(out); *out = nullptr; NEED(x);
    NN_TRY(*out = wrap(at::group_norm(x->t, groups, opt_t(weight), opt_t(bias), eps, true));)
}

int nn_max_pool2d(nn_tensor **out, const nn_tensor *x, int kernel, int stride, int padding)
{
    NEED(out); *out = nullptr; NEED(x);
    NN_TRY(*out = wrap(at::max_pool2d(x->t, {kernel, kernel}, {stride, stride}, {padding, padding}));)
}

int nn_avg_pool2d(nn_tensor **out, const nn_tensor *x, int kernel, int stride, int padding)
{
    NEED(out); *out = nullptr; NEED(x);
    NN_TRY(*out = wrap(at::avg_pool2d(x->t, {kernel, kernel}, {stride, stride}, {padding, padding},
                                      false, false));)
}

int nn_adaptive_avg_pool2d(nn_tensor **out, const nn_tensor *x, int64_t oh, int64_t ow)
{
    NEED(out); *out = nullptr; NEED(x);
    NN_TRY(*out = wrap(at::adaptive_avg_pool2d(x->t, {oh, ow}));)
}

int nn_interpolate(nn_tensor **out, const nn_tensor *x, int64_t oh, int64_t ow, nn_interp_mode mode,
                   int align_corners)
{
    NEED(out); *out = nullptr; NEED(x);
    NN_TRY(
        at::Tensor r;
        switch (mode) {
        case NN_BILINEAR: r = at::upsample_bilinear2d(x->t, {oh, ow}, align_corners != 0); break;
        case NN_NEAREST: r = at::upsample_nearest2d(x->t, {oh, ow}); break;
        case NN_AREA: r = at::adaptive_avg_pool2d(x->t, {oh, ow}); break;
        default: return gl_error(GL_EINVAL, "unknown interpolation mode %d", (int)mode);
        }
        *out = wrap(std::move(r));
    )
}

int nn_grid_sample(nn_tensor **out, const nn_tensor *x, const nn_tensor *grid, nn_interp_mode mode,
                   nn_grid_padding padding, int align_corners)
{
    NEED(out); *out = nullptr; NEED(x); NEED(grid);
    NN_TRY(
        if (mode == NN_AREA) return gl_error(GL_EINVAL, "grid_sample: area mode is not supported");
        int64_t m = mode == NN_BILINEAR ? 0 : 1; // GridSamplerInterpolation
        int64_t p = (int64_t)padding;             // GridSamplerPadding: zeros, border, reflection
        *out = wrap(at::grid_sampler(x->t, grid->t, m, p, align_corners != 0));
    )
}

int nn_pad2d(nn_tensor **out, const nn_tensor *x, int left, int right, int top, int bottom,
             nn_pad_mode mode, double value)
{
    NEED(out); *out = nullptr; NEED(x);
    NN_TRY(
        std::vector<int64_t> p = {left, right, top, bottom};
        at::Tensor r;
        switch (mode) {
        case NN_PAD_CONSTANT: r = at::constant_pad_nd(x->t, p, value); break;
        case NN_PAD_REPLICATE: r = at::replication_pad2d(x->t, p); break;
        case NN_PAD_REFLECT: r = at::reflection_pad2d(x->t, p); break;
        default: return gl_error(GL_EINVAL, "unknown pad mode %d", (int)mode);
        }
        *out = wrap(std::move(r));
    )
}

int nn_dropout(nn_tensor **out, const nn_tensor *x, double p, int training)
{
    NEED(out); *out = nullptr; NEED(x);
    NN_TRY(*out = wrap(at::dropout(x->t, p, training != 0));)
}

int nn_cross_entropy(nn_tensor **out, const nn_tensor *logits, const nn_tensor *targets,
                     double label_smoothing)
{
    NEED(out); *out = nullptr; NEED(logits); NEED(targets);
    NN_TRY(*out = wrap(at::cross_entropy_loss(logits->t, targets->t, {}, at::Reduction::Mean, -100,
                                              label_smoothing));)
}

} // extern "C"
