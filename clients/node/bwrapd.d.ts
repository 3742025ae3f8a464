// The bwrapd wire types (docs/protocol.md, served as OpenRPC by rpc.discover), for
// editors and type checkers; task-runner.mjs refers to them in JSDoc. A test
// (test/types.test.mjs) compares every interface here with openrpc.json.

export type RunStatus = 'exited' | 'signaled' | 'timed-out' | 'cancelled' | 'setup-failed';
export type SignalName = 'SIGSTOP' | 'SIGCONT' | 'SIGTERM' | 'SIGKILL' | 'SIGINT' | 'SIGHUP' | 'SIGUSR1' | 'SIGUSR2' | 'SIGQUIT';
export type SandboxState = 'starting' | 'running' | 'suspended';

export interface Mount {
  source: string;
  target: string;
  readOnly?: boolean;
}

/** 'stream': what the client sends with sandbox/input while the command runs. */
export type Stdin = 'null' | 'stream' | { text: string } | { base64: string } | { file: string };

export interface OutputFile {
  file: string;
  append?: boolean;
}

export type Output = 'capture' | 'discard' | 'stream' | OutputFile;

/** The params of sandbox/run (and sandbox/argv). */
export interface RunParams {
  command: string[];
  root?: string;
  sandboxId?: string;
  cwd?: string;
  env?: Record<string, string>;
  network?: boolean;
  readOnlyRoot?: boolean;
  hostname?: string;
  uid?: number;
  gid?: number;
  inheritUid?: boolean;
  mounts?: Mount[];
  devices?: string[];
  devShm?: boolean;
  linux32?: boolean;
  stdin?: Stdin;
  stdout?: Output;
  stderr?: Output | 'stdout';
  captureLimitBytes?: number;
  timeoutMs?: number;
  killGraceMs?: number;
  interactive?: boolean;
  /** Linux capabilities ('CAP_NET_RAW', ...) beyond the server's default. */
  capabilities?: string[];
  /** System-call filter: 'none', 'default', or a deny list (needs capabilities.seccomp). */
  seccomp?: 'none' | 'default' | SeccompDeny;
  /** Run on a new pseudo-terminal; its output arrives on the 'terminal' stream. */
  terminal?: Terminal;
  /** Resource limits of the whole sandbox; one missing from capabilities.limits is refused (-32602). */
  limits?: ResourceLimits;
}

/** Resource limits of a whole sandbox, each enforced by the mechanism capabilities.limits names. */
export interface ResourceLimits {
  /** Memory of all its processes together (at least 1 MiB). */
  memoryBytes?: number;
  /** Processes and threads at once. */
  pids?: number;
  /** CPU time: the whole sandbox's, or per process (see the mechanism). */
  cpuMs?: number;
  /** CPU bandwidth (1.5 = one and a half CPUs). */
  cpus?: number;
  /** Largest file written. */
  fileSizeBytes?: number;
  /** Open descriptors per process. */
  openFiles?: number;
}

/** The limit that ended or hampered a run. */
export type LimitName = 'memory' | 'pids' | 'cpu' | 'fileSize' | 'openFiles';

/** Exactly these system calls fail, with errno (default 'EPERM'). */
export interface SeccompDeny {
  deny: string[];
  errno?: string;
}

/** The size (and TERM, default 'xterm-256color') of a run's pseudo-terminal. */
export interface Terminal {
  rows: number;
  cols: number;
  term?: string;
}

/** The params of sandbox/input: bytes to a run's stdin stream or terminal. */
export interface InputParams {
  sandboxId: string;
  text?: string;
  base64?: string;
  /** Close the stdin stream after these bytes (not for a terminal: type '\u0004'). */
  eof?: boolean;
}

/** The result of sandbox/input: how many of the bytes went in. */
export interface InputResult {
  written: number;
}

/** The params of sandbox/resize (answered with Delivered). */
export interface ResizeParams {
  sandboxId: string;
  rows: number;
  cols: number;
}

export interface Usage {
  userCpuMs: number;
  systemCpuMs: number;
  maxRssKiB: number;
}

export interface Captured {
  text: string | null;
  base64: string | null;
  truncated: boolean;
  /** Why the capture stopped early (then truncated is true); null otherwise. */
  error?: string | null;
}

export interface CleanupFailure {
  path: string;
  error: string;
}

export interface Cleanup {
  ok: boolean;
  removed: string[];
  failed: CleanupFailure[];
  /** Another run on the same root reports the cleanup for both. */
  deferred: boolean;
}

/** The result of sandbox/run; also the data of its -32800 error when cancelled. */
export interface RunResult {
  sandboxId: string;
  status: RunStatus;
  exitCode: number | null;
  signal: string | null;
  setupError: string | null;
  durationMs: number;
  usage: Usage;
  stdout: Captured | null;
  stderr: Captured | null;
  cleanup: Cleanup;
  /** The limit that ended or hampered the run, beside the usual status; null when none did. */
  limitExceeded: LimitName | null;
}

/** The result of sandbox/signal, suspend, resume and terminate. */
export interface Delivered {
  delivered: boolean;
}

export interface SandboxInfo {
  sandboxId: string;
  pid: number;
  state: SandboxState;
  command: string[];
  /** ISO 8601, UTC: new Date(startedAt). */
  startedAt: string;
}

export interface BwrapInfo {
  path: string | null;
  version: string | null;
}

export interface Capabilities {
  userNamespaces: boolean;
  /** The sandboxed command may make user namespaces of its own (not as root on a host with cgroup v1). */
  nestedUserNamespaces: boolean;
  dieWithParent: boolean;
  jsonStatusFd: boolean;
  childSubreaper: boolean;
  linux32: boolean;
  framings: string;
  seccomp: boolean;
  /** Whether each sandbox gets a cgroup of its own. */
  cgroup: CgroupInfo;
  /** Each limit of RunParams.limits this host enforces, with its mechanism ("cgroup v2 pids.max", ...). */
  limits: Partial<Record<keyof ResourceLimits, string>>;
}

/** With a cgroup, ending a sandbox kills every process of it, suspend freezes them all, usage counts them all. */
export interface CgroupInfo {
  available: boolean;
  /** The cgroup v2 directory the sandboxes' cgroups are made in, or null. */
  path: string | null;
  /** The v2 or v1 controllers they have. */
  controllers: string[];
}

export interface Limits {
  maxMessageBytes: number;
  maxNestingDepth: number;
}

export interface InitializeResult {
  serverName: string;
  serverVersion: string;
  protocolVersion: number;
  bwrap: BwrapInfo;
  capabilities: Capabilities;
  limits: Limits;
}

export interface ArgvResult {
  executable: string;
  argv: string[];
  env: string[];
}

export interface StartedParams {
  sandboxId: string;
  pid: number;
  requestId: string | number | null;
}

export interface OutputParams {
  sandboxId: string;
  stream: 'stdout' | 'stderr' | 'terminal';
  text?: string;
  base64?: string;
}

/** The value of an LSP $/progress notification, as lineProgress reports it. */
export type WorkDoneProgress =
  | { kind: 'begin'; title: string; cancellable?: boolean }
  | { kind: 'report'; message: string }
  | { kind: 'end'; message?: string };
