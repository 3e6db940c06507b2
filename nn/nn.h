/*
 * nn.h — libtorch as a C API, and the C layers, optimizers and checkpoints
 * built on it. Everything glocal trains (GLOCAL, the two-stream classifier)
 * is written in C against this header.
 *
 * Handles. `nn_tensor` is opaque. Every function that produces a tensor
 * writes a new handle through an out parameter; the caller owns it and
 * releases it with nn_free(&t), which accepts NULL and nulls the pointer.
 * Functions never take ownership of their inputs.
 *
 * Scopes. A forward pass makes dozens of temporaries. Between
 * nn_scope_begin() and nn_scope_end(), every handle created on this thread
 * is also recorded in the scope, and nn_scope_end() frees all of them except
 * those passed to nn_scope_keep() (which become the caller's, or the
 * enclosing scope's). Scopes nest. nn_free() on a recorded handle is fine.
 *
 * Errors. Every function returns int: 0 on success, a negative GL_E* code on
 * failure (GL_ETORCH when libtorch raised; the message is libtorch's, without
 * its C++ backtrace). No C++ exception ever crosses into C. The message is
 * read with gl_last_error() (nn_last_error() is the same buffer).
 *
 * Borrow vs copy. nn_from_data() copies a C buffer; nn_from_blob() borrows it
 * (no copy: the buffer must outlive the tensor and every view of it).
 *
 * Device. Creation functions allocate on the runtime's default device
 * (nn_runtime_init: "cpu" or "cuda"); nn_from_data/nn_from_blob are CPU
 * tensors, moved with nn_to_device(). Copying out (nn_copy_to) works from any
 * device.
 */
#ifndef GLOCAL_NN_H
#define GLOCAL_NN_H

#include <stddef.h>
#include <stdint.h>

#include "nn/base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nn_tensor nn_tensor;
typedef struct nn_scope nn_scope;
typedef struct nn_optimizer nn_optimizer;

typedef enum {
    NN_F32 = 0, NN_F64, NN_F16, NN_I64, NN_I32, NN_I16, NN_I8, NN_U8, NN_BOOL
} nn_dtype;

typedef enum { NN_CPU = 0, NN_CUDA = 1 } nn_device;

#define NN_MAX_DIMS 8

/* ---- runtime ---------------------------------------------------------------- */

/* threads: intra-op threads (libtorch defaults to 1 on this platform, so
 * glocal always sets it); device: "cpu" or "cuda". */
int nn_runtime_init(int threads, const char *device);
void nn_runtime_shutdown(void);
nn_device nn_default_device(void);
int nn_set_default_device(nn_device d);
int nn_cuda_available(void);
int nn_cuda_device_count(void);
void nn_manual_seed(uint64_t seed);
const char *nn_last_error(void);

typedef struct {
    char torch_version[32];
    char blas[256];          /* the shared library that provides sgemm_ at run time */
    int threads;             /* libtorch intra-op threads */
    int interop_threads;
    int cuda_available;
    int cuda_devices;
    int mkldnn;              /* oneDNN convolutions available */
} nn_runtime_info;
int nn_runtime_get_info(nn_runtime_info *info);

/* ---- lifetime ------------------------------------------------------------- */

void nn_free(nn_tensor **t);
int nn_shallow_copy(nn_tensor **out, const nn_tensor *t); /* new handle, same storage */
int nn_clone(nn_tensor **out, const nn_tensor *t);         /* deep copy, keeps autograd */

int nn_scope_begin(nn_scope **scope);
/* Moves t out of the innermost scope (it survives nn_scope_end). */
void nn_scope_keep(nn_scope *scope, nn_tensor *t);
void nn_scope_end(nn_scope **scope);

/* ---- creation --------------------------------------------------------------- */

