import { createHash } from 'node:crypto';
import { ConfigValidationError, EnvironmentVariables, parseEnvironment } from './environment';

/** Limits a session container runs within. Hardening is not configurable: it is always on. */
export interface ContainerResources {
  memoryBytes: number;
  nanoCpus: number;
  pidsLimit: number;
  /** Size of each writable tmpfs (/tmp, and the home unless a volume is mounted there). */
  tmpfsBytes: number;
}

export interface KindSettings {
  image: string;
  /** Default and maximum lifetime. */
  ttlSeconds: number;
  resources: ContainerResources;
}

/**
 * The typed, nested configuration the rest of the code injects. Built once
 * from the validated environment; nothing else reads process.env.
 */
export class BerthConfig {
  readonly http: { host: string; port: number; publicUrl: string; corsOrigins: string[] };
  readonly callbackUrl: string;
  readonly runWorkerInApi: boolean;
  /** Key the per-session upstream secrets are derived from (see common/tokens.ts). */
  readonly secretKey: string;
  readonly gateway: {
    /** Serve session traffic from the API process (on PORT) rather than a separate gateway role. */
    embedded: boolean;
    host: string;
    port: number;
    /** Where a standalone gateway forwards everything that is not session traffic. */
    apiUpstream: string;
    /** Per-session origin template, `{id}` in the host name. */
    sessionUrlTemplate: string;
    activityFlushMs: number;
  };
  readonly database: { url: string; poolSize: number; runMigrationsOnStart: boolean };
  readonly redis: { url: string; queuePrefix: string };
  readonly sessions: {
    startTimeoutSeconds: number;
    cleanupIntervalMs: number;
    idleTimeout: { defaultSeconds: number; minSeconds: number; maxSeconds: number };
    maxLifetimeSeconds: number;
    expiringSoonSeconds: number;
    /** Running at once on this platform; 0: unlimited. */
    maxRunning: number;
  };
  readonly tenancy: {
    /** SHA-256 of BERTH_ADMIN_KEY, or null when there is none. */
    adminKeyHash: string | null;
    maxSessionsPerTenant: number;
    maxSessionsPerOwner: number;
    rateLimitPerMinute: number;
    webhookUrlAllow: string[];
  };
  /** Per kind: what it runs and within which limits (see src/kinds/). */
  readonly terminal: KindSettings;
  readonly browser: KindSettings & { maxUploadBytes: number; maxDownloadBytes: number; startUrlAllow: string[] };
  readonly provisioning: { attempts: number; backoffMs: number; concurrency: number };
  /** Containers kept ready per pool variant (terminal, browser-headless, browser-headful), and their maximum age. */
  readonly pool: { sizes: Readonly<Record<string, number>>; maxAgeSeconds: number };
  readonly shutdownTimeoutMs: number;
  readonly platform: {
    kind: 'docker' | 'kubernetes';
    instance: string;
    /** Requested size of a persistent volume, where the platform sizes them. */
    volumeBytes: number;
    docker: {
      socketPath: string;
      apiVersion: string;
      network: string;
      sessionHost: string;
      /** Named network with published ports: where agents' ports are published (empty: not published). */
      publishHost: string;
      portRange: { min: number; max: number };
      containerPort: number;
      /** Container creations one process sends the engine at once; 0 means no limit. */
      createConcurrency: number;
    };
    /** storageClass '' selects the cluster's default StorageClass. */
    kubernetes: { namespace: string; inCluster: boolean; storageClass: string };
  };
  readonly log: { level: EnvironmentVariables['LOG_LEVEL']; format: 'json' | 'pretty' };

