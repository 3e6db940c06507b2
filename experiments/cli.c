#include "experiments/cli.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "datasets/ucf101.h"
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

int cli_lists_locate(const char *cmd, const char *root, const char *lists, char *out, size_t n)
{
    int rc = dataset_lists_locate(root, lists, out, n);
    if (rc < 0) return cli_fail(cmd, rc, "the split lists of %s", root);
    if (!lists) fprintf(stderr, "glocal %s: split lists from %s\n", cmd, out);
    return CLI_OK;
}

const char *cli_lists_note(const char *cmd, const char *root, const char *lists, char *out, size_t n)
{
    if (lists) return lists;
    if (dataset_lists_locate(root, NULL, out, n) < 0) return NULL;
    fprintf(stderr, "glocal %s: split lists from %s\n", cmd, out);
    return out;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    fprintf(stderr, "glocal%s%s: ", cmd[0] ? " " : "", cmd);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'glocal%s%s --help'.\n", cmd[0] ? " " : "", cmd);
    return CLI_USAGE;
}

int cli_output_writable(const char *cmd, const char *opt, const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    const char *dir = dirname(buf);
    if (access(dir, W_OK) != 0)
        return cli_usage_error(cmd, "%s %s: cannot write into the folder %s (%s)", opt, path, dir, strerror(errno));
    return CLI_PARSED;
}

/* ---- the option parser ----------------------------------------------------- */

static int is_option(const char *a) { return a[0] == '-' && a[1] != 0; }
static int is_help(const char *a) { return !strcmp(a, "-h") || !strcmp(a, "--help"); }
static int takes_value(const cli_opt *o) { return o->kind != CLI_K_FLAG && o->kind != CLI_K_SECTION; }
static int is_integer(cli_kind k) { return k == CLI_K_INT || k == CLI_K_LONG || k == CLI_K_U64; }

/* The option spelled by a[0..len) (a name or an alt), or NULL. */
static cli_opt *find_option(const cli_spec *s, const char *a, size_t len)
{
    for (cli_opt *o = s->opts; o->kind != CLI_K_END; o++) {
        if (o->kind == CLI_K_SECTION) continue;
        if (strlen(o->name) == len && !strncmp(o->name, a, len)) return o;
        if (o->alt && strlen(o->alt) == len && !strncmp(o->alt, a, len)) return o;
    }
    return NULL;
}

/* Edit distance with transpositions (optimal string alignment), for "did you
 * mean": a typo is one or two edits away. */
static size_t edit_distance(const char *a, size_t la, const char *b)
{
    size_t lb = strlen(b);
    if (la > 64 || lb > 64) return 1000;
    size_t d[65][65];
    for (size_t i = 0; i <= la; i++) d[i][0] = i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < c)
                c = d[i - 2][j - 2] + 1;
            d[i][j] = c;
        }
    return d[la][lb];
}

/* The candidate closest to a[0..len): the only one it is a prefix of (4
 * characters or more), else the nearest within 1 edit (2 from 6 characters
 * on; none under 3). NULL when nothing is close. */
static const char *closest(const char *a, size_t len, const char *const *cand, int n)
{
    const char *best = NULL;
    int prefixed = 0;
    for (int i = 0; i < n; i++)
        if (len >= 4 && strlen(cand[i]) > len && !strncmp(cand[i], a, len)) {
            best = cand[i];
            prefixed++;
        }
    if (prefixed == 1) return best;
    best = NULL;
    if (len < 3) return NULL; /* '4' is one edit from '1': no hint */
    size_t bd = len >= 6 ? 3 : 2;
    for (int i = 0; i < n; i++) {
        size_t d = edit_distance(a, len, cand[i]);
        if (d < bd) {
            bd = d;
            best = cand[i];
        }
    }
    return best;
}

static int unknown_option(const cli_spec *s, const char *a, size_t len)
{
    const char *cand[256];
    int n = 0;
    for (const cli_opt *o = s->opts; o->kind != CLI_K_END && n < 254; o++) {
        if (o->kind == CLI_K_SECTION) continue;
        cand[n++] = o->name;
        if (o->alt) cand[n++] = o->alt;
    }
    if (n < 256) cand[n++] = "--help";
    const char *m = closest(a, len, cand, n);
    if (m) return cli_usage_error(s->cmd, "unknown option '%.*s' (did you mean '%s'?)", (int)len, a, m);
    return cli_usage_error(s->cmd, "unknown option '%.*s'", (int)len, a);
}

