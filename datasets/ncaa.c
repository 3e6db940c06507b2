/* NCAA basketball annotations: CSV parser and label schemes. See ncaa.h. */
#include "datasets/ncaa.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/text_lines.h"

/* Order follows the label table of Ramanathan et al. 2016 (shot type, then
 * success before failure, steal last). */
static const char *const label_names[NCAA_NUM_LABELS] = {
    "3-pointer success",       "3-pointer failure", "free-throw success", "free-throw failure",
    "layup success",           "layup failure",     "other 2-pointer success",
    "other 2-pointer failure", "slam dunk success", "slam dunk failure",  "steal success",
};
static const char *const class_names11[NCAA_NUM_LABELS] = {
    "3PointerSuccess",      "3PointerFailure", "FreeThrowSuccess", "FreeThrowFailure",
    "LayupSuccess",         "LayupFailure",    "Other2PointerSuccess",
    "Other2PointerFailure", "SlamDunkSuccess", "SlamDunkFailure",  "StealSuccess",
};
static const char *const class_names6[NCAA_NUM_EVENT_TYPES] = {
    "3Pointer", "FreeThrow", "Layup", "Other2Pointer", "SlamDunk", "Steal",
};

const char *ncaa_label_name(int label)
{
    return label >= 0 && label < NCAA_NUM_LABELS ? label_names[label] : NULL;
}

int ncaa_label_find(const char *text)
{
    for (int i = 0; i < NCAA_NUM_LABELS; i++)
        if (!strcmp(label_names[i], text)) return i;
    return -1;
}

int ncaa_label_event_type(int label)
{
    if (label < 0 || label >= NCAA_NUM_LABELS) return -1;
    return label / 2; /* pairs success/failure; steal (10) alone -> 5 */
}

int ncaa_num_classes(int scheme)
{
    return scheme == NCAA_NUM_LABELS ? NCAA_NUM_LABELS
         : scheme == NCAA_NUM_EVENT_TYPES ? NCAA_NUM_EVENT_TYPES : -1;
}

int ncaa_class_of_label(int label, int scheme)
{
    if (label < 0 || label >= NCAA_NUM_LABELS) return -1;
    if (scheme == NCAA_NUM_LABELS) return label;
    if (scheme == NCAA_NUM_EVENT_TYPES) return ncaa_label_event_type(label);
    return -1;
}

const char *ncaa_class_name(int cls, int scheme)
{
    if (cls < 0 || cls >= ncaa_num_classes(scheme)) return NULL;
    return scheme == NCAA_NUM_LABELS ? class_names11[cls] : class_names6[cls];
}

/* ---- CSV ------------------------------------------------------------------- */

static const char *const column_names[11] = {
    "YoutubeId",     "VideoWidth",      "VideoHeight",     "ClipStartTime",
    "ClipEndTime",   "EventStartTime",  "EventEndTime",    "EventStartBallX",
    "EventStartBallY", "EventLabel",    "TrainValOrTest",
};

/* Splits a row at commas in place; returns the field count (stops counting at max + 1). */
static int split_commas(char *s, char **f, int max)
{
    int n = 0;
    for (;;) {
        if (n == max) return max + 1;
        f[n++] = s;
        char *c = strchr(s, ',');
        if (!c) return n;
        *c = 0;
        s = c + 1;
    }
}

static int parse_real(const char *s, double *v)
{
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(x)) return -1;
    *v = x;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The games: sorted unique YouTube ids; each event gets its index. */
