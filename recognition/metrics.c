/* metrics.c — top-1/top-5, per-class and mean class accuracy, the confusion
 * matrix (CSV, PNG), per-clip score files and late fusion. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/image.h"
#include "recognition/classifier.h"

int cls_metrics_compute(const float *scores, const int32_t *labels, long n, int C, cls_metrics *m)
{
    memset(m, 0, sizeof *m);
    if (!scores || !labels || n < 0 || C < 1) return gl_error(GL_EINVAL, "cls_metrics_compute: bad arguments");
    m->num_classes = C;
    if (!(m->per_class = gl_calloc((size_t)C, sizeof *m->per_class)) ||
        !(m->class_count = gl_calloc((size_t)C, sizeof *m->class_count)) ||
        !(m->confusion = gl_calloc((size_t)C * C, sizeof *m->confusion))) {
        cls_metrics_free(m);
        return GL_ENOMEM;
    }
    int k5 = C < 5 ? C : 5;
    long c1 = 0, c5 = 0;
    for (long i = 0; i < n; i++) {
        int y = labels[i];
        if (y < 0) continue;
        if (y >= C) {
            cls_metrics_free(m);
            return gl_error(GL_EINVAL, "cls_metrics_compute: clip %ld has label %d, expected < %d classes", i, y, C);
        }
        const float *s = scores + (size_t)i * C;
        /* rank of the true class: classes scoring higher, or equal with a lower index */
        int pred = 0, above = 0;
        for (int c = 0; c < C; c++) {
            if (s[c] > s[pred]) pred = c;
            if (c != y && (s[c] > s[y] || (s[c] == s[y] && c < y))) above++;
        }
        m->n++;
        m->class_count[y]++;
        m->confusion[(size_t)y * C + pred]++;
        c1 += pred == y;
        c5 += above < k5;
    }
    m->top1 = m->n ? (double)c1 / m->n : NAN;
    m->top5 = m->n ? (double)c5 / m->n : NAN;
    double sum = 0;
    int present = 0;
    for (int c = 0; c < C; c++) {
        if (m->class_count[c]) {
            m->per_class[c] = (double)m->confusion[(size_t)c * C + c] / m->class_count[c];
            sum += m->per_class[c];
            present++;
        } else {
            m->per_class[c] = NAN;
        }
    }
    m->mean_class = present ? sum / present : NAN;
    return 0;
}

void cls_metrics_free(cls_metrics *m)
{
    if (!m) return;
    gl_free(m->per_class);
    gl_free(m->class_count);
    gl_free(m->confusion);
    memset(m, 0, sizeof *m);
}

/* ---- text building --------------------------------------------------------------- */

typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#include <stdarg.h>
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (k < 0) { b->oom = 1; return; }
        if (b->s && b->len + (size_t)k < b->cap) { b->len += (size_t)k; return; }
        size_t cap = (b->cap ? b->cap * 2 : 1024) + (size_t)k;
        char *ns = gl_realloc(b->s, cap);
        if (!ns) { b->oom = 1; return; }
        b->s = ns;
        b->cap = cap;
    }
}

/* JSON string body: escapes quotes, backslashes and control characters. */
static void sb_json_str(sbuf *b, const char *s)
{
    sb_printf(b, "\"");
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') sb_printf(b, "\\%c", ch);
        else if (ch < 0x20) sb_printf(b, "\\u%04x", ch);
        else sb_printf(b, "%c", ch);
    }
    sb_printf(b, "\"");
}

static void sb_num(sbuf *b, double v)
{
    if (isfinite(v)) sb_printf(b, "%.6g", v);
    else sb_printf(b, "null");
}

int cls_metrics_to_json(const cls_metrics *m, char *const *names, char **json)
{
    sbuf b = { 0 };
    sb_printf(&b, "{\"clips\": %ld, \"classes\": %d, \"top1\": ", m->n, m->num_classes);
    sb_num(&b, m->top1);
    sb_printf(&b, ", \"top5\": ");
    sb_num(&b, m->top5);
    sb_printf(&b, ", \"mean_class_accuracy\": ");
    sb_num(&b, m->mean_class);
    sb_printf(&b, ", \"per_class\": {");
    for (int c = 0; c < m->num_classes; c++) {
        if (c) sb_printf(&b, ", ");
        if (names) sb_json_str(&b, names[c]);
        else sb_printf(&b, "\"%d\"", c);
        sb_printf(&b, ": ");
        sb_num(&b, m->per_class[c]);
    }
    sb_printf(&b, "}}");
    if (b.oom) { gl_free(b.s); return gl_error(GL_ENOMEM, "cls_metrics_to_json: out of memory"); }
    *json = b.s;
    return 0;
}

