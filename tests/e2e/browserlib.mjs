// What the tests of the dashboard in a real browser share: headless Chromium through
// playwright-core, on a fresh profile directory of its own that is removed with it.
// (A module of its own, not lib.mjs: the tests and benchmarks without a browser need no
// playwright-core.)
import {chromium} from 'playwright-core';
import {removeDir, tmpDir} from './lib.mjs';

// The browser: $CHROMIUM, else Debian's chromium.
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

// Headless, without the sandbox, the GPU, or any traffic of Chromium's own (updates, sync,
// first-run pages, QUIC) beside the page's.
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                              '--disable-component-update', '--no-first-run', '--disable-quic', '--disable-sync'];

// Launches Chromium on a fresh profile (a temp dir). options go to playwright's
// launchPersistentContext as they are (viewport, ...), after executablePath, headless and args.
// Resolves to {ctx, profile, firstPage(), close()}: firstPage() resolves to the page the browser
// opened (a new one if it opened none); close() closes the browser, then removes the profile.
// A launch that fails removes the profile too.
export async function launchBrowser(options = {}) {
  const profile = tmpDir('anneald-chromium-');
  let ctx;
  try {
    ctx = await chromium.launchPersistentContext(profile, {executablePath: CHROMIUM, headless: true,
                                                           args: CHROMIUM_ARGS, ...options});
  } catch (e) {
    removeDir(profile);
    throw e;
  }
  return {
    ctx, profile,
    firstPage: async () => ctx.pages()[0] || await ctx.newPage(),
    async close() {
      try {
        await ctx.close();
      } finally {
        removeDir(profile);
      }
    },
  };
}
