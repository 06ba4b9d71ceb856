/**
 * The gateway benchmark: Berth's gateway against the same upstream reached
 * directly, through configurable-http-proxy (JupyterHub's proxy, the peer)
 * and through the proxy-library candidates the gateway was chosen from.
 *
 *   npx ts-node --transpile-only bench/gateway.ts [--only http,ws,idle]
 *       [--contenders direct,berth,chp,http-proxy-3,undici,tcp-splice] [--contender-cpu 1] [--client-cpu 0]
 *       [--connections 50] [--http-runs 3] [--http-duration-s 10] [--http-warmup-s 3] [--host-form=true]
 *       [--ws-rounds 3] [--ws-samples 10000] [--ws-warmup 2000] [--ws-message-bytes 32] [--ws-shared-layout=true]
 *       [--ws-large-bytes 262144] [--ws-windows 1,8] [--ws-throughput-s 5]
 *       [--idle-connections 1000] [--idle-hold-s 300] [--idle-sample-s 10] [--idle-peers=true] [--idle-peer-hold-s 30]
 *       [--max-other-cpu 20] [--retries 3] [--dist dist] [--build-label TEXT] [--profile-dir DIR [--trace-gc=true]]
 *
 * --dist: the compiled Berth to measure (default the repository's dist/, as
 * scripts/bench.sh builds it); it is copied first, like the other benchmarks do.
 * Contenders, all in front of ONE upstream process (Node http server answering
 * every request with 1 KiB, plus a `ws` echo server on the same port):
 *   - direct: no proxy;
 *   - berth: the gateway role as shipped (`node dist/src/gateway.js`), path form
 *     `/s/<id>/` with `Authorization: Bearer <token>` (and, for HTTP, the host
 *     form `Host: <id>.localhost`): authentication, routing from its
 *     Postgres-backed cache and activity tracking on every request;
 *   - chp: configurable-http-proxy with a route `/s/<id>` to the upstream (it
 *     has routing and activity tracking, no authentication of proxied traffic);
 *   - http-proxy-3: the library with a keep-alive http.Agent, no auth/routing;
 *   - undici: Berth's own UpstreamForwarder (undici Dispatcher for HTTP, raw
 *     socket splice for WebSockets) in a bare http server, no auth/routing;
 *   - tcp-splice: reference only, bytes between two sockets with no HTTP at
 *     all: the floor for a proxy written in Node.
 * http-proxy-3 and undici are the candidates of the proxy-library choice; the
 * difference between `undici` and `berth` is what authentication and routing cost.
 * Every proxy runs with --expose-gc and a preloaded probe (memory figures over
 * IPC, used by the idle test only).
 *
 * CPU layout (2 cores, `taskset`): every contender on --contender-cpu (1), alone;
 * the upstream, wrk and the WebSocket clients on --client-cpu (0). The same for
 * all contenders, so `direct` is "the same machine minus the proxy". Postgres,
 * this orchestrating process and anything else on the host are not pinned; each
 * measurement records how busy each CPU was and how much CPU other processes
 * used, and is redone (up to --retries times) when that exceeded --max-other-cpu
 * % of one CPU: the least disturbed attempt is kept.
 *
 * Tests:
 *   http: wrk, 1 thread, --connections connections, --http-runs rounds; each
 *         round runs every contender once (warm-up, then the measured run), so
 *         background load hits all of them alike. Requests/s, latency p50/p99.
 *   ws:   round trip of --ws-message-bytes messages, one client, one message at a
 *         time (--ws-samples per contender per round, after --ws-warmup), in the
 *         main layout and (--ws-shared-layout) with the contender moved onto the
 *         client's CPU, plus a calibration (direct, client on the other CPU) that
 *         shows what crossing between the two vCPUs costs; and echo throughput of
 *         --ws-large-bytes messages with --ws-windows messages in flight, for
 *         --ws-throughput-s seconds.
 *   idle: a fresh gateway; --idle-connections WebSockets (one per session, each
 *         session its own row and token) opened from a separate client process
 *         (CPU 0), half, then the rest; held --idle-hold-s with no traffic; RSS
 *         and V8 heap (after a full GC) every --idle-sample-s; then every socket
 *         must still echo. With --idle-peers, the other proxies get the same
 *         sockets (one route) for --idle-peer-hold-s, for per-connection memory.
 *
 * Boolean options take `=`: `--idle-peers=false`.
 * Loopback only. Own database (berth_bench; its sessions are deleted at start).
 * Output: markdown on stdout, progress on stderr, JSON + markdown + the
 * gateway's log in bench/results/gateway-<time>.*.
 */
