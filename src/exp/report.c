// report.c: see report.h. Every metric is read by its RK_* name (result_keys.h), so a key
// renamed in a command is a compile error here rather than a silent gap in the report.
#include "report.h"

#include <math.h>
#include <string.h>

#include "result_keys.h"

// ----------------------------------------------------------------------------- reading results
double result_num(const cJSON *j, const char *key) {
    const cJSON *v = j ? cJSON_GetObjectItemCaseSensitive(j, key) : NULL;
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

double result_item(const cJSON *j, const char *key, int i) {
    const cJSON *v = j ? cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, key), i) : NULL;
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

// Mean of the numbers in the array j[key] (nulls skipped); NAN when there are none.
static double mean_of_array(const cJSON *j, const char *key) {
    const cJSON *a = j ? cJSON_GetObjectItemCaseSensitive(j, key) : NULL, *v;
    double s = 0;
    int n = 0;
    cJSON_ArrayForEach(v, a) if (cJSON_IsNumber(v)) s += v->valuedouble, n++;
    return n ? s / n : NAN;
}

static void mean_std(const double *x, int n, double *mean, double *std) {
    double s = 0, ss = 0;
    int k = 0;
    for (int i = 0; i < n; i++) if (isfinite(x[i])) s += x[i], k++;
    *mean = k ? s / k : NAN;
    for (int i = 0; i < n; i++) if (isfinite(x[i])) ss += (x[i] - *mean) * (x[i] - *mean);
    *std = k > 1 ? sqrt(ss / (k - 1)) : 0.0;
}

ArmStats arm_stats(const Arm *a, cJSON *const *res, int seeds) {
    double p[MAX_SEEDS] = {0}, acc[MAX_SEEDS] = {0}, f1[MAX_SEEDS] = {0}, ex[MAX_SEEDS] = {0};
    ArmStats st = {0};
    for (int s = 0; s < seeds; s++) {
        p[s] = result_num(res[s], a->kind == RUN_DISTILL ? RK_HARD_VAL_PPL : RK_VAL_PPL);
        acc[s] = result_num(res[s], a->kind == RUN_DISTILL ? RK_HARD_VAL_ACCURACY : RK_VAL_ACCURACY);
        f1[s] = mean_of_array(res[s], RK_GATE_F1);
        ex[s] = result_num(res[s], RK_EXACT_MATCH);
        st.done |= res[s] != NULL;
    }
    mean_std(ex, seeds, &st.exact, &st.exact_sd);
    mean_std(p, seeds, &st.ppl, &st.ppl_sd);
    for (int s = 0; s < seeds; s++) st.seeds_with_ppl += isfinite(p[s]) != 0;
    st.seeds = seeds;
    mean_std(acc, seeds, &st.acc, &st.acc_sd);
    mean_std(f1, seeds, &st.f1, &st.f1_sd);
    return st;
}

// ----------------------------------------------------------------------------- number text
// A number as text, '–' when it is missing (NAN) or infinite: `%.3f` would print "nan".
// Returned by value so that it can sit in a printf argument list (C11 temporary lifetime).
typedef struct {
    char s[64];
} Text;

static Text num_text(const char *fmt, double v) {
    Text t;
    if (isfinite(v)) snprintf(t.s, sizeof t.s, fmt, v);
    else snprintf(t.s, sizeof t.s, "–");
    return t;
}

// "mean ± std" with each in fmt, or '–' when the mean is missing.
static Text pm_text(const char *fmt, double mean, double sd) {
    Text t = num_text(fmt, mean);
    if (!isfinite(mean)) return t;
    size_t n = strlen(t.s);
    n += (size_t)snprintf(t.s + n, sizeof t.s - n, " ± ");
    if (n < sizeof t.s) snprintf(t.s + n, sizeof t.s - n, fmt, sd);  // finite: mean is
    return t;
}

#define NUM(fmt, v) (num_text(fmt, v).s)
#define PM(fmt, m, sd) (pm_text(fmt, m, sd).s)

// ----------------------------------------------------------------------------- report sections
// How the routed arms spread their tokens (the final evaluation batch, mean over routed layers
// and seeds): a collapsed learned router would explain a gap to the random one by itself.
static void report_routing_health(FILE *f, const Recipe *r, const Scale *scale, RecipeResults res) {
    int header = 0;
    for (int i = 0; r->arms[i].name; i++) {
        const Arm *a = &r->arms[i];
        if (!arm_active(a, scale) || a->kind != RUN_TRAIN || !strstr(a->keys, "ffn=moe")) continue;
        double ent = 0, hi = 0, lo = 0, drop = 0;
        int n = 0, n_ent = 0, seeds = 0;
        for (int s = 0; s < MAX_SEEDS; s++) {
            if (!res[i][s]) continue;  // a failed seed: the others still count
            seeds++;
            const cJSON *U = cJSON_GetObjectItemCaseSensitive(res[i][s], RK_EXPERT_UTIL);
            for (int l = 0; l < cJSON_GetArraySize(U); l++) {
                const cJSON *u = cJSON_GetArrayItem(U, l), *v;
                double mx = 0, mn = 1;
                int E = 0;
                cJSON_ArrayForEach(v, u) if (cJSON_IsNumber(v))
                    mx = fmax(mx, v->valuedouble), mn = fmin(mn, v->valuedouble), E++;
                if (E < 1) continue;  // not a routed layer
                double h = result_item(res[i][s], RK_ROUTER_ENTROPY, l);  // already over ln E
                double d = result_item(res[i][s], RK_DROPPED, l);
                if (isfinite(h)) ent += h, n_ent++;
                hi += mx, lo += mn, drop += isfinite(d) ? d : 0, n++;
            }
        }
        if (!n) continue;
        if (!header++)
            fprintf(f, "\n| routed arm | per-token router entropy / ln E | busiest expert's share | idlest "
                       "expert's share | dropped share of choices | seeds |\n|---|---|---|---|---|---|\n");
        char e[32] = "n/a";  // a hash router has no probabilities
        if (n_ent) snprintf(e, sizeof e, "%.3f", ent / n_ent);
        fprintf(f, "| %s | %s | %.3f | %.3f | %.3g | %d |\n", a->name, e, hi / n, lo / n, drop / n, seeds);
    }
    if (header)
        fprintf(f, "\nRouting health on the last evaluation batch, mean over routed layers and seeds "
                   "(a hash router has no probabilities: entropy n/a; nothing is dropped unless "
                   "`capacity_factor` is set).\n");
}

