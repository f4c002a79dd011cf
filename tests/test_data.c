// test_data.c: MQAR examples (layout, labels, determinism, gap law, split disjointness) and the
// shard-backed dataset (windows, targets, wrapping, resumable position, error paths).
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "common.h"
#include "addition.h"
#include "dataset.h"
#include "mqar.h"
#include "shard.h"

// ----------------------------------------------------------------------------- helpers
static uint64_t hash_tokens(const int32_t *x, size_t n) {
    uint64_t h = 0x5eed;
    for (size_t i = 0; i < n; i++) h = hash64(h, (uint64_t)(uint32_t)x[i]);
    return h;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

// Runs fn(arg) in a child; passes when the child exits non-zero and its stderr holds `needle`.
static void expect_fatal(void (*fn)(const void *), const void *arg, const char *needle,
                         const char *what) {
    CHECK(check_child_fails(fn, arg, needle), "%s: expected a one-line fatal error naming '%s'",
          what, needle);
}

// ----------------------------------------------------------------------------- MQAR layout
// Checks one example against every rule of the task; returns 1 if all hold.
static int example_is_valid(const MqarSpec *s, const int32_t *in, const int32_t *tg) {
    int T = s->seq_len, V = s->vocab_size, N = s->pairs, half = V / 2, prefix = 2 * N;
    int ok = 1;
    for (int i = 0; i < N; i++) {
        int k = in[2 * i], v = in[2 * i + 1];
        ok &= k >= 1 && k < half && v >= half && v < V;
        for (int j = 0; j < i; j++) ok &= in[2 * j] != k && in[2 * j + 1] != v;
        ok &= tg[2 * i] == IGNORE_INDEX && tg[2 * i + 1] == IGNORE_INDEX;
    }
    int labelled = 0;
    int *queried = xcalloc((size_t)N, sizeof(int));
    for (int t = prefix; t < T; t++) {
        int pair = -1;
        for (int i = 0; i < N; i++)
            if (in[t] == in[2 * i]) pair = i;
        if (tg[t] != IGNORE_INDEX) {
            labelled++;
            ok &= (t - prefix) % 2 == 0;
            ok &= pair >= 0 && tg[t] == in[2 * pair + 1];  // label = the queried key's value
            if (pair >= 0) queried[pair]++;
        } else {
            ok &= pair < 0;  // a key in the tail is always a labelled query: no ambiguity
            if (s->random_filler) ok &= in[t] >= 1 && in[t] < V;
            else ok &= in[t] == 0;
        }
    }
    ok &= labelled == N;
    for (int i = 0; i < N; i++) ok &= queried[i] == 1;
    xfree(queried);
    return ok;
}

static void test_mqar_layout(void) {
    MqarSpec specs[] = {
        {.seq_len = 64, .vocab_size = 64, .pairs = 4, .random_filler = 0, .alpha = 0.01f},
        {.seq_len = 64, .vocab_size = 64, .pairs = 4, .random_filler = 1, .alpha = 0.01f},
        {.seq_len = 33, .vocab_size = 20, .pairs = 8, .random_filler = 1, .alpha = 0.01f},
        {.seq_len = 16, .vocab_size = 12, .pairs = 4, .random_filler = 0, .alpha = 1.0f},
        {.seq_len = 256, .vocab_size = 8192, .pairs = 32, .random_filler = 1, .alpha = 0.1f},
        {.seq_len = 8, .vocab_size = 4, .pairs = 1, .random_filler = 1, .alpha = 0.01f},
    };
    int32_t in[256], tg[256], in2[256], tg2[256];
    for (size_t c = 0; c < sizeof specs / sizeof specs[0]; c++) {
        const MqarSpec *s = &specs[c];
        mqar_validate(s);
        int bad = 0;
        for (uint64_t i = 0; i < 2000; i++) {
            mqar_example(s, 1234, i, in, tg);
            if (!example_is_valid(s, in, tg)) bad++;
        }
        CHECK(bad == 0, "config %zu (T=%d V=%d N=%d filler=%d): %d of 2000 examples break the "
              "layout", c, s->seq_len, s->vocab_size, s->pairs, s->random_filler, bad);
    }
    const MqarSpec *s = &specs[0];
    // Determinism by (seed, index); other indices and seeds give other examples.
    mqar_example(s, 99, 42, in, tg);
    mqar_example(s, 99, 42, in2, tg2);
    CHECK(!memcmp(in, in2, sizeof(int32_t) * 64) && !memcmp(tg, tg2, sizeof(int32_t) * 64),
          "same (seed, index) gives the same example");
    int same_as_next = 0, same_other_seed = 0;
    for (uint64_t i = 0; i < 200; i++) {
        mqar_example(s, 99, i, in, tg);
        mqar_example(s, 99, i + 1, in2, tg2);
        same_as_next += !memcmp(in, in2, sizeof(int32_t) * 64);
        mqar_example(s, 100, i, in2, tg2);
        same_other_seed += !memcmp(in, in2, sizeof(int32_t) * 64);
    }
    CHECK(same_as_next == 0, "%d of 200 consecutive indices gave identical examples",
          same_as_next);
    CHECK(same_other_seed == 0, "%d of 200 examples equal under another seed", same_other_seed);
}

// ----------------------------------------------------------------------------- gap law
// The first key's gap is the first draw: P(g) = w_g / W with w_g = (g+1)^(a-1). The second key's
// gap is drawn from what is left: P(g) = sum_{h != g} P1(h) w_g / (W - w_h).
static void test_mqar_gap_law(void) {
    const int T = 64, N = 4, slots = (T - 2 * N) / 2, n = 20000;
    float alphas[] = {0.01f, 1.0f};
    int32_t in[64], tg[64];
    for (int a = 0; a < 2; a++) {
        MqarSpec s = {.seq_len = T, .vocab_size = 64, .pairs = N, .alpha = alphas[a]};
        double w[64], W = 0.0;
        for (int g = 0; g < slots; g++) W += (w[g] = pow(g + 1.0, alphas[a] - 1.0));
        double p1[64], p2[64];
        for (int g = 0; g < slots; g++) p1[g] = w[g] / W;
        for (int g = 0; g < slots; g++) {
            p2[g] = 0.0;
            for (int h = 0; h < slots; h++)
                if (h != g) p2[g] += p1[h] * w[g] / (W - w[h]);
        }
        int count1[64] = {0}, count2[64] = {0}, small = 0;
        for (int i = 0; i < n; i++) {
            mqar_example(&s, 555, (uint64_t)i, in, tg);
            for (int t = 2 * N; t < T; t++) {
                if (tg[t] == IGNORE_INDEX) continue;
                int g = (t - 2 * N) / 2;
                if (in[t] == in[0]) count1[g]++;
                if (in[t] == in[2]) count2[g]++;
                if (g < slots / 4) small++;
            }
        }
        // Each bin within 5 standard deviations (of a binomial) of its exact probability.
        int worst1 = -1, worst2 = -1;
        double z1 = 0.0, z2 = 0.0;
        for (int g = 0; g < slots; g++) {
            double sd1 = sqrt(n * p1[g] * (1 - p1[g])) + 1e-9, sd2 = sqrt(n * p2[g] * (1 - p2[g]));
            double e1 = fabs(count1[g] - n * p1[g]) / sd1, e2 = fabs(count2[g] - n * p2[g]) / sd2;
            if (e1 > z1) z1 = e1, worst1 = g;
            if (e2 > z2) z2 = e2, worst2 = g;
        }
        CHECK(z1 < 5.0, "alpha=%g: first key's gap %d is %.1f sd off its power-law probability",
              (double)alphas[a], worst1, z1);
        CHECK(z2 < 5.0, "alpha=%g: second key's gap %d is %.1f sd off (draws must be without "
              "replacement)", (double)alphas[a], worst2, z2);
        double frac_small = (double)small / ((double)n * N);
        if (alphas[a] < 0.5f)
            CHECK(frac_small > 0.5, "alpha=0.01: only %.2f of queries in the first quarter of "
                  "gaps; the power law should make small gaps common", frac_small);
        else
            CHECK(frac_small < 0.35, "alpha=1: %.2f of queries in the first quarter of gaps; "
                  "alpha=1 means uniform gaps", frac_small);
    }
}

// ----------------------------------------------------------------------------- MQAR dataset
static DataSpec mqar_data_spec(void) {
    return (DataSpec){.data = "mqar", .seq_len = 64, .vocab_size = 64, .mqar_pairs = 4,
                      .mqar_random_filler = 0, .mqar_alpha = 0.01f, .mqar_eval_examples = 2000,
                      .seed = 3};
}

static void test_mqar_dataset(void) {
    DataSpec spec = mqar_data_spec();
    Dataset *train = dataset_open(&spec, SPLIT_TRAIN);
    Dataset *test = dataset_open(&spec, SPLIT_VAL);
    CHECK(!strcmp(dataset_describe(train), "mqar (V=64, T=64, 4 pairs)"), "describe: %s",
          dataset_describe(train));
    CHECK(dataset_num_windows(test) == 2000, "test windows %zu", dataset_num_windows(test));
    MqarSpec ms = {.seq_len = 64, .vocab_size = 64, .pairs = 4, .alpha = 0.01f};

    // Train rows are examples 0, 1, 2, ... of the stream `seed`; the position counts them.
    enum { B = 8, T = 64 };
    int32_t in[B * T], tg[B * T], ref_in[T], ref_tg[T], in2[B * T], tg2[B * T];
    dataset_next_batch(train, B, in, tg);
    dataset_next_batch(train, B, in, tg);
    CHECK(dataset_position(train) == 2 * B, "position after two batches %llu",
          (unsigned long long)dataset_position(train));
    int rows_ok = 1;
    for (int b = 0; b < B; b++) {
        mqar_example(&ms, spec.seed, (uint64_t)(B + b), ref_in, ref_tg);
        rows_ok &= !memcmp(in + b * T, ref_in, sizeof ref_in) &&
                   !memcmp(tg + b * T, ref_tg, sizeof ref_tg);
    }
    CHECK(rows_ok, "train batch rows are examples B..2B-1 of stream seed");
    uint64_t pos = dataset_position(train);
    dataset_next_batch(train, B, in, tg);
    dataset_set_position(train, pos);
    dataset_next_batch(train, B, in2, tg2);
    CHECK(!memcmp(in, in2, sizeof in) && !memcmp(tg, tg2, sizeof tg), "restored position "
          "repeats the batch");

    // A batch big enough to be generated in parallel still has the rows in stream order.
    enum { BIG = 96 };
    int32_t *big_in = malloc(sizeof(int32_t) * BIG * T);
    int32_t *big_tg = malloc(sizeof(int32_t) * BIG * T);
    dataset_set_position(train, 1000);
    dataset_next_batch(train, BIG, big_in, big_tg);
    int big_ok = dataset_position(train) == 1000 + BIG;
    for (int b = 0; b < BIG; b++) {
        mqar_example(&ms, spec.seed, (uint64_t)(1000 + b), ref_in, ref_tg);
        big_ok &= !memcmp(big_in + b * T, ref_in, sizeof ref_in) &&
                  !memcmp(big_tg + b * T, ref_tg, sizeof ref_tg);
    }
    CHECK(big_ok, "a %d-row batch holds examples 1000..%d in order", BIG, 1000 + BIG - 1);
    free(big_in);
    free(big_tg);

    // No test example is one of the first 5000 training examples.
    enum { NTRAIN = 5000 };
    uint64_t *seen = malloc(sizeof(uint64_t) * NTRAIN);
    for (int i = 0; i < NTRAIN; i++) {
        mqar_example(&ms, spec.seed, (uint64_t)i, ref_in, ref_tg);
        seen[i] = hash_tokens(ref_in, T);
    }
    qsort(seen, NTRAIN, sizeof(uint64_t), cmp_u64);
    int shared = 0, test_ok = 1;
    for (size_t w = 0; w < dataset_num_windows(test); w++) {
        dataset_window(test, w, ref_in, ref_tg);
        test_ok &= example_is_valid(&ms, ref_in, ref_tg);
        uint64_t h = hash_tokens(ref_in, T);
        shared += bsearch(&h, seen, NTRAIN, sizeof(uint64_t), cmp_u64) != NULL;
    }
    CHECK(shared == 0, "%d test examples also occur among the first %d training examples",
          shared, NTRAIN);
    CHECK(test_ok, "test examples follow the MQAR layout");
    free(seen);

    // Windows are deterministic and match the train stream for the train split.
    dataset_window(train, 5, in, tg);
    mqar_example(&ms, spec.seed, 5, ref_in, ref_tg);
    CHECK(!memcmp(in, ref_in, sizeof ref_in), "train window 5 is train example 5");
    dataset_window(test, 5, in2, tg2);
    CHECK(memcmp(in2, ref_in, sizeof ref_in) != 0, "test window 5 differs from train example 5");
    dataset_free(train);
    dataset_free(test);
}

// ----------------------------------------------------------------------------- shards
static char shard_dir[256];

static void write_shard_dir(const char *dir, const int32_t *train, size_t n_train,
                            const int32_t *val, size_t n_val, int vocab) {
    make_dirs(dir);
    char path[512], json[512];
    join_path(path, sizeof path, dir, "train.bin");
    shard_write(path, train, n_train);
    join_path(path, sizeof path, dir, "val.bin");
    shard_write(path, val, n_val);
    int len = snprintf(json, sizeof json, "{\"tokenizer\": \"gpt2\", \"vocab_size\": %d, "
                       "\"train_tokens\": %zu, \"val_tokens\": %zu, \"sources\": []}",
                       vocab, n_train, n_val);
    join_path(path, sizeof path, dir, "dataset.json");
    write_file_atomic(path, json, (size_t)len);
}

static DataSpec shard_spec(const char *dir, int T, int vocab) {
    return (DataSpec){.data = dir, .seq_len = T, .vocab_size = vocab, .seed = 1};
}

static void test_shards(void) {
    enum { N_TRAIN = 993, N_VAL = 300, T = 16, B = 5 };
    static int32_t train_tok[N_TRAIN], val_tok[N_VAL];
    for (int i = 0; i < N_TRAIN; i++) train_tok[i] = (i * 7 + 3) % 500;
    for (int i = 0; i < N_VAL; i++) val_tok[i] = (i * 11 + 1) % 500;
    char dir[512];
    join_path(dir, sizeof dir, shard_dir, "ok");
    write_shard_dir(dir, train_tok, N_TRAIN, val_tok, N_VAL, 500);

    DataSpec spec = shard_spec(dir, T, 512);  // a model vocab above the shard's is fine
    Dataset *ds = dataset_open(&spec, SPLIT_TRAIN);
    char want[700];
    snprintf(want, sizeof want, "shards %s (train %d tokens, tokenizer gpt2)", dir, N_TRAIN);
    CHECK(!strcmp(dataset_describe(ds), want), "describe: %s", dataset_describe(ds));
    CHECK(dataset_num_windows(ds) == (N_TRAIN - 1) / T, "train windows %zu",
          dataset_num_windows(ds));

    // Evaluation window w = tokens[w*T .. w*T+T]; the last one ends inside the shard.
    int32_t in[B * T], tg[B * T], in2[B * T], tg2[B * T];
    int win_ok = 1;
    for (size_t w = 0; w < dataset_num_windows(ds); w++) {
        dataset_window(ds, w, in, tg);
        for (int t = 0; t < T; t++)
            win_ok &= in[t] == train_tok[w * T + t] && tg[t] == train_tok[w * T + t + 1];
    }
    CHECK(win_ok, "evaluation windows are tokens[w*T .. w*T+T], targets shifted by one");

    // Training rows: stride T, wrapping to offset 0 when T+1 tokens no longer fit.
    // 993 tokens, T=16: rows start at 0, 16, ..., 976 (62 rows; the last one ends exactly at
    // the final token), then 0 again.
    size_t expect_pos = 0;
    int rows_ok = 1, wrapped = 0;
    for (int batch = 0; batch < 40; batch++) {
        if (batch == 20) {  // save/restore in the middle of a pass
            uint64_t pos = dataset_position(ds);
            dataset_next_batch(ds, B, in, tg);
            dataset_set_position(ds, pos);
        }
        dataset_next_batch(ds, B, in, tg);
        for (int b = 0; b < B; b++) {
            if (expect_pos + T + 1 > N_TRAIN) expect_pos = 0, wrapped++;
            for (int t = 0; t < T; t++)
                rows_ok &= in[b * T + t] == train_tok[expect_pos + t] &&
                           tg[b * T + t] == train_tok[expect_pos + t + 1];
            expect_pos += T;
        }
    }
    CHECK(rows_ok, "training rows are consecutive stride-T windows");
    CHECK(wrapped == 3, "200 rows of 62 per pass wrap 3 times, saw %d", wrapped);
    CHECK(dataset_position(ds) == expect_pos, "position %llu is the token offset %zu",
          (unsigned long long)dataset_position(ds), expect_pos);

    // A fresh dataset resumed at a saved position gives the same batch.
    uint64_t pos = dataset_position(ds);
    dataset_next_batch(ds, B, in, tg);
    Dataset *resumed = dataset_open(&spec, SPLIT_TRAIN);
    dataset_set_position(resumed, pos);
    dataset_next_batch(resumed, B, in2, tg2);
    CHECK(!memcmp(in, in2, sizeof in) && !memcmp(tg, tg2, sizeof tg), "resumed dataset "
          "repeats the batch");
    dataset_free(resumed);
    dataset_free(ds);

    Dataset *val = dataset_open(&spec, SPLIT_VAL);
    CHECK(dataset_num_windows(val) == (N_VAL - 1) / T, "val windows %zu",
          dataset_num_windows(val));
    dataset_window(val, 2, in, tg);
    CHECK(in[0] == val_tok[2 * T] && tg[T - 1] == val_tok[3 * T], "val window 2 reads val.bin");
    CHECK(strstr(dataset_describe(val), "(val 300 tokens") != NULL, "val describe: %s",
          dataset_describe(val));
    dataset_free(val);
}

// ----------------------------------------------------------------------------- error paths
static void open_train(const void *arg) { dataset_open((const DataSpec *)arg, SPLIT_TRAIN); }
static void open_val(const void *arg) { dataset_open((const DataSpec *)arg, SPLIT_VAL); }
static void validate(const void *arg) { mqar_validate((const MqarSpec *)arg); }

static void test_errors(void) {
    char dir[512];
    join_path(dir, sizeof dir, shard_dir, "ok");
    DataSpec small_vocab = shard_spec(dir, 16, 400);
    expect_fatal(open_train, &small_vocab, "--vocab_size=500 or more", "model vocab too small");

    DataSpec missing = shard_spec("/nonexistent/routelab-data", 16, 512);
    expect_fatal(open_train, &missing, "/nonexistent/routelab-data", "missing data directory");

    DataSpec too_long = shard_spec(dir, 400, 512);  // val.bin holds 300 tokens
    expect_fatal(open_val, &too_long, "401 tokens is needed", "split shorter than a window");

    static int32_t tokens[100];
    for (int i = 0; i < 100; i++) tokens[i] = i;
    tokens[50] = 700;  // outside the declared vocab of 500
    char bad[512];
    join_path(bad, sizeof bad, shard_dir, "bad");
    write_shard_dir(bad, tokens, 100, tokens, 100, 500);
    DataSpec bad_token = shard_spec(bad, 16, 1024);
    expect_fatal(open_train, &bad_token, "token 700 at offset 50", "token beyond the vocab");

    DataSpec no_eval = mqar_data_spec();
    no_eval.mqar_eval_examples = 0;
    expect_fatal(open_val, &no_eval, "mqar_eval_examples", "MQAR test split without examples");

    MqarSpec short_seq = {.seq_len = 15, .vocab_size = 64, .pairs = 4, .alpha = 0.01f};
    expect_fatal(validate, &short_seq, "seq_len >= 4*pairs = 16", "seq_len < 4N");
    MqarSpec many_pairs = {.seq_len = 64, .vocab_size = 16, .pairs = 8, .alpha = 0.01f};
    expect_fatal(validate, &many_pairs, "--vocab_size=18 or more", "more pairs than keys");
    MqarSpec tiny_vocab = {.seq_len = 64, .vocab_size = 3, .pairs = 1, .alpha = 0.01f};
    expect_fatal(validate, &tiny_vocab, "V >= 4", "vocab below 4");
    MqarSpec zero_alpha = {.seq_len = 64, .vocab_size = 64, .pairs = 4, .alpha = 0.0f};
    expect_fatal(validate, &zero_alpha, "mqar_alpha", "alpha of 0");
}

// ----------------------------------------------------------------------------- addition
// Decodes an example back to (a, b, answer digits) and checks the sum, the layout, the scored
// positions, the carry flag, both answer orders, determinism and train/test disjointness.
static void test_addition(void) {
    for (int msd = 0; msd < 2; msd++) {
        AdditionSpec s = {.seq_len = 14, .vocab_size = 13, .digits = 3, .msd_first = msd};
        int32_t in[14], tg[14], in2[14], tg2[14];
        int layout_ok = 1, sum_ok = 1, carry_ok = 1, scored_ok = 1, det_ok = 1, carries = 0;
        for (int i = 0; i < 300; i++) {
            int test = i % 2, c = addition_example(&s, 42, test, (uint64_t)i, in, tg);
            addition_example(&s, 42, test, (uint64_t)i, in2, tg2);
            det_ok &= !memcmp(in, in2, sizeof in) && !memcmp(tg, tg2, sizeof tg);
            layout_ok &= in[3] == ADD_PLUS && in[7] == ADD_EQUALS && in[12] == ADD_PAD && in[13] == ADD_PAD;
            int a = in[0] * 100 + in[1] * 10 + in[2], b = in[4] * 100 + in[5] * 10 + in[6];
            int sum = a + b, got = 0, scored = 0;
            for (int t = 0; t < 14; t++) scored += tg[t] >= 0;
            scored_ok &= scored == 4 && tg[6] < 0 && tg[7] >= 0 && tg[10] >= 0 && tg[11] < 0;
            for (int j = 0; j < 4; j++) {  // answer token j sits at input 8 + j = target of 7 + j
                int d = tg[7 + j], place = msd ? 3 - j : j;
                int p10 = place == 0 ? 1 : place == 1 ? 10 : place == 2 ? 100 : 1000;
                got += d * p10;
                if (j < 3) layout_ok &= in[8 + j] == d;
            }
            sum_ok &= got == sum;
            int needs = (a % 10 + b % 10 >= 10) || ((a / 10) % 10 + (b / 10) % 10 + (a % 10 + b % 10 >= 10) >= 10) ||
                        sum >= 1000 || (a % 100 + b % 100 >= 100);
            carry_ok &= c == needs;
            carries += c;
        }
        CHECK(det_ok, "addition (%s): examples are deterministic", msd ? "msd" : "lsd");
        CHECK(layout_ok, "addition (%s): a + b = answer, padding after", msd ? "msd" : "lsd");
        CHECK(sum_ok, "addition (%s): the scored digits spell a + b", msd ? "msd" : "lsd");
        CHECK(scored_ok, "addition (%s): exactly the 4 answer digits are scored", msd ? "msd" : "lsd");
        CHECK(carry_ok && carries > 50 && carries < 290, "addition (%s): carry flag right (%d of 300 carry)",
              msd ? "msd" : "lsd", carries);
    }
    // Train and test never share a pair (2-digit operands: 10,000 pairs, ~1,000 in test).
    AdditionSpec s = {.seq_len = 8, .vocab_size = 13, .digits = 2};
    static unsigned char seen[2][10000];
    int32_t in[8], tg[8];
    for (int split = 0; split < 2; split++)
        for (int i = 0; i < 5000; i++) {
            addition_example(&s, 7 + split, split, (uint64_t)i, in, tg);
            seen[split][(in[0] * 10 + in[1]) * 100 + in[3] * 10 + in[4]] = 1;
        }
    int shared = 0, n_test = 0;
    for (int p = 0; p < 10000; p++) shared += seen[0][p] && seen[1][p], n_test += seen[1][p];
    CHECK(shared == 0 && n_test > 600 && n_test < 1100, "addition: train and test disjoint (%d shared; "
          "%d test pairs seen)", shared, n_test);
    // the dataset: test windows are the test stream, classes are the carry flag
    Config c;
    config_defaults(&c);
    config_set(&c, "data", "addition", "test"), config_set(&c, "seq_len", "8", "test");
    config_set(&c, "vocab_size", "13", "test"), config_set(&c, "add_digits", "2", "test");
    config_set(&c, "mqar_eval_examples", "50", "test");
    config_resolve(&c);
    DataSpec spec = dataspec_from_config(&c);
    Dataset *val = dataset_open(&spec, SPLIT_VAL);
    int ok = dataset_num_windows(val) == 50;
    for (size_t w = 0; w < 50; w++) {
        int32_t i2[8], t2[8];
        dataset_window(val, w, in, tg);
        int cls = addition_example(&s, spec.seed, 1, w, i2, t2);
        ok &= !memcmp(in, i2, sizeof in) && dataset_window_class(val, w) == cls;
    }
    CHECK(ok, "addition dataset: windows and classes are the test stream's");
    dataset_free(val);
}

int main(void) {
    snprintf(shard_dir, sizeof shard_dir, "/tmp/routelab_test_data_XXXXXX");
    if (!mkdtemp(shard_dir)) fatal("test: cannot create a temporary directory");
    test_mqar_layout();
    test_mqar_gap_law();
    test_mqar_dataset();
    test_shards();
    test_errors();
    test_addition();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", shard_dir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", shard_dir);
    return check_summary("data");
}