/* The range of a number: "1..99", ">= 0" for whole numbers; for reals
 * "(0, 4096]" in messages and, with meta, "0 < M <= 4096" in help (an
 * interval inside help's parentheses reads badly). "" for no bound. */
static void format_range(const cli_opt *o, const char *meta, char *buf, size_t n)
{
    const double big = 9007199254740992.0; /* 2^53: integers above are not bounds */
    buf[0] = 0;
    if (is_integer(o->kind)) {
        int has_lo = o->lo > -big, has_hi = o->hi < big;
        if (has_lo && has_hi) snprintf(buf, n, "%.0f..%.0f", o->lo, o->hi);
        else if (has_lo) snprintf(buf, n, ">= %.0f", o->lo);
        else if (has_hi) snprintf(buf, n, "<= %.0f", o->hi);
    } else if (o->kind == CLI_K_REAL || o->kind == CLI_K_FLOAT) {
        int has_lo = isfinite(o->lo), has_hi = isfinite(o->hi);
        const char *lt = o->open_lo ? "<" : "<=", *gt = o->open_lo ? ">" : ">=";
        const char *lth = o->open_hi ? "<" : "<=";
        if (has_lo && has_hi && meta) snprintf(buf, n, "%g %s %s %s %g", o->lo, lt, meta, lth, o->hi);
        else if (has_lo && has_hi)
            snprintf(buf, n, "%c%g, %g%c", o->open_lo ? '(' : '[', o->lo, o->hi, o->open_hi ? ')' : ']');
        else if (has_lo) snprintf(buf, n, "%s%s%s %g", meta ? meta : "", meta ? " " : "", gt, o->lo);
        else if (has_hi) snprintf(buf, n, "%s%s%s %g", meta ? meta : "", meta ? " " : "", lth, o->hi);
    }
}

static int in_range(const cli_opt *o, double v)
{
    if (o->open_lo ? !(v > o->lo) : !(v >= o->lo)) return 0;
    if (o->open_hi ? !(v < o->hi) : !(v <= o->hi)) return 0;
    return 1;
}

static const char *default_meta(const cli_opt *o)
{
    switch (o->kind) {
    case CLI_K_INT: case CLI_K_LONG: case CLI_K_U64: return "N";
    case CLI_K_REAL: case CLI_K_FLOAT: return "X";
    case CLI_K_SIZE: return "WxH";
    default: return "VALUE";
    }
}

/* The value's name: .meta, a CHOICE's "a|b|c", or the kind's. */
static void option_meta(const cli_opt *o, char *buf, size_t n)
{
    if (o->meta) {
        snprintf(buf, n, "%s", o->meta);
    } else if (o->kind == CLI_K_CHOICE) {
        size_t k = 0;
        buf[0] = 0;
        for (int i = 0; o->choices[i] && k < n; i++)
            k += (size_t)snprintf(buf + k, n - k, "%s%s", i ? "|" : "", o->choices[i]);
    } else {
        snprintf(buf, n, "%s", default_meta(o));
    }
}

