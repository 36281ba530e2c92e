// The drive: state, navigation and the views (locker, folder, search, transfers,
// peers, trash, links, settings, sending through a request link) and dialogs
// (folder link, open link, add folder). Views render from `state` and call api.js
// for every backend action; links.js and versions.js hold the link and version
// views.

import { api, ApiError, hasToken, isDesktop, onNotice, onShellEvent, openFile, refreshNow, shellCommand, subscribe, upload } from './api.js';
import { applyStatic, lang, onLangChange, setLang, t } from './i18n.js';
import { copyText, el, fileIcon, humanSize, humanTime, morph, replace, shortPeer, uiIcon } from './dom.js';
import { EntryList, parentOf, sortEntries } from './files.js';
import { closeMenu, errorLine, field, loading, openDialog, openMenu, placeholder, showError, toast } from './widgets.js';
import { linkDialog, renderLinks, renderSend, requestDialog, sendFiles, sendPaths } from './links.js';
import { versionsDialog } from './versions.js';

const PREFS_KEY = 'peerbox.prefs';

const state = {
  status: null,
  error: null,
  /** {kind: 'home'|'folder'|'search'|'transfers'|'peers'|'trash', id?, path?, q?} */
  view: { kind: 'home' },
  /** The last browse/search/trash answer for the current view. */
  data: null,
  dataKey: null,
  dataError: null,
  loading: false,
  signature: null,
  prefs: loadPrefs(),
  list: null,
  reveal: null,
  /** Browser uploads of this page: {id, name, sent, total, done, error}. */
  uploads: [],
  /** The request link being sent through: {link, password, probe, error, items}. */
  send: null,
};

function loadPrefs() {
  const base = { mode: 'list', sort: 'name', desc: false };
  try {
    return { ...base, ...JSON.parse(localStorage.getItem(PREFS_KEY) || '{}') };
  } catch {
    return base;
  }
}

function savePrefs() {
  try {
    localStorage.setItem(PREFS_KEY, JSON.stringify(state.prefs));
  } catch {
    // not persisted
  }
}

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- navigation

function sameView(a, b) {
  return a.kind === b.kind && a.id === b.id && (a.path || '') === (b.path || '') && a.q === b.q;
}

/** Go to a view; pushes a history entry so the browser's Back works. */
function navigate(view, { push = true, replaceEntry = false } = {}) {
  closeMenu();
  if (push && !sameView(view, state.view)) {
    if (replaceEntry) history.replaceState({ view }, '');
    else history.pushState({ view }, '');
  }
  const changed = !sameView(view, state.view);
  state.view = view;
  if (changed) {
    // The listing about to load reflects the folder as the last status saw it;
    // the next status that differs must reload it (a null here would swallow
    // that first change).
    state.signature = view.kind === 'folder' || view.kind === 'trash' ? folderSignature(folderById(view.id)) : null;
    state.data = null;
    state.dataError = null;
    state.dataKey = null;
    state.list = null;
  }
  if (view.kind !== 'search') $('search').value = '';
  render();
  load();
}

window.addEventListener('popstate', (e) => {
  if (e.state && e.state.view) navigate(e.state.view, { push: false });
});

/** Whether this device may change a folder (edits would reach the others). */
function canWrite(f) {
  return Boolean(f && f.read_write && f.mode !== 'receive-only' && !f.paused);
}

function folderById(id) {
  return state.status?.folders.find((f) => f.id === id) || null;
}

function up() {
  const v = state.view;
  if (v.kind !== 'folder') return;
  if (!v.path) navigate({ kind: 'home' });
  else navigate({ kind: 'folder', id: v.id, path: parentOf(v.path) });
}

// ---------------------------------------------------------------- loading data

function viewKey(v) {
  return JSON.stringify([v.kind, v.id || '', v.path || '', v.q || '']);
}

async function load({ quiet = false } = {}) {
  const v = state.view;
  const key = viewKey(v);
  let fn = null;
  if (v.kind === 'folder') fn = () => api.browse(v.id, v.path || '');
  else if (v.kind === 'search') fn = () => api.search(v.q);
  else if (v.kind === 'trash' && v.id) fn = () => api.trashList(v.id);
  else if (v.kind === 'links') fn = () => api.links();
  if (!fn) return;
  if (!quiet) {
    state.loading = true;
    renderMain();
  }
  try {
    const data = await fn();
    if (viewKey(state.view) !== key) return;
    state.data = data;
    state.dataError = null;
    state.dataKey = key;
  } catch (e) {
    if (viewKey(state.view) !== key) return;
    if (!quiet || !state.data) state.dataError = e;
  } finally {
    if (viewKey(state.view) === key) state.loading = false;
  }
  if (viewKey(state.view) === key) renderMain();
}

/** What, in a folder's status, means its listing may have changed. */
function folderSignature(f) {
  if (!f) return '';
  const s = f.state || {};
  return [f.local_files, f.local_bytes, f.need_files, f.need_bytes, s.state, s.revision, (s.conflicts || []).length, (s.transfers || []).length].join('|');
}

let lastStatusJson = null;

function onStatus(status, error) {
  const hadError = state.error;
  state.error = error;
  renderBanner();
  // Re-render only on change: a re-render every second would steal keyboard focus.
  const json = status ? JSON.stringify(status) : null;
  if (json === lastStatusJson && Boolean(hadError) === Boolean(error)) return;
  lastStatusJson = json;
  if (status) state.status = status;
  keepFocus($('nav'), renderSidebar);
  if (state.view.kind === 'folder' || (state.view.kind === 'trash' && state.view.id)) {
    const sig = folderSignature(folderById(state.view.id));
    if (state.signature !== null && sig !== state.signature) load({ quiet: true });
    state.signature = sig;
    renderCrumbs();
  } else if (['home', 'transfers', 'peers', 'settings'].includes(state.view.kind) || (state.view.kind === 'trash' && !state.view.id)) {
    keepFocus($('content'), renderMain);
  } else if (state.view.kind === 'links') {
    // Uses and states move with downloads and joins.
    load({ quiet: true });
  }
  if (hadError && !error && state.dataError) load();
}

// ---------------------------------------------------------------- rendering

/** Run `render`, then put focus back on the same-numbered button inside `root`. */
function keepFocus(root, render) {
  const ae = document.activeElement;
  const buttons = () => [...root.querySelectorAll('button, select, input')];
  const idx = ae && root.contains(ae) ? buttons().indexOf(ae) : -1;
  render();
  if (idx >= 0) buttons()[idx]?.focus({ preventScroll: true });
}

function render() {
  renderSidebar();
  renderCrumbs();
  renderTools();
  renderMain();
}

function renderBanner() {
  const b = $('banner');
  if (!state.error) {
    b.hidden = true;
    replace(b);
    return;
  }
  const msg = state.error.status === 401 ? t('error.token') : state.error.code === 'offline' ? t('error.offline') : state.error.message;
  replace(b, uiIcon('alert'), el('span', { text: msg }));
  b.hidden = false;
}

function folderBadge(f) {
  const s = (f.state && f.state.state) || 'idle';
  const pct = Math.floor(Number(f.completion) || 0);
  let cls = 'ok';
  let label = t('fstate.idle');
  let text = '';
  if (f.state && f.state.error) {
    cls = 'err';
    label = f.state.error;
    text = '!';
  } else if (s === 'syncing' || pct < 100) {
    cls = 'busy';
    label = t('fstate.syncing', { pct });
    text = `${pct}%`;
  } else if (s !== 'idle') {
    cls = s === 'paused' || s === 'stopped' ? 'warn' : 'busy';
    label = t(`fstate.${s}`);
  }
  if (f.paused) {
    cls = 'warn';
    label = `${t('fstate.paused')}: ${f.paused}`;
  }
  return el('span', { class: `fbadge fbadge-${cls}`, attrs: { title: label, 'aria-label': label } }, el('span', { class: 'dot', attrs: { 'aria-hidden': 'true' } }), text ? el('span', { text }) : null);
}

