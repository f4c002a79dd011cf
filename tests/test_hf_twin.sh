#!/usr/bin/env bash
# test_hf_twin.sh: routelab on Hugging Face directories against the independent PyTorch twin
# of the Hugging Face semantics (tests/hf_twin.py, written from transformers' modeling code):
#  1. eval cases (tests/hf_eval_case.py): `routelab eval --ckpt=HFDIR --data=SHARDS --seq_len=T
#     --eval_batches=0 --json` gives the twin's float64 val_loss, dense and oracle top-k, for
#     the acceptance presets (Llama + llama3 rope, sharded F32, untied; Qwen3 BF16, tied, q/k
#     norm, head_dim != hidden/heads, grouped K/V; Qwen2 q/k/v biases; GPT-2 Conv1D, tied, with
#     and without the transformer. prefix and buffers; a vocabulary over 65,536) and other shapes;
#  2. refcheck sets of each family (tests/gen_ref.py --family): logits, loss, every gradient and
#     three AdamW steps in every routing mode, and the set's own HF directory bit for bit.
# Needs /usr/bin/python3 with torch (Debian python3-torch); skipped, by name, without it.
source "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
if ! $PY -c "import torch" 2>/dev/null; then
    skip "PyTorch twin comparisons: /usr/bin/python3 has no torch (apt-get install python3-torch)"
    summary hf_twin
    exit 0
fi
REL=1e-5  # measured agreement is ~1e-9 relative; the acceptance bar is 1e-4

# ----------------------------------------------------------------------------- eval cases
$PY tests/hf_eval_case.py --no_fp32 --all_presets "$TMP/cases" >/dev/null 2>&1 || bad "hf_eval_case.py --all_presets"
i=0
while read -r label opts; do  # other shapes than the presets
    i=$((i + 1))
    $PY tests/hf_eval_case.py --no_fp32 $opts --k 3 6 --out "$TMP/cases/$label" >/dev/null 2>&1 || bad "hf_eval_case.py $label"
done <<'EOF'
llama-3l-6h-mqa --family llama --n_layer 3 --hidden 48 --n_head 6 --n_kv_head 1 --head_dim 8 --intermediate 80 --vocab 300 --T 24 --seed 4 --dtype BF16 --shards 3 --rope_form rope_parameters
qwen3-hd24-f16 --family qwen3 --n_layer 2 --hidden 40 --n_head 2 --n_kv_head 1 --head_dim 24 --intermediate 56 --vocab 150 --T 20 --seed 7 --dtype F16 --attn_bias --tie
qwen2-untied --family qwen2 --n_layer 1 --hidden 64 --n_head 8 --n_kv_head 4 --intermediate 96 --vocab 500 --T 32 --seed 9 --no_tie
gpt2-erf --family gpt2 --n_layer 2 --hidden 32 --n_head 2 --vocab 77 --T 16 --seed 11 --no_gpt2_prefix
EOF
for dir in "$TMP"/cases/*/; do
    name=$(basename "$dir")
    [ -f "$dir/expected.json" ] || { bad "$name: no expected.json"; continue; }
    while read -r key mode k T want; do
        args="--ckpt=$dir/model --data=$dir/data --seq_len=$T --eval_batches=0 --json"
        [ "$mode" = oracle ] && args="$args --attn=oracle --k=$k"
        got=$($RL eval $args 2>&1 | grep -o '"val_loss":[^,}]*' | cut -d: -f2)
        if [ -n "$got" ] && $PY -c "import sys; g, w = float(sys.argv[1]), float(sys.argv[2]); sys.exit(abs(g - w) > $REL * abs(w))" "$got" "$want"; then ok
        else bad "$name $key: routelab val_loss '${got:-error: $($RL eval $args 2>&1 | tail -n 1)}' vs the twin's $want (relative $REL)"; fi
    done < <($PY - "$dir/expected.json" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))
for key, r in e["results"].items():
    print(key, r["mode"], r["k"] or 0, e["eval"]["seq_len"], repr(r["val_loss"]))
PY
)
done

# ----------------------------------------------------------------------------- refcheck sets
while read -r name opts; do
    $PY tests/gen_ref.py --family $opts --out "$TMP/ref/$name" >/dev/null 2>&1 || bad "gen_ref.py --family $name"
done <<'EOF'
llama llama --d_model 48 --n_head 4 --n_kv_head 2 --d_ff 64 --seq_len 16 --vocab_size 97 --k 4 --d_g 8 --rope_theta 500000 --rope_scaling llama3 --rope_original_max_pos 32 --attn_bias 1 --mlp_bias 1 --hf_shards 2
qwen2 qwen2 --d_model 48 --n_head 4 --n_kv_head 2 --d_ff 64 --seq_len 16 --vocab_size 97 --k 4 --d_g 8 --rope_theta 1000000
qwen3 qwen3 --d_model 48 --n_head 4 --n_kv_head 2 --head_dim 16 --d_ff 64 --seq_len 16 --vocab_size 97 --k 4 --d_g 8 --tie_embeddings 1 --hf_dtype BF16
qwen3-mqa qwen3 --n_layer 3 --d_model 32 --n_head 4 --n_kv_head 1 --head_dim 12 --d_ff 40 --seq_len 12 --vocab_size 61 --k 3 --d_g 4 --attn_bias 1 --batch 3 --seed 5
gpt2 gpt2 --d_model 48 --n_head 4 --d_ff 192 --seq_len 16 --vocab_size 97 --k 4 --d_g 8 --gpt2_prefix --gpt2_buffers
EOF
# every set: its hf_dir check plus every case of its index (counted from index.json)
want=$($PY -c "
import json, glob
print(sum(len(json.load(open(f))['case_names']) + ('hf_dir' in json.load(open(f))) for f in glob.glob('$TMP/ref/*/index.json')))")
out=$($RL refcheck "$TMP/ref" 2>&1)
echo "$out" | grep -E "FAIL|error" | head -20
check "refcheck passes all $want checks of the family sets" \
    bash -c "echo \"\$1\" | tail -n 1 | grep -q \"^refcheck: $want passed, 0 failed, 0 skipped\"" _ "$out"
summary hf_twin
