// Builds the web map into dist/ (embedded in the binary by build.rs): one minified ES bundle
// (our modules + MapLibre GL JS), one stylesheet (MapLibre's and ours, imported by main.js),
// index.html with content hashes on the asset URLs. Deterministic: same sources, same bytes; a
// file is written only when its bytes change, so an unchanged build does not make cargo rebuild.
import * as esbuild from 'esbuild';
import { mkdirSync, readFileSync, writeFileSync, readdirSync, rmSync, existsSync } from 'node:fs';
import { createHash } from 'node:crypto';

const out = 'dist';
mkdirSync(out, { recursive: true });

const r = await esbuild.build({
  entryPoints: ['app/main.js'],
  bundle: true,
  minify: true,
  format: 'esm',
  target: 'es2020',
  legalComments: 'eof',
  outdir: out,
  entryNames: 'app',
  write: false,
  logLevel: 'warning',
});

const files = new Map();
for (const f of r.outputFiles) files.set(f.path.split('/').pop(), Buffer.from(f.contents));
const hash = (name) => createHash('sha256').update(files.get(name)).digest('hex').slice(0, 10);
const html = readFileSync('app/index.html', 'utf8')
  .replace('app.js"', `app.js?v=${hash('app.js')}"`)
  .replace('app.css"', `app.css?v=${hash('app.css')}"`);
files.set('index.html', Buffer.from(html));

for (const [name, bytes] of files) {
  const path = `${out}/${name}`;
  if (!existsSync(path) || !readFileSync(path).equals(bytes)) writeFileSync(path, bytes);
}
for (const name of readdirSync(out)) if (!files.has(name)) rmSync(`${out}/${name}`);
const gz = (name) => (files.get(name).length / 1024).toFixed(0);
console.log(`web: ${out}/ app.js ${gz('app.js')} KiB, app.css ${gz('app.css')} KiB`);
