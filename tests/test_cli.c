/* test_cli.c — the option parser of experiments/cli.h (cli_parse, cli_help),
 * and that every subcommand on it prints its help with every option. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <fcntl.h>
#include <sys/wait.h>

#include "experiments/cli.h"
#include "tests/testutil.h"

static char tmpdir[256];
static char out[16384]; /* what the last parse() printed, stdout and stderr */

/* Runs cli_parse on `line` (split at spaces; argv[0] = the command) with
 * stdout and stderr going to a file; returns its result, the text in out. */
static int parse(const cli_spec *s, const char *line)
{
    static char buf[1024]; /* string options point into it */
    char *argv[64];
    int argc = 0;
    snprintf(buf, sizeof buf, "%s", line);
    argv[argc++] = (char *)s->cmd;
    for (char *t = strtok(buf, " "); t && argc < 63; t = strtok(NULL, " ")) argv[argc++] = t;
    argv[argc] = NULL;
    char path[300];
    snprintf(path, sizeof path, "%s/out.txt", tmpdir);
    fflush(stdout);
    fflush(stderr);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600), o1 = dup(1), o2 = dup(2);
    assert_true(fd >= 0 && o1 >= 0 && o2 >= 0);
    dup2(fd, 1);
    dup2(fd, 2);
    int rc = cli_parse(s, argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(o1, 1);
    dup2(o2, 2);
    close(o1);
    close(o2);
    close(fd);
    char *t = test_read_text(path);
    assert_non_null(t);
    snprintf(out, sizeof out, "%s", t);
    gl_free(t);
    return rc;
}

/* Asserts the last output contains s (and shows it when not). */
static void has(const char *s)
{
    if (!strstr(out, s)) {
        print_error("expected \"%s\" in:\n%s\n", s, out);
        fail();
    }
}

/* ---- a table with every kind ---------------------------------------------------- */

typedef struct {
    int flag, noflag, i, choice, w, h, called;
    long l;
    uint64_t u;
    double r;
    float f;
    const char *s;
    const char *incl_v[3];
    cli_strings incl;
    char camera[64];
} vals;

static int camera_call(void *ctx, const char *v, char *why, size_t n)
{
    vals *x = ctx;
    x->called++;
    if (strcmp(v, "none") && strcmp(v, "mild")) {
        snprintf(why, n, "'%s' is not none or mild", v);
        return -1;
    }
    snprintf(x->camera, sizeof x->camera, "%s", v);
    return 0;
}

static const char *const colours[] = { "red", "green", "blue", NULL };

/* The table is in a struct with its values, as a command has them. */
typedef struct {
    vals v;
    cli_opt opts[16];
    cli_spec spec;
    const char *args[4];
    int nargs;
} fixture;

static void fixture_init(fixture *x)
{
    memset(x, 0, sizeof *x);
    vals *v = &x->v;
    v->noflag = 1;
    v->i = 3;
    v->l = 1000;
    v->u = 7;
    v->r = 0.5;
    v->f = 0.25f;
    v->s = "here";
    v->choice = 1;
    v->w = 320;
    v->h = 240;
    v->incl = (cli_strings){ v->incl_v, 0, 3 };
    cli_opt t[] = {
        CLI_FLAG("--json", &v->flag, "print JSON"),
        CLI_NOFLAG("--no-flip", &v->noflag, "no flips"),
        CLI_SECTION("numbers"),
        CLI_NUM("--threads", &v->i, 1, 4096, "N", "worker threads"),
        CLI_NUM("--steps", &v->l, 0, 1e9, "N", "training steps", .alt = "-s"),
        CLI_NUM("--seed", &v->u, 0, 18446744073709551615.0, "S", "random seed"),
        CLI_NUM("--mb", &v->r, 0, 4096, "M", "gradient size in MiB", .open_lo = 1),
        CLI_NUM("--tau", &v->f, -INFINITY, INFINITY, "T", "time step"),
        CLI_SECTION("things"),
        CLI_STR("--out", &v->s, "DIR", "output folder"),
        CLI_CHOICE("--colour", &v->choice, colours, "a colour"),
        CLI_SIZE("--size", &v->w, &v->h, "WxH", "frame size"),
        CLI_STRS("--include", &v->incl, "FILE", "also read FILE"),
        CLI_CALL("--camera", camera_call, v, "LEVEL", "camera motion", .def = "strong"),
        CLI_END,
    };
    memcpy(x->opts, t, sizeof t);
    x->spec = (cli_spec){ .cmd = "demo", .about = "Does a demo.", .epilog = "Exit status: 0.",
                          .opts = x->opts, .args = "A [B]", .arg = x->args, .min_args = 0,
                          .max_args = 2, .nargs = &x->nargs };
}

