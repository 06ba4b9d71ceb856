import { randomUUID } from 'node:crypto';
import { request } from 'node:http';
import { randomBetween, sleep } from './util';

export interface CallRecord {
  at: number;
  api: number;
  method: string;
  path: string;
  /** 0: no HTTP answer (connection refused or reset: the process was down or died mid-request). */
  status: number;
  ms: number;
  retryAfter?: string;
  body?: string;
  error?: string;
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  json: any;
}

const TIMEOUT_MS = 15_000;

/** One HTTP client for every API process, recording every answer (status, Retry-After) for the figures. */
export class ApiClient {
  readonly records: CallRecord[] = [];

  constructor(
    private readonly urls: () => string[],
    private readonly key: string,
  ) {}

  get count(): number {
    return this.urls().length;
  }

  async call(api: number, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
    const base = this.urls()[api % this.count];
    const target = new URL(path, base);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const started = Date.now();
    const answer = await new Promise<Answer & { error?: string }>((resolve) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: target.port,
          path: `${target.pathname}${target.search}`,
          method,
          agent: false,
          headers: {
            authorization: `Bearer ${this.key}`,
            ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
            ...headers,
          },
          timeout: TIMEOUT_MS,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let json: unknown = undefined;
            try {
              json = JSON.parse(text);
            } catch {
              // not JSON
            }
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text, json });
          });
          res.on('error', (error) => resolve({ status: 0, headers: {}, body: '', json: undefined, error: error.message }));
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${TIMEOUT_MS} ms`)));
      req.on('error', (error) => resolve({ status: 0, headers: {}, body: '', json: undefined, error: error.message }));
      req.end(payload);
    });
    const record: CallRecord = { at: started, api: api % this.count, method, path, status: answer.status, ms: Date.now() - started };
    if (answer.status === 503 || answer.status === 429) record.retryAfter = answer.headers['retry-after'] as string | undefined;
    if (answer.status >= 500) record.body = answer.body.slice(0, 300);
    if (answer.error) record.error = answer.error;
    this.records.push(record);
    return answer;
  }

  /** Answers that count against Berth: 5xx other than 503, and 503s without Retry-After. */
  serverErrors(since = 0): CallRecord[] {
    return this.records.filter((r) => r.at >= since && r.status >= 500 && r.status !== 503);
  }

  /** 503 refusals without Retry-After (GET /health is a report, not a refusal: its 503 names what is down). */
  unavailableWithoutRetryAfter(since = 0): CallRecord[] {
    return this.records.filter((r) => r.at >= since && r.status === 503 && !r.retryAfter && r.path !== '/health');
  }
}

export interface TrackedSession {
  id: string;
  idempotencyKey: string;
  ttlSeconds: number;
  /** Left to expire on its own, or deleted by the driver. */
  plan: 'expire' | 'delete';
  requestedAt: number;
  acceptedAt: number;
  launchApi: number;
  deleteAt?: number;
  deleteRequestedAt?: number;
  deleteAnsweredAt?: number;
  deleteStatus?: number;
}

export interface LoadOptions {
  /** Launches per second. */
  rate: number;
  /** Share of sessions left to expire on their own, with a TTL drawn from `shortTtlSeconds`. */
  expireShare: number;
  shortTtlSeconds: [number, number];
  /** TTL of the sessions the driver deletes (they are deleted well before). */
  longTtlSeconds: number;
  /** When the driver deletes a session, after it was accepted (0: at once, often before it started). */
  deleteAfterSeconds: [number, number];
  /** Share of the deleted sessions kept much longer (across several faults): deleted `keepSeconds` after acceptance. */
  keepShare: number;
  keepSeconds: [number, number];
  /** A client keeps retrying a launch or delete this long through 503s and refused connections. */
  retryForMs: number;
}

export const DEFAULT_LOAD: LoadOptions = {
  rate: 2,
  expireShare: 0.4,
  shortTtlSeconds: [4, 12],
  longTtlSeconds: 90,
  deleteAfterSeconds: [0, 15],
  keepShare: 0.1,
  keepSeconds: [40, 100],
  retryForMs: 90_000,
};

/**
 * A steady stream of launches and deletes, as a well-behaved client sends
 * them: every launch carries an Idempotency-Key and is retried (same key)
 * through 503s (after Retry-After) and refused connections (on the other API
 * process); deletes go to the other API process than the launch, and are
 * retried the same way. A share of sessions is left to expire on its own.
 */
export class LoadDriver {
  readonly sessions = new Map<string, TrackedSession>();
  readonly launches = { attempted: 0, accepted: 0, gaveUp: 0, refusedAnswers: 0, unexpected: [] as string[] };
  readonly deletes = { attempted: 0, answered: 0, gaveUp: 0, unexpected: [] as string[] };
  private readonly inFlight = new Set<Promise<void>>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private launching = false;
  private nextApi = 0;
  private draining = false;

  constructor(
    private readonly client: ApiClient,
    private readonly options: LoadOptions = DEFAULT_LOAD,
  ) {}

  start(): void {
    this.launching = true;
    void this.loop();
  }

  private async loop(): Promise<void> {
    const interval = 1000 / this.options.rate;
    let next = Date.now();
    while (this.launching) {
      this.track(this.launch());
      next += interval * randomBetween(0.5, 1.5);
      await sleep(Math.max(0, next - Date.now()));
    }
  }

  /** Stops launching; deletes still planned happen at their time. */
  stopLaunching(): void {
    this.launching = false;
  }

  /** Stops launching, deletes every session planned for deletion now, and waits for every request to be answered. */
  async drain(): Promise<void> {
    this.launching = false;
    this.draining = true;
    while (this.inFlight.size) await Promise.all([...this.inFlight]);
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    for (const session of this.sessions.values()) {
      if (session.plan === 'delete' && session.deleteRequestedAt === undefined) this.track(this.remove(session));
    }
    while (this.inFlight.size) await Promise.all([...this.inFlight]);
  }

  private track(promise: Promise<unknown>): void {
    const tracked: Promise<void> = promise.then(
      () => undefined,
      () => undefined,
    ).finally(() => this.inFlight.delete(tracked));
    this.inFlight.add(tracked);
  }

  /** One launch, retried with its Idempotency-Key until answered. Resolves with the session, or null when given up. */
  async launch(plan?: 'expire' | 'delete', ttlSeconds?: number): Promise<TrackedSession | null> {
    const expire = plan ? plan === 'expire' : Math.random() < this.options.expireShare;
    const [low, high] = this.options.shortTtlSeconds;
    const keep = !expire && !plan && Math.random() < this.options.keepShare;
    const ttl = ttlSeconds ?? (expire ? Math.round(randomBetween(low, high)) : keep ? Math.ceil(this.options.keepSeconds[1] + 60) : this.options.longTtlSeconds);
    const key = randomUUID();
    const requestedAt = Date.now();
    let api = this.nextApi++;
    this.launches.attempted++;
    while (Date.now() - requestedAt < this.options.retryForMs) {
      const answer = await this.client.call(api, 'POST', '/api/v1/terminals', { ttl_seconds: ttl }, { 'idempotency-key': key });
      if ((answer.status === 202 || answer.status === 200) && answer.json?.id) {
        const session: TrackedSession = {
          id: answer.json.id,
          idempotencyKey: key,
          ttlSeconds: ttl,
          plan: expire ? 'expire' : 'delete',
          requestedAt,
          acceptedAt: Date.now(),
          launchApi: api % this.client.count,
        };
        this.launches.accepted++;
        this.sessions.set(session.id, session);
        if (!expire && !plan) this.planDelete(session, keep ? this.options.keepSeconds : this.options.deleteAfterSeconds);
        return session;
      }
      if (answer.status === 503 || answer.status === 429) {
        this.launches.refusedAnswers++;
        const retryAfter = Number(answer.headers['retry-after'] ?? 1);
        await sleep(Math.min(Number.isFinite(retryAfter) ? retryAfter : 1, 5) * 1000 * randomBetween(0.8, 1.2));
        api++;
        continue;
      }
      if (answer.status === 0) {
        api++;
        await sleep(200);
        continue;
      }
      this.launches.unexpected.push(`${answer.status} ${answer.body.slice(0, 200)}`);
      return null;
    }
    this.launches.gaveUp++;
    return null;
  }

  private planDelete(session: TrackedSession, [low, high]: [number, number]): void {
    const delay = randomBetween(low, high) * 1000;
    session.deleteAt = session.acceptedAt + delay;
    if (this.draining) return;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.track(this.remove(session));
    }, delay);
    this.timers.add(timer);
  }

  /** DELETE through the other API process than the launch, retried until answered. */
  async remove(session: TrackedSession): Promise<void> {
    session.deleteRequestedAt = Date.now();
    this.deletes.attempted++;
    let api = session.launchApi + 1;
    while (Date.now() - session.deleteRequestedAt < this.options.retryForMs) {
      const answer = await this.client.call(api, 'DELETE', `/api/v1/terminals/${session.id}`);
      if (answer.status === 200) {
        session.deleteAnsweredAt = Date.now();
        session.deleteStatus = 200;
        this.deletes.answered++;
        return;
      }
      if (answer.status === 503 || answer.status === 429 || answer.status === 0) {
        api++;
        await sleep(answer.status === 0 ? 200 : 1000);
        continue;
      }
      session.deleteStatus = answer.status;
      this.deletes.unexpected.push(`${session.id}: ${answer.status} ${answer.body.slice(0, 200)}`);
      return;
    }
    this.deletes.gaveUp++;
  }
}

export interface HealthSample {
  at: number;
  api: number;
  status: number;
  database?: string;
  redis?: string;
  platform?: string;
}

/** GET /health on every API process every `everyMs`: which dependency each one said was down, and when. */
export class HealthWatcher {
  readonly samples: HealthSample[] = [];
  private running = false;
  private loop?: Promise<void>;

  constructor(
    private readonly client: ApiClient,
    private readonly everyMs = 500,
  ) {}

  start(): void {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        await Promise.all(
          Array.from({ length: this.client.count }, async (_, api) => {
            const at = Date.now();
            const answer = await this.client.call(api, 'GET', '/health');
            const checks = answer.json?.checks ?? {};
            this.samples.push({ at, api, status: answer.status, database: checks.database?.status, redis: checks.redis?.status, platform: checks.platform?.status });
          }),
        );
        await sleep(this.everyMs);
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}