/* CSV cell: quoted when it holds a comma, quote or newline (RFC 4180). */
static void sb_csv(sbuf *b, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) { sb_printf(b, "%s", s); return; }
    sb_printf(b, "\"");
    for (; *s; s++) sb_printf(b, *s == '"' ? "\"\"" : "%c", *s);
    sb_printf(b, "\"");
}

static int sb_save(sbuf *b, const char *path)
{
    if (b->oom) { gl_free(b->s); return gl_error(GL_ENOMEM, "%s: out of memory building the file", path); }
    int rc = gl_write_file_atomic(path, b->s ? b->s : "", b->len);
    gl_free(b->s);
    return rc;
}

int cls_metrics_save_confusion_csv(const char *path, const cls_metrics *m, char *const *names)
{
    sbuf b = { 0 };
    int C = m->num_classes;
    sb_printf(&b, "true\\pred");
    for (int c = 0; c < C; c++) {
        sb_printf(&b, ",");
        if (names) sb_csv(&b, names[c]);
        else sb_printf(&b, "%d", c);
    }
    sb_printf(&b, "\n");
    for (int r = 0; r < C; r++) {
        if (names) sb_csv(&b, names[r]);
        else sb_printf(&b, "%d", r);
        for (int c = 0; c < C; c++) sb_printf(&b, ",%ld", m->confusion[(size_t)r * C + c]);
        sb_printf(&b, "\n");
    }
    return sb_save(&b, path);
}

int cls_metrics_save_confusion_png(const char *path, const cls_metrics *m, int cell)
{
    int C = m->num_classes;
    if (cell < 1 || (long)C * cell > 8192) return gl_error(GL_EINVAL, "confusion PNG: %d classes x %d px is too large", C, cell);
    int W = C * cell;
    uint8_t *img = gl_malloc((size_t)W * W * 3);
    if (!img) return GL_ENOMEM;
    for (int r = 0; r < C; r++)
        for (int c = 0; c < C; c++) {
            double v = m->class_count[r] ? (double)m->confusion[(size_t)r * C + c] / m->class_count[r] : 0;
            /* white -> (8, 48, 107), the dark end of matplotlib's "Blues" */
            uint8_t px[3] = { (uint8_t)lrint(255 - v * (255 - 8)), (uint8_t)lrint(255 - v * (255 - 48)),
                              (uint8_t)lrint(255 - v * (255 - 107)) };
            for (int y = 0; y < cell; y++)
                for (int x = 0; x < cell; x++) memcpy(img + ((size_t)(r * cell + y) * W + c * cell + x) * 3, px, 3);
        }
    int rc = image_save_png(path, img, W, W, 3);
    gl_free(img);
    return rc;
}

/* ---- per-clip scores ------------------------------------------------------------------ */

int cls_scores_save(const char *path, long n, int C, const long *items, const char *const *names,
                    const int32_t *labels, const float *scores, char *const *class_names)
{
    sbuf b = { 0 };
    sb_printf(&b, "item,name,label");
    for (int c = 0; c < C; c++) {
        sb_printf(&b, ",");
        if (class_names) sb_csv(&b, class_names[c]);
        else sb_printf(&b, "class%d", c);
    }
    sb_printf(&b, "\n");
    for (long i = 0; i < n; i++) {
        sb_printf(&b, "%ld,", items ? items[i] : i);
        sb_csv(&b, names && names[i] ? names[i] : "");
        sb_printf(&b, ",%d", labels ? labels[i] : -1);
        for (int c = 0; c < C; c++) sb_printf(&b, ",%.9g", scores[(size_t)i * C + c]);
        sb_printf(&b, "\n");
    }
    return sb_save(&b, path);
}

void cls_names_free(char **names, long n)
{
    if (!names) return;
    for (long i = 0; i < n; i++) gl_free(names[i]);
    gl_free(names);
}

/* Splits one CSV line in place into at most max cells (handles quotes). */
static int csv_split(char *line, char **cells, int max)
{
    int n = 0;
    char *r = line, *w = line;
    while (n < max) {
        cells[n++] = w;
        if (*r == '"') {
            r++;
            for (;;) {
                if (!*r) break;
                if (*r == '"' && r[1] == '"') { *w++ = '"'; r += 2; continue; }
                if (*r == '"') { r++; break; }
                *w++ = *r++;
            }
        }
        while (*r && *r != ',') *w++ = *r++;
        if (*r == ',') { *w++ = 0; r++; continue; }
        *w = 0;
        break;
    }
    return n;
}

