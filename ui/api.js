// The only module that talks to the backend.
//
// Everything goes through one transport with a single method, `call(op, args)`,
// which resolves with the answer's JSON or rejects with an ApiError. In a browser the
// transport is HTTP against the daemon on loopback (`POST /api/v1/call` with the
// bearer token). Inside the desktop app a Tauri transport can be dropped in by
// adding a branch to pickTransport() (e.g. `window.__TAURI__.core.invoke('call',
// {request})`); nothing else in ui/ needs to change.
//
// Status updates reach views through subscribe(). The node says when something
// changed (Server-Sent Events from the daemon, `change` events inside the desktop
// app, both throttled at the source to 10 a second); the status is then fetched, at
// most every STATUS_GAP_MS. Without events (stream down) it falls back to polling.

const TOKEN_KEY = 'peerbox.token';
const POLL_MS = 1000;
/** With events flowing, a slow poll still catches anything no event announced. */
const LIVE_POLL_MS = 5000;
const STATUS_GAP_MS = 250;
const CALL_TIMEOUT_MS = 30000;
const RECONNECT_MS = 2000;

/** An error from the backend (or from reaching it), with a code and a message to show. */
export class ApiError extends Error {
  constructor(code, message, status = 0) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.status = status;
  }
}

/**
 * Read the login token from `#token=…` once, keep it in sessionStorage, and remove
 * it from the address bar so it is not left in history or shared by copy-paste.
 */
function takeToken() {
  const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (m) {
    const token = decodeURIComponent(m[1]);
    try {
      sessionStorage.setItem(TOKEN_KEY, token);
    } catch {
      // sessionStorage unavailable: keep it in memory for this page only
      memoryToken = token;
    }
    history.replaceState(history.state, '', location.pathname + location.search);
  }
  try {
    return sessionStorage.getItem(TOKEN_KEY) || memoryToken;
  } catch {
    return memoryToken;
  }
}
let memoryToken = null;

