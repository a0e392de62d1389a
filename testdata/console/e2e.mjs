// The console's end-to-end test in a real browser, run by
// cmd/lambdagent/console_e2e_test.go against `lambdagent dev` with a real
// MCP server (server-everything over stdio). It drives Debian's Chromium
// headless with playwright-core (pinned in package.json), and exits
// non-zero with the failed step's message.
//
// Environment: CONSOLE_URL, API_KEY, ADMIN_TOKEN, CHROMIUM (the browser), SHOTS (a
// folder for the screenshots). The server runs the workflow of
// approval.yaml and a simulator that spreads each reply over a second or
// more (LAMBDAGENT_SIM_LATENCY), so that an answer can be seen arriving.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const url = process.env.CONSOLE_URL;
const key = process.env.API_KEY;
const shots = process.env.SHOTS;
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-dev-shm-usage'],
});
let step = 'start';
const problems = [];
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1 });
  // The first turn of a session named drop-… loses its connection after
  // two text deltas: the page must resume the stream where it stopped.
  await context.addInitScript(() => {
    const real = window.fetch;
    let dropped = false;
    window.fetch = async (input, init) => {
      const res = await real(input, init);
      if (dropped || !String(input).includes('/v1/sessions/drop-') || !init || init.method !== 'POST') return res;
      dropped = true;
      const reader = res.body.getReader();
      let seen = '', cut = false;
      const body = new ReadableStream({
        async pull(c) {
          if (cut) {
            await reader.cancel(); // the real connection closes too
            c.error(new TypeError('network error (the test cut the connection)'));
            return;
          }
          const { value, done } = await reader.read();
          if (done) return c.close();
          seen += new TextDecoder().decode(value);
          c.enqueue(value);
          cut = (seen.match(/event: text_delta/g) || []).length >= 2;
        },
      });
      return new Response(body, { status: res.status, headers: res.headers });
    };
  });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  // The wrong key's 401 is logged by the browser: that one is expected.
  page.on('console', (m) => { if (m.type() === 'error' && !m.text().includes('status of 401')) problems.push('console error: ' + m.text()); });
  // No request of the page carries a cookie or the key in its URL.
  const resumes = [];
  page.on('request', (req) => {
    const h = req.headers();
    if (req.url().includes('/v1/streams/')) resumes.push(h['last-event-id']);
    if (h.cookie) problems.push('a request carried a cookie: ' + req.url());
    if (req.url().includes(key) || req.url().includes(process.env.ADMIN_TOKEN)) problems.push('a key is in a URL: ' + req.url());
  });
  const shot = (name) => page.screenshot({ path: join(shots, name + '.png') });
  const expectText = async (locator, text) => {
    await locator.filter({ hasText: text }).first().waitFor({ state: 'visible' });
  };

  step = 'a wrong key is refused with a visible message';
  await page.goto(url);
  await page.locator('#login').waitFor({ state: 'visible' });
  await page.fill('#key', 'lga_not-a-real-key-at-all');
  await page.keyboard.press('Enter');
  await expectText(page.locator('#login-error'), 'Key refused');
  await shot('login-refused');

  step = 'the right key signs in';
  await page.fill('#key', key);
  await page.keyboard.press('Enter');
  await page.locator('#login').waitFor({ state: 'hidden' });
  await expectText(page.locator('#who'), 'signed in');

  step = 'the SSE parser: events split across reads, CRLF, comments, multi-line data, a character split in two';
  const parsed = await page.evaluate(async () => {
    const { readSSE } = await import('./api.js');
    const enc = new TextEncoder();
    const snow = enc.encode('☃'); // three bytes, cut after the first
    const parts = [enc.encode('id: 1\r\nevent: turn_start\r\ndata: {"a"'), enc.encode(':1}\r\n\r\n: a comment\n'),
      enc.encode('id: 2\nevent: text_delta\ndata: line one\ndata: line two '), snow.slice(0, 1), snow.slice(1), enc.encode('\n\n'),
      enc.encode('id: 3\nevent: turn_end\ndata: {}\n\nid: 4\nevent: late\ndata: after the end\n\n')];
    const body = new ReadableStream({ start(c) { for (const p of parts) c.enqueue(p); c.close(); } });
    const got = [];
    const ended = await readSSE(body, (ev) => { got.push(ev); return ev.event === 'turn_end'; });
    return { ended, got };
  });
  const want = { ended: true, got: [{ id: '1', event: 'turn_start', data: '{"a":1}' }, { id: '2', event: 'text_delta', data: 'line one\nline two ☃' }, { id: '3', event: 'turn_end', data: '{}' }] };
  if (JSON.stringify(parsed) !== JSON.stringify(want)) throw new Error('readSSE gave ' + JSON.stringify(parsed));

  step = 'chat: Enter sends a message; tool calls show as they start and end';
  await page.click('nav a[data-page=chat]');
  const box = page.getByLabel('Message');
  await page.evaluate(() => {
    // When each tool call and the answer appeared, by the page's clock.
    window.seen = [];
    new MutationObserver((recs) => {
      const t = performance.now();
      for (const r of recs) {
        for (const n of r.addedNodes || []) if (n.classList && n.classList.contains('tool_call')) window.seen.push({ t, what: 'tool ' + n.querySelector('b').textContent });
        if (r.type === 'attributes' && r.target.classList.contains('answer') && !(r.oldValue || '').includes('answer')) window.seen.push({ t, what: 'answer' });
      }
    }).observe(document.getElementById('main'), { subtree: true, childList: true, attributes: true, attributeFilter: ['class'], attributeOldValue: true });
  });
  await box.fill('[[tool echo {"message":"hi from the console"}]] and [[tool get-sum {"a":2,"b":3}]]');
  await box.press('Enter');
  await expectText(page.locator('.bubble.answer'), 'tool results: echo=Echo: hi from the console; get-sum=The sum of 2 and 3 is 5.');
  await expectText(page.locator('.chat .meta'), '$');
  for (const name of ['echo', 'get-sum']) {
    await expectText(page.locator('.bubble.answer details.tool_call.done'), name);
  }
  await expectText(page.locator('.bubble.answer details.tool_call .state'), 'done in');
  const seen = await page.evaluate(() => window.seen);
  const at = (what) => (seen.find((x) => x.what === what) || {}).t;
  if (!(at('answer') - at('tool echo') > 500)) throw new Error('the tool call did not show well before the answer: ' + JSON.stringify(seen));

  step = 'chat: the answer streams in: part of it shows before the turn ends';
  await box.fill('Please stream this long message back to me piece by piece, so that the console shows it arriving in parts before the turn ends.');
  await box.press('Enter');
  const partial = await (await page.waitForFunction(() => {
    const b = [...document.querySelectorAll('.bubble.assistant')].pop();
    const t = b && b.querySelector('.text');
    return b && b.classList.contains('streaming') && t && t.textContent.length > 0 && t.textContent;
  }, null, { polling: 'raf' })).jsonValue();
  await shot('chat-streaming');
  const whole = page.locator('.bubble.answer').last();
  await expectText(whole, 'before the turn ends');
  const final = await whole.locator('.text').last().textContent();
  if (!(partial.length < final.length && final.startsWith(partial))) throw new Error(`partial text ${JSON.stringify(partial)} is not a beginning of ${JSON.stringify(final)}`);
  console.log(`console e2e: streamed: saw ${partial.length} of ${final.length} characters before turn_end`);
  await box.fill('and thank you');
  await box.press('Enter');
  await expectText(page.locator('.bubble.answer'), 'echo: and thank you');
  await shot('chat');
  const chatID = await page.locator('.chat .toolbar a.mono').textContent();

  step = 'chat: a dropped connection resumes from the last event';
  await page.goto(url + '#/chat/drop-1');
  await page.getByLabel('Message').fill('this answer loses its connection halfway and comes back whole, without a piece twice');
  await page.getByLabel('Message').press('Enter');
  const resumed = page.locator('.bubble.answer').last();
  await expectText(resumed, 'without a piece twice');
  const text = await resumed.locator('.text').last().textContent();
  if (!text.startsWith('echo: this answer loses') || text.split('without a piece twice').length !== 2) throw new Error('the resumed answer is ' + JSON.stringify(text));
  if (!resumes.length || !(Number(resumes[0]) >= 3)) throw new Error('no resume with Last-Event-ID after the first events: ' + JSON.stringify(resumes));
  console.log(`console e2e: a dropped stream resumed with Last-Event-ID ${resumes[0]}`);

  step = 'the session shows the tool call folded, with its result, tokens and cost';
  await page.goto(url + '#/session/' + chatID);
  const use = page.locator('details.tool_use').filter({ hasText: 'echo' }).first();
  await use.waitFor({ state: 'visible' });
  if (await use.getAttribute('open') !== null) throw new Error('the tool_use block is not folded');
  await use.locator('summary').click();
  await expectText(use.locator('pre'), 'hi from the console');
  const result = page.locator('details.tool_result').first();
  if (await result.getAttribute('open') !== null) throw new Error('the tool_result block is not folded');
  await result.locator('summary').click();
  await expectText(result.locator('pre'), 'Echo: hi from the console');
  const turn1 = page.locator('section.turn').first();
  await expectText(turn1.locator('header .tokens'), ' in · ');
  await expectText(turn1.locator('header .cost'), '$');
  await expectText(turn1.locator('header .request-id'), 'req_');
  await expectText(turn1.locator('header .latency'), 'model');
  await expectText(page.locator('details.pinned summary'), 'tools');
  await shot('session');
  await page.getByRole('link', { name: 'Continue in Chat' }).click();
  await expectText(page.locator('.bubble.history.user'), 'and thank you');
  await expectText(page.locator('.bubble.history.assistant'), 'echo: and thank you');
  await expectText(page.locator('.chat .meta'), 'earlier in this session (3 turns)');

  step = 'sessions: the list shows the session; Esc keeps it, Delete removes it';
  await page.goto(url + '#/chat/to-delete');
  await page.getByLabel('Message').fill('a session to delete');
  await page.getByLabel('Message').press('Enter');
  await expectText(page.locator('.bubble.answer'), 'echo: a session to delete');
  await page.click('nav a[data-page=sessions]');
  await expectText(page.locator('table a'), 'to-delete');
  await shot('sessions');
  await page.getByRole('button', { name: 'Delete to-delete' }).click();
  await page.locator('#confirm').waitFor({ state: 'visible' });
  await page.keyboard.press('Escape');
  await page.locator('#confirm').waitFor({ state: 'hidden' });
  await expectText(page.locator('table a'), 'to-delete');
  await page.getByRole('button', { name: 'Delete to-delete' }).click();
  await page.click('#confirm-yes');
  await page.locator('table a', { hasText: 'to-delete' }).waitFor({ state: 'detached' });

  step = 'search by id prefix';
  await page.getByLabel('Search by session id').fill('chat-');
  await page.getByLabel('Search by session id').press('Enter');
  await page.locator('table a').first().waitFor();
  for (const t of await page.locator('table a').allTextContents()) {
    if (!t.startsWith('chat-')) throw new Error('search for chat- shows ' + t);
  }

  step = 'tools: the MCP server, its state and its tools';
  await page.click('nav a[data-page=tools]');
  await expectText(page.locator('section.server h2'), 'everything');
  await expectText(page.locator('section.server .badge.ok'), 'connected');
  await expectText(page.locator('section.server summary'), 'get-sum');
  await page.locator('section.server details').filter({ hasText: 'get-sum' }).first().locator('summary').click();
  await shot('tools');

  step = 'usage: a chart and the day\'s tokens and cost';
  await page.click('nav a[data-page=usage]');
  await page.locator('svg.chart').waitFor();
  await expectText(page.locator('table td'), '$');
  const tallest = await page.locator('svg.chart rect.bar').evaluateAll((rs) => Math.max(...rs.map((r) => Number(r.getAttribute('height')))));
  if (!(tallest > 100)) throw new Error('the chart has no bar for today (tallest ' + tallest + ')');
  await shot('usage');

  step = 'workflow runs: start a run; it waits for its event';
  await page.click('nav a[data-page=workflows]');
  await page.getByLabel('Workflow to start').selectOption('approval');
  if (await page.getByLabel('Run input (JSON)').inputValue() !== '{"ticket":""}') throw new Error('the input is not drawn from the schema');
  await page.getByLabel('Run input (JSON)').fill('{"ticket":"T-7"}');
  await page.getByRole('button', { name: 'Start', exact: true }).click();
  await expectText(page.locator('#run-status'), 'waiting');
  await expectText(page.locator('tr[data-step=lookup]'), 'completed');
  await expectText(page.locator('tr[data-step=approve]'), 'waiting');
  const runID = (await page.locator('main h1 .mono').textContent()).trim();
  if (await page.getByLabel('Event name').inputValue() !== 'approved') throw new Error('the event to send is not the one the run waits for');

  step = 'workflow runs: send the event; the run completes with its steps, output and cost';
  await page.getByLabel('Event body (JSON)').fill('{"by":"ada"}');
  await shot('run-waiting');
  await page.getByRole('button', { name: 'Send event' }).click();
  await expectText(page.locator('#run-status'), 'completed');
  await expectText(page.locator('tr[data-step=approve]'), 'completed');
  await expectText(page.locator('tr[data-step=summary]'), 'approved by ada');
  await expectText(page.locator('tr[data-step=summary] td.num'), '$');
  await expectText(page.locator('tr[data-step=summary] td.num'), ' in · ');
  if (!(await page.locator('.actions').isHidden())) throw new Error('a completed run still offers to send an event');
  await page.locator('tr[data-step=lookup] details summary').click();
  await expectText(page.locator('tr[data-step=lookup] details pre'), 'Echo: ticket T-7');
  await shot('run');

  step = 'workflow runs: cancel a waiting run';
  await page.click('nav a[data-page=workflows]');
  await page.getByLabel('Run input (JSON)').fill('{"ticket":"T-8"}');
  await page.getByRole('button', { name: 'Start', exact: true }).click();
  await expectText(page.locator('#run-status'), 'waiting');
  await page.getByRole('button', { name: 'Cancel run' }).click();
  await page.click('#confirm-yes');
  await expectText(page.locator('#run-status'), 'canceled');

  step = 'workflow runs: the list by workflow and status';
  await page.click('nav a[data-page=workflows]');
  await expectText(page.locator('table.runs'), runID);
  await expectText(page.locator('table.runs'), 'canceled');
  await page.getByLabel('Status').selectOption('completed');
  await expectText(page.locator('table.runs'), runID);
  await page.locator('table.runs td', { hasText: 'canceled' }).waitFor({ state: 'detached' });
  await page.getByLabel('Status').selectOption('');
  await page.locator('table.runs td', { hasText: 'canceled' }).first().waitFor();
  await shot('runs');

  step = 'the admin token picks a tenant on Sessions and Usage';
  await page.click('#signout');
  await page.fill('#key', process.env.ADMIN_TOKEN);
  await page.keyboard.press('Enter');
  await page.locator('#login').waitFor({ state: 'hidden' });
  await expectText(page.locator('#who'), 'admin');
  await page.click('nav a[data-page=sessions]');
  await expectText(page.locator('main'), 'No sessions yet'); // the default tenant has none
  await page.getByLabel('Tenant').fill('console');
  await page.getByLabel('Tenant').press('Enter');
  await expectText(page.locator('table a'), chatID);
  if (await page.getByRole('button', { name: /^Delete / }).count()) throw new Error('the admin, who writes nothing, is offered Delete');
  await page.locator('table a', { hasText: chatID }).click();
  await expectText(page.locator('main h1'), chatID);
  await expectText(page.locator('main .badge'), 'tenant console');
  await page.click('nav a[data-page=usage]');
  if (await page.getByLabel('Tenant').inputValue() !== 'console') throw new Error('the usage page forgot the tenant picked');
  await expectText(page.locator('table td'), 'console');
  await page.getByLabel('Tenant').fill('nobody');
  await page.getByLabel('Tenant').press('Enter');
  await expectText(page.locator('main'), 'No usage in these days');
  await page.click('nav a[data-page=workflows]');
  await expectText(page.locator('main .notice'), 'take an API key');
  await expectText(page.locator('#who'), 'admin'); // refused there, and still signed in

  step = 'sign out forgets the key';
  await page.click('#signout');
  if (await page.evaluate(() => sessionStorage.length) !== 0) throw new Error('sessionStorage still holds something after sign out');
  if ((await context.cookies()).length) throw new Error('the console set a cookie');
  if (problems.length) throw new Error(problems.join('\n'));
  console.log('console e2e: all steps passed');
} catch (e) {
  console.error(`console e2e: step "${step}" failed: ${e.message}`);
  if (problems.length) console.error(problems.join('\n'));
  process.exitCode = 1;
} finally {
  await browser.close();
}
