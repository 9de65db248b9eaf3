#!/usr/bin/env bash
# Installs what the integration tests spawn: redis-server and redis-cli (Debian/Ubuntu).
# Idempotent: does nothing when both are on PATH. Never starts a Redis service: the test
# harness runs its own servers on free ports.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
    echo "redis-server and redis-cli present: $(redis-server --version)"
    exit 0
fi

bash "$(dirname "$0")/apt-install.sh" redis-server redis-tools

redis-server --version
redis-cli --version
