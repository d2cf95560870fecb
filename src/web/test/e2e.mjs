// The web map end to end in a real browser: Debian's chromium driven by playwright-core
// (headless, software WebGL), against the real binary serving Manhattan. Run by tests/web.rs,
// which makes the store, the tokens and the server and passes them in the environment:
//   WANGGE_URL, WANGGE_PLANNER, WANGGE_PLANNER2, WANGGE_DISPATCHER, WANGGE_ADMIN, WANGGE_DRAFT,
//   WANGGE_IN_FORCE, WANGGE_ARTEFACTS (screenshots and report.json), WANGGE_EDITS (timed edits).
// Every step asserts what the page shows against what the API says; screenshots of each step
// are saved to look at. Exit 0 when every check holds.
import { chromium } from 'playwright-core';
import fs, { mkdirSync, writeFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set (tests/web.rs sets it)`);
  return v;
};
const BASE = env('WANGGE_URL').replace(/\/$/, '');
const OUT = env('WANGGE_ARTEFACTS');
const DRAFT = Number(env('WANGGE_DRAFT'));
const IN_FORCE = Number(env('WANGGE_IN_FORCE'));
const EDITS = Number(process.env.WANGGE_EDITS || 20);
mkdirSync(OUT, { recursive: true });
const report = { steps: [], unsettled: [] };
const log = (...a) => console.log('[e2e]', ...a);

async function rest(path, token, opts = {}) {
  const headers = { Accept: 'application/json', ...(opts.headers || {}) };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (opts.json !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(BASE + path, { method: opts.method || (opts.json !== undefined ? 'POST' : 'GET'), headers, body: opts.json !== undefined ? JSON.stringify(opts.json) : opts.body });
  const text = await r.text();
  let data = null;
  try { data = JSON.parse(text); } catch { data = text; }
  return { status: r.status, data, etag: r.headers.get('etag') };
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--enable-unsafe-swiftshader', '--disable-background-networking', '--disable-dev-shm-usage'],
});

// a page for a role: console errors and every response recorded
async function open(token, name) {
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 }, locale: 'zh-CN' });
  const page = await ctx.newPage();
  const errors = [];
  const responses = [];
  // (a 412 is the stale publish this test provokes on purpose; the page shows the conflict)
  page.on('console', (m) => m.type() === 'error' && !m.text().includes('status of 412') && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('response', (r) => responses.push(r));
  page.on('request', (r) => { if (!r.url().startsWith(BASE) && !r.url().startsWith('data:') && !r.url().startsWith('blob:')) errors.push(`outside request: ${r.url()}`); });
  if (token) await page.addInitScript((t) => sessionStorage.setItem('wangge.token', t), token);
  const t0 = Date.now();
  await page.goto(`${BASE}/`, { waitUntil: 'domcontentloaded' });
  await page.waitForFunction(() => window.__wanggeReady === true, null, { timeout: 60000 });
  await page.waitForFunction(() => window.__wangge.map.queryRenderedFeatures({ layers: ['grid-fill'] }).length > 0, null, { timeout: 60000, polling: 20 });
  const drawnMs = Date.now() - t0;
  await idle(page);
  const body = await page.locator('body').innerText();
  for (const bad of ['[object ', 'undefined', 'NaN']) assert.ok(!body.includes(bad), `${name}: the page shows ${bad}`);
  log(`${name}: grids drawn ${drawnMs} ms after navigation`);
  return { ctx, page, errors, responses, drawnMs };
}

const idle = (page) => page.evaluate(() => new Promise((res) => {
  const m = window.__wangge.map;
  if (m.loaded() && m.areTilesLoaded() && !m.isMoving()) setTimeout(res, 50);
  else m.once('idle', () => res());
}));

// waits up to a minute for a condition in the page; when it does not hold, the failure names the
// step and what the page showed (toast, pending dry run, timing, the requests since the step began)
async function waitOr(page, fn, arg, what, since = () => []) {
  try {
    await page.waitForFunction(fn, arg, { timeout: 60000 });
  } catch (e) {
    const seen = await page.evaluate(() => ({
      toast: document.getElementById('toast')?.textContent,
      pending: document.getElementById('pending')?.innerText,
      timing: window.__wangge.timing,
      selected: [...window.__wangge.selB],
      target: document.querySelector('[data-testid="assign-target"]')?.value,
    })).catch((err) => ({ unreadable: String(err) }));
    seen.map = await mapState(page);
    const reqs = since().map((r) => `${r.request().method()} ${r.url().replace(BASE, '')} → ${r.status()}`);
    throw new Error(`${what}: not within 60 s (${e.message.split('\n')[0]}); the page: ${JSON.stringify(seen)}; responses since: ${JSON.stringify(reqs.slice(-12))}`);
  }
}

// the map's loading state: loaded, tiles loaded, moving, and the sources not loaded
const mapState = (page) => page.evaluate(() => {
  const m = window.__wangge.map;
  const unloaded = Object.keys(m.getStyle().sources).filter((id) => !m.isSourceLoaded(id));
  return { loaded: m.loaded(), tiles: m.areTilesLoaded(), moving: m.isMoving(), unloaded };
}).catch((err) => ({ unreadable: String(err) }));

async function shot(page, name) {
  const path = `${OUT}/${name}.png`;
  await page.screenshot({ path });
  report.steps.push({ name, screenshot: path });
}

// the grid codes drawn in view, and the store's grids inside a slightly smaller / larger box
async function drawnVsStore(page, token) {
  const { drawn, bounds } = await page.evaluate(() => {
    const m = window.__wangge.map;
    const b = m.getBounds();
    const codes = new Set(m.queryRenderedFeatures({ layers: ['grid-fill', 'edited-fill'] }).map((f) => f.properties.code));
    return { drawn: [...codes].sort(), bounds: [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()] };
  });
  const shrink = (k) => {
    const [w, s, e, n] = bounds;
    const dx = (e - w) * k;
    const dy = (n - s) * k;
    return [w + dx, s + dy, e - dx, n - dy].join(',');
  };
  const plan = await page.evaluate(() => window.__wangge.plan?.id ?? null);
  const q = (bb) => rest(`/collections/grids/items?bbox=${bb}&limit=1000${plan ? `&plan=${plan}` : ''}`, token);
  const inner = (await q(shrink(0.02))).data.features.map((f) => f.properties.code);
  const outer = new Set((await q(shrink(-0.02))).data.features.map((f) => f.properties.code));
  for (const c of inner) assert.ok(drawn.includes(c), `grid ${c} is in the store's grids in view but not drawn`);
  for (const c of drawn) assert.ok(outer.has(c), `grid ${c} is drawn but not in the store's grids in view`);
  return { drawn: drawn.length, inner: inner.length };
}