// The arms' table: perplexity, accuracy, exact match and gate F1 beside the paper's values.
static void report_arms(FILE *f, const Recipe *r, const Scale *scale, RecipeResults res, const ArmStats *st) {
    int has_exact = 0, has_gate = 0;
    for (int i = 0; r->arms[i].name; i++) {
        has_exact |= arm_active(&r->arms[i], scale) && isfinite(st[i].exact);
        has_gate |= r->arms[i].kind == RUN_DISTILL || strstr(r->arms[i].keys, "attn=") != NULL ||
                    !strcmp(r->arms[i].name, "dense");
    }
    fprintf(f, "## %s: %s\n\n| arm | kind | val ppl | val accuracy |%s%s paper ppl | paper F1 |\n"
               "|---|---|---|---|%s%s---|---|\n", r->name, r->what, has_exact ? " exact match | exact match per seed |" : "",
            has_gate ? " gate F1 |" : "", has_exact ? "---|---|" : "", has_gate ? "---|" : "");
    static const char *kinds[N_RUN_KINDS] = {"train", "distill (deployed hard top-k)", "eval", "probe",
                                             "export", "gate information"};
    for (int i = 0; r->arms[i].name; i++) {
        const Arm *a = &r->arms[i];
        if (!arm_active(a, scale) || a->kind == RUN_PROBE || a->kind == RUN_EXPORT || a->kind == RUN_GATEINFO)
            continue;
        // a mean over fewer seeds than asked for says so (a failed or diverged seed)
        char partial[48] = "";
        if (st[i].seeds_with_ppl > 0 && st[i].seeds_with_ppl < st[i].seeds)
            snprintf(partial, sizeof partial, " (%d of %d seeds)", st[i].seeds_with_ppl, st[i].seeds);
        fprintf(f, "| %s | %s%s%s | %s%s | %s | ", a->name, kinds[a->kind],
                a->kind == RUN_EVAL ? " " : "", a->kind == RUN_EVAL ? a->keys : "",
                PM("%.3f", st[i].ppl, st[i].ppl_sd), partial, PM("%.4f", st[i].acc, st[i].acc_sd));
        if (has_exact && !isfinite(st[i].exact)) {  // a text arm beside addition arms
            fprintf(f, "– | – | ");
        } else if (has_exact) {  // per seed too: small tasks often split into solved and stuck seeds
            fprintf(f, "%s | ", PM("%.4f", st[i].exact, st[i].exact_sd));
            for (int s = 0, n = 0; s < MAX_SEEDS; s++)
                if (res[i][s]) fprintf(f, "%s%s", n++ ? " / " : "", NUM("%.3f", result_num(res[i][s], RK_EXACT_MATCH)));
            fprintf(f, " | ");
        }
        // expert-choice heads route tokens: their key gate's F1 would describe a gate never used
        int tokens = strstr(a->keys, "attn=expert_choice") != NULL;
        if (has_gate) fprintf(f, "%s | ", tokens ? "–" : NUM("%.3f", st[i].f1));
        fprintf(f, "%s | %s |\n", NUM("%.2f", a->paper), NUM("%.3f", a->paper_f1));
    }
}

