// tauriTransport() from ui/api.js against a fake of Tauri's page-side IPC
// (__TAURI_INTERNALS__ and the event plugin), in Node: listen / unlisten, calls
// waiting for subscriptions, and error mapping. Run by tests/api_js.rs.
//
// The function is taken out of api.js by its text, so the rest of the module (which
// expects a browser) is not loaded.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

const source = readFileSync(new URL('../../ui/api.js', import.meta.url), 'utf8');
const start = source.indexOf('function tauriTransport(');
assert.ok(start >= 0, 'tauriTransport() is in ui/api.js');
const end = source.indexOf('\n}\n', start);
assert.ok(end > start, 'tauriTransport() ends with a closing brace at column 0');

class ApiError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

function fakeTauri({ failListen = false } = {}) {
  const callbacks = new Map();
  const listeners = new Map();
  const invoked = [];
  let nextCallback = 1;
  let nextEvent = 1;
  const internals = {
    transformCallback(fn) {
      const id = nextCallback++;
      callbacks.set(id, fn);
      return id;
    },
    unregisterCallback(id) {
      callbacks.delete(id);
    },
    async invoke(cmd, args) {
      invoked.push({ cmd, args });
      switch (cmd) {
        case 'plugin:event|listen':
          await new Promise((r) => setTimeout(r, 20)); // registration takes a while
          if (failListen) throw 'event.listen not allowed';
          assert.deepEqual(args.target, { kind: 'Any' });
          listeners.set(nextEvent, { event: args.event, handler: args.handler });
          return nextEvent++;
        case 'plugin:event|unlisten':
          listeners.delete(args.eventId);
          return null;
        case 'call':
          return { op: args.req.op, listening: listeners.size };
        case 'desktop_settings_set':
          return { ...args, tray_available: true };
        case 'open_path':
          throw { code: 'bad_request', message: '/etc/passwd is not inside a Peerbox folder' };
        default:
          throw `unknown command ${cmd}`;
      }
    },
  };
  const window = {
    __TAURI_EVENT_PLUGIN_INTERNALS__: {
      unregisterListener(event, eventId) {
        const l = listeners.get(eventId);
        if (l && l.event === event) callbacks.delete(l.handler);
      },
    },
  };
  const emit = (event, payload) => {
    for (const [id, l] of listeners) {
      if (l.event === event) callbacks.get(l.handler)?.({ event, id, payload });
    }
  };
  return { internals, window, emit, invoked, callbacks, listeners };
}

function load(fake) {
  const make = new Function('ApiError', 'window', 'console', `${source.slice(start, end + 2)}\nreturn tauriTransport;`);
  const warnings = [];
  const quiet = { warn: (...a) => warnings.push(a.join(' ')) };
  return { transport: make(ApiError, fake.window, quiet)(fake.internals), warnings };
}

// Events reach fn as their payload; a call made right after listen() waits for it.
{
  const fake = fakeTauri();
  const { transport } = load(fake);
  const got = [];
  const stop = transport.listen('open-link', (p) => got.push(p));
  const answer = await transport.call('status');
  assert.deepEqual(answer, { op: 'status', listening: 1 }, 'the call went out after the subscription');
  fake.emit('open-link', { link: 'peerbox://abc' });
  fake.emit('change', { gen: 3 });
  assert.deepEqual(got, [{ link: 'peerbox://abc' }]);

  stop();
  stop(); // twice is harmless
  await new Promise((r) => setTimeout(r, 0));
  const unlistens = fake.invoked.filter((i) => i.cmd === 'plugin:event|unlisten');
  assert.deepEqual(unlistens.map((i) => i.args), [{ event: 'open-link', eventId: 1 }]);
  assert.equal(fake.listeners.size, 0);
  assert.equal(fake.callbacks.size, 0, 'the page-side callback is dropped too');
  fake.emit('open-link', { link: 'peerbox://late' });
  assert.equal(got.length, 1);
}

// Unsubscribing before the subscription is registered still ends it.
{
  const fake = fakeTauri();
  const { transport } = load(fake);
  const got = [];
  transport.listen('change', (p) => got.push(p))();
  await transport.call('status');
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(fake.listeners.size, 0);
  fake.emit('change', { gen: 1 });
  assert.deepEqual(got, []);
}

// A subscription that fails is reported and does not hold calls back.
{
  const fake = fakeTauri({ failListen: true });
  const { transport, warnings } = load(fake);
  transport.listen('change', () => {});
  assert.deepEqual(await transport.call('status'), { op: 'status', listening: 0 });
  assert.equal(warnings.length, 1);
  assert.equal(fake.callbacks.size, 1, 'until unlisten');
}

// command(): arguments as given, errors as ApiError like call's.
{
  const fake = fakeTauri();
  const { transport } = load(fake);
  assert.deepEqual(await transport.command('desktop_settings_set', { tray: false }), { tray: false, tray_available: true });
  await assert.rejects(transport.command('open_path', { path: '/etc/passwd' }), (e) => {
    assert.ok(e instanceof ApiError);
    assert.equal(e.code, 'bad_request');
    assert.match(e.message, /not inside a Peerbox folder/);
    return true;
  });
  await assert.rejects(transport.command('nope'), (e) => e instanceof ApiError && e.code === 'error' && /unknown command/.test(e.message));
}

console.log('api.js tauriTransport: ok');
