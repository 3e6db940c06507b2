/* UCF-101 layout: class list, split lists, clip lookup, list writing. See ucf101.h. */
#include "datasets/ucf101.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datasets/text_lines.h"

const char *dataset_split_name(dataset_split s)
{
    switch (s) {
    case DATASET_TRAIN: return "train";
    case DATASET_TEST: return "test";
    case DATASET_VAL: return "val";
    }
    return "?";
}

/* gl_malloc'ed printf. */
static char *str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *str_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return NULL;
    char *s = gl_malloc((size_t)n + 1);
    if (!s) return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* A growable text buffer for the list writer. */
typedef struct {
    char *s;
    size_t len, cap;
} strbuf;

static int strbuf_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int strbuf_printf(strbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return gl_error(GL_EINVAL, "strbuf: bad format");
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + (size_t)n + 1) cap *= 2;
        char *s = gl_realloc(b->s, cap);
        if (!s) return GL_ENOMEM;
        b->s = s;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

/* Splits s in place at blanks into at most max fields; returns the count,
 * or max + 1 when there are more. */
static int split_fields(char *s, char **f, int max)
{
    int n = 0;
    for (;;) {
        while (*s == ' ' || *s == '\t') s++;
        if (!*s) return n;
        if (n == max) return max + 1;
        f[n++] = s;
        while (*s && *s != ' ' && *s != '\t') s++;
        if (*s) *s++ = 0;
    }
}

/* A whole decimal number of at most 9 digits, no sign: 0 and *v, or -1. */
static int parse_small_uint(const char *s, size_t len, long *v)
{
    if (len == 0 || len > 9) return -1;
    long x = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i])) return -1;
        x = x * 10 + (s[i] - '0');
    }
    *v = x;
    return 0;
}

int dataset_index_find_class(const dataset_index *idx, const char *name)
{
    for (int i = 0; i < idx->num_classes; i++)
        if (!strcmp(idx->class_names[i], name)) return i;
    for (int i = 0; i < idx->num_classes; i++)
        if (!strcasecmp(idx->class_names[i], name)) return i;
    return -1;
}

static int load_classes(dataset_index *idx, const char *path)
{
    text_lines t;
    int cap = 0, rc = text_lines_open(&t, path);
    if (rc < 0) return rc;
    char *line = NULL;
    while ((rc = text_lines_next(&t, &line)) == 0) {
        char *f[2];
        int nf = split_fields(line, f, 2);
        if (nf == 0) continue;
        if (nf != 2) {
            rc = gl_error(GL_EFORMAT, "%s:%d: expected \"INDEX Name\", got \"%s\"", path, t.line,
                          line);
            goto fail;
        }
        long k;
        if (parse_small_uint(f[0], strlen(f[0]), &k) < 0 || k != idx->num_classes + 1) {
            rc = gl_error(GL_EFORMAT, "%s:%d: expected index %d, got \"%s\"", path, t.line,
                          idx->num_classes + 1, f[0]);
            goto fail;
        }
        if (strchr(f[1], '/')) {
            rc = gl_error(GL_EFORMAT, "%s:%d: class name \"%s\" contains '/'", path, t.line, f[1]);
            goto fail;
        }
        /* Folders are matched case-insensitively, so names must differ by more than case. */
        for (int i = 0; i < idx->num_classes; i++) {
            if (!strcasecmp(idx->class_names[i], f[1])) {
                rc = gl_error(GL_EFORMAT, "%s:%d: class \"%s\" repeats class %d \"%s\"", path,
                              t.line, f[1], i + 1, idx->class_names[i]);
                goto fail;
            }
        }
        if (idx->num_classes == cap) {
            int nc = cap ? cap * 2 : 128;
            char **names = gl_realloc(idx->class_names, (size_t)nc * sizeof *names);
            if (!names) { rc = GL_ENOMEM; goto fail; }
            idx->class_names = names;
            cap = nc;
        }
        if (!(idx->class_names[idx->num_classes] = gl_strdup(f[1]))) { rc = GL_ENOMEM; goto fail; }
        idx->num_classes++;
    }
    if (rc < 0) goto fail;
    if (idx->num_classes == 0) {
        rc = gl_error(GL_EFORMAT, "%s: no classes", path);
        goto fail;
    }
    rc = 0;
fail:
    text_lines_close(&t);
    return rc;
}