function navItem({ icon, iconNode, label, view, count, badge, current }) {
  return el(
    'li',
    {},
    el(
      'button',
      {
        class: `nav-item${current ? ' current' : ''}`,
        attrs: { type: 'button', 'aria-current': current ? 'page' : null },
        on: { click: () => navigate(view) },
      },
      iconNode || uiIcon(icon),
      el('span', { class: 'nav-label', text: label }),
      count ? el('span', { class: 'count', text: String(count) }) : null,
      badge || null,
    ),
  );
}

function renderSidebar() {
  const folders = state.status?.folders || [];
  const v = state.view;
  const mine = folders.filter((f) => f.read_write);
  const shared = folders.filter((f) => !f.read_write);
  const folderItems = (list, empty) =>
    list.length
      ? list.map((f) =>
          navItem({
            iconNode: fileIcon('folder'),
            label: f.name,
            view: { kind: 'folder', id: f.id, path: '' },
            badge: folderBadge(f),
            current: v.kind === 'folder' && v.id === f.id,
          }),
        )
      : [el('li', { class: 'nav-empty', text: empty })];
  const transfers = folders.reduce((n, f) => n + ((f.state && f.state.transfers) || []).length, 0);
  const peersOnline = (state.status?.peers || []).filter((p) => p.connected).length;
  const requests = (state.status?.requests || []).length;
  const section = (title, view, items) =>
    el(
      'div',
      { class: 'nav-section' },
      el(
        'h2',
        {},
        el('button', {
          class: `nav-title${v.kind === 'home' && view ? ' current' : ''}`,
          attrs: { type: 'button' },
          text: title,
          on: { click: () => navigate(view || { kind: 'home' }) },
        }),
      ),
      el('ul', {}, items),
    );
  morph(
    $('nav'),
    'nav',
    section(t('nav.locker'), { kind: 'home' }, folderItems(mine, t('nav.noFolders'))),
    section(t('nav.shared'), null, folderItems(shared, t('nav.noShared'))),
    el(
      'ul',
      { class: 'nav-main' },
      navItem({ icon: 'transfers', label: t('nav.transfers'), view: { kind: 'transfers' }, count: transfers, current: v.kind === 'transfers' }),
      navItem({ icon: 'peers', label: t('nav.peers'), view: { kind: 'peers' }, count: peersOnline, current: v.kind === 'peers' }),
      requests
        ? navItem({ icon: 'requests', label: t('nav.requests'), view: { kind: 'peers' }, count: requests, current: false })
        : null,
      navItem({
        icon: 'trash',
        label: t('nav.trash'),
        view: { kind: 'trash', id: v.kind === 'folder' ? v.id : folders[0]?.id },
        current: v.kind === 'trash',
      }),
      navItem({ icon: 'link', label: t('nav.links'), view: { kind: 'links' }, current: v.kind === 'links' }),
      navItem({ icon: 'settings', label: t('nav.settings'), view: { kind: 'settings' }, current: v.kind === 'settings' }),
    ),
    el(
      'button',
      { class: 'btn add-folder', attrs: { type: 'button' }, on: { click: addFolderDialog } },
      uiIcon('plus'),
      el('span', { text: t('nav.addFolder') }),
    ),
  );
  const local = folders.reduce((n, f) => n + (Number(f.local_bytes) || 0), 0);
  const need = folders.reduce((n, f) => n + (Number(f.need_bytes) || 0), 0);
  const free = state.status?.free_bytes;
  const hasFree = typeof free === 'number' && Number.isFinite(free);
  // Used against what the disks could still take: the bar fills as the disks do.
  const max = hasFree ? local + need + free : local + need;
  const bar = el('progress', { attrs: { max: String(max || 1), value: String(local), 'aria-label': t('storage.label') } });
  morph(
    $('storage'),
    'storage',
    el('div', { class: 'storage-title', text: t('storage.label') }),
    bar,
    el('div', { class: 'storage-line', text: t('storage.line', { local: humanSize(local), need: humanSize(need) }) }),
    hasFree ? el('div', { class: 'storage-line storage-free', text: t('storage.free', { free: humanSize(free) }) }) : null,
  );
}

function crumb(label, view, current) {
  if (current) return el('li', {}, el('span', { class: 'crumb current', attrs: { 'aria-current': 'location' }, text: label }));
  return el('li', {}, el('button', { class: 'crumb', attrs: { type: 'button' }, text: label, on: { click: () => navigate(view) } }));
}

function renderCrumbs() {
  const v = state.view;
  const items = [];
  const home = { kind: 'home' };
  if (v.kind === 'home') items.push(crumb(t('nav.locker'), home, true));
  else if (v.kind === 'folder') {
    const f = folderById(v.id);
    const root = f ? f.name : v.id;
    items.push(crumb(f && !f.read_write ? t('nav.shared') : t('nav.locker'), home, false));
    const segs = v.path ? v.path.split('/') : [];
    items.push(crumb(root, { kind: 'folder', id: v.id, path: '' }, segs.length === 0));
    segs.forEach((s, i) => {
      items.push(crumb(s, { kind: 'folder', id: v.id, path: segs.slice(0, i + 1).join('/') }, i === segs.length - 1));
    });
  } else if (v.kind === 'search') {
    items.push(crumb(t('nav.locker'), home, false));
    items.push(crumb(t('search.title', { q: v.q }), v, true));
  } else {
    items.push(crumb(t(`nav.${v.kind}`), v, true));
  }
  replace($('crumbs'), el('ol', {}, items));
}

function renderTools() {
  const { mode, sort } = state.prefs;
  $('view-list').setAttribute('aria-pressed', String(mode === 'list'));
  $('view-grid').setAttribute('aria-pressed', String(mode === 'grid'));
  $('sort').value = sort;
  const inFolder = state.view.kind === 'folder';
  const listed = inFolder || state.view.kind === 'search';
  for (const id of ['view-list', 'view-grid', 'sort']) $(id).disabled = !listed;
  $('btn-link').disabled = !inFolder;
  $('btn-link').title = inFolder ? '' : t('share.noFolder');
  const writable = inFolder && canWrite(folderById(state.view.id));
  $('btn-upload').disabled = !writable;
  $('btn-mkdir').disabled = !writable;
  $('btn-request').disabled = !writable;
  $('lang').value = lang();
}

function renderMain() {
  const main = $('content');
  const v = state.view;
  if (!hasToken() && !state.status) {
    replace(main, placeholder({ icon: 'alert', kind: 'error', title: t('error.token') }));
    return;
  }
  if (v.kind === 'home') return renderHome(main);
  if (v.kind === 'folder') return renderFolder(main);
  if (v.kind === 'search') return renderSearch(main);
  if (v.kind === 'transfers') return renderTransfers(main);
  if (v.kind === 'peers') return renderPeers(main);
  if (v.kind === 'trash') return renderTrash(main);
  if (v.kind === 'settings') return renderSettings(main);
  if (v.kind === 'links') return renderLinks(main, state.data, { onChange: () => load({ quiet: true }) });
  if (v.kind === 'send' && state.send) return renderSend(main, state.send, { rerender: renderIfSend, onUploads: refreshNow });
  return undefined;
}

function formatCount(n) {
  return new Intl.NumberFormat(lang() === 'ko' ? 'ko-KR' : 'en-US').format(Number(n) || 0);
}

function viewTitle(text, ...extra) {
  return el('div', { class: 'view-head' }, el('h1', { text }), ...extra);
}

// ---------------------------------------------------------------- home (all folders)

function renderHome(main) {
  if (!state.status) {
    replace(main, state.error ? placeholder({ icon: 'alert', kind: 'error', title: state.error.message }) : loading());
    return;
  }
  const folders = state.status.folders;
  if (!folders.length) {
    replace(
      main,
      placeholder({
        icon: 'locker',
        title: t('home.empty.title'),
        body: t('home.empty.body'),
        action: { label: t('top.openLink'), run: joinDialog },
      }),
    );
    return;
  }
  const card = (f) =>
    el(
      'button',
      {
        class: 'card',
        attrs: { type: 'button', title: f.path },
        on: { click: () => navigate({ kind: 'folder', id: f.id, path: '' }) },
      },
      fileIcon('folder'),
      el('span', { class: 'card-name', text: f.name }),
      el('span', { class: 'card-meta', text: `${t(`mode.${f.mode}`)} · ${f.read_write ? t('rights.rw') : t('rights.ro')}` }),
      el('span', { class: 'card-meta', text: t('home.files', { n: formatCount(f.local_files), size: humanSize(f.local_bytes) }) }),
      el('progress', { attrs: { max: '100', value: String(Math.floor(Number(f.completion) || 0)), 'aria-label': t('fstate.syncing', { pct: Math.floor(Number(f.completion) || 0) }) } }),
      folderBadge(f),
    );
  const mine = folders.filter((f) => f.read_write);
  const shared = folders.filter((f) => !f.read_write);
  morph(
    main,
    'home',
    viewTitle(t('home.title')),
    mine.length ? el('div', { class: 'cards' }, mine.map(card)) : null,
    shared.length ? el('h2', { class: 'sub-head', text: t('nav.shared') }) : null,
    shared.length ? el('div', { class: 'cards' }, shared.map(card)) : null,
  );
}

