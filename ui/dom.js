// Small DOM helpers that never parse HTML: every string becomes a text node or an
// attribute value. Also file-type icons (SVG built node by node) and formatting.

import { lang, t } from './i18n.js';

/**
 * Make an element. `props`: class, text (→ textContent), attrs {name: value}
 * (→ setAttribute), on {event: fn}, dataset. Children: nodes or strings (text nodes).
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  if (props.class) node.className = props.class;
  if (props.text != null) node.textContent = String(props.text);
  if (props.attrs) {
    for (const [k, v] of Object.entries(props.attrs)) {
      if (v === false || v == null) continue;
      node.setAttribute(k, v === true ? '' : String(v));
    }
  }
  if (props.dataset) for (const [k, v] of Object.entries(props.dataset)) node.dataset[k] = String(v);
  if (props.on) listen(node, props.on);
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    node.append(typeof c === 'string' ? document.createTextNode(c) : c);
  }
  return node;
}

/** Remove every child of `node` and append `children`. */
export function replace(node, ...children) {
  node.__view = undefined;
  node.replaceChildren(...children.flat().filter((c) => c != null && c !== false));
}

// Handlers live on the element (`__on`) behind one shared listener, so that morph()
// can hand an element that stays in the page the handlers of the one that replaces it.
function dispatch(e) {
  const fn = this.__on && this.__on[e.type];
  return fn ? fn.call(this, e) : undefined;
}

function listen(node, on) {
  node.__on = { ...(node.__on || {}), ...on };
  for (const k of Object.keys(on)) node.addEventListener(k, dispatch);
}

/**
 * Make `node`'s children look like `children`, keeping every element that is still
 * there in place, when `node` last showed the same `view` (another view's elements
 * are replaced, never reused). Views that re-render on every status change use it
 * instead of replace(): a button swapped out between mouse-down and mouse-up loses
 * the click, and focus and hover go with it.
 */
export function morph(node, view, ...children) {
  const wanted = children.flat().filter((c) => c != null && c !== false);
  if (node.__view !== view) {
    node.replaceChildren(...wanted);
    node.__view = view;
    return;
  }
  morphChildren(node, wanted.map((c) => (typeof c === 'string' ? document.createTextNode(c) : c)));
}

function morphChildren(parent, wanted) {
  let i = 0;
  for (; i < wanted.length; i += 1) {
    const have = parent.childNodes[i];
    const want = wanted[i];
    if (!have) parent.append(want);
    else if (sameKind(have, want)) morphNode(have, want);
    else parent.replaceChild(want, have);
  }
  while (parent.childNodes.length > wanted.length) parent.lastChild.remove();
}

function sameKind(a, b) {
  if (a.nodeType !== b.nodeType || a.nodeName !== b.nodeName) return false;
  if (a.nodeType !== Node.ELEMENT_NODE) return true;
  // Form controls carry what the user typed or picked in properties, not attributes:
  // reuse one only when it is the same control.
  if (['INPUT', 'SELECT', 'TEXTAREA'].includes(a.nodeName)) return a.getAttribute('name') === b.getAttribute('name') && a.type === b.type;
  return a.namespaceURI === b.namespaceURI;
}

function morphNode(have, want) {
  if (have.nodeType !== Node.ELEMENT_NODE) {
    if (have.data !== want.data) have.data = want.data;
    return;
  }
  for (const { name } of [...have.attributes]) if (!want.hasAttribute(name)) have.removeAttribute(name);
  for (const { name, value } of [...want.attributes]) if (have.getAttribute(name) !== value) have.setAttribute(name, value);
  const on = want.__on || {};
  for (const k of Object.keys(have.__on || {})) if (!(k in on)) have.removeEventListener(k, dispatch);
  have.__on = {};
  listen(have, on);
  morphChildren(have, [...want.childNodes]);
  if (['INPUT', 'SELECT', 'TEXTAREA'].includes(have.nodeName) && have !== document.activeElement) {
    if (have.value !== want.value) have.value = want.value;
    if (have.checked !== want.checked) have.checked = want.checked;
  }
}

const SVG = 'http://www.w3.org/2000/svg';

