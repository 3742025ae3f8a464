// bwrapd.d.ts against the server's OpenRPC document: a field, status, state or signal
// the server gains without the types fails here (the types may know fields a server of
// another version lacks). No helper needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

const doc = JSON.parse(readFileSync(new URL('../../../src/main/resources/openrpc.json', import.meta.url), 'utf8'));
const dts = readFileSync(new URL('../bwrapd.d.ts', import.meta.url), 'utf8');
const schemas = doc.components.schemas;

/** The member names of `export interface name { ... }`. */
function members(name) {
  const body = dts.match(new RegExp(`export interface ${name} \\{([^}]*)\\}`))?.[1];
  assert.ok(body, `no interface ${name} in bwrapd.d.ts`);
  return [...body.matchAll(/^\s*(\w+)\??:/gm)].map((m) => m[1]).sort();
}

/** The string literals of `export type name = 'a' | 'b'`. */
function literals(name) {
  const body = dts.match(new RegExp(`export type ${name} = ([^;]*);`))?.[1];
  assert.ok(body, `no type ${name} in bwrapd.d.ts`);
  return [...body.matchAll(/'([^']*)'/g)].map((m) => m[1]).sort();
}

const result = (method) => {
  const schema = doc.methods.find((m) => m.name === method).result.schema;
  return schema.$ref ? schemas[schema.$ref.split('/').pop()] : schema;
};
const props = (schema) => Object.keys(schema.properties).sort();
/** Fails for each of the server's fields that the client's interface lacks. */
const covers = (client, server, what) => {
  for (const name of server) assert.ok(client.includes(name), `${what}: the server's field ${name} is missing from bwrapd.d.ts`);
};

test('every interface has every field of the OpenRPC document', () => {
  for (const name of ['RunParams', 'Mount', 'OutputFile', 'RunResult', 'Usage', 'Captured', 'Cleanup',
    'CleanupFailure', 'Delivered', 'SandboxInfo', 'Capabilities', 'Limits', 'StartedParams', 'OutputParams',
    'ResourceLimits']) {
    covers(members(name), props(schemas[name]), name);
  }
  covers(members('CgroupInfo'), props(schemas.Capabilities.properties.cgroup), 'CgroupInfo');
  covers(members('InitializeResult'), props(result('initialize')), 'InitializeResult');
  covers(members('BwrapInfo'), props(result('initialize').properties.bwrap), 'BwrapInfo');
  covers(members('ArgvResult'), props(result('sandbox/argv')), 'ArgvResult');
  covers(members('InputResult'), props(result('sandbox/input')), 'InputResult');
  for (const [method, name] of [['sandbox/input', 'InputParams'], ['sandbox/resize', 'ResizeParams']]) {
    covers(members(name), doc.methods.find((m) => m.name === method).params.map((p) => p.name), name);
  }
  const interfaces = { 'sandbox/started': 'StartedParams', 'sandbox/output': 'OutputParams' };
  for (const n of doc['x-notifications']) {
    assert.ok(interfaces[n.name], `notification ${n.name} is unknown to bwrapd.d.ts`);
    covers(members(interfaces[n.name]), n.params.map((p) => p.name), n.name);
  }
});

test('statuses, signals and states are those of the OpenRPC document', () => {
  assert.deepEqual(literals('RunStatus'), [...schemas.RunStatus.enum].sort());
  assert.deepEqual(literals('SignalName'), [...schemas.SignalName.enum].sort());
  assert.deepEqual(literals('SandboxState'), [...schemas.SandboxInfo.properties.state.enum].sort());
  assert.deepEqual(literals('LimitName'), schemas.RunResult.properties.limitExceeded.enum.filter((v) => v !== null).sort());
});

test('the example carries the project version', () => {
  const pom = readFileSync(new URL('../../../pom.xml', import.meta.url), 'utf8');
  const version = pom.match(/<artifactId>bwrapd<\/artifactId>\s*<version>([^<]+)<\/version>/)[1];
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  assert.equal(pkg.version, version);
});
