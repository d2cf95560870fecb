// Compare and publish: a draft against the plan in force (or any two plans) — changed grids
// hatched on the map, moved buildings listed with households, the handover list as CSV — and
// publication with If-Match; when someone else changed the plan meanwhile, who and when, and a
// reload.
import { S, el, fmt, toast, emit, localTime } from './state.js';
import { t } from './i18n.js';
import { api, download, ApiError } from './api.js';
import { zoomTo } from './map.js';

let changed = [];

function hatch(map) {
  if (map.hasImage('hatch')) return;
  const n = 8;
  const c = document.createElement('canvas');
  c.width = c.height = n;
  const g = c.getContext('2d');
  g.strokeStyle = 'rgba(198,40,40,0.9)';
  g.lineWidth = 1.5;
  g.beginPath();
  g.moveTo(0, n);
  g.lineTo(n, 0);
  g.moveTo(-n / 2, n / 2);
  g.lineTo(n / 2, -n / 2);
  g.moveTo(n / 2, n * 1.5);
  g.lineTo(n * 1.5, n / 2);
  g.stroke();
  map.addImage('hatch', g.getImageData(0, 0, n, n));
}

// the hatched layer of grids that differ between the two plans
export function markChanged() {
  const m = S.map;
  if (!m?.getSource('grids')) return;
  hatch(m);
  const f = ['in', ['get', 'code'], ['literal', changed]];
  for (const [id, src, layer] of [['diff-tiles', 'grids', 'grids'], ['diff-edited', 'edited', null]]) {
    if (!m.getLayer(id)) {
      const spec = { id, type: 'fill', source: src, paint: { 'fill-pattern': 'hatch', 'fill-opacity': 0.8 }, filter: f };
      if (layer) spec['source-layer'] = layer;
      m.addLayer(spec, 'buildings');
    } else m.setFilter(id, f);
  }
}

function parseCsv(text) {
  const [head, ...lines] = text.trim().split(/\r?\n/);
  const keys = head.split(',');
  return lines.filter(Boolean).map((l) => Object.fromEntries(l.split(',').map((v, i) => [keys[i], v])));
}

export function renderComparePanel() {
  const box = document.getElementById('compare-panel');
  const inForce = S.plans.filter((p) => p.status === 'published');
  const others = S.plans.filter((p) => !S.plan || p.id !== S.plan.id);
  const against = el('select', { id: 'against', testid: 'against' }, others.map((p) => el('option', { value: p.id, selected: inForce.some((q) => q.id === p.id) }, `${p.id} · ${t(p.status)}`)));
  const date = el('input', { type: 'date', id: 'effective', testid: 'effective', value: new Date(Date.now() + 86400000).toISOString().slice(0, 10) });
  box.replaceChildren(
    el('label', {}, t('against'), ' ', against),
    el('button', { testid: 'diff', onclick: () => diff(Number(against.value)) }, t('diff')),
    el('div', { id: 'diff-result', testid: 'diff-result' }),
    el('hr'),
    el('button', { testid: 'check', disabled: !S.plan, onclick: check }, t('check')),
    el('div', { id: 'check-result', testid: 'check-result' }),
    el('hr'),
    el('label', {}, t('effective'), ' ', date),
    registerForm(),
    el('button', { testid: 'publish', disabled: !(S.plan && S.plan.status === 'draft' && S.session.may.edit_plans), onclick: () => publish(date.value) }, t('publish')),
    el('div', { id: 'conflict', testid: 'conflict', hidden: true }),
  );
}

async function diff(other) {
  if (!S.plan || !other) return;
  const out = document.getElementById('diff-result');
  out.replaceChildren(t('loading'));
  try {
    const { data: d } = await api(`/plans/${other}/diff/${S.plan.id}`);
    const r = await fetch(`/plans/${other}/handover/${S.plan.id}`, { headers: { Authorization: `Bearer ${sessionStorage.getItem('wangge.token') || ''}` } });
    const rows = r.ok ? parseCsv(await r.text()) : [];
    changed = [...new Set([...d.grids_only_in_a, ...d.grids_only_in_b, ...rows.flatMap((x) => [x.from_grid, x.to_grid]).filter(Boolean)])].sort();
    markChanged();
    out.replaceChildren(
      el('p', { testid: 'changed-grids', 'data-count': changed.length }, t('changed_grids', { n: changed.length })),
      el('p', {}, t('moved', { n: d.moved.length, h: fmt(d.moved_households) })),
      el('button', { testid: 'handover', onclick: () => download(`/plans/${other}/handover/${S.plan.id}`, `handover-${other}-${S.plan.id}.csv`).catch((e) => toast(e.message, 'error')) }, t('handover')),
      el('table', { class: 'grid-table', testid: 'moved-buildings' },
        el('thead', {}, el('tr', {}, el('th', {}, t('building')), el('th', {}, t('from')), el('th', {}, t('to')), el('th', {}, t('households')))),
        el('tbody', {}, rows.map((x) => el('tr', { 'data-building': x.building_id, onclick: () => zoomTo(S.grids.get(x.to_grid)?.bbox) }, el('td', {}, x.building_id), el('td', {}, x.from_grid), el('td', {}, x.to_grid), el('td', { class: 'num' }, x.households))))),
    );
  } catch (e) {
    out.replaceChildren(t('error', { m: e.message }));
  }
}

