#!/usr/bin/env bash
# Command-line tests of ./routelab: reference checks, resume bit-identity, interrupt handling,
# deploy-time routing swap, data preparation, sampling and bad-input errors.
# Uses ../shared (reference cases, WikiText, GPT-2 tokenizer) where present; says SKIP otherwise.
source "$(dirname "$0")/lib.sh"
SHARED=../shared
TINY="--data=mqar --n_layer=2 --d_model=32 --n_head=2 --d_ff=64 --seq_len=32 --vocab_size=32 \
 --mqar_pairs=4 --batch=4 --mqar_eval_examples=16 --eval_batches=2 --log_every=0 --warmup=2 --d_g=8 --k=8"

# --- reference cases -------------------------------------------------------------------------
if [ -d "$SHARED/ref" ]; then
    check "refcheck on ../shared/ref" $RL refcheck "$SHARED/ref" >"$TMP/ref.log"
    grep -q " 0 failed, 0 skipped" "$TMP/ref.log" || bad "refcheck skipped or failed cases: $(tail -1 "$TMP/ref.log")"
    # a corrupted copy must fail loudly, naming the file
    cp -r "$SHARED/ref/paper_small" "$TMP/refcopy"
    truncate -s 100 "$TMP/refcopy/weights/wpe.weight.f32"
    expect_error "truncated reference weights" "wpe.weight.f32.*truncated" $RL refcheck "$TMP/refcopy"
    # a wrong reference value must make refcheck fail (the comparison can fail)
    cp -r "$SHARED/ref/paper_small" "$TMP/refbad"
    python3 - "$TMP/refbad/index.json" <<'PY'
import json, sys
p = sys.argv[1]; d = json.load(open(p))
d["cases"]["dense"]["loss"] += 1e-3
json.dump(d, open(p, "w"))
PY
    # (the loss's own FAIL line, and a clean exit 1: a crash must not pass for a detection)
    $RL refcheck "$TMP/refbad" --case=dense >"$TMP/refbad.log" 2>&1
    rc=$?
    check "refcheck rejects a wrong loss: exit 1 (got $rc)" [ $rc -eq 1 ]
    check "refcheck rejects a wrong loss: names the loss" grep -qE "[ ]loss +FAIL +ours" "$TMP/refbad.log"
    # unseen shapes: fresh case sets from the PyTorch twin (tests/gen_ref.py), other sizes
    if /usr/bin/python3 -c "import torch" 2>/dev/null; then
        /usr/bin/python3 tests/gen_ref.py --out "$TMP/unseen1" --style paper --n_layer 3 --d_model 48 \
            --n_head 3 --d_ff 96 --seq_len 24 --vocab_size 53 --batch 3 --k 5 --d_g 8 --seed 7 \
            >/dev/null 2>&1 || bad "gen_ref.py paper set"
        /usr/bin/python3 tests/gen_ref.py --out "$TMP/unseen2" --style gpt2style --n_layer 4 \
            --d_model 32 --n_head 4 --d_ff 80 --seq_len 20 --vocab_size 41 --batch 2 --k 6 --d_g 4 \
            --seed 3 >/dev/null 2>&1 || bad "gen_ref.py gpt2style set"
        for s in unseen1 unseen2; do
            $RL refcheck "$TMP/$s" >"$TMP/$s.log" 2>&1
            n=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['cases']))" "$TMP/$s/index.json")
            check "refcheck on an unseen-shape set ($s): all $n cases of gen_ref's list pass" \
                grep -q "^refcheck: $n passed, 0 failed, 0 skipped" "$TMP/$s.log"
            check "the unseen set ($s) holds the block-selection cases (tests/routing_twin.py)" \
                python3 -c "import json,sys; c=set(json.load(open(sys.argv[1]))['cases'])
assert {'block_learned','block_ste','block_random','block_oracle','block_window_ste','block_mixed'}<=c, c" \
                "$TMP/$s/index.json"
            check "the unseen set ($s) holds the expert-choice and ste_dense cases (tests/routing_twin.py)" \
                python3 -c "import json,sys; c=set(json.load(open(sys.argv[1]))['cases'])
assert {'ec_learned','ec_random','ec_causal','ec_causal_random','ec_mixed','hard_ste_dense','block_ste_dense'}<=c, c" \
                "$TMP/$s/index.json"
        done
    else
        skip "python3-torch not installed: unseen-shape reference sets not generated"
    fi
else
    skip "../shared/ref not found: reference checks (CI always has it)"
fi

# --- resume is bit-identical ----------------------------------------------------------------
for mode in soft stochastic; do
    $RL train $TINY --attn=$mode --dropout=0.1 --steps=12 --out="$TMP/full_$mode" >/dev/null 2>&1 ||
        bad "train $mode"
    $RL train $TINY --attn=$mode --dropout=0.1 --steps=12 --stop_after=5 --out="$TMP/part_$mode" >/dev/null 2>&1 ||
        bad "train $mode stop_after"
    n=$(grep -c '"loss"' "$TMP/part_$mode/metrics.jsonl")
    check "stop_after=5 stops after 5 steps ($mode)" [ "$n" -eq 5 ]
    $RL train --resume="$TMP/part_$mode" >/dev/null 2>&1 || bad "resume $mode"
    grep -o '"loss": *[^,]*' "$TMP/full_$mode/metrics.jsonl" >"$TMP/a"
    grep -o '"loss": *[^,]*' "$TMP/part_$mode/metrics.jsonl" >"$TMP/b"
    check "resumed loss sequence is bit-identical ($mode)" cmp -s "$TMP/a" "$TMP/b"
    check "12 losses after resume ($mode)" [ "$(wc -l <"$TMP/b")" -eq 12 ]
    $RL eval --ckpt="$TMP/full_$mode" --json >"$TMP/ea" 2>/dev/null
    $RL eval --ckpt="$TMP/part_$mode" --json >"$TMP/eb" 2>/dev/null
    cp "$TMP/ea" "$TMP/out_eval_$mode.json"
    check "resumed final model evaluates identically ($mode)" \
        cmp -s <(sed 's/"checkpoint": *"[^"]*"//; s/"eval_seconds": *[0-9.e+-]*//' "$TMP/ea") \
        <(sed 's/"checkpoint": *"[^"]*"//; s/"eval_seconds": *[0-9.e+-]*//' "$TMP/eb")
done

# --- routing schedules over training (dense_fraction, stochastic_anneal: schedule.h) -------------
SCHED="--attn=stochastic --stochastic_anneal=1 --gate_grad=ste --dense_fraction=0.3 --dropout=0 --steps=30"
$RL train $TINY $SCHED --out="$TMP/sch_full" >/dev/null 2>&1 || bad "train with a routing schedule"
$RL train $TINY $SCHED --stop_after=13 --out="$TMP/sch_part" >/dev/null 2>&1 || bad "train with a routing schedule, stop_after"
$RL train --resume="$TMP/sch_part" >/dev/null 2>&1 || bad "resume a routing schedule"
check "a resumed routing schedule gives the same losses bit for bit" \
    cmp -s <(grep -o '"loss": *[^,]*' "$TMP/sch_full/metrics.jsonl") <(grep -o '"loss": *[^,]*' "$TMP/sch_part/metrics.jsonl")
check "the checkpoint keeps the configured routing (attn = stochastic)" grep -q '^attn = stochastic$' "$TMP/sch_full/config.ini"
$RL train $TINY --attn=stochastic --dense_fraction=1 --dropout=0 --steps=10 --out="$TMP/sch_dense" >/dev/null 2>&1 || bad "dense_fraction=1"
$RL train $TINY --attn=dense --dropout=0 --steps=10 --out="$TMP/plain_dense" >/dev/null 2>&1 || bad "dense reference"
check "dense_fraction=1 trains exactly as attn=dense (every step dense)" \
    cmp -s <(grep -o '"loss": *[^,]*' "$TMP/sch_dense/metrics.jsonl") <(grep -o '"loss": *[^,]*' "$TMP/plain_dense/metrics.jsonl")