static void test_every_kind(void **state)
{
    (void)state;
    fixture x;
    fixture_init(&x);
    vals *v = &x.v;
    assert_int_equal(parse(&x.spec, "--json --no-flip --threads 8 -s 12 --seed 18446744073709551615 "
                                    "--mb 0.5 --tau -1e-3 --out /tmp/o --colour blue --size 64x48 "
                                    "--include a --include b --camera mild"),
                     CLI_PARSED);
    assert_int_equal(v->flag, 1);
    assert_int_equal(v->noflag, 0);
    assert_int_equal(v->i, 8);
    assert_int_equal(v->l, 12);
    assert_true(v->u == UINT64_MAX);
    assert_true(v->r == 0.5);
    assert_true(v->f == -1e-3f);
    assert_string_equal(v->s, "/tmp/o");
    assert_int_equal(v->choice, 2);
    assert_int_equal(v->w, 64);
    assert_int_equal(v->h, 48);
    assert_int_equal(v->incl.n, 2);
    assert_string_equal(v->incl.v[0], "a");
    assert_string_equal(v->incl.v[1], "b");
    assert_string_equal(v->camera, "mild");
    assert_int_equal(x.nargs, 0);
    assert_int_equal(out[0], 0); /* nothing printed */
    /* counts: how often each option was given */
    assert_int_equal(x.opts[12].count, 2);          /* --include */
    assert_int_equal(x.opts[0].count, 1);           /* --json */
    /* untouched values stay */
    fixture_init(&x);
    assert_int_equal(parse(&x.spec, ""), CLI_PARSED);
    assert_int_equal(x.v.i, 3);
    assert_string_equal(x.v.s, "here");
    assert_int_equal(x.opts[0].count, 0);
}

static void test_equals_and_repeats(void **state)
{
    (void)state;
    fixture x;
    fixture_init(&x);
    /* --x=v, a value that starts with '-', the last of a repeated option */
    assert_int_equal(parse(&x.spec, "--threads=2 --out=a=b --tau -5 --threads 9 --colour=red"), CLI_PARSED);
    assert_int_equal(x.v.i, 9);
    assert_string_equal(x.v.s, "a=b");
    assert_true(x.v.f == -5.0f);
    assert_int_equal(x.v.choice, 0);
    assert_int_equal(x.opts[3].count, 2);
    /* an empty value is a value */
    assert_int_equal(parse(&x.spec, "--out="), CLI_PARSED);
    assert_string_equal(x.v.s, "");
    /* a flag takes none */
    assert_int_equal(parse(&x.spec, "--json=1"), CLI_USAGE);
    has("glocal demo: option '--json' takes no value\nTry 'glocal demo --help'.\n");
    /* a repeatable option has room for 3 */
    assert_int_equal(parse(&x.spec, "--include a --include b --include c --include d"), CLI_USAGE);
    has("option '--include': given more than 3 times");
}

