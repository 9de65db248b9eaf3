// Builds the widget as npm ships it, with the SDK and its strings bundled in (a page that
// installed it cannot reach a node's /sdk/v1/ path beside it): dist/livetally-widget.js, an
// ES module, and dist/livetally-widget.min.js, a minified classic script for a <script>
// tag. `npm pack` runs it (prepack); dist/ is never committed. A node serves the source,
// livetally-widget.js, as it is at /embed/v1.js, importing the SDK from ../sdk/v1/.
import { readFileSync } from 'node:fs';
import { build } from 'esbuild';

const here = new URL('.', import.meta.url);
const { version } = JSON.parse(readFileSync(new URL('package.json', here), 'utf8'));

/** `../sdk/v1/x.js` (the node's URL) is `../sdk/x.js` in the repository. */
const sdkFromSource = {
  name: 'sdk-from-source',
  setup(b) {
    b.onResolve({ filter: /^\.\.\/sdk\/v1\/[a-z]+\.js$/ }, (args) => ({
      path: new URL(`../sdk/${args.path.split('/').pop()}`, here).pathname,
    }));
  },
};

const common = {
  absWorkingDir: here.pathname,
  entryPoints: ['livetally-widget.js'],
  bundle: true,
  target: 'es2022',
  legalComments: 'none',
  banner: { js: `/*! @livetally/widget ${version} (with @livetally/sdk) | MIT */` },
  plugins: [sdkFromSource],
  logLevel: 'warning',
};

await build({ ...common, format: 'esm', outfile: 'dist/livetally-widget.js' });
// A classic script has no import.meta; the widget finds its own URL through
// document.currentScript instead, so the warning about it is expected.
await build({ ...common, format: 'iife', minify: true, outfile: 'dist/livetally-widget.min.js', logOverride: { 'empty-import-meta': 'silent' } });
