// cmd.h: the entry points of every routelab command, declared once. Each takes the command's
// arguments (argv[0] is the command name), parses them with options.h (its own option table,
// config keys where it takes them, --help, --threads=N) and returns the exit status.
#ifndef ROUTELAB_CMD_H
#define ROUTELAB_CMD_H

int cmd_train(int argc, char **argv);            // src/run/train.c
int cmd_eval(int argc, char **argv);             // src/run/eval.c
int cmd_gateinfo(int argc, char **argv);         // src/run/gate_info.c
int cmd_sample(int argc, char **argv);           // src/run/sample.c
int cmd_distill(int argc, char **argv);          // src/cmd/cmd_distill.c
int cmd_probe(int argc, char **argv);            // src/run/probe.c
int cmd_bench(int argc, char **argv);            // src/run/bench.c
int cmd_refcheck(int argc, char **argv);         // src/run/refcheck.c
int cmd_prepare(int argc, char **argv);          // src/cmd/cmd_data.c
int cmd_tokenizer_train(int argc, char **argv);  // src/cmd/cmd_data.c
int cmd_repro(int argc, char **argv);            // src/exp/repro.c
int cmd_export(int argc, char **argv);           // src/cmd/cmd_export.c

#endif