static void test_numbers_and_ranges(void **state)
{
    (void)state;
    fixture x;
    fixture_init(&x);
    struct {
        const char *line, *msg;
    } bad[] = {
        { "--threads 0", "glocal demo: option '--threads': 0 is out of range 1..4096\n" },
        { "--threads 4097", "option '--threads': 4097 is out of range 1..4096" },
        { "--threads 99999999999999999999", "option '--threads': 99999999999999999999 is out of range 1..4096" },
        { "--threads x", "option '--threads': 'x' is not a whole number" },
        { "--threads 2.5", "option '--threads': '2.5' is not a whole number" },
        { "--threads 3k", "option '--threads': '3k' is not a whole number" },
        { "-s -1", "option '-s': -1 is out of range 0..1000000000" },
        { "--seed -1", "option '--seed': -1 is not >= 0" },
        { "--seed 18446744073709551616", "option '--seed': 18446744073709551616 is too large" },
        { "--mb 0", "option '--mb': 0 is out of range (0, 4096]" },
        { "--mb 4096.5", "option '--mb': 4096.5 is out of range (0, 4096]" },
        { "--mb x", "option '--mb': 'x' is not a number" },
        { "--mb nan", "option '--mb': 'nan' is not a finite number" },
        { "--tau inf", "option '--tau': 'inf' is not a finite number" },
        { "--tau 1e300", "option '--tau': 1e300 is too large for a float" },
        { "--size 12x", "option '--size': '12x' is not WxH (e.g. 320x240)" },
        { "--size 0x5", "option '--size': '0x5' is not WxH" },
        { "--size 64x48x2", "option '--size': '64x48x2' is not WxH" },
        { "--colour blu", "option '--colour': 'blu' is not red, green or blue (did you mean 'blue'?)" },
        { "--colour purple", "option '--colour': 'purple' is not red, green or blue\n" },
        { "--camera huge", "option '--camera': 'huge' is not none or mild" },
        { "--colour re", "option '--colour': 're' is not red, green or blue\n" }, /* too short for a hint */
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        fixture_init(&x);
        int rc = parse(&x.spec, bad[k].line);
        if (rc != CLI_USAGE) print_error("%s: returned %d\n", bad[k].line, rc);
        assert_int_equal(rc, CLI_USAGE);
        has(bad[k].msg);
        has("Try 'glocal demo --help'.");
        /* nothing is stored from a bad value */
        assert_int_equal(x.v.i, 3);
        assert_int_equal(x.v.w, 320);
    }
    /* the bounds themselves are in range (but not an open one) */
    fixture_init(&x);
    assert_int_equal(parse(&x.spec, "--threads 1 --mb 4096 -s 0 --seed 0"), CLI_PARSED);
    assert_int_equal(parse(&x.spec, "--threads 4096 -s 1000000000"), CLI_PARSED);
    assert_int_equal(x.v.l, 1000000000);
}

static void test_unknown_and_missing(void **state)
{
    (void)state;
    fixture x;
    fixture_init(&x);
    assert_int_equal(parse(&x.spec, "--sizee 3x3"), CLI_USAGE);
    has("glocal demo: unknown option '--sizee' (did you mean '--size'?)\n");
    assert_int_equal(parse(&x.spec, "-size 3x3"), CLI_USAGE);
    has("unknown option '-size' (did you mean '--size'?)");
    assert_int_equal(parse(&x.spec, "--no_flip"), CLI_USAGE);
    has("(did you mean '--no-flip'?)");
    assert_int_equal(parse(&x.spec, "--thraeds=4"), CLI_USAGE); /* a swap; the value is not named */
    has("unknown option '--thraeds' (did you mean '--threads'?)");
    assert_int_equal(parse(&x.spec, "--inc x"), CLI_USAGE); /* the only option it begins */
    has("(did you mean '--include'?)");
    assert_int_equal(parse(&x.spec, "--hepl"), CLI_USAGE);
    has("(did you mean '--help'?)");
    assert_int_equal(parse(&x.spec, "--verbose"), CLI_USAGE);
    has("unknown option '--verbose'\n");
    assert_int_equal(parse(&x.spec, "--out"), CLI_USAGE);
    has("glocal demo: option '--out' needs a value (DIR)\n");
    assert_int_equal(parse(&x.spec, "--colour"), CLI_USAGE);
    has("option '--colour' needs a value (red|green|blue)");
}

