// dist.c: see dist.h. The MPI calls are compiled only with ROUTELAB_MPI (make MPI=1).
#include "dist.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"

#ifdef ROUTELAB_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_size = 1;
#ifdef ROUTELAB_MPI
static int g_mpi = 0;  // MPI_Init was called
#endif
static double g_comm_s = 0.0;

// The world size a launcher announces to its processes (OpenMPI, PMI/PMIx: MPICH, Slurm's srun
// --mpi=...); 0 when none does.
static long launcher_size(const char **var) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) {
            *var = vars[i];
            return atol(v);
        }
    }
    return 0;
}

int dist_available(void) {
#ifdef ROUTELAB_MPI
    return 1;
#else
    return 0;
#endif
}

void dist_init(int *argc, char ***argv) {
    const char *var = NULL;
    long n = launcher_size(&var);
#ifdef ROUTELAB_MPI
    if (n < 1) return;  // not started by mpirun: one process, MPI left alone
    MPI_Init(argc, argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    g_mpi = 1;
#else
    (void)argc, (void)argv;
    if (n > 1)
        fatal("this routelab was built without MPI, but it is one of %ld processes (%s=%ld): they "
              "would be %ld independent runs writing one directory; rebuild with `make MPI=1` "
              "(needs libopenmpi-dev) or run it without mpirun", n, var, n, n);
#endif
}

void dist_finalize(void) {
#ifdef ROUTELAB_MPI
    if (g_mpi) MPI_Finalize();
    g_mpi = 0;
#endif
}

int dist_rank(void) { return g_rank; }
int dist_size(void) { return g_size; }
double dist_comm_seconds(void) { return g_comm_s; }

#ifdef ROUTELAB_MPI
// Chunk c of n floats over N ranks: [off[c], off[c] + cnt[c]).
static void chunks(size_t n, int N, int *cnt, int *off) {
    size_t base = n / (size_t)N, rest = n % (size_t)N, o = 0;
    if (n > (size_t)0x7fffffff) fatal("dist: %zu gradient floats exceed MPI's int counts", n);
    for (int c = 0; c < N; c++) {
        size_t k = base + ((size_t)c < rest);
        cnt[c] = (int)k, off[c] = (int)o;
        o += k;
    }
}
#endif

void dist_sum_floats(float *buf, size_t n, float *scratch) {
#ifdef ROUTELAB_MPI
    if (g_size < 2) return;
    double t0 = now_seconds();
    int N = g_size, *cnt = xcalloc((size_t)N * 4, sizeof(int));
    int *off = cnt + N, *rcnt = cnt + 2 * N, *roff = cnt + 3 * N;
    chunks(n, N, cnt, off);
    int mine = cnt[g_rank];
    // Every rank's copy of my chunk, rank after rank, into scratch.
    for (int r = 0; r < N; r++) rcnt[r] = mine, roff[r] = r * mine;
    MPI_Alltoallv(buf, cnt, off, MPI_FLOAT, scratch, rcnt, roff, MPI_FLOAT, MPI_COMM_WORLD);
    float *dst = buf + off[g_rank];
#pragma omp parallel for schedule(static)
    for (int i = 0; i < mine; i++) {
        float s = scratch[i];
        for (int r = 1; r < N; r++) s += scratch[(size_t)r * mine + i];
        dst[i] = s;
    }
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, cnt, off, MPI_FLOAT, MPI_COMM_WORLD);
    xfree(cnt);
    g_comm_s += now_seconds() - t0;
#else
    (void)buf, (void)n, (void)scratch;
#endif
}

void dist_sum_doubles(double *x, size_t n) {
#ifdef ROUTELAB_MPI
    if (g_size < 2) return;
    if (n > 16) fatal("internal error: dist_sum_doubles takes at most 16 values");
    double *all = xcalloc((size_t)g_size * 16, sizeof(double));
    MPI_Allgather(x, (int)n, MPI_DOUBLE, all, (int)n, MPI_DOUBLE, MPI_COMM_WORLD);
    for (size_t i = 0; i < n; i++) {
        double s = all[i];
        for (int r = 1; r < g_size; r++) s += all[(size_t)r * n + i];
        x[i] = s;
    }
    xfree(all);
#else
    (void)x, (void)n;
#endif
}

void dist_check_same(uint64_t value, const char *what) {
#ifdef ROUTELAB_MPI
    if (g_size < 2) return;
    uint64_t *all = xcalloc((size_t)g_size, sizeof *all);
    MPI_Allgather(&value, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD);
    for (int r = 1; r < g_size; r++)
        if (all[r] != all[0]) {
            if (g_rank == 0)
                fatal("mpirun: rank %d's %s differs from rank 0's (%016llx vs %016llx): every rank "
                      "must run the same binary, config and data", r, what,
                      (unsigned long long)all[r], (unsigned long long)all[0]);
            exit(1);  // rank 0 reports; mpirun ends the job
        }
    xfree(all);
#else
    (void)value, (void)what;
#endif
}
