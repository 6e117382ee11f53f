// Real-browser test of connecting Mattermost in the back office: an admin of a parley started
// without Mattermost enters the server and the bot's token, picks the team, finds the requests
// channel by search, tests, saves, and sees parley connected, without a restart and without
// any script on the pages.
//
// Run by the Rust integration test (tests/api/admin_browser.rs) as
// `node tests/browser/connection_flow.mjs` with:
//   PARLEY_URL      the parley server (no Mattermost configured)
//   SETUP_URL       the first-run link (no manager exists yet)
//   MM_URL          the Mattermost (simulator) address
//   MM_TOKEN        the bot's access token
//   SCREENSHOT_DIR  where admin-*.png are written
//   CHROMIUM        optional path of the browser (default /usr/bin/chromium, Debian's; never downloaded)
// Prints one line per step passed; exits 0 on success, 1 on the first failed assertion.

import { launchChromium } from './launch.mjs';
import path from 'node:path';

const PARLEY_URL = mustEnv('PARLEY_URL').replace(/\/+$/, '');
const SETUP_URL = mustEnv('SETUP_URL');
const MM_URL = mustEnv('MM_URL');
const MM_TOKEN = mustEnv('MM_TOKEN');
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR || path.join(path.dirname(new URL(import.meta.url).pathname), 'artifacts');
const OVERALL_TIMEOUT_MS = 90_000;
const EMAIL = 'admin@example.com';
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
const problems = []; // console errors (CSP violations among them), page errors, HTTP errors

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

async function noToken(page, where) {
  assert(!(await page.content()).includes(MM_TOKEN), `${where}: the page shows the token`);
}

async function main() {
  browser = await launchChromium();
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('response', (r) => { if (r.status() >= 400) problems.push(`${r.status()} for ${r.url()}`); });
  page.setDefaultTimeout(15_000);

  // 1. First run, then the settings page: not connected, the form is open.
  await page.goto(SETUP_URL);
  await page.getByLabel('Your e-mail').fill(EMAIL);
  await page.getByLabel('Password (at least 10 characters)').fill(PASSWORD);
  await page.getByLabel('The same password again').fill(PASSWORD);
  await page.getByRole('button', { name: 'Save and sign in' }).click();
  await page.waitForURL(`${PARLEY_URL}/admin`);
  await page.getByRole('link', { name: 'Settings' }).click();
  await page.locator('#mattermost').getByText('not configured').first().waitFor();
  checkProblems();
  step(1, 'the settings page says Mattermost is not configured');

  // 2. Server and token: the bot's teams are listed.
  await page.getByLabel('Mattermost URL').fill(MM_URL);
  await page.getByLabel('Bot access token').fill(MM_TOKEN);
  await page.getByRole('button', { name: "List the bot's teams" }).click();
  await page.locator('select[name=team]').waitFor();
  const options = await page.locator('select[name=team]').locator('option').allTextContents();
  assert(options.some((o) => o.includes('(support)')), `step 2: the team support should be offered, got ${options}`);
  assert((await page.getByLabel('Bot access token').inputValue()) === '', 'step 2: the token field is empty again');
  await noToken(page, 'step 2');
  checkProblems();
  step(2, `listed the bot's teams: ${options.join(', ')}`);

  // 3. Search the requests channel, pick it, test.
  await page.locator('select[name=team]').selectOption('support');
  await page.getByLabel('Find the requests channel').fill('req');
  await page.getByRole('button', { name: 'Search channels' }).click();
  await page.getByLabel(/~requests\)/).check();
  await page.getByRole('button', { name: 'Test these settings' }).click();
  await page.getByText('All essential checks passed.').waitFor();
  assert(await page.getByLabel(/~requests\)/).isChecked(), 'step 3: the picked channel stays picked');
  await noToken(page, 'step 3');
  await page.locator('#mattermost').screenshot({ path: path.join(SCREENSHOT_DIR, 'admin-settings.png') });
  checkProblems();
  step(3, 'found ~requests by search and tested the entered settings');

  // 4. Save: in force at once.
  await page.getByRole('button', { name: 'Save and connect' }).click();
  await page.getByText('Mattermost connection saved and put in force').waitFor();
  const deadline = Date.now() + 15_000;
  while (!(await page.locator('#mattermost .dot.ok').count())) {
    assert(Date.now() < deadline, 'step 4: parley should be connected within 15 s');
    await page.waitForTimeout(250);
    await page.reload();
  }
  const origin = (await page.locator('#mattermost dd[data-origin]').textContent()).trim();
  assert(origin === 'back office', `step 4: the connection should be set in the back office, got "${origin}"`);
  await noToken(page, 'step 4');
  checkProblems();
  step(4, 'saved: parley is connected, without a restart');
}

const overall = setTimeout(async () => {
  console.error(`FAIL: the connection flow did not finish within ${OVERALL_TIMEOUT_MS / 1000} s (${passed} steps passed)`);
  await browser?.close().catch(() => {});
  process.exit(1);
}, OVERALL_TIMEOUT_MS);

let code = 0;
try {
  await main();
  console.log(`connection_flow: ${passed} passed, 0 failed`);
} catch (e) {
  code = 1;
  console.error(`FAIL: ${e instanceof AssertionFailed ? e.message : e.stack || e}`);
  console.log(`connection_flow: ${passed} passed, 1 failed`);
} finally {
  clearTimeout(overall);
  await browser?.close().catch(() => {});
}
process.exit(code);
