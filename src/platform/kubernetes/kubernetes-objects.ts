import type { V1PersistentVolumeClaim, V1Pod, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import { BerthConfig } from '../../config/berth-config';
import { LABELS, PersistentVolume, SESSION_HOME, SessionContainerSpec } from '../container-platform';

/** The unprivileged user every session image runs as (same as the Docker adapter). */
export const SESSION_UID = 1000;

/** The name of the agent's port on the pod, which the readiness probe uses. */
export const AGENT_PORT_NAME = 'http';

/**
 * Share of the limit a session reserves (Burstable QoS). Sessions idle at a few
 * MiB and a sliver of CPU, so reserving the full limit would cut density to a
 * fraction of what the Docker adapter gets on the same hardware; the limit
 * stays a hard cap. Memory reserves more than CPU because it cannot be
 * reclaimed without killing someone.
 */
export const REQUEST_FRACTION = { cpu: 0.1, memory: 0.25 } as const;

/**
 * Labels on every session pod: Berth's ownership labels (the ones
 * listManaged selects on) plus the recommended app.kubernetes.io label so
 * generic tooling sees who owns the object.
 */
export function sessionLabels(spec: SessionContainerSpec, config: BerthConfig): Record<string, string> {
  return {
    [LABELS.managedBy]: 'berth',
    [LABELS.instance]: config.platform.instance,
    [LABELS.sessionId]: spec.sessionId,
    [LABELS.kind]: spec.kind,
    'app.kubernetes.io/managed-by': 'berth',
  };
}

/**
 * Labels on a persistent volume's claim. No session id: the claim outlives
 * the session that created it and is mounted by later ones.
 */
export function volumeLabels(volume: PersistentVolume, config: BerthConfig): Record<string, string> {
  return {
    [LABELS.managedBy]: 'berth',
    [LABELS.instance]: config.platform.instance,
    [LABELS.volumePurpose]: volume.purpose,
    'app.kubernetes.io/managed-by': 'berth',
  };
}

/** The variables that tell the session agent where to listen: every pod has its own address. */
export function sessionNetworkEnv(config: BerthConfig): Record<string, string> {
  return { BERTH_LISTEN_HOST: '0.0.0.0', BERTH_PORT: String(config.platform.docker.containerPort) };
}

/** Where the gateway reaches a pod's agent: the pod's own IP, once it has one. */
export function podUpstreamUrl(pod: V1Pod, config: BerthConfig): string | null {
  const ip = pod.status?.podIP;
  if (!ip) return null;
  const host = ip.includes(':') ? `[${ip}]` : ip;
  return `http://${host}:${config.platform.docker.containerPort}`;
}

/** The pod-level name of a persistent volume: unique in the pod, a DNS label whatever the claim is called. */
function podVolumeName(volume: PersistentVolume, index: number): string {
  return `${volume.purpose}-${index}`;
}

/**
 * Pure builder for a session pod, in the spirit of kubespawner's make_pod:
 * hardened by default to the same level as the Docker adapter (non-root, no
 * capabilities, no privilege escalation, RuntimeDefault seccomp, read-only
 * root with memory-backed writable paths, memory and CPU limits) and within
 * the Pod Security "restricted" profile, for every kind. Unit-tested without
 * a cluster.
 *
 * Resources, stop grace and volumes come from the spec (the kind's profile).
 * Persistent volumes are the claims named after them (the adapter creates
 * them first); one mounted at the home directory replaces its emptyDir.
 *
 * No per-session Service: the gateway and the API reach the agent at the
 * pod's IP (podUpstreamUrl), which the NetworkPolicy in k8s/ restricts to them.
 *
 * `env` is added after spec.env and wins. Session secrets end up as plain env
 * values in the pod spec, readable by anyone who may `get` pods in the
 * sessions namespace; they are per-session and short-lived, which is why
 * this is acceptable where a Secret object per session would double the API
 * calls on the start path.
 *
 * Not expressible per pod: the pids limit (kubelet's podPidsLimit) and the
 * log size bound (kubelet's containerLogMaxSize) are node settings.
 */
export function makeSessionPod(name: string, spec: SessionContainerSpec, config: BerthConfig, env: Record<string, string>): V1Pod {
  const { docker } = config.platform;
  const limits = spec.resources;
  const allEnv = { ...spec.env, ...env };
  const cpuLimit = Math.max(1, Math.round(limits.nanoCpus / 1e6));
  const memoryLimit = limits.memoryBytes;
  const tmpfsSize = quantityFromBytes(limits.tmpfsBytes);

  // Memory-backed like Docker's tmpfs; the usage counts against the
  // container's memory limit as well as sizeLimit.
  const volumes: V1Volume[] = [{ name: 'tmp', emptyDir: { medium: 'Memory', sizeLimit: tmpfsSize } }];
  const volumeMounts: V1VolumeMount[] = [{ name: 'tmp', mountPath: '/tmp' }];
  if (!spec.volumes.some((volume) => volume.mountPath === SESSION_HOME)) {
    volumes.push({ name: 'home', emptyDir: { medium: 'Memory', sizeLimit: tmpfsSize } });
    volumeMounts.push({ name: 'home', mountPath: SESSION_HOME });
  }
  // After the home directory, so a volume inside it (a browser profile) is
  // mounted over it, not under it.
  spec.volumes.forEach((volume, index) => {
    volumes.push({ name: podVolumeName(volume, index), persistentVolumeClaim: { claimName: volume.name } });
    volumeMounts.push({ name: podVolumeName(volume, index), mountPath: volume.mountPath });
  });
  // Nothing at /dev/shm: the container runtime's default (64 MiB) is enough,
  // because the browser image runs Chromium with --disable-dev-shm-usage
  // (shared memory goes to /tmp, the memory-backed emptyDir above).

  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: sessionLabels(spec, config) },
    spec: {
      restartPolicy: 'Never',
      automountServiceAccountToken: false,
      // Service links would inject one variable per Service in the namespace:
      // noise in the user's shell, and a listing of whatever else runs there.
      enableServiceLinks: false,
      // SIGTERM to SIGKILL: the agent's clean shutdown (a browser saves its
      // profile). `stop` deletes without overriding it.
      terminationGracePeriodSeconds: spec.stopGraceSeconds,
      // No shareProcessNamespace: the agent is PID 1 of its container and
      // reaps orphans itself (docs/SESSION-CONTAINERS.md), as under Docker.
      securityContext: {
        runAsNonRoot: true,
        runAsUser: SESSION_UID,
        runAsGroup: SESSION_UID,
        // Makes a fresh claim writable by the session user; checking only the
        // volume's root keeps a large profile from being re-chowned on every start.
        fsGroup: SESSION_UID,
        fsGroupChangePolicy: 'OnRootMismatch',
        seccompProfile: { type: 'RuntimeDefault' },
      },
      containers: [
        {
          name: 'session',
          image: spec.image,
          // Explicit, because the default for a :latest tag is Always, which
          // adds a registry round trip to every start and fails air-gapped.
          imagePullPolicy: 'IfNotPresent',
          env: Object.entries(allEnv).map(([key, value]) => ({ name: key, value })),
          ports: [{ name: AGENT_PORT_NAME, containerPort: docker.containerPort, protocol: 'TCP' }],
          // A TCP check: every HTTP path of the agent, health included,
          // requires the session's secret, which the kubelet does not have.
          readinessProbe: {
            tcpSocket: { port: AGENT_PORT_NAME },
            periodSeconds: 2,
            timeoutSeconds: 1,
            failureThreshold: 3,
          },
          securityContext: {
            allowPrivilegeEscalation: false,
            privileged: false,
            readOnlyRootFilesystem: true,
            runAsNonRoot: true,
            capabilities: { drop: ['ALL'] },
          },
          resources: {
            limits: { cpu: `${cpuLimit}m`, memory: quantityFromBytes(memoryLimit) },
            requests: {
              cpu: `${Math.max(1, Math.round(cpuLimit * REQUEST_FRACTION.cpu))}m`,
              memory: quantityFromBytes(Math.floor(memoryLimit * REQUEST_FRACTION.memory)),
            },
          },
          volumeMounts,
        },
      ],
      volumes,
    },
  };
}

/**
 * Pure builder for the PersistentVolumeClaim behind a persistent volume (a
 * browser profile, a terminal workspace): named after the volume, labelled as
 * Berth's, ReadWriteOnce (one session at a time mounts it), in the configured
 * StorageClass. Without K8S_STORAGE_CLASS the field is left out, which selects
 * the cluster's default class; an empty string would instead ask for a
 * volume with no class at all.
 */
export function makePersistentVolumeClaim(volume: PersistentVolume, config: BerthConfig): V1PersistentVolumeClaim {
  const storageClass = config.platform.kubernetes.storageClass;
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name: volume.name, labels: volumeLabels(volume, config) },
    spec: {
      accessModes: ['ReadWriteOnce'],
      resources: { requests: { storage: quantityFromBytes(volume.sizeBytes) } },
      ...(storageClass ? { storageClassName: storageClass } : {}),
    },
  };
}

/** Bytes as a Kubernetes quantity, in Mi when exact so `kubectl describe` stays readable. */
export function quantityFromBytes(bytes: number): string {
  const mebibyte = 1024 * 1024;
  return bytes % mebibyte === 0 ? `${bytes / mebibyte}Mi` : String(Math.floor(bytes));
}
