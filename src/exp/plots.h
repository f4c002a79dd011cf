// plots.h: PNG plots of a recipe via gnuplot, run as a child process on a script file. Each
// plot also leaves its .gp script and .dat data in OUT, so it can be redrawn by hand. Without
// gnuplot, plots are skipped with one warning.
#ifndef ROUTELAB_PLOTS_H
#define ROUTELAB_PLOTS_H
#include "report.h"

// Convergence curves: training loss of seed 0 of every training arm (OUT/NAME_convergence.png).
void plot_curves(const char *out, const Recipe *r, const Scale *scale);
// The absorption gradient: validation perplexity against layers unfrozen, learned vs random.
void plot_gradient(const char *out, const Recipe *r, const Scale *scale, const ArmStats *st);
// Per-layer concentration of the dense model (mean over seeds): top-k mass and entropy ratio,
// into OUT/concentration.png for the recipe `concentration`, else OUT/RECIPE_concentration.png.
void plot_concentration(const char *out, const char *recipe, cJSON *const *res, int seeds, int k);

#endif
