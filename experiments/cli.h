/*
 * cli.h — what every subcommand shares: the global options, help text,
 * number parsing with messages that name the option, a progress line, and
 * printing of library errors. Only experiments/ prints or picks exit codes.
 */
#ifndef GLOCAL_CLI_H
#define GLOCAL_CLI_H

#include <stdio.h>

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* Global options (set by main before the subcommand runs). */
typedef struct {
    int threads;          /* --threads N (0 = all cores) */
    const char *device;   /* --device cpu|cuda */
} cli_globals;
extern cli_globals cli_g;

/* Prints "glocal NAME: <message>" plus the library's last error to stderr
 * and returns CLI_FAIL. */
int cli_fail(const char *cmd, int rc, const char *what_fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prints "glocal NAME: message\nTry 'glocal NAME --help'." and returns CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parse a whole number / real number for option `opt`; on error print and
 * return -1 (caller returns CLI_USAGE). */
int cli_parse_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out);
int cli_parse_double(const char *cmd, const char *opt, const char *s, double *out);
/* "WxH" or "HxW" per `order` ("wh"/"hw") → two positive ints. */
int cli_parse_size(const char *cmd, const char *opt, const char *s, const char *order,
                   int *a, int *b);

/* A progress line on stderr: redrawn in place on a TTY, a plain line every
 * `plain_every` seconds otherwise. */
typedef struct {
    const char *label;
    long total;
    double t0, last;
    int tty;
} cli_progress;
void cli_progress_start(cli_progress *p, const char *label, long total);
void cli_progress_update(cli_progress *p, long done, const char *extra);
void cli_progress_end(cli_progress *p, long done, const char *extra);

#endif
