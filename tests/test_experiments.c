/* test_experiments.c — experiment configs and the stage machinery of `glocal run`. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <sys/wait.h>

#include "datasets/cache.h"
#include "experiments/cli.h"
#include "experiments/config.h"
#include "experiments/motion_source.h"
#include "experiments/stages.h"
#include "tests/testutil.h"

static char dir[256];

static const char *write_cfg(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_shipped_configs_load(void **state)
{
    (void)state;
    const char *names[] = { "synthetic", "ucf101", "ncaa" };
    for (int i = 0; i < 3; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/experiments/%s.cfg", GLOCAL_SOURCE_DIR, names[i]);
        exp_config c;
        exp_config_default(&c);
        OK(exp_config_load(&c, path));
        assert_string_equal(c.name, names[i]);
        assert_string_equal(c.kind, names[i]);
        assert_true(c.nsources >= 3);
        assert_true(c.nfusions >= 2);
    }
    exp_config c;
    exp_config_default(&c);
    char path[512];
    snprintf(path, sizeof path, "%s/experiments/synthetic.cfg", GLOCAL_SOURCE_DIR);
    OK(exp_config_load(&c, path));
    /* values from the file, as written there */
    assert_int_equal(c.classes, 8);
    assert_int_equal(c.width, 64);
    assert_int_equal(c.crop_w, 56);
    assert_string_equal(c.fusions[1].streams[1], "glocal-local");
    assert_true(c.fusions[1].weights[1] == 1.5);
    /* dataset.lists: as written */
    exp_config_default(&c);
    assert_string_equal(c.lists, "");
    OK(exp_config_load(&c, write_cfg("lists.cfg", "dataset = { kind = \"ucf101\"; lists = \"/d/annotations\"; };\n")));
    assert_string_equal(c.lists, "/d/annotations");
}

/* Each bad file must fail with the file, the right line and what was expected. */
static void expect_error(const char *text, int line, const char *needle)
{
    const char *path = write_cfg("bad.cfg", text);
    exp_config c;
    exp_config_default(&c);
    int rc = exp_config_load(&c, path);
    assert_true(rc < 0);
    char where[600];
    snprintf(where, sizeof where, "%s:%d: ", path, line);
    const char *m = gl_last_error();
    if (!strstr(m, where) || !strstr(m, needle)) {
        print_error("message '%s' lacks '%s' or '%s'\n", m, where, needle);
        fail();
    }
}

static void test_bad_configs(void **state)
{
    (void)state;
    expect_error("name = \"x\";\nmotoin = { size = \"64x64\"; };\n", 2, "unknown key \"motoin\"");
    expect_error("name = \"x\";\nmotion = {\n  size = \"64x64\";\n  minuts = 3.0;\n};\n", 4,
                 "unknown key \"motion.minuts\"");
    expect_error("classifier = {\n epochs = \"ten\";\n};\n", 2, "classifier.epochs must be a whole number");
    expect_error("classifier = {\n epochs = 0;\n};\n", 2, "in [1, 100000], got 0");
    expect_error("dataset = { kind = \"kinetics\"; };\n", 1, "one of synthetic, ucf101, ncaa");
    expect_error("dataset = {\n size = \"64by64\";\n};\n", 2, "\"WxH\"");
    expect_error("sources = [ \"rgb\",\n \"flownet\" ];\n", 2, "unknown motion source \"flownet\"");
    expect_error("sources = [ \"rgb\",\n \"glocal-lme-mask\" ];\n", 2,
                 "\"glocal-lme-mask\" is a glocal extract output (the mask of a local flow), not a recognition stream");
    expect_error("sources = [ \"rgb\", \"tvl1\" ];\nfusions = (\n { streams = [ \"rgb\", \"glocal-local\" ]; }\n);\n", 3,
                 "fusion stream \"glocal-local\" is not one of the sources");
    expect_error("name = \"x\";\nmotion = { size = ; };\n", 2, "syntax error");
    exp_config c;
    exp_config_default(&c);
    assert_int_equal(exp_config_load(&c, "/nonexistent/x.cfg"), GL_EIO);
    assert_non_null(strstr(gl_last_error(), "/nonexistent/x.cfg"));
}

/* The DIS sources are runner sources (glocal extract methods of the same
 * names), listed in the error for an unknown one. */
