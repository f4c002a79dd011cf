// options.c: see options.h.
#include "options.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define MAX_THREADS 4096

static int in_list(const char *const *list, const char *s) {
    for (; list && *list; list++)
        if (!strcmp(s, *list)) return 1;
    return 0;
}

// "train --resume" -> "train": the command to ask for --help.
static int cmd_word_len(const char *cmd) {
    const char *sp = strchr(cmd, ' ');
    return sp ? (int)(sp - cmd) : (int)strlen(cmd);
}

static void range_text(char *buf, size_t cap, const Option *o) {
    if (o->hi >= 1e9) snprintf(buf, cap, ">= %g", o->lo);
    else snprintf(buf, cap, "in [%g, %g]", o->lo, o->hi);
}

static void out_of_range(const char *cmd, const char *name, int integer, const char *v,
                         const Option *range) {
    char r[96];
    range_text(r, sizeof r, range);
    fatal("%s: --%s must be %s %s, got '%s'", cmd, name, integer ? "an integer" : "a number", r, v);
}

// Parses and range-checks an integer; dies naming the option and what it expects.
static long parse_integer(const char *cmd, const char *name, const char *v, const Option *range) {
    char *end = NULL;
    errno = 0;
    long l = strtol(v, &end, 10);
    if (!*v || *end || errno == EINVAL) fatal("%s: --%s expects an integer, got '%s'", cmd, name, v);
    if (errno == ERANGE || (double)l < range->lo || (double)l > range->hi)
        out_of_range(cmd, name, 1, v, range);
    return l;
}

// The same for a (finite) number.
static double parse_number(const char *cmd, const char *name, const char *v, const Option *range) {
    char *end = NULL;
    errno = 0;
    double x = strtod(v, &end);
    if (!*v || *end || errno || !isfinite(x))
        fatal("%s: --%s expects a number, got '%s'", cmd, name, v);
    if (x < range->lo || x > range->hi) out_of_range(cmd, name, 0, v, range);
    return x;
}

static void set_option(const char *cmd, const Option *o, const char *v) {
    switch (o->type) {
    case OPT_INT: *(int *)o->dest = v ? (int)parse_integer(cmd, o->name, v, o) : 0; break;
    case OPT_LONG: *(long *)o->dest = v ? parse_integer(cmd, o->name, v, o) : 0; break;
    case OPT_FLOAT: *(float *)o->dest = v ? (float)parse_number(cmd, o->name, v, o) : 0.0f; break;
    case OPT_DOUBLE: *(double *)o->dest = v ? parse_number(cmd, o->name, v, o) : 0.0; break;
    case OPT_STRING: *(const char **)o->dest = v; break;
    case OPT_FLAG: *(int *)o->dest = v != NULL; break;
    }
}

static void apply_threads(const char *cmd, const char *v) {
    static const Option range = {"threads", OPT_INT, NULL, NULL, NULL, 0, MAX_THREADS};
    int n = (int)parse_integer(cmd, "threads", v, &range);
    if (n > 0) omp_set_num_threads(n);
}

// Dies on an unknown option, naming the closest own option or config key.
_Noreturn static void unknown(const OptSpec *s, const char *name) {
    const char *best = NULL;
    int bestd = 4, own = 0;
    for (size_t i = 0; i < s->n_opts; i++) {
        int d = config_edit_distance(name, s->opts[i].name);
        if (d < bestd) bestd = d, best = s->opts[i].name, own = 1;
    }
    static const char *const builtin[] = {"help", "threads", "config", NULL};
    for (const char *const *b = builtin; *b; b++) {
        if (!s->config_keys && !strcmp(*b, "config")) continue;
        int d = config_edit_distance(name, *b);
        if (d < bestd) bestd = d, best = *b, own = 1;
    }
    if (s->config_keys) {
        const char *k = config_closest_key(name);
        if (k && config_edit_distance(name, k) < bestd) best = k, own = 0;
    }
    int w = cmd_word_len(s->cmd);
    if (best && own)
        fatal("%s: unknown option '--%s' (did you mean '--%s'? see routelab %.*s --help)", s->cmd,
              name, best, w, s->cmd);
    if (best)
        fatal("%s: unknown config key '%s' (did you mean '%s'? see routelab %.*s --help)", s->cmd,
              name, best, w, s->cmd);
    fatal("%s: unknown %s '--%s' (see routelab %.*s --help)", s->cmd,
          s->config_keys ? "option or config key" : "option", name, w, s->cmd);
}

