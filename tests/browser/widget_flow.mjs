// Real-browser test of the parley visitor widget.
//
// Run by the Rust integration test as `node tests/browser/widget_flow.mjs` with:
//   HOST_PAGE_URL  a page on another origin that embeds <script src="{PARLEY_URL}/widget.js" async>
//   PARLEY_URL     the parley server
//   CONTROL_URL    the Rust test's control server (POST /accept, POST /operator-message {text},
//                  POST /operator-file {name, text, base64}, POST /channel-files, POST /remind,
//                  POST /request-post, POST /presence {status}, POST /requests-posts {needle},
//                  POST /departments {departments: [{name, greeting}]},
//                  POST /operator-typing, POST /operator-edit {match, text}, POST /visitor-typing)
//   SCREENSHOT_DIR where widget-prechat.png, widget-chat.png, widget-files.png,
//                  widget-waiting.png and widget-offline.png are written
//   CHROMIUM       optional path of the browser (default /usr/bin/chromium, Debian's; never downloaded)
// Prints one line per step passed; exits 0 on success, 1 on the first failed assertion.

import { launchChromium } from './launch.mjs';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

const HOST_PAGE_URL = mustEnv('HOST_PAGE_URL');
const PARLEY_URL = mustEnv('PARLEY_URL');
const CONTROL_URL = mustEnv('CONTROL_URL').replace(/\/+$/, '');
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR || path.join(path.dirname(new URL(import.meta.url).pathname), 'artifacts');
const OVERALL_TIMEOUT_MS = 90_000;
const WAIT_MS = 15_000;

// German texts the widget must show (keep in sync with I18N.de in assets/widget.js).
const DE = { launcher: 'Chat öffnen', startChat: 'Chat starten', message: 'Nachricht', attach: 'Dateien anhängen' };

