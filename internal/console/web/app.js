// lambdagent console: a hash router and one function per page. Every
// request goes through api.js to the public HTTP API.
import { api, openStream, readSSE, APIError, enc, getKey, setKey, clearKey } from './api.js';
import { el, svg, render, num, usd, when, json, confirmDialog } from './ui.js';

const main = document.getElementById('main');
const isoDay = (d) => d.toISOString().slice(0, 10);

// ---- sign in -------------------------------------------------------------

const login = document.getElementById('login');
const loginError = document.getElementById('login-error');

function showLogin(message) {
  loginError.hidden = !message;
  loginError.textContent = message || '';
  document.getElementById('key').value = '';
  if (!login.open) login.showModal();
  document.getElementById('key').focus();
}

document.getElementById('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const key = document.getElementById('key').value.trim();
  setKey(key);
  try {
    await api('GET', '/v1/sessions?limit=1');
  } catch (e) {
    if (e instanceof APIError && (e.status === 401 || e.status === 403)) {
      clearKey();
      showLogin('Key refused: ' + e.message);
      return;
    }
    // Another failure (no catalog, store down) is not the key's fault.
  }
  me = null;
  sessionStorage.removeItem(TENANT);
  login.close();
  updateWho();
  route();
});
document.getElementById('login-cancel').addEventListener('click', () => login.close());
document.getElementById('signout').addEventListener('click', () => {
  clearKey();
  sessionStorage.removeItem(TENANT);
  me = null;
  updateWho();
  showLogin('');
  route();
});

async function updateWho() {
  const who = document.getElementById('who');
  if (getKey() === null) { who.textContent = 'not signed in'; return; }
  who.textContent = 'signed in';
  const m = await whoami();
  if (getKey() === null) return;
  who.textContent = m.admin ? 'signed in · admin' : m.tenant ? `signed in · tenant ${m.tenant}` : 'signed in';
}

// ---- who is signed in; the admin's tenant -----------------------------------

// me is GET /v1/whoami's answer for the current key, once asked.
let me = null;
async function whoami() {
  if (!me) {
    try { me = await api('GET', '/v1/whoami'); } catch { me = { admin: false }; }
  }
  return me;
}

// The admin token reads every tenant: the tenant it looks at is chosen
// with the picker and kept in this tab ('' is the default tenant for
// sessions, every tenant for usage).
const TENANT = 'lambdagent.tenant';
const chosenTenant = () => sessionStorage.getItem(TENANT) || '';
// tenantQuery is the &tenant=… the admin's reads carry; '' for others.
const tenantQuery = () => (me && me.admin && chosenTenant() ? '&tenant=' + enc(chosenTenant()) : '');

// tenantPicker lets the admin pick a tenant (suggesting the ones with
// usage in the last 30 days); nothing for an API key.
async function tenantPicker(emptyMeans) {
  if (!(await whoami()).admin) return null;
  const list = el('datalist', { id: 'tenants' });
  const input = el('input', { type: 'search', list: 'tenants', value: chosenTenant(), placeholder: emptyMeans, 'aria-label': 'Tenant', size: 16 });
  const apply = () => {
    const v = input.value.trim();
    if (v === chosenTenant()) return; // (Enter, then the change it causes)
    if (v) sessionStorage.setItem(TENANT, v); else sessionStorage.removeItem(TENANT);
    route();
  };
  input.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') apply(); });
  input.addEventListener('change', apply);
  const to = new Date(), from = new Date(to.getTime() - 29 * 864e5);
  api('GET', `/v1/usage?from=${isoDay(from)}&to=${isoDay(to)}`).then((r) => {
    for (const t of new Set(r.days.map((d) => d.tenant))) list.append(el('option', { value: t }));
  }).catch(() => {});
  return el('label', { class: 'tenant-picker' }, 'Tenant ', input, list);
}

// fail shows an error in place of a page; a refused key asks for another.
function fail(root, e) {
  // The admin token is refused where it has no say (workflows, turns):
  // that is no reason to forget it.
  if (e instanceof APIError && e.status === 401 && !(me && me.admin)) {
    clearKey();
    me = null;
    updateWho();
    showLogin('Key refused: ' + e.message);
  }
  render(root, el('p', { class: 'error', role: 'alert' }, e.message));
}

// ---- router ----------------------------------------------------------------

const pages = {
  sessions: sessionsPage,
  session: sessionPage,
  chat: chatPage,
  workflows: workflowsPage,
  run: runPage,
  tools: toolsPage,
  usage: usagePage,
};

// leaving stops what the current page does in the background (polling).
let leaving = [];
const onLeave = (f) => leaving.push(f);

function route() {
  for (const f of leaving) f();
  leaving = [];
  const [, name = 'sessions', ...rest] = location.hash.split('/');
  const arg = rest.length ? decodeURIComponent(rest.join('/')) : '';
  for (const a of document.querySelectorAll('#nav a')) {
    a.classList.toggle('active', a.dataset.page === name || (name === 'session' && a.dataset.page === 'sessions') ||
      (name === 'run' && a.dataset.page === 'workflows'));
  }
  if (getKey() === null) {
    render(main, el('h1', {}, 'lambdagent console'),
      el('p', {}, 'Sign in with an API key to see your sessions, chat, tools and usage.'),
      el('button', { class: 'primary', onclick: () => showLogin('') }, 'Sign in'));
    return;
  }
  (pages[name] || sessionsPage)(arg);
}