  constructor(env: EnvironmentVariables) {
    const publicUrl = env.PUBLIC_URL.replace(/\/+$/, '');
    this.http = {
      host: env.HOST,
      port: env.PORT,
      publicUrl,
      corsOrigins: splitList(env.CORS_ORIGINS),
    };
    this.callbackUrl = (env.CALLBACK_URL ?? `${publicUrl}/api/v1/callbacks`).replace(/\/+$/, '');
    this.runWorkerInApi = env.RUN_WORKER_IN_API;
    this.secretKey = env.BERTH_SECRET_KEY;
    this.gateway = {
      embedded: env.RUN_GATEWAY_IN_API,
      host: env.GATEWAY_HOST,
      port: env.GATEWAY_PORT,
      apiUpstream: (env.GATEWAY_API_UPSTREAM ?? `http://127.0.0.1:${env.PORT}`).replace(/\/+$/, ''),
      sessionUrlTemplate: (env.SESSION_URL_TEMPLATE ?? defaultSessionUrlTemplate(publicUrl)).replace(/\/+$/, ''),
      activityFlushMs: Math.round(env.ACTIVITY_FLUSH_SECONDS * 1000),
    };
    this.database = {
      url: env.DATABASE_URL,
      poolSize: env.DATABASE_POOL_SIZE,
      runMigrationsOnStart: env.RUN_MIGRATIONS_ON_START,
    };
    this.redis = { url: env.REDIS_URL, queuePrefix: env.QUEUE_PREFIX };
    this.sessions = {
      startTimeoutSeconds: env.START_TIMEOUT_SECONDS,
      cleanupIntervalMs: Math.round(env.CLEANUP_INTERVAL_MINUTES * 60_000),
      idleTimeout: {
        defaultSeconds: Math.round(env.IDLE_TIMEOUT_MINUTES * 60),
        minSeconds: env.IDLE_TIMEOUT_MIN_SECONDS,
        maxSeconds: env.IDLE_TIMEOUT_MAX_SECONDS,
      },
      maxLifetimeSeconds: Math.round(env.MAX_SESSION_LIFETIME_HOURS * 3600),
      expiringSoonSeconds: env.EXPIRING_SOON_SECONDS,
      maxRunning: env.MAX_RUNNING_SESSIONS,
    };
    this.tenancy = {
      adminKeyHash: env.BERTH_ADMIN_KEY ? createHash('sha256').update(env.BERTH_ADMIN_KEY, 'utf8').digest('hex') : null,
      maxSessionsPerTenant: env.MAX_SESSIONS_PER_TENANT,
      maxSessionsPerOwner: env.MAX_SESSIONS_PER_OWNER,
      rateLimitPerMinute: env.RATE_LIMIT_PER_MINUTE,
      webhookUrlAllow: splitList(env.WEBHOOK_URL_ALLOW),
    };
    const MiB = 1024 * 1024;
    this.terminal = {
      image: env.TERMINAL_IMAGE,
      ttlSeconds: Math.round(env.TERMINAL_TTL_HOURS * 3600),
      resources: {
        memoryBytes: env.TERMINAL_MEMORY_MB * MiB,
        nanoCpus: Math.round(env.TERMINAL_CPUS * 1e9),
        pidsLimit: env.TERMINAL_PIDS_LIMIT,
        tmpfsBytes: env.TERMINAL_TMPFS_MB * MiB,
      },
    };
    this.browser = {
      image: env.BROWSER_IMAGE,
      ttlSeconds: Math.round(env.BROWSER_TTL_HOURS * 3600),
      resources: {
        memoryBytes: env.BROWSER_MEMORY_MB * MiB,
        nanoCpus: Math.round(env.BROWSER_CPUS * 1e9),
        pidsLimit: env.BROWSER_PIDS_LIMIT,
        tmpfsBytes: env.BROWSER_TMPFS_MB * MiB,
      },
      maxUploadBytes: env.BROWSER_MAX_UPLOAD_MB * MiB,
      maxDownloadBytes: env.BROWSER_MAX_DOWNLOAD_MB * MiB,
      startUrlAllow: splitList(env.START_URL_ALLOW),
    };
    this.provisioning = {
      attempts: env.PROVISION_ATTEMPTS,
      backoffMs: env.PROVISION_BACKOFF_MS,
      concurrency: env.WORKER_CONCURRENCY,
    };
    this.pool = {
      sizes: { terminal: env.POOL_TERMINALS, 'browser-headless': env.POOL_BROWSERS_HEADLESS, 'browser-headful': env.POOL_BROWSERS_HEADFUL },
      maxAgeSeconds: Math.round(env.POOL_MAX_AGE_MINUTES * 60),
    };
    this.shutdownTimeoutMs = env.SHUTDOWN_TIMEOUT_SECONDS * 1000;
    this.platform = {
      kind: env.CONTAINER_PLATFORM,
      instance: env.BERTH_INSTANCE,
      volumeBytes: env.PERSISTENT_VOLUME_MB * 1024 * 1024,
      docker: {
        socketPath: env.DOCKER_SOCKET_PATH,
        apiVersion: env.DOCKER_API_VERSION,
        network: env.DOCKER_NETWORK,
        sessionHost: env.DOCKER_SESSION_HOST,
        publishHost: env.DOCKER_PUBLISH_HOST,
        portRange: parsePortRange(env.SESSION_PORT_RANGE),
        containerPort: env.SESSION_CONTAINER_PORT,
        createConcurrency: env.DOCKER_CREATE_CONCURRENCY,
      },
      kubernetes: { namespace: env.K8S_NAMESPACE, inCluster: env.K8S_IN_CLUSTER, storageClass: env.K8S_STORAGE_CLASS },
    };
    this.log = { level: env.LOG_LEVEL, format: env.LOG_FORMAT };
  }

  static fromEnvironment(env: NodeJS.ProcessEnv = process.env): BerthConfig {
    return new BerthConfig(parseEnvironment(env));
  }
}

/**
 * One origin per session under PUBLIC_URL's host: `{id}.localhost` for a
 * loopback URL (browsers and curl resolve *.localhost to loopback, so it
 * works with no DNS), else `{id}.<host>` (a wildcard record and certificate).
 */
function defaultSessionUrlTemplate(publicUrl: string): string {
  const url = new URL(publicUrl);
  const loopback = url.hostname === 'localhost' || url.hostname === '[::1]' || /^127\./.test(url.hostname);
  const host = loopback ? 'localhost' : url.hostname;
  return `${url.protocol}//{id}.${host}${url.port ? `:${url.port}` : ''}`;
}

function splitList(list: string): string[] {
  return list
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
}

function parsePortRange(range: string): { min: number; max: number } {
  const [min, max] = range.split('-').map(Number);
  if (!(min >= 1024 && max <= 65535 && min <= max)) {
    throw new ConfigValidationError(`Invalid configuration:\n  SESSION_PORT_RANGE="${range}": must be within 1024-65535, low-high`);
  }
  return { min, max };
}
