#!/usr/bin/env bash
# Installs what the browser tests need, and nothing when it is already there:
# Debian's chromium (the tests never download a browser of their own), a CJK font so the
# zh-CN screenshots show Chinese instead of boxes, and the npm devDependencies.
# Runs as root in CI; safe to run again.
set -euo pipefail

cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ] || ! fc-list 2>/dev/null | grep -qi 'wenquanyi\|noto sans cjk'; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium fonts-wqy-zenhei fontconfig >/dev/null
fi

if [ ! -d node_modules/playwright-core ]; then
    if ! command -v npm >/dev/null; then
        apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
    fi
    npm ci --no-audit --no-fund
fi
