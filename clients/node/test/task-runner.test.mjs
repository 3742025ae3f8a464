// Drives the real helper ($BWRAPD, or bwrapd on PATH) over LSP framing.
// Run: cd clients/node && npm ci && BWRAPD=$PWD/../../bwrapd npm test
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CancellationTokenSource } from 'vscode-jsonrpc/node';
import { helperPath, lineProgress, parseArgs, startBwrapd } from '../task-runner.mjs';

const runner = fileURLToPath(new URL('../task-runner.mjs', import.meta.url));
let bwrapd;

async function start() {
  try {
    return await startBwrapd();
  } catch (err) {
    throw new Error(`cannot start the bwrapd helper (build the server: ./mvnw package -DskipTests, and set BWRAPD): ${err.message}`);
  }
}

before(async () => {
  bwrapd = await start();
});

after(async () => {
  if (bwrapd && bwrapd.child.exitCode === null) bwrapd.child.kill('SIGKILL');
});

/** Runs task-runner.mjs as a program: { code, stdout, stderr }. */
function runCli(args, options = {}) {
  return new Promise((resolve) => {
    execFile(process.execPath, [runner, ...args], { timeout: 60000, ...options }, (err, stdout, stderr) => {
      resolve({ code: err ? err.code : 0, stdout, stderr });
    });
  });
}