import { DEFAULT_TENANT_ID } from '../migrations/1795710000000-TenantsAndLifecycle';
import { ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { cpSync, createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client as PgClient } from 'pg';
import {
  DATABASE_URL,
  REDIS_URL,
  RESULTS_DIR,
  ROOT,
  freePort,
  loadAverage,
  log,
  markdownTable,
  MiB,
  onInterrupt,
  parseArgs,
  prepareDatabase,
  processCpuSeconds,
  request,
  rssOf,
  sleep,
  timestampForFile,
  waitFor,
  writeJson,
  writeText,
} from './lib';

const args = parseArgs(process.argv.slice(2), {
  only: 'http,ws,idle',
  contenders: 'direct,berth,chp,http-proxy-3,undici,tcp-splice',
  'contender-cpu': 1,
  'client-cpu': 0,
  connections: 50,
  'http-runs': 3,
  'http-duration-s': 10,
  'http-warmup-s': 3,
  'host-form': true,
  'ws-rounds': 3,
  'ws-samples': 10_000,
  'ws-warmup': 2_000,
  'ws-message-bytes': 32,
  'ws-large-bytes': 262_144,
  'ws-windows': '1,8',
  'ws-throughput-s': 5,
  'idle-connections': 1000,
  'idle-hold-s': 300,
  'idle-sample-s': 10,
  'idle-peers': true,
  'idle-peer-hold-s': 30,
  'ws-shared-layout': true,
  'max-other-cpu': 20,
  retries: 3,
  dist: 'dist',
  'build-label': '',
  // Diagnostics of the Node contenders (berth, undici): a V8 CPU profile each (node --cpu-prof) in
  // this directory, and with --trace-gc every garbage collection in their logs.
  'profile-dir': '',
  'trace-gc': false,
});

const TESTS = new Set(args.only.split(',').map((t) => t.trim()));
type ProxyName = 'berth' | 'chp' | 'http-proxy-3' | 'undici' | 'tcp-splice';
type ContenderName = 'direct' | ProxyName;
const ALL: ContenderName[] = ['direct', 'berth', 'chp', 'http-proxy-3', 'undici', 'tcp-splice'];
const CONTENDERS = args.contenders.split(',').map((c) => c.trim()) as ContenderName[];
for (const c of CONTENDERS) if (!ALL.includes(c)) throw new Error(`unknown contender ${c} (known: ${ALL.join(', ')})`);
const PROXIES = CONTENDERS.filter((c): c is ProxyName => c !== 'direct');
const CPU_PROXY = String(args['contender-cpu']);
const CPU_CLIENT = String(args['client-cpu']);
const aborted = onInterrupt('interrupted: finishing the current measurement, then cleaning up (Ctrl-C again to exit at once)');

const LABEL: Record<string, string> = {
  direct: 'direct (no proxy)',
  berth: "Berth's gateway (path form, auth + routing)",
  'berth-host': "Berth's gateway (host form, auth + routing)",
  chp: 'configurable-http-proxy 5.3',
  'http-proxy-3': 'http-proxy-3 2.0, keep-alive agent (candidate)',
  undici: "plain undici forwarder, Berth's UpstreamForwarder (candidate)",
  'tcp-splice': 'reference: bare TCP splice in Node (no HTTP, no auth; the floor)',
  'direct-cross': `calibration: direct, client moved to the contender's CPU (2 cross-CPU wake-ups per round trip)`,
};

// ---------------------------------------------------------------------------- child programs
//
// Plain JavaScript, written to a private directory under bench/results/ (so
// node_modules resolves from the repository) and run with plain `node`: no
// TypeScript compiler in the measured processes. Each reports through the IPC
// channel (spawn's 'ipc' stdio survives `taskset`, which execs node in place).

const PROGRAMS: Record<string, string> = {
  // One upstream for every contender: 1 KiB for any request, WebSocket echo.
  'upstream.js': `'use strict';
const http = require('node:http');
const { WebSocketServer } = require('ws');
const body = Buffer.alloc(1024, 'x');
const server = http.createServer({ keepAliveTimeout: 65000 }, (req, res) => {
  req.resume();
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
  res.end(body);
});
const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 256 * 1024 * 1024 });
let open = 0;
wss.on('connection', (ws) => {
  open++;
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('close', () => open--);
  ws.on('error', () => {});
});
process.on('message', (m) => { if (m && m.cmd === 'stats') process.send({ stats: { wsOpen: open } }); });
server.listen(0, '127.0.0.1', () => process.send({ ready: server.address().port }));
`,

  // Candidate: http-proxy-3 with a keep-alive agent (the library, nothing else).
  'http-proxy-3.js': `'use strict';
const http = require('node:http');
const { createProxyServer } = require('http-proxy-3');
const target = process.argv[2];
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const proxy = createProxyServer({ target, agent, xfwd: true });
proxy.on('error', (error, req, res) => {
  if (res && typeof res.writeHead === 'function' && !res.headersSent) { res.writeHead(502, { 'content-length': '0' }); res.end(); }
  else if (res && typeof res.destroy === 'function') res.destroy();
});
const server = http.createServer({ requestTimeout: 0, keepAliveTimeout: 65000, headersTimeout: 60000 }, (req, res) => proxy.web(req, res));
server.on('upgrade', (req, socket, head) => proxy.ws(req, socket, head));
server.listen(0, '127.0.0.1', () => process.send({ ready: server.address().port }));
`,

  // Candidate: Berth's own forwarder (undici Dispatcher + raw socket splice), no auth or routing.
  'undici.js': `'use strict';
const http = require('node:http');
const [dist, origin] = process.argv.slice(2);
const forwarderModule = require(dist + '/src/gateway/upstream-forwarder.js');
const { UpstreamForwarder, forwardableHeaders } = forwarderModule;
const forwarder = new UpstreamForwarder({ connectTimeoutMs: 5000, headersTimeoutMs: 30000, bodyTimeoutMs: 300000 });
const NONE = new Set();
const target = (req) => ({ origin, path: req.url, headers: forwardableHeaders(req, NONE) });
function splice(client, upstream) {
  if (typeof forwarderModule.spliceSockets === 'function') return forwarderModule.spliceSockets(client, upstream, {});
  // The splice SessionGateway does, minus the per-session bookkeeping.
  const close = () => { client.destroy(); upstream.destroy(); };
  for (const socket of [client, upstream]) {
    if (socket.setNoDelay) socket.setNoDelay(true);
    socket.on('error', close);
    socket.on('close', close);
  }
  client.pipe(upstream);
  upstream.pipe(client);
}
const server = http.createServer({ requestTimeout: 0, keepAliveTimeout: 65000, headersTimeout: 60000 }, (req, res) =>
  forwarder.http(req, res, target(req), (failure) => { res.writeHead(failure.status, { 'content-length': '0' }); res.end(); }));
server.on('upgrade', (req, socket, head) => {
  socket.on('error', () => socket.destroy());
  forwarder.upgrade(req, socket, head, target(req), (upstream) => splice(socket, upstream),
    (failure) => socket.end('HTTP/1.1 ' + failure.status + ' Bad Gateway\\r\\ncontent-length: 0\\r\\nconnection: close\\r\\n\\r\\n'));
});
server.listen(0, '127.0.0.1', () => process.send({ ready: server.address().port }));
`,

  // Preloaded into every proxy (--require, with --expose-gc): on request, a full
  // GC (so garbage left by earlier traffic is not counted as memory held by
  // connections), then RSS and V8 heap figures over IPC. Nothing else.
  'memory-probe.js': `'use strict';
process.on('message', (m) => {
  if (!m || m.cmd !== 'memory') return;
  if (m.gc && typeof global.gc === 'function') { global.gc(); global.gc(); }
  process.send({ memory: process.memoryUsage() });
});
`,

  // Reference, not a candidate: bytes between sockets and nothing else (no HTTP
  // parsing, one upstream connection per client connection). The floor for any
  // proxy written in Node on this layout.
  'tcp-splice.js': `'use strict';
const net = require('node:net');
const [host, port] = new URL(process.argv[2]).host.split(':');
const server = net.createServer((client) => {
  const upstream = net.connect(Number(port), host);
  client.setNoDelay(true);
  upstream.setNoDelay(true);
  const close = () => { client.destroy(); upstream.destroy(); };
  client.on('error', close); upstream.on('error', close);
  client.on('close', close); upstream.on('close', close);
  client.pipe(upstream);
  upstream.pipe(client);
});
server.listen(0, '127.0.0.1', () => process.send({ ready: server.address().port }));
`,

  // WebSocket client: rtt | throughput | idle. Its configuration comes as the first IPC message.
  'ws-client.js': `'use strict';
const WebSocket = require('ws');
let config;
const open = (url, headers) => new Promise((resolve, reject) => {
  const ws = new WebSocket(url, { headers, perMessageDeflate: false, maxPayload: 256 * 1024 * 1024 });
  ws.once('open', () => { ws.off('error', reject); resolve(ws); });
  ws.once('unexpected-response', (_req, res) => reject(new Error('upgrade refused: HTTP ' + res.statusCode)));
  ws.once('error', reject);
});
const done = (result) => process.send({ result: Object.assign(result, { cpu: process.cpuUsage() }) }, () => process.exit(0));
const fail = (error) => process.send({ error: error.message }, () => process.exit(1));

async function rtt() {
  const ws = await open(config.url, config.headers);
  const payload = Buffer.alloc(config.bytes, 'r');
  const samples = new Float64Array(config.samples);
  let i = -config.warmup;
  let t0 = 0n;
  await new Promise((resolve, reject) => {
    ws.on('error', reject);
    ws.on('close', () => reject(new Error('closed during the round trips')));
    ws.on('message', (data) => {
      const t1 = process.hrtime.bigint();
      if (data.length !== config.bytes) return reject(new Error('echo of the wrong size'));
      if (i >= 0) samples[i] = Number(t1 - t0) / 1000;
      i++;
      if (i >= config.samples) return resolve();
      t0 = process.hrtime.bigint();
      ws.send(payload, { binary: true });
    });
    t0 = process.hrtime.bigint();
    ws.send(payload, { binary: true });
  });
  ws.removeAllListeners('close');
  ws.terminate();
  done({ samplesUs: Array.from(samples) });
}

async function throughput() {
  const ws = await open(config.url, config.headers);
  const payload = randomPayload(config.bytes);
  const warmupMs = 1000;
  let received = 0, counted = 0, inFlight = 0, measuring = false, stop = false, tStart = 0n, tEnd = 0n;
  const start = process.hrtime.bigint();
  await new Promise((resolve, reject) => {
    ws.on('error', reject);
    ws.on('close', () => reject(new Error('closed during the throughput test')));
    const send = () => { inFlight++; ws.send(payload, { binary: true }); };
    ws.on('message', (data) => {
      inFlight--;
      if (data.length !== config.bytes) return reject(new Error('echo of the wrong size'));
      received += data.length;
      const now = process.hrtime.bigint();
      if (!measuring && now - start >= BigInt(warmupMs) * 1000000n) { measuring = true; tStart = now; counted = 0; }
      else if (measuring && !stop) counted += data.length;
      if (measuring && !stop && now - tStart >= BigInt(config.seconds * 1000) * 1000000n) { stop = true; tEnd = now; }
      if (!stop) send();
      else if (inFlight === 0) resolve();
    });
    for (let k = 0; k < config.window; k++) send();
  });
  ws.removeAllListeners('close');
  ws.terminate();
  const seconds = Number(tEnd - tStart) / 1e9;
  done({ bytes: counted, seconds, mibPerS: counted / 1048576 / seconds });
}
function randomPayload(n) { const b = Buffer.allocUnsafe(n); for (let i = 0; i < n; i++) b[i] = (i * 2654435761) >>> 24; return b; }

async function idle() {
  const sockets = [];
  let failed = 0, closedUnexpectedly = 0, holding = true, next = 0;
  const errors = {};
  process.on('message', async (m) => {
    if (m.cmd === 'open') {
      // The next m.count targets, config.concurrency handshakes at a time.
      const t0 = Date.now();
      const end = Math.min(config.targets.length, next + m.count);
      const worker = async () => {
        while (next < end) {
          const target = config.targets[next++];
          try {
            const ws = await open(target.url, target.headers);
            ws.on('error', () => {});
            ws.on('close', () => { if (holding) { closedUnexpectedly++; process.send({ closed: 1 }); } });
            sockets.push(ws);
          } catch (error) {
            failed++;
            errors[error.message] = (errors[error.message] || 0) + 1;
          }
        }
      };
      await Promise.all(Array.from({ length: config.concurrency }, worker));
      process.send({ opened: sockets.length, failed, errors, openMs: Date.now() - t0 });
    } else if (m.cmd === 'check') {
      const probe = Buffer.from('still there?');
      const results = await Promise.all(sockets.map((ws) => new Promise((resolve) => {
        if (ws.readyState !== WebSocket.OPEN) return resolve(false);
        const timer = setTimeout(() => resolve(false), 10000);
        ws.once('message', (data) => { clearTimeout(timer); resolve(Buffer.compare(Buffer.from(data), probe) === 0); });
        ws.send(probe, { binary: true });
      })));
      process.send({ checked: { alive: results.filter(Boolean).length, total: sockets.length, closedUnexpectedly } });
    } else if (m.cmd === 'close') {
      holding = false;
      for (const ws of sockets) ws.terminate();
      setTimeout(() => process.exit(0), 200);
    }
  });
}

process.once('message', (m) => {
  config = m.config;
  ({ rtt, throughput, idle })[config.mode]().catch(fail);
});
`,

  // wrk: the summary as one JSON line (latencies in microseconds).
  'report.lua': `done = function(summary, latency, requests)
  io.write(string.format('WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f}\\n',
    summary.requests, summary.duration, summary.bytes, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
`,
};

// ---------------------------------------------------------------------------- processes

interface Child {
  name: string;
  child: ChildProcess;
  pid: number;
  /** Resolves with the next IPC message matching `pick`. */
  next<T>(pick: (message: any) => T | undefined, timeoutMs?: number, what?: string): Promise<T>;
  send(message: unknown): void;
  stop(): Promise<void>;
  exited: boolean;
}

const children: Child[] = [];

/**
 * Starts `node <argv>` pinned to `cpu` with an IPC channel; stdout/stderr go
 * to the log file when given (else are drained).
 */
function launchNode(name: string, cpu: string | null, argv: string[], options: { env?: NodeJS.ProcessEnv; logFile?: string } = {}): Child {
  if (args['profile-dir'] && ['berth', 'undici'].includes(name)) argv = [...(args['trace-gc'] ? ['--trace-gc'] : []), '--cpu-prof', `--cpu-prof-dir=${args['profile-dir']}`, `--cpu-prof-name=${name}-${Date.now()}.cpuprofile`, ...argv];
  const command = cpu === null ? process.execPath : 'taskset';
  const commandArgs = cpu === null ? argv : ['-c', cpu, process.execPath, ...argv];
  const child = spawn(command, commandArgs, { cwd: ROOT, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  if (options.logFile) {
    const out = createWriteStream(options.logFile);
    child.stdout!.pipe(out, { end: false });
    child.stderr!.pipe(out, { end: false });
    child.on('exit', () => out.end());
  } else {
    child.stdout!.resume();
    let tail = '';
    child.stderr!.on('data', (chunk: Buffer) => (tail = (tail + chunk.toString()).slice(-2000)));
    child.on('exit', (code) => {
      if (code && code !== 0 && !handle.stopping) log(`${name} exited with ${code}: ${tail.trim().slice(-500)}`);
    });
  }
  const waiting = new Set<(message: unknown) => void>();
  child.on('message', (message) => {
    for (const listener of [...waiting]) listener(message);
  });
  const handle: Child & { stopping: boolean } = {
    name,
    child,
    pid: child.pid!,
    stopping: false,
    exited: false,
    next<T>(pick: (message: any) => T | undefined, timeoutMs = 60_000, what = 'a message'): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(listener);
          reject(new Error(`${name}: no ${what} within ${timeoutMs} ms`));
        }, timeoutMs);
        const onExit = (code: number | null) => {
          clearTimeout(timer);
          waiting.delete(listener);
          reject(new Error(`${name} exited (code ${code}) before sending ${what}`));
        };
        const listener = (message: unknown) => {
          const picked = pick(message);
          if (picked === undefined) return;
          clearTimeout(timer);
          waiting.delete(listener);
          child.off('exit', onExit);
          resolve(picked);
        };
        waiting.add(listener);
        child.once('exit', onExit);
      });
    },
    send(message: unknown) {
      if (child.connected) child.send(message as object);
    },
    stop() {
      handle.stopping = true;
      return new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const kill = setTimeout(() => child.kill('SIGKILL'), 15_000);
        child.once('exit', () => {
          clearTimeout(kill);
          resolve();
        });
        child.kill('SIGTERM');
      });
    },
  };
  child.on('exit', () => (handle.exited = true));
  children.push(handle);
  return handle;
}