/* Parses "v_<Class>_g<GG>_c<CC>.<ext>" from the end, so class names may hold
 * underscores. Returns 0 with the class part [*cls, *cls + *cls_len). */
static int parse_clip_name(const char *file, const char **cls, size_t *cls_len, long *group,
                           long *clip)
{
    if (strncmp(file, "v_", 2) != 0) return -1;
    const char *dot = strrchr(file, '.');
    if (!dot || dot[1] == 0) return -1;
    const char *c = dot;
    while (c > file && isdigit((unsigned char)c[-1])) c--;
    if (c - file < 2 || c[-1] != 'c' || c[-2] != '_') return -1;
    if (parse_small_uint(c, (size_t)(dot - c), clip) < 0) return -1;
    const char *g = c - 2;
    while (g > file && isdigit((unsigned char)g[-1])) g--;
    if (g - file < 2 || g[-1] != 'g' || g[-2] != '_') return -1;
    if (parse_small_uint(g, (size_t)(c - 2 - g), group) < 0) return -1;
    const char *start = file + 2, *end = g - 2;
    if (end <= start) return -1;
    *cls = start;
    *cls_len = (size_t)(end - start);
    return 0;
}

static int add_clip(dataset_index *idx, long *cap, const dataset_clip *c)
{
    if (idx->num_clips == *cap) {
        long nc = *cap ? *cap * 2 : 1024;
        dataset_clip *a = gl_realloc(idx->clips, (size_t)nc * sizeof *a);
        if (!a) return GL_ENOMEM;
        idx->clips = a;
        *cap = nc;
    }
    idx->clips[idx->num_clips++] = *c;
    return 0;
}

/* One list file; a missing optional one (vallist) returns GL_ENOTFOUND with
 * no message. */
static int load_list(dataset_index *idx, long *cap, const char *path, dataset_split split,
                     int need_label, int optional)
{
    if (optional) {
        struct stat st;
        if (stat(path, &st) != 0 && errno == ENOENT) return GL_ENOTFOUND;
    }
    text_lines t;
    int rc = text_lines_open(&t, path);
    if (rc < 0) return rc;
    char *line = NULL;
    while ((rc = text_lines_next(&t, &line)) == 0) {
        char *f[2];
        int nf = split_fields(line, f, 2);
        if (nf == 0) continue;
        if (nf > 2) {
            rc = gl_error(GL_EFORMAT, "%s:%d: expected \"Class/file%s\", got more fields", path,
                          t.line, need_label ? " LABEL" : " [LABEL]");
            goto fail;
        }
        const char *rel = f[0];
        const char *slash = strchr(rel, '/');
        if (!slash || slash == rel || slash[1] == 0 || strchr(slash + 1, '/')) {
            rc = gl_error(GL_EFORMAT, "%s:%d: expected \"Class/file\", got \"%s\"", path, t.line,
                          rel);
            goto fail;
        }
        size_t flen = (size_t)(slash - rel);
        char folder[256];
        if (flen >= sizeof folder) {
            rc = gl_error(GL_EFORMAT, "%s:%d: class folder name too long", path, t.line);
            goto fail;
        }
        memcpy(folder, rel, flen);
        folder[flen] = 0;
        const char *file = slash + 1;
        int cls = dataset_index_find_class(idx, folder);
        if (cls < 0) {
            rc = gl_error(GL_EFORMAT, "%s:%d: class \"%s\" is not in classInd.txt", path, t.line,
                          folder);
            goto fail;
        }
        const char *fcls;
        size_t fcls_len;
        long group, clip;
        if (parse_clip_name(file, &fcls, &fcls_len, &group, &clip) < 0) {
            rc = gl_error(GL_EFORMAT, "%s:%d: bad file name \"%s\": expected v_<Class>_gGG_cCC.<ext>",
                          path, t.line, file);
            goto fail;
        }
        if (fcls_len != flen || strncasecmp(fcls, folder, flen) != 0) {
            rc = gl_error(GL_EFORMAT, "%s:%d: file name \"%s\" does not match its folder \"%s\"",
                          path, t.line, file, folder);
            goto fail;
        }
        if (nf == 2) {
            long label;
            if (parse_small_uint(f[1], strlen(f[1]), &label) < 0 || label < 1 ||
                label > idx->num_classes) {
                rc = gl_error(GL_EFORMAT, "%s:%d: label \"%s\" is out of range 1..%d", path,
                              t.line, f[1], idx->num_classes);
                goto fail;
            }
            if (label - 1 != cls) {
                rc = gl_error(GL_EFORMAT,
                              "%s:%d: label %ld (%s) disagrees with the class folder \"%s\" (%d)",
                              path, t.line, label, idx->class_names[label - 1], folder, cls + 1);
                goto fail;
            }
        } else if (need_label) {
            rc = gl_error(GL_EFORMAT, "%s:%d: missing label: expected \"Class/file LABEL\"", path,
                          t.line);
            goto fail;
        }
        dataset_clip c = { .label = cls, .group = (int)group, .clip = (int)clip, .split = split,
                           .line = t.line };
        if (!(c.rel_path = gl_strdup(rel))) { rc = GL_ENOMEM; goto fail; }
        if ((rc = add_clip(idx, cap, &c)) < 0) {
            gl_free(c.rel_path);
            goto fail;
        }
        idx->num_split[split]++;
    }
    if (rc < 0) goto fail;
    rc = 0;
fail:
    text_lines_close(&t);
    return rc;
}

