/* glocal_model.c — the GLOCAL networks (GME with a cost volume and basis
 * coefficients, LME attention U-Net), the warp, and the config. */
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "motion/glocal.h"
#include "motion/glocal_private.h"

glocal_config glocal_config_default(int size)
{
    glocal_config c = { 0 };
    c.arch = 1;
    c.size = size;
    c.feat = 32;
    c.radius = 3;
    c.iters = 2;
    c.coef_scale = 10.0;
    c.lme_ch = 12;
    c.lme_scale = size / 8.0;
    c.lme_arch = 2;
    c.gn = 2;
    return c;
}

int glocal_config_validate(const glocal_config *c)
{
    if (!c) return gl_error(GL_EINVAL, "glocal_config: NULL");
    if (c->arch != 1 && c->arch != 2)
        return gl_error(GL_EINVAL, "glocal_config.arch: %d is not 1 or 2", c->arch);
    if (c->lme_arch != 1 && c->lme_arch != 2)
        return gl_error(GL_EINVAL, "glocal_config.lme_arch: %d is not 1 or 2", c->lme_arch);
    if (c->gn != 1 && c->gn != 2) return gl_error(GL_EINVAL, "glocal_config.gn: %d is not 1 or 2", c->gn);
    if (c->size < 32 || c->size % 16 || c->size > 1024)
        return gl_error(GL_EINVAL, "glocal_config.size: %d is not a multiple of 16 in 32..1024", c->size);
    if (c->feat < 4 || c->feat > 256)
        return gl_error(GL_EINVAL, "glocal_config.feat: %d not in 4..256", c->feat);
    if (c->radius < 1 || c->radius > 8)
        return gl_error(GL_EINVAL, "glocal_config.radius: %d not in 1..8", c->radius);
    if (c->iters < 1 || c->iters > 8)
        return gl_error(GL_EINVAL, "glocal_config.iters: %d not in 1..8", c->iters);
    if (!(c->coef_scale > 0 && c->coef_scale < 1e4))
        return gl_error(GL_EINVAL, "glocal_config.coef_scale: %g not in (0, 1e4)", c->coef_scale);
    if (c->lme_ch < 2 || c->lme_ch > 128)
        return gl_error(GL_EINVAL, "glocal_config.lme_ch: %d not in 2..128", c->lme_ch);
    if (!(c->lme_scale > 0 && c->lme_scale < 1e4))
        return gl_error(GL_EINVAL, "glocal_config.lme_scale: %g not in (0, 1e4)", c->lme_scale);
    return 0;
}

/* The config as JSON (json-c, both ways): {"model": "glocal", "size": ...}. */
int glocal_config_to_json(const glocal_config *c, char *buf, size_t n)
{
    json_object *o = json_object_new_object();
    int rc = 0;
    if (!o) return gl_error(GL_ENOMEM, "glocal_config_to_json: out of memory");
    json_object_object_add(o, "model", json_object_new_string("glocal"));
    if (c->arch != 1) json_object_object_add(o, "arch", json_object_new_int(c->arch));
    if (c->lme_arch != 1) json_object_object_add(o, "lme_arch", json_object_new_int(c->lme_arch));
    if (c->arch == 2) json_object_object_add(o, "gn", json_object_new_int(c->gn));
    json_object_object_add(o, "size", json_object_new_int(c->size));
    json_object_object_add(o, "feat", json_object_new_int(c->feat));
    json_object_object_add(o, "radius", json_object_new_int(c->radius));
    json_object_object_add(o, "iters", json_object_new_int(c->iters));
    json_object_object_add(o, "coef_scale", json_object_new_double(c->coef_scale));
    json_object_object_add(o, "lme_ch", json_object_new_int(c->lme_ch));
    json_object_object_add(o, "lme_scale", json_object_new_double(c->lme_scale));
    const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_SPACED);
    if (!text) rc = gl_error(GL_ENOMEM, "glocal_config_to_json: out of memory");
    else if (strlen(text) >= n) rc = gl_error(GL_EINVAL, "glocal_config_to_json: buffer too small");
    else memcpy(buf, text, strlen(text) + 1);
    json_object_put(o);
    return rc;
}

static int json_number(json_object *o, const char *key, double *v)
{
    json_object *x;
    if (!json_object_object_get_ex(o, key, &x)) return gl_error(GL_EFORMAT, "model config: key \"%s\" is missing", key);
    if (!json_object_is_type(x, json_type_int) && !json_object_is_type(x, json_type_double))
        return gl_error(GL_EFORMAT, "model config: \"%s\" is not a number", key);
    *v = json_object_get_double(x);
    return 0;
}

int glocal_config_from_json(const char *json, glocal_config *c)
{
    if (!json || !c) return gl_error(GL_EINVAL, "glocal_config_from_json: NULL");
    json_object *root = json_tokener_parse(json), *model;
    int rc = 0;
    if (!root || !json_object_is_type(root, json_type_object)) {
        rc = gl_error(GL_EFORMAT, "model config: not a JSON object");
        goto done;
    }
    if (!json_object_object_get_ex(root, "model", &model) || !json_object_is_type(model, json_type_string) ||
        strcmp(json_object_get_string(model), "glocal") != 0) {
        rc = gl_error(GL_EFORMAT, "model config: not a GLOCAL model (\"model\": \"glocal\" expected)");
        goto done;
    }
    double v[7];
    static const char *keys[7] = { "size", "feat", "radius", "iters", "coef_scale", "lme_ch", "lme_scale" };
    for (int i = 0; i < 7; i++)
        if ((rc = json_number(root, keys[i], &v[i])) < 0) goto done;
    c->size = (int)v[0];
    c->feat = (int)v[1];
    c->radius = (int)v[2];
    c->iters = (int)v[3];
    c->coef_scale = v[4];
    c->lme_ch = (int)v[5];
    c->lme_scale = v[6];
    /* checkpoints before arch 2 have no "arch", nor "lme_arch"; arch-2
     * checkpoints before gn 2 have no "gn" */
    static const char *archs[3] = { "arch", "lme_arch", "gn" };
    int *av[3] = { &c->arch, &c->lme_arch, &c->gn };
    for (int i = 0; i < 3; i++) {
        json_object *arch;
        *av[i] = 1;
        if (!json_object_object_get_ex(root, archs[i], &arch)) continue;
        if (!json_object_is_type(arch, json_type_int)) {
            rc = gl_error(GL_EFORMAT, "model config: \"%s\" is not a whole number", archs[i]);
            goto done;
        }
        *av[i] = json_object_get_int(arch);
    }
    rc = glocal_config_validate(c);
done:
    json_object_put(root);
    return rc;
}