static void test_dis_sources(void **state)
{
    (void)state;
    const char *path = write_cfg("dis.cfg", "sources = [ \"rgb\", \"dis\", \"dis-minus-homography\" ];\n"
                                            "fusions = ( { name = \"f\"; streams = [ \"rgb\", \"dis\" ]; } );\n");
    exp_config c;
    exp_config_default(&c);
    OK(exp_config_load(&c, path));
    assert_int_equal(c.nsources, 3);
    assert_string_equal(c.sources[1], "dis");
    assert_string_equal(c.sources[2], "dis-minus-homography");
    assert_string_equal(c.fusions[0].streams[1], "dis");
    expect_error("sources = [ \"dis-ransac\" ];\n", 1, "dis, dis-minus-homography");
}

static void test_canonical_and_keys(void **state)
{
    (void)state;
    exp_config a, b;
    exp_config_default(&a);
    exp_config_default(&b);
    char ta[8192], tb[8192];
    OK(exp_config_canonical(&a, ta, sizeof ta));
    OK(exp_config_canonical(&b, tb, sizeof tb));
    assert_string_equal(ta, tb);
    b.epochs++;
    OK(exp_config_canonical(&b, tb, sizeof tb));
    assert_true(strcmp(ta, tb) != 0);
    /* FNV-1a 64 reference values (the published test vectors) */
    assert_true(stage_hash(0, "") == 0xcbf29ce484222325ULL);
    assert_true(stage_hash(0, "a") == 0xaf63dc4c8601ec8cULL);
    assert_true(stage_hash(0, "foobar") == 0x85944171f73967e8ULL);
}

static void test_stage_markers_and_exec(void **state)
{
    (void)state;
    char sdir[512], log[600];
    snprintf(sdir, sizeof sdir, "%s/stage", dir);
    OK(gl_mkdirs(sdir));
    double secs = 0;
    char note[64];
    assert_int_equal(stage_is_done(sdir, "abc", &secs, note, sizeof note), 0);
    OK(stage_mark_done(sdir, "abc", 12.5, NULL));
    assert_int_equal(stage_is_done(sdir, "abc", &secs, note, sizeof note), 1);
    assert_true(secs == 12.5);
    assert_string_equal(note, "");
    assert_int_equal(stage_is_done(sdir, "abd", NULL, NULL, 0), 0);
    OK(stage_mark_done(sdir, "abe", 1.0, "3 clips failed"));
    assert_int_equal(stage_is_done(sdir, "abe", &secs, note, sizeof note), 1);
    assert_string_equal(note, "3 clips failed");
    snprintf(log, sizeof log, "%s/run.log", sdir);
    char *ok[] = { "/bin/sh", "-c", "echo hello; exit 0", NULL };
    assert_int_equal(stage_exec("t", ok, log), 0);
    char *bad[] = { "/bin/sh", "-c", "echo failing >&2; exit 3", NULL };
    assert_int_equal(stage_exec("t", bad, log), 3);
    char *missing[] = { "/nonexistent/prog", NULL };
    assert_int_equal(stage_exec("t", missing, log), 127);
    char *text = test_read_text(log);
    assert_non_null(text);
    assert_non_null(strstr(text, "$ /bin/sh -c echo hello; exit 0\nhello\n"));
    assert_non_null(strstr(text, "failing\n"));
    gl_free(text);
}

/* A SIGTERM to `glocal run` while stage_exec waits on a stage is passed on
 * to the stage: here a shell that sends it to its parent (this test, with the
 * handlers of cli_signals_catch) and exits 143 when it gets it back, or 0
 * after 20 s when it does not. */
static void test_stage_exec_passes_signals(void **state)
{
    (void)state;
    char log[600];
    snprintf(log, sizeof log, "%s/signal.log", dir);
    char *relay[] = { "/bin/sh", "-c", "trap 'echo stopped; exit 143' TERM; kill -TERM $PPID; sleep 20 & wait $!; exit 0",
                      NULL };
    cli_signals_catch();
    int status = stage_exec("t", relay, log);
    cli_signals_restore();
    assert_int_equal(cli_signal_caught(), SIGTERM);
    assert_int_equal(status, 143);
    char *text = test_read_text(log);
    assert_non_null(text);
    assert_non_null(strstr(text, "stopped\n"));
    gl_free(text);
}