// The shares of perplexity gaps the paper argues from, where the recipe has the arms for them.
static void report_shares(FILE *f, const Recipe *r, RecipeResults res, const ArmStats *st) {
    int d = arm_index(r, "dense"), sl = arm_index(r, "soft_learned"), sr = arm_index(r, "soft_random");
    if (d >= 0 && sl >= 0 && sr >= 0)
        fprintf(f, "\nShare of the random → dense gap captured by the learned soft gate, "
                   "(ppl_random − ppl_learned) / (ppl_random − ppl_dense): **%s** (paper: %.1f%%). "
                   "Meaningful only when the random → dense gap is well above the seed spread.\n",
                NUM("%.1f%%", 100 * (st[sr].ppl - st[sl].ppl) / (st[sr].ppl - st[d].ppl)),
                100 * (49.83 - 48.73) / (49.83 - 37.32));
    int rh = arm_index(r, "random_hard_k"), kk = arm_index(r, "kl_k"), ok = arm_index(r, "oracle_k");
    if (rh >= 0 && kk >= 0 && ok >= 0)
        fprintf(f, "\nShare of the random → oracle gap closed by the KL-distilled gate at k, all three "
                   "deployed with hard top-k on the frozen dense model, (ppl_random − ppl_KL) / "
                   "(ppl_random − ppl_oracle): **%s** (the paper calls its gate near-oracle: "
                   "48.83 against 46.00).\n",
                NUM("%.1f%%", 100 * (st[rh].ppl - st[kk].ppl) / (st[rh].ppl - st[ok].ppl)));
    if (rh >= 0 && ok >= 0 && st[rh].ppl <= st[ok].ppl)
        fprintf(f, "\n**Caution:** the random hard gate (%.3f) is no worse than the oracle (%.3f) here, "
                   "so that share means nothing: attention is too diffuse at this scale for top-k to "
                   "matter (see the top-k mass).\n", st[rh].ppl, st[ok].ppl);
    int hl = arm_index(r, "hard_learned");
    if (hl >= 0 && res[hl][0]) {
        const cJSON *g = cJSON_GetObjectItemCaseSensitive(res[hl][0], RK_GATE_GRAD_NORM), *v;
        double mx = 0;
        int n = 0;
        cJSON_ArrayForEach(v, g) if (cJSON_IsNumber(v)) mx = fmax(mx, fabs(v->valuedouble)), n++;
        char t[32] = "n/a";
        if (n) snprintf(t, sizeof t, "%g", mx);
        // Not a measurement: with gate_grad=none routelab leaves the hard gate out of the gradient
        // graph, so this norm is 0 by construction. The evidence is the finite-difference test
        // that perturbing a hard gate leaves the loss unchanged (tests/test_grad_model.c).
        fprintf(f, "\nThe learned hard gate gets no gradient: top-k of G enters the loss only "
                   "through which keys are kept, so routelab leaves the gate out of the gradient graph "
                   "(gate_grad=none) and its gate-gradient norm (%s, seed 0, max over layers) is zero "
                   "by construction, not a measurement. The evidence is the finite-difference test "
                   "that perturbing a hard gate leaves the loss unchanged (tests/test_grad_model.c); "
                   "the paper reports 0.\n", t);
    }
    // MoE: the learned router's gain over the random one, as a share of the dense FFN's gain.
    static const char *const moe_sets[][4] = {{"add_dense", "add_moe_learned", "add_moe_random", "addition"},
                                               {"text_dense", "text_moe_learned", "text_moe_random", "text"}};
    for (int t = 0; t < 2; t++) {
        int dd = arm_index(r, moe_sets[t][0]), ml = arm_index(r, moe_sets[t][1]), mr = arm_index(r, moe_sets[t][2]);
        if (dd < 0 || ml < 0 || mr < 0 || !st[dd].done || !st[ml].done || !st[mr].done) continue;
        fprintf(f, "\nMoE on %s: share of the random-router → dense-FFN gap captured by the learned "
                   "router, in perplexity (ppl_random − ppl_learned) / (ppl_random − ppl_dense): **%s**",
                moe_sets[t][3], NUM("%.1f%%", 100 * (st[mr].ppl - st[ml].ppl) / (st[mr].ppl - st[dd].ppl)));
        if (isfinite(st[dd].exact))
            fprintf(f, "; in exact match (em_learned − em_random) / (em_dense − em_random): **%s**",
                    NUM("%.1f%%", 100 * (st[ml].exact - st[mr].exact) / (st[dd].exact - st[mr].exact)));
        fprintf(f, ". Meaningful only when the random → dense gap is well above the seed spread.\n");
    }
}

// Mean over the seeds that have it of element d of an arm's array result `key` (NAN: none).
static double seed_mean_item(cJSON *const *seeds, const char *key, int d) {
    double sum = 0;
    int n = 0;
    for (int s = 0; s < MAX_SEEDS; s++) {
        double x = result_item(seeds[s], key, d);
        if (isfinite(x)) sum += x, n++;
    }
    return n ? sum / n : NAN;
}