// click a map point given in lon/lat
async function clickAt(page, lngLat, modifiers = []) {
  const p = await page.evaluate((ll) => {
    const m = window.__wangge.map;
    const r = m.getCanvas().getBoundingClientRect();
    const q = m.project(ll);
    return { x: r.left + q.x, y: r.top + q.y };
  }, lngLat);
  for (const k of modifiers) await page.keyboard.down(k);
  await page.mouse.click(p.x, p.y);
  for (const k of modifiers) await page.keyboard.up(k);
}

async function zoomTo(page, bbox, maxZoom = 17) {
  await page.evaluate(([b, z]) => window.__wangge.map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: 80, maxZoom: z, duration: 0 }), [bbox, maxZoom]);
  await idle(page);
}

// a point of grid `code` in view with no building or case near it
const spotIn = (page, code) => page.evaluate((c) => {
  const m = window.__wangge.map;
  const cv = m.getCanvas();
  for (let y = 10; y < cv.clientHeight; y += 8) for (let x = 10; x < cv.clientWidth; x += 8) {
    const f = m.queryRenderedFeatures([x, y], { layers: ['edited-fill', 'grid-fill'] })[0];
    if (f && f.properties.code === c && !m.queryRenderedFeatures([[x - 4, y - 4], [x + 4, y + 4]], { layers: ['buildings', 'incidents'].filter((l) => m.getLayer(l)) }).length) return m.unproject([x, y]).toArray();
  }
  return null;
}, code);

const screenOf = (page, ll) => page.evaluate((p) => {
  const m = window.__wangge.map;
  const r = m.getCanvas().getBoundingClientRect();
  const q = m.project(p);
  return { x: r.left + q.x, y: r.top + q.y };
}, ll);

const text = (page, id) => page.locator(`[data-testid="${id}"]`).first().innerText();
const digits = (s) => Number(String(s).replace(/[^\d]/g, ''));

// ---------------------------------------------------------------------------------------------
// 0. reports from residents (so that a leak of cases to the public would show)
const comm = (await rest('/collections/communities/items?limit=1', null)).data.features[0];
{
  const grids = (await rest('/collections/grids/items?limit=3', null)).data.features;
  const services = (await rest('/open311/v2/services.json', null)).data;
  for (const g of grids) {
    const ring = g.geometry.type === 'Polygon' ? g.geometry.coordinates[0] : g.geometry.coordinates[0][0];
    const [x, y] = ring.reduce(([a, b], c) => [a + c[0] / ring.length, b + c[1] / ring.length], [0, 0]);
    const body = new URLSearchParams({ service_code: services[0].service_code, lat: y, long: x, description: '路灯不亮', first_name: '张', phone: '13800000000' });
    const r = await fetch(`${BASE}/open311/v2/requests.json`, { method: 'POST', body });
    assert.equal(r.status, 201, 'an Open311 report is accepted');
  }
}

