#!/usr/bin/env node
// An editor-style task runner on bwrapd: it spawns the helper, talks JSON-RPC over
// LSP (Content-Length) framing with vscode-jsonrpc, runs commands in sandboxes with
// their output streamed, and reports each run's lines as $/progress-style messages.
//
//   node task-runner.mjs [--helper PATH] [--root DIR] [--cwd DIR] [--timeout MS] -- COMMAND [ARG...]
//   node task-runner.mjs --terminal [--root DIR] [-- COMMAND [ARG...]]   (default: sh)
//
// The helper is --helper, else $BWRAPD, else bwrapd on PATH (never anything else).
// This is the pattern to copy: one handler per notification routing by sandboxId,
// every pending run rejected when the helper dies, arguments checked; and with
// --terminal, an integrated terminal: the command on a pseudo-terminal in the sandbox,
// wired to the terminal this program runs in (runInTerminal).
import { spawn } from 'node:child_process';
import { accessSync, constants, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CancellationTokenSource,
  StreamMessageReader,
  StreamMessageWriter,
  createMessageConnection,
} from 'vscode-jsonrpc/node';

/** @typedef {import('./bwrapd').RunParams} RunParams */
/** @typedef {import('./bwrapd').RunResult} RunResult */
/** @typedef {import('./bwrapd').InitializeResult} InitializeResult */
/** @typedef {import('./bwrapd').OutputParams} OutputParams */
/** @typedef {import('./bwrapd').StartedParams} StartedParams */
/** @typedef {import('./bwrapd').WorkDoneProgress} WorkDoneProgress */

const HOW_TO_NAME_THE_HELPER =
  'pass its path (--helper, or startBwrapd({command})), set BWRAPD to it, or put bwrapd on PATH';

/**
 * The helper executable: $BWRAPD, else bwrapd in an absolute directory of PATH.
 * Nothing else, so a file the user did not choose (one in the working directory,
 * say) is never run. Throws an Error with code 'ENOENT' when there is none.
 */
export function helperPath(env = process.env) {
  if (env.BWRAPD) return env.BWRAPD;
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (!path.isAbsolute(dir)) continue; // a relative entry would mean the working directory
    const candidate = path.join(dir, 'bwrapd');
    try {
      if (statSync(candidate).isFile()) {
        accessSync(candidate, constants.X_OK);
        return candidate;
      }
    } catch { /* not there, or not executable */ }
  }
  throw Object.assign(new Error(`the bwrapd helper was not found: ${HOW_TO_NAME_THE_HELPER}`), { code: 'ENOENT' });
}

/**
 * A request larger than the helper takes (its initialize result's
 * limits.maxMessageBytes): the helper would skip it and answer an error without its
 * id, which vscode-jsonrpc can give to no request, so the task would wait for ever.
 */
export class MessageTooLargeError extends Error {
  constructor(method, size, limit) {
    super(`the ${method} request is ${size} bytes, over the helper's limit of ${limit} bytes (maxMessageBytes); ` +
      'nothing was sent: give large input as a file (stdin: {file: path}) or write it while the command runs ' +
      '(stdin: "stream", then sandbox/input)');
    this.name = 'MessageTooLargeError';
    this.code = 'ERR_BWRAPD_MESSAGE_TOO_LARGE';
    this.size = size;
    this.limit = limit;
  }
}

/**
 * Throws a MessageTooLargeError when a request of `method` with `params` would not
 * fit `limit` bytes. The size is that of the LSP body vscode-jsonrpc sends (its
 * Content-Length), counted with the largest id it could carry.
 */
export function checkMessageSize(method, params, limit) {
  if (!limit) return;
  const size = Buffer.byteLength(JSON.stringify({ jsonrpc: '2.0', id: Number.MAX_SAFE_INTEGER, method, params }), 'utf8');
  if (size > limit) throw new MessageTooLargeError(method, size, limit);
}

/** The error every pending and later run gets once the helper is gone. */
class HelperExitedError extends Error {
  constructor(code, signal, stderr, what) {
    what ??= `exited (${signal ? `killed by ${signal}` : `exit status ${code}`})`;
    super(`bwrapd ${what}${stderr.trim() ? `; last stderr:\n${stderr.trim()}` : ''}`);
    this.name = 'HelperExitedError';
    this.exitCode = code;
    this.signal = signal;
  }
}

