/* udhn.c — the CA-UDHN ("DHE") benchmark's lists, points, categories and
 * per-pair error; see udhn.h for the format. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "datasets/image.h"
#include "datasets/text_lines.h"
#include "datasets/udhn.h"

/* The reference test code's category table (video folders of Test/). */
static const char *const cat_videos[UDHN_NCATS][9] = {
    [UDHN_RE] = { "0000011", "0000016", "00000147", "00000155", "00000158", "00000107", "00000239",
                  "0000030", NULL },
    [UDHN_LT] = { "0000038", "0000044", "0000046", "0000047", "00000238", "00000177", "00000188",
                  "00000181", NULL },
    [UDHN_LL] = { "0000085", "00000100", "0000091", "0000092", "00000216", "00000226", NULL },
    [UDHN_SF] = { "00000244", "00000251", "0000026", "0000034", "00000115", NULL },
    [UDHN_LF] = { "00000104", "0000031", "0000035", "00000129", "00000141", "00000200", NULL },
};
static const char *const cat_names[UDHN_NCATS] = { "RE", "LT", "LL", "SF", "LF" };

const char *udhn_category_name(int category)
{
    return category >= 0 && category < UDHN_NCATS ? cat_names[category] : NULL;
}

int udhn_category_of_video(const char *video)
{
    if (!video) return UDHN_NONE;
    for (int c = 0; c < UDHN_NCATS; c++)
        for (int i = 0; cat_videos[c][i]; i++)
            if (!strcmp(cat_videos[c][i], video)) return c;
    return UDHN_NONE;
}

/* ---- lists ------------------------------------------------------------------- */

static void pair_release(udhn_pair *p)
{
    gl_free(p->video);
    gl_free(p->image_a);
    gl_free(p->image_b);
    gl_free(p->key);
    memset(p, 0, sizeof *p);
}

void udhn_list_free(udhn_list *l)
{
    if (!l) return;
    for (int i = 0; i < l->n; i++) pair_release(&l->pairs[i]);
    gl_free(l->pairs);
    memset(l, 0, sizeof *l);
}

