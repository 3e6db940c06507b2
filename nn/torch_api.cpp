// torch_api.cpp — the only C++ in glocal: libtorch behind the C API of nn.h.
//
// Every extern "C" function runs its body inside NN_TRY, which turns any C++
// exception into a negative return code and a message in the thread-local
// buffer of nn/base.c (libtorch's text without its backtrace). Handles are
// heap-allocated wrappers around at::Tensor; a thread-local scope stack
// records each new handle so nn_scope_end() can free a step's temporaries.
//
// Compiles against libtorch 1.13 (Debian 12) and 2.x (upstream, CUDA).

#include <torch/torch.h>

#include <dlfcn.h>
#include <limits.h>
#include <malloc.h>
#include <stdlib.h>

#include <cmath>
#include <cstring>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "nn/nn.h"

struct nn_scope {
    std::vector<nn_tensor *> handles;
    nn_scope *parent;
};

struct nn_tensor {
    at::Tensor t;
    nn_scope *scope;
    size_t slot;
};

namespace {

thread_local nn_scope *cur_scope = nullptr;
nn_device g_device = NN_CPU;

#define NN_TRY(...)                                                                   \
    try {                                                                             \
        __VA_ARGS__                                                                   \
    } catch (const c10::Error &e) {                                                   \
        return gl_error(GL_ETORCH, "%s", e.what_without_backtrace());                 \
    } catch (const std::bad_alloc &) {                                                \
        return gl_error(GL_ENOMEM, "out of memory in libtorch");                      \
    } catch (const std::exception &e) {                                               \
        return gl_error(GL_ETORCH, "%s", e.what());                                   \
    } catch (...) {                                                                   \
        return gl_error(GL_ETORCH, "unknown C++ exception");                          \
    }                                                                                 \
    return 0;

#define NEED(p)                                                                       \
    do {                                                                              \
        if (!(p)) return gl_error(GL_EINVAL, "%s: argument '%s' is NULL", __func__, #p); \
    } while (0)

nn_tensor *wrap(at::Tensor t)
{
    nn_tensor *h = new nn_tensor{std::move(t), nullptr, 0};
    if (cur_scope) {
        h->scope = cur_scope;
        h->slot = cur_scope->handles.size();
        cur_scope->handles.push_back(h);
    }
    return h;
}

at::ScalarType to_st(nn_dtype dt)
{
    switch (dt) {
    case NN_F32: return at::kFloat;
    case NN_F64: return at::kDouble;
    case NN_F16: return at::kHalf;
    case NN_I64: return at::kLong;
    case NN_I32: return at::kInt;
    case NN_I16: return at::kShort;
    case NN_I8: return at::kChar;
    case NN_U8: return at::kByte;
    case NN_BOOL: return at::kBool;
    }
    throw std::invalid_argument("unknown nn_dtype " + std::to_string((int)dt));
}

nn_dtype from_st(at::ScalarType s)
{
    switch (s) {
    case at::kFloat: return NN_F32;
    case at::kDouble: return NN_F64;
    case at::kHalf: return NN_F16;
    case at::kLong: return NN_I64;
    case at::kInt: return NN_I32;
    case at::kShort: return NN_I16;
    case at::kChar: return NN_I8;
    case at::kByte: return NN_U8;
    case at::kBool: return NN_BOOL;
    default: return NN_F32;
    }
}

at::Device dev_of(nn_device d) { return d == NN_CUDA ? at::Device(at::kCUDA) : at::Device(at::kCPU); }

at::TensorOptions opts(nn_dtype dt) { return at::TensorOptions().dtype(to_st(dt)).device(dev_of(g_device)); }

at::IntArrayRef dims_of(const int64_t *shape, int ndim)
{
    if (ndim < 0 || ndim > NN_MAX_DIMS) throw std::invalid_argument("ndim must be in [0, 8]");
    if (ndim > 0 && !shape) throw std::invalid_argument("shape is NULL");
    return at::IntArrayRef(shape, (size_t)ndim);
}

// An optional tensor argument (NULL → undefined tensor).
at::Tensor opt_t(const nn_tensor *t) { return t ? t->t : at::Tensor(); }

std::vector<at::Tensor> tensors_of(nn_tensor *const *ts, int n)
{
    if (n <= 0 || !ts) throw std::invalid_argument("need at least one tensor");
    std::vector<at::Tensor> v;
    v.reserve((size_t)n);
    for (int i = 0; i < n; i++) {
        if (!ts[i]) throw std::invalid_argument("tensor " + std::to_string(i) + " is NULL");
        v.push_back(ts[i]->t);
    }
    return v;
}

} // namespace

extern "C" {

/* ---- runtime ------------------------------------------------------------------- */

int nn_runtime_init(int threads, const char *device)
{
#ifdef __GLIBC__
    /* libtorch's CPU tensors come from malloc. glibc serves blocks above its
     * mmap threshold with fresh mappings and unmaps them on free, so every
     * forward pass page-faults its large temporaries in again; with these
     * settings freed blocks stay in the heap and are reused. Measured with
     * bench_glocal on 1 thread: GLOCAL inference 123 -> 143 pairs/s at 64^2,
     * 28 -> 35 at 128^2 (bench/README.md, "glocal"). */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);  /* glibc's maximum on 64-bit */
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
#endif
    NN_TRY(
        if (threads > 0) at::set_num_threads(threads);
        if (device && std::strcmp(device, "cuda") == 0) {
            if (!torch::cuda::is_available())
                return gl_error(GL_EUNSUPPORTED,
                                "--device cuda: this libtorch build has no usable CUDA device "
                                "(glocal info shows what it sees)");
            g_device = NN_CUDA;
        } else if (!device || std::strcmp(device, "cpu") == 0) {
            g_device = NN_CPU;
        } else {
            return gl_error(GL_EINVAL, "device must be cpu or cuda, got '%s'", device);
        }
    )
}

void nn_runtime_shutdown(void) {}

nn_device nn_default_device(void) { return g_device; }

int nn_set_default_device(nn_device d)
{
    if (d == NN_CUDA && !nn_cuda_available())
        return gl_error(GL_EUNSUPPORTED, "CUDA is not available");
    g_device = d;
    return 0;
}

int nn_cuda_available(void)
{
    try { return torch::cuda::is_available() ? 1 : 0; } catch (...) { return 0; }
}

int nn_cuda_device_count(void)
{
    try { return (int)torch::cuda::device_count(); } catch (...) { return 0; }
}

void nn_manual_seed(uint64_t seed)
{
    try { torch::manual_seed(seed); } catch (...) {}
}

const char *nn_last_error(void) { return gl_last_error(); }

int nn_runtime_get_info(nn_runtime_info *info)
{
    NEED(info);
    NN_TRY(
        std::memset(info, 0, sizeof *info);
        std::snprintf(info->torch_version, sizeof info->torch_version, "%s", TORCH_VERSION);
        info->threads = at::get_num_threads();
        info->interop_threads = at::get_num_interop_threads();
        info->cuda_available = nn_cuda_available();
        info->cuda_devices = info->cuda_available ? nn_cuda_device_count() : 0;
        info->mkldnn = at::hasMKLDNN() ? 1 : 0;
        // Which library answers sgemm_ decides BLAS speed (Debian's alternatives
        // pick reference BLAS or OpenBLAS at run time).
        void *sym = dlsym(RTLD_DEFAULT, "sgemm_");
        Dl_info dl;
        if (sym && dladdr(sym, &dl) && dl.dli_fname) {
            char real[PATH_MAX];
            const char *name = realpath(dl.dli_fname, real) ? real : dl.dli_fname;
            std::snprintf(info->blas, sizeof info->blas, "%.*s", (int)sizeof info->blas - 1, name);
        } else {
            std::snprintf(info->blas, sizeof info->blas, "(no sgemm_ symbol found)");
        }
    )
}

/* ---- lifetime ------------------------------------------------------------------ */

void nn_free(nn_tensor **t)
{
    if (!t || !*t) return;
    nn_tensor *h = *t;
    if (h->scope) h->scope->handles[h->slot] = nullptr;
    delete h;
    *t = nullptr;
}

int nn_shallow_copy(nn_tensor **out, const nn_tensor *t)
{
    NEED(out); *out = nullptr; NEED(t);
    NN_TRY(*out = wrap(t->t);)
}

int nn_clone(nn_tensor **out, const nn_tensor *t)
{
    NEED(out); *out = nullptr; NEED(t);
    NN_TRY(*out = wrap(t->t.clone());)
}

int nn_scope_begin(nn_scope **scope)
{
    NEED(scope);
    NN_TRY(
        nn_scope *s = new nn_scope();
        s->parent = cur_scope;
        cur_scope = s;
        *scope = s;
    )
}

void nn_scope_keep(nn_scope *scope, nn_tensor *t)
{
    if (!scope || !t || t->scope != scope) return;
    scope->handles[t->slot] = nullptr;
    t->scope = nullptr;
    if (scope->parent) {
        t->scope = scope->parent;
        t->slot = scope->parent->handles.size();
        scope->parent->handles.push_back(t);
    }
}

void nn_scope_end(nn_scope **scope)
{
    if (!scope || !*scope) return;
    nn_scope *s = *scope;
    for (nn_tensor *h : s->handles)
        if (h) delete h;
    // Scopes are strictly nested; ending an outer one also pops any inner
    // ones the caller forgot (their handles stay valid and unowned).
    if (cur_scope == s) cur_scope = s->parent;
    delete s;
    *scope = nullptr;
}

/* ---- creation ------------------------------------------------------------------- */

int nn_zeros(nn_tensor **out, const int64_t *shape, int ndim, nn_dtype dt)
{
    NEED(out); *out = nullptr;
    NN_TRY(*out = wrap(at::zeros(dims_of(shape, ndim), opts(dt)));)
}

int nn_ones(nn_tensor **out, const int64_t *shape, int ndim, nn_dtype dt)
{
    NEED(out); *out = nullptr;
    NN_TRY(*out = wrap(at::ones(dims_of(shape, ndim), opts(dt)));)
}

int nn_full(nn_tensor **out, const int64_t *shape, int ndim, double value, nn_dtype dt)
{
    NEED(out); *out = nullptr;
    NN_TRY(*out = wrap(at::full(dims_of(shape, ndim), value, opts(dt)));)
}

int nn_randn(nn_tensor **out, const int64_t *shape, int ndim, nn_dtype dt)
{
    NEED(out); *out = nullptr;
    NN_TRY(*out = wrap(at::randn(dims_of(shape, ndim), opts(dt)));)
}

int nn_rand(nn_tensor **out, const int64_t *shape, int ndim, nn_dtype dt)
{
    NEED(out); *out = nullptr;
    NN_TRY(*out = wrap(at::rand(dims_of(shape, ndim), opts(dt)));)
}

int nn_randint(nn_tensor **out, int64_t lo, int64_t hi, const int64_t *shape, int ndim)
{
    NEED(out); *out = nullptr;
    NN_TRY(*out = wrap(at::randint(lo, hi, dims_of(shape, ndim), opts(NN_I64)));)
}

int nn_arange(nn_tensor **out, double start, double end, double step, nn_dtype dt)
{
    NEED(out); *out = nullptr;
    NN_TRY(*out = wrap(at::arange(start, end, step, opts(dt)));)
}

int nn_linspace(nn_tensor **out, double start, double end, int64_t steps, nn_dtype dt)
{
    NEED(out); *out = nullptr;
    NN_TRY(*out = wrap(at::linspace(start, end, steps, opts(dt)));)
}

int nn_zeros_like(nn_tensor **out, const nn_tensor *t)
{
    NEED(out); *out = nullptr; NEED(t);
    NN_TRY(*out = wrap(at::zeros_like(t->t));)
}

int nn_ones_like(nn_tensor **out, const nn_tensor *t)
{
    NEED(out); *out = nullptr; NEED(t);
    NN_TRY(*out = wrap(at::ones_like(t->t));)
}

int nn_from_data(nn_tensor **out, const void *data, const int64_t *shape, int ndim, nn_dtype dt)
{
    NEED(out); *out = nullptr; NEED(data);
    NN_TRY(
        at::Tensor t = at::empty(dims_of(shape, ndim), at::TensorOptions().dtype(to_st(dt)));
        std::memcpy(t.data_ptr(), data, (size_t)t.numel() * t.element_size());
        *out = wrap(std::move(t));
    )
}

int nn_from_blob(nn_tensor **out, void *data, const int64_t *shape, int ndim, nn_dtype dt)
{
    NEED(out); *out = nullptr; NEED(data);
    NN_TRY(*out = wrap(at::from_blob(data, dims_of(shape, ndim),
                                     at::TensorOptions().dtype(to_st(dt))));)
}

int nn_scalar(nn_tensor **out, double v, nn_dtype dt)
{
    NEED(out); *out = nullptr;
    NN_TRY(*out = wrap(at::scalar_tensor(v, opts(dt)));)
}

/* ---- copy out and queries ------------------------------------------------------------- */

int nn_copy_to(const nn_tensor *t, void *buf, size_t nbytes, nn_dtype dt)
{
    NEED(t); NEED(buf);
    NN_TRY(
        at::Tensor c = t->t.detach().to(at::kCPU, to_st(dt)).contiguous();
        size_t need = (size_t)c.numel() * c.element_size();
        if (need != nbytes)
            return gl_error(GL_EINVAL, "nn_copy_to: tensor of %lld elements needs %zu bytes, buffer has %zu",
                            (long long)c.numel(), need, nbytes);
        std::memcpy(buf, c.data_ptr(), need);
    )
}

int nn_item(const nn_tensor *t, double *v)
{
    NEED(t); NEED(v);
    NN_TRY(
        if (t->t.numel() != 1)
            return gl_error(GL_EINVAL, "nn_item: tensor has %lld elements, expected 1",
                            (long long)t->t.numel());
        *v = t->t.detach().to(at::kCPU, at::kDouble).item<double>();
    )
}

int nn_ndim(const nn_tensor *t) { return t ? (int)t->t.dim() : gl_error(GL_EINVAL, "nn_ndim: NULL"); }

int nn_shape(const nn_tensor *t, int64_t *shape)
{
    NEED(t); NEED(shape);
    int n = (int)t->t.dim();
    if (n > NN_MAX_DIMS) return gl_error(GL_EUNSUPPORTED, "tensor has %d dims (max 8)", n);
    for (int i = 0; i < n; i++) shape[i] = t->t.size(i);
    return n;
}

int64_t nn_size(const nn_tensor *t, int dim)
{
    if (!t) return gl_error(GL_EINVAL, "nn_size: NULL");
    int n = (int)t->t.dim();
    if (dim < 0) dim += n;
    if (dim < 0 || dim >= n) return gl_error(GL_EINVAL, "nn_size: dim %d out of range for %d dims", dim, n);
    return t->t.size(dim);
}

int64_t nn_numel(const nn_tensor *t) { return t ? t->t.numel() : 0; }
nn_dtype nn_get_dtype(const nn_tensor *t) { return t ? from_st(t->t.scalar_type()) : NN_F32; }
nn_device nn_get_device(const nn_tensor *t) { return t && t->t.is_cuda() ? NN_CUDA : NN_CPU; }

size_t nn_dtype_size(nn_dtype dt)
{
    switch (dt) {
    case NN_F64: case NN_I64: return 8;
    case NN_F32: case NN_I32: return 4;
    case NN_F16: case NN_I16: return 2;
    default: return 1;
    }
}

const char *nn_dtype_name(nn_dtype dt)
{
    static const char *names[] = {"float32", "float64", "float16", "int64", "int32",
                                  "int16", "int8", "uint8", "bool"};
    return (unsigned)dt < sizeof names / sizeof names[0] ? names[dt] : "?";
}

const char *nn_shape_str(const nn_tensor *t, char *buf, size_t n)
{
    if (!buf || n == 0) return "";
    if (!t) { std::snprintf(buf, n, "(null)"); return buf; }
    std::string s = "[";
    for (int64_t i = 0; i < t->t.dim(); i++) {
        if (i) s += ", ";
        s += std::to_string(t->t.size(i));
    }
    s += "]";
    std::snprintf(buf, n, "%s", s.c_str());
    return buf;
}

/* ---- shape ---------------------------------------------------------------------------- */

#define UNARY_OUT(name, expr)                                                         \
    int name                                                                          \
    {                                                                                 \
        NEED(out); *out = nullptr; NEED(t);                                           \
        NN_TRY(*out = wrap(expr);)                                                    \
    }

UNARY_OUT(nn_view(nn_tensor **out, const nn_tensor *t, const int64_t *shape, int ndim),
          t->t.view(dims_of(shape, ndim)))
UNARY_OUT(nn_reshape(nn_tensor **out, const nn_tensor *t, const int64_t *shape, int ndim),
          t->t.reshape(dims_of(shape, ndim)))
UNARY_OUT(nn_permute(nn_tensor **out, const nn_tensor *t, const int64_t *dims, int ndim),
          t->t.permute(dims_of(dims, ndim)))
UNARY_OUT(nn_transpose(nn_tensor **out, const nn_tensor *t, int d0, int d1), t->t.transpose(d0, d1))
UNARY_OUT(nn_contiguous(nn_tensor **out, const nn_tensor *t), t->t.contiguous())
UNARY_OUT(nn_narrow(nn_tensor **out, const nn_tensor *t, int dim, int64_t start, int64_t length),
          t->t.narrow(dim, start, length))
UNARY_OUT(nn_slice(nn_tensor **out, const nn_tensor *t, int dim, int64_t start, int64_t end, int64_t step),
          t->t.slice(dim, start, end, step))
UNARY_OUT(nn_select(nn_tensor **out, const nn_tensor *t, int dim, int64_t index), t->t.select(dim, index))
UNARY_OUT(nn_expand(nn_tensor **out, const nn_tensor *t, const int64_t *shape, int ndim),
          t->t.expand(dims_of(shape, ndim)))
UNARY_OUT(nn_flip(nn_tensor **out, const nn_tensor *t, const int64_t *dims, int ndim),
          t->t.flip(dims_of(dims, ndim)))
UNARY_OUT(nn_unsqueeze(nn_tensor **out, const nn_tensor *t, int dim), t->t.unsqueeze(dim))
UNARY_OUT(nn_squeeze(nn_tensor **out, const nn_tensor *t, int dim), t->t.squeeze(dim))
UNARY_OUT(nn_flatten(nn_tensor **out, const nn_tensor *t, int start_dim, int end_dim),
          t->t.flatten(start_dim, end_dim))
UNARY_OUT(nn_repeat(nn_tensor **out, const nn_tensor *t, const int64_t *repeats, int ndim),
          t->t.repeat(dims_of(repeats, ndim)))

int nn_index_select(nn_tensor **out, const nn_tensor *t, int dim, const nn_tensor *index)
{
    NEED(out); *out = nullptr; NEED(t); NEED(index);
    NN_TRY(*out = wrap(t->t.index_select(dim, index->t));)
}

int nn_cat(nn_tensor **out, nn_tensor *const *ts, int n, int dim)
{
    NEED(out); *out = nullptr;
    NN_TRY(*out = wrap(at::cat(tensors_of(ts, n), dim));)
}

int nn_stack(nn_tensor **out, nn_tensor *const *ts, int n, int dim)
{
    NEED(out); *out = nullptr;
    NN_TRY(*out = wrap(at::stack(tensors_of(ts, n), dim));)
}

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

/* ---- autograd -------------------------------------------------------------------------------- */

int nn_backward(const nn_tensor *loss)
{
    NEED(loss);
    NN_TRY(loss->t.backward();)
}

int nn_grad(nn_tensor **out, const nn_tensor *t)
{
    NEED(out); *out = nullptr; NEED(t);
    NN_TRY(
        const at::Tensor &g = t->t.grad();
        if (g.defined()) *out = wrap(g);
    )
}

int nn_zero_grad(nn_tensor *t)
{
    NEED(t);
    NN_TRY(
        at::Tensor g = t->t.mutable_grad();
        if (g.defined()) {
            g.detach_();
            g.zero_();
        }
    )
}

int nn_detach(nn_tensor **out, const nn_tensor *t)
{
    NEED(out); *out = nullptr; NEED(t);
    NN_TRY(*out = wrap(t->t.detach());)
}

int nn_set_requires_grad(nn_tensor *t, int requires_grad)
{
    NEED(t);
    NN_TRY(t->t.set_requires_grad(requires_grad != 0);)
}

int nn_requires_grad(const nn_tensor *t) { return t && t->t.requires_grad() ? 1 : 0; }

int nn_grad_mode_set(int enabled)
{
    int prev = at::GradMode::is_enabled() ? 1 : 0;
    at::GradMode::set_enabled(enabled != 0);
    return prev;
}

/* ---- conversion and in-place ----------------------------------------------------------------- */

int nn_to_dtype(nn_tensor **out, const nn_tensor *t, nn_dtype dt)
{
    NEED(out); *out = nullptr; NEED(t);
    NN_TRY(*out = wrap(t->t.to(to_st(dt)));)
}

int nn_to_device(nn_tensor **out, const nn_tensor *t, nn_device d)
{
    NEED(out); *out = nullptr; NEED(t);
    NN_TRY(
        if (d == NN_CUDA && !torch::cuda::is_available())
            return gl_error(GL_EUNSUPPORTED, "CUDA is not available");
        *out = wrap(t->t.to(dev_of(d)));
    )
}

int nn_copy_(nn_tensor *dst, const nn_tensor *src)
{
    NEED(dst); NEED(src);
    NN_TRY(
        at::NoGradGuard ng;
        dst->t.copy_(src->t);
    )
}

int nn_fill_(nn_tensor *t, double v)
{
    NEED(t);
    NN_TRY(at::NoGradGuard ng; t->t.fill_(v);)
}

int nn_normal_(nn_tensor *t, double mean, double std)
{
    NEED(t);
    NN_TRY(at::NoGradGuard ng; t->t.normal_(mean, std);)
}

int nn_uniform_(nn_tensor *t, double lo, double hi)
{
    NEED(t);
    NN_TRY(at::NoGradGuard ng; t->t.uniform_(lo, hi);)
}

int nn_add_(nn_tensor *t, const nn_tensor *other, double alpha)
{
    NEED(t); NEED(other);
    NN_TRY(
        at::NoGradGuard ng;
        if (at::isFloatingType(t->t.scalar_type())) t->t.add_(other->t, alpha);
        else t->t.add_(other->t, (int64_t)std::llround(alpha));
    )
}

int nn_mul_scalar_(nn_tensor *t, double s)
{
    NEED(t);
    NN_TRY(at::NoGradGuard ng; t->t.mul_(s);)
}

int nn_equal(const nn_tensor *a, const nn_tensor *b)
{
    NEED(a); NEED(b);
    try {
        return a->t.sizes() == b->t.sizes() && a->t.scalar_type() == b->t.scalar_type() &&
                       at::equal(a->t.detach().cpu(), b->t.detach().cpu())
                   ? 1
                   : 0;
    } catch (const c10::Error &e) {
        return gl_error(GL_ETORCH, "%s", e.what_without_backtrace());
    } catch (...) {
        return gl_error(GL_ETORCH, "nn_equal failed");
    }
}

int nn_max_abs_diff(const nn_tensor *a, const nn_tensor *b, double *out)
{
    NEED(a); NEED(b); NEED(out);
    NN_TRY(
        *out = (a->t.detach().to(at::kDouble) - b->t.detach().to(at::kDouble)).abs().max().item<double>();
    )
}

/* ---- optimizers ------------------------------------------------------------------------------- */

} // extern "C"

