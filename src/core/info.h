// info.h: entropy and mutual information of discrete variables from counts, in bits.
//   H(X)   = -sum_x p(x) log2 p(x)                        (plug-in: p = counts / N)
//   I(X;Y) = H(X) + H(Y) - H(X,Y)
// The plug-in estimate of H is biased low by about (m - 1) / (2 N ln 2) bits, m the number of
// occupied bins (Miller 1955), so I is biased high: two independent variables measured on N
// samples show about (mx - 1)(my - 1) / (2 N ln 2) bits. The corrected estimates add that
// term to each entropy (Miller-Madow), so an independent pair reads about 0 (either sign) and
// an identical pair reads H. The bias term assumes independent samples; counts of correlated
// samples (the positions of one sequence) make the true bias larger.
#ifndef ROUTELAB_INFO_H
#define ROUTELAB_INFO_H
#include <stddef.h>

// counts[0..n): entropy in bits; corrected: Miller-Madow.
double entropy_bits(const double *counts, size_t n, int corrected);
// joint[x * ny + y], x < nx, y < ny: I(X;Y) in bits; corrected: Miller-Madow on each entropy.
double mutual_info_bits(const double *joint, size_t nx, size_t ny, int corrected);

#endif
