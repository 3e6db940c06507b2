/* NCAA import: event clips cut out of the game videos into the UCF-101
 * layout. See ncaa.h. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
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

/* ---- the run ---------------------------------------------------------------
 * Games are cut in parallel (gl_parallel_for over games, gl_num_threads()
 * workers); within a game, windows go in time order through one reader.
 * Everything shared sits in import_run under `lock`. Errors are kept with a
 * sort key (the CSV line) and ordered at the end, so the report does not
 * depend on the thread schedule; the clips themselves are bit-exact. */

typedef struct {
    long key;            /* CSV line of the (first) event concerned */
    char *msg;
} keyed_error;

typedef struct {
    const ncaa_import_config *cfg;
    const ncaa_dataset *d;
    const ncaa_event **order;  /* events sorted by game, window, line */
    int *todo;                 /* per order slot: its clip is to be written */
    char **videos;             /* per game: its video file, or NULL */
    long *game_first;          /* per game with a video: its first slot in order */
    long *game_end;
    int reader_threads;        /* decoder threads per reader */

    pthread_mutex_t lock;
    ncaa_import_report *rep;   /* counts */
    keyed_error *errors;
    long num_errors, err_cap;
    long done;                 /* events handled (for progress) */
    int stop;                  /* canceled or a fatal error: workers stop */
    int fatal_rc;
    char fatal_msg[1024];
} import_run;

