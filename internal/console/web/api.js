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

// api sends one request and returns its decoded JSON body (null for 204).
export async function api(method, path, body, headers = {}) {
  const h = { Accept: 'application/json', ...headers };
  const key = getKey();
  if (key) h.Authorization = 'Bearer ' + key;
  const init = { method, headers: h, credentials: 'omit', cache: 'no-store', redirect: 'error', referrerPolicy: 'no-referrer' };
  if (body !== undefined) {
    h['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new APIError(0, 'network', 'the server could not be reached: ' + e.message);
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!res.ok) {
    const msg = (data && data.error && data.error.message) || `${res.status} ${res.statusText}`;
    throw new APIError(res.status, data && data.error && data.error.type, msg);
  }
  return data;
}

export const enc = encodeURIComponent;
