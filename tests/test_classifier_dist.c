/* test_classifier_dist.c — data-parallel cls_train (recognition/classifier.h
 * with an nn_dist from nn/nn.h: Gloo over loopback, 2 forked ranks).
 *
 * Independent truth. 2 ranks, each loading its half of every batch
 * (loader rank/world), must end with the parameters of ONE process that
 * takes each step on the combined batch. The classifier has batch norm,
 * which data parallelism keeps per rank (DDP's default), so the one-process
 * reference is not "a forward on all 4 clips" but what per-rank statistics
 * mean: per step, the forward/backward of each half (the clips at even and
 * at odd positions of the one-rank loader's batch) with its own batch
 * statistics, loss scaled by 1/2 and gradients accumulated, then the same
 * clipping and SGD-momentum step. The reference is written here from those
 * definitions (its own loader, optimizer and loop, no cls_train); the
 * clipping threshold is low enough to engage, so the gradient must be
 * averaged BEFORE clipping. Also: both ranks end bit-identical; a run of 1
 * epoch resumed by both ranks from rank 0's checkpoint ends where the
 * 2-epoch run ends; only rank 0 writes the checkpoint and the log; a global
 * batch that the ranks cannot share is refused; a non-finite loss on one
 * rank stops both at the same step. And `glocal launch -n 2 -- glocal
 * train-classifier` end to end (rank 0 alone reports and logs; --resume).
 *
 * Ranks are fork()ed children; the parent never touches libtorch (a child
 * forked after OpenMP started could hang). */
#include <math.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "recognition/classifier.h"
#include "tests/testutil.h"

enum { COUNT = 8, SEG = 2, CH = 3, HW = 8, CLASSES = 3, BATCH = 4, EPOCHS = 2 };
#define SAMPLE ((size_t)SEG * CH * HW * HW)
#define LR 0.05
#define CLIP 0.05
#define SEED 7

static char tmpdir[256];

static int setup_dir(void **state)
{
    (void)state;
    return test_tmpdir_make(tmpdir, sizeof tmpdir, "test_cls_dist_");
}

static int remove_dir(void **state)
{
    (void)state;
    return test_tmpdir_remove(tmpdir);
}

/* ---- child side: CHECK / COK from testutil.h, no cmocka asserts ---- */

