/*
 * stages.h — the pipeline behind `glocal run`: each stage is a `glocal`
 * subcommand run as a child process, its output folder keyed by the config
 * and the keys of the stages it reads.
 *
 * A stage is finished when OUT/<stage dir>/stage.json exists and holds the
 * same key; then a re-run skips it. An interrupted stage is re-run with the
 * subcommand's own resume (checkpoints, caches that skip finished clips).
 * Changing a config value changes the keys of the stages that depend on it,
 * and only those run again.
 */
#ifndef GLOCAL_EXPERIMENTS_STAGES_H
#define GLOCAL_EXPERIMENTS_STAGES_H

#include <stdint.h>

#include "experiments/config.h"

/* FNV-1a 64 of a string, continuing from h (start with 0). */
uint64_t stage_hash(uint64_t h, const char *s);

typedef struct {
    char name[64];          /* "motion", "extract-tvl1", ... */
    char dir[1024];         /* OUT/stages/<name> */
    char key[17];           /* hex */
    int skipped;            /* finished earlier with the same key */
    double seconds;         /* time this run (or the recorded time when skipped) */
    char note[512];         /* finished with a warning (e.g. clips that failed), or "" */
} stage_result;

/* Runs argv (argv[0] = path of glocal) as a child with stdout+stderr appended
 * to log_path and mirrored to our stderr, prefixed "[stage] ". A SIGINT or
 * SIGTERM caught meanwhile (cli_signals_catch) is passed on to the child,
 * which stops cleanly. Returns the child's exit status (0 ok; 128 + N when
 * signal N ended it), or a negative GL code if it could not start. */
int stage_exec(const char *stage, char *const argv[], const char *log_path);

/* stage.json in dir has this key; *seconds and note (a warning recorded with
 * it, "" when none; may be NULL) get what was recorded. */
int stage_is_done(const char *dir, const char *key, double *seconds, char *note, size_t note_size);
/* Writes stage.json (atomically); note may be NULL. */
int stage_mark_done(const char *dir, const char *key, double seconds, const char *note);

#endif
