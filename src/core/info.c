// info.c: see info.h.
#include "info.h"

#include <math.h>

#include "common.h"

double entropy_bits(const double *counts, size_t n, int corrected) {
    double total = 0.0;
    size_t occupied = 0;
    for (size_t i = 0; i < n; i++) {
        ASSERT(counts[i] >= 0.0);
        total += counts[i];
        occupied += counts[i] > 0.0;
    }
    if (total <= 0.0) return 0.0;
    double h = 0.0;
    for (size_t i = 0; i < n; i++)
        if (counts[i] > 0.0) h -= counts[i] / total * log(counts[i] / total);
    if (corrected) h += (double)(occupied - 1) / (2.0 * total);
    return h / log(2.0);
}

double mutual_info_bits(const double *joint, size_t nx, size_t ny, int corrected) {
    double *mx = xcalloc(nx, sizeof(double)), *my = xcalloc(ny, sizeof(double));
    for (size_t x = 0; x < nx; x++)
        for (size_t y = 0; y < ny; y++) mx[x] += joint[x * ny + y], my[y] += joint[x * ny + y];
    double mi = entropy_bits(mx, nx, corrected) + entropy_bits(my, ny, corrected) -
                entropy_bits(joint, nx * ny, corrected);
    xfree(mx);
    xfree(my);
    return mi;
}
