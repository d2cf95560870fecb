// The planners' web map: boots the page (config, session, plans), the top bar (plan, date,
// colouring, search, language, sign-in), the side tabs and the map. Where to find a feature:
// map.js (layers, colours, overlay), panel.js (grid panel, table, search, worker), edit.js
// (selection tools, edits, dry runs, undo), compare.js (diff, handover, publish, conflicts),
// incidents.js (cases), i18n.js (every label), api.js (token, requests), crs.js (GCJ-02).
import 'maplibre-gl/dist/maplibre-gl.css';
import './style.css';
import { S, el, on, emit, toast } from './state.js';
import { t, translate, language, setLanguage } from './i18n.js';
import { api, token, setToken } from './api.js';
import { createMap, restyle, refreshFilters, refreshLabels, paintBuildings, colourGrids } from './map.js';
import { renderTable, search, showGrid } from './panel.js';
import { installTools, renderEditPanel, resetEditing, clearSelection } from './edit.js';
import { renderComparePanel } from './compare.js';
import { installIncidents, renderIncidentPanel } from './incidents.js';

async function loadSession() {
  try {
    S.session = (await api('/app/session')).data;
  } catch (e) {
    setToken('');
    S.session = (await api('/app/session')).data;
    toast(t('error', { m: e.message }), 'error');
  }
  document.querySelector('[data-testid="login"]').textContent = S.session.role === 'public' ? t('login') : `${S.session.who} · ${t('logout')}`;
  document.getElementById('role').textContent = S.session.role === 'public' ? t('public') : S.session.role;
}

async function loadPlans(prefer) {
  S.plans = [];
  if (S.session.may.read_plans) {
    const { data } = await api('/plans');
    S.plans = (data.plans || data).sort((a, b) => b.id - a.id);
  }
  const sel = document.querySelector('[data-testid="plan-select"]');
  sel.replaceChildren(
    el('option', { value: '' }, t('in_force')),
    ...S.plans.map((p) => el('option', { value: p.id }, `${p.id} · ${t(p.status)} · ${p.grids} ${t('grids')}`)),
  );
  sel.disabled = !S.plans.length;
  const pick = prefer ?? (S.plans.find((p) => p.status === 'draft')?.id || '');
  sel.value = String(pick);
  await selectPlan(sel.value ? Number(sel.value) : null);
}

// a plan chosen: its ETag, grid table and building assignment, then the map's sources again
async function selectPlan(id) {
  resetEditing();
  S.grids.clear();
  S.assignment.clear();
  S.plan = null;
  S.etag = null;
  if (id) {
    const [p, g, a] = await Promise.all([
      api(`/plans/${id}`),
      api(`/plans/${id}/grids`),
      api(`/plans/${id}/assignment`),
    ]);
    S.plan = p.data.plan;
    S.etag = p.etag;
    S.band = { min: g.data.band.min ?? 200, target: g.data.band.target ?? 300, max: g.data.band.max ?? 400 };
    for (const row of g.data.grids) S.grids.set(row.code, row);
    for (const [b, c] of Object.entries(a.data.buildings)) S.assignment.set(b, c);
    colourGrids();
  } else if (S.session.may.read_plans && !S.at) {
    // the grids in force: the tables of the published plans in force now (tiles draw the same)
    const now = Date.now() / 1000;
    const live = S.plans.filter((p) => p.status === 'published' && (!p.valid_from || p.valid_from <= now) && (!p.valid_to || p.valid_to > now));
    const parts = await Promise.all(live.map((p) => Promise.all([api(`/plans/${p.id}/grids`), api(`/plans/${p.id}/assignment`)])));
    for (const [g, a] of parts) {
      S.band = { min: g.data.band.min ?? 200, target: g.data.band.target ?? 300, max: g.data.band.max ?? 400 };
      for (const row of g.data.grids) S.grids.set(row.code, row);
      for (const [b, c] of Object.entries(a.data.buildings)) S.assignment.set(b, c);
    }
    colourGrids();
  } else if (S.config) {
    S.band = { ...S.config.band };
  }
  planStatus();
  renderTable();
  renderEditPanel();
  renderComparePanel();
  restyle();
}

function planStatus() {
  document.getElementById('plan-status').textContent = S.plan ? `${t(S.plan.status)} · ${t('version', { v: S.plan.version })}` : t('in_force');
}

// the grid table again after an edit (locks, names, figures as the server has them)
async function refreshTable() {
  if (!S.plan) return;
  const { data } = await api(`/plans/${S.plan.id}/grids`);
  const keep = new Map(S.grids);
  S.grids.clear();
  let moved = keep.size !== data.grids.length;
  for (const row of data.grids) {
    const label = row.label || keep.get(row.code)?.label;
    if (String(label) !== String(keep.get(row.code)?.label)) moved = true;
    S.grids.set(row.code, { ...row, label });
  }
  renderTable();
  if (moved) refreshLabels();
}

