// The map: MapLibre GL JS over our vector tiles (communities, grids of the plan shown, buildings
// coloured by grid, roads; incidents and heat for staff), an optional external basemap, the
// grids changed by edits as a GeoJSON overlay, and the selection drawn with feature state.
import maplibregl from 'maplibre-gl';
import { S, emit } from './state.js';
import { authHeaders } from './api.js';
import { toGcj02, mapCoords } from './crs.js';

export const BAND_COLOURS = { under: '#f2c14e', in: '#7fbf7b', over: '#e4572e', oversize: '#9e6fb8' };
// grid colours for buildings (neighbouring grids differ; see colourGrids)
export const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

const origin = () => window.location.origin;

function tileUrl(set) {
  const q = new URLSearchParams();
  if (S.plan && set === 'grids') q.set('plan', S.plan.id);
  if (S.at && set === 'grids' && !S.plan) q.set('datetime', S.at);
  if (S.gcj02) q.set('crs', 'gcj02');
  const qs = q.toString();
  return `${origin()}/tiles/${set}/{z}/{x}/{y}.mvt${qs ? `?${qs}` : ''}`;
}

function basemapLayers() {
  const b = S.config?.basemap;
  if (!b || !b.tiles) return { sources: {}, layers: [] };
  return {
    sources: {
      basemap: { type: 'raster', tiles: b.tiles, tileSize: b.tile_size || 256, maxzoom: b.max_zoom || 18, attribution: b.attribution || '' },
    },
    layers: [{ id: 'basemap', type: 'raster', source: 'basemap' }],
  };
}

function gridFill() {
  if (S.colourBy === 'deviation' && S.session.may.households) {
    const t = S.band.target || 300;
    return [
      'interpolate', ['linear'], ['/', ['-', ['to-number', ['get', 'households'], t], t], t],
      -0.5, '#2166ac', -0.2, '#92c5de', 0, '#f7f7f7', 0.2, '#f4a582', 0.5, '#b2182b',
    ];
  }
  return ['match', ['get', 'band'], 'under', BAND_COLOURS.under, 'over', BAND_COLOURS.over, 'oversize', BAND_COLOURS.oversize, BAND_COLOURS.in];
}

// Grids changed by edits are drawn from the overlay; their tile features are hidden, and grids
// are selected, with feature state (a paint change: no tile is parsed again).
const HIDDEN = ['boolean', ['feature-state', 'hidden'], false];
const SELECTED = ['boolean', ['feature-state', 'sel'], false];
const fillOpacity = ['interpolate', ['linear'], ['zoom'], 14, ['case', HIDDEN, 0, 0.45], 16, ['case', HIDDEN, 0, 0.18]];
let hiddenNow = new Set();
let selectedNow = new Set();

// cases by state; open cases past their due time (due_at, RFC 3339 UTC, compares as text) dark red
function incidentColour() {
  const now = new Date().toISOString().replace(/\.\d+Z$/, '.000Z');
  return ['case',
    ['match', ['get', 'state'], ['closed', 'voided', 'rejected'], true, false], '#9e9e9e',
    ['all', ['has', 'due_at'], ['<', ['get', 'due_at'], now], ['!', ['match', ['get', 'state'], ['handled', 'verified', 'suspended'], true, false]]], '#7f0000',
    ['match', ['get', 'state'], ['handled', 'verified'], true, false], '#43a047',
    ['==', ['get', 'state'], 'suspended'], '#8d6e63',
    '#ff7043'];
}

