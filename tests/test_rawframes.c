/* test_rawframes.c — datasets/rawframes.h and `glocal cache export|import`:
 * the value mapping against denseflow's formula worked by hand, the file
 * names and annotation lines against mmaction2's documented ones
 * (tools/data/ucf101/README.md, tools/data/build_file_list.py), a cache ->
 * export -> import round trip against the fields written, resuming, a
 * damaged clip, and real flow JPEGs from mmaction2's tests/data
 * (tests/data/README.md) decoded independently by the ffmpeg command. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <hdf5.h>
#include <math.h>

#include "tests/testutil.h"

#include "datasets/cache.h"
#include "datasets/rawframes.h"
#include "datasets/ucf101.h"
#include "datasets/video.h"

#define H 24
#define W 32
#define BOUND 20.0

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    return test_tmpdir_make(tmpdir, sizeof tmpdir, "test_rawframes.");
}

static int teardown(void **state)
{
    (void)state;
    return test_tmpdir_remove(tmpdir);
}

/* Runs a shell command with output to tmpdir/cmd.out; returns the exit code. */
static int sh(const char *cmd)
{
    char full[4096];
    snprintf(full, sizeof full, "%s >'%s/cmd.out' 2>&1", cmd, tmpdir);
    int st = system(full);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static int output_has(const char *s)
{
    char p[600];
    snprintf(p, sizeof p, "%s/cmd.out", tmpdir);
    char *text = test_read_text(p);
    assert_non_null(text);
    int found = strstr(text, s) != NULL;
    if (!found) print_message("output was:\n%s\n", text);
    gl_free(text);
    return found;
}

static int exists(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int exists(const char *fmt, ...)
{
    char p[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p, sizeof p, fmt, ap);
    va_end(ap);
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* ---- the mapping ------------------------------------------------------------- */

/* denseflow: f > B ? 255 : f < -B ? 0 : cvRound(255 (f + B) / 2B), cvRound
 * rounding half to even; values worked by hand for B = 20. */
static void test_mapping(void **state)
{
    (void)state;
    assert_int_equal(rawframes_flow_to_u8(0.0f, BOUND), 128);    /* 127.5 -> 128 (even) */
    assert_int_equal(rawframes_flow_to_u8(-20.0f, BOUND), 0);
    assert_int_equal(rawframes_flow_to_u8(20.0f, BOUND), 255);
    assert_int_equal(rawframes_flow_to_u8(35.0f, BOUND), 255);
    assert_int_equal(rawframes_flow_to_u8(-1e9f, BOUND), 0);
    assert_int_equal(rawframes_flow_to_u8(NAN, BOUND), 0);
    assert_int_equal(rawframes_flow_to_u8(1.0f, BOUND), 134);    /* 133.875 */
    assert_int_equal(rawframes_flow_to_u8(-1.0f, BOUND), 121);   /* 121.125 */
    assert_int_equal(rawframes_flow_to_u8(-0.0784313725f, BOUND), 127); /* 127.0 */
    assert_int_equal(rawframes_flow_to_u8(1.0f, 4.0), 159);      /* 255 * 5 / 8 = 159.375 */
    /* levels back: v * 40 / 255 - 20 */
    assert_true(fabsf(rawframes_u8_to_flow(0, BOUND) + 20.0f) < 1e-6f);
    assert_true(fabsf(rawframes_u8_to_flow(255, BOUND) - 20.0f) < 1e-6f);
    assert_true(fabsf(rawframes_u8_to_flow(128, BOUND) - 0.0784313725f) < 1e-6f);
    /* every level survives a round trip; any f in range is within half a level */
    for (int v = 0; v < 256; v++) assert_int_equal(rawframes_flow_to_u8(rawframes_u8_to_flow((uint8_t)v, BOUND), BOUND), v);
    for (int i = -2000; i <= 2000; i++) {
        float f = (float)i / 100.0f;
        float g = rawframes_u8_to_flow(rawframes_flow_to_u8(f, BOUND), BOUND);
        assert_true(fabsf(f - g) <= (float)(BOUND / 255.0) + 1e-5f);
    }
}

/* ---- a cache, exported and imported back -------------------------------------- */

static const struct { const char *name; int label, split, pairs; } clips[] = {
    { "Alpha/v_Alpha_g08_c01.avi", 0, 0, 3 },
    { "Beta/v_Beta_g08_c01.avi", 1, 0, 2 },
    { "Alpha/v_Alpha_g01_c01.avi", 0, 1, 4 },
};
enum { NCLIPS = 3 };

/* A smooth field with one value beyond the bound (saturates). */
static float field_value(int clip, int k, int c, int y, int x)
{
    if (clip == 0 && k == 1 && c == 0 && y == 5 && x == 7) return 31.0f;
    if (c == 0) return 12.0f * sinf(6.2831853f * x / W + 0.7f * k + clip) + 0.25f * clip;
    return -9.0f * cosf(6.2831853f * y / H - 0.3f * k) + 0.5f * k;
}

/* A H x W tvl1 cache of n clips (field_value's fields); publishes it. */
static void make_cache_of(const char *path, int n, const char *const *names, const int *label, const int *split,
                          const int *pairs)
{
    cache_config cfg;
    cache_config_default(&cfg);
    snprintf(cfg.method, sizeof cfg.method, "tvl1");
    snprintf(cfg.source, sizeof cfg.source, "dataset=/x lists=/x split=1");
    cfg.height = H;
    cfg.width = W;
    cfg.total_clips = n;
    cache_writer *wr = NULL;
    OK(cache_writer_open(path, &cfg, &wr));
    float f[2 * H * W];
    for (int i = 0; i < n; i++) {
        cache_clip info = { .index = i, .label = label[i], .split = split[i] };
        snprintf(info.name, sizeof info.name, "%s", names[i]);
        cache_clip_writer *cw = NULL;
        OK(cache_clip_begin(wr, &info, &cw));
        for (int k = 0; k < pairs[i]; k++) {
            for (int c = 0; c < 2; c++)
                for (int y = 0; y < H; y++)
                    for (int x = 0; x < W; x++) f[(c * H + y) * W + x] = field_value(i, k, c, y, x);
            OK(cache_clip_append(cw, 1, f, NULL));
        }
        OK(cache_clip_commit(&cw));
    }
    OK(cache_writer_finish(wr));
    cache_writer_close(&wr);
}

static void make_cache(const char *path)
{
    const char *names[NCLIPS];
    int label[NCLIPS], split[NCLIPS], pairs[NCLIPS];
    for (int i = 0; i < NCLIPS; i++) {
        names[i] = clips[i].name;
        label[i] = clips[i].label;
        split[i] = clips[i].split;
        pairs[i] = clips[i].pairs;
    }
    make_cache_of(path, NCLIPS, names, label, split, pairs);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* The same clips as split-1 lists in mmaction2's place: data/ucf101/annotations
 * beside data/ucf101/rawframes. */
static void make_lists(const char *dir)
{
    char p[700];
    assert_int_equal(gl_mkdirs(dir), 0);
    snprintf(p, sizeof p, "%s/classInd.txt", dir);
    write_text(p, "1 Alpha\r\n2 Beta\r\n");
    snprintf(p, sizeof p, "%s/trainlist01.txt", dir);
    write_text(p, "Alpha/v_Alpha_g08_c01.avi 1\r\nBeta/v_Beta_g08_c01.avi 2\r\n");
    snprintf(p, sizeof p, "%s/testlist01.txt", dir);
    write_text(p, "Alpha/v_Alpha_g01_c01.avi\r\n");
}

static void expect_file_text(const char *path, const char *want)
{
    char *text = test_read_text(path);
    assert_non_null(text);
    assert_string_equal(text, want);
    gl_free(text);
}

static void test_round_trip(void **state)
{
    (void)state;
    char src[600], out[600], back[600], lists[600], cmd[3000];
    snprintf(src, sizeof src, "%s/tvl1.h5", tmpdir);
    snprintf(out, sizeof out, "%s/ucf101/rawframes", tmpdir);
    snprintf(back, sizeof back, "%s/back.h5", tmpdir);
    snprintf(lists, sizeof lists, "%s/ucf101/annotations", tmpdir);
    make_cache(src);
    make_lists(lists);

    snprintf(cmd, sizeof cmd, "'%s' cache export '%s' '%s' --format denseflow --workers 1", GLOCAL_BINARY, src, out);
    assert_int_equal(sh(cmd), 0);
    assert_true(output_has("3 clips exported (9 flow images each of x and y), 0 already there, 0 failed; "
                           "1 values beyond +-20 px saturated"));
    /* names as mmaction2's tools/data/ucf101 README: <Class>/<clip>/flow_x_00001.jpg, from 1 */
    for (int i = 0; i < NCLIPS; i++) {
        char folder[256];
        snprintf(folder, sizeof folder, "%s", clips[i].name);
        *strrchr(folder, '.') = 0;
        for (int k = 1; k <= clips[i].pairs; k++) {
            assert_true(exists("%s/%s/flow_x_%05d.jpg", out, folder, k));
            assert_true(exists("%s/%s/flow_y_%05d.jpg", out, folder, k));
        }
        assert_false(exists("%s/%s/flow_x_00000.jpg", out, folder));
        assert_false(exists("%s/%s/flow_x_%05d.jpg", out, folder, clips[i].pairs + 1));
    }
    /* one channel, as denseflow's CV_8UC1 */
    snprintf(cmd, sizeof cmd, "ffprobe -v error -show_entries stream=pix_fmt,width,height -of csv=p=0 "
             "'%s/Alpha/v_Alpha_g08_c01/flow_y_00002.jpg'", out);
    assert_int_equal(sh(cmd), 0);
    assert_true(output_has("32,24,gray"));
    /* build_file_list.py's rawframes lines: "<Class>/<clip> <frames> <label>", label from 0 */
    char p[800];
    snprintf(p, sizeof p, "%s/ucf101_train_split_1_rawframes.txt", out);
    expect_file_text(p, "Alpha/v_Alpha_g08_c01 3 0\nBeta/v_Beta_g08_c01 2 1\n");
    snprintf(p, sizeof p, "%s/ucf101_val_split_1_rawframes.txt", out);
    expect_file_text(p, "Alpha/v_Alpha_g01_c01 4 0\n");

    /* back into a cache; the lists are found in ../annotations */
    snprintf(cmd, sizeof cmd, "'%s' cache import '%s' '%s'", GLOCAL_BINARY, out, back);
    assert_int_equal(sh(cmd), 0);
    assert_true(output_has("split lists from"));
    assert_true(output_has("3 clips imported (9 pairs), 0 already there, 0 failed"));
    cache *c = NULL;
    OK(cache_open(back, 0, &c));
    assert_int_equal(cache_clip_count(c), NCLIPS);
    assert_int_equal(cache_error_count(c), 0);
    assert_int_equal(cache_get_config(c)->height, H);
    assert_int_equal(cache_get_config(c)->width, W);
    /* Each value is within the JPEG's error of its level: the level itself is
     * within half a step (B/255 = 0.078 px) of the value clipped to +-B, and
     * quality 95 (quantiser 1-3 on these low frequencies) moves a pixel of a
     * smooth field by at most ~2 levels; so 3 levels (0.47 px) at most, and
     * on average well under one level (0.157 px). The 8x8 block holding the
     * saturated spike (a jump of ~19 px against its neighbours) rings:
     * measured 0.86 px there, allowed 8 levels (1.25 px). */
    double worst = 0, spike_worst = 0, sum = 0;
    long n = 0;
    float f[2 * H * W];
    for (int i = 0; i < NCLIPS; i++) {
        const cache_clip *cl = cache_get_clip(c, i);
        assert_string_equal(cl->name, clips[i].name);
        assert_int_equal(cl->label, clips[i].label);
        assert_int_equal(cl->split, clips[i].split);
        assert_int_equal(cl->pairs, clips[i].pairs);
        for (int k = 0; k < cl->pairs; k++) {
            OK(cache_read_fields(c, i, k, 1, f));
            for (int ch = 0; ch < 2; ch++)
                for (int y = 0; y < H; y++)
                    for (int x = 0; x < W; x++) {
                        double want = field_value(i, k, ch, y, x);
                        want = want > BOUND ? BOUND : want < -BOUND ? -BOUND : want;
                        double d = fabs(f[(ch * H + y) * W + x] - want);
                        if (i == 0 && k == 1 && ch == 0 && y < 8 && x < 8) { /* the spike's 8x8 block */
                            spike_worst = d > spike_worst ? d : spike_worst;
                            continue;
                        }
                        worst = d > worst ? d : worst;
                        sum += d;
                        n++;
                    }
        }
    }
    cache_close(&c);
    print_message("round trip: max %.4f px (%.4f in the spike's block), mean %.4f px (one level = %.4f px)\n", worst,
                  spike_worst, sum / n, 2 * BOUND / 255);
    assert_true(worst <= 3 * 2 * BOUND / 255);
    assert_true(spike_worst <= 8 * 2 * BOUND / 255);
    assert_true(sum / n <= 0.5 * 2 * BOUND / 255);

    /* resume: complete folders are skipped, a partial one left by a kill is redone */
    snprintf(cmd, sizeof cmd, "rm -r '%s/Beta/v_Beta_g08_c01' && mkdir '%s/Beta/.v_Beta_g08_c01.partial' && "
             "touch '%s/Beta/.v_Beta_g08_c01.partial/flow_x_00009.jpg'", out, out, out);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "'%s' cache export '%s' '%s'", GLOCAL_BINARY, src, out);
    assert_int_equal(sh(cmd), 0);
    assert_true(output_has("1 clips exported (2 flow images each of x and y), 2 already there, 0 failed"));
    assert_false(exists("%s/Beta/.v_Beta_g08_c01.partial", out));
    assert_false(exists("%s/Beta/v_Beta_g08_c01/flow_x_00009.jpg", out));
    assert_true(exists("%s/Beta/v_Beta_g08_c01/flow_y_00002.jpg", out));

    /* not flow: refused */
    snprintf(cmd, sizeof cmd, "'%s' cache export '%s' '%s' --format mp4", GLOCAL_BINARY, src, out);
    assert_int_equal(sh(cmd), 2);
}

/* A corrupted chunk in the cache: that clip is reported and left out (no
 * folder, not in the lists), the others are exported, exit status 1. */
static void test_damaged_clip(void **state)
{
    (void)state;
    char src[600], out[600], cmd[3000];
    snprintf(src, sizeof src, "%s/damaged.h5", tmpdir);
    snprintf(out, sizeof out, "%s/damaged-out", tmpdir);
    make_cache(src);
    /* the first field of clip 1 (Beta): its chunk's bytes, found through HDF5 */
    hid_t file = H5Fopen(src, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(file >= 0);
    hid_t ds = H5Dopen2(file, "/fields", H5P_DEFAULT);
    assert_true(ds >= 0);
    hsize_t coord[4] = { (hsize_t)clips[0].pairs, 0, 0, 0 };
    unsigned mask = 0;
    haddr_t addr = 0;
    hsize_t size = 0;
    assert_true(H5Dget_chunk_info_by_coord(ds, coord, &mask, &addr, &size) >= 0);
    H5Dclose(ds);
    H5Fclose(file);
    assert_true(size > 16);
    FILE *f = fopen(src, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, (long)(addr + size / 2), SEEK_SET), 0);
    unsigned char junk[8] = { 0xde, 0xad, 0xbe, 0xef, 0x01, 0x23, 0x45, 0x67 };
    assert_int_equal(fwrite(junk, 1, sizeof junk, f), sizeof junk);
    fclose(f);

    snprintf(cmd, sizeof cmd, "'%s' cache export '%s' '%s' --workers 3", GLOCAL_BINARY, src, out);
    assert_int_equal(sh(cmd), 1);
    assert_true(output_has("glocal cache: Beta/v_Beta_g08_c01.avi: "));
    assert_true(output_has("2 clips exported (7 flow images each of x and y), 0 already there, 1 failed"));
    assert_false(exists("%s/Beta/v_Beta_g08_c01", out));
    assert_false(exists("%s/Beta/.v_Beta_g08_c01.partial", out));
    char p[800];
    snprintf(p, sizeof p, "%s/ucf101_train_split_1_rawframes.txt", out);
    expect_file_text(p, "Alpha/v_Alpha_g08_c01 3 0\n");
}

/* Real flow JPEGs nobody here wrote: mmaction2's tests/data/imgs x_/y_ (its
 * "{}_{:05d}.jpg" flow template), as the sample UCF-101 clip's folder. The
 * imported values are the ffmpeg command's decoding of each file mapped by
 * v * 40 / 255 - 20; the other 304 listed clips have no folder: recorded as
 * failures, exit status 1. */
static void test_import_mmaction2_files(void **state)
{
    (void)state;
    const char *dir = GLOCAL_DATA_DIR "/rawframes";
    char back[600], cmd[3000];
    snprintf(back, sizeof back, "%s/mm.h5", tmpdir);
    snprintf(cmd, sizeof cmd, "'%s' cache import '%s' '%s' --lists '%s/ucf101/splits' --method tvl1-denseflow",
             GLOCAL_BINARY, dir, back, GLOCAL_DATA_DIR);
    assert_int_equal(sh(cmd), 1);
    assert_true(output_has("1 clips imported (2 pairs), 0 already there, 304 failed"));
    assert_true(output_has("no flow_x_00001.jpg (or x_00001.jpg)"));
    cache *c = NULL;
    OK(cache_open(back, 0, &c));
    assert_string_equal(cache_get_config(c)->method, "tvl1-denseflow");
    assert_int_equal(cache_clip_count(c), 1);
    assert_int_equal(cache_error_count(c), 304);
    const cache_clip *cl = cache_get_clip(c, 0);
    assert_string_equal(cl->name, "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi");
    assert_int_equal(cl->pairs, 2);
    assert_int_equal(cl->split, 1);
    const int h = cache_get_config(c)->height, w = cache_get_config(c)->width;
    assert_int_equal(h, 240);
    assert_int_equal(w, 320);
    float *f = gl_malloc(sizeof(float) * 2 * (size_t)h * (size_t)w);
    unsigned char *raw = gl_malloc((size_t)h * (size_t)w);
    assert_non_null(f);
    assert_non_null(raw);
    for (int k = 0; k < 2; k++) {
        OK(cache_read_fields(c, 0, k, 1, f));
        for (int ch = 0; ch < 2; ch++) {
            char rawp[700];
            snprintf(rawp, sizeof rawp, "%s/raw.gray", tmpdir);
            snprintf(cmd, sizeof cmd, "ffmpeg -v error -y -i '%s/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01/%c_%05d.jpg' "
                     "-f rawvideo -pix_fmt gray '%s'", dir, ch ? 'y' : 'x', k + 1, rawp);
            assert_int_equal(sh(cmd), 0);
            FILE *fr = fopen(rawp, "rb");
            assert_non_null(fr);
            assert_int_equal(fread(raw, 1, (size_t)h * (size_t)w, fr), (size_t)h * (size_t)w);
            fclose(fr);
            double worst = 0;
            for (long i = 0; i < (long)h * w; i++) {
                /* the cache stores int16 at 1/128 px: half a unit on top */
                double d = fabs(f[(long)ch * h * w + i] - (raw[i] * 40.0 / 255.0 - 20.0));
                worst = d > worst ? d : worst;
            }
            assert_true(worst <= 0.5 / 128 + 1e-6);
        }
    }
    gl_free(raw);
    gl_free(f);
    cache_close(&c);
}

/* --frames: every frame of the clip's video as img_%05d.jpg (the real clip has
 * 164 frames, tests/data/README.md) at the cache's grid; a clip whose video is
 * missing is reported and left out. */
static void test_export_frames(void **state)
{
    (void)state;
    char src[600], out[600], vroot[600], cmd[3000];
    snprintf(src, sizeof src, "%s/frames.h5", tmpdir);
    snprintf(out, sizeof out, "%s/frames-out", tmpdir);
    snprintf(vroot, sizeof vroot, "%s/videos", tmpdir);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/ApplyEyeMakeup' && ln -s '%s/ucf101/videos/v_ApplyEyeMakeup_g01_c01.avi' "
             "'%s/ApplyEyeMakeup/'", vroot, GLOCAL_DATA_DIR, vroot);
    assert_int_equal(system(cmd), 0);
    const char *names[2] = { "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c02.avi" };
    make_cache_of(src, 2, names, (const int[]){ 0, 0 }, (const int[]){ 1, 1 }, (const int[]){ 2, 2 });

    snprintf(cmd, sizeof cmd, "'%s' cache export '%s' '%s' --frames '%s'", GLOCAL_BINARY, src, out, vroot);
    assert_int_equal(sh(cmd), 1);
    assert_true(output_has("glocal cache: ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c02.avi: "));
    assert_true(output_has("1 clips exported (2 flow images each of x and y), 0 already there, 1 failed"));
    const char *d = "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01";
    assert_true(exists("%s/%s/img_00001.jpg", out, d));
    assert_true(exists("%s/%s/img_00164.jpg", out, d));
    assert_false(exists("%s/%s/img_00165.jpg", out, d));
    assert_false(exists("%s/%s/img_00000.jpg", out, d));
    assert_true(exists("%s/%s/flow_x_00002.jpg", out, d));
    assert_false(exists("%s/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c02", out));
    snprintf(cmd, sizeof cmd, "ffprobe -v error -show_entries stream=width,height -of csv=p=0 '%s/%s/img_00100.jpg'",
             out, d);
    assert_int_equal(sh(cmd), 0);
    assert_true(output_has("32,24"));
    char p[800];
    snprintf(p, sizeof p, "%s/ucf101_val_split_1_rawframes.txt", out);
    expect_file_text(p, "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01 2 0\n");
}

/* RGB rawframes (img_00001.jpg, ...) stand for the video: the first 6 frames
 * of the real UCF-101 clip written as JPEGs (quality 95) read back as a video
 * of 6 frames close to the decoded originals; a rawframes tree is a dataset
 * root (the clip exists, its path is the folder); and glocal extract computes
 * 5 pairs from it without the .avi. */
static void test_rgb_rawframes_as_video(void **state)
{
    (void)state;
    enum { NF = 6 };
    char root[600], dir[800], p[900], cmd[3000];
    snprintf(root, sizeof root, "%s/rgb", tmpdir);
    snprintf(dir, sizeof dir, "%s/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01", root);
    assert_int_equal(gl_mkdirs(dir), 0);
    video_reader *r = NULL;
    OK(video_reader_open(&r, GLOCAL_DATA_DIR "/ucf101/videos/v_ApplyEyeMakeup_g01_c01.avi", NULL));
    video_info vi;
    video_reader_info(r, &vi);
    uint8_t *orig = gl_malloc(NF * vi.frame_bytes), *back = gl_malloc(vi.frame_bytes);
    assert_non_null(orig);
    assert_non_null(back);
    for (int k = 0; k < NF; k++) {
        OK(video_reader_read(r, orig + k * vi.frame_bytes, NULL));
        snprintf(p, sizeof p, "%s/img_%05d.jpg", dir, k + 1);
        OK(rawframes_write_jpeg(p, orig + k * vi.frame_bytes, vi.out_width, vi.out_height, 3, 95));
    }
    video_reader_close(&r);

    OK(video_reader_open(&r, dir, NULL));
    video_info fi;
    video_reader_info(r, &fi);
    assert_int_equal(fi.out_width, 320);
    assert_int_equal(fi.out_height, 240);
    assert_int_equal(fi.frame_bytes, vi.frame_bytes);
    for (int k = 0; k < NF; k++) {
        OK(video_reader_read(r, back, NULL));
        double sum = 0;
        for (size_t i = 0; i < vi.frame_bytes; i++) sum += abs((int)back[i] - (int)orig[k * vi.frame_bytes + i]);
        /* JPEG q95 with 4:2:0 chroma: a few levels per pixel on average */
        assert_true(sum / (double)vi.frame_bytes < 4.0);
    }
    assert_int_equal(video_reader_read(r, back, NULL), GL_EOF);
    video_reader_close(&r);
    long nf = 0;
    OK(video_count_frames(dir, &nf));
    assert_int_equal(nf, NF);
    gl_free(back);
    gl_free(orig);

    /* a folder without img_00001.jpg is still an error naming what was expected */
    assert_true(video_reader_open(&r, tmpdir, NULL) < 0);
    assert_non_null(strstr(gl_last_error(), "without img_00001.jpg"));

    dataset_index *idx = NULL;
    OK(dataset_index_load(&idx, root, GLOCAL_DATA_DIR "/ucf101/splits", 1));
    assert_int_equal(idx->num_missing, idx->num_clips - 1);
    for (long i = 0; i < idx->num_clips; i++)
        if (idx->clips[i].exists) assert_non_null(strstr(idx->clips[i].path, "/rgb/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01"));
    dataset_index_free(&idx);

    char out[700];
    snprintf(out, sizeof out, "%s/rgbdiff.h5", tmpdir);
    snprintf(cmd, sizeof cmd, "'%s' --threads 1 extract --dataset '%s' --lists '%s/ucf101/splits' --method rgbdiff "
             "--size 32x32 --out '%s'", GLOCAL_BINARY, root, GLOCAL_DATA_DIR, out);
    assert_int_equal(sh(cmd), 1); /* the other 304 clips are missing */
    cache *c = NULL;
    OK(cache_open(out, 0, &c));
    long row = -1;
    OK(cache_find_name(c, "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", &row));
    assert_int_equal(cache_get_clip(c, row)->pairs, NF - 1);
    cache_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mapping),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_damaged_clip),
        cmocka_unit_test(test_import_mmaction2_files),
        cmocka_unit_test(test_export_frames),
        cmocka_unit_test(test_rgb_rawframes_as_video),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
