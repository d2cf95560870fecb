// Edit (planners, on a draft): select buildings by click, box or lasso, grids by click; assign,
// merge, split (balanced or along a drawn line), lock/unlock, re-solve, new grid; live figures
// from the server's dry run including the pending selection; undo/redo (Ctrl+Z, Ctrl+Shift+Z).
// The server is authoritative: every change is an edit with If-Match, and the page shows what
// the answer says.
import { S, el, fmt, toast, emit, on } from './state.js';
import { t } from './i18n.js';
import { api, ApiError } from './api.js';
import { paintBuildings, refreshOverlay, refreshLabels, refreshFilters, drawShape, zoomTo, colourGrids } from './map.js';
import { showGrid, renderTable, current } from './panel.js';
import { toWgs84, mapCoords } from './crs.js';
import { showConflict } from './compare.js';

let pending = null; // last dry run: {op, result} or {op, error}
let dryTimer = null;
let drySeq = 0;

export const editable = () => S.plan && S.plan.status === 'draft' && S.session.may.edit_plans;

const unshift = (ll) => (S.gcj02 ? toWgs84(ll) : ll);

// ---- selection -------------------------------------------------------------------------

function setSelection(ids, add) {
  const before = [...S.selB];
  if (!add) S.selB.clear();
  for (const id of ids) {
    if (add && S.selB.has(id) && ids.length === 1) S.selB.delete(id);
    else S.selB.add(id);
  }
  paintBuildings(new Set([...before, ...ids]));
  selectionChanged();
}

export function clearSelection() {
  const before = [...S.selB];
  S.selB.clear();
  S.selG.clear();
  S.line = null;
  drawShape(null);
  paintBuildings(before);
  refreshFilters();
  selectionChanged();
}

// add without toggling (brush strokes pass over the same building many times)
function addSelection(ids) {
  const fresh = ids.filter((id) => !S.selB.has(id));
  if (!fresh.length) return;
  for (const id of fresh) S.selB.add(id);
  paintBuildings(fresh);
  selectionChanged();
}

function toggleGrid(code, add) {
  if (!add) S.selG.clear();
  if (S.selG.has(code) && add) S.selG.delete(code);
  else S.selG.add(code);
  refreshFilters();
  selectionChanged();
}

function selectionChanged() {
  const info = document.getElementById('selection');
  if (info) info.textContent = t('selected', { b: S.selB.size, g: S.selG.size });
  fillTargets();
  scheduleDryRun();
  renderButtons();
}

const buildingsAt = (box) => S.map.queryRenderedFeatures(box, { layers: ['buildings'] });
const gridAt = (p) => S.map.queryRenderedFeatures(p, { layers: ['edited-fill', 'grid-fill'] })[0];

// a building's screen point: the mean of its outer ring's vertices
function screenCentre(f) {
  const ring = f.geometry.type === 'Polygon' ? f.geometry.coordinates[0] : f.geometry.coordinates[0][0];
  let x = 0;
  let y = 0;
  for (const c of ring) {
    const p = S.map.project(c);
    x += p.x;
    y += p.y;
  }
  return [x / ring.length, y / ring.length];
}

function inside([x, y], poly) {
  let c = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i];
    const [xj, yj] = poly[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) c = !c;
  }
  return c;
}

const ids = (feats) => [...new Set(feats.map((f) => String(f.id ?? f.properties.id)))];

// the brush: buildings within 12 px of the cursor
const BRUSH = 12;
const buildingsNear = (p) => buildingsAt([[p.x - BRUSH, p.y - BRUSH], [p.x + BRUSH, p.y + BRUSH]]);

// drag a shared boundary: from grid A across into grid B, A gains B's buildings under the
// stroke (the drag's direction decides who gains); shown as a pending change to assign
function dragBoundary(d, e) {
  const to = gridAt(e.point)?.properties.code;
  const from = d.from;
  if (!editable() || !from || !to || from === to) return;
  const swept = new Set();
  for (const [x, y] of d.pts) for (const id of ids(buildingsNear({ x, y }))) if (S.assignment.get(id) === to) swept.add(id);
  if (!swept.size) return;
  const before = [...S.selB];
  S.selB = new Set(swept);
  paintBuildings(new Set([...before, ...swept]));
  S.selG = new Set([from]);
  refreshFilters();
  selectionChanged();
  const sel = document.getElementById('assign-target');
  sel.value = from;
  renderButtons();
  scheduleDryRun();
}

