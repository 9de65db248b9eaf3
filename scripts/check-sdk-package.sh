#!/usr/bin/env bash
# The SDK and the widget as people install them: `npm pack` of web/sdk and web/embed (their
# prepack builds the classic-script and bundled files into dist/), the tarballs' contents,
# the tarballs installed into an empty npm project, a TypeScript consumer compiled against
# their types with `tsc --strict`, the module's runtime exports compared with the ones its
# .d.ts declares (so neither drifts from the other), and the SRI hashes published in
# docs/embedding.md and web/sdk/README.md recomputed from the built files.
#
#   scripts/check-sdk-package.sh               check
#   scripts/check-sdk-package.sh --update-sri  also write the current hashes into the docs
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

update_sri=""
[ "${1:-}" = "--update-sri" ] && update_sri=yes

# esbuild and typescript are devDependencies of the root workspace (package-lock.json).
if [ ! -x node_modules/.bin/esbuild ] || [ ! -x node_modules/.bin/tsc ]; then
    npm ci --no-audit --no-fund
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1. The tarballs, exactly as `npm pack` (and scripts/release.sh) makes them.
for pkg in web/sdk web/embed; do
    (cd "$pkg" && npm pack --silent --pack-destination "$work" >/dev/null)
done
sdk_tgz=$(ls "$work"/livetally-sdk-*.tgz)
widget_tgz=$(ls "$work"/livetally-widget-*.tgz)

expect_files() {
    local tgz=$1; shift
    local listed
    listed=$(tar -tzf "$tgz" | sed 's|^package/||' | sort)
    for f in "$@"; do
        grep -qx "$f" <<<"$listed" || { echo "$(basename "$tgz") lacks $f; it holds:" >&2; echo "$listed" >&2; exit 1; }
    done
}
expect_files "$sdk_tgz" package.json README.md livetally.js livetally.d.ts strings.js strings.d.ts dist/livetally.min.js
expect_files "$widget_tgz" package.json README.md livetally-widget.d.ts dist/livetally-widget.js dist/livetally-widget.min.js
# The bundle must not import the node's /sdk/v1/ path: an installed widget cannot reach it.
tar -xzf "$widget_tgz" -C "$work" package/dist/livetally-widget.js
if grep -q "sdk/v1/" "$work/package/dist/livetally-widget.js"; then
    echo "dist/livetally-widget.js still imports ../sdk/v1/: the SDK is not bundled" >&2
    exit 1
fi

# 2. An empty project installs both tarballs and compiles a consumer with tsc --strict.
consumer="$work/consumer"
mkdir -p "$consumer"
cp web/sdk/test/consumer/consumer.ts web/sdk/test/consumer/tsconfig.json "$consumer/"
(cd "$consumer" \
    && printf '{ "name": "consumer", "private": true, "type": "module" }\n' > package.json \
    && npm install --silent --no-audit --no-fund "$sdk_tgz" "$widget_tgz" \
    && "$ROOT/node_modules/.bin/tsc" --strict -p tsconfig.json)
# The compiled consumer runs against the installed module (the SDK part needs no DOM).
node "$consumer/out/consumer.js"

# 3. Every value the .d.ts declares is exported by the module, and nothing more.
node --input-type=module - "$consumer" <<'JS'
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
const dir = process.argv[2];
const ts = createRequire(join(process.cwd(), 'package.json'))('typescript');
for (const [spec, dts] of [['@livetally/sdk', 'livetally.d.ts'], ['@livetally/sdk/strings', 'strings.d.ts']]) {
  const file = join(dir, 'node_modules/@livetally/sdk', dts);
  const program = ts.createProgram([file], { strict: true, noEmit: true, types: [], lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'] });
  const checker = program.getTypeChecker();
  const declared = checker.getExportsOfModule(checker.getSymbolAtLocation(program.getSourceFile(file)))
    .filter((s) => s.flags & ts.SymbolFlags.Value).map((s) => s.name).sort();
  const url = pathToFileURL(join(dir, 'node_modules', spec === '@livetally/sdk' ? '@livetally/sdk/livetally.js' : '@livetally/sdk/strings.js'));
  const actual = Object.keys(await import(url.href)).sort();
  const missing = declared.filter((n) => !actual.includes(n));
  const undeclared = actual.filter((n) => !declared.includes(n));
  if (missing.length || undeclared.length) {
    console.error(`${spec}: declared in ${dts} but not exported: [${missing}]; exported but not declared: [${undeclared}]`);
    process.exit(1);
  }
}
JS

# 4. The SRI hashes the docs publish are those of the files in the tarballs.
status=0
for pair in "$sdk_tgz:dist/livetally.min.js" "$widget_tgz:dist/livetally-widget.min.js"; do
    tgz=${pair%%:*}
    file=${pair#*:}
    name=$(basename "$file")
    tar -xzf "$tgz" -C "$work" "package/$file"
    sri="sha384-$(openssl dgst -sha384 -binary "$work/package/$file" | openssl base64 -A)"
    for doc in docs/embedding.md web/sdk/README.md; do
        if [ -n "$update_sri" ]; then
            sed -i -E "/$name/ s|sha384-[A-Za-z0-9+/=]{64}|$sri|g" "$doc"
        fi
        stale=$(grep -n "$name" "$doc" | grep -o 'sha384-[A-Za-z0-9+/=]\{64\}' | grep -vx -- "$sri" || true)
        if [ -n "$stale" ]; then
            echo "$doc: the SRI hash of $name is $sri, not $stale (scripts/check-sdk-package.sh --update-sri)" >&2
            status=1
        fi
    done
    grep -q -- "$sri" docs/embedding.md || { echo "docs/embedding.md does not publish $name's SRI hash $sri" >&2; status=1; }
done
[ "$status" -eq 0 ] && echo "SDK and widget packages: contents, tsc --strict consumer, exports and SRI hashes check out"
exit "$status"
