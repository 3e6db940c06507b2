/*
 * cli.h — what every subcommand shares: the global options, the option
 * parser and the --help it prints, a progress line, and printing of library
 * errors. Only experiments/ prints or picks exit codes.
 */
#ifndef GLOCAL_CLI_H
#define GLOCAL_CLI_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
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

/* An output file's folder must be writable: checked while parsing, so that a
 * long evaluation is not run for nothing. CLI_PARSED, or a usage error
 * naming `opt`, the file, its folder and why (CLI_USAGE). */
int cli_output_writable(const char *cmd, const char *opt, const char *path);

/* The list folder of the UCF-101-layout dataset ROOT into out (n bytes):
 * `lists` when given, else the first place dataset_lists_locate (datasets/
 * ucf101.h) finds, said in one stderr line "glocal CMD: split lists from DIR".
 * Returns CLI_OK, or prints the places looked and returns CLI_FAIL. */
int cli_lists_locate(const char *cmd, const char *root, const char *lists, char *out, size_t n);
/* The same, for commands that load the dataset later (after joining a
 * distributed job, so that the other ranks learn of a failure): returns
 * `lists`, else the folder found (into out, said on stderr), else NULL, and
 * the later dataset_index_load reports every place looked. */
const char *cli_lists_note(const char *cmd, const char *root, const char *lists, char *out, size_t n);

/* ---- the option parser -----------------------------------------------------
 *
 * A subcommand describes its options in one table and calls cli_parse():
 *
 *     long split = 1;
 *     const char *root = NULL;
 *     int classes = 0;
 *     cli_opt opts[] = {
 *         CLI_STR("--root", &root, "DIR", "folder holding the clips", .required = 1),
 *         CLI_NUM("--split", &split, 1, 99, "N", "split number"),
 *         CLI_FLAG("--classes", &classes, "also print clips per class"),
 *         CLI_END,
 *     };
 *     cli_spec spec = { .cmd = "dataset", .opts = opts, .about = "Checks ..." };
 *     int rc = cli_parse(&spec, argc, argv);
 *     if (rc != CLI_PARSED) return rc;
 *
 * Why one table: the parser and `--help` read the same entries, so the help
 * cannot list an option the parser does not know, or the reverse; and the
 * default shown in the help is the value the pointer holds before parsing
 * (so point at the config struct the command fills, after its _default()).
 *
 * Why macros: they fill the entry and check the pointer's type with C11
 * _Generic. CLI_NUM picks the kind from the pointer (int, long, uint64_t,
 * double or float), so `o.stack` (int) and `tc.epochs` (long) take the same
 * spelling, and a pointer of any other type does not compile. Extra fields go
 * after the help as designated initialisers: .required = 1, .def = "text",
 * .alt = "-n", .open_lo = 1, .open_hi = 1.
 *
 * Why not getopt_long: its messages name neither the value nor what was
 * expected, it has no help, it keeps global state (optind) across the
 * subcommand call, and it accepts any unambiguous prefix of a long option,
 * so adding --size-x would break every script that wrote --size. Here only
 * exact names are options; a near miss is suggested, never taken.
 *
 * The table lives in the command function (its pointers are the command's
 * locals) and is not const: cli_parse counts in each entry how often it was
 * given (.count), which a command may read.
 *
 * What the parser does:
 *   - `--name value` and `--name=value`; a value is taken as is, even when it
 *     starts with '-' (`--camera -1`). `-h`/`--help` anywhere among the options
 *     prints the help (stdout) and cli_parse returns CLI_OK; it wins over any
 *     error in the same command line.
 *   - An option given twice: the last one counts (repeatable kind: each one
 *     is kept).
 *   - An argument that does not start with '-' (or is "-" alone) is
 *     positional, wherever it stands; after `--` every argument is positional,
 *     unless spec.rest is set: then `--` ends parsing (launch passes the rest on),
 *     or spec.cmd_at: then the first positional ends it (main's global options
 *     stop at the subcommand, whose own options, --help included, are its own).
 *   - Errors print "glocal CMD: <what>\nTry 'glocal CMD --help'." and
 *     cli_parse returns CLI_USAGE. They name the option, the value and what
 *     was expected: "option '--size': '12x' is not WxH (e.g. 224x224)",
 *     "option '--split': 0 is out of range 1..99", "unknown option '--sizee'
 *     (did you mean '--size'?)".
 *   - The help: the usage line (spec.usage, or the required options,
 *     "[options]" and spec.args), spec.about, the options in table order under
 *     their CLI_SECTION headings ("Options:" before the first heading), each
 *     as "--name META  help (required, range, default D)", then -h/--help and
 *     spec.epilog. Help text is wrapped at 80 columns.
 *   - Checks that involve several options, or a value the table cannot
 *     express ("--size must be a multiple of 16"), stay in the command, after
 *     cli_parse: cli_usage_error() gives them the same form.
 */