/* "a, b or c" */
static void list_choices(const char *const *c, char *buf, size_t n)
{
    size_t k = 0;
    int m = 0;
    while (c[m]) m++;
    buf[0] = 0;
    for (int i = 0; i < m && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%s", i == 0 ? "" : i == m - 1 ? " or " : ", ", c[i]);
}

static int bad_value(const cli_spec *s, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad_value(const cli_spec *s, const char *name, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    cli_usage_error(s->cmd, "option '%s': %s", name, what);
    return -1;
}

/* Parses v for option o (spelled `name`) and stores it; -1 after an error. */
static int store(const cli_spec *s, cli_opt *o, const char *name, const char *v)
{
    char range[96], *end;
    format_range(o, NULL, range, sizeof range);
    /* "0 is out of range 1..99", "-1 is not >= 0" */
    const char *oor = range[0] == '<' || range[0] == '>' ? "is not" : "is out of range";
    switch (o->kind) {
    case CLI_K_FLAG: *(int *)o->ptr = o->set; return 0;
    case CLI_K_STRING: *(const char **)o->ptr = v; return 0;
    case CLI_K_INT: case CLI_K_LONG: case CLI_K_U64: {
        errno = 0;
        double d;
        unsigned long long u = 0;
        long long l = 0;
        const char *t = v;
        while (isspace((unsigned char)*t)) t++;
        if (o->kind == CLI_K_U64 && *t != '-') {
            u = strtoull(v, &end, 10);
            d = (double)u;
        } else if (o->kind == CLI_K_U64) { /* strtoull would take "-1" as 2^64 - 1 */
            strtoll(v, &end, 10);
            d = -INFINITY;
        } else {
            l = strtoll(v, &end, 10);
            d = (double)l;
        }
        if (end == v || *end) return bad_value(s, name, "'%s' is not a whole number", v);
        if (errno == ERANGE && range[0] != '<' && range[0] != '>' && range[0])
            return bad_value(s, name, "%s is out of range %s", v, range);
        if (errno == ERANGE) return bad_value(s, name, "%s is too %s", v, *t == '-' ? "small" : "large");
        if (!in_range(o, d)) return bad_value(s, name, "%s %s %s", v, oor, range);
        if (o->kind == CLI_K_INT) *(int *)o->ptr = (int)l;
        else if (o->kind == CLI_K_LONG) *(long *)o->ptr = (long)l;
        else *(uint64_t *)o->ptr = (uint64_t)u;
        return 0;
    }
    case CLI_K_REAL: case CLI_K_FLOAT: {
        errno = 0;
        double d = strtod(v, &end);
        if (end == v || *end) return bad_value(s, name, "'%s' is not a number", v);
        if (!isfinite(d) || errno == ERANGE) return bad_value(s, name, "'%s' is not a finite number", v);
        if (o->kind == CLI_K_FLOAT && !(fabs(d) <= FLT_MAX))
            return bad_value(s, name, "%s is too large for a float", v);
        if (!in_range(o, d)) return bad_value(s, name, "%s %s %s", v, oor, range);
        if (o->kind == CLI_K_REAL) *(double *)o->ptr = d;
        else *(float *)o->ptr = (float)d;
        return 0;
    }
    case CLI_K_CHOICE: {
        int n = 0;
        for (; o->choices[n]; n++)
            if (!strcmp(o->choices[n], v)) {
                *(int *)o->ptr = n;
                return 0;
            }
        char list[512];
        list_choices(o->choices, list, sizeof list);
        const char *m = closest(v, strlen(v), o->choices, n);
        if (m) return bad_value(s, name, "'%s' is not %s (did you mean '%s'?)", v, list, m);
        return bad_value(s, name, "'%s' is not %s", v, list);
    }
    case CLI_K_SIZE: {
        long a, b;
        errno = 0;
        a = strtol(v, &end, 10);
        if (end == v || (*end != 'x' && *end != 'X')) goto bad_size;
        const char *t = end + 1;
        b = strtol(t, &end, 10);
        if (end == t || *end || errno || a <= 0 || b <= 0 || a > 65536 || b > 65536) goto bad_size;
        *(int *)o->ptr = (int)a;
        *(int *)o->ptr2 = (int)b;
        return 0;
    bad_size:;
        const char *meta = o->meta ? o->meta : "WxH";
        int da = *(int *)o->ptr, db = *(int *)o->ptr2;
        if (da > 0 && db > 0)
            return bad_value(s, name, "'%s' is not %s (e.g. %dx%d)", v, meta, da, db);
        return bad_value(s, name, "'%s' is not %s (e.g. %s)", v, meta,
                         !strcmp(meta, "HxW") ? "240x320" : "320x240");
    }
    case CLI_K_STRINGS: {
        cli_strings *l = o->ptr;
        if (l->n >= l->max) return bad_value(s, name, "given more than %d times", l->max);
        l->v[l->n++] = v;
        return 0;
    }
    case CLI_K_CALL: {
        char why[512] = "";
        if (o->call(o->ptr, v, why, sizeof why) < 0)
            return bad_value(s, name, "%s", why[0] ? why : "invalid value");
        return 0;
    }
    default: return bad_value(s, name, "no parser for this option (a bug)");
    }
}

/* Keeps a positional argument; -1 after an error. */
static int positional(const cli_spec *s, const char *a, int *n)
{
    if (*n >= s->max_args) {
        if (s->max_args == 0 && s->rest)
            cli_usage_error(s->cmd, "unexpected argument '%s' (the command goes after --)", a);
        else if (s->max_args == 0)
            cli_usage_error(s->cmd, "unexpected argument '%s'", a);
        else
            cli_usage_error(s->cmd, "unexpected argument '%s' (the arguments are %s)", a, s->args);
        return -1;
    }
    s->arg[(*n)++] = a;
    return 0;
}

int cli_parse(const cli_spec *s, int argc, char **argv)
{
    /* --help anywhere among the options wins: look before storing anything,
     * so the help shows the defaults, not what the line set. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) break;
        if (!is_option(a) && s->cmd_at) break; /* the subcommand's own --help */
        if (!is_option(a)) continue;
        if (is_help(a)) {
            cli_help(s, stdout);
            return CLI_OK;
        }
        const char *eq = a[1] == '-' ? strchr(a, '=') : NULL;
        const cli_opt *o = find_option(s, a, eq ? (size_t)(eq - a) : strlen(a));
        if (o && takes_value(o) && !eq) i++;
    }
    for (cli_opt *o = s->opts; o->kind != CLI_K_END; o++) o->count = o->last = 0;
    int n = 0;
    if (s->rest) *s->rest = argc;
    if (s->cmd_at) *s->cmd_at = argc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--") && (s->rest || s->cmd_at)) {
            *(s->rest ? s->rest : s->cmd_at) = i + 1;
            break;
        }
        if (!strcmp(a, "--")) {
            for (i++; i < argc; i++)
                if (positional(s, argv[i], &n) < 0) return CLI_USAGE;
            break;
        }
        if (!is_option(a) && s->cmd_at) {
            *s->cmd_at = i;
            break;
        }
        if (!is_option(a)) {
            if (positional(s, a, &n) < 0) return CLI_USAGE;
            continue;
        }
        const char *eq = a[1] == '-' ? strchr(a, '=') : NULL;
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        cli_opt *o = find_option(s, a, len);
        if (!o) return unknown_option(s, a, len);
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)len, a);
        const char *v = NULL;
        const int at = i;
        if (takes_value(o)) {
            if (eq) {
                v = eq + 1;
            } else if (i + 1 < argc) {
                v = argv[++i];
            } else {
                char meta[256];
                option_meta(o, meta, sizeof meta);
                return cli_usage_error(s->cmd, "option '%s' needs a value (%s)", name, meta);
            }
        } else if (eq) {
            return cli_usage_error(s->cmd, "option '%s' takes no value", name);
        }
        if (store(s, o, name, v) < 0) return CLI_USAGE;
        o->count++;
        o->last = at;
    }
    for (const cli_opt *o = s->opts; o->kind != CLI_K_END; o++)
        if (o->required && !o->count) {
            char meta[256] = "";
            if (takes_value(o)) option_meta(o, meta, sizeof meta);
            return cli_usage_error(s->cmd, "%s%s%s is required", o->alt ? o->alt : o->name,
                                   meta[0] ? " " : "", meta);
        }
    if (n < s->min_args && n == 0) return cli_usage_error(s->cmd, "missing %s", s->args);
    if (n < s->min_args)
        return cli_usage_error(s->cmd, "expected %s, got %d argument%s", s->args, n, n == 1 ? "" : "s");
    if (s->nargs) *s->nargs = n;
    return CLI_PARSED;
}