struct nn_optimizer {
    nn_opt_config cfg;
    std::unique_ptr<torch::optim::Optimizer> opt;
    // Which table entry each optimised tensor is, group by group, for state export.
    std::vector<std::vector<int>> group_index;
    nn_params *params;
};

namespace {

template <class Map>
typename Map::key_type state_key(const at::Tensor &p)
{
    // libtorch 1.13 keys optimizer state by the TensorImpl address as a
    // string; 2.x by the address itself.
    using K = typename Map::key_type;
    if constexpr (std::is_same_v<K, std::string>) {
        std::ostringstream ss; // what c10::guts::to_string did in 1.13
        ss << p.unsafeGetTensorImpl();
        return ss.str();
    } else {
        return (K)p.unsafeGetTensorImpl();
    }
}

std::unique_ptr<torch::optim::OptimizerOptions> make_options(const nn_opt_config *c, double wd)
{
    switch (c->kind) {
    case NN_OPT_SGD:
        return std::make_unique<torch::optim::SGDOptions>(
            torch::optim::SGDOptions(c->lr).momentum(c->momentum).nesterov(c->nesterov != 0)
                .weight_decay(wd));
    case NN_OPT_ADAM:
        return std::make_unique<torch::optim::AdamOptions>(
            torch::optim::AdamOptions(c->lr).betas({c->beta1, c->beta2}).eps(c->eps).weight_decay(wd));
    case NN_OPT_ADAMW:
        return std::make_unique<torch::optim::AdamWOptions>(
            torch::optim::AdamWOptions(c->lr).betas({c->beta1, c->beta2}).eps(c->eps).weight_decay(wd));
    }
    throw std::invalid_argument("unknown optimizer kind");
}

void set_group_lr(torch::optim::OptimizerParamGroup &g, nn_opt_kind kind, double lr)
{
    switch (kind) {
    case NN_OPT_SGD: static_cast<torch::optim::SGDOptions &>(g.options()).lr(lr); break;
    case NN_OPT_ADAM: static_cast<torch::optim::AdamOptions &>(g.options()).lr(lr); break;
    case NN_OPT_ADAMW: static_cast<torch::optim::AdamWOptions &>(g.options()).lr(lr); break;
    }
}

} // namespace

