// Links and their limits: the password / device-limit / expiry fields of every
// "make a link" dialog, the file-request dialog, the Links view (uses, state,
// revoke), and the page a file-request link opens on the holder's side (a drop
// zone that sends files into someone else's folder). Peer data as text only.

import { api, canDropFiles, dropFile, isDesktop } from './api.js';
import { t } from './i18n.js';
import { el, humanSize, humanTime, replace, uiIcon } from './dom.js';
import { errorLine, field, linkResult, loading, openDialog, placeholder, showError, toast } from './widgets.js';

const EXPIRY = [
  ['never', 0],
  ['1h', 3600],
  ['1d', 86400],
  ['7d', 7 * 86400],
  ['30d', 30 * 86400],
];

/**
 * The limit fields of a new link: expiry, password, devices, and (for file
 * requests) a size limit. Returns {nodes, values()}; values() gives what api.js
 * takes, or throws an Error with a message for the user.
 */
export function limitFields({ size = false } = {}) {
  const expiry = el('select', {}, EXPIRY.map(([k, secs]) => el('option', { attrs: { value: String(secs) }, text: t(`expiry.${k}`) })));
  const password = el('input', { class: 'link-password', attrs: { type: 'text', autocomplete: 'off', spellcheck: 'false', maxlength: '1024' } });
  const uses = el('input', { class: 'link-uses', attrs: { type: 'number', min: '1', step: '1', inputmode: 'numeric' } });
  const mb = size ? el('input', { class: 'link-size', attrs: { type: 'number', min: '1', step: '1', inputmode: 'numeric' } }) : null;
  const nodes = [
    field(t('share.expiry'), expiry),
    field(t('limits.password'), password, t('limits.passwordHint')),
    field(t('limits.uses'), uses, t('limits.usesHint')),
    size ? field(t('limits.size'), mb, t('limits.sizeHint')) : null,
  ];
  const values = () => {
    const n = (input, what) => {
      const v = input.value.trim();
      if (!v) return undefined;
      const x = Number(v);
      if (!Number.isInteger(x) || x < 1) throw new Error(t('limits.bad', { what }));
      return x;
    };
    const maxUses = n(uses, t('limits.uses'));
    const maxMb = size ? n(mb, t('limits.size')) : undefined;
    return {
      expiresIn: Number(expiry.value) || undefined,
      password: password.value || undefined,
      maxUses,
      maxBytes: maxMb ? maxMb * 1024 * 1024 : undefined,
    };
  };
  return { nodes, values };
}

/**
 * A "make a link" dialog: `before` (nodes above the limits), the limit fields
 * (with a size limit for file requests), `after`, and Create. `make(limits)`
 * makes the link and resolves with {link, qr}, which the dialog then shows.
 */
export function linkDialog(title, { before = [], after = [], size = false, make }) {
  openDialog(title, () => {
    const limits = limitFields({ size });
    const err = errorLine();
    const result = el('div', { class: 'result' });
    const create = el('button', { class: 'btn primary', attrs: { type: 'submit' }, text: t('share.create') });
    return el(
      'form',
      {
        on: {
          submit: async (e) => {
            e.preventDefault();
            create.disabled = true;
            showError(err, '');
            try {
              const r = await make(limits.values());
              replace(result, linkResult(r.link, r.qr));
              result.querySelector('input')?.select();
              toast(t('toast.linkMade'));
            } catch (ex) {
              showError(err, ex.message);
            } finally {
              create.disabled = false;
            }
          },
        },
      },
      ...before,
      ...limits.nodes,
      ...after,
      err,
      el('div', { class: 'actions' }, create),
      result,
    );
  });
}

/** The file-request dialog of a folder: a link whose holders can only send files in. */
export function requestDialog(folder) {
  linkDialog(t('request.title', { name: folder.name }), {
    before: [el('p', { class: 'hint', text: t('request.body') })],
    size: true,
    make: (limits) => api.folderRequest(folder.id, limits),
  });
}

// ---------------------------------------------------------------- the Links view