static char *list_name(dataset_split s, int split_no)
{
    return str_printf("%slist%02d.txt", dataset_split_name(s), split_no);
}

static int cmp_clip_path(const void *a, const void *b)
{
    const dataset_clip *x = *(dataset_clip *const *)a, *y = *(dataset_clip *const *)b;
    int c = strcasecmp(x->rel_path, y->rel_path);
    if (c) return c;
    return (x < y) ? -1 : (x > y);
}

static int cmp_clip_group(const void *a, const void *b)
{
    const dataset_clip *x = *(dataset_clip *const *)a, *y = *(dataset_clip *const *)b;
    if (x->group != y->group) return x->group < y->group ? -1 : 1;
    if (x->split != y->split) return x->split < y->split ? -1 : 1;
    return (x < y) ? -1 : (x > y);
}

/* The clips' addresses sorted by cmp (gl_free the array), or NULL. */
static const dataset_clip **sorted_clips(const dataset_index *idx, int (*cmp)(const void *, const void *))
{
    const dataset_clip **p = gl_malloc((size_t)idx->num_clips * sizeof *p);
    if (!p) return NULL;
    for (long i = 0; i < idx->num_clips; i++) p[i] = &idx->clips[i];
    qsort(p, (size_t)idx->num_clips, sizeof *p, cmp);
    return p;
}

static int check_duplicates(const dataset_index *idx)
{
    if (idx->num_clips < 2) return 0;
    const dataset_clip **p = sorted_clips(idx, cmp_clip_path);
    if (!p) return GL_ENOMEM;
    int rc = 0;
    for (long i = 1; i < idx->num_clips; i++) {
        if (strcasecmp(p[i - 1]->rel_path, p[i]->rel_path)) continue;
        /* p[i-1] is the earlier one (clips are stored in list order). */
        char *a = list_name(p[i - 1]->split, idx->split_no), *b = list_name(p[i]->split, idx->split_no);
        rc = gl_error(GL_EFORMAT, "%s:%d: \"%s\" is already listed at %s:%d", b ? b : "?",
                      p[i]->line, p[i]->rel_path, a ? a : "?", p[i - 1]->line);
        gl_free(a);
        gl_free(b);
        break;
    }
    gl_free(p);
    return rc;
}

int dataset_index_check_groups(const dataset_index *idx)
{
    if (!idx) return gl_error(GL_EINVAL, "dataset_index_check_groups: no index");
    if (idx->num_clips < 2) return 0;
    const dataset_clip **p = sorted_clips(idx, cmp_clip_group);
    if (!p) return GL_ENOMEM;
    int rc = 0;
    for (long i = 1; i < idx->num_clips; i++) {
        if (p[i - 1]->group != p[i]->group || p[i - 1]->split == p[i]->split) continue;
        char *a = list_name(p[i - 1]->split, idx->split_no), *b = list_name(p[i]->split, idx->split_no);
        rc = gl_error(GL_EFORMAT, "group %d is in both %s (%s, %s:%d) and %s (%s, %s:%d)",
                      p[i]->group, dataset_split_name(p[i - 1]->split), p[i - 1]->rel_path,
                      a ? a : "?", p[i - 1]->line, dataset_split_name(p[i]->split),
                      p[i]->rel_path, b ? b : "?", p[i]->line);
        gl_free(a);
        gl_free(b);
        break;
    }
    gl_free(p);
    return rc;
}

