#!/usr/bin/env bash
# Command-line tests of ./routelab: reference checks, resume bit-identity, interrupt handling,
# deploy-time routing swap, data preparation, sampling and bad-input errors.
# Uses ../shared (reference cases, WikiText, GPT-2 tokenizer) where present; says SKIP otherwise.
set -u
cd "$(dirname "$0")/.."
RL=${RL_BIN:-./routelab}
SHARED=../shared
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
exec 3>&1  # failure messages bypass the redirections of checked commands
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&3; }
check() { local what=$1; shift; if "$@"; then ok; else bad "$what"; fi; }
# expect_error WHAT PATTERN CMD...: CMD must exit non-zero with a one-line error matching PATTERN
expect_error() {
    local what=$1 pat=$2
    shift 2
    "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    if [ $rc -eq 0 ]; then bad "$what: exit 0, expected an error"; return; fi
    if [ $rc -gt 128 ]; then bad "$what: crashed (signal $((rc - 128)))"; return; fi
    # make test SANITIZE=1: a sanitizer report on an error path is a crash, not an error line
    if grep -qE 'Sanitizer|runtime error:' "$TMP/err"; then bad "$what: sanitizer report: $(head -3 "$TMP/err")"; return; fi
    if ! grep -qE "$pat" "$TMP/err"; then bad "$what: stderr lacks /$pat/: $(cat "$TMP/err")"; return; fi
    if [ "$(grep -c 'error' "$TMP/err")" -ne 1 ]; then bad "$what: not a one-line error"; return; fi
    ok
}
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
    $RL refcheck "$TMP/refbad" --case=dense >"$TMP/refbad.log" 2>&1 && bad "refcheck passed a wrong loss" || ok
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
            check "refcheck on an unseen-shape set ($s)" grep -q "16 passed, 0 failed, 0 skipped" "$TMP/$s.log"
        done
    else
        echo "SKIP: python3-torch not installed: unseen-shape reference sets not generated"
    fi
else
    echo "SKIP: ../shared/ref not found: reference checks skipped (CI always has it)"
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
    grep -o '"loss": [^,]*' "$TMP/full_$mode/metrics.jsonl" >"$TMP/a"
    grep -o '"loss": [^,]*' "$TMP/part_$mode/metrics.jsonl" >"$TMP/b"
    check "resumed loss sequence is bit-identical ($mode)" cmp -s "$TMP/a" "$TMP/b"
    check "12 losses after resume ($mode)" [ "$(wc -l <"$TMP/b")" -eq 12 ]
    $RL eval --ckpt="$TMP/full_$mode" --json >"$TMP/ea" 2>/dev/null
    $RL eval --ckpt="$TMP/part_$mode" --json >"$TMP/eb" 2>/dev/null
    check "resumed final model evaluates identically ($mode)" \
        cmp -s <(sed 's/"checkpoint": "[^"]*"//; s/"eval_seconds": [0-9.]*//' "$TMP/ea") \
        <(sed 's/"checkpoint": "[^"]*"//; s/"eval_seconds": [0-9.]*//' "$TMP/eb")
done

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
check "repro writes results.json with every run" python3 -c "
import json; R=json.load(open('$TMP/rp/results.json'))
assert len(R)==4 and {r['arm'] for r in R}=={'hard_learned','hard_random'} and all(r['result']['val_ppl']>1 for r in R)
assert all(g==0 for r in R for g in r['result']['gate_grad_norm'])"
check "repro report.md has the table and the paper's values" grep -q "| hard_learned | .* ± .* | 71.22 |" "$TMP/rp/report.md"
if command -v gnuplot >/dev/null; then check "repro convergence plot" [ -s "$TMP/rp/exp2_convergence.png" ]; fi
$RL repro exp2 --scale=tiny --seeds=2 --steps=8 --eval_batches=1 --out="$TMP/rp" >"$TMP/rp2.log" 2>&1
check "repro skips finished runs" [ "$(grep -c 'skipped' "$TMP/rp2.log")" -eq 4 ]
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
check "repro all: one run per arm name (shared runs are skipped, not re-run)" \
    [ "$(grep -c 'training$' "$TMP/rp3.log")" -eq 16 ]
for section in "## Summary" "| oracle top-k | oracle_k |" "| distill_soft | distill .* | 601.60 | 0.804 |" \
    "Share of the random → dense gap" "Share of the random → oracle gap" "| layers unfrozen |" \
    "| layer | top-k mass | entropy ratio |" "## capacity"; do
    check "repro all report: $section" grep -q "$section" "$TMP/rp3/report.md"
done
check "repro all prints the summary table last" grep -q "| soft gate, frozen random | soft_random |" "$TMP/rp3.log"
if command -v gnuplot >/dev/null; then
    for png in gradient_gradient concentration exp1_convergence posthoc_convergence; do
        check "repro all plot $png.png" [ -s "$TMP/rp3/$png.png" ]
    done
fi
$RL repro exp1,exp2 --scale=tiny --seeds=1 --out="$TMP/rp3" >"$TMP/rp5.log" 2>&1
check "repro NAME,NAME reuses the finished runs" [ "$(grep -c 'skipped' "$TMP/rp5.log")" -eq 5 ]
expect_error "repro unknown recipe in a list" "unknown recipe 'exp9'" $RL repro exp1,exp9
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
expect_error "unknown command" "unknown command" $RL frobnicate
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
    check "eval reports perplexity on shards" python3 -c "
import json,math; d=json.load(open('$TMP/we.json')); assert 1 < d['val_ppl'] < 512 and abs(math.log(d['val_ppl'])-d['val_loss'])<1e-3"
    check "sample decodes text" $RL sample --ckpt="$TMP/wr" --tokens=20 --prompt="The" >/dev/null 2>&1
    expect_error "shard vocab larger than the model" "vocab" $RL train --data="$TMP/wiki" --vocab_size=100
else
    echo "SKIP: ../shared/data not found: real-text tests skipped"
fi

echo "cli: $pass passed, $fail failed"
[ $fail -eq 0 ]