/* ---- the warp ---------------------------------------------------------------------- */

int glocal_warp(nn_tensor **out, const nn_tensor *img, const nn_tensor *flow)
{
    int rc;
    nn_scope *sc = NULL;
    *out = NULL;
    if (nn_ndim(flow) != 4 || nn_size(flow, 1) != 2 || nn_ndim(img) != 4 ||
        nn_size(img, 2) != nn_size(flow, 2) || nn_size(img, 3) != nn_size(flow, 3))
        return gl_error(GL_EINVAL, "glocal_warp: need img (N, C, H, W) and flow (N, 2, H, W) of one size");
    const int64_t H = nn_size(flow, 2), W = nn_size(flow, 3);
    nn_dtype dt = nn_get_dtype(flow);
    TRY(nn_scope_begin(&sc));
    nn_tensor *xs, *ys, *xs3, *ys3, *u, *v, *gx, *gy, *grid, *r;
    int64_t sx[3] = { 1, 1, W }, sy[3] = { 1, H, 1 };
    TRY(nn_arange(&xs, 0, (double)W, 1, dt));
    TRY(nn_arange(&ys, 0, (double)H, 1, dt));
    TRY(nn_view(&xs3, xs, sx, 3));
    TRY(nn_view(&ys3, ys, sy, 3));
    TRY(nn_select(&u, flow, 1, 0));
    TRY(nn_select(&v, flow, 1, 1));
    /* align_corners = 1: -1 and +1 are the centres of the first and last pixel. */
    TRY(nn_add(&gx, u, xs3));
    TRY(nn_mul_scalar(&gx, gx, 2.0 / (double)(W - 1)));
    TRY(nn_add_scalar(&gx, gx, -1.0));
    TRY(nn_add(&gy, v, ys3));
    TRY(nn_mul_scalar(&gy, gy, 2.0 / (double)(H - 1)));
    TRY(nn_add_scalar(&gy, gy, -1.0));
    nn_tensor *parts[2] = { gx, gy };
    TRY(nn_stack(&grid, parts, 2, 3));
    TRY(nn_grid_sample(&r, img, grid, NN_BILINEAR, NN_PAD_BORDER, 1));
    nn_scope_keep(sc, r);
    nn_scope_end(&sc);
    *out = r;
    return 0;
fail:
    nn_scope_end(&sc);
    return gl_error_prefix(rc, "glocal_warp");
}

/* ---- model ---------------------------------------------------------------------------- */

static int conv(nn_conv *c, nn_params *p, const char *name, int cin, int cout, int k, int stride,
                nn_act act)
{
    int rc = nn_conv_init(c, p, name, cin, cout, k, stride, k / 2, NN_NORM_NONE, act);
    return rc;
}


/* The bases box-averaged over k x k blocks: the basis flow at the centres of
 * the 1/k-resolution pixels (exact for the linear terms), (8, 2 (S/k)^2). */
static int pool_bases(const glocal_model *m, int k, nn_tensor **out)
{
    int rc;
    const int64_t S = m->cfg.size;
    nn_tensor *v, *p;
    int64_t sh4[4] = { GLOCAL_NBASES, 2, S, S }, sh2[2] = { GLOCAL_NBASES, 2 * (S / k) * (S / k) };
    TRY(nn_view(&v, m->bases, sh4, 4));
    TRY(nn_avg_pool2d(&p, v, k, k, 0));
    nn_free(&v);
    rc = nn_reshape(out, p, sh2, 2);
    nn_free(&p);
fail:
    return rc;
}

static int pooled_bases(glocal_model *m)
{
    int rc = nn_grad_mode_set(0);
    if (rc < 0) return rc;
    int prev = rc;
    if ((rc = pool_bases(m, 8, &m->bases8)) >= 0 && (rc = pool_bases(m, 4, &m->bases4)) >= 0)
        rc = pool_bases(m, 2, &m->bases2);
    nn_grad_mode_set(prev);
    return rc;
}

/* LME arch 1's layers (glocal_config.lme_arch). */
static int lme1_new(glocal_model *m, int C, int ncost)
{
    int rc;
    TRY(conv(&m->l_e1, &m->p, "lme.e1", 3, C, 3, 1, NN_ACT_LEAKY));
    TRY(conv(&m->l_e1b, &m->p, "lme.e1b", C, C, 3, 1, NN_ACT_LEAKY));
    TRY(conv(&m->l_e2, &m->p, "lme.e2", C, 2 * C, 3, 2, NN_ACT_LEAKY));
    TRY(conv(&m->l_e2b, &m->p, "lme.e2b", 2 * C, 2 * C, 3, 1, NN_ACT_LEAKY));
    TRY(conv(&m->l_e3, &m->p, "lme.e3", 2 * C, 4 * C, 3, 2, NN_ACT_LEAKY));
    TRY(conv(&m->l_e3b, &m->p, "lme.e3b", 4 * C, 4 * C, 3, 1, NN_ACT_LEAKY));
    TRY(conv(&m->l_cost, &m->p, "lme.cost", 4 * C + ncost, 4 * C, 3, 1, NN_ACT_LEAKY));
    TRY(conv(&m->g2x, &m->p, "lme.gate2.wx", 2 * C, 2 * C, 1, 1, NN_ACT_NONE));
    TRY(conv(&m->g2g, &m->p, "lme.gate2.wg", 4 * C, 2 * C, 1, 1, NN_ACT_NONE));
    TRY(conv(&m->g2psi, &m->p, "lme.gate2.psi", 2 * C, 1, 1, 1, NN_ACT_SIGMOID));
    TRY(conv(&m->l_d2, &m->p, "lme.d2", 4 * C + 2 * C, 2 * C, 3, 1, NN_ACT_LEAKY));
    TRY(conv(&m->g1x, &m->p, "lme.gate1.wx", C, C, 1, 1, NN_ACT_NONE));
    TRY(conv(&m->g1g, &m->p, "lme.gate1.wg", 2 * C, C, 1, 1, NN_ACT_NONE));
    TRY(conv(&m->g1psi, &m->p, "lme.gate1.psi", C, 1, 1, 1, NN_ACT_SIGMOID));
    TRY(conv(&m->l_d1, &m->p, "lme.d1", 2 * C + C, C, 3, 1, NN_ACT_LEAKY));
    TRY(conv(&m->l_out, &m->p, "lme.out", C, 3, 3, 1, NN_ACT_NONE));
    /* Small initial local flow; attention starts at sigmoid(-2) = 0.12. */
    TRY(nn_mul_scalar_(m->l_out.w, 0.1));
    {
        float b0[3] = { 0, 0, -2 };
        nn_tensor *bt = NULL;
        int64_t sh[1] = { 3 };
        TRY(nn_from_data(&bt, b0, sh, 1, NN_F32));
        rc = nn_copy_(m->l_out.b, bt);
        nn_free(&bt);
        if (rc < 0) goto fail;
    }
fail:
    return rc;
}