function limitsText(l) {
  const out = [];
  if (l.max_uses) out.push(t('links.usesOf', { n: l.uses, max: l.max_uses }));
  else out.push(l.uses === 1 ? t('links.uses1') : t('links.uses', { n: l.uses }));
  if (l.expires) out.push(t('links.until', { when: humanTime(l.expires) }));
  if (l.password) out.push(t('links.password'));
  if (l.kind === 'request') {
    out.push(l.max_bytes ? t('links.bytesOf', { got: humanSize(l.bytes_used), max: humanSize(l.max_bytes) }) : t('links.bytes', { got: humanSize(l.bytes_used) }));
  }
  if (l.kind === 'folder') out.push(l.read_only ? t('rights.ro') : t('rights.rw'));
  return out.join(' · ');
}

/** Every link this device made, newest first, with a Revoke button for live ones. */
export function renderLinks(main, links, { onChange }) {
  const head = el('div', { class: 'view-head' }, el('h1', { text: t('links.title') }));
  if (!links) {
    replace(main, head, loading());
    return;
  }
  const mine = links.filter((l) => !l.received);
  if (!mine.length) {
    replace(main, head, placeholder({ icon: 'link', title: t('links.empty.title'), body: t('links.empty.body') }));
    return;
  }
  const revoke = (l) =>
    openDialog(t('links.revokeTitle'), (close) => {
      const go = el('button', { class: 'btn danger', attrs: { type: 'button' }, text: t('links.revoke') });
      go.addEventListener('click', async () => {
        go.disabled = true;
        try {
          await api.revoke(String(l.id));
          close();
          toast(t('links.revoked'));
          onChange();
        } catch (ex) {
          toast(ex.message, 'error');
          go.disabled = false;
        }
      });
      return el(
        'div',
        {},
        el('p', { text: t(`links.revokeBody.${l.kind}`, { name: l.label || '—' }) }),
        el('div', { class: 'actions' }, el('button', { class: 'btn', attrs: { type: 'button' }, text: t('dialog.cancel'), on: { click: close } }), go),
      );
    });
  const rows = mine.map((l) =>
    el(
      'tr',
      { class: `link-row lstate-${l.state}`, dataset: { id: String(l.id) } },
      el('td', {}, el('span', { class: 'cell-name' }, uiIcon(l.kind === 'request' ? 'upload' : 'link'), el('span', { text: l.label || t('links.gone') }))),
      el('td', { text: t(`links.kind.${l.kind}`) }),
      el('td', {}, el('span', { class: `badge lbadge-${l.state}`, text: t(`links.state.${l.state}`) })),
      el('td', { class: 'muted', text: limitsText(l) }),
      el('td', { text: humanTime(l.created) }),
      el(
        'td',
        {},
        l.state === 'revoked'
          ? null
          : el('button', { class: 'btn small', attrs: { type: 'button' }, text: t('links.revoke'), on: { click: () => revoke(l) } }),
      ),
    ),
  );
  replace(
    main,
    head,
    el(
      'table',
      { class: 'table links' },
      el('thead', {}, el('tr', {}, [t('col.name'), t('links.kind'), t('col.state'), t('links.limits'), t('links.created'), ''].map((h) => el('th', { text: h, attrs: { scope: 'col' } })))),
      el('tbody', {}, rows),
    ),
  );
}

// ---------------------------------------------------------------- sending through a request link

function batchId() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
}

/**
 * The holder's page of a file-request link: who it goes to, what it still takes,
 * a drop zone and each file's progress. `send` is kept across renders (the view's
 * own state): {link, password, probe, error, items}.
 */
