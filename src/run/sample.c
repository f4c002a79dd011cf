// sample.c: `routelab sample`: text generation from a checkpoint (temperature, top-k, seed).
// The tokenizer is the one the training data was prepared with (its dataset.json), or --tokenizer.
#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "common.h"
#include "model.h"
#include "options.h"
#include "tokenizer.h"

// The tokenizer spec recorded by `routelab prepare` in DIR/dataset.json, or NULL.
static char *tokenizer_of_data(const char *dir) {
    char path[4200];
    join_path(path, sizeof path, dir, "dataset.json");
    if (!file_exists(path)) return NULL;
    size_t len;
    char *text = read_file(path, &len, "dataset description");
    cJSON *j = cJSON_Parse(text);
    char *spec = NULL;
    const cJSON *t = j ? cJSON_GetObjectItemCaseSensitive(j, "tokenizer") : NULL;
    if (cJSON_IsString(t)) spec = xstrdup(t->valuestring);
    cJSON_Delete(j);
    xfree(text);
    return spec;
}

int cmd_sample(int argc, char **argv) {
    const char *ckpt = NULL, *prompt = "", *tok_spec = NULL;
    int n_tokens = 200, top_k = 40;
    float temperature = 0.8f;
    long seed = 1;
    const Option opts[] = {
        {"ckpt", OPT_STRING, &ckpt, NULL, "run directory or checkpoint file", 0, 0},
        {"prompt", OPT_STRING, &prompt, "", "text (token ids on MQAR)", 0, 0},
        {"tokenizer", OPT_STRING, &tok_spec, NULL, "tokenizer spec (default: the data's)", 0, 0},
        {"tokens", OPT_INT, &n_tokens, "200", "tokens to generate", 1, INT_MAX},
        {"top_k", OPT_INT, &top_k, "40", "keep the k most likely tokens (0 = all)", 0, INT_MAX},
        {"temperature", OPT_FLOAT, &temperature, "0.8", "0 = greedy", 0, 1e30},
        {"seed", OPT_LONG, &seed, "1", "sampling seed", 0, (double)LONG_MAX},
    };
    OptSpec os = {.cmd = "sample", .opts = opts, .n_opts = sizeof opts / sizeof *opts};
    if (options_parse(&os, argc, argv)) {
        printf("usage: routelab sample --ckpt=RUNDIR|FILE [--prompt=TEXT] [--tokens=200]\n"
               "       [--temperature=0.8] [--top_k=40] [--seed=1] [--tokenizer=SPEC]\n"
               "  Generates text with the checkpoint's routing. The tokenizer defaults to the\n"
               "  one recorded in the training data's dataset.json; on MQAR (no tokenizer)\n"
               "  token ids are printed. temperature 0 = greedy; top_k 0 = no truncation.\n");
        return 0;
    }
    if (!ckpt) fatal("sample: give --ckpt=RUNDIR or --ckpt=FILE");
    char path[4096];
    checkpoint_resolve_path(path, sizeof path, ckpt);
    Model m;
    checkpoint_build_model(&m, path);
    const Config c = m.cfg;
    char *spec = tok_spec ? xstrdup(tok_spec) : tokenizer_of_data(c.data);
    Tokenizer *tok = spec ? tokenizer_load(spec) : NULL;
    if (tok && tokenizer_vocab_size(tok) > c.vocab_size)
        fatal("sample: tokenizer '%s' has %d tokens but the model's vocab_size is %d", spec,
              tokenizer_vocab_size(tok), c.vocab_size);
    int T = c.seq_len, V = c.vocab_size;
    size_t cap = (size_t)n_tokens + 1 + strlen(prompt) * 2 + 8;
    int *ids = xcalloc(cap, sizeof(int));
    size_t n = 0;
    if (tok && *prompt) {
        size_t np;
        int32_t *p = tokenizer_encode(tok, prompt, strlen(prompt), &np);
        for (size_t i = 0; i < np && n < cap; i++) ids[n++] = p[i];
        xfree(p);
    } else if (!tok && *prompt) {  // MQAR: prompt is a list of token ids
        for (char *s = (char *)prompt, *e; *s; s = e) {
            long v = strtol(s, &e, 10);
            if (e == s) break;
            ids[n++] = (int)v;
            while (*e == ',' || *e == ' ') e++;
        }
    }
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            fatal("sample: prompt token %d is outside the model's vocabulary [0, %d)", ids[i], V);
    if (n == 0) ids[n++] = tok && V > 50256 ? 50256 : 0;  // GPT-2's <|endoftext|>, else token 0
    size_t prompt_len = n;
    Rng rng;
    rng_seed(&rng, (unsigned long)seed);
    float *probs = xcalloc((size_t)V, sizeof(float));
    int *window = xcalloc((size_t)T, sizeof(int));
    m.training = 0;
    for (int s = 0; s < n_tokens; s++) {
        size_t start = n > (size_t)T ? n - T : 0;
        int len = (int)(n - start);
        memcpy(window, ids + start, (size_t)len * sizeof(int));
        model_forward(&m, window, NULL, 1, len);
        const float *z = m.logits + (size_t)(len - 1) * V;
        int next = 0;
        if (temperature == 0.0f) {
            for (int v = 1; v < V; v++) next = z[v] > z[next] ? v : next;
        } else {
            float kth = -INFINITY;
            if (top_k > 0 && top_k < V) {  // threshold = k-th largest logit
                memcpy(probs, z, (size_t)V * sizeof(float));
                unsigned char *keep = xcalloc((size_t)V, 1);
                float *pairs = xcalloc(2 * (size_t)V, sizeof(float));
                topk_select(keep, z, V, top_k, pairs);
                kth = INFINITY;
                for (int v = 0; v < V; v++) if (keep[v] && z[v] < kth) kth = z[v];
                xfree(keep);
                xfree(pairs);
            }
            float mx = -INFINITY;
            for (int v = 0; v < V; v++) mx = z[v] > mx ? z[v] : mx;
            double sum = 0.0;
            for (int v = 0; v < V; v++) {
                probs[v] = z[v] >= kth ? expf((z[v] - mx) / temperature) : 0.0f;
                sum += probs[v];
            }
            double u = rng_uniform(&rng) * sum, acc = 0.0;
            next = V - 1;
            for (int v = 0; v < V; v++) {
                acc += probs[v];
                if (u < acc) { next = v; break; }
            }
        }
        ids[n++] = next;
    }
    if (tok) {
        size_t len;
        char *text = tokenizer_decode(tok, ids, n, &len);
        fwrite(text, 1, len, stdout);
        printf("\n");
        xfree(text);
    } else {
        for (size_t i = 0; i < n; i++) printf("%s%d", i ? " " : "", ids[i]);
        printf("\n");
    }
    (void)prompt_len;
    xfree(probs);
    xfree(window);
    xfree(ids);
    xfree(spec);
    if (tok) tokenizer_free(tok);
    model_free(&m);
    return 0;
}