function svg(viewBox, cls, parts) {
  const s = document.createElementNS(SVG, 'svg');
  s.setAttribute('viewBox', viewBox);
  s.setAttribute('class', cls);
  s.setAttribute('aria-hidden', 'true');
  s.setAttribute('focusable', 'false');
  for (const [tag, attrs] of parts) {
    const p = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) p.setAttribute(k, v);
    s.append(p);
  }
  return s;
}

const KINDS = {
  image: ['png', 'jpg', 'jpeg', 'gif', 'webp', 'bmp', 'svg', 'heic', 'tif', 'tiff', 'raw'],
  video: ['mp4', 'mkv', 'mov', 'avi', 'webm', 'wmv', 'm4v'],
  audio: ['mp3', 'flac', 'wav', 'ogg', 'm4a', 'aac', 'opus'],
  archive: ['zip', 'tar', 'gz', 'tgz', 'bz2', 'xz', 'zst', '7z', 'rar', 'alz', 'egg'],
  doc: ['pdf', 'doc', 'docx', 'hwp', 'hwpx', 'odt', 'rtf', 'txt', 'md', 'pages'],
  sheet: ['xls', 'xlsx', 'csv', 'ods', 'numbers', 'tsv'],
  slides: ['ppt', 'pptx', 'odp', 'key'],
  code: ['js', 'ts', 'rs', 'py', 'go', 'c', 'h', 'cpp', 'java', 'json', 'toml', 'yaml', 'yml', 'html', 'css', 'sh', 'xml'],
};
const EXT_KIND = new Map();
for (const [kind, exts] of Object.entries(KINDS)) for (const e of exts) EXT_KIND.set(e, kind);

/** The kind of a file by its extension: folder, image, video, …, or file. */
export function fileKind(name, dir) {
  if (dir) return 'folder';
  const dot = name.lastIndexOf('.');
  if (dot <= 0) return 'file';
  return EXT_KIND.get(name.slice(dot + 1).toLowerCase()) || 'file';
}

const GLYPH = {
  image: [['circle', { cx: '9', cy: '13', r: '1.6' }], ['path', { d: 'M6 19l4-4 2.5 2.5L15 15l3 4z' }]],
  video: [['path', { d: 'M10 12v6l5-3z' }]],
  audio: [['path', { d: 'M14 11v6.2a1.8 1.8 0 1 1-1.2-1.7V11z' }]],
  archive: [['path', { d: 'M11 4h2v2h-2zm0 3h2v2h-2zm0 3h2v2h-2zm-1 3h4v4h-4z' }]],
  doc: [['path', { d: 'M7 12h10v1.4H7zm0 3h10v1.4H7zm0 3h7v1.4H7z' }]],
  sheet: [['path', { d: 'M7 12h10v8H7zm1.3 1.3v2h3.4v-2zm4.7 0v2h2.7v-2zm-4.7 3.3v2h3.4v-2zm4.7 0v2h2.7v-2z' }]],
  slides: [['path', { d: 'M7 12h10v6H7zm1.4 1.4v3.2h7.2v-3.2z' }]],
  code: [['path', { d: 'M10 13l-2.5 2.5L10 18l-1 1-3.5-3.5L9 12zm4 0l1-1 3.5 3.5L15 19l-1-1 2.5-2.5z' }]],
  file: [],
};

const iconCache = new Map();

/** An inline SVG icon for a file kind (folder gets its own shape); a clone of a cached one. */
export function fileIcon(kind) {
  if (!iconCache.has(kind)) iconCache.set(kind, makeFileIcon(kind));
  return iconCache.get(kind).cloneNode(true);
}