/* ---- --help ----------------------------------------------------------------- */

enum { HELP_WIDTH = 80, HELP_COL_MAX = 26 };

/* The default as help shows it; "" for none. */
static void format_default(const cli_opt *o, char *buf, size_t n)
{
    buf[0] = 0;
    if (o->def) {
        snprintf(buf, n, "%s", o->def);
        return;
    }
    switch (o->kind) {
    case CLI_K_INT: {
        int v = *(int *)o->ptr;
        if (in_range(o, v)) snprintf(buf, n, "%d", v);
        break;
    }
    case CLI_K_LONG: {
        long v = *(long *)o->ptr;
        if (in_range(o, (double)v)) snprintf(buf, n, "%ld", v);
        break;
    }
    case CLI_K_U64: {
        uint64_t v = *(uint64_t *)o->ptr;
        if (in_range(o, (double)v)) snprintf(buf, n, "%llu", (unsigned long long)v);
        break;
    }
    case CLI_K_REAL: {
        double v = *(double *)o->ptr;
        if (in_range(o, v)) snprintf(buf, n, "%g", v);
        break;
    }
    case CLI_K_FLOAT: {
        float v = *(float *)o->ptr;
        if (in_range(o, v)) snprintf(buf, n, "%g", (double)v);
        break;
    }
    case CLI_K_STRING: {
        const char *v = *(const char **)o->ptr;
        if (v) snprintf(buf, n, "%s", v);
        break;
    }
    case CLI_K_CHOICE: {
        int v = *(int *)o->ptr, m = 0;
        while (o->choices[m]) m++;
        if (v >= 0 && v < m) snprintf(buf, n, "%s", o->choices[v]);
        break;
    }
    case CLI_K_SIZE: {
        int a = *(int *)o->ptr, b = *(int *)o->ptr2;
        if (a > 0 && b > 0) snprintf(buf, n, "%dx%d", a, b);
        break;
    }
    default: break;
    }
}

