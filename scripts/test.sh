#!/usr/bin/env bash
# The whole test suite, as the README gives it: installs what the tests spawn when it is
# missing (redis-server, redis-tools; Chromium and npm packages for the browser tests),
# then runs the unit, contract and integration tests, then the browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-deps.sh
cargo test --all-targets --locked
if [ -f scripts/browser-test.sh ]; then
    bash scripts/browser-test.sh
fi
