// common.h: error reporting, aligned allocation, file helpers and the counter-based RNG
// shared by every layer of routelab. Nothing here knows about models.
#ifndef ROUTELAB_COMMON_H
#define ROUTELAB_COMMON_H

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define IGNORE_INDEX (-1)  // target that is not scored (loss mask)

// ----------------------------------------------------------------------------- errors
// One line on stderr: "routelab: <what>", then exit(1). Every user-facing failure names the
// file or key, what was expected, and the fix.
_Noreturn void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void warnf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// While set, fatal() starts its line with "CONTEXT: ", so that a reader can name the file whose
// contents a lower layer rejects ("checkpoint 'PATH': key 'd_ff' must be positive"). NULL
// clears it; fatal() clears it too (the string is usually the caller's local buffer).
void fatal_context(const char *context);

// For fuzz targets only (tests/fuzz): while env is set, fatal() prints its line (unless quiet)
// and longjmps to env (setjmp returns 1) instead of exiting, and every block from xcalloc /
// xrealloc / xstrdup is recorded until xfree; fatal_free_tracked() frees the blocks a parser
// left behind when it jumped out. NULL turns both off. Single-threaded use only.
void fatal_set_jump(jmp_buf *env, int quiet);
void fatal_free_tracked(void);

// Internal invariant (a bug, not bad input): always on, also in release builds.
#define ASSERT(cond)                                                                         \
    do {                                                                                     \
        if (!(cond)) fatal("internal error: %s:%d: assertion '%s' failed (please report)", \
                           __FILE__, __LINE__, #cond);                                       \
    } while (0)

// ----------------------------------------------------------------------------- memory
// 64-byte aligned, zero-filled; dies with a clear message when memory runs out.
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t size);
char *xstrdup(const char *s);
void xfree(void *p);

// ----------------------------------------------------------------------------- files
FILE *xfopen(const char *path, const char *mode, const char *what);
// Reads a whole file; *len gets its size. `what` names the file's role in errors.
void *read_file(const char *path, size_t *len, const char *what);
int file_exists(const char *path);
int dir_exists(const char *path);
void make_dirs(const char *path);  // mkdir -p
// Writes `len` bytes to path via a unique temporary file next to it (PATH.tmp.XXXXXX), fsync,
// rename over path and fsync of the directory: an existing file is never lost or half-written.
void write_file_atomic(const char *path, const void *data, size_t len);
// The same in steps, for writers that stream: atomic_begin creates the temporary file (its name
// into tmp, cap >= strlen(path) + 12) and returns its descriptor; atomic_write writes all of
// data; atomic_commit fsyncs, closes, renames over path and fsyncs the directory. On any error
// they remove the temporary file and die with one line naming path (`what` is its role).
int atomic_begin(const char *path, char *tmp, size_t cap, const char *what);
// Removes the PATH.tmp.XXXXXX files a killed writer of path left behind; returns how many. Only
// for a path with one writer (a run directory's files, by the run that owns it).
int atomic_remove_stale(const char *path);
void atomic_write(int fd, const void *data, size_t len, const char *tmp, const char *path,
                  const char *what);
void atomic_commit(int fd, const char *tmp, const char *path, const char *what);
// Removes the temporary file and dies: "cannot write WHAT 'PATH': REASON (...)".
_Noreturn void atomic_fail(int fd, const char *tmp, const char *path, const char *what,
                           const char *reason);
void join_path(char *out, size_t cap, const char *dir, const char *name);

// ----------------------------------------------------------------------------- RNG
// Explicit-state generator (xoshiro256**-style quality from splitmix64 seeding); the state is
// saved in checkpoints so that a resumed run draws the same numbers.
typedef struct {
    uint64_t s[4];
} Rng;

void rng_seed(Rng *r, uint64_t seed);
uint64_t rng_next(Rng *r);
float rng_uniform(Rng *r);                   // [0, 1)
float rng_normal(Rng *r);                    // N(0, 1), Box-Muller
uint64_t rng_below(Rng *r, uint64_t n);      // uniform integer in [0, n)

// Stateless counter-based hash: the same (key, index) always gives the same number. Used where
// the value must be regenerated in backward (dropout) or must not depend on call order
// (stochastic and fixed random masks).
uint64_t hash64(uint64_t key, uint64_t index);
static inline float hash_uniform(uint64_t key, uint64_t index) {
    return (float)(hash64(key, index) >> 40) * (1.0f / 16777216.0f);  // 24 bits, [0, 1)
}

// ----------------------------------------------------------------------------- time
double now_seconds(void);  // monotonic
double median_of(double *x, size_t n);  // sorts x in place; 0 for n = 0
size_t peak_rss_bytes(void);

#endif
