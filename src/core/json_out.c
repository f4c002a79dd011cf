// json_out.c: see json_out.h.
#include "json_out.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

cJSON *json_number(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

void json_add_number(cJSON *obj, const char *key, double v) {
    cJSON_AddItemToObject(obj, key, json_number(v));
}

void json_add_doubles(cJSON *obj, const char *key, const double *v, size_t n) {
    cJSON *a = cJSON_AddArrayToObject(obj, key);
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(a, json_number(v[i]));
}

void json_add_floats(cJSON *obj, const char *key, const float *v, size_t n) {
    cJSON *a = cJSON_AddArrayToObject(obj, key);
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(a, json_number(v[i]));
}

void json_add_longs(cJSON *obj, const char *key, const long *v, size_t n) {
    cJSON *a = cJSON_AddArrayToObject(obj, key);
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)v[i]));
}

char *json_to_line(const cJSON *obj) {
    char *text = cJSON_PrintUnformatted(obj);
    if (!text) fatal("out of memory printing JSON");
    size_t n = strlen(text);
    char *line = realloc(text, n + 2);
    if (!line) fatal("out of memory printing JSON");
    line[n] = '\n', line[n + 1] = 0;
    return line;
}

void json_print_line(FILE *f, const cJSON *obj) {
    char *line = json_to_line(obj);
    fputs(line, f);
    fflush(f);
    free(line);
}