async function stopAll(list: Child[]): Promise<void> {
  await Promise.all(list.map((c) => c.stop()));
}

/** Runs a command pinned to `cpu`, collecting stdout; resolves when it exits. */
function runPinned(cpu: string, command: string, argv: string[], timeoutMs: number): Promise<{ stdout: string; pid: number; cpuSeconds: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn('taskset', ['-c', cpu, command, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let cpuSeconds = 0;
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    // CPU time of the child, read just before it exits (its /proc entry disappears after).
    const sampler = setInterval(() => (cpuSeconds = processCpuSeconds(child.pid!) || cpuSeconds), 100);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearInterval(sampler);
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`${command} exited ${code}: ${stderr.trim().slice(-500)}`));
      resolve({ stdout, pid: child.pid!, cpuSeconds });
    });
  });
}

// ---------------------------------------------------------------------------- machine, CPU accounting

interface CpuTimes {
  busy: number;
  total: number;
  steal: number;
}

/** Per-CPU jiffies from /proc/stat. */
function cpuTimes(): Map<string, CpuTimes> {
  const out = new Map<string, CpuTimes>();
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const [user, nice, system, idle, iowait, irq, softirq, steal] = m[2].split(/\s+/).map(Number);
    const total = user + nice + system + idle + iowait + irq + softirq + (steal || 0);
    out.set(m[1], { busy: total - idle - iowait, total, steal: steal || 0 });
  }
  return out;
}

interface CpuReport {
  /** % busy of each CPU over the interval (steal included). */
  busy: Record<string, number>;
  steal: Record<string, number>;
  /** CPU used by everything not measured here (other users' processes, Postgres, this orchestrator), % of one CPU. */
  otherPct: number;
}

function cpuDelta(before: Map<string, CpuTimes>, after: Map<string, CpuTimes>, ownCpuSeconds: number, seconds: number): CpuReport {
  const busy: Record<string, number> = {};
  const steal: Record<string, number> = {};
  let busyJiffies = 0;
  for (const [cpu, a] of after) {
    const b = before.get(cpu);
    if (!b) continue;
    const total = a.total - b.total || 1;
    busy[cpu] = round1((100 * (a.busy - b.busy)) / total);
    steal[cpu] = round1((100 * (a.steal - b.steal)) / total);
    busyJiffies += a.busy - b.busy;
  }
  const hz = clockTicks();
  const otherPct = round1((100 * (busyJiffies / hz - ownCpuSeconds)) / seconds);
  return { busy, steal, otherPct };
}

let ticks = 0;
function clockTicks(): number {
  if (!ticks) ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return ticks;
}

const round1 = (x: number) => Math.round(x * 10) / 10;
const round2 = (x: number) => Math.round(x * 100) / 100;

function sh(command: string, argv: string[]): string {
  try {
    return execFileSync(command, argv, { encoding: 'utf8', timeout: 20_000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '(unavailable)';
  }
}

function machine(): Record<string, string> {
  const lscpu = sh('lscpu', []);
  const field = (name: string) => new RegExp(`^${name}:\\s*(.+)$`, 'm').exec(lscpu)?.[1]?.trim() ?? '?';
  const meminfo = readFileSync('/proc/meminfo', 'utf8');
  const memKb = Number(/^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1] ?? 0);
  const version = (pkg: string) => {
    try {
      return JSON.parse(readFileSync(path.join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')).version as string;
    } catch {
      return '?';
    }
  };
  return {
    cpuModel: field('Model name'),
    cpus: `${field('CPU\\(s\\)')} (${field('Core\\(s\\) per socket')} cores per socket, ${field('Thread\\(s\\) per core')} thread per core)`,
    hypervisor: field('Hypervisor vendor'),
    memory: `${(memKb / 1024 / 1024).toFixed(1)} GiB`,
    kernel: os.release(),
    os: /^PRETTY_NAME="?([^"\n]+)"?/m.exec(existsSync('/etc/os-release') ? readFileSync('/etc/os-release', 'utf8') : '')?.[1] ?? '?',
    node: process.version,
    // `wrk -v` prints its version and exits 1.
    wrk: (spawnSync('wrk', ['-v'], { encoding: 'utf8' }).stdout ?? '').split('\n')[0]?.replace(/\s*\[.*$/, '') || '?',
    undici: version('undici'),
    ws: version('ws'),
    'configurable-http-proxy': version('configurable-http-proxy'),
    'http-proxy-3': version('http-proxy-3'),
    date: new Date().toISOString(),
  };
}

// ---------------------------------------------------------------------------- statistics

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

function median(values: number[]): number {
  const v = [...values].sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  if (n < 2) return 0;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den ? num / den : 0;
}

const fmtInt = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '-');
const fmtX = (x: number) => (Number.isFinite(x) ? `${x.toFixed(2)}x` : '-');
const fmtMs2 = (us: number) => (Number.isFinite(us) ? `${(us / 1000).toFixed(2)} ms` : '-');
const fmtUs = (us: number) => (Number.isFinite(us) ? `${Math.round(us)} us` : '-');
const fmtSignedUs = (us: number) => (Number.isFinite(us) ? `${us >= 0 ? '+' : '-'}${Math.abs(Math.round(us))} us` : '-');
const fmtKiB = (bytes: number) => (Number.isFinite(bytes) ? `${(bytes / 1024).toFixed(1)} KiB` : '-');
const fmtMiB1 = (bytes: number) => (Number.isFinite(bytes) ? `${(bytes / MiB).toFixed(1)} MiB` : '-');
const verdict = (ok: boolean) => (ok ? '**met**' : '**missed**');

// ---------------------------------------------------------------------------- sessions

interface FakeSession {
  id: string;
  token: string;
}

/**
 * Session rows as the worker leaves them once started: status started,
 * upstream_url, a known access token (in session_access_tokens), in the
 * default tenant the migrations create.
 */
async function insertSessions(count: number, upstreamUrl: string, hashToken: (token: string) => string): Promise<FakeSession[]> {
  const sessions = Array.from({ length: count }, () => ({ id: randomUUID(), token: randomBytes(32).toString('base64url') }));
  const client = new PgClient({ connectionString: DATABASE_URL });
  await client.connect();
  try {
    for (let i = 0; i < sessions.length; i += 500) {
      const chunk = sessions.slice(i, i + 500);
      const ids = chunk.map((s) => s.id);
      await client.query(
        `INSERT INTO sessions (id, tenant_id, kind, status, image, platform, upstream_url, expires_at, started_at)
         SELECT id, $3, 'terminal', 'started', 'bench/fake-upstream', 'docker', $2, now() + interval '1 day', now() FROM unnest($1::uuid[]) AS t(id)`,
        [ids, upstreamUrl, DEFAULT_TENANT_ID],
      );
      await client.query(`INSERT INTO session_access_tokens (token_hash, session_id) SELECT h, id FROM unnest($1::text[], $2::uuid[]) AS t(h, id)`, [
        chunk.map((s) => hashToken(s.token)),
        ids,
      ]);
    }
  } finally {
    await client.end();
  }
  return sessions;
}

/** A private copy of the Berth build under bench/results/ (node_modules resolves from the repository; a rebuild during the run does not touch it). */
function copyDist(source: string): { dir: string; remove(): void } {
  const from = path.resolve(ROOT, source);
  if (!existsSync(path.join(from, 'src', 'gateway.js'))) throw new Error(`${from}/src/gateway.js missing: build first (npx nest build; scripts/bench.sh does)`);
  mkdirSync(RESULTS_DIR, { recursive: true });
  const dir = path.join(RESULTS_DIR, `.dist-${process.pid}`);
  cpSync(from, dir, { recursive: true });
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Which Berth is measured: the commit, and whether src/ differs from it (a build from the work tree). */
function buildLabel(): string {
  if (args['build-label']) return args['build-label'];
  const commit = sh('git', ['-C', ROOT, 'log', '-1', '--format=%h %s']);
  const dirty = sh('git', ['-C', ROOT, 'status', '--porcelain', '--', 'src', 'migrations']);
  return `${commit}${dirty && dirty !== '(unavailable)' ? ' (work tree: src/ or migrations/ have uncommitted changes)' : ''}`;
}

// ---------------------------------------------------------------------------- contenders

interface Running {
  name: ContenderName;
  process: Child | null;
  port: number;
  /** Path prefix and headers that reach the upstream through this contender. */
  base: string;
  headers: Record<string, string>;
  /** For HTTP: an extra way in (Berth's host form: the session's own origin). */
  hostForm?: { base: string; headers: Record<string, string> };
}

const BERTH_VARIABLE = /^(HOST|PORT|PUBLIC_URL|CALLBACK_URL|CORS_ORIGINS|RUN_.*|DATABASE_.*|REDIS_URL|QUEUE_PREFIX|CONTAINER_PLATFORM|TERMINAL_.*|CLEANUP_.*|START_TIMEOUT_SECONDS|PROVISION_.*|WORKER_CONCURRENCY|SHUTDOWN_TIMEOUT_SECONDS|BERTH_.*|SESSION_.*|DOCKER_.*|K8S_.*|LOG_LEVEL|LOG_FORMAT|GATEWAY_.*|ACTIVITY_.*)$/;

function berthEnvironment(port: number): NodeJS.ProcessEnv {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([key]) => !BERTH_VARIABLE.test(key)));
  return {
    ...inherited,
    NODE_ENV: 'production',
    DATABASE_URL,
    REDIS_URL, // validated by the configuration, never used by the gateway role
    BERTH_SECRET_KEY: SECRET_KEY,
    GATEWAY_HOST: '127.0.0.1',
    GATEWAY_PORT: String(port),
    // Nothing but session traffic is sent; the API is not running (port 9: refused).
    GATEWAY_API_UPSTREAM: 'http://127.0.0.1:9',
    PUBLIC_URL: `http://127.0.0.1:${port}`,
    RUN_MIGRATIONS_ON_START: 'true',
    LOG_FORMAT: 'json',
  };
}
const SECRET_KEY = randomBytes(32).toString('hex');