function style() {
  const base = basemapLayers();
  const staff = S.session.may.incidents;
  const sources = {
    ...base.sources,
    communities: { type: 'vector', tiles: [tileUrl('communities')], maxzoom: 16 },
    grids: { type: 'vector', tiles: [tileUrl('grids')], maxzoom: 16, promoteId: { grids: 'code' } },
    buildings: { type: 'vector', tiles: [tileUrl('buildings')], minzoom: 14, maxzoom: 16, promoteId: { buildings: 'id' } },
    roads: { type: 'vector', tiles: [tileUrl('roads')], minzoom: 12, maxzoom: 16 },
    edited: { type: 'geojson', data: { type: 'FeatureCollection', features: [] }, promoteId: 'code' },
    labels: { type: 'geojson', data: { type: 'FeatureCollection', features: [] } },
    // streets (街道): few, so read whole from the OGC collection
    streets: { type: 'geojson', data: `${origin()}/collections/streets/items?limit=1000${S.gcj02 ? '&crs=gcj02' : ''}` },
    draw: { type: 'geojson', data: { type: 'FeatureCollection', features: [] } },
  };
  if (staff) {
    sources.incidents = { type: 'vector', tiles: [tileUrl('incidents')], minzoom: 12, maxzoom: 16 };
    sources.heat = { type: 'vector', tiles: [tileUrl('heat')], maxzoom: 16 };
  }
  const own = !base.layers.length;
  const layers = [
    { id: 'background', type: 'background', paint: { 'background-color': own ? '#f4f1ea' : 'rgba(0,0,0,0)' } },
    ...base.layers,
    { id: 'community-fill', type: 'fill', source: 'communities', 'source-layer': 'communities', paint: { 'fill-color': '#ffffff', 'fill-opacity': own ? 0.6 : 0 } },
    { id: 'roads', type: 'line', source: 'roads', 'source-layer': 'roads', layout: { visibility: own ? 'visible' : 'none', 'line-cap': 'round' },
      paint: { 'line-color': '#c9c2b4', 'line-width': ['interpolate', ['linear'], ['zoom'], 12, 0.5, 16, ['match', ['get', 'class'], ['primary', 'secondary', 'trunk', 'motorway'], 6, 3], 18, 9] } },
    { id: 'grid-fill', type: 'fill', source: 'grids', 'source-layer': 'grids', paint: { 'fill-color': gridFill(), 'fill-opacity': fillOpacity } },
    { id: 'edited-fill', type: 'fill', source: 'edited', paint: { 'fill-color': gridFill(), 'fill-opacity': ['interpolate', ['linear'], ['zoom'], 14, 0.45, 16, 0.18] } },
    { id: 'buildings', type: 'fill', source: 'buildings', 'source-layer': 'buildings',
      paint: {
        'fill-color': ['case', ['boolean', ['feature-state', 'sel'], false], '#0d47a1',
          ['match', ['coalesce', ['feature-state', 'c'], -1], ...PALETTE.flatMap((c, i) => [i, c]), '#9e9e9e']],
        'fill-opacity': ['case', ['boolean', ['feature-state', 'sel'], false], 0.95, 0.7],
        'fill-outline-color': '#555',
      } },
    { id: 'grid-line', type: 'line', source: 'grids', 'source-layer': 'grids', paint: { 'line-color': '#37474f', 'line-opacity': ['case', HIDDEN, 0, 1], 'line-width': ['interpolate', ['linear'], ['zoom'], 11, 0.6, 16, 2.2] } },
    { id: 'edited-line', type: 'line', source: 'edited', paint: { 'line-color': '#37474f', 'line-width': ['interpolate', ['linear'], ['zoom'], 11, 0.6, 16, 2.2] } },
    { id: 'grid-selected', type: 'line', source: 'grids', 'source-layer': 'grids', paint: { 'line-color': '#1565c0', 'line-width': 4, 'line-opacity': ['case', ['all', SELECTED, ['!', HIDDEN]], 1, 0] } },
    { id: 'edited-selected', type: 'line', source: 'edited', paint: { 'line-color': '#1565c0', 'line-width': 4, 'line-opacity': ['case', SELECTED, 1, 0] } },
    { id: 'pending', type: 'line', source: 'edited', filter: ['==', ['get', 'pending'], true], paint: { 'line-color': '#ff6f00', 'line-width': 3, 'line-dasharray': [2, 1] } },
    { id: 'street-line', type: 'line', source: 'streets', paint: { 'line-color': '#4a148c', 'line-opacity': 0.7, 'line-width': ['interpolate', ['linear'], ['zoom'], 10, 3, 16, 7] } },
    { id: 'community-line', type: 'line', source: 'communities', 'source-layer': 'communities', paint: { 'line-color': '#b71c1c', 'line-width': ['interpolate', ['linear'], ['zoom'], 10, 1, 16, 3.5] } },
    ...(staff
      ? [
          { id: 'heat', type: 'fill', source: 'heat', 'source-layer': 'heat', maxzoom: 14, paint: { 'fill-color': ['interpolate', ['linear'], ['get', 'count'], 3, '#fee5d9', 10, '#fcae91', 30, '#fb6a4a', 100, '#cb181d'], 'fill-opacity': 0.6 } },
          { id: 'incidents', type: 'circle', source: 'incidents', 'source-layer': 'incidents', minzoom: 14,
            paint: { 'circle-radius': 6, 'circle-stroke-color': '#fff', 'circle-stroke-width': 1.5,
              'circle-color': incidentColour() } },
        ]
      : []),
    { id: 'draw-line', type: 'line', source: 'draw', paint: { 'line-color': '#ff6f00', 'line-width': 2.5, 'line-dasharray': [3, 2] } },
    { id: 'grid-label', type: 'symbol', source: 'labels', minzoom: 13,
      layout: { 'text-field': ['format', ['get', 'name'], { 'font-scale': 0.95 }, '\n', {}, ['get', 'code'], { 'font-scale': 0.8 }], 'text-size': 13, 'text-max-width': 12 },
      paint: { 'text-color': '#263238', 'text-halo-color': '#ffffff', 'text-halo-width': 1.6 } },
    { id: 'grid-label-tiles', type: 'symbol', source: 'grids', 'source-layer': 'grids', minzoom: 14,
      layout: { visibility: 'none', 'text-field': ['get', 'name'], 'text-size': 12 },
      paint: { 'text-color': '#263238', 'text-halo-color': '#ffffff', 'text-halo-width': 1.6 } },
  ];
  return { version: 8, sources, layers };
}

