/* layers.c — conv + norm + activation and dense layers on top of the ops. */
#include <stdio.h>
#include <string.h>

#include "nn/nn.h"

static int add_buffer(nn_params *p, nn_tensor **out, const char *name, const int64_t *shape,
                      int ndim, double value, nn_dtype dt)
{
    nn_tensor *t = NULL;
    int rc = nn_full(&t, shape, ndim, value, dt);
    if (rc < 0) return rc;
    *out = t;
    rc = nn_params_add(p, name, t, 1, 1);
    if (rc < 0) *out = NULL;
    return rc;
}

int nn_conv_init(nn_conv *c, nn_params *p, const char *prefix, int cin, int cout, int k,
                 int stride, int pad, nn_norm norm, nn_act act)
{
    memset(c, 0, sizeof *c);
    if (cin <= 0 || cout <= 0 || k <= 0 || stride <= 0 || pad < 0)
        return gl_error(GL_EINVAL, "%s: bad conv shape (cin %d, cout %d, k %d, stride %d, pad %d)",
                        prefix, cin, cout, k, stride, pad);
    c->cin = cin; c->cout = cout; c->k = k; c->stride = stride; c->pad = pad;
    c->dilation = 1; c->groups = 1; c->norm = norm; c->act = act;
    c->norm_groups = cout % 8 == 0 ? 8 : (cout % 4 == 0 ? 4 : 1);
    char name[256];
    int64_t wshape[4] = { cout, cin, k, k }, cshape[1] = { cout };
    int rc;
    snprintf(name, sizeof name, "%s.weight", prefix);
    if ((rc = nn_params_new(p, &c->w, name, wshape, 4, NN_INIT_KAIMING_NORMAL, 0)) < 0) return rc;
    if (norm == NN_NORM_NONE) {
        snprintf(name, sizeof name, "%s.bias", prefix);
        return nn_params_new(p, &c->b, name, cshape, 1, NN_INIT_ZEROS, 1);
    }
    snprintf(name, sizeof name, "%s.norm.weight", prefix);
    if ((rc = nn_params_new(p, &c->nw, name, cshape, 1, NN_INIT_ONES, 1)) < 0) return rc;
    snprintf(name, sizeof name, "%s.norm.bias", prefix);
    if ((rc = nn_params_new(p, &c->nb, name, cshape, 1, NN_INIT_ZEROS, 1)) < 0) return rc;
    if (norm == NN_NORM_BATCH) {
        snprintf(name, sizeof name, "%s.norm.running_mean", prefix);
        if ((rc = add_buffer(p, &c->rm, name, cshape, 1, 0.0, NN_F32)) < 0) return rc;
        snprintf(name, sizeof name, "%s.norm.running_var", prefix);
        if ((rc = add_buffer(p, &c->rv, name, cshape, 1, 1.0, NN_F32)) < 0) return rc;
        snprintf(name, sizeof name, "%s.norm.num_batches_tracked", prefix);
        if ((rc = add_buffer(p, &c->nbt, name, NULL, 0, 0.0, NN_I64)) < 0) return rc;
    }
    return 0;
}

static int activate(nn_tensor **out, nn_act act, const nn_tensor *x)
{
    switch (act) {
    case NN_ACT_RELU: return nn_unary(out, NN_RELU, x);
    case NN_ACT_LEAKY: return nn_leaky_relu(out, x, 0.1);
    case NN_ACT_SIGMOID: return nn_unary(out, NN_SIGMOID, x);
    case NN_ACT_TANH: return nn_unary(out, NN_TANH, x);
    case NN_ACT_NONE: return nn_shallow_copy(out, x);
    }
    return gl_error(GL_EINVAL, "unknown activation %d", (int)act);
}

int nn_conv_forward(nn_tensor **out, const nn_conv *c, const nn_tensor *x, int training)
{
    nn_tensor *y = NULL, *z = NULL;
    *out = NULL;
    int rc = nn_conv2d(&y, x, c->w, c->b, c->stride, c->pad, c->dilation, c->groups);
    if (rc < 0) goto fail;
    if (c->norm == NN_NORM_BATCH) {
        rc = nn_batch_norm(&z, y, c->nw, c->nb, c->rm, c->rv, training, 0.1, 1e-5);
        if (rc < 0) goto fail;
        if (training && c->nbt) {
            /* num_batches_tracked, kept as torch.nn.BatchNorm2d keeps it. */
            nn_tensor *one = NULL;
            if ((rc = nn_ones_like(&one, c->nbt)) < 0) goto fail;
            rc = nn_add_(c->nbt, one, 1.0);
            nn_free(&one);
            if (rc < 0) goto fail;
        }
        nn_free(&y);
        y = z;
        z = NULL;
    } else if (c->norm == NN_NORM_GROUP) {
        if ((rc = nn_group_norm(&z, y, c->norm_groups, c->nw, c->nb, 1e-5)) < 0) goto fail;
        nn_free(&y);
        y = z;
        z = NULL;
    }
    rc = activate(out, c->act, y);
fail:
    nn_free(&y);
    nn_free(&z);
    return rc;
}

int nn_dense_init(nn_dense *d, nn_params *p, const char *prefix, int in, int out)
{
    memset(d, 0, sizeof *d);
    if (in <= 0 || out <= 0) return gl_error(GL_EINVAL, "%s: bad dense shape %d -> %d", prefix, in, out);
    d->in = in;
    d->out = out;
    char name[256];
    int64_t ws[2] = { out, in }, bs[1] = { out };
    int rc;
    snprintf(name, sizeof name, "%s.weight", prefix);
    if ((rc = nn_params_new(p, &d->w, name, ws, 2, NN_INIT_KAIMING_UNIFORM, 0)) < 0) return rc;
    snprintf(name, sizeof name, "%s.bias", prefix);
    return nn_params_new(p, &d->b, name, bs, 1, NN_INIT_ZEROS, 1);
}

int nn_dense_forward(nn_tensor **out, const nn_dense *d, const nn_tensor *x)
{
    return nn_linear(out, x, d->w, d->b);
}
