// Helpers for tests/bpe_vs_js.sh, run with node.
//   node bpe_vs_js.js text DATA_DIR OUT.txt       the text of a byte-level dataset (train, then val shards)
//   node bpe_vs_js.js encode PACKAGE_DIR IN.txt OUT.ids
//                                                 ids from gpt-3-encoder's own Encoder.js, one per line
//   node bpe_vs_js.js quirk-vocab DIR             a small encoder.json + vocab.bpe exercising merge quirks
'use strict';
const fs = require('fs');
const path = require('path');

function shardsToText(dir, out) {
  const meta = JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf-8'));
  if (meta.tokenizer !== 'byte') throw new Error(`${dir}: expected a byte-level dataset`);
  const parts = [];
  for (const split of ['train', 'val']) {
    const names = fs.readdirSync(dir).filter(n => new RegExp(`^${split}_\\d{6}\\.bin$`).test(n)).sort();
    for (const name of names) {
      const buf = fs.readFileSync(path.join(dir, name));
      if (buf.subarray(0, 8).toString('latin1') !== 'MURMTOK\0') throw new Error(`${name}: bad magic`);
      const count = Number(buf.readBigUInt64LE(16));
      if (buf.length !== 64 + 2 * count) throw new Error(`${name}: size does not match the header`);
      const bytes = Buffer.alloc(count);
      for (let i = 0; i < count; i++) bytes[i] = buf.readUInt16LE(64 + 2 * i);
      parts.push(bytes);
    }
  }
  fs.writeFileSync(out, Buffer.concat(parts));
}

// Encoder.js's encode() concatenates arrays per pre-token (quadratic on megabytes), so the
// text goes through it in chunks of whole pre-tokens. A chunk is used only if the package's
// own regex splits it exactly as it splits the full text; otherwise each piece goes alone.
function encodeFile(pkg, input, out) {
  const { encode } = require(path.resolve(pkg, 'Encoder.js'));
  const source = fs.readFileSync(path.resolve(pkg, 'Encoder.js'), 'utf-8');
  const pat = eval(source.match(/^const pat = (\/.*\/[a-z]*)$/m)[1]);
  const split = s => Array.from(s.matchAll(pat), m => m[0]);
  const sameSplit = (s, pieces) => {
    const got = split(s);
    return got.length === pieces.length && got.every((p, i) => p === pieces[i]);
  };
  // ignoreBOM keeps a leading U+FEFF as text, as Murmur does; invalid bytes become U+FFFD.
  const text = new TextDecoder('utf-8', { ignoreBOM: true }).decode(fs.readFileSync(input));
  const pieces = split(text);
  if (pieces.join('') !== text) throw new Error('the pre-tokenizer does not cover the text');
  const ids = [];
  for (let at = 0; at < pieces.length; at += 256) {
    const chunk = pieces.slice(at, at + 256);
    if (sameSplit(chunk.join(''), chunk)) {
      for (const id of encode(chunk.join(''))) ids.push(id);
      continue;
    }
    for (const piece of chunk) {
      if (!sameSplit(piece, [piece])) throw new Error(`piece ${JSON.stringify(piece)} re-splits`);
      for (const id of encode(piece)) ids.push(id);
    }
  }
  if (ids.some(id => id === undefined)) throw new Error('the JS encoder produced an undefined id');
  fs.writeFileSync(out, ids.join('\n') + (ids.length ? '\n' : ''));
}

// GPT-2's bytes_to_unicode: printable bytes map to themselves, the others to U+0100...
function byteSymbols() {
  const printable = b => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let next = 256;
  return Array.from({ length: 256 }, (_, b) => String.fromCharCode(printable(b) ? b : next++));
}

function quirkVocab(dir) {
  const lines = [
    '#version: 0.2',
    'a\tb', '" ,', ', "', '", "',          // `",` + `"` has the key `",,"`, as has `"` + `,"`
    ', ,', ',, ,',                         // key `,,,,`: also the pair (`,`, `,,`)
    '  x   y  ', 'y z', 'x y',             // the repeated `x y` ranks after `y z`: xyz -> x yz
    'p q r', ', r', 'q ,r', ', q', 'p ,q', // a 3-part line: key `p,q,r`
    ', .', '. ,.', '. . .',                // `..,..` -> . .,. . whose two pairs tie: the last wins
    'z z',                                 // the last line: dropped by Encoder.js
  ];
  const merged = ['ab', '",', ',"', '","', ',,', ',,,', 'xy', 'yz', ',r', 'q,r', ',q', 'p,q', 'pq,r', 'p,qr',
                  ',.', '.,.', '..,.', '.,..', 'zz'];
  const encoder = {};
  [...byteSymbols(), ...merged, '<|endoftext|>'].forEach((s, i) => { encoder[s] = i; });
  fs.writeFileSync(path.join(dir, 'encoder.json'), JSON.stringify(encoder));
  fs.writeFileSync(path.join(dir, 'vocab.bpe'), lines.join('\n'));
}

const [cmd, ...args] = process.argv.slice(2);
if (cmd === 'text') shardsToText(...args);
else if (cmd === 'encode') encodeFile(...args);
else if (cmd === 'quirk-vocab') quirkVocab(...args);
else throw new Error('usage: node bpe_vs_js.js text DATA_DIR OUT | encode PACKAGE_DIR IN OUT | quirk-vocab DIR');
