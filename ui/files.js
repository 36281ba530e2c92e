// The entry list of the drive: rows (list view) or tiles (grid view) with icon, name,
// size, modified time and state badge; selection with click, shift and ctrl; keyboard
// (arrows, Home/End, Space, Enter, Backspace, ctrl+A, menu key). It renders from the
// entries it is given and reports intents (open, up, menu, sort) to its owner.

import { t } from './i18n.js';
import { el, fileIcon, fileKind, humanSize, humanTime, stateBadge, replace } from './dom.js';

let nextListId = 1;
/** Rows made before the first paint, and per later chunk. */
const FIRST_CHUNK = 200;
const CHUNK = 1000;

/** Sort entries in place: directories first, then by key (name, size or date). */
export function sortEntries(entries, key, desc) {
  const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });
  const dir = desc ? -1 : 1;
  entries.sort((a, b) => {
    if (a.dir !== b.dir) return a.dir ? -1 : 1;
    let c = 0;
    if (key === 'size') c = (Number(a.size) || 0) - (Number(b.size) || 0);
    else if (key === 'date') c = (Number(a.mtime_ns) || 0) - (Number(b.mtime_ns) || 0);
    if (c === 0) c = collator.compare(a.name, b.name);
    return c * dir;
  });
  return entries;
}

export class EntryList {
  /**
   * opts: entries, mode ('list'|'grid'), search (bool: show the folder column),
   * sort {key, desc}, progress (Map path → percent), selected (Set of keys),
   * onOpen(entry), onUp(), onMenu(entries, x, y), onSort(key), onSelect(entries).
   */
  constructor(opts) {
    this.opts = opts;
    this.entries = opts.entries;
    this.id = nextListId++;
    this.selected = new Set(opts.selected || []);
    this.active = -1;
    this.anchor = -1;
    this.root = el('div', { class: `entries mode-${opts.mode}` });
    this.list = el('div', {
      class: 'list',
      attrs: {
        role: 'listbox',
        tabindex: '0',
        'aria-multiselectable': 'true',
        'aria-label': t('folder.entries'),
      },
    });
    this.rows = [];
    this.build();
    this.list.addEventListener('click', (e) => this.onClick(e));
    this.list.addEventListener('dblclick', (e) => this.onDblClick(e));
    this.list.addEventListener('contextmenu', (e) => this.onContextMenu(e));
    this.list.addEventListener('keydown', (e) => this.onKey(e));
    this.list.addEventListener('focus', () => {
      if (this.active < 0 && this.rows.length && this.selected.size) {
        const i = this.entries.findIndex((en) => this.selected.has(keyOf(en)));
        if (i >= 0) this.setActive(i);
      }
    });
  }

  build() {
    const { mode, search, sort } = this.opts;
    const head = mode === 'list' ? this.header(search, sort) : null;
    this.rows = [];
    replace(this.list);
    replace(this.root, head, this.list);
    // A big folder paints its first screens at once and the rest in chunks, so the
    // page answers while thousands of rows are still being made.
    this.ensure(Math.min(this.entries.length, FIRST_CHUNK) - 1);
    this.syncSelection();
    this.scheduleRest();
  }

  /** Make rows up to index `i` (inclusive) if they are not made yet. */
  ensure(i) {
    const last = Math.min(i, this.entries.length - 1);
    if (last < this.rows.length) return;
    const frag = document.createDocumentFragment();
    for (let k = this.rows.length; k <= last; k++) {
      const r = this.row(this.entries[k], k, this.opts.search);
      if (this.selected.has(keyOf(this.entries[k]))) {
        r.setAttribute('aria-selected', 'true');
        r.classList.add('selected');
      }
      this.rows.push(r);
      frag.append(r);
    }
    this.list.append(frag);
  }

  scheduleRest() {
    if (this.rows.length >= this.entries.length) {
      this.root.dataset.complete = 'true';
      return;
    }
    setTimeout(() => {
      if (!this.root.isConnected) return;
      this.ensure(this.rows.length + CHUNK - 1);
      this.scheduleRest();
    }, 0);
  }

