// The desktop app (src-tauri) end to end through its real window, driven over
// WebDriver classic (plain HTTP): tauri-driver in front of WebKitGTK's
// WebKitWebDriver, which starts the app under Xvfb.
//
// Before the app starts, a real `peerbox daemon` on a temp home adds a folder holding
// `보고서.txt` and is stopped; the app then runs its in-process node on that home.
// The test clicks the folder in the sidebar, finds the file, makes a directory with
// the "New folder" button and dialog, and checks the directory exists on disk and
// that the listing shows it at once; takes a
// screenshot (saved next to the browser tests' ones) and checks it is not blank.
// Closing the session must end the app, stopping tauri-driver must end the rest:
// nothing may be left in the process group. Every wait polls a condition against a
// deadline; nothing sleeps to synchronise.
//
// Binaries: $PEERBOX_BIN (CLI) and $PEERBOX_DESKTOP_BIN (app), default
// ../../target/debug/{peerbox,peerbox-desktop}; tauri-driver and WebKitWebDriver
// from PATH ($TAURI_DRIVER overrides the former). A missing one fails the test.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const BIN = process.env.PEERBOX_BIN || path.resolve(here, '../../target/debug/peerbox');
const DESKTOP_BIN = process.env.PEERBOX_DESKTOP_BIN || path.resolve(here, '../../target/debug/peerbox-desktop');
const SHOTS = process.env.PEERBOX_UI_SHOTS || '/tmp';
/** Longest wait for any one thing (the app's first start included). */
const WAIT = 20000;
/** Polling interval of the waits. */
const POLL = 100;
const ELEMENT = 'element-6066-11e4-a52e-4f735466cecf';

const FOLDER = '팀 문서';
const FILE = '보고서.txt';
const NEW_DIR = '새 폴더 2026';

// ---------------------------------------------------------------- tools

