// One way for every browser test to start Chromium: Debian's (CHROMIUM, default
// /usr/bin/chromium; never a downloaded one), headless. A browser that dies before its first
// page opens (seen on a loaded machine: SIGSEGV right after launch) is started once more;
// when it fails twice the error carries what the browser itself printed, both times.

import { chromium } from 'playwright-core';

/** Lines of the browser's own output kept per attempt (the end is what explains a crash). */
const KEEP_LINES = 60;

export async function launchChromium({ args = ['--no-sandbox'] } = {}) {
  const failures = [];
  for (let attempt = 1; attempt <= 2; attempt += 1) {
    const output = [];
    let browser;
    try {
      browser = await chromium.launch({
        executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
        headless: true,
        args,
        // Playwright's "browser" log carries the process's stdout and stderr.
        logger: {
          isEnabled: (name) => name === 'browser',
          log: (_name, _severity, message) => {
            output.push(String(message));
            if (output.length > KEEP_LINES) output.shift();
          },
        },
      });
      // The first page proves the browser is up: a crash at start shows here, not mid-test.
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto('about:blank');
      await context.close();
      return browser;
    } catch (e) {
      if (browser) await browser.close().catch(() => {});
      const message = String((e && e.message) || e);
      failures.push(`attempt ${attempt}: ${message}\n  browser output:\n    ${output.join('\n    ') || '(none)'}`);
      if (attempt === 1) {
        console.error(`Chromium died before its first page (${message.split('\n')[0]}); starting it once more`);
      }
    }
  }
  throw new Error(`Chromium failed to start twice:\n${failures.join('\n')}`);
}
