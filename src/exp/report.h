// report.h: what repro makes of the runs' results: per-arm statistics over seeds, report.md
// (one section per recipe, the derived quantities the paper argues from, the summary table) and
// the rows of results.json. A missing or null metric is printed as '–' (or 'n/a'), never as a
// number.
#ifndef ROUTELAB_REPORT_H
#define ROUTELAB_REPORT_H
#include <cjson/cJSON.h>
#include <stdio.h>

#include "recipes.h"

// One recipe's results: res[arm][seed], NULL for a failed or not-run seed.
typedef cJSON *RecipeResults[MAX_ARMS][MAX_SEEDS];

// An arm's metrics over seeds (mean and sample std; NAN where no seed has the metric).
// Distillations are judged deployed under hard top-k.
typedef struct {
    double ppl, ppl_sd, acc, acc_sd, f1, f1_sd, exact, exact_sd;
    int done;  // at least one seed finished
    int seeds_with_ppl, seeds;  // seeds whose perplexity is in the mean, of the seeds asked for
} ArmStats;

// The number j[key], or NAN when j is NULL or the key is missing, null or not a number.
double result_num(const cJSON *j, const char *key);
// Element i of the array j[key], NAN likewise.
double result_item(const cJSON *j, const char *key, int i);
ArmStats arm_stats(const Arm *a, cJSON *const *res, int seeds);

// The premise of the experiments (issue: attention must be concentrated for routing to
// matter): the dense model's top-k mass at k = T/8 at least this, its entropy ratio at most that.
#define PREMISE_MASS 0.80
#define PREMISE_ENTROPY 0.70

// The premise check of a dense arm's results (seeds[s], NULL where missing): its top-k mass
// and entropy ratio, mean over layers and seeds, against the thresholds, with a warning line
// when it fails. Prints nothing when no seed has the diagnostics.
void report_premise(FILE *f, const char *arm, cJSON *const *seeds, int k);

// One recipe's section of report.md.
void report_recipe(FILE *f, const Recipe *r, const Scale *scale, RecipeResults res, const ArmStats *st);

// The headline rows `make run` prints: each is an arm name some recipe runs.
typedef struct {
    const char *label, *arm;
} SummaryRow;
extern const SummaryRow SUMMARY[];
extern const size_t N_SUMMARY;
// The summary table (nothing when fewer than two of its arms ran); summary[k] is SUMMARY[k]'s.
void report_summary(FILE *f, const ArmStats *summary, int seeds);

// One entry of results.json: the run's recipe, arm, seed, scale, keys, source arm and result
// (null for a failed run); result is copied.
cJSON *results_row(const Recipe *r, const Arm *a, const Scale *scale, int seed, const cJSON *result);

#endif
