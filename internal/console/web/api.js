// The console's client of the public HTTP API. The key lives in this
// tab's sessionStorage only and travels in the Authorization header:
// never in a cookie (credentials: 'omit'), never in a URL.

const KEY = 'lambdagent.key';

export function getKey() { return sessionStorage.getItem(KEY); }
export function setKey(k) { sessionStorage.setItem(KEY, k); }
export function clearKey() { sessionStorage.removeItem(KEY); }

// An APIError is a non-2xx answer: its message is the API's own.
export class APIError extends Error {
  constructor(status, type, message) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

function init(method, body, headers) {
  const h = { ...headers };
  const key = getKey();
  if (key) h.Authorization = 'Bearer ' + key;
  const i = { method, headers: h, credentials: 'omit', cache: 'no-store', redirect: 'error', referrerPolicy: 'no-referrer' };
  if (body !== undefined) {
    h['Content-Type'] = 'application/json';
    i.body = JSON.stringify(body);
  }
  return i;
}

async function send(path, i) {
  try {
    return await fetch(path, i);
  } catch (e) {
    throw new APIError(0, 'network', 'the server could not be reached: ' + e.message);
  }
}

// decode returns a response's JSON body, or throws its error as an APIError.
async function decode(res) {
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!res.ok) {
    const msg = (data && data.error && data.error.message) || `${res.status} ${res.statusText}`;
    throw new APIError(res.status, data && data.error && data.error.type, msg);
  }
  return data;
}

// api sends one request and returns its decoded JSON body (null for 204).
export async function api(method, path, body, headers = {}) {
  return decode(await send(path, init(method, body, { Accept: 'application/json', ...headers })));
}

// openStream sends a request that asks for server-sent events. It
// returns { stream } (the body to read with readSSE) when the server
// streams, or { data } when it answered plain JSON instead; an error
// answer (before any stream started) throws, as api does. fetch and not
// EventSource: EventSource cannot send the Authorization header.
export async function openStream(method, path, body, headers = {}) {
  const res = await send(path, init(method, body, { Accept: 'text/event-stream', ...headers }));
  if (res.ok && (res.headers.get('Content-Type') || '').startsWith('text/event-stream')) return { stream: res.body };
  return { data: await decode(res) };
}

// readSSE parses the server-sent events of body and calls
// onEvent({ id, event, data }) for each; onEvent returns true at the
// stream's last event, where reading stops. It returns true when it
// stopped there and false when the body ended first; a broken
// connection throws.
export async function readSSE(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  let ev = { id: '', event: '', data: [] };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return false;
      buf += value;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        let line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.endsWith('\r')) line = line.slice(0, -1);
        if (line === '') { // the end of an event
          if (ev.data.length && onEvent({ id: ev.id, event: ev.event || 'message', data: ev.data.join('\n') })) return true;
          ev = { id: ev.id, event: '', data: [] };
          continue;
        }
        if (line.startsWith(':')) continue; // a comment
        const c = line.indexOf(':');
        const field = c < 0 ? line : line.slice(0, c);
        let val = c < 0 ? '' : line.slice(c + 1);
        if (val.startsWith(' ')) val = val.slice(1);
        if (field === 'data') ev.data.push(val);
        else if (field === 'event') ev.event = val;
        else if (field === 'id') ev.id = val;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

export const enc = encodeURIComponent;
