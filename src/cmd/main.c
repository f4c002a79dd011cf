// main.c: the routelab command line: one function per command, each with --help.
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "dist.h"
#include "common.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} Command;

static const Command COMMANDS[] = {
    {"train", cmd_train, "train a model (built-in MQAR or prepared shards); --resume=RUNDIR"},
    {"eval", cmd_eval, "evaluate a checkpoint (perplexity / accuracy, diagnostics, any routing)"},
    {"sample", cmd_sample, "generate text from a checkpoint"},
    {"distill", cmd_distill, "post-hoc gate distillation (KL or BCE) on a frozen checkpoint"},
    {"gateinfo", cmd_gateinfo, "bits a gate carries about which keys matter to a gate-free model"},
    {"probe", cmd_probe, "routing precision of content-based routers on MQAR (and a Bloom index)"},
    {"export", cmd_export, "write a checkpoint as a Hugging Face model directory (safetensors)"},
    {"prepare", cmd_prepare, "tokenize text files into train/val token shards (llm.c format)"},
    {"tokenizer-train", cmd_tokenizer_train, "train a byte-level BPE tokenizer"},
    {"repro", cmd_repro, "run a recipe of the routing-absorption paper over seeds (report, plots)"},
    {"bench", cmd_bench, "time training steps (tokens/s, per-operation breakdown)"},
    {"refcheck", cmd_refcheck, "compare against PyTorch reference cases (../shared/ref)"},
};
#define N_COMMANDS (int)(sizeof COMMANDS / sizeof COMMANDS[0])

static void usage(FILE *f) {
    fprintf(f, "routelab: a C framework for studying routing in transformers\n\n"
               "usage: routelab COMMAND [--key=value ...]   (routelab COMMAND --help for more)\n\n"
               "commands:\n");
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-16s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return argc < 2 ? 1 : 0;
    }
    dist_init(&argc, &argv);  // refuses mpirun in a build without MPI
    for (int i = 0; i < N_COMMANDS; i++) {
        if (strcmp(argv[1], COMMANDS[i].name) != 0) continue;
        // Only training is data-parallel; any other command under mpirun would run N times over.
        if (dist_size() > 1 && strcmp(argv[1], "train") != 0)
            fatal("%s runs on one process: only train is data-parallel over mpirun's ranks; run "
                  "`routelab %s` without mpirun", argv[1], argv[1]);
        int rc = COMMANDS[i].run(argc - 1, argv + 1);
        dist_finalize();
        return rc;
    }
    fprintf(stderr, "routelab: error: unknown command '%s' (see routelab --help)\n", argv[1]);
    return 2;
}
