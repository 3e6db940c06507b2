/* stages.c — child processes, stage keys and done markers for `glocal run`. */
#include "experiments/stages.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "experiments/cli.h"
#include "nn/base.h"

uint64_t stage_hash(uint64_t h, const char *s)
{
    if (h == 0) h = 14695981039346656037ULL; /* FNV offset basis */
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return h;
}

int stage_exec(const char *stage, char *const argv[], const char *log_path)
{
    int logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (logfd < 0) return gl_error(GL_EIO, "%s: cannot open log: %s", log_path, strerror(errno));
    /* the command line heads the log, so a log says how to reproduce it */
    dprintf(logfd, "$");
    for (int i = 0; argv[i]; i++) dprintf(logfd, " %s", argv[i]);
    dprintf(logfd, "\n");
    int pfd[2];
    if (pipe(pfd) != 0) {
        close(logfd);
        return gl_error(GL_ESYSTEM, "pipe: %s", strerror(errno));
    }
    fflush(NULL);
    /* SIGINT/SIGTERM stay blocked across the fork: the child must not take
     * one with our handler (which only records it) before its exec. */
    sigset_t stop_sigs, old_mask;
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGINT);
    sigaddset(&stop_sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_sigs, &old_mask);
    pid_t pid = fork();
    if (pid != 0) pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    if (pid < 0) {
        close(logfd);
        close(pfd[0]);
        close(pfd[1]);
        return gl_error(GL_ESYSTEM, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        dup2(pfd[1], STDOUT_FILENO);
        dup2(pfd[1], STDERR_FILENO);
        close(pfd[0]);
        close(pfd[1]);
        close(logfd);
        cli_signals_restore(); /* the dispositions glocal run started with */
        pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
        execv(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(pfd[1]);
    /* Copy the child's output to the log and to our stderr a whole line at a
     * time with the stage name in front (stages may run in parallel: a line
     * is written under stderr's lock, so lines never interleave). */
    char buf[4096], line[4096];
    size_t ll = 0;
    int forwarded = 0;
    for (;;) {
        /* SIGINT/SIGTERM caught by `glocal run` (cli_signals_catch): passed
         * on once, and the child stops cleanly by its own handling. Polled,
         * as the signal may come just before a blocking read. */
        int sig = cli_signal_caught();
        if (sig && !forwarded) {
            kill(pid, sig);
            forwarded = 1;
        }
        struct pollfd pf = { .fd = pfd[0], .events = POLLIN };
        int ready = poll(&pf, 1, 200);
        if (ready == 0 || (ready < 0 && errno == EINTR)) continue;
        ssize_t n = read(pfd[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if (write(logfd, buf, (size_t)n) < 0) { /* the log is best effort */ }
        for (ssize_t i = 0; i < n; i++) {
            if (ll < sizeof line - 1) line[ll++] = buf[i];
            if (buf[i] == '\n' || buf[i] == '\r' || ll == sizeof line - 1) {
                flockfile(stderr);
                fprintf(stderr, "[%s] ", stage);
                fwrite(line, 1, ll, stderr);
                if (buf[i] == '\r') fputc('\n', stderr); /* progress redraws become lines */
                fflush(stderr);
                funlockfile(stderr);
                ll = 0;
            }
        }
    }
    if (ll) {
        flockfile(stderr);
        fprintf(stderr, "[%s] %.*s\n", stage, (int)ll, line);
        funlockfile(stderr);
    }
    close(pfd[0]);
    close(logfd);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return gl_error(GL_ESYSTEM, "waitpid: %s", strerror(errno));
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return 1;
}

int stage_is_done(const char *dir, const char *key, double *seconds, char *note, size_t note_size)
{
    if (note && note_size) note[0] = 0;
    char path[1200];
    snprintf(path, sizeof path, "%s/stage.json", dir);
    json_object *j = json_object_from_file(path);
    if (!j) return 0;
    json_object *k, *s;
    int done = json_object_object_get_ex(j, "key", &k) && strcmp(json_object_get_string(k), key) == 0;
    if (done && seconds && json_object_object_get_ex(j, "seconds", &s)) *seconds = json_object_get_double(s);
    if (done && note && note_size && json_object_object_get_ex(j, "note", &s))
        snprintf(note, note_size, "%s", json_object_get_string(s));
    json_object_put(j);
    return done;
}

int stage_mark_done(const char *dir, const char *key, double seconds, const char *note)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/stage.json", dir);
    json_object *j = json_object_new_object();
    json_object_object_add(j, "key", json_object_new_string(key));
    json_object_object_add(j, "seconds", json_object_new_double(seconds));
    if (note && note[0]) json_object_object_add(j, "note", json_object_new_string(note));
    const char *text = json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY);
    int rc = gl_write_file_atomic(path, text, strlen(text));
    json_object_put(j);
    return rc;
}