// Routing precision on MQAR by depth (mean over seeds), and the Bloom-filter index.
static void report_probe(FILE *f, const Recipe *r, RecipeResults res) {
    int pb = arm_index(r, "mqar_probe");
    if (pb < 0 || !res[pb][0]) return;
    fprintf(f, "\n| blocks before the probe | key precision | value precision | key precision, "
               "random projection |\n|---|---|---|---|\n");
    static const char *const keys3[] = {RK_KEY_PRECISION, RK_VALUE_PRECISION, RK_PROJECTED_KEY_PRECISION};
    int depths = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(res[pb][0], RK_KEY_PRECISION));
    for (int d = 0; d < depths; d++) {
        double v[3];
        for (int j = 0; j < 3; j++) v[j] = seed_mean_item(res[pb], keys3[j], d);
        fprintf(f, "| %d | %s | %s | %s |\n", d, NUM("%.4f", v[0]), NUM("%.4f", v[1]), NUM("%.4f", v[2]));
    }
    double bl = 0;
    int n = 0;
    for (int s = 0; s < MAX_SEEDS; s++) {
        double x = result_num(res[pb][s], RK_BLOOM_PRECISION);
        if (isfinite(x)) bl += x, n++;
    }
    fprintf(f, "\nBloom-filter index: %s. (Mean over seeds; the paper: one layer 98.4%%, zero "
               "layers 1.2%%, random projections 2.6%%, Bloom filter 90.9%%.)\n", NUM("%.4f", n ? bl / n : NAN));
    if (!cJSON_GetObjectItemCaseSensitive(res[pb][0], "learned_key_precision")) return;
    // the learned low-rank bilinear router (probe --router_examples > 0)
    fprintf(f, "\nLearned rank-r bilinear router ((h_q W_q)(h_j W_k)^T, cross-entropy on training "
               "examples; top-1 precision on test examples, chance %s), at the largest rank of the "
               "sweep, and on the random projection R h:\n\n| blocks before the router | key | value "
               "| key, on R h | value, on R h | effective rank (key / value) |\n|---|---|---|---|---|---|\n",
            NUM("%.4f", result_num(res[pb][0], "router_chance")));
    static const char *const lk[] = {"learned_key_precision", "learned_value_precision",
                                     "projected_learned_key_precision",
                                     "projected_learned_value_precision", "effective_rank",
                                     "effective_rank_value"};
    for (int d = 0; d < depths; d++) {
        double v[6];
        for (int j = 0; j < 6; j++) v[j] = seed_mean_item(res[pb], lk[j], d);
        fprintf(f, "| %d | %s | %s | %s | %s | %s / %s |\n", d, NUM("%.4f", v[0]), NUM("%.4f", v[1]),
                NUM("%.4f", v[2]), NUM("%.4f", v[3]), NUM("%.0f", v[4]), NUM("%.0f", v[5]));
    }
    fprintf(f, "\n(The paper, \"When Does Content-Based Routing Work?\": a router that learns the "
               "subspace reaches 98.4%% after one softmax layer, 2.6%% after a random projection; "
               "effective dimension about 34.)\n");
}

// The absorption gradient: perplexity against layers unfrozen, learned vs frozen random gate,
// and how much of the gap with everything frozen (N = 0) unfreezing N blocks closes.
static void report_gradient(FILE *f, const Recipe *r, const Scale *scale, const ArmStats *st) {
    int has_gradient = 0;
    for (int i = 0; r->arms[i].name; i++) has_gradient |= strstr(r->arms[i].name, "learned_top") != NULL;
    if (!has_gradient) return;
    fprintf(f, "\n| layers unfrozen | learned gate ppl | frozen random gate ppl | learned − random | "
               "share of the N = 0 gap closed |\n|---|---|---|---|---|\n");
    double gap0 = NAN;
    for (int n = 0; n <= scale->n_layer; n++) {
        double v[2] = {NAN, NAN};
        for (int i = 0; r->arms[i].name; i++)
            if (arm_active(&r->arms[i], scale) && unfrozen_layers(&r->arms[i], scale) == n)
                v[strstr(r->arms[i].name, "random") != NULL] = st[i].ppl;
        double gap = v[0] - v[1];
        if (n == 0) gap0 = gap;
        if (isfinite(v[0]) || isfinite(v[1]))
            fprintf(f, "| %d | %s | %s | %s | %s |\n", n, NUM("%.3f", v[0]), NUM("%.3f", v[1]),
                    NUM("%+.3f", gap), n ? NUM("%.1f%%", 100 * (1 - gap / gap0)) : "–");
    }
    fprintf(f, "\nThe gap is learned − random (negative: the learned gate is better). Absorption "
               "predicts that it shrinks as blocks are unfrozen: Q/K/V adapt to the random gate. "
               "Plot: `%s_gradient.png` (perplexity against layers unfrozen).\n", r->name);
}

// The premise of every experiment: is the dense model's attention concentrated? Mean over
// layers (and seeds) of the top-k mass and the entropy ratio, against the paper's dense model.
void report_premise(FILE *f, const char *arm, cJSON *const *seeds, int k) {
    double mass = 0, ent = 0;
    int n = 0;
    for (int s = 0; s < MAX_SEEDS; s++) {
        const cJSON *m = seeds[s] ? cJSON_GetObjectItemCaseSensitive(seeds[s], RK_TOPK_MASS) : NULL;
        for (int l = 0; l < cJSON_GetArraySize(m); l++) {
            double a = result_item(seeds[s], RK_TOPK_MASS, l), b = result_item(seeds[s], RK_ENTROPY_RATIO, l);
            if (isfinite(a) && isfinite(b)) mass += a, ent += b, n++;
        }
    }
    if (!n) return;
    mass /= n, ent /= n;
    int holds = mass >= PREMISE_MASS && ent <= PREMISE_ENTROPY;
    fprintf(f, "\n**Premise check** (%s, mean over layers and seeds): top-%d attention mass %.1f%%, "
               "entropy ratio %.3f (the paper's dense model: top-64 of 512 mass 90.6%%, entropy ratio "
               "0.497; routelab asks for at least %.0f%% and at most %.2f). %s\n", arm, k, 100 * mass,
            ent, 100 * PREMISE_MASS, PREMISE_ENTROPY,
            holds ? "It holds: attention is concentrated, so which keys a gate keeps matters."
                  : "**Warning: it fails.** Attention is close to uniform here, so keeping the right "
                    "keys barely matters and learned vs random comparisons say little about routing "
                    "absorption.");
}

