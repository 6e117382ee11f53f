// Real-browser test of the parley visitor widget.
//
// Run by the Rust integration test as `node tests/browser/widget_flow.mjs` with:
//   HOST_PAGE_URL  a page on another origin that embeds <script src="{PARLEY_URL}/widget.js" async>
//   PARLEY_URL     the parley server
//   CONTROL_URL    the Rust test's control server (POST /accept, POST /operator-message {text})
//   SCREENSHOT_DIR where widget-prechat.png and widget-chat.png are written
//   CHROMIUM       optional path of the browser (default /usr/bin/chromium, Debian's; never downloaded)
// Prints one line per step passed; exits 0 on success, 1 on the first failed assertion.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

const HOST_PAGE_URL = mustEnv('HOST_PAGE_URL');
const PARLEY_URL = mustEnv('PARLEY_URL');
const CONTROL_URL = mustEnv('CONTROL_URL').replace(/\/+$/, '');
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR || path.join(path.dirname(new URL(import.meta.url).pathname), 'artifacts');
const OVERALL_TIMEOUT_MS = 60_000;
const WAIT_MS = 15_000;

// German texts the widget must show (keep in sync with I18N.de in assets/widget.js).
const DE = { launcher: 'Chat öffnen', startChat: 'Chat starten', message: 'Nachricht' };

function mustEnv(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`FAIL: environment variable ${name} is not set`);
    process.exit(1);
  }
  return v;
}

class AssertionFailed extends Error {}

let browser;
let passed = 0;
const problems = []; // page errors and dialogs: fail the step that is running when checked

function step(n, text) {
  passed++;
  console.log(`ok ${n} - ${text}`);
}

function assert(cond, message) {
  if (!cond) throw new AssertionFailed(message);
}

function checkProblems() {
  if (problems.length) throw new AssertionFailed(problems.join('; '));
}

// Polls fn until it returns a truthy value (Playwright-style auto-waiting for values).
async function until(message, fn, timeout = WAIT_MS) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) {
      const detail = last instanceof Error ? last.message.split('\n')[0] : `last seen: ${JSON.stringify(last)}`;
      throw new AssertionFailed(`${message} (${detail})`);
    }
    await new Promise((r) => setTimeout(r, 100)); // poll interval, not a fixed wait
  }
}

async function control(pathname, body) {
  let res;
  let text;
  try {
    res = await fetch(`${CONTROL_URL}${pathname}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body || {}),
      signal: AbortSignal.timeout(20_000),
    });
    text = await res.text();
  } catch (e) {
    throw new AssertionFailed(`control request POST ${CONTROL_URL}${pathname} failed: ${e.cause?.message || e.message}`);
  }
  let data = null;
  try {
    data = JSON.parse(text);
  } catch (_) {
    /* checked below */
  }
  assert(res.ok && data && data.ok === true, `control ${pathname} failed: HTTP ${res.status} ${text.slice(0, 300)}`);
  return data;
}

const tid = (page, id) => page.locator(`[data-testid="${id}"]`);

// Reads every message element of the widget (Playwright CSS selectors pierce the open shadow root).
async function readMessages(page) {
  return page.locator('[data-testid="message"]').evaluateAll((els) =>
    els.map((el) => ({
      id: el.getAttribute('data-id'),
      sender: el.getAttribute('data-sender'),
      state: el.getAttribute('data-state'),
      text: el.textContent.replace(/\s+/g, ' ').trim(),
    }))
  );
}

function assertNoDuplicateIds(msgs, where) {
  const ids = msgs.map((m) => m.id).filter(Boolean);
  assert(new Set(ids).size === ids.length, `${where}: duplicate message ids in the widget: ${ids.join(',')}`);
}

async function newPage(context) {
  const page = await context.newPage();
  page.on('dialog', async (d) => {
    problems.push(`a JavaScript dialog appeared (${d.type()}: ${d.message()}) — operator content ran script`);
    await d.dismiss().catch(() => {});
  });
  page.on('pageerror', (e) => problems.push(`uncaught error in the page: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') console.error(`  [browser console] ${m.text()}`);
  });
  return page;
}