/** The first executable called `name` on PATH, or null. */
function onPath(name) {
  for (const dir of (process.env.PATH || '').split(':')) {
    if (!dir) continue;
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return null;
}

function executable(p) {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

/** Every tool the test needs, or one error naming each missing one and where it comes from. */
function findTools() {
  const missing = [];
  const tauriDriver = process.env.TAURI_DRIVER || onPath('tauri-driver');
  if (!tauriDriver || !executable(tauriDriver)) {
    missing.push(
      process.env.TAURI_DRIVER
        ? `tauri-driver: $TAURI_DRIVER=${process.env.TAURI_DRIVER} is not an executable file`
        : 'tauri-driver: not on PATH (install it with peerbox_need_tauri_driver from scripts/deps.sh, as ./test does: cargo install --locked --version 2.1.0 tauri-driver)',
    );
  }
  if (!onPath('WebKitWebDriver')) missing.push('WebKitWebDriver: not on PATH (Debian package webkit2gtk-driver)');
  const xvfbRun = onPath('xvfb-run');
  if (!xvfbRun) missing.push('xvfb-run: not on PATH (Debian packages xvfb and xauth)');
  const dbusDaemon = onPath('dbus-daemon');
  if (!dbusDaemon) missing.push('dbus-daemon: not on PATH (Debian package dbus-daemon)');
  if (!executable(BIN)) missing.push(`peerbox CLI: no executable at ${BIN} (cargo build -p peerbox-cli, or set PEERBOX_BIN)`);
  if (!executable(DESKTOP_BIN)) missing.push(`desktop app: no executable at ${DESKTOP_BIN} (cargo build -p peerbox-desktop, or set PEERBOX_DESKTOP_BIN)`);
  if (missing.length) throw new Error(`cannot run the desktop WebDriver test; missing:\n  - ${missing.join('\n  - ')}`);
  return { tauriDriver, xvfbRun, dbusDaemon };
}

/** A TCP port free on loopback right now (the OS picks it). */
async function freePort() {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address();
  srv.close();
  await once(srv, 'close');
  return port;
}

/** Calls `probe` until it returns something truthy (errors count as not yet); throws after `ms`. */
async function waitFor(what, probe, ms = WAIT) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
      last = undefined;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `; last error: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, POLL));
  }
}

/** A child's output, the last `keep` characters of it. */
function collect(stream, keep = 6000) {
  const out = { text: '' };
  stream.setEncoding('utf8');
  stream.on('data', (d) => {
    out.text = (out.text + d).slice(-keep);
  });
  return out;
}

// ---------------------------------------------------------------- processes

/** Live (not zombie) processes of the process group `pgid`: [{pid, comm}]. */
function liveInGroup(pgid) {
  const out = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat;
    try {
      stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    // pid (comm) state ppid pgrp …; comm may hold spaces and parentheses.
    const close = stat.lastIndexOf(') ');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const [state, , pgrp] = stat.slice(close + 2).split(' ');
    if (Number(pgrp) === pgid && state !== 'Z') out.push({ pid: Number(name), comm });
  }
  return out;
}

const describeGroup = (procs) => procs.map((p) => `${p.pid} ${p.comm}`).join(', ');

function killGroup(pgid, signal = 'SIGKILL') {
  try {
    process.kill(-pgid, signal);
  } catch {
    // already gone
  }
}

/**
 * After a failure: SIGTERM to everything in the group but xvfb-run (the leader) and
 * Xvfb, so that xvfb-run sees its command end and stops Xvfb itself (removing the
 * display's lock file and its auth folder); SIGKILL whatever is left after 5 s.
 */
async function stopGroup(pgid) {
  for (const p of liveInGroup(pgid)) {
    if (p.pid === pgid || p.comm === 'Xvfb') continue;
    try {
      process.kill(p.pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  await waitFor('the process group to end', () => liveInGroup(pgid).length === 0, 5000).catch(() => killGroup(pgid));
}

/** Runs the CLI on `home`; returns its stdout. */
function cli(home, ...args) {
  return execFileSync(BIN, ['--home', home, ...args], { stdio: ['ignore', 'pipe', 'pipe'], timeout: WAIT, encoding: 'utf8' });
}

/**
 * Starts `peerbox daemon` on `home` (loopback, no mDNS), waits for its `api` line,
 * runs `during()`, then stops it with SIGTERM and checks it exits cleanly.
 */
async function withDaemon(home, during) {
  const proc = spawn(BIN, ['--home', home, 'daemon', '--no-mdns', '--listen', '/ip4/127.0.0.1/tcp/0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const err = collect(proc.stderr);
  const out = collect(proc.stdout);
  const exited = once(proc, 'exit');
  try {
    await waitFor('the daemon to print its api address', () => {
      if (proc.exitCode !== null) throw new Error(`the daemon exited (${proc.exitCode}); stderr: ${err.text}`);
      return /^api \S+/m.test(out.text);
    });
    await during();
  } finally {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), WAIT);
    const [code, signal] = await exited;
    clearTimeout(timer);
    assert.ok(code === 0 || signal === 'SIGTERM', `the daemon did not stop cleanly (exit ${code}, signal ${signal}); stderr: ${err.text}`);
  }
}

/**
 * A private session bus (the app's single-instance plugin uses it), in a process
 * group of its own with what it activates (the accessibility bus). `stop()` ends it
 * and checks that the group empties.
 */
async function startBus(dbusDaemon) {
  const proc = spawn(dbusDaemon, ['--session', '--nofork', '--nopidfile', '--print-address=1'], { stdio: ['ignore', 'pipe', 'ignore'], detached: true });
  const out = collect(proc.stdout);
  const address = await waitFor('dbus-daemon to print its address', () => {
    if (proc.exitCode !== null) throw new Error(`dbus-daemon exited (${proc.exitCode})`);
    const nl = out.text.indexOf('\n');
    return nl > 0 ? out.text.slice(0, nl).trim() : null;
  });
  return {
    address,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = once(proc, 'exit');
        proc.kill('SIGTERM');
        await exited;
      }
      await waitFor('the session bus and what it started to exit', () => liveInGroup(proc.pid).length === 0, 5000).catch((e) => {
        const left = describeGroup(liveInGroup(proc.pid));
        killGroup(proc.pid);
        throw new Error(`${e.message}; left: ${left}`);
      });
    },
  };
}

// ---------------------------------------------------------------- WebDriver

/** A minimal WebDriver classic client over fetch. */
class WebDriver {
  constructor(base) {
    this.base = base;
    this.session = null;
  }

  async cmd(method, route, body) {
    const url = `${this.base}${route.replace(':session', this.session)}`;
    const res = await fetch(url, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json; charset=utf-8' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(WAIT),
    });
    const text = await res.text();
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      throw new Error(`${method} ${route}: HTTP ${res.status}, not JSON: ${text.slice(0, 500)}`);
    }
    if (!res.ok) {
      const v = json.value || {};
      throw new Error(`${method} ${route}: HTTP ${res.status} ${v.error || ''}: ${v.message || text.slice(0, 500)}`);
    }
    return json.value;
  }

  async newSession(capabilities) {
    const v = await this.cmd('POST', '/session', { capabilities });
    this.session = v.sessionId;
    return v;
  }

  async deleteSession() {
    if (!this.session) return;
    await this.cmd('DELETE', '/session/:session');
    this.session = null;
  }

  /** Element references matching a CSS selector ([] when none). */
  async findAll(css) {
    const v = await this.cmd('POST', '/session/:session/elements', { using: 'css selector', value: css });
    return v.map((e) => e[ELEMENT]);
  }

  /**
   * The element's rendered text. Its innerText property: WebKitWebDriver's Get
   * Element Text answers "" for these buttons and rows (WebKitGTK 2.50, wry 0.57).
   */
  async text(el) {
    return String((await this.property(el, 'innerText')) ?? '');
  }

  enabled(el) {
    return this.cmd('GET', `/session/:session/element/${el}/enabled`);
  }

  displayed(el) {
    return this.cmd('GET', `/session/:session/element/${el}/displayed`);
  }

  click(el) {
    return this.cmd('POST', `/session/:session/element/${el}/click`, {});
  }

  type(el, text) {
    return this.cmd('POST', `/session/:session/element/${el}/value`, { text });
  }

  property(el, name) {
    return this.cmd('GET', `/session/:session/element/${el}/property/${name}`);
  }

  /**
   * The window as a PNG (Buffer), once the page has drawn a frame: without that
   * wait, WebKitGTK under Xvfb often hands back an older frame (seen: the page
   * before its script ran, though the DOM was long complete).
   */
  async screenshot() {
    await this.cmd('POST', '/session/:session/execute/async', {
      script: 'const done = arguments[arguments.length - 1]; requestAnimationFrame(() => requestAnimationFrame(() => done(true)));',
      args: [],
    });
    return Buffer.from(await this.cmd('GET', '/session/:session/screenshot'), 'base64');
  }

  /** The first element matching `css` whose text contains `text`, or null. */
  async findWithText(css, text) {
    const seen = [];
    for (const el of await this.findAll(css)) {
      const t = await this.text(el);
      if (t.includes(text)) return el;
      seen.push(t);
    }
    this.seen = `${css}: ${JSON.stringify(seen)}`;
    return null;
  }

  /** Waits for an element matching `css` with `text` in it; on timeout, says what there was. */
  async waitText(css, text, ms = WAIT) {
    this.seen = '';
    try {
      return await waitFor(`${JSON.stringify(text)} in ${css}`, () => this.findWithText(css, text), ms);
    } catch (e) {
      throw new Error(`${e.message}; seen ${this.seen}`);
    }
  }
}

// ---------------------------------------------------------------- PNG

/** Decodes an 8-bit, non-interlaced RGB or RGBA PNG: {width, height, channels, pixels}. */
function decodePng(buf) {
  assert.equal(buf.subarray(0, 8).toString('hex'), '89504e470d0a1a0a', 'the screenshot is not a PNG');
  let pos = 8;
  let ihdr;
  const idat = [];
  while (pos < buf.length) {
    const len = buf.readUInt32BE(pos);
    const type = buf.toString('latin1', pos + 4, pos + 8);
    const data = buf.subarray(pos + 8, pos + 8 + len);
    if (type === 'IHDR') ihdr = data;
    else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
    pos += 12 + len;
  }
  const width = ihdr.readUInt32BE(0);
  const height = ihdr.readUInt32BE(4);
  const [depth, colorType, , , interlace] = ihdr.subarray(8);
  assert.ok(depth === 8 && (colorType === 2 || colorType === 6) && interlace === 0, `unexpected PNG format: depth ${depth}, color type ${colorType}, interlace ${interlace}`);
  const channels = colorType === 6 ? 4 : 3;
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const pixels = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const row = y * stride;
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? pixels[row + x - channels] : 0;
      const b = y ? pixels[row - stride + x] : 0;
      const c = y && x >= channels ? pixels[row - stride + x - channels] : 0;
      let pred = 0;
      if (filter === 1) pred = a;
      else if (filter === 2) pred = b;
      else if (filter === 3) pred = (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      pixels[row + x] = (line[x] + pred) & 0xff;
    }
  }
  return { width, height, channels, pixels };
}

/** Distinct colours and the share of the commonest one. */
function colourStats({ width, height, channels, pixels }) {
  const counts = new Map();
  for (let i = 0; i < width * height; i++) {
    const o = i * channels;
    const key = (pixels[o] << 16) | (pixels[o + 1] << 8) | pixels[o + 2];
    counts.set(key, (counts.get(key) || 0) + 1);
  }
  return { colours: counts.size, commonest: Math.max(...counts.values()) / (width * height) };
}

// ---------------------------------------------------------------- the test

describe('the desktop window over WebDriver', { timeout: 120000 }, () => {
  let tools;
  let tmp;
  let home;
  let folder;
  let bus;
  let driver;
  let driverOut;
  let driverErr;
  let pgid;
  let wd;

  /** tauri-driver's and the app's output, for failure messages. */
  const logs = () => `\n--- tauri-driver/app stdout:\n${driverOut?.text || ''}\n--- stderr:\n${driverErr?.text || ''}`;

  before(async () => {
    tools = findTools();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'peerbox-desktop-wd-'));
    home = path.join(tmp, 'home');
    folder = path.join(tmp, FOLDER);
    fs.mkdirSync(folder, { recursive: true });
    fs.writeFileSync(path.join(folder, FILE), '한국어 보고서\n');

    // `folder add` talks to a running daemon: start one, add, stop it.
    await withDaemon(home, async () => {
      const id = cli(home, 'folder', 'add', folder).trim();
      assert.ok(id, 'folder add printed no id');
    });

    bus = await startBus(tools.dbusDaemon);
  });

  after(async () => {
    // Whatever happened, leave nothing running.
    if (wd?.session) await wd.deleteSession().catch(() => {});
    if (pgid && liveInGroup(pgid).length) await stopGroup(pgid);
    if (driver && driver.exitCode === null && driver.signalCode === null) await once(driver, 'exit');
    await bus?.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('a folder is opened, its Korean file listed and a new directory made on disk', async (t) => {
    const xdg = (n) => path.join(tmp, n);
    for (const n of ['xdg-data', 'xdg-config', 'xdg-cache', 'xdg-runtime']) fs.mkdirSync(xdg(n), { recursive: true, mode: 0o700 });
    const env = {
      ...process.env,
      PEERBOX_HOME: home,
      XDG_DATA_HOME: xdg('xdg-data'),
      XDG_CONFIG_HOME: xdg('xdg-config'),
      XDG_CACHE_HOME: xdg('xdg-cache'),
      XDG_RUNTIME_DIR: xdg('xdg-runtime'),
      DBUS_SESSION_BUS_ADDRESS: bus.address,
    };
    delete env.PEERBOX_DESKTOP_SELFTEST;
    delete env.PEERBOX_DESKTOP_SELFTEST_LINK;

    const port = await freePort();
    let nativePort = await freePort();
    while (nativePort === port) nativePort = await freePort();
    const started = Date.now();
    // A process group (and session) of its own: xvfb-run, Xvfb, tauri-driver,
    // WebKitWebDriver, the app and its WebKit helpers.
    driver = spawn(tools.xvfbRun, ['-a', '-s', '-screen 0 1280x800x24', tools.tauriDriver, '--port', String(port), '--native-port', String(nativePort)], {
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    pgid = driver.pid;
    driverOut = collect(driver.stdout);
    driverErr = collect(driver.stderr);

    wd = new WebDriver(`http://127.0.0.1:${port}`);
    await waitFor('tauri-driver and WebKitWebDriver to answer /status', async () => {
      if (driver.exitCode !== null) throw new Error(`xvfb-run/tauri-driver exited (${driver.exitCode})`);
      if (/can not listen/.test(driverOut.text)) throw new Error(`tauri-driver cannot listen on ${port}`);
      const status = await wd.cmd('GET', '/status');
      return status && status.ready !== false;
    }).catch((e) => {
      throw new Error(`${e.message}${logs()}`);
    });

    try {
      await wd.newSession({ alwaysMatch: { 'tauri:options': { application: DESKTOP_BIN } } });
      const sessionAt = Date.now();

      // The sidebar lists the folder once the in-process node is up and the UI has its status.
      await wd.waitText('#nav .nav-item', FOLDER);
      // Status updates redraw the sidebar: a click on an element just replaced fails
      // (stale element) and is tried again on the new one.
      await waitFor(`a click on ${FOLDER} in the sidebar`, async () => {
        const item = await wd.findWithText('#nav .nav-item', FOLDER);
        if (item) await wd.click(item);
        return Boolean(item);
      });
      await wd.waitText('#crumbs [aria-current=location]', FOLDER);
      await wd.waitText('#content [role=option] .name', FILE);

      // New folder: the button, the dialog's name field, its submit button.
      const mkdir = (await wd.findAll('#btn-mkdir'))[0];
      assert.ok(mkdir, 'no #btn-mkdir');
      await waitFor('New folder to be enabled', () => wd.enabled(mkdir));
      await wd.click(mkdir);
      const input = await waitFor('the New folder dialog', async () => {
        const [el] = await wd.findAll('#dialog[open] form input[type=text]');
        return el && (await wd.displayed(el)) ? el : null;
      });
      await wd.type(input, NEW_DIR);
      assert.equal(await wd.property(input, 'value'), NEW_DIR, 'the name field holds what was typed');
      const [submit] = await wd.findAll('#dialog[open] form button[type=submit]');
      assert.ok(submit, 'no submit button in the dialog');
      await wd.click(submit);

      const made = path.join(folder, NEW_DIR);
      await waitFor(`${made} to exist on disk`, () => fs.existsSync(made) && fs.statSync(made).isDirectory());
      await waitFor('the dialog to close', async () => (await wd.findAll('#dialog[open]')).length === 0);
      // The edit answers once the index holds it, so the reload right after shows it.
      await wd.waitText('#content [role=option] .name', NEW_DIR, 5000);
      const visible = fs.readdirSync(folder).filter((n) => !n.startsWith('.')); // .peerbox: the node's own
      assert.deepEqual(visible.sort(), [NEW_DIR, FILE].sort(), 'the folder holds the file and the new directory, nothing else');

      const png = await wd.screenshot();
      fs.mkdirSync(SHOTS, { recursive: true });
      const shot = path.join(SHOTS, 'peerbox-desktop.png');
      fs.writeFileSync(shot, png);
      const img = decodePng(png);
      const { colours, commonest } = colourStats(img);
      assert.ok(img.width >= 700 && img.height >= 450, `screenshot ${shot} is ${img.width}x${img.height}`);
      assert.ok(colours >= 32 && commonest < 0.97, `screenshot ${shot} looks blank: ${colours} colours, the commonest covers ${(commonest * 100).toFixed(1)}%`);

      // Closing the session ends the app (no tray host under Xvfb: closing quits).
      await wd.deleteSession();
      const app = path.basename(DESKTOP_BIN).slice(0, 15);
      await waitFor('the app and its WebKit processes to exit after the session closed', () => {
        const left = liveInGroup(pgid).filter((p) => p.comm === app || (p.comm.startsWith('WebKit') && p.comm !== 'WebKitWebDriver'));
        return left.length === 0;
      }).catch((e) => {
        throw new Error(`${e.message}: ${describeGroup(liveInGroup(pgid))}`);
      });

      // SIGTERM to tauri-driver: it kills WebKitWebDriver and exits; xvfb-run then stops Xvfb.
      const td = liveInGroup(pgid).find((p) => p.comm === 'tauri-driver');
      assert.ok(td, `tauri-driver is not running: ${describeGroup(liveInGroup(pgid))}`);
      const exited = driver.exitCode === null ? once(driver, 'exit') : Promise.resolve([driver.exitCode]);
      process.kill(td.pid, 'SIGTERM');
      let timer;
      const [code] = await Promise.race([exited, new Promise((r) => (timer = setTimeout(() => r(['timeout']), WAIT)))]);
      clearTimeout(timer);
      assert.equal(code, 0, `xvfb-run did not exit cleanly after tauri-driver was stopped (${code})`);
      await waitFor('the process group to be empty', () => liveInGroup(pgid).length === 0, 5000).catch((e) => {
        throw new Error(`${e.message}; left: ${describeGroup(liveInGroup(pgid))}`);
      });
      console.log(`desktop: session ${((Date.now() - sessionAt) / 1000).toFixed(1)} s, all ${((Date.now() - started) / 1000).toFixed(1)} s; screenshot ${shot} (${png.length} bytes, ${colours} colours)`);
    } catch (e) {
      e.message += logs();
      throw e;
    } finally {
      if (liveInGroup(pgid).length) await stopGroup(pgid);
    }
  });
});
