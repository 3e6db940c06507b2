// torch_internal.hpp — private to nn/torch_*.cpp (never included from C): the
// handle types behind nn.h's opaque nn_tensor and nn_scope, the NN_TRY
// wrapper every extern "C" entry point runs its body in, and the small
// conversions between nn.h's enums and libtorch's.
//
// The C API is split by job, one file each (each compiles <torch/torch.h>
// alone, ~14 s, so a change to one leaves the others' objects as they are):
//   torch_tensor.cpp  runtime, handles and scopes, creation, queries, shapes,
//                     conversions and in-place updates
//   torch_ops.cpp     element-wise maths, reductions, linear algebra, NN ops
//   torch_optim.cpp   autograd and the torch::optim optimizers
//   torch_dist.cpp    distributed data-parallel over c10d (Gloo, NCCL): the
//                     only file with c10d headers and USE_C10D_NCCL
//
// Compiles against libtorch 1.13 (Debian 12) and 2.x (upstream, CUDA).
#ifndef GLOCAL_NN_TORCH_INTERNAL_HPP
#define GLOCAL_NN_TORCH_INTERNAL_HPP

#include <torch/torch.h>

#include <cstddef>
#include <stdexcept>
#include <string>
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

// Runs the body; any C++ exception becomes a negative code and a message in
// the thread-local buffer of nn/base.c (libtorch's text without its
// backtrace). Falls through to `return 0`.
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

namespace nn_torch {

// A new handle for t, recorded in the innermost open scope of this thread
// (torch_tensor.cpp).
nn_tensor *wrap(at::Tensor t);

// Options for a new tensor of dtype dt on the default device (nn_set_default_device).
at::TensorOptions opts(nn_dtype dt);

inline at::ScalarType to_st(nn_dtype dt)
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

inline nn_dtype from_st(at::ScalarType s)
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

inline at::Device dev_of(nn_device d) { return d == NN_CUDA ? at::Device(at::kCUDA) : at::Device(at::kCPU); }

inline at::IntArrayRef dims_of(const int64_t *shape, int ndim)
{
    if (ndim < 0 || ndim > NN_MAX_DIMS) throw std::invalid_argument("ndim must be in [0, 8]");
    if (ndim > 0 && !shape) throw std::invalid_argument("shape is NULL");
    return at::IntArrayRef(shape, (size_t)ndim);
}

// An optional tensor argument (NULL → undefined tensor).
inline at::Tensor opt_t(const nn_tensor *t) { return t ? t->t : at::Tensor(); }

inline std::vector<at::Tensor> tensors_of(nn_tensor *const *ts, int n)
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

} // namespace nn_torch

#endif