export function renderSend(main, send, { rerender, onUploads }) {
  const head = el('div', { class: 'view-head' }, el('h1', { text: send.probe ? t('send.title', { name: send.probe.folder }) : t('send.titleUnknown') }));
  if (!send.probe && !send.error) {
    replace(main, head, loading());
    probe(send, rerender);
    return;
  }
  if (send.error) {
    const needPassword = ['password_needed', 'wrong_password'].includes(send.error.code);
    const pw = el('input', { attrs: { type: 'password', autocomplete: 'off', id: 'send-password' } });
    const form = el(
      'form',
      {
        class: 'panel',
        on: {
          submit: (e) => {
            e.preventDefault();
            send.password = pw.value;
            send.error = null;
            rerender();
          },
        },
      },
      el('p', { class: 'note note-error', attrs: { role: 'alert' }, text: send.error.message }),
      needPassword ? field(t('limits.password'), pw) : null,
      el('div', { class: 'actions' }, el('button', { class: 'btn primary', attrs: { type: 'submit' }, text: needPassword ? t('send.unlock') : t('folder.retry') })),
    );
    replace(main, head, form);
    if (needPassword) pw.focus();
    return;
  }
  const left = send.probe.remaining;
  const zone = el(
    'button',
    { class: 'drop-zone', attrs: { type: 'button', id: 'send-zone' }, on: { click: () => pick(send, rerender, onUploads) } },
    uiIcon('upload', 'drop-zone-icon'),
    el('span', { class: 'drop-zone-title', text: canDropFiles() ? t('send.zone') : t('send.zoneDesktop') }),
    el('span', { class: 'muted', text: left == null ? t('send.noLimit') : t('send.left', { size: humanSize(left) }) }),
  );
  const items = send.items.map((it) =>
    el(
      'li',
      { class: `transfer send-item ${it.error ? 'failed' : it.done ? 'done' : 'sending'}` },
      uiIcon(it.done ? 'check' : it.error ? 'alert' : 'transfers'),
      el(
        'div',
        { class: 'transfer-main' },
        el('span', { class: 'name', text: it.path }),
        el('span', { class: it.error ? 'note-error' : 'muted', text: it.error || (it.done ? t('send.stored', { path: it.stored || it.path }) : t('transfers.uploading', { had: humanSize(it.sent), size: humanSize(it.size) })) }),
      ),
      el('progress', { attrs: { max: String(it.size || 1), value: String(it.done ? it.size : it.sent), 'aria-label': it.path } }),
    ),
  );
  replace(
    main,
    head,
    el('p', { class: 'hint', text: t('send.body') }),
    zone,
    items.length ? el('ul', { class: 'transfers send-list' }, items) : null,
  );
}

async function probe(send, rerender) {
  try {
    send.probe = await api.dropProbe(send.link, send.password);
  } catch (e) {
    send.error = e;
  }
  rerender();
}

function pick(send, rerender, onUploads) {
  if (!canDropFiles()) {
    toast(t('send.zoneDesktop'));
    return;
  }
  const input = el('input', { attrs: { type: 'file', multiple: true, id: 'send-input' }, class: 'offscreen' });
  input.addEventListener('change', () => {
    const files = [...input.files].map((file) => ({ file, path: file.name }));
    input.remove();
    if (files.length) sendFiles(send, files, rerender, onUploads);
  });
  document.body.append(input);
  input.click();
}

/** Sends browser files (`{file, path}`) one by one, as one drop (one subfolder there). */
export async function sendFiles(send, files, rerender, onUploads) {
  const batch = batchId();
  const items = files.map(({ file, path }) => ({ file, path, size: file.size, sent: 0, done: false, error: null, stored: null }));
  send.items.push(...items);
  rerender();
  let sent = 0;
  for (const it of items) {
    try {
      const r = await dropFile(send.link, send.password, batch, it.path, it.file, (loaded) => {
        it.sent = loaded;
        rerender();
      });
      it.done = true;
      it.stored = r && r.path;
      sent += 1;
    } catch (e) {
      it.error = e.message;
    }
    rerender();
  }
  if (sent) toast(t('send.done', { n: sent, name: send.probe?.folder || '' }));
  onUploads?.();
  // What the link still takes has changed.
  try {
    send.probe = await api.dropProbe(send.link, send.password);
  } catch {
    // keep the last answer
  }
  rerender();
}

/** Native paths dropped on the desktop window while a request link is open. */
export async function sendPaths(send, paths, rerender) {
  if (!isDesktop()) return;
  const item = { path: paths.length === 1 ? paths[0].split(/[/\\]/).pop() : t('upload.many', { n: paths.length }), size: 0, sent: 0, done: false, error: null };
  send.items.push(item);
  rerender();
  try {
    const r = await api.dropPaths(send.link, send.password, paths);
    item.done = true;
    item.stored = (r.stored || []).join(', ');
    if ((r.refused || []).length) item.error = r.refused.map((x) => `${x[0]}: ${x[1]}`).join('; ');
  } catch (e) {
    item.error = e.message;
  }
  rerender();
}