// ---- map tools ---------------------------------------------------------------------------

export function installTools(map) {
  let drag = null; // {start:[x,y], pts:[[x,y]]}
  const canvas = map.getCanvasContainer();
  map.on('click', (e) => {
    if (S.tool === 'line') {
      S.line = [...(S.line || []), [e.lngLat.lng, e.lngLat.lat]];
      drawShape({ type: 'LineString', coordinates: S.line });
      selectionChanged();
      return;
    }
    if (S.tool !== 'click') return;
    const add = e.originalEvent.shiftKey || e.originalEvent.ctrlKey || e.originalEvent.metaKey;
    const b = map.getLayer('buildings') && map.getZoom() >= 14 ? buildingsAt(e.point)[0] : null;
    if (b && editable()) {
      setSelection(ids([b]), true);
      const code = S.assignment.get(String(b.id));
      if (code) showGrid(code);
      return;
    }
    const g = gridAt(e.point);
    if (g) {
      showGrid(g.properties.code, g.properties);
      if (editable()) toggleGrid(g.properties.code, add);
    }
  });
  map.on('mousedown', (e) => {
    if (!['box', 'lasso', 'brush', 'drag'].includes(S.tool)) return;
    e.preventDefault();
    map.dragPan.disable();
    drag = { start: [e.point.x, e.point.y], pts: [[e.point.x, e.point.y]], lngs: [[e.lngLat.lng, e.lngLat.lat]] };
    if (S.tool === 'brush' && editable()) addSelection(ids(buildingsNear(e.point)));
    if (S.tool === 'drag') drag.from = gridAt(e.point)?.properties.code;
  });
  map.on('mousemove', (e) => {
    if (!drag) return;
    drag.pts.push([e.point.x, e.point.y]);
    drag.lngs.push([e.lngLat.lng, e.lngLat.lat]);
    if (S.tool === 'brush') {
      if (editable()) addSelection(ids(buildingsNear(e.point)));
    } else if (S.tool === 'drag') {
      drawShape({ type: 'LineString', coordinates: drag.lngs });
    } else if (S.tool === 'box') {
      const a = map.unproject(drag.start);
      const b = e.lngLat;
      drawShape({ type: 'LineString', coordinates: [[a.lng, a.lat], [b.lng, a.lat], [b.lng, b.lat], [a.lng, b.lat], [a.lng, a.lat]] });
    } else {
      drawShape({ type: 'LineString', coordinates: [...drag.lngs, drag.lngs[0]] });
    }
  });
  const finish = (e) => {
    if (!drag) return;
    const d = drag;
    drag = null;
    map.dragPan.enable();
    drawShape(null);
    if (S.tool === 'brush') return;
    if (S.tool === 'drag') return dragBoundary(d, e);
    const end = [e.point.x, e.point.y];
    const x0 = Math.min(d.start[0], end[0]);
    const y0 = Math.min(d.start[1], end[1]);
    const x1 = Math.max(d.start[0], end[0]);
    const y1 = Math.max(d.start[1], end[1]);
    let feats;
    if (S.tool === 'box') {
      feats = buildingsAt([[x0, y0], [x1, y1]]);
    } else {
      const xs = d.pts.map((p) => p[0]);
      const ys = d.pts.map((p) => p[1]);
      feats = buildingsAt([[Math.min(...xs), Math.min(...ys)], [Math.max(...xs), Math.max(...ys)]]).filter((f) => inside(screenCentre(f), d.pts));
    }
    if (!editable()) return;
    setSelection(ids(feats), true);
  };
  map.on('mouseup', finish);
  canvas.addEventListener('mouseleave', () => {
    if (drag) {
      drag = null;
      map.dragPan.enable();
      drawShape(null);
    }
  });
  map.on('dblclick', (e) => {
    if (S.tool === 'line') e.preventDefault();
  });
  document.addEventListener('keydown', (e) => {
    if (e.target.matches('input, textarea, select')) return;
    const k = e.key.toLowerCase();
    if ((e.ctrlKey || e.metaKey) && k === 'z') {
      e.preventDefault();
      undoRedo(e.shiftKey ? 'redo' : 'undo');
    } else if ((e.ctrlKey || e.metaKey) && k === 'y') {
      e.preventDefault();
      undoRedo('redo');
    } else if (k === 'escape') {
      clearSelection();
    }
  });
  on('select-building', (id) => editable() && setSelection([id], true));
}

// ---- the edit panel ------------------------------------------------------------------------