/* LME arch 2's layers: encoder C, 2C, 4C, 4C channels at 1, 1/2, 1/4, 1/8;
 * decoder 2C, C, C; flow heads start near zero, the mask at sigmoid(-2). */
static int lme2_new(glocal_model *m, int C)
{
    int rc;
    TRY(conv(&m->m_e1, &m->p, "lme2.e1", 3, C, 3, 1, NN_ACT_LEAKY));
    TRY(conv(&m->m_e1b, &m->p, "lme2.e1b", C, C, 3, 1, NN_ACT_LEAKY));
    TRY(conv(&m->m_e2, &m->p, "lme2.e2", C, 2 * C, 3, 2, NN_ACT_LEAKY));
    TRY(conv(&m->m_e2b, &m->p, "lme2.e2b", 2 * C, 2 * C, 3, 1, NN_ACT_LEAKY));
    TRY(conv(&m->m_e3, &m->p, "lme2.e3", 2 * C, 4 * C, 3, 2, NN_ACT_LEAKY));
    TRY(conv(&m->m_e3b, &m->p, "lme2.e3b", 4 * C, 4 * C, 3, 1, NN_ACT_LEAKY));
    TRY(conv(&m->m_e4, &m->p, "lme2.e4", 4 * C, 4 * C, 3, 2, NN_ACT_LEAKY));
    TRY(conv(&m->m_e4b, &m->p, "lme2.e4b", 4 * C, 4 * C, 3, 1, NN_ACT_LEAKY));
    TRY(conv(&m->m_s1, &m->p, "lme2.s1", 1, C, 3, 1, NN_ACT_LEAKY));
    TRY(conv(&m->m_s2, &m->p, "lme2.s2", C, 2 * C, 3, 2, NN_ACT_LEAKY));
    TRY(conv(&m->m_s2b, &m->p, "lme2.s2b", 2 * C, 2 * C, 3, 1, NN_ACT_NONE));
    TRY(conv(&m->m_f8, &m->p, "lme2.f8", 4 * C, 2, 3, 1, NN_ACT_NONE));
    TRY(conv(&m->m_g3x, &m->p, "lme2.gate3.wx", 4 * C, 2 * C, 1, 1, NN_ACT_NONE));
    TRY(conv(&m->m_g3g, &m->p, "lme2.gate3.wg", 4 * C, 2 * C, 1, 1, NN_ACT_NONE));
    TRY(conv(&m->m_g3psi, &m->p, "lme2.gate3.psi", 2 * C, 1, 1, 1, NN_ACT_SIGMOID));
    TRY(conv(&m->m_d3, &m->p, "lme2.d3", 8 * C + 2, 2 * C, 3, 1, NN_ACT_LEAKY));
    TRY(conv(&m->m_f4, &m->p, "lme2.f4", 2 * C, 2, 3, 1, NN_ACT_NONE));
    TRY(conv(&m->m_g2x, &m->p, "lme2.gate2.wx", 2 * C, C, 1, 1, NN_ACT_NONE));
    TRY(conv(&m->m_g2g, &m->p, "lme2.gate2.wg", 2 * C, C, 1, 1, NN_ACT_NONE));
    TRY(conv(&m->m_g2psi, &m->p, "lme2.gate2.psi", C, 1, 1, 1, NN_ACT_SIGMOID));
    const int ncv = (2 * LME2_RADIUS + 1) * (2 * LME2_RADIUS + 1);
    TRY(conv(&m->m_d2, &m->p, "lme2.d2", 4 * C + 2 + 2 + ncv, C, 3, 1, NN_ACT_LEAKY));
    TRY(conv(&m->m_f2, &m->p, "lme2.f2", C, 2, 3, 1, NN_ACT_NONE));
    TRY(conv(&m->m_g1x, &m->p, "lme2.gate1.wx", C, C, 1, 1, NN_ACT_NONE));
    TRY(conv(&m->m_g1g, &m->p, "lme2.gate1.wg", C, C, 1, 1, NN_ACT_NONE));
    TRY(conv(&m->m_g1psi, &m->p, "lme2.gate1.psi", C, 1, 1, 1, NN_ACT_SIGMOID));
    TRY(conv(&m->m_d1, &m->p, "lme2.d1", 2 * C + 2, C, 3, 1, NN_ACT_LEAKY));
    TRY(conv(&m->m_d1b, &m->p, "lme2.d1b", C, C, 3, 1, NN_ACT_LEAKY));
    TRY(conv(&m->m_f1, &m->p, "lme2.f1", C, 2, 3, 1, NN_ACT_NONE));
    TRY(conv(&m->m_mask, &m->p, "lme2.mask", C, 1, 3, 1, NN_ACT_NONE));
    const nn_conv *heads[4] = { &m->m_f8, &m->m_f4, &m->m_f2, &m->m_f1 };
    for (int i = 0; i < 4; i++) TRY(nn_mul_scalar_(heads[i]->w, 0.1));
    TRY(nn_fill_(m->m_mask.b, -2.0));
fail:
    return rc;
}

