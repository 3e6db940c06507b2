/*
 * commands.h — the `glocal` subcommands. Each is `int cmd_NAME(int argc,
 * char **argv)` in experiments/cmd_NAME.c: argv[0] is the subcommand name,
 * the return value is the process exit code (0 ok, 1 failure, 2 usage).
 * Add a command by adding one X line here and its file.
 */
#ifndef GLOCAL_COMMANDS_H
#define GLOCAL_COMMANDS_H

#define GLOCAL_COMMANDS(X)                                                              \
    X(info,  "print versions, the BLAS in use, threads and whether CUDA is available")

#define X(name, summary) int cmd_##name(int argc, char **argv);
GLOCAL_COMMANDS(X)
#undef X

#endif