extern "C" {

int nn_optimizer_new(nn_optimizer **out, nn_params *p, const nn_opt_config *c)
{
    NEED(out); *out = nullptr; NEED(p); NEED(c);
    int rc = nn_opt_config_validate(c);
    if (rc < 0) return rc;
    NN_TRY(
        std::vector<at::Tensor> decay, no_decay;
        std::vector<int> decay_i, no_decay_i;
        for (int i = 0; i < p->n; i++) {
            if (p->is_buffer[i]) continue;
            at::Tensor &t = p->tensors[i]->t;
            if (!t.requires_grad()) t.set_requires_grad(true);
            if (p->no_decay[i]) { no_decay.push_back(t); no_decay_i.push_back(i); }
            else { decay.push_back(t); decay_i.push_back(i); }
        }
        if (decay.empty() && no_decay.empty())
            return gl_error(GL_EINVAL, "nn_optimizer_new: the parameter table has nothing to train");
        std::vector<torch::optim::OptimizerParamGroup> groups;
        auto o = std::make_unique<nn_optimizer>();
        o->cfg = *c;
        o->params = p;
        if (!decay.empty()) {
            groups.emplace_back(decay, make_options(c, c->weight_decay));
            o->group_index.push_back(decay_i);
        }
        if (!no_decay.empty()) {
            groups.emplace_back(no_decay, make_options(c, 0.0));
            o->group_index.push_back(no_decay_i);
        }
        switch (c->kind) {
        case NN_OPT_SGD:
            o->opt = std::make_unique<torch::optim::SGD>(groups, torch::optim::SGDOptions(c->lr));
            break;
        case NN_OPT_ADAM:
            o->opt = std::make_unique<torch::optim::Adam>(groups, torch::optim::AdamOptions(c->lr));
            break;
        case NN_OPT_ADAMW:
            o->opt = std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(c->lr));
            break;
        }
        *out = o.release();
    )
}

