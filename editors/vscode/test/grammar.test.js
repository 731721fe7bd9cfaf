// Tokenizes .exp text with the extension's TextMate grammar (the same engine VS Code uses:
// vscode-textmate + oniguruma) and checks the scopes of the interesting tokens.
// Run: npm test (after npm install).
'use strict';
const fs = require('fs');
const path = require('path');
const assert = require('assert');
const vsctm = require('vscode-textmate');
const oniguruma = require('vscode-oniguruma');

async function grammar() {
  const wasm = fs.readFileSync(path.join(path.dirname(require.resolve('vscode-oniguruma')), 'onig.wasm'));
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({ createOnigScanner: (s) => new oniguruma.OnigScanner(s), createOnigString: (s) => new oniguruma.OnigString(s) }),
    loadGrammar: async () => vsctm.parseRawGrammar(fs.readFileSync(path.join(__dirname, '..', 'syntaxes', 'exp.tmLanguage.json'), 'utf8'), 'exp.tmLanguage.json'),
  });
  return registry.loadGrammar('source.exp');
}

/** Every token of `text` as [line, text, innermost scope]. */
function tokenize(g, text) {
  let stack = vsctm.INITIAL;
  const out = [];
  text.split('\n').forEach((line, i) => {
    const r = g.tokenizeLine(line, stack);
    for (const t of r.tokens) out.push([i, line.slice(t.startIndex, t.endIndex), t.scopes[t.scopes.length - 1]]);
    stack = r.ruleStack;
  });
  out.depth = stack.depth;
  return out;
}

function scopeOf(tokens, text, nth = 0) {
  const hits = tokens.filter((t) => t[1].trim() === text);
  assert.ok(hits.length > nth, `token ${JSON.stringify(text)} not found`);
  return hits[nth][2];
}

(async () => {
  const g = await grammar();
  const src = [
    'experiment cifar10_batchnorm  # a comment',
    'extends "baseline.exp"',
    'set fc* init=msra',
    'insert after conv*: batchnorm',
    'data {',
    '  dataset cifar10',
    '  scale 1/255',
    '}',
    'model {',
    '  input 3x32x32',
    '  conv1: conv 6 5x5 init=gaussian(0.05)',
    '  relu',
    '  repeat 2 {',
    '    a: conv 16 3x3 pad=1 bias=false',
    '    sum: add a in',
    '  }',
    '}',
    'train { lr 0.01; iterations 100 }',
  ].join('\n');
  const t = tokenize(g, src);
  const expect = {
    experiment: 'keyword.control.experiment.exp',
    cifar10_batchnorm: 'entity.name.type.experiment.exp',
    '# a comment': 'comment.line.number-sign.exp',
    extends: 'keyword.control.import.exp',
    '"': 'string.quoted.double.exp',
    set: 'keyword.control.edit.exp',
    'fc*': 'variable.other.pattern.exp',
    after: 'keyword.other.position.exp',
    batchnorm: 'support.function.op.exp',
    dataset: 'support.type.property-name.setting.exp',
    '1/255': 'constant.numeric.exp',
    '3x32x32': 'constant.numeric.dims.exp',
    conv1: 'entity.name.function.layer.exp',
    conv: 'support.function.op.exp',
    init: 'variable.parameter.key.exp',
    gaussian: 'entity.name.function.call.exp',
    relu: 'support.function.op.exp',
    repeat: 'keyword.control.repeat.exp',
    false: 'constant.language.boolean.exp',
    add: 'support.function.op.exp',
    in: 'variable.language.in.exp',
    lr: 'support.type.property-name.setting.exp',
    iterations: 'support.type.property-name.setting.exp',
  };
  let failed = 0;
  for (const [text, scope] of Object.entries(expect)) {
    try {
      assert.strictEqual(scopeOf(t, text), scope, text);
    } catch (e) {
      failed++;
      console.error(`FAIL ${text}: ${e.message}`);
    }
  }
  // Every shipped experiment tokenizes without an unclosed block swallowing the file.
  const root = path.join(__dirname, '..', '..', '..', 'experiments');
  let files = 0;
  for (const dir of fs.readdirSync(root)) {
    for (const f of fs.readdirSync(path.join(root, dir)).filter((x) => x.endsWith('.exp'))) {
      const toks = tokenize(g, fs.readFileSync(path.join(root, dir, f), 'utf8'));
      if (toks.depth !== 1) {
        failed++;
        console.error(`FAIL ${dir}/${f}: a block is still open at the end (depth ${toks.depth})`);
      }
      files++;
    }
  }
  const passed = Object.keys(expect).length + files - failed;
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
})();