static char *strndup_gl(const char *s, size_t n)
{
    char *d = gl_malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

/* One name "VIDEO/BASE[LM]": the lengths of VIDEO and BASE, and whether BASE
 * ends with the LM marker (which then is not part of the file name). */
static int split_name(const char *path, int line, const char *name, size_t *vlen, int *lm)
{
    const char *slash = strchr(name, '/');
    if (!slash || slash == name || !slash[1] || strchr(slash + 1, '/'))
        return gl_error(GL_EFORMAT, "%s:%d: expected an image name VIDEO/IMAGE, got '%s'", path,
                        line, name);
    if (!strcmp(name, "..") || !strncmp(name, "../", 3) || !strcmp(slash + 1, "..") ||
        !strcmp(slash + 1, "."))
        return gl_error(GL_EFORMAT, "%s:%d: '%s' leaves the image folder", path, line, name);
    size_t blen = strlen(slash + 1);
    *vlen = (size_t)(slash - name);
    *lm = blen > 2 && !strcmp(slash + 1 + blen - 2, "LM");
    return 0;
}

int udhn_list_read(udhn_list *out, const char *path)
{
    int rc, cap = 0;
    text_lines t;
    memset(out, 0, sizeof *out);
    if ((rc = text_lines_open(&t, path)) < 0)
        return gl_error_prefix(rc, "cannot read the CA-UDHN pair list");
    char *s = NULL;
    while ((rc = text_lines_next(&t, &s)) == 0) {
        char *f[3] = { NULL, NULL, NULL };
        int nf = 0;
        for (char *q = s;;) {
            q += strspn(q, " \t");
            if (!*q) break;
            if (nf < 3) f[nf] = q;
            nf++;
            q += strcspn(q, " \t");
            if (*q) *q++ = 0;
        }
        if (nf == 0) continue; /* blank line */
        if (nf != 2) {
            rc = gl_error(GL_EFORMAT, "%s:%d: expected two image names 'VIDEO/IMAGE_A VIDEO/IMAGE_B', "
                          "got %d field%s", path, t.line, nf, nf == 1 ? "" : "s");
            goto fail;
        }
        size_t va, vb;
        int lma, lmb;
        if ((rc = split_name(path, t.line, f[0], &va, &lma)) < 0 ||
            (rc = split_name(path, t.line, f[1], &vb, &lmb)) < 0)
            goto fail;
        if (va != vb || memcmp(f[0], f[1], va)) {
            rc = gl_error(GL_EFORMAT, "%s:%d: the two images are in different videos ('%.*s' and '%.*s')",
                          path, t.line, (int)va, f[0], (int)vb, f[1]);
            goto fail;
        }
        if (out->n == cap) {
            int nc = cap ? 2 * cap : 256;
            udhn_pair *np = gl_realloc(out->pairs, sizeof *np * nc);
            if (!np) { rc = GL_ENOMEM; goto fail; }
            out->pairs = np;
            cap = nc;
        }
        udhn_pair *p = &out->pairs[out->n];
        memset(p, 0, sizeof *p);
        out->n++;
        const char *ba = f[0] + va + 1, *bb = f[1] + vb + 1;
        size_t la = strlen(ba), lb = strlen(bb);
        p->line = t.line;
        p->video = strndup_gl(f[0], va);
        p->image_a = strndup_gl(f[0], strlen(f[0]) - (lma ? 2 : 0));
        p->image_b = strndup_gl(f[1], strlen(f[1]) - (lmb ? 2 : 0));
        p->key = gl_malloc(la + lb + 2);
        if (!p->video || !p->image_a || !p->image_b || !p->key) { rc = GL_ENOMEM; goto fail; }
        memcpy(p->key, ba, la);
        p->key[la] = '_';
        memcpy(p->key + la + 1, bb, lb + 1);
        p->category = udhn_category_of_video(p->video);
    }
    if (rc < 0) goto fail;
    if (out->n == 0) {
        rc = gl_error(GL_EFORMAT, "%s: no pairs (expected lines 'VIDEO/IMAGE_A VIDEO/IMAGE_B')", path);
        goto fail;
    }
    text_lines_close(&t);
    return 0;
fail:
    text_lines_close(&t);
    udhn_list_free(out);
    return rc;
}

/* ---- points -------------------------------------------------------------------- */

void udhn_points_free(udhn_points_table *t)
{
    if (!t) return;
    for (int i = 0; i < t->n; i++) gl_free(t->keys[i]);
    gl_free(t->keys);
    gl_free(t->points);
    memset(t, 0, sizeof *t);
}

typedef struct {
    char *key;
    udhn_points pts;
    int line;
} entry;

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const entry *)a)->key, ((const entry *)b)->key);
}

