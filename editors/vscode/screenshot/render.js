// Renders what the extension shows for a sample .exp file as an HTML page in VS Code's dark
// colours: the text highlighted by the extension's TextMate grammar, the diagnostics that
// `expc lsp` publishes (squiggles and the problems list) and its hover on a layer line.
// Everything shown comes from the real grammar and the real server; only the window is drawn.
// Usage: node render.js EXPC OUT.html   (make.sh then takes the screenshot)
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');
const vsctm = require('vscode-textmate');
const oniguruma = require('vscode-oniguruma');

const [expc, out] = process.argv.slice(2);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'expc-shot-'));
const base = fs.readFileSync(path.join(__dirname, '..', '..', '..', 'experiments', 'cifar10', 'baseline.exp'), 'utf8');
fs.writeFileSync(path.join(dir, 'baseline.exp'), base);
const text = [
  '# A variant: batch norm after every conv, one more pooling.',
  'experiment cifar10_wide',
  'extends "baseline.exp"',
  '',
  'insert after pool2: maxpool 8',
  'insert after conv*: batchnorm',
  '',
  'train {',
  '  lr 0.02',
  '  iterations 8000',
  '}',
  '',
].join('\n');
const file = path.join(dir, 'wide.exp');
fs.writeFileSync(file, text);
const uri = 'file://' + file;

function lsp() {
  const p = spawn(expc, ['lsp'], { stdio: ['pipe', 'pipe', 'inherit'] });
  let buf = Buffer.alloc(0);
  const waiting = [];
  const seen = [];
  p.stdout.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      const h = buf.indexOf('\r\n\r\n');
      if (h < 0) return;
      const len = parseInt(/Content-Length: (\d+)/.exec(buf.slice(0, h).toString())[1], 10);
      if (buf.length < h + 4 + len) return;
      const msg = JSON.parse(buf.slice(h + 4, h + 4 + len).toString());
      buf = buf.slice(h + 4 + len);
      seen.push(msg);
      waiting.splice(0).forEach((f) => f());
    }
  });
  const send = (m) => {
    const s = JSON.stringify(Object.assign({ jsonrpc: '2.0' }, m));
    p.stdin.write(`Content-Length: ${Buffer.byteLength(s)}\r\n\r\n${s}`);
  };
  const wait = (pred) =>
    new Promise((resolve) => {
      const check = () => {
        const i = seen.findIndex(pred);
        if (i >= 0) resolve(seen.splice(i, 1)[0]);
        else waiting.push(check);
      };
      check();
    });
  return { p, send, wait };
}

async function grammar() {
  const wasm = fs.readFileSync(path.join(path.dirname(require.resolve('vscode-oniguruma')), 'onig.wasm'));
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({ createOnigScanner: (s) => new oniguruma.OnigScanner(s), createOnigString: (s) => new oniguruma.OnigString(s) }),
    loadGrammar: async () => vsctm.parseRawGrammar(fs.readFileSync(path.join(__dirname, '..', 'syntaxes', 'exp.tmLanguage.json'), 'utf8'), 'x.json'),
  });
  return registry.loadGrammar('source.exp');
}