$RL train $TINY --attn=stochastic --dense_fraction=0.5 --dropout=0 --steps=10 --out="$TMP/sch_half" >/dev/null 2>&1 || bad "dense_fraction=0.5"
check "dense_fraction=0.5 trains otherwise than all-dense" bash -c "
    ! cmp -s <(grep -o '\"loss\": *[^,]*' '$TMP/sch_half/metrics.jsonl') <(grep -o '\"loss\": *[^,]*' '$TMP/plain_dense/metrics.jsonl')"
gate_steps() { /usr/bin/python3 -c "import json,sys; print(sum(any(g != 0 for g in json.loads(l)['gate_grad_norm']) for l in open(sys.argv[1]) if '\"loss\"' in l))" "$1"; }
n_gate=$(gate_steps "$TMP/sch_full/metrics.jsonl")
check "stochastic_anneal: the gate gets a gradient on some steps and not on others ($n_gate of 30)" \
    [ "$n_gate" -gt 0 ] && [ "$n_gate" -lt 30 ]
check "without the schedule a stochastic layer's gate gets no gradient" [ "$(gate_steps "$TMP/full_stochastic/metrics.jsonl")" = 0 ]
expect_error "dense_fraction out of range" "dense_fraction" $RL train $TINY --dense_fraction=1.5 --out="$TMP/bad_df"

