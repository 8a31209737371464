// The dashboard's entry point: hash routing between the pages (#/jobs, #/job/ID, #/compare,
// #/new, #/lrfinder/ID, #/sweeps, #/sweep/ID). Each page module exports mount(root, route) and returns its clean-up function; the
// router closes the page's event stream and charts before the next page mounts.
import {parseHash, toast} from './util.js';
import {closeEvents} from './api.js';
import * as jobs from './jobs.js';
import * as job from './job.js';
import * as compare from './compare.js';
import * as newjob from './newjob.js';
import * as lrfinder from './lrfinder.js';
import * as sweeps from './sweeps.js';

const pages = {jobs, job, compare, new: newjob, lrfinder, sweeps, sweep: sweeps};
const root = document.getElementById('app');
let cleanup = null;

function route() {
  const r = parseHash(location.hash);
  // #/jobs/ID is what people type for a job: it is the job page's address, #/job/ID.
  if (r.parts[0] === 'jobs' && r.parts[1]) {
    location.replace('#/job/' + encodeURIComponent(r.parts[1]));
    return;
  }
  if (!r.parts.length || !pages[r.parts[0]]) {
    if (r.parts.length) toast(`There is no page ${location.hash}: showing the jobs.`, 'error');
    location.replace('#/jobs');
    return;
  }
  if (cleanup) { try { cleanup(); } catch (e) { console.warn(e); } }
  cleanup = null;
  closeEvents();
  window.__anneald.charts = {};
  root.replaceChildren();
  for (const a of document.querySelectorAll('#nav a')) {
    a.classList.toggle('active', a.dataset.route === r.parts[0] ||
                                 (a.dataset.route === 'jobs' && r.parts[0] === 'job') ||
                                 (a.dataset.route === 'sweeps' && r.parts[0] === 'sweep'));
  }
  cleanup = pages[r.parts[0]].mount(root, r) || null;
}

window.addEventListener('hashchange', route);
route();