int glocal_model_new(glocal_model **out, const glocal_config *cfg)
{
    int rc = glocal_config_validate(cfg);
    if (rc < 0) return rc;
    glocal_model *m = gl_calloc(1, sizeof *m);
    float *bases = NULL;
    if (!m) return GL_ENOMEM;
    m->cfg = *cfg;
    nn_params_init(&m->p);
    const int S = cfg->size, F = cfg->feat, R = cfg->radius, C = cfg->lme_ch;
    const int ncost = (2 * R + 1) * (2 * R + 1);
    if (cfg->arch == 1) {
        TRY(conv(&m->enc1, &m->p, "gme.enc1", 1, 16, 3, 1, NN_ACT_LEAKY));
        TRY(conv(&m->enc2, &m->p, "gme.enc2", 16, 32, 3, 2, NN_ACT_LEAKY));
        TRY(conv(&m->enc3, &m->p, "gme.enc3", 32, F, 3, 2, NN_ACT_LEAKY));
        TRY(conv(&m->head1, &m->p, "gme.head1", ncost + 2 + F, 64, 3, 2, NN_ACT_LEAKY));
        TRY(conv(&m->head2, &m->p, "gme.head2", 64, 64, 3, 2, NN_ACT_LEAKY));
        TRY(conv(&m->implicit, &m->p, "gme.implicit", 64, 16, 1, 1, NN_ACT_LEAKY));
        TRY(nn_dense_init(&m->explicit_, &m->p, "gme.explicit", 16 * (S / 16) * (S / 16), GLOCAL_NBASES));
        /* Start from the identity (zero coefficients): the output layer is zero. */
        TRY(nn_fill_(m->explicit_.w, 0.0));
    } else {
        const int n8 = (2 * GME8_RADIUS + 1) * (2 * GME8_RADIUS + 1);
        TRY(conv(&m->v_e1, &m->p, "gme.e1", 1, 16, 3, 1, NN_ACT_LEAKY));
        TRY(conv(&m->v_e2, &m->p, "gme.e2", 16, 32, 3, 2, NN_ACT_LEAKY));
        TRY(conv(&m->v_e2b, &m->p, "gme.e2b", 32, 32, 3, 1, NN_ACT_LEAKY));
        TRY(conv(&m->v_e3, &m->p, "gme.e3", 32, F, 3, 2, NN_ACT_LEAKY));
        TRY(conv(&m->v_e3b, &m->p, "gme.e3b", F, F, 3, 1, NN_ACT_LEAKY));
        TRY(conv(&m->v_e4, &m->p, "gme.e4", F, GME8_FEAT, 3, 2, NN_ACT_LEAKY));
        TRY(conv(&m->v_e4b, &m->p, "gme.e4b", GME8_FEAT, GME8_FEAT, 3, 1, NN_ACT_LEAKY));
        TRY(conv(&m->v_h8a, &m->p, "gme.h8a", n8 + GME8_FEAT + 2, 64, 3, 1, NN_ACT_LEAKY));
        TRY(conv(&m->v_h8b, &m->p, "gme.h8b", 64, 32, 3, 1, NN_ACT_LEAKY));
        TRY(conv(&m->v_h8c, &m->p, "gme.h8c", 32, 3, 3, 1, NN_ACT_NONE));
        TRY(conv(&m->v_h4a, &m->p, "gme.h4a", ncost + F + 2 + 2, 64, 3, 1, NN_ACT_LEAKY));
        TRY(conv(&m->v_h4b, &m->p, "gme.h4b", 64, 32, 3, 1, NN_ACT_LEAKY));
        TRY(conv(&m->v_h4c, &m->p, "gme.h4c", 32, 3, 3, 1, NN_ACT_NONE));
        /* Start near the identity: small flows, uniform weights. */
        TRY(nn_mul_scalar_(m->v_h8c.w, 0.1));
        TRY(nn_mul_scalar_(m->v_h4c.w, 0.1));
    }
    if (cfg->lme_arch == 1) TRY(lme1_new(m, C, ncost));
    else TRY(lme2_new(m, C));
    bases = gl_malloc(sizeof(float) * GLOCAL_NBASES * 2 * S * S);
    if (!bases) { rc = GL_ENOMEM; goto fail; }
    TRY(glocal_bases_compute(S, S, bases));
    {
        nn_tensor *cpu = NULL;
        int64_t sh[2] = { GLOCAL_NBASES, 2L * S * S };
        TRY(nn_from_data(&cpu, bases, sh, 2, NN_F32));
        rc = nn_to_device(&m->bases, cpu, nn_default_device());
        nn_free(&cpu);
        if (rc < 0) goto fail;
    }
    if (cfg->arch == 2) TRY(pooled_bases(m));
    if (cfg->arch == 2) TRY(glocal_gme2_constants(m));
    gl_free(bases);
    *out = m;
    return 0;
fail:
    gl_free(bases);
    glocal_model_free(&m);
    return rc;
}

void glocal_model_free(glocal_model **pm)
{
    if (!pm || !*pm) return;
    glocal_model *m = *pm;
    nn_free(&m->bases);
    nn_free(&m->bases8);
    nn_free(&m->bases4);
    nn_free(&m->bases2);
    nn_free(&m->eye8);
    for (int i = 0; i < 2; i++) nn_free(&m->sa_off8[i]), nn_free(&m->sa_off4[i]);
    nn_params_free(&m->p);
    gl_free(m);
    *pm = NULL;
}

const glocal_config *glocal_model_config(const glocal_model *m) { return &m->cfg; }
nn_params *glocal_model_params(glocal_model *m) { return &m->p; }
const nn_tensor *glocal_model_bases(const glocal_model *m) { return m->bases; }