int nn_zeros(nn_tensor **out, const int64_t *shape, int ndim, nn_dtype dt);
int nn_ones(nn_tensor **out, const int64_t *shape, int ndim, nn_dtype dt);
int nn_full(nn_tensor **out, const int64_t *shape, int ndim, double value, nn_dtype dt);
int nn_randn(nn_tensor **out, const int64_t *shape, int ndim, nn_dtype dt);
int nn_rand(nn_tensor **out, const int64_t *shape, int ndim, nn_dtype dt); /* U[0,1) */
int nn_randint(nn_tensor **out, int64_t lo, int64_t hi, const int64_t *shape, int ndim);
int nn_arange(nn_tensor **out, double start, double end, double step, nn_dtype dt);
int nn_linspace(nn_tensor **out, double start, double end, int64_t steps, nn_dtype dt);
int nn_zeros_like(nn_tensor **out, const nn_tensor *t);
int nn_ones_like(nn_tensor **out, const nn_tensor *t);
/* CPU tensor holding a copy of data (contiguous, row-major). */
int nn_from_data(nn_tensor **out, const void *data, const int64_t *shape, int ndim, nn_dtype dt);
/* CPU tensor viewing data without a copy: data must outlive it. */
int nn_from_blob(nn_tensor **out, void *data, const int64_t *shape, int ndim, nn_dtype dt);
int nn_scalar(nn_tensor **out, double v, nn_dtype dt);

/* ---- copy out and queries --------------------------------------------------- */

/* Copies t (any device/layout, converted to dtype dt) into buf of nbytes;
 * nbytes must equal numel * sizeof(dt). */
int nn_copy_to(const nn_tensor *t, void *buf, size_t nbytes, nn_dtype dt);
/* Value of a one-element tensor. */
int nn_item(const nn_tensor *t, double *v);
int nn_ndim(const nn_tensor *t);
/* Writes up to NN_MAX_DIMS sizes; returns ndim (or a negative code). */
int nn_shape(const nn_tensor *t, int64_t *shape);
int64_t nn_size(const nn_tensor *t, int dim); /* negative dim counts from the end */
int64_t nn_numel(const nn_tensor *t);
nn_dtype nn_get_dtype(const nn_tensor *t);
nn_device nn_get_device(const nn_tensor *t);
size_t nn_dtype_size(nn_dtype dt);
const char *nn_dtype_name(nn_dtype dt);
/* "[2, 3, 4]" into buf. */
const char *nn_shape_str(const nn_tensor *t, char *buf, size_t n);

/* ---- shape ------------------------------------------------------------------ */

int nn_view(nn_tensor **out, const nn_tensor *t, const int64_t *shape, int ndim);
int nn_reshape(nn_tensor **out, const nn_tensor *t, const int64_t *shape, int ndim);
int nn_permute(nn_tensor **out, const nn_tensor *t, const int64_t *dims, int ndim);
int nn_transpose(nn_tensor **out, const nn_tensor *t, int d0, int d1);
int nn_contiguous(nn_tensor **out, const nn_tensor *t);
int nn_narrow(nn_tensor **out, const nn_tensor *t, int dim, int64_t start, int64_t length);
int nn_slice(nn_tensor **out, const nn_tensor *t, int dim, int64_t start, int64_t end, int64_t step);
int nn_select(nn_tensor **out, const nn_tensor *t, int dim, int64_t index);
int nn_index_select(nn_tensor **out, const nn_tensor *t, int dim, const nn_tensor *index);
int nn_cat(nn_tensor **out, nn_tensor *const *ts, int n, int dim);
int nn_stack(nn_tensor **out, nn_tensor *const *ts, int n, int dim);
int nn_expand(nn_tensor **out, const nn_tensor *t, const int64_t *shape, int ndim);
int nn_flip(nn_tensor **out, const nn_tensor *t, const int64_t *dims, int ndim);
int nn_unsqueeze(nn_tensor **out, const nn_tensor *t, int dim);
int nn_squeeze(nn_tensor **out, const nn_tensor *t, int dim);
int nn_flatten(nn_tensor **out, const nn_tensor *t, int start_dim, int end_dim);
int nn_repeat(nn_tensor **out, const nn_tensor *t, const int64_t *repeats, int ndim);

/* ---- element-wise ----------------------------------------------------------- */

