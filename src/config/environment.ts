import 'reflect-metadata';
import { plainToInstance, Transform } from 'class-transformer';
import {
  IsBoolean,
  IsIn,
  IsInt,
  IsNumber,
  IsOptional,
  IsString,
  IsUrl,
  Matches,
  MinLength,
  Max,
  Min,
  validateSync,
} from 'class-validator';

/**
 * Every environment variable Berth reads, with its default. This class is the
 * single source of truth: `.env.example` documents the same names, and
 * `parseEnvironment` validates them at boot so a typo fails fast, naming the variable.
 */
// Reads the raw string (obj[key]): implicit conversion would already have turned "false" into true.
const toBool = ({ obj, key }: { obj: Record<string, unknown>; key: string }) => {
  const raw = obj[key];
  if (typeof raw !== 'string') return raw;
  const normalized = raw.toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(normalized)) return true;
  if (['0', 'false', 'no', 'off'].includes(normalized)) return false;
  return raw; // not a boolean: @IsBoolean reports it
};

const URL_OPTIONS = { require_tld: false, require_protocol: true, protocols: ['http', 'https'] };

export class EnvironmentVariables {
  // --- HTTP API ---
  @IsString()
  HOST: string = '0.0.0.0';

  @IsInt()
  @Min(0)
  @Max(65535)
  PORT: number = 3000;

  /** Where users reach the API; used to build links shown to them. */
  @IsUrl(URL_OPTIONS)
  PUBLIC_URL: string = 'http://127.0.0.1:3000';

  /** Where session containers reach the callback API. Defaults to PUBLIC_URL + /api/v1/callbacks. */
  @IsOptional()
  @IsUrl(URL_OPTIONS)
  CALLBACK_URL?: string;

  /** Comma-separated list of origins allowed by CORS; empty disables CORS. */
  @IsString()
  CORS_ORIGINS: string = '';

  /** Run the BullMQ processors inside the API process (development, single-node installs). */
  @Transform(toBool)
  @IsBoolean()
  RUN_WORKER_IN_API: boolean = false;

  // --- Gateway (all session traffic) ---
  /**
   * Key every session's upstream secret is derived from (HMAC-SHA256), so the
   * gateway, API and worker agree on it without storing it. At least 32
   * characters; npm run quickstart generates one. Required: there is no safe default.
   */
  @MinLength(32, { message: 'BERTH_SECRET_KEY must be at least 32 characters (e.g. openssl rand -hex 32)' })
  @IsString()
  BERTH_SECRET_KEY: string;

  /**
   * Where each session's pages are served, one origin per session. `{id}` is
   * the session id. Defaults to `<scheme>://{id}.localhost:<port>` of
   * PUBLIC_URL when that is a loopback URL, else `<scheme>://{id}.<host>`
   * (needs a wildcard DNS record and certificate).
   */
  @IsOptional()
  @Matches(/^https?:\/\/([a-z0-9.-]*)\{id\}([a-z0-9.-]*)(:\d+)?\/?$/i, {
    message: 'SESSION_URL_TEMPLATE must look like http(s)://{id}.sessions.example.com[:port] ({id} in the host name)',
  })
  SESSION_URL_TEMPLATE?: string;

  /** Serve session traffic from the API process, on PORT. false: run the gateway role (dist/src/gateway.js) on its own. */
  @Transform(toBool)
  @IsBoolean()
  RUN_GATEWAY_IN_API: boolean = true;

  /** Where the standalone gateway listens (the port in PUBLIC_URL when it runs on its own). */
  @IsString()
  GATEWAY_HOST: string = '0.0.0.0';

  @IsInt()
  @Min(0)
  @Max(65535)
  GATEWAY_PORT: number = 3080;

  /** Where the standalone gateway forwards API traffic. Defaults to http://127.0.0.1:PORT. */
  @IsOptional()
  @IsUrl(URL_OPTIONS)
  GATEWAY_API_UPSTREAM?: string;

  /** Gateway traffic marks a session active at most this often (one batched write per interval). */
  @IsNumber()
  @Min(0.05)
  @Max(300)
  ACTIVITY_FLUSH_SECONDS: number = 5;

  // --- Storage ---
  @Matches(/^postgres(ql)?:\/\/.+/, { message: 'DATABASE_URL must be a postgres:// URL' })
  DATABASE_URL: string = 'postgres://berth:berth@127.0.0.1:5432/berth';

  /** At least 2: migrations hold the advisory lock on one connection and run on another. */
  @IsInt()
  @Min(2)
  @Max(200)
  DATABASE_POOL_SIZE: number = 10;

