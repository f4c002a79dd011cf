// progress.h: where a sweep of hours is. Runs done (finished or skipped) out of the sweep's
// total, the running run's step, tokens/s and ETA (from its metrics.jsonl, as the child writes
// it), and the sweep's ETA from the runs timed so far (mean time per run kind, times the runs of
// each kind left). On a terminal: one line updated in place; otherwise (a log): a plain line
// when a run starts and ends and every PROGRESS_LOG_EVERY_S seconds.
#ifndef ROUTELAB_PROGRESS_H
#define ROUTELAB_PROGRESS_H
#include <stddef.h>

#include "recipes.h"

#define PROGRESS_LOG_EVERY_S 60.0
#define PROGRESS_KINDS N_RUN_KINDS

typedef struct {
    size_t total, done;                       // runs of the sweep (arm and seed, once each)
    size_t left[PROGRESS_KINDS];              // per run kind: runs not done yet
    size_t timed[PROGRESS_KINDS];             // per run kind: runs executed by this command
    double seconds[PROGRESS_KINDS];           //   and their wall time
    char (*seen)[160];                        // "ARM/seedS" of the runs counted done
    int tty;                                  // stdout is a terminal
    double last_print;
    // the running run
    const Arm *arm;
    int seed, steps;                          // steps: its config's, 0 when unknown
    char dir[4096];
    double started;
} Progress;

// kinds[i] is the kind of run i of the sweep's n runs (each arm and seed once).
void progress_init(Progress *p, const RunKind *kinds, size_t n);
void progress_free(Progress *p);
// A run starts in dir (its metrics.jsonl and config.ini are read from there).
void progress_start(Progress *p, const Arm *arm, int seed, const char *dir);
// Called about once a second while the run's child works: refreshes the line.
void progress_tick(void *p);
// The run ended: executed (its time counts towards the ETA) or skipped (finished before).
void progress_end(Progress *p, const Arm *arm, int seed, int executed);

#endif