// 1. the public: the map in force; no household count and no incident anywhere
{
  const { ctx, page, errors, responses, drawnMs } = await open(null, 'public');
  report.public_grids_drawn_ms = drawnMs;
  const cmp = await drawnVsStore(page, null);
  log('public: drawn vs store', cmp);
  await shot(page, '01-public');
  // a click on a grid opens its panel
  const g = (await rest(`/collections/grids/items?limit=1&bbox=${(await page.evaluate(() => { const b = window.__wangge.map.getBounds(); return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()]; })).join(',')}`, null)).data.features[0];
  const gr = g.geometry.type === 'Polygon' ? g.geometry.coordinates[0] : g.geometry.coordinates[0][0];
  await zoomTo(page, [Math.min(...gr.map((c) => c[0])), Math.min(...gr.map((c) => c[1])), Math.max(...gr.map((c) => c[0])), Math.max(...gr.map((c) => c[1]))], 16);
  const inner = await page.evaluate((code) => {
    const m = window.__wangge.map;
    const c = m.getCanvas();
    for (let y = 10; y < c.clientHeight; y += 12) for (let x = 10; x < c.clientWidth; x += 12) {
      const f = m.queryRenderedFeatures([x, y], { layers: ['grid-fill'] })[0];
      if (f && f.properties.code === code && m.queryRenderedFeatures([x, y], { layers: ['buildings'] }).length === 0) return m.unproject([x, y]).toArray();
    }
    return null;
  }, g.properties.code);
  assert.ok(inner, `a point of grid ${g.properties.code} in view`);
  await clickAt(page, inner);
  await page.waitForSelector('[data-testid="grid-code"]');
  assert.equal(await text(page, 'grid-code'), g.properties.code, 'the public grid panel shows the clicked grid');
  assert.equal(await page.locator('[data-testid="grid-households"]').count(), 0, 'no household count in the public panel');
  await shot(page, '02-public-panel');
  await idle(page);
  // every response the page received, tiles decoded to their key tables, searched
  for (const r of responses) {
    const url = r.url();
    assert.ok(!/\/incidents|\/tiles\/(incidents|heat)/.test(url), `the public page asked for cases: ${url}`);
    if (r.status() !== 200) continue;
    let body;
    try { body = await r.body(); } catch { continue; }
    if ((r.headers()['content-encoding'] || '').includes('gzip') && body[0] === 0x1f) body = gunzipSync(body);
    const s = body.toString('latin1');
    if (url.includes('/app/app.js') || url.includes('/app/app.css')) continue; // our own code names the fields
    if (url.includes('/tiles/')) {
      // an MVT key table holds a key only when some feature carries it
      assert.ok(!s.includes('households') && !s.includes('weight'), `households in a public tile: ${url}`);
    } else if ((r.headers()['content-type'] || '').includes('json')) {
      const counts = [];
      const walk = (v) => {
        if (Array.isArray(v)) v.forEach(walk);
        else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) { if ((k === 'households' || k === 'weight') && typeof x === 'number') counts.push(k); walk(x); }
      };
      walk(JSON.parse(body.toString('utf8')));
      assert.deepEqual(counts, [], `household counts in a public response: ${url}`);
    }
    const u = body.toString('utf8');
    assert.ok(!u.includes('13800000000') && !u.includes('路灯不亮') && !s.includes('category'), `a case in a public response: ${url}`);
  }
  const pageText = await page.locator('body').innerText();
  assert.ok(!pageText.includes('13800000000') && !/户数/.test(await text(page, 'grid-panel')), 'no case and no household count in the public page');
  // the English switch: every label from the message table
  await page.click('[data-testid="lang"]');
  await page.waitForFunction(() => window.__wanggeReady === true && document.documentElement.lang === 'en');
  assert.ok((await page.locator('#legend').innerText()).includes('Legend'), 'English labels after the switch');
  assert.deepEqual(errors, [], 'public page: console errors');
  await ctx.close();
}

// 2. the planner on the draft
const PLANNER = env('WANGGE_PLANNER');
const { ctx, page, errors, responses, drawnMs } = await open(PLANNER, 'planner');
report.planner_grids_drawn_ms = drawnMs;
assert.equal(await page.evaluate(() => window.__wangge.plan?.id), DRAFT, 'the planner opens on the draft');
log('planner: drawn vs store', await drawnVsStore(page, PLANNER));
await shot(page, '03-planner-draft');

