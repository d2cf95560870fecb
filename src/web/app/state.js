// The page's state, one object shared by the modules (no framework: each module renders its
// own part from it and calls the others through the functions they export).
export const S = {
  map: null,
  config: null, // /app/config.json
  session: { role: 'public', may: {} }, // /app/session
  plans: [], // /plans (viewer and above)
  plan: null, // the plan shown: {id, status, version, ...} or null = grids in force
  etag: null, // the plan's ETag for If-Match
  band: { min: 200, target: 300, max: 400 },
  grids: new Map(), // code → row of /plans/{id}/grids
  assignment: new Map(), // building id → grid code
  colours: new Map(), // grid code → colour index
  edited: new Map(), // code → GeoJSON feature from edits since the plan was loaded
  removed: new Set(), // codes removed by edits since then
  selB: new Set(), // selected buildings
  selG: new Set(), // selected grids
  tool: 'click',
  line: null, // [[lon, lat], …] drawn with the line tool
  at: null, // date of the grid generation shown (ISO date) or null = now
  colourBy: 'band',
  gcj02: false,
};

// listeners by topic: on('plan', f), emit('plan')
const topics = new Map();
export function on(topic, f) {
  if (!topics.has(topic)) topics.set(topic, []);
  topics.get(topic).push(f);
}
export function emit(topic, ...args) {
  for (const f of topics.get(topic) || []) f(...args);
}

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'testid') e.dataset.testid = v;
    else if (k === 'class') e.className = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export function toast(msg, kind = 'info') {
  const box = document.getElementById('toast');
  box.textContent = msg;
  box.className = `toast ${kind}`;
  box.dataset.testid = 'toast';
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (box.className = 'toast hidden'), kind === 'error' ? 8000 : 4000);
}

export const fmt = (n) => (n === undefined || n === null ? '–' : Number(n).toLocaleString('zh-CN'));
// a Unix time in the browser's local time, with its offset (2026-11-30 20:43:46+08:00)
export function localTime(sec) {
  if (sec === undefined || sec === null) return '–';
  const d = new Date(sec * 1000);
  const p = (n) => String(Math.abs(n)).padStart(2, '0');
  const off = -d.getTimezoneOffset();
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}${off >= 0 ? '+' : '-'}${p(Math.trunc(off / 60))}:${p(off % 60)}`;
}
