// progress.c: see progress.h.
#include "progress.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "result_keys.h"
#include <cjson/cJSON.h>

void progress_init(Progress *p, const RunKind *kinds, size_t n) {
    *p = (Progress){.total = n, .tty = isatty(1)};
    for (size_t i = 0; i < n; i++) p->left[kinds[i]]++;
    p->seen = xcalloc(n ? n : 1, sizeof *p->seen);
    p->last_print = now_seconds();
}

void progress_free(Progress *p) {
    xfree(p->seen);
    p->seen = NULL;
}

// "1h02m", "4m10s", "35s"; "?" when unknown.
static void duration_text(char *out, size_t cap, double s) {
    if (!isfinite(s) || s < 0) snprintf(out, cap, "?");
    else if (s >= 3600) snprintf(out, cap, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else if (s >= 60) snprintf(out, cap, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else snprintf(out, cap, "%ds", (int)s);
}

// The steps of the run's config.ini (the child writes it first), 0 when not there yet.
static int config_steps(const char *dir) {
    char path[4200], line[512];
    join_path(path, sizeof path, dir, "config.ini");
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int steps = 0;
    while (fgets(line, sizeof line, f)) sscanf(line, "steps = %d", &steps);
    fclose(f);
    return steps;
}

// The last complete line of the run's metrics.jsonl with a training step, or NULL.
static cJSON *last_step(const char *dir) {
    char path[4200], buf[8192];
    join_path(path, sizeof path, dir, "metrics.jsonl");
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long end = ftell(f);
    long at = end > (long)sizeof buf - 1 ? end - (long)sizeof buf + 1 : 0;
    fseek(f, at, SEEK_SET);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    cJSON *best = NULL;
    for (char *save, *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *j = cJSON_Parse(line);  // a partial first or last line does not parse
        if (j && cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, RK_TOKENS_PER_S))) {
            cJSON_Delete(best);
            best = j;
        } else {
            cJSON_Delete(j);
        }
    }
    return best;
}

// The sweep's remaining time: the running run's, plus each kind's mean time times its runs
// left (kinds not timed yet count as their mean over the kinds timed, or are left out: '+').
static double sweep_eta(const Progress *p, double running_left, int *partial) {
    double eta = isfinite(running_left) ? running_left : 0, all = 0;
    size_t timed = 0;
    for (int k = 0; k < PROGRESS_KINDS; k++) all += p->seconds[k], timed += p->timed[k];
    *partial = p->arm && !isfinite(running_left);
    if (!timed) return NAN;  // nothing to extrapolate from yet
    for (int k = 0; k < PROGRESS_KINDS; k++) {
        // the running run is in left[k]; subtract it where its own ETA is counted above
        size_t left = p->left[k] - (p->arm && (int)p->arm->kind == k && p->left[k] > 0 && isfinite(running_left));
        if (!left) continue;
        if (p->timed[k]) eta += left * p->seconds[k] / p->timed[k];
        else if (timed) eta += left * all / timed, *partial = 1;
        else *partial = 1;
    }
    return eta;
}

static void print_line(Progress *p, int final) {
    char line[512], run_eta[32], eta[32];
    size_t o = (size_t)snprintf(line, sizeof line, "[%zu/%zu runs]", p->done, p->total);
    double running_left = NAN;
    if (p->arm && !final) {
        double elapsed = now_seconds() - p->started;
        o += (size_t)snprintf(line + o, sizeof line - o, " %s seed %d", p->arm->name, p->seed);
        cJSON *j = p->arm->kind == RUN_TRAIN || p->arm->kind == RUN_DISTILL ? last_step(p->dir) : NULL;
        if (!p->steps) p->steps = config_steps(p->dir);
        if (j) {
            int step = (int)cJSON_GetObjectItemCaseSensitive(j, RK_STEP)->valuedouble;
            double tps = cJSON_GetObjectItemCaseSensitive(j, RK_TOKENS_PER_S)->valuedouble;
            if (p->steps > 0 && step > 0 && step <= p->steps) {
                running_left = (p->steps - step) * elapsed / step;
                duration_text(run_eta, sizeof run_eta, running_left);
                o += (size_t)snprintf(line + o, sizeof line - o, ": step %d/%d, %.0f tok/s, ETA %s",
                                      step, p->steps, tps, run_eta);
            }
            cJSON_Delete(j);
        } else {
            duration_text(run_eta, sizeof run_eta, elapsed);
            o += (size_t)snprintf(line + o, sizeof line - o, ": %s", run_eta);
        }
    }
    int partial;
    double e = sweep_eta(p, running_left, &partial);
    duration_text(eta, sizeof eta, e);
    if (o < sizeof line)
        snprintf(line + o, sizeof line - o, " | sweep ETA %s%s", eta, partial ? "+" : "");
    if (p->tty) printf("\r%-110s%s", line, final ? "\n" : "");
    else printf("progress: %s\n", line);
    fflush(stdout);
    p->last_print = now_seconds();
}

void progress_start(Progress *p, const Arm *arm, int seed, const char *dir) {
    p->arm = arm, p->seed = seed, p->steps = 0, p->started = now_seconds();
    snprintf(p->dir, sizeof p->dir, "%s", dir);
    if (!p->tty) print_line(p, 0);
}

void progress_tick(void *ctx) {
    Progress *p = ctx;
    if (p->tty || now_seconds() - p->last_print >= PROGRESS_LOG_EVERY_S) print_line(p, 0);
}

void progress_end(Progress *p, const Arm *arm, int seed, int executed) {
    char key[160];
    snprintf(key, sizeof key, "%s/seed%d", arm->name, seed);
    for (size_t i = 0; i < p->done; i++)
        if (!strcmp(p->seen[i], key)) return;  // a run shared by recipes counts once
    if (p->done < p->total) snprintf(p->seen[p->done++], sizeof p->seen[0], "%s", key);
    if (p->left[arm->kind]) p->left[arm->kind]--;
    if (executed) p->timed[arm->kind]++, p->seconds[arm->kind] += now_seconds() - p->started;
    p->arm = NULL;
    if (executed && p->tty) print_line(p, 1);
    else if (executed) print_line(p, 0);
}