// grids of the selected buildings' community (or of the selected grid), nearest code first
function fillTargets() {
  const sel = document.getElementById('assign-target');
  if (!sel) return;
  const prev = sel.value;
  const from = new Set([...S.selB].map((b) => S.assignment.get(b)).filter(Boolean));
  const comm = new Set([...from, ...S.selG].map((c) => S.grids.get(c)?.community).filter(Boolean));
  const options = [...S.grids.values()].filter((g) => comm.has(g.community) && !S.removed.has(g.code) && !from.has(g.code));
  sel.replaceChildren(el('option', { value: '' }, '—'), ...options.map((g) => el('option', { value: g.code }, `${g.code} ${g.name || ''}`)));
  const pick = [...S.selG].find((c) => !from.has(c)) || (options.some((o) => o.code === prev) ? prev : '');
  sel.value = pick;
}

function selectedOp(kind) {
  const grids = [...S.selG];
  const buildings = [...S.selB];
  switch (kind) {
    case 'assign': {
      const to = document.getElementById('assign-target').value;
      return buildings.length && to ? { op: 'move', buildings, to } : null;
    }
    case 'merge':
      return grids.length >= 2 ? { op: 'merge', grids } : null;
    case 'split': {
      if (grids.length !== 1) return null;
      const op = { op: 'split', grid: grids[0] };
      if (S.line && S.line.length >= 2) op.line = { type: 'LineString', coordinates: S.line.map(unshift) };
      return op;
    }
    case 'lock':
      return grids.length ? { op: 'lock', grids } : null;
    case 'unlock':
      return grids.length ? { op: 'unlock', grids } : null;
    case 'resolve':
      return grids.length ? { op: 'resolve', grids } : null;
    case 'new_grid':
      return buildings.length ? { op: 'new_grid', buildings } : null;
    default:
      return null;
  }
}

const OPS = ['assign', 'merge', 'split', 'lock', 'unlock', 'resolve', 'new_grid'];

function renderButtons() {
  for (const k of OPS) {
    const b = document.querySelector(`[data-testid="${k === 'new_grid' ? 'new-grid' : k}"]`);
    if (b) b.disabled = !editable() || !selectedOp(k);
  }
  const u = document.querySelector('[data-testid="undo"]');
  const r = document.querySelector('[data-testid="redo"]');
  if (u) u.disabled = !editable();
  if (r) r.disabled = !editable();
  const note = document.getElementById('edit-note');
  if (note) note.textContent = !S.session.may.edit_plans ? t('planner_only') : !editable() ? t('draft_only') : '';
  const copy = document.querySelector('[data-testid="copy-draft"]');
  if (copy) copy.hidden = !(S.session.may.edit_plans && S.plan && S.plan.status !== 'draft');
}

export function renderEditPanel() {
  const box = document.getElementById('edit-panel');
  box.replaceChildren(
    el('p', { id: 'edit-note', class: 'muted' }),
    el('button', { testid: 'copy-draft', hidden: true, onclick: copyToDraft }, t('copy_draft')),
    el('div', { class: 'tools', testid: 'select-tool' },
      ...['click', 'brush', 'box', 'lasso', 'line', 'drag'].map((k) => el('button', {
        class: S.tool === k ? 'on' : '',
        'data-tool': k,
        onclick: () => setTool(k),
      }, t(`tool_${k}`)))),
    el('p', { id: 'selection', testid: 'selection' }, t('selected', { b: S.selB.size, g: S.selG.size })),
    el('label', {}, t('assign_to'), ' ', el('select', { id: 'assign-target', testid: 'assign-target', onchange: () => { renderButtons(); scheduleDryRun(); } })),
    el('div', { class: 'ops' },
      ...OPS.map((k) => el('button', { testid: k === 'new_grid' ? 'new-grid' : k, onclick: () => apply(k) }, t(k))),
      el('button', { testid: 'clear', onclick: clearSelection }, t('clear'))),
    el('div', { class: 'ops' },
      el('button', { testid: 'undo', title: 'Ctrl+Z', onclick: () => undoRedo('undo') }, '↶ ', t('undo')),
      el('button', { testid: 'redo', title: 'Ctrl+Shift+Z', onclick: () => undoRedo('redo') }, '↷ ', t('redo'))),
    el('input', { id: 'reason', testid: 'reason', placeholder: t('reason') }),
    el('div', { id: 'pending', testid: 'pending' }),
  );
  fillTargets();
  renderButtons();
}