// Dark+ colours by scope prefix.
const COLOURS = [
  ['comment', '#6a9955'], ['string', '#ce9178'], ['constant.numeric', '#b5cea8'], ['constant.language', '#569cd6'],
  ['keyword', '#c586c0'], ['storage', '#569cd6'], ['entity.name.function.layer', '#dcdcaa'], ['entity.name.type', '#4ec9b0'],
  ['entity.name.function', '#dcdcaa'], ['support.function', '#4fc1ff'], ['support.type', '#9cdcfe'], ['variable.parameter', '#9cdcfe'],
  ['variable.other.pattern', '#4ec9b0'], ['variable.language', '#569cd6'],
];
const colour = (scopes) => {
  for (let i = scopes.length - 1; i >= 0; i--) for (const [p, c] of COLOURS) if (scopes[i].startsWith(p)) return c;
  return '#d4d4d4';
};
const esc = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const md = (s) => esc(s).replace(/\*\*(.+?)\*\*/g, '<b>$1</b>').replace(/`([^`]+)`/g, '<code>$1</code>').replace(/^- /gm, '• ').replace(/\n\n---\n\n/g, '<hr>').replace(/\n\n/g, '<br>').replace(/\n/g, '<br>');

(async () => {
  const g = await grammar();
  const s = lsp();
  s.send({ id: 1, method: 'initialize', params: { capabilities: {}, processId: null, rootUri: null } });
  await s.wait((m) => m.id === 1);
  s.send({ method: 'initialized', params: {} });
  s.send({ method: 'textDocument/didOpen', params: { textDocument: { uri, languageId: 'exp', version: 1, text } } });
  const diags = (await s.wait((m) => m.method === 'textDocument/publishDiagnostics')).params.diagnostics;
  const hoverAt = { line: 5, character: 22 };
  s.send({ id: 2, method: 'textDocument/hover', params: { textDocument: { uri }, position: hoverAt } });
  const hover = (await s.wait((m) => m.id === 2)).result;
  s.send({ id: 3, method: 'shutdown', params: null });
  await s.wait((m) => m.id === 3);
  s.send({ method: 'exit', params: null });

  let stack = vsctm.INITIAL;
  const lines = text.split('\n').map((line, i) => {
    const r = g.tokenizeLine(line, stack);
    stack = r.ruleStack;
    const d = diags.find((x) => x.range.start.line === i);
    let html = '';
    for (const t of r.tokens) {
      for (let c = t.startIndex; c < Math.min(t.endIndex, line.length); c++) {
        const under = d && c >= d.range.start.character && c < Math.max(d.range.end.character, d.range.start.character + 1);
        html += `<span style="color:${colour(t.scopes)}"${under ? ' class="squiggle"' : ''}>${esc(line[c])}</span>`;
      }
    }
    return `<div class="line"><span class="no">${i + 1}</span>${html || '&nbsp;'}</div>`;
  });
  const hoverHtml = hover ? `<div class="hover" style="top:${(hoverAt.line + 1) * 20 + 46}px;left:${hoverAt.character * 8.4 + 60}px">${md(hover.contents.value)}</div>` : '';
  const problems = diags
    .map((d) => `<div class="problem"><span class="err">⊗</span> ${esc(d.message.split('\n')[0])} <span class="dim">expc(${d.code}) [Ln ${d.range.start.line + 1}, Col ${d.range.start.character + 1}]</span></div>`)
    .join('');
  const page = `<!DOCTYPE html><html><head><meta charset="utf-8"><style>
body{margin:0;background:#1e1e1e;font:13px/20px "DejaVu Sans Mono",Menlo,monospace;color:#d4d4d4}
.tabs{background:#252526;height:35px;display:flex;align-items:end}.tab{background:#1e1e1e;padding:8px 14px;color:#fff;font:13px system-ui,sans-serif}
.crumbs{padding:3px 16px;color:#a0a0a0;font:12px system-ui,sans-serif;height:14px}
.editor{position:relative;padding-top:4px;height:440px}.line{white-space:pre;height:20px}.no{display:inline-block;width:44px;text-align:right;margin-right:16px;color:#858585}
.squiggle{text-decoration:underline wavy #f14c4c;text-decoration-skip-ink:none;text-underline-offset:3px}
.hover{position:absolute;max-width:620px;background:#252526;border:1px solid #454545;padding:8px 10px;font:13px/19px system-ui,sans-serif;box-shadow:0 2px 8px #000a;color:#ccc}
.hover hr{border:0;border-top:1px solid #454545;margin:6px 0}.hover code{font-family:"DejaVu Sans Mono",monospace;color:#d7ba7d}.hover b{color:#fff}
.panel{border-top:1px solid #414141;background:#1e1e1e;font:13px system-ui,sans-serif;padding:6px 16px;height:100px}.panel h3{margin:0 0 6px;font-size:11px;letter-spacing:.05em;color:#e7e7e7}
.problem{padding:2px 0}.err{color:#f14c4c}.dim{color:#8b8b8b}.status{background:#007acc;color:#fff;font:12px system-ui,sans-serif;padding:3px 10px}
</style></head><body><div class="tabs"><div class="tab">wide.exp</div></div><div class="crumbs">experiments › cifar10 › wide.exp</div>
<div class="editor">${lines.join('')}${hoverHtml}</div>
<div class="panel"><h3>PROBLEMS ${diags.length}</h3>${problems}</div><div class="status">expc lsp · exp</div></body></html>`;
  fs.writeFileSync(out, page);
  fs.rmSync(dir, { recursive: true, force: true });
})();