# --- checkpoint format 2: a 300-character run path, checksums, an independent reader ---------
LONGDIR=$TMP
while [ $((300 - ${#LONGDIR})) -gt 101 ]; do LONGDIR="$LONGDIR/$(head -c 100 /dev/zero | tr '\0' d)"; done
LONGDIR="$LONGDIR/$(head -c $((300 - ${#LONGDIR} - 1)) /dev/zero | tr '\0' e)"
check "the long run path has 300 characters" [ ${#LONGDIR} -eq 300 ]
check "train with a 300-character --out" $RL train $TINY --steps=6 --stop_after=3 --out="$LONGDIR" >/dev/null 2>&1
check "eval a run with a 300-character path" $RL eval --ckpt="$LONGDIR" --json >/dev/null 2>&1
check "resume a run with a 300-character path" $RL train --resume="$LONGDIR" >/dev/null 2>&1
check "6 losses after resuming the long-path run" [ "$(grep -c '"loss"' "$LONGDIR/metrics.jsonl")" -eq 6 ]
# A safetensors reader written from the format description alone (python3 std lib + struct).
cat >"$TMP/st_reader.py" <<'PY'
import json, struct, sys
SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "U8": 1}
def read(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data, at, tensors = raw[8 + n:], 0, {}
    for name, t in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
        b, e = t["data_offsets"]
        assert b == at and e <= len(data), name
        count = 1
        for s in t["shape"]:
            count *= s
        assert count * SIZES[t["dtype"]] == e - b, name
        fmt = {"F32": "f", "I64": "q"}[t["dtype"]]
        tensors[name] = (t["shape"], struct.unpack("<%d%s" % (count, fmt), data[b:e]), b)
        at = e
    assert at == len(data)
    return meta, tensors, 8 + n
if __name__ == "__main__":
    meta, tensors, start = read(sys.argv[1])
    if sys.argv[2] == "offset":  # byte offset of the middle of a tensor's data
        shape, vals, b = tensors[sys.argv[3]]
        print(start + b + 2 * len(vals))
        sys.exit(0)
    cfg, d, steps = json.loads(meta["config"]), int(sys.argv[3]), int(meta["step"])
    assert meta["format"] == "routelab-checkpoint" and meta["version"] == "2"
    assert cfg["d_model"] == d and tensors["wte.weight"][0] == [cfg["vocab_size"], d]
    assert all(("adam.m." + k) in tensors and ("adam.v." + k) in tensors
               for k in tensors if not k.startswith("adam."))
    assert steps in tensors["adam.t"][1] and set(tensors["adam.t"][1]) <= {0, steps}  # 0: untrained gates
    assert tensors["ln_f.weight"][1] == (1.0,) * d and tensors["ln_f.bias"][1] == (0.0,) * d
    w = tensors["wte.weight"][1]
    std = (sum(x * x for x in w) / len(w)) ** 0.5
    assert 0.015 < std < 0.025, std
    print(len(tensors), "tensors")
PY
$RL train $TINY --steps=2 --lr=0 --out="$TMP/lr0" >/dev/null 2>&1 || bad "train lr=0"
check "an independent Python reader opens a checkpoint (lr=0: the known init)" \
    python3 "$TMP/st_reader.py" "$TMP/lr0/model.ckpt" check 32 >/dev/null
off=$(python3 "$TMP/st_reader.py" "$LONGDIR/model.ckpt" offset wte.weight)
python3 - "$LONGDIR/model.ckpt" "$off" <<'PY'
import sys
p, off = sys.argv[1], int(sys.argv[2])
b = bytearray(open(p, "rb").read()); b[off] ^= 0x10; open(p, "wb").write(b)
PY
expect_error "eval of a checkpoint with a flipped byte" "tensor 'wte.weight' fails its checksum" \
    $RL eval --ckpt="$LONGDIR"
expect_error "resume of a checkpoint with a flipped byte" "tensor 'wte.weight' fails its checksum" \
    $RL train --resume="$LONGDIR" --steps=8
# resume refuses another thread count than the run's (unless --force)
$RL train $TINY --steps=4 --stop_after=2 --threads=1 --out="$TMP/thr" >/dev/null 2>&1 || bad "train threads=1"
expect_error "resume with another thread count" "the run used 1 threads, this invocation 2" \
    $RL train --resume="$TMP/thr" --threads=2
check "resume --force with another thread count" $RL train --resume="$TMP/thr" --threads=2 --force >/dev/null 2>&1

# --- SIGTERM writes a checkpoint and exits cleanly; resume completes -------------------------
$RL train $TINY --steps=100000 --ckpt_every=0 --eval_every=0 --out="$TMP/sig" >"$TMP/sig.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
    [ -f "$TMP/sig/metrics.jsonl" ] && [ "$(grep -c '"loss"' "$TMP/sig/metrics.jsonl")" -ge 3 ] && break
    sleep 0.1
done
kill -TERM $pid
wait $pid
rc=$?
check "SIGTERM exits 0 (got $rc)" [ $rc -eq 0 ]
check "SIGTERM wrote the checkpoint" [ -f "$TMP/sig/model.ckpt" ]
check "SIGTERM message says how to resume" grep -q "resume" "$TMP/sig.log"

# --- JSON result, deploy-time swap ------------------------------------------------------------
$RL train $TINY --steps=20 --attn=soft --out="$TMP/j" --json >"$TMP/j.json" 2>/dev/null
check "train --json gives one JSON object with the keys" python3 -c "
import json,sys; d=json.load(open('$TMP/j.json'))
assert all(k in d for k in ('train_loss','val_loss','val_ppl','tokens_per_s','gate_f1','topk_mass'))"
check "metrics.jsonl: every line is JSON with step/loss/lr; eval lines carry diagnostics" python3 -c "
import json; L=[json.loads(l) for l in open('$TMP/j/metrics.jsonl')]
tr=[l for l in L if 'loss' in l]; ev=[l for l in L if 'val_loss' in l]
assert len(tr)==20 and all('lr' in l and 'step' in l for l in tr) and ev
assert len(ev[-1]['gate_f1'])==2 and len(tr[0]['gate_grad_norm'])==2 and tr[0]['gate_grad_norm'][0]>0"
for mode in dense oracle hard window stochastic random_fixed soft_prob; do
    $RL eval --ckpt="$TMP/j" --attn=$mode --k=4 --json >"$TMP/e.json" 2>"$TMP/e.err"
    cp "$TMP/e.json" "$TMP/out_eval_$mode.json"
    check "eval --attn=$mode --k=4" python3 -c "
import json; d=json.load(open('$TMP/e.json')); assert d['attn']=='$mode' and d['val_loss']>0
kf=d['kept_fraction']; assert (kf[0]==1.0) == ('$mode' in ('dense','soft_prob')), kf"
done
check "config.ini written" grep -q "attn = soft" "$TMP/j/config.ini"
check "sample (MQAR ids)" $RL sample --ckpt="$TMP/j" --tokens=5 --prompt="1,20,2" >/dev/null 2>&1
expect_error "sample: prompt outside the vocabulary" "prompt token 40" $RL sample --ckpt="$TMP/j" --prompt="1,40"

# --- experiment runner (issue 4): every recipe at tiny scale, few steps ---------------------------
$RL repro exp2 --scale=tiny --seeds=2 --steps=8 --eval_batches=1 --out="$TMP/rp" >"$TMP/rp.log" 2>&1 ||
    bad "repro exp2 tiny: $(tail -3 "$TMP/rp.log")"
# expected counts come from the recipe table (repro --list), never from an earlier output
# runs_of: the (recipe, arm, seed) uses a repro command prints and reports, one per line
runs_of() { $RL repro "$@" --list | python3 -c "import json,sys; print(sum(len(r['recipes']) for r in json.load(sys.stdin)))"; }
trains_of() { $RL repro "$@" --list | python3 -c "import json,sys; print(sum(r['kind']=='train' for r in json.load(sys.stdin)))"; }
n=$(runs_of exp2 --scale=tiny --seeds=2)
check "repro writes results.json with every run" python3 -c "
import json; R=json.load(open('$TMP/rp/results.json'))
assert len(R)==$n and {r['arm'] for r in R}=={'hard_learned','hard_random'} and all(r['result']['val_ppl']>1 for r in R)
assert all(g==0 for r in R for g in r['result']['gate_grad_norm'])"
check "repro report.md has the table and the paper's values" grep -q "| hard_learned | .* ± .* | 71.22 |" "$TMP/rp/report.md"
if command -v gnuplot >/dev/null; then check "repro convergence plot" [ -s "$TMP/rp/exp2_convergence.png" ]; fi
$RL repro exp2 --scale=tiny --seeds=2 --steps=8 --eval_batches=1 --out="$TMP/rp" >"$TMP/rp2.log" 2>&1
check "repro skips finished runs ($n = arms x seeds)" [ "$(grep -c 'skipped' "$TMP/rp2.log")" -eq "$n" ]
expect_error "repro unknown recipe" "unknown recipe" $RL repro nope
# No shell between repro and its runs: a quote and a space in --out reach every child intact.
QOUT="$TMP/it's here"
$RL repro exp2 --scale=tiny --seeds=1 --steps=8 --eval_batches=1 --out="$QOUT" >"$TMP/rq.log" 2>&1 ||
    bad "repro with a quote and a space in --out: $(tail -3 "$TMP/rq.log")"
check "repro --out with a quote and a space writes report.md" [ -s "$QOUT/report.md" ]
check "repro --out with a quote and a space: one finished run per arm and seed, each in its directory" python3 -c "
import json, os, sys; out=sys.argv[1]; R=json.load(open(os.path.join(out, 'results.json')))
arms={r['arm'] for r in R}
assert arms and len(R)==1*len(arms) and all(r['result'] is not None for r in R), R
assert all(r['result']['run_dir']==os.path.join(out, r['arm'], 'seed0') for r in R)
assert sum(l.endswith(': training') for l in open(sys.argv[2]).read().splitlines())==len(R)" "$QOUT" "$TMP/rq.log"
check "repro --out with a quote and a space: no warning" bash -c "! grep -q 'warning' '$TMP/rq.log'"
if command -v gnuplot >/dev/null; then check "repro plot under a quoted --out" [ -s "$QOUT/exp2_convergence.png" ]; fi
$RL repro all --scale=tiny --seeds=1 --steps=8 --distill_steps=4 --eval_batches=1 --out="$TMP/rp3" \
    >"$TMP/rp3.log" 2>&1 || bad "repro all tiny: $(tail -3 "$TMP/rp3.log")"
check "repro all: every recipe's arms ran once each, sharing one dense model" python3 -c "
import json; R=json.load(open('$TMP/rp3/results.json'))
want={'exp1':{'dense','soft_learned','soft_random'},'exp2':{'hard_learned','hard_random'},
 'exp3':{'dense','soft_learned','distill_dense','distill_soft'},
 'exp4':{'stochastic','stoch_deploy_dense','stoch_deploy_fixed'},
 'posthoc':{'dense','posthoc_learned','posthoc_random','random_hard_k','kl_k','kl_2k','kl_4k','oracle_k'},
 'capacity':{'dense'}|{f'{l}_g{g}_{k}' for l,g in (('bce',32),('bce',64),('bce',128),('kl',32)) for k in ('k','2k','4k')},
 'gradient':{'dense','posthoc_learned','posthoc_random','learned_topL','random_topL'},
 'concentration':{'dense'},
 'moe-random':{'add_dense','add_moe_learned','add_moe_random','add_moe_hash','add_moe_control'},
 'ffn-sparsity':{'add_dense','add_swiglu','add_moe_learned','add_moe_random'}|{f'{m}_no_{s}' for m in ('add_dense','add_swiglu','add_moe_learned','add_moe_random') for s in ('attn','ffn')},
 'routing-precision':{'mqar_dense','mqar_probe'}}
got={}
for r in R: got.setdefault(r['recipe'],set()).add(r['arm']); assert r['result'] is not None, r
assert got==want, got
by={r['arm']: r for r in R}
assert by['distill_soft']['from']=='soft_learned' and by['distill_dense']['from']=='dense'
for a in ('distill_dense','distill_soft','kl_k'): assert by[a]['result']['hard_val_ppl']>1 and len(by[a]['result']['gate_f1'])==2
assert by['oracle_k']['keys']=='--attn=oracle --k=4' and by['kl_4k']['keys']=='--loss=kl --k=16'
assert by['random_topL']['keys'].endswith('--train=all') and by['posthoc_learned']['result']['steps']==8"
n=$(trains_of all --scale=tiny --seeds=1)
check "repro all: one run per arm name ($n training arms; shared runs are skipped, not re-run)" \
    [ "$(grep -c 'training$' "$TMP/rp3.log")" -eq "$n" ]
for section in "## Summary" "| oracle top-k | oracle_k |" "| distill_soft | distill .* | 601.60 | 0.804 |" \
    "Share of the random → dense gap" "Share of the random → oracle gap" "| layers unfrozen |" \
    "| layer | top-k mass | entropy ratio |" "## capacity" "\*\*Premise check\*\*"; do
    check "repro all report: $section" grep -q "$section" "$TMP/rp3/report.md"
done
# the open questions and follow-ups (repro open)
$RL repro open --scale=tiny --seeds=1 --steps=8 --distill_steps=4 --eval_batches=1 --out="$TMP/rpo" \
    >"$TMP/rpo.log" 2>&1 || bad "repro open tiny: $(tail -3 "$TMP/rpo.log")"
check "repro open: every recipe's arms ran once each" python3 -c "
import json; R=json.load(open('$TMP/rpo/results.json'))
want={'stochastic-variants':{'dense','stochastic','stoch_deploy_dense','stoch_deploy_fixed','anneal','anneal_deploy_dense',
                             'anneal_deploy_gate','anneal_deploy_fixed','mix_half','mix_deploy_dense','mix_deploy_fixed'},
 'long-training':{'long_dense','long_soft_learned','long_soft_random','dense','soft_learned','soft_random'},
 'decoupled-data':{'dense','kl_k','decoupled_kl_k','decoupled_deploy_k','random_hard_k','oracle_k'},
 'closed-loop':{'dense','soft_learned','soft_deploy_hard','distill_soft','closed_loop','closed_loop_from_dense','hard_random',
                'closed_loop_bounded','closed_loop_bounded_from_dense'},
 'nsa-random':{'dense','block_learned','block_random','block_oracle','window_only','kl_k','posthoc_block',
               'dense_block_random','dense_block_oracle'},
 'mosa-random':{'dense','ec_learned','ec_random','ec_learned_deploy_causal','ec_causal_learned','ec_causal_random'},
 'gate-information':{'dense','dense_ref','soft_learned','soft_random','kl_k','info_soft_learned','info_soft_random',
                     'info_posthoc_kl','info_posthoc_random'}}
got={}
for r in R: got.setdefault(r['recipe'],set()).add(r['arm']); assert r['result'] is not None, r
assert got==want, got
by={r['arm']: r for r in R}
blocks='--block_size=2 --k_blocks=2 --block_window=2'
assert by['block_learned']['keys']=='--attn=block --gate=learned --gate_grad=ste '+blocks
assert by['posthoc_block']['from']=='kl_k' and by['dense_block_oracle']['keys']=='--attn=block_oracle '+blocks
assert by['window_only']['keys']=='--attn=window --k=2'
assert by['ec_random']['keys']=='--attn=expert_choice --gate=random --k=8' and by['ec_learned_deploy_causal']['from']=='ec_learned'
assert by['ec_causal_learned']['keys']=='--attn=expert_choice_causal --gate=learned --k=8'
assert by['long_dense']['keys']=='--attn=dense --steps=1600' and by['decoupled_kl_k']['from']=='dense'
assert by['decoupled_kl_k']['keys']=='--loss=kl --k=4 --mqar_pairs=2 --mqar_random_filler=1'
assert by['decoupled_deploy_k']['keys']=='--attn=hard --k=4 --mqar_pairs=4 --mqar_random_filler=0'
assert by['closed_loop_from_dense']['from']=='dense' and by['closed_loop']['keys']=='--attn=hard --gate_grad=ste'
assert by['closed_loop_bounded_from_dense']['from']=='dense' and by['closed_loop_bounded']['keys']=='--attn=hard --gate_grad=ste_dense'
assert by['dense_ref']['keys']=='--attn=dense --seed=100 --data_seed=100'
ini=lambda a: dict(l.split(' = ', 1) for l in open(by[a]['result']['run_dir']+'/config.ini').read().splitlines() if ' = ' in l)
assert ini('ec_causal_random')['attn']=='expert_choice_causal' and ini('ec_causal_random')['gate']=='random'
assert (ini('dense_ref')['seed'], ini('dense_ref')['data_seed'], ini('dense')['seed']) == ('100', '100', '0')
for a, f in (('info_soft_learned','soft_learned'),('info_soft_random','soft_random'),('info_posthoc_kl','kl_k'),('info_posthoc_random','dense')):
    g=by[a]; res=g['result']; L=len(by['dense']['result']['gate_f1'])
    assert g['from']==f and g['ref']=='dense_ref' and '/dense_ref/seed0/' in res['reference'], g
    assert len(res['mi_bits'])==L and all(abs(x)<0.01 for x in res['selftest_independent_bits']), res
    assert all(abs(s-h)<1e-9 for s, h in zip(res['selftest_identical_bits'], res['label_entropy_bits'])), res
    assert len(res['probe_mi_bits'])==L and all(-0.01<p<=h+1e-9 for p, h in zip(res['probe_mi_bits'], res['label_entropy_bits'])), res"
for section in "## stochastic-variants" "| annealed towards the gate's top-k |" "| half the steps dense |" \
    "## long-training" "at 4x the steps" "## decoupled-data" "on another text" "## closed-loop" \
    "trained closed loop" "With the bounded straight-through gate (gate_grad=ste_dense" "## nsa-random" "learned blocks .*, frozen random blocks" \
    "same blocks chosen by the KL-distilled gate" "## mosa-random" \
    "Expert-choice heads, learned vs frozen random router: over the whole sequence [0-9.]* vs [0-9.]* (\*\*[-+]" \
    "deployed with causal selection: [0-9.]* ([-+]" "## gate-information" "| gate (arm) | I(decision; label) .* | probe ceiling (bits) |" \
    "End to end, learned − frozen random gate: \*\*[-+]" "\*\*Premise check\*\*"; do
    check "repro open report: $section" grep -q "$section" "$TMP/rpo/report.md"
done
check "repro all prints the summary table last" grep -q "| soft gate, frozen random | soft_random |" "$TMP/rp3.log"
if command -v gnuplot >/dev/null; then
    for png in gradient_gradient concentration exp1_convergence posthoc_convergence; do
        check "repro all plot $png.png" [ -s "$TMP/rp3/$png.png" ]
    done
fi
$RL repro exp1,exp2 --scale=tiny --seeds=1 --out="$TMP/rp3" >"$TMP/rp5.log" 2>&1
n=$(runs_of exp1,exp2 --scale=tiny --seeds=1)
check "repro NAME,NAME reuses the finished runs ($n)" [ "$(grep -c 'skipped' "$TMP/rp5.log")" -eq "$n" ]
expect_error "repro unknown recipe in a list" "unknown recipe 'exp9'" $RL repro exp1,exp9
expect_error "repro medium where its data is missing: one line naming the fix" "run \`make data-kjv\`" \
    bash -c "cd '$TMP' && '$(realpath "$RL")' repro exp1 --scale=medium --out=nodata"
check "repro medium where its data is missing: nothing run" [ ! -e "$TMP/nodata" ]
# gateinfo: the bits a gate carries about which keys matter to a gate-free model (tiny runs above)
GI="--ckpt=$TMP/rp3/soft_learned/seed0 --batches=1"
$RL gateinfo $GI --ref="$TMP/rp3/dense/seed0" --margin=0 --json >"$TMP/gi.json" 2>"$TMP/gi.log" \
    || bad "gateinfo: $(tail -2 "$TMP/gi.log")"
check "gateinfo: per-layer I(decision; label) and its self-test (independent ~0, identical H)" python3 -c "
import json; g=json.load(open('$TMP/gi.json'))
L=len(json.load(open('$TMP/rp3/dense/seed0/result.json'))['gate_f1'])
for k in ('samples','label_rate','label_entropy_bits','decision_rate','mi_bits','mi_plugin_bits',
          'selftest_independent_bits','selftest_identical_bits'): assert len(g[k])==L, k
for l in range(L):
    assert g['samples'][l]>0 and 0<g['decision_rate'][l]<1 and 0<g['label_rate'][l]<1, g
    assert abs(g['selftest_identical_bits'][l]-g['label_entropy_bits'][l])<1e-9, g
    assert abs(g['selftest_independent_bits'][l])<0.01 and g['mi_bits'][l]<g['mi_plugin_bits'][l], g"
$RL gateinfo $GI --ref="$TMP/rp3/dense/seed0" --margin=0 --probe_steps=0 --json >"$TMP/gi0.json" 2>/dev/null || bad "gateinfo --probe_steps=0"
check "gateinfo: the probe ceiling is measured by default, not with --probe_steps=0" python3 -c "
import json; g=json.load(open('$TMP/gi.json')); g0=json.load(open('$TMP/gi0.json'))
assert all(p is not None and -0.01<p<=h+1e-9 for p, h in zip(g['probe_mi_bits'], g['label_entropy_bits'])), g
assert all(p is None for p in g0['probe_mi_bits']) and g0['mi_bits']==g['mi_bits'], g0"
expect_error "gateinfo: a routed reference" "the labels need a gate-free" $RL gateinfo $GI \
    --ref="$TMP/rp3/soft_learned/seed0"
expect_error "gateinfo: no reference" "give --ckpt=GATED_RUN and --ref=DENSE_RUN" $RL gateinfo $GI
expect_error "gateinfo: a fixed key" "'d_model' is fixed" $RL gateinfo $GI --ref="$TMP/rp3/dense/seed0" --d_model=8
# --- sweeps on existing engines: --plan=make and --plan=slurm (exp3,exp4: dependent arms) ----
# The plan's runs (make -j2) and then repro without --plan give the report of repro run directly
# (rp3 above holds the same runs, made by repro all): report.md identical, results.json equal but
# for the paths and the timing fields (tokens_per_s, eval_seconds, peak_rss_mib, and the
# distillation's train_seconds, step_seconds_median).
PA="--scale=tiny --seeds=1 --steps=8 --distill_steps=4 --eval_batches=1"
PM="$TMP/plan 'make'"
$RL repro exp3,exp4 $PA --out="$PM" --plan=make >"$TMP/pm.log" 2>&1 || bad "repro --plan=make: $(tail -2 "$TMP/pm.log")"
n=$($RL repro exp3,exp4 $PA --list | python3 -c "import json,sys; print(len(json.load(sys.stdin)))")
check "--plan=make: one target per run ($n)" [ "$(grep -c $'^\t$(REPRO) --only=' "$PM/Makefile")" -eq "$n" ]
check "--plan=make: nothing run yet" [ -z "$(find "$PM" -name result.json)" ]
check "--plan=make: a distillation waits for its model" grep -q '^distill_soft/seed0/result.json: | soft_learned/seed0/result.json$' "$PM/Makefile"
make -C "$PM" -j2 >"$TMP/pm_make.log" 2>&1 || bad "make -C plan -j2: $(tail -3 "$TMP/pm_make.log")"
check "make -j2 finished every run ($n)" [ "$(find "$PM" -name result.json | wc -l)" -eq "$n" ]
$RL repro exp3,exp4 $PA --out="$PM" >"$TMP/pm_rep.log" 2>&1 || bad "repro after the make plan"
check "repro after the make plan runs nothing ($n skipped) and warns of nothing" \
    bash -c "[ \$(grep -c 'skipped' '$TMP/pm_rep.log') -eq $n ] && ! grep -q warning '$TMP/pm_rep.log'"
$RL repro exp3,exp4 $PA --out="$TMP/rp3" >"$TMP/rp3b.log" 2>&1 || bad "repro exp3,exp4 report on rp3"
check "make plan + make -j2 + repro: report.md equals repro's own" cmp -s "$PM/report.md" "$TMP/rp3/report.md"
check "make plan + make -j2 + repro: results.json equals repro's own but paths and timings" python3 -c "
import json, sys
def norm(path, out):
    R = json.load(open(path))
    for r in R:
        for k in ('tokens_per_s', 'eval_seconds', 'peak_rss_mib', 'train_seconds', 'step_seconds_median'): r['result'].pop(k, None)
        for k, v in r['result'].items():
            if isinstance(v, str): r['result'][k] = v.replace(out, 'OUT')
    return R
a, b = norm(sys.argv[1] + '/results.json', sys.argv[1]), norm(sys.argv[2] + '/results.json', sys.argv[2])
assert a == b, [(x['arm'], k) for x, y in zip(a, b) for k in x['result'] if x['result'][k] != y['result'].get(k)]" "$PM" "$TMP/rp3"
PS="$TMP/plan 'slurm'"
$RL repro exp3,exp4 $PA --out="$PS" --plan=slurm --sbatch_time=00:20:00 >"$TMP/ps.log" 2>&1 || bad "repro --plan=slurm: $(tail -2 "$TMP/ps.log")"
check "--plan=slurm: one sbatch script per run ($n)" [ "$(ls "$PS"/slurm/*.sbatch | wc -l)" -eq "$n" ]
for f in "$PS"/slurm/*.sbatch "$PS/submit.sh"; do check "bash -n $(basename "$f")" bash -n "$f"; done
check "--plan=slurm: --sbatch_time applies, a scale's resources otherwise" \
    bash -c "grep -q '^#SBATCH --time=00:20:00$' \"\$1/slurm/dense.seed0.sbatch\" && grep -q '^#SBATCH --cpus-per-task=2$' \"\$1/slurm/dense.seed0.sbatch\"" _ "$PS"
check "--plan=slurm: submit.sh chains a distillation after its model" \
    grep -q 'j_distill_dense_0=$(submit distill_dense.seed0 "$j_dense_0")' "$PS/submit.sh"
if command -v sbatch >/dev/null && scontrol ping 2>/dev/null | grep -q UP; then
    for f in "$PS"/slurm/*.sbatch; do check "sbatch --test-only $(basename "$f")" bash -c "sbatch --test-only \"\$1\" 2>&1 | grep -q 'to start at'" _ "$f"; done
else
    skip "no Slurm controller answers (scontrol ping): sbatch --test-only of the plan (make check-long starts one)"
fi
# a gate-information run waits for two runs: the gated model and its reference
$RL repro gate-information --scale=tiny --seeds=1 --out="$TMP/pgi" --plan=make >/dev/null 2>&1 &&
    $RL repro gate-information --scale=tiny --seeds=1 --out="$TMP/pgs" --plan=slurm >/dev/null 2>&1 ||
    bad "repro gate-information --plan"
check "--plan=make: gate information waits for the gated model and the reference" grep -q \
    '^info_soft_learned/seed0/result.json: | soft_learned/seed0/result.json dense_ref/seed0/result.json$' "$TMP/pgi/Makefile"
mkdir -p "$TMP/fakebin"
printf '#!/bin/sh\nn=$(($(wc -l < "$FAKE_SBATCH_LOG") + 1)); echo "$n $*" >> "$FAKE_SBATCH_LOG"; echo "$n"\n' > "$TMP/fakebin/sbatch"
chmod +x "$TMP/fakebin/sbatch"
: > "$TMP/sbatch.log"
PATH="$TMP/fakebin:$PATH" FAKE_SBATCH_LOG="$TMP/sbatch.log" bash "$TMP/pgs/submit.sh" >/dev/null 2>&1 || bad "submit.sh with a fake sbatch"
check "--plan=slurm: gate information after both jobs (afterok:A:B)" python3 -c "
ids={}
for l in open('$TMP/sbatch.log'):
    n, *args = l.split(); name=args[-1].split('/')[-1].rsplit('.seed', 1)[0]; ids[name]=(n, args)
dep=[a for a in ids['info_soft_learned'][1] if a.startswith('--dependency=')]
assert dep==['--dependency=afterok:%s:%s' % (ids['soft_learned'][0], ids['dense_ref'][0])], ids['info_soft_learned']
assert not [a for a in ids['dense_ref'][1] if a.startswith('--dependency=')]"
expect_error "--plan without --out" "give --out=DIR" $RL repro exp1 --plan=make
expect_error "unknown --plan" "plan must be make or slurm" $RL repro exp1 --plan=pbs --out="$TMP/pbad"
expect_error "bad --sbatch_time" "sbatch_time='1 hour' is not a Slurm value" $RL repro exp1 --plan=slurm --sbatch_time="1 hour" --out="$TMP/pbad"
expect_error "--only of an arm the recipes lack" "run no arm 'hard_learned'" $RL repro exp1 --only=hard_learned/seed0 --out="$TMP/pbad"
expect_error "--only with a bad seed" "only expects ARM/seedS" $RL repro exp1 --seeds=1 --only=dense/seed1 --out="$TMP/pbad"
$RL repro exp4 --scale=tiny --seeds=2 --steps=8 --eval_batches=1 --out="$TMP/rp4" >"$TMP/rp4.log" 2>&1 ||
    bad "repro exp4 tiny: $(tail -3 "$TMP/rp4.log")"
check "repro exp4: fixed masks differ per seed" python3 -c "
import json; R=[r for r in json.load(open('$TMP/rp4/results.json')) if r['arm']=='stoch_deploy_fixed']
assert len(R)==2 and R[0]['keys']!=R[1]['keys'] and R[0]['result']['kept_fraction'][0]<1"

# --- FFN variants, MoE, addition, probe (issue 6) ---------------------------------------------
$RL repro moe-random,ffn-sparsity,routing-precision --scale=tiny --seeds=2 --steps=10 --out="$TMP/rm" \
    >"$TMP/rm.log" 2>&1 || bad "repro moe recipes tiny: $(tail -3 "$TMP/rm.log")"
check "repro moe-random/ffn-sparsity/routing-precision: every arm, both seeds" python3 -c "
import json; R=json.load(open('$TMP/rm/results.json'))
arms={(r['recipe'],r['arm']) for r in R}
assert len(R)==2*len(arms) and all(r['result'] is not None for r in R), [r['arm'] for r in R if r['result'] is None]
mr={a for (rc,a) in arms if rc=='moe-random'}
assert mr=={'add_dense','add_moe_learned','add_moe_random','add_moe_hash','add_moe_control'}, mr  # no text at tiny
by={(r['arm'],r['seed']): r['result'] for r in R}
for a in ('add_dense','add_moe_learned','add_dense_no_ffn'): assert 0<=by[(a,0)]['exact_match']<=1 and len(by[(a,0)]['digit_accuracy'])==3
assert len(by[('add_moe_hash',1)]['expert_util'][0])==4 and by[('add_moe_hash',1)]['router_entropy'][0] is None
assert by[('add_moe_learned',0)]['router_entropy'][0]>0 and by[('add_moe_learned',0)]['aux_loss']>0  # Switch loss on
p=by[('mqar_probe',0)]; assert len(p['key_precision'])==3 and 0<=p['bloom_precision']<=1"
for section in "MoE on addition: share of the random-router" "| add_dense_no_ffn | eval --ablate=ffn:0 |" \
    "| blocks before the probe |" "Bloom-filter index" "| routed arm | per-token router entropy" \
    "| add_moe_hash | n/a |"; do
    check "repro moe report: $section" grep -q -- "$section" "$TMP/rm/report.md"
done
$RL repro routing-precision --scale=tiny --seeds=1 --steps=11 --out="$TMP/rm" >"$TMP/rm2.log" 2>&1
check "repro flags a finished run made with other settings" grep -q "mqar_dense/seed0 was run with other settings" "$TMP/rm2.log"
check "repro does not flag a finished run made with the same settings" \
    bash -c "! grep -q 'mqar_probe/seed0 was run with other' '$TMP/rm2.log'"
$RL train --data=addition --add_digits=2 --seq_len=8 --vocab_size=13 --n_layer=1 --d_model=32 --n_head=2 \
    --d_ff=64 --ffn=moe --n_expert=4 --top_experts=2 --capacity_factor=1.0 --aux_loss=0.01 --batch=16 \
    --steps=5 --eval_batches=0 --mqar_eval_examples=40 --log_every=1 --out="$TMP/add" >"$TMP/add.log" 2>&1 ||
    bad "train addition moe: $(tail -2 "$TMP/add.log")"
check "training lines log MoE utilisation, router entropy, drops and the aux loss" python3 -c "
import json; L=[json.loads(l) for l in open('$TMP/add/metrics.jsonl')]
t=[l for l in L if 'loss' in l]; e=[l for l in L if 'val_loss' in l]
assert len(t)==5 and all(abs(sum(l['expert_util'][0])-1)<1e-3 and l['aux_loss']>0 and 0<=l['dropped'][0]<1 for l in t)
assert e and 'exact_match_carry' in e[-1] and e[-1]['carry_examples']+e[-1]['no_carry_examples']==40"
check "log line shows exact match by carry" grep -q "exact .*(carry .*, no carry" "$TMP/add.log"
check "eval --ablate=attn:0 runs" $RL eval --ckpt="$TMP/add" --ablate=attn:0 --json >/dev/null
expect_error "ablate in training" "evaluation only" $RL train $TINY --ablate=ffn:0 --steps=1
expect_error "bad ablate spec" "key 'ablate'" $RL eval --ckpt="$TMP/add" --ablate=mlp:0
expect_error "unknown ffn kind" "unknown kind 'moe2'" $RL train $TINY --ffn=moe2
expect_error "top_experts above n_expert" "exceeds 'n_expert'" $RL train $TINY --ffn=moe --n_expert=1 --top_experts=2
expect_error "addition seq_len too short" "needs seq_len >= 8" $RL train --data=addition --add_digits=2 --seq_len=6 --vocab_size=13
expect_error "addition vocab too small" "vocab_size >= 13" $RL train --data=addition --add_digits=2 --seq_len=8 --vocab_size=12
expect_error "probe on a non-MQAR model" "needs an MQAR model" $RL probe --ckpt="$TMP/add"
expect_error "ablate with no layer" "key 'ablate'" $RL eval --ckpt="$TMP/add" --ablate=attn:
expect_error "capacity_factor out of range" "key 'capacity_factor'" $RL train $TINY --ffn=moe --capacity_factor=1e30
expect_error "tau too small" "key 'tau'" $RL train $TINY --attn=soft --tau=1e-9
check "a dense model with d_ff < n_expert is fine" $RL train $TINY --d_ff=2 --steps=1 --eval_batches=1 --out="$TMP/dff2" >/dev/null 2>&1

# --- bad input -------------------------------------------------------------------------------
expect_error "config typo" "unknown config key 'n_layers'.*did you mean 'n_layer'" $RL train --n_layers=2
expect_error "bad value" "key 'd_model' expects an integer" $RL train --d_model=abc
expect_error "bad mode" "unknown mode 'sparse'" $RL train $TINY --attn=sparse
expect_error "per-layer list length" "one value or one per layer" $RL train $TINY --attn=dense,soft,hard
expect_error "bad train spec" "key 'train'" $RL train $TINY --train=layers:7
expect_error "missing data dir" "nope" $RL train $TINY --data="$TMP/nope"
expect_error "missing checkpoint" "not found" $RL eval --ckpt="$TMP/none.ckpt"
head -c 5000 "$TMP/j/model.ckpt" >"$TMP/trunc.ckpt"
expect_error "truncated checkpoint" "truncated" $RL eval --ckpt="$TMP/trunc.ckpt"
printf 'not a checkpoint at all, just some bytes............' >"$TMP/foreign.ckpt"
expect_error "foreign checkpoint" "truncated|not a routelab checkpoint" $RL eval --ckpt="$TMP/foreign.ckpt"
head -c 2000 /dev/urandom >"$TMP/foreign2.ckpt"
expect_error "random-bytes checkpoint" "not a routelab checkpoint" $RL eval --ckpt="$TMP/foreign2.ckpt"
cp "$TMP/j/model.ckpt" "$TMP/before.ckpt"
expect_error "resume cannot change the model" "fixed by the checkpoint" $RL train --resume="$TMP/j" --d_model=64
check "failed resume keeps the checkpoint" cmp -s "$TMP/before.ckpt" "$TMP/j/model.ckpt"
expect_error "eval cannot change the shape" "fixed by the checkpoint" $RL eval --ckpt="$TMP/j" --n_layer=3
expect_error "NaN loss" "diverged|gradient norm" $RL train $TINY --steps=200 --lr=1e12 --warmup=0 --grad_clip=0 --out="$TMP/nan"
expect_error "grad_clip=nan" "key 'grad_clip' expects a finite number" $RL train $TINY --grad_clip=nan
expect_error "lr=inf" "key 'lr' expects a finite number" $RL train $TINY --lr=inf
expect_error "negative weight_decay" "key 'weight_decay' must be >= 0" $RL train $TINY --weight_decay=-1
# --- a NaN weight: train stops at the next step, the checkpoint is kept; eval reports null -----
$RL train $TINY --steps=2 --eval_every=0 --out="$TMP/nanw" >/dev/null 2>&1 || bad "train 2 steps (NaN weight)"
# The weight is set the way a researcher would with Python: through the safetensors layout, with
# the checkpoint's checksums recomputed (xxHash64, Debian's python3-xxhash), so the file is valid
# and only its content is non-finite.
if /usr/bin/python3 -c "import xxhash" 2>/dev/null; then
/usr/bin/python3 - "$TMP/nanw/model.ckpt" <<'PY'
import json, struct, sys, xxhash
path = sys.argv[1]
raw = open(path, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n])
data = bytearray(raw[8 + n:])
name = "wte.weight"
b, e = head[name]["data_offsets"]
data[b + 4 * 7:b + 4 * 8] = struct.pack("<f", float("nan"))
meta = head["__metadata__"]
meta["checksum." + name] = xxhash.xxh64(bytes(data[b:e])).hexdigest()
h = xxhash.xxh64()
for k, v in meta.items():
    if k != "checksum.__metadata__":
        h.update(k.encode() + b"\0" + v.encode() + b"\0")
meta["checksum.__metadata__"] = h.hexdigest()
text = json.dumps(head, separators=(",", ":")).encode()
open(path, "wb").write(struct.pack("<Q", len(text)) + text + bytes(data))
PY
cp "$TMP/nanw/model.ckpt" "$TMP/nanw.ckpt"
expect_error "NaN weight: train stops at the next step" \
    "train: loss is nan at step 3 \(diverged\): the last good checkpoint .*nanw/model.ckpt is kept" \
    $RL train --resume="$TMP/nanw" --steps=5
check "NaN weight: the checkpoint is unchanged" cmp -s "$TMP/nanw.ckpt" "$TMP/nanw/model.ckpt"
$RL eval --ckpt="$TMP/nanw" --json >"$TMP/nanw.json" 2>/dev/null
rc=$?
check "NaN weight: eval --json exits 0 (got $rc)" [ $rc -eq 0 ]
check "NaN weight: eval --json gives null loss and perplexity in strict JSON" python3 -c "
import json
def strict(c): raise ValueError('not strict JSON: ' + c)
d = json.load(open('$TMP/nanw.json'), parse_constant=strict)
assert d['val_ppl'] is None and d['val_loss'] is None, d"
expect_error "NaN weight: train --init of it stops at step 1" \
    "train: loss is nan at step 1 \(diverged\)" $RL train $TINY --init="$TMP/nanw" --out="$TMP/nanw_init"
else
    skip "python3-xxhash not installed (Debian python3-xxhash): NaN-weight checkpoint tests"
fi
expect_error "unknown command" "unknown command" $RL frobnicate

# --- one option parser (issue "Architecture before growth" 5): every numeric option is checked,
# every typo gets the closest name, --threads applies everywhere -------------------------------
expect_error "train: non-numeric config value" "key 'steps' expects an integer" $RL train $TINY --steps=x
expect_error "train: non-numeric --threads" "train: --threads expects an integer" $RL train $TINY --threads=x
expect_error "train: option typo" "unknown option '--jsno'.*did you mean '--json'" $RL train $TINY --jsno
expect_error "train: --config file not found" "config file .*not found" $RL train --config="$TMP/none.ini"
expect_error "eval: non-numeric value" "key 'eval_batches' expects an integer" $RL eval --ckpt="$TMP/j" --eval_batches=x
expect_error "eval: non-numeric --threads" "eval: --threads expects an integer" $RL eval --ckpt="$TMP/j" --threads=two
expect_error "eval: typo" "unknown option '--jsn'.*did you mean '--json'" $RL eval --ckpt="$TMP/j" --jsn
expect_error "eval: config key typo" "unknown config key 'atn'.*did you mean 'attn'" $RL eval --ckpt="$TMP/j" --atn=hard
printf 'n_layer = 3\n' >"$TMP/shape.ini"
expect_error "eval --config=FILE cannot change the shape" "'n_layer' in config file .*fixed by the checkpoint" \
    $RL eval --ckpt="$TMP/j" --config="$TMP/shape.ini"
check "eval --config=FILE: a run's own config.ini is accepted" \
    $RL eval --ckpt="$TMP/j" --config="$TMP/j/config.ini" --eval_batches=1 --json >/dev/null 2>&1
expect_error "sample: non-numeric --top_k" "sample: --top_k expects an integer, got 'x'" $RL sample --ckpt="$TMP/j" --top_k=x
expect_error "sample: non-numeric --temperature" "sample: --temperature expects a number" $RL sample --ckpt="$TMP/j" --temperature=hot
expect_error "sample: --tokens out of range" "sample: --tokens must be an integer >= 1" $RL sample --ckpt="$TMP/j" --tokens=0
expect_error "sample: non-numeric --seed" "sample: --seed expects an integer" $RL sample --ckpt="$TMP/j" --seed=1x
expect_error "sample: typo" "unknown option '--top_kk'.*did you mean '--top_k'" $RL sample --ckpt="$TMP/j" --top_kk=3
expect_error "distill: non-numeric value" "key 'steps' expects an integer" $RL distill --from="$TMP/j" --steps=x
expect_error "distill: typo" "unknown config key 'stesp'.*did you mean 'steps'" $RL distill --from="$TMP/j" --stesp=3
expect_error "probe: non-numeric --examples" "probe: --examples expects an integer" $RL probe --ckpt="$TMP/j" --examples=many
expect_error "probe: --bloom_bits out of range" "probe: --bloom_bits must be an integer in \[8, 4096\]" $RL probe --ckpt="$TMP/j" --bloom_bits=5000
expect_error "probe: typo" "unknown option '--exampels'.*did you mean '--examples'" $RL probe --ckpt="$TMP/j" --exampels=3
expect_error "bench: non-numeric --steps" "bench: --steps expects an integer" $RL bench $TINY --steps=x
expect_error "bench: non-numeric --threads" "bench: --threads expects an integer" $RL bench $TINY --threads=x
expect_error "bench: typo" "unknown option '--stesp'.*did you mean '--steps'" $RL bench $TINY --stesp=2
expect_error "bench: unknown preset" "bench: --preset must be paper or small" $RL bench --preset=huge
expect_error "prepare: non-numeric --val_fraction" "prepare: --val_fraction expects a number" $RL prepare --val_fraction=x
expect_error "prepare: typo" "unknown option '--tokeniser'.*did you mean '--tokenizer'" $RL prepare --tokeniser=bytes
expect_error "prepare: non-numeric --threads" "prepare: --threads expects an integer" $RL prepare --threads=x
expect_error "tokenizer-train: non-numeric --vocab_size" "tokenizer-train: --vocab_size expects an integer" $RL tokenizer-train --vocab_size=x
expect_error "tokenizer-train: --vocab_size out of range" "tokenizer-train: --vocab_size must be an integer in \[256, 65536\]" $RL tokenizer-train --vocab_size=9
expect_error "tokenizer-train: typo" "unknown option '--vocab_sise'.*did you mean '--vocab_size'" $RL tokenizer-train --vocab_sise=300
expect_error "refcheck: typo" "unknown option '--cse'.*did you mean '--case'" $RL refcheck "$TMP" --cse=dense
expect_error "refcheck: non-numeric --threads" "refcheck: --threads expects an integer" $RL refcheck "$TMP" --threads=x
expect_error "repro: non-numeric --seeds" "repro: --seeds" $RL repro exp1 --seeds=x
# repro: --distill_steps=x converted by the exp change (src/exp/repro.c has its own parser today)
$RL eval --ckpt="$TMP/j" --threads=1 --json >"$TMP/out_eval_threads.json" 2>/dev/null
check "eval --threads=1 --json reports \"threads\": 1" /usr/bin/python3 -c "
import json; assert json.load(open('$TMP/out_eval_threads.json'))['threads']==1"
$RL eval --ckpt="$TMP/j" --threads=2 --json >"$TMP/out_eval_threads2.json" 2>/dev/null
check "eval --threads=2 --json reports \"threads\": 2" /usr/bin/python3 -c "
import json; assert json.load(open('$TMP/out_eval_threads2.json'))['threads']==2"
expect_error "vocab too small for MQAR" "vocab" $RL train $TINY --vocab_size=6

# --- prepare + train on real text + eval ------------------------------------------------------
if [ -f "$SHARED/data/wikitext-103-raw/wiki.valid.raw" ]; then
    head -c 300000 "$SHARED/data/wikitext-103-raw/wiki.valid.raw" >"$TMP/wiki.txt"
    $RL tokenizer-train --input="$TMP/wiki.txt" --vocab_size=512 --out="$TMP/wiki.bpe" >/dev/null 2>&1 ||
        bad "tokenizer-train"
    $RL prepare --input="$TMP/wiki.txt" --tokenizer="$TMP/wiki.bpe" --out="$TMP/wiki" >/dev/null 2>&1 ||
        bad "prepare"
    $RL train --data="$TMP/wiki" --vocab_size=512 --n_layer=2 --d_model=64 --n_head=2 --d_ff=256 \
        --seq_len=64 --batch=8 --steps=60 --lr=3e-3 --warmup=5 --dropout=0 --eval_every=0 \
        --eval_batches=4 --log_every=0 --out="$TMP/wr" >/dev/null 2>&1 || bad "train on shards"
    check "loss falls on real text" python3 -c "
import json; L=[json.loads(l)['loss'] for l in open('$TMP/wr/metrics.jsonl') if '\"loss\"' in l]
a=sum(L[:5])/5; b=sum(L[-5:])/5; assert b < a - 0.5, (a, b)"
    $RL eval --ckpt="$TMP/wr" --json >"$TMP/we.json" 2>/dev/null
    cp "$TMP/we.json" "$TMP/out_eval_wiki.json"
    check "eval reports perplexity on shards" python3 -c "
import json,math; d=json.load(open('$TMP/we.json')); assert 1 < d['val_ppl'] < 512 and abs(math.log(d['val_ppl'])-d['val_loss'])<1e-3"
    check "sample decodes text" $RL sample --ckpt="$TMP/wr" --tokens=20 --prompt="The" >/dev/null 2>&1
    expect_error "shard vocab larger than the model" "vocab" $RL train --data="$TMP/wiki" --vocab_size=100
else
    skip "../shared/data not found: real-text tests"
fi

# --- strict JSON (issue "Architecture before growth" 6): every --json output of every command
# and every metrics.jsonl line parses as RFC 8259 JSON: no NaN / Infinity, non-finite is null --
$RL probe --ckpt="$TMP/j" --examples=8 --router_examples=16 --router_steps=5 --router_ranks=2,4 --json \
    >"$TMP/out_probe.json" 2>/dev/null || bad "probe --json"
# the learned-router probe: on a 2-layer MQAR model trained briefly, the rank-r bilinear router
# trained on the representations after one block finds the queried key more often than the raw
# dot product there; on random features (Gaussian noise) it stays near chance
$RL train --data=mqar --n_layer=2 --d_model=32 --n_head=2 --d_ff=64 --seq_len=32 --vocab_size=32 \
    --mqar_pairs=4 --batch=32 --steps=150 --lr=3e-3 --warmup=20 --dropout=0 --eval_every=0 \
    --eval_batches=2 --log_every=0 --ckpt_every=0 --out="$TMP/pj" >/dev/null 2>&1 || bad "train the probe's MQAR model"
PROBE_OPTS="--examples=64 --router_examples=128 --router_steps=150 --router_ranks=2,8,32 --json"
$RL probe --ckpt="$TMP/pj" $PROBE_OPTS >"$TMP/pj.json" 2>/dev/null || bad "probe with a learned router"
$RL probe --ckpt="$TMP/pj" $PROBE_OPTS --features=random >"$TMP/pjr.json" 2>/dev/null || bad "probe --features=random"
check "learned router after one block beats the dot product there; random features stay near chance" python3 -c "
import json; d=json.load(open('$TMP/pj.json')); r=json.load(open('$TMP/pjr.json'))
assert d['learned_key_precision'][1] > d['key_precision'][1], (d['learned_key_precision'], d['key_precision'])
assert d['learned_key_precision'][0] > 0.9, d['learned_key_precision']  # embeddings: token identity
assert len(d['rank_sweep_precision']) == 3 and len(d['rank_sweep_precision'][0]) == 3 and d['router_ranks'] == [2, 8, 32]
assert all(p <= r['router_chance'] + 0.1 for p in r['learned_key_precision']), (r['learned_key_precision'], r['router_chance'])"
$RL distill --from="$TMP/j" --loss=kl --steps=3 --eval_batches=1 --out="$TMP/dist" --json \
    >"$TMP/out_distill.json" 2>/dev/null || bad "distill --json"
$RL bench $TINY --steps=2 --warmup=1 --threads=1 >"$TMP/out_bench.json" 2>/dev/null || bad "bench"
check "bench --threads=1 reports threads 1" /usr/bin/python3 -c "
import json; d=json.load(open('$TMP/out_bench.json')); assert d['threads']==1 and d['k']==8 and 'other' in d['ops_s_per_step']"
$RL bench --sgemm --threads=1 >"$TMP/out_sgemm.json" 2>/dev/null || bad "bench --sgemm"
cp "$TMP/j.json" "$TMP/out_train.json"
# a loss that is enormous from the start: val_ppl = exp(val_loss) overflows to inf (-> null)
$RL train $TINY --steps=3 --eval_every=1 --init_std=1e3 --out="$TMP/huge" --json >"$TMP/out_train_huge.json" 2>/dev/null ||
    bad "train with init_std=1e3"
check "a non-finite value is written as null" /usr/bin/python3 -c "
import json; d=json.load(open('$TMP/out_train_huge.json')); assert d['val_ppl'] is None and d['val_loss']>1000, d"
# the loss itself becomes non-finite (init_std 1e19): the run fails; what it wrote stays strict
$RL train $TINY --steps=5 --eval_every=1 --init_std=1e19 --out="$TMP/inf" >/dev/null 2>&1 &&
    bad "train with init_std=1e19 should diverge"
check "the diverged run wrote metrics" [ -s "$TMP/inf/metrics.jsonl" ]
strict_json() {
    /usr/bin/python3 -c "
import json, sys
def strict(c): raise ValueError('non-standard JSON constant ' + c)
n = 0
for path in sys.argv[1:]:
    for i, line in enumerate(open(path)):
        if not line.strip(): continue
        try: json.loads(line, parse_constant=strict)
        except ValueError as e: sys.exit('%s:%d: %s' % (path, i + 1, e))
        n += 1
assert n >= len(sys.argv) - 1, 'empty output'
" "$@"
}
mapfile -t outs < <(ls "$TMP"/out_*.json)
check "every --json output is strict JSON (${#outs[@]} files)" strict_json "${outs[@]}"
mapfile -t logs < <(find "$TMP" -name metrics.jsonl -o -name result.json -o -name dataset.json | sort)
check "every metrics.jsonl line, result.json, dataset.json is strict JSON (${#logs[@]} files)" \
    strict_json "${logs[@]}"

summary cli