// How concentrated dense attention is per layer (seed 0), and for a pretrained model the
// paper's Table 9: dense against oracle top-k at k, 2k, 4k.
static void report_concentration(FILE *f, const Recipe *r, const Scale *scale, RecipeResults res,
                                 const ArmStats *st) {
    int llm = !strcmp(r->name, "llm-concentration");
    int d = arm_index(r, llm ? "llm_dense" : "dense");
    if ((!llm && strcmp(r->name, "concentration") != 0) || d < 0 || !res[d][0]) return;
    if (llm) {
        static const char *const oracles[] = {"llm_oracle_k", "llm_oracle_2k", "llm_oracle_4k"};
        fprintf(f, "\n| top-k | dense ppl | oracle top-k ppl | oracle / dense |\n|---|---|---|---|\n");
        for (int j = 0; j < 3; j++) {
            int o = arm_index(r, oracles[j]);
            if (o < 0 || !st[o].done) continue;
            fprintf(f, "| %d | %s | %s | %s |\n", scale->k << j, NUM("%.3f", st[d].ppl),
                    NUM("%.3f", st[o].ppl), NUM("%.4f", st[o].ppl / st[d].ppl));
        }
        fprintf(f, "\n(Oracle: each query keeps the keys of its k largest dense attention scores, "
                   "per layer, in a closed-loop forward. An oracle/dense ratio near 1 means top-k "
                   "attention loses almost nothing at that k.)\n");
    }
    report_premise(f, r->arms[d].name, res[d], scale->k);
    fprintf(f, "\n| layer | top-k mass | entropy ratio |\n|---|---|---|\n");
    int nm = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(res[d][0], RK_TOPK_MASS));
    int ne = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(res[d][0], RK_ENTROPY_RATIO));
    for (int l = 0; l < nm && l < ne; l++)
        fprintf(f, "| %d | %s | %s |\n", l, NUM("%.4f", result_item(res[d][0], RK_TOPK_MASS, l)),
                NUM("%.4f", result_item(res[d][0], RK_ENTROPY_RATIO, l)));
    fprintf(f, "\n(seed 0; the plot `%s.png` averages over seeds; k = %d.)\n",
            llm ? "llm-concentration_concentration" : "concentration", scale->k);
}

// Table 6: the distilled gates' deployed perplexity as a grid, loss and d_g by k.
static void report_capacity(FILE *f, const Recipe *r, const Scale *scale, const ArmStats *st) {
    if (strcmp(r->name, "llm-capacity") != 0) return;
    static const char *const rows[][2] = {{"kl", "32"}, {"bce", "32"}, {"bce", "64"}, {"bce", "128"}};
    static const char *const ks[] = {"k", "2k", "4k"};
    fprintf(f, "\n| loss | d_g | k = %d | k = %d | k = %d | paper (k, 2k, 4k) |\n|---|---|---|---|---|---|\n",
            scale->k, 2 * scale->k, 4 * scale->k);
    for (size_t i = 0; i < 4; i++) {
        fprintf(f, "| %s | %s |", rows[i][0], rows[i][1]);
        char paper[96] = "";
        size_t o = 0;
        for (int j = 0; j < 3; j++) {
            char name[64];
            snprintf(name, sizeof name, "llm_%s_g%s_%s", rows[i][0], rows[i][1], ks[j]);
            int a = arm_index(r, name);
            fprintf(f, " %s |", a >= 0 ? PM("%.3f", st[a].ppl, st[a].ppl_sd) : "–");
            if (a >= 0 && isfinite(r->arms[a].paper) && o < sizeof paper)
                o += (size_t)snprintf(paper + o, sizeof paper - o, "%s%.2f", o ? " / " : "", r->arms[a].paper);
        }
        fprintf(f, " %s |\n", o ? paper : "–");
    }
    fprintf(f, "\nEvery gate is distilled post hoc on the frozen model and deployed with hard top-k "
               "at the k it was trained for (mean ± std over seeds). The paper: KL far better than "
               "BCE at small k (12.24 vs 102.82 at k = 64), BCE closing the gap as k grows.\n");
}

// Table 7: one block trains, with a gate learned or frozen random on it, or without one.
static void report_single_layer(FILE *f, const Recipe *r, const Scale *scale, const ArmStats *st) {
    int l = arm_index(r, "llm_sl_learned"), rn = arm_index(r, "llm_sl_random"), ng = arm_index(r, "llm_sl_nogate");
    if (l < 0 || rn < 0 || ng < 0) return;
    fprintf(f, "\nOnly block %d (of %d) trains. Learned − random gap: **%s** ppl; gate overhead "
               "(gated − no gate): learned %s, random %s. Absorption predicts a gap near zero: the "
               "block's Q/K/V adapt to a random gate as well as to a learned one. Learning curves: "
               "`%s_convergence.png` (the paper's Figure 2b: the random gate converges faster).\n",
            scale->n_layer / 2, scale->n_layer, NUM("%+.3f", st[l].ppl - st[rn].ppl),
            NUM("%+.3f", st[l].ppl - st[ng].ppl), NUM("%+.3f", st[rn].ppl - st[ng].ppl), r->name);
}