/* motion_teacher_compute on a pair with a known translation: B(p + (2, 1))
 * = A(p), A the band-limited texture except a flat grey square, and in B a
 * square of alternating black and white stripes over a textured place that
 * A shows (an occluder). The teacher (TV-L1) is trusted (confidence 1) almost
 * everywhere on the texture and there gives the translation (forward) and
 * its opposite (backward); it is not trusted where the flow leaves the frame
 * (the last two columns) nor on the occluded pixels. */
static void test_teacher_confidence(void **state)
{
    (void)state;
    enum { W = 64, H = 64 };
    const double du = 2, dv = 1;
    motion_pairs p = { .n = 1, .width = W, .height = H };
    p.a = malloc(3 * W * H);
    p.b = malloc(3 * W * H);
    assert_non_null(p.a);
    assert_non_null(p.b);
#define FLAT(x, y) ((x) >= 40 && (x) < 56 && (y) >= 8 && (y) < 24)   /* flat in A (and in B, moved) */
#define OCCLUDED(x, y) ((x) >= 12 && (x) < 26 && (y) >= 36 && (y) < 50) /* A's pixels hidden in B */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double va = FLAT(x, y) ? 128 : test_texture(x, y);
            int xs = (int)(x - du), ys = (int)(y - dv); /* B(x, y) = A(x - du, y - dv) */
            double vb = FLAT(xs, ys) ? 128 : test_texture(xs, ys);
            if (OCCLUDED(xs, ys)) vb = (x / 2) % 2 ? 250 : 5;
            for (int c = 0; c < 3; c++) {
                p.a[(y * W + x) * 3 + c] = (uint8_t)lrint(va);
                p.b[(y * W + x) * 3 + c] = (uint8_t)lrint(vb);
            }
        }
    motion_teacher t;
    OK(motion_teacher_compute(&t, &p, flow_method_tvl1, NULL, NULL, NULL));
    const size_t plane = (size_t)W * H;
    const float *fw = t.flow, *bw = t.flow + 2 * plane, *conf = t.conf;
    long tex = 0, trusted = 0, occ = 0, occ_trusted = 0, edge_trusted = 0;
    double epe = 0, epe_back = 0;
    for (int y = 4; y < H - 4; y++)
        for (int x = 4; x < W - 4; x++) {
            size_t i = (size_t)y * W + x;
            if (OCCLUDED(x, y)) {
                occ++;
                occ_trusted += conf[i] > 0.5f;
                continue;
            }
            /* the texture, away from the flat square, the occluder and the
             * columns whose match leaves B */
            if (FLAT(x, y) || x >= W - 4 - 2 || (x >= 8 && x < 30 && y >= 32 && y < 54) || (x >= 36 && y < 28))
                continue;
            tex++;
            if (conf[i] > 0.5f) {
                trusted++;
                epe += hypot(fw[i] - du, fw[plane + i] - dv);
            }
            /* B's pixel q = p + d shows A(p): the backward flow there is -d */
            size_t q = (size_t)(y + 1) * W + (x + 2);
            epe_back += hypot(bw[q] + du, bw[plane + q] + dv);
        }
    for (int y = 0; y < H; y++)
        for (int x = W - 2; x < W; x++) edge_trusted += conf[(size_t)y * W + x] > 0.5f;
    print_message("texture: %ld of %ld trusted, EPE %.3f px there (backward %.3f); occluded: %ld of %ld trusted; "
                  "last two columns: %ld trusted\n", trusted, tex, epe / trusted, epe_back / tex, occ_trusted, occ,
                  edge_trusted);
    assert_true(trusted > 0.95 * tex);
    assert_true(epe / trusted < 0.1);
    assert_true(epe_back / tex < 0.1);
    assert_true(occ_trusted < 0.2 * occ);
    assert_int_equal(edge_trusted, 0);
#undef FLAT
#undef OCCLUDED
    motion_teacher_free(&t);
    free(p.a);
    free(p.b);
}

/* --pretrain-gt's teacher on rendered pairs: B sampled at p + flow shows
 * A(p) (grey error far below the unaligned pair's) wherever it is trusted,
 * trusted exactly where p + flow is inside the frame; the swapped direction
 * trusted nowhere; pairs without ground truth refused. */
