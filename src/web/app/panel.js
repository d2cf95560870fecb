// Inspect: the grid panel (figures, band with its exception, worker), the grid table always in
// view with the grids out of band first, search by code, name or building id, and a worker's
// assignment by an administrator.
import { S, el, fmt, toast, emit } from './state.js';
import { t } from './i18n.js';
import { api, ApiError, download, authHeaders } from './api.js';
import { zoomTo, BAND_COLOURS } from './map.js';

export let current = null; // code of the grid in the panel

function exceptionText(g) {
  const v = { h: fmt(g.households), min: S.band.min, max: S.band.max };
  if (g.band === 'under') return t('exc_under', v);
  if (g.band === 'over') return t('exc_over', v);
  if (g.band === 'oversize') return t('exc_oversize', v);
  return '';
}

function deviation(g) {
  if (g.households === undefined || !S.band.target) return null;
  return ((g.households - S.band.target) / S.band.target) * 100;
}

const row = (label, value, testid) => el('tr', {}, el('th', {}, label), el('td', { testid }, value ?? '–'));

// the grid panel for a code, from the table row (figures are the server's)
export function showGrid(code, props = null, { table = true } = {}) {
  current = code;
  const box = document.getElementById('grid-panel');
  box.replaceChildren();
  const g = S.grids.get(code) || props;
  if (!g) {
    box.append(el('p', { class: 'muted' }, code));
    return;
  }
  const dev = deviation(g);
  const exc = exceptionText(g);
  const tbl = el('table', { class: 'figures' },
    row(t('code'), g.code, 'grid-code'),
    row(t('name'), g.name, 'grid-name'),
    row(t('community'), g.community),
    row(t('street'), g.street),
    S.session.may.households ? row(t('households'), fmt(g.households), 'grid-households') : null,
    row(t('buildings'), fmt(g.buildings), 'grid-buildings'),
    S.session.may.households && g.weight !== undefined ? row(t('weight'), fmt(Math.round(g.weight))) : null,
    g.polsby_popper !== undefined ? row(t('pp'), g.polsby_popper.toFixed(3), 'grid-pp') : null,
    row(t('band'), el('span', { class: 'chip', style: `background:${BAND_COLOURS[g.band] || '#ccc'}` }, t(g.band || 'in')), 'grid-band'),
    dev !== null ? row(t('deviation'), `${dev > 0 ? '+' : ''}${dev.toFixed(1)} %`) : null,
    exc ? row(t('exception'), exc, 'grid-exception') : null,
    g.locked ? row(t('locked'), '🔒') : null,
    row(t('worker'), g.worker_name || t('none'), 'grid-worker'),
    row(t('phone'), g.worker_phone || t('none'), 'grid-phone'),
  );
  box.append(el('h3', {}, g.name || g.code), tbl);
  if (g.worker_name) {
    const img = el('img', { class: 'worker-photo', alt: t('photo'), testid: 'worker-photo', src: `/grids/${encodeURIComponent(g.code)}/worker/photo` });
    img.onerror = () => img.remove();
    box.append(img);
  }
  box.append(printButtons(g));
  if (S.session.may.admin) box.append(workerForm(g));
  if (table) emit('grid', code);
}

// the signboard of the grid (the plan shown when it is a draft) and the community's atlas
function printButtons(g) {
  const draft = S.plan && S.plan.status === 'draft' ? `?plan=${S.plan.id}` : '';
  const sign = draft
    ? el('button', {
      testid: 'print-signboard',
      onclick: () => download(`/grids/${encodeURIComponent(g.code)}/signboard.pdf${draft}`, `signboard-${g.code}.pdf`).catch((e) => toast(t('error', { m: e.message }), 'error')),
    }, t('print_signboard'))
    : el('a', { class: 'button', testid: 'print-signboard', target: '_blank', href: `/grids/${encodeURIComponent(g.code)}/signboard.pdf` }, t('print_signboard'));
  const atlas = S.session.may.households && g.community
    ? el('button', {
      testid: 'print-atlas',
      onclick: () => download(`/communities/${encodeURIComponent(g.community)}/atlas.pdf${draft}`, `atlas-${g.community}.pdf`).catch((e) => toast(t('error', { m: e.message }), 'error')),
    }, t('print_atlas'))
    : null;
  return el('div', { class: 'print-buttons' }, sign, atlas);
}