async function startContender(
  name: ContenderName,
  ctx: { dir: string; distDir: string; upstreamUrl: string; session: FakeSession; logPrefix: string },
): Promise<Running> {
  const { dir, distDir, upstreamUrl, session } = ctx;
  if (name === 'direct') {
    return { name, process: null, port: Number(new URL(upstreamUrl).port), base: '', headers: {} };
  }
  if (name === 'berth') {
    const port = await freePort();
    const gateway = launchNode('berth', CPU_PROXY, [...probe(dir), path.join(distDir, 'src', 'gateway.js')], {
      env: berthEnvironment(port),
      logFile: `${ctx.logPrefix}-berth.log`,
    });
    const running: Running = {
      name,
      process: gateway,
      port,
      base: `/s/${session.id}`,
      headers: { authorization: `Bearer ${session.token}` },
      // `Host` capitalised: wrk adds its own Host header unless it finds exactly this one.
      hostForm: { base: '', headers: { Host: `${session.id}.localhost:${port}`, Authorization: `Bearer ${session.token}` } },
    };
    await waitReady(running);
    return running;
  }
  if (name === 'chp') {
    const port = await freePort();
    const apiPort = await freePort();
    const token = randomBytes(16).toString('hex');
    const chp = launchNode(
      'chp',
      CPU_PROXY,
      [...probe(dir), path.join(ROOT, 'node_modules', 'configurable-http-proxy', 'bin', 'configurable-http-proxy'), '--ip', '127.0.0.1', '--port', String(port), '--api-ip', '127.0.0.1', '--api-port', String(apiPort)],
      { env: { ...process.env, CONFIGPROXY_AUTH_TOKEN: token }, logFile: `${ctx.logPrefix}-chp.log` },
    );
    // JupyterHub adds one route per user server the same way.
    await waitFor(
      async () => (await request('POST', `http://127.0.0.1:${apiPort}/api/routes/s/${session.id}`, { body: { target: upstreamUrl }, headers: { authorization: `token ${token}` } })).status === 201,
      30_000,
      'configurable-http-proxy API',
    );
    const running: Running = { name, process: chp, port, base: `/s/${session.id}`, headers: {} };
    await waitReady(running);
    return running;
  }
  const script = path.join(dir, `${name}.js`);
  const argv = [...probe(dir), ...(name === 'undici' ? [script, distDir, upstreamUrl] : [script, upstreamUrl])];
  const proc = launchNode(name, CPU_PROXY, argv);
  const port = await proc.next((m) => m?.ready as number | undefined, 30_000, 'ready');
  const running: Running = { name, process: proc, port, base: `/s/${session.id}`, headers: {} };
  await waitReady(running);
  return running;
}

/** Node options every proxy runs with: the memory probe (idle only uses it). */
const probe = (dir: string) => ['--expose-gc', '--require', path.join(dir, 'memory-probe.js')];

async function waitReady(c: Running): Promise<void> {
  await waitFor(
    async () => {
      const res = await request('GET', `http://127.0.0.1:${c.port}${c.base}/ready`, { headers: c.headers, agent: false, timeoutMs: 2000 });
      return res.status === 200 && res.body.length === 1024;
    },
    60_000,
    `${c.name} to forward a request`,
  );
}

// ---------------------------------------------------------------------------- HTTP

interface WrkResult {
  requests: number;
  duration_us: number;
  connect: number;
  read: number;
  write: number;
  status: number;
  timeout: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

interface HttpRun {
  contender: string;
  round: number;
  rps: number;
  wrk: WrkResult;
  cpu: CpuReport;
  /** CPU of the proxy, the upstream and wrk, % of one CPU. */
  proxyCpuPct: number | null;
  upstreamCpuPct: number;
  wrkCpuPct: number;
  load1: number;
  attempts?: number;
  discarded?: HttpRun[];
}

async function wrk(dir: string, url: string, headers: Record<string, string>, seconds: number): Promise<{ result: WrkResult; cpuSeconds: number }> {
  const headerArgs = Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]);
  const { stdout, cpuSeconds } = await runPinned(
    CPU_CLIENT,
    'wrk',
    ['-t1', `-c${args.connections}`, `-d${seconds}s`, '--timeout', '5s', '-s', path.join(dir, 'report.lua'), ...headerArgs, url],
    (seconds + 30) * 1000,
  );
  const line = stdout.split('\n').find((l) => l.startsWith('WRK_JSON '));
  if (!line) throw new Error(`wrk printed no summary:\n${stdout}`);
  return { result: JSON.parse(line.slice('WRK_JSON '.length)) as WrkResult, cpuSeconds };
}

/**
 * Runs `measure` again (up to --retries times, 5 s apart) while other processes
 * on the host used more than --max-other-cpu % of a CPU during it: the machine
 * is shared. Keeps the least disturbed attempt; the others go to the JSON.
 */
async function guarded<T extends { cpu: CpuReport }>(what: string, measure: () => Promise<T>): Promise<T & { attempts: number; discarded: T[] }> {
  const tries: T[] = [];
  for (let attempt = 0; attempt <= args.retries; attempt++) {
    const r = await measure();
    tries.push(r);
    if (r.cpu.otherPct <= args['max-other-cpu'] || aborted()) break;
    if (attempt < args.retries) {
      log(`  ${what}: other processes used ${r.cpu.otherPct}% of a CPU (> ${args['max-other-cpu']}%): measuring again in 5 s`);
      await sleep(5000);
    }
  }
  const kept = tries.reduce((a, b) => (b.cpu.otherPct < a.cpu.otherPct ? b : a));
  return { ...kept, attempts: tries.length, discarded: tries.filter((t) => t !== kept) };
}

/**
 * A process and everything it started (Berth's gateway pumps WebSocket bytes in a child
 * process): CPU, memory and CPU pinning count and move the whole tree.
 */