window.addEventListener('hashchange', route);
updateWho();
route();
if (getKey() === null) showLogin('');

// ---- sessions --------------------------------------------------------------

async function sessionsPage(prefix) {
  const box = el('div');
  const search = el('input', { type: 'search', placeholder: 'Session id starts with…', value: prefix, 'aria-label': 'Search by session id' });
  const go = () => { location.hash = '#/sessions/' + enc(search.value.trim()); };
  search.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') go(); });
  const picker = await tenantPicker('default');
  render(main, el('h1', {}, 'Sessions'),
    el('div', { class: 'toolbar' }, search, el('button', { onclick: go }, 'Search'), picker,
      !picker && el('a', { href: '#/chat' }, 'New chat')),
    box);
  const cursors = [''];
  const load = async () => {
    const cursor = cursors[cursors.length - 1];
    let q = '/v1/sessions?limit=20';
    if (prefix) q += '&prefix=' + enc(prefix);
    if (cursor) q += '&cursor=' + enc(cursor);
    q += tenantQuery();
    let page;
    try { page = await api('GET', q); } catch (e) { return fail(box, e); }
    if (!page.sessions.length) {
      return render(box, el('p', { class: 'muted' }, prefix ? `No session starts with “${prefix}”.` : 'No sessions yet. Start one in Chat.'));
    }
    const rows = page.sessions.map((s) => {
      const c = s.counters || {};
      return el('tr', {},
        el('td', {}, el('a', { href: '#/session/' + enc(s.session_id), class: 'mono' }, s.session_id)),
        el('td', {}, when(s.created)),
        el('td', { class: 'num' }, num(s.turns)),
        el('td', { class: 'num' }, num(c.input_tokens)),
        el('td', { class: 'num' }, num(c.output_tokens)),
        el('td', { class: 'num' }, usd(s.cost_usd)),
        el('td', {}, !me.admin && el('button', { class: 'small', 'aria-label': 'Delete ' + s.session_id, onclick: () => remove(s.session_id, load) }, 'Delete')));
    });
    render(box,
      el('table', {}, el('thead', {}, el('tr', {}, el('th', {}, 'Session'), el('th', {}, 'Created'), el('th', { class: 'num' }, 'Turns'),
        el('th', { class: 'num' }, 'Input tokens'), el('th', { class: 'num' }, 'Output tokens'), el('th', { class: 'num' }, 'Cost'), el('th', {}, ''))),
      el('tbody', {}, rows)),
      el('div', { class: 'toolbar' },
        cursors.length > 1 && el('button', { onclick: () => { cursors.pop(); load(); } }, '← Previous'),
        page.next_cursor && el('button', { onclick: () => { cursors.push(page.next_cursor); load(); } }, 'Next page →')));
  };
  load();
}

async function remove(id, then) {
  if (!(await confirmDialog(`Delete session ${id}? Its history, records and answers are removed for good.`))) return;
  try {
    await api('DELETE', '/v1/sessions/' + enc(id));
  } catch (e) {
    return alertError(e);
  }
  then();
}

function alertError(e) {
  main.prepend(el('p', { class: 'error', role: 'alert' }, e.message));
}

// ---- one session -----------------------------------------------------------

async function sessionPage(id) {
  render(main, el('p', { class: 'muted' }, 'Loading…'));
  let s;
  await whoami();
  try { s = await api('GET', '/v1/sessions/' + enc(id) + tenantQuery().replace('&', '?')); } catch (e) { return fail(main, e); }
  const c = s.counters || {};
  const head = el('div', { class: 'toolbar' },
    el('h1', {}, 'Session ', el('span', { class: 'mono' }, s.session_id)),
    me.admin ? el('span', { class: 'badge' }, 'tenant ' + (chosenTenant() || 'default')) : [
      el('a', { href: '#/chat/' + enc(s.session_id) }, 'Continue in Chat'),
      el('button', { onclick: () => remove(s.session_id, () => { location.hash = '#/sessions'; }) }, 'Delete')]);
  const stats = el('div', { class: 'stats' },
    stat(num(s.turns), 'turns'), stat(num(c.input_tokens), 'input tokens'), stat(num(c.output_tokens), 'output tokens'),
    stat(num(c.cache_read_input_tokens), 'cache read'), stat(num(c.cache_creation_input_tokens), 'cache write'),
    stat(usd(s.cost_usd), 'cost'), stat(num(c.model_calls), 'model calls'));
  render(main, head, stats, pinned(s.pinned), el('h2', {}, 'Transcript'), transcript(s.messages, s.records || []));
}

function stat(v, label) { return el('div', { class: 'stat' }, el('b', {}, v), el('span', {}, label)); }

