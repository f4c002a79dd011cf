// plots.c: see plots.h.
#include "plots.h"

#include <math.h>
#include <string.h>

#include "common.h"
#include "result_keys.h"
#include "spawn.h"

// s for a single-quoted gnuplot string, where a quote is doubled: OUT may contain one.
typedef struct {
    char s[8400];
} Quoted;

static Quoted gp(const char *s) {
    Quoted q;
    size_t o = 0;
    for (; *s && o + 2 < sizeof q.s; s++) {
        if (*s == '\'') q.s[o++] = '\'';
        q.s[o++] = *s;
    }
    q.s[o] = 0;
    return q;
}

// Runs `gnuplot SCRIPT` (its messages discarded). A missing gnuplot is said once per command.
static void run_gnuplot(const char *script, const char *png) {
    static int absent;
    if (absent) return;
    char why[256];
    char *argv[] = {"gnuplot", (char *)script, NULL};
    int rc = spawn_wait(argv, 1, NULL, NULL, why, sizeof why);
    if (rc < 0) {
        absent = 1;
        warnf("plots skipped: %s (install gnuplot to get the PNG plots)", why);
    } else if (rc > 0) {
        warnf("plot %s not written (gnuplot: %s; try gnuplot '%s')", png, why, script);
    }
}

void plot_curves(const char *out, const Recipe *r, const Scale *scale) {
    char png[4200], script[4200];
    snprintf(png, sizeof png, "%s/%s_convergence.png", out, r->name);
    snprintf(script, sizeof script, "%s/%s_convergence.gp", out, r->name);
    FILE *g = xfopen(script, "w", "gnuplot script");
    fprintf(g, "set terminal pngcairo size 900,560 noenhanced\nset output '%s'\nset title \"%s: "
               "training loss, seed 0\"\nset xlabel 'step'\nset ylabel 'training loss'\n"
               "set key top right\nplot ", gp(png).s, r->name);
    int curves = 0;
    for (const Arm *a = r->arms; a->name; a++) {
        if (a->kind != RUN_TRAIN || !arm_active(a, scale)) continue;
        char data[4200], metrics[4200];
        snprintf(data, sizeof data, "%s/%s/seed0/loss.dat", out, a->name);
        snprintf(metrics, sizeof metrics, "%s/%s/seed0/metrics.jsonl", out, a->name);
        if (!file_exists(metrics)) continue;
        size_t len;
        char *text = read_file(metrics, &len, "metrics log");
        FILE *d = xfopen(data, "w", "plot data");
        for (char *save, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            cJSON *j = cJSON_Parse(line);  // training lines have a loss; evaluation lines not
            double step = result_num(j, RK_STEP), loss = result_num(j, RK_LOSS);
            if (isfinite(loss)) fprintf(d, "%g %g\n", step, loss);
            cJSON_Delete(j);
        }
        fclose(d);
        xfree(text);
        fprintf(g, "%s'%s' using 1:2 with lines title '%s'", curves ? ", " : "", gp(data).s, a->name);
        curves++;
    }
    fprintf(g, "\n");
    fclose(g);
    if (curves) run_gnuplot(script, png);
}

void plot_gradient(const char *out, const Recipe *r, const Scale *scale, const ArmStats *st) {
    char png[4200], script[4200], data[4200];
    snprintf(png, sizeof png, "%s/%s_gradient.png", out, r->name);
    snprintf(script, sizeof script, "%s/%s_gradient.gp", out, r->name);
    snprintf(data, sizeof data, "%s/%s_gradient.dat", out, r->name);
    FILE *d = xfopen(data, "w", "plot data");
    fprintf(d, "# layers_unfrozen learned_ppl learned_sd random_ppl random_sd\n");
    int points = 0;
    for (int n = 0; n <= scale->n_layer; n++) {
        double v[4] = {NAN, NAN, NAN, NAN};
        for (int i = 0; r->arms[i].name; i++) {
            const Arm *a = &r->arms[i];
            if (!arm_active(a, scale) || unfrozen_layers(a, scale) != n || !st[i].done) continue;
            int random = strstr(a->name, "random") != NULL;
            v[2 * random] = st[i].ppl, v[2 * random + 1] = st[i].ppl_sd;
        }
        if (isfinite(v[0]) || isfinite(v[2]))  // gnuplot reads 'nan' as missing (set below)
            fprintf(d, "%d %g %g %g %g\n", n, v[0], v[1], v[2], v[3]), points++;
    }
    fclose(d);
    FILE *g = xfopen(script, "w", "gnuplot script");
    fprintf(g, "set terminal pngcairo size 900,560 noenhanced\nset output '%s'\n"
               "set title \"absorption gradient: soft gate from the dense model\"\n"
               "set xlabel 'layers unfrozen (top)'\nset ylabel 'validation perplexity'\n"
               "set xtics 1\nset key top right\nset datafile missing 'nan'\n"
               "plot '%s' using 1:2:3 with yerrorlines title 'learned gate', "
               "'%s' using 1:4:5 with yerrorlines title 'frozen random gate'\n", gp(png).s, gp(data).s, gp(data).s);
    fclose(g);
    if (points) run_gnuplot(script, png);
}

void plot_concentration(const char *out, const char *recipe, cJSON *const *res, int seeds, int k) {
    char png[4200], script[4200], data[4200], base[300] = "concentration";
    if (strcmp(recipe, "concentration") != 0) snprintf(base, sizeof base, "%s_concentration", recipe);
    snprintf(png, sizeof png, "%s/%s.png", out, base);
    snprintf(script, sizeof script, "%s/%s.gp", out, base);
    snprintf(data, sizeof data, "%s/%s.dat", out, base);
    FILE *d = xfopen(data, "w", "plot data");
    fprintf(d, "# layer topk_mass entropy_ratio (mean over seeds)\n");
    int layers = res[0] ? cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(res[0], RK_TOPK_MASS)) : 0;
    for (int l = 0; l < layers; l++) {
        double m = 0, e = 0;
        int n = 0;
        for (int s = 0; s < seeds; s++) {
            double mm = result_item(res[s], RK_TOPK_MASS, l), ee = result_item(res[s], RK_ENTROPY_RATIO, l);
            if (!isfinite(mm) || !isfinite(ee)) continue;
            m += mm, e += ee, n++;
        }
        if (n) fprintf(d, "%d %g %g\n", l, m / n, e / n);
    }
    fclose(d);
    FILE *g = xfopen(script, "w", "gnuplot script");
    fprintf(g, "set terminal pngcairo size 900,560 noenhanced\nset output '%s'\n"
               "set title \"dense attention concentration per layer (k = %d)\"\nset xlabel 'layer'\n"
               "set yrange [0:1.05]\nset xtics 1\nset key bottom right\n"
               "plot '%s' using 1:2 with linespoints title 'top-k attention mass', "
               "'%s' using 1:3 with linespoints title 'entropy / log(visible keys)'\n",
            gp(png).s, k, gp(data).s, gp(data).s);
    fclose(g);
    if (layers) run_gnuplot(script, png);
}
