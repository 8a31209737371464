// Benchmark of the dashboard in headless Chromium (playwright-core) against the real daemon:
//
//   dashboard_1M_open  ms from navigating to a finished 1,000,000-step job's page until both
//       of its charts are drawn (the page sets window.__anneald.lastRenderMs then); ref: the
//       same for a finished 1,000-step job of the same spec, in the same browser and run.
//       Best of three interleaved opens each (one with BENCH_QUICK=1).
//
// Usage: node bench/dashboard.mjs [BUILD_DIR]. Output: one `BENCH ...` line; exits non-zero
// when the browser or the daemon fails. CHROMIUM names the browser (default /usr/bin/chromium).
import path from 'node:path';
import {chromium} from 'playwright-core';
import {api, startDaemon, tutorialJob, waitJob} from '../tests/e2e/lib.mjs';

const build = process.argv[2] || 'build';
const BIN = path.join(build, 'anneald');
const QUICK = !!Number(process.env.BENCH_QUICK || 0);
const OPENS = QUICK ? 1 : 3;

async function openMs(page, url) {
  await page.goto('about:blank');
  const t0 = Date.now();
  await page.goto(url);
  await page.waitForFunction(() => window.__anneald && window.__anneald.lastRenderMs != null, null,
                             {timeout: 60000});
  return Date.now() - t0;
}

const d = await startDaemon({bin: BIN, args: ['--workers', '2']});
let browser;
try {
  const ids = {};
  for (const [k, steps] of [['big', 1000000], ['small', 1000]]) {
    const r = await api(d.url, 'POST', '/v1/jobs', tutorialJob({name: `open-${steps}`, steps,
      checkpoint: {every_steps: steps, every_seconds: 0, keep_last: 1}}));
    if (r.status !== 201) throw new Error(`POST /v1/jobs: ${r.status} ${r.text}`);
    ids[k] = r.json.id;
  }
  for (const id of Object.values(ids)) await waitJob(d.url, id, (j) => j.state === 'completed', 300000);
  browser = await chromium.launch({executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run']});
  const page = await (await browser.newContext({viewport: {width: 1280, height: 800}})).newPage();
  // A first open warms the browser's caches of the page's own files for both.
  await openMs(page, `${d.url}/#/job/${ids.small}`);
  let big = Infinity, small = Infinity;
  for (let i = 0; i < OPENS; i++) {
    big = Math.min(big, await openMs(page, `${d.url}/#/job/${ids.big}`));
    small = Math.min(small, await openMs(page, `${d.url}/#/job/${ids.small}`));
  }
  console.log(`BENCH dashboard_1M_open ${big} ms ref=${small} ratio=${(big / small).toFixed(4)}`);
} catch (e) {
  console.error(`bench/dashboard.mjs: ${e.stack || e}`);
  process.exitCode = 1;
} finally {
  if (browser) await browser.close();
  await d.stop();
}