  header(search, sort) {
    const col = (key, label, cls) => {
      if (!key) return el('span', { class: `col ${cls}`, text: label });
      const active = sort.key === key;
      return el(
        'button',
        {
          class: `col ${cls} sort-btn${active ? ' active' : ''}`,
          attrs: {
            type: 'button',
            'aria-sort': active ? (sort.desc ? 'descending' : 'ascending') : 'none',
          },
          on: { click: () => this.opts.onSort(key) },
        },
        el('span', { text: label }),
        el('span', { class: 'arrow', attrs: { 'aria-hidden': 'true' }, text: active ? (sort.desc ? '↓' : '↑') : '' }),
      );
    };
    return el(
      'div',
      { class: 'list-head', attrs: { 'aria-hidden': 'false' } },
      col('name', t('col.name'), 'c-name'),
      search ? col(null, t('col.folder'), 'c-folder') : null,
      col('size', t('col.size'), 'c-size'),
      col('date', t('col.modified'), 'c-date'),
      col(null, t('col.state'), 'c-state'),
    );
  }

  row(entry, i, search) {
    const kind = fileKind(entry.name, entry.dir);
    const pct = this.opts.progress && this.opts.progress.get(entry.path);
    const badge = stateBadge(entry.state);
    if (entry.state === 'syncing' && pct != null) badge.textContent = `${t('state.syncing')} ${pct}%`;
    const size = entry.dir ? '—' : humanSize(entry.size);
    const where = search ? `${entry.folder_name} / ${parentOf(entry.path) || ''}` : null;
    const r = el(
      'div',
      {
        class: `row state-${entry.state || 'local'}${entry.dir ? ' is-dir' : ''}`,
        attrs: {
          role: 'option',
          id: `e${this.id}-${i}`,
          'aria-selected': 'false',
          title: search ? `${entry.folder_name}/${entry.path}` : entry.name,
        },
        dataset: { index: i },
      },
      el('span', { class: 'col c-name' }, fileIcon(kind), el('span', { class: 'name', text: entry.name })),
      search ? el('span', { class: 'col c-folder', text: where }) : null,
      el('span', { class: 'col c-size', text: size }),
      el('span', { class: 'col c-date', text: humanTime(entry.mtime_ns) }),
      el('span', { class: 'col c-state' }, badge),
    );
    return r;
  }

  /** Keep keys (paths) selected across a re-render. */
  syncSelection() {
    this.rows.forEach((r, i) => {
      const on = this.selected.has(keyOf(this.entries[i]));
      r.setAttribute('aria-selected', on ? 'true' : 'false');
      r.classList.toggle('selected', on);
    });
    this.opts.onSelect?.(this.selectedEntries());
  }

  selectedEntries() {
    return this.entries.filter((e) => this.selected.has(keyOf(e)));
  }

  setActive(i, { scroll = true } = {}) {
    if (!this.entries.length) return;
    const n = Math.max(0, Math.min(this.entries.length - 1, i));
    this.ensure(n);
    if (this.active >= 0 && this.rows[this.active]) this.rows[this.active].classList.remove('active');
    this.active = n;
    this.rows[n].classList.add('active');
    this.list.setAttribute('aria-activedescendant', this.rows[n].id);
    if (scroll) this.rows[n].scrollIntoView({ block: 'nearest' });
  }

  selectOnly(i) {
    this.selected = new Set([keyOf(this.entries[i])]);
    this.anchor = i;
    this.syncSelection();
  }

  selectRange(from, to, add) {
    if (!add) this.selected.clear();
    const [a, b] = from <= to ? [from, to] : [to, from];
    for (let k = a; k <= b; k++) this.selected.add(keyOf(this.entries[k]));
    this.syncSelection();
  }

  toggle(i) {
    const k = keyOf(this.entries[i]);
    if (this.selected.has(k)) this.selected.delete(k);
    else this.selected.add(k);
    this.anchor = i;
    this.syncSelection();
  }

