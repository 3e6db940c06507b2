/* NCAA import: event clips cut out of the game videos into the UCF-101
 * layout. See ncaa.h. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datasets/ncaa.h"
#include "datasets/ucf101.h"
#include "datasets/video.h"

ncaa_import_config ncaa_import_config_default(void)
{
    ncaa_import_config c = { 0 };
    c.scheme = NCAA_NUM_LABELS;
    return c;
}

int ncaa_import_config_validate(const ncaa_import_config *c)
{
    if (!c) return gl_error(GL_EINVAL, "ncaa_import: no config");
    if (!c->csv || !c->csv[0]) return gl_error(GL_EINVAL, "ncaa_import: csv: no file given");
    if (!c->videos || !c->videos[0])
        return gl_error(GL_EINVAL, "ncaa_import: videos: no folder given");
    if (!c->out || !c->out[0]) return gl_error(GL_EINVAL, "ncaa_import: out: no folder given");
    if (ncaa_num_classes(c->scheme) < 0)
        return gl_error(GL_EINVAL, "ncaa_import: scheme: expected 11 or 6 classes, got %d",
                        c->scheme);
    if (c->qscale < 0 || c->qscale > 31)
        return gl_error(GL_EINVAL, "ncaa_import: qscale: expected 1..31, or 0 for the default, "
                        "got %d", c->qscale);
    if (c->width == 0 && c->height == 0) return 0;
    if (c->width < 2 || c->height < 2 || c->width % 2 || c->height % 2 || c->width > 8192 ||
        c->height > 8192)
        return gl_error(GL_EINVAL, "ncaa_import: width, height: expected even sizes in "
                        "[2, 8192] (MPEG-4 4:2:0), or both 0 for the video's own, got %dx%d",
                        c->width, c->height);
    return 0;
}

void ncaa_import_report_release(ncaa_import_report *rep)
{
    if (!rep) return;
    for (long i = 0; i < rep->num_errors; i++) gl_free(rep->errors[i]);
    gl_free(rep->errors);
    memset(rep, 0, sizeof *rep);
}

static int report_add(ncaa_import_report *rep, long *cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int report_add(ncaa_import_report *rep, long *cap, const char *fmt, ...)
{
    if (rep->num_errors == *cap) {
        long nc = *cap ? *cap * 2 : 64;
        char **a = gl_realloc(rep->errors, (size_t)nc * sizeof *a);
        if (!a) return GL_ENOMEM;
        rep->errors = a;
        *cap = nc;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = gl_malloc((size_t)(n > 0 ? n : 0) + 1);
    if (!s) return GL_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)(n > 0 ? n : 0) + 1, fmt, ap);
    va_end(ap);
    rep->errors[rep->num_errors++] = s;
    return 0;
}

/* The video file of each game: videos/<id>.<ext> where <ext> holds no '.'
 * (so "id.mp4.part" from an interrupted download is not taken); the first
 * in byte order when there are several. NULL when there is none. */
static int find_game_videos(const ncaa_dataset *d, const char *dir, char **paths)
{
    DIR *dp = opendir(dir);
    if (!dp) return gl_error(GL_EIO, "%s: cannot list the videos folder: %s", dir, strerror(errno));
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(dp))) {
        const char *dot = strrchr(e->d_name, '.');
        if (!dot || dot == e->d_name || dot[1] == 0) continue;
        size_t idlen = (size_t)(dot - e->d_name);
        char id[sizeof d->events[0].youtube_id];
        if (idlen >= sizeof id) continue;
        memcpy(id, e->d_name, idlen);
        id[idlen] = 0;
        /* bsearch over the sorted game ids */
        int lo = 0, hi = d->num_games - 1, g = -1;
        while (lo <= hi) {
            int mid = (lo + hi) / 2, c = strcmp(d->games[mid], id);
            if (c == 0) { g = mid; break; }
            if (c < 0) lo = mid + 1;
            else hi = mid - 1;
        }
        if (g < 0) continue;
        size_t plen = strlen(dir) + 1 + strlen(e->d_name) + 1;
        char *p = gl_malloc(plen);
        if (!p) { rc = GL_ENOMEM; break; }
        snprintf(p, plen, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st) != 0 || !S_ISREG(st.st_mode) || (paths[g] && strcmp(p, paths[g]) >= 0)) {
            gl_free(p);
            continue;
        }
        gl_free(paths[g]);
        paths[g] = p;
    }
    closedir(dp);
    return rc;
}

