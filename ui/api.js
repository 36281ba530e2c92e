// The only module that talks to the backend.
//
// Everything goes through one transport with a single method, `call(op, args)`,
// which resolves with the answer's JSON or rejects with an ApiError. In a browser the
// transport is HTTP against the daemon on loopback (`POST /api/v1/call` with the
// bearer token). Inside the desktop app a Tauri transport can be dropped in by
// adding a branch to pickTransport() (e.g. `window.__TAURI__.core.invoke('call',
// {request})`); nothing else in ui/ needs to change.
//
// Status updates reach views through subscribe(); today that polls `status` about
// once a second, later it can listen to Server-Sent Events or Tauri events instead.

const TOKEN_KEY = 'peerbox.token';
const POLL_MS = 1000;
const CALL_TIMEOUT_MS = 30000;

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
  };
}

/** Inside the desktop app: the shell's one command, `call`, over Tauri's IPC. */
function tauriTransport(internals) {
  return {
    kind: 'tauri',
    hasToken: true,
    async call(op, args = {}) {
      try {
        return await internals.invoke('call', { req: { ...args, op } });
      } catch (e) {
        const code = e && typeof e === 'object' && e.code ? String(e.code) : 'error';
        const message = e && typeof e === 'object' && e.message ? String(e.message) : String(e);
        throw new ApiError(code, message);
      }
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

/** Whether this page was opened with a login token (always true in the desktop app). */
export function hasToken() {
  return transport.hasToken;
}

/** Call one API operation. */
export function call(op, args) {
  return transport.call(op, args);
}

// Named helpers, one per operation, so views read in the product's words.
export const api = {
  status: () => call('status'),
  browse: (folder, path) => call('browse', { folder, path }),
  search: (query) => call('search', { query }),
  folderAdd: (path, name, mode) => call('folder_add', { path, ...(name ? { name } : {}), ...(mode ? { mode } : {}) }),
  folderLink: (folder, { readOnly, expiresIn, approve }) =>
    call('folder_link', {
      folder,
      read_only: Boolean(readOnly),
      approve: Boolean(approve),
      ...(expiresIn ? { expires_in: expiresIn } : {}),
    }),
  folderJoin: (link, path, mode) => call('folder_join', { link, path, ...(mode ? { mode } : {}) }),
  folderLeave: (folder) => call('folder_leave', { folder }),
  trashList: (folder) => call('trash_list', { folder }),
  trashRestore: (folder, path, at) => call('trash_restore', { folder, path, ...(at ? { at } : {}) }),
  fetch: (folder, path) => call('fetch', { folder, path }),
  peers: () => call('peers'),
  requests: () => call('requests'),
  approve: (folder, peer) => call('approve', { folder, peer }),
  revoke: (target) => call('revoke', { target }),
  share: (paths, expiresIn) => call('share', { paths, ...(expiresIn ? { expires_in: expiresIn } : {}) }),
};

const subscribers = new Set();
let pollTimer = null;
let polling = false;
let last = { status: null, error: null };

async function poll() {
  if (polling) return;
  polling = true;
  try {
    last = { status: await call('status'), error: null };
  } catch (e) {
    last = { status: last.status, error: e };
  } finally {
    polling = false;
  }
  for (const fn of subscribers) fn(last.status, last.error);
  if (subscribers.size) pollTimer = setTimeout(poll, POLL_MS);
}

/**
 * Get `fn(status, error)` now and after every status change (about once a second).
 * Returns a function that unsubscribes.
 */
export function subscribe(fn) {
  subscribers.add(fn);
  if (last.status || last.error) fn(last.status, last.error);
  if (!pollTimer && !polling) poll();
  return () => {
    subscribers.delete(fn);
    if (!subscribers.size && pollTimer) {
      clearTimeout(pollTimer);
      pollTimer = null;
    }
  };
}

/** Ask for a status now (after an action), instead of waiting for the next tick. */
export function refreshNow() {
  if (pollTimer) clearTimeout(pollTimer);
  pollTimer = null;
  poll();
}