function makeFileIcon(kind) {
  if (kind === 'folder') {
    return svg('0 0 24 24', 'icon icon-folder', [
      ['path', { class: 'back', d: 'M2 6.5A1.5 1.5 0 0 1 3.5 5h5l2 2h10A1.5 1.5 0 0 1 22 8.5v10a1.5 1.5 0 0 1-1.5 1.5h-17A1.5 1.5 0 0 1 2 18.5z' }],
      ['path', { class: 'front', d: 'M2 9.5A1.5 1.5 0 0 1 3.5 8h17A1.5 1.5 0 0 1 22 9.5v9a1.5 1.5 0 0 1-1.5 1.5h-17A1.5 1.5 0 0 1 2 18.5z' }],
    ]);
  }
  return svg('0 0 24 24', `icon icon-file kind-${kind}`, [
    ['path', { class: 'sheet', d: 'M5 2.5h9.5L19.5 7.5v13a1 1 0 0 1-1 1h-13a1 1 0 0 1-1-1v-17a1 1 0 0 1 1-1z' }],
    ['path', { class: 'fold', d: 'M14.5 2.5v5h5' }],
    ...(GLYPH[kind] || []).map(([tag, a]) => [tag, { ...a, class: 'glyph' }]),
  ]);
}

/** Small UI glyphs (sidebar, buttons). */
const UI_ICONS = {
  locker: 'M4 4h16v4H4zm1 5h14v11H5zm5 3v2h4v-2z',
  shared: 'M16 11a3 3 0 1 0-3-3 3 3 0 0 0 3 3zm-8 0a3 3 0 1 0-3-3 3 3 0 0 0 3 3zm0 2c-2.3 0-7 1.2-7 3.5V19h14v-2.5C15 14.2 10.3 13 8 13zm8 0c-.3 0-.6 0-1 .1a4.2 4.2 0 0 1 2 3.4V19h6v-2.5c0-2.3-4.7-3.5-7-3.5z',
  transfers: 'M7 3l-4 4h3v7h2V7h3zm10 18l4-4h-3v-7h-2v7h-3z',
  peers: 'M12 2a10 10 0 1 0 10 10A10 10 0 0 0 12 2zm6.9 6h-3a15.6 15.6 0 0 0-1.3-3.6A8 8 0 0 1 18.9 8zM12 4c.8 1.2 1.5 2.5 1.9 4h-3.8c.4-1.5 1.1-2.8 1.9-4zM4.3 14a8.2 8.2 0 0 1 0-4h3.4a16.5 16.5 0 0 0 0 4zm.8 2h3a15.6 15.6 0 0 0 1.3 3.6A8 8 0 0 1 5.1 16zm3-8h-3a8 8 0 0 1 4.3-3.6A15.6 15.6 0 0 0 8.1 8zM12 20c-.8-1.2-1.5-2.5-1.9-4h3.8c-.4 1.5-1.1 2.8-1.9 4zm2.3-6H9.7a14.7 14.7 0 0 1 0-4h4.6a14.7 14.7 0 0 1 0 4zm.3 5.6a15.6 15.6 0 0 0 1.3-3.6h3a8 8 0 0 1-4.3 3.6zm1.7-5.6a16.5 16.5 0 0 0 0-4h3.4a8.2 8.2 0 0 1 0 4z',
  trash: 'M9 3h6l1 1h4v2H4V4h4zm-3 4h12l-1 14H7z',
  settings: 'M3 6h10v2H3zm14 0h4v2h-4zm-3-2h2v6h-2zM3 16h4v2H3zm8 0h10v2H11zm-3-2h2v6H8z',
  requests: 'M15 12a4 4 0 1 0-4-4 4 4 0 0 0 4 4zm-9-2V7H4v3H1v2h3v3h2v-3h3v-2zm9 4c-2.7 0-8 1.3-8 4v2h16v-2c0-2.7-5.3-4-8-4z',
  search: 'M15.5 14h-.8l-.3-.3A6.5 6.5 0 0 0 16 9.5 6.5 6.5 0 1 0 9.5 16a6.5 6.5 0 0 0 4.2-1.6l.3.3v.8l5 5 1.5-1.5zm-6 0A4.5 4.5 0 1 1 14 9.5 4.5 4.5 0 0 1 9.5 14z',
  list: 'M3 5h18v2H3zm0 6h18v2H3zm0 6h18v2H3z',
  grid: 'M3 3h8v8H3zm10 0h8v8h-8zM3 13h8v8H3zm10 0h8v8h-8z',
  link: 'M10.6 13.4a1 1 0 0 0 1.4 0l4-4a3 3 0 0 0-4.2-4.2l-1.5 1.5 1.4 1.4 1.5-1.5a1 1 0 0 1 1.4 1.4l-4 4a1 1 0 0 0 0 1.4zm2.8-2.8a1 1 0 0 0-1.4 0l-4 4a3 3 0 0 0 4.2 4.2l1.5-1.5-1.4-1.4-1.5 1.5a1 1 0 0 1-1.4-1.4l4-4a1 1 0 0 0 0-1.4z',
  open: 'M19 19H5V5h7V3H5a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h14a2 2 0 0 0 2-2v-7h-2zM14 3v2h3.6l-9.8 9.8 1.4 1.4L19 6.4V10h2V3z',
  plus: 'M11 5h2v6h6v2h-6v6h-2v-6H5v-2h6z',
  home: 'M12 3l9 8h-3v9h-5v-6h-2v6H6v-9H3z',
  chevron: 'M9 6l6 6-6 6-1.4-1.4 4.6-4.6-4.6-4.6z',
  alert: 'M1 21h22L12 2zm12-3h-2v-2h2zm0-4h-2v-4h2z',
  check: 'M9 16.2l-3.5-3.5L4 14.1l5 5 11-11-1.4-1.4z',
  upload: 'M5 20h14v-2H5zm7-16l-5 5h3v6h4V9h3z',
  history: 'M13 3a9 9 0 0 0-9 9H1l4 4 4-4H6a7 7 0 1 1 2.1 5l-1.4 1.4A9 9 0 1 0 13 3zm-1 5v5l4.3 2.5.7-1.2-3.5-2.1V8z',
  cloud: 'M19.4 10A7.5 7.5 0 0 0 5.3 8 6 6 0 0 0 6 20h13a5 5 0 0 0 .4-10z',
};

