// The locker's extras through two real daemons' UIs: a file link with a password
// and a device limit (Links view, revoke), a file request (A asks, B sends from its
// drive's Send page, over the limit refused), versions restored from "Versions…",
// ignored entries greyed, bandwidth and schedule settings, and a scheduled download
// started by hand from Transfers.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BIN, SHOTS, cli, openBrowser, startDaemon, watch } from './lib.mjs';

let tmp;
let a;
let b;
let browser;
let pageA;
let pageB;
let team;
let teamB;
let inbox;
const homeA = () => path.join(tmp, 'a');
const homeB = () => path.join(tmp, 'b');

/** Waits (polling the disk) until `fn()` is true; fails with `what` after 30 s. */
async function until(fn, what) {
  const end = Date.now() + 30000;
  while (Date.now() < end) {
    if (fn()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`timed out: ${what}`);
}

before(async () => {
  assert.ok(fs.existsSync(BIN), `peerbox binary not found at ${BIN} (set PEERBOX_BIN)`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'peerbox-ui3-'));
  team = path.join(tmp, 'Team');
  teamB = path.join(tmp, 'team-b');
  inbox = path.join(tmp, 'Inbox');
  fs.mkdirSync(team, { recursive: true });
  fs.mkdirSync(inbox, { recursive: true });
  fs.writeFileSync(path.join(team, 'plan.txt'), 'v1\n');
  fs.writeFileSync(path.join(team, '.peerboxignore'), '*.log\n');
  fs.writeFileSync(path.join(team, 'debug.log'), 'noise\n');
  fs.writeFileSync(path.join(inbox, 'private.txt'), 'not for senders\n');
  for (const h of ['a', 'b']) fs.mkdirSync(path.join(tmp, h));
  a = await startDaemon(homeA());
  b = await startDaemon(homeB());
  cli(homeA(), 'folder', 'add', team, '--name', 'Team');
  cli(homeA(), 'folder', 'add', inbox, '--name', 'Inbox');
  const link = cli(homeA(), 'folder', 'link', 'Team').trim();
  cli(homeB(), 'folder', 'join', link, teamB);
  browser = await openBrowser(path.join(tmp, 'chromium-profile'));
  pageA = browser.page;
  pageB = await browser.context.newPage();
  watch(pageB, browser.dialogs, browser.errors);
  await pageA.goto(a.ui);
  await pageB.goto(b.ui);
});

