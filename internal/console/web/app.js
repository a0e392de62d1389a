// lambdagent console: a hash router and one function per page. Every
// request goes through api.js to the public HTTP API.
import { api, APIError, enc, getKey, setKey, clearKey } from './api.js';
import { el, svg, render, num, usd, when, json, confirmDialog } from './ui.js';

const main = document.getElementById('main');

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
  login.close();
  updateWho();
  route();
});
document.getElementById('login-cancel').addEventListener('click', () => login.close());
document.getElementById('signout').addEventListener('click', () => {
  clearKey();
  updateWho();
  showLogin('');
  route();
});

function updateWho() {
  document.getElementById('who').textContent = getKey() === null ? 'not signed in' : 'signed in';
}

// fail shows an error in place of a page; a refused key asks for another.
function fail(root, e) {
  if (e instanceof APIError && e.status === 401) {
    clearKey();
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
  tools: toolsPage,
  usage: usagePage,
};

function route() {
  const [, name = 'sessions', ...rest] = location.hash.split('/');
  const arg = rest.length ? decodeURIComponent(rest.join('/')) : '';
  for (const a of document.querySelectorAll('#nav a')) {
    a.classList.toggle('active', a.dataset.page === name || (name === 'session' && a.dataset.page === 'sessions'));
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
  render(main, el('h1', {}, 'Sessions'),
    el('div', { class: 'toolbar' }, search, el('button', { onclick: go }, 'Search'),
      el('a', { href: '#/chat' }, 'New chat')),
    box);
  const cursors = [''];
  const load = async () => {
    const cursor = cursors[cursors.length - 1];
    let q = '/v1/sessions?limit=20';
    if (prefix) q += '&prefix=' + enc(prefix);
    if (cursor) q += '&cursor=' + enc(cursor);
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
        el('td', {}, el('button', { class: 'small', 'aria-label': 'Delete ' + s.session_id, onclick: () => remove(s.session_id, load) }, 'Delete')));
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
  try { s = await api('GET', '/v1/sessions/' + enc(id)); } catch (e) { return fail(main, e); }
  const c = s.counters || {};
  const head = el('div', { class: 'toolbar' },
    el('h1', {}, 'Session ', el('span', { class: 'mono' }, s.session_id)),
    el('a', { href: '#/chat/' + enc(s.session_id) }, 'Continue in Chat'),
    el('button', { onclick: () => remove(s.session_id, () => { location.hash = '#/sessions'; }) }, 'Delete'));
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

// sendTurn posts one turn and returns its answer. The streaming API (#15)
// replaces this with a stream that shows the answer and each tool call as
// they come; the page calls it through chatTransport so that only this
// changes.
async function sendTurn(sessionId, message, onEvent) {
  const ans = await api('POST', '/v1/sessions/' + enc(sessionId) + '/turns', { message }, { 'Idempotency-Key': crypto.randomUUID() });
  onEvent({ type: 'answer', answer: ans });
  return ans;
}
export const chatTransport = { send: sendTurn };

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
    const pending = el('div', { class: 'bubble assistant pending' }, 'Claude is answering…');
    log.append(pending);
    log.scrollTop = log.scrollHeight;
    try {
      const ans = await chatTransport.send(sessionId, text, () => {});
      const u = ans.usage || {};
      pending.replaceWith(el('div', { class: 'bubble assistant answer' }, ans.response || '(empty answer)'),
        el('div', { class: 'meta' }, `turn ${ans.turn} · ${num(u.input_tokens)} in · ${num(u.output_tokens)} out · ${usd(u.cost_usd)} · ${ans.model_calls} model call${ans.model_calls === 1 ? '' : 's'} · `,
          el('a', { href: '#/session/' + enc(sessionId) }, 'open the transcript')));
    } catch (e) {
      // A refusal here (the admin token runs no turn) keeps the key: the
      // other pages may still accept it.
      pending.replaceWith(el('p', { class: 'error', role: 'alert' }, e.message));
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
    log, form));
  box.focus();
}

// ---- workflow runs ---------------------------------------------------------

function workflowsPage() {
  // Filled in with the workflows issue (#16): runs by workflow and status,
  // a run's steps, send an event, cancel.
  render(main, el('h1', {}, 'Workflow runs'),
    el('p', { class: 'notice' }, 'Workflow runs appear here once workflows (#16) are in this deployment.'));
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

const isoDay = (d) => d.toISOString().slice(0, 10);

async function usagePage() {
  const to = new Date();
  const from = new Date(to.getTime() - 29 * 864e5);
  const fromIn = el('input', { type: 'date', value: isoDay(from), 'aria-label': 'From' });
  const toIn = el('input', { type: 'date', value: isoDay(to), 'aria-label': 'To' });
  const metric = el('select', { 'aria-label': 'Chart' }, el('option', { value: 'cost' }, 'Cost'), el('option', { value: 'tokens' }, 'Tokens'));
  const box = el('div');
  const load = async () => {
    let r;
    try { r = await api('GET', `/v1/usage?from=${enc(fromIn.value)}&to=${enc(toIn.value)}`); } catch (e) { return fail(box, e); }
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
  render(main, el('h1', {}, 'Usage'), el('div', { class: 'toolbar' }, 'From', fromIn, 'to', toIn, metric), box);
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