typedef enum {
    NN_ADD, NN_SUB, NN_MUL, NN_DIV, NN_POW, NN_MAXIMUM, NN_MINIMUM, NN_ATAN2
} nn_binary_op;
typedef enum {
    NN_NEG, NN_ABS, NN_SQRT, NN_RSQRT, NN_EXP, NN_LOG, NN_SQUARE, NN_RELU, NN_SIGMOID,
    NN_TANH, NN_FLOOR, NN_CEIL, NN_ROUND, NN_SIN, NN_COS, NN_SIGN, NN_RECIPROCAL, NN_ISNAN
} nn_unary_op;
typedef enum { NN_EQ, NN_NE, NN_LT, NN_LE, NN_GT, NN_GE } nn_compare_op;

/* Broadcasting a op b. */
int nn_binary(nn_tensor **out, nn_binary_op op, const nn_tensor *a, const nn_tensor *b);
/* a op s (NN_SUB with s_first: s - a; NN_DIV with s_first: s / a). */
int nn_binary_scalar(nn_tensor **out, nn_binary_op op, const nn_tensor *a, double s, int s_first);
int nn_unary(nn_tensor **out, nn_unary_op op, const nn_tensor *a);
int nn_add(nn_tensor **out, const nn_tensor *a, const nn_tensor *b);
int nn_sub(nn_tensor **out, const nn_tensor *a, const nn_tensor *b);
int nn_mul(nn_tensor **out, const nn_tensor *a, const nn_tensor *b);
int nn_div(nn_tensor **out, const nn_tensor *a, const nn_tensor *b);
int nn_add_scalar(nn_tensor **out, const nn_tensor *a, double s);
int nn_mul_scalar(nn_tensor **out, const nn_tensor *a, double s);
/* a + alpha * b */
int nn_axpy(nn_tensor **out, const nn_tensor *a, double alpha, const nn_tensor *b);
/* Clamp to [lo, hi]; pass NAN for an open side. */
int nn_clamp(nn_tensor **out, const nn_tensor *a, double lo, double hi);
int nn_where(nn_tensor **out, const nn_tensor *cond, const nn_tensor *a, const nn_tensor *b);
int nn_compare(nn_tensor **out, nn_compare_op op, const nn_tensor *a, const nn_tensor *b);
int nn_compare_scalar(nn_tensor **out, nn_compare_op op, const nn_tensor *a, double s);
int nn_leaky_relu(nn_tensor **out, const nn_tensor *a, double slope);
int nn_softmax(nn_tensor **out, const nn_tensor *a, int dim);
int nn_log_softmax(nn_tensor **out, const nn_tensor *a, int dim);

/* ---- reductions ------------------------------------------------------------- */

/* Over dims[0..ndims) (ndims == 0: all elements, result is 0-d). */
int nn_sum(nn_tensor **out, const nn_tensor *t, const int64_t *dims, int ndims, int keepdim);
int nn_mean(nn_tensor **out, const nn_tensor *t, const int64_t *dims, int ndims, int keepdim);
/* Max over one dim: values and/or indices (either out may be NULL). */
int nn_max_dim(nn_tensor **values, nn_tensor **indices, const nn_tensor *t, int dim, int keepdim);
int nn_min_dim(nn_tensor **values, nn_tensor **indices, const nn_tensor *t, int dim, int keepdim);
int nn_max_all(nn_tensor **out, const nn_tensor *t);
int nn_argmax(nn_tensor **out, const nn_tensor *t, int dim, int keepdim);
int nn_topk(nn_tensor **values, nn_tensor **indices, const nn_tensor *t, int64_t k, int dim,
            int largest);
int nn_median_all(nn_tensor **out, const nn_tensor *t);

/* ---- linear algebra ---------------------------------------------------------- */

int nn_matmul(nn_tensor **out, const nn_tensor *a, const nn_tensor *b);
int nn_bmm(nn_tensor **out, const nn_tensor *a, const nn_tensor *b);
/* Solves A X = B for batches of square A (e.g. the 8x8 DLT of 4 points). */
int nn_linalg_solve(nn_tensor **out, const nn_tensor *A, const nn_tensor *B);
int nn_inverse(nn_tensor **out, const nn_tensor *A);

/* ---- neural-network ops (NCHW) --------------------------------------------------- */

