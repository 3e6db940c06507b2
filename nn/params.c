/* params.c — the named parameter table and its initialisers. */
#include <math.h>
#include <string.h>

#include "nn/nn.h"

void nn_params_init(nn_params *p) { memset(p, 0, sizeof *p); }

void nn_params_free(nn_params *p)
{
    if (!p) return;
    for (int i = 0; i < p->n; i++) {
        gl_free(p->names[i]);
        nn_free(&p->tensors[i]);
    }
    gl_free(p->names);
    gl_free(p->tensors);
    gl_free(p->is_buffer);
    gl_free(p->no_decay);
    memset(p, 0, sizeof *p);
}

int nn_params_add(nn_params *p, const char *name, nn_tensor *t, int is_buffer, int no_decay)
{
    if (!p || !name || !t) {
        nn_free(&t);
        return gl_error(GL_EINVAL, "nn_params_add: NULL argument");
    }
    if (nn_params_find(p, name)) {
        nn_free(&t);
        return gl_error(GL_EINVAL, "parameter '%s' is registered twice", name);
    }
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 16;
        char **names = gl_realloc(p->names, (size_t)cap * sizeof *names);
        if (!names) goto oom;
        p->names = names;
        nn_tensor **ts = gl_realloc(p->tensors, (size_t)cap * sizeof *ts);
        if (!ts) goto oom;
        p->tensors = ts;
        unsigned char *b = gl_realloc(p->is_buffer, (size_t)cap);
        if (!b) goto oom;
        p->is_buffer = b;
        unsigned char *d = gl_realloc(p->no_decay, (size_t)cap);
        if (!d) goto oom;
        p->no_decay = d;
        p->cap = cap;
    }
    char *nm = gl_strdup(name);
    if (!nm) goto oom;
    p->names[p->n] = nm;
    p->tensors[p->n] = t;
    p->is_buffer[p->n] = (unsigned char)(is_buffer != 0);
    p->no_decay[p->n] = (unsigned char)(no_decay != 0);
    p->n++;
    return 0;
oom:
    nn_free(&t);
    return GL_ENOMEM;
}

nn_tensor *nn_params_find(const nn_params *p, const char *name)
{
    for (int i = 0; p && i < p->n; i++)
        if (strcmp(p->names[i], name) == 0) return p->tensors[i];
    return NULL;
}

int64_t nn_params_count(const nn_params *p)
{
    int64_t n = 0;
    for (int i = 0; i < p->n; i++)
        if (!p->is_buffer[i]) n += nn_numel(p->tensors[i]);
    return n;
}

int nn_params_to_device(nn_params *p, nn_device d)
{
    for (int i = 0; i < p->n; i++) {
        if (nn_get_device(p->tensors[i]) == d) continue;
        nn_tensor *t = NULL;
        int rc = nn_to_device(&t, p->tensors[i], d);
        if (rc < 0) return rc;
        /* A moved parameter is a new leaf. */
        nn_tensor *leaf = NULL;
        rc = nn_detach(&leaf, t);
        nn_free(&t);
        if (rc < 0) return rc;
        if (!p->is_buffer[i] && (rc = nn_set_requires_grad(leaf, 1)) < 0) {
            nn_free(&leaf);
            return rc;
        }
        nn_free(&p->tensors[i]);
        p->tensors[i] = leaf;
    }
    return 0;
}

int nn_params_zero_grad(nn_params *p)
{
    for (int i = 0; i < p->n; i++) {
        int rc = nn_zero_grad(p->tensors[i]);
        if (rc < 0) return rc;
    }
    return 0;
}

int nn_params_copy(nn_params *dst, const nn_params *src)
{
    for (int i = 0; i < dst->n; i++) {
        nn_tensor *s = nn_params_find(src, dst->names[i]);
        if (!s) return gl_error(GL_ENOTFOUND, "parameter '%s' is missing from the source", dst->names[i]);
        int rc = nn_copy_(dst->tensors[i], s);
        if (rc < 0) return gl_error_prefix(rc, "parameter '%s'", dst->names[i]);
    }
    return 0;
}

int nn_params_new(nn_params *p, nn_tensor **out, const char *name, const int64_t *shape, int ndim,
                  nn_init init, int no_decay)
{
    nn_tensor *t = NULL;
    if (out) *out = NULL;
    int rc = nn_zeros(&t, shape, ndim, NN_F32);
    if (rc < 0) return rc;
    /* fan_in = in * k * k, fan_out = out * k * k for (out, in, k, k) or (out, in). */
    double fan_in = 1, fan_out = 1;
    if (ndim >= 2) {
        double rf = 1;
        for (int i = 2; i < ndim; i++) rf *= (double)shape[i];
        fan_in = (double)shape[1] * rf;
        fan_out = (double)shape[0] * rf;
    } else if (ndim == 1) {
        fan_in = fan_out = (double)shape[0];
    }
    switch (init) {
    case NN_INIT_ZEROS: break;
    case NN_INIT_ONES: rc = nn_fill_(t, 1.0); break;
    case NN_INIT_KAIMING_NORMAL: /* He et al. 2015, fan_out, gain sqrt(2) (torchvision ResNet) */
        rc = nn_normal_(t, 0.0, sqrt(2.0 / fan_out));
        break;
    case NN_INIT_KAIMING_UNIFORM: { /* torch's default: kaiming_uniform(a = sqrt(5)) = U(±1/sqrt(fan_in)) */
        double b = 1.0 / sqrt(fan_in);
        rc = nn_uniform_(t, -b, b);
        break;
    }
    case NN_INIT_XAVIER_UNIFORM: { /* Glorot & Bengio 2010 */
        double b = sqrt(6.0 / (fan_in + fan_out));
        rc = nn_uniform_(t, -b, b);
        break;
    }
    case NN_INIT_NORMAL_SMALL: rc = nn_normal_(t, 0.0, 0.01); break;
    }
    if (rc < 0 || (rc = nn_set_requires_grad(t, 1)) < 0) {
        nn_free(&t);
        return rc;
    }
    if (out) *out = t;
    rc = nn_params_add(p, name, t, 0, no_decay);
    if (rc < 0 && out) *out = NULL;
    return rc;
}