// a grid A with a neighbour B, and three buildings of A next to B that may move (dry runs)
const grids = (await rest(`/plans/${DRAFT}/grids`, PLANNER)).data.grids;
const asg = (await rest(`/plans/${DRAFT}/assignment`, PLANNER)).data.buildings;
async function findMove() {
  const byCode = new Map(grids.map((g) => [g.code, g]));
  const touch = (a, b) => a[0] <= b[2] && b[0] <= a[2] && a[1] <= b[3] && b[1] <= a[3];
  for (const A of grids.filter((g) => g.band === 'in' && g.buildings >= 8 && !g.locked)) {
    const feats = (await rest(`/collections/buildings/items?bbox=${A.bbox.join(',')}&limit=1000`, PLANNER)).data.features.filter((f) => asg[f.id] === A.code);
    const centre = (f) => { const r = f.geometry.type === 'Polygon' ? f.geometry.coordinates[0] : f.geometry.coordinates[0][0]; return r.reduce(([a, b], c) => [a + c[0] / r.length, b + c[1] / r.length], [0, 0]); };
    for (const B of grids.filter((g) => g.code !== A.code && g.community === A.community && touch(g.bbox, A.bbox) && byCode.get(g.code).band === 'in' && !g.locked)) {
      const bc = B.label;
      const near = feats.map((f) => [f, centre(f)]).sort((x, y) => Math.hypot(x[1][0] - bc[0], x[1][1] - bc[1]) - Math.hypot(y[1][0] - bc[0], y[1][1] - bc[1]));
      for (let i = 0; i + 3 <= Math.min(near.length, 9); i++) {
        const three = near.slice(i, i + 3);
        const r = await rest(`/plans/${DRAFT}/edits?dry_run=true`, PLANNER, { json: { op: 'move', buildings: three.map((x) => String(x[0].id)), to: B.code } });
        if (r.status === 200 && r.data.warnings.length === 0) return { A, B, three: three.map(([f, c]) => ({ id: String(f.id), centre: c, bbox: f.geometry })) };
      }
    }
  }
  throw new Error('no valid three-building move found');
}
const mv = await findMove();
log(`move: ${mv.three.map((b) => b.id).join(',')} from ${mv.A.code} to ${mv.B.code}`);

// open the edit tab, zoom to the buildings, click each
await page.click('[data-tab="edit"]');
const allPts = mv.three.map((b) => b.centre);
await zoomTo(page, [Math.min(...allPts.map((p) => p[0])) - 0.0008, Math.min(...allPts.map((p) => p[1])) - 0.0008, Math.max(...allPts.map((p) => p[0])) + 0.0008, Math.max(...allPts.map((p) => p[1])) + 0.0008], 18);
async function selectBuilding(b) {
  // a point of the footprint that the map itself finds in the building (its rendered shape)
  // (the pixel of the building farthest from any other feature's pixels: its middle)
  const pt = await page.evaluate((id) => {
    const m = window.__wangge.map;
    const c = m.getCanvas();
    const hits = [];
    for (let y = 3; y < c.clientHeight; y += 3) for (let x = 3; x < c.clientWidth; x += 3) {
      const fs = m.queryRenderedFeatures([x, y], { layers: ['buildings'] });
      if (fs.length === 1 && String(fs[0].id) === id) hits.push([x, y]);
    }
    if (!hits.length) return null;
    const set = new Set(hits.map(([x, y]) => `${x},${y}`));
    const depth = ([x, y]) => { let d = 0; while (d < 60 && set.has(`${x + 3 * d},${y}`) && set.has(`${x - 3 * d},${y}`) && set.has(`${x},${y + 3 * d}`) && set.has(`${x},${y - 3 * d}`)) d++; return d; };
    hits.sort((a, b) => depth(b) - depth(a));
    return m.unproject(hits[0]).toArray();
  }, b.id);
  assert.ok(pt, `building ${b.id} is drawn`);
  await clickAt(page, pt);
}
for (const b of mv.three) {
  await selectBuilding(b);
  log('selected', b.id, await page.evaluate(() => [...window.__wangge.selB]));
}
assert.deepEqual((await page.evaluate(() => [...window.__wangge.selB])).sort(), mv.three.map((b) => b.id).sort(), 'three buildings selected by click');
await page.selectOption('[data-testid="assign-target"]', mv.B.code);
await page.waitForSelector(`[data-testid="pending-grids"] li[data-code="${mv.B.code}"]`, { timeout: 20000 });
const pendingText = await page.locator(`[data-testid="pending-grids"] li[data-code="${mv.B.code}"]`).innerText();
const dry = (await rest(`/plans/${DRAFT}/edits?dry_run=true`, PLANNER, { json: { op: 'move', buildings: mv.three.map((b) => b.id), to: mv.B.code } })).data;
const dryB = dry.changed.features.find((f) => f.properties.code === mv.B.code).properties.households;
assert.ok(pendingText.replace(/,/g, '').includes(String(dryB)), `the pending figures include the selection: ${pendingText} vs ${dryB}`);
await shot(page, '04-selection-pending');

// assign; the API shows the change; the panel's figures equal the API's
await page.click('[data-testid="assign"]');
await page.waitForFunction((ids) => ids.every((id) => window.__wangge.assignment.get(id) !== undefined) && window.__wangge.selB.size === 0, mv.three.map((b) => b.id));
const after = (await rest(`/plans/${DRAFT}/assignment`, PLANNER)).data.buildings;
for (const b of mv.three) assert.equal(after[b.id], mv.B.code, `the API has building ${b.id} in ${mv.B.code}`);
const apiB = (await rest(`/plans/${DRAFT}/grids`, PLANNER)).data.grids.find((g) => g.code === mv.B.code);
await page.click('[data-tab="grids"]');
await page.locator(`#grid-table tr[data-code="${mv.B.code}"]`).click();
await page.waitForFunction((c) => document.querySelector('[data-testid="grid-code"]')?.textContent === c, mv.B.code);
assert.equal(digits(await text(page, 'grid-households')), apiB.households, 'the panel shows the API households');
assert.equal(digits(await text(page, 'grid-buildings')), apiB.buildings, 'the panel shows the API buildings');
await idle(page);
await shot(page, '05-assigned');