// ---------------------------------------------------------------- folder listing

function transferProgress(folder) {
  const m = new Map();
  for (const tr of folder?.state?.transfers || []) {
    const size = Number(tr.size) || 0;
    m.set(tr.path, size ? Math.floor((100 * (Number(tr.had) || 0)) / size) : 0);
  }
  return m;
}

function renderFolder(main) {
  const v = state.view;
  const f = folderById(v.id) || state.data?.folder;
  if (state.dataError && !state.data) {
    replace(
      main,
      placeholder({
        icon: 'alert',
        kind: 'error',
        title: t('folder.error'),
        body: state.dataError.message,
        action: { label: t('folder.retry'), run: () => load() },
      }),
    );
    return;
  }
  if (!state.data) {
    replace(main, loading());
    return;
  }
  const entries = sortEntries([...state.data.entries], state.prefs.sort, state.prefs.desc);
  const count = el('span', { class: 'muted count-line', text: t('folder.count', { n: formatCount(entries.length) }) });
  const head = viewTitle(
    v.path ? v.path.split('/').pop() : f?.name || '',
    f ? el('span', { class: 'chip', text: `${t(`mode.${f.mode}`)} · ${f.read_write ? t('rights.rw') : t('rights.ro')}` }) : null,
    f ? folderBadge(f) : null,
    count,
  );
  const conflicts = f?.state?.conflicts || [];
  const notes = [];
  if (f?.state?.error) notes.push(el('p', { class: 'note note-error', attrs: { role: 'alert' }, text: f.state.error }));
  if (conflicts.length) notes.push(el('p', { class: 'note note-warn', text: `${t('state.conflict')}: ${conflicts.join(', ')}` }));
  if (!entries.length) {
    replace(main, head, notes, placeholder({ icon: 'locker', title: t('folder.empty.title'), body: t('folder.empty.body') }));
    state.list = null;
    return;
  }
  const hadFocus = state.list && state.list.list.contains(document.activeElement);
  const prevActive = state.list ? state.list.entries[state.list.active]?.path : null;
  const selected = state.list ? state.list.selected : state.reveal ? new Set([`\u0000${state.reveal}`]) : new Set();
  const list = new EntryList({
    entries,
    mode: state.prefs.mode,
    search: false,
    sort: { key: state.prefs.sort, desc: state.prefs.desc },
    progress: transferProgress(f),
    selected,
    onOpen: (e) => openEntry(v.id, e),
    onUp: up,
    onMenu: (sel, x, y) => entryMenu(v.id, sel, x, y),
    onSort: sortBy,
    onSelect: (sel) => {
      count.textContent = sel.length ? t('folder.selected', { n: sel.length }) : t('folder.count', { n: formatCount(entries.length) });
    },
  });
  state.list = list;
  const scroll = main.scrollTop;
  replace(main, head, notes, list.root);
  main.scrollTop = scroll;
  const again = entries.findIndex((e) => e.path === (prevActive || state.reveal));
  if (again >= 0) list.setActive(again);
  state.reveal = null;
  const ae = document.activeElement;
  if (hadFocus || ae === document.body || ae === main || (ae && ae.closest('#content') && !ae.closest('.list'))) list.focus();
}

function sortBy(key) {
  if (state.prefs.sort === key) state.prefs.desc = !state.prefs.desc;
  else {
    state.prefs.sort = key;
    state.prefs.desc = false;
  }
  savePrefs();
  renderTools();
  renderMain();
}

async function keepOffline(folderId, entry) {
  toast(t('toast.fetching', { name: entry.name }));
  try {
    await api.fetch(folderId, entry.path);
    toast(t('toast.fetched', { name: entry.name }));
    refreshNow();
    load({ quiet: true });
  } catch (e) {
    toast(e.message, 'error');
  }
}

function openEntry(folderId, entry) {
  if (entry.dir) {
    navigate({ kind: 'folder', id: folderId, path: entry.path });
  } else if (entry.state === 'remote') {
    keepOffline(folderId, entry);
  } else {
    openFile(folderId, entry.path).catch((e) => toast(e.message, 'error'));
  }
}

async function edit(run, done) {
  try {
    await run();
    if (done) toast(done);
    refreshNow();
    load({ quiet: true });
  } catch (e) {
    toast(e.message, 'error');
  }
}

function renameDialog(folderId, entry, moving) {
  const input = el('input', { attrs: { type: 'text', required: true, spellcheck: 'false', autocomplete: 'off', value: moving ? entry.path : entry.name } });
  const parent = parentOf(entry.path);
  formDialog(
    moving ? t('edit.moveTitle', { name: entry.name }) : t('edit.renameTitle', { name: entry.name }),
    moving ? t('menu.move') : t('menu.rename'),
    [[moving ? t('edit.moveTo') : t('edit.newName'), input]],
    async () => {
      const v = input.value.trim().replace(/^\/+|\/+$/g, '');
      const to = moving ? v : parent ? `${parent}/${v}` : v;
      await api.rename(folderId, entry.path, to);
      load({ quiet: true });
    },
    t('toast.done'),
  );
}

function mkdirDialog() {
  const v = state.view;
  const input = el('input', { attrs: { type: 'text', required: true, spellcheck: 'false', autocomplete: 'off' } });
  formDialog(t('edit.mkdirTitle'), t('edit.create'), [[t('edit.newName'), input]], async () => {
    const r = await api.mkdir(v.id, v.path || '', input.value.trim());
    state.reveal = r.path;
    load({ quiet: true });
  }, t('toast.done'));
}

function deleteEntries(folderId, sel) {
  const names = sel.map((e) => e.name);
  openDialog(t('edit.deleteTitle', { n: sel.length }), (close) => {
    const go = el('button', { class: 'btn danger', attrs: { type: 'button' }, text: t('menu.delete') });
    go.addEventListener('click', () => {
      close();
      edit(() => api.del(folderId, sel.map((e) => e.path)), t('toast.deleted', { n: sel.length }));
    });
    return el(
      'div',
      {},
      el('p', { text: t('edit.deleteBody') }),
      el('ul', { class: 'plain names' }, names.slice(0, 10).map((n) => el('li', { text: n }))),
      names.length > 10 ? el('p', { class: 'muted', text: `+${names.length - 10}` }) : null,
      el('div', { class: 'actions' }, el('button', { class: 'btn', attrs: { type: 'button' }, text: t('dialog.cancel'), on: { click: close } }), go),
    );
  });
}

// ---------------------------------------------------------------- bringing files in

/** Files of a browser drop, with their paths (folders walked). */
async function droppedFiles(dt) {
  const out = [];
  const entries = [...(dt.items || [])].map((i) => (i.webkitGetAsEntry ? i.webkitGetAsEntry() : null)).filter(Boolean);
  if (!entries.length) return [...(dt.files || [])].map((f) => ({ file: f, path: f.name }));
  const walk = async (entry, prefix) => {
    if (entry.isFile) {
      const file = await new Promise((res, rej) => entry.file(res, rej));
      out.push({ file, path: prefix + entry.name });
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
        if (!batch.length) break;
        for (const e of batch) await walk(e, `${prefix}${entry.name}/`);
      }
    }
  };
  for (const e of entries) await walk(e, '');
  return out;
}

