#!/usr/bin/env bash
# Heavier acceptance checks (`make check-long`, ~10 minutes on 2 cores):
#  1. the `make run` recipe: a 2-layer model on MQAR (T 64, 4 pairs) passes 90% test accuracy;
#  2. a 2-layer d=128 model on prepared WikiText validation text: falling loss, eval perplexity;
#  3. deploy-time swap and post-hoc distillation on the MQAR model.
source "$(dirname "$0")/lib.sh"
start=$SECONDS
$RL train --data=mqar --out="$TMP/mqar" --n_layer=2 --d_model=128 --n_head=2 --d_ff=256 \
    --seq_len=64 --vocab_size=64 --mqar_pairs=4 --batch=64 --steps=1000 --dropout=0 --lr=1e-3 \
    --warmup=100 --eval_every=250 --eval_batches=0 --log_every=250 --json >"$TMP/mqar.json"
echo "MQAR: $(cat "$TMP/mqar.json") ($((SECONDS - start)) s)"
check "MQAR test accuracy > 0.9" python3 -c "import json; assert json.load(open('$TMP/mqar.json'))['val_accuracy'] > 0.9"
check "MQAR under 10 minutes" [ $((SECONDS - start)) -lt 600 ]
$RL distill --from="$TMP/mqar" --loss=bce --k=8 --steps=100 --log_every=0 --json >"$TMP/d.json"
echo "distill: $(cat "$TMP/d.json")"
check "BCE-distilled hard top-8 keeps MQAR accuracy > 0.9" python3 -c "
import json; d=json.load(open('$TMP/d.json')); assert d['hard_val_accuracy'] > 0.9 and min(d['gate_f1']) > 0.5"
WIKI=../shared/data/wikitext-103-raw/wiki.valid.raw
if [ -f "$WIKI" ]; then
    $RL tokenizer-train --input="$WIKI" --vocab_size=8192 --out="$TMP/wiki.bpe" >/dev/null
    $RL prepare --input="$WIKI" --tokenizer="$TMP/wiki.bpe" --out="$TMP/wiki" >/dev/null
    $RL train --data="$TMP/wiki" --vocab_size=8192 --n_layer=2 --d_model=128 --n_head=4 --d_ff=512 \
        --seq_len=128 --batch=16 --steps=600 --lr=2e-3 --warmup=50 --dropout=0 --eval_every=200 \
        --eval_batches=0 --log_every=100 --out="$TMP/wr" --json >"$TMP/wr.json"
    echo "WikiText: $(cat "$TMP/wr.json")"
    check "WikiText loss falls" python3 -c "
import json; L=[json.loads(l)['loss'] for l in open('$TMP/wr/metrics.jsonl') if '\"loss\"' in l]
assert sum(L[-20:])/20 < sum(L[:20])/20 - 2, (L[:3], L[-3:])"
    check "WikiText eval perplexity" python3 -c "import json; assert json.load(open('$TMP/wr.json'))['val_ppl'] < 1000"
else
    skip "$WIKI not found: WikiText training checks"
fi
summary long
