// repro.h: `routelab repro`: the routing-absorption experiments as recipes (recipes.h), each arm
// run once per seed as a child process (runner.h), then report.md, results.json and plots in
// OUT. Runs of one arm name are shared by all recipes, and a sweep can be stopped and restarted
// at any time: finished runs are skipped, an interrupted one resumes.
#ifndef ROUTELAB_REPRO_H
#define ROUTELAB_REPRO_H
#include <stddef.h>

typedef struct {
    const char *name;               // NAME[,NAME...] or all
    const char *scale;              // tiny, small, medium or paper
    const char *out;                // NULL: runs/repro-NAME-SCALE (commas as '+')
    int seeds;                      // 1..MAX_SEEDS
    int distill_steps;              // 0: the scale's
    const char *const *overrides;   // --key=value entries added to every training run
    size_t n_overrides;
    int list;                       // print the sweep's runs as JSON instead of running them
    const char *plan;               // make | slurm: write the sweep for that engine (fanout.h)
    const char *only;               // ARM/seedS: run that one run of the sweep, no report
    const char *sbatch_time, *sbatch_mem, *sbatch_partition;  // --plan=slurm (NULL: the scale's)
    int sbatch_cpus;                // 0: the scale's
    const char *model;              // the llm recipes' pretrained model (a Hugging Face
                                    // directory); NULL: the scale's own (llm_base)
} ReproOptions;

// Runs the sweep; returns the exit status (1 when a run failed, after writing the report).
int repro_run(const ReproOptions *o);

#endif
