// json_out.h: the one JSON writer. Every result routelab prints or stores (--json, result.json,
// results.json, metrics.jsonl, dataset.json) is a cJSON tree printed here, so strings are always
// escaped and a non-finite number is written as null: the output is strict JSON (RFC 8259),
// which bare `nan` or `inf` is not.
#ifndef ROUTELAB_JSON_OUT_H
#define ROUTELAB_JSON_OUT_H
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>

// Adds key: v, or key: null when v is NaN or infinite.
void json_add_number(cJSON *obj, const char *key, double v);
// Adds key: [v0, v1, ...] (non-finite entries null).
void json_add_doubles(cJSON *obj, const char *key, const double *v, size_t n);
void json_add_floats(cJSON *obj, const char *key, const float *v, size_t n);
void json_add_longs(cJSON *obj, const char *key, const long *v, size_t n);
// A number or null, for arrays built by hand.
cJSON *json_number(double v);
// Prints obj compactly on one line followed by '\n' and flushes f. Does not free obj.
void json_print_line(FILE *f, const cJSON *obj);
// The same text as a string (caller frees with free()), for files written atomically.
char *json_to_line(const cJSON *obj);

#endif
