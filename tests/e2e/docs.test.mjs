// The documentation in docs/ checked against the daemon, so it cannot drift: every example
// job of JOBSPEC.md marked accepted is accepted, every one marked refused gets exactly the
// errors printed under it; every path the daemon routes is in API.md, and API.md's marked
// request examples answer as stated.
import {test} from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {spawnSync} from 'node:child_process';
import {BIN, api, withDaemon} from './lib.mjs';

const jobspec = fs.readFileSync('docs/JOBSPEC.md', 'utf8');
const apimd = fs.readFileSync('docs/API.md', 'utf8');

const examples = (text) => [...text.matchAll(/<!-- example: (accepted|refused) -->\n```json\n([\s\S]*?)```\n(?:answers 400 with these errors \(`field: message`\):\n\n```text\n([\s\S]*?)```)?/g)]
  .map((m) => ({kind: m[1], spec: m[2], errors: m[3] ? m[3].trimEnd().split('\n') : null}));

test('JOBSPEC.md examples answer as the page says', async () => {
  const ex = examples(jobspec);
  assert.ok(ex.filter((e) => e.kind === 'accepted').length >= 3, 'accepted examples');
  assert.ok(ex.filter((e) => e.kind === 'refused').length >= 5, 'refused examples');
  await withDaemon({args: ['--workers', '1']}, async (d) => {
    for (const e of ex) {
      const r = await api(d.url, 'POST', '/v1/jobs', e.spec, {'Content-Type': 'application/json'});
      if (e.kind === 'accepted') {
        assert.equal(r.status, 201, `${e.spec.slice(0, 80)}: ${r.text}`);
        await api(d.url, 'POST', `/v1/jobs/${r.json.id}/cancel`);
      } else {
        assert.equal(r.status, 400, e.spec.slice(0, 80));
        assert.ok(e.errors, `the refused example ${e.spec.slice(0, 60)} shows its errors`);
        assert.deepEqual(r.json.errors.map((x) => `${x.field}: ${x.message}`), e.errors);
      }
    }
  });
});