/** Upload browser files into the current folder, or (outside one) for a quick share. */
async function uploadFiles(items) {
  const v = state.view;
  const f = v.kind === 'folder' ? folderById(v.id) : null;
  if (f && !canWrite(f)) {
    toast(t('edit.readOnly'), 'error');
    return;
  }
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  const base = f ? (v.path ? `${v.path}/` : '') : `${stamp}/`;
  const job = { id: `up-${Date.now()}`, name: items.length === 1 ? items[0].path : t('upload.many', { n: items.length }), sent: 0, total: items.reduce((n, i) => n + i.file.size, 0), error: null };
  state.uploads.push(job);
  renderIfTransfers();
  const tops = new Set();
  try {
    for (const item of items) {
      const before = job.sent;
      const r = await upload(f ? f.id : null, base + item.path, item.file, (loaded) => {
        job.sent = before + loaded;
        renderIfTransfers();
      });
      job.sent = before + item.file.size;
      if (!f && r && r.abs) {
        // Share the top of what was dropped: the file, or the folder it came in.
        const top = item.path.split('/')[0];
        tops.add(r.abs.slice(0, r.abs.length - item.path.length) + top);
      }
    }
    job.done = true;
    toast(t('toast.uploaded', { name: job.name }));
  } catch (e) {
    job.error = e.message;
    toast(e.message, 'error');
  }
  renderIfTransfers();
  if (f) load({ quiet: true });
  else if (tops.size && !job.error) shareFilesDialog([...tops], job.name);
}

function renderIfTransfers() {
  if (state.view.kind === 'transfers') renderMain();
}

function renderIfSend() {
  if (state.view.kind === 'send') renderMain();
}

/** Opens the page that sends files through request link `link`. */
function openSend(link, password) {
  state.send = { link, password: password || '', probe: null, error: null, items: [] };
  navigate({ kind: 'send' });
}

/** Native paths dropped on the desktop window: copy into the folder, or share in place. */
function onDropPaths(payload) {
  const paths = Array.isArray(payload && payload.paths) ? payload.paths.filter((p) => typeof p === 'string') : [];
  if (!paths.length) return;
  const v = state.view;
  if (v.kind === 'send' && state.send?.probe) {
    sendPaths(state.send, paths, renderIfSend);
    return;
  }
  const f = v.kind === 'folder' ? folderById(v.id) : null;
  if (f) {
    edit(() => api.addPaths(f.id, v.path || '', paths), t('toast.added.files', { n: paths.length }));
  } else {
    shareFilesDialog(paths, paths.length === 1 ? paths[0].split(/[/\\]/).pop() : t('upload.many', { n: paths.length }));
  }
}

function pickFiles() {
  const input = el('input', { attrs: { type: 'file', multiple: true }, class: 'offscreen' });
  input.addEventListener('change', () => {
    const items = [...input.files].map((file) => ({ file, path: file.name }));
    input.remove();
    if (items.length) uploadFiles(items);
  });
  document.body.append(input);
  input.click();
}

function setupDrop() {
  let depth = 0;
  const shade = $('drop-shade');
  const hasFiles = (e) => [...(e.dataTransfer?.types || [])].includes('Files');
  document.addEventListener('dragenter', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth++;
    shade.hidden = false;
    shade.textContent = state.view.kind === 'folder' ? t('drop.folder') : state.view.kind === 'send' ? t('drop.send') : t('drop.share');
  });
  document.addEventListener('dragover', (e) => {
    if (hasFiles(e)) e.preventDefault();
  });
  document.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1);
    if (!depth) shade.hidden = true;
  });
  document.addEventListener('drop', async (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth = 0;
    shade.hidden = true;
    const items = await droppedFiles(e.dataTransfer);
    if (!items.length) return;
    if (state.view.kind === 'send') {
      if (state.send?.probe) sendFiles(state.send, items, renderIfSend, refreshNow);
    } else uploadFiles(items);
  });
}

function absPath(folderId, entry) {
  const f = folderById(folderId);
  return f ? `${f.path.replace(/[/\\]$/, '')}/${entry.path}` : entry.path;
}

function entryMenu(folderId, sel, x, y) {
  const one = sel.length === 1 ? sel[0] : null;
  const f = folderById(folderId);
  const fetchable = sel.filter((e) => e.state === 'remote' || (e.dir && f?.mode === 'on-demand'));
  const writable = canWrite(f);
  const local = sel.filter((e) => e.state !== 'remote');
  openMenu(
    [
      { label: one && !one.dir && one.state !== 'remote' && !isDesktop() ? t('menu.download') : t('menu.open'), disabled: !one, run: () => openEntry(folderId, one) },
      {
        label: t('menu.keep'),
        disabled: !fetchable.length,
        run: () => fetchable.forEach((e) => keepOffline(folderId, e)),
      },
      {
        label: t('menu.copyPath'),
        run: () => copyText(sel.map((e) => absPath(folderId, e)).join('\n')).then((ok) => ok && toast(t('toast.copied'))),
      },
      {
        label: t('menu.share'),
        disabled: !sel.length || sel.some((e) => e.state === 'remote'),
        run: () => shareFilesDialog(sel.map((e) => absPath(folderId, e)), one ? one.name : `${sel.length}`),
      },
      'sep',
      ...(one && one.state === 'conflict'
        ? [
            { label: t('menu.keepCopy'), disabled: !writable, run: () => edit(() => api.resolveConflict(folderId, one.path, 'copy'), t('toast.resolved')) },
            { label: t('menu.keepOriginal'), disabled: !writable, run: () => edit(() => api.resolveConflict(folderId, one.path, 'original'), t('toast.resolved')) },
            'sep',
          ]
        : []),
      {
        label: t('menu.versions'),
        disabled: !one || one.dir || !f,
        run: () => versionsDialog(f, one, () => load({ quiet: true })),
      },
      { label: t('menu.rename'), disabled: !one || !writable || local.length !== 1, run: () => renameDialog(folderId, one, false) },
      { label: t('menu.move'), disabled: !one || !writable || local.length !== 1, run: () => renameDialog(folderId, one, true) },
      { label: t('menu.delete'), disabled: !writable || !sel.length || local.length !== sel.length, run: () => deleteEntries(folderId, sel) },
      ...(isDesktop()
        ? [
            {
              label: t('menu.showInFiles'),
              disabled: !one || one.state === 'remote',
              run: () => api.localPath(folderId, one.path).then((r) => shellCommand('reveal_path', { path: r.path })).catch((e) => toast(e.message, 'error')),
            },
          ]
        : []),
      'sep',
      { label: t('menu.trash'), run: () => navigate({ kind: 'trash', id: folderId }) },
    ],
    x,
    y,
  );
}

// ---------------------------------------------------------------- search

function renderSearch(main) {
  const v = state.view;
  if (state.dataError) {
    replace(main, placeholder({ icon: 'alert', kind: 'error', title: t('folder.error'), body: state.dataError.message, action: { label: t('folder.retry'), run: () => load() } }));
    return;
  }
  if (!state.data) {
    replace(main, loading());
    return;
  }
  const entries = sortEntries([...(state.data.entries || [])], state.prefs.sort, state.prefs.desc);
  if (!entries.length) {
    replace(main, viewTitle(t('search.title', { q: v.q })), placeholder({ icon: 'search', title: t('search.empty', { q: v.q }) }));
    return;
  }
  const list = new EntryList({
    entries,
    mode: state.prefs.mode,
    search: true,
    sort: { key: state.prefs.sort, desc: state.prefs.desc },
    onOpen: (e) => {
      if (e.dir) navigate({ kind: 'folder', id: e.folder, path: e.path });
      else {
        state.reveal = e.path;
        navigate({ kind: 'folder', id: e.folder, path: parentOf(e.path) });
      }
    },
    onUp: () => history.back(),
    onMenu: (sel, x, y) => entryMenu(sel[0].folder, sel.filter((e) => e.folder === sel[0].folder), x, y),
    onSort: sortBy,
  });
  state.list = list;
  replace(
    main,
    viewTitle(t('search.title', { q: v.q }), el('span', { class: 'muted count-line', text: t('search.count', { n: entries.length }) })),
    entries.length >= 200 ? el('p', { class: 'note', text: t('search.max') }) : null,
    list.root,
  );
}

let searchTimer = null;
function onSearchInput() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(runSearch, 250);
}