/* Deletes OUT/<Class>/<name>.tmp.<pid>.<n> (video_writer's temporary files)
 * whose process is gone: a run killed mid-clip leaves one behind. Files of a
 * live process (a concurrent run) are left alone. */
static int remove_stale_temps(const char *out, int scheme, long *removed)
{
    int rc = 0;
    for (int c = 0; c < ncaa_num_classes(scheme) && rc == 0; c++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/%s", out, ncaa_class_name(c, scheme));
        DIR *dp = opendir(dir);
        if (!dp) continue; /* not made yet */
        struct dirent *e;
        while ((e = readdir(dp))) {
            const char *t = strstr(e->d_name, ".avi.tmp.");
            if (!t) continue;
            char *end;
            long pid = strtol(t + 9, &end, 10);
            if (pid <= 0 || *end != '.' || pid == (long)getpid()) continue;
            if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
            char p[4400];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            if (unlink(p) != 0 && errno != ENOENT) {
                rc = gl_error(GL_EIO, "%s: cannot delete a stale temporary file: %s", p,
                              strerror(errno));
                break;
            }
            (*removed)++;
        }
        closedir(dp);
    }
    return rc;
}

/* Events sorted by game, window, then line: events that share a window (the
 * CSV often has several per window) are cut from one decode. */
static int cmp_event_window(const void *a, const void *b)
{
    const ncaa_event *x = *(const ncaa_event *const *)a, *y = *(const ncaa_event *const *)b;
    if (x->game != y->game) return x->game < y->game ? -1 : 1;
    if (x->clip_start_ms != y->clip_start_ms) return x->clip_start_ms < y->clip_start_ms ? -1 : 1;
    if (x->clip_end_ms != y->clip_end_ms) return x->clip_end_ms < y->clip_end_ms ? -1 : 1;
    return x->line < y->line ? -1 : x->line > y->line;
}

/* OUT-relative clip path of an event: Class/v_Class_gGGG_cLLLLL.avi. */
static void clip_rel_path(const ncaa_event *e, int scheme, char *buf, size_t n)
{
    const char *cls = ncaa_class_name(ncaa_class_of_label(e->label, scheme), scheme);
    snprintf(buf, n, "%s/v_%s_g%03d_c%05d.avi", cls, cls, e->game + 1, e->line);
}

typedef struct {
    const ncaa_import_config *cfg;
    const ncaa_dataset *d;
    ncaa_import_report *rep;
    long err_cap;
    video_reader *reader;      /* of the current game */
    int reader_game;           /* -1: none open */
    int reader_failed;         /* the current game's video cannot be opened */
    char reader_msg[512];
    video_info info;
    uint8_t *frame;
} import_state;

/* Fails every event of group [ev, ev + n) that was to be written. */
static int fail_events(import_state *s, const ncaa_event *const *ev, const int *todo, long n,
                       const char *why)
{
    for (long k = 0; k < n; k++) {
        if (!todo[k]) continue;
        const ncaa_event *e = ev[k];
        s->rep->failed++;
        int rc = report_add(s->rep, &s->err_cap, "line %d (game %s, %s, %.0f..%.0f ms): %s",
                            e->line, e->youtube_id, ncaa_label_name(e->label), e->clip_start_ms,
                            e->clip_end_ms, why);
        if (rc < 0) return rc;
    }
    return 0;
}