// the plan's check: hard rules (buildings split or unassigned, gaps, overlaps), band,
// compactness, road following; grids out of band and problems with jump-to
async function check() {
  const out = document.getElementById('check-result');
  out.replaceChildren(t('loading'));
  try {
    const { data: c } = await api(`/plans/${S.plan.id}/check`);
    const go = (code) => el('button', { class: 'link', onclick: () => zoomTo(S.grids.get(code)?.bbox) }, code);
    out.replaceChildren(
      el('p', { testid: 'check-ok', class: c.ok ? '' : 'overdue' }, c.ok ? t('check_ok') : t('check_failed')),
      el('table', { class: 'figures' },
        el('tr', {}, el('th', {}, t('in_band_pct')), el('td', {}, `${c.in_band_pct} %`)),
        el('tr', {}, el('th', {}, t('split_buildings')), el('td', {}, c.split_buildings)),
        el('tr', {}, el('th', {}, t('unassigned_buildings')), el('td', {}, c.unassigned_buildings)),
        el('tr', {}, el('th', {}, t('pp')), el('td', {}, `${c.polsby_popper_mean} (min ${c.polsby_popper_min})`)),
        el('tr', {}, el('th', {}, t('road_following')), el('td', {}, `${c.road_following_pct} %`))),
      el('p', {}, t('out_of_band', { n: c.out_of_band.length })),
      el('ul', {}, c.out_of_band.map(([code, h]) => el('li', {}, go(code), ` · ${fmt(h)}`))),
      c.problems.length ? el('ul', {}, c.problems.map((p) => el('li', { class: 'warning' }, typeof p === 'string' ? p : JSON.stringify(p)))) : null,
    );
  } catch (e) {
    out.replaceChildren(t('error', { m: e.message }));
  }
}

// the exception register: every grid out of band needs a reason to be published (one building
// above the band needs none); the server refuses the publication otherwise, naming the grids
function registerForm() {
  const out = [...S.grids.values()].filter((g) => g.band && g.band !== 'in').sort((a, b) => a.code.localeCompare(b.code));
  if (!S.plan || S.plan.status !== 'draft') return el('div', { id: 'register' });
  if (!out.length) return el('p', { id: 'register', testid: 'register' }, t('all_in_band'));
  const row = (g) => el('div', { class: 'register-row' },
    el('div', {}, el('button', { class: 'link', onclick: () => zoomTo(g.bbox) }, g.code), ` ${t(g.band)} · ${fmt(g.households)}`),
    el('input', { type: 'text', testid: `exception-${g.code}`, 'data-code': g.code, placeholder: g.band === 'oversize' ? t('oversize_reason') : t('reason') }));
  const open = out.filter((g) => g.band !== 'oversize');
  const single = out.filter((g) => g.band === 'oversize');
  return el('fieldset', { id: 'register', testid: 'register' },
    el('legend', {}, t('register', { n: open.length })),
    open.map(row),
    single.length ? el('details', {}, el('summary', {}, t('register_oversize', { n: single.length })), single.map(row)) : null);
}

async function publish(date) {
  const exceptions = {};
  for (const i of document.querySelectorAll('#register input[data-code]')) if (i.value.trim()) exceptions[i.dataset.code] = i.value.trim();
  try {
    const { data } = await api(`/plans/${S.plan.id}/publish`, { body: { valid_from: date, exceptions }, ifMatch: S.etag });
    toast(t('published_ok', { id: data.plan.id, d: date }) + (data.exceptions.length ? ` · ${t('registered', { n: data.exceptions.length })}` : ''));
    emit('plans-changed', data.plan.id);
  } catch (e) {
    if (e instanceof ApiError && e.status === 412) return showConflict();
    toast(t('error', { m: e.message }), 'error');
  }
}

// someone else changed the plan: who and when (from the edit log), and a reload
export async function showConflict() {
  document.querySelector('[data-tab="compare"]')?.click();
  let who = '?';
  let at = '?';
  try {
    const { data } = await api(`/plans/${S.plan.id}/edits`);
    const last = (data.edits || []).filter((e) => e.status === 'applied').at(-1) || (data.edits || []).at(-1);
    if (last) {
      who = last.who;
      at = localTime(last.at);
    }
  } catch {
    /* the conflict stands without the name */
  }
  const box = document.getElementById('conflict');
  const msg = t('conflict', { who, at });
  box.hidden = false;
  box.replaceChildren(el('p', {}, msg), el('button', { testid: 'reload', onclick: () => emit('plans-changed', S.plan.id) }, t('reload')));
  toast(msg, 'error');
}
