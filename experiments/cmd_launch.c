/* glocal launch — run N copies of a command on this machine as the ranks of
 * one distributed job, with torchrun's environment (nn.h, "distributed
 * data-parallel"). Like torchrun --standalone: one rendezvous on 127.0.0.1,
 * and when a rank fails the others are stopped and the launch fails. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "experiments/cli.h"
#include "experiments/commands.h"
#include "nn/base.h"

GLOCAL_COMMAND(launch, "launch", "run N local ranks of a distributed command (torchrun-style environment)")

extern char **environ;

typedef struct {
    int fd;              /* -1 when closed */
    int out_fd;          /* 1 or 2 */
    char buf[65536];
    size_t len;
} launch_stream;

typedef struct {
    pid_t pid;           /* 0 once reaped */
    int status;
    launch_stream out, err;
} launch_rank;

static volatile sig_atomic_t launch_signal;

static void launch_on_signal(int sig) { launch_signal = sig; }

/* A port the kernel considers free on 127.0.0.1 right now. Another process may
 * take it before rank 0 binds it; rank 0 then fails with a clear message and
 * --port picks one explicitly. */
static int launch_free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) return gl_error(GL_ESYSTEM, "socket: %s", strerror(errno));
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t n = sizeof a;
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || getsockname(s, (struct sockaddr *)&a, &n) < 0) {
        int e = errno;
        close(s);
        return gl_error(GL_ESYSTEM, "cannot find a free port on 127.0.0.1: %s", strerror(e));
    }
    close(s);
    return ntohs(a.sin_port);
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return; /* our own output is gone (EPIPE): nothing useful to do */
        }
        p += w;
        n -= (size_t)w;
    }
}

static void emit_line(int rank, int fd, const char *p, size_t n)
{
    char pre[32];
    int k = snprintf(pre, sizeof pre, "[rank %d] ", rank);
    write_all(fd, pre, (size_t)k);
    write_all(fd, p, n);
    if (n == 0 || p[n - 1] != '\n') write_all(fd, "\n", 1);
}

/* Reads what is available; emits whole lines (all of it at EOF). */
static void stream_pump(launch_stream *s, int rank)
{
    ssize_t r;
    for (;;) {
        r = read(s->fd, s->buf + s->len, sizeof s->buf - s->len);
        if (r < 0 && errno == EINTR) continue;
        break;
    }
    if (r > 0) s->len += (size_t)r;
    size_t start = 0;
    for (size_t i = 0; i < s->len; i++) {
        if (s->buf[i] != '\n') continue;
        emit_line(rank, s->out_fd, s->buf + start, i + 1 - start);
        start = i + 1;
    }
    if (start == 0 && s->len == sizeof s->buf) start = s->len, emit_line(rank, s->out_fd, s->buf, s->len);
    memmove(s->buf, s->buf + start, s->len - start);
    s->len -= start;
    if (r == 0 || (r < 0 && errno != EAGAIN)) {
        if (s->len) emit_line(rank, s->out_fd, s->buf, s->len);
        s->len = 0;
        close(s->fd);
        s->fd = -1;
    }
}

/* Does the glocal command line (after the program name) give --threads
 * before its subcommand? */
static int gives_threads(char **args, int n)
{
    for (int i = 0; i < n; i++) {
        const char *a = args[i];
        if (!strcmp(a, "--threads") || !strncmp(a, "--threads=", 10)) return 1;
        if (!strcmp(a, "--device")) { i++; continue; }
        if (a[0] != '-') return 0; /* the subcommand */
    }
    return 0;
}

/* The environment of one rank: ours without the variables we set, plus them. */
static char **rank_environment(int rank, int world, int port)
{
    static const char *keys[] = { "RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE",
                                  "MASTER_ADDR", "MASTER_PORT", "GROUP_RANK" };
    const int nk = (int)(sizeof keys / sizeof keys[0]);
    int n = 0;
    while (environ[n]) n++;
    char **env = gl_calloc((size_t)n + (size_t)nk + 1, sizeof *env);
    if (!env) return NULL;
    int m = 0;
    for (int i = 0; i < n; i++) {
        int ours = 0;
        for (int k = 0; k < nk; k++) {
            size_t l = strlen(keys[k]);
            if (!strncmp(environ[i], keys[k], l) && environ[i][l] == '=') ours = 1;
        }
        if (!ours) env[m++] = environ[i];
    }
    char vals[7][64];
    snprintf(vals[0], 64, "RANK=%d", rank);
    snprintf(vals[1], 64, "LOCAL_RANK=%d", rank);
    snprintf(vals[2], 64, "WORLD_SIZE=%d", world);
    snprintf(vals[3], 64, "LOCAL_WORLD_SIZE=%d", world);
    snprintf(vals[4], 64, "MASTER_ADDR=127.0.0.1");
    snprintf(vals[5], 64, "MASTER_PORT=%d", port);
    snprintf(vals[6], 64, "GROUP_RANK=0");
    int first_owned = m;
    for (int k = 0; k < nk; k++) {
        env[m] = gl_strdup(vals[k]);
        if (!env[m]) {
            for (int j = first_owned; j < m; j++) gl_free(env[j]);
            gl_free(env);
            return NULL;
        }
        m++;
    }
    env[m] = NULL;
    return env;
}