int glocal_model_load(glocal_model **out, const char *path, int64_t *step)
{
    char *json = NULL;
    glocal_model *m = NULL;
    glocal_config c;
    int rc;
    *out = NULL;
    if ((rc = nn_checkpoint_read_config(path, &json)) == GL_ENOTFOUND)
        rc = gl_error(GL_EFORMAT, "%s: checkpoint has no config attribute (not a GLOCAL model?)", path);
    if (rc < 0) goto fail;
    if ((rc = glocal_config_from_json(json, &c)) < 0) {
        gl_error_prefix(rc, "%s", path);
        goto fail;
    }
    TRY(glocal_model_new(&m, &c));
    TRY(nn_checkpoint_load(path, &m->p, step, NULL, NULL));
    gl_free(json);
    *out = m;
    return 0;
fail:
    gl_free(json);
    glocal_model_free(&m);
    return rc;
}

/* The weights of one part (parameters named prefix*) from a checkpoint, all
 * read and checked before any is copied: on an error m keeps its weights. */
static int load_part(glocal_model *m, const char *path, const char *prefix, const char *what,
                     const char *must, int *copied)
{
    nn_params *P = &m->p;
    int rc = 0, n = 0;
    const size_t np = strlen(prefix);
    if (copied) *copied = 0;
    int *idx = gl_malloc(sizeof(int) * (size_t)P->n);
    char (*keys)[300] = gl_malloc(sizeof *keys * (size_t)P->n);
    const char **names = gl_malloc(sizeof *names * (size_t)P->n);
    nn_tensor **t = gl_calloc((size_t)P->n, sizeof *t);
    if (!idx || !keys || !names || !t) { rc = GL_ENOMEM; goto done; }
    for (int i = 0; i < P->n; i++) {
        if (strncmp(P->names[i], prefix, np)) continue;
        snprintf(keys[n], sizeof keys[n], "params/%s", P->names[i]);
        names[n] = keys[n];
        idx[n++] = i;
    }
    if (n == 0) { rc = gl_error(GL_EFORMAT, "%s: the model has no %s weights to load", path, what); goto done; }
    if ((rc = nn_checkpoint_read_tensors(path, names, n, t)) < 0) { gl_error_prefix(rc, "%s", path); goto done; }
    for (int k = 0; k < n && rc >= 0; k++) {
        int64_t a[NN_MAX_DIMS], b[NN_MAX_DIMS];
        const int i = idx[k], na = nn_shape(P->tensors[i], a), nb = t[k] ? nn_shape(t[k], b) : -1;
        if (!t[k] || na != nb || memcmp(a, b, sizeof(int64_t) * na))
            rc = gl_error(GL_EFORMAT, "%s: %s %s (the model's %s is not the file's: %s must match)", path,
                          P->names[i], t[k] ? "has another shape" : "is missing", what, must);
    }
    for (int k = 0; k < n && rc >= 0; k++) rc = nn_copy_(P->tensors[idx[k]], t[k]);
    if (rc >= 0 && copied) *copied = n;
done:
    for (int k = 0; t && k < n; k++) nn_free(&t[k]);
    gl_free(t);
    gl_free((void *)names);
    gl_free(keys);
    gl_free(idx);
    return rc < 0 ? rc : 0;
}

int glocal_model_load_gme(glocal_model *m, const char *path, int *copied)
{
    return load_part(m, path, "gme.", "GME", "size, arch, feat and radius", copied);
}

int glocal_model_load_lme(glocal_model *m, const char *path, int *copied)
{
    return load_part(m, path, m->cfg.lme_arch == 2 ? "lme2." : "lme.", "LME", "lme_arch and lme_ch", copied);
}

/* ---- forward ----------------------------------------------------------------------- */

/* x / |x| over channels (N, C, h, w): cosine costs in the cost volumes. */
int glocal_l2norm(const nn_tensor *x, nn_tensor **out)
{
    int rc;
    nn_tensor *sq, *ss, *nrm;
    int64_t d1[1] = { 1 };
    TRY(nn_unary(&sq, NN_SQUARE, x));
    TRY(nn_sum(&ss, sq, d1, 1, 1));
    TRY(nn_add_scalar(&ss, ss, 1e-6));
    TRY(nn_unary(&nrm, NN_RSQRT, ss));
    TRY(nn_mul(out, x, nrm));
fail:
    return rc;
}

/* L2-normalised features at 1/4 resolution. */
static int encode(glocal_model *m, const nn_tensor *img, int training, nn_tensor **out)
{
    int rc;
    nn_tensor *x1, *x2, *x3;
    TRY(nn_conv_forward(&x1, &m->enc1, img, training));
    TRY(nn_conv_forward(&x2, &m->enc2, x1, training));
    TRY(nn_conv_forward(&x3, &m->enc3, x2, training));
    TRY(glocal_l2norm(x3, out));
fail:
    return rc;
}

/* Correlation volume: channel (dy + R)(2R + 1) + dx + R holds
 * sum_c fa(p) fb(p + (dx, dy)) (Dosovitskiy et al., FlowNetC 2015).
 * Computed channels-last, so each displacement's sum over channels is a
 * contiguous reduction: at 128^2 (32x32 maps, 32 channels, batch 16) this
 * takes 9 ms against 42 ms for the same sums over NCHW's strided channel
 * axis (bench/README.md, "glocal"). */
int glocal_cost_volume(const nn_tensor *fa, const nn_tensor *fb, int R, nn_tensor **out)
{
    int rc;
    const int64_t h = nn_size(fa, 2), w = nn_size(fa, 3);
    const int n = (2 * R + 1) * (2 * R + 1);
    nn_tensor *pad, *pa, *ca, *pb, *cb, **slices = gl_calloc(n, sizeof *slices);
    if (!slices) return GL_ENOMEM;
    const int64_t nhwc[4] = { 0, 2, 3, 1 }, d3[1] = { 3 };
    TRY(nn_permute(&pa, fa, nhwc, 4));
    TRY(nn_contiguous(&ca, pa));
    TRY(nn_pad2d(&pad, fb, R, R, R, R, NN_PAD_CONSTANT, 0.0));
    TRY(nn_permute(&pb, pad, nhwc, 4));
    TRY(nn_contiguous(&cb, pb)); /* (N, h + 2R, w + 2R, C) */
    for (int dy = -R, k = 0; dy <= R; dy++)
        for (int dx = -R; dx <= R; dx++, k++) {
            nn_tensor *a, *b, *p;
            TRY(nn_narrow(&a, cb, 1, dy + R, h));
            TRY(nn_narrow(&b, a, 2, dx + R, w));
            TRY(nn_mul(&p, ca, b));
            TRY(nn_sum(&slices[k], p, d3, 1, 0)); /* (N, h, w) */
            /* freed now, not at the scope's end: the next product reuses the
             * memory instead of touching 49 fresh blocks (page faults) */
            nn_free(&p);
            nn_free(&b);
            nn_free(&a);
        }
    TRY(nn_stack(out, slices, n, 1));
fail:
    gl_free(slices);
    return rc;
}

