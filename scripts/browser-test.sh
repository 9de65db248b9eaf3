#!/usr/bin/env bash
# The browser tests: installs chromium and playwright-core when missing, builds the node,
# then runs tests/browser/ with node's own test runner. Each test file starts its own node
# on a free port and stops it again. Screenshots land in tests/artifacts/ (gitignored).
set -euo pipefail

cd "$(dirname "$0")/.."

bash scripts/install-browser-deps.sh
cargo build --locked --bin livetally
mkdir -p tests/artifacts
node --test tests/browser/