function pinned(p) {
  if (!p) return null;
  const tools = p.tools || [];
  return el('details', { class: 'block card pinned' },
    el('summary', {}, `Pinned at the first turn: system prompt${p.system ? '' : ' (none)'} and ${tools.length} tool${tools.length === 1 ? '' : 's'}`),
    p.system ? el('pre', {}, p.system) : null,
    tools.map((t) => el('details', { class: 'block' }, el('summary', {}, el('b', {}, t.name), t.description ? ' — ' + t.description : ''),
      el('pre', {}, json(t.input_schema)))));
}

// transcript groups the messages by turn, using the turn records; the
// messages no record covers (a session from before records) show alone.
function transcript(messages, records) {
  const out = [];
  let i = 0;
  for (const r of records) {
    if (r.from > i) out.push(turnBox(null, messages.slice(i, r.from)));
    out.push(turnBox(r, messages.slice(r.from, r.to)));
    i = Math.max(i, r.to);
  }
  if (i < messages.length) out.push(turnBox(null, messages.slice(i)));
  return el('div', { class: 'transcript' }, out);
}

function turnBox(r, msgs) {
  let header;
  if (r) {
    const u = r.usage || {}, l = r.latency_ms || {};
    header = el('header', {},
      el('b', {}, 'Turn ' + r.turn),
      el('span', { class: 'tokens' }, `${num(u.input_tokens)} in · ${num(u.output_tokens)} out · ${num(u.cache_read_input_tokens)} cache read · ${num(u.cache_creation_input_tokens)} cache write`),
      el('span', { class: 'cost' }, usd(u.cost_usd)),
      el('span', { class: 'latency' }, `${num(l.total)} ms (model ${num(l.model)} · store ${num(l.store)} · tools ${num(l.tools)})`),
      el('span', {}, `${r.model_calls} model call${r.model_calls === 1 ? '' : 's'}`),
      r.request_id && el('span', { class: 'mono request-id', title: 'upstream request id' }, r.request_id),
      r.stop_reason && el('span', { class: 'badge' }, r.stop_reason));
  } else {
    header = el('header', {}, el('b', {}, 'Messages'), el('span', {}, 'no turn record'));
  }
  return el('section', { class: 'turn' }, header, el('div', { class: 'msgs' }, msgs.map(message)));
}

function message(m) {
  const content = typeof m.content === 'string' ? [{ type: 'text', text: m.content }] : (m.content || []);
  return el('div', { class: 'msg ' + m.role }, el('div', { class: 'role' }, m.role), content.map(block));
}

function block(b) {
  switch (b.type) {
    case 'text':
      return el('div', { class: 'text' }, b.text);
    case 'thinking':
      return el('details', { class: 'block thinking' }, el('summary', {}, 'thinking'), el('div', { class: 'text' }, b.thinking));
    case 'redacted_thinking':
      return el('details', { class: 'block thinking' }, el('summary', {}, 'redacted thinking'), el('pre', {}, b.data));
    case 'tool_use':
      return el('details', { class: 'block tool_use' },
        el('summary', {}, 'tool_use ', el('b', {}, b.name), ' ', el('span', { class: 'mono muted' }, b.id)),
        el('pre', {}, json(b.input)));
    case 'tool_result': {
      const parts = typeof b.content === 'string' ? [{ type: 'text', text: b.content }] : (b.content || []);
      return el('details', { class: 'block tool_result' + (b.is_error ? ' error' : '') },
        el('summary', {}, b.is_error ? 'tool_result (error) for ' : 'tool_result for ', el('span', { class: 'mono' }, b.tool_use_id)),
        parts.map((p) => (p.type === 'text' ? el('pre', {}, p.text) : el('pre', {}, json(p)))));
    }
    default:
      return el('details', { class: 'block' }, el('summary', {}, b.type), el('pre', {}, json(b)));
  }
}

// ---- chat ------------------------------------------------------------------

// streamTurn sends one turn as a stream of server-sent events (see the
// README's Streaming): onEvent gets each event as it comes ({ type, data }),
// and a { type: 'reconnect' } when the connection dropped and the stream
// is being resumed from its last event, on GET /v1/streams/{id} with
// Last-Event-ID. It returns the answer (turn_end's body) or throws the
// error. The Idempotency-Key makes the turn's stream id stable, so that a
// resume finds it.
async function streamTurn(sessionId, message, onEvent) {
  const st = { id: '', last: 0, answer: null, error: null };
  const handle = (ev) => {
    if (ev.id) st.last = Number(ev.id);
    let data = null;
    try { data = JSON.parse(ev.data); } catch { /* not JSON */ }
    if (ev.event === 'turn_start' && data) st.id = data.stream_id;
    if (ev.event === 'turn_end') st.answer = data;
    if (ev.event === 'error') st.error = data || {};
    onEvent({ type: ev.event, data });
    return ev.event === 'turn_end' || ev.event === 'error';
  };
  const first = await openStream('POST', '/v1/sessions/' + enc(sessionId) + '/turns', { message }, { 'Idempotency-Key': crypto.randomUUID() });
  if (!first.stream) { // a server that answered in one piece
    onEvent({ type: 'turn_end', data: first.data });
    return first.data;
  }
  let ended = false, dropped = null;
  try { ended = await readSSE(first.stream, handle); } catch (e) { dropped = e; }
  for (let tries = 0; !ended && st.id && tries < 5; tries++) {
    onEvent({ type: 'reconnect', data: { attempt: tries + 1, after: st.last } });
    await new Promise((r) => setTimeout(r, tries * 300));
    try {
      const r = await openStream('GET', '/v1/streams/' + enc(st.id), undefined, { 'Last-Event-ID': String(st.last) });
      if (r.stream) ended = await readSSE(r.stream, handle);
    } catch (e) {
      dropped = e;
      if (e instanceof APIError && e.status >= 400 && e.status < 500) break; // gone, or not ours: retrying will not help
    }
  }
  if (st.answer) return st.answer;
  if (st.error) {
    const e = st.error.error || {};
    throw new APIError(0, e.type, e.message || 'the turn failed');
  }
  throw new APIError(0, 'interrupted', 'the stream ended before the answer' + (dropped ? ': ' + dropped.message : ''));
}
export const chatTransport = { send: streamTurn };

