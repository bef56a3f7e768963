// The admin's win model page in a real browser: the live model's cross-validated figures beside how its
// predictions did on new leads whose outcome has arrived since, as GetWinModel reports them.
//
// Environment (set by tests/gateway/test_console.py after it trained a model and closed new leads):
//   LEADFLOW_CONSOLE_URL  where the gateway serves the console
//   LEADFLOW_TOKENS       {"admin": "...", ...}
//   LEADFLOW_SCREENSHOTS  folder for a screenshot of the page (optional)
//   LEADFLOW_WIN_MODEL    {"version": "win-model@1", "outcomes": 60, "roc_auc": 0.8123, "trained_roc_auc": 0.79}
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';

const CONSOLE_URL = (process.env.LEADFLOW_CONSOLE_URL || '').replace(/\/$/, '');
const EXPECTED = process.env.LEADFLOW_WIN_MODEL ? JSON.parse(process.env.LEADFLOW_WIN_MODEL) : null;
const SKIP = CONSOLE_URL && EXPECTED ? false
  : 'LEADFLOW_CONSOLE_URL and LEADFLOW_WIN_MODEL are not set: the page needs a platform with a trained win model (see tests/gateway/test_console.py)';
const CHROMIUM = process.env.LEADFLOW_CHROMIUM || '/usr/bin/chromium';
const shown = (ratio) => new Intl.NumberFormat('en-US', { minimumFractionDigits: 3, maximumFractionDigits: 3 }).format(ratio);

test('console: the admin reads the win model trained and realised figures', { skip: SKIP, timeout: 60000 }, async (t) => {
  const { chromium } = await import('playwright-core');
  const roles = JSON.parse(process.env.LEADFLOW_TOKENS || '{}');
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu'] });
  t.after(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, locale: 'en-US' });
  await context.addInitScript(() => localStorage.setItem('leadflow.locale', 'en'));
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(err.message));
  await page.goto(`${CONSOLE_URL}/#/login?token=${encodeURIComponent(roles.admin)}`);
  await page.getByTestId('current-user').waitFor();

  await page.goto(`${CONSOLE_URL}/#/admin/winmodel`);
  await page.getByTestId('winmodel-figures').waitFor();
  assert.match(await page.getByTestId('winmodel-summary').textContent(), new RegExp(EXPECTED.version));
  assert.equal((await page.getByTestId('winmodel-realised-auc').textContent()).trim(), shown(EXPECTED.roc_auc));
  assert.ok((await page.getByTestId('winmodel-auc').textContent()).includes(shown(EXPECTED.trained_roc_auc)));
  assert.match(await page.getByTestId('winmodel-outcomes').textContent(), new RegExp(`^\\s*${EXPECTED.outcomes}\\b`));
  // The realised calibration table covers every counted lead.
  const counts = await page.getByTestId('winmodel-realised-calibration').locator('tbody tr td:nth-child(2)').allTextContents();
  assert.equal(counts.reduce((sum, text) => sum + Number(text.replace(/[^\d]/g, '')), 0), EXPECTED.outcomes);

  if (process.env.LEADFLOW_SCREENSHOTS) {
    await page.screenshot({ path: path.join(process.env.LEADFLOW_SCREENSHOTS, 'admin-winmodel.png'), fullPage: true });
  }
  await page.getByTestId('language-switcher').selectOption('zh');
  await page.getByRole('heading', { name: '赢单模型' }).waitFor();
  assert.deepEqual(errors, []);
});
