import { testConfig } from '../../../test/support/test-config';
import type { V1Pod } from '@kubernetes/client-node';
import { PersistentVolumeClaim, Pod } from 'kubernetes-models/v1';
import { BerthConfig } from '../../config/berth-config';
import { SessionKind } from '../../sessions/session-status';
import { PersistentVolume, SessionContainerSpec, sessionContainerName } from '../container-platform';
import { makePersistentVolumeClaim, makeSessionPod, podUpstreamUrl, quantityFromBytes, sessionNetworkEnv } from './kubernetes-objects';

const DNS_1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_1123_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const MiB = 1024 * 1024;

function configFor(env: Record<string, string> = {}): BerthConfig {
  return testConfig({ CONTAINER_PLATFORM: 'kubernetes', ...env });
}

const SESSION = '0b6e3f5c-4a53-4f0e-9a0c-2f6f1c7d9e11';

/** What the terminal profile asks for (src/kinds/terminal.kind.ts), with the configured limits. */
function terminalSpec(config: BerthConfig, volumes: PersistentVolume[] = []): SessionContainerSpec {
  return {
    sessionId: SESSION,
    kind: SessionKind.Terminal,
    image: 'berth/terminal:latest',
    env: { BERTH_SESSION_ID: SESSION, BERTH_CALLBACK_TOKEN: 'secret', BERTH_PORT: 'overridden' },
    resources: config.terminal.resources,
    stopGraceSeconds: 3,
    volumes,
  };
}

/** What the browser profile asks for (src/kinds/browser.kind.ts). */
function browserSpec(config: BerthConfig, volumes: PersistentVolume[] = []): SessionContainerSpec {
  return {
    sessionId: SESSION,
    kind: SessionKind.Browser,
    image: 'berth/browser:latest',
    env: { BERTH_SESSION_ID: SESSION, BERTH_OPTIONS: '{"headless":false}' },
    resources: config.browser.resources,
    stopGraceSeconds: 10,
    volumes,
  };
}

const workspace: PersistentVolume = { name: 'berth-workspace-7c1e', mountPath: '/home/berth', purpose: 'workspace', sizeBytes: 2048 * MiB };
const profile: PersistentVolume = { name: 'berth-profile-shopping', mountPath: '/home/berth/profile', purpose: 'profile', sizeBytes: 1024 * MiB };

function podFor(spec: SessionContainerSpec, config: BerthConfig): V1Pod {
  return makeSessionPod(sessionContainerName(config.platform.instance, spec.kind, spec.sessionId), spec, config, sessionNetworkEnv(config));
}

function terminalPod(env: Record<string, string> = {}, volumes: PersistentVolume[] = []) {
  const config = configFor(env);
  const spec = terminalSpec(config, volumes);
  const podName = sessionContainerName(config.platform.instance, spec.kind, spec.sessionId);
  return { config, spec, podName, pod: podFor(spec, config) };
}

/** mountPath -> what backs it (an emptyDir or a claim), through the pod's volume names. */
function mountTable(pod: V1Pod): Record<string, unknown> {
  const volumes = new Map(pod.spec!.volumes!.map(({ name, ...source }) => [name, source]));
  return Object.fromEntries(pod.spec!.containers[0].volumeMounts!.map((mount) => [mount.mountPath, volumes.get(mount.name)]));
}