// liveAnswer draws a streamed answer as its events come: the text, and
// each tool call when it starts and when it ends.
function liveAnswer() {
  const box = el('div', { class: 'bubble assistant streaming', 'aria-busy': 'true' }, el('span', { class: 'muted note' }, 'Claude is answering…'));
  let text = null;
  const tools = new Map();
  const onEvent = ({ type, data }) => {
    switch (type) {
      case 'turn_start': // (again, for a retried turn: the text starts over)
        box.replaceChildren();
        text = null;
        tools.clear();
        break;
      case 'text_delta':
        if (!text) box.append(text = el('span', { class: 'text' }));
        text.textContent += data.text;
        break;
      case 'tool_use': {
        if (text) text.classList.add('aside'); // what Claude wrote before calling tools: not the answer
        text = null;
        const state = el('span', { class: 'state' }, 'running…');
        const d = el('details', { class: 'block tool_call running' },
          el('summary', {}, 'tool ', el('b', {}, data.name), ' ', state), el('pre', {}, json(data.input)));
        tools.set(data.id, { d, state, t0: performance.now() });
        box.append(d);
        break;
      }
      case 'tool_result': {
        const t = tools.get(data.id);
        if (!t) break;
        t.d.classList.replace('running', data.is_error ? 'failed' : 'done');
        t.state.textContent = `${data.is_error ? 'failed' : 'done'} in ${num(Math.round(performance.now() - t.t0))} ms`;
        break;
      }
      case 'reconnect':
        box.append(el('span', { class: 'muted note reconnect' }, ` (connection lost: resuming after event ${data.after}…)`));
        break;
    }
    box.parentElement && (box.parentElement.scrollTop = box.parentElement.scrollHeight);
  };
  // done shows the answer: the text after the last tool call is the
  // response, byte for byte.
  const done = (ans) => {
    for (const n of box.querySelectorAll('.note')) n.remove();
    if (!text) box.append(text = el('span', { class: 'text' }));
    text.textContent = ans.response || '(empty answer)';
    box.classList.replace('streaming', 'answer');
    box.removeAttribute('aria-busy');
  };
  return { box, onEvent, done };
}

function newSessionId() {
  const b = new Uint8Array(5);
  crypto.getRandomValues(b);
  return 'chat-' + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

function chatPage(id) {
  const sessionId = id || newSessionId();
  if (!id) history.replaceState(null, '', '#/chat/' + enc(sessionId));
  const log = el('div', { class: 'log', 'aria-live': 'polite' });
  const box = el('textarea', { placeholder: 'Message… (Enter sends, Shift+Enter for a new line)', 'aria-label': 'Message', rows: 3 });
  const send = el('button', { class: 'primary', type: 'submit' }, 'Send');
  const form = el('form', {}, box, send);
  const submit = async () => {
    const text = box.value.trim();
    if (!text || send.disabled) return;
    box.value = '';
    send.disabled = true;
    log.append(el('div', { class: 'bubble user' }, text));
    const live = liveAnswer();
    log.append(live.box);
    log.scrollTop = log.scrollHeight;
    try {
      const ans = await chatTransport.send(sessionId, text, live.onEvent);
      live.done(ans);
      const u = ans.usage || {};
      log.append(el('div', { class: 'meta' }, `turn ${ans.turn} · ${num(u.input_tokens)} in · ${num(u.output_tokens)} out · ${usd(u.cost_usd)} · ${ans.model_calls} model call${ans.model_calls === 1 ? '' : 's'} · `,
          el('a', { href: '#/session/' + enc(sessionId) }, 'open the transcript')));
    } catch (e) {
      // A refusal here (the admin token runs no turn) keeps the key: the
      // other pages may still accept it.
      for (const n of live.box.querySelectorAll('.note')) n.remove();
      if (!live.box.childElementCount) live.box.remove();
      live.box.classList.replace('streaming', 'failed');
      live.box.removeAttribute('aria-busy');
      log.append(el('p', { class: 'error', role: 'alert' }, e.message));
    }
    send.disabled = false;
    log.scrollTop = log.scrollHeight;
    box.focus();
  };
  form.addEventListener('submit', (ev) => { ev.preventDefault(); submit(); });
  box.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); submit(); }
  });
  render(main, el('div', { class: 'chat' },
    el('div', { class: 'toolbar' }, el('h1', {}, 'Chat'), el('span', { class: 'muted' }, 'session '),
      el('a', { class: 'mono', href: '#/session/' + enc(sessionId) }, sessionId),
      el('a', { href: '#/chat' }, 'New session')),
    me && me.admin && adminNotice('turns'),
    log, form));
  box.focus();
  if (id) earlier(id, log);
}

