// spawn.h: child processes without a shell. An argument list is built entry by entry, so a
// path with a quote or a space reaches the child unchanged (a shell command string would not).
#ifndef ROUTELAB_SPAWN_H
#define ROUTELAB_SPAWN_H
#include <stddef.h>

typedef struct {
    char **v;  // NULL-terminated once anything is added (execv's argv)
    size_t n, cap;
} ArgList;

void args_add(ArgList *a, const char *s);
void args_addf(ArgList *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Adds the space-separated words of s as separate entries (empty words dropped), as the recipe
// key strings are written: no value contains a space.
void args_add_words(ArgList *a, const char *s);
void args_free(ArgList *a);

// Runs argv (argv[0] a path, or a name looked up in PATH when search is set) with stdout and
// stderr sent to the given files (NULL: /dev/null; the same path twice is not supported) and
// waits for it. SIGINT and SIGQUIT are ignored here meanwhile (as the C library's shell runner does), so that Ctrl-C
// reaches the child, which stops cleanly, and the caller sees how it ended; a SIGTERM meanwhile
// is passed on to the child (a training checkpoints and stops; the caller sees it stopped early).
// Returns 0 when the child exited 0; otherwise writes why ("exit 3", "signal 9", "cannot run
// gnuplot: No such file or directory") into why and returns -1 (could not start) or 1.
int spawn_wait(char *const *argv, int search, const char *out_path, const char *err_path,
               char *why, size_t cap);
// The same, calling tick(ctx) about once a second while the child runs (progress lines).
typedef void (*SpawnTick)(void *ctx);
int spawn_wait_ticking(char *const *argv, int search, const char *out_path, const char *err_path,
                       char *why, size_t cap, SpawnTick tick, void *ctx);

#endif