static int open_game(import_state *s, int game, const char *path)
{
    if (s->reader_game == game && (s->reader || s->reader_failed)) return 0;
    video_reader_close(&s->reader);
    gl_free(s->frame);
    s->frame = NULL;
    s->reader_game = game;
    s->reader_failed = 0;
    video_reader_opts o = video_reader_opts_default();
    o.count = VIDEO_COUNT_HEADER; /* no counting pass over a whole game */
    o.width = s->cfg->width;      /* 0, 0: native, checked for evenness below */
    o.height = s->cfg->height;
    int rc = video_reader_open(&s->reader, path, &o);
    if (rc == GL_ENOMEM) return rc;
    if (rc == 0) {
        video_reader_info(s->reader, &s->info);
        int w = s->info.out_width & ~1, h = s->info.out_height & ~1;
        if (w != s->info.out_width || h != s->info.out_height) {
            video_reader_close(&s->reader);
            o.width = w;
            o.height = h;
            rc = video_reader_open(&s->reader, path, &o);
            if (rc == GL_ENOMEM) return rc;
            if (rc == 0) video_reader_info(s->reader, &s->info);
        }
        if (rc == 0 && (s->info.out_width < 2 || s->info.out_height < 2 || !(s->info.fps > 0))) {
            rc = gl_error(GL_EUNSUPPORTED, "%s: %dx%d at %g fps cannot be written as MPEG-4",
                          path, s->info.out_width, s->info.out_height, s->info.fps);
            video_reader_close(&s->reader);
        }
    }
    if (rc < 0) {
        s->reader_failed = 1;
        snprintf(s->reader_msg, sizeof s->reader_msg, "cannot read the game video: %s",
                 gl_last_error());
        return 0;
    }
    /* Padding: libswscale's SIMD paths write a few bytes past the last packed
     * row (reader, rows of odd byte length such as 490 * 3) and load 16-byte
     * blocks past it (writer); valgrind showed both on a 490x360 game. */
    s->frame = gl_calloc(1, s->info.frame_bytes + 64);
    if (!s->frame) {
        video_reader_close(&s->reader);
        return GL_ENOMEM;
    }
    return 0;
}