function workerForm(g) {
  const name = el('input', { placeholder: t('worker'), value: g.worker_name || '', testid: 'worker-name' });
  const phone = el('input', { placeholder: t('phone'), value: g.worker_phone || '', testid: 'worker-phone' });
  const photo = el('input', { type: 'file', accept: 'image/jpeg,image/png', testid: 'worker-photo-file', title: t('photo') });
  const save = el('button', {
    testid: 'worker-save',
    onclick: async () => {
      try {
        const body = { name: name.value.trim() || null, phone: phone.value.trim() || null };
        await api(`/grids/${encodeURIComponent(g.code)}/worker`, { body });
        const file = photo.files && photo.files[0];
        if (file && body.name) {
          const r = await fetch(`/grids/${encodeURIComponent(g.code)}/worker/photo`, { method: 'POST', headers: authHeaders({ 'Content-Type': file.type }), body: file });
          if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => ({})));
        }
        g.worker_name = body.name || undefined;
        g.worker_phone = body.phone || undefined;
        showGrid(g.code, g);
        toast(t('done', { s: t('assign_worker') }));
      } catch (e) {
        toast(t('error', { m: e.message }), 'error');
      }
    },
  }, t('save'));
  return el('fieldset', { class: 'worker' }, el('legend', {}, t('assign_worker')), name, phone, photo, save);
}

// the grid table: out of band first, then by code; a click zooms to the grid
export function renderTable() {
  const box = document.getElementById('grid-table');
  box.replaceChildren();
  const rows = [...S.grids.values()].filter((g) => !S.removed.has(g.code));
  const out = rows.filter((g) => g.band && g.band !== 'in');
  const summary = document.getElementById('band-summary');
  summary.textContent = out.length ? t('out_of_band', { n: out.length }) : t('all_in_band');
  summary.dataset.count = out.length;
  const order = (g) => (g.band === 'in' ? 1 : 0);
  rows.sort((a, b) => order(a) - order(b) || a.code.localeCompare(b.code));
  const hh = S.session.may.households;
  const head = el('tr', {}, el('th', {}, t('code')), el('th', {}, t('name')), hh ? el('th', {}, t('households')) : null, hh ? el('th', {}, t('deviation')) : null, el('th', {}, t('band')));
  const body = rows.map((g) => {
    const dev = deviation(g);
    return el('tr', {
      class: `band-${g.band}${g.code === current ? ' current' : ''}`,
      'data-code': g.code,
      onclick: () => {
        zoomTo(g.bbox);
        showGrid(g.code);
      },
    },
    el('td', {}, g.code, g.locked ? ' 🔒' : ''),
    el('td', {}, g.name || ''),
    hh ? el('td', { class: 'num' }, fmt(g.households)) : null,
    hh ? el('td', { class: 'num' }, dev === null ? '' : `${dev > 0 ? '+' : ''}${dev.toFixed(0)}%`) : null,
    el('td', {}, el('span', { class: 'chip', style: `background:${BAND_COLOURS[g.band] || '#ccc'}` }, t(g.band || 'in'))));
  });
  box.append(el('table', { class: 'grid-table', testid: 'grid-table' }, el('thead', {}, head), el('tbody', {}, body)));
}

// search: a grid code, a grid name, or a building id
export async function search(q) {
  q = q.trim();
  if (!q) return;
  const byCode = S.grids.get(q) || [...S.grids.values()].find((g) => g.name === q || g.code.endsWith(q));
  if (byCode) {
    zoomTo(byCode.bbox);
    showGrid(byCode.code);
    return;
  }
  try {
    const collection = S.grids.size ? 'buildings' : 'grids';
    const path = collection === 'buildings' ? `/collections/buildings/items/${encodeURIComponent(q)}` : `/collections/grids/items?code=${encodeURIComponent(q)}`;
    const { data } = await api(path);
    const f = data.type === 'FeatureCollection' ? data.features[0] : data;
    if (!f) throw new ApiError(404, { message: q });
    const coords = JSON.stringify(f.geometry.coordinates).match(/-?\d+\.?\d*/g).map(Number);
    const xs = coords.filter((_, i) => i % 2 === 0);
    const ys = coords.filter((_, i) => i % 2 === 1);
    zoomTo([Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)]);
    const code = collection === 'buildings' ? S.assignment.get(q) : f.properties.code;
    if (code) showGrid(code, f.properties);
    if (collection === 'buildings') emit('select-building', q);
  } catch (e) {
    toast(t('not_found', { q }), 'error');
  }
}
