/* glocal ncaa-import — cut NCAA basketball event clips out of the game videos
 * into the UCF-101 layout (datasets/ncaa.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "datasets/ncaa.h"
#include "datasets/video.h"
#include "experiments/cli.h"
#include "experiments/commands.h"

GLOCAL_COMMAND(ncaa_import, "ncaa-import",
               "cut NCAA basketball event clips from game videos into the UCF-101 layout")

typedef struct {
    cli_progress bar;
} progress_ctx;

static int on_progress(void *ctx, long done, long total)
{
    progress_ctx *p = ctx;
    p->bar.total = total;
    cli_progress_update(&p->bar, done, "events");
    return cli_signal_caught(); /* SIGINT/SIGTERM: stop after the clip window being cut */
}

/* All error lines into OUT/import_errors.txt (atomically); removes a stale
 * one when there are none. */
static int write_errors(const char *out, const ncaa_import_report *rep)
{
    size_t n = strlen(out) + 32;
    char *path = gl_malloc(n);
    if (!path) return GL_ENOMEM;
    snprintf(path, n, "%s/import_errors.txt", out);
    int rc = 0;
    if (rep->num_errors == 0) {
        unlink(path);
        goto done;
    }
    size_t len = 0;
    for (long i = 0; i < rep->num_errors; i++) len += strlen(rep->errors[i]) + 1;
    char *text = gl_malloc(len + 1), *p = text;
    if (!text) { rc = GL_ENOMEM; goto done; }
    for (long i = 0; i < rep->num_errors; i++) {
        size_t k = strlen(rep->errors[i]);
        memcpy(p, rep->errors[i], k);
        p[k] = '\n';
        p += k + 1;
    }
    rc = gl_write_file_atomic(path, text, len);
    gl_free(text);
done:
    gl_free(path);
    return rc;
}

int cmd_ncaa_import(int argc, char **argv)
{
    const char *cmd = "ncaa-import";
    ncaa_import_config cfg = ncaa_import_config_default();
    /* 0 would mean the writer's default: say which it is */
    cfg.qscale = video_writer_opts_default().qscale;
    static const char *const schemes[] = { "11", "6", NULL };
    int scheme = cfg.scheme == 6;
    cli_opt opts[] = {
        CLI_STR("--csv", &cfg.csv, "FILE", "the annotation CSV", .required = 1),
        CLI_STR("--videos", &cfg.videos, "DIR", "folder of game videos named by YouTube id", .required = 1),
        CLI_STR("--out", &cfg.out, "DIR", "output folder, created", .required = 1),
        CLI_CHOICE("--labels", &scheme, schemes,
                   "11: the CSV's labels, success and failure apart; 6: event types: 3Pointer, "
                   "FreeThrow, Layup, Other2Pointer, SlamDunk, Steal"),
        CLI_SIZE("--size", &cfg.width, &cfg.height, "WxH", "output frame size, even numbers",
                 .def = "the game's own, rounded down to even"),
        CLI_NUM("--qscale", &cfg.qscale, 1, 31, "Q",
                "MPEG-4 quantiser; 2 is near-lossless, 8.6 MB for 25 s of a 490x360 test pattern; 5 "
                "about half of that"),
        CLI_END,
    };
    cli_spec spec = {
        .cmd = cmd, .opts = opts,
        .about = "Reads the NCAA basketball annotations (Ramanathan et al., CVPR 2016; the file\n"
                 "bball_dataset_april_4.csv) and, for every event, cuts its clip window\n"
                 "[ClipStartTime, ClipEndTime) (ms) out of the game video DIR/<YoutubeId>.<ext>\n"
                 "(any extension) into an MPEG-4 AVI at the game's frame rate:\n"
                 "\n"
                 "  OUT/<Class>/v_<Class>_gGGG_cLLLLL.avi   GGG = game rank by id, LLLLL = CSV line\n"
                 "  OUT/classInd.txt, trainlist01.txt, vallist01.txt, testlist01.txt\n"
                 "\n"
                 "which `glocal` reads like UCF-101. The lists hold the clips that exist.\n",
        .epilog = "Games are cut in parallel, one per thread (global --threads, default: all\n"
                  "cores). Clips already in OUT are skipped, so an interrupted run can be\n"
                  "resumed; every clip is written atomically. Games without a video are\n"
                  "reported and skipped; a window past the end of its video fails that event\n"
                  "only. All failures are listed in OUT/import_errors.txt. Exit code: 0 all\n"
                  "events done, 1 some failed or the run stopped, 2 usage error, 130\n"
                  "interrupted (SIGINT), 143 terminated (SIGTERM): the clips being cut are\n"
                  "finished, the lists are not written; rerun to continue.\n",
    };
    int rc = cli_parse(&spec, argc, argv);
    if (rc != CLI_PARSED) return rc;
    cfg.scheme = scheme ? 6 : 11;
    if (cfg.width % 2 || cfg.height % 2)
        return cli_usage_error(cmd, "--size expects even numbers (MPEG-4 4:2:0), got %dx%d", cfg.width,
                               cfg.height);

    progress_ctx pc;
    cli_progress_start(&pc.bar, "ncaa-import", 0);
    cfg.progress = on_progress;
    cfg.progress_ctx = &pc;
    ncaa_import_report rep;
    cli_signals_catch();
    rc = ncaa_import(&cfg, &rep);
    cli_signals_restore();
    if (rc == GL_ECANCELED && cli_signal_caught()) {
        if (pc.bar.tty) fputc('\n', stderr); /* after the progress line */
        fprintf(stderr, "glocal %s: stopped by signal %d after %ld clips written, %ld skipped, %ld failed; "
                "run the same command again to continue\n", cmd, cli_signal_caught(), rep.written, rep.skipped,
                rep.failed);
        ncaa_import_report_release(&rep);
        return 128 + cli_signal_caught();
    }
    if (rc < 0) {
        int code = cli_fail(cmd, rc, "import stopped after %ld written, %ld skipped, %ld failed",
                            rep.written, rep.skipped, rep.failed);
        ncaa_import_report_release(&rep);
        return code;
    }
    pc.bar.total = rep.events;
    cli_progress_end(&pc.bar, rep.events, "events");

    const long show = 20;
    for (long i = 0; i < rep.num_errors && i < show; i++)
        fprintf(stderr, "glocal %s: %s\n", cmd, rep.errors[i]);
    if (rep.num_errors > show)
        fprintf(stderr, "glocal %s: ... and %ld more\n", cmd, rep.num_errors - show);
    int wrc = write_errors(cfg.out, &rep);
    if (wrc < 0) cli_fail(cmd, wrc, "cannot write the error list");
    printf("%ld events in %d games: %ld clips written, %ld already there, %ld failed", rep.events,
           rep.games, rep.written, rep.skipped, rep.failed);
    if (rep.games_missing)
        printf(" (%d game%s without video)", rep.games_missing, rep.games_missing == 1 ? "" : "s");
    printf("\n");
    if (rep.stale_removed)
        printf("deleted %ld temporary file%s of an interrupted earlier run\n", rep.stale_removed,
               rep.stale_removed == 1 ? "" : "s");
    if (rep.num_errors) printf("failures listed in %s/import_errors.txt\n", cfg.out);
    int code = rep.failed || wrc < 0 ? CLI_FAIL : CLI_OK;
    ncaa_import_report_release(&rep);
    return code;
}