function setTool(k) {
  S.tool = k;
  if (k !== 'line') {
    S.line = null;
    drawShape(null);
  }
  for (const b of document.querySelectorAll('[data-tool]')) b.classList.toggle('on', b.dataset.tool === k);
  S.map.getCanvas().style.cursor = k === 'click' ? '' : 'crosshair';
  selectionChanged();
}

// ---- dry runs: live figures including the pending selection -------------------------------

function scheduleDryRun() {
  clearTimeout(dryTimer);
  const op = editable() ? selectedOp('assign') : null;
  if (!op) {
    pending = null;
    renderPending();
    refreshOverlay();
    return;
  }
  dryTimer = setTimeout(() => dryRun(op), 120);
}

async function dryRun(op) {
  const seq = ++drySeq;
  try {
    const { data } = await api(`/plans/${S.plan.id}/edits?dry_run=true`, { body: op });
    if (seq !== drySeq) return;
    pending = { op, result: data };
    refreshOverlay(data.changed.features);
  } catch (e) {
    if (seq !== drySeq) return;
    pending = { op, error: e };
    refreshOverlay();
  }
  renderPending();
}

const codeIn = (msg) => (String(msg).match(/\b\d{3}-\d{3}\b|\b\d{12,15}\b/) || [])[0];

function warningItem(msg) {
  const code = codeIn(msg);
  return el('li', { class: 'warning', testid: 'warning' }, msg, ' ', code ? el('button', { class: 'link', onclick: () => { zoomTo(S.grids.get(code)?.bbox); showGrid(code); } }, t('jump')) : null);
}

function renderPending() {
  const box = document.getElementById('pending');
  if (!box) return;
  box.replaceChildren();
  if (!pending) return;
  box.append(el('h4', {}, t('pending')));
  if (pending.error) {
    box.append(el('ul', {}, warningItem(pending.error.message)));
    return;
  }
  const r = pending.result;
  const rows = r.changed.features.map((f) => {
    const p = f.properties;
    const before = S.grids.get(p.code)?.households;
    return el('li', { 'data-code': p.code, class: `band-${p.band}` }, t('before_after', { code: p.code, a: fmt(before), b: fmt(p.households) }), ' ', el('span', { class: 'chip' }, t(p.band)));
  });
  box.append(el('ul', { testid: 'pending-grids' }, rows), el('p', {}, t('moved', { n: r.moved.length, h: fmt(r.households_moved) })));
  if (r.warnings.length) box.append(el('ul', {}, r.warnings.map(warningItem)));
}

// ---- edits --------------------------------------------------------------------------------

async function apply(kind) {
  const op = selectedOp(kind);
  if (!op || !editable()) return;
  const reason = document.getElementById('reason').value.trim();
  // exceptions need a reason: an edit whose dry run leaves a grid out of band (assign has its
  // dry run already; the others are tried first)
  if (!reason && !['lock', 'unlock'].includes(kind)) {
    if (kind !== 'assign') {
      try {
        const { data } = await api(`/plans/${S.plan.id}/edits?dry_run=true`, { body: op });
        pending = { op, result: data };
      } catch (e) {
        pending = { op, error: e };
      }
      renderPending();
    }
    if (pending?.error) return toast(t('refused', { m: pending.error.message }), 'error');
    if (pending?.result?.warnings.length) {
      toast(t('reason_needed'), 'error');
      document.getElementById('reason').focus();
      return;
    }
  }
  await send(`/plans/${S.plan.id}/edits`, { ...op, ...(reason ? { reason } : {}) });
}

export async function undoRedo(which) {
  if (!editable()) return;
  await send(`/plans/${S.plan.id}/${which}`, {});
}

