#!/usr/bin/env bash
# Renders editors/vscode/screenshot.png: the grammar's highlighting, `expc lsp`'s diagnostics
# and hover for a sample variant, drawn as VS Code's dark theme and shot by headless Chromium.
# Needs: npm install (in editors/vscode), chromium, and expc (built: cargo build).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../../.."
expc="${EXPC:-$root/target/debug/expc}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
node "$here/render.js" "$expc" "$tmp/page.html"
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --hide-scrollbars --user-data-dir="$tmp/profile" \
  --screenshot="$here/../screenshot.png" --window-size=1000,640 "file://$tmp/page.html" 2>/dev/null
echo "wrote editors/vscode/screenshot.png"
