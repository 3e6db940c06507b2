/*
 * ncaa.h — the NCAA basketball event dataset (Ramanathan, Huang, Abu-El-Haija,
 * Gorban, Murphy & Fei-Fei, "Detecting events and key actors in multi-person
 * videos", CVPR 2016): its annotation CSV, its labels, and the import that
 * cuts event clips out of the game videos into the UCF-101 layout that
 * datasets/ucf101.h reads.
 *
 * CSV (bball_dataset_april_4.csv): no header (a first line starting with
 * "YoutubeId," is skipped), 11 comma-separated columns per row:
 *   YoutubeId, VideoWidth, VideoHeight, ClipStartTime, ClipEndTime,
 *   EventStartTime, EventEndTime, EventStartBallX, EventStartBallY,
 *   EventLabel, TrainValOrTest
 * Times are milliseconds within the game video (fractional), -1 = not given
 * (every "steal success" row has EventStartTime -1); ball X/Y are fractions
 * of the frame size, -1 = not given. The official file: 14,548 rows, 257
 * games, 11,436 train / 856 val / 2,256 test; a game never straddles splits.
 * A malformed row is an error "FILE:LINE: what is wrong".
 *
 * Labels: the 11 labels of the CSV (5 shot types x success/failure, plus
 * steal success), or the 6 event types when success and failure are merged
 * (3-pointer, free-throw, layup, other 2-pointer, slam dunk, steal). Class
 * names for folders are the labels in CamelCase without blanks or hyphens:
 * "3PointerSuccess", ..., "StealSuccess" (11) or "3Pointer", ..., "Steal" (6).
 *
 * Import layout (ncaa_import): OUT/classInd.txt, trainlist01.txt,
 * vallist01.txt, testlist01.txt and OUT/<Class>/v_<Class>_gGGG_cLLLLL.avi,
 * where GGG is the game's 1-based rank among the CSV's YouTube ids sorted by
 * byte value (so the UCF-101 group is the game) and LLLLL is the event's
 * 1-based CSV line (unique, and traceable back to the row). Lists hold only
 * the clips that exist after the run.
 *
 * Ownership: ncaa_dataset_load() allocates the dataset, ncaa_dataset_free()
 * releases it (accepts a pointer to NULL, sets it to NULL). ncaa_import()
 * fills a report the caller releases with ncaa_import_report_release().
 *
 * Errors: negative GL_E* codes with a message (gl_last_error()): GL_EIO for
 * unreadable or unwritable files, GL_EFORMAT for a malformed CSV, GL_EINVAL
 * for a bad configuration field (named). Per-event failures of the import
 * (missing game video, window past the end, undecodable video) are not
 * errors of the call: they are counted and listed in the report.
 */
#ifndef GLOCAL_DATASETS_NCAA_H
#define GLOCAL_DATASETS_NCAA_H

#include <stddef.h>

#include "datasets/ucf101.h"
#include "nn/base.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { NCAA_NUM_LABELS = 11, NCAA_NUM_EVENT_TYPES = 6 };

/* The CSV's label text ("3-pointer success"), label 0..10; NULL if out of range. */
const char *ncaa_label_name(int label);
/* label 0..10 for a CSV label text (exact match), or -1. */
int ncaa_label_find(const char *text);
/* The event type 0..5 of a label (success/failure merged), or -1. */
int ncaa_label_event_type(int label);

/* Class schemes: scheme = 11 (the labels) or 6 (the event types). */
int ncaa_num_classes(int scheme);                /* 11, 6, or -1 */
int ncaa_class_of_label(int label, int scheme);  /* class index, or -1 */
const char *ncaa_class_name(int cls, int scheme); /* folder name, or NULL */

typedef struct {
    char youtube_id[32];
    int video_width, video_height;   /* pixels, as annotated */
    double clip_start_ms, clip_end_ms;   /* the clip window in the game video */
    double event_start_ms, event_end_ms; /* -1 = not given */
    double ball_x, ball_y;           /* fractions of width/height at event start; -1 = not given */
    int label;                       /* 0..10, see ncaa_label_name */
    dataset_split split;
    int game;                        /* index into ncaa_dataset.games */
    int line;                        /* 1-based CSV line */
} ncaa_event;

typedef struct {
    long num_events;
    ncaa_event *events;                 /* in CSV order */
    int num_games;
    char **games;                       /* YouTube ids, sorted by strcmp */
    long num_split[DATASET_NUM_SPLITS]; /* events per split */
} ncaa_dataset;

int ncaa_dataset_load(ncaa_dataset **out, const char *csv_path);
void ncaa_dataset_free(ncaa_dataset **d);

/* Checks that every game's events are in one split; GL_EFORMAT naming the
 * game and two lines otherwise. */
int ncaa_dataset_check_games(const ncaa_dataset *d);

/* ---- import --------------------------------------------------------------- */

typedef struct {
    const char *csv;       /* the annotation CSV */
    const char *videos;    /* folder holding <YoutubeId>.<any extension> */
    const char *out;       /* output folder (created) */
    int scheme;            /* 11 or 6 classes; default 11 */
    int width, height;     /* output frame size in pixels, both even; 0, 0 = the game
                              video's own size (rounded down to even) */
    int qscale;            /* MPEG-4 quantiser 1..31 (lower: better, larger);
                              0 = the video writer's default */
    /* Optional, after each clip window (done of total events); nonzero
     * return cancels (GL_ECANCELED). Calls are serialised but may come from
     * any worker thread. */
    int (*progress)(void *ctx, long done, long total);
    void *progress_ctx;
} ncaa_import_config;

ncaa_import_config ncaa_import_config_default(void);
/* GL_EINVAL naming the bad field. */
int ncaa_import_config_validate(const ncaa_import_config *c);

typedef struct {
    long events;           /* rows in the CSV */
    long written;          /* clips written by this run */
    long skipped;          /* clips already there (earlier run) */
    long failed;           /* events that could not be cut (incl. missing games) */
    int games;             /* games in the CSV */
    int games_missing;     /* games with no video file */
    long stale_removed;    /* temporary files of killed earlier runs, deleted */
    long num_errors;
    char **errors;         /* [num_errors] one line per failed event or missing game */
} ncaa_import_report;

/* Cuts every event's clip window [ClipStartTime, ClipEndTime) (ms) out of
 * videos/<YoutubeId>.* and writes it as an MPEG-4 AVI at the game video's
 * frame rate; events sharing a window share one decode; games run in
 * parallel on gl_num_threads() threads (same bytes and report as one
 * thread: errors are ordered by CSV line); clips already present are skipped; each clip is written
 * atomically (video_writer), so an interrupted run never leaves half a clip.
 * Temporary files left by a killed earlier run (the video writer's
 * "<clip>.tmp.<pid>.<n>", whose process no longer exists) are deleted first.
 * Then writes the lists. Returns 0 when the run went through, even if events
 * failed (see rep->failed / rep->errors); negative for errors that stop the
 * whole run (bad CSV, unwritable output, cancel). rep is always filled (and
 * must be released) once the config is valid. */
int ncaa_import(const ncaa_import_config *cfg, ncaa_import_report *rep);
void ncaa_import_report_release(ncaa_import_report *rep);

#ifdef __cplusplus
}
#endif
#endif