typedef enum {
    CLI_K_END = 0,   /* ends a table */
    CLI_K_SECTION,   /* a heading in --help (name), grouping the options after it */
    CLI_K_FLAG,      /* int: set to .set (1; 0 for a --no-x option); takes no value */
    CLI_K_INT,       /* int, whole number in [lo, hi] */
    CLI_K_LONG,      /* long, whole number in [lo, hi] */
    CLI_K_U64,       /* uint64_t, whole number in [lo, hi] (hi >= 2^53: no upper bound) */
    CLI_K_REAL,      /* double, finite, in [lo, hi] (open ends with .open_lo/.open_hi) */
    CLI_K_FLOAT,     /* float, as CLI_K_REAL */
    CLI_K_STRING,    /* const char *, pointing into argv */
    CLI_K_CHOICE,    /* int: index into .choices (NULL-terminated) */
    CLI_K_SIZE,      /* int, int: "AxB" -> *ptr = A, *ptr2 = B, both in 1..65536;
                      .meta names the order ("WxH" or "HxW") */
    CLI_K_STRINGS,   /* cli_strings: every occurrence is kept, in order */
    CLI_K_CALL,      /* .call(ctx = ptr, value, why): the odd ones */
} cli_kind;

/* Room for a repeatable option's values (CLI_K_STRINGS): the caller's array. */
typedef struct {
    const char **v;
    int n, max;
} cli_strings;

/* Parses `value` for a CLI_CALL option; returns 0, or -1 after writing what
 * is wrong into why (e.g. "'huge' is not none, mild, strong or a number"). */
typedef int (*cli_call_fn)(void *ctx, const char *value, char *why, size_t n);

typedef struct {
    cli_kind kind;
    const char *name;        /* "--size"; CLI_SECTION: the heading */
    const char *alt;         /* another spelling ("-n"), or NULL */
    void *ptr, *ptr2;        /* where the value goes (ptr2: CLI_SIZE's second number) */
    const char *meta;        /* the value in help and usage: "DIR", "N" (kind's default if NULL) */
    const char *help;        /* one line or more ('\n' breaks); wrapped at 80 columns */
    double lo, hi;           /* numbers: the range */
    int open_lo, open_hi;    /* reals: lo / hi themselves are not allowed */
    int set;                 /* CLI_FLAG: the value stored */
    const char *const *choices; /* CLI_CHOICE */
    cli_call_fn call;        /* CLI_CALL */
    const char *def;         /* the default as help shows it, when the pointer's value is a
                                sentinel ("all", "a free port"); help shows no default for a
                                number outside its range unless .def says one */
    int required;            /* an error when not given; help says "required" */
    int count;               /* out: how many times it was given */
    int last;                /* out: argv index of its last occurrence, 0 if not given
                                (which of two options came last: --synth, --dataset) */
} cli_opt;

typedef struct {
    const char *cmd;         /* the subcommand: messages and help say "glocal CMD" ("": glocal) */
    const char *usage;       /* usage line(s) after "glocal CMD ", '\n' between forms;
                                NULL: the required options, [options] and .args */
    const char *about;       /* what the command does: printed after the usage line */
    const char *epilog;      /* after the options: outputs, exit status, examples */
    cli_opt *opts;           /* ends with CLI_END */
    const char *args;        /* the positional arguments in the usage line: "A B", "FILE..." */
    const char **arg;        /* receives them (room for max_args) */
    int min_args, max_args;
    int *nargs;              /* how many were given */
    int *rest;               /* non-NULL: `--` ends the options; *rest = the index in argv of
                                the argument after it (argc without one) */
    int *cmd_at;             /* non-NULL: the first argument that is not an option (or the
                                one after `--`) ends parsing: *cmd_at = its index in argv,
                                argc without one. What follows is not looked at, not even
                                --help (glocal's global options before the subcommand) */
} cli_spec;

enum { CLI_PARSED = -1 };

/* Parses argv[1..argc-1] by spec. Returns CLI_PARSED when the command goes
 * on; otherwise the exit status to return at once: CLI_OK after --help,
 * CLI_USAGE after a usage error (printed). Each option's count is reset
 * first, so a table may be parsed again (flow parses twice). */