int udhn_points_read(udhn_points_table *out, const char *path)
{
    int rc, n = 0, cap = 0;
    entry *e = NULL;
    text_lines t;
    memset(out, 0, sizeof *out);
    struct stat st;
    if (stat(path, &st) != 0)
        return gl_error(GL_EIO, "%s: %s; convert the CA-UDHN point files first with "
                        "'scripts/udhn-points DIR' (DIR holds Coordinate-v2/)", path, strerror(errno));
    if ((rc = text_lines_open(&t, path)) < 0) return gl_error_prefix(rc, "CA-UDHN points");
    char *s = NULL;
    while ((rc = text_lines_next(&t, &s)) == 0) {
        s += strspn(s, " \t");
        if (!*s || *s == '#') continue;
        char *key = s;
        s += strcspn(s, " \t");
        if (!*s) {
            rc = gl_error(GL_EFORMAT, "%s:%d: expected a key and %d numbers, got only '%s'", path,
                          t.line, 4 * UDHN_NPOINTS, key);
            goto fail;
        }
        *s++ = 0;
        udhn_points p;
        for (int i = 0; i < 4 * UDHN_NPOINTS; i++) {
            char *end;
            errno = 0;
            double v = strtod(s, &end);
            if (end == s || !isfinite(v)) {
                rc = gl_error(GL_EFORMAT, "%s:%d: key %s: expected %d finite numbers, number %d is '%.20s'",
                              path, t.line, key, 4 * UDHN_NPOINTS, i + 1, s + strspn(s, " \t"));
                goto fail;
            }
            s = end;
            /* Per point: xA yA xB yB. */
            int k = i / 4, c = i % 4;
            if (c < 2) p.a[k][c] = v;
            else p.b[k][c - 2] = v;
        }
        s += strspn(s, " \t");
        if (*s) {
            rc = gl_error(GL_EFORMAT, "%s:%d: key %s: more than %d numbers ('%.20s')", path, t.line,
                          key, 4 * UDHN_NPOINTS, s);
            goto fail;
        }
        if (n == cap) {
            int nc = cap ? 2 * cap : 256;
            entry *ne = gl_realloc(e, sizeof *ne * nc);
            if (!ne) { rc = GL_ENOMEM; goto fail; }
            e = ne;
            cap = nc;
        }
        e[n].key = key; /* points into t's buffer until copied below */
        e[n].pts = p;
        e[n].line = t.line;
        n++;
    }
    if (rc < 0) goto fail;
    /* An empty table would make every pair "not found" one by one; say so
     * once (and e is NULL here, which qsort must not get). */
    if (n == 0) {
        rc = gl_error(GL_EFORMAT, "%s: no points (expected lines 'KEY' and %d numbers, as "
                      "scripts/udhn-points writes them)", path, 4 * UDHN_NPOINTS);
        goto fail;
    }
    qsort(e, (size_t)n, sizeof *e, entry_cmp);
    for (int i = 1; i < n; i++)
        if (!strcmp(e[i].key, e[i - 1].key)) {
            int l0 = e[i].line < e[i - 1].line ? e[i].line : e[i - 1].line;
            int l1 = e[i].line < e[i - 1].line ? e[i - 1].line : e[i].line;
            rc = gl_error(GL_EFORMAT, "%s:%d: key %s was already given on line %d", path, l1, e[i].key, l0);
            goto fail;
        }
    out->keys = gl_calloc(n ? n : 1, sizeof *out->keys);
    out->points = gl_malloc(sizeof *out->points * (n ? n : 1));
    if (!out->keys || !out->points) { rc = GL_ENOMEM; goto fail; }
    for (int i = 0; i < n; i++) {
        out->keys[i] = gl_strdup(e[i].key);
        if (!out->keys[i]) { out->n = i; rc = GL_ENOMEM; goto fail; }
        out->points[i] = e[i].pts;
    }
    out->n = n;
    gl_free(e);
    text_lines_close(&t);
    return 0;
fail:
    gl_free(e);
    text_lines_close(&t);
    udhn_points_free(out);
    return rc;
}

static int key_cmp(const void *k, const void *elem)
{
    return strcmp((const char *)k, *(char *const *)elem);
}

int udhn_points_find(const udhn_points_table *t, const char *key, const udhn_points **out)
{
    *out = NULL;
    char **hit = t->n ? bsearch(key, t->keys, t->n, sizeof *t->keys, key_cmp) : NULL;
    if (!hit) return gl_error(GL_ENOTFOUND, "no CA-UDHN points for %s", key);
    *out = &t->points[hit - t->keys];
    return 0;
}

/* ---- error --------------------------------------------------------------------- */

static int apply(const double h[9], const double p[2], double q[2])
{
    double w = h[6] * p[0] + h[7] * p[1] + h[8];
    if (!(fabs(w) > 1e-12)) return GL_ENUMERIC;
    q[0] = (h[0] * p[0] + h[1] * p[1] + h[2]) / w;
    q[1] = (h[3] * p[0] + h[4] * p[1] + h[5]) / w;
    return 0;
}