int nn_conv2d(nn_tensor **out, const nn_tensor *x, const nn_tensor *w, const nn_tensor *b,
              int stride, int padding, int dilation, int groups);
int nn_conv_transpose2d(nn_tensor **out, const nn_tensor *x, const nn_tensor *w,
                        const nn_tensor *b, int stride, int padding, int output_padding,
                        int groups, int dilation);
int nn_linear(nn_tensor **out, const nn_tensor *x, const nn_tensor *w, const nn_tensor *b);
/* training: batch statistics, running stats updated in place with momentum;
 * otherwise the running stats are used. weight/bias may be NULL. */
int nn_batch_norm(nn_tensor **out, const nn_tensor *x, const nn_tensor *weight,
                  const nn_tensor *bias, nn_tensor *running_mean, nn_tensor *running_var,
                  int training, double momentum, double eps);
int nn_group_norm(nn_tensor **out, const nn_tensor *x, int groups, const nn_tensor *weight,
                  const nn_tensor *bias, double eps);
int nn_max_pool2d(nn_tensor **out, const nn_tensor *x, int kernel, int stride, int padding);
int nn_avg_pool2d(nn_tensor **out, const nn_tensor *x, int kernel, int stride, int padding);
int nn_adaptive_avg_pool2d(nn_tensor **out, const nn_tensor *x, int64_t oh, int64_t ow);

typedef enum { NN_BILINEAR = 0, NN_NEAREST = 1, NN_AREA = 2 } nn_interp_mode;
int nn_interpolate(nn_tensor **out, const nn_tensor *x, int64_t oh, int64_t ow,
                   nn_interp_mode mode, int align_corners);

typedef enum { NN_PAD_ZEROS = 0, NN_PAD_BORDER = 1, NN_PAD_REFLECTION = 2 } nn_grid_padding;
/* grid (N, Ho, Wo, 2) in [-1, 1] normalised coordinates, x first. */
int nn_grid_sample(nn_tensor **out, const nn_tensor *x, const nn_tensor *grid,
                   nn_interp_mode mode, nn_grid_padding padding, int align_corners);

typedef enum { NN_PAD_CONSTANT = 0, NN_PAD_REPLICATE = 1, NN_PAD_REFLECT = 2 } nn_pad_mode;
/* Pads the last two dims: left, right, top, bottom. */
int nn_pad2d(nn_tensor **out, const nn_tensor *x, int left, int right, int top, int bottom,
             nn_pad_mode mode, double value);
int nn_dropout(nn_tensor **out, const nn_tensor *x, double p, int training);
/* Mean cross entropy of logits (N, C) against int64 targets (N). */
int nn_cross_entropy(nn_tensor **out, const nn_tensor *logits, const nn_tensor *targets,
                     double label_smoothing);

/* ---- autograd --------------------------------------------------------------- */

int nn_backward(const nn_tensor *loss);
/* *out = NULL (rc 0) when t has no gradient yet. */
int nn_grad(nn_tensor **out, const nn_tensor *t);
int nn_zero_grad(nn_tensor *t);
int nn_detach(nn_tensor **out, const nn_tensor *t);
int nn_set_requires_grad(nn_tensor *t, int requires_grad);
int nn_requires_grad(const nn_tensor *t);
/* Enables/disables gradient recording on this thread; returns the previous mode. */
int nn_grad_mode_set(int enabled);

/* ---- conversion and in-place --------------------------------------------------- */

int nn_to_dtype(nn_tensor **out, const nn_tensor *t, nn_dtype dt);
int nn_to_device(nn_tensor **out, const nn_tensor *t, nn_device d);
int nn_copy_(nn_tensor *dst, const nn_tensor *src);   /* dst[...] = src (no grad) */
int nn_fill_(nn_tensor *t, double v);
int nn_normal_(nn_tensor *t, double mean, double std);
int nn_uniform_(nn_tensor *t, double lo, double hi);
int nn_add_(nn_tensor *t, const nn_tensor *other, double alpha); /* t += alpha * other (no grad) */
int nn_mul_scalar_(nn_tensor *t, double s);
/* True (1) when every element of a and b (same shape) is equal, bit for bit. */
int nn_equal(const nn_tensor *a, const nn_tensor *b);
/* max |a - b|, as double. */
int nn_max_abs_diff(const nn_tensor *a, const nn_tensor *b, double *out);

