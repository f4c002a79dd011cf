// options.h: the one command-line parser of routelab. A command declares its own options as a
// table (name, type, destination, default, help, range); options_parse fills them, validates
// every number (one-line error naming the option and the expected type or range), answers
// --help, applies --threads=N (omp_set_num_threads) and refuses unknown options with the
// closest name (edit distance, as config keys). Commands that take config keys then apply
// them with options_apply_config: --config=FILE first, then --key=value; into a fresh Config,
// or on top of a checkpoint's, where keys outside `changeable` are refused as fixed.
#ifndef ROUTELAB_OPTIONS_H
#define ROUTELAB_OPTIONS_H
#include <stddef.h>

#include "config.h"

typedef enum {
    OPT_INT,     // int *; integer in [lo, hi]
    OPT_LONG,    // long *; integer in [lo, hi]
    OPT_FLOAT,   // float *; finite number in [lo, hi]
    OPT_DOUBLE,  // double *; finite number in [lo, hi]
    OPT_STRING,  // const char **; points into argv (or at the default)
    OPT_FLAG,    // int *; --name sets 1 (takes no value)
} OptType;

typedef struct {
    const char *name;  // without the leading "--"
    OptType type;
    void *dest;
    const char *def;   // default as text (NULL: string NULL / number and flag 0)
    const char *help;
    double lo, hi;     // range of a number
} Option;

typedef struct {
    const char *cmd;           // names the command in errors: "sample", "train --resume"
    const Option *opts;
    size_t n_opts;
    int config_keys;           // 1: --key=value config keys and --config=FILE are accepted
    const char **positional;   // room for arguments that are not options (NULL: none taken)
    size_t max_positional;
    size_t n_positional;       // out: how many were given
    // options_apply_config on a checkpoint's config: only these keys may change (NULL: all)
    const char *const *changeable;
    const char *fixed_hint;    // why the others are fixed, e.g. "only routing keys may change"
} OptSpec;

// Sets the defaults, then parses argv[1..argc). Returns 1 when --help (or -h) was given (the
// command prints its usage), else 0. Dies with one line on any bad argument.
int options_parse(OptSpec *s, int argc, char **argv);
// Applies the config keys of argv to c (--config=FILE first, the command line wins): every key
// when s->changeable is NULL, else only those listed (the others die "CMD: 'KEY' is fixed by
// the checkpoint (HINT)"; a file may repeat a fixed key with the checkpoint's value).
void options_apply_config(const OptSpec *s, Config *c, int argc, char **argv);

#endif
