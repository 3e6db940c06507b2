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

    int rc = CLI_FAIL, nr = (int)nproc, started = 0, failed_rank = -1, failed_status = 0;
    char **cargv = NULL, **envs[256] = { 0 };
    char self[4096];
    launch_rank *ranks = NULL;
    struct pollfd *pfd = NULL;
    if (!port) {
        int p = launch_free_port();
        if (p < 0) return cli_fail(cmd, p, "choosing a rendezvous port");
        port = p;
    }

    /* The child's argv: `glocal` becomes this binary, plus --threads. */
    int nargs = argc - first;
    cargv = gl_calloc((size_t)nargs + 4, sizeof *cargv);
    if (!cargv) goto oom;
    const char *prog = argv[first];
    const char *base = strrchr(prog, '/') ? strrchr(prog, '/') + 1 : prog;
    int is_glocal = !strcmp(base, "glocal");
    char threads_arg[32];
    int k = 0;
    if (is_glocal) {
        ssize_t l = readlink("/proc/self/exe", self, sizeof self - 1);
        if (l <= 0) {
            rc = cli_fail(cmd, GL_ESYSTEM, "cannot find this glocal binary (/proc/self/exe: %s)",
                          strerror(errno));
            goto done;
        }
        self[l] = 0;
        cargv[k++] = self;
        if (!gives_threads(argv + first + 1, nargs - 1)) {
            snprintf(threads_arg, sizeof threads_arg, "%d", cli_g.threads > 0 ? cli_g.threads : 1);
            cargv[k++] = "--threads";
            cargv[k++] = threads_arg;
        }
        for (int i = 1; i < nargs; i++) cargv[k++] = argv[first + i];
    } else {
        for (int i = 0; i < nargs; i++) cargv[k++] = argv[first + i];
    }
    cargv[k] = NULL;

    ranks = gl_calloc((size_t)nr, sizeof *ranks);
    pfd = gl_calloc(2 * (size_t)nr, sizeof *pfd);
    if (!ranks || !pfd) goto oom;
    for (int r = 0; r < nr; r++) {
        ranks[r].out.fd = ranks[r].err.fd = -1;
        ranks[r].out.out_fd = STDOUT_FILENO;
        ranks[r].err.out_fd = STDERR_FILENO;
        if (!(envs[r] = rank_environment(r, nr, (int)port))) goto oom;
    }

    struct sigaction sa = { 0 }, old[4];
    static const int sigs[4] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
    sa.sa_handler = launch_on_signal;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < 4; i++) sigaction(sigs[i], &sa, &old[i]);
    struct sigaction ign = { 0 }, old_pipe;
    ign.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ign, &old_pipe);
    pid_t me = getpid();
    /* The forwarded signals stay blocked across each fork: a child must not
     * take one in our handler (and drop it) before it has restored the
     * default action; it unblocks them just before exec. */
    sigset_t fwd, prev_mask;
    sigemptyset(&fwd);
    for (int i = 0; i < 4; i++) sigaddset(&fwd, sigs[i]);
    fflush(NULL);

    for (int r = 0; r < nr; r++) {
        int po[2] = { -1, -1 }, pe[2] = { -1, -1 };
        if (prefix && (launch_pipe(po) < 0 || launch_pipe(pe) < 0)) {
            if (po[0] >= 0) close(po[0]), close(po[1]);
            fprintf(stderr, "glocal launch: pipe: %s\n", strerror(errno));
            break;
        }
        sigprocmask(SIG_BLOCK, &fwd, &prev_mask);
        pid_t pid = fork();
        if (pid < 0) {
            sigprocmask(SIG_SETMASK, &prev_mask, NULL);
            fprintf(stderr, "glocal launch: fork of rank %d: %s\n", r, strerror(errno));
            if (prefix) close(po[0]), close(po[1]), close(pe[0]), close(pe[1]);
            break;
        }
        if (pid == 0) {
            /* Child: only async-signal-safe calls until exec. Its own process
             * group keeps a terminal's Ctrl-C from reaching it twice (we
             * forward it); PDEATHSIG stops it if launch itself is killed. */
            setpgid(0, 0);
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (getppid() != me) _exit(127);
            for (int i = 0; i < 4; i++) sigaction(sigs[i], &old[i], NULL);
            sigaction(SIGPIPE, &old_pipe, NULL);
            int devnull = open("/dev/null", O_RDONLY);
            if (devnull >= 0) dup2(devnull, STDIN_FILENO);
            if (prefix) {
                dup2(po[1], STDOUT_FILENO);
                dup2(pe[1], STDERR_FILENO);
            }
            environ = envs[r];
            sigprocmask(SIG_SETMASK, &prev_mask, NULL);
            execvp(cargv[0], cargv);
            const char *m1 = "glocal launch: cannot run ";
            write_all(STDERR_FILENO, m1, strlen(m1));
            write_all(STDERR_FILENO, cargv[0], strlen(cargv[0]));
            write_all(STDERR_FILENO, "\n", 1);
            _exit(127);
        }
        ranks[r].pid = pid;
        started++;
        sigprocmask(SIG_SETMASK, &prev_mask, NULL);
        if (prefix) {
            close(po[1]);
            close(pe[1]);
            ranks[r].out.fd = po[0];
            ranks[r].err.fd = pe[0];
            fcntl(po[0], F_SETFL, O_NONBLOCK);
            fcntl(pe[0], F_SETFL, O_NONBLOCK);
        }
    }
    if (started < nr && failed_rank < 0) {
        failed_rank = started; /* the rank that could not start */
        failed_status = -1;
        signal_all(ranks, nr, SIGTERM);
    }

    int live = started, forwarded = 0;
    double kill_at = -1, drain_until = -1;
    while (live > 0 || (prefix && started > 0)) {
        if (launch_signal && launch_signal != forwarded) {
            forwarded = launch_signal;
            fprintf(stderr, "glocal launch: got signal %d (%s), passing it to %d rank%s\n", forwarded,
                    strsignal(forwarded), live, live == 1 ? "" : "s");
            signal_all(ranks, nr, forwarded);
            if (kill_at < 0) kill_at = gl_now() + grace;
        }
        int np = 0;
        for (int r = 0; r < nr; r++) {
            if (ranks[r].out.fd >= 0) pfd[np++] = (struct pollfd){ ranks[r].out.fd, POLLIN, 0 };
            if (ranks[r].err.fd >= 0) pfd[np++] = (struct pollfd){ ranks[r].err.fd, POLLIN, 0 };
        }
        if (np == 0 && live == 0) break;
        if (np > 0) {
            if (poll(pfd, (nfds_t)np, 100) > 0) {
                for (int r = 0; r < nr; r++) {
                    for (int s = 0; s < 2; s++) {
                        launch_stream *st = s ? &ranks[r].err : &ranks[r].out;
                        if (st->fd < 0) continue;
                        for (int j = 0; j < np; j++)
                            if (pfd[j].fd == st->fd && (pfd[j].revents & (POLLIN | POLLHUP | POLLERR)))
                                stream_pump(st, r);
                    }
                }
            }
        } else {
            struct timespec ts = { 0, 100 * 1000 * 1000 };
            nanosleep(&ts, NULL);
        }
        int status;
        pid_t pid;
        while (live > 0 && (pid = waitpid(-1, &status, WNOHANG)) > 0) {
            for (int r = 0; r < nr; r++) {
                if (ranks[r].pid != pid) continue;
                ranks[r].pid = 0;
                ranks[r].status = status;
                live--;
                int bad = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
                if (bad && failed_rank < 0 && !forwarded) {
                    char why[96];
                    describe_status(why, sizeof why, status);
                    failed_rank = r;
                    failed_status = status;
                    fprintf(stderr, "glocal launch: rank %d (pid %d) %s; stopping the other %d rank%s\n",
                            r, (int)pid, why, live, live == 1 ? "" : "s");
                    signal_all(ranks, nr, SIGTERM);
                    if (kill_at < 0) kill_at = gl_now() + grace;
                }
            }
        }
        if (kill_at >= 0 && live > 0 && gl_now() > kill_at) {
            fprintf(stderr, "glocal launch: %d rank%s still running after %g s, sending SIGKILL\n", live,
                    live == 1 ? "" : "s", grace);
            signal_all(ranks, nr, SIGKILL);
            kill_at = gl_now() + 3600;
        }
        /* A rank's own children may hold its pipes open after it exits:
         * stop reading a moment after the last rank is gone. */
        if (live == 0) {
            if (drain_until < 0) drain_until = gl_now() + 1.0;
            if (gl_now() > drain_until) {
                for (int r = 0; r < nr; r++) {
                    if (ranks[r].out.fd >= 0) close(ranks[r].out.fd), ranks[r].out.fd = -1;
                    if (ranks[r].err.fd >= 0) close(ranks[r].err.fd), ranks[r].err.fd = -1;
                }
                break;
            }
        }
    }
    for (int i = 0; i < 4; i++) sigaction(sigs[i], &old[i], NULL);
    sigaction(SIGPIPE, &old_pipe, NULL);

    if (forwarded) {
        rc = 128 + forwarded;
    } else if (failed_rank >= 0) {
        char why[96];
        if (failed_status == -1) snprintf(why, sizeof why, "could not be started");
        else describe_status(why, sizeof why, failed_status);
        fprintf(stderr, "glocal launch: failed: rank %d of %d %s\n", failed_rank, nr, why);
        if (failed_status != -1 && WIFEXITED(failed_status)) rc = WEXITSTATUS(failed_status);
        else if (failed_status != -1 && WIFSIGNALED(failed_status)) rc = 128 + WTERMSIG(failed_status);
        else rc = CLI_FAIL;
    } else {
        rc = CLI_OK;
    }
    goto done;
oom:
    rc = cli_fail(cmd, GL_ENOMEM, "out of memory");
done:
    for (int r = 0; r < nr && r < 256; r++) free_environment(envs[r]);
    gl_free(pfd);
    gl_free(ranks);
    gl_free(cargv);
    return rc;
}
