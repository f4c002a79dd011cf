// freeze.c: see freeze.h.
#include "freeze.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"

// Parses "0,3-5" into a per-layer selection.
static void parse_layers(unsigned char *sel, const char *list, int L, const char *item) {
    const char *p = list;
    if (!*p) fatal("key 'train': '%s' needs layer indices, e.g. layers:0,2-3", item);
    while (*p) {
        char *end;
        long a = strtol(p, &end, 10), b = a;
        if (end == p) fatal("key 'train': bad layer list in '%s' (expected e.g. 0,2-3)", item);
        if (*end == '-') {
            const char *q = end + 1;
            b = strtol(q, &end, 10);
            if (end == q) fatal("key 'train': bad range in '%s'", item);
        }
        if (a < 0 || b >= L || a > b)
            fatal("key 'train': layer range %ld-%ld in '%s' is outside 0..%d", a, b, item, L - 1);
        for (long l = a; l <= b; l++) sel[l] = 1;
        if (*end == ',' && end[1]) end++;
        else if (*end) fatal("key 'train': unexpected '%c' in '%s'", *end, item);
        p = end;
    }
}

static int is_attn(const ParamInfo *p) { return p->role == ROLE_ATTN || p->role == ROLE_GATE; }

void freeze_apply(unsigned char *trainable, const ParamTable *t, const char *train,
                  const ModelPlan *plan) {
    int L = plan->n_layer;
    memset(trainable, 0, (size_t)t->count);
    char spec[STR_LEN];
    snprintf(spec, sizeof spec, "%s", train);
    char *save = NULL;
    for (char *item = strtok_r(spec, "+", &save); item; item = strtok_r(NULL, "+", &save)) {
        unsigned char sel[MAX_LAYERS] = {0};
        const char *colon = strchr(item, ':');
        size_t head = colon ? (size_t)(colon - item) : strlen(item);
        char kind[32];
        snprintf(kind, sizeof kind, "%.*s", (int)(head < 31 ? head : 31), item);
        if (colon && strcmp(kind, "top") == 0) {
            char *end;
            long n = strtol(colon + 1, &end, 10);
            if (end == colon + 1 || *end || n < 0 || n > L)
                fatal("key 'train': '%s' needs a layer count in 0..%d, e.g. top:2", item, L);
            for (int l = L - n; l < L; l++) sel[l] = 1;
        } else if (colon) {
            parse_layers(sel, colon + 1, L, item);
        }
        for (int i = 0; i < t->count; i++) {
            const ParamInfo *p = &t->info[i];
            int in = p->layer >= 0 && sel[p->layer], on = 0;
            if (!strcmp(kind, "all")) on = 1;
            else if (!strcmp(kind, "none")) on = 0;
            else if (!strcmp(kind, "gates")) on = p->role == ROLE_GATE && (!colon || in);
            else if (!strcmp(kind, "embed")) on = p->role == ROLE_EMBED;
            else if (!strcmp(kind, "head")) on = p->role == ROLE_HEAD;
            else if (!strcmp(kind, "layers") || !strcmp(kind, "top")) on = in;
            else if (!strcmp(kind, "attn")) on = in && is_attn(p);
            else if (!strcmp(kind, "mlp")) on = in && (p->role == ROLE_MLP || p->role == ROLE_ROUTER);
            else if (!strcmp(kind, "routers")) on = p->role == ROLE_ROUTER && (!colon || in);
            else
                fatal("key 'train': unknown item '%s' (all, none, gates, embed, head, layers:L, "
                      "attn:L, mlp:L, gates:L, routers, top:N; join with '+')", item);
            if ((!strcmp(kind, "all") || !strcmp(kind, "none") || !strcmp(kind, "embed") ||
                 !strcmp(kind, "head")) && colon)
                fatal("key 'train': '%s' takes no layer list", item);
            if (on) trainable[i] = 1;
        }
    }
    for (int i = 0; i < t->count; i++) {  // random gates and routers are frozen at init, always
        const ParamInfo *p = &t->info[i];
        if (p->role == ROLE_GATE && plan->attn.gate_frozen[p->layer]) trainable[i] = 0;
        if (p->role == ROLE_ROUTER && plan->ffn.router[p->layer] == ROUTER_RANDOM) trainable[i] = 0;
    }
}

void freeze_resolve(unsigned char *trainable, unsigned char *gets_grad, const ParamTable *t,
                    const char *spec, const ModelPlan *plan, const unsigned char *override,
                    Objective objective) {
    if (override) memcpy(trainable, override, (size_t)t->count);
    else freeze_apply(trainable, t, spec, plan);
    for (int i = 0; i < t->count; i++) {
        const ParamInfo *p = &t->info[i];
        int on_path = 1;
        if (p->role == ROLE_GATE && objective == OBJECTIVE_LM) {
            AttnMode md = plan->attn.mode[p->layer];
            on_path = route_gate_in_graph(md, plan->attn.gate_grad) &&
                      !(route_routes_tokens(md) && strstr(p->name, ".gate_q."));  // router: gk only
        }
        gets_grad[i] = trainable[i] && on_path;
    }
}
