#include "experiments/cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn/base.h"

cli_globals cli_g = { .threads = 0, .device = "cpu" };

int cli_fail(const char *cmd, int rc, const char *fmt, ...)
{
    fprintf(stderr, "glocal %s: ", cmd);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    const char *m = gl_last_error();
    if (m && m[0])
        fprintf(stderr, ": %s\n", m);
    else
        fprintf(stderr, " (%s)\n", gl_strerror(rc));
    return CLI_FAIL;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    fprintf(stderr, "glocal %s: ", cmd);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'glocal %s --help'.\n", cmd);
    return CLI_USAGE;
}

int cli_parse_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        cli_usage_error(cmd, "%s expects a whole number in [%ld, %ld], got '%s'", opt, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_double(const char *cmd, const char *opt, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) {
        cli_usage_error(cmd, "%s expects a number, got '%s'", opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_size(const char *cmd, const char *opt, const char *s, const char *order,
                   int *a, int *b)
{
    long x, y;
    char *end;
    x = strtol(s, &end, 10);
    if (end == s || (*end != 'x' && *end != 'X')) goto bad;
    const char *t = end + 1;
    y = strtol(t, &end, 10);
    if (end == t || *end || x <= 0 || y <= 0 || x > 65536 || y > 65536) goto bad;
    *a = (int)x;
    *b = (int)y;
    return 0;
bad:
    cli_usage_error(cmd, "%s expects %s, got '%s'", opt,
                    strcmp(order, "hw") == 0 ? "HxW (e.g. 128x128)" : "WxH (e.g. 320x240)", s);
    return -1;
}

static void fmt_secs(char *buf, size_t n, double s)
{
    if (!isfinite(s) || s < 0) { snprintf(buf, n, "?"); return; }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
}

void cli_progress_start(cli_progress *p, const char *label, long total)
{
    p->label = label;
    p->total = total;
    p->t0 = p->last = gl_now();
    p->tty = isatty(STDERR_FILENO);
}

static void progress_draw(cli_progress *p, long done, const char *extra, int final)
{
    double el = gl_now() - p->t0;
    char eta[32], elb[32];
    fmt_secs(elb, sizeof elb, el);
    if (done > 0 && p->total > 0) fmt_secs(eta, sizeof eta, el / (double)done * (double)(p->total - done));
    else snprintf(eta, sizeof eta, "?");
    if (p->tty) {
        int width = 24, fill = p->total > 0 ? (int)(width * (double)done / (double)p->total) : 0;
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\r%s [%s] %ld/%ld %s elapsed %s eta %s\033[K%s", p->label, bar, done,
                p->total, extra ? extra : "", elb, final ? "0m00s" : eta, final ? "\n" : "");
    } else {
        fprintf(stderr, "%s %ld/%ld %s elapsed %s eta %s\n", p->label, done, p->total,
                extra ? extra : "", elb, final ? "0m00s" : eta);
    }
    fflush(stderr);
}

void cli_progress_update(cli_progress *p, long done, const char *extra)
{
    double now = gl_now();
    double every = p->tty ? 0.2 : 10.0;
    if (now - p->last < every) return;
    p->last = now;
    progress_draw(p, done, extra, 0);
}

void cli_progress_end(cli_progress *p, long done, const char *extra)
{
    progress_draw(p, done, extra, 1);
}