/* ---- parameter table ----------------------------------------------------------- */

/* Named parameters and buffers of a model, in registration order. Names are
 * dotted paths ("enc1.conv.weight"). The table owns its tensors. */
typedef struct {
    int n, cap;
    char **names;
    nn_tensor **tensors;
    unsigned char *is_buffer;   /* 1: running stat etc., not trained */
    unsigned char *no_decay;    /* 1: excluded from weight decay (biases, norms) */
} nn_params;

void nn_params_init(nn_params *p);
void nn_params_free(nn_params *p);
/* Takes ownership of t (also on failure). Names must be unique. */
int nn_params_add(nn_params *p, const char *name, nn_tensor *t, int is_buffer, int no_decay);
nn_tensor *nn_params_find(const nn_params *p, const char *name);
int64_t nn_params_count(const nn_params *p); /* trainable elements */
int nn_params_to_device(nn_params *p, nn_device d);
int nn_params_zero_grad(nn_params *p);
/* Copies every value of src into dst (same names and shapes required). */
int nn_params_copy(nn_params *dst, const nn_params *src);

typedef enum {
    NN_INIT_ZEROS, NN_INIT_ONES, NN_INIT_KAIMING_NORMAL, /* fan_out, relu (torchvision ResNet) */
    NN_INIT_KAIMING_UNIFORM,                             /* torch's default for conv/linear */
    NN_INIT_XAVIER_UNIFORM, NN_INIT_NORMAL_SMALL          /* N(0, 0.01) */
} nn_init;
/* Creates a parameter of the given shape and init and adds it to p. */
int nn_params_new(nn_params *p, nn_tensor **out, const char *name, const int64_t *shape,
                  int ndim, nn_init init, int no_decay);

/* ---- layers (C on top of the ops) ------------------------------------------------ */

typedef enum { NN_NORM_NONE = 0, NN_NORM_BATCH, NN_NORM_GROUP } nn_norm;
typedef enum { NN_ACT_NONE = 0, NN_ACT_RELU, NN_ACT_LEAKY, NN_ACT_SIGMOID, NN_ACT_TANH } nn_act;

/* conv -> norm -> activation. Borrowed pointers into an nn_params table. */
typedef struct {
    nn_tensor *w;        /* (cout, cin/groups, k, k) */
    nn_tensor *b;        /* (cout), NULL when a norm follows */
    nn_tensor *nw, *nb;  /* norm affine (cout) */
    nn_tensor *rm, *rv;  /* batch-norm running mean / var (cout), buffers */
    nn_tensor *nbt;      /* batch-norm num_batches_tracked (int64 scalar), buffer */
    int cin, cout, k, stride, pad, dilation, groups;
    nn_norm norm;
    nn_act act;
    int norm_groups;
} nn_conv;

int nn_conv_init(nn_conv *c, nn_params *p, const char *prefix, int cin, int cout, int k,
                 int stride, int pad, nn_norm norm, nn_act act);
int nn_conv_forward(nn_tensor **out, const nn_conv *c, const nn_tensor *x, int training);

typedef struct {
    nn_tensor *w;        /* (out, in) */
    nn_tensor *b;        /* (out) */
    int in, out;
} nn_dense;

int nn_dense_init(nn_dense *d, nn_params *p, const char *prefix, int in, int out);
int nn_dense_forward(nn_tensor **out, const nn_dense *d, const nn_tensor *x);

/* ---- optimizers (torch::optim) ----------------------------------------------------- */

typedef enum { NN_OPT_SGD = 0, NN_OPT_ADAM, NN_OPT_ADAMW } nn_opt_kind;

typedef struct {
    nn_opt_kind kind;
    double lr;
    double momentum;        /* SGD */
    int nesterov;           /* SGD */
    double beta1, beta2, eps; /* Adam/AdamW */
    double weight_decay;    /* applied to parameters without no_decay */
} nn_opt_config;

nn_opt_config nn_opt_config_default(nn_opt_kind kind);
int nn_opt_config_validate(const nn_opt_config *c);

