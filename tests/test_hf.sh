#!/usr/bin/env bash
# test_hf.sh: Hugging Face model directories. Export -> load -> eval bit for bit for every family
# (and the exported files read by an independent Python safetensors reader), every command that
# takes a checkpoint accepting the directory, and the one-line errors for bad directories
# (unknown architecture, rope type, activation, dtype; missing shard or tensor; wrong shape;
# truncated file; unexpected tensor). The comparison against an independent PyTorch forward of
# the Hugging Face semantics is tests/test_hf_twin.sh.
source "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
TINY="--data=mqar --n_layer=2 --d_model=32 --n_head=4 --d_ff=48 --seq_len=24 --vocab_size=40 --steps=6
      --batch=4 --eval_every=0 --eval_batches=4 --log_every=0 --threads=2 --mqar_pairs=4"
loss_of() { grep -o '"val_loss":[^,}]*' | cut -d: -f2; }

# A reader of the safetensors layout written from its description (python3 std lib + struct):
# prints NAME SHAPE per tensor, and checks offsets, sizes and the config.json sizes.
cat >"$TMP/hf_reader.py" <<'PY'
import json, os, struct, sys
SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8}
def read(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    at, out = 0, {}
    for name, t in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
        b, e = t["data_offsets"]
        count = 1
        for s in t["shape"]:
            count *= s
        assert b == at and count * SIZES[t["dtype"]] == e - b, name
        out[name] = t["shape"]
        at = e
    assert 8 + n + at == len(raw)
    return out
d = sys.argv[1]
cfg = json.load(open(os.path.join(d, "config.json")))
t = read(os.path.join(d, "model.safetensors"))
if cfg["model_type"] == "gpt2":
    D, L, V = cfg["n_embd"], cfg["n_layer"], cfg["vocab_size"]
    assert t["transformer.wte.weight"] == [V, D] and t["transformer.wpe.weight"] == [cfg["n_positions"], D]
    assert t["transformer.h.0.attn.c_attn.weight"] == [D, 3 * D]          # Conv1D: in x out
    assert t["transformer.h.%d.mlp.c_fc.weight" % (L - 1)] == [D, cfg["n_inner"]]
else:
    D, L, V = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    H, KV, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    assert t["model.embed_tokens.weight"] == [V, D]
    assert t["model.layers.0.self_attn.q_proj.weight"] == [H * hd, D]
    assert t["model.layers.0.self_attn.k_proj.weight"] == [KV * hd, D]
    assert t["model.layers.%d.self_attn.o_proj.weight" % (L - 1)] == [D, H * hd]
    assert t["model.layers.0.mlp.gate_proj.weight"] == [cfg["intermediate_size"], D]
    assert ("lm_head.weight" in t) == (not cfg["tie_word_embeddings"])
    if cfg["model_type"] == "qwen3":
        assert t["model.layers.0.self_attn.q_norm.weight"] == [hd]
print(len(t), "tensors")
PY

# ----------------------------------------------------------------------------- round trips
i=0
while read -r label spec; do
    i=$((i + 1))
    run="$TMP/run$i" hf="$TMP/hf$i"
    $RL train $TINY $spec --out="$run" >/dev/null 2>&1 || { bad "train $label"; continue; }
    check "export $label" $RL export --ckpt="$run" --out="$hf" >/dev/null
    a=$($RL eval --ckpt="$run" --json 2>/dev/null | loss_of)
    b=$($RL eval --ckpt="$hf" --json 2>/dev/null | loss_of)
    check "export -> eval of $label gives the same loss bit for bit ($a vs $b)" [ -n "$a" ] && [ "$a" = "$b" ]
    check "the independent Python reader opens the $label export" $PY "$TMP/hf_reader.py" "$hf" >/dev/null
done <<'EOF'
gpt-tied-tanh --family=gpt --attn_bias=1 --gelu=tanh
gpt-untied-nobias --family=gpt --tie_embeddings=0 --attn=soft
llama-gqa-llama3-biases --family=llama --n_kv_head=2 --attn_bias=1 --mlp_bias=1 --rope_scaling=llama3 --rope_original_max_pos=8 --tie_embeddings=0
qwen2-gqa-hard --family=qwen2 --n_kv_head=1 --attn=hard --k=3
qwen3-headdim-oracle --family=qwen3 --n_kv_head=2 --head_dim=12 --attn=oracle --k=4
EOF
# every command that takes a checkpoint takes the directory (qwen3 export of the loop above)
hf="$TMP/hf5"
check "eval --attn=oracle --k=2 on a Hugging Face directory" $RL eval --ckpt="$hf" --attn=oracle --k=2 --json >/dev/null 2>&1
check "eval --seq_len shorter than the rotary model's" $RL eval --ckpt="$hf" --seq_len=16 --json >/dev/null 2>&1
check "sample from a Hugging Face directory" $RL sample --ckpt="$hf" --tokens=5 >/dev/null 2>&1
check "train --init from a Hugging Face directory" $RL train --init="$hf" $TINY --family=qwen3 --n_kv_head=2 --head_dim=12 --steps=2 --out="$TMP/init" >/dev/null 2>&1
check "distill --from a Hugging Face directory" $RL distill --from="$hf" --steps=2 --out="$TMP/dist" >/dev/null 2>&1
# single-layer fine-tuning (train --init=HFDIR takes the architecture from config.json): only
# block 1's attention (q/k/v/o, q/k norms) and its gates change, byte for byte in the export
$RL train --init="$hf" --data=mqar --seq_len=24 --vocab_size=40 --mqar_pairs=4 --steps=3 --batch=4 \
    --eval_every=0 --log_every=0 --train=attn:1 --attn=soft --lr=1e-2 --out="$TMP/single" >/dev/null 2>&1 \
    || bad "train --init=HFDIR --train=attn:1"
$RL export --ckpt="$TMP/single" --out="$TMP/single-hf" >/dev/null 2>&1 || bad "export of the single-layer run"
check "single-layer fine-tuning changed exactly block 1's attention and gates" \
    $PY - "$hf" "$TMP/single-hf" <<'PY'
import json, struct, sys
def read(path):
    raw = open(path, "rb").read(); (n,) = struct.unpack("<Q", raw[:8])
    h = json.loads(raw[8:8 + n]); h.pop("__metadata__", None)
    return {k: raw[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]] for k, v in h.items()}
