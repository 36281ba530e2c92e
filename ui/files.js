// The entry list of the drive: rows (list view) or tiles (grid view) with icon, name,
// size, modified time and state badge; selection with click, shift and ctrl; keyboard
// (arrows, Home/End, Space, Enter, Backspace, ctrl+A, menu key). It renders from the
// entries it is given and reports intents (open, up, menu, sort) to its owner.
//
// The list is virtualised: only the rows in and near the visible part of the nearest
// scrolling ancestor (the drive's main area) exist in the DOM, so a folder of 10,000
// entries opens as fast as one of 50. Everything else (selection, the active row, the
// anchor of a shift range) is kept by index or key, never by element.

import { t } from './i18n.js';
import { el, fileIcon, fileKind, humanSize, humanTime, stateBadge, replace } from './dom.js';

let nextListId = 1;
/** Pixels of rows made above and below the visible part, so a fast scroll shows rows, not a gap. */
const OVERSCAN = 400;
/**
 * Geometry last measured per mode: a re-rendered list (the folder changed while it was
 * open) starts at its true height, so the owner's restored scroll position holds.
 */
const lastGeometry = new Map();

function guessGeometry(mode) {
  const known = lastGeometry.get(mode);
  if (known) return { ...known };
  const rowH = parseFloat(getComputedStyle(document.documentElement).getPropertyValue('--row-h')) || 40;
  return { cols: 1, pitch: rowH, gap: 0, padTop: 0, padBottom: 0, headH: 0 };
}

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
    /** Rendered rows by entry index: the window [start, end). */
    this.rows = new Map();
    this.start = 0;
    this.end = 0;
    this.geo = guessGeometry(opts.mode);
    this.measured = false;
    this.scroller = null;
    this.frame = 0;
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
    this.head = opts.mode === 'list' ? this.header(opts.search, opts.sort) : null;
    replace(this.root, this.head, this.list);
    this.onScroll = () => this.schedule();
    this.resizes = new ResizeObserver(() => {
      // Width decides the grid's columns; the scroller's height decides how many rows show.
      this.measured = false;
      this.schedule();
    });
    this.resizes.observe(this.root);
    // Rows for the top of the list now, before the list is even in the page, so the first
    // paint has them; the first frame then measures and fits the window to the real view.
    this.renderWindow();
    this.schedule();
    this.list.addEventListener('click', (e) => this.onClick(e));
    this.list.addEventListener('dblclick', (e) => this.onDblClick(e));
    this.list.addEventListener('contextmenu', (e) => this.onContextMenu(e));
    this.list.addEventListener('keydown', (e) => this.onKey(e));
    this.list.addEventListener('focus', () => {
      if (this.active < 0 && this.entries.length && this.selected.size) {
        const i = this.entries.findIndex((en) => this.selected.has(keyOf(en)));
        if (i >= 0) this.setActive(i);
      }
    });
    this.opts.onSelect?.(this.selectedEntries());
  }

  /** Re-fit the window in the next frame; many scroll events in one frame cost one render. */
  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.refresh();
    });
  }

  refresh() {
    if (!this.root.isConnected) {
      this.detach();
      return;
    }
    this.attach();
    this.renderWindow();
    // The owner (and the e2e suite) read this as "ready": the window fits the view.
    if (!this.root.dataset.complete) this.root.dataset.complete = 'true';
  }

  /** Find the scrolling ancestor and listen to it; measure rows once they are laid out. */
  attach() {
    if (!this.scroller) {
      let s = this.root.parentElement;
      while (s && s !== document.body && !/auto|scroll|overlay/.test(getComputedStyle(s).overflowY)) s = s.parentElement;
      this.scroller = !s || s === document.body ? document.scrollingElement : s;
      const target = this.scroller === document.scrollingElement ? window : this.scroller;
      target.addEventListener('scroll', this.onScroll, { passive: true });
      if (target !== window) {
        this.resizes.observe(this.scroller);
        // A sticky box sticks inside the scroller's padding; this header belongs at the very top edge.
        if (this.head) this.head.style.top = `${-(parseFloat(getComputedStyle(this.scroller).paddingTop) || 0)}px`;
      }
    }
    if (!this.measured) this.measure();
  }

  /** The list left the page (its owner rendered another view): stop listening. */
  detach() {
    if (!this.scroller) return;
    const target = this.scroller === document.scrollingElement ? window : this.scroller;
    target.removeEventListener('scroll', this.onScroll);
    if (target !== window) this.resizes.unobserve(this.scroller);
    this.scroller = null;
  }

  /**
   * Row pitch, columns and the list's own padding, read from the laid-out page so the
   * CSS stays the one place that says how big a row or tile is.
   */
  measure() {
    const sample = this.rows.values().next().value;
    this.list.style.paddingTop = '';
    const cs = getComputedStyle(this.list);
    const geo = { ...this.geo };
    geo.padTop = parseFloat(cs.paddingTop) || 0;
    geo.padBottom = parseFloat(cs.paddingBottom) || 0;
    geo.gap = parseFloat(cs.rowGap) || 0;
    geo.cols = this.opts.mode === 'grid' ? Math.max(1, cs.gridTemplateColumns.split(' ').filter((c) => c.endsWith('px')).length) : 1;
    const h = sample ? sample.getBoundingClientRect().height : 0;
    if (h > 0) geo.pitch = h + geo.gap;
    // A sticky header covers the top of the view: keyboard moves keep the active row below it.
    geo.headH = this.head && getComputedStyle(this.head).position === 'sticky' ? this.head.getBoundingClientRect().height : 0;
    this.geo = geo;
    if (h > 0) {
      this.measured = true;
      lastGeometry.set(this.opts.mode, { ...geo });
    }
  }

  /** The visible part of the list, in pixels from its top edge. */
  viewport() {
    if (!this.scroller) return [0, window.innerHeight];
    const top = this.list.getBoundingClientRect().top;
    if (this.scroller === document.scrollingElement) return [-top, window.innerHeight - top];
    const s = this.scroller;
    const viewTop = s.getBoundingClientRect().top + s.clientTop;
    return [viewTop - top, viewTop + s.clientHeight - top];
  }

  /** Make the rows of the visible part (plus OVERSCAN), drop the others, keep the rest. */
  renderWindow() {
    const n = this.entries.length;
    const { cols, pitch, gap, padTop, padBottom } = this.geo;
    const lines = Math.ceil(n / cols);
    const [y0, y1] = this.viewport();
    const clampLine = (v) => Math.max(0, Math.min(lines, v));
    const first = clampLine(Math.floor((y0 - OVERSCAN - padTop) / pitch));
    const last = clampLine(Math.ceil((y1 + OVERSCAN - padTop) / pitch));
    const start = first * cols;
    const end = Math.min(n, last * cols);
    this.list.style.height = n ? `${padTop + lines * pitch - gap + padBottom}px` : '';
    this.list.style.paddingTop = `${padTop + first * pitch}px`;
    if (start === this.start && end === this.end) return;
    for (const [i, r] of this.rows) {
      if (i < start || i >= end) {
        r.remove();
        this.rows.delete(i);
      }
    }
    const keptFrom = Math.max(start, this.start);
    const keptTo = this.rows.size ? Math.min(end, this.end) : start;
    const before = document.createDocumentFragment();
    const after = document.createDocumentFragment();
    for (let i = start; i < end; i++) {
      if (i >= keptFrom && i < keptTo) continue;
      const r = this.row(this.entries[i], i, this.opts.search);
      this.rows.set(i, r);
      (i < keptFrom ? before : after).append(r);
    }
    this.list.prepend(before);
    this.list.append(after);
    this.start = start;
    this.end = end;
    this.syncActive();
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
    const on = this.selected.has(keyOf(entry));
    const r = el(
      'div',
      {
        class: `row state-${entry.state || 'local'}${entry.dir ? ' is-dir' : ''}${on ? ' selected' : ''}${i === this.active ? ' active' : ''}`,
        attrs: {
          role: 'option',
          // Stable per index, so aria-activedescendant names the same row when it is made again.
          id: `e${this.id}-${i}`,
          'aria-selected': on ? 'true' : 'false',
          // Only a window of rows exists: tell assistive tech where this one sits in the whole.
          'aria-setsize': this.entries.length,
          'aria-posinset': i + 1,
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

  /** Show the selection (a set of keys) on the rendered rows and report it. */
  syncSelection() {
    for (const [i, r] of this.rows) {
      const on = this.selected.has(keyOf(this.entries[i]));
      r.setAttribute('aria-selected', on ? 'true' : 'false');
      r.classList.toggle('selected', on);
    }
    this.opts.onSelect?.(this.selectedEntries());
  }

  /** aria-activedescendant may only name a row that exists; drop it while the row is scrolled away. */
  syncActive() {
    const r = this.rows.get(this.active);
    if (r) this.list.setAttribute('aria-activedescendant', r.id);
    else this.list.removeAttribute('aria-activedescendant');
  }

  selectedEntries() {
    return this.entries.filter((e) => this.selected.has(keyOf(e)));
  }

  setActive(i, { scroll = true } = {}) {
    if (!this.entries.length) return;
    const n = Math.max(0, Math.min(this.entries.length - 1, i));
    this.rows.get(this.active)?.classList.remove('active');
    this.active = n;
    if (scroll) this.scrollToIndex(n);
    this.rows.get(n)?.classList.add('active');
    this.syncActive();
  }

  /** Scroll the least that shows entry `i` (below a sticky header), and make its row now. */
  scrollToIndex(i) {
    if (!this.root.isConnected) return;
    this.attach();
    const s = this.scroller;
    const { cols, pitch, gap, padTop, padBottom, headH } = this.geo;
    const line = Math.floor(i / cols);
    const lines = Math.ceil(this.entries.length / cols);
    const listTop = this.list.getBoundingClientRect().top;
    // The first and last lines take the list's padding with them, so Home and End reach the edges.
    const rowTop = listTop + (line === 0 ? 0 : padTop + line * pitch);
    const rowBottom = listTop + padTop + (line + 1) * pitch - gap + (line === lines - 1 ? padBottom : 0);
    const whole = s === document.scrollingElement;
    const viewTop = (whole ? 0 : s.getBoundingClientRect().top + s.clientTop) + headH;
    const viewBottom = whole ? window.innerHeight : s.getBoundingClientRect().top + s.clientTop + s.clientHeight;
    let delta = 0;
    if (rowTop < viewTop) delta = rowTop - viewTop;
    else if (rowBottom > viewBottom) delta = Math.min(rowBottom - viewBottom, rowTop - viewTop);
    if (delta) s.scrollTo({ top: s.scrollTop + delta, behavior: 'instant' });
    this.renderWindow();
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
    return this.opts.mode === 'grid' ? this.geo.cols : 1;
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
          // The active row may have been scrolled out of the window: bring it back to anchor the menu.
          this.setActive(cur);
          const r = this.rows.get(cur)?.getBoundingClientRect() || this.list.getBoundingClientRect();
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
