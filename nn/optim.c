/* optim.c — optimizer configuration and learning-rate schedules (pure C;
 * the optimizers themselves are torch::optim, in torch_optim.cpp). */
#include <math.h>

#include "nn/nn.h"

nn_opt_config nn_opt_config_default(nn_opt_kind kind)
{
    nn_opt_config c = { .kind = kind, .lr = kind == NN_OPT_SGD ? 0.01 : 1e-3, .momentum = 0.9,
                        .nesterov = 0, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                        .weight_decay = kind == NN_OPT_ADAMW ? 0.01 : 0.0 };
    return c;
}

int nn_opt_config_validate(const nn_opt_config *c)
{
    if (c->kind != NN_OPT_SGD && c->kind != NN_OPT_ADAM && c->kind != NN_OPT_ADAMW)
        return gl_error(GL_EINVAL, "optimizer: unknown kind %d", (int)c->kind);
    if (!(c->lr > 0) || !isfinite(c->lr)) return gl_error(GL_EINVAL, "optimizer: lr must be > 0, got %g", c->lr);
    if (!(c->momentum >= 0 && c->momentum < 1))
        return gl_error(GL_EINVAL, "optimizer: momentum must be in [0, 1), got %g", c->momentum);
    if (c->nesterov && c->kind == NN_OPT_SGD && c->momentum <= 0)
        return gl_error(GL_EINVAL, "optimizer: nesterov needs momentum > 0");
    if (!(c->beta1 >= 0 && c->beta1 < 1) || !(c->beta2 >= 0 && c->beta2 < 1))
        return gl_error(GL_EINVAL, "optimizer: betas must be in [0, 1), got %g, %g", c->beta1, c->beta2);
    if (!(c->eps > 0)) return gl_error(GL_EINVAL, "optimizer: eps must be > 0, got %g", c->eps);
    if (!(c->weight_decay >= 0))
        return gl_error(GL_EINVAL, "optimizer: weight_decay must be >= 0, got %g", c->weight_decay);
    return 0;
}

nn_lr_schedule nn_lr_schedule_default(void)
{
    nn_lr_schedule s = { .kind = NN_LR_CONSTANT, .base_lr = 1e-3, .warmup_steps = 0,
                         .warmup_start = 0.0, .total_steps = 0, .min_lr = 0.0,
                         .step_size = 1000, .gamma = 0.1 };
    return s;
}

double nn_lr_at(const nn_lr_schedule *s, long step)
{
    if (step < 0) step = 0;
    if (step < s->warmup_steps) {
        double f = (double)step / (double)s->warmup_steps;
        return s->base_lr * (s->warmup_start + (1.0 - s->warmup_start) * f);
    }
    long t = step - s->warmup_steps;
    switch (s->kind) {
    case NN_LR_STEP:
        return s->step_size > 0 ? s->base_lr * pow(s->gamma, (double)(t / s->step_size)) : s->base_lr;
    case NN_LR_COSINE: {
        long span = s->total_steps - s->warmup_steps;
        if (span <= 0) return s->min_lr;
        double f = t >= span ? 1.0 : (double)t / (double)span;
        return s->min_lr + 0.5 * (s->base_lr - s->min_lr) * (1.0 + cos(M_PI * f));
    }
    case NN_LR_CONSTANT:
    default:
        return s->base_lr;
    }
}