/* Writes text from column `col` (the cursor is there), wrapping at
 * HELP_WIDTH, every further line indented to `col`; '\n' breaks a line. */
static void put_wrapped(FILE *f, const char *text, int col)
{
    int at = col, fresh = 1;
    const char *p = text;
    while (*p) {
        if (*p == '\n') {
            fprintf(f, "\n%*s", col, "");
            at = col;
            fresh = 1;
            p++;
            continue;
        }
        if (*p == ' ') {
            p++;
            continue;
        }
        size_t w = strcspn(p, " \n");
        if (!fresh && at + 1 + (int)w > HELP_WIDTH) {
            fprintf(f, "\n%*s", col, "");
            at = col;
            fresh = 1;
        }
        if (!fresh) {
            fputc(' ', f);
            at++;
        }
        fwrite(p, 1, w, f);
        at += (int)w;
        fresh = 0;
        p += w;
    }
}

/* "  -n, --nproc N" */
static void option_label(const cli_opt *o, char *buf, size_t n)
{
    char meta[256] = "";
    if (takes_value(o)) option_meta(o, meta, sizeof meta);
    snprintf(buf, n, "  %s%s%s%s%s", o->alt ? o->alt : "", o->alt ? ", " : "", o->name, meta[0] ? " " : "", meta);
}

static void usage_lines(const cli_spec *s, FILE *f)
{
    if (s->usage) {
        const char *p = s->usage;
        int first = 1;
        while (*p) {
            size_t k = strcspn(p, "\n");
            fprintf(f, "%s glocal%s%s %.*s\n", first ? "usage:" : "      ", s->cmd[0] ? " " : "", s->cmd,
                    (int)k, p);
            first = 0;
            p += k;
            if (*p) p++;
        }
        return;
    }
    int others = 0;
    fprintf(f, "usage: glocal%s%s", s->cmd[0] ? " " : "", s->cmd);
    for (const cli_opt *o = s->opts; o->kind != CLI_K_END; o++) {
        if (o->kind == CLI_K_SECTION) continue;
        if (!o->required) {
            others = 1;
            continue;
        }
        char meta[256] = "";
        if (takes_value(o)) option_meta(o, meta, sizeof meta);
        fprintf(f, " %s%s%s", o->alt ? o->alt : o->name, meta[0] ? " " : "", meta);
    }
    if (others) fprintf(f, " [options]");
    if (s->args) fprintf(f, " %s", s->args);
    fprintf(f, "\n");
}