async function main() {
  assert(new URL(HOST_PAGE_URL).origin !== new URL(PARLEY_URL).origin, 'HOST_PAGE_URL must be on another origin than PARLEY_URL');
  fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });

  // ---------------------------------------------------------------- English flow
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'en-US' });
  context.setDefaultTimeout(WAIT_MS);
  const page = await newPage(context);

  // 1. launcher, online status, pre-chat form
  await page.goto(HOST_PAGE_URL, { waitUntil: 'load' });
  const launcher = tid(page, 'launcher');
  await launcher.waitFor({ state: 'visible' }).catch(() => {
    throw new AssertionFailed('step 1: the widget launcher did not appear on the host page');
  });
  await launcher.click();
  await tid(page, 'panel').waitFor({ state: 'visible' }).catch(() => {
    throw new AssertionFailed('step 1: clicking the launcher did not open the panel');
  });
  await until('step 1: the status indicator should show online (data-online="true")', async () =>
    (await tid(page, 'status').getAttribute('data-online')) === 'true'
  );
  await tid(page, 'prechat-form').waitFor({ state: 'visible' }).catch(() => {
    throw new AssertionFailed('step 1: the pre-chat form is not shown while online');
  });
  await tid(page, 'prechat-name').fill('Erika Visitor');
  await tid(page, 'prechat-email').fill('erika@example.com');
  await tid(page, 'prechat-message').fill('Hello, I need help with my order');
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, 'widget-prechat.png'), animations: 'disabled' });
  checkProblems();
  step(1, 'launcher opens the panel, status is online, pre-chat form filled (widget-prechat.png)');

  // 2. start the chat
  await tid(page, 'prechat-submit').click();
  await until('step 2: the visitor message "Hello, I need help with my order" should appear in the message list', async () =>
    (await readMessages(page)).some((m) => m.sender === 'visitor' && m.text.includes('Hello, I need help with my order'))
  );
  await until('step 2: the chat status should be "pending"', async () => (await tid(page, 'chat-status').getAttribute('data-status')) === 'pending');
  checkProblems();
  step(2, 'chat started: visitor message shown, status pending');

  // 3. an operator accepts
  const accepted = await control('/accept');
  const opName = accepted.operator || 'Alice Operator';
  await until(`step 3: the header should show the operator name "${opName}"`, async () => {
    const el = tid(page, 'operator-name');
    return (await el.isVisible()) && (await el.textContent()).includes(opName);
  });
  await until('step 3: the chat status should become "active"', async () => (await tid(page, 'chat-status').getAttribute('data-status')) === 'active');
  checkProblems();
  step(3, `operator accepted: header shows "${opName}", status active`);

  // 4. operator Markdown is rendered safely
  await control('/operator-message', { text: 'Hi Erika, **sure** — what is the order number? <img src=x onerror=alert(1)>' });
  const opMsg = page.locator('[data-testid="message"][data-sender="operator"]', { hasText: 'what is the order number' });
  await until('step 4: the operator message should appear in the widget', async () => (await opMsg.count()) === 1);
  await until('step 4: "sure" should be rendered bold (a <strong> element)', async () =>
    (await opMsg.locator('strong').allTextContents()).some((s) => s.trim() === 'sure')
  );
  assert((await opMsg.locator('img').count()) === 0, 'step 4: the operator message must not contain an <img> element (raw HTML was not neutralised)');
  checkProblems();
  step(4, 'operator message rendered: **sure** is <strong>, no <img>, no script ran');

  // 5. the visitor answers
  await tid(page, 'composer').fill('It is 12345');
  await tid(page, 'composer').press('Enter');
  await until('step 5: "It is 12345" should be stored (a message with an id) and shown exactly once', async () => {
    const mine = (await readMessages(page)).filter((m) => m.text.includes('It is 12345'));
    return mine.length === 1 && mine[0].sender === 'visitor' && !!mine[0].id;
  });
  assert((await tid(page, 'composer').inputValue()) === '', 'step 5: the composer should be empty after sending');
  assertNoDuplicateIds(await readMessages(page), 'step 5');
  checkProblems();
  step(5, 'visitor message "It is 12345" sent and shown once');

  // 6. unread badge while minimised
  await tid(page, 'minimise').click();
  await tid(page, 'panel').waitFor({ state: 'hidden' }).catch(() => {
    throw new AssertionFailed('step 6: the minimise button did not hide the panel');
  });
  await control('/operator-message', { text: 'Thanks!' });
  await until('step 6: the launcher badge should show 1 unread message', async () => {
    const badge = tid(page, 'badge');
    return (await badge.isVisible()) && (await badge.textContent()).trim() === '1';
  });
  await launcher.click();
  await tid(page, 'panel').waitFor({ state: 'visible' });
  await until('step 6: the badge should disappear when the panel is opened', async () => !(await tid(page, 'badge').isVisible()));
  {
    // "Thanks!" came through the socket after the echo of "It is 12345": it must still be there once.
    const msgs = await readMessages(page);
    assert(msgs.filter((m) => m.text.includes('It is 12345')).length === 1, 'step 6: "It is 12345" is shown more than once');
    assert(msgs.some((m) => m.sender === 'operator' && m.text.includes('Thanks!')), 'step 6: "Thanks!" is not shown after opening');
    assertNoDuplicateIds(msgs, 'step 6');
  }
  checkProblems();
  step(6, 'minimised: badge shows 1 for a new operator message and clears on open');

  // 7. reload: the chat resumes
  await page.reload({ waitUntil: 'load' });
  await tid(page, 'panel').waitFor({ state: 'visible' }).catch(() => {
    throw new AssertionFailed('step 7: after reload the panel should still be open (state kept in sessionStorage)');
  });
  const expected = [
    ['visitor', 'Hello, I need help with my order'],
    ['operator', 'what is the order number'],
    ['visitor', 'It is 12345'],
    ['operator', 'Thanks!'],
  ];
  let resumed;
  await until('step 7: after reload the 2 visitor and 2 operator messages should be shown', async () => {
    resumed = await readMessages(page);
    const v = resumed.filter((m) => m.sender === 'visitor').length;
    const o = resumed.filter((m) => m.sender === 'operator').length;
    return v === 2 && o === 2 && resumed.every((m) => m.id);
  });
  {
    const nonSystem = resumed.filter((m) => m.sender !== 'system');
    expected.forEach(([sender, text], i) => {
      assert(
        nonSystem[i] && nonSystem[i].sender === sender && nonSystem[i].text.includes(text),
        `step 7: message ${i + 1} should be ${sender} "${text}", got ${JSON.stringify(nonSystem[i])}`
      );
    });
    const ids = resumed.map((m) => Number(m.id));
    assert(ids.every((id, i) => i === 0 || id > ids[i - 1]), `step 7: messages are not in id order: ${ids.join(',')}`);
    assertNoDuplicateIds(resumed, 'step 7');
  }
  await until(`step 7: the operator name "${opName}" should be shown after reload`, async () => {
    const el = tid(page, 'operator-name');
    return (await el.isVisible()) && (await el.textContent()).includes(opName);
  });
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, 'widget-chat.png'), animations: 'disabled' });
  checkProblems();
  step(7, `reload resumes the chat: ${resumed.length} messages in order, no duplicates, operator shown (widget-chat.png)`);

  // 8. the visitor ends the chat
  await tid(page, 'close-chat').click();
  await tid(page, 'confirm-close').click();
  await until('step 8: the composer should be disabled after the chat is closed', async () => tid(page, 'composer').isDisabled());
  await until('step 8: a "Start a new chat" button should be shown', async () => tid(page, 'new-chat').isVisible());
  await until('step 8: the chat status should be "closed"', async () => (await tid(page, 'chat-status').getAttribute('data-status')) === 'closed');
  checkProblems();
  step(8, 'visitor closed the chat: composer disabled, "Start a new chat" shown');
  await context.close();

  // ---------------------------------------------------------------- German
  const de = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'de-DE' });
  de.setDefaultTimeout(WAIT_MS);
  const dePage = await newPage(de);
  await dePage.goto(HOST_PAGE_URL, { waitUntil: 'load' });
  const deLauncher = tid(dePage, 'launcher');
  await deLauncher.waitFor({ state: 'visible' });
  const label = await deLauncher.getAttribute('aria-label');
  assert(label === DE.launcher, `step 9: launcher aria-label should be "${DE.launcher}", got "${label}"`);
  await deLauncher.click();
  await tid(dePage, 'prechat-form').waitFor({ state: 'visible' }).catch(() => {
    throw new AssertionFailed('step 9: the pre-chat form is not shown (is parley online?)');
  });
  const submitText = (await tid(dePage, 'prechat-submit').textContent()).trim();
  assert(submitText === DE.startChat, `step 9: the pre-chat submit button should read "${DE.startChat}", got "${submitText}"`);
  const lang = await tid(dePage, 'panel').getAttribute('lang');
  assert(lang === 'de', `step 9: the panel should have lang="de", got "${lang}"`);
  const labels = await dePage.locator('[data-testid="prechat-form"] label').allTextContents();
  assert(labels.includes(DE.message), `step 9: the pre-chat form should have the label "${DE.message}", got ${JSON.stringify(labels)}`);
  checkProblems();
  step(9, `German locale: launcher "${label}", submit button "${submitText}"`);
  await de.close();
}

const overall = setTimeout(async () => {
  console.error(`FAIL: the widget flow did not finish within ${OVERALL_TIMEOUT_MS / 1000} s (${passed} steps passed)`);
  await browser?.close().catch(() => {});
  process.exit(1);
}, OVERALL_TIMEOUT_MS);

let code = 0;
try {
  await main();
  console.log(`widget_flow: ${passed} passed, 0 failed`);
} catch (e) {
  code = 1;
  console.error(`FAIL: ${e instanceof AssertionFailed ? e.message : e.stack || e}`);
  console.log(`widget_flow: ${passed} passed, 1 failed`);
} finally {
  clearTimeout(overall);
  await browser?.close().catch(() => {});
}
process.exit(code);
