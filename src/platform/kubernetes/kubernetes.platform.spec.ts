import { testConfig } from '../../../test/support/test-config';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Test } from '@nestjs/testing';
import type { KubeConfig } from '@kubernetes/client-node';
import { loadAll } from 'js-yaml';
import { BerthConfig } from '../../config/berth-config';
import { SessionKind } from '../../sessions/session-status';
import { ContainerRef, PersistentVolume, PlatformError, SessionContainerSpec, sessionContainerName } from '../container-platform';
import { FakeKubernetesApi, PVC_PROTECTION_FINALIZER, RbacRule } from '../../../test/kubernetes/fake-kubernetes-api';
import { makePersistentVolumeClaim, makeSessionPod, sessionNetworkEnv } from './kubernetes-objects';
import { KUBE_CONFIG, KubernetesPlatform } from './kubernetes.platform';

// The real client, loaded by Node rather than jest (it is ESM-only).
jest.mock('@kubernetes/client-node', () =>
  jest.requireActual('../../../test/kubernetes/native-kubernetes-client').loadNativeKubernetesClient(),
);
// eslint-disable-next-line @typescript-eslint/no-require-imports
const k8s = require('@kubernetes/client-node') as typeof import('@kubernetes/client-node');

const NS = 'berth-sessions';
const TOKEN = 'fake-service-account-token';

/** The Role the manifests grant: the fake API server answers 403 to anything else. */
function sessionRole(): { namespace: string; rules: RbacRule[] } {
  const docs = loadAll(readFileSync(join(__dirname, '../../../k8s/rbac.yaml'), 'utf8')) as {
    kind: string;
    metadata: { namespace: string };
    rules?: RbacRule[];
  }[];
  const role = docs.find((doc) => doc.kind === 'Role');
  if (!role?.rules) throw new Error('k8s/rbac.yaml has no Role');
  return { namespace: role.metadata.namespace, rules: role.rules };
}

function kubeConfigFor(server: string, token = TOKEN): KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server, skipTLSVerify: true }],
    users: [{ name: 'u', token }],
    contexts: [{ name: 'c', cluster: 'fake', user: 'u' }],
    currentContext: 'c',
  });
  return kc;
}

const config = testConfig({ CONTAINER_PLATFORM: 'kubernetes' });

function specFor(sessionId: string, volumes: PersistentVolume[] = []): SessionContainerSpec {
  return {
    sessionId,
    kind: SessionKind.Terminal,
    image: 'berth/terminal:latest',
    env: { BERTH_SESSION_ID: sessionId, BERTH_CALLBACK_TOKEN: 'cb-secret' },
    resources: config.terminal.resources,
    stopGraceSeconds: 3,
    volumes,
  };
}

const MiB = 1024 * 1024;
const SESSION = '6f1d2c3b-0a9e-4b8c-8d7e-5f4a3b2c1d0e';
const spec = specFor(SESSION);
const podName = sessionContainerName('berth', SessionKind.Terminal, SESSION);
const WORKSPACE: PersistentVolume = { name: 'berth-workspace-3f9a', mountPath: '/home/berth', purpose: 'workspace', sizeBytes: 1024 * MiB };
const withWorkspace = specFor(SESSION, [WORKSPACE]);
const ref = (state: ContainerRef['state'] = {}): ContainerRef => ({ sessionId: SESSION, kind: SessionKind.Terminal, state });

/** A container status as the kubelet reports it, in the given state. */
function containerStatus(state: Record<string, unknown>) {
  return { name: 'session', image: spec.image, imageID: '', ready: 'running' in state, restartCount: 0, state };
}

function requestLine(request: { method: string; path: string }): string {
  return `${request.method} ${request.path}`;
}