static void path_of(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", tmpdir, name); }

/* Clips of noise, class-dependent mean (deterministic). */
static void make_data(float *data, int32_t *labels)
{
    uint64_t s = 12345;
    for (long i = 0; i < COUNT; i++) {
        labels[i] = (int32_t)(i % CLASSES);
        for (size_t k = 0; k < SAMPLE; k++) data[i * SAMPLE + k] = (float)(loader_rand(&s) - 0.5 + 0.3 * labels[i]);
    }
}

static int new_model(classifier **c, uint64_t init_seed)
{
    classifier_config cc;
    int rc = classifier_config_preset("tiny", CH, CLASSES, &cc);
    if (rc < 0) return rc;
    cc.dropout = 0;
    nn_manual_seed(init_seed);
    return classifier_new(c, &cc);
}

static cls_train_config train_config(void)
{
    cls_train_config tc = cls_train_config_default();
    tc.opt.lr = LR;
    tc.schedule = NN_LR_CONSTANT;
    tc.clip_grad = CLIP;
    tc.epochs = EPOCHS;
    tc.seed = SEED;
    tc.batch_size = BATCH;
    tc.threads = 1;
    return tc;
}

static int count_steps(void *ctx, const cls_train_status *s)
{
    if (!s->end_of_epoch) ++*(int *)ctx;
    return 0;
}

static int rank_main(int rank, int world, int port)
{
    nn_runtime_init(1, "cpu");
    nn_dist *d = NULL;
    nn_dist_options o = nn_dist_options_default();
    o.timeout_s = 20;
    COK(nn_dist_init(&d, rank, world, rank, "127.0.0.1", port, &o));
    float *data = malloc(COUNT * SAMPLE * sizeof *data);
    int32_t labels[COUNT];
    CHECK(data != NULL, "memory");
    make_data(data, labels);
    int64_t shape[4] = { SEG, CH, HW, HW };
    loader_source src;
    COK(loader_source_memory(&src, data, labels, COUNT, shape, 4, NULL, NULL));
    char full[512], part[512], logp[512], mine[512];
    path_of(full, sizeof full, "full.h5");
    path_of(part, sizeof part, "part.h5");
    path_of(logp, sizeof logp, "train.jsonl");
    snprintf(mine, sizeof mine, "%s/rank%d.h5", tmpdir, rank);

    /* a different init on each rank: broadcast must give all rank 0's */
    classifier *c = NULL;
    COK(new_model(&c, 100 + (uint64_t)rank));
    cls_train_config tc = train_config();
    tc.dist = d;
    tc.checkpoint = full;
    tc.log_path = logp;
    int steps = 0;
    COK(cls_train(c, &src, &tc, count_steps, &steps));
    CHECK(steps == EPOCHS * COUNT / BATCH, "steps %d", steps);
    COK(nn_checkpoint_save(mine, classifier_params(c), &(nn_checkpoint_meta){ .step = steps }));
    classifier_free(&c);

    /* one epoch, then every rank resumes from rank 0's checkpoint */
    COK(new_model(&c, 100 + (uint64_t)rank)); /* same start as the full run */
    tc.checkpoint = part;
    tc.log_path = NULL;
    tc.epochs = 1;
    COK(cls_train(c, &src, &tc, NULL, NULL));
    classifier_free(&c);
    COK(new_model(&c, 300 + (uint64_t)rank));
    tc.epochs = EPOCHS;
    tc.resume = part;
    COK(cls_train(c, &src, &tc, NULL, NULL));
    classifier_free(&c);

    /* a global batch the ranks cannot share */
    COK(new_model(&c, 1));
    tc = train_config();
    tc.dist = d;
    tc.batch_size = 3;
    CHECK(cls_train(c, &src, &tc, NULL, NULL) == GL_EINVAL, "odd global batch accepted");
    CHECK(strstr(gl_last_error(), "multiple of the 2 ranks") != NULL, "message");
    classifier_free(&c);

    /* a clip of NaNs reaches one rank: both stop at the same step, the other
     * rank saying the loss went bad elsewhere (no hang) */
    loader_source_free(&src);
    data[5 * SAMPLE] = NAN;
    COK(loader_source_memory(&src, data, labels, COUNT, shape, 4, NULL, NULL));
    COK(new_model(&c, 1));
    tc = train_config();
    tc.dist = d;
    CHECK(cls_train(c, &src, &tc, NULL, NULL) == GL_ENUMERIC, "NaN input did not stop training");
    char nanp[512];
    snprintf(nanp, sizeof nanp, "%s/nan%d.txt", tmpdir, rank);
    const char *msg = gl_last_error();
    COK(gl_write_file_atomic(nanp, msg, strlen(msg)));
    classifier_free(&c);

    loader_source_free(&src);
    free(data);
    nn_dist_free(&d);
    return 0;
}

/* The one-process reference (see the header comment). */
static int reference_main(void)
{
    nn_runtime_init(1, "cpu");
    float *data = malloc(COUNT * SAMPLE * sizeof *data);
    float *half = malloc(BATCH / 2 * SAMPLE * sizeof *half);
    int32_t labels[COUNT];
    CHECK(data && half, "memory");
    make_data(data, labels);
    int64_t shape[4] = { SEG, CH, HW, HW };
    loader_source src;
    COK(loader_source_memory(&src, data, labels, COUNT, shape, 4, NULL, NULL));
    classifier *c = NULL;
    COK(new_model(&c, 100)); /* rank 0's init */
    nn_params *p = classifier_params(c);
    cls_train_config tc = train_config();
    nn_optimizer *opt = NULL;
    COK(nn_optimizer_new(&opt, p, &tc.opt));
    loader_config lc = loader_config_default();
    lc.batch_size = BATCH;
    lc.threads = 1;
    lc.seed = SEED;
    lc.drop_last = 1;
    lc.epochs = EPOCHS;
    loader *ld = NULL;
    COK(loader_open(&ld, &src, &lc));
    int steps = 0, eofs = 0;
    for (;;) {
        const loader_batch *b;
        int rc = loader_next(ld, &b);
        CHECK(rc >= 0, "loader");
        if (rc == GL_EOF) {
            if (++eofs == EPOCHS) break;
            continue;
        }
        CHECK(b->n == BATCH, "batch of %d", b->n);
        COK(nn_optimizer_zero_grad(opt));
        COK(nn_optimizer_set_lr(opt, LR));
        for (int h = 0; h < 2; h++) { /* the clips at positions h, h + 2 */
            int64_t y64[BATCH / 2];
            for (int j = 0; j < BATCH / 2; j++) {
                memcpy(half + j * SAMPLE, b->data + (size_t)(2 * j + h) * SAMPLE, SAMPLE * sizeof *half);
                y64[j] = b->labels[2 * j + h];
            }
            nn_scope *sc = NULL;
            COK(nn_scope_begin(&sc));
            nn_tensor *x, *y, *logits, *loss, *scaled;
            int64_t xs[5] = { BATCH / 2, SEG, CH, HW, HW }, ys[1] = { BATCH / 2 };
            int ok = nn_from_data(&x, half, xs, 5, NN_F32) == 0 && nn_from_data(&y, y64, ys, 1, NN_I64) == 0 &&
                     classifier_forward(&logits, c, x, 1) == 0 && nn_cross_entropy(&loss, logits, y, 0) == 0 &&
                     nn_mul_scalar(&scaled, loss, 0.5) == 0 && nn_backward(scaled) == 0;
            nn_scope_end(&sc);
            CHECK(ok, "reference step %d half %d", steps, h);
        }
        double gnorm = 0;
        COK(nn_clip_grad_norm(p, CLIP, &gnorm));
        CHECK(gnorm > CLIP, "gradient norm %g does not reach the clip %g: the test would not see clipping order", gnorm, CLIP);
        COK(nn_optimizer_step(opt));
        steps++;
    }
    loader_close(&ld);

    /* compare the trainable tensors with what the ranks saved */
    const char *files[4] = { "full.h5", "rank0.h5", "rank1.h5", "part.h5" };
    classifier *got[4] = { NULL };
    for (int f = 0; f < 4; f++) {
        char path[512];
        path_of(path, sizeof path, files[f]);
        COK(new_model(&got[f], 999));
        COK(nn_checkpoint_load(path, classifier_params(got[f]), NULL, NULL, NULL));
    }
    classifier *init = NULL;
    COK(new_model(&init, 100));
    double moved = 0;
    for (int i = 0; i < p->n; i++) {
        if (p->is_buffer[i]) continue;
        double diff, mv;
        /* 1 rank (reference) vs 2 ranks: float summation order only */
        COK(nn_max_abs_diff(p->tensors[i], classifier_params(got[0])->tensors[i], &diff));
        CHECK(diff < 2e-5, "%s differs from the one-process reference by %g", p->names[i], diff);
        COK(nn_max_abs_diff(p->tensors[i], classifier_params(init)->tensors[i], &mv));
        if (mv > moved) moved = mv;
        /* both ranks hold the same values; rank 0's checkpoint is rank 0's */
        CHECK(nn_equal(classifier_params(got[1])->tensors[i], classifier_params(got[2])->tensors[i]) == 1,
              "%s: ranks differ", p->names[i]);
        CHECK(nn_equal(classifier_params(got[0])->tensors[i], classifier_params(got[1])->tensors[i]) == 1,
              "%s: checkpoint is not rank 0's", p->names[i]);
        /* 1 epoch + resume on both ranks = 2 epochs straight */
        COK(nn_max_abs_diff(classifier_params(got[3])->tensors[i], classifier_params(got[0])->tensors[i], &diff));
        CHECK(diff < 1e-6, "%s: resumed run differs by %g", p->names[i], diff);
    }
    CHECK(steps == EPOCHS * COUNT / BATCH, "reference took %d steps", steps);
    CHECK(moved > 1e-3, "training barely moved the parameters (%g): the comparison would be vacuous", moved);
    for (int f = 0; f < 4; f++) classifier_free(&got[f]);
    classifier_free(&init);
    classifier_free(&c);
    nn_optimizer_free(&opt);
    loader_source_free(&src);
    free(data);
    free(half);
    return 0;
}

static int wait_all(pid_t *pids, int n, double deadline_s, int *status)
{
    double t0 = gl_now();
    int left = n;
    while (left > 0) {
        for (int r = 0; r < n; r++) {
            if (pids[r] <= 0) continue;
            if (waitpid(pids[r], &status[r], WNOHANG) == pids[r]) {
                pids[r] = 0;
                left--;
            }
        }
        if (left > 0 && gl_now() - t0 > deadline_s) {
            for (int r = 0; r < n; r++)
                if (pids[r] > 0) kill(pids[r], SIGKILL), waitpid(pids[r], NULL, 0);
            return -1;
        }
        struct timespec ts = { 0, 20 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    return 0;
}

static void test_two_ranks_match_one_process(void **state)
{
    (void)state;
    int port = test_free_port();
    pid_t pids[2];
    int status[2] = { -1, -1 };
    fflush(NULL);
    for (int r = 0; r < 2; r++) {
        pids[r] = fork();
        assert_true(pids[r] >= 0);
        if (pids[r] == 0) {
            int rc = rank_main(r, 2, port);
            fflush(NULL);
            _exit(rc);
        }
    }
    if (wait_all(pids, 2, 120, status) < 0) fail_msg("ranks still running after 120 s: a collective hangs");
    for (int r = 0; r < 2; r++)
        if (!WIFEXITED(status[r]) || WEXITSTATUS(status[r]) != 0)
            fail_msg("rank %d ended with status 0x%x (see its message above)", r, status[r]);
    /* only rank 0 wrote: the log has one line per epoch, and no rank file is missing */
    char path[512], *text = NULL;
    size_t n = 0;
    path_of(path, sizeof path, "train.jsonl");
    assert_int_equal(gl_read_file(path, (void **)&text, &n), 0);
    int lines = 0;
    for (size_t i = 0; i < n; i++) lines += text[i] == '\n';
    assert_int_equal(lines, EPOCHS);
    assert_non_null(strstr(text, "{\"epoch\": 2, \"step\": 4,"));
    gl_free(text);
    /* the NaN run: both ranks stopped at the same step, one of them because of the other */
    char m[2][1024];
    for (int r = 0; r < 2; r++) {
        snprintf(path, sizeof path, "%s/nan%d.txt", tmpdir, r);
        assert_int_equal(gl_read_file(path, (void **)&text, &n), 0);
        if (n > sizeof m[r] - 1) n = sizeof m[r] - 1;
        memcpy(m[r], text, n);
        m[r][n] = 0;
        gl_free(text);
        assert_non_null(strstr(m[r], "training diverged"));
    }
    assert_int_equal((strstr(m[0], "on another of the 2 ranks") != NULL) + (strstr(m[1], "on another of the 2 ranks") != NULL), 1);
    const char *s0 = strstr(m[0], " at step "), *s1 = strstr(m[1], " at step ");
    assert_non_null(s0);
    assert_non_null(s1);
    assert_int_equal(atol(s0 + 9), atol(s1 + 9));

    pid_t ref = fork();
    assert_true(ref >= 0);
    if (ref == 0) {
        int rc = reference_main();
        fflush(NULL);
        _exit(rc);
    }
    int st = -1;
    if (wait_all(&ref, 1, 120, &st) < 0) fail_msg("reference still running after 120 s");
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg("reference check failed (status 0x%x, see above)", st);
}

/* Runs a shell command; its whole output (up to n-1 bytes) into out; the exit status. */
static int run_capture(const char *cmd, char *out, size_t n)
{
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t k = 0;
    int ch;
    while ((ch = fgetc(p)) != EOF)
        if (k + 1 < n) out[k++] = (char)ch;
    out[k] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int count_lines(const char *path)
{
    char *text = NULL;
    size_t n = 0;
    if (gl_read_file(path, (void **)&text, &n) < 0) return -1;
    int lines = 0;
    for (size_t i = 0; i < n; i++) lines += text[i] == '\n';
    gl_free(text);
    return lines;
}

/* The command under `glocal launch -n 2`: trains data-parallel, rank 0 alone
 * prints the checkpoint and writes the log, both ranks resume from it, and a
 * global batch the ranks cannot share is a usage error naming the rule. */
static void test_launch_train_classifier(void **state)
{
    (void)state;
    static char cmd[4096], out[65536];
    const char *g = GLOCAL_BINARY;
    snprintf(cmd, sizeof cmd, "%s --threads 1 synth --out %s/data --classes 2 --clips-per-class 4 --frames 8 --size 32x32 "
             "--camera none --supersample 1 >/dev/null 2>&1", g, tmpdir);
    assert_int_equal(system(cmd), 0);
    const char *opts = "--arch tiny --size 16x16 --decode 32x32 --segments 2 --batch 2 --lr 0.01 --workers 1";
    snprintf(cmd, sizeof cmd, "%s launch -n 2 -- %s train-classifier --data %s/data --out %s/run %s --epochs 1 2>&1",
             g, g, tmpdir, tmpdir, opts);
    int rc = run_capture(cmd, out, sizeof out);
    if (rc != 0) fail_msg("launch exited %d:\n%s", rc, out);
    assert_non_null(strstr(out, "[rank 0] glocal train-classifier: 2 ranks (gloo), 1 clips per rank per batch"));
    assert_non_null(strstr(out, "/run/checkpoint.h5\n"));
    assert_null(strstr(out, "[rank 1] glocal train-classifier: rgb stream"));
    assert_null(strstr(out, "[rank 1] epoch"));
    char path[512];
    snprintf(path, sizeof path, "%s/run/train.jsonl", tmpdir);
    assert_int_equal(count_lines(path), 1);
    snprintf(cmd, sizeof cmd, "%s launch -n 2 -- %s train-classifier --data %s/data --out %s/run %s --epochs 2 --resume 2>&1",
             g, g, tmpdir, tmpdir, opts);
    rc = run_capture(cmd, out, sizeof out);
    if (rc != 0) fail_msg("resumed launch exited %d:\n%s", rc, out);
    assert_int_equal(count_lines(path), 2);
    snprintf(cmd, sizeof cmd, "%s launch -n 2 -- %s train-classifier --data %s/data --out %s/odd --arch tiny --batch 3 2>&1",
             g, g, tmpdir, tmpdir);
    rc = run_capture(cmd, out, sizeof out);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "multiple of the 2 ranks"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_two_ranks_match_one_process, setup_dir, remove_dir),
        cmocka_unit_test_setup_teardown(test_launch_train_classifier, setup_dir, remove_dir),
    };
    return cmocka_run_group_tests_name("classifier_dist", tests, NULL, NULL);
}
