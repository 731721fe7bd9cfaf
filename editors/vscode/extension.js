// The expc extension: starts `expc lsp` (stdio) for .exp files. Highlighting comes from the
// TextMate grammar in syntaxes/; everything else (diagnostics, hover, definition, references,
// completion, formatting, outline) from the language server.
'use strict';
const vscode = require('vscode');
const { LanguageClient, TransportKind } = require('vscode-languageclient/node');

let client;

function start(context) {
  const command = vscode.workspace.getConfiguration('expc').get('path') || 'expc';
  const serverOptions = { command, args: ['lsp'], transport: TransportKind.stdio };
  const clientOptions = {
    documentSelector: [{ scheme: 'file', language: 'exp' }, { scheme: 'untitled', language: 'exp' }],
    outputChannelName: 'expc',
  };
  client = new LanguageClient('expc', 'expc', serverOptions, clientOptions);
  client.start().catch((e) => {
    vscode.window.showErrorMessage(`expc: cannot start \`${command} lsp\` (${e.message}). Install expc (cargo install --path .) or set expc.path.`);
  });
  context.subscriptions.push({ dispose: () => client && client.stop() });
}

function activate(context) {
  start(context);
  context.subscriptions.push(
    vscode.commands.registerCommand('expc.restart', async () => {
      if (client) await client.stop();
      start(context);
    }),
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      if (e.affectsConfiguration('expc.path')) {
        if (client) await client.stop();
        start(context);
      }
    })
  );
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