void nn_optimizer_free(nn_optimizer **o)
{
    if (!o || !*o) return;
    delete *o;
    *o = nullptr;
}

int nn_optimizer_zero_grad(nn_optimizer *o)
{
    NEED(o);
    NN_TRY(
        for (auto &g : o->opt->param_groups())
            for (auto &t : g.params()) {
                at::Tensor gr = t.mutable_grad();
                if (gr.defined()) { gr.detach_(); gr.zero_(); }
            }
    )
}

int nn_optimizer_step(nn_optimizer *o)
{
    NEED(o);
    NN_TRY(o->opt->step();)
}

int nn_optimizer_set_lr(nn_optimizer *o, double lr)
{
    NEED(o);
    NN_TRY(
        for (auto &g : o->opt->param_groups()) set_group_lr(g, o->cfg.kind, lr);
    )
}

int nn_optimizer_state_export(const nn_optimizer *o, nn_params *state)
{
    NEED(o); NEED(state);
    NN_TRY(
        auto &st = o->opt->state();
        using Map = std::remove_reference_t<decltype(st)>;
        auto &groups = o->opt->param_groups();
        for (size_t gi = 0; gi < groups.size(); gi++) {
            for (size_t k = 0; k < groups[gi].params().size(); k++) {
                const at::Tensor &p = groups[gi].params()[k];
                auto it = st.find(state_key<Map>(p));
                if (it == st.end()) continue;
                std::string base = o->params->names[o->group_index[gi][k]];
                auto add = [&](const char *what, const at::Tensor &t) {
                    if (!t.defined()) return;
                    std::string name = base + "." + what;
                    nn_tensor *h = new nn_tensor{t.detach().clone(), nullptr, 0};
                    if (nn_params_add(state, name.c_str(), h, 1, 1) < 0)
                        throw std::runtime_error(gl_last_error());
                };
                switch (o->cfg.kind) {
                case NN_OPT_SGD: {
                    auto &s = static_cast<torch::optim::SGDParamState &>(*it->second);
                    add("momentum_buffer", s.momentum_buffer());
                    break;
                }
                case NN_OPT_ADAM: {
                    auto &s = static_cast<torch::optim::AdamParamState &>(*it->second);
                    add("step", at::scalar_tensor((int64_t)s.step(), at::kLong));
                    add("exp_avg", s.exp_avg());
                    add("exp_avg_sq", s.exp_avg_sq());
                    add("max_exp_avg_sq", s.max_exp_avg_sq());
                    break;
                }
                case NN_OPT_ADAMW: {
                    auto &s = static_cast<torch::optim::AdamWParamState &>(*it->second);
                    add("step", at::scalar_tensor((int64_t)s.step(), at::kLong));
                    add("exp_avg", s.exp_avg());
                    add("exp_avg_sq", s.exp_avg_sq());
                    add("max_exp_avg_sq", s.max_exp_avg_sq());
                    break;
                }
                }
            }
        }
    )
}