static void test_teacher_truth(void **state)
{
    (void)state;
    enum { S = 48, N = 4 };
    synth_config sc = synth_config_default();
    sc.width = sc.height = S;
    sc.seed = 5;
    motion_pairs p = { 0 };
    OK(motion_pairs_synth(&p, &sc, N, 5));
    motion_teacher t;
    OK(motion_teacher_truth(&t, &p));
    const size_t plane = (size_t)S * S;
    double warped = 0, still = 0;
    long n = 0, wrong_conf = 0, back_trusted = 0;
    for (int k = 0; k < N; k++) {
        const float *fw = t.flow + 4 * plane * k, *cf = t.conf + 2 * plane * k;
        const uint8_t *a = p.a + 3 * plane * k, *b = p.b + 3 * plane * k;
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                const size_t i = (size_t)y * S + x;
                const double qx = x + fw[i], qy = y + fw[plane + i];
                const int inside = qx >= 0 && qy >= 0 && qx <= S - 1 && qy <= S - 1;
                wrong_conf += (cf[i] > 0.5f) != inside;
                back_trusted += cf[plane + i] > 0;
                if (!inside) continue;
                const int x0 = qx > S - 2 ? S - 2 : (int)qx, y0 = qy > S - 2 ? S - 2 : (int)qy;
                const double fx = qx - x0, fy = qy - y0;
                for (int c = 0; c < 3; c++) {
#define B(xx, yy) b[3 * ((size_t)(yy) * S + (xx)) + c]
                    double v = (1 - fy) * ((1 - fx) * B(x0, y0) + fx * B(x0 + 1, y0)) +
                               fy * ((1 - fx) * B(x0, y0 + 1) + fx * B(x0 + 1, y0 + 1));
#undef B
                    warped += fabs(a[3 * i + c] - v);
                    still += fabs((double)a[3 * i + c] - b[3 * i + c]);
                }
                n += 3;
            }
    }
    print_message("ground-truth teacher: |A - B(p + f)| %.2f vs |A - B| %.2f grey levels\n", warped / n, still / n);
    assert_int_equal(wrong_conf, 0);
    assert_int_equal(back_trusted, 0);
    assert_true(warped / n < 0.4 * (still / n)); /* 0.31 measured: occlusions and edge blur stay */
    motion_teacher_free(&t);
    motion_pairs q = { .n = 1, .width = S, .height = S, .a = p.a, .b = p.b };
    assert_int_equal(motion_teacher_truth(&t, &q), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "ground truth"));
    motion_pairs_free(&p);
}

/* One pool from two: p's pairs then q's, byte for byte, ground truth kept
 * only when both have it, frames of another size refused. */
static void test_pairs_append(void **state)
{
    (void)state;
    enum { S = 32 };
    synth_config sc = synth_config_default();
    sc.width = sc.height = S;
    motion_pairs p, q, p0, q0;
    OK(motion_pairs_synth(&p, &sc, 3, 5));
    OK(motion_pairs_synth(&q, &sc, 2, 100));
    OK(motion_pairs_synth(&p0, &sc, 3, 5));
    OK(motion_pairs_synth(&q0, &sc, 2, 100));
    OK(motion_pairs_append(&p, &q));
    assert_int_equal(p.n, 5);
    assert_null(q.a);
    const size_t hw = (size_t)S * S;
    assert_memory_equal(p.a, p0.a, 3 * hw * 3);
    assert_memory_equal(p.a + 3 * hw * 3, q0.a, 2 * hw * 3);
    assert_memory_equal(p.b + 3 * hw * 3, q0.b, 2 * hw * 3);
    assert_memory_equal(p.homography + 27, q0.homography, sizeof(double) * 18);
    assert_memory_equal(p.local_flow + 3 * 2 * hw, q0.local_flow, sizeof(float) * 2 * 2 * hw);
    assert_memory_equal(p.mask + 3 * hw, q0.mask, 2 * hw);
    /* a pool without ground truth: the union has none */
    motion_pairs g;
    OK(motion_pairs_synth(&g, &sc, 1, 7));
    gl_free(g.homography);
    gl_free(g.global_flow);
    gl_free(g.local_flow);
    gl_free(g.mask);
    g.homography = NULL, g.global_flow = g.local_flow = NULL, g.mask = NULL;
    OK(motion_pairs_append(&p, &g));
    assert_int_equal(p.n, 6);
    assert_null(p.homography);
    assert_null(p.mask);
    assert_memory_equal(p.a + 3 * hw * 3, q0.a, 2 * hw * 3);
    /* another size: refused, both untouched */
    motion_pairs big;
    sc.width = sc.height = 48;
    OK(motion_pairs_synth(&big, &sc, 1, 3));
    assert_int_equal(motion_pairs_append(&p, &big), GL_EINVAL);
    assert_non_null(strstr(gl_last_error(), "48x48"));
    assert_int_equal(p.n, 6);
    assert_int_equal(big.n, 1);
    motion_pairs_free(&big);
    motion_pairs_free(&p);
    motion_pairs_free(&p0);
    motion_pairs_free(&q0);
}