int glocal_coords(int64_t n, int64_t h, int64_t w, nn_tensor **out)
{
    int rc;
    nn_tensor *xs, *ys, *gx, *gy;
    int64_t sx[4] = { 1, 1, 1, w }, sy[4] = { 1, 1, h, 1 }, full[4] = { n, 1, h, w };
    TRY(nn_linspace(&xs, -1, 1, w, NN_F32));
    TRY(nn_linspace(&ys, -1, 1, h, NN_F32));
    TRY(nn_view(&xs, xs, sx, 4));
    TRY(nn_view(&ys, ys, sy, 4));
    TRY(nn_expand(&gx, xs, full, 4));
    TRY(nn_expand(&gy, ys, full, 4));
    nn_tensor *two[2] = { gx, gy };
    TRY(nn_cat(out, two, 2, 1));
fail:
    return rc;
}

/* Global flow (N, 2, S, S) from coefficients (N, 8). */
int glocal_coeffs_to_flow(glocal_model *m, const nn_tensor *coef, nn_tensor **out)
{
    int rc;
    nn_tensor *f;
    int64_t sh[4] = { nn_size(coef, 0), 2, m->cfg.size, m->cfg.size };
    TRY(nn_matmul(&f, coef, m->bases));
    TRY(nn_view(out, f, sh, 4));
fail:
    return rc;
}

/* Attention gate (Oktay et al. 2018, eq. 1-2): alpha = sigmoid(psi(relu(Wx x + Wg g))). */
static int gate(const nn_conv *wx, const nn_conv *wg, const nn_conv *psi, const nn_tensor *x,
                const nn_tensor *g, int training, nn_tensor **out)
{
    int rc;
    nn_tensor *a, *b, *s, *r, *alpha;
    TRY(nn_conv_forward(&a, wx, x, training));
    TRY(nn_conv_forward(&b, wg, g, training));
    TRY(nn_add(&s, a, b));
    TRY(nn_unary(&r, NN_RELU, s));
    TRY(nn_conv_forward(&alpha, psi, r, training));
    TRY(nn_mul(out, x, alpha));
fail:
    return rc;
}

/* Features at 1/4 resolution of either architecture (the LME's cost volume). */
static int encode4(glocal_model *m, const nn_tensor *img, int training, nn_tensor **out)
{
    if (m->cfg.arch == 2) return glocal_encode_pyramid(m, img, training, out, NULL);
    return encode(m, img, training, out);
}

/* LME arch 1: local = lme_scale * tanh(raw) * attention, mask = attention. */
static int lme1_forward(glocal_model *m, const nn_tensor *a, const nn_tensor *bw, int training,
                        nn_tensor **local, nn_tensor **mask)
{
    int rc;
    const int64_t S = m->cfg.size;
    nn_tensor *diff, *x, *e1, *e1b, *e2, *e2b, *e3, *e3b, *u2, *s2, *c2, *d2, *u1, *s1, *c1, *d1,
        *o, *fr, *at, *th, *att;
    TRY(nn_sub(&diff, a, bw));
    nn_tensor *in[3] = { (nn_tensor *)a, (nn_tensor *)bw, diff };
    TRY(nn_cat(&x, in, 3, 1));
    TRY(nn_conv_forward(&e1, &m->l_e1, x, training));
    TRY(nn_conv_forward(&e1b, &m->l_e1b, e1, training));
    TRY(nn_conv_forward(&e2, &m->l_e2, e1b, training));
    TRY(nn_conv_forward(&e2b, &m->l_e2b, e2, training));
    TRY(nn_conv_forward(&e3, &m->l_e3, e2b, training));
    TRY(nn_conv_forward(&e3b, &m->l_e3b, e3, training));
    {
        /* Local displacement evidence: the correlation of the (detached) GME
         * features of A and of B aligned by the global motion, at 1/4 size. */
        nn_tensor *fa, *fb, *fad, *fbd, *cv, *cat3[2], *x3;
        TRY(encode4(m, a, training, &fa));
        TRY(encode4(m, bw, training, &fb));
        TRY(nn_detach(&fad, fa));
        TRY(nn_detach(&fbd, fb));
        TRY(glocal_cost_volume(fad, fbd, m->cfg.radius, &cv));
        cat3[0] = e3b;
        cat3[1] = cv;
        TRY(nn_cat(&x3, cat3, 2, 1));
        TRY(nn_conv_forward(&e3b, &m->l_cost, x3, training));
    }
    TRY(nn_interpolate(&u2, e3b, S / 2, S / 2, NN_BILINEAR, 0));
    TRY(gate(&m->g2x, &m->g2g, &m->g2psi, e2b, u2, training, &s2));
    nn_tensor *cat2[2] = { u2, s2 };
    TRY(nn_cat(&c2, cat2, 2, 1));
    TRY(nn_conv_forward(&d2, &m->l_d2, c2, training));
    TRY(nn_interpolate(&u1, d2, S, S, NN_BILINEAR, 0));
    TRY(gate(&m->g1x, &m->g1g, &m->g1psi, e1b, u1, training, &s1));
    nn_tensor *cat1[2] = { u1, s1 };
    TRY(nn_cat(&c1, cat1, 2, 1));
    TRY(nn_conv_forward(&d1, &m->l_d1, c1, training));
    TRY(nn_conv_forward(&o, &m->l_out, d1, training));
    TRY(nn_narrow(&fr, o, 1, 0, 2));
    TRY(nn_narrow(&at, o, 1, 2, 1));
    TRY(nn_unary(&att, NN_SIGMOID, at));
    TRY(nn_unary(&th, NN_TANH, fr));
    TRY(nn_mul_scalar(&th, th, m->cfg.lme_scale));
    TRY(nn_mul(local, th, att));
    *mask = att;
fail:
    return rc;
}

