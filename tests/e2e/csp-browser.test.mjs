// The dashboard under its Content-Security-Policy (headless Chromium): every answer carries
// the policy (script-src 'self', no inline style attributes, nothing from elsewhere), and
// every page of the dashboard, charts included, works under it without one violation.
import {test} from 'node:test';
import assert from 'node:assert/strict';
import {launchBrowser} from './browserlib.mjs';
import {api, tutorialJob, waitFor, waitJob, withDaemon} from './lib.mjs';

test('every page runs under the CSP without a violation', async () => {
  const b = await launchBrowser({viewport: {width: 1280, height: 800}});
  const errors = [], refused = [];
  try {
    await withDaemon({}, async (d) => {
      // the policy on the page, its scripts and styles, and the API's answers alike
      for (const p of ['/', '/app.js', '/style.css', '/uPlot.iife.min.js', '/v1/jobs', '/v1/nope']) {
        const csp = (await fetch(d.url + p)).headers.get('content-security-policy') || '';
        const dir = Object.fromEntries(csp.split(';').map((x) => x.trim().split(/\s+/)).map(([k, ...v]) => [k, v.join(' ')]));
        assert.equal(dir['script-src'], "'self'", p);
        assert.equal(dir['style-src'], "'self'", p);
        assert.equal(dir['default-src'], "'self'", p);
        assert.equal(dir['connect-src'], "'self'", p);
        assert.equal(dir['img-src'], "'self' data:", p);
        assert.equal(dir['frame-ancestors'], "'none'", p);
      }
      // what the policy blocks is reported to the page (and the console): both are recorded
      await b.ctx.addInitScript(() => {
        window.__csp = [];
        document.addEventListener('securitypolicyviolation', (e) =>
          window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
      });
      const page = await b.firstPage();
      page.on('pageerror', (e) => errors.push(e.message));
      // (not every console error: the event streams break when the daemon stops at the end)
      page.on('console', (m) => { if (/Content Security Policy|Refused to/i.test(m.text())) refused.push(m.text()); });
      const job = (await api(d.url, 'POST', '/v1/jobs', tutorialJob({steps: 300}))).json.id;
      await waitJob(d.url, job, (j) => j.state === 'completed');
      const finder = (await api(d.url, 'POST', '/v1/lr_finder', {job: tutorialJob({loss: 'mse', checkpoint: undefined}), steps: 60})).json.id;
      await waitJob(d.url, finder, (j) => j.state === 'completed');
      const sweep = (await api(d.url, 'POST', '/v1/sweeps', {name: 'csp', metric: 'loss', base: tutorialJob({steps: 50, checkpoint: undefined}),
                                                             parameters: {'ds_config.optimizer.params.lr': [0.001, 0.01]}})).json.id;
      await waitFor(async () => (await api(d.url, 'GET', `/v1/sweeps/${sweep}`)).json.state === 'completed', {what: 'the sweep'});
      const drawn = (name) => page.waitForFunction((n) => {
        const u = window.__anneald && window.__anneald.charts[n];
        return u && u.data[0].length > 0;
      }, name);
      const visits = [
        ['#/jobs', () => page.waitForSelector('[data-testid=job-row] .bar .fill')],
        [`#/job/${job}`, () => drawn('loss')],
        [`#/compare?ids=${job}`, () => page.waitForSelector('label.pick')],
        ['#/new', () => page.waitForSelector('#spec-editor')],
        [`#/lrfinder/${finder}`, () => drawn('lrfinder')],
        ['#/sweeps', () => page.waitForSelector('#sweeps-table tr[data-sweep-id]')],
        [`#/sweep/${sweep}`, () => drawn('sweepMetric')],
      ];
      for (const [hash, ready] of visits) {
        await page.goto(`${d.url}/${hash}`);
        await ready();
        // the drawn chart took its styles (uPlot sets them through the CSSOM)
        await page.waitForTimeout(300);
        assert.deepEqual(await page.evaluate(() => window.__csp), [], hash);
      }
      // the styles that a page sets are there: the progress bar's width, a swatch's colour
      await page.goto(`${d.url}/#/jobs`);
      await page.waitForSelector('[data-testid=job-row] .bar .fill');
      assert.equal(await page.$eval('[data-testid=job-row] .bar .fill', (e) => e.style.width), '100%');
      await page.goto(`${d.url}/#/lrfinder/${finder}`);
      await page.waitForSelector('[data-testid=lrf-valley] .swatch');
      assert.equal(await page.$eval('[data-testid=lrf-valley] .swatch', (e) => getComputedStyle(e).backgroundColor), 'rgb(22, 163, 74)');
      await page.goto(`${d.url}/#/compare?ids=${job}`);
      // the picked job's colour beside its name
      await page.waitForFunction(() => [...document.querySelectorAll('label.pick')].some((e) => e.style.borderLeftColor));
      assert.deepEqual(await page.evaluate(() => window.__csp), []);
    });
    assert.deepEqual(errors, []);
    assert.deepEqual(refused, []);
  } finally {
    await b.close();
  }
});
