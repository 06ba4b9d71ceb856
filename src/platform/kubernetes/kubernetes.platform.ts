import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import type { CoreV1Api, KubeConfig, V1ContainerStatus, V1PersistentVolumeClaim, V1Pod } from '@kubernetes/client-node';
import { BerthConfig } from '../../config/berth-config';
import { SessionKind } from '../../sessions/session-status';
import {
  ContainerPlatform,
  ContainerRef,
  ContainerStatus,
  CreatedContainer,
  ExitHandlers,
  LABELS,
  ManagedContainer,
  ManagedVolume,
  PersistentVolume,
  PlatformError,
  SessionContainerSpec,
  StartedContainer,
  sessionContainerName,
} from '../container-platform';
import { OpenStream, keepWatching } from '../keep-watching';
import { kubernetesClient } from './kubernetes-client';
import { makePersistentVolumeClaim, makeSessionPod, podUpstreamUrl, sessionNetworkEnv } from './kubernetes-objects';

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
 * Runs sessions as hardened pods in one namespace, with persistent volumes as
 * PersistentVolumeClaims there. The gateway reaches a pod's agent at the pod's
 * IP (`poll` reports it), so there is no per-session Service. The only file
 * that talks to the Kubernetes API: everything else sees the
 * ContainerPlatform contract.
 *
 * Construction: `new KubernetesPlatform(config)` loads the in-cluster service
 * account when K8S_IN_CLUSTER is true, else the default kubeconfig
 * (KUBECONFIG, ~/.kube/config). A KubeConfig passed as the second argument
 * (or provided under KUBE_CONFIG for Nest's DI) replaces that.
 */
/** How soon a pod watch that broke is started again. */
const WATCH_RETRY_MS = 1000;

@Injectable()
export class KubernetesPlatform implements ContainerPlatform {
  readonly name = 'kubernetes' as const;
  readonly requiresHostPort = false;
  private readonly logger = new Logger(KubernetesPlatform.name);
  private readonly core: CoreV1Api;
  private readonly kubeConfig: KubeConfig;
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
    this.kubeConfig = kc;
    this.namespace = config.platform.kubernetes.namespace;
  }

  /** A pod's address is known only once it is scheduled: `poll` reports it. */
  upstreamUrlFor(_spec: SessionContainerSpec): null {
    return null;
  }

  async start(spec: SessionContainerSpec, onCreated?: (created: CreatedContainer) => Promise<void>): Promise<StartedContainer> {
    const podName = sessionContainerName(this.config.platform.instance, spec.kind, spec.sessionId);
    // Claims first: a pod naming a claim that does not exist yet would sit
    // unschedulable until it does.
    for (const volume of spec.volumes) await this.ensureClaim(volume);
    const { pod, adopted } = await this.createOrAdoptPod(podName, spec);
    const podUid = pod.metadata?.uid;
    if (!podUid) throw new PlatformError(`Kubernetes API returned pod ${podName} without a uid`, true);
    // A pod runs as soon as it is scheduled; its agent's callback is refused until its address
    // is recorded (after this returns), so "created" and "started" are one moment here.
    const created: CreatedContainer = { containerId: podUid, containerName: podName, state: { containerName: podName, podUid, namespace: this.namespace } };
    await onCreated?.(created);
    return { ...created, adopted };
  }

  async stop(ref: ContainerRef): Promise<void> {
    const name = this.nameOf(ref);
    const namespace = this.namespaceOf(ref);
    try {
      // No gracePeriodSeconds: the pod's own terminationGracePeriodSeconds
      // (its kind's stop grace) applies.
      await this.core.deleteNamespacedPod({ name, namespace });
    } catch (error) {
      if (statusOf(error) !== 404) throw toPlatformError(error, `deleting pod ${name}`);
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
    const pods = await this.listOurPods();
    return pods.map((pod) => ({
      sessionId: pod.metadata?.labels?.[LABELS.sessionId] ?? '',
      kind: pod.metadata?.labels?.[LABELS.kind] as SessionKind,
      containerName: pod.metadata?.name ?? '',
      createdAt: new Date(pod.metadata?.creationTimestamp ?? 0),
      running: podStatus(pod).state === 'running',
    }));
  }

  /**
   * Deletes the claim unless a live pod of ours mounts it. The pods are
   * checked rather than left to the pvc-protection finalizer, which would
   * accept the delete, keep the claim while the pod runs and remove it (and
   * its data) afterwards: 'removed' would be a promise about the future, and
   * a session starting on the volume meanwhile would never be scheduled. A
   * pod still terminating counts as live: it may be saving to the volume.
   * Starting a session on a volume while removing it is the caller's race to
   * avoid; the finalizer still keeps the data from vanishing under a pod.
   */
  async removeVolume(name: string): Promise<'removed' | 'gone' | 'in-use'> {
    const claim = await this.readClaim(name);
    if (!claim) return 'gone';
    if (!this.isOurs(claim.metadata?.labels)) {
      throw new PlatformError(`persistent volume claim ${name} is not one Berth created; not removing it`, false);
    }
    const pods = await this.listOurPods();
    const user = pods.find((pod) => isLive(pod) && mountsClaim(pod, name));
    if (user) {
      this.logger.log({ msg: 'volume still in use; not removing it', volume: name, pod: user.metadata?.name });
      return 'in-use';
    }
    try {
      await this.core.deleteNamespacedPersistentVolumeClaim({
        name,
        namespace: this.namespace,
        // Exactly the claim we checked, not one created under its name since.
        body: claim.metadata?.uid ? { preconditions: { uid: claim.metadata.uid } } : undefined,
      });
      return 'removed';
    } catch (error) {
      const status = statusOf(error);
      if (status === 404) return 'gone';
      // The uid precondition failed: a new claim of that name was created
      // since we looked, for a session about to use it.
      if (status === 409) return 'in-use';
      throw toPlatformError(error, `deleting persistent volume claim ${name}`);
    }
  }

  async listManagedVolumes(): Promise<ManagedVolume[]> {
    const found: ManagedVolume[] = [];
    let continueToken: string | undefined;
    try {
      do {
        const page = await this.core.listNamespacedPersistentVolumeClaim({
          namespace: this.namespace,
          labelSelector: this.ownershipSelector(),
          limit: LIST_PAGE_SIZE,
          _continue: continueToken,
        });
        for (const claim of page.items) {
          found.push({
            name: claim.metadata?.name ?? '',
            purpose: claim.metadata?.labels?.[LABELS.volumePurpose] as ManagedVolume['purpose'],
            createdAt: new Date(claim.metadata?.creationTimestamp ?? 0),
          });
        }
        continueToken = page.metadata?._continue || undefined;
      } while (continueToken);
    } catch (error) {
      throw toPlatformError(error, 'listing persistent volume claims');
    }
    return found;
  }

  /**
   * A watch on this install's pods: a pod that has stopped (phase Failed or
   * Succeeded, its session container terminated) or was deleted behind
   * Berth's back reports its session. The API server ends watches after a
   * while; each new one after the first is a resync.
   */
  watchExits(handlers: ExitHandlers): () => void {
    const watch = new (kubernetesClient().Watch)(this.kubeConfig);
    const onEvent = (type: string, pod: V1Pod) => {
      const sessionId = pod?.metadata?.labels?.[LABELS.sessionId];
      if (!sessionId) return;
      if (type === 'DELETED' || podStatus(pod).state === 'exited') handlers.onExit(sessionId);
    };
    const open: OpenStream = async (ended) => {
      const controller = await watch.watch(`/api/v1/namespaces/${this.namespace}/pods`, { labelSelector: this.ownershipSelector() }, onEvent, () => ended());
      return () => controller.abort();
    };
    return keepWatching(open, () => handlers.onResync(), { retryMs: WATCH_RETRY_MS, logger: this.logger, what: 'the session pod watch' });
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

  /** Every pod of this install in the namespace, through every page. */
  private async listOurPods(): Promise<V1Pod[]> {
    const pods: V1Pod[] = [];
    let continueToken: string | undefined;
    try {
      do {
        const page = await this.core.listNamespacedPod({
          namespace: this.namespace,
          labelSelector: this.ownershipSelector(),
          limit: LIST_PAGE_SIZE,
          _continue: continueToken,
        });
        pods.push(...page.items);
        continueToken = page.metadata?._continue || undefined;
      } while (continueToken);
    } catch (error) {
      throw toPlatformError(error, 'listing pods');
    }
    return pods;
  }

  /**
   * Creates the claim for a persistent volume; an existing one of ours is kept
   * as it is (its data is the point, and its size may have been changed by
   * an operator since).
   */
  private async ensureClaim(volume: PersistentVolume): Promise<void> {
    const body = makePersistentVolumeClaim(volume, this.config);
    try {
      await this.core.createNamespacedPersistentVolumeClaim({ namespace: this.namespace, body });
      return;
    } catch (error) {
      if (statusOf(error) !== 409) throw toPlatformError(error, `creating persistent volume claim ${volume.name}`);
    }
    const existing = await this.readClaim(volume.name);
    // Deleted between our create and read: it cannot be used, so try again later.
    if (!existing) throw new PlatformError(`persistent volume claim ${volume.name} was deleted while starting; retry`, true);
    if (!this.isOurs(existing.metadata?.labels)) {
      throw new PlatformError(`persistent volume claim name ${volume.name} is taken by a claim Berth does not own`, false);
    }
    if (existing.metadata?.deletionTimestamp) {
      // A pod naming a terminating claim is never scheduled; once the claim is
      // gone, the next attempt creates a fresh one.
      throw new PlatformError(`persistent volume claim ${volume.name} is being deleted; retry later`, true);
    }
  }

  private async createOrAdoptPod(name: string, spec: SessionContainerSpec): Promise<{ pod: V1Pod; adopted: boolean }> {
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
      await this.deleteExactPod(name, existing.metadata?.uid);
    }
    throw new PlatformError(`pod ${name} kept conflicting with an earlier one; retry later`, true);
  }

  /** Deletes exactly the pod with this uid, now; gone or already replaced is fine. */
  private async deleteExactPod(name: string, uid: string | undefined): Promise<void> {
    try {
      await this.core.deleteNamespacedPod({
        name,
        namespace: this.namespace,
        gracePeriodSeconds: 0,
        body: uid ? { preconditions: { uid } } : undefined,
      });
    } catch (error) {
      const status = statusOf(error);
      // 404 gone; 409 the uid precondition failed: someone replaced it already.
      if (status !== 404 && status !== 409) throw toPlatformError(error, `deleting pod ${name}`);
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

  private async readClaim(name: string): Promise<V1PersistentVolumeClaim | null> {
    try {
      return await this.core.readNamespacedPersistentVolumeClaim({ name, namespace: this.namespace });
    } catch (error) {
      if (statusOf(error) === 404) return null;
      throw toPlatformError(error, `reading persistent volume claim ${name}`);
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

  private isOurs(labels: Record<string, string> | undefined): boolean {
    return labels?.[LABELS.managedBy] === 'berth' && labels?.[LABELS.instance] === this.config.platform.instance;
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

/** Not finished: pending, running, or terminating (its containers may still be writing). */
function isLive(pod: V1Pod): boolean {
  const phase = pod.status?.phase;
  return phase !== 'Succeeded' && phase !== 'Failed';
}

function mountsClaim(pod: V1Pod, claimName: string): boolean {
  return (pod.spec?.volumes ?? []).some((volume) => volume.persistentVolumeClaim?.claimName === claimName);
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
