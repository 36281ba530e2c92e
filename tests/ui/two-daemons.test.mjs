// Real daemons on loopback, each driven through its own UI: A makes a folder link
// in its drive, B opens the link from its empty locker "on demand", sees A's files
// as remote-only, keeps one offline, and restores from the trash a file that A
// deleted; C joins through a link that needs approval, and A approves it.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BIN, SHOTS, cli, openBrowser, startDaemon, watch } from './lib.mjs';

let tmp;
let a;
let b;
let c;
let browser;
let pageA;
let pageB;
let folderA;
let folderB;
let link;

before(async () => {
  assert.ok(fs.existsSync(BIN), `peerbox binary not found at ${BIN} (set PEERBOX_BIN)`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'peerbox-ui2-'));
  folderA = path.join(tmp, '공유 폴더');
  folderB = path.join(tmp, 'b-copy');
  fs.mkdirSync(path.join(folderA, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(folderA, 'hello.txt'), 'hello from A\n');
  fs.writeFileSync(path.join(folderA, '메모.txt'), '메모\n');
  fs.writeFileSync(path.join(folderA, 'sub', 'blob.bin'), Buffer.alloc(200 * 1024, 3));
  for (const h of ['a', 'b', 'c']) fs.mkdirSync(path.join(tmp, h));
  a = await startDaemon(path.join(tmp, 'a'));
  b = await startDaemon(path.join(tmp, 'b'));
  cli(path.join(tmp, 'a'), 'folder', 'add', folderA);
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
  await c?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('two daemons through their UIs', () => {
  test("B's empty locker says so and offers to open a link", async () => {
    await pageB.locator('#content .placeholder h2', { hasText: 'Your locker is empty' }).waitFor();
    await pageB.locator('#content .placeholder button', { hasText: 'Open link' }).waitFor();
  });

  test('A makes a read-write folder link without approval', async () => {
    await pageA.locator('#nav .nav-item', { hasText: '공유 폴더' }).click();
    await pageA.locator('#content [role=option]', { hasText: 'hello.txt' }).waitFor();
    await pageA.locator('#btn-link').click();
    const dlg = pageA.locator('dialog[open]');
    await dlg.getByLabel('Read-write').check();
    await dlg.getByLabel('Require my approval before someone joins').uncheck();
    await dlg.getByRole('button', { name: 'Create link' }).click();
    await pageA.waitForFunction(() => document.querySelector('dialog[open] input.link-out')?.value.startsWith('peerbox://'));
    link = await dlg.locator('input.link-out').inputValue();
    await pageA.keyboard.press('Escape');
  });

  test('B opens the link on demand and sees remote-only files', async () => {
    assert.ok(link, 'no link from the previous step');
    await pageB.locator('#btn-open').click();
    const dlg = pageB.locator('dialog[open]');
    await dlg.getByLabel('peerbox:// link').fill(link);
    await dlg.getByLabel('What to do').selectOption('on-demand');
    await dlg.getByLabel('Where on this device').fill(folderB);
    await dlg.getByRole('button', { name: 'Open', exact: true }).click();
    await pageB.locator('dialog[open]').waitFor({ state: 'detached' });
    await pageB.locator('#crumbs [aria-current=location]', { hasText: '공유 폴더' }).waitFor();
    const row = pageB.locator('#content [role=option]', { hasText: 'hello.txt' });
    await row.locator('.badge', { hasText: 'Remote only' }).waitFor();
    assert.equal(fs.existsSync(path.join(folderB, 'hello.txt')), false);
    await pageB.screenshot({ path: path.join(SHOTS, 'peerbox-ui-on-demand.png') });
  });

  test('B keeps a remote file offline from the right-click menu', async () => {
    const row = pageB.locator('#content [role=option]', { hasText: 'hello.txt' });
    await row.click({ button: 'right' });
    await pageB.locator('#menu [role=menuitem]', { hasText: 'Download / Keep offline' }).click();
    await row.locator('.badge', { hasText: 'Local' }).waitFor({ timeout: 30000 });
    assert.equal(fs.readFileSync(path.join(folderB, 'hello.txt'), 'utf8'), 'hello from A\n');
  });

  test('a file A deletes goes to B\'s trash, and Restore brings it back', async () => {
    fs.rmSync(path.join(folderA, 'hello.txt'));
    await pageB.locator('#content [role=option]', { hasText: 'hello.txt' }).waitFor({ state: 'detached', timeout: 30000 });
    await pageB.locator('#nav .nav-item', { hasText: 'Trash' }).click();
    // The trash view reloads whenever the folder's status changes.
    const item = pageB.locator('#content table tr', { hasText: 'hello.txt' });
    await item.getByRole('button', { name: 'Restore' }).waitFor({ timeout: 30000 });
    assert.match(await item.locator('td').nth(2).textContent(), /20\d\d/, 'deletion time shown');
    await item.getByRole('button', { name: 'Restore' }).click();
    await pageB.locator('#toasts', { hasText: 'Restored hello.txt' }).waitFor();
    assert.equal(fs.readFileSync(path.join(folderB, 'hello.txt'), 'utf8'), 'hello from A\n');
  });

  test('a file dropped on A\'s window is uploaded into the folder and reaches B', async () => {
    await pageA.locator('#nav .nav-item', { hasText: '공유 폴더' }).click();
    await pageA.locator('#content [role=option]', { hasText: '메모.txt' }).waitFor();
    await pageA.evaluate(() => {
      const dt = new DataTransfer();
      dt.items.add(new File(['dropped on A\n'], '올림 파일.txt', { type: 'text/plain' }));
      document.dispatchEvent(new DragEvent('dragenter', { dataTransfer: dt, bubbles: true, cancelable: true }));
      document.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    });
    await pageA.locator('#toasts', { hasText: '올림 파일.txt uploaded' }).waitFor();
    await pageA.locator('#content [role=option]', { hasText: '올림 파일.txt' }).waitFor();
    assert.equal(fs.readFileSync(path.join(folderA, '올림 파일.txt'), 'utf8'), 'dropped on A\n');
    await pageB.locator('#nav .nav-item', { hasText: '공유 폴더' }).click();
    await pageB.locator('#content [role=option]', { hasText: '올림 파일.txt' }).waitFor({ timeout: 30000 });
  });

  test('A renames and deletes from the menu; B follows', async () => {
    const row = pageA.locator('#content [role=option]', { hasText: '메모.txt' });
    await row.click({ button: 'right' });
    await pageA.locator('#menu [role=menuitem]', { hasText: 'Rename' }).click();
    const dlg = pageA.locator('dialog[open]');
    await dlg.getByLabel('Name').fill('메모 2.txt');
    await dlg.getByRole('button', { name: 'Rename' }).click();
    await pageA.locator('#content [role=option]', { hasText: '메모 2.txt' }).waitFor();
    assert.ok(fs.existsSync(path.join(folderA, '메모 2.txt')));
    await pageB.locator('#content [role=option]', { hasText: '메모 2.txt' }).waitFor({ timeout: 30000 });

    await pageA.locator('#content [role=option]', { hasText: '메모 2.txt' }).click({ button: 'right' });
    await pageA.locator('#menu [role=menuitem]', { hasText: 'Delete' }).click();
    await pageA.locator('dialog[open]').getByRole('button', { name: 'Delete' }).click();
    await pageA.locator('#content [role=option]', { hasText: '메모 2.txt' }).waitFor({ state: 'detached' });
    assert.equal(fs.existsSync(path.join(folderA, '메모 2.txt')), false);
    await pageB.locator('#content [role=option]', { hasText: '메모 2.txt' }).waitFor({ state: 'detached', timeout: 30000 });
  });

  test('a conflict shows as such and is settled from the menu', async () => {
    fs.writeFileSync(path.join(folderA, 'plan.txt'), 'mine\n');
    fs.writeFileSync(path.join(folderA, 'plan.sync-conflict-20261125-101010-abcd.txt'), 'theirs\n');
    const copy = pageA.locator('#content [role=option]', { hasText: 'plan.sync-conflict' });
    await copy.locator('.badge', { hasText: 'Conflict' }).waitFor({ timeout: 30000 });
    await copy.click({ button: 'right' });
    await pageA.locator('#menu [role=menuitem]', { hasText: 'Keep this version' }).click();
    await pageA.locator('#toasts', { hasText: 'Conflict resolved' }).waitFor();
    await copy.waitFor({ state: 'detached' });
    assert.equal(fs.readFileSync(path.join(folderA, 'plan.txt'), 'utf8'), 'theirs\n');
  });

  test('A shares a file by link; B downloads it once through its transfer queue', async () => {
    await pageA.locator('#content [role=option]', { hasText: 'plan.txt' }).first().click({ button: 'right' });
    await pageA.locator('#menu [role=menuitem]', { hasText: 'Share link' }).click();
    let dlg = pageA.locator('dialog[open]');
    await dlg.getByRole('button', { name: 'Create link' }).click();
    await pageA.waitForFunction(() => document.querySelector('dialog[open] input.link-out')?.value.startsWith('peerbox://'));
    const fileLink = await dlg.locator('input.link-out').inputValue();
    await pageA.keyboard.press('Escape');

    const dest = path.join(tmp, 'b-downloads');
    await pageB.locator('#btn-open').click();
    dlg = pageB.locator('dialog[open]');
    await dlg.getByLabel('peerbox:// link').fill(fileLink);
    await dlg.getByLabel('What to do').selectOption('download');
    await dlg.getByLabel('Where on this device').fill(dest);
    await dlg.getByRole('button', { name: 'Open', exact: true }).click();
    const row = pageB.locator('#content li.transfer', { hasText: 'plan.txt' });
    await row.locator('.muted', { hasText: 'Done' }).waitFor({ timeout: 30000 });
    await pageB.screenshot({ path: path.join(SHOTS, 'peerbox-ui-transfers.png') });
    assert.equal(fs.readFileSync(path.join(dest, 'plan.txt'), 'utf8'), 'theirs\n');
    await row.getByRole('button', { name: 'Clear' }).click();
    await row.waitFor({ state: 'detached' });
  });

  test('C asks to join through a link that needs approval; A approves in its Peers view', async () => {
    c = await startDaemon(path.join(tmp, 'c'));
    const folderC = path.join(tmp, 'c-copy');
    await pageA.locator('#nav .nav-item', { hasText: '공유 폴더' }).click();
    await pageA.locator('#btn-link').click();
    const dlg = pageA.locator('dialog[open]');
    assert.ok(await dlg.getByLabel('Require my approval before someone joins').isChecked(), 'approval is the default');
    await dlg.getByRole('button', { name: 'Create link' }).click();
    await pageA.waitForFunction(() => document.querySelector('dialog[open] input.link-out')?.value.startsWith('peerbox://'));
    const approveLink = await dlg.locator('input.link-out').inputValue();
    await pageA.keyboard.press('Escape');

    const pageC = await browser.context.newPage();
    watch(pageC, browser.dialogs, browser.errors);
    await pageC.goto(c.ui);
    await pageC.locator('#content .placeholder button', { hasText: 'Open link' }).click();
    const join = pageC.locator('dialog[open]');
    await join.getByLabel('peerbox:// link').fill(approveLink);
    await join.getByLabel('What to do').selectOption('receive-only');
    await join.getByLabel('Where on this device').fill(folderC);
    await join.getByRole('button', { name: 'Open', exact: true }).click();
    await pageC.locator('dialog[open]').waitFor({ state: 'detached' });

    await pageA.locator('#nav .nav-item', { hasText: 'Join requests' }).click();
    const req = pageA.locator('#content .request');
    await req.waitFor();
    await pageA.screenshot({ path: path.join(SHOTS, 'peerbox-ui-requests.png') });
    await req.getByRole('button', { name: 'Approve' }).click();
    await req.waitFor({ state: 'detached' });
    // Approved: C's copy fills with A's files.
    await pageC.locator('#content [role=option]', { hasText: '올림 파일.txt' }).locator('.badge', { hasText: 'Local' }).waitFor({ timeout: 30000 });
    assert.equal(fs.readFileSync(path.join(folderC, '올림 파일.txt'), 'utf8'), 'dropped on A\n');
  });

  test('no dialog fired and no script error happened', () => {
    assert.deepEqual(browser.dialogs, []);
    assert.deepEqual(browser.errors, []);
  });
});
