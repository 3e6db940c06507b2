/*
 * text_lines.h — private to datasets/: walks the lines of a small text file
 * (a split list, a CSV) read whole into memory. Accepts LF and CRLF ends, a
 * missing final newline and a UTF-8 byte order mark; strips trailing blanks.
 * Lines are edited in place (NUL-terminated) and stay valid until
 * text_lines_close().
 */
#ifndef GLOCAL_DATASETS_TEXT_LINES_H
#define GLOCAL_DATASETS_TEXT_LINES_H

#include <string.h>

#include "nn/base.h"

typedef struct {
    const char *path;   /* for messages; borrowed */
    char *buf;          /* the whole file plus a NUL */
    size_t size, pos;
    int line;           /* 1-based number of the line last returned */
} text_lines;

static inline int text_lines_open(text_lines *t, const char *path)
{
    memset(t, 0, sizeof *t);
    t->path = path;
    void *data = NULL;
    size_t size = 0;
    int rc = gl_read_file(path, &data, &size);
    if (rc < 0) return rc;
    char *buf = gl_realloc(data, size + 1);
    if (!buf) {
        gl_free(data);
        return GL_ENOMEM;
    }
    buf[size] = 0;
    t->buf = buf;
    t->size = size;
    /* A UTF-8 byte order mark (Windows editors add one) is not part of line 1. */
    if (size >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3)) t->pos = 3;
    return 0;
}

/* *line = the next line without its end; 0, GL_EOF after the last line, or
 * GL_EFORMAT for a line holding a NUL byte (binary file). */
static inline int text_lines_next(text_lines *t, char **line)
{
    if (t->pos >= t->size) return GL_EOF;
    char *s = t->buf + t->pos;
    char *nl = memchr(s, '\n', t->size - t->pos);
    size_t len = nl ? (size_t)(nl - s) : t->size - t->pos;
    t->pos += len + (nl ? 1 : 0);
    t->line++;
    if (memchr(s, 0, len))
        return gl_error(GL_EFORMAT, "%s:%d: a NUL byte: not a text file", t->path, t->line);
    while (len > 0 && (s[len - 1] == '\r' || s[len - 1] == ' ' || s[len - 1] == '\t')) len--;
    s[len] = 0;
    *line = s;
    return 0;
}

static inline void text_lines_close(text_lines *t)
{
    gl_free(t->buf);
    t->buf = NULL;
}

#endif
