/*
 * main.c — the `glocal` command: global options, then one subcommand.
 *
 *   glocal [--threads N] [--device cpu|cuda] SUBCOMMAND [options]
 */
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

static const char *const devices[] = { "cpu", "cuda", NULL };

int main(int argc, char **argv)
{
    int threads = 0, device = 0, version = 0, at = argc;
    char threads_def[64], subcommands[64 * 100] = "Subcommands (glocal SUBCOMMAND --help for each):\n";
    collect_commands();
    snprintf(threads_def, sizeof threads_def, "all cores, %d here", gl_num_cores());
    for (int i = 0; i < ncommands; i++) {
        size_t o = strlen(subcommands);
        snprintf(subcommands + o, sizeof subcommands - o, "  %-18s %s\n", commands[i]->name, commands[i]->summary);
    }
    cli_opt opts[] = {
        CLI_SECTION("Global options"),
        CLI_NUM("--threads", &threads, 1, 4096, "N", "worker threads for libtorch and glocal", .def = threads_def),
        CLI_CHOICE("--device", &device, devices, "where models run"),
        CLI_FLAG("--version", &version, "print the version and exit"),
        CLI_END,
    };
    /* The global options end at the subcommand, which parses its own. */
    cli_spec spec = { .cmd = "", .opts = opts, .cmd_at = &at,
                      .usage = "[--threads N] [--device cpu|cuda] SUBCOMMAND [options]",
                      .about = "GLOCAL global/local motion estimation and two-stream action recognition.\n",
                      .epilog = subcommands };
    int rc = cli_parse(&spec, argc, argv);
    if (rc != CLI_PARSED) return rc;
    if (version) {
        printf("glocal %s\n", GLOCAL_VERSION);
        return CLI_OK;
    }
    if (at >= argc) {
        cli_help(&spec, stderr);
        return CLI_USAGE;
    }
    cli_g.device = devices[device];
    const char *name = argv[at];
    for (int i = 0; i < ncommands; i++) {
        if (strcmp(commands[i]->name, name) != 0) continue;
        cli_g.threads = threads;
        gl_set_num_threads(threads);
        if (nn_runtime_init(gl_num_threads(), cli_g.device) < 0) {
            fprintf(stderr, "glocal: %s\n", gl_last_error());
            return CLI_FAIL;
        }
        /* The subcommand parses its own options from its own argv. */
        rc = commands[i]->fn(argc - at, argv + at);
        nn_runtime_shutdown();
        return rc;
    }
    fprintf(stderr, "glocal: unknown subcommand '%s'\n", name);
    cli_help(&spec, stderr);
    return CLI_USAGE;
}
