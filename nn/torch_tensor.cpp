// torch_tensor.cpp — libtorch behind nn.h, part 1: the runtime (threads,
// device, seed), handles and per-step scopes, tensor creation, copying out
// and queries, shape operations, conversions and in-place updates.
//
// Handles are heap-allocated wrappers around at::Tensor; a thread-local
// scope stack records each new handle so nn_scope_end() can free a step's
// temporaries. The other parts and the rules they share: torch_internal.hpp.

#include "nn/torch_internal.hpp"

#include <dlfcn.h>
#include <limits.h>
#include <malloc.h>
#include <stdlib.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

using namespace nn_torch;

namespace {

thread_local nn_scope *cur_scope = nullptr;
nn_device g_device = NN_CPU;

} // namespace

nn_tensor *nn_torch::wrap(at::Tensor t)
{
    nn_tensor *h = new nn_tensor{std::move(t), nullptr, 0};
    if (cur_scope) {
        h->scope = cur_scope;
        h->slot = cur_scope->handles.size();
        cur_scope->handles.push_back(h);
    }
    return h;
}

at::TensorOptions nn_torch::opts(nn_dtype dt)
{
    return at::TensorOptions().dtype(to_st(dt)).device(dev_of(g_device));
}

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
     * 28 -> 35 at 128^2 (bench/README.md, "glocal"). The trim threshold only
     * keeps the main thread's heap: a thread's own arena (extract's and run's
     * workers) is a chain of 64 MiB heaps, and glibc unmaps a heap whose
     * every block is free unless the top pad could not fit in the heap
     * before it (arena.c, heap_trim), so each pair page-faulted ~10 MB in
     * again there. A top pad of a whole heap keeps them; the main heap then
     * grows in 64 MiB steps of address space, touched only as used
     * (bench/README.md, "Worker threads"). */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);  /* glibc's maximum on 64-bit */
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
    mallopt(M_TOP_PAD, 64 << 20);          /* glibc's arena heap size (HEAP_MAX_SIZE) */
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

} // extern "C"