function httpTransport() {
  const token = takeToken();
  /** PUT a File to `url` with progress (fetch cannot report upload progress); JSON answer. */
  const putFile = (url, headers, file, onProgress) =>
    new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open('PUT', url);
      xhr.setRequestHeader('Authorization', `Bearer ${token || ''}`);
      for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
      xhr.upload.onprogress = (e) => onProgress && onProgress(e.loaded, e.total);
      xhr.onload = () => {
        let body = null;
        try {
          body = JSON.parse(xhr.responseText);
        } catch {
          body = null;
        }
        if (xhr.status >= 200 && xhr.status < 300) resolve(body);
        else {
          const err = body && body.error;
          reject(new ApiError((err && String(err.code)) || `http_${xhr.status}`, (err && String(err.message)) || `HTTP ${xhr.status}`, xhr.status));
        }
      };
      xhr.onerror = () => reject(new ApiError('offline', 'unreachable'));
      xhr.send(file);
    });
  return {
    kind: 'http',
    hasToken: Boolean(token),
    async call(op, args = {}) {
      const ctl = new AbortController();
      const timer = setTimeout(() => ctl.abort(), CALL_TIMEOUT_MS);
      let res;
      try {
        res = await fetch('/api/v1/call', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token || ''}` },
          body: JSON.stringify({ ...args, op }),
          signal: ctl.signal,
          cache: 'no-store',
          credentials: 'omit',
        });
      } catch (e) {
        throw new ApiError('offline', e && e.name === 'AbortError' ? 'timeout' : 'unreachable');
      } finally {
        clearTimeout(timer);
      }
      let body = null;
      try {
        body = await res.json();
      } catch {
        body = null;
      }
      if (!res.ok) {
        const err = body && body.error;
        throw new ApiError(
          (err && String(err.code)) || `http_${res.status}`,
          (err && String(err.message)) || `HTTP ${res.status}`,
          res.status,
        );
      }
      return body;
    },
    /** Follow the daemon's event stream; `on(event, data)` per event. Returns a stop function. */
    events(on, onDown) {
      let stopped = false;
      let ctl = null;
      const run = async () => {
        while (!stopped) {
          ctl = new AbortController();
          try {
            const res = await fetch('/api/v1/events', {
              headers: { Authorization: `Bearer ${token || ''}` },
              signal: ctl.signal,
              cache: 'no-store',
              credentials: 'omit',
            });
            if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
            const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
            let buf = '';
            for (;;) {
              const { value, done } = await reader.read();
              if (done) break;
              buf += value;
              let cut;
              while ((cut = buf.indexOf('\n\n')) >= 0) {
                const block = buf.slice(0, cut);
                buf = buf.slice(cut + 2);
                let ev = 'message';
                let data = '';
                for (const line of block.split('\n')) {
                  if (line.startsWith('event:')) ev = line.slice(6).trim();
                  else if (line.startsWith('data:')) data += line.slice(5).trim();
                }
                let parsed = null;
                try {
                  parsed = data ? JSON.parse(data) : null;
                } catch {
                  parsed = null;
                }
                on(ev, parsed);
              }
            }
          } catch {
            // reconnect below
          }
          if (stopped) return;
          onDown();
          await new Promise((r) => setTimeout(r, RECONNECT_MS));
        }
      };
      run();
      return () => {
        stopped = true;
        if (ctl) ctl.abort();
      };
    },
    /** Stream a File into a folder (or the quick-share drop folder); reports bytes sent. */
    upload(folder, path, file, onProgress) {
      const q = new URLSearchParams({ path, ...(folder ? { folder } : {}) });
      return putFile(`/api/v1/upload?${q}`, {}, file, onProgress);
    },
    /**
     * Stream a File through someone's file-request link (via this daemon), as part
     * of drop `batch`; reports bytes sent. The link and password go in headers,
     * never in the URL (the password percent-encoded: headers carry Latin-1 only).
     */
    dropFile(link, password, batch, path, file, onProgress) {
      const q = new URLSearchParams({ path, size: String(file.size), batch });
      const headers = { 'X-Peerbox-Link': link, ...(password ? { 'X-Peerbox-Password': encodeURIComponent(password) } : {}) };
      return putFile(`/api/v1/drop?${q}`, headers, file, onProgress);
    },
    /** Start a browser download of a local file of a folder (a one-time ticket, not the token, in the URL). */
    async download(folder, path) {
      const res = await fetch('/api/v1/ticket', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token || ''}` },
        body: JSON.stringify({ folder, path }),
        cache: 'no-store',
        credentials: 'omit',
      });
      const body = await res.json().catch(() => null);
      if (!res.ok || !body || typeof body.url !== 'string') {
        const err = body && body.error;
        throw new ApiError((err && String(err.code)) || `http_${res.status}`, (err && String(err.message)) || `HTTP ${res.status}`, res.status);
      }
      const a = document.createElement('a');
      a.href = body.url;
      a.download = '';
      a.rel = 'noopener';
      document.body.append(a);
      a.click();
      a.remove();
    },
  };
}

/**
 * Inside the desktop app: the shell's commands over Tauri's IPC (`call` for the node
 * API, `command(name, args)` for the shell's own), and its events through `listen`:
 * `change` {gen}, `notice` {kind, subject, detail}, `drop-paths` {paths, position},
 * `open-link` {link}. Uses `__TAURI_INTERNALS__` directly (no global Tauri API).
 */
function tauriTransport(internals) {
  const toApiError = (e) => {
    const code = e && typeof e === 'object' && e.code ? String(e.code) : 'error';
    const message = e && typeof e === 'object' && e.message ? String(e.message) : String(e);
    return new ApiError(code, message);
  };
  // Subscriptions still being registered. Calls wait for them, so that an event the
  // shell sends in answer to a call (queued links go out on the first call) finds
  // its listener: subscribe first, then call.
  const registering = new Set();
  const settled = () => Promise.all(registering);

  return {
    kind: 'tauri',
    hasToken: true,
    async call(op, args = {}) {
      if (registering.size) await settled();
      try {
        return await internals.invoke('call', { req: { ...args, op } });
      } catch (e) {
        throw toApiError(e);
      }
    },
    /** Invoke one of the shell's own commands (desktop_settings_get, open_path, …). */
    async command(name, args = {}) {
      if (registering.size) await settled();
      try {
        return await internals.invoke(name, args);
      } catch (e) {
        throw toApiError(e);
      }
    },
    /**
     * Call `fn(payload)` for each event `event` from the shell. Returns a function
     * that unsubscribes (safe to call at once, and more than once).
     */
    listen(event, fn) {
      const handler = internals.transformCallback((e) => fn(e && e.payload));
      let stopped = false;
      const registered = internals
        .invoke('plugin:event|listen', { event, target: { kind: 'Any' }, handler })
        .catch((e) => {
          console.warn(`cannot listen to ${event}:`, e);
          return null;
        });
      const pending = registered.then(() => {
        registering.delete(pending);
      });
      registering.add(pending);
      return () => {
        if (stopped) return;
        stopped = true;
        registered.then((eventId) => {
          if (eventId == null) {
            internals.unregisterCallback?.(handler);
            return;
          }
          // Drop the page's side first, as Tauri's own unlisten does, then Rust's.
          window.__TAURI_EVENT_PLUGIN_INTERNALS__?.unregisterListener?.(event, eventId);
          internals.invoke('plugin:event|unlisten', { event, eventId }).catch(() => {});
        });
      };
    },
  };
}

