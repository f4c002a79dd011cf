// probe.c: `routelab probe`: can content-based routing find the right position? On MQAR test
// examples, for every query position q (its input is a key k whose pair sits in the prefix), a
// router scores each earlier position j by the dot product <h_q, h_j> of the residual stream
// after d blocks (d = 0: the embeddings) and keeps the top-1. Precision = share of queries whose
// top-1 is the position holding k (key precision) or its paired value (value precision).
//   random projection: the same with R h (R a fixed Gaussian D x C matrix).
//   learned router (router_probe.h): a rank-r bilinear router trained with cross-entropy on
//   the representations of training examples after d blocks, precision on the test examples;
//   swept over r (the effective dimension: the smallest r within 95% of the best precision),
//   and trained again on R h (the random projection) as the control. --features=random swaps
//   the representations for Gaussian noise (a self-test: the router must stay near chance).
//   Bloom filter index (non-learned baseline): the positions before q are cut into windows of
//   W tokens, each summarised by a Bloom filter of its token ids (M bits, H hashes); the query
//   goes to the most recent window whose filter claims k; precision = share of queries whose
//   window holds the key's position.
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "common.h"
#include "dataset.h"
#include "json_out.h"
#include "model.h"
#include "options.h"
#include "result_keys.h"
#include "router_probe.h"

typedef struct {
    long queries, key_hits[MAX_LAYERS + 1], value_hits[MAX_LAYERS + 1];
    long proj_key_hits[MAX_LAYERS + 1], bloom_hits;
} ProbeCounts;

// The result of `probe --json` (arrays over depth d = 0..L).
typedef struct {
    long queries;
    size_t depths;
    double key_precision[MAX_LAYERS + 1], value_precision[MAX_LAYERS + 1];
    double projected_key_precision[MAX_LAYERS + 1], bloom_precision;
    int proj_dim, bloom_window, bloom_bits, bloom_hashes;
} ProbeResult;

static int top1(const float *h, int C, int q, const float *rows) {
    // rows (T, C); argmax over j < q of <h, rows_j>, ties to the lower index
    int best = -1;
    double best_s = -INFINITY;
    for (int j = 0; j < q; j++) {
        double s = 0.0;
        for (int c = 0; c < C; c++) s += (double)h[c] * rows[(size_t)j * C + c];
        if (s > best_s) best_s = s, best = j;
    }
    return best;
}

static int bloom_window(const int *tokens, int q, int key, int W, int M, int H) {
    for (int start = ((q - 1) / W) * W; start >= 0; start -= W) {  // most recent window first
        unsigned char bits[4096] = {0};
        for (int j = start; j < start + W && j < q; j++)
            for (int h = 0; h < H; h++) bits[hash64(0xB100Full + h, (uint64_t)tokens[j]) % M] = 1;
        int claims = 1;
        for (int h = 0; h < H; h++) claims &= bits[hash64(0xB100Full + h, (uint64_t)key) % M];
        if (claims) return start;
    }
    return -1;
}

// Representations after every depth d = 0..L of n MQAR examples, and their queries (the
// positions whose input is a key of the prefix; key_pos: where that key sits).
typedef struct {
    float *feat[MAX_LAYERS + 1];    // (n, T, C) per depth
    int *query_ex, *query_pos, *key_pos, *value_pos;
    size_t n, n_queries;
} ProbeData;

static void probe_data_collect(ProbeData *pd, Model *m, Dataset *ds, size_t n, int random_feat,
                               uint64_t seed) {
    const Config *c = &m->cfg;
    int T = c->seq_len, C = c->d_model, L = c->n_layer, pairs = c->mqar_pairs;
    memset(pd, 0, sizeof *pd);
    pd->n = n;
    for (int d = 0; d <= L; d++) pd->feat[d] = xcalloc(n * (size_t)T * C, sizeof(float));
    pd->query_ex = xcalloc(n * (size_t)T, sizeof(int));
    pd->query_pos = xcalloc(n * (size_t)T, sizeof(int));
    pd->key_pos = xcalloc(n * (size_t)T, sizeof(int));
    pd->value_pos = xcalloc(n * (size_t)T, sizeof(int));
    int *in = xcalloc((size_t)T, sizeof(int)), *tg = xcalloc((size_t)T, sizeof(int));
    Rng rng;
    rng_seed(&rng, seed);
    m->training = 0;
    m->blocks_only = 1;
    for (size_t e = 0; e < n; e++) {
        dataset_window(ds, e, in, tg);
        model_forward(m, in, NULL, 1, T);
        for (int d = 0; d <= L; d++) {
            float *dst = pd->feat[d] + e * (size_t)T * C;
            const float *rows = d ? m->layer[d - 1].res_ffn : m->encoded;
            for (size_t i = 0; i < (size_t)T * C; i++) dst[i] = random_feat ? rng_normal(&rng) : rows[i];
        }
        for (int q = 2 * pairs; q < T; q++) {
            if (tg[q] < 0) continue;
            int key_pos = -1;
            for (int j = 0; j < 2 * pairs; j += 2) if (in[j] == in[q]) key_pos = j;
            if (key_pos < 0) continue;
            pd->query_ex[pd->n_queries] = (int)e;
            pd->query_pos[pd->n_queries] = q;
            pd->value_pos[pd->n_queries] = key_pos + 1;
            pd->key_pos[pd->n_queries++] = key_pos;
        }
    }
    m->blocks_only = 0;
    xfree(in), xfree(tg);
}