changed = set()
for f in ("model.safetensors", "routelab.safetensors"):
    a, b = read(sys.argv[1] + "/" + f), read(sys.argv[2] + "/" + f)
    assert a.keys() == b.keys(), f
    changed |= {k for k in a if a[k] != b[k]}
want = {"model.layers.1.self_attn.%s" % t for t in
        ("q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight", "q_norm.weight", "k_norm.weight")}
want |= {"blocks.1.attn.gate_q.weight", "blocks.1.attn.gate_k.weight"}
assert changed == want, sorted(changed ^ want)
PY
check "export of a Hugging Face directory again" $RL export --ckpt="$hf" --out="$TMP/hf5b" >/dev/null 2>&1
check "eval --seq_len longer than GPT-2's learned positions is refused" \
    bash -c "! $RL eval --ckpt=$TMP/hf1 --seq_len=64 >/dev/null 2>&1"
$RL train $TINY --ffn=moe --out="$TMP/moe" >/dev/null 2>&1
check "export of a mixture of experts is refused by name" \
    bash -c "$RL export --ckpt=$TMP/moe --out=$TMP/moehf 2>&1 | grep -q \"key 'ffn'\""

# ----------------------------------------------------------------------------- bad directories
# expect_eval_error LABEL PATTERN DIR: eval fails with one line matching PATTERN
expect_eval_error() {
    local out
    out=$($RL eval --ckpt="$3" --json 2>&1)
    local rc=$?
    if [ $rc -ne 0 ] && [ "$(echo "$out" | grep -c .)" -eq 1 ] && echo "$out" | grep -q "$2" \
        && ! echo "$out" | grep -qi "sanitizer\|segmentation"; then ok
    else bad "$1: rc $rc, output: $out"; fi
}
mk() { rm -rf "$TMP/bad"; cp -r "$hf" "$TMP/bad"; rm -f "$TMP/bad/routelab.safetensors"; }
edit_config() {  # edit_config PYTHON-STATEMENT (on dict c)
    $PY - "$TMP/bad/config.json" "$1" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); exec(sys.argv[2]); json.dump(c, open(sys.argv[1], "w"))