test('initialize answers with the server, its capabilities and limits', () => {
  assert.equal(bwrapd.info.serverName, 'bwrapd');
  assert.equal(bwrapd.info.protocolVersion, 1);
  assert.equal(typeof bwrapd.info.capabilities.childSubreaper, 'boolean');
  assert.ok(bwrapd.info.limits.maxMessageBytes >= 1024);
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
  const result = await bwrapd.runTask({
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
  assert.ok(!result.stdout?.text, `streamed stdout is not captured: ${JSON.stringify(result.stdout)}`);
});

test('two tasks in flight each get all of their own output', async () => {
  const script = (name) => `for i in 1 2 3 4 5 6; do echo ${name}$i; sleep 0.1; done`;
  const out = { a: '', b: '' };
  const [a, b] = await Promise.all(['a', 'b'].map((name) => bwrapd.runTask(
    { root: '/', command: ['/bin/sh', '-c', script(name)] },
    { onOutput: (stream, data) => { out[name] += data; } },
  )));
  assert.equal(a.status, 'exited');
  assert.equal(b.status, 'exited');
  assert.equal(out.a, 'a1\na2\na3\na4\na5\na6\n');
  assert.equal(out.b, 'b1\nb2\nb3\nb4\nb5\nb6\n');
});

test('a long run is reported as $/progress: begin, one report per line, end', async () => {
  const reports = [];
  const command = ['/bin/sh', '-c', "printf 'step 1\\nstep'; sleep 0.2; printf ' 2\\n'; sleep 0.2; echo oops >&2; sleep 0.2; printf 'last'"];
  const result = await bwrapd.runTask({ root: '/', command }, { onProgress: (p) => reports.push(p) });
  assert.equal(result.status, 'exited');
  assert.deepEqual(reports[0], { kind: 'begin', title: command.join(' '), cancellable: true });
  assert.deepEqual(reports.slice(1), [
    { kind: 'report', message: 'step 1' },
    { kind: 'report', message: 'step 2' },
    { kind: 'report', message: 'oops' },
    { kind: 'report', message: 'last' },
    { kind: 'end', message: 'exited 0' },
  ]);
});

test('limits round-trip: enforced where capabilities.limits says, reported in limitExceeded, refused by name elsewhere', async (t) => {
  const enforced = bwrapd.info.capabilities.limits;
  assert.ok(enforced && enforced.fileSizeBytes, `fileSizeBytes is an rlimit, enforced everywhere: ${JSON.stringify(enforced)}`);
  const big = await bwrapd.runTask({
    root: '/', command: ['/bin/dd', 'if=/dev/zero', 'of=/tmp/big', 'bs=1024', 'count=64'], stderr: 'capture',
    limits: { fileSizeBytes: 10000 },
  });
  assert.deepEqual([big.status, big.signal, big.limitExceeded], ['signaled', 'SIGXFSZ', 'fileSize'], JSON.stringify(big));
  const fork = { root: '/', stdout: 'capture', limits: { pids: 8 },
    command: ['/bin/sh', '-c', '(i=0; while [ $i -lt 64 ]; do sleep 30 & i=$((i+1)); done) 2>/dev/null; echo forked'] };
  if (!enforced.pids) {
    await assert.rejects(bwrapd.runTask(fork), (err) => err.code === -32602 && err.message.startsWith('limits.pids: '));
    t.skip(`this host cannot enforce pids for this user (capabilities.limits ${JSON.stringify(enforced)}): refused by name`);
    return;
  }
  const forked = await bwrapd.runTask(fork);
  assert.equal(forked.limitExceeded, 'pids', JSON.stringify(forked));
  assert.equal(forked.stdout.text, 'forked\n');
});

test('lineProgress keeps a character split across chunks whole', () => {
  const reports = [];
  const progress = lineProgress('t', (p) => reports.push(p));
  const bytes = Buffer.from('café\n');
  progress.output('stdout', bytes.subarray(0, 4));
  progress.output('stdout', bytes.subarray(4));
  progress.end('done');
  assert.deepEqual(reports.map((r) => r.message), [undefined, 'café', 'done']);
});

test('cancelling a run sends $/cancelRequest; the -32800 error carries the result', async () => {
  const source = new CancellationTokenSource();
  const start = Date.now();
  await assert.rejects(
    bwrapd.runTask({ root: '/', command: ['/bin/sleep', '30'] }, {
      token: source.token,
      onStarted: () => source.cancel(),
    }),
    (err) => err.code === -32800 && err.data?.status === 'cancelled',
  );
  assert.ok(Date.now() - start < 10000, 'cancelled promptly');
});

test('a helper killed mid-task rejects the pending tasks at once, and every later one', async () => {
  const own = await start();
  let started;
  const startedPromise = new Promise((resolve) => { started = resolve; });
  const tasks = [1, 2].map(() => own.runTask({ root: '/', command: ['/bin/sleep', '30'] }, { onStarted: started }));
  await startedPromise;
  const killedAt = Date.now();
  process.kill(own.child.pid, 'SIGKILL');
  for (const task of tasks) {
    await assert.rejects(task, (err) => err.name === 'HelperExitedError' && /SIGKILL/.test(err.message));
  }
  assert.ok(Date.now() - killedAt < 15000, 'rejected promptly'); // sleep 30 would run on; slack for a loaded machine
  await assert.rejects(own.runTask({ root: '/', command: ['/bin/true'] }), { name: 'HelperExitedError' });
  await own.close();
});

test('bad arguments are reported, not ignored', async () => {
  assert.throws(() => parseArgs(['--timeout', 'abc', '--', 'true']), /--timeout must be a whole number/);
  assert.throws(() => parseArgs(['--timeout', '0', '--', 'true']), /--timeout/);
  assert.throws(() => parseArgs(['--root']), /--root needs a value/);
  assert.throws(() => parseArgs(['--bogus', 'x', '--', 'true']), /unknown option --bogus/);
  assert.throws(() => parseArgs(['--']), /no command/);
  assert.deepEqual(parseArgs(['--timeout', '1500', '--', 'true']).params, { root: '/', timeoutMs: 1500, command: ['true'] });
  const { code, stderr } = await runCli(['--timeout', 'abc', '--', '/bin/true']);
  assert.equal(code, 2);
  assert.match(stderr, /--timeout must be a whole number.*\nusage:/);
});

test('the program streams a run and exits with its status', async () => {
  const { code, stdout, stderr } = await runCli(['--', '/bin/sh', '-c', 'echo hi; exit 3']);
  assert.equal(stdout, 'hi\n');
  assert.equal(code, 3, stderr);
});

test('the helper is BWRAPD, else bwrapd in an absolute PATH directory, never one in the working directory', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'bwrapd-node-discovery-'));
  try {
    const marker = path.join(dir, 'ran');
    writeFileSync(path.join(dir, 'bwrapd'), `#!/bin/sh\ntouch '${marker}'\nexit 3\n`);
    chmodSync(path.join(dir, 'bwrapd'), 0o755);
    mkdirSync(path.join(dir, 'sub'));
    for (const PATH of ['/usr/bin:/bin', '.:..:/usr/bin', '']) {
      assert.throws(() => helperPath({ PATH }), (err) => err.code === 'ENOENT' && /BWRAPD/.test(err.message));
      const env = { ...process.env, PATH };
      delete env.BWRAPD;
      const { code, stderr } = await runCli(['--', '/bin/true'], { cwd: path.join(dir, 'sub'), env });
      assert.equal(code, 1);
      assert.match(stderr, /not found.*BWRAPD/);
      assert.ok(!existsSync(marker), `PATH=${PATH}: the bwrapd in the working directory's parent ran`);
    }
    assert.equal(helperPath({ PATH: `/nonexistent:${dir}` }), path.join(dir, 'bwrapd'));
    assert.equal(helperPath({ PATH: dir, BWRAPD: '/opt/bwrapd' }), '/opt/bwrapd');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('installed elsewhere with npm, the bwrapd-task command runs a task', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'bwrapd-node-install-'));
  try {
    writeFileSync(path.join(dir, 'package.json'), '{"name": "editor", "version": "1.0.0", "private": true}');
    const npm = await new Promise((resolve) => {
      execFile('npm', ['install', '--offline', '--no-audit', '--no-fund', path.dirname(runner)],
        { cwd: dir, timeout: 120000, env: { ...process.env, npm_config_cache: path.join(dir, '.npm') } },
        (err, stdout, stderr) => resolve({ err, output: stdout + stderr }));
    });
    assert.equal(npm.err, null, npm.output);
    const { code, stdout, stderr } = await new Promise((resolve) => {
      execFile(path.join(dir, 'node_modules', '.bin', 'bwrapd-task'), ['--', '/bin/echo', 'installed'],
        { cwd: dir, timeout: 60000 }, (err, out, errOut) => resolve({ code: err ? err.code : 0, stdout: out, stderr: errOut }));
    });
    assert.equal(code, 0, stderr);
    assert.equal(stdout, 'installed\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('shutdown and exit end the helper with status 0', async () => {
  const { shutdown, code } = await bwrapd.close();
  assert.equal(shutdown.terminated, 0);
  assert.equal(code, 0);
});

test('a run over the helper\'s maxMessageBytes is rejected at once, and nothing is sent', async () => {
  const small = await startBwrapd({ command: helperPath(), args: ['--max-message-bytes', '4096'] });
  try {
    assert.equal(small.info.limits.maxMessageBytes, 4096);
    const hang = new Promise((resolve) => setTimeout(() => resolve('no answer within 10 s'), 10000).unref());
    const outcome = await Promise.race([
      small.runTask({ root: '/', command: ['wc', '-c'], stdin: { text: 'x'.repeat(5000) } }).then(
        (r) => `resolved: ${JSON.stringify(r)}`, (e) => e),
      hang,
    ]);
    assert.ok(outcome instanceof Error, String(outcome));
    assert.equal(outcome.name, 'MessageTooLargeError', outcome.message);
    assert.equal(outcome.limit, 4096);
    assert.ok(outcome.size > 5000, `size ${outcome.size}`);
    assert.match(outcome.message, /maxMessageBytes/);
    // The helper serves the next run normally.
    let out = '';
    const result = await small.runTask({ root: '/', command: ['cat'], stdin: { text: 'fits' } },
      { onOutput: (_, d) => { out += d; } });
    assert.equal(result.exitCode, 0);
    assert.equal(out, 'fits');
  } finally {
    await small.close();
  }
});
