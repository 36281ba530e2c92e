// The drive UI (ui/) in a real Chromium against a real `peerbox daemon`.
//
// Starts the daemon on a temp home (binary: $PEERBOX_BIN, default
// ../../target/debug/peerbox), adds a temp folder with nested, Korean, emoji and
// HTML-looking names through the CLI, opens the UI address the daemon printed, and
// checks what a user would: sidebar, listing, navigation, search, sort, language,
// keyboard, the folder-link dialog, that a hostile file name stays text, and that
// the API refuses requests without the token. Never sleeps to synchronise: every
// wait is a locator or a DOM condition with a timeout.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import jsQR from 'jsqr';
import { BIN, SHOTS, UI_DIR, cli, openBrowser, startDaemon } from './lib.mjs';

const HOSTILE = '<img src=x onerror=alert(1)>.txt';
const BIG_COUNT = 10000;
const BIG_NAME = 'big-10k';

let tmp;
let daemon;
let context;
let page;
let dialogs;
let pageErrors;
let folderName;

function makeFixture(root) {
  const write = (rel, data) => {
    const p = path.join(root, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, data);
  };
  write('alpha.txt', 'alpha\n');
  write('zeta-big.bin', Buffer.alloc(300 * 1024, 7));
  write('middle.md', 'm'.repeat(5000));
  write('문서/보고서 2026.txt', '한국어 보고서\n');
  write('문서/깊은/끝.md', 'deep\n');
  write('사진/바다🌊.jpg', Buffer.alloc(2048, 1));
  write('emoji 🎉 party.md', 'party\n');
  write(HOSTILE, 'not html\n');
}

/** Names of the rows in the entry list, in display order. */
function rowNames() {
  return page.$$eval('#content [role=option] .name', (els) => els.map((e) => e.textContent));
}

/** The name of the big folder's entry at `i`: sorted by name, it is also entry `i` of the list. */
function bigFile(i) {
  return `file-${String(i).padStart(5, '0')}.txt`;
}

/** Open the big folder unless it is open: opening it again would reload it under the test's feet. */
async function openBig() {
  const here = page.locator('#crumbs [aria-current=location]', { hasText: BIG_NAME });
  if (!(await here.count())) {
    await page.locator('#nav .nav-item', { hasText: BIG_NAME }).click();
    await here.waitFor();
  }
  await page.locator('#content .entries[data-complete]').waitFor();
}

/** The index of the row at the middle of the view. */
function middleRow() {
  return page.evaluate(() => {
    const r = document.querySelector('#content').getBoundingClientRect();
    const row = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2).closest('[role=option]');
    return Number(row.getAttribute('aria-posinset')) - 1;
  });
}

/** aria-activedescendant names the row called `name`, and that row is inside the view, below the header. */
async function expectActiveInView(name) {
  const where = await page.evaluate(() => {
    const list = document.querySelector('#content [role=listbox]');
    const row = document.getElementById(list.getAttribute('aria-activedescendant'));
    if (!row) return null;
    const view = document.querySelector('#content').getBoundingClientRect();
    const head = document.querySelector('#content .list-head')?.getBoundingClientRect();
    const r = row.getBoundingClientRect();
    return { name: row.querySelector('.name').textContent, top: r.top, bottom: r.bottom, viewTop: Math.max(view.top, head ? head.bottom : view.top), viewBottom: view.bottom };
  });
  assert.ok(where, 'aria-activedescendant names no row that exists');
  assert.equal(where.name, name);
  assert.ok(where.top >= where.viewTop - 0.5 && where.bottom <= where.viewBottom + 0.5, `${name} is not in view: ${JSON.stringify(where)}`);
}

async function openFolderRoot() {
  await page.locator('#nav .nav-item', { hasText: folderName }).click();
  await page.locator('#crumbs [aria-current=location]', { hasText: folderName }).waitFor();
  await page.locator('#content [role=option]', { hasText: 'alpha.txt' }).waitFor();
}