after(async () => {
  await browser?.context.close().catch(() => {});
  await a?.stop();
  await b?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/** Opens `link` in `page`'s Open-link dialog; returns the dialog. */
async function openLink(page, link) {
  await page.locator('#btn-open').click();
  const dlg = page.locator('dialog[open]');
  await dlg.getByLabel('peerbox:// link').fill(link);
  return dlg;
}

describe('locker extras through the UI', () => {
  test('an ignored file shows greyed, and never reaches the other member', async () => {
    await pageA.locator('#nav .nav-item', { hasText: 'Team' }).click();
    const row = pageA.locator('#content [role=option]', { hasText: 'debug.log' });
    await row.locator('.badge', { hasText: 'Ignored' }).waitFor();
    assert.match(await row.getAttribute('class'), /state-ignored/);
    await until(() => fs.existsSync(path.join(teamB, 'plan.txt')), 'B synced');
    assert.equal(fs.existsSync(path.join(teamB, 'debug.log')), false);
    assert.equal(fs.readFileSync(path.join(teamB, '.peerboxignore'), 'utf8'), '*.log\n');
  });

  test('a file link with a password and a device limit, listed in Links and revoked there', async () => {
    const row = pageA.locator('#content [role=option]', { hasText: 'plan.txt' });
    await row.click({ button: 'right' });
    await pageA.locator('#menu [role=menuitem]', { hasText: 'Share link' }).click();
    let dlg = pageA.locator('dialog[open]');
    await dlg.getByLabel('Password').fill('열쇠 42');
    await dlg.getByLabel('Devices that may use it').fill('1');
    await dlg.getByRole('button', { name: 'Create link' }).click();
    await pageA.waitForFunction(() => document.querySelector('dialog[open] input.link-out')?.value.startsWith('peerbox://'));
    const link = await dlg.locator('input.link-out').inputValue();
    await pageA.keyboard.press('Escape');

    // B's dialog sees the link takes a password, and offers only a download.
    dlg = await openLink(pageB, link);
    const pw = dlg.getByLabel('Password');
    await pw.waitFor();
    assert.deepEqual(await dlg.getByLabel('What to do').locator('option').allTextContents(), ['Download once']);
    const dest = path.join(tmp, 'b-dl');
    await dlg.getByLabel('Where on this device').fill(dest);
    await pw.fill('wrong');
    await dlg.getByRole('button', { name: 'Open', exact: true }).click();
    const failed = pageB.locator('#content li.transfer.tstate-failed');
    await failed.locator('.note-error', { hasText: 'wrong password' }).waitFor({ timeout: 30000 });
    assert.equal(fs.existsSync(path.join(dest, 'plan.txt')), false);
    await failed.getByRole('button', { name: 'Cancel' }).click();

    dlg = await openLink(pageB, link);
    await dlg.getByLabel('Password').fill('열쇠 42');
    await dlg.getByLabel('Where on this device').fill(dest);
    await dlg.getByRole('button', { name: 'Open', exact: true }).click();
    await pageB.locator('#content li.transfer', { hasText: 'plan.txt' }).locator('.muted', { hasText: 'Done' }).waitFor({ timeout: 30000 });
    assert.equal(fs.readFileSync(path.join(dest, 'plan.txt'), 'utf8'), 'v1\n');

    await pageA.locator('#nav .nav-item', { hasText: 'Links' }).click();
    const listed = pageA.locator('#content tr.link-row', { hasText: 'plan.txt' });
    await listed.locator('td', { hasText: '1 of 1 devices' }).waitFor();
    await listed.locator('td', { hasText: 'password' }).waitFor();
    await listed.locator('.badge', { hasText: 'Used up' }).waitFor();
    await pageA.screenshot({ path: path.join(SHOTS, 'peerbox-ui-links.png') });
    await listed.getByRole('button', { name: 'Revoke' }).click();
    await pageA.locator('dialog[open]').getByRole('button', { name: 'Revoke' }).click();
    await listed.locator('.badge', { hasText: 'Revoked' }).waitFor();
    assert.match(cli(homeA(), 'links'), /revoked/);
  });

  test('A requests files; B sends them from its Send page; one over the limit is refused', async () => {
    await pageA.locator('#nav .nav-item', { hasText: 'Inbox' }).click();
    await pageA.locator('#content [role=option]', { hasText: 'private.txt' }).waitFor();
    await pageA.locator('#btn-request').click();
    const dlg = pageA.locator('dialog[open]');
    await dlg.getByLabel('Size limit (MiB)').fill('1');
    await dlg.getByRole('button', { name: 'Create link' }).click();
    await pageA.waitForFunction(() => document.querySelector('dialog[open] input.link-out')?.value.startsWith('peerbox://'));
    const link = await dlg.locator('input.link-out').inputValue();
    await pageA.keyboard.press('Escape');

    const open = await openLink(pageB, link);
    await open.getByLabel('What to do').locator('option', { hasText: 'Send files into it' }).waitFor({ state: 'attached' });
    assert.equal(await open.getByLabel('Where on this device').isVisible(), false, 'no destination for sending');
    await open.getByRole('button', { name: 'Open', exact: true }).click();
    await pageB.locator('#content h1', { hasText: 'Send files to “Inbox”' }).waitFor();
    await pageB.locator('#send-zone', { hasText: '1.0 MiB more can be sent' }).waitFor();
    assert.equal(await pageB.locator('#content', { hasText: 'private.txt' }).count(), 0, 'the sender sees nothing of the folder');

    const report = path.join(tmp, '보고서.pdf');
    fs.writeFileSync(report, Buffer.alloc(300 * 1024, 7));
    let chooser = pageB.waitForEvent('filechooser');
    await pageB.locator('#send-zone').click();
    await (await chooser).setFiles(report);
    const item = pageB.locator('#content .send-item', { hasText: '보고서.pdf' });
    await item.locator('.muted', { hasText: 'Sent · stored as' }).waitFor({ timeout: 30000 });
    const stored = (await item.locator('.muted').textContent()).replace(/^.*stored as /, '');
    assert.deepEqual(fs.readFileSync(path.join(inbox, stored)), fs.readFileSync(report));
    await pageB.locator('#send-zone', { hasText: '724 KiB more can be sent' }).waitFor();
    await pageB.screenshot({ path: path.join(SHOTS, 'peerbox-ui-send.png') });

    const big = path.join(tmp, 'big.iso');
    fs.writeFileSync(big, Buffer.alloc(900 * 1024, 1));
    const before = fs.readdirSync(inbox, { recursive: true }).sort();
    const errorsBefore = browser.errors.length;
    chooser = pageB.waitForEvent('filechooser');
    await pageB.locator('#send-zone').click();
    await (await chooser).setFiles(big);
    await pageB.locator('#content .send-item.failed', { hasText: 'big.iso' }).locator('.note-error', { hasText: 'larger than this link still takes' }).waitFor({ timeout: 30000 });
    assert.deepEqual(fs.readdirSync(inbox, { recursive: true }).sort(), before, 'nothing of it arrived');
    // The refusal is an HTTP 400 the browser logs; it is the one expected error.
    const logged = browser.errors.splice(errorsBefore);
    assert.ok(logged.length && logged.every((e) => e.includes('status of 400')), `only the refusal was logged: ${logged}`);

    await pageA.locator('#nav .nav-item', { hasText: 'Links' }).click();
    await pageA.locator('#content tr.link-row', { hasText: 'Inbox' }).locator('td', { hasText: '300 KiB of 1.0 MiB received' }).waitFor();
  });

  test('Versions… lists what sync replaced and restores one everywhere', async () => {
    for (const v of ['v2\n', 'v3\n']) {
      fs.writeFileSync(path.join(team, 'plan.txt'), v);
      await until(() => fs.existsSync(path.join(teamB, 'plan.txt')) && fs.readFileSync(path.join(teamB, 'plan.txt'), 'utf8') === v, `B got ${v}`);
    }
    await pageB.locator('#nav .nav-item', { hasText: 'Team' }).click();
    await pageB.locator('#content [role=option]', { hasText: 'plan.txt' }).click({ button: 'right' });
    await pageB.locator('#menu [role=menuitem]', { hasText: 'Versions…' }).click();
    const dlg = pageB.locator('dialog[open]');
    await dlg.locator('tbody tr').nth(1).waitFor();
    assert.equal(await dlg.locator('tbody tr').count(), 2);
    await dlg.locator('tbody tr[data-n="2"]').getByRole('button', { name: 'Restore' }).click();
    await pageB.locator('#toasts', { hasText: 'plan.txt is restored' }).waitFor().catch(async (e) => {
      await pageB.screenshot({ path: path.join(SHOTS, 'peerbox-ui-versions-failed.png') });
      throw new Error(`${e.message}; dialog: ${await pageB.locator('dialog').textContent()}`);
    });
    assert.equal(fs.readFileSync(path.join(teamB, 'plan.txt'), 'utf8'), 'v1\n');
    await until(() => fs.readFileSync(path.join(team, 'plan.txt'), 'utf8') === 'v1\n', 'the restore reached A');
  });

  test('bandwidth and schedule settings are saved; a bad value is refused and changes nothing', async () => {
    await pageB.locator('#nav .nav-item', { hasText: 'Settings' }).click();
    await pageB.locator('#bw-upload').fill('512');
    await pageB.locator('#bw-lan').check();
    await pageB.locator('form.settings-bandwidth').getByRole('button', { name: 'Save' }).click();
    await pageB.locator('#toasts', { hasText: 'Settings saved' }).waitFor();
    let s = JSON.parse(cli(homeB(), 'settings', '--json'));
    assert.equal(s.bandwidth.upload, 512 * 1024);
    assert.equal(s.bandwidth.limit_lan, true);
    const errorsBefore = browser.errors.length;
    await pageB.locator('#bw-download').fill('1');
    await pageB.locator('form.settings-bandwidth').getByRole('button', { name: 'Save' }).click();
    await pageB.locator('form.settings-bandwidth + .hint + .form-error', { hasText: 'at least' }).waitFor();
    s = JSON.parse(cli(homeB(), 'settings', '--json'));
    assert.equal(s.bandwidth.download, 0, 'the refused value changed nothing');
    const logged = browser.errors.splice(errorsBefore);
    assert.ok(logged.length && logged.every((e) => e.includes('status of 400')), `only the refusal was logged: ${logged}`);
    assert.equal(s.bandwidth.upload, 512 * 1024);
    // Back to no limit for what follows.
    cli(homeB(), 'settings', '--upload-limit', '0', '--limit-lan', 'false');

    // A window that is shut now: an hour from now to two hours from now.
    const at = (d) => {
      const m = new Date(Date.now() + d * 60000);
      return `${String(m.getHours()).padStart(2, '0')}:${String(m.getMinutes()).padStart(2, '0')}`;
    };
    await pageB.locator('#nav .nav-item', { hasText: 'Transfers' }).click();
    await pageB.locator('#nav .nav-item', { hasText: 'Settings' }).click();
    await pageB.locator('#sched-on').check();
    await pageB.locator('#sched-from').fill(at(60));
    await pageB.locator('#sched-to').fill(at(120));
    await pageB.locator('#sched-min').fill('1');
    await pageB.locator('form.settings-schedule').getByRole('button', { name: 'Save' }).click();
    await pageB.locator('#toasts', { hasText: 'Settings saved' }).last().waitFor();
    s = JSON.parse(cli(homeB(), 'settings', '--json'));
    assert.equal(s.schedule, `${at(60)}-${at(120)}`);
    assert.equal(s.schedule_min_bytes, 1024 * 1024);
  });

  test('a large download waits for its window; Start now runs it', async () => {
    const movie = path.join(tmp, 'movie.mkv');
    fs.writeFileSync(movie, Buffer.alloc(2 * 1024 * 1024, 9));
    const link = cli(homeA(), 'share', movie).trim();
    const dest = path.join(tmp, 'b-movies');
    const dlg = await openLink(pageB, link);
    await dlg.getByLabel('Where on this device').fill(dest);
    await dlg.getByRole('button', { name: 'Open', exact: true }).click();
    const row = pageB.locator('#content li.transfer', { hasText: 'movie.mkv' });
    await row.locator('.muted', { hasText: 'Waits for the download window at' }).waitFor({ timeout: 30000 });
    await pageB.locator('#content .bandwidth', { hasText: 'Down' }).waitFor();
    assert.equal(fs.existsSync(path.join(dest, 'movie.mkv')), false);
    await pageB.screenshot({ path: path.join(SHOTS, 'peerbox-ui-scheduled.png') });
    await row.getByRole('button', { name: 'Start now' }).click();
    await row.locator('.muted', { hasText: 'Done' }).waitFor({ timeout: 30000 });
    assert.equal(fs.statSync(path.join(dest, 'movie.mkv')).size, 2 * 1024 * 1024);
  });

  test('no dialog fired and no script error happened', () => {
    assert.deepEqual(browser.dialogs, []);
    assert.deepEqual(browser.errors, []);
  });
});