// undo (Ctrl+Z) restores
await page.locator('#map canvas').focus().catch(() => {});
await page.keyboard.press('Control+z');
await page.waitForFunction(([ids, a]) => ids.every((id) => window.__wangge.assignment.get(id) === a), [mv.three.map((b) => b.id), mv.A.code]);
const undone = (await rest(`/plans/${DRAFT}/assignment`, PLANNER)).data.buildings;
for (const b of mv.three) assert.equal(undone[b.id], mv.A.code, `undo: building ${b.id} back in ${mv.A.code}`);
await idle(page);
await shot(page, '06-undone');
// redo (Ctrl+Shift+Z)
await page.keyboard.press('Control+Shift+z');
await page.waitForFunction(([ids, b]) => ids.every((id) => window.__wangge.assignment.get(id) === b), [mv.three.map((b) => b.id), mv.B.code]);

// box selection: a rectangle around the three buildings selects them (and their neighbours)
await page.click('[data-tab="edit"]');
{
  const box = await page.evaluate((pts) => {
    const m = window.__wangge.map;
    const r = m.getCanvas().getBoundingClientRect();
    const ps = pts.map((p) => m.project(p));
    const xs = ps.map((p) => p.x);
    const ys = ps.map((p) => p.y);
    return { x0: r.left + Math.min(...xs) - 25, y0: r.top + Math.min(...ys) - 25, x1: r.left + Math.max(...xs) + 25, y1: r.top + Math.max(...ys) + 25 };
  }, allPts);
  await page.click('[data-tool="box"]');
  await page.mouse.move(box.x0, box.y0);
  await page.mouse.down();
  await page.mouse.move((box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2, { steps: 4 });
  await page.mouse.move(box.x1, box.y1, { steps: 4 });
  await page.mouse.up();
  const sel = await page.evaluate(() => [...window.__wangge.selB]);
  for (const b of mv.three) assert.ok(sel.includes(b.id), `box selection holds ${b.id}: ${sel}`);
  await shot(page, '06b-box-selection');
  await page.click('[data-testid="clear"]');
  await page.click('[data-tool="click"]');
}

// the brush: one stroke over the three buildings selects them
{
  const pts = [];
  for (const b of mv.three) pts.push(await screenOf(page, b.centre));
  await page.click('[data-tool="brush"]');
  await page.mouse.move(pts[0].x, pts[0].y);
  await page.mouse.down();
  for (const p of pts.slice(1)) await page.mouse.move(p.x, p.y, { steps: 12 });
  await page.mouse.up();
  const sel = await page.evaluate(() => [...window.__wangge.selB]);
  for (const b of mv.three) assert.ok(sel.includes(b.id), `the brush selects ${b.id}: ${sel}`);
  await page.click('[data-testid="clear"]');
}

// drag a shared boundary: from A into B over a building of B → that building pending for A
{
  await zoomTo(page, [Math.min(...allPts.map((p) => p[0])) - 0.0015, Math.min(...allPts.map((p) => p[1])) - 0.0015, Math.max(...allPts.map((p) => p[0])) + 0.0015, Math.max(...allPts.map((p) => p[1])) + 0.0015], 18);
  const start = await spotIn(page, mv.A.code);
  assert.ok(start, `a spot of ${mv.A.code}`);
  const a = await screenOf(page, start);
  const b = await screenOf(page, mv.three[0].centre);
  await page.click('[data-tool="drag"]');
  await page.mouse.move(a.x, a.y);
  await page.mouse.down();
  await page.mouse.move(b.x, b.y, { steps: 20 });
  await page.mouse.up();
  await page.waitForSelector(`[data-testid="pending-grids"] li[data-code="${mv.A.code}"]`, { timeout: 20000 });
  const sel = await page.evaluate(() => [...window.__wangge.selB]);
  assert.ok(sel.includes(mv.three[0].id), `the drag takes ${mv.three[0].id} into ${mv.A.code}: ${sel}`);
  assert.equal(await page.inputValue('[data-testid="assign-target"]'), mv.A.code, 'the drag origin gains');
  await shot(page, '06c-drag-boundary');
  await page.click('[data-testid="clear"]');
  await page.click('[data-tool="click"]');
}

// timed edits: one building back and forth, click → result on the map and in the panel
const times = [];
const answered = [];
const settled = [];
const one = mv.three[0];
for (let i = 0; i < EDITS; i++) {
  const to = i % 2 === 0 ? mv.A.code : mv.B.code;
  await selectBuilding(one);
  await page.selectOption('[data-testid="assign-target"]', to);
  await page.waitForSelector(`[data-testid="pending-grids"] li[data-code="${to}"]`, { timeout: 20000 });
  const sent = responses.length;
  await page.click('[data-testid="assign"]');
  // first the edit's answer applied to the page, then its first frame and the map idle; a wait
  // that runs out says which of them did not come and what the page showed
  await waitOr(page, ([id, t]) => window.__wangge.assignment.get(id) === t, [one.id, to], `edit ${i}: ${one.id} in ${to} after the answer`, () => responses.slice(sent));
  await waitOr(page, () => window.__wangge.timing?.visible !== undefined, null, `edit ${i}: the map drawn after the answer`, () => responses.slice(sent));
  // the map at rest after it (every tile and source loaded): measured, and when it does not come
  // within 30 s the map's state goes into the report; the map is compared with the store below
  const rest30 = await page.waitForFunction(() => window.__wangge.timing?.settled !== undefined, null, { timeout: 30000 }).then(() => true, () => false);
  if (!rest30) {
    const st = await mapState(page);
    report.unsettled.push({ edit: i, ...st });
    log(`edit ${i}: the map not at rest 30 s after the answer`, st);
  }
  const tm = await page.evaluate(() => window.__wangge.timing);
  times.push(tm.visible);
  answered.push(tm.answered);
  if (tm.settled !== undefined) settled.push(tm.settled);
}
// after the edits the map draws the store's grids (the draft with every edit)
log('planner after edits: drawn vs store', await drawnVsStore(page, PLANNER));
times.sort((a, b) => a - b);
report.edit_visible_ms = { median: times[Math.floor(times.length / 2)], p90: times[Math.floor(times.length * 0.9)], min: times[0], max: times.at(-1), n: times.length };
answered.sort((a, b) => a - b);
report.edit_answered_ms = { median: answered[Math.floor(answered.length / 2)], n: answered.length };
settled.sort((a, b) => a - b);
report.edit_settled_ms = { median: settled[Math.floor(settled.length / 2)], n: settled.length };
log('click → edit visible (ms):', report.edit_visible_ms, 'answered and applied:', report.edit_answered_ms, 'map idle:', report.edit_settled_ms);
await shot(page, '07-after-edits');
{
  // the edit's message in the page's language: the operation, what moved, the grids
  const last = (EDITS - 1) % 2 === 0 ? mv.A.code : mv.B.code;
  const msg = await page.evaluate(() => document.getElementById('toast').textContent);
  assert.match(msg, /^已完成：划入 · 迁移 \d+ 栋 [\d,]+ 户 · 网格 /, `the edit's message in Chinese: ${msg}`);
  assert.ok(msg.includes(last), `the message names ${last}: ${msg}`);
}

// split a grid (balanced) from a map selection, then undo: the grid count follows the API
{
  const before = (await rest(`/plans/${DRAFT}/grids`, PLANNER)).data.grids.length;
  await zoomTo(page, mv.A.bbox, 17);
  const spot = await page.evaluate((code) => {
    const m = window.__wangge.map;
    const c = m.getCanvas();
    for (let y = 10; y < c.clientHeight; y += 8) for (let x = 10; x < c.clientWidth; x += 8) {
      const f = m.queryRenderedFeatures([x, y], { layers: ['edited-fill', 'grid-fill'] })[0];
      if (f && f.properties.code === code && !m.queryRenderedFeatures([[x - 4, y - 4], [x + 4, y + 4]], { layers: ['buildings', 'incidents'].filter((l) => m.getLayer(l)) }).length) return m.unproject([x, y]).toArray();
    }
    return null;
  }, mv.A.code);
  assert.ok(spot, `a spot of grid ${mv.A.code} without buildings`);
  await clickAt(page, spot);
  await page.waitForFunction((c) => window.__wangge.selG.has(c), mv.A.code);
  await page.fill('[data-testid="reason"]', 'e2e: split and undo');
  await page.click('[data-testid="split"]');
  await page.waitForFunction((n) => window.__wangge.grids.size === n + 1, before, { timeout: 30000 });
  assert.equal((await rest(`/plans/${DRAFT}/grids`, PLANNER)).data.grids.length, before + 1, 'the API has one grid more');
  await idle(page);
  await shot(page, '07b-split');
  await page.click('[data-testid="undo"]');
  await page.waitForFunction((n) => window.__wangge.grids.size === n, before, { timeout: 30000 });
  assert.equal((await rest(`/plans/${DRAFT}/grids`, PLANNER)).data.grids.length, before, 'undo: the split is gone');
}

// compare with the plan in force: the moved buildings listed with households
await page.click('[data-tab="compare"]');
await page.selectOption('[data-testid="against"]', String(IN_FORCE));
await page.click('[data-testid="diff"]');
await page.waitForSelector('[data-testid="moved-buildings"]');
const listed = await page.locator('[data-testid="moved-buildings"] tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.building));
for (const b of mv.three) assert.ok(listed.includes(b.id), `compare lists moved building ${b.id}`);
const apiDiff = (await rest(`/plans/${IN_FORCE}/diff/${DRAFT}`, PLANNER)).data;
assert.equal(listed.length, apiDiff.moved.length, 'compare lists every moved building');
await idle(page);
await shot(page, '08-compare');

// the plan's check: hard rules hold after the edits
await page.click('[data-testid="check"]');
await page.waitForSelector('[data-testid="check-ok"]');
const apiCheck = (await rest(`/plans/${DRAFT}/check`, PLANNER)).data;
assert.equal(apiCheck.ok, true, 'the API check holds');
assert.ok((await text(page, 'check-ok')).length > 0);

// a stale publish: someone else edits meanwhile → the conflict, with who
const other = env('WANGGE_PLANNER2');
const cur = await rest(`/plans/${DRAFT}`, other);
const lockR = await rest(`/plans/${DRAFT}/edits`, other, { json: { op: 'lock', grids: [mv.A.code] }, headers: { 'If-Match': cur.etag } });
assert.equal(lockR.status, 200, 'the other planner edits');
const tomorrow = new Date(Date.now() + 86400000).toISOString().slice(0, 10);
await page.fill('[data-testid="effective"]', tomorrow);
await page.click('[data-testid="publish"]');
await page.waitForSelector('[data-testid="conflict"]:not([hidden])');
const conflict = await text(page, 'conflict');
assert.ok(conflict.includes('planner2'), `the conflict names who changed the plan: ${conflict}`);
await shot(page, '09-conflict');
await page.click('[data-testid="reload"]');
await page.waitForFunction((v) => window.__wangge.plan?.version === v, cur.data.plan.version + 1);
await page.click('[data-tab="compare"]');
await page.fill('[data-testid="effective"]', tomorrow);
// every grid out of band needs a reason: without one the server refuses, naming the grid
const outOfBand = (await rest(`/plans/${DRAFT}/grids`, PLANNER)).data.grids.filter((g) => g.band === 'under' || g.band === 'over');
assert.ok(outOfBand.length >= 1, 'the draft has a grid out of band to explain');
const refused = await rest(`/plans/${DRAFT}/publish`, PLANNER, { json: { valid_from: tomorrow }, headers: { 'If-Match': (await rest(`/plans/${DRAFT}`, PLANNER)).etag } });
assert.equal(refused.status, 422, 'publishing without reasons is refused');
assert.ok(JSON.stringify(refused.data).includes(outOfBand[0].code), 'the refusal names the grid');
await page.waitForSelector('[data-testid="register"]');
for (const g of outOfBand) await page.fill(`[data-testid="exception-${g.code}"]`, `${g.code}：学校与商业用地为主，户数少`);
await shot(page, '09b-register');
await page.click('[data-testid="publish"]');
await page.waitForFunction((id) => window.__wangge.plans.find((p) => p.id === id)?.status === 'published', DRAFT, { timeout: 30000 });
const register = (await rest(`/plans/${DRAFT}/exceptions`, PLANNER)).data.exceptions;
assert.deepEqual(register.filter((e) => e.band !== 'oversize').map((e) => e.grid), outOfBand.map((g) => g.code).sort(), 'the register holds every grid out of band');
assert.ok(register.every((e) => e.reason.length > 0 && e.who), 'each with its reason and who');
assert.equal((await rest(`/plans/${DRAFT}`, PLANNER)).data.plan.status, 'published', 'the API has the draft published');
await idle(page);
await shot(page, '10-published');
assert.deepEqual(errors, [], 'planner page: console errors');
await ctx.close();

// 3. the dispatcher sees cases; the admin assigns a grid worker shown to the public
{
  const { ctx: c2, page: p2, errors: e2 } = await open(env('WANGGE_DISPATCHER'), 'dispatcher');
  await p2.click('[data-tab="incidents"]');
  await p2.waitForSelector('[data-testid="case-count"]');
  assert.ok(digits(await text(p2, 'case-count')) >= 3, 'the dispatcher sees the reports');
  // the reports as points on the map from z14; a click opens the case
  const rep = (await rest('/incidents?limit=1', env('WANGGE_DISPATCHER'))).data.incidents[0];
  await zoomTo(p2, [rep.lon - 0.001, rep.lat - 0.001, rep.lon + 0.001, rep.lat + 0.001], 16);
  const drawnCases = await p2.evaluate(() => window.__wangge.map.queryRenderedFeatures({ layers: ['incidents'] }).length);
  assert.ok(drawnCases >= 1, 'the dispatcher sees the reports as points');
  await clickAt(p2, [rep.lon, rep.lat]);
  await p2.waitForSelector('[data-testid="case-state"]');
  await shot(p2, '11-dispatcher-case');
  assert.deepEqual(e2, [], 'dispatcher page: console errors');
  await c2.close();

  const { ctx: c3, page: p3, errors: e3 } = await open(env('WANGGE_ADMIN'), 'admin');
  await p3.selectOption('[data-testid="plan-select"]', '');
  await p3.waitForFunction(() => window.__wangge.plan === null);
  const code = mv.B.code;
  const g = (await rest(`/collections/grids/items/${code}`, null)).data;
  const ring = g.geometry.type === 'Polygon' ? g.geometry.coordinates[0] : g.geometry.coordinates[0][0];
  await zoomTo(p3, [Math.min(...ring.map((c) => c[0])), Math.min(...ring.map((c) => c[1])), Math.max(...ring.map((c) => c[0])), Math.max(...ring.map((c) => c[1]))], 16);
  await p3.locator('[data-testid="search"]').fill(code);
  await p3.locator('[data-testid="search"]').press('Enter');
  await p3.waitForFunction((c) => document.querySelector('[data-testid="grid-code"]')?.textContent === c, code);
  await p3.fill('[data-testid="worker-name"]', '王网格');
  await p3.fill('[data-testid="worker-phone"]', '010-12345');
  await p3.setInputFiles('[data-testid="worker-photo-file"]', 'doc/map.png');
  await p3.click('[data-testid="worker-save"]');
  await p3.waitForFunction(() => document.querySelector('[data-testid="grid-worker"]')?.textContent === '王网格');
  await p3.waitForFunction(() => document.querySelector('[data-testid="worker-photo"]')?.naturalWidth > 0, null, { timeout: 20000 });
  await shot(p3, '12-admin-worker');
  // the print buttons: the signboard (a link anyone may follow) and the community's atlas
  const href = await p3.getAttribute('[data-testid="print-signboard"]', 'href');
  const sign = await fetch(`${BASE}${href}`);
  assert.equal(sign.headers.get('content-type'), 'application/pdf', 'the signboard is a PDF');
  assert.equal(Buffer.from(await sign.arrayBuffer()).subarray(0, 5).toString(), '%PDF-', 'the signboard is a PDF');
  const [dl] = await Promise.all([p3.waitForEvent('download', { timeout: 90000 }), p3.click('[data-testid="print-atlas"]')]);
  const atlas = fs.readFileSync(await dl.path());
  assert.equal(atlas.subarray(0, 5).toString(), '%PDF-', 'the atlas downloads as a PDF');
  log(`print: signboard link ${href}, atlas ${dl.suggestedFilename()} ${atlas.length} bytes`);
  assert.deepEqual(e3, [], 'admin page: console errors');
  await c3.close();
  const pub = (await rest(`/collections/grids/items/${code}`, null)).data.properties;
  assert.equal(pub.worker_name, '王网格', 'the public sees the worker');
  assert.equal(pub.worker_phone, '010-12345', 'the public sees the public phone');
  // a signboard's QR code: /?grid=CODE opens the map on the grid, with the worker's photo
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 }, locale: 'zh-CN' });
  const page = await ctx.newPage();
  const errs = [];
  page.on('pageerror', (e) => errs.push(e.message));
  await page.goto(`${BASE}/?grid=${encodeURIComponent(code)}`);
  await page.waitForFunction((c) => document.querySelector('[data-testid="grid-code"]')?.textContent === c, code, { timeout: 60000 });
  await page.waitForFunction(() => document.querySelector('[data-testid="worker-photo"]')?.naturalWidth > 0, null, { timeout: 20000 });
  await idle(page);
  await shot(page, '13-qr-link');
  assert.deepEqual(errs, [], 'the QR link page: errors');
  await ctx.close();
}