function processTree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${out[i]}/task`);
    } catch {
      continue;
    }
    for (const task of tasks) {
      try {
        for (const child of readFileSync(`/proc/${out[i]}/task/${task}/children`, 'utf8').split(/\s+/).filter(Boolean)) out.push(Number(child));
      } catch {
        // the task ended meanwhile
      }
    }
  }
  return out;
}

const treeCpuSeconds = (pid: number) => processTree(pid).reduce((sum, p) => sum + processCpuSeconds(p), 0);
const treeRss = (pid: number) => processTree(pid).reduce((sum, p) => sum + rssOf(p), 0);

/** CPU accounting around `fn`: per-CPU busy %, and what other processes used once `pids`, this process and `fn`'s reported CPU are subtracted. */
async function withCpu<T>(pids: number[], fn: () => Promise<{ value: T; cpuSeconds: number }>): Promise<{ value: T; cpu: CpuReport; seconds: number; pidCpuSeconds: number[] }> {
  const before = { cpu: cpuTimes(), pids: pids.map(treeCpuSeconds), self: process.cpuUsage(), t: Date.now() };
  const { value, cpuSeconds } = await fn();
  const seconds = (Date.now() - before.t) / 1000;
  const pidCpuSeconds = pids.map((pid, i) => treeCpuSeconds(pid) - before.pids[i]);
  const self = process.cpuUsage(before.self);
  const own = pidCpuSeconds.reduce((a, b) => a + b, 0) + cpuSeconds + (self.user + self.system) / 1e6;
  return { value, cpu: cpuDelta(before.cpu, cpuTimes(), own, seconds), seconds, pidCpuSeconds };
}

async function httpTest(dir: string, running: Running[], upstream: Child): Promise<HttpRun[]> {
  const targets: { label: string; c: Running; base: string; headers: Record<string, string> }[] = [];
  for (const c of running) {
    targets.push({ label: c.name, c, base: c.base, headers: c.headers });
    if (c.hostForm && args['host-form']) targets.push({ label: `${c.name}-host`, c, base: c.hostForm.base, headers: c.hostForm.headers });
  }
  const runs: HttpRun[] = [];
  for (let round = 1; round <= args['http-runs'] && !aborted(); round++) {
    for (const t of targets) {
      if (aborted()) break;
      const url = `http://127.0.0.1:${t.c.port}${t.base}/`;
      log(`http round ${round}/${args['http-runs']}: ${t.label} (warm-up ${args['http-warmup-s']} s, then ${args['http-duration-s']} s)`);
      const run = await guarded(`http ${t.label}`, async (): Promise<HttpRun> => {
        if (args['http-warmup-s'] > 0) await wrk(dir, url, t.headers, args['http-warmup-s']);
        const load1 = os.loadavg()[0];
        const proxyPid = t.c.process?.pid;
        const pids = proxyPid ? [upstream.pid, proxyPid] : [upstream.pid];
        let wrkCpu = 0;
        const measured = await withCpu(pids, async () => {
          const { result, cpuSeconds } = await wrk(dir, url, t.headers, args['http-duration-s']);
          wrkCpu = cpuSeconds;
          return { value: result, cpuSeconds };
        });
        const result = measured.value;
        const errors = result.connect + result.read + result.write + result.status + result.timeout;
        if (errors > 0) log(`  WARNING: ${t.label}: ${errors} errors (connect ${result.connect}, read ${result.read}, write ${result.write}, non-2xx ${result.status}, timeout ${result.timeout})`);
        const rps = result.requests / (result.duration_us / 1e6);
        const { cpu, seconds } = measured;
        log(`  ${fmtInt(rps)} req/s, p50 ${fmtMs2(result.p50)}, p99 ${fmtMs2(result.p99)}; cpu${CPU_PROXY} ${cpu.busy[CPU_PROXY]}%, cpu${CPU_CLIENT} ${cpu.busy[CPU_CLIENT]}%, other ${cpu.otherPct}%`);
        return {
          contender: t.label,
          round,
          rps,
          wrk: result,
          cpu,
          proxyCpuPct: proxyPid ? round1((100 * measured.pidCpuSeconds[1]) / seconds) : null,
          upstreamCpuPct: round1((100 * measured.pidCpuSeconds[0]) / seconds),
          wrkCpuPct: round1((100 * wrkCpu) / seconds),
          load1: round2(load1),
        };
      });
      runs.push(run);
    }
  }
  return runs;
}

// ---------------------------------------------------------------------------- WebSocket

async function wsClient<T>(dir: string, config: Record<string, unknown>, timeoutMs: number, cpu = CPU_CLIENT): Promise<T & { cpu: NodeJS.CpuUsage }> {
  const client = launchNode('ws-client', cpu, [path.join(dir, 'ws-client.js')]);
  client.send({ config });
  try {
    return await client.next(
      (m) => {
        if (m?.error) throw new Error(`ws client: ${m.error}`);
        return m?.result as (T & { cpu: NodeJS.CpuUsage }) | undefined;
      },
      timeoutMs,
      'result',
    );
  } finally {
    await client.stop();
  }
}

const wsUrl = (c: Running, suffix: string) => `ws://127.0.0.1:${c.port}${c.base}/${suffix}`;

/** Moves every thread of a running process to `cpu` (the WebSocket round trip's second layout). */
function pin(pid: number, cpu: string): void {
  for (const p of processTree(pid)) execFileSync('taskset', ['-a', '-p', '-c', cpu, String(p)], { stdio: 'ignore' });
}

type Layout = 'split' | 'shared';

interface WsRtt {
  contender: string;
  layout: Layout;
  round: number;
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  cpu: CpuReport;
  attempts?: number;
  discarded?: WsRtt[];
  samplesUs?: number[];
}

interface WsThroughput {
  contender: string;
  window: number;
  round: number;
  mibPerS: number;
  cpu: CpuReport;
  proxyCpuPct: number | null;
  attempts?: number;
  discarded?: WsThroughput[];
}

interface PooledRtt {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
}

interface WsResults {
  rtt: WsRtt[];
  pooled: Record<Layout, Record<string, PooledRtt>>;
  throughput: WsThroughput[];
}

async function wsTest(dir: string, running: Running[], upstream: Child): Promise<WsResults> {
  const rtt: WsRtt[] = [];
  const layouts: Layout[] = args['ws-shared-layout'] ? ['split', 'shared'] : ['split'];
  // Calibration, main layout only: direct with the client moved to the contender's CPU, so each
  // round trip crosses between the two vCPUs twice (a proxy on its own CPU: four times).
  const direct = running.find((c) => c.name === 'direct');
  const calibration: (Running & { label: string; clientCpu: string })[] = direct ? [{ ...direct, label: 'direct-cross', clientCpu: CPU_PROXY }] : [];
  for (let round = 1; round <= args['ws-rounds'] && !aborted(); round++) {
    for (const layout of layouts) {
      const contenders = [...running.map((c) => ({ ...c, label: c.name as string, clientCpu: CPU_CLIENT })), ...(layout === 'split' ? calibration : [])];
      for (const c of contenders) {
        if (aborted()) break;
        const pid = c.process?.pid;
        if (layout === 'shared' && pid) pin(pid, CPU_CLIENT);
        try {
          const row = await guarded(`ws rtt ${c.label} (${layout})`, async (): Promise<WsRtt> => {
            const measured = await withCpu(pid ? [upstream.pid, pid] : [upstream.pid], async () => {
              const result = await wsClient<{ samplesUs: number[] }>(
                dir,
                { mode: 'rtt', url: wsUrl(c, 'rtt'), headers: c.headers, bytes: args['ws-message-bytes'], samples: args['ws-samples'], warmup: args['ws-warmup'] },
                120_000,
                c.clientCpu,
              );
              return { value: result.samplesUs, cpuSeconds: (result.cpu.user + result.cpu.system) / 1e6 };
            });
            const sorted = [...measured.value].sort((a, b) => a - b);
            return {
              contender: c.label,
              layout,
              round,
              p50: percentile(sorted, 0.5),
              p90: percentile(sorted, 0.9),
              p99: percentile(sorted, 0.99),
              mean: sorted.reduce((a, b) => a + b, 0) / sorted.length,
              cpu: measured.cpu,
              samplesUs: measured.value,
            };
          });
          rtt.push(row);
          log(`ws rtt round ${round}, ${layout} layout: ${c.label}: p50 ${fmtUs(row.p50)}, p99 ${fmtUs(row.p99)} (other CPU ${row.cpu.otherPct}%)`);
        } finally {
          if (layout === 'shared' && pid) pin(pid, CPU_PROXY);
        }
      }
    }
  }
  const pooled = { split: {}, shared: {} } as Record<Layout, Record<string, PooledRtt>>;
  for (const layout of layouts) {
    for (const name of [...running.map((c) => c.name as string), ...(layout === 'split' ? calibration.map((c) => c.label) : [])]) {
      const sorted = rtt
        .filter((r) => r.layout === layout && r.contender === name)
        .flatMap((r) => r.samplesUs ?? [])
        .sort((a, b) => a - b);
      if (sorted.length) pooled[layout][name] = { n: sorted.length, p50: percentile(sorted, 0.5), p90: percentile(sorted, 0.9), p99: percentile(sorted, 0.99), p999: percentile(sorted, 0.999) };
    }
  }
  // The raw samples are summarised above; the JSON keeps the per-round percentiles only.
  for (const r of rtt) delete r.samplesUs;

  const throughput: WsThroughput[] = [];
  const windows = args['ws-windows'].split(',').map(Number).filter((w) => w > 0);
  for (let round = 1; round <= Math.max(1, Math.min(args['ws-rounds'], 2)) && !aborted(); round++) {
    for (const window of windows) {
      for (const c of running) {
        if (aborted()) break;
        const pid = c.process?.pid;
        const row = await guarded(`ws throughput ${c.name}`, async (): Promise<WsThroughput> => {
          const measured = await withCpu(pid ? [upstream.pid, pid] : [upstream.pid], async () => {
            const result = await wsClient<{ mibPerS: number }>(
              dir,
              { mode: 'throughput', url: wsUrl(c, 'throughput'), headers: c.headers, bytes: args['ws-large-bytes'], window, seconds: args['ws-throughput-s'] },
              (args['ws-throughput-s'] + 60) * 1000,
            );
            return { value: result.mibPerS, cpuSeconds: (result.cpu.user + result.cpu.system) / 1e6 };
          });
          return {
            contender: c.name,
            window,
            round,
            mibPerS: measured.value,
            cpu: measured.cpu,
            proxyCpuPct: pid ? round1((100 * measured.pidCpuSeconds[1]) / measured.seconds) : null,
          };
        });
        throughput.push(row);
        log(`ws throughput round ${round}, window ${window}: ${c.name}: ${row.mibPerS.toFixed(0)} MiB/s (other CPU ${row.cpu.otherPct}%)`);
      }
    }
  }
  return { rtt, pooled, throughput };
}