static void test_positionals(void **state)
{
    (void)state;
    fixture x;
    fixture_init(&x);
    /* anywhere among the options; "-" alone is an argument */
    assert_int_equal(parse(&x.spec, "a --json -"), CLI_PARSED);
    assert_int_equal(x.nargs, 2);
    assert_string_equal(x.args[0], "a");
    assert_string_equal(x.args[1], "-");
    assert_int_equal(x.v.flag, 1);
    /* after --, options are arguments */
    fixture_init(&x);
    assert_int_equal(parse(&x.spec, "--threads 2 -- --json"), CLI_PARSED);
    assert_int_equal(x.nargs, 1);
    assert_string_equal(x.args[0], "--json");
    assert_int_equal(x.v.flag, 0);
    assert_int_equal(parse(&x.spec, "a b c"), CLI_USAGE);
    has("glocal demo: unexpected argument 'c' (the arguments are A [B])");
    x.spec.min_args = 1;
    assert_int_equal(parse(&x.spec, "--json"), CLI_USAGE);
    has("glocal demo: missing A [B]\n");
    x.spec.min_args = x.spec.max_args = 2;
    x.spec.args = "A B";
    assert_int_equal(parse(&x.spec, "a"), CLI_USAGE);
    has("expected A B, got 1 argument\n");
    /* none allowed */
    x.spec.min_args = x.spec.max_args = 0;
    assert_int_equal(parse(&x.spec, "a"), CLI_USAGE);
    has("glocal demo: unexpected argument 'a'\n");
}

static void test_rest_after_dashdash(void **state)
{
    (void)state;
    fixture x;
    fixture_init(&x);
    int rest = -1;
    x.spec.rest = &rest;
    x.spec.max_args = 0;
    /* launch: `--` ends the options; what follows is not parsed, not even --help */
    assert_int_equal(parse(&x.spec, "--threads 2 -- glocal --threads 5 --help"), CLI_PARSED);
    assert_int_equal(x.v.i, 2);
    assert_int_equal(rest, 4); /* argv[4] = "glocal" */
    assert_int_equal(parse(&x.spec, "--json"), CLI_PARSED);
    assert_int_equal(rest, 2); /* argc: no command */
    assert_int_equal(parse(&x.spec, "--json cmd"), CLI_USAGE);
    has("unexpected argument 'cmd' (the command goes after --)");
}

/* main's global options: the first argument that is not an option is the
 * subcommand, and what follows it is its own, --help included. */
static void test_stop_at_command(void **state)
{
    (void)state;
    fixture x;
    fixture_init(&x);
    int at = -1;
    x.spec.cmd = "";
    x.spec.cmd_at = &at;
    x.spec.max_args = 0;
    x.spec.args = NULL;
    assert_int_equal(parse(&x.spec, "--threads 2 --out=o info --threads 9 --help"), CLI_PARSED);
    assert_int_equal(x.v.i, 2);
    assert_string_equal(x.v.s, "o");
    assert_int_equal(at, 4); /* argv[4] = "info" */
    assert_int_equal(out[0], 0);
    assert_int_equal(parse(&x.spec, "--json"), CLI_PARSED);
    assert_int_equal(at, 2); /* argc: no subcommand */
    assert_int_equal(parse(&x.spec, "-- --json"), CLI_PARSED);
    assert_int_equal(at, 2); /* after --, even an option's spelling is the subcommand */
    /* --help before the subcommand is glocal's; errors name no subcommand */
    assert_int_equal(parse(&x.spec, "--help info"), CLI_OK);
    has("usage: glocal [options]\n");
    assert_int_equal(parse(&x.spec, "--threads 0 info"), CLI_USAGE);
    has("glocal: option '--threads': 0 is out of range 1..4096\nTry 'glocal --help'.\n");
}