export function createMap(container) {
  const ext = S.config?.extent || [-180, -85, 180, 85];
  const map = new maplibregl.Map({
    container,
    style: style(),
    bounds: [[ext[0], ext[1]], [ext[2], ext[3]]],
    fitBoundsOptions: { padding: 20 },
    maxZoom: 19,
    fadeDuration: 0,
    boxZoom: false,
    doubleClickZoom: false,
    attributionControl: { compact: true },
    localIdeographFontFamily: "'Noto Sans CJK SC', 'Noto Sans SC', 'WenQuanYi Zen Hei', sans-serif",
    transformRequest: (url) => (url.startsWith(origin()) ? { url, headers: authHeaders() } : { url }),
  });
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), 'top-left');
  map.addControl(new maplibregl.ScaleControl({ unit: 'metric' }), 'bottom-left');
  S.map = map;
  window.__wangge = S; // for scripts driving the page (tests read the state, never change it)
  return map;
}

// a new plan, date or session: sources and layers again
export function restyle() {
  if (!S.map) return;
  hiddenNow = new Set();
  selectedNow = new Set();
  S.map.setStyle(style(), { diff: false });
  S.map.once('styledata', () => {
    refreshOverlay();
    refreshLabels();
    paintBuildings();
    emit('restyled');
  });
}

