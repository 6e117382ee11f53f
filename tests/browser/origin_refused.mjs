// The widget on a website whose origin parley does not allow (PARLEY_ALLOWED_ORIGINS): the
// browser console names the setting and the site's origin, once.
//
// Environment:
//   HOST_PAGE_URL  a page on another origin that embeds <script src="{PARLEY_URL}/widget.js" async>
//   CHROMIUM       optional path of the browser (default /usr/bin/chromium; never downloaded)

import { chromium } from 'playwright-core';

const HOST_PAGE_URL = process.env.HOST_PAGE_URL;
if (!HOST_PAGE_URL) throw new Error('HOST_PAGE_URL is required');

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox'],
});
try {
  const page = await (await browser.newContext()).newPage();
  const errors = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  await page.goto(HOST_PAGE_URL);
  const origin = new URL(HOST_PAGE_URL).origin;
  const deadline = Date.now() + 15000;
  let hint;
  while (!(hint = errors.find((e) => e.startsWith('parley:'))) && Date.now() < deadline) {
    await page.waitForTimeout(100);
  }
  if (!hint) throw new Error(`no parley hint in the console; errors: ${JSON.stringify(errors)}`);
  if (!hint.includes('PARLEY_ALLOWED_ORIGINS') || !hint.includes(origin)) {
    throw new Error(`the hint should name the setting and ${origin}: ${hint}`);
  }
  // Once, however many calls were refused.
  await page.waitForTimeout(500);
  const hints = errors.filter((e) => e.startsWith('parley:')).length;
  if (hints !== 1) throw new Error(`the hint should be logged once, got ${hints}: ${JSON.stringify(errors)}`);
  console.log(`ok: ${hint}`);
} finally {
  await browser.close();
}