/* .last: which of two options came last (train-motion's --synth, --dataset). */
static void test_last_occurrence(void **state)
{
    (void)state;
    fixture x;
    fixture_init(&x);
    assert_int_equal(parse(&x.spec, "--json --no-flip --out o --json"), CLI_PARSED);
    assert_int_equal(x.opts[0].last, 5);  /* --json, the second time */
    assert_int_equal(x.opts[1].last, 2);  /* --no-flip */
    assert_int_equal(x.opts[9].last, 3);  /* --out: where the option stands, not its value */
    assert_int_equal(x.opts[3].last, 0);  /* --threads: not given */
    assert_int_equal(parse(&x.spec, "--no-flip"), CLI_PARSED);
    assert_int_equal(x.opts[0].last, 0);  /* reset by the next parse */
}

static void test_required(void **state)
{
    (void)state;
    fixture x;
    fixture_init(&x);
    x.opts[9].required = 1;  /* --out */
    x.opts[4].required = 1;  /* --steps, -s */
    assert_int_equal(parse(&x.spec, "--out o"), CLI_USAGE);
    has("glocal demo: -s N is required\n");
    assert_int_equal(parse(&x.spec, "-s 1"), CLI_USAGE);
    has("--out DIR is required");
    assert_int_equal(parse(&x.spec, "-s 1 --out o"), CLI_PARSED);
    /* help needs nothing; a required option has no default */
    assert_int_equal(parse(&x.spec, "--help"), CLI_OK);
    has("usage: glocal demo -s N --out DIR [options] A [B]\n");
    has("  --out DIR       output folder (required)\n");
}

static void test_help(void **state)
{
    (void)state;
    fixture x;
    fixture_init(&x);
    /* the defaults are the pointers' values before parsing, even with options
     * before --help; and help wins over a bad option */
    assert_int_equal(parse(&x.spec, "--threads 77 --colour purple --help"), CLI_OK);
    const char *want[] = {
        "usage: glocal demo [options] A [B]\n\nDoes a demo.\n\nOptions:\n",
        "  --json ", "print JSON\n",
        "  --no-flip ", "no flips\n",
        "\nnumbers:\n",
        "  --threads N ", "worker threads (1..4096, default 3)\n",
        "  -s, --steps N ", "training steps (0..1000000000, default 1000)\n",
        "  --seed S ", "random seed (>= 0, default 7)\n",
        "  --mb M ", "gradient size in MiB (0 < M <= 4096, default 0.5)\n",
        "  --tau T ", "time step (default 0.25)\n",
        "\nthings:\n",
        "  --out DIR ", "output folder (default here)\n",
        "  --colour red|green|blue\n", "a colour (default green)\n",
        "  --size WxH ", "frame size (default 320x240)\n",
        "  --include FILE ", "also read FILE (may be repeated)\n",
        "  --camera LEVEL ", "camera motion (default strong)\n",
        "  -h, --help ", "print this help and exit\n\nExit status: 0.\n",
    };
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) has(want[k]);
    /* no option kept its old name; the value was not parsed */
    assert_null(strstr(out, "77"));
    assert_int_equal(x.v.i, 3);
    /* -h, and --help after an argument; the help is what cli_help writes */
    char *direct = NULL;
    size_t dn = 0;
    FILE *f = open_memstream(&direct, &dn);
    assert_non_null(f);
    cli_help(&x.spec, f);
    fclose(f);
    assert_int_equal(parse(&x.spec, "a -h"), CLI_OK);
    assert_string_equal(out, direct);
    free(direct);
    /* every option's name is in the help: a table entry cannot be left out */
    for (const cli_opt *o = x.opts; o->kind != CLI_K_END; o++) assert_non_null(strstr(out, o->name));
}

/* A default that is not a value of the option (a sentinel) is not shown as
 * one; a long label gets its help on the next line; long help is wrapped. */