/* Optimizes the trainable (non-buffer) tensors of p, which must outlive it. */
int nn_optimizer_new(nn_optimizer **out, nn_params *p, const nn_opt_config *c);
void nn_optimizer_free(nn_optimizer **o);
int nn_optimizer_zero_grad(nn_optimizer *o);
int nn_optimizer_step(nn_optimizer *o);
int nn_optimizer_set_lr(nn_optimizer *o, double lr);
/* Optimizer state as named tensors ("<param name>.<state>", e.g.
 * "enc1.weight.momentum_buffer", "…exp_avg", "…step") for checkpoints. The
 * table receives copies. */
int nn_optimizer_state_export(const nn_optimizer *o, nn_params *state);
int nn_optimizer_state_import(nn_optimizer *o, const nn_params *state);

/* Rescales gradients so their global L2 norm is at most max_norm; *norm gets
 * the norm before clipping. */
int nn_clip_grad_norm(nn_params *p, double max_norm, double *norm);

/* ---- learning-rate schedules (pure C) ------------------------------------------------ */

typedef enum { NN_LR_CONSTANT = 0, NN_LR_STEP, NN_LR_COSINE } nn_lr_kind;
typedef struct {
    nn_lr_kind kind;
    double base_lr;
    long warmup_steps;   /* linear warm-up from warmup_start * base_lr */
    double warmup_start;
    long total_steps;    /* cosine: reaches min_lr here */
    double min_lr;
    long step_size;      /* step: multiply by gamma every step_size steps (after warm-up) */
    double gamma;
} nn_lr_schedule;
nn_lr_schedule nn_lr_schedule_default(void);
double nn_lr_at(const nn_lr_schedule *s, long step);

/* ---- checkpoints (HDF5; readable with h5py) ------------------------------------------ */

/* File layout (see README "Checkpoints"):
 *   /            attrs: magic = "glocal-checkpoint", format_version = 1,
 *                       glocal_version, step (int64), config (JSON text)
 *   /params/<name>      every parameter (trainable) at full precision
 *   /buffers/<name>     running statistics and other buffers
 *   /optimizer/<name>   optimizer state (optional), attrs: kind
 * Names keep their dots: one dataset per tensor, directly under the group. */
typedef struct {
    int64_t step;
    const char *config_json;   /* may be NULL */
    const nn_params *optimizer_state; /* may be NULL */
    const char *optimizer_kind; /* may be NULL */
} nn_checkpoint_meta;

/* Writes atomically (temp file + rename). */
int nn_checkpoint_save(const char *path, const nn_params *p, const nn_checkpoint_meta *meta);
/* Loads into p (names and shapes must match exactly; otherwise GL_EFORMAT and
 * a message listing the differences). If step/config/opt_state are non-NULL
 * they receive the stored values (*config is gl_malloc'ed; opt_state is
 * filled from /optimizer). */
int nn_checkpoint_load(const char *path, nn_params *p, int64_t *step, char **config,
                       nn_params *opt_state);
/* The root `config` attribute (JSON text) alone, in *config (gl_malloc'ed):
 * what a model's loader reads first to build a model of the right shape.
 * GL_EIO when PATH cannot be read, GL_EFORMAT when it is not HDF5 or the
 * attribute is not text, GL_ENOTFOUND when the file has no config. */
int nn_checkpoint_read_config(const char *path, char **config);
/* Tensors by name from a file in the layout above, for loaders that adapt
 * what they read (pretrained weights of another shape): names[i] is
 * "GROUP/NAME" ("params/conv1.weight", "buffers/bn1.running_mean"), and out[i]
 * receives a new CPU tensor of the stored dtype, or NULL when the file has
 * no such dataset. Neither magic nor dtype attributes are required: a file
 * h5py wrote from a PyTorch state_dict reads too (float datasets as float32,
 * integer ones as int64). On failure every out[i] is NULL. */
int nn_checkpoint_read_tensors(const char *path, const char *const *names, int n, nn_tensor **out);

/* ---- distributed data-parallel (c10d) ------------------------------------------------ */

