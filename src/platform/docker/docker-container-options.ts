import type { ContainerCreateOptions } from 'dockerode';
import { BerthConfig } from '../../config/berth-config';
import { LABELS, SESSION_HOME, SessionContainerSpec } from '../container-platform';

/** The unprivileged user every session image runs as. */
export const SESSION_UID = 1000;

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host.startsWith('127.') || host === '::1';
}

/**
 * Pure builder for a session container's create options: hardened by default
 * (non-root, no capabilities, no privilege escalation, read-only root with
 * tmpfs for the writable paths, memory/CPU/pids limits), persistent volumes
 * mounted where the session's kind wants them. Unit-tested without an engine.
 */
/** The agent's port published on the host (named networks with inter-container traffic off). */
export interface PublishedPort {
  host: string;
  port: number;
}

export function buildContainerOptions(
  name: string,
  spec: SessionContainerSpec,
  config: BerthConfig,
  networkEnv: Record<string, string>,
  publish?: PublishedPort,
): ContainerCreateOptions {
  const { docker, instance } = config.platform;
  const limits = spec.resources;
  const env = { ...spec.env, ...networkEnv };
  const tmpfs = `rw,nosuid,nodev,size=${limits.tmpfsBytes}`;
  const writable: Record<string, string> = { '/tmp': tmpfs };
  if (!spec.volumes.some((volume) => volume.mountPath === SESSION_HOME)) {
    writable[SESSION_HOME] = `${tmpfs},uid=${SESSION_UID},gid=${SESSION_UID}`;
  }
  return {
    name,
    Image: spec.image,
    User: `${SESSION_UID}:${SESSION_UID}`,
    Env: Object.entries(env).map(([key, value]) => `${key}=${value}`),
    Labels: {
      [LABELS.managedBy]: 'berth',
      [LABELS.instance]: instance,
      [LABELS.sessionId]: spec.sessionId,
      [LABELS.kind]: spec.kind,
    },
    StopSignal: 'SIGTERM',
    // `docker stop` (and the adapter's stop) waits this long for the agent's clean shutdown.
    StopTimeout: spec.stopGraceSeconds,
    ...(publish ? { ExposedPorts: { [`${docker.containerPort}/tcp`]: {} } } : {}),
    HostConfig: {
      NetworkMode: docker.network,
      ...(publish ? { PortBindings: { [`${docker.containerPort}/tcp`]: [{ HostIp: publish.host, HostPort: String(publish.port) }] } } : {}),
      // No Init (tini): an init process would hold the container's environment,
      // callback secret included, readable by the user's shell. The session
      // server runs as PID 1, reaps orphans itself and is not dumpable.
      Init: false,
      ReadonlyRootfs: true,
      Tmpfs: writable,
      // Named volumes, created by the adapter (labelled) before the container.
      Mounts: spec.volumes.map((volume) => ({ Type: 'volume' as const, Source: volume.name, Target: volume.mountPath, ReadOnly: false })),
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges:true'],
      Memory: limits.memoryBytes,
      // Equal to Memory: no swap, so the limit is a real limit.
      MemorySwap: limits.memoryBytes,
      NanoCpus: limits.nanoCpus,
      PidsLimit: limits.pidsLimit,
      RestartPolicy: { Name: 'no' },
      // Bounded logs: a chatty session cannot fill the host's disk.
      LogConfig: { Type: 'json-file', Config: { 'max-size': '1m', 'max-file': '1' } },
    },
  };
}