/* Adds an error line under the lock. */
static int run_error(import_run *r, long key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int run_error(import_run *r, long key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *msg = gl_malloc((size_t)(n > 0 ? n : 0) + 1);
    if (!msg) return GL_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(msg, (size_t)(n > 0 ? n : 0) + 1, fmt, ap);
    va_end(ap);
    int rc = 0;
    pthread_mutex_lock(&r->lock);
    if (r->num_errors == r->err_cap) {
        long nc = r->err_cap ? r->err_cap * 2 : 64;
        keyed_error *a = gl_realloc(r->errors, (size_t)nc * sizeof *a);
        if (!a) {
            rc = GL_ENOMEM;
            goto out;
        }
        r->errors = a;
        r->err_cap = nc;
    }
    r->errors[r->num_errors++] = (keyed_error){ key, msg };
    msg = NULL;
out:
    pthread_mutex_unlock(&r->lock);
    gl_free(msg);
    return rc;
}

/* Records the first fatal error (its message is thread-local, so it is
 * copied for the calling thread) and stops the other workers. */
static int run_fatal(import_run *r, int rc)
{
    pthread_mutex_lock(&r->lock);
    if (!r->fatal_rc) {
        r->fatal_rc = rc;
        snprintf(r->fatal_msg, sizeof r->fatal_msg, "%s", gl_last_error());
    }
    r->stop = 1;
    pthread_mutex_unlock(&r->lock);
    return rc;
}

/* n more events handled: progress report (serialised), and cancel. */
static int run_progress(import_run *r, long n)
{
    int rc = 0;
    pthread_mutex_lock(&r->lock);
    r->done += n;
    if (r->stop) {
        rc = GL_ECANCELED;
    } else if (r->cfg->progress &&
               r->cfg->progress(r->cfg->progress_ctx, r->done, r->d->num_events)) {
        r->stop = 1;
        r->fatal_rc = GL_ECANCELED;
        snprintf(r->fatal_msg, sizeof r->fatal_msg, "ncaa_import: canceled after %ld of %ld "
                 "events", r->done, r->d->num_events);
        rc = GL_ECANCELED;
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

static void run_count(import_run *r, long *field, long n)
{
    pthread_mutex_lock(&r->lock);
    *field += n;
    pthread_mutex_unlock(&r->lock);
}

/* One worker's reader on one game. */
typedef struct {
    import_run *r;
    video_reader *reader;
    int failed;                /* the game's video cannot be read */
    char failed_msg[512];
    video_info info;
    uint8_t *frame;
} game_reader;

/* Fails every event of [ev, ev + n) that was to be written. */
static int fail_events(import_run *r, const ncaa_event *const *ev, const int *todo, long n,
                       const char *why)
{
    for (long k = 0; k < n; k++) {
        if (!todo[k]) continue;
        const ncaa_event *e = ev[k];
        run_count(r, &r->rep->failed, 1);
        int rc = run_error(r, e->line, "line %d (game %s, %s, %.0f..%.0f ms): %s", e->line,
                           e->youtube_id, ncaa_label_name(e->label), e->clip_start_ms,
                           e->clip_end_ms, why);
        if (rc < 0) return rc;
    }
    return 0;
}

/* Opens the game's video (at the output size) unless open or known bad.
 * An unreadable video is not an error of the run: g->failed is set. */
static int game_open(game_reader *g, const char *path)
{
    if (g->reader || g->failed) return 0;
    const ncaa_import_config *cfg = g->r->cfg;
    video_reader_opts o = video_reader_opts_default();
    o.count = VIDEO_COUNT_HEADER; /* no counting pass over a whole game */
    o.width = cfg->width;         /* 0, 0: native, checked for evenness below */
    o.height = cfg->height;
    o.threads = g->r->reader_threads;
    int rc = video_reader_open(&g->reader, path, &o);
    if (rc == GL_ENOMEM) return rc;
    if (rc == 0) {
        video_reader_info(g->reader, &g->info);
        int w = g->info.out_width & ~1, h = g->info.out_height & ~1;
        if (w != g->info.out_width || h != g->info.out_height) {
            video_reader_close(&g->reader);
            o.width = w;
            o.height = h;
            rc = video_reader_open(&g->reader, path, &o);
            if (rc == GL_ENOMEM) return rc;
            if (rc == 0) video_reader_info(g->reader, &g->info);
        }
        if (rc == 0 && (g->info.out_width < 2 || g->info.out_height < 2 || !(g->info.fps > 0))) {
            rc = gl_error(GL_EUNSUPPORTED, "%s: %dx%d at %g fps cannot be written as MPEG-4",
                          path, g->info.out_width, g->info.out_height, g->info.fps);
            video_reader_close(&g->reader);
        }
    }
    if (rc < 0) {
        g->failed = 1;
        snprintf(g->failed_msg, sizeof g->failed_msg, "cannot read the game video: %s",
                 gl_last_error());
        return 0;
    }
    /* Padding: libswscale's SIMD paths write a few bytes past the last packed
     * row (reader, rows of odd byte length such as 490 * 3) and load 16-byte
     * blocks past it (writer); valgrind showed both on a 490x360 game. */
    g->frame = gl_calloc(1, g->info.frame_bytes + 64);
    if (!g->frame) {
        video_reader_close(&g->reader);
        return GL_ENOMEM;
    }
    return 0;
}

static void game_close(game_reader *g)
{
    video_reader_close(&g->reader);
    gl_free(g->frame);
    g->frame = NULL;
}

/* Cuts one window for the n events in ev (todo[k]: clip k is to be written).
 * Returns negative only for errors that stop the run. */
static int cut_window(game_reader *g, const ncaa_event *const *ev, const int *todo, long n,
                      const char *video)
{
    import_run *r = g->r;
    const ncaa_import_config *cfg = r->cfg;
    const ncaa_event *e0 = ev[0];
    char msg[600];
    int rc = game_open(g, video);
    if (rc < 0) return rc;
    if (g->failed) return fail_events(r, ev, todo, n, g->failed_msg);

    video_writer **w = gl_calloc((size_t)n, sizeof *w);
    if (!w) return GL_ENOMEM;
    char rel[256], dir[4096], path[4096];
    const double frame_ms = 1000.0 / g->info.fps;
    long frames = 0;
    double last_ms = -1;
    int eof = 0, bad = 0;
    for (long k = 0; k < n; k++) {
        if (!todo[k]) continue;
        clip_rel_path(ev[k], cfg->scheme, rel, sizeof rel);
        snprintf(path, sizeof path, "%s/%s", cfg->out, rel);
        snprintf(dir, sizeof dir, "%s/%s", cfg->out,
                 ncaa_class_name(ncaa_class_of_label(ev[k]->label, cfg->scheme), cfg->scheme));
        if ((rc = gl_mkdirs(dir)) < 0) goto fail;
        video_writer_opts wo = video_writer_opts_default();
        if (cfg->qscale) wo.qscale = cfg->qscale;
        rc = video_writer_open(&w[k], path, g->info.out_width, g->info.out_height, g->info.fps,
                               &wo);
        if (rc == GL_ENOMEM) goto fail;
        if (rc < 0) {
            /* An unwritable output stops the whole run: every other clip would fail too. */
            gl_error_prefix(rc, "%s", rel);
            goto fail;
        }
    }
    rc = video_reader_seek_ms(g->reader, e0->clip_start_ms);
    if (rc == GL_EOF) {
        eof = 1;
    } else if (rc < 0) {
        if (rc == GL_ENOMEM) goto fail;
        snprintf(msg, sizeof msg, "cannot seek in the game video: %s", gl_last_error());
        bad = 1;
    }
    while (!eof && !bad) {
        video_frame_info fi;
        rc = video_reader_read(g->reader, g->frame, &fi);
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
            rc = video_writer_write_rgb(w[k], g->frame);
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
            double dur = g->info.duration_s > 0 ? g->info.duration_s * 1000.0 : end_of_video;
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
        game_close(g);
        rc = fail_events(r, ev, todo, n, msg);
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
        run_count(r, &r->rep->written, 1);
    }
    rc = 0;
    goto done;
fail:
    for (long k = 0; k < n; k++) video_writer_abort(&w[k]);
done:
    gl_free(w);
    return rc;
}

/* gl_parallel_for body: games [begin, end) of the games that have a video. */
static int cut_games(void *ctx, long begin, long end)
{
    import_run *r = ctx;
    const ncaa_import_config *cfg = r->cfg;
    int rc = 0;
    for (long gi = begin; gi < end && rc >= 0; gi++) {
        game_reader g = { .r = r };
        for (long i = r->game_first[gi]; i < r->game_end[gi] && rc >= 0;) {
            const ncaa_event *e0 = r->order[i];
            long j = i;
            while (j < r->game_end[gi] && r->order[j]->clip_start_ms == e0->clip_start_ms &&
                   r->order[j]->clip_end_ms == e0->clip_end_ms)
                j++;
            long need = 0, skipped = 0;
            for (long k = i; k < j; k++) {
                char rel[256], path[4096];
                clip_rel_path(r->order[k], cfg->scheme, rel, sizeof rel);
                snprintf(path, sizeof path, "%s/%s", cfg->out, rel);
                struct stat st;
                r->todo[k] = !(stat(path, &st) == 0 && S_ISREG(st.st_mode));
                if (r->todo[k]) need++;
                else skipped++;
            }
            run_count(r, &r->rep->skipped, skipped);
            if (need)
                rc = cut_window(&g, r->order + i, r->todo + i, j - i, r->videos[e0->game]);
            if (rc >= 0) rc = run_progress(r, j - i);
            i = j;
        }
        game_close(&g);
    }
    if (rc < 0 && rc != GL_ECANCELED) run_fatal(r, rc);
    return rc;
}

static int cmp_keyed_error(const void *a, const void *b)
{
    const keyed_error *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return strcmp(x->msg, y->msg);
}

int ncaa_import(const ncaa_import_config *cfg, ncaa_import_report *rep)
{
    if (rep) memset(rep, 0, sizeof *rep);
    int rc = ncaa_import_config_validate(cfg);
    if (rc < 0) return rc;
    if (!rep) return gl_error(GL_EINVAL, "ncaa_import: no report");
    ncaa_dataset *d = NULL;
    dataset_clip *clips = NULL;
    char **rels = NULL;
    import_run r = { .cfg = cfg, .rep = rep };
    pthread_mutex_init(&r.lock, NULL);

    if ((rc = ncaa_dataset_load(&d, cfg->csv)) < 0) goto fail;
    r.d = d;
    if ((rc = ncaa_dataset_check_games(d)) < 0) {
        gl_error_prefix(rc, "%s", cfg->csv);
        goto fail;
    }
    rep->events = d->num_events;
    rep->games = d->num_games;
    r.videos = gl_calloc((size_t)d->num_games, sizeof *r.videos);
    r.order = gl_malloc((size_t)d->num_events * sizeof *r.order);
    r.todo = gl_calloc((size_t)d->num_events, sizeof *r.todo);
    r.game_first = gl_malloc((size_t)d->num_games * sizeof *r.game_first);
    r.game_end = gl_malloc((size_t)d->num_games * sizeof *r.game_end);
    if (!r.videos || !r.order || !r.todo || !r.game_first || !r.game_end) {
        rc = GL_ENOMEM;
        goto fail;
    }
    if ((rc = find_game_videos(d, cfg->videos, r.videos)) < 0) goto fail;
    if ((rc = gl_mkdirs(cfg->out)) < 0) goto fail;
    if ((rc = remove_stale_temps(cfg->out, cfg->scheme, &rep->stale_removed)) < 0) goto fail;

    for (long i = 0; i < d->num_events; i++) r.order[i] = &d->events[i];
    qsort(r.order, (size_t)d->num_events, sizeof *r.order, cmp_event_window);

    /* Games with a video become work; missing ones one error line each. */
    long ngames = 0, missing_events = 0;
    for (long i = 0; i < d->num_events;) {
        int g = r.order[i]->game;
        long j = i, first_line = r.order[i]->line;
        while (j < d->num_events && r.order[j]->game == g) {
            if (r.order[j]->line < first_line) first_line = r.order[j]->line;
            j++;
        }
        if (r.videos[g]) {
            r.game_first[ngames] = i;
            r.game_end[ngames++] = j;
        } else {
            rep->games_missing++;
            rep->failed += j - i;
            missing_events += j - i;
            rc = run_error(&r, first_line, "game %s: no video %s/%s.* (%ld event%s skipped)",
                           d->games[g], cfg->videos, d->games[g], j - i, j - i == 1 ? "" : "s");
            if (rc < 0) goto fail;
        }
        i = j;
    }
    r.done = missing_events; /* reported with the first window */
    /* Parallel over games, or over one game's decoder when there is one. */
    int workers = gl_num_threads() < ngames ? gl_num_threads() : (int)ngames;
    r.reader_threads = workers > 1 ? 1 : 0;
    rc = gl_parallel_for(ngames, 1, cut_games, &r);
    if (rc < 0) {
        rc = gl_error(r.fatal_rc ? r.fatal_rc : rc, "%s", r.fatal_msg);
        goto fail;
    }

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
    /* The error lines, by CSV line, into the report (also after a stop). */
    if (r.num_errors) {
        qsort(r.errors, (size_t)r.num_errors, sizeof *r.errors, cmp_keyed_error);
        rep->errors = gl_malloc((size_t)r.num_errors * sizeof *rep->errors);
        for (long i = 0; i < r.num_errors; i++) {
            if (rep->errors) rep->errors[rep->num_errors++] = r.errors[i].msg;
            else gl_free(r.errors[i].msg);
        }
        if (!rep->errors && rc >= 0) rc = GL_ENOMEM;
    }
    gl_free(r.errors);
    pthread_mutex_destroy(&r.lock);
    if (rels)
        for (long i = 0; d && i < d->num_events; i++) gl_free(rels[i]);
    gl_free(rels);
    gl_free(clips);
    if (r.videos)
        for (int g = 0; d && g < d->num_games; g++) gl_free(r.videos[g]);
    gl_free(r.videos);
    gl_free(r.order);
    gl_free(r.todo);
    gl_free(r.game_first);
    gl_free(r.game_end);
    ncaa_dataset_free(&d);
    return rc;
}
