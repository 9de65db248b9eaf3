#!/usr/bin/env bash
# The whole test suite, as the README gives it: installs what the tests spawn when it is
# missing (redis-server, redis-tools; prometheus, nginx and linters for the deploy kit;
# Chromium and npm packages for the browser tests), checks the deploy kit with the real
# tools, then runs the unit, contract and integration tests, fuzzes the HTTP API from its
# OpenAPI document, runs the JS SDK's unit tests, then runs the browser tests. First of
# all it checks that modules depend on each other one way only (scripts/check-modules.py).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 scripts/check-modules.py
bash scripts/install-test-deps.sh
# Every snippet of docs/webhooks.md (Node, Python, Go, PHP) on requests a real node signed,
# and the Go and PHP join tokens spent on that node.
python3 scripts/check-webhook-docs.py
bash scripts/deploy-check.sh
# cargo-nextest runs test files at once (see .config/nextest.toml); plain cargo test is the
# fallback on a machine without it.
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --all-targets --locked
else
    cargo test --all-targets --locked
fi
# A live node fuzzed from its own OpenAPI document (schemathesis, from PyPI).
bash scripts/fuzz-api.sh
# The JS SDK's ledger and reconnect logic under plain Node, with fake sockets and timers.
node --test web/sdk/test/
bash scripts/check-sdk-package.sh
if [ -f scripts/browser-test.sh ]; then
    bash scripts/browser-test.sh
fi