/*
 * Data-parallel training on libtorch's own distributed engine, c10d (the one
 * PyTorch's DistributedDataParallel uses): a TCPStore rendezvous hosted by
 * rank 0, then a ProcessGroupGloo on CPU, or a ProcessGroupNCCL when glocal is
 * built against a CUDA libtorch with USE_C10D_NCCL defined and the device is
 * cuda (each rank then uses GPU LOCAL_RANK).
 *
 * Launch. nn_dist_init_from_env() reads torchrun's variables (RANK,
 * WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) or, when RANK is unset,
 * Slurm's (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID; the batch script
 * exports MASTER_ADDR and MASTER_PORT). With neither, the world is one rank:
 * no socket is opened and every collective returns at once, so a training
 * loop makes the same calls with and without distribution. A NULL nn_dist
 * behaves the same way. `glocal launch -n N -- glocal ...` sets torchrun's
 * variables for N processes on this machine.
 *
 * A training loop (each call returns int, checked as usual):
 *     nn_dist *d = NULL;
 *     nn_dist_options o = nn_dist_options_default();
 *     nn_dist_init_from_env(&d, &o);
 *     nn_dist_broadcast_params(d, &params);          all ranks start from rank 0's values
 *     per epoch: nn_dist_shard(d, n_items, epoch, seed, 1, idx, &n_mine);
 *     per step:  forward on this rank's batch (loss = mean over it), nn_backward,
 *                nn_dist_allreduce_grads(d, &params), nn_optimizer_step
 *     logs and checkpoints only where nn_dist_rank(d) == 0
 *     nn_dist_free(&d);
 *
 * Gradients. nn_dist_allreduce_grads() averages the gradients of the
 * trainable (non-buffer) tensors of a table across ranks: it flattens them
 * into buckets of about options.bucket_mb MiB (one dtype per bucket), runs one
 * all-reduce (sum) per bucket and divides by the world size. With equal
 * per-rank batches and per-rank mean losses this is the gradient of the mean
 * loss over the combined batch, so every rank takes the same optimizer step as
 * one process on the whole batch would (up to float summation order). A
 * trainable tensor with no gradient on this rank (unused this step) takes part
 * with zeros, so all ranks always send the same layout, and gets the average
 * over all ranks when another rank used it. One that no rank used leaves
 * without a gradient, as under DDP and as in one process, so an optimizer
 * skips it (Adam does not count the step for it): a per-tensor "had a
 * gradient" flag is summed in the same all-reduce, at the end of the smallest
 * bucket. Unlike DDP the reduction runs after backward, not overlapped with it.
 *
 * Batch norm: per-rank statistics, DDP's default (no SyncBatchNorm). In
 * training each rank normalises with its own batch's mean and variance, so a
 * model with batch norm is NOT bit-comparable with one-rank training on the
 * combined batch; running statistics accumulate per rank and rank 0's are the
 * ones it saves. nn_dist_broadcast_params() (buffers included) gives every
 * rank rank 0's running statistics, e.g. before a distributed evaluation.
 *
 * Failure. Every collective waits at most options.timeout_s, joining at
 * most options.rendezvous_timeout_s. A rank that exits closes its sockets and makes the
 * others' next collective fail at once; a rank that stalls makes them fail
 * after the timeout. Either way the call returns GL_ESYSTEM with a message
 * naming the operation, this rank, the world size and the timeout, and the
 * group refuses every later collective: free it and exit non-zero.
 *
 * Threads: one nn_dist per process, used from one thread at a time.
 */
typedef struct nn_dist nn_dist;

typedef enum { NN_DIST_AUTO = 0, NN_DIST_GLOO, NN_DIST_NCCL } nn_dist_backend;
typedef enum { NN_DIST_SUM = 0, NN_DIST_MEAN, NN_DIST_MIN, NN_DIST_MAX } nn_dist_reduce;