/** How long the last frames of a helper that exited are waited for. */
const EXIT_GRACE_MS = 500;

let taskCounter = 0;
const newSandboxId = () => `node-${process.pid}-${++taskCounter}`;

/**
 * Spawns bwrapd (in a process group of its own, so a terminal's Ctrl-C reaches only
 * this program) and initializes it. Returns
 * { connection, child, info, runTask(params, handlers), close(), stderr(), exited }.
 */
export async function startBwrapd({ command, args = [], onStderr } = {}) {
  command ??= helperPath();
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  let stderrText = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    stderrText = (stderrText + chunk).slice(-8192);
    onStderr?.(chunk);
  });
  const spawned = new Promise((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  // 'close' waits for every stdio pipe to close as well, which a process the helper
  // left behind may hold open for ever: the exit, with a moment for its last frames
  // to be read, ends everything too.
  const closed = new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  const exitStatus = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const exited = Promise.race([closed, exitStatus.then((status) => new Promise((resolve) => setTimeout(() => resolve(status), EXIT_GRACE_MS)))]);

  // The first byte the server reads is the 'C' of "Content-Length:": LSP framing.
  const connection = createMessageConnection(new StreamMessageReader(child.stdout), new StreamMessageWriter(child.stdin));

  // One handler per notification for all runs: connection.onNotification keeps only
  // the last handler registered for a method, so a handler per run would steal the
  // notifications of the runs before it.
  /** @type {Map<string, {onOutput?: Function, onStarted?: Function, fail: (err: Error) => void}>} */
  const tasks = new Map();
  connection.onNotification('sandbox/output', (/** @type {OutputParams} */ p) => {
    const data = p.text ?? Buffer.from(p.base64 ?? '', 'base64');
    tasks.get(p.sandboxId)?.onOutput?.(p.stream, data);
  });
  connection.onNotification('sandbox/started', (/** @type {StartedParams} */ p) => {
    tasks.get(p.sandboxId)?.onStarted?.(p);
  });
  connection.listen();

  // Once the helper is gone every pending run is rejected at once; vscode-jsonrpc
  // itself would leave them pending when the stream just closes.
  let dead = null;
  let reject;
  const died = new Promise((_, r) => { reject = r; });
  died.catch(() => {});
  const fail = (err) => {
    if (dead) return;
    dead = err;
    for (const task of tasks.values()) task.fail(dead);
    tasks.clear();
    connection.dispose();
    reject(dead);
  };
  exited.then(({ code, signal }) => fail(new HelperExitedError(code, signal, stderrText)));
  // The helper's stdout ended: no answer can come any more. Normally it exits at
  // once, and that says how; one that stays wedged fails the runs all the same.
  // (unref: after close() disposes the connection, the timer must not hold this
  // program up; while a wedged helper runs, its process does.)
  connection.onClose(() => {
    setTimeout(() => fail(new HelperExitedError(null, null, stderrText, 'closed its stdout (still running)')),
      EXIT_GRACE_MS * 2).unref();
  });

  let info;
  try {
    await spawned;
    info = await Promise.race([
      connection.sendRequest('initialize', { clientName: 'bwrapd-node-example', clientVersion: '0.1.0', protocolVersion: 1 }),
      died,
    ]);
  } catch (err) {
    connection.dispose();
    if (child.exitCode === null && child.pid) child.kill('SIGKILL');
    if (err.code === 'ENOENT') err.message += `; ${HOW_TO_NAME_THE_HELPER}`;
    throw err;
  }

  /**
   * Runs one command in a sandbox with stdout and stderr streamed (unless params say
   * otherwise). onOutput(stream, text|Buffer) gets each chunk, onStarted({sandboxId,
   * pid}) the start, onProgress a $/progress-style report (begin, one report per
   * line of output, end). Resolves with the run's result; rejects with the server's
   * error (-32800 with the result as data when the token cancelled it) or a
   * HelperExitedError when the helper dies first.
   * @param {RunParams} params
   * @returns {Promise<RunResult>}
   */
  async function runTask(params, { onOutput, onStarted, onProgress, token } = {}) {
    if (dead) throw dead;
    const sandboxId = params.sandboxId ?? newSandboxId();
    if (tasks.has(sandboxId)) throw new Error(`sandboxId ${sandboxId} is already running in this client`);
    // A terminal is the command's stdin, stdout and stderr: nothing to stream besides it.
    const runParams = params.terminal ? { ...params, sandboxId } : { stdout: 'stream', stderr: 'stream', ...params, sandboxId };
    checkMessageSize('sandbox/run', runParams, info.limits?.maxMessageBytes);
    const progress = onProgress && lineProgress(params.command.join(' '), onProgress);
    let fail;
    const failed = new Promise((_, reject) => { fail = reject; });
    tasks.set(sandboxId, {
      onStarted,
      onOutput: (stream, data) => {
        progress?.output(stream, data);
        onOutput?.(stream, data);
      },
      fail,
    });
    try {
      // Pass the token only when there is one: a trailing undefined would be taken as a
      // second positional parameter, and params sent as an array.
      const request = token
        ? connection.sendRequest('sandbox/run', runParams, token)
        : connection.sendRequest('sandbox/run', runParams);
      const result = await Promise.race([request, failed]);
      progress?.end(`${result.status}${result.exitCode !== null ? ` ${result.exitCode}` : ''}`);
      return result;
    } catch (err) {
      progress?.end(`failed: ${err.message.split('\n')[0]}`);
      throw err;
    } finally {
      tasks.delete(sandboxId);
    }
  }

  async function close(timeoutMs = 10000) {
    const timer = setTimeout(() => {
      try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
    }, timeoutMs);
    try {
      const result = dead ? null : await Promise.race([connection.sendRequest('shutdown'), died]).catch(() => null);
      if (!dead) await connection.sendNotification('exit').catch(() => {});
      child.stdin.end();
      const status = await exited;
      return { shutdown: result, ...status };
    } finally {
      clearTimeout(timer);
      connection.dispose();
    }
  }

  return { connection, child, info, exited, runTask, stderr: () => stderrText, close };
}

/**
 * Runs params.command on a pseudo-terminal in a sandbox, wired to a local terminal the
 * way an editor wires its integrated terminal: `input` in raw mode, so that every
 * keystroke (Ctrl-C too) goes to the sandbox as typed (sandbox/input); the local window
 * size, and each change of it ('resize', the local SIGWINCH), to the sandbox's terminal
 * (sandbox/resize); what the command prints to `output`. The local terminal is
 * restored at the end. Resolves with the run's result.
 * @param {RunParams} params
 * @returns {Promise<RunResult>}
 */
export async function runInTerminal(bwrapd, params, { input = process.stdin, output = process.stdout } = {}) {
  const sandboxId = params.sandboxId ?? newSandboxId();
  const size = () => ({ rows: output.rows || 24, cols: output.columns || 80 });
  // Keystrokes and sizes race with the run's end: an answer that it is over is no error.
  const send = (method, p) => bwrapd.connection.sendRequest(method, { sandboxId, ...p }).catch(() => {});
  const onKeys = (data) => send('sandbox/input', { base64: data.toString('base64') });
  const onResize = () => send('sandbox/resize', size());
  const run = bwrapd.runTask({ ...params, sandboxId, terminal: { ...size(), term: process.env.TERM || undefined } },
    { onOutput: (_, data) => output.write(data) });
  input.setRawMode?.(true); // only a terminal has it; from a pipe the bytes go as they come
  input.on('data', onKeys);
  output.on('resize', onResize);
  try {
    return await run;
  } finally {
    output.off('resize', onResize);
    input.off('data', onKeys);
    input.setRawMode?.(false);
    input.pause();
  }
}

/**
 * Turns streamed output into work-done progress the way an editor shows a long
 * task: {kind: 'begin', title}, then {kind: 'report', message} for each complete
 * line (a line split across chunks is reported once whole), then {kind: 'end'}.
 * @param {(value: WorkDoneProgress) => void} report
 */
export function lineProgress(title, report) {
  const partial = { stdout: '', stderr: '' };
  const decoders = { stdout: new TextDecoder(), stderr: new TextDecoder() };
  report({ kind: 'begin', title, cancellable: true });
  const flush = (stream, text) => {
    const lines = (partial[stream] + text).split('\n');
    partial[stream] = lines.pop();
    for (const line of lines) report({ kind: 'report', message: line });
  };
  return {
    output(stream, data) {
      flush(stream, typeof data === 'string' ? data : decoders[stream].decode(data, { stream: true }));
    },
    end(message) {
      for (const stream of ['stdout', 'stderr']) {
        if (partial[stream]) report({ kind: 'report', message: partial[stream] });
        partial[stream] = '';
      }
      report({ kind: 'end', message });
    },
  };
}

const USAGE = 'usage: task-runner.mjs [--helper PATH] [--root DIR] [--cwd DIR] [--timeout MS] [--progress | --terminal] -- COMMAND [ARG...]';

/** The command line as { helper, progress, terminal, params }; throws a usage error for bad arguments. */
export function parseArgs(argv) {
  const params = { root: '/' };
  const options = { helper: undefined, progress: false, terminal: false, params };
  let i = 0;
  for (; i < argv.length && argv[i] !== '--'; i++) {
    const flag = argv[i];
    if (flag === '--progress' || flag === '--terminal') {
      options[flag.slice(2)] = true;
      continue;
    }
    if (!['--helper', '--root', '--cwd', '--timeout'].includes(flag)) throw new Error(`unknown option ${flag}`);
    const value = argv[++i];
    if (value === undefined || value === '--') throw new Error(`${flag} needs a value`);
    if (flag === '--helper') options.helper = value;
    else if (flag === '--root') params.root = value;
    else if (flag === '--cwd') params.cwd = value;
    else if (!/^[1-9][0-9]*$/.test(value) || !Number.isSafeInteger(Number(value))) {
      throw new Error(`--timeout must be a whole number of milliseconds, not ${JSON.stringify(value)}`);
    } else params.timeoutMs = Number(value);
  }
  params.command = argv.slice(i + 1);
  if (params.command.length === 0 && options.terminal) params.command = ['sh'];
  if (params.command.length === 0) throw new Error('no command given');
  if (options.progress && options.terminal) throw new Error('--progress and --terminal do not go together');
  return options;
}

/** Runs the task with its output (or progress) on this program's stdout and stderr. */
async function runTaskHere(bwrapd, { params, progress }) {
  // Ctrl-C cancels the task: the helper terminates the sandbox and answers -32800.
  const cancel = new CancellationTokenSource();
  process.on('SIGINT', () => cancel.cancel());
  const result = await bwrapd.runTask(params, {
    token: cancel.token,
    onStarted: (p) => console.error(`[task ${p.sandboxId} started, pid ${p.pid}]`),
    onOutput: progress ? undefined : (stream, data) => (stream === 'stderr' ? process.stderr : process.stdout).write(data),
    onProgress: progress ? (p) => console.log(JSON.stringify({ method: '$/progress', params: { token: 'task', value: p } })) : undefined,
  });
  console.error(`[task ${result.sandboxId}: ${result.status}, exit code ${result.exitCode}` +
    `${result.signal ? `, signal ${result.signal}` : ''}${result.setupError ? `, ${result.setupError}` : ''}` +
    `, ${Math.round(result.durationMs)} ms]`);
  return result;
}

async function main(argv) {
  let options;
  try {
    options = parseArgs(argv);
  } catch (err) {
    console.error(`task-runner: ${err.message}\n${USAGE}`);
    return 2;
  }
  const bwrapd = await startBwrapd({ command: options.helper, onStderr: (s) => process.stderr.write(s) });
  try {
    const result = options.terminal ? await runInTerminal(bwrapd, options.params) : await runTaskHere(bwrapd, options);
    return result.status === 'exited' ? result.exitCode : 1;
  } catch (err) {
    console.error(`[${options.terminal ? 'terminal' : 'task'} failed: ${err.message}${err.code ? ` (code ${err.code})` : ''}]`);
    return 1;
  } finally {
    await bwrapd.close();
  }
}

// Run as a program (also through the bwrapd-task link npm makes), not when imported.
if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then((code) => process.exit(code), (err) => {
    console.error(`task-runner: ${err.message}`);
    process.exit(1);
  });
}