int nn_optimizer_state_import(nn_optimizer *o, const nn_params *state)
{
    NEED(o); NEED(state);
    NN_TRY(
        auto &st = o->opt->state();
        using Map = std::remove_reference_t<decltype(st)>;
        auto &groups = o->opt->param_groups();
        for (size_t gi = 0; gi < groups.size(); gi++) {
            for (size_t k = 0; k < groups[gi].params().size(); k++) {
                const at::Tensor &p = groups[gi].params()[k];
                std::string base = o->params->names[o->group_index[gi][k]];
                auto get = [&](const char *what) -> at::Tensor {
                    nn_tensor *h = nn_params_find(state, (base + "." + what).c_str());
                    return h ? h->t.detach().clone().to(p.device()) : at::Tensor();
                };
                switch (o->cfg.kind) {
                case NN_OPT_SGD: {
                    at::Tensor m = get("momentum_buffer");
                    if (!m.defined()) break;
                    auto s = std::make_unique<torch::optim::SGDParamState>();
                    s->momentum_buffer(m);
                    st[state_key<Map>(p)] = std::move(s);
                    break;
                }
                case NN_OPT_ADAM:
                case NN_OPT_ADAMW: {
                    at::Tensor step = get("step"), m = get("exp_avg"), v = get("exp_avg_sq");
                    if (!step.defined() || !m.defined() || !v.defined()) break;
                    at::Tensor vmax = get("max_exp_avg_sq");
                    if (o->cfg.kind == NN_OPT_ADAM) {
                        auto s = std::make_unique<torch::optim::AdamParamState>();
                        s->step(step.item<int64_t>());
                        s->exp_avg(m);
                        s->exp_avg_sq(v);
                        if (vmax.defined()) s->max_exp_avg_sq(vmax);
                        st[state_key<Map>(p)] = std::move(s);
                    } else {
                        auto s = std::make_unique<torch::optim::AdamWParamState>();
                        s->step(step.item<int64_t>());
                        s->exp_avg(m);
                        s->exp_avg_sq(v);
                        if (vmax.defined()) s->max_exp_avg_sq(vmax);
                        st[state_key<Map>(p)] = std::move(s);
                    }
                    break;
                }
                }
            }
        }
    )
}