function pickTransport() {
  const internals = window.__TAURI_INTERNALS__;
  if (internals && typeof internals.invoke === 'function') {
    return tauriTransport(internals);
  }
  return httpTransport();
}

const transport = pickTransport();

/** Whether this is the desktop app (native paths, open with the system's apps). */
export function isDesktop() {
  return transport.kind === 'tauri';
}

/** Run a desktop-shell command (open_path, reveal_path, desktop_settings_*). */
export function shellCommand(name, args) {
  if (!transport.command) return Promise.reject(new ApiError('unsupported', 'only in the desktop app'));
  return transport.command(name, args);
}

/** Listen to a desktop-shell event (drop-paths, open-link); a no-op in a browser. */
export function onShellEvent(name, fn) {
  if (!transport.listen) return () => {};
  return transport.listen(name, (payload) => fn(payload));
}

/** Upload a browser File (browser only). */
export function upload(folder, path, file, onProgress) {
  if (!transport.upload) return Promise.reject(new ApiError('unsupported', 'not available here'));
  return transport.upload(folder, path, file, onProgress);
}

/** Send a browser File through a file-request link (browser only). */
export function dropFile(link, password, batch, path, file, onProgress) {
  if (!transport.dropFile) return Promise.reject(new ApiError('unsupported', 'not available here'));
  return transport.dropFile(link, password, batch, path, file, onProgress);
}

/** Whether browser Files can be sent through request links here (not in the desktop app). */
export function canDropFiles() {
  return Boolean(transport.dropFile);
}

/** Hand a local file of a folder to the user: a browser download, or the system's app. */
export function openFile(folder, path) {
  if (transport.download) return transport.download(folder, path);
  return call('local_path', { folder, path }).then((r) => shellCommand('open_path', { path: r.path }));
}

/** Whether this page was opened with a login token (always true in the desktop app). */
export function hasToken() {
  return transport.hasToken;
}

/** Call one API operation. */
export function call(op, args) {
  return transport.call(op, args);
}

/** A link's limits as the API takes them, leaving out what is not set. */
function limitArgs({ expiresIn, password, maxUses, maxBytes } = {}) {
  return {
    ...(expiresIn ? { expires_in: expiresIn } : {}),
    ...(password ? { password } : {}),
    ...(maxUses ? { max_uses: maxUses } : {}),
    ...(maxBytes ? { max_bytes: maxBytes } : {}),
  };
}

const withPassword = (password) => (password ? { password } : {});

