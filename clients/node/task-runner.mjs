#!/usr/bin/env node
// An editor-style task runner on bwrapd: it spawns the helper, talks JSON-RPC over
// LSP (Content-Length) framing with vscode-jsonrpc, runs one command in a sandbox
// with its output streamed, and prints each sandbox/output chunk as it arrives.
//
//   node task-runner.mjs [--root DIR] [--cwd DIR] [--timeout MS] -- COMMAND [ARG...]
//
// The helper is $BWRAPD, else the launcher of this checkout (../../bwrapd).
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CancellationTokenSource,
  StreamMessageReader,
  StreamMessageWriter,
  createMessageConnection,
} from 'vscode-jsonrpc/node';

const here = path.dirname(fileURLToPath(import.meta.url));

/** The helper executable: $BWRAPD, else this checkout's launcher. */
export function helperPath() {
  return process.env.BWRAPD || path.resolve(here, '..', '..', 'bwrapd');
}

/**
 * Spawns bwrapd and initializes it.
 * Returns { connection, child, info, stderr(), close() }.
 */
export async function startBwrapd({ command = helperPath(), args = [], onStderr } = {}) {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  let stderrText = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    stderrText = (stderrText + chunk).slice(-8192);
    onStderr?.(chunk);
  });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const spawnError = new Promise((_, reject) => child.on('error', reject));

  // The first byte the server reads is the 'C' of "Content-Length:": LSP framing.
  const connection = createMessageConnection(
    new StreamMessageReader(child.stdout),
    new StreamMessageWriter(child.stdin),
  );
  connection.listen();

  const died = exited.then(({ code, signal }) => {
    throw new Error(`bwrapd exited (code ${code}, signal ${signal}); stderr:\n${stderrText}`);
  });
  let info;
  try {
    info = await Promise.race([
      connection.sendRequest('initialize', {
        clientName: 'bwrapd-node-example',
        clientVersion: '0.1.0',
        protocolVersion: 1,
      }),
      died,
      spawnError,
    ]);
  } catch (err) {
    connection.dispose();
    child.kill('SIGKILL');
    throw err;
  }
  died.catch(() => {});

  async function close(timeoutMs = 10000) {
    const timer = setTimeout(() => {
      try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
    }, timeoutMs);
    try {
      const result = await Promise.race([connection.sendRequest('shutdown'), exited]);
      await connection.sendNotification('exit');
      child.stdin.end();
      const status = await exited;
      return { shutdown: result, ...status };
    } finally {
      clearTimeout(timer);
      connection.dispose();
    }
  }

  return { connection, child, info, exited, stderr: () => stderrText, close };
}

/**
 * Runs one command in a sandbox with stdout and stderr streamed. onOutput(stream, text)
 * gets each sandbox/output chunk as it arrives (base64 chunks are decoded to a Buffer);
 * onStarted({sandboxId, pid}) when the command runs. Resolves with the run's result;
 * a CancellationToken sends $/cancelRequest (the server answers -32800).
 */
let taskCounter = 0;
export async function runTask(connection, params, { onOutput, onStarted, token } = {}) {
  const sandboxId = params.sandboxId ?? `node-${process.pid}-${++taskCounter}`;
  const subscriptions = [
    connection.onNotification('sandbox/output', (p) => {
      if (p.sandboxId !== sandboxId) return;
      onOutput?.(p.stream, p.text ?? Buffer.from(p.base64 ?? '', 'base64'));
    }),
    connection.onNotification('sandbox/started', (p) => {
      if (p.sandboxId === sandboxId) onStarted?.(p);
    }),
  ];
  try {
    const runParams = { stdout: 'stream', stderr: 'stream', ...params, sandboxId };
    // Pass the token only when there is one: a trailing undefined would be taken as a
    // second positional parameter, and params sent as an array.
    return await (token
      ? connection.sendRequest('sandbox/run', runParams, token)
      : connection.sendRequest('sandbox/run', runParams));
  } finally {
    subscriptions.forEach((s) => s.dispose());
  }
}

async function main(argv) {
  const params = { root: '/' };
  let i = 0;
  for (; i < argv.length && argv[i] !== '--'; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (flag === '--root') params.root = value;
    else if (flag === '--cwd') params.cwd = value;
    else if (flag === '--timeout') params.timeoutMs = Number(value);
    else throw new Error(`unknown option ${flag}`);
  }
  params.command = argv.slice(i + 1);
  if (params.command.length === 0) {
    console.error('usage: task-runner.mjs [--root DIR] [--cwd DIR] [--timeout MS] -- COMMAND [ARG...]');
    process.exit(2);
  }

  const bwrapd = await startBwrapd({ onStderr: (s) => process.stderr.write(s) });
  // Ctrl-C cancels the task: the helper terminates the sandbox and answers -32800.
  const cancel = new CancellationTokenSource();
  process.on('SIGINT', () => cancel.cancel());
  let code = 1;
  try {
    const result = await runTask(bwrapd.connection, params, {
      token: cancel.token,
      onStarted: (p) => console.error(`[task ${p.sandboxId} started, pid ${p.pid}]`),
      onOutput: (stream, data) => (stream === 'stderr' ? process.stderr : process.stdout).write(data),
    });
    console.error(`[task ${result.sandboxId}: ${result.status}, exit code ${result.exitCode}` +
      `${result.signal ? `, signal ${result.signal}` : ''}${result.setupError ? `, ${result.setupError}` : ''}` +
      `, ${Math.round(result.durationMs)} ms]`);
    if (result.status === 'exited') code = result.exitCode;
  } catch (err) {
    console.error(`[task failed: ${err.message}${err.code ? ` (code ${err.code})` : ''}]`);
  } finally {
    await bwrapd.close();
  }
  process.exit(code);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((err) => {
    console.error(err.message);
    process.exit(1);
  });
}
