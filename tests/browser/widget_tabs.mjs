// One chat open in more tabs than parley keeps sockets for (PARLEY_MAX_SOCKETS_PER_CHAT=2 in
// the test): the oldest tab is told `replaced` and parks instead of reconnecting, so tabs never
// take the socket from each other in a loop; a parked tab takes a socket again when it gets focus.
// Run by tests/api/widget_tabs.rs with PAGE_URL (parley's demo page), CHAT_ID and CHAT_TOKEN.
import { chromium } from 'playwright-core';

const PAGE_URL = process.env.PAGE_URL;
const CRED = { id: process.env.CHAT_ID, token: process.env.CHAT_TOKEN };
const WAIT_MS = 15_000;
// The widget's first reconnect comes 0.5–1 s after a drop (BACKOFF_MIN_MS); three times that
// without a new socket shows there is no reconnect loop.
const QUIET_MS = 3_000;

function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

async function until(message, fn) {
  const deadline = Date.now() + WAIT_MS;
  while (!(await fn())) {
    if (Date.now() > deadline) fail(message);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Counts a page's live sockets and the frames that matter here. */
function track(page) {
  const t = { opened: 0, open: 0, ready: 0, replaced: 0 };
  page.on('websocket', (ws) => {
    if (!ws.url().includes('/live')) return;
    t.opened++;
    t.open++;
    ws.on('close', () => t.open--);
    ws.on('framereceived', (f) => {
      const text = String(f.payload);
      if (text.includes('"type":"ready"')) t.ready++;
      if (text.includes('"code":"replaced"')) t.replaced++;
    });
  });
  return t;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
});
const overall = setTimeout(() => fail('the flow took longer than 60 s'), 60_000);
try {
  const context = await browser.newContext();
  // Every tab resumes the same chat, as tabs of one site share localStorage.
  await context.addInitScript((cred) => localStorage.setItem('parley.chat', JSON.stringify(cred)), CRED);
  const pages = [];
  const tabs = [];
  for (let i = 0; i < 3; i++) {
    const page = await context.newPage();
    page.on('pageerror', (e) => fail(`uncaught error in tab ${i + 1}: ${e.message}`));
    tabs.push(track(page));
    await page.goto(PAGE_URL, { waitUntil: 'load' });
    await until(`tab ${i + 1} should get a ready socket`, () => tabs[i].ready === 1);
    pages.push(page);
  }
  await until('the first tab should be told it was replaced and closed', () => tabs[0].replaced === 1 && tabs[0].open === 0);
  console.log('ok: the third tab replaced the first tab\'s socket');

  await new Promise((r) => setTimeout(r, QUIET_MS));
  if (tabs[0].opened !== 1) fail(`the replaced tab reconnected by itself (${tabs[0].opened} sockets): tabs would fight`);
  if (tabs[1].opened !== 1 || tabs[2].opened !== 1) fail(`the other tabs reconnected (${tabs[1].opened}, ${tabs[2].opened} sockets)`);
  console.log('ok: the replaced tab stays parked');

  // The visitor comes back to the first tab.
  await pages[0].bringToFront();
  await pages[0].evaluate(() => window.dispatchEvent(new Event('focus')));
  await until('the focused tab should take a socket again', () => tabs[0].ready === 2);
  await until('the oldest other tab should be replaced in turn', () => tabs[1].replaced === 1 && tabs[1].open === 0);
  await new Promise((r) => setTimeout(r, QUIET_MS));
  if (tabs.map((t) => t.opened).join() !== '2,1,1') fail(`sockets opened per tab: ${tabs.map((t) => t.opened)} (want 2,1,1)`);
  console.log('ok: a focused parked tab takes over once, and nothing fights');
  clearTimeout(overall);
  await browser.close();
} catch (e) {
  fail(e.stack || String(e));
}
