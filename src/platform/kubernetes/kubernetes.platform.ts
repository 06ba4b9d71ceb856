import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import type { CoreV1Api, KubeConfig, V1ContainerStatus, V1Pod, V1Service } from '@kubernetes/client-node';
import { BerthConfig } from '../../config/berth-config';
import { SessionKind } from '../../sessions/session-status';
import {
  ContainerPlatform,
  ContainerRef,
  ContainerStatus,
  LABELS,
  ManagedContainer,
  PlatformError,
  SessionContainerSpec,
  StartedContainer,
  sessionContainerName,
} from '../container-platform';
import { kubernetesClient } from './kubernetes-client';
import {
  TERMINATION_GRACE_SECONDS,
  makeSessionPod,
  makeSessionService,
  podUpstreamUrl,
  sessionNetworkEnv,
  sessionServiceName,
} from './kubernetes-objects';

/**
 * Optional injection token: provide a KubeConfig under it to point the adapter
 * somewhere other than what K8S_IN_CLUSTER selects (tests, tools).
 */
export const KUBE_CONFIG = Symbol('KubeConfig');

/**
 * Waiting reasons after which the container will not start without someone
 * changing the image or the spec; the kubelet keeps retrying, so without this
 * the session would sit in `starting` until the caller's timeout.
 */
const PERMANENT_WAITING_REASONS = new Set([
  'ErrImagePull',
  'ImagePullBackOff',
  'ErrImageNeverPull',
  'InvalidImageName',
  'CreateContainerConfigError',
]);

/** Create, and on conflict clear away a dead predecessor, at most this often per start. */
const MAX_CREATE_ATTEMPTS = 3;

const LIST_PAGE_SIZE = 500;

/**
 * Runs sessions as hardened pods, each behind a ClusterIP Service, in one
 * namespace. The only file that talks to the Kubernetes API: everything else
 * sees the ContainerPlatform contract.
 *
 * Construction: `new KubernetesPlatform(config)` loads the in-cluster service
 * account when K8S_IN_CLUSTER is true, else the default kubeconfig
 * (KUBECONFIG, ~/.kube/config). A KubeConfig passed as the second argument
 * (or provided under KUBE_CONFIG for Nest's DI) replaces that.
 */
@Injectable()
export class KubernetesPlatform implements ContainerPlatform {
  readonly name = 'kubernetes' as const;
  readonly requiresHostPort = false;
  private readonly logger = new Logger(KubernetesPlatform.name);
  private readonly core: CoreV1Api;
  private readonly namespace: string;

  constructor(
    private readonly config: BerthConfig,
    @Optional() @Inject(KUBE_CONFIG) kubeConfig?: KubeConfig,
  ) {
    const client = kubernetesClient();
    let kc = kubeConfig;
    if (!kc) {
      kc = new client.KubeConfig();
      if (config.platform.kubernetes.inCluster) kc.loadFromCluster();
      else kc.loadFromDefault();
    }
    this.core = kc.makeApiClient(client.CoreV1Api);
    this.namespace = config.platform.kubernetes.namespace;
  }

  /** A pod's address is known only once it is scheduled: `poll` reports it. */
  upstreamUrlFor(): null {
    return null;
  }

  async start(spec: SessionContainerSpec): Promise<StartedContainer> {
    const podName = sessionContainerName(this.config.platform.instance, spec.kind, spec.sessionId);
    const serviceName = sessionServiceName(podName);
    const { pod, adopted } = await this.createOrAdoptPod(podName, serviceName, spec);
    const podUid = pod.metadata?.uid;
    if (!podUid) throw new PlatformError(`Kubernetes API returned pod ${podName} without a uid`, true);
    // The Service comes second so it can be owned by the pod: whatever happens
    // to Berth afterwards, no Service outlives its session's pod.
    await this.ensureService(serviceName, spec, { name: podName, uid: podUid });
    return {
      containerId: podUid,
      containerName: podName,
      state: { containerName: podName, podUid, namespace: this.namespace },
      adopted,
    };
  }

