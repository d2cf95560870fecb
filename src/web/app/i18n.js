// Every label of the page, in one table: zh-CN first, English beside it. t('key', {n: 3})
// fills {n}. The language is kept for the tab (sessionStorage) and switched from the top bar.

const MESSAGES = {
  title: ['网格规划', 'Grid planning'],
  login: ['登录', 'Sign in'],
  logout: ['退出', 'Sign out'],
  token: ['访问令牌', 'Access token'],
  token_hint: ['粘贴 wg_ 开头的令牌（仅本标签页保存）', 'Paste a wg_ token (kept for this tab only)'],
  public: ['公众', 'public'],
  role: ['角色', 'Role'],
  plan: ['方案', 'Plan'],
  in_force: ['现行', 'in force'],
  draft: ['草案', 'draft'],
  published: ['已发布', 'published'],
  retired: ['已废止', 'retired'],
  date: ['日期', 'Date'],
  colour_by: ['着色', 'Colour'],
  by_band: ['按户数区间', 'by band'],
  by_deviation: ['按偏差', 'by deviation'],
  search: ['搜索编码、名称或楼栋', 'Search code, name or building'],
  not_found: ['未找到：{q}', 'Not found: {q}'],
  legend: ['图例', 'Legend'],
  under: ['低于区间', 'under band'],
  in: ['区间内', 'in band'],
  over: ['高于区间', 'over band'],
  oversize: ['单栋超限', 'one building over'],
  locked: ['已锁定', 'locked'],
  grids: ['网格', 'Grids'],
  edit: ['编辑', 'Edit'],
  compare: ['比较', 'Compare'],
  incidents: ['事件', 'Incidents'],
  grid: ['网格', 'Grid'],
  code: ['编码', 'Code'],
  name: ['名称', 'Name'],
  community: ['社区', 'Community'],
  street: ['街道', 'Street'],
  households: ['户数', 'Households'],
  buildings: ['楼栋', 'Buildings'],
  weight: ['工作量', 'Weight'],
  pp: ['紧凑度 (Polsby-Popper)', 'Compactness (Polsby-Popper)'],
  band: ['区间', 'Band'],
  deviation: ['偏差', 'Deviation'],
  exception: ['例外说明', 'Exception'],
  exc_under: ['户数 {h} 低于下限 {min}', '{h} households, below the minimum {min}'],
  exc_over: ['户数 {h} 高于上限 {max}', '{h} households, above the maximum {max}'],
  exc_oversize: ['单栋楼 {h} 户，超过上限 {max}，楼栋不可拆分', 'one building of {h} households above the maximum {max}; buildings are never split'],
  worker: ['网格员', 'Grid worker'],
  phone: ['公开电话', 'Public phone'],
  none: ['无', 'none'],
  assign_worker: ['指派网格员', 'Assign worker'],
  save: ['保存', 'Save'],
  out_of_band: ['区间外网格 {n} 个', '{n} grids out of band'],
  all_in_band: ['全部网格在区间内', 'All grids in band'],
  table: ['网格表', 'Grid table'],
  select_tool: ['选择工具', 'Selection'],
  tool_click: ['点选', 'Click'],
  tool_box: ['框选', 'Box'],
  tool_lasso: ['套索', 'Lasso'],
  tool_line: ['划线', 'Line'],
  selected: ['已选楼栋 {b} 栋，网格 {g} 个', '{b} buildings, {g} grids selected'],
  clear: ['清除选择', 'Clear'],
  assign_to: ['划入网格', 'Assign to grid'],
  assign: ['划入', 'Assign'],
  merge: ['合并', 'Merge'],
  split: ['拆分', 'Split'],
  lock: ['锁定', 'Lock'],
  unlock: ['解锁', 'Unlock'],
  resolve: ['重新求解', 'Re-solve'],
  new_grid: ['新建网格', 'New grid'],
  undo: ['撤销', 'Undo'],
  redo: ['重做', 'Redo'],
  reason: ['理由（区间外必填）', 'Reason (required out of band)'],
  reason_needed: ['有网格将在区间外：请填写理由', 'A grid will be out of band: give a reason'],
  pending: ['待定变更（预演）', 'Pending change (dry run)'],
  before_after: ['{code}：{a} → {b} 户', '{code}: {a} → {b} households'],
  moved: ['迁移 {n} 栋 {h} 户', '{n} buildings, {h} households move'],
  draft_only: ['只能编辑草案：先复制为草案', 'Only drafts can be edited: copy to a draft first'],
  copy_draft: ['复制为草案', 'Copy to a draft'],
  planner_only: ['编辑需要规划员令牌', 'Editing needs a planner token'],
  done: ['已完成：{s}', 'Done: {s}'],
  refused: ['未执行：{m}', 'Refused: {m}'],
  against: ['对照方案', 'Against plan'],
  diff: ['比较', 'Compare'],
  changed_grids: ['变化网格 {n} 个', '{n} grids changed'],
  moved_buildings: ['迁移楼栋', 'Moved buildings'],
  building: ['楼栋', 'Building'],
  from: ['原网格', 'From'],
  to: ['新网格', 'To'],
  handover: ['下载交接清单 (CSV)', 'Download handover list (CSV)'],
  publish: ['发布', 'Publish'],
  effective: ['生效日期', 'Effective date'],
  published_ok: ['方案 {id} 已发布，自 {d} 起生效', 'Plan {id} published, in force from {d}'],
  conflict: ['方案已被他人修改（{who}，{at}）：请重新加载', 'The plan was changed by someone else ({who}, {at}): reload'],
  reload: ['重新加载', 'Reload'],
  cases: ['事件 {n} 件', '{n} cases'],
  case: ['事件', 'Case'],
  state: ['状态', 'State'],
  due: ['时限', 'Due'],
  overdue: ['已超时', 'overdue'],
  history: ['处理记录', 'History'],
  action: ['处理', 'Action'],
  error: ['错误：{m}', 'Error: {m}'],
  loading: ['加载中…', 'Loading…'],
  zoom_in_buildings: ['放大到 15 级以上可选楼栋', 'Zoom to 15+ to select buildings'],
  cut_warning: ['{code} 将被切成 {n} 块', '{code} would be cut into {n} pieces'],
  lang: ['English', '中文'],
  check: ['检查方案', 'Check plan'],
  check_ok: ['硬性规则全部通过', 'All hard rules hold'],
  check_failed: ['有硬性规则未通过', 'Some hard rules fail'],
  in_band_pct: ['区间内比例', 'In band'],
  split_buildings: ['被拆分楼栋', 'Buildings split'],
  unassigned_buildings: ['未分配楼栋', 'Buildings unassigned'],
  road_following: ['沿街巷边界比例', 'Boundaries along roads'],
  basemap: ['底图', 'Basemap'],
  own_basemap: ['本地底图', 'Own basemap'],
  external_basemap: ['外部底图', 'External basemap'],
  jump: ['定位', 'Go'],
  version: ['版本 {v}', 'version {v}'],
  edits: ['编辑记录', 'Edit log'],
  who_when: ['{who} · {at}', '{who} · {at}'],
  state_opened: ['已受理', 'opened'],
  state_dispatched: ['已派遣', 'dispatched'],
  state_in_progress: ['处置中', 'in progress'],
  state_resolved: ['已处置', 'resolved'],
  state_closed: ['已结案', 'closed'],
  state_suspended: ['挂账', 'suspended'],
  state_returned: ['已退回', 'returned'],
};

let lang = sessionStorage.getItem('wangge.lang') || 'zh-CN';

export function language() {
  return lang;
}

export function setLanguage(l) {
  lang = l;
  sessionStorage.setItem('wangge.lang', l);
  document.documentElement.lang = l;
}

export function t(key, vars = {}) {
  const m = MESSAGES[key];
  if (!m) return key;
  let s = m[lang === 'en' ? 1 : 0];
  for (const [k, v] of Object.entries(vars)) s = s.replaceAll(`{${k}}`, String(v));
  return s;
}

// Fill every element with data-i18n (text) or data-i18n-placeholder (placeholder).
export function translate(root = document) {
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll('[data-i18n-title]')) el.title = t(el.dataset.i18nTitle);
}
