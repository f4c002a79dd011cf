// spawn.c: see spawn.h. fork + execv, redirections with open + dup2, waitpid.
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

void args_add(ArgList *a, const char *s) {
    if (a->n + 2 > a->cap) {
        a->cap = a->cap ? 2 * a->cap : 16;
        a->v = xrealloc(a->v, a->cap * sizeof *a->v);
    }
    a->v[a->n++] = xstrdup(s);
    a->v[a->n] = NULL;
}

void args_addf(ArgList *a, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) fatal("out of memory building a command line");
    va_end(ap);
    args_add(a, s);
    free(s);
}

void args_add_words(ArgList *a, const char *s) {
    while (*s) {
        while (*s == ' ') s++;
        size_t n = strcspn(s, " ");
        if (n) {
            char *w = xstrdup(s);
            w[n] = 0;
            args_add(a, w);
            xfree(w);
        }
        s += n;
    }
}

void args_free(ArgList *a) {
    for (size_t i = 0; i < a->n; i++) xfree(a->v[i]);
    xfree(a->v);
    *a = (ArgList){0};
}

// The child being waited for: SIGTERM to this process (a `kill`, Slurm's time limit signalled to
// a batch script's child) is passed on to it, so that a training writes its checkpoint and stops
// instead of being orphaned.
static volatile sig_atomic_t child_pid;
static void forward_term(int sig) {
    if (child_pid > 0) kill((pid_t)child_pid, sig);
}

// In the child: fd gets path (or /dev/null), or the child ends with 126.
static void redirect(int fd, const char *path) {
    if (!path) path = "/dev/null";
    int f = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f < 0 || dup2(f, fd) < 0) {  // stderr may be the file that failed: say it on the original
        dprintf(2, "routelab: error: cannot open '%s' for a child's output: %s\n", path, strerror(errno));
        _exit(126);
    }
    close(f);
}

int spawn_wait(char *const *argv, int search, const char *out_path, const char *err_path,
               char *why, size_t cap) {
    return spawn_wait_ticking(argv, search, out_path, err_path, why, cap, NULL, NULL);
}

int spawn_wait_ticking(char *const *argv, int search, const char *out_path, const char *err_path,
                       char *why, size_t cap, SpawnTick tick, void *ctx) {
    // A pipe closed on exec tells the parent whether exec itself failed, and why.
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) fatal("cannot create a pipe: %s", strerror(errno));
    struct sigaction ign = {.sa_handler = SIG_IGN}, fwd = {.sa_handler = forward_term};
    struct sigaction old_int, old_quit, old_term;
    sigemptyset(&ign.sa_mask);
    sigemptyset(&fwd.sa_mask);
    sigaction(SIGINT, &ign, &old_int);
    sigaction(SIGQUIT, &ign, &old_quit);
    sigaction(SIGTERM, &fwd, &old_term);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) fatal("cannot start '%s': fork: %s", argv[0], strerror(errno));
    if (pid == 0) {
        sigaction(SIGINT, &old_int, NULL);  // the child handles Ctrl-C itself
        sigaction(SIGQUIT, &old_quit, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        close(report[0]);
        redirect(1, out_path);
        redirect(2, err_path);
        if (search) execvp(argv[0], argv); else execv(argv[0], argv);
        int e = errno;
        if (write(report[1], &e, sizeof e) < 0) {}
        _exit(127);
    }
    child_pid = pid;
    close(report[1]);
    int exec_errno = 0;
    ssize_t got;
    while ((got = read(report[0], &exec_errno, sizeof exec_errno)) < 0 && errno == EINTR) {}
    close(report[0]);
    int status = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, tick ? WNOHANG : 0);
        if (r == pid) break;
        if (r < 0 && errno != EINTR) fatal("waiting for '%s': %s", argv[0], strerror(errno));
        if (r == 0) {  // still running
            tick(ctx);
            struct timespec second = {1, 0};
            nanosleep(&second, NULL);
        }
    }
    child_pid = 0;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (got == (ssize_t)sizeof exec_errno) {
        snprintf(why, cap, "cannot run %s: %s", argv[0], strerror(exec_errno));
        return -1;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
    if (WIFSIGNALED(status)) snprintf(why, cap, "signal %d", WTERMSIG(status));
    else snprintf(why, cap, "exit %d", WEXITSTATUS(status));
    return 1;
}