  async stop(ref: ContainerRef): Promise<void> {
    const name = this.nameOf(ref);
    const namespace = this.namespaceOf(ref);
    try {
      await this.core.deleteNamespacedPod({ name, namespace, gracePeriodSeconds: TERMINATION_GRACE_SECONDS });
    } catch (error) {
      if (statusOf(error) !== 404) throw toPlatformError(error, `deleting pod ${name}`);
    }
    // The garbage collector would remove the Service too; deleting it here
    // makes stop's effect immediate and covers a Service left without owner.
    const serviceName = sessionServiceName(name);
    try {
      await this.core.deleteNamespacedService({ name: serviceName, namespace });
    } catch (error) {
      if (statusOf(error) !== 404) throw toPlatformError(error, `deleting service ${serviceName}`);
    }
  }

  async poll(ref: ContainerRef): Promise<ContainerStatus> {
    const name = this.nameOf(ref);
    const namespace = this.namespaceOf(ref);
    const pod = await this.readPod(name, namespace);
    if (!pod) return { state: 'gone' };
    const status = podStatus(pod);
    if (status.state === 'running') {
      const upstreamUrl = podUpstreamUrl(pod, this.config);
      return upstreamUrl ? { state: 'running', upstreamUrl } : status;
    }
    if (status.state === 'exited' && terminatedState(pod)) {
      const tail = await this.logTail(name, namespace);
      if (tail) return { ...status, reason: `${status.reason}; last output: ${tail}`.slice(0, 1000) };
    }
    return status;
  }

  async listManaged(): Promise<ManagedContainer[]> {
    const labelSelector = this.ownershipSelector();
    const found: ManagedContainer[] = [];
    let continueToken: string | undefined;
    try {
      do {
        const page = await this.core.listNamespacedPod({
          namespace: this.namespace,
          labelSelector,
          limit: LIST_PAGE_SIZE,
          _continue: continueToken,
        });
        for (const pod of page.items) {
          found.push({
            sessionId: pod.metadata?.labels?.[LABELS.sessionId] ?? '',
            kind: pod.metadata?.labels?.[LABELS.kind] as SessionKind,
            containerName: pod.metadata?.name ?? '',
            createdAt: new Date(pod.metadata?.creationTimestamp ?? 0),
          });
        }
        continueToken = page.metadata?._continue || undefined;
      } while (continueToken);
    } catch (error) {
      throw toPlatformError(error, 'listing pods');
    }
    return found;
  }

  async ping(): Promise<void> {
    // Listing our own pods, rather than an unauthenticated discovery call,
    // also proves the namespace exists and the service account may use it.
    try {
      await this.core.listNamespacedPod({ namespace: this.namespace, labelSelector: this.ownershipSelector(), limit: 1 });
    } catch (error) {
      throw toPlatformError(error, `listing pods in namespace ${this.namespace}`);
    }
  }

  private async createOrAdoptPod(
    name: string,
    serviceName: string,
    spec: SessionContainerSpec,
  ): Promise<{ pod: V1Pod; adopted: boolean }> {
    const body = makeSessionPod(name, spec, this.config, sessionNetworkEnv(this.config));
    for (let attempt = 1; attempt <= MAX_CREATE_ATTEMPTS; attempt++) {
      try {
        return { pod: await this.core.createNamespacedPod({ namespace: this.namespace, body }), adopted: false };
      } catch (error) {
        if (statusOf(error) !== 409) throw toPlatformError(error, `creating pod ${name}`);
      }
      // The name is taken: an earlier delivery of this job (or another worker)
      // created it. Adopt it rather than create a second one.
      const existing = await this.readPod(name, this.namespace);
      if (!existing) continue; // deleted between our create and read
      if (existing.metadata?.labels?.[LABELS.sessionId] !== spec.sessionId) {
        throw new PlatformError(`pod name ${name} is taken by a pod Berth does not own`, false);
      }
      if (existing.metadata?.deletionTimestamp) {
        throw new PlatformError(`pod ${name} from an earlier attempt is still terminating`, true);
      }
      const phase = existing.status?.phase;
      if (phase !== 'Succeeded' && phase !== 'Failed') return { pod: existing, adopted: true };
      // A dead pod from an earlier attempt: replace it. Its containers are gone,
      // so deleting without grace is safe, and the uid precondition keeps us
      // from deleting a pod another worker created in the meantime.
      this.logger.log({ msg: 'replacing finished pod from an earlier attempt', sessionId: spec.sessionId, pod: name, phase });
      await this.deleteExact('pod', name, existing.metadata?.uid);
    }
    throw new PlatformError(`pod ${name} kept conflicting with an earlier one; retry later`, true);
  }

