/* test_launch.c — `glocal launch` (experiments/cmd_launch.c): torchrun's
 * environment for every rank, output prefixed by rank, a failing or killed
 * rank making launch exit non-zero naming it and stop the others, signals
 * passed on; and train-motion under it ending where one process ends.
 * (nn/'s collectives themselves are test_dist.c's.) */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/testutil.h"

#include "motion/glocal.h"
#include "nn/nn.h"

static char tmpdir[256];

static int setup_dir(void **state)
{
    (void)state;
    return test_tmpdir_make(tmpdir, sizeof tmpdir, "test_launch_");
}

static int remove_dir(void **state)
{
    (void)state;
    return test_tmpdir_remove(tmpdir);
}

/* Runs a shell command line, returns its exit status, stdout+stderr in out. */
static int run_capture(const char *cmd, char *out, size_t n)
{
    char full[2048];
    snprintf(full, sizeof full, "{ %s; } 2>&1", cmd);
    fflush(NULL);
    FILE *f = popen(full, "r");
    assert_non_null(f);
    size_t len = fread(out, 1, n - 1, f);
    out[len] = 0;
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* glocal train-motion under `glocal launch -n 2` (each rank half of every
 * batch, gradients all-reduced) ends with the parameters of one process on the
 * whole batch; the model has no batch norm, so only float summation order
 * differs. The weights must also move between step 1 and step 4, or the
 * comparison proves nothing. */
static void test_train_motion_two_ranks(void **state)
{
    (void)state;
    static char out[65536];
    char cmd[2048], p0[512], p1[512], p2[512];
    const char *args = "train-motion --synth --size 32 --batch 4 --pool 16 --seed 3 --log-every 1";
    snprintf(p0, sizeof p0, "%s/tm0", tmpdir);
    snprintf(p1, sizeof p1, "%s/tm1", tmpdir);
    snprintf(p2, sizeof p2, "%s/tm2", tmpdir);
    snprintf(cmd, sizeof cmd, "'%s' --threads 1 %s --steps 1 --out '%s'", GLOCAL_BINARY, args, p0);
    assert_int_equal(run_capture(cmd, out, sizeof out), 0);
    snprintf(cmd, sizeof cmd, "'%s' --threads 1 %s --steps 4 --out '%s'", GLOCAL_BINARY, args, p1);
    assert_int_equal(run_capture(cmd, out, sizeof out), 0);
    snprintf(cmd, sizeof cmd, "'%s' launch -n 2 -- glocal %s --steps 4 --out '%s'", GLOCAL_BINARY, args, p2);
    if (run_capture(cmd, out, sizeof out) != 0) print_error("%s\n", out);
    assert_non_null(strstr(out, "data-parallel: 2 ranks"));
    glocal_model *m[3] = { NULL, NULL, NULL };
    const char *dirs[3] = { p0, p1, p2 };
    for (int k = 0; k < 3; k++) {
        char ck[600];
        snprintf(ck, sizeof ck, "%s/glocal.h5", dirs[k]);
        OK(glocal_model_load(&m[k], ck, NULL));
    }
    nn_params *a = glocal_model_params(m[0]), *b = glocal_model_params(m[1]), *c = glocal_model_params(m[2]);
    assert_int_equal(a->n, b->n);
    assert_int_equal(b->n, c->n);
    double moved = 0, diff = 0;
    for (int i = 0; i < b->n; i++) {
        double d;
        OK(nn_max_abs_diff(a->tensors[i], b->tensors[i], &d));
        if (d > moved) moved = d;
        OK(nn_max_abs_diff(b->tensors[i], c->tensors[i], &d));
        if (d > diff) diff = d;
    }
    assert_true(moved > 1e-4);
    assert_true(diff < 1e-5);
    for (int k = 0; k < 3; k++) glocal_model_free(&m[k]);
}

static void test_launch(void **state)
{
    (void)state;
    static char out[65536];
    char cmd[1024];
    /* Every rank gets torchrun's environment; output comes prefixed. */
    snprintf(cmd, sizeof cmd,
             "'%s' launch -n 3 -- sh -c 'echo env $RANK/$WORLD_SIZE/$LOCAL_RANK/$MASTER_ADDR'",
             GLOCAL_BINARY);
    assert_int_equal(run_capture(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "[rank 0] env 0/3/0/127.0.0.1\n"));
    assert_non_null(strstr(out, "[rank 1] env 1/3/1/127.0.0.1\n"));
    assert_non_null(strstr(out, "[rank 2] env 2/3/2/127.0.0.1\n"));

    /* `glocal` means this binary, with --threads 1 added. */
    snprintf(cmd, sizeof cmd, "'%s' launch -n 1 -- glocal info", GLOCAL_BINARY);
    assert_int_equal(run_capture(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "[rank 0] threads    1 (intra-op)"));

    /* End to end: launch -> environment -> nn_dist_init_from_env -> Gloo;
     * dist-check compares every collective with its known result. */
    snprintf(cmd, sizeof cmd, "'%s' launch -n 2 -- glocal dist-check --mb 0.25 --iters 1", GLOCAL_BINARY);
    assert_int_equal(run_capture(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "[rank 1] rank 1 of 2 (local rank 1)"));
    assert_non_null(strstr(out, "[rank 0] dist-check: ok, 2 ranks"));

    /* Rank 1 fails: launch exits with its status, names it, and stops rank 0
     * (which would otherwise sleep for 60 s). Rank 0 says what ended its
     * sleep; rank 1 fails only once rank 0 is listening for SIGTERM (its pid
     * file is written after the trap), so nothing here depends on timing: a
     * launch that never stopped rank 0 would print "slept 60 s", and one that
     * hung is stopped by ctest's timeout. */
    char pidfile[512];
    snprintf(pidfile, sizeof pidfile, "%s/rank0.pid", tmpdir);
    snprintf(cmd, sizeof cmd,
             "'%s' launch -n 2 --grace 5 -- sh -c 'p=%s; if [ \"$RANK\" = 1 ]; then "
             "while [ ! -s $p ]; do sleep 0.05; done; echo bad input >&2; exit 3; fi; "
             "trap \"kill \\$!; echo stopped by SIGTERM; exit 143\" TERM; sleep 60 & "
             "echo $$ > $p.tmp; mv $p.tmp $p; wait $!; echo slept 60 s'",
             GLOCAL_BINARY, pidfile);
    assert_int_equal(run_capture(cmd, out, sizeof out), 3);
    assert_non_null(strstr(out, "[rank 1] bad input"));
    assert_non_null(strstr(out, "glocal launch: rank 1 (pid "));
    assert_non_null(strstr(out, "exited with status 3; stopping the other 1 rank\n"));
    assert_non_null(strstr(out, "[rank 0] stopped by SIGTERM\n"));
    assert_null(strstr(out, "slept 60 s"));
    assert_null(strstr(out, "still running after")); /* SIGTERM was enough: no SIGKILL */
    assert_non_null(strstr(out, "rank 1 of 2 exited with status 3"));
    void *pdata = NULL;
    size_t psize = 0;
    OK(gl_read_file(pidfile, &pdata, &psize));
    int pid = atoi(pdata);
    gl_free(pdata);
    assert_true(pid > 0);
    assert_int_equal(kill(pid, 0), -1); /* gone */
    assert_int_equal(errno, ESRCH);

    /* A rank killed by a signal counts as failed too. */
    snprintf(cmd, sizeof cmd,
             "'%s' launch -n 2 -- sh -c 'if [ \"$RANK\" = 0 ]; then kill -9 $$; fi; exec sleep 60'",
             GLOCAL_BINARY);
    assert_int_equal(run_capture(cmd, out, sizeof out), 128 + 9);
    assert_non_null(strstr(out, "rank 0 of 2 was killed by signal 9"));

    /* SIGTERM to launch reaches every rank (sent once both are running). */
    snprintf(cmd, sizeof cmd,
             "d='%s'; '%s' launch -n 2 -- sh -c 'echo $$ > '$d'/sig$RANK; exec sleep 60' & lp=$!; "
             "i=0; while [ ! -s $d/sig0 ] || [ ! -s $d/sig1 ]; do sleep 0.1; i=$((i+1)); "
             "[ $i -gt 300 ] && break; done; kill -TERM $lp; wait $lp",
             tmpdir, GLOCAL_BINARY);
    assert_int_equal(run_capture(cmd, out, sizeof out), 128 + 15);
    assert_non_null(strstr(out, "got signal 15"));
    for (int r = 0; r < 2; r++) {
        snprintf(pidfile, sizeof pidfile, "%s/sig%d", tmpdir, r);
        OK(gl_read_file(pidfile, &pdata, &psize));
        pid = atoi(pdata);
        gl_free(pdata);
        assert_true(pid > 0);
        /* launch waited for it, so it is gone, not a zombie of ours. */
        assert_int_equal(kill(pid, 0), -1);
    }

    /* Usage error. */
    snprintf(cmd, sizeof cmd, "'%s' launch -n 2", GLOCAL_BINARY);
    assert_int_equal(run_capture(cmd, out, sizeof out), 2);
    assert_non_null(strstr(out, "no command"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_launch),
        cmocka_unit_test(test_train_motion_two_ranks),
    };
    return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
