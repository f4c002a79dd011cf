#!/usr/bin/env bash
# test_llm.sh: the llm-* recipes of `routelab repro` (the paper's Section 5 on a pretrained
# model). At tiny scale they train and export a Qwen3-family model of their own and run on it;
# with --model they run on a Hugging Face directory of another family (a Llama-family model
# made here, with a byte-level tokenizer.json of its own, so --data can be plain text). Checks:
# every run of the sweep finished (counted from repro --list), the report's tables and plots,
# that the exported model is what a download would be, that single-layer fine-tuning changes
# only block L/2's attention weights (byte for byte) and the gates, and the one-line errors.
source "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
R4=llm-concentration,llm-capacity,llm-single-layer,llm-gradient
QUICK="--steps=8 --distill_steps=4"
# uses: the (recipe, arm, seed) rows a sweep reports, counted from the recipe table (--list)
uses() { $RL repro "$@" --list | $PY -c "import json,sys; print(sum(len(r['recipes']) for r in json.load(sys.stdin)))"; }
runs() { $RL repro "$@" --list | $PY -c "import json,sys; print(len(json.load(sys.stdin)))"; }
finished_rows() {  # results.json rows with a result
    $PY -c "import json,sys; print(sum(r['result'] is not None for r in json.load(open(sys.argv[1]))))" "$1"
}

# ----------------------------------------------------------------------------- tiny, own model
OWN="$TMP/own"
$RL repro $R4 --scale=tiny --seeds=1 $QUICK --out="$OWN" >"$TMP/own.log" 2>&1 ||
    bad "repro llm-* tiny: $(tail -3 "$TMP/own.log")"
n=$(uses $R4 --scale=tiny --seeds=1)
check "repro llm-* tiny: every one of the $n (recipe, arm, seed) rows finished" \
    [ "$(finished_rows "$OWN/results.json")" = "$n" ]
check "the sweep trained its model and exported it" \
    bash -c "[ -s '$OWN/llm_base/seed0/result.json' ] && [ -s '$OWN/llm_model/seed0/result.json' ]"
check "the exported model is a plain Qwen3 directory, as a download (no routelab.safetensors)" \
    bash -c "grep -q Qwen3ForCausalLM '$OWN/llm_model/seed0/model/config.json' && [ -s '$OWN/llm_model/seed0/model/model.safetensors' ] && [ ! -e '$OWN/llm_model/seed0/model/routelab.safetensors' ]"
check "with 3 seeds, the model, its export and the evaluations no seed changes run once, the rest per seed" \
    $PY - <<'PY'
import json, subprocess
runs = json.loads(subprocess.run(["./routelab", "repro", "llm-concentration,llm-capacity,llm-single-layer,llm-gradient",
                                  "--scale=tiny", "--seeds=3", "--list"], capture_output=True, text=True, check=True).stdout)
seeds = {}
for r in runs:
    seeds.setdefault(r["arm"], set()).add(r["seed"])
once = {"llm_base", "llm_model", "llm_dense", "llm_oracle_k", "llm_oracle_2k", "llm_oracle_4k", "llm_random_top0"}
assert {a for a, s in seeds.items() if s == {0}} == once, seeds
assert all(s == {0, 1, 2} for a, s in seeds.items() if a not in once), seeds
PY
check "every llm run starts from the exported directory" $PY - "$OWN" <<'PY'
import json, subprocess, sys
runs = json.loads(subprocess.run(["./routelab", "repro", "llm-concentration,llm-capacity,llm-single-layer,llm-gradient",
                                  "--scale=tiny", "--seeds=1", "--out=" + sys.argv[1], "--list"],
                                 capture_output=True, text=True, check=True).stdout)
src = sys.argv[1] + "/llm_model/seed0/model"
for r in runs:
    if r["arm"] in ("llm_base", "llm_model"):
        continue
    assert any(a in ("--init=" + src, "--from=" + src, "--ckpt=" + src) for a in r["argv"]), r["arm"]
PY
for section in "## llm-concentration" "| top-k | dense ppl | oracle top-k ppl | oracle / dense |" \
               "**Premise check**" "## llm-capacity" "| loss | d_g | k = 4 | k = 8 | k = 16 |" \
               "| kl | 32 |" "| bce | 128 |" "12.24 / 11.72 / 11.56" "## llm-single-layer" \
               "Only block 2 (of 4) trains" "## llm-gradient" "share of the N = 0 gap closed"; do
    check "llm report: $section" grep -qF "$section" "$OWN/report.md"
done
if command -v gnuplot >/dev/null; then
    for png in llm-concentration_concentration llm-gradient_gradient llm-single-layer_convergence; do
        check "llm plot $png.png" [ -s "$OWN/$png.png" ]
    done
else
    skip "llm plots (no gnuplot)"
fi
$RL repro $R4 --scale=tiny --seeds=1 $QUICK --out="$OWN" >"$TMP/own2.log" 2>&1
check "a second run of the sweep skips all $n finished rows" [ "$(grep -c 'skipped' "$TMP/own2.log")" -eq "$n" ]

# ----------------------------------------------------------------------------- --model: Llama
# A byte-level BPE tokenizer.json (the 256 byte tokens and a few merges), then a Llama-family
# model trained briefly on text tokenized with it and exported plain: a stand-in download.
LL="$TMP/llama"
mkdir -p "$LL"
$PY - "$LL/tokenizer.json" <<'PY'
import json, sys
bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
cs = bs[:]
n = 0
for b in range(256):
    if b not in bs:
        bs.append(b); cs.append(256 + n); n += 1
char = {b: chr(c) for b, c in zip(bs, cs)}
vocab = {char[b]: b for b in range(256)}
merges = []
for a, b in [("t", "h"), ("th", "e"), ("Ġ", "th"), ("a", "n"), ("Ġ", "a")]:
    merges.append(a + " " + b); vocab[a + b] = len(vocab)
