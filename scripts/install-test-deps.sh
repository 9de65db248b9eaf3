#!/usr/bin/env bash
# Installs what the integration tests spawn and the doc checks run (Debian/Ubuntu):
# redis-server and redis-cli for the tests; Go (golang-go) and PHP (php-cli) for the Go and
# PHP snippets of docs/webhooks.md (scripts/check-webhook-docs.py). Idempotent: installs
# only what is missing from PATH. Never starts a Redis service: the test harness runs its
# own servers on free ports.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v go >/dev/null 2>&1 || missing+=(golang-go)
command -v php >/dev/null 2>&1 || missing+=(php-cli)

if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    if ! bash "$(dirname "$0")/apt-install.sh" "${missing[@]}"; then
        # Redis is required; Go and PHP only run doc snippets, which are skipped with a
        # note when absent. Try the required part alone before giving up.
        echo "NOTE: could not install ${missing[*]} together; retrying redis alone"
        bash "$(dirname "$0")/apt-install.sh" redis-server redis-tools
    fi
fi

redis-server --version
redis-cli --version
if command -v go >/dev/null 2>&1; then go version; else echo "NOTE: go not installed: its doc snippets will be skipped"; fi
if command -v php >/dev/null 2>&1; then php --version | head -1; else echo "NOTE: php not installed: its doc snippets will be skipped"; fi
