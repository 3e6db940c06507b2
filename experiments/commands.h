/*
 * commands.h — how a `glocal` subcommand registers itself.
 *
 * A subcommand lives in experiments/cmd_<name>.c and ends with
 *     GLOCAL_COMMAND(probe, "probe", "print what FFmpeg sees in video files")
 * Its function `int cmd_<ident>(int argc, char **argv)` gets argv[0] = the
 * subcommand name and returns the exit code (CLI_OK, CLI_FAIL, CLI_USAGE).
 * The macro places a pointer in the "glocal_cmds" linker section; main.c
 * lists the section, so adding a command touches no shared file.
 */
#ifndef GLOCAL_COMMANDS_H
#define GLOCAL_COMMANDS_H

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} glocal_command;

#define GLOCAL_COMMAND(ident, name_, summary_)                                           \
    int cmd_##ident(int argc, char **argv);                                              \
    static const glocal_command glocal_cmd_##ident = { name_, cmd_##ident, summary_ };   \
    __attribute__((used, section("glocal_cmds"))) const glocal_command *const            \
        glocal_cmd_ptr_##ident = &glocal_cmd_##ident;

#endif
