// Builds dist/livetally.min.js: the SDK as a classic script for a <script> tag (an IIFE that
// sets the global `Livetally`), minified. `npm pack` runs it (prepack), so a package always
// holds a build of the module beside it; dist/ is never committed. The ES module itself,
// livetally.js, needs no build: a node serves it as it is.
import { readFileSync } from 'node:fs';
import { build } from 'esbuild';

const here = new URL('.', import.meta.url);
const { version } = JSON.parse(readFileSync(new URL('package.json', here), 'utf8'));

await build({
  absWorkingDir: new URL('.', here).pathname,
  entryPoints: ['livetally.js'],
  outfile: 'dist/livetally.min.js',
  bundle: true,
  format: 'iife',
  globalName: 'Livetally',
  minify: true,
  target: 'es2020',
  legalComments: 'none',
  banner: { js: `/*! @livetally/sdk ${version} | MIT */` },
  logLevel: 'warning',
});
