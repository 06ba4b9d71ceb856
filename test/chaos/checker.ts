import { Pool } from 'pg';
import { LABELS } from '../../src/platform/container-platform';
import { BerthCluster } from './berth-cluster';
import { ContainerObserver } from './container-observer';
import { ApiClient, LoadDriver } from './load-driver';
import { quantile, sleep } from './util';

/** A stretch of time during which something was down or being restarted. */
export interface Window {
  kind: 'postgres' | 'redis' | 'docker' | 'worker' | 'api';
  action: string;
  start: number;
  end: number;
}

/** Read access to the private Postgres, patient through its outages. */
export class ChaosDb {
  private readonly pool: Pool;

  constructor(url: string) {
    this.pool = new Pool({ connectionString: url, max: 3, connectionTimeoutMillis: 2000 });
    this.pool.on('error', () => undefined);
  }

  /** Retries through an outage for up to `patienceMs`. */
  async query<T = Record<string, any>>(sql: string, params: unknown[] = [], patienceMs = 60_000): Promise<T[]> {
    const deadline = Date.now() + patienceMs;
    for (;;) {
      try {
        return (await this.pool.query(sql, params)).rows as T[];
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await sleep(250);
      }
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

export interface SessionFacts {
  id: string;
  status: string;
  created_at: Date;
  expires_at: Date;
  end_reason: string | null;
  error_message: string | null;
  started_ev: Date | null;
  ended_ev: Date | null;
  final_ev: Date | null;
  stopping_events: number;
  final_events: number;
  started_events: number;
}

const HOLDING = ['pending', 'starting', 'started', 'stopping'];
const FINAL = ['stopped', 'expired', 'failed'];

/** Every session created since `since`, with the times of its transitions from the audit trail. */
export async function sessionFacts(db: ChaosDb, since: number): Promise<SessionFacts[]> {
  return db.query<SessionFacts>(
    `SELECT s.id, s.status, s.created_at, s.expires_at, s.end_reason, s.error_message,
       (SELECT min(e.created_at) FROM session_events e WHERE e.session_id = s.id AND e.type = 'started') AS started_ev,
       (SELECT min(e.created_at) FROM session_events e WHERE e.session_id = s.id AND e.type IN ('stopping', 'failed')) AS ended_ev,
       (SELECT min(e.created_at) FROM session_events e WHERE e.session_id = s.id AND e.type IN ('stopped', 'expired', 'failed')) AS final_ev,
       (SELECT count(*) FROM session_events e WHERE e.session_id = s.id AND e.type = 'stopping')::int AS stopping_events,
       (SELECT count(*) FROM session_events e WHERE e.session_id = s.id AND e.type IN ('stopped', 'expired', 'failed'))::int AS final_events,
       (SELECT count(*) FROM session_events e WHERE e.session_id = s.id AND e.type = 'started')::int AS started_events
     FROM sessions s WHERE s.created_at >= $1 ORDER BY s.created_at`,
    [new Date(since)],
  );
}

/**
 * Waits until nothing is left to settle: no session created since `since`
 * is pending, starting, started or stopping, and the engine holds no
 * container of the instance. Returns how long that took, or null if it did
 * not happen within `timeoutMs` (the figures then show what was left).
 */
export async function settle(db: ChaosDb, observer: ContainerObserver, since: number, timeoutMs: number): Promise<number | null> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    const [{ holding }] = await db.query<{ holding: number }>(`SELECT count(*)::int AS holding FROM sessions WHERE created_at >= $1 AND status = ANY($2)`, [
      new Date(since),
      HOLDING,
    ]);
    const containers = await observer.current().catch(() => [{}]);
    if (holding === 0 && containers.length === 0) return Date.now() - started;
    await sleep(500);
  }
  return null;
}

export interface CheckOptions {
  /** A session must be started (or ended) this long after it was created, or it counts as lost. */
  startBoundMs: number;
  /** A session still live this long after its deadline was kept past it. */
  deadlineToleranceMs: number;
  /** A failure this long after a Docker engine restart, with a reason naming the container's end, is the restart's doing. */
  explainFailureMs: number;
}

export interface Figures {
  sessions: { total: number; accepted: number; started: number; stopped: number; expired: number; failed: number; endedBeforeStart: number };
  lost: { count: number; sessions: { id: string; why: string }[] };
  /** Failed for a reason the chaos caused, other than containers killed by an engine restart. */
  failedByChaos: { count: number; sessions: { id: string; error: string | null }[] };
  failedByEngineRestart: { count: number };
  keptPastDeadline: {
    count: number;
    toleranceMs: number;
    deadlinesReached: number;
    maxLatenessMs: number | null;
    p50LatenessMs: number | null;
    p99LatenessMs: number | null;
    /** Lateness counted from the end of a Postgres or Redis outage the deadline fell into (nothing can be recorded before). */
    maxAdjustedLatenessMs: number | null;
    sessions: { id: string; latenessMs: number; adjustedMs: number }[];
    /** The latest few, whatever the tolerance, with the outage (if any) their deadline fell into. */
    latest: { id: string; latenessMs: number; adjustedMs: number; deadline: string; during: string | null }[];
  };
  /** Sessions still `started` after their container had died (an engine restart): how many, and for how long. */
  deadContainers: { count: number; p50Ms: number | null; maxMs: number | null };
  containerGoneAfterEndMs: { p50: number | null; p99: number | null; max: number | null };
  duplicates: { count: number; details: { sessionId: string; containerIds: string[]; seenBy: string }[] };
  recreated: { count: number; sessionIds: string[] };
  containersCreated: number;
  orphans: { count: number; details: { sessionId: string; name: string; status: string }[] };
  doubleTransitions: { count: number; sessionIds: string[] };
  api: { requests: number; serverErrors: number; unavailable: number; unavailableWithoutRetryAfter: number; noAnswer: number; examples: string[] };
  serverErrorsLogged: { count: number; examples: string[] };
  processes: { crashes: number; failedStarts: number; details: string[] };
  startLatencyMs: { p50: number | null; p99: number | null; max: number | null };
  settledAfterMs: number | null;
}

export interface CheckInput {
  db: ChaosDb;
  observer: ContainerObserver;
  client: ApiClient;
  cluster: BerthCluster;
  driver?: LoadDriver;
  /** Only sessions created, requests sent and processes' exits after this. */
  since: number;
  windows: Window[];
  settledAfterMs: number | null;
  options: CheckOptions;
}

/** Every figure of a run, computed from what Postgres, the engine, the clients and the processes' logs say. */
export async function computeFigures(input: CheckInput): Promise<Figures> {
  const { db, observer, client, cluster, driver, since, windows, options } = input;
  const now = Date.now();
  const facts = await sessionFacts(db, since);
  const byId = new Map(facts.map((fact) => [fact.id, fact]));
  const t = (date: Date | null) => (date ? date.getTime() : null);

  const lost: Figures['lost']['sessions'] = [];
  for (const session of driver?.sessions.values() ?? []) {
    if (!byId.has(session.id)) lost.push({ id: session.id, why: 'accepted (2xx) but no row in Postgres' });
  }
  const failedByChaos: Figures['failedByChaos']['sessions'] = [];
  let failedByEngine = 0;
  const lateness: { id: string; latenessMs: number; adjustedMs: number; deadline: string; during: string | null }[] = [];
  const startLatency: number[] = [];
  const doubles: string[] = [];
  for (const fact of facts) {
    const created = fact.created_at.getTime();
    const started = t(fact.started_ev);
    const ended = t(fact.ended_ev);
    const resolved = Math.min(started ?? Infinity, ended ?? Infinity);
    if (!FINAL.includes(fact.status)) lost.push({ id: fact.id, why: `still ${fact.status} when the run was checked` });
    else if (!Number.isFinite(resolved) || resolved - created > options.startBoundMs) {
      lost.push({ id: fact.id, why: `neither started nor ended within ${options.startBoundMs / 1000} s (status ${fact.status}, ${fact.error_message ?? ''})` });
    }
    if (started) startLatency.push(started - created);
    if (fact.status === 'failed') {
      const failedAt = t(fact.final_ev) ?? now;
      const byEngine =
        /container exited|container disappeared|Docker engine/i.test(fact.error_message ?? '') &&
        windows.some((w) => w.kind === 'docker' && failedAt >= w.start && failedAt <= w.end + options.explainFailureMs);
      if (byEngine) failedByEngine++;
      else failedByChaos.push({ id: fact.id, error: fact.error_message });
    }
    const deadline = fact.expires_at.getTime();
    if (deadline <= now && (ended === null || ended >= deadline)) {
      const end = ended ?? now;
      let reference = deadline;
      let during: string | null = null;
      for (const w of windows) {
        if ((w.kind === 'postgres' || w.kind === 'redis') && deadline >= w.start - 1000 && deadline <= w.end) {
          reference = Math.max(reference, w.end);
          during = w.action;
        }
      }
      const near = windows.find((w) => deadline >= w.start - 1000 && deadline <= w.end + 10_000);
      lateness.push({
        id: fact.id,
        latenessMs: end - deadline,
        adjustedMs: end - reference,
        deadline: new Date(deadline).toISOString(),
        during: during ?? (near ? `${((deadline - near.end) / 1000).toFixed(1)} s after the end of: ${near.action}` : null),
      });
    }
    if (fact.stopping_events > 1 || fact.final_events > 1 || fact.started_events > 1) doubles.push(fact.id);
  }

  const bySession = observer.bySession();
  const containerGone: number[] = [];
  const recreated: string[] = [];
  let containersCreated = 0;
  for (const [sessionId, containers] of bySession) {
    const fact = byId.get(sessionId);
    if (!fact) continue;
    containersCreated += containers.length;
    if (containers.length > 1) recreated.push(sessionId);
    const last = containers[containers.length - 1];
    const ended = t(fact.ended_ev);
    if (ended && last.destroyedAt) containerGone.push(Math.max(0, last.destroyedAt - ended));
  }
  const deadFor: number[] = [];
  for (const fact of facts) {
    const started = t(fact.started_ev);
    const ended = t(fact.ended_ev) ?? now;
    const died = (bySession.get(fact.id) ?? []).map((c) => c.diedAt).find((at) => at && started && at > started && at < ended - 1000);
    if (died) deadFor.push(ended - died);
  }
  const duplicates = observer.duplicates.filter((duplicate) => duplicate.at >= since || byId.has(duplicate.sessionId));

  const current = await observer.current();
  const statusOf = new Map(facts.map((fact) => [fact.id, fact.status]));
  const unknownIds = current.map((c) => c.Labels[LABELS.sessionId]).filter((id) => id && !statusOf.has(id));
  if (unknownIds.length) {
    for (const row of await db.query<{ id: string; status: string }>(`SELECT id, status FROM sessions WHERE id = ANY($1::uuid[])`, [unknownIds])) {
      statusOf.set(row.id, row.status);
    }
  }
  const orphans = current
    .map((c) => ({ sessionId: c.Labels[LABELS.sessionId], name: (c.Names[0] ?? '').replace(/^\//, ''), status: statusOf.get(c.Labels[LABELS.sessionId]) ?? 'no row' }))
    .filter((c) => !HOLDING.includes(c.status));

  const records = client.records.filter((r) => r.at >= since);
  const serverErrors = client.serverErrors(since);
  const withoutRetryAfter = client.unavailableWithoutRetryAfter(since);

  const logged: string[] = [];
  for (const api of cluster.apis) {
    for (const line of api.fullLog().split('\n')) {
      if (!line.includes('request failed')) continue;
      try {
        const entry = JSON.parse(line);
        const at = typeof entry.timestamp === 'number' ? entry.timestamp : Date.parse(entry.timestamp ?? '');
        if (Number.isFinite(at) && at < since) continue;
        logged.push(`${api.name}: ${JSON.stringify(entry.message ?? entry).slice(0, 300)}`);
      } catch {
        // not a JSON line
      }
    }
  }
  const exits = cluster.exits().filter((exit) => exit.at >= since);

  const latenessValues = lateness.map((l) => l.latenessMs);
  const kept = lateness.filter((l) => l.adjustedMs > options.deadlineToleranceMs).sort((a, b) => b.adjustedMs - a.adjustedMs);
  return {
    sessions: {
      total: facts.length,
      accepted: driver?.launches.accepted ?? facts.length,
      started: facts.filter((f) => f.started_ev).length,
      stopped: facts.filter((f) => f.status === 'stopped').length,
      expired: facts.filter((f) => f.status === 'expired').length,
      failed: facts.filter((f) => f.status === 'failed').length,
      endedBeforeStart: facts.filter((f) => !f.started_ev && FINAL.includes(f.status)).length,
    },
    lost: { count: lost.length, sessions: lost },
    failedByChaos: { count: failedByChaos.length, sessions: failedByChaos },
    failedByEngineRestart: { count: failedByEngine },
    keptPastDeadline: {
      count: kept.length,
      toleranceMs: options.deadlineToleranceMs,
      deadlinesReached: lateness.length,
      maxLatenessMs: latenessValues.length ? Math.max(...latenessValues) : null,
      p50LatenessMs: quantile(latenessValues, 0.5),
      p99LatenessMs: quantile(latenessValues, 0.99),
      maxAdjustedLatenessMs: lateness.length ? Math.max(...lateness.map((l) => l.adjustedMs)) : null,
      sessions: kept.map(({ id, latenessMs, adjustedMs }) => ({ id, latenessMs, adjustedMs })),
      latest: [...lateness].sort((a, b) => b.latenessMs - a.latenessMs).slice(0, 8),
    },
    deadContainers: { count: deadFor.length, p50Ms: quantile(deadFor, 0.5), maxMs: deadFor.length ? Math.max(...deadFor) : null },
    containerGoneAfterEndMs: { p50: quantile(containerGone, 0.5), p99: quantile(containerGone, 0.99), max: containerGone.length ? Math.max(...containerGone) : null },
    duplicates: { count: duplicates.length, details: duplicates.map((d) => ({ sessionId: d.sessionId, containerIds: d.containerIds, seenBy: d.seenBy })) },
    recreated: { count: recreated.length, sessionIds: recreated },
    containersCreated,
    orphans: { count: orphans.length, details: orphans },
    doubleTransitions: { count: doubles.length, sessionIds: doubles },
    api: {
      requests: records.length,
      serverErrors: serverErrors.length,
      unavailable: records.filter((r) => r.status === 503 && r.path !== '/health').length,
      unavailableWithoutRetryAfter: withoutRetryAfter.length,
      noAnswer: records.filter((r) => r.status === 0).length,
      examples: [...serverErrors, ...withoutRetryAfter].slice(0, 10).map((r) => `${r.method} ${r.path} -> ${r.status} ${r.body ?? ''}`),
    },
    serverErrorsLogged: { count: logged.length, examples: logged.slice(0, 10) },
    processes: {
      crashes: exits.filter((exit) => exit.afterReady).length,
      failedStarts: exits.filter((exit) => !exit.afterReady).length,
      details: exits.map((exit) => `${exit.process} exited (code ${exit.code}, signal ${exit.signal}) ${exit.afterReady ? 'while running' : 'while starting'}`),
    },
    startLatencyMs: { p50: quantile(startLatency, 0.5), p99: quantile(startLatency, 0.99), max: startLatency.length ? Math.max(...startLatency) : null },
    settledAfterMs: input.settledAfterMs,
  };
}

/** The figures that must be zero, by name. */
export function nonZero(figures: Figures): Record<string, number> {
  const counts: Record<string, number> = {
    lost: figures.lost.count,
    failedByChaos: figures.failedByChaos.count,
    keptPastDeadline: figures.keptPastDeadline.count,
    duplicates: figures.duplicates.count,
    orphans: figures.orphans.count,
    doubleTransitions: figures.doubleTransitions.count,
    serverErrors: figures.api.serverErrors,
    unavailableWithoutRetryAfter: figures.api.unavailableWithoutRetryAfter,
    serverErrorsLogged: figures.serverErrorsLogged.count,
    processCrashes: figures.processes.crashes,
  };
  return Object.fromEntries(Object.entries(counts).filter(([, value]) => value !== 0));
}