/* Runs a shell command, output to log; returns its exit status. */
static int sh(const char *cmd, const char *log)
{
    char full[4096];
    snprintf(full, sizeof full, "%s > '%s' 2>&1", cmd, log);
    int st = system(full);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* Every stage of glocal run on the tiny config, its two GLOCAL sources (the
 * TV-L1 hybrid's and the LME's local flow) from one extract stage (one
 * inference, two caches); the second run skips them all. */
static void test_run_tiny_end_to_end(void **state)
{
    (void)state;
    char out[512], log[600], cmd[2048];
    snprintf(out, sizeof out, "%s/tiny", dir);
    snprintf(log, sizeof log, "%s/run1.log", dir);
    snprintf(cmd, sizeof cmd, "'%s' run '%s/tests/tiny.cfg' --out '%s'", GLOCAL_BINARY,
             GLOCAL_SOURCE_DIR, out);
    int st = sh(cmd, log);
    char *text = test_read_text(log);
    if (st != 0) print_error("glocal run failed (%d):\n%s\n", st, text ? text : "");
    assert_int_equal(st, 0);
    const char *stages[] = { "data", "motion", "eval-motion", "train-rgb", "evaluate-rgb",
                             "extract-tvl1-minus-homography", "train-tvl1-minus-homography",
                             "evaluate-tvl1-minus-homography", "extract-glocal", "train-glocal-local",
                             "evaluate-glocal-local", "train-glocal-lme-residual", "evaluate-glocal-lme-residual",
                             "fuse-rgb+glocal-local", "samples" };
    for (size_t i = 0; i < sizeof stages / sizeof stages[0]; i++) {
        char p[800];
        snprintf(p, sizeof p, "%s/stages/%s/stage.json", out, stages[i]);
        if (access(p, R_OK) != 0) print_error("stage %s did not finish\n", stages[i]);
        assert_int_equal(access(p, R_OK), 0);
        char line[160];
        snprintf(line, sizeof line, "glocal run: %-28s running", stages[i]);
        assert_non_null(strstr(text, line));
    }
    /* one GLOCAL extraction: no stage per source; the one stage wrote both
     * caches, each under its method's name */
    assert_null(strstr(text, "glocal run: extract-glocal-local"));
    assert_null(strstr(text, "glocal run: extract-glocal-lme-residual"));
    const char *after = strstr(text, "glocal run: extract-glocal ");
    assert_non_null(after);
    assert_null(strstr(after + 1, "glocal run: extract-glocal "));
    gl_free(text);
    const char *glocal_sources[] = { "glocal-local", "glocal-lme-residual" };
    for (int i = 0; i < 2; i++) {
        char p[800];
        snprintf(p, sizeof p, "%s/stages/extract-glocal/%s.h5", out, glocal_sources[i]);
        cache *cc = NULL;
        OK(cache_open(p, 0, &cc));
        assert_string_equal(cache_get_config(cc)->method, glocal_sources[i]);
        /* the hybrid's TV-L1 local flow and the LME's own, from the one stage */
        assert_non_null(strstr(cache_get_config(cc)->params, i ? "the LME's own" : "robust refinement"));
        assert_int_equal(cache_clip_count(cc), 8);
        cache_close(&cc);
    }
    /* the report: every recognition row filled with a number in [0, 1] */
    char rj[700];
    snprintf(rj, sizeof rj, "%s/report.json", out);
    json_object *j = json_object_from_file(rj), *rec, *mot;
    assert_non_null(j);
    assert_true(json_object_object_get_ex(j, "recognition", &rec));
    assert_int_equal(json_object_array_length(rec), 5); /* 4 streams + 1 fusion */
    for (size_t i = 0; i < json_object_array_length(rec); i++) {
        json_object *row = json_object_array_get_idx(rec, i), *t1;
        assert_true(json_object_object_get_ex(row, "top1", &t1));
        double v = json_object_get_double(t1);
        assert_true(v >= 0 && v <= 1);
    }
    assert_true(json_object_object_get_ex(j, "motion", &mot));
    json_object_put(j);
    char rm[700];
    snprintf(rm, sizeof rm, "%s/report.md", out);
    char *md = test_read_text(rm);
    assert_non_null(md);
    assert_non_null(strstr(md, "| glocal-local |"));
    assert_non_null(strstr(md, "| tvl1-ransac |"));
    /* no empty cell in the recognition table (the motion table may show – where a
     * method has no such output, e.g. no mask) */
    char *rec_start = strstr(md, "## Recognition"), *rec_end = strstr(md, "## Motion");
    assert_non_null(rec_start);
    assert_non_null(rec_end);
    *rec_end = 0;
    assert_null(strstr(rec_start, "–"));
    gl_free(md);
    /* every stream's confusion matrix is a PNG in figures/ (labelled by gnuplot
     * when it is installed, which scripts/deps does) */
    const char *streams[] = { "rgb", "tvl1-minus-homography", "glocal-local", "glocal-lme-residual" };
    for (int i = 0; i < 4; i++) {
        char png[800];
        snprintf(png, sizeof png, "%s/figures/confusion-%s.png", out, streams[i]);
        FILE *pf = fopen(png, "rb");
        assert_non_null(pf);
        unsigned char magic[8] = { 0 };
        assert_int_equal(fread(magic, 1, 8, pf), 8);
        fclose(pf);
        assert_memory_equal(magic, "\x89PNG\r\n\x1a\n", 8);
    }
    /* again: nothing runs */
    snprintf(log, sizeof log, "%s/run2.log", dir);
    assert_int_equal(sh(cmd, log), 0);
    text = test_read_text(log);
    assert_non_null(text);
    assert_null(strstr(text, " running\n"));
    assert_non_null(strstr(text, "skipped"));
    gl_free(text);
    /* a copied results folder keeps every finished stage */
    char moved[600], cmd4[2100];
    snprintf(moved, sizeof moved, "%s/tiny-copy", dir);
    snprintf(cmd4, sizeof cmd4, "cp -r '%s' '%s'", out, moved);
    assert_int_equal(system(cmd4), 0);
    snprintf(log, sizeof log, "%s/run4.log", dir);
    snprintf(cmd4, sizeof cmd4, "'%s' run '%s/tests/tiny.cfg' --out '%s'", GLOCAL_BINARY, GLOCAL_SOURCE_DIR, moved);
    assert_int_equal(sh(cmd4, log), 0);
    text = test_read_text(log);
    assert_non_null(text);
    assert_null(strstr(text, " running\n"));
    gl_free(text);
    /* --from fuse redoes fuse and what follows, nothing before it */
    snprintf(log, sizeof log, "%s/run3.log", dir);
    char cmd3[2100];
    snprintf(cmd3, sizeof cmd3, "%s --from fuse", cmd);
    assert_int_equal(sh(cmd3, log), 0);
    text = test_read_text(log);
    assert_non_null(strstr(text, "fuse-rgb+glocal-local        running"));
    assert_non_null(strstr(text, "train-glocal-local           done earlier"));
    gl_free(text);
}

/* A UCF-101 layout dir/NAME/ROOT: two real clips in their class folders (the
 * UCF-101 clip, and OpenCV's vtest cut standing in for a BabyCrawling clip) and
 * the sample split-1 lists (tests/data/README.md: the official format, 202
 * train and 103 test lines) as dir/NAME/LISTS, 2 of their 305 clips present. */
static void make_ucf_root(char *root, size_t n, const char *name, const char *root_rel, const char *lists_rel)
{
    char cmd[3000];
    snprintf(root, n, "%s/%s/%s", dir, name, root_rel);
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s/ApplyEyeMakeup' '%s/BabyCrawling' && "
             "ln -s '%s/ucf101/videos/v_ApplyEyeMakeup_g01_c01.avi' '%s/ApplyEyeMakeup/' && "
             "ln -s '%s/video/vtest_50.avi' '%s/BabyCrawling/v_BabyCrawling_g08_c01.avi' && "
             "ln -s '%s/ucf101/splits' '%s/%s/%s'",
             root, root, GLOCAL_DATA_DIR, root, GLOCAL_DATA_DIR, root, GLOCAL_DATA_DIR, dir, name, lists_rel);
    assert_int_equal(system(cmd), 0);
}