function runSearch() {
  clearTimeout(searchTimer);
  const q = $('search').value.trim();
  if (!q) {
    if (state.view.kind === 'search') history.back();
    return;
  }
  const view = { kind: 'search', q };
  const inSearch = state.view.kind === 'search';
  navigate(view, { replaceEntry: inSearch });
  $('search').value = q;
}

// ---------------------------------------------------------------- transfers

function transferButtons(tr) {
  const b = (label, run) => el('button', { class: 'btn small', attrs: { type: 'button' }, text: label, on: { click: () => edit(run) } });
  const out = [];
  if (tr.state === 'scheduled') out.push(b(t('transfers.startNow'), () => api.transferResume(tr.id)));
  if (tr.state === 'running' || tr.state === 'queued' || tr.state === 'scheduled') out.push(b(t('transfers.pause'), () => api.transferPause(tr.id)));
  if (tr.state === 'paused' || tr.state === 'failed') out.push(b(t('transfers.resume'), () => api.transferResume(tr.id)));
  out.push(b(tr.state === 'done' || tr.state === 'canceled' ? t('transfers.clear') : t('transfers.cancel'), () => api.transferCancel(tr.id)));
  return el('span', { class: 'transfer-actions' }, out);
}

function etaText(secs) {
  const s = Number(secs);
  if (!Number.isFinite(s) || s <= 0) return '';
  if (s < 60) return t('eta.s', { n: Math.ceil(s) });
  if (s < 3600) return t('eta.m', { n: Math.ceil(s / 60) });
  return t('eta.h', { n: (s / 3600).toFixed(1) });
}

function renderTransfers(main) {
  if (!state.status) {
    replace(main, loading());
    return;
  }
  const downloads = (state.status.transfers || []).map((tr) => {
    const total = Number(tr.total_bytes) || 0;
    const done = Number(tr.done_bytes) || 0;
    const label = tr.label || t('transfers.connecting');
    const pct = total ? Math.floor((100 * done) / total) : 0;
    const stateText = tr.state === 'scheduled' && tr.waits_until ? t('tstate.scheduledAt', { at: tr.waits_until }) : t(`tstate.${tr.state}`);
    const detail = [stateText, total ? t('transfers.progress', { had: humanSize(done), size: humanSize(total) }) : '', tr.rate > 0 ? `${humanSize(tr.rate)}/s` : '', etaText(tr.eta), t('transfers.from', { peer: shortPeer(tr.peer) }), viaText(tr)]
      .filter(Boolean)
      .join(' · ');
    return el(
      'li',
      { class: `transfer tstate-${tr.state}`, dataset: { id: String(tr.id) } },
      fileIcon('file'),
      el('div', { class: 'transfer-main' }, el('span', { class: 'name', text: label, attrs: { title: tr.dest } }), el('span', { class: 'muted', text: detail }), tr.error ? el('span', { class: 'note-error', text: tr.error }) : null),
      el('progress', { attrs: { max: '100', value: String(pct), 'aria-label': label } }),
      transferButtons(tr),
    );
  });
  const uploads = state.uploads.map((u) =>
    el(
      'li',
      { class: 'transfer' },
      fileIcon('file'),
      el('div', { class: 'transfer-main' }, el('span', { class: 'name', text: u.name }), el('span', { class: 'muted', text: u.error || (u.done ? t('tstate.done') : t('transfers.uploading', { had: humanSize(u.sent), size: humanSize(u.total) })) })),
      el('progress', { attrs: { max: String(u.total || 1), value: String(u.sent), 'aria-label': u.name } }),
    ),
  );
  const rows = [];
  for (const f of state.status.folders) {
    for (const tr of f.state?.transfers || []) {
      const size = Number(tr.size) || 0;
      const had = Number(tr.had) || 0;
      const name = tr.path.split('/').pop();
      rows.push(
        el(
          'li',
          { class: 'transfer' },
          fileIcon('file'),
          el('div', { class: 'transfer-main' }, el('span', { class: 'name', text: name, attrs: { title: tr.path } }), el('span', { class: 'muted', text: `${f.name} / ${tr.path}` })),
          el('progress', { attrs: { max: String(size || 1), value: String(had), 'aria-label': name } }),
          el('span', { class: 'muted', text: t('transfers.progress', { had: humanSize(had), size: humanSize(size) }) }),
          el('span', { class: 'muted', text: t('transfers.sources', { n: Array.isArray(tr.sources) ? tr.sources.length : Number(tr.sources) || 0 }) }),
        ),
      );
    }
  }
  const waiting = state.status.folders
    .filter((f) => Number(f.need_files) > 0)
    .map((f) => el('li', { class: 'note' }, el('span', { text: t('transfers.waiting', { n: f.need_files, size: humanSize(f.need_bytes), folder: f.name }) })));
  if (!rows.length && !waiting.length && !downloads.length && !uploads.length) {
    morph(main, 'transfers', viewTitle(t('transfers.title')), bandwidthLine(state.status.bandwidth), placeholder({ icon: 'transfers', title: t('transfers.empty.title'), body: t('transfers.empty.body') }));
    return;
  }
  morph(
    main,
    'transfers',
    viewTitle(t('transfers.title')),
    bandwidthLine(state.status.bandwidth),
    downloads.length ? el('h2', { class: 'sub-head', text: t('transfers.downloads') }) : null,
    downloads.length ? el('ul', { class: 'transfers downloads' }, downloads) : null,
    uploads.length ? el('h2', { class: 'sub-head', text: t('transfers.uploads') }) : null,
    uploads.length ? el('ul', { class: 'transfers' }, uploads) : null,
    rows.length || waiting.length ? el('h2', { class: 'sub-head', text: t('transfers.sync') }) : null,
    waiting.length ? el('ul', { class: 'plain' }, waiting) : null,
    el('ul', { class: 'transfers' }, rows),
  );
}

/** Current rates and the limits they run under (see Settings → Bandwidth). */
function bandwidthLine(bw) {
  if (!bw) return null;
  const l = bw.limits || {};
  const r = bw.rates || {};
  const one = (label, rate, all, peer) => {
    const limits = [all ? t('bw.limit', { rate: `${humanSize(all)}/s` }) : t('bw.none'), peer ? t('bw.perPeer', { rate: `${humanSize(peer)}/s` }) : null].filter(Boolean).join(', ');
    return el('span', { class: 'bw-item' }, el('strong', { text: label }), ` ${humanSize(Math.round(Number(rate) || 0))}/s`, el('span', { class: 'muted', text: ` (${limits})` }));
  };
  return el(
    'p',
    { class: 'bandwidth', attrs: { 'aria-label': t('bw.title') } },
    uiIcon('transfers'),
    one(t('bw.up'), r.up, l.upload, l.peer_upload),
    one(t('bw.down'), r.down, l.download, l.peer_download),
    l.limit_lan ? null : el('span', { class: 'muted', text: t('bw.lanExempt') }),
  );
}

// ---------------------------------------------------------------- peers and join requests

/** How a running download reaches its sharer, and how many others help. */
function viaText(tr) {
  if (tr.state !== 'running') return '';
  const p = (state.status?.peers || []).find((x) => x.peer === tr.peer && x.connected);
  const via = p ? connKindLabel(p.kind) : '';
  const more = Number(tr.sources) > 1 ? t('transfers.more', { n: Number(tr.sources) - 1 }) : '';
  return [via, more].filter(Boolean).join(' ');
}

function connKindLabel(kind) {
  if (kind === 'relayed') return t('peers.relayed');
  if (kind === 'hole-punched') return t('peers.punched');
  return t('peers.direct');
}

/** Names of the folders `peer` is a member of. */
function foldersWith(peer) {
  const names = (state.status?.folders || []).filter((f) => (f.members || []).some((m) => m.peer === peer)).map((f) => f.name);
  return names.length ? names.join(', ') : '—';
}