static void probe_data_free(ProbeData *pd, int L) {
    for (int d = 0; d <= L; d++) xfree(pd->feat[d]);
    xfree(pd->query_ex), xfree(pd->query_pos), xfree(pd->key_pos), xfree(pd->value_pos);
}

// Standardises every feature dimension with the training set's mean and std (a router on the
// raw residual stream would first have to learn its scale; a LayerNorm before a gate does the
// same job). train, test (rows, D).
static void standardise(float *train, size_t n_train, float *test, size_t n_test, int D) {
    for (int c = 0; c < D; c++) {
        double s = 0.0, ss = 0.0;
        for (size_t i = 0; i < n_train; i++) s += train[i * D + c], ss += (double)train[i * D + c] * train[i * D + c];
        double mean = s / (double)n_train, var = ss / (double)n_train - mean * mean;
        float inv = (float)(1.0 / sqrt(var > 1e-12 ? var : 1e-12)), mu = (float)mean;
        for (size_t i = 0; i < n_train; i++) train[i * D + c] = (train[i * D + c] - mu) * inv;
        for (size_t i = 0; i < n_test; i++) test[i * D + c] = (test[i * D + c] - mu) * inv;
    }
}

// target: the key's position (key_pos) or its value's (value_pos = key_pos + 1).
static ProbeSet probe_set(const ProbeData *pd, const float *feat, int T, int D, const int *target) {
    return (ProbeSet){feat, pd->query_ex, pd->query_pos, target, pd->n, pd->n_queries, T, D};
}

// feat (n*T, C) R^T -> (n*T, P)
static float *project_rows(const float *feat, size_t rows, int C, const float *R, int P) {
    float *out = xcalloc(rows * (size_t)P, sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, P, C, 1.0f, feat, C, R, C, 0.0f,
                out, P);
    return out;
}

