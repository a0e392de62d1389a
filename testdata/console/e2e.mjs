// The console's end-to-end test in a real browser, run by
// cmd/lambdagent/console_e2e_test.go against `lambdagent dev` with a real
// MCP server (server-everything over stdio). It drives Debian's Chromium
// headless with playwright-core (pinned in package.json), and exits
// non-zero with the failed step's message.
//
// Environment: CONSOLE_URL, API_KEY, CHROMIUM (the browser), SHOTS (a
// folder for the screenshots).
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
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  // The wrong key's 401 is logged by the browser: that one is expected.
  page.on('console', (m) => { if (m.type() === 'error' && !m.text().includes('status of 401')) problems.push('console error: ' + m.text()); });
  // No request of the page carries a cookie or the key in its URL.
  page.on('request', (req) => {
    const h = req.headers();
    if (h.cookie) problems.push('a request carried a cookie: ' + req.url());
    if (req.url().includes(key)) problems.push('the key is in a URL: ' + req.url());
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

  step = 'chat: Enter sends a message and the answer shows';
  await page.click('nav a[data-page=chat]');
  const box = page.getByLabel('Message');
  await box.fill('[[tool echo {"message":"hi from the console"}]] and [[tool get-sum {"a":2,"b":3}]]');
  await box.press('Enter');
  await expectText(page.locator('.bubble.answer'), 'tool results: echo=Echo: hi from the console; get-sum=The sum of 2 and 3 is 5.');
  await expectText(page.locator('.chat .meta'), '$');
  await box.fill('and thank you');
  await box.press('Enter');
  await expectText(page.locator('.bubble.answer'), 'echo: and thank you');
  await shot('chat');

  step = 'the session shows the tool call folded, with its result, tokens and cost';
  await page.locator('.chat .meta a').first().click();
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

  step = 'workflow runs: a place for #16';
  await page.click('nav a[data-page=workflows]');
  await expectText(page.locator('main'), '#16');

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
