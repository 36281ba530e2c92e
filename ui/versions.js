// "Versions…" of a file: the earlier versions this device kept when sync replaced
// it, newest first, each restorable (what is there now is kept as a version in
// turn), and how many the folder keeps.

import { api } from './api.js';
import { t } from './i18n.js';
import { el, humanSize, humanTime, replace } from './dom.js';
import { errorLine, loading, openDialog, showError, toast } from './widgets.js';

/** Opens the versions dialog of `entry` in `folder`; `onRestored()` after a restore. */
export function versionsDialog(folder, entry, onRestored) {
  openDialog(t('versions.title', { name: entry.name }), (close) => {
    const body = el('div', { class: 'versions' }, loading());
    const err = errorLine();
    const fill = async () => {
      let list;
      try {
        list = await api.versions(folder.id, entry.path);
      } catch (e) {
        replace(body, el('p', { class: 'form-error', attrs: { role: 'alert' }, text: e.message }));
        return;
      }
      if (!list.length) {
        replace(body, el('p', { class: 'hint', text: t('versions.none') }));
        return;
      }
      const rows = list.map((v) => {
        const restore = el('button', { class: 'btn small', attrs: { type: 'button' }, text: t('versions.restore') });
        restore.addEventListener('click', async () => {
          restore.disabled = true;
          showError(err, '');
          try {
            await api.versionRestore(folder.id, entry.path, v.n);
            toast(t('versions.restored', { name: entry.name, when: humanTime(v.mtime_ns) }));
            close();
            onRestored();
          } catch (e) {
            showError(err, e.message);
            restore.disabled = false;
          }
        });
        return el(
          'tr',
          { dataset: { n: String(v.n) } },
          el('td', { class: 'num', text: String(v.n) }),
          el('td', { text: humanTime(v.mtime_ns) }),
          el('td', { text: humanTime(v.at) }),
          el('td', { class: 'num', text: humanSize(v.size) }),
          el('td', {}, restore),
        );
      });
      replace(
        body,
        el(
          'table',
          { class: 'table' },
          el('thead', {}, el('tr', {}, ['#', t('versions.written'), t('versions.replaced'), t('col.size'), ''].map((h) => el('th', { text: h, attrs: { scope: 'col' } })))),
          el('tbody', {}, rows),
        ),
      );
    };
    fill();
    const keep = el('input', { attrs: { type: 'number', min: '0', max: '1000', step: '1', id: 'versions-keep', value: String(folder.keep_versions ?? 5) } });
    const save = el('button', { class: 'btn', attrs: { type: 'submit' }, text: t('settings.save') });
    const form = el(
      'form',
      {
        class: 'versions-keep',
        on: {
          submit: async (e) => {
            e.preventDefault();
            save.disabled = true;
            showError(err, '');
            try {
              const n = Number(keep.value);
              if (!Number.isInteger(n) || n < 0) throw new Error(t('versions.badKeep'));
              await api.folderSet(folder.id, { keep_versions: n });
              toast(t('settings.saved'));
            } catch (ex) {
              showError(err, ex.message);
            } finally {
              save.disabled = false;
            }
          },
        },
      },
      el('label', { attrs: { for: 'versions-keep' }, text: t('versions.keep', { name: folder.name }) }),
      keep,
      save,
    );
    return el('div', {}, el('p', { class: 'hint', text: t('versions.body') }), body, form, err);
  });
}
