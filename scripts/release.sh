#!/usr/bin/env bash
# Builds a release's artefacts into dist/ (gitignored), without any registry: the release
# binary, the SDK and widget npm tarballs, the OpenAPI document, and SHA256SUMS over them.
# docs/releasing.md says how a release is cut around it; deploy/Dockerfile builds its image
# from the binary this leaves in dist/.
#
#   bash scripts/release.sh              a release: every version must equal Cargo.toml's
#   bash scripts/release.sh --snapshot   the same artefacts, version mismatches only warned
#
# dist/ afterwards (VERSION from Cargo.toml, ARCH as Docker names it: amd64, arm64):
#   livetally-linux-ARCH             the binary, debug info stripped
#   livetally-sdk-VERSION.tgz        npm pack of web/sdk
#   livetally-embed-VERSION.tgz      npm pack of web/embed (when it is a package)
#   openapi.json                     the HTTP API and the webhook events, OpenAPI 3.1
#   SHA256SUMS                       `sha256sum -c SHA256SUMS` checks every file above
set -euo pipefail
cd "$(dirname "$0")/.."

snapshot=""
case "${1:-}" in
    "") ;;
    --snapshot) snapshot="yes" ;;
    *)
        echo "usage: bash scripts/release.sh [--snapshot]" >&2
        exit 2
        ;;
esac

step() { printf '\n== %s\n' "$*"; }
problems=0
problem() {
    if [ -n "$snapshot" ]; then
        echo "WARNING: $*"
    else
        echo "ERROR: $*" >&2
        problems=$((problems + 1))
    fi
}

# The one source of the version: [package] version in Cargo.toml.
version=$(sed -n '/^\[package\]/,/^\[/{s/^version *= *"\([^"]*\)".*/\1/p}' Cargo.toml | head -1)
[ -n "$version" ] || {
    echo "no [package] version in Cargo.toml" >&2
    exit 1
}
case "$(uname -m)" in
    x86_64) arch=amd64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) arch=$(uname -m) ;;
esac
echo "livetally $version for linux-$arch${snapshot:+ (snapshot)}"

step "versions agree with Cargo.toml ($version)"
json_version() { node -p "require('./$1').${2:-version}"; }
check_version() {
    local what=$1 found=$2
    if [ "$found" = "$version" ]; then
        echo "$what: $found"
    else
        problem "$what says $found, Cargo.toml says $version"
    fi
}
check_version "web/sdk/package.json" "$(json_version web/sdk/package.json)"
if [ -f web/embed/package.json ]; then
    check_version "web/embed/package.json" "$(json_version web/embed/package.json)"
fi
check_version "src/http/openapi.json info.version" "$(json_version src/http/openapi.json info.version)"
if ! grep -q "^## \[$version\]" CHANGELOG.md; then
    problem "CHANGELOG.md has no '## [$version]' section"
fi
if [ "$problems" -gt 0 ]; then
    echo "release.sh: $problems problem(s) above; fix them, or build with --snapshot" >&2
    exit 1
fi

rm -rf dist
mkdir -p dist

step "release binary"
cargo build --release --locked --bin livetally
cp target/release/livetally "dist/livetally-linux-$arch"
# Cargo.toml keeps line tables in release builds for profiling; the shipped binary has no
# use for them.
if command -v strip >/dev/null 2>&1; then
    strip --strip-debug "dist/livetally-linux-$arch"
else
    echo "NOTE: strip not installed: the binary keeps its debug info"
fi
built=$("dist/livetally-linux-$arch" --version 2>/dev/null || true)
echo "built: ${built:-livetally (no --version yet)}"
case "$built" in
    *"$version"*) ;;
    *) problem "the binary's --version ('$built') does not name $version" ;;
esac

step "npm tarballs"
pack() {
    local dir=$1 file
    # --json names the file npm wrote (a scoped name becomes scope-name-version.tgz).
    file=$(cd "$dir" && npm pack --silent --pack-destination ../../dist --json | node -p 'JSON.parse(require("fs").readFileSync(0, "utf8"))[0].filename')
    echo "$dir -> dist/$file"
}
pack web/sdk
if [ -f web/embed/package.json ]; then
    pack web/embed
else
    echo "NOTE: web/embed has no package.json yet: no widget tarball (the widget ships inside the binary meanwhile)"
fi

step "OpenAPI document"
cp src/http/openapi.json dist/openapi.json
echo "dist/openapi.json"

step "SHA256SUMS"
(
    cd dist
    files=(*)
    sha256sum -- "${files[@]}" >SHA256SUMS
    cat SHA256SUMS
)

if [ "$problems" -gt 0 ]; then
    echo "release.sh: $problems problem(s) above" >&2
    exit 1
fi
echo
echo "release.sh: dist/ holds livetally $version${snapshot:+ (snapshot)}; next: docs/releasing.md"