/** A small monochrome UI icon by name. */
export function uiIcon(name, cls = 'ui-icon') {
  return svg('0 0 24 24', cls, [['path', { d: UI_ICONS[name] || UI_ICONS.plus }]]);
}

/** Human size with binary units: 0 B, 1023 B, 1.0 KiB, 4.7 MiB… */
export function humanSize(bytes) {
  const n = Number(bytes) || 0;
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

const dateFormats = new Map();

/**
 * Milliseconds since the epoch from what the API sends: nanoseconds (mtime_ns),
 * seconds or milliseconds (by size), a trash stamp `YYYYMMDD-HHMMSS-nanos` (UTC),
 * or an ISO date. NaN when it is none of these.
 */
export function toMillis(v) {
  if (v == null || v === '') return NaN;
  if (typeof v === 'number' || /^\d+$/.test(String(v))) {
    const n = Number(v);
    if (n < 1e11) return n * 1000;
    if (n < 1e14) return n;
    return n / 1e6;
  }
  const m = /^(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})/.exec(String(v));
  if (m) return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
  return Date.parse(String(v));
}

/** Date and time in the UI's language, from any of the forms toMillis() reads. */
export function humanTime(v) {
  const ms = toMillis(v);
  if (!Number.isFinite(ms) || ms <= 0) return '';
  const l = lang();
  if (!dateFormats.has(l)) {
    dateFormats.set(l, new Intl.DateTimeFormat(l === 'ko' ? 'ko-KR' : 'en-GB', { dateStyle: 'medium', timeStyle: 'short' }));
  }
  return dateFormats.get(l).format(new Date(ms));
}

/** First and last characters of a PeerId: 12D3Ko…XyZ12. */
export function shortPeer(id) {
  const s = String(id || '');
  return s.length > 16 ? `${s.slice(0, 8)}…${s.slice(-6)}` : s;
}

/** A badge for an entry state: local, remote, syncing, conflict, ignored. */
export function stateBadge(state) {
  const known = ['local', 'remote', 'syncing', 'conflict', 'ignored'].includes(state) ? state : 'local';
  return el('span', { class: `badge badge-${known}`, text: t(`state.${known}`) });
}

/** Copy text to the clipboard; falls back to a selection-based copy. */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const ta = el('textarea', { class: 'offscreen', attrs: { readonly: true } });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    let ok = false;
    try {
      ok = document.execCommand('copy');
    } catch {
      ok = false;
    }
    ta.remove();
    return ok;
  }
}