describe('makeSessionPod: a terminal', () => {
  it('validates against the official Pod schema', () => {
    const { pod } = terminalPod();
    expect(() => new Pod(pod as never).validate()).not.toThrow();
  });

  it('the schema check is real: a malformed pod is rejected', () => {
    const { pod } = terminalPod();
    const broken = { ...pod, spec: { ...pod.spec, containers: [{ ...pod.spec!.containers[0], ports: [{ containerPort: 'http' }] }] } };
    expect(() => new Pod(broken as never).validate()).toThrow();
  });

  it('is hardened like the Docker container', () => {
    const { pod } = terminalPod();
    const podSpec = pod.spec!;
    const container = podSpec.containers[0];
    expect(podSpec.securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 1000,
      runAsGroup: 1000,
      fsGroup: 1000,
      fsGroupChangePolicy: 'OnRootMismatch',
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(container.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      privileged: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
    expect(container.securityContext?.capabilities?.add).toBeUndefined();
    expect(podSpec.restartPolicy).toBe('Never');
    expect(podSpec.automountServiceAccountToken).toBe(false);
    expect(podSpec.enableServiceLinks).toBe(false);
    expect(podSpec.hostNetwork).toBeUndefined();
    expect(podSpec.hostPID).toBeUndefined();
    // The agent is PID 1 of its container, as the session contract says.
    expect(podSpec.shareProcessNamespace).toBeUndefined();
  });

  it('gives the agent its kind’s stop grace as the termination grace period', () => {
    const config = configFor();
    expect(podFor(terminalSpec(config), config).spec!.terminationGracePeriodSeconds).toBe(3);
    expect(podFor({ ...terminalSpec(config), stopGraceSeconds: 42 }, config).spec!.terminationGracePeriodSeconds).toBe(42);
  });

  it('mounts memory-backed emptyDirs sized by the spec’s tmpfs size on /tmp and the home directory', () => {
    const config = configFor();
    const spec = terminalSpec(config);
    const pod = podFor({ ...spec, resources: { ...spec.resources, tmpfsBytes: 32 * MiB } }, config);
    expect(mountTable(pod)).toEqual({
      '/tmp': { emptyDir: { medium: 'Memory', sizeLimit: '32Mi' } },
      '/home/berth': { emptyDir: { medium: 'Memory', sizeLimit: '32Mi' } },
    });
  });

  it('computes limits and requests from the spec’s resources', () => {
    const config = configFor();
    const spec = terminalSpec(config);
    const pod = podFor({ ...spec, resources: { ...spec.resources, memoryBytes: 512 * MiB, nanoCpus: 1.5e9 } }, config);
    expect(pod.spec!.containers[0].resources).toEqual({
      limits: { cpu: '1500m', memory: '512Mi' },
      requests: { cpu: '150m', memory: '128Mi' },
    });
  });

  it('takes the terminal limits from TERMINAL_* through the spec', () => {
    const { pod } = terminalPod({ TERMINAL_MEMORY_MB: '384', TERMINAL_CPUS: '0.5', TERMINAL_TMPFS_MB: '16' });
    expect(pod.spec!.containers[0].resources!.limits).toEqual({ cpu: '500m', memory: '384Mi' });
    expect(mountTable(pod)['/tmp']).toEqual({ emptyDir: { medium: 'Memory', sizeLimit: '16Mi' } });
  });

  it('never rounds a tiny CPU limit down to zero', () => {
    const { pod } = terminalPod({ TERMINAL_CPUS: '0.01' });
    expect(pod.spec!.containers[0].resources).toMatchObject({ limits: { cpu: '10m' }, requests: { cpu: '1m' } });
  });

  it('checks readiness with a TCP probe on the agent port (every HTTP path needs the session secret)', () => {
    const { pod } = terminalPod({ SESSION_CONTAINER_PORT: '8080' });
    const container = pod.spec!.containers[0];
    expect(container.readinessProbe).toMatchObject({ tcpSocket: { port: 'http' } });
    expect(container.readinessProbe!.httpGet).toBeUndefined();
    // The named port is the agent's.
    expect(container.ports).toEqual([{ name: 'http', containerPort: 8080, protocol: 'TCP' }]);
  });

  it('labels the pod with the ownership labels', () => {
    const { pod, podName } = terminalPod({ BERTH_INSTANCE: 'prod-eu' });
    expect(pod.metadata).toEqual({
      name: podName,
      labels: {
        'berth.managed-by': 'berth',
        'berth.instance': 'prod-eu',
        'berth.session-id': SESSION,
        'berth.session-kind': 'terminal',
        'app.kubernetes.io/managed-by': 'berth',
      },
    });
    for (const value of Object.values(pod.metadata!.labels!)) expect(value).toMatch(LABEL_VALUE);
    expect(podName).toBe(`prod-eu-terminal-${SESSION}`);
    expect(podName).toMatch(DNS_1123_SUBDOMAIN);
  });

  it('passes the session env and lets the network env win', () => {
    const { pod } = terminalPod();
    const env = Object.fromEntries(pod.spec!.containers[0].env!.map((entry) => [entry.name, entry.value]));
    expect(env).toEqual({
      BERTH_SESSION_ID: SESSION,
      BERTH_CALLBACK_TOKEN: 'secret',
      BERTH_LISTEN_HOST: '0.0.0.0',
      BERTH_PORT: '7681',
    });
    expect(pod.spec!.containers[0].image).toBe('berth/terminal:latest');
  });
});

describe('makeSessionPod: a terminal with a workspace volume at /home/berth', () => {
  const { pod } = terminalPod({}, [workspace]);

  it('validates against the official Pod schema', () => {
    expect(() => new Pod(pod as never).validate()).not.toThrow();
  });

  it('mounts the workspace’s claim as the home directory, in place of the emptyDir', () => {
    expect(mountTable(pod)).toEqual({
      '/tmp': { emptyDir: { medium: 'Memory', sizeLimit: '64Mi' } },
      '/home/berth': { persistentVolumeClaim: { claimName: 'berth-workspace-7c1e' } },
    });
    for (const volume of pod.spec!.volumes!) expect(volume.name).toMatch(DNS_1123_LABEL);
  });

  it('keeps the hardening, and fsGroup makes the fresh claim writable by the session user', () => {
    expect(pod.spec!.securityContext).toMatchObject({ runAsUser: 1000, fsGroup: 1000, fsGroupChangePolicy: 'OnRootMismatch' });
    expect(pod.spec!.containers[0].securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
  });
});

describe('makeSessionPod: a browser with a profile volume at /home/berth/profile', () => {
  const config = configFor({ BROWSER_MEMORY_MB: '1536', BROWSER_CPUS: '2', BROWSER_TMPFS_MB: '256' });
  const spec = browserSpec(config, [profile]);
  const pod = podFor(spec, config);

  it('validates against the official Pod schema', () => {
    expect(() => new Pod(pod as never).validate()).not.toThrow();
  });

  it('keeps the memory-backed home and mounts the profile’s claim inside it, after it', () => {
    expect(mountTable(pod)).toEqual({
      '/tmp': { emptyDir: { medium: 'Memory', sizeLimit: '256Mi' } },
      '/home/berth': { emptyDir: { medium: 'Memory', sizeLimit: '256Mi' } },
      '/home/berth/profile': { persistentVolumeClaim: { claimName: 'berth-profile-shopping' } },
    });
    const paths = pod.spec!.containers[0].volumeMounts!.map((mount) => mount.mountPath);
    expect(paths.indexOf('/home/berth/profile')).toBeGreaterThan(paths.indexOf('/home/berth'));
  });

  it('runs within the browser limits and stop grace, with nothing extra for /dev/shm', () => {
    expect(pod.spec!.containers[0].resources).toEqual({
      limits: { cpu: '2000m', memory: '1536Mi' },
      requests: { cpu: '200m', memory: '384Mi' },
    });
    expect(pod.spec!.terminationGracePeriodSeconds).toBe(10);
    // Chromium runs with --disable-dev-shm-usage.
    expect(Object.keys(mountTable(pod)).filter((path) => path.startsWith('/dev'))).toEqual([]);
  });

  it('is hardened exactly like a terminal pod', () => {
    const terminal = podFor(terminalSpec(config), config);
    expect(pod.spec!.securityContext).toEqual(terminal.spec!.securityContext);
    expect(pod.spec!.containers[0].securityContext).toEqual(terminal.spec!.containers[0].securityContext);
    expect(pod.spec!.automountServiceAccountToken).toBe(false);
    expect(pod.metadata!.labels).toMatchObject({ 'berth.session-kind': 'browser' });
    expect(pod.spec!.containers[0].readinessProbe).toEqual(terminal.spec!.containers[0].readinessProbe);
  });
});

describe('makePersistentVolumeClaim', () => {
  it('validates against the official PersistentVolumeClaim schema', () => {
    for (const volume of [workspace, profile]) {
      expect(() => new PersistentVolumeClaim(makePersistentVolumeClaim(volume, configFor()) as never).validate()).not.toThrow();
    }
  });

  it('the schema check is real: a malformed claim is rejected', () => {
    const claim = makePersistentVolumeClaim(workspace, configFor());
    const broken = { ...claim, spec: { ...claim.spec, accessModes: 'ReadWriteOnce' } };
    expect(() => new PersistentVolumeClaim(broken as never).validate()).toThrow();
  });

  it('is named after the volume, labelled as Berth’s with its purpose, ReadWriteOnce, sized as asked, in the default class', () => {
    const claim = makePersistentVolumeClaim(workspace, configFor({ BERTH_INSTANCE: 'prod-eu' }));
    expect(claim).toEqual({
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: {
        name: 'berth-workspace-7c1e',
        labels: {
          'berth.managed-by': 'berth',
          'berth.instance': 'prod-eu',
          'berth.volume-purpose': 'workspace',
          'app.kubernetes.io/managed-by': 'berth',
        },
      },
      spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '2048Mi' } } },
    });
    // No storageClassName at all: "" would ask for a volume without a class instead of the default.
    expect('storageClassName' in claim.spec!).toBe(false);
    expect(makePersistentVolumeClaim(profile, configFor()).metadata!.labels!['berth.volume-purpose']).toBe('profile');
  });

  it('uses K8S_STORAGE_CLASS when set', () => {
    const claim = makePersistentVolumeClaim(profile, configFor({ K8S_STORAGE_CLASS: 'fast-ssd' }));
    expect(claim.spec!.storageClassName).toBe('fast-ssd');
  });

  it('K8S_STORAGE_CLASS must be a StorageClass name', () => {
    expect(() => configFor({ K8S_STORAGE_CLASS: 'Fast SSD' })).toThrow(/K8S_STORAGE_CLASS/);
  });
});

describe('podUpstreamUrl', () => {
  const config = configFor();
  it('is the pod IP and agent port once the pod has an IP, with IPv6 in brackets', () => {
    expect(podUpstreamUrl({ status: {} }, config)).toBeNull();
    expect(podUpstreamUrl({ status: { podIP: '10.42.1.17' } }, config)).toBe('http://10.42.1.17:7681');
    expect(podUpstreamUrl({ status: { podIP: 'fd00:10:42::11' } }, config)).toBe('http://[fd00:10:42::11]:7681');
  });
});

describe('quantityFromBytes', () => {
  it('writes whole mebibytes as Mi and anything else as bytes', () => {
    expect(quantityFromBytes(64 * MiB)).toBe('64Mi');
    expect(quantityFromBytes(1000)).toBe('1000');
  });
});