function topBar() {
  const bar = document.getElementById('topbar');
  const langBtn = el('button', { testid: 'lang', onclick: () => { setLanguage(language() === 'en' ? 'zh-CN' : 'en'); location.reload(); } }, t('lang'));
  const login = el('button', { testid: 'login', onclick: signIn }, t('login'));
  const planSel = el('select', { testid: 'plan-select', onchange: (e) => selectPlan(e.target.value ? Number(e.target.value) : null) });
  const date = el('input', {
    type: 'date', testid: 'date', title: t('date'),
    onchange: (e) => {
      S.at = e.target.value || null;
      if (S.at) document.querySelector('[data-testid="plan-select"]').value = '';
      selectPlan(null);
    },
  });
  const colour = el('select', { testid: 'colour-by', onchange: (e) => { S.colourBy = e.target.value; refreshFilters(); } },
    el('option', { value: 'band' }, t('by_band')), el('option', { value: 'deviation' }, t('by_deviation')));
  const q = el('input', { testid: 'search', type: 'search', placeholder: t('search'), onkeydown: (e) => e.key === 'Enter' && search(e.target.value) });
  bar.replaceChildren(
    el('strong', { class: 'brand' }, '网格 wangge'),
    el('label', {}, t('plan'), ' ', planSel), el('span', { id: 'plan-status', class: 'muted' }),
    el('label', {}, t('date'), ' ', date),
    el('label', {}, t('colour_by'), ' ', colour),
    q,
    el('span', { class: 'spacer' }),
    el('span', { id: 'role', testid: 'role', class: 'muted' }),
    login, langBtn,
  );
}

async function signIn() {
  if (token()) {
    setToken('');
    location.reload();
    return;
  }
  const dlg = document.getElementById('login-dialog');
  const input = dlg.querySelector('input');
  input.value = '';
  dlg.showModal();
  dlg.querySelector('form').onsubmit = async (e) => {
    e.preventDefault();
    setToken(input.value.trim());
    dlg.close();
    try {
      S.session = (await api('/app/session')).data;
      location.reload();
    } catch (err) {
      setToken('');
      toast(t('error', { m: err.message }), 'error');
    }
  };
}

function tabs() {
  const buttons = document.querySelectorAll('[data-tab]');
  for (const b of buttons) {
    b.onclick = () => {
      for (const x of buttons) x.classList.toggle('on', x === b);
      for (const p of document.querySelectorAll('.tab')) p.hidden = p.id !== `tab-${b.dataset.tab}`;
      if (b.dataset.tab === 'incidents') S.incidentsShown = renderIncidentPanel();
      if (b.dataset.tab === 'compare') renderComparePanel();
    };
  }
  document.querySelector('[data-tab="incidents"]').hidden = !S.session.may.incidents;
}

function legend() {
  const box = document.getElementById('legend');
  const item = (c, label) => el('span', { class: 'item' }, el('i', { style: `background:${c}` }), label);
  box.replaceChildren(el('b', {}, t('legend')), ' ',
    el('span', { class: 'item' }, el('i', { style: 'background:none;border:2px solid #4a148c' }), t('street')),
    el('span', { class: 'item' }, el('i', { style: 'background:none;border:2px solid #b71c1c' }), t('community')),
    item('#f2c14e', t('under')), item('#7fbf7b', t('in')), item('#e4572e', t('over')), item('#9e6fb8', t('oversize')),
    ...(S.session.may.incidents ? [item('#ff7043', t('case')), item('#7f0000', t('overdue'))] : []),
    el('span', { id: 'band-summary', testid: 'band-summary', class: 'muted' }));
}

async function boot() {
  document.documentElement.lang = language();
  translate();
  S.config = (await api('/app/config.json')).data;
  S.band = { ...S.config.band };
  S.gcj02 = S.config.basemap?.crs === 'gcj02';
  topBar();
  await loadSession();
  legend();
  tabs();
  on('plans-changed', (id) => loadPlans(id));
  on('edited', () => {
    planStatus();
    refreshTable().catch(() => {});
  });
  on('grid', (code) => {
    for (const tr of document.querySelectorAll('#grid-table tr.current')) tr.classList.remove('current');
    document.querySelector(`#grid-table tr[data-code="${code}"]`)?.classList.add('current');
  });
  // the plan first, so that the map loads its tiles once
  await loadPlans();
  const map = createMap('map');
  installTools(map);
  installIncidents(map);
  map.on('load', () => {
    refreshLabels();
    paintBuildings();
    emit('map-loaded');
    // a signboard's QR code opens the map on its grid: /?grid=CODE
    const grid = new URLSearchParams(location.search).get('grid');
    if (grid) search(grid);
  });
  map.on('sourcedata', (e) => {
    if (e.sourceId === 'buildings' && e.sourceDataType === 'metadata') paintBuildings();
  });
  window.__wanggeReady = true;
}

boot().catch((e) => {
  document.body.append(el('pre', { class: 'fatal' }, String(e.stack || e)));
  console.error(e);
});

export { showGrid, clearSelection };
