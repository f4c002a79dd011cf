// fanout.h: a sweep handed to an existing engine instead of run here (`repro --plan=make|slurm`).
// Every run (arm and seed, once per arm name) becomes one job that runs
// `routelab repro ... --only=ARM/seedS` from the directory the plan was made in, so a job is
// exactly what repro itself would do for that run (skip when finished, resume an interrupted
// training, run.signature, result.json renamed into place); a job waits for the run it starts
// from. Afterwards `routelab repro ...` without --plan finds every finished run and writes the
// report as if it had run them.
//   make:  OUT/Makefile, one target OUT-relative ARM/seedS/result.json per run: make -C OUT -jN.
//   slurm: OUT/slurm/ARM.seedS.sbatch per run and OUT/submit.sh, which submits the unfinished
//          ones chained with --dependency=afterok:; a job stopped by its time limit checkpoints
//          and requeues itself.
#ifndef ROUTELAB_FANOUT_H
#define ROUTELAB_FANOUT_H
#include <stddef.h>

#include "runner.h"

// One run of the sweep: an arm (its first definition in the chosen recipes) and a seed.
typedef struct {
    const Arm *arm;
    int seed;
    int from_seed;  // the seed of the run it waits for (arm->from), -1: none (or --model)
                    // (a RUN_GATEINFO run also waits for its arm->ref run of the same seed)
} PlanRun;

// Slurm resources of every job (NULL or 0: the scale's, see fanout.c).
typedef struct {
    const char *time, *mem, *partition;
    int cpus;
} SlurmResources;

// The sweep's runs, once per arm name and seed, every run after the run it starts from (dies
// otherwise: a recipe table error). runs has room for n_recipes * MAX_ARMS * seeds; returns the count.
size_t plan_collect(PlanRun *runs, const Recipe *const *recipes, size_t n_recipes,
                    const RunContext *c, int seeds);

// Writes the plan into c->out. repro_args: the repro command line that reproduces this sweep
// (argv[0] the routelab executable, no --plan, no --only); cwd: where it must run.
void plan_write(const char *engine, const RunContext *c, const PlanRun *runs, size_t n_runs,
                char *const *repro_args, const char *cwd, const SlurmResources *res);

#endif