// ---------------------------------------------------------------------------- idle WebSockets

interface IdleSample {
  t: number;
  rss: number;
  /** RSS of the proxy itself, then of each process it started (Berth's WebSocket splicer). */
  rssByProcess: number[];
  heapUsed?: number;
  heapTotal?: number;
  external?: number;
  arrayBuffers?: number;
  closed: number;
}

interface IdleResult {
  contender: ContenderName;
  connections: number;
  sessions: number;
  holdS: number;
  opened: number;
  failedToOpen: number;
  openErrors: Record<string, number>;
  openMs: number;
  baseline: IdleSample;
  /** Every reading taken while waiting for RSS to settle before the sockets were opened. */
  baselineReadings: IdleSample[];
  /** After the first half was opened (and 10 s). */
  halfway: IdleSample;
  openedHalfway: number;
  samples: IdleSample[];
  afterClose: IdleSample | null;
  alive: number;
  closedDuringHold: number;
  upstreamOpen: number | null;
  perConnectionAtOpen: number;
  perConnectionAtEnd: number;
  /** (RSS at the start of the hold - RSS half-way) / sockets opened in the second half: no baseline needed. */
  marginalPerConnection: number;
  driftBytes: number;
  slopeBytesPerMin: number;
  maxMinusMin: number;
}

/**
 * One memory reading: the probe inside the proxy runs a full GC and answers
 * with V8's figures, then RSS is read from /proc. Idle connections allocate
 * nothing, so after a GC what is left is what they hold.
 */
async function sampleMemory(c: Running, closed: number, t0: number): Promise<IdleSample> {
  const proxy = c.process!;
  const pending = proxy.next((m) => m?.memory as NodeJS.MemoryUsage | undefined, 20_000, 'memory figures');
  proxy.send({ cmd: 'memory', gc: true });
  const memory = await pending;
  return {
    t: Math.round((Date.now() - t0) / 1000),
    // With the children it started (Berth's WebSocket splicer holds the idle sockets).
    rss: treeRss(proxy.pid),
    rssByProcess: processTree(proxy.pid).map(rssOf),
    heapUsed: memory.heapUsed,
    heapTotal: memory.heapTotal,
    external: memory.external,
    arrayBuffers: memory.arrayBuffers,
    closed,
  };
}

/**
 * RSS before any idle socket: V8 gives memory back to the system lazily
 * (seconds after a burst), so wait until three readings 2 s apart agree within
 * 256 KiB (at most 60 s), and take the last.
 */
async function settled(c: Running, t0: number, closed: () => number): Promise<IdleSample[]> {
  const started = Date.now();
  const readings: IdleSample[] = [];
  while (true) {
    readings.push(await sampleMemory(c, closed(), t0));
    const window = readings.slice(-SETTLE_READINGS).map((r) => r.rss);
    if (Date.now() - started >= SETTLE_MIN_MS && window.length === SETTLE_READINGS && Math.max(...window) - Math.min(...window) <= 256 * 1024) break;
    if (Date.now() - started > SETTLE_MAX_MS) {
      log(`idle ${c.name}: RSS still moving after ${SETTLE_MAX_MS / 1000} s; using the last reading`);
      break;
    }
    await sleep(2_000);
  }
  return readings;
}
/**
 * V8 hands unused heap pages back some seconds after a burst (its memory
 * reducer: seen here 8–18 s after start-up, 30+ MiB for Berth's gateway), so
 * each reading that matters (before, half-way, start of the hold) is taken
 * only once RSS has not moved for 12 s, at least 20 s after the last burst.
 * The half-way reading gives a second, baseline-free figure.
 */
const SETTLE_MIN_MS = 20_000;
const SETTLE_MAX_MS = 120_000;
const SETTLE_READINGS = 7;

async function idleTest(
  dir: string,
  c: Running,
  targets: { url: string; headers: Record<string, string> }[],
  sessions: number,
  holdS: number,
  upstream: Child,
): Promise<IdleResult> {
  const n = targets.length;
  // Warm-up on a session outside the measured ones: code paths loaded, pools and route cache in use.
  for (let i = 0; i < 50; i++) await request('GET', `http://127.0.0.1:${c.port}${c.base}/warm`, { headers: c.headers });
  await wsClient(dir, { mode: 'rtt', url: wsUrl(c, 'warm'), headers: c.headers, bytes: 32, samples: 200, warmup: 0 }, 60_000);
  await sleep(5_000);
  const t0 = Date.now();
  const baselineReadings = await settled(c, t0, () => 0);
  const baseline = baselineReadings[baselineReadings.length - 1];
  log(`idle ${c.name}: RSS before opening (MiB): ${baselineReadings.map((r) => `${r.t}s ${(r.rss / MiB).toFixed(1)} (${r.rssByProcess.map((b) => (b / MiB).toFixed(1)).join('+')})`).join(', ')}`);
  log(`idle ${c.name}: baseline RSS ${fmtMiB1(baseline.rss)}; opening ${n} WebSockets`);
  const client = launchNode('idle-client', CPU_CLIENT, [path.join(dir, 'ws-client.js')]);
  client.send({ config: { mode: 'idle', targets, concurrency: 25 } });
  let closed = 0;
  client.child.on('message', (m: any) => {
    if (m?.closed) closed += m.closed;
  });
  type Opened = { opened: number; failed: number; errors: Record<string, number>; openMs: number };
  const openMore = async (count: number): Promise<Opened> => {
    const pending = client.next((m) => (m?.opened !== undefined ? (m as Opened) : undefined), 300_000, 'opened');
    client.send({ cmd: 'open', count });
    return pending;
  };
  const half = Math.floor(n / 2);
  const openedHalf = await openMore(half);
  const halfwayReadings = await settled(c, t0, () => closed);
  const halfway = halfwayReadings[halfwayReadings.length - 1];
  log(`idle ${c.name}: ${openedHalf.opened} open, RSS ${fmtMiB1(halfway.rss)}; opening the rest`);
  const opened = await openMore(n - half);
  opened.openMs += openedHalf.openMs;
  log(`idle ${c.name}: ${opened.opened} open, ${opened.failed} failed (opening took ${opened.openMs} ms); holding ${holdS} s`);
  const openReadings = await settled(c, t0, () => closed);
  const samples: IdleSample[] = [];
  const holdStart = Date.now();
  samples.push(openReadings[openReadings.length - 1]);
  while (!aborted() && Date.now() - holdStart < holdS * 1000) {
    await sleep(Math.min(args['idle-sample-s'] * 1000, holdS * 1000 - (Date.now() - holdStart)));
    const s = await sampleMemory(c, closed, t0);
    samples.push(s);
    log(`idle ${c.name}: t=${s.t}s RSS ${fmtMiB1(s.rss)}${s.rssByProcess.length > 1 ? ` (${s.rssByProcess.map(fmtMiB1).join(' + ')})` : ''}${s.heapUsed ? `, heap used ${fmtMiB1(s.heapUsed)}` : ''}, closed ${closed}`);
  }
  const upstreamOpen = await (async () => {
    const pending = upstream.next((m) => m?.stats as { wsOpen: number } | undefined, 10_000, 'stats');
    upstream.send({ cmd: 'stats' });
    return (await pending).wsOpen;
  })().catch(() => null);
  const checking = client.next((m) => m?.checked as { alive: number; total: number; closedUnexpectedly: number } | undefined, 60_000, 'check');
  client.send({ cmd: 'check' });
  const checked = await checking;
  log(`idle ${c.name}: ${checked.alive}/${opened.opened} still echo after the hold (${checked.closedUnexpectedly} closed during it); upstream holds ${upstreamOpen}`);
  client.send({ cmd: 'close' });
  await client.stop();
  await sleep(3_000);
  const afterClose = await sampleMemory(c, closed, t0);
  const first = samples[0];
  const last = samples[samples.length - 1];
  const rss = samples.map((s) => s.rss);
  return {
    contender: c.name,
    connections: n,
    sessions,
    holdS: Math.round((last.t - first.t) || holdS),
    opened: opened.opened,
    failedToOpen: opened.failed,
    openErrors: opened.errors,
    openMs: opened.openMs,
    baseline,
    baselineReadings,
    halfway,
    openedHalfway: openedHalf.opened,
    samples,
    afterClose,
    alive: checked.alive,
    closedDuringHold: checked.closedUnexpectedly,
    upstreamOpen,
    perConnectionAtOpen: (first.rss - baseline.rss) / Math.max(1, opened.opened),
    perConnectionAtEnd: (last.rss - baseline.rss) / Math.max(1, opened.opened),
    marginalPerConnection: (first.rss - halfway.rss) / Math.max(1, opened.opened - openedHalf.opened),
    driftBytes: last.rss - first.rss,
    slopeBytesPerMin: slope(
      samples.map((s) => s.t / 60),
      rss,
    ),
    maxMinusMin: Math.max(...rss) - Math.min(...rss),
  };
}

// ---------------------------------------------------------------------------- report