/* Cuts one window for the n events in ev (todo[k]: clip k is to be written). */
static int cut_window(import_state *s, const ncaa_event *const *ev, const int *todo, long n,
                      const char *video)
{
    const ncaa_event *e0 = ev[0];
    char msg[600];
    int rc = open_game(s, e0->game, video);
    if (rc < 0) return rc;
    if (s->reader_failed) return fail_events(s, ev, todo, n, s->reader_msg);

    video_writer **w = gl_calloc((size_t)n, sizeof *w);
    if (!w) return GL_ENOMEM;
    char rel[256], dir[4096], path[4096];
    const double frame_ms = 1000.0 / s->info.fps;
    long frames = 0;
    double last_ms = -1;
    int eof = 0, bad = 0;
    for (long k = 0; k < n; k++) {
        if (!todo[k]) continue;
        clip_rel_path(ev[k], s->cfg->scheme, rel, sizeof rel);
        snprintf(path, sizeof path, "%s/%s", s->cfg->out, rel);
        snprintf(dir, sizeof dir, "%s/%s", s->cfg->out,
                 ncaa_class_name(ncaa_class_of_label(ev[k]->label, s->cfg->scheme), s->cfg->scheme));
        if ((rc = gl_mkdirs(dir)) < 0) goto fail;
        video_writer_opts wo = video_writer_opts_default();
        if (s->cfg->qscale) wo.qscale = s->cfg->qscale;
        rc = video_writer_open(&w[k], path, s->info.out_width, s->info.out_height, s->info.fps,
                               &wo);
        if (rc == GL_ENOMEM) goto fail;
        if (rc < 0) {
            /* An unwritable output stops the whole run: every other clip would fail too. */
            gl_error_prefix(rc, "%s", rel);
            goto fail;
        }
    }
    rc = video_reader_seek_ms(s->reader, e0->clip_start_ms);
    if (rc == GL_EOF) {
        eof = 1;
    } else if (rc < 0) {
        if (rc == GL_ENOMEM) goto fail;
        snprintf(msg, sizeof msg, "cannot seek in the game video: %s", gl_last_error());
        bad = 1;
    }
    while (!eof && !bad) {
        video_frame_info fi;
        rc = video_reader_read(s->reader, s->frame, &fi);
        if (rc == GL_EOF) {
            eof = 1;
            break;
        }
        if (rc < 0) {
            if (rc == GL_ENOMEM) goto fail;
            snprintf(msg, sizeof msg, "cannot decode the game video: %s", gl_last_error());
            bad = 1;
            break;
        }
        double t_ms = fi.time_s * 1000.0;
        if (t_ms >= e0->clip_end_ms) break;
        last_ms = t_ms;
        for (long k = 0; k < n; k++) {
            if (!w[k]) continue;
            rc = video_writer_write_rgb(w[k], s->frame);
            if (rc == GL_ENOMEM) goto fail;
            if (rc < 0) {
                gl_error_prefix(rc, "writing a clip");
                goto fail;
            }
        }
        frames++;
    }
    rc = 0;
    if (!bad && eof) {
        /* The stream ends at its last frame's time plus one frame; allow half
         * a frame of timestamp rounding. */
        double end_of_video = frames > 0 ? last_ms + frame_ms : -1;
        if (frames == 0 || e0->clip_end_ms > end_of_video + 0.5 * frame_ms) {
            double dur = s->info.duration_s > 0 ? s->info.duration_s * 1000.0 : end_of_video;
            if (dur > 0)
                snprintf(msg, sizeof msg, "the window ends after the end of the video (%.0f ms)",
                         dur);
            else
                snprintf(msg, sizeof msg, "the window ends after the end of the video");
            bad = 1;
        }
    }
    if (!bad && frames == 0) {
        snprintf(msg, sizeof msg, "no frame lies in the window");
        bad = 1;
    }
    if (bad) {
        for (long k = 0; k < n; k++) video_writer_abort(&w[k]);
        /* Decode errors can leave the reader mid-stream: reopen for the next window. */
        video_reader_close(&s->reader);
        s->reader_game = -1;
        rc = fail_events(s, ev, todo, n, msg);
        goto done;
    }
    for (long k = 0; k < n; k++) {
        if (!w[k]) continue;
        rc = video_writer_close(&w[k]);
        if (rc == GL_ENOMEM) goto fail;
        if (rc < 0) {
            gl_error_prefix(rc, "finishing a clip");
            goto fail;
        }
        s->rep->written++;
    }
    rc = 0;
    goto done;
fail:
    for (long k = 0; k < n; k++) video_writer_abort(&w[k]);
done:
    gl_free(w);
    return rc;
}