static void free_environment(char **env)
{
    if (!env) return;
    int n = 0;
    while (env[n]) n++;
    for (int i = n - 7; i < n; i++) gl_free(env[i]); /* the 7 we added, last */
    gl_free(env);
}

static void describe_status(char *buf, size_t n, int status)
{
    if (WIFEXITED(status)) snprintf(buf, n, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status)) snprintf(buf, n, "was killed by signal %d (%s)", WTERMSIG(status),
                                           strsignal(WTERMSIG(status)));
    else snprintf(buf, n, "stopped (status 0x%x)", status);
}

/* A pipe whose ends other ranks do not inherit (pipe2 is a GNU extension). */
static int launch_pipe(int p[2])
{
    if (pipe(p) < 0) return -1;
    fcntl(p[0], F_SETFD, FD_CLOEXEC);
    fcntl(p[1], F_SETFD, FD_CLOEXEC);
    return 0;
}

static void signal_all(launch_rank *r, int n, int sig)
{
    for (int i = 0; i < n; i++)
        if (r[i].pid > 0) kill(r[i].pid, sig);
}

/* The signals passed on to the ranks. */
static const int launch_sigs[4] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };

/* One launch: the ranks' command and environments, the ranks, and how the
 * job is ending. */
typedef struct {
    int nr, prefix;             /* ranks; --no-prefix clears prefix */
    double grace;               /* --grace, seconds */
    char **cargv;               /* the ranks' argv */
    char **envs[256];           /* each rank's environment */
    launch_rank *ranks;
    struct pollfd *pfd;         /* room for 2 nr */
    int started, live;          /* ranks forked, ranks not yet reaped */
    int failed_rank;            /* the first rank that failed, -1 if none */
    int failed_status;          /* its wait status; -1: it could not be started */
    int forwarded;              /* the last signal passed on to the ranks, 0 if none */
    double kill_at;             /* gl_now() after which SIGKILL follows SIGTERM; -1: none due */
    double drain_until;         /* gl_now() until which the pipes are read after the last exit */
    struct sigaction old[4], old_pipe;
    char self[4096];            /* this binary, for `glocal` */
    char threads_arg[32];
} launch_job;

/* The ranks' argv from args[0..nargs-1] (COMMAND ARGS...): `glocal` becomes
 * this binary, plus --threads unless the command gives it. CLI_OK, or
 * CLI_FAIL after saying why. */
static int launch_child_argv(launch_job *j, const char *cmd, char **args, int nargs)
{
    j->cargv = gl_calloc((size_t)nargs + 4, sizeof *j->cargv);
    if (!j->cargv) return cli_fail(cmd, GL_ENOMEM, "out of memory");
    const char *prog = args[0];
    const char *base = strrchr(prog, '/') ? strrchr(prog, '/') + 1 : prog;
    int is_glocal = !strcmp(base, "glocal");
    int k = 0;
    if (is_glocal) {
        ssize_t l = readlink("/proc/self/exe", j->self, sizeof j->self - 1);
        if (l <= 0)
            return cli_fail(cmd, GL_ESYSTEM, "cannot find this glocal binary (/proc/self/exe: %s)",
                            strerror(errno));
        j->self[l] = 0;
        j->cargv[k++] = j->self;
        if (!gives_threads(args + 1, nargs - 1)) {
            snprintf(j->threads_arg, sizeof j->threads_arg, "%d", cli_g.threads > 0 ? cli_g.threads : 1);
            j->cargv[k++] = "--threads";
            j->cargv[k++] = j->threads_arg;
        }
        for (int i = 1; i < nargs; i++) j->cargv[k++] = args[i];
    } else {
        for (int i = 0; i < nargs; i++) j->cargv[k++] = args[i];
    }
    j->cargv[k] = NULL;
    return CLI_OK;
}

