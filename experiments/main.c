/*
 * main.c — the `glocal` command: global options, then one subcommand.
 *
 *   glocal [--threads N] [--device cpu|cuda] SUBCOMMAND [options]
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "experiments/cli.h"
#include "experiments/commands.h"
#include "nn/base.h"
#include "nn/nn.h"

/* Bounds of the "glocal_cmds" section, provided by the linker. */
extern const glocal_command *const __start_glocal_cmds[];
extern const glocal_command *const __stop_glocal_cmds[];

static const glocal_command *commands[64];
static int ncommands;

static int by_name(const void *a, const void *b)
{
    return strcmp((*(const glocal_command *const *)a)->name,
                  (*(const glocal_command *const *)b)->name);
}

static void collect_commands(void)
{
    for (const glocal_command *const *c = __start_glocal_cmds; c < __stop_glocal_cmds; c++)
        if (ncommands < 64) commands[ncommands++] = *c;
    qsort(commands, (size_t)ncommands, sizeof commands[0], by_name);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: glocal [--threads N] [--device cpu|cuda] SUBCOMMAND [options]\n"
            "\n"
            "GLOCAL global/local motion estimation and two-stream action recognition.\n"
            "\n"
            "Global options:\n"
            "  --threads N        worker threads for libtorch and glocal (default: all cores, %d here)\n"
            "  --device cpu|cuda  where models run (default cpu)\n"
            "  --version          print the version and exit\n"
            "  -h, --help         this text\n"
            "\nSubcommands (glocal SUBCOMMAND --help for each):\n",
            gl_num_cores());
    for (int i = 0; i < ncommands; i++)
        fprintf(f, "  %-18s %s\n", commands[i]->name, commands[i]->summary);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "threads", required_argument, NULL, 't' },
        { "device", required_argument, NULL, 'd' },
        { "version", no_argument, NULL, 'V' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    /* '+': stop at the first non-option (the subcommand). */
    int c;
    long threads = 0;
    collect_commands();
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (cli_parse_int("", "--threads", optarg, 1, 4096, &threads) < 0) return CLI_USAGE;
            break;
        case 'd':
            if (strcmp(optarg, "cpu") != 0 && strcmp(optarg, "cuda") != 0) {
                fprintf(stderr, "glocal: --device expects cpu or cuda, got '%s'\n", optarg);
                return CLI_USAGE;
            }
            cli_g.device = optarg;
            break;
        case 'V': printf("glocal %s\n", GLOCAL_VERSION); return CLI_OK;
        case 'h': usage(stdout); return CLI_OK;
        default:
            fprintf(stderr, "glocal: unknown global option '%s'\n", argv[optind - 1]);
            usage(stderr);
            return CLI_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return CLI_USAGE;
    }
    const char *name = argv[optind];
    for (int i = 0; i < ncommands; i++) {
        if (strcmp(commands[i]->name, name) != 0) continue;
        cli_g.threads = (int)threads;
        gl_set_num_threads((int)threads);
        if (nn_runtime_init(gl_num_threads(), cli_g.device) < 0) {
            fprintf(stderr, "glocal: %s\n", gl_last_error());
            return CLI_FAIL;
        }
        /* The subcommand parses its own options from its own argv. */
        int sub = optind;
        optind = 0; /* glibc: 0 re-initialises getopt for the new argv */
        opterr = 1;
        int rc = commands[i]->fn(argc - sub, argv + sub);
        nn_runtime_shutdown();
        return rc;
    }
    fprintf(stderr, "glocal: unknown subcommand '%s'\n", name);
    usage(stderr);
    return CLI_USAGE;
}
