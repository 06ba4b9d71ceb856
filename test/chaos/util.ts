import { ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { AddressInfo, createServer } from 'node:net';

/** Small shared helpers of the chaos harness (no side effects on import). */

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Polls `probe` until it returns a truthy value, or throws after `timeoutMs` naming `what`. */
export async function until<T>(probe: () => Promise<T | undefined | null | false>, timeoutMs: number, what: string, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(everyMs);
  }
}

export function randomBetween(min: number, max: number): number {
  return min + Math.random() * (max - min);
}

export function quantile(values: number[], q: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/**
 * A child process whose output goes to a log file (appended across
 * restarts), that can be signalled and awaited. Exits not asked for are
 * reported to `onUnexpectedExit` (a supervisor restarts it).
 */
export class Child {
  child: ChildProcess | null = null;
  private exited: Promise<number | null> = Promise.resolve(null);
  private expectingExit = false;
  onUnexpectedExit: (code: number | null, signal: NodeJS.Signals | null) => void = () => {};

  constructor(
    readonly name: string,
    private readonly command: string,
    private readonly args: string[],
    private readonly logFile: string,
    private readonly options: { env?: NodeJS.ProcessEnv; uid?: number; gid?: number; cwd?: string } = {},
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  start(): void {
    if (this.running) throw new Error(`${this.name} is already running`);
    const fd = openSync(this.logFile, 'a');
    this.expectingExit = false;
    const child = spawn(this.command, this.args, {
      env: this.options.env ?? process.env,
      uid: this.options.uid,
      gid: this.options.gid,
      cwd: this.options.cwd,
      stdio: ['ignore', fd, fd],
    });
    closeSync(fd);
    this.child = child;
    this.exited = new Promise((resolve) => {
      child.once('error', () => resolve(null));
      child.once('exit', (code, signal) => {
        if (!this.expectingExit) this.onUnexpectedExit(code, signal);
        resolve(code);
      });
    });
  }

  /** Sends `signal` and waits for the exit; SIGKILL after `timeoutMs`. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 20_000): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    this.expectingExit = true;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** Pauses (SIGSTOP) or resumes (SIGCONT) the process without ending it. */
  freeze(frozen: boolean): void {
    this.child?.kill(frozen ? 'SIGSTOP' : 'SIGCONT');
  }

  /** Last resort from a synchronous exit handler. */
  killNow(): void {
    if (this.running) {
      this.expectingExit = true;
      this.child!.kill('SIGKILL');
    }
  }
}

/** Wall-clock milliseconds as an ISO time of day, for logs and the report. */
export function clock(ms = Date.now()): string {
  return new Date(ms).toISOString().slice(11, 23);
}