/* The ranks' table and environments. CLI_OK, or CLI_FAIL (out of memory, said). */
static int launch_ranks_new(launch_job *j, const char *cmd, int port)
{
    j->ranks = gl_calloc((size_t)j->nr, sizeof *j->ranks);
    j->pfd = gl_calloc(2 * (size_t)j->nr, sizeof *j->pfd);
    if (!j->ranks || !j->pfd) return cli_fail(cmd, GL_ENOMEM, "out of memory");
    for (int r = 0; r < j->nr; r++) {
        j->ranks[r].out.fd = j->ranks[r].err.fd = -1;
        j->ranks[r].out.out_fd = STDOUT_FILENO;
        j->ranks[r].err.out_fd = STDERR_FILENO;
        if (!(j->envs[r] = rank_environment(r, j->nr, port))) return cli_fail(cmd, GL_ENOMEM, "out of memory");
    }
    return CLI_OK;
}

static void launch_job_free(launch_job *j)
{
    for (int r = 0; r < j->nr && r < 256; r++) free_environment(j->envs[r]);
    gl_free(j->pfd);
    gl_free(j->ranks);
    gl_free(j->cargv);
}

/* Our handler for the forwarded signals, SIGPIPE ignored; the old actions
 * kept for the ranks and for launch_signals_restore. */
static void launch_signals_catch(launch_job *j)
{
    struct sigaction sa = { 0 };
    sa.sa_handler = launch_on_signal;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < 4; i++) sigaction(launch_sigs[i], &sa, &j->old[i]);
    struct sigaction ign = { 0 };
    ign.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ign, &j->old_pipe);
}

static void launch_signals_restore(const launch_job *j)
{
    for (int i = 0; i < 4; i++) sigaction(launch_sigs[i], &j->old[i], NULL);
    sigaction(SIGPIPE, &j->old_pipe, NULL);
}

/* The child of rank r, after fork: only async-signal-safe calls until exec.
 * Its own process group keeps a terminal's Ctrl-C from reaching it twice (we
 * forward it); PDEATHSIG stops it if launch itself is killed. */
_Noreturn static void launch_exec_rank(const launch_job *j, int r, pid_t parent, const int po[2], const int pe[2],
                                       const sigset_t *prev_mask)
{
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);
    for (int i = 0; i < 4; i++) sigaction(launch_sigs[i], &j->old[i], NULL);
    sigaction(SIGPIPE, &j->old_pipe, NULL);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, STDIN_FILENO);
    if (j->prefix) {
        dup2(po[1], STDOUT_FILENO);
        dup2(pe[1], STDERR_FILENO);
    }
    environ = j->envs[r];
    sigprocmask(SIG_SETMASK, prev_mask, NULL);
    execvp(j->cargv[0], j->cargv);
    const char *m1 = "glocal launch: cannot run ";
    write_all(STDERR_FILENO, m1, strlen(m1));
    write_all(STDERR_FILENO, j->cargv[0], strlen(j->cargv[0]));
    write_all(STDERR_FILENO, "\n", 1);
    _exit(127);
}

/* Forks rank r (with its output pipes unless --no-prefix). 0, or -1 after
 * saying why it could not. */
static int launch_start_rank(launch_job *j, int r, pid_t me, const sigset_t *fwd)
{
    int po[2] = { -1, -1 }, pe[2] = { -1, -1 };
    sigset_t prev_mask;
    if (j->prefix && (launch_pipe(po) < 0 || launch_pipe(pe) < 0)) {
        if (po[0] >= 0) close(po[0]), close(po[1]);
        fprintf(stderr, "glocal launch: pipe: %s\n", strerror(errno));
        return -1;
    }
    sigprocmask(SIG_BLOCK, fwd, &prev_mask);
    pid_t pid = fork();
    if (pid < 0) {
        sigprocmask(SIG_SETMASK, &prev_mask, NULL);
        fprintf(stderr, "glocal launch: fork of rank %d: %s\n", r, strerror(errno));
        if (j->prefix) close(po[0]), close(po[1]), close(pe[0]), close(pe[1]);
        return -1;
    }
    if (pid == 0) launch_exec_rank(j, r, me, po, pe, &prev_mask);
    j->ranks[r].pid = pid;
    j->started++;
    sigprocmask(SIG_SETMASK, &prev_mask, NULL);
    if (j->prefix) {
        close(po[1]);
        close(pe[1]);
        j->ranks[r].out.fd = po[0];
        j->ranks[r].err.fd = pe[0];
        fcntl(po[0], F_SETFL, O_NONBLOCK);
        fcntl(pe[0], F_SETFL, O_NONBLOCK);
    }
    return 0;
}