typedef struct {
    nn_dist_backend backend; /* AUTO: NCCL for device cuda when built with it, else Gloo */
    double timeout_s;        /* each collective, seconds (default 300) */
    double rendezvous_timeout_s; /* how long joining waits for the other ranks, seconds;
                              * 0: timeout_s. (libtorch 1.13's TCPStore client gives up
                              * connecting after about half of it.) */
    double bucket_mb;        /* gradient bucket size, MiB (default 25, DDP's) */
    const char *ifname;      /* Gloo network interface; NULL: $GLOO_SOCKET_IFNAME, else
                              * loopback when MASTER_ADDR is local, else this host's name */
} nn_dist_options;

nn_dist_options nn_dist_options_default(void);
int nn_dist_options_validate(const nn_dist_options *o);

/* What the environment says about this process's place in the job. */
typedef struct {
    int rank, world_size, local_rank;
    char master_addr[256];   /* "" when world_size == 1 */
    int master_port;         /* MASTER_PORT; 29500 (torchrun's default) when unset */
    const char *source;      /* "torchrun", "slurm" or "none" (static string) */
} nn_dist_env;

/* Reads RANK/WORLD_SIZE/LOCAL_RANK or SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID
 * plus MASTER_ADDR/MASTER_PORT. No libtorch. GL_EINVAL naming the variable
 * when one is malformed, inconsistent (RANK >= WORLD_SIZE) or missing
 * (RANK without WORLD_SIZE, world > 1 without MASTER_ADDR). */
int nn_dist_env_read(nn_dist_env *e);

/* Joins the job described by the environment (nn_dist_env_read). o may be
 * NULL (defaults). */
int nn_dist_init_from_env(nn_dist **out, const nn_dist_options *o);
/* Joins explicitly: rank in [0, world_size); rank 0 hosts the TCPStore on
 * master_port (which must be free there); the others connect to
 * master_addr:master_port, retrying until the timeout. world_size 1 needs
 * no address. */
int nn_dist_init(nn_dist **out, int rank, int world_size, int local_rank, const char *master_addr,
                 int master_port, const nn_dist_options *o);
/* Leaves the group (no collective: a dead peer cannot block it). Accepts NULL. */
void nn_dist_free(nn_dist **d);

int nn_dist_rank(const nn_dist *d);        /* 0 for NULL */
int nn_dist_world_size(const nn_dist *d);  /* 1 for NULL */
int nn_dist_local_rank(const nn_dist *d);  /* 0 for NULL */
/* "gloo", "nccl" or "none" (world size 1). */
const char *nn_dist_backend_name(const nn_dist *d);

int nn_dist_barrier(nn_dist *d);
/* Every tensor of p (parameters and buffers) takes rank 0's value. First
 * checks that all ranks hold the same names, shapes and dtypes (GL_EINVAL
 * otherwise, on every rank). */
int nn_dist_broadcast_params(nn_dist *d, nn_params *p);
/* Averages the gradients of p's trainable tensors over all ranks (see above). */
int nn_dist_allreduce_grads(nn_dist *d, nn_params *p);
/* Reduces n doubles element-wise over all ranks, in place (metrics: loss
 * sums, counts, ...). */
int nn_dist_allreduce_values(nn_dist *d, double *values, int n, nn_dist_reduce op);

/* Data partition, like torch's DistributedSampler. The epoch's order is a
 * permutation of [0, n_items) that depends only on (seed, epoch) (identity
 * when shuffle is 0), padded by wrapping around to a multiple of the world
 * size so that every rank gets the same count and so runs the same number of
 * collectives; rank r takes positions r, r + W, r + 2W, ... Writes
 * nn_dist_shard_count(d, n_items) indices to idx and that count to *count. */
long nn_dist_shard_count(const nn_dist *d, long n_items);
int nn_dist_shard(const nn_dist *d, long n_items, uint64_t epoch, uint64_t seed, int shuffle,
                  long *idx, long *count);
/* Disjoint contiguous shards without padding (extraction: every item once):
 * this rank's items are [*begin, *end); sizes differ by at most one. */
int nn_dist_shard_range(const nn_dist *d, long n_items, long *begin, long *end);
/* The permutation nn_dist_shard uses: perm[0..n) (SplitMix64 + Fisher-Yates). */
int nn_dist_permutation(long n, uint64_t epoch, uint64_t seed, long *perm);

#ifdef __cplusplus
}
#endif
#endif