void cli_help(const cli_spec *s, FILE *f)
{
    usage_lines(s, f);
    if (s->about) fprintf(f, "\n%s%s", s->about, s->about[strlen(s->about) - 1] == '\n' ? "" : "\n");
    /* the help column: after the longest label that is not too long */
    int col = (int)strlen("  -h, --help") + 2;
    for (const cli_opt *o = s->opts; o->kind != CLI_K_END; o++) {
        if (o->kind == CLI_K_SECTION) continue;
        char label[512];
        option_label(o, label, sizeof label);
        int w = (int)strlen(label) + 2;
        if (w > col && w <= HELP_COL_MAX) col = w;
    }
    if (s->opts[0].kind != CLI_K_SECTION) fprintf(f, "\nOptions:\n");
    for (const cli_opt *o = s->opts; o->kind != CLI_K_END; o++) {
        if (o->kind == CLI_K_SECTION) {
            fprintf(f, "\n%s:\n", o->name);
            continue;
        }
        char label[512], meta[256], range[300], def[256], text[2048];
        option_label(o, label, sizeof label);
        option_meta(o, meta, sizeof meta);
        format_range(o, meta, range, sizeof range);
        if (o->required) def[0] = 0; /* a default that cannot be used */
        else format_default(o, def, sizeof def);
        size_t k = (size_t)snprintf(text, sizeof text, "%s", o->help ? o->help : "");
        const char *sep = " (";
        if (o->kind == CLI_K_CHOICE && o->meta && k < sizeof text) { /* the label does not show them */
            char list[512];
            list_choices(o->choices, list, sizeof list);
            k += (size_t)snprintf(text + k, sizeof text - k, "%s%s", sep, list), sep = ", ";
        }
        if (o->required && k < sizeof text)
            k += (size_t)snprintf(text + k, sizeof text - k, "%srequired", sep), sep = ", ";
        if (range[0] && k < sizeof text) k += (size_t)snprintf(text + k, sizeof text - k, "%s%s", sep, range), sep = ", ";
        if (def[0] && k < sizeof text)
            k += (size_t)snprintf(text + k, sizeof text - k, "%sdefault %s", sep, def), sep = ", ";
        if (o->kind == CLI_K_STRINGS && k < sizeof text)
            k += (size_t)snprintf(text + k, sizeof text - k, "%smay be repeated", sep), sep = ", ";
        if (strcmp(sep, " (") && k < sizeof text) snprintf(text + k, sizeof text - k, ")");
        fputs(label, f);
        if ((int)strlen(label) + 2 > col) fprintf(f, "\n%*s", col, "");
        else fprintf(f, "%*s", col - (int)strlen(label), "");
        put_wrapped(f, text, col);
        fputc('\n', f);
    }
    fprintf(f, "  -h, --help%*s", col - (int)strlen("  -h, --help"), "");
    put_wrapped(f, "print this help and exit", col);
    fputc('\n', f);
    if (s->epilog) fprintf(f, "\n%s%s", s->epilog, s->epilog[strlen(s->epilog) - 1] == '\n' ? "" : "\n");
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

/* ---- SIGINT / SIGTERM --------------------------------------------------------- */

static volatile sig_atomic_t cli_caught;
static struct sigaction cli_old_int, cli_old_term;
static int cli_catching;

static void cli_on_signal(int sig) { cli_caught = sig; }

void cli_signals_catch(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = cli_on_signal;
    sigemptyset(&sa.sa_mask);
    cli_caught = 0;
    if (cli_catching) return;
    sigaction(SIGINT, &sa, &cli_old_int);
    sigaction(SIGTERM, &sa, &cli_old_term);
    cli_catching = 1;
}

void cli_signals_restore(void)
{
    if (!cli_catching) return;
    sigaction(SIGINT, &cli_old_int, NULL);
    sigaction(SIGTERM, &cli_old_term, NULL);
    cli_catching = 0;
}

int cli_signal_caught(void) { return cli_caught; }

void cli_json_num(FILE *f, const char *key, double v, int comma)
{
    if (isfinite(v)) fprintf(f, "\"%s\": %.6g%s", key, v, comma ? ", " : "");
    else fprintf(f, "\"%s\": null%s", key, comma ? ", " : "");
}

void cli_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

void cli_csv_str(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}