int cli_parse(const cli_spec *spec, int argc, char **argv);
/* The --help text (what cli_parse prints for -h/--help). */
void cli_help(const cli_spec *spec, FILE *f);

/* Entries. Type checks: a pointer of another type is a compile error. */
#define CLI_PTR_(T, p) _Generic((p), T: (void *)(p))
#define CLI_NUM_KIND_(p)                                                             \
    _Generic((p), int *: CLI_K_INT, long *: CLI_K_LONG, uint64_t *: CLI_K_U64,            \
             double *: CLI_K_REAL, float *: CLI_K_FLOAT)
#define CLI_SECTION(title) { .kind = CLI_K_SECTION, .name = (title) }
#define CLI_FLAG(name_, p, help_, ...)                                                \
    { .kind = CLI_K_FLAG, .name = (name_), .ptr = CLI_PTR_(int *, p), .set = 1,      \
      .help = (help_), __VA_ARGS__ }
/* --no-x: clears the int (which starts at 1). */
#define CLI_NOFLAG(name_, p, help_, ...)                                              \
    { .kind = CLI_K_FLAG, .name = (name_), .ptr = CLI_PTR_(int *, p), .set = 0,      \
      .help = (help_), __VA_ARGS__ }
#define CLI_NUM(name_, p, lo_, hi_, meta_, help_, ...)                                \
    { .kind = CLI_NUM_KIND_(p), .name = (name_), .ptr = (void *)(p), .lo = (lo_),  \
      .hi = (hi_), .meta = (meta_), .help = (help_), __VA_ARGS__ }
#define CLI_STR(name_, p, meta_, help_, ...)                                          \
    { .kind = CLI_K_STRING, .name = (name_), .ptr = CLI_PTR_(const char **, p),      \
      .meta = (meta_), .help = (help_), __VA_ARGS__ }
#define CLI_CHOICE(name_, p, choices_, help_, ...)                                    \
    { .kind = CLI_K_CHOICE, .name = (name_), .ptr = CLI_PTR_(int *, p),              \
      .choices = (choices_), .help = (help_), __VA_ARGS__ }
#define CLI_SIZE(name_, pa, pb, meta_, help_, ...)                                    \
    { .kind = CLI_K_SIZE, .name = (name_), .ptr = CLI_PTR_(int *, pa),               \
      .ptr2 = CLI_PTR_(int *, pb), .meta = (meta_), .help = (help_), __VA_ARGS__ }
#define CLI_STRS(name_, p, meta_, help_, ...)                                         \
    { .kind = CLI_K_STRINGS, .name = (name_), .ptr = CLI_PTR_(cli_strings *, p),     \
      .meta = (meta_), .help = (help_), __VA_ARGS__ }
#define CLI_CALL(name_, fn, ctx, meta_, help_, ...)                                   \
    { .kind = CLI_K_CALL, .name = (name_), .call = (fn), .ptr = (ctx),               \
      .meta = (meta_), .help = (help_), __VA_ARGS__ }
#define CLI_END { .kind = CLI_K_END }

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

/* A clean stop on SIGINT or SIGTERM for long work (extract, train-motion,
 * train-classifier, ncaa-import, stabilize, run): cli_signals_catch()
 * installs a handler for both that only records the signal and forgets any
 * signal recorded before; the work polls cli_signal_caught() between items
 * (a clip, a step, a frame), finishes or drops the current one, saves its
 * state and returns; the command then restores the previous handlers with
 * cli_signals_restore() and exits with 128 + the signal (130 SIGINT, 143
 * SIGTERM), as a shell reports a process killed by it. The handler has no
 * SA_RESTART: a blocking read or wait returns EINTR, so a loop waiting on a
 * child sees the signal at once. cli_signals_restore() does nothing unless
 * the handlers are installed, and leaves cli_signal_caught() as it is. One
 * pair at a time (the previous handlers are kept in one place). */
void cli_signals_catch(void);
void cli_signals_restore(void);
/* The signal caught since cli_signals_catch() (the last one), or 0. */
int cli_signal_caught(void);

/* `"key": v` (%.6g; null when v is not finite), then ", " when comma: a
 * number of the hand-written JSON lines of eval-motion, eval-dhe and
 * eval-stabilize. */
void cli_json_num(FILE *f, const char *key, double v, int comma);
/* s as a JSON string, quoted and escaped. */
void cli_json_str(FILE *f, const char *s);
/* s as a CSV cell: quoted when it holds a comma, a quote or a line break,
 * quotes doubled (RFC 4180; e.g. a video's path in eval-video --per-pair). */
void cli_csv_str(FILE *f, const char *s);

#endif