tok = {"version": "1.0", "added_tokens": [], "normalizer": None,
       "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
       "post_processor": None, "decoder": {"type": "ByteLevel"},
       "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                 "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "vocab": vocab, "merges": merges}}
json.dump(tok, open(sys.argv[1], "w"))
PY
cat README.md README.md README.md >"$TMP/text.txt"
$RL prepare --input="$TMP/text.txt" --tokenizer=hf:"$LL" --out="$TMP/llshards" >/dev/null 2>&1 || bad "prepare with the test tokenizer.json"
$RL train --family=llama --n_layer=3 --d_model=32 --n_head=4 --n_kv_head=2 --d_ff=64 --vocab_size=261 \
    --seq_len=32 --data="$TMP/llshards" --steps=20 --batch=4 --eval_every=0 --log_every=0 --dropout=0 \
    --out="$TMP/llrun" >/dev/null 2>&1 || bad "train the Llama-family model"
$RL export --ckpt="$TMP/llrun" --out="$LL" --plain >/dev/null 2>&1 || bad "export --plain the Llama-family model"
check "the stand-in download is a plain LlamaForCausalLM directory" \
    bash -c "grep -q LlamaForCausalLM '$LL/config.json' && [ ! -e '$LL/routelab.safetensors' ]"
MOD="$TMP/onllama"
ARGS=(--scale=tiny --seeds=1 --model="$LL" --data="$TMP/text.txt" $QUICK)
$RL repro $R4 "${ARGS[@]}" --out="$MOD" >"$TMP/mod.log" 2>&1 || bad "repro llm-* --model=LLAMA: $(tail -3 "$TMP/mod.log")"
n=$(uses $R4 "${ARGS[@]}")
check "repro llm-* --model: every one of the $n rows finished" [ "$(finished_rows "$MOD/results.json")" = "$n" ]
check "repro llm-* --model trains and exports no model of its own ($(runs $R4 "${ARGS[@]}") runs)" \
    bash -c "[ ! -e '$MOD/llm_base' ] && [ ! -e '$MOD/llm_model' ]"
check "repro llm-* --model tokenized the text with the model's tokenizer.json" [ -s "$MOD/llm-data/dataset.json" ]
check "repro llm-* --model: the single-layer block is L/2 of the model's 3 layers" grep -qF "Only block 1 (of 3) trains" "$MOD/report.md"
check "repro llm-* --model: the absorption gradient stops at the model's 3 layers (0, 2 unfrozen)" \
    bash -c "[ -s '$MOD/llm_learned_top2/seed0/result.json' ] && [ ! -e '$MOD/llm_learned_top4' ]"

# Single-layer fine-tuning changes only block 1's attention weights and the gates: the exported
# results against the model they started from, tensor by tensor, byte for byte.
for arm in llm_sl_learned llm_sl_random llm_sl_nogate; do
    $RL export --ckpt="$MOD/$arm/seed0" --out="$TMP/x_$arm" >/dev/null 2>&1 || bad "export $arm"
done
check "single-layer fine-tuning changed exactly block 1's q/k/v/o and the learned gates, nothing else" \
    $PY - "$LL" "$TMP" <<'PY'
import json, os, struct, sys
def tensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    h = json.loads(raw[8:8 + n]); h.pop("__metadata__", None)
    return {k: raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]] for k, v in h.items()}
base = tensors(os.path.join(sys.argv[1], "model.safetensors"))
attn = {"model.layers.1.self_attn.%s_proj.weight" % p for p in "qkvo"}
gates = {}
for arm in ("llm_sl_learned", "llm_sl_random", "llm_sl_nogate"):
    d = os.path.join(sys.argv[2], "x_" + arm)
    t = tensors(os.path.join(d, "model.safetensors"))
    assert set(t) == set(base), arm
    changed = {k for k in t if t[k] != base[k]}
    assert changed == attn, (arm, sorted(changed ^ attn))
    extra = tensors(os.path.join(d, "routelab.safetensors"))
    gates[arm] = {k: v for k, v in extra.items() if ".gate_" in k}
# Same gate_seed in both arms: the frozen random arm's gates are the initial ones. The learned
# arm's gates moved on block 1 (the soft layer) and nowhere else (the dense layers' gates are
# not in the forward).
g1 = {k for k in gates["llm_sl_random"] if k.startswith("blocks.1.")}
assert g1 and set(gates["llm_sl_learned"]) == set(gates["llm_sl_random"])
moved = {k for k in gates["llm_sl_random"] if gates["llm_sl_learned"][k] != gates["llm_sl_random"][k]}
assert moved == g1, sorted(moved ^ g1)
PY

# ----------------------------------------------------------------------------- errors
expect_error "repro llm-* at paper scale without --model" "need a pretrained model: give --model" \
    $RL repro llm-concentration --scale=paper --out="$TMP/e1"
expect_error "repro --model that is no Hugging Face directory" "is not a Hugging Face model directory" \
    $RL repro llm-concentration --model="$TMP" --out="$TMP/e2"
expect_error "repro llm-* with a text --data but no --model" "needs the model's tokenizer" \
    $RL repro llm-concentration --data="$TMP/text.txt" --out="$TMP/e3"
expect_error "repro llm-* with a text --data and a model without tokenizer.json" "tokenizer.json is missing" \
    $RL repro llm-concentration --model="$OWN/llm_model/seed0/model" --data="$TMP/text.txt" --out="$TMP/e4"
expect_error "repro llm-* at paper scale with --model but no --data" "need text: give --data" \
    $RL repro llm-concentration --scale=paper --model="$LL" --out="$TMP/e5"
summary llm