// earlier puts a session's earlier messages (their text) at the top of
// the chat's log, for a chat continued from the session's page.
async function earlier(id, log) {
  let s;
  try {
    // Asked through the list, so that a new session is no 404.
    const l = await api('GET', '/v1/sessions?limit=100&prefix=' + enc(id));
    if (!l.sessions.some((x) => x.session_id === id)) return;
    s = await api('GET', '/v1/sessions/' + enc(id));
  } catch { return; }
  const bubbles = [];
  for (const m of s.messages || []) {
    const blocks = typeof m.content === 'string' ? [{ type: 'text', text: m.content }] : (m.content || []);
    const text = blocks.filter((b) => b.type === 'text').map((b) => b.text).join('\n');
    if (text) bubbles.push(el('div', { class: 'bubble history ' + m.role }, text));
  }
  if (bubbles.length) log.prepend(...bubbles, el('div', { class: 'meta' }, `earlier in this session (${num(s.turns)} turn${s.turns === 1 ? '' : 's'}) · `, el('a', { href: '#/session/' + enc(id) }, 'open the transcript')));
}

// ---- workflow runs ---------------------------------------------------------

const STATUSES = ['running', 'sleeping', 'waiting', 'completed', 'failed', 'canceled'];
const final = (status) => status === 'completed' || status === 'failed' || status === 'canceled';
const badgeClass = (status) => 'badge status ' + status + (status === 'completed' ? ' ok' : status === 'failed' ? ' down' : '');

// poll calls f now and every ms until the page is left or f returns true.
function poll(f, ms) {
  let stopped = false, timer = 0;
  const tick = async () => {
    if (stopped) return;
    const done = await f();
    if (!stopped && !done) timer = setTimeout(tick, ms);
  };
  onLeave(() => { stopped = true; clearTimeout(timer); });
  tick();
}

// definitions reads GET /v1/workflows; null when this deployment runs no
// workflows (the route is not there).
async function definitions() {
  try {
    return (await api('GET', '/v1/workflows')).workflows;
  } catch (e) {
    if (e instanceof APIError && e.status === 404) return null;
    throw e;
  }
}

// sampleInput is a starting point for a run's input: the required
// properties of the workflow's input schema, empty.
function sampleInput(def) {
  const s = def && def.input;
  if (!s || s.type !== 'object') return '{}';
  const o = {};
  for (const k of s.required || []) {
    const t = (s.properties || {})[k] || {};
    o[k] = t.type === 'number' || t.type === 'integer' ? 0 : t.type === 'boolean' ? false : t.type === 'object' ? {} : t.type === 'array' ? [] : '';
  }
  return JSON.stringify(o);
}

function parseJSON(text, what) {
  try {
    return JSON.parse(text.trim() || 'null');
  } catch (e) {
    throw new Error(`${what} is not JSON: ${e.message}`);
  }
}

const adminNotice = (what) => el('p', { class: 'notice' }, `The admin token reads sessions, tools and usage across tenants; ${what} take an API key.`);

