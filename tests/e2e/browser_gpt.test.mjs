// The Sample box of a gpt job's page in a real browser (headless Chromium): it appears for a
// gpt job only, streams text from the latest checkpoint (the same text POST
// /v1/jobs/{id}/generate answers for the same settings), and shows a prompt outside the
// vocabulary as an error naming the prompt field.
import {test} from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {launchBrowser} from './browserlib.mjs';
import {api, tmpDir, waitJob, withDaemon} from './lib.mjs';

const SHOTS = 'build/screenshots';

const TEXT = 'to be or not to be, that is the question: whether tis nobler in the mind to suffer ' +
             'the slings and arrows of outrageous fortune, or to take arms against a sea of troubles';
const GPT = {name: 'tiny-gpt', seed: 2, steps: 20,
             model: {type: 'gpt', block_size: 8, n_layer: 1, n_head: 2, n_embd: 16},
             data: {type: 'text', text: TEXT}, checkpoint: {every_steps: 10},
             ds_config: {train_batch_size: 4, optimizer: {type: 'AdamW', params: {lr: 0.003}}}};
const LINEAR = {model: {type: 'linear', inputs: 2, outputs: 1}, steps: 5,
                data: {type: 'synthetic', task: 'regression', samples: 64, features: 2},
                ds_config: {train_batch_size: 8, optimizer: {type: 'SGD', params: {lr: 0.1}}}};

