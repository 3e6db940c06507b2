/* synth_textures.c — the texture folder of the synthetic benchmark: every
 * photo in it, in name order, through datasets/image.h (which files are
 * photos, and their order, photo_set.c's folders share). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "datasets/image.h"
#include "datasets/synth_private.h"

int synth_is_image_file(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name) return 0;
    return !strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") ||
           !strcasecmp(dot, ".ppm");
}

int synth_cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int synth_textures_load(const char *dir, synth *s)
{
    int rc = 0, n = 0;
    char *names[SYNTH_MAX_TEXTURES];
    char *path = NULL;
    image img = { 0 };
    DIR *d = opendir(dir);
    if (!d) return gl_error(GL_EIO, "textures %s: cannot open the folder", dir);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !synth_is_image_file(e->d_name)) continue;
        if (n == SYNTH_MAX_TEXTURES) {
            rc = gl_error(GL_EINVAL, "textures %s: more than %d images", dir, SYNTH_MAX_TEXTURES);
            goto fail;
        }
        names[n] = gl_strdup(e->d_name);
        if (!names[n]) {
            rc = GL_ENOMEM;
            goto fail;
        }
        n++;
    }
    if (n == 0) {
        rc = gl_error(GL_ENOTFOUND, "textures %s: no .png, .jpg or .ppm images in the folder", dir);
        goto fail;
    }
    qsort(names, (size_t)n, sizeof names[0], synth_cmp_names);
    s->tex = gl_calloc((size_t)n, sizeof *s->tex);
    if (!s->tex) {
        rc = GL_ENOMEM;
        goto fail;
    }
    size_t plen = strlen(dir) + 2 + 256;
    path = gl_malloc(plen + 64);
    if (!path) {
        rc = GL_ENOMEM;
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        snprintf(path, plen + 64, "%s/%s", dir, names[i]);
        rc = image_load(&img, path, 3);
        if (rc < 0) goto fail;
        rc = synth_texture_from_rgb(img.data, img.width, img.height, names[i], &s->tex[i]);
        image_release(&img);
        if (rc < 0) {
            gl_error_prefix(rc, "textures %s", dir);
            goto fail;
        }
        s->ntex = i + 1;
    }
fail:
    image_release(&img);
    gl_free(path);
    for (int i = 0; i < n; i++) gl_free(names[i]);
    closedir(d);
    return rc;
}