async function workflowsPage(arg) {
  const q = new URLSearchParams(arg);
  render(main, el('h1', {}, 'Workflow runs'), el('p', { class: 'muted' }, 'Loading…'));
  if ((await whoami()).admin) return render(main, el('h1', {}, 'Workflow runs'), adminNotice('workflow runs'));
  let defs;
  try { defs = await definitions(); } catch (e) { return fail(main, e); }
  if (!defs) {
    return render(main, el('h1', {}, 'Workflow runs'),
      el('p', { class: 'notice' }, 'This deployment runs no workflows: LAMBDAGENT_WORKFLOWS names their definitions.'));
  }
  const wfSel = el('select', { 'aria-label': 'Workflow' }, el('option', { value: '' }, 'All workflows'),
    defs.map((d) => el('option', { value: d.name }, d.name)));
  const stSel = el('select', { 'aria-label': 'Status' }, el('option', { value: '' }, 'Any status'),
    STATUSES.map((s) => el('option', { value: s }, s)));
  wfSel.value = q.get('workflow') || '';
  stSel.value = q.get('status') || '';
  const filter = () => {
    const p = new URLSearchParams();
    if (wfSel.value) p.set('workflow', wfSel.value);
    if (stSel.value) p.set('status', stSel.value);
    location.hash = '#/workflows/' + p.toString();
  };
  wfSel.addEventListener('change', filter);
  stSel.addEventListener('change', filter);

  // Start a run.
  const startSel = el('select', { 'aria-label': 'Workflow to start' }, defs.map((d) => el('option', { value: d.name }, d.name)));
  if (wfSel.value) startSel.value = wfSel.value;
  const input = el('textarea', { 'aria-label': 'Run input (JSON)', rows: 2, spellcheck: 'false', class: 'mono' });
  const fillInput = () => { input.value = sampleInput(defs.find((d) => d.name === startSel.value)); };
  startSel.addEventListener('change', fillInput);
  fillInput();
  const startMsg = el('div');
  const start = async (ev) => {
    ev.preventDefault();
    let body;
    try { body = { input: parseJSON(input.value, 'the input') }; } catch (e) { return render(startMsg, el('p', { class: 'error', role: 'alert' }, e.message)); }
    try {
      const r = await api('POST', '/v1/workflows/' + enc(startSel.value) + '/runs', body, { 'Idempotency-Key': crypto.randomUUID() });
      location.hash = '#/run/' + enc(r.run_id);
    } catch (e) {
      render(startMsg, el('p', { class: 'error', role: 'alert' }, e.message));
    }
  };
  const startForm = el('form', { class: 'card start' }, el('b', {}, 'Start a run'),
    el('div', { class: 'toolbar' }, startSel, input, el('button', { class: 'primary', type: 'submit' }, 'Start')), startMsg);
  startForm.addEventListener('submit', start);

  const box = el('div');
  render(main, el('h1', {}, 'Workflow runs'), startForm, el('div', { class: 'toolbar' }, wfSel, stSel), box);
  poll(async () => {
    let r;
    const p = new URLSearchParams({ limit: '50' });
    if (wfSel.value) p.set('workflow', wfSel.value);
    if (stSel.value) p.set('status', stSel.value);
    try { r = await api('GET', '/v1/runs?' + p.toString()); } catch (e) { fail(box, e); return true; }
    if (!r.runs.length) {
      render(box, el('p', { class: 'muted' }, 'No runs' + (wfSel.value || stSel.value ? ' match.' : ' yet. Start one above.')));
      return false;
    }
    render(box, el('table', { class: 'runs' },
      el('thead', {}, el('tr', {}, ['Run', 'Workflow', 'Status', 'Started', 'Last change', 'Error'].map((h) => el('th', {}, h)))),
      el('tbody', {}, r.runs.map((x) => el('tr', {},
        el('td', {}, el('a', { class: 'mono', href: '#/run/' + enc(x.run_id) }, x.run_id)),
        el('td', {}, x.workflow),
        el('td', {}, el('span', { class: badgeClass(x.status) }, x.status)),
        el('td', {}, when(x.created_at)),
        el('td', {}, when(x.updated_at)),
        el('td', { class: 'error-text' }, x.error || ''))))));
    return false; // runs move on: keep the list current
  }, 2000);
}

const ms = (a, b) => (a && b ? Math.max(0, new Date(b) - new Date(a)) : null);
const duration = (d) => (d === null ? '' : d < 1000 ? `${num(d)} ms` : `${(d / 1000).toFixed(d < 10000 ? 2 : 1)} s`);

// findStep finds a step by id in a definition, inside parallel branches
// and map bodies too.
function findStep(steps, id) {
  for (const s of steps || []) {
    if (s.id === id) return s;
    for (const b of s.parallel || []) { const f = findStep(b, id); if (f) return f; }
    if (s.map) { const f = findStep(s.map.steps, id); if (f) return f; }
  }
  return null;
}