// The open-question recipes: each comparison the paper left untested, in one sentence or table.
static void report_open_questions(FILE *f, const Recipe *r, const ArmStats *st) {
    int d = arm_index(r, "dense");
    if (!strcmp(r->name, "stochastic-variants") && d >= 0) {
        static const char *const rows[][4] = {
            {"stochastic masks (exp4)", "stochastic", "stoch_deploy_dense", "stoch_deploy_fixed"},
            {"annealed towards the gate's top-k", "anneal", "anneal_deploy_dense", "anneal_deploy_fixed"},
            {"half the steps dense", "mix_half", "mix_deploy_dense", "mix_deploy_fixed"}};
        fprintf(f, "\n| training | deployed as trained | deployed dense | deployed under a fixed random "
                   "mask | dense − dense baseline |\n|---|---|---|---|---|\n");
        for (int i = 0; i < 3; i++) {
            int t = arm_index(r, rows[i][1]), dd = arm_index(r, rows[i][2]), fx = arm_index(r, rows[i][3]);
            if (t < 0 || dd < 0 || fx < 0) continue;
            fprintf(f, "| %s | %s | %s | %s | %s |\n", rows[i][0], NUM("%.3f", st[t].ppl), NUM("%.3f", st[dd].ppl),
                    NUM("%.3f", st[fx].ppl), NUM("%+.3f", st[dd].ppl - st[d].ppl));
        }
        int g = arm_index(r, "anneal_deploy_gate");
        fprintf(f, "\nDense baseline %s. The annealed model deployed with its gate's own hard top-k: %s. "
                   "Co-adaptation shows as a deployed-dense perplexity far above the dense baseline "
                   "(the paper: 78.19 vs 37.32 for plain stochastic masks).\n",
                NUM("%.3f", st[d].ppl), g >= 0 ? NUM("%.3f", st[g].ppl) : "–");
    }
    int ll = arm_index(r, "long_soft_learned"), lr = arm_index(r, "long_soft_random"), ld = arm_index(r, "long_dense");
    int sl = arm_index(r, "soft_learned"), sr = arm_index(r, "soft_random");
    if (ll >= 0 && lr >= 0 && ld >= 0 && sl >= 0 && sr >= 0 && d >= 0)
        fprintf(f, "\nShare of the random → dense gap captured by the learned soft gate: %s at the "
                   "scale's steps, %s at 4x the steps (learned − random: %s, then %s). Absorption holds "
                   "with longer training if the share does not grow; meaningful only when each "
                   "random → dense gap is well above the seed spread.\n",
                NUM("%.1f%%", 100 * (st[sr].ppl - st[sl].ppl) / (st[sr].ppl - st[d].ppl)),
                NUM("%.1f%%", 100 * (st[lr].ppl - st[ll].ppl) / (st[lr].ppl - st[ld].ppl)),
                NUM("%+.3f", st[sl].ppl - st[sr].ppl), NUM("%+.3f", st[ll].ppl - st[lr].ppl));
    int cl = arm_index(r, "closed_loop"), cd = arm_index(r, "closed_loop_from_dense");
    int sh = arm_index(r, "soft_deploy_hard"), ds = arm_index(r, "distill_soft"), hr = arm_index(r, "hard_random");
    if (cl >= 0 && cd >= 0 && sh >= 0 && ds >= 0 && hr >= 0 && d >= 0)
        fprintf(f, "\nDeployed with hard top-k: trained closed loop %s (from the dense model %s), "
                   "soft-trained %s, its BCE-distilled gate %s, against dense %s. Closed loop, learned "
                   "− frozen random gate: %s (the absorption question under hard routes).\n",
                NUM("%.3f", st[cl].ppl), NUM("%.3f", st[cd].ppl), NUM("%.3f", st[sh].ppl),
                NUM("%.3f", st[ds].ppl), NUM("%.3f", st[d].ppl), NUM("%+.3f", st[cl].ppl - st[hr].ppl));
    int cb = arm_index(r, "closed_loop_bounded"), cbd = arm_index(r, "closed_loop_bounded_from_dense");
    if (cb >= 0 && cbd >= 0 && cl >= 0 && hr >= 0)
        fprintf(f, "\nWith the bounded straight-through gate (gate_grad=ste_dense: dL/dM normalised "
                   "over every visible key, at most |dW|): closed loop %s (from the dense model %s), "
                   "against %s (%s) with the reference's STE; learned − frozen random gate: %s.\n",
                NUM("%.3f", st[cb].ppl), NUM("%.3f", st[cbd].ppl), NUM("%.3f", st[cl].ppl),
                NUM("%.3f", st[cd].ppl), NUM("%+.3f", st[cb].ppl - st[hr].ppl));
    int kk = arm_index(r, "kl_k"), dk = arm_index(r, "decoupled_deploy_k");
    int rh = arm_index(r, "random_hard_k"), ok = arm_index(r, "oracle_k");
    if (kk >= 0 && dk >= 0 && rh >= 0 && ok >= 0)
        fprintf(f, "\nShare of the random → oracle gap closed by the KL-distilled gate, deployed hard "
                   "top-k on the model's own validation text: distilled on its own text %s, on another "
                   "text %s (random %s, oracle %s).\n",
                NUM("%.1f%%", 100 * (st[rh].ppl - st[kk].ppl) / (st[rh].ppl - st[ok].ppl)),
                NUM("%.1f%%", 100 * (st[rh].ppl - st[dk].ppl) / (st[rh].ppl - st[ok].ppl)),
                NUM("%.3f", st[rh].ppl), NUM("%.3f", st[ok].ppl));
    int bl = arm_index(r, "block_learned"), br = arm_index(r, "block_random"), bo = arm_index(r, "block_oracle");
    int wo = arm_index(r, "window_only"), pb = arm_index(r, "posthoc_block");
    int db = arm_index(r, "dense_block_random"), dbo = arm_index(r, "dense_block_oracle");
    if (bl >= 0 && br >= 0 && bo >= 0 && wo >= 0 && d >= 0)
        fprintf(f, "\nTrained end to end with block selection and a window: learned blocks %s, frozen "
                   "random blocks %s, oracle blocks %s, the window alone %s, dense %s. Learned − random: "
                   "**%s** ppl; share of the random → oracle-block gap the learned selection captures: "
                   "%s. The paper's NSA prediction: random selection with the window kept does about "
                   "as well as learned selection (a share near 0).\n",
                NUM("%.3f", st[bl].ppl), NUM("%.3f", st[br].ppl), NUM("%.3f", st[bo].ppl),
                NUM("%.3f", st[wo].ppl), NUM("%.3f", st[d].ppl), NUM("%+.3f", st[bl].ppl - st[br].ppl),
                NUM("%.1f%%", 100 * (st[br].ppl - st[bl].ppl) / (st[br].ppl - st[bo].ppl)));
    if (pb >= 0 && db >= 0 && dbo >= 0)
        fprintf(f, "\nPost hoc on the frozen dense model, the same blocks chosen by the KL-distilled "
                   "gate %s, at random %s, by the oracle %s: share of the random → oracle gap %s "
                   "(the post-hoc contrast: a gate on a frozen model should be near the oracle).\n",
                NUM("%.3f", st[pb].ppl), NUM("%.3f", st[db].ppl), NUM("%.3f", st[dbo].ppl),
                NUM("%.1f%%", 100 * (st[db].ppl - st[pb].ppl) / (st[db].ppl - st[dbo].ppl)));
    int el = arm_index(r, "ec_learned"), er = arm_index(r, "ec_random");
    int ed = arm_index(r, "ec_learned_deploy_causal");
    int cl2 = arm_index(r, "ec_causal_learned"), cr2 = arm_index(r, "ec_causal_random");
    if (el >= 0 && er >= 0 && ed >= 0 && cl2 >= 0 && cr2 >= 0 && d >= 0)
        fprintf(f, "\nExpert-choice heads, learned vs frozen random router: over the whole sequence "
                   "%s vs %s (**%s** ppl), causal (over the prefix) %s vs %s (**%s** ppl), dense %s. "
                   "The whole-sequence model deployed with causal selection: %s (%s over its own "
                   "non-causal selection: what picking tokens with later tokens in view was worth). "
                   "MoSA's hope: a learned router well below the random one (the structure escapes "
                   "absorption); absorption predicts a gap near 0.\n",
                NUM("%.3f", st[el].ppl), NUM("%.3f", st[er].ppl), NUM("%+.3f", st[el].ppl - st[er].ppl),
                NUM("%.3f", st[cl2].ppl), NUM("%.3f", st[cr2].ppl), NUM("%+.3f", st[cl2].ppl - st[cr2].ppl),
                NUM("%.3f", st[d].ppl), NUM("%.3f", st[ed].ppl), NUM("%+.3f", st[ed].ppl - st[el].ppl));
}