int options_parse(OptSpec *s, int argc, char **argv) {
    for (size_t i = 0; i < s->n_opts; i++) set_option(s->cmd, &s->opts[i], s->opts[i].def);
    s->n_positional = 0;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
    int w = cmd_word_len(s->cmd);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || !a[2]) {
            if (s->positional && s->n_positional < s->max_positional) {
                s->positional[s->n_positional++] = a;
                continue;
            }
            fatal("%s: unexpected argument '%s' (options are --key=value; see routelab %.*s --help)",
                  s->cmd, a, w, s->cmd);
        }
        const char *eq = strchr(a, '=');
        char name[STR_LEN];
        snprintf(name, sizeof name, "%.*s", (int)(eq ? eq - a - 2 : (long)strlen(a) - 2), a + 2);
        const char *value = eq ? eq + 1 : NULL;
        const Option *o = NULL;
        for (size_t k = 0; k < s->n_opts && !o; k++)
            if (!strcmp(s->opts[k].name, name)) o = &s->opts[k];
        if (o) {
            if (o->type == OPT_FLAG && value)
                fatal("%s: --%s takes no value (give --%s alone)", s->cmd, name, name);
            if (o->type != OPT_FLAG && !value)
                fatal("%s: --%s needs a value, e.g. --%s=%s", s->cmd, name, name,
                      o->def ? o->def : "...");
            set_option(s->cmd, o, o->type == OPT_FLAG ? "" : value);
            continue;
        }
        int is_config = s->config_keys && (!strcmp(name, "config") || config_is_key(name));
        if (is_config || !strcmp(name, "threads")) {
            if (!value) fatal("%s: --%s needs a value (--%s=VALUE)", s->cmd, name, name);
            if (!strcmp(name, "threads")) apply_threads(s->cmd, value);
            continue;  // config keys are applied by options_apply_config
        }
        unknown(s, name);
    }
    return 0;
}

// A config file on top of a checkpoint's config: a fixed key may only repeat its value (so a
// run's own config.ini is accepted); the others apply.
static int fixed_key_filter(void *ctx, const Config *c, const char *name, const char *value,
                            const char *where) {
    const OptSpec *s = ctx;
    if (!config_is_key(name) || in_list(s->changeable, name)) return 1;
    Config tmp = *c;
    config_set(&tmp, name, value, where);
    if (memcmp(&tmp, c, sizeof tmp) != 0)
        fatal("%s: '%s' in %s is fixed by the checkpoint (%s)", s->cmd, name, where,
              s->fixed_hint ? s->fixed_hint : "see --help");
    return 0;
}

static void load_file(const OptSpec *s, Config *c, const char *path) {
    config_load_ini_filtered(c, path, s->changeable ? fixed_key_filter : NULL, (void *)s);
}

void options_apply_config(const OptSpec *s, Config *c, int argc, char **argv) {
    for (int i = 1; i < argc; i++)  // the file first, so that the command line wins over it
        if (!strncmp(argv[i], "--config=", 9)) load_file(s, c, argv[i] + 9);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *eq = strchr(a, '=');
        if (strncmp(a, "--", 2) || !eq) continue;
        char key[STR_LEN];
        snprintf(key, sizeof key, "%.*s", (int)(eq - a - 2), a + 2);
        int own = 0;
        for (size_t k = 0; k < s->n_opts; k++) own |= !strcmp(s->opts[k].name, key);
        if (own || !strcmp(key, "config") || !config_is_key(key)) continue;
        if (s->changeable && !in_list(s->changeable, key))
            fatal("%s: '%s' is fixed by the checkpoint (%s)", s->cmd, key,
                  s->fixed_hint ? s->fixed_hint : "see --help");
        config_set(c, key, eq + 1, "command line");
    }
}