async function runPage(id) {
  render(main, el('p', { class: 'muted' }, 'Loading…'));
  if ((await whoami()).admin) return render(main, el('h1', {}, 'Run'), adminNotice('workflow runs'));
  let defs = [];
  try { defs = (await definitions()) || []; } catch { /* the run shows without its definition */ }
  const head = el('div', { class: 'toolbar' });
  const box = el('div');
  const msg = el('div');

  // Send an event, cancel: drawn once, so that polling does not undo
  // what the user types.
  const eventName = el('input', { 'aria-label': 'Event name', placeholder: 'event', class: 'mono', size: 14 });
  const eventBody = el('textarea', { 'aria-label': 'Event body (JSON)', rows: 2, spellcheck: 'false', class: 'mono' }, '{}');
  const sendEvent = el('form', { class: 'toolbar' }, el('b', {}, 'Send an event'), eventName, eventBody,
    el('button', { class: 'primary', type: 'submit' }, 'Send event'));
  const cancel = el('button', { class: 'danger' }, 'Cancel run');
  const actions = el('section', { class: 'card actions' }, sendEvent, el('div', { class: 'toolbar' }, cancel, el('span', { class: 'muted' }, 'Cancelling stops the run where it is; its steps stay.')), msg);
  let refresh = () => {};
  sendEvent.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const name = eventName.value.trim();
    if (!name) return render(msg, el('p', { class: 'error', role: 'alert' }, 'Name the event.'));
    try {
      await api('POST', '/v1/runs/' + enc(id) + '/events/' + enc(name), parseJSON(eventBody.value, 'the event body'));
      render(msg, el('p', { class: 'notice', role: 'status' }, `Event “${name}” sent.`));
    } catch (e) {
      return render(msg, el('p', { class: 'error', role: 'alert' }, e.message));
    }
    refresh();
  });
  cancel.addEventListener('click', async () => {
    if (!(await confirmDialog(`Cancel run ${id}? It will not advance again.`, 'Cancel run'))) return;
    try {
      await api('POST', '/v1/runs/' + enc(id) + '/cancel');
    } catch (e) {
      return render(msg, el('p', { class: 'error', role: 'alert' }, e.message));
    }
    refresh();
  });

  render(main, head, actions, box);
  let suggested = false;
  const load = async () => {
    let r;
    try { r = await api('GET', '/v1/runs/' + enc(id)); } catch (e) { fail(main, e); return true; }
    const def = defs.find((d) => d.name === r.workflow);
    render(head, el('h1', {}, 'Run ', el('span', { class: 'mono' }, r.run_id)),
      el('span', { class: badgeClass(r.status), id: 'run-status' }, r.status),
      el('a', { href: '#/workflows/' + new URLSearchParams({ workflow: r.workflow }).toString() }, 'All runs of ' + r.workflow));
    actions.hidden = final(r.status);
    // The event the waiting step waits for is the one to send.
    const waiting = r.steps.find((s) => s.status === 'waiting');
    const w = waiting && def && findStep(def.steps, waiting.id);
    if (!suggested && !eventName.value) {
      const e = (w && w.wait_for_event && w.wait_for_event.event) || (def && def.events[0]);
      if (e) { eventName.value = e; suggested = true; }
    }
    const u = r.usage || {};
    render(box,
      el('div', { class: 'stats' }, stat(r.workflow, 'workflow'), stat(num(r.steps.length), 'steps'),
        stat(num(u.input_tokens), 'input tokens'), stat(num(u.output_tokens), 'output tokens'), stat(usd(u.cost_usd), 'cost')),
      waiting && el('p', { class: 'notice' }, `Step ${waiting.id} waits for the event “${(w && w.wait_for_event && w.wait_for_event.event) || '?'}”.`),
      r.error && el('p', { class: 'error' }, r.error),
      el('h2', {}, 'Steps'),
      r.steps.length ? el('table', { class: 'steps' },
        el('thead', {}, el('tr', {}, ['Step', 'Status', 'Attempts', 'Started', 'Took', 'Tokens', 'Cost', 'Output'].map((h) =>
          el('th', { class: ['Attempts', 'Took', 'Tokens', 'Cost'].includes(h) ? 'num' : '' }, h)))),
        el('tbody', {}, r.steps.map((s) => {
          const su = s.usage || {};
          return el('tr', { 'data-step': s.key || s.id },
            el('td', { class: 'mono' }, s.key || s.id),
            el('td', {}, el('span', { class: badgeClass(s.status) }, s.status)),
            el('td', { class: 'num' }, num(s.attempts)),
            el('td', {}, when(s.started_at)),
            el('td', { class: 'num' }, duration(ms(s.started_at, s.ended_at))),
            el('td', { class: 'num' }, s.usage ? `${num(su.input_tokens)} in · ${num(su.output_tokens)} out` : ''),
            el('td', { class: 'num' }, s.usage ? usd(su.cost_usd) : ''),
            el('td', { class: 'output' },
              s.error && el('div', { class: 'error-text' }, s.error),
              s.output !== null && s.output !== undefined && el('details', { class: 'block' },
                el('summary', {}, outputSummary(s.output)), el('pre', {}, json(s.output)))));
        }))) : el('p', { class: 'muted' }, 'No step has run yet.'),
      el('h2', {}, 'Input and output'),
      el('div', { class: 'io' }, el('div', {}, el('b', {}, 'Input'), el('pre', {}, json(r.input))),
        el('div', {}, el('b', {}, 'Output'), el('pre', { class: 'run-output' }, json(r.output)))));
    return final(r.status);
  };
  poll(load, 1000);
  refresh = () => load();
}

// outputSummary is a step output's first characters, for its folded line.
function outputSummary(v) {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s.length > 60 ? s.slice(0, 60) + '…' : s;
}

// ---- tools -----------------------------------------------------------------

async function toolsPage() {
  render(main, el('h1', {}, 'Tools'), el('p', { class: 'muted' }, 'Loading…'));
  let r;
  try { r = await api('GET', '/v1/tools'); } catch (e) { return fail(main, e); }
  if (!r.servers.length) {
    return render(main, el('h1', {}, 'Tools'), el('p', { class: 'muted' }, 'No MCP server is configured (LAMBDAGENT_MCP_CONFIG).'));
  }
  render(main, el('h1', {}, 'Tools'), r.servers.map((s) => el('section', { class: 'card server' },
    el('h2', {}, s.name, ' ', el('span', { class: 'badge ' + (s.state === 'connected' ? 'ok' : 'down') }, s.state), ' ', el('span', { class: 'badge' }, s.type)),
    s.tools.length ? s.tools.map((t) => el('details', { class: 'block' },
      el('summary', {}, el('b', { class: 'mono' }, t.name), t.description ? ' — ' + t.description : ''),
      el('pre', {}, json(t.input_schema)))) : el('p', { class: 'muted' }, 'No tools listed.'))));
}