static int collect_games(ncaa_dataset *d)
{
    if (d->num_events == 0) return 0;
    char **ids = gl_malloc((size_t)d->num_events * sizeof *ids);
    if (!ids) return GL_ENOMEM;
    for (long i = 0; i < d->num_events; i++) ids[i] = d->events[i].youtube_id;
    qsort(ids, (size_t)d->num_events, sizeof *ids, cmp_str);
    long n = 0;
    for (long i = 0; i < d->num_events; i++)
        if (i == 0 || strcmp(ids[i], ids[n - 1])) ids[n++] = ids[i];
    int rc = 0;
    d->games = gl_calloc((size_t)n, sizeof *d->games);
    if (!d->games) { rc = GL_ENOMEM; goto fail; }
    d->num_games = (int)n;
    for (long i = 0; i < n; i++)
        if (!(d->games[i] = gl_strdup(ids[i]))) { rc = GL_ENOMEM; goto fail; }
    for (long i = 0; i < d->num_events; i++) {
        const char *key = d->events[i].youtube_id;
        char **hit = bsearch(&key, d->games, (size_t)n, sizeof *d->games, cmp_str);
        d->events[i].game = (int)(hit - d->games); /* always found */
    }
fail:
    gl_free(ids);
    return rc;
}

int ncaa_dataset_load(ncaa_dataset **out, const char *path)
{
    if (!out || !path) return gl_error(GL_EINVAL, "ncaa_dataset_load: out or path is NULL");
    *out = NULL;
    text_lines t;
    int rc = text_lines_open(&t, path);
    if (rc < 0) return rc;
    long cap = 0;
    ncaa_dataset *d = gl_calloc(1, sizeof *d);
    if (!d) { rc = GL_ENOMEM; goto fail; }
    char *line = NULL;
    while ((rc = text_lines_next(&t, &line)) == 0) {
        if (!line[0]) continue;
        if (t.line == 1 && !strncmp(line, "YoutubeId,", 10)) continue;
        char *f[11];
        int nf = split_commas(line, f, 11);
        if (nf != 11) {
            rc = gl_error(GL_EFORMAT, "%s:%d: expected 11 comma-separated columns, got %s%d",
                          path, t.line, nf > 11 ? "more than " : "", nf > 11 ? 11 : nf);
            goto fail;
        }
        ncaa_event e = { .line = t.line };
        /* YouTube ids are 11 characters of [A-Za-z0-9_-]; allow any length that fits. */
        size_t idlen = strlen(f[0]);
        int id_ok = idlen > 0 && idlen < sizeof e.youtube_id;
        for (size_t k = 0; id_ok && k < idlen; k++)
            id_ok = isalnum((unsigned char)f[0][k]) || f[0][k] == '_' || f[0][k] == '-';
        if (!id_ok) {
            rc = gl_error(GL_EFORMAT, "%s:%d: column 1 (YoutubeId): expected 1-%zu characters of "
                          "[A-Za-z0-9_-], got \"%s\"", path, t.line, sizeof e.youtube_id - 1, f[0]);
            goto fail;
        }
        memcpy(e.youtube_id, f[0], idlen + 1);
        double v[7];
        for (int k = 0; k < 7; k++) {
            if (parse_real(f[k + 1], &v[k]) < 0) {
                rc = gl_error(GL_EFORMAT, "%s:%d: column %d (%s): expected a number, got \"%s\"",
                              path, t.line, k + 2, column_names[k + 1], f[k + 1]);
                goto fail;
            }
        }
        for (int k = 0; k < 2; k++) {
            if (v[k] != floor(v[k]) || v[k] < 1 || v[k] > 65536) {
                rc = gl_error(GL_EFORMAT, "%s:%d: column %d (%s): expected a size in pixels, got "
                              "\"%s\"", path, t.line, k + 2, column_names[k + 1], f[k + 1]);
                goto fail;
            }
        }
        e.video_width = (int)v[0];
        e.video_height = (int)v[1];
        e.clip_start_ms = v[2];
        e.clip_end_ms = v[3];
        e.event_start_ms = v[4];
        e.event_end_ms = v[5];
        if (e.clip_start_ms < 0 || e.clip_end_ms <= e.clip_start_ms) {
            rc = gl_error(GL_EFORMAT, "%s:%d: columns 4-5 (ClipStartTime, ClipEndTime): expected "
                          "0 <= start < end in ms, got %s..%s", path, t.line, f[3], f[4]);
            goto fail;
        }
        for (int k = 4; k < 6; k++) {
            if (v[k] < 0 && v[k] != -1) {
                rc = gl_error(GL_EFORMAT, "%s:%d: column %d (%s): expected ms >= 0 or -1, got "
                              "\"%s\"", path, t.line, k + 2, column_names[k + 1], f[k + 1]);
                goto fail;
            }
        }
        if (e.event_start_ms >= 0 && e.event_end_ms >= 0 && e.event_end_ms < e.event_start_ms) {
            rc = gl_error(GL_EFORMAT, "%s:%d: EventEndTime %s is before EventStartTime %s", path,
                          t.line, f[6], f[5]);
            goto fail;
        }
        for (int k = 7; k < 9; k++) {
            double x;
            if (parse_real(f[k], &x) < 0 || (x != -1 && (x < 0 || x > 1))) {
                rc = gl_error(GL_EFORMAT, "%s:%d: column %d (%s): expected a fraction in [0, 1] "
                              "or -1, got \"%s\"", path, t.line, k + 1, column_names[k], f[k]);
                goto fail;
            }
            if (k == 7) e.ball_x = x;
            else e.ball_y = x;
        }
        if ((e.label = ncaa_label_find(f[9])) < 0) {
            rc = gl_error(GL_EFORMAT, "%s:%d: column 10 (EventLabel): unknown label \"%s\"", path,
                          t.line, f[9]);
            goto fail;
        }
        if (!strcmp(f[10], "train")) e.split = DATASET_TRAIN;
        else if (!strcmp(f[10], "val")) e.split = DATASET_VAL;
        else if (!strcmp(f[10], "test")) e.split = DATASET_TEST;
        else {
            rc = gl_error(GL_EFORMAT, "%s:%d: column 11 (TrainValOrTest): expected train, val or "
                          "test, got \"%s\"", path, t.line, f[10]);
            goto fail;
        }
        if (d->num_events == cap) {
            long nc = cap ? cap * 2 : 4096;
            ncaa_event *a = gl_realloc(d->events, (size_t)nc * sizeof *a);
            if (!a) { rc = GL_ENOMEM; goto fail; }
            d->events = a;
            cap = nc;
        }
        d->events[d->num_events++] = e;
        d->num_split[e.split]++;
    }
    if (rc < 0) goto fail;
    if (d->num_events == 0) {
        rc = gl_error(GL_EFORMAT, "%s: no events", path);
        goto fail;
    }
    if ((rc = collect_games(d)) < 0) goto fail;
    text_lines_close(&t);
    *out = d;
    return 0;
fail:
    text_lines_close(&t);
    ncaa_dataset_free(&d);
    return rc;
}