/* x bilinearly resized to h x w. */
static int up_to(const nn_tensor *x, int64_t h, int64_t w, nn_tensor **out)
{
    return nn_interpolate(out, x, h, w, NN_BILINEAR, 0);
}

/* One decoder level of LME arch 2: the coarser features g upsampled to the
 * skip x's size, x through the attention gate, both with the upsampled
 * coarser flow fc (and `extra` channels, may be NULL) into conv d; the flow
 * head adds its residual to `base` (NULL: to the upsampled fc). */
static int lme2_level(const nn_conv *gx, const nn_conv *gg, const nn_conv *gpsi, const nn_conv *d,
                      const nn_conv *head, const nn_tensor *x, const nn_tensor *g, const nn_tensor *fc,
                      const nn_tensor *extra, const nn_tensor *base, int training, nn_tensor **feat,
                      nn_tensor **flow)
{
    int rc;
    const int64_t h = nn_size(x, 2), w = nn_size(x, 3);
    nn_tensor *u, *s, *fu, *c, *r;
    TRY(up_to(g, h, w, &u));
    TRY(gate(gx, gg, gpsi, x, u, training, &s));
    TRY(up_to(fc, h, w, &fu));
    nn_tensor *cat[4] = { u, s, fu, (nn_tensor *)extra };
    TRY(nn_cat(&c, cat, extra ? 4 : 3, 1));
    TRY(nn_conv_forward(feat, d, c, training));
    if (head) {
        TRY(nn_conv_forward(&r, head, *feat, training));
        TRY(nn_add(flow, base ? base : fu, r));
    }
fail:
    return rc;
}

/* LME arch 2's matching: features of A and of aligned B (the same convs, one
 * batch), their correlation over +-LME2_RADIUS at 1/2 resolution, and its
 * soft argmax in pixels at S (N, 2, S/2, S/2): a local flow from the first
 * step (random features already match), which the decoder corrects. */
static int lme2_match(glocal_model *m, const nn_tensor *a, const nn_tensor *bw, int training,
                      nn_tensor **cv, nn_tensor **flow)
{
    int rc;
    const int64_t N = nn_size(a, 0);
    nn_tensor *ab, *f1, *f2, *f3, *fn, *fa, *fb, *sa;
    nn_tensor *two[2] = { (nn_tensor *)a, (nn_tensor *)bw };
    TRY(nn_cat(&ab, two, 2, 0));
    TRY(nn_conv_forward(&f1, &m->m_s1, ab, training));
    TRY(nn_conv_forward(&f2, &m->m_s2, f1, training));
    TRY(nn_conv_forward(&f3, &m->m_s2b, f2, training));
    TRY(glocal_l2norm(f3, &fn));
    TRY(nn_narrow(&fa, fn, 0, 0, N));
    TRY(nn_narrow(&fb, fn, 0, N, N));
    TRY(glocal_cost_volume(fa, fb, LME2_RADIUS, cv));
    TRY(glocal_soft_argmax(*cv, LME2_RADIUS, &sa));
    TRY(nn_mul_scalar(flow, sa, 2.0));
fail:
    return rc;
}

/* LME arch 2 (glocal_config.lme_arch): flows at 1/8, 1/4 (coarse context),
 * 1/2 (the matching, corrected) and 1, the mask from the finest features. */
static int lme2_forward(glocal_model *m, const nn_tensor *a, const nn_tensor *bw, int training,
                        glocal_lme_out *out)
{
    int rc;
    nn_tensor *diff, *x, *e1, *e2, *e3, *e4, *f8, *d3, *f4, *d2, *f2, *d1, *d1b, *r1, *fu, *ml, *cv, *fm,
        *ex;
    TRY(nn_sub(&diff, a, bw));
    /* the residual is a tenth of the frames' range: scaled up, it trains
     * several times faster (8 pairs overfit: teacher loss 0.12 -> 0.046 in
     * 200 steps, against 0.12 unscaled) */
    TRY(nn_mul_scalar(&diff, diff, 10.0));
    nn_tensor *in[3] = { (nn_tensor *)a, (nn_tensor *)bw, diff };
    TRY(nn_cat(&x, in, 3, 1));
    TRY(nn_conv_forward(&e1, &m->m_e1, x, training));
    TRY(nn_conv_forward(&e1, &m->m_e1b, e1, training));
    TRY(nn_conv_forward(&e2, &m->m_e2, e1, training));
    TRY(nn_conv_forward(&e2, &m->m_e2b, e2, training));
    TRY(nn_conv_forward(&e3, &m->m_e3, e2, training));
    TRY(nn_conv_forward(&e3, &m->m_e3b, e3, training));
    TRY(nn_conv_forward(&e4, &m->m_e4, e3, training));
    TRY(nn_conv_forward(&e4, &m->m_e4b, e4, training));
    TRY(nn_conv_forward(&f8, &m->m_f8, e4, training));
    TRY(lme2_match(m, a, bw, training, &cv, &fm));
    nn_tensor *mcat[2] = { fm, cv };
    TRY(nn_cat(&ex, mcat, 2, 1));
    TRY(lme2_level(&m->m_g3x, &m->m_g3g, &m->m_g3psi, &m->m_d3, &m->m_f4, e3, e4, f8, NULL, NULL, training,
                   &d3, &f4));
    TRY(lme2_level(&m->m_g2x, &m->m_g2g, &m->m_g2psi, &m->m_d2, &m->m_f2, e2, d3, f4, ex, fm, training,
                   &d2, &f2));
    TRY(lme2_level(&m->m_g1x, &m->m_g1g, &m->m_g1psi, &m->m_d1, NULL, e1, d2, f2, NULL, NULL, training, &d1,
                   NULL));
    TRY(nn_conv_forward(&d1b, &m->m_d1b, d1, training));
    TRY(nn_conv_forward(&r1, &m->m_f1, d1b, training));
    TRY(up_to(f2, nn_size(a, 2), nn_size(a, 3), &fu));
    TRY(nn_add(&out->local, fu, r1));
    TRY(nn_conv_forward(&ml, &m->m_mask, d1b, training));
    TRY(nn_unary(&out->mask, NN_SIGMOID, ml));
    out->levels[0] = f8;
    out->levels[1] = f4;
    out->levels[2] = f2;
    out->nlevels = 3;
fail:
    return rc;
}

