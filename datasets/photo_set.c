/* photo_set.c — the photos of datasets/photo_pairs.h: a folder's image files
 * in name order, or a list file's paths in its order, each loaded
 * (datasets/image.h), area-downscaled to a shorter side of at most
 * max_short_side and turned into a mip pyramid for synth_private.h's sampler.
 * photo_pairs.c renders pairs from them. */
#include "datasets/photo_pairs.h"

#include <dirent.h>
#include <libswscale/swscale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "datasets/image.h"
#include "datasets/synth_private.h"
#include "datasets/text_lines.h"

/* Appends a copy of s to the growing array *v of *n strings. */
static int names_push(char ***v, int *n, int *cap, const char *s)
{
    if (*n == *cap) {
        int c = *cap ? 2 * *cap : 32;
        char **nv = gl_realloc(*v, sizeof *nv * (size_t)c);
        if (!nv) return GL_ENOMEM;
        *v = nv;
        *cap = c;
    }
    if (!((*v)[*n] = gl_strdup(s))) return GL_ENOMEM;
    (*n)++;
    return 0;
}

/* The image files of a folder, sorted by name. */
static int list_folder(const char *dir, char ***names, int *n)
{
    int cap = 0, rc = 0;
    DIR *d = opendir(dir);
    if (!d) return gl_error(GL_EIO, "photos %s: cannot open the folder", dir);
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' && synth_is_image_file(e->d_name) &&
            (rc = names_push(names, n, &cap, e->d_name)) < 0)
            break;
    closedir(d);
    if (rc < 0) return rc;
    if (*n == 0)
        return gl_error(GL_ENOTFOUND, "photos %s: no .png, .jpg, .jpeg or .ppm photo in the folder",
                        dir);
    qsort(*names, (size_t)*n, sizeof **names, synth_cmp_names);
    return 0;
}

/* The paths of a list file, in its order (blank lines and # comments
 * skipped; line ends and blanks as text_lines.h takes them). */
static int list_file(const char *path, char ***names, int *n)
{
    text_lines t;
    char *line = NULL;
    int cap = 0, rc = text_lines_open(&t, path);
    if (rc < 0) return rc;
    while (rc == 0 && (rc = text_lines_next(&t, &line)) == 0) {
        while (*line == ' ' || *line == '\t') line++;
        if (*line && *line != '#') rc = names_push(names, n, &cap, line);
    }
    text_lines_close(&t);
    if (rc < 0) return rc;
    if (*n == 0) return gl_error(GL_ENOTFOUND, "photos %s: the list names no photo", path);
    return 0;
}

/* Area-downscales RGB24 img in place so that its shorter side is max_short. */
static int downscale(image *img, int max_short, const char *name)
{
    int w = img->width, h = img->height, s = w < h ? w : h;
    if (s <= max_short) return 0;
    double f = (double)max_short / s;
    int nw = w < h ? max_short : (int)lround(w * f), nh = w < h ? (int)lround(h * f) : max_short;
    uint8_t *out = gl_malloc((size_t)nw * nh * 3);
    if (!out) return GL_ENOMEM;
    struct SwsContext *sws = sws_getContext(w, h, AV_PIX_FMT_RGB24, nw, nh, AV_PIX_FMT_RGB24,
                                            SWS_AREA | SWS_ACCURATE_RND | SWS_BITEXACT, NULL, NULL,
                                            NULL);
    if (!sws) {
        gl_free(out);
        return gl_error(GL_EFFMPEG, "%s: cannot scale %dx%d to %dx%d", name, w, h, nw, nh);
    }
    const uint8_t *src[4] = { img->data, NULL, NULL, NULL };
    int ss[4] = { 3 * w, 0, 0, 0 }, ds[4] = { 3 * nw, 0, 0, 0 };
    uint8_t *dst[4] = { out, NULL, NULL, NULL };
    int ok = sws_scale(sws, src, ss, 0, h, dst, ds) > 0;
    sws_freeContext(sws);
    if (!ok) {
        gl_free(out);
        return gl_error(GL_EFFMPEG, "%s: scaling %dx%d to %dx%d failed", name, w, h, nw, nh);
    }
    gl_free(img->data);
    img->data = out;
    img->width = nw;
    img->height = nh;
    return 0;
}

int photo_set_open(const char *path, int max_short_side, photo_set **out)
{
    *out = NULL;
    if (!path) return gl_error(GL_EINVAL, "photo_set_open: no path");
    if (max_short_side < 16 || max_short_side > 8192)
        return gl_error(GL_EINVAL, "photos %s: max_short_side must be in [16, 8192], got %d", path,
                        max_short_side);
    struct stat st;
    if (stat(path, &st) != 0) return gl_error(GL_EIO, "photos %s: no such folder or list file", path);
    int is_dir = S_ISDIR(st.st_mode), rc;
    char *full = NULL, *base = NULL;
    image img = { 0 };
    photo_set *s = gl_calloc(1, sizeof *s);
    if (!s) return GL_ENOMEM;
    rc = is_dir ? list_folder(path, &s->names, &s->n) : list_file(path, &s->names, &s->n);
    if (rc < 0) goto fail;
    /* list entries are relative to the list's folder */
    base = gl_strdup(path);
    if (!base) { rc = GL_ENOMEM; goto fail; }
    if (!is_dir) {
        char *slash = strrchr(base, '/');
        if (slash) slash[0] = 0;
        else strcpy(base, ".");
    }
    s->tex = gl_calloc((size_t)s->n, sizeof *s->tex);
    if (!s->tex) { rc = GL_ENOMEM; goto fail; }
    for (int i = 0; i < s->n; i++) {
        gl_free(full);
        size_t L = strlen(base) + strlen(s->names[i]) + 2;
        if (!(full = gl_malloc(L))) { rc = GL_ENOMEM; goto fail; }
        if (s->names[i][0] == '/') snprintf(full, L, "%s", s->names[i]);
        else snprintf(full, L, "%s/%s", base, s->names[i]);
        if ((rc = image_load(&img, full, 3)) < 0) goto fail;
        if (img.width < 16 || img.height < 16) {
            rc = gl_error(GL_EFORMAT, "%s: %dx%d is too small for a photo (need 16x16)", full,
                          img.width, img.height);
            goto fail;
        }
        if ((rc = downscale(&img, max_short_side, full)) < 0) goto fail;
        rc = synth_texture_from_rgb(img.data, img.width, img.height, s->names[i], &s->tex[i]);
        image_release(&img);
        if (rc < 0) {
            gl_error_prefix(rc, "%s", full);
            goto fail;
        }
    }
    *out = s;
    s = NULL;
    rc = 0;
fail:
    image_release(&img);
    gl_free(full);
    gl_free(base);
    photo_set_free(&s);
    return rc;
}

void photo_set_free(photo_set **ps)
{
    if (!ps || !*ps) return;
    photo_set *s = *ps;
    for (int i = 0; i < s->n; i++) {
        if (s->tex) synth_texture_clear(&s->tex[i]);
        if (s->names) gl_free(s->names[i]);
    }
    gl_free(s->tex);
    gl_free(s->names);
    gl_free(s);
    *ps = NULL;
}

int photo_set_count(const photo_set *s) { return s ? s->n : 0; }

const char *photo_set_name(const photo_set *s, int i)
{
    return s && i >= 0 && i < s->n ? s->names[i] : NULL;
}

void photo_set_size(const photo_set *s, int i, int *width, int *height)
{
    int ok = s && i >= 0 && i < s->n;
    if (width) *width = ok ? s->tex[i].mip[0].w : 0;
    if (height) *height = ok ? s->tex[i].mip[0].h : 0;
}
