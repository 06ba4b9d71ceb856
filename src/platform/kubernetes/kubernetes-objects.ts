import { createHash } from 'node:crypto';
import type { V1OwnerReference, V1Pod, V1Service } from '@kubernetes/client-node';
import { BerthConfig } from '../../config/berth-config';
import { LABELS, SessionContainerSpec } from '../container-platform';

/** The unprivileged user every session image runs as (same as the Docker adapter). */
export const SESSION_UID = 1000;

/** Seconds between SIGTERM and SIGKILL; the session servers exit in well under one. */
export const TERMINATION_GRACE_SECONDS = 5;

/**
 * Share of the limit a session reserves (Burstable QoS). Sessions idle at a few
 * MiB and a sliver of CPU, so reserving the full limit would cut density to a
 * fraction of what the Docker adapter gets on the same hardware; the limit
 * stays a hard cap. Memory reserves more than CPU because it cannot be
 * reclaimed without killing someone.
 */
export const REQUEST_FRACTION = { cpu: 0.1, memory: 0.25 } as const;

const DNS_1035_LABEL = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;

/**
 * Labels on everything the adapter creates: Berth's ownership labels (the ones
 * listManaged and the Service selector use) plus the recommended
 * app.kubernetes.io label so generic tooling sees who owns the object.
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
 * Service names must be DNS-1035 labels (at most 63 characters, starting with
 * a letter); pod names may be longer and start with a digit. The pod name is
 * reused when it qualifies, which it does for the default instance name;
 * otherwise a deterministic slug with a hash suffix keeps it unique.
 */
export function sessionServiceName(podName: string): string {
  if (DNS_1035_LABEL.test(podName)) return podName;
  const hash = createHash('sha256').update(podName).digest('hex').slice(0, 8);
  const prefix = `s-${podName}`.slice(0, 63 - hash.length - 1).replace(/-+$/, '');
  return `${prefix}-${hash}`;
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

/**
 * Pure builder for a session pod, in the spirit of kubespawner's make_pod:
 * hardened by default to the same level as the Docker adapter (non-root, no
 * capabilities, no privilege escalation, RuntimeDefault seccomp, read-only
 * root with memory-backed writable paths, memory and CPU limits) and within
 * the Pod Security "restricted" profile. Unit-tested without a cluster.
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
  const { limits, docker } = config.platform;
  const allEnv = { ...spec.env, ...env };
  const cpuLimit = Math.max(1, Math.round(limits.nanoCpus / 1e6));
  const memoryLimit = limits.memoryBytes;
  const tmpfsSize = quantityFromBytes(limits.tmpfsBytes);
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: sessionLabels(spec, config) },
    spec: {
      restartPolicy: 'Never',
      automountServiceAccountToken: false,
      // Service links would inject one variable per Service in the namespace:
      // noise in the user's shell, and a listing of every other session.
      enableServiceLinks: false,
      terminationGracePeriodSeconds: TERMINATION_GRACE_SECONDS,
      // The pause container becomes PID 1 and reaps the orphans a user's shell
      // leaves behind: Kubernetes' equivalent of Docker's `Init: true`.
      shareProcessNamespace: true,
      securityContext: {
        runAsNonRoot: true,
        runAsUser: SESSION_UID,
        runAsGroup: SESSION_UID,
        fsGroup: SESSION_UID,
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
          ports: [{ name: 'http', containerPort: docker.containerPort, protocol: 'TCP' }],
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
          volumeMounts: [
            { name: 'tmp', mountPath: '/tmp' },
            { name: 'home', mountPath: '/home/berth' },
          ],
        },
      ],
      // Memory-backed like Docker's tmpfs; the usage counts against the
      // container's memory limit as well as sizeLimit.
      volumes: [
        { name: 'tmp', emptyDir: { medium: 'Memory', sizeLimit: tmpfsSize } },
        { name: 'home', emptyDir: { medium: 'Memory', sizeLimit: tmpfsSize } },
      ],
    },
  };
}

/**
 * Pure builder for the ClusterIP Service that gives a session pod a stable DNS
 * name (`<name>.<namespace>.svc`). With `owner`, the Service is owned by the
 * pod, so Kubernetes' garbage collector removes it with the pod even if Berth
 * never gets to.
 */
export function makeSessionService(
  name: string,
  spec: SessionContainerSpec,
  config: BerthConfig,
  owner?: { name: string; uid: string },
): V1Service {
  const port = config.platform.docker.containerPort;
  const ownerReferences: V1OwnerReference[] | undefined = owner
    ? [{ apiVersion: 'v1', kind: 'Pod', name: owner.name, uid: owner.uid, controller: true }]
    : undefined;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, labels: sessionLabels(spec, config), ...(ownerReferences ? { ownerReferences } : {}) },
    spec: {
      type: 'ClusterIP',
      selector: {
        [LABELS.instance]: config.platform.instance,
        [LABELS.sessionId]: spec.sessionId,
      },
      ports: [{ name: 'http', protocol: 'TCP', port, targetPort: port }],
    },
  };
}

/** Bytes as a Kubernetes quantity, in Mi when exact so `kubectl describe` stays readable. */
export function quantityFromBytes(bytes: number): string {
  const mebibyte = 1024 * 1024;
  return bytes % mebibyte === 0 ? `${bytes / mebibyte}Mi` : String(Math.floor(bytes));
}