// 4. a page on another origin (localhost vs 127.0.0.1) reads TileJSON, tiles and items, with a
//    token (a preflight): CORS
{
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const other = BASE.replace('127.0.0.1', 'localhost');
  await page.goto(`${other}/health`);
  const got = await page.evaluate(async ([base, tok]) => {
    const tj = await fetch(`${base}/tiles/grids.json`).then((r) => r.json());
    const tile = await fetch(tj.tiles[0].replace('{z}', '14').replace('{x}', '4825').replace('{y}', '6157'), { headers: { Authorization: `Bearer ${tok}` } });
    const items = await fetch(`${base}/collections/grids/items?limit=2`).then((r) => r.json());
    return { tj: tj.tilejson, tile: tile.status, items: items.features.length };
  }, [BASE, PLANNER]);
  assert.deepEqual(got, { tj: '3.0.0', tile: got.tile === 204 ? 204 : 200, items: 2 }, 'another origin reads the service');
  log('another origin:', got);
  await ctx.close();
}

// 5. what the page costs: JS + CSS as transferred (gzip)
{
  const r = await fetch(`${BASE}/app/app.js`, { headers: { 'Accept-Encoding': 'gzip' } });
  const js = (await r.arrayBuffer()).byteLength;
  const c = await fetch(`${BASE}/app/app.css`, { headers: { 'Accept-Encoding': 'gzip' } });
  const css = (await c.arrayBuffer()).byteLength;
  // fetch decompresses; measure the compressed size from Content-Length
  report.transfer = { js_gzip: Number(r.headers.get('content-length')) || js, css_gzip: Number(c.headers.get('content-length')) || css };
  report.transfer.total_kb = Math.round((report.transfer.js_gzip + report.transfer.css_gzip) / 1024);
  log('transfer (gzip):', report.transfer);
}

await browser.close();
writeFileSync(`${OUT}/report.json`, JSON.stringify(report, null, 2));
log('all checks passed');
