// Helpers shared by the browser tests: start a real `peerbox daemon` on a temp home,
// run the CLI against it, and open Debian's Chromium through playwright-core.

import { spawn, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const BIN = process.env.PEERBOX_BIN || path.resolve(here, '../../target/debug/peerbox');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const SHOTS = process.env.PEERBOX_UI_SHOTS || '/tmp';
export const UI_DIR = path.resolve(here, '../../ui');
export const WAIT = 15000;
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run'];

/**
 * Start `peerbox --home HOME daemon` on loopback and wait (with a timeout) for the
 * `api URL` and `ui URL` lines. Returns {api, ui, stop()}.
 */
export async function startDaemon(home) {
  const proc = spawn(BIN, ['--home', home, 'daemon', '--no-mdns', '--listen', '/ip4/127.0.0.1/tcp/0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => {
    err = (err + d).slice(-4000);
  });
  const found = await new Promise((resolve, reject) => {
    let buf = '';
    const lines = {};
    const timer = setTimeout(() => done(new Error(`daemon printed no api/ui lines within ${WAIT} ms; stdout: ${JSON.stringify(buf)}; stderr: ${err}`)), WAIT);
    function done(e) {
      clearTimeout(timer);
      proc.stdout.off('data', onData);
      proc.off('exit', onExit);
      if (e) {
        proc.kill('SIGKILL');
        reject(e);
      } else resolve(lines);
    }
    function onData(chunk) {
      buf += chunk;
      for (const line of buf.split('\n')) {
        const m = /^(api|ui) (\S+)/.exec(line.trim());
        if (m) lines[m[1]] = m[2];
      }
      if (lines.api && lines.ui) done();
    }
    function onExit(code) {
      done(new Error(`daemon exited (${code}) before printing its addresses; stdout: ${JSON.stringify(buf)}; stderr: ${err}`));
    }
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', onData);
    proc.on('exit', onExit);
  });
  return {
    api: found.api,
    ui: found.ui,
    stderr: () => err,
    /** SIGTERM, then wait for the exit (SIGKILL only if it hangs). */
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = once(proc, 'exit');
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), WAIT);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Run the CLI against the daemon of `home`; returns its stdout. */
export function cli(home, ...args) {
  return execFileSync(BIN, ['--home', home, ...args], { stdio: ['ignore', 'pipe', 'pipe'], timeout: WAIT, encoding: 'utf8' });
}

/**
 * Chromium with a fresh profile in `profileDir`. Returns {context, page, dialogs,
 * errors}: dialogs that fired (and were dismissed) and page/console errors.
 */
export async function openBrowser(profileDir) {
  const context = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    locale: 'en-US',
    viewport: { width: 1360, height: 820 },
  });
  const page = context.pages()[0] || (await context.newPage());
  const dialogs = [];
  const errors = [];
  watch(page, dialogs, errors);
  return { context, page, dialogs, errors };
}

/** Dismiss and record every dialog of `page`, and record its script and console errors. */
export function watch(page, dialogs, errors) {
  page.setDefaultTimeout(WAIT);
  page.on('dialog', (d) => {
    dialogs.push(`${d.type()}: ${d.message()}`);
    d.dismiss().catch(() => {});
  });
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    // A <meta> CSP cannot carry frame-ancestors; Chromium says so. Everything else counts.
    if (m.type() === 'error' && !/frame-ancestors/.test(m.text())) errors.push(m.text());
  });
}
