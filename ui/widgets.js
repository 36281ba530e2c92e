// Shared widgets: toasts, the context menu, modal dialogs, and empty / loading /
// error placeholders. Text only through textContent (see dom.js).

import { t } from './i18n.js';
import { copyText, el, replace, uiIcon } from './dom.js';

const TOAST_MS = 4000;

/** A short message at the bottom; `kind` is 'info' or 'error'. */
export function toast(message, kind = 'info') {
  const box = document.getElementById('toasts');
  const item = el('div', { class: `toast toast-${kind}`, attrs: { role: kind === 'error' ? 'alert' : 'status' } }, el('span', { text: message }));
  box.append(item);
  setTimeout(() => item.remove(), kind === 'error' ? TOAST_MS * 2 : TOAST_MS);
}

/** A designed placeholder: icon, title, text, optional action button. */
export function placeholder({ icon = 'locker', title, body, action, kind = 'empty' }) {
  return el(
    'div',
    { class: `placeholder placeholder-${kind}`, attrs: kind === 'error' ? { role: 'alert' } : {} },
    uiIcon(icon, 'placeholder-icon'),
    el('h2', { text: title }),
    body ? el('p', { text: body }) : null,
    action ? el('button', { class: 'btn', attrs: { type: 'button' }, text: action.label, on: { click: action.run } }) : null,
  );
}

/** A loading placeholder with a spinner. */
export function loading() {
  return el(
    'div',
    { class: 'placeholder placeholder-loading', attrs: { role: 'status', 'aria-busy': 'true' } },
    el('span', { class: 'spinner', attrs: { 'aria-hidden': 'true' } }),
    el('p', { text: t('folder.loading') }),
  );
}

let menuCleanup = null;

/**
 * Open the context menu at (x, y). items: [{label, run, disabled}] or 'sep'.
 * Disabled items stay visible (what the backend cannot do yet).
 */
export function openMenu(items, x, y) {
  closeMenu();
  const menu = document.getElementById('menu');
  const buttons = [];
  const children = items.map((it) => {
    if (it === 'sep') return el('div', { class: 'menu-sep', attrs: { role: 'separator' } });
    const b = el('button', {
      class: 'menu-item',
      text: it.label,
      attrs: {
        type: 'button',
        role: 'menuitem',
        tabindex: '-1',
        'aria-disabled': it.disabled ? 'true' : 'false',
        title: it.disabled ? t('unsupported') : null,
      },
      on: {
        click: () => {
          if (it.disabled) return;
          closeMenu();
          it.run();
        },
      },
    });
    buttons.push(b);
    return b;
  });
  replace(menu, children);
  menu.hidden = false;
  const prev = document.activeElement;
  // Position inside the viewport (CSSOM, allowed by the CSP).
  const r = menu.getBoundingClientRect();
  menu.style.left = `${Math.max(4, Math.min(x, window.innerWidth - r.width - 4))}px`;
  menu.style.top = `${Math.max(4, Math.min(y, window.innerHeight - r.height - 4))}px`;
  const enabled = buttons.filter((b) => b.getAttribute('aria-disabled') !== 'true');
  let idx = 0;
  (enabled[0] || buttons[0])?.focus();
  const onKey = (e) => {
    if (e.key === 'Escape' || e.key === 'Tab') {
      e.preventDefault();
      closeMenu();
      prev?.focus?.();
    } else if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      const all = buttons;
      idx = all.indexOf(document.activeElement);
      idx = (idx + (e.key === 'ArrowDown' ? 1 : all.length - 1)) % all.length;
      all[idx].focus();
    }
  };
  const onDown = (e) => {
    if (!menu.contains(e.target)) closeMenu();
  };
  menu.addEventListener('keydown', onKey);
  setTimeout(() => document.addEventListener('mousedown', onDown), 0);
  window.addEventListener('blur', closeMenu);
  menuCleanup = () => {
    menu.removeEventListener('keydown', onKey);
    document.removeEventListener('mousedown', onDown);
    window.removeEventListener('blur', closeMenu);
  };
}

export function closeMenu() {
  const menu = document.getElementById('menu');
  if (menuCleanup) menuCleanup();
  menuCleanup = null;
  menu.hidden = true;
  replace(menu);
}

/**
 * Show a modal dialog. build(close) returns the body nodes; the dialog gets a title
 * and a close button. Returns {close, dialog}.
 */
export function openDialog(title, build) {
  const dlg = document.getElementById('dialog');
  if (dlg.open) dlg.close();
  const titleId = 'dialog-title';
  const close = () => dlg.close();
  replace(
    dlg,
    el(
      'div',
      { class: 'dialog-head' },
      el('h2', { attrs: { id: titleId }, text: title }),
      el('button', {
        class: 'icon-btn close',
        text: '×',
        attrs: { type: 'button', 'aria-label': t('dialog.close') },
        on: { click: close },
      }),
    ),
    el('div', { class: 'dialog-body' }, build(close)),
  );
  dlg.setAttribute('aria-labelledby', titleId);
  dlg.showModal();
  const first = dlg.querySelector('.dialog-body input, .dialog-body textarea, .dialog-body select, .dialog-body button');
  first?.focus();
  return { close, dialog: dlg };
}

/** A labelled form field. */
export function field(label, control, hint) {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  return el(
    'div',
    { class: 'field' },
    el('label', { attrs: { for: id }, text: label }),
    control,
    hint ? el('p', { class: 'hint', text: hint }) : null,
  );
}

/** An inline error line inside a dialog (role=alert so it is announced). */
export function errorLine() {
  return el('p', { class: 'form-error', attrs: { role: 'alert', hidden: true } });
}

export function showError(line, message) {
  line.textContent = message;
  line.hidden = !message;
}

/** Draws a QR code (from the node's `{size, modules}`) on a canvas, with the quiet zone. */
export function qrCanvas(qr) {
  const size = Number(qr?.size) || 0;
  const modules = String(qr?.modules || '');
  if (!size || modules.length !== size * size) return null;
  const quiet = 4;
  const scale = Math.max(2, Math.floor(200 / (size + 2 * quiet)));
  const px = (size + 2 * quiet) * scale;
  const canvas = el('canvas', { class: 'qr', attrs: { width: String(px), height: String(px), role: 'img', 'aria-label': t('share.qr') } });
  const g = canvas.getContext('2d');
  if (!g) return null;
  g.fillStyle = '#fff';
  g.fillRect(0, 0, px, px);
  g.fillStyle = '#000';
  for (let y = 0; y < size; y += 1) {
    for (let x = 0; x < size; x += 1) {
      if (modules.charCodeAt(y * size + x) === 49) g.fillRect((x + quiet) * scale, (y + quiet) * scale, scale, scale);
    }
  }
  return canvas;
}

/** A made link: the text with a Copy button, and its QR code. */
export function linkResult(link, qr) {
  const out = el('input', { class: 'link-out', attrs: { type: 'text', readonly: true, 'aria-label': t('share.link'), spellcheck: 'false' } });
  out.value = link;
  const copy = el('button', {
    class: 'btn primary',
    attrs: { type: 'button' },
    text: t('share.copy'),
    on: {
      click: async () => {
        out.select();
        if (await copyText(link)) toast(t('toast.copied'));
      },
    },
  });
  return el('div', { class: 'link-box' }, el('div', { class: 'link-result' }, out, copy), qrCanvas(qr));
}