int nn_clip_grad_norm(nn_params *p, double max_norm, double *norm)
{
    NEED(p);
    NN_TRY(
        std::vector<at::Tensor> ts;
        for (int i = 0; i < p->n; i++)
            if (!p->is_buffer[i] && p->tensors[i]->t.grad().defined()) ts.push_back(p->tensors[i]->t);
        double n = ts.empty() ? 0.0 : torch::nn::utils::clip_grad_norm_(ts, max_norm, 2.0);
        if (norm) *norm = n;
    )
}

} // extern "C"

/* ---- distributed (c10d) ---- */
//
// nn_dist (nn.h, "distributed data-parallel"): a TCPStore rendezvous hosted
// by rank 0, a PrefixStore so later groups could share it, and a
// ProcessGroupGloo (or ProcessGroupNCCL) on top. Written against the parts of
// c10d that are the same in libtorch 1.13 and 2.x: TCPStore(host,
// TCPStoreOptions), ProcessGroupGloo::Options::create(timeout) with its
// `devices` list, the create*Device helpers, allreduce/broadcast/barrier
// taking std::vector<at::Tensor>& and *Options with a `timeout`, and
// Work::wait(timeout). The process-group classes derive from ProcessGroup in
// 1.13 and from Backend in 2.x, so nothing here names the base class.
//
// TorchConfig.cmake defines neither USE_C10D_GLOO nor USE_C10D_NCCL, yet the
// headers hide their classes without them. Gloo is part of every libtorch
// build glocal supports (Debian's 1.13, upstream CPU and CUDA 2.x), so it is
// switched on here; NCCL only exists in CUDA builds, so it stays behind the
// macro, which a CUDA build must define (-DUSE_C10D_NCCL).
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <cstdio>
#include <exception>

struct nn_dist {
    int rank = 0, world = 1, local_rank = 0;
    double timeout_s = 300.0;
    size_t bucket_bytes = 25u << 20;
    std::string addr;
    int port = 0;
    c10::intrusive_ptr<c10d::Store> store;
    c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
#ifdef USE_C10D_NCCL
    c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif
    std::string failure;   // non-empty after a failed collective: the group is unusable
};

namespace {

std::chrono::milliseconds dist_ms(double s) { return std::chrono::milliseconds((int64_t)(s * 1000.0 + 0.5)); }

bool dist_single(const nn_dist *d) { return !d || d->world == 1; }

// Runs f(process group) on whichever backend the group uses.
template <class F> void dist_on_pg(nn_dist *d, F &&f)
{
#ifdef USE_C10D_NCCL
    if (d->nccl) {
        f(*d->nccl);
        return;
    }
#endif
    f(*d->gloo);
}

// Waits for a collective. Gloo enforces the timeout itself (context timeout);
// the wait's own limit, a little longer, is the backstop for a backend that
// does not (NCCL without blocking wait).
void dist_wait(nn_dist *d, const c10::intrusive_ptr<c10d::Work> &w)
{
    w->wait(dist_ms(d->timeout_s + 2.0));
}

// Turns a failed collective into GL_ESYSTEM with a message that says what
// probably happened, and poisons the group.
int dist_fail(nn_dist *d, const char *what, const char *why)
{
    char buf[1024];
    std::snprintf(buf, sizeof buf,
                  "%s failed on rank %d of %d (%s backend, timeout %g s): %s "
                  "(another rank has probably exited or stalled; see its output)",
                  what, d->rank, d->world, nn_dist_backend_name(d), d->timeout_s, why);
    d->failure = buf;
    return gl_error(GL_ESYSTEM, "%s", buf);
}

int dist_check_usable(nn_dist *d, const char *what)
{
    if (!d->failure.empty())
        return gl_error(GL_ESYSTEM, "%s: the process group is unusable after an earlier failure: %s",
                        what, d->failure.c_str());
    return 0;
}

#define DIST_TRY(d, op_name, ...)                                                     \
    try {                                                                             \
        __VA_ARGS__                                                                   \
    } catch (const c10::Error &e) {                                                   \
        return dist_fail(d, op_name, e.what_without_backtrace());                     \
    } catch (const std::bad_alloc &) {                                                \
        return gl_error(GL_ENOMEM, "%s: out of memory", op_name);                     \
    } catch (const std::exception &e) {                                               \
        return dist_fail(d, op_name, e.what());                                       \
    } catch (...) {                                                                   \
        return dist_fail(d, op_name, "unknown C++ exception");                        \
    }                                                                                 \
    return 0;

bool dist_is_loopback(const std::string &a)
{
    return a == "localhost" || a == "::1" || a.rfind("127.", 0) == 0;
}

// Groups tensors into buckets: consecutive tensors of one dtype and device,
// closed when they reach `cap` bytes (a larger tensor gets a bucket alone).
std::vector<std::vector<at::Tensor>> dist_buckets(const std::vector<at::Tensor> &ts, size_t cap)
{
    std::vector<std::vector<at::Tensor>> out;
    size_t bytes = 0;
    for (const at::Tensor &t : ts) {
        size_t nb = (size_t)t.numel() * t.element_size();
        bool fresh = out.empty() || out.back().front().scalar_type() != t.scalar_type() ||
                     out.back().front().device() != t.device() || bytes + nb > cap;
        if (fresh) {
            out.emplace_back();
            bytes = 0;
        }
        out.back().push_back(t);
        bytes += nb;
    }
    return out;
}

at::Tensor dist_flatten(const std::vector<at::Tensor> &b)
{
    if (b.size() == 1 && b[0].is_contiguous()) return b[0].view({-1}); // reduce in place
    std::vector<at::Tensor> flat;
    flat.reserve(b.size());
    for (const at::Tensor &t : b) flat.push_back(t.reshape({-1}));
    return at::cat(flat);
}

void dist_unflatten(const at::Tensor &flat, const std::vector<at::Tensor> &b)
{
    if (b.size() == 1 && b[0].is_contiguous() && flat.data_ptr() == b[0].data_ptr()) return;
    int64_t off = 0;
    for (const at::Tensor &t : b) {
        int64_t n = t.numel();
        at::Tensor dst = t;   // shares storage: copy_ writes into the gradient / parameter
        dst.copy_(flat.narrow(0, off, n).view(t.sizes()));
        off += n;
    }
}

// FNV-1a over the names, kinds, dtypes and shapes of a table, kept to 62 bits
// so that both it and its negation fit an int64 (see the broadcast check).
int64_t dist_fingerprint(const nn_params *p)
{
    uint64_t h = 1469598103934665603ULL;
    auto mix = [&h](const void *data, size_t n) {
        const unsigned char *c = (const unsigned char *)data;
        for (size_t i = 0; i < n; i++) h = (h ^ c[i]) * 1099511628211ULL;
    };
    for (int i = 0; i < p->n; i++) {
        const at::Tensor &t = p->tensors[i]->t;
        mix(p->names[i], std::strlen(p->names[i]) + 1);
        int8_t st = (int8_t)t.scalar_type(), buf = (int8_t)p->is_buffer[i];
        mix(&st, 1);
        mix(&buf, 1);
        for (int64_t s : t.sizes()) mix(&s, sizeof s);
        int64_t nd = t.dim();
        mix(&nd, sizeof nd);
    }
    return (int64_t)(h >> 2);
}

at::Device dist_device(const nn_dist *d)
{
#ifdef USE_C10D_NCCL
    if (d->nccl) return at::Device(at::kCUDA, (c10::DeviceIndex)c10::cuda::current_device());
#else
    (void)d;
#endif
    return at::Device(at::kCPU);
}

// Same table on every rank? One MAX all-reduce of (h, -h) of the table's
// fingerprint h: all ranks agree iff max(h) == h and max(-h) == -h everywhere.
int dist_same_table(nn_dist *d, const nn_params *p, bool *same)
{
    int64_t h = dist_fingerprint(p);
    DIST_TRY(d, "broadcast of parameters (table check)",
        at::Tensor t = at::tensor(std::vector<int64_t>{h, -h}, at::kLong).to(dist_device(d));
        std::vector<at::Tensor> v{t};
        c10d::AllreduceOptions ao;
        ao.reduceOp = c10d::ReduceOp::MAX;
        ao.timeout = dist_ms(d->timeout_s);
        dist_on_pg(d, [&](auto &pg) { dist_wait(d, pg.allreduce(v, ao)); });
        at::Tensor r = v[0].cpu();
        *same = r[0].item<int64_t>() == h && r[1].item<int64_t>() == -h;
    )
}

} // namespace