  private async ensureService(name: string, spec: SessionContainerSpec, owner: { name: string; uid: string }): Promise<void> {
    const body = makeSessionService(name, spec, this.config, owner);
    for (let attempt = 1; attempt <= MAX_CREATE_ATTEMPTS; attempt++) {
      try {
        await this.core.createNamespacedService({ namespace: this.namespace, body });
        return;
      } catch (error) {
        if (statusOf(error) !== 409) throw toPlatformError(error, `creating service ${name}`);
      }
      const existing = await this.readService(name);
      if (!existing) continue;
      if (existing.metadata?.labels?.[LABELS.sessionId] !== spec.sessionId) {
        throw new PlatformError(`service name ${name} is taken by a service Berth does not own`, false);
      }
      const ownerPod = existing.metadata?.ownerReferences?.find((ref) => ref.kind === 'Pod');
      if (!ownerPod || ownerPod.uid === owner.uid) return;
      // Owned by a pod we just replaced: the garbage collector is about to
      // delete it, so replace it now rather than adopt a Service that vanishes.
      await this.deleteExact('service', name, existing.metadata?.uid);
    }
    throw new PlatformError(`service ${name} kept conflicting with an earlier one; retry later`, true);
  }

  /** Deletes exactly the object with this uid, now; gone or already replaced is fine. */
  private async deleteExact(kind: 'pod' | 'service', name: string, uid: string | undefined): Promise<void> {
    const request = {
      name,
      namespace: this.namespace,
      gracePeriodSeconds: 0,
      body: uid ? { preconditions: { uid } } : undefined,
    };
    try {
      if (kind === 'pod') await this.core.deleteNamespacedPod(request);
      else await this.core.deleteNamespacedService(request);
    } catch (error) {
      const status = statusOf(error);
      // 404 gone; 409 the uid precondition failed: someone replaced it already.
      if (status !== 404 && status !== 409) throw toPlatformError(error, `deleting ${kind} ${name}`);
    }
  }

  private async readPod(name: string, namespace: string): Promise<V1Pod | null> {
    try {
      return await this.core.readNamespacedPod({ name, namespace });
    } catch (error) {
      if (statusOf(error) === 404) return null;
      throw toPlatformError(error, `reading pod ${name}`);
    }
  }

  private async readService(name: string): Promise<V1Service | null> {
    try {
      return await this.core.readNamespacedService({ name, namespace: this.namespace });
    } catch (error) {
      if (statusOf(error) === 404) return null;
      throw toPlatformError(error, `reading service ${name}`);
    }
  }

  private async logTail(name: string, namespace: string): Promise<string> {
    try {
      const text = await this.core.readNamespacedPodLog({ name, namespace, tailLines: 5, limitBytes: 4096 });
      return String(text ?? '').replace(/\s+/g, ' ').trim();
    } catch {
      // Logs are a courtesy; the exit code is the fact.
      return '';
    }
  }

  private ownershipSelector(): string {
    return `${LABELS.managedBy}=berth,${LABELS.instance}=${this.config.platform.instance}`;
  }

  private nameOf(ref: ContainerRef): string {
    const recorded = ref.state.containerName;
    return typeof recorded === 'string' && recorded ? recorded : sessionContainerName(this.config.platform.instance, ref.kind, ref.sessionId);
  }