function renderPeers(main) {
  if (!state.status) {
    replace(main, loading());
    return;
  }
  const s = state.status;
  const me = el(
    'section',
    { class: 'panel' },
    el('h2', { text: t('peers.me') }),
    el('p', {}, el('code', { class: 'peer-id', text: s.peer_id })),
    el('ul', { class: 'plain muted' }, (s.listen || []).map((a) => el('li', {}, el('code', { text: a })))),
    s.network
      ? el('p', {
          class: 'muted reach',
          text: t('peers.reach', {
            reach: t(`reach.${['public', 'private'].includes(s.network.reachability) ? s.network.reachability : 'unknown'}`),
            relays: formatCount((s.network.relays || []).length),
            dht: formatCount(s.network.dht_peers),
          }),
        })
      : null,
  );
  const reqs = (s.requests || []).map((r) =>
    el(
      'li',
      { class: 'request' },
      uiIcon('requests'),
      el('span', {
        class: 'grow',
        text: t('requests.body', { peer: shortPeer(r.peer), folder: r.folder_name || r.folder, rights: r.read_write ? t('rights.rw') : t('rights.ro') }),
        attrs: { title: r.peer },
      }),
      el('span', { class: 'muted', text: humanTime(r.asked_at) }),
      el('button', {
        class: 'btn primary',
        attrs: { type: 'button' },
        text: t('requests.approve'),
        on: {
          click: async (e) => {
            e.currentTarget.disabled = true;
            try {
              await api.approve(r.folder, r.peer);
              toast(t('requests.approved'));
              refreshNow();
            } catch (err) {
              toast(err.message, 'error');
              e.target.disabled = false;
            }
          },
        },
      }),
    ),
  );
  const peers = s.peers || [];
  const table = peers.length
    ? el(
        'table',
        { class: 'table' },
        el('thead', {}, el('tr', {}, [t('peers.id'), t('peers.presence'), t('peers.connection'), t('peers.latency'), t('peers.folders'), t('peers.address')].map((h) => el('th', { text: h, attrs: { scope: 'col' } })))),
        el(
          'tbody',
          {},
          peers.map((p) =>
            el(
              'tr',
              {},
              el(
                'td',
                {},
                el('code', { text: shortPeer(p.peer), attrs: { title: p.peer } }),
                el('button', {
                  class: 'link-btn',
                  attrs: { type: 'button' },
                  text: t('peers.copyId'),
                  on: { click: () => copyText(p.peer).then((ok) => ok && toast(t('toast.copied'))) },
                }),
              ),
              el('td', {}, el('span', { class: `presence ${p.connected ? 'on' : 'off'}`, text: p.connected ? t('peers.online') : t('peers.offline') })),
              el('td', { class: `conn-kind ${p.kind}`, text: connKindLabel(p.kind) }),
              el('td', { class: 'num', text: p.connected && Number.isFinite(p.rtt_ms) ? t('peers.ms', { ms: p.rtt_ms }) : '—' }),
              el('td', { text: foldersWith(p.peer) }),
              el('td', {}, el('code', { class: 'muted', text: p.addr || '' })),
            ),
          ),
        ),
      )
    : placeholder({ icon: 'peers', title: t('peers.empty.title'), body: t('peers.empty.body') });
  morph(
    main,
    'peers',
    viewTitle(t('peers.title')),
    reqs.length ? el('section', { class: 'panel' }, el('h2', { text: t('requests.title') }), el('ul', { class: 'plain' }, reqs)) : null,
    table,
    me,
  );
}

// ---------------------------------------------------------------- trash

function renderTrash(main) {
  const v = state.view;
  const folders = state.status?.folders || [];
  if (!v.id) {
    if (folders.length) {
      navigate({ kind: 'trash', id: folders[0].id }, { replaceEntry: true });
      return;
    }
    replace(main, viewTitle(t('trash.title')), placeholder({ icon: 'trash', title: t('trash.empty.title'), body: t('trash.noFolder') }));
    return;
  }
  const pick = el(
    'select',
    { attrs: { 'aria-label': t('trash.pick') }, on: { change: (e) => navigate({ kind: 'trash', id: e.target.value }) } },
    folders.map((f) => el('option', { attrs: { value: f.id, selected: f.id === v.id }, text: f.name })),
  );
  const head = viewTitle(t('trash.title'), el('label', { class: 'inline' }, el('span', { text: t('trash.pick') }), pick));
  if (state.dataError) {
    replace(main, head, placeholder({ icon: 'alert', kind: 'error', title: t('folder.error'), body: state.dataError.message, action: { label: t('folder.retry'), run: () => load() } }));
    return;
  }
  if (!state.data) {
    replace(main, head, loading());
    return;
  }
  const items = Array.isArray(state.data) ? state.data : state.data.entries || [];
  if (!items.length) {
    replace(main, head, placeholder({ icon: 'trash', title: t('trash.empty.title'), body: t('trash.empty.body') }));
    return;
  }
  const rows = items.map((it) =>
    el(
      'tr',
      {},
      el('td', {}, el('span', { class: 'cell-name' }, fileIcon('file'), el('span', { text: it.path }))),
      el('td', { class: 'num', text: humanSize(it.size) }),
      el('td', { text: humanTime(it.deleted_at) }),
      el(
        'td',
        {},
        el('button', {
          class: 'btn',
          attrs: { type: 'button' },
          text: t('trash.restore'),
          on: {
            click: async (e) => {
              e.currentTarget.disabled = true;
              try {
                await api.trashRestore(v.id, it.path, it.deleted_at != null ? String(it.deleted_at) : undefined);
                toast(t('trash.restored', { path: it.path }));
                load({ quiet: true });
              } catch (err) {
                toast(err.message, 'error');
                e.target.disabled = false;
              }
            },
          },
        }),
      ),
    ),
  );
  replace(
    main,
    head,
    el(
      'table',
      { class: 'table' },
      el('thead', {}, el('tr', {}, [t('col.path'), t('col.size'), t('trash.deleted'), ''].map((h) => el('th', { text: h, attrs: { scope: 'col' } })))),
      el('tbody', {}, rows),
    ),
  );
}

// ---------------------------------------------------------------- settings

/** Desktop-only settings, fetched once per visit; null in a browser. */
let desktopSettings = null;

function settingsRow(label, ...content) {
  return el('div', { class: 'settings-row' }, el('div', { class: 'settings-label', text: label }), el('div', { class: 'settings-value' }, content.flat()));
}

/**
 * A one-field settings form: `change()` gives the settings_set change, `shown(st)`
 * puts the saved value back. Errors show in `err`; success toasts.
 */
function settingsForm(cls, control, { primary = false, change, shown }) {
  const err = errorLine();
  const save = el('button', { class: primary ? 'btn primary' : 'btn', attrs: { type: 'submit' }, text: t('settings.save') });
  const form = el(
    'form',
    {
      class: cls,
      on: {
        submit: async (e) => {
          e.preventDefault();
          save.disabled = true;
          showError(err, '');
          try {
            shown(await api.settingsSet(change()));
            toast(t('settings.saved'));
            refreshNow();
          } catch (ex) {
            showError(err, ex.message);
          } finally {
            save.disabled = false;
          }
        },
      },
    },
    control,
    save,
  );
  return { form, err };
}