// A scheduler the daemon accepts but the page leaves out is one no reader finds.
test('JOBSPEC.md names every scheduler type the daemon accepts', () => {
  const list = /KNOWN_TYPES\[\] =\s*((?:"[^"]*"\s*)+);/.exec(fs.readFileSync('core/sched.c', 'utf8'))[1];
  const types = list.replace(/"\s*"/g, '').replace(/"/g, '').split(', ');
  assert.ok(types.length >= 19, types.join(' '));
  for (const t of types) assert.ok(jobspec.includes(`\`${t}\``), `JOBSPEC.md names ${t}`);
});

test('API.md lists every routed path and its marked requests answer as stated', async () => {
  const routes = fs.readFileSync('api/routes.c', 'utf8');
  const paths = [...routes.matchAll(/\{"(GET|POST|DELETE|PATCH|PUT)", "([^"]+)"/g)].map((m) => [m[1], m[2]]);
  assert.ok(paths.length > 15);
  for (const [method, p] of paths) {
    if (p === '/{file}' || p === '/') { assert.ok(apimd.includes('`GET /`')); continue; }
    assert.ok(apimd.includes(`${method} ${p}`), `API.md names ${method} ${p}`);
  }
  const reqs = [...apimd.matchAll(/<!-- example: request (\w+) (\S+) (\d+) -->\n```json\n([\s\S]*?)```/g)];
  assert.ok(reqs.length >= 1);
  // Every marked example is one whole JSON body: a fence left open would send the next
  // section along with it, which the daemon refuses for a reason the page does not give.
  assert.equal(reqs.length, (apimd.match(/<!-- example: request /g) || []).length);
  for (const [, method, p, , body] of reqs)
    assert.doesNotThrow(() => JSON.parse(body), `the example ${method} ${p} is one JSON body`);
  await withDaemon({}, async (d) => {
    for (const [, method, p, status, body] of reqs) {
      const r = await api(d.url, method, p, body, {'Content-Type': 'application/json'});
      assert.equal(r.status, Number(status), r.text.slice(0, 300));
    }
  });
});

// A code block left open turns the rest of a page into code.
test('every code fence in the docs is closed', () => {
  for (const f of ['README.md', ...fs.readdirSync('docs').filter((x) => x.endsWith('.md')).map((x) => `docs/${x}`)]) {
    const lines = fs.readFileSync(f, 'utf8').split('\n');
    let open = 0;
    lines.forEach((l, i) => {
      if (!/^\s*```/.test(l)) return;
      if (open) open = 0;
      else {
        open = i + 1;
        assert.match(l, /^\s*```[\w-]*\s*$/, `${f}:${i + 1} opens a fence`);
      }
    });
    assert.equal(open, 0, `${f}: the fence opened at line ${open} is never closed`);
  }
});

test('the README links the docs, which exist', () => {
  const readme = fs.readFileSync('README.md', 'utf8');
  for (const f of ['docs/API.md', 'docs/JOBSPEC.md']) {
    assert.ok(readme.includes(`(${f})`), `README links ${f}`);
    assert.ok(fs.existsSync(f));
  }
  // no link to a document the repository does not have
  for (const m of readme.matchAll(/\]\(([^)#]+\.md)\)/g)) assert.ok(fs.existsSync(m[1]), m[1]);
  assert.doesNotMatch(readme, /\(JOBSPEC\.md\)|\bin API\.md\b|DESIGN\.md/);
});

// The layering docs/ARCHITECTURE.md states, read from the sources' #include lines.
test('the layers keep to ARCHITECTURE.md', () => {
  const arch = fs.readFileSync('docs/ARCHITECTURE.md', 'utf8');
  const src = [];
  for (const dir of ['core', 'store', 'jobs', 'api', 'daemon', 'util', 'rank'])
    for (const f of fs.readdirSync(dir)) if (/\.(c|h|inc)$/.test(f)) src.push(`${dir}/${f}`);
  const includes = (f) => [...fs.readFileSync(f, 'utf8').matchAll(/^#include [<"]([^>"]+)[>"]/gm)].map((m) => m[1]);
  const bad = [];
  for (const f of src) {
    const dir = f.split('/')[0];
    for (const inc of includes(f)) {
      const wiring = f === 'daemon/main.c' || f === 'daemon/loop.c';
      if ((inc.startsWith('api/') || inc === 'microhttpd.h') && dir !== 'api' && !wiring)
        bad.push(`${f} includes ${inc} (only api/ and the wiring may)`);
      if (inc.startsWith('daemon/') && dir !== 'daemon') bad.push(`${f} includes ${inc} (daemon/ is the top)`);
      if (inc.startsWith('jobs/') && ['core', 'store', 'util'].includes(dir)) bad.push(`${f} includes ${inc}`);
      if (dir === 'api' && inc.startsWith('jobs/') && inc !== 'jobs/service.h')
        bad.push(`${f} includes ${inc} (api/ knows the job manager by jobs/service.h alone)`);
      if (dir === 'core' && /^(store|uv|sqlite3|pthread)/.test(inc)) bad.push(`${f} includes ${inc} (core/ is pure)`);
    }
  }
  for (const inc of includes('store/store.h')) if (inc.includes('cJSON')) bad.push('store/store.h includes cJSON');
  assert.deepEqual(bad, []);
  // no product file over 600 lines
  const long = src.filter((f) => fs.readFileSync(f, 'utf8').split('\n').length - 1 > 600);
  assert.deepEqual(long, [], 'product files over 600 lines');
  // every source path the page names exists
  for (const m of arch.matchAll(/`((?:core|store|jobs|api|daemon|util|rank)\/[a-z_]+\.[ch])`/g))
    assert.ok(fs.existsSync(m[1]), `ARCHITECTURE.md names ${m[1]}`);
});

// The daemon's flags as options.c parses them, each explained in --help and in the man page,
// and every flag a command's --help names is in the man page's synopsis too.
test('every flag is in anneald --help and the man page', () => {
  const man = fs.readFileSync('docs/anneald.1', 'utf8').replace(/\\-/g, '-');
  const known = /known\[\] = \{([^}]*)\}/.exec(fs.readFileSync('daemon/options.c', 'utf8'))[1];
  const flags = [...known.matchAll(/"(--[a-z-]+)"/g)].map((m) => m[1]);
  assert.ok(flags.length >= 15, flags.join(' '));
  const help = spawnSync(BIN, ['--help'], {encoding: 'utf8'}).stdout;
  for (const f of flags) {
    assert.match(help, new RegExp(`\\n  ${f} `), `anneald --help explains ${f}`);
    assert.ok(man.includes(`.BI ${f} `), `the man page explains ${f}`);
  }
  for (const c of ['check', 'preview', 'train', 'lr-find', 'generate']) {
    const usage = spawnSync(BIN, [c, '--help'], {encoding: 'utf8'}).stdout.split('\n\n')[0];
    const synopsis = man.slice(man.indexOf(`.B anneald ${c}`), man.indexOf('.br', man.indexOf(`.B anneald ${c}`)));
    for (const [f] of usage.matchAll(/--[a-z-]+/g)) assert.ok(synopsis.includes(f), `the man page's ${c} takes ${f}`);
  }
});
