// common.c: see common.h.
#define _POSIX_C_SOURCE 200809L
#include "common.h"

#include <dirent.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static jmp_buf *fatal_jump;  // fuzz targets: fatal() returns there instead of exiting
static int fatal_quiet;
#define TRACK_MAX 65536
static void **tracked;  // live blocks while fatal_jump is set (fuzz targets)
static size_t n_tracked;

void fatal_set_jump(jmp_buf *env, int quiet) {
    fatal_jump = env;
    fatal_quiet = quiet;
    if (env && !tracked) tracked = calloc(TRACK_MAX, sizeof *tracked);
    if (!env) n_tracked = 0;
}

static void track_add(void *p) {
    if (fatal_jump && tracked && n_tracked < TRACK_MAX) tracked[n_tracked++] = p;
}

static void track_remove(void *p) {
    if (!fatal_jump || !tracked || !p) return;
    for (size_t i = n_tracked; i-- > 0;)
        if (tracked[i] == p) {
            tracked[i] = tracked[--n_tracked];
            return;
        }
}

void fatal_free_tracked(void) {
    while (n_tracked) free(tracked[--n_tracked]);
}

static const char *fatal_ctx;

void fatal_context(const char *context) { fatal_ctx = context; }

void fatal(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fflush(stdout);
    const char *ctx = fatal_ctx;
    fatal_ctx = NULL;
    if (!fatal_jump || !fatal_quiet) {
        fputs("routelab: error: ", stderr);
        if (ctx) fprintf(stderr, "%s: ", ctx);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
    }
    va_end(ap);
    if (fatal_jump) longjmp(*fatal_jump, 1);
    exit(1);
}

void warnf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fflush(stdout);
    fputs("routelab: warning: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

// Large blocks (the parameter, gradient and AdamW buffers of a pretrained model) come straight
// from mmap: the kernel's zero pages cost no memory until written, so an evaluation never pays
// for the gradients and moments it does not touch (a memset would make all of them resident).
#define BIG_BLOCK ((size_t)64 << 20)
#define MAX_BIG 256
static struct { void *p; size_t len; } big[MAX_BIG];
static pthread_mutex_t big_lock = PTHREAD_MUTEX_INITIALIZER;

static void *big_alloc(size_t bytes) {
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    pthread_mutex_lock(&big_lock);
    int slot = -1;
    for (int i = 0; i < MAX_BIG && slot < 0; i++)
        if (!big[i].p) slot = i;
    if (slot >= 0) big[slot].p = p, big[slot].len = bytes;
    pthread_mutex_unlock(&big_lock);
    if (slot < 0) {  // table full: fall back to the heap
        munmap(p, bytes);
        return NULL;
    }
    return p;
}

// Unmaps p when it is a big block (returns 1), else 0; *len its size.
static int big_release(void *p, size_t *len, int unmap) {
    int found = 0;
    pthread_mutex_lock(&big_lock);
    for (int i = 0; i < MAX_BIG && !found; i++)
        if (big[i].p == p) {
            found = 1;
            *len = big[i].len;
            if (unmap) big[i].p = NULL;
        }
    pthread_mutex_unlock(&big_lock);
    if (found && unmap) munmap(p, *len);
    return found;
}

void *xcalloc(size_t count, size_t size) {
    if (count == 0 || size == 0) count = size = 1;
    if (count > SIZE_MAX / size) fatal("allocation of %zu x %zu bytes overflows", count, size);
    size_t bytes = count * size;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded >= BIG_BLOCK && !fatal_jump) {
        void *b = big_alloc(rounded);  // page-aligned and zero
        if (b) return b;
    }
    void *p = aligned_alloc(64, rounded);
    if (!p) fatal("out of memory allocating %.1f MiB (reduce batch or seq_len)", bytes / 1048576.0);
    memset(p, 0, rounded);
    track_add(p);
    return p;
}

void *xrealloc(void *p, size_t size) {
    size_t old;
    if (p && big_release(p, &old, 0)) {  // a big block: copy into a new allocation
        void *q = xcalloc(size ? size : 1, 1);
        memcpy(q, p, old < size ? old : size);
        big_release(p, &old, 1);
        return q;
    }
    void *q = realloc(p, size ? size : 1);
    if (!q) fatal("out of memory allocating %.1f MiB", size / 1048576.0);
    track_remove(p);
    track_add(q);
    return q;
}

char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = xrealloc(NULL, n);
    memcpy(d, s, n);
    return d;
}

void xfree(void *p) {
    size_t len;
    if (p && big_release(p, &len, 1)) return;
    track_remove(p);
    free(p);
}

FILE *xfopen(const char *path, const char *mode, const char *what) {
    FILE *f = fopen(path, mode);
    if (!f)
        fatal("cannot open %s '%s': %s (check the path)", what, path, strerror(errno));
    return f;
}