/* train-motion on mmaction2's UCF-101 layout (data/ucf101/videos and
 * data/ucf101/annotations), lists found without --lists, where only 2 of the
 * 202 train clips exist. */
static void test_train_motion_on_real_ucf_layout(void **state)
{
    (void)state;
    char root[600], cmd[3000], log[700];
    make_ucf_root(root, sizeof root, "ucf", "videos", "annotations");
    snprintf(log, sizeof log, "%s/ucf.log", dir);
    snprintf(cmd, sizeof cmd,
             "'%s' --threads 1 train-motion --dataset '%s' --out '%s/m' --steps 2 --pool 6 --batch 2 --size 32",
             GLOCAL_BINARY, root, dir);
    assert_int_equal(sh(cmd, log), 0);
    char *said = test_read_text(log);
    assert_non_null(said);
    char want[800];
    snprintf(want, sizeof want, "glocal train-motion: split lists from %s/../annotations\n", root);
    assert_non_null(strstr(said, want));
    gl_free(said);
    char ck[700];
    snprintf(ck, sizeof ck, "%s/m/glocal.h5", dir);
    assert_int_equal(access(ck, R_OK), 0);
    /* the same lists over a root without any of their videos: a clear error */
    snprintf(cmd, sizeof cmd,
             "'%s' --threads 1 train-motion --dataset '%s/m' --lists '%s/../annotations' --out '%s/m2' --steps 2",
             GLOCAL_BINARY, dir, root, dir);
    assert_int_equal(sh(cmd, log), 1);
    char *text = test_read_text(log);
    assert_non_null(text);
    assert_non_null(strstr(text, "none of the 202 clips of the train list exists"));
    gl_free(text);
}