// Gate information: per arm, the bits each layer's gate decisions carry about which keys matter
// to the gate-free reference (mean over seeds), their mean over layers with the seed spread,
// and the estimator's self-test on the same samples.
static void report_gate_info(FILE *f, const Recipe *r, const Scale *scale, RecipeResults res) {
    double bits[MAX_ARMS] = {0}, sd[MAX_ARMS] = {0};
    int header = 0, seeds = 0;
    const char *ref = NULL;
    for (int i = 0; r->arms[i].name; i++) {
        const Arm *a = &r->arms[i];
        bits[i] = NAN;
        if (!arm_active(a, scale) || a->kind != RUN_GATEINFO || !res[i][0]) continue;
        ref = a->ref;
        int L = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(res[i][0], RK_MI_BITS));
        double per_seed[MAX_SEEDS];
        int n = 0;
        for (int s = 0; s < MAX_SEEDS; s++)
            if (res[i][s]) per_seed[n++] = mean_of_array(res[i][s], RK_MI_BITS);
        mean_std(per_seed, n, &bits[i], &sd[i]);
        seeds = n > seeds ? n : seeds;
        if (!header++)
            fprintf(f, "\n| gate (arm) | I(decision; label) per layer, bits | mean over layers | "
                       "I / H(label) | probe ceiling (bits) | H(label) | P(label) | self-test: "
                       "independent | self-test: identical | seeds |\n"
                       "|---|---|---|---|---|---|---|---|---|---|\n");
        fprintf(f, "| %s (%s) | ", a->from, a->name);
        for (int l = 0; l < L; l++)
            fprintf(f, "%s%s", l ? " / " : "", NUM("%.4f", seed_mean_item(res[i], RK_MI_BITS, l)));
        double share = 0, h = 0, p = 0, ind = 0, same = 0, ceiling = 0;
        for (int l = 0; l < L; l++) {
            ceiling += seed_mean_item(res[i], RK_PROBE_MI_BITS, l) / L;
            share += seed_mean_item(res[i], RK_MI_SHARE, l) / L;
            h += seed_mean_item(res[i], RK_LABEL_ENTROPY_BITS, l) / L;
            p += seed_mean_item(res[i], RK_LABEL_RATE, l) / L;
            ind += seed_mean_item(res[i], RK_SELFTEST_INDEPENDENT_BITS, l) / L;
            same += seed_mean_item(res[i], RK_SELFTEST_IDENTICAL_BITS, l) / L;
        }
        fprintf(f, " | %s | %s | %s | %s | %s | %s | %s | %d |\n", PM("%.4f", bits[i], sd[i]), NUM("%.3f", share),
                NUM("%.4f", ceiling), NUM("%.3f", h), NUM("%.3f", p), NUM("%+.5f", ind), NUM("%.3f", same), n);
    }
    if (!header) return;
    fprintf(f, "\nLabel: key j matters to query i when hiding position j as a key from every "
               "later query, in every layer of the independently trained dense model (`%s`), "
               "raises its loss at i by more than the "
               "margin; decision: j is in the top-k of the gate's scores. Miller-Madow corrected, "
               "bits per (head, query, key) sample; the self-test replaces the decision by an "
               "independent draw of the same rate (should read ~0) and by the label (should read "
               "H(label)). Probe ceiling: a bilinear probe of the gate's form (rank d_g) trained with "
               "binary cross-entropy on labelled training windows to predict the label from that "
               "model's hidden states (the gate's input), deciding by the same top-k; mean over "
               "layers.\n", ref);
    int sl = arm_index(r, "info_soft_learned"), sr = arm_index(r, "info_soft_random");
    int pk = arm_index(r, "info_posthoc_kl"), pr = arm_index(r, "info_posthoc_random");
    if (sl >= 0 && sr >= 0 && pk >= 0 && pr >= 0)
        fprintf(f, "\nEnd to end, learned − frozen random gate: **%s** bits per layer; post hoc on the "
                   "frozen dense model, KL-distilled − random gate: **%s** bits (over %d seed%s). "
                   "Absorption predicts the end-to-end difference near 0 and the post-hoc one well "
                   "above it.\n", NUM("%+.4f", bits[sl] - bits[sr]), NUM("%+.4f", bits[pk] - bits[pr]), seeds,
                seeds == 1 ? "" : "s");
}