  /** The namespace the pod was created in, even if K8S_NAMESPACE changed since. */
  private namespaceOf(ref: ContainerRef): string {
    const recorded = ref.state.namespace;
    return typeof recorded === 'string' && recorded ? recorded : this.namespace;
  }
}

/** What the pod's phase and its container's state mean for the session. Pure. */
export function podStatus(pod: V1Pod): ContainerStatus {
  const phase = pod.status?.phase;
  const container = pod.status?.containerStatuses?.[0];
  const terminated = container?.state?.terminated;
  // restartPolicy Never: a terminated container is final even while the pod's
  // phase still says Running for a moment.
  if (terminated || phase === 'Succeeded' || phase === 'Failed') {
    const parts: string[] = [];
    if (terminated) {
      parts.push(`container exited with code ${terminated.exitCode}`);
      if (terminated.reason === 'OOMKilled') parts.push('killed: out of memory');
      else if (terminated.reason && terminated.reason !== 'Error' && terminated.reason !== 'Completed') parts.push(terminated.reason);
      if (terminated.message) parts.push(terminated.message.trim());
    } else {
      parts.push(`pod ${(phase ?? 'unknown').toLowerCase()} before its container ran`);
    }
    // Evictions and node loss are reported on the pod, not the container.
    if (pod.status?.reason) parts.push(pod.status.reason);
    if (pod.status?.message) parts.push(pod.status.message.trim());
    return { state: 'exited', exitCode: terminated?.exitCode ?? null, reason: parts.join('; ').slice(0, 1000) };
  }
  const waiting = container?.state?.waiting;
  if (container && waiting?.reason && PERMANENT_WAITING_REASONS.has(waiting.reason)) {
    return { state: 'exited', exitCode: null, reason: waitingReason(container, waiting.reason, waiting.message) };
  }
  // Pending (scheduling, pulling, creating), Running, and Unknown (the node
  // stopped reporting; it may come back): still alive as far as we can tell.
  // A pod that never gets going is the caller's start timeout to catch.
  return { state: 'running' };
}

function terminatedState(pod: V1Pod) {
  return pod.status?.containerStatuses?.[0]?.state?.terminated;
}

function waitingReason(container: V1ContainerStatus, reason: string, message?: string): string {
  const detail = message ? `: ${message.trim()}` : '';
  const what = reason === 'CreateContainerConfigError' ? 'container could not be configured' : `image ${container.image} could not be pulled`;
  return `${what} (${reason})${detail}`.slice(0, 1000);
}

/** ApiException carries the HTTP status as a number; network errors carry a string errno code. */
function statusOf(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

/** The API server explains itself in a Status object; ApiException keeps it as the raw body text. */
function messageOf(error: unknown): string {
  const err = error as { code?: unknown; body?: unknown; message?: unknown } | null;
  if (typeof err?.code === 'number') {
    let body = err.body;
    if (typeof body === 'string') {
      const text = body.trim();
      try {
        body = JSON.parse(text);
      } catch {
        return text ? `HTTP ${err.code}: ${text.slice(0, 500)}` : `HTTP ${err.code}`;
      }
    }
    const status = body as { reason?: string; message?: string } | undefined;
    const reason = status?.reason ? ` ${status.reason}` : '';
    return status?.message ? `HTTP ${err.code}${reason}: ${status.message}` : `HTTP ${err.code}${reason}`;
  }
  return typeof err?.message === 'string' ? err.message : String(error);
}

function toPlatformError(error: unknown, action: string): PlatformError {
  const status = statusOf(error);
  // 5xx, 429 (API priority and fairness throttling) and network errors may
  // pass; 4xx (invalid spec, forbidden, missing namespace) will not.
  const transient = status === undefined || status >= 500 || status === 429;
  return new PlatformError(`Kubernetes API error while ${action}: ${messageOf(error)}`, transient);
}