// Named helpers, one per operation, so views read in the product's words.
export const api = {
  status: () => call('status'),
  browse: (folder, path) => call('browse', { folder, path }),
  search: (query) => call('search', { query }),
  folderAdd: (path, name, mode) => call('folder_add', { path, ...(name ? { name } : {}), ...(mode ? { mode } : {}) }),
  folderLink: (folder, { readOnly, approve, ...limits }) =>
    call('folder_link', { folder, read_only: Boolean(readOnly), approve: Boolean(approve), ...limitArgs(limits) }),
  folderRequest: (folder, limits) => call('folder_request', { folder, ...limitArgs(limits) }),
  folderSet: (folder, change) => call('folder_set', { folder, ...change }),
  folderJoin: (link, path, mode, password) => call('folder_join', { link, path, ...(mode ? { mode } : {}), ...withPassword(password) }),
  inspectLink: (link) => call('inspect_link', { link }),
  dropProbe: (link, password) => call('drop_probe', { link, ...withPassword(password) }),
  dropPaths: (link, password, paths) => call('drop_paths', { link, paths, ...withPassword(password) }),
  links: () => call('links'),
  versions: (folder, path) => call('versions', { folder, path }),
  versionRestore: (folder, path, version) => call('version_restore', { folder, path, version: String(version) }),
  folderLeave: (folder) => call('folder_leave', { folder }),
  trashList: (folder) => call('trash_list', { folder }),
  trashRestore: (folder, path, at) => call('trash_restore', { folder, path, ...(at ? { at } : {}) }),
  fetch: (folder, path) => call('fetch', { folder, path }),
  peers: () => call('peers'),
  requests: () => call('requests'),
  approve: (folder, peer) => call('approve', { folder, peer }),
  revoke: (target) => call('revoke', { target }),
  share: (paths, limits) => call('share', { paths, ...limitArgs(limits) }),
  mkdir: (folder, dir, name) => call('mkdir', { folder, dir, name }),
  rename: (folder, from, to) => call('rename', { folder, from, to }),
  del: (folder, paths) => call('delete', { folder, paths }),
  addPaths: (folder, dir, paths) => call('add_paths', { folder, dir, paths }),
  resolveConflict: (folder, path, keep) => call('resolve_conflict', { folder, path, keep }),
  localPath: (folder, path) => call('local_path', { folder, path }),
  download: (link, dest, password) => call('download', { link, ...(dest ? { dest } : {}), ...withPassword(password) }),
  transferPause: (id) => call('transfer_pause', { id }),
  transferResume: (id) => call('transfer_resume', { id }),
  transferCancel: (id) => call('transfer_cancel', { id }),
  settings: () => call('settings'),
  settingsSet: (change) => call('settings_set', change),
};

const subscribers = new Set();
const noticeSubscribers = new Set();
let pollTimer = null;
let polling = false;
let again = false;
let lastPoll = 0;
let last = { status: null, error: null };
let live = false;
let scheduled = false;
let stopEvents = null;

async function poll() {
  if (polling) {
    again = true;
    return;
  }
  polling = true;
  lastPoll = Date.now();
  try {
    last = { status: await call('status'), error: null };
  } catch (e) {
    last = { status: last.status, error: e };
  } finally {
    polling = false;
  }
  for (const fn of subscribers) fn(last.status, last.error);
  if (again) {
    again = false;
    schedule();
  } else if (subscribers.size && !pollTimer) {
    pollTimer = setTimeout(() => {
      pollTimer = null;
      poll();
    }, live ? LIVE_POLL_MS : POLL_MS);
  }
}

/** Fetch the status soon, but not more often than every STATUS_GAP_MS. */
function schedule() {
  if (pollTimer && scheduled) return;
  if (pollTimer) clearTimeout(pollTimer);
  scheduled = true;
  const wait = Math.max(0, STATUS_GAP_MS - (Date.now() - lastPoll));
  pollTimer = setTimeout(() => {
    pollTimer = null;
    scheduled = false;
    poll();
  }, wait);
}

function onEvent(ev, data) {
  if (ev === 'change') {
    live = true;
    schedule();
  } else if (ev === 'notice' && data && typeof data === 'object') {
    for (const fn of noticeSubscribers) fn(data);
  }
}

function startEvents() {
  if (stopEvents) return;
  if (transport.events) {
    stopEvents = transport.events(onEvent, () => {
      // The stream is down: poll until it is back.
      live = false;
      if (!pollTimer) schedule();
    });
  } else if (transport.listen) {
    const offs = [transport.listen('change', (p) => onEvent('change', p)), transport.listen('notice', (p) => onEvent('notice', p))];
    live = true;
    stopEvents = () => offs.forEach((off) => Promise.resolve(off).then((f) => typeof f === 'function' && f()));
  }
}

/**
 * Get `fn(status, error)` now and after every status change.
 * Returns a function that unsubscribes.
 */
export function subscribe(fn) {
  subscribers.add(fn);
  if (last.status || last.error) fn(last.status, last.error);
  startEvents();
  if (!pollTimer && !polling) poll();
  return () => {
    subscribers.delete(fn);
    if (!subscribers.size && pollTimer) {
      clearTimeout(pollTimer);
      pollTimer = null;
    }
  };
}

/** Get `fn(notice)` for each notice ({kind, subject, detail}: peer data, show as text). */
export function onNotice(fn) {
  noticeSubscribers.add(fn);
  return () => noticeSubscribers.delete(fn);
}

/** Ask for a status now (after an action), instead of waiting for the next event. */
export function refreshNow() {
  if (pollTimer) clearTimeout(pollTimer);
  pollTimer = null;
  poll();
}
