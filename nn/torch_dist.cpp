// torch_dist.cpp — libtorch behind nn.h, part 4: distributed data-parallel
// over c10d. The only file that includes c10d's headers and the only one
// compiled with USE_C10D_NCCL (nn/CMakeLists.txt), so a change to the NCCL
// set-up recompiles nothing else.

#include "nn/torch_internal.hpp"

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

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
// macro, which nn/CMakeLists.txt defines for this file alone when libtorch
// has CUDA (or a CUDA build defines by hand: -DUSE_C10D_NCCL).
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

// Which parameters had a gradient: one flag per trainable tensor (1 where
// this rank's gradient is defined), in the dtype of the bucket they ride in.
// They are summed with the gradients, so a flag > 0 afterwards means some
// rank had a gradient (a positive sum stays positive in any float type).
// The smallest bucket carries them: no extra collective per step, and no
// copy of a large single-tensor bucket that would otherwise reduce in place.
size_t dist_flag_bucket(const std::vector<std::vector<at::Tensor>> &buckets)
{
    size_t best = 0, best_bytes = SIZE_MAX;
    for (size_t k = 0; k < buckets.size(); k++) {
        size_t bytes = 0;
        for (const at::Tensor &t : buckets[k]) bytes += (size_t)t.numel() * t.element_size();
        if (bytes <= best_bytes) best = k, best_bytes = bytes;
    }
    return best;
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
    bool want_nccl = o->backend == NN_DIST_NCCL || (o->backend == NN_DIST_AUTO && nn_default_device() == NN_CUDA);
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
            } catch (const std::exception &e) {
                const c10::Error *ce = dynamic_cast<const c10::Error *>(&e); // libtorch's text without its backtrace
                std::string msg = ce ? ce->what_without_backtrace() : e.what();
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
        std::vector<at::Tensor *> owner; // the parameter of each gradient in gs
        std::vector<float> had;
        for (int i = 0; i < p->n; i++) {
            if (p->is_buffer[i]) continue;
            at::Tensor &t = p->tensors[i]->t;
            had.push_back(t.grad().defined() ? 1.0f : 0.0f);
            // Unused on this rank: take part with zeros so every rank sends the
            // same layout (DDP's find_unused_parameters does the same).
            if (!t.grad().defined()) t.mutable_grad() = at::zeros_like(t);
            gs.push_back(t.grad());
            owner.push_back(&t);
        }
        if (gs.empty()) return 0;
        auto buckets = dist_buckets(gs, d->bucket_bytes);
        const size_t fb = dist_flag_bucket(buckets);
        std::vector<at::Tensor> flats;
        std::vector<c10::intrusive_ptr<c10d::Work>> works;
        c10d::AllreduceOptions ao;
        ao.reduceOp = c10d::ReduceOp::SUM;
        ao.timeout = dist_ms(d->timeout_s);
        // All buckets are queued before the first wait: Gloo's worker threads
        // work on the next bucket while this thread waits on the first.
        int64_t flags_at = 0;
        for (size_t k = 0; k < buckets.size(); k++) {
            at::Tensor flat = dist_flatten(buckets[k]);
            if (k == fb) {
                at::Tensor f = at::tensor(had, at::kFloat).to(flat.device(), flat.scalar_type());
                flags_at = flat.numel();
                flat = at::cat({flat, f});
            }
            flats.push_back(flat);
            std::vector<at::Tensor> v{flats.back()};
            dist_on_pg(d, [&](auto &pg) { works.push_back(pg.allreduce(v, ao)); });
        }
        for (auto &w : works) dist_wait(d, w);
        at::Tensor any = flats[fb].narrow(0, flags_at, (int64_t)had.size()).to(at::kCPU, at::kFloat, false, true);
        for (size_t i = 0; i < buckets.size(); i++) {
            flats[i].div_((double)d->world);
            dist_unflatten(flats[i], buckets[i]);
        }
        // No rank had a gradient: none afterwards either, as one process and
        // DDP leave it, so an optimizer skips the tensor (Adam does not count
        // the step for it).
        const float *a = any.data_ptr<float>();
        for (size_t i = 0; i < owner.size(); i++)
            if (!(a[i] > 0)) owner[i]->mutable_grad() = at::Tensor();
    )
}

} // extern "C"