  indexOf(target) {
    const row = target.closest('.row');
    return row && this.list.contains(row) ? Number(row.dataset.index) : -1;
  }

  onClick(e) {
    const i = this.indexOf(e.target);
    if (i < 0) {
      this.selected.clear();
      this.syncSelection();
      return;
    }
    if (e.shiftKey && this.anchor >= 0) this.selectRange(this.anchor, i, e.ctrlKey || e.metaKey);
    else if (e.ctrlKey || e.metaKey) this.toggle(i);
    else this.selectOnly(i);
    this.setActive(i, { scroll: false });
    this.list.focus({ preventScroll: true });
  }

  onDblClick(e) {
    const i = this.indexOf(e.target);
    if (i >= 0) this.opts.onOpen(this.entries[i]);
  }

  onContextMenu(e) {
    const i = this.indexOf(e.target);
    if (i < 0) return;
    e.preventDefault();
    if (!this.selected.has(keyOf(this.entries[i]))) this.selectOnly(i);
    this.setActive(i, { scroll: false });
    this.opts.onMenu(this.selectedEntries(), e.clientX, e.clientY);
  }

  columns() {
    if (this.opts.mode !== 'grid' || this.rows.length < 2) return 1;
    const top = this.rows[0].offsetTop;
    const i = this.rows.findIndex((r) => r.offsetTop !== top);
    return i < 0 ? this.rows.length : i;
  }

  onKey(e) {
    const n = this.entries.length;
    const mod = e.ctrlKey || e.metaKey;
    const move = (to) => {
      e.preventDefault();
      if (!n) return;
      const target = Math.max(0, Math.min(n - 1, to));
      if (e.shiftKey) this.selectRange(this.anchor < 0 ? target : this.anchor, target, false);
      else if (!mod) this.selectOnly(target);
      this.setActive(target);
    };
    const cur = this.active;
    const step = this.columns();
    switch (e.key) {
      case 'ArrowDown':
        return move(cur < 0 ? 0 : cur + step);
      case 'ArrowUp':
        return move(cur < 0 ? 0 : cur - step);
      case 'ArrowRight':
        if (this.opts.mode === 'grid') move(cur < 0 ? 0 : cur + 1);
        return undefined;
      case 'ArrowLeft':
        if (this.opts.mode === 'grid') move(cur < 0 ? 0 : cur - 1);
        return undefined;
      case 'Home':
        return move(0);
      case 'End':
        return move(n - 1);
      case ' ':
        e.preventDefault();
        if (cur >= 0) this.toggle(cur);
        return undefined;
      case 'Enter':
        e.preventDefault();
        if (cur >= 0) this.opts.onOpen(this.entries[cur]);
        return undefined;
      case 'Backspace':
        e.preventDefault();
        this.opts.onUp();
        return undefined;
      case 'Escape':
        this.selected.clear();
        this.syncSelection();
        return undefined;
      case 'a':
      case 'A':
        if (mod) {
          e.preventDefault();
          this.selectRange(0, n - 1, false);
        }
        return undefined;
      case 'ContextMenu':
      case 'F10':
        if (e.key === 'F10' && !e.shiftKey) return undefined;
        e.preventDefault();
        if (cur >= 0) {
          if (!this.selected.has(keyOf(this.entries[cur]))) this.selectOnly(cur);
          const r = this.rows[cur].getBoundingClientRect();
          this.opts.onMenu(this.selectedEntries(), r.left + 24, r.bottom);
        }
        return undefined;
      default:
        return undefined;
    }
  }

  focus() {
    this.list.focus({ preventScroll: true });
  }
}

/** The key of an entry in a selection: folder and path. */
export function keyOf(e) {
  return `${e.folder || ''}\u0000${e.path}`;
}

/** The parent path of "a/b/c" is "a/b"; of "a" it is "". */
export function parentOf(path) {
  const i = path.lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}