export function refreshFilters() {
  const m = S.map;
  if (!m?.getLayer('grid-fill')) return;
  const state = (source, sourceLayer, code, st) => m.setFeatureState(sourceLayer ? { source, sourceLayer, id: code } : { source, id: code }, st);
  const hidden = new Set([...S.edited.keys(), ...S.removed]);
  for (const c of hiddenNow) if (!hidden.has(c)) state('grids', 'grids', c, { hidden: false });
  for (const c of hidden) if (!hiddenNow.has(c)) state('grids', 'grids', c, { hidden: true });
  hiddenNow = hidden;
  const sel = new Set(S.selG);
  for (const c of selectedNow) if (!sel.has(c)) { state('grids', 'grids', c, { sel: false }); state('edited', null, c, { sel: false }); }
  for (const c of sel) { state('grids', 'grids', c, { sel: true }); state('edited', null, c, { sel: true }); }
  selectedNow = sel;
  if (refreshFilters.colourBy !== S.colourBy) {
    refreshFilters.colourBy = S.colourBy;
    m.setPaintProperty('grid-fill', 'fill-color', gridFill());
    m.setPaintProperty('edited-fill', 'fill-color', gridFill());
  }
}

const shifted = (f) => (S.gcj02 && f.geometry ? { ...f, geometry: mapCoords(f.geometry, toGcj02) } : f);

// the grids changed by edits (and the dashed outline of a pending dry run)
export function refreshOverlay(pending = []) {
  const src = S.map?.getSource('edited');
  if (!src) return;
  const feats = [...S.edited.values()].filter((f) => !pending.some((p) => p.properties.code === f.properties.code));
  const all = [...feats, ...pending.map((p) => ({ ...p, properties: { ...p.properties, pending: true } }))].map(shifted);
  src.setData({ type: 'FeatureCollection', features: all });
  refreshFilters();
}

// one label per grid at its label point (from the grid table), or tile labels without it
export function refreshLabels() {
  const src = S.map?.getSource('labels');
  if (!src) return;
  const feats = [];
  for (const g of S.grids.values()) {
    if (!g.label || S.removed.has(g.code)) continue;
    feats.push(shifted({ type: 'Feature', geometry: { type: 'Point', coordinates: g.label }, properties: { code: g.code, name: g.name || g.code } }));
  }
  src.setData({ type: 'FeatureCollection', features: feats });
  S.map.setLayoutProperty('grid-label-tiles', 'visibility', S.grids.size ? 'none' : 'visible');
}

// colours of grids: greedy colouring over touching bounding boxes, so neighbours differ
export function colourGrids() {
  S.colours.clear();
  const rows = [...S.grids.values()].filter((g) => g.bbox);
  const touch = (a, b) => a[0] <= b[2] && b[0] <= a[2] && a[1] <= b[3] && b[1] <= a[3];
  for (const g of rows) {
    const used = new Set();
    for (const h of rows) if (S.colours.has(h.code) && touch(g.bbox, h.bbox)) used.add(S.colours.get(h.code));
    let c = 0;
    while (used.has(c) && c < PALETTE.length - 1) c++;
    S.colours.set(g.code, c);
  }
}

// buildings: colour of their grid and the selection (feature state, kept across tile loads)
export function paintBuildings(ids) {
  const m = S.map;
  if (!m?.getSource('buildings')) return;
  const list = ids || S.assignment.keys();
  for (const b of list) {
    const code = S.assignment.get(b);
    m.setFeatureState({ source: 'buildings', sourceLayer: 'buildings', id: b }, { c: S.colours.get(code) ?? -1, sel: S.selB.has(b) });
  }
}

export function drawShape(geom) {
  const src = S.map?.getSource('draw');
  if (src) src.setData({ type: 'FeatureCollection', features: geom ? [{ type: 'Feature', geometry: geom, properties: {} }] : [] });
}

export function zoomTo(bbox) {
  if (!bbox || !S.map) return;
  let [a, b, c, d] = bbox;
  if (S.gcj02) {
    [a, b] = toGcj02([a, b]);
    [c, d] = toGcj02([c, d]);
  }
  S.map.fitBounds([[a, b], [c, d]], { padding: 60, maxZoom: 17, duration: 0 });
}
