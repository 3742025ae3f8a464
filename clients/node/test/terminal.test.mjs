// task-runner.mjs --terminal in a real terminal: a pseudo-terminal made by Python's pty
// module (test/pty-driver.py), where a scripted user types into the example, which opens
// a busybox shell in a sandbox. Drives the real helper ($BWRAPD, or bwrapd on PATH).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from '../task-runner.mjs';

const here = (file) => fileURLToPath(new URL(file, import.meta.url));
const runner = here('../task-runner.mjs');
let root;

before(() => {
  root = mkdtempSync(path.join(tmpdir(), 'bwrapd-node-root-'));
  chmodSync(root, 0o755);
  execFileSync('/bin/sh', [here('../../../tools/make-rootfs.sh'), root]);
});

after(() => rmSync(root, { recursive: true, force: true }));

/** Runs COMMAND on a ROWS x COLS pseudo-terminal against a script: { code, shown }. */
function onPty(rows, cols, script, command) {
  return new Promise((resolve) => {
    execFile('python3', [here('pty-driver.py'), String(rows), String(cols), JSON.stringify(script), '--', ...command],
      { timeout: 120000, encoding: 'latin1' }, (err, stdout, stderr) => {
        resolve({ code: err ? err.code : 0, shown: stdout, stderr });
      });
  });
}

test('--terminal opens a sandboxed shell in the terminal it runs in', async () => {
  // `re""sized`, `al""ive`: what the shell prints, not the echo of what was typed. Lines
  // end in \r\r\n here: Node's raw mode (libuv's) keeps the local terminal's ONLCR, which
  // adds a \r to the sandbox terminal's \r\n (a terminal shows both the same).
  const job = `100.${process.pid}`; // sleep 100, an argument no other process has
  const script = [
    ['expect', '# '],
    ['send', 'stty size\r'], // Enter is \r on a terminal
    ['expect', '30 100\r'],
    ['resize', 40, 120], // the local SIGWINCH: the example passes the size on
    ['send', 'until [ "$(stty size)" = "40 120" ]; do sleep 0.1; done; echo re""sized\r'],
    ['expect', 'resized\r'],
    ['send', `sleep ${job}\r`],
    ['expect', `sleep ${job}\r`], // the echo: the shell read the line
    ['running', 'sleep', job], // and its job runs (a Ctrl-C before it would reach the shell, and sleep 100 outlast the expect)
    ['send', '\x03echo al""ive\r'], // Ctrl-C reaches the sandbox's foreground job, not the example
    ['expect', 'alive\r'],
    ['send', 'echo hi; exit 7\r'],
  ];
  const example = `"${process.execPath}" "${runner}" --terminal --root "${root}" -- sh`;
  // After the example, the local terminal must be back in its cooked mode.
  const { code, shown, stderr } = await onPty(30, 100, script, ['/bin/sh', '-c', `${example}; code=$?; stty -a; exit $code`]);
  assert.equal(code, 7, `shown: ${shown}\nstderr: ${stderr}`);
  assert.match(shown, /\nhi\r/);
  assert.match(shown, /\^C/);
  const local = shown.slice(shown.lastIndexOf('speed'));
  assert.match(local, /(^|\s)icanon(\s|$)/, local);
  assert.match(local, /(^|\s)echo(\s|$)/, local);
});

test('--terminal runs sh unless a command is given, and not with --progress', () => {
  assert.deepEqual(parseArgs(['--terminal', '--root', '/r']).params, { root: '/r', command: ['sh'] });
  assert.deepEqual(parseArgs(['--terminal', '--', 'bash', '-l']).params.command, ['bash', '-l']);
  assert.throws(() => parseArgs(['--terminal', '--progress']), /do not go together/);
});