int glocal_lme_forward(glocal_model *m, const nn_tensor *a, const nn_tensor *bw, int training,
                       glocal_lme_out *out)
{
    memset(out, 0, sizeof *out);
    if (m->cfg.lme_arch == 2) return lme2_forward(m, a, bw, training, out);
    return lme1_forward(m, a, bw, training, &out->local, &out->mask);
}

/* GME arch 1 (glocal_config.arch): `iters` passes of the cost volume and the
 * dense head, each on B warped by the (detached) estimate so far. */
static int gme_forward_v1(glocal_model *m, const nn_tensor *a, const nn_tensor *b, int training,
                          glocal_outputs *out)
{
    int rc;
    const int64_t S = m->cfg.size, N = nn_size(a, 0);
    nn_tensor *fa, *xy, *g = NULL;
    TRY(encode(m, a, training, &fa));
    TRY(glocal_coords(N, S / 4, S / 4, &xy));
    for (int it = 0; it < m->cfg.iters; it++) {
        nn_tensor *bk = (nn_tensor *)b, *fb, *cv, *x, *h1, *h2, *im, *fl, *coef, *df, *gd;
        if (g) {
            /* Residual estimation on B aligned by the current estimate; the
             * estimate is detached (as RAFT does between iterations). */
            TRY(nn_detach(&gd, g));
            TRY(glocal_warp(&bk, b, gd));
        }
        TRY(encode(m, bk, training, &fb));
        TRY(glocal_cost_volume(fa, fb, m->cfg.radius, &cv));
        nn_tensor *cin[3] = { cv, xy, fa };
        TRY(nn_cat(&x, cin, 3, 1));
        TRY(nn_conv_forward(&h1, &m->head1, x, training));
        TRY(nn_conv_forward(&h2, &m->head2, h1, training));
        TRY(nn_conv_forward(&im, &m->implicit, h2, training));
        TRY(nn_flatten(&fl, im, 1, 3));
        TRY(nn_dense_forward(&coef, &m->explicit_, fl));
        TRY(nn_mul_scalar(&coef, coef, m->cfg.coef_scale));
        TRY(glocal_coeffs_to_flow(m, coef, &df));
        if (g) TRY(nn_add(&g, g, df));
        else g = df;
        out->glob[it] = g;
    }
    out->nglob = m->cfg.iters;
fail:
    return rc;
}

int glocal_forward(glocal_model *m, const nn_tensor *a, const nn_tensor *b, int with_lme,
                   const nn_tensor *align, int training, glocal_outputs *out)
{
    return glocal_forward_ex(m, a, b, with_lme, align, training, 1, out);
}

int glocal_forward_ex(glocal_model *m, const nn_tensor *a, const nn_tensor *b, int with_lme,
                      const nn_tensor *align, int training, int gme_grad, glocal_outputs *out)
{
    int rc;
    nn_scope *sc = NULL;
    memset(out, 0, sizeof *out);
    const int64_t S = m->cfg.size;
    if (nn_ndim(a) != 4 || nn_size(a, 1) != 1 || nn_size(a, 2) != S || nn_size(a, 3) != S ||
        nn_ndim(b) != 4 || nn_size(b, 0) != nn_size(a, 0) || nn_size(b, 1) != 1 ||
        nn_size(b, 2) != S || nn_size(b, 3) != S)
        return gl_error(GL_EINVAL, "glocal_forward: need grey frames (N, 1, %d, %d)", (int)S, (int)S);
    TRY(nn_scope_begin(&sc));
    if (!align || gme_grad) {
        const int prev = gme_grad ? -1 : nn_grad_mode_set(0);
        if (m->cfg.arch == 2) rc = glocal_gme2_forward(m, a, b, training, out);
        else rc = gme_forward_v1(m, a, b, training, out);
        if (prev >= 0) nn_grad_mode_set(prev);
        if (rc < 0) goto fail;
    }
    if (with_lme) {
        nn_tensor *al = (nn_tensor *)align, *bw;
        if (!al) TRY(nn_detach(&al, out->glob[out->nglob - 1]));
        TRY(glocal_warp(&bw, b, al));
        glocal_lme_out lo;
        TRY(glocal_lme_forward(m, a, bw, training, &lo));
        out->local = lo.local;
        out->mask = lo.mask;
        nn_scope_keep(sc, out->local);
        nn_scope_keep(sc, out->mask);
        for (int i = 0; i < lo.nlevels; i++) nn_scope_keep(sc, out->local_levels[i] = lo.levels[i]);
        out->nlocal_levels = lo.nlevels;
    }
    for (int i = 0; i < out->nglob; i++) nn_scope_keep(sc, out->glob[i]);
    for (int i = 0; i < out->ndense; i++) nn_scope_keep(sc, out->dense[i]);
    nn_scope_end(&sc);
    return 0;
fail:
    nn_scope_end(&sc);
    memset(out, 0, sizeof *out);
    return gl_error_prefix(rc, "glocal_forward");
}

void glocal_outputs_free(glocal_outputs *o)
{
    for (int i = 0; i < GLOCAL_MAX_STAGES; i++) nn_free(&o->glob[i]);
    for (int i = 0; i < GLOCAL_MAX_STAGES; i++) nn_free(&o->dense[i]);
    for (int i = 0; i < GLOCAL_MAX_STAGES; i++) nn_free(&o->local_levels[i]);
    nn_free(&o->local);
    nn_free(&o->mask);
}