  @Transform(toBool)
  @IsBoolean()
  RUN_MIGRATIONS_ON_START: boolean = true;

  @Matches(/^rediss?:\/\/.+/, { message: 'REDIS_URL must be a redis:// or rediss:// URL' })
  REDIS_URL: string = 'redis://127.0.0.1:6379';

  /** Key prefix for every BullMQ queue; lets several installs share one Redis. */
  @Matches(/^[a-zA-Z0-9_-]+$/, { message: 'QUEUE_PREFIX may contain letters, digits, - and _' })
  QUEUE_PREFIX: string = 'berth';

  // --- Tenants, keys and limits ---
  /**
   * The admin key: manages tenants and their keys, and is also the key of
   * the default tenant (a single-user install needs no other). At least 32
   * characters; npm run quickstart generates one. Empty: only keys created
   * through the API work (there is then no way to create the first one).
   */
  @IsOptional()
  @MinLength(32, { message: 'BERTH_ADMIN_KEY must be at least 32 characters' })
  BERTH_ADMIN_KEY?: string;

  /** Live sessions a tenant may have at once (429 beyond); 0: no limit. A tenant's own limit wins. */
  @IsInt()
  @Min(0)
  @Max(1_000_000)
  MAX_SESSIONS_PER_TENANT: number = 0;

  /** Live sessions one owner may have at once in a tenant; 0: no limit. */
  @IsInt()
  @Min(0)
  @Max(1_000_000)
  MAX_SESSIONS_PER_OWNER: number = 0;

  /**
   * Sessions running on this platform at once (the warm pool included).
   * Beyond it, new sessions wait in `pending` in arrival order and start as
   * others end. 0: no limit.
   */
  @IsInt()
  @Min(0)
  @Max(1_000_000)
  MAX_RUNNING_SESSIONS: number = 0;

  // --- Warm pool (src/pool/): containers started ahead of demand; 0 disables a variant ---
  /** Terminals kept started and unbound: a launch without a workspace is `started` in its POST. */
  @IsInt()
  @Min(0)
  @Max(10_000)
  POOL_TERMINALS: number = 0;

  /** Headless browsers kept ready (any viewport: the window is resized at claim). */
  @IsInt()
  @Min(0)
  @Max(10_000)
  POOL_BROWSERS_HEADLESS: number = 0;

  /** Headful browsers kept ready, at the default 1280x720 screen (other sizes start cold). */
  @IsInt()
  @Min(0)
  @Max(10_000)
  POOL_BROWSERS_HEADFUL: number = 0;

  /** A pool container unclaimed this long is replaced by a fresh one (stale caches, image updates, leaks). */
  @IsNumber()
  @Min(0.05)
  @Max(7 * 24 * 60)
  POOL_MAX_AGE_MINUTES: number = 60;

  /** Requests per minute one API key may make (429 with Retry-After beyond). */
  @IsInt()
  @Min(1)
  @Max(1_000_000)
  RATE_LIMIT_PER_MINUTE: number = 1200;

  // --- Session lifetime ---
  /** A session with no traffic and no heartbeat this long is stopped (per-session override within the bounds below). */
  @IsNumber()
  @Min(0.05)
  @Max(7 * 24 * 60)
  IDLE_TIMEOUT_MINUTES: number = 30;

  @IsInt()
  @Min(1)
  @Max(7 * 24 * 3600)
  IDLE_TIMEOUT_MIN_SECONDS: number = 60;

  @IsInt()
  @Min(1)
  @Max(30 * 24 * 3600)
  IDLE_TIMEOUT_MAX_SECONDS: number = 24 * 3600;

  /** `extend` may move a session's hard deadline at most this far past its creation. */
  @IsNumber()
  @Min(0.001)
  @Max(24 * 365)
  MAX_SESSION_LIFETIME_HOURS: number = 7 * 24;

  /** `expiring_soon` events (SSE, webhooks) go out this long before a TTL or idle deadline. */
  @IsInt()
  @Min(1)
  @Max(24 * 3600)
  EXPIRING_SOON_SECONDS: number = 300;

  /**
   * Webhook URLs that may resolve to loopback, private, link-local, CGNAT or
   * metadata addresses anyway: comma-separated host names and CIDRs.
   */
  @IsString()
  WEBHOOK_URL_ALLOW: string = '';

  // --- Sessions ---
  @IsIn(['docker', 'kubernetes'])
  CONTAINER_PLATFORM: 'docker' | 'kubernetes' = 'docker';

  @IsString()
  TERMINAL_IMAGE: string = 'berth/terminal:latest';

