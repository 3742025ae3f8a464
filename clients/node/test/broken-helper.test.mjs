// How the example client copes with a broken helper (fixtures/fake-helper.mjs): no run
// is left pending when the helper exits or closes its stdout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { startBwrapd } from '../task-runner.mjs';

const fake = fileURLToPath(new URL('../fixtures/fake-helper.mjs', import.meta.url));

async function startFake(mode, env = {}) {
  const saved = { ...process.env };
  Object.assign(process.env, { FAKE_MODE: mode }, env);
  try {
    return await startBwrapd({ command: process.execPath, args: [fake] });
  } finally {
    process.env = saved;
  }
}

/** Whether the promise settles within ms: { settled, value | error }. */
async function within(promise, ms) {
  let timer;
  const late = new Promise((resolve) => { timer = setTimeout(() => resolve({ settled: false }), ms); });
  try {
    return await Promise.race([promise.then((value) => ({ settled: true, value }), (error) => ({ settled: true, error })), late]);
  } finally {
    clearTimeout(timer);
  }
}

test('a run fails when the helper exits while a process it left holds its stdout', async () => {
  const marker = `${process.pid}${Date.now() % 100000}`;
  // the orphan: a node that sleeps 120 s, marked so that it can be killed at the end
  const orphan = [process.execPath, '-e', `setTimeout(() => {}, 120000) // ${marker}`];
  const bwrapd = await startFake('orphan', { FAKE_ORPHAN_ARGV: JSON.stringify(orphan) });
  const started = Date.now();
  const outcome = await within(bwrapd.runTask({ command: ['x'], root: '/' }), 60000);
  try {
    assert.ok(outcome.settled, 'the run is still pending 60 s after the helper exited');
    assert.equal(outcome.error?.name, 'HelperExitedError', String(outcome.error ?? outcome.value));
    assert.match(outcome.error.message, /exit status 3/);
    assert.ok(Date.now() - started < 30000, `rejected after ${Date.now() - started} ms`);
    await assert.rejects(bwrapd.runTask({ command: ['x'], root: '/' }), { name: 'HelperExitedError' });
    const closed = await within(bwrapd.close(2000), 60000);
    assert.ok(closed.settled, 'close() still pending');
  } finally {
    killMarked(marker);
  }
});

test('a run fails when the helper closes its stdout and stays', async () => {
  const bwrapd = await startFake('closeout');
  try {
    const outcome = await within(bwrapd.runTask({ command: ['x'], root: '/' }), 60000);
    assert.ok(outcome.settled, 'the run is still pending 60 s after the helper closed its stdout');
    assert.equal(outcome.error?.name, 'HelperExitedError', String(outcome.error ?? outcome.value));
    assert.match(outcome.error.message, /closed its stdout/);
    const closed = await within(bwrapd.close(2000), 60000);
    assert.ok(closed.settled, 'close() still pending');
    assert.equal(closed.value?.signal, 'SIGKILL');
  } finally {
    try { process.kill(-bwrapd.child.pid, 'SIGKILL'); } catch { /* gone */ }
  }
});

function killMarked(marker) {
  import('node:fs').then(({ readdirSync, readFileSync }) => {
    for (const pid of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
      try {
        if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`// ${marker}`)) process.kill(Number(pid), 'SIGKILL');
      } catch { /* gone */ }
    }
  });
}