extern "C" {

const char *nn_dist_backend_name(const nn_dist *d)
{
    if (dist_single(d)) return "none";
#ifdef USE_C10D_NCCL
    if (d->nccl) return "nccl";
#endif
    return "gloo";
}

int nn_dist_rank(const nn_dist *d) { return d ? d->rank : 0; }
int nn_dist_world_size(const nn_dist *d) { return d ? d->world : 1; }
int nn_dist_local_rank(const nn_dist *d) { return d ? d->local_rank : 0; }

int nn_dist_init(nn_dist **out, int rank, int world_size, int local_rank, const char *master_addr,
                 int master_port, const nn_dist_options *o)
{
    NEED(out);
    *out = nullptr;
    nn_dist_options def = nn_dist_options_default();
    if (!o) o = &def;
    int rc = nn_dist_options_validate(o);
    if (rc < 0) return rc;
    if (world_size < 1 || rank < 0 || rank >= world_size || local_rank < 0)
        return gl_error(GL_EINVAL, "nn_dist_init: need 0 <= rank < world_size and local_rank >= 0, "
                        "got rank %d, world_size %d, local_rank %d", rank, world_size, local_rank);
    if (world_size > 1 && (!master_addr || !master_addr[0] || master_port < 1 || master_port > 65535))
        return gl_error(GL_EINVAL, "nn_dist_init: world_size %d needs MASTER_ADDR and a MASTER_PORT "
                        "in [1, 65535], got '%s' and %d", world_size, master_addr ? master_addr : "(null)",
                        master_port);
    bool want_nccl = o->backend == NN_DIST_NCCL || (o->backend == NN_DIST_AUTO && g_device == NN_CUDA);
#ifndef USE_C10D_NCCL
    if (o->backend == NN_DIST_NCCL)
        return gl_error(GL_EUNSUPPORTED, "nn_dist_init: the NCCL backend needs a CUDA libtorch and "
                        "glocal built with -DUSE_C10D_NCCL; use Gloo");
    want_nccl = false;
#endif
    double rdv_s = o->rendezvous_timeout_s > 0 ? o->rendezvous_timeout_s : o->timeout_s;
    nn_dist *d = nullptr;
    NN_TRY(
        d = new nn_dist();
        d->rank = rank;
        d->world = world_size;
        d->local_rank = local_rank;
        d->timeout_s = o->timeout_s;
        d->bucket_bytes = (size_t)(o->bucket_mb * 1048576.0);
        if (d->bucket_bytes < 1) d->bucket_bytes = 1;
        d->addr = master_addr ? master_addr : "";
        d->port = master_port;
        if (world_size > 1) {
            try {
                c10d::TCPStoreOptions so;
                so.port = (std::uint16_t)master_port;
                so.isServer = rank == 0;
                so.numWorkers = (std::size_t)world_size;
                // Gloo's own rendezvous waits for every rank's address with
                // the store timeout; the server need not block on it as well.
                so.waitWorkers = false;
                // The store's timeout is also how long Gloo's address exchange
                // waits for the other ranks' keys.
                so.timeout = dist_ms(rdv_s);
                auto tcp = c10::make_intrusive<c10d::TCPStore>(d->addr, so);
                d->store = c10::make_intrusive<c10d::PrefixStore>("glocal/0", tcp);
            } catch (const std::exception &e) {
                std::string msg = e.what();
                delete d;
                return gl_error(GL_ESYSTEM, "rendezvous (TCPStore) at %s:%d, rank %d of %d, timeout %g s: %s%s",
                                master_addr, master_port, rank, world_size, rdv_s,
                                msg.substr(0, msg.find("\nException raised from")).c_str(),
                                rank == 0 ? " (is the port already in use?)"
                                          : " (is rank 0 running and the address reachable?)");
            }
            try {
                if (want_nccl) {
#ifdef USE_C10D_NCCL
                    int nd = (int)torch::cuda::device_count();
                    if (nd < 1) throw std::runtime_error("no CUDA device for the NCCL backend");
                    c10::cuda::set_device((c10::DeviceIndex)(local_rank % nd));
                    auto no = c10d::ProcessGroupNCCL::Options::create();
                    no->timeout = dist_ms(o->timeout_s);
                    d->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(d->store, rank, world_size, no);
#endif
                } else {
                    auto go = c10d::ProcessGroupGloo::Options::create(dist_ms(o->timeout_s));
                    const char *env_if = std::getenv("GLOO_SOCKET_IFNAME");
                    if (o->ifname)
                        go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(o->ifname));
                    else if (env_if && env_if[0])
                        go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(env_if));
                    else if (dist_is_loopback(d->addr))
                        go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
                    else
                        go->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
                    d->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(d->store, rank, world_size, go);
                }
            } catch (const c10::Error &e) {
                std::string msg = e.what_without_backtrace();
                delete d;
                return gl_error(GL_ESYSTEM, "process group (%s) via %s:%d, rank %d of %d, timeout %g s: %s",
                                want_nccl ? "nccl" : "gloo", master_addr, master_port, rank, world_size,
                                rdv_s, msg.c_str());
            } catch (const std::exception &e) {
                std::string msg = e.what();
                delete d;
                return gl_error(GL_ESYSTEM, "process group (%s) via %s:%d, rank %d of %d, timeout %g s: %s",
                                want_nccl ? "nccl" : "gloo", master_addr, master_port, rank, world_size,
                                rdv_s, msg.c_str());
            }
        }
        *out = d;
    )
}