static void test_help_layout(void **state)
{
    (void)state;
    int workers = 0, split = 0;
    double dropout = -1;
    const char *sv = NULL;
    cli_opt opts[] = {
        CLI_NUM("--workers", &workers, 1, 256, "N", "loader threads"),
        CLI_NUM("--split", &split, 1, 3, "N", "the split", .def = "the checkpoint's"),
        CLI_NUM("--dropout", &dropout, 0, 1, "P", "before the classifier"),
        CLI_STR("--a-very-long-option-name", &sv, "WITH_A_LONG_VALUE",
                "words words words words words words words words words words words words words "
                "words words words words words words words words"),
        CLI_END,
    };
    cli_spec spec = { .cmd = "demo", .opts = opts };
    assert_int_equal(parse(&spec, "--help"), CLI_OK);
    has("usage: glocal demo [options]\n\nOptions:\n");
    has("loader threads (1..256)\n");
    has("the split (1..3, default the checkpoint's)\n");
    has("before the classifier (0 <= P <= 1)\n");
    /* the help column is after the longest label that fits (--workers N) */
    has("  --a-very-long-option-name WITH_A_LONG_VALUE\n               words words");
    has("  --workers N  loader threads");
    for (const char *p = out; *p;) {
        size_t k = strcspn(p, "\n");
        if (k > 80) {
            print_error("line longer than 80 columns: %.*s\n", (int)k, p);
            fail();
        }
        p += k + (p[k] != 0);
    }
    /* no options: no [options], and no error for none */
    cli_opt none[] = { CLI_END };
    cli_spec sn = { .cmd = "info", .opts = none };
    assert_int_equal(parse(&sn, "--help"), CLI_OK);
    has("usage: glocal info\n");
    assert_int_equal(parse(&sn, ""), CLI_PARSED);
    assert_int_equal(parse(&sn, "x"), CLI_USAGE);
    has("glocal info: unexpected argument 'x'");
    /* given usage lines */
    cli_spec su = { .cmd = "cache", .opts = none, .usage = "info CACHE.h5\nmerge OUT.h5 IN.h5..." };
    assert_int_equal(parse(&su, "-h"), CLI_OK);
    has("usage: glocal cache info CACHE.h5\n       glocal cache merge OUT.h5 IN.h5...\n");
}

/* ---- the subcommands ---------------------------------------------------------- */

/* Every option of every subcommand, as the parser took them before cli_parse
 * did (the strcmp branches of each cmd_*.c; main's getopt_long table for the
 * global options, cmd ""): --help must list exactly these, so none was lost,
 * renamed or added unseen. */