/* SIGTERM to `glocal run` while the motion stage trains (the tiny config with
 * a million steps): the stage is stopped and not marked done, the exit status
 * is 143; the same command skips the data stage and resumes the motion stage. */
static void test_run_sigterm(void **state)
{
    (void)state;
    char cfg[600], out[512], log[600], started[700], done[700];
    snprintf(cfg, sizeof cfg, "%s/long.cfg", dir);
    char *tiny = test_read_text(GLOCAL_SOURCE_DIR "/tests/tiny.cfg");
    assert_non_null(tiny);
    char *steps = strstr(tiny, "steps = 4;");
    assert_non_null(steps);
    *steps = 0;
    char text[4096];
    snprintf(text, sizeof text, "%ssteps = 1000000;%s", tiny, steps + strlen("steps = 4;"));
    gl_free(tiny);
    OK(gl_write_file_atomic(cfg, text, strlen(text)));
    snprintf(out, sizeof out, "%s/sig", dir);
    snprintf(log, sizeof log, "%s/sig.log", dir);
    snprintf(started, sizeof started, "%s/stages/motion/log.txt", out);
    snprintf(done, sizeof done, "%s/stages/motion/stage.json", out);
    const char *args[] = { "run", cfg, "--out", out, NULL };
    for (int round = 0; round < 2; round++) {
        pid_t pid = test_spawn(GLOCAL_BINARY, log, 0, args, NULL, NULL);
        assert_true(pid > 0);
        /* the stage has started training: its handlers are in place */
        assert_true(test_wait_for_file(started, "training (steps)", 120));
        kill(pid, SIGTERM);
        assert_int_equal(test_wait_status(pid), 143);
        char *said = test_read_text(log);
        assert_non_null(said);
        if (!strstr(said, "stopped by signal 15 during stage motion")) fail_msg("%s", said);
        if (round == 1 && (!strstr(said, "glocal run: data                         done earlier") ||
                           !strstr(said, "glocal run: motion                       resuming")))
            fail_msg("no skip and resume in:\n%s", said);
        gl_free(said);
        assert_int_equal(access(done, F_OK), -1);
        /* the stage stopped on the signal (train-motion's own message), not killed by it */
        said = test_read_text(started);
        assert_non_null(said);
        assert_non_null(strstr(said, "add --resume to the same command"));
        gl_free(said);
        unlink(started); /* the next round waits for its own stage's start */
    }
}

/* glocal run on a UCF-101 layout with the lists beside the root, as the two
 * official archives unpack (README "UCF-101"): the lists are found, the
 * missing videos are recorded by extract, every stage still runs, the report
 * warns, exit status 1. Without lists anywhere: one error naming every place
 * looked, before any stage. */