void *read_file(const char *path, size_t *len, const char *what) {
    FILE *f = xfopen(path, "rb", what);
    if (fseek(f, 0, SEEK_END) != 0) fatal("cannot seek in %s '%s'", what, path);
    long n = ftell(f);
    if (n < 0) fatal("cannot size %s '%s'", what, path);
    rewind(f);
    char *buf = xcalloc((size_t)n + 1, 1);
    if (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n)
        fatal("cannot read %s '%s' (truncated or unreadable)", what, path);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int dir_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

void make_dirs(const char *path) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            fatal("cannot create directory '%s': %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        fatal("cannot create directory '%s': %s", tmp, strerror(errno));
}

_Noreturn void atomic_fail(int fd, const char *tmp, const char *path, const char *what,
                           const char *reason) {
    if (fd >= 0) close(fd);
    unlink(tmp);
    fatal("cannot write %s '%s': %s (check that the disk has space and the directory is "
          "writable; the previous file is kept)", what, path, reason);
}

int atomic_remove_stale(const char *path) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    const char *base = slash ? slash + 1 : path;
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    size_t bl = strlen(base);
    DIR *d = opendir(dir);
    if (!d) return 0;
    int removed = 0;
    for (struct dirent *e; (e = readdir(d));) {
        const char *n = e->d_name;  // exactly BASE.tmp. and mkstemp's six characters
        if (strlen(n) != bl + 11 || strncmp(n, base, bl) || strncmp(n + bl, ".tmp.", 5)) continue;
        char full[4400];
        snprintf(full, sizeof full, "%s/%s", dir, n);
        removed += unlink(full) == 0;
    }
    closedir(d);
    return removed;
}

int atomic_begin(const char *path, char *tmp, size_t cap, const char *what) {
    int w = snprintf(tmp, cap, "%s.tmp.XXXXXX", path);
    if (w < 0 || (size_t)w >= cap) fatal("cannot write %s '%s': the path is too long", what, path);
    int fd = mkstemp(tmp);
    if (fd < 0)
        fatal("cannot write %s '%s': cannot create a temporary file next to it: %s (check the "
              "directory exists and is writable)", what, path, strerror(errno));
    if (fchmod(fd, 0644) != 0) atomic_fail(fd, tmp, path, what, strerror(errno));
    return fd;
}

void atomic_write(int fd, const void *data, size_t len, const char *tmp, const char *path,
                  const char *what) {
    const char *p = data;
    while (len > 0) {
        size_t chunk = len < ((size_t)1 << 30) ? len : ((size_t)1 << 30);
        ssize_t n = write(fd, p, chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) atomic_fail(fd, tmp, path, what, n < 0 ? strerror(errno) : "short write");
        p += n;
        len -= (size_t)n;
    }
}

void atomic_commit(int fd, const char *tmp, const char *path, const char *what) {
    if (fsync(fd) != 0) atomic_fail(fd, tmp, path, what, strerror(errno));
    if (close(fd) != 0) atomic_fail(-1, tmp, path, what, strerror(errno));
    if (rename(tmp, path) != 0) atomic_fail(-1, tmp, path, what, strerror(errno));
    // The rename is durable once the directory is: fsync it (best effort where unsupported).
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir) dir[1] = 0;
    else if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        if (fsync(dfd) != 0 && errno != EINVAL && errno != EROFS)
            warnf("cannot fsync directory '%s': %s", dir, strerror(errno));
        close(dfd);
    }
}

void write_file_atomic(const char *path, const void *data, size_t len) {
    char tmp[4200];
    int fd = atomic_begin(path, tmp, sizeof tmp, "file");
    atomic_write(fd, data, len, tmp, path, "file");
    atomic_commit(fd, tmp, path, "file");
}

void join_path(char *out, size_t cap, const char *dir, const char *name) {
    size_t n = strlen(dir);
    if (n && dir[n - 1] == '/') snprintf(out, cap, "%s%s", dir, name);
    else snprintf(out, cap, "%s/%s", dir, name);
}

// ----------------------------------------------------------------------------- RNG
static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void rng_seed(Rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rng_next(Rng *r) {  // xoshiro256**
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float rng_uniform(Rng *r) { return (float)(rng_next(r) >> 40) * (1.0f / 16777216.0f); }

float rng_normal(Rng *r) {
    // Box-Muller in double; u1 in (0, 1] so the log is finite.
    double u1 = ((rng_next(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint64_t rng_below(Rng *r, uint64_t n) {
    ASSERT(n > 0);
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;  // rejection avoids modulo bias
    uint64_t x;
    do x = rng_next(r);
    while (x >= limit);
    return x % n;
}

uint64_t hash64(uint64_t key, uint64_t index) {
    uint64_t x = key * 0xD1B54A32D192ED03ull + index;
    return splitmix64(&x);
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double median_of(double *x, size_t n) {
    qsort(x, n, sizeof(double), cmp_double);
    return n ? x[n / 2] : 0.0;
}

size_t peak_rss_bytes(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (size_t)ru.ru_maxrss * 1024;
}