void report_recipe(FILE *f, const Recipe *r, const Scale *scale, RecipeResults res, const ArmStats *st) {
    report_arms(f, r, scale, res, st);
    report_shares(f, r, res, st);
    report_routing_health(f, r, scale, res);
    report_probe(f, r, res);
    report_gradient(f, r, scale, st);
    report_concentration(f, r, scale, res, st);
    report_capacity(f, r, scale, st);
    report_single_layer(f, r, scale, st);
    report_open_questions(f, r, st);
    report_gate_info(f, r, scale, res);
    fprintf(f, "\nPlot: `%s_convergence.png` (training loss, seed 0, training arms).\n\n", r->name);
}

// ----------------------------------------------------------------------------- summary, rows
const SummaryRow SUMMARY[] = {
    {"dense", "dense"},
    {"soft gate, learned", "soft_learned"},
    {"soft gate, frozen random", "soft_random"},
    {"hard top-k, learned", "hard_learned"},
    {"hard top-k, frozen random", "hard_random"},
    {"post-hoc distilled (KL), hard top-k", "kl_k"},
    {"post-hoc distilled (BCE), hard top-k", "distill_dense"},
    {"post-hoc random gate, hard top-k", "random_hard_k"},
    {"oracle top-k", "oracle_k"},
};
const size_t N_SUMMARY = sizeof SUMMARY / sizeof SUMMARY[0];

void report_summary(FILE *f, const ArmStats *summary, int seeds) {
    int rows = 0;
    for (size_t k = 0; k < N_SUMMARY; k++) rows += summary[k].done;
    if (rows < 2) return;
    fprintf(f, "## Summary (validation; %d seed(s), mean ± std)\n\n| routing | arm | ppl | accuracy |\n"
               "|---|---|---|---|\n", seeds);
    for (size_t k = 0; k < N_SUMMARY; k++)
        if (summary[k].done)
            fprintf(f, "| %s | %s | %s | %s |\n", SUMMARY[k].label, SUMMARY[k].arm,
                    PM("%.3f", summary[k].ppl, summary[k].ppl_sd), PM("%.4f", summary[k].acc, summary[k].acc_sd));
    fprintf(f, "\n");
}

cJSON *results_row(const Recipe *r, const Arm *a, const Scale *scale, int seed, const cJSON *result) {
    cJSON *row = cJSON_CreateObject();
    cJSON_AddStringToObject(row, "recipe", r->name);
    cJSON_AddStringToObject(row, "arm", a->name);
    cJSON_AddNumberToObject(row, "seed", seed);
    cJSON_AddStringToObject(row, "scale", scale->name);
    char keys[16384];
    expand_keys(keys, sizeof keys, a->keys, scale, seed);
    cJSON_AddStringToObject(row, "keys", keys);
    if (a->from) cJSON_AddStringToObject(row, "from", a->from);
    if (a->ref) cJSON_AddStringToObject(row, "ref", a->ref);
    cJSON_AddItemToObject(row, "result", result ? cJSON_Duplicate(result, 1) : cJSON_CreateNull());
    return row;
}
