// Starts Chromium through launch.mjs and opens a page: the check behind the Rust test of the
// launch retry (tests/api/browser_launch.rs), which points CHROMIUM at a browser that crashes.
import { launchChromium } from './launch.mjs';

try {
  const browser = await launchChromium();
  const page = await browser.newPage();
  await page.setContent('<p id="ok">up</p>');
  console.log(`launched: ${await page.textContent('#ok')}`);
  await browser.close();
} catch (e) {
  console.error(String((e && e.message) || e));
  process.exit(1);
}