test('Sample box: streams generated text for a gpt job, shows errors by field', async () => {
  const b = await launchBrowser({viewport: {width: 1280, height: 900}});
  const errors = [];
  try {
    await withDaemon({}, async (d) => {
      const page = await b.firstPage();
      page.on('pageerror', (e) => errors.push(e.message));
      const lin = (await api(d.url, 'POST', '/v1/jobs', LINEAR)).json;
      const job = (await api(d.url, 'POST', '/v1/jobs', GPT)).json;
      await waitJob(d.url, job.id, (j) => j.state === 'completed');
      await waitJob(d.url, lin.id, (j) => j.state === 'completed');

      // no Sample box on a linear job's page
      await page.goto(`${d.url}/#/job/${lin.id}`);
      await page.waitForSelector('#job-spec');
      await page.waitForFunction(() => document.querySelector('#job-spec').textContent.includes('linear'));
      assert.equal(await page.$('#sample-box'), null);

      await page.goto(`${d.url}/#/job/${job.id}`);
      await page.waitForSelector('#sample-box');
      await page.fill('#sample-prompt', 'to be');
      await page.fill('#sample-max-tokens', '30');
      await page.fill('#sample-temperature', '0.9');
      await page.fill('#sample-top-k', '5');
      await page.fill('#sample-seed', '11');
      await page.evaluate(() => { // what happens to the output (empty so far) while it streams
        const out = document.querySelector('#sample-output');
        const n = window.__sampleMutations = {added: 0, removed: 0, text: 0};
        new MutationObserver((ms) => {
          for (const m of ms) {
            n.added += m.addedNodes.length;
            n.removed += m.removedNodes.length;
            if (m.type === 'characterData') n.text++;
          }
        }).observe(out, {childList: true, characterData: true, subtree: true});
      });
      await page.click('#sample-go');
      await page.waitForFunction(() => /tokens from the checkpoint at step 20/.test(
        document.querySelector('#sample-status').textContent));
      const shown = await page.textContent('#sample-output');
      // the prompt, then each token appended as it came (a text node each), the text before it
      // never rewritten
      assert.deepEqual(await page.evaluate(() => window.__sampleMutations), {added: 31, removed: 0, text: 0});
      assert.equal(await page.evaluate(() => document.querySelector('#sample-output').childNodes.length), 31);
      const want = (await api(d.url, 'POST', `/v1/jobs/${job.id}/generate`,
                              {prompt: 'to be', max_tokens: 30, temperature: 0.9, top_k: 5, seed: 11})).json;
      assert.equal(shown, 'to be' + want.text);
      fs.mkdirSync(SHOTS, {recursive: true});
      await page.screenshot({path: path.join(SHOTS, 'job-sample.png')});

      await page.fill('#sample-prompt', 'to be {');
      await page.click('#sample-go');
      await page.waitForSelector('#sample-error:not([hidden])');
      assert.match(await page.textContent('#sample-error'), /^prompt: .*'\{'/);

      // Stop ends a long sample where it is: the request is aborted, the text stays as it was
      await page.fill('#sample-prompt', 'to be');
      await page.fill('#sample-max-tokens', '100000');
      await page.evaluate(() => { // note the signal the page gives its generate request
        const real = window.fetch;
        window.fetch = (url, opts = {}) => {
          if (String(url).endsWith('/generate')) window.__genSignal = opts.signal || null;
          return real(url, opts);
        };
      });
      assert.equal(await page.isDisabled('#sample-stop'), true, 'nothing to stop yet');
      await page.click('#sample-go');
      await page.waitForFunction(() => document.querySelector('#sample-output').textContent.length > 20);
      assert.equal(await page.evaluate(() => window.__genSignal.aborted), false);
      await page.click('#sample-stop');
      await page.waitForFunction(() => window.__genSignal.aborted, null, {timeout: 5000});
      await page.waitForFunction(() => /^stopped after \d+ tokens$/.test(document.querySelector('#sample-status').textContent));
      const kept = await page.textContent('#sample-output');
      const n = Number(/\d+/.exec(await page.textContent('#sample-status'))[0]);
      assert.ok(n > 0 && kept.length >= 'to be'.length + n, `${n} tokens, ${kept.length} characters`);
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(await page.textContent('#sample-output'), kept, 'no token after Stop');
      assert.equal(await page.isVisible('#sample-error'), false);
      assert.equal(await page.isDisabled('#sample-stop'), true);
      assert.equal(await page.isEnabled('#sample-go'), true);

      // Leaving the page while a long sample streams stops it: the request is aborted, not
      // left making 100,000 tokens for a page nobody sees.
      await page.click('#sample-go');
      await page.waitForFunction(() => document.querySelector('#sample-output').textContent.length > 20);
      assert.equal(await page.evaluate(() => window.__genSignal && window.__genSignal.aborted), false);
      await page.evaluate(() => { location.hash = '#/jobs'; });
      await page.waitForFunction(() => window.__genSignal && window.__genSignal.aborted, null, {timeout: 5000});
      assert.equal(await page.isVisible('#sample-error'), false, 'no error shown for a page left');

      // a gpt job with no checkpoint yet: nothing to sample from, and the button says so
      const fresh = (await api(d.url, 'POST', '/v1/jobs', {...GPT, name: 'no-ckpt', steps: 100000000,
                                                              checkpoint: {every_steps: 100000000}})).json;
      await waitJob(d.url, fresh.id, (j) => j.state === 'running' && j.step > 0);
      await page.goto(`${d.url}/#/job/${fresh.id}`);
      await page.waitForSelector('#sample-box');
      await page.waitForFunction(() => document.querySelector('#sample-go').disabled);
      assert.match(await page.getAttribute('#sample-go', 'title'), /no checkpoint yet/);
      await api(d.url, 'POST', `/v1/jobs/${fresh.id}/pause`, {});   // its pause checkpoints it
      await page.waitForFunction(() => !document.querySelector('#sample-go').disabled, null, {timeout: 30000});
    });
  } finally {
    await b.close();
  }
  assert.deepEqual(errors, []);
});

