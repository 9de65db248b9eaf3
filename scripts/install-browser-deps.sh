#!/usr/bin/env bash
# Installs what the browser tests need, and nothing that is already there: Debian's
# chromium (the tests never download a browser of their own), a CJK font so zh-CN pages
# and screenshots show Chinese rather than boxes, Node.js with npm, the npm
# devDependencies from package-lock.json (esbuild bundles the recipe pages), and PyJWT.
# Runs as root in CI; safe to run again.
set -euo pipefail

cd "$(dirname "$0")/.."

packages=()
[ -x /usr/bin/chromium ] || packages+=(chromium)
fc-list 2>/dev/null | grep -qi 'wenquanyi\|noto sans cjk' || packages+=(fonts-wqy-zenhei fontconfig)
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)

if [ ${#packages[@]} -gt 0 ]; then
    bash scripts/apt-install.sh "${packages[@]}"
fi

# PyJWT: the browser tests run docs/embedding.md's Python minting snippet as it stands.
if ! python3 -c 'import jwt' 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check 'PyJWT>=2.8,<3'
fi

# The root workspace: playwright-core, jsonwebtoken, and esbuild, typescript, react and vue
# for the SDK packages and the recipes' pages (package-lock.json).
for pkg in playwright-core jsonwebtoken esbuild typescript react react-dom vue; do
    if [ ! -d "node_modules/$pkg" ]; then
        npm ci --no-audit --no-fund
        break
    fi
done