int cmd_probe(int argc, char **argv) {
    const char *ckpt = NULL;
    int examples = 256, proj_dim = 16, W = 8, M = 64, H = 2, json = 0;
    int router_examples = 512, router_steps = 300, router_batch = 16;
    float router_lr = 1e-2f;
    const char *features = "model", *ranks_opt = NULL;
    const Option opts[] = {
        {"ckpt", OPT_STRING, &ckpt, NULL, "an MQAR run directory or checkpoint", 0, 0},
        {"examples", OPT_INT, &examples, "256", "MQAR test examples", 1, INT_MAX},
        {"proj_dim", OPT_INT, &proj_dim, "16", "width of the random projection", 1, INT_MAX},
        {"bloom_window", OPT_INT, &W, "8", "tokens per Bloom-filter window", 1, INT_MAX},
        {"bloom_bits", OPT_INT, &M, "64", "bits per Bloom filter", 8, 4096},
        {"bloom_hashes", OPT_INT, &H, "2", "hashes per Bloom filter", 1, 16},
        {"router_examples", OPT_INT, &router_examples, "512", "MQAR training examples of the learned router (0: no learned router)", 0, 1 << 20},
        {"router_steps", OPT_INT, &router_steps, "300", "Adam steps of the learned router", 1, INT_MAX},
        {"router_batch", OPT_INT, &router_batch, "16", "examples per router step", 1, 1024},
        {"router_lr", OPT_FLOAT, &router_lr, "1e-2", "learning rate of the router", 1e-6, 10},
        {"router_ranks", OPT_STRING, &ranks_opt, NULL, "ranks r of the sweep, e.g. 1,2,4 (default: powers of 2 up to d_model, and d_model)", 0, 0},
        {"features", OPT_STRING, &features, "model", "model | random (Gaussian noise: the self-test)", 0, 0},
        {"json", OPT_FLAG, &json, NULL, "print the result as one JSON object", 0, 0},
    };
    OptSpec os = {.cmd = "probe", .opts = opts, .n_opts = sizeof opts / sizeof *opts};
    if (options_parse(&os, argc, argv)) {
        printf("usage: routelab probe --ckpt=RUNDIR [--examples=256] [--proj_dim=16]\n"
               "       [--bloom_window=8] [--bloom_bits=64] [--bloom_hashes=2] [--json]\n"
               "  Routing precision on MQAR test examples: for each query, does the top-1 of\n"
               "  the dot product of residual-stream states after d blocks (d = 0..L) find the\n"
               "  position of the queried key (and of its value)? Also after a random\n"
               "  projection to proj_dim, and for a Bloom-filter index over windows of tokens.\n"
               "  Then a learned rank-r bilinear router trained on router_examples training\n"
               "  examples per depth and rank (--router_ranks), for the key's and the value's\n"
               "  position, also on the random projection; --features=random: the self-test.\n"
               "  --router_examples=0 skips it.\n");
        return 0;
    }
    if (!ckpt) fatal("probe: give --ckpt=RUNDIR (an MQAR run)");
    char path[4096];
    checkpoint_resolve_path(path, sizeof path, ckpt);
    Model m;
    checkpoint_build_model(&m, path);
    const Config *c = &m.cfg;
    if (strcmp(c->data, "mqar"))
        fatal("probe: checkpoint %s was trained on '%s'; the routing-precision probe needs an MQAR "
              "model (data=mqar)", path, c->data);
    DataSpec spec = dataspec_from_config(c);
    spec.eval_examples = spec.mqar_eval_examples = examples;
    Dataset *val = dataset_open(&spec, SPLIT_VAL);
    int T = c->seq_len, C = c->d_model, L = c->n_layer, pairs = c->mqar_pairs;
    float *R = xcalloc((size_t)proj_dim * C, sizeof(float)), *proj = xcalloc((size_t)T * proj_dim, sizeof(float));
    Rng rng;
    rng_seed(&rng, 0x9807ull);
    for (size_t i = 0; i < (size_t)proj_dim * C; i++) R[i] = rng_normal(&rng);
    int *in = xcalloc((size_t)T, sizeof(int)), *tg = xcalloc((size_t)T, sizeof(int));
    ProbeCounts pc = {0};
    m.training = 0;
    m.blocks_only = 1;
    for (int e = 0; e < examples; e++) {
        dataset_window(val, (size_t)e, in, tg);
        model_forward(&m, in, NULL, 1, T);
        for (int d = 0; d <= L; d++) {
            const float *rows = d ? m.layer[d - 1].res_ffn : m.encoded;
            for (int t = 0; t < T; t++)  // the projection of every position, once per depth
                for (int r = 0; r < proj_dim; r++) {
                    double s = 0.0;
                    for (int cc = 0; cc < C; cc++) s += (double)R[(size_t)r * C + cc] * rows[(size_t)t * C + cc];
                    proj[(size_t)t * proj_dim + r] = (float)s;
                }
            for (int q = 2 * pairs; q < T; q++) {
                if (tg[q] < 0) continue;
                int key_pos = -1;
                for (int j = 0; j < 2 * pairs; j += 2) if (in[j] == in[q]) key_pos = j;
                if (key_pos < 0) continue;
                int j = top1(rows + (size_t)q * C, C, q, rows);
                pc.key_hits[d] += j == key_pos;
                pc.value_hits[d] += j == key_pos + 1;
                pc.proj_key_hits[d] += top1(proj + (size_t)q * proj_dim, proj_dim, q, proj) == key_pos;
                if (d) continue;  // once per query:
                pc.queries++;
                int start = bloom_window(in, q, in[q], W, M, H);
                pc.bloom_hits += start >= 0 && key_pos >= start && key_pos < start + W;
            }
        }
    }
    double nq = pc.queries ? (double)pc.queries : 1.0;
    // the learned router: trained on training examples, scored on the test examples above
    int random_feat = !strcmp(features, "random");
    if (!random_feat && strcmp(features, "model"))
        fatal("probe: --features must be model or random, got '%s'", features);
    int ranks[32], n_ranks = 0;
    if (ranks_opt) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", ranks_opt);
        for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            char *end;
            long v = strtol(t, &end, 10);
            if (*end || v < 1 || v > C || n_ranks == 32)
                fatal("probe: --router_ranks expects up to 32 ranks in 1..%d (d_model) separated by "
                      "commas, got '%s'", C, ranks_opt);
            ranks[n_ranks++] = (int)v;
        }
    } else {
        for (int r = 1; r < C && n_ranks < 31; r *= 2) ranks[n_ranks++] = r;
        ranks[n_ranks++] = C;
    }
    double learned[MAX_LAYERS + 1] = {0}, sweep[MAX_LAYERS + 1][32] = {{0}};
    double learned_value[MAX_LAYERS + 1] = {0}, vsweep[MAX_LAYERS + 1][32] = {{0}};
    double projected_learned[MAX_LAYERS + 1] = {0}, projected_learned_value[MAX_LAYERS + 1] = {0};
    double chance = 0.0;
    int eff_rank[MAX_LAYERS + 1] = {0}, eff_rank_value[MAX_LAYERS + 1] = {0};
    if (router_examples > 0) {
        DataSpec tspec = spec;
        tspec.eval_examples = tspec.mqar_eval_examples = router_examples;
        Dataset *tr = dataset_open(&tspec, SPLIT_TRAIN);
        ProbeData ptr, pte;
        probe_data_collect(&ptr, &m, tr, (size_t)router_examples, random_feat, 0x7EA1ull);
        probe_data_collect(&pte, &m, val, (size_t)examples, random_feat, 0x7E57ull);
        chance = router_probe_chance(&(ProbeSet){NULL, NULL, pte.query_pos, NULL, 0, pte.n_queries, T, C});
        for (int d = 0; d <= L; d++) {
            double best = 0.0;
            standardise(ptr.feat[d], ptr.n * (size_t)T, pte.feat[d], pte.n * (size_t)T, C);
            for (int i = 0; i < n_ranks; i++) {
                RouterOpts ro = {ranks[i], router_steps, router_batch, router_lr,
                                 hash64(0x6A7Eull, (uint64_t)d * 64 + (uint64_t)ranks[i])};
                ProbeSet a = probe_set(&ptr, ptr.feat[d], T, C, ptr.key_pos),
                         b = probe_set(&pte, pte.feat[d], T, C, pte.key_pos);
                sweep[d][i] = router_probe_fit(&a, &b, &ro);
                a.key_pos = ptr.value_pos, b.key_pos = pte.value_pos;
                vsweep[d][i] = router_probe_fit(&a, &b, &ro);
                best = sweep[d][i] > best ? sweep[d][i] : best;
            }
            learned[d] = sweep[d][n_ranks - 1];
            learned_value[d] = vsweep[d][n_ranks - 1];
            for (int i = 0; i < n_ranks && !eff_rank[d]; i++)
                if (sweep[d][i] >= 0.95 * best) eff_rank[d] = ranks[i];
            double vbest = 0.0;
            for (int i = 0; i < n_ranks; i++) vbest = vsweep[d][i] > vbest ? vsweep[d][i] : vbest;
            for (int i = 0; i < n_ranks && !eff_rank_value[d]; i++)
                if (vsweep[d][i] >= 0.95 * vbest) eff_rank_value[d] = ranks[i];
            // the control: the same router on the random projection R h (rank proj_dim)
            float *fa = project_rows(ptr.feat[d], ptr.n * (size_t)T, C, R, proj_dim);
            float *fb = project_rows(pte.feat[d], pte.n * (size_t)T, C, R, proj_dim);
            standardise(fa, ptr.n * (size_t)T, fb, pte.n * (size_t)T, proj_dim);
            RouterOpts ro = {proj_dim, router_steps, router_batch, router_lr, hash64(0x9807ull, (uint64_t)d)};
            ProbeSet a = probe_set(&ptr, fa, T, proj_dim, ptr.key_pos),
                     b = probe_set(&pte, fb, T, proj_dim, pte.key_pos);
            projected_learned[d] = router_probe_fit(&a, &b, &ro);
            a.key_pos = ptr.value_pos, b.key_pos = pte.value_pos;
            projected_learned_value[d] = router_probe_fit(&a, &b, &ro);
            xfree(fa), xfree(fb);
        }
        probe_data_free(&ptr, L);
        probe_data_free(&pte, L);
        dataset_free(tr);
    }
    if (json) {
        ProbeResult r = {.queries = pc.queries, .depths = (size_t)L + 1,
                         .bloom_precision = pc.bloom_hits / nq, .proj_dim = proj_dim,
                         .bloom_window = W, .bloom_bits = M, .bloom_hashes = H};
        for (int d = 0; d <= L; d++) {
            r.key_precision[d] = pc.key_hits[d] / nq;
            r.value_precision[d] = pc.value_hits[d] / nq;
            r.projected_key_precision[d] = pc.proj_key_hits[d] / nq;
        }
        cJSON *o = cJSON_CreateObject();
        json_add_number(o, RK_QUERIES, (double)r.queries);
        json_add_doubles(o, RK_KEY_PRECISION, r.key_precision, r.depths);
        json_add_doubles(o, RK_VALUE_PRECISION, r.value_precision, r.depths);
        json_add_doubles(o, RK_PROJECTED_KEY_PRECISION, r.projected_key_precision, r.depths);
        json_add_number(o, RK_BLOOM_PRECISION, r.bloom_precision);
        json_add_number(o, "proj_dim", r.proj_dim);
        json_add_number(o, "bloom_window", r.bloom_window);
        json_add_number(o, "bloom_bits", r.bloom_bits);
        json_add_number(o, "bloom_hashes", r.bloom_hashes);
        if (router_examples > 0) {
            json_add_doubles(o, "learned_key_precision", learned, (size_t)L + 1);
            json_add_doubles(o, "projected_learned_key_precision", projected_learned, (size_t)L + 1);
            json_add_doubles(o, "learned_value_precision", learned_value, (size_t)L + 1);
            json_add_doubles(o, "projected_learned_value_precision", projected_learned_value, (size_t)L + 1);
            double er[MAX_LAYERS + 1], rk[32];
            for (int d = 0; d <= L; d++) er[d] = eff_rank[d];
            for (int i = 0; i < n_ranks; i++) rk[i] = ranks[i];
            json_add_doubles(o, "effective_rank", er, (size_t)L + 1);
            for (int d = 0; d <= L; d++) er[d] = eff_rank_value[d];
            json_add_doubles(o, "effective_rank_value", er, (size_t)L + 1);
            json_add_doubles(o, "router_ranks", rk, (size_t)n_ranks);
            cJSON *sw = cJSON_AddArrayToObject(o, "rank_sweep_precision");
            cJSON *vw = cJSON_AddArrayToObject(o, "rank_sweep_value_precision");
            for (int d = 0; d <= L; d++) {
                cJSON *row = cJSON_CreateArray(), *vrow = cJSON_CreateArray();
                for (int i = 0; i < n_ranks; i++) {
                    cJSON_AddItemToArray(row, cJSON_CreateNumber(sweep[d][i]));
                    cJSON_AddItemToArray(vrow, cJSON_CreateNumber(vsweep[d][i]));
                }
                cJSON_AddItemToArray(sw, row);
                cJSON_AddItemToArray(vw, vrow);
            }
            json_add_number(o, "router_chance", chance);
            cJSON_AddStringToObject(o, "router_features", features);
            json_add_number(o, "router_examples", router_examples);
            json_add_number(o, "router_steps", router_steps);
        }
        json_print_line(stdout, o);
        cJSON_Delete(o);
    } else {
        printf("routing precision on %ld MQAR queries (%d examples), top-1 of dot products:\n",
               pc.queries, examples);
        printf("%-18s %10s %10s %14s\n", "blocks before", "key", "value", "key (proj D)");
        for (int d = 0; d <= L; d++)
            printf("%-18d %10.4f %10.4f %14.4f\n", d, pc.key_hits[d] / nq, pc.value_hits[d] / nq,
                   pc.proj_key_hits[d] / nq);
        printf("Bloom-filter index (windows of %d, %d bits, %d hashes): %.4f\n", W, M, H, pc.bloom_hits / nq);
        if (router_examples > 0) {
            printf("learned rank-r bilinear router (%d training examples, %d steps, features %s; "
                   "chance %.4f):\n%-18s", router_examples, router_steps, features, chance, "blocks before");
            for (int i = 0; i < n_ranks; i++) printf(" r=%-6d", ranks[i]);
            printf(" %8s %14s\n", "eff. r", "on R h (r=D)");
            for (int t = 0; t < 2; t++) {
                printf("target: the %s position\n", t ? "value" : "key");
                for (int d = 0; d <= L; d++) {
                    printf("%-18d", d);
                    for (int i = 0; i < n_ranks; i++) printf(" %-8.4f", t ? vsweep[d][i] : sweep[d][i]);
                    printf(" %8d %14.4f\n", t ? eff_rank_value[d] : eff_rank[d],
                           t ? projected_learned_value[d] : projected_learned[d]);
                }
            }
        }
    }
    xfree(R), xfree(proj), xfree(in), xfree(tg);
    dataset_free(val);
    model_free(&m);
    return 0;
}