// ---- usage -----------------------------------------------------------------

async function usagePage() {
  const to = new Date();
  const from = new Date(to.getTime() - 29 * 864e5);
  const fromIn = el('input', { type: 'date', value: isoDay(from), 'aria-label': 'From' });
  const toIn = el('input', { type: 'date', value: isoDay(to), 'aria-label': 'To' });
  const metric = el('select', { 'aria-label': 'Chart' }, el('option', { value: 'cost' }, 'Cost'), el('option', { value: 'tokens' }, 'Tokens'));
  const box = el('div');
  const load = async () => {
    let r;
    try { r = await api('GET', `/v1/usage?from=${enc(fromIn.value)}&to=${enc(toIn.value)}` + tenantQuery()); } catch (e) { return fail(box, e); }
    const days = [];
    for (let d = new Date(r.from + 'T00:00:00Z'); isoDay(d) <= r.to; d = new Date(d.getTime() + 864e5)) days.push(isoDay(d));
    const byDay = Object.fromEntries(days.map((d) => [d, { cost: 0, tokens: 0 }]));
    const tenants = new Set();
    let cost = 0, input = 0, output = 0;
    for (const row of r.days) {
      const c = row.counters || {};
      const t = (c.input_tokens || 0) + (c.output_tokens || 0) + (c.cache_read_input_tokens || 0) + (c.cache_creation_input_tokens || 0);
      if (byDay[row.date]) { byDay[row.date].cost += row.cost_usd; byDay[row.date].tokens += t; }
      tenants.add(row.tenant);
      cost += row.cost_usd; input += c.input_tokens || 0; output += c.output_tokens || 0;
    }
    render(box,
      el('div', { class: 'stats' }, stat(usd(cost), 'cost'), stat(num(input), 'input tokens'), stat(num(output), 'output tokens'), stat(num(tenants.size), tenants.size === 1 ? 'tenant' : 'tenants')),
      chart(days.map((d) => ({ label: d, value: byDay[d][metric.value] })), metric.value === 'cost' ? usd : num),
      el('h2', {}, 'Per day'),
      r.days.length ? el('table', {},
        el('thead', {}, el('tr', {}, ['Date', 'Tenant'].map((h) => el('th', {}, h)),
          ['Input', 'Output', 'Cache read', 'Cache write', 'Model calls', 'Cost'].map((h) => el('th', { class: 'num' }, h)))),
        el('tbody', {}, r.days.slice().reverse().map((row) => {
          const c = row.counters || {};
          return el('tr', {}, el('td', {}, row.date), el('td', {}, row.tenant),
            [c.input_tokens, c.output_tokens, c.cache_read_input_tokens, c.cache_creation_input_tokens, c.model_calls].map((n) => el('td', { class: 'num' }, num(n))),
            el('td', { class: 'num' }, usd(row.cost_usd)));
        }))) : el('p', { class: 'muted' }, 'No usage in these days.'));
  };
  for (const i of [fromIn, toIn, metric]) i.addEventListener('change', load);
  const picker = await tenantPicker('every tenant');
  render(main, el('h1', {}, 'Usage'), el('div', { class: 'toolbar' }, 'From', fromIn, 'to', toIn, metric, picker), box);
  load();
}

// chart draws bars as inline SVG: no library.
function chart(points, fmt) {
  const W = 900, H = 260, L = 70, B = 28, T = 14;
  const max = Math.max(...points.map((p) => p.value), 0) || 1;
  const bw = (W - L - 10) / Math.max(points.length, 1);
  const s = svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'Usage per day' });
  s.append(svg('line', { class: 'axis', x1: L, y1: H - B, x2: W - 5, y2: H - B }), svg('line', { class: 'axis', x1: L, y1: T, x2: L, y2: H - B }));
  for (const f of [0, 0.5, 1]) {
    const y = H - B - f * (H - B - T);
    s.append(svg('text', { x: L - 6, y: y + 4, 'text-anchor': 'end' }, fmt(max * f)));
  }
  points.forEach((p, i) => {
    const h = (p.value / max) * (H - B - T);
    const x = L + i * bw + bw * 0.15;
    s.append(svg('rect', { class: 'bar', x, y: H - B - h, width: Math.max(bw * 0.7, 1), height: Math.max(h, p.value > 0 ? 1 : 0) },
      svg('title', {}, `${p.label}: ${fmt(p.value)}`)));
    if (points.length <= 14 || i % Math.ceil(points.length / 10) === 0) {
      s.append(svg('text', { x: x + bw * 0.35, y: H - B + 16, 'text-anchor': 'middle' }, p.label.slice(5)));
    }
  });
  return s;
}