async function send(path, body) {
  const t0 = performance.now();
  // click → the result drawn on the map and in the panel (read by the browser test)
  S.timing = { start: t0 };
  try {
    const { data, etag } = await api(path, { body, ifMatch: S.etag });
    if (body.op === 'lock' || body.op === 'unlock') {
      for (const c of body.grids) if (S.grids.has(c)) S.grids.get(c).locked = body.op === 'lock';
    }
    applyOutcome(data, etag);
    document.getElementById('reason').value = '';
    S.timing.answered = performance.now() - t0;
    // visible: the first frame drawn after the overlay's new data is in; settled: map idle
    const timing = S.timing;
    const m = S.map;
    const onData = (e) => {
      if (e.sourceId !== 'edited' || !e.isSourceLoaded) return;
      m.off('sourcedata', onData);
      m.once('render', () => (timing.visible = performance.now() - t0));
      m.triggerRepaint();
    };
    m.on('sourcedata', onData);
    // settled: every source and tile loaded and the camera still — on the map's idle event, or
    // seen by a light poll when the event does not come (a frame that keeps asking for another)
    const settle = () => {
      if (timing.settled !== undefined || S.timing !== timing) return true;
      if (timing.visible === undefined || !m.loaded() || !m.areTilesLoaded() || m.isMoving()) return false;
      timing.settled = performance.now() - t0;
      return true;
    };
    m.once('idle', () => {
      if (timing.settled === undefined) timing.settled = performance.now() - t0;
    });
    let polls = 0;
    const poll = setInterval(() => (settle() || ++polls > 600) && clearInterval(poll), 100);
    toast(t('done', { s: summaryOf(path, body, data) }));
  } catch (e) {
    if (e instanceof ApiError && e.status === 412) return showConflict();
    toast(t('refused', { m: e.message }), 'error');
  }
}

// what an edit did, in the page's language (the server's summary is a log line in English):
// the operation, the buildings and households moved, the grids changed and removed
function summaryOf(path, body, o) {
  const which = path.endsWith('/undo') ? 'undo' : path.endsWith('/redo') ? 'redo' : body.op === 'move' ? 'assign' : body.op;
  const parts = [t(which)];
  if (o.moved.length) parts.push(t('moved', { n: fmt(o.moved.length), h: fmt(o.households_moved) }));
  // (a lock changes no polygon: the grids it names)
  const codes = o.changed.features.length ? o.changed.features.map((f) => f.properties.code) : body.grids || [];
  if (codes.length) parts.push(t('grids_changed', { c: codes.slice(0, 6).join('、') + (codes.length > 6 ? '…' : '') }));
  if (o.removed.length) parts.push(t('grids_removed', { c: o.removed.join('、') }));
  return parts.join(' · ');
}

// an edit's answer: changed grids into the overlay and the table, moved buildings recoloured
export function applyOutcome(o, etag) {
  S.etag = etag || o.etag;
  S.plan.version = o.version;
  for (const code of o.removed) {
    S.removed.add(code);
    S.edited.delete(code);
    S.grids.delete(code);
    S.selG.delete(code);
  }
  for (const f of o.changed.features) {
    const p = f.properties;
    S.removed.delete(p.code);
    S.edited.set(p.code, f);
    const row = S.grids.get(p.code) || {};
    S.grids.set(p.code, { ...row, ...p, bbox: bboxOf(f.geometry), label: row.label && inBox(row.label, bboxOf(f.geometry)) ? row.label : centreOf(f.geometry), locked: p.locked ?? row.locked });
  }
  const moved = o.moved.map((m) => m.building);
  for (const m of o.moved) S.assignment.set(m.building, m.to);
  const before = [...S.selB];
  S.selB.clear();
  if (o.changed.features.some((f) => !S.colours.has(f.properties.code))) colourGrids();
  paintBuildings(new Set([...before, ...moved]));
  pending = null;
  renderPending();
  refreshOverlay();
  selectionChanged();
  if (current && S.grids.has(current)) showGrid(current, null, { table: false });
  // the table, the labels and the server's grid table after the edit's first frame
  S.map.once('render', () => setTimeout(() => {
    refreshLabels();
    renderTable();
    emit('edited', o);
  }, 0));
}

function bboxOf(g) {
  const c = JSON.stringify(g.coordinates).match(/-?\d+\.?\d*(e-?\d+)?/g).map(Number);
  const xs = c.filter((_, i) => i % 2 === 0);
  const ys = c.filter((_, i) => i % 2 === 1);
  return [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
}
const inBox = ([x, y], b) => x >= b[0] && x <= b[2] && y >= b[1] && y <= b[3];
function centreOf(g) {
  const b = bboxOf(g);
  return [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2];
}

async function copyToDraft() {
  try {
    const { data } = await api(`/plans/${S.plan.id}/copy`, { body: {} });
    toast(t('done', { s: `plan ${data.plan?.id ?? data.id}` }));
    emit('plans-changed', data.plan?.id ?? data.id);
  } catch (e) {
    toast(t('error', { m: e.message }), 'error');
  }
}

export function resetEditing() {
  pending = null;
  S.selB.clear();
  S.selG.clear();
  S.line = null;
  S.edited.clear();
  S.removed.clear();
}

export { mapCoords };
