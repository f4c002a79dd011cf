// dist.h: data parallelism over processes with MPI (`make MPI=1`; OpenMPI). One run, N ranks:
// every rank holds the whole model, takes its rows of every global batch, and the gradients are
// summed across ranks before the (identical) update. Without mpirun, and in a build without MPI,
// there is one rank and none of this does anything.
//
// The reduction order is fixed, so a run is bit-identical for a given N and thread count: the
// gradient buffer is cut into N contiguous chunks; rank c receives every rank's chunk c
// (MPI_Alltoallv) and sums them in rank order 0, 1, ..., N-1 into a float accumulator, then
// every rank receives every summed chunk (MPI_Allgatherv). So each float is added in the same
// order every run, on one rank, and all ranks end with the same bits (a reduction whose order
// depends on MPI's algorithm choice, as MPI_Allreduce's may, is avoided). Traffic per rank:
// 2 (N-1)/N of the buffer, as a ring allreduce.
#ifndef ROUTELAB_DIST_H
#define ROUTELAB_DIST_H
#include <stddef.h>
#include <stdint.h>

// In an MPI build started by mpirun: MPI_Init. In a build without MPI: refuses (one line) to
// run as one of several processes of an mpirun / srun job, which would write one run directory
// N times. Call once, first thing.
void dist_init(int *argc, char ***argv);
void dist_finalize(void);
int dist_rank(void);
int dist_size(void);
// 1 when this build has MPI.
int dist_available(void);

// Sums buf (n floats) over the ranks in rank order (see above); scratch has room for n floats.
void dist_sum_floats(float *buf, size_t n, float *scratch);
// Sums x (n <= 16 doubles) over the ranks in rank order.
void dist_sum_doubles(double *x, size_t n);
// Dies on every rank, naming `what` and the first rank that differs from rank 0, unless every
// rank passes the same value.
void dist_check_same(uint64_t value, const char *what);
// Seconds spent in dist_sum_floats since the start (communication time).
double dist_comm_seconds(void);

#endif
