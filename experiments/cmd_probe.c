/* glocal probe — what FFmpeg sees in video files, one JSON object per line. */
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "datasets/video.h"
#include "experiments/cli.h"
#include "experiments/commands.h"

GLOCAL_COMMAND(probe, "probe", "print what FFmpeg sees in video files (one JSON line per file)")

static const char *const source_names[] = { "header", "counted", "estimated" };

/* A double printed with 6 significant digits (6.56, not 6.5600000000000005). */
static json_object *json_short_double(double v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%.6g", v);
    return json_object_new_double_s(v, buf);
}

/* Why a file that opens looks damaged ("" when it does not): the header's
 * frame count against the duration (more than 2 frames apart), against the
 * frames decoded (--count), and FFmpeg's complaints while decoding. */
static void suspect_of(long header, long decoded, const video_info *in, long nlog, long corrupt,
                       const char *first, char *out, size_t n)
{
    size_t len = 0;
    long by_duration = in->duration_s > 0 && in->fps > 0 ? lround(in->duration_s * in->fps) : -1;
#define SAY(...) len += (size_t)snprintf(out + len, len < n ? n - len : 0, __VA_ARGS__)
    if (header >= 0 && by_duration >= 0 && labs(header - by_duration) > 2)
        SAY("header says %ld frames, duration %.3g s at %.4g fps says %ld", header, in->duration_s, in->fps,
            by_duration);
    if (header >= 0 && decoded >= 0 && labs(header - decoded) > 2)
        SAY("%sheader says %ld frames, %ld decode", len ? "; " : "", header, decoded);
    if (nlog > 0 || corrupt > 0)
        SAY("%s%ld decoding errors, %ld packets rejected%s%s", len ? "; " : "", nlog, corrupt,
            first[0] ? ": " : "", first);
#undef SAY
    if (len >= n && n > 0) out[n - 1] = 0;
}

int cmd_probe(int argc, char **argv)
{
    int count = 0, nfiles = 0, failed = 0;
    const char *files[argc];
    cli_opt opts[] = {
        CLI_FLAG("--count", &count, "always count frames by decoding the whole stream (slower, exact)"),
        CLI_END,
    };
    cli_spec spec = {
        .cmd = "probe", .opts = opts, .args = "FILE...", .arg = files, .min_args = 1,
        .max_args = argc, .nargs = &nfiles,
        .about = "Opens each video with FFmpeg, decodes its first frame, and prints one JSON\n"
                 "object per line:\n"
                 "  {\"path\": ..., \"frames\": N, \"frames_source\": \"header\"|\"counted\"|\"estimated\",\n"
                 "   \"width\": W, \"height\": H, \"fps\": F, \"duration\": SECONDS, \"codec\": NAME}\n"
                 "or {\"path\": ..., \"error\": MESSAGE} for a file that cannot be read.\n"
                 "A file that looks damaged gets \"suspect\": WHY: its header's frame count is more than\n"
                 "2 frames from duration x fps or (with --count) from the frames that decode, or FFmpeg\n"
                 "reported decoding errors (counted; the first few quoted).\n"
                 "Frames come from the container header; where it has none they are counted by\n"
                 "decoding (\"counted\"). A FILE that starts with '-' goes after --.\n",
        .epilog = "Exit status: 0 if every file was read, 1 if any failed, 2 on a usage error.\n",
    };
    int rc = cli_parse(&spec, argc, argv);
    if (rc != CLI_PARSED) return rc;
    video_reader_opts o = video_reader_opts_default();
    /* --count decodes here with the same reader, so its damage is seen too */
    o.count = count ? VIDEO_COUNT_HEADER : VIDEO_COUNT_IF_MISSING;
    o.threads = cli_g.threads;
    for (int i = 0; i < nfiles; i++) {
        const char *path = files[i];
        json_object *j = json_object_new_object();
        json_object_object_add(j, "path", json_object_new_string(path));
        video_reader *r = NULL;
        rc = video_reader_open(&r, path, &o);
        long decoded = -1;
        if (rc >= 0 && count) {
            decoded = 0;
            while ((rc = video_reader_skip(r, NULL)) == 0) decoded++;
            if (rc == GL_EOF) rc = 0;
        }
        if (rc < 0) {
            json_object_object_add(j, "error", json_object_new_string(gl_last_error()));
            failed++;
        } else {
            video_info in;
            video_reader_info(r, &in);
            char first[600], suspect[800] = "";
            long nlog = video_reader_log(r, first, sizeof first);
            long corrupt = video_reader_corrupt_packets(r);
            long header = in.frames_source == 0 ? in.frames : -1;
            video_reader_close(&r);
            if (decoded >= 0) {
                in.frames = decoded;
                in.frames_source = 1;
            }
            suspect_of(header, decoded, &in, nlog, corrupt, first, suspect, sizeof suspect);
            json_object_object_add(j, "frames", json_object_new_int64(in.frames));
            json_object_object_add(j, "frames_source", json_object_new_string(source_names[in.frames_source]));
            json_object_object_add(j, "width", json_object_new_int(in.width));
            json_object_object_add(j, "height", json_object_new_int(in.height));
            json_object_object_add(j, "fps", json_short_double(in.fps));
            json_object_object_add(j, "duration", json_short_double(in.duration_s));
            json_object_object_add(j, "codec", json_object_new_string(in.codec));
            if (suspect[0]) json_object_object_add(j, "suspect", json_object_new_string(suspect));
        }
        printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        fflush(stdout);
        json_object_put(j);
    }
    return failed ? CLI_FAIL : CLI_OK;
}
