// Real-browser test of the parley back office: a manager's journey.
//
// Run by the Rust integration test (tests/api/admin_browser.rs) as
// `node tests/browser/admin_flow.mjs` with:
//   PARLEY_URL      the parley server
//   SETUP_URL       the first-run link (no manager exists yet)
//   VISITOR_NAME    the name of a visitor whose chat exists, to search for
//   OPERATOR_TEXT   a message an operator wrote in that chat
//   SCREENSHOT_DIR  where admin-*.png are written
//   CHROMIUM        optional path of the browser (default /usr/bin/chromium, Debian's; never downloaded)
// Prints one line per step passed; exits 0 on success, 1 on the first failed assertion.

import { launchChromium } from './launch.mjs';
import path from 'node:path';

const PARLEY_URL = mustEnv('PARLEY_URL').replace(/\/+$/, '');
const SETUP_URL = mustEnv('SETUP_URL');
const VISITOR_NAME = mustEnv('VISITOR_NAME');
const OPERATOR_TEXT = mustEnv('OPERATOR_TEXT');
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR || path.join(path.dirname(new URL(import.meta.url).pathname), 'artifacts');
const OVERALL_TIMEOUT_MS = 90_000;
const WAIT_MS = 15_000;
const EMAIL = 'manager@example.com';
const PASSWORD = 'correct horse battery staple';

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
const problems = []; // console errors (CSP violations among them) and page errors

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

async function shot(page, name, fullPage = false) {
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, name), fullPage });
}

async function heading(page) {
  return (await page.locator('h1').first().textContent()).trim();
}

async function main() {
  browser = await launchChromium();
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  // HTTP errors are checked by status below (the refused sign-in's 401 is expected).
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('response', (r) => { if (r.status() >= 400 && !r.url().includes('/admin/login')) problems.push(`${r.status()} for ${r.url()}`); });
  page.setDefaultTimeout(15_000);

  // 1. First run: the link from the log creates the first admin.
  await page.goto(SETUP_URL);
  assert((await heading(page)) === 'Create the first admin', `step 1: expected the first-run page, got "${await heading(page)}"`);
  await page.getByLabel('Your e-mail').fill(EMAIL);
  await page.getByLabel('Password (at least 10 characters)').fill(PASSWORD);
  await page.getByLabel('The same password again').fill(PASSWORD);
  await shot(page, 'admin-setup.png');
  await page.getByRole('button', { name: 'Save and sign in' }).click();
  await page.waitForURL(`${PARLEY_URL}/admin`);
  assert((await heading(page)) === 'Dashboard', 'step 1: the dashboard follows the setup');
  checkProblems();
  step(1, 'first-run setup created the admin and signed in');

  // 2. Sign out, sign in again.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(/\/admin\/login/);
  await page.getByLabel('E-mail').fill(EMAIL);
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('Wrong e-mail or password.').waitFor();
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${PARLEY_URL}/admin`);
  await page.getByText('connected').first().waitFor();
  await shot(page, 'admin-dashboard.png');
  checkProblems();
  step(2, 'signed out, refused a wrong password, signed in');

  // 3. Find the chat.
  await page.getByRole('link', { name: 'Chats' }).click();
  await page.getByLabel('Search').fill(VISITOR_NAME.split(' ')[0]);
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.waitForURL(/\/admin\/chats\?q=/);
  const rows = await page.locator('table.list tbody tr').count();
  assert(rows === 1, `step 3: one chat should match, got ${rows}`);
  await shot(page, 'admin-chats.png');
  checkProblems();
  step(3, `found the chat of ${VISITOR_NAME}`);

  // 4. Its transcript.
  await page.locator('table.list tbody tr a').first().click();
  await page.waitForURL(/\/admin\/chats\/[0-9a-f-]+$/);
  await page.getByText(OPERATOR_TEXT).waitFor();
  const title = await heading(page);
  assert(title === `Chat with ${VISITOR_NAME}`, `step 4: unexpected title "${title}"`);
  await shot(page, 'admin-transcript.png', true);
  checkProblems();
  step(4, 'opened the transcript with the operator\'s answer');

  // 5. Change a setting, and test the connection.
  await page.getByRole('link', { name: 'Settings' }).click();
  await page.getByLabel('Title').fill('Talk to Acme');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByText('Settings saved.').waitFor();
  const value = await page.getByLabel('Title').inputValue();
  assert(value === 'Talk to Acme', `step 5: the title should be saved, got "${value}"`);
  // The live preview is the demo page with the real widget: opened, it shows the new title.
  await page.locator('iframe.preview').scrollIntoViewIfNeeded();
  const preview = page.frameLocator('iframe.preview');
  await preview.getByRole('button', { name: 'Open chat' }).click({ timeout: WAIT_MS });
  await preview.locator('#parley-title').getByText('Talk to Acme').waitFor({ timeout: WAIT_MS });
  await page.getByRole('button', { name: 'Test connection' }).click();
  await page.getByText('All essential checks passed.').waitFor();
  await page.locator('#mattermost').scrollIntoViewIfNeeded();
  await shot(page, 'admin-settings-fixed.png', true);
  checkProblems();
  step(5, 'changed the widget title (seen in the live preview) and tested the connection');

  // 6. On a phone.
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true,
    storageState: await context.storageState() });
  const small = await phone.newPage();
  small.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  await small.goto(page.url().replace(/\/admin\/settings.*$/, '/admin/chats'));
  const overflow = await small.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert(overflow <= 1, `step 6: the chat list should fit a phone's width (overflow ${overflow}px)`);
  await shot(small, 'admin-phone.png');
  checkProblems();
  step(6, 'the chat list fits a phone');
}

const overall = setTimeout(async () => {
  console.error(`FAIL: the admin flow did not finish within ${OVERALL_TIMEOUT_MS / 1000} s (${passed} steps passed)`);
  await browser?.close().catch(() => {});
  process.exit(1);
}, OVERALL_TIMEOUT_MS);

let code = 0;
try {
  await main();
  console.log(`admin_flow: ${passed} passed, 0 failed`);
} catch (e) {
  code = 1;
  console.error(`FAIL: ${e instanceof AssertionFailed ? e.message : e.stack || e}`);
  console.log(`admin_flow: ${passed} passed, 1 failed`);
} finally {
  clearTimeout(overall);
  await browser?.close().catch(() => {});
}
process.exit(code);