// A fp16 job's loss chart: the loss scale as a step line on a second axis, and a red mark at
// the train loss of each skipped (overflowed) step, as many marks as the metrics' fp16.skipped.
test('fp16 loss chart: skipped steps are marked and the loss scale is drawn', async () => {
  const b = await launchBrowser({viewport: {width: 1280, height: 900}});
  const errors = [];
  try {
    await withDaemon({}, async (d) => {
      const page = await b.firstPage();
      page.on('pageerror', (e) => errors.push(e.message));
      const spec = {...GPT, steps: 60,
                    ds_config: {...GPT.ds_config, fp16: {enabled: true, initial_scale_power: 24, loss_scale_window: 4}}};
      const job = (await api(d.url, 'POST', '/v1/jobs', spec)).json;
      await waitJob(d.url, job.id, (j) => j.state === 'completed');
      const m = (await api(d.url, 'GET', `/v1/jobs/${job.id}/metrics`)).json;
      assert.ok(m.fp16.skipped.length >= 2);

      await page.goto(`${d.url}/#/job/${job.id}`);
      await page.waitForFunction(() => {
        const u = window.__anneald.charts.loss;
        return u && u.series.some((s) => s.label === 'skipped step');
      });
      const got = await page.evaluate(() => {
        const u = window.__anneald.charts.loss;
        const col = (label) => u.data[u.series.findIndex((s) => s.label === label)];
        return {x: u.data[0], skipped: col('skipped step'), scale: col('loss scale'),
                loss: col('train loss'), y2: u.series.find((s) => s.label === 'loss scale').scale};
      });
      const marked = got.x.filter((_, i) => got.skipped[i] != null);
      assert.deepEqual(marked, m.fp16.skipped);
      for (const s of m.fp16.skipped) assert.equal(got.skipped[got.x.indexOf(s)], got.loss[got.x.indexOf(s)]);
      assert.equal(got.y2, 'y2');
      assert.equal(got.scale[0], 2 ** 24);
      const last = m.fp16.loss_scale[m.fp16.loss_scale.length - 1];
      assert.equal(got.scale[got.scale.length - 1], last);
      fs.mkdirSync(SHOTS, {recursive: true});
      await page.screenshot({path: path.join(SHOTS, 'job-fp16.png')});
    });
  } finally {
    await b.close();
  }
  assert.deepEqual(errors, []);
});

// A daemon with a token: a refused token on generate asks for the right one, as every other
// request of the dashboard does, and the sample then streams.
test('Sample box: a 401 asks for the token and then samples', async () => {
  const dir = tmpDir();
  const token = 'tok-' + Math.random().toString(36).slice(2);
  fs.writeFileSync(path.join(dir, 'token'), token + '\n');
  const auth = {Authorization: 'Bearer ' + token};
  const b = await launchBrowser({viewport: {width: 1280, height: 900}});
  const errors = [];
  try {
    await withDaemon({args: ['--token-file', path.join(dir, 'token')]}, async (d) => {
      const page = await b.firstPage();
      page.on('pageerror', (e) => errors.push(e.message));
      const job = (await api(d.url, 'POST', '/v1/jobs', GPT, auth)).json;
      await waitJob(d.url, job.id, (j) => j.state === 'completed', 60000, auth);
      await page.goto(`${d.url}/#/job/${job.id}`);
      await page.waitForSelector('[data-testid=token-modal]');
      await page.fill('#token-input', token);
      await page.click('[data-testid=token-save]');
      await page.waitForSelector('#sample-box');
      // the daemon refuses the generate request's token once (as after the token file changed)
      let refused = 0;
      await page.route('**/generate', (rt) => {
        if (refused++) return rt.continue();
        return rt.continue({headers: {...rt.request().headers(), authorization: 'Bearer wrong'}});
      });
      await page.fill('#sample-prompt', 'to be');
      await page.fill('#sample-max-tokens', '10');
      await page.click('#sample-go');
      await page.waitForSelector('[data-testid=token-modal]');
      assert.match(await page.textContent('#token-modal'), /refused/);
      await page.fill('#token-input', token);
      await page.click('[data-testid=token-save]');
      await page.waitForFunction(() => /10 tokens from the checkpoint/.test(document.querySelector('#sample-status').textContent));
      assert.equal(await page.isVisible('#sample-error'), false);
      assert.equal(refused, 2, 'sent again with the token');
    });
  } finally {
    await b.close();
    fs.rmSync(dir, {recursive: true, force: true});
  }
  assert.deepEqual(errors, []);
});