function httpSummary(runs: HttpRun[]): Map<string, { rps: number; rpsMin: number; rpsMax: number; p50: number; p99: number; proxyCpu: number | null; cpuClient: number; other: number; errors: number; retried: number }> {
  const out = new Map<string, { rps: number; rpsMin: number; rpsMax: number; p50: number; p99: number; proxyCpu: number | null; cpuClient: number; other: number; errors: number; retried: number }>();
  const names = [...new Set(runs.map((r) => r.contender))];
  for (const name of names) {
    const rs = runs.filter((r) => r.contender === name);
    out.set(name, {
      rps: median(rs.map((r) => r.rps)),
      rpsMin: Math.min(...rs.map((r) => r.rps)),
      rpsMax: Math.max(...rs.map((r) => r.rps)),
      p50: median(rs.map((r) => r.wrk.p50)),
      p99: median(rs.map((r) => r.wrk.p99)),
      proxyCpu: rs[0].proxyCpuPct === null ? null : median(rs.map((r) => r.proxyCpuPct ?? 0)),
      cpuClient: median(rs.map((r) => r.cpu.busy[CPU_CLIENT] ?? NaN)),
      other: median(rs.map((r) => r.cpu.otherPct)),
      errors: rs.reduce((sum, r) => sum + r.wrk.connect + r.wrk.read + r.wrk.write + r.wrk.status + r.wrk.timeout, 0),
      retried: rs.filter((r) => (r.attempts ?? 1) > 1).length,
    });
  }
  return out;
}

