// The e2e helpers themselves: a daemon whose stderr holds a sanitizer report, or that exits
// other than with 0 on SIGTERM, fails the test that ran it (make check relies on this).
import {test} from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {removeDir, tmpDir, withDaemon, writeFile} from './lib.mjs';

// A stand-in daemon: announces itself, and on SIGTERM prints `line` to stderr and exits `code`.
function fakeDaemon(dir, line, code) {
  const p = writeFile(dir, 'fake.sh', `#!/bin/sh
trap 'echo "${line}" >&2; exit ${code}' TERM
echo "listening on http://127.0.0.1:9"
while :; do sleep 0.05; done
`);
  fs.chmodSync(p, 0o755);
  return p;
}

test('a sanitizer report on stderr or a non-zero exit fails the test', async () => {
  const dir = tmpDir();
  try {
    for (const line of ['x.c:3:9: runtime error: signed integer overflow',
      '==1==ERROR: AddressSanitizer: heap-use-after-free', 'SUMMARY: AddressSanitizer: 64 byte(s) leaked']) {
      await assert.rejects(withDaemon({bin: fakeDaemon(dir, line, 0)}, async () => {}), /sanitizer report/, line);
    }
    await assert.rejects(withDaemon({bin: fakeDaemon(dir, 'bye', 23)}, async () => {}), /exited with .*23/);
    assert.equal(await withDaemon({bin: fakeDaemon(dir, 'stopping', 0)}, async (d) => d.url), 'http://127.0.0.1:9');
  } finally {
    removeDir(dir);
  }
});
