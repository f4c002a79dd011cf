// cmd_repro.c: `routelab repro NAME[,NAME...]|all [--scale=...] [--seeds=N] [--out=DIR]
// [--distill_steps=N] [--key=value ...]`: parses the command line into ReproOptions and hands
// them to repro_run (src/exp/repro.c), which does the work.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "recipes.h"
#include "repro.h"

static void print_help(void) {
    printf("usage: routelab repro NAME[,NAME...] [--scale=tiny|small|paper] [--seeds=3]\n"
           "       [--out=DIR] [--distill_steps=N] [--key=value ...]\n"
           "  Runs recipes of the routing-absorption paper over several seeds, resumably,\n"
           "  and writes results.json, report.md and PNG plots into DIR (default\n"
           "  runs/repro-NAME-SCALE). Config keys given here override the scale's in\n"
           "  training runs. Runs of the same arm name are shared between recipes.\n"
           "  Scales: tiny (MQAR, built in, ~30 s a run), small (KJV: make data-kjv,\n"
           "  ~3.5 min a run), paper (the paper's model; --data=SHARDS). Recipes:\n");
    for (size_t r = 0; r < N_RECIPES; r++) printf("    %-14s %s\n", RECIPES[r].name, RECIPES[r].what);
    printf("    %-14s every recipe, sharing runs of the same name (one dense model)\n", "all");
}

// The command line into o; --help prints the usage and exits. Any other --key=value is an
// override of the training runs' config, kept in o->overrides (pointers into argv).
static void parse_repro_options(int argc, char **argv, ReproOptions *o, const char **overrides) {
    *o = (ReproOptions){.scale = "tiny", .seeds = 3, .overrides = overrides};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            print_help();
            exit(0);
        }
        if (!strncmp(a, "--scale=", 8)) o->scale = a + 8;
        else if (!strncmp(a, "--seeds=", 8)) o->seeds = atoi(a + 8);
        else if (!strncmp(a, "--out=", 6)) o->out = a + 6;
        else if (!strncmp(a, "--distill_steps=", 16)) o->distill_steps = atoi(a + 16);
        else if (!strncmp(a, "--", 2) && strchr(a, '=')) overrides[o->n_overrides++] = a;
        else if (!o->name) o->name = a;
        else fatal("repro: unexpected argument '%s' (see --help)", a);
    }
    if (!o->name) fatal("repro: name a recipe (see routelab repro --help)");
    if (o->seeds < 1 || o->seeds > MAX_SEEDS)
        fatal("repro: --seeds must be in 1..%d, got %d", MAX_SEEDS, o->seeds);
    if (o->distill_steps < 0) fatal("repro: --distill_steps must be positive");
}

int cmd_repro(int argc, char **argv) {
    const char **overrides = xcalloc((size_t)argc + 1, sizeof *overrides);
    ReproOptions o;
    parse_repro_options(argc, argv, &o, overrides);
    int rc = repro_run(&o);
    xfree(overrides);
    return rc;
}