  /** Default and maximum lifetime of a terminal session. */
  @IsNumber()
  @Min(0.001)
  @Max(24 * 365)
  TERMINAL_TTL_HOURS: number = 24;

  @IsNumber()
  @Min(0.001)
  @Max(24 * 60)
  CLEANUP_INTERVAL_MINUTES: number = 5;

  /** A session not `started` this long after creation is failed and its container removed. */
  @IsInt()
  @Min(1)
  @Max(3600)
  START_TIMEOUT_SECONDS: number = 60;

  @IsInt()
  @Min(1)
  @Max(20)
  PROVISION_ATTEMPTS: number = 5;

  @IsInt()
  @Min(10)
  @Max(600_000)
  PROVISION_BACKOFF_MS: number = 1000;

  /**
   * Provisioning jobs one worker runs at once. A job is mostly waiting (on
   * the engine, then on the container's ready callback), so this is set well
   * above the core count: a burst of launches starts in parallel.
   */
  @IsInt()
  @Min(1)
  @Max(1000)
  WORKER_CONCURRENCY: number = 128;

  /** How long SIGTERM waits for in-flight requests and jobs before exiting anyway. */
  @IsInt()
  @Min(1)
  @Max(600)
  SHUTDOWN_TIMEOUT_SECONDS: number = 25;

  /** Ownership label value: two installs sharing one engine never touch each other's containers. */
  @Matches(/^[a-z0-9][a-z0-9-]{0,30}$/, { message: 'BERTH_INSTANCE must be 1-31 lowercase letters, digits or -' })
  BERTH_INSTANCE: string = 'berth';

  // --- Terminal sessions (limits; hardening is always on) ---
  @IsInt()
  @Min(16)
  @Max(1024 * 1024)
  TERMINAL_MEMORY_MB: number = 256;

  @IsNumber()
  @Min(0.01)
  @Max(256)
  TERMINAL_CPUS: number = 1;

  @IsInt()
  @Min(16)
  @Max(1_000_000)
  TERMINAL_PIDS_LIMIT: number = 256;

  /** Size of each writable tmpfs (/tmp and the home directory). */
  @IsInt()
  @Min(1)
  @Max(64 * 1024)
  TERMINAL_TMPFS_MB: number = 64;

  // --- Browser sessions ---
  @IsString()
  BROWSER_IMAGE: string = 'berth/browser:latest';

  /** Default and maximum lifetime of a browser session. */
  @IsNumber()
  @Min(0.001)
  @Max(24 * 365)
  BROWSER_TTL_HOURS: number = 8;

  /** Chromium needs room: 24 tabs ran in 1 GiB on this project's machines. */
  @IsInt()
  @Min(128)
  @Max(1024 * 1024)
  BROWSER_MEMORY_MB: number = 1024;

  @IsNumber()
  @Min(0.01)
  @Max(256)
  BROWSER_CPUS: number = 1;

  /** 256 allowed only ~12 tabs (thread creation fails); 1024 ran 24. */
  @IsInt()
  @Min(64)
  @Max(1_000_000)
  BROWSER_PIDS_LIMIT: number = 1024;

  /** Size of each writable tmpfs (/tmp and the home, which holds a throwaway profile, downloads and uploads). */
  @IsInt()
  @Min(16)
  @Max(64 * 1024)
  BROWSER_TMPFS_MB: number = 512;

  /** Largest file a client may upload into a browser session. */
  @IsInt()
  @Min(1)
  @Max(64 * 1024)
  BROWSER_MAX_UPLOAD_MB: number = 100;

  /** Largest file a browser session keeps from a download: a bigger one is cancelled and never listed. */
  @IsInt()
  @Min(1)
  @Max(64 * 1024)
  BROWSER_MAX_DOWNLOAD_MB: number = 500;

  /**
   * start_url hosts that may resolve to loopback, private, link-local, CGNAT
   * or metadata addresses anyway: comma-separated host names, `*.domain`
   * (every subdomain of domain) and CIDRs.
   * Empty: such start URLs are refused with 400.
   */
  @IsString()
  START_URL_ALLOW: string = '';

  /** Size of a persistent volume (browser profile, terminal workspace) where the platform sizes volumes (Kubernetes PersistentVolumeClaims). */
  @IsInt()
  @Min(16)
  @Max(1024 * 1024)
  PERSISTENT_VOLUME_MB: number = 1024;

  // --- Docker platform ---
  /**
   * Host networking: the ports Berth hands out to session containers, one per
   * live session. Keep the range outside the kernel's ephemeral range
   * (net.ipv4.ip_local_port_range, 32768-60999 by default) and free of other services.
   */
  @Matches(/^\d{1,5}-\d{1,5}$/, { message: 'SESSION_PORT_RANGE must look like 20000-29999' })
  SESSION_PORT_RANGE: string = '20000-29999';