int cls_scores_load(const char *path, long *n_out, int *C_out, long **items_out, char ***names_out,
                    int32_t **labels_out, float **scores_out, char ***cnames_out)
{
    char *text = NULL;
    size_t size = 0;
    int rc = gl_read_file(path, (void **)&text, &size);
    if (rc < 0) return rc;
    char *t2 = gl_realloc(text, size + 1);
    if (!t2) { gl_free(text); return GL_ENOMEM; }
    text = t2;
    text[size] = 0;
    long lines = 0;
    for (size_t i = 0; i < size; i++) lines += text[i] == '\n';
    char **cells = NULL, **cnames = NULL, **names = NULL;
    long *items = NULL;
    int32_t *labels = NULL;
    float *scores = NULL;
    int C = 0;
    long n = 0;
    char *save = NULL, *line = strtok_r(text, "\n", &save);
    if (!line || strncmp(line, "item,name,label,", 16) != 0) {
        rc = gl_error(GL_EFORMAT, "%s:1: expected the header \"item,name,label,<classes>\" of a glocal scores file", path);
        goto fail;
    }
    size_t ll = strlen(line);
    if (ll && line[ll - 1] == '\r') line[ll - 1] = 0;
    int maxc = 4;
    for (char *p = line; *p; p++) maxc += *p == ',';
    rc = GL_ENOMEM;
    if (!(cells = gl_malloc((size_t)maxc * sizeof *cells))) goto fail;
    int hc = csv_split(line, cells, maxc);
    C = hc - 3;
    if (C < 1) { rc = gl_error(GL_EFORMAT, "%s:1: no class columns", path); goto fail; }
    if (!(cnames = gl_calloc((size_t)C, sizeof *cnames)) || !(items = gl_malloc((size_t)(lines + 1) * sizeof *items)) ||
        !(names = gl_calloc((size_t)(lines + 1), sizeof *names)) || !(labels = gl_malloc((size_t)(lines + 1) * sizeof *labels)) ||
        !(scores = gl_malloc((size_t)(lines + 1) * C * sizeof *scores)))
        goto fail;
    for (int c = 0; c < C; c++)
        if (!(cnames[c] = gl_strdup(cells[3 + c]))) goto fail;
    long lineno = 1;
    while ((line = strtok_r(NULL, "\n", &save))) {
        lineno++;
        ll = strlen(line);
        if (ll && line[ll - 1] == '\r') line[--ll] = 0;
        if (!ll) continue;
        int k = csv_split(line, cells, maxc);
        if (k != C + 3) { rc = gl_error(GL_EFORMAT, "%s:%ld: %d cells, expected %d", path, lineno, k, C + 3); goto fail; }
        char *end;
        errno = 0;
        items[n] = strtol(cells[0], &end, 10);
        if (errno || *end || end == cells[0]) { rc = gl_error(GL_EFORMAT, "%s:%ld: item '%s' is not a number", path, lineno, cells[0]); goto fail; }
        long lab = strtol(cells[2], &end, 10);
        if (*end || end == cells[2] || lab < -1 || lab >= C) { rc = gl_error(GL_EFORMAT, "%s:%ld: label '%s', expected -1..%d", path, lineno, cells[2], C - 1); goto fail; }
        labels[n] = (int32_t)lab;
        for (int c = 0; c < C; c++) {
            double v = strtod(cells[3 + c], &end);
            if (*end || end == cells[3 + c] || !isfinite(v)) { rc = gl_error(GL_EFORMAT, "%s:%ld: score '%s' is not a finite number", path, lineno, cells[3 + c]); goto fail; }
            scores[(size_t)n * C + c] = (float)v;
        }
        if (!(names[n] = gl_strdup(cells[1]))) { rc = GL_ENOMEM; goto fail; }
        n++;
    }
    gl_free(cells);
    gl_free(text);
    *n_out = n;
    *C_out = C;
    *items_out = items;
    *labels_out = labels;
    *scores_out = scores;
    *names_out = names;
    *cnames_out = cnames;
    return 0;
fail:
    cls_names_free(cnames, C > 0 ? C : 0);
    cls_names_free(names, n);
    gl_free(items);
    gl_free(labels);
    gl_free(scores);
    gl_free(cells);
    gl_free(text);
    return rc;
}

int cls_fuse(int ns, const float *const *scores, const double *weights, long n, int C, float *out)
{
    if (ns < 1 || !scores || !weights || !out) return gl_error(GL_EINVAL, "cls_fuse: bad arguments");
    for (size_t i = 0; i < (size_t)n * C; i++) {
        double s = 0;
        for (int k = 0; k < ns; k++) s += weights[k] * scores[k][i];
        out[i] = (float)s;
    }
    return 0;
}