static void test_run_on_real_ucf_layout(void **state)
{
    (void)state;
    char root[600], cfg[700], out[700], log[700], cmd[3000];
    make_ucf_root(root, sizeof root, "ucf-run", "UCF-101", "ucfTrainTestlist");
    snprintf(cfg, sizeof cfg, "%s/ucftiny.cfg", dir);
    FILE *f = fopen(cfg, "w");
    assert_non_null(f);
    fputs("name = \"ucftiny\";\n"
          "dataset = { kind = \"ucf101\"; split = 1; };\n"
          "extract = { size = \"32x32\"; };\n"
          "classifier = { arch = \"tiny\"; width = 8; epochs = 1; batch = 2; segments = 2; stack = 2;\n"
          "  size = \"24x24\"; decode = \"32x32\"; test_segments = 2; };\n"
          "sources = [ \"rgb\", \"rgbdiff\" ];\n"
          "fusions = ( { streams = [ \"rgb\", \"rgbdiff\" ]; } );\n", f);
    fclose(f);
    snprintf(out, sizeof out, "%s/ucf-out", dir);
    snprintf(log, sizeof log, "%s/ucf-run.log", dir);
    char bare[700];
    snprintf(bare, sizeof bare, "%s/bare", dir);
    assert_int_equal(gl_mkdirs(bare), 0);
    snprintf(cmd, sizeof cmd, "'%s' run '%s' --root '%s' --out '%s/bare-out'", GLOCAL_BINARY, cfg, bare, dir);
    assert_int_equal(sh(cmd, log), 1);
    char *said = test_read_text(log);
    assert_non_null(said);
    assert_non_null(strstr(said, "/bare/ucfTrainTestlist, "));
    assert_non_null(strstr(said, "/bare/../ucfTrainTestlist, "));
    assert_non_null(strstr(said, "/bare/../annotations or "));
    gl_free(said);
    /* --lists names a folder that is not there: a usage error naming it */
    snprintf(cmd, sizeof cmd, "'%s' run '%s' --root '%s' --lists '%s/nolists' --out '%s/bare-out'", GLOCAL_BINARY,
             cfg, bare, dir, dir);
    assert_int_equal(sh(cmd, log), 2);
    said = test_read_text(log);
    assert_non_null(said);
    assert_non_null(strstr(said, "--lists "));
    assert_non_null(strstr(said, "/nolists: No such file or directory"));
    gl_free(said);
    snprintf(cmd, sizeof cmd, "'%s' run '%s' --root '%s' --out '%s'", GLOCAL_BINARY, cfg, root, out);
    assert_int_equal(sh(cmd, log), 1);
    said = test_read_text(log);
    assert_non_null(said);
    snprintf(bare, sizeof bare, "glocal run: split lists from %s/../ucfTrainTestlist\n", root);
    assert_non_null(strstr(said, bare));
    gl_free(said);
    char rm[800];
    snprintf(rm, sizeof rm, "%s/report.md", out);
    char *md = test_read_text(rm);
    assert_non_null(md);
    assert_non_null(strstr(md, "## Warnings"));
    assert_non_null(strstr(md, "extract-rgbdiff: finished, but some items failed"));
    /* one test clip exists (ApplyEyeMakeup g01): every row is computed on it */
    assert_non_null(strstr(md, "| rgb | "));
    assert_non_null(strstr(md, " | 1 |\n"));
    gl_free(md);
}

static int setup(void **state)
{
    (void)state;
    return test_tmpdir_make(dir, sizeof dir, "glocal_test_experiments_");
}

static int teardown(void **state)
{
    (void)state;
    return test_tmpdir_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_configs_load),
        cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_dis_sources),
        cmocka_unit_test(test_canonical_and_keys),
        cmocka_unit_test(test_stage_markers_and_exec),
        cmocka_unit_test(test_stage_exec_passes_signals),
        cmocka_unit_test(test_teacher_confidence),
        cmocka_unit_test(test_teacher_truth),
        cmocka_unit_test(test_pairs_append),
        cmocka_unit_test(test_run_tiny_end_to_end),
        cmocka_unit_test(test_run_sigterm),
        cmocka_unit_test(test_train_motion_on_real_ucf_layout),
        cmocka_unit_test(test_run_on_real_ucf_layout),
    };
    return cmocka_run_group_tests_name("experiments", tests, setup, teardown);
}