function renderSettings(main) {
  const st = state.status;
  if (!st) {
    replace(main, viewTitle(t('settings.title')), state.error ? placeholder({ icon: 'alert', kind: 'error', title: state.error.message }) : loading());
    return;
  }
  // The page holds a text field: refresh only what the node reports, never what
  // the user is typing.
  const listen = main.querySelector('#settings-listen');
  if (listen && main.dataset.settingsLang === lang()) {
    fillListen(listen, st.listen);
    return;
  }
  main.dataset.settingsLang = lang();

  const name = el('input', { attrs: { id: 'settings-name', type: 'text', maxlength: '64', autocomplete: 'off', spellcheck: 'false' } });
  name.value = st.device_name || '';
  const { form: nameForm, err } = settingsForm('settings-name', [el('label', { class: 'offscreen', attrs: { for: 'settings-name' }, text: t('settings.name') }), name], {
    primary: true,
    change: () => ({ device_name: name.value }),
    shown: (r) => {
      name.value = r.device_name;
    },
  });

  const language = el(
    'select',
    { attrs: { id: 'settings-lang', 'aria-label': t('settings.language') }, on: { change: (e) => setLang(e.target.value) } },
    ['en', 'ko'].map((code) => el('option', { attrs: { value: code, selected: code === lang() }, text: t(`lang.${code}`) })),
  );
  const listenList = el('ul', { class: 'settings-list', attrs: { id: 'settings-listen' } });
  fillListen(listenList, st.listen);
  const app = el('div', { class: 'settings-app' });
  const sections = [
    el(
      'section',
      { class: 'settings-section' },
      el('h2', { text: t('settings.device') }),
      settingsRow(t('settings.name'), nameForm, el('p', { class: 'hint', text: t('settings.nameHint') }), err),
      settingsRow(
        t('settings.id'),
        el('code', { class: 'peer-id', text: st.peer_id || '' }),
        el('button', {
          class: 'btn',
          attrs: { type: 'button' },
          text: t('settings.copyId'),
          on: { click: () => copyText(st.peer_id || '').then((ok) => ok && toast(t('toast.copied'))) },
        }),
      ),
      settingsRow(t('settings.language'), language),
      settingsRow(t('settings.downloads'), el('code', { text: st.downloads_dir || '' })),
    ),
    el(
      'section',
      { class: 'settings-section' },
      el('h2', { text: t('settings.network') }),
      settingsRow(t('settings.listen'), listenList),
      settingsRow(t('settings.serving'), serveToggle()),
      settingsRow(t('settings.bootstrap'), bootstrapEditor()),
    ),
    el('section', { class: 'settings-section' }, el('h2', { text: t('bw.title') }), bandwidthForm()),
    el('section', { class: 'settings-section' }, el('h2', { text: t('sched.title') }), scheduleForm()),
    el('section', { class: 'settings-section' }, el('h2', { text: t('settings.app') }), app),
  ];
  replace(main, viewTitle(t('settings.title')), ...sections);
  fillDesktopSettings(app);
}

/** KiB/s as typed in a field (empty or 0: none), or an Error for the user. */
function kibField(input, what) {
  const v = input.value.trim();
  if (!v) return 0;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(t('limits.bad', { what }));
  return Math.round(n * 1024);
}

/** Upload and download limits, all peers and each one, and whether the LAN is exempt. */
function bandwidthForm() {
  const keys = [
    ['upload', 'upload_limit', t('bw.upload')],
    ['download', 'download_limit', t('bw.download')],
    ['peer_upload', 'peer_upload_limit', t('bw.peerUpload')],
    ['peer_download', 'peer_download_limit', t('bw.peerDownload')],
  ];
  const inputs = keys.map(([k]) => el('input', { attrs: { type: 'number', min: '0', step: '1', inputmode: 'numeric', id: `bw-${k}` } }));
  const lan = el('input', { attrs: { type: 'checkbox', id: 'bw-lan' } });
  const show = (st) => {
    const b = st.bandwidth || {};
    keys.forEach(([k], i) => {
      inputs[i].value = b[k] ? String(Math.round(b[k] / 1024)) : '';
    });
    lan.checked = Boolean(b.limit_lan);
  };
  api.settings().then(show).catch(() => {});
  const { form, err } = settingsForm('settings-bandwidth', [
    ...keys.map(([, , label], i) => field(label, inputs[i])),
    el('label', { class: 'choice' }, lan, el('span', { text: t('bw.lan') })),
  ], {
    change: () => ({
      ...Object.fromEntries(keys.map(([, api_key, label], i) => [api_key, kibField(inputs[i], label)])),
      limit_lan: lan.checked,
    }),
    shown: show,
  });
  return [form, el('p', { class: 'hint', text: t('bw.hint') }), err];
}

/** The daily window large downloads wait for. */
function scheduleForm() {
  const on = el('input', { attrs: { type: 'checkbox', id: 'sched-on' } });
  const from = el('input', { attrs: { type: 'time', id: 'sched-from', value: '01:00' } });
  const to = el('input', { attrs: { type: 'time', id: 'sched-to', value: '07:00' } });
  const min = el('input', { attrs: { type: 'number', min: '0', step: '1', id: 'sched-min', value: '100' } });
  const show = (st) => {
    const w = /^(\d\d:\d\d)-(\d\d:\d\d)$/.exec(st.schedule || '');
    on.checked = Boolean(w);
    if (w) {
      from.value = w[1];
      to.value = w[2];
    }
    min.value = String(Math.round((Number(st.schedule_min_bytes) || 0) / (1024 * 1024)));
  };
  api.settings().then(show).catch(() => {});
  const { form, err } = settingsForm('settings-schedule', [
    el('label', { class: 'choice' }, on, el('span', { text: t('sched.on') })),
    el('div', { class: 'inline' }, field(t('sched.from'), from), field(t('sched.to'), to)),
    field(t('sched.min'), min),
  ], {
    change: () => {
      const mib = Number(min.value);
      if (!Number.isFinite(mib) || mib < 0) throw new Error(t('limits.bad', { what: t('sched.min') }));
      return { schedule: on.checked ? `${from.value}-${to.value}` : '', schedule_min_bytes: Math.round(mib * 1024 * 1024) };
    },
    shown: show,
  });
  return [form, el('p', { class: 'hint', text: t('sched.hint') }), err];
}

/** DHT bootstrap peers, one per line; the node uses them from its next start. */
function bootstrapEditor() {
  const area = el('textarea', { attrs: { id: 'settings-bootstrap', rows: '3', spellcheck: 'false', 'aria-label': t('settings.bootstrap'), placeholder: '/ip4/203.0.113.7/tcp/4001/p2p/12D3KooW…' } });
  const show = (st) => {
    area.value = (st.bootstrap || []).join('\n');
  };
  api.settings().then(show).catch(() => {});
  const { form, err } = settingsForm('settings-bootstrap', area, {
    change: () => ({ bootstrap: area.value.split('\n').map((l) => l.trim()).filter(Boolean) }),
    shown: show,
  });
  return [form, el('p', { class: 'hint', text: t('settings.bootstrapHint') }), err];
}

/** "Serve what I download": a switch kept in the node's settings. */
function serveToggle() {
  const box = el('input', { attrs: { type: 'checkbox', id: 'settings-serve' } });
  const label = el('label', { class: 'choice' }, box, el('span', { text: t('settings.serve') }));
  api
    .settings()
    .then((st) => {
      box.checked = Boolean(st.serve_downloads);
    })
    .catch(() => {
      box.disabled = true;
    });
  box.addEventListener('change', async () => {
    box.disabled = true;
    try {
      const st = await api.settingsSet({ serve_downloads: box.checked });
      box.checked = Boolean(st.serve_downloads);
      toast(t('settings.saved'));
    } catch (ex) {
      box.checked = !box.checked;
      toast(ex.message, 'error');
    } finally {
      box.disabled = false;
    }
  });
  return [label, el('p', { class: 'hint', text: t('settings.serveHint') })];
}

function fillListen(list, addrs) {
  const items = (addrs || []).map((a) => el('li', {}, el('code', { text: String(a) })));
  replace(list, ...(items.length ? items : [el('li', { class: 'hint', text: t('settings.noListen') })]));
}

async function fillDesktopSettings(box) {
  if (!isDesktop()) {
    replace(box, el('p', { class: 'hint', text: t('settings.browser') }));
    return;
  }
  try {
    desktopSettings = await shellCommand('desktop_settings_get');
  } catch (ex) {
    replace(box, el('p', { class: 'form-error', text: ex.message }));
    return;
  }
  const toggle = (key, label, disabled) => {
    const box = el('input', { attrs: { type: 'checkbox', id: `settings-${key}`, checked: Boolean(desktopSettings[key]), disabled: Boolean(disabled) } });
    box.addEventListener('change', async () => {
      box.disabled = true;
      try {
        desktopSettings = await shellCommand('desktop_settings_set', { [key]: box.checked });
        box.checked = Boolean(desktopSettings[key]);
        toast(t('settings.saved'));
      } catch (ex) {
        box.checked = !box.checked;
        toast(ex.message, 'error');
      } finally {
        box.disabled = Boolean(disabled);
      }
    });
    return el('label', { class: 'choice' }, box, el('span', { text: label }));
  };
  replace(
    box,
    toggle('autostart', t('settings.autostart')),
    toggle('tray', t('settings.tray'), !desktopSettings.tray_available),
    desktopSettings.tray_available ? null : el('p', { class: 'hint', text: t('settings.noTray') }),
  );
}

