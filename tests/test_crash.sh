#!/usr/bin/env bash
# Crash safety: a training run with a checkpoint every step is killed with SIGKILL at 20 random
# moments, resumed after each kill, and must end with the same per-step losses, bit for bit, as
# an uninterrupted run, a checkpoint that loads, and no temporary file left behind. The
# vocabulary is large so that the checkpoint (about 6 MB) takes a real share of a step and some
# kills land inside its write (the test prints how many did).
source "$(dirname "$0")/lib.sh"
KILLS=${KILLS:-20}
STEPS=300
TINY="--data=mqar --n_layer=2 --d_model=32 --n_head=2 --d_ff=64 --seq_len=32 --vocab_size=16384 \
 --mqar_pairs=4 --batch=4 --mqar_eval_examples=16 --eval_batches=2 --warmup=2 --d_g=8 --k=8 \
 --attn=soft --dropout=0.1 --steps=$STEPS --ckpt_every=1 --eval_every=100 --log_every=1 --threads=2"
$RL train $TINY --out="$TMP/ref" >/dev/null 2>&1 || bad "uninterrupted run"
# step -> loss text exactly as logged (python: the numbers' full-precision text is compared)
losses() { python3 -c "
import json, sys
for line in open(sys.argv[1]):
    j = json.loads(line)
    if 'loss' in j and 'val_loss' not in j: print(j['step'], repr(j['loss']))" "$1"; }
RANDOM=7  # the kill moments are random but the same every time the test runs
kills=0
started=0
finished() { tail -n 1 "$TMP/crash/metrics.jsonl" 2>/dev/null | grep -qE "\"step\":$STEPS[,}]"; }
tries=0
while [ $kills -lt $KILLS ] && [ $tries -lt $((KILLS * 10)) ] && ! finished; do
    tries=$((tries + 1))
    if [ $started -eq 0 ]; then
        $RL train $TINY --out="$TMP/crash" >>"$TMP/crash.log" 2>&1 &
    else
        $RL train --resume="$TMP/crash" >>"$TMP/crash.log" 2>&1 &
    fi
    pid=$!
    sleep "0.$(printf '%03d' $((RANDOM % 230 + 20)))"
    if kill -9 $pid 2>/dev/null; then kills=$((kills + 1)); fi
    wait $pid 2>/dev/null
    [ -f "$TMP/crash/model.ckpt" ] && started=1
done
# finish the run: resume to the last step (or start it, if every kill came before its first
# checkpoint)
if [ -f "$TMP/crash/model.ckpt" ]; then
    $RL train --resume="$TMP/crash" >>"$TMP/crash.log" 2>&1 || bad "the last resume: $(tail -2 "$TMP/crash.log")"
else
    $RL train $TINY --out="$TMP/crash" >>"$TMP/crash.log" 2>&1 || bad "the run: $(tail -2 "$TMP/crash.log")"
fi
check "killed $kills times (wanted $KILLS) and resumed each time" [ $kills -eq $KILLS ]
losses "$TMP/ref/metrics.jsonl" >"$TMP/ref.loss"
losses "$TMP/crash/metrics.jsonl" >"$TMP/crash.loss"
check "the final loss sequence is bit-identical to the uninterrupted run's ($STEPS steps)" \
    cmp -s "$TMP/ref.loss" "$TMP/crash.loss"
check "every step logged once ($(wc -l <"$TMP/crash.loss") lines)" [ "$(wc -l <"$TMP/crash.loss")" -eq $STEPS ]
check "the final checkpoint evaluates" $RL eval --ckpt="$TMP/crash" >/dev/null 2>&1
echo "kills during a checkpoint write (their temporary file removed on resume): $(grep -c 'unfinished temporary' "$TMP/crash.log")"
check "no temporary file left behind" [ -z "$(ls "$TMP/crash" | grep '\.tmp')" ]
summary crash