static const struct {
    const char *cmd, *opts;
} commands[] = {
    { "", "--device --threads --version" },
    { "cache", "" },
    { "dataset", "--classes --lists --missing --require-all --root --split" },
    { "dist-check", "--iters --mb --timeout" },
    { "eval-dhe", "--batch --json --list --max-pairs --model --no-refine --no-tvl1 --points --work-size" },
    { "eval-motion", "--batch --camera --dataset --dhe --json --lme-agree-k --lme-coarse --lme-coarse-px --lme-fine --lme-finish --lme-flat --lme-flat-noise --lme-local --lme-passes --lme-repass --lme-support --lme-support-k --lme-thresh-k --magnitude --mask-lme --max-clips --model --net-passes "
                     "--no-fuse --no-refine --no-start-dis --no-start-search --no-tvl1 --pairs --pairs-per-clip --per-pair --photo-side --photos --seed --size --start-dis --synth" },
    { "eval-video", "--batch --fg-threshold --gap --json --model --net-passes --no-start-dis --no-start-search --no-tvl1 --pairs --per-pair --short-side" },
    { "eval-stabilize", "--angle --json --method --model --quality --seed --shift --size --truth --window --zoom" },
    { "evaluate", "--batch --cache --checkpoint --crops --data --json --lists --out --segments --split --subset "
                  "--workers" },
    { "extract", "--dataset --dist-timeout --lists --method --model --out --shard --size --split --split-file "
                 "--stride --strict --workers" },
    { "flow", "--epsilon --eval --global --iterations --lambda --max-radius --median --median-every --method "
              "--opencv-defaults --out --png --preset --scales --step --tau --theta --threshold --warps --zero-inliers "
              "--zoom" },
    { "fuse", "--json --out --weights" },
    { "info", "" },
    { "launch", "--grace --no-prefix --nproc --port -n" },
    { "motion", "--frame --lme-local --model --no-refine --out --video --zoom" },
    { "ncaa-import", "--csv --labels --out --qscale --size --videos" },
    { "probe", "--count" },
    { "run", "--from --lists --out --root" },
    { "stabilize", "--batch --compare --crop --method --model --no-audio --quality --size --smooth --transforms" },
    { "synth", "--camera --classes --clips-per-class --frames --out --seed --size --supersample --textures" },
    { "train-classifier", "--arch --batch --cache --clip-grad --crop --data --decode --depth --divide --dropout "
                          "--epochs --frames --gamma --init --label-smoothing --lists --lr --min-lr --modality "
                          "--momentum --no-flip --optimizer --out --resume --schedule --seed --segments --size "
                          "--split --stack --step-epochs --warmup --weight-decay --width --workers" },
    { "train-motion", "--align-refine --arch --augment --batch --camera --census --ckpt-every --dataset --dense --feat --freeze-gme "
                      "--gap --gn --init --init-lme --iters --lists --lme-arch --lme-ch --lme-start --local --local-census --log-every "
                      "--lr --lr-final --magnitude --mask-start --minutes --mix-synth --occlusion --out --photos --pool --pretrain-gt --resume "
                      "--seed --size --smooth --still "
                      "--split --steps --synth --teacher --teacher-weight" },
};

/* The options an option line of a help text starts with ("  -n, --nproc N"). */
static void help_options(const char *text, char *set, size_t n)
{
    set[0] = 0;
    for (const char *p = text; *p; p += strcspn(p, "\n"), p += *p != 0) {
        if (strncmp(p, "  -", 3)) continue;
        const char *q = p + 2;
        for (;;) {
            size_t k = strcspn(q, " ,\n");
            size_t l = strlen(set);
            snprintf(set + l, n - l, " %.*s ", (int)k, q);
            if (strncmp(q + k, ", -", 3)) break;
            q += k + 2;
        }
    }
}

/* train-motion --arch 2 for 1 step with `extra` options into tmpdir/NAME;
 * the "loss" of its logged step 1. */
static double train_motion_loss(const char *name, const char *extra)
{
    char cmd[1200], path[400];
    snprintf(cmd, sizeof cmd, "'%s' --threads 1 train-motion --synth --size 32 --feat 8 --batch 2 --pool 4 --steps 1 "
             "--log-every 1 --arch 2 --seed 5 %s --out '%s/%s' > '%s/%s.log' 2>&1", GLOCAL_BINARY, extra, tmpdir, name,
             tmpdir, name);
    int st = system(cmd);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    snprintf(path, sizeof path, "%s/%s/log.jsonl", tmpdir, name);
    char *text = test_read_text(path);
    assert_non_null(text);
    const char *p = strstr(text, "\"loss\": ");
    assert_non_null(p);
    double loss = strtod(p + 8, NULL);
    gl_free(text);
    return loss;
}

/* --teacher-weight 0 with --teacher is a weight of 0 (the teacher term left
 * out: the loss of no teacher at all), not the default of 1 it once became;
 * without --teacher-weight the teacher counts; with no --teacher at all the
 * default teacher (tvl1) counts. */