before(async () => {
  assert.ok(fs.existsSync(BIN), `peerbox binary not found at ${BIN} (set PEERBOX_BIN)`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'peerbox-ui-'));
  const home = path.join(tmp, 'home');
  const folder = path.join(tmp, '내 드라이브');
  folderName = path.basename(folder);
  fs.mkdirSync(home);
  makeFixture(folder);
  const big = path.join(tmp, BIG_NAME);
  fs.mkdirSync(big);
  for (let i = 0; i < BIG_COUNT; i++) fs.writeFileSync(path.join(big, bigFile(i)), '');

  daemon = await startDaemon(home);
  cli(home, 'folder', 'add', folder);
  cli(home, 'folder', 'add', big);
  ({ context, page, dialogs, errors: pageErrors } = await openBrowser(path.join(tmp, 'chromium-profile')));
  await page.goto(daemon.ui);
});

after(async () => {
  await context?.close().catch(() => {});
  await daemon?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('drive UI against a real daemon', () => {
  test('the token leaves the address bar and the folder appears in the sidebar', async () => {
    await page.locator('#nav .nav-item', { hasText: folderName }).waitFor();
    assert.ok(!page.url().includes('token='), `token still in the URL: ${page.url()}`);
    assert.ok(await page.evaluate(() => Boolean(sessionStorage.getItem('peerbox.token'))));
  });

  test('the folder lists its entries with human sizes and states', async () => {
    await openFolderRoot();
    const big = page.locator('#content [role=option]', { hasText: 'zeta-big.bin' });
    await big.locator('.c-size', { hasText: '300 KiB' }).waitFor();
    await page.locator('#content [role=option]', { hasText: 'alpha.txt' }).locator('.c-size', { hasText: '6 B' }).waitFor();
    await big.locator('.badge', { hasText: 'Local' }).waitFor();
    await page.locator('#content [role=option].is-dir', { hasText: '문서' }).waitFor();
    await page.locator('#content [role=option]', { hasText: '🎉' }).waitFor();
    await page.screenshot({ path: path.join(SHOTS, 'peerbox-ui.png') });
  });

  test('a file named like HTML shows as text and runs nothing', async () => {
    const row = page.locator('#content [role=option] .name', { hasText: HOSTILE });
    await row.waitFor();
    assert.equal(await row.textContent(), HOSTILE);
    const imgs = await page.$$eval('img', (els) => els.map((e) => e.getAttribute('src')));
    assert.deepEqual(imgs, ['favicon.svg'], `unexpected <img> elements: ${imgs}`);
    assert.equal(await page.locator('img[src="x"]').count(), 0);
    assert.deepEqual(dialogs, []);
  });

  test('double-click opens a folder; breadcrumbs update and lead back', async () => {
    await openFolderRoot();
    await page.locator('#content [role=option]', { hasText: '문서' }).dblclick();
    await page.locator('#crumbs [aria-current=location]', { hasText: '문서' }).waitFor();
    await page.locator('#content [role=option]', { hasText: '보고서 2026.txt' }).waitFor();
    await page.locator('#content [role=option]', { hasText: '깊은' }).dblclick();
    await page.locator('#crumbs [aria-current=location]', { hasText: '깊은' }).waitFor();
    await page.locator('#content [role=option]', { hasText: '끝.md' }).waitFor();
    await page.locator('#crumbs button.crumb', { hasText: '문서' }).click();
    await page.locator('#content [role=option]', { hasText: '보고서 2026.txt' }).waitFor();
    await page.locator('#crumbs button.crumb', { hasText: folderName }).click();
    await page.locator('#content [role=option]', { hasText: 'alpha.txt' }).waitFor();
    await page.locator('#crumbs [aria-current=location]', { hasText: folderName }).waitFor();
  });

  test('keyboard: arrow down and Enter open the first folder, Backspace goes up', async () => {
    await openFolderRoot();
    await page.locator('#content [role=listbox]').focus();
    await page.keyboard.press('ArrowDown');
    await page.locator('#content [role=option][aria-selected=true]', { hasText: '문서' }).waitFor();
    await page.keyboard.press('Enter');
    await page.locator('#crumbs [aria-current=location]', { hasText: '문서' }).waitFor();
    await page.locator('#content [role=option]', { hasText: '보고서 2026.txt' }).waitFor();
    await page.keyboard.press('Backspace');
    await page.locator('#crumbs [aria-current=location]', { hasText: folderName }).waitFor();
  });

  test('right-click opens a menu; actions that need one entry are disabled for several', async () => {
    await openFolderRoot();
    await page.locator('#content [role=option]', { hasText: 'alpha.txt' }).click({ button: 'right' });
    const menu = page.locator('#menu[role=menu]');
    await menu.locator('[role=menuitem]', { hasText: 'Copy path' }).waitFor();
    assert.equal(await menu.locator('[role=menuitem]', { hasText: 'Rename' }).getAttribute('aria-disabled'), 'false');
    await page.keyboard.press('Escape');
    await menu.waitFor({ state: 'hidden' });
    await page.locator('#content [role=listbox]').focus();
    await page.keyboard.press('Control+A');
    await page.locator('#content [role=option]', { hasText: 'alpha.txt' }).click({ button: 'right' });
    await menu.locator('[role=menuitem]', { hasText: 'Copy path' }).waitFor();
    assert.equal(await menu.locator('[role=menuitem]', { hasText: 'Rename' }).getAttribute('aria-disabled'), 'true');
    assert.equal(await menu.locator('[role=menuitem]', { hasText: 'Delete' }).getAttribute('aria-disabled'), 'false');
    assert.equal(await menu.locator('[role=menuitem]', { hasText: 'Copy path' }).getAttribute('aria-disabled'), 'false');
    await page.keyboard.press('Escape');
    await menu.waitFor({ state: 'hidden' });
  });

  test('sort by size puts the biggest file first (folders stay first)', async () => {
    await openFolderRoot();
    await page.selectOption('#sort', 'size');
    await page.waitForFunction(() => {
      const files = [...document.querySelectorAll('#content [role=option]:not(.is-dir) .name')].map((e) => e.textContent);
      return files[0] === 'zeta-big.bin';
    });
    const names = await rowNames();
    assert.deepEqual(names.slice(0, 2).sort(), ['문서', '사진'].sort(), `folders first: ${names}`);
    await page.selectOption('#sort', 'name');
    await page.waitForFunction(() => {
      const files = [...document.querySelectorAll('#content [role=option]:not(.is-dir) .name')].map((e) => e.textContent);
      return files[0] !== 'zeta-big.bin' && files.includes('zeta-big.bin');
    });
  });

  test('search finds a file in a subfolder and opens its folder', async () => {
    await page.fill('#search', '보고서');
    await page.press('#search', 'Enter');
    const hit = page.locator('#content [role=option]', { hasText: '보고서 2026.txt' });
    await hit.waitFor();
    assert.match(await hit.locator('.c-folder').textContent(), /문서/);
    await hit.dblclick();
    await page.locator('#crumbs [aria-current=location]', { hasText: '문서' }).waitFor();
    await page.locator('#content [role=option][aria-selected=true]', { hasText: '보고서 2026.txt' }).waitFor();
  });

  test('the folder-link dialog produces a peerbox:// link', async () => {
    await openFolderRoot();
    await page.locator('#btn-link').click();
    const dlg = page.locator('dialog[open]');
    await dlg.waitFor();
    await dlg.getByRole('button', { name: 'Create link' }).click();
    const out = dlg.locator('input.link-out');
    await out.waitFor();
    await page.waitForFunction(() => document.querySelector('dialog[open] input.link-out')?.value.startsWith('peerbox://'));
    // The QR code a phone would scan decodes to exactly the link shown.
    const link = await out.inputValue();
    const img = await dlg.locator('canvas.qr').evaluate((c) => {
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height);
      return { width: d.width, height: d.height, data: Array.from(d.data) };
    });
    const code = jsQR(Uint8ClampedArray.from(img.data), img.width, img.height);
    assert.ok(code, 'the QR code decodes');
    assert.equal(code.data, link);
    await page.screenshot({ path: path.join(SHOTS, 'peerbox-ui-share.png') });
    await page.keyboard.press('Escape');
    await page.locator('dialog[open]').waitFor({ state: 'detached' });
  });

  test('switching to 한국어 relabels the UI, and it is remembered', async () => {
    await openFolderRoot();
    await page.selectOption('#lang', 'ko');
    await page.locator('#nav .nav-title', { hasText: '내 보관함' }).waitFor();
    await page.locator('#btn-link', { hasText: '폴더 링크 만들기' }).waitFor();
    await page.locator('#content .list-head', { hasText: '수정한 날짜' }).waitFor();
    assert.equal(await page.getAttribute('html', 'lang'), 'ko');
    await page.screenshot({ path: path.join(SHOTS, 'peerbox-ui-ko.png') });
    await page.reload();
    await page.locator('#nav .nav-title', { hasText: '내 보관함' }).waitFor();
    await page.selectOption('#lang', 'en');
    await page.locator('#nav .nav-title', { hasText: 'My locker' }).waitFor();
  });

  test('settings: the device name is saved and kept, a bad one is refused and changes nothing', async () => {
    await page.locator('#nav .nav-item', { hasText: 'Settings' }).click();
    await page.locator('#content h1', { hasText: 'Settings' }).waitFor();
    const name = page.locator('#settings-name');
    await name.fill('사무실 NAS');
    await page.locator('.settings-name').getByRole('button', { name: 'Save' }).click();
    await page.locator('.toast', { hasText: 'Settings saved' }).waitFor();
    const errorsBefore = pageErrors.length;
    await name.fill('a/b');
    await page.locator('.settings-name').getByRole('button', { name: 'Save' }).click();
    await page.locator('#content .form-error', { hasText: 'device name' }).waitFor();
    // The refusal is an HTTP 400 the browser logs; it is the one expected error.
    // A bootstrap address without its /p2p/<id> is refused the same way.
    await page.fill('#settings-bootstrap', '/ip4/203.0.113.7/tcp/4001');
    await page.locator('.settings-bootstrap').getByRole('button', { name: 'Save' }).click();
    await page.locator('#content .form-error', { hasText: 'bootstrap address' }).waitFor();
    // Each refusal is an HTTP 400 the browser logs; they are the only errors expected.
    const logged = pageErrors.splice(errorsBefore);
    assert.ok(logged.length && logged.every((e) => e.includes('status of 400')), `only the refusals were logged: ${logged}`);
    const status = JSON.parse(cli(path.join(tmp, 'home'), 'status', '--json'));
    assert.equal(status.device_name, '사무실 NAS');
    const kept = JSON.parse(cli(path.join(tmp, 'home'), 'settings', '--json'));
    assert.deepEqual(kept.bootstrap, [], 'the bad bootstrap address was not kept');
    // What the node listens on is listed, and the storage bar says what the disk has free.
    assert.ok((await page.locator('#settings-listen code').count()) > 0, 'listen addresses shown');
    await page.locator('#storage .storage-free').waitFor();
    assert.match(await page.locator('#content .settings-app').textContent(), /desktop app/);
    await page.screenshot({ path: path.join(SHOTS, 'peerbox-ui-settings.png') });
    await page.reload();
    await page.locator('#nav .nav-item', { hasText: 'Settings' }).click();
    await page.waitForFunction(() => document.querySelector('#settings-name')?.value === '사무실 NAS');
  });

  test('the other views render: transfers, peers, trash', async () => {
    await page.locator('#nav .nav-item', { hasText: 'Transfers' }).click();
    await page.locator('#content h1', { hasText: 'Transfers' }).waitFor();
    await page.locator('#content .placeholder, #content .transfers').first().waitFor();
    await page.locator('#nav .nav-item', { hasText: 'Peers' }).click();
    await page.locator('#content h2', { hasText: 'This device' }).waitFor();
    await page.screenshot({ path: path.join(SHOTS, 'peerbox-ui-peers.png') });
    await page.locator('#nav .nav-item', { hasText: 'Trash' }).click();
    await page.locator('#content h1', { hasText: 'Trash' }).waitFor();
    await page.locator('#content .placeholder, #content table').first().waitFor();
  });

  test('a status change updates the sidebar and the locker in place: a click in between is never lost', async () => {
    await page.locator('#nav .nav-title', { hasText: 'My locker' }).click();
    const card = page.locator('#content .card', { hasText: folderName });
    await card.waitFor();
    const before = await card.locator('.card-meta').nth(1).textContent();
    const navButton = await page.locator('#nav .nav-item', { hasText: folderName }).elementHandle();
    const cardButton = await card.elementHandle();
    fs.writeFileSync(path.join(tmp, '내 드라이브', 'new while watching.txt'), 'x');
    await page.waitForFunction(
      ([name, was]) => {
        const c = [...document.querySelectorAll('#content .card')].find((x) => x.textContent.includes(name));
        return c && c.querySelectorAll('.card-meta')[1].textContent !== was;
      },
      [folderName, before],
      { timeout: 30000 },
    );
    assert.ok(await navButton.evaluate((el) => el.isConnected), 'the sidebar button was swapped out by the re-render');
    assert.ok(await cardButton.evaluate((el) => el.isConnected), 'the locker card was swapped out by the re-render');
    await cardButton.click();
    await page.locator('#crumbs [aria-current=location]', { hasText: folderName }).waitFor();
  });

  test('no HTML parsing sinks: none in ui/*.js, and Trusted Types refuse innerHTML', async () => {
    for (const f of fs.readdirSync(UI_DIR).filter((n) => n.endsWith('.js'))) {
      const src = fs.readFileSync(path.join(UI_DIR, f), 'utf8');
      assert.doesNotMatch(src, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function/, `${f} uses an HTML/code sink`);
    }
    const refused = await page.evaluate(() => {
      try {
        document.createElement('div').innerHTML = '<b>x</b>';
        return false;
      } catch (e) {
        return e instanceof TypeError;
      }
    });
    assert.ok(refused, 'innerHTML with a string must throw under require-trusted-types-for');
    // Chromium logs the refusal above as a console error; it was provoked on purpose.
    for (let i = pageErrors.length - 1; i >= 0; i--) if (/TrustedHTML|Trusted Type/i.test(pageErrors[i])) pageErrors.splice(i, 1);
  });

  test('a folder of 10,000 entries opens (times reported, not asserted)', async (t) => {
    // Wait until the daemon has indexed every file, so the figures are the UI's, not the scan's.
    await page.locator('#nav .nav-title', { hasText: 'My locker' }).click();
    await page.locator('.card', { hasText: BIG_NAME }).filter({ hasText: `${BIG_COUNT.toLocaleString('en-US')} files` }).waitFor({ timeout: 60000 });
    await page.screenshot({ path: path.join(SHOTS, 'peerbox-ui-home.png') });
    const [first, ready] = await page.evaluate(
      (name) =>
        new Promise((resolve) => {
          const btn = [...document.querySelectorAll('#nav .nav-item')].find((b) => b.textContent.includes(name));
          const t0 = performance.now();
          let firstAt = null;
          btn.click();
          // Measured in animation frames: the time until rows are on screen, then until the
          // virtualised list has fitted its window to the view (data-complete).
          const check = () => {
            if (firstAt === null && document.querySelector('#content [role=option]')) firstAt = performance.now() - t0;
            if (firstAt !== null && document.querySelector('#content .entries[data-complete]')) resolve([firstAt, performance.now() - t0]);
            else requestAnimationFrame(check);
          };
          requestAnimationFrame(check);
        }),
      BIG_NAME,
    );
    t.diagnostic(`folder of ${BIG_COUNT} entries: first rows painted after ${first.toFixed(0)} ms, list ready after ${ready.toFixed(0)} ms (browse call included)`);
    const rows = page.locator('#content [role=option]');
    const made = await rows.count();
    assert.ok(made > 0 && made < 300, `a virtualised list makes only the rows near the view, not ${made}`);
    assert.equal(await rows.first().getAttribute('aria-setsize'), String(BIG_COUNT));
    await page.locator('#content [role=listbox]').focus();
    await page.keyboard.press('End');
    await page.locator('#content [role=option][aria-selected=true]', { hasText: 'file-09999.txt' }).waitFor();
    await expectActiveInView('file-09999.txt');
    assert.equal(await page.locator('#content [role=option]', { hasText: 'file-09999.txt' }).getAttribute('aria-posinset'), String(BIG_COUNT));
    await page.keyboard.press('Home');
    await page.locator('#content [role=option][aria-selected=true]', { hasText: 'file-00000.txt' }).waitFor();
    await expectActiveInView('file-00000.txt');
    assert.ok((await rows.count()) < 300);
  });

  test('the 10,000-entry list follows the scroll and selects across rows it has not made', async () => {
    await openBig();
    const main = page.locator('#content');
    // Jump to the middle, then wheel on: both paths must bring the rows under the view.
    const jumped = await main.evaluate((m) => {
      m.scrollTop = m.scrollHeight / 2;
      return m.scrollTop;
    });
    const box = await page.locator('#content [role=listbox]').boundingBox();
    await page.mouse.move(box.x + 200, 400);
    await page.mouse.wheel(0, 1200);
    // A wheel scroll may be animated: wait until it has moved and then held still for a few
    // frames, or the rows would move under the clicks below.
    await main.evaluate(
      (m, top) =>
        new Promise((resolve) => {
          let last = m.scrollTop;
          let still = 0;
          const check = () => {
            still = m.scrollTop === last ? still + 1 : 0;
            last = m.scrollTop;
            if (last > top && still >= 3) resolve();
            else requestAnimationFrame(check);
          };
          requestAnimationFrame(check);
        }),
      jumped,
    );
    await page.waitForFunction(() => {
      const m = document.querySelector('#content');
      const r = m.getBoundingClientRect();
      const mid = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2)?.closest('[role=option]');
      return mid && Number(mid.getAttribute('aria-posinset')) > 4000 && Number(mid.getAttribute('aria-posinset')) < 6500;
    });
    // Every made row shows the entry of its index (the names count up with the index).
    const made = await page.$$eval('#content [role=option]', (els) => els.map((e) => [Number(e.getAttribute('aria-posinset')), e.querySelector('.name').textContent]));
    assert.ok(made.length < 300, `${made.length} rows made`);
    for (const [pos, name] of made) assert.equal(name, bigFile(pos - 1));

    // Click one row, scroll far enough that it is no longer made, then shift+click another.
    const anchorRow = await middleRow();
    await page.locator('#content [role=option]', { hasText: bigFile(anchorRow) }).click();
    await main.evaluate((m) => {
      m.scrollTop += 4000;
    });
    await page.locator('#content [role=option]', { hasText: bigFile(anchorRow) }).waitFor({ state: 'detached' });
    await page.waitForFunction((a) => {
      const m = document.querySelector('#content');
      const r = m.getBoundingClientRect();
      const mid = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2)?.closest('[role=option]');
      return mid && Number(mid.getAttribute('aria-posinset')) > a + 50;
    }, anchorRow);
    const target = await middleRow();
    await page.locator('#content [role=option]', { hasText: bigFile(target) }).click({ modifiers: ['Shift'] });
    const span = target - anchorRow + 1;
    await page.locator('#content .count-line', { hasText: new RegExp(`^${span} selected$`) }).waitFor();
    const shown = await page.$$eval('#content [role=option]', (els) => els.map((e) => [Number(e.getAttribute('aria-posinset')) - 1, e.getAttribute('aria-selected')]));
    for (const [i, sel] of shown) assert.equal(sel, String(i >= anchorRow && i <= target), `row ${i}`);
    await expectActiveInView(bigFile(target));
    // Back at the anchor, the re-made row still shows the selection.
    await main.evaluate((m) => {
      m.scrollTop -= 4000;
    });
    await page.locator('#content [role=option][aria-selected=true]', { hasText: bigFile(anchorRow) }).waitFor();

    await page.keyboard.press('Control+a');
    await page.locator('#content .count-line', { hasText: new RegExp(`^${BIG_COUNT} selected$`) }).waitFor();
    assert.equal(await page.locator('#content [role=option][aria-selected=false]').count(), 0);
    await page.keyboard.press('Escape');
    await page.locator('#content .count-line', { hasText: new RegExp(`^${BIG_COUNT.toLocaleString('en-US')} items$`) }).waitFor();
    assert.equal(await page.locator('#content [role=option][aria-selected=true]').count(), 0);
  });

  test('the API refuses requests without the token', async () => {
    const noToken = await fetch(`${daemon.api}/api/v1/call`, { method: 'POST', body: '{"op":"status"}' });
    assert.equal(noToken.status, 401);
    const wrong = await fetch(`${daemon.api}/api/v1/call`, { method: 'POST', headers: { Authorization: 'Bearer nope' }, body: '{"op":"status"}' });
    assert.equal(wrong.status, 401);
  });

  test('no dialog fired and no script error happened', async () => {
    assert.deepEqual(dialogs, []);
    assert.deepEqual(pageErrors, []);
  });
});