function report(data: {
  info: Record<string, string>;
  startedAt: string;
  load: ReturnType<typeof loadAverage>;
  http: HttpRun[];
  ws: Awaited<ReturnType<typeof wsTest>> | null;
  idle: IdleResult[];
}): string {
  const lines: string[] = [];
  const { info } = data;
  lines.push(`# Gateway benchmark, ${data.startedAt}`);
  lines.push('');
  lines.push(`Command: \`npx ts-node --transpile-only bench/gateway.ts ${process.argv.slice(2).join(' ')}\``.replace(/ `$/, '`'));
  lines.push('');
  lines.push(
    `Machine: ${info.cpuModel}, ${info.cpus}, ${info.hypervisor !== '?' ? `${info.hypervisor} guest, ` : ''}${info.memory}, kernel ${info.kernel}, ${info.os}; Node ${info.node}, ${info.wrk}, undici ${info.undici}, ws ${info.ws}, configurable-http-proxy ${info['configurable-http-proxy']}, http-proxy-3 ${info['http-proxy-3']}. Load before: ${data.load.load1} / ${data.load.load5} / ${data.load.load15}.`,
  );
  lines.push('');
  lines.push(`Berth measured: ${info.berth}.`);
  lines.push('');
  lines.push(
    `CPU layout (taskset): contender alone on CPU ${CPU_PROXY}; upstream (Node http + ws echo), wrk (1 thread) and the WebSocket clients on CPU ${CPU_CLIENT}; Postgres, this orchestrator and other processes on the host unpinned.`,
  );
  const targets: string[][] = [];

  if (data.http.length) {
    const s = httpSummary(data.http);
    const direct = s.get('direct');
    const chp = s.get('chp');
    lines.push('');
    lines.push(`## HTTP: 1 KiB responses, ${args.connections} connections, wrk -t1, median of ${args['http-runs']} interleaved runs of ${args['http-duration-s']} s`);
    lines.push('');
    const rows = [...s.entries()].map(([name, r]) => [
      LABEL[name] ?? name,
      `${fmtInt(r.rps)} (${fmtInt(r.rpsMin)}–${fmtInt(r.rpsMax)})`,
      direct ? fmtX(r.rps / direct.rps) : '-',
      chp ? fmtX(r.rps / chp.rps) : '-',
      fmtMs2(r.p50),
      fmtMs2(r.p99),
      r.proxyCpu === null ? '-' : `${r.proxyCpu}%`,
      `${r.cpuClient}%`,
      `${r.other}%`,
      String(r.errors),
      String(r.retried),
    ]);
    lines.push(markdownTable(['contender', 'requests/s (min–max)', 'x direct', 'x CHP', 'p50', 'p99', `proxy CPU`, `CPU ${CPU_CLIENT} busy`, 'other CPU', 'errors', 'runs redone'], rows));
    lines.push('');
    lines.push(`proxy CPU: the contender process, % of one CPU; CPU ${CPU_CLIENT} busy: upstream + wrk (if it nears 100 % the client side limits the result); other CPU: everything else on the host during the run, % of one CPU (runs with more than ${args['max-other-cpu']} % were measured again, up to ${args.retries} times, keeping the least disturbed).`);
    const berth = s.get('berth');
    if (berth && chp) targets.push(['HTTP requests/s >= 1.6x configurable-http-proxy', `${fmtX(berth.rps / chp.rps)} (${fmtInt(berth.rps)} vs ${fmtInt(chp.rps)})`, verdict(berth.rps / chp.rps >= 1.6)]);
    if (berth) targets.push(['HTTP p99 <= 20 ms', fmtMs2(berth.p99), verdict(berth.p99 <= 20_000)]);
  }

  if (data.ws) {
    const { pooled, rtt, throughput } = data.ws;
    for (const layout of Object.keys(pooled) as Layout[]) {
      const p = pooled[layout];
      if (!Object.keys(p).length) continue;
      const direct = p.direct;
      lines.push('');
      lines.push(
        layout === 'split'
          ? `## WebSocket round trip, main layout (contender alone on CPU ${CPU_PROXY}): ${args['ws-message-bytes']}-byte binary messages, one at a time, ${args['ws-samples']} per contender per round, ${args['ws-rounds']} interleaved rounds (pooled)`
          : `## WebSocket round trip, shared layout (contender moved onto CPU ${CPU_CLIENT} with the client and the upstream, same messages)`,
      );
      lines.push('');
      const rows = Object.entries(p).map(([name, q]) => {
        const perRound = rtt.filter((r) => r.contender === name && r.layout === layout).map((r) => `${Math.round(r.p50)}${(r.attempts ?? 1) > 1 ? '*' : ''}`);
        return [
          LABEL[name] ?? name,
          fmtUs(q.p50),
          fmtUs(q.p90),
          fmtUs(q.p99),
          fmtUs(q.p999),
          direct && name !== 'direct' ? fmtSignedUs(q.p50 - direct.p50) : '-',
          direct && name !== 'direct' ? fmtSignedUs(q.p99 - direct.p99) : '-',
          perRound.join(' / '),
        ];
      });
      lines.push(markdownTable(['contender', 'p50', 'p90', 'p99', 'p99.9', 'added p50', 'added p99', 'p50 per round (us)'], rows));
      if (p.berth && direct) {
        const added = p.berth.p50 - direct.p50;
        targets.push([`WebSocket added round trip p50 <= 50 us (${layout} layout)`, `${fmtSignedUs(added)} (${fmtUs(p.berth.p50)} vs ${fmtUs(direct.p50)} direct)`, verdict(added <= 50)]);
      }
    }
    lines.push('');
    lines.push('`*`: measured again because other processes on the host were busy during an earlier attempt (the least disturbed attempt is kept).');
    const windows = [...new Set(throughput.map((t) => t.window))];
    lines.push('');
    lines.push(`## WebSocket echo throughput: ${fmtKiB(args['ws-large-bytes'])} binary messages, ${args['ws-throughput-s']} s after 1 s warm-up (median of rounds, main layout)`);
    lines.push('');
    const names = [...new Set(throughput.map((t) => t.contender))];
    const med = (name: string, window: number) => median(throughput.filter((t) => t.contender === name && t.window === window).map((t) => t.mibPerS));
    const proxyCpu = (name: string, window: number) => median(throughput.filter((t) => t.contender === name && t.window === window).map((t) => t.proxyCpuPct ?? NaN));
    const header = ['contender', ...windows.flatMap((w) => [`MiB/s, ${w} in flight`, 'x direct', 'proxy CPU'])];
    lines.push(
      markdownTable(
        header,
        names.map((name) => [
          LABEL[name] ?? name,
          ...windows.flatMap((w) => [fmtInt(med(name, w)), fmtX(med(name, w) / med('direct', w)), Number.isFinite(proxyCpu(name, w)) ? `${Math.round(proxyCpu(name, w))}%` : '-']),
        ]),
      ),
    );
    for (const w of windows) {
      if (names.includes('berth') && names.includes('direct')) {
        const ratio = med('berth', w) / med('direct', w);
        targets.push([`WebSocket throughput >= 0.6x direct (${w} in flight)`, `${fmtX(ratio)} (${fmtInt(med('berth', w))} vs ${fmtInt(med('direct', w))} MiB/s)`, verdict(ratio >= 0.6)]);
      }
    }
  }

  for (const r of data.idle) {
    lines.push('');
    lines.push(`## Idle WebSockets: ${LABEL[r.contender] ?? r.contender}, ${r.opened} open${r.sessions > 1 ? ` (one per session, ${r.sessions} sessions)` : ' (one route)'}, held ${r.holdS} s`);
    lines.push('');
    lines.push(
      markdownTable(
        ['', 'value'],
        [
          ['opened / failed to open', `${r.opened} / ${r.failedToOpen}${r.failedToOpen ? ` (${JSON.stringify(r.openErrors)})` : ''} in ${r.openMs} ms`],
          ['closed during the hold', String(r.closedDuringHold)],
          ['still echoing after the hold', `${r.alive} / ${r.opened}`],
          ['upstream sockets open at the end', String(r.upstreamOpen ?? '-')],
          ['RSS before (warm, none open; every reading after a full GC)', fmtMiB1(r.baseline.rss)],
          ['RSS at the start of the hold (once settled after the last opened)', fmtMiB1(r.samples[0].rss)],
          ['RSS at the end of the hold', fmtMiB1(r.samples[r.samples.length - 1].rss)],
          ['RSS with half of them open', `${fmtMiB1(r.halfway.rss)} (${r.openedHalfway} open)`],
          ...(r.baseline.rssByProcess.length > 1
            ? [['RSS by process (the proxy + the processes it started): before / start / end of the hold', [r.baseline, r.samples[0], r.samples[r.samples.length - 1]].map((x) => x.rssByProcess.map(fmtMiB1).join(' + ')).join(' / ')] as [string, string]]
            : []),
          ['per connection: (RSS - before) / open, start / end of the hold', `${fmtKiB(r.perConnectionAtOpen)} / ${fmtKiB(r.perConnectionAtEnd)}`],
          ['per connection, marginal: second half only (RSS at start of hold - half-way) / sockets', fmtKiB(r.marginalPerConnection)],
          ['RSS drift over the hold (last - first sample) / max - min', `${fmtMiB1(r.driftBytes)} / ${fmtMiB1(r.maxMinusMin)}`],
          ['RSS trend (least squares)', `${(r.slopeBytesPerMin / 1024).toFixed(1)} KiB/min`],
          ...(r.baseline.heapUsed !== undefined
            ? [
                ['V8 heap total before / start / end of hold', [r.baseline, r.samples[0], r.samples[r.samples.length - 1]].map((x) => fmtMiB1(x.heapTotal ?? 0)).join(' / ')],
          ['V8 heap used before / start / end of hold', `${fmtMiB1(r.baseline.heapUsed)} / ${fmtMiB1(r.samples[0].heapUsed ?? NaN)} / ${fmtMiB1(r.samples[r.samples.length - 1].heapUsed ?? NaN)}`],
                ['heap used per connection (start of hold)', fmtKiB(((r.samples[0].heapUsed ?? NaN) - r.baseline.heapUsed) / Math.max(1, r.opened))],
              ]
            : []),
          ['RSS 3 s after closing them all (after a GC)', r.afterClose ? fmtMiB1(r.afterClose.rss) : '-'],
        ],
      ),
    );
    if (r.contender === 'berth') {
      lines.push('');
      lines.push(
        `Samples (s: RSS MiB / heap used MiB): ${r.samples.map((s) => `${s.t}: ${(s.rss / MiB).toFixed(1)}${s.heapUsed ? `/${(s.heapUsed / MiB).toFixed(1)}` : ''}`).join(', ')}`,
      );
      const drops = r.opened - r.alive + r.failedToOpen;
      targets.push([`${args['idle-connections']} idle WebSockets, none dropped`, `${drops} dropped or refused (${r.alive}/${args['idle-connections']} alive after ${r.holdS} s)`, verdict(drops === 0 && r.opened === args['idle-connections'])]);
      // What the held sockets cost: RSS at the end of the hold over the baseline, and the
      // baseline-free marginal figure, whichever is larger. The reading at the start of the
      // hold is reported but not judged: it still holds the young generation V8 grew to
      // absorb the opening burst (1,000 upgrades in ~2 s), which its memory reducer hands
      // back some seconds later, after RSS has looked settled (V8's heap total falls by that
      // much between the two readings; shown in the table).
      const perConn = Math.max(r.perConnectionAtEnd, r.marginalPerConnection);
      const first = r.samples[0];
      const last = r.samples[r.samples.length - 1];
      targets.push([
        '<= 20 KiB of gateway memory per idle WebSocket',
        `${fmtKiB(perConn)} (RSS, gateway and splicer: the larger of end of the hold and marginal; at the start of the hold ${fmtKiB(r.perConnectionAtOpen)}, V8 heap total ${fmtMiB1(first.heapTotal ?? 0)} then, ${fmtMiB1(last.heapTotal ?? 0)} at the end)`,
        verdict(perConn <= 20 * 1024),
      ]);
      // Flat = no growth: RSS and the V8 heap do not rise over the hold (V8 returning pages, a fall, is fine).
      const heapDrift = (r.samples[r.samples.length - 1].heapUsed ?? 0) - (r.samples[0].heapUsed ?? 0);
      const flat = r.driftBytes <= 1 * MiB && r.slopeBytesPerMin <= 64 * 1024 && heapDrift <= 512 * 1024;
      targets.push([
        'memory flat over the hold (RSS up <= 1 MiB, trend <= +64 KiB/min, heap up <= 0.5 MiB)',
        `RSS ${r.driftBytes >= 0 ? '+' : ''}${fmtMiB1(r.driftBytes)} (trend ${(r.slopeBytesPerMin / 1024).toFixed(1)} KiB/min), heap ${heapDrift >= 0 ? '+' : ''}${fmtMiB1(heapDrift)}`,
        verdict(flat),
      ]);
    }
  }

  if (targets.length) {
    lines.push('');
    lines.push('## Targets');
    lines.push('');
    lines.push(markdownTable(['target', 'measured', ''], targets));
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------- main

async function main(): Promise<void> {
  const stamp = timestampForFile();
  const startedAt = new Date().toISOString().replace('T', ' ').slice(0, 16) + ' UTC';
  for (const tool of ['taskset', 'wrk']) {
    try {
      execFileSync('which', [tool], { stdio: 'ignore' });
    } catch {
      throw new Error(`${tool} is missing (scripts/bench.sh installs it)`);
    }
  }
  const cpus = os.cpus().length;
  if (Number(CPU_PROXY) >= cpus || Number(CPU_CLIENT) >= cpus || CPU_PROXY === CPU_CLIENT) throw new Error(`CPU layout needs two distinct CPUs below ${cpus}`);
  const info = machine();
  const load = loadAverage();
  log(`machine: ${info.cpuModel}, ${info.cpus}, ${info.memory}, kernel ${info.kernel}, Node ${info.node}; load ${load.load1} ${load.load5} ${load.load15}`);

  mkdirSync(RESULTS_DIR, { recursive: true });
  const dir = path.join(RESULTS_DIR, `.gateway-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  for (const [file, source] of Object.entries(PROGRAMS)) writeFileSync(path.join(dir, file), source);
  const dist = copyDist(args.dist);
  info.berth = `${buildLabel()}; build ${args.dist}`;
  const logPrefix = path.join(RESULTS_DIR, `gateway-${stamp}`);
  const { hashToken } = require(path.join(dist.dir, 'src', 'common', 'tokens.js')) as { hashToken: (token: string) => string };

  const result: { info: Record<string, string>; args: typeof args; startedAt: string; load: typeof load; http: HttpRun[]; ws: Awaited<ReturnType<typeof wsTest>> | null; idle: IdleResult[] } = {
    info,
    args,
    startedAt,
    load,
    http: [],
    ws: null,
    idle: [],
  };
  try {
    await prepareDatabase();
    const upstream = launchNode('upstream', CPU_CLIENT, [path.join(dir, 'upstream.js')]);
    const upstreamPort = await upstream.next((m) => m?.ready as number | undefined, 30_000, 'ready');
    const upstreamUrl = `http://127.0.0.1:${upstreamPort}`;
    log(`upstream on ${upstreamUrl} (CPU ${CPU_CLIENT})`);

    // The schema first (the gateway would apply it too, RUN_MIGRATIONS_ON_START=true), then the rows.
    const migrate = launchNode('migrations', null, [path.join(dist.dir, 'src', 'database', 'run-migrations.js')], { env: berthEnvironment(await freePort()), logFile: `${logPrefix}-migrations.log` });
    await new Promise<void>((resolve, reject) => migrate.child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`migrations failed (code ${code}), see ${logPrefix}-migrations.log`)))));
    const [session] = await insertSessions(1, upstreamUrl, hashToken);
    const ctx = { dir, distDir: dist.dir, upstreamUrl, session, logPrefix };

    if (TESTS.has('http') || TESTS.has('ws')) {
      const running: Running[] = [];
      try {
        for (const name of CONTENDERS) {
          log(`starting ${name}`);
          running.push(await startContender(name, ctx));
        }
        if (TESTS.has('http')) result.http = await httpTest(dir, running, upstream);
        if (TESTS.has('ws') && !aborted()) result.ws = await wsTest(dir, running, upstream);
      } finally {
        await stopAll(running.map((r) => r.process).filter((p): p is Child => p !== null));
      }
    }

    if (TESTS.has('idle') && !aborted()) {
      const n = args['idle-connections'];
      const idleSessions = await insertSessions(n, upstreamUrl, hashToken);
      const order: ProxyName[] = ['berth', ...(args['idle-peers'] ? PROXIES.filter((p) => p !== 'berth') : [])];
      for (const name of order) {
        if (aborted() || !PROXIES.includes(name)) continue;
        log(`idle: starting a fresh ${name}`);
        const c = await startContender(name, ctx);
        try {
          const targets =
            name === 'berth'
              ? idleSessions.map((s) => ({ url: `ws://127.0.0.1:${c.port}/s/${s.id}/idle`, headers: { authorization: `Bearer ${s.token}` } }))
              : idleSessions.map((_, i) => ({ url: `${wsUrl(c, 'idle')}?i=${i}`, headers: c.headers }));
          result.idle.push(await idleTest(dir, c, targets, name === 'berth' ? n : 1, name === 'berth' ? args['idle-hold-s'] : args['idle-peer-hold-s'], upstream));
        } finally {
          await c.process?.stop();
        }
      }
    }
    await upstream.stop();
  } finally {
    await stopAll(children);
    dist.remove();
    rmSync(dir, { recursive: true, force: true });
  }

  const markdown = report(result);
  const json = writeJson(`gateway-${stamp}.json`, result);
  const md = writeText(`gateway-${stamp}.md`, markdown);
  console.log(markdown);
  console.log('');
  console.log(`Results: ${md} (JSON: ${json}; Berth's log: ${logPrefix}-berth.log)`);
}

main().catch(async (error: Error) => {
  log(`failed: ${error.stack ?? error.message}`);
  await stopAll(children).catch(() => undefined);
  process.exit(1);
});