/* Starts the ranks; when one cannot be started, the others are stopped. */
static void launch_start(launch_job *j)
{
    pid_t me = getpid();
    /* The forwarded signals stay blocked across each fork: a child must not
     * take one in our handler (and drop it) before it has restored the
     * default action; it unblocks them just before exec. */
    sigset_t fwd;
    sigemptyset(&fwd);
    for (int i = 0; i < 4; i++) sigaddset(&fwd, launch_sigs[i]);
    fflush(NULL);
    for (int r = 0; r < j->nr; r++)
        if (launch_start_rank(j, r, me, &fwd) < 0) break;
    if (j->started < j->nr && j->failed_rank < 0) {
        j->failed_rank = j->started; /* the rank that could not start */
        j->failed_status = -1;
        signal_all(j->ranks, j->nr, SIGTERM);
    }
}

/* A signal we got since the last look goes to every rank. */
static void launch_forward_signal(launch_job *j)
{
    if (!launch_signal || launch_signal == j->forwarded) return;
    j->forwarded = launch_signal;
    fprintf(stderr, "glocal launch: got signal %d (%s), passing it to %d rank%s\n", j->forwarded,
            strsignal(j->forwarded), j->live, j->live == 1 ? "" : "s");
    signal_all(j->ranks, j->nr, j->forwarded);
    if (j->kill_at < 0) j->kill_at = gl_now() + j->grace;
}

/* Waits up to 100 ms for output of the ranks and passes on what came.
 * Returns how many pipes are still open. */