void nn_dist_free(nn_dist **d)
{
    if (!d || !*d) return;
    try {
        delete *d;
    } catch (...) {
    }
    *d = nullptr;
}

int nn_dist_barrier(nn_dist *d)
{
    if (dist_single(d)) return 0;
    int rc = dist_check_usable(d, "barrier");
    if (rc < 0) return rc;
    DIST_TRY(d, "barrier",
        c10d::BarrierOptions bo;
        bo.timeout = dist_ms(d->timeout_s);
        dist_on_pg(d, [&](auto &pg) { dist_wait(d, pg.barrier(bo)); });
    )
}

int nn_dist_allreduce_values(nn_dist *d, double *values, int n, nn_dist_reduce op)
{
    if (n < 0 || (n > 0 && !values))
        return gl_error(GL_EINVAL, "nn_dist_allreduce_values: need n >= 0 values, got %d", n);
    if (op != NN_DIST_SUM && op != NN_DIST_MEAN && op != NN_DIST_MIN && op != NN_DIST_MAX)
        return gl_error(GL_EINVAL, "nn_dist_allreduce_values: unknown reduction %d", (int)op);
    if (dist_single(d) || n == 0) return 0;
    int rc = dist_check_usable(d, "all-reduce of values");
    if (rc < 0) return rc;
    DIST_TRY(d, "all-reduce of values",
        at::Tensor t = at::from_blob(values, {(int64_t)n}, at::kDouble).to(dist_device(d), /*non_blocking=*/false,
                                                                          /*copy=*/true);
        std::vector<at::Tensor> v{t};
        c10d::AllreduceOptions ao;
        ao.reduceOp = op == NN_DIST_MIN ? c10d::ReduceOp::MIN : op == NN_DIST_MAX ? c10d::ReduceOp::MAX
                                                                                   : c10d::ReduceOp::SUM;
        ao.timeout = dist_ms(d->timeout_s);
        dist_on_pg(d, [&](auto &pg) { dist_wait(d, pg.allreduce(v, ao)); });
        at::Tensor r = v[0].cpu();
        if (op == NN_DIST_MEAN) r = r / (double)d->world;
        std::memcpy(values, r.contiguous().data_ptr<double>(), (size_t)n * sizeof(double));
    )
}

int nn_dist_broadcast_params(nn_dist *d, nn_params *p)
{
    NEED(p);
    if (dist_single(d)) return 0;
    int rc = dist_check_usable(d, "broadcast of parameters");
    if (rc < 0) return rc;
    bool same = true;
    if ((rc = dist_same_table(d, p, &same)) < 0) return rc;
    if (!same)
        return gl_error(GL_EINVAL, "broadcast of parameters: rank %d's table (%d tensors) differs from "
                        "another rank's in names, shapes or dtypes (different model configs?)",
                        d->rank, p->n);
    DIST_TRY(d, "broadcast of parameters",
        at::NoGradGuard ng;
        std::vector<at::Tensor> ts;
        for (int i = 0; i < p->n; i++) ts.push_back(p->tensors[i]->t.detach());
        auto buckets = dist_buckets(ts, d->bucket_bytes);
        std::vector<at::Tensor> flats;
        std::vector<c10::intrusive_ptr<c10d::Work>> works;
        c10d::BroadcastOptions bo;
        bo.rootRank = 0;
        bo.timeout = dist_ms(d->timeout_s);
        for (auto &b : buckets) {
            flats.push_back(dist_flatten(b).to(dist_device(d)));
            std::vector<at::Tensor> v{flats.back()};
            dist_on_pg(d, [&](auto &pg) { works.push_back(pg.broadcast(v, bo)); });
        }
        for (auto &w : works) dist_wait(d, w);
        for (size_t i = 0; i < buckets.size(); i++) dist_unflatten(flats[i], buckets[i]);
    )
}

int nn_dist_allreduce_grads(nn_dist *d, nn_params *p)
{
    NEED(p);
    if (dist_single(d)) return 0;
    int rc = dist_check_usable(d, "all-reduce of gradients");
    if (rc < 0) return rc;
    DIST_TRY(d, "all-reduce of gradients",
        at::NoGradGuard ng;
        std::vector<at::Tensor> gs;
        for (int i = 0; i < p->n; i++) {
            if (p->is_buffer[i]) continue;
            at::Tensor &t = p->tensors[i]->t;
            // Unused this step: take part with zeros so every rank sends the
            // same layout (DDP's find_unused_parameters does the same).
            if (!t.grad().defined()) t.mutable_grad() = at::zeros_like(t);
            gs.push_back(t.grad());
        }
        auto buckets = dist_buckets(gs, d->bucket_bytes);
        std::vector<at::Tensor> flats;
        std::vector<c10::intrusive_ptr<c10d::Work>> works;
        c10d::AllreduceOptions ao;
        ao.reduceOp = c10d::ReduceOp::SUM;
        ao.timeout = dist_ms(d->timeout_s);
        // All buckets are queued before the first wait: Gloo's worker threads
        // work on the next bucket while this thread waits on the first.
        for (auto &b : buckets) {
            flats.push_back(dist_flatten(b));
            std::vector<at::Tensor> v{flats.back()};
            dist_on_pg(d, [&](auto &pg) { works.push_back(pg.allreduce(v, ao)); });
        }
        for (auto &w : works) dist_wait(d, w);
        for (size_t i = 0; i < buckets.size(); i++) {
            flats[i].div_((double)d->world);
            dist_unflatten(flats[i], buckets[i]);
        }
    )
}

} // extern "C"