  @IsString()
  DOCKER_SOCKET_PATH: string = '/var/run/docker.sock';

  /** Engine API version; 1.41 is what Debian bookworm's docker.io speaks. */
  @Matches(/^v\d+\.\d+$/, { message: 'DOCKER_API_VERSION must look like v1.41' })
  DOCKER_API_VERSION: string = 'v1.41';

  /**
   * How many container creations one worker sends the engine at once (0: no
   * limit). The engine serialises much of a create internally; a burst sent
   * all at once makes every create wait on the others. 4: bench/burst.ts,
   * 50 launches at once, docs/BENCHMARKS.md.
   */
  @IsInt()
  @Min(0)
  @Max(1000)
  DOCKER_CREATE_CONCURRENCY: number = 4;

  /**
   * `host`: containers share the host network, each agent listens on a port
   * Berth allocates from SESSION_PORT_RANGE on DOCKER_SESSION_HOST (single
   * trusted host, tests). Anything else: the name of an existing Docker
   * network, where agents listen on SESSION_CONTAINER_PORT and the gateway
   * reaches them by container name, or, with DOCKER_PUBLISH_HOST, at a port
   * Berth allocates and publishes on the host (networks with inter-container
   * traffic off: docker-compose.yml).
   */
  @Matches(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, { message: 'DOCKER_NETWORK must be "host" or a Docker network name' })
  DOCKER_NETWORK: string = 'host';

  /** Host networking: the address the gateway reaches session containers at (loopback when it runs on the same host). */
  @IsString()
  DOCKER_SESSION_HOST: string = '127.0.0.1';

  /**
   * A named network: publish each agent's port on this host address (at a
   * port from SESSION_PORT_RANGE) and have the gateway connect there, instead
   * of by container name. Needed when the network has inter-container traffic
   * off, so sessions cannot reach each other (or the gateway reach them).
   * Empty: not published.
   */
  @IsString()
  DOCKER_PUBLISH_HOST: string = '';

  @IsInt()
  @Min(1)
  @Max(65535)
  SESSION_CONTAINER_PORT: number = 7681;

  // --- Kubernetes platform ---
  @Matches(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, { message: 'K8S_NAMESPACE must be a DNS label' })
  K8S_NAMESPACE: string = 'berth-sessions';

  @Transform(toBool)
  @IsBoolean()
  K8S_IN_CLUSTER: boolean = false;

  /** StorageClass of the PersistentVolumeClaims behind persistent volumes; empty: the cluster's default class. */
  @Matches(/^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?)?$/, { message: 'K8S_STORAGE_CLASS must be empty or a StorageClass name' })
  K8S_STORAGE_CLASS: string = '';

  // --- Logging ---
  @IsIn(['error', 'warn', 'log', 'debug', 'verbose'])
  LOG_LEVEL: 'error' | 'warn' | 'log' | 'debug' | 'verbose' = 'log';

  @IsIn(['json', 'pretty'])
  LOG_FORMAT: 'json' | 'pretty' = 'json';
}

export class ConfigValidationError extends Error {}

/** Variables with no default: read when set. */
export const OPTIONAL_VARIABLES = ['CALLBACK_URL', 'SESSION_URL_TEMPLATE', 'GATEWAY_API_UPSTREAM', 'BERTH_SECRET_KEY', 'BERTH_ADMIN_KEY'] as const;

/** Reads and validates the environment; throws one error listing every bad variable. */
export function parseEnvironment(env: NodeJS.ProcessEnv): EnvironmentVariables {
  const defaults = new EnvironmentVariables();
  const raw: Record<string, unknown> = {};
  for (const key of Object.keys(defaults) as (keyof EnvironmentVariables)[]) {
    const value = env[key];
    if (value !== undefined && value !== '') raw[key] = value;
  }
  // Variables without a default value are not own keys of `defaults`.
  for (const key of OPTIONAL_VARIABLES) if (env[key]) raw[key] = env[key];

  const parsed = plainToInstance(EnvironmentVariables, raw, { enableImplicitConversion: true });
  const errors = validateSync(parsed, { whitelist: true });
  if (errors.length > 0) {
    const lines = errors.map((error) => {
      const received = JSON.stringify(raw[error.property]);
      const reasons = Object.values(error.constraints ?? {}).join('; ');
      return `  ${error.property}=${received}: ${reasons}`;
    });
    throw new ConfigValidationError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  return parsed;
}