/* ---- finding clips on disk ------------------------------------------------ */

typedef struct {
    char **names;
    size_t n;
} name_list;

static void name_list_free(name_list *l)
{
    for (size_t i = 0; i < l->n; i++) gl_free(l->names[i]);
    gl_free(l->names);
    l->names = NULL;
    l->n = 0;
}

static int cmp_name(const void *a, const void *b)
{
    return strcasecmp(*(char *const *)a, *(char *const *)b);
}

/* The entries of folder `dir`, sorted case-insensitively. GL_ENOTFOUND (no
 * message) when it is not there or not a folder. */
static int name_list_read(name_list *l, const char *dir)
{
    l->names = NULL;
    l->n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT || errno == ENOTDIR) return GL_ENOTFOUND;
        return gl_error(GL_EIO, "%s: cannot list folder: %s", dir, strerror(errno));
    }
    size_t cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue; /* ., .., and hidden/temporary files */
        if (l->n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            char **a = gl_realloc(l->names, nc * sizeof *a);
            if (!a) { rc = GL_ENOMEM; goto fail; }
            l->names = a;
            cap = nc;
        }
        if (!(l->names[l->n] = gl_strdup(e->d_name))) { rc = GL_ENOMEM; goto fail; }
        l->n++;
    }
    closedir(d);
    if (l->n) qsort(l->names, l->n, sizeof *l->names, cmp_name);
    return 0;
fail:
    closedir(d);
    name_list_free(l);
    return rc;
}

/* The entry equal to key, preferring an exact match over a case-insensitive one. */
static const char *name_list_find(const name_list *l, const char *key)
{
    if (!l->n) return NULL;
    char **hit = bsearch(&key, l->names, l->n, sizeof *l->names, cmp_name);
    if (!hit) return NULL;
    size_t i = (size_t)(hit - l->names), lo = i, hi = i;
    while (lo > 0 && !strcasecmp(l->names[lo - 1], key)) lo--;
    while (hi + 1 < l->n && !strcasecmp(l->names[hi + 1], key)) hi++;
    for (size_t j = lo; j <= hi; j++)
        if (!strcmp(l->names[j], key)) return l->names[j];
    return l->names[lo];
}

typedef struct {
    int loaded;
    char *folder;        /* name on disk, NULL when absent */
    name_list files;
} class_folder;

/* mmaction2's rawframes in place of the video: ROOT/Class/<clip>/img_00001.jpg
 * (the file name without its extension), which video.h reads as a video. */
static int find_rawframes(const char *root, const class_folder *f, const char *file, dataset_clip *c)
{
    char stem[256];
    snprintf(stem, sizeof stem, "%s", file);
    char *dot = strrchr(stem, '.');
    if (dot && dot > stem) *dot = 0;
    const char *on_disk = name_list_find(&f->files, stem);
    if (!on_disk) return 0;
    char *dir = str_printf("%s/%s/%s", root, f->folder, on_disk);
    char *first = dir ? str_printf("%s/img_00001.jpg", dir) : NULL;
    if (!first) {
        gl_free(dir);
        return GL_ENOMEM;
    }
    struct stat st;
    if (stat(first, &st) == 0 && S_ISREG(st.st_mode)) {
        gl_free(c->path);
        c->path = dir;
        c->exists = 1;
        dir = NULL;
    }
    gl_free(first);
    gl_free(dir);
    return 0;
}

