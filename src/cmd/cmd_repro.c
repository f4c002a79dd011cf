// cmd_repro.c: `routelab repro NAME[,NAME...]|all [--scale=...] [--seeds=N] [--out=DIR]
// [--distill_steps=N] [--key=value ...]`: parses the command line into ReproOptions and hands
// them to repro_run (src/exp/repro.c), which does the work.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "options.h"
#include "recipes.h"
#include "repro.h"

static void print_help(void) {
    printf("usage: routelab repro NAME[,NAME...] [--scale=tiny|small|medium|paper] [--seeds=3]\n"
           "       [--out=DIR] [--distill_steps=N] [--list] [--plan=make|slurm] [--key=value ...]\n"
           "       [--model=HFDIR [--data=TEXT|SHARDS]]\n"
           "  Runs recipes of the routing-absorption paper over several seeds, resumably,\n"
           "  and writes results.json, report.md and PNG plots into DIR (default\n"
           "  runs/repro-NAME-SCALE). Config keys given here override the scale's in\n"
           "  training runs. Runs of the same arm name are shared between recipes.\n"
           "  --plan=make writes DIR/Makefile (make -C DIR -j N runs the sweep), --plan=slurm\n"
           "  DIR/submit.sh and one sbatch script per run; afterwards the same command without\n"
           "  --plan writes the report from the finished runs.\n"
           "  Scales: tiny (MQAR, built in, ~30 s a run), small (KJV: make data-kjv,\n"
           "  ~3.5 min a run), medium (KJV, Llama family, attention concentrated as the\n"
           "  paper's premise needs: make data-kjv, ~5 min a run), paper (the paper's model;\n"
           "  --data=SHARDS).\n"
           "  The llm-* recipes (the paper's Section 5) run on a pretrained model: --model=DIR\n"
           "  (Llama, Qwen2, Qwen3, GPT-2) with --data=TEXT (tokenized with DIR/tokenizer.json)\n"
           "  or prepared shards; at tiny and small they train and export a small Qwen3-family\n"
           "  model of their own and run on it; --scale=paper is the paper's protocol (lr 1e-4,\n"
           "  batch 4, 5000 steps, 512-token windows; distillation 1000 steps at lr 1e-3).\n"
           "  Recipes:\n");
    for (size_t r = 0; r < N_RECIPES; r++) printf("    %-18s %s\n", RECIPES[r].name, RECIPES[r].what);
    printf("    %-18s the paper's experiments (exp1 ... routing-precision), sharing runs of the same name (one dense model)\n", "all");
    printf("    %-18s its open questions and follow-ups (stochastic-variants ... gate-information)\n", "open");
    printf("    %-18s the four llm-* recipes (one pretrained model)\n", "llm");
}

// The command line into o (options.c validates every number); --help prints the usage and
// exits. Every --key=value config key is an override of the training runs' config: checked
// here against the key table (type, typo hint) and kept in o->overrides (pointers into argv).
static void parse_repro_options(int argc, char **argv, ReproOptions *o, const char **overrides) {
    *o = (ReproOptions){.overrides = overrides};
    const char *name[1] = {NULL};
    const Option opts[] = {
        {"scale", OPT_STRING, &o->scale, "tiny", "tiny | small | medium | paper", 0, 0},
        {"seeds", OPT_INT, &o->seeds, "3", "seeds per arm", 1, MAX_SEEDS},
        {"out", OPT_STRING, &o->out, NULL, "output directory", 0, 0},
        {"distill_steps", OPT_INT, &o->distill_steps, "0",
         "gate-distillation steps (0: the scale's)", 0, 1e9},
        {"list", OPT_FLAG, &o->list, NULL,
         "print the sweep's runs (arm, seed, kind, recipes, command line) as JSON; run nothing", 0, 0},
        {"plan", OPT_STRING, &o->plan, NULL,
         "make | slurm: write OUT/Makefile or OUT/submit.sh + OUT/slurm/*.sbatch; run nothing", 0, 0},
        {"only", OPT_STRING, &o->only, NULL, "ARM/seedS: run only that run of the sweep (a plan's job)", 0, 0},
        {"sbatch_time", OPT_STRING, &o->sbatch_time, NULL, "--plan=slurm: every job's --time (default: the scale's)", 0, 0},
        {"sbatch_mem", OPT_STRING, &o->sbatch_mem, NULL, "--plan=slurm: every job's --mem", 0, 0},
        {"sbatch_cpus", OPT_INT, &o->sbatch_cpus, "0", "--plan=slurm: every job's --cpus-per-task (0: the scale's)", 0, 4096},
        {"sbatch_partition", OPT_STRING, &o->sbatch_partition, NULL, "--plan=slurm: the jobs' partition", 0, 0},
        {"model", OPT_STRING, &o->model, NULL,
         "the llm recipes' pretrained model: a Hugging Face directory (default: the scale's own)", 0, 0},
    };
    OptSpec os = {.cmd = "repro", .opts = opts, .n_opts = sizeof opts / sizeof *opts,
                  .config_keys = 1, .positional = name, .max_positional = 1};
    if (options_parse(&os, argc, argv)) {
        print_help();
        exit(0);
    }
    if (!name[0]) fatal("repro: name a recipe (see routelab repro --help)");
    o->name = name[0];
    Config scratch;  // the overrides must be valid keys with valid values
    config_defaults(&scratch);
    options_apply_config(&os, &scratch, argc, argv);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *eq = strchr(a, '=');
        if (strncmp(a, "--", 2) || !eq) continue;
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)(eq - a - 2), a + 2);
        if (config_is_key(key) || !strcmp(key, "config")) overrides[o->n_overrides++] = a;
    }
}

int cmd_repro(int argc, char **argv) {
    const char **overrides = xcalloc((size_t)argc + 1, sizeof *overrides);
    ReproOptions o;
    parse_repro_options(argc, argv, &o, overrides);
    int rc = repro_run(&o);
    xfree(overrides);
    return rc;
}
