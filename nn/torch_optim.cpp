// torch_optim.cpp — libtorch behind nn.h, part 3: autograd (backward,
// gradients, grad mode) and the optimizers (torch::optim SGD, Adam, AdamW
// with per-group weight decay), their state as named tensors for
// checkpoints, and gradient clipping.

#include "nn/torch_internal.hpp"

#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

using namespace nn_torch;

extern "C" {

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

// Calls f(parameter, its name in the table) for every tensor the optimizer
// updates, group by group (the order of the state's keys).
template <class F> void for_each_param(const nn_optimizer *o, F &&f)
{
    auto &groups = o->opt->param_groups();
    for (size_t gi = 0; gi < groups.size(); gi++)
        for (size_t k = 0; k < groups[gi].params().size(); k++)
            f(groups[gi].params()[k], std::string(o->params->names[o->group_index[gi][k]]));
}

// Adam's and AdamW's per-parameter states: the same fields in two types.
template <class S, class Add> void export_adam(S &s, Add &add)
{
    add("step", at::scalar_tensor((int64_t)s.step(), at::kLong));
    add("exp_avg", s.exp_avg());
    add("exp_avg_sq", s.exp_avg_sq());
    add("max_exp_avg_sq", s.max_exp_avg_sq());
}

template <class S>
std::unique_ptr<S> import_adam(const at::Tensor &step, const at::Tensor &m, const at::Tensor &v,
                               const at::Tensor &vmax)
{
    auto s = std::make_unique<S>();
    s->step(step.item<int64_t>());
    s->exp_avg(m);
    s->exp_avg_sq(v);
    if (vmax.defined()) s->max_exp_avg_sq(vmax);
    return s;
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
        for_each_param(o, [&](const at::Tensor &p, const std::string &base) {
            auto it = st.find(state_key<Map>(p));
            if (it == st.end()) return;
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
            case NN_OPT_ADAM:
                export_adam(static_cast<torch::optim::AdamParamState &>(*it->second), add);
                break;
            case NN_OPT_ADAMW:
                export_adam(static_cast<torch::optim::AdamWParamState &>(*it->second), add);
                break;
            }
        });
    )
}

int nn_optimizer_state_import(nn_optimizer *o, const nn_params *state)
{
    NEED(o); NEED(state);
    NN_TRY(
        auto &st = o->opt->state();
        using Map = std::remove_reference_t<decltype(st)>;
        for_each_param(o, [&](const at::Tensor &p, const std::string &base) {
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
                if (o->cfg.kind == NN_OPT_ADAM)
                    st[state_key<Map>(p)] = import_adam<torch::optim::AdamParamState>(step, m, v, vmax);
                else
                    st[state_key<Map>(p)] = import_adam<torch::optim::AdamWParamState>(step, m, v, vmax);
                break;
            }
            }
        });
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
