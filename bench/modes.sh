#!/usr/bin/env bash
# Training step time of every routing mode relative to dense, and peak memory, on the paper
# config (6 layers, d 256, 4 heads, T 512, vocab 50257) at batch B (default 16).
# usage: bash bench/modes.sh [B] [STEPS]      (run from the repository root after `make`)
set -eu
B=${1:-16}
STEPS=${2:-4}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '%-13s %10s %12s %10s %10s\n' mode tok/s "step s" "vs dense" "peak MiB"
dense=""
for mode in dense oracle soft soft_prob hard stochastic random_fixed window; do
    ./routelab train --data=mqar --mqar_pairs=16 --mqar_eval_examples="$B" --eval_batches=1 \
        --batch="$B" --steps="$STEPS" --warmup=1 --dropout=0 --eval_every=0 --ckpt_every=0 \
        --log_every=0 --attn=$mode --k=64 --out="$tmp/$mode" --json >"$tmp/$mode.json" 2>/dev/null
    python3 - "$tmp/$mode.json" "$mode" "$B" "$dense" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); mode, B, dense = sys.argv[2], int(sys.argv[3]), sys.argv[4]
step = B * 512 / d["tokens_per_s"]
rel = step / float(dense) if dense else 1.0
print(f"{mode:13s} {d['tokens_per_s']:10.0f} {step:12.3f} {rel:10.3f} {d['peak_rss_mib']:10.0f}")
open(sys.argv[1] + ".step", "w").write(str(step))
PY
    [ -z "$dense" ] && dense=$(cat "$tmp/$mode.json.step")
done
