// Incidents (dispatchers, grid workers, admins): cases as points from z14 and as heat below,
// coloured by state (overdue in red); a click opens the case with its history and the actions
// allowed now. Nothing here is requested for a role that may not read cases.
import { S, el, toast, localTime } from './state.js';
import { t } from './i18n.js';
import { api } from './api.js';

const NEEDS = {
  reject: ['reason'], dispatch: ['unit'], return: ['reason'], suspend: ['reason'], void: ['reason'],
  verify: ['passed'], evaluate: ['score'], extend: ['until', 'reason'],
};

const when = (s) => (s ? localTime(s) : '–');

export function installIncidents(map) {
  map.on('click', 'incidents', (e) => {
    const f = e.features?.[0];
    if (f) showCase(f.properties.id);
  });
  map.on('mouseenter', 'incidents', () => (map.getCanvas().style.cursor = 'pointer'));
  map.on('mouseleave', 'incidents', () => (map.getCanvas().style.cursor = ''));
}

export async function renderIncidentPanel() {
  const box = document.getElementById('incident-panel');
  if (!S.session.may.incidents) {
    box.replaceChildren();
    return;
  }
  try {
    const { data } = await api('/incidents?limit=200');
    const cases = data.incidents || data.cases || data.features || [];
    const now = Date.now() / 1000;
    const open = (c) => !['closed', 'voided', 'rejected'].includes(c.state);
    const overdue = cases.filter((c) => open(c) && c.due_at && c.due_at < now);
    box.replaceChildren(
      el('p', { testid: 'case-count' }, t('cases', { n: cases.length }), overdue.length ? ` · ${overdue.length} ${t('overdue')}` : ''),
      el('ul', { class: 'cases' }, cases.slice(0, 60).map((c) => el('li', {
        class: open(c) && c.due_at && c.due_at < now ? 'overdue' : '',
        onclick: () => showCase(c.id),
      }, `${c.id} · ${c.category} · ${t(`state_${c.state}`)}`))),
      el('div', { id: 'case-panel', testid: 'case-panel' }),
    );
  } catch (e) {
    box.replaceChildren(el('p', {}, t('error', { m: e.message })));
  }
}

export async function showCase(id) {
  const tab = document.querySelector('[data-tab="incidents"]');
  if (tab && !tab.classList.contains('on')) {
    tab.click();
    await S.incidentsShown;
  }
  const box = document.getElementById('case-panel');
  if (!box) return;
  try {
    const { data: c } = await api(`/incidents/${encodeURIComponent(id)}`);
    const overdue = c.due_at && c.due_at < Date.now() / 1000 && !['closed', 'voided'].includes(c.state);
    box.replaceChildren(
      el('h3', {}, `${t('case')} ${c.id}`),
      el('table', { class: 'figures' },
        el('tr', {}, el('th', {}, t('state')), el('td', { testid: 'case-state' }, t(`state_${c.state}`))),
        el('tr', {}, el('th', {}, t('grid')), el('td', {}, c.grid || '–')),
        el('tr', {}, el('th', {}, t('due')), el('td', { class: overdue ? 'overdue' : '' }, when(c.due_at), overdue ? ` (${t('overdue')})` : '')),
        el('tr', {}, el('th', {}, t('category')), el('td', {}, c.category)),
        c.reporter ? el('tr', {}, el('th', {}, t('reporter')), el('td', {}, c.reporter)) : null),
      el('p', {}, c.description || ''),
      el('h4', {}, t('history')),
      el('ol', { class: 'history' }, (c.history || []).map((h) => el('li', {}, `${when(h.at)} · ${h.who} · ${t(`action_${h.action}`)} (${t(`state_${h.from}`)} → ${t(`state_${h.to}`)})${h.note ? ` · ${h.note}` : ''}`))),
      el('h4', {}, t('action')),
      el('div', { class: 'ops' }, (c.allowed || []).map((a) => el('button', { 'data-action': a, onclick: () => act(c.id, a) }, t(`action_${a}`)))),
    );
  } catch (e) {
    box.replaceChildren(el('p', {}, t('error', { m: e.message })));
  }
}

async function act(id, action) {
  const body = { action };
  for (const k of NEEDS[action] || []) {
    const v = window.prompt(`${t(`action_${action}`)}: ${t(`field_${k}`)}`);
    if (v === null) return;
    body[k] = k === 'passed' ? /^(y|yes|true|1|是)$/i.test(v) : k === 'score' ? Number(v) : k === 'until' ? Math.floor(new Date(v).getTime() / 1000) : v;
  }
  try {
    await api(`/incidents/${encodeURIComponent(id)}/transitions`, { body });
    showCase(id);
  } catch (e) {
    toast(t('error', { m: e.message }), 'error');
  }
}