// ---------------------------------------------------------------- dialogs

function folderLinkDialog() {
  const v = state.view;
  const f = folderById(v.id);
  if (v.kind !== 'folder' || !f) {
    toast(t('share.noFolder'), 'error');
    return;
  }
  const ro = el('input', { attrs: { type: 'radio', name: 'rights', value: 'ro', checked: true } });
  const rw = el('input', { attrs: { type: 'radio', name: 'rights', value: 'rw' } });
  const approve = el('input', { attrs: { type: 'checkbox', checked: true } });
  linkDialog(t('share.title', { name: f.name }), {
    before: [
      el(
        'fieldset',
        {},
        el('legend', { text: t('share.rights') }),
        el('label', { class: 'choice' }, ro, el('span', { text: t('rights.ro') })),
        el('label', { class: 'choice' }, rw, el('span', { text: t('rights.rw') })),
      ),
    ],
    after: [el('label', { class: 'choice' }, approve, el('span', { text: t('share.approve') }))],
    make: (limits) => api.folderLink(f.id, { readOnly: ro.checked, approve: approve.checked, ...limits }),
  });
}

function shareFilesDialog(paths, label) {
  linkDialog(t('share.title', { name: label }), { make: (limits) => api.share(paths, limits) });
}

function modeSelect(def) {
  return el(
    'select',
    {},
    ['send-receive', 'receive-only', 'on-demand'].map((m) => el('option', { attrs: { value: m, selected: m === def }, text: t(`mode.${m}`) })),
  );
}

/**
 * A dialog with a form: the given fields, an error line, Cancel and a submit
 * button. `action` runs on submit; a result with an `id` opens that folder.
 */
function formDialog(title, submitLabel, fields, action, doneToast) {
  openDialog(title, (close) => {
    const err = errorLine();
    const submit = el('button', { class: 'btn primary', attrs: { type: 'submit' }, text: submitLabel });
    return el(
      'form',
      {
        on: {
          submit: async (e) => {
            e.preventDefault();
            submit.disabled = true;
            showError(err, '');
            try {
              const r = await action();
              close();
              toast(doneToast);
              refreshNow();
              if (r && r.id) navigate({ kind: 'folder', id: r.id, path: '' });
            } catch (ex) {
              showError(err, ex.message);
            } finally {
              submit.disabled = false;
            }
          },
        },
      },
      ...fields.map(([label, input]) => field(label, input)),
      err,
      el('div', { class: 'actions' }, el('button', { class: 'btn', attrs: { type: 'button' }, text: t('dialog.cancel'), on: { click: close } }), submit),
    );
  });
}

/** What can be done with a link of each kind, for the Open-link dialog. */
const OPEN_CHOICES = {
  files: [['download', 'open.once']],
  folder: [
    ['send-receive', 'open.sync'],
    ['on-demand', 'open.onDemand'],
    ['receive-only', 'mode.receive-only'],
  ],
  request: [['send', 'open.send']],
};

function joinDialog(prefill = '') {
  const link = el('textarea', { attrs: { rows: '3', required: true, spellcheck: 'false', placeholder: 'peerbox://…' } });
  link.value = typeof prefill === 'string' ? prefill : '';
  const path = el('input', { attrs: { type: 'text', spellcheck: 'false', autocomplete: 'off', value: state.status?.downloads_dir || '' } });
  const password = el('input', { attrs: { type: 'password', autocomplete: 'off' } });
  const how = el('select', {});
  const about = el('p', { class: 'hint link-about', attrs: { 'aria-live': 'polite' } });
  const fields = [[t('join.link'), link], [t('open.how'), how], [t('open.where'), path], [t('limits.password'), password]];
  let kind = null;
  // The link says what it is: offer what fits, and ask for a password only if it takes one.
  const fit = async () => {
    let info = null;
    try {
      info = link.value.trim() ? await api.inspectLink(link.value.trim()) : null;
    } catch (e) {
      about.textContent = e.message;
      return;
    }
    kind = info ? info.kind : null;
    const choices = info ? OPEN_CHOICES[info.kind] || [] : [...OPEN_CHOICES.files, ...OPEN_CHOICES.folder];
    const was = how.value;
    replace(how, choices.map(([v, key]) => el('option', { attrs: { value: v, selected: v === was }, text: t(key) })));
    path.closest('.field').hidden = kind === 'request';
    password.closest('.field').hidden = !info || !info.password;
    about.textContent = info ? [t(`links.kind.${info.kind}`), info.password ? t('links.password') : '', info.expired ? t('links.state.expired') : ''].filter(Boolean).join(' · ') : '';
  };
  let timer = null;
  link.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(fit, 150);
  });
  formDialog(
    t('join.title'),
    t('open.submit'),
    fields,
    async () => {
      const l = link.value.trim();
      const pw = password.closest('.field')?.hidden ? undefined : password.value || undefined;
      if (how.value === 'send') {
        openSend(l, pw);
        return null;
      }
      if (how.value === 'download') {
        await api.download(l, path.value.trim() || undefined, pw);
        navigate({ kind: 'transfers' });
        return null;
      }
      return api.folderJoin(l, path.value.trim(), how.value, pw);
    },
    t('toast.opened'),
  );
  link.closest('.dialog-body')?.querySelector('form')?.insertBefore(about, link.closest('.field').nextSibling);
  fit();
}

function addFolderDialog() {
  const path = el('input', { attrs: { type: 'text', required: true, spellcheck: 'false', autocomplete: 'off' } });
  const name = el('input', { attrs: { type: 'text', autocomplete: 'off' } });
  const mode = modeSelect('send-receive');
  formDialog(
    t('add.title'),
    t('add.submit'),
    [[t('add.path'), path], [t('add.name'), name], [t('join.mode'), mode]],
    () => api.folderAdd(path.value.trim(), name.value.trim(), mode.value),
    t('toast.added'),
  );
}

// ---------------------------------------------------------------- start

function start() {
  applyStatic(document);
  $('view-list').append(uiIcon('list'));
  $('view-grid').append(uiIcon('grid'));
  $('btn-link').prepend(uiIcon('link'));
  $('btn-open').prepend(uiIcon('open'));
  $('search-form').prepend(uiIcon('search', 'ui-icon search-icon'));
  $('view-list').addEventListener('click', () => {
    state.prefs.mode = 'list';
    savePrefs();
    renderTools();
    renderMain();
  });
  $('view-grid').addEventListener('click', () => {
    state.prefs.mode = 'grid';
    savePrefs();
    renderTools();
    renderMain();
  });
  $('sort').addEventListener('change', (e) => {
    state.prefs.sort = e.target.value;
    state.prefs.desc = e.target.value !== 'name';
    savePrefs();
    renderMain();
  });
  $('btn-link').addEventListener('click', folderLinkDialog);
  $('btn-request').prepend(uiIcon('upload'));
  $('btn-request').addEventListener('click', () => {
    const f = state.view.kind === 'folder' ? folderById(state.view.id) : null;
    if (f) requestDialog(f);
  });
  $('btn-open').addEventListener('click', () => joinDialog());
  $('btn-upload').prepend(uiIcon('plus'));
  $('btn-upload').addEventListener('click', pickFiles);
  $('btn-mkdir').prepend(fileIcon('folder'));
  $('btn-mkdir').addEventListener('click', mkdirDialog);
  setupDrop();
  onShellEvent('drop-paths', onDropPaths);
  onShellEvent('open-link', (p) => joinDialog(p && typeof p.link === 'string' ? p.link : ''));
  onNotice((n) => {
    const subject = String(n.subject || '');
    const msg = t(`notice.${n.kind}`, { subject, detail: String(n.detail || '') });
    toast(msg, n.kind === 'download_failed' || n.kind === 'conflict' ? 'error' : 'info');
  });
  $('lang').addEventListener('change', (e) => setLang(e.target.value));
  $('search').addEventListener('input', onSearchInput);
  $('search-form').addEventListener('submit', (e) => {
    e.preventDefault();
    runSearch();
  });
  onLangChange(() => {
    replace($('toasts'));
    render();
    renderBanner();
  });
  history.replaceState({ view: state.view }, '');
  render();
  if (!hasToken()) return;
  subscribe(onStatus);
}

export { ApiError };
start();
