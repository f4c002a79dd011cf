// probe.c: `routelab probe`: can content-based routing find the right position? On MQAR test
// examples, for every query position q (its input is a key k whose pair sits in the prefix), a
// router scores each earlier position j by the dot product <h_q, h_j> of the residual stream
// after d blocks (d = 0: the embeddings) and keeps the top-1. Precision = share of queries whose
// top-1 is the position holding k (key precision) or its paired value (value precision).
//   random projection: the same with R h (R a fixed Gaussian D x C matrix).
//   Bloom filter index (non-learned baseline): the positions before q are cut into windows of
//   W tokens, each summarised by a Bloom filter of its token ids (M bits, H hashes); the query
//   goes to the most recent window whose filter claims k; precision = share of queries whose
//   window holds the key's position.
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

int cmd_probe(int argc, char **argv) {
    const char *ckpt = NULL;
    int examples = 256, proj_dim = 16, W = 8, M = 64, H = 2, json = 0;
    const Option opts[] = {
        {"ckpt", OPT_STRING, &ckpt, NULL, "an MQAR run directory or checkpoint", 0, 0},
        {"examples", OPT_INT, &examples, "256", "MQAR test examples", 1, INT_MAX},
        {"proj_dim", OPT_INT, &proj_dim, "16", "width of the random projection", 1, INT_MAX},
        {"bloom_window", OPT_INT, &W, "8", "tokens per Bloom-filter window", 1, INT_MAX},
        {"bloom_bits", OPT_INT, &M, "64", "bits per Bloom filter", 8, 4096},
        {"bloom_hashes", OPT_INT, &H, "2", "hashes per Bloom filter", 1, 16},
        {"json", OPT_FLAG, &json, NULL, "print the result as one JSON object", 0, 0},
    };
    OptSpec os = {.cmd = "probe", .opts = opts, .n_opts = sizeof opts / sizeof *opts};
    if (options_parse(&os, argc, argv)) {
        printf("usage: routelab probe --ckpt=RUNDIR [--examples=256] [--proj_dim=16]\n"
               "       [--bloom_window=8] [--bloom_bits=64] [--bloom_hashes=2] [--json]\n"
               "  Routing precision on MQAR test examples: for each query, does the top-1 of\n"
               "  the dot product of residual-stream states after d blocks (d = 0..L) find the\n"
               "  position of the queried key (and of its value)? Also after a random\n"
               "  projection to proj_dim, and for a Bloom-filter index over windows of tokens.\n");
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
    }
    xfree(R), xfree(proj), xfree(in), xfree(tg);
    dataset_free(val);
    model_free(&m);
    return 0;
}