static int resolve_clips(dataset_index *idx)
{
    int rc = 0;
    name_list top = { 0 };
    class_folder *cf = gl_calloc((size_t)idx->num_classes, sizeof *cf);
    if (!cf) return GL_ENOMEM;
    rc = name_list_read(&top, idx->root);
    if (rc == GL_ENOTFOUND) {
        rc = gl_error(GL_EIO, "%s: the clip root is not a folder", idx->root);
        goto fail;
    }
    if (rc < 0) goto fail;
    idx->num_missing = 0;
    for (long i = 0; i < idx->num_clips; i++) {
        dataset_clip *c = &idx->clips[i];
        const char *slash = strchr(c->rel_path, '/');
        class_folder *f = &cf[c->label];
        if (!f->loaded) {
            f->loaded = 1;
            char folder[256];
            size_t flen = (size_t)(slash - c->rel_path);
            memcpy(folder, c->rel_path, flen); /* load_list checked the length */
            folder[flen] = 0;
            const char *on_disk = name_list_find(&top, folder);
            if (on_disk) {
                char *dir = str_printf("%s/%s", idx->root, on_disk);
                if (!dir) { rc = GL_ENOMEM; goto fail; }
                rc = name_list_read(&f->files, dir);
                gl_free(dir);
                if (rc == 0) {
                    if (!(f->folder = gl_strdup(on_disk))) { rc = GL_ENOMEM; goto fail; }
                } else if (rc != GL_ENOTFOUND) {
                    goto fail;
                }
                rc = 0;
            }
        }
        const char *file = f->folder ? name_list_find(&f->files, slash + 1) : NULL;
        c->exists = 0;
        if (file) {
            c->path = str_printf("%s/%s/%s", idx->root, f->folder, file);
            if (!c->path) { rc = GL_ENOMEM; goto fail; }
            struct stat st;
            c->exists = stat(c->path, &st) == 0 && S_ISREG(st.st_mode);
        } else {
            c->path = str_printf("%s/%s", idx->root, c->rel_path);
            if (!c->path) { rc = GL_ENOMEM; goto fail; }
        }
        if (!c->exists && f->folder && (rc = find_rawframes(idx->root, f, slash + 1, c)) < 0) goto fail;
        if (!c->exists) idx->num_missing++;
    }
fail:
    for (int k = 0; k < idx->num_classes; k++) {
        gl_free(cf[k].folder);
        name_list_free(&cf[k].files);
    }
    gl_free(cf);
    name_list_free(&top);
    return rc;
}

/* ---- the index ------------------------------------------------------------ */

/* *out = root made absolute against the working folder (links are kept, not
 * resolved), without trailing slashes; gl_malloc'ed. */
static int absolute_path(const char *root, char **out)
{
    size_t n = strlen(root);
    while (n > 1 && root[n - 1] == '/') n--;
    char cwd[PATH_MAX] = "";
    if (root[0] != '/' && !getcwd(cwd, sizeof cwd))
        return gl_error(GL_EIO, "%s: cannot make the path absolute: %s", root, strerror(errno));
    if (root[0] == '/') *out = str_printf("%.*s", (int)n, root);
    else if (n == 1 && root[0] == '.') *out = gl_strdup(cwd);
    else *out = str_printf("%s%s%.*s", cwd, strcmp(cwd, "/") ? "/" : "", (int)n, root);
    return *out ? 0 : GL_ENOMEM;
}

/* The places a list folder is looked for, in order: inside the root (as
 * glocal's own layouts and UCF-101 unpacked into its root), beside it (the
 * two official archives unpacked side by side), mmaction2's
 * data/ucf101/{videos,annotations}, then the root itself. */
static const char *const lists_places[] = { "%s/ucfTrainTestlist", "%s/../ucfTrainTestlist", "%s/../annotations",
                                            "%s" };
enum { NUM_LISTS_PLACES = (int)(sizeof lists_places / sizeof *lists_places) };

static int has_class_file(const char *dir)
{
    char *p = str_printf("%s/classInd.txt", dir);
    if (!p) return GL_ENOMEM;
    struct stat sb;
    int ok = stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
    gl_free(p);
    return ok;
}