int udhn_pair_error(const double h[9], const udhn_points *p, double *err)
{
    double sum = 0;
    for (int i = 0; i < UDHN_NPOINTS; i++) {
        double ha[2], hb[2];
        if (apply(h, p->a[i], ha) < 0 || apply(h, p->b[i], hb) < 0)
            return gl_error(GL_ENUMERIC, "udhn_pair_error: the homography sends point %d to infinity", i + 1);
        double e1 = hypot(p->b[i][0] - ha[0], p->b[i][1] - ha[1]);
        double e2 = hypot(p->a[i][0] - hb[0], p->a[i][1] - hb[1]);
        sum += e1 < e2 ? e1 : e2;
    }
    *err = sum / UDHN_NPOINTS;
    if (!isfinite(*err)) return gl_error(GL_ENUMERIC, "udhn_pair_error: error is not finite");
    return 0;
}

/* ---- frames -------------------------------------------------------------------- */

/* Source taps of output index i for bilinear resampling n_src -> n_dst with
 * half-pixel centres (OpenCV's INTER_LINEAR, which the protocol's code uses). */
static void resize_taps(int i, double scale, int n_src, int *i0, int *i1, double *w)
{
    double f = (i + 0.5) * scale - 0.5;
    if (f < 0) f = 0;
    *i0 = (int)f;
    if (*i0 > n_src - 1) *i0 = n_src - 1;
    *i1 = *i0 + 1 < n_src ? *i0 + 1 : n_src - 1;
    *w = f - *i0;
    if (*w > 1) *w = 1;
}

int udhn_rgb_resize(const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh)
{
    if (!src || !dst || sw < 1 || sh < 1 || dw < 1 || dh < 1)
        return gl_error(GL_EINVAL, "udhn_rgb_resize: bad sizes %dx%d -> %dx%d", sw, sh, dw, dh);
    const double sx = (double)sw / dw, sy = (double)sh / dh;
    for (int y = 0; y < dh; y++) {
        int y0, y1;
        double wy;
        resize_taps(y, sy, sh, &y0, &y1, &wy);
        for (int x = 0; x < dw; x++) {
            int x0, x1;
            double wx;
            resize_taps(x, sx, sw, &x0, &x1, &wx);
            const uint8_t *r0 = src + (size_t)y0 * sw * 3, *r1 = src + (size_t)y1 * sw * 3;
            uint8_t *o = dst + ((size_t)y * dw + x) * 3;
            for (int c = 0; c < 3; c++) {
                double v = (1 - wy) * ((1 - wx) * r0[x0 * 3 + c] + wx * r0[x1 * 3 + c]) +
                           wy * ((1 - wx) * r1[x0 * 3 + c] + wx * r1[x1 * 3 + c]);
                o[c] = (uint8_t)(v + 0.5);
            }
        }
    }
    return 0;
}

int udhn_frame_load(const char *path, uint8_t **rgb, int *orig_w, int *orig_h)
{
    image im = { 0 };
    int rc;
    *rgb = NULL;
    if ((rc = image_load(&im, path, 3)) < 0) return rc;
    if (orig_w) *orig_w = im.width;
    if (orig_h) *orig_h = im.height;
    if (im.width == UDHN_WIDTH && im.height == UDHN_HEIGHT) {
        *rgb = im.data; /* take the buffer: same layout */
        im.data = NULL;
        image_release(&im);
        return 0;
    }
    uint8_t *out = gl_malloc((size_t)UDHN_WIDTH * UDHN_HEIGHT * 3);
    if (!out) { image_release(&im); return GL_ENOMEM; }
    rc = udhn_rgb_resize(im.data, im.width, im.height, out, UDHN_WIDTH, UDHN_HEIGHT);
    image_release(&im);
    if (rc < 0) { gl_free(out); return rc; }
    *rgb = out;
    return 0;
}
