// `make bench` section (xi): the manager's dashboard in headless Chromium against the benchmark's history.
// Each run loads the dashboard afresh in the signed-in tab (the console's code cached, as a returning
// manager has it) and times from navigation to every chart drawn: the eight reports answered and each
// chart's canvas painted. Prints one JSON object: {"runs_ms": [...], "charts": n}.
import { chromium } from 'playwright-core';

const URL = process.env.LEADFLOW_CONSOLE_URL;
const TOKEN = process.env.LEADFLOW_MANAGER_TOKEN;
const RUNS = Number(process.env.LEADFLOW_DASHBOARD_RUNS || '5');
const CHROMIUM = process.env.LEADFLOW_CHROMIUM || '/usr/bin/chromium';
const TIMEOUT_MS = 120000;

if (!URL || !TOKEN) {
  console.error('LEADFLOW_CONSOLE_URL and LEADFLOW_MANAGER_TOKEN are needed');
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: CHROMIUM, headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
try {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, locale: 'en-US' });
  await context.addInitScript(() => localStorage.setItem('leadflow.locale', 'en'));
  // The session lives in the tab's sessionStorage: every load happens in this one tab.
  const page = await context.newPage();
  await page.goto(`${URL}/#/login?token=${encodeURIComponent(TOKEN)}`);
  await page.getByTestId('current-user').waitFor({ timeout: TIMEOUT_MS });

  const runsMs = [];
  let charts = 0;
  for (let run = 0; run <= RUNS; run += 1) { // run 0 warms the cache and is not counted
    await page.goto('about:blank');
    const started = Date.now();
    await page.goto(`${URL}/#/dashboard`);
    await page.locator('[data-testid="dashboard"][data-loaded="true"]').waitFor({ timeout: TIMEOUT_MS });
    // Drawn: every canvas has pixels (Chart.js paints its first frame on creation), after the next frame.
    charts = await page.evaluate(() => new Promise((resolve) => {
      const painted = () => [...document.querySelectorAll('canvas[data-chart]')].filter((canvas) => {
        const { width, height } = canvas;
        if (!width || !height) return false;
        const pixels = canvas.getContext('2d').getImageData(0, 0, width, height).data;
        for (let i = 3; i < pixels.length; i += 4) if (pixels[i]) return true;
        return false;
      }).length;
      const giveUpAt = Date.now() + 10000; // a chart with nothing to show may stay blank
      const wait = () => requestAnimationFrame(() => {
        const all = document.querySelectorAll('canvas[data-chart]').length;
        const done = painted();
        if (done === all || Date.now() > giveUpAt) resolve(done); else wait();
      });
      wait();
    }));
    if (run > 0) runsMs.push(Date.now() - started);
  }
  console.log(JSON.stringify({ runs_ms: runsMs, charts }));
} finally {
  await browser.close();
}