PY
}
mk; edit_config 'c["architectures"] = ["MistralForCausalLM"]'
expect_eval_error "unknown architecture" "architecture 'MistralForCausalLM' is not implemented" "$TMP/bad"
mk; edit_config 'c["rope_scaling"] = {"rope_type": "yarn", "factor": 4.0}'
expect_eval_error "unknown rope type" "rope type 'yarn' is not implemented" "$TMP/bad"
mk; edit_config 'c["hidden_act"] = "gelu"'
expect_eval_error "unknown activation" "hidden_act 'gelu' is not implemented" "$TMP/bad"
mk; edit_config 'c["use_sliding_window"] = True'
expect_eval_error "sliding windows" "sliding-window attention" "$TMP/bad"
mk; edit_config 'c["intermediate_size"] = 40'
expect_eval_error "a tensor of the wrong shape" "mlp.gate_proj.weight' has shape (48, 32), but config.json implies (40, 32)" "$TMP/bad"
mk; edit_config 'c["num_hidden_layers"] = 1'
expect_eval_error "an unexpected tensor" "tensor 'model.layers.1" "$TMP/bad"
mk; edit_config 'c["num_hidden_layers"] = 3'
expect_eval_error "a missing tensor" "tensor 'model.layers.2.input_layernorm.weight' is missing" "$TMP/bad"
mk; truncate -s 5000 "$TMP/bad/model.safetensors"
expect_eval_error "a truncated file" "truncated" "$TMP/bad"
# set_norm_dtype DTYPE: rewrites the header of the bad copy so model.norm.weight claims DTYPE
set_norm_dtype() {
    $PY - "$TMP/bad/model.safetensors" "$1" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read(); (n,) = struct.unpack("<Q", raw[:8])
h = json.loads(raw[8:8 + n]); h["model.norm.weight"]["dtype"] = sys.argv[2]
b = json.dumps(h).encode(); b += b" " * (-len(b) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(b)) + b + raw[8 + n:])
PY
}
mk; set_norm_dtype F8_E4M3
expect_eval_error "an unknown dtype" "unknown dtype 'F8_E4M3'" "$TMP/bad"
mk; set_norm_dtype I32
expect_eval_error "an integer weight" "dtype I32; routelab reads F32, BF16 and F16" "$TMP/bad"
mk; mv "$TMP/bad/model.safetensors" "$TMP/bad/model-00001-of-00002.safetensors"
$PY - "$TMP/bad" <<'PY'
import json, struct, sys
d = sys.argv[1]; raw = open(d + "/model-00001-of-00002.safetensors", "rb").read()
(n,) = struct.unpack("<Q", raw[:8]); h = json.loads(raw[8:8 + n]); h.pop("__metadata__", None)
wm = {k: "model-00001-of-00002.safetensors" for k in h}
wm["model.norm.weight"] = "model-00002-of-00002.safetensors"
json.dump({"metadata": {"total_size": 0}, "weight_map": wm}, open(d + "/model.safetensors.index.json", "w"))
PY
expect_eval_error "a missing shard" "shard 'model-00002-of-00002.safetensors' named by the weight index is missing" "$TMP/bad"
mk; rm "$TMP/bad/model.safetensors"
expect_eval_error "a directory without weights" "not found" "$TMP/bad"
summary hf