void ncaa_dataset_free(ncaa_dataset **pd)
{
    if (!pd || !*pd) return;
    ncaa_dataset *d = *pd;
    for (int i = 0; i < d->num_games; i++) gl_free(d->games[i]);
    gl_free(d->games);
    gl_free(d->events);
    gl_free(d);
    *pd = NULL;
}

int ncaa_dataset_check_games(const ncaa_dataset *d)
{
    if (!d) return gl_error(GL_EINVAL, "ncaa_dataset_check_games: no dataset");
    int rc = 0;
    long *first = gl_malloc((size_t)(d->num_games > 0 ? d->num_games : 1) * sizeof *first);
    if (!first) return GL_ENOMEM;
    for (int g = 0; g < d->num_games; g++) first[g] = -1;
    for (long i = 0; i < d->num_events; i++) {
        const ncaa_event *e = &d->events[i];
        if (first[e->game] < 0) {
            first[e->game] = i;
            continue;
        }
        const ncaa_event *f = &d->events[first[e->game]];
        if (f->split != e->split) {
            rc = gl_error(GL_EFORMAT, "game %s is in both %s (line %d) and %s (line %d)",
                          e->youtube_id, dataset_split_name(f->split), f->line,
                          dataset_split_name(e->split), e->line);
            break;
        }
    }
    gl_free(first);
    return rc;
}