describe('KubernetesPlatform against a fake API server', () => {
  const api = new FakeKubernetesApi({ token: TOKEN, rbac: sessionRole() });
  let server: string;
  let platform: KubernetesPlatform;

  beforeAll(async () => {
    server = await api.listen();
    platform = new KubernetesPlatform(config, kubeConfigFor(server));
  });

  afterAll(() => api.close());

  beforeEach(() => api.reset());

  afterEach(() => {
    // Every request was authenticated with the service account's token.
    for (const request of api.requests) expect(request.authorization).toBe(`Bearer ${TOKEN}`);
  });

  describe('start', () => {
    it('creates the pod the builder makes, and nothing else, for a session without volumes', async () => {
      const started = await platform.start(spec);

      expect(api.requests.map(requestLine)).toEqual([`POST /api/v1/namespaces/${NS}/pods`]);
      const pod = api.get('pods', NS, podName)!;
      expect(started).toEqual({
        containerId: pod.metadata.uid,
        containerName: podName,
        state: { containerName: podName, podUid: pod.metadata.uid, namespace: NS },
        adopted: false,
      });
      // What went over the wire is exactly what the pure builder produced:
      // nothing dropped or renamed by the client's serializer.
      expect(api.requests[0].body).toEqual(JSON.parse(JSON.stringify(makeSessionPod(podName, spec, config, sessionNetworkEnv(config)))));
      const sentPod = api.requests[0].body as { spec: { terminationGracePeriodSeconds: number; containers: { env: { name: string; value: string }[] }[] } };
      const env = Object.fromEntries(sentPod.spec.containers[0].env.map((e) => [e.name, e.value]));
      expect(env).toMatchObject({ BERTH_PORT: '7681', BERTH_LISTEN_HOST: '0.0.0.0', BERTH_CALLBACK_TOKEN: 'cb-secret' });
      expect(sentPod.spec.terminationGracePeriodSeconds).toBe(3);
    });

    it('creates the volume’s claim first, then the pod that mounts it', async () => {
      const started = await platform.start(withWorkspace);

      expect(api.requests.map((r) => `${requestLine(r)} ${r.status}`)).toEqual([
        `POST /api/v1/namespaces/${NS}/persistentvolumeclaims 201`,
        `POST /api/v1/namespaces/${NS}/pods 201`,
      ]);
      expect(api.requests[0].body).toEqual(JSON.parse(JSON.stringify(makePersistentVolumeClaim(WORKSPACE, config))));
      const claim = api.get('persistentvolumeclaims', NS, WORKSPACE.name)!;
      expect(claim.metadata.labels).toMatchObject({ 'berth.managed-by': 'berth', 'berth.instance': 'berth', 'berth.volume-purpose': 'workspace' });
      expect(claim.spec).toMatchObject({ accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1024Mi' } } });
      const pod = api.get('pods', NS, podName)!;
      expect(pod.metadata.uid).toBe(started.containerId);
      expect((pod.spec as { volumes: unknown[] }).volumes).toContainEqual({ name: 'workspace-0', persistentVolumeClaim: { claimName: WORKSPACE.name } });
    });

    it('asks for the configured StorageClass', async () => {
      const classy = new KubernetesPlatform(testConfig({ CONTAINER_PLATFORM: 'kubernetes', K8S_STORAGE_CLASS: 'fast-ssd' }), kubeConfigFor(server));
      await classy.start(withWorkspace);
      expect(api.get('persistentvolumeclaims', NS, WORKSPACE.name)?.spec).toMatchObject({ storageClassName: 'fast-ssd' });
    });

    it('keeps an existing claim of ours as it is (its data is the point) and mounts it', async () => {
      const existing = api.put('persistentvolumeclaims', NS, {
        ...makePersistentVolumeClaim({ ...WORKSPACE, sizeBytes: 5 * 1024 * MiB }, config),
        status: { phase: 'Bound' },
      });
      const before = structuredClone(existing);

      await platform.start(withWorkspace);

      expect(api.requests.map((r) => `${requestLine(r)} ${r.status}`)).toEqual([
        `POST /api/v1/namespaces/${NS}/persistentvolumeclaims 409`,
        `GET /api/v1/namespaces/${NS}/persistentvolumeclaims/${WORKSPACE.name} 200`,
        `POST /api/v1/namespaces/${NS}/pods 201`,
      ]);
      expect(api.get('persistentvolumeclaims', NS, WORKSPACE.name)).toEqual(before);
      expect(api.all('persistentvolumeclaims')).toHaveLength(1);
      expect(api.all('pods')).toHaveLength(1);
    });

    it('refuses a claim of that name that Berth does not own', async () => {
      api.put('persistentvolumeclaims', NS, {
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        metadata: { name: WORKSPACE.name, labels: { app: 'someone-else' } },
        spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
      });

      const error = await platform.start(withWorkspace).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PlatformError);
      expect(error).toMatchObject({ transient: false, message: expect.stringContaining('does not own') });
      expect(api.all('pods')).toHaveLength(0);
    });

    it('asks to retry later while the claim is being deleted, without creating the pod', async () => {
      const claim = makePersistentVolumeClaim(WORKSPACE, config);
      api.put('persistentvolumeclaims', NS, { ...claim, metadata: { ...claim.metadata, deletionTimestamp: new Date().toISOString() } });

      await expect(platform.start(withWorkspace)).rejects.toMatchObject({
        name: 'PlatformError',
        transient: true,
        message: expect.stringContaining('being deleted'),
      });
      expect(api.all('pods')).toHaveLength(0);
    });

    it('adopts the existing pod and claim when started twice', async () => {
      const first = await platform.start(withWorkspace);
      api.setPodStatus(NS, podName, { phase: 'Running' });
      const second = await platform.start(withWorkspace);

      expect(second).toEqual({ ...first, adopted: true });
      expect(api.all('pods')).toHaveLength(1);
      expect(api.all('persistentvolumeclaims')).toHaveLength(1);
      expect(api.requests.slice(2).map((r) => `${requestLine(r)} ${r.status}`)).toEqual([
        `POST /api/v1/namespaces/${NS}/persistentvolumeclaims 409`,
        `GET /api/v1/namespaces/${NS}/persistentvolumeclaims/${WORKSPACE.name} 200`,
        `POST /api/v1/namespaces/${NS}/pods 409`,
        `GET /api/v1/namespaces/${NS}/pods/${podName} 200`,
      ]);
    });

    it.each(['Failed', 'Succeeded'])('replaces a %s pod left by an earlier attempt', async (phase) => {
      const first = await platform.start(spec);
      api.setPodStatus(NS, podName, { phase });

      const second = await platform.start(spec);

      expect(second.adopted).toBe(false);
      expect(second.containerId).not.toBe(first.containerId);
      expect(api.all('pods').map((pod) => pod.metadata.uid)).toEqual([second.containerId]);
      const deletion = api.requests.find((r) => r.method === 'DELETE')!;
      expect(deletion.path).toBe(`/api/v1/namespaces/${NS}/pods/${podName}`);
      expect(deletion.query.get('gracePeriodSeconds')).toBe('0');
      expect(deletion.body).toMatchObject({ preconditions: { uid: first.containerId } });
    });

    it('asks to retry later while a pod from an earlier attempt is still terminating', async () => {
      const existing = makeSessionPod(podName, spec, config, {});
      api.put('pods', NS, { ...existing, metadata: { ...existing.metadata!, name: podName, deletionTimestamp: new Date().toISOString() } });

      await expect(platform.start(spec)).rejects.toMatchObject({
        name: 'PlatformError',
        transient: true,
        message: expect.stringContaining('terminating'),
      });
      expect(api.all('pods')).toHaveLength(1);
    });

    it('refuses to adopt a pod that belongs to another session', async () => {
      const other = makeSessionPod(podName, specFor('11111111-2222-4333-8444-555555555555'), config, {});
      api.put('pods', NS, other);

      const error = await platform.start(spec).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PlatformError);
      expect(error).toMatchObject({ transient: false, message: expect.stringContaining('does not own') });
    });
  });

  describe('stop', () => {
    it('deletes the pod leaving its own grace period in charge, keeps its volume, and is idempotent', async () => {
      const started = await platform.start(withWorkspace);
      api.requests.length = 0;

      await platform.stop(ref(started.state));
      expect(api.requests.map((r) => `${requestLine(r)} ${r.status}`)).toEqual([`DELETE /api/v1/namespaces/${NS}/pods/${podName} 200`]);
      // No override: the pod's terminationGracePeriodSeconds (its kind's stop grace) applies.
      expect(api.requests[0].query.has('gracePeriodSeconds')).toBe(false);
      expect((api.requests[0].body as { gracePeriodSeconds?: number } | undefined)?.gracePeriodSeconds).toBeUndefined();
      expect(api.all('pods')).toHaveLength(0);
      expect(api.all('persistentvolumeclaims').map((claim) => claim.metadata.name)).toEqual([WORKSPACE.name]);

      await expect(platform.stop(ref(started.state))).resolves.toBeUndefined();
      expect(api.requests.slice(1).map((r) => r.status)).toEqual([404]);
    });

    it('finds the pod from the session id when the state is empty, and in the recorded namespace otherwise', async () => {
      await platform.start(spec);
      await platform.stop(ref());
      expect(api.all('pods')).toHaveLength(0);

      // A session started before K8S_NAMESPACE changed is stopped where it lives
      // (the Role only covers berth-sessions, hence the 403 that proves where we asked).
      const error = await platform.stop(ref({ containerName: podName, namespace: 'elsewhere' })).catch((e: unknown) => e);
      expect(api.requests.at(-1)?.path).toBe(`/api/v1/namespaces/elsewhere/pods/${podName}`);
      expect(error).toMatchObject({ transient: false, message: expect.stringContaining('forbidden') });
    });
  });

  describe('removeVolume', () => {
    it('leaves a claim a live pod of ours mounts alone: in-use, nothing deleted', async () => {
      await platform.start(withWorkspace);
      api.setPodStatus(NS, podName, { phase: 'Running', podIP: '10.42.0.7' });
      api.requests.length = 0;

      await expect(platform.removeVolume(WORKSPACE.name)).resolves.toBe('in-use');

      expect(api.requests.map((r) => `${requestLine(r)} ${r.status}`)).toEqual([
        `GET /api/v1/namespaces/${NS}/persistentvolumeclaims/${WORKSPACE.name} 200`,
        `GET /api/v1/namespaces/${NS}/pods 200`,
      ]);
      expect(api.requests[1].query.get('labelSelector')).toBe('berth.managed-by=berth,berth.instance=berth');
      // Not deleted-and-held-by-the-finalizer either: untouched.
      expect(api.get('persistentvolumeclaims', NS, WORKSPACE.name)?.metadata.deletionTimestamp).toBeUndefined();
    });

    it('counts a pod that is still terminating as a user (it may be saving to the volume)', async () => {
      const pod = makeSessionPod(podName, withWorkspace, config, {});
      api.put('persistentvolumeclaims', NS, makePersistentVolumeClaim(WORKSPACE, config));
      api.put('pods', NS, { ...pod, metadata: { ...pod.metadata!, deletionTimestamp: new Date().toISOString() }, status: { phase: 'Running' } });

      await expect(platform.removeVolume(WORKSPACE.name)).resolves.toBe('in-use');
      expect(api.all('persistentvolumeclaims')).toHaveLength(1);
    });

    it('removes a claim once its session has stopped', async () => {
      const started = await platform.start(withWorkspace);
      await platform.stop(ref(started.state));
      const uid = api.get('persistentvolumeclaims', NS, WORKSPACE.name)!.metadata.uid;
      api.requests.length = 0;

      await expect(platform.removeVolume(WORKSPACE.name)).resolves.toBe('removed');

      expect(api.requests.map((r) => `${requestLine(r)} ${r.status}`)).toEqual([
        `GET /api/v1/namespaces/${NS}/persistentvolumeclaims/${WORKSPACE.name} 200`,
        `GET /api/v1/namespaces/${NS}/pods 200`,
        `DELETE /api/v1/namespaces/${NS}/persistentvolumeclaims/${WORKSPACE.name} 200`,
      ]);
      // Exactly the claim that was checked.
      expect(api.requests[2].body).toMatchObject({ preconditions: { uid } });
      expect(api.all('persistentvolumeclaims')).toHaveLength(0);
    });

    it('removes a claim whose only pods have finished, or mount other claims', async () => {
      const finished = makeSessionPod(podName, withWorkspace, config, {});
      api.put('pods', NS, { ...finished, status: { phase: 'Failed' } });
      const otherSession = '44444444-5555-4666-8777-888888888888';
      const other = specFor(otherSession, [{ ...WORKSPACE, name: 'berth-workspace-other' }]);
      await platform.start(other);
      api.put('persistentvolumeclaims', NS, makePersistentVolumeClaim(WORKSPACE, config));

      await expect(platform.removeVolume(WORKSPACE.name)).resolves.toBe('removed');
      expect(api.all('persistentvolumeclaims').map((claim) => claim.metadata.name)).toEqual(['berth-workspace-other']);
    });

    it('answers gone for a claim that does not exist, every time', async () => {
      await expect(platform.removeVolume('berth-workspace-never')).resolves.toBe('gone');
      await expect(platform.removeVolume('berth-workspace-never')).resolves.toBe('gone');
      expect(api.requests.map((r) => r.status)).toEqual([404, 404]);
    });

    it('answers gone when the claim disappears between the check and the delete', async () => {
      api.put('persistentvolumeclaims', NS, makePersistentVolumeClaim(WORKSPACE, config));
      api.failNext('DELETE', /\/persistentvolumeclaims\//, 404, 'NotFound', `persistentvolumeclaims "${WORKSPACE.name}" not found`);
      await expect(platform.removeVolume(WORKSPACE.name)).resolves.toBe('gone');
    });

    it('never deletes a claim Berth does not own', async () => {
      api.put('persistentvolumeclaims', NS, {
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        metadata: { name: 'data-postgres-0', labels: { app: 'postgres' } },
        spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '10Gi' } } },
      });
      await expect(platform.removeVolume('data-postgres-0')).rejects.toMatchObject({ name: 'PlatformError', transient: false });
      expect(api.all('persistentvolumeclaims')).toHaveLength(1);
      expect(api.requests.some((r) => r.method === 'DELETE')).toBe(false);
    });

    it('the fake API’s pvc-protection finalizer is what removeVolume must not rely on', async () => {
      // Deleting a claim in use "succeeds" and only marks it terminating: the
      // reason removeVolume looks at the pods first.
      await platform.start(withWorkspace);
      const claim = api.get('persistentvolumeclaims', NS, WORKSPACE.name)!;
      expect(claim.metadata.finalizers).toEqual([PVC_PROTECTION_FINALIZER]);
      const k8sCore = kubeConfigFor(server).makeApiClient(k8s.CoreV1Api);
      await k8sCore.deleteNamespacedPersistentVolumeClaim({ name: WORKSPACE.name, namespace: NS });
      expect(api.get('persistentvolumeclaims', NS, WORKSPACE.name)?.metadata.deletionTimestamp).toEqual(expect.any(String));
      await platform.stop(ref());
      expect(api.all('persistentvolumeclaims')).toHaveLength(0);
    });
  });

  describe('listManagedVolumes', () => {
    it('sends the ownership label selector and returns this instance’s claims with their purpose', async () => {
      await platform.start(withWorkspace);
      api.put('persistentvolumeclaims', NS, makePersistentVolumeClaim({ ...WORKSPACE, name: 'berth-profile-a', purpose: 'profile' }, config));
      const otherInstance = testConfig({ BERTH_INSTANCE: 'other' });
      api.put('persistentvolumeclaims', NS, makePersistentVolumeClaim({ ...WORKSPACE, name: 'other-workspace' }, otherInstance));
      api.put('persistentvolumeclaims', NS, {
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        metadata: { name: 'data-postgres-0', labels: { app: 'postgres' } },
        spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '10Gi' } } },
      });
      api.requests.length = 0;

      const volumes = await platform.listManagedVolumes();

      expect(api.requests.map(requestLine)).toEqual([`GET /api/v1/namespaces/${NS}/persistentvolumeclaims`]);
      expect(api.requests[0].query.get('labelSelector')).toBe('berth.managed-by=berth,berth.instance=berth');
      expect(volumes.map(({ name, purpose }) => ({ name, purpose }))).toEqual([
        { name: 'berth-profile-a', purpose: 'profile' },
        { name: WORKSPACE.name, purpose: 'workspace' },
      ]);
      for (const volume of volumes) expect(Math.abs(volume.createdAt.getTime() - Date.now())).toBeLessThan(10_000);
    });

    it('follows continue tokens through every page', async () => {
      for (let i = 0; i < 501; i++) {
        api.put('persistentvolumeclaims', NS, makePersistentVolumeClaim({ ...WORKSPACE, name: `berth-workspace-${String(i).padStart(3, '0')}` }, config));
      }
      api.requests.length = 0;

      const volumes = await platform.listManagedVolumes();

      expect(volumes).toHaveLength(501);
      expect(new Set(volumes.map((volume) => volume.name)).size).toBe(501);
      expect(api.requests.map((r) => r.query.get('continue'))).toEqual([null, expect.any(String)]);
      expect(api.requests[0].query.get('limit')).toBe('500');
    });

    it('turns a failure into a PlatformError', async () => {
      api.failNext('GET', /\/persistentvolumeclaims$/, 503, 'ServiceUnavailable', 'etcd is down');
      await expect(platform.listManagedVolumes()).rejects.toMatchObject({ name: 'PlatformError', transient: true });
    });
  });

  describe('poll', () => {
    let state: ContainerRef['state'];
    beforeEach(async () => {
      state = (await platform.start(spec)).state;
    });

    it('answers running while the pod is Pending or Running', async () => {
      await expect(platform.poll(ref(state))).resolves.toEqual({ state: 'running' });
      api.setPodStatus(NS, podName, {
        phase: 'Running',
        containerStatuses: [containerStatus({ running: { startedAt: '2026-11-22T10:00:00Z' } })],
      });
      await expect(platform.poll(ref(state))).resolves.toEqual({ state: 'running' });
    });

    it('is the only source of the address: upstreamUrlFor knows none before the pod exists', () => {
      expect(platform.upstreamUrlFor(spec)).toBeNull();
    });

    it('reports where the gateway reaches the agent once the pod has an IP: status.podIP and the agent port', async () => {
      api.setPodStatus(NS, podName, { phase: 'Pending' });
      await expect(platform.poll(ref(state))).resolves.toEqual({ state: 'running' });
      api.setPodStatus(NS, podName, {
        phase: 'Running',
        podIP: '10.42.3.19',
        podIPs: [{ ip: '10.42.3.19' }],
        containerStatuses: [containerStatus({ running: { startedAt: '2026-11-22T10:00:00Z' } })],
      });
      await expect(platform.poll(ref(state))).resolves.toEqual({ state: 'running', upstreamUrl: 'http://10.42.3.19:7681' });
      api.setPodStatus(NS, podName, { phase: 'Running', podIP: 'fd00:42::13' });
      await expect(platform.poll(ref(state))).resolves.toEqual({ state: 'running', upstreamUrl: 'http://[fd00:42::13]:7681' });
    });

    it('reports no address for a pod that has exited, even if its IP is still in the status', async () => {
      api.setPodStatus(NS, podName, { phase: 'Failed', podIP: '10.42.3.19' });
      await expect(platform.poll(ref(state))).resolves.toEqual({ state: 'exited', exitCode: null, reason: expect.any(String) });
    });

    it('answers exited with the code, the reason and the last output of a Failed pod', async () => {
      api.setPodStatus(NS, podName, {
        phase: 'Failed',
        containerStatuses: [
          containerStatus({
            terminated: { exitCode: 137, reason: 'OOMKilled', startedAt: '2026-11-22T10:00:00Z', finishedAt: '2026-11-22T10:01:00Z' },
          }),
        ],
      });
      api.setLog(NS, podName, 'starting\nallocating a lot\n');

      const status = await platform.poll(ref(state));

      expect(status).toEqual({ state: 'exited', exitCode: 137, reason: expect.stringContaining('killed: out of memory') });
      expect(status).toMatchObject({ reason: expect.stringContaining('container exited with code 137') });
      expect(status).toMatchObject({ reason: expect.stringContaining('last output: starting allocating a lot') });
      const logRequest = api.requests.find((r) => r.path.endsWith('/log'))!;
      expect(logRequest.query.get('tailLines')).toBe('5');
    });

    it('reports an eviction from the pod status', async () => {
      api.setPodStatus(NS, podName, { phase: 'Failed', reason: 'Evicted', message: 'The node was low on resource: memory.' });
      await expect(platform.poll(ref(state))).resolves.toEqual({
        state: 'exited',
        exitCode: null,
        reason: expect.stringMatching(/Evicted; The node was low on resource: memory\./),
      });
    });

    it.each([
      [
        'ImagePullBackOff',
        'Back-off pulling image "berth/terminal:latest"',
        /image berth\/terminal:latest could not be pulled \(ImagePullBackOff\): Back-off pulling/,
      ],
      ['ErrImagePull', 'pull access denied', /could not be pulled \(ErrImagePull\)/],
      ['InvalidImageName', 'Failed to apply default image tag', /\(InvalidImageName\)/],
      ['CreateContainerConfigError', 'secret "x" not found', /container could not be configured \(CreateContainerConfigError\): secret "x"/],
    ])('answers exited for a Pending pod waiting with %s, which will never start', async (reason, message, expected) => {
      api.setPodStatus(NS, podName, {
        phase: 'Pending',
        containerStatuses: [containerStatus({ waiting: { reason, message } })],
      });
      await expect(platform.poll(ref(state))).resolves.toEqual({ state: 'exited', exitCode: null, reason: expect.stringMatching(expected) });
    });

    it('keeps answering running while the image is still being pulled', async () => {
      api.setPodStatus(NS, podName, {
        phase: 'Pending',
        containerStatuses: [containerStatus({ waiting: { reason: 'ContainerCreating' } })],
      });
      await expect(platform.poll(ref(state))).resolves.toEqual({ state: 'running' });
    });

    it('answers gone when the pod does not exist', async () => {
      await platform.stop(ref(state));
      await expect(platform.poll(ref(state))).resolves.toEqual({ state: 'gone' });
      expect(api.requests.at(-1)?.status).toBe(404);
    });
  });

  describe('listManaged', () => {
    it('sends the ownership label selector and returns only this instance’s pods', async () => {
      await platform.start(spec);
      await platform.start(specFor('22222222-3333-4444-8555-666666666666'));
      const otherInstance = testConfig({ BERTH_INSTANCE: 'other' });
      const foreign = makeSessionPod('other-terminal-x', specFor('33333333-4444-4555-8666-777777777777'), otherInstance, {});
      api.put('pods', NS, foreign);
      api.put('pods', NS, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'unrelated', labels: { app: 'x' } } });
      api.requests.length = 0;

      const managed = await platform.listManaged();

      expect(api.requests).toHaveLength(1);
      expect(api.requests[0].path).toBe(`/api/v1/namespaces/${NS}/pods`);
      expect(api.requests[0].query.get('labelSelector')).toBe('berth.managed-by=berth,berth.instance=berth');
      expect(managed.map((m) => m.sessionId).sort()).toEqual([SESSION, '22222222-3333-4444-8555-666666666666'].sort());
      const mine = managed.find((m) => m.sessionId === SESSION)!;
      expect(mine).toMatchObject({ kind: SessionKind.Terminal, containerName: podName, running: true });
      expect(Math.abs(mine.createdAt.getTime() - Date.now())).toBeLessThan(10_000);
    });

    it('follows continue tokens through every page', async () => {
      const base = makeSessionPod('x', spec, config, {});
      for (let i = 0; i < 501; i++) {
        api.put('pods', NS, { ...base, metadata: { ...base.metadata!, name: `pod-${String(i).padStart(3, '0')}` } });
      }
      api.requests.length = 0;

      const managed = await platform.listManaged();

      expect(managed).toHaveLength(501);
      expect(api.requests.map((r) => r.query.get('continue'))).toEqual([null, expect.any(String)]);
      expect(api.requests[0].query.get('limit')).toBe('500');
    });
  });

  describe('ping', () => {
    it('lists at most one pod in the sessions namespace', async () => {
      await expect(platform.ping()).resolves.toBeUndefined();
      expect(api.requests.map(requestLine)).toEqual([`GET /api/v1/namespaces/${NS}/pods`]);
      expect(api.requests[0].query.get('limit')).toBe('1');
    });

    it('fails permanently, naming the problem, when the token is rejected', async () => {
      const stranger = new KubernetesPlatform(config, kubeConfigFor(server, 'wrong-token'));
      const error = await stranger.ping().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PlatformError);
      expect(error).toMatchObject({ transient: false, message: expect.stringContaining('401') });
      api.requests.length = 0; // the afterEach token check is about our platform's requests
    });
  });

  describe('watchExits', () => {
    const until = async (what: string, check: () => boolean) => {
      for (let i = 0; i < 200 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
      if (!check()) throw new Error(`timed out waiting for ${what}`);
    };

    it('reports the session of a pod that stopped or was deleted, and resyncs when the watch comes back', async () => {
      const exits: string[] = [];
      let resyncs = 0;
      const stop = platform.watchExits({ onExit: (id) => exits.push(id), onResync: () => resyncs++ });
      try {
        await until('the watch', () => api.openWatches === 1);
        const watchRequest = api.requests.find((r) => r.query.get('watch') === 'true')!;
        expect(watchRequest.path).toBe(`/api/v1/namespaces/${NS}/pods`);
        expect(watchRequest.query.get('labelSelector')).toBe('berth.managed-by=berth,berth.instance=berth');

        await platform.start(spec);
        api.setPodStatus(NS, podName, { phase: 'Running', containerStatuses: [containerStatus({ running: { startedAt: '2026-01-01T00:00:00Z' } })] });
        await new Promise((resolve) => setTimeout(resolve, 50));
        expect(exits).toEqual([]); // created and running: nothing to report

        api.setPodStatus(NS, podName, { phase: 'Failed', containerStatuses: [containerStatus({ terminated: { exitCode: 137, reason: 'OOMKilled' } })] });
        await until('the exit', () => exits.length === 1);
        expect(exits).toEqual([SESSION]);

        const other = '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
        await platform.start(specFor(other));
        await platform.stop({ sessionId: other, kind: SessionKind.Terminal, state: {} });
        await until('the deletion', () => exits.includes(other));

        // The API server ends watches now and then: a new one starts and reconciliation is asked for.
        expect(resyncs).toBe(0);
        api.endWatches();
        await until('the watch to come back', () => api.openWatches === 1 && resyncs === 1);
      } finally {
        stop();
      }
      await until('the watch to end', () => api.openWatches === 0);
    });

    it('ignores pods of other installs', async () => {
      const exits: string[] = [];
      const stop = platform.watchExits({ onExit: (id) => exits.push(id), onResync: () => undefined });
      try {
        await until('the watch', () => api.openWatches === 1);
        const pod = makeSessionPod('someone-else', spec, config, {});
        api.put('pods', NS, { ...pod, metadata: { ...pod.metadata, labels: { ...pod.metadata!.labels, 'berth.instance': 'another' } } });
        api.setPodStatus(NS, 'someone-else', { phase: 'Failed' });
        await new Promise((resolve) => setTimeout(resolve, 100));
        expect(exits).toEqual([]);
      } finally {
        stop();
      }
    });
  });

  describe('errors', () => {
    it('turns a 500 into a transient PlatformError carrying the API message', async () => {
      api.failNext('POST', /\/pods$/, 500, 'InternalError', 'etcdserver: request timed out');
      const error = await platform.start(spec).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PlatformError);
      expect(error).toMatchObject({ transient: true, message: expect.stringContaining('etcdserver: request timed out') });
    });

    it('turns a 429 from API priority and fairness into a transient PlatformError', async () => {
      api.failNext('GET', /\/pods\//, 429, 'TooManyRequests', 'Too many requests, please try again later.');
      await platform.start(spec);
      const error = await platform.poll(ref()).catch((e: unknown) => e);
      expect(error).toMatchObject({ name: 'PlatformError', transient: true });
    });

    it('turns a 422 into a permanent PlatformError carrying the API message', async () => {
      api.failNext('POST', /\/pods$/, 422, 'Invalid', `Pod "${podName}" is invalid: spec.containers[0].image: Required value`);
      const error = await platform.start(spec).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PlatformError);
      expect(error).toMatchObject({
        transient: false,
        message:
          `Kubernetes API error while creating pod ${podName}: ` +
          `HTTP 422 Invalid: Pod "${podName}" is invalid: spec.containers[0].image: Required value`,
      });
    });

    it('treats a 500 while stopping as transient, not as success', async () => {
      const started = await platform.start(spec);
      api.failNext('DELETE', /\/pods\//, 503, 'ServiceUnavailable', 'the server is currently unable to handle the request');
      await expect(platform.stop(ref(started.state))).rejects.toMatchObject({ name: 'PlatformError', transient: true });
      expect(api.all('pods')).toHaveLength(1);
    });

    it('treats an unreachable API server as transient', async () => {
      const closed = new FakeKubernetesApi({ token: TOKEN });
      const url = await closed.listen();
      await closed.close();
      const unreachable = new KubernetesPlatform(config, kubeConfigFor(url));
      await expect(unreachable.ping()).rejects.toMatchObject({
        name: 'PlatformError',
        transient: true,
        message: expect.stringContaining('ECONNREFUSED'),
      });
    });
  });

  describe('dependency injection', () => {
    it('resolves through Nest with a KubeConfig provided under KUBE_CONFIG', async () => {
      const moduleRef = await Test.createTestingModule({
        providers: [{ provide: BerthConfig, useValue: config }, { provide: KUBE_CONFIG, useValue: kubeConfigFor(server) }, KubernetesPlatform],
      }).compile();
      const resolved = moduleRef.get(KubernetesPlatform);
      expect(resolved.name).toBe('kubernetes');
      await expect(resolved.ping()).resolves.toBeUndefined();
      await moduleRef.close();
    });
  });

  it('needed every permission the Role grants, and no other (least privilege)', () => {
    // Runs last: `exercised` accumulates over the whole file.
    const granted = sessionRole().rules.flatMap((rule) => rule.resources.flatMap((resource) => rule.verbs.map((verb) => `${resource}:${verb}`)));
    expect([...api.exercised].sort()).toEqual(granted.sort());
  });
});