int dataset_lists_locate(const char *root, const char *lists, char *out, size_t n)
{
    if (!root || !root[0] || !out || !n) return gl_error(GL_EINVAL, "dataset_lists_locate: no root or no buffer");
    if (lists) {
        if ((size_t)snprintf(out, n, "%s", lists) >= n)
            return gl_error(GL_EINVAL, "dataset_lists_locate: list folder path too long: %s", lists);
        return 0;
    }
    char looked[NUM_LISTS_PLACES][PATH_MAX];
    for (int i = 0; i < NUM_LISTS_PLACES; i++) {
        if ((size_t)snprintf(looked[i], sizeof looked[i], lists_places[i], root) >= sizeof looked[i])
            return gl_error(GL_EINVAL, "dataset_lists_locate: root path too long: %s", root);
        int ok = has_class_file(looked[i]);
        if (ok < 0) return ok;
        if (!ok) continue;
        if ((size_t)snprintf(out, n, "%s", looked[i]) >= n)
            return gl_error(GL_EINVAL, "dataset_lists_locate: list folder path too long: %s", looked[i]);
        return 0;
    }
    return gl_error(GL_ENOTFOUND,
                    "no classInd.txt in %s, %s, %s or %s (put the split lists in one of them, or name their "
                    "folder: --lists DIR, or dataset.lists in the config)",
                    looked[0], looked[1], looked[2], looked[3]);
}

int dataset_index_load(dataset_index **out, const char *root, const char *lists, int split_no)
{
    if (!out) return gl_error(GL_EINVAL, "dataset_index_load: out is NULL");
    *out = NULL;
    if (!root || !root[0]) return gl_error(GL_EINVAL, "dataset_index_load: no clip root given");
    if (split_no < 1 || split_no > 99)
        return gl_error(GL_EINVAL, "dataset_index_load: split %d is not in 1..99", split_no);
    char found[PATH_MAX];
    int rc = dataset_lists_locate(root, lists, found, sizeof found);
    if (rc < 0) return rc;
    lists = found;
    char *path = NULL;
    dataset_index *idx = gl_calloc(1, sizeof *idx);
    if (!idx) return GL_ENOMEM;
    idx->split_no = split_no;
    if ((rc = absolute_path(root, &idx->root)) < 0) goto fail;
    if (!(idx->lists = gl_strdup(lists))) {
        rc = GL_ENOMEM;
        goto fail;
    }
    if (!(path = str_printf("%s/classInd.txt", lists))) { rc = GL_ENOMEM; goto fail; }
    if ((rc = load_classes(idx, path)) < 0) goto fail;

    long cap = 0;
    static const struct { dataset_split split; int need_label, optional; } lists_[] = {
        { DATASET_TRAIN, 1, 0 }, { DATASET_TEST, 0, 0 }, { DATASET_VAL, 0, 1 },
    };
    for (size_t k = 0; k < sizeof lists_ / sizeof *lists_; k++) {
        gl_free(path);
        path = str_printf("%s/%slist%02d.txt", lists, dataset_split_name(lists_[k].split), split_no);
        if (!path) { rc = GL_ENOMEM; goto fail; }
        rc = load_list(idx, &cap, path, lists_[k].split, lists_[k].need_label, lists_[k].optional);
        if (rc == GL_ENOTFOUND && lists_[k].optional) continue;
        if (rc < 0) goto fail;
        if (lists_[k].split == DATASET_VAL) idx->has_val = 1;
    }
    if ((rc = check_duplicates(idx)) < 0) goto fail;
    if ((rc = dataset_index_check_groups(idx)) < 0) {
        gl_error_prefix(rc, "%s", lists);
        goto fail;
    }
    if ((rc = resolve_clips(idx)) < 0) goto fail;
    gl_free(path);
    *out = idx;
    return 0;
fail:
    gl_free(path);
    dataset_index_free(&idx);
    return rc;
}

void dataset_index_free(dataset_index **pidx)
{
    if (!pidx || !*pidx) return;
    dataset_index *idx = *pidx;
    for (int i = 0; i < idx->num_classes; i++) gl_free(idx->class_names[i]);
    gl_free(idx->class_names);
    for (long i = 0; i < idx->num_clips; i++) {
        gl_free(idx->clips[i].rel_path);
        gl_free(idx->clips[i].path);
    }
    gl_free(idx->clips);
    gl_free(idx->root);
    gl_free(idx->lists);
    gl_free(idx);
    *pidx = NULL;
}

