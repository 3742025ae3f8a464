// Drives the real helper ($BWRAPD or the checkout's ./bwrapd) over LSP framing.
// Run: cd clients/node && npm install && npm test
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CancellationTokenSource } from 'vscode-jsonrpc/node';
import { startBwrapd, runTask, helperPath } from '../task-runner.mjs';

let bwrapd;

before(async () => {
  try {
    bwrapd = await startBwrapd();
  } catch (err) {
    throw new Error(`cannot start the bwrapd helper ${helperPath()} (build the server: ./mvnw package -DskipTests): ${err.message}`);
  }
});

after(async () => {
  if (bwrapd && bwrapd.child.exitCode === null) {
    bwrapd.child.kill('SIGKILL');
  }
});

test('initialize answers with the server and protocol version', () => {
  assert.equal(bwrapd.info.serverName, 'bwrapd');
  assert.equal(bwrapd.info.protocolVersion, 1);
  assert.equal(typeof bwrapd.info.capabilities, 'object');
});

test('rpc.discover returns an OpenRPC document listing sandbox/run', async () => {
  const doc = await bwrapd.connection.sendRequest('rpc.discover');
  assert.equal(typeof doc.openrpc, 'string');
  const names = doc.methods.map((m) => m.name);
  assert.ok(names.includes('sandbox/run'), `methods: ${names}`);
});

test('a streamed run delivers sandbox/output before its response', async () => {
  const events = [];
  const out = { stdout: '', stderr: '' };
  const result = await runTask(bwrapd.connection, {
    root: '/',
    command: ['/bin/sh', '-c', 'echo one; sleep 0.2; echo two >&2; sleep 0.2; echo three'],
  }, {
    onStarted: () => events.push('started'),
    onOutput: (stream, data) => {
      events.push(stream);
      out[stream] += data;
    },
  }).then((r) => {
    events.push('response');
    return r;
  });
  assert.equal(result.status, 'exited');
  assert.equal(result.exitCode, 0);
  assert.equal(out.stdout, 'one\nthree\n');
  assert.equal(out.stderr, 'two\n');
  assert.equal(events[0], 'started', `events: ${events}`);
  assert.equal(events.at(-1), 'response', `events: ${events}`);
  assert.ok(events.includes('stdout') && events.includes('stderr'), `events: ${events}`);
  assert.ok(!result.stdout?.text, `streamed stdout is not captured: ${JSON.stringify(result.stdout)}`);
});

test('cancelling a run sends $/cancelRequest and the server answers -32800', async () => {
  const source = new CancellationTokenSource();
  const start = Date.now();
  await assert.rejects(
    runTask(bwrapd.connection, { root: '/', command: ['/bin/sleep', '30'] }, {
      token: source.token,
      onStarted: () => source.cancel(),
    }),
    (err) => err.code === -32800,
  );
  assert.ok(Date.now() - start < 10000, 'cancelled promptly');
});

test('shutdown and exit end the helper with status 0', async () => {
  const { shutdown, code } = await bwrapd.close();
  assert.equal(shutdown.terminated, 0);
  assert.equal(code, 0);
});