// ------------------------------------------------------------------ test images
// Real PNGs (8-bit RGB), drawn here so the screenshots show something recognisable.

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function png(width, height, pixel) {
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    const row = y * (width * 3 + 1); // each row starts with filter type 0
    for (let x = 0; x < width; x++) raw.set(pixel(x, y), row + 1 + x * 3);
  }
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // bit depth 8, RGB, deflate, no filter, no interlace
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}
const mix = (a, b, f) => a.map((v, i) => Math.round(v + (b[i] - v) * f));
// The visitor's "photo": a parcel on a table.
const PHOTO_PNG = png(240, 160, (x, y) => {
  if (y > 112) return mix([150, 104, 66], [120, 80, 50], (y - 112) / 48); // table
  const inBox = x > 70 && x < 170 && y > 40 && y <= 112;
  if (inBox) {
    if (Math.abs(x - 120) < 6 || (y > 52 && y < 60)) return [214, 190, 120]; // tape
    return x > 150 ? [170, 124, 72] : [196, 148, 92]; // cardboard, shaded side
  }
  return mix([224, 233, 244], [196, 210, 228], y / 112); // wall
});
// The operator's "diagram": a small bar chart.
const DIAGRAM_PNG = png(360, 220, (x, y) => {
  const bars = [120, 170, 90, 150, 60];
  for (let i = 0; i < bars.length; i++) {
    const left = 40 + i * 62;
    if (x >= left && x < left + 40 && y >= 190 - bars[i] && y < 190) return i === 1 ? [31, 95, 214] : [120, 160, 232];
  }
  if ((y === 190 && x >= 24 && x < 344) || (x === 24 && y >= 20 && y <= 190)) return [60, 66, 80]; // axes
  if (x > 24 && (190 - y) % 40 === 0 && y < 190 && y >= 20) return [226, 231, 238]; // grid
  return [255, 255, 255];
});
// An HTML page with a script, named like an image: the server must refuse it by its content.
const EVIL_PNG = Buffer.from('<html><script>alert(1)</script></html>');

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
  browser = await launchChromium({
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

  // 8. the visitor sends a picture with a text; it reaches the chat's Mattermost channel
  const imageSel = (name) => `[data-testid="message-image"][alt="${name}"]`;
  const imageIn = (sender, name) => page.locator(`[data-testid="message"][data-sender="${sender}"] ${imageSel(name)}`);
  const messageWith = (sender, name) => page.locator(`[data-testid="message"][data-sender="${sender}"]`, { has: page.locator(imageSel(name)) });
  const loaded = (locator) => locator.evaluate((img) => img.complete && img.naturalWidth > 0);
  await tid(page, 'attach-button').waitFor({ state: 'visible' }).catch(() => {
    throw new AssertionFailed('step 8: the attach button is not shown (does /api/v1/status announce files?)');
  });
  const attachLabel = await tid(page, 'attach-button').getAttribute('aria-label');
  assert(attachLabel === 'Attach files', `step 8: the attach button should be labelled "Attach files", got "${attachLabel}"`);
  await tid(page, 'file-input').setInputFiles({ name: 'photo.png', mimeType: 'image/png', buffer: PHOTO_PNG });
  await until('step 8: the chosen file should be shown as "photo.png" above the composer', async () =>
    (await page.locator('[data-testid="attachment"]').allTextContents()).some((s) => s.includes('photo.png'))
  );
  // Uploads are fast here: a watcher records whether a progress bar was ever shown.
  await page.evaluate(() => {
    const root = document.getElementById('parley-widget').shadowRoot;
    window.__parleySawProgress = false;
    new MutationObserver(() => {
      if (root.querySelector('[data-testid="upload-progress"]')) window.__parleySawProgress = true;
    }).observe(root, { childList: true, subtree: true });
  });
  await tid(page, 'composer').fill('Here is a photo of the parcel');
  await tid(page, 'send').click();
  await until('step 8: the visitor\'s image "photo.png" should be shown in the list, loaded, in a stored message', async () => {
    const img = imageIn('visitor', 'photo.png');
    if ((await img.count()) !== 1 || !(await loaded(img))) return false;
    const msg = messageWith('visitor', 'photo.png');
    return !!(await msg.getAttribute('data-id')) && (await msg.textContent()).includes('Here is a photo of the parcel');
  });
  assert(await page.evaluate(() => window.__parleySawProgress), 'step 8: no upload progress bar (data-testid="upload-progress") was shown while sending');
  assert((await tid(page, 'composer').inputValue()) === '', 'step 8: the composer should be empty after sending');
  assert((await page.locator('[data-testid="attachment"]').count()) === 0, 'step 8: the sent file should no longer be shown above the composer');
  assert(!(await tid(page, 'upload-error').isVisible()), 'step 8: an upload error is shown after a successful upload');
  assertNoDuplicateIds(await readMessages(page), 'step 8');
  const delivered = await until('step 8: a post with "photo.png" (a real PNG) should appear in the chat\'s Mattermost channel', async () => {
    const r = await control('/channel-files');
    return r.posts.find((p) => p.files.some((f) => f.name === 'photo.png' && f.png && f.size === PHOTO_PNG.length));
  });
  assert(
    String(delivered.message).includes('Here is a photo of the parcel'),
    `step 8: the Mattermost post with the file should carry the text, got ${JSON.stringify(delivered.message)}`
  );
  checkProblems();
  step(8, `visitor sent photo.png with a text: shown inline, progress bar seen, posted to Mattermost (${PHOTO_PNG.length} bytes)`);

  // 9. choosing files: drop and paste attach, × removes, a file over the limit is refused at
  //    once; a disguised file (HTML named .png) is refused by the server; nothing is lost
  const chips = page.locator('[data-testid="attachment"]');
  const { files: limits } = await (await fetch(`${PARLEY_URL.replace(/\/+$/, '')}/api/v1/status`)).json();
  await page.evaluate(() => {
    const root = document.getElementById('parley-widget').shadowRoot;
    const panel = root.querySelector('[data-testid="panel"]');
    const dt = new DataTransfer();
    dt.items.add(new File(['Order 12345, 2 parcels'], 'order-notes.txt', { type: 'text/plain' }));
    panel.dispatchEvent(new DragEvent('dragenter', { dataTransfer: dt, bubbles: true, cancelable: true, composed: true }));
    window.__parleyDropHint = !root.querySelector('[data-testid="drop-hint"]').hidden;
    panel.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true, composed: true }));
  });
  assert(await page.evaluate(() => window.__parleyDropHint), 'step 9: dragging files over the panel should show the drop hint');
  assert(!(await tid(page, 'drop-hint').isVisible()), 'step 9: the drop hint should go away after the drop');
  await until('step 9: a dropped file should be attached', async () => (await chips.allTextContents()).some((s) => s.includes('order-notes.txt')));
  await tid(page, 'composer').evaluate((el, b64) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], 'image.png', { type: 'image/png' }));
    el.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true, composed: true }));
  }, PHOTO_PNG.toString('base64'));
  await until('step 9: a pasted image should be attached', async () => (await chips.count()) === 2);
  await chips.nth(1).locator('[data-testid="attachment-remove"]').click();
  await until('step 9: × should remove the pasted image', async () => (await chips.count()) === 1);
  // the dropped text file alone (no text): a download link "order-notes.txt · 22 B"
  await tid(page, 'composer').press('Enter');
  const fileLink = page.locator('[data-testid="message"][data-sender="visitor"] [data-testid="message-file"]', { hasText: 'order-notes.txt' });
  await until('step 9: the sent text file should be shown as a download link', async () => (await fileLink.count()) === 1);
  {
    const a = await fileLink.evaluate((el) => ({ text: el.textContent, href: el.href, download: el.getAttribute('download'), rel: el.rel }));
    assert(a.text.includes('order-notes.txt · 22 B'), `step 9: the link should read "order-notes.txt · 22 B", got "${a.text}"`);
    assert(a.download === 'order-notes.txt' && a.rel.includes('noopener') && /^https?:\/\//.test(a.href), `step 9: bad download link ${JSON.stringify(a)}`);
    const r = await fetch(a.href); // signed: works without the token
    assert(r.ok && (await r.text()) === 'Order 12345, 2 parcels', `step 9: the download link should give the file, got HTTP ${r.status}`);
  }
  await tid(page, 'file-input').setInputFiles({ name: 'huge.pdf', mimeType: 'application/pdf', buffer: Buffer.alloc(limits.max_bytes + 1, 0x20) });
  await until('step 9: a file over the size limit should be refused at once, naming it', async () => {
    const el = tid(page, 'upload-error');
    return (await el.isVisible()) && (await el.textContent()).includes('huge.pdf') && (await el.textContent()).includes('too large');
  });
  assert((await chips.count()) === 0, 'step 9: a file over the size limit should not be attached');

  const countBefore = (await readMessages(page)).length;
  await tid(page, 'file-input').setInputFiles({ name: 'evil.png', mimeType: 'image/png', buffer: EVIL_PNG });
  await tid(page, 'composer').fill('And the invoice');
  await tid(page, 'send').click();
  await until('step 9: a refusal naming "evil.png" should be shown (data-testid="upload-error")', async () => {
    const el = tid(page, 'upload-error');
    return (await el.isVisible()) && (await el.textContent()).includes('evil.png') && (await el.textContent()).includes('not allowed');
  });
  await until('step 9: the refused upload should leave the message list', async () =>
    (await readMessages(page)).every((m) => m.state !== 'sending')
  );
  {
    const msgs = await readMessages(page);
    assert(msgs.length === countBefore, `step 9: the message list changed from ${countBefore} to ${msgs.length} messages`);
    assert(!msgs.some((m) => m.text.includes('And the invoice')), 'step 9: the text of the refused upload was added to the list');
    assert((await tid(page, 'composer').inputValue()) === 'And the invoice', 'step 9: the text typed should stay in the composer');
    assert((await chips.count()) === 0, 'step 9: the refused file should not stay attached');
    assert((await imageIn('visitor', 'evil.png').count()) === 0, 'step 9: the refused file is shown as an image');
    const posts = (await control('/channel-files')).posts;
    assert(!posts.some((p) => p.files.some((f) => f.name === 'evil.png')), 'step 9: the refused file reached Mattermost');
  }
  const refusal = (await tid(page, 'upload-error').textContent()).trim();
  await tid(page, 'upload-error').locator('button').click(); // dismiss
  await until('step 9: the refusal should close with its dismiss button', async () => !(await tid(page, 'upload-error').isVisible()));
  await tid(page, 'composer').fill('');
  checkProblems();
  step(9, `files attached by drop and paste, removed with ×; too large refused at once; disguised evil.png refused: "${refusal}", text kept, list unchanged`);

  // 10. the operator sends a picture: shown inline (its first load fails: the widget renews the
  //     links and loads it again), the lightbox enlarges it, Escape closes it
  let failedOnce = false;
  let relisted = false;
  await page.route('**/api/v1/files/**', (route) => {
    if (failedOnce) return route.continue();
    failedOnce = true;
    return route.abort('failed');
  });
  const onRequest = (req) => {
    if (failedOnce && /\/messages\?after=0$/.test(req.url())) relisted = true;
  };
  page.on('request', onRequest);
  await control('/operator-file', { name: 'diagram.png', text: 'Here is a diagram', base64: DIAGRAM_PNG.toString('base64') });
  const opImage = imageIn('operator', 'diagram.png');
  await until('step 10: the operator\'s image "diagram.png" should be shown inline and loaded', async () =>
    (await opImage.count()) === 1 && (await loaded(opImage))
  );
  assert(failedOnce && relisted, 'step 10: after a failed image load the widget should list the messages again for fresh links');
  page.off('request', onRequest);
  await page.unroute('**/api/v1/files/**');
  assert(
    (await messageWith('operator', 'diagram.png').textContent()).includes('Here is a diagram'),
    'step 10: the operator\'s text "Here is a diagram" should be shown with the image'
  );
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, 'widget-files.png'), animations: 'disabled' });
  await opImage.click();
  const lightbox = tid(page, 'lightbox');
  await until('step 10: clicking the image should open the lightbox with the loaded image', async () =>
    (await lightbox.isVisible()) && (await loaded(lightbox.locator('img')))
  );
  assert(
    await page.evaluate(() => {
      const root = document.getElementById('parley-widget').shadowRoot;
      return !!(root.activeElement && root.activeElement.closest('[data-testid="lightbox"]'));
    }),
    'step 10: focus should move into the lightbox'
  );
  await page.keyboard.press('Escape');
  await until('step 10: Escape should close the lightbox', async () => !(await lightbox.isVisible()));
  assert(await tid(page, 'panel').isVisible(), 'step 10: Escape in the lightbox should not close the chat panel');
  assert(
    await page.evaluate(() => {
      const root = document.getElementById('parley-widget').shadowRoot;
      return !!(root.activeElement && root.activeElement.querySelector('[data-testid="message-image"][alt="diagram.png"]'));
    }),
    'step 10: focus should return to the image after closing the lightbox'
  );
  checkProblems();
  step(10, 'operator image diagram.png shown inline (reloaded after a failed load), lightbox opens on click and closes on Escape (widget-files.png)');

  // 11. typing both ways, and an operator editing a message
  await control('/operator-typing');
  const typing = tid(page, 'typing');
  await until('step 11: "Alice Operator is typing…" should be shown (data-testid="typing")', async () =>
    (await typing.isVisible()) && (await typing.textContent()).includes('Alice Operator is typing')
  );
  await control('/operator-message', { text: 'Your order ships on Monday' });
  const shipping = page.locator('[data-testid="message"][data-sender="operator"]', { hasText: 'Your order ships on' });
  await until('step 11: the operator message should appear', async () => (await shipping.count()) === 1);
  assert(!(await typing.isVisible()), 'step 11: the typing indicator should go away when the operator\'s message arrives');
  await control('/operator-edit', { match: 'ships on Monday', text: 'Your order ships on **Tuesday**' });
  await until('step 11: the edited text should replace the message, bold and marked "edited"', async () => {
    const shown = await shipping.evaluateAll((els) =>
      els.map((el) => ({
        strong: (el.querySelector('strong') || {}).textContent || '',
        edited: (el.querySelector('[data-testid="edited"]') || {}).textContent || '',
      }))
    );
    return shown.length === 1 && shown[0].strong === 'Tuesday' && shown[0].edited === 'edited';
  });
  assertNoDuplicateIds(await readMessages(page), 'step 11');
  const typedBefore = (await control('/visitor-typing')).count;
  // (the widget sends typing at most every 3 s, so keep typing until it goes out)
  await until('step 11: the visitor typing should show in Mattermost (the bot\'s user_typing)', async () => {
    await tid(page, 'composer').press('a');
    return (await control('/visitor-typing')).count > typedBefore;
  });
  await tid(page, 'composer').fill('');
  checkProblems();
  step(11, 'typing shown both ways; the operator\'s edit replaced the text in place, marked "edited"');

  // 12. the visitor ends the chat
  await tid(page, 'close-chat').click();
  await tid(page, 'confirm-close').click();
  await until('step 12: the composer should be disabled after the chat is closed', async () => tid(page, 'composer').isDisabled());
  await until('step 12: a "Start a new chat" button should be shown', async () => tid(page, 'new-chat').isVisible());
  await until('step 12: the chat status should be "closed"', async () => (await tid(page, 'chat-status').getAttribute('data-status')) === 'closed');
  checkProblems();
  step(12, 'visitor closed the chat: composer disabled, "Start a new chat" shown');

  // 13. a new chat nobody accepts: still in the queue, "leave a message instead"
  await tid(page, 'new-chat').click();
  await tid(page, 'prechat-form').waitFor({ state: 'visible' }).catch(() => {
    throw new AssertionFailed('step 13: "Start a new chat" should show the pre-chat form');
  });
  await tid(page, 'prechat-name').fill('Erika Visitor');
  await tid(page, 'prechat-email').fill('erika@example.com');
  await tid(page, 'prechat-message').fill('Is anyone there?');
  await tid(page, 'prechat-submit').click();
  await until('step 13: the new chat should be pending', async () => (await tid(page, 'chat-status').getAttribute('data-status')) === 'pending');
  await tid(page, 'composer').fill('My order is 4711');
  await tid(page, 'composer').press('Enter');
  await until('step 13: the second message should be stored', async () =>
    (await readMessages(page)).some((m) => m.sender === 'visitor' && m.text.includes('My order is 4711') && m.id)
  );
  const reminded = await control('/remind');
  assert(reminded.reminded === 1, `step 13: the job should remind of one request, reminded ${reminded.reminded}`);
  const leave = tid(page, 'leave-message');
  await until('step 13: the still-waiting notice should offer "Leave a message instead"', async () => leave.isVisible());
  const notice = (await readMessages(page)).find((m) => m.sender === 'system' && m.text.includes('still in the queue'));
  assert(notice, 'step 13: the still-waiting notice should say the visitor is still in the queue');
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, 'widget-waiting.png'), animations: 'disabled' });
  await leave.click();
  await tid(page, 'offline-form').waitFor({ state: 'visible' }).catch(() => {
    throw new AssertionFailed('step 13: "Leave a message instead" should show the offline form');
  });
  const prefilled = {
    name: await tid(page, 'offline-name').inputValue(),
    email: await tid(page, 'offline-email').inputValue(),
    message: await tid(page, 'offline-message').inputValue(),
  };
  assert(prefilled.name === 'Erika Visitor' && prefilled.email === 'erika@example.com', `step 13: name and e-mail should be prefilled, got ${JSON.stringify(prefilled)}`);
  assert(
    prefilled.message === 'Is anyone there?\n\nMy order is 4711',
    `step 13: the message should hold what the visitor wrote, got ${JSON.stringify(prefilled.message)}`
  );
  await until('step 13: the request post should be settled without its button', async () => {
    const r = await control('/request-post');
    return !r.button && String(r.message).includes('left before anyone accepted');
  });
  // Reopening the panel asks for the status again (online): the chosen form stays, filled in.
  await tid(page, 'minimise').click();
  await tid(page, 'launcher').click();
  await until('step 13: the offline form should stay after the status was refreshed (online)', async () =>
    (await tid(page, 'offline-form').isVisible()) && (await tid(page, 'offline-message').inputValue()) === prefilled.message
  );
  await tid(page, 'offline-submit').click();
  await tid(page, 'offline-thanks').waitFor({ state: 'visible' }).catch(() => {
    throw new AssertionFailed('step 13: sending the offline form should thank the visitor');
  });
  checkProblems();
  step(13, 'still in the queue (widget-waiting.png): "Leave a message instead" ended the chat (request settled) and sent the prefilled offline form');
  await context.close();

  // ---------------------------------------------------------------- German
  const de = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'de-DE' });
  de.setDefaultTimeout(WAIT_MS);
  const dePage = await newPage(de);
  await dePage.goto(HOST_PAGE_URL, { waitUntil: 'load' });
  const deLauncher = tid(dePage, 'launcher');
  await deLauncher.waitFor({ state: 'visible' });
  const label = await deLauncher.getAttribute('aria-label');
  assert(label === DE.launcher, `step 14: launcher aria-label should be "${DE.launcher}", got "${label}"`);
  await deLauncher.click();
  await tid(dePage, 'prechat-form').waitFor({ state: 'visible' }).catch(() => {
    throw new AssertionFailed('step 14: the pre-chat form is not shown (is parley online?)');
  });
  const submitText = (await tid(dePage, 'prechat-submit').textContent()).trim();
  assert(submitText === DE.startChat, `step 14: the pre-chat submit button should read "${DE.startChat}", got "${submitText}"`);
  const lang = await tid(dePage, 'panel').getAttribute('lang');
  assert(lang === 'de', `step 14: the panel should have lang="de", got "${lang}"`);
  const deAttach = await tid(dePage, 'attach-button').getAttribute('aria-label');
  assert(deAttach === DE.attach, `step 14: the attach button should be labelled "${DE.attach}", got "${deAttach}"`);
  const labels = await dePage.locator('[data-testid="prechat-form"] label').allTextContents();
  assert(labels.includes(DE.message), `step 14: the pre-chat form should have the label "${DE.message}", got ${JSON.stringify(labels)}`);
  checkProblems();
  step(14, `German locale: launcher "${label}", submit button "${submitText}"`);
  await de.close();

  // ---------------------------------------------------------------- offline
  // 14. every operator goes offline while the widget is open: it switches to the offline form
  //     by itself (its status poll; the clock is fast-forwarded instead of waiting 20 s)
  const off = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'en-US' });
  off.setDefaultTimeout(WAIT_MS);
  const offPage = await newPage(off);
  await offPage.clock.install();
  await offPage.goto(HOST_PAGE_URL, { waitUntil: 'load' });
  await tid(offPage, 'launcher').click();
  await tid(offPage, 'prechat-form').waitFor({ state: 'visible' }).catch(() => {
    throw new AssertionFailed('step 14: the pre-chat form is not shown while an operator is online');
  });
  await tid(offPage, 'prechat-message').fill('Is anybody there?');
  await control('/presence', { status: 'offline' });
  await offPage.clock.fastForward(21_000);
  await until('step 14: the widget should switch to the offline form without a reload', async () => tid(offPage, 'offline-form').isVisible());
  await until('step 14: the status should show offline', async () => (await tid(offPage, 'status').getAttribute('data-online')) === 'false');
  assert((await tid(offPage, 'offline-message').inputValue()) === 'Is anybody there?', 'step 14: the typed message should move to the offline form');
  checkProblems();
  step(15, 'all operators offline: the open widget switched to the offline form by itself, keeping the typed text');

  // 15. the visitor leaves a message: it appears in the requests channel
  await tid(offPage, 'offline-name').fill('Olga Offline');
  await tid(offPage, 'offline-email').fill('olga@example.com');
  await tid(offPage, 'offline-message').fill('Please call me back about order 777');
  await offPage.screenshot({ path: path.join(SCREENSHOT_DIR, 'widget-offline.png'), animations: 'disabled' });
  await tid(offPage, 'offline-submit').click();
  await until('step 15: the thanks should be shown', async () => tid(offPage, 'offline-thanks').isVisible());
  const offlinePost = await until('step 15: the message should be posted in the requests channel', async () => {
    const r = await control('/requests-posts', { needle: 'Please call me back about order 777' });
    return r.posts[0];
  });
  assert(String(offlinePost.message).includes('Olga Offline'), `step 15: the post should name the visitor, got ${JSON.stringify(offlinePost.message)}`);
  checkProblems();
  step(16, 'offline message sent from the widget and posted to the requests channel (widget-offline.png)');

  // 16. several departments: the visitor chooses one, its greeting is shown
  await control('/presence', { status: 'online' });
  await control('/departments', { departments: [{ name: 'Sales', greeting: 'Ask Sales anything' }, { name: 'Support', greeting: 'Support is here' }] });
  await offPage.reload({ waitUntil: 'load' });
  if (!(await tid(offPage, 'panel').isVisible())) await tid(offPage, 'launcher').click();
  const select = tid(offPage, 'prechat-department');
  await until('step 16: the pre-chat form should offer the departments', async () => (await select.isVisible()) && (await select.locator('option').count()) === 2);
  await until('step 16: the first department\'s greeting should be shown', async () =>
    (await tid(offPage, 'prechat-form').textContent()).includes('Ask Sales anything')
  );
  await select.selectOption({ label: 'Support' });
  await until('step 16: choosing Support should show its greeting', async () =>
    (await tid(offPage, 'prechat-form').textContent()).includes('Support is here')
  );
  checkProblems();
  step(17, 'departments: the select lists both, the chosen one\'s greeting is shown');
  await off.close();
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