int dataset_index_summary(const dataset_index *idx, int max_missing, char *buf, size_t n)
{
    size_t used = 0;
    int total = 0;
#define PUT(...)                                                                        \
    do {                                                                                \
        int k_ = snprintf(buf + used, used < n ? n - used : 0, __VA_ARGS__); \
        if (k_ > 0) {                                                                   \
            total += k_;                                                                \
            used = used + (size_t)k_ < n ? used + (size_t)k_ : (n ? n - 1 : 0);          \
        }                                                                               \
    } while (0)
    char dummy[1];
    if (!buf) {
        buf = dummy;
        n = 0;
    }
    if (n) buf[0] = 0;
    PUT("%ld clips in %d classes (split %d): %ld train, %ld test", idx->num_clips,
        idx->num_classes, idx->split_no, idx->num_split[DATASET_TRAIN],
        idx->num_split[DATASET_TEST]);
    if (idx->has_val) PUT(", %ld val", idx->num_split[DATASET_VAL]);
    PUT("; %ld found, %ld missing under %s", idx->num_clips - idx->num_missing, idx->num_missing,
        idx->root);
    int shown = 0;
    for (long i = 0; i < idx->num_clips && shown < max_missing; i++) {
        if (idx->clips[i].exists) continue;
        PUT("%s%s", shown ? ", " : ", e.g. ", idx->clips[i].rel_path);
        shown++;
    }
    if (shown && shown < idx->num_missing) PUT(", ...");
#undef PUT
    return total;
}

int dataset_lists_write(const char *dir, int split_no, int num_classes,
                        char *const *class_names, long num_clips, const dataset_clip *clips)
{
    if (!dir || !class_names || (num_clips > 0 && !clips) || num_classes < 1 || num_clips < 0)
        return gl_error(GL_EINVAL, "dataset_lists_write: missing folder, classes or clips");
    if (split_no < 1 || split_no > 99)
        return gl_error(GL_EINVAL, "dataset_lists_write: split %d is not in 1..99", split_no);
    for (int i = 0; i < num_classes; i++) {
        const char *s = class_names[i];
        if (!s || !s[0] || strpbrk(s, " \t\r\n/"))
            return gl_error(GL_EINVAL, "dataset_lists_write: class %d name \"%s\" is empty or "
                            "holds a blank or '/'", i + 1, s ? s : "");
    }
    int has_val = 0;
    for (long i = 0; i < num_clips; i++) {
        const dataset_clip *c = &clips[i];
        if (!c->rel_path || !c->rel_path[0] || strpbrk(c->rel_path, " \t\r\n") ||
            c->label < 0 || c->label >= num_classes || (unsigned)c->split >= DATASET_NUM_SPLITS)
            return gl_error(GL_EINVAL, "dataset_lists_write: clip %ld (\"%s\") has a bad path, "
                            "label %d or split", i, c->rel_path ? c->rel_path : "", c->label);
        has_val |= c->split == DATASET_VAL;
    }
    int rc = gl_mkdirs(dir);
    if (rc < 0) return rc;
    strbuf b = { 0 };
    char *path = NULL;
    for (int i = 0; i < num_classes; i++)
        if ((rc = strbuf_printf(&b, "%d %s\r\n", i + 1, class_names[i])) < 0) goto fail;
    if (!(path = str_printf("%s/classInd.txt", dir))) { rc = GL_ENOMEM; goto fail; }
    if ((rc = gl_write_file_atomic(path, b.s, b.len)) < 0) goto fail;
    for (int s = 0; s < DATASET_NUM_SPLITS; s++) {
        if (s == DATASET_VAL && !has_val) break;
        b.len = 0;
        if (b.s) b.s[0] = 0;
        for (long i = 0; i < num_clips; i++) {
            if ((int)clips[i].split != s) continue;
            if (s == DATASET_TRAIN)
                rc = strbuf_printf(&b, "%s %d\r\n", clips[i].rel_path, clips[i].label + 1);
            else
                rc = strbuf_printf(&b, "%s\r\n", clips[i].rel_path);
            if (rc < 0) goto fail;
        }
        gl_free(path);
        if (!(path = str_printf("%s/%slist%02d.txt", dir, dataset_split_name((dataset_split)s),
                                split_no))) {
            rc = GL_ENOMEM;
            goto fail;
        }
        if ((rc = gl_write_file_atomic(path, b.s ? b.s : "", b.len)) < 0) goto fail;
    }
    rc = 0;
fail:
    gl_free(path);
    gl_free(b.s);
    return rc;
}
