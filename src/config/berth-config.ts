import { EnvironmentVariables, parseEnvironment } from './environment';

/**
 * The typed, nested configuration the rest of the code injects. Built once
 * from the validated environment; nothing else reads process.env.
 */
export class BerthConfig {
  readonly http: { host: string; port: number; publicUrl: string; corsOrigins: string[] };
  readonly callbackUrl: string;
  readonly runWorkerInApi: boolean;
  readonly database: { url: string; poolSize: number; runMigrationsOnStart: boolean };
  readonly redis: { url: string; queuePrefix: string };
  readonly sessions: {
    terminalImage: string;
    terminalTtlSeconds: number;
    startTimeoutSeconds: number;
    cleanupIntervalMs: number;
  };
  readonly provisioning: { attempts: number; backoffMs: number; concurrency: number };
  readonly shutdownTimeoutMs: number;
  readonly platform: {
    kind: 'docker' | 'kubernetes';
    instance: string;
    limits: { memoryBytes: number; nanoCpus: number; pidsLimit: number; tmpfsBytes: number };
    docker: {
      socketPath: string;
      apiVersion: string;
      network: string;
      advertiseHost: string;
      containerPort: number;
    };
    kubernetes: { namespace: string; inCluster: boolean };
  };
  readonly log: { level: EnvironmentVariables['LOG_LEVEL']; format: 'json' | 'pretty' };

  constructor(env: EnvironmentVariables) {
    const publicUrl = env.PUBLIC_URL.replace(/\/+$/, '');
    this.http = {
      host: env.HOST,
      port: env.PORT,
      publicUrl,
      corsOrigins: env.CORS_ORIGINS.split(',')
        .map((origin) => origin.trim())
        .filter(Boolean),
    };
    this.callbackUrl = (env.CALLBACK_URL ?? `${publicUrl}/api/v1/callbacks`).replace(/\/+$/, '');
    this.runWorkerInApi = env.RUN_WORKER_IN_API;
    this.database = {
      url: env.DATABASE_URL,
      poolSize: env.DATABASE_POOL_SIZE,
      runMigrationsOnStart: env.RUN_MIGRATIONS_ON_START,
    };
    this.redis = { url: env.REDIS_URL, queuePrefix: env.QUEUE_PREFIX };
    this.sessions = {
      terminalImage: env.TERMINAL_IMAGE,
      terminalTtlSeconds: Math.round(env.TERMINAL_TTL_HOURS * 3600),
      startTimeoutSeconds: env.START_TIMEOUT_SECONDS,
      cleanupIntervalMs: Math.round(env.CLEANUP_INTERVAL_MINUTES * 60_000),
    };
    this.provisioning = {
      attempts: env.PROVISION_ATTEMPTS,
      backoffMs: env.PROVISION_BACKOFF_MS,
      concurrency: env.WORKER_CONCURRENCY,
    };
    this.shutdownTimeoutMs = env.SHUTDOWN_TIMEOUT_SECONDS * 1000;
    this.platform = {
      kind: env.CONTAINER_PLATFORM,
      instance: env.BERTH_INSTANCE,
      limits: {
        memoryBytes: env.SESSION_MEMORY_MB * 1024 * 1024,
        nanoCpus: Math.round(env.SESSION_CPUS * 1e9),
        pidsLimit: env.SESSION_PIDS_LIMIT,
        tmpfsBytes: env.SESSION_TMPFS_MB * 1024 * 1024,
      },
      docker: {
        socketPath: env.DOCKER_SOCKET_PATH,
        apiVersion: env.DOCKER_API_VERSION,
        network: env.DOCKER_NETWORK,
        advertiseHost: env.DOCKER_ADVERTISE_HOST,
        containerPort: env.SESSION_CONTAINER_PORT,
      },
      kubernetes: { namespace: env.K8S_NAMESPACE, inCluster: env.K8S_IN_CLUSTER },
    };
    this.log = { level: env.LOG_LEVEL, format: env.LOG_FORMAT };
  }

  static fromEnvironment(env: NodeJS.ProcessEnv = process.env): BerthConfig {
    return new BerthConfig(parseEnvironment(env));
  }
}