static int launch_pump(launch_job *j)
{
    int np = 0;
    for (int r = 0; r < j->nr; r++) {
        if (j->ranks[r].out.fd >= 0) j->pfd[np++] = (struct pollfd){ j->ranks[r].out.fd, POLLIN, 0 };
        if (j->ranks[r].err.fd >= 0) j->pfd[np++] = (struct pollfd){ j->ranks[r].err.fd, POLLIN, 0 };
    }
    if (np == 0) {
        if (j->live == 0) return 0;
        struct timespec ts = { 0, 100 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        return 0;
    }
    if (poll(j->pfd, (nfds_t)np, 100) <= 0) return np;
    for (int r = 0; r < j->nr; r++) {
        for (int s = 0; s < 2; s++) {
            launch_stream *st = s ? &j->ranks[r].err : &j->ranks[r].out;
            if (st->fd < 0) continue;
            for (int k = 0; k < np; k++)
                if (j->pfd[k].fd == st->fd && (j->pfd[k].revents & (POLLIN | POLLHUP | POLLERR)))
                    stream_pump(st, r);
        }
    }
    return np;
}

/* Reaps the ranks that exited; the first to fail (unless we passed a signal
 * on) stops the others. */
static void launch_reap(launch_job *j)
{
    int status;
    pid_t pid;
    while (j->live > 0 && (pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (int r = 0; r < j->nr; r++) {
            if (j->ranks[r].pid != pid) continue;
            j->ranks[r].pid = 0;
            j->ranks[r].status = status;
            j->live--;
            int bad = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
            if (bad && j->failed_rank < 0 && !j->forwarded) {
                char why[96];
                describe_status(why, sizeof why, status);
                j->failed_rank = r;
                j->failed_status = status;
                fprintf(stderr, "glocal launch: rank %d (pid %d) %s; stopping the other %d rank%s\n",
                        r, (int)pid, why, j->live, j->live == 1 ? "" : "s");
                signal_all(j->ranks, j->nr, SIGTERM);
                if (j->kill_at < 0) j->kill_at = gl_now() + j->grace;
            }
        }
    }
}

/* SIGKILL for the ranks still running a grace time after SIGTERM. */
static void launch_escalate(launch_job *j)
{
    if (j->kill_at < 0 || j->live == 0 || gl_now() <= j->kill_at) return;
    fprintf(stderr, "glocal launch: %d rank%s still running after %g s, sending SIGKILL\n", j->live,
            j->live == 1 ? "" : "s", j->grace);
    signal_all(j->ranks, j->nr, SIGKILL);
    j->kill_at = gl_now() + 3600;
}

/* A rank's own children may hold its pipes open after it exits: stop
 * reading a moment after the last rank is gone. Returns 1 when done. */
static int launch_drained(launch_job *j)
{
    if (j->live > 0) return 0;
    if (j->drain_until < 0) j->drain_until = gl_now() + 1.0;
    if (gl_now() <= j->drain_until) return 0;
    for (int r = 0; r < j->nr; r++) {
        if (j->ranks[r].out.fd >= 0) close(j->ranks[r].out.fd), j->ranks[r].out.fd = -1;
        if (j->ranks[r].err.fd >= 0) close(j->ranks[r].err.fd), j->ranks[r].err.fd = -1;
    }
    return 1;
}

/* Passes output and signals on until every rank is reaped and its pipes are
 * drained. */
static void launch_wait(launch_job *j)
{
    j->live = j->started;
    j->kill_at = j->drain_until = -1;
    while (j->live > 0 || (j->prefix && j->started > 0)) {
        launch_forward_signal(j);
        int np = launch_pump(j);
        if (np == 0 && j->live == 0) break;
        launch_reap(j);
        launch_escalate(j);
        if (launch_drained(j)) break;
    }
}

/* launch's exit status: 128 + a signal passed on, else the failed rank's
 * (named on stderr), else 0. */
static int launch_exit_status(const launch_job *j)
{
    if (j->forwarded) return 128 + j->forwarded;
    if (j->failed_rank < 0) return CLI_OK;
    char why[96];
    int st = j->failed_status;
    if (st == -1) snprintf(why, sizeof why, "could not be started");
    else describe_status(why, sizeof why, st);
    fprintf(stderr, "glocal launch: failed: rank %d of %d %s\n", j->failed_rank, j->nr, why);
    if (st != -1 && WIFEXITED(st)) return WEXITSTATUS(st);
    if (st != -1 && WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return CLI_FAIL;
}

int cmd_launch(int argc, char **argv)
{
    const char *cmd = "launch";
    long nproc = 0, port = 0;
    double grace = 10.0;
    int prefix = 1, first = argc;
    cli_opt opts[] = {
        CLI_NUM("--nproc", &nproc, 1, 256, "N", "number of ranks", .alt = "-n", .required = 1),
        CLI_NUM("--port", &port, 1, 65535, "P", "rendezvous port on 127.0.0.1", .def = "a free port"),
        CLI_NOFLAG("--no-prefix", &prefix, "let the ranks write straight to this terminal"),
        CLI_NUM("--grace", &grace, 0, 3600, "S", "seconds between SIGTERM and SIGKILL when stopping ranks"),
        CLI_END,
    };
    cli_spec spec = {
        .cmd = cmd, .opts = opts, .args = "-- COMMAND [ARGS...]", .rest = &first,
        .about = "Starts N processes of COMMAND on this machine as the ranks of one distributed job,\n"
                 "each with torchrun's environment: RANK and LOCAL_RANK (0..N-1), WORLD_SIZE and\n"
                 "LOCAL_WORLD_SIZE (N), MASTER_ADDR=127.0.0.1 and MASTER_PORT (rank 0 hosts the\n"
                 "rendezvous there). glocal's training commands read these variables and train\n"
                 "data-parallel (libtorch c10d, Gloo on CPU).\n\n"
                 "When COMMAND is `glocal`, this same glocal binary is run, with --threads 1 added\n"
                 "unless the command gives --threads (or the launch itself got the global --threads\n"
                 "T, which is passed on): on a small machine N single-thread ranks usually train\n"
                 "faster than one rank with N threads (see bench/README.md, bench_dist).\n\n"
                 "Output lines are prefixed with [rank R] (stdout to stdout, stderr to stderr).\n"
                 "SIGINT, SIGTERM, SIGHUP and SIGQUIT are forwarded to every rank. When a rank exits\n"
                 "with an error or is killed, the others get SIGTERM (SIGKILL after the grace time)\n"
                 "and launch exits with that rank's status, naming the rank.\n",
        .epilog = "example:\n"
                  "  glocal launch -n 2 -- glocal train-motion --synth --out runs/motion\n"
                  "On a Slurm cluster use srun instead (one task per GPU or per core group); glocal\n"
                  "reads SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID plus MASTER_ADDR/MASTER_PORT (README).\n",
    };
    int prc = cli_parse(&spec, argc, argv);
    if (prc != CLI_PARSED) return prc;
    if (first >= argc) return cli_usage_error(cmd, "no command: put it after --");

    if (!port) {
        int p = launch_free_port();
        if (p < 0) return cli_fail(cmd, p, "choosing a rendezvous port");
        port = p;
    }
    launch_job j = { .nr = (int)nproc, .prefix = prefix, .grace = grace, .failed_rank = -1 };
    int rc = launch_child_argv(&j, cmd, argv + first, argc - first);
    if (rc == CLI_OK) rc = launch_ranks_new(&j, cmd, (int)port);
    if (rc == CLI_OK) {
        launch_signals_catch(&j);
        launch_start(&j);
        launch_wait(&j);
        launch_signals_restore(&j);
        rc = launch_exit_status(&j);
    }
    launch_job_free(&j);
    return rc;
}