int ncaa_import(const ncaa_import_config *cfg, ncaa_import_report *rep)
{
    if (rep) memset(rep, 0, sizeof *rep);
    int rc = ncaa_import_config_validate(cfg);
    if (rc < 0) return rc;
    if (!rep) return gl_error(GL_EINVAL, "ncaa_import: no report");
    ncaa_dataset *d = NULL;
    char **videos = NULL;
    const ncaa_event **order = NULL;
    int *todo = NULL;
    dataset_clip *clips = NULL;
    char **rels = NULL;
    import_state s = { .cfg = cfg, .rep = rep, .reader_game = -1 };

    if ((rc = ncaa_dataset_load(&d, cfg->csv)) < 0) goto fail;
    s.d = d;
    if ((rc = ncaa_dataset_check_games(d)) < 0) {
        gl_error_prefix(rc, "%s", cfg->csv);
        goto fail;
    }
    rep->events = d->num_events;
    rep->games = d->num_games;
    videos = gl_calloc((size_t)d->num_games, sizeof *videos);
    order = gl_malloc((size_t)d->num_events * sizeof *order);
    todo = gl_malloc((size_t)d->num_events * sizeof *todo);
    if (!videos || !order || !todo) { rc = GL_ENOMEM; goto fail; }
    if ((rc = find_game_videos(d, cfg->videos, videos)) < 0) goto fail;
    if ((rc = gl_mkdirs(cfg->out)) < 0) goto fail;
    if ((rc = remove_stale_temps(cfg->out, cfg->scheme, &rep->stale_removed)) < 0) goto fail;

    for (long i = 0; i < d->num_events; i++) order[i] = &d->events[i];
    qsort(order, (size_t)d->num_events, sizeof *order, cmp_event_window);

    /* Missing games: one line per game. */
    for (long i = 0; i < d->num_events;) {
        int g = order[i]->game;
        long j = i;
        while (j < d->num_events && order[j]->game == g) j++;
        if (!videos[g]) {
            rep->games_missing++;
            rep->failed += j - i;
            rc = report_add(rep, &s.err_cap, "game %s: no video %s/%s.* (%ld event%s skipped)",
                            d->games[g], cfg->videos, d->games[g], j - i, j - i == 1 ? "" : "s");
            if (rc < 0) goto fail;
        }
        i = j;
    }

    long done = 0;
    for (long i = 0; i < d->num_events;) {
        const ncaa_event *e0 = order[i];
        long j = i;
        while (j < d->num_events && order[j]->game == e0->game &&
               order[j]->clip_start_ms == e0->clip_start_ms &&
               order[j]->clip_end_ms == e0->clip_end_ms)
            j++;
        if (videos[e0->game]) {
            long need = 0;
            for (long k = i; k < j; k++) {
                char rel[256], path[4096];
                clip_rel_path(order[k], cfg->scheme, rel, sizeof rel);
                snprintf(path, sizeof path, "%s/%s", cfg->out, rel);
                struct stat st;
                todo[k] = !(stat(path, &st) == 0 && S_ISREG(st.st_mode));
                if (todo[k]) need++;
                else rep->skipped++;
            }
            if (need && (rc = cut_window(&s, order + i, todo + i, j - i, videos[e0->game])) < 0)
                goto fail;
        }
        done += j - i;
        i = j;
        if (cfg->progress && cfg->progress(cfg->progress_ctx, done, d->num_events)) {
            rc = gl_error(GL_ECANCELED, "ncaa_import: canceled after %ld of %ld events", done,
                          d->num_events);
            goto fail;
        }
    }
    video_reader_close(&s.reader);

    /* Lists of the clips that exist now, in CSV order. */
    int ncls = ncaa_num_classes(cfg->scheme);
    const char *names[NCAA_NUM_LABELS];
    for (int c = 0; c < ncls; c++) names[c] = ncaa_class_name(c, cfg->scheme);
    clips = gl_calloc((size_t)d->num_events, sizeof *clips);
    rels = gl_calloc((size_t)d->num_events, sizeof *rels);
    if (!clips || !rels) { rc = GL_ENOMEM; goto fail; }
    long nc = 0;
    for (long i = 0; i < d->num_events; i++) {
        const ncaa_event *e = &d->events[i];
        char rel[256], path[4096];
        clip_rel_path(e, cfg->scheme, rel, sizeof rel);
        snprintf(path, sizeof path, "%s/%s", cfg->out, rel);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        if (!(rels[nc] = gl_strdup(rel))) { rc = GL_ENOMEM; goto fail; }
        clips[nc] = (dataset_clip){ .rel_path = rels[nc],
                                    .label = ncaa_class_of_label(e->label, cfg->scheme),
                                    .split = e->split, .line = e->line };
        nc++;
    }
    rc = dataset_lists_write(cfg->out, 1, ncls, (char *const *)names, nc, clips);
fail:
    video_reader_close(&s.reader);
    gl_free(s.frame);
    if (rels)
        for (long i = 0; d && i < d->num_events; i++) gl_free(rels[i]);
    gl_free(rels);
    gl_free(clips);
    if (videos)
        for (int g = 0; d && g < d->num_games; g++) gl_free(videos[g]);
    gl_free(videos);
    gl_free(order);
    gl_free(todo);
    ncaa_dataset_free(&d);
    return rc;
}