static void test_train_motion_teacher_weight(void **state)
{
    (void)state;
    assert_true(train_motion_loss("tw_implicit", "") == train_motion_loss("tw_tvl1", "--teacher tvl1"));
    double none = train_motion_loss("tw_none", "--teacher none"), zero = train_motion_loss("tw_zero", "--teacher tvl1 --teacher-weight 0"),
           dflt = train_motion_loss("tw_default", "--teacher tvl1");
    assert_true(zero == none);
    assert_true(dflt > none + 1e-3);
    assert_true(train_motion_loss("tw_one", "--teacher tvl1 --teacher-weight 1") == dflt);
}

/* --mix-synth joins rendered pairs to other images: alone it is refused,
 * naming what it needs, before anything is written. */
static void test_train_motion_mix_synth(void **state)
{
    (void)state;
    char cmd[1200], path[400];
    snprintf(path, sizeof path, "%s/mix.log", tmpdir);
    snprintf(cmd, sizeof cmd, "'%s' --threads 1 train-motion --mix-synth 4 --size 32 --steps 1 --out '%s/mix' > '%s' 2>&1",
             GLOCAL_BINARY, tmpdir, path);
    int st = system(cmd);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 2);
    char *text = test_read_text(path);
    assert_non_null(text);
    assert_non_null(strstr(text, "--mix-synth"));
    assert_non_null(strstr(text, "--photos or --dataset"));
    gl_free(text);
    snprintf(path, sizeof path, "%s/mix", tmpdir);
    assert_int_not_equal(access(path, F_OK), 0);
}

static void test_commands_help(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof commands / sizeof commands[0]; c++) {
        char cmd[600], path[300];
        snprintf(path, sizeof path, "%s/help.txt", tmpdir);
        snprintf(cmd, sizeof cmd, "'%s' --threads 1 %s --help > '%s' 2>&1", GLOCAL_BINARY, commands[c].cmd, path);
        int st = system(cmd);
        assert_true(WIFEXITED(st));
        char *text = test_read_text(path);
        assert_non_null(text);
        if (WEXITSTATUS(st) != 0) print_error("glocal %s --help exited %d:\n%s\n", commands[c].cmd, WEXITSTATUS(st), text);
        assert_int_equal(WEXITSTATUS(st), 0);
        snprintf(cmd, sizeof cmd, "usage: glocal %s", commands[c].cmd);
        assert_true(!strncmp(text, cmd, strlen(cmd)));
        char listed[4096];
        help_options(text, listed, sizeof listed);
        /* every option it had is listed ... */
        char want[2048], *save = NULL;
        snprintf(want, sizeof want, "%s -h --help", commands[c].opts);
        int expected = 0;
        for (char *t = strtok_r(want, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
            char w[128];
            snprintf(w, sizeof w, " %s ", t);
            if (!strstr(listed, w)) {
                print_error("glocal %s --help does not list %s:\n%s\n", commands[c].cmd, t, text);
                fail();
            }
            expected++;
        }
        /* ... and nothing else */
        int n = 0;
        for (const char *p = listed; (p = strstr(p, " -")); p += 2) n++;
        if (n != expected) print_error("glocal %s --help lists %d options, expected %d:%s\n", commands[c].cmd, n, expected, listed);
        assert_int_equal(n, expected);
        gl_free(text);
    }
}

static int setup(void **state)
{
    (void)state;
    return test_tmpdir_make(tmpdir, sizeof tmpdir, "glocal_cli");
}

static int teardown(void **state)
{
    (void)state;
    return test_tmpdir_remove(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_kind),
        cmocka_unit_test(test_equals_and_repeats),
        cmocka_unit_test(test_numbers_and_ranges),
        cmocka_unit_test(test_unknown_and_missing),
        cmocka_unit_test(test_positionals),
        cmocka_unit_test(test_rest_after_dashdash),
        cmocka_unit_test(test_stop_at_command),
        cmocka_unit_test(test_last_occurrence),
        cmocka_unit_test(test_required),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_help_layout),
        cmocka_unit_test(test_commands_help),
        cmocka_unit_test(test_train_motion_teacher_weight),
        cmocka_unit_test(test_train_motion_mix_synth),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
