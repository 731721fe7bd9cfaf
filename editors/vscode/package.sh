#!/usr/bin/env bash
# Builds editors/vscode/expc-<version>.vsix: installs the extension's dependencies from the npm
# registry, runs the grammar test, and packages with @vscode/vsce.
# Install the result with: code --install-extension editors/vscode/expc-0.1.0.vsix
set -euo pipefail
cd "$(dirname "$0")"
command -v npm >/dev/null || { echo "package.sh: npm is needed (Debian: apt-get install npm)" >&2; exit 1; }
npm install --no-audit --no-fund
npm test
version=$(node -p "require('./package.json').version")
npx vsce package --skip-license --allow-missing-repository --no-rewrite-relative-links --out "expc-${version}.vsix"
echo "built $(pwd)/expc-${version}.vsix"
