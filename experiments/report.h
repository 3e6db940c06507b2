/*
 * report.h — the report of `glocal run`: OUT/report.md (recognition per
 * stream and fusion, motion against ground truth, figures, time per stage,
 * the config), its JSON twin OUT/report.json, and the figures in
 * OUT/figures (training curves and labelled confusion matrices drawn with
 * gnuplot when it is installed; evaluate's plain matrices otherwise; the
 * sample decompositions). Everything is read from the stages' folders
 * (stages.h): the report can be rewritten from a finished run alone.
 *
 * Errors: negative GL_E* codes with a message naming the file; nothing here
 * prints (gnuplot's own output is discarded, its failure noted in the
 * report).
 */
#ifndef GLOCAL_EXPERIMENTS_REPORT_H
#define GLOCAL_EXPERIMENTS_REPORT_H

#include "experiments/config.h"
#include "experiments/stages.h"

typedef struct {
    const exp_config *cfg;
    const char *out;                        /* OUT: the run's folder */
    const char *data;                       /* the dataset folder */
    const char *cmdline;                    /* the glocal run command, as typed */
    const char *device;                     /* "cpu" or "cuda" (for the machine line) */
    const stage_result *stages;             /* every stage of the run, in order */
    int nstages;
    const stage_result *eval_motion;        /* the eval-motion stage; NULL when none ran */
    stage_result *const *eval;              /* [cfg->nsources]: evaluate-<source> (entries may be NULL) */
    stage_result *const *fuse;              /* [cfg->nfusions]: fuse-<name> (entries may be NULL) */
    int samples;                            /* OUT/stages/samples/<i>/strip.png, i < samples, if present */
    double seconds;                         /* this invocation's wall time */
} report_input;

/* Writes OUT/report.md and OUT/report.json (each atomically) and the figures. */
int report_write(const report_input *in);

#endif
